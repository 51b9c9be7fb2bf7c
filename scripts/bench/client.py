#!/usr/bin/env python3
"""client.py - the byte source / timing client of the daemon benchmarks (standard library only).

The path under test is either a TCP address (--connect HOST:PORT) or a command whose
stdin/stdout carry the stream (after --, e.g. `usp connect URI app` or `ssh -W ...`).

  client.py throughput --mib N (--connect H:P | -- CMD...)
      Sends "S", waits for the sink's "R" (path is up: handshakes excluded), then sends N MiB
      from memory in 256 KiB writes, half-closes, and stops the clock at the sink's
      "OK <bytes>" line. Prints MB/s (10^6 bytes per second).
  client.py firstbyte (--connect H:P | -- CMD...)
      Clock starts before connect() / process start; writes one byte at once, stops at the
      first byte back from an echo server. Prints milliseconds.
  client.py sessions --connect H:P --count N [--concurrency C]
      N short sessions, C at a time: connect, one byte echoed, close. Prints sessions/s.
  client.py hold --connect H:P --count N
      Opens N connections one after another, each sends one byte and waits for it to come back
      (the session is up end to end); prints HELD N, then holds them until stdin closes.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

def open_path(a):
    """Returns (write(bytes), read1() -> bytes, close_write(), finish())."""
    if a.connect:
        host, port = a.connect.rsplit(":", 1)
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return (s.sendall, lambda: s.recv(65536), lambda: s.shutdown(socket.SHUT_WR), s.close)
    p = subprocess.Popen(a.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    a.child = p
    fin, fout = p.stdin.fileno(), p.stdout.fileno()
    def write(b):
        mv = memoryview(b)
        while mv:
            n = os.write(fin, mv)
            mv = mv[n:]
    def finish():
        p.stdout.close()
        # wait4 gives the client's own CPU (--child-cpu); give it 5 s to exit after its EOF.
        deadline = time.monotonic() + 5
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                a.child_cpu = usage.ru_utime + usage.ru_stime
                p.returncode = os.waitstatus_to_exitcode(status)
                return
            if time.monotonic() > deadline:
                p.kill()
            time.sleep(0.005)
    return (write, lambda: os.read(fout, 65536), p.stdin.close, finish)

def throughput(a):
    total = a.mib << 20
    chunk = os.urandom(256 << 10)
    write, read, close_write, finish = open_path(a)
    write(b"S")
    got = read()
    if not got.startswith(b"R"):
        sys.exit(f"expected R from the sink, got {got!r}")
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(len(chunk), total - sent)
        write(chunk if n == len(chunk) else chunk[:n])
        sent += n
    close_write()
    reply = b""
    while b"\n" not in reply:
        b = read()
        if not b:
            break
        reply += b
    t1 = time.perf_counter()
    finish()
    line = reply.decode(errors="replace").strip()
    if line != f"OK {total + 1}":
        sys.exit(f"sink reply {line!r}, expected 'OK {total + 1}'")
    if a.child_cpu_wanted:
        print(f"{total / (t1 - t0) / 1e6:.1f} {getattr(a, 'child_cpu', float('nan')):.3f}")
    else:
        print(f"{total / (t1 - t0) / 1e6:.1f}")

def firstbyte(a):
    t0 = time.perf_counter()
    write, read, close_write, finish = open_path(a)
    write(b"x")
    b = read()
    t1 = time.perf_counter()
    if not b:
        sys.exit("no echo")
    close_write()
    finish()
    print(f"{(t1 - t0) * 1000:.2f}")

def hold(a):
    host, port = a.connect.rsplit(":", 1)
    socks = []
    for i in range(a.count):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"h")
        if s.recv(1) != b"h":
            sys.exit(f"connection {i}: no echo")
        socks.append(s)
    print(f"HELD {len(socks)}", flush=True)
    sys.stdin.read()

def sessions(a):
    """N short sessions, `concurrency` at a time: connect, send one byte, wait for its echo, close.
    Prints sessions per second (wall clock over all N)."""
    import threading
    host, port = a.connect.rsplit(":", 1)
    lock = threading.Lock()
    left = [a.count]
    failures = []
    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                s = socket.create_connection((host, int(port)), timeout=30)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(b"x")
                if s.recv(1) != b"x":
                    failures.append("no echo")
                s.close()
            except OSError as e:
                failures.append(str(e))
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if failures:
        sys.exit(f"{len(failures)} of {a.count} sessions failed, e.g. {failures[0]}")
    print(f"{a.count / dt:.1f}")

def main():
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["throughput", "firstbyte", "hold", "sessions"])
    ap.add_argument("--connect")
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--child-cpu", dest="child_cpu_wanted", action="store_true",
                    help="throughput with -- CMD: also print CMD's own CPU seconds")
    a = ap.parse_args(argv)
    a.cmd = cmd
    if not a.connect and not cmd:
        sys.exit("give --connect HOST:PORT or -- CMD...")
    {"throughput": throughput, "firstbyte": firstbyte, "hold": hold, "sessions": sessions}[a.what](a)

if __name__ == "__main__":
    main()
