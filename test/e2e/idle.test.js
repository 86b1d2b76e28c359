'use strict';
// An idle socket outlives the HTTP timeouts of the request that opened it: a WebSocket is bounded
// only by the Engine.IO heartbeat. (libevent 2.1 re-arms a persistent event's old timeout when it
// is re-added without one; the node once dropped every idle WebSocket at http.headerTimeout.)

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startNode, client, connected, closeClients, settle, token, emitAck, sleep } = require('./lib/node');

const T = { timeout: 20000 };

describe('idle sockets', () => {
  let node;
  before(async () => { node = await startNode({ config: 'idle.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  for (const transports of [['websocket'], ['polling', 'websocket']]) {
    it(`stay connected past http.headerTimeout and keepAliveTimeout (${transports.join(' then ')})`, T, async () => {
      const s = await connected(client(node.url, { auth: { token: token({ sub: 'idle' }) }, transports }));
      let dropped = null;
      s.on('disconnect', (reason) => { dropped = reason; });
      const [first] = await emitAck(s, 'echo', 1); // client data after the upgrade
      assert.equal(first, 1);
      await sleep(1800); // well past the 400 ms HTTP timeouts, within the 5 s ping interval
      assert.equal(dropped, null, `dropped: ${dropped}`);
      const [again] = await emitAck(s, 'echo', 2);
      assert.equal(again, 2);
    });
  }
});
