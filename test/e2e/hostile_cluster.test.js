'use strict';
// Hostile clients against two nodes on one Redis: what one node accepts, every node must
// deliver. An event nested as deep as a client packet may be (cJSON's 1,000 levels) is one level
// too deep for the Redis envelope that carries it to the other nodes (roomcast/message.h,
// RC_BP_ARGS_MAX_DEPTH); the node that receives it refuses it with `too_deep` before the ack
// and before its own members hear it, and one level less reaches the members on both nodes.
//
// config/cluster.json: "chat" relays the received arguments to {data.room} (sender skipped,
// members only), then acks {ok, room}; a failure answers the default {ok:false,error} ack.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, waitFor, expectNoEvent, emitAck, sleep, waitUntil,
  metrics, readyz,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { sumFamily } = require('./lib/hostile');

const T = { timeout: 30000 };

// ["chat", {"room": room, "x": <k nested arrays>}]: a packet `depth` levels deep (its own array
// counted), and so are the relayed arguments [{"room", "x"}].
function nested(room, depth) {
  let x = 0;
  for (let i = 0; i < depth - 2; i++) x = [x];
  return { room, x };
}

describe('hostile clients on two nodes', () => {
  let redis;
  let nodes = [];
  let A;
  let B;

  before(async () => {
    redis = await startRedis();
    const tag = `hc${process.pid}`;
    const started = await Promise.allSettled(['a', 'b'].map((x) =>
      startNode({ config: 'cluster.json', nodeId: `${tag}-${x}`, args: ['--redis', redis.url] })));
    nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    [A, B] = nodes;
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 10000, what: 'both nodes ready' });
  });

  afterEach(async () => {
    closeClients();
    await sleep(100);
    for (const n of nodes) {
      n.assertNoSanitizerReport();
      n.assertAlive();
    }
  });

  after(async () => {
    closeClients();
    const stopped = await Promise.allSettled(nodes.map((n) => n.stop()));
    if (redis) await redis.stop();
    const failed = stopped.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  });

  async function member(node, sub, room) {
    const s = client(node.url, { auth: { token: token({ sub, rooms: ['*'] }) }, transports: ['websocket'] });
    await connected(s);
    assert.deepEqual(await emitAck(s, 'join', { room }), [{ ok: true, room }]);
    return s;
  }

  it('an event too deep for the envelope is refused before the ack and before anyone hears it; one level less reaches both nodes', T, async (t) => {
    const room = 'deep-room';
    const alice = await member(A, 'alice', room);   // the sender
    const carol = await member(A, 'carol', room);   // a member on the sender's node
    const bob = await member(B, 'bob', room);       // a member on the other node
    await waitUntil(async () => (await redis.numsub(`roomcast:room:/:${room}`)) === 2,
      { what: 'both nodes subscribed to the room' });
    const invalid0 = sumFamily(await metrics(B), 'roomcast_redis_messages_invalid_total');

    // 1,000 levels: the most a client packet may have, one more than the envelope carries.
    const quiet = [expectNoEvent(carol, 'chat', 600), expectNoEvent(bob, 'chat', 600)];
    assert.deepEqual(await emitAck(alice, 'chat', nested(room, 1000)), [{ ok: false, error: 'too_deep' }]);
    await Promise.all(quiet);

    // 999 levels: acked, and delivered on both nodes, whole.
    const want = nested(room, 999);
    const toCarol = waitFor(carol, 'chat');
    const toBob = waitFor(bob, 'chat');
    assert.deepEqual(await emitAck(alice, 'chat', want), [{ ok: true, room }]);
    assert.deepEqual(await toCarol, want);
    assert.deepEqual(await toBob, want);
    assert.equal(sumFamily(await metrics(B), 'roomcast_redis_messages_invalid_total'), invalid0,
      'the other node refused an envelope');
    t.diagnostic('1,000 levels refused with too_deep on the sending node; 999 delivered on both');
  });
});
