#!/usr/bin/env bash
# uspd daemon benchmarks, side by side with OpenSSH and plain TCP in one run, each figure against
# its target with PASS/FAIL:
#   1. throughput of one stream through uspd to a local sink, vs `ssh -W` (chacha20-poly1305)
#      through a local sshd, vs raw loopback TCP, all driven by the same client (scripts/bench/client.py);
#   2. time to the first echoed byte at 50 ms RTT (two network namespaces joined by a delayed
#      userspace link, scripts/bench/delaylink.py), in round trips: `usp connect URI echo` with a
#      pinned server key, plain TCP echo, `ssh -W`;
#   3. uspd's memory per idle session at N sessions (VmRSS and PSS, before and after);
#   4. uspd's CPU per new session (utime+stime over K sequential logins / connects), beside
#      sshd's per `ssh -W` connection (the listener's own and its reaped children's CPU);
#   and, from part 1's runs, uspd's CPU per GiB relayed to a tcp application beside sshd's.
#
#   5. what shape = "interactive" costs: the bytes per second an idle shaped session puts on the
#      wire each way, seen by a proxy on the path, and the bulk rate through a shaped application.
#
#   6. UDP: round trip and datagrams per second to a UDP echo service, direct and through
#      `usp forward --udp` and uspd (`[launch] udp`), loopback.
#
#   7. the client's own CPU (os.wait4 of the client process): per connection (connect, one byte
#      echoed, close) and per GiB sent, for `usp connect` (the release build, and with
#      STATIC=1 a --static-swift-stdlib build too), `ssh -W` and `socat` (plain TCP, no crypto).
#
#   sudo bash scripts/bench-daemon.sh [--quick] [--only throughput,rtt,memory,cpu,shaping,udp,client]
#
# Needs: a release build (made here), python3, OpenSSH (ssh, sshd, ssh-keygen) for the ssh
# columns, and root for the namespaces of part 2 (without root, part 2 is skipped). Everything
# it starts it stops, including the namespaces. It is a report: it exits 0 whether targets pass
# or fail. Tunables: RUNS, MIB, RTT_RUNS, SESSIONS, CPU_K. See docs/BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
HELP="$ROOT/scripts/bench"

QUICK=0
ONLY="throughput,rtt,memory,cpu,shaping,udp,client"
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --only) ONLY=$2; shift ;;
        *) echo "usage: $0 [--quick] [--only throughput,rtt,memory,cpu,shaping,udp,client]" >&2; exit 2 ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    : "${RUNS:=3}" "${MIB:=256}" "${RTT_RUNS:=3}" "${SESSIONS:=200}" "${CPU_K:=50}"
else
    : "${RUNS:=5}" "${MIB:=1024}" "${RTT_RUNS:=7}" "${SESSIONS:=1000}" "${CPU_K:=200}"
fi
want() { [[ ",$ONLY," == *",$1,"* ]]; }

echo "== building (release)"
swift build -c release >/tmp/uspd-bench-build.$$.log 2>&1 || {
    tail -n 40 /tmp/uspd-bench-build.$$.log; rm -f /tmp/uspd-bench-build.$$.log; echo "build failed"; exit 1; }
rm -f /tmp/uspd-bench-build.$$.log
BIN=$(swift build -c release --show-bin-path)
USPD="$BIN/uspd"
USP="$BIN/usp"
[[ -x $USPD && -x $USP ]] || { echo "uspd/usp not found in $BIN"; exit 1; }
USP_STATIC=""
if [[ ${STATIC:-0} == 1 ]]; then
    echo "== building usp with --static-swift-stdlib (.build-static)"
    # shellcheck source=scripts/static-build-flags.sh
    source "$ROOT/scripts/static-build-flags.sh"
    swift build -c release --product usp "${STATIC_BUILD_FLAGS[@]}" --scratch-path .build-static >/tmp/uspd-bench-static.$$.log 2>&1 \
        && USP_STATIC="$ROOT/.build-static/release/usp" || { tail -n 20 /tmp/uspd-bench-static.$$.log; echo "static build failed"; }
    rm -f /tmp/uspd-bench-static.$$.log
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d /tmp/uspd-bench.XXXXXX)
chmod 755 "$WORK"
NS_C=uspdbench-c NS_S=uspdbench-s
ADDR_C=198.19.0.1 ADDR_S=198.19.0.2    # RFC 2544 benchmarking range, exists only in the namespaces
ONE_WAY_MS=25
PIDS=()
SSHD_PIDFILES=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${SSHD_PIDFILES[@]}"; do [[ -f $p ]] && kill "$(cat "$p")" 2>/dev/null; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    ip netns del $NS_C 2>/dev/null
    ip netns del $NS_S 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.2f}" if v else "-")' "$@"; }
wait_port() {  # wait_port HOST PORT [netns]
    local i
    for i in $(seq 100); do
        if ${3:+ip netns exec $3} python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$1" "$2" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on $1:$2"; return 1
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime in clock ticks
allticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }   # with reaped children (sshd's sessions)
HZ=$(getconf CLK_TCK)

echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB"
echo "== $(ssh -V 2>&1), python $(python3 -c 'import platform; print(platform.python_version())')"
echo "== RUNS=$RUNS MIB=$MIB RTT_RUNS=$RTT_RUNS SESSIONS=$SESSIONS CPU_K=$CPU_K; load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- fixtures
SINK_PORT=17007 ECHO_PORT=17008 USP_PORT=17300 SSH_PORT=17222 FWD_PORT=17301

