'use strict';
// Hostile WebSocket peers (issue 9): frames no browser or library sends. Unmasked, RSV bits,
// reserved opcodes, fragmented or oversized control frames, continuation without a start,
// invalid UTF-8 (whole and split across fragments), lying lengths, bad close frames, endless
// fragments, frames dribbled a byte at a time, 1,000 messages in one write, seeded random
// garbage, and a peer that floods pings without reading the pongs. Frames are built by hand
// (lib/hostile.js) on a raw TCP connection after a normal upgrade. Issue 15: the close code reaches
// a client (the `ws` library) that is still sending when the node closes (1009, 1002, 1007), and a
// burst of such peers, some never closing, leaves the node's descriptors at their baseline.
//
// config/hostile_ws.json: maxPayload 1000, pingInterval/pingTimeout 1000/1000, connectTimeout 3000.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const WebSocket = require('ws');
const { startNode, connect, closeClients, checkAlive, token, emitAck, sleep } = require('./lib/node');
const {
  RawConn, RawWs, frame, OP, sioConnect, rssMb, pool, prng, randomBytes, metrics, metric, waitUntil, upgradeRequest,
} = require('./lib/hostile');

const T = { timeout: 30000 };
const MAX = 1000;
const PROTOCOL = 1002;
const BAD_DATA = 1007;
const TOO_BIG = 1009;
const SLACK = 1500;

const text = (payload, o = {}) => frame({ opcode: OP.TEXT, payload, ...o });
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const u8 = (before, bytes, afterText = '') => Buffer.concat([Buffer.from(before), bytes, Buffer.from(afterText)]);

