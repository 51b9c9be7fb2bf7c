"""An exec'd application (stream on stdin/stdout) that reports what its process may do, then
echoes its input upper-cased until end of file.

The first line is a JSON object:
  uid, gid, groups         the process's IDs (os.getuid, os.getgid, os.getgroups)
  nofile, as, cpu, nproc   soft limits of RLIMIT_NOFILE, RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC (-1: unlimited)
  interfaces               network interfaces of its network namespace (/proc/self/net/dev; /sys/class/net
                           would show those of the namespace /sys was mounted in)
  tcp_loopback             "connected" or the errno name of a TCP connect to 127.0.0.1:$PROBE_PORT,
                           a listener of the test in the daemon's network namespace
  udp_external             "routed" or the errno name of a UDP connect to 192.0.2.1:9 (TEST-NET-1):
                           connect() on a UDP socket only looks the route up and sends nothing
"""
import errno
import json
import os
import resource
import socket
import sys


def limit(r):
    soft, _ = resource.getrlimit(r)
    return -1 if soft == resource.RLIM_INFINITY else soft


def interfaces():
    with open("/proc/self/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


def attempt(kind, address):
    s = socket.socket(socket.AF_INET, kind)
    s.settimeout(3)
    try:
        s.connect(address)
        return "connected" if kind == socket.SOCK_STREAM else "routed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    finally:
        s.close()


def main():
    port = int(os.environ.get("USP_FIELD_PORT") or os.environ.get("PROBE_PORT") or "9")
    report = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "nofile": limit(resource.RLIMIT_NOFILE),
        "as": limit(resource.RLIMIT_AS),
        "cpu": limit(resource.RLIMIT_CPU),
        "nproc": limit(resource.RLIMIT_NPROC),
        "interfaces": interfaces(),
        "tcp_loopback": attempt(socket.SOCK_STREAM, ("127.0.0.1", port)),
        "udp_external": attempt(socket.SOCK_DGRAM, ("192.0.2.1", 9)),
    }
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        sys.stdout.write(line.upper())
        sys.stdout.flush()


main()
