#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ once, replays the kept regression inputs, then fuzzes each
# target for a while from its committed seed corpus. See docs/FUZZING.md.
#
#   scripts/fuzz.sh [--time SECONDS] [--runs N] [--merge] [--replay] [--seeds] [--no-build] [target...]
#
#   --time S     fuzz each target for S seconds (default 60)
#   --runs N     stop each target after N executions (whichever of --time and --runs comes first)
#   --merge      merge what the run found into Fuzz/Corpus/<target>/ (otherwise the committed seeds
#                are copied to a temporary directory and stay as they are)
#   --replay     only replay Fuzz/Regressions/<target>/ (no fuzzing)
#   --seeds      only regenerate Fuzz/Corpus/<target>/ with the targets' own seed generators
#   --no-build   use the binaries already built
#   --jobs N     fuzz N targets at a time (default 1; CI uses 2, one per core)
#   target       handshake record frame message config agent handoff snapshot (default: all)
#
# Exits non-zero if a regression input or a fuzzed input crashes a target; the crash file's path
# is printed. Environment: FUZZ_SCRATCH (build directory, default .build-fuzz),
# FUZZ_ARTIFACTS (where crash files go, default $FUZZ_SCRATCH/artifacts), FUZZ_CONFIGURATION
# (release, the default; debug is possible but slower and not what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

all_targets=(handshake record frame message config agent handoff snapshot)
time_per_target=60
runs=""
merge=0
replay_only=0
seeds_only=0
build=1
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time_per_target="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --merge) merge=1; shift ;;
    --replay) replay_only=1; shift ;;
    --seeds) seeds_only=1; shift ;;
    --no-build) build=0; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *)
      if [[ " ${all_targets[*]} " != *" $1 "* ]]; then echo "fuzz.sh: unknown target $1 (known: ${all_targets[*]})" >&2; exit 2; fi
      targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# The longest input libFuzzer makes for each target: room for what the decoder reads (a 1024-byte
# message 1 and records, a snapshot, a config file) without wasting executions on huge inputs.
max_len() {
  case "$1" in
    handshake) echo 4096 ;;
    record|message|handoff) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

scratch="${FUZZ_SCRATCH:-$root/.build-fuzz}"
configuration="${FUZZ_CONFIGURATION:-release}"
artifacts="${FUZZ_ARTIFACTS:-$scratch/artifacts}"
# Crash files are only written when Swift's own backtracer stays out of the way.
export SWIFT_BACKTRACE=enable=no

if [ "$build" = 1 ]; then
  echo "fuzz: building Fuzz/ ($configuration, --sanitize=fuzzer) in $scratch"
  start=$(date +%s)
  mkdir -p "$scratch"
  if ! swift build --package-path Fuzz --scratch-path "$scratch" --sanitize=fuzzer -c "$configuration" >"$scratch/build.log" 2>&1; then
    grep -E 'error' "$scratch/build.log" | head -20 >&2 || tail -20 "$scratch/build.log" >&2
    echo "fuzz: build failed (log $scratch/build.log)" >&2
    exit 1
  fi
  echo "fuzz: built in $(( $(date +%s) - start )) s"
fi
bin="$scratch/$configuration"
mkdir -p "$artifacts"

failed=0

if [ "$seeds_only" = 1 ]; then
  for t in "${targets[@]}"; do
    rm -rf "Fuzz/Corpus/$t"
    USP_FUZZ_WRITE_SEEDS="$root/Fuzz/Corpus/$t" "$bin/fuzz-$t" >/dev/null
    echo "fuzz-$t: $(ls "Fuzz/Corpus/$t" | wc -l) seeds, $(cat "Fuzz/Corpus/$t"/* | wc -c) bytes"
  done
  exit 0
fi

# Regression inputs: each must run through its target without a crash.
for t in "${targets[@]}"; do
  dir="Fuzz/Regressions/$t"
  [ -d "$dir" ] && [ -n "$(ls -A "$dir")" ] || continue
  log="$artifacts/replay-$t.log"
  if (cd "$artifacts" && "$bin/fuzz-$t" -timeout=10 -rss_limit_mb=4096 "$root/$dir"/*) >"$log" 2>&1; then
    echo "fuzz-$t: $(ls "$dir" | wc -l) regression input(s) replayed, crash: no"
  else
    echo "fuzz-$t: regression replay, crash: YES (log $log)"
    grep -E 'fuzz property failed|Fatal error|Assertion|ERROR: libFuzzer|Running: ' "$log" | tail -5 || true
    failed=1
  fi
done
[ "$replay_only" = 1 ] && exit "$failed"

work_root=$(mktemp -d)
trap 'rm -rf "$work_root"' EXIT
# Fuzzes target $1; prints its summary line; returns non-zero on a crash.
fuzz_one() {
  local t=$1
  local work="$work_root/$t"
  mkdir -p "$work"
  [ -d "Fuzz/Corpus/$t" ] && cp "Fuzz/Corpus/$t"/* "$work"/ 2>/dev/null || true
  log="$artifacts/fuzz-$t.log"
  args=(-max_total_time="$time_per_target" -timeout=10 -max_len="$(max_len "$t")" -rss_limit_mb=4096
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-")
  [ -n "$runs" ] && args+=(-runs="$runs")
  status=0
  "$bin/fuzz-$t" "${args[@]}" "$work" >"$log" 2>&1 || status=$?
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corpus=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  crash_file=$(sed -nE "s/.*Test unit written to (.*)$/\1/p" "$log" | tail -1)
  if [ "$status" = 0 ] && [ -z "$crash_file" ]; then
    echo "fuzz-$t: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corpus:-?}, crash: no"
  else
    echo "fuzz-$t: ${execs:-?} execs, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corpus:-?}, crash: YES ${crash_file:-(exit $status, see $log)}"
    grep -E 'fuzz property failed|Fatal error|Assertion|ERROR: libFuzzer' "$log" | head -3 || true
    return 1
  fi
  if [ "$merge" = 1 ]; then
    mkdir -p "Fuzz/Corpus/$t"
    "$bin/fuzz-$t" -merge=1 -max_len="$(max_len "$t")" -timeout=10 "Fuzz/Corpus/$t" "$work" >"$artifacts/merge-$t.log" 2>&1 || true
    echo "fuzz-$t: corpus now $(ls "Fuzz/Corpus/$t" | wc -l) files, $(cat "Fuzz/Corpus/$t"/* | wc -c) bytes"
  fi
  return 0
}

running=0
for t in "${targets[@]}"; do
  if [ "$jobs" -le 1 ]; then
    fuzz_one "$t" || failed=1
    continue
  fi
  fuzz_one "$t" >"$work_root/$t.summary" 2>&1 &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
if [ "$jobs" -gt 1 ]; then
  for t in "${targets[@]}"; do cat "$work_root/$t.summary"; done
fi
exit "$failed"
