#!/usr/bin/env python3
"""udp_client.py HOST:PORT [--rtt N] [--rate N --window W] [--size BYTES]

Against a UDP echo service: with --rtt, N sequential round trips (one datagram, wait for its
echo) and prints the median and 90th percentile in microseconds; with --rate, N datagrams with at
most W unanswered at a time, and prints datagrams answered per second and how many were lost
(a datagram unanswered for 1 s counts as lost and frees its place). Output: one JSON line."""
import argparse
import json
import socket
import statistics
import time

ap = argparse.ArgumentParser()
ap.add_argument("target")
ap.add_argument("--rtt", type=int, default=0)
ap.add_argument("--rate", type=int, default=0)
ap.add_argument("--window", type=int, default=32)
ap.add_argument("--size", type=int, default=100)
a = ap.parse_args()
host, port = a.target.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, int(port)))
out = {}
if a.rtt:
    s.settimeout(2)
    samples = []
    for i in range(a.rtt):
        payload = i.to_bytes(4, "big") + b"x" * (a.size - 4)
        t0 = time.perf_counter()
        s.send(payload)
        while True:
            data = s.recv(65535)
            if data[:4] == payload[:4]:
                break
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    out["rtt_median_us"] = round(statistics.median(samples), 1)
    out["rtt_p90_us"] = round(samples[int(len(samples) * 0.9)], 1)
if a.rate:
    s.setblocking(False)
    sent, answered, lost = 0, 0, 0
    outstanding = {}
    t0 = time.perf_counter()
    while answered + lost < a.rate:
        now = time.perf_counter()
        while sent < a.rate and len(outstanding) < a.window:
            s.send(sent.to_bytes(4, "big") + b"x" * (a.size - 4))
            outstanding[sent] = now
            sent += 1
        try:
            data = s.recv(65535)
            i = int.from_bytes(data[:4], "big")
            if outstanding.pop(i, None) is not None:
                answered += 1
        except BlockingIOError:
            for i, t in list(outstanding.items()):
                if now - t > 1:
                    del outstanding[i]
                    lost += 1
            time.sleep(0.0001)
    elapsed = time.perf_counter() - t0
    out["datagrams_per_s"] = round(answered / elapsed)
    out["lost"] = lost
print(json.dumps(out))
