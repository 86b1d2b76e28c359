'use strict';
// Inbound rate limit (namespace "rateLimit"): a token bucket of `events` per `interval` ms, kept
// per Engine.IO session and namespace (a namespace DISCONNECT and a new CONNECT do not refill it;
// a CONNECT after the first costs a token). Events over it are refused (ack error, or the
// namespace's onLimit rule) and counted, and other sessions are unaffected.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, settle, token, emitAck, collect, sleep, httpRequest, metric, waitFor,
} = require('./lib/node');
const { RawWs, frame, OP } = require('./lib/hostile');

const T = { timeout: 20000 };

describe('rate limiting', () => {
  let node;
  before(async () => { node = await startNode({ config: 'ratelimit.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('refuses events over the limit with an ack error; another socket is unaffected', T, async () => {
    const flooder = await connected(client(node.url, { auth: { token: token({ sub: 'flood' }) } }));
    const calm = await connected(client(node.url, { auth: { token: token({ sub: 'calm' }) } }));
    const replies = await Promise.all(Array.from({ length: 20 }, () => emitAck(flooder, 'ping')));
    const ok = replies.filter(([r]) => r && r.pong === true).length;
    const limited = replies.filter(([r]) => r && r.ok === false && r.error === 'rate_limited').length;
    assert.equal(ok + limited, 20, `every event answered once: ${JSON.stringify(replies)}`);
    assert.ok(ok >= 5 && ok <= 6, `about the burst of 5 allowed, got ${ok}`);
    assert.ok(limited >= 14, `the rest refused, got ${limited}`);
    // the calm socket has its own bucket
    const [r] = await emitAck(calm, 'ping');
    assert.deepEqual(r, { pong: true });
    // the bucket refills: after the interval the flooder is served again
    await sleep(1100);
    const [again] = await emitAck(flooder, 'ping');
    assert.deepEqual(again, { pong: true });
    const metrics = await httpRequest(node, "GET", "/metrics");
    const m = /^roomcast_rate_limited_total (\d+)/m.exec(metrics.body);
    assert.ok(m && Number(m[1]) >= 14, 'roomcast_rate_limited_total counts refusals');
  });

  it('runs onLimit (system:error with the code) for events over the limit', T, async () => {
    const s = await connected(client(`${node.url}/chat`, { auth: { token: token({ sub: 'chatty' }) } }));
    const said = collect(s, 'said');
    const errors = collect(s, 'system:error');
    for (let i = 0; i < 10; i++) s.emit('say', i);
    await sleep(300);
    assert.equal(said.length, 3, `burst of 3 delivered: ${JSON.stringify(said)}`);
    assert.deepEqual(said.map((a) => a[0]), [0, 1, 2]);
    assert.equal(errors.length, 7);
    assert.deepEqual(errors[0][0], { code: 'rate_limited', event: 'say' });
  });

  it('a namespace DISCONNECT and CONNECT do not refill the budget: 40 cycles in one write reach a bystander at most the budget', T, async (t) => {
    const BUDGET = 50; // /room: 50 events per 1000 ms
    const bystander = await connected(client(`${node.url}/room`, { auth: { token: token({ sub: 'bystander' }) } }));
    assert.deepEqual(await emitAck(bystander, 'join', 'hall'), [{ ok: true }]);
    const got = collect(bystander, 'say');
    const limited0 = await metric(node, 'roomcast_rate_limited_total');
    // One Engine.IO session, one write: 40 x (CONNECT, join, 49 relays, DISCONNECT).
    const ws = await RawWs.open(node.port, { autoPong: true });
    await ws.nextText('0');
    const connect = `40/room,${JSON.stringify({ token: token({ sub: 'cycler' }) })}`;
    const packets = [];
    for (let c = 0; c < 40; c++) {
      packets.push(connect, '42/room,["join","hall"]');
      for (let i = 0; i < 49; i++) packets.push(`42/room,${JSON.stringify(['say', { room: 'hall', c, i }])}`);
      packets.push('41/room,');
    }
    const t0 = Date.now();
    ws.send(Buffer.concat(packets.map((p) => frame({ opcode: OP.TEXT, payload: p }))));
    await ws.conn.waitClosed(2000).catch(() => {});
    await sleep(500);
    const elapsedS = (Date.now() - t0) / 1000;
    got.off();
    const allowed = Math.ceil(BUDGET + BUDGET * elapsedS);
    t.diagnostic(`bystander received ${got.length} of ${40 * 49} relays in ${elapsedS.toFixed(2)} s (budget ${allowed})`);
    assert.ok(got.length <= allowed, `the bystander received ${got.length} relays, more than the budget ${allowed}`);
    // What the attacker heard: its first CONNECT accepted, the second refused; then its events
    // for a namespace it is not connected to closed the session.
    const answers = ws.texts().filter((m) => /^4[04]\/room,/.test(m));
    assert.match(answers[0], /^40\/room,\{"sid"/);
    assert.deepEqual(answers.slice(1), ['44/room,{"message":"rate_limited","data":{"code":"rate_limited"}}']);
    assert.ok(ws.isClosed, 'the cycling session is closed');
    assert.ok(await metric(node, 'roomcast_rate_limited_total') > limited0, 'the refusal is counted');
    // A normal client of the namespace is unaffected: its own budget, its relays delivered.
    const calm = await connected(client(`${node.url}/room`, { auth: { token: token({ sub: 'calm-room' }) } }));
    assert.deepEqual(await emitAck(calm, 'join', 'hall'), [{ ok: true }]);
    for (let i = 0; i < 10; i++) {
      const next = waitFor(bystander, 'say');
      assert.deepEqual(await emitAck(calm, 'say', { room: 'hall', calm: i }), [{ ok: true }]);
      assert.deepEqual(await next, { room: 'hall', calm: i });
    }
    assert.ok(bystander.connected);
  });
});
