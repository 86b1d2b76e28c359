'use strict';
// Issue 16, Redis Cluster: two roomcast nodes on a real three-master cluster (lib/redis_cluster.js).
//   - rooms whose channels fall on each of the three masters, members on both nodes: every
//     publish (SPUBLISH from the test, as a backend does, and POST /api/publish) reaches every
//     member exactly once, and each room's channel is SSUBSCRIBEd by both nodes on its own master;
//   - presence across nodes: a watcher on one node hears a user on the other come and go;
//   - the BullMQ hand-off: a bullmq Worker on an ioredis Cluster connection with prefix {bull}
//     takes exactly one job per notification for an offline user, with both nodes handing off;
//   - a slot holding a live room is moved to another master by redis-cli --cluster reshard while
//     a publisher keeps publishing: the room keeps receiving, and the test reports how many
//     messages were lost during the move.
//
// Channels and keys in a cluster: docs/redis.md ("Redis Cluster").

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, closeClients, token, emitAck, publishOk, sleep, waitUntil, metric, readyz,
} = require('./lib/node');
const { startCluster, slotOf } = require('./lib/redis_cluster');
const IORedis = require('ioredis');
const { Worker, Queue } = require('bullmq');

const T = { timeout: 60000 };
const P = 'roomcast';
const roomChannel = (room) => `${P}:room:/:${room}`;

async function connectTo(node, sub) {
  const s = client(node.url, { auth: { token: token({ sub, rooms: ['*'] }) }, transports: ['websocket'] });
  await connected(s);
  return s;
}

async function join(socket, room) {
  assert.deepEqual(await emitAck(socket, 'join', { room }), [{ ok: true, room }], `join ${room}`);
}

// Every "msg" event a socket receives, by its data.seq.
function counter(socket) {
  const seen = new Map();
  socket.on('msg', (d) => seen.set(d.seq, (seen.get(d.seq) || 0) + 1));
  return seen;
}

