'use strict';
// Harness for the end-to-end tests: starts a real roomcast node (the ASan+UBSan build) as a child
// process on a free loopback port, and gives the tests small helpers around socket.io-client,
// jsonwebtoken and plain HTTP.
//
//   const { startNode, connect, token } = require('./lib/node');
//   const node = await startNode({ config: 'default.json' });
//   const socket = await connect(node.url, { auth: { token: token({ sub: 'alice' }) } });
//   ...
//   closeClients(); await node.stop();   // stop() fails on a non-zero exit or a sanitizer report

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const { io } = require('socket.io-client');

const BIN = process.env.ROOMCAST_BIN || path.resolve(__dirname, '..', '..', '..', 'build', 'san', 'roomcast');
const CONFIG_DIR = path.resolve(__dirname, '..', 'config');
const JWT_SECRET = 'e2e-jwt-secret-0123456789abcdef0123456789abcdef';
const API_KEY = 'e2e-api-key-0123456789';
const DEBUG = !!process.env.E2E_DEBUG;

const SANITIZER_MARKERS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];
const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A port nobody listens on right now: bind port 0 on loopback, read it, close.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let tmpDir = null;
function tempDir() {
  if (!tmpDir) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-e2e-'));
    process.on('exit', () => {
      try { fs.rmSync(tmpDir, { recursive: true, force: true }); } catch { /* best effort */ }
    });
  }
  return tmpDir;
}

// Writes text to a fresh file in the suite's temp dir and returns its path.
function writeTemp(name, text) {
  const file = path.join(tempDir(), `${crypto.randomBytes(4).toString('hex')}-${name}`);
  fs.writeFileSync(file, text);
  return file;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base, over) {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? deepMerge(base[k], v) : v;
  return out;
}

// config: a file name under config/ ("default.json"), an absolute path, or an object.
// overrides: an object deep-merged over it (the result is then written to a temp file).
function resolveConfig(config, overrides) {
  if (config === undefined || config === null) config = 'default.json';
  if (typeof config === 'string' && !overrides) {
    return path.isAbsolute(config) ? config : path.join(CONFIG_DIR, config);
  }
  let obj = config;
  if (typeof config === 'string') {
    const file = path.isAbsolute(config) ? config : path.join(CONFIG_DIR, config);
    obj = JSON.parse(fs.readFileSync(file, 'utf8'));
  }
  if (overrides) obj = deepMerge(obj, overrides);
  return writeTemp('config.json', JSON.stringify(obj, null, 2));
}

class RoomcastNode {
  constructor({ child, port, nodeId, configFile, tls }) {
    this.child = child;
    this.port = port;
    this.tls = !!tls;
    this.nodeId = nodeId;
    this.configFile = configFile;
    this.url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.wsUrl = `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}`;
    this.stderrChunks = [];
    this.stdoutChunks = [];
    this.exit = null; // {code, signal} once exited
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    child.stderr.on('data', (chunk) => {
      this.stderrChunks.push(chunk);
      if (DEBUG) process.stderr.write(chunk);
    });
    child.stdout.on('data', (chunk) => {
      this.stdoutChunks.push(chunk);
      if (DEBUG) process.stderr.write(chunk);
    });
    this.stopped = false;
  }

  stderr() {
    return Buffer.concat(this.stderrChunks).toString('utf8');
  }

  stdout() {
    return Buffer.concat(this.stdoutChunks).toString('utf8');
  }

  // Last lines of stderr, for failure messages.
  stderrTail(lines = 40) {
    return this.stderr().split('\n').slice(-lines).join('\n');
  }

  assertNoSanitizerReport() {
    const err = this.stderr();
    for (const marker of SANITIZER_MARKERS) {
      const at = err.indexOf(marker);
      if (at >= 0) {
        const from = Math.max(0, err.lastIndexOf('\n', Math.max(0, at - 2000)));
        assert.fail(`roomcast ${this.nodeId} printed a sanitizer report (${marker}):\n` +
          err.slice(from, at + 6000));
      }
    }
  }

