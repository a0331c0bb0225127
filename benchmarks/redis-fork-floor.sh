#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# redis-fork-floor.sh - Redis's own fork floor: latest_fork_usec of a
# nearly empty server, by how the server runs.
#
# Run in the guest.  For each way (plain, under cowpt-run, and both with
# all of Redis's threads on one CPU through taskset) a fresh redis-server
# (unix socket in a temporary directory, save "", appendonly no) gets KEYS
# small keys, then FORKS BGSAVEs one after the other; each line gives
# latest_fork_usec (min, median, max), the server's threads, and the TLB
# shootdown and function-call IPIs per BGSAVE (/proc/interrupts, all CPUs,
# the polling redis-cli processes included).  ROUNDS rounds of the ways.
# See benchmarks/README.md ("Redis's fork has a floor of its own").
set -u
export LC_ALL=C

prog=$(basename "$0")
top=$(cd "$(dirname "$0")/.." && pwd)
forks=21 keys=1000 rounds=2 cowpt_run=$top/build/bin/cowpt-run

usage() {
	echo "usage: $prog [--forks N] [--keys N] [--rounds N] [--cowpt-run PATH]"
}
die() { echo "$prog: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case $1 in
	--forks | --keys | --rounds)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive number"
		declare "${1#--}=$2"; shift ;;
	--cowpt-run) cowpt_run=${2:?}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
for p in redis-server redis-cli taskset; do
	command -v $p >/dev/null || die "$p not found"
done
[ -x "$cowpt_run" ] || die "no cowpt-run at $cowpt_run (make tools, or --cowpt-run PATH)"
"$cowpt_run" -- true || die "cowpt-run does not work here: not a cowpt kernel?"
[ "$(nproc)" -gt 1 ] || echo "# one CPU: the taskset ways are left out"

tmp=$(mktemp -d /tmp/redis-fork-floor.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sock=$tmp/sock
rcli() { redis-cli -s "$sock" "$@"; }
# irqs ROW: the ROW line of /proc/interrupts, summed over the CPUs
irqs() {
	awk -v row="$1:" '$1 == row { s = 0; for (i = 2; i <= NF; i++)
		if ($i ~ /^[0-9]+$/) s += $i; print s }' /proc/interrupts
}

# way NAME COMMAND...: one server started with COMMAND in front of it
way() {
	local name=$1 pid tlb cal us=() i
	shift
	"$@" redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
		--save "" --appendonly no --dir "$tmp" --dbfilename dump.rdb \
		>"$tmp/server.log" 2>&1 &
	pid=$!
	for i in $(seq 100); do
		[ "$(rcli PING 2>/dev/null)" = PONG ] && break
		sleep 0.1
	done
	[ "$(rcli PING 2>/dev/null)" = PONG ] || die "$name: redis-server did not start"
	rcli DEBUG POPULATE "$keys" >/dev/null
	local threads=$(ls /proc/$pid/task | wc -l)
	tlb=$(irqs TLB) cal=$(irqs CAL)
	for i in $(seq "$forks"); do
		[ "$(rcli BGSAVE)" = "Background saving started" ] || die "$name: BGSAVE refused"
		while rcli INFO persistence | grep -q '^rdb_bgsave_in_progress:1'; do
			sleep 0.02
		done
		rcli INFO persistence | grep -q '^rdb_last_bgsave_status:ok' ||
			die "$name: BGSAVE failed"
		us+=("$(rcli INFO stats | sed -n 's/^latest_fork_usec:\([0-9]*\).*/\1/p')")
	done
	printf '%s\n' "${us[@]}" | sort -n | awk -v name="$name" -v th="$threads" \
		-v tlb=$(($(irqs TLB) - tlb)) -v cal=$(($(irqs CAL) - cal)) -v n="$forks" \
		'{ a[NR] = $1 } END { printf "%-26s threads %d, latest_fork_usec min %d median %d max %d, per BGSAVE %.1f TLB and %.1f CAL IPIs\n",
			name, th, a[1], a[int((NR + 1) / 2)], a[NR], tlb / n, cal / n }'
	rcli SHUTDOWN NOSAVE >/dev/null 2>&1
	wait "$pid" 2>/dev/null
}

echo "# $(nproc) CPUs, cow_pte_mode $(cat /proc/sys/vm/cow_pte_mode), $keys keys, $forks BGSAVEs per line"
for r in $(seq "$rounds"); do
	way plain env
	way cowpt-run "$cowpt_run" --
	if [ "$(nproc)" -gt 1 ]; then
		way "plain, taskset -c 1" taskset -c 1
		way "cowpt-run, taskset -c 1" taskset -c 1 "$cowpt_run" --
	fi
done
