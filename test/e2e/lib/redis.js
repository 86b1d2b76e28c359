'use strict';
// A real redis-server for the cluster end-to-end tests (cluster*.test.js), and a tiny RESP client
// over node:net, used the way a backend would use any Redis client (no npm package needed).
//
//   const redis = await startRedis();        redis-server on a free loopback port, no persistence
//   redis.url                                'redis://127.0.0.1:<port>' (for --redis)
//   await redis.command('PUBSUB', 'NUMSUB', ch)      one command on the shared client connection
//   await redis.publish(channel, objOrString)        -> number of subscribers that got it
//   await redis.numsub(ch)                           -> subscriber count of one channel
//   await redis.commandstats()                       -> {subscribe: {calls, ...}, publish: ...}
//   const sub = await redis.subscriber(); await sub.subscribe(ch); sub.messages(ch)  (counting)
//   await redis.kill()                       SIGKILL (connections die with it)
//   redis.freeze() / redis.thaw()            SIGSTOP / SIGCONT (connections stay open, silent)
//   await redis.restart()                    a fresh, empty redis-server on the same port
//   await redis.stop()                       SIGTERM (SIGKILL after 5 s), closes the clients
//
// Every child is killed when the test process exits, whatever happened.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep } = require('./node');

const DEBUG = !!process.env.E2E_DEBUG;
const START_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 5000;
const COMMAND_TIMEOUT_MS = 5000;

function findBinary(name, envVar) {
  if (process.env[envVar]) return process.env[envVar];
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  throw new Error(`${name} not found in PATH: install it (Debian: apt-get install redis-server) ` +
    `or set ${envVar}`);
}

const children = new Set();
const tempDirs = [];
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
});

// ---- RESP --------------------------------------------------------------------------------------