describe('Redis Cluster: sharded pub/sub, presence and jobs on three masters', () => {
  let cl; let A; let B; let io; const nodes = [];

  // room names whose channel slot is served by master i (three per master)
  const rooms = [[], [], []];

  before(async () => {
    cl = await startCluster(3);
    const env = { ROOMCAST_REDIS_CLUSTER: cl.seeds };
    const seed = `redis://127.0.0.1:${cl.masters[0].port}`;
    for (const id of ['a', 'b']) {
      nodes.push(await startNode({ config: 'redis_cluster.json', nodeId: `rcl-${process.pid}-${id}`, env, args: ['--redis', seed] }));
    }
    [A, B] = nodes;
    await waitUntil(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200),
      { timeout: 15000, what: 'both nodes ready' });
    io = new IORedis.Cluster(cl.masters.map((m) => ({ host: '127.0.0.1', port: m.port })));
    for (let k = 0; rooms.some((r) => r.length < 3); k++) {
      const name = `room-${k}`;
      const i = await cl.owner(slotOf(roomChannel(name)));
      if (rooms[i].length < 3) rooms[i].push(name);
    }
  });

  after(async () => {
    closeClients();
    if (io) io.disconnect();
    for (const n of nodes) await n.stop();
    if (cl) await cl.stop();
  });

  const shardNumsub = async (room) => {
    const i = await cl.owner(slotOf(roomChannel(room)));
    const [, n] = await cl.masters[i].client.command('PUBSUB', 'SHARDNUMSUB', roomChannel(room));
    return Number(n);
  };

  it('every publish reaches every member once, on rooms of all three masters', T, async () => {
    const all = rooms.flat();
    const a = await connectTo(A, 'u-a'); const b = await connectTo(B, 'u-b');
    const seenA = counter(a); const seenB = counter(b);
    for (const r of all) { await join(a, r); await join(b, r); }
    // each channel is SSUBSCRIBEd by both nodes, on the master of its slot
    await waitUntil(async () => (await Promise.all(all.map(shardNumsub))).every((n) => n === 2),
      { timeout: 10000, what: 'PUBSUB SHARDNUMSUB = 2 on every room channel' });
    for (const m of cl.masters) {
      const chans = await m.client.command('PUBSUB', 'SHARDCHANNELS', `${P}:room:*`);
      assert.ok(chans.length >= 3, `master ${m.port} serves ${chans.length} room channels`);
    }
    let seq = 0;
    for (const r of all) {
      // a backend's SPUBLISH, through ioredis's cluster routing
      await io.call('SPUBLISH', roomChannel(r), JSON.stringify({ event: 'msg', data: { seq: ++seq } }));
      // the HTTP API on either node (the node SPUBLISHes it and delivers to its own sockets)
      await publishOk(seq % 2 ? A : B, { room: r, event: 'msg', data: { seq: ++seq } });
    }
    await waitUntil(() => seenA.size === seq && seenB.size === seq,
      { timeout: 10000, what: `${seq} messages on both sockets (a ${seenA.size}, b ${seenB.size})` });
    await sleep(300);
    for (const seen of [seenA, seenB]) {
      for (let i = 1; i <= seq; i++) assert.equal(seen.get(i), 1, `message ${i} delivered once`);
    }
    a.close(); b.close();
  });

  it('presence: a watcher on one node hears a user on the other come and go', T, async () => {
    const w = await connectTo(A, 'watcher');
    const log = [];
    w.on('user:online', (d) => log.push(['online', d.user]));
    w.on('user:offline', (d) => log.push(['offline', d.user]));
    assert.deepEqual(await emitAck(w, 'watch', 'carol'), [{ ok: true, room: 'status:carol' }]);
    await sleep(300);
    const c = await connectTo(B, 'carol');
    await waitUntil(() => log.some((e) => e[0] === 'online'), { timeout: 10000, what: 'carol online' });
    c.close();
    await waitUntil(() => log.some((e) => e[0] === 'offline'), { timeout: 10000, what: 'carol offline' });
    assert.deepEqual(log, [['online', 'carol'], ['offline', 'carol']]);
    // presence keys carry the hash tag {roomcast}: all in one slot, so each script touches one
    assert.equal(await io.call('EXISTS', `{${P}}:nodes`), 1, `{${P}}:nodes exists`);
    assert.equal(await io.call('EXISTS', `${P}:nodes`), 0, 'no untagged presence key');
    w.close();
  });

  it('BullMQ: one job per notification for an offline user, taken by a Worker with prefix {bull}', T, async () => {
    const nodesOpts = cl.masters.map((m) => ({ host: '127.0.0.1', port: m.port }));
    const conn = new IORedis.Cluster(nodesOpts, { redisOptions: { maxRetriesPerRequest: null } });
    const wconn = new IORedis.Cluster(nodesOpts, { redisOptions: { maxRetriesPerRequest: null } });
    const processed = [];
    const queue = new Queue('email', { connection: conn, prefix: '{bull}' });
    const worker = new Worker('email', async (job) => { processed.push(job.id); },
      { connection: wconn, prefix: '{bull}' });
    try {
      const ids = ['n-1', 'n-2', 'n-3'];
      // two through the HTTP API of either node, one on P:notify as a backend publishes it
      await publishOk(A, { user: 'offline-1', id: ids[0], event: 'notification', data: { i: 1 } });
      await publishOk(B, { user: 'offline-2', id: ids[1], event: 'notification', data: { i: 2 } });
      await io.publish(`${P}:notify`, JSON.stringify({ user: 'offline-3', id: ids[2], event: 'notification', data: { i: 3 } }));
      await waitUntil(() => ids.every((id) => processed.includes(id)), { timeout: 15000, what: `jobs ${ids} processed (${processed})` });
      await sleep(1000); // a second job, if any, would be taken by now
      assert.deepEqual([...processed].sort(), ids, 'each notification: exactly one job');
      const added = (await metric(A, 'roomcast_jobs_added_total')) + (await metric(B, 'roomcast_jobs_added_total'));
      const dup = (await metric(A, 'roomcast_jobs_skipped_total{reason="duplicate"}')) +
        (await metric(B, 'roomcast_jobs_skipped_total{reason="duplicate"}'));
      assert.equal(added, 3, 'three jobs added across the two nodes');
      assert.equal(dup, 3, 'the other node found each job there already');
    } finally {
      await worker.close();
      await queue.close();
      conn.disconnect(); wconn.disconnect();
    }
  });

  it('a live room survives redis-cli --cluster reshard moving its slot, while publishing', T, async (t) => {
    // a room among master 0's lowest slots, which redis-cli moves first
    let room;
    for (let k = 0; !room; k++) if (slotOf(roomChannel(`low-${k}`)) < 40) room = `low-${k}`;
    const slot = slotOf(roomChannel(room));
    assert.equal(await cl.owner(slot), 0);
    const a = await connectTo(A, 'm-a'); const b = await connectTo(B, 'm-b');
    const seenA = counter(a); const seenB = counter(b);
    await join(a, room); await join(b, room);
    await waitUntil(async () => (await shardNumsub(room)) === 2, { timeout: 10000, what: 'subscribed' });

    let seq = 0; let publishing = true; const errors = [];
    const pub = (async () => {
      while (publishing) {
        await io.call('SPUBLISH', roomChannel(room), JSON.stringify({ event: 'msg', data: { seq: ++seq } }))
          .catch((e) => errors.push(e.message));
        await sleep(10);
      }
    })();
    await sleep(500);
    const before = seq;
    await cl.reshard(0, 1, 64);
    const moved = seq;
    await waitUntil(async () => (await cl.owner(slot)) === 1, { timeout: 5000, what: 'slot moved' });
    await waitUntil(async () => (await shardNumsub(room)) === 2,
      { timeout: 10000, what: 'both nodes subscribed on the new owner' });
    await sleep(1000);
    publishing = false;
    await pub;
    const last = seq;
    await waitUntil(() => seenA.has(last) && seenB.has(last), { timeout: 10000, what: `the last message (${last}) on both sockets` });
    await sleep(300);

    const lost = [seenA, seenB].map((seen) => {
      let n = 0;
      for (let i = 1; i <= last; i++) if (!seen.has(i)) n++;
      return n;
    });
    const m = async (name) => (await metric(A, name)) + (await metric(B, name));
    t.diagnostic(`redis-cli --cluster reshard moved 64 slots (the room's: ${slot}) from master 0 to 1 with messages ${before}..${moved} in flight; ` +
      `published ${last}, lost on node a: ${lost[0]}, on node b: ${lost[1]}; publisher errors: ${errors.length}; ` +
      `nodes saw ${await m('roomcast_redis_cluster_slot_drops_total')} dropped channels, ` +
      `${await m('roomcast_redis_cluster_moved_total')} MOVED`);
    assert.ok(await m('roomcast_redis_cluster_slot_drops_total') >= 2, 'each node re-subscribed after a drop');
    for (const seen of [seenA, seenB]) {
      for (const [i, n] of seen) assert.equal(n, 1, `message ${i} delivered once`);
      // after the move settled, nothing is lost: the last 50 messages all arrived
      for (let i = last - 50; i <= last; i++) assert.ok(seen.has(i), `message ${i} received after the move`);
    }
    assert.equal(await readyz(A), 200);
    assert.equal(await readyz(B), 200);
    a.close(); b.close();
  });

  it('a frozen master makes /readyz 503 until it answers again; its rooms then receive again', T, async () => {
    const room = rooms[2][0];
    const a = await connectTo(A, 'f-a');
    const seen = counter(a);
    await join(a, room);
    await waitUntil(async () => (await shardNumsub(room)) === 1, { timeout: 10000, what: 'subscribed' });
    const m = cl.masters[await cl.owner(slotOf(roomChannel(room)))];
    m.child.kill('SIGSTOP');
    try {
      await waitUntil(async () => (await readyz(A)) === 503 && (await readyz(B)) === 503,
        { timeout: 10000, what: '/readyz 503 on both nodes while a master is frozen' });
    } finally {
      m.child.kill('SIGCONT');
    }
    await waitUntil(async () => (await readyz(A)) === 200 && (await readyz(B)) === 200,
      { timeout: 20000, what: '/readyz 200 again' });
    await waitUntil(async () => (await shardNumsub(room)) === 1, { timeout: 10000, what: 'subscribed again' });
    await io.call('SPUBLISH', roomChannel(room), JSON.stringify({ event: 'msg', data: { seq: 1 } }));
    await waitUntil(() => seen.get(1) === 1, { timeout: 5000, what: 'a message after the thaw' });
    a.close();
  });
});
