#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fork-floor.sh RESULTS - the line make bench prints about the fork floor:
#
#   fork floor: plain 1 MiB P ms; cow 1 GiB C ms (C/P), cow 8 GiB D ms (D/P)
#
# P from forkbench-floor.csv (a plain fork of a 1 MiB process), C and D
# from forkbench.csv (the fork call's median, cow mode); a size the run
# did not measure reads "not run".  Fails if the floor was not measured.
set -euo pipefail
results=${1:?usage: fork-floor.sh RESULTS}
floor=$results/forkbench-floor.csv
[ -f "$floor" ] || { echo "fork-floor.sh: no $floor" >&2; exit 1; }
median() {	# FILE SIZE MODE: the fork call's median, or nothing
	[ -f "$1" ] || return 0
	awk -F, -v s="$2" -v m="$3" \
		'$1 == s && $2 == m && $3 == "fork" { print $4; exit }' "$1"
}
p=$(median "$floor" 1 plain)
[ -n "$p" ] || { echo "fork-floor.sh: $floor has no plain 1 MiB fork" >&2; exit 1; }
line="fork floor: plain 1 MiB $p ms"
sep=';'
for s in 1024 8192; do
	c=$(median "$results/forkbench.csv" "$s" cow)
	if [ -n "$c" ]; then
		line+="$sep cow $((s / 1024)) GiB $c ms ($(awk -v c="$c" -v p="$p" 'BEGIN { printf "%.2fx", c / p }'))"
	else
		line+="$sep cow $((s / 1024)) GiB not run"
	fi
	sep=','
done
echo "$line"
