'use strict';
// Socket.IO's own Redis formats (issue 17, docs/redis.md "Socket.IO's Redis formats"): the real
// @socket.io/redis-emitter 5.1.0 publishing to two roomcast nodes must reach their clients exactly
// as it reaches the clients of a real Node Socket.IO 4.8.4 server with @socket.io/redis-adapter
// 8.3.0 on the same Redis (under another prefix, so the two never mix): the same script runs
// against both and the event lists are compared deeply. Also: a node subscribes only to rooms it
// has members of (PUBSUB NUMSUB), a broadcast that starts on a roomcast node goes out once, in the
// adapter format only, and malformed messages reach nobody and are counted.
//
// Harness: lib/node.js, lib/redis.js.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { Emitter } = require('@socket.io/redis-emitter');
const Redis = require('ioredis');
const notepack = require('notepack.io');
const {
  startNode, client, connected, token, emitAck, sleep, waitUntil, metrics, publishOk, readyz,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');

const T = { timeout: 60000 };
const RC = 'rc.io';      // the roomcast nodes' socketio.prefix
const NODE = 'node.io';  // the Node server's adapter key

// Binary arguments as comparable values.
function norm(v) {
  if (Buffer.isBuffer(v)) return { bin: v.toString('hex') };
  if (v instanceof ArrayBuffer) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

async function startNodeServer(redisUrl, key) {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  const httpServer = http.createServer();
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { key }) });
  for (const ns of ['/', '/chat']) {
    io.of(ns).on('connection', (s) => {
      s.on('join', (d, ack) => { s.join(d.room); ack({ ok: true, room: d.room }); });
    });
  }
  await new Promise((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${httpServer.address().port}`,
    close: async () => {
      io.close();
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

// Who connects where: [label, server index, namespace, rooms].
const SPEC = [
  ['c1', 0, '/', ['r1']],
  ['c2', 1, '/', ['r2']],
  ['c3', 0, '/', ['r1', 'r3']],
  ['c4', 1, '/', ['r3']],
  ['c5', 0, '/', []],
  ['c6', 1, '/', ['r2', 'r1']],
  ['k1', 1, '/chat', ['r']],
  ['k2', 0, '/chat', []],
];

// Runs the same emitter script against servers (urls[i]) whose adapter key is `key`; returns
// every client's events in order. hooks.ready(sockets) and hooks.room(ns, room) wait for
// subscriptions where the server needs them (roomcast: one channel per room).
async function scenario(redisUrl, urls, key, hooks) {
  const sockets = {};
  const log = {};
  let done = false; // our own close at the end is not part of the script
  const redis = new Redis(redisUrl);
  try {
    for (const [label, at, ns, rooms] of SPEC) {
      const s = client(`${urls[at]}${ns === '/' ? '' : ns}`, {
        auth: { token: token({ sub: label, rooms: ['*'] }) }, transports: ['websocket'], reconnection: false,
      });
      await connected(s, 10000);
      sockets[label] = s;
      log[label] = [];
      s.onAny((ev, ...args) => log[label].push([ev, norm(args)]));
      s.on('disconnect', (reason) => { if (!done) log[label].push(['disconnect', reason]); });
      for (const room of rooms) assert.deepEqual(await emitAck(s, 'join', { room }), [{ ok: true, room }]);
    }
    await hooks.ready(sockets);
    const em = new Emitter(redis, { key });
    const chat = em.of('/chat');

    em.to('r1').emit('e1', { a: 1, s: 'é"\n\u0001\u2028', u: undefined }, 2, -3, 1.5, null, true,
      [1, [2, { x: undefined }], undefined], 2 ** 53 + 2, -(2 ** 60), 1e21, 1e-7, 123e-20, -0, 0.1, 255, 65536);
    em.to(['r1', 'r2']).except('r3').emit('e2', 'x');
    chat.to('r').emit('e3', { deep: [[[1]]] });
    em.to('r2').emit('bin', Buffer.from([1, 2, 3]), { nested: Buffer.from([4, 5]), list: [Buffer.alloc(0)] });
    em.emit('date', new Date(Date.UTC(2026, 11, 6, 17, 0, 0, 123)), new Date(-1), new Date(Date.UTC(-50, 0, 1)),
      new Date(Date.UTC(12000, 5, 1, 1, 2, 3, 4)), { when: new Date(0) });
    await sleep(300); // volatile drops for a transport busy writing: let every write finish first
    em.volatile.emit('vol', 1);
    em.serverSideEmit('ping', 1);
    em.to('r1').except(sockets.c3.id).emit('e4');
    em.to(sockets.c5.id).emit('direct', 'x');
    em.in('r1').socketsJoin('r9');
    await hooks.room('/', 'r9');
    em.to('r9').emit('e9');
    em.in('r9').socketsLeave('r1');
    await sleep(300);
    em.to('r1').emit('e10');
    em.in('r2').disconnectSockets(true);
    em.in('r3').disconnectSockets();
    em.emit('last');
    chat.emit('lastchat');
    await waitUntil(() => log.c1.some(([ev]) => ev === 'last') && log.k2.some(([ev]) => ev === 'lastchat'),
      { timeout: 10000, what: 'the last broadcasts' });
    await sleep(300); // anything that should not come would come now
    return log;
  } finally {
    done = true;
    for (const s of Object.values(sockets)) s.close();
    redis.disconnect();
  }
}

describe('Socket.IO Redis formats: @socket.io/redis-emitter to roomcast and to Node', () => {
  let redis;
  let nodes = [];
  let A; let B;

  before(async () => {
    redis = await startRedis();
    const tag = `se${process.pid}`;
    const started = await Promise.allSettled(['a', 'b'].map((x) => startNode({
      config: 'cluster.json', nodeId: `${tag}-${x}`, args: ['--redis', redis.url],
      env: { ROOMCAST_SOCKETIO_PREFIX: RC },
    })));
    nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    [A, B] = nodes;
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 10000, what: 'both nodes ready' });
  });

  after(async () => {
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  const numsub = (ch) => redis.numsub(ch);

  it('clients on two roomcast nodes receive exactly what a Node server\'s clients receive', T, async () => {
    const node = await startNodeServer(redis.url, NODE);
    let expected;
    try {
      expected = await scenario(redis.url, [node.url, node.url], NODE,
        { ready: async () => {}, room: async () => sleep(200) });
    } finally {
      await node.close();
    }
    // the reference itself is what the script means (so the comparison cannot pass on nothing)
    assert.deepEqual(expected.c1.map(([ev]) => ev), ['e1', 'e2', 'date', 'vol', 'e4', 'e9', 'last']);
    assert.deepEqual(expected.c2.map(([ev]) => ev), ['e2', 'bin', 'date', 'vol', 'disconnect']);
    assert.deepEqual(expected.c5.map(([ev]) => ev), ['date', 'vol', 'direct', 'last']);
    assert.deepEqual(expected.k1.map(([ev]) => ev), ['e3', 'lastchat']);

    let seen = null;
    const got = await scenario(redis.url, [A.url, B.url], RC, {
      ready: async (sockets) => {
        // a socket's own room (to(socket.id)) is subscribed when it connects
        for (const [label, at, ns] of SPEC) {
          const ch = `${RC}#${ns}#${sockets[label].id}#`;
          await waitUntil(async () => (await numsub(ch)) === 1, { what: `NUMSUB ${ch} = 1` });
        }
        // one subscription per room with local members, on the node(s) that have them
        seen = {
          r1: await numsub(`${RC}#/#r1#`), r2: await numsub(`${RC}#/#r2#`), r3: await numsub(`${RC}#/#r3#`),
          chatR: await numsub(`${RC}#/chat#r#`), none: await numsub(`${RC}#/#r9#`),
          ns: await numsub(`${RC}#/#`), req: await numsub(`${RC}-request#/#`),
          json: await numsub('roomcast:room:/:r2'),
        };
      },
      room: async (ns, room) => waitUntil(async () => (await numsub(`${RC}#${ns}#${room}#`)) >= 1,
        { what: `a node subscribed to ${room}` }),
    });
    assert.deepEqual(seen, { r1: 2, r2: 1, r3: 2, chatR: 1, none: 0, ns: 2, req: 2, json: 1 });
    assert.deepEqual(got, expected);
    // members gone: their rooms' channels go too
    await waitUntil(async () => (await numsub(`${RC}#/#r2#`)) === 0 && (await numsub(`${RC}#/#r3#`)) === 0,
      { what: 'r2 and r3 unsubscribed once their members left' });
    const m = await metrics(A);
    assert.ok(m.get('roomcast_socketio_broadcasts_received_total{source="emitter"}') >= 8);
    assert.equal(m.get('roomcast_socketio_requests_total{type="remote_join"}'), 1);
    assert.equal(m.get('roomcast_socketio_requests_total{type="server_side_emit"}'), 1);
    for (const n of nodes) n.assertAlive();
  });

  it('a broadcast that starts on a roomcast node goes out once, in the adapter format only', T, async () => {
    const sub = await redis.subscriber();
    await sub.subscribe('roomcast:room:/:p', `${RC}#/#p#`);
    const a1 = client(A.url, { auth: { token: token({ sub: 'a1', rooms: ['*'] }) }, transports: ['websocket'] });
    const b1 = client(B.url, { auth: { token: token({ sub: 'b1', rooms: ['*'] }) }, transports: ['websocket'] });
    try {
      await Promise.all([connected(a1), connected(b1)]);
      const got = { a1: [], b1: [] };
      a1.onAny((ev, ...args) => got.a1.push([ev, ...args]));
      b1.onAny((ev, ...args) => got.b1.push([ev, ...args]));
      for (const s of [a1, b1]) assert.deepEqual(await emitAck(s, 'join', { room: 'p' }), [{ ok: true, room: 'p' }]);
      // a client event relayed by a rule, and a backend's POST /api/publish
      assert.deepEqual(await emitAck(a1, 'say', { room: 'p', n: 1 }), [{ ok: true, room: 'p' }]);
      await publishOk(B, { room: 'p', event: 'api', data: { n: 2 } });
      await waitUntil(() => got.a1.length === 2 && got.b1.length === 2, { what: 'both events on both nodes' });
      await sleep(300);
      const said = ['said', { from: 'a1', sid: a1.id, n: 1 }];
      assert.deepEqual(got.a1, [said, ['api', { n: 2 }]]);
      assert.deepEqual(got.b1, [said, ['api', { n: 2 }]]);
      assert.equal(sub.messages('roomcast:room:/:p').length, 0, 'nothing on the JSON room channel');
      const adapter = sub.messages(`${RC}#/#p#`);
      assert.equal(adapter.length, 2, 'each broadcast once on the adapter channel');
    } finally {
      a1.close();
      b1.close();
      sub.close();
    }
  });

  it('malformed messages reach nobody, are counted by reason, and the nodes go on', T, async () => {
    const c = client(A.url, { auth: { token: token({ sub: 'h1' }) }, transports: ['websocket'] });
    const k = client(`${B.url}/chat`, { auth: { token: token({ sub: 'h2' }) }, transports: ['websocket'] });
    try {
      await Promise.all([connected(c), connected(k)]);
      const got = [];
      c.onAny((ev) => got.push(ev));
      k.onAny((ev) => got.push(`chat:${ev}`));
      const ok = (data, nsp = '/') => notepack.encode(['emitter', { type: 2, data, nsp }, { rooms: [], flags: {}, except: [] }]);
      let deep = ['x'];
      for (let i = 0; i < 40; i++) deep = [deep];
      const bad = [
        ok(['good']).subarray(0, 20),                                            // truncated
        Buffer.from([0xc1]),                                                     // not msgpack
        Buffer.from([0x93, 0xdd, 0xff, 0xff, 0xff, 0xff]),                       // a 4-billion-element array
        ok(['deep', deep]),                                                      // too deep
        notepack.encode(['emitter', 'packet', {}]),                              // wrong types
        notepack.encode(['emitter', { type: 3, data: ['x'], nsp: '/' }, {}]),    // not an EVENT
        ok(['elsewhere'], '/chat'),                                              // namespace mismatch
        ok(['connect']),                                                         // reserved event
        ok([42]),                                                                // event not a string
        Buffer.concat([ok(['trailing']), Buffer.from([0])]),                     // bytes after the value
      ];
      for (const b of bad) await redis.command('PUBLISH', `${RC}#/#`, b);
      await redis.command('PUBLISH', `${RC}-request#/#`, '{"type":2,"opts":{"rooms":"r1"},"rooms":["x"]}');
      await redis.command('PUBLISH', `${RC}-request#/#`, '{"type":99}');
      await redis.command('PUBLISH', `${RC}#/#`, ok(['good']));
      await redis.command('PUBLISH', `${RC}#/chat#`, ok(['goodchat'], '/chat'));
      await waitUntil(() => got.length >= 2, { what: 'the good messages' });
      await sleep(300);
      assert.deepEqual(got.sort(), ['chat:goodchat', 'good']);
      const m = await metrics(A);
      const refused = (r) => m.get(`roomcast_socketio_broadcasts_refused_total{reason="${r}"}`);
      for (const r of ['truncated', 'not_msgpack', 'too_deep', 'bad_packet', 'bad_type', 'namespace_mismatch',
        'reserved_event', 'bad_event'])
        assert.ok(refused(r) >= 1, `refused for ${r}: ${refused(r)}`);
      assert.equal(m.get('roomcast_socketio_requests_refused_total{reason="bad_rooms"}'), 1);
      assert.equal(m.get('roomcast_socketio_requests_refused_total{reason="bad_type"}'), 1);
      for (const n of nodes) n.assertAlive();
    } finally {
      c.close();
      k.close();
    }
  });
});