start_sink() {  # start_sink ADDR PORT MODE [netns]
    ${4:+ip netns exec $4} python3 "$HELP/sink.py" --listen "$1:$2" --mode "$3" >"$WORK/sink-$2.log" 2>&1 &
    PIDS+=($!)
    wait_port "$1" "$2" "${4:-}"
}

DATA="$WORK/usp-data"
"$USPD" init --data-dir "$DATA" >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log"; exit 1; }
cat >"$DATA/uspd.toml" <<EOF
max_connections = 16384
max_unauthenticated = 8192
handshake_rate = 1000000
handshake_burst = 1000000
max_connections_per_source = 0
max_streams_per_minute = 0
max_streams_per_identity = 0
log_level = "warning"
EOF
app() {  # app NAME LAUNCH-LINE [TOP-LEVEL-LINE]
    cat >"$DATA/apps.d/$1.toml" <<EOF
name = "$1"
visibility = "public"
${3:-}
[launch]
$2
[limits]
max_sessions = 20000
token_lifetime = 60
EOF
}
app sink "tcp = \"127.0.0.1:$SINK_PORT\""
app echotcp "tcp = \"127.0.0.1:$ECHO_PORT\""
UDP_ECHO_PORT=17009 UDP_FWD_PORT=17302
app udpecho "udp = \"127.0.0.1:$UDP_ECHO_PORT\""
app shapedsink "tcp = \"127.0.0.1:$SINK_PORT\"" 'shape = "interactive"'
app shapedecho "tcp = \"127.0.0.1:$ECHO_PORT\"" 'shape = "interactive"'
SERVER_KEY=$("$USPD" uri --data-dir "$DATA" | head -n 1 | sed -E 's|usp://([^@]+)@.*|\1|')
URI_LO="usp://$SERVER_KEY@127.0.0.1:$USP_PORT"
URI_NS="usp://$SERVER_KEY@$ADDR_S:$USP_PORT"

# A client home with an identity key registered with uspd (user "bench", noise_static login).
CH="$WORK/client"
PUB=$("$USP" keygen --home "$CH" 2>"$WORK/keygen.err" | grep -Eo '[A-Za-z0-9_-]{43}' | head -n 1)
[[ -n $PUB ]] || { echo "usp keygen gave no key:"; cat "$WORK/keygen.err"; exit 1; }
"$USPD" user add bench --key="$PUB" --data-dir "$DATA" >"$WORK/useradd.log" 2>&1 || { cat "$WORK/useradd.log"; exit 1; }

UPID=""
start_uspd() {  # start_uspd HOST [netns]: starts uspd on HOST:USP_PORT, sets UPID
    ${2:+ip netns exec $2} "$USPD" serve --data-dir "$DATA" --listen "$1:$USP_PORT" >>"$WORK/uspd.log" 2>&1 &
    UPID=$!
    PIDS+=($UPID)
    wait_port "$1" "$USP_PORT" "${2:-}"
}
stop_uspd() { kill "$UPID" 2>/dev/null; wait "$UPID" 2>/dev/null; UPID=""; }

HAVE_SSH=0
if command -v sshd >/dev/null 2>&1 || [[ -x /usr/sbin/sshd ]]; then HAVE_SSH=1; fi
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
SSH_USER=$(id -un)
if [[ $HAVE_SSH == 1 ]]; then
    mkdir -p "$WORK/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host_ed25519"
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/id_ed25519"
    cp "$WORK/ssh/id_ed25519.pub" "$WORK/ssh/authorized_keys"
    chmod 644 "$WORK/ssh/authorized_keys"
    mkdir -p /run/sshd 2>/dev/null
fi
start_sshd() {  # start_sshd ADDR NAME [netns]: an sshd with key login only; writes $WORK/ssh/NAME.config (Host bench)
    cat >"$WORK/ssh/$2.sshd_config" <<EOF
Port $SSH_PORT
ListenAddress $1
HostKey $WORK/ssh/host_ed25519
PidFile $WORK/ssh/$2.pid
AuthorizedKeysFile $WORK/ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
UseDNS no
AllowTcpForwarding yes
PermitOpen any
X11Forwarding no
MaxStartups 100:30:300
LogLevel ERROR
EOF
    cat >"$WORK/ssh/$2.config" <<EOF
Host bench
  HostName $1
  Port $SSH_PORT
  User $SSH_USER
  IdentityFile $WORK/ssh/id_ed25519
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  ControlMaster no
  ControlPath none
  Compression no
  RequestTTY no
  LogLevel ERROR
EOF
    ${3:+ip netns exec $3} "$SSHD" -f "$WORK/ssh/$2.sshd_config" -E "$WORK/ssh/$2.log"
    SSHD_PIDFILES+=("$WORK/ssh/$2.pid")
    wait_port "$1" "$SSH_PORT" "${3:-}"
}

declare -A R   # results

