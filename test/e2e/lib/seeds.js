'use strict';
// Shared harness for the seed tests (seed_*.test.js): each seed system (docs/migrating.md) runs
// as one config file of deploy/config/ on two roomcast nodes sharing a real redis-server, and its
// backend is played by a plain Redis client (PUBLISH, XRANGE), as a team's backend would do it.
//
//   const seed = await startSeed('tasks.json');     redis-server + nodes A and B (--redis), ready
//   seed.A, seed.B                                   lib/node.js RoomcastNode instances
//   seed.backend.publish('/', 'project_p1', 'task_created', {...})   PUBLISH roomcast:room:/:project_p1
//   seed.backend.notify({id, user, ns, event, data})                 PUBLISH roomcast:notify
//   seed.backend.op('/', 'user:42', {op: 'join', room: 'x'})         a control op
//   seed.backend.events()                            roomcast:events entries (XRANGE), data parsed
//   await seed.waitSubscribed('/', 'project_p1', 2)  PUBSUB NUMSUB of the room channel reaches 2
//   seed.supports                                    {status, track, visible}: see below
//   await seed.stop()
//
// The deploy config is used as it is; only operational settings are overridden for the test
// (TEST_OVERRIDES below: drain.grace, engine.pingInterval). Nothing under "namespaces" is touched,
// except this: presence-driven parts that the node under test does not accept yet (the namespace
// options "status" and "track", the "visible" action; today: "status.broadcast" of chat.json and
// "{match.0}" in the "track" templates of meetings.json, both proposed) are taken out when, and
// only when, `--check-config` rejects nothing else. seed.supports tells which ones are live;
// tests of those parts are marked todo until they land.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const assert = require('node:assert/strict');
const {
  BIN, JWT_SECRET, startNode, writeTemp, httpRequest, sleep, token, client, connected, waitUntil, readyz, metric,
} = require('./node');
const { startRedis } = require('./redis');

const DEPLOY_DIR = path.resolve(__dirname, '..', '..', '..', 'deploy', 'config');
const P = 'roomcast';
const PENDING = ['status', 'track', 'visible'];
// Operational settings only. drain.grace: SIGTERM must not wait 30 s. engine.pingInterval: the
// deploy configs keep Socket.IO's 25 s; a polling GET that arrives after the WebSocket probe is
// held until the next ping (server bug, see seed_002_chat.test.js "upgrade"), which with 25 s
// would stall any event a client emits during its polling -> websocket upgrade. 1 s bounds that
// stall below the tests' waits; the bug itself is asserted by its own (todo) test.
const TEST_OVERRIDES = { drain: { grace: 200 }, engine: { pingInterval: 1000 } };


// `build/roomcast --check-config`: [] when valid, else the problem lines ("<path>: <message>").
function checkConfig(file) {
  const r = spawnSync(BIN, ['--check-config', '--config', file], {
    encoding: 'utf8', timeout: 10000, env: { ...process.env, ROOMCAST_JWT_SECRET: JWT_SECRET },
  });
  if (r.error) throw new Error(`${BIN} --check-config could not run: ${r.error.message}`);
  if (r.status === 0) return [];
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.replace(/^config: /, '').trim())
    .filter((l) => l && !/^config ok$/.test(l));
  return lines.length ? lines : [`--check-config exited ${r.status ?? r.signal}`];
}

