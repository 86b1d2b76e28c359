'use strict';
// Limits: maxPayload over websocket and polling, heartbeat (ping timeout), connect timeout, and the
// node's room budget (limits.maxRooms, limits.maxMemberships, on nodes of their own).
// config/limits.json: pingInterval 300, pingTimeout 200, connectTimeout 1000, maxPayload 1000.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, connect, closeClients, settle, token, waitFor, emitAck, publishOk,
  httpRequest, sleep, metrics,
} = require('./lib/node');
const { RawEio } = require('./lib/raw');

const T = { timeout: 20000 };
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const CONNECT_TIMEOUT = 1000;
const MAX_PAYLOAD = 1000;
const SLACK = 1000; // scheduling slack for an ASan build

describe('limits', () => {
  let node;
  const tok = (sub) => token({ sub, rooms: ['r*'] });

  before(async () => { node = await startNode({ config: 'limits.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('the handshake advertises the configured timings and maxPayload', T, async () => {
    const raw = await RawEio.open(node.wsUrl);
    try {
      assert.deepEqual(raw.handshake.upgrades, [], 'a websocket session offers no upgrades');
      assert.equal(raw.handshake.pingInterval, PING_INTERVAL);
      assert.equal(raw.handshake.pingTimeout, PING_TIMEOUT);
      assert.equal(raw.handshake.maxPayload, MAX_PAYLOAD);
      assert.equal(typeof raw.handshake.sid, 'string');
    } finally {
      raw.close();
    }
  });

  it('a message just under maxPayload is accepted', T, async () => {
    const s = await connect(node.url, { auth: { token: tok('alice') }, transports: ['websocket'] });
    const pad = 'p'.repeat(MAX_PAYLOAD - 100);
    assert.deepEqual(await emitAck(s, 'join', { room: 'r1', pad }), [{ ok: true, room: 'r1' }]);
  });

  it('websocket: a message over maxPayload closes that client only', T, async () => {
    const bad = client(node.url, { auth: { token: tok('mallory') }, transports: ['websocket'] });
    const good = client(node.url, { auth: { token: tok('bob') }, transports: ['websocket'] });
    await Promise.all([connected(bad), connected(good)]);
    assert.deepEqual(await emitAck(good, 'join', 'r1'), [{ ok: true, room: 'r1' }]);

    const gone = waitFor(bad, 'disconnect', 3000);
    bad.emit('join', { room: 'r1', pad: 'x'.repeat(MAX_PAYLOAD * 2) });
    const reason = await gone;
    assert.ok(['transport close', 'transport error'].includes(reason), `disconnect reason: ${reason}`);

    const got = waitFor(good, 'news');
    await publishOk(node, { ns: '/', room: 'r1', event: 'news', data: 'still alive' });
    assert.equal(await got, 'still alive');
    assert.ok(good.connected);
  });

  it('websocket: the close code for an oversize message is 1009', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: true });
    try {
      raw.send(`40${JSON.stringify({ token: tok('mallory') })}`);
      await raw.nextStartingWith('40');
      raw.send(`42["join",${JSON.stringify({ room: 'r1', pad: 'y'.repeat(MAX_PAYLOAD * 3) })}]`);
      const info = await raw.waitClosed(3000);
      assert.equal(info.code, 1009, `close code ${info.code} ${info.reason}`);
    } finally {
      raw.close();
    }
  });

  it('polling: a message over maxPayload gives the client a transport error; others keep working', T, async () => {
    const bad = client(node.url, { auth: { token: tok('mallory') }, transports: ['polling'] });
    const good = client(node.url, { auth: { token: tok('bob') }, transports: ['polling'] });
    await Promise.all([connected(bad), connected(good)]);
    assert.deepEqual(await emitAck(good, 'join', 'r2'), [{ ok: true, room: 'r2' }]);

    const gone = waitFor(bad, 'disconnect', 3000);
    bad.emit('join', { room: 'r2', pad: 'x'.repeat(MAX_PAYLOAD * 2) });
    assert.equal(await gone, 'transport error');

    const got = waitFor(good, 'news');
    await publishOk(node, { ns: '/', room: 'r2', event: 'news', data: 'polling alive' });
    assert.equal(await got, 'polling alive');
  });

  it('polling: a POST body over maxPayload is answered 413', T, async () => {
    const hs = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(hs.status, 200, hs.body);
    const { sid } = JSON.parse(hs.body.slice(1));
    const res = await httpRequest(node, 'POST', `/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
      body: `4${'z'.repeat(MAX_PAYLOAD * 2)}`,
    });
    assert.equal(res.status, 413, `${res.status} ${res.body}`);
  });

  it('a peer that stops answering pings is dropped after pingInterval + pingTimeout', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: false });
    try {
      raw.send(`40${JSON.stringify({ token: tok('sleepy') })}`);
      const ok = await raw.nextStartingWith('40');
      assert.equal(typeof JSON.parse(ok.slice(2)).sid, 'string');
      const info = await raw.waitClosed(PING_INTERVAL + PING_TIMEOUT + SLACK);
      const elapsed = info.at - raw.openedAt;
      assert.ok(raw.pings >= 1, 'the server must have sent at least one ping');
      assert.ok(elapsed >= PING_INTERVAL + PING_TIMEOUT - 100,
        `closed after ${elapsed} ms, before pingInterval + pingTimeout`);
    } finally {
      raw.close();
    }
  });

  it('a peer that answers pings stays connected across many intervals', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: true });
    try {
      raw.send(`40${JSON.stringify({ token: tok('awake') })}`);
      await raw.nextStartingWith('40');
      await sleep(Math.max(4 * (PING_INTERVAL + PING_TIMEOUT), CONNECT_TIMEOUT + 500));
      assert.ok(raw.isOpen, `closed: ${JSON.stringify(raw.closeInfo)}`);
      assert.ok(raw.pings >= 3, `only ${raw.pings} pings in ${4 * (PING_INTERVAL + PING_TIMEOUT)} ms`);
      await publishOk(node, { ns: '/', room: 'user:awake', event: 'dm', data: 1 });
      assert.equal(await raw.nextStartingWith('42'), '42["dm",1]');
    } finally {
      raw.close();
    }
  });

  it('an Engine.IO connection that never sends a Socket.IO CONNECT is closed after connectTimeout', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: true }); // answers pings: only the connect timeout applies
    try {
      const info = await raw.waitClosed(CONNECT_TIMEOUT + SLACK);
      const elapsed = info.at - raw.openedAt;
      assert.ok(elapsed >= CONNECT_TIMEOUT - 100, `closed after ${elapsed} ms, before connectTimeout`);
    } finally {
      raw.close();
    }
  });

  it('a client-originated ping (invalid heartbeat direction in v4) does not crash the node', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: true });
    try {
      raw.send('2');
      await Promise.race([raw.closed, sleep(300)]);
    } finally {
      raw.close();
    }
    const h = await httpRequest(node, 'GET', '/healthz');
    assert.equal(h.status, 200);
    node.assertAlive();
  });
});

describe('the node\'s room budget', () => {
  let node = null; // each test starts its own, with its budget
  const tok = (sub) => token({ sub, rooms: ['r*'] });
  const as = (sub) => connect(node.url, { auth: { token: tok(sub) }, transports: ['websocket'] });
  const join = (s, room) => emitAck(s, 'join', room).then((a) => a[0]);
  const leave = (s, room) => emitAck(s, 'leave', room).then((a) => a[0]);
  const sum = (m, family) => [...m].filter(([k]) => k === family || k.startsWith(`${family}{`)).reduce((a, [, v]) => a + v, 0);

  afterEach(async () => {
    closeClients();
    if (node) await node.stop();
    node = null;
  });

  it('limits.maxRooms: a join that would open a room past it is refused with room_limit; members and user rooms unaffected; leaving frees it', T, async () => {
    node = await startNode({ config: 'limits.json', overrides: { engine: { pingInterval: 5000, pingTimeout: 5000, connectTimeout: 5000 }, limits: { maxRooms: 12 } } });
    const bystander = await as('bystander');                        // user:bystander: 1 room
    assert.deepEqual(await join(bystander, 'r-by'), { ok: true, room: 'r-by' }); // 2
    const hog = await as('hog');                                    // user:hog: 3
    const accepted = [];
    let refusal = null;
    for (let i = 0; i < 30 && !refusal; i++) {
      const a = await join(hog, `r-${i}`);
      if (a.ok) accepted.push(`r-${i}`); else refusal = a;
    }
    assert.deepEqual(refusal, { ok: false, error: 'room_limit' });
    assert.equal(accepted.length, 9, 'rooms 4..12');
    let m = await metrics(node);
    assert.equal(sum(m, 'roomcast_rooms'), 12);
    assert.equal(m.get('roomcast_joins_refused_total{limit="maxRooms"}'), 1);
    // Nobody opens a new room now, but joining an existing one is a membership, not a room.
    assert.deepEqual(await join(bystander, 'r-new'), { ok: false, error: 'room_limit' });
    assert.deepEqual(await join(bystander, 'r-0'), { ok: true, room: 'r-0' });
    // The bystander's rooms still deliver, and a new client still connects with its user room.
    const got = waitFor(bystander, 'news');
    await publishOk(node, { ns: '/', room: 'r-by', event: 'news', data: 'still here' });
    assert.equal(await got, 'still here');
    const late = await as('late');
    const dm = waitFor(late, 'dm');
    await publishOk(node, { ns: '/', room: 'user:late', event: 'dm', data: 1 });
    assert.equal(await dm, 1);
    // Leaving frees the budget: a room closes (its last member left) and another can open. The
    // late user's room counts too (13 now): two closes make room for one.
    assert.deepEqual(await leave(hog, 'r-1'), { ok: true, room: 'r-1' });
    late.disconnect();
    await sleep(100);
    assert.deepEqual(await join(hog, 'r-new'), { ok: true, room: 'r-new' });
    m = await metrics(node);
    assert.equal(sum(m, 'roomcast_rooms'), 12);
    assert.ok(bystander.connected && hog.connected);
  });

  it('limits.maxMemberships: a join past it is refused with room_limit; the room still reaches its members; leaving frees it', T, async () => {
    node = await startNode({ config: 'limits.json', overrides: { engine: { pingInterval: 5000, pingTimeout: 5000, connectTimeout: 5000 }, limits: { maxMemberships: 6 } } });
    const [a, b, c] = [await as('mem-a'), await as('mem-b'), await as('mem-c')]; // 3 user rooms
    for (const s of [a, b, c]) assert.deepEqual(await join(s, 'r-shared'), { ok: true, room: 'r-shared' }); // 6
    assert.deepEqual(await join(c, 'r-other'), { ok: false, error: 'room_limit' });
    let m = await metrics(node);
    assert.equal(m.get('roomcast_memberships'), 6);
    assert.equal(m.get('roomcast_joins_refused_total{limit="maxMemberships"}'), 1);
    const all = [a, b, c].map((s) => waitFor(s, 'news'));
    await publishOk(node, { ns: '/', room: 'r-shared', event: 'news', data: 'to all three' });
    assert.deepEqual(await Promise.all(all), ['to all three', 'to all three', 'to all three']);
    assert.deepEqual(await leave(c, 'r-shared'), { ok: true, room: 'r-shared' });
    assert.deepEqual(await join(c, 'r-other'), { ok: true, room: 'r-other' });
    m = await metrics(node);
    assert.equal(m.get('roomcast_memberships'), 6);
  });
});

