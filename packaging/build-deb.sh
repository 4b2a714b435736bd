#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# packaging/build-deb.sh [OUTDIR]: build the Debian packages libmitogen0,
# libmitogen-dev and mitogen (and their -dbgsym) into OUTDIR (default
# build/deb) with `dpkg-buildpackage -us -uc -b`, then run lintian on them
# when it is installed (LINTIAN=0: don't). `make deb` runs it.
#
# dpkg-buildpackage wants debian/ at the top of the source tree; this
# project keeps it in packaging/debian/. So the source as git sees it
# (tracked files and new ones not ignored: no build/) is copied to
# OUTDIR/libmitogen-VERSION/ with packaging/debian/ as its debian/, and
# built there: the checkout's own build/ is never touched.
#
# Environment: DEB_BUILD_OPTIONS (e.g. "nocheck parallel=2"), passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
out=${1:-build/deb}
case $out in /*) ;; *) out=$src/$out ;; esac

version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
tree=$out/libmitogen-$version
rm -rf "$out"
mkdir -p "$tree"

if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$src" ls-files -z --cached --others --exclude-standard |
		xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
		tar -C "$src" --null -T - -cf - | tar -C "$tree" -xf -
else
	tar -C "$src" --exclude=./build --exclude=./.git -cf - . | tar -C "$tree" -xf -
fi
rm -rf "$tree/debian"
cp -a packaging/debian "$tree/debian"

cd "$tree"
dpkg-buildpackage -us -uc -b
cd "$out"
ls -1 ./*.deb

if [ "${LINTIAN:-1}" = 1 ] && command -v lintian >/dev/null; then
	# Fails on errors and warnings; the tags left are explained in
	# packaging/debian/*.lintian-overrides.
	lintian --fail-on error,warning --suppress-tags-from-file /dev/null ./*.changes
fi
