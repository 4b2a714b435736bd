#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-fleet.sh — run by `make bench-fleet` (root): the tool
# against pdsh and clush over a fleet of real sshd "hosts" on this machine
# (selftests/tools/fleet.sh start-many: fh001..fhN, each its own sshd with
# OpenSSH's defaults, MaxStartups 10:30:100, on 127.0.3.x), in one run:
#
#   true, 32 hosts at -f 32; 100 hosts at -f 32; 100 hosts at -f 100:
#       pdsh, clush, ours with the image cached, ours cold (every cache of
#       the user emptied first; the hosts share one user and one home, so
#       a cold run's concurrent starts each find no image and each send it)
#   10 commands in a row on 32 hosts at -f 32: ten pdsh runs, ten clush
#       runs, and ours as one invocation of ten steps (held connections)
#
# For each: wall seconds, the operator's CPU (user + system of the command
# and its children: ssh clients included) and the targets' CPU (every sshd,
# session and agent: the fleet runs in a cpuacct cgroup of its own, read
# before and after), per host; then ratios, pdsh / ours and clush / ours
# (above 1: ours is faster or cheaper). Within each repetition the programs
# run in turn, so a load change hits all of them alike; the median of the
# repetitions is shown.
#
# pdsh and clustershell are installed here (apt-get) when missing: they
# are for this benchmark only, not build dependencies.
#
# Environment:
#   MITOGEN           our tool (default build/mitogen)
#   BENCH_FLEET_HOSTS hosts in the fleet (default 100; rows over more
#                     hosts than this are skipped)
#   BENCH_FLEET_REPS  repetitions (default 3)
#   BENCH_FLEET_ONLY  a regex of row names to run (true32, true100f32,
#                     true100, steps10); default all
set -u
cd "$(dirname "$0")/.."

MITOGEN=${MITOGEN:-build/mitogen}
N=${BENCH_FLEET_HOSTS:-100}
REPS=${BENCH_FLEET_REPS:-3}
ONLY=${BENCH_FLEET_ONLY:-.}
OUT=build/bench/fleet
MITOGEN=$(readlink -f "$MITOGEN")

if [ "$(id -u)" != 0 ]; then
	echo "bench-fleet: needs root (sshd, useradd, a cgroup)" >&2
	exit 1
fi
. scripts/bench-lib.sh
bench_need_pdsh bench-fleet
[ -x "$MITOGEN" ] || { echo "bench-fleet: no tool at $MITOGEN (make first)" >&2; exit 1; }

