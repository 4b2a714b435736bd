#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-files.sh — run by `make bench-files` (root): issue 17 §6,
# file transfer against the usual tools over a fleet of real sshd "hosts"
# on this machine (selftests/tools/fleet.sh start-many, as
# scripts/bench-fleet.sh: fh001..fh033, each its own sshd on 127.0.3.x,
# each host its own user mgfNNN; fh033 is the bastion), in one run:
#
#   push32    100 MiB of random data to 32 hosts: pdcp -f 32, clush --copy
#             -f 32, a loop of 32 scp -O, and `mitogen copy` (-f 32), also
#             with --no-fsync (ours_nofsync: what the default fsync costs)
#   bastion32 the same 32 hosts behind one bastion context,
#             `mitogen copy -t ssh:fh033/ssh:fh[001-032]` (the data crosses
#             the first link once), against ours direct
#   one       the same file to one host: scp -O, and `mitogen copy` (and
#             with --no-fsync)
#   rsync2000 a tree of 2,000 files (4 KiB each, 40 directories) to one
#             host, into an empty directory: rsync -a -e ssh, and
#             `mitogen rsync` (rsync over fakessh)
#   mitopy    the 100 MiB file to the first BENCH_FILES_PY_HOSTS (8) hosts:
#             python3-mitogen's FileService (the script below: a context
#             per host, every context fetching at once with
#             FileService.get; no ssh compression, as ours), and
#             `mitogen copy` to the same hosts. Not 32: Mitogen sends
#             every copy from the master in Python, some 4 minutes there.
#
# Wall seconds (context start-up included: each program is one command
# run cold from the shell); the median of the repetitions; ratios
# other / ours (above 1: ours is faster). Within each repetition the
# programs run in turn, so a load change hits all of them alike. Every
# destination is removed before each program, so that nothing is
# resumed or skipped; the first and the last host's copy are compared
# with the source afterwards (a mismatch counts as failed).
#
# Each host logs in as a user of its own (fh001 as mgf001...: fleet.sh
# start-many own-users), and every program writes mg-bench-files/ in
# that user's home, as on real hosts with a disk each. (Until 2026-12-07
# every host was user mgfleet with one home: pdcp, clush and scp then
# wrote the same file 32 times at once, 100 MiB of page cache in all,
# while ours wrote 32 temporary files, 3.2 GB, before its renames.)
# sshd has no sftp subsystem here, so scp runs with -O (the scp protocol),
# clush --copy too (scp_options).
#
# Environment:
#   MITOGEN           our tool (default build/mitogen)
#   BENCH_FILES_REPS  repetitions (default 3)
#   BENCH_FILES_ONLY  a regex of row names (push32, bastion32, one,
#                     rsync2000, mitopy); default all
#   BENCH_FILES_MIB   size of the pushed file (default 100)
#   BENCH_FILES_PY_HOSTS  hosts of the mitopy row (default 8, 1..32)
#   PYTHON            interpreter with python3-mitogen (default /usr/bin/python3)
set -u
cd "$(dirname "$0")/.."

MITOGEN=${MITOGEN:-build/mitogen}
REPS=${BENCH_FILES_REPS:-3}
ONLY=${BENCH_FILES_ONLY:-.}
MIB=${BENCH_FILES_MIB:-100}
PYN=${BENCH_FILES_PY_HOSTS:-8}
PYTHON=${PYTHON:-/usr/bin/python3}
OUT=build/bench/files
MITOGEN=$(readlink -f "$MITOGEN")