  // SIGTERM, wait for the exit (SIGKILL after 10 s), then require exit code 0 and a clean stderr.
  async stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (!this.exit) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!this.exit) this.child.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
    this.assertNoSanitizerReport();
    assert.deepEqual(this.exit, { code: 0, signal: null },
      `roomcast ${this.nodeId} did not exit cleanly after SIGTERM: ${JSON.stringify(this.exit)}\n` +
      `--- stderr tail ---\n${this.stderrTail()}`);
  }

  // Still running? (a crash in the middle of a test shows up here, with its report)
  assertAlive() {
    if (this.exit) {
      this.assertNoSanitizerReport();
      assert.fail(`roomcast ${this.nodeId} exited unexpectedly: ${JSON.stringify(this.exit)}\n` +
        `--- stderr tail ---\n${this.stderrTail()}`);
    }
  }
}

let nodeCounter = 0;

// Starts a node and waits until GET /healthz answers 200.
// opts: config (see resolveConfig), overrides, nodeId, env (extra environment), args (extra flags)
async function startNode(opts = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`roomcast binary not found at ${BIN} (set ROOMCAST_BIN or run make build/san/roomcast)`);
  }
  const configFile = resolveConfig(opts.config, opts.overrides);
  const port = await freePort();
  const nodeId = opts.nodeId || `e2e-${process.pid}-${++nodeCounter}`;
  const env = {
    ...process.env,
    ROOMCAST_JWT_SECRET: JWT_SECRET,
    ROOMCAST_API_KEY: API_KEY,
    ROOMCAST_LOG_FORMAT: 'json',
    ROOMCAST_LOG_LEVEL: 'debug',
    ROOMCAST_BIND: '127.0.0.1',
    ...(opts.env || {}),
  };
  // Settings from the outer environment must not leak into a test's node.
  for (const k of ['ROOMCAST_CONFIG', 'ROOMCAST_PORT', 'ROOMCAST_REDIS_URL', 'ROOMCAST_NODE_ID',
    'ROOMCAST_CORS_ORIGINS', 'ROOMCAST_JWT_ALGS', 'ROOMCAST_JWT_PUBLIC_KEY_FILE', 'ROOMCAST_PREFIX',
    'ROOMCAST_REDIS_CA_FILE', 'ROOMCAST_REDIS_CERT_FILE', 'ROOMCAST_REDIS_KEY_FILE', 'ROOMCAST_REDIS_SERVER_NAME',
    'ROOMCAST_REDIS_SENTINELS', 'ROOMCAST_REDIS_MASTER_NAME', 'ROOMCAST_REDIS_SENTINEL_PASSWORD',
    'ROOMCAST_REDIS_SENTINEL_USER', 'ROOMCAST_REDIS_CLUSTER']) {
    if (!(opts.env && k in opts.env)) delete env[k];
  }
  for (const [k, v] of Object.entries(env)) if (v === undefined || v === null) delete env[k];
  if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = 'print_stacktrace=1';

  const args = ['--config', configFile, '--port', String(port), '--node-id', nodeId, ...(opts.args || [])];
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const node = new RoomcastNode({ child, port, nodeId, configFile, tls: opts.tls });
  const spawnError = new Promise((_, reject) => child.once('error', reject));
  spawnError.catch(() => {});

  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastErr = null;
  while (Date.now() < deadline) {
    if (node.exit) break;
    try {
      const res = await Promise.race([httpRequest(node, 'GET', '/healthz', { timeout: 1000 }), spawnError]);
      if (res.status === 200) return node;
      lastErr = new Error(`/healthz answered ${res.status}`);
    } catch (e) {
      lastErr = e;
      if (e && e.code === 'ENOENT') break;
    }
    await sleep(50);
  }
  if (!node.exit) {
    child.kill('SIGKILL');
    await node.exited;
  }
  throw new Error((node.exit ? 'roomcast exited before /healthz answered 200 '
    : `roomcast did not become healthy within ${READY_TIMEOUT_MS} ms `) +
    `(${lastErr ? lastErr.message : 'no answer'}; exit ${JSON.stringify(node.exit)})\n` +
    `cmd: ${BIN} ${args.join(' ')}\nconfig: ${fs.readFileSync(configFile, 'utf8')}\n` +
    `--- stderr tail ---\n${node.stderrTail()}`);
}

