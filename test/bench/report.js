'use strict';
/*
 * report.js RESULTS.jsonl [DOC.md]: turns the lines run.sh recorded into the comparison table
 * (figure | roomcast | node | roomcast/node), the machine limit of the fan-out (test/bench/limit:
 * the same shape against a minimal server writing pre-built frames) next to both, a CPU table per
 * phase and a delivery check, prints them, and rewrites DOC (docs/performance.md) when given.
 */
const fs = require('fs');

const [, , resFile, docFile] = process.argv;
const INTRO = '# Performance\n\nMeasured by `make bench` (test/bench/run.sh); see test/bench/ for the tools.\n';
const lines = fs.readFileSync(resFile, 'utf8').split('\n').filter(Boolean).map((l) => {
  try {
    return JSON.parse(l);
  } catch (e) {
    return { bad: l };
  }
});
const machine = (lines.find((l) => l.machine) || {}).machine || {};
const end = (lines.find((l) => l.end) || {}).end || {};
const R = { roomcast: {}, node: {}, limit: {} };
for (const l of lines) if (l.target && R[l.target]) R[l.target][l.scenario] = l;

const sum = (a) => (a || []).reduce((x, y) => x + y, 0);
const cpuDelta = (r) => (r && r.server_cpu1 ? sum(r.server_cpu1) - sum(r.server_cpu0) : undefined);
const ms = (us) => (us === undefined ? undefined : us / 1000);
const S = machine.sizes || {};
const n0 = (v) => (typeof v === 'number' ? v.toLocaleString('en-US') : '?');
const perRoom = S.idle1 && S.rooms ? S.idle1 / S.rooms : undefined;
// the xlatency rates this run used (messages/s), from the lines run.sh recorded with them
const xlRate = (target, key) => (R[target][key + '_params'] || {}).rate;
const cpuPct = (r) => (r && r.wall_s ? (cpuDelta(r) / r.wall_s) * 100 : undefined);

