#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# cow_pte_stress.sh - stress-ng's mm and process stressors for a bounded
# time with every fork sharing PTE tables (cow_pte_mode "always").
# Kernel reports are caught by the console scan of the run; this checks
# that stress-ng itself ran and passed.  TAP output.
#
#   cow_pte_stress.sh [SECONDS]     (default 120)

set -u
secs=${1:-120}
mode=/proc/sys/vm/cow_pte_mode

echo "TAP version 13"
echo "1..2"
if ! command -v stress-ng >/dev/null; then
	echo "not ok 1 stress-ng is not installed (make deps)"
	echo "not ok 2 mm stressors # not run"
	exit 1
fi
if [ "$(cat $mode 2>/dev/null)" = always ]; then
	echo "ok 1 cow_pte_mode is always"
else
	echo "not ok 1 cow_pte_mode is '$(cat $mode 2>/dev/null)', not always"
fi

before=$(grep '^cow_pte_shared ' /proc/vmstat | cut -d' ' -f2)
# KSM merges what the vm stressors make mergeable
[ -w /sys/kernel/mm/ksm/run ] && echo 1 >/sys/kernel/mm/ksm/run
# Under TCG a vCPU thread can be starved by the host for more than the
# default 20 s soft-lockup threshold while a dozen stressors run on 3 vCPUs
# and 2 host CPUs.  A real lockup lasts; 60 s still catches it in this run.
wd=/proc/sys/kernel/watchdog_thresh
old_wd=$(cat $wd 2>/dev/null)
[ -w $wd ] && echo 30 >$wd
tmp=$(mktemp -d)
stress-ng --timeout "${secs}s" --temp-path "$tmp" --metrics-brief --oomable \
	--fork 2 --vfork 1 --clone 1 --forkheavy 1 --mmapfork 1 \
	--vm 2 --vm-bytes 32M --vm-madvise mergeable \
	--mmap 1 --mmap-bytes 32M --mremap 1 --mremap-bytes 32M \
	--madvise 1 --mprotect 1 --brk 1 --stack 1 \
	--fault 1 --userfaultfd 1 >"$tmp.log" 2>&1
rc=$?
sed 's/^/# /' "$tmp.log"
rm -rf "$tmp" "$tmp.log"
[ -n "$old_wd" ] && [ -w $wd ] && echo "$old_wd" >$wd
[ -w /sys/kernel/mm/ksm/run ] && echo 2 >/sys/kernel/mm/ksm/run
after=$(grep '^cow_pte_shared ' /proc/vmstat | cut -d' ' -f2)
echo "# stress-ng exit status $rc; cow_pte_shared: $before -> $after"
if [ "$rc" = 0 ] && [ "$after" -gt "$before" ]; then
	echo "ok 2 mm stressors for ${secs} s, $((after - before)) tables shared"
else
	echo "not ok 2 mm stressors for ${secs} s (stress-ng exit $rc, $((after - before)) tables shared)"
	exit 1
fi
