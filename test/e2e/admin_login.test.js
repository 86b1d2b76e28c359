'use strict';
// The Admin UI's password login under a brute force (docs/admin-ui.md "Authentication",
// docs/security.md "Admin login lockout"): an attacker who keeps trying wrong passwords from one
// address (and from a whole IPv6 /64, which counts as one) must not keep the real admin, at
// another address, out; the attacker is throttled, and a bystander on "/" keeps its pings.
//
// Client addresses come from X-Forwarded-For: the node trusts loopback as its proxy
// (http.trustedProxies), so each client below names its own address.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const bcrypt = require('bcryptjs');
const { startNode, client, connected, token, sleep, metrics } = require('./lib/node');

const T = { timeout: 120000 };
const USER = 'admin';
const PASSWORD = 'the real admin password';

function adminSocket(node, auth, from) {
  return client(node.url + '/admin', { auth, transports: ['websocket'], extraHeaders: { 'X-Forwarded-For': from } });
}

// The connect_error message, or 'connected'.
function outcome(socket, ms = 10000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    socket.once('connect', () => { clearTimeout(timer); resolve('connected'); });
    socket.once('connect_error', (e) => { clearTimeout(timer); resolve(e.message); });
  });
}

describe('admin login budget per client address', () => {
  let N;
  before(async () => {
    N = await startNode({
      config: 'cluster.json',
      overrides: { http: { trustedProxies: ['127.0.0.1'] } },
      env: { ROOMCAST_ADMIN_USERNAME: USER, ROOMCAST_ADMIN_PASSWORD_HASH: bcrypt.hashSync(PASSWORD, 10) },
    });
  });
  after(async () => { if (N) await N.stop(); });

  it('a brute force from one address (and one /64) is throttled; the admin at another address gets in 5 of 5; a bystander keeps its pings', T, async (t) => {
    // The bystander: Engine.IO pings (every 500 ms, 400 ms to answer) and an ack round trip
    // every 200 ms.
    const by = client(N.url, { auth: { token: token({ sub: 'bea' }) }, transports: ['websocket'] });
    const drops = [];
    by.on('disconnect', (why) => drops.push(why));
    await connected(by);
    const pings = [];
    by.io.on('ping', () => pings.push(Date.now()));
    const rtts = [];
    let stop = false;
    const prober = (async () => {
      while (!stop) {
        const t0 = Date.now();
        await by.timeout(5000).emitWithAck('join', { room: 'by-room' }).catch(() => {});
        rtts.push(Date.now() - t0);
        await sleep(200);
      }
    })();

    const m0 = await metrics(N);
    // Two attackers, each trying wrong passwords back to back: one IPv4 address, and addresses
    // that change on every try inside one IPv6 /64.
    const tried = { v4: [], v6: [] };
    const attacker = (kind) => (async () => {
      for (let i = 0; !stop; i++) {
        const from = kind === 'v4' ? '198.51.100.7' : `2001:db8:1:2:${(i % 65535).toString(16)}::${(i % 7) + 1}`;
        const s = adminSocket(N, { username: USER, password: `guess ${kind} ${i}` }, from);
        tried[kind].push(await outcome(s));
        s.close();
      }
    })();
    const attackers = [attacker('v4'), attacker('v6')];
    await sleep(3000);

    // The real admin, from its own address, five times during the attack.
    const admin = [];
    for (let i = 0; i < 5; i++) {
      const s = adminSocket(N, { username: USER, password: PASSWORD }, '203.0.113.9');
      admin.push(await outcome(s));
      s.close();
      await sleep(1500);
    }
    stop = true;
    await Promise.all([...attackers, prober]);
    const m1 = await metrics(N);
    const d = (r) => m1.get(`roomcast_admin_logins_total{result="${r}"}`) - (m0.get(`roomcast_admin_logins_total{result="${r}"}`) || 0);
    const count = (list, what) => list.filter((a) => a === what).length;
    const gaps = pings.slice(1).map((p, i) => p - pings[i]);
    const sorted = [...rtts].sort((x, y) => x - y);
    t.diagnostic(`admin: ${admin.join(',')}; throttled by the address budget ` +
      `${m1.get('roomcast_admin_login_throttled_total{budget="address"}')}, by the node's ` +
      `${m1.get('roomcast_admin_login_throttled_total{budget="node"}')}`);
    for (const kind of ['v4', 'v6']) {
      t.diagnostic(`attacker ${kind}: ${tried[kind].length} tries, ${count(tried[kind], 'invalid credentials')} checked, ` +
        `${count(tried[kind], 'too many attempts')} throttled`);
    }
    t.diagnostic(`bystander: ${pings.length} pings, max gap ${Math.max(...gaps)} ms; ${rtts.length} acks, ` +
      `p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms; drops ${drops.length}`);

    assert.deepEqual(admin, ['connected', 'connected', 'connected', 'connected', 'connected']);
    for (const kind of ['v4', 'v6']) {
      const list = tried[kind];
      assert.ok(list.every((a) => a === 'invalid credentials' || a === 'too many attempts'), list.join(','));
      // Throttled: most tries never reach bcrypt.
      assert.ok(count(list, 'too many attempts') > count(list, 'invalid credentials'), `${kind}: ${list.join(',')}`);
    }
    assert.equal(d('ok'), 5);
    assert.ok(d('throttled') > 0);
    // Every refusal is counted once, by the budget that was empty (the address's or the node's).
    const spent = (b) => m1.get(`roomcast_admin_login_throttled_total{budget="${b}"}`) - (m0.get(`roomcast_admin_login_throttled_total{budget="${b}"}`) || 0);
    assert.equal(spent('address') + spent('node'), d('throttled'));
    assert.deepEqual(drops, []);
    assert.ok(by.connected);
    assert.ok(pings.length > 0 && rtts.length > 0);
    N.assertAlive();
    by.close();
  });
});
