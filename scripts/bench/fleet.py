#!/usr/bin/env python3
"""uspd on SQLite and on PostgreSQL, and a fleet of uspd nodes on one PostgreSQL database.

    python3 scripts/bench/fleet.py --bin DIR --postgres URL [--revocations 200] [--logins 20] [--seconds 10]

URL: a role that may create databases (postgresql://USER@HOST:PORT/postgres); its password in
$PGPASSWORD. Prints, side by side in one run:
  1. `usp login` and the first echoed byte of a new `usp connect` through one node, per backend
     (medians over --logins runs);
  2. revocation propagation: `usp logout` through node A while the same login holds a stream on
     node B; from the command's start to the stream's end on B, p50/p99 over --revocations runs,
     and the same less the logout command's own time (the database's push and node B's reset);
  3. sessions per second (connect, one byte echoed, close) with 6 clients at once, against one
     node and spread over three nodes.
"""
import argparse, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time, uuid

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--postgres", required=True)
ap.add_argument("--revocations", type=int, default=200)
ap.add_argument("--logins", type=int, default=20)
ap.add_argument("--seconds", type=float, default=10)
a = ap.parse_args()
USPD, USP = os.path.join(a.bin, "uspd"), os.path.join(a.bin, "usp")
PGPASS = os.environ.get("PGPASSWORD", "")
server = a.postgres.split("://", 1)[1]
pg_user, rest = server.split("@", 1)
pg_host, rest = rest.split(":", 1)
pg_port = rest.split("/", 1)[0]
work = tempfile.mkdtemp(prefix="usp-fleet-bench-")
procs = []


def psql(sql):
    subprocess.run(["psql", "-q", "-h", pg_host, "-p", pg_port, "-U", pg_user, "-d", "postgres", "-c", sql],
                   env={**os.environ, "PGPASSWORD": PGPASS}, check=True, stdout=subprocess.DEVNULL)


def new_database():
    name = "usp_bench_" + uuid.uuid4().hex[:12]
    psql(f"CREATE DATABASE {name}")
    return f"postgresql://{pg_user}@{pg_host}:{pg_port}/{name}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


ENV = {**os.environ, "USPD_DATABASE_PASSWORD": PGPASS}


class Node:
    def __init__(self, name, database=None, key_from=None):
        self.dir = os.path.join(work, name)
        self.port = free_port()
        args = [USPD, "init", "--data-dir", self.dir] + (["--database", database] if database else [])
        out = subprocess.run(args, env=ENV, capture_output=True, text=True, check=True)
        self.password = None
        for line in (out.stdout + out.stderr).splitlines():
            if "password: " in line:
                self.password = line.split()[-1]
        if key_from:
            shutil.copy(os.path.join(key_from.dir, "host_key"), os.path.join(self.dir, "host_key"))
            self.password = key_from.password
        with open(os.path.join(self.dir, "uspd.toml"), "w") as f:
            f.write(f'node_name = "{name}"\nhandshake_rate = 10000\nhandshake_burst = 10000\n'
                    'max_streams_per_minute = 0\nlog_level = "warning"\n')
        with open(os.path.join(self.dir, "apps.d", "echo.toml"), "w") as f:
            f.write('name = "echo"\nvisibility = "authenticated"\n[launch]\nexec = ["/bin/cat"]\n')
        cmd = [USPD, "serve", "--data-dir", self.dir, "--listen", f"127.0.0.1:{self.port}"] + (["--database", database] if database else [])
        self.proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(self.proc)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        uri = subprocess.run([USPD, "uri", "--data-dir", self.dir] + (["--database", database] if database else []),
                             env=ENV, capture_output=True, text=True, check=True).stdout.split()[0]
        self.uri = uri


def usp(home, *args, stdin=None):
    return subprocess.run([USP, "--home", home, *args], input=stdin, capture_output=True, text=True, timeout=60)


def login(home, node):
    r = usp(home, "login", node.uri, "--user", "admin", stdin=node.password + "\n")
    if r.returncode != 0:
        sys.exit(f"usp login {node.uri} failed: {r.stderr}")


def share_login(home, source, target):
    tokens = os.path.join(home, "tokens")
    shutil.copy(os.path.join(tokens, f"127.0.0.1_{source.port}.json"), os.path.join(tokens, f"127.0.0.1_{target.port}.json"))


