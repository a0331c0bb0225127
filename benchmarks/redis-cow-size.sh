#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# redis-cow-size.sh - the copy-on-write cost Redis reports for one BGSAVE,
# redis-server plain against under cowpt-run.
#
# Redis's save child reads its own /proc/self/smaps (Private_Dirty) to
# report what the snapshot cost in copied memory: the "Fork CoW for RDB"
# log line and INFO's rdb_last_cow_size.  Nothing writes during the save,
# so the answer should be near zero in both modes; with smaps counting a
# page behind a shared PTE table as private it was the whole data set.
#
#   redis-cow-size.sh [MIB] [COWPT-RUN]
#
# Per mode: a fresh server on a unix socket in a temporary directory
# (save "", appendonly no), DEBUG POPULATE of 4000-byte values to about MIB
# MiB (default 256), one BGSAVE, then one line:
#   MODE used_memory_mib=N rdb_last_cow_size_kib=N cow_pte_shared=+N
# followed by Redis's own log line.  Fails (exit 1) if the save failed, or
# if the cow run shared no table (or the plain run shared one while the
# mode is not "always").

set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
mib=${1:-256}
cowpt_run=${2:-$top/build/bin/cowpt-run}
vsize=4000

shared() { awk '$1 == "cow_pte_shared" { print $2 }' /proc/vmstat; }
info() { redis-cli -s "$sock" INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }
mode_word=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /proc/sys/vm/cow_pte_mode 2>/dev/null || echo none)

fail=0
for mode in plain cow; do
	dir=$(mktemp -d)
	sock=$dir/redis.sock
	pre=()
	[ "$mode" = cow ] && pre=("$cowpt_run" --)
	"${pre[@]}" redis-server --port 0 --unixsocket "$sock" --dir "$dir" \
		--save "" --appendonly no --enable-debug-command local \
		--logfile "$dir/log" &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && redis-cli -s "$sock" PING >/dev/null 2>&1 && break
		sleep 0.2
	done
	r=$(redis-cli -s "$sock" DEBUG POPULATE $((mib * 1024 * 1024 / vsize)) key $vsize)
	[ "$r" = OK ] || { echo "FAIL: $mode: DEBUG POPULATE: $r"; kill "$pid"; exit 1; }
	used=$(redis-cli -s "$sock" INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')
	s0=$(shared)
	redis-cli -s "$sock" BGSAVE >/dev/null
	while [ "$(info rdb_bgsave_in_progress)" != 0 ]; do
		sleep 0.5
	done
	s1=$(shared)
	status=$(info rdb_last_bgsave_status)
	cow=$(info rdb_last_cow_size)
	echo "$mode used_memory_mib=$((used / 1048576)) rdb_last_cow_size_kib=$((cow / 1024)) cow_pte_shared=+$((s1 - s0))"
	grep -h "Fork CoW for RDB" "$dir/log" | tail -n 1 | sed 's/^/  redis: /'
	if [ "$status" != ok ]; then
		echo "FAIL: $mode: BGSAVE status $status"
		fail=1
	fi
	if [ "$mode" = cow ] && [ $((s1 - s0)) -le 0 ]; then
		echo "FAIL: cow: the save shared no PTE table"
		fail=1
	fi
	if [ "$mode" = plain ] && [ "$mode_word" != always ] && [ $((s1 - s0)) -gt 0 ]; then
		echo "FAIL: plain: the save shared PTE tables in mode $mode_word"
		fail=1
	fi
	redis-cli -s "$sock" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
	wait "$pid" || true
	rm -rf "$dir"
done
exit $fail
