'use strict';
// Raw-socket helpers for the hostile-client and chaos suites (hostile_*.test.js, chaos.test.js):
// exact bytes on a TCP (or TLS) connection, hand-built WebSocket frames (masked or not, any
// opcode, RSV bits, lying lengths), a server-frame parser, HTTP response splitting, /metrics and
// /proc readers, percentiles, and a seeded PRNG so "random" cases are the same on every run.
//
//   const c = await RawConn.open(port);          c.write(bytes); await c.waitClosed(ms); c.text()
//   const ws = await RawWs.open(port, {query});   ws.send(frame({opcode: 1, payload: '40'}))
//   await ws.nextText(ms)  await ws.closeFrame(ms) -> {code, reason}
//   const m = await metrics(node)  ->  Map('roomcast_x{labels}' -> number)
//
// Nothing here is clever about the protocols on purpose: the point is to send what a
// well-behaved library never would.

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');
const assert = require('node:assert/strict');
const { httpRequest, sleep, waitUntil, metrics, metric } = require('./node');

// ---- plain TCP -------------------------------------------------------------------------------

// One TCP (or TLS) connection that records everything it reads, and when it closed.
class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.chunks = [];
    this.length = 0;
    this.closedAt = null;
    this.openedAt = Date.now();
    this.error = null;
    this.listeners = new Set();
    sock.on('data', (c) => {
      this.chunks.push(c);
      this.length += c.length;
      for (const l of this.listeners) l();
    });
    sock.on('error', (e) => { this.error = e; });
    this.closed = new Promise((resolve) => sock.once('close', () => {
      this.closedAt = Date.now();
      for (const l of this.listeners) l();
      resolve(this);
    }));
  }

  // opts.tls: connect with TLS (no certificate check), opts.timeoutMs for the connect.
  static open(port, { host = '127.0.0.1', tls: useTls = false, timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = useTls
        ? tls.connect({ port, host, rejectUnauthorized: false })
        : net.connect(port, host);
      const conn = new RawConn(sock);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`connect to ${port}: timeout`)); }, timeoutMs);
      sock.once(useTls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        conn.openedAt = Date.now();
        resolve(conn);
      });
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
  }

  get isClosed() { return this.closedAt !== null; }
  buffer() { return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks); }
  text() { return this.buffer().toString('latin1'); }
  write(data) { if (!this.sock.destroyed) this.sock.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data); }
  // Stops reading: the kernel buffers fill and the peer has to hold what it wants to send.
  pause() { this.sock.pause(); }
  destroy() { this.sock.destroy(); }

  // Resolves when pred(this) is true (checked at every read and at close); rejects after ms.
  until(pred, ms = 3000, what = 'condition') {
    return new Promise((resolve, reject) => {
      const check = () => {
        let ok = false;
        try { ok = pred(this); } catch { ok = false; }
        if (ok) { done(); resolve(this); return true; }
        return false;
      };
      const done = () => { clearTimeout(timer); this.listeners.delete(check); };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${what} not met within ${ms} ms; read so far: ${JSON.stringify(this.text().slice(0, 300))}` +
          `${this.isClosed ? ' (closed)' : ''}`));
      }, ms);
      this.listeners.add(check);
      check();
    });
  }

  // Resolves with the close time (ms after open) or rejects if still open after ms.
  async waitClosed(ms) {
    await this.until((c) => c.isClosed, ms, 'connection closed');
    return this.closedAt - this.openedAt;
  }
}

// Sends bytes on a fresh connection and collects the reply until the peer closes (or ms pass).
// Returns {text, closed, responses} where responses are parsed HTTP responses.
async function exchange(port, bytes, { ms = 3000, tls: useTls = false, endAfterWrite = false } = {}) {
  const c = await RawConn.open(port, { tls: useTls });
  c.write(bytes);
  if (endAfterWrite) c.sock.end();
  try { await c.waitClosed(ms); } catch { /* still open: report what came */ }
  const text = c.text();
  c.destroy();
  return { text, closed: c.isClosed, responses: parseResponses(text) };
}

// Splits raw HTTP/1.1 response bytes into {status, headers (lowercase names), body}. Stops at
// the first thing that is not a response (and records it in .rest).
function parseResponses(text) {
  const out = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0 || !text.startsWith('HTTP/1.1 ', at)) { out.rest = text.slice(at); break; }
    const lines = text.slice(at, end).split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] || 0);
    out.push({ status, headers, head: text.slice(at, end), body: text.slice(end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return out;
}

// ---- WebSocket frames ------------------------------------------------------------------------

// A client frame. payload: string (utf8) or Buffer. masked: default true. len: the length to put
// in the header (default: the real one) - lie with it to test the peer's limits.
function frame({ fin = true, rsv = 0, opcode = 1, payload = Buffer.alloc(0), masked = true, len, mask } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const n = len === undefined ? p.length : len;
  let head;
  if (typeof n === 'bigint' || n > 0xffff) {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  } else if (n >= 126) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(2);
    head[1] = n;
  }
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  if (!masked) return Buffer.concat([head, p]);
  head[1] |= 0x80;
  const key = mask || crypto.randomBytes(4);
  const body = Buffer.from(p);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

// Parses server frames (unmasked) from buf starting at `at`: [{fin, rsv, opcode, payload}], next.
function parseFrames(buf, at = 0) {
  const frames = [];
  for (;;) {
    if (buf.length - at < 2) break;
    const b0 = buf[at];
    const b1 = buf[at + 1];
    let len = b1 & 0x7f;
    let hl = 2;
    if (len === 126) { if (buf.length - at < 4) break; len = buf.readUInt16BE(at + 2); hl = 4; }
    else if (len === 127) { if (buf.length - at < 10) break; len = Number(buf.readBigUInt64BE(at + 2)); hl = 10; }
    if (b1 & 0x80) hl += 4; // a server must not mask, but parse it anyway
    if (buf.length - at < hl + len) break;
    frames.push({ fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, payload: buf.subarray(at + hl, at + hl + len) });
    at += hl + len;
  }
  return [frames, at];
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function upgradeRequest({ path = '/socket.io/', query = '?EIO=4&transport=websocket', headers = {}, key = WS_KEY } = {}) {
  const h = {
    Host: '127.0.0.1', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13', ...headers,
  };
  let text = `GET ${path}${query} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) if (v !== null && v !== undefined) text += `${k}: ${v}\r\n`;
  return `${text}\r\n`;
}

// A WebSocket over a RawConn: the 101 is checked, then server frames are parsed as they come.
class RawWs {
  constructor(conn) {
    this.conn = conn;
    this.frames = [];     // every server frame, in order
    this.consumed = 0;    // frames handed out by next*
    this.parsedTo = 0;    // byte offset in conn's buffer after the 101
    this.headEnd = -1;
    this.autoPong = false;
  }

  // Opens the connection and upgrades it. opts: query, headers, path, tls, extra (bytes written
  // right after the request, in the same write), autoPong (answer Engine.IO pings '2' with '3').
  static async open(port, { query, headers, path, tls: useTls = false, extra, autoPong = false, timeoutMs = 5000 } = {}) {
    const conn = await RawConn.open(port, { tls: useTls });
    const req = Buffer.from(upgradeRequest({ path, query, headers }), 'latin1');
    conn.write(extra ? Buffer.concat([req, extra]) : req);
    await conn.until((c) => c.text().includes('\r\n\r\n'), timeoutMs, 'the upgrade response');
    const ws = new RawWs(conn);
    ws.autoPong = autoPong;
    const text = conn.text();
    ws.headEnd = text.indexOf('\r\n\r\n') + 4;
    ws.status = Number(text.split(' ')[1]);
    if (ws.status !== 101) {
      conn.destroy();
      const err = new Error(`upgrade refused: ${text.split('\r\n')[0]}`);
      err.status = ws.status;
      err.text = text;
      throw err;
    }
    ws.parsedTo = ws.headEnd;
    conn.listeners.add(() => ws._parse());
    ws._parse();
    return ws;
  }

  _parse() {
    const buf = this.conn.buffer();
    const [frames, next] = parseFrames(buf, this.parsedTo);
    this.parsedTo = next;
    for (const f of frames) {
      this.frames.push(f);
      if (this.autoPong && f.opcode === OP.TEXT && f.payload.length === 1 && f.payload[0] === 0x32) {
        this.send(frame({ opcode: OP.TEXT, payload: '3' }));
      }
    }
  }

  send(bytes) { this.conn.write(bytes); }
  sendText(text) { this.send(frame({ opcode: OP.TEXT, payload: text })); }
  sendBinary(buf) { this.send(frame({ opcode: OP.BINARY, payload: buf })); }
  get isClosed() { return this.conn.isClosed; }
  destroy() { this.conn.destroy(); }

  // The next frame matching pred (not yet consumed); rejects after ms.
  async nextFrame(pred = () => true, ms = 3000, what = 'a frame') {
    let found = null;
    await this.conn.until(() => {
      this._parse();
      for (let i = this.consumed; i < this.frames.length; i++) {
        if (pred(this.frames[i])) { found = this.frames[i]; this.consumed = i + 1; return true; }
      }
      return false;
    }, ms, what);
    return found;
  }

  // Next text message other than an Engine.IO ping, optionally starting with prefix.
  async nextText(prefix = '', ms = 3000) {
    const f = await this.nextFrame((fr) => fr.opcode === OP.TEXT && fr.payload.toString('utf8') !== '2' &&
      fr.payload.toString('utf8').startsWith(prefix), ms, `a text frame starting with ${JSON.stringify(prefix)}`);
    return f.payload.toString('utf8');
  }

  // The server's close frame: {code, reason}; code null for an empty close payload.
  async closeFrame(ms = 3000) {
    const f = await this.nextFrame((fr) => fr.opcode === OP.CLOSE, ms, 'a close frame');
    const p = f.payload;
    return { code: p.length >= 2 ? p.readUInt16BE(0) : null, reason: p.subarray(2).toString('utf8') };
  }

  texts() { return this.frames.filter((f) => f.opcode === OP.TEXT).map((f) => f.payload.toString('utf8')); }
}

// A raw WebSocket with an Engine.IO session and a Socket.IO CONNECT done: resolves with the RawWs
// (ws.sid = the socket id). Fails on CONNECT_ERROR.
async function sioConnect(port, tokenValue, { ns = '/', autoPong = true, query, headers, tls: useTls } = {}) {
  const ws = await RawWs.open(port, { autoPong, query, headers, tls: useTls });
  const open = await ws.nextText('0');
  ws.handshake = JSON.parse(open.slice(1));
  const prefix = ns === '/' ? '' : `${ns},`;
  ws.sendText(`40${prefix}${JSON.stringify({ token: tokenValue })}`);
  const reply = await ws.nextText(`4`);
  if (!reply.startsWith(`40${prefix}`)) {
    ws.destroy();
    throw new Error(`CONNECT refused: ${reply}`);
  }
  ws.sid = JSON.parse(reply.slice(2 + prefix.length)).sid;
  return ws;
}

// ---- node observation ------------------------------------------------------------------------


// Sum of every series of a family (any labels).
function sumFamily(m, family) {
  let s = 0;
  for (const [k, v] of m) if (k === family || k.startsWith(`${family}{`)) s += v;
  return s;
}

const rssMb = async (node) => (await metric(node, 'process_resident_memory_bytes')) / 1048576;

// Resident set size straight from /proc (works while the node accepts no new connection).
function procRssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// utime + stime of a process, in clock ticks (usually 100 per second).
function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function openFds(pid) {
  try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return NaN; }
}


