#!/usr/bin/env bash
# uspd on SQLite and on PostgreSQL, and a fleet of uspd nodes on one PostgreSQL database, side by
# side in one run (docs/FLEET.md, docs/BENCHMARKS.md):
#   1. token issue and validation per second on each backend (usp-store-bench);
#   2. `usp login` and the first echoed byte through one node on each backend;
#   3. revocation propagation: `usp logout` through node A to the end of the stream the same
#      login holds on node B, p50/p99 over REVOCATIONS runs (target p99 < 1 s, aim < 100 ms);
#   4. sessions per second against one node and against three.
#
#   bash scripts/bench-fleet.sh            # REVOCATIONS=200 LOGINS=20 TOKENS=2000 SECONDS_PER=10
#
# Needs Debian's postgresql package (a throwaway cluster is started in a temporary directory on
# port ${BENCH_POSTGRES_PORT:-55441} and stopped at the end) and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REVOCATIONS=${REVOCATIONS:-200}
LOGINS=${LOGINS:-20}
TOKENS=${TOKENS:-2000}
SECONDS_PER=${SECONDS_PER:-10}

swift build -c release --product uspd >/dev/null
swift build -c release --product usp >/dev/null
swift build -c release --product usp-store-bench >/dev/null
BIN=$(swift build -c release --show-bin-path)

PGDIR=$(mktemp -d /tmp/usp-bench-pg.XXXXXX)
trap 'bash "$ROOT/scripts/test-postgres.sh" stop "$PGDIR"; rm -rf "$PGDIR"' EXIT
eval "$(USP_TEST_POSTGRES_PORT=${BENCH_POSTGRES_PORT:-55441} bash scripts/test-postgres.sh start "$PGDIR")"
export PGPASSWORD=$USP_TEST_POSTGRES_PASSWORD USPD_DATABASE_PASSWORD=$USP_TEST_POSTGRES_PASSWORD
server=${USP_TEST_POSTGRES%/postgres}
db=usp_store_bench_$$
psql -q -h 127.0.0.1 -p "${server##*:}" -U usp_test -d postgres -c "CREATE DATABASE $db"
SQLITE=$(mktemp -d /tmp/usp-bench-sqlite.XXXXXX)

echo "machine: $(nproc) CPUs, $(uname -r), $(psql --version | head -n 1), commit $(git rev-parse --short HEAD)"
echo
"$BIN/usp-store-bench" --sqlite "$SQLITE/usp.sqlite" --postgres "$server/$db" --tokens "$TOKENS" --threads 4 --rounds 3
rm -rf "$SQLITE"
echo
python3 scripts/bench/fleet.py --bin "$BIN" --postgres "$USP_TEST_POSTGRES" --revocations "$REVOCATIONS" --logins "$LOGINS" --seconds "$SECONDS_PER"
