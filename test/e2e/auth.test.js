'use strict';
// JWT authentication of the Socket.IO CONNECT: every failure is a CONNECT_ERROR
// {"message":"unauthorized","data":{"code":<reason>}} and joins no room.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  startNode, connect, connectError, closeClients, settle, token, rawToken, nowS, waitFor, expectNoEvent,
  emitAck, publishOk, writeTemp, sleep, JWT_SECRET,
} = require('./lib/node');
const { RawEio } = require('./lib/raw');

const T = { timeout: 20000 };
const ISS = 'https://auth.e2e.example'; // as in config/auth.json
const AUD = 'roomcast-e2e';

async function expectUnauthorized(url, opts, code) {
  const err = await connectError(url, opts);
  assert.equal(err.message, 'unauthorized', `expected unauthorized/${code}, got ${err.message} ${JSON.stringify(err.data)}`);
  assert.deepEqual(err.data, { code }, `CONNECT_ERROR data for ${code}`);
  return err;
}

describe('auth: HS256 with issuer and audience', () => {
  let node;
  const good = (claims = {}, opts = {}) => token({ iss: ISS, aud: AUD, sub: 'alice', rooms: ['r*'], ...claims }, opts);

  before(async () => { node = await startNode({ config: 'auth.json' }); });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('a valid token connects and the socket is in its user room', T, async () => {
    const socket = await connect(node.url, { auth: { token: good() } });
    const got = waitFor(socket, 'dm');
    await publishOk(node, { ns: '/', room: 'user:alice', event: 'dm', data: 1 });
    assert.equal(await got, 1);
  });

  it('missing_token: no auth, empty auth object, empty token', T, async () => {
    await expectUnauthorized(node.url, {}, 'missing_token');
    await expectUnauthorized(node.url, { auth: {} }, 'missing_token');
    await expectUnauthorized(node.url, { auth: { token: '' } }, 'missing_token');
  });

  it('malformed_token', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: 'not-a-jwt' } }, 'malformed_token');
  });

  it('bad_signature: signed with another secret, or payload tampered', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({}, { secret: 'not-the-secret' }) } }, 'bad_signature');
    const [h, , s] = good().split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'root', iss: ISS, aud: AUD, exp: nowS() + 60 })).toString('base64url')}.${s}`;
    await expectUnauthorized(node.url, { auth: { token: forged } }, 'bad_signature');
  });

  it('expired (beyond the leeway) / accepted within the leeway', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({ exp: nowS() - 3600 }) } }, 'expired');
    const s = await connect(node.url, { auth: { token: good({ exp: nowS() - 1 }) } }); // leeway 5 s
    assert.ok(s.connected);
  });

  it('not_yet_valid (nbf beyond the leeway) / accepted within the leeway', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({ nbf: nowS() + 3600 }) } }, 'not_yet_valid');
    const s = await connect(node.url, { auth: { token: good({ nbf: nowS() + 2 }) } });
    assert.ok(s.connected);
  });

  it('bad_issuer: wrong or missing iss', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({ iss: 'https://evil.example' }) } }, 'bad_issuer');
    await expectUnauthorized(node.url, { auth: { token: good({ iss: undefined }) } }, 'bad_issuer');
  });

  it('bad_audience: wrong or missing aud; an aud array containing ours is fine', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({ aud: 'someone-else' }) } }, 'bad_audience');
    await expectUnauthorized(node.url, { auth: { token: good({ aud: undefined }) } }, 'bad_audience');
    const s = await connect(node.url, { auth: { token: good({ aud: ['other', AUD] }) } });
    assert.ok(s.connected);
  });

  it('alg_not_allowed: alg none (hand-made, empty or any signature), and HS512 when only HS256 is allowed', T, async () => {
    const claims = { sub: 'alice', iss: ISS, aud: AUD, exp: nowS() + 600 };
    await expectUnauthorized(node.url, { auth: { token: rawToken({ alg: 'none', typ: 'JWT' }, claims, { signature: '' }) } },
      'alg_not_allowed');
    // a decodable, non-empty signature does not make alg none acceptable
    const sig = Buffer.from('not a signature').toString('base64url');
    await expectUnauthorized(node.url, { auth: { token: rawToken({ alg: 'none', typ: 'JWT' }, claims, { signature: sig }) } },
      'alg_not_allowed');
    await expectUnauthorized(node.url, { auth: { token: rawToken({ alg: 'none', typ: 'JWT' }, claims) } }, 'alg_not_allowed');
    await expectUnauthorized(node.url, { auth: { token: good({}, { algorithm: 'HS512' }) } }, 'alg_not_allowed');
  });

  it('missing_user_claim: a valid token without sub', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: good({ sub: undefined }) } }, 'missing_user_claim');
  });

  it('token from the Authorization: Bearer handshake header (websocket transport)', T, async () => {
    const socket = await connect(node.url, {
      transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${good({ sub: 'hank' })}` },
    });
    const got = waitFor(socket, 'dm');
    await publishOk(node, { ns: '/', room: 'user:hank', event: 'dm', data: 'via header' });
    assert.equal(await got, 'via header');
    // a bad token in the header is checked just the same
    await expectUnauthorized(node.url, {
      transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${good({}, { secret: 'nope' })}` },
    }, 'bad_signature');
  });

  it('auth.token takes precedence over the Authorization header', T, async () => {
    const socket = await connect(node.url, {
      transports: ['websocket'],
      auth: { token: good({ sub: 'ivy' }) },
      extraHeaders: { Authorization: 'Bearer garbage' },
    });
    const got = waitFor(socket, 'dm');
    await publishOk(node, { ns: '/', room: 'user:ivy', event: 'dm', data: 'auth wins' });
    assert.equal(await got, 'auth wins');
  });

  it('?token= is ignored when tokenInQuery is false (the default)', T, async () => {
    await expectUnauthorized(node.url, { query: { token: good() } }, 'missing_token');
  });

  it('after connect_error the client socket receives nothing and is in no room', T, async () => {
    const err = await expectUnauthorized(node.url, { auth: { token: good({ sub: 'mallory', exp: nowS() - 3600 }) } }, 'expired');
    const socket = err.socket;
    assert.equal(socket.connected, false);
    const quiet = [expectNoEvent(socket, 'dm', 400), expectNoEvent(socket, 'all', 400)];
    await publishOk(node, { ns: '/', room: 'user:mallory', event: 'dm', data: 'leak' });
    await publishOk(node, { ns: '/', broadcast: true, event: 'all', data: 'leak' });
    await Promise.all(quiet);
  });

  it('after CONNECT_ERROR, a raw connection kept open gets no packets for the user room or namespace', T, async () => {
    const raw = await RawEio.open(node.wsUrl, { autoPong: true });
    try {
      raw.send(`40${JSON.stringify({ token: good({ sub: 'mallory', exp: nowS() - 3600 }) })}`);
      const reply = await raw.nextStartingWith('44');
      assert.deepEqual(JSON.parse(reply.slice(2)), { message: 'unauthorized', data: { code: 'expired' } });
      await publishOk(node, { ns: '/', room: 'user:mallory', event: 'dm', data: 'leak' });
      await publishOk(node, { ns: '/', broadcast: true, event: 'all', data: 'leak' });
      await sleep(400);
      assert.deepEqual(raw.pending().filter((m) => typeof m !== 'string' || !m.startsWith('6')), [],
        'nothing may be sent to a socket whose CONNECT was refused');
      // the refused socket may still connect with a good token on the same Engine.IO connection
      raw.send(`40${JSON.stringify({ token: good({ sub: 'mallory' }) })}`);
      const ok = await raw.nextStartingWith('40');
      assert.equal(typeof JSON.parse(ok.slice(2)).sid, 'string');
      await publishOk(node, { ns: '/', room: 'user:mallory', event: 'dm', data: 'now ok' });
      assert.equal(await raw.nextStartingWith('42'), '42["dm","now ok"]');
    } finally {
      raw.close();
    }
  });
});

describe('auth: RS256 only, with a public key file', () => {
  let node;
  let keys;
  let otherKeys;

  before(async () => {
    keys = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    otherKeys = crypto.generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const publicKeyFile = writeTemp('jwt-public.pem', keys.publicKey);
    node = await startNode({ config: 'auth-rs256.json', overrides: { jwt: { publicKeyFile } } });
  });
  afterEach(() => settle(node));
  after(async () => { closeClients(); if (node) await node.stop(); });

  it('a good RS256 token is accepted', T, async () => {
    const socket = await connect(node.url, {
      auth: { token: token({ sub: 'rsa-user', rooms: ['r*'] }, { algorithm: 'RS256', key: keys.privateKey }) },
    });
    assert.deepEqual(await emitAck(socket, 'join', 'r1'), [{ ok: true, room: 'r1' }]);
    const got = waitFor(socket, 'dm');
    await publishOk(node, { ns: '/', room: 'user:rsa-user', event: 'dm', data: 'rsa' });
    assert.equal(await got, 'rsa');
  });

  it('HS256 signed with the RS256 public key PEM as HMAC secret -> alg_not_allowed', T, async () => {
    const forged = rawToken({ alg: 'HS256', typ: 'JWT' }, { sub: 'attacker', exp: nowS() + 600 }, { secret: keys.publicKey });
    await expectUnauthorized(node.url, { auth: { token: forged } }, 'alg_not_allowed');
  });

  it('HS256 with the configured HS secret is not allowed either when only RS256 is', T, async () => {
    await expectUnauthorized(node.url, { auth: { token: token({ sub: 'x' }, { secret: JWT_SECRET }) } }, 'alg_not_allowed');
  });

  it('RS256 signed by another key -> bad_signature', T, async () => {
    await expectUnauthorized(node.url,
      { auth: { token: token({ sub: 'x' }, { algorithm: 'RS256', key: otherKeys.privateKey }) } }, 'bad_signature');
  });
});
