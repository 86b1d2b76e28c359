'use strict';
// Issue 5 end to end: three nodes on one Redis, notifications published on roomcast:notify (as a
// backend does) and through POST /api/publish, a real bullmq Worker (the newest major; the last
// 5.x is proven against the same script in test/jobs/) taking the jobs for offline users, and a
// forwarded client event read back from the roomcast:events stream by a consumer group.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const {
  startNode, client, connected, closeClients, settle, token, collect, sleep, emitAck, publish,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');

const JOBS = path.join(__dirname, '..', 'jobs', 'node_modules');
const IORedis = require(path.join(JOBS, 'ioredis'));
// both supported majors: the newest (6.x) and the one before it (5.x), pinned in test/jobs
const MAJORS = [['bullmq 6.x', 'bullmq6'], ['bullmq 5.x', 'bullmq5']];

const T = { timeout: 30000 };
const NS = '/notifications';

async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

for (const [label, pkg] of MAJORS) {
describe(`notifications with offline fallback to BullMQ jobs (three nodes, ${label})`, () => {
  const { Worker, Queue } = require(path.join(JOBS, pkg));
  let redis; let nodes = []; let conn; let workerConn; let queue; let worker; const processed = [];
  let failFirst = new Set();

  before(async () => {
    redis = await startRedis();
    for (const id of ['a', 'b', 'c']) {
      nodes.push(await startNode({ config: 'jobs.json', nodeId: `jobs-${process.pid}-${id}`, args: ['--redis', redis.url] }));
    }
    conn = new IORedis(redis.url, { maxRetriesPerRequest: null });
    queue = new Queue('email', { connection: conn, prefix: 'bull' });
    worker = new Worker('email', async (job) => {
      processed.push({ id: job.id, data: job.data, attempt: job.attemptsMade });
      if (failFirst.has(job.id) && job.attemptsMade === 0) throw new Error('smtp down');
    }, { connection: (workerConn = new IORedis(redis.url, { maxRetriesPerRequest: null })), prefix: 'bull' });
  });
  afterEach(() => Promise.all(nodes.map((n) => settle(n))));
  after(async () => {
    closeClients();
    if (worker) await worker.close();
    if (queue) await queue.close();
    if (conn) await conn.quit();
    if (workerConn) await workerConn.quit();
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
  });

  it('an offline user: exactly one job, processed by the Worker with the notification as data, even when published twice', T, async () => {
    const n = { id: 'n-off-1', user: 'ghost', ns: NS, event: 'notification',
      data: { type: 'info', title: 'Hi', message: 'You have mail' }, email: { subject: 'Hi' } };
    assert.equal(await redis.publish('roomcast:notify', JSON.stringify(n)), 3, 'every node hears roomcast:notify');
    assert.equal(await redis.publish('roomcast:notify', JSON.stringify(n)), 3);
    const job = await until(() => processed.find((p) => p.id === 'n-off-1'), 10000, 'the job');
    assert.deepEqual(job.data, n);
    await sleep(500);
    assert.equal(processed.filter((p) => p.id === 'n-off-1').length, 1, 'one job, one processing');
    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
    assert.equal(counts.completed + counts.failed + counts.waiting + counts.active + counts.delayed, 1);
    assert.equal(counts.completed, 1);
  });

  it('a user online on two nodes: both devices receive it once, and no job', T, async () => {
    const tok = token({ sub: 'alice' });
    const d1 = await connected(client(`${nodes[0].url}${NS}`, { auth: { token: tok }, transports: ['websocket'] }));
    const d2 = await connected(client(`${nodes[1].url}${NS}`, { auth: { token: tok } }));
    const g1 = collect(d1, 'notification');
    const g2 = collect(d2, 'notification');
    await until(async () => (await redis.command('SCARD', 'roomcast:presence:alice')) === 2, 3000, 'presence of 2 devices');
    const n = { id: 'n-on-1', user: 'alice', ns: NS, event: 'notification', data: { type: 'success', title: 'Paid' } };
    await redis.publish('roomcast:notify', JSON.stringify(n));
    await until(() => g1.length && g2.length, 3000, 'both devices');
    await sleep(500);
    assert.deepEqual(g1, [[n.data]]);
    assert.deepEqual(g2, [[n.data]]);
    assert.equal(processed.filter((p) => p.id === 'n-on-1').length, 0);
    assert.equal(await redis.command('EXISTS', 'bull:email:n-on-1'), 0, 'no job hash');
  });

  it('POST /api/publish with "user": same path (offline -> job, via any node)', T, async () => {
    const res = await publish(nodes[2], { ns: NS, user: 'ghost2', id: 'n-api-1', event: 'notification', data: { title: 'API' } });
    assert.equal(res.status, 202, res.body);
    const job = await until(() => processed.find((p) => p.id === 'n-api-1'), 10000, 'the job');
    assert.equal(job.data.user, 'ghost2');
    assert.deepEqual(job.data.data, { title: 'API' });
  });

  it('a Worker failing the first attempt: the job is retried per attempts and backoff', T, async () => {
    failFirst.add('n-retry-1');
    await redis.publish('roomcast:notify', JSON.stringify({ id: 'n-retry-1', user: 'ghost3', ns: NS, data: { t: 1 } }));
    await until(() => processed.filter((p) => p.id === 'n-retry-1').length === 2, 10000, 'two attempts');
    const attempts = processed.filter((p) => p.id === 'n-retry-1').map((p) => p.attempt);
    assert.deepEqual(attempts, [0, 1]);
    const job = await queue.getJob('n-retry-1');
    await until(async () => (await job.getState()) === 'completed' || (await queue.getJob('n-retry-1')) === undefined, 5000, 'completion');
  });

  it('a forwarded client event is read back from roomcast:events by a consumer group with all its fields', T, async () => {
    await redis.command('XGROUP', 'CREATE', 'roomcast:events', 'backend', '$', 'MKSTREAM');
    const s = await connected(client(`${nodes[1].url}${NS}`, { auth: { token: token({ sub: 'bob' }) } }));
    const [r] = await emitAck(s, 'chat:message', { roomId: 'r1', content: 'hello' });
    assert.deepEqual(r, { ok: true });
    // the ack and the node's XADD travel on different connections: block briefly for the entry
    const reply = await redis.command('XREADGROUP', 'GROUP', 'backend', 'c1', 'COUNT', '10', 'BLOCK', '3000',
      'STREAMS', 'roomcast:events', '>');
    assert.ok(Array.isArray(reply) && reply.length === 1, `one stream: ${JSON.stringify(reply)}`);
    const entries = reply[0][1];
    assert.equal(entries.length, 1);
    const fields = {};
    for (let i = 0; i < entries[0][1].length; i += 2) fields[entries[0][1][i]] = entries[0][1][i + 1];
    assert.equal(fields.ns, NS);
    assert.equal(fields.event, 'chat:message');
    assert.equal(fields.user, 'bob');
    assert.equal(fields.sid, s.id);
    assert.equal(fields.node, nodes[1].nodeId);
    assert.deepEqual(JSON.parse(fields.data), { roomId: 'r1', content: 'hello' });
    assert.ok(Math.abs(Number(fields.ts) - Date.now()) < 10000);
    await redis.command('XACK', 'roomcast:events', 'backend', entries[0][0]);
  });
});
}
