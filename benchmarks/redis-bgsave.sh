#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# redis-bgsave.sh - Redis BGSAVE fork latency, and request latency during the
# save, with redis-server run plain against redis-server run under cowpt-run
# (every fork of it shares PTE tables copy-on-write).
#
# Per size: a calibration server (not measured) gives the key count for the
# target used_memory and the number of requests that last about as long as
# a BGSAVE under that load.
# Then per repetition and mode (plain, cow, plain, cow, ...): a fresh
# redis-server on a unix socket in a temporary directory (save "",
# appendonly no), filled with DEBUG POPULATE, one BGSAVE issued while two
# redis-benchmark runs (SET and GET) are under way; latest_fork_usec, the
# request latencies and the /proc/vmstat cow_pte_shared delta are recorded.

set -eu
set -o pipefail
export LC_ALL=C		# '.' decimal point in $EPOCHREALTIME, awk and sort

top=$(cd "$(dirname "$0")/.." && pwd)
prog=$(basename "$0")

usage() {
	cat <<EOF
usage: $prog [--sizes MIB,...] [--modes plain,cow] [--reps N]
       [--csv FILE] [--value-size BYTES] [--clients N] [--cowpt-run PATH]
       [--help]

Redis BGSAVE fork latency (INFO stats latest_fork_usec) and the latency of
requests issued during the save, redis-server plain against redis-server
started as 'cowpt-run -- redis-server ...', side by side.

For each size a calibration server (not measured) finds the DEBUG POPULATE
key count that gives used_memory of about SIZE MiB, and times a BGSAVE
unloaded and then one under the load below, to size that load.  Then, for
each repetition and mode in turn (plain, cow, plain, cow, ...), a
fresh server (unix socket in a temporary directory, save "", appendonly no)
is filled, two redis-benchmark runs start (SET and GET of random populated
keys, through a one-line EVAL that maps redis-benchmark's random number to a
DEBUG POPULATE key name, so SETs overwrite values all over the data set:
the writes that make the saving parent copy pages and, with cowpt, tables),
and once all their clients are connected BGSAVE is issued.  redis-benchmark
cannot report a time window, so each run is sized from the calibration to
last about as long as the save: its latencies (p50, p99, max) cover the save
approximately; bench_s and bgsave_s in the CSV show how well.

Checks: used_memory within 10% of SIZE; BGSAVE status ok; cow mode: the
server's /proc/PID/status CowPTE is 1 and /proc/vmstat cow_pte_shared grew
during the save; plain mode: cow_pte_shared did not grow (unless
cow_pte_mode is always).  A failed check is an error (exit 1).

Options:
  --sizes LIST      comma-separated target used_memory sizes in MiB
                    (default 1024)
  --modes LIST      comma-separated subset of plain,cow (default plain,cow).
                    cow needs a cowpt kernel and cowpt-run: without them the
                    error is printed and the exit status is 2; there is no
                    fallback.  Use --modes plain on a stock kernel.
  --reps N          repetitions per size and mode, 1..100 (default 3)
  --csv FILE        also write CSV rows, after a header line:
                      size_mib,mode,rep,keys,used_memory_mib,fork_usec,
                      bgsave_s,cow_pte_shared,set_p50_ms,set_p99_ms,
                      set_max_ms,get_p50_ms,get_p99_ms,get_max_ms,
                      bench_requests,bench_s,lead_s,rdb_cow_kb,
                      cow_pte_copied
                    (one line): one row per repetition (rep 1..N), then a
                    row with rep "median" (column-wise medians) per size and
                    mode.  fork_usec: latest_fork_usec; bgsave_s: BGSAVE
                    issued to done; bench_requests per redis-benchmark run;
                    bench_s: load start to the end of the later run; lead_s:
                    load start to BGSAVE; rdb_cow_kb: rdb_last_cow_size.
                    cow_pte_copied: table copies during the save, the
                    /proc/vmstat cow_pte_break_* deltas summed: the
                    server's and the save child's (a table the server
                    copies and the child then copies too counts twice).
                    cow_pte_shared and cow_pte_copied are NA on kernels
                    without cowpt.
  --value-size B    DEBUG POPULATE value size in bytes (default 1000)
  --clients N       redis-benchmark connections, half SET, half GET (default 10)
  --cowpt-run PATH  the launcher (default $top/build/bin/cowpt-run)
  -h, --help        this text

Output: '# ' lines (cow_pte_mode, calibration), one detail line per run,
one median line per size and mode, then one final line per size:
  redis SIZE MiB: plain fork P us, cow fork C us, ratio R; p99 during
  bgsave plain X ms, cow Y ms      (all on one line)
(medians; R = P/C; p99 is the SET run's, the requests that write; with one
mode only its values are printed).

Temporary files go to \$TMPDIR (default /tmp) and are removed on exit, as are
the servers and benchmark runs started.
Exit status: 0 success, 1 runtime failure or failed check, 2 bad arguments
or CoW page tables not available.
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}

