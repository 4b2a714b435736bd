#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/bench-files.sh — run by `make bench-files` (root): issue 17 §6,
# file transfer against the usual tools over a fleet of real sshd "hosts"
# on this machine (selftests/tools/fleet.sh start-many, as
# scripts/bench-fleet.sh: fh001..fh033, each its own sshd on 127.0.3.x,
# user mgfleet; fh033 is the bastion), in one run:
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
# resumed or skipped; one destination per program is compared with the
# source afterwards (a mismatch counts as failed).
#
# The hosts share one filesystem and one user (a single machine): each
# program writes one path, the same on its 32 hosts, 32 writers at once.
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
cleanup() {
	selftests/tools/fleet.sh stop "$DIR" >/dev/null 2>&1
	[ -n "${DST:-}" ] && rm -rf "$DST"
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

selftests/tools/fleet.sh start-many "$DIR" 33 >"$OUT/port" ||
	{ echo "bench-files: the fleet did not start" >&2; exit 1; }
home=$(getent passwd mgfleet | cut -d: -f6)
DST=$home/mg-bench-files
# One ssh_config for every hop, the bastion's (run as mgfleet) included:
# the key a copy that mgfleet owns, the config and known_hosts readable.
cp "$DIR/id_ed25519" "$DIR/key"
chown mgfleet "$DIR/key"
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

fresh() { rm -rf "$DST"; install -d -o mgfleet -m 0755 "$DST"; }

# measure ROW PROG CHECK CMD...: fresh destinations, run CMD, compare
# CHECK (a destination file or directory) with its source; append
# "ROW PROG wall failed" to $OUT/raw.
measure() {
	local row=$1 prog=$2 check=$3 t0 t1 f=0
	shift 3
	fresh
	t0=$(date +%s.%N)
	"$@" >"$OUT/last.out" 2>"$OUT/last.err" || {
		f=1
		echo "bench-files: $row $prog failed; its last lines:" >&2
		tail -n 3 "$OUT/last.err" >&2
	}
	t1=$(date +%s.%N)
	if [ "$f" = 0 ]; then
		if [ -d "$check" ]; then
			diff -r -q "$SRC" "$check" >/dev/null
		else
			cmp -s "$BLOB" "$check"
		fi || { f=1; echo "bench-files: $row $prog: $check differs from the source" >&2; }
	fi
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
# a first run fills our image cache on the hosts and warms every sshd
"$MITOGEN" run -q -f 33 --ssh-config "$CONF" -t 'fh[001-033]' -- true >/dev/null 2>&1
for ((rep = 0; rep < REPS; rep++)); do
	if [[ push32 =~ $ONLY || bastion32 =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): push32, bastion32" >&2
		measure push32 pdcp "$DST/blob" pdcp_run
		measure push32 clush "$DST/blob" clush_run
		measure push32 scp_loop "$DST/blob" scp_loop
		measure push32 ours "$DST/blob" ours_copy "ssh:$H32"
		measure push32 ours_nofsync "$DST/blob" ours_copy "ssh:$H32" --no-fsync
		measure bastion32 ours_bastion "$DST/blob" ours_copy "ssh:fh033/ssh:$H32"
	fi
	if [[ one =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): one" >&2
		measure one scp "$DST/blob" scp -q -O -F "$CONF" "$BLOB" "fh001:$DST/blob"
		measure one ours "$DST/blob" ours_copy ssh:fh001
		measure one ours_nofsync "$DST/blob" ours_copy ssh:fh001 --no-fsync
	fi
	if [[ mitopy =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): mitopy ($PYN hosts)" >&2
		if "$PYTHON" -c 'import mitogen.service' 2>/dev/null; then
			measure mitopy mitogen_py "$DST/blob" py_push
		else
			echo "bench-files: $PYTHON has no mitogen (make deps installs python3-mitogen); mitopy shows ours only" >&2
		fi
		measure mitopy ours "$DST/blob" ours_copy "ssh:fh[001-$(printf %03d "$PYN")]"
	fi
	if [[ rsync2000 =~ $ONLY ]]; then
		echo "bench-files: rep $((rep + 1)): rsync2000" >&2
		measure rsync2000 rsync "$DST/tree" rsync_run
		measure rsync2000 ours "$DST/tree" ours_rsync
	fi
done
rm -rf "$DST"

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