// ---- numbers ---------------------------------------------------------------------------------

function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

function summary(values) {
  return {
    n: values.length,
    p50: round(percentile(values, 50)),
    p99: round(percentile(values, 99)),
    max: round(values.length ? Math.max(...values) : NaN),
  };
}

const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// Mulberry32: a small seeded PRNG, so generated cases are identical on every run.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(rand, n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

// Runs async fn over items with at most `limit` in flight; resolves with the results in order.
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// ---- flooders, run as child processes -------------------------------------------------------
// So that an attack does not share the test process's event loop with the clients whose
// latency it measures:
//   node lib/hostile.js events PORT TOKEN ROOM MS [CONNS]   CONNS WebSockets (default 1) writing
//                                                          Socket.IO events (relays to ROOM) as fast
//                                                          as the sockets take them
//   node lib/hostile.js publish PORT KEY ROOM BYTES MS CONC [RATE]  POST /api/publish on CONC
//                                                          keep-alive connections, back to back or
//                                                          at most RATE per second
//   node lib/hostile.js connections PORT N MS               N connections held with half a request,
//                                                          reopened as soon as they close
// Each prints one JSON line with what it did, then exits.

function spawnFlooder(args) {
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, [__filename, ...args.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const done = new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) { reject(new Error(`flooder ${args[0]} exited ${code}: ${out}`)); return; }
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch (e) { reject(new Error(`flooder output: ${out}`)); }
    });
  });
  done.catch(() => {}); // awaited by the caller; no unhandled-rejection noise if it fails first
  return { child, done, kill: () => child.kill('SIGKILL') };
}

