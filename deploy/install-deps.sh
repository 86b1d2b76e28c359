#!/usr/bin/env bash
# Installs what roomcast needs on Debian 12, and nothing that is already there.
#   install-deps.sh runtime   compiler and libraries: enough for `make run`
#   install-deps.sh test      the above, plus cmocka, clang, redis-server, redis-sentinel, nginx,
#                             Debian's headless Chromium (browser tests), openssl, unzip,
#                             Node.js and the npm packages pinned in the package-lock.json of
#                             test/e2e, test/jobs and test/protocol
# Needs root for apt-get (CI and a fresh machine run as root). Idempotent: a second run is quick.
set -euo pipefail
mode=${1:-test}
root=$(cd "$(dirname "$0")/.." && pwd)

runtime_pkgs=(build-essential pkg-config git libevent-dev libhiredis-dev libwslay-dev libcjson-dev
              libjwt-dev libssl-dev libhttp-parser-dev libmsgpack-dev liburing-dev libcrypt-dev)
test_pkgs=(clang libcmocka-dev redis-server redis-sentinel nginx chromium-headless-shell nodejs openssl unzip)

want=("${runtime_pkgs[@]}")
[ "$mode" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# A machine may have Node.js from elsewhere: accept any node >= 18 with npm.
if [ "$mode" = test ] && command -v node >/dev/null && command -v npm >/dev/null; then
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -ge 18 ]; then
    missing=("${missing[@]/nodejs}")
  fi
fi
pkgs=()
for p in "${missing[@]}"; do [ -n "$p" ] && pkgs+=("$p"); done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # Debian's nodejs does not pull npm in: add it when the node came from apt.
  command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

if [ "$mode" = test ]; then
  # The distribution's redis-server starts a system instance on 6379; tests start their own on
  # free ports and never touch that one.
  for dir in test/e2e test/jobs test/protocol; do
    cd "$root/$dir"
    stamp=node_modules/.roomcast-lock
    if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
      echo "install-deps: npm ci in $dir"
      npm ci --no-audit --no-fund --loglevel=error
      cp package-lock.json "$stamp"
    fi
  done
fi
