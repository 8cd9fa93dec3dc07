#!/usr/bin/env bash
# Installs everything the tests and the local stack need, idempotently:
# a project-local venv (.venv) with the pinned Python tools, and the Debian
# packages (a real registry, skopeo, qemu-user for the arm64 bootstraps).
#
# The Debian packages are installed with apt-get, through sudo when not run as
# root. Where that is impossible (no apt-get, no sudo), it says exactly what to
# install and carries on: the venv is still made, and only the tests that need
# a missing package (the real-registry push, the arm64 bootstrap check) fail.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v python3 >/dev/null; then
  echo "tools.sh: python3 (3.11 or newer, with the venv module) is required" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] || ! cmp -s scripts/requirements.txt .venv/.requirements; then
  if ! python3 -m venv .venv; then
    echo "tools.sh: 'python3 -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
    exit 1
  fi
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r scripts/requirements.txt
  cp scripts/requirements.txt .venv/.requirements
fi

# Debian package -> why it is needed.
declare -A why=(
  [docker-registry]="a real CNCF Distribution registry for the end-to-end push test"
  [skopeo]="pushes a real image into that registry"
  [qemu-user]="runs the arm64 bootstraps on this machine (qemu-aarch64)"
  [libc6-arm64-cross]="the arm64 C library qemu-aarch64 needs"
  [zip]="packages the bootstraps as Lambda zips"
)
need=()
command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ -d /usr/aarch64-linux-gnu/lib ] || need+=(libc6-arm64-cross)
command -v zip >/dev/null || need+=(zip)

explain_missing() {
  echo "tools.sh: $1; please install these packages yourself:" >&2
  for p in "${need[@]}"; do
    echo "  - $p: ${why[$p]}" >&2
  done
  echo "  (Debian/Ubuntu: sudo apt-get install --no-install-recommends ${need[*]};" >&2
  echo "   elsewhere: your system's docker-registry/distribution, skopeo, qemu-user-static (aarch64)," >&2
  echo "   an aarch64 glibc sysroot in /usr/aarch64-linux-gnu, zip)" >&2
  echo "tools.sh: continuing without them: the tests that use them will fail." >&2
}

if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    explain_missing "no apt-get on this system"
  else
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null; then
        sudo=(sudo)
        echo "tools.sh: installing ${need[*]} with sudo apt-get (you may be asked for your password)" >&2
      fi
    fi
    if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
      explain_missing "not root and no sudo"
    elif ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
      ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
      explain_missing "apt-get failed"
    fi
  fi
fi
echo "tools ready: $root/.venv"
