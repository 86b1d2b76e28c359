'use strict';
// The Socket.IO Admin UI (issue 19, docs/admin-ui.md) against a roomcast cluster: two nodes on
// one real redis-server with the admin namespace on (a bcrypt hash made here with bcryptjs), and
// a third, read-only one. First at the protocol level with socket.io-client on /admin (what
// @socket.io/admin-ui's own page hears and sends), then the UI itself: its package files
// (node_modules/@socket.io/admin-ui/ui/dist) served by lib/browser.js's static server, loaded in
// Debian's headless Chromium, logged in to node A through its connection form. The page must
// show both nodes, a socket of node B with its rooms, and close that socket when its disconnect
// button is clicked. Screenshots: build/screenshots/admin_ui/.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const bcrypt = require('bcryptjs');
const {
  startNode, client, connected, connectError, token, waitFor, waitForArgs, expectNoEvent, sleep, waitUntil,
  metrics, checkAlive,
} = require('./lib/node');
const { startRedis } = require('./lib/redis');
const { launchBrowser, screenshots, serveStatic } = require('./lib/browser');

const T = { timeout: 90000 };
const USER = 'admin';
const PASSWORD = 'correct horse battery staple';
const UI_DIR = path.resolve(__dirname, 'node_modules', '@socket.io', 'admin-ui', 'ui', 'dist');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css',
  '.png': 'image/png', '.svg': 'image/svg+xml', '.map': 'application/json' };

// Every file of the UI's dist folder as a route of the static server ("/" is index.html).
function uiRoutes() {
  const routes = {};
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) { walk(p); continue; }
      const body = fs.readFileSync(p);
      const type = TYPES[path.extname(p)] || 'application/octet-stream';
      const serve = (req, res) => { res.writeHead(200, { 'Content-Type': type }); res.end(body); };
      routes['/' + path.relative(UI_DIR, p).split(path.sep).join('/')] = serve;
    }
  };
  walk(UI_DIR);
  routes['/'] = routes['/index.html'];
  return routes;
}

function admin(node, auth = { username: USER, password: PASSWORD }, opts = {}) {
  return client(node.url + '/admin', { auth, transports: ['websocket'], ...opts });
}

// Collects what an admin socket hears, by event name.
function recorder(socket) {
  const heard = {};
  socket.onAny((ev, ...args) => { (heard[ev] = heard[ev] || []).push(args); });
  return heard;
}

async function user(node, sub, room) {
  const s = client(node.url, { auth: { token: token({ sub, rooms: ['*'] }) }, transports: ['websocket'] });
  await connected(s);
  if (room) assert.deepEqual(await s.emitWithAck('join', { room }), { ok: true, room });
  return s;
}

