#!/usr/bin/env bash
# The benchmark (tools/bench, `alin-bench`; what it measures: BENCHMARKS.md).
# A full run builds the release binaries and the arm64 zips (cargo-lambda),
# then writes tools/bench/results/results.json, the generated tables of
# BENCHMARKS.md and the charts.
#   --small   CI-sized, debug binaries, outputs in target/bench/small/; the
#             arm64 zips are reported if found, not built; exits non-zero if
#             a measurement breaks (never because a target is missed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
small=0
for arg in "$@"; do
  case "$arg" in
    --small) small=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/moto_server ] || bash scripts/tools.sh
if [ "$small" = 1 ]; then
  profile=debug
  # The whole workspace, as scripts/test.sh builds it just before: built
  # per package, features unify differently and ~60 crates compile again.
  cargo build --workspace --bins --locked
  export BENCH_COMMAND="bash scripts/bench.sh --small"
else
  profile=release
  cargo build --release --locked -p ingest -p deliver -p settings -p alin-bench
  # Built before anything is measured, so it does not compete for the CPU.
  echo "== cargo lambda build --release --arm64 --output-format zip" >&2
  if cargo-lambda lambda build --release --arm64 --locked --output-format zip \
      --bin ingest --bin deliver --bin settings >target/bench-cargo-lambda.log 2>&1; then
    export BENCH_ZIP_STATUS="built by this run (cargo lambda build --release --arm64 --output-format zip)"
  else
    echo "warning: cargo lambda build failed (target/bench-cargo-lambda.log)" >&2
  fi
  export BENCH_COMMAND="bash scripts/bench.sh"
fi
DEVSTACK_BIN_DIR="$PWD/target/$profile" exec "target/$profile/alin-bench" "$@"
