'use strict';
// A token that expires while its socket is connected (jwt.onExpiry, jwt.expiredEvent).
// The node ends the socket's authorisation at the first second in which a CONNECT with the same
// token would be refused (exp + jwt.leeway, rounded up to the next whole second), through the
// ordinary close paths: rooms are left, the sockets gauge and the rooms gauge drop, and
// roomcast_disconnects_total{reason="token_expired"} counts it.
//   "reconnect" (default): the Engine.IO connection is closed; socket.io-client reconnects by
//     itself ("transport close") and sends its auth again: an auth callback supplies a fresh token,
//     a stale static token gets CONNECT_ERROR unauthorized/expired.
//   "disconnect": namespace DISCONNECT ("io server disconnect"), no automatic reconnect.
//   "ignore": the socket keeps its access (tokens are checked at CONNECT only).
// Timing is asserted only as "not before the end of the token, and within a bounded margin after".

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, connect, closeClients, settle, token, nowS, sleep, waitFor,
  waitForArgs, expectNoEvent, emitAck, publishOk, httpRequest, collect, metrics,
} = require('./lib/node');

const T = { timeout: 30000 };
const MARGIN_MS = 3000; // how late after the token's end the close may be seen (ASan, loaded machine)

// A token for `sub` (rooms r*) that expires `secs` seconds from now.
function shortToken(sub, secs) {
  const exp = nowS() + secs;
  return { exp, tok: token({ sub, rooms: ['r*'], exp }) };
}
const longToken = (sub) => token({ sub, rooms: ['r*'] }); // an hour
const noExpToken = (sub) => token({ sub, rooms: ['r*'] }, { noExpiry: true });

// Wall-clock ms from which the node no longer honours a token (a CONNECT with it is refused).
const endOf = (exp, leeway) => (exp + leeway + 1) * 1000;

// The node's socket and room counts and its expiries, from /metrics.
async function counts(node) {
  const m = await metrics(node);
  return {
    sockets: m.get('roomcast_sockets{namespace="/"}'),
    rooms: m.get('roomcast_rooms{namespace="/"}'),
    expired: m.get('roomcast_disconnects_total{reason="token_expired"}'),
  };
}

// Waits until the previous test's sockets are gone, so that gauges start from zero.
async function idle(node) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const m = await counts(node);
    if (m.sockets === 0 && m.rooms === 0) return m;
    assert.ok(Date.now() < deadline, `node not idle: ${JSON.stringify(m)}`);
    await sleep(50);
  }
}

// Resolves with {reason, at} on the socket's next disconnect.
async function nextDisconnect(socket, timeoutMs) {
  const [reason] = await waitForArgs(socket, 'disconnect', timeoutMs);
  return { reason, at: Date.now() };
}

function assertOnTime(t, at, exp, leeway) {
  const end = endOf(exp, leeway);
  assert.ok(at >= end, `closed ${end - at} ms before the token's end`);
  assert.ok(at <= end + MARGIN_MS, `closed ${at - end} ms after the token's end (margin ${MARGIN_MS} ms)`);
  t.diagnostic(`client saw the close ${at - end} ms after the token's end`);
}

async function joined(socket, room) {
  assert.deepEqual(await emitAck(socket, 'join', room), [{ ok: true, room }]);
}

