#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# plot.sh - PNG plots (gnuplot) of the benchmark CSVs in a results directory:
#   fork-latency.png          forkbench.csv: fork latency vs size, log-log
#   touch-SIZE-PATTERN.png    touchbench.csv: fork + touch total vs touch %
#   touch-ratio.png           touchbench.csv: cow/plain total vs touch %
#   redis-fork.png            redis-bgsave.csv: latest_fork_usec vs size
#   redis-p99.png             redis-bgsave.csv: p99 during BGSAVE vs size
#   kvsnap-fork.png           kvsnap.csv: snapshot fork latency vs size
#   kvsnap-latency.png        kvsnap.csv: request p99 during/outside snapshots
#   mshare-pagetables.png     msharebench.csv: page-table memory vs processes
# A missing CSV skips its plots, with a message.

here=$(cd "$(dirname "$0")" && pwd)
. "$here/report-lib.sh"

usage() {
	cat <<EOF
usage: $prog [RESULTS_DIR]

Plot the benchmark CSVs of RESULTS_DIR (default $(cd "$here/.." && pwd)/results)
into PNG files in the same directory, with gnuplot (pngcairo if available,
else png):
  forkbench.csv     -> fork-latency.png (fork call and fork+exit+wait
                       medians vs size, plain and cow, log-log)
  touchbench.csv    -> touch-SIZE-PATTERN.png (fork + touch total vs touch
                       percentage, per toucher and mode, min-max bars) and
                       touch-ratio.png (cow/plain total vs touch percentage)
  redis-bgsave.csv  -> redis-fork.png (latest_fork_usec vs size) and
                       redis-p99.png (SET and GET p99 during BGSAVE vs size),
                       from its "median" rows
  kvsnap.csv        -> kvsnap-fork.png (snapshot fork median vs size) and
                       kvsnap-latency.png (request p99 during and outside
                       snapshots vs size)
  msharebench.csv   -> mshare-pagetables.png (PageTables growth vs the
                       number of processes, msharefs and plain, log-log)
A missing CSV skips its plots, with a message.  Exit status: 0 if every
plot of the CSVs found was made, 1 if none was found or one failed, 2 on
bad arguments or without gnuplot.
EOF
}

results_arg "$@"
command -v gnuplot >/dev/null || { echo "$prog: gnuplot not installed (apt-get install gnuplot-nox)" >&2; exit 2; }
if gnuplot -e 'set terminal' 2>&1 | grep -qw pngcairo; then
	terminal="pngcairo size 960,640 noenhanced"
else
	terminal="png size 960,640 noenhanced"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
found=0 failed=0

declare -A color=([plain]="#0060ad" [cow]="#dd181f" [mshare]="#dd181f")
declare -A dash=([child]=1 [parent]=2)

# have CSV WHAT COLUMN...: CSV exists and has the columns, else say why WHAT
# is skipped (a CSV without the columns is a failure)
have() {
	local csv=$1 what=$2

	shift 2
	if [ ! -f "$csv" ]; then
		echo "$prog: no $csv: skipping $what"
		return 1
	fi
	found=1
	csv_select "$csv" 0 "$@" || {
		echo "$prog: skipping $what" >&2
		failed=1
		return 1
	}
}

# series NAME CSV COND COLUMN...: the rows as data file $tmp/NAME.dat,
# sorted by the first column; false if there are none
series() {
	local name=$1 csv=$2 cond=$3

	shift 3
	csv_select "$csv" "$cond" "$@" | sort -g >"$tmp/$name.dat"
	[ -s "$tmp/$name.dat" ]
}

