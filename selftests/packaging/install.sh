#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# selftests/packaging/install.sh BUILD_DIR: the Debian packages, as a user
# gets them. Builds libmitogen0, libmitogen-dev and mitogen
# (packaging/build-deb.sh: dpkg-buildpackage -us -uc -b, then lintian,
# which fails on any error or warning not explained in an override), and
# checks what each .deb holds; installs them (apt-get on the local .debs:
# dpkg -i that waits for the dpkg lock); compiles examples/hello.c with
# nothing but `pkg-config --cflags --libs mitogen`, and again with
# --static, and runs both; checks `man -w` for mitogen(1), libmitogen(3)
# and libmitogen(7), that bash completion loads and offers every long
# option of `mitogen --help`, that `mitogen --version`, `pkg-config
# --modversion mitogen` and the package agree, and that the installed
# tool runs a command; then removes the packages (also when a check
# failed) and checks nothing is left.
#
# Runs as root (dpkg). Skipped (exit 77, saying why) where it cannot run:
# not root, dpkg-buildpackage absent and not installable, or the packages
# are installed already by someone else (they are not ours to remove).
# Runs one at a time on a machine (flock), since it changes /usr.
# DEB_BUILD_OPTIONS=nocheck: the test suite is make check's, not the
# package build's.
set -uo pipefail
build=${1:?usage: install.sh BUILD_DIR}
src=$(pwd)
pkgs=(libmitogen0 libmitogen-dev mitogen)

if [ "$(id -u)" -ne 0 ]; then
	echo "not root: installing packages needs root"
	exit 77
fi
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
	bash scripts/deps.sh >/dev/null 2>&1
	if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
		echo "dpkg-buildpackage/debhelper are missing and scripts/deps.sh could not install them"
		exit 77
	fi
fi

exec 9>/run/lock/libmitogen-install-test.lock
flock -w 1800 9 || { echo "could not take /run/lock/libmitogen-install-test.lock in 30 min"; exit 1; }

