'use strict';
// POST /api/publish: room and namespace broadcasts, "data" and "args" forms, authentication and
// input errors.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, waitFor, waitForArgs, expectNoEvent, emitAck,
  publish, publishOk, httpRequest, collect, sleep, checkAlive, API_KEY,
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

  it('a namespace broadcast (no "room") reaches every socket of that namespace only', T, async () => {
    const gotA = waitFor(a, 'announcement');
    const gotB = waitFor(b, 'announcement');
    const noO = expectNoEvent(o, 'announcement', QUIET_MS);
    await publishOk(node, { ns: '/', event: 'announcement', data: { text: 'to all' } });
    assert.deepEqual(await gotA, { text: 'to all' });
    assert.deepEqual(await gotB, { text: 'to all' });
    await noO;
    const gotO = waitFor(o, 'announcement');
    await publishOk(node, { ns: '/other', event: 'announcement', data: 'other ns' });
    assert.equal(await gotO, 'other ns');
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