// ---- HTTP --------------------------------------------------------------------------------------

// One request on a fresh connection (no keep-alive pool holding the node open).
// Returns {status, headers, body (string), json()}.
function httpRequest(node, method, urlPath, { headers = {}, body, timeout = 5000 } = {}) {
  const port = typeof node === 'number' ? node : node.port;
  const tls = typeof node === 'object' && node.tls;
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined
      : (typeof body === 'string' || Buffer.isBuffer(body)) ? body : JSON.stringify(body);
    const req = (tls ? https : http).request({
      host: '127.0.0.1', port, method, path: urlPath, agent: false,
      ...(tls ? { rejectUnauthorized: false } : {}),
      headers: {
        Connection: 'close',
        ...(payload !== undefined ? { 'Content-Length': Buffer.byteLength(payload) } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          json() {
            try { return JSON.parse(text); } catch (e) {
              throw new Error(`${method} ${urlPath}: body is not JSON (${e.message}): ${JSON.stringify(text)}`);
            }
          },
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

// POST /api/publish with the node's API key (or `key`, or no Authorization when key === null).
function publish(node, message, { key = API_KEY, headers = {} } = {}) {
  const h = { 'Content-Type': 'application/json', ...headers };
  if (key !== null) h.Authorization = `Bearer ${key}`;
  return httpRequest(node, 'POST', '/api/publish', { headers: h, body: message });
}

// Publishes and requires 202 {"ok":true}.
async function publishOk(node, message) {
  const res = await publish(node, message);
  assert.equal(res.status, 202, `POST /api/publish ${JSON.stringify(message)} -> ${res.status} ${res.body}`);
  assert.deepEqual(res.json(), { ok: true });
  return res;
}

// ---- tokens ------------------------------------------------------------------------------------

// An HS256 token signed with the suite's secret. claims default to {sub: "alice"} and expire in an
// hour; opts: secret, algorithm, key (private key for RS*), and any jsonwebtoken sign option.
function token(claims = {}, opts = {}) {
  const { secret, key, ...signOpts } = opts;
  const payload = { sub: 'alice', ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  const options = { algorithm: 'HS256', ...signOpts };
  if (payload.exp === undefined && options.expiresIn === undefined && options.noExpiry !== true) {
    options.expiresIn = 3600;
  }
  delete options.noExpiry;
  return jwt.sign(payload, key || secret || JWT_SECRET, options);
}

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// A token assembled by hand: any header, any payload, signature computed with HMAC-SHA256 over
// `secret` (a string or Buffer), or the literal `signature` string (e.g. '' for alg none).
function rawToken(header, payload, { secret, signature } = {}) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  let sig = signature;
  if (sig === undefined) {
    sig = crypto.createHmac('sha256', secret === undefined ? JWT_SECRET : secret).update(input).digest('base64url');
  }
  return `${input}.${sig}`;
}

const nowS = () => Math.floor(Date.now() / 1000);

// ---- socket.io-client --------------------------------------------------------------------------

const liveClients = new Set();

// A socket.io-client socket, not yet connected (autoConnect on), tracked for closeClients().
// Defaults: forceNew, no reconnection, 5 s handshake timeout.
function client(url, opts = {}) {
  const socket = io(url, { forceNew: true, reconnection: false, timeout: 5000, ...opts });
  liveClients.add(socket);
  return socket;
}

// Resolves when `socket` connects; rejects with the connect_error's error (err.socket = socket).
function connected(socket, timeoutMs = 5000) {
  if (socket.connected) return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    const onConnect = () => { done(); resolve(socket); };
    const onError = (err) => { done(); err.socket = socket; reject(err); };
    const timer = setTimeout(() => {
      done();
      const err = new Error(`no connect nor connect_error within ${timeoutMs} ms`);
      err.socket = socket;
      reject(err);
    }, timeoutMs);
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
  });
}

// A connected socket (promise); rejects on connect_error with the error.
function connect(url, opts = {}) {
  return connected(client(url, opts));
}

// Resolves with the connect_error's error (err.socket is the socket); fails if it connects.
async function connectError(url, opts = {}) {
  const socket = client(url, opts);
  try {
    await connected(socket);
  } catch (err) {
    if (/^no connect nor connect_error/.test(err.message)) throw err;
    return err;
  }
  assert.fail(`expected a connect_error, but ${url} connected (sid ${socket.id})`);
}

// For afterEach: closes the test's clients, gives the node a moment to tear their sessions down,
// and fails right there (naming the test) if the node died or printed a sanitizer report.
async function settle(node, ms = 100) {
  closeClients();
  await sleep(ms);
  if (node) {
    node.assertNoSanitizerReport();
    node.assertAlive();
  }
}

// Same without closing anything (for suites whose tests share sockets).
async function checkAlive(node, ms = 50) {
  await sleep(ms);
  node.assertNoSanitizerReport();
  node.assertAlive();
}

function closeClients() {
  for (const s of liveClients) {
    try { s.disconnect(); } catch { /* ignore */ }
    try { s.io.engine && s.io.engine.close(); } catch { /* ignore */ }
  }
  liveClients.clear();
}

// Next `event` on an emitter (socket, socket.io, socket.io.engine, a ws...): resolves with its
// arguments as an array.
function waitForArgs(emitter, event, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const listener = (...args) => { clearTimeout(timer); resolve(args); };
    const timer = setTimeout(() => {
      (emitter.off || emitter.removeListener).call(emitter, event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    emitter.once(event, listener);
  });
}

// Same, resolving with the first argument.
async function waitFor(emitter, event, timeoutMs = 3000) {
  const args = await waitForArgs(emitter, event, timeoutMs);
  return args[0];
}

// Fails if `event` fires on the emitter within ms.
function expectNoEvent(emitter, event, ms = 300) {
  return new Promise((resolve, reject) => {
    const listener = (...args) => {
      clearTimeout(timer);
      reject(new Error(`unexpected '${event}' within ${ms} ms: ${safeJson(args)}`));
    };
    const timer = setTimeout(() => {
      (emitter.off || emitter.removeListener).call(emitter, event, listener);
      resolve();
    }, ms);
    emitter.once(event, listener);
  });
}

// Emits with an ack callback; resolves with the ack's arguments (array); fails after 3 s.
function emitAck(socket, event, ...args) {
  return emitAckWithin(3000, socket, event, ...args);
}

function emitAckWithin(ms, socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...res) => {
      if (err) reject(new Error(`no ack for '${event}' within ${ms} ms (${err.message})`));
      else resolve(res);
    });
  });
}

