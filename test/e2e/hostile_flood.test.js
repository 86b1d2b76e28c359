'use strict';
// Floods (issue 9): one socket flooding events (the per-socket rate limit keeps the others'
// latency), a client that never reads sitting in a room flooded with publishes (its output is
// capped, it is dropped, the node's memory stays bounded), a connection flood past
// limits.maxConnections, and file-descriptor exhaustion (accept errors back off instead of
// spinning). Issue 15: a flood of handshakes that never connect a namespace, from one peer, while
// official clients from another address connect (lib/flood_pending.js; time to connect reported),
// and an event with two 600 KB attachments that every reading member gets while the member that
// never reads is dropped.
//
// The p99 figures are the measurement quoted in docs/security.md: well-behaved pairs of clients
// in their own rooms relay a timestamped event every 25 ms, before and during each attack, and
// the receiving side records publish -> receipt latency. Attackers run in child processes
// (lib/hostile.js flooders) so they do not share the measuring event loop. Timings are reported,
// not asserted, except for gross bounds (everything delivered; p99 under a second).
//
// config/hostile_flood.json: maxOutboundBytes 1 MiB (the default), maxConnections 400, rateLimit 50 events/s
// per socket, heartbeat 10 s + 10 s (so only the outbound cap can drop the client that never reads).

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const path = require('node:path');
const {
  startNode, connect, closeClients, checkAlive, token, emitAck, emitAckWithin, httpRequest, API_KEY, sleep,
} = require('./lib/node');
const {
  RawConn, sioConnect, frame, OP, metrics, sumFamily, rssMb, procRssMb, cpuTicks, openFds, waitUntil, summary, round,
  spawnFlooder,
} = require('./lib/hostile');

const T = { timeout: 60000 };
const PAIRS = 8;
const EVERY_MS = 25; // 40 events/s per sender, under the 50/s limit
const PHASE_MS = 3000;