# ---------------------------------------------------------------- 1. throughput
if want throughput; then
    echo "== 1. throughput: one stream of $MIB MiB to a discarding sink, $RUNS runs each, interleaved"
    start_sink 127.0.0.1 $SINK_PORT discard
    start_uspd 127.0.0.1
    SSH_CMD=()
    if [[ $HAVE_SSH == 1 ]]; then
        start_sshd 127.0.0.1 lo
        SSH_CMD=(ssh -F "$WORK/ssh/lo.config" -c chacha20-poly1305@openssh.com -W "127.0.0.1:$SINK_PORT" bench)
    fi
    "$USP" forward --home "$CH" --listen "127.0.0.1:$FWD_PORT" "$URI_LO" sink >"$WORK/forward.log" 2>&1 &
    PIDS+=($!); FWD_PID=$!
    wait_port 127.0.0.1 $FWD_PORT
    declare -a T_RAW=() T_CONN=() T_FWD=() T_SSH=() C_USPD=() C_SSHD=()
    for i in $(seq "$RUNS"); do
        v=$(python3 "$HELP/client.py" throughput --mib "$MIB" --connect "127.0.0.1:$SINK_PORT") && T_RAW+=("$v")
        u0=$(ticks "$UPID")
        v=$(python3 "$HELP/client.py" throughput --mib "$MIB" -- "$USP" connect --home "$CH" "$URI_LO" sink) && T_CONN+=("$v")
        u1=$(ticks "$UPID")
        C_USPD+=("$(python3 -c "print(f'{($u1 - $u0) / $HZ / ($MIB / 1024):.3f}')")")
        v=$(python3 "$HELP/client.py" throughput --mib "$MIB" --connect "127.0.0.1:$FWD_PORT") && T_FWD+=("$v")
        if [[ ${#SSH_CMD[@]} -gt 0 ]]; then
            s0=$(allticks "$(cat "$WORK/ssh/lo.pid")")
            v=$(python3 "$HELP/client.py" throughput --mib "$MIB" -- "${SSH_CMD[@]}") && T_SSH+=("$v")
            sleep 0.2   # the session's process exits and is reaped, so its CPU is counted
            s1=$(allticks "$(cat "$WORK/ssh/lo.pid")")
            C_SSHD+=("$(python3 -c "print(f'{($s1 - $s0) / $HZ / ($MIB / 1024):.3f}')")")
        fi
        echo "   run $i: raw ${T_RAW[-1]:-?}  usp-connect ${T_CONN[-1]:-?}  usp-forward ${T_FWD[-1]:-?}  ssh-W ${T_SSH[-1]:-?}  MB/s"
    done
    R[raw]=$(median "${T_RAW[@]}"); R[conn]=$(median "${T_CONN[@]}"); R[fwd]=$(median "${T_FWD[@]}"); R[ssh]=$(median "${T_SSH[@]}")
    echo "   medians: raw ${R[raw]}  usp connect ${R[conn]}  usp forward ${R[fwd]}  ssh -W ${R[ssh]}  MB/s"
    R[cpu_gib]=$(median "${C_USPD[@]}"); R[cpu_gib_sshd]=$(median "${C_SSHD[@]}")
    echo "   server CPU per GiB relayed to the sink: uspd ${R[cpu_gib]} s (runs: ${C_USPD[*]}), sshd ${R[cpu_gib_sshd]} s (runs: ${C_SSHD[*]:-})"
    kill "$FWD_PID" 2>/dev/null
    stop_uspd
    [[ $HAVE_SSH == 1 ]] && kill "$(cat "$WORK/ssh/lo.pid")" 2>/dev/null
fi

# ---------------------------------------------------------------- 5. what shaping costs
if want shaping; then
    echo "== 5. shape = \"interactive\": bytes on the wire, seen by a proxy on the path"
    start_sink 127.0.0.1 $SINK_PORT discard
    start_sink 127.0.0.1 $ECHO_PORT echo
    start_uspd 127.0.0.1
    PROXY_PORT=17310
    python3 "$ROOT/Tests/USPIntegrationTests/Python/capture_proxy.py" $PROXY_PORT $USP_PORT "$WORK/capture.json" >"$WORK/proxy.log" 2>&1 &
    PIDS+=($!); PROXY_PID=$!
    wait_port 127.0.0.1 $PROXY_PORT
    URI_PROXY="usp://$SERVER_KEY@127.0.0.1:$PROXY_PORT"
    # An idle shaped session for 5 s (stdin open, nothing typed), then one with 256 KiB of bulk.
    sleep 5 | "$USP" connect --home "$CH" "$URI_PROXY" shapedecho >/dev/null 2>"$WORK/shaped-idle.err"
    t0=$(date +%s.%N)
    head -c 262144 /dev/zero | "$USP" connect --home "$CH" "$URI_PROXY" shapedsink >/dev/null 2>"$WORK/shaped-bulk.err"
    t1=$(date +%s.%N)
    kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null
    for f in shaped-idle shaped-bulk; do [[ -s $WORK/$f.err ]] && sed "s/^/   $f: /" "$WORK/$f.err"; done
    read -r R[shape_idle_up] R[shape_idle_down] R[shape_bulk_mbs] < <(python3 - "$WORK/capture.json" "$t0" "$t1" <<'PY'
import json, sys
# (wait_port's probe is a connection too, with no bytes: left out)
caps = [c for c in json.load(open(sys.argv[1])) if c["up"] and c["down"]]
idle = caps[0]
def rate(reads, a, b):
    return sum(n for t, n in reads if a <= t <= b) / (b - a)
start = min(idle["up"][0][0], idle["down"][0][0])
# the steady part of the idle session: from 1 s to 4 s after its first byte
print(f'{rate(idle["up"], start + 1, start + 4):.0f} {rate(idle["down"], start + 1, start + 4):.0f} '
      f'{262144 / (float(sys.argv[3]) - float(sys.argv[2])) / 1e6:.4f}')
PY
)
    echo "   idle shaped session: ${R[shape_idle_up]} bytes/s up, ${R[shape_idle_down]} bytes/s down (27300 expected: 546 bytes every 20 ms)"
    echo "   bulk through a shaped application: ${R[shape_bulk_mbs]} MB/s (payload cap 0.0256 MB/s)"
    stop_uspd
fi

# ---------------------------------------------------------------- 6. UDP through uspd
if want udp; then
    echo "== 6. UDP: 100-byte datagrams to an echo service, direct and through usp forward --udp"
    python3 "$ROOT/Tests/USPIntegrationTests/Python/udp_echo.py" $UDP_ECHO_PORT >"$WORK/udpecho.log" 2>&1 &
    PIDS+=($!)
    start_uspd 127.0.0.1
    "$USP" forward --udp --home "$CH" --listen "127.0.0.1:$UDP_FWD_PORT" "$URI_LO" udpecho >"$WORK/udpforward.log" 2>&1 &
    PIDS+=($!); UFWD_PID=$!
    sleep 1
    declare -a U_DRTT=() U_FRTT=() U_DRATE=() U_FRATE=() U_FLOST=()
    for i in $(seq "$RUNS"); do
        d=$(python3 "$HELP/udp_client.py" "127.0.0.1:$UDP_ECHO_PORT" --rtt 500 --rate 20000 --window 32)
        f=$(python3 "$HELP/udp_client.py" "127.0.0.1:$UDP_FWD_PORT" --rtt 500 --rate 20000 --window 32)
        U_DRTT+=("$(echo "$d" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rtt_median_us"])')")
        U_FRTT+=("$(echo "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rtt_median_us"])')")
        U_DRATE+=("$(echo "$d" | python3 -c 'import json,sys; print(json.load(sys.stdin)["datagrams_per_s"])')")
        U_FRATE+=("$(echo "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["datagrams_per_s"])')")
        U_FLOST+=("$(echo "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lost"])')")
        echo "   run $i: direct $d  through usp $f"
    done
    R[udp_rtt_direct]=$(median "${U_DRTT[@]}"); R[udp_rtt_usp]=$(median "${U_FRTT[@]}")
    R[udp_rate_direct]=$(median "${U_DRATE[@]}"); R[udp_rate_usp]=$(median "${U_FRATE[@]}")
    echo "   medians: round trip direct ${R[udp_rtt_direct]} us, through usp ${R[udp_rtt_usp]} us; datagrams/s direct ${R[udp_rate_direct]}, through usp ${R[udp_rate_usp]} (lost: ${U_FLOST[*]})"
    kill "$UFWD_PID" 2>/dev/null
    stop_uspd
fi

# ---------------------------------------------------------------- 4. CPU per new session
if want cpu; then
    echo "== 4. uspd CPU per new session: $CPU_K sequential runs of each kind (clock tick $((1000 / HZ)) ms)"
    start_sink 127.0.0.1 $SINK_PORT discard 2>/dev/null || true   # already up if part 1 ran
    start_uspd 127.0.0.1
    "$USP" login --home "$CH" --key "$URI_LO" >/dev/null 2>&1   # warm-up (first login, caches)
    t0=$(ticks "$UPID"); s0=$(date +%s.%N)
    for i in $(seq "$CPU_K"); do "$USP" login --home "$CH" --key "$URI_LO" >/dev/null 2>&1 || echo "   login $i failed"; done
    t1=$(ticks "$UPID"); s1=$(date +%s.%N)
    R[cpu_login]=$(python3 -c "print(f'{($t1 - $t0) * 1000 / $HZ / $CPU_K:.3f}')")
    echo "   usp login --key (handshake, menu, key login, authorization token): ${R[cpu_login]} ms CPU each; wall $(python3 -c "print(f'{($s1 - $s0) * 1000 / $CPU_K:.1f}')") ms each"
    t0=$(ticks "$UPID"); s0=$(date +%s.%N)
    for i in $(seq "$CPU_K"); do
        python3 "$HELP/client.py" throughput --mib 0 -- "$USP" connect --home "$CH" "$URI_LO" sink >/dev/null || echo "   connect $i failed"
    done
    t1=$(ticks "$UPID"); s1=$(date +%s.%N)
    R[cpu_conn]=$(python3 -c "print(f'{($t1 - $t0) * 1000 / $HZ / $CPU_K:.3f}')")
    echo "   usp connect sink with the saved login (one connection: begin by name, token issued, tcp app): ${R[cpu_conn]} ms CPU each; wall $(python3 -c "print(f'{($s1 - $s0) * 1000 / $CPU_K:.1f}')") ms each"
    stop_uspd
    if [[ $HAVE_SSH == 1 ]]; then
        start_sshd 127.0.0.1 cpu
        SSH_K=$(( CPU_K / 4 > 10 ? CPU_K / 4 : 10 ))
        SPID=$(cat "$WORK/ssh/cpu.pid")
        python3 "$HELP/client.py" throughput --mib 0 -- ssh -F "$WORK/ssh/cpu.config" -W "127.0.0.1:$SINK_PORT" bench >/dev/null   # warm-up
        sleep 0.2
        t0=$(allticks "$SPID")
        for i in $(seq "$SSH_K"); do
            python3 "$HELP/client.py" throughput --mib 0 -- ssh -F "$WORK/ssh/cpu.config" -W "127.0.0.1:$SINK_PORT" bench >/dev/null || echo "   ssh $i failed"
        done
        sleep 0.3
        t1=$(allticks "$SPID")
        R[cpu_sshd]=$(python3 -c "print(f'{($t1 - $t0) * 1000 / $HZ / $SSH_K:.3f}')")
        echo "   ssh -W to the sink with a key (sshd and its session processes): ${R[cpu_sshd]} ms CPU each over $SSH_K connections"
        kill "$SPID" 2>/dev/null
    fi
fi

# ---------------------------------------------------------------- 7. the client's own CPU
if want client; then
    CK=$(( CPU_K / 2 > 20 ? CPU_K / 2 : 20 ))
    echo "== 7. client CPU: $CK connections each (connect, one byte echoed, close), and $MIB MiB sent, $RUNS runs each"
    start_sink 127.0.0.1 $SINK_PORT discard 2>/dev/null || true
    start_sink 127.0.0.1 $ECHO_PORT echo 2>/dev/null || true
    start_uspd 127.0.0.1
    "$USP" login --home "$CH" --key "$URI_LO" >/dev/null 2>&1
    declare -A CCMD=() BCMD=()
    CCMD[usp]="$USP connect --no-agent --home $CH $URI_LO echotcp"
    BCMD[usp]="$USP connect --no-agent --home $CH $URI_LO sink"
    if [[ -n $USP_STATIC ]]; then
        CCMD[usp_static]="$USP_STATIC connect --no-agent --home $CH $URI_LO echotcp"
        BCMD[usp_static]="$USP_STATIC connect --no-agent --home $CH $URI_LO sink"
    fi
    if [[ $HAVE_SSH == 1 ]]; then
        start_sshd 127.0.0.1 client
        CCMD[ssh]="ssh -F $WORK/ssh/client.config -c chacha20-poly1305@openssh.com -W 127.0.0.1:$ECHO_PORT bench"
        BCMD[ssh]="ssh -F $WORK/ssh/client.config -c chacha20-poly1305@openssh.com -W 127.0.0.1:$SINK_PORT bench"
    fi
    if command -v socat >/dev/null 2>&1; then
        CCMD[socat]="socat - TCP:127.0.0.1:$ECHO_PORT"
        BCMD[socat]="socat - TCP:127.0.0.1:$SINK_PORT"
    fi
    for k in usp usp_static ssh socat; do
        [[ -n ${CCMD[$k]:-} ]] || continue
        # shellcheck disable=SC2086
        read -r cpu wall < <(python3 "$HELP/clientcpu.py" connect --count "$CK" -- ${CCMD[$k]}) || { echo "   $k: failed"; continue; }
        declare -a BC=()
        for i in $(seq "$RUNS"); do
            # shellcheck disable=SC2086
            read -r mbps secs < <(python3 "$HELP/client.py" throughput --child-cpu --mib "$MIB" -- ${BCMD[$k]}) || continue
            BC+=("$(python3 -c "print(f'{$secs / ($MIB / 1024):.3f}')")")
        done
        R[client_cpu_$k]=$cpu; R[client_gib_$k]=$(median "${BC[@]}")
        printf "   %-10s  per connection: %6s ms CPU (wall %6s ms)   bulk: %s s CPU per GiB (runs: %s)\n" "$k" "$cpu" "$wall" "${R[client_gib_$k]}" "${BC[*]}"
    done
    stop_uspd
    [[ $HAVE_SSH == 1 ]] && kill "$(cat "$WORK/ssh/client.pid")" 2>/dev/null
fi

# ---------------------------------------------------------------- 3. memory per idle session
if want memory; then
    echo "== 3. uspd memory per idle session at $SESSIONS sessions (usp forward: one dedicated USP connection per local connection, app = tcp echo)"
    start_sink 127.0.0.1 $ECHO_PORT echo
    start_uspd 127.0.0.1
    "$USP" forward --home "$CH" --listen "127.0.0.1:$FWD_PORT" "$URI_LO" echotcp >"$WORK/forward-mem.log" 2>&1 &
    PIDS+=($!); FWD_PID=$!
    wait_port 127.0.0.1 $FWD_PORT
    # warm-up: a few sessions through the same path, then the baseline
    python3 "$HELP/client.py" hold --connect "127.0.0.1:$FWD_PORT" --count 20 < <(sleep 1) >/dev/null
    sleep 1
    # VmRSS, and the private pages (Private_Clean + Private_Dirty: not shared with the usp client,
    # which maps the same Swift libraries, so unlike PSS it does not move when other processes come and go)
    mem() { echo "$(awk '/^VmRSS/ {print $2}' /proc/$UPID/status) $(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' /proc/$UPID/smaps_rollup)"; }
    read -r RSS0 PSS0 <<<"$(mem)"
    mkfifo "$WORK/hold.in"
    python3 "$HELP/client.py" hold --connect "127.0.0.1:$FWD_PORT" --count "$SESSIONS" <"$WORK/hold.in" >"$WORK/hold.out" 2>&1 &
    HOLD_PID=$!; PIDS+=($HOLD_PID)
    exec 9>"$WORK/hold.in"
    for i in $(seq 1200); do grep -q HELD "$WORK/hold.out" && break; kill -0 $HOLD_PID 2>/dev/null || break; sleep 0.25; done
    if grep -q HELD "$WORK/hold.out"; then
        sleep 2
        read -r RSS1 PSS1 <<<"$(mem)"
        CONNS=$(ls /proc/$UPID/fd | wc -l)
        R[mem_rss]=$(( (RSS1 - RSS0) * 1024 / SESSIONS ))
        R[mem_pss]=$(( (PSS1 - PSS0) * 1024 / SESSIONS ))
        echo "   uspd VmRSS $RSS0 -> $RSS1 KiB, private $PSS0 -> $PSS1 KiB, $CONNS fds open"
        echo "   per session: RSS $(( R[mem_rss] / 1024 )) KiB ($(( R[mem_rss] )) bytes), private $(( R[mem_pss] / 1024 )) KiB"
    else
        echo "   the sessions did not all come up: $(tail -n 3 "$WORK/hold.out") / $(tail -n 3 "$WORK/forward-mem.log")"
    fi
    exec 9>&-
    wait $HOLD_PID 2>/dev/null
    kill "$FWD_PID" 2>/dev/null
    stop_uspd
fi

# ---------------------------------------------------------------- 2. first echoed byte at 50 ms RTT
if want rtt; then
    if [[ $(id -u) != 0 || ! -c /dev/net/tun ]]; then
        echo "== 2. skipped: needs root and /dev/net/tun for the namespaces"
    else
        RTT=$((2 * ONE_WAY_MS))
        echo "== 2. first echoed byte at $RTT ms RTT ($NS_C $ADDR_C <-> $NS_S $ADDR_S, delaylink.py), $RTT_RUNS runs each"
        ip netns add $NS_C && ip netns add $NS_S || exit 1
        ip -n $NS_C link set lo up; ip -n $NS_S link set lo up
        TRACE="$WORK/link.trace"
        python3 "$HELP/delaylink.py" $NS_C uspdbench-t0 $NS_S uspdbench-t1 --delay-ms $ONE_WAY_MS --trace "$TRACE" >"$WORK/link.log" 2>&1 &
        PIDS+=($!)
        for i in $(seq 50); do grep -q READY "$WORK/link.log" && break; sleep 0.1; done
        ip -n $NS_C addr add $ADDR_C peer $ADDR_S dev uspdbench-t0
        ip -n $NS_S addr add $ADDR_S peer $ADDR_C dev uspdbench-t1
        ip -n $NS_C link set uspdbench-t0 up; ip -n $NS_S link set uspdbench-t1 up
        start_sink $ADDR_S $ECHO_PORT echo $NS_S
        start_sink 127.0.0.1 $ECHO_PORT echo $NS_S
        start_uspd $ADDR_S $NS_S
        [[ $HAVE_SSH == 1 ]] && start_sshd $ADDR_S ns $NS_S
        RH="$WORK/client-rtt"      # identity key, server key pinned by the URI, no saved login
        "$USP" keygen --home "$RH" >/dev/null 2>&1
        INC=(ip netns exec $NS_C)
        declare -a F_TCP=() F_USP=() F_DED=() F_SSH=() F_STA=() F_SOC=() F_FIRST=() F_FIRST_WIRE=() F_FIRST_STA=()
        URI_NS_NOKEY="usp://$ADDR_S:$USP_PORT"   # first contact: XX, the key trusted on first use
        for i in $(seq "$RTT_RUNS"); do
            v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte --connect "$ADDR_S:$ECHO_PORT") && F_TCP+=("$v")
            before=$(wc -l <"$TRACE")
            v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$USP" connect --home "$RH" "$URI_NS" echo) && F_USP+=("$v")
            sleep 0.3
            tail -n +"$((before + 1))" "$TRACE" >"$WORK/run.trace"
            python3 "$HELP/split_trace.py" "$WORK/run.trace" $ONE_WAY_MS >"$WORK/run.split"
            [[ $i == 1 ]] && sed 's/^/   trace: /' "$WORK/run.split"
            # The connection that carried the echo: the last one (usp connect now begins by name
            # on a single connection; with --field it would be a menu connection, then this one).
            ded=$(awk '$1 == "conn" { v = $6 } END { print v }' "$WORK/run.split")
            [[ -n $ded && $ded != - ]] && F_DED+=("$ded")
            if [[ $HAVE_SSH == 1 ]]; then
                v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- ssh -F "$WORK/ssh/ns.config" -W "127.0.0.1:$ECHO_PORT" bench) && F_SSH+=("$v")
            fi
            if [[ -n $USP_STATIC ]]; then
                v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$USP_STATIC" connect --home "$RH" "$URI_NS" echo) && F_STA+=("$v")
            fi
            if command -v socat >/dev/null 2>&1; then
                v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- socat - "TCP:$ADDR_S:$ECHO_PORT") && F_SOC+=("$v")
            fi
            FH="$WORK/client-first-$i"   # a new home each run: no known_servers, so first contact
            "$USP" keygen --home "$FH" >/dev/null 2>&1
            before=$(wc -l <"$TRACE")
            v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$USP" connect --home "$FH" "$URI_NS_NOKEY" echo 2>/dev/null) && F_FIRST+=("$v")
            sleep 0.3
            # On the wire: from the SYN to the server's second data packet, the reply that carries
            # the echo (XX: message 2 comes first), on the run's one connection.
            tail -n +"$((before + 1))" "$TRACE" >"$WORK/run.trace"
            wire=$(python3 "$HELP/split_trace.py" "$WORK/run.trace" $ONE_WAY_MS | awk '$1 == "conn" && $9 == "in" && NF >= 11 { v = $11 } END { split(v, a, ":"); print a[1] }')
            [[ -n $wire ]] && F_FIRST_WIRE+=("$wire")
            if [[ -n $USP_STATIC ]]; then
                FHS="$WORK/client-first-static-$i"
                "$USP" keygen --home "$FHS" >/dev/null 2>&1
                v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$USP_STATIC" connect --home "$FHS" "$URI_NS_NOKEY" echo 2>/dev/null) && F_FIRST_STA+=("$v")
            fi
            echo "   run $i: tcp ${F_TCP[-1]:-?}  usp ${F_USP[-1]:-?} (dedicated connection ${F_DED[-1]:-?})  usp first contact ${F_FIRST[-1]:-?} (on the wire ${F_FIRST_WIRE[-1]:-?}; static ${F_FIRST_STA[-1]:--})  usp static ${F_STA[-1]:--}  socat ${F_SOC[-1]:--}  ssh-W ${F_SSH[-1]:-?}  ms"
        done
        R[rtt_tcp]=$(median "${F_TCP[@]}"); R[rtt_usp]=$(median "${F_USP[@]}"); R[rtt_ded]=$(median "${F_DED[@]}"); R[rtt_ssh]=$(median "${F_SSH[@]}")
        rt() { python3 -c "import sys; print('-' if sys.argv[1] == '-' else f'{float(sys.argv[1]) / $RTT:.2f}')" "$1"; }
        R[rtt_tcp_n]=$(rt "${R[rtt_tcp]}"); R[rtt_usp_n]=$(rt "${R[rtt_usp]}"); R[rtt_ded_n]=$(rt "${R[rtt_ded]}"); R[rtt_ssh_n]=$(rt "${R[rtt_ssh]}")
        R[rtt_sta]=$(median "${F_STA[@]}"); R[rtt_soc]=$(median "${F_SOC[@]}"); R[rtt_sta_n]=$(rt "${R[rtt_sta]}"); R[rtt_soc_n]=$(rt "${R[rtt_soc]}")
        R[rtt_first]=$(median "${F_FIRST[@]}"); R[rtt_first_n]=$(rt "${R[rtt_first]}")
        R[rtt_first_wire]=$(median "${F_FIRST_WIRE[@]}"); R[rtt_first_wire_n]=$(rt "${R[rtt_first_wire]}")
        R[rtt_first_sta]=$(median "${F_FIRST_STA[@]}"); R[rtt_first_sta_n]=$(rt "${R[rtt_first_sta]}")
        echo "   medians: usp with the static stdlib ${R[rtt_sta]} ms (${R[rtt_sta_n]} RTT)  socat ${R[rtt_soc]} ms (${R[rtt_soc_n]} RTT)  usp first contact ${R[rtt_first]} ms (${R[rtt_first_n]} RTT; on the wire ${R[rtt_first_wire_n]} RTT; static ${R[rtt_first_sta_n]} RTT)"
        echo "   medians: tcp ${R[rtt_tcp]} ms (${R[rtt_tcp_n]} RTT)  usp ${R[rtt_usp]} ms (${R[rtt_usp_n]} RTT; dedicated connection ${R[rtt_ded]} ms = ${R[rtt_ded_n]} RTT)  ssh -W ${R[rtt_ssh]} ms (${R[rtt_ssh_n]} RTT)"
        stop_uspd
        # TCP Fast Open, opt-in on both sides: the kernel's server and client bits in each
        # namespace, uspd's tcp_fast_open, the client's FastOpen yes. One connection first, for
        # the cookie (the kernel keeps it per server address, whatever the client's home).
        UC=${USP_STATIC:-$USP}
        ip netns exec $NS_S sysctl -qw net.ipv4.tcp_fastopen=3; ip netns exec $NS_C sysctl -qw net.ipv4.tcp_fastopen=3
        echo "tcp_fast_open = true" >>"$DATA/uspd.toml"
        start_uspd $ADDR_S $NS_S
        echo x | "${INC[@]}" "$UC" connect --home "$RH" -o FastOpen=yes "$URI_NS" echo >/dev/null 2>&1
        declare -a F_TFO=() F_TFO_FIRST=()
        for i in $(seq "$RTT_RUNS"); do
            v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$UC" connect --home "$RH" -o FastOpen=yes "$URI_NS" echo) && F_TFO+=("$v")
            FT="$WORK/client-first-tfo-$i"
            "$USP" keygen --home "$FT" >/dev/null 2>&1
            v=$("${INC[@]}" python3 "$HELP/client.py" firstbyte -- "$UC" connect --home "$FT" -o FastOpen=yes "$URI_NS_NOKEY" echo 2>/dev/null) && F_TFO_FIRST+=("$v")
            echo "   Fast Open run $i ($(basename "$(dirname "$(dirname "$UC")")")): known key ${F_TFO[-1]:-?}  first contact ${F_TFO_FIRST[-1]:-?}  ms"
        done
        R[rtt_tfo]=$(median "${F_TFO[@]}"); R[rtt_tfo_n]=$(rt "${R[rtt_tfo]}")
        R[rtt_tfo_first]=$(median "${F_TFO_FIRST[@]}"); R[rtt_tfo_first_n]=$(rt "${R[rtt_tfo_first]}")
        echo "   medians with Fast Open: known key ${R[rtt_tfo]} ms (${R[rtt_tfo_n]} RTT)  first contact ${R[rtt_tfo_first]} ms (${R[rtt_tfo_first_n]} RTT)"
        stop_uspd
        sed -i '/^tcp_fast_open/d' "$DATA/uspd.toml"
    fi
