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

step "tools"
bash scripts/tools.sh
export PATH="$root/.venv/bin:$PATH"

step "arm64 bootstraps (cargo lambda build --release --arm64) and sam build, in the background"
# The deployable artifacts, built the way users build them: cargo-lambda
# cross-compiles with zig; then `sam build` (rust-cargolambda, in source)
# must succeed too. The arm64 test below runs them under qemu-user. Its fat
# LTO link is mostly one thread, so it runs beside clippy and the debug build
# (separate target directories, no lock between them) instead of after them.
mkdir -p target
arm64_log="$root/target/arm64-build.log"
(
  cargo-lambda lambda build --release --arm64 --locked --bin ingest --bin deliver --bin settings &&
    SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 sam build
) >"$arm64_log" 2>&1 &
arm64_pid=$!
trap 'kill "$arm64_pid" 2>/dev/null || true' EXIT

step "fmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template"
bash scripts/validate_template.sh

step "build binaries"
cargo build --workspace --bins --locked

step "waiting for the arm64 bootstraps and sam build"
if ! wait "$arm64_pid"; then
  cat "$arm64_log"
  echo "arm64 build or sam build failed (log above)" >&2
  exit 1
fi
trap - EXIT
tail -n 3 "$arm64_log"
export ALIN_REQUIRE_ARM64=1

step "tests"
# The integration tests are one binary (tests/it): one moto server for the
# run (devstack::moto), every test under its own resource prefix.
cargo test --workspace --locked --no-fail-fast

if [ -f scripts/bench.sh ]; then
  step "benchmark (small)"
  bash scripts/bench.sh --small
fi

step "done"