[[ $PYN =~ ^[0-9]+$ ]] && [ "$PYN" -ge 1 ] && [ "$PYN" -le 32 ] ||
	{ echo "bench-files: BENCH_FILES_PY_HOSTS wants 1 to 32, not '$PYN'" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
	echo "bench-files: needs root (sshd, useradd)" >&2
	exit 1
fi
. scripts/bench-lib.sh
bench_need_pdsh bench-files
[ -x "$MITOGEN" ] || { echo "bench-files: no tool at $MITOGEN (make first)" >&2; exit 1; }
command -v rsync >/dev/null || { echo "bench-files: no rsync" >&2; exit 1; }

mkdir -p "$OUT"
DIR=$(mktemp -d /tmp/mg-bench-files.XXXXXX)
# On a VM whose balloon driver reports freed memory to the hypervisor
# (virtio-balloon free page reporting: this one reports everything it
# frees, at once), touching that memory again costs the guest about 2.6 s
# a GB (a 1 GB write into the page cache: 0.22 s right after 1 GB was
# freed, 2.6 s 15 s later). Every program here writes 3.2 GB of page
# cache right after `fresh` freed the last one's: whichever starts
# writing sooner reuses memory not yet given back, and one with a longer
# start-up (ours: the agents' boot) pays the hypervisor's faults (perf:
# our agents' copy into the page cache 16x scp's per byte with it, about
# the same without). Real hosts do not pay this: reporting is off while
# the bench runs (an order above the largest), and restored after.
PR=/sys/module/page_reporting/parameters/page_reporting_order
PR_OLD=
if [ -w "$PR" ]; then
	PR_OLD=$(cat "$PR")
	echo 11 >"$PR" 2>/dev/null || PR_OLD=
fi
cleanup() {
	selftests/tools/fleet.sh stop "$DIR" >/dev/null 2>&1
	dst_clear
	rm -rf "$DIR"
	[ -z "$PR_OLD" ] || echo "$PR_OLD" >"$PR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Where every program writes, relative to each host's home.
DST=mg-bench-files
home_of() { getent passwd "$(printf 'mgf%03d' "$1")" | cut -d: -f6; }
dst_clear() {
	local i h
	for ((i = 1; i <= 33; i++)); do
		h=$(home_of "$i")
		[ -n "$h" ] && rm -rf "${h:?}/$DST"
	done
}
selftests/tools/fleet.sh start-many "$DIR" 33 own-users >"$OUT/port" ||
	{ echo "bench-files: the fleet did not start" >&2; exit 1; }
# One ssh_config for every hop, the bastion's (fh033, run as mgf033)
# included: the key a copy that mgf033 owns, config and known_hosts
# readable.
cp "$DIR/id_ed25519" "$DIR/key"
chown mgf033 "$DIR/key"
chmod 0600 "$DIR/key"
chmod 0644 "$DIR/known_hosts"
sed "s|^  IdentityFile .*|  IdentityFile $DIR/key|" "$DIR/ssh_config" >"$DIR/config"
chmod 0644 "$DIR/config"
CONF=$DIR/config

SRC=$DIR/src
BLOB=$DIR/blob
head -c $((MIB << 20)) /dev/urandom >"$BLOB"
mkdir -p "$SRC"
for ((d = 0; d < 40; d++)); do
	mkdir -p "$SRC/d$d"
	for ((f = 0; f < 50; f++)); do
		head -c 4096 /dev/urandom >"$SRC/d$d/f$f"
	done
done
# (not the whole of DIR: sshd re-reads its host key, which must stay 0600)
chmod -R a+rX "$SRC" "$BLOB"

fresh() {
	local i
	dst_clear
	for ((i = 1; i <= 33; i++)); do
		install -d -o "$(printf 'mgf%03d' "$i")" -m 0755 "$(home_of "$i")/$DST"
	done
}

# measure ROW PROG LAST CHECK CMD...: fresh destinations, run CMD,
# compare CHECK (a destination file or directory, relative to a home) on
# host 1 and host LAST with its source; append "ROW PROG wall failed" to
# $OUT/raw.
measure() {
	local row=$1 prog=$2 last=$3 check=$4 t0 t1 f=0 h
	shift 4
	fresh
	t0=$(date +%s.%N)
	"$@" >"$OUT/last.out" 2>"$OUT/last.err" || {
		f=1
		echo "bench-files: $row $prog failed; its last lines:" >&2
		tail -n 3 "$OUT/last.err" >&2
	}
	t1=$(date +%s.%N)
	for h in 1 "$last"; do
		[ "$f" = 0 ] || break
		h=$(home_of "$h")/$check
		if [ -d "$h" ]; then
			diff -r -q "$SRC" "$h" >/dev/null
		else
			cmp -s "$BLOB" "$h"
		fi || { f=1; echo "bench-files: $row $prog: $h differs from the source" >&2; }
	done
	echo "$row $prog $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') $f" >>"$OUT/raw"
}

H32='fh[001-032]'
scp_loop() {
	local i
	for ((i = 1; i <= 32; i++)); do
		scp -q -O -F "$CONF" "$BLOB" "$(printf 'fh%03d' "$i"):$DST/blob" || return 1
	done
}
pdcp_run() { PDSH_SSH_ARGS="-F $CONF -T %h" PDSH_RCMD_TYPE=ssh pdcp -f 32 -w "$H32" "$BLOB" "$DST/blob"; }
clush_run() {
	clush -q -S -f 32 -o "-F $CONF" -O "scp_options=-O -F $CONF" -w "$H32" \
		--copy "$BLOB" --dest "$DST/blob"
}
ours_copy() {
	local t=$1
	shift
	"$MITOGEN" copy -q -f 32 "$@" --ssh-config "$CONF" -t "$t" "$BLOB" "$DST/blob"
}
py_push() { "$PYTHON" "$DIR/mito_push.py" "$CONF" "$BLOB" "$DST/blob" $(seq -f 'fh%03g' 1 "$PYN"); }

# The mitopy row's program: python3-mitogen's own file transfer.
cat >"$DIR/mito_push.py" <<'EOF_PY'
"""Push SRC to DEST on HOST... with python3-mitogen's FileService.

Usage: mito_push.py SSH_CONFIG SRC DEST HOST...
An ssh context per host (started in parallel; no ssh compression, as
ours for bulk data); SRC registered with a FileService in this (the
master) process; every context fetches it at once with
FileService.get() into DEST.<context id>, renamed to DEST. Each stream
has Mitogen's 1 MiB window; every copy leaves from the master.
"""
import os
import sys
import threading

import mitogen.master
import mitogen.service


def fetch(master, path, dest):
    import mitogen.service
    tmp = '%s.%d' % (dest, mitogen.context_id)
    with open(tmp, 'wb') as fp:
        ok, meta = mitogen.service.FileService.get(master, path, fp)
    if not ok:
        os.unlink(tmp)
        raise Exception('transfer interrupted')
    os.rename(tmp, dest)
    return meta['size']


def main():
    conf, src, dest, hosts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        pool = mitogen.service.get_or_create_pool(router=router)
        fs = mitogen.service.FileService(router)
        pool.add(fs)
        fs.register(src)
        ctxs = [None] * len(hosts)
        errs = []

        def connect(i):
            try:
                ctxs[i] = router.ssh(hostname=hosts[i], ssh_args=['-F', conf],
                                     compression=False, check_host_keys='ignore',
                                     python_path='/usr/bin/python3')
            except Exception as e:
                errs.append('%s: %s' % (hosts[i], e))

        ts = [threading.Thread(target=connect, args=(i,)) for i in range(len(hosts))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errs:
            sys.exit('mito_push: ' + '; '.join(errs))
        me = router.myself()
        rxs = [c.call_async(fetch, me, src, dest) for c in ctxs]
        for rx in rxs:
            if rx.get().unpickle() != os.path.getsize(src):
                sys.exit('mito_push: short transfer')
    finally:
        broker.shutdown()
        broker.join()


if __name__ == '__main__':
    main()
EOF_PY
rsync_run() { rsync -a -e "ssh -F $CONF" "$SRC/" "fh001:$DST/tree/"; }
ours_rsync() { "$MITOGEN" rsync -q --ssh-config "$CONF" -t ssh:fh001 -- -a "$SRC/" ":$DST/tree/"; }

: >"$OUT/raw"
echo "bench-files: 33 sshd hosts on 127.0.3.x (port $(cat "$OUT/port")), ${MIB} MiB, $REPS repetitions, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
if [ -n "$PR_OLD" ]; then
	echo "bench-files: free page reporting off while the bench runs (page_reporting_order $PR_OLD -> 11)" >&2
elif [ -e "$PR" ]; then
	echo "bench-files: free page reporting stays on (cannot write $PR): programs that start writing later pay for it" >&2
fi
# a first run fills our image cache on the hosts and warms every sshd
"$MITOGEN" run -q -f 33 --ssh-config "$CONF" -t 'fh[001-033]' -- true >/dev/null 2>&1
for ((rep = 0; rep < REPS; rep++)); do
	if [[ push32 =~ $ONLY || bastion32 =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): push32, bastion32" >&2
		measure push32 pdcp 32 "$DST/blob" pdcp_run
		measure push32 clush 32 "$DST/blob" clush_run
		measure push32 scp_loop 32 "$DST/blob" scp_loop
		measure push32 ours 32 "$DST/blob" ours_copy "ssh:$H32"
		measure push32 ours_nofsync 32 "$DST/blob" ours_copy "ssh:$H32" --no-fsync
		measure bastion32 ours_bastion 32 "$DST/blob" ours_copy "ssh:fh033/ssh:$H32"
	fi
	if [[ one =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): one" >&2
		measure one scp 1 "$DST/blob" scp -q -O -F "$CONF" "$BLOB" "fh001:$DST/blob"
		measure one ours 1 "$DST/blob" ours_copy ssh:fh001
		measure one ours_nofsync 1 "$DST/blob" ours_copy ssh:fh001 --no-fsync
	fi
	if [[ mitopy =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): mitopy ($PYN hosts)" >&2
		if "$PYTHON" -c 'import mitogen.service' 2>/dev/null; then
			measure mitopy mitogen_py "$PYN" "$DST/blob" py_push
		else
			echo "bench-files: $PYTHON has no mitogen (make deps installs python3-mitogen); mitopy shows ours only" >&2
		fi
		measure mitopy ours "$PYN" "$DST/blob" ours_copy "ssh:fh[001-$(printf %03d "$PYN")]"
	fi
	if [[ rsync2000 =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): rsync2000" >&2
		measure rsync2000 rsync 1 "$DST/tree" rsync_run
		measure rsync2000 ours 1 "$DST/tree" ours_rsync
	fi
done
dst_clear

awk '
function med(key,   n, i, j, t, a) {
	n = split(V[key], a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) {
		t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n ? a[int((n + 1) / 2)] : "nan"
}
{
	V[$1 SUBSEP $2] = V[$1 SUBSEP $2] " " $3; F[$1 SUBSEP $2] += $4
	if (!(($1 SUBSEP $2) in seen)) { seen[$1 SUBSEP $2] = 1; progs[$1] = progs[$1] " " $2 }
	if (!(($1) in rseen)) { rseen[$1] = 1; rows[++nr] = $1 }
}
function r(a, b) { return (a == "nan" || b == "nan" || b + 0 == 0) ? "n/a" : sprintf("%.2fx", a / b) }
END {
	title["push32"] = "100 MiB to 32 hosts"
	title["bastion32"] = "the same, behind one bastion (ssh:fh033/ssh:fh[001-032])"
	title["one"] = "100 MiB to one host"
	title["rsync2000"] = "rsync of 2,000 files (4 KiB) to one host"
	title["mitopy"] = "100 MiB to " pyn " hosts, python3-mitogen FileService"
	printf "%-60s %-18s %10s %7s\n", "row", "program", "wall s", "failed"
	for (i = 1; i <= nr; i++) {
		row = rows[i]
		n = split(progs[row], p, " ")
		for (k = 1; k <= n; k++)
			printf "%-60s %-18s %10.2f %7d\n", k == 1 ? title[row] : "", p[k],
				med(row SUBSEP p[k]), F[row SUBSEP p[k]]
		o = med(row SUBSEP "ours")
		if (row == "bastion32")
			printf "%-60s %-18s %10s\n", "", "bastion/direct",
				r(med(row SUBSEP "ours_bastion"), med("push32" SUBSEP "ours"))
		for (k = 1; k <= n; k++)
			if (p[k] != "ours" && row != "bastion32")
				printf "%-60s %-18s %10s\n", "", p[k] "/ours", r(med(row SUBSEP p[k]), o)
	}
}' pyn="$PYN" "$OUT/raw"
echo "bench-files: raw figures in $OUT/raw; load at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
