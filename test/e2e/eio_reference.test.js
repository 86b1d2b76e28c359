'use strict';
// Engine.IO details where roomcast does what the reference server (socket.io's engine.io) does,
// and which the official protocol suite (test/protocol/) checks; here with exact packets, so a
// regression shows up in `make e2e` with a precise message:
//  - a client's close packet over polling: the GET the client still holds is answered with a
//    noop `6` (a session the server ends answers it with `1`);
//  - a second WebSocket for a session already upgraded: accepted (101), then closed at once,
//    while the session's own WebSocket goes on.
//
// config/default.json with pings every 5 s (they must not answer the held GETs first), a 1 s
// connect timeout, and "/" anonymous with an "echo" event answered by ack.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startNode, httpRequest, checkAlive, sleep } = require('./lib/node');
const { RawWs } = require('./lib/hostile');

const T = { timeout: 20000 };

describe('Engine.IO as the reference server does it', () => {
  let node;

  before(async () => {
    node = await startNode({
      config: 'default.json',
      overrides: {
        engine: { pingInterval: 5000, pingTimeout: 5000, connectTimeout: 1000 },
        namespaces: { '/': { auth: 'none', userRoom: null, events: { echo: [{ ackArgs: '{args}' }] } } },
      },
    });
  });
  afterEach(() => node && checkAlive(node));
  after(async () => { if (node) await node.stop(); });

  // ---- polling helpers (one request per connection) ----
  const pollUrl = (sid) => `/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;
  async function pollOpen() {
    const res = await httpRequest(node, 'GET', pollUrl());
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body.slice(1)).sid;
  }
  const pollPost = (sid, body) =>
    httpRequest(node, 'POST', pollUrl(sid), { headers: { 'Content-Type': 'text/plain;charset=UTF-8' }, body });
  const pollGet = (sid) => httpRequest(node, 'GET', pollUrl(sid));

  it('polling: a client close packet answers the held GET with a noop "6"; the session is gone', T, async () => {
    const sid = await pollOpen();
    const held = pollGet(sid);
    await sleep(100); // the GET is held by now
    const post = await pollPost(sid, '1');
    assert.equal(post.status, 200, post.body);
    const get = await held;
    assert.equal(get.status, 200);
    assert.equal(get.body, '6', 'engine.io answers the pending poll with a noop when the client closes');
    const gone = await pollGet(sid);
    assert.equal(gone.status, 400);
    assert.deepEqual(gone.json(), { code: 1, message: 'Session ID unknown' });
  });

  it('polling: a session the server ends (connect timeout) still answers the held GET with "1"', T, async () => {
    const sid = await pollOpen();
    const get = await pollGet(sid); // held until the 1 s connect timeout closes the session
    assert.equal(get.status, 200);
    assert.equal(get.body, '1');
    assert.equal((await pollGet(sid)).status, 400);
  });

  it('a second WebSocket for an upgraded session: 101, then closed; the upgraded one goes on', T, async () => {
    const sid = await pollOpen();
    const query = `?EIO=4&transport=websocket&sid=${sid}`;
    const ws = await RawWs.open(node.port, { query });
    ws.sendText('2probe');
    assert.equal(await ws.nextText('3'), '3probe');
    ws.sendText('5');
    await sleep(50); // the upgrade is complete
    const second = await RawWs.open(node.port, { query }); // throws unless 101
    assert.equal(second.status, 101);
    assert.equal((await second.closeFrame()).code, 1000);
    await second.conn.waitClosed(3000);
    // The session and its own WebSocket are untouched.
    ws.sendText('40');
    assert.match(await ws.nextText('40'), /^40\{"sid":"[^"]+"\}$/);
    ws.sendText('421["echo","still here"]');
    assert.equal(await ws.nextText('43'), '431["still here"]');
    assert.equal(ws.isClosed, false);
    ws.destroy();
  });
});
