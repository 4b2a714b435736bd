#!/usr/bin/python3
# Vendored copy of /work/shared/bench/mitogen_local.py (the project's shared
# benchmark references, see /work/shared/bench/README.md), kept here so that
# `make bench` runs on a clean clone. Unchanged below this comment; refresh
# by copying the file again. Needs python3-mitogen (Debian, Mitogen 0.3.3,
# installed by `make deps`): scripts/bench.sh runs it with /usr/bin/python3.
"""Reference workload on python3-mitogen (Debian package), local contexts.

Prints one `name value` line per figure. The C benchmark must run the same
work: N=10 local contexts created one after another; 2000 sequential calls of
a no-op; 100 rounds of one no-op call on each of the 10 contexts gathered with
Select.all; 200 x 1 MiB sent child -> parent through a Sender; 500 calls to a
context started via another; 10 fork contexts each created and called once;
RSS of a fresh local child.
"""
import time
import mitogen.core
import mitogen.master
import mitogen.select


def noop():
    return None


def produce(sender, n, size):
    buf = b'x' * size
    for _ in range(n):
        sender.send(buf)
    sender.close()


def rss_kb():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1])


def main():
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        n = 10
        t = time.perf_counter()
        ctxs = [router.local(python_path='/usr/bin/python3') for _ in range(n)]
        for c in ctxs:
            c.call(noop)
        print('local_create_call_ms %.2f' % ((time.perf_counter() - t) / n * 1e3))
        c = ctxs[0]
        print('child_rss_kb %d' % c.call(rss_kb))
        m = 2000
        t = time.perf_counter()
        for _ in range(m):
            c.call(noop)
        print('call_rtt_us %.1f' % ((time.perf_counter() - t) / m * 1e6))
        t = time.perf_counter()
        for _ in range(100):
            list(mitogen.select.Select.all(x.call_async(noop) for x in ctxs))
        print('fanout10_calls_per_s %.0f' % (100 * n / (time.perf_counter() - t)))
        recv = mitogen.core.Receiver(router)
        count, size = 200, 1 << 20
        t = time.perf_counter()
        c.call_async(produce, recv.to_sender(), count, size)
        got = 0
        for msg in recv:
            got += len(msg.unpickle())
        print('stream_MBps %.0f' % (got / (time.perf_counter() - t) / 1e6))
        c2 = router.local(via=c, python_path='/usr/bin/python3')
        c2.call(noop)
        t = time.perf_counter()
        for _ in range(500):
            c2.call(noop)
        print('via1_call_rtt_us %.1f' % ((time.perf_counter() - t) / 500 * 1e6))
        t = time.perf_counter()
        for _ in range(10):
            router.fork().call(noop)
        print('fork_create_call_ms %.2f' % ((time.perf_counter() - t) / 10 * 1e3))
    finally:
        broker.shutdown()
        broker.join()


if __name__ == '__main__':
    main()
