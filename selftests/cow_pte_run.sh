#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# cow_pte_run.sh - tools/cowpt-run and the inherited PR_SET_COW_PTE opt-in
# as a user sees them: the setting reaches exec'ed programs and their
# forks, --off undoes it, errors have the documented exit status.  Runs as
# root in cow_pte_mode opt-in (set for the test, restored after).  TAP.
#
#   cow_pte_run.sh COWPT_RUN FORKER

set -u
run=${1:?usage: cow_pte_run.sh COWPT_RUN FORKER}
forker=${2:?usage: cow_pte_run.sh COWPT_RUN FORKER}
mode=/proc/sys/vm/cow_pte_mode
n=0 failed=0

ok() {	# ok CONDITION-STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n $2"
	else
		echo "not ok $n $2"
		failed=$((failed + 1))
	fi
}

# shared tables when the forker forks 64 MiB, under the given launcher
shared() {
	"$@" "$forker" 64 | sed -n 's/^shared //p'
}

echo "TAP version 13"
echo "1..10"
old=$(cat $mode)
echo opt-in >$mode

"$run" --help | grep -q '^usage: cowpt-run'
ok $? "--help prints the usage"

"$run" -- grep -q '^CowPTE:[[:space:]]*1$' /proc/self/status
ok $? "the exec'ed command has CowPTE 1"

"$run" -- sh -c "grep -q '^CowPTE:[[:space:]]*1$' /proc/self/status && \
	( grep -q '^CowPTE:[[:space:]]*1$' /proc/self/status )"
ok $? "kept by the command's forks and their execs"

"$run" -- "$run" --off -- grep -q '^CowPTE:[[:space:]]*0$' /proc/self/status
ok $? "--off clears an inherited setting"

s=$(shared "$run" --)
echo "# plain fork() of 64 MiB under cowpt-run: $s tables shared"
[ "${s:-0}" -ge 32 ]
ok $? "fork() of a program under cowpt-run shares its tables ($s >= 32)"

s=$(shared "$run" --off --)
echo "# plain fork() of 64 MiB under cowpt-run --off: $s tables shared"
[ "${s:-1}" -eq 0 ]
ok $? "fork() under cowpt-run --off shares nothing in opt-in mode"

"$run" --no-such-option true 2>/dev/null
ok $(($? != 125)) "an unknown option exits 125"

"$run" -- /nonexistent/cowpt-command 2>/dev/null
ok $(($? != 127)) "a missing command exits 127"

echo off >$mode
err=$("$run" -- true 2>&1)
rc=$?
echo "$err" | sed 's/^/# /'
[ $rc = 125 ] && echo "$err" | grep -q "is 'off'"
ok $? "mode off: exit 125 and the reason, command not run"
"$run" --off -- true
ok $? "mode off: --off still works"

echo "$old" >$mode
[ $failed = 0 ]
