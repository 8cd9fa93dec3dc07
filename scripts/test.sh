#!/usr/bin/env bash
# The project's whole test run, from a fresh clone: installs the tools
# (project-local venv, Debian packages), then formatting, lints, template
# validation, every test (unit, moto-backed integration, binaries through the
# Lambda runtime API, the real-registry end-to-end), and a small benchmark run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" "$(( $(date +%s) - start ))"; }

# Clippy lints inside the one debug build instead of a second, check-only
# pass over the whole dependency tree: every workspace crate is compiled by
# clippy-driver (what `cargo clippy` runs) with `-D warnings`, the bins and
# libraries here and every test target in the tests step, so a lint fails
# the run as `cargo clippy --workspace --all-targets -- -D warnings` would
# (CLIPPY_ARGS is how cargo-clippy hands its arguments to the driver).
# Every cargo call below, the nested ones the tests make included, shares
# this environment, so none of them rebuilds what another built.
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
export CLIPPY_ARGS='-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__'

# The debug build needs nothing the tools step installs, so it runs beside
# it (pip and apt mostly wait on the network and the disk).
mkdir -p target
debug_log="$root/target/debug-build.log"
cargo build --workspace --bins --locked >"$debug_log" 2>&1 &
debug_pid=$!
trap 'kill "$debug_pid" 2>/dev/null || true' EXIT

step "tools (the debug build runs beside them)"
bash scripts/tools.sh
export PATH="$root/.venv/bin:$PATH"

step "arm64 bootstraps (cargo lambda build --release --arm64) and sam build, in the background"
# The deployable artifacts, built the way users build them: cargo-lambda
# cross-compiles with zig; then `sam build` (rust-cargolambda, in source)
# must succeed too. The arm64 test at the end runs them under qemu-user.
# Its release build is the heaviest compile here and ends in long
# single-threaded LTO links, so nothing waits for it until the very end: it
# runs beside the debug build and the tests (which mostly wait on timers
# and sockets).
arm64_log="$root/target/arm64-build.log"
(
  unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS # linted by the debug build already
  time (cargo-lambda lambda build --release --arm64 --locked --bin ingest --bin deliver --bin settings &&
    SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 sam build)
) >"$arm64_log" 2>&1 &
arm64_pid=$!
trap 'kill "$debug_pid" "$arm64_pid" 2>/dev/null || true' EXIT

step "fmt"
cargo fmt --all -- --check

step "template"
bash scripts/validate_template.sh

step "waiting for the debug build (and clippy on the libraries and bins)"
if ! wait "$debug_pid"; then
  cat "$debug_log"
  echo "cargo build --workspace --bins failed, or clippy found something (log above)" >&2
  exit 1
fi
tail -n 1 "$debug_log"

step "tests (all but the arm64 bootstraps; clippy on every test target as they build)"
# The integration tests are one binary (tests/it): one moto server for the
# run (devstack::moto), every test under its own resource prefix. Most of
# their time is spent waiting (retry delays, batching windows, visibility
# timeouts), so four run at once on two cores.
RUST_TEST_THREADS=4 cargo test --workspace --locked --no-fail-fast -- --skip arm64_bootstraps

if [ -f scripts/bench.sh ]; then
  step "benchmark (small)"
  bash scripts/bench.sh --small
fi

step "waiting for the arm64 bootstraps and sam build"
if ! wait "$arm64_pid"; then
  cat "$arm64_log"
  echo "arm64 build or sam build failed (log above)" >&2
  exit 1
fi
trap - EXIT
tail -n 6 "$arm64_log"

step "arm64 bootstraps under qemu-user"
ALIN_REQUIRE_ARM64=1 cargo test --workspace --locked -- arm64_bootstraps

step "done"
