'use strict';
// Chaos (issue 9): three nodes on one redis-server under continuous traffic while Redis is frozen
// for longer than the command timeout (SIGSTOP, then SIGCONT), while Redis is killed and
// restarted empty (SIGKILL), and while one node is killed in the middle of a broadcast.
//
// Traffic: relay senders on the nodes (Socket.IO 'chat' with an ack) and a backend publishing
// with POST /api/publish, each sending a numbered message every 40 ms to one room that has
// members on every node. Every member records what it receives.
//
// What is promised, and asserted:
//   - A message whose sender got a positive answer (relay ack {ok:true}, publish 202) while every
//     node was ready (/readyz 200, checked by this test before and after the fault) reaches every
//     live member of the room, on every node, exactly once.
//   - Per sender, members receive messages in the order they were sent, never twice.
//   - A message refused during the fault (ack {ok:false,error:"backplane_down"}, publish 503)
//     reaches no one, on any node, not even later.
//   - The nodes keep serving what does not need Redis (connects, acks, joins) while it is down,
//     no client is disconnected by a Redis fault, and all nodes are ready again soon after.
//   - When a node dies, the other nodes never stop being ready and lose nothing; what the dead
//     node had acknowledged before dying reaches the members on the other nodes; its clients
//     reconnect elsewhere and get everything sent after they joined again.
// What is not promised (measured and reported): a message accepted in the window between the
// fault and its detection (up to the canary/command timeouts, 2-3 s for a frozen Redis), or
// answered less than GUARD_MS before the fault (the answer does not wait for Redis), may be
// delivered only on the sender's node, or late; delivery through Redis is at most once.
//
// Harness: lib/node.js, lib/redis.js; config/chaos.json.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, emitAckWithin, publish, httpRequest, sleep,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { waitUntil } = require('./lib/hostile');

const T = { timeout: 60000 };
const ROOM = 'chaos';
const EVERY_MS = 40;
const GUARD_MS = 50; // answered less than this before a fault: in the window (not promised)

const readyz = (node) => httpRequest(node, 'GET', '/readyz', { timeout: 1000 }).then((r) => r.status, () => 0);

async function member(node, sub) {
  const s = client(node.url, { auth: { token: token({ sub }) }, transports: ['websocket'] });
  await connected(s);
  const [ack] = await emitAckWithin(5000, s, 'join', ROOM);
  assert.deepEqual(ack, { ok: true, room: ROOM });
  s.got = [];
  s.on('chat', (m) => s.got.push(m));
  s.disconnects = [];
  s.on('disconnect', (r) => s.disconnects.push(r));
  s.joinedAt = Date.now();
  return s;
}

// Continuous traffic from relay senders (sockets) and API publishers (nodes). Every message is
// recorded with the phase it was sent in and the answer it got.
class Traffic {
  constructor() {
    this.phase = 'before';
    this.records = [];
    this.running = false;
    this.loops = [];
  }

  relay(name, socket) { this.loops.push({ name, send: (seq) => this._relay(socket, name, seq), socket }); }
  api(name, nodeRef) { this.loops.push({ name, send: (seq) => this._api(nodeRef(), name, seq) }); }

  async _relay(socket, src, seq) {
    if (!socket.connected) return 'error: disconnected';
    try {
      const [ack] = await emitAckWithin(5000, socket, 'chat', { room: ROOM, src, seq });
      return ack.ok ? 'ok' : ack.error === 'backplane_down' ? 'refused' : `error: ${ack.error}`;
    } catch (e) {
      return `error: ${e.message}`;
    }
  }

  async _api(node, src, seq) {
    try {
      const res = await publish(node, { room: ROOM, event: 'chat', data: { src, seq } });
      return res.status === 202 ? 'ok' : res.status === 503 ? 'refused' : `error: ${res.status}`;
    } catch (e) {
      return `error: ${e.code || e.message}`;
    }
  }

  start() {
    this.running = true;
    this.done = Promise.all(this.loops.map(async (l) => {
      for (let seq = 1; this.running; seq++) {
        const rec = { src: l.name, seq, phase: this.phase, sentAt: Date.now(), sender: l.socket || null };
        this.records.push(rec);
        rec.status = await l.send(seq);
        rec.answeredAt = Date.now();
        await sleep(EVERY_MS);
      }
    }));
  }

