#!/usr/bin/env bash
# The benchmark (tools/bench, `alin-bench`): deliver's throughput against a
# bare reqwest client, its peak memory, AWS requests per event, cold starts
# against a hello-world Lambda, arm64 zip sizes, push → webhook latency, and
# cost per million pushes. Prints a summary; a full run writes every figure to
# tools/bench/results/results.json, the generated tables of BENCHMARKS.md
# (between its markers) and tools/bench/results/*.svg.
#   --small   CI-sized (about a minute and a half, debug binaries): every
#             measurement path, outputs in target/bench/small/; exits non-zero
#             if a measurement breaks (never because a target is missed).
# The full run also builds the arm64 deployment zips with cargo-lambda first
# (minutes) to report their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="$root/.venv/bin:$PATH"

small=0
for arg in "$@"; do
  case "$arg" in
    --small) small=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/moto_server ] || bash scripts/tools.sh

# --small checks that every measurement path works (CI): the debug binaries the
# tests already built serve for that, and save CI a full LTO release build.
# The full run measures release binaries, as deployed.
if [ "$small" = 1 ]; then
  profile=debug
  cargo build --locked -p ingest -p deliver -p settings -p alin-bench
else
  profile=release
  cargo build --release --locked -p ingest -p deliver -p settings -p alin-bench
fi

if [ "$small" = 0 ]; then
  # The arm64 bootstraps as deployed (cargo-lambda cross-compiles with zig);
  # built before anything is measured so it does not compete for the CPU.
  echo "== building the arm64 zips (cargo lambda build --release --arm64 --output-format zip)" >&2
  if .venv/bin/cargo-lambda lambda build --release --arm64 --locked --output-format zip \
      --bin ingest --bin deliver --bin settings >target/bench-cargo-lambda.log 2>&1; then
    export BENCH_ZIP_STATUS="built by this run"
  else
    export BENCH_ZIP_STATUS="cargo lambda build failed (see target/bench-cargo-lambda.log): $(tail -n 1 target/bench-cargo-lambda.log)"
    echo "warning: $BENCH_ZIP_STATUS" >&2
  fi
  export BENCH_COMMAND="bash scripts/bench.sh"
else
  export BENCH_ZIP_STATUS="not built by --small"
  export BENCH_COMMAND="bash scripts/bench.sh --small"
fi

DEVSTACK_BIN_DIR="$root/target/$profile" exec "target/$profile/alin-bench" "$@"
