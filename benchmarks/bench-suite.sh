#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench-suite.sh - the benchmark suite of "make bench", run inside the bench
# kernel's guest: forkbench (one process per size), touchbench (the deferred
# cost), redis-bgsave, each benchmark process under "perf stat" with
# software events, and the guest description for the summary.  Writes the
# CSVs and logs into OUT; the host turns them into plots and summary.md.

set -eu
set -o pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
prog=$(basename "$0")

usage() {
	cat <<EOF
usage: $prog --bin DIR --out DIR [--mode quick|full] [--sizes MIB,...]
       [--reps N] [--skip NAME,...] [--thp-sizes MIB,...]
       [--stock | --plain-only TAG]

Run the cowpt benchmark suite in this (guest) kernel and write into OUT:
  forkbench.csv       fork latency vs touched 4 KiB memory, plain and cow
                      side by side, one forkbench process per size, then
                      the same with THP-backed memory (--thp, a control)
  forkbench-floor.csv plain fork of a 1 MiB process: the floor a CoW fork
                      is measured against (make bench's "fork floor" line)
  touchbench.csv      fork + touching 0..100% of the memory afterwards, by
                      the child and by the parent, plain and cow
  redis-bgsave.csv    Redis BGSAVE latest_fork_usec and request latency
                      during the save, plain and under cowpt-run
  mremapbench.csv     mremap relocation (vm.mremap_relocate_anon) off and
                      on: VMAs and time of buffers grown by moving, and the
                      cost per page of relocation against a plain move
  msharebench.csv     N processes map one 1 GiB region through msharefs
                      and as a plain MAP_SHARED memfd: page-table growth
                      (PageTables), page faults and time per N
  kvsnap.csv          kvsnap (the io_uring key-value server of this
                      directory): snapshot fork latency and request latency
                      during snapshots, plain and cow
  perf-NAME.csv       perf stat (task-clock, page-faults, context-switches,
                      cpu-migrations) of each benchmark process, in
                      perf's -x, format (the benchmark's own wall times are
                      in its CSV)
  guest-info.txt      date, kernel, CPUs, memory, cow_pte_mode
  vmstat-before.txt, vmstat-after.txt   the cow_pte_* counters

  --bin DIR     where forkbench and touchbench are (build/benchmarks)
  --out DIR     results directory (created; default \$COWPT_OUT/results,
                in a guest of tools/vm-run)
  --mode M      quick (default; about 15 minutes under TCG on 2 cores):
                  forkbench 64,256,1024,2048 MiB, touchbench 1024 MiB,
                  redis and kvsnap 1024 MiB, msharebench N = 1, 16, 64;
                  full: forkbench 64 MiB to 8 GiB (as far as the guest's
                  memory allows), touchbench 256 and 1024 MiB, redis 1, 2
                  and 4 GiB, kvsnap 1 and 4 GiB, msharebench N = 1, 16,
                  64, 256
  --sizes LIST  forkbench sizes instead of the mode's
  --reps N      repetitions per measurement (default: quick 5, full 7)
  --skip LIST   leave out some of: fork,thp,touch,redis,kvsnap,mremap,
                mshare
  --stock       this is the unpatched kernel: run only plain fork, the
                forkbench sizes and the THP control (forkbench-stock.csv,
                forkbench-stock-thp.csv), to compare with the plain forks
                of the cowpt kernel (a process that did not opt in)
  --plain-only TAG
                run only plain fork, the forkbench sizes and the THP
                control, into forkbench-TAG.csv and forkbench-TAG-thp.csv
                (TAG: letters, digits, '-'); on any kernel.  make
                bench-icount uses it to measure plain fork in the cowpt and
                the stock kernel in instruction-counted boots
  --thp-sizes LIST  THP control sizes instead of the mode's
  -h, --help    this text

Progress goes to stderr, one line per step.  Exit status: 0 if every
benchmark ran, 1 if one failed (the others still run), 2 on bad arguments.
EOF
}