  async stop() {
    this.running = false;
    await this.done;
  }
}

// Checks the promises above over the receivers; returns a report of the window that is not promised.
function analyze(traffic, receivers, { promised }) {
  const problems = [];
  const seenBy = new Map(); // "src:seq" -> Set of receiver names
  for (const [name, s] of Object.entries(receivers)) {
    const last = new Map();
    for (const m of s.got) {
      const key = `${m.src}:${m.seq}`;
      if (!seenBy.has(key)) seenBy.set(key, new Set());
      if (seenBy.get(key).has(name)) problems.push(`${name} got ${key} twice`);
      seenBy.get(key).add(name);
      if ((last.get(m.src) || 0) >= m.seq) problems.push(`${name} got ${key} after ${m.src}:${last.get(m.src)}`);
      last.set(m.src, m.seq);
    }
  }
  const report = { sent: {}, window: { ok: 0, full: 0, partial: 0, lost: 0 }, refused: 0, errors: 0 };
  for (const r of traffic.records) {
    if (r.status === undefined) continue;
    report.sent[r.phase] = (report.sent[r.phase] || 0) + 1;
    const key = `${r.src}:${r.seq}`;
    const seen = seenBy.get(key) || new Set();
    const want = Object.keys(receivers).filter((n) => receivers[n] !== r.sender && promised(n, r));
    if (r.status === 'refused') {
      report.refused++;
      if (seen.size) problems.push(`${key} was refused but reached ${[...seen].join(',')}`);
    } else if (r.status === 'ok' && r.phase === 'fault') {
      const all = Object.keys(receivers).filter((n) => receivers[n] !== r.sender && receivers[n].joinedAt <= r.sentAt);
      report.window.ok++;
      const n = all.filter((x) => seen.has(x)).length;
      if (n === all.length) report.window.full++;
      else if (n === 0) report.window.lost++;
      else report.window.partial++;
    } else if (r.status === 'ok') {
      const missing = want.filter((n) => !seen.has(n));
      if (missing.length) {
        const rel = traffic.faultAt ? ` answered ${r.answeredAt - traffic.faultAt} ms after the fault` : '';
        problems.push(`${key} (${r.phase}, acked ok${rel}) missing at ${missing.join(',')}`);
      }
    } else {
      report.errors++;
    }
  }
  return { problems: problems.slice(0, 20), problemCount: problems.length, report };
}

