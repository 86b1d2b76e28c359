'use strict';
// Hostile HTTP clients (issue 9): request smuggling (Content-Length vs Transfer-Encoding and
// their malformed variants), malformed and truncated requests, slowloris, idle connections,
// oversized bodies, malformed WebSocket handshakes, the Origin allow-list, and the same abuse on
// the TLS listener. Every case is raw bytes on a fresh connection (lib/hostile.js); after each
// group the node must still serve a normal client, and stop() at the end fails on any sanitizer
// report or unclean exit.
//
// config/hostile_http.json: headerTimeout 1000 ms, keepAliveTimeout 1500 ms, maxHeaderBytes 4096,
// maxBodyBytes = maxPayload = 10000, cors.origins ["http://allowed.example"].

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  startNode, connect, closeClients, checkAlive, token, emitAck, httpRequest, API_KEY, sleep,
} = require('./lib/node');
const {
  RawConn, exchange, parseResponses, upgradeRequest, RawWs, metric, rssMb, pool, summary, frame, OP,
} = require('./lib/hostile');

const T = { timeout: 30000 };
const HEADER_TIMEOUT = 1000;
const KEEPALIVE_TIMEOUT = 1500;
const MAX_BODY = 10000;
const SLACK = 1500; // scheduling slack for the ASan build on a busy machine

const KEY = `Authorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\n`;
const PUB = '{"room":"smuggle","event":"e","data":1}';
const HEX = Buffer.byteLength(PUB).toString(16);
const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const post = (headers, body = '') => `POST /api/publish HTTP/1.1\r\nHost: x\r\n${KEY}${headers}\r\n${body}`;

