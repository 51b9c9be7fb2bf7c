#!/usr/bin/env python3
"""A client's own CPU, measured from outside (getrusage of its child processes).

  clientcpu.py connect --count K -- CMD...
      Runs CMD K times one after another. Each run writes one byte to CMD's stdin, waits for the
      byte to come back on its stdout (an echo application at the other end: the session is up
      end to end), closes stdin and waits for CMD to exit. Prints the median CPU (user + system)
      of one run in ms, then the median wall time in ms, e.g. "13.21 21.40".

Each run's CPU is read with os.wait4, so only that client process is counted (and the children
it waited for), not this script.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time


def one(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    os.write(p.stdin.fileno(), b"x")
    got = os.read(p.stdout.fileno(), 1)
    if got != b"x":
        sys.exit(f"expected the byte back, got {got!r} from {cmd[0]}")
    p.stdin.close()
    while os.read(p.stdout.fileno(), 65536):
        pass
    _, status, usage = os.wait4(p.pid, 0)
    t1 = time.perf_counter()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} exited with {p.returncode}")
    return (usage.ru_utime + usage.ru_stime) * 1000, (t1 - t0) * 1000


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: clientcpu.py connect --count K -- CMD...")
    i = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["connect"])
    ap.add_argument("--count", type=int, default=50)
    a = ap.parse_args(argv[:i])
    cmd = argv[i + 1:]
    one(cmd)  # warm-up: page cache, first-use caches
    runs = [one(cmd) for _ in range(a.count)]
    print(f"{statistics.median(r[0] for r in runs):.2f} {statistics.median(r[1] for r in runs):.2f}")


if __name__ == "__main__":
    main()
