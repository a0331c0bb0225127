# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# report-lib.sh - helpers for the report scripts (goals.sh, icount-compare.sh,
# plot.sh, summary.sh; sourced, not run): their shell options, common
# arguments and the CSV access.  The caller defines here (this directory)
# and usage(); this sets prog.

set -eu
set -o pipefail
export LC_ALL=C
prog=$(basename "$0")

# results_arg "$@": the one optional argument RESULTS_DIR (default
# ../results) or --help (usage()); sets results to its absolute path.
# Exits 2 on bad arguments or if the directory does not exist.
results_arg() {
	# shellcheck disable=SC2154	# prog: the caller's
	case ${1-} in
	-h | --help) usage; exit 0 ;;
	-*) echo "$prog: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	[ $# -le 1 ] || { echo "$prog: too many arguments (try --help)" >&2; exit 2; }
	results=${1:-$here/../results}
	[ -d "$results" ] || { echo "$prog: no directory $results" >&2; exit 2; }
	results=$(cd "$results" && pwd)
}

# csv_select FILE COND COLUMN...: the named columns, space separated, of
# the rows of FILE (CSV with a header line) for which the awk expression
# COND is true; COND sees the row as f["column"].  Status 1 and a message
# if FILE lacks one of the columns.
csv_select() {
	local file=$1 cond=$2

	shift 2
	awk -F, -v cols="$*" -v file="$file" '
	NR == 1 {
		for (i = 1; i <= NF; i++) {
			name[i] = $i
			has[$i] = 1
		}
		n = split(cols, want, " ")
		for (j = 1; j <= n; j++)
			if (!(want[j] in has)) {
				printf "%s: no column %s\n", file, want[j] >"/dev/stderr"
				exit 1
			}
		next
	}
	{
		for (i = 1; i <= NF; i++)
			f[name[i]] = $i
	}
	'"$cond"' {
		line = f[want[1]]
		for (j = 2; j <= n; j++)
			line = line " " f[want[j]]
		print line
	}' "$file"
}

# csv_values FILE COLUMN: the distinct values of COLUMN, in order of appearance
csv_values() {
	csv_select "$1" 1 "$2" | awk '!seen[$0]++'
}
