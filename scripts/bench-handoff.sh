#!/usr/bin/env bash
# Hand-off benchmarks: the operating system's part of uspd.
#   1. throughput of one stream through uspd into an application handed the stream by each launch
#      kind — exec on stdin/stdout, exec on fd 3, a running unix application (SCM_RIGHTS hand-off),
#      the tcp launch, and a relay-free session (uspd hands the TCP connection and its keys to
#      usp-example-upper --discard, a USPApp application, and leaves the data path) — all with the
#      same discard sink logic (scripts/bench/fdsink.py, sink.py, usp-example-upper --discard)
#      and the same client (scripts/bench/client.py via `usp connect`); beside the raw cipher
#      (openssl speed, ChaCha20-Poly1305, 16 KiB);
#   2. sessions per second that uspd launches with a process each (exec app /bin/cat, reached
#      through `usp forward`, one dedicated USP connection per session), against inetd-style
#      `socat TCP-LISTEN,fork EXEC:/bin/cat` on the same machine, with the same load client.
#
#   bash scripts/bench-handoff.sh [--quick]
#
# Needs python3 and socat (installed with apt-get if missing). It is a report: exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
HELP="$ROOT/scripts/bench"
QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
if [[ $QUICK == 1 ]]; then : "${RUNS:=3}" "${MIB:=256}" "${SESSIONS:=200}"; else : "${RUNS:=5}" "${MIB:=1024}" "${SESSIONS:=1000}"; fi
: "${CONCURRENCY:=8}"

command -v socat >/dev/null || apt-get install -y socat >/dev/null 2>&1 || echo "socat missing: part 2's peer is skipped"
echo "== building (release)"
swift build -c release >/tmp/handoff-bench-build.$$.log 2>&1 || { tail -n 40 /tmp/handoff-bench-build.$$.log; echo "build failed"; exit 1; }
rm -f /tmp/handoff-bench-build.$$.log
BIN=$(swift build -c release --show-bin-path)
WORK=$(mktemp -d /tmp/handoff-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.3; for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f}" if v else "-")' "$@"; }
wait_port() { local i; for i in $(seq 100); do python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1"; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), $(nproc) cores; RUNS=$RUNS MIB=$MIB SESSIONS=$SESSIONS CONCURRENCY=$CONCURRENCY; load $(cut -d' ' -f1-3 /proc/loadavg)"
SINK_PORT=17607 USP_PORT=17600 FWD_PORT=17601 SOCAT_PORT=17602
DATA="$WORK/usp-data"
"$BIN/uspd" init --data-dir "$DATA" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; exit 1; }
printf 'max_connections = 16384\nmax_unauthenticated = 8192\nhandshake_rate = 1000000\nhandshake_burst = 1000000\nmax_connections_per_source = 0\nmax_streams_per_minute = 0\nmax_streams_per_identity = 0\nlog_level = "warning"\n' >"$DATA/uspd.toml"
app() { printf 'name = "%s"\nvisibility = "public"\n[launch]\n%s\n[limits]\nmax_sessions = 20000\n' "$1" "$2" >"$DATA/apps.d/$1.toml"; }
app sinktcp "tcp = \"127.0.0.1:$SINK_PORT\""
app sinkexec "exec = [\"python3\", \"$HELP/fdsink.py\", \"--stdio\"]"
app sinkfd3 "exec = [\"python3\", \"$HELP/fdsink.py\", \"--fd3\"]
stream = \"fd3\""
app sinkunix "unix = \"$WORK/sink.sock\""
app sinkrelay "unix = \"$WORK/relay.sock\"
relay_free = true"
app cat "exec = [\"/bin/cat\"]"
KEY=$("$BIN/uspd" uri --data-dir "$DATA" | head -n 1 | sed -E 's|usp://([^@]+)@.*|\1|')
URI="usp://$KEY@127.0.0.1:$USP_PORT"
CH="$WORK/client"; "$BIN/usp" keygen --home "$CH" >/dev/null 2>&1

python3 "$HELP/sink.py" --listen "127.0.0.1:$SINK_PORT" --mode discard >"$WORK/sink.log" 2>&1 & PIDS+=($!)
python3 "$HELP/fdsink.py" --unix "$WORK/sink.sock" >"$WORK/fdsink.log" 2>&1 & PIDS+=($!)
"$BIN/usp-example-upper" --socket "$WORK/relay.sock" --discard >"$WORK/relay.log" 2>&1 & PIDS+=($!)
"$BIN/uspd" serve --data-dir "$DATA" --listen "127.0.0.1:$USP_PORT" >"$WORK/uspd.log" 2>&1 & UPID=$!; PIDS+=($UPID)
wait_port $SINK_PORT && wait_port $USP_PORT || exit 1

