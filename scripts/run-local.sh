#!/usr/bin/env bash
# The main job, locally, from a fresh clone: installs the tools, builds the
# three Lambda binaries, and runs `devstack up` (tools/devstack): moto + the
# stack's table and queues + the binaries through the Lambda Runtime API + the
# SQS event source mapping + a receiver; one push in, one verified webhook out.
#   --keep-running   leave the stack up for manual use (prints curl commands)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/tools.sh
cargo build --bins --locked -p ingest -p deliver -p settings -p devstack
exec target/debug/devstack up "$@"
