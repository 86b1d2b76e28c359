'use strict';
// A mixed fleet (issue 17, docs/migrating.md "Running Node Socket.IO servers and roomcast side by
// side"): one Node Socket.IO 4.8 server with @socket.io/redis-adapter 8.3 (ioredis) and two
// roomcast nodes with ROOMCAST_SOCKETIO_PREFIX=socket.io, on one real redis-server, clients in the
// same room on all three servers.
//
// - A broadcast from each side (Node server code, a backend with @socket.io/redis-emitter, a client
//   event relayed by a roomcast rule, POST /api/publish) reaches every member once and nobody else:
//   each client's events are collected until a quiet period after the last expected one.
// - A RemoteSocket of roomcast's (from fetchSockets) can be emitted to and joined to a room.
// - The Node server's requests that wait for every server (fetchSockets, allRooms, serverSideEmit
//   with ack, emitWithAck) complete: the adapter runs with requestsTimeout 1000 ms, so a roomcast
//   node that did not answer would make them fail (no timing is asserted).
// - Requests no Node server would send (malformed, unknown type, missing requestId, a packet for
//   another namespace or with a reserved event) are counted as refused and reach no client.
// - PUBSUB NUMSUB: a roomcast node subscribes to a room's channel only while it has members.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { Emitter } = require('@socket.io/redis-emitter');
const Redis = require('ioredis');
const {
  startNode, client, connected, closeClients, token, emitAck, publishOk, waitUntil, metrics, sleep, freePort, collect,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');

const T = { timeout: 30000 };
const QUIET_MS = 600;   // after the last expected event, how long a duplicate is watched for
const ROOM = 'fleet';
const SOLO = 'solo';    // a room with a member on roomcast B only

describe('mixed fleet: a Node Socket.IO server and two roomcast nodes', () => {
  let redis;
  let nodes = [];
  let io; let httpServer; let nodeUrl;
  const ioredis = [];
  const clients = {};   // name -> socket.io-client socket, every one in ROOM
  let outsider;         // on roomcast B, in SOLO only

  const redisClient = () => {
    const c = new Redis(redis.url, { lazyConnect: false, maxRetriesPerRequest: 1 });
    ioredis.push(c);
    return c;
  };

  before(async () => {
    redis = await startRedis();
    const env = { ROOMCAST_SOCKETIO_PREFIX: 'socket.io' };
    nodes = await Promise.all(['a', 'b'].map((x) =>
      startNode({ config: 'cluster.json', nodeId: `fleet${process.pid}-${x}`, env, args: ['--redis', redis.url] })));

    // The Node server: a gateway whose "join" handler joins the room and acks.
    httpServer = http.createServer();
    const pub = redisClient();
    const sub = pub.duplicate();
    ioredis.push(sub);
    io = new Server(httpServer, { adapter: createAdapter(pub, sub, { requestsTimeout: 1000 }) });
    io.on('connection', (socket) => {
      socket.data.kind = 'node';
      socket.on('join', ({ room }, cb) => { socket.join(room); cb({ ok: true, room }); });
    });
    const port = await freePort();
    await new Promise((resolve) => httpServer.listen(port, '127.0.0.1', resolve));
    nodeUrl = `http://127.0.0.1:${port}`;

    // Every server counts three subscribers of the request channel: itself and the two nodes.
    await waitUntil(async () => (await redis.numsub('socket.io-request#/#')) === 3,
      { timeout: 10000, what: 'PUBSUB NUMSUB socket.io-request#/# = 3' });

    const open = async (name, url, auth) => {
      const s = client(url, { transports: ['websocket'], ...(auth ? { auth } : {}) });
      await connected(s);
      s.on('ask', (n, cb) => cb({ name, n }));   // answers an emitWithAck
      return s;
    };
    clients.node = await open('node', nodeUrl);
    clients.rcA = await open('rcA', nodes[0].url, { token: token({ sub: 'ua', rooms: ['*'] }) });
    clients.rcB = await open('rcB', nodes[1].url, { token: token({ sub: 'ub', rooms: ['*'] }) });
    outsider = await open('out', nodes[1].url, { token: token({ sub: 'uo', rooms: ['*'] }) });
    for (const s of Object.values(clients))
      assert.deepEqual(await emitAck(s, 'join', { room: ROOM }), [{ ok: true, room: ROOM }]);
    assert.deepEqual(await emitAck(outsider, 'join', { room: SOLO }), [{ ok: true, room: SOLO }]);
    await waitUntil(async () => (await redis.numsub(`socket.io#/#${ROOM}#`)) === 2,
      { timeout: 5000, what: `PUBSUB NUMSUB socket.io#/#${ROOM}# = 2` });
  });

  after(async () => {
    closeClients();
    if (io) await new Promise((resolve) => io.close(resolve));
    for (const c of ioredis) c.disconnect();
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  // Collects `event` on every client, runs send, waits until each member has `want` of them and
  // then QUIET_MS more; returns {name: [args...]} with the outsider's under "out".
  async function around(event, want, send) {
    const got = {};
    const all = { ...clients, out: outsider };
    const listeners = Object.entries(all).map(([name, s]) => {
      got[name] = [];
      const fn = (...args) => got[name].push(args.length === 1 ? args[0] : args);
      s.on(event, fn);
      return () => s.off(event, fn);
    });
    try {
      await send();
      await waitUntil(() => Object.keys(clients).every((n) => got[n].length >= want),
        { timeout: 5000, what: `${event} x${want} on every member (${JSON.stringify(got)})` });
      await sleep(QUIET_MS);
    } finally {
      listeners.forEach((off) => off());
    }
    return got;
  }

  const once = (got, value) => {
    for (const name of Object.keys(clients)) assert.deepEqual(got[name], [value], `${name} got ${JSON.stringify(got[name])}`);
    assert.deepEqual(got.out, [], 'the outsider received nothing');
  };

  it('a broadcast from each side reaches every member once', T, async () => {
    // Node server code
    once(await around('news', 1, () => io.to(ROOM).emit('news', { from: 'node' })), { from: 'node' });
    // a backend with the emitter, unchanged
    const emitter = new Emitter(redisClient());
    once(await around('news', 1, () => emitter.to(ROOM).emit('news', { from: 'emitter', at: new Date(0) })),
      { from: 'emitter', at: '1970-01-01T00:00:00.000Z' });
    // a client event relayed by a roomcast rule ("say": to the room, sender included)
    const said = await around('said', 1, () => emitAck(clients.rcA, 'say', { room: ROOM, n: 7 }));
    once(said, { from: 'ua', sid: clients.rcA.id, n: 7 });
    // roomcast's HTTP publish API
    once(await around('news', 1, () => publishOk(nodes[1], { room: ROOM, event: 'news', data: { from: 'api' } })),
      { from: 'api' });
  });

  it('fetchSockets, allRooms and serverSideEmit with ack get an answer from every roomcast node', T, async () => {
    const sockets = await io.in(ROOM).fetchSockets();   // rejects after requestsTimeout otherwise
    const byId = new Map(sockets.map((s) => [s.id, s]));
    assert.deepEqual([...byId.keys()].sort(), [clients.node.id, clients.rcA.id, clients.rcB.id].sort());
    const a = byId.get(clients.rcA.id);
    assert.ok(a.rooms.has(ROOM) && a.rooms.has(clients.rcA.id), `rooms of rcA: ${[...a.rooms]}`);
    assert.equal(a.data.userId, 'ua');
    assert.equal(a.data.user.sub, 'ua');
    assert.equal(a.handshake.auth.token, undefined, 'the token never leaves the node');
    assert.equal(typeof a.handshake.issued, 'number');

    // A RemoteSocket of roomcast's acts on it: emit (its id's room), join
    const direct = [clients.node, clients.rcA, clients.rcB, outsider].map((s) => collect(s, 'direct'));
    a.emit('direct', 1);
    await waitUntil(() => direct[1].length === 1, { timeout: 5000, what: 'rcA got RemoteSocket.emit' });
    await sleep(QUIET_MS);
    direct.forEach((d) => d.off());
    assert.deepEqual(direct.map((d) => d.map((args) => args[0])), [[], [1], [], []]);
    a.join('picked');
    await waitUntil(async () => (await redis.numsub('socket.io#/#picked#')) === 1,
      { timeout: 5000, what: 'roomcast A subscribed to the room a RemoteSocket joined' });

    const rooms = await io.of('/').adapter.allRooms();
    for (const r of [ROOM, SOLO, clients.rcB.id, outsider.id]) assert.ok(rooms.has(r), `allRooms has ${r}`);

    const responses = await new Promise((resolve, reject) =>
      io.serverSideEmit('hello', 1, (err, res) => (err ? reject(err) : resolve(res))));
    assert.equal(responses.length, 2, 'one answer per roomcast node');
  });

  it('emitWithAck from the Node server collects every member\'s ack', T, async () => {
    const acks = await io.timeout(2000).to(ROOM).emitWithAck('ask', 5);
    assert.deepEqual(acks.map((x) => x.name).sort(), ['node', 'rcA', 'rcB']);
    for (const x of acks) assert.equal(x.n, 5);
    const m = await metrics(nodes[0]);
    assert.equal(m.get('roomcast_adapter_requests_total{type="broadcast",result="answered"}'), 1);
    assert.ok(m.get('roomcast_adapter_broadcast_acks_total{result="relayed"}') >= 1);
  });

  it('requests no Node server would send are refused and counted; nobody hears of them', T, async () => {
    // Only roomcast's clients are watched: the Node server's own adapter acts on some of these
    // requests (it broadcasts a type-7 request to "/" whatever its packet's namespace), which is
    // Node's behaviour, not what this test is about.
    const got = [clients.rcA, clients.rcB, outsider].map((s) => {
      const seen = [];
      s.onAny((ev) => seen.push(ev));
      return seen;
    });
    const bad = [
      '{"uid":"x","requestId":"r1","type":5',                                     // truncated JSON
      '{"uid":"x","requestId":"r2","type":12}',                                   // unknown type
      '{"uid":"x","type":5,"opts":{}}',                                           // fetch without requestId
      '{"uid":"x","requestId":"r3","type":7,"packet":{"type":2,"data":["news"],"nsp":"/chat"},"opts":{}}',
      '{"uid":"x","requestId":"r4","type":7,"packet":{"type":2,"data":["disconnect"]},"opts":{}}',
      Buffer.from([0x85, 0xa3]),                                                  // truncated msgpack
    ];
    for (const b of bad) await redis.command('PUBLISH', 'socket.io-request#/#', b);
    // Every roomcast node still answers, with all of its sockets.
    const ids = new Set((await io.fetchSockets()).map((x) => x.id));
    for (const s of [clients.rcA, clients.rcB, outsider]) assert.ok(ids.has(s.id), `fetchSockets lists ${s.id}`);
    await sleep(QUIET_MS);
    assert.deepEqual(got, [[], [], []], 'no roomcast client heard anything');
    for (const n of nodes) {
      const m = await metrics(n);
      assert.equal(m.get('roomcast_adapter_requests_refused_total{reason="bad_field"}'), 2, n.nodeId);
      assert.equal(m.get('roomcast_adapter_requests_refused_total{reason="wrong_namespace"}'), 1, n.nodeId);
      const codec = [...m].filter(([k]) => k.startsWith('roomcast_socketio_requests_refused_total')).reduce((a, [, v]) => a + v, 0);
      assert.equal(codec, 3, `${n.nodeId}: refused by the codec`);
      n.assertAlive();
    }
  });

  it('roomcast nodes subscribe only to the rooms they have members of', T, async () => {
    assert.equal(await redis.numsub(`socket.io#/#${SOLO}#`), 1, 'only roomcast B has a member of solo');
    assert.equal(await redis.numsub(`socket.io#/#${ROOM}#`), 2);
    assert.equal(await redis.numsub('socket.io#/#nobody#'), 0);
    assert.deepEqual(await emitAck(outsider, 'leave', { room: SOLO }), [{ ok: true, room: SOLO }]);
    await waitUntil(async () => (await redis.numsub(`socket.io#/#${SOLO}#`)) === 0,
      { timeout: 5000, what: `PUBSUB NUMSUB socket.io#/#${SOLO}# = 0 after the last member left` });
    for (const n of nodes) n.assertAlive();
  });
});