fi

# ---------------------------------------------------------------- table
verdict() { python3 -c "import sys; v=sys.argv[1]; print('n/a' if v in ('', '-') else ('PASS' if eval(v + sys.argv[2]) else 'FAIL'))" "$1" "$2"; }
ratio() { python3 -c "import sys; a,b=sys.argv[1],sys.argv[2]; print('-' if '-' in (a,b) or '' in (a,b) else f'{float(a)/float(b):.2f}')" "$1" "$2"; }
echo
echo "| target | figure (median) | goal | result |"
echo "|---|---|---|---|"
if want throughput; then
    rc=$(ratio "${R[conn]:-}" "${R[ssh]:-}"); rf=$(ratio "${R[fwd]:-}" "${R[ssh]:-}")
    echo "| 1. throughput, usp connect vs ssh -W chacha20 | ${R[conn]:-?} vs ${R[ssh]:-?} MB/s = ${rc}x (${R[conn]:+$(ratio "${R[conn]}" "${R[raw]}")}x raw ${R[raw]:-?}) | >= 1.5x (aim 2x) | $(verdict "$rc" '>=1.5') |"
    echo "| 1. server CPU per GiB relayed to a tcp app | uspd ${R[cpu_gib]:-?} s, sshd ${R[cpu_gib_sshd]:-?} s | <= 0.8 s | $(verdict "${R[cpu_gib]:-}" '<=0.8') |"
    echo "| 1. throughput, usp forward vs ssh -W chacha20 | ${R[fwd]:-?} vs ${R[ssh]:-?} MB/s = ${rf}x (${R[fwd]:+$(ratio "${R[fwd]}" "${R[raw]}")}x raw) | >= 1.5x (aim 2x) | $(verdict "$rf" '>=1.5') |"
