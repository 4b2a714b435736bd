#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# selftests/packaging/doc_blocks.sh BUILD_DIR: every ```c block of
# README.md and docs/*.md is a program a reader may copy: each is compiled
# with nothing but `cc $(pkg-config --cflags --libs mitogen)`, against the
# build tree (a mitogen.pc made from packaging/mitogen.pc.in pointing at
# BUILD_DIR and include/), and run; a block without main() is compiled
# only (cc -c). A block is named FILE#N (N counts the file's C blocks from
# 1); the arguments a block's program needs are in ARGS below.
# Run from the source tree by test_packaging.
set -uo pipefail
build=${1:?usage: doc_blocks.sh BUILD_DIR}
src=$(pwd)

# Arguments for the programs that need some.
declare -A ARGS=(
	["docs/reliability-liveness.md#1"]="2 1"	# hbcost: 2 children for 1 s
)

for t in cc pkg-config; do
	command -v $t >/dev/null || { echo "$t is not installed"; exit 77; }
done
[ -f "$build/libmitogen.so" ] || { echo "no $build/libmitogen.so: build first"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mg-docblocks.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

version=$(sed -n 's/^.define MG_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
	include/mitogen/common.h | paste -sd.)
sed -e "s|@PREFIX@|$src|g" -e "s|@LIBDIR@|$build|g" -e "s|@INCLUDEDIR@|$src/include|g" \
	-e "s|@VERSION@|$version|g" packaging/mitogen.pc.in >"$tmp/mitogen.pc"
export PKG_CONFIG_PATH=$tmp
flags=$(pkg-config --cflags --libs mitogen) || { echo "pkg-config failed"; exit 1; }
# The build tree has libmitogen.so; programs load it by its SONAME.
mkdir "$tmp/lib" && ln -s "$build/libmitogen.so" "$tmp/lib/libmitogen.so.0"
export LD_LIBRARY_PATH=$tmp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

total=0 failed=0
for doc in README.md docs/*.md; do
	[ -f "$doc" ] || continue
	# Each block to $tmp/<n>.c; prints the count.
	rm -f "$tmp"/blk-*.c
	n=$(awk -v dir="$tmp" '
		/^```c[ \t]*$/ { n++; out = dir "/blk-" n ".c"; inblk = 1; next }
		/^```/ && inblk { inblk = 0; close(out); next }
		inblk { print > out }
		END { print n + 0 }' "$doc")
	for ((i = 1; i <= n; i++)); do
		name="$doc#$i"
		c=$tmp/blk-$i.c
		exe=$tmp/prog
		total=$((total + 1))
		if ! grep -q '\bmain *(' "$c"; then
			# shellcheck disable=SC2086 # flags is a list of words
			if cc -c -o "$tmp/obj.o" "$c" $flags 2>"$tmp/err"; then
				echo "ok: $name compiles (no main: not run)"
			else
				echo "FAILED: $name does not compile:"; sed 's/^/    /' "$tmp/err"
				failed=$((failed + 1))
			fi
			continue
		fi
		# shellcheck disable=SC2086
		if ! cc -o "$exe" "$c" $flags 2>"$tmp/err"; then
			echo "FAILED: $name does not compile with \$(pkg-config --cflags --libs mitogen):"
			sed 's/^/    /' "$tmp/err"
			failed=$((failed + 1))
			continue
		fi
		# shellcheck disable=SC2086 # ARGS are words
		if timeout 120 "$exe" ${ARGS[$name]-} >"$tmp/out" 2>&1; then
			echo "ok: $name compiles and runs: $(head -n 1 "$tmp/out")"
		else
			echo "FAILED: $name exited $? when run:"; sed 's/^/    /' "$tmp/out" | head -n 20
			failed=$((failed + 1))
		fi
	done
done
echo "doc blocks: $((total - failed)) of $total ok"
[ "$total" -gt 0 ] || { echo "no C block found in README.md or docs/"; exit 1; }
[ "$failed" -eq 0 ]
