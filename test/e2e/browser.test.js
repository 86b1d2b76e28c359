'use strict';
// Real browsers: Debian's headless Chromium (lib/browser.js) loads a page (pages/client.html) from
// its own origin, which loads the official socket.io-client bundle and talks to two roomcast nodes
// sharing one Redis behind nginx on loopback (docker/nginx/roomcast.conf itself, as in
// ops_nginx.test.js). What only a browser shows: CORS on the long-polling requests (the nodes list
// the page's origin in ROOMCAST_CORS_ORIGINS), cookies sent with `withCredentials`, what a page on
// an origin not listed can learn about its refusal, that a WebSocket carries no headers of the
// page's choosing (the token goes in `auth`), Blob and typed arrays, and the client's own
// reconnection when the node under it dies. Screenshots of each step go to build/screenshots/browser/.
//
// One browser, one page per client (each in its own context: cookies and sessions apart). Every
// page comes from 127.0.0.1, so nginx's `hash $remote_addr` sends them all to one node ("home");
// pages that must be on the other node ("away") connect to it directly.

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startNode, token, freePort, sleep, publishOk, metrics, httpRequest, API_KEY } = require('./lib/node');
const { ensureServers, startRedis, startNginx, nginxRepoConf, opsConfig, waitUntil, httpGet } = require('./lib/ops');
const { launchBrowser, screenshots, serveStatic } = require('./lib/browser');

const PAGE = fs.readFileSync(path.join(__dirname, 'pages', 'client.html'), 'utf8');
const ROOM = 'project_web';
const COOKIE = 'page_session=p4ge-c00kie';

// opsConfig's join/leave/say, and a binary relay: every argument after the room, attachments
// included, to the other members.
function nodeConfig(extra = {}) {
  const cfg = opsConfig();
  cfg.namespaces['/'].events['bin-relay'] = {
    do: [{ relay: { room: '{args.0}', event: 'bin-relayed', includeSender: false, requireMember: true } },
      { ack: { ok: true } }],
    onError: [{ ack: { ok: false, error: '{error}' } }],
  };
  return { ...cfg, ...extra };
}

const bytes = (n, seed) => Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

ensureServers();

// One browser for the file; each test opens its pages in contexts of their own.
let browser;
let shots;
before(async () => {
  browser = await launchBrowser();
  shots = screenshots('browser');
});
after(async () => { if (browser) await browser.close(); });

