'use strict';
// roomcast's offline hand-off script (src/jobs_lua.h, run here exactly as the C build embeds it,
// with the KEYS/ARGV src/jobs.c sends) against real bullmq Workers, Queues and QueueEvents: the
// last 5.x and the newest 6.x (package.json pins both). Each major gets its own redis-server.
//
//   cd test/jobs && npm ci && node --test
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const Redis = require('ioredis');
const { startRedis } = require('./lib/redis-server');
const { handOff, forwardArgs, DEFAULTS } = require('./lib/script');

const PREFIX = 'bull';
const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitFor(what, pred, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function notification(id, user, extra = {}) {
  return {
    id, user, ns: '/notifications', event: 'notification',
    data: { type: 'info', title: 'Hi', message: `hello ${user}`, n: 1.5, tags: ['a', 'ü'] },
    email: { subject: 'Hi there' }, ...extra,
  };
}

// XRANGE as [{event, ...fields}]
async function streamEntries(redis, key) {
  const rows = await redis.xrange(key, '-', '+');
  return rows.map(([, kv]) => {
    const o = {};
    for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
    return o;
  });
}

const zero = { waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0, prioritized: 0 };
async function counts(queue) {
  const c = await queue.getJobCounts(...Object.keys(zero));
  // 5.x adds the paused list to "waiting" requests; it belongs with waiting for these checks
  const out = {};
  for (const k of Object.keys(zero)) out[k] = c[k];
  out.waiting += c.paused || 0;
  return out;
}

for (const major of [5, 6]) {
  const bullmq = require(`bullmq${major}`);
  const version = require(`bullmq${major}/package.json`).version;

  describe(`bullmq ${version}`, () => {
    let srv;
    let redis;
    let closers = [];
    const connection = () => srv.connection;

    before(async () => {
      srv = await startRedis();
      redis = new Redis(srv.connection);
    });
    after(async () => {
      redis.disconnect();
      await srv.stop();
    });

    async function openQueue(name) {
      const q = new bullmq.Queue(name, { connection: connection(), prefix: PREFIX });
      await q.waitUntilReady();
      closers.push(() => q.close());
      return q;
    }
    function startWorker(name, processor, opts = {}) {
      const w = new bullmq.Worker(name, processor, { connection: connection(), prefix: PREFIX, ...opts });
      closers.push(() => w.close());
      return w;
    }
    async function closeAll() {
      const list = closers.reverse();
      closers = [];
      for (const c of list) await c();
    }

    test('offline user: exactly one job, laid out as Queue.add lays it out, processed by a Worker',
      async (t) => {
        t.after(closeAll);
        const qn = 'offline';
        const queue = await openQueue(qn);
        const events = new bullmq.QueueEvents(qn, { connection: connection(), prefix: PREFIX,
          lastEventId: '0-0' });
        closers.push(() => events.close());
        await events.waitUntilReady();
        const seen = [];
        for (const name of ['added', 'waiting', 'active', 'completed', 'duplicated'])
          events.on(name, a => seen.push(`${name}:${a.jobId}`));

        const n = notification('n-1', '42');
        assert.equal(await handOff(redis, { user: '42', jobId: 'n-1', notification: n,
          cfg: { queue: qn } }), 1);
        assert.deepEqual(await counts(queue), { ...zero, waiting: 1 });

        // The same job added by a Node producer with the same options, into a twin queue.
        const twin = await openQueue(`${qn}-node`);
        await twin.add(DEFAULTS.name, n, {
          jobId: 'n-1', attempts: 3, backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: { age: 86400, count: 1000 }, removeOnFail: { age: 604800 },
          deduplication: { id: 'n-1', ttl: 86400000 },
        });
        const ours = await redis.hgetall(`${PREFIX}:${qn}:n-1`);
        const theirs = await redis.hgetall(`${PREFIX}:${qn}-node:n-1`);
        assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
        for (const k of ['name', 'delay', 'priority', 'deid']) assert.equal(ours[k], theirs[k], k);
        assert.deepEqual(JSON.parse(ours.data), JSON.parse(theirs.data));
        assert.deepEqual(JSON.parse(ours.opts), JSON.parse(theirs.opts));
        assert.ok(Math.abs(Number(ours.timestamp) - Date.now()) < 5000);
        // the same keys, of the same types, and the same events on the stream
        const layout = async q => {
          const keys = (await redis.keys(`${PREFIX}:${q}:*`)).sort();
          return Promise.all(keys.map(async k =>
            `${k.slice(`${PREFIX}:${q}:`.length)}=${await redis.type(k)}`));
        };
        assert.deepEqual(await layout(qn), await layout(`${qn}-node`));
        const evNames = async q => (await streamEntries(redis, `${PREFIX}:${q}:events`))
          .map(e => Object.keys(e).join(',') + '=' + e.event);
        assert.deepEqual(await evNames(qn), await evNames(`${qn}-node`));
        assert.ok(await redis.pttl(`${PREFIX}:${qn}:de:n-1`) > 86000000);

        const got = [];
        startWorker(qn, async job => {
          got.push(job);
          return 'sent';
        });
        await waitFor('completion', async () => (await counts(queue)).completed === 1);
        await sleep(300);
        assert.equal(got.length, 1);
        const job = got[0];
        assert.equal(job.id, 'n-1');
        assert.equal(job.name, 'send-email');
        assert.deepEqual(job.data, n);
        assert.equal(job.opts.attempts, 3);
        assert.deepEqual(job.opts.backoff, { type: 'exponential', delay: 1000 });
        assert.deepEqual(await counts(queue), { ...zero, completed: 1 });
        const done = await queue.getJob('n-1');
        assert.equal(done.returnvalue, 'sent');
        assert.equal(await done.getState(), 'completed');
        await waitFor('QueueEvents', () => seen.includes('completed:n-1'));
        assert.deepEqual(seen.filter(s => !s.startsWith('active')),
          ['added:n-1', 'waiting:n-1', 'completed:n-1']);
      });

    test('published twice, or by many nodes at once: still one job, even after it was removed',
      async (t) => {
        t.after(closeAll);
        const qn = 'dup';
        const queue = await openQueue(qn);
        const cfg = { queue: qn, removeOnComplete: true };
        const n = notification('n-2', '7');
        const call = r => handOff(r, { user: '7', jobId: 'n-2', notification: n, cfg });
        assert.equal(await call(redis), 1);
        assert.equal(await call(redis), 2);
        // five nodes, five connections, at the same moment
        const nodes = Array.from({ length: 5 }, () => new Redis(connection()));
        assert.deepEqual(await Promise.all(nodes.map(call)), [2, 2, 2, 2, 2]);
        assert.deepEqual(await counts(queue), { ...zero, waiting: 1 });

        const got = [];
        startWorker(qn, async job => { got.push(job.id); });
        await waitFor('the job', () => got.length === 1);
        await waitFor('its removal', async () => !(await redis.exists(`${PREFIX}:${qn}:n-2`)));
        // removeOnComplete dropped the job hash; the deduplication key still holds the id
        assert.deepEqual(await Promise.all(nodes.map(call)), [2, 2, 2, 2, 2]);
        await sleep(300);
        assert.deepEqual(got, ['n-2']);
        assert.deepEqual(await counts(queue), zero);
        for (const r of nodes) r.disconnect();
        const evs = (await streamEntries(redis, `${PREFIX}:${qn}:events`)).map(e => e.event);
        assert.equal(evs.filter(e => e === 'added').length, 1);
        assert.equal(evs.filter(e => e === 'duplicated').length, 6);
        assert.equal(evs.filter(e => e === 'deduplicated').length, 5);
        assert.equal(await redis.get(`${PREFIX}:${qn}:id`), '12'); // INCR on every add, as bullmq
      });

    test('user online on some node: no job, nothing written', async (t) => {
      t.after(closeAll);
      const qn = 'online';
      await redis.sadd('roomcast:presence:9', 'node-a:sid-1');
      const cfg = { queue: qn };
      const n = notification('n-3', '9');
      assert.equal(await handOff(redis, { user: '9', jobId: 'n-3', notification: n, cfg }), 0);
      assert.deepEqual(await redis.keys(`${PREFIX}:${qn}:*`), []);
      await redis.srem('roomcast:presence:9', 'node-a:sid-1');
      assert.equal(await handOff(redis, { user: '9', jobId: 'n-3', notification: n, cfg }), 1);
    });

    test('a failing attempt is retried per attempts and exponential backoff', async (t) => {
      t.after(closeAll);
      const qn = 'retry';
      const queue = await openQueue(qn);
      const cfg = { queue: qn, attempts: 3, backoff: { type: 'exponential', delay: 200 } };
      const starts = { 'n-ok': [], 'n-bad': [] };
      startWorker(qn, async job => {
        starts[job.id].push({ at: Date.now(), made: job.attemptsMade });
        if (job.id === 'n-bad' || job.attemptsMade < 2) throw new Error(`smtp down (${job.id})`);
        return 'sent';
      }, { concurrency: 2 });
      assert.equal(await handOff(redis, { user: '1', jobId: 'n-ok', notification: notification('n-ok', '1'), cfg }), 1);
      assert.equal(await handOff(redis, { user: '1', jobId: 'n-bad', notification: notification('n-bad', '1'), cfg }), 1);
      await waitFor('both finished', async () => {
        const c = await counts(queue);
        return c.completed === 1 && c.failed === 1;
      }, 8000);
      for (const id of ['n-ok', 'n-bad']) {
        const s = starts[id];
        assert.deepEqual(s.map(x => x.made), [0, 1, 2], id);
        assert.ok(s[1].at - s[0].at >= 190, `${id}: first retry after ${s[1].at - s[0].at} ms`);
        assert.ok(s[2].at - s[1].at >= 390, `${id}: second retry after ${s[2].at - s[1].at} ms`);
      }
      const ok = await queue.getJob('n-ok');
      assert.equal(await ok.getState(), 'completed');
      assert.equal(ok.attemptsMade, 3); // bullmq >= 5 counts the successful attempt too
      const bad = await queue.getJob('n-bad');
      assert.equal(await bad.getState(), 'failed');
      assert.equal(bad.attemptsMade, 3);
      assert.equal(bad.failedReason, 'smtp down (n-bad)');
      assert.deepEqual(await counts(queue), { ...zero, completed: 1, failed: 1 });
    });

    for (const knownVersion of [true, false]) {
      test(`a paused queue keeps the job until resumed (meta.version ${knownVersion ? 'set' : 'absent'})`,
        async (t) => {
          t.after(closeAll);
          const qn = knownVersion ? 'paused' : 'paused-nov';
          const queue = await openQueue(qn);
          await queue.pause();
          if (!knownVersion) await redis.hdel(`${PREFIX}:${qn}:meta`, 'version');
          const got = [];
          startWorker(qn, async job => { got.push(job.id); });
          assert.equal(await handOff(redis, { user: '2', jobId: 'n-p', notification: notification('n-p', '2'),
            cfg: { queue: qn } }), 1);
          // 6.x keeps it in wait, 5.x in the paused list; without a version: the paused list,
          // which either major's resume moves back
          const inPausedList = !knownVersion || major < 6;
          assert.equal(await redis.llen(`${PREFIX}:${qn}:paused`), inPausedList ? 1 : 0);
          assert.equal(await redis.llen(`${PREFIX}:${qn}:wait`), inPausedList ? 0 : 1);
          assert.equal(await redis.zcard(`${PREFIX}:${qn}:marker`), 0);
          await sleep(800);
          assert.deepEqual(got, []);
          if (knownVersion) assert.deepEqual(await counts(queue), { ...zero, waiting: 1 });
          await queue.resume();
          await waitFor('the job after resume', () => got.length === 1);
          assert.deepEqual(got, ['n-p']);
          await waitFor('completion', async () => (await counts(queue)).completed === 1);
        });
    }

    test('a delayed job waits for its delay', async (t) => {
      t.after(closeAll);
      const qn = 'delayed';
      const queue = await openQueue(qn);
      const t0 = Date.now();
      assert.equal(await handOff(redis, { user: '3', jobId: 'n-d', notification: notification('n-d', '3'),
        cfg: { queue: qn, delay: 1000 }, ts: t0 }), 1);
      assert.deepEqual(await counts(queue), { ...zero, delayed: 1 });
      assert.equal(await redis.zscore(`${PREFIX}:${qn}:delayed`, 'n-d'), String((t0 + 1000) * 4096));
      // the marker's member "1" carries the due time (a Worker's BZPOPMIN takes it at once)
      assert.equal(await redis.zscore(`${PREFIX}:${qn}:marker`, '1'), String(t0 + 1000));
      const delayedEv = (await streamEntries(redis, `${PREFIX}:${qn}:events`)).find(e => e.event === 'delayed');
      assert.deepEqual(delayedEv, { event: 'delayed', jobId: 'n-d', delay: String(t0 + 1000) });
      const got = [];
      startWorker(qn, async job => { got.push({ id: job.id, at: Date.now() }); });
      await sleep(700);
      assert.deepEqual(got, []);
      await waitFor('the delayed job', () => got.length === 1, 4000);
      assert.ok(got[0].at - t0 >= 1000, `processed ${got[0].at - t0} ms after the hand-off`);
      assert.ok(got[0].at - t0 < 4000, `processed ${got[0].at - t0} ms after the hand-off`);
      const job = await queue.getJob('n-d');
      assert.equal(job.opts.delay, 1000);
      await waitFor('completion', async () => (await counts(queue)).completed === 1);
    });

    test('a prioritized job overtakes earlier lower-priority ones', async (t) => {
      t.after(closeAll);
      const qn = 'prio';
      const queue = await openQueue(qn);
      const add = (id, priority) => handOff(redis, { user: '4', jobId: id, notification: notification(id, '4'),
        cfg: { queue: qn, priority } });
      assert.equal(await add('n-low-1', 10), 1);
      assert.equal(await add('n-low-2', 10), 1);
      assert.equal(await add('n-high', 1), 1);
      assert.equal(await add('n-plain', 0), 1);
      assert.deepEqual(await counts(queue), { ...zero, waiting: 1, prioritized: 3 });
      assert.equal(await redis.zscore(`${PREFIX}:${qn}:prioritized`, 'n-high'), String(1 * 2 ** 32 + 3));
      const order = [];
      startWorker(qn, async job => { order.push(job.id); }, { concurrency: 1 });
      await waitFor('all four', () => order.length === 4);
      // bullmq takes plain (priority 0) jobs first, then by priority, FIFO within one
      assert.deepEqual(order, ['n-plain', 'n-high', 'n-low-1', 'n-low-2']);
      const high = await queue.getJob('n-high');
      assert.equal(high.priority, 1);
    });

    test('docs/jobs.md example Worker (example-worker.js) sends the email', async (t) => {
      t.after(closeAll);
      // roomcast writes first, into an empty Redis: no Node Queue has opened the queue yet
      const n = notification('n-ex', '42');
      assert.equal(await handOff(redis, { user: '42', jobId: 'n-ex', notification: n }), 1);
      assert.deepEqual(await redis.hgetall(`${PREFIX}:${DEFAULTS.queue}:meta`), { 'opts.maxLenEvents': '10000' });
      const child = spawn(process.execPath, ['-r', path.join(__dirname, 'lib', 'bullmq-alias.js'),
        path.join(__dirname, 'example-worker.js')], {
        env: { ...process.env, REDIS_URL: srv.url, BULLMQ_MAJOR: String(major) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', d => { out += d; });
      child.stderr.on('data', d => { err += d; });
      const exited = new Promise(r => child.once('exit', code => r(code)));
      t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
      await waitFor('the example worker', () => out.includes('\n'), 10000).catch(e => {
        throw new Error(`${e.message}; stderr: ${err}`);
      });
      const line = JSON.parse(out.split('\n')[0]);
      const queue = await openQueue(DEFAULTS.queue);
      assert.deepEqual(line, { sent: { to: '42', subject: 'Hi there', text: 'hello 42', notificationId: 'n-ex' } });
      await waitFor('completion', async () => (await counts(queue)).completed === 1);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, err);
    });
  });
}

describe('P:events stream (rule "forward")', () => {
  let srv;
  let redis;
  before(async () => {
    srv = await startRedis();
    redis = new Redis(srv.connection);
  });
  after(async () => {
    redis.disconnect();
    await srv.stop();
  });

  test('a consumer group reads back a forwarded event with all its fields', async () => {
    await redis.xgroup('CREATE', 'roomcast:events', 'backends', '$', 'MKSTREAM');
    const ev = { ns: '/chat', event: 'message', user: '42', sid: 'Xy12abcdefghijklmnop', node: 'node-a',
      data: JSON.stringify({ text: 'hi', n: [1, 2] }), ts: Date.now() };
    assert.match(await redis.xadd(...forwardArgs('roomcast', 100000, ev)), /^\d+-\d+$/);
    const res = await redis.xreadgroup('GROUP', 'backends', 'worker-1', 'COUNT', 10,
      'STREAMS', 'roomcast:events', '>');
    const [[stream, entries]] = res;
    assert.equal(stream, 'roomcast:events');
    assert.equal(entries.length, 1);
    const [id, kv] = entries[0];
    assert.deepEqual(kv, ['ns', '/chat', 'event', 'message', 'user', '42', 'sid', ev.sid,
      'node', 'node-a', 'data', ev.data, 'ts', String(ev.ts)]);
    assert.deepEqual(JSON.parse(kv[11]), { text: 'hi', n: [1, 2] });
    assert.equal(await redis.xack('roomcast:events', 'backends', id), 1);
    assert.equal((await redis.xpending('roomcast:events', 'backends'))[0], 0);
  });

  test('MAXLEN ~ keeps the stream near its cap', async () => {
    const p = redis.pipeline();
    for (let i = 0; i < 3000; i++) {
      p.xadd(...forwardArgs('roomcast', 1000, { ns: '/', event: 'e', user: 'u', sid: 's', node: 'n',
        data: String(i), ts: i }));
    }
    await p.exec();
    const len = await redis.xlen('roomcast:events');
    assert.ok(len >= 1000 && len < 1200, `XLEN ${len}`);
  });
});

test('docs/jobs.md quotes example-worker.js exactly', () => {
  const md = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'jobs.md'), 'utf8');
  const m = /<!-- example-worker\.js -->\n```js\n([\s\S]*?)```\n/.exec(md);
  assert.ok(m, 'the quoted block after <!-- example-worker.js -->');
  assert.equal(m[1], fs.readFileSync(path.join(__dirname, 'example-worker.js'), 'utf8'));
});
