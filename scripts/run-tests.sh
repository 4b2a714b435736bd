#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/run-tests.sh [selftests/AREA/NAME ...]: run the selftests under
# prove, first from build/, then all again from build/asan/ (AddressSanitizer,
# LeakSanitizer, UBSan), then scripts/check-symbols.sh; end with one line
# "check: N passed, M failed". `make check` builds everything and calls this
# with the list from Kbuild; without arguments it runs every test binary
# found under build/selftests/.
#
# Environment:
#   TEST_TIMEOUT=300     seconds each test binary may run (then it is killed)
#   MG_CHECK_TREES="build build/asan"   which build trees to run
#   PROVE_FLAGS="..."    extra prove options (e.g. -v, -j2)
#   ASAN_CC=cc           compiler of the asan tree (for the LeakSanitizer probe)
#
# Each test binary gets, in its environment:
#   MG_TEST_BUILD_DIR    absolute path of its tree (build or build/asan):
#                        the tool is $MG_TEST_BUILD_DIR/mitogen, examples
#                        are $MG_TEST_BUILD_DIR/examples/NAME
#   MG_TEST_SRC_DIR      absolute path of the source tree
#   CMOCKA_MESSAGE_OUTPUT=TAP
#
# prove runs native executables with --exec: an empty interpreter runs the
# file itself. Here the "interpreter" is this script with --one, which adds
# the timeout and mends cmocka 1.1.5's TAP: it prints a skipped test as
# "not ok N # SKIP", which prove counts as a failure; TAP says "ok N # SKIP".
set -uo pipefail

if [ "${1-}" = --one ]; then
	# --one BINARY: run one test binary for prove.
	# Its output is also kept, TAP in build/test-logs/TREE/AREA/NAME.tap
	# and standard error in NAME.err, for the summary of what failed.
	shift
	out=/dev/null err=/dev/null
	if [ -n "${MG_TEST_LOG_DIR-}" ]; then
		out=$MG_TEST_LOG_DIR/${1#"$MG_TEST_TREE"/}
		mkdir -p "$(dirname "$out")"
		err=$out.err out=$out.tap
	fi
	timeout -k 10 "${TEST_TIMEOUT:-300}" "$@" 2> >(tee "$err" >&2) |
		sed -u 's/^not ok \([0-9][0-9]*\)\( *-*\) *# *SKIP/ok \1\2 # SKIP/' |
		tee "$out"
	rc=${PIPESTATUS[0]}
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "# $1: killed after TEST_TIMEOUT=${TEST_TIMEOUT:-300} s" | tee -a "$err" >&2
	fi
	exit "$rc"
fi

cd "$(dirname "$0")/.." || exit 1
src=$(pwd)

export TEST_TIMEOUT=${TEST_TIMEOUT:-300}
export CMOCKA_MESSAGE_OUTPUT=TAP
export MG_TEST_SRC_DIR=$src

trees=${MG_CHECK_TREES:-build build/asan}
if [ $# -gt 0 ]; then
	names=("$@")
else
	mapfile -t names < <(cd build && find selftests -type f -perm -u+x | sort)
fi
if [ ${#names[@]} -eq 0 ]; then
	echo "run-tests: no selftests to run (Kbuild selftests-y is empty?)" >&2
	exit 1
fi

# LeakSanitizer stops the world through ptrace; it cannot run where ptrace
# is denied (under strace or gdb, some containers). Find out with a program
# that leaks on purpose, and only then turn leak checking off, saying so.
lsan_probe() {
	local dir=build/asan exe=build/asan/lsan-probe out
	mkdir -p "$dir"
	printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void) { p = malloc(42); p = 0; return 0; }\n' |
		${ASAN_CC:-cc} -fsanitize=address -x c - -o "$exe" 2>/dev/null || {
		echo "could not build a probe with ${ASAN_CC:-cc}"
		return 1
	}
	out=$(ASAN_OPTIONS=detect_leaks=1 "$exe" 2>&1)
	case $out in
	*"LeakSanitizer: detected memory leaks"*) return 0 ;;
	*) echo "${out:-the probe leaked 42 bytes and LeakSanitizer said nothing}" | head -n 3; return 1 ;;
	esac
}

total_pass=0
total_fail=0
failed=

# What failed, at the end of the output where the tail of a CI log shows
# it: each failed binary's "not ok" lines with cmocka's reasons, then the
# last lines it wrote to standard error.
show_failures() {
	local tree bin log
	while read -r tree bin; do
		[ -n "$bin" ] || continue
		log=build/test-logs/$(basename "$tree")/${bin#"$tree"/}
		echo "== failed: $bin =="
		awk '/^not ok/ { show = 1 } /^ok / { show = 0 } show' "$log.tap" 2>/dev/null | head -n 30
		echo "-- its last lines on standard error:"
		tail -n 12 "$log.err" 2>/dev/null
	done <<<"$failed"
}
mkdir -p build/test-logs

# Count subtests from prove's summary: Tests=N, and per failed file
# "(Wstat: ... Tests: T Failed: F)"; a file that failed with F=0 (a crash,
# a bad plan, a timeout) counts as one failure.
count() {		# count LOG
	awk '
		/^Files=[0-9]+, Tests=[0-9]+/ { sub(/.*Tests=/, ""); sub(/,.*/, ""); tests = $0 + 0; seen = 1 }
		/\(Wstat: .*Tests: [0-9]+ Failed: [0-9]+\)/ {
			f = $0; sub(/.*Failed: /, "", f); sub(/\).*/, "", f); f += 0
			failed_sub += f; failed += (f > 0 ? f : 1)
		}
		END {
			if (!seen) { print 0, 1; exit }
			print tests - failed_sub, failed
		}' "$1"
}

for tree in $trees; do
	bins=()
	for n in "${names[@]}"; do
		bins+=("$tree/$n")
	done
	export MG_TEST_BUILD_DIR=$src/$tree MG_TEST_TREE=$tree
	export MG_TEST_LOG_DIR=$src/build/test-logs/$(basename "$tree")
	rm -rf "$MG_TEST_LOG_DIR"
	log=build/test-logs/prove-$(basename "$tree").log
	case $tree in
	*asan*)
		if why=$(lsan_probe); then
			leaks=1
		else
			leaks=0
			echo "run-tests: LeakSanitizer cannot run here, leak checks are OFF: $why"
		fi
		echo "== selftests, $tree (ASan+UBSan, detect_leaks=$leaks) =="
		export ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=0
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		;;
	*)
		echo "== selftests, $tree =="
		unset ASAN_OPTIONS UBSAN_OPTIONS
		;;
	esac
	# shellcheck disable=SC2086 # PROVE_FLAGS is a list of options
	prove --exec "bash scripts/run-tests.sh --one" --timer ${PROVE_FLAGS-} "${bins[@]}" 2>&1 | tee "$log"
	read -r p f < <(count "$log")
	failed+=$(sed -n "s|^\\($tree/[^ ]*\\) *(Wstat: .*|$tree \\1|p" "$log")$'\n'
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
done

echo "== exported symbols =="
if bash scripts/check-symbols.sh build/libmitogen.so; then
	total_pass=$((total_pass + 1))
else
	total_fail=$((total_fail + 1))
fi

show_failures
echo "check: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
