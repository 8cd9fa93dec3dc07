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

step "fmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "template"
bash scripts/validate_template.sh

step "build binaries"
cargo build --workspace --bins --locked

step "tests"
# Each test binary starts its own moto server (devstack::moto) and every
# test works under its own resource prefix.
cargo test --workspace --locked

if [ -f scripts/bench.sh ]; then
  step "benchmark (small)"
  bash scripts/bench.sh --small
fi

step "done"
