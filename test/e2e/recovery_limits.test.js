'use strict';
// Connection state recovery, its limits and holes (docs/recovery.md), with the official
// socket.io-client behind a TCP proxy the tests cut (lib/recovery.js), on two roomcast nodes that
// also speak Socket.IO's Redis formats (socketio.prefix):
// - recovery.maxRecoveriesPerMinute: a user whose budget is 2 recovers twice, the third cut gives a
//   fresh session counted as rate_limited, while another user recovering at the same time is
//   unaffected;
// - a broadcast of the real @socket.io/redis-emitter to a kept room reaches sockets without an
//   offset: it leaves a gap mark, so a client cut meanwhile gets a fresh session, never a replay
//   silently without it;
// - Redis refusing writes (-NOREPLICAS: min-replicas-to-write without replicas): a backend's plain
//   PUBLISH with an id, which the nodes ask the keep script to keep, is delivered live by each node
//   that heard it, and its gap mark is written once Redis accepts writes again, so the client cut
//   meanwhile gets a fresh session; then keeping works again.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Emitter } = require('@socket.io/redis-emitter');
const Redis = require('ioredis');
const { startNode, publishOk, sleep, waitUntil, metric, readyz } = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { Proxy, cutOver, connectVia, closeClients, onceConnected, nextConnect, record, join } = require('./lib/recovery');

const T = { timeout: 90000 };
const P = 'roomcast';
const RC = 'rc.io'; // the nodes' socketio.prefix

async function gapMarks(redis, room) {
  const r = await redis.command('XRANGE', `${P}:history:/`, '-', '+');
  return r.filter(([, f]) => f.includes('g') && f[f.indexOf('r') + 1] === room).length;
}
const rateLimited = async (node) => (await metric(node, 'roomcast_recovery_attempts_total{result="rate_limited"}')) || 0;

