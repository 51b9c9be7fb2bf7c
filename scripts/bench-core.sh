#!/usr/bin/env bash
# USPCore performance report: builds usp-bench in release, measures OpenSSL's
# ChaCha20-Poly1305 speed with `openssl speed` in the same run (a reference; USP's cipher is BoringSSL's), runs usp-bench with the malloc
# interposer preloaded, and prints each figure against its target with PASS/FAIL.
#
#   bash scripts/bench-core.sh            # full run (7 runs per figure, about 25 seconds)
#   bash scripts/bench-core.sh --quick    # short run
#
# It is a report: it exits 0 whether targets pass or fail (non-zero only if it cannot build or run).
# See docs/BENCHMARKS.md.
set -uo pipefail
cd "$(dirname "$0")/.."

QUICK=()
OPENSSL_SECONDS=3
if [[ "${1:-}" == "--quick" ]]; then QUICK=(--quick); OPENSSL_SECONDS=1; fi

echo "== building usp-bench (release)"
swift build -c release --product usp-bench >/tmp/usp-bench-build.$$.log 2>&1 || {
    cat /tmp/usp-bench-build.$$.log; rm -f /tmp/usp-bench-build.$$.log; echo "build failed"; exit 1; }
rm -f /tmp/usp-bench-build.$$.log
BIN_DIR=$(swift build -c release --show-bin-path)
BENCH="$BIN_DIR/usp-bench"
INTERPOSER=$(find "$BIN_DIR" .build/release -maxdepth 1 -name 'libMallocInterposerSwift.so' 2>/dev/null | head -n 1)
if [[ -z "$INTERPOSER" ]]; then
    INTERPOSER=$(find .build -path '*release*' -name 'libMallocInterposerSwift.so' 2>/dev/null | head -n 1)
fi
[[ -x "$BENCH" ]] || { echo "usp-bench not found at $BENCH"; exit 1; }
[[ -n "$INTERPOSER" ]] || echo "warning: libMallocInterposerSwift.so not found; mallocs will not be counted"
INTERPOSER=${INTERPOSER:+$(realpath "$INTERPOSER")}

