#!/usr/bin/env python3
"""A UDP echo server for tests: udp_echo.py PORT. Prints "listening PORT" once bound; answers
every datagram with the same bytes, to the address it came from."""
import socket
import sys

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("listening", s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
