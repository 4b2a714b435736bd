#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# packaging/check-abi.sh [LIBRARY.so]: the library's ABI against the last
# released one, packaging/abi/libmitogen0.abi (abidw's XML of
# libmitogen.so.0 as released, public types only: --headers-dir
# include/mitogen). `make check-abi` runs it; so does make check
# (selftests/packaging/test_packaging).
#
# abidiff's exit status is a bit mask: 1 error, 2 usage, 4 the ABI
# changed, 8 the change is incompatible (a function or variable removed,
# a symbol version changed). That fails, and so does a changed type that
# breaks callers (a parameter or return type, a member moved, changed or
# removed, an enumerator's value); a compatible change (a new function, a
# member appended to a size-versioned options struct) is printed and
# passes. A release that breaks the ABI bumps the
# SONAME (Makefile SONAME, libmitogen.map, packaging/debian/ package name)
# and records a new baseline; a release that adds to it records a new one
# too:
#	make check-abi ABI_UPDATE=1     (packaging/abi/ rewritten from build/)
set -uo pipefail
cd "$(dirname "$0")/.."

lib=${1:-build/libmitogen.so}
base=packaging/abi/libmitogen0.abi

command -v abidiff >/dev/null || {
	echo "check-abi: abidiff not found (Debian: abigail-tools; scripts/deps.sh installs it)" >&2
	exit 2
}
[ -f "$lib" ] || { echo "check-abi: $lib not found (run make first)" >&2; exit 2; }

if [ "${ABI_UPDATE:-0}" = 1 ]; then
	abidw --no-corpus-path --no-comp-dir-path --headers-dir include/mitogen \
		--out-file "$base" "$lib" || exit 1
	echo "check-abi: wrote $base from $lib"
	exit 0
fi

# Opaque types: declared in include/mitogen/ (struct mg_router;) but
# defined only inside the library. Callers hold pointers to them and never
# see their layout, so a member added to one (the router's state, say)
# changes nothing a caller was built against: suppressed, found afresh
# from the headers each run so a new opaque type needs no edit here.
suppr=$(mktemp)
trap 'rm -f "$suppr"' EXIT
opaque=$(grep -ho '^struct mg_[a-z_0-9]*;' include/mitogen/*.h | sort -u |
	 sed 's/^struct \(.*\);$/\1/' |
	 while read -r t; do grep -q "^struct $t {" include/mitogen/*.h || echo "$t"; done |
	 paste -sd'|')
if [ -n "$opaque" ]; then
	printf '[suppress_type]\n  type_kind = struct\n  name_regexp = ^(%s)$\n' "$opaque" >"$suppr"
fi

out=$(abidiff --no-added-syms --suppressions "$suppr" --headers-dir2 include/mitogen \
	"$base" "$lib" 2>&1)
rc=$?
if [ $((rc & 3)) -ne 0 ]; then
	printf '%s\n' "$out"
	echo "check-abi: abidiff failed (exit status $rc)"
	exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
	printf '%s\n' "$out"
	echo "check-abi: INCOMPATIBLE change against $base (exit status $rc):" \
		"a released symbol is gone or changed; bump the SONAME or restore it"
	exit 1
fi
# abidiff counts a changed type as a change, not as incompatible: say
# which changes break callers built against the baseline. Appending a
# member to an options struct (every one starts with its size, `sz`, see
# MG_OPTS) or adding an enumerator does not; these do.
breaking='return type changed|parameter [0-9]+ of type .* changed:|parameter [0-9]+ of type .* was (added|removed)|data member deletion|data member change|offset changed|enumerator change|enumerator deletion|type name changed|underlying type .* changed'
if [ $((rc & 4)) -ne 0 ] && grep -Eq "$breaking" <<<"$out"; then
	printf '%s\n' "$out"
	echo "check-abi: INCOMPATIBLE change against $base (exit status $rc): these lines break callers:"
	grep -E "$breaking" <<<"$out" | sed 's/^ */    /'
	exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
	printf '%s\n' "$out"
	echo "check-abi: ok, compatible changes against $base (listed above)"
	exit 0
fi
echo "check-abi: ok, $lib has the ABI of $base"
