'use strict';
// Operations: a real nginx (Debian's package) in front of three roomcast nodes sharing one Redis,
// configured with docker/nginx/roomcast.conf itself (the compose demo's load balancer: sticky
// `hash $remote_addr consistent`, HTTP/1.1 and Upgrade/Connection headers). Clients with the
// default transports (polling first) connect from different loopback addresses, so the hash
// spreads them over the nodes; they upgrade to WebSocket, and events cross nodes. A round-robin
// upstream next to it shows why the affinity is needed.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const {
  startNode, client, connected, token, emitAck, waitFor, freePort, closeClients, sleep, API_KEY,
} = require('./lib/node');
const {
  ensureServers, startRedis, startNginx, waitUntil, httpGet, scrape, parseMetrics, fromAddress, opsConfig,
  nginxRepoConf,
} = require('./lib/ops');

const CLIENTS = 12;
const ROOM = 'lobby';

// A plain round-robin upstream to the same nodes, with the same proxy settings.
function roundRobinConfig(nodes, port) {
  return `
upstream roomcast_round_robin {
${nodes.map((n) => `    server 127.0.0.1:${n.port};`).join('\n')}
}
server {
    listen 127.0.0.1:${port};
    location /socket.io/ {
        proxy_pass http://roomcast_round_robin;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $roomcast_connection;
    }
}
`;
}

function post(port, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.setTimeout(3000, () => req.destroy(new Error('POST: no answer')));
    req.on('error', reject);
    req.end(payload);
  });
}

// redis-server, prometheus and nginx: installed when missing, before any test timeout runs
ensureServers();

describe('operations: nginx with sticky sessions in front of three nodes', { timeout: 60000 }, () => {
  let redis;
  let nodes = [];
  let lb;
  let lbPort;
  let rrPort;

  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 3; i++) {
      nodes.push(await startNode({ config: opsConfig(), args: ['--redis', redis.url] }));
    }
    lbPort = await freePort();
    rrPort = await freePort();
    lb = await startNginx({
      httpBlock: nginxRepoConf(nodes, lbPort) + roundRobinConfig(nodes, rrPort),
      ports: [lbPort, rrPort],
    });
  });

  after(async () => {
    closeClients();
    if (lb) await lb.stop();
    for (const n of nodes) await n.stop();
    if (redis) await redis.stop();
    nodes = [];
  });

  test('polling clients connect through nginx, upgrade to websocket and receive cross-node events', async (t) => {
    const url = `http://127.0.0.1:${lbPort}`;
    const sockets = [];
    for (let i = 0; i < CLIENTS; i++) {
      // socket.io-client defaults: transports ["polling", "websocket"], upgrade on
      const s = client(url, {
        auth: { token: token({ sub: `u${i}`, rooms: [ROOM] }) },
        ...fromAddress(`127.0.0.${20 + i}`),
      });
      s.firstTransport = null;
      s.io.on('open', () => { s.firstTransport = s.io.engine.transport.name; });
      sockets.push(s);
    }
    await Promise.all(sockets.map((s) => connected(s, 10000)));
    assert.ok(sockets.every((s) => s.firstTransport === 'polling'), 'every client opened with polling');
    await waitUntil(() => sockets.every((s) => s.io.engine.transport.name === 'websocket'),
      { timeout: 10000, interval: 50, what: 'every client upgraded to websocket' });

    // nginx spread them over the nodes; each node saw polling handshakes and upgrades.
    const perNode = [];
    let upgrades = 0;
    let pollingOpens = 0;
    for (const n of nodes) {
      const m = parseMetrics(await scrape(n.port));
      perNode.push(m.get('roomcast_sockets{namespace="/"}'));
      upgrades += m.get('roomcast_eio_upgrades_total');
      pollingOpens += m.get('roomcast_eio_sessions_opened_total{transport="polling"}');
    }
    assert.equal(perNode.reduce((a, b) => a + b, 0), CLIENTS, `sockets per node ${perNode}`);
    assert.ok(perNode.filter((c) => c > 0).length >= 2, `clients spread over the nodes: ${perNode}`);
    assert.equal(upgrades, CLIENTS);
    assert.equal(pollingOpens, CLIENTS);

    // Every Engine.IO request of a session went to one node, and none was refused.
    const log = lb.accessLog();
    const bySid = new Map();
    for (const line of log.split('\n')) {
      const m = /"(?:GET|POST) \/socket\.io\/\?[^" ]*sid=([^&" ]+)[^"]*" (\d+) up=(\S+)/.exec(line);
      if (!m) continue;
      assert.notEqual(m[2], '400', `nginx log shows a refused session request: ${line}`);
      if (!bySid.has(m[1])) bySid.set(m[1], new Set());
      bySid.get(m[1]).add(m[3]);
    }
    assert.ok(bySid.size >= CLIENTS, `sessions in the nginx log: ${bySid.size}`);
    for (const [sid, ups] of bySid) assert.equal(ups.size, 1, `session ${sid} reached ${[...ups]}`);
    t.diagnostic(`sockets per node ${perNode.join('/')}; ${upgrades} upgrades; ${bySid.size} sessions, each on one upstream`);

    // Join a room, then: a client's relay, an API publish through nginx and a backend's Redis
    // publish all reach every client, whichever node it is on.
    for (const s of sockets) assert.deepEqual(await emitAck(s, 'join', ROOM), [{ ok: true, room: ROOM }]);
    await sleep(200); // Redis subscriptions of the room on each node
    let got = Promise.all(sockets.map((s) => waitFor(s, 'said', 3000)));
    assert.deepEqual(await emitAck(sockets[0], 'say', { room: ROOM, text: 'across nodes' }), [{ ok: true, room: ROOM }]);
    assert.ok((await got).every((d) => d.from === 'u0' && d.text === 'across nodes'));

    got = Promise.all(sockets.map((s) => waitFor(s, 'news', 3000)));
    const res = await post(lbPort, '/api/publish', { room: ROOM, event: 'news', data: { via: 'nginx' } },
      { Authorization: `Bearer ${API_KEY}` });
    assert.equal(res.status, 202, res.body);
    assert.ok((await got).every((d) => d.via === 'nginx'));

    got = Promise.all(sockets.map((s) => waitFor(s, 'from_backend', 3000)));
    await redis.command('PUBLISH', `roomcast:room:/:${ROOM}`, JSON.stringify({ event: 'from_backend', data: 7 }));
    assert.deepEqual(await got, sockets.map(() => 7));
    closeClients();
  });

  test('per-node endpoints are not served through the load balancer', async () => {
    for (const p of ['/metrics', '/readyz', '/healthz']) {
      assert.equal((await httpGet(lbPort, p)).status, 404, p);
    }
    assert.equal((await httpGet(lbPort, '/lb-health')).status, 200);
  });

  test('without affinity (round robin) a polling session breaks: "Session ID unknown"', async () => {
    const hs = await httpGet(rrPort, '/socket.io/?EIO=4&transport=polling');
    assert.equal(hs.status, 200, hs.body);
    const sid = JSON.parse(hs.body.slice(1)).sid;
    const statuses = [];
    let unknown = null;
    for (let i = 0; i < 3 && !unknown; i++) {
      const r = await httpGet(rrPort, `/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, { timeout: 5000 });
      statuses.push(r.status);
      if (r.status === 400) unknown = r;
    }
    assert.ok(unknown, `round robin kept the session on one node? statuses ${statuses}`);
    assert.deepEqual(JSON.parse(unknown.body), { code: 1, message: 'Session ID unknown' });
  });
});