// A smaller ASan quarantine for the node, so its RSS follows what it holds rather than what it
// freed recently (the default 256 MB quarantine makes any busy ASan process look like it grows).
const ASAN_ENV = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=16` };

async function makePairs(node, tag, n = PAIRS) {
  return Promise.all(Array.from({ length: n }, async (_, i) => {
    const room = `${tag}-${i}`;
    const [a, b] = await Promise.all([0, 1].map((k) =>
      connect(node.url, { auth: { token: token({ sub: `${tag}-${i}-${k}` }) }, transports: ['websocket'] })));
    for (const s of [a, b]) assert.deepEqual(await emitAck(s, 'join', room), [{ ok: true, room }]);
    return { a, b, room };
  }));
}

// Every pair's `a` relays {t} to its room every EVERY_MS for ms; `b` records the latency.
// Resolves with {lat: [ms], sent, got} once everything sent has arrived (or 5 s passed).
async function measure(pairs, ms) {
  const lat = [];
  let sent = 0;
  const handlers = pairs.map((p) => {
    const h = (d) => { lat.push(performance.now() - d.t); };
    p.b.on('say', h);
    return h;
  });
  const t0 = performance.now();
  await Promise.all(pairs.map(async (p, i) => {
    await sleep((i * EVERY_MS) / pairs.length); // spread the senders over the interval
    while (performance.now() - t0 < ms) {
      p.a.emit('say', { room: p.room, t: performance.now() });
      sent++;
      await sleep(EVERY_MS);
    }
  }));
  try {
    await waitUntil(() => lat.length >= sent, { timeout: 5000, what: 'every relay delivered' });
  } catch { /* reported by the caller's assertion */ }
  pairs.forEach((p, i) => p.b.off('say', handlers[i]));
  return { lat, sent, got: lat.length };
}

const fmt = (s) => `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms (n=${s.n})`;

// lib/flood_pending.js in a child process: resolves with its JSON report.
function spawnPendingFlood(args) {
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, [path.join(__dirname, 'lib', 'flood_pending.js'), ...args.map(String)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const done = new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch { reject(new Error(`flooder exited ${code}: ${out}`)); }
    });
  });
  done.catch(() => {});
  return { child, done };
}

describe('floods', () => {
  let node;
  const stats = {};

  before(async () => { node = await startNode({ config: 'hostile_flood.json', env: ASAN_ENV }); });
  afterEach(() => node && checkAlive(node, 200));
  after(async () => {
    closeClients();
    if (node) await node.stop();
    console.log(`# hostile_flood stats ${JSON.stringify(stats)}`);
  });

  it('an event flood from one socket: it is rate-limited and the other clients get everything (their latency is measured)', T, async (t) => {
    const pairs = await makePairs(node, 'ev');
    const listener = await connect(node.url, { auth: { token: token({ sub: 'flood-listener' }) }, transports: ['websocket'] });
    await emitAck(listener, 'join', 'flood-room');
    let floodGot = 0;
    listener.on('say', () => { floodGot++; });
    const base = await measure(pairs, PHASE_MS);

    const m0 = await metrics(node);
    const attack = spawnFlooder(['events', node.port, token({ sub: 'attacker' }), 'flood-room', PHASE_MS + 1500]);
    await sleep(500);
    const during = await measure(pairs, PHASE_MS);
    const result = await attack.done;
    const m1 = await metrics(node);
    const limited = sumFamily(m1, 'roomcast_rate_limited_total') - sumFamily(m0, 'roomcast_rate_limited_total');
    const inEvents = sumFamily(m1, 'roomcast_messages_in_total') - sumFamily(m0, 'roomcast_messages_in_total');

    const b = summary(base.lat);
    const d = summary(during.lat);
    stats.eventFlood = { baseline: b, during: d, attackerSent: result.sent, attackerMs: result.ms, nodeReceived: inEvents, rateLimited: limited, listenerGot: floodGot };
    t.diagnostic(`baseline: ${fmt(b)}`);
    t.diagnostic(`during an event flood (${result.sent} events written in ${result.ms} ms, ${inEvents} read by the node, ` +
      `${limited} rate-limited): ${fmt(d)}; p99 ratio ${round(d.p99 / b.p99, 1)}`);
    assert.equal(base.got, base.sent, 'baseline: every relay delivered');
    assert.equal(during.got, during.sent, 'during the flood: every relay of the well-behaved clients delivered');
    assert.ok(limited > 1000, `only ${limited} events rate-limited`);
    assert.ok(floodGot <= 50 + 50 * ((result.ms + 1000) / 1000), `the flood room got ${floodGot} relays: more than the limit lets through`);
    // The latency is reported, not asserted here: see the next test (todo) for the bound.
    for (const p of pairs) { p.a.disconnect(); p.b.disconnect(); }
    listener.disconnect();
  });

  it('a client streaming input on 4 sockets does not hold up the delivery to everyone else (p99 < 250 ms)', {
    ...T,
      }, async (t) => {
    const pairs = await makePairs(node, 'ev4');
    const base = await measure(pairs, 2000);
    const attack = spawnFlooder(['events', node.port, token({ sub: 'attacker4' }), 'flood-room-4', 3000, 4]);
    await sleep(500);
    const during = await measure(pairs, 2000);
    const result = await attack.done;
    const b = summary(base.lat);
    const d = summary(during.lat);
    stats.eventFlood4 = { baseline: b, during: d, attackerSent: result.sent };
    t.diagnostic(`4-socket event stream (${result.sent} events): baseline ${fmt(b)}; during ${fmt(d)}`);
    for (const p of pairs) { p.a.disconnect(); p.b.disconnect(); }
    assert.equal(during.got, during.sent, 'every relay delivered');
    assert.ok(d.p99 < 250, `p99 ${d.p99} ms during the stream (baseline ${b.p99} ms)`);
  });

  it('a client that never reads, in a flooded room: capped, dropped and counted; memory bounded; others unaffected', T, async (t) => {
    const pairs = await makePairs(node, 'nr');
    const reader = await connect(node.url, { auth: { token: token({ sub: 'hot-reader' }) }, transports: ['websocket'] });
    await emitAck(reader, 'join', 'hot');
    let readerGot = 0;
    let readerGone = null;
    reader.on('hot', () => { readerGot++; });
    reader.on('disconnect', (r) => { readerGone = r; });
    const slow = await sioConnect(node.port, token({ sub: 'never-reads' }));
    slow.sendText('421["join","hot"]');
    await slow.nextText('431');
    slow.conn.pause(); // from now on the kernel buffers fill, then the node's output buffer

    const base = await measure(pairs, PHASE_MS);
    await sleep(300);
    const m0 = await metrics(node);
    const rss0 = await rssMb(node);
    const BYTES = 8192;
    // Up to 600 publishes/s of 8 KiB (4.9 MB/s), one request at a time: more than the client
    // that never reads can hold, no more than the reader in the same room (socket.io-client in
    // this process) can take. (Several connections publishing back to back would keep the node
    // reading at every loop turn and starve its output: see the todo test above.)
    const flood = spawnFlooder(['publish', node.port, API_KEY, 'hot', BYTES, PHASE_MS + 1000, 1, 600]);
    const rssSamples = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        rssSamples.push(procRssMb(node.child.pid));
        await sleep(100);
      }
    })();
    await sleep(300);
    const during = await measure(pairs, PHASE_MS);
    const pub = await flood.done;
    await waitUntil(() => readerGot >= pub.accepted || readerGone, { timeout: 15000, what: `the reader got all ${pub.accepted} publishes` });
    const dropsSoFar = (await metrics(node)).get('roomcast_slow_consumer_drops_total') - m0.get('roomcast_slow_consumer_drops_total');
    assert.equal(readerGone, null, `the reader in the flooded room was disconnected (${readerGone}) after ${readerGot}/${pub.accepted} ` +
      `messages; slow consumer drops: ${dropsSoFar}`);
    sampling = false;
    await sampler;
    const m1 = await metrics(node);
    const rss1 = await rssMb(node);
    const drops = m1.get('roomcast_slow_consumer_drops_total') - m0.get('roomcast_slow_consumer_drops_total');
    const flooded = (pub.accepted * BYTES) / 1048576;
    const peak = Math.max(...rssSamples);

    // The node closed the session: once the client reads again, it finds the end of the stream.
    slow.conn.sock.resume();
    const closedMs = await slow.conn.waitClosed(8000).catch(() => null);
    slow.destroy();

    const b = summary(base.lat);
    const d = summary(during.lat);
    stats.neverReads = {
      baseline: b, during: d, publishes: pub.accepted, floodedMb: round(flooded, 1), drops,
      rssBeforeMb: round(rss0, 1), rssPeakMb: round(peak, 1), rssAfterMb: round(rss1, 1), readerGot,
    };
    t.diagnostic(`baseline: ${fmt(b)}`);
    t.diagnostic(`during ${pub.accepted} publishes of ${BYTES} B (${flooded.toFixed(0)} MB) to a room with a client that never reads: ` +
      `${fmt(d)}; p99 ratio ${round(d.p99 / b.p99, 1)}`);
    t.diagnostic(`RSS ${rss0.toFixed(1)} MB before, ${peak.toFixed(1)} MB peak, ${rss1.toFixed(1)} MB after; slow consumer drops +${drops}`);
    assert.equal(drops, 1, 'the client that never reads was dropped once (roomcast_slow_consumer_drops_total)');
    assert.notEqual(closedMs, null, 'the node closed the connection of the client that never reads');
    assert.equal(readerGot, pub.accepted, 'the reader in the same room got every publish');
    assert.equal(during.got, during.sent, 'the other clients got every relay');
    assert.ok(flooded > 10, `the flood pushed only ${flooded.toFixed(1)} MB`);
    assert.ok(peak - rss0 < 64, `RSS grew by ${(peak - rss0).toFixed(1)} MB while ${flooded.toFixed(0)} MB were flooded`);
    assert.ok(d.p99 < 1000, `p99 during the flood ${d.p99} ms`);
    for (const p of pairs) { p.a.disconnect(); p.b.disconnect(); }
    reader.disconnect();
  });

  // Issue 15, finding 3 (second half). An event with two 600 KB attachments, each under
  // maxPayload: all three frames are queued at once for every member, and the 1 MiB outbound cap
  // used to be checked right after queueing, so every member that reads fast was dropped as a
  // slow consumer. Now a member is slow by what stays unsent after the flush: the members
  // (WebSocket and polling) get every event, the member that never reads is still dropped.
  it('an event with two 600 KB attachments reaches every member that reads; only the one that never reads is dropped', T, async (t) => {
    const own = await startNode({
      config: 'hostile_flood.json', env: ASAN_ENV,
      overrides: { engine: { maxPayload: 2000000 }, http: { maxBodyBytes: 4000000 } },
    });
    const N = 10;
    const ATT = 600000;
    try {
      const members = await Promise.all(['ws-1', 'ws-2', 'ws-3', 'poll-1'].map(async (sub) => {
        const s = await connect(own.url, {
          auth: { token: token({ sub }) }, transports: sub.startsWith('poll') ? ['polling'] : ['websocket'],
        });
        assert.deepEqual(await emitAck(s, 'join', 'att'), [{ ok: true, room: 'att' }]);
        const m = { sub, s, got: [], gone: null };
        s.on('say', (d) => m.got.push(d));
        s.on('disconnect', (r) => { m.gone = r; });
        return m;
      }));
      const sender = await connect(own.url, { auth: { token: token({ sub: 'sender' }) }, transports: ['websocket'] });
      assert.deepEqual(await emitAck(sender, 'join', 'att'), [{ ok: true, room: 'att' }]);
      const stuck = await sioConnect(own.port, token({ sub: 'never-reads-att' }));
      stuck.sendText('421["join","att"]');
      await stuck.nextText('431');
      stuck.conn.pause();
      const m0 = await metrics(own);
      const t0 = performance.now();
      for (let i = 0; i < N; i++) {
        sender.emit('say', { room: 'att', i, a: Buffer.alloc(ATT, 0x61 + (i % 26)), b: Buffer.alloc(ATT, 0x41 + (i % 26)) });
        await waitUntil(() => members.every((m) => m.got.length > i || m.gone), { timeout: 15000, what: `event ${i} at every member` });
      }
      const ms = performance.now() - t0;
      const m1 = await metrics(own);
      const drops = m1.get('roomcast_slow_consumer_drops_total') - m0.get('roomcast_slow_consumer_drops_total');
      // The node closed that session: once the client reads again, it finds the end of the stream.
      stuck.conn.sock.resume();
      const closedMs = await stuck.conn.waitClosed(8000).catch(() => null);
      stuck.destroy();
      stats.attachments = { events: N, bytesPerEvent: 2 * ATT, ms: round(ms), drops };
      t.diagnostic(`${N} events of 2 x ${ATT} B to 4 members (3 WebSocket, 1 polling) and one that never reads: ` +
        `delivered in ${ms.toFixed(0)} ms; slow-consumer drops ${drops}`);
      for (const m of members) {
        assert.equal(m.gone, null, `${m.sub} was disconnected (${m.gone})`);
        assert.equal(m.got.length, N, `${m.sub} got ${m.got.length} of ${N}`);
        for (const [i, d] of m.got.entries()) {
          assert.equal(d.i, i);
          assert.ok(Buffer.isBuffer(d.a) && d.a.length === ATT && d.a[0] === 0x61 + (i % 26), `${m.sub} event ${i}: attachment a`);
          assert.ok(Buffer.isBuffer(d.b) && d.b.length === ATT && d.b[ATT - 1] === 0x41 + (i % 26), `${m.sub} event ${i}: attachment b`);
        }
      }
      assert.notEqual(closedMs, null, 'the member that never reads was dropped');
      assert.equal(drops, 1, 'one slow-consumer drop: the member that never reads');
      for (const m of members) m.s.disconnect();
      sender.disconnect();
    } finally {
      closeClients();
      await own.stop();
    }
  });

  it('a polling client that pipelines GETs and never reads, in a flooded room, is capped and dropped too', {
    ...T,
      }, async (t) => {
    const hs = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling');
    const { sid } = JSON.parse(hs.body.slice(1));
    const url = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const post = (body) => httpRequest(node, 'POST', url, { headers: { 'Content-Type': 'text/plain' }, body });
    await post(`40${JSON.stringify({ token: token({ sub: 'poll-never-reads' }) })}`);
    await httpRequest(node, 'GET', url);
    await post('421["join","hot-poll"]');
    await httpRequest(node, 'GET', url);
    const c = await RawConn.open(node.port);
    c.pause();
    c.write(Buffer.concat(Array(4000).fill(Buffer.from(`GET ${url} HTTP/1.1\r\nHost: x\r\n\r\n`))));
    await sleep(200);
    const m0 = await metrics(node);
    const rss0 = procRssMb(node.child.pid);
    const flood = spawnFlooder(['publish', node.port, API_KEY, 'hot-poll', 8192, 3000, 4, 3000]);
    let peak = rss0;
    let finished = false;
    flood.done.then(() => { finished = true; }, () => { finished = true; });
    while (!finished) {
      peak = Math.max(peak, procRssMb(node.child.pid));
      await sleep(100);
    }
    const pub = await flood.done;
    const m1 = await metrics(node);
    const drops = m1.get('roomcast_slow_consumer_drops_total') - m0.get('roomcast_slow_consumer_drops_total');
    c.destroy();
    t.diagnostic(`${pub.accepted} publishes of 8 KiB (${((pub.accepted * 8192) / 1048576).toFixed(0)} MB) to the room of a ` +
      `polling client that never reads: RSS ${rss0.toFixed(0)} -> ${peak.toFixed(0)} MB peak, ${drops} slow-consumer drops`);
    assert.ok(drops >= 1, 'the polling client was not dropped');
    assert.ok(peak - rss0 < 64, `RSS grew by ${(peak - rss0).toFixed(0)} MB`);
  });

  it('Engine.IO sessions count against limits.maxConnections (handshakes on one keep-alive connection)', T, async (t) => {
    // Its own node: the sessions it opens stay until engine.connectTimeout and would hold the
    // shared node's cap for the tests after it.
    const own = await startNode({ config: 'hostile_flood.json', env: ASAN_ENV });
    try {
      const N = 1000; // maxConnections is 400 in this config
      const c = await RawConn.open(own.port);
      c.write(Buffer.concat(Array(N).fill(Buffer.from('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n'))));
      await c.until((x) => (x.text().match(/HTTP\/1\.1 \d+/g) || []).length >= N || x.isClosed, 4000, `${N} answers`).catch(() => {});
      const opened = (c.text().match(/HTTP\/1\.1 200/g) || []).length;
      c.destroy();
      const sessions = sumFamily(await metrics(own), 'roomcast_eio_sessions');
      t.diagnostic(`${N} pipelined polling handshakes on one connection: ${opened} sessions opened (${sessions} live)`);
      assert.ok(sessions <= 400, `${sessions} Engine.IO sessions live with limits.maxConnections = 400`);
    } finally {
      await own.stop();
    }
  });

  // Issue 15, finding 1. One peer (127.0.0.2) pipelines polling handshakes that never connect a
  // namespace, on several keep-alive connections reopened as soon as the node closes them, while
  // official clients from another address (127.0.0.1) connect (polling first, then the upgrade),
  // join a room and talk. With a node-wide session cap only, the flood took every slot and every
  // new client was refused until engine.connectTimeout; now the peer's pending sessions are
  // capped per connection (8) and per address (128) with 429s, and the others get in.
  it('a flood of handshakes that never connect, from one peer: legitimate clients still connect and join (time to connect measured)', T, async (t) => {
    const own = await startNode({ config: 'hostile_flood.json', env: ASAN_ENV, overrides: { limits: { maxConnections: 2000 } } });
    const CLIENTS = 12;
    const connectOne = async (i, tag) => {
      const t0 = performance.now();
      const s = await connect(own.url, { auth: { token: token({ sub: `${tag}-${i}` }) }, timeout: 8000 });
      const connectedMs = performance.now() - t0;
      const joined = await emitAckWithin(8000, s, 'join', 'lobby');
      return { s, connectedMs, joinedMs: performance.now() - t0, joined };
    };
    try {
      const base = [];
      for (let i = 0; i < 4; i++) base.push(await connectOne(i, 'before'));
      const m0 = await metrics(own);
      const flood = spawnPendingFlood([own.port, '127.0.0.2', 6000, 4, 2500, 200000]);
      await sleep(1000); // the flood is under way
      const during = [];
      const problems = [];
      for (let i = 0; i < CLIENTS; i++) {
        try {
          during.push(await connectOne(i, 'during'));
        } catch (e) {
          problems.push(`client ${i}: ${e.message}`);
        }
        await sleep(200);
      }
      const mid = await metrics(own);
      // The clients that got in can talk to each other in their room.
      if (during.length >= 2) {
        const got = new Promise((resolve) => during[1].s.once('say', resolve));
        during[0].s.emit('say', { room: 'lobby', text: 'hello' });
        assert.deepEqual(await got, { room: 'lobby', text: 'hello' });
      }
      const result = await flood.done;
      const m1 = await metrics(own);
      const refused = (k) => (m1.get(`roomcast_eio_pending_refused_total{limit="${k}"}`) || 0) -
        (m0.get(`roomcast_eio_pending_refused_total{limit="${k}"}`) || 0);
      const b = summary(base.map((x) => x.connectedMs));
      const d = summary(during.map((x) => x.connectedMs));
      const dj = summary(during.map((x) => x.joinedMs));
      stats.pendingFlood = {
        flood: result, timeToConnectBefore: b, timeToConnectDuring: d, timeToJoinDuring: dj,
        refusedPerConnection: refused('connection'), refusedPerAddress: refused('address'),
        pendingDuring: mid.get('roomcast_eio_sessions_pending'), sessionsDuring: mid.get('roomcast_eio_sessions'),
      };
      t.diagnostic(`flood from 127.0.0.2: ${result.written} handshakes written in ${result.ms} ms on ${result.opened} ` +
        `connections (${result.closedByNode} closed by the node); answers ${JSON.stringify(result.statuses)}; ` +
        `first refusal: ${result.firstRefusal}`);
      t.diagnostic(`refused: ${refused('connection')} per connection, ${refused('address')} per address; during the flood ` +
        `${mid.get('roomcast_eio_sessions_pending')} pending of ${mid.get('roomcast_eio_sessions')} sessions`);
      t.diagnostic(`time to connect (polling handshake + upgrade + CONNECT): before the flood ${fmt(b)}; during it ${fmt(d)}; ` +
        `connect + join during it ${fmt(dj)}`);
      assert.deepEqual(problems, [], 'every legitimate client connected and joined during the flood');
      assert.ok(during.every((x) => x.joined[0] && x.joined[0].ok), 'every join acknowledged');
      assert.ok((result.statuses['429'] || 0) > 0, 'the flooder was refused with 429');
      assert.match(result.firstRefusal, /^HTTP\/1\.1 429 .*Too many unconnected sessions/);
      // Its sessions expire at engine.connectTimeout (5 s here), then it may open 128 again.
      assert.ok(mid.get('roomcast_eio_sessions_pending') <= 128, `${mid.get('roomcast_eio_sessions_pending')} pending sessions`);
      assert.ok((result.statuses['200'] || 0) <= 128 * Math.ceil(result.ms / 5000), `the flooder opened ${result.statuses['200']} sessions`);
      for (const x of [...base, ...during]) x.s.disconnect();
    } finally {
      closeClients();
      await own.stop();
    }
  });

  it('one socket cannot hold an unbounded number of rooms', {
    ...T,
      }, async (t) => {
    const ws = await sioConnect(node.port, token({ sub: 'room-hog' }), { ns: '/open' }); // no rate limit there
    const N = 20000;
    const B = 1000; // in batches, so the acks stay under limits.maxOutboundBytes
    let acks = 0;
    let refused = 0;
    for (let i = 0; i < N && !ws.isClosed; i += B) {
      ws.send(Buffer.concat(Array.from({ length: B }, (_, k) => frame({ opcode: OP.TEXT, payload: `42/open,${i + k}["join","hog-${i + k}"]` }))));
      await ws.conn.until(() => ws.texts().filter((m) => m.startsWith('43/open,')).length >= B, 10000, `${B} join acks`);
      const got = ws.texts().filter((m) => m.startsWith('43/open,'));
      acks += got.length;
      refused += got.filter((m) => m.includes('"ok":false')).length;
      ws.frames.length = 0;
      ws.consumed = 0;
    }
    ws.destroy();
    t.diagnostic(`${acks} joins from one socket: ${refused} refused`);
    assert.ok(refused > 0, `all ${N} joins accepted`);
  });

  it('a connection flood past limits.maxConnections: excess connections are refused, existing clients keep working', T, async (t) => {
    const pairs = await makePairs(node, 'cf', 4);
    const m0 = await metrics(node);
    const rss0 = await rssMb(node);
    const flood = spawnFlooder(['connections', node.port, 600, PHASE_MS]);
    await sleep(300);
    const during = await measure(pairs, PHASE_MS - 500);
    const result = await flood.done;
    // The node frees the slots as the flood's sockets close.
    await waitUntil(async () => (await httpRequest(node, 'GET', '/healthz').then((r) => r.status, () => 0)) === 200,
      { timeout: 5000, what: '/healthz answers again' });
    const m1 = await metrics(node);
    const rejected = m1.get('roomcast_connections_rejected_total') - m0.get('roomcast_connections_rejected_total');
    const s = await connect(node.url, { auth: { token: token({ sub: 'after-flood' }) }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(s, 'ping'), ['pong']);
    const d = summary(during.lat);
    stats.connectionFlood = { opened: result.opened, refusedSeen: result.refused, rejected, during: d, rssBeforeMb: round(rss0, 1), rssAfterMb: round(await rssMb(node), 1) };
    t.diagnostic(`connection flood: ${result.opened} connections opened in ${result.ms} ms, ${rejected} refused at the limit ` +
      `(roomcast_connections_rejected_total); existing clients meanwhile: ${fmt(d)}`);
    assert.ok(rejected > 0, 'some connections were refused at limits.maxConnections');
    assert.ok(result.opened > 600, `only ${result.opened} connections opened`);
    assert.equal(during.got, during.sent, 'the existing clients got every relay during the flood');
    for (const p of pairs) { p.a.disconnect(); p.b.disconnect(); }
    s.disconnect();
  });

  it('file-descriptor exhaustion: accept errors back off (no spinning), existing clients keep working, serving resumes', T, async (t) => {
    const prlimit = spawnSync('sh', ['-c', 'command -v prlimit'], { encoding: 'utf8' }).stdout.trim();
    if (!prlimit) { t.skip('prlimit (util-linux) not installed'); return; }
    const fdNode = await startNode({ config: 'hostile_flood.json', env: ASAN_ENV, overrides: { http: { headerTimeout: 5000 } } });
    try {
      const pid = fdNode.child.pid;
      const pair = (await makePairs(fdNode, 'fd', 1))[0];
      const LIMIT = 64;
      const r = spawnSync(prlimit, ['--pid', String(pid), `--nofile=${LIMIT}:${LIMIT}`], { encoding: 'utf8' });
      assert.equal(r.status, 0, `prlimit: ${r.stderr}`);
      // Far more connections than descriptors: the kernel completes the handshakes (backlog),
      // the node runs out of descriptors in accept().
      const conns = await Promise.all(Array.from({ length: 150 }, () => RawConn.open(fdNode.port).catch(() => null)));
      await sleep(300);
      const fds = openFds(pid);
      const c0 = cpuTicks(pid);
      await sleep(1000);
      const ticks = cpuTicks(pid) - c0;
      // Existing clients still talk through the node while it cannot accept.
      const got = new Promise((resolve) => pair.b.once('say', resolve));
      pair.a.emit('say', { room: pair.room, t: performance.now() });
      await got;
      const errors = (fdNode.stderr().match(/"event":"accept_error"/g) || []).length;
      for (const c of conns) if (c) c.destroy();
      await sleep(300);
      // Serving resumes: a new client connects and works.
      const s = await connect(fdNode.url, { auth: { token: token({ sub: 'after-fds' }) }, transports: ['websocket'] });
      assert.deepEqual(await emitAck(s, 'ping'), ['pong']);
      assert.equal((await httpRequest(fdNode, 'GET', '/healthz')).status, 200);
      s.disconnect();
      pair.a.disconnect();
      pair.b.disconnect();
      stats.fdExhaustion = { limit: LIMIT, fdsAtLimit: fds, cpuTicksPerSecondAtLimit: ticks, acceptErrorsLogged: errors };
      t.diagnostic(`RLIMIT_NOFILE ${LIMIT}: ${fds} descriptors open, ${ticks} CPU ticks in 1 s at the limit, ${errors} accept_error logs`);
      assert.ok(fds >= LIMIT - 2, `only ${fds} descriptors open: the limit was not reached`);
      assert.ok(errors >= 1, 'accept_error was logged');
      assert.ok(ticks < 30, `${ticks} CPU ticks (1/100 s) in one second at the descriptor limit: spinning`);
    } finally {
      closeClients();
      await fdNode.stop();
    }
  });
});
