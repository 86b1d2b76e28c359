'use strict';
// Hostile Engine.IO / Socket.IO clients (issue 9): malformed packets of both layers, binary
// attachment abuse, polling abuse, namespace abuse, 10,000 forged, expired and otherwise bad
// tokens, and 1,000 joins to rooms the token does not allow, followed by proof that the
// attacker received nothing meant for other users. Raw connections (lib/hostile.js) so that
// thousands of cases take seconds.
//
// config/hostile_sio.json: maxPayload 10000, connectTimeout 10 s, "/" joins only what the
// token's `rooms` claim allows; "/chat" exists for the namespace cases.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const jwt = require('jsonwebtoken');
const {
  startNode, connect, client, connected, closeClients, checkAlive, token, rawToken, emitAck, httpRequest,
  publishOk, collect, sleep, nowS, JWT_SECRET, waitFor, waitForArgs,
} = require('./lib/node');
const {
  RawWs, frame, OP, sioConnect, metrics, sumFamily, rssMb, pool, waitUntil,
} = require('./lib/hostile');

const T = { timeout: 60000 };
const MAX = 10000;

describe('hostile Socket.IO clients', () => {
  let node;
  const stats = {};

  before(async () => { node = await startNode({ config: 'hostile_sio.json' }); });
  afterEach(() => node && checkAlive(node));
  after(async () => {
    closeClients();
    if (node) await node.stop();
    console.log(`# hostile_sio stats ${JSON.stringify(stats)}`);
  });

  const tok = (sub = 'sio-user', rooms = []) => token({ sub, rooms });

  async function stillServes() {
    const s = await connect(node.url, { auth: { token: tok('ok-user') }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(s, 'echo', 'alive'), ['alive']);
    s.disconnect();
  }

  // ---- polling helpers (one request per connection) ----
  const pollUrl = (sid) => `/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;
  async function pollOpen() {
    const res = await httpRequest(node, 'GET', pollUrl());
    assert.equal(res.status, 200, res.body);
    return JSON.parse(res.body.slice(1)).sid;
  }
  const pollPost = (sid, body, headers = { 'Content-Type': 'text/plain;charset=UTF-8' }) =>
    httpRequest(node, 'POST', pollUrl(sid), { headers, body });
  const pollGet = (sid, timeout = 5000) => httpRequest(node, 'GET', pollUrl(sid), { timeout });

  // [packet text sent after a successful CONNECT on "/", expected outcome]
  // 'close': the Engine.IO session is closed (close frame, then TCP close).
  // a string: the next non-ping text is exactly that, and the session stays usable.
  // null: nothing comes back and the session stays usable.
  const PACKETS = [
    ['4', 'close'], ['47', 'close'], ['4a', 'close'], ['4 2["echo"]', 'close'],
    ['42', 'close'], ['42[]', 'close'], ['42{}', 'close'], ['42"echo"', 'close'], ['42[1', 'close'],
    ['42["echo"]x', 'close'], ['42["echo"] ["echo"]', 'close'], ['42["connect"]', 'close'], ['42["disconnect"]', 'close'],
    ['42["newListener"]', 'close'], ['42[null]', 'close'], ['42[{}]', 'close'], ['42[true]', 'close'], ['42[["echo"]]', 'close'],
    ['42["a\\u0000b"]', 'close'], ['42/nope,["echo"]', 'close'], ['42/chat,["echo"]', 'close'], ['42/\u0001,["echo"]', 'close'],
    [`40${JSON.stringify({ token: token({ sub: 'twice' }) })}`, 'close'], ['44{"message":"x"}', 'close'],
    ['43', 'close'], ['43[1]', 'close'], ['431', 'close'], ['431{}', 'close'],
    ['421234567890123456["echo",1]', 'close'], ['45-["echo",1]', 'close'], ['450-["echo",1]', 'close'],
    ['4511-["echo",1]', 'close'], ['45x-["echo",1]', 'close'], ['451["echo",1]', 'close'],
    ['451-["echo",{"_placeholder":true,"num":1}]', 'close'], ['451-["echo",{"_placeholder":true}]', 'close'],
    ['451-["echo",{"_placeholder":true,"num":"0"}]', 'close'], ['451-["echo",{"_placeholder":true,"num":0.5}]', 'close'],
    ['451-["echo",{"_placeholder":true,"num":-1}]', 'close'],
    [`42["echo",${'['.repeat(2000)}${']'.repeat(2000)}]`, 'close'],
    [`42["echo",${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}]`, 'close'],
    ['42["echo","\\ud800"]', 'close'], ['42["echo",+1]', 'close'], ['42["echo",01]', 'close'], ['42["echo",.5]', 'close'],
    ["42['echo']", 'close'], ['42["echo",NaN]', 'close'], ['42["echo",undefined]', 'close'], ['42["echo","\\x41"]', 'close'],
    ['42["echo","a\tb"]', 'close'], ['\uFEFF42["echo"]', 'close'], ['42\uFEFF["echo"]', 'close'],
    ['40/chat,"not an object"', 'close'], ['41{"x":1}', 'close'],
    // Survivable: answered, or ignored, and the session goes on.
    ['42["nope"]', null], ['421["nope"]', '431[{"ok":false,"error":"unknown_event"}]'],
    ['42123456789012345["echo",1]', '43123456789012345[1]'], ['42999["echo",1e999]', null],
    ['43999[1]', null], ['42[5,"x"]', null], ['4210[5,"x"]', '4310[{"ok":false,"error":"unknown_event"}]'],
    ['422["echo","\\u00e9\\ud83d\\ude00"]', '432["é😀"]'], ['423["echo",{"__proto__":{"x":1}}]', '433[{"__proto__":{"x":1}}]'],
    ['424["echo",{"_placeholder":true,"num":0}]', '434[{"_placeholder":true,"num":0}]'],
    [`425["echo","${'x'.repeat(MAX - 20)}"]`, `435["${'x'.repeat(MAX - 20)}"]`],
    ['426["whoami",{"user":"admin"}]', null], // checked below: the answer is the token's user
  ];

  it(`malformed Socket.IO packets (${PACKETS.length} cases): the session closes or answers as specified`, T, async (t) => {
    const rssBefore = await rssMb(node);
    const problems = [];
    await pool(PACKETS, 16, async ([packet, want]) => {
      let ws;
      try {
        ws = await sioConnect(node.port, tok('packet-user'));
        ws.sendText(packet);
        if (want === 'close') {
          const { code } = await ws.closeFrame(2000);
          if (code !== 1000) problems.push(`${packet.slice(0, 40)}: close code ${code}`);
          await ws.conn.waitClosed(2000);
          return;
        }
        if (packet.startsWith('426')) {
          const got = await ws.nextText('436', 2000);
          if (got !== '436[{"user":"packet-user","sid":' + JSON.stringify(ws.sid) + '}]') problems.push(`whoami: ${got}`);
        } else if (want !== null) {
          const got = await ws.nextText('4', 2000);
          if (got !== want) problems.push(`${packet.slice(0, 40)}: got ${got.slice(0, 80)}, want ${want.slice(0, 80)}`);
        }
        ws.sendText('421000["echo","still"]');
        const got = await ws.nextText('431000', 2000);
        if (got !== '431000["still"]') problems.push(`${packet.slice(0, 40)}: follow-up ${got}`);
      } catch (e) {
        problems.push(`${packet.slice(0, 40)}: ${e.message.slice(0, 200)}`);
      } finally {
        if (ws) ws.destroy();
      }
    });
    assert.deepEqual(problems, []);
    // Engine.IO packets a client must not send: each ends the session.
    const eio = ['', '7', '9x', '2', '0', '1', '5', '6', '3probe'];
    await pool(eio, 9, async (p) => {
      const ws = await RawWs.open(node.port);
      await ws.nextText('0');
      ws.sendText(p);
      try {
        await ws.conn.waitClosed(p === '3probe' || p === '6' ? 3000 : 2000);
      } catch (e) {
        if (p !== '6' && p !== '3probe') problems.push(`eio ${JSON.stringify(p)}: ${e.message.slice(0, 80)}`);
      }
      ws.destroy();
    });
    assert.deepEqual(problems, []);
    await stillServes();
    stats.packets = { cases: PACKETS.length + eio.length, rssBeforeMb: Math.round(rssBefore), rssAfterMb: Math.round(await rssMb(node)) };
    t.diagnostic(`${PACKETS.length} Socket.IO + ${eio.length} Engine.IO packets handled as specified`);
  });

  it('binary attachment abuse: short, stray, misnumbered, too many; 10 attachments within maxPayload together are fine', T, async () => {
    const tokenText = tok('bin-user');
    const cases = [
      // [frames after CONNECT, 'close' or the expected ack prefix]
      [[frame({ opcode: OP.TEXT, payload: '452-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]' }),
        frame({ opcode: OP.BINARY, payload: Buffer.from([1]) }), frame({ opcode: OP.TEXT, payload: '42["echo"]' })], 'close'],
      [[frame({ opcode: OP.BINARY, payload: Buffer.from([1, 2, 3]) })], 'close'],
      [[frame({ opcode: OP.TEXT, payload: '451-["echo",{"_placeholder":true,"num":3}]' })], 'close'],
      [[frame({ opcode: OP.TEXT, payload: '4511-["echo",{"_placeholder":true,"num":0}]' })], 'close'],
      [[frame({ opcode: OP.TEXT, payload: '451-["echo",{"_placeholder":true,"num":0}]' }),
        frame({ opcode: OP.BINARY, payload: Buffer.alloc(MAX + 1) })], 'close'],
    ];
    for (const [frames, want] of cases) {
      const ws = await sioConnect(node.port, tokenText);
      for (const f of frames) ws.send(f);
      if (want === 'close') await ws.conn.waitClosed(2000);
      ws.destroy();
    }
    // Ten attachments that fill maxPayload together with the text (the packet's size is its text
    // and every attachment): accepted and echoed with their bytes.
    const ws = await sioConnect(node.port, tokenText);
    const placeholders = Array.from({ length: 10 }, (_, i) => ({ _placeholder: true, num: i }));
    const text = `510-7${JSON.stringify(['echo', ...placeholders])}`;
    const size = Math.floor((MAX - text.length) / 10);
    ws.sendText(`4${text}`);
    for (let i = 0; i < 10; i++) ws.sendBinary(Buffer.alloc(size, i));
    const head = await ws.nextText('4610-7');
    assert.equal(head, `4610-7${JSON.stringify(placeholders)}`);
    for (let i = 0; i < 10; i++) {
      const f = await ws.nextFrame((fr) => fr.opcode === OP.BINARY);
      assert.ok(f.payload.equals(Buffer.alloc(size, i)), `attachment ${i}`);
    }
    ws.destroy();
    await stillServes();
  });

  it('a binary packet is bounded as a whole: two attachments under maxPayload each but over it together are refused, and no member receives them', T, async (t) => {
    const victim = await connect(node.url, { auth: { token: tok('bin-victim', ['bin-room']) }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(victim, 'join', 'bin-room'), [{ ok: true, room: 'bin-room' }]);
    const got = collect(victim, 'say');
    const gone = waitFor(victim, 'disconnect', 1500).then((r) => r, () => null);
    const refused0 = (await metrics(node)).get('roomcast_packets_too_large_total') || 0;
    const header = (n) => `45${n}-["say",${JSON.stringify({ room: 'bin-room' })},` +
      `${Array.from({ length: n }, (_, i) => JSON.stringify({ _placeholder: true, num: i })).join(',')}]`;
    const bad = await sioConnect(node.port, tok('bin-attacker', ['bin-room']));
    bad.sendText('421["join","bin-room"]');
    assert.equal(await bad.nextText('431'), '431[{"ok":true,"room":"bin-room"}]');
    // 2 x 6,000 bytes: each under maxPayload (10,000), 12,000 together.
    bad.send(Buffer.concat([frame({ opcode: OP.TEXT, payload: header(2) }),
      frame({ opcode: OP.BINARY, payload: Buffer.alloc(6000, 1) }), frame({ opcode: OP.BINARY, payload: Buffer.alloc(6000, 2) })]));
    assert.equal((await bad.closeFrame(2000)).code, 1009, 'the sender hears why: 1009 (message too big)');
    const closed = await bad.conn.waitClosed(2000).then(() => true, () => false);
    await sleep(300);
    assert.deepEqual(got.map((a) => a.map((x) => (Buffer.isBuffer(x) ? `<${x.length} bytes>` : x))), [],
      'a room member received the oversize packet');
    assert.ok(closed, 'the session that sent it is closed');
    bad.destroy();
    assert.equal((await metrics(node)).get('roomcast_packets_too_large_total') - refused0, 1, 'counted');
    // The member stays connected, and a packet within the bound still reaches it.
    const fine = await sioConnect(node.port, tok('bin-sender', ['bin-room']));
    fine.sendText('421["join","bin-room"]');
    await fine.nextText('431');
    const next = waitForArgs(victim, 'say');
    fine.send(Buffer.concat([frame({ opcode: OP.TEXT, payload: header(2) }),
      frame({ opcode: OP.BINARY, payload: Buffer.alloc(4000, 3) }), frame({ opcode: OP.BINARY, payload: Buffer.alloc(4000, 4) })]));
    const [, a0, a1] = await next;
    assert.ok(Buffer.from(a0).equals(Buffer.alloc(4000, 3)) && Buffer.from(a1).equals(Buffer.alloc(4000, 4)));
    fine.destroy();
    assert.equal(await gone, null, 'the member was disconnected');
    t.diagnostic('2 x 6,000-byte attachments (maxPayload 10,000) refused; 2 x 4,000 delivered');
  });

  it('partial attachments held slowly are bounded by maxPayload per session; members keep working', T, async (t) => {
    // Its own node with the default maxPayload (1,000,000): each attacker announces 10
    // attachments and sends 900,000-byte ones slowly, answering pings, to hold up to 9 MB.
    const big = await startNode({ config: 'hostile_sio.json', overrides: { engine: { maxPayload: 1000000 } } });
    try {
      const ATTACKERS = 4;
      const CHUNK = 900000;
      const rss0 = (await metrics(big)).get('process_resident_memory_bytes') / 1048576;
      const member = await connect(big.url, { auth: { token: tok('slow-member', ['slow-room']) }, transports: ['websocket'] });
      assert.deepEqual(await emitAck(member, 'join', 'slow-room'), [{ ok: true, room: 'slow-room' }]);
      const talker = await connect(big.url, { auth: { token: tok('slow-talker', ['slow-room']) }, transports: ['websocket'] });
      assert.deepEqual(await emitAck(talker, 'join', 'slow-room'), [{ ok: true, room: 'slow-room' }]);
      const placeholders = Array.from({ length: 10 }, (_, i) => ({ _placeholder: true, num: i }));
      const attackers = await Promise.all(Array.from({ length: ATTACKERS }, async (_, k) => {
        const ws = await sioConnect(big.port, tok(`slow-${k}`, ['slow-room']));
        ws.sendText(`4510-${JSON.stringify(['echo', ...placeholders])}`);
        return ws;
      }));
      const sent = new Array(ATTACKERS).fill(0);
      const delivered = [];
      let peakMb = rss0;
      for (let i = 0; i < 9; i++) {
        attackers.forEach((ws, k) => { if (!ws.isClosed) { ws.sendBinary(Buffer.alloc(CHUNK, i)); sent[k]++; } });
        await sleep(300);
        // A member of a room still hears the others while the attack goes on.
        const next = waitFor(member, 'say', 2000);
        assert.deepEqual(await emitAck(talker, 'say', { room: 'slow-room', i }), [{ ok: true }]);
        delivered.push(await next);
        peakMb = Math.max(peakMb, (await metrics(big)).get('process_resident_memory_bytes') / 1048576);
      }
      await sleep(300);
      const closedAfter = attackers.map((ws, k) => (ws.isClosed ? sent[k] : null));
      const rss1 = (await metrics(big)).get('process_resident_memory_bytes') / 1048576;
      stats.partialAttachments = { attackers: ATTACKERS, chunk: CHUNK, closedAfterChunks: closedAfter, rssBeforeMb: Math.round(rss0), rssPeakMb: Math.round(peakMb), rssAfterMb: Math.round(rss1) };
      t.diagnostic(`partial attachments: ${JSON.stringify(stats.partialAttachments)}`);
      attackers.forEach((ws) => ws.destroy());
      // Each attacker is closed when its packet passes maxPayload (the second chunk), not after 9.
      assert.deepEqual(closedAfter, new Array(ATTACKERS).fill(2), `chunks sent when each attacker was closed: ${JSON.stringify(closedAfter)}`);
      assert.equal(delivered.length, 9);
      assert.ok(member.connected && talker.connected);
      member.disconnect();
      talker.disconnect();
      await checkAlive(big);
    } finally {
      await big.stop();
    }
  });

  it('polling abuse: bad records, bad base64, two GETs at once, wrong content type, wrong transport', T, async () => {
    // Each of these ends the polling session (400 {"code":3}, or 200 when a first record was read
    // and was itself the protocol error); the next request sees "unknown sid".
    for (const body of ['', '\x1e', '4\x1e', '\x1e4', '4\x1e\x1e4', 'x', '9', 'b', 'b!!!!', 'bQQ=', 'bQUI', 'bQQ==X', '2', '6\x1e']) {
      const sid = await pollOpen();
      const res = await pollPost(sid, body);
      assert.ok(res.status === 400 || (res.status === 200 && /^[2-6b]/.test(body)), `${JSON.stringify(body)}: ${res.status} ${res.body}`);
      const again = await pollGet(sid);
      assert.deepEqual(again.json(), { code: 1, message: 'Session ID unknown' }, JSON.stringify(body));
    }
    // Binary content type is not how v4 polling sends binary.
    let sid = await pollOpen();
    let res = await pollPost(sid, '4x', { 'Content-Type': 'application/octet-stream' });
    assert.deepEqual(res.json(), { code: 3, message: 'Bad request' });
    // Two GETs at once: both answered, the session ends.
    sid = await pollOpen();
    const first = pollGet(sid);
    await sleep(100);
    const second = await pollGet(sid);
    assert.deepEqual(second.json(), { code: 3, message: 'Bad request' });
    assert.equal((await first).status, 200);
    assert.equal((await pollGet(sid)).status, 400);
    // A polling request for a WebSocket session.
    const ws = await RawWs.open(node.port);
    const wsSid = JSON.parse((await ws.nextText('0')).slice(1)).sid;
    res = await pollPost(wsSid, '40');
    assert.deepEqual(res.json(), { code: 3, message: 'Bad request' });
    res = await pollGet(wsSid);
    assert.deepEqual(res.json(), { code: 3, message: 'Bad request' });
    ws.destroy();
    // An upgrade probe that sends garbage is closed; the polling session goes on.
    sid = await pollOpen();
    assert.equal((await pollPost(sid, `40${JSON.stringify({ token: tok('poller') })}`)).status, 200);
    assert.match((await pollGet(sid)).body, /^40\{"sid"/);
    const probe = await RawWs.open(node.port, { query: `?EIO=4&transport=websocket&sid=${sid}` });
    // A second probe for the same session is refused.
    await assert.rejects(RawWs.open(node.port, { query: `?EIO=4&transport=websocket&sid=${sid}` }), (e) => e.status === 400);
    probe.sendText('2garbage');
    assert.equal((await probe.closeFrame(2000)).code, 1002);
    assert.equal((await pollPost(sid, '421["echo","still polling"]')).status, 200);
    assert.equal((await pollGet(sid)).body, '431["still polling"]');
    // Binary over polling: header + 'b' attachments in one body works.
    assert.equal((await pollPost(sid, `451-1["echo",{"_placeholder":true,"num":0}]\x1eb${Buffer.from([0, 255]).toString('base64')}`)).status, 200);
    assert.equal((await pollGet(sid)).body, `461-1[{"_placeholder":true,"num":0}]\x1eb${Buffer.from([0, 255]).toString('base64')}`);
    await stillServes();
  });

  it('invalid UTF-8 sent over polling is never relayed to WebSocket members as text', {
    ...T,
      }, async () => {
    const victim = await connect(node.url, { auth: { token: tok('victim', ['utf-room']) }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(victim, 'join', 'utf-room'), [{ ok: true, room: 'utf-room' }]);
    const disconnected = waitFor(victim, 'disconnect', 1500).then((r) => r, () => null);
    const got = collect(victim, 'say');
    const sid = await pollOpen();
    await pollPost(sid, `40${JSON.stringify({ token: tok('attacker', ['utf-room']) })}`);
    await pollGet(sid);
    await pollPost(sid, '421["join","utf-room"]');
    await pollGet(sid);
    const body = Buffer.concat([Buffer.from('42["say",{"room":"utf-room","t":"'), Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), Buffer.from('"}]')]);
    await pollPost(sid, body);
    const reason = await disconnected;
    assert.equal(reason, null, `the WebSocket member was disconnected (${reason})`);
    assert.ok(got.length <= 1);
  });

  it('namespace abuse: 500 unknown namespaces on one session, control bytes, 300-byte names, reconnecting a namespace', T, async () => {
    const ws = await RawWs.open(node.port, { autoPong: true });
    await ws.nextText('0');
    const N = 500;
    ws.send(Buffer.concat(Array.from({ length: N }, (_, i) => frame({ opcode: OP.TEXT, payload: `40/nope-${i},{}` }))));
    await ws.conn.until(() => ws.texts().filter((m) => m.startsWith('44/nope-')).length === N, 10000, `${N} CONNECT_ERRORs`);
    const errors = ws.texts().filter((m) => m.startsWith('44/nope-'));
    errors.forEach((m, i) => assert.equal(m, `44/nope-${i},{"message":"Invalid namespace"}`));
    // Still usable: connect "/" and "/chat" on the same session, talk on both.
    ws.sendText(`40${JSON.stringify({ token: tok('ns-user') })}`);
    assert.match(await ws.nextText('40{'), /^40\{"sid"/);
    ws.sendText(`40/chat,${JSON.stringify({ token: tok('ns-user') })}`);
    assert.match(await ws.nextText('40/chat,'), /^40\/chat,\{"sid"/);
    ws.sendText('42/chat,7["echo","on chat"]');
    assert.equal(await ws.nextText('43/chat,'), '43/chat,7["on chat"]');
    // Leave "/" and come back: a new socket id.
    ws.sendText('41');
    ws.sendText(`40${JSON.stringify({ token: tok('ns-user') })}`);
    assert.match(await ws.nextText('40{'), /^40\{"sid"/);
    ws.destroy();
    // A namespace of 300 bytes, or with a control byte, or a quote, ends the session or is refused cleanly.
    for (const [nsp, want] of [[`/${'n'.repeat(300)}`, 'close'], ['/a\u0001b', 'close'], ['/a"b', '44/a"b,{"message":"Invalid namespace"}'],
      ['/a\\', '44/a\\,{"message":"Invalid namespace"}']]) {
      const w = await RawWs.open(node.port, { autoPong: true });
      await w.nextText('0');
      w.sendText(`40${nsp},{}`);
      if (want === 'close') await w.conn.waitClosed(2000);
      else assert.equal(await w.nextText('44'), want);
      w.destroy();
    }
    await stillServes();
  });

  it('10,000 forged, expired and malformed tokens: every one refused with its reason, nothing joined, nothing logged', T, async (t) => {
    const now = nowS();
    const good = tok('victim');
    const [gh, gp] = good.split('.');
    const KINDS = [
      ['bad_signature', (i) => `${gh}.${gp}.${Buffer.from(`forged-${i}-xxxxxxxxxxxxxxxxxxxxxxxxxx`).toString('base64url')}`],
      ['bad_signature', (i) => `${gh}.${Buffer.from(JSON.stringify({ sub: 'victim', admin: true, i, exp: now + 3600 })).toString('base64url')}.${good.split('.')[2]}`],
      ['bad_signature', (i) => token({ sub: `other-${i}` }, { secret: 'not-the-secret' })],
      ['bad_signature', () => `${gh}.${gp}.`],
      ['expired', (i) => token({ sub: `late-${i}`, exp: now - 3600 - i })],
      ['not_yet_valid', (i) => token({ sub: `early-${i}`, nbf: now + 3600 + i })],
      ['alg_not_allowed', (i) => rawToken({ alg: 'none', typ: 'JWT' }, { sub: 'victim', i }, { signature: '' })],
      ['alg_not_allowed', (i) => jwt.sign({ sub: `h512-${i}` }, JWT_SECRET, { algorithm: 'HS512' })],
      ['alg_not_allowed', (i) => rawToken({ alg: 'RS256', typ: 'JWT' }, { sub: `rs-${i}` })],
      ['alg_not_allowed', (i) => rawToken({ alg: 'hs256' }, { sub: `lower-${i}` })],
      ['malformed_token', (i) => `garbage-${i}`],
      ['malformed_token', (i) => `${gh}.${gp}.${gp}.${i}`],
      ['malformed_token', (i) => rawToken({ alg: 'HS256', typ: 'JWS' }, { sub: `typ-${i}` })],
      ['malformed_token', (i) => rawToken({ alg: 'HS256', crit: ['exp'] }, { sub: `crit-${i}` })],
      ['malformed_token', (i) => `${'a'.repeat(8200)}.${i}.x`],
      ['missing_user_claim', (i) => token({ sub: undefined, name: `nosub-${i}` })],
    ];
    const N = 10000;
    const CONNS = 40;
    const tokens = Array.from({ length: N }, (_, i) => {
      const [reason, make] = KINDS[i % KINDS.length];
      return { reason, value: make(i) };
    });
    const m0 = await metrics(node);
    const rss0 = await rssMb(node);
    const t0 = Date.now();
    const per = N / CONNS;
    const problems = [];
    const conns = await pool(Array.from({ length: CONNS }, (_, c) => c), CONNS, async (c) => {
      const ws = await RawWs.open(node.port, { autoPong: true });
      await ws.nextText('0');
      const mine = tokens.slice(c * per, (c + 1) * per);
      ws.send(Buffer.concat(mine.map((x) => frame({ opcode: OP.TEXT, payload: `40${JSON.stringify({ token: x.value })}` }))));
      await ws.conn.until(() => ws.texts().filter((m) => m.startsWith('4')).length >= per, 30000, `${per} answers`);
      const answers = ws.texts().filter((m) => m.startsWith('4'));
      answers.forEach((m, i) => {
        const want = `44{"message":"unauthorized","data":{"code":"${mine[i].reason}"}}`;
        if (m !== want && problems.length < 10) problems.push(`token ${c * per + i}: ${m.slice(0, 100)} (want ${mine[i].reason})`);
      });
      return ws;
    });
    const ms = Date.now() - t0;
    assert.deepEqual(problems, []);
    const m1 = await metrics(node);
    assert.equal(sumFamily(m1, 'roomcast_auth_failures_total') - sumFamily(m0, 'roomcast_auth_failures_total'), N);
    assert.ok(sumFamily(m1, 'roomcast_sockets') <= sumFamily(m0, 'roomcast_sockets'), 'no socket was created');
    assert.equal(sumFamily(m1, 'roomcast_handshakes_total'), sumFamily(m0, 'roomcast_handshakes_total'));
    // Nothing for the victim reaches any of those connections.
    await publishOk(node, { room: 'user:victim', event: 'private', data: 'for victim only' });
    await publishOk(node, { broadcast: true, event: 'everyone', data: 'namespace broadcast' });
    await sleep(200);
    for (const ws of conns) {
      assert.deepEqual(ws.texts().filter((m) => m.startsWith('42')), [], 'a refused connection received an event');
      ws.destroy();
    }
    // Tokens never reach the log.
    const log = node.stderr();
    for (const [i, x] of tokens.slice(0, 64).entries()) {
      const needle = x.value.split('.').sort((a, b) => b.length - a.length)[0];
      const at = log.indexOf(needle);
      assert.equal(at, -1, `token ${i} (${x.reason}) is in the log: ${log.slice(Math.max(0, at - 200), at + 50)}`);
    }
    const rss1 = await rssMb(node);
    stats.tokens = { n: N, connections: CONNS, ms, perSecond: Math.round(N / (ms / 1000)), rssBeforeMb: Math.round(rss0), rssAfterMb: Math.round(rss1) };
    t.diagnostic(`${N} bad tokens over ${CONNS} connections refused in ${ms} ms (${stats.tokens.perSecond}/s); RSS ${rss0.toFixed(0)} -> ${rss1.toFixed(0)} MB`);
    await stillServes();
  });

  it('1,000 joins to rooms the token does not allow are refused; the attacker receives nothing of other users', T, async (t) => {
    // alice may join team-a:*; mallory only team-m:* (and her own user room).
    const alice = await connect(node.url, { auth: { token: tok('alice', ['team-a:*']) }, transports: ['websocket'] });
    assert.deepEqual(await emitAck(alice, 'join', 'team-a:1'), [{ ok: true, room: 'team-a:1' }]);
    const strict = await connect(node.url, { auth: { token: tok('sam', ['team-s:1']) }, transports: ['websocket'] });
    const special = [
      'team-a:1', 'user:alice', 'team-a', 'TEAM-A:1', 'team-b:1', 'admin', '*', 'team-*', 'team-?:1', '?', ' team-m:1',
      'team-m', 'tеam-m:1' /* Cyrillic e */, 'team-a:1\u0000', 'user:alice\u0000', 'user:mallory2', 'user:', 'user:*',
      'team-a:1 ', '\tteam-m:1', 'team-m\u200b:1', `team-m:${'x'.repeat(300)}`, '', { room: ['team-a:1'] }, { room: { a: 1 } },
      { room: 5 }, { room: null }, { room: true }, ['team-a:1'], 42, null, { x: 'team-m:1' },
    ];
    const attempts = [...special];
    for (let i = 0; attempts.length < 1000; i++) attempts.push(i % 3 === 0 ? `team-a:${i}` : i % 3 === 1 ? `user:u${i}` : `team-${i}:1`);
    const allowed = ['team-m:1', 'team-m:', 'team-m:1/../team-a:1', 'team-m:*', 'user:mallory', 'team-m:1\u0000team-a:1'];
    const ws = await sioConnect(node.port, tok('mallory', ['team-m:*']));
    const frames = [...attempts, ...allowed].map((a, i) => frame({ opcode: OP.TEXT, payload: `42${i}${JSON.stringify(['join', a])}` }));
    ws.send(Buffer.concat(frames));
    const total = attempts.length + allowed.length;
    await ws.conn.until(() => ws.texts().filter((m) => m.startsWith('43')).length >= total, 20000, `${total} join acks`);
    const acks = new Map(ws.texts().filter((m) => m.startsWith('43')).map((m) => {
      const id = Number(/^43(\d+)/.exec(m)[1]);
      return [id, JSON.parse(m.slice(2 + String(id).length))[0]];
    }));
    const wrong = [];
    attempts.forEach((a, i) => {
      const ack = acks.get(i);
      if (!ack || ack.ok !== false || !['forbidden', 'bad_room'].includes(ack.error)) wrong.push(`${JSON.stringify(a)} -> ${JSON.stringify(ack)}`);
    });
    allowed.forEach((a, j) => {
      const ack = acks.get(attempts.length + j);
      if (!ack || ack.ok !== true) wrong.push(`allowed ${JSON.stringify(a)} -> ${JSON.stringify(ack)}`);
    });
    assert.deepEqual(wrong, []);
    // A literal glob character in a room name is not a wildcard: team-s:1 does not let sam into team-s:*.
    assert.deepEqual(await emitAck(strict, 'join', 'team-s:*'), [{ ok: false, error: 'forbidden' }]);
    // Relaying into a room she is not in is refused too.
    const aliceGot = collect(alice, 'say');
    ws.sendText('425000["say",{"room":"team-a:1","text":"let me in"}]');
    assert.equal(await ws.nextText('435000'), '435000[{"ok":false,"error":"forbidden"}]');
    // What alice's rooms and alice herself receive never reaches mallory.
    const before = ws.texts().filter((m) => m.startsWith('42')).length;
    for (const room of ['team-a:1', 'user:alice', 'team-a', 'team-b:1', 'admin']) {
      await publishOk(node, { room, event: 'secret', data: `for ${room}` });
    }
    const aliceSecret = waitFor(alice, 'secret');
    await publishOk(node, { room: 'team-a:1', event: 'secret', data: 'last' });
    await aliceSecret;
    await sleep(200);
    assert.deepEqual(ws.texts().filter((m) => m.startsWith('42')).slice(before), [], 'mallory received another user\'s data');
    assert.deepEqual(aliceGot, [], 'the refused relay reached alice');
    ws.destroy();
    stats.joins = { refused: attempts.length, allowed: allowed.length };
    t.diagnostic(`${attempts.length} forbidden joins refused, ${allowed.length} allowed ones accepted; nothing leaked`);
  });

  it('?token= in the URL is ignored where tokenInQuery is off; a Bearer header is read only at the handshake', T, async () => {
    const ws = await RawWs.open(node.port, { query: `?EIO=4&transport=websocket&token=${tok('url-user')}` });
    await ws.nextText('0');
    ws.sendText('40');
    assert.equal(await ws.nextText('44'), '44{"message":"unauthorized","data":{"code":"missing_token"}}');
    ws.destroy();
    const s = client(node.url, { transports: ['websocket'], extraHeaders: { Authorization: `Bearer ${tok('hdr-user')}` } });
    await connected(s);
    assert.deepEqual(await emitAck(s, 'whoami'), [{ user: 'hdr-user', sid: s.id }]);
  });
});
