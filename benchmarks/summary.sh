#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# summary.sh - RESULTS_DIR/summary.md from the benchmark CSVs: the run's
# date and guest kernel (from guest-info.txt, written in the guest by
# sysinfo.sh), the host machine, and one markdown table per benchmark
# (forkbench, touchbench, redis-bgsave), with the plots of plot.sh if they
# exist.  A missing CSV is reported in place of its table.

here=$(cd "$(dirname "$0")" && pwd)
. "$here/report-lib.sh"

usage() {
	cat <<EOF
usage: $prog [RESULTS_DIR]

Write RESULTS_DIR/summary.md (default RESULTS_DIR: $(cd "$here/.." && pwd)/results):
  - date of the summary and of the run, guest kernel (uname -r), guest CPUs,
    memory and cow_pte_mode, from RESULTS_DIR/guest-info.txt (benchmarks/
    sysinfo.sh run in the guest), and the host: nproc, CPU model, memory
  - forkbench.csv: fork call and fork+exit+wait medians per size, plain,
    cow, ratio plain/cow
  - touchbench.csv: fork and fork + touch total medians per size, toucher,
    pattern and touch percentage, ratio cow/plain total (goal: at most 1.1
    at 100%), the touch phase's page faults and CPU time (perf software
    events), the child's VmPTE and the PageTables change
  - icount-vs-stock.csv (written by icount-compare.sh from the
    forkbench-icount-*.csv of make bench-icount): plain fork, cowpt
    kernel vs stock, instruction-counted
  - the performance goals, met or not (goals.sh --markdown)
  - redis-bgsave.csv ("median" rows): latest_fork_usec plain, cow, ratio
    plain/cow, SET and GET p99 during BGSAVE, BGSAVE time, cow_pte_shared,
    tables copied during the save
  - the PNG plots of plot.sh that exist in RESULTS_DIR
A missing CSV is noted in place of its table.  Exit status: 0 written, 1 if
a CSV lacks a column or none exists, 2 on bad arguments.
EOF
}

results_arg "$@"
found=0 failed=0

# pivot NKEYS NGROUP KEY_LABELS SPEC: a markdown table from csv_select lines
# "KEY... GROUP... VALUE...": one row per key (in order of appearance), one
# column per SPEC item (';'-separated): "LABEL=GROUP:I" is value I of that
# group (GROUP: its columns joined by '/'), "LABEL=ratio:G1:I1:G2:I2" is
# value I1 of G1 over value I2 of G2.  Missing cells are "-".
pivot() {
	awk -v nkeys="$1" -v ngroup="$2" -v klabels="$3" -v spec="$4" '
	function cell(key, d,    a) {
		split(d, a, ":")
		if (a[1] != "ratio")
			return (key, a[1], a[2]) in v ? v[key, a[1], a[2]] : "-"
		if (!((key, a[2], a[3]) in v) || !((key, a[4], a[5]) in v) ||
		    v[key, a[2], a[3]] == "NA" || v[key, a[4], a[5]] + 0 == 0)
			return "-"
		return sprintf("%.2f", v[key, a[2], a[3]] / v[key, a[4], a[5]])
	}
	BEGIN {
		nk = split(klabels, kl, ";")
		nc = split(spec, sp, ";")
		head = "|"
		rule = "|"
		for (i = 1; i <= nk; i++) {
			head = head " " kl[i] " |"
			rule = rule "---|"
		}
		for (j = 1; j <= nc; j++) {
			eq = index(sp[j], "=")
			label[j] = substr(sp[j], 1, eq - 1)
			def[j] = substr(sp[j], eq + 1)
			head = head " " label[j] " |"
			rule = rule "--:|"
		}
	}
	{
		key = $1
		for (i = 2; i <= nkeys; i++)
			key = key " | " $i
		g = $(nkeys + 1)
		for (i = 2; i <= ngroup; i++)
			g = g "/" $(nkeys + i)
		if (!(key in seen)) {
			seen[key] = 1
			order[++n] = key
		}
		for (i = nkeys + ngroup + 1; i <= NF; i++)
			v[key, g, i - nkeys - ngroup] = $i
	}
	END {
		print head
		print rule
		for (r = 1; r <= n; r++) {
			line = "| " order[r] " |"
			for (j = 1; j <= nc; j++)
				line = line " " cell(order[r], def[j]) " |"
			print line
		}
	}'
}

