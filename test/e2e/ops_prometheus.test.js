'use strict';
// Operations: a real Prometheus (Debian's package) scrapes two roomcast nodes on loopback every
// second, with the repo's alert rules loaded. Checks, through Prometheus's HTTP API, that both
// targets are up and that the connection gauges match the clients connected; that promtool check
// metrics passes on a live node's /metrics after real traffic; that every metric named by the alert
// rules and the Grafana dashboard exists, and every dashboard query runs; and that stopping a node
// puts RoomcastNodeDown in pending for it.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const {
  startNode, connect, connectError, client, connected, token, emitAck, waitFor, publishOk, closeClients, sleep,
} = require('./lib/node');
const {
  REPO, ensureServers, which, startRedis, startPrometheus, waitUntil, scrape, parseMetrics, opsConfig,
} = require('./lib/ops');

const ALERTS = path.join(REPO, 'deploy', 'prometheus', 'roomcast-alerts.yml');
const DASHBOARD = path.join(REPO, 'deploy', 'grafana', 'roomcast.json');

// docs/operations.md, "Metrics": the families every node exposes (roomcast_redis_* only with Redis).
const DESIGN_FAMILIES = {
  roomcast_connections: 'gauge',
  roomcast_connections_accepted_total: 'counter',
  roomcast_handshakes_total: 'counter',
  roomcast_auth_failures_total: 'counter',
  roomcast_messages_in_total: 'counter',
  roomcast_messages_out_total: 'counter',
  roomcast_rooms: 'gauge',
  roomcast_backplane_publishes_total: 'counter',
  roomcast_backplane_receives_total: 'counter',
  roomcast_redis_up: 'gauge',
  roomcast_redis_reconnects_total: 'counter',
  roomcast_delivery_latency_seconds: 'histogram',
  roomcast_slow_consumer_drops_total: 'counter',
  roomcast_rate_limited_total: 'counter',
  roomcast_jobs_added_total: 'counter',
  roomcast_build_info: 'gauge',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  process_virtual_memory_bytes: 'gauge',
  process_open_fds: 'gauge',
  process_max_fds: 'gauge',
  process_start_time_seconds: 'gauge',
};

function familyTypes(text) {
  const types = new Map();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1], m[2]);
  return types;
}

// Metric names used in PromQL text (roomcast_* and process_*, plus up).
function metricNamesIn(expr) {
  const names = new Set();
  for (const m of expr.matchAll(/\b((?:roomcast|process)_[a-zA-Z0-9_]+)\b/g)) names.add(m[1]);
  return names;
}

