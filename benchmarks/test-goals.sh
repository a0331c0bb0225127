#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# test-goals.sh - goals.sh against made-up CSVs whose verdicts are known:
# a goal on the limit is met, one past it is not, a goal whose CSV or
# column is missing is "not run" (never met), and no CSV at all is an
# error.  make check runs it.

set -eu
set -o pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-goals.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0

# expect NAME DIR: goals.sh DIR prints exactly the lines on stdin
expect() {
	local got

	got=$("$here/goals.sh" "$2" 2>&1) || true
	if [ "$got" = "$(cat)" ]; then
		echo "ok: $1"
	else
		echo "FAIL: $1; goals.sh printed:"
		printf '%s\n' "$got" | sed 's/^/    /'
		failed=1
	fi
}

all=$tmp/all
mkdir "$all"
cat >"$all/forkbench-floor.csv" <<'EOF'
size_mib,mode,metric,median_ms,min_ms,max_ms,reps
1,plain,fork,1.000,0.9,1.1,7
1,plain,fork_exit_wait,2.000,1.9,2.1,7
EOF
cat >"$all/forkbench.csv" <<'EOF'
size_mib,mode,metric,median_ms,min_ms,max_ms,reps
1024,plain,fork,50.000,49,51,7
1024,cow,fork_exit_wait,9.000,8,10,7
1024,cow,fork,1.250,1.2,1.3,7
8192,cow,fork,1.600,1.5,1.7,7
EOF
cat >"$all/kvsnap.csv" <<'EOF'
mib,mode,clients,set_pct,snapshots,fork_median_us,fork_max_us,snap_median_ms,during_reqs,during_p50_us,during_p99_us,during_max_us,outside_reqs,outside_p50_us,outside_p99_us,outside_max_us,cow_pte_shared
1024,plain,4,50,5,80000,90000,6700,1000,600,8000,9000,1000,300,2600,4000,0
1024,cow,4,50,5,1500,2200,6700,1000,600,6000,9000,1000,300,5000,4000,2560
4096,plain,4,50,5,80000,90000,6700,1000,600,9000,9000,1000,300,2600,4000,0
4096,cow,4,50,5,1500,2200,6700,1000,600,9100,9000,1000,300,9000,4000,2560
EOF
# touch_pct 1 spread: child 1.10, parent 1.30 (the worst); 100%: 1.10 at most
cat >"$all/touchbench.csv" <<'EOF'
size_mib,mode,who,pattern,touch_pct,total_median_ms
1024,plain,child,spread,1,10.0
1024,cow,child,spread,1,11.0
1024,plain,parent,spread,1,10.0
1024,cow,parent,spread,1,13.0
1024,plain,parent,seq,1,10.0
1024,cow,parent,seq,1,50.0
1024,plain,child,spread,100,100.0
1024,cow,child,spread,100,110.0
1024,plain,parent,seq,100,100.0
1024,cow,parent,seq,100,90.0
EOF
cat >"$all/redis-bgsave.csv" <<'EOF'
size_mib,mode,rep,fork_usec,cow_pte_shared,cow_pte_copied
4096,plain,1,1,0,0
4096,plain,median,300000,0,0
4096,cow,median,3000,2000,200
1024,cow,median,3000,500,51
EOF
expect "verdicts at and past each limit" "$all" <<'EOF'
goal: fork floor, cow 1 GiB / plain 1 MiB: 1.250 / 1.000 ms = 1.25x (target <= 1.25x): met
goal: fork floor, cow 8 GiB / plain 1 MiB: 1.600 / 1.000 ms = 1.60x (target <= 1.5x): NOT met
goal: kvsnap 1024 MiB, p99 during snapshots, cow / plain: 6.0 / 8.0 ms = 0.75x (target <= 1.00x): met
goal: kvsnap 1024 MiB, cow p99 during / outside snapshots: 6.0 / 5.0 ms = 1.20x (plain 3.08x) (target <= 1.20x): met
goal: kvsnap 4096 MiB, p99 during snapshots, cow / plain: 9.1 / 9.0 ms = 1.01x (target <= 1.00x): NOT met
goal: kvsnap 4096 MiB, cow p99 during / outside snapshots: 9.1 / 9.0 ms = 1.01x (plain 3.46x) (target <= 1.20x): met
goal: touchbench 1024 MiB, worst cow/plain total, 1% writes: 1.30 (parent, spread) (target <= 1.2): NOT met
goal: touchbench 1024 MiB, worst cow/plain total, 100% writes: 1.10 (child, spread) (target <= 1.1): met
goal: redis 4 GiB latest_fork_usec, plain / cow: 300000 / 3000 us = 100.0x (target >= 100x): met
goal: redis 4096 MiB BGSAVE, table copies / tables shared: 200 / 2000 = 10% (target <= 10%): met
goal: redis 1024 MiB BGSAVE, table copies / tables shared: 51 / 500 = 10% (target <= 10%): met
EOF

# The same run without the floor, 8 GiB, kvsnap's plain runs and the
# copied column: each goal that needs them is not run.
part=$tmp/part
mkdir "$part"
grep -v '^8192' "$all/forkbench.csv" >"$part/forkbench.csv"
grep -v ',plain,' "$all/kvsnap.csv" >"$part/kvsnap.csv"
cut -d, -f1-5 "$all/redis-bgsave.csv" >"$part/redis-bgsave.csv"
expect "missing CSVs and columns are not run" "$part" <<'EOF'
goal: fork floor, cow 1 GiB / plain 1 MiB: - (target <= 1.25x): not run
goal: fork floor, cow 8 GiB / plain 1 MiB: - (target <= 1.5x): not run
goal: kvsnap 1024 MiB, p99 during snapshots, cow / plain: - (target <= 1.00x): not run
goal: kvsnap 1024 MiB, cow p99 during / outside snapshots: 6.0 / 5.0 ms = 1.20x (target <= 1.20x): met
goal: kvsnap 4096 MiB, p99 during snapshots, cow / plain: - (target <= 1.00x): not run
goal: kvsnap 4096 MiB, cow p99 during / outside snapshots: 9.1 / 9.0 ms = 1.01x (target <= 1.20x): met
goal: touchbench, worst cow/plain total: - (target <= 1.2 at 1%, <= 1.1 at 100%): not run
goal: redis 4 GiB latest_fork_usec, plain / cow: 300000 / 3000 us = 100.0x (target >= 100x): met
goal: redis BGSAVE, table copies / tables shared: - (target <= 10%): not run
EOF

mkdir "$tmp/none"
if "$here/goals.sh" "$tmp/none" >/dev/null 2>&1; then
	echo "FAIL: a directory without CSVs is not an error"
	failed=1
else
	echo "ok: no CSV is an error"
fi
exit $failed