// [name, frames to send after the upgrade, expected close code]
const CLOSE_CASES = [
  ['unmasked text frame', [text('40', { masked: false })], PROTOCOL],
  ['RSV1 set (no extension negotiated)', [text('40', { rsv: 4 })], PROTOCOL],
  ['RSV2 set', [text('40', { rsv: 2 })], PROTOCOL],
  ['RSV3 set', [text('40', { rsv: 1 })], PROTOCOL],
  ...[3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((op) => [`reserved opcode ${op}`, [frame({ opcode: op, payload: 'x' })], PROTOCOL]),
  ['fragmented ping (FIN=0)', [frame({ opcode: OP.PING, fin: false, payload: 'a' })], PROTOCOL],
  ['fragmented pong (FIN=0)', [frame({ opcode: OP.PONG, fin: false, payload: 'a' })], PROTOCOL],
  ['fragmented close (FIN=0)', [frame({ opcode: OP.CLOSE, fin: false, payload: hex('03e8') })], PROTOCOL],
  ['ping with a 126-byte payload', [frame({ opcode: OP.PING, payload: Buffer.alloc(126, 0x61) })], PROTOCOL],
  ['close with a 126-byte payload', [frame({ opcode: OP.CLOSE, payload: Buffer.concat([hex('03e8'), Buffer.alloc(124, 0x61)]) })], PROTOCOL],
  ['continuation without a start', [frame({ opcode: OP.CONT, payload: '40' })], PROTOCOL],
  ['text frame inside a fragmented message', [text('4', { fin: false }), text('0')], PROTOCOL],
  ['binary frame inside a fragmented message', [text('4', { fin: false }), frame({ opcode: OP.BINARY, payload: 'x' })], PROTOCOL],
  ['invalid UTF-8: 0xff', [text(u8('42["echo","', hex('ff'), '"]'))], BAD_DATA],
  ['invalid UTF-8: overlong "/" (c0 af)', [text(u8('42["echo","', hex('c0af'), '"]'))], BAD_DATA],
  ['invalid UTF-8: overlong 3-byte NUL (e0 80 80)', [text(u8('42["echo","', hex('e08080'), '"]'))], BAD_DATA],
  ['invalid UTF-8: UTF-16 surrogate (ed a0 80)', [text(u8('42["echo","', hex('eda080'), '"]'))], BAD_DATA],
  ['invalid UTF-8: above U+10FFFF (f4 90 80 80)', [text(u8('42["echo","', hex('f4908080'), '"]'))], BAD_DATA],
  ['invalid UTF-8: 5-byte form (f8 88 80 80 80)', [text(u8('42["echo","', hex('f888808080'), '"]'))], BAD_DATA],
  ['invalid UTF-8: truncated at the end (e2 82)', [text(u8('4', hex('e282')))], BAD_DATA],
  ['invalid UTF-8: lone continuation byte (80)', [text(u8('4', hex('80')))], BAD_DATA],
  ['invalid UTF-8 across fragments (e2 | 28)', [text(u8('4', hex('e2')), { fin: false }), frame({ opcode: OP.CONT, payload: hex('28a1') })], BAD_DATA],
  ['frame over maxPayload, header only', [text('', { len: MAX + 1 })], TOO_BIG],
  ['64-bit length 2^63-1, header only', [text('', { len: 0x7fffffffffffffffn })], TOO_BIG],
  ['64-bit length with the top bit set', [text('', { len: 0xffffffffffffffffn })], TOO_BIG],
  ['16-bit length 65535 on a 3-byte payload', [text('abc', { len: 65535 })], TOO_BIG],
  ['fragments adding up past maxPayload', [text('4'.repeat(600), { fin: false }), frame({ opcode: OP.CONT, payload: 'x'.repeat(600) })], TOO_BIG],
  ['close with a 1-byte payload', [frame({ opcode: OP.CLOSE, payload: hex('03') })], PROTOCOL],
  ...[999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535].map((code) =>
    [`close code ${code}`, [frame({ opcode: OP.CLOSE, payload: Buffer.from([code >> 8, code & 255]) })], PROTOCOL]),
  ['close 1000 with an invalid UTF-8 reason', [frame({ opcode: OP.CLOSE, payload: Buffer.concat([hex('03e8'), hex('ff')]) })], PROTOCOL],
  // Valid closes are echoed.
  ['close 1000 (echoed)', [frame({ opcode: OP.CLOSE, payload: hex('03e8') })], 1000],
  ['close 3000 (echoed)', [frame({ opcode: OP.CLOSE, payload: hex('0bb8') })], 3000],
  ['close 4999 with a reason (echoed)', [frame({ opcode: OP.CLOSE, payload: Buffer.concat([hex('1387'), Buffer.from('bye ✓')]) })], 4999],
  ['close without a payload (answered 1000)', [frame({ opcode: OP.CLOSE })], 1000],
];

describe('hostile WebSocket peers', () => {
  let node;
  const stats = {};
  const tok = (sub = 'ws-user') => token({ sub });

  // A small ASan quarantine, so that RSS measures what the node keeps, not freed memory in quarantine.
  const ASAN_ENV = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}quarantine_size_mb=1:thread_local_quarantine_size_kb=64` };
  before(async () => { node = await startNode({ config: 'hostile_ws.json', env: ASAN_ENV }); });
  afterEach(() => node && checkAlive(node));
  after(async () => {
    closeClients();
    if (node) await node.stop();
    console.log(`# hostile_ws stats ${JSON.stringify(stats)}`);
  });

  async function stillServes() {
    const s = await connect(node.url, { auth: { token: tok('ok-user') }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(s, 'echo', 'alive'), ['alive']);
    s.disconnect();
  }

  it(`bad frames (${CLOSE_CASES.length} cases): each gets the right close code and the TCP connection ends`, T, async (t) => {
    const rssBefore = await rssMb(node);
    const problems = [];
    await pool(CLOSE_CASES, 16, async ([name, frames, want]) => {
      let ws;
      try {
        ws = await RawWs.open(node.port);
        await ws.nextText('0');
        // Half of the cases come after a Socket.IO CONNECT, half before: same answer.
        if (name.length % 2) {
          ws.sendText(`40${JSON.stringify({ token: tok() })}`);
          await ws.nextText('40');
        }
        for (const f of frames) ws.send(f);
        const { code } = await ws.closeFrame(2000);
        if (code !== want) problems.push(`${name}: close ${code}, want ${want}`);
        await ws.conn.waitClosed(2000);
      } catch (e) {
        problems.push(`${name}: ${e.message.slice(0, 200)}`);
      } finally {
        if (ws) ws.destroy();
      }
    });
    assert.deepEqual(problems, []);
    await stillServes();
    stats.closeCases = { cases: CLOSE_CASES.length, rssBeforeMb: Math.round(rssBefore), rssAfterMb: Math.round(await rssMb(node)) };
    t.diagnostic(`${CLOSE_CASES.length} bad frames, each closed with the expected code`);
  });

  it('legal but unusual framing works: UTF-8 split across fragments, a ping between fragments, a frame dribbled byte by byte', T, async () => {
    const ws = await RawWs.open(node.port, { autoPong: true });
    await ws.nextText('0');
    // CONNECT in three fragments, cutting "é" (c3 a9) in half, with a ping in the middle.
    const connectText = Buffer.from(`40${JSON.stringify({ token: tok(), x: 'é' })}`);
    const cut = connectText.indexOf(0xc3) + 1;
    ws.send(text(connectText.subarray(0, 5), { fin: false }));
    ws.send(frame({ opcode: OP.CONT, fin: false, payload: connectText.subarray(5, cut) }));
    ws.send(frame({ opcode: OP.PING, payload: 'mid' }));
    ws.send(frame({ opcode: OP.CONT, payload: connectText.subarray(cut) }));
    const pong = await ws.nextFrame((f) => f.opcode === OP.PONG);
    assert.equal(pong.payload.toString(), 'mid');
    assert.match(await ws.nextText('40'), /^40\{"sid":/);
    // Unsolicited pongs are ignored.
    for (let i = 0; i < 50; i++) ws.send(frame({ opcode: OP.PONG, payload: 'u' }));
    // One frame, one byte per write.
    const f = text('421["echo","dribbled ✓"]');
    for (const b of f) {
      ws.send(Buffer.from([b]));
      await sleep(2);
    }
    assert.equal(await ws.nextText('43'), '431["dribbled ✓"]');
    // Zero-length binary and empty fragments in a message.
    ws.send(text('42["echo",', { fin: false }));
    ws.send(frame({ opcode: OP.CONT, fin: false }));
    ws.send(frame({ opcode: OP.CONT, payload: '"x"]' }));
    assert.ok(!ws.isClosed);
    ws.destroy();
  });

  it('1,000 messages in one write are all answered, in order', T, async (t) => {
    const ws = await sioConnect(node.port, tok());
    const N = 1000;
    const t0 = Date.now();
    ws.send(Buffer.concat(Array.from({ length: N }, (_, i) => text(`42${i}["echo",${i}]`))));
    await ws.conn.until(() => ws.texts().filter((m) => m.startsWith('43')).length >= N, 10000, `${N} acks`);
    const acks = ws.texts().filter((m) => m.startsWith('43'));
    assert.deepEqual(acks, Array.from({ length: N }, (_, i) => `43${i}[${i}]`));
    t.diagnostic(`${N} pipelined events answered in ${Date.now() - t0} ms`);
    ws.destroy();
  });

  it('an empty text frame, or a binary frame before any CONNECT, ends the session', T, async () => {
    const a = await RawWs.open(node.port);
    await a.nextText('0');
    a.send(text(''));
    await a.conn.waitClosed(2000);
    const b = await RawWs.open(node.port);
    await b.nextText('0');
    b.send(frame({ opcode: OP.BINARY, payload: Buffer.from([1, 2, 3]) }));
    await b.conn.waitClosed(2000);
    a.destroy();
    b.destroy();
  });

  it('a message that never ends (endless empty continuation frames) is cut off by the heartbeat', T, async () => {
    const ws = await sioConnect(node.port, tok(), { autoPong: false });
    ws.send(text('42["echo",', { fin: false }));
    const timer = setInterval(() => ws.send(frame({ opcode: OP.CONT, fin: false })), 20);
    try {
      const ms = await ws.conn.waitClosed(1000 + 1000 + SLACK + 1000);
      assert.ok(ms >= 1000, `closed after ${ms} ms`);
    } finally {
      clearInterval(timer);
      ws.destroy();
    }
  });

  it('truncated frames followed by a TCP close leave nothing behind (60 connections)', T, async () => {
    const cuts = [];
    const full = text(`40${JSON.stringify({ token: tok() })}`);
    for (let i = 1; i < full.length; i += Math.ceil(full.length / 60)) cuts.push(full.subarray(0, i));
    await pool(cuts, 30, async (bytes) => {
      const ws = await RawWs.open(node.port);
      await ws.nextText('0');
      ws.send(bytes);
      await sleep(20);
      ws.destroy();
    });
    await stillServes();
  });

  it('300 seeded random byte strings after the upgrade: no crash; every connection ends, at the latest by the connect timeout', T, async (t) => {
    const rand = prng(0x5eed);
    const inputs = Array.from({ length: 300 }, () => {
      const n = 1 + Math.floor(rand() * 64);
      const b = randomBytes(rand, n);
      if (rand() < 0.5) b[1] |= 0x80; // often "masked", so the length checks are reached
      if (rand() < 0.3) b[0] = (b[0] & 0xf0) | [0, 1, 2, 8, 9, 10][Math.floor(rand() * 6)];
      return b;
    });
    const codes = {};
    const waiting = [];
    await pool(inputs, 50, async (bytes) => {
      const ws = await RawWs.open(node.port);
      await ws.nextText('0');
      ws.send(bytes);
      try {
        const { code } = await ws.closeFrame(400);
        codes[code] = (codes[code] || 0) + 1;
        ws.destroy();
      } catch {
        // Waiting for the rest of a frame: the heartbeat or the connect timeout must end it.
        codes.waiting = (codes.waiting || 0) + 1;
        waiting.push(ws);
      }
    });
    const ends = await Promise.all(waiting.map((ws) => ws.conn.waitClosed(3000 + SLACK + 1000).then(() => true, () => false)));
    for (const ws of waiting) ws.destroy();
    assert.equal(ends.filter((x) => !x).length, 0, 'connections waiting for a frame that never comes must end');
    await stillServes();
    stats.random = { inputs: inputs.length, closeCodes: codes };
    t.diagnostic(`300 random inputs -> close codes ${JSON.stringify(codes)}`);
  });

  // Issue 15, the close codes. The node used to close the TCP connection right after writing its
  // close frame while the peer was still sending (the rest of a 2 MB frame): the kernel answered
  // the unread bytes with a reset, and the client saw 1006, never the 1009. Now the node closes
  // the way nginx does (shut the write side, read and discard for a bounded time and amount,
  // then close), so the code arrives; a burst of such peers leaves no descriptor behind.
  const wsClose = (send, { timeoutMs = 5000 } = {}) => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${node.port}/socket.io/?EIO=4&transport=websocket`);
    const timer = setTimeout(() => { ws.terminate(); resolve({ code: 'timeout' }); }, timeoutMs);
    ws.on('error', () => {});
    ws.once('message', () => send(ws)); // the open packet: the session exists
    ws.on('close', (code) => { clearTimeout(timer); resolve({ code }); });
  });
  const sendBig = (ws) => ws.send(Buffer.alloc(2 * 1048576, 0x61), { binary: false });
  const sendHuge = (ws) => ws.send(Buffer.alloc(8 * 1048576, 0x61), { binary: false });
  // The protocol errors, each followed by 8 MB more that the client is still sending.
  const sendUnmasked = (ws) => ws.send(Buffer.alloc(8 * 1048576, 0x61), { mask: false, binary: false });
  const sendBadUtf8 = (ws) => {
    ws.send(Buffer.from([0x34, 0xff]), { binary: false });
    const chunk = Buffer.alloc(900, 0x61);
    for (let i = 0; i < 9000; i++) ws.send(chunk, { binary: false });
  };

  it('close codes reach the client (ws library) still sending: 1009 for a 2 MB frame, 1002 and 1007 for protocol errors', T, async (t) => {
    // 2 MB as in the report; 8 MB as well, more than the loopback's socket buffers absorb, so the
    // client is surely still sending when the node closes (the reset was likeliest then).
    const big = [];
    const huge = [];
    for (let i = 0; i < 5; i++) big.push((await wsClose(sendBig)).code);
    for (let i = 0; i < 5; i++) huge.push((await wsClose(sendHuge)).code);
    const unmasked = [];
    const utf8 = [];
    for (let i = 0; i < 3; i++) unmasked.push((await wsClose(sendUnmasked)).code);
    for (let i = 0; i < 3; i++) utf8.push((await wsClose(sendBadUtf8)).code);
    t.diagnostic(`2 MB text frame (5 times): ${big.join(', ')}; 8 MB: ${huge.join(', ')}; unmasked 8 MB frame: ${unmasked.join(', ')}; ` +
      `invalid UTF-8 then 8 MB: ${utf8.join(', ')}`);
    assert.deepEqual(big, Array(5).fill(TOO_BIG), 'a 2 MB frame (maxPayload 1000) is closed with 1009, and the client sees it');
    assert.deepEqual(huge, Array(5).fill(TOO_BIG), 'an 8 MB frame too');
    assert.deepEqual(unmasked, Array(3).fill(PROTOCOL));
    assert.deepEqual(utf8, Array(3).fill(BAD_DATA));
    await stillServes();
  });

  it('a burst of peers refused mid-frame: each sees its code; the node\'s descriptors return to their baseline', T, async (t) => {
    const fds0 = await metric(node, 'process_open_fds');
    const cut0 = await metric(node, 'roomcast_lingering_cut_total');
    // 40 ws clients sending 2 MB frames, and 20 raw peers announcing a 2 MB frame, sending part of
    // it and then nothing, never closing (half-open: our FIN does not end them): the node's
    // lingering ends those by its time bound.
    const N = 40;
    const silent = await Promise.all(Array.from({ length: 20 }, async () => {
      const sock = net.connect({ port: node.port, host: '127.0.0.1', allowHalfOpen: true });
      const c = new RawConn(sock);
      await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
      c.write(upgradeRequest());
      await c.until((x) => x.text().includes('\r\n\r\n'), 3000, 'the upgrade');
      c.write(frame({ opcode: OP.TEXT, payload: Buffer.alloc(65536, 0x62), len: 2 * 1048576 }));
      return c;
    }));
    const t0 = Date.now();
    const codes = {};
    await pool(Array.from({ length: N }, (_, i) => i), 20, async (i) => {
      const { code } = await wsClose(i % 3 === 2 ? sendBadUtf8 : i % 3 === 1 ? sendUnmasked : sendBig, { timeoutMs: 10000 });
      codes[code] = (codes[code] || 0) + 1;
    });
    const silentCodes = await Promise.all(silent.map(async (c) => {
      await c.until((x) => x.buffer().includes(Buffer.from([0x88, 0x02, 0x03, 0xf1])), 3000, 'a 1009 close frame').catch(() => {});
      return c.buffer().includes(Buffer.from([0x88, 0x02, 0x03, 0xf1])) ? TOO_BIG : null;
    }));
    const peak = await metric(node, 'roomcast_connections_lingering');
    await waitUntil(async () => (await metric(node, 'process_open_fds')) <= fds0, { timeout: 10000, what: `process_open_fds back to ${fds0}` });
    const backMs = Date.now() - t0;
    for (const c of silent) c.destroy();
    const cut = (await metric(node, 'roomcast_lingering_cut_total')) - cut0;
    stats.lingering = { clients: N, codes, silentPeers: silent.length, fdsBaseline: fds0, backToBaselineMs: backMs, lingeringCut: cut };
    t.diagnostic(`${N} clients refused mid-frame: close codes ${JSON.stringify(codes)}; 20 silent peers got ${JSON.stringify(silentCodes)}; ` +
      `lingering ${peak} at the end of the burst; descriptors back to ${fds0} after ${backMs} ms; ${cut} lingering closes cut by a bound`);
    assert.deepEqual(codes, { [TOO_BIG]: 14, [PROTOCOL]: 13, [BAD_DATA]: 13 });
    assert.deepEqual(silentCodes, Array(silent.length).fill(TOO_BIG));
    assert.ok(cut >= silent.length, `${cut} lingering closes cut by a bound: the silent peers' must be (lingering is bounded)`);
    await stillServes();
  });

  it('a peer that floods pings and never reads the pongs cannot grow the node\'s memory', T, async (t) => {
    const before = await rssMb(node);
    const ws = await sioConnect(node.port, tok());
    ws.conn.pause();
    const ping = frame({ opcode: OP.PING, payload: Buffer.alloc(125, 0x61), mask: Buffer.alloc(4) });
    const chunk = Buffer.concat(Array(1000).fill(ping)); // 131 KB
    const t0 = Date.now();
    let sent = 0;
    while (sent < 24 * 1048576 && !ws.isClosed && Date.now() - t0 < 8000) {
      if (!ws.conn.sock.write(chunk)) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 1000);
          ws.conn.sock.once('drain', () => { clearTimeout(timer); resolve(); });
        });
      }
      sent += chunk.length;
    }
    await sleep(500);
    const after = await rssMb(node);
    const closed = ws.isClosed;
    ws.destroy();
    t.diagnostic(`${(sent / 1048576).toFixed(0)} MB of pings, never read: RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB, ` +
      `connection ${closed ? 'closed' : 'open'}`);
    assert.ok(closed || after - before < 16, `RSS grew by ${(after - before).toFixed(1)} MB and the peer is still connected`);
  });
});