// A name used in a query resolves to an exposed family, directly or as a histogram's series.
function resolvesTo(name, types) {
  if (types.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return !!(m && types.get(m[1]) === 'histogram');
}

function dashboardExprs() {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  const exprs = [];
  const walk = (panels) => {
    for (const p of panels || []) {
      for (const t of p.targets || []) if (t.expr) exprs.push({ panel: p.title, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dash.panels);
  for (const v of (dash.templating && dash.templating.list) || []) {
    const q = typeof v.query === 'string' ? v.query : v.query && v.query.query;
    if (v.type === 'query' && q) exprs.push({ panel: `variable ${v.name}`, expr: q, variable: true });
  }
  return exprs;
}

// Grafana's variables, as a dashboard would expand them for this test's job.
function expandGrafana(expr) {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, '1m')
    .replace(/\$__interval|\$\{__interval\}/g, '15s')
    .replace(/\$__range|\$\{__range\}/g, '5m')
    .replace(/\$\{?job\}?/g, 'roomcast')
    .replace(/\$\{?instance\}?/g, '.*')
    .replace(/\$\{?namespace\}?/g, '.*');
}

// redis-server, prometheus and nginx: installed when missing, before any test timeout runs
ensureServers();

describe('operations: Prometheus scraping two nodes', { timeout: 90000 }, () => {
  let redis;
  let nodeA;
  let nodeB;
  let prom;

  before(async () => {
    redis = await startRedis();
    nodeA = await startNode({ config: opsConfig(), args: ['--redis', redis.url] });
    nodeB = await startNode({ config: opsConfig(), args: ['--redis', redis.url] });
    prom = await startPrometheus({
      targets: [`127.0.0.1:${nodeA.port}`, `127.0.0.1:${nodeB.port}`],
      ruleFiles: [ALERTS],
    });
  });

  after(async () => {
    closeClients();
    if (prom) await prom.stop();
    if (nodeA) await nodeA.stop();
    if (nodeB) await nodeB.stop();
    if (redis) await redis.stop();
  });

  test('promtool check metrics passes on live nodes (Redis and embedded backplanes) after real traffic, with every required metric family', async () => {
    // Traffic that touches most families: a handshake over polling with upgrade, a refused token,
    // a join (room + Redis subscription), a relay to the room and an API publish (delivery latency,
    // messages in and out, backplane publishes), then a receive from the other node.
    const alice = await connect(nodeA.url, { auth: { token: token({ sub: 'alice', rooms: ['lobby'] }) } });
    const bob = await connect(nodeB.url, { auth: { token: token({ sub: 'bob', rooms: ['lobby'] }) }, transports: ['websocket'] });
    await connectError(nodeA.url, { auth: { token: token({ sub: 'mallory' }, { secret: 'not-the-secret' }) } });
    assert.deepEqual(await emitAck(alice, 'join', 'lobby'), [{ ok: true, room: 'lobby' }]);
    assert.deepEqual(await emitAck(bob, 'join', 'lobby'), [{ ok: true, room: 'lobby' }]);
    await sleep(200); // Redis subscriptions of the new room
    const heard = waitFor(bob, 'said');
    assert.deepEqual(await emitAck(alice, 'say', { room: 'lobby', text: 'hi' }), [{ ok: true, room: 'lobby' }]);
    assert.deepEqual(await heard, { from: 'alice', text: 'hi' });
    const published = waitFor(alice, 'news');
    await publishOk(nodeB, { room: 'lobby', event: 'news', data: { n: 1 } });
    assert.deepEqual(await published, { n: 1 });

    for (const node of [nodeA, nodeB]) {
      const text = await scrape(node.port);
      const r = spawnSync(which('promtool', ['/usr/bin']), ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool check metrics on ${node.nodeId} failed:\n${r.stdout}${r.stderr}`);
      const types = familyTypes(text);
      for (const [name, type] of Object.entries(DESIGN_FAMILIES)) {
        assert.equal(types.get(name), type, `${node.nodeId}: family ${name} should be a ${type}`);
      }
      const samples = parseMetrics(text);
      assert.equal(samples.get('roomcast_redis_up'), 1);
      for (const reason of ['missing_token', 'bad_signature', 'expired']) {
        assert.ok(samples.has(`roomcast_auth_failures_total{reason="${reason}"}`), `auth reason ${reason} listed`);
      }
    }
    // The embedded (single-node) backplane exposes the same families, less roomcast_redis_*.
    const single = await startNode({ config: opsConfig() });
    try {
      const s1 = await connect(single.url, { auth: { token: token({ sub: 'solo' }) }, transports: ['websocket'] });
      await emitAck(s1, 'join', 'user:solo');
      const text = await scrape(single.port);
      const r = spawnSync(which('promtool', ['/usr/bin']), ['check', 'metrics'], { input: text, encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool check metrics on the embedded-backplane node failed:\n${r.stdout}${r.stderr}`);
      const types = familyTypes(text);
      for (const [name, type] of Object.entries(DESIGN_FAMILIES)) {
        if (!name.startsWith('roomcast_redis_')) assert.equal(types.get(name), type, `embedded node: ${name} should be a ${type}`);
      }
      s1.disconnect();
    } finally {
      await single.stop();
    }

    const a = parseMetrics(await scrape(nodeA.port));
    assert.ok(a.get('roomcast_auth_failures_total{reason="bad_signature"}') >= 1, 'the refused token is counted');
    assert.ok(a.get('roomcast_delivery_latency_seconds_count') >= 1, 'delivery latency observed');
    assert.ok(a.get('roomcast_backplane_receives_total') >= 1, 'node A received the publish made on B');
    assert.equal(a.get('roomcast_rooms{namespace="/"}') >= 1, true);
    closeClients();
  });

  test('Prometheus sees both targets up, and the connection gauges match the clients', async (t) => {
    closeClients();
    // WebSocket-only clients: one TCP connection, one Engine.IO session and one socket each.
    const clientsA = 3;
    const clientsB = 2;
    for (let i = 0; i < clientsA; i++) {
      await connect(nodeA.url, { auth: { token: token({ sub: `a${i}` }) }, transports: ['websocket'] });
    }
    for (let i = 0; i < clientsB; i++) {
      await connect(nodeB.url, { auth: { token: token({ sub: `b${i}` }) }, transports: ['websocket'] });
    }

    const targets = await waitUntil(async () => {
      const t = await prom.targets();
      return t.length === 2 && t.every((x) => x.health === 'up') ? t : null;
    }, { timeout: 15000, interval: 250, what: 'both targets up in /api/v1/targets' });
    assert.deepEqual(targets.map((t) => t.labels.instance).sort(),
      [`127.0.0.1:${nodeA.port}`, `127.0.0.1:${nodeB.port}`].sort());
    assert.ok(targets.every((t) => t.labels.job === 'roomcast' && t.lastError === ''));

    const byInstance = (vector) => Object.fromEntries(vector.map((s) => [s.metric.instance, Number(s.value[1])]));
    const want = { [`127.0.0.1:${nodeA.port}`]: clientsA, [`127.0.0.1:${nodeB.port}`]: clientsB };
    // roomcast_connections counts every open TCP connection, the scrape's own keep-alive
    // connection included: clients + 1 while Prometheus is the only HTTP client.
    const wantTcp = Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v + 1]));
    let last = {};
    await waitUntil(async () => {
      last = {
        connections: byInstance(await prom.query('roomcast_connections')),
        sessions: byInstance(await prom.query('roomcast_eio_sessions')),
        sockets: byInstance(await prom.query('sum by (instance) (roomcast_sockets)')),
      };
      const same = (a, b) => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
      return same(last.connections, wantTcp) && same(last.sessions, want) && same(last.sockets, want);
    }, { timeout: 15000, interval: 250, what: `gauges ${JSON.stringify({ want, wantTcp })}` }).catch((e) => {
      throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`);
    });
    t.diagnostic(`via /api/v1/query: ${JSON.stringify(last)}`);
    const total = await prom.query('sum(roomcast_sockets)');
    assert.equal(Number(total[0].value[1]), clientsA + clientsB);

    // One more client on A shows up within a few scrapes.
    const extra = client(nodeA.url, { auth: { token: token({ sub: 'late' }) }, transports: ['websocket'] });
    await connected(extra);
    await waitUntil(async () => {
      const v = byInstance(await prom.query('roomcast_eio_sessions'));
      return v[`127.0.0.1:${nodeA.port}`] === clientsA + 1;
    }, { timeout: 10000, interval: 250, what: 'the extra client counted on A' });
    closeClients();
  });

  test('alert rules load and evaluate; every metric they and the dashboard use exists', async () => {
    const groups = await waitUntil(async () => {
      const g = await prom.rules();
      return g.length > 0 && g.every((x) => x.rules.every((r) => r.lastEvaluation && !r.lastEvaluation.startsWith('0001'))) ? g : null;
    }, { timeout: 10000, interval: 250, what: 'rule groups evaluated' });
    const ruleNames = groups.flatMap((g) => g.rules.map((r) => r.name));
    for (const name of ['RoomcastNodeDown', 'RoomcastRedisDown', 'RoomcastSlowConsumerDrops', 'RoomcastAuthFailureSpike']) {
      assert.ok(ruleNames.includes(name), `rule ${name} loaded`);
    }
    for (const g of groups) {
      for (const r of g.rules) assert.equal(r.health, 'ok', `rule ${r.name}: ${r.lastError || ''}`);
    }

    const types = familyTypes(await scrape(nodeA.port));
    const rulesText = fs.readFileSync(ALERTS, 'utf8');
    for (const name of metricNamesIn(rulesText)) {
      assert.ok(resolvesTo(name, types), `alert rules use ${name}, which the node does not expose`);
    }
    const exprs = dashboardExprs();
    assert.ok(exprs.length >= 20, `the dashboard has queries (${exprs.length})`);
    for (const { panel, expr, variable } of exprs) {
      for (const name of metricNamesIn(expr)) {
        assert.ok(resolvesTo(name, types), `dashboard panel "${panel}" uses ${name}, which the node does not expose`);
      }
      if (variable) continue; // label_values(...) is Grafana's, not PromQL
      const q = expandGrafana(expr);
      await prom.query(q).catch((e) => assert.fail(`dashboard panel "${panel}": ${q}: ${e.message}`));
    }
  });

  test('a stopped node is seen down and RoomcastNodeDown goes pending for it', async () => {
    const instanceB = `127.0.0.1:${nodeB.port}`;
    await nodeB.stop();
    await waitUntil(async () => {
      const v = await prom.query(`up{instance="${instanceB}"}`);
      return v.length === 1 && v[0].value[1] === '0';
    }, { timeout: 10000, interval: 250, what: 'up == 0 for node B' });
    const alert = await waitUntil(async () => {
      const data = await prom.api('/api/v1/alerts');
      return data.alerts.find((a) => a.labels.alertname === 'RoomcastNodeDown' && a.labels.instance === instanceB);
    }, { timeout: 10000, interval: 250, what: 'RoomcastNodeDown pending for B' });
    assert.equal(alert.state, 'pending'); // `for: 1m` keeps it pending within this test's time
    assert.equal(alert.labels.severity, 'warning');
    const up = await prom.query(`up{instance="127.0.0.1:${nodeA.port}"}`);
    assert.equal(up[0].value[1], '1', 'node A still up');
  });
});

function sortKeys(o) {
  return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
}
