'use strict';
// Operations: graceful drain on SIGTERM, as Kubernetes does it on a rolling update or scale-down.
// Clients on node A (socket.io-client with its own reconnection, given the list of node URLs the
// way a client behind a failing-over DNS name or load balancer sees them), node B beside it, both
// on one Redis. SIGTERM to A: /readyz answers 503 at once, A serves no new connection, its sockets
// are closed in batches spread over drain.grace, every client reconnects to B by itself, rejoins
// its room and receives events published on the cluster again; A exits 0 within the grace period.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const {
  startNode, client, connected, token, emitAck, waitFor, publishOk, closeClients, sleep,
} = require('./lib/node');
const { ensureServers, startRedis, waitUntil, metric, opsConfig } = require('./lib/ops');

const GRACE_MS = 2000;
const CLIENTS = 20;
const ROOM = 'drain-room';

// One HTTP/1.1 keep-alive connection, opened before the signal: the way a load balancer's health
// checker or Prometheus keeps talking to a node. Resolves each request with {status, body}.
function keepAliveConnection(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = '';
    let waiting = null;
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0 || !waiting) return;
      const len = Number((/content-length:\s*(\d+)/i.exec(buf.slice(0, end)) || [])[1] || 0);
      if (buf.length < end + 4 + len) return;
      const status = Number(buf.slice(9, 12));
      const body = buf.slice(end + 4, end + 4 + len);
      buf = buf.slice(end + 4 + len);
      const w = waiting;
      waiting = null;
      w.resolve({ status, body });
    });
    sock.on('error', (e) => { if (waiting) waiting.reject(e); else reject(e); });
    sock.on('connect', () => resolve({
      get: (p) => new Promise((res, rej) => {
        waiting = { resolve: res, reject: rej };
        sock.write(`GET ${p} HTTP/1.1\r\nHost: roomcast\r\n\r\n`);
        setTimeout(() => rej(new Error(`GET ${p}: no answer within 1000 ms`)), 1000).unref();
      }),
      close: () => sock.destroy(),
    }));
  });
}

// A brand-new TCP connection asking for /readyz: 'refused', 'unanswered' (accepted by the kernel
// but never served), or the status line.
function freshProbe(port, waitMs = 400) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => { sock.destroy(); resolve('unanswered'); }, waitMs);
    sock.on('connect', () => sock.write('GET /readyz HTTP/1.1\r\nHost: roomcast\r\nConnection: close\r\n\r\n'));
    sock.on('data', (d) => { clearTimeout(timer); sock.destroy(); resolve(d.toString('utf8').split('\r\n')[0]); });
    sock.on('error', (e) => { clearTimeout(timer); resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code); });
  });
}

// socket.io-client over a list of node URLs: each reconnection attempt moves to the next URL, so
// a client whose node went away lands on another one (its own backoff and jitter, no help from us).
function clusterClient(urls, opts) {
  const socket = client(urls[0], {
    reconnection: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 400,
    randomizationFactor: 0.5,
    timeout: 3000,
    ...opts,
  });
  let at = 0;
  socket.io.on('reconnect_attempt', () => {
    at = (at + 1) % urls.length;
    socket.io.uri = urls[at];
  });
  socket.currentUrl = () => socket.io.uri;
  return socket;
}

// redis-server, prometheus and nginx: installed when missing, before any test timeout runs
ensureServers();

// Members `<node>:<sid>` of the node's connections in every P:presence:<user> set (docs/redis.md).
async function presenceOf(redis, nodeId) {
  const keys = await redis.command('KEYS', 'roomcast:presence:*');
  const members = [];
  for (const k of keys) {
    const type = await redis.command('TYPE', k);
    if (type !== 'set') continue;
    for (const m of await redis.command('SMEMBERS', k)) if (m.startsWith(`${nodeId}:`)) members.push(m);
  }
  return members.sort();
}

