#!/usr/bin/python3
# Written for libmitogen beside the vendored mitogen_local.py, in its style
# (it is not a copy of a shared reference). Needs python3-mitogen (Debian,
# Mitogen 0.3.3, installed by `make deps`): scripts/bench.sh runs it with
# /usr/bin/python3 in the same `make bench` run as mitogen_local.py.
"""Reference workload on python3-mitogen (Debian package): many children.

Prints one `name value` line per figure. The C benchmark must run the same
work: N local contexts created one after another (no call; timed, and the
VmRSS of this master process read before and after, so that the growth
divided by N is the parent's memory per child); then, on 100 of them, one
untimed call on each (it loads this module there), and 50 rounds of one
no-op call on each of the 100 gathered with Select.all, timed REPS times
(BENCH_REPS, as the C benchmark's runs of the same figure): the median.

N is 100, not the 1,000 of the C benchmark: a Mitogen local child takes
about 130 ms to start and holds about 24 MB, so 1,000 would take minutes
and more memory than a test machine has. Compare the per-child figures
(create_per_child_ms, parent_kb_per_child); create_n says how many.

Before each VmRSS reading, garbage is collected and free heap pages are
handed back (malloc_trim), as the C benchmark does, so that the figure is
memory held, not memory waiting in free lists.
"""
import ctypes
import gc
import os
import statistics
import resource
import time
import mitogen.core
import mitogen.master
import mitogen.select

N_CREATE = 100
N_FANOUT = 100
ROUNDS = 50
# Fan-out runs of ROUNDS rounds, median printed: as many as the C benchmark
# makes of the same figure (BENCH_REPS, default 5), so that the ratio is
# one median against another rather than a median against one sample.
REPS = max(1, min(int(os.environ.get('BENCH_REPS') or 5), 15))


def noop():
    return None


def rss_kb():
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1])


def main():
    # ~3 fds per child in the parent; use all the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        n = N_CREATE
        rss0 = rss_kb()
        t = time.perf_counter()
        ctxs = [router.local(python_path='/usr/bin/python3') for _ in range(n)]
        dt = time.perf_counter() - t
        rss1 = rss_kb()
        print('create_n %d' % n)
        print('create_total_s %.2f' % dt)
        print('create_per_child_ms %.2f' % (dt / n * 1e3))
        print('parent_kb_per_child %.1f' % ((rss1 - rss0) / n))

        # The fan-out uses the first N_FANOUT of them (all, with N=100).
        n = N_FANOUT
        ctxs = ctxs[:n]
        list(mitogen.select.Select.all(c.call_async(noop) for c in ctxs))
        runs = []
        for _ in range(REPS):
            t = time.perf_counter()
            for _ in range(ROUNDS):
                list(mitogen.select.Select.all(c.call_async(noop) for c in ctxs))
            runs.append(ROUNDS * n / (time.perf_counter() - t))
        print('# runs fanout100_calls_per_s ' + ' '.join('%.0f' % x for x in runs))
        print('fanout100_calls_per_s %.0f' % statistics.median(runs))
    finally:
        broker.shutdown()
        broker.join()


if __name__ == '__main__':
    main()
