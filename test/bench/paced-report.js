'use strict';
/*
 * paced-report.js RESULTS.jsonl [DOC.md]: the table of the paced family of run.sh (messages one
 * at a time: each socket has one frame to write per message) for every variant that ran
 * (roomcast per send path, Node, the machine limit with epoll and with io_uring): server CPU per
 * delivery, its ratio to Node's, latency p50/p99/max, and whether every delivery arrived.
 * Prints it, and with DOC rewrites the section "## Latest paced run" of docs/performance.md
 * (placed before "## Latest run", which report.js rewrites to the end of the file).
 */
const fs = require('fs');

const [, , resFile, docFile] = process.argv;
const lines = fs.readFileSync(resFile, 'utf8').split('\n').filter(Boolean).map((l) => {
  try { return JSON.parse(l); } catch (e) { return {}; }
});
const machine = (lines.find((l) => l.machine) || {}).machine || {};
const V = new Map(); // "target:path" -> {one, rooms, params}
for (const l of lines) {
  const m = /^paced_(one|rooms|params|unavailable)@(.+)$/.exec(l.scenario || '');
  if (!m) continue;
  const key = l.target === m[2] ? l.target : `${l.target}:${m[2]}`;
  if (!V.has(key)) V.set(key, {});
  V.get(key)[m[1]] = l;
}
const sum = (a) => (a || []).reduce((x, y) => x + y, 0);
const fmt = (v, d = 2) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
// CPU per delivery in µs: the limit's own getrusage when it reported one (µs resolution), else
// the server's /proc ticks over the phase
function cpuUs(r) {
  if (!r || !r.loadgen || !r.loadgen.deliveries) return undefined;
  if (r.limit && r.limit.cpu_s !== undefined && r.limit.deliveries)
    return (r.limit.cpu_s / r.limit.deliveries) * 1e6;
  return ((sum(r.server_cpu1) - sum(r.server_cpu0)) / r.loadgen.deliveries) * 1e6;
}
const lat = (r, k) => (r && r.loadgen && r.loadgen.latency_us ? r.loadgen.latency_us[k] / 1000 : undefined);
const check = (r) => {
  if (!r || !r.loadgen || r.loadgen.deliveries === undefined) return 'did not run';
  return r.loadgen.deliveries === r.expected ? 'all' : `${r.loadgen.deliveries} of ${r.expected}`;
};
const p = [...V.values()].map((v) => v.params).find(Boolean) || {};
const perRoom = p.conns && p.rooms ? p.conns / p.rooms : '?';
const nodeCpu = (phase) => V.has('node') ? cpuUs(V.get('node')[phase]) : undefined;

const out = [];
out.push('## Latest paced run');
out.push('');
out.push(`Written by \`make bench\` (paced family; \`BENCH_FAMILIES=paced make bench\` runs it alone) on ${machine.date || '?'}: ` +
  `${machine.nproc || '?'} cores (${machine.cpu || '?'}), kernel ${machine.kernel || '?'}, load average at start ${machine.load_start || '?'}` +
  ` (a machine shared with other jobs: CPU per delivery is the steadier figure, latencies move more). ` +
  `${p.conns || '?'} connections; "one room": ${p.one_rate || '?'} messages/s to a room of all of them ` +
  `(${p.one_rate && p.conns ? (p.one_rate * p.conns).toLocaleString('en-US') : '?'} deliveries/s); "rooms": ${p.rooms_rate || '?'} messages/s ` +
  `round robin over ${p.rooms || '?'} rooms of ${perRoom}; ${p.secs || '?'} s each. Every message reaches each socket alone, so every ` +
  'delivery is a send of its own. CPU per delivery: the server process\'s user + system time over the phase (`/proc/<pid>/stat`; ' +
  'the limit\'s own getrusage) divided by the deliveries counted by the load generator.');
out.push('');
const hdr = ['variant', 'one room: CPU µs/delivery', '× node', 'p50 ms', 'p99 ms', 'max ms', 'delivered',
  'rooms: CPU µs/delivery', '× node', 'p50 ms', 'p99 ms', 'max ms', 'delivered'];
out.push('| ' + hdr.join(' | ') + ' |');
out.push('|' + hdr.map((h, i) => (i === 0 ? '---' : '---:')).join('|') + '|');
for (const [key, v] of V) {
  if (v.unavailable) {
    out.push(`| ${key} | unavailable |` + ' |'.repeat(hdr.length - 2));
    continue;
  }
  const row = [key];
  for (const ph of ['one', 'rooms']) {
    const r = v[ph], c = cpuUs(r), n = nodeCpu(ph);
    row.push(fmt(c), c !== undefined && n ? fmt(c / n) : '-', fmt(lat(r, 'p50')), fmt(lat(r, 'p99')), fmt(lat(r, 'max')), check(r));
  }
  out.push('| ' + row.join(' | ') + ' |');
}
out.push('');
const section = out.join('\n') + '\n';
process.stdout.write('\n' + section);

if (docFile) {
  let doc = '';
  try { doc = fs.readFileSync(docFile, 'utf8'); } catch (e) { doc = '# Performance\n\n'; }
  const start = doc.indexOf('## Latest paced run');
  const burst = doc.indexOf('## Latest run');
  if (start >= 0) {
    const next = doc.indexOf('\n## ', start + 1);
    doc = doc.slice(0, start) + section + (next >= 0 ? doc.slice(next + 1) : '');
  } else if (burst >= 0) {
    doc = doc.slice(0, burst) + section + '\n' + doc.slice(burst);
  } else {
    doc = doc.replace(/\n*$/, '\n\n') + section;
  }
  fs.writeFileSync(docFile, doc);
  process.stderr.write(`[bench] wrote ${docFile} (paced)\n`);
}
