#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# cow_pte_vmstat.sh - show the cow_pte_* counters of /proc/vmstat and check
# that the run before it really shared, broke, reused and dropped PTE
# tables, and copied one for a pinned page.  Run last in the "always"
# boot, whose counters start at zero.
# TAP output.

set -u
echo "TAP version 13"
grep '^cow_pte_' /proc/vmstat | sed 's/^/# /'
n=0 bad=0
for c in cow_pte_shared cow_pte_pinned cow_pte_break_fault cow_pte_reuse \
	cow_pte_drop; do
	n=$((n + 1))
	v=$(grep "^$c " /proc/vmstat | cut -d' ' -f2)
	if [ -n "$v" ] && [ "$v" -gt 0 ]; then
		echo "ok $n $c = $v"
	else
		echo "not ok $n $c = ${v:-missing}, expected > 0"
		bad=1
	fi
done
echo "1..$n"
exit $bad
