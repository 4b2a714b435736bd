#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/check-symbols.sh [LIBRARY.so]: the exported ABI is exactly what the
# public headers declare.
#
# Compares the dynamic symbols that libmitogen.so defines (nm -D
# --defined-only) with the functions and variables that
# include/mitogen/*.h declare MG_API, and with the global patterns of the
# version script libmitogen.map. Fails, listing the names, when
#   - an exported symbol does not start with mg_,
#   - an exported symbol matches no global pattern of the version script,
#   - an exported symbol is declared MG_API in no header (an ABI leak),
#   - a header declares an MG_API name the library does not export.
set -euo pipefail
cd "$(dirname "$0")/.."

lib=${1:-build/libmitogen.so}
map=libmitogen.map

[ -f "$lib" ] || { echo "check-symbols: $lib not found (run make first)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Exported: defined dynamic symbols, less the version node names (type A).
nm -D --defined-only "$lib" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }' |
	sort -u >"$tmp/exported"

# Declared: every MG_API declaration in the headers, comments and
# preprocessor lines removed, taken up to its ';' or '{'. The name is the
# identifier before the first '(' (a function), else the last identifier
# (a variable).
cat include/mitogen/*.h | perl -0777 -ne '
	s{/\*.*?\*/}{ }gs;		# block comments
	s{//[^\n]*}{}g;			# line comments
	s{^[ \t]*#(?:[^\n]*\\\n)*[^\n]*}{}gm;	# preprocessor lines
	while (/\bMG_API\b([^;{]*)/g) {
		my $d = $1;
		$d =~ s/__attribute__\s*\(\(.*?\)\)//gs;
		if ($d =~ /([A-Za-z_]\w*)\s*\(/) { print "$1\n" }
		elsif ($d =~ /([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*$/) { print "$1\n" }
	}' | sort -u >"$tmp/declared"

# Global patterns of the version script (globs such as mg_* allowed).
perl -0777 -ne '
	s{/\*.*?\*/}{ }gs; s{#[^\n]*}{}g;
	while (/global:(.*?)(?:local:|\})/gs) {
		print "$_\n" for grep { length } map { s/^\s+|\s+$//gr } split /;/, $1;
	}' "$map" >"$tmp/patterns"

fail=0
report() {		# report TITLE FILE
	if [ -s "$2" ]; then
		echo "check-symbols: $1:"
		sed 's/^/    /' "$2"
		fail=1
	fi
}

grep -v '^mg_' "$tmp/exported" >"$tmp/not_mg" || true
report "exported symbols that do not start with mg_" "$tmp/not_mg"

: >"$tmp/unmapped"
while read -r sym; do
	matched=0
	while read -r pat; do
		# shellcheck disable=SC2254 # the pattern is a glob on purpose
		case $sym in $pat) matched=1; break ;; esac
	done <"$tmp/patterns"
	[ $matched = 1 ] || echo "$sym" >>"$tmp/unmapped"
done <"$tmp/exported"
report "exported symbols that no global pattern of $map matches" "$tmp/unmapped"

comm -23 "$tmp/exported" "$tmp/declared" | grep '^mg_' >"$tmp/undeclared" || true
report "exported symbols declared MG_API in no include/mitogen/*.h (drop MG_API or declare them)" "$tmp/undeclared"

comm -13 "$tmp/exported" "$tmp/declared" >"$tmp/missing" || true
report "MG_API declarations in include/mitogen/*.h that $lib does not export (missing definition, or not linked in Kbuild lib-y)" "$tmp/missing"

if [ $fail = 0 ]; then
	echo "check-symbols: ok, $(wc -l <"$tmp/exported") symbols exported, all mg_*, all declared MG_API, none missing"
fi
exit $fail
