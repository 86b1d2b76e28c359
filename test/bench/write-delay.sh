#!/usr/bin/env bash
# write-delay.sh: write coalescing (a namespace's writeDelay, src/server_delay.c) measured as CPU
# saved against latency added (docs/performance.md "Write coalescing").
#
# The paced family of run.sh (one roomcast variant, BENCH_PACED, default roomcast:io_uring) in a
# shape where a socket does get several messages within a few milliseconds: WD_CONNS connections
# (200), "one room": WD_ONE_RATE messages/s (1,000) to a room of all of them, "rooms":
# WD_ROOMS_RATE messages/s (20,000) round robin over WD_ROOMS rooms (20 rooms of 10), WD_SECS s
# (6) each; both phases give each socket a message every millisecond (200,000 deliveries/s).
# (WD_CONNS=1000 WD_ROOMS=100 WD_ONE_RATE=200: a message every 5 ms, the same rate.) Run once per
# delay of WD_DELAYS (ms, default "0 1 5"), each with a config whose "/" namespace is the default
# one plus "writeDelay". Prints a markdown table: server CPU per delivery, latency p50/p99/max,
# deliveries. Wrap it in `flock /work/bench.lock` on a shared machine.
#
# Usage: test/bench/write-delay.sh <builddir>   (after make all and make -C test/bench O=<builddir>/bench)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 <builddir>" >&2; exit 2; }
B=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/roomcast-wdelay.XXXXXX)
trap 'rm -rf "$T"' EXIT
: > "$T/all.jsonl"
for d in ${WD_DELAYS:-0 1 5}; do
  cat > "$T/config-$d.json" <<JSON
{"namespaces": {"/": {"auth": "required", "writeDelay": $d, "events": {
  "join":  {"do": [{"join": "{data.room|data}"}, {"ack": {"ok": true, "room": "{room}"}}],
            "onError": [{"ack": {"ok": false, "error": "{error}"}}]},
  "leave": {"do": [{"leave": "{data.room|data}"}, {"ack": {"ok": true, "room": "{room}"}}],
            "onError": [{"ack": {"ok": false, "error": "{error}"}}]}}}}}
JSON
  BENCH_FAMILIES=paced BENCH_PACED=${BENCH_PACED:-roomcast:io_uring} BENCH_DOC= BENCH_KEEP=1 \
    BENCH_ROOMCAST_CONFIG="$T/config-$d.json" P_CONNS=${WD_CONNS:-200} P_ROOMS=${WD_ROOMS:-20} \
    P_ONE_RATE=${WD_ONE_RATE:-1000} P_ROOMS_RATE=${WD_ROOMS_RATE:-20000} P_SECS=${WD_SECS:-6} \
    "$HERE/run.sh" "$B" 2> "$T/run-$d.log" || { cat "$T/run-$d.log" >&2; exit 1; }
  w=$(sed -n 's/.*work directory kept: //p' "$T/run-$d.log" | tail -1)
  sed "s/^{/{\"write_delay\":$d,/" "$w/results.jsonl" >> "$T/all.jsonl"
  rm -rf "$w"
done
node - "$T/all.jsonl" <<'JS'
const rows = require('fs').readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const sum = (a) => (a || []).reduce((x, y) => x + y, 0);
const f = (x) => (x === undefined ? '-' : x.toFixed(2));
console.log('| writeDelay | phase | CPU µs/delivery | p50 ms | p99 ms | max ms | delivered |');
console.log('|---:|---|---:|---:|---:|---:|---|');
for (const r of rows) {
  if (!/^paced_(one|rooms)@/.test(r.scenario || '') || !r.loadgen) continue;
  const lg = r.loadgen, l = lg.latency_us || {};
  const cpu = lg.deliveries ? ((sum(r.server_cpu1) - sum(r.server_cpu0)) / lg.deliveries) * 1e6 : undefined;
  console.log(`| ${r.write_delay} | ${r.scenario} | ${f(cpu)} | ${f(l.p50 / 1000)} | ${f(l.p99 / 1000)} | ${f(l.max / 1000)} | ` +
    `${lg.deliveries === r.expected ? 'all' : `${lg.deliveries} of ${r.expected}`} |`);
}
JS
