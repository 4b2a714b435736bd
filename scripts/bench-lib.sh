# SPDX-License-Identifier: MIT
# scripts/bench-lib.sh: what scripts/bench-fleet.sh and bench-files.sh share,
# sourced by both.

# bench_need_pdsh NAME: pdsh (pdcp) and clush, installed from Debian's
# packages for the benchmark only when missing; exits naming NAME if not.
bench_need_pdsh() {
	command -v pdsh >/dev/null && command -v pdcp >/dev/null &&
		command -v clush >/dev/null && return 0
	echo "$1: installing pdsh and clustershell (for this benchmark only)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q pdsh clustershell >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q pdsh clustershell >/dev/null; } ||
		{ echo "$1: cannot install pdsh and clustershell" >&2; exit 1; }
}
