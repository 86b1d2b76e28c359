'use strict';
// Redis over TLS and over a unix socket (issue 16): one real redis-server of our own, TLS only on
// TCP (--port 0 --tls-port N, tls-auth-clients yes: mutual TLS) plus a unix socket, with a test
// CA, a server certificate and a client certificate made here with openssl.
//   - two nodes on rediss:// in one room receive every publish exactly once, published over TLS
//     by a backend (redis-cli --tls) and through POST /api/publish;
//   - a node given the wrong CA refuses to start: exit code 1 and a message naming the CA file
//     and OpenSSL's reason; so does a node without the client certificate this Redis requires;
//   - a node on unix:///path works the same way.
// Connection layer and TLS: docs/redis.md ("Connecting"), docs/architecture.md.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  BIN, JWT_SECRET, startNode, client, connected, closeClients, token, emitAck, publishOk,
  collect, sleep, waitUntil, freePort, readyz,
} = require('./lib/node');

const T = { timeout: 60000 };
const QUIET_MS = 400;
const P = 'roomcast';
const roomChannel = (room, ns = '/') => `${P}:room:${ns}:${room}`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-redis-tls-'));
const f = (name) => path.join(dir, name);
const children = new Set();
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
});

function openssl(...args) {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and an unrelated CA.
function makeCertificates() {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=roomcast test CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  openssl('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=some other CA', '-keyout', f('other.key'), '-out', f('other.pem'));
  fs.writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('req', ...ec, '-subj', '/CN=redis', '-keyout', f('server.key'), '-out', f('server.csr'));
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', f('server.ext'), '-out', f('server.pem'));
  openssl('req', ...ec, '-subj', '/CN=roomcast', '-keyout', f('client.key'), '-out', f('client.csr'));
  openssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
    '-days', '2', '-out', f('client.pem'));
}

async function startTlsRedis() {
  const port = await freePort();
  const sock = f('redis.sock');
  const child = spawn('redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', f('server.pem'), '--tls-key-file', f('server.key'),
    '--tls-ca-cert-file', f('ca.pem'), '--tls-auth-clients', 'yes',
    '--unixsocket', sock, '--unixsocketperm', '700',
    '--save', '', '--appendonly', 'no', '--dir', dir,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  await waitUntil(() => fs.existsSync(sock) && /Ready to accept connections/.test(out),
    { timeout: 10000, what: `redis-server with TLS ready:\n${out}` });
  return { port, sock, child };
}

// redis-cli over TLS with the client certificate (a backend publishing), or over the unix socket.
function cli(redis, args, { unix = false } = {}) {
  const conn = unix ? ['-s', redis.sock]
    : ['--tls', '-h', '127.0.0.1', '-p', String(redis.port), '--cacert', f('ca.pem'),
      '--cert', f('client.pem'), '--key', f('client.key')];
  return execFileSync('redis-cli', [...conn, ...args], { encoding: 'utf8' }).trim();
}

const tlsEnv = (extra = {}) => ({
  ROOMCAST_REDIS_CA_FILE: f('ca.pem'),
  ROOMCAST_REDIS_CERT_FILE: f('client.pem'),
  ROOMCAST_REDIS_KEY_FILE: f('client.key'),
  ...extra,
});

async function connectTo(node, sub) {
  const s = client(node.url, { auth: { token: token({ sub, rooms: ['*'] }) }, transports: ['websocket'] });
  await connected(s);
  return s;
}

async function join(socket, room) {
  assert.deepEqual(await emitAck(socket, 'join', { room }), [{ ok: true, room }], `join ${room}`);
}

// Runs the binary without the harness's wait for /healthz: it is expected to stop by itself.
async function runToExit(env, timeoutMs = 20000) {
  const port = await freePort();
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--port', String(port), '--node-id', `tls-refused-${process.pid}`], {
      env: {
        PATH: process.env.PATH, ROOMCAST_JWT_SECRET: JWT_SECRET, ROOMCAST_LOG_FORMAT: 'json',
        ROOMCAST_BIND: '127.0.0.1', UBSAN_OPTIONS: 'print_stacktrace=1', ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`still running after ${timeoutMs} ms:\n${out}`)); }, timeoutMs);
    child.once('exit', (code, signal) => { clearTimeout(timer); children.delete(child); resolve({ code, signal, out }); });
  });
}