describe('token expiry: "reconnect" (the default)', () => {
  const LEEWAY = 1;
  let node;

  before(async () => { node = await startNode({ overrides: { jwt: { leeway: LEEWAY } } }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  for (const transport of ['websocket', 'polling']) {
    it(`closes the connection at expiry and the socket leaves its rooms; no-exp and later tokens are untouched (${transport})`, T, async (t) => {
      const m0 = await idle(node);
      const { exp, tok } = shortToken('ann', 1);
      const ann = client(node.url, { auth: { token: tok }, transports: [transport] });
      const bob = client(node.url, { auth: { token: longToken('bob') } });
      const cat = client(node.url, { auth: { token: noExpToken('cat') } });
      await Promise.all([connected(ann), connected(bob), connected(cat)]);
      for (const s of [ann, bob, cat]) await joined(s, 'r1');
      const annGot = collect(ann, 'news');
      const lost = [collect(bob, 'disconnect'), collect(cat, 'disconnect')];

      // authorised until the end of its token
      const before1 = waitFor(ann, 'news');
      await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'before' });
      assert.equal(await before1, 'before');
      const m1 = await counts(node);
      assert.equal(m1.sockets, m0.sockets + 3);
      assert.equal(m1.rooms, m0.rooms + 4); // user:ann, user:bob, user:cat, r1

      const { reason, at } = await nextDisconnect(ann, endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 1000);
      assert.equal(reason, 'transport close');
      assertOnTime(t, at, exp, LEEWAY);

      // the node cleaned up as for any other disconnect: one socket and its user room fewer, r1 stays
      const m2 = await counts(node);
      assert.equal(m2.sockets, m0.sockets + 2);
      assert.equal(m2.rooms, m0.rooms + 3);
      assert.equal(m2.expired, m0.expired + 1);

      // a message to its room still reaches the other members, not it
      const bobGot = waitFor(bob, 'news');
      const catGot = waitFor(cat, 'news');
      await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'after' });
      assert.equal(await bobGot, 'after');
      assert.equal(await catGot, 'after');
      await publishOk(node, { ns: '/', room: 'user:ann', event: 'news', data: 'to ann' });
      await sleep(200);
      assert.deepEqual(annGot.map((a) => a[0]), ['before']);

      // a token without exp, and one that is still valid, are never touched
      assert.ok(bob.connected && cat.connected);
      assert.deepEqual(lost.map((l) => l.length), [0, 0]);
      assert.deepEqual(await emitAck(cat, 'join', 'r2'), [{ ok: true, room: 'r2' }]);
    });
  }

  it('with an auth callback the client reconnects by itself with a fresh token and works again', T, async (t) => {
    const { exp, tok } = shortToken('dan', 1);
    let calls = 0;
    const dan = client(node.url, {
      transports: ['websocket'], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500,
      auth: (cb) => { calls += 1; cb({ token: calls === 1 ? tok : longToken('dan') }); },
    });
    const eve = client(node.url, { auth: { token: longToken('eve') } });
    await Promise.all([connected(dan), connected(eve)]);
    await joined(dan, 'r1');
    await joined(eve, 'r1');
    const firstId = dan.id;

    const reconnected = waitFor(dan, 'connect', endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 5000);
    const { reason, at } = await nextDisconnect(dan, endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 1000);
    assert.equal(reason, 'transport close');
    assertOnTime(t, at, exp, LEEWAY);
    await reconnected;
    assert.equal(calls, 2, 'the auth callback ran again for the reconnection');
    assert.notEqual(dan.id, firstId, 'a new socket');

    // the old socket's rooms are gone: r1 reaches eve only until dan joins again
    const eveGot = waitFor(eve, 'news');
    const danSilent = expectNoEvent(dan, 'news', 400);
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'not yet' });
    assert.equal(await eveGot, 'not yet');
    await danSilent;

    // the new socket is authorised: its user room and a join work
    const dm = waitFor(dan, 'news');
    await publishOk(node, { ns: '/', room: 'user:dan', event: 'news', data: 'welcome back' });
    assert.equal(await dm, 'welcome back');
    await joined(dan, 'r1');
    const again = waitFor(dan, 'news');
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'again' });
    assert.equal(await again, 'again');
  });

  it('with a stale static token the reconnection is refused: connect_error unauthorized/expired', T, async (t) => {
    const { exp, tok } = shortToken('fay', 1);
    const fay = client(node.url, {
      auth: { token: tok }, transports: ['websocket'], reconnection: true, reconnectionDelay: 200,
      reconnectionDelayMax: 500,
    });
    await connected(fay);
    const refused = waitFor(fay, 'connect_error', endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 5000);
    const { reason, at } = await nextDisconnect(fay, endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 1000);
    assert.equal(reason, 'transport close');
    assertOnTime(t, at, exp, LEEWAY);
    const err = await refused;
    assert.equal(err.message, 'unauthorized');
    assert.deepEqual(err.data, { code: 'expired' });
    await expectNoEvent(fay, 'connect', 1000);
    assert.equal(fay.connected, false);
    assert.equal(fay.active, false, 'socket.io-client stops trying after a CONNECT_ERROR');
  });
});

