#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# packaging/build-rpm.sh [OUTDIR]: the RPMs of packaging/rpm/libmitogen.spec
# (libmitogen, -devel, -static, mitogen) into OUTDIR (default build/rpm),
# with rpmbuild -bb from a tarball of the source as git sees it. `make rpm`
# runs it. On Debian (the `rpm` package gives rpmbuild) the Fedora
# BuildRequires are not in any rpm database: RPMBUILD_FLAGS=--nodeps, with
# scripts/deps.sh's Debian packages installed instead. Not run by make
# check (CI time); the spec's %check runs the example.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
out=${1:-build/rpm}
case $out in /*) ;; *) out=$src/$out ;; esac
command -v rpmbuild >/dev/null || { echo "build-rpm: no rpmbuild (Debian: apt-get install rpm)" >&2; exit 1; }

version=$(sed -n 's/^Version: *//p' packaging/rpm/libmitogen.spec)
rm -rf "$out"
mkdir -p "$out/SOURCES" "$out/stage/libmitogen-$version"
git ls-files -z --cached --others --exclude-standard |
	xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' |
	tar --null -T - -cf - | tar -C "$out/stage/libmitogen-$version" -xf -
tar -C "$out/stage" -czf "$out/SOURCES/libmitogen-$version.tar.gz" "libmitogen-$version"
rm -rf "$out/stage"
# shellcheck disable=SC2086 # RPMBUILD_FLAGS is a list of options
rpmbuild -bb ${RPMBUILD_FLAGS-} --define "_topdir $out" packaging/rpm/libmitogen.spec
find "$out/RPMS" -name '*.rpm'