// Which pending features an error line is about (null: something else is wrong).
function pendingFeatureOf(line) {
  if (/^namespaces\.[^ ]*?\.status(?=[.:\s[]|$)/.test(line) && !/\.events\./.test(line)) return 'status';
  if (/^namespaces\.[^ ]*?\.track(?=[.:\s[]|$)/.test(line) && !/\.events\./.test(line)) return 'track';
  if (/\.visible: unknown key/.test(line)) return 'visible';
  if (/: no verb \(/.test(line)) return 'visible?'; // the companion of an unknown 'visible' verb
  return null;
}

function stripVisible(node) {
  if (Array.isArray(node)) {
    return node.filter((a) => !(a && typeof a === 'object' && !Array.isArray(a) && 'visible' in a))
      .map(stripVisible);
  }
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = stripVisible(v);
    return out;
  }
  return node;
}

function stripPending(config, features) {
  const c = JSON.parse(JSON.stringify(config));
  for (const ns of Object.values(c.namespaces || {})) {
    if (!ns || typeof ns !== 'object') continue;
    if (features.has('status')) delete ns.status;
    if (features.has('track')) delete ns.track;
    if (features.has('visible') && ns.events) ns.events = stripVisible(ns.events);
  }
  return c;
}

// Loads deploy/config/<name>, validated by the binary under test. Returns {config, file,
// supports, dropped}: the object and the file to run (the deploy file itself when it is accepted
// as it is), which pending features are live, and the rejected lines that caused a strip.
function loadSeedConfig(name) {
  const deployFile = path.join(DEPLOY_DIR, name);
  const config = JSON.parse(fs.readFileSync(deployFile, 'utf8'));
  const present = new Set();
  const text = JSON.stringify(config);
  for (const ns of Object.values(config.namespaces || {})) {
    if (ns && ns.status) present.add('status');
    if (ns && ns.track) present.add('track');
  }
  if (/"visible":/.test(text)) present.add('visible');

  const errors = checkConfig(deployFile);
  const supports = Object.fromEntries(PENDING.map((f) => [f, present.has(f)]));
  if (errors.length === 0) return { config, file: deployFile, supports, dropped: [] };

  const missing = new Set();
  const other = [];
  for (const line of errors) {
    const f = pendingFeatureOf(line);
    if (f === 'visible?') continue;
    if (f) missing.add(f);
    else other.push(line);
  }
  if (errors.some((l) => pendingFeatureOf(l) === 'visible?') && !missing.has('visible')) {
    other.push(...errors.filter((l) => pendingFeatureOf(l) === 'visible?'));
  }
  assert.deepEqual(other, [], `deploy/config/${name} is rejected by ${BIN} --check-config:\n${errors.join('\n')}`);
  const stripped = stripPending(config, missing);
  const file = writeTemp(name, JSON.stringify(stripped, null, 2));
  const again = checkConfig(file);
  assert.deepEqual(again, [], `deploy/config/${name} without ${[...missing].join(', ')} is still rejected:\n${again.join('\n')}`);
  for (const f of missing) supports[f] = false;
  return { config: stripped, file, supports, dropped: errors };
}


class Backend {
  constructor(redis) {
    this.redis = redis;
    this.listeners = 0; // nodes hearing every room of a recoverable namespace (startSeed sets it)
    this.recoverable = new Set(); // namespaces with recovery on
  }

  // PUBLISH's answer less the recovery listeners' copies (docs/recovery.md, "Listeners": two nodes
  // hear every room of a recoverable namespace through patterns): the nodes subscribed to the room.
  async roomPublish(ns, room, msg) {
    const n = await this.redis.publish(`${P}:room:${ns}:${room}`, msg);
    return this.recoverable.has(ns) ? n - this.listeners : n;
  }

  // PUBLISH P:room:<ns>:<room> {"event","data"}: resolves with the number of nodes subscribed to
  // the room that got it.
  publish(ns, room, event, data) {
    const msg = data === undefined ? { event } : { event, data };
    return this.roomPublish(ns, room, msg);
  }

  publishArgs(ns, room, event, args) {
    return this.roomPublish(ns, room, { event, args });
  }

  // The whole namespace: P:ns:<ns>.
  broadcast(ns, event, data) {
    return this.redis.publish(`${P}:ns:${ns}`, { event, data });
  }

  // A control op ({op: 'join'|'leave'|'disconnect', room}) for every socket in ns/room.
  op(ns, room, op) {
    return this.roomPublish(ns, room, op);
  }

  // A notification with offline fallback (docs/redis.md, "P:notify").
  notify(notification) {
    return this.redis.publish(`${P}:notify`, notification);
  }

  // Entries of the roomcast:events stream after `after` ('-' for all): [{id, ns, event, user,
  // sid, node, data (parsed), ts}].
  async events(after = '-') {
    const start = after === '-' ? '-' : `(${after}`;
    const rows = await this.redis.command('XRANGE', `${P}:events`, start, '+');
    return (rows || []).map(([id, fields]) => {
      const e = { id };
      for (let i = 0; i + 1 < fields.length; i += 2) e[fields[i]] = fields[i + 1];
      e.data = JSON.parse(e.data);
      e.ts = Number(e.ts);
      return e;
    });
  }

  // Waits for the first stream entry (after `after`) that pred accepts; returns it.
  async nextEvent(pred, { after = '-', timeout = 5000 } = {}) {
    return waitUntil(async () => (await this.events(after)).find(pred), { timeout, what: 'a roomcast:events entry' });
  }

  // The BullMQ job hash for a notification id (default queue "email", prefix "bull"), or null.
  async job(id) {
    const flat = await this.redis.command('HGETALL', `bull:email:${id}`);
    if (!flat || flat.length === 0) return null;
    const o = {};
    for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = flat[i + 1];
    return o;
  }
}

// Starts redis-server and `nodes` roomcast nodes running deploy/config/<name>.
async function startSeed(name, { nodes: count = 2, overrides = {}, tag } = {}) {
  const loaded = loadSeedConfig(name);
  const redis = await startRedis();
  const seed = {
    name, redis, nodes: [], supports: loaded.supports, dropped: loaded.dropped, config: loaded.config,
    backend: new Backend(redis),
  };
  const t = tag || `${path.basename(name, '.json')}-${process.pid}`;
  const merged = { ...loaded.config };
  for (const [k, v] of Object.entries({ ...TEST_OVERRIDES, ...overrides })) {
    merged[k] = v && typeof v === 'object' && !Array.isArray(v) ? { ...(merged[k] || {}), ...v } : v;
  }
  const started = await Promise.allSettled(Array.from({ length: count }, (_, i) => startNode({
    config: merged, nodeId: `${t}-${String.fromCharCode(97 + i)}`, args: ['--redis', redis.url],
  })));
  seed.nodes = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  [seed.A, seed.B] = seed.nodes;

  seed.stop = async () => {
    const stopped = await Promise.allSettled(seed.nodes.map((n) => n.stop()));
    await redis.stop();
    const failed = stopped.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await seed.stop().catch(() => {});
    throw failed.reason;
  }
  await waitUntil(async () => (await Promise.all(seed.nodes.map(readyz))).every((s) => s === 200),
    { timeout: 10000, what: 'every node ready (/readyz 200)' });
  // With recovery on, two nodes become listeners (docs/recovery.md): wait for them, so that the
  // first clients' offsets are covered and PUBLISH's answer is stable.
  for (const [ns, c] of Object.entries(merged.namespaces || {})) if (c.recovery && c.recovery.enabled) seed.backend.recoverable.add(ns);
  if (seed.backend.recoverable.size) {
    const want = Math.min(2, seed.nodes.length);
    const listening = async () => (await Promise.all(seed.nodes.map((n) => metric(n, 'roomcast_recovery_listening'))))
      .filter((v) => v === 1).length;
    await waitUntil(async () => (await listening()) === want, { timeout: 15000, what: `${want} recovery listeners` });
    seed.backend.listeners = want;
  }

  // A join is acknowledged before the node's SUBSCRIBE reaches Redis (cluster.test.js, todo), so
  // a backend waits for the channel's subscriber count before publishing to a fresh room.
  seed.waitSubscribed = (ns, room, n, timeout = 5000) =>
    waitUntil(async () => (await redis.numsub(`${P}:room:${ns}:${room}`)) === n,
      { timeout, what: `PUBSUB NUMSUB ${P}:room:${ns}:${room} = ${n}` });

  seed.checkAlive = async () => {
    await sleep(50);
    for (const n of seed.nodes) {
      n.assertNoSanitizerReport();
      n.assertAlive();
    }
  };
  return seed;
}

// A JWT for user `id` with the user id in `userClaim` (and no `sub` unless that is the claim).
function tokenFor(id, claims = {}, { userClaim = 'sub', ...opts } = {}) {
  const c = { sub: undefined, [userClaim]: id, ...claims };
  return token(c, opts);
}

// A connected socket.io-client socket on node/ns (lib/node.js client(): forceNew, no reconnection).
async function connectSeed(node, ns, opts = {}) {
  const url = ns && ns !== '/' ? `${node.url}${ns}` : node.url;
  return connected(client(url, opts));
}

// The first `event` on socket whose first argument pred accepts (resolves with it).
function waitForMatch(socket, event, pred, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const listener = (...args) => {
      if (!pred(args[0], args)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(args[0]);
    };
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for a matching '${event}'`));
    }, timeoutMs);
    socket.on(event, listener);
  });
}

// The arguments an application reads: with connection state recovery on (chat, notifications and
// meetings seeds, docs/recovery.md) a kept event carries its offset as one more, last argument.
function appArgs(args) {
  const last = args[args.length - 1];
  return typeof last === 'string' && /^\d+-\d+$/.test(last) ? args.slice(0, -1) : args;
}

module.exports = {
  appArgs, P, DEPLOY_DIR, startSeed, loadSeedConfig, checkConfig, tokenFor, connectSeed, waitUntil, waitForMatch, Backend,
};
