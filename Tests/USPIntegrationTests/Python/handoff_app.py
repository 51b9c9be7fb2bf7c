#!/usr/bin/env python3
"""A USP `unix` application in Python, standard library only (docs/APPLICATIONS.md).

usage: handoff_app.py SOCKET_PATH [ok|refuse|close]

For each session uspd connects to SOCKET_PATH and sends, in one sendmsg, a 4-byte big-endian
length, that many bytes of JSON metadata, and one descriptor (SCM_RIGHTS): the client's stream.
This app answers "ok\\n" and closes the connection, then on the stream greets the identity,
echoes every line prefixed with "py: ", and on end of input says "py bye" and half-closes.

The second argument makes it misbehave for tests: "refuse" answers an error line, "close"
closes without answering.
"""
import array
import json
import os
import signal
import socket
import struct
import sys
import threading

MAX_METADATA = 65536


def recv_handoff(conn):
    """Returns (metadata dict, stream socket) or raises ValueError."""
    fds = array.array("i")
    data, ancdata, flags, _ = conn.recvmsg(4, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        raise ValueError("too many descriptors")
    while len(data) < 4:
        more = conn.recv(4 - len(data))
        if not more:
            raise ValueError("end of file in the length")
        data += more
    (length,) = struct.unpack(">I", data)
    if not 1 <= length <= MAX_METADATA:
        raise ValueError("metadata length %d out of range" % length)
    body = b""
    while len(body) < length:
        more = conn.recv(length - len(body))
        if not more:
            raise ValueError("end of file in the metadata")
        body += more
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise ValueError("expected one descriptor, got %d" % len(fds))
    metadata = json.loads(body)
    if metadata.get("v") != 1:
        raise ValueError("unknown metadata version")
    return metadata, socket.socket(fileno=fds[0])


def serve(metadata, stream):
    with stream:
        who = metadata["identity"] or "anonymous"
        stream.sendall(("py hello %s app=%s session=%s request=%s\n" % (
            who, metadata["application"], metadata["session"],
            json.dumps(metadata["request"], sort_keys=True))).encode())
        reader = stream.makefile("rb")
        for line in reader:
            stream.sendall(b"py: " + line)
        stream.sendall(b"py bye\n")
        stream.shutdown(socket.SHUT_WR)
        print("session %s done" % metadata["session"], flush=True)


def main():
    # A parent may have left SIGTERM ignored or blocked; the test harness stops us with it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    path = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "ok"
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            if mode == "close":
                continue
            try:
                metadata, stream = recv_handoff(conn)
            except (ValueError, OSError) as e:
                conn.sendall(("error %s\n" % e).encode())
                continue
            if mode == "refuse":
                stream.close()
                conn.sendall(b"error busy: not today\n")
                continue
            conn.sendall(b"ok\n")
        print("session %s for %s" % (metadata["session"], metadata["identity"]), flush=True)
        threading.Thread(target=serve, args=(metadata, stream), daemon=True).start()


if __name__ == "__main__":
    main()
