#!/usr/bin/env python3
"""fdsink.py - the discard sink of the daemon benchmarks, as a USP application (standard library only).

  fdsink.py --stdio          exec'd with the stream on stdin/stdout (launch exec, stream = "stdio")
  fdsink.py --fd3            exec'd with the stream on fd 3 (launch exec, stream = "fd3")
  fdsink.py --unix PATH      a running application: uspd hands each session over PATH (launch unix)

Same protocol as sink.py's discard mode: the first bytes are answered with "R", every byte is
counted and dropped, and at end of input it answers "OK <bytes>\\n" and closes. The unix mode
speaks the hand-off of docs/APPLICATIONS.md: 4-byte big-endian length, JSON metadata, one
descriptor by SCM_RIGHTS; it answers "ok\\n" and serves the stream on a thread.
"""
import array
import os
import socket
import struct
import sys
import threading


def serve(read, write):
    buf = bytearray(1 << 20)
    total = 0
    first = True
    while True:
        n = read(buf)
        if not n:
            break
        total += n
        if first:
            write(b"R")
            first = False
    write(b"OK %d\n" % total)


def serve_socket(s):
    try:
        serve(s.recv_into, s.sendall)
    finally:
        s.close()


def handoff(conn):
    fds = array.array("i")
    data, ancdata, _, _ = conn.recvmsg(4, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    while len(data) < 4:
        data += conn.recv(4 - len(data))
    (length,) = struct.unpack(">I", data)
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    conn.sendall(b"ok\n")
    conn.close()
    threading.Thread(target=serve_socket, args=(socket.socket(fileno=fds[0]),), daemon=True).start()


def main():
    if sys.argv[1:] == ["--stdio"]:
        fin, fout = sys.stdin.buffer.raw, sys.stdout.buffer.raw
        def write(b):
            mv = memoryview(b)
            while mv:
                mv = mv[fout.write(mv):]
        serve(fin.readinto, write)
    elif sys.argv[1:] == ["--fd3"]:
        serve_socket(socket.socket(fileno=3))
    elif len(sys.argv) == 3 and sys.argv[1] == "--unix":
        path = sys.argv[2]
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(128)
        print("READY", flush=True)
        while True:
            c, _ = ls.accept()
            try:
                handoff(c)
            except (OSError, ValueError) as e:
                print("fdsink: hand-off failed: %s" % e, file=sys.stderr)
                c.close()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
