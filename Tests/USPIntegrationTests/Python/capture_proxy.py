#!/usr/bin/env python3
"""A TCP proxy that records what an observer on the path sees: for every read, in each
direction, the time (seconds since the proxy started) and the number of bytes.

    capture_proxy.py LISTEN_PORT TARGET_PORT OUT.json

Prints "listening PORT" once ready. Serves connections one after another; after each one (and
on SIGTERM) writes OUT.json: [{"up": [[t, n], ...], "down": [[t, n], ...]}, ...], one object per
connection (up: client to server)."""
import json
import select
import signal
import socket
import sys
import time

listen_port, target_port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = time.monotonic()
connections = []


def dump(*_):
    with open(out_path, "w") as f:
        json.dump(connections, f)
    sys.exit(0)


signal.signal(signal.SIGTERM, dump)
# A test runner may start us with signals blocked.
signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(8)
print("listening", server.getsockname()[1], flush=True)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target_port))
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    record = {"up": [], "down": []}
    connections.append(record)
    peers = {client: (upstream, "up"), upstream: (client, "down")}
    open_ends = {client, upstream}
    while open_ends:
        readable, _, _ = select.select(list(open_ends), [], [], 1.0)
        for s in readable:
            data = s.recv(65536)
            other, direction = peers[s]
            if not data:
                open_ends.discard(s)
                try:
                    other.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                continue
            record[direction].append([time.monotonic() - start, len(data)])
            other.sendall(data)
    client.close()
    upstream.close()
    with open(out_path, "w") as f:
        json.dump(connections, f)