describe('operations: drain on SIGTERM', { timeout: 60000 }, () => {
  let presenceBefore = null;
  let presenceAfter = null;
  let redis;
  let nodeA;
  let nodeB;

  before(async () => {
    redis = await startRedis();
    const config = opsConfig({ drainGrace: GRACE_MS });
    nodeA = await startNode({ config, args: ['--redis', redis.url] });
    nodeB = await startNode({ config, args: ['--redis', redis.url] });
  });

  after(async () => {
    closeClients();
    if (nodeA) await nodeA.stop();
    if (nodeB) await nodeB.stop();
    if (redis) await redis.stop();
  });

  test('clients move from A to B by themselves; A drains in batches and exits 0 within the grace', async (t) => {
    const urls = [nodeA.url, nodeB.url];
    const sockets = [];
    const joins = []; // every (re)connect rejoins the room, as an application does
    for (let i = 0; i < CLIENTS; i++) {
      // half start with the default transports (polling, then upgrade), half on websocket only
      const s = clusterClient(urls, {
        auth: { token: token({ sub: `user${i}`, rooms: [ROOM] }) },
        ...(i % 2 ? { transports: ['websocket'] } : {}),
      });
      s.disconnects = [];
      s.on('disconnect', (reason) => s.disconnects.push({ at: Date.now(), reason }));
      s.on('connect', () => {
        joins.push(emitAck(s, 'join', ROOM).then(([r]) => assert.deepEqual(r, { ok: true, room: ROOM })));
      });
      sockets.push(s);
    }
    await Promise.all(sockets.map((s) => connected(s, 10000)));
    await Promise.all(joins.splice(0));
    assert.equal(await metric(nodeA.port, 'roomcast_sockets{namespace="/"}'), CLIENTS);
    assert.equal(await metric(nodeB.port, 'roomcast_sockets{namespace="/"}'), 0);

    // Delivery works before the drain (published on B, delivered on A through Redis).
    await sleep(200);
    let got = Promise.all(sockets.map((s) => waitFor(s, 'news', 3000)));
    await publishOk(nodeB, { room: ROOM, event: 'news', data: { phase: 'before' } });
    assert.ok((await got).every((d) => d.phase === 'before'));

    presenceBefore = await presenceOf(redis, nodeA.nodeId);

    const probe = await keepAliveConnection(nodeA.port);
    assert.equal((await probe.get('/readyz')).status, 200);

    // ---- SIGTERM --------------------------------------------------------------------------
    const t0 = Date.now();
    nodeA.child.kill('SIGTERM');
    await sleep(10);
    const ready = await probe.get('/readyz');
    const readyAt = Date.now() - t0;
    assert.equal(ready.status, 503, `/readyz right after SIGTERM: ${ready.status} ${ready.body}`);
    assert.equal(ready.body.trim(), 'draining');
    assert.ok(readyAt < 500, `/readyz went 503 ${readyAt} ms after SIGTERM`);
    const m = await probe.get('/metrics');
    assert.match(m.body, /^roomcast_draining 1$/m);
    assert.match(m.body, /^roomcast_ready 0$/m);

    // No new client is served by A any more (the listener stops accepting).
    const fresh = await freshProbe(nodeA.port);
    assert.ok(['refused', 'unanswered'].includes(fresh), `a new connection to draining A got: ${fresh}`);

    // Every client reconnects to B by itself and rejoins its room.
    await waitUntil(async () => sockets.every((s) => s.connected && s.currentUrl() === nodeB.url),
      { timeout: GRACE_MS + 8000, interval: 50, what: 'every client connected to B' });
    await Promise.all(joins.splice(0));
    let deadline;
    const exit = await Promise.race([nodeA.exited,
      new Promise((resolve) => { deadline = setTimeout(() => resolve(null), GRACE_MS + 3000); })]);
    clearTimeout(deadline);
    const exitedAt = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null }, `A did not exit 0 in time: ${JSON.stringify(exit)}`);
    // the grace is the budget for closing sockets; allow the ASan build's teardown on top
    assert.ok(exitedAt <= GRACE_MS + 1000, `A exited ${exitedAt} ms after SIGTERM (grace ${GRACE_MS} ms)`);
    await nodeA.stop(); // exit code 0 and no sanitizer report
    presenceAfter = await presenceOf(redis, nodeA.nodeId);

    // Staged drain: sockets were closed in batches across the grace period, not all at once,
    // and each client saw a transport close (which socket.io-client answers by reconnecting).
    const firstDisconnects = sockets.map((s) => s.disconnects[0]);
    assert.ok(firstDisconnects.every((d) => d && d.reason === 'transport close'),
      `disconnect reasons: ${JSON.stringify(firstDisconnects.map((d) => d && d.reason))}`);
    const times = firstDisconnects.map((d) => d.at - t0).sort((a, b) => a - b);
    const spread = times[times.length - 1] - times[0];
    assert.ok(spread >= GRACE_MS * 0.6, `disconnects spread over ${spread} ms (${times.join(',')}), expected most of ${GRACE_MS} ms`);
    assert.ok(times[times.length - 1] <= GRACE_MS + 500, `last disconnect at ${times[times.length - 1]} ms`);
    const distinctBatches = new Set(times.map((x) => Math.round(x / (GRACE_MS / 10)))).size;
    assert.ok(distinctBatches >= 5, `disconnects fell in ${distinctBatches} batches: ${times.join(',')}`);
    t.diagnostic(`readyz 503 ${readyAt} ms after SIGTERM; new connection: ${fresh}; disconnects at ${times.join(',')} ms ` +
      `(${distinctBatches} batches); A exited 0 after ${exitedAt} ms (grace ${GRACE_MS} ms)`);

    // B holds them all now, and cluster delivery reaches them (API publish on B, and a backend
    // publishing on Redis directly).
    assert.equal(await metric(nodeB.port, 'roomcast_sockets{namespace="/"}'), CLIENTS);
    await sleep(100);
    got = Promise.all(sockets.map((s) => waitFor(s, 'news', 3000)));
    await publishOk(nodeB, { room: ROOM, event: 'news', data: { phase: 'after' } });
    assert.ok((await got).every((d) => d.phase === 'after'));
    got = Promise.all(sockets.map((s) => waitFor(s, 'from_backend', 3000)));
    const receivers = await redis.command('PUBLISH', `roomcast:room:/:${ROOM}`,
      JSON.stringify({ event: 'from_backend', data: { ok: true } }));
    assert.ok(receivers >= 1, 'node B subscribes to the room channel');
    assert.ok((await got).every((d) => d.ok === true));
    probe.close();
  });

  // docs/operations.md, drain: "presence entries removed". The node does not write presence yet
  // (src/presence.c is not wired into the node): while no roomcast:presence:* entry of A shows up
  // with its clients connected, this test skips itself; once presence lands it asserts for real.
  test('A\'s presence entries are gone after the drain', (t) => {
    if (!presenceBefore || presenceBefore.length === 0) {
      t.skip('presence is not implemented yet: no roomcast:presence:* entry of node A while its clients were connected');
      return;
    }
    assert.equal(presenceBefore.length, CLIENTS, `A's presence entries before the drain: ${presenceBefore}`);
    assert.deepEqual(presenceAfter, [], 'A left presence entries behind');
  });
});