for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		echo "$p is installed already, not by this test: not touching it"
		exit 77
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mg-install.XXXXXX")
installed=0
cleanup() {
	if [ $installed = 1 ]; then
		apt-get -qq -y -o DPkg::Lock::Timeout=600 purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1 ||
			{ echo "FAILED: removing the packages:"; cat "$tmp/purge.log"; }
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

fail=0
check() {		# check WHAT COMMAND...: run it, say ok or FAILED
	local what=$1
	shift
	if "$@" >"$tmp/check.out" 2>&1; then
		echo "ok: $what"
	else
		echo "FAILED: $what:"
		sed 's/^/    /' "$tmp/check.out" | head -n 30
		fail=1
	fi
}

# --- build -------------------------------------------------------------
start=$(date +%s)
if ! DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" bash packaging/build-deb.sh "$tmp/deb" \
		>"$tmp/build.log" 2>&1; then
	echo "FAILED: packaging/build-deb.sh (dpkg-buildpackage, lintian):"
	tail -n 40 "$tmp/build.log"
	exit 1
fi
echo "ok: dpkg-buildpackage -us -uc -b and lintian, $(($(date +%s) - start)) s"
grep -E '^(W|E|I|O): ' "$tmp/build.log" | sed 's/^/    lintian: /'
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb() { echo "$tmp/deb/${1}_${version}_${arch}.deb"; }

has() {			# has PACKAGE PATH...: the .deb holds each PATH
	local p=$1 f
	shift
	dpkg-deb -c "$(deb "$p")" | awk '{ print $6 }' | sed 's|^\.||' >"$tmp/list"
	for f in "$@"; do
		grep -qx "$f" "$tmp/list" || { echo "$p: no $f"; return 1; }
	done
}
check "libmitogen0 holds the shared library" has libmitogen0 \
	"/usr/lib/$ma/libmitogen.so.$version" "/usr/lib/$ma/libmitogen.so.0"
check "libmitogen-dev holds headers, .so, .a, .pc, libmitogen(3)" has libmitogen-dev \
	/usr/include/mitogen/mitogen.h "/usr/lib/$ma/libmitogen.so" "/usr/lib/$ma/libmitogen.a" \
	"/usr/lib/$ma/pkgconfig/mitogen.pc" /usr/share/man/man3/libmitogen.3.gz
check "mitogen holds the tool, mitogen(1), libmitogen(7), the completion" has mitogen \
	/usr/bin/mitogen /usr/share/man/man1/mitogen.1.gz /usr/share/man/man7/libmitogen.7.gz \
	/usr/share/bash-completion/completions/mitogen
check "libmitogen0's shlibs and symbols files" bash -c \
	"dpkg-deb -I '$(deb libmitogen0)' shlibs | grep -q 'libmitogen 0 libmitogen0' &&
	 dpkg-deb -I '$(deb libmitogen0)' symbols | grep -q 'mg_call@LIBMITOGEN_0.1'"

# --- install -------------------------------------------------------------
if ! apt-get -qq -y --no-install-recommends -o DPkg::Lock::Timeout=600 install \
		"$(deb libmitogen0)" "$(deb libmitogen-dev)" "$(deb mitogen)" >"$tmp/install.log" 2>&1; then
	installed=1
	echo "FAILED: installing the packages:"; tail -n 20 "$tmp/install.log"
	exit 1
fi
installed=1
echo "ok: installed ${pkgs[*]} $version"

# --- use -----------------------------------------------------------------
# The example as a user compiles it: the installed header, library and
# .pc only (no -I or -L into the source or build tree).
cp examples/hello.c "$tmp/hello.c"
cd "$tmp" || exit 1
unset PKG_CONFIG_PATH LD_LIBRARY_PATH
hello() {		# hello EXE: runs and greets
	local out
	out=$(timeout 60 "$1") || { echo "$1 exited $?: $out"; return 1; }
	echo "$out"
	grep -q '^hello, world from pid [0-9]' <<<"$out"
}
check "cc hello.c \$(pkg-config --cflags --libs mitogen)" \
	bash -c 'cc -o hello hello.c $(pkg-config --cflags --libs mitogen)'
check "hello (shared) runs, linked to the installed libmitogen.so.0" \
	bash -c "$(declare -f hello)
		ldd ./hello | grep -Eq 'libmitogen.so.0 => (/usr)?/lib/$ma/libmitogen.so.0' ||
			{ echo 'not linked to the installed library:'; ldd ./hello; exit 1; }
		hello ./hello"
check "cc -static hello.c \$(pkg-config --static --cflags --libs mitogen)" \
	bash -c 'cc -static -o hello-static hello.c $(pkg-config --static --cflags --libs mitogen)'
check "hello (static) runs" bash -c "$(declare -f hello); hello ./hello-static"
cd "$src" || exit 1

check "man -w mitogen" bash -c 'test "$(man -w mitogen)" = /usr/share/man/man1/mitogen.1.gz'
check "man -w 3 libmitogen" bash -c 'test "$(man -w 3 libmitogen)" = /usr/share/man/man3/libmitogen.3.gz'
check "man -w 7 libmitogen" bash -c 'test "$(man -w 7 libmitogen)" = /usr/share/man/man7/libmitogen.7.gz'
check "man mitogen renders every section" bash -c \
	'out=$(MANWIDTH=80 man mitogen 2>&1) && for s in SYNOPSIS COMMANDS OPTIONS TARGETS "EXIT STATUS" ENVIRONMENT EXAMPLES; do
		grep -q "^$s" <<<"$out" || { echo "no $s"; exit 1; }; done'

# The completion as bash-completion loads it on demand, offering every
# long option `mitogen --help` lists and the hop kinds.
complete_words() {	# complete_words WORD...: what TAB offers after them
	bash -c 'source /usr/share/bash-completion/bash_completion
		_completion_loader mitogen
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_mitogen mitogen "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
check "bash completion: subcommands" bash -c \
	"$(declare -f complete_words); test \"\$(complete_words mitogen '' | sort | paste -sd' ')\" = 'audit call copy fakessh fetch rsync run scp script stats'"
check "bash completion: every long option of mitogen --help" bash -c \
	"$(declare -f complete_words); offered=\$(complete_words mitogen run --);
	 for o in \$(mitogen --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		case \$o in --version | --pid | --watch) continue ;; esac
		grep -qx -- \"\$o\" <<<\"\$offered\" || { echo \"not offered: \$o\"; exit 1; }
	 done"
check "bash completion: every long option of mitogen copy --help" bash -c \
	"$(declare -f complete_words); offered=\$(complete_words mitogen copy --);
	 for o in \$(mitogen copy --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -qx -- \"\$o\" <<<\"\$offered\" || { echo \"not offered: \$o\"; exit 1; }
	 done"
check "bash completion: every long option of mitogen audit --help" bash -c \
	"$(declare -f complete_words);
	 offered=\$(for s in verify show fetch keys; do complete_words mitogen audit \$s --; done);
	 for o in \$(mitogen audit --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -qx -- \"\$o\" <<<\"\$offered\" || { echo \"not offered: \$o\"; exit 1; }
	 done"
check "bash completion: mitogen stats --pid --watch" bash -c \
	"$(declare -f complete_words); test \"\$(complete_words mitogen stats -- | sort | paste -sd' ')\" = '--pid --watch'"
check "bash completion: hop kinds after -t" bash -c \
	"$(declare -f complete_words); complete_words mitogen run -t 'local/s' | grep -qx 'local/sudo'"

check "mitogen --version, pkg-config --modversion mitogen and the package agree" bash -c \
	"v=\$(mitogen --version) && pc=\$(pkg-config --modversion mitogen) &&
	 echo \"\$v / \$pc / $version\" &&
	 test \"\$v\" = \"mitogen $version (libmitogen $version)\" && test \"\$pc\" = '$version'"
check "the installed mitogen runs a command in a local child" bash -c \
	'test "$(cd / && timeout 60 mitogen run -q -- echo installed-ok)" = installed-ok'

# --- remove --------------------------------------------------------------
if apt-get -qq -y -o DPkg::Lock::Timeout=600 purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1; then
	installed=0
	echo "ok: removed ${pkgs[*]}"
else
	echo "FAILED: removing the packages:"; cat "$tmp/purge.log"; fail=1
fi
check "nothing of the packages is left" bash -c \
	"! test -e /usr/bin/mitogen && ! test -e /usr/include/mitogen && ! test -e /usr/lib/$ma/libmitogen.so.0 &&
	 ! pkg-config --exists mitogen && ! man -w mitogen"

echo "install test: $(($(date +%s) - start)) s"
exit $fail
