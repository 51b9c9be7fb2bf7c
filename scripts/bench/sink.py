#!/usr/bin/env python3
"""sink.py - TCP server for the daemon benchmarks (standard library only).

  sink.py --listen HOST:PORT --mode discard|echo [--ready FILE]

discard: reads and drops every byte. The first bytes received are answered with
         one byte "R" (the client then knows the path is up and starts its clock);
         at end of input it answers "OK <bytes>\\n" and closes.
echo:    sends every byte back.
One thread, selectors, TCP_NODELAY on every connection; thousands of idle
connections are fine. Prints READY (and writes --ready) once listening.
"""
import argparse
import selectors
import socket

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--mode", choices=["discard", "echo"], default="discard")
    ap.add_argument("--ready")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    state = {}  # sock -> [bytes_received]
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(f"{ls.getsockname()[1]}\n")
    print("READY", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c.setblocking(False)
                    state[c] = [0]
                    sel.register(c, selectors.EVENT_READ, None)
                continue
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            st = state[s]
            if n == 0:
                if a.mode == "discard":
                    try:
                        s.setblocking(True)
                        s.sendall(f"OK {st[0]}\n".encode())
                    except OSError:
                        pass
                sel.unregister(s)
                del state[s]
                s.close()
                continue
            if a.mode == "echo":
                try:
                    s.setblocking(True)
                    s.sendall(view[:n])
                    s.setblocking(False)
                except OSError:
                    pass
            else:
                if st[0] == 0:
                    try:
                        s.send(b"R")
                    except OSError:
                        pass
                st[0] += n

if __name__ == "__main__":
    main()
