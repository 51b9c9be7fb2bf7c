#!/usr/bin/env python3
"""Client CPU per `usp connect`, two or more usp binaries in turn (A/B on a noisy machine).

    python3 scripts/bench/connect_cpu_ab.py --uri URI --home HOME [--app echo] [--runs 80] BIN...

Each round runs every binary once, in turn, with one byte on stdin; a run's CPU is the child's
user+system time from wait4(2). Prints the median and quartiles per binary. The server must
let the runs through: raise uspd's handshake_rate/handshake_burst, or use a logged-in home.
"""
import argparse, os, statistics, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--uri", required=True)
ap.add_argument("--home", required=True)
ap.add_argument("--app", default="echo")
ap.add_argument("--runs", type=int, default=80)
ap.add_argument("binaries", nargs="+")
a = ap.parse_args()
one = tempfile.NamedTemporaryFile(delete=False)
one.write(b"x")
one.close()
cpu = {b: [] for b in a.binaries}
failed = {b: 0 for b in a.binaries}
for _ in range(a.runs):
    for b in a.binaries:
        with open(one.name, "rb") as stdin:
            p = subprocess.Popen([b, "connect", "--no-agent", "--home", a.home, a.uri, a.app], stdin=stdin,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = 0
        if status != 0:
            failed[b] += 1
            continue
        cpu[b].append((usage.ru_utime + usage.ru_stime) * 1000)
os.unlink(one.name)
for b in a.binaries:
    v = sorted(cpu[b])
    if not v:
        print(f"{b}: every run failed", file=sys.stderr)
        continue
    print(f"{b}: median {statistics.median(v):.2f} ms CPU (quartiles {v[len(v) // 4]:.2f}-{v[3 * len(v) // 4]:.2f}), "
          f"{len(v)} runs" + (f", {failed[b]} failed (not counted)" if failed[b] else ""))
