#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's postgresql package), on 127.0.0.1 and a
# Unix socket in DIR, with a role that may create databases (each test makes its own):
#
#   eval "$(bash scripts/test-postgres.sh start [DIR])"   # prints the USP_TEST_POSTGRES* exports
#   bash scripts/test-postgres.sh stop [DIR]
#   bash scripts/test-postgres.sh restart [DIR]            # for failure tests by hand
#
# As root the server runs as the `postgres` user (PostgreSQL refuses root). Port: $USP_TEST_POSTGRES_PORT or 55432.
set -euo pipefail
cmd=${1:-start}
dir=${2:-/tmp/usp-test-postgres}
port=${USP_TEST_POSTGRES_PORT:-55432}
password=usp-test-only
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "test-postgres: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case $cmd in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        printf '%s\n' "$password" > "$dir/pw"
        [ "$(id -u)" = 0 ] && chown postgres "$dir/pw"
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=scram-sha-256 --pwfile="$dir/pw" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
        rm -f "$dir/pw"
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null \
            || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    fi
    PGPASSWORD=$password psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'usp_test') THEN
    CREATE ROLE usp_test LOGIN CREATEDB PASSWORD '$password';
  END IF;
END \$\$;
SQL
    echo "export USP_TEST_POSTGRES=postgresql://usp_test@127.0.0.1:$port/postgres"
    echo "export USP_TEST_POSTGRES_PASSWORD=$password"
    echo "export USP_TEST_POSTGRES_DIR=$dir"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
restart)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w restart >/dev/null
    ;;
*)
    echo "usage: $0 start|stop|restart [DIR]" >&2; exit 2 ;;
esac
