#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of every parser the
# functions expose to outside input. Builds the fuzz crate (fuzz/, its own
# workspace, with sanitizers), runs each target for SECONDS (default 600)
# and prints a summary: executions, corpus size, crashes.
#
#   bash scripts/fuzz.sh [seconds-per-target]
#   FUZZ_TARGETS="ingest_http settings_request" bash scripts/fuzz.sh 60
#
# Targets (fuzz/fuzz_targets/):
#   delivery_job      DeliveryJob::parse on arbitrary text (round-trips)
#   webhook_url       the URL rule on arbitrary text (stable once accepted)
#   ingest_http       ingest handler behind the Function URL: never 5xx for bad input
#   ingest_sqs        ingest handler behind SQS: exactly the malformed records fail
#   deliver_batch     deliver handler on arbitrary SQS batches (memory adapters, no network)
#   settings_request  settings handler on arbitrary requests: never 5xx, no private target stored
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain it runs
# with RUSTC_BOOTSTRAP=1 (sanitizer flags are nightly-only). The first build
# compiles the shared crate and the AWS SDK with sanitizers (~15 minutes);
# later ones are incremental. New corpus entries go to fuzz/corpus/<target>,
# crashes to fuzz/artifacts/<target>; the hand-written seeds are fuzz/seeds/<target>,
# the libFuzzer dictionaries fuzz/dicts/*.dict (FUZZ_NO_DICT=1 runs without).
# libFuzzer stops a target at its first crash; FUZZ_KEEP_GOING=1 runs it in
# fork mode (-fork=1 -ignore_crashes=1) so it keeps fuzzing for the whole time
# and saves every crash. Builds use -O -a: optimised, with debug assertions
# and overflow checks on (as in the debug binaries the tests run; a silent
# wrap in release is still a bug). Exits non-zero when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
targets=${FUZZ_TARGETS:-"delivery_job webhook_url ingest_http ingest_sqs deliver_batch settings_request"}
export RUSTC_BOOTSTRAP=1
logs=target/fuzz-logs
mkdir -p "$logs"

echo "== building fuzz targets"
cargo fuzz build -O -a

summary=()
crashed=0
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  before=$(ls "artifacts/$t" | wc -l)
  echo "== $t for ${secs}s"
  set +e
  extra=()
  if [ "${FUZZ_KEEP_GOING:-0}" = 1 ]; then extra=(-fork=1 -ignore_crashes=1); fi
  case "$t" in
    ingest_*) dict=dicts/ingest.dict ;;
    deliver_batch | delivery_job) dict=dicts/deliver.dict ;;
    settings_request | webhook_url) dict=dicts/settings.dict ;;
    *) dict= ;;
  esac
  if [ -n "$dict" ] && [ "${FUZZ_NO_DICT:-0}" != 1 ]; then extra+=(-dict="$dict"); fi
  cargo fuzz run -O -a "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 "${extra[@]}" >"$logs/$t.log" 2>&1
  rc=$?
  set -e
  # Plain mode ends with "stat::number_of_executed_units: N"; fork mode
  # prints "#N: cov: …" progress lines (and a 0 stat line of its own).
  stat_runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' | sort -n | tail -1 || true)
  prog_runs=$(grep -oE '^#[0-9]+' "$logs/$t.log" | tr -d '#' | sort -n | tail -1 || true)
  runs=$(( ${stat_runs:-0} > ${prog_runs:-0} ? ${stat_runs:-0} : ${prog_runs:-0} ))
  corpus=$(ls "corpus/$t" | wc -l)
  crashes=$(( $(ls "artifacts/$t" | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    crashed=1
    tail -40 "$logs/$t.log"
  fi
  summary+=("$(printf '%-18s %12s runs  %6s corpus  %3s new crash(es)  exit %s' "$t" "${runs:-?}" "$corpus" "$crashes" "$rc")")
done

echo
echo "== fuzz summary (${secs}s per target; logs in fuzz/$logs)"
printf '%s\n' "${summary[@]}"
exit "$crashed"