bad_arg() {
	echo "$prog: $*" >&2
	echo "(try $prog --help)" >&2
	exit 2
}

bin='' out='' mode=quick sizes='' reps='' skip='' stock=0 plain_tag=''
thp_sizes_arg=''
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--stock) stock=1; shift; continue ;;
	--bin | --out | --mode | --sizes | --reps | --skip | --plain-only | --thp-sizes)
		[ $# -ge 2 ] || bad_arg "option '$1' needs an argument" ;;&
	--plain-only) plain_tag=$2 ;;
	--thp-sizes) thp_sizes_arg=$2 ;;
	--bin) bin=$2 ;;
	--out) out=$2 ;;
	--mode) mode=$2 ;;
	--sizes) sizes=$2 ;;
	--reps) reps=$2 ;;
	--skip) skip=$2 ;;
	*) bad_arg "unknown argument '$1'" ;;
	esac
	shift 2
done
[ -n "$out" ] || out=${COWPT_OUT:+$COWPT_OUT/results}
[ -n "$bin" ] && [ -n "$out" ] || bad_arg "--bin and --out are required"
for p in forkbench touchbench kvsnap mremapbench msharebench; do
	[ -x "$bin/$p" ] || bad_arg "no $bin/$p (make bench builds it)"
done
[[ $reps =~ ^([1-9][0-9]{0,3})?$ ]] || bad_arg "bad --reps '$reps'"
[[ $sizes =~ ^([0-9]+(,[0-9]+)*)?$ ]] || bad_arg "bad --sizes '$sizes'"
[[ $thp_sizes_arg =~ ^([0-9]+(,[0-9]+)*)?$ ]] || bad_arg "bad --thp-sizes '$thp_sizes_arg'"
[[ $plain_tag =~ ^[A-Za-z0-9-]*$ ]] || bad_arg "bad --plain-only '$plain_tag': letters, digits and '-'"
[ $stock = 0 ] || [ -z "$plain_tag" ] || bad_arg "--stock and --plain-only exclude each other"
names='(fork|thp|touch|redis|kvsnap|mremap|mshare)'
[[ $skip =~ ^($names(,$names)*)?$ ]] ||
	bad_arg "bad --skip '$skip': want a list of fork,thp,touch,redis,kvsnap,mremap,mshare"

# Memory a forkbench size may use: the region plus the child's copy of the
# page tables (2 MiB per GiB) must leave room for the rest of the guest.
mem_mib=$(awk '$1 == "MemTotal:" { print int($2 / 1024) }' /proc/meminfo)
case $mode in
quick)
	: "${sizes:=64,256,1024,2048}"
	: "${reps:=5}"
	thp_sizes=1024 touch_sizes=1024 redis_sizes=1024 redis_reps=3
	kv_sizes=1024 mremap_args='--buffers 100 --rounds 100'
	mshare_args='--procs 1,16,64' ;;
full)
	if [ -z "$sizes" ]; then
		sizes=64
		for s in 128 256 512 1024 2048 4096 8192; do
			[ $((s + s / 8 + 768)) -le "$mem_mib" ] && sizes=$sizes,$s
		done
	fi
	: "${reps:=7}"
	thp_sizes=1024,4096 touch_sizes=256,1024 redis_sizes=1024,2048,4096
	redis_reps=3 kv_sizes=1024,4096
	mremap_args='--buffers 1000 --rounds 20 --cost-sizes 64,1024,16384,65536'
	mshare_args='--procs 1,16,64,256' ;;
