'use strict';
// Per-socket inbound rate limit (namespace "rateLimit"): a token bucket of `events` per
// `interval` ms. Events over it are refused (ack error, or the namespace's onLimit rule) and
// counted, and other sockets are unaffected.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, settle, token, emitAck, collect, sleep, httpRequest,
} = require('./lib/node');

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
});
