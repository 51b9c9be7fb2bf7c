#!/usr/bin/env bash
# The chaos suite: attacks a real uspd on loopback the way an outsider would, and measures whether
# legitimate clients are still served. One fresh uspd (own data directory, own port) per scenario:
#
#   flood       handshake flood (random 1024-byte message 1) from 750 addresses in 250 /24s
#   idle        5,000 idle TCP connections from 25 addresses
#   reconnect   300 sockets from 2 addresses, each reconnected the moment uspd closes it
#   anonymous   anonymous NK/XX menu sessions that idle or PING, from 17 addresses (max_connections 512)
#   bruteforce  password guessing against alice from one /24 while alice logs in from 127.0.0.1
#   fdexhaust   uspd under prlimit --nofile=256:256 saturated with idle connections; its CPU, then recovery
#   audit       database growth (its content; the -wal scratch apart) during a flood plus password guessing
#
#   bash scripts/chaos.sh [--short|--long] [--bin DIR] [scenario...]
#
# --short (the default; CI) runs every scenario in about three minutes on 2 cores; --long runs the
# full sizes and durations (10 minutes for audit). Each scenario prints one line: its figures
# (legitimate success and p50/p99 latency, the attack rate achieved, uspd's CPU in % of one core,
# the database growth), its target, PASS or FAIL. Exits 1 if any scenario fails. Builds release
# binaries in .build-chaos, unless --bin DIR names a folder holding uspd, usp and usp-chaos already
# built (CI builds them in release beside its fuzzing and passes that folder). The load generator is Sources/usp-chaos;
# docs/RELIABILITY.md says what each scenario does and holds the results. CHAOS_KEEP=DIR copies each
# scenario's directory (uspd.log, chaos.err, the data directory) to DIR before it is removed, to
# look into a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE=short
SCENARIOS=()
ALL=(flood idle reconnect anonymous bruteforce fdexhaust audit)
while [[ $# -gt 0 ]]; do
    case $1 in
        --short) MODE=short ;;
        --long) MODE=long ;;
        --bin) BIN_DIR=$2; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "usage: $0 [--short|--long] [${ALL[*]}]" >&2; exit 2 ;;
        *) [[ " ${ALL[*]} " == *" $1 "* ]] || { echo "chaos: unknown scenario $1 (one of: ${ALL[*]})" >&2; exit 2; }
           SCENARIOS+=("$1") ;;
    esac
    shift
done
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=("${ALL[@]}")

SCRATCH="$ROOT/.build-chaos"
BUILD_START=$SECONDS
if [[ -n ${BIN_DIR:-} ]]; then
    # Binaries already built (CI builds release ones beside its fuzzing), no build of our own.
    BIN=$(cd "$BIN_DIR" && pwd)
    for product in uspd usp usp-chaos; do
        [[ -x $BIN/$product ]] || { echo "chaos: $BIN/$product not found (build it first, or drop --bin)" >&2; exit 1; }
    done
    echo "== chaos ($MODE): binaries from $BIN"
else
    echo "== chaos ($MODE): building release binaries in $SCRATCH"
    for product in uspd usp usp-chaos; do
        swift build -c release --scratch-path "$SCRATCH" --product "$product" >"$SCRATCH.log" 2>&1 || {
            tail -n 40 "$SCRATCH.log"; echo "chaos: building $product failed"; exit 1; }
    done
    rm -f "$SCRATCH.log"
    BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
