#!/usr/bin/env bash
# `make run`: starts one node for trying roomcast out. Without ROOMCAST_JWT_SECRET it makes a
# random development secret (and an API key for POST /api/publish), prints them, a ready token,
# and how to connect a client and publish to a room. It turns the development page on
# (ROOMCAST_DEV_PAGE=1, src/node_devpage.c: http://localhost:3000/dev/), with the socket.io-client
# bundle of test/e2e/node_modules when `make test` has installed it (else the page loads it from a
# CDN). Extra arguments go to roomcast.
set -euo pipefail
bin=${1:?usage: dev-run.sh path/to/roomcast [args]}
shift
export ROOMCAST_PORT=${ROOMCAST_PORT:-3000}
root=$(cd "$(dirname "$0")/.." && pwd)
export ROOMCAST_DEV_PAGE=${ROOMCAST_DEV_PAGE:-1}
bundle=$root/test/e2e/node_modules/socket.io-client/dist/socket.io.min.js
if [ "$ROOMCAST_DEV_PAGE" != 0 ] && [ -z "${ROOMCAST_DEV_CLIENT_BUNDLE:-}" ] && [ -r "$bundle" ]; then
  export ROOMCAST_DEV_CLIENT_BUNDLE=$bundle
fi
if [ -z "${ROOMCAST_JWT_SECRET:-}" ] && [ -z "${ROOMCAST_JWT_PUBLIC_KEY_FILE:-}" ]; then
  ROOMCAST_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export ROOMCAST_JWT_SECRET
  echo "development JWT secret (HS256): $ROOMCAST_JWT_SECRET"
fi
if [ -z "${ROOMCAST_API_KEY:-}" ]; then
  ROOMCAST_API_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export ROOMCAST_API_KEY
  echo "development API key: $ROOMCAST_API_KEY"
fi
token=$("$bin" token --sub alice --claim 'rooms=["project_*"]' --ttl 86400 "$@" || true)
port=$ROOMCAST_PORT
prev=
for a in "$@"; do
  [ "$prev" = --port ] && port=$a
  prev=$a
done
cat <<MSG

token for user "alice" (may join rooms matching project_*):
  $token
MSG
if [ "$ROOMCAST_DEV_PAGE" != 0 ]; then
  cat <<MSG

in a browser (the development page: connect with that token, join a room, publish, watch events):
  http://localhost:$port/dev/#token=$token&key=$ROOMCAST_API_KEY&room=project_p1
MSG
fi
cat <<MSG

connect a client (Node, socket.io-client 4.x):
  const s = require("socket.io-client").io("http://localhost:$port", {auth: {token: "$token"}});
  s.on("connect", () => s.emit("join", {room: "project_p1"}, (r) => console.log("joined", r)));
  s.onAny((ev, ...args) => console.log(ev, args));

publish to that room:
  curl -s -X POST http://localhost:$port/api/publish -H "Authorization: Bearer $ROOMCAST_API_KEY" \\
       -H 'Content-Type: application/json' \\
       -d '{"room":"project_p1","event":"task_created","data":{"title":"Live Task"}}'
  (with Redis: redis-cli PUBLISH 'roomcast:room:/:project_p1' '{"event":"task_created","data":{"title":"Live Task"}}')

from your own page on another origin (a dev server on :5173, say), allow that origin first: without it
the browser hides the node's answers to the page's long-polling requests ("xhr poll error"):
  ROOMCAST_CORS_ORIGINS=http://localhost:5173 make run     (comma list; current: ${ROOMCAST_CORS_ORIGINS:-none})
  and in the page: io("http://localhost:$port", {auth: {token}}); add withCredentials: true to send its cookies

MSG
exec "$bin" "$@"
