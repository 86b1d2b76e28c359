'use strict';
// POST /api/publish: room and namespace broadcasts, "data" and "args" forms, authentication and
// input errors. Nothing is guessed (docs/redis.md, "Publishing from a backend"): an unknown or
// repeated key, text after the JSON, a missing target or two targets is a 400 naming the field,
// and nobody receives anything; a namespace-wide broadcast needs "broadcast": true.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, waitFor, waitForArgs, expectNoEvent, emitAck,
  publish, publishOk, httpRequest, collect, sleep, checkAlive, metric, API_KEY,
} = require('./lib/node');

const T = { timeout: 20000 };
const QUIET_MS = 400;

describe('POST /api/publish', () => {
  let node;
  let a; // alice, in r1
  let b; // bob, in no room but its own
  let o; // alice on /other

  before(async () => {
    node = await startNode({ config: 'publish.json' });
  });
  afterEach(() => node && checkAlive(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('setup: sockets on / and /other', T, async () => {
    a = client(node.url, { auth: { token: token({ sub: 'alice', rooms: ['r*'] }) } });
    b = client(node.url, { auth: { token: token({ sub: 'bob', rooms: ['r*'] }) }, transports: ['polling'] });
    o = client(`${node.url}/other`, { auth: { token: token({ sub: 'alice', rooms: ['r*'] }) } });
    await Promise.all([connected(a), connected(b), connected(o)]);
    assert.deepEqual(await emitAck(a, 'join', 'r1'), [{ ok: true, room: 'r1' }]);
    assert.deepEqual(await emitAck(o, 'join', 'r1'), [{ ok: true, room: 'r1' }], 'r1 of /other is another room');
  });

  it('a room publish answers 202 {"ok":true} and reaches the room\'s members only', T, async () => {
    const data = { id: 1, title: 'Live Task', tags: ['x', 'y'], done: false, n: null };
    const gotA = waitFor(a, 'task_created');
    const noB = expectNoEvent(b, 'task_created', QUIET_MS);
    const noO = expectNoEvent(o, 'task_created', QUIET_MS);
    const res = await publish(node, { ns: '/', room: 'r1', event: 'task_created', data });
    assert.equal(res.status, 202, res.body);
    assert.deepEqual(res.json(), { ok: true });
    assert.match(String(res.headers['content-type']), /application\/json/);
    assert.deepEqual(await gotA, data);
    await Promise.all([noB, noO]);
  });

  it('"args" form delivers several arguments', T, async () => {
    const got = waitForArgs(a, 'x');
    await publishOk(node, { ns: '/', room: 'r1', event: 'x', args: [1, 'two', { three: 3 }] });
    assert.deepEqual(await got, [1, 'two', { three: 3 }]);
  });

  it('a publish to a user room reaches that user\'s sockets in that namespace', T, async () => {
    const gotB = waitFor(b, 'dm');
    const noA = expectNoEvent(a, 'dm', QUIET_MS);
    await publishOk(node, { ns: '/', room: 'user:bob', event: 'dm', data: 'hello bob' });
    assert.equal(await gotB, 'hello bob');
    await noA;
  });

  it('a namespace broadcast ("broadcast": true) reaches every socket of that namespace only', T, async () => {
    const gotA = waitFor(a, 'announcement');
    const gotB = waitFor(b, 'announcement');
    const noO = expectNoEvent(o, 'announcement', QUIET_MS);
    await publishOk(node, { ns: '/', broadcast: true, event: 'announcement', data: { text: 'to all' } });
    assert.deepEqual(await gotA, { text: 'to all' });
    assert.deepEqual(await gotB, { text: 'to all' });
    await noO;
    const gotO = waitFor(o, 'announcement');
    await publishOk(node, { ns: '/other', broadcast: true, event: 'announcement', data: 'other ns' });
    assert.equal(await gotO, 'other ns');
  });

  it('a typo is never a broadcast: unknown, repeated or contradictory fields -> 400 naming the field, nobody receives', T, async () => {
    const seen = [a, b, o].map((s) => collect(s, 'typo'));
    const raw = (body) => httpRequest(node, 'POST', '/api/publish', {
      headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' }, body,
    });
    const cases = [
      // [what, request, error, field]
      ['no room at all', { ns: '/', event: 'typo', data: 1 }, 'no_target'],
      ['"rooms"', { ns: '/', rooms: 'r1', event: 'typo', data: 1 }, 'unknown_field', 'rooms'],
      ['"Room"', { ns: '/', Room: 'r1', event: 'typo', data: 1 }, 'unknown_field', 'Room'],
      ['"to"', { ns: '/', to: 'r1', event: 'typo', data: 1 }, 'unknown_field', 'to'],
      ['"room" twice', '{"ns":"/","room":"r1","room":"user:bob","event":"typo","data":1}', 'duplicate_field', 'room'],
      ['"event" twice', '{"room":"r1","event":"typo","event":"other","data":1}', 'duplicate_field', 'event'],
      ['text after the JSON', '{"room":"r1","event":"typo","data":1} {"room":"r2"}', 'trailing_text'],
      ['two objects', '{"room":"r1","event":"typo","data":1}{}', 'trailing_text'],
      ['room and user', { room: 'r1', user: 'bob', event: 'typo', data: 1 }, 'conflicting_fields', 'room,user'],
      ['room and broadcast', { room: 'r1', broadcast: true, event: 'typo', data: 1 }, 'conflicting_fields', 'room,broadcast'],
      ['user and broadcast', { user: 'bob', broadcast: true, event: 'typo', data: 1 }, 'conflicting_fields', 'user,broadcast'],
      ['broadcast false', { broadcast: false, event: 'typo', data: 1 }, 'bad_broadcast'],
      ['broadcast "yes"', { broadcast: 'yes', event: 'typo', data: 1 }, 'bad_broadcast'],
      ['room null', { room: null, event: 'typo', data: 1 }, 'bad_room'],
      ['except not an array', { room: 'r1', event: 'typo', data: 1, except: 'sid' }, 'bad_except'],
      ['except with a number', { room: 'r1', event: 'typo', data: 1, except: [5] }, 'bad_except'],
      ['a fractional id', { room: 'r1', event: 'typo', data: 1, id: 1.5 }, 'bad_id'],
      ['an id past 2^53', '{"room":"r1","event":"typo","data":1,"id":9007199254740993}', 'bad_id'],
      ['a reserved event', { room: 'r1', event: 'disconnect', data: 1 }, 'reserved_event'],
      ['data and args', { room: 'r1', event: 'typo', data: 1, args: [1] }, 'data_and_args'],
      ['"email" without "user"', { room: 'r1', event: 'typo', data: 1, email: {} }, 'conflicting_fields', 'room,email'],
      ['a notification with a typo', { user: 'bob', evnt: 'typo', data: 1 }, 'unknown_field', 'evnt'],
      // as deep as the body may be, but one level deeper than an envelope carries once it is
      // the arguments array: every other node would drop it
      ['too deep for the envelope', `{"room":"r1","event":"typo","data":${'['.repeat(999)}${']'.repeat(999)}}`, 'too_deep'],
    ];
    for (const [what, msg, error, field] of cases) {
      const res = typeof msg === 'string' ? await raw(msg) : await publish(node, msg);
      assert.equal(res.status, 400, `${what}: ${res.status} ${res.body}`);
      const want = { ok: false, error };
      if (field) want.field = field;
      assert.deepEqual(res.json(), want, what);
    }
    await sleep(QUIET_MS);
    assert.deepEqual(seen, [[], [], []], 'a refused publish reaches nobody');
    assert.ok(a.connected && b.connected && o.connected);
    assert.ok(await metric(node, 'roomcast_api_publishes_refused_total') >= cases.length);
  });

  it('"except" leaves those sockets out (room and broadcast); a numeric id is accepted', T, async () => {
    assert.deepEqual(await emitAck(b, 'join', 'r1'), [{ ok: true, room: 'r1' }]);
    const gotB = waitFor(b, 'not-for-a');
    const noA = expectNoEvent(a, 'not-for-a', QUIET_MS);
    await publishOk(node, { room: 'r1', event: 'not-for-a', data: 1, except: [a.id], id: 42 });
    assert.equal(await gotB, 1);
    await noA;
    const gotA = waitFor(a, 'not-for-b');
    const noB = expectNoEvent(b, 'not-for-b', QUIET_MS);
    await publishOk(node, { broadcast: true, event: 'not-for-b', data: 2, except: [b.id, 'no-such-sid'] });
    assert.equal(await gotA, 2);
    await noB;
    assert.deepEqual(await emitAck(b, 'leave', 'r1'), [{ ok: true, room: 'r1' }]);
  });

  it('a notification ("user") takes a numeric id only when it is exact; 41.6 and 2^53 + 1 reach nobody', T, async () => {
    const u42 = client(node.url, { auth: { token: token({ sub: '42' }) } });
    const u2p53 = client(node.url, { auth: { token: token({ sub: '9007199254740992' }) } });
    await Promise.all([connected(u42), connected(u2p53)]);
    const seen42 = collect(u42, 'dm');
    const seenBig = collect(u2p53, 'dm');
    for (const body of ['{"user":41.6,"event":"dm","data":"rounded"}',
      '{"user":9007199254740993,"event":"dm","data":"rounded"}', '{"user":1e300,"event":"dm","data":"x"}']) {
      const res = await httpRequest(node, 'POST', '/api/publish', {
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' }, body,
      });
      assert.equal(res.status, 400, `${body}: ${res.status} ${res.body}`);
      assert.deepEqual(res.json(), { ok: false, error: 'bad_user' });
    }
    await sleep(QUIET_MS);
    assert.deepEqual(seen42, []);
    assert.deepEqual(seenBig, []);
    const got = waitFor(u42, 'dm');
    await publishOk(node, { user: 42, event: 'dm', data: 'exact', id: 7, email: { subject: 'for the Worker' } });
    assert.equal(await got, 'exact');
    u42.close();
    u2p53.close();
  });

  it('missing or wrong API key -> 401 {"ok":false}, nothing delivered', T, async () => {
    const seen = collect(a, 'sneaky');
    const msg = { ns: '/', room: 'r1', event: 'sneaky', data: 1 };
    for (const [what, opts] of [
      ['no Authorization', { key: null }],
      ['wrong key', { key: `${API_KEY}x` }],
      ['empty key', { key: '' }],
      ['not Bearer', { key: null, headers: { Authorization: `Basic ${API_KEY}` } }],
    ]) {
      const res = await publish(node, msg, opts);
      assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`);
      const body = res.json();
      assert.equal(body.ok, false, `${what}: ${res.body}`);
      assert.equal(typeof body.error, 'string', `${what}: ${res.body}`);
    }
    await sleep(QUIET_MS);
    assert.deepEqual(seen, []);
  });

  it('bad JSON -> 400 {"ok":false}', T, async () => {
    for (const body of ['{"ns":"/","room":"r1",', 'not json', '']) {
      const res = await httpRequest(node, 'POST', '/api/publish', {
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' }, body,
      });
      assert.equal(res.status, 400, `body ${JSON.stringify(body)}: ${res.status} ${res.body}`);
      assert.equal(res.json().ok, false);
    }
  });

  it('well-formed JSON that is not a valid publish -> 4xx {"ok":false}', T, async () => {
    for (const msg of [
      [1, 2],
      { ns: '/', room: 'r1' }, // no event
      { ns: '/', room: 'r1', event: 42, data: 1 },
    ]) {
      const res = await publish(node, msg);
      assert.ok(res.status >= 400 && res.status < 500, `${JSON.stringify(msg)}: ${res.status} ${res.body}`);
      assert.equal(res.json().ok, false);
    }
  });

  it('the sockets are still fine after all that', T, async () => {
    const got = waitFor(a, 'final');
    await publishOk(node, { ns: '/', room: 'r1', event: 'final', data: 'ok' });
    assert.equal(await got, 'ok');
    assert.ok(b.connected);
  });
});
