'use strict';
// Transports: polling with upgrade to websocket (the client's default), websocket only, polling
// only, and several namespaces multiplexed over one Engine.IO connection.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const {
  startNode, client, connected, connect, connectError, closeClients, settle, token, waitFor, waitForArgs,
  emitAck, publishOk, sleep,
} = require('./lib/node');

const T = { timeout: 20000 };

describe('transports', () => {
  let node;
  const auth = (sub = 'alice') => ({ token: token({ sub, rooms: ['r*'] }) });

  before(async () => { node = await startNode({ config: 'transports.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('default options: starts on polling, upgrades to websocket, events flow both ways', T, async () => {
    const socket = client(node.url, { auth: auth() });
    const engine = socket.io.engine;
    assert.ok(engine, 'the Manager opens its engine synchronously');
    assert.equal(engine.transport.name, 'polling', 'the default client starts with polling');
    const upgraded = waitForArgs(engine, 'upgrade', 5000);
    await connected(socket);
    const [transport] = await upgraded;
    assert.equal(transport.name, 'websocket', "the 'upgrade' event carries the websocket transport");
    assert.equal(socket.io.engine.transport.name, 'websocket');

    // client -> server with ack, over the upgraded transport
    assert.deepEqual(await emitAck(socket, 'join', { room: 'r1' }), [{ ok: true, room: 'r1' }]);
    // server -> client: a rule's emit and a publish
    const pong = waitFor(socket, 'pong-you');
    socket.emit('ping-me', { n: 1 });
    assert.deepEqual(await pong, { ns: '/', got: { n: 1 } });
    const got = waitFor(socket, 'news');
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: { n: 2 } });
    assert.deepEqual(await got, { n: 2 });
    assert.equal(socket.io.engine.transport.name, 'websocket');
  });

  it('websocket only', T, async () => {
    const socket = await connect(node.url, { auth: auth(), transports: ['websocket'] });
    assert.equal(socket.io.engine.transport.name, 'websocket');
    assert.deepEqual(await emitAck(socket, 'hello', 'there'), [{ ns: '/', user: 'alice', got: 'there' }]);
    assert.deepEqual(await emitAck(socket, 'join', 'r2'), [{ ok: true, room: 'r2' }]);
    const got = waitFor(socket, 'news');
    await publishOk(node, { ns: '/', room: 'r2', event: 'news', data: 'ws' });
    assert.equal(await got, 'ws');
  });

  it('polling only: stays on polling across several heartbeats, events flow both ways', T, async () => {
    const socket = await connect(node.url, { auth: auth(), transports: ['polling'] });
    assert.equal(socket.io.engine.transport.name, 'polling');
    assert.deepEqual(await emitAck(socket, 'join', { room: 'r3' }), [{ ok: true, room: 'r3' }]);

    // survive a few ping cycles (pingInterval 500 ms): pings must reach the client over polling
    let disconnected = null;
    socket.on('disconnect', (reason) => { disconnected = reason; });
    await sleep(1600);
    assert.equal(disconnected, null, 'the polling client must not be dropped by the heartbeat');
    assert.ok(socket.connected);
    assert.equal(socket.io.engine.transport.name, 'polling');

    const pong = waitFor(socket, 'pong-you');
    socket.emit('ping-me', 'over polling');
    assert.deepEqual(await pong, { ns: '/', got: 'over polling' });
    const got = waitFor(socket, 'news');
    await publishOk(node, { ns: '/', room: 'r3', event: 'news', data: { via: 'polling' } });
    assert.deepEqual(await got, { via: 'polling' });
    // several events queued at once come out in order in one or more polls
    const seen = [];
    const all = new Promise((resolve) => socket.on('seq', (n) => { seen.push(n); if (seen.length === 5) resolve(); }));
    for (let i = 0; i < 5; i++) await publishOk(node, { ns: '/', room: 'r3', event: 'seq', data: i });
    await Promise.race([all, sleep(3000)]);
    assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    assert.equal(socket.io.engine.transport.name, 'polling');
  });

  it('a second namespace over the same Manager shares the Engine.IO connection', T, async () => {
    const opts = { forceNew: false, reconnection: false, timeout: 5000, auth: auth('bob') };
    const main = io(node.url, opts);
    const admin = io(`${node.url}/admin`, opts);
    try {
      assert.equal(main.io, admin.io, 'io(url) and io(url + "/admin") share one Manager');
      await Promise.all([connected(main), connected(admin)]);
      assert.equal(main.io.engine, admin.io.engine);
      assert.ok(main.id && admin.id && main.id !== admin.id, 'each namespace socket has its own id');
      assert.notEqual(main.id, main.io.engine.id, 'the Socket.IO id is not the Engine.IO sid');

      const [who] = await emitAck(admin, 'whoami');
      assert.deepEqual(who, { ns: '/admin', user: 'bob', sid: admin.id });
      assert.deepEqual(await emitAck(main, 'hello', 1), [{ ns: '/', user: 'bob', got: 1 }]);

      // an event for /admin does not reach /, and the reverse
      const adminNews = waitFor(admin, 'news');
      let mainGot = false;
      main.on('news', () => { mainGot = true; });
      await publishOk(node, { ns: '/admin', room: 'user:bob', event: 'news', data: 'admin only' });
      assert.equal(await adminNews, 'admin only');
      await sleep(200);
      assert.equal(mainGot, false, 'a publish to /admin reached the / socket');

      // leaving one namespace keeps the other one and the connection
      admin.disconnect();
      await sleep(200);
      assert.ok(main.connected);
      assert.deepEqual(await emitAck(main, 'hello', 2), [{ ns: '/', user: 'bob', got: 2 }]);
    } finally {
      main.disconnect();
      admin.disconnect();
      main.io.engine && main.io.engine.close();
    }
  });

  it('an unknown namespace gets CONNECT_ERROR "Invalid namespace"', T, async () => {
    const err = await connectError(`${node.url}/nope`, { auth: auth() });
    assert.equal(err.message, 'Invalid namespace');
  });
});