bad_arg() {
	echo "$prog: $*" >&2
	echo "(try $prog --help)" >&2
	exit 2
}

# check_list OPTION VALUE REGEX: VALUE is a comma-separated list of REGEX
check_list() {
	local item
	case $2 in "" | ,* | *, | *,,*) bad_arg "bad $1 '$2': want a comma-separated list" ;; esac
	for item in ${2//,/ }; do
		[[ $item =~ $3 ]] || bad_arg "bad value '$item' in $1"
	done
}

# check_int OPTION VALUE LO HI
check_int() {
	if ! [[ $2 =~ ^[0-9]{1,9}$ ]] || [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then
		bad_arg "bad $1 '$2': want an integer in $3..$4"
	fi
}

sizes=1024 modes=plain,cow reps=3 csv='' vsize=1000 clients=10
cowpt_run=$top/build/bin/cowpt-run
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--sizes | --modes | --reps | --csv | --value-size | --clients | --cowpt-run)
		[ $# -ge 2 ] || bad_arg "option '$1' needs an argument" ;;&
	--sizes) sizes=$2 ;;
	--modes) modes=$2 ;;
	--reps) reps=$2 ;;
	--csv) csv=$2 ;;
	--value-size) vsize=$2 ;;
	--clients) clients=$2 ;;
	--cowpt-run) cowpt_run=$2 ;;
	*) bad_arg "unknown argument '$1'" ;;
	esac
	shift 2
