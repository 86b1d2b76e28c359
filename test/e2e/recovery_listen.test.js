'use strict';
// Recovery listeners (docs/recovery.md, "Listeners"; src/node_recovery_listen.c), with the official
// socket.io-client behind a TCP proxy (lib/recovery.js). A client alone in its room sits on a node
// that is SIGKILLed: no node is subscribed to its room any more, so only the two listeners (nodes
// holding a lease, hearing every kept room through patterns) hear a backend's plain PUBLISH.
// - with an id, a listener keeps it: the client recovers on a survivor and gets it exactly once;
// - every listener lost at once (and the client's node with them): a plain PUBLISH then reaches
//   nobody (PUBLISH answers 0), and the client's recovery is refused (a fresh session, counted as
//   "unheard"), never a replay presented as complete without it;
// - listeners handed on one at a time (a drain gives its lease back, a new node takes it and
//   inherits the start of the coverage): recoveries across the hand-over still succeed;
// - with socketio.prefix, the real @socket.io/redis-emitter's broadcast to the room of a client
//   whose node died is heard by a listener and leaves a gap mark: a fresh session.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Emitter } = require('@socket.io/redis-emitter');
const Redis = require('ioredis');
const { startNode, waitUntil, metric, sleep } = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { Proxy, closeClients, nextConnect, joinedWithOffset } = require('./lib/recovery');

const T = { timeout: 120000 };
const P = 'roomcast';

const listening = async (n) => (await metric(n, 'roomcast_recovery_listening')) === 1;
const attempts = async (n, result) => (await metric(n, `roomcast_recovery_attempts_total{result="${result}"}`)) || 0;
async function waitListening(n) { await waitUntil(() => listening(n), { timeout: 20000, what: `${n.nodeId} listening` }); }
// A node killed outright: no drain, no lease given back, its connections dropped by the kernel.
async function kill(n) {
  n.stopped = true; // lib/node.js's stop() would expect a clean exit
  n.child.kill('SIGKILL');
  await new Promise((r) => { if (n.child.exitCode !== null || n.child.signalCode) r(); else n.child.once('exit', r); });
}

