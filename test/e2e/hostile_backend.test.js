'use strict';
// Hostile or mistaken backend input (issue #15, findings 4, 5, 7, 8 and 9), measured on the
// bystanders: what the other users see, not only that the node survives. Two nodes share one
// redis-server, each running a deploy config as it is (deploy/config/notifications.json on
// /notifications, deploy/config/tasks.json on /); the backend is a plain Redis client and POST
// /api/publish.
//
//   4  a status watch of "*" or "bo*" is a watch of that literal user, never a pattern
//   5  ids that went through a double (2^53 + 1, 41.6, 19-digit project ids) are refused, never
//      rounded into another user's id or room
//   7  an emit socket.io-client cannot parse (reserved event names, more than 10 attachments,
//      placeholders out of range) is refused on every way in, and the room stays connected
//   8  a Redis envelope is understood whole or refused: counted, logged (rate limited), delivered
//      to nobody
//   9  a namespace the backplane cannot carry is refused at config load; a publish the backplane
//      refuses (full backlog) has reached nobody, local members included
// docs/redis.md ("Publishing from a backend", "Envelope on room and namespace channels").

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const {
  BIN, JWT_SECRET, API_KEY, startNode, client, connected, closeClients, token, rawToken, nowS, emitAck, waitFor,
  waitForArgs, collect, sleep, publish, publishOk, httpRequest, metric, waitUntil, readyz, writeTemp,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');

const T = { timeout: 30000 };
const QUIET_MS = 500;
const P = 'roomcast';
const DEPLOY = path.resolve(__dirname, '..', '..', 'deploy', 'config');
const OVERRIDES = { drain: { grace: 200 }, engine: { pingInterval: 1000 } };
const NOTIF = '/notifications';

describe('hostile backend input never reaches or drops the bystanders', () => {
  let redis;
  let notif; // deploy/config/notifications.json
  let tasks; // deploy/config/tasks.json

  before(async () => {
    redis = await startRedis();
    [notif, tasks] = await Promise.all([
      startNode({ config: path.join(DEPLOY, 'notifications.json'), overrides: OVERRIDES, args: ['--redis', redis.url] }),
      startNode({
        config: path.join(DEPLOY, 'tasks.json'),
        overrides: OVERRIDES,
        args: ['--redis', redis.url],
      }),
    ]);
    await waitUntil(async () => (await readyz(notif)) === 200 && (await readyz(tasks)) === 200,
      { timeout: 10000, what: 'both nodes ready' });
  });
  afterEach(async () => {
    closeClients();
    for (const n of [notif, tasks]) if (n) n.assertAlive();
  });
  after(async () => {
    closeClients();
    await Promise.all([notif, tasks].filter(Boolean).map((n) => n.stop()));
    if (redis) await redis.stop();
  });

  const onNotif = (sub, rooms = []) => connected(client(`${notif.url}${NOTIF}`, { auth: { token: token({ sub, rooms }) } }));
  const onTasks = (sub, projects = []) => connected(client(tasks.url, { auth: { token: token({ sub, projects }) } }));
  // Resolves when the room's channel has `n` subscribers (the node's join is live in Redis).
  const subscribed = (channel, n = 1) => waitUntil(async () => (await redis.numsub(channel)) >= n,
    { timeout: 5000, what: `${channel} subscribed` });
  // Every 'disconnect' a socket sees, with its reason.
  const drops = (sockets) => sockets.map((s) => collect(s, 'disconnect'));

  it('4: watching user "*" or "bo*" watches that literal user; only the watcher of "bob" hears bob', T, async () => {
    const star = await onNotif('w-star');
    const bostar = await onNotif('w-bostar');
    const good = await onNotif('w-good');
    const heard = [star, bostar, good].map((s) => collect(s, 'user-status'));
    for (const [s, userId] of [[star, '*'], [bostar, 'bo*'], [good, 'bob']]) {
      const [ack] = await emitAck(s, 'subscribe-user-status', { userId });
      assert.ok(ack.event === 'subscribed' || ack.event === 'exception', JSON.stringify(ack));
    }
    await subscribed(`${P}:status:bob`);
    const seen = (i, online) => heard[i].some(([st]) => st.isOnline === online);
    const bob = await onNotif('bob');
    await waitUntil(() => seen(2, true), { what: 'online of bob' });
    bob.close();
    await waitUntil(() => heard[2].at(-1)[0].isOnline === false, { what: 'offline of bob' });
    const carol = await onNotif('carol'); // nobody watches carol
    carol.close();
    await sleep(QUIET_MS);
    assert.ok(heard[2].every(([st]) => st.userId === 'bob'), JSON.stringify(heard[2]));
    // A watcher may be told the status of the user it watches (nobody is called "*" or "bo*":
    // offline), never anyone else's: nobody online, whoever came and went.
    for (const [i, who] of [[0, '*'], [1, 'bo*']]) {
      assert.ok(heard[i].every(([st]) => st.userId === who && st.isOnline === false),
        `the watcher of "${who}" heard: ${JSON.stringify(heard[i])}`);
    }
    // Redis shows literal channels, no pattern made from user input: the only patterns are the
    // recovery listener's, made from the config (notifications.json's namespace has recovery:
    // P:room:<ns>:* and P:ns:<ns>, docs/recovery.md "Listeners").
    assert.equal(await redis.numsub(`${P}:status:*`), 1);
    assert.equal(Number(await redis.command('PUBSUB', 'NUMPAT')), 2);
  });

  it('5: P:notify and the API refuse ids that went through a double: nothing reaches user 2^53 or 42 by rounding', T, async () => {
    const big = await onNotif('9007199254740992');
    const u42 = await onNotif('42');
    const heard = [big, u42].map((s) => collect(s, 'notification'));
    const refused0 = await metric(notif, 'roomcast_notifications_refused_total');
    const texts = [
      `{"user":9007199254740993,"ns":"${NOTIF}","event":"notification","data":"for 2^53+1"}`,
      `{"user":41.6,"ns":"${NOTIF}","event":"notification","data":"for 41.6"}`,
      `{"user":42.0000000000000001,"ns":"${NOTIF}","event":"notification","data":"for 42.0..01"}`,
      `{"user":"42","id":0.5,"ns":"${NOTIF}","event":"notification","data":"fractional id"}`,
    ];
    for (const t of texts) assert.equal(await redis.publish(`${P}:notify`, t), 2, 'both nodes hear P:notify');
    for (const t of texts.slice(0, 2)) {
      const res = await httpRequest(notif, 'POST', '/api/publish', {
        headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' }, body: t,
      });
      assert.equal(res.status, 400, `${t}: ${res.status} ${res.body}`);
      assert.deepEqual(res.json(), { ok: false, error: 'bad_user' });
    }
    await sleep(QUIET_MS);
    assert.deepEqual(heard[0], [], 'user 9007199254740992 got another id\'s notification');
    // 42.0000000000000001 is 42 to any JSON parser (as to JavaScript): not a rounding of ours.
    assert.deepEqual(heard[1].map(([d]) => d), ['for 42.0..01']);
    assert.ok(await metric(notif, 'roomcast_notifications_refused_total') >= refused0 + 3);
    assert.match(notif.stderr(), /notify_refused/);
    // An exact numeric id still works.
    const got = waitFor(u42, 'notification');
    await redis.publish(`${P}:notify`, `{"user":42,"id":17,"ns":"${NOTIF}","event":"notification","data":"exact"}`);
    assert.equal(await got, 'exact');
  });

  it('5: two 19-digit project ids never share a room: joins by such numbers are refused', T, async () => {
    const raw = (sub, projectsJson) => rawToken({ alg: 'HS256', typ: 'JWT' },
      `{"sub":"${sub}","projects":[${projectsJson}],"exp":${nowS() + 3600}}`, { secret: JWT_SECRET });
    const a = await connected(client(tasks.url, { auth: { token: raw('pa', '1234567890123456789') } }));
    const b = await connected(client(tasks.url, { auth: { token: raw('pb', '1234567890123456788') } }));
    const c = await connected(client(tasks.url, { auth: { token: raw('pc', '"1234567890123456789"') } }));
    const heard = [a, b, c].map((s) => collect(s, 'task_created'));
    // JavaScript sends both ids as the same double; a backend in another language would not.
    assert.equal((await emitAck(a, 'joinProject', { projectId: 1234567890123456789 }))[0].status, 'error');
    assert.equal((await emitAck(b, 'joinProject', { projectId: 1234567890123456788 }))[0].status, 'error');
    assert.deepEqual((await emitAck(c, 'joinProject', { projectId: '1234567890123456789' }))[0],
      { projectId: '1234567890123456789', status: 'success' });
    await subscribed(`${P}:room:/:project_1234567890123456789`);
    await redis.publish(`${P}:room:/:project_1.2345678901234568e+18`, { event: 'task_created', data: 'merged' });
    await redis.publish(`${P}:room:/:project_1234567890123456789`, { event: 'task_created', data: 'exact' });
    await sleep(QUIET_MS);
    assert.deepEqual(heard.map((h) => h.map(([d]) => d)), [[], [], ['exact']]);
  });

  it('7: emits socket.io-client cannot parse are refused on every way in; the room stays connected', T, async () => {
    const m1 = await onTasks('m1', ['p7']);
    const m2 = await onTasks('m2', ['p7']);
    const other = await onTasks('m3', ['p8']);
    for (const [s, p] of [[m1, 'p7'], [m2, 'p7'], [other, 'p8']]) {
      assert.equal((await emitAck(s, 'joinProject', { projectId: p }))[0].status, 'success');
    }
    await subscribed(`${P}:room:/:project_p7`);
    const dropped = drops([m1, m2, other]);
    const invalid0 = await metric(tasks, 'roomcast_redis_messages_invalid_total');
    const logged0 = (tasks.stderr().match(/redis_bad_message/g) || []).length;
    const room = `${P}:room:/:project_p7`;
    const att = (n) => Array.from({ length: n }, () => 'AA==');
    const hostile = [
      [room, { event: 'connect', data: 1 }],
      [room, { event: 'connect_error', data: 1 }],
      [room, { event: 'disconnect', data: 1 }],
      [room, { event: 'disconnecting' }],
      [room, { event: 'newListener', data: 'x' }],
      [room, { event: 'removeListener' }],
      [room, { event: 'bin', args: [{ _placeholder: true, num: 0 }], attachments: att(11) }],
      [room, { event: 'bin', args: [{ _placeholder: true, num: 1 }], attachments: att(1) }],
      [room, { event: 'bin', data: { f: { _placeholder: true, num: -1 } }, attachments: att(1) }],
      [`${P}:ns:/`, { event: 'disconnect' }],
      [`${P}:ns:/`, { event: 'bin', args: [{ _placeholder: true, num: 5 }], attachments: att(2) }],
    ];
    for (const [ch, msg] of hostile) assert.equal(await redis.publish(ch, msg), 1, JSON.stringify(msg));
    for (const msg of [{ room: 'project_p7', event: 'connect', data: 1 }, { broadcast: true, event: 'newListener' },
      { user: 'm1', event: 'disconnect', data: 1 }]) {
      const res = await publish(tasks, msg);
      assert.equal(res.status, 400, `${JSON.stringify(msg)}: ${res.status} ${res.body}`);
      assert.deepEqual(res.json(), { ok: false, error: 'reserved_event' });
    }
    await redis.publish(`${P}:notify`, { user: 'm1', ns: '/', event: 'disconnect', data: 1 });
    await sleep(QUIET_MS);
    assert.deepEqual(dropped, [[], [], []], 'a member was dropped');
    assert.ok(m1.connected && m2.connected && other.connected);
    const invalid = await metric(tasks, 'roomcast_redis_messages_invalid_total');
    assert.equal(invalid - invalid0, hostile.length);
    // Logged, at most one line a second: a flood does not flood the log.
    const logged = (tasks.stderr().match(/redis_bad_message/g) || []).length - logged0;
    assert.ok(logged >= 1 && logged < hostile.length, `${logged} redis_bad_message lines`);
    // A good binary emit still reaches the members, attachments and all.
    const got = [m1, m2].map((s) => waitForArgs(s, 'bin'));
    assert.equal(await redis.publish(room, { event: 'bin', args: [{ _placeholder: true, num: 0 }, 'x'], attachments: ['AP8Q'] }), 1);
    for (const args of await Promise.all(got)) {
      assert.ok(Buffer.isBuffer(args[0]), 'the attachment arrives as binary');
      assert.deepEqual([...args[0]], [0, 255, 16]);
      assert.equal(args[1], 'x');
    }
  });

  it('8: an envelope with an unknown, repeated or misplaced key is refused whole, never half-understood', T, async () => {
    const m1 = await onTasks('n1', ['q1']);
    const m2 = await onTasks('n2', ['q2']);
    for (const [s, p] of [[m1, 'q1'], [m2, 'q2']]) {
      assert.equal((await emitAck(s, 'joinProject', { projectId: p }))[0].status, 'success');
    }
    await subscribed(`${P}:room:/:project_q1`);
    const heard = [m1, m2].map((s) => collect(s, 'typo'));
    const invalid0 = await metric(tasks, 'roomcast_redis_messages_invalid_total');
    const room = `${P}:room:/:project_q1`;
    const bad = [
      { event: 'typo', rooms: ['project_q2'], data: 1 },
      { event: 'typo', room: 'project_q2', data: 1 },
      { event: 'typo', Data: 1 },
      '{"event":"typo","data":1,"data":2}',
      '{"event":"typo","except":[],"except":["x"]}',
      '{"event":"typo","data":1} trailing',
      { event: 'typo', data: 1, args: [2] },
      { event: 'typo', data: 1, id: 1.5 },
      { op: 'join', room: 'project_q2', event: 'typo' },
      { op: 'disconnect', room: 'project_q2' },
    ];
    for (const msg of bad) assert.equal(await redis.publish(room, msg), 1);
    await sleep(QUIET_MS);
    assert.deepEqual(heard, [[], []]);
    assert.equal(await metric(tasks, 'roomcast_redis_messages_invalid_total') - invalid0, bad.length);
    assert.ok(m1.connected && m2.connected, 'the op with a misplaced key disconnected nobody');
    // m1 was not made to join project_q2 by the op with an extra key
    const onlyM2 = waitFor(m2, 'q2-news');
    const m1q2 = collect(m1, 'q2-news');
    await redis.publish(`${P}:room:/:project_q2`, { event: 'q2-news', data: 1 });
    assert.equal(await onlyM2, 1);
    await sleep(100);
    assert.deepEqual(m1q2, []);
  });

  it('9: --check-config refuses a namespace with ":" (the backplane could not carry it), with its path', T, async () => {
    const file = writeTemp('colon.json', JSON.stringify({ namespaces: { '/a:b': { auth: 'none' }, '/ok': { auth: 'none' } } }));
    const r = spawnSync(BIN, ['--check-config', '--config', file], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(r.status, 0, `accepted: ${r.stdout}${r.stderr}`);
    assert.match(`${r.stdout}${r.stderr}`, /namespaces\.\/a:b: .*':'/);
  });

  // Last: it freezes Redis. Its own node: a relay rule, and Engine.IO packets large enough to fill
  // the command connection's backlog (32 MiB unsent, docs/redis.md) before the canary notices.
  it('9: a publish the backplane refuses (its backlog full) reaches nobody, local members included', T, async (t) => {
    const rule = (action) => ({ do: [action, { ack: { ok: true } }], onError: [{ ack: { ok: false, error: '{error}' } }] });
    const node = await startNode({
      args: ['--redis', redis.url],
      config: {
        engine: { maxPayload: 60000000 }, drain: { grace: 200 },
        namespaces: { '/': { auth: 'none', joinAllow: 'any', events: {
          join: rule({ join: '{data}' }),
          fill: rule({ relay: { room: '{data.room}', includeSender: false } }),
          say: rule({ relay: { room: 'z', event: 'said', data: '{data}', requireMember: false } }),
        } } },
      },
    });
    try {
      await waitUntil(async () => (await readyz(node)) === 200, { timeout: 10000, what: 'ready' });
      const m = await connected(client(node.url, { transports: ['websocket'] }));
      const sender = await connected(client(node.url, { transports: ['websocket'] }));
      assert.deepEqual(await emitAck(m, 'join', 'z'), [{ ok: true }]);
      assert.deepEqual(await emitAck(sender, 'join', 'alone'), [{ ok: true }]);
      await subscribed(`${P}:room:/:z`);
      const heard = [collect(m, 'said'), collect(m, 'after-refusal')];
      const blob = Buffer.alloc(9 * 1024 * 1024, 7);
      redis.freeze();
      const t0 = Date.now();
      let results;
      let up;
      try {
        // One relay of 36 MiB of attachments (48 MiB of base64 in its envelope) to a room with
        // no other member: accepted, and the backlog is full. Then, pipelined behind it, a small
        // relay to z, and a backend publish to z: both refused.
        const fill = emitAck(sender, 'fill', { room: 'alone' }, blob, blob, blob, blob);
        const say = emitAck(sender, 'say', 'must not arrive');
        results = [await fill, await say];
        const api = await publish(node, { room: 'z', event: 'after-refusal', data: 'must not arrive' });
        results.push([api.status, api.json()]);
        up = await metric(node, 'roomcast_redis_up');
      } finally {
        redis.thaw();
      }
      t.diagnostic(`after ${Date.now() - t0} ms: ${JSON.stringify(results)}; roomcast_redis_up=${up} then`);
      assert.deepEqual(results, [[{ ok: true }], [{ ok: false, error: 'backplane_down' }],
        [503, { ok: false, error: 'backplane_down' }]]);
      if (up !== 1) t.diagnostic('the canary marked Redis down before the backlog refusal could be told apart');
      await sleep(QUIET_MS);
      assert.deepEqual(heard, [[], []], 'a refused publish reached a local member');
      await waitUntil(async () => (await readyz(node)) === 200, { timeout: 15000, what: 'ready again' });
      if (m.connected) { // a long freeze may cost a client its session; the point is made above
        const got = waitFor(m, 'after-refusal');
        await publishOk(node, { room: 'z', event: 'after-refusal', data: 'now' });
        assert.equal(await got, 'now');
      }
    } finally {
      closeClients();
      await node.stop();
    }
    await waitUntil(async () => (await readyz(notif)) === 200 && (await readyz(tasks)) === 200,
      { timeout: 15000, what: 'the other nodes ready again' });
  });
});
