#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# icount-compare.sh - plain fork in the cowpt kernel against the stock
# kernel, from the instruction-counted boots of "make bench-icount".

here=$(cd "$(dirname "$0")" && pwd)
. "$here/report-lib.sh"

usage() {
	cat <<EOF
usage: $prog [RESULTS_DIR]

Compare plain fork in the cowpt kernel (a process that did not opt in)
with the unpatched kernel, from the forkbench CSVs that make bench-icount
writes into RESULTS_DIR (default $(cd "$here/.." && pwd)/results):
  forkbench-icount-KERNEL-BOOT.csv      4 KiB pages
  forkbench-icount-KERNEL-BOOT-thp.csv  THP-backed
KERNEL is stock or cowpt, BOOT the boot's number.  The boots ran under
QEMU with -icount (tools/vm-run --icount), where guest time is a count of
guest instructions: the medians are instruction counts in ns units (2^SHIFT
ns per instruction), deterministic up to interrupt timing, so boots of
different kernels can be compared to a fraction of a percent, which wall
time under TCG cannot do.

For each memory kind, size and metric (fork, fork_exit_wait): the mean
over boots of each boot's median, for each kernel; the spread of the boot
medians ((max - min) / mean, percent), and cowpt / stock.  Writes
RESULTS_DIR/icount-vs-stock.csv:
  pages,size_mib,metric,group,stock_ms,stock_spread_pct,cowpt_ms,
  cowpt_spread_pct,cowpt_over_stock,boots
(one line; group is always "icount", for summary.sh) and prints one line
per size and kind:
  icount fork SIZE MiB PAGES: stock S, cowpt C, cowpt/stock R (spread stock X%, cowpt Y%)
Exit status: 0, 1 if a kernel has no boot or the kernels' boots do not
cover the same sizes, 2 on bad arguments.
EOF
}

results_arg "$@"
shopt -s nullglob
# 4 KiB pages first, then THP, for the order of the table
files=()
for f in "$results"/forkbench-icount-stock-*.csv "$results"/forkbench-icount-cowpt-*.csv; do
	[[ $f == *-thp.csv ]] || files+=("$f")
done
for f in "$results"/forkbench-icount-stock-*-thp.csv "$results"/forkbench-icount-cowpt-*-thp.csv; do
	files+=("$f")
done
[ ${#files[@]} -gt 0 ] || { echo "$prog: no forkbench-icount-*.csv in $results" >&2; exit 1; }

awk -F, -v OFS=, -v out="$results/icount-vs-stock.csv" '
FNR == 1 {
	n = split(FILENAME, p, "/")
	name = p[n]
	sub(/^forkbench-icount-/, "", name)
	sub(/\.csv$/, "", name)
	pages = name ~ /-thp$/ ? "thp" : "4k"
	sub(/-thp$/, "", name)
	split(name, kb, "-")
	kernel = kb[1]
	boot = kb[2]
	next
}
$2 == "plain" {
	k = pages SUBSEP $1 SUBSEP $3
	if (!(k in seen)) {
		seen[k] = 1
		order[++nk] = k
	}
	v[k, kernel, ++cnt[k, kernel]] = $4
	boots[kernel, boot] = 1
}
function stat(k, kernel,    i, c, sum, lo, hi) {
	c = cnt[k, kernel]
	if (!c)
		return 0
	lo = hi = v[k, kernel, 1]
	for (i = 1; i <= c; i++) {
		sum += v[k, kernel, i]
		if (v[k, kernel, i] < lo) lo = v[k, kernel, i]
		if (v[k, kernel, i] > hi) hi = v[k, kernel, i]
	}
	mean[kernel] = sum / c
	spread[kernel] = 100 * (hi - lo) / mean[kernel]
	return 1
}
END {
	print "pages,size_mib,metric,group,stock_ms,stock_spread_pct,cowpt_ms,cowpt_spread_pct,cowpt_over_stock,boots" >out
	bad = 0
	for (i = 1; i <= nk; i++) {
		k = order[i]
		split(k, f, SUBSEP)
		if (!stat(k, "stock") || !stat(k, "cowpt")) {
			printf "icount-compare: %s %s MiB %s: only one kernel has it\n", f[1], f[2], f[3] >"/dev/stderr"
			bad = 1
			continue
		}
		r = mean["cowpt"] / mean["stock"]
		printf "%s,%s,%s,icount,%.3f,%.2f,%.3f,%.2f,%.4f,%d+%d\n", f[1], f[2], f[3],
			mean["stock"], spread["stock"], mean["cowpt"], spread["cowpt"], r,
			cnt[k, "stock"], cnt[k, "cowpt"] >out
		if (f[3] == "fork")
			printf "icount fork %s MiB %s: stock %.3f, cowpt %.3f, cowpt/stock %.4f (spread stock %.2f%%, cowpt %.2f%%)\n",
				f[2], f[1], mean["stock"], mean["cowpt"], r, spread["stock"], spread["cowpt"]
	}
	exit bad
}' "${files[@]}"