fi
if want rtt; then
    echo "| 2. first echoed byte, usp connect at first contact (XX, key trusted on first use) | ${R[rtt_first_n]:-?} RTT (${R[rtt_first]:-?} ms); static stdlib ${R[rtt_first_sta_n]:--} RTT; on the wire ${R[rtt_first_wire_n]:-?} RTT | <= 3 RTT | $(verdict "${R[rtt_first_n]:-}" '<=3') |"
    echo "| 2. the same with TCP Fast Open (opt-in: tcp_fast_open, FastOpen yes), known key / first contact | ${R[rtt_tfo_n]:-?} / ${R[rtt_tfo_first_n]:-?} RTT (${R[rtt_tfo]:-?} / ${R[rtt_tfo_first]:-?} ms) | <= 2.2 / <= 3 RTT | $(verdict "${R[rtt_tfo_n]:-}" '<=2.2') / $(verdict "${R[rtt_tfo_first_n]:-}" '<=3') |"
    echo "| 2. first echoed byte, usp connect (known key) | ${R[rtt_usp_n]:-?} RTT (${R[rtt_usp]:-?} ms); static stdlib ${R[rtt_sta_n]:--} RTT; on the wire ${R[rtt_ded_n]:-?} RTT; tcp ${R[rtt_tcp_n]:-?}, socat ${R[rtt_soc_n]:--}, ssh -W ${R[rtt_ssh_n]:-?} RTT | <= 2.2 RTT | $(verdict "${R[rtt_sta_n]:-${R[rtt_usp_n]:-}}" '<=2.2') |"
