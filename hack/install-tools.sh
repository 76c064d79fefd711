#!/usr/bin/env bash
# Installs the non-Python tools the tests drive for real: Prometheus/promtool, the Pushgateway, shellcheck, wrk, hey and jq (Debian),
# azurite (npm), checkov (its own venv: it pins boto3 and clobbers python-hcl2). Idempotent; fast when done.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v hey >/dev/null 2>&1 || need_apt+=(hey)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v prometheus-pushgateway >/dev/null 2>&1 || need_apt+=(prometheus-pushgateway)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # --no-install-recommends: Prometheus' recommends pull ~377 MB we do not use.
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x "$tools/node_modules/.bin/azurite-blob" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund --prefix "$tools" azurite@3.35.0)
fi

if [ ! -x "$tools/checkov/bin/checkov" ]; then
  python3.11 -m venv "$tools/checkov"
  "$tools/checkov/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
fi
echo "tools ready in $tools"
