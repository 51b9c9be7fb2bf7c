#!/usr/bin/env bash
# Side by side with an earlier commit: the same measurements, interleaved round by round, from a
# release build of REV (default: HEAD~1) and one of the working tree.
#
#   bash scripts/bench-compare.sh [REV] [--rounds N]
#
# 1. `usp-bench --quick`: record layer, session path, handshake pairs (CPU, in process);
# 2. `usp connect URI sink` throughput: 256 MiB through each tree's own uspd to one discarding
#    sink on loopback (each client with its tree's `usp`, default settings: bucket padding).
# Prints every round and the medians with the change in percent. REV is built in a worktree under
# .build-compare/ (kept for the next run). A report: it exits 0 whatever the figures.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REV=HEAD~1 ROUNDS=5
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) REV=$1 ;;
    esac
    shift
done
SHA=$(git rev-parse --short "$REV") || exit 2
OLD="$ROOT/.build-compare/$SHA"
if [[ ! -d $OLD ]]; then
    mkdir -p "$ROOT/.build-compare"
    git worktree add -f --detach "$OLD" "$SHA" >/dev/null || exit 2
fi
echo "== building $SHA and the working tree (release)"
(cd "$OLD" && swift build -c release >/tmp/bench-compare-old.log 2>&1) || { tail -20 /tmp/bench-compare-old.log; exit 1; }
swift build -c release >/tmp/bench-compare-new.log 2>&1 || { tail -20 /tmp/bench-compare-new.log; exit 1; }
declare -A BIN=([old]="$OLD/.build/release" [new]="$ROOT/.build/release")
WORK=$(mktemp -d /tmp/bench-compare.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"; }
trap cleanup EXIT

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f}" if v else "-")' "$@"; }
change() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{(b-a)/a*100:+.1f} %")' "$1" "$2" 2>/dev/null || echo "-"; }

echo "== 1. usp-bench --quick, $ROUNDS rounds, old and new in turn"
declare -A V
KEYS="session16k_MBps stream_seal16k_MBps hs_ik_us hs_nk_us hs_xx_us"
for i in $(seq "$ROUNDS"); do
    for t in old new; do
        line=$(LD_LIBRARY_PATH=${BIN[$t]} "${BIN[$t]}/usp-bench" --quick 2>/dev/null | grep '^RESULT')
        for k in $KEYS; do V[$t.$k]+=" $(echo "$line" | grep -oE "$k=[0-9.]+" | cut -d= -f2)"; done
    done
    echo "   round $i done"
done

echo "== 2. usp connect throughput, 256 MiB, $ROUNDS rounds"
python3 scripts/bench/sink.py --listen 127.0.0.1:18007 --mode discard >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
sleep 0.5
declare -A URI
port=18300
for t in old new; do
    "${BIN[$t]}/uspd" init --data-dir "$WORK/$t" >/dev/null 2>&1
    printf 'max_streams_per_minute = 0\nlog_level = "warning"\n' >"$WORK/$t/uspd.toml"
    printf 'name = "sink"\nvisibility = "public"\n[launch]\ntcp = "127.0.0.1:18007"\n' >"$WORK/$t/apps.d/sink.toml"
    "${BIN[$t]}/uspd" serve --data-dir "$WORK/$t" --listen "127.0.0.1:$port" >"$WORK/$t.log" 2>&1 &
    PIDS+=($!)
    sleep 1
    URI[$t]="usp://$("${BIN[$t]}/uspd" uri --data-dir "$WORK/$t" | head -1 | sed -E 's|usp://([^@]+)@.*|\1|')@127.0.0.1:$port"
    port=$((port + 1))
done
for i in $(seq "$ROUNDS"); do
    for t in old new; do
        v=$(python3 scripts/bench/client.py throughput --mib 256 -- "${BIN[$t]}/usp" connect --home "$WORK/home-$t" "${URI[$t]}" sink)
        V[$t.connect_MBps]+=" $v"
    done
    echo "   round $i: old${V[old.connect_MBps]##* } new${V[new.connect_MBps]##* } MB/s"
done

echo
echo "| figure (median of $ROUNDS) | $SHA | working tree | change |"
echo "|---|---|---|---|"
for k in $KEYS connect_MBps; do
    a=$(median ${V[old.$k]}); b=$(median ${V[new.$k]})
    echo "| $k | $a | $b | $(change "$a" "$b") |"
done
