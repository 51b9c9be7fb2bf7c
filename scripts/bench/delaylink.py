#!/usr/bin/env python3
"""delaylink.py - a delayed point-to-point link between two network namespaces, in userspace
(standard library only): one TUN device in each namespace, and every IP packet read from one
is written to the other DELAY ms later, in order, without loss. For kernels without netem.

  delaylink.py NS_A DEV_A NS_B DEV_B --delay-ms 25 [--trace FILE] [--max-seconds 900]

The namespaces must exist; the caller sets the addresses and brings the devices up after
READY is printed. --trace appends one line per packet:
  <ms since start> <A>B|B>A> <TCP flags> <sport> <dport> <payload bytes>
which bench-daemon.sh reads to split a connection's time into its round trips.
"""
import argparse, ctypes, fcntl, heapq, os, select, signal, struct, sys, time

libc = ctypes.CDLL(None, use_errno=True)

def enter(ns):
    fd = os.open(ns, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns " + ns)
    finally:
        os.close(fd)

def tun(ns, name):
    enter(f"/run/netns/{ns}")
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", name.encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
    os.set_blocking(fd, False)
    return fd

def line(ms, d, p):
    if len(p) < 20 or p[0] >> 4 != 4 or p[9] != 6:
        return f"{ms:.3f} {d} other - - {len(p)}\n"
    ihl = (p[0] & 15) * 4
    total = struct.unpack("!H", p[2:4])[0]
    t = p[ihl:]
    sp, dp = struct.unpack("!HH", t[:4])
    flags = "".join(c for c, b in zip("FSRPA", (1, 2, 4, 8, 16)) if t[13] & b) or "-"
    return f"{ms:.3f} {d} {flags} {sp} {dp} {total - ihl - (t[12] >> 4) * 4}\n"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ns_a"); ap.add_argument("dev_a"); ap.add_argument("ns_b"); ap.add_argument("dev_b")
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--trace")
    ap.add_argument("--max-seconds", type=float, default=900)
    a = ap.parse_args()
    here = os.open("/proc/self/ns/net", os.O_RDONLY)
    fa, fb = tun(a.ns_a, a.dev_a), tun(a.ns_b, a.dev_b)
    libc.setns(here, 0x40000000)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    other = {fa: fb, fb: fa}
    name = {fa: "A>B", fb: "B>A"}
    delay = a.delay_ms / 1000
    trace = open(a.trace, "a", buffering=1) if a.trace else None
    queue, n = [], 0
    t0 = time.monotonic()
    stop = t0 + a.max_seconds
    print("READY", flush=True)
    while time.monotonic() < stop:
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, p = heapq.heappop(queue)
            try:
                os.write(out, p)
            except OSError:
                pass
        wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
        ready, _, _ = select.select([fa, fb], [], [], wait)
        now = time.monotonic()
        for fd in ready:
            while True:
                try:
                    p = os.read(fd, 65536)
                except BlockingIOError:
                    break
                n += 1
                heapq.heappush(queue, (now + delay, n, other[fd], p))
                if trace:
                    trace.write(line((now - t0) * 1000, name[fd], p))

if __name__ == "__main__":
    main()