# `openssl speed -evp chacha20-poly1305 -bytes 16384` ends with
#   The 'numbers' are in 1000s of bytes per second processed.
#   type          16384 bytes
#   ChaCha20-Poly1305  4712349.70k
# The value is in 1000s of bytes per second: divide by 1000 for MB/s (10^6 bytes).
openssl_mbps() {
    openssl speed -evp chacha20-poly1305 -bytes 16384 -seconds "$OPENSSL_SECONDS" 2>/dev/null | awk '
        /^type/ { for (i = 2; i <= NF; i++) if ($i == "16384") col = i }
        tolower($1) ~ /^chacha20-poly1305$/ && col { v = $col; sub(/k$/, "", v); printf "%.1f\n", v / 1000 }'
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "== $(openssl version)"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "== openssl speed -evp chacha20-poly1305 -bytes 16384 -seconds $OPENSSL_SECONDS (before)"
OSSL1=$(openssl_mbps)
echo "   ${OSSL1:-?} MB/s"

echo "== usp-bench ${QUICK[*]:-} (LD_PRELOAD=${INTERPOSER:-none})"
OUT=$(mktemp)
if [[ -n "$INTERPOSER" ]]; then
    LD_PRELOAD="$INTERPOSER" "$BENCH" "${QUICK[@]}" | tee "$OUT"
else
    "$BENCH" "${QUICK[@]}" | tee "$OUT"
fi
STATUS=${PIPESTATUS[0]}
[[ $STATUS -eq 0 ]] || { echo "usp-bench failed ($STATUS)"; rm -f "$OUT"; exit 1; }

echo "== openssl speed (after)"
OSSL2=$(openssl_mbps)
echo "   ${OSSL2:-?} MB/s"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"

RESULT=$(grep '^RESULT ' "$OUT" | tail -n 1 | sed 's/^RESULT //')
rm -f "$OUT"
[[ -n "$RESULT" ]] || { echo "no RESULT line from usp-bench"; exit 1; }

# The comparison uses the higher of the two openssl figures (the stricter one). Verdicts use the
# wall-clock figures; the per-CPU-second ratio (how openssl speed itself counts) is shown beside them.
awk -v result="$RESULT" -v o1="${OSSL1:-NA}" -v o2="${OSSL2:-NA}" '
function num(x) { return (x != "" && x != "NA" && x ~ /^-?[0-9.]+$/) }
function verdict(ok) { return ok ? "PASS" : "FAIL" }
BEGIN {
    n = split(result, kv, " ")
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
    ossl = (num(o1) && num(o2)) ? (o1 + 0 > o2 + 0 ? o1 : o2) : (num(o1) ? o1 : o2)

    print ""
    print "=============================================================================================="
    print " USPCore performance targets"
    print "=============================================================================================="
    printf " 1. Record throughput, 16 KiB plaintext, vs openssl speed (target ratio >= 0.70)\n"
    printf "    %-44s %9s %7s  %-8s %s\n", "", "MB/s", "ratio", "verdict", "per CPU-s: MB/s, ratio"
    printf "    %-44s %9s %7s  (openssl runs before/after: %s, %s; the higher is used)\n", "openssl speed -evp chacha20-poly1305", (num(ossl) ? ossl : "n/a"), "1.000", o1, o2
    t1 = 1
    split("seal16k_MBps|seal in place (target)|1;open16k_MBps|open in place (target)|1;stream_seal16k_MBps|session: seal(_:appendingTo:)|1;stream_read16k_MBps|session: RecordReader append + nextRecord|1;aead16k_MBps|one AEAD call, no record layer (info)|0;session16k_MBps|ServerSession.receive + actions + consumed (info)|0", rows, ";")
    for (i = 1; i <= 6; i++) {
        split(rows[i], q, "|"); key = q[1]; label = q[2]; judged = q[3] + 0
        v = r[key]; c = r[key "_cpu"]
        if (num(v) && num(ossl) && ossl > 0) {
            ratio = v / ossl; ok = ratio >= 0.70
            if (i <= 2 && !ok) t1 = 0
            cr = num(c) ? sprintf("%.0f, %.3f", c, c / ossl) : "n/a"
            printf "    %-44s %9.1f %7.3f  %-8s %s\n", label, v, ratio, (judged ? verdict(ok) : "-"), cr
        } else {
            if (i <= 2) t1 = 0
            printf "    %-44s %9s %7s  %s\n", label, "n/a", "n/a", (judged ? "FAIL (not measured)" : "-")
        }
    }
    printf "    => target 1 (seal and open in place): %s\n\n", verdict(t1)

    printf " 2. Heap allocations per record in steady state (target 0)\n"
    t2 = 1
    split("mallocs_per_record_seal|seal in place;mallocs_per_record_open|open in place;mallocs_per_record_stream|seal(_:appendingTo:) + RecordReader;mallocs_per_record_session|ServerSession.receive + actions + consumed", rows, ";")
    for (i = 1; i <= 4; i++) {
        split(rows[i], q, "|"); v = r[q[1]]
        if (num(v)) { ok = (v + 0 == 0); if (!ok) t2 = 0; printf "    %-44s %9s  %s\n", q[2], v, (ok ? "PASS" : "FAIL (allocates)") }
        else { t2 = 0; printf "    %-44s %9s  %s\n", q[2], "n/a", "FAIL (not measured: interposer not loaded)" }
    }
    printf "    => target 2: %s\n\n", verdict(t2)

    printf " 3. Handshake pair time / raw X25519 it needs (target <= 1.5)\n"
    printf "    raw X25519: keygen %s us (PrivateKey()), %s us (from bytes); DH %s us\n", r["x25519_keygen_us"], r["x25519_keygen_from_bytes_us"], r["x25519_dh_us"]
    printf "    %-8s %9s %7s  %-8s %-22s %s\n", "pattern", "pair us", "ratio", "verdict", "ratio per CPU-s", "ratio vs X25519 work performed"
    t3 = 1
    split("xx,ik,nk", pats, ",")
    for (i = 1; i <= 3; i++) {
        k = pats[i]; v = r["hs_" k "_ratio"]
        if (num(v)) { ok = v + 0 <= 1.5; if (!ok) t3 = 0 } else { ok = 0; t3 = 0 }
        printf "    %-8s %9s %7s  %-8s %-22s %s\n", toupper(k), r["hs_" k "_us"], v, verdict(ok), r["hs_" k "_ratio_cpu"], r["hs_" k "_ratio_performed"]
    }
    printf "    (XX: the server computes DH(s, re) for its IK/NK trials and again for XX es: 7 DH where 6 are needed)\n"
    printf "    => target 3: %s\n\n", verdict(t3)
    printf " CPU share of wall time in measured sections: median %s, min %s%s\n", r["cpu_share_median"], r["cpu_share_min"], \
        (num(r["cpu_share_min"]) && r["cpu_share_min"] + 0 < 0.95 ? "  -- OTHER LOAD: wall-clock figures disturbed, rerun on a quiet machine" : "")
    printf " SUMMARY: target 1 %s, target 2 %s, target 3 %s\n", verdict(t1), verdict(t2), verdict(t3)
    if (!(t1 && t2 && t3)) print " (FAIL is a measured result, not a script error; see docs/BENCHMARKS.md)"
}'
exit 0
