# SPDX-License-Identifier: GPL-2.0
#
# cowpt: copy-on-write page tables for fork() on Linux 6.12.
#
#   make test      build the debug kernel and tests, boot, run everything
#   make bench     build the bench kernel, boot, measure fork
#   make check     fast host-side checks of the series (no VM)
#   make help      everything else

# The kernel source is pinned, by Debian package version and sha256, in
# kernel-patches/base; tools/prepare-source fetches exactly that package.
PINNED_VERSION := $(shell awk '$$1 == "version" {print $$2}' kernel-patches/base)

TOP    := $(CURDIR)
BUILD  := $(TOP)/build
KSRC   := $(BUILD)/linux
STOCK  := $(BUILD)/linux-stock
TOOLS  := $(TOP)/tools

KDEBUG := $(BUILD)/kernel-debug
KBENCH := $(BUILD)/kernel-bench
KSTOCK := $(BUILD)/kernel-stock
ST_OUT := $(BUILD)/selftests
MM_OUT := $(BUILD)/mm-selftests
# benchmark results: make bench* write RESULTS, make publish-results copies
# them into the tracked results/
RESULTS := $(BUILD)/results

# VM settings; ACCEL=auto uses KVM when a probe boot shows it works.
ACCEL   ?= tcg
VM_MEM  ?= 4G
# 3 vCPUs: mm/migration needs at least 3 CPUs to run rather than skip
VM_SMP  ?= 3
TEST_TIMEOUT ?= 3600
# run only the tests whose name matches this (grep -E)
ONLY    ?= .
# extra kernel command line for the test VM
APPEND  ?=

PACKAGES := qemu-system-x86 busybox-static gcc make flex \
	bison bc libelf-dev libssl-dev cpio ccache liburing-dev linux-perf git \
	xz-utils libcap-dev libnuma-dev rsync python3 util-linux kmod \
	stress-ng gnuplot-nox redis-server redis-tools pkg-config perl \
	python3-ply python3-git

# what make deb needs besides PACKAGES (debhelper: bindeb-pkg's build
# dependency; dwarves: pahole, for BTF)
DEB_PACKAGES := dpkg-dev debhelper fakeroot pandoc binutils $(if $(DEB_DEBUG_INFO),dwarves)
# what make deb-install-test needs besides PACKAGES (a Debian 12 disk image)
DEB_INSTALL_PACKAGES := debootstrap fdisk e2fsprogs qemu-utils

VMRUN = $(TOOLS)/vm-run --accel $(ACCEL) --mem $(VM_MEM) --smp $(VM_SMP)

.PHONY: all help deps source kernel kernel-bench kernel-stock tools selftests \
	test soak vm bench bench-stock bench-icount check check-latest export-series \
	bisect-check publish-results clean distclean deps-deb deb deb-tools \
	deb-test test-boots deps-deb-install deb-install-test xen

all: test

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST) | head -n 3
	@echo "  make deps          install missing Debian packages (as root)"
	@echo "  make source        fetch and unpack the pinned source ($(PINNED_VERSION)), apply kernel-patches/"
	@echo "  make check-latest  does the series apply to the newest linux-source-6.12 in the archive?"
	@echo "  make kernel        build the debug kernel (build/kernel-debug)"
	@echo "  make kernel-bench  build the bench kernel (build/kernel-bench)"
	@echo "  make kernel-stock  build the unpatched kernel with the bench config"
	@echo "  make bench-stock   plain fork in the unpatched kernel, for the no-regression table"
	@echo "  make bench-icount  plain fork, cowpt vs unpatched kernel, instruction-counted boots"
	@echo "  make selftests     build selftests/ and the kernel's mm selftests"
	@echo "  make tools         build tools/*.c (cowpt-run) into build/bin"
	@echo "  make soak SOAK=S   cow_pte_fuzz and cow_pte_torture for S seconds in cow_pte=always (default 1800)"
	@echo "  make vm            interactive shell in the debug kernel"
	@echo "  make xen           fetch Debian's Xen hypervisor for the xen-pv boot of make test (build/xen)"
	@echo "  make export-series regenerate kernel-patches/ from build/linux commits"
	@echo "  make bisect-check  build the debug kernel at every patch of the series (FROM=N: from patch N)"
	@echo "  make deb           Debian packages of the kernel (Debian's config, FLAVOUR=cloud-amd64|amd64) and of cowpt-tools"
	@echo "  make deb-tools     only the cowpt-tools package"
	@echo "  make deb-test      make test's boots in the packaged kernel (DEB=FILE: which package)"
	@echo "  make deb-install-test  follow Documentation/install.md in a Debian 12 VM (as root; long)"
	@echo "  make publish-results  copy build/results (make bench*) into the tracked results/"
	@echo "Variables: ACCEL=tcg|kvm|auto VM_MEM=4G VM_SMP=3 ONLY=regex APPEND=... MODES='opt-in always xen-pv'"

