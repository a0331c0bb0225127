#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# sysinfo.sh - "key: value" lines describing this machine and kernel, for
# the benchmark summary (benchmarks/summary.sh).  Run in the guest after a
# benchmark run, into $COWPT_OUT/guest-info.txt; summary.sh also runs it on
# the host for the machine description.

case ${1-} in
-h | --help)
	echo "usage: $(basename "$0")    print date, kernel, nproc, cpu, memory, cow_pte_mode"
	exit 0 ;;
"") ;;
*)
	echo "$(basename "$0"): unknown argument '$1' (try --help)" >&2
	exit 2 ;;
esac

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "kernel: $(uname -r)"
echo "nproc: $(nproc)"
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "memory: $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "cow_pte_mode: $(cat /proc/sys/vm/cow_pte_mode 2>/dev/null || echo absent)"
