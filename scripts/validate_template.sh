#!/usr/bin/env bash
# Lints template.yaml with both validators from the project venv and fails on any finding:
#   cfn-lint (errors, warnings and informational findings) and `sam validate --lint`.
# Needs no AWS credentials and no network; a dummy region is set for the SAM translator.
# Usage: scripts/validate_template.sh [template]   (default: template.yaml at the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
template=${1:-template.yaml}
venv=.venv/bin

for tool in cfn-lint sam; do
  if [ ! -x "$venv/$tool" ]; then
    echo "validate_template: $venv/$tool missing; run scripts/tools.sh first" >&2
    exit 2
  fi
done
[ -f "$template" ] || { echo "validate_template: no such template: $template" >&2; exit 2; }

status=0

echo "== cfn-lint $template"
# -c I adds informational checks (e.g. missing DeletionPolicy) to the default E/W set.
if "$venv/cfn-lint" --include-checks I -- "$template"; then
  echo "cfn-lint: clean"
else
  echo "cfn-lint: findings above" >&2
  status=1
fi

echo "== sam validate --lint $template"
# No credentials are needed: keep any real ones out of the way, and keep telemetry off.
if env -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 SAM_CLI_TELEMETRY=0 \
    "$venv/sam" validate --lint --region us-east-1 --template-file "$template"; then
  echo "sam validate: clean"
else
  echo "sam validate: findings above" >&2
  status=1
fi

exit $status
