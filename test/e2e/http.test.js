'use strict';
// Plain HTTP: health, readiness, metrics, routing errors, header limits, Engine.IO error bodies,
// CORS. config/http.json: http.maxHeaderBytes 4096, cors.origins ["http://allowed.example"].

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { startNode, httpRequest, checkAlive } = require('./lib/node');

const T = { timeout: 20000 };
const ALLOWED = 'http://allowed.example';

// Sends raw bytes on a fresh TCP connection and returns everything read until the peer closes
// (or until timeoutMs, then whatever arrived).
function rawHttp(port, text, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); }, timeoutMs);
    sock.on('data', (c) => {
      chunks.push(c);
      // one response is enough once its headers are in
      if (Buffer.concat(chunks).includes('\r\n\r\n')) {
        clearTimeout(timer);
        sock.destroy();
        resolve(Buffer.concat(chunks).toString('latin1'));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      if (chunks.length) resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(e);
    });
    sock.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
    sock.write(text);
  });
}

function expectEioError(res, status, code, message) {
  assert.equal(res.status, status, `status: ${res.status} ${res.body}`);
  assert.match(String(res.headers['content-type']), /application\/json/, `content-type ${res.headers['content-type']}`);
  assert.deepEqual(res.json(), { code, message });
}

describe('HTTP endpoints', () => {
  let node;

  before(async () => { node = await startNode({ config: 'http.json' }); });
  afterEach(() => node && checkAlive(node));
  after(async () => { if (node) await node.stop(); });

  it('/healthz 200', T, async () => {
    assert.equal((await httpRequest(node, 'GET', '/healthz')).status, 200);
  });

  it('/readyz 200 while accepting clients (embedded backplane)', T, async () => {
    assert.equal((await httpRequest(node, 'GET', '/readyz')).status, 200);
  });

  it('/metrics 200, Prometheus text with roomcast_connections', T, async () => {
    const res = await httpRequest(node, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, /^roomcast_connections/m);
    assert.match(res.body, /^# TYPE roomcast_\w+ (counter|gauge|histogram)$/m);
  });

  it('unknown path 404', T, async () => {
    assert.equal((await httpRequest(node, 'GET', '/nope')).status, 404);
    assert.equal((await httpRequest(node, 'GET', '/healthzz')).status, 404);
  });

  it('wrong method on /healthz 405', T, async () => {
    const res = await httpRequest(node, 'POST', '/healthz', { body: '' });
    assert.equal(res.status, 405);
  });

  it('oversize request headers 431', T, async () => {
    const big = 'a'.repeat(8192);
    const reply = await rawHttp(node.port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`);
    assert.match(reply, /^HTTP\/1\.1 431 /, `reply: ${JSON.stringify(reply.slice(0, 200))}`);
    // the node is still fine
    assert.equal((await httpRequest(node, 'GET', '/healthz')).status, 200);
  });

  it('a garbage request line gets 400 (or a closed connection), and the node keeps serving', T, async () => {
    const reply = await rawHttp(node.port, 'BLAH\r\n\r\n');
    if (reply.length) assert.match(reply, /^HTTP\/1\.[01] 400 /, `reply: ${JSON.stringify(reply.slice(0, 200))}`);
    assert.equal((await httpRequest(node, 'GET', '/healthz')).status, 200);
  });

  it('polling handshake: 200, open packet with sid, upgrades, timings, maxPayload', T, async () => {
    const res = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling&t=abc');
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body[0], '0', `body ${res.body}`);
    const open = JSON.parse(res.body.slice(1));
    assert.equal(typeof open.sid, 'string');
    assert.ok(open.sid.length >= 16, `sid ${open.sid} looks guessable`);
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, 500);
    assert.equal(open.pingTimeout, 400);
    assert.equal(typeof open.maxPayload, 'number');
  });

  it('Engine.IO error: unknown transport -> 400 {"code":0,"message":"Transport unknown"}', T, async () => {
    expectEioError(await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=carrier-pigeon'),
      400, 0, 'Transport unknown');
    expectEioError(await httpRequest(node, 'GET', '/socket.io/?EIO=4'), 400, 0, 'Transport unknown');
  });

  it('Engine.IO error: unknown sid -> 400 {"code":1,"message":"Session ID unknown"}', T, async () => {
    expectEioError(await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling&sid=doesnotexist0000000'),
      400, 1, 'Session ID unknown');
    expectEioError(await httpRequest(node, 'POST', '/socket.io/?EIO=4&transport=polling&sid=doesnotexist0000000', {
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body: '40',
    }), 400, 1, 'Session ID unknown');
  });

  it('Engine.IO error: POST handshake -> 400 {"code":2,"message":"Bad handshake method"}', T, async () => {
    expectEioError(await httpRequest(node, 'POST', '/socket.io/?EIO=4&transport=polling', {
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body: '40',
    }), 400, 2, 'Bad handshake method');
  });

  it('Engine.IO error: EIO=3 -> 400 {"code":5,"message":"Unsupported protocol version"}', T, async () => {
    expectEioError(await httpRequest(node, 'GET', '/socket.io/?EIO=3&transport=polling'),
      400, 5, 'Unsupported protocol version');
    expectEioError(await httpRequest(node, 'GET', '/socket.io/?transport=polling'),
      400, 5, 'Unsupported protocol version');
  });

  it('CORS: an allowed origin is echoed with credentials on the handshake', T, async () => {
    const res = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling', { headers: { Origin: ALLOWED } });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['access-control-allow-origin'], ALLOWED);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.match(String(res.headers.vary), /Origin/i, 'Vary: Origin');
  });

  it('CORS: OPTIONS preflight -> 204 with the allow headers', T, async () => {
    const res = await httpRequest(node, 'OPTIONS', '/socket.io/?EIO=4&transport=polling', {
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'authorization,content-type',
      },
    });
    assert.equal(res.status, 204, res.body);
    assert.equal(res.headers['access-control-allow-origin'], ALLOWED);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    assert.match(String(res.headers['access-control-allow-methods']), /POST/);
    assert.match(String(res.headers['access-control-allow-headers']).toLowerCase(), /authorization/);
  });

  it('CORS: a disallowed origin is refused with 403 and a reason the page can read; its preflight gets nothing', T, async () => {
    for (const transport of ['polling', 'websocket']) {
      const headers = { Origin: 'http://evil.example' };
      if (transport === 'websocket') {
        Object.assign(headers, { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' });
      }
      const res = await httpRequest(node, 'GET', `/socket.io/?EIO=4&transport=${transport}`, { headers });
      assert.equal(res.status, 403, `${transport}: ${res.body}`);
      assert.deepEqual(res.json(), { code: 4, message: 'Origin not allowed: add it to cors.origins (ROOMCAST_CORS_ORIGINS)' });
      // Only the refusal carries the origin (so that a browser lets the page read it); no session.
      assert.equal(res.headers['access-control-allow-origin'], 'http://evil.example');
      assert.doesNotMatch(res.body, /sid/);
    }
    const pre = await httpRequest(node, 'OPTIONS', '/socket.io/?EIO=4&transport=polling', {
      headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
    // An origin that could not be echoed safely is refused without the header.
    const odd = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling', { headers: { Origin: 'http://a b' } });
    assert.equal(odd.status, 403);
    assert.equal(odd.headers['access-control-allow-origin'], undefined);
  });

  it('CORS headers are present on Engine.IO error responses too', T, async () => {
    const res = await httpRequest(node, 'GET', '/socket.io/?EIO=4&transport=polling&sid=doesnotexist0000000', {
      headers: { Origin: ALLOWED },
    });
    assert.equal(res.status, 400);
    assert.equal(res.headers['access-control-allow-origin'], ALLOWED);
  });
});
