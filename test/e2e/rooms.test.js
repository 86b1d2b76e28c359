'use strict';
// Rooms: join, leave and relay through rules; isolation between rooms; includeSender false.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, settle, token, waitFor, waitForArgs, expectNoEvent, emitAck,
  publishOk, collect, sleep,
} = require('./lib/node');

const T = { timeout: 20000 };
const QUIET_MS = 400; // how long "receives nothing" is watched

async function connectAll(node, specs) {
  const sockets = specs.map(({ sub, rooms = ['r*'], ...opts }) =>
    client(node.url, { auth: { token: token({ sub, rooms }) }, ...opts }));
  await Promise.all(sockets.map((s) => connected(s)));
  return sockets;
}

async function join(socket, room) {
  assert.deepEqual(await emitAck(socket, 'join', { room }), [{ ok: true, room }], `join ${room}`);
}

describe('rooms', () => {
  let node;

  before(async () => { node = await startNode({ config: 'rooms.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('join, relay to the room (sender included), leave', T, async () => {
    const [a, b] = await connectAll(node, [{ sub: 'alice' }, { sub: 'bob', transports: ['polling'] }]);
    await join(a, 'r1');
    await join(b, 'r1');
    const gotA = waitFor(a, 'said');
    const gotB = waitFor(b, 'said');
    assert.deepEqual(await emitAck(a, 'say', { room: 'r1', text: 'hi' }), [{ ok: true, room: 'r1' }]);
    assert.deepEqual(await gotA, { from: 'alice', text: 'hi' });
    assert.deepEqual(await gotB, { from: 'alice', text: 'hi' });

    assert.deepEqual(await emitAck(b, 'leave', { room: 'r1' }), [{ ok: true, room: 'r1' }]);
    const gotA2 = waitFor(a, 'said');
    const noB = expectNoEvent(b, 'said', QUIET_MS);
    assert.deepEqual(await emitAck(a, 'say', { room: 'r1', text: 'after leave' }), [{ ok: true, room: 'r1' }]);
    assert.deepEqual(await gotA2, { from: 'alice', text: 'after leave' });
    await noB;
  });

  it('relay with requireMember from a non-member is refused with "forbidden" and delivers nothing', T, async () => {
    const [a, c] = await connectAll(node, [{ sub: 'alice' }, { sub: 'carol' }]);
    await join(a, 'r1');
    const noA = expectNoEvent(a, 'said', QUIET_MS);
    assert.deepEqual(await emitAck(c, 'say', { room: 'r1', text: 'intruder' }), [{ ok: false, error: 'forbidden' }]);
    await noA;
  });

  it('isolation: nothing from a room never joined, nothing after leaving', T, async () => {
    const [a, b, c] = await connectAll(node, [{ sub: 'alice' }, { sub: 'bob' }, { sub: 'carol' }]);
    await join(a, 'r1');
    await join(a, 'r2');
    await join(b, 'r1');
    // c joins nothing

    const seen = { a: collect(a, 'said'), b: collect(b, 'said'), c: collect(c, 'said') };
    const yelled = { a: collect(a, 'yelled'), b: collect(b, 'yelled'), c: collect(c, 'yelled') };
    const news = { a: collect(a, 'news'), b: collect(b, 'news'), c: collect(c, 'news') };

    await emitAck(a, 'say', { room: 'r2', text: 'r2 only' });
    await emitAck(c, 'yell', { room: 'r2', text: 'from outside' }); // c is not in r2 and must not hear it
    await publishOk(node, { ns: '/', room: 'r2', event: 'news', data: 'r2 news' });
    await sleep(QUIET_MS);
    assert.deepEqual(seen.a, [[{ from: 'alice', text: 'r2 only' }]]);
    assert.deepEqual(seen.b, [], 'b is not in r2');
    assert.deepEqual(seen.c, [], 'c is not in r2');
    assert.deepEqual(yelled.a, [['from outside']]);
    assert.deepEqual(yelled.b, []);
    assert.deepEqual(yelled.c, [], 'the yelling socket is not in r2 and must not receive it');
    assert.deepEqual(news.a, [['r2 news']]);
    assert.deepEqual(news.b, []);
    assert.deepEqual(news.c, []);

    // b leaves r1: neither relays nor publishes to r1 reach it any more
    assert.deepEqual(await emitAck(b, 'leave', 'r1'), [{ ok: true, room: 'r1' }]);
    await emitAck(a, 'say', { room: 'r1', text: 'r1 after b left' });
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'r1 news' });
    await emitAck(c, 'yell', { room: 'r1', text: 'r1 yell' });
    await sleep(QUIET_MS);
    assert.deepEqual(seen.a.slice(1), [[{ from: 'alice', text: 'r1 after b left' }]]);
    assert.deepEqual(seen.b, []);
    assert.deepEqual(news.a.slice(1), [['r1 news']]);
    assert.deepEqual(news.b, [], 'b left r1 and must not receive its publishes');
    assert.deepEqual(yelled.b, [], 'b left r1 and must not receive its relays');
    assert.deepEqual(news.c, []);

    // leaving a room one is not in is harmless; a room can be joined again
    assert.deepEqual(await emitAck(c, 'leave', 'r7'), [{ ok: true, room: 'r7' }]);
    await join(b, 'r1');
    const back = waitFor(b, 'news');
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'welcome back' });
    assert.equal(await back, 'welcome back');
  });

  it('rooms of a disconnected socket are cleaned up; other members keep receiving', T, async () => {
    const [a, b] = await connectAll(node, [{ sub: 'alice' }, { sub: 'bob' }]);
    await join(a, 'r5');
    await join(b, 'r5');
    a.disconnect();
    await sleep(100);
    const gotB = waitFor(b, 'news');
    await publishOk(node, { ns: '/', room: 'r5', event: 'news', data: 'still here' });
    assert.equal(await gotB, 'still here');
  });

  it('includeSender false: the sending socket is skipped, the same user\'s other socket receives', T, async () => {
    const [a1, a2, b] = await connectAll(node, [{ sub: 'alice' }, { sub: 'alice' }, { sub: 'bob' }]);
    await join(a1, 'r3');
    await join(a2, 'r3');
    await join(b, 'r3');
    const gotA2 = waitForArgs(a2, 'shout');
    const gotB = waitForArgs(b, 'shout');
    const noA1 = expectNoEvent(a1, 'shout', QUIET_MS);
    const payload = [{ room: 'r3', text: 'hey' }, 2, ['three']];
    assert.deepEqual(await emitAck(a1, 'shout', ...payload), [{ ok: true, room: 'r3' }]);
    assert.deepEqual(await gotA2, payload, 'relay without args/data forwards the received arguments');
    assert.deepEqual(await gotB, payload);
    await noA1;
  });
});