// Each figure: [label, better ('higher'|'lower'|''), fn(results of one target) -> number|string]
const figures = [
  ['Handshakes/s (WebSocket + JWT CONNECT)', 'higher', (t) => t.handshake && t.handshake.loadgen && t.handshake.loadgen.handshakes_per_s],
  ['Handshake latency p50 (ms)', 'lower', (t) => ms(t.handshake && t.handshake.loadgen && t.handshake.loadgen.handshake_us.p50)],
  ['Handshake latency p99 (ms)', 'lower', (t) => ms(t.handshake && t.handshake.loadgen && t.handshake.loadgen.handshake_us.p99)],
  ['Server CPU per 1,000 handshakes (ms)', 'lower', (t) => {
    const h = t.handshake;
    return h && h.loadgen && h.loadgen.connected ? (cpuDelta(h) / h.loadgen.connected) * 1e6 : undefined;
  }],
  [`Idle RSS per connection at ${machine.sizes ? machine.sizes.idle1 : ''} (KiB)`, 'lower', (t) => t.idle && (t.idle.rss1_kb - t.idle.rss0_kb) / t.idle.conns1],
  [`Idle RSS per connection at ${machine.sizes ? machine.sizes.idle2 : ''} (KiB)`, 'lower', (t) => t.idle && (t.idle.rss2_kb - t.idle.rss0_kb) / t.idle.conns2],
  [`Server RSS with ${machine.sizes ? machine.sizes.idle2 : ''} connections (MiB)`, 'lower', (t) => t.idle && t.idle.rss2_kb / 1024],
  ['Connect + join rate while filling (joined/s)', 'higher', (t) => t.idle && t.idle.connect1 && t.idle.connect1.joined_per_s],
  ...phaseFigures('fanout', 'Fan-out, one room of ' + (machine.sizes ? machine.sizes.idle1 : '')),
  ['Fan-out: deliveries/s, share of the machine limit (%)', 'higher', (t) => overLimit(t, fanRate, 100), 'fanout'],
  ['Fan-out: server CPU per delivery, multiple of the machine limit\'s', 'lower', (t) => overLimit(t, fanCpu, 1), 'fanout'],
  ...phaseFigures('rooms', `${machine.sizes ? machine.sizes.rooms : ''} rooms of ${machine.sizes ? machine.sizes.idle1 / machine.sizes.rooms : ''}`, true),
  [`Latency at ${machine.sizes ? machine.sizes.lat_rate : ''} msg/s: p50 (ms)`, 'lower', (t) => lat(t.latency, 'p50'), 'latency'],
  ['Latency at fixed rate: p90 (ms)', 'lower', (t) => lat(t.latency, 'p90'), 'latency'],
  ['Latency at fixed rate: p99 (ms)', 'lower', (t) => lat(t.latency, 'p99'), 'latency'],
  ['Latency at fixed rate: max (ms)', 'lower', (t) => lat(t.latency, 'max'), 'latency'],
  ['Latency phase: server CPU (% of one core)', 'lower', (t) => t.latency && (cpuDelta(t.latency) / t.latency.wall_s) * 100],
  [`One room of ${n0(S.idle1)} at ${n0(S.r10k_rate * S.idle1)} deliveries/s (${S.r10k_rate} msg/s): p50 (ms)`, 'lower', (t) => lat(t.room10k_rate, 'p50'), 'room10k_rate'],
  [`One room of ${n0(S.idle1)} at ${n0(S.r10k_rate * S.idle1)} deliveries/s: p99 (ms)`, 'lower', (t) => lat(t.room10k_rate, 'p99'), 'room10k_rate'],
  [`One room of ${n0(S.idle1)} at ${n0(S.r10k_rate * S.idle1)} deliveries/s: max (ms)`, 'lower', (t) => lat(t.room10k_rate, 'max'), 'room10k_rate'],
  [`One room of ${n0(S.idle1)} at ${n0(S.r10k_rate * S.idle1)} deliveries/s: server CPU (% of one core)`, 'lower', (t) => cpuPct(t.room10k_rate), 'room10k_rate'],
  ...phaseFigures('cluster2', 'One room over 2 nodes'),
  ...phaseFigures('cluster3', 'One room over 3 nodes'),
  [`Latency across 2 nodes at half max rate, rooms of ${perRoom}: rate used (msg/s; half of each server's own rooms rate)`, '',
    (t) => t.xlatency_params && t.xlatency_params.rate, 'xlatency'],
  ...xlatFigures('Latency across 2 nodes at half max rate, rooms of ' + perRoom, (t) => t.xlatency, 'xlatency'),
  ['Latency across 2 nodes at half max rate: server CPU (% of one core, both nodes)', 'lower', (t) => cpuPct(t.xlatency), 'xlatency'],
  ...xlatFigures(`Latency across 2 nodes, both at Node's half max rate (${fmt(xlRate('roomcast', 'xlatency_noderate'))} msg/s)`,
    (t, who) => (who === 'roomcast' ? t.xlatency_noderate : t.xlatency), ['xlatency_noderate', 'xlatency']),
  ['Message for a room with no local member: server CPU per message (µs)', 'lower', voidCost],
  ['Message for a room with no local member: Redis receivers per message', 'lower', (t) => t.void && t.void.publisher && t.void.publisher.receivers / t.void.publisher.published],
];

const fanRate = (t) => t.fanout && t.fanout.loadgen && t.fanout.loadgen.deliveries_per_s;
const fanCpu = (t) => {
  const r = t.fanout;
  return r && r.loadgen && r.loadgen.deliveries ? (cpuDelta(r) / r.loadgen.deliveries) * 1e6 : undefined;
};
// f(target) / f(limit) x scale, when the limit's fan-out ran completely
function overLimit(t, f, scale) {
  if (incomplete(R.limit, 'fanout') || !R.limit.fanout) return undefined;
  const a = f(t), b = f(R.limit);
  return typeof a === 'number' && typeof b === 'number' && b > 0 ? (a / b) * scale : undefined;
}

function lat(r, k) {
  return r && r.loadgen && r.loadgen.latency_us ? r.loadgen.latency_us[k] / 1000 : undefined;
}

