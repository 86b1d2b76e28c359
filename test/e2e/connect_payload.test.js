'use strict';
// The CONNECT packet's auth payload as seen by templates ({auth}), onConnect actions, and the
// "optional" auth mode. config/connect_payload.json: "/" auth optional with an onConnect rule
// {"emit":{"event":"auth","data":"{auth}"}}; "/req" auth required with a templated greeting.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const {
  startNode, client, connected, connectError, closeClients, settle, token, waitFor, emitAck,
} = require('./lib/node');

const T = { timeout: 20000 };

describe('CONNECT payload and onConnect', () => {
  let node;

  before(async () => { node = await startNode({ config: 'connect_payload.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  for (const transport of ['websocket', 'polling']) {
    it(`onConnect emits the auth payload back to an anonymous socket (${transport})`, T, async () => {
      const auth = { anon: 'yes', n: 1, nested: { list: [1, 'two', null, true], 'é': 'ü' } };
      const s = client(node.url, { auth, transports: [transport] });
      const got = waitFor(s, 'auth'); // listen before the CONNECT reply: onConnect may come right after it
      await connected(s);
      assert.deepEqual(await got, auth);
      const [who] = await emitAck(s, 'whoami');
      assert.equal(who.anon, 'yes');
      assert.ok(who.user === undefined || who.user === null || who.user === '',
        `an anonymous socket has no user, got ${JSON.stringify(who.user)}`);
    });
  }

  it('with a valid token on an optional namespace the user is known and {auth} includes the token', T, async () => {
    const tok = token({ sub: 'alice' });
    const s = client(node.url, { auth: { token: tok, anon: 'no' } });
    const got = waitFor(s, 'auth');
    await connected(s);
    assert.deepEqual(await got, { token: tok, anon: 'no' });
    const [who] = await emitAck(s, 'whoami');
    assert.deepEqual(who, { user: 'alice', anon: 'no' });
  });

  it('an invalid token on an optional namespace is still refused', T, async () => {
    const err = await connectError(node.url, { auth: { token: token({ sub: 'x' }, { secret: 'wrong' }) } });
    assert.equal(err.message, 'unauthorized');
    assert.deepEqual(err.data, { code: 'bad_signature' });
  });

  // Socket.IO's socket.handshake.auth is {} when the client sends no auth payload; so is {auth}.
  it('no auth payload at all: connects, {auth} is {} (as socket.handshake.auth)', T, async () => {
    const s = client(node.url, {});
    const got = waitFor(s, 'auth');
    await connected(s);
    assert.deepEqual(await got, {});
    assert.deepEqual(await emitAck(s, 'myauth'), [{}]);
  });

  it('a payload that held only the token: {auth} in event rules is {} (the token is kept out)', T, async () => {
    const s = client(node.url, { auth: { token: token({ sub: 'carol' }) } });
    await connected(s);
    assert.deepEqual(await emitAck(s, 'myauth'), [{}]);
    const [who] = await emitAck(s, 'whoami');
    assert.deepEqual(who, { user: 'carol' });
  });

  it('onConnect templates on a required namespace: user, claims, auth fields, literal braces', T, async () => {
    const s = client(`${node.url}/req`, { auth: { token: token({ sub: 'bob', role: 'editor' }), extra: { k: [1, 2] } } });
    const got = waitFor(s, 'hello');
    await connected(s);
    assert.deepEqual(await got, { user: 'bob', role: 'editor', extra: { k: [1, 2] }, text: 'hi bob, {literal}' });
  });
});
