'use strict';
/*
 * recovery-report.js RESULTS.jsonl [DOC.md]: the table of the recovery family of run.sh
 * (connection state recovery off and on, docs/recovery.md): for "one room" and "1,000 rooms",
 * the server's and Redis's CPU per delivery, latency p50/p99, whether every delivery arrived, and
 * the history stream's size at the end. Prints it, and with DOC rewrites the section
 * "## Latest recovery run" of docs/performance.md (placed before "## Latest paced run" or
 * "## Latest run", whichever comes first).
 */
const fs = require('fs');

const [, , resFile, docFile] = process.argv;
const lines = fs.readFileSync(resFile, 'utf8').split('\n').filter(Boolean).map((l) => {
  try { return JSON.parse(l); } catch (e) { return {}; }
});
const machine = (lines.find((l) => l.machine) || {}).machine || {};
const S = { off: {}, on: {} };
for (const l of lines) {
  const m = /^recovery_(one|rooms|params|unavailable)@(off|on)$/.exec(l.scenario || '');
  if (m) S[m[2]][m[1]] = l;
}
const sum = (a) => (a || []).reduce((x, y) => x + y, 0);
const fmt = (v, d = 2) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
const per = (cpu, r) => (r && r.loadgen && r.loadgen.deliveries ? (cpu / r.loadgen.deliveries) * 1e6 : undefined);
const serverUs = (r) => (r ? per(sum(r.server_cpu1) - sum(r.server_cpu0), r) : undefined);
const redisUs = (r) => (r ? per(r.redis_cpu, r) : undefined);
const lat = (r, k) => (r && r.loadgen && r.loadgen.latency_us ? r.loadgen.latency_us[k] / 1000 : undefined);
const check = (r) => {
  if (!r || !r.loadgen || r.loadgen.deliveries === undefined) return 'did not run';
  return r.loadgen.deliveries === r.expected ? 'all' : `${r.loadgen.deliveries} of ${r.expected}`;
};
const p = S.off.params || S.on.params || {};
const perRoom = p.conns && p.rooms ? p.conns / p.rooms : '?';

const out = [];
out.push('## Latest recovery run');
out.push('');
out.push(`Written by \`make bench\` (recovery family; \`BENCH_FAMILIES=recovery make bench\` runs it alone) on ${machine.date || '?'}: ` +
  `${machine.nproc || '?'} cores (${machine.cpu || '?'}), load average at start ${machine.load_start || '?'} ` +
  '(a machine shared with other jobs: CPU per delivery is the steadier figure). One roomcast node on Redis, ' +
  `${p.conns || '?'} connections; "one room": ${p.one_rate || '?'} messages/s to a room of all of them; "1,000 rooms": ` +
  `${p.rooms_rate || '?'} messages/s round robin over ${p.rooms || '?'} rooms of ${perRoom}; ${p.secs || '?'} s each; every ` +
  'message through `POST /api/publish`, with connection state recovery off, then on (`docs/recovery.md`). CPU per ' +
  'delivery: the process\'s user + system time over the phase divided by the deliveries the load generator counted.');
out.push('');
const hdr = ['scenario', 'recovery', 'roomcast CPU µs/delivery', 'Redis CPU µs/delivery', 'p50 ms', 'p99 ms', 'delivered',
  'history at the end'];
out.push('| ' + hdr.join(' | ') + ' |');
out.push('|' + hdr.map((h, i) => (i < 2 ? '---' : '---:')).join('|') + '|');
for (const [ph, label] of [['one', 'one room'], ['rooms', '1,000 rooms']]) {
  for (const st of ['off', 'on']) {
    const r = S[st][ph];
    const pr = S[st].params || {};
    const hist = ph === 'rooms' && pr.history_entries !== undefined
      ? `${pr.history_entries} entries, ${(pr.history_bytes / 1048576).toFixed(1)} MiB` : '';
    if (S[st].unavailable) { out.push(`| ${label} | ${st} | unavailable |` + ' |'.repeat(hdr.length - 3)); continue; }
    out.push('| ' + [label, st, fmt(serverUs(r)), fmt(redisUs(r)), fmt(lat(r, 'p50')), fmt(lat(r, 'p99')), check(r), hist]
      .join(' | ') + ' |');
  }
}
out.push('');
out.push('"history at the end": the namespace\'s stream after both phases (both phases\' kept events; the window is 120 s).');
out.push('');
const section = out.join('\n') + '\n';
process.stdout.write('\n' + section);

if (docFile) {
  let doc = '';
  try { doc = fs.readFileSync(docFile, 'utf8'); } catch (e) { doc = '# Performance\n\n'; }
  const start = doc.indexOf('## Latest recovery run');
  if (start >= 0) {
    const next = doc.indexOf('\n## ', start + 1);
    doc = doc.slice(0, start) + section + (next >= 0 ? doc.slice(next + 1) : '');
  } else {
    const cands = ['## Latest paced run', '## Latest run'].map((h) => doc.indexOf(h)).filter((i) => i >= 0);
    const at = cands.length ? Math.min(...cands) : -1;
    doc = at >= 0 ? doc.slice(0, at) + section + '\n' + doc.slice(at) : doc.replace(/\n*$/, '\n\n') + section;
  }
  fs.writeFileSync(docFile, doc);
  process.stderr.write(`[bench] wrote ${docFile} (recovery)\n`);
}