// p50/p90/p99 of the phase pick(t, 'roomcast'|'node') selects; key: a phase or [roomcast's, node's]
function xlatFigures(label, pick, key) {
  return ['p50', 'p90', 'p99'].map((k) => [`${label}: ${k} (ms)`, 'lower', (t, who) => lat(pick(t, who), k), key]);
}

function phaseFigures(key, label, perMessage) {
  return [
    [`${label}: deliveries/s`, 'higher', (t) => t[key] && t[key].loadgen && t[key].loadgen.deliveries_per_s, key],
    [`${label}: latency p50 (ms)`, 'lower', (t) => lat(t[key], 'p50'), key],
    [`${label}: latency p99 (ms)`, 'lower', (t) => lat(t[key], 'p99'), key],
    perMessage
      ? [`${label}: server CPU per published message (µs)`, 'lower', (t) => {
          const r = t[key];
          return r && r.publisher && r.publisher.published ? (cpuDelta(r) / r.publisher.published) * 1e6 : undefined;
        }, key]
      : [`${label}: server CPU per delivery (µs, all nodes)`, 'lower', (t) => {
          const r = t[key];
          return r && r.loadgen && r.loadgen.deliveries ? (cpuDelta(r) / r.loadgen.deliveries) * 1e6 : undefined;
        }, key],
  ];
}

function voidCost(t) {
  const v = t.void, idle = t.void_idle;
  if (!v || !v.publisher || !idle) return undefined;
  const idleCpu = Array.isArray(idle.idle_cpu_s) ? Math.min(...idle.idle_cpu_s) : idle.idle_cpu_s;
  const idlePerS = idleCpu / idle.secs;
  return Math.max(0, (cpuDelta(v) - idlePerS * v.wall_s) / v.publisher.published) * 1e6;
}

function int(v) {
  return typeof v === 'number' ? Math.round(v).toLocaleString('en-US') : 'n/a';
}