fi
if want memory; then
    mk=$([[ -n ${R[mem_rss]:-} ]] && python3 -c "print(f'{${R[mem_rss]}/1024:.1f}')" || echo -)
    pk=$([[ -n ${R[mem_pss]:-} ]] && python3 -c "print(f'{${R[mem_pss]}/1024:.1f}')" || echo -)
    echo "| 3. uspd memory per idle session at $SESSIONS | RSS $mk KiB, private $pk KiB | <= 32 KiB | $(verdict "$mk" '<=32') |"
fi
if want udp; then
    echo "| 6. UDP round trip, direct vs through usp | ${R[udp_rtt_direct]:-?} vs ${R[udp_rtt_usp]:-?} us | - | - |"
    echo "| 6. UDP datagrams/s (window 32), direct vs through usp | ${R[udp_rate_direct]:-?} vs ${R[udp_rate_usp]:-?} | - | - |"
fi
if want shaping; then
    echo "| 5. idle shaped session on the wire (interactive) | ${R[shape_idle_up]:-?} B/s up, ${R[shape_idle_down]:-?} B/s down | = 27300 (546 B / 20 ms) | - |"
    echo "| 5. bulk through a shaped application | ${R[shape_bulk_mbs]:-?} MB/s | <= 0.0256 (the cap) | - |"
