'use strict';
// TLS on the listener (tls.cert / tls.key): the official client over wss:// and https polling
// with upgrade, verifying the node's certificate against a CA the test made; plain HTTP to a
// TLS port gets nothing useful; an API publish over https reaches a wss client.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const {
  startNode, client, connected, closeClients, settle, token, emitAck, waitFor, publishOk, sleep,
} = require('./lib/node');

const T = { timeout: 20000 };

function makeCert(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
  { stdio: 'ignore' });
  return { key, cert, pem: fs.readFileSync(cert) };
}

describe('TLS listener', () => {
  let node;
  let tls;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-tls-'));
  before(async () => {
    tls = makeCert(dir);
    node = await startNode({ config: 'tls.json', tls: true,
      env: { ROOMCAST_TLS_CERT: tls.cert, ROOMCAST_TLS_KEY: tls.key } });
  });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

  for (const transports of [['websocket'], ['polling', 'websocket']]) {
    it(`socket.io-client connects over TLS (${transports.join(' then ')}) with a verified certificate`, T, async () => {
      const s = client(node.url, { auth: { token: token({ sub: 'tls-user' }) }, transports, ca: tls.pem });
      const upgraded = transports.length > 1
        ? new Promise((resolve) => s.io.on('open', () => s.io.engine.on('upgrade', resolve))) : null;
      await connected(s);
      const [echo] = await emitAck(s, 'echo', { secret: 'over tls', bin: Buffer.from([1, 2, 3]) });
      assert.equal(echo.secret, 'over tls');
      assert.deepEqual([...echo.bin], [1, 2, 3]);
      if (upgraded) {
        await upgraded;
        assert.equal(s.io.engine.transport.name, 'websocket');
      }
      await emitAck(s, 'join', 'tls-room');
      const got = waitFor(s, 'news');
      await publishOk(node, { room: 'tls-room', event: 'news', data: { n: 1 } });
      assert.deepEqual(await got, { n: 1 });
    });
  }

  it('refuses a client that does not trust the certificate', T, async () => {
    const s = client(node.url, { auth: { token: token({ sub: 'tls-user' }) }, transports: ['websocket'] });
    await assert.rejects(connected(s), /websocket error|certificate|self.signed/i);
  });

  it('plain HTTP on the TLS port gets no HTTP answer and the node keeps serving', T, async () => {
    const reply = await new Promise((resolve) => {
      const sock = net.connect(node.port, '127.0.0.1', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      const chunks = [];
      sock.on('data', (c) => chunks.push(c));
      sock.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
      sock.on('error', () => resolve(Buffer.concat(chunks).toString('latin1')));
      setTimeout(() => sock.destroy(), 2000);
    });
    assert.ok(!reply.startsWith('HTTP/1.1 200'), 'no plaintext answer on a TLS port');
    await sleep(50);
    const s = client(node.url, { auth: { token: token({ sub: 'after' }) }, transports: ['websocket'], ca: tls.pem });
    await connected(s);
  });
});
