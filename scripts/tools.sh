#!/usr/bin/env bash
# Installs everything the tests and the local stack need, idempotently:
# a project-local venv (.venv) with the pinned Python tools, and the Debian
# packages (a real registry, skopeo, qemu-user for the arm64 bootstraps).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements.txt .venv/.requirements; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r scripts/requirements.txt
  cp scripts/requirements.txt .venv/.requirements
fi

need=()
command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -d /usr/aarch64-linux-gnu/lib ] || need+=(libc6-arm64-cross)
command -v zip >/dev/null || need+=(zip)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "tools ready: $root/.venv"