*) bad_arg "bad --mode '$mode': want quick or full" ;;
esac
[ -z "$thp_sizes_arg" ] || thp_sizes=$thp_sizes_arg
for s in ${thp_sizes//,/ }; do
	[ $((s + s / 8 + 512)) -le "$mem_mib" ] ||
		bad_arg "THP size $s MiB does not fit in the guest's $mem_mib MiB"
done
for s in ${sizes//,/ }; do
	[ $((s + s / 8 + 512)) -le "$mem_mib" ] ||
		bad_arg "size $s MiB does not fit in the guest's $mem_mib MiB"
done

mkdir -p "$out"
# Every benchmark writes its logs and CSVs into a tmpfs directory that is
# copied to OUT at the end.  OUT is on 9p in the guest, and a write to a 9p
# file pins the writer's pages (netfs direct I/O): that sets MMF_HAS_PINNED
# on the benchmark's mm, after which none of its forks share PTE tables.
dest=$out
out=$(mktemp -d "${TMPDIR:-/tmp}/cowpt-bench.XXXXXX")
trap 'cp -R "$out"/. "$dest"/ && rm -rf "$out"' EXIT
failed=0
step=0
nsteps=0
skipped() { [[ ",$skip," == *",$1,"* ]]; }
progress() {
	step=$((step + 1))
	echo "bench: [$step/$nsteps] $(date -u +%H:%M:%S) $*" >&2
}

perf_events=task-clock,page-faults,context-switches,cpu-migrations
# What of a benchmark's output is shown while it runs: its result lines,
# and the per-run lines of the long ones (Redis calibration and runs).
progress_re='^(fork|touch|redis|kvsnap|grow|cost|mremap|mshare|plain) |^# calibration |^[0-9]+ MiB [a-z]+ rep [0-9]+:'
# run NAME CMD...: CMD under perf stat, its output in OUT/NAME.log and its
# progress lines on stderr as they come
run() {
	local name=$1 rc

	shift
	set +e
	perf stat -x, -e "$perf_events" -o "$out/perf-$name.csv" -- "$@" 2>&1 |
		tee "$out/$name.log" | grep --line-buffered -E "$progress_re" >&2
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" != 0 ]; then
		echo "bench: $name failed (exit $rc); its log:" >&2
		tail -n 20 "$out/$name.log" >&2
		failed=1
	fi
}

# merge_csv PATTERN DEST: the CSVs matching PATTERN, one header, into DEST
merge_csv() {
	local f first=1

	: >"$2"
	for f in $1; do
		[ -f "$f" ] || continue
		if [ $first = 1 ]; then
			cat "$f" >>"$2"
			first=0
		else
			tail -n +2 "$f" >>"$2"
		fi
	done
}

fb_modes=plain,cow tag=''
if [ $stock = 1 ]; then
	if [ -e /proc/sys/vm/cow_pte_mode ]; then
		bad_arg "--stock, but this kernel has cowpt (/proc/sys/vm/cow_pte_mode)"
	fi
	plain_tag=stock
fi
if [ -n "$plain_tag" ]; then
	if [ "$(cat /proc/sys/vm/cow_pte_mode 2>/dev/null)" = always ]; then
		bad_arg "--plain-only: cow_pte_mode is always, plain forks would share"
	fi
	fb_modes=plain tag=-$plain_tag
	skip=${skip:+$skip,}touch,redis,kvsnap,mremap,mshare
fi

skipped fork || nsteps=$((nsteps + 1 + $(echo "${sizes//,/ }" | wc -w)))
skipped thp || nsteps=$((nsteps + $(echo "${thp_sizes//,/ }" | wc -w)))
skipped touch || nsteps=$((nsteps + $(echo "${touch_sizes//,/ }" | wc -w)))
skipped redis || nsteps=$((nsteps + 1))
skipped kvsnap || nsteps=$((nsteps + 2 * $(echo "${kv_sizes//,/ }" | wc -w)))
skipped mremap || nsteps=$((nsteps + 1))
skipped mshare || nsteps=$((nsteps + 1))

"$here/sysinfo.sh" >"$out/guest-info$tag.txt"
echo "bench_mode: $mode" >>"$out/guest-info$tag.txt"
grep '^cow_pte' /proc/vmstat >"$out/vmstat-before.txt" || true

if ! skipped fork; then
	for s in ${sizes//,/ }; do
		progress "forkbench$tag $s MiB (4 KiB pages), $reps reps"
		run "forkbench$tag-$s" "$bin/forkbench" --modes $fb_modes \
			--sizes "$s" --reps "$reps" --csv "$out/forkbench$tag-$s.csv"
	done
	merge_csv "$(for s in ${sizes//,/ }; do printf '%s ' "$out/forkbench$tag-$s.csv"; done)" \
		"$out/forkbench$tag.csv"
	# The floor a CoW fork is held to: a plain fork of a 1 MiB process.
	# Its median over the few reps of a size swung from 0.75 to 1.6 ms
	# between boots (min 0.76 in both); it is cheap, so take 7 times as
	# many.
	progress "forkbench$tag floor: plain fork of 1 MiB, $((reps * 7)) reps"
	run "forkbench$tag-floor" "$bin/forkbench" --modes plain --sizes 1 \
		--reps $((reps * 7)) --csv "$out/forkbench$tag-floor.csv"
fi
if ! skipped thp; then
	for s in ${thp_sizes//,/ }; do
		progress "forkbench$tag $s MiB THP-backed (control), $reps reps"
		run "forkbench$tag-thp-$s" "$bin/forkbench" --modes $fb_modes \
			--thp --sizes "$s" --reps "$reps" \
			--csv "$out/forkbench$tag-thp-$s.csv"
	done
	merge_csv "$(for s in ${thp_sizes//,/ }; do printf '%s ' "$out/forkbench$tag-thp-$s.csv"; done)" \
		"$out/forkbench$tag-thp.csv"
fi
if ! skipped touch; then
	for s in ${touch_sizes//,/ }; do
		progress "touchbench $s MiB, 0/1/10/50/100% by child and parent, $reps reps"
		run "touchbench-$s" "$bin/touchbench" --sizes "$s" --reps "$reps" \
			--csv "$out/touchbench-$s.csv"
	done
	merge_csv "$(for s in ${touch_sizes//,/ }; do printf '%s ' "$out/touchbench-$s.csv"; done)" \
		"$out/touchbench.csv"
fi
if ! skipped redis; then
	progress "redis BGSAVE at $redis_sizes MiB, $redis_reps reps"
	run redis-bgsave "$here/redis-bgsave.sh" --sizes "$redis_sizes" \
		--reps "$redis_reps" --cowpt-run "$bin/../bin/cowpt-run" \
		--csv "$out/redis-bgsave.csv"
fi

if ! skipped kvsnap; then
	for s in ${kv_sizes//,/ }; do
		for m in plain cow; do
			progress "kvsnap $s MiB $m: 4 clients, 50% SET, 5 snapshots"
			run "kvsnap-$s-$m" "$bin/kvsnap" --mode $m --mib "$s" \
				--snapshots 5 --csv "$out/kvsnap-$s-$m.csv"
		done
	done
	merge_csv "$(for s in ${kv_sizes//,/ }; do printf '%s ' "$out/kvsnap-$s-plain.csv" "$out/kvsnap-$s-cow.csv"; done)" \
		"$out/kvsnap.csv"
fi

if ! skipped mremap; then
	progress "mremapbench: buffers grown by moving, relocation off and on ($mremap_args)"
	# shellcheck disable=SC2086 # the mode's options, split on purpose
	run mremapbench "$bin/mremapbench" $mremap_args --csv "$out/mremapbench.csv"
fi

if ! skipped mshare; then
	progress "msharebench: N processes map a 1 GiB region, msharefs and plain ($mshare_args)"
	# shellcheck disable=SC2086 # the mode's options, split on purpose
	run msharebench "$bin/msharebench" $mshare_args --csv "$out/msharebench.csv"
fi

grep '^cow_pte' /proc/vmstat >"$out/vmstat-after.txt" || true
exit $failed