function fmt(v) {
  if (v === undefined || v === null || Number.isNaN(v)) return 'n/a';
  if (typeof v === 'string') return v;
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function ratio(a, b) {
  if (typeof a !== 'number' || typeof b !== 'number' || Number.isNaN(a) || Number.isNaN(b)) return 'n/a';
  if (b === 0) return a === 0 ? '1' : '∞';
  const r = a / b;
  return r >= 10 ? r.toFixed(0) + '×' : r.toFixed(2) + '×';
}

function table(header, rows) {
  const out = ['| ' + header.join(' | ') + ' |', '|' + header.map((h, i) => (i === 0 ? '---' : '---:')).join('|') + '|'];
  for (const r of rows) out.push('| ' + r.join(' | ') + ' |');
  return out.join('\n');
}

// A phase whose deliveries differ from messages x members: its figures are flagged, not compared.
function incomplete(t, key) {
  const r = key && t[key];
  if (!r || !r.loadgen || r.loadgen.deliveries === undefined || !r.expected) return null;
  return r.loadgen.deliveries === r.expected ? null : `${((100 * r.loadgen.deliveries) / r.expected).toFixed(0)}% delivered`;
}

const rc = R.roomcast, nd = R.node;
const mainRows = figures.map(([label, better, f, key]) => {
  let a, b;
  try { a = f(rc, 'roomcast'); } catch (e) { a = undefined; }
  try { b = f(nd, 'node'); } catch (e) { b = undefined; }
  const [ka, kb] = Array.isArray(key) ? key : [key, key];
  const ia = incomplete(rc, ka), ib = incomplete(nd, kb);
  const cell = (v, inc) => (inc ? `${fmt(v)} ⚠ ${inc}` : fmt(v));
  return [label, cell(a, ia), cell(b, ib), ia || ib ? 'n/a (incomplete)' : ratio(a, b), better];
});

// the latency curve's fractions (run.sh XL_FRACTIONS) and their phase names
const fractions = String(S.xl_fractions || '0.5').split(/\s+/).filter(Boolean);
const xname = (f) => (Number(f) === 0.5 ? 'xlatency' : `xcurve_${f}`);
const phases = ['handshake', 'fanout', 'rooms', 'latency', 'room10k_rate', 'void', 'cluster2', 'cluster3',
  ...fractions.map(xname), 'xlatency_noderate', 'shards1', 'shards3',
  ...Object.keys(R.roomcast).filter((k) => /^fmt_/.test(k))];
const cpuRows = [];
const checkRows = [];
for (const target of ['roomcast', 'node', 'limit']) {
  for (const p of phases) {
    const r = R[target][p];
    if (!r) continue;
    const srv = r.server_cpu1 ? r.server_cpu1.map((c, i) => (c - r.server_cpu0[i]).toFixed(2)).join(' + ') : 'n/a';
    const lg = r.loadgen || {};
    const wall = r.wall_s || (lg.secs_connect !== undefined ? lg.secs_connect : undefined);
    const ours = (cpuDelta(r) || 0) + (r.redis_cpu || 0) + (lg.cpu_s || 0) + (r.publisher ? r.publisher.cpu_s : 0);
    const others = r.machine_cpu !== undefined ? Math.max(0, r.machine_cpu - ours).toFixed(2) : 'n/a';
    const f2 = (v) => (v !== undefined ? v.toFixed(2) : 'n/a');
    cpuRows.push([target, p, fmt(wall), srv, f2(r.redis_cpu), f2(lg.cpu_s), r.publisher ? r.publisher.cpu_s.toFixed(2) : '-',
      f2(r.softirq_cpu), f2(r.steal_cpu), others]);
    if (p === 'handshake') {
      checkRows.push([target, p, `${lg.connected}/${r.expected} connected`, '-', JSON.stringify(lg.errors || {})]);
    } else if (lg.deliveries !== undefined) {
      const ok = r.expected === 0 ? lg.deliveries === 0 : lg.deliveries === r.expected;
      checkRows.push([target, p, `${lg.deliveries}/${r.expected} ${ok ? 'ok' : 'MISMATCH'}`,
        `${lg.per_conn_min}..${lg.per_conn_max}`, JSON.stringify(lg.errors || {})]);
    }
  }
  const idle = R[target].idle || R[target].connect;
  if (idle) {
    for (const k of ['connect1', 'connect2']) {
      const c = idle[k];
      if (c) checkRows.push([target, (R[target].idle ? 'idle ' : '') + k, `${c.joined}/${c.conns} joined`, '-', JSON.stringify(c.errors || {})]);
    }
  }
}

const mode = rc.mode ? rc.mode.mode : rc.unavailable ? 'unavailable' : 'not run';
const s = machine.sizes || {};
const md = [];
md.push('## Latest run');
md.push('');
md.push(`${machine.date || '?'}, commit \`${machine.commit || '?'}\`${machine.quick ? ' (BENCH_QUICK=1: small sizes, not comparable)' : ''}. ` +
  `Machine: ${machine.nproc} × ${machine.cpu}, ${machine.mem_gib} GiB, Linux ${machine.kernel}; Node.js ${machine.node}, Redis ${machine.redis}. ` +
  `Load average at start ${machine.load_start}, at end ${end.load_end || '?'}; total ${end.secs || '?'} s. ` +
  `roomcast published through: ${mode === 'redis' ? 'Redis PUBLISH (JSON envelope)' : mode === 'api' ? 'POST /api/publish (embedded mode: its Redis backplane did not deliver)' : mode}. ` +
  (rc.mode && rc.mode.config ? `roomcast config: \`${rc.mode.config.replace(/\s+/g, ' ')}\`. ` : 'roomcast config: built-in defaults. ') +
  `Node reference: published with the @socket.io/redis-emitter format. Load generator: ${s.procs} processes, source addresses 127.0.0.1-8.`);
md.push('');
md.push(table(['figure', 'roomcast', 'node', 'roomcast / node', 'better'], mainRows));
md.push('');
md.push(limitSection());
md.push('');
md.push(curveSection());
md.push('');
md.push(shardsSection());
md.push('');
md.push(`CPU seconds per phase. Server: one figure per node. Everything shares the machine's ${machine.nproc} cores ` +
  `(${machine.nproc} CPU s per wall second). softirq: interrupt time (loopback TCP is largely processed there), steal: time the ` +
  `hypervisor took; other: user and system time of processes outside the benchmark (a shared machine is noisy: compare with the phase's wall time).`);
md.push('');
md.push(table(['server', 'phase', 'wall s', 'server CPU s', 'redis', 'loadgen', 'publisher', 'softirq', 'steal', 'other'], cpuRows));
md.push('');
md.push('Delivery check (received / published × members; per-connection min..max; errors by reason):');
md.push('');
md.push(table(['server', 'phase', 'deliveries', 'per connection', 'errors'], checkRows));
md.push('');
md.push(`Sizes: handshake ${s.hs}; idle ${s.idle1} then ${s.idle2}; fan-out ${s.fan_msgs} messages to ${s.idle1}; ` +
  `${s.rooms_msgs} messages over ${s.rooms} rooms; latency ${s.lat_rate} msg/s for ${s.lat_secs} s; ` +
  `one room of ${s.idle1} at ${s.r10k_rate} msg/s for ${s.r10k_secs} s; ` +
  `no-member room ${s.void_msgs} messages at ${s.void_rate}/s; clusters ${s.cl_msgs} messages to ${s.cl_n}; ` +
  `across 2 nodes ${s.xl_rooms} rooms of ${perRoom} (members alternating between the nodes) for ${s.xl_secs} s at ` +
  `roomcast ${fmt(xlRate('roomcast', 'xlatency'))}, node ${fmt(xlRate('node', 'xlatency'))} and roomcast at node's ` +
  `${fmt(xlRate('roomcast', 'xlatency_noderate'))} msg/s.`);
md.push('');
md.push(formatsSection());
const section = md.join('\n') + '\n';

// roomcast's two publishing formats on one node (run.sh scen_formats): server CPU per delivery.
function formatsSection() {
  const rounds = Object.keys(rc).filter((k) => /^fmt_/.test(k));
  if (!rounds.length) return 'Publishing formats (JSON envelope vs @socket.io/redis-emitter): not measured in this run.';
  const rows = [];
  for (const [shape, label] of [['fanout', `one room of ${n0(s.idle1)}, ${s.fan_msgs} messages`],
    ['rooms', `${n0(s.rooms_msgs)} messages over ${n0(s.rooms)} rooms of ${perRoom}`]]) {
    const per = {};
    for (const f of ['json', 'emitter']) {
      let cpu = 0, del = 0, pubs = 0, bad = 0;
      const each = [];
      for (const k of rounds.filter((x) => x.startsWith(`fmt_${shape}_${f}_`))) {
        const r = rc[k];
        if (!r.loadgen || !r.loadgen.deliveries) continue;
        if (incomplete(rc, k)) bad++;
        cpu += cpuDelta(r);
        del += r.loadgen.deliveries;
        pubs += r.publisher ? r.publisher.published : 0;
        each.push((cpuDelta(r) / r.loadgen.deliveries) * 1e6);
      }
      per[f] = { us: del ? (cpu / del) * 1e6 : undefined, msgUs: pubs ? (cpu / pubs) * 1e6 : undefined, each, bad };
    }
    const cell = (p) => `${fmt(p.us)} (${p.each.map(fmt).join(', ')})${p.bad ? ` ⚠ ${p.bad} incomplete` : ''}`;
    rows.push([label, cell(per.json), cell(per.emitter), ratio(per.emitter.us, per.json.us)]);
  }
  return ['Publishing formats on one roomcast node with `socketio.prefix` set (run.sh `formats`): the same ' +
    `connections, ${rc.formats_connect ? rc.formats_connect.rounds : '?'} rounds, each format published in turn. Server CPU ` +
    'per delivery in µs, all rounds together (each round in brackets; /proc counts in ticks of 10 ms).', '',
  table(['phase', 'JSON envelope', '@socket.io/redis-emitter', 'emitter / JSON'], rows)].join('\n');
}

// The machine limit: the fan-out shape against test/bench/limit (no broker logic), next to both.
function limitSection() {
  const L = R.limit.fanout;
  if (!L) return 'Machine limit of the fan-out: not measured in this run (BENCH_TARGETS without `limit`).';
  const inc = incomplete(R.limit, 'fanout');
  const lim = L.limit || {};
  const rows = [
    ['Deliveries/s', fanRate, 'higher'],
    ['Server CPU per delivery (µs, /proc)', fanCpu, 'lower'],
    ['Latency p50 (ms)', (t) => lat(t.fanout, 'p50'), 'lower'],
    ['Latency p99 (ms)', (t) => lat(t.fanout, 'p99'), 'lower'],
    ['Wall time of the phase (s)', (t) => t.fanout && t.fanout.wall_s, 'lower'],
  ].map(([label, f, better]) => {
    const v = (t) => { try { return f(t); } catch (e) { return undefined; } };
    const l = v(R.limit), a = v(rc), b = v(nd);
    return [label, inc ? `${fmt(l)} ⚠ ${inc}` : fmt(l), fmt(a), inc || incomplete(rc, 'fanout') ? 'n/a' : ratio(a, l),
      fmt(b), inc || incomplete(nd, 'fanout') ? 'n/a' : ratio(b, l), better];
  });
  const out = [];
  out.push(`Machine limit of the fan-out (\`test/bench/limit\`: the same ${s.idle1} connections and ${s.fan_msgs} messages, ` +
    `served by a minimal single-threaded epoll server with no broker logic: one pre-built frame per message, ` +
    `written with writev of up to ${lim.batch || 64} frames per call to every socket. What is left is the cost of the system calls ` +
    `and of loopback TCP). Its own getrusage over the writes: ${fmt(lim.cpu_s)} CPU s, ${fmt(lim.cpu_per_delivery_us)} µs per ` +
    `delivery (user ${fmt(lim.user_s)} s, system ${fmt(lim.sys_s)} s), ${int(lim.writev)} writev calls, ${int(lim.partial)} sockets that ` +
    `filled their kernel buffer. The /proc figures below count in ticks of 10 ms. The load generator receives on the same ` +
    `cores, so the limit's deliveries/s is that of the whole machine, not of the server alone.`);
  out.push('');
  out.push(table(['fan-out', 'machine limit', 'roomcast', 'roomcast / limit', 'node', 'node / limit', 'better'], rows));
  // the fixed-rate phases: the same load, messages written as they fall due
  const fixed = [
    [`One room of ${n0(s.idle1)} at ${n0(s.r10k_rate * s.idle1)} deliveries/s`, 'room10k_rate'],
    [`${n0(s.lat_rate)} msg/s over ${n0(s.rooms)} rooms of ${perRoom}`, 'latency'],
    [`Rooms of ${perRoom} at ${fmt(xlRate('roomcast', 'xlatency'))} msg/s (roomcast's half max; roomcast over 2 nodes, limit 1 process)`,
      'xlatency'],
  ];
  const frows = [];
  for (const [label, key] of fixed) {
    const l = R.limit[key];
    if (!l) continue;
    const li = incomplete(R.limit, key);
    for (const k of ['p50', 'p99']) {
      const lv = lat(l, k), a = lat(rc[key], k);
      // node at this same rate: for the half-max row, node ran at its own rate, not comparable
      const b = key === 'xlatency' ? undefined : lat(nd[key], k);
      frows.push([`${label}: latency ${k} (ms)`, li ? `${fmt(lv)} ⚠ ${li}` : fmt(lv), fmt(a), ratio(a, lv), fmt(b), ratio(b, lv)]);
    }
    const cpuUs = (r) => (r && r.loadgen && r.loadgen.deliveries ? (cpuDelta(r) / r.loadgen.deliveries) * 1e6 : undefined);
    const lc = l.limit && l.limit.cpu_per_delivery_us;
    frows.push([`${label}: server CPU per delivery (µs; limit: its getrusage)`, fmt(lc), fmt(cpuUs(rc[key])), ratio(cpuUs(rc[key]), lc),
      key === 'xlatency' ? 'n/a' : fmt(cpuUs(nd[key])), key === 'xlatency' ? 'n/a' : ratio(cpuUs(nd[key]), lc)]);
  }
  if (frows.length) {
    out.push('');
    out.push('The same machine limit at a fixed rate (`pace`: each message built and time-stamped when it falls due, written at ' +
      'once to the members of its room, one writev per socket per 200 µs tick). At these rates a socket rarely has more than ' +
      'one frame per tick, so each delivery costs a system call and the loopback path to the receiver, whatever the server does.');
    out.push('');
    out.push(table(['fixed rate', 'machine limit', 'roomcast', 'roomcast / limit', 'node', 'node / limit'], frows));
    const r10 = R.limit.room10k_rate, n10 = nd.room10k_rate;
    if (r10 && n10 && lat(n10, 'p99') !== undefined) {
      out.push('');
      out.push(`Issue 8 asks, for one room of ${n0(s.idle1)} at ${n0(s.r10k_rate * s.idle1)} deliveries/s, a p99 of at most 1/20 of ` +
        `Node's: ${fmt(lat(n10, 'p99') / 20)} ms in this run. The machine limit's p99 was ${fmt(lat(r10, 'p99'))} ms ` +
        `(${ratio(lat(r10, 'p99'), lat(n10, 'p99'))} of Node's).`);
    }
  }
  return out.join('\n');
}

// Latency against load across 2 nodes: each server at fractions of its own "rooms" rate.
function curveSection() {
  const rowsC = [];
  const best = { roomcast: undefined, node: undefined, limit: undefined };
  for (const f of fractions) {
    const key = xname(f);
    const cell = (t) => {
      const r = R[t][key];
      const rate = xlRate(t, key);
      if (!r || rate === undefined) return ['n/a', 'n/a', 'n/a'];
      const p99 = lat(r, 'p99'), inc = incomplete(R[t], key);
      if (!inc && p99 !== undefined && p99 < 5 && (best[t] === undefined || rate > best[t])) best[t] = rate;
      return [fmt(rate), fmt(lat(r, 'p50')), inc ? `${fmt(p99)} ⚠ ${inc}` : fmt(p99)];
    };
    const cpu = (t) => fmt(cpuPct(R[t][key]));
    rowsC.push([f, ...cell('roomcast'), cpu('roomcast'), ...cell('node'), cpu('node'), ...cell('limit').slice(1)]);
  }
  if (!rowsC.some((r) => r[1] !== 'n/a' || r[5] !== 'n/a')) return 'Latency against load: not measured in this run.';
  const out = [];
  out.push(`Latency against load, rooms of ${perRoom} over 2 nodes (${s.xl_rooms} rooms, members alternating between the nodes), ` +
    `${s.xl_secs} s per point. Each server runs at fractions of its own "rooms" rate of this run (roomcast ` +
    `${fmt(rooms_max('roomcast'))}, node ${fmt(rooms_max('node'))} msg/s). The machine limit runs roomcast's rates in one ` +
    'process without Redis (its rooms of the same size). CPU: both nodes, % of one core.');
  out.push('');
  out.push(table(['fraction', 'roomcast msg/s', 'p50 (ms)', 'p99 (ms)', 'CPU %', 'node msg/s', 'p50 (ms)', 'p99 (ms)', 'CPU %',
    'limit p50 (ms)', 'limit p99 (ms)'], rowsC));
  out.push('');
  const ran = (t) => fractions.some((f) => R[t][xname(f)]);
  const say = (t) => (!ran(t) ? 'not run' : best[t] === undefined ? 'none of the points'
    : `${fmt(best[t])} msg/s (${fmt(best[t] * perRoom)} deliveries/s)`);
  out.push(`Highest rate measured with p99 under 5 ms: roomcast ${say('roomcast')}, node ${say('node')}, machine limit ${say('limit')}.`);
  return out.join('\n');
}

// One Redis against a Redis Cluster of three masters (run.sh scen_shards): the same rooms, nodes and
// messages; deliveries/s and every Redis process's CPU.
function shardsSection() {
  const one = R.roomcast.shards1, three = R.roomcast.shards3;
  if (!one && !three) return 'One Redis against a Redis Cluster: not measured in this run.';
  const p = R.roomcast.shards1_params || R.roomcast.shards3_params || {};
  const dps = (r) => r && r.loadgen && r.loadgen.deliveries_per_s;
  const redisSum = (r) => (r && r.shard_cpu ? sum(r.shard_cpu) : undefined);
  const per = (r, v) => (r && r.wall_s && v !== undefined ? (v / r.wall_s) * 100 : undefined);
  const perDelivery = (r, v) => (r && r.loadgen && r.loadgen.deliveries && v !== undefined ? (v / r.loadgen.deliveries) * 1e6 : undefined);
  const pubRate = (r) => r && r.publisher && r.publisher.rate;
  const rows = [
    ['deliveries/s', fmt(dps(one)), fmt(dps(three)), ratio(dps(three), dps(one))],
    ['messages/s published', fmt(pubRate(one)), fmt(pubRate(three)), ratio(pubRate(three), pubRate(one))],
    ['Redis CPU, all processes (CPU s)', fmt(redisSum(one)), fmt(redisSum(three)), ratio(redisSum(three), redisSum(one))],
    ['Redis CPU per process (% of one core over the phase)', one && one.shard_cpu ? one.shard_cpu.map((c) => fmt(per(one, c))).join(' ') : 'n/a',
      three && three.shard_cpu ? three.shard_cpu.map((c) => fmt(per(three, c))).join(' / ') : 'n/a', ''],
    ['Redis CPU per delivery, all processes (µs)', fmt(perDelivery(one, redisSum(one))), fmt(perDelivery(three, redisSum(three))),
      ratio(perDelivery(three, redisSum(three)), perDelivery(one, redisSum(one)))],
    ['roomcast CPU per delivery, both nodes (µs)', fmt(perDelivery(one, cpuDelta(one))), fmt(perDelivery(three, cpuDelta(three))),
      ratio(perDelivery(three, cpuDelta(three)), perDelivery(one, cpuDelta(one)))],
    ['wall time of the phase (s)', fmt(one && one.wall_s), fmt(three && three.wall_s), ''],
  ];
  const out = [];
  out.push(`One Redis against a Redis Cluster of three masters (\`BENCH_FAMILIES=burst BENCH_TARGETS=shards\`): ${n0(s.sh_msgs)} messages round robin over ` +
    `${n0(p.rooms)} rooms of ${p.members} members on 2 roomcast nodes (members alternating between the nodes), published as fast ` +
    'as the publisher goes: `PUBLISH` on one Redis, `SPUBLISH` to the master of each channel\'s slot on the cluster. Every process ' +
    'shares this machine\'s cores, so the cluster\'s capacity on separate machines is not what this measures; the spread of the ' +
    'pub/sub work over the masters is.');
  out.push('');
  out.push(table(['figure', 'one Redis', 'three masters', 'cluster / one'], rows));
  return out.join('\n');
}

function rooms_max(t) {
  const r = R[t].rooms;
  return r && r.loadgen && perRoom ? r.loadgen.deliveries_per_s / perRoom : undefined;
}
process.stdout.write('\n' + section);

if (docFile) {
  let doc = '';
  try { doc = fs.readFileSync(docFile, 'utf8'); } catch (e) { doc = ''; }
  const marker = '## Latest run';
  if (!doc.trim()) doc = INTRO + '\n';
  else if (!doc.includes(marker)) doc = doc.replace(/\n*$/, '\n\n');
  else doc = doc.slice(0, doc.indexOf(marker));
  fs.writeFileSync(docFile, doc + section);
  process.stderr.write(`[bench] wrote ${docFile}\n`);
}
