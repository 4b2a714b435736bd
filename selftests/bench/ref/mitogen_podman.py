#!/usr/bin/python3
"""Reference workload on python3-mitogen's podman method.

Usage: mitogen_podman.py CONTAINER. The container must have a python3 at
/usr/bin/python3 (scripts/bench.sh binds the host's /usr read-only). Same
work as `bench podman`: 5 x (create + one call + shutdown) after one to
warm up; 1000 calls over one context.
"""
import sys
import time
import mitogen.master


def noop():
    return None


def main():
    ctr = sys.argv[1]
    kw = dict(container=ctr, python_path='/usr/bin/python3')
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        c = router.podman(**kw)
        c.call(noop)
        c.shutdown(wait=True)
        v = []
        for _ in range(5):
            t = time.perf_counter()
            c = router.podman(**kw)
            c.call(noop)
            c.shutdown(wait=True)
            v.append(time.perf_counter() - t)
        v.sort()
        print('podman_create_call_ms %.1f' % (v[2] * 1e3))
        c = router.podman(**kw)
        for _ in range(50):
            c.call(noop)
        t = time.perf_counter()
        for _ in range(1000):
            c.call(noop)
        print('podman_call_rtt_us %.1f' % ((time.perf_counter() - t) / 1000 * 1e6))
    finally:
        broker.shutdown()
        broker.join()


if __name__ == '__main__':
    main()
