#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# goals.sh - the performance goals of the CoW page tables, each checked
# against the CSVs of one make bench run: what was measured, the target,
# and whether it was met.  A goal whose CSV (or column) the run lacks reads
# "not run"; it is never counted as met.

here=$(cd "$(dirname "$0")" && pwd)
. "$here/report-lib.sh"

usage() {
	cat <<EOF
usage: $prog [--markdown] [RESULTS_DIR]

One line per goal, from the CSVs in RESULTS_DIR (default $(cd "$here/.." && pwd)/results):
  goal: NAME: MEASURED (target TARGET): met | NOT met | not run
--markdown writes the same as a markdown table (summary.md's).

The goals (issue 14; ratios from one boot, so from one run):
  fork floor     forkbench-floor.csv, forkbench.csv: a CoW fork of 1 GiB
                 at most 1.25x, of 8 GiB at most 1.5x a plain fork of a
                 1 MiB process (the fork call's medians)
  kvsnap         kvsnap.csv, per size: request p99 during snapshots, CoW
                 at most plain's; and CoW's at most 1.2x its p99 outside
                 snapshots (plain's own ratio shown beside it)
  touchbench     touchbench.csv, per size: the worst cow/plain total
                 (fork + touch) of the 1% spread writes by parent or
                 child at most 1.2; at 100% (any writer, any pattern) 1.1
  redis fork     redis-bgsave.csv: latest_fork_usec at 4 GiB, plain/cow
                 at least 100
  redis copies   redis-bgsave.csv, per size: table copies during a BGSAVE
                 (cow_pte_copied, the server's and the save child's) at
                 most 10% of the tables its fork shared ("few"; a stock
                 fork copies them all)
Exit status: 0 (whether goals are met or not), 1 if no CSV exists, 2 on
bad arguments.
EOF
}

markdown=0
if [ "${1-}" = --markdown ]; then
	markdown=1
	shift
fi
results_arg "$@"

rows=()
# goal NAME MEASURED TARGET VERDICT
goal() {
	rows+=("$1"$'\t'"$2"$'\t'"$3"$'\t'"$4")
}

# verdict VALUE OP LIMIT: "met" or "NOT met" (OP: le or ge)
verdict() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = op == "le" ? v + 0 <= l + 0 : v + 0 >= l + 0
		print ok ? "met" : "NOT met"
	}'
}

# sel FILE COND COLUMN...: csv_select, nothing (and no message) if FILE or
# a column is missing
sel() {
	[ -f "$1" ] || return 0
	csv_select "$@" 2>/dev/null || true
}

# ---------------------------------------------------------------- fork floor
fork_median() {	# FILE SIZE MODE
	sel "$1" "f[\"size_mib\"] == $2 && f[\"mode\"] == \"$3\" && f[\"metric\"] == \"fork\"" \
		median_ms | head -n 1
}
floor=$(fork_median "$results/forkbench-floor.csv" 1 plain)
for s in 1024:1.25 8192:1.5; do
	size=${s%:*} limit=${s#*:}
	name="fork floor, cow $((size / 1024)) GiB / plain 1 MiB"
	c=$(fork_median "$results/forkbench.csv" "$size" cow)
	if [ -z "$floor" ] || [ -z "$c" ]; then
		goal "$name" "-" "<= ${limit}x" "not run"
		continue
	fi
	r=$(awk -v c="$c" -v p="$floor" 'BEGIN { printf "%.2f", c / p }')
	goal "$name" "$c / $floor ms = ${r}x" "<= ${limit}x" "$(verdict "$r" le "$limit")"
done

# ---------------------------------------------------------------- kvsnap
kv=$results/kvsnap.csv
ms() {	# US: in ms
	awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'
}
for size in $(sel "$kv" 1 mib | awk '!seen[$0]++'); do
	read -r pd po < <(sel "$kv" "f[\"mib\"] == $size && f[\"mode\"] == \"plain\"" during_p99_us outside_p99_us) || pd=
	read -r cd co < <(sel "$kv" "f[\"mib\"] == $size && f[\"mode\"] == \"cow\"" during_p99_us outside_p99_us) || cd=
	name="kvsnap $size MiB, p99 during snapshots, cow / plain"
	if [ -z "$pd" ] || [ -z "$cd" ]; then
		goal "$name" "-" "<= 1.00x" "not run"
	else
		r=$(awk -v c="$cd" -v p="$pd" 'BEGIN { printf "%.2f", c / p }')
		goal "$name" "$(ms "$cd") / $(ms "$pd") ms = ${r}x" "<= 1.00x" "$(verdict "$r" le 1)"
	fi
	name="kvsnap $size MiB, cow p99 during / outside snapshots"
	if [ -z "$cd" ]; then
		goal "$name" "-" "<= 1.20x" "not run"
	else
		r=$(awk -v c="$cd" -v o="$co" 'BEGIN { printf "%.2f", c / o }')
		# plain's own ratio: what the snapshot costs without CoW tables
		plain=
		[ -z "$pd" ] || plain=$(awk -v d="$pd" -v o="$po" 'BEGIN { printf " (plain %.2fx)", d / o }')
		goal "$name" "$(ms "$cd") / $(ms "$co") ms = ${r}x$plain" "<= 1.20x" "$(verdict "$r" le 1.2)"
	fi
done
if [ ! -f "$kv" ]; then
	goal "kvsnap, p99 during snapshots" "-" "cow <= plain, <= 1.2x outside" "not run"
fi

# ---------------------------------------------------------------- touchbench
tb=$results/touchbench.csv
# worst SIZE COND: "ratio who pattern pct" of the largest cow/plain total
worst() {
	sel "$tb" "f[\"size_mib\"] == $1 && ($2)" who pattern touch_pct mode total_median_ms |
		awk '{ k = $1 " " $2 " " $3; v[k, $4] = $5; keys[k] = 1 }
		END {
			best = -1
			for (k in keys)
				if (v[k, "plain"] > 0 && (k, "cow") in v && v[k, "cow"] / v[k, "plain"] > best) {
					best = v[k, "cow"] / v[k, "plain"]
					bk = k
				}
			if (best >= 0)
				printf "%.2f %s\n", best, bk
		}'
}
# touch_goal SIZE WHAT COND LIMIT
touch_goal() {
	local name="touchbench $1 MiB, worst cow/plain total, $2 writes" r who pattern

	read -r r who pattern _ < <(worst "$1" "$3") || r=
	if [ -z "$r" ]; then
		goal "$name" "-" "<= $4" "not run"
		return
	fi
	goal "$name" "$r ($who, $pattern)" "<= $4" "$(verdict "$r" le "$4")"
}
for size in $(sel "$tb" 1 size_mib | awk '!seen[$0]++'); do
	touch_goal "$size" 1% 'f["pattern"] == "spread" && f["touch_pct"] == 1' 1.2
	touch_goal "$size" 100% 'f["touch_pct"] == 100' 1.1
done
[ -f "$tb" ] || goal "touchbench, worst cow/plain total" "-" "<= 1.2 at 1%, <= 1.1 at 100%" "not run"

# ---------------------------------------------------------------- redis
rb=$results/redis-bgsave.csv
read -r pf < <(sel "$rb" 'f["rep"] == "median" && f["size_mib"] == 4096 && f["mode"] == "plain"' fork_usec) || pf=
read -r cf < <(sel "$rb" 'f["rep"] == "median" && f["size_mib"] == 4096 && f["mode"] == "cow"' fork_usec) || cf=
if [ -n "$pf" ] && [ -n "$cf" ]; then
	r=$(awk -v p="$pf" -v c="$cf" 'BEGIN { printf "%.1f", p / c }')
	goal "redis 4 GiB latest_fork_usec, plain / cow" "$pf / $cf us = ${r}x" ">= 100x" "$(verdict "$r" ge 100)"
else
	goal "redis 4 GiB latest_fork_usec, plain / cow" "-" ">= 100x" "not run"
fi
copies=$(sel "$rb" 'f["rep"] == "median" && f["mode"] == "cow"' size_mib cow_pte_shared cow_pte_copied)
if [ -z "$copies" ]; then
	goal "redis BGSAVE, table copies / tables shared" "-" "<= 10%" "not run"
fi
while read -r size shared copied; do
	[ -n "$size" ] || continue
	if [ "$shared" = NA ] || [ "$copied" = NA ] || [ "$shared" -le 0 ] 2>/dev/null; then
		goal "redis $size MiB BGSAVE, table copies / tables shared" "-" "<= 10%" "not run"
		continue
	fi
	pct=$(awk -v c="$copied" -v s="$shared" 'BEGIN { printf "%.0f", 100 * c / s }')
	goal "redis $size MiB BGSAVE, table copies / tables shared" "$copied / $shared = $pct%" \
		"<= 10%" "$(verdict "$pct" le 10)"
done <<<"$copies"

if [ ! -f "$results/forkbench.csv" ] && [ ! -f "$kv" ] && [ ! -f "$tb" ] && [ ! -f "$rb" ]; then
	echo "$prog: no forkbench.csv, kvsnap.csv, touchbench.csv or redis-bgsave.csv in $results" >&2
	exit 1
fi

if [ $markdown = 1 ]; then
	echo "| goal | measured | target | |"
	echo "|---|--:|--:|---|"
	for row in "${rows[@]}"; do
		IFS=$'\t' read -r n m t v <<<"$row"
		echo "| $n | $m | $t | $v |"
	done
else
	for row in "${rows[@]}"; do
		IFS=$'\t' read -r n m t v <<<"$row"
		echo "goal: $n: $m (target $t): $v"
	done
fi
