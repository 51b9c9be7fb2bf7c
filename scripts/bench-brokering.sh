#!/usr/bin/env bash
# Connection brokering, timed with real hosts: a server, a broker and a beneficiary, each in a
# network namespace of its own on veth links. Prints the median of RUNS runs of
#   - `usp broker URI echo --for BENEFICIARY` on the broker (a process start, the menu connection
#     with the saved login, the service_request with client_ip, the token written to the store);
#   - `echo hi | usp connect URI echo --token T` on the beneficiary (a process start, IK with the
#     token in message 1, the echoed line).
# The beneficiary holds no login, so its connections draw from the strangers' handshake bucket
# (20/s): the bench raises it to time brokering, not the limiter. Needs root and ip(8). Usage: sudo bash scripts/bench-brokering.sh [RUNS] (BIN=.build/release to
# time a release build; the default is the debug build `swift build` makes).
set -euo pipefail
runs=${1:-21}
bin=$(cd "$(dirname "$0")/.." && pwd)/${BIN:-.build/debug}
uspd=$bin/uspd usp=$bin/usp
[ -x "$uspd" ] && [ -x "$usp" ] || { echo "bench-brokering: build first (no $uspd or $usp)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench-brokering: needs root for network namespaces" >&2; exit 1; }
tag=ubr$$; work=$(mktemp -d)
cleanup() { pkill -f "$work/data" 2>/dev/null || true; for n in s b n; do ip netns del $tag$n 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
for n in s b n; do ip netns add $tag$n; ip -n $tag$n link set lo up; done
ip -n ${tag}s link add ${tag}sb type veth peer name ${tag}b netns ${tag}b
ip -n ${tag}s link add ${tag}sn type veth peer name ${tag}n netns ${tag}n
ip -n ${tag}s addr add 10.79.1.1/24 dev ${tag}sb; ip -n ${tag}s link set ${tag}sb up
ip -n ${tag}b addr add 10.79.1.2/24 dev ${tag}b; ip -n ${tag}b link set ${tag}b up
ip -n ${tag}s addr add 10.79.2.1/24 dev ${tag}sn; ip -n ${tag}s link set ${tag}sn up
ip -n ${tag}n addr add 10.79.2.2/24 dev ${tag}n; ip -n ${tag}n link set ${tag}n up
"$uspd" init --data-dir "$work/data" >/dev/null 2>&1
printf 'listen = ["0.0.0.0:7300"]\nhandshake_rate = 1000\nhandshake_burst = 100\n\n[[broker]]\nwho = ["relay"]\nclients = ["10.79.2.0/24"]\ntokens_per_minute = 10000\ntoken_lifetime = 600\n' > "$work/data/uspd.toml"
echo relay-bench-pw > "$work/pw"
"$uspd" user add relay --password-stdin --data-dir "$work/data" < "$work/pw" >/dev/null 2>&1
mkdir -m 700 "$work/hb" "$work/hn"
key=$("$uspd" key --data-dir "$work/data" 2>/dev/null | head -1 | awk '{print $1}')
ip netns exec ${tag}s "$uspd" serve --data-dir "$work/data" > "$work/uspd.log" 2>&1 &
for _ in $(seq 50); do grep -q "usp://" "$work/uspd.log" 2>/dev/null && break; sleep 0.1; done
ip netns exec ${tag}b "$usp" login --home "$work/hb" "usp://$key@10.79.1.1:7300" --user relay --password-file "$work/pw" >/dev/null
broker=() connect=()
for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    token=$(ip netns exec ${tag}b "$usp" broker --home "$work/hb" "usp://$key@10.79.1.1:7300" echo --for 10.79.2.2)
    t1=$(date +%s%N)
    out=$(echo hi | ip netns exec ${tag}n "$usp" connect --no-agent --home "$work/hn" "usp://$key@10.79.2.1:7300" echo --token "$token")
    t2=$(date +%s%N)
    [ "$out" = hi ] || { echo "bench-brokering: the beneficiary's echo came back as '$out'" >&2; exit 1; }
    broker+=($(( (t1 - t0) / 1000 ))); connect+=($(( (t2 - t1) / 1000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.1f ms", a[int((NR+1)/2)]/1000}'; }
echo "brokering, $runs runs, $(basename "$(dirname "$bin")")/$(basename "$bin") build, veth between namespaces, $(nproc) CPUs"
echo "usp broker (token for another address)      median $(median "${broker[@]}")"
echo "usp connect --token (beneficiary, echo)     median $(median "${connect[@]}")"