describe('recovery limits', () => {
  let redis; let A; let B;
  const nodes = [];
  const proxies = [];
  async function proxyTo(port) {
    const p = new Proxy(port);
    proxies.push(p);
    return { proxy: p, url: `http://127.0.0.1:${await p.listen()}` };
  }

  before(async () => {
    redis = await startRedis();
    const tag = `rl${process.pid}`;
    for (const x of ['a', 'b']) {
      nodes.push(await startNode({
        config: 'recovery_limits.json', nodeId: `${tag}-${x}`, args: ['--redis', redis.url],
        env: { ROOMCAST_SOCKETIO_PREFIX: RC },
      }));
    }
    [A, B] = nodes;
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 10000, what: 'both nodes ready' });
    // both are recovery listeners (docs/recovery.md, "Listeners") before any client gets an offset
    for (const n of nodes) {
      await waitUntil(async () => (await metric(n, 'roomcast_recovery_listening')) === 1, { timeout: 15000, what: 'listening' });
    }
  });

  after(async () => {
    closeClients();
    for (const p of proxies) await p.close();
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  it('maxRecoveriesPerMinute 2: two recoveries, the third is a fresh session (rate_limited); a bystander recovers', T, async () => {
    const px = await proxyTo(A.port);
    const py = await proxyTo(A.port);
    const x = connectVia(px.url, 'ulimited');
    const y = connectVia(py.url, 'ubystander');
    await Promise.all([onceConnected(x), onceConnected(y)]);
    await join(x, 'lim-x');
    await join(y, 'lim-y');
    const gx = record(x);
    const gy = record(y);
    let seq = 0;
    await publishOk(A, { room: 'lim-x', event: 'e', data: { seq: ++seq } });
    await publishOk(A, { room: 'lim-y', event: 'e', data: { seq: seq } });
    await waitUntil(() => gx.length === 1 && gy.length === 1, { timeout: 10000, what: 'the first events' });
    const sid = x.id;
    // two recoveries within the budget, one on each node
    for (const to of [B, A]) {
      await cutOver(px.proxy, x, to.port);
      const back = nextConnect(x);
      await publishOk(to, { room: 'lim-x', event: 'e', data: { seq: ++seq } });
      px.proxy.release();
      await back;
      assert.equal(x.recovered, true, `recovery ${seq - 1} of 2`);
      assert.equal(x.id, sid);
      await waitUntil(() => gx.length === seq, { timeout: 10000, what: `event ${seq} replayed` });
    }
    // the third, while the bystander (another user, its first recovery) is cut too
    const before = await rateLimited(B);
    await Promise.all([cutOver(px.proxy, x, B.port), cutOver(py.proxy, y, B.port)]);
    const backX = nextConnect(x);
    const backY = nextConnect(y);
    await publishOk(A, { room: 'lim-x', event: 'e', data: { seq: ++seq } });
    await publishOk(A, { room: 'lim-y', event: 'e', data: { seq: 2 } });
    px.proxy.release();
    py.proxy.release();
    await Promise.all([backX, backY]);
    assert.equal(x.recovered, false, 'over the budget: a fresh session');
    assert.notEqual(x.id, sid);
    assert.equal(y.recovered, true, 'the bystander recovers');
    await waitUntil(() => gy.length === 2, { timeout: 10000, what: "the bystander's missed event" });
    assert.deepEqual(gy.map((e) => e.args[0].seq), [1, 2]);
    assert.equal(await rateLimited(B), before + 1);
    const ttl = await redis.command('PTTL', `${P}:recoveries:/:u:ulimited`);
    assert.ok(ttl > 0 && ttl <= 60000, `the budget's counter expires within a minute (${ttl})`);
    x.close(); y.close();
  });

  it('an anonymous socket (no user) is budgeted by its pid: maxRecoveriesPerMinute 1 on /anon', T, async () => {
    const px = await proxyTo(A.port);
    const x = connectVia(px.url, null, '/anon');
    await onceConnected(x);
    await join(x, 'an-1');
    const got = record(x);
    await publishOk(A, { ns: '/anon', room: 'an-1', event: 'e', data: { seq: 1 } });
    await waitUntil(() => got.length === 1, { timeout: 10000, what: 'the first event' });
    const pid = x._pid;
    const sid = x.id;
    await cutOver(px.proxy, x, B.port);
    let back = nextConnect(x);
    px.proxy.release();
    await back;
    assert.equal(x.recovered, true, 'the first recovery');
    assert.equal(x.id, sid);
    const before = await rateLimited(A);
    await cutOver(px.proxy, x, A.port);
    back = nextConnect(x);
    px.proxy.release();
    await back;
    assert.equal(x.recovered, false, 'the second in the minute: a fresh session');
    assert.equal(await rateLimited(A), before + 1);
    assert.equal(await redis.command('GET', `${P}:recoveries:/anon:p:${pid}`), '2');
    x.close();
  });

  it("an emitter's broadcast to a kept room leaves a gap mark: a client cut meanwhile gets a fresh session", T, async () => {
    const px = await proxyTo(A.port);
    const x = connectVia(px.url, 'uemitted');
    await onceConnected(x);
    await join(x, 'em-1'); // its only member: A keeps hearing the room while x is away
    const got = record(x);
    await publishOk(B, { room: 'em-1', event: 'e', data: { seq: 1 } });
    await waitUntil(() => got.length === 1, { timeout: 10000, what: 'the first event' });
    const sid = x.id;
    const holds = (await metric(A, 'roomcast_recovery_holds_total')) || 0;
    await cutOver(px.proxy, x, B.port);
    await waitUntil(async () => (await metric(A, 'roomcast_recovery_holds_total')) === holds + 1,
      { timeout: 10000, what: "A holds the away client's rooms" });
    const back = nextConnect(x);
    const pub = new Redis(redis.url);
    try {
      new Emitter(pub, { key: RC }).to('em-1').emit('news', { n: 1 });
      // a volatile broadcast is not kept anyway: no mark
      new Emitter(pub, { key: RC }).to('em-1').volatile.emit('typing', { n: 2 });
      // the mark is written a moment after A hears the broadcast (without it, none ever comes)
      await waitUntil(async () => (await gapMarks(redis, 'em-1')) >= 3, { timeout: 5000 }).catch(() => {});
    } finally {
      pub.disconnect();
    }
    px.proxy.release();
    await back;
    assert.equal(x.recovered, false, 'not a replay without the emitted event');
    assert.notEqual(x.id, sid);
    assert.equal(await gapMarks(redis, 'em-1'), 3,
      'three marks: A holding the room and the two listeners (A and B) overhearing it; the volatile broadcast left none');
    x.close();
  });

  it('Redis refusing writes: a plain PUBLISH with an id reaches members live, the cut client gets a fresh session; then keeping works again', T, async () => {
    const px = await proxyTo(A.port);
    const x = connectVia(px.url, 'ukeepfail');
    await onceConnected(x);
    await join(x, 'kf-1'); // its only member on A: A holds the room while x is away
    const y = connectVia(B.url, 'ukeepfail-y');
    await onceConnected(y);
    await join(y, 'kf-1');
    const gx = record(x);
    const gy = record(y);
    await publishOk(A, { room: 'kf-1', event: 'e', data: { seq: 1 } });
    await waitUntil(() => gx.length === 1 && gy.length === 1, { timeout: 10000, what: 'the first event' });
    const sid = x.id;
    const holds = (await metric(A, 'roomcast_recovery_holds_total')) || 0;
    await cutOver(px.proxy, x, B.port);
    await waitUntil(async () => (await metric(A, 'roomcast_recovery_holds_total')) === holds + 1,
      { timeout: 10000, what: "A holds the away client's rooms" });
    const back = nextConnect(x);
    const failed = async () => {
      let sum = 0;
      for (const n of [A, B]) sum += (await metric(n, 'roomcast_recovery_kept_heard_failed_total')) || 0;
      return sum;
    };
    const failedBefore = await failed();
    // a master without replicas refuses every write now (-NOREPLICAS): the keep script and gap marks
    await redis.command('CONFIG', 'SET', 'min-replicas-to-write', '1');
    try {
      const heard = await redis.command('PUBLISH', `${P}:room:/:kf-1`,
        JSON.stringify({ event: 'plain', data: { seq: 2 }, id: 'kf-2' }));
      assert.equal(heard, 4, 'A (holding the room) and B (y) hear it, and both overhear it as listeners');
      await waitUntil(() => gy.length === 2, { timeout: 10000, what: 'the plain PUBLISH delivered live to y' });
      assert.deepEqual(gy[1], { event: 'plain', args: [{ seq: 2 }] }, 'as heard: no offset');
      // four asks refused: each node's for its room channel and its listener's (which delivers nothing)
      await waitUntil(async () => (await failed()) === failedBefore + 4,
        { timeout: 10000, what: 'both nodes saw the keep script refused' });
      assert.ok((await metric(A, 'roomcast_recovery_gaps_pending')) >= 1, "A's mark waits for Redis");
      assert.equal(await gapMarks(redis, 'kf-1'), 0, 'no mark could be written yet');
    } finally {
      await redis.command('CONFIG', 'SET', 'min-replicas-to-write', '0');
    }
    await waitUntil(async () => (await gapMarks(redis, 'kf-1')) >= 1,
      { timeout: 15000, what: 'the gap mark written once Redis accepts writes again' });
    await waitUntil(async () => (await metric(A, 'roomcast_recovery_gaps_pending')) === 0
      && (await metric(B, 'roomcast_recovery_gaps_pending')) === 0, { timeout: 15000, what: 'no mark pending' });
    px.proxy.release();
    await back;
    assert.equal(x.recovered, false, 'a fresh session, not a replay without seq 2');
    assert.notEqual(x.id, sid);
    assert.equal(gy.length, 2, 'y got seq 2 once');
    // writes accepted again: a plain PUBLISH with an id is kept once and delivered with its offset
    await redis.command('PUBLISH', `${P}:room:/:kf-1`, JSON.stringify({ event: 'plain', data: { seq: 3 }, id: 'kf-3' }));
    await waitUntil(() => gy.length === 3, { timeout: 10000, what: 'the kept plain PUBLISH' });
    assert.equal(gy[2].args.length, 2, 'with its offset');
    const entries = await redis.command('XRANGE', `${P}:history:/`, gy[2].args[1], gy[2].args[1]);
    assert.equal(entries.length, 1, 'kept in the history');
    await sleep(300);
    assert.equal(gy.length, 3, 'once');
    x.close(); y.close();
  });
});
