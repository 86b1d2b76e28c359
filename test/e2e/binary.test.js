'use strict';
// Binary events (Socket.IO BINARY_EVENT / BINARY_ACK with attachments): echoed by a rule, acked,
// and relayed to a room, over websocket (binary frames) and polling (b + base64).

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  startNode, client, connected, closeClients, settle, token, waitForArgs, expectNoEvent, emitAck,
} = require('./lib/node');

const T = { timeout: 20000 };

const toBuf = (x) => (Buffer.isBuffer(x) ? x : x instanceof ArrayBuffer ? Buffer.from(x) : ArrayBuffer.isView(x) ? Buffer.from(x.buffer, x.byteOffset, x.byteLength) : null);

function assertSameBytes(got, want, what) {
  const b = toBuf(got);
  assert.ok(b, `${what}: not binary: ${typeof got} ${JSON.stringify(got)?.slice(0, 100)}`);
  assert.equal(b.length, want.length, `${what}: length`);
  assert.ok(b.equals(want), `${what}: bytes differ`);
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

for (const transport of ['websocket', 'polling']) {
  describe(`binary over ${transport}`, () => {
    let node;
    const make = (sub) => client(node.url, { auth: { token: token({ sub, rooms: ['r*'] }) }, transports: [transport] });

    before(async () => { node = await startNode({ config: 'binary.json' }); });
    afterEach(() => settle(node));
    after(async () => { closeClients(); if (node) await node.stop(); });

    it('emit {"event":"echo","args":"{args}"} sends back the same bytes, nested ones included', T, async () => {
      const s = make('alice');
      await connected(s);
      const random = crypto.randomBytes(700);
      const echo = waitForArgs(s, 'echo');
      s.emit('bin', ALL_BYTES, { label: 'x', inner: random, list: [1, Buffer.from([9, 8, 7])] }, 'tail');
      const [first, second, third] = await echo;
      assertSameBytes(first, ALL_BYTES, 'first argument');
      assert.equal(second.label, 'x');
      assertSameBytes(second.inner, random, 'nested buffer');
      assert.equal(second.list[0], 1);
      assertSameBytes(second.list[1], Buffer.from([9, 8, 7]), 'buffer in an array');
      assert.equal(third, 'tail');
    });

    it('an empty buffer survives the round trip', T, async () => {
      const s = make('alice');
      await connected(s);
      const echo = waitForArgs(s, 'echo');
      s.emit('bin', Buffer.alloc(0), 'after');
      const [first, second] = await echo;
      assertSameBytes(first, Buffer.alloc(0), 'empty buffer');
      assert.equal(second, 'after');
    });

    it('ackArgs "{args}" answers with a binary ack', T, async () => {
      const s = make('alice');
      await connected(s);
      const bytes = crypto.randomBytes(300);
      const [a, b] = await emitAck(s, 'bin-ack', bytes, { n: 1 });
      assertSameBytes(a, bytes, 'acked buffer');
      assert.deepEqual(b, { n: 1 });
    });

    it('relay of a binary event to the other sockets of a room', T, async () => {
      const a = make('alice');
      const b = make('bob');
      const c = make('carol');
      await Promise.all([connected(a), connected(b), connected(c)]);
      for (const s of [a, b]) assert.deepEqual(await emitAck(s, 'join', 'r1'), [{ ok: true, room: 'r1' }]);
      const bytes = crypto.randomBytes(512);
      const gotB = waitForArgs(b, 'bin-relayed');
      const noA = expectNoEvent(a, 'bin-relayed', 400);
      const noC = expectNoEvent(c, 'bin-relayed', 400);
      assert.deepEqual(await emitAck(a, 'bin-relay', 'r1', bytes, { meta: ALL_BYTES }), [{ ok: true, room: 'r1' }]);
      const [room, data, meta] = await gotB;
      assert.equal(room, 'r1');
      assertSameBytes(data, bytes, 'relayed buffer');
      assertSameBytes(meta.meta, ALL_BYTES, 'relayed nested buffer');
      await Promise.all([noA, noC]);
      // text events keep working after binary ones (the decoder is back in text mode)
      assert.deepEqual(await emitAck(b, 'join', 'r2'), [{ ok: true, room: 'r2' }]);
    });
  });
}
