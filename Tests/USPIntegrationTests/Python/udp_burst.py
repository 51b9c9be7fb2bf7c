#!/usr/bin/env python3
"""udp_burst.py PORT COUNT SIZE: from one socket, sends COUNT datagrams of SIZE bytes (each
starting with its number) to 127.0.0.1:PORT as fast as it can, then collects answers for 3 s.
Prints JSON: {"sent": n, "answered": n, "intact": n}."""
import json
import socket
import sys
import time

port, count, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
sent = 0
for i in range(count):
    payload = i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4)
    s.send(payload)
    sent += 1
answers = set()
intact = 0
s.settimeout(0.2)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    i = int.from_bytes(data[:4], "big")
    answers.add(i)
    if data == i.to_bytes(4, "big") + bytes([i % 251]) * (size - 4):
        intact += 1
print(json.dumps({"sent": sent, "answered": len(answers), "intact": intact}))