# section TITLE CSV NOTE NKEYS NGROUP KEY_LABELS SPEC COND COLUMN... [-- PNG...]:
# a heading, NOTE, the pivot of the selected columns, the plots that exist
section() {
	local title=$1 csv=$results/$2 note=$3 nkeys=$4 ngroup=$5 klabels=$6 spec=$7 cond=$8
	local cols=() png

	shift 8
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		cols+=("$1")
		shift
	done
	[ $# = 0 ] || shift
	printf '\n## %s\n\n' "$title"
	if [ ! -f "$csv" ]; then
		printf '_Not run: no %s._\n' "${csv##*/}"
		echo "$prog: no $csv: skipping section \"$title\"" >&2
		return 0
	fi
	found=1
	printf '%s\n\n' "$note"
	if ! csv_select "$csv" 0 "${cols[@]}"; then
		printf '_%s lacks columns this summary needs._\n' "${csv##*/}"
		failed=1
		return 0
	fi
	csv_select "$csv" "$cond" "${cols[@]}" | pivot "$nkeys" "$ngroup" "$klabels" "$spec"
	for png in "$@"; do
		[ ! -f "$results/$png" ] || printf '\n![%s](%s)\n' "${png%.png}" "$png"
	done
}

# kv FILE KEY: the value of a "KEY: value" line of FILE, or "?"
kv() {
	sed -n "s/^$2: //p" "$1" 2>/dev/null | grep . || echo "?"
}

machine() {
	local guest=$results/guest-info.txt host=$tmp_info

	"$here/sysinfo.sh" >"$host"
	echo "# cowpt benchmark results"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| summary written | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
	if [ -f "$guest" ]; then
		echo "| benchmark run | $(kv "$guest" date) |"
		echo "| guest kernel (uname -r) | $(kv "$guest" kernel) |"
		echo "| guest | $(kv "$guest" nproc) CPUs, $(kv "$guest" memory), cow_pte_mode $(kv "$guest" cow_pte_mode) |"
	else
		echo "| guest kernel (uname -r) | unknown: no guest-info.txt in the results |"
		echo "$prog: no $guest: guest kernel unknown" >&2
	fi
	echo "| host | $(kv "$host" nproc) CPUs, $(kv "$host" cpu), $(kv "$host" memory) |"
}

# other_run NAME: a section published from a run of its own (make bench
# with the other steps skipped, its guest-info.txt kept as
# guest-info-NAME.txt) says so, as the header names the main run only.
other_run() {
	local info=$results/guest-info-$1.txt

	[ -f "$info" ] || return 0
	printf '\n_This section is from a run of its own: %s, guest kernel %s, %s CPUs, %s (guest-info-%s.txt)._\n' \
		"$(kv "$info" date)" "$(kv "$info" kernel)" "$(kv "$info" nproc)" \
		"$(kv "$info" memory)" "$1"
}

# perf_table: perf stat's software events of each benchmark process
# (perf-NAME.csv, perf stat -x, output: value,unit,event,...)
perf_table() {
	local f name

	printf '\n## perf stat, software events per benchmark process\n\n'
	set -- "$results"/perf-*.csv
	if [ ! -f "$1" ]; then
		printf '_Not run: no perf-*.csv._\n'
		return 0
	fi
	printf 'Whole process (setup, both modes and all repetitions): the wall times above are the measurement; these show where the CPU time and page faults went.\n\n'
	echo "| process | task-clock (ms) | page-faults | context-switches | cpu-migrations |"
	echo "|---|---|---|---|---|"
	for f in "$@"; do
		name=${f##*/perf-}
		name=${name%.csv}
		awk -F, -v name="$name" '
		$3 ~ /^task-clock/ { tc = sprintf("%.0f", $1) }
		$3 ~ /^page-faults/ { pf = $1 }
		$3 ~ /^context-switches/ { cs = $1 }
		$3 ~ /^cpu-migrations/ { cm = $1 }
		END { printf "| %s | %s | %s | %s | %s |\n", name, tc, pf, cs, cm }' "$f"
	done
}

# vs_stock COWPT_CSV STOCK_CSV DEST: the plain-mode rows of both forkbench
# CSVs, mode renamed to "cowpt" and "stock", into DEST
vs_stock() {
	awk -F, -v OFS=, -v stock="$2" '
	FNR == 1 { if (NR == 1) print; next }
	$2 == "plain" { $2 = FILENAME == stock ? "stock" : "cowpt"; print }' "$1" "$2" >"$3"
}

touch_pngs=()
for png in "$results"/touch-*.png; do
	[ ! -f "$png" ] || [ "$png" = "$results/touch-ratio.png" ] || touch_pngs+=("${png##*/}")
done
tmp_info=$(mktemp "${TMPDIR:-/tmp}/summary.XXXXXX")
trap 'rm -f "$tmp_info" "$results/summary.md.tmp"' EXIT
{
	machine
	printf '\n## Performance goals\n\nEach goal of the performance work (issue 14) against this run (benchmarks/goals.sh). Not benchmark goals, so not here: sharing that survives pins and the tracepoints, which make test checks (cow_pte_pinned, cow_pte_trace).\n\n'
	"$here/goals.sh" --markdown "$results" || failed=1
	section "Fork latency (forkbench)" forkbench.csv \
		"Medians in ms; ratio = plain / cow (fork call)." 1 2 "size (MiB)" \
		"plain fork=plain/fork:1;cow fork=cow/fork:1;plain/cow=ratio:plain/fork:1:cow/fork:1;plain fork+exit+wait=plain/fork_exit_wait:1;cow fork+exit+wait=cow/fork_exit_wait:1" \
		1 size_mib mode metric median_ms -- fork-latency.png
	section "THP-backed memory (forkbench --thp, a control)" forkbench-thp.csv \
		"PMD-mapped THPs have no PTE table to share: both modes copy the same PMD entries, so the ratio should be about 1. Medians in ms." 1 2 "size (MiB)" \
		"plain fork=plain/fork:1;cow fork=cow/fork:1;plain/cow=ratio:plain/fork:1:cow/fork:1;plain fork+exit+wait=plain/fork_exit_wait:1;cow fork+exit+wait=cow/fork_exit_wait:1" \
		1 size_mib mode metric median_ms
	for kind in "" -thp; do
		[ -f "$results/forkbench$kind.csv" ] && [ -f "$results/forkbench-stock$kind.csv" ] || continue
		vs_stock "$results/forkbench$kind.csv" "$results/forkbench-stock$kind.csv" \
			"$results/forkbench-vs-stock$kind.csv"
	done
	section "Plain fork, 4 KiB pages: cowpt kernel (not opted in) vs stock 6.12" forkbench-vs-stock.csv \
		"The same forkbench --modes plain in the bench kernel with the series (a process that did not opt in) and in the unpatched kernel built from the same source and config (make bench-stock). Medians in ms; cowpt/stock above 1 is a regression." 1 2 "size (MiB)" \
		"stock fork=stock/fork:1;cowpt fork=cowpt/fork:1;cowpt/stock=ratio:cowpt/fork:1:stock/fork:1;stock fork+exit+wait=stock/fork_exit_wait:1;cowpt fork+exit+wait=cowpt/fork_exit_wait:1;cowpt/stock (fork+exit+wait)=ratio:cowpt/fork_exit_wait:1:stock/fork_exit_wait:1" \
		1 size_mib mode metric median_ms
	section "Plain fork, THP-backed: cowpt kernel vs stock 6.12" forkbench-vs-stock-thp.csv \
		"As above, with MADV_HUGEPAGE memory." 1 2 "size (MiB)" \
		"stock fork=stock/fork:1;cowpt fork=cowpt/fork:1;cowpt/stock=ratio:cowpt/fork:1:stock/fork:1;stock fork+exit+wait=stock/fork_exit_wait:1;cowpt fork+exit+wait=cowpt/fork_exit_wait:1;cowpt/stock (fork+exit+wait)=ratio:cowpt/fork_exit_wait:1:stock/fork_exit_wait:1" \
		1 size_mib mode metric median_ms
	if compgen -G "$results/forkbench-icount-*.csv" >/dev/null; then
		"$here/icount-compare.sh" "$results" >/dev/null || failed=1
	fi
	section "Plain fork, cowpt kernel vs stock 6.12, instruction-counted (make bench-icount)" icount-vs-stock.csv \
		"Boots under QEMU -icount shift=0 (1 vCPU), alternating stock and cowpt: guest time counts guest instructions (1 ns each), so this compares the work fork does, not host wall time; it does not see cache or TLB effects. Per kernel: mean over boots of each boot's median (ms), spread = (max - min) / mean of the boot medians, %. cowpt/stock above 1 is a regression; the goal is within 1%." \
		3 1 "pages;size (MiB);metric" \
		"stock=icount:1;stock spread %=icount:2;cowpt=icount:3;cowpt spread %=icount:4;cowpt/stock=icount:5;boots (stock+cowpt)=icount:6" \
		1 pages size_mib metric group stock_ms stock_spread_pct cowpt_ms cowpt_spread_pct cowpt_over_stock boots
	perf_table
	section "Deferred cost: fork + writes after it (touchbench)" touchbench.csv \
		"Medians in ms; ratio = cow / plain total (fork + touch), the goal is at most 1.1 at 100%. VmPTE: the child's, after the touch phase; PageTables: system-wide change, kB. faults, touch CPU: perf software events (page-faults, task-clock in ms) of the process that wrote, touch phase only." \
		4 1 "size (MiB);who writes;pattern;touch %" \
		"plain fork=plain:1;cow fork=cow:1;plain total=plain:2;cow total=cow:2;cow/plain=ratio:cow:2:plain:2;plain faults=plain:5;cow faults=cow:5;plain touch CPU=plain:6;cow touch CPU=cow:6;plain VmPTE=plain:3;cow VmPTE=cow:3;plain PageTables=plain:4;cow PageTables=cow:4" \
		1 size_mib who pattern touch_pct mode fork_median_ms total_median_ms child_vmpte_kb sys_pagetables_kb touch_faults touch_cpu_ms \
		-- "${touch_pngs[@]}" touch-ratio.png
	section "Redis BGSAVE (redis-bgsave.sh)" redis-bgsave.csv \
		"Medians over the runs: fork = latest_fork_usec (us), ratio = plain / cow; p99 (ms) of the SET and GET runs during BGSAVE; BGSAVE in s; cow_pte_shared, copied: /proc/vmstat deltas during the save of cow_pte_shared and of the cow_pte_break_* counters summed, the table copies of the server and the save child (a table both copy counts twice; NA: kernel without cowpt)." \
		1 1 "size (MiB)" \
		"plain fork=plain:1;cow fork=cow:1;plain/cow=ratio:plain:1:cow:1;plain SET p99=plain:3;cow SET p99=cow:3;plain GET p99=plain:4;cow GET p99=cow:4;plain BGSAVE=plain:2;cow BGSAVE=cow:2;plain cow_pte_shared=plain:5;cow cow_pte_shared=cow:5;cow copied=cow:6" \
		'f["rep"] == "median"' size_mib mode fork_usec bgsave_s set_p99_ms get_p99_ms cow_pte_shared cow_pte_copied \
		-- redis-fork.png redis-p99.png
	section "kvsnap: io_uring key-value server snapshotting from a forked child" kvsnap.csv \
		"4 closed-loop clients, 50% SETs of 1 KiB values, 5 snapshots per run (the child writes the whole store to a file). fork: the snapshot fork call in the serving process (median, us); request latency (us) of requests sent during a snapshot and outside them; cow_pte_shared: /proc/vmstat delta of the run." \
		1 1 "size (MiB)" \
		"plain fork=plain:1;cow fork=cow:1;plain/cow=ratio:plain:1:cow:1;plain p99 during=plain:3;cow p99 during=cow:3;plain max during=plain:4;cow max during=cow:4;plain p99 outside=plain:5;cow p99 outside=cow:5;plain snapshot ms=plain:2;cow snapshot ms=cow:2;cow cow_pte_shared=cow:6" \
		1 mib mode fork_median_us snap_median_ms during_p99_us during_max_us outside_p99_us cow_pte_shared \
		-- kvsnap-fork.png kvsnap-latency.png
	section "mremap relocation (mremapbench)" mremapbench.csv \
		"grow: buffers of faulted memory grown by moving each into a fresh area, one page larger per round (size: at the start); VMAs of the process at the end and at most, beyond those before; time in mremap() per moved MiB. cost: a region moved back and forth between places nothing merges with, every move relocated (mode 2) or none; ns per page per move. off = vm.mremap_relocate_anon 0, on = 1 (grow) or 2 (cost), same boot." \
		2 1 "test;size (KiB)" \
		"VMAs off=off:1;VMAs on=on:1;max off=off:2;max on=on:2;ms/MiB off=off:4;ms/MiB on=on:4;on/off=ratio:on:4:off:4;ns/page off=off:5;ns/page on=on:5;on/off ns=ratio:on:5:off:5" \
		1 test size_kib relocation vmas_end vmas_max ms ms_per_mib ns_per_page
	section "msharefs: one region mapped by N processes (msharebench)" msharebench.csv \
		"N processes map one region of 4 KiB pages: the first writes every page, the others read every page, all still mapped when PageTables (/proc/meminfo, system-wide, kB) is read again. plain: a MAP_SHARED memfd; mshare: an msharefs region. Faults: getrusage, per process other than the first; ms: wall time of the first, and of the others together. Same boot." \
		2 1 "procs;MiB" \
		"plain PageTables=plain:1;mshare PageTables=mshare:1;plain/mshare=ratio:plain:1:mshare:1;plain faults/other=plain:2;mshare faults/other=mshare:2;plain first ms=plain:3;mshare first ms=mshare:3;plain others ms=plain:4;mshare others ms=mshare:4" \
		1 procs mib way pagetables_kib faults_per_other first_ms others_ms \
		-- mshare-pagetables.png
	other_run msharebench
} >"$results/summary.md.tmp"
if [ $found = 0 ]; then
	echo "$prog: no forkbench.csv, touchbench.csv or redis-bgsave.csv in $results" >&2
	exit 1
fi
mv "$results/summary.md.tmp" "$results/summary.md"
echo "$prog: wrote $results/summary.md"
exit $failed