// Collects every occurrence of `event` (arguments arrays) into an array, until off() is called.
function collect(emitter, event) {
  const got = [];
  const listener = (...args) => got.push(args);
  emitter.on(event, listener);
  Object.defineProperty(got, 'off', {
    enumerable: false,
    value: () => (emitter.off || emitter.removeListener).call(emitter, event, listener),
  });
  return got;
}

function safeJson(v) {
  try {
    return JSON.stringify(v, (k, x) => (x && x.type === 'Buffer' && Array.isArray(x.data) ? `<Buffer ${x.data.length}>` : x));
  } catch {
    return String(v);
  }
}

// Polls fn until it returns a truthy value (returned); fails after timeout with the last value.
async function waitUntil(fn, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(interval);
  }
}

// /metrics as a Map of "name{labels}" -> number.
async function metrics(node) {
  const res = await httpRequest(node, 'GET', '/metrics');
  assert.equal(res.status, 200, `/metrics ${res.status}`);
  const out = new Map();
  for (const line of res.body.split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    if (i > 0) out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

const metric = async (node, name) => (await metrics(node)).get(name);
const readyz = async (node) => (await httpRequest(node, 'GET', '/readyz', { timeout: 2000 })).status;

module.exports = {
  BIN, CONFIG_DIR, JWT_SECRET, API_KEY,
  sleep, freePort, writeTemp, startNode, RoomcastNode,
  httpRequest, publish, publishOk,
  token, rawToken, b64url, nowS,
  client, connected, connect, connectError, closeClients, settle, checkAlive,
  waitFor, waitForArgs, expectNoEvent, emitAck, emitAckWithin, collect,
  waitUntil, metrics, metric, readyz,
};