function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(typeof a === 'string' ? a : String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

class RespError extends Error {}

// Parses one RESP2/RESP3 reply at buf[at]; returns [value, next] or null when incomplete.
// Bulk strings come back as strings (utf8); errors as RespError instances (not thrown).
function parseReply(buf, at = 0) {
  if (at >= buf.length) return null;
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new RespError(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return null;
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*':
    case '>': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return null;
        items.push(r[0]);
        pos = r[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)} at ${at}`);
  }
}

// One connection. Regular commands are answered in order (pipelining is fine). After a SUBSCRIBE
// the connection is in pub/sub mode: "message" pushes go to the per-channel message lists and
// to the 'message' listeners; subscribe/unsubscribe confirmations answer the command that sent
// them (one confirmation per channel; the command resolves with the last one).
class RespClient {
  constructor(port, { name = 'test' } = {}) {
    this.port = port;
    this.name = name;
    this.sock = null;
    this.buf = Buffer.alloc(0);
    this.pending = []; // {resolve, reject, timer, confirmations}
    this.pubsub = false;
    this.received = new Map(); // channel -> [payload strings]
    this.listeners = new Set();
    this.closed = false;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.port, '127.0.0.1');
      this.sock = sock;
      sock.setNoDelay(true);
      const onErr = (e) => reject(e);
      sock.once('error', onErr);
      sock.once('connect', () => {
        sock.off('error', onErr);
        sock.on('error', () => { /* 'close' follows */ });
        resolve(this);
      });
      sock.on('data', (chunk) => this._onData(chunk));
      sock.on('close', () => {
        this.closed = true;
        for (const p of this.pending.splice(0)) {
          clearTimeout(p.timer);
          p.reject(new Error(`redis connection to ${this.port} closed while waiting for a reply`));
        }
      });
    });
  }

  _onData(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let at = 0;
    for (;;) {
      const r = parseReply(this.buf, at);
      if (!r) break;
      at = r[1];
      this._onReply(r[0]);
    }
    this.buf = at >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(at);
  }

  _onReply(v) {
    if (this.pubsub && Array.isArray(v) && v[0] === 'message') {
      const [, channel, payload] = v;
      if (!this.received.has(channel)) this.received.set(channel, []);
      this.received.get(channel).push(payload);
      for (const l of this.listeners) l(channel, payload);
      return;
    }
    const p = this.pending[0];
    if (!p) return; // nothing asked (should not happen)
    if (p.confirmations > 1) { p.confirmations -= 1; return; }
    this.pending.shift();
    clearTimeout(p.timer);
    if (v instanceof RespError) p.reject(v);
    else p.resolve(v);
  }

  // Sends one command; resolves with its reply (rejects on an error reply or a closed connection).
  command(...args) {
    if (this.closed || !this.sock) return Promise.reject(new Error(`redis client ${this.name} is closed`));
    const cmd = String(args[0]).toUpperCase();
    const isSub = cmd === 'SUBSCRIBE' || cmd === 'UNSUBSCRIBE';
    return new Promise((resolve, reject) => {
      const p = {
        resolve, reject,
        confirmations: isSub ? Math.max(1, args.length - 1) : 1,
        timer: setTimeout(() => {
          const i = this.pending.indexOf(p);
          if (i >= 0) this.pending.splice(i, 1);
          reject(new Error(`redis ${args.map(String).join(' ').slice(0, 200)}: no reply within ${COMMAND_TIMEOUT_MS} ms`));
        }, COMMAND_TIMEOUT_MS),
      };
      if (isSub) this.pubsub = true;
      this.pending.push(p);
      this.sock.write(encodeCommand(args));
    });
  }

  subscribe(...channels) { return this.command('SUBSCRIBE', ...channels); }

  // Messages received so far on a channel (payload strings), in arrival order.
  messages(channel) {
    if (!this.received.has(channel)) this.received.set(channel, []);
    return this.received.get(channel);
  }

  onMessage(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  close() {
    this.closed = true;
    if (this.sock) this.sock.destroy();
  }
}

// ---- redis-server ------------------------------------------------------------------------------

class RedisServer {
  constructor() {
    this.bin = findBinary('redis-server', 'REDIS_SERVER');
    this.port = null;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-e2e-redis-'));
    tempDirs.push(this.dir);
    this.proc = null;
    this.exit = null;
    this.output = '';
    this.client = null; // shared command connection
    this.clients = new Set();
  }

  get url() { return `redis://127.0.0.1:${this.port}`; }

  async _spawn() {
    this.exit = null;
    const child = spawn(this.bin, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--protected-mode', 'no', '--loglevel', 'warning', '--daemonize', 'no',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = child;
    children.add(child);
    this.exited = new Promise((resolve) => {
      const done = (exit) => { children.delete(child); if (this.proc === child) this.exit = exit; resolve(exit); };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (err) => done({ code: -1, signal: null, error: err.message }));
    });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-32768);
      if (DEBUG) process.stderr.write(`[redis ${this.port}] ${chunk}`);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);

    const deadline = Date.now() + START_TIMEOUT_MS;
    let last = null;
    while (Date.now() < deadline) {
      if (this.exit) break;
      try {
        const c = await new RespClient(this.port, { name: 'shared' }).connect();
        const pong = await c.command('PING');
        if (pong === 'PONG') {
          this.client = c;
          this.clients.add(c);
          return;
        }
        c.close();
      } catch (e) { last = e; }
      await sleep(30);
    }
    throw new Error(`redis-server on ${this.port} not answering PING within ${START_TIMEOUT_MS} ms ` +
      `(${last ? last.message : 'no answer'}; exit ${JSON.stringify(this.exit)})\n${this.output}`);
  }

  async start() {
    this.port = await freePort();
    await this._spawn();
    return this;
  }

  get running() { return !!this.proc && !this.exit; }

  _dropClients() {
    for (const c of this.clients) c.close();
    this.clients.clear();
    this.client = null;
  }

  // SIGKILL: no shutdown, every connection reset at once.
  async kill() {
    this._dropClients();
    if (!this.running) return;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  // SIGSTOP / SIGCONT: a Redis that keeps its connections open but answers nothing.
  freeze() { if (this.running) this.proc.kill('SIGSTOP'); }
  thaw() { if (this.running) this.proc.kill('SIGCONT'); }

  // A new, empty server on the same port (the nodes reconnect to the same URL).
  async restart() {
    if (this.running) await this.kill();
    await this._spawn();
  }

  async stop() {
    this._dropClients();
    if (!this.running) return;
    this.thaw();
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => { if (this.running) this.proc.kill('SIGKILL'); }, STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }

  command(...args) {
    if (!this.client) return Promise.reject(new Error('redis-server is not running'));
    return this.client.command(...args);
  }

  // PUBLISH as a backend does: msg is an object (sent as JSON) or a string. Resolves with the
  // number of subscribers that received it.
  publish(channel, msg) {
    return this.command('PUBLISH', channel, typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  async numsub(channel) {
    const r = await this.command('PUBSUB', 'NUMSUB', channel);
    return Number(r[1]);
  }

  // PUBSUB CHANNELS pattern -> array of names
  channels(pattern = '*') { return this.command('PUBSUB', 'CHANNELS', pattern); }

  // INFO commandstats -> {subscribe: {calls: 3, usec: .., ...}, ...}
  async commandstats() {
    const text = await this.command('INFO', 'commandstats');
    const out = {};
    for (const line of text.split('\r\n')) {
      const m = /^cmdstat_([^:]+):(.*)$/.exec(line);
      if (!m) continue;
      const fields = {};
      for (const kv of m[2].split(',')) {
        const [k, v] = kv.split('=');
        fields[k] = Number(v);
      }
      out[m[1]] = fields;
    }
    return out;
  }

  async calls(cmd) {
    const s = await this.commandstats();
    return s[cmd] ? s[cmd].calls : 0;
  }

  // CLIENT LIST -> [{id, name, sub, ...}] (all values strings)
  async clientList() {
    const text = await this.command('CLIENT', 'LIST');
    return text.split('\n').filter(Boolean).map((line) => {
      const o = {};
      for (const kv of line.trim().split(' ')) {
        const i = kv.indexOf('=');
        if (i > 0) o[kv.slice(0, i)] = kv.slice(i + 1);
      }
      return o;
    });
  }

  // A separate connection (for SUBSCRIBE); closed by kill/stop.
  async newClient(name = 'extra') {
    const c = await new RespClient(this.port, { name }).connect();
    this.clients.add(c);
    return c;
  }

  async subscriber(...channels) {
    const c = await this.newClient('subscriber');
    if (channels.length) await c.subscribe(...channels);
    return c;
  }

  // PUBLISH through the redis-cli binary, exactly as docs/redis.md's example does.
  redisCli(...args) {
    const bin = findBinary('redis-cli', 'REDIS_CLI');
    const r = spawnSync(bin, ['-h', '127.0.0.1', '-p', String(this.port), ...args], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
    return r.stdout.trim();
  }

  tail(lines = 30) { return this.output.split('\n').slice(-lines).join('\n'); }
}

async function startRedis() {
  return new RedisServer().start();
}

module.exports = { startRedis, RedisServer, RespClient, RespError, encodeCommand, parseReply, findBinary };