async function floodEvents(port, tokenValue, room, ms, conns = 1) {
  const pad = 'x'.repeat(200);
  const batch = Buffer.concat(Array.from({ length: 200 }, (_, i) => frame({
    opcode: OP.TEXT, payload: `42${JSON.stringify(['say', { room, i, pad }])}`,
  })));
  // Every socket is connected and in the room before any of them floods (a flooding socket
  // delays the node's answers to the others).
  const sockets = await Promise.all(Array.from({ length: conns }, async () => {
    const ws = await sioConnect(port, tokenValue);
    ws.sendText(`421${JSON.stringify(['join', room])}`);
    await ws.nextText('431');
    return ws;
  }));
  const results = await Promise.all(sockets.map(async (ws) => {
    // Drop what the node sends back (pings are answered by autoPong; nothing else is expected).
    const trim = setInterval(() => {
      ws.frames.length = 0;
      ws.consumed = 0;
      ws.conn.chunks = [ws.conn.buffer().subarray(ws.parsedTo)];
      ws.parsedTo = 0;
    }, 200);
    let sent = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < ms && !ws.isClosed) {
      if (!ws.conn.sock.write(batch)) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 200);
          ws.conn.sock.once('drain', () => { clearTimeout(timer); resolve(); });
        });
      }
      sent += 200;
      await new Promise((resolve) => setImmediate(resolve));
    }
    clearInterval(trim);
    const closed = ws.isClosed;
    ws.destroy();
    return { sent, ms: Date.now() - t0, closed };
  }));
  return {
    sent: results.reduce((a, r) => a + r.sent, 0),
    ms: Math.max(...results.map((r) => r.ms)),
    closed: results.filter((r) => r.closed).length,
  };
}