fi
USPD="$BIN/uspd" USP="$BIN/usp" CHAOS="$BIN/usp-chaos"
echo "== ready in $((SECONDS - BUILD_START)) s; $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + local changes'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/usp-chaos.XXXXXX)
USPD_PID=""
stop_uspd() {
    [[ -n $USPD_PID ]] || return 0
    kill -TERM "$USPD_PID" 2>/dev/null
    local i
    for i in $(seq 30); do kill -0 "$USPD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$USPD_PID" 2>/dev/null
    wait "$USPD_PID" 2>/dev/null
    USPD_PID=""
}
cleanup() { stop_uspd; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# setup NAME: a data directory with alice (password), the legitimate client's key, a public echo
# application, uspd.toml for the scenario; then uspd started on a free port. Sets D, DATA, URI.
ALICE_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
setup() {
    local name=$1 port i
    D="$WORK/$name"
    DATA="$D/data"
    mkdir -p "$D"
    "$USPD" init --data-dir "$DATA" >"$D/init.log" 2>&1 || { cat "$D/init.log"; return 1; }
    printf '%s\n' "$ALICE_PASSWORD" | "$USPD" user add alice --password-stdin --data-dir "$DATA" >>"$D/init.log" 2>&1 || { cat "$D/init.log"; return 1; }
    "$USP" keygen --home "$D/legit" >>"$D/init.log" 2>&1 || { cat "$D/init.log"; return 1; }
    "$USPD" user add chaos-client --key="$(cat "$D/legit/identity.pub")" --data-dir "$DATA" >>"$D/init.log" 2>&1 || { cat "$D/init.log"; return 1; }
    mkdir -p "$D/attacker"
    cat >"$DATA/apps.d/echo.toml" <<'EOF'
# The legitimate client's application: every byte back, one /bin/cat per session.
name = "echo"
visibility = "public"
[launch]
exec = ["/bin/cat"]
[limits]
max_sessions = 256
EOF
    port=$(free_port)
    {
        echo "listen = [\"127.0.0.1:$port\"]"
        [[ $name == anonymous ]] && echo "max_connections = 512"
    } >"$DATA/uspd.toml"
    local limit=()
    [[ $name == fdexhaust ]] && limit=(prlimit --nofile=256:256)
    "${limit[@]}" "$USPD" serve --data-dir "$DATA" >"$D/uspd.log" 2>&1 &
    USPD_PID=$!
    for i in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill -0 "$USPD_PID" 2>/dev/null || { tail -n 20 "$D/uspd.log"; echo "chaos: uspd did not start"; return 1; }
        sleep 0.1
    done
    URI=$("$USPD" uri --data-dir "$DATA" | head -n 1)
}

RESULTS=()
FAILED=0
SUITE_START=$SECONDS
for name in "${SCENARIOS[@]}"; do
    start=$SECONDS
    if ! setup "$name"; then
        RESULTS+=("$name: setup failed | FAIL"); FAILED=1; stop_uspd; continue
    fi
    args=(--server "$URI" --uspd-pid "$USPD_PID" --database "$DATA/usp.sqlite" --legit-home "$D/legit" --attacker-home "$D/attacker")
    [[ $MODE == short ]] && args+=(--short)
    [[ $name == bruteforce ]] && args+=(--password "$ALICE_PASSWORD")
    limit=180; [[ $MODE == long ]] && limit=900
    line=$(timeout --kill-after=10 "$limit" "$CHAOS" "$name" "${args[@]}" 2>"$D/chaos.err")
    status=$?
    sed 's/^/  /' "$D/chaos.err" | grep -v '^  $' | head -n 20
    [[ -n $line ]] || line="$name: usp-chaos gave no result (exit $status) | FAIL"
    [[ $status == 0 ]] || FAILED=1
    stop_uspd
    if [[ $name == audit ]] && command -v sqlite3 >/dev/null; then
        rows=$(sqlite3 "$DATA/usp.sqlite" 'select count(*) from audit' 2>/dev/null || echo '?')
        line="$line | $rows audit rows"
    fi
    warnings=$(grep -ciE 'warning|error|critical' "$D/uspd.log" || true)
    echo "$line"
    echo "  ($((SECONDS - start)) s; load $(cut -d" " -f1 /proc/loadavg); uspd log: $(wc -l <"$D/uspd.log") lines, $warnings warning/error)"
    RESULTS+=("$line")
    if [[ -n ${CHAOS_KEEP:-} ]]; then mkdir -p "$CHAOS_KEEP" && cp -r "$D" "$CHAOS_KEEP/"; fi
    rm -rf "$D"
done

echo "== chaos ($MODE) results, $((SECONDS - SUITE_START)) s for ${#SCENARIOS[@]} scenario(s):"
printf '%s\n' "${RESULTS[@]}"
exit $FAILED
