"""A local program that asks `usp agent` for a stream, standard library only (Python 3.9+).

    agent_client.py SOCKET open URI APPLICATION [TEXT [FIELDS_JSON]]
        one open; prints the answer as JSON; with a descriptor, sends TEXT, half-closes, reads
        to end of file and prints {"received": ...}
    agent_client.py SOCKET repeat N URI APPLICATION
        N opens in a row; prints each answer (descriptors are closed unused)

Every outcome is one JSON line on stdout, so the tests can read it; a failed connect prints
{"connect_error": errno}.
"""
import json
import socket
import struct
import sys


def frame(obj):
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("end of file after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def ask(path, request):
    """Sends one request; returns (answer, descriptor or None)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        return {"connect_error": e.errno}, None
    with sock:
        sock.sendall(frame(request))
        # The descriptor comes with the first byte of the answer.
        prefix, fds, _, _ = socket.recv_fds(sock, 4, 1)
        if not prefix:
            return {"eof": True}, None
        prefix += recv_exactly(sock, 4 - len(prefix))
        (n,) = struct.unpack(">I", prefix)
        answer = json.loads(recv_exactly(sock, n))
        return answer, (fds[0] if fds else None)


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "open":
        uri, app = sys.argv[3], sys.argv[4]
        text = sys.argv[5] if len(sys.argv) > 5 else ""
        request = {"v": 1, "op": "open", "uri": uri, "application": app}
        if len(sys.argv) > 6:
            request["fields"] = json.loads(sys.argv[6])
        answer, fd = ask(path, request)
        answer["got_descriptor"] = fd is not None
        print(json.dumps(answer), flush=True)
        if fd is None:
            return
        stream = socket.socket(fileno=fd)
        with stream:
            stream.sendall(text.encode())
            stream.shutdown(socket.SHUT_WR)
            received = b""
            while True:
                chunk = stream.recv(65536)
                if not chunk:
                    break
                received += chunk
        print(json.dumps({"received": received.decode(errors="replace")}), flush=True)
    elif mode == "repeat":
        count, uri, app = int(sys.argv[3]), sys.argv[4], sys.argv[5]
        for _ in range(count):
            answer, fd = ask(path, {"v": 1, "op": "open", "uri": uri, "application": app})
            answer["got_descriptor"] = fd is not None
            if fd is not None:
                socket.socket(fileno=fd).close()
            print(json.dumps(answer), flush=True)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
