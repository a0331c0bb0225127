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
# Under TCG a vCPU thread can be starved by the host for tens of seconds
# while a dozen stressors run on 3 vCPUs and 2 (possibly busy) host CPUs:
# the default 20 s soft-lockup and 21 s RCU-stall thresholds then report
# delays that are the emulator's.  A real lockup or stall lasts: the raised
# thresholds (120 s each) still report it within this run, and the console
# scan fails the run on it.  The same holds for the hung-task detector
# (120 s by default): on 2026-12-01 the stressors ran 300 s instead of 120
# (74 ms per page fault, the debug kernel thrashing under TCG) and the
# madvise stressor's threads waited 146 s for an mmap_lock whose holder was
# running.  It is raised to 300 s here; a task that never wakes still
# hangs stress-ng past the test's own timeout, which fails the run.  All
# three are restored afterwards.
wd=/proc/sys/kernel/watchdog_thresh
rcu=/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout
hung=/proc/sys/kernel/hung_task_timeout_secs
old_wd=$(cat $wd 2>/dev/null)
old_rcu=$(cat $rcu 2>/dev/null)
old_hung=$(cat $hung 2>/dev/null)
[ -w $wd ] && echo 60 >$wd
[ -w $rcu ] && echo 120 >$rcu
[ -w $hung ] && echo 300 >$hung
tmp=$(mktemp -d)
chmod 1777 "$tmp"
# stress-ng's madvise stressor injects MADV_HWPOISON when it runs as root
# and then dies of the SIGBUS it provoked (stress-ng 0.15, stock kernels
# too): it runs unprivileged, in parallel with the rest.
(cd "$tmp" && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
	stress-ng --timeout "${secs}s" --temp-path "$tmp" --metrics-brief -v \
	--madvise 1) >"$tmp.madvise.log" 2>&1 &
madv=$!
stress-ng --timeout "${secs}s" --temp-path "$tmp" --metrics-brief -v \
	--oomable --fork 1 --vfork 1 --clone 1 --mmapfork 1 \
	--vm 1 --vm-bytes 32M --vm-madvise mergeable \
	--mmap 1 --mmap-bytes 32M --mremap 1 --mremap-bytes 32M \
	--mprotect 1 --brk 1 --stack 1 \
	--fault 1 --userfaultfd 1 >"$tmp.log" 2>&1
rc=$?
wait $madv
rc_madv=$?
# stress-ng's own verdict lines, and the reason of any stressor's death
for log in "$tmp.log" "$tmp.madvise.log"; do
	grep -v ' debug: ' "$log" | sed 's/^/# /'
	grep ' debug: ' "$log" | grep -E 'terminated on signal|exited with|failed' |
		sed 's/^/# /'
done
rm -rf "$tmp" "$tmp.log" "$tmp.madvise.log"
[ -n "$old_wd" ] && [ -w $wd ] && echo "$old_wd" >$wd
[ -n "$old_rcu" ] && [ -w $rcu ] && echo "$old_rcu" >$rcu
[ -n "$old_hung" ] && [ -w $hung ] && echo "$old_hung" >$hung
[ -w /sys/kernel/mm/ksm/run ] && echo 2 >/sys/kernel/mm/ksm/run
after=$(grep '^cow_pte_shared ' /proc/vmstat | cut -d' ' -f2)
echo "# stress-ng exit status $rc (madvise, unprivileged: $rc_madv); cow_pte_shared: $before -> $after"
if [ "$rc" = 0 ] && [ "$rc_madv" = 0 ] && [ "$after" -gt "$before" ]; then
	echo "ok 2 mm stressors for ${secs} s, $((after - before)) tables shared"
else
	echo "not ok 2 mm stressors for ${secs} s (stress-ng exit $rc and $rc_madv, $((after - before)) tables shared)"
	exit 1
fi