async function floodPublish(port, key, room, bytes, ms, conc, rate = 0) {
  const http = require('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
  const data = 'p'.repeat(bytes);
  let accepted = 0;
  let refused = 0;
  let seq = 0;
  const t0 = Date.now();
  const one = () => new Promise((resolve) => {
    const body = JSON.stringify({ room, event: 'hot', data: { seq: seq++, data } });
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/api/publish', agent,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => { if (res.statusCode === 202) accepted++; else refused++; resolve(); });
    });
    req.on('error', () => { refused++; resolve(); });
    req.end(body);
  });
  // rate: at most this many publishes per second in total (0: as fast as the answers come).
  await Promise.all(Array.from({ length: conc }, async () => {
    while (Date.now() - t0 < ms) {
      if (rate > 0) {
        const due = t0 + (seq / rate) * 1000;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      }
      await one();
    }
  }));
  agent.destroy();
  return { accepted, refused, ms: Date.now() - t0 };
}

// Keeps `n` connections open for ms, each sending half a request line and then nothing, and
// opens a new one whenever one is closed. Counts connections opened and those that the node
// closed within 100 ms without a byte (refused at accept).
async function floodConnections(port, n, ms) {
  let opened = 0;
  let refused = 0;
  let failed = 0;
  const t0 = Date.now();
  const live = new Set();
  const one = () => new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let start = 0;
    let got = false;
    sock.on('connect', () => { opened++; start = Date.now(); sock.write('GET /socket.io/?EIO=4&transport=pol'); });
    sock.on('data', () => { got = true; });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (!start) failed++;
      else if (!got && Date.now() - start < 100) refused++;
      live.delete(sock);
      resolve();
    });
    live.add(sock);
  });
  await Promise.all(Array.from({ length: n }, async () => {
    while (Date.now() - t0 < ms) {
      await Promise.race([one(), new Promise((r) => setTimeout(r, Math.max(1, ms - (Date.now() - t0))))]);
      if (!(Date.now() - t0 < ms)) break;
    }
  }));
  for (const s of live) s.destroy();
  return { opened, refused, failed, ms: Date.now() - t0 };
}

if (require.main === module) {
  const [mode, ...a] = process.argv.slice(2);
  const run = mode === 'events' ? floodEvents(Number(a[0]), a[1], a[2], Number(a[3]), Number(a[4] || 1))
    : mode === 'connections' ? floodConnections(Number(a[0]), Number(a[1]), Number(a[2]))
    : mode === 'publish' ? floodPublish(Number(a[0]), a[1], a[2], Number(a[3]), Number(a[4]), Number(a[5]), Number(a[6] || 0))
      : Promise.reject(new Error(`unknown mode ${mode}`));
  run.then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); },
    (e) => { process.stdout.write(`${JSON.stringify({ error: e.message })}\n`); process.exit(1); });
}

module.exports = {
  spawnFlooder,
  RawConn, exchange, parseResponses,
  frame, OP, parseFrames, upgradeRequest, RawWs, sioConnect, WS_KEY,
  metrics, metric, sumFamily, rssMb, procRssMb, cpuTicks, openFds, waitUntil,
  percentile, summary, round, prng, randomBytes, pool,
};