describe('browser: headless Chromium with the official bundle, two nodes behind nginx', { timeout: 240000 }, () => {
  let redis;
  let nodes = [];
  let noCreds; // a third node, alone, with cors.credentials false
  let lb;
  let lbUrl;
  let site; // the pages' origin (listed); site.url() on host 127.0.0.1
  let other; // the same static server under another origin (http://localhost:port), not listed
  const pages = [];
  let home; // the node nginx sends 127.0.0.1 to (every page's address)
  let away; // the other

  // A page in a fresh context, loaded from `origin`, with the page's errors kept for the end.
  async function openPage(url = site.url('/')) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 560 } });
    const page = await context.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    await page.goto(url);
    pages.push(page);
    return page;
  }
  const open = (page, name, url, opts) => page.evaluate(([n, u, o]) => openSocket(n, u, o), [name, url, opts]);
  const ack = (page, name, event, ...args) => page.evaluate(([n, e, a]) => emitAck(n, e, ...a), [name, event, args]);
  const next = (page, name, event, ms = 10000) => page.evaluate(([n, e, m]) => nextEvent(n, e, m), [name, event, ms]);
  const state = (page, name) => page.evaluate((n) => state(n), name);
  const auth = (sub) => ({ token: token({ sub, rooms: ['project_*'] }) });

  // Sockets per node, to tell which node a page landed on.
  const socketsOn = async (node) => (await metrics(node)).get('roomcast_sockets{namespace="/"}') || 0;

  before(async () => {
    site = await serveStatic({
      routes: {
        '/': PAGE,
        // The page's origin sets a cookie of its own, as a site's login would.
        '/with-cookie': (req, res) => {
          res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Set-Cookie': `${COOKIE}; Path=/; SameSite=Lax` });
          res.end(PAGE);
        },
      },
    });
    other = { url: (p) => `http://localhost:${site.port}${p}`, origin: `http://localhost:${site.port}` };
    redis = await startRedis();
    const env = { ROOMCAST_CORS_ORIGINS: `http://allowed.example, ${site.origin}` };
    for (let i = 0; i < 2; i++) {
      nodes.push(await startNode({ config: nodeConfig(), env, args: ['--redis', redis.url] }));
    }
    noCreds = await startNode({ config: nodeConfig({ cors: { credentials: false } }), env });
    const lbPort = await freePort();
    lb = await startNginx({ httpBlock: nginxRepoConf(nodes, lbPort), ports: [lbPort] });
    lbUrl = `http://127.0.0.1:${lbPort}`;
    // Which node nginx hashes 127.0.0.1 to: one handshake, then the access log's up=.
    assert.equal((await httpGet(lbPort, '/socket.io/?EIO=4&transport=polling')).status, 200);
    // (nginx writes the line once the response is out: wait for it)
    const up = await waitUntil(() => /up=127\.0\.0\.1:(\d+)/.exec(lb.accessLog()), { what: 'the handshake in the nginx access log' });
    home = nodes.find((n) => n.port === Number(up[1]));
    away = nodes.find((n) => n !== home);
  });

  after(async () => {
    for (const p of pages) assert.deepEqual(p.errors, [], 'errors on a page');
    if (lb) await lb.stop();
    for (const n of [...nodes, noCreds]) if (n && !n.exit) await n.stop();
    if (redis) await redis.stop();
    if (site) await site.close();
  });

  test('polling, then the upgrade to WebSocket, through nginx; events from the API arrive', async () => {
    const page = await openPage();
    const r = await open(page, 'a', lbUrl, { auth: auth('alice') });
    assert.equal(r.ok, true);
    await waitUntil(async () => (await state(page, 'a')).transport === 'websocket', { what: 'upgrade to websocket' });
    assert.deepEqual((await state(page, 'a')).transports, ['polling', 'websocket']);
    assert.deepEqual(await Promise.all([home, away].map(socketsOn)), [1, 0]);

    assert.deepEqual(await ack(page, 'a', 'join', { room: ROOM }), [{ ok: true, room: ROOM }]);
    const got = next(page, 'a', 'task_created');
    await publishOk(away, { room: ROOM, event: 'task_created', data: { title: 'from the API of the other node' } });
    assert.deepEqual(await got, [{ title: 'from the API of the other node' }]);
    await shots.save(page, '01-polling-upgrade');
    // The development page is off unless asked for (see the last test).
    assert.equal((await httpRequest(home, 'GET', '/dev/')).status, 404);
  });

  test('websocket only; the token goes in `auth`, since a browser WebSocket carries no headers of the page', async () => {
    const page = await openPage();
    // Authorization in extraHeaders: socket.io-client can only put it on XHR requests; over a
    // browser WebSocket it is lost, and the node sees no token.
    const noHeader = await open(page, 'hdr', lbUrl, {
      transports: ['websocket'], reconnection: false,
      extraHeaders: { Authorization: `Bearer ${auth('bob').token}` },
    });
    assert.equal(noHeader.ok, false);
    assert.equal(noHeader.error.message, 'unauthorized');
    assert.deepEqual(noHeader.error.data, { code: 'missing_token' });

    const r = await open(page, 'ws', lbUrl, { transports: ['websocket'], auth: auth('bob') });
    assert.deepEqual(r, { ok: true, transport: 'websocket' });
    assert.deepEqual((await state(page, 'ws')).transports, ['websocket']);
    assert.deepEqual(await ack(page, 'ws', 'join', { room: ROOM }), [{ ok: true, room: ROOM }]);
    const said = next(page, 'ws', 'said');
    assert.deepEqual(await ack(page, 'ws', 'say', { room: ROOM, text: 'hello from a browser' }), [{ ok: true, room: ROOM }]);
    assert.deepEqual(await said, [{ from: 'bob', text: 'hello from a browser' }]);
    await shots.save(page, '02-websocket-only');
  });

  test('CORS: the exact origin, with credentials (a cookie of the page\'s origin) and without', async () => {
    const page = await openPage(site.url('/with-cookie'));
    const seen = [];
    page.on('response', async (res) => {
      if (!res.url().includes('/socket.io/')) return;
      const req = res.request();
      seen.push({ url: res.url(), status: res.status(), headers: res.headers(), cookie: (await req.allHeaders()).cookie || null });
    });
    const withCreds = await open(page, 'creds', lbUrl, { auth: auth('carol'), withCredentials: true, transports: ['polling'] });
    assert.deepEqual(withCreds, { ok: true, transport: 'polling' });
    const plain = await open(page, 'plain', lbUrl, { auth: auth('carol'), transports: ['polling'] });
    assert.deepEqual(plain, { ok: true, transport: 'polling' });
    // Directly to the node with cors.credentials false: fine without credentials; with them the
    // browser refuses the answer (no Access-Control-Allow-Credentials).
    const noCredsUrl = noCreds.url;
    assert.deepEqual(await open(page, 'nc-plain', noCredsUrl, { auth: auth('carol'), transports: ['polling'] }),
      { ok: true, transport: 'polling' });
    const refused = await open(page, 'nc-creds', noCredsUrl, {
      auth: auth('carol'), withCredentials: true, transports: ['polling'], reconnection: false,
    });
    assert.equal(refused.ok, false);
    assert.equal(refused.error.message, 'xhr poll error');
    await sleep(200);

    const lbSeen = seen.filter((s) => s.url.startsWith(lbUrl));
    const credSeen = lbSeen.filter((s) => s.cookie);
    const bareSeen = lbSeen.filter((s) => !s.cookie);
    assert.ok(credSeen.length >= 2 && bareSeen.length >= 2, `requests with and without the cookie: ${credSeen.length}/${bareSeen.length}`);
    for (const s of credSeen) assert.equal(s.cookie, COOKIE);
    for (const s of lbSeen) {
      assert.equal(s.headers['access-control-allow-origin'], site.origin, s.url); // never "*"
      assert.equal(s.headers['access-control-allow-credentials'], 'true', s.url);
      assert.match(s.headers.vary || '', /origin/i);
    }
    const ncSeen = seen.filter((s) => s.url.startsWith(noCredsUrl));
    assert.ok(ncSeen.length >= 2);
    for (const s of ncSeen) {
      assert.equal(s.headers['access-control-allow-origin'], site.origin, s.url);
      assert.equal(s.headers['access-control-allow-credentials'], undefined, s.url);
    }
    await shots.save(page, '03-cors-credentials');
  });

  test('an origin not listed is refused, and the page can read why', async () => {
    // The same static server under another host name: another origin, not in ROOMCAST_CORS_ORIGINS.
    const page = await openPage(other.url('/'));
    const before = await Promise.all(nodes.map((n) => metrics(n)));
    const polling = await open(page, 'polling', lbUrl, { auth: auth('dave'), reconnection: false });
    const creds = await open(page, 'credentials', lbUrl, { auth: auth('dave'), withCredentials: true, reconnection: false });
    const ws = await open(page, 'websocket', lbUrl, { auth: auth('dave'), transports: ['websocket'], reconnection: false });
    await shots.save(page, '04-origin-refused');

    // Over polling the page reads the node's answer: 403 and the reason (the refusal alone carries
    // the page's origin in Access-Control-Allow-Origin; no session was made).
    for (const r of [polling, creds]) {
      assert.equal(r.ok, false);
      assert.equal(r.error.message, 'xhr poll error');
      assert.equal(r.error.description, 403);
      assert.deepEqual(JSON.parse(r.error.body),
        { code: 4, message: 'Origin not allowed: add it to cors.origins (ROOMCAST_CORS_ORIGINS)' });
    }
    // A browser tells a page nothing about a failed WebSocket handshake: the node logs and counts it.
    assert.equal(ws.ok, false);
    assert.equal(ws.error.message, 'websocket error');
    const after = await Promise.all(nodes.map((n) => metrics(n)));
    const delta = (t) => after.reduce((sum, m, i) =>
      sum + m.get(`roomcast_eio_origin_refused_total{transport="${t}"}`) - before[i].get(`roomcast_eio_origin_refused_total{transport="${t}"}`), 0);
    assert.equal(delta('polling'), 2);
    assert.equal(delta('websocket'), 1);
    const opened = (m) => m.get('roomcast_eio_sessions_opened_total{transport="polling"}') +
      m.get('roomcast_eio_sessions_opened_total{transport="websocket"}');
    assert.equal(after.reduce((sum, m, i) => sum + opened(m) - opened(before[i]), 0), 0, 'no session was made');
    assert.match(home.stderr(), /origin_refused.*localhost/);
  });

  test('binary both ways: ArrayBuffer, Blob and typed arrays relayed by a rule to the other node, and from a backend', async () => {
    const BIN_ROOM = 'project_bin';
    const page = await openPage();
    // sender through nginx (home), receivers directly on the other node: websocket and polling
    assert.equal((await open(page, 'sender', lbUrl, { auth: auth('erin') })).ok, true);
    assert.equal((await open(page, 'ws', away.url, { auth: auth('frank'), transports: ['websocket'] })).ok, true);
    assert.equal((await open(page, 'polling', away.url, { auth: auth('grace'), transports: ['polling'] })).ok, true);
    await waitUntil(async () => (await state(page, 'sender')).transport === 'websocket', { what: 'upgrade' });
    for (const n of ['sender', 'ws', 'polling']) {
      assert.deepEqual(await ack(page, n, 'join', { room: BIN_ROOM }), [{ ok: true, room: BIN_ROOM }]);
    }
    await sleep(200); // the other node's Redis subscription to the room

    const A = bytes(256, 0);
    const B = bytes(100, 3);
    const C = bytes(5, 9);
    const relayed = ['ws', 'polling'].map((n) => next(page, n, 'bin-relayed'));
    const reply = await page.evaluate(([room, a, b, c]) => {
      const backing = new Uint8Array(16).fill(0xee);
      backing.set(c, 3);
      return emitAck('sender', 'bin-relay', room,
        new Uint8Array(a).buffer,                       // ArrayBuffer
        new Blob([new Uint8Array(b)]),                  // Blob
        new Uint8Array(backing.buffer, 3, c.length),    // a view into a larger buffer
        { f32: new Float32Array([1.5, -2]), deep: [new Uint16Array([1, 65535])], text: 'with text' });
    }, [BIN_ROOM, A, B, C]);
    assert.deepEqual(reply, [{ ok: true }]);
    const f32 = [...Buffer.from(new Float32Array([1.5, -2]).buffer)];
    const u16 = [...Buffer.from(new Uint16Array([1, 65535]).buffer)];
    const ab = (b) => ({ bin: 'ArrayBuffer', bytes: b }); // every binary part arrives as an ArrayBuffer
    for (const got of await Promise.all(relayed)) {
      assert.deepEqual(got, [BIN_ROOM, ab(A), ab(B), ab(C), { f32: ab(f32), deep: [ab(u16)], text: 'with text' }]);
    }

    // A backend's Redis publish with attachments (docs/redis.md) reaches every member as ArrayBuffers.
    const D = bytes(300, 5);
    const fromBackend = ['sender', 'ws', 'polling'].map((n) => next(page, n, 'file_ready'));
    await redis.command('PUBLISH', `roomcast:room:/:${BIN_ROOM}`, JSON.stringify({
      event: 'file_ready',
      args: [{ name: 'report.bin', body: { _placeholder: true, num: 0 } }, { _placeholder: true, num: 1 }],
      attachments: [Buffer.from(D).toString('base64'), Buffer.from([0, 255]).toString('base64')],
    }));
    for (const got of await Promise.all(fromBackend)) {
      assert.deepEqual(got, [{ name: 'report.bin', body: ab(D) }, ab([0, 255])]);
    }
    await shots.save(page, '05-binary');
  });

  test('the node under the page is killed (SIGKILL): the client reconnects through nginx to the other', async () => {
    // The earlier pages go (their sockets would move to the other node too): counts tell where this one is.
    for (const p of pages) await p.context().close();
    await waitUntil(async () => (await socketsOn(home)) + (await socketsOn(away)) === 0, { what: 'earlier sockets gone' });
    const page = await openPage();
    const r = await open(page, 'k', lbUrl, { auth: auth('heidi'), reconnectionDelay: 100, reconnectionDelayMax: 500 });
    assert.equal(r.ok, true);
    assert.deepEqual([await socketsOn(home), await socketsOn(away)], [1, 0]);
    assert.deepEqual(await ack(page, 'k', 'join', { room: ROOM }), [{ ok: true, room: ROOM }]);
    const firstId = (await state(page, 'k')).id;

    home.child.kill('SIGKILL');
    await home.exited;
    await waitUntil(async () => {
      const st = await state(page, 'k');
      return st.connected && st.id !== firstId && st.reasons.length > 0;
    }, { timeout: 20000, what: 'the page reconnected' });
    const st = await state(page, 'k');
    assert.match(st.reasons[0], /^transport (close|error)$/);
    assert.equal(await socketsOn(away), 1, 'the page is on the other node now');
    // Rooms are the connection's: the page joins again (as an app does on "connect"), and events
    // reach it there.
    assert.deepEqual(await ack(page, 'k', 'join', { room: ROOM }), [{ ok: true, room: ROOM }]);
    const got = next(page, 'k', 'task_created');
    await publishOk(away, { room: ROOM, event: 'task_created', data: { title: 'after the failover' } });
    assert.deepEqual(await got, [{ title: 'after the failover' }]);
    await shots.save(page, '06-node-killed');
  });
});