# gp PNG SETTINGS CLAUSE...: plot the clauses (if any) into RESULTS/PNG
gp() {
	local png=$1 settings=$2 clauses

	shift 2
	if [ $# = 0 ]; then
		echo "$prog: nothing to plot for $png"
		return 0
	fi
	clauses=$(printf '%s, ' "$@")
	if gnuplot 2>"$tmp/gnuplot.err" <<EOF
set terminal $terminal
set output "$results/$png"
set datafile separator whitespace
set grid
set key top left
$settings
plot ${clauses%, }
EOF
	then
		echo "$prog: wrote $results/$png"
	else
		cat "$tmp/gnuplot.err" >&2
		echo "$prog: gnuplot failed for $png" >&2
		failed=1
	fi
}

# size_axis CSV [COLUMN]: gnuplot settings for a log x axis of the CSV's
# COLUMN (default size_mib) values, with a tic at each
size_axis() {
	printf 'set logscale x\nset autoscale xfix\nset offsets graph 0.05, graph 0.05, 0, 0\n'
	printf 'set xtics (%s)\n' "$(csv_values "$1" "${2:-size_mib}" | sort -gu | paste -sd, -)"
}

# eq COLUMN VALUE: the awk condition f["COLUMN"] == "VALUE"
eq() {
	printf 'f["%s"] == "%s"' "$1" "$2"
}

plot_fork() {
	local csv=$results/forkbench.csv m c=()

	have "$csv" "the fork latency plot" size_mib mode metric median_ms min_ms max_ms || return 0
	for m in plain cow; do
		series "fork-$m" "$csv" "$(eq mode $m) && $(eq metric fork)" \
			size_mib median_ms min_ms max_ms &&
			c+=("'$tmp/fork-$m.dat' using 1:2:3:4 with yerrorlines lc rgb '${color[$m]}' title '$m: fork call (median, min-max)'")
		series "wait-$m" "$csv" "$(eq mode $m) && $(eq metric fork_exit_wait)" \
			size_mib median_ms &&
			c+=("'$tmp/wait-$m.dat' using 1:2 with linespoints dt 2 lc rgb '${color[$m]}' title '$m: fork + exit + wait (median)'")
	done
	gp fork-latency.png "$(size_axis "$csv")
set logscale y
set title 'fork latency vs touched anonymous memory (forkbench)'
set xlabel 'memory (MiB, 4 KiB pages)'
set ylabel 'ms'" "${c[@]}"
}

plot_touch() {
	local csv=$results/touchbench.csv size pattern who m name f c r=()

	have "$csv" "the touch plots" size_mib mode who pattern touch_pct \
		total_median_ms total_min_ms total_max_ms || return 0
	for size in $(csv_values "$csv" size_mib); do
		for pattern in $(csv_values "$csv" pattern); do
			c=()
			for who in child parent; do
				for m in plain cow; do
					name=touch-$size-$pattern-$who-$m
					series "$name" "$csv" "$(eq size_mib "$size") && $(eq pattern "$pattern") && $(eq who $who) && $(eq mode $m)" \
						touch_pct total_median_ms total_min_ms total_max_ms &&
						c+=("'$tmp/$name.dat' using 1:2:3:4 with yerrorlines dt ${dash[$who]} lc rgb '${color[$m]}' title '$m, $who writes'")
				done
			done
			gp "touch-$size-$pattern.png" "set title 'fork + writes after it, $size MiB, pattern $pattern (touchbench)'
set xlabel 'pages written after fork (%)'
set ylabel 'fork + touch total, median (ms)'
set xrange [-3:103]
set yrange [0:*]" "${c[@]}"
		done
	done
	# cow total / plain total per size, pattern, toucher and percentage
	csv_select "$csv" 1 size_mib pattern who touch_pct mode total_median_ms | awk -v dir="$tmp" '
	{
		k = $1 "-" $2 "-" $3
		v[k, $4, $5] = $6
		kp[k, $4] = 1
	}
	END {
		for (x in kp) {
			split(x, a, SUBSEP)
			if ((a[1], a[2], "plain") in v && (a[1], a[2], "cow") in v && v[a[1], a[2], "plain"] > 0)
				print a[2], v[a[1], a[2], "cow"] / v[a[1], a[2], "plain"] >(dir "/ratio-" a[1] ".dat")
		}
	}'
	for f in "$tmp"/ratio-*.dat; do
		[ -s "$f" ] || continue
		sort -g -o "$f" "$f"
		IFS=- read -r size pattern who <<<"${f##*/ratio-}"
		who=${who%.dat}
		r+=("'$f' using 1:2 with linespoints dt ${dash[$who]} title '$size MiB, $pattern, $who writes'")
	done
	[ ${#r[@]} = 0 ] || r+=("1.1 with lines dt 3 lc rgb 'black' title 'goal: 1.1'")
	gp touch-ratio.png "set title 'price of CoW page tables once memory is written: cow total / plain total (touchbench)'
set xlabel 'pages written after fork (%)'
set ylabel 'cow / plain (fork + touch, medians)'
set xrange [-3:103]
set yrange [0:*]" "${r[@]}"
}

plot_redis() {
	local csv=$results/redis-bgsave.csv m op c=() p=()
	local -A col=([SET]=3 [GET]=4) dt=([SET]=1 [GET]=2)

	have "$csv" "the Redis plots" size_mib mode rep fork_usec set_p99_ms get_p99_ms || return 0
	for m in plain cow; do
		series "redis-$m" "$csv" "$(eq mode $m) && $(eq rep median)" \
			size_mib fork_usec set_p99_ms get_p99_ms || continue
		c+=("'$tmp/redis-$m.dat' using 1:2 with linespoints lc rgb '${color[$m]}' title '$m'")
		for op in SET GET; do
			p+=("'$tmp/redis-$m.dat' using 1:${col[$op]} with linespoints dt ${dt[$op]} lc rgb '${color[$m]}' title '$m, $op'")
		done
	done
	gp redis-fork.png "$(size_axis "$csv")
set logscale y
set title 'Redis BGSAVE fork: latest_fork_usec, median (redis-bgsave.sh)'
set xlabel 'used_memory (MiB)'
set ylabel 'us'" "${c[@]}"
	gp redis-p99.png "$(size_axis "$csv")
set title 'Redis request latency during BGSAVE: p99, median over runs (redis-bgsave.sh)'
set xlabel 'used_memory (MiB)'
set ylabel 'p99 (ms)'
set yrange [0:*]" "${p[@]}"
}

plot_kvsnap() {
	local csv=$results/kvsnap.csv m c=() p=()

	have "$csv" "the kvsnap plots" mib mode fork_median_us during_p99_us outside_p99_us || return 0
	for m in plain cow; do
		series "kvsnap-$m" "$csv" "$(eq mode $m)" \
			mib fork_median_us during_p99_us outside_p99_us || continue
		c+=("'$tmp/kvsnap-$m.dat' using 1:2 with linespoints lc rgb '${color[$m]}' title '$m'")
		p+=("'$tmp/kvsnap-$m.dat' using 1:(\$3/1000) with linespoints dt 1 lc rgb '${color[$m]}' title '$m, during snapshots'")
		p+=("'$tmp/kvsnap-$m.dat' using 1:(\$4/1000) with linespoints dt 2 lc rgb '${color[$m]}' title '$m, outside snapshots'")
	done
	gp kvsnap-fork.png "$(size_axis "$csv" mib)
set logscale y
set title 'kvsnap snapshot fork, median (kvsnap)'
set xlabel 'store size (MiB)'
set ylabel 'us'" "${c[@]}"
	gp kvsnap-latency.png "$(size_axis "$csv" mib)
set title 'kvsnap request latency p99, during and outside snapshots (kvsnap)'
set xlabel 'store size (MiB)'
set ylabel 'p99 (ms)'
set yrange [0:*]" "${p[@]}"
}

plot_mshare() {
	local csv=$results/msharebench.csv w c=()

	have "$csv" "the msharebench plot" way procs pagetables_kib || return 0
	for w in plain mshare; do
		series "mshare-$w" "$csv" "$(eq way $w)" procs pagetables_kib || continue
		c+=("'$tmp/mshare-$w.dat' using 1:(\$2/1024) with linespoints lc rgb '${color[$w]}' title '$w'")
	done
	gp mshare-pagetables.png "set logscale xy
set title 'page tables of one 1 GiB region mapped by N processes: PageTables growth (msharebench)'
set xlabel 'processes'
set ylabel 'MiB'" "${c[@]}"
}

plot_fork
plot_touch
plot_redis
plot_kvsnap
plot_mshare
# mremapbench.csv has no plot: its numbers are in summary.md
if [ $found = 0 ] && [ ! -f "$results/mremapbench.csv" ]; then
	echo "$prog: no forkbench.csv, touchbench.csv, redis-bgsave.csv, kvsnap.csv, msharebench.csv or mremapbench.csv in $results" >&2
	exit 1
fi
exit $failed