describe('token expiry: "disconnect" with jwt.expiredEvent', () => {
  const LEEWAY = 0;
  let node;

  before(async () => {
    node = await startNode({ overrides: { jwt: { leeway: LEEWAY, onExpiry: 'disconnect', expiredEvent: 'auth:expired' } } });
  });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  for (const transport of ['websocket', 'polling']) {
    it(`sends the event, then a namespace DISCONNECT: "io server disconnect", no reconnect (${transport})`, T, async (t) => {
      const m0 = await idle(node);
      const { exp, tok } = shortToken('gus', 2);
      const gus = client(node.url, {
        auth: { token: tok }, transports: [transport], reconnection: true, reconnectionDelay: 200,
      });
      const hal = await connect(node.url, { auth: { token: longToken('hal') } });
      await connected(gus);
      await joined(gus, 'r1');
      await joined(hal, 'r1');

      const seen = [];
      gus.on('auth:expired', (data) => seen.push(['auth:expired', data]));
      const halSaw = collect(hal, 'auth:expired');
      const { reason, at } = await nextDisconnect(gus, endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 1000);
      seen.push(['disconnect', reason]);
      assertOnTime(t, at, exp, LEEWAY);
      assert.deepEqual(seen, [['auth:expired', { code: 'expired' }], ['disconnect', 'io server disconnect']]);
      assert.equal(halSaw.length, 0, 'only the expired socket hears the event');

      await expectNoEvent(gus, 'connect', 1500);
      assert.equal(gus.connected, false);
      assert.equal(gus.active, false, 'no automatic reconnection after "io server disconnect"');

      const m1 = await counts(node);
      assert.equal(m1.sockets, m0.sockets + 1);
      assert.equal(m1.rooms, m0.rooms + 2); // user:hal, r1
      assert.equal(m1.expired, m0.expired + 1);
      const halGot = waitFor(hal, 'news');
      await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'still here' });
      assert.equal(await halGot, 'still here');
      assert.ok(hal.connected);
    });
  }
});

describe('token expiry: "reconnect" with jwt.expiredEvent', () => {
  const LEEWAY = 0;
  let node;

  before(async () => { node = await startNode({ overrides: { jwt: { leeway: LEEWAY, expiredEvent: 'auth:expired' } } }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  // Over polling the event answers the pending GET, so the session's end reaches the client as its
  // next GET being refused ("transport error") rather than as a close packet; it reconnects either way.
  for (const [transport, reasons] of [['websocket', ['transport close']], ['polling', ['transport close', 'transport error']]]) {
    it(`the event arrives before the close, then the client reconnects (${transport})`, T, async (t) => {
      const { exp, tok } = shortToken('jon', 1);
      let calls = 0;
      const jon = client(node.url, {
        transports: [transport], reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500,
        auth: (cb) => { calls += 1; cb({ token: calls === 1 ? tok : longToken('jon') }); },
      });
      await connected(jon);
      const seen = [];
      jon.on('auth:expired', (data) => seen.push(['auth:expired', data]));
      const back = waitFor(jon, 'connect', endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 5000);
      const { reason, at } = await nextDisconnect(jon, endOf(exp, LEEWAY) - Date.now() + MARGIN_MS + 1000);
      seen.push(['disconnect', reason]);
      assertOnTime(t, at, exp, LEEWAY);
      assert.deepEqual(seen[0], ['auth:expired', { code: 'expired' }]);
      assert.ok(reasons.includes(reason), `disconnect reason ${reason}`);
      t.diagnostic(`disconnect reason: ${reason}`);
      await back;
      assert.equal(calls, 2);
      const dm = waitFor(jon, 'news');
      await publishOk(node, { ns: '/', room: 'user:jon', event: 'news', data: 'back' });
      assert.equal(await dm, 'back');
    });
  }
});

describe('token expiry: "ignore"', () => {
  const LEEWAY = 0;
  let node;

  before(async () => { node = await startNode({ overrides: { jwt: { leeway: LEEWAY, onExpiry: 'ignore' } } }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('keeps the socket and its access past the end of its token', T, async (t) => {
    const m0 = await idle(node);
    const { exp, tok } = shortToken('ivy', 1);
    const ivy = await connect(node.url, { auth: { token: tok } });
    await joined(ivy, 'r1');
    const lost = collect(ivy, 'disconnect');
    await sleep(Math.max(0, endOf(exp, LEEWAY) + 1500 - Date.now()));

    assert.ok(ivy.connected);
    assert.equal(lost.length, 0);
    const got = waitFor(ivy, 'news');
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'kept' });
    assert.equal(await got, 'kept');
    assert.deepEqual(await emitAck(ivy, 'join', 'r2'), [{ ok: true, room: 'r2' }]);
    assert.equal((await counts(node)).expired, m0.expired);
  });
});