describe('recovery listeners', () => {
  let redis; let proxy; let proxyUrl;
  const nodes = [];
  let seq = 0;
  const start = async (extra = {}) => {
    const n = await startNode({ config: 'recovery.json', nodeId: `l${process.pid}-${++seq}`, args: ['--redis', redis.url], ...extra });
    nodes.push(n);
    return n;
  };
  // A client alone in `room` (and its user room) on node `n`, with an offset (one kept event).
  const aloneOn = (n, user, room) => joinedWithOffset(proxy, proxyUrl, n, user, room, n, { event: 'warm', data: {} });

  before(async () => {
    redis = await startRedis();
    proxy = new Proxy(0);
    proxyUrl = `http://127.0.0.1:${await proxy.listen()}`;
  });

  after(async () => {
    closeClients();
    if (proxy) await proxy.close();
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  it('the node of a client alone in its room dies: a plain PUBLISH with an id, heard by a listener, is replayed once', T, async () => {
    const A = await start(); const B = await start();
    await waitListening(A); await waitListening(B);
    const C = await start(); // not a listener: both leases are held
    await sleep(1500);
    assert.equal(await listening(C), false, 'two listeners at most');
    const { x, got, sid } = await aloneOn(C, 'ul1', 'solo1');

    proxy.hold();
    proxy.target = A.port;
    await kill(C);
    await waitUntil(() => !x.connected, { what: 'the client sees its node die' });
    const reconnected = nextConnect(x);
    // nobody has a member of solo1 now: only the listeners' patterns hear it
    const heard = await redis.command('PUBLISH', `${P}:room:/:solo1`, JSON.stringify({ event: 'plain', data: { n: 1 }, id: 'l-1' }));
    assert.equal(heard, 2, 'heard by the two listeners only');
    await waitUntil(async () => (await redis.command('XRANGE', `${P}:history:/`, '-', '+')).some(([, f]) => f.includes('plain')),
      { timeout: 10000, what: 'kept by a listener' });
    proxy.release();
    await reconnected;
    assert.equal(x.recovered, true, 'socket.recovered');
    assert.equal(x.id, sid, 'the old sid');
    await sleep(300);
    assert.deepEqual(got.slice(1).map((e) => [e.event, e.args[0]]), [['plain', { n: 1 }]], 'the missed event, exactly once');
    assert.ok((await metric(A, 'roomcast_recovery_overheard_total')) + (await metric(B, 'roomcast_recovery_overheard_total')) >= 2);
    x.close();
  });

  it('every listener lost at once: the recovery is refused (unheard), never a replay without what nobody heard', T, async () => {
    const [A, B] = nodes;
    const C2 = await start();
    const { x, got } = await aloneOn(C2, 'ul2', 'solo2');
    proxy.hold();
    await Promise.all([kill(A), kill(B), kill(C2)]);
    await waitUntil(() => !x.connected, { what: 'the client sees its node die' });
    // nobody hears this one: before listeners, the client would recover with recovered true
    // and without it
    const heard = await redis.command('PUBLISH', `${P}:room:/:solo2`, JSON.stringify({ event: 'plain', data: { n: 2 }, id: 'l-2' }));
    assert.equal(heard, 0, 'no node and no listener heard it');
    const D = await start();
    await waitListening(D); // a new listener: its coverage starts now, after the client's offset
    proxy.target = D.port;
    const reconnected = nextConnect(x);
    proxy.release();
    await reconnected;
    assert.equal(x.recovered, false, 'a fresh session');
    assert.equal(await attempts(D, 'unheard'), 1, 'counted as unheard');
    assert.equal(got.length, 1, 'no replay');
    x.close();
  });

  it('listeners handed on one at a time (a drain, then a kill): recoveries across the hand-over succeed', T, async () => {
    const D = nodes[nodes.length - 1];
    const E = await start();
    await waitListening(E); // D and E listen; E's coverage starts at D's
    const { x, got, sid } = await aloneOn(E, 'ul3', 'solo3');
    const F = await start();
    D.child.kill('SIGTERM'); // a drain gives D's lease back at once: F takes it, inheriting the start
    await waitListening(F);
    await new Promise((r) => { if (D.child.exitCode !== null) r(); else D.child.once('exit', r); });
    proxy.hold();
    proxy.target = F.port;
    await kill(E); // the client's node, and the other listener of the start
    await waitUntil(() => !x.connected, { what: 'the client sees its node die' });
    const reconnected = nextConnect(x);
    const heard = await redis.command('PUBLISH', `${P}:room:/:solo3`, JSON.stringify({ event: 'plain', data: { n: 3 }, id: 'l-3' }));
    assert.equal(heard, 1, 'heard by F, the listener left');
    await sleep(300);
    proxy.release();
    await reconnected;
    assert.equal(x.recovered, true, 'recovered: F inherited a coverage that started before the offset');
    assert.equal(x.id, sid);
    await sleep(300);
    assert.deepEqual(got.slice(1).map((e) => [e.event, e.args[0]]), [['plain', { n: 3 }]], 'the missed event, exactly once');
    x.close();
  });

  it("with socketio.prefix, an emitter's broadcast to the room of a client whose node died leaves a gap mark", T, async () => {
    const env = { ROOMCAST_SOCKETIO_PREFIX: 'rl.io' };
    const G = await start({ env }); const H = await start({ env });
    await waitUntil(async () => (await listening(G)) || (await listening(H)), { timeout: 20000, what: 'a listener with the prefix' });
    for (const n of nodes.slice(0, -2)) if (n.child.exitCode === null && !n.child.signalCode) await kill(n);
    await waitListening(G); await waitListening(H);
    const I = await start({ env });
    const { x, got } = await aloneOn(I, 'ul4', 'solo4');
    proxy.hold();
    proxy.target = G.port;
    await kill(I);
    await waitUntil(() => !x.connected, { what: 'the client sees its node die' });
    const reconnected = nextConnect(x);
    const pub = new Redis(redis.port, '127.0.0.1');
    new Emitter(pub, { key: 'rl.io' }).to('solo4').emit('emitted', { n: 4 });
    await waitUntil(async () => (await redis.command('XRANGE', `${P}:history:/`, '-', '+')).some(([, f]) => f[0] === 'r' && f[1] === 'solo4' && f.includes('g')),
      { timeout: 10000, what: 'a gap mark for solo4' });
    pub.disconnect();
    proxy.release();
    await reconnected;
    assert.equal(x.recovered, false, 'a fresh session: the emitted event was not kept');
    assert.equal(got.length, 1, 'no replay');
    x.close();
  });
});