# ---------------------------------------------------------------- packages
deps:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "deps: missing packages: $$missing; run 'make deps' as root" >&2; exit 1; \
		fi; \
		echo "deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi

deps-deb:
	@$(MAKE) --no-print-directory deps PACKAGES='$(DEB_PACKAGES)'

# ---------------------------------------------------------------- kernel
source: deps
	@$(TOOLS)/prepare-source $(if $(FORCE),--force)

kernel: source
	@$(TOOLS)/build-kernel debug

kernel-bench: source
	@$(TOOLS)/build-kernel bench

kernel-stock: source
	@$(TOOLS)/prepare-source --stock $(STOCK)
	@COWPT_ALLOW_MISSING_SYMBOLS=1 $(TOOLS)/build-kernel --src $(STOCK) --name stock bench

# ---------------------------------------------------------------- tests
# The kernel's mm selftests are built from the patched tree against the
# debug kernel's uapi headers.  khugepaged.c does not build in 6.12.y
# (KSFT_SKIP undeclared), hence -k; the programs the test table runs
# ($MM/NAME in selftests/tests.list) are checked below.
MM_PROGS := $(shell sed -n 's|.*\$$MM/\([^ ]*\).*|\1|p' $(TOP)/selftests/tests.list | sort -u)

# Userspace tools (tools/*.c): build/bin/
BIN_OUT := $(BUILD)/bin
TOOL_PROGS := $(BIN_OUT)/cowpt-run
tools: $(TOOL_PROGS)
$(BIN_OUT)/%: $(TOOLS)/%.c $(TOP)/include/cowpt.h
	@mkdir -p $(BIN_OUT)
	$(CC) -Wall -Wextra -O2 -I$(TOP)/include -o $@ $<

# the selftests and the kernel's mm selftests, built against the uapi
# headers in directory $(1)
define build_selftests
	@$(MAKE) -s -C selftests KSRC=$(KSRC) KHDR=$(1) OUT=$(ST_OUT)
	@mkdir -p $(MM_OUT)
	@$(MAKE) -s -k -C $(KSRC)/tools/testing/selftests/mm OUTPUT=$(MM_OUT) \
		KHDR_INCLUDES="-isystem $(1)" >$(BUILD)/mm-selftests.log 2>&1 || true
	@for p in $(MM_PROGS); do \
		[ -x $(MM_OUT)/$$p ] || { echo "selftests: mm/$$p did not build (see build/mm-selftests.log)" >&2; exit 1; }; \
	done
endef

selftests: kernel tools
	$(call build_selftests,$(KDEBUG)/usr/include)

# Three boots of the debug kernel: the default mode (opt-in); then
# cow_pte=always, in which every fork of every test shares PTE tables; then
# xen-pv, the kernel as the PV dom0 of a Xen hypervisor (make xen) with
# cow_pte=always on its command line, where it must share nothing.  The
# modes column of selftests/tests.list says which boots run a program
# (tools/test-list writes each boot's list).  MODES=opt-in (or always,
# xen-pv) runs one boot only.
MODES ?= opt-in always xen-pv
# Debian's Xen, unpacked (tools/fetch-xen), for the xen-pv boot
XEN := $(BUILD)/xen/xen
# the kernel the tests boot, and the directories their runs go to
# (build/TEST_RUN-MODE); make deb-test sets them for the packaged kernel
TEST_KERNEL ?= $(KDEBUG)/arch/x86/boot/bzImage
TEST_INITRD ?=
TEST_RUN ?= test-run
# which lines of tests.list run: debug (the test kernels) or package
TEST_KIND ?= debug

test: selftests
	@$(MAKE) --no-print-directory test-boots

