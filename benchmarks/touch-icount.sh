#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# touch-icount.sh - the deferred cost of CoW page tables (touchbench) in
# instruction-counted boots of one or more kernels, for changes to the
# break path that one TCG boot's wall time cannot resolve.

set -eu
set -o pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
prog=$(basename "$0")

usage() {
	cat <<EOF
usage: $prog [--bin DIR] [--out DIR] [--sizes MIB,...] [--pcts PCT,...]
             [--who parent,child] [--reps N] KERNEL...

Boot each KERNEL (a bzImage of the bench flavour) in turn with
tools/vm-run --icount 0 --smp 1, run touchbench there (plain fork and
clone3(CLONE_COW_PTE) side by side) and print, per kernel, touchbench's
ratio lines: cow total / plain total for each toucher and percentage.
Under -icount guest time is a count of guest instructions (1 ns each), so
kernels booted apart compare to a fraction of a percent; it counts work,
not cache or TLB effects.  touchbench fails, and so does this, if a CoW
fork did not share its tables.

  --bin DIR     built benchmarks (default $top/build/benchmarks)
  --out DIR     per-kernel results: DIR/N/output.log, touchbench's report
                (default $top/build/touch-icount)
  --sizes, --pcts, --who, --reps
                touchbench's options (defaults 1024, 1, parent,child, 5)
EOF
}

bin=$top/build/benchmarks
out=$top/build/touch-icount
sizes=1024 pcts=1 who=parent,child reps=5
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--pcts) pcts=$2; shift 2 ;;
	--who) who=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
[ -x "$bin/touchbench" ] || {
	echo "$prog: no $bin/touchbench (make -C benchmarks OUT=$bin KHDR=...)" >&2
	exit 2
}
bin=$(cd "$bin" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The region, the plain child's copy of its tables and the pages both copy
mem=$(( (${sizes##*,} * 5 / 2 + 1024) ))M
n=0
for k in "$@"; do
	n=$((n + 1))
	[ -r "$k" ] || { echo "$prog: cannot read kernel $k" >&2; exit 2; }
	echo "$prog: kernel $n: $k"
	"$top/tools/vm-run" --icount 0 --smp 1 --mem "$mem" --timeout 3600 \
		--kernel "$k" --out "$out/$n" -- \
		"$bin/touchbench" --modes plain,cow --who "$who" \
		--sizes "$sizes" --pcts "$pcts" --reps "$reps" >/dev/null ||
		{ echo "$prog: kernel $n failed, see $out/$n/output.log" >&2; exit 1; }
	grep '^touch .*ratio' "$out/$n/output.log" | sed "s/^/kernel $n: /"
done