fi
if want client; then
    echo "| 7. client CPU per connection, usp connect | ${R[client_cpu_usp]:-?} ms; static stdlib ${R[client_cpu_usp_static]:--} ms; ssh -W ${R[client_cpu_ssh]:-?} ms; socat ${R[client_cpu_socat]:-?} ms | <= 6 ms | $(verdict "${R[client_cpu_usp_static]:-${R[client_cpu_usp]:-}}" '<=6') |"
    echo "| 7. client CPU per GiB sent, usp connect | ${R[client_gib_usp]:-?} s; static stdlib ${R[client_gib_usp_static]:--} s; ssh -W ${R[client_gib_ssh]:-?} s; socat ${R[client_gib_socat]:-?} s | <= 1.0 s | $(verdict "${R[client_gib_usp]:-}" '<=1.0') |"
fi
if want cpu; then
    echo "| 4. uspd CPU per new session (login --key) | ${R[cpu_login]:-?} ms | <= 1 ms | $(verdict "${R[cpu_login]:-}" '<=1') |"
    echo "| 4. uspd CPU per usp connect (begin by name + tcp app) | ${R[cpu_conn]:-?} ms; sshd per ssh -W ${R[cpu_sshd]:-?} ms | <= 1.5 ms (aim 0.5) | $(verdict "${R[cpu_conn]:-}" '<=1.5') |"
fi
exit 0