describe('the development page (make run): connect, join, receive', { timeout: 120000 }, () => {
  let node;
  before(async () => {
    node = await startNode({
      env: {
        ROOMCAST_DEV_PAGE: '1',
        ROOMCAST_DEV_CLIENT_BUNDLE: path.join(__dirname, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js'),
      },
    });
  });
  after(async () => { if (node) await node.stop(); });

  test('the page from deploy/dev-run.sh\'s URL: a newcomer connects with the printed token, joins, sees events', async () => {
    const tok = token({ sub: 'alice', rooms: ['project_*'] });
    const context = await browser.newContext({ viewport: { width: 1180, height: 640 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // as `make run` prints it: the token, the API key and the room in the fragment
    await page.goto(`${node.url}/dev/#token=${tok}&key=${API_KEY}&room=project_p1`);
    const log = page.locator('#log');
    await page.locator('#log li.info').first().waitFor();
    await page.click('#connect');
    await page.locator('#status', { hasText: /^connected as alice$/ }).waitFor();
    await page.locator('#transport', { hasText: 'websocket' }).waitFor(); // upgraded from polling
    await page.click('#join');
    await log.locator('li.ack', { hasText: '{"ok":true,"room":"project_p1"}' }).waitFor();

    // from the page's own form (POST /api/publish with the key from the URL)...
    await page.fill('#data', '{"title":"from the form"}');
    await page.click('#publish');
    await log.locator('li.publish', { hasText: '202 {"ok":true}' }).waitFor();
    await log.locator('li.event', { hasText: 'task_created {"title":"from the form"}' }).waitFor();
    // ... and from a backend, as the printed curl command does
    await publishOk(node, { room: 'project_p1', event: 'task_created', data: { title: 'Live Task' } });
    await log.locator('li.event', { hasText: 'task_created {"title":"Live Task"}' }).waitFor();
    assert.match(await page.locator('#curl').textContent(), /curl -X POST http:\/\/127\.0\.0\.1:\d+\/api\/publish/);
    await shots.save(page, '07-dev-page');

    // A wrong token says so on the page.
    await page.click('#connect'); // disconnect
    await page.fill('#token', 'not-a-token');
    await page.click('#connect');
    await log.locator('li.error', { hasText: 'unauthorized {"code":"malformed_token"} (check the token)' }).waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('the bundle it serves is socket.io-client\'s; other methods and paths are refused', async () => {
    const js = await httpRequest(node, 'GET', '/dev/socket.io.min.js');
    assert.equal(js.status, 200);
    assert.match(js.headers['content-type'], /^text\/javascript/);
    assert.equal(js.body, fs.readFileSync(path.join(__dirname, 'node_modules', 'socket.io-client', 'dist', 'socket.io.min.js'), 'utf8'));
    assert.equal((await httpRequest(node, 'POST', '/dev/', { body: 'x' })).status, 405);
    assert.equal((await httpRequest(node, 'GET', '/dev/other.js')).status, 404);
    // without dev.clientBundle (a checkout where `make test` never ran) the page gets it from a CDN
    const bare = await startNode({ env: { ROOMCAST_DEV_PAGE: '1' } });
    try {
      const r = await httpRequest(bare, 'GET', '/dev/socket.io.min.js');
      assert.equal(r.status, 302);
      assert.equal(r.headers.location, 'https://cdn.jsdelivr.net/npm/socket.io-client@4/dist/socket.io.min.js');
      assert.equal((await httpRequest(bare, 'GET', '/dev/')).status, 200);
    } finally {
      await bare.stop();
    }
  });

  test('no cors.origins (as make run starts): a page on another origin fails on polling, and the node\'s log says what to set', async () => {
    const site = await serveStatic({ routes: { '/': PAGE } });
    const context = await browser.newContext({ viewport: { width: 1000, height: 400 } });
    try {
      const page = await context.newPage();
      await page.goto(site.url('/'));
      const auth = { token: token({ sub: 'newcomer' }) };
      const polling = await page.evaluate(([u, a]) => openSocket('polling', u, { auth: a, reconnection: false }), [node.url, auth]);
      assert.equal(polling.ok, false);
      assert.equal(polling.error.message, 'xhr poll error'); // the browser hid the node's answer
      const ws = await page.evaluate(([u, a]) => openSocket('websocket', u, { auth: a, transports: ['websocket'] }), [node.url, auth]);
      assert.deepEqual(ws, { ok: true, transport: 'websocket' }); // no CORS for WebSockets
      await shots.save(page, '08-no-cors-origins');
      assert.match(node.stderr(), new RegExp(`"cors_origins_unset".*"origin":"${site.origin}".*ROOMCAST_CORS_ORIGINS`));
    } finally {
      await context.close();
      await site.close();
    }
  });
});