// Each case: raw request bytes, the statuses allowed for the (single) answer, and whether the
// connection must be closed after it. `answers` (default 1) is the exact number of responses:
// a second response would mean the peer parsed a smuggled request.
const CASES = [
  // ---- smuggling: Content-Length and Transfer-Encoding disagree --------------------------------
  ['CL.TE: Content-Length then chunked, smuggled request in the body',
    post(`Content-Length: 6\r\nTransfer-Encoding: chunked\r\n`, `0\r\n\r\n${SMUGGLED}`), [400]],
  ['TE.CL: chunked then Content-Length, smuggled request in the chunk',
    post(`Transfer-Encoding: chunked\r\nContent-Length: 4\r\n`, `${Buffer.byteLength(SMUGGLED).toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`), [400]],
  ['two different Content-Length', post(`Content-Length: ${PUB.length}\r\nContent-Length: 0\r\n`, PUB), [400]],
  ['two equal Content-Length', post(`Content-Length: ${PUB.length}\r\nContent-Length: ${PUB.length}\r\n`, PUB), [400]],
  ['Content-Length list "n, n"', post(`Content-Length: ${PUB.length}, ${PUB.length}\r\n`, PUB), [400]],
  ['Content-Length "+n"', post(`Content-Length: +${PUB.length}\r\n`, PUB), [400]],
  ['Content-Length -1', post('Content-Length: -1\r\n', PUB), [400]],
  ['Content-Length in hex', post(`Content-Length: 0x${HEX}\r\n`, PUB), [400]],
  ['Content-Length 10^23 (overflow)', post('Content-Length: 99999999999999999999999\r\n', PUB), [400, 413]],
  ['Content-Length 2^64-1', post('Content-Length: 18446744073709551615\r\n', PUB), [400, 413]],
  ['Content-Length "3 4"', post('Content-Length: 3 4\r\n', PUB), [400]],
  ['Transfer-Encoding: xchunked + Content-Length', post(`Transfer-Encoding: xchunked\r\nContent-Length: ${PUB.length}\r\n`, PUB), [400]],
  ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`), [400]],
  // Chunked is the final coding: framed as chunked, as RFC 9112 says (a 400/501 would do too).
  ['Transfer-Encoding: identity, chunked', post('Transfer-Encoding: identity, chunked\r\nConnection: close\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`), [202, 400, 501]],
  ['Transfer-Encoding twice', post('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`), [400]],
  ['"Transfer-Encoding :" (space before colon) + CL', post(`Transfer-Encoding : chunked\r\nContent-Length: ${PUB.length}\r\n`, PUB), [400]],
  ['Transfer-Encoding with a tab + CL', post('Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`), [400]],
  ['Transfer-Encoding folded (obs-fold) + CL', post('Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`), [400]],
  ['HTTP/1.0 with chunked + CL', post('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `${HEX}\r\n${PUB}\r\n0\r\n\r\n`).replace('HTTP/1.1', 'HTTP/1.0'), [400]],
  ['chunk size overflow (18 hex digits)', post('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nabc\r\n0\r\n\r\n'), [400, 413]],
  ['chunk size not hex', post('Transfer-Encoding: chunked\r\n', 'zz\r\nabc\r\n0\r\n\r\n'), [400]],
  ['chunk extension (valid) is accepted', post('Transfer-Encoding: chunked\r\nConnection: close\r\n', `${HEX};foo=bar\r\n${PUB}\r\n0\r\n\r\n`), [202]],
  ['chunked body over maxBodyBytes -> 413', post('Transfer-Encoding: chunked\r\n', `${'1000\r\n'}${'a'.repeat(4096)}\r\n`.repeat(4) + '0\r\n\r\n'), [413]],
  ['Content-Length over maxBodyBytes -> 413 before the body', post(`Content-Length: ${MAX_BODY + 1}\r\n`), [413]],
  ['GET with a body holding a request: one answer', `GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUGGLED.length}\r\nConnection: close\r\n\r\n${SMUGGLED}`, [200]],
  ['two pipelined requests: two answers, in order', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', [200, 404], { answers: 2 }],
  // ---- malformed request lines and headers -----------------------------------------------------
  ['lowercase method', 'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
  ['unknown method', 'FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', [400]],
  ['HTTP/0.9 request line', 'GET /healthz\r\n\r\n', [200, 400]],
  ['absolute-form URI is routed by path', 'GET http://evil.example/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', [404, 400]],
  ['NUL in the URL', 'GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n', [400]],
  ['bare CR line ends', 'GET /healthz HTTP/1.1\rHost: x\r\r', [400]],
  ['header without colon', 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n', [400]],
  ['NUL in a header value', 'GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n', [400]],
  ['control byte in a header value', 'GET /healthz HTTP/1.1\r\nHost: x\x01y\r\n\r\n', [400]],
  ['65 headers -> 431', `GET /healthz HTTP/1.1\r\n${Array.from({ length: 65 }, (_, i) => `X-${i}: y\r\n`).join('')}\r\n`, [431]],
  ['5000-byte URL -> 431', `GET /${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`, [431]],
  ['5000-byte header -> 431', `GET /healthz HTTP/1.1\r\nX: ${'a'.repeat(5000)}\r\n\r\n`, [431]],
  ['a TLS ClientHello on the plain port', Buffer.from([0x16, 3, 1, 0, 0xff, 1, 0, 0, 0xfb, 3, 3, 0, 0, 0]).toString('latin1'), [400]],
  ['binary garbage', '\xff\xfe\xfd\x00\x01\x02GET / HTTP/1.1\r\n\r\n', [400]],
  ['a request body on /healthz (GET) with Content-Length 0', 'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', [200]],
];

describe('hostile HTTP clients', () => {
  let node;
  const stats = {};

  before(async () => { node = await startNode({ config: 'hostile_http.json' }); });
  afterEach(() => node && checkAlive(node));
  after(async (t) => {
    closeClients();
    if (node) await node.stop();
    console.log(`# hostile_http stats ${JSON.stringify(stats)}`);
  });

  // A normal client still works: a socket.io-client connects, joins, gets a publish.
  async function stillServes() {
    const s = await connect(node.url, { auth: { token: token({ sub: 'ok-user' }) }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(s, 'echo', 'alive'), ['alive']);
    s.disconnect();
    assert.equal((await httpRequest(node, 'GET', '/healthz')).status, 200);
  }

  it(`request smuggling and malformed requests (${CASES.length} cases): one answer each, never a smuggled one`, T, async (t) => {
    const rssBefore = await rssMb(node);
    const results = await pool(CASES, 16, async ([name, bytes, want, opts = {}]) => {
      const r = await exchange(node.port, bytes, { ms: HEADER_TIMEOUT + KEEPALIVE_TIMEOUT + SLACK });
      return { name, want, answers: opts.answers || 1, ...r };
    });
    const problems = [];
    for (const r of results) {
      const statuses = r.responses.map((x) => x.status);
      if (statuses.length !== r.answers) problems.push(`${r.name}: ${statuses.length} answers ${JSON.stringify(statuses)} (want ${r.answers})`);
      else if (!statuses.every((s, i) => (r.answers === 1 ? r.want.includes(s) : s === r.want[i]))) {
        problems.push(`${r.name}: status ${JSON.stringify(statuses)}, want ${JSON.stringify(r.want)}`);
      }
      if (r.responses.rest) problems.push(`${r.name}: trailing bytes after the answers ${JSON.stringify(r.responses.rest.slice(0, 80))}`);
      if (r.text.includes('/smuggled')) problems.push(`${r.name}: the smuggled path shows up in the answer`);
      // An error answer ends the connection (the rest of the stream cannot be trusted).
      const last = r.responses[r.responses.length - 1];
      if (last && last.status >= 400 && last.status !== 404 && !r.closed) problems.push(`${r.name}: still open after ${last.status}`);
    }
    assert.deepEqual(problems, []);
    await stillServes();
    stats.smuggling = { cases: CASES.length, rssBeforeMb: Math.round(rssBefore), rssAfterMb: Math.round(await rssMb(node)) };
    t.diagnostic(`${CASES.length} malformed/smuggling requests: every one answered once as expected`);
  });

  it('a chunk whose data is not followed by CRLF is refused (strict chunked framing)', T, async () => {
    // http-parser as Debian builds it (non-strict) takes any two bytes for that CRLF; http.c
    // checks them itself (on_chunk_complete), so the stream is refused, not re-framed.
    for (const bad of ['XX', '\rX', 'X\n', '\n\r']) {
      const r = await exchange(node.port, post('Transfer-Encoding: chunked\r\n', `${HEX}\r\n${PUB}${bad}0\r\n\r\n${SMUGGLED}`),
        { ms: KEEPALIVE_TIMEOUT + SLACK });
      assert.deepEqual(r.responses.map((x) => x.status), [400], `${JSON.stringify(bad)}: ${r.text.slice(0, 300)}`);
      assert.ok(r.closed, `${JSON.stringify(bad)}: closed`);
    }
  });

  it('correct chunk framing split across reads, down to one byte per read, is accepted', T, async () => {
    // The CR and LF after a chunk's data may arrive in different reads than the data: the check
    // must look back across a read boundary. Two chunks, then the last chunk, one byte per write.
    const half = Math.floor(PUB.length / 2);
    const body = `${half.toString(16)}\r\n${PUB.slice(0, half)}\r\n${(PUB.length - half).toString(16)}\r\n${PUB.slice(half)}\r\n0\r\n\r\n`;
    const bytes = Buffer.from(post('Transfer-Encoding: chunked\r\n', body));
    const c = await RawConn.open(node.port);
    try {
      for (let i = 0; i < bytes.length; i++) {
        c.write(bytes.subarray(i, i + 1));
        if (i % 7 === 0) await sleep(2); // let the node read in small pieces
      }
      const deadline = Date.now() + 5000;
      while (!c.text().includes('\r\n\r\n') && Date.now() < deadline) await sleep(20);
      assert.deepEqual(parseResponses(c.text()).map((x) => x.status), [202], c.text().slice(0, 300));
    } finally {
      c.destroy();
    }
  });

  it('truncated requests (7 cases): each connection ends by the header deadline, the node keeps serving', T, async () => {
    const parts = [
      'GET /heal',
      'GET /healthz HTTP/1.1\r\nHost: x\r\n',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Half: ab',
      post(`Content-Length: ${PUB.length}\r\n`, PUB.slice(0, 10)),
      post('Transfer-Encoding: chunked\r\n', `${HEX}\r\n${PUB.slice(0, 5)}`),
      upgradeRequest().slice(0, 70),
      'POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n4abc',
    ];
    // Half of them stall with the connection open, half close their sending side right away.
    const results = await Promise.all(parts.map(async (bytes, i) => {
      const c = await RawConn.open(node.port);
      c.write(bytes);
      if (i % 2) c.sock.end();
      const ms = await c.waitClosed(HEADER_TIMEOUT * 2 + SLACK);
      c.destroy();
      return { ms, statuses: c.text().match(/^HTTP\/1\.1 (\d+)/gm) || [] };
    }));
    for (const [i, r] of results.entries()) {
      assert.ok(r.statuses.length <= 1 && r.statuses.every((s) => / (400|408|413)$/.test(s)),
        `case ${i}: ${JSON.stringify(r.statuses)}`);
    }
    await stillServes();
  });

  it('slowloris: 100 connections dribbling header lines all end within 2 x headerTimeout; a normal client is served meanwhile', T, async (t) => {
    const N = 100;
    const conns = await Promise.all(Array.from({ length: N }, () => RawConn.open(node.port)));
    for (const c of conns) c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let stop = false;
    const dribble = (async () => {
      while (!stop) {
        for (const c of conns) if (!c.isClosed) c.write('X-Slow: a\r\n');
        await sleep(150);
      }
    })();
    const served = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      assert.equal((await httpRequest(node, 'GET', '/healthz')).status, 200);
      served.push(Date.now() - t0);
      await sleep(100);
    }
    const closedMs = await Promise.all(conns.map((c) => c.waitClosed(HEADER_TIMEOUT * 2 + SLACK)));
    stop = true;
    await dribble;
    const got408 = conns.filter((c) => /^HTTP\/1\.1 408/.test(c.text())).length;
    for (const c of conns) c.destroy();
    assert.ok(Math.max(...closedMs) <= HEADER_TIMEOUT * 2 + SLACK, `closed after ${Math.max(...closedMs)} ms`);
    assert.ok(Math.min(...closedMs) >= HEADER_TIMEOUT - 100, `closed after ${Math.min(...closedMs)} ms: before the deadline`);
    assert.equal(got408, N, `${got408}/${N} got 408`);
    stats.slowloris = { connections: N, closedMs: summary(closedMs), normalClientMs: summary(served) };
    t.diagnostic(`slowloris: ${N} dribbling connections closed (408) after ${summary(closedMs).p50}-${summary(closedMs).max} ms; ` +
      `/healthz meanwhile in ${summary(served).max} ms max`);
  });

  it('slowloris that sends only CRLFs (allowed before a request line) is closed by the header deadline too', {
    ...T,
      }, async () => {
    const c = await RawConn.open(node.port);
    const timer = setInterval(() => c.write('\r\n'), 300);
    try {
      await c.waitClosed(HEADER_TIMEOUT * 2 + 500);
    } finally {
      clearInterval(timer);
      c.destroy();
    }
  });

  it('idle connections: no byte at all -> closed after headerTimeout; idle keep-alive -> closed after keepAliveTimeout', T, async () => {
    const idle = await RawConn.open(node.port);
    const ka = await RawConn.open(node.port);
    ka.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await ka.until((c) => c.text().includes('ok\n'), 2000, 'the /healthz answer');
    const [idleMs, kaMs] = await Promise.all([idle.waitClosed(HEADER_TIMEOUT + SLACK), ka.waitClosed(KEEPALIVE_TIMEOUT + SLACK)]);
    assert.ok(idleMs >= HEADER_TIMEOUT - 100, `idle closed after ${idleMs} ms`);
    assert.ok(kaMs >= KEEPALIVE_TIMEOUT - 100, `keep-alive closed after ${kaMs} ms`);
    idle.destroy();
    ka.destroy();
  });

  it('a client that pipelines requests and never reads the answers cannot grow the node\'s memory', {
    ...T,
      }, async (t) => {
    const before = await rssMb(node);
    const c = await RawConn.open(node.port);
    c.pause();
    const req = Buffer.from('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    const batch = Buffer.concat(Array(500).fill(req));
    for (let i = 0; i < 10 && !c.isClosed; i++) {
      c.write(batch);
      await sleep(100);
    }
    await sleep(1500);
    const after = await rssMb(node);
    c.destroy();
    t.diagnostic(`5000 pipelined GET /metrics, never read: RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB, connection ${c.isClosed ? 'closed' : 'open'}`);
    assert.ok(after - before < 32, `RSS grew by ${(after - before).toFixed(1)} MB`);
  });

  it('polling bodies over maxBodyBytes: 413 before the body is read, and the session is not harmed', T, async () => {
    const hs = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling');
    const { sid } = JSON.parse(hs.body.slice(1));
    const url = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    // Content-Length over the limit: refused from the headers alone (no body sent at all).
    const r1 = await exchange(node.port, `POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`);
    assert.deepEqual(r1.responses.map((x) => x.status), [413]);
    // Content-Length of 1 GB: same.
    const r2 = await exchange(node.port, `POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n4x`);
    assert.deepEqual(r2.responses.map((x) => x.status), [413]);
    // Chunked, growing past the limit.
    const r3 = await exchange(node.port, `POST ${url} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${'800\r\n'}${'4'.repeat(2048)}\r\n`.repeat(6));
    assert.deepEqual(r3.responses.map((x) => x.status), [413]);
    assert.ok((await metric(node, 'roomcast_payload_too_large_total')) >= 3);
    // A body of exactly maxBodyBytes is accepted by HTTP (then judged by Engine.IO: a noop record).
    const body = `66${'\x1e6'.repeat((MAX_BODY - 2) / 2)}`;
    assert.equal(Buffer.byteLength(body), MAX_BODY);
    const ok = await httpRequest(node, 'POST', url, { headers: { 'Content-Type': 'text/plain' }, body });
    assert.equal(ok.status, 200, ok.body);
    await stillServes();
  });

  const WS_CASES = [
    ['no Sec-WebSocket-Key', { headers: { 'Sec-WebSocket-Key': null } }, 400, 3],
    ['key of 3 bytes', { key: 'abc' }, 400, 3],
    ['key that is not 16 bytes of base64', { key: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, 400, 3],
    ['key of 24 bad base64 characters', { key: '!!!!!!!!!!!!!!!!!!!!!!==' }, 400, 3],
    ['Sec-WebSocket-Version 8', { headers: { 'Sec-WebSocket-Version': '8' } }, 400, 3],
    ['no Sec-WebSocket-Version', { headers: { 'Sec-WebSocket-Version': null } }, 400, 3],
    ['no Upgrade header', { headers: { Upgrade: null } }, 400, 3],
    ['Upgrade: h2c', { headers: { Upgrade: 'h2c' } }, 400, 3],
    ['Connection: keep-alive (no upgrade token)', { headers: { Connection: 'keep-alive' } }, 400, 3],
    ['EIO=3', { query: '?EIO=3&transport=websocket' }, 400, 5],
    ['no EIO', { query: '?transport=websocket' }, 400, 5],
    ['transport flashsocket', { query: '?EIO=4&transport=flashsocket' }, 400, 0],
    ['unknown sid', { query: '?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA' }, 400, 1],
    ['2000-byte sid', { query: `?EIO=4&transport=websocket&sid=${'A'.repeat(2000)}` }, 400, 1],
    ['Origin not in the list', { headers: { Origin: 'http://evil.example' } }, 403, 4],
    ['Origin null', { headers: { Origin: 'null' } }, 403, 4],
    ['Origin with the allowed one as a prefix', { headers: { Origin: 'http://allowed.example.evil.example' } }, 403, 4],
    ['Origin in other case', { headers: { Origin: 'HTTP://ALLOWED.EXAMPLE' } }, 403, 4],
    ['Origin with a trailing slash', { headers: { Origin: 'http://allowed.example/' } }, 403, 4],
    ['Origin with the allowed one after a comma', { headers: { Origin: 'http://evil.example, http://allowed.example' } }, 403, 4],
  ];

  it(`malformed WebSocket handshakes (${WS_CASES.length + 4} cases): an Engine.IO error body, never a 101`, T, async () => {
    const problems = [];
    await pool(WS_CASES, 24, async ([name, opts, status, code]) => {
      const r = await exchange(node.port, upgradeRequest(opts), { ms: 800 });
      const [res] = r.responses;
      // code 4 here is always an Origin refusal, whose message says what to do (src/eio_cors.c)
      const message = ['Transport unknown', 'Session ID unknown', 'Bad handshake method', 'Bad request',
        'Origin not allowed: add it to cors.origins (ROOMCAST_CORS_ORIGINS)', 'Unsupported protocol version'][code];
      if (!res || res.status !== status || res.body !== JSON.stringify({ code, message })) {
        problems.push(`${name}: ${res ? `${res.status} ${res.body}` : 'no answer'}`);
      }
    });
    // Upgrade headers on other paths are plain requests there; a POST upgrade is not a handshake.
    await pool([['/healthz', 'GET', 200], ['/metrics', 'GET', 200], ['/socket.io.evil/', 'GET', 404], ['/socket.io/', 'POST', 400]], 4,
      async ([p, method, want]) => {
        const q = p === '/socket.io/' ? undefined : '';
        const r = await exchange(node.port, upgradeRequest({ path: p, query: q }).replace(/^GET/, method), { ms: 800 });
        if (!r.responses[0] || r.responses[0].status !== want) problems.push(`${method} upgrade on ${p}: ${r.text.slice(0, 60)}`);
      });
    assert.deepEqual(problems, []);
    await stillServes();
  });

  it('Origin allow-list: the listed Origin (and none, for non-browsers) upgrades and polls; another origin is refused', T, async () => {
    const ok = await RawWs.open(node.port, { headers: { Origin: 'http://allowed.example' } });
    assert.match(await ok.nextText('0'), /^0\{"sid"/);
    ok.destroy();
    const none = await RawWs.open(node.port);
    assert.match(await none.nextText('0'), /^0\{"sid"/);
    none.destroy();
    // Polling: another origin's handshake is refused (403, no session); only that refusal names
    // the origin in Access-Control-Allow-Origin, so that the page can read why.
    const evil = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling', { headers: { Origin: 'http://evil.example' } });
    assert.equal(evil.status, 403, evil.body);
    assert.doesNotMatch(evil.body, /sid/);
    assert.equal(evil.headers['access-control-allow-origin'], 'http://evil.example');
    const good = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling', { headers: { Origin: 'http://allowed.example' } });
    assert.equal(good.headers['access-control-allow-origin'], 'http://allowed.example');
    // Upgrading an existing polling session from another Origin is refused too.
    const { sid } = JSON.parse(good.body.slice(1));
    const up = await exchange(node.port, upgradeRequest({ query: `?EIO=4&transport=websocket&sid=${sid}`, headers: { Origin: 'http://evil.example' } }), { ms: 800 });
    assert.equal(up.responses[0] && up.responses[0].status, 403, up.text.slice(0, 100));
    // A folded header cannot smuggle a header line into the echoed preflight answer.
    const pre = await exchange(node.port, 'OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n' +
      'Origin: http://allowed.example\r\nAccess-Control-Request-Headers: x-a\r\n X-Injected: yes\r\nConnection: close\r\n\r\n');
    assert.equal(pre.responses[0].status, 204);
    assert.ok(!/\r\nX-Injected/i.test(pre.responses[0].head), pre.responses[0].head);
  });

  it('an upgrade request with frames in the same packet: the frames are read after the 101', T, async () => {
    const tok = token({ sub: 'eager' });
    const ws = await RawWs.open(node.port, {
      autoPong: true,
      extra: Buffer.concat([frame({ opcode: OP.TEXT, payload: `40${JSON.stringify({ token: tok })}` }),
        frame({ opcode: OP.TEXT, payload: '421["echo","early"]' })]),
    });
    assert.match(await ws.nextText('0'), /^0\{/);
    assert.match(await ws.nextText('40'), /^40\{"sid":/);
    assert.equal(await ws.nextText('43'), '431["early"]');
    ws.destroy();
  });

  describe('TLS listener', () => {
    let tlsNode;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-hostile-tls-'));

    before(async () => {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
        '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
      tlsNode = await startNode({ config: 'hostile_http.json', tls: true, env: { ROOMCAST_TLS_CERT: cert, ROOMCAST_TLS_KEY: key } });
    });
    afterEach(() => tlsNode && checkAlive(tlsNode));
    after(async () => {
      if (tlsNode) await tlsNode.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('garbage, plain HTTP, truncated and SSLv2-style hellos are dropped; 100 parallel handshakes are served', T, async (t) => {
      const garbage = [
        'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
        Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01]).toString('latin1'), // record length 65535, truncated
        Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15]).toString('latin1'), // SSLv2 hello header
        Buffer.from([0x16, 0x03, 0x03, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]).toString('latin1'), // tiny bogus hello
        '\x00'.repeat(64),
      ];
      const results = await Promise.all(garbage.map((g) => exchange(tlsNode.port, g, { ms: HEADER_TIMEOUT + SLACK })));
      for (const [i, r] of results.entries()) {
        assert.ok(r.closed, `garbage ${i}: still open`);
        assert.ok(!r.text.startsWith('HTTP/'), `garbage ${i}: a plaintext answer`);
      }
      const t0 = Date.now();
      const codes = await Promise.all(Array.from({ length: 100 }, () =>
        exchange(tlsNode.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { tls: true, ms: 10000 })
          .then((r) => (r.responses[0] ? r.responses[0].status : 0))));
      assert.deepEqual([...new Set(codes)], [200]);
      t.diagnostic(`100 parallel TLS handshakes + /healthz in ${Date.now() - t0} ms`);
    });

    it('slowloris inside TLS: a completed handshake that dribbles headers gets 408 by the deadline', T, async () => {
      const c = await RawConn.open(tlsNode.port, { tls: true });
      c.write('GET /healthz HTTP/1.1\r\n');
      const timer = setInterval(() => c.write('X-Slow: a\r\n'), 150);
      try {
        const ms = await c.waitClosed(HEADER_TIMEOUT * 2 + SLACK);
        assert.ok(ms >= HEADER_TIMEOUT - 100, `closed after ${ms} ms`);
        assert.match(c.text(), /^HTTP\/1\.1 408/);
      } finally {
        clearInterval(timer);
        c.destroy();
      }
    });

    it('slowloris in the TLS handshake: a ClientHello dribbled a byte at a time is cut off by the header deadline', {
      ...T,
          }, async () => {
      const tls = require('node:tls');
      const net = require('node:net');
      // Capture a real ClientHello from node's TLS client against a dummy listener.
      const hello = await new Promise((resolve) => {
        const srv = net.createServer((s) => s.once('data', (d) => { resolve(d); s.destroy(); srv.close(); }));
        srv.listen(0, '127.0.0.1', () => {
          const cl = tls.connect({ port: srv.address().port, host: '127.0.0.1', rejectUnauthorized: false });
          cl.on('error', () => {});
        });
      });
      const c = await RawConn.open(tlsNode.port);
      let i = 0;
      const timer = setInterval(() => { if (i < hello.length - 1) c.write(hello.subarray(i, ++i)); }, 300);
      try {
        await c.waitClosed(HEADER_TIMEOUT * 2 + 500);
      } finally {
        clearInterval(timer);
        c.destroy();
      }
    });
  });
});
