#!/usr/bin/env bash
# Profiles deliver under the benchmark's deliver workload with perf:
# builds deliver with symbols and frame pointers into target/bench-prof
# (a separate target dir: a full release build, ~10 min on 2 CPUs), runs
# `alin-bench --only deliver` under `perf record -g` against it, and prints
# where deliver's CPU went (tools/bench/profile/perf_summary.py).
# Needs the release alin-bench and bare-client (scripts/bench.sh builds them).
set -euo pipefail
cd "$(dirname "$0")/../../.."
CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  RUSTFLAGS="-C force-frame-pointers=yes" \
  cargo build --release --locked -p deliver --target-dir target/bench-prof
cp target/release/bare-client target/release/hello-lambda target/bench-prof/release/
DEVSTACK_BIN_DIR="$PWD/target/bench-prof/release" \
  perf record -F 999 -g -o target/bench-prof/perf.data -- \
  target/release/alin-bench --only deliver "$@" >target/bench-prof/run.log 2>&1 || true
perf script -i target/bench-prof/perf.data -F comm,pid,tid,ip,sym,dso --no-inline 2>/dev/null \
  | python3 tools/bench/profile/perf_summary.py deliver 25