# the boots of make test, without building anything but make xen
test-boots: $(if $(filter xen-pv,$(MODES)),$(XEN))
	@set -e; for mode in $(MODES); do \
		$(TOOLS)/test-list --kernel $(TEST_KIND) $$mode >$(BUILD)/tests-$$mode.list || \
			{ echo "test: no test list for mode $$mode (opt-in, always, xen-pv)" >&2; exit 2; }; \
	done
	@set -e; for mode in $(MODES); do \
		list=$(BUILD)/tests-$$mode.list; \
		case $$mode in \
		xen-pv) cow=always; xen="--xen $(XEN)"; how="as a Xen PV dom0 with cow_pte=always" ;; \
		*) cow=$$mode; xen=; how="with cow_pte=$$mode" ;; \
		esac; \
		echo "test: booting $(patsubst $(TOP)/%,%,$(TEST_KERNEL)) $$how ($(ACCEL), $(VM_SMP) vCPUs, $(VM_MEM))"; \
		$(VMRUN) --out $(BUILD)/$(TEST_RUN)-$$mode --timeout $(TEST_TIMEOUT) \
			--kernel $(TEST_KERNEL) $(if $(TEST_INITRD),--initrd $(TEST_INITRD)) $$xen \
			--append "cow_pte=$$cow $(APPEND)" \
			$(if $(COWPT_INJECT_FAILURE),--env COWPT_INJECT_FAILURE=$(COWPT_INJECT_FAILURE)) \
			--no-scan -- $(TOOLS)/guest-tests --list $$list --label $$mode \
			--st $(ST_OUT) --mm $(MM_OUT) --only '$(ONLY)' || true; \
		echo "test: guest ($$mode) finished"; \
	done
	@echo "== cowpt test results"
	@args=; for mode in $(MODES); do \
		args="$$args --list $(BUILD)/tests-$$mode.list --label $$mode $(BUILD)/$(TEST_RUN)-$$mode"; \
	done; \
	$(TOOLS)/test-report $(if $(filter-out .,$(ONLY)),--only '$(ONLY)') $$args

# Randomized differential test (selftests/cow_pte_fuzz) in the debug kernel
# with cow_pte=always for SOAK seconds; --keep-going: every failure is
# reduced, written to build/soak-run/cow_pte_fuzz.repro*, and counted.
# selftests/cow_pte_torture (forks racing VMA and PTE changes) runs beside
# it for the same time.
SOAK ?= 1800
SOAK_ARGS ?=
# (one line: a backslash-newline inside the quotes would reach sh)
SOAK_SH = cd "$$(mktemp -d)" && { $(ST_OUT)/cow_pte_torture --time $(SOAK) >torture.log 2>&1 & } && $(ST_OUT)/cow_pte_fuzz --time $(SOAK) --keep-going --repro-file "$$COWPT_OUT/cow_pte_fuzz.repro" $(SOAK_ARGS); rc=$$?; wait; cat torture.log; exit $$rc
soak: selftests
	@echo "soak: booting build/kernel-debug with cow_pte=always for $(SOAK) s of cow_pte_fuzz"
	@{ $(VMRUN) --out $(BUILD)/soak-run --timeout $$(( $(SOAK) + 900 )) \
		--append "cow_pte=always $(APPEND)" -- \
		sh -c '$(SOAK_SH)'; \
		echo $$? >$(BUILD)/soak.status; } 2>&1 | tee $(BUILD)/soak.log
	@$(TOOLS)/soak-summary $(BUILD)/soak.log $$(cat $(BUILD)/soak.status)

vm: kernel
	@$(VMRUN) --out $(BUILD)/vm-shell --interactive

