#!/usr/bin/env python3
"""An `exec` application with stream = "fd3": it closes stdin and stdout and talks to its client
through fd 3 alone. First it reports what it received (LISTEN_* and USP_* variables, its pid) as
one JSON line; then it reads the client's bytes to end of file, answers with their count and the
text in upper case, and half-closes with shutdown(SHUT_WR)."""
import json
import os
import socket

os.close(0)
os.close(1)
stream = socket.socket(fileno=3)
report = {k: v for k, v in os.environ.items() if k.startswith("LISTEN_") or k.startswith("USP_")}
report["pid"] = str(os.getpid())
report["fd3_type"] = "unix-stream" if stream.family == socket.AF_UNIX and stream.type == socket.SOCK_STREAM else "other"
stream.sendall((json.dumps(report, sort_keys=True) + "\n").encode())
data = b""
while True:
    chunk = stream.recv(65536)
    if not chunk:
        break
    data += chunk
stream.sendall(b"got %d bytes: %s\n" % (len(data), data.upper()))
stream.shutdown(socket.SHUT_WR)
stream.close()
