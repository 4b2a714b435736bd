#!/bin/sh
# SPDX-License-Identifier: MIT
#
# selftests/containers/standin.sh: a stand-in for the container CLIs that
# need a cluster or a daemon we cannot run here (kubectl, lxc for LXD,
# incus, buildah, machinectl), as Mitogen's own tests use. Called through
# a symlink named after the CLI. It checks that its arguments have exactly
# the shape the method must give (no TTY flag, the first stage as
# `/bin/sh -c SCRIPT` last), appends them (without the script) as one line
# to $MG_STANDIN_LOG, and runs the script here. Anything else: exit 2 with
# a message, as a real CLI would.
set -u
me=${0##*/}
bad() {
	echo "$me (stand-in): unexpected arguments: $*" >&2
	exit 2
}
all="$*"
words=""
# the tail: /bin/sh -c SCRIPT
[ $# -ge 3 ] || bad "$all"
eval "script=\${$#}"
eval "c=\${$(($# - 1))}"
eval "sh=\${$(($# - 2))}"
[ "$sh" = /bin/sh ] && [ "$c" = -c ] || bad "$all"
n=$(($# - 3))
i=0
for a; do
	i=$((i + 1))
	[ $i -le $n ] || break
	words="$words $a"
done
# shellcheck disable=SC2086
set -- $words
case $me in
kubectl)
	while [ $# -gt 0 ] && [ "$1" != exec ]; do shift; done
	[ "${1:-}" = exec ] && [ "${2:-}" = -i ] || bad "$all"
	shift 2
	[ "${1:-}" != -n ] || shift 2
	[ -n "${1:-}" ] || bad "$all"
	shift
	[ "${1:-}" != -c ] || shift 2
	[ "${1:-}" = -- ] && [ $# = 1 ] || bad "$all"
	;;
lxc | incus)
	[ "${1:-}" = exec ] && [ "${2:-}" = --mode=non-interactive ] && [ -n "${3:-}" ] &&
		[ "${4:-}" = -- ] && [ $# = 4 ] || bad "$all"
	;;
buildah)
	[ "${1:-}" = run ] || bad "$all"
	shift
	[ "${1:-}" != --user ] || shift 2
	[ -n "${1:-}" ] && [ "${2:-}" = -- ] && [ $# = 2 ] || bad "$all"
	;;
machinectl)
	[ "${1:-}" = shell ] && [ "${2:-}" = -q ] || bad "$all"
	shift 2
	[ "${1:-}" != --uid ] || shift 2
	[ -n "${1:-}" ] && [ $# = 1 ] || bad "$all"
	;;
*)
	bad "$all"
	;;
esac
echo "$me$words" >>"${MG_STANDIN_LOG:?}"
exec /bin/sh -c "$script"
