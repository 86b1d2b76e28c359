'use strict';
// Acknowledgements both ways: client -> server acks answered by rules (the built-in join/leave,
// `ack`, `ackArgs`), and server -> client acks (`emit` with `onAck`).

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, connect, client, connected, closeClients, settle, checkAlive, token, waitFor, waitForArgs, emitAck,
} = require('./lib/node');

const T = { timeout: 20000 };

describe('acks with the built-in default rules', () => {
  let node;
  let socket;

  before(async () => { node = await startNode({ config: 'default.json' }); });
  afterEach(() => node && checkAlive(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('join answers {ok:true, room} for an allowed room, object or bare name', T, async () => {
    socket = await connect(node.url, { auth: { token: token({ sub: 'alice', rooms: ['r*', 'project_*'] }) } });
    assert.deepEqual(await emitAck(socket, 'join', { room: 'r1' }), [{ ok: true, room: 'r1' }]);
    assert.deepEqual(await emitAck(socket, 'join', 'project_p1'), [{ ok: true, room: 'project_p1' }]);
    assert.deepEqual(await emitAck(socket, 'join', { room: 'user:alice' }), [{ ok: true, room: 'user:alice' }],
      'a user may always join its own user room');
  });

  it('join of a room outside the token\'s rooms claim answers {ok:false, error:"forbidden"}', T, async () => {
    assert.deepEqual(await emitAck(socket, 'join', { room: 'secret' }), [{ ok: false, error: 'forbidden' }]);
    assert.deepEqual(await emitAck(socket, 'join', 'user:bob'), [{ ok: false, error: 'forbidden' }],
      "another user's room is not allowed");
  });

  it('join with no usable room answers {ok:false, error:"bad_room"}', T, async () => {
    assert.deepEqual(await emitAck(socket, 'join', { nope: 1 }), [{ ok: false, error: 'bad_room' }]);
    assert.deepEqual(await emitAck(socket, 'join', 42), [{ ok: false, error: 'bad_room' }]);
  });

  it('leave answers {ok:true, room}', T, async () => {
    assert.deepEqual(await emitAck(socket, 'leave', { room: 'r1' }), [{ ok: true, room: 'r1' }]);
    assert.deepEqual(await emitAck(socket, 'leave', 'project_p1'), [{ ok: true, room: 'project_p1' }]);
  });

  it('an event with no rule gets {ok:false, error:"unknown_event"} when an ack is asked for', T, async () => {
    assert.deepEqual(await emitAck(socket, 'no-such-event', 1), [{ ok: false, error: 'unknown_event' }]);
    // and without an ack it is ignored: the socket stays usable
    socket.emit('no-such-event', 2);
    assert.deepEqual(await emitAck(socket, 'join', 'r9'), [{ ok: true, room: 'r9' }]);
  });

  it('a user without a rooms claim may only join its own room', T, async () => {
    const s = await connect(node.url, { auth: { token: token({ sub: 'carol' }) } });
    assert.deepEqual(await emitAck(s, 'join', 'r1'), [{ ok: false, error: 'forbidden' }]);
    assert.deepEqual(await emitAck(s, 'join', 'user:carol'), [{ ok: true, room: 'user:carol' }]);
  });
});

describe('acks with custom rules', () => {
  let node;

  before(async () => { node = await startNode({ config: 'acks.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('ackArgs "{args}" echoes every argument with its JSON type', T, async () => {
    const socket = await connect(node.url, { auth: { token: token({ sub: 'alice' }) } });
    const args = [1, 'two', { three: 3, nested: { list: [1, null, true, 'x'] } }, [4, 5], null, false, 2.5, 'ünïcødé ✓'];
    assert.deepEqual(await emitAck(socket, 'echo', ...args), args);
    assert.deepEqual(await emitAck(socket, 'echo'), [], 'no arguments echo as an empty ack');
    // ack ids are per socket and increase: many concurrent acks all come back to the right caller
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => emitAck(socket, 'echo', i, `n${i}`)));
    many.forEach((res, i) => assert.deepEqual(res, [i, `n${i}`]));
  });

  it('ack templates see user, sid, ns, event and claims', T, async () => {
    const socket = await connect(node.url, { auth: { token: token({ sub: 'dave', role: 'admin' }) } });
    assert.deepEqual(await emitAck(socket, 'whoami'),
      [{ user: 'dave', sid: socket.id, ns: '/', event: 'whoami', role: 'admin' }]);
  });

  it('a failed action without onError answers {ok:false, error:<reason>}', T, async () => {
    const socket = await connect(node.url, { auth: { token: token({ sub: 'alice' }) } });
    assert.deepEqual(await emitAck(socket, 'bad-room', {}), [{ ok: false, error: 'bad_room' }]);
  });

  it('server -> client ack: emit with onAck runs its actions with the client\'s answer', T, async () => {
    const socket = await connect(node.url, { auth: { token: token({ sub: 'erin' }) } });
    const question = waitForArgs(socket, 'question');
    const answer = waitFor(socket, 'answer');
    socket.emit('ask', { q: 'life' });
    const [data, cb] = await question;
    assert.deepEqual(data, { q: 'life' });
    assert.equal(typeof cb, 'function', 'the server must ask for an ack (an ack id on the EVENT)');
    cb({ a: 42 }, 'second');
    assert.deepEqual(await answer, { first: { a: 42 }, all: [{ a: 42 }, 'second'], user: 'erin' });
  });

  it('server -> client acks on two sockets are routed to their own socket', T, async () => {
    const a = client(node.url, { auth: { token: token({ sub: 'u-a' }) } });
    const b = client(node.url, { auth: { token: token({ sub: 'u-b' }) } });
    await Promise.all([connected(a), connected(b)]);
    a.on('question', (d, cb) => cb(`a:${d.q}`));
    b.on('question', (d, cb) => cb(`b:${d.q}`));
    const ansA = waitFor(a, 'answer');
    const ansB = waitFor(b, 'answer');
    a.emit('ask', { q: 1 });
    b.emit('ask', { q: 2 });
    assert.deepEqual(await ansA, { first: 'a:1', all: ['a:1'], user: 'u-a' });
    assert.deepEqual(await ansB, { first: 'b:2', all: ['b:2'], user: 'u-b' });
  });
});