describe('chaos: three nodes, one Redis, continuous traffic', () => {
  let redis;
  let nodes = [];
  let A; let B; let C;
  const tag = `x${process.pid}`;
  const stats = {};

  const allReady = async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200);

  before(async () => {
    redis = await startRedis();
    const started = await Promise.allSettled(['a', 'b', 'c'].map((x) =>
      startNode({ config: 'chaos.json', nodeId: `${tag}-${x}`, args: ['--redis', redis.url] })));
    nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    [A, B, C] = nodes;
    await waitUntil(allReady, { timeout: 10000, what: 'every node ready' });
  });

  afterEach(async () => {
    closeClients();
    if (redis) redis.thaw();
    if (redis && !redis.running) await redis.restart();
    await sleep(200);
    for (const n of nodes) {
      n.assertNoSanitizerReport();
      n.assertAlive();
    }
    if (nodes.length) await waitUntil(allReady, { timeout: 15000, what: 'every node ready again' });
  });

  after(async () => {
    closeClients();
    const stopped = await Promise.allSettled(nodes.map((n) => n.stop()));
    if (redis) await redis.stop();
    console.log(`# chaos stats ${JSON.stringify(stats)}`);
    const failed = stopped.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });

  // Members on every node, two relay senders (on A and B) and a backend publishing through C.
  async function setup(prefix) {
    const receivers = {
      a1: await member(A, `${prefix}-a1`), a2: await member(A, `${prefix}-a2`),
      b1: await member(B, `${prefix}-b1`), b2: await member(B, `${prefix}-b2`),
      c1: await member(C, `${prefix}-c1`), c2: await member(C, `${prefix}-c2`),
    };
    receivers.sa = await member(A, `${prefix}-sa`);
    receivers.sb = await member(B, `${prefix}-sb`);
    await waitUntil(async () => Number((await redis.command('PUBSUB', 'NUMSUB', `roomcast:room:/:${ROOM}`))[1]) === 3,
      { what: 'the room subscribed on the three nodes' });
    const traffic = new Traffic();
    traffic.relay('sa', receivers.sa);
    traffic.relay('sb', receivers.sb);
    traffic.api('api', () => C);
    return { receivers, traffic };
  }

  // Runs the traffic around a fault: `inject` starts it, `heal` ends it; the phase is 'after'
  // from the moment every node is seen ready again.
  async function around(traffic, { inject, heal, faultMs }) {
    traffic.start();
    await sleep(1000);
    const t0 = Date.now();
    traffic.phase = 'fault';
    traffic.faultAt = t0;
    await inject();
    let downMs = null;
    // While Redis is unreachable the nodes notice it (readiness 503) and keep serving locally.
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 503),
      { timeout: 6000, interval: 25, what: 'every node /readyz 503' });
    downMs = Date.now() - t0;
    const local = client(A.url, { auth: { token: token({ sub: 'during-fault' }) }, transports: ['websocket'] });
    await connected(local);
    assert.deepEqual(await emitAckWithin(3000, local, 'ping'), ['pong'], 'a local ack works while Redis is down');
    assert.deepEqual(await emitAckWithin(3000, local, 'join', 'joined-while-down'), [{ ok: true, room: 'joined-while-down' }]);
    local.disconnect();
    await sleep(Math.max(0, faultMs - (Date.now() - t0)));
    const tHeal = Date.now();
    await heal();
    await waitUntil(allReady, { timeout: 15000, interval: 25, what: 'every node ready after the fault' });
    const upMs = Date.now() - tHeal;
    traffic.phase = 'after';
    await sleep(1500);
    await traffic.stop();
    // A message answered just before the fault may still have been on its way to Redis (the
    // answer does not wait for Redis): it belongs to the window, not to "before".
    for (const r of traffic.records) {
      if (r.phase === 'before' && r.answeredAt > t0 - GUARD_MS) r.phase = 'fault';
    }
    return { downMs, upMs };
  }

  async function settleDeliveries(traffic, receivers, promised) {
    await waitUntil(() => analyze(traffic, receivers, { promised }).problemCount === 0, { timeout: 5000 }).catch(() => {});
    await sleep(300);
  }

  it('Redis frozen (SIGSTOP) for 4.5 s, longer than the 3 s command timeout, then SIGCONT', T, async (t) => {
    const { receivers, traffic } = await setup('stop');
    const promised = () => true;
    const { downMs, upMs } = await around(traffic, {
      inject: async () => redis.freeze(),
      heal: async () => redis.thaw(),
      faultMs: 4500,
    });
    await settleDeliveries(traffic, receivers, promised);
    const { problems, report } = analyze(traffic, receivers, { promised });
    stats.sigstop = { downMs, upMs, ...report };
    t.diagnostic(`SIGSTOP: every node 503 within ${downMs} ms; ready ${upMs} ms after SIGCONT; ${JSON.stringify(report)}`);
    assert.deepEqual(problems, []);
    assert.ok(report.sent.after > 20 && report.sent.before > 20, JSON.stringify(report.sent));
    assert.ok(report.refused > 0, 'some messages were refused while Redis was frozen');
    for (const [n, s] of Object.entries(receivers)) assert.deepEqual(s.disconnects, [], `${n} was disconnected`);
  });

  it('Redis killed (SIGKILL) and restarted empty after 1.5 s', T, async (t) => {
    const { receivers, traffic } = await setup('kill');
    const promised = () => true;
    const { downMs, upMs } = await around(traffic, {
      inject: async () => redis.kill(),
      heal: async () => redis.restart(),
      faultMs: 1500,
    });
    await settleDeliveries(traffic, receivers, promised);
    const { problems, report } = analyze(traffic, receivers, { promised });
    stats.sigkill = { downMs, upMs, ...report };
    t.diagnostic(`SIGKILL: every node 503 within ${downMs} ms; ready ${upMs} ms after the restart; ${JSON.stringify(report)}`);
    assert.deepEqual(problems, []);
    assert.ok(report.sent.after > 20 && report.sent.before > 20, JSON.stringify(report.sent));
    assert.ok(report.refused > 0, 'some messages were refused while Redis was down');
    for (const [n, s] of Object.entries(receivers)) assert.deepEqual(s.disconnects, [], `${n} was disconnected`);
  });

  it('a node killed (SIGKILL) mid-broadcast: the others stay ready and lose nothing; its clients move and catch up', T, async (t) => {
    const { receivers, traffic } = await setup('node');
    // C also relays, so some messages are acknowledged by the node that dies.
    receivers.sc = await member(C, 'node-sc');
    traffic.relay('sc', receivers.sc);
    traffic.start();
    const readiness = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        readiness.push(...(await Promise.all([A, B].map(readyz))));
        await sleep(50);
      }
    })();
    await sleep(1500);
    const killedAt = Date.now();
    C.child.kill('SIGKILL');
    await C.exited;
    const dead = C;
    traffic.phase = 'after-kill';
    // The backend moves to a live node; C's clients reconnect to B and join again.
    traffic.loops.find((l) => l.name === 'api').send = (seq) => traffic._api(B, 'api', seq);
    await waitUntil(() => ['c1', 'c2', 'sc'].every((n) => receivers[n].disconnects.length > 0),
      { timeout: 5000, what: 'the dead node\'s clients see the disconnect' });
    receivers.c1moved = await member(B, 'node-c1');
    receivers.c2moved = await member(A, 'node-c2');
    await sleep(1500);
    // A replacement node with the same id comes up and serves.
    const C2 = await startNode({ config: 'chaos.json', nodeId: dead.nodeId, args: ['--redis', redis.url] });
    nodes = [A, B, C2];
    C = C2;
    await waitUntil(allReady, { timeout: 10000, what: 'the replacement node ready' });
    receivers.c3new = await member(C2, 'node-c3');
    await waitUntil(async () => Number((await redis.command('PUBSUB', 'NUMSUB', `roomcast:room:/:${ROOM}`))[1]) === 3,
      { what: 'the room subscribed on the three nodes again' });
    const c3From = Date.now();
    await sleep(1000);
    await traffic.stop();
    watching = false;
    await watcher;
    dead.assertNoSanitizerReport();

    const onDead = new Set(['c1', 'c2', 'sc']);
    // Live members: everything acked (by A, B, or by C before it died) from when they were in the
    // room; C's old sockets are not live after the kill; the new socket on C2 from when the room
    // was subscribed there again.
    // Answered by the node that died: promised only if answered GUARD_MS before the kill (its
    // answer does not wait for Redis).
    const fromDead = (r) => r.src === 'sc' || (r.src === 'api' && r.sentAt < killedAt);
    const promised = (n, r) => {
      if (fromDead(r) && r.answeredAt >= killedAt - GUARD_MS) return false;
      if (onDead.has(n)) return r.answeredAt < killedAt;
      if (n === 'c3new') return r.sentAt >= c3From;
      return r.sentAt >= receivers[n].joinedAt;
    };
    await settleDeliveries(traffic, receivers, promised);
    const { problems, report } = analyze(traffic, receivers, { promised: (n, r) => !onDead.has(n) && promised(n, r) });
    const ackedByDead = traffic.records.filter((r) => r.src === 'sc' && r.status === 'ok').length;
    const notReady = readiness.filter((s) => s !== 200).length;
    stats.nodeKill = { ...report, ackedByDeadNode: ackedByDead, survivorsNotReadySamples: notReady, readinessSamples: readiness.length };
    t.diagnostic(`node SIGKILL mid-broadcast: ${ackedByDead} messages acked by the dying node, all delivered to the ` +
      `other nodes' members; survivors /readyz non-200 in ${notReady}/${readiness.length} samples; ${JSON.stringify(report)}`);
    assert.deepEqual(problems, []);
    assert.equal(notReady, 0, 'a surviving node was not ready while another node died');
    assert.ok(ackedByDead > 10, `only ${ackedByDead} messages from the node that was killed`);
    for (const n of ['a1', 'a2', 'b1', 'b2', 'sa', 'sb']) assert.deepEqual(receivers[n].disconnects, [], `${n} was disconnected`);
  });
});
