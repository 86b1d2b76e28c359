'use strict';
// Three roomcast nodes on one real redis-server (issue 3): backend PUBLISH fan-out, relays across
// nodes (exactly once, in order), one room channel per node with members (PUBSUB NUMSUB),
// control ops, batched SUBSCRIBE for 1,000 rooms, and Redis killed and restarted under live
// sockets (readiness, refused relays, recovery without any client reconnecting).
//
// Channels and envelopes: docs/redis.md. Harness: lib/node.js, lib/redis.js.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, waitFor, waitForArgs, expectNoEvent, emitAck, emitAckWithin,
  publish, httpRequest, collect, sleep, waitUntil, metrics, metric, readyz,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { RawEio } = require('./lib/raw');

const T = { timeout: 30000 };
const QUIET_MS = 400; // how long "receives nothing (more)" is watched
const P = 'roomcast';
const roomChannel = (room, ns = '/') => `${P}:room:${ns}:${room}`;

async function connectTo(node, sub, opts = {}) {
  const s = client(node.url, { auth: { token: token({ sub, rooms: ['*'] }) }, transports: ['websocket'], ...opts });
  await connected(s);
  return s;
}

async function join(socket, room) {
  assert.deepEqual(await emitAck(socket, 'join', { room }), [{ ok: true, room }], `join ${room}`);
}

async function leave(socket, room) {
  assert.deepEqual(await emitAck(socket, 'leave', { room }), [{ ok: true, room }], `leave ${room}`);
}

