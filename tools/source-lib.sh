# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# source-lib.sh - the pinned kernel source: read the pin, fetch a Debian
# linux-source package into build/source/, verify it, unpack it.  Sourced by
# tools/prepare-source, tools/check-latest and tools/refresh-base; the
# caller sets $top (the project) and $build (build/), and defines die().
#
# Packages are fetched with "apt-get download", which checks them against
# the archive's signed index; the sha256 in kernel-patches/base pins the
# exact file on top of that, so that a rebuilt or republished package with
# the same version can never slip in.

pin_file=${COWPT_BASE_FILE:-$top/kernel-patches/base}
srcdir=$build/source

# read_pin: sets pin_pkg, pin_version and pin_sha256 from kernel-patches/base.
read_pin() {
	[ -f "$pin_file" ] || die "$pin_file is missing: it names the kernel source the series applies to"
	pin_pkg=$(awk '$1 == "package" {print $2}' "$pin_file")
	pin_version=$(awk '$1 == "version" {print $2}' "$pin_file")
	pin_sha256=$(awk '$1 == "sha256" {print $2}' "$pin_file")
	[ -n "$pin_pkg" ] && [ -n "$pin_version" ] && [[ $pin_sha256 =~ ^[0-9a-f]{64}$ ]] ||
		die "$pin_file needs 'package', 'version' and a 64-digit 'sha256' line"
}

# deb_path PKG VERSION [ARCH]: where the package file lives under
# build/source/ (ARCH defaults to all, linux-source's).
deb_path() { echo "$srcdir/${1}_${2}_${3:-all}.deb"; }

# apt_refresh: update the package lists when they are missing or older than
# an hour (root only: apt-get download and apt-cache read them).
apt_refresh() {
	local lists=/var/lib/apt/lists newest
	[ "$(id -u)" = 0 ] || return 0
	newest=$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -60 -print -quit 2>/dev/null)
	[ -n "$newest" ] && return 0
	echo "${0##*/}: apt-get update (package lists missing or older than an hour)" >&2
	apt-get update -qq >&2 || echo "${0##*/}: apt-get update failed; using the lists there are" >&2
}

