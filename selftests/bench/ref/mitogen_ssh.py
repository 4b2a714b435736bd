#!/usr/bin/python3
"""Reference workload on python3-mitogen over ssh (loopback sshd).

Usage: mitogen_ssh.py HOST PORT [USER [KEY]]. Needs key-based login to HOST:PORT and
passwordless sudo there. Same work for the C benchmark: 5 x (ssh context
create + one call + shutdown); 1000 calls over one ssh context; 500 calls to a
sudo context started via the ssh context.

Copied from ../shared/bench/mitogen_ssh.py; the one change: an optional KEY
(identity_file), so that scripts/bench.sh can use its fixture sshd's key.
"""
import sys
import time
import mitogen.master


def noop():
    return None


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    user = sys.argv[3] if len(sys.argv) > 3 else None
    key = sys.argv[4] if len(sys.argv) > 4 else None
    kw = dict(hostname=host, port=port, username=user,
              check_host_keys='ignore', python_path='/usr/bin/python3')
    if key:
        kw['identity_file'] = key
    broker = mitogen.master.Broker()
    router = mitogen.master.Router(broker)
    try:
        t = time.perf_counter()
        for _ in range(5):
            c = router.ssh(**kw)
            c.call(noop)
            c.shutdown(wait=True)
        print('ssh_create_call_ms %.1f' % ((time.perf_counter() - t) / 5 * 1e3))
        c = router.ssh(**kw)
        t = time.perf_counter()
        for _ in range(1000):
            c.call(noop)
        print('ssh_call_rtt_us %.1f' % ((time.perf_counter() - t) / 1000 * 1e6))
        s = router.sudo(via=c, python_path='/usr/bin/python3')
        t = time.perf_counter()
        for _ in range(500):
            s.call(noop)
        print('ssh_sudo_call_rtt_us %.1f' % ((time.perf_counter() - t) / 500 * 1e6))
    finally:
        broker.shutdown()
        broker.join()


if __name__ == '__main__':
    main()