echo "== 1. throughput: one stream of $MIB MiB through uspd into the application, $RUNS runs each, interleaved"
CIPHER=$(openssl speed -evp chacha20-poly1305 -seconds 1 -bytes 16384 2>/dev/null | awk 'tolower($1) == "chacha20-poly1305" {v=$NF; sub("k","",v); printf "%.0f", v*1000/1e6}')
declare -A T
for kind in sinktcp sinkexec sinkfd3 sinkunix sinkrelay; do T[$kind]=""; done
for i in $(seq "$RUNS"); do
    line="   run $i:"
    for kind in sinktcp sinkexec sinkfd3 sinkunix sinkrelay; do
        v=$(python3 "$HELP/client.py" throughput --mib "$MIB" -- "$BIN/usp" connect --home "$CH" "$URI" "$kind") || v=""
        T[$kind]+=" $v"
        line+="  $kind ${v:-?}"
    done
    echo "$line MB/s"
done
declare -A M; for kind in sinktcp sinkexec sinkfd3 sinkunix sinkrelay; do M[$kind]=$(median ${T[$kind]}); done
echo "   medians: tcp ${M[sinktcp]}  exec stdio ${M[sinkexec]}  exec fd3 ${M[sinkfd3]}  unix hand-off ${M[sinkunix]}  relay-free ${M[sinkrelay]}  MB/s; raw cipher (openssl, one direction) ${CIPHER:-?} MB/s"

echo "== 2. sessions per second with a process each: $SESSIONS sessions, $CONCURRENCY at a time (connect, one byte echoed, close)"
"$BIN/usp" forward --home "$CH" --listen "127.0.0.1:$FWD_PORT" "$URI" cat >"$WORK/forward.log" 2>&1 & FPID=$!; PIDS+=($FPID)
wait_port $FWD_PORT || exit 1
python3 "$HELP/client.py" sessions --connect "127.0.0.1:$FWD_PORT" --count 20 --concurrency 2 >/dev/null   # warm-up
t0=$(ticks $UPID); f0=$(ticks $FPID)
USPS=$(python3 "$HELP/client.py" sessions --connect "127.0.0.1:$FWD_PORT" --count "$SESSIONS" --concurrency "$CONCURRENCY")
t1=$(ticks $UPID); f1=$(ticks $FPID)
CPU=$(python3 -c "print(f'{($t1 - $t0) * 1000 / $HZ / $SESSIONS:.2f}')")
FCPU=$(python3 -c "print(f'{($f1 - $f0) * 1000 / $HZ / $SESSIONS:.2f}')")
SOCATS="-"
if command -v socat >/dev/null; then
    socat "TCP-LISTEN:$SOCAT_PORT,fork,reuseaddr,backlog=1024" EXEC:/bin/cat >"$WORK/socat.log" 2>&1 & PIDS+=($!)
    wait_port $SOCAT_PORT && SOCATS=$(python3 "$HELP/client.py" sessions --connect "127.0.0.1:$SOCAT_PORT" --count "$SESSIONS" --concurrency "$CONCURRENCY")
fi
echo "   uspd (usp forward -> dedicated USP connection -> exec /bin/cat): ${USPS:-?} sessions/s; uspd CPU ${CPU} ms and usp forward ${FCPU} ms per session"
echo "   socat TCP-LISTEN,fork EXEC:/bin/cat (no encryption, no authentication): ${SOCATS:-?} sessions/s"
echo
echo "| figure | value |"
echo "|---|---|"
echo "| throughput, tcp launch | ${M[sinktcp]} MB/s |"
echo "| throughput, exec stdio | ${M[sinkexec]} MB/s |"
echo "| throughput, exec fd 3 | ${M[sinkfd3]} MB/s |"
echo "| throughput, unix hand-off | ${M[sinkunix]} MB/s |"
echo "| throughput, relay-free (USPApp holds the TCP connection) | ${M[sinkrelay]} MB/s |"
echo "| raw ChaCha20-Poly1305 (openssl, 16 KiB) | ${CIPHER:-?} MB/s |"
echo "| sessions/s, uspd exec per session | ${USPS:-?} (uspd ${CPU} ms CPU each) |"
echo "| sessions/s, socat fork | ${SOCATS} |"
exit 0