describe('Redis over TLS and unix sockets', () => {
  let redis;
  const nodes = [];

  before(async () => {
    makeCertificates();
    redis = await startTlsRedis();
  });

  afterEach(() => closeClients());

  after(async () => {
    closeClients();
    for (const n of nodes) await n.stop();
    if (redis) {
      redis.child.kill('SIGTERM');
      await new Promise((r) => { if (redis.child.exitCode !== null) r(); else redis.child.once('exit', r); });
    }
  });

  it('two nodes on rediss:// (mutual TLS): every publish reaches each member exactly once', T, async () => {
    const url = `rediss://127.0.0.1:${redis.port}`;
    const tag = `tls${process.pid}`;
    const A = await startNode({ config: 'cluster.json', nodeId: `${tag}-a`, env: { ROOMCAST_REDIS_URL: url, ...tlsEnv() } });
    nodes.push(A);
    // by name too: the certificate carries DNS:localhost, checked against the URL's host
    const B = await startNode({ config: 'cluster.json', nodeId: `${tag}-b`, env: { ROOMCAST_REDIS_URL: `rediss://localhost:${redis.port}`, ...tlsEnv() } });
    nodes.push(B);
    await waitUntil(async () => (await readyz(A)) === 200 && (await readyz(B)) === 200,
      { timeout: 15000, what: 'both nodes ready over TLS' });

    const a = await connectTo(A, 'ann');
    const b = await connectTo(B, 'bob');
    await join(a, 'tls-room');
    await join(b, 'tls-room');
    await waitUntil(() => cli(redis, ['PUBSUB', 'NUMSUB', roomChannel('tls-room')]).endsWith('2'),
      { timeout: 5000, what: 'both nodes subscribed over TLS' });
    // the nodes' own connections are TLS clients with their names
    const list = cli(redis, ['CLIENT', 'LIST']);
    for (const n of [A, B]) for (const role of ['sub', 'cmd']) assert.match(list, new RegExp(`name=roomcast:${n.nodeId}:${role} `));

    const got = { a: collect(a, 'news'), b: collect(b, 'news') };
    const N = 20;
    for (let i = 0; i < N; i++) {
      if (i % 2 === 0) {
        assert.equal(cli(redis, ['PUBLISH', roomChannel('tls-room'), JSON.stringify({ event: 'news', data: { i } })]), '2');
      } else {
        await publishOk(i % 4 === 1 ? A : B, { ns: '/', room: 'tls-room', event: 'news', data: { i } });
      }
    }
    await waitUntil(() => got.a.length >= N && got.b.length >= N,
      { timeout: 10000, what: `${N} messages on each client (a ${got.a.length}, b ${got.b.length})` });
    await sleep(QUIET_MS);
    for (const [who, list2] of Object.entries(got)) {
      const seen = list2.map((args) => args[0].i).sort((x, y) => x - y);
      assert.deepEqual(seen, Array.from({ length: N }, (_, i) => i), `client ${who}: each publish exactly once`);
    }
  });

  it('a node given the wrong CA refuses to start, naming the file and the reason', T, async () => {
    const r = await runToExit({ ROOMCAST_REDIS_URL: `rediss://127.0.0.1:${redis.port}`, ...tlsEnv({ ROOMCAST_REDIS_CA_FILE: f('other.pem') }) });
    assert.equal(r.code, 1, `exit code (signal ${r.signal}):\n${r.out}`);
    assert.match(r.out, /certificate verify failed/, r.out);
    assert.ok(r.out.includes(f('other.pem')), `the message names the CA file:\n${r.out}`);
    assert.ok(r.out.includes('ROOMCAST_REDIS_CA_FILE'), `the message names the setting:\n${r.out}`);
    assert.doesNotMatch(r.out, /ERROR: (Address|Leak)Sanitizer/);
  });

  it('a node without the client certificate this Redis requires refuses to start', T, async () => {
    const r = await runToExit({ ROOMCAST_REDIS_URL: `rediss://127.0.0.1:${redis.port}`, ROOMCAST_REDIS_CA_FILE: f('ca.pem') });
    assert.equal(r.code, 1, `exit code (signal ${r.signal}):\n${r.out}`);
    assert.match(r.out, /redis_tls_refused.*certificate required/, r.out);
  });

  it('a name the certificate does not carry is refused (serverName)', T, async () => {
    const r = await runToExit({
      ROOMCAST_REDIS_URL: `rediss://127.0.0.1:${redis.port}`, ...tlsEnv({ ROOMCAST_REDIS_SERVER_NAME: 'redis.example.org' }),
    });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /hostname mismatch/, r.out);
  });

  it('a node on unix:///path delivers like one on TCP', T, async () => {
    const U = await startNode({ config: 'cluster.json', nodeId: `unix${process.pid}`, env: { ROOMCAST_REDIS_URL: `unix://${redis.sock}` } });
    nodes.push(U);
    await waitUntil(async () => (await readyz(U)) === 200, { timeout: 15000, what: 'unix-socket node ready' });
    const u = await connectTo(U, 'una');
    await join(u, 'unix-room');
    await waitUntil(() => cli(redis, ['PUBSUB', 'NUMSUB', roomChannel('unix-room')], { unix: true }).endsWith('1'),
      { timeout: 5000, what: 'unix node subscribed' });
    const got = collect(u, 'news');
    assert.equal(cli(redis, ['PUBLISH', roomChannel('unix-room'), JSON.stringify({ event: 'news', data: { i: 0 } })], { unix: true }), '1');
    await publishOk(U, { ns: '/', room: 'unix-room', event: 'news', data: { i: 1 } });
    // a TLS node publishes into the same Redis: one Redis, two transports
    await publishOk(nodes[0], { ns: '/', room: 'unix-room', event: 'news', data: { i: 2 } });
    await waitUntil(() => got.length >= 3, { timeout: 5000, what: `3 messages (have ${got.length})` });
    await sleep(QUIET_MS);
    assert.deepEqual(got.map((args) => args[0].i).sort(), [0, 1, 2]);
  });
});
