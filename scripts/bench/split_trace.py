#!/usr/bin/env python3
"""split_trace.py TRACE DELAY_MS - read a delaylink.py trace of ONE client run (client = side A)
and print, per TCP connection in order of its SYN, the time from the client sending the SYN to
the first data byte from the server arriving at the client, in ms, and the time from the first
SYN of the run to that arrival: "conn <i> port <p> own_ms <x> since_start_ms <y> in <ms:bytes>...",
where "in" lists every server data packet's arrival (ms after this connection's SYN) and size."""
import sys

def main():
    path, delay = sys.argv[1], float(sys.argv[2])
    conns, order = {}, []
    for raw in open(path):
        f = raw.split()
        if len(f) != 6 or f[2] == "other":
            continue
        ms, d, flags, sp, dp, size = float(f[0]), f[1], f[2], f[3], f[4], int(f[5])
        port = sp if d == "A>B" else dp
        if d == "A>B" and "S" in flags and port not in conns:
            conns[port] = {"syn": ms, "first": None, "in": []}
            order.append(port)
        c = conns.get(port)
        if c and d == "B>A" and size > 0:
            if c["first"] is None:
                c["first"] = ms + delay  # arrival at the client
            c["in"].append(f"{ms + delay - c['syn']:.1f}:{size}")
    if not order:
        return
    start = conns[order[0]]["syn"]
    for i, p in enumerate(order):
        c = conns[p]
        if c["first"] is None:
            print(f"conn {i} port {p} own_ms - since_start_ms -")
        else:
            print(f"conn {i} port {p} own_ms {c['first'] - c['syn']:.2f} since_start_ms {c['first'] - start:.2f} in {' '.join(c['in'])}")

if __name__ == "__main__":
    main()