def first_byte(home, node):
    """Seconds from starting `usp connect` to its first echoed byte."""
    start = time.perf_counter()
    p = subprocess.Popen([USP, "--home", home, "connect", "--no-agent", node.uri, "echo"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(b"x")
    p.stdin.flush()
    got = p.stdout.read(1)
    elapsed = time.perf_counter() - start
    p.stdin.close()
    p.wait()
    if got != b"x":
        sys.exit(f"usp connect {node.uri} echo: no echo ({p.stderr.read().decode()})")
    return elapsed


def ms(v):
    return f"{v * 1000:.1f} ms"


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


try:
    # 1. One node per backend.
    print(f"1. login and first byte through one node (medians of {a.logins})")
    rows = []
    for backend in ("SQLite", "PostgreSQL"):
        node = Node("single-" + backend.lower(), new_database() if backend == "PostgreSQL" else None)
        home = tempfile.mkdtemp(dir=work)
        login(home, node)
        logins, firsts = [], []
        for _ in range(a.logins):
            start = time.perf_counter()
            login(home, node)
            logins.append(time.perf_counter() - start)
            firsts.append(first_byte(home, node))
        rows.append((backend, statistics.median(logins), statistics.median(firsts)))
        node.proc.terminate()
        node.proc.wait()
    print(f"   {'backend':<12} {'usp login':>12} {'first byte':>12}")
    for backend, l, f in rows:
        print(f"   {backend:<12} {ms(l):>12} {ms(f):>12}")

    # 2. Revocation propagation across two nodes.
    database = new_database()
    node_a = Node("node-a", database)
    node_b = Node("node-b", database, key_from=node_a)
    home = tempfile.mkdtemp(dir=work)
    to_reset, logout_own, failures = [], [], 0
    for _ in range(a.revocations):
        login(home, node_a)
        share_login(home, node_a, node_b)
        p = subprocess.Popen([USP, "--home", home, "connect", "--no-agent", node_b.uri, "echo"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(b"x")
        p.stdin.flush()
        if p.stdout.read(1) != b"x":
            failures += 1
            p.kill()
            p.wait()
            continue
        start = time.perf_counter()
        r = usp(home, "logout", node_a.uri)
        logged_out = time.perf_counter()
        p.wait(timeout=30)
        ended = time.perf_counter()
        if r.returncode != 0 or b"revoked" not in p.stderr.read():
            failures += 1
            continue
        to_reset.append(ended - start)
        logout_own.append(ended - logged_out)
    print(f"2. revocation: usp logout via node A, the stream on node B ends ({len(to_reset)} runs"
          + (f", {failures} failed" if failures else "") + ")")
    print(f"   from the command's start:      p50 {ms(pct(to_reset, 50))}, p99 {ms(pct(to_reset, 99))}, max {ms(max(to_reset))}")
    print(f"   after the logout command ends: p50 {ms(pct(logout_own, 50))}, p99 {ms(pct(logout_own, 99))}, max {ms(max(logout_own))}")

    # 3. Sessions per second, one node against three.
    node_c = Node("node-c", database, key_from=node_a)
    nodes = [node_a, node_b, node_c]
    login(home, node_a)
    for n in nodes[1:]:
        share_login(home, node_a, n)
    one = os.path.join(work, "one-byte")
    with open(one, "wb") as f:
        f.write(b"x")

    def sessions_per_second(targets, clients=6):
        count = [0] * clients
        stop = time.time() + a.seconds

        def worker(i):
            while time.time() < stop:
                with open(one, "rb") as stdin:
                    r = subprocess.run([USP, "--home", home, "connect", "--no-agent", targets[i % len(targets)].uri, "echo"],
                                       stdin=stdin, capture_output=True)
                if r.returncode == 0 and r.stdout == b"x":
                    count[i] += 1
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(count) / a.seconds

    one_node = sessions_per_second([node_a])
    three_nodes = sessions_per_second(nodes)
    print(f"3. sessions per second, 6 clients at once for {a.seconds:.0f} s: one node {one_node:.0f}, three nodes {three_nodes:.0f}"
          f" ({os.cpu_count()} CPUs for the clients, the nodes and PostgreSQL together)")
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(work, ignore_errors=True)