describe('Admin UI: the /admin namespace of a two-node cluster', () => {
  let redis; let A; let B; let C; let site; let browser; let shots;

  before(async () => {
    redis = await startRedis();
    site = await serveStatic({ routes: uiRoutes() });
    const hash = bcrypt.hashSync(PASSWORD, 6);
    const env = {
      ROOMCAST_REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      ROOMCAST_ADMIN_USERNAME: USER,
      ROOMCAST_ADMIN_PASSWORD_HASH: hash,
      ROOMCAST_CORS_ORIGINS: site.origin,
    };
    A = await startNode({ env, nodeId: 'admin-node-a' });
    B = await startNode({ env, nodeId: 'admin-node-b' });
    C = await startNode({ env: { ...env, ROOMCAST_ADMIN_READONLY: 'true' }, nodeId: 'admin-node-c-readonly' });
    browser = await launchBrowser();
    shots = screenshots('admin_ui');
  });

  after(async () => {
    if (browser) await browser.close();
    for (const n of [A, B, C]) if (n) await n.stop();
    if (site) await site.close();
    if (redis) await redis.stop();
  });

  it('refuses a wrong password or a missing one with "invalid credentials", counted', T, async () => {
    const before = await metrics(A);
    for (const auth of [{ username: USER, password: 'wrong' }, { username: 'root', password: PASSWORD }, {}]) {
      const err = await connectError(A.url + '/admin', { auth, transports: ['websocket'] });
      assert.equal(err.message, 'invalid credentials', JSON.stringify(auth));
    }
    // A JWT opens nothing here: the admin namespace reads only {username, password}.
    const err = await connectError(A.url + '/admin', { auth: { token: token({ sub: 'alice' }) }, transports: ['websocket'] });
    assert.equal(err.message, 'invalid credentials');
    const after = await metrics(A);
    const key = 'roomcast_admin_logins_total{result="invalid"}';
    assert.equal(after.get(key) - (before.get(key) || 0), 4);
    await checkAlive(A);
  });

  it('shows both nodes, sockets of the other node with their rooms, and disconnects one there', T, async () => {
    const alice = await user(B, 'alice', 'lobby');
    const ad = admin(A);
    const heard = recorder(ad);
    await connected(ad);
    await waitUntil(() => heard.config && heard.all_sockets, { what: 'config and all_sockets' });
    assert.ok(heard.config[0][0].supportedFeatures.includes('DISCONNECT'));
    // A session id, as instrument() gives: it opens the namespace on this node without the password.
    assert.match(heard.session[0][0], /^[A-Za-z0-9_-]{32}$/);
    await connected(admin(A, { sessionId: heard.session[0][0] }));
    const err = await connectError(A.url + '/admin', { auth: { sessionId: heard.session[0][0].replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) }, transports: ['websocket'] });
    assert.equal(err.message, 'invalid credentials');
    // Node B's sockets are in all_sockets too (B answered the fetch A published).
    const seen = heard.all_sockets[0][0].find((s) => s.id === alice.id);
    assert.ok(seen, `alice (on B) in all_sockets: ${JSON.stringify(heard.all_sockets[0][0].map((s) => s.id))}`);
    assert.equal(seen.nsp, '/');
    assert.deepEqual(seen.data, { user: 'alice' });
    assert.ok(seen.rooms.includes('lobby') && seen.rooms.includes(alice.id), JSON.stringify(seen.rooms));
    await waitUntil(() => {
      const ids = new Set((heard.server_stats || []).map(([s]) => s.serverId));
      return ids.has('admin-node-a') && ids.has('admin-node-b');
    }, { timeout: 10000, what: 'server_stats of both nodes' });
    const statsB = heard.server_stats.map(([s]) => s).filter((s) => s.serverId === 'admin-node-b').pop();
    for (const k of ['hostname', 'pid', 'uptime', 'clientsCount', 'pollingClientsCount', 'aggregatedEvents', 'namespaces'])
      assert.ok(k in statsB, `server_stats.${k}`);
    // A room joined on B reaches the admin socket on A as it happens.
    assert.deepEqual(await alice.emitWithAck('join', { room: 'kitchen' }), { ok: true, room: 'kitchen' });
    await waitUntil(() => (heard.room_joined || []).some((a) => a[1] === 'kitchen' && a[2] === alice.id),
      { what: 'room_joined kitchen' });
    const ev = (heard.event_received || []).find((a) => a[1] === alice.id);
    assert.deepEqual(ev && ev.slice(0, 3), ['/', alice.id, ['join', { room: 'kitchen' }]], 'event_received');
    // A client of B that starts with polling and upgrades: socket_connected says polling, then
    // socket_updated says websocket.
    const frank = client(B.url, { auth: { token: token({ sub: 'frank' }) } });
    await connected(frank);
    await waitUntil(() => (heard.socket_updated || []).some(([u]) => u.id === frank.id), { what: 'socket_updated' });
    assert.deepEqual(heard.socket_updated.find(([u]) => u.id === frank.id)[0], { id: frank.id, nsp: '/', transport: 'websocket' });
    assert.equal(heard.socket_connected.find(([s]) => s.id === frank.id)[0].transport, 'polling');
    frank.disconnect();
    // join / leave from the admin, applied on B.
    ad.emit('join', '/', 'garden', alice.id);
    await waitUntil(() => (heard.room_joined || []).some((a) => a[1] === 'garden' && a[2] === alice.id),
      { what: 'room_joined garden' });
    ad.emit('leave', '/', 'garden', alice.id);
    await waitUntil(() => (heard.room_left || []).some((a) => a[1] === 'garden' && a[2] === alice.id),
      { what: 'room_left garden' });
    // _disconnect of a socket of B, sent to A.
    const aliceId = alice.id; // socket.io-client forgets it on disconnect
    const gone = waitFor(alice, 'disconnect', 5000);
    assert.deepEqual(await ad.emitWithAck('_disconnect', '/', false, aliceId), { ok: true });
    assert.equal(await gone, 'io server disconnect');
    await waitUntil(() => (heard.socket_disconnected || []).some((a) => a[1] === aliceId && a[2] === 'server namespace disconnect'),
      { what: 'socket_disconnected' });
    const m = await metrics(A);
    assert.equal(m.get('roomcast_admin_operations_total{op="disconnect"}'), 1);
    // An admin socket closing its own connection from inside its own event.
    const self = waitFor(ad, 'disconnect', 5000);
    ad.emit('_disconnect', '/admin', true, ad.id);
    assert.equal(await self, 'io server disconnect');
    for (const n of [A, B]) await checkAlive(n);
  });

  it('read-only: the features leave out the operations, and an operation changes nothing', T, async () => {
    const bob = await user(B, 'bob', 'lobby');
    const ad = admin(C);
    const heard = recorder(ad);
    await connected(ad);
    await waitUntil(() => heard.config, { what: 'config' });
    assert.deepEqual(heard.config[0][0].supportedFeatures, ['AGGREGATED_EVENTS', 'ALL_EVENTS']);
    assert.deepEqual(await ad.emitWithAck('_disconnect', '/', false, bob.id), { ok: false, error: 'readonly' });
    assert.deepEqual(await ad.emitWithAck('join', '/', 'vip', bob.id), { ok: false, error: 'readonly' });
    await expectNoEvent(bob, 'disconnect', 800);
    assert.ok(bob.connected);
    const m = await metrics(C);
    assert.equal(m.get('roomcast_admin_operations_refused_total{reason="readonly"}'), 2);
    ad.disconnect();
    bob.disconnect();
  });

  it('logins past the node\'s budget are refused without running bcrypt; bystanders keep going', T, async () => {
    const erin = await user(B, 'erin', 'lobby');
    const answers = [];
    for (let i = 0; i < 8; i++) {
      const err = await connectError(B.url + '/admin', { auth: { username: USER, password: `guess-${i}` }, transports: ['websocket'] });
      answers.push(err.message);
    }
    assert.ok(answers.includes('too many attempts'), answers.join(', '));
    assert.ok(answers.every((m) => m === 'invalid credentials' || m === 'too many attempts'), answers.join(', '));
    const m = await metrics(B);
    assert.ok(m.get('roomcast_admin_logins_total{result="throttled"}') >= 1);
    assert.ok(erin.connected);
    assert.deepEqual(await erin.emitWithAck('join', { room: 'after' }), { ok: true, room: 'after' });
    erin.disconnect();
  });

  // ---- the UI's own page in headless Chromium ----------------------------------------------------

  async function openUi() {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    // The page asks two CDNs for fonts and icons: nothing leaves the machine in a test.
    await page.route((url) => url.hostname !== '127.0.0.1', (route) => route.abort());
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(site.url('/'));
    return { context, page, errors };
  }

  async function login(page, node, password = PASSWORD) {
    await page.getByLabel('Server URL').fill(node.url);
    await page.getByLabel('Username').fill(USER);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Connect' }).click();
  }

  const go = (page, hash) => page.evaluate((h) => { window.location.hash = h; }, hash);
  // The UI slides views in: let the transition end before a screenshot.
  const shot = async (page, step) => { await sleep(600); await shots.save(page, step); };

  it('the UI refuses a wrong password through its form', T, async () => {
    const { context, page } = await openUi();
    await login(page, A, 'not the password');
    await page.getByText(/invalid credentials/i).first().waitFor({ timeout: 15000 });
    await shots.save(page, '01-wrong-password');
    await context.close();
  });

  it('the UI logged in to node A shows both nodes, a socket of node B with its rooms, and disconnects it', T, async () => {
    const carol = await user(B, 'carol', 'lobby');
    const { context, page, errors } = await openUi();
    await login(page, A);
    await page.getByLabel('Server URL').waitFor({ state: 'hidden', timeout: 15000 });
    // Servers: both nodes, from their server_stats (A's own, B's through Redis).
    await go(page, '#/servers/');
    await page.getByText('admin-node-a').first().waitFor({ timeout: 15000 });
    await page.getByText('admin-node-b').first().waitFor({ timeout: 15000 });
    await shot(page, '02-servers');
    // Sockets of "/": carol, who is connected to node B.
    await go(page, '#/sockets/');
    await page.getByText(carol.id).first().waitFor({ timeout: 15000 });
    await shot(page, '03-sockets');
    // Her details: her rooms.
    await go(page, `#/n/${encodeURIComponent('/')}/sockets/${carol.id}`);
    await page.getByText('lobby').first().waitFor({ timeout: 15000 });
    await page.getByText('user:carol').first().waitFor({ timeout: 15000 });
    await shot(page, '04-socket-details');
    // Rooms: lobby with its member.
    await go(page, '#/rooms/');
    await page.getByText('lobby').first().waitFor({ timeout: 15000 });
    await shot(page, '05-rooms');
    // Events of node B as they happen: carol joins a room, the Events view lists it.
    assert.deepEqual(await carol.emitWithAck('join', { room: 'kitchen' }), { ok: true, room: 'kitchen' });
    await go(page, '#/events/');
    await page.getByText('Room joined').first().waitFor({ timeout: 15000 });
    await page.getByText('Event received').first().waitFor({ timeout: 15000 });
    await shot(page, '05b-events');
    await go(page, '#/');
    await shot(page, '05c-dashboard');
    // Disconnect from the UI: the button of the socket row in her details.
    await go(page, `#/n/${encodeURIComponent('/')}/sockets/${carol.id}`);
    const button = page.locator('button.ml-3:has(i.mdi-logout)');
    await button.waitFor({ timeout: 15000 });
    const gone = waitFor(carol, 'disconnect', 10000);
    await button.click();
    assert.equal(await gone, 'io server disconnect');
    await sleep(300);
    await shot(page, '06-after-disconnect');
    // A reload logs in again with the session id the page kept (no form).
    await page.reload();
    await go(page, '#/servers/');
    await page.getByText('admin-node-b').first().waitFor({ timeout: 15000 });
    assert.equal(await page.getByLabel('Server URL').isVisible(), false, 'no login form after a reload');
    await shot(page, '06b-after-reload');
    assert.deepEqual(errors, [], 'no error in the page');
    await context.close();
    for (const n of [A, B]) await checkAlive(n);
  });

  it('the UI on the read-only node shows the socket but offers no disconnect', T, async () => {
    const dave = await user(B, 'dave', 'lobby');
    const { context, page } = await openUi();
    await login(page, C);
    await page.getByLabel('Server URL').waitFor({ state: 'hidden', timeout: 15000 });
    // The socket page reads the UI's store once: open it after all_sockets has filled it.
    await go(page, '#/sockets/');
    await page.getByText(dave.id).first().waitFor({ timeout: 15000 });
    await go(page, `#/n/${encodeURIComponent('/')}/sockets/${dave.id}`);
    await page.getByText('user:dave').first().waitFor({ timeout: 15000 });
    assert.equal(await page.locator('button:has(i.mdi-logout)').count(), 0, 'no disconnect button');
    await shot(page, '07-readonly-socket');
    await expectNoEvent(dave, 'disconnect', 300);
    await context.close();
    dave.disconnect();
  });
});