describe('cluster: three nodes on one Redis', () => {
  let redis;
  let nodes = [];
  let A; let B; let C;
  const raws = [];

  // A join is acked before the node's SUBSCRIBE reaches Redis (see the todo test below), so
  // every test waits for the channel's subscriber count before publishing to a fresh room.
  const waitNumsub = (room, n, timeout = 5000) =>
    waitUntil(async () => (await redis.numsub(roomChannel(room))) === n,
      { timeout, what: `PUBSUB NUMSUB ${roomChannel(room)} = ${n}` });

  before(async () => {
    redis = await startRedis();
    const tag = `c${process.pid}`;
    const started = await Promise.allSettled(['a', 'b', 'c'].map((x) =>
      startNode({ config: 'cluster.json', nodeId: `${tag}-${x}`, args: ['--redis', redis.url] })));
    nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason; // after() stops the ones that started
    [A, B, C] = nodes;
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 10000, what: 'every node ready (/readyz 200)' });
  });

  afterEach(async () => {
    closeClients();
    for (const r of raws.splice(0)) r.close();
    // A test that failed half way must not leave Redis frozen or dead for the next ones.
    if (redis) redis.thaw();
    if (redis && !redis.running && nodes.length === 3) {
      await redis.restart();
      await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
        { timeout: 15000, what: 'every node ready again' });
    }
    await sleep(150);
    for (const n of nodes) {
      n.assertNoSanitizerReport();
      n.assertAlive();
    }
  });

  after(async () => {
    closeClients();
    for (const r of raws.splice(0)) r.close();
    const stopped = await Promise.allSettled(nodes.map((n) => n.stop()));
    if (redis) await redis.stop();
    const failed = stopped.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });

  it('each node names its two connections and subscribes its namespace channel', T, async () => {
    const names = (await redis.clientList()).map((c) => c.name).filter((n) => n.startsWith(`${P}:`)).sort();
    const expected = nodes.flatMap((n) => [`${P}:${n.nodeId}:cmd`, `${P}:${n.nodeId}:sub`]).sort();
    assert.deepEqual(names, expected);
    assert.equal(await redis.numsub(`${P}:ns:/`), 3);
    for (const n of nodes) assert.equal(await metric(n, 'roomcast_redis_up'), 1, n.nodeId);
  });

  it('a backend PUBLISH on a room channel reaches every member on every node exactly once', T, async () => {
    const a = await connectTo(A, 'alice');
    const b = await connectTo(B, 'bob', { transports: ['polling', 'websocket'] });
    const c1 = await connectTo(C, 'carol');
    const c2 = await connectTo(C, 'carol2');
    const x = await connectTo(B, 'xavier'); // in another room
    const y = await connectTo(A, 'yolanda'); // in no room but her own
    for (const s of [a, b, c1, c2]) await join(s, 'r-news');
    await join(x, 'r-other');
    await waitNumsub('r-news', 3);

    const members = { a, b, c1, c2 };
    const outsiders = { x, y };
    const got = {};
    for (const [k, s] of Object.entries({ ...members, ...outsiders })) {
      got[k] = { news: collect(s, 'news'), multi: collect(s, 'multi'), all: collect(s, 'all') };
    }

    // One PUBLISH reaches one subscriber per node (the room channel), not one per socket.
    assert.equal(await redis.publish(roomChannel('r-news'), { event: 'news', data: { n: 1, t: 'Live Task' } }), 3);
    assert.equal(await redis.publish(roomChannel('r-news'), { event: 'multi', args: [1, 'two', { three: 3 }] }), 3);
    // The exact command of the README and docs/redis.md, through the redis-cli binary.
    assert.equal(redis.redisCli('PUBLISH', roomChannel('r-news'), '{"event":"news","data":{"n":2}}'), '3');
    // "except" skips that socket only; "id" is accepted.
    assert.equal(await redis.publish(roomChannel('r-news'), { event: 'news', data: { n: 3 }, except: [c2.id], id: 'm-3' }), 3);
    // A namespace broadcast reaches every socket of the namespace, on every node.
    assert.equal(await redis.publish(`${P}:ns:/`, { event: 'all', data: 'everyone' }), 3);
    // Malformed messages are dropped and counted by each subscribed node, delivering nothing.
    const invalidBefore = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_messages_invalid_total')));
    assert.equal(await redis.publish(roomChannel('r-news'), 'not json'), 3);
    assert.equal(await redis.publish(roomChannel('r-news'), { data: 'no event' }), 3);
    assert.equal(await redis.publish(roomChannel('r-news'), { event: 'news', args: 'not an array' }), 3);
    assert.equal(await redis.publish(roomChannel('r-news'), { op: 'explode', room: 'x' }), 3);
    await waitUntil(() => got.a.news.length === 3 && got.c2.news.length === 2 && got.b.news.length === 3,
      { what: 'the first three' });
    // POST /api/publish on one node goes through Redis to the others: exactly once everywhere.
    // (B delivers to its own sockets directly, so it is sent only once the above have arrived.)
    const res = await publish(B, { ns: '/', room: 'r-news', event: 'news', data: { n: 4, via: 'api' } });
    assert.equal(res.status, 202, res.body);

    await waitUntil(() => got.a.news.length === 4 && got.b.news.length === 4 && got.c1.news.length === 4 &&
      got.c2.news.length === 3 && Object.values(got).every((g) => g.all.length === 1),
    { what: 'every delivery' });
    await sleep(QUIET_MS); // and nothing more
    for (const k of ['a', 'b', 'c1']) {
      assert.deepEqual(got[k].news, [[{ n: 1, t: 'Live Task' }], [{ n: 2 }], [{ n: 3 }], [{ n: 4, via: 'api' }]], k);
    }
    assert.deepEqual(got.c2.news, [[{ n: 1, t: 'Live Task' }], [{ n: 2 }], [{ n: 4, via: 'api' }]], 'c2 is in "except"');
    const invalidAfter = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_messages_invalid_total')));
    assert.deepEqual(invalidAfter.map((v, i) => v - invalidBefore[i]), [4, 4, 4]);
    for (const k of Object.keys(members)) assert.deepEqual(got[k].multi, [[1, 'two', { three: 3 }]], k);
    for (const k of Object.keys(outsiders)) {
      assert.deepEqual(got[k].news, [], `${k} is not in r-news`);
      assert.deepEqual(got[k].multi, [], `${k} is not in r-news`);
    }
    for (const [k, g] of Object.entries(got)) assert.deepEqual(g.all, [['everyone']], k);
  });

  it('relays cross nodes exactly once and in order; includeSender false skips only the sending socket', T, async () => {
    const N = 200;
    const room = 'r-relay';
    const sender = await connectTo(A, 'alice');
    const local = await connectTo(A, 'dave'); // same node as the sender: local delivery
    const alice2 = await connectTo(B, 'alice'); // the sender's user, another socket, another node
    const bob = await connectTo(B, 'bob');
    const carol = await connectTo(C, 'carol');
    const receivers = { local, alice2, bob, carol };
    for (const s of [sender, ...Object.values(receivers)]) await join(s, room);
    await waitNumsub(room, 3);

    // What the nodes put on the channel, seen by a plain subscriber.
    const spy = await redis.subscriber(roomChannel(room));
    const envelopes = spy.messages(roomChannel(room));
    const ownBefore = await metric(A, 'roomcast_redis_messages_own_total');
    const recvBefore = await Promise.all([B, C].map((n) => metric(n, 'roomcast_redis_messages_received_total')));

    const got = {};
    for (const [k, s] of Object.entries(receivers)) got[k] = collect(s, 'chat');
    const echo = collect(sender, 'chat');

    const acks = [];
    for (let n = 0; n < N; n++) acks.push(emitAckWithin(10000, sender, 'chat', { room, n }));
    for (const ack of await Promise.all(acks)) assert.deepEqual(ack, [{ ok: true, room }]);

    await waitUntil(() => Object.values(got).every((g) => g.length >= N),
      { timeout: 10000, what: `${N} relays at every receiver` });
    await sleep(QUIET_MS);
    const want = Array.from({ length: N }, (_, n) => [{ room, n }]);
    for (const [k, g] of Object.entries(got)) {
      assert.equal(g.length, N, `${k}: ${g.length} deliveries for ${N} relays (duplicates?)`);
      assert.deepEqual(g, want, `${k}: out of order`);
    }
    assert.deepEqual(echo, [], 'includeSender false: the sending socket gets none');

    // Published exactly once each, in order, by the sender's node, with the sender excepted.
    spy.close();
    assert.equal(envelopes.length, N);
    envelopes.forEach((text, n) => {
      assert.deepEqual(JSON.parse(text), { event: 'chat', args: [{ room, n }], origin: A.nodeId, except: [sender.id] });
    });
    // Node A dropped its own echo of every one; B and C took each once.
    assert.equal(await metric(A, 'roomcast_redis_messages_own_total') - ownBefore, N);
    const recvAfter = await Promise.all([B, C].map((n) => metric(n, 'roomcast_redis_messages_received_total')));
    assert.deepEqual(recvAfter.map((v, i) => v - recvBefore[i]), [N, N]);
  });

  it('PUBSUB NUMSUB: a room channel is subscribed by exactly the nodes with members, 0 after the last leaves', T, async () => {
    const room = 'r-count';
    const ch = roomChannel(room);
    const gauge = () => Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_subscribed_channels')));
    assert.equal(await redis.numsub(ch), 0);
    const a1 = await connectTo(A, 'u-a1');
    const a2 = await connectTo(A, 'u-a2');
    const b1 = await connectTo(B, 'u-b1');
    const c1 = await connectTo(C, 'u-c1');
    for (const u of ['u-a1', 'u-a2', 'u-b1', 'u-c1']) await waitNumsub(`user:${u}`, 1);
    const base = await gauge(); // with the user rooms counted
    const delta = async () => (await gauge()).map((v, i) => v - base[i]);
    const expectState = async (n, perNode, what) => {
      await waitNumsub(room, n);
      await waitUntil(async () => JSON.stringify(await delta()) === JSON.stringify(perNode),
        { what: `roomcast_redis_subscribed_channels deltas ${JSON.stringify(perNode)} (${what})` });
      await sleep(100); // and it stays so
      assert.equal(await redis.numsub(ch), n, what);
    };

    await join(a1, room);
    await expectState(1, [1, 0, 0], 'a1 on A joined');
    await join(a2, room);
    await expectState(1, [1, 0, 0], 'a2 on A joined too: still one subscriber');
    await join(b1, room);
    await expectState(2, [1, 1, 0], 'b1 on B joined');
    await join(c1, room);
    await expectState(3, [1, 1, 1], 'c1 on C joined');
    assert.equal(await redis.publish(ch, { event: 'hello' }), 3);

    await leave(a1, room);
    await expectState(3, [1, 1, 1], 'a1 left, a2 still on A');
    await leave(a2, room);
    await expectState(2, [0, 1, 1], 'A has no member left');
    b1.disconnect(); // leaving by disconnecting (B also drops b1's user room: -1)
    await expectState(1, [0, -1, 1], 'b1 disconnected');
    await leave(c1, room);
    await expectState(0, [0, -1, 0], 'the last member left');
    assert.equal(await redis.publish(ch, { event: 'hello' }), 0);
  });

  it('control op: {"op":"join"} on a user\'s room channel joins that user\'s sockets on two nodes', T, async () => {
    const d1 = await connectTo(A, 'dave');
    const d2 = await connectTo(B, 'dave');
    const erin = await connectTo(C, 'erin');
    const target = 'chat:42';
    await waitNumsub('user:dave', 2);
    const msgs = { d1: collect(d1, 'msg'), d2: collect(d2, 'msg'), erin: collect(erin, 'msg') };

    assert.equal(await redis.publish(roomChannel('user:dave'), { op: 'join', room: target }), 2);
    await waitNumsub(target, 2); // A and B subscribe chat:42 (their SUBSCRIBE is asynchronous)
    assert.equal(await redis.publish(roomChannel(target), { event: 'msg', data: 'hello 42' }), 2);
    await waitUntil(() => msgs.d1.length === 1 && msgs.d2.length === 1, { what: 'both of dave\'s sockets got it' });

    // The membership is real: dave relays into chat:42 (requireMember) from A to his socket on B.
    const chat = { d1: collect(d1, 'chat'), d2: collect(d2, 'chat'), erin: collect(erin, 'chat') };
    assert.deepEqual(await emitAck(d1, 'chat', { room: target, text: 'via relay' }), [{ ok: true, room: target }]);
    await waitUntil(() => chat.d2.length === 1, { what: 'relay into chat:42 reached d2' });

    await sleep(QUIET_MS);
    assert.deepEqual(msgs.d1, [['hello 42']]);
    assert.deepEqual(msgs.d2, [['hello 42']]);
    assert.deepEqual(msgs.erin, []);
    assert.deepEqual(chat.d2, [[{ room: target, text: 'via relay' }]]);
    assert.deepEqual(chat.d1, [], 'includeSender false');
    assert.deepEqual(chat.erin, []);

    // {"op":"leave"}: both leave; the channel goes away on both nodes.
    assert.equal(await redis.publish(roomChannel('user:dave'), { op: 'leave', room: target }), 2);
    await waitNumsub(target, 0);
    assert.deepEqual(await emitAck(d1, 'chat', { room: target, text: 'no longer a member' }), [{ ok: false, error: 'forbidden' }]);

    // {"op":"disconnect"}: both of dave's sockets, on both nodes; erin stays.
    const gone = [waitFor(d1, 'disconnect'), waitFor(d2, 'disconnect')];
    const erinStays = expectNoEvent(erin, 'disconnect', QUIET_MS);
    assert.equal(await redis.publish(roomChannel('user:dave'), { op: 'disconnect' }), 2);
    assert.deepEqual(await Promise.all(gone), ['io server disconnect', 'io server disconnect']);
    await erinStays;
    assert.ok(erin.connected);
    await waitNumsub('user:dave', 0);
  });

  it('binary arguments relayed across nodes arrive as binary', T, async () => {
    const room = 'r-binary';
    const sender = await connectTo(A, 'alice');
    const b = await connectTo(B, 'bob', { transports: ['polling'] });
    const c = await connectTo(C, 'carol');
    for (const s of [sender, b, c]) await join(s, room);
    await waitNumsub(room, 3);
    const spy = await redis.subscriber(roomChannel(room));
    const got = [waitForArgs(b, 'chat'), waitForArgs(c, 'chat')];
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    const payload = [{ room, file: bytes }, 'caption', Buffer.from('second')];
    assert.deepEqual(await emitAck(sender, 'chat', ...payload), [{ ok: true, room }]);
    for (const args of await Promise.all(got)) {
      assert.equal(args.length, 3);
      assert.equal(args[0].room, room);
      assert.ok(Buffer.isBuffer(args[0].file) || args[0].file instanceof ArrayBuffer, 'a binary value');
      assert.deepEqual(Buffer.from(args[0].file), bytes);
      assert.equal(args[1], 'caption');
      assert.deepEqual(Buffer.from(args[2]), Buffer.from('second'));
    }
    await waitUntil(() => spy.messages(roomChannel(room)).length === 1, { what: 'the envelope' });
    const env = JSON.parse(spy.messages(roomChannel(room))[0]);
    assert.deepEqual(env.attachments, [bytes.toString('base64'), Buffer.from('second').toString('base64')]);
    assert.deepEqual(env.args, [{ room, file: { _placeholder: true, num: 0 } }, 'caption', { _placeholder: true, num: 1 }]);
  });

  it('namespaces have their own channels: a room of /chat is not the same-named room of /', T, async () => {
    const root = await connectTo(A, 'alice');
    const chat = client(`${B.url}/chat`, { auth: { token: token({ sub: 'bob', rooms: ['*'] }) }, transports: ['websocket'] });
    await connected(chat);
    await join(root, 'lobby');
    await join(chat, 'lobby');
    await waitUntil(async () => (await redis.numsub(roomChannel('lobby', '/'))) === 1 &&
      (await redis.numsub(roomChannel('lobby', '/chat'))) === 1, { what: 'both lobby channels' });
    const gotRoot = collect(root, 'news');
    const gotChat = collect(chat, 'news');
    assert.equal(await redis.publish(roomChannel('lobby', '/chat'), { event: 'news', data: 'for /chat' }), 1);
    assert.equal(await redis.publish(roomChannel('lobby', '/'), { event: 'news', data: 'for /' }), 1);
    assert.equal(await redis.publish(`${P}:ns:/chat`, { event: 'news', data: 'all of /chat' }), 3);
    await waitUntil(() => gotRoot.length === 1 && gotChat.length === 2, { what: 'deliveries' });
    await sleep(QUIET_MS);
    assert.deepEqual(gotRoot, [['for /']]);
    assert.deepEqual(gotChat, [['for /chat'], ['all of /chat']]);
  });

  // Known server bugs, kept as `todo` (reported, not failing the suite): drop `todo` once fixed.

  it('a join ack means the node is subscribed: a backend PUBLISH right after the ack reaches the socket', {
    ...T,

  }, async (t) => {
    const s = await connectTo(B, 'racer');
    const N = 100;
    let missed = 0;
    for (let i = 0; i < N; i++) {
      await join(s, `r-race-${i}`);
      if (await redis.publish(roomChannel(`r-race-${i}`), { event: 'x', data: i }) === 0) missed += 1;
    }
    t.diagnostic(`${missed}/${N} publishes right after a join ack reached no node`);
    assert.equal(missed, 0, `${missed}/${N} publishes right after a join ack reached no node`);
  });

  it('a control op on the namespace channel applies to every socket of the namespace (docs/redis.md)', {
    ...T,

  }, async () => {
    const a = await connectTo(A, 'alice');
    const b = await connectTo(B, 'bob');
    assert.equal(await redis.publish(`${P}:ns:/`, { op: 'join', room: 'r-everyone' }), 3);
    await waitNumsub('r-everyone', 2, 2000);
    const gone = [waitFor(a, 'disconnect'), waitFor(b, 'disconnect')];
    assert.equal(await redis.publish(`${P}:ns:/`, { op: 'disconnect' }), 3);
    assert.deepEqual(await Promise.all(gone), ['io server disconnect', 'io server disconnect']);
  });

  it('1,000 sockets joining 1,000 distinct rooms on one node take a handful of SUBSCRIBE round trips', T, async (t) => {
    const N = 1000;
    const tok = token({ sub: 'bulk', rooms: ['*'] }); // one user: one user room for all of them
    const t0 = Date.now();
    for (let i = 0; i < N; i += 100) {
      raws.push(...await Promise.all(Array.from({ length: Math.min(100, N - i) }, async () => {
        const raw = await RawEio.open(A.wsUrl, { autoPong: true });
        raw.send(`40${JSON.stringify({ token: tok })}`);
        await raw.nextStartingWith('40');
        return raw;
      })));
    }
    const connectMs = Date.now() - t0;
    await waitNumsub('user:bulk', 1);
    await sleep(200); // let the node settle before counting

    const subBefore = await redis.calls('subscribe');
    const cmdBefore = await metric(A, 'roomcast_redis_commands_total');
    const chanBefore = await metric(A, 'roomcast_redis_subscribed_channels');
    const t1 = Date.now();
    let acked = 0;
    const allAcked = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${acked}/${N} join acks within 10 s`)), 10000);
      raws.forEach((raw, i) => raw.ws.on('message', (data) => {
        const text = String(data);
        if (!text.startsWith('431')) return;
        assert.equal(text, `431[{"ok":true,"room":"bulk-${i}"}]`);
        if (++acked === N) { clearTimeout(timer); resolve(); }
      }));
    });
    raws.forEach((raw, i) => raw.send(`421["join",${JSON.stringify(`bulk-${i}`)}]`));
    await allAcked;
    const ackMs = Date.now() - t1;
    await waitUntil(async () => (await redis.channels(`${P}:room:/:bulk-*`)).length === N,
      { timeout: 10000, what: `${N} bulk-* channels subscribed` });
    const subscribedMs = Date.now() - t1;
    const subscribes = await redis.calls('subscribe') - subBefore;
    const commands = await metric(A, 'roomcast_redis_commands_total') - cmdBefore;
    assert.equal(await metric(A, 'roomcast_redis_subscribed_channels') - chanBefore, N);
    // Batched: one SUBSCRIBE (of up to 512 channels) per event-loop turn that opened rooms. How
    // many turns 1,000 joins from 1,000 connections spread over depends on how they arrive: 4-7
    // with the ASan build, 7-19 with the release build on a 2-core machine.
    assert.ok(subscribes >= 2 && subscribes <= 100, `${subscribes} SUBSCRIBE commands for ${N} rooms`);
    // The node's own count: the SUBSCRIBE batches plus a canary PUBLISH a second.
    assert.ok(commands <= subscribes + 10, `roomcast_redis_commands_total grew by ${commands}`);

    // Every room works: a publish to the last one reaches its one socket.
    const last = raws[N - 1];
    assert.equal(await redis.publish(roomChannel(`bulk-${N - 1}`), { event: 'hi', data: N - 1 }), 1);
    assert.equal(await last.nextStartingWith('42'), `42["hi",${N - 1}]`);

    // Closing them all unsubscribes in batches too.
    const unsubBefore = await redis.calls('unsubscribe');
    for (const r of raws.splice(0)) r.close();
    await waitUntil(async () => (await redis.channels(`${P}:room:/:bulk-*`)).length === 0,
      { timeout: 10000, what: 'bulk-* channels unsubscribed' });
    const unsubscribes = await redis.calls('unsubscribe') - unsubBefore;
    assert.ok(unsubscribes >= 2 && unsubscribes <= 100, `${unsubscribes} UNSUBSCRIBE commands for ${N} rooms`);
    await waitNumsub('user:bulk', 0);
    t.diagnostic(`${N} sockets connected in ${connectMs} ms; ${N} joins acked in ${ackMs} ms, all ` +
      `subscribed after ${subscribedMs} ms with ${subscribes} SUBSCRIBE (node: ${commands} commands); ` +
      `${unsubscribes} UNSUBSCRIBE on close`);
  });

  it('Redis killed and restarted: 503 then 200, relays refused while down, deliveries resume without reconnecting', T, async (t) => {
    const room = 'r-persist';
    const specs = [[A, 'alice'], [A, 'amy'], [B, 'bob'], [C, 'carol']];
    const sockets = [];
    for (const [n, sub] of specs) sockets.push(await connectTo(n, sub));
    const [a, , b] = sockets; // a (A) relays, b (B) joins a room while Redis is down
    for (const s of sockets) await join(s, room);
    await waitNumsub(room, 3);
    const ids = sockets.map((s) => s.id);
    const engineIds = sockets.map((s) => s.io.engine.id);
    const disconnects = [];
    sockets.forEach((s, i) => s.on('disconnect', (reason) => disconnects.push([i, reason])));
    const news = sockets.map((s) => collect(s, 'news'));
    const chat = sockets.map((s) => collect(s, 'chat'));
    const said = sockets.map((s) => collect(s, 'said'));
    const reconnectsBefore = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_reconnects_total')));

    // Before: a backend publish reaches all four.
    assert.equal(await redis.publish(roomChannel(room), { event: 'news', data: 'before' }), 3);
    await waitUntil(() => news.every((l) => l.length === 1), { what: '"before" everywhere' });

    const tKill = Date.now();
    await redis.kill();
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 503),
      { timeout: 5000, what: 'every node /readyz 503' });
    const downMs = Date.now() - tKill;
    const body = await httpRequest(A, 'GET', '/readyz');
    assert.equal(body.body, 'backplane down\n');
    for (const n of nodes) assert.equal(await metric(n, 'roomcast_redis_up'), 0, n.nodeId);

    // While down: a relay is refused (default error ack, no onError in the rule) and delivered
    // to no one, not even to the sender's own node; so is a relay that includes the sender.
    assert.deepEqual(await emitAck(a, 'chat', { room, text: 'while down' }), [{ ok: false, error: 'backplane_down' }]);
    assert.deepEqual(await emitAck(a, 'say', { room, n: -1 }), [{ ok: false, error: 'backplane_down' }]);
    // POST /api/publish too.
    const res = await publish(B, { ns: '/', room, event: 'news', data: 'api while down' });
    assert.equal(res.status, 503, res.body);
    assert.deepEqual(res.json(), { ok: false, error: 'backplane_down' });
    // A join while down is accepted: the membership is local, its channel is subscribed on reconnect.
    assert.deepEqual(await emitAck(b, 'join', { room: 'r-joined-while-down' }), [{ ok: true, room: 'r-joined-while-down' }]);
    await sleep(300);
    assert.deepEqual(chat.map((l) => l.length), [0, 0, 0, 0], 'nothing relayed while down');
    assert.deepEqual(said.map((l) => l.length), [0, 0, 0, 0], 'nothing relayed while down');
    assert.deepEqual(news.map((l) => l.length), [1, 1, 1, 1], 'nothing published while down');
    for (const n of nodes) assert.equal(await readyz(n), 503, `${n.nodeId} still down`);

    const tRestart = Date.now();
    await redis.restart(); // same port, empty: no subscription survives in Redis itself
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 15000, what: 'every node /readyz 200 again' });
    const upMs = Date.now() - tRestart;
    for (const n of nodes) assert.equal(await metric(n, 'roomcast_redis_up'), 1, n.nodeId);
    const reconnectsAfter = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_reconnects_total')));
    reconnectsAfter.forEach((v, i) => assert.ok(v > reconnectsBefore[i], `${nodes[i].nodeId} reconnected`));

    // Ready means resubscribed: the old room has one subscriber per node again, at once.
    assert.equal(await redis.numsub(roomChannel(room)), 3);
    assert.equal(await redis.numsub(roomChannel('r-joined-while-down')), 1);
    assert.equal(await redis.numsub(`${P}:ns:/`), 3);
    assert.equal(await redis.numsub(roomChannel('user:bob')), 1);

    // Deliveries resume on every node: backend publish, relay across nodes, the room joined while down.
    assert.equal(await redis.publish(roomChannel(room), { event: 'news', data: 'after' }), 3);
    assert.deepEqual(await emitAck(a, 'chat', { room, text: 'after' }), [{ ok: true, room }]);
    const late = waitFor(b, 'late');
    assert.equal(await redis.publish(roomChannel('r-joined-while-down'), { event: 'late', data: 'hi' }), 1);
    assert.equal(await late, 'hi');
    await waitUntil(() => news.every((l) => l.length === 2) && chat.slice(1).every((l) => l.length === 1),
      { what: 'deliveries after the restart' });
    await sleep(QUIET_MS);
    assert.deepEqual(news, sockets.map(() => [['before'], ['after']]));
    assert.deepEqual(chat, [[], [[{ room, text: 'after' }]], [[{ room, text: 'after' }]], [[{ room, text: 'after' }]]]);
    assert.deepEqual(said.map((l) => l.length), [0, 0, 0, 0]);

    // No client noticed: same socket ids, same Engine.IO sessions, no disconnect.
    assert.deepEqual(disconnects, []);
    assert.deepEqual(sockets.map((s) => s.id), ids);
    assert.deepEqual(sockets.map((s) => s.io.engine.id), engineIds);
    assert.ok(sockets.every((s) => s.connected));
    t.diagnostic(`Redis SIGKILL: every node 503 within ${downMs} ms; restarted: every node 200 within ${upMs} ms`);
  });

  it('Redis frozen (SIGSTOP): the canary marks every node down, relays are refused, SIGCONT recovers', T, async (t) => {
    const room = 'r-frozen';
    const a = await connectTo(A, 'alice');
    const b = await connectTo(B, 'bob');
    const c = await connectTo(C, 'carol');
    for (const s of [a, b, c]) await join(s, room);
    await waitNumsub(room, 3);
    const disconnects = [];
    [a, b, c].forEach((s, i) => s.on('disconnect', (reason) => disconnects.push([i, reason])));
    const chat = [b, c].map((s) => collect(s, 'chat'));
    const failuresBefore = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_canary_failures_total')));
    const ids = [a, b, c].map((s) => s.id);

    const tStop = Date.now();
    redis.freeze(); // connections stay open: only the canary (or a command timeout) can tell
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 503),
      { timeout: 6000, interval: 50, what: 'every node /readyz 503 with Redis frozen' });
    const downMs = Date.now() - tStop;
    assert.deepEqual(await emitAck(a, 'chat', { room, text: 'frozen' }), [{ ok: false, error: 'backplane_down' }]);
    const tCont = Date.now();
    redis.thaw();
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 15000, what: 'every node /readyz 200 after SIGCONT' });
    const upMs = Date.now() - tCont;
    const failuresAfter = await Promise.all(nodes.map((n) => metric(n, 'roomcast_redis_canary_failures_total')));
    const timeoutsOrCanary = await Promise.all(nodes.map(async (n, i) =>
      (failuresAfter[i] - failuresBefore[i]) + (await metric(n, 'roomcast_redis_command_timeouts_total'))));
    timeoutsOrCanary.forEach((v, i) => assert.ok(v > 0, `${nodes[i].nodeId}: a canary failure or command timeout counted`));

    assert.deepEqual(await emitAck(a, 'chat', { room, text: 'thawed' }), [{ ok: true, room }]);
    await waitUntil(() => chat.every((l) => l.length === 1), { what: 'relay after SIGCONT' });
    await sleep(QUIET_MS);
    assert.deepEqual(chat, [[[{ room, text: 'thawed' }]], [[{ room, text: 'thawed' }]]]);
    assert.deepEqual(disconnects, []);
    assert.deepEqual([a, b, c].map((s) => s.id), ids);
    t.diagnostic(`Redis SIGSTOP: every node 503 within ${downMs} ms; SIGCONT: every node 200 within ${upMs} ms`);
  });
});