# ---------------------------------------------------------------- bench
# benchmarks/bench-suite.sh in the bench kernel (same series, no debug
# options), plain fork and CoW fork side by side in one boot; then plots
# and results/summary.md on the host.  BENCH_MODE=quick (default, about 15
# minutes under TCG) or full (sizes to 8 GiB, a 12 GiB guest; about an
# hour).  Every
# forkbench size runs in its own process, and the benchmarks write to the
# guest's tmpfs, never to 9p (a 9p write pins pages: MMF_HAS_PINNED, see
# Documentation/cow-pte-design.md).  The last lines are the
# "fork SIZE MiB: plain P ms, cow C ms, ratio R" lines of forkbench.
BENCH_MODE ?= quick
BENCH_MEM ?= $(if $(filter full,$(BENCH_MODE)),12G,6G)
BENCH_ARGS ?=
BENCH_OUT := $(BUILD)/bench-run
bench: kernel-bench tools
	@case "$(BENCH_MODE)" in quick|full) ;; *) echo "bench: BENCH_MODE is quick or full" >&2; exit 2 ;; esac
	@$(MAKE) -s -C benchmarks OUT=$(BUILD)/benchmarks KHDR=$(KBENCH)/usr/include
	@echo "bench: booting build/kernel-bench ($(BENCH_MODE) mode, $(ACCEL), $(VM_SMP) vCPUs, $(BENCH_MEM))"
	@$(TOOLS)/vm-run --accel $(ACCEL) --mem $(BENCH_MEM) --smp $(VM_SMP) --timeout 7200 \
		--kernel $(KBENCH)/arch/x86/boot/bzImage --out $(BENCH_OUT) \
		-- $(TOP)/benchmarks/bench-suite.sh --bin $(BUILD)/benchmarks \
		--mode $(BENCH_MODE) $(BENCH_ARGS)
	@mkdir -p $(RESULTS)
	@# the stock kernel's runs stay; the instruction-counted comparison
	@# (both kernels' CSVs) was of the cowpt kernel of before: make bench-icount
	@find $(RESULTS) -maxdepth 1 \( -name '*.csv' -o -name '*.png' -o -name '*.txt' \) \
		\( ! -name '*stock*' -o -name '*icount*' \) -delete
	@cp $(BENCH_OUT)/results/*.csv $(BENCH_OUT)/results/*.txt $(RESULTS)/
	@$(TOP)/benchmarks/plot.sh $(RESULTS)
	@$(TOP)/benchmarks/summary.sh $(RESULTS)
	@echo "bench: build/results/summary.md, *.csv, *.png (make publish-results to keep them)"
	@grep -h '^fork [0-9]* MiB: ' $(BENCH_OUT)/results/forkbench-[0-9]*.log | sort -n -k2
	@if [ -f $(BENCH_OUT)/results/forkbench-floor.csv ]; then \
		$(TOP)/benchmarks/fork-floor.sh $(BENCH_OUT)/results; fi
	@$(TOP)/benchmarks/goals.sh $(RESULTS)
	@grep -h '^mremap relocate: ' $(BENCH_OUT)/results/mremapbench.log 2>/dev/null || true
	@grep -hE '^mshare ([0-9]+ procs: plain|page tables from)' $(BENCH_OUT)/results/msharebench.log 2>/dev/null || true

# The unpatched kernel (same source, bench config), plain fork only, for the
# no-regression comparison in results/summary.md; run before or after
# "make bench" (it adds its CSVs to results/ and rewrites the summary).
bench-stock: kernel-stock
	@$(MAKE) -s -C benchmarks OUT=$(BUILD)/benchmarks KHDR=$(KBENCH)/usr/include
	@echo "bench-stock: booting build/kernel-stock ($(BENCH_MODE) mode, $(ACCEL), $(VM_SMP) vCPUs, $(BENCH_MEM))"
	@$(TOOLS)/vm-run --accel $(ACCEL) --mem $(BENCH_MEM) --smp $(VM_SMP) --timeout 3600 \
		--kernel $(KSTOCK)/arch/x86/boot/bzImage --out $(BUILD)/bench-stock-run \
		-- $(TOP)/benchmarks/bench-suite.sh --stock --bin $(BUILD)/benchmarks \
		--mode $(BENCH_MODE) $(BENCH_ARGS)
	@mkdir -p $(RESULTS)
	@cp $(BUILD)/bench-stock-run/results/*.csv $(BUILD)/bench-stock-run/results/*.txt $(RESULTS)/
	@$(TOP)/benchmarks/summary.sh $(RESULTS)

# Plain fork (a process that did not opt in) in the cowpt and the unpatched
# kernel, compared to a fraction of a percent: wall time under TCG varies by
# several percent between boots, so these boots run under QEMU -icount,
# where guest time counts guest instructions.  ICOUNT_BOOTS boots of each
# kernel, alternating; results/icount-vs-stock.csv and the summary's table.
ICOUNT_BOOTS ?= 2
ICOUNT_SIZES ?= 1,64,256,1024
ICOUNT_ARGS ?= --reps 7
ICOUNT_OUT := $(BUILD)/icount-run
bench-icount: kernel-bench kernel-stock tools
	@$(MAKE) -s -C benchmarks OUT=$(BUILD)/benchmarks KHDR=$(KBENCH)/usr/include
	@rm -rf $(ICOUNT_OUT); mkdir -p $(RESULTS)
	@rm -f $(RESULTS)/forkbench-icount-*.csv
	@set -e; for b in $$(seq 1 $(ICOUNT_BOOTS)); do for k in stock cowpt; do \
		case $$k in stock) kdir=$(KSTOCK) ;; *) kdir=$(KBENCH) ;; esac; \
		echo "bench-icount: boot $$b of $(ICOUNT_BOOTS), $$k kernel, -icount shift=0, 1 vCPU"; \
		$(TOOLS)/vm-run --icount 0 --smp 1 --mem 3G --timeout 3600 \
			--kernel $$kdir/arch/x86/boot/bzImage --out $(ICOUNT_OUT)/$$k-$$b \
			-- $(TOP)/benchmarks/bench-suite.sh --plain-only icount-$$k-$$b \
			--bin $(BUILD)/benchmarks --sizes $(ICOUNT_SIZES) --thp-sizes 1024 \
			--skip touch,redis,kvsnap $(ICOUNT_ARGS); \
		cp $(ICOUNT_OUT)/$$k-$$b/results/forkbench-icount-$$k-$$b.csv \
			$(ICOUNT_OUT)/$$k-$$b/results/forkbench-icount-$$k-$$b-thp.csv $(RESULTS)/; \
	done; done
	@$(TOP)/benchmarks/icount-compare.sh $(RESULTS)
	@$(TOP)/benchmarks/summary.sh $(RESULTS)

# results/ is what the README and benchmarks/README.md cite: it changes only
# here, from a build/results/ that has a summary (make bench* wrote it).
publish-results:
	@test -f $(RESULTS)/summary.md || { echo "publish-results: no $(RESULTS)/summary.md: run make bench first" >&2; exit 1; }
	@find $(TOP)/results -maxdepth 1 \( -name '*.csv' -o -name '*.png' -o -name '*.txt' -o -name '*.md' \) -delete
	@find $(RESULTS) -maxdepth 1 -type f \( -name '*.csv' -o -name '*.png' -o -name '*.txt' -o -name '*.md' \) 		-exec cp -t $(TOP)/results/ {} +
	@echo "publish-results: results/ now holds build/results/ ($$(ls $(TOP)/results | wc -l) files); commit it"

# ---------------------------------------------------------------- series
# check-series ends with the check-latest line, which never fails it: the
# pinned source is what must pass; the newest one is news.
check:
	@for mode in opt-in always xen-pv; do \
		for kind in debug package; do \
			$(TOOLS)/test-list --kernel $$kind $$mode >/dev/null || exit 1; \
		done; \
	done
	@$(TOOLS)/check-series
	@out=$$($(TOP)/benchmarks/test-goals.sh) || { echo "$$out"; exit 1; }

check-latest:
	@$(TOOLS)/check-latest $(if $(VERSION),--version '$(VERSION)') $(if $(V),--verbose)

export-series:
	@$(TOOLS)/export-series

bisect-check: source
	@$(TOOLS)/check-series --build $(if $(FROM),--from $(FROM))

xen: $(XEN)
$(XEN):
	@$(TOOLS)/fetch-xen $(BUILD)/xen

# ---------------------------------------------------------------- packages
deb: deps-deb source tools
	@$(TOOLS)/make-deb $(if $(FLAVOUR),--flavour $(FLAVOUR)) $(if $(DEB_DEBUG_INFO),--debug-info)

deps-deb-install:
	@$(MAKE) --no-print-directory deps PACKAGES='$(DEB_INSTALL_PACKAGES)'

deb-tools: deps-deb tools
	@$(TOOLS)/make-deb --tools-only

# The tests of make test in the packaged kernel (DEB=FILE, default the newest
# in build/deb/), built against the uapi headers of its linux-libc-dev and
# booted through an initramfs that loads its 9p modules; not the xen-pv boot
# (Debian's cloud kernel has no dom0 support).  THP is set to madvise, the
# test kernels' default: Debian's is always, which backs the tests' regions
# with huge pages, so forks have no PTE tables to share there.  Long, and
# not part of make test.
deb-test: source tools
	@$(TOOLS)/deb-test-prepare $(DEB)
	$(call build_selftests,$(BUILD)/deb-test/usr/include)
	@$(MAKE) --no-print-directory test-boots TEST_KERNEL=$(BUILD)/deb-test/vmlinuz \
		MODES='$(filter-out xen-pv,$(MODES))' \
		TEST_INITRD=$(BUILD)/deb-test/initrd.gz TEST_RUN=deb-test-run TEST_KIND=package \
		APPEND="cowpt_modules=$(BUILD)/deb-test/root/lib/modules transparent_hugepage=madvise $(APPEND)"

# Documentation/install.md followed in a Debian 12 VM that boots through
# GRUB (an image made with debootstrap, as root), with the packages of
# make deb: install, modes, Redis through cowpt-run, roll back.  Long, and
# not part of make test.
deb-install-test: deps-deb-install
	@$(TOOLS)/deb-install-image
	@$(TOOLS)/deb-install-test --accel $(ACCEL)

clean:
	rm -rf $(BUILD)/test-run* $(BUILD)/*-run $(BUILD)/vm-shell $(BUILD)/vm-out \
		$(BUILD)/deb-test $(BUILD)/deb-test-run-* $(ST_OUT) $(MM_OUT)

distclean:
	rm -rf $(BUILD)