mkdir -p "$OUT"
DIR=$(mktemp -d /tmp/mg-bench-fleet.XXXXXX)
CG=/sys/fs/cgroup/cpuacct/mg-bench-fleet.$$
[ -d /sys/fs/cgroup/cpuacct ] || CG=
cleanup() {
	selftests/tools/fleet.sh stop "$DIR" >/dev/null 2>&1
	if [ -n "$CG" ] && [ -d "$CG" ]; then
		# what is left (sessions ending) goes back to the root first
		for i in 1 2 3 4 5 6 7 8 9 10; do
			[ -s "$CG/cgroup.procs" ] || break
			while read -r p; do echo "$p" >/sys/fs/cgroup/cpuacct/cgroup.procs; done \
				<"$CG/cgroup.procs" 2>/dev/null
			sleep 0.2
		done
		rmdir "$CG" 2>/dev/null
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The fleet, its sshds in the cgroup (their sessions and agents follow).
if [ -n "$CG" ] && mkdir "$CG"; then
	(echo "$BASHPID" >"$CG/cgroup.procs" && exec selftests/tools/fleet.sh start-many "$DIR" "$N") \
		>"$OUT/port" || { echo "bench-fleet: the fleet did not start" >&2; exit 1; }
else
	CG=
	echo "bench-fleet: no cpuacct cgroup: target CPU shows n/a" >&2
	selftests/tools/fleet.sh start-many "$DIR" "$N" >"$OUT/port" ||
		{ echo "bench-fleet: the fleet did not start" >&2; exit 1; }
fi
CONF=$DIR/ssh_config
uid=$(id -u mgfleet)
home=$(getent passwd mgfleet | cut -d: -f6)

target_ns() { if [ -n "$CG" ]; then cat "$CG/cpuacct.usage"; else echo 0; fi; }
cold() { rm -rf "$home/.cache/mitogen" /dev/shm/mitogen-"$uid" /var/tmp/mitogen-"$uid" \
	/tmp/mitogen-"$uid" /run/user/"$uid"/mitogen; }
hosts() { if [ "$1" = 100 ]; then echo "fh[001-100]"; else printf 'fh[001-%03d]' "$1"; fi; }

# measure ROW PROG HOSTS RUNS CMD...: run CMD RUNS times in a row; append
# "ROW PROG wall op_cpu target_cpu failed" (seconds, per run of the whole
# fleet; failed: runs that did not exit 0) to $OUT/raw.
measure() {
	local row=$1 prog=$2 nh=$3 runs=$4 t0 t1 c0 c1 f=0 tf
	shift 4
	tf=$OUT/time.$$
	c0=$(target_ns)
	t0=$(date +%s.%N)
	: >"$tf"
	for ((k = 0; k < runs; k++)); do
		/usr/bin/time -a -o "$tf" -f "%U %S" bash -c '"$@"' _ "$@" >"$OUT/last.out" \
			2>"$OUT/last.err" || {
			f=$((f + 1))
			echo "bench-fleet: $row $prog failed; its last lines:" >&2
			tail -n 3 "$OUT/last.err" >&2
		}
	done
	t1=$(date +%s.%N)
	# cpuacct counts a session's CPU when it exits: let the last ones end
	sleep 0.5
	c1=$(target_ns)
	awk -v row="$row" -v prog="$prog" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
		-v nh="$nh" -v f="$f" -v cg="${CG:+1}" '
		/^[0-9.]+ [0-9.]+$/ { op += $1 + $2 }
		END { printf "%s %s %.3f %.3f %s %d %d\n", row, prog, t1 - t0, op,
		      cg ? sprintf("%.3f", (c1 - c0) / 1e9) : "nan", f, nh }' "$tf" >>"$OUT/raw"
	rm -f "$tf"
}

pdsh_run() { PDSH_SSH_ARGS="-F $CONF -T %h" PDSH_RCMD_TYPE=ssh pdsh -S -f "$1" -w "$(hosts "$2")" "${@:3}"; }
clush_run() { clush -q -S -f "$1" -o "-F $CONF -T" -w "$(hosts "$2")" "${@:3}"; }
ours_run() { "$MITOGEN" run -q -f "$1" --ssh-config "$CONF" -t "$(hosts "$2")" -- "${@:3}"; }

export CONF MITOGEN
export -f pdsh_run clush_run ours_run hosts

steps10=(true)
for ((k = 1; k < 10; k++)); do steps10+=(";" true); done

: >"$OUT/raw"
echo "bench-fleet: $N hosts on 127.0.3.x (port $(cat "$OUT/port")), $REPS repetitions, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# a first run fills the cache and warms every sshd
cold
ours_run 100 "$N" true >/dev/null 2>&1
for ((rep = 0; rep < REPS; rep++)); do
	for spec in "true32 32 32" "true100f32 100 32" "true100 100 100"; do
		read -r row nh f <<<"$spec"
		[[ $row =~ $ONLY ]] && [ "$nh" -le "$N" ] || continue
		echo "bench-fleet: rep $((rep + 1)): $row" >&2
		measure "$row" pdsh "$nh" 1 pdsh_run "$f" "$nh" true
		measure "$row" clush "$nh" 1 clush_run "$f" "$nh" true
		measure "$row" ours "$nh" 1 ours_run "$f" "$nh" true
		cold
		measure "$row" ours_cold "$nh" 1 ours_run "$f" "$nh" true
	done
	if [[ steps10 =~ $ONLY ]] && [ 32 -le "$N" ]; then
		echo "bench-fleet: rep $((rep + 1)): steps10" >&2
		measure steps10 pdsh 32 10 pdsh_run 32 32 true
		measure steps10 clush 32 10 clush_run 32 32 true
		measure steps10 ours 32 1 ours_run 32 32 "${steps10[@]}"
	fi
done

awk '
function med(key,   n, i, j, t, a) {
	n = split(V[key], a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
		t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n ? a[int((n + 1) / 2)] : "nan"
}
{
	k = $1 SUBSEP $2
	V[k "w"] = V[k "w"] " " $3; V[k "o"] = V[k "o"] " " $4; V[k "t"] = V[k "t"] " " $5
	F[k] += $6; H[$1] = $7; if (!(($1) in seen)) { seen[$1] = 1; rows[++nr] = $1 }
}
function r(a, b) { return (a == "nan" || b == "nan" || b + 0 == 0) ? "n/a" : sprintf("%.2fx", a / b) }
function cell(row, prog, what,   v) {
	v = med(row SUBSEP prog what)
	if (v == "nan" || v == "") return "n/a"
	return what == "w" ? sprintf("%.2f", v) : sprintf("%.3f", v / H[row])
}
END {
	title["true32"] = "true, 32 hosts, -f 32"
	title["true100f32"] = "true, 100 hosts, -f 32"
	title["true100"] = "true, 100 hosts, -f 100"
	title["steps10"] = "10 commands, 32 hosts (pdsh/clush: 10 runs; ours: 1 run of 10 steps)"
	printf "%-72s %-10s %10s %14s %14s %7s\n", "row", "program", "wall s", "op CPU s/host", "tgt CPU s/host", "failed"
	for (i = 1; i <= nr; i++) {
		row = rows[i]
		for (p = 1; p <= 4; p++) {
			prog = p == 1 ? "pdsh" : p == 2 ? "clush" : p == 3 ? "ours" : "ours_cold"
			if (!((row SUBSEP prog) in F)) continue
			printf "%-72s %-10s %10s %14s %14s %7d\n", p == 1 ? title[row] : "", prog,
				cell(row, prog, "w"), cell(row, prog, "o"), cell(row, prog, "t"), F[row SUBSEP prog]
		}
		o = row SUBSEP "ours"
		printf "%-72s %-10s %10s %14s %14s\n", "", "pdsh/ours", r(med(row SUBSEP "pdsh" "w"), med(o "w")),
			r(med(row SUBSEP "pdsh" "o"), med(o "o")), r(med(row SUBSEP "pdsh" "t"), med(o "t"))
		printf "%-72s %-10s %10s %14s %14s\n", "", "clush/ours", r(med(row SUBSEP "clush" "w"), med(o "w")),
			r(med(row SUBSEP "clush" "o"), med(o "o")), r(med(row SUBSEP "clush" "t"), med(o "t"))
	}
}' "$OUT/raw"
echo "bench-fleet: raw figures in $OUT/raw; load at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