done
check_list --sizes "$sizes" '^[0-9]{1,7}$'
check_list --modes "$modes" '^(plain|cow)$'
for s in ${sizes//,/ }; do check_int "size (MiB)" "$s" 1 1048576; done
check_int --reps "$reps" 1 100
check_int --value-size "$vsize" 1 1048576
check_int --clients "$clients" 2 10000
# canonical order, plain first; no duplicates
m=
for mode in ${modes//,/ }; do
	if [[ " $m " == *" $mode "* ]]; then
		bad_arg "--modes lists $mode twice"
	fi
	m="$m $mode"
done
modes=
for mode in plain cow; do
	if [[ " $m " == *" $mode "* ]]; then
		modes="$modes $mode"
	fi
done
modes=${modes# }

for p in redis-server redis-cli redis-benchmark; do
	command -v $p >/dev/null || die "$p not found (Debian: apt-get install redis-server redis-tools)"
done

# ------------------------------------------------------------ CoW checks
mode_file=/proc/sys/vm/cow_pte_mode
cow_mode=$(cat $mode_file 2>/dev/null) || cow_mode="(absent: kernel without CoW page tables)"
echo "# cow_pte_mode: $cow_mode"

# /proc/vmstat cow_pte_shared, or NA on a kernel without cowpt
vmstat_shared() {
	awk '$1 == "cow_pte_shared" { print $2; found = 1 } END { if (!found) print "NA" }' /proc/vmstat
}

# the /proc/vmstat cow_pte_break_* counters summed: tables copied on a break
vmstat_copied() {
	awk '$1 ~ /^cow_pte_break_/ { n += $2; found = 1 } END { print found ? n : "NA" }' /proc/vmstat
}

if [[ " $modes " == *" cow "* ]]; then
	[ -x "$cowpt_run" ] || {
		echo "$prog: cowpt-run not found at $cowpt_run (make tools, or --cowpt-run PATH)" >&2
		exit 2
	}
	if ! err=$("$cowpt_run" -- true 2>&1); then
		echo "$err" >&2
		echo "$prog: cowpt-run cannot enable CoW page tables on this kernel; no fallback" \
			"to plain redis-server: use --modes plain to measure plain fork only." >&2
		exit 2
	fi
	[ "$(vmstat_shared)" != NA ] || {
		echo "$prog: /proc/vmstat has no cow_pte_shared: cannot check that forks share" >&2
		exit 2
	}
fi
[ "$cow_mode" != always ] || [[ " $modes " != *" plain "* ]] ||
	echo "$prog: warning: cow_pte_mode is \"always\": plain redis-server shares" \
		"page tables too, so plain is not a stock baseline" >&2

# ------------------------------------------------------------ state, cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/redis-bgsave.XXXXXX")
sock=$tmp/redis.sock
server_pid=
bench_pids=

stop_server() {
	[ -n "$server_pid" ] || return 0
	kill -TERM "$server_pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}

cleanup() {
	local p

	for p in $bench_pids; do
		kill -TERM "$p" 2>/dev/null || true
	done
	stop_server
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rcli() {
	redis-cli -s "$sock" "$@" | tr -d '\r'
}

# redis_info SECTION FIELD
redis_info() {
	rcli INFO "$1" | sed -n "s/^$2://p"
}

# expect WHAT REPLY COMMAND...: the command's reply must be REPLY
expect() {
	local what=$1 want=$2 got

	shift 2
	got=$(rcli "$@")
	[ "$got" = "$want" ] || die "$what: redis replied '$got'"
}

now() {
	echo "$EPOCHREALTIME"
}

# elapsed T0 [T1]: seconds between two now() values (T1 default: now)
elapsed() {
	awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.3f", b - a }'
}

# mtime FILE: its modification time, like now()
mtime() {
	date -r "$1" +%s.%N
}

# start_server MODE: a fresh, empty redis-server, plain or under cowpt-run
start_server() {
	local launch=()

	[ "$1" = plain ] || launch=("$cowpt_run" --)
	rm -f "$tmp/dump.rdb"
	"${launch[@]}" redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
		--save "" --appendonly no --dir "$tmp" --dbfilename dump.rdb \
		--logfile "$tmp/redis.log" --enable-debug-command local \
		2>"$tmp/redis.err" &
	server_pid=$!
	for _ in $(seq 600); do
		[ "$(rcli PING 2>/dev/null)" = PONG ] && break
		kill -0 "$server_pid" 2>/dev/null || {
			cat "$tmp/redis.err" "$tmp/redis.log" >&2 2>/dev/null || true
			server_pid=
			die "redis-server ($1) exited at start"
		}
		sleep 0.1
	done
	[ "$(rcli PING 2>/dev/null)" = PONG ] || die "redis-server ($1) did not answer PING within 60 s"
	if [ "$1" = cow ]; then
		[ "$(sed -n 's/^CowPTE:[[:space:]]*//p' "/proc/$server_pid/status")" = 1 ] ||
			die "redis-server under cowpt-run does not show CowPTE: 1 in /proc/$server_pid/status"
	fi
}

# populate KEYS: fill the server, check used_memory against the target
populate() {
	local used

	expect "DEBUG POPULATE $1" OK DEBUG POPULATE "$1" key "$vsize"
	used=$(redis_info memory used_memory)
	awk -v u="$used" -v t="$target" 'BEGIN { exit !(u >= 0.9 * t && u <= 1.1 * t) }' ||
		die "used_memory $((used >> 20)) MiB with $1 keys, want about $((target >> 20)) MiB"
	used_mib=$((used >> 20))
}

# bgsave: BGSAVE, wait for it; sets bgsave_t0 and bgsave_end (now()
# values) and bgsave_s
bgsave() {
	local saves deadline=$((SECONDS + 3600))

	saves=$(redis_info persistence rdb_saves)
	bgsave_t0=$(now)
	expect BGSAVE "Background saving started" BGSAVE
	while [ "$(redis_info persistence rdb_bgsave_in_progress)" != 0 ] ||
		[ "$(redis_info persistence rdb_saves)" = "$saves" ]; do
		[ $SECONDS -lt $deadline ] || die "BGSAVE still running after an hour"
		sleep 0.05
	done
	bgsave_end=$(now)
	bgsave_s=$(elapsed "$bgsave_t0" "$bgsave_end")
	[ "$(redis_info persistence rdb_last_bgsave_status)" = ok ] ||
		die "BGSAVE failed: $(tail -n 5 "$tmp/redis.log")"
}

# start_load N: N SET and N GET requests in the background, half the
# clients each; returns once all their connections are up (or a run ended)
start_load() {
	local p c=$((clients / 2)) conns0

	conns0=$(redis_info clients connected_clients)
	redis-benchmark -s "$sock" -n "$1" -c "$c" -P 1 -r "$keys" --csv --precision 3 \
		EVAL "redis.call('SET', 'key:' .. tonumber(ARGV[1]), ARGV[2])" 0 \
		__rand_int__ small-value-0123 >"$tmp/set.csv" 2>"$tmp/set.err" &
	bench_pids=$!
	redis-benchmark -s "$sock" -n "$1" -c $((clients - c)) -P 1 -r "$keys" --csv --precision 3 \
		EVAL "return redis.call('GET', 'key:' .. tonumber(ARGV[1]))" 0 \
		__rand_int__ >"$tmp/get.csv" 2>"$tmp/get.err" &
	bench_pids="$bench_pids $!"
	for _ in $(seq 1200); do
		[ "$(redis_info clients connected_clients)" -lt $((conns0 + clients)) ] || return 0
		for p in $bench_pids; do
			kill -0 "$p" 2>/dev/null || return 0
		done
		sleep 0.05
	done
	die "redis-benchmark clients did not connect within 60 s"
}

# wait_load: wait for the benchmark runs, check they succeeded; sets
# load_end, when the later one wrote its results (a now() value)
wait_load() {
	local p

	for p in $bench_pids; do
		wait "$p" || die "redis-benchmark failed: $(cat "$tmp/set.err" "$tmp/get.err")"
	done
	bench_pids=
	load_end=$(printf '%s\n' "$(mtime "$tmp/set.csv")" "$(mtime "$tmp/get.csv")" | sort -g | tail -n 1)
}

# latencies FILE: "p50 p99 max" in ms from a redis-benchmark --csv file
latencies() {
	local header='"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"'

	[ "$(head -n 1 "$1")" = "$header" ] || die "unexpected redis-benchmark CSV in $1: $(head -n 2 "$1")"
	tail -n 1 "$1" | tr -d '"' | awk -F, '{ print $(NF - 3), $(NF - 1), $NF }'
}

# eval_calls: EVAL requests the server has run (both benchmark runs)
eval_calls() {
	redis_info commandstats cmdstat_eval | sed -n 's/^calls=\([0-9]*\).*/\1/p'
}

# calibrate: the key count for the target (sets keys), and the length of
# each redis-benchmark run that lasts about as long as a BGSAVE under that
# load (sets requests): from the EVALs run from the load's start to the
# save's end, or extrapolated if the load ended first
calibrate() {
	local used0 used1 t0 calls0 calls1 probe_s unloaded_s n sample=10000 probe=20000

	start_server "${modes%% *}"
	used0=$(redis_info memory used_memory)
	expect "DEBUG POPULATE $sample" OK DEBUG POPULATE $sample key "$vsize"
	used1=$(redis_info memory used_memory)
	keys=$(awk -v t="$target" -v a="$used0" -v b="$used1" -v n=$sample \
		'BEGIN { k = int((t - a) / ((b - a) / n)); print (k > n ? k : n) }')
	populate "$keys"
	bgsave
	unloaded_s=$bgsave_s
	t0=$(now)
	start_load $probe
	wait_load
	probe_s=$(elapsed "$t0" "$load_end")
	# three times the unloaded save at the unloaded rate: enough, mostly
	n=$(awk -v p=$probe -v l="$probe_s" -v s="$unloaded_s" \
		'BEGIN { n = int(3 * p * s / l); print (n < 1000 ? 1000 : n) }')
	calls0=$(eval_calls)
	t0=$(now)
	start_load "$n"
	bgsave
	calls1=$(eval_calls)
	wait_load
	requests=$(awk -v n="$n" -v c="$((calls1 - calls0))" -v t0="$t0" -v le="$load_end" \
		-v se="$bgsave_end" 'BEGIN { r = le >= se ? c / 2 : n * (se - t0) / (le - t0); printf "%d", r < 1000 ? 1000 : r }')
	stop_server
	echo "# calibration $size MiB: $keys keys of $vsize bytes, used_memory $used_mib MiB;" \
		"BGSAVE $unloaded_s s unloaded, $bgsave_s s under load;" \
		"$requests requests per redis-benchmark run (SET and GET each) to cover it"
}

csv_header=size_mib,mode,rep,keys,used_memory_mib,fork_usec,bgsave_s,cow_pte_shared,set_p50_ms,set_p99_ms,set_max_ms,get_p50_ms,get_p99_ms,get_max_ms,bench_requests,bench_s,lead_s,rdb_cow_kb,cow_pte_copied
rows=$tmp/rows.csv
echo "$csv_header" >"$rows"
[ -z "$csv" ] || cp "$rows" "$csv" || die "cannot write $csv"

# measure MODE REP: one fresh server, one loaded BGSAVE; appends a row
measure() {
	local mode=$1 rep=$2 shared0 shared1 shared shared_txt t0 fork_us bench_s lead_s cow_kb cover
	local copied0 copied1 copied=NA
	local set get sp50 sp99 smax gp50 gp99 gmax

	start_server "$mode"
	populate "$keys"
	shared0=$(vmstat_shared)
	copied0=$(vmstat_copied)
	t0=$(now)
	start_load "$requests"
	bgsave
	wait_load
	bench_s=$(elapsed "$t0" "$load_end")
	lead_s=$(elapsed "$t0" "$bgsave_t0")
	shared1=$(vmstat_shared)
	copied1=$(vmstat_copied)
	fork_us=$(redis_info stats latest_fork_usec)
	cow_kb=$(($(redis_info persistence rdb_last_cow_size) >> 10))
	stop_server
	set=$(latencies "$tmp/set.csv")
	get=$(latencies "$tmp/get.csv")
	shared=NA shared_txt="NA (kernel without cowpt)"
	[ "$shared0" = NA ] || { shared=$((shared1 - shared0)); shared_txt=+$shared; }
	[ "$copied0" = NA ] || copied=$((copied1 - copied0))
	if [ "$mode" = cow ] && [ "$shared" -le 0 ]; then
		die "$size MiB cow: cow_pte_shared did not grow during BGSAVE: the fork did not share page tables"
	fi
	if [ "$mode" = plain ] && [ "$shared" != NA ] && [ "$shared" != 0 ] && [ "$cow_mode" != always ]; then
		die "$size MiB plain: cow_pte_shared grew by $shared during BGSAVE of a plain redis-server"
	fi
	cover=$(awk -v b="$bench_s" -v l="$lead_s" -v s="$bgsave_s" 'BEGIN {
		e = b - l - s
		printf "started %.3f s before the BGSAVE, ended %.3f s %s it", l, e < 0 ? -e : e, e < 0 ? "before" : "after"
	}')
	echo "$size,$mode,$rep,$keys,$used_mib,$fork_us,$bgsave_s,$shared,${set// /,},${get// /,},$requests,$bench_s,$lead_s,$cow_kb,$copied" >>"$rows"
	read -r sp50 sp99 smax <<<"$set"
	read -r gp50 gp99 gmax <<<"$get"
	echo "$size MiB $mode rep $rep: fork $fork_us us, BGSAVE $bgsave_s s;" \
		"SET p50/p99/max $sp50/$sp99/$smax ms, GET $gp50/$gp99/$gmax ms;" \
		"cow_pte_shared $shared_txt, tables copied $copied; benchmark $bench_s s, $cover"
}

# median_row SIZE MODE: the column-wise median row of that size and mode
median_row() {
	awk -F, -v size="$1" -v mode="$2" '
	function median(col,    n, i, j, v, t) {
		n = 0
		for (i = 1; i <= nr; i++) {
			if (val[i, col] == "NA")
				return "NA"
			v[++n] = val[i, col] + 0
		}
		for (i = 2; i <= n; i++)	# insertion sort: a few reps
			for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
				t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
			}
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	$1 == size && $2 == mode && $3 != "median" {
		nr++
		for (i = 1; i <= NF; i++)
			val[nr, i] = $i
		nf = NF
	}
	END {
		line = size "," mode ",median"
		for (i = 4; i <= nf; i++)
			line = line "," median(i)
		print line
	}' "$rows"
}

# csv_field NAME ROW: the value of column NAME in a CSV row
csv_field() {
	awk -F, -v name="$1" -v row="$2" -v header="$csv_header" 'BEGIN {
		n = split(header, h); split(row, v)
		for (i = 1; i <= n; i++) if (h[i] == name) print v[i]
	}'
}

declare -A fork_med p99_med
for size in ${sizes//,/ }; do
	target=$((size << 20))
	avail_kb=$(awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo)
	[ $((avail_kb >> 10)) -ge $((size * 5 / 4 + 256)) ] ||
		die "$size MiB: only $((avail_kb >> 10)) MiB available, need about $((size * 5 / 4 + 256)) MiB"
	calibrate
	for rep in $(seq "$reps"); do
		for mode in $modes; do
			measure "$mode" "$rep"
		done
	done
	for mode in $modes; do
		row=$(median_row "$size" "$mode")
		echo "$row" >>"$rows"
		fork_med[$size,$mode]=$(csv_field fork_usec "$row")
		p99_med[$size,$mode]=$(csv_field set_p99_ms "$row")
		echo "$size MiB $mode (median of $reps): fork ${fork_med[$size,$mode]} us," \
			"BGSAVE $(csv_field bgsave_s "$row") s, SET p99 ${p99_med[$size,$mode]} ms," \
			"GET p99 $(csv_field get_p99_ms "$row") ms"
	done
	[ -z "$csv" ] || cp "$rows" "$csv" || die "cannot write $csv"
done

for size in ${sizes//,/ }; do
	forks='' p99s='' sep=''
	for mode in $modes; do
		forks="$forks$sep$mode fork ${fork_med[$size,$mode]} us"
		p99s="$p99s$sep$mode ${p99_med[$size,$mode]} ms"
		sep=", "
	done
	if [ "$modes" = "plain cow" ]; then
		forks="$forks, ratio $(awk -v p="${fork_med[$size,plain]}" -v c="${fork_med[$size,cow]}" \
			'BEGIN { if (c > 0) printf "%.1f", p / c; else print "inf" }')"
	fi
	echo "redis $size MiB: $forks; p99 during bgsave $p99s"
done