# fetch_deb PKG VERSION [ARCH]: download PKG=VERSION into build/source/
# unless it is there already; prints the file's path.
fetch_deb() {
	local pkg=$1 ver=$2 arch=${3:-all} deb tmp log
	deb=$(deb_path "$pkg" "$ver" "$arch")
	if [ -f "$deb" ]; then
		echo "$deb"
		return 0
	fi
	mkdir -p "$srcdir"
	tmp=$(mktemp -d "$srcdir/download.XXXXXX")
	log=$tmp/apt.log
	echo "${0##*/}: downloading $pkg $ver into ${srcdir#"$top"/}/" >&2
	if ! (cd "$tmp" && apt-get download -q "$pkg=$ver") >"$log" 2>&1; then
		apt_refresh
		(cd "$tmp" && apt-get download -q "$pkg=$ver") >"$log" 2>&1 || {
			sed 's/^/  apt-get: /' "$log" >&2
			rm -rf "$tmp"
			die "cannot download $pkg $ver. If the archive no longer carries it ('apt-cache madison $pkg' lists what it has), the series must be refreshed onto a version it has: see Documentation/testing.md, \"Refreshing the series for a new 6.12.y\""
		}
	fi
	# apt-get download names the file after the archive's spelling of the
	# version (an epoch's ':' becomes %3a); there is exactly one.
	mv "$tmp"/*.deb "$deb"
	rm -rf "$tmp"
	echo "$deb"
}

# verify_deb FILE SHA256: refuse a package that is not the pinned one.
verify_deb() {
	local deb=$1 want=$2 have
	have=$(sha256sum "$deb" | cut -d' ' -f1)
	[ "$have" = "$want" ] && return 0
	local label="recorded in ${pin_file#"$top"/}:"
	die "sha256 mismatch for $deb:
  $label $want
  $(printf '%-*s' ${#label} 'the file has:') $have
This is not the package the series was tested on.  If the file is damaged,
delete it and run the command again to re-download it.  If the archive has
really republished this version, re-pin deliberately with tools/refresh-base
and re-test (Documentation/testing.md)."
}

# unpack_deb FILE DIR: unpack the source tarball inside the package into
# DIR/linux-source-6.12 without installing anything.
unpack_deb() {
	local deb=$1 dir=$2
	mkdir -p "$dir"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xO ./usr/src/linux-source-6.12.tar.xz |
		tar -xJ -C "$dir" ||
		die "cannot unpack usr/src/linux-source-6.12.tar.xz from $deb"
	[ -f "$dir/linux-source-6.12/Makefile" ] || die "$deb did not hold a linux-source-6.12 tree"
}

# newest_version PKG: the newest version of PKG the archive offers.
newest_version() {
	local pkg=$1 best= v
	apt_refresh
	for v in $(apt-cache madison "$pkg" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'); do
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	echo "$best"
}

# load_series: the patch files of kernel-patches/series, in order, into the
# array "patches" (full paths).
load_series() {
	local line
	patches=()
	[ -f "$top/kernel-patches/series" ] || return 0
	while read -r line; do
		line=${line%%#*}
		line=$(echo "$line" | xargs)
		[ -n "$line" ] || continue
		[ -f "$top/kernel-patches/$line" ] || die "series names $line, which is not in kernel-patches/"
		patches+=("$top/kernel-patches/$line")
	done <"$top/kernel-patches/series"
}

# nr_fixes: how many entries of kernel-patches/series are in its first
# part, the unrelated fixes (kernel-patches/fixes/); they come first.
nr_fixes() {
	[ -f "$top/kernel-patches/series" ] || { echo 0; return; }
	grep -c '^fixes/' "$top/kernel-patches/series" || true
}

# tag_fixes GIT: tag cowpt-fixes in the tree GIT at the last commit of the
# fixes part (cowpt-base + nr_fixes commits on the current branch), the
# boundary that export-series writes the two parts from.
tag_fixes() {
	local git=$1 n at
	n=$(nr_fixes)
	if [ "$n" -eq 0 ]; then
		at=$(git -C "$git" rev-parse cowpt-base)
	else
		at=$(git -C "$git" rev-list --reverse cowpt-base..HEAD | sed -n "${n}p")
		[ -n "$at" ] || die "the tree has fewer than the $n fix commits the series lists"
	fi
	git -C "$git" tag -f cowpt-fixes "$at" >/dev/null
}

# base_subject VERSION: the subject of the commit that holds the pristine
# tree; prepare-source and check-series read the version back from it.
base_subject() {
	local dir=$1 ver=$2
	echo "Linux $(make -s -C "$dir" kernelversion) from Debian linux-source-6.12 $ver"
}

# import_tree GITDIR SRCDIR: hash the tree SRCDIR into the object store of
# the git tree GITDIR (the kernel's own .gitignore applies, as for the base
# commit) and print the tree id; nothing in GITDIR's work tree changes.
import_tree() {
	local git=$1 dir=$2 idx tree
	idx=$(mktemp)
	rm -f "$idx"
	GIT_INDEX_FILE=$idx git -C "$git" --work-tree="$dir" add -A -f . >/dev/null ||
		{ rm -f "$idx"; die "cannot import $dir into $git"; }
	tree=$(GIT_INDEX_FILE=$idx git -C "$git" write-tree)
	rm -f "$idx"
	echo "$tree"
}

# failed_files: the files that git apply or git am (on stdin) could not patch.
failed_files() {
	sed -n 's/^error: patch failed: \(.*\):[0-9]*$/\1/p; s/^error: \(.*\): does not exist in index$/\1/p' |
		sort -u | xargs
}

# trial_apply GITDIR TREE: apply the series, in order, to TREE in a scratch
# index; nothing else in GITDIR changes.  Returns 0 if every patch applies;
# otherwise 1, with apply_fail_n (the patch's number in the series),
# apply_fail_patch, apply_fail_files (the files that did not apply) and
# apply_fail_log (git apply's words) set.
trial_apply() {
	local git=$1 tree=$2 idx n=0 p
	local -a patches	# load_series fills this copy, not the caller's
	idx=$(mktemp)
	GIT_INDEX_FILE=$idx git -C "$git" read-tree "$tree"
	load_series
	for p in "${patches[@]}"; do
		n=$((n + 1))
		if ! apply_fail_log=$(GIT_INDEX_FILE=$idx git -C "$git" apply --cached "$p" 2>&1); then
			apply_fail_n=$n
			apply_fail_patch=${p##*/}
			apply_fail_files=$(printf '%s\n' "$apply_fail_log" | failed_files)
			rm -f "$idx"
			return 1
		fi
	done
	rm -f "$idx"
	return 0
}
