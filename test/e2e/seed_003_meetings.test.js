'use strict';
// Seed 003 (docs/migrating.md, "Seed 003"): the Meetings Service's WebSocket server (port 3002),
// replaced by roomcast running deploy/config/meetings.json on two nodes and a real Redis. The
// service's API side (join via API, music, hand, recording, screen share, resources, controls)
// is a plain Redis client publishing to roomcast:room:/:meeting:<meetingId>.
//
// The document's integration test: create meeting (API) -> connect with a JWT {userId, type:
// 'access'} -> meeting:join -> join via API (meeting:participant-joined) -> music started /
// stopped -> hand raised; its basic test: connect, JWT, join, leave, ping/pong. Every event of
// its list is exercised: connect, disconnect, connect_error, meeting:joined, meeting:left,
// meeting:participant-joined/-left, meeting:hand-raised/-lowered, meeting:music-started/-stopped/
// -volume-updated, meeting:recording-started/-stopped, meeting:screenshare-started/-stopped,
// meeting:resource-shared, meeting:locked/unlocked/host-promoted, ping, pong, error.
//
// meeting:participant-joined/-left are the service's, as through its gateway: on every API join and
// leave it publishes one to the meeting room, connected participant or not, and moves the
// participant's sockets with a control op (docs/migrating.md, seed 003); roomcast announces no
// participant event itself ("track" in meetings.json only lists who is connected).

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  connectError, closeClients, emitAck, waitFor, collect, sleep, expectNoEvent, client,
} = require('./lib/node');
const { startSeed, tokenFor, connectSeed, waitUntil, waitForMatch } = require('./lib/seeds');

const T = { timeout: 20000 };
const QUIET_MS = 300;
const uid = (p) => `${p}-${crypto.randomBytes(3).toString('hex')}`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// Token Format: { userId: 'user-id', type: 'access' } (+ the meetings the user may join).
const meetingToken = (userId, meetings = [], type = 'access') =>
  tokenFor(userId, { type, meetings }, { userClaim: 'userId' });

describe('seed 003: meetings service on roomcast', () => {
  let seed;
  before(async () => { seed = await startSeed('meetings.json'); });
  afterEach(async () => { closeClients(); if (seed) await seed.checkAlive(); });
  after(async () => { closeClients(); if (seed) await seed.stop(); });

  const connectMeeting = (node, userId, meetings, extra = {}) => connectSeed(node, '/', {
    auth: { token: meetingToken(userId, meetings) }, transports: ['websocket', 'polling'], ...extra,
  });

  // The service's API, as docs/migrating.md (seed 003) says: on a join, the event to the meeting
  // room, then the control op that puts the participant's sockets in it; on a leave, the op, then
  // the event. Resolves with the number of nodes the op reached (0: no device connected).
  const apiJoin = async (meetingId, userId) => {
    assert.ok(await seed.backend.publish('/', `meeting:${meetingId}`, 'meeting:participant-joined',
      { meetingId, userId, timestamp: new Date().toISOString() }) >= 0);
    return seed.backend.op('/', `user:${userId}`, { op: 'join', room: `meeting:${meetingId}` });
  };
  const apiLeave = async (meetingId, userId) => {
    const nodes = await seed.backend.op('/', `user:${userId}`, { op: 'leave', room: `meeting:${meetingId}` });
    await seed.backend.publish('/', `meeting:${meetingId}`, 'meeting:participant-left',
      { meetingId, userId, timestamp: new Date().toISOString() });
    return nodes;
  };
  // Who is connected to a meeting: roomcast:members:/:meeting:<id> (user -> sockets in the room).
  const members = async (meetingId) => {
    const flat = await seed.redis.command('HGETALL', `roomcast:members:/:meeting:${meetingId}`);
    const o = {};
    for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]] = Number(flat[i + 1]);
    return o;
  };
  // Every meeting:participant-* event a socket hears, as [event, userId].
  const participantEvents = (s) => {
    const got = [];
    s.onAny((event, d) => { if (event.startsWith('meeting:participant-')) got.push([event, d && d.userId]); });
    return got;
  };
  const count = (got, event, userId) => got.filter(([e, u]) => e === event && u === userId).length;

  it('the integration test: join the meeting, join via API, music, hand, recording, screen share, resources, controls, leave', T, async () => {
    // 1. Create Meeting (API): the meeting id; the host's token lists it.
    const meetingId = uid('meeting');
    const room = `meeting:${meetingId}`;
    const hostId = uid('host');
    const partId = uid('participant');
    // 2. Connect WebSocket with the JWT.
    const host = await connectMeeting(seed.A, hostId, [meetingId]);
    const connectedAt = Date.now();
    assert.ok(host.connected);
    // 3. meeting:join -> meeting:joined.
    const joined = waitFor(host, 'meeting:joined');
    host.emit('meeting:join', { meetingId });
    assert.deepEqual(await joined, { meetingId, userId: hostId });

    // The participant connects on the other node; its token does not name the meeting.
    const part = await connectMeeting(seed.B, partId, []);
    await seed.waitSubscribed('/', `user:${partId}`, 1);
    // 4. Join Meeting via API: the service announces the participant to the meeting room, then
    // puts the participant's sockets in the room (any node).
    const partJoined = waitForMatch(host, 'meeting:participant-joined', (d) => d.userId === partId);
    await apiJoin(meetingId, partId);
    await seed.waitSubscribed('/', room, 2);
    const pj = await partJoined;
    assert.equal(pj.meetingId, meetingId);
    assert.match(pj.timestamp, ISO);
    // The participant's own meeting:join now succeeds (already in the room).
    const partJoinedAck = waitFor(part, 'meeting:joined');
    part.emit('meeting:join', { meetingId });
    assert.deepEqual(await partJoinedAck, { meetingId, userId: partId });

    // 5.-7. and every other event the service emits on API actions, to the meeting room.
    const events = [
      ['meeting:music-started', { meetingId, trackId: 'calm-1', title: 'Calm Piano', url: 'https://cdn.example/calm.mp3', volume: 40, startedBy: hostId }],
      ['meeting:music-volume-updated', { meetingId, volume: 25, updatedBy: hostId }],
      ['meeting:music-stopped', { meetingId, stoppedBy: hostId }],
      ['meeting:hand-raised', { meetingId, userId: partId, raisedAt: new Date().toISOString() }],
      ['meeting:hand-lowered', { meetingId, userId: partId }],
      ['meeting:recording-started', { meetingId, recordingId: 'rec-1', startedBy: hostId }],
      ['meeting:recording-stopped', { meetingId, recordingId: 'rec-1', durationSec: 42 }],
      ['meeting:screenshare-started', { meetingId, userId: partId, streamId: 'screen-1' }],
      ['meeting:screenshare-stopped', { meetingId, userId: partId, streamId: 'screen-1' }],
      ['meeting:resource-shared', { meetingId, resource: { id: 'res-1', type: 'link', title: 'Agenda', url: 'https://docs.example/agenda' }, sharedBy: hostId }],
      ['meeting:locked', { meetingId, lockedBy: hostId }],
      ['meeting:unlocked', { meetingId, unlockedBy: hostId }],
      ['meeting:host-promoted', { meetingId, userId: partId, promotedBy: hostId }],
    ];
    const got = { host: [], part: [] };
    for (const [who, s] of [['host', host], ['part', part]]) {
      s.onAny((event, ...args) => { if (events.some(([e]) => e === event)) got[who].push([event, ...args]); });
    }
    for (const [event, data] of events) {
      assert.equal(await seed.backend.publish('/', room, event, data), 2, `${event}: both nodes`);
    }
    await waitUntil(() => got.host.length === events.length && got.part.length === events.length,
      { what: 'every meeting event at both sockets' });
    await sleep(QUIET_MS);
    assert.deepEqual(got.host, events, 'host: every event, in order, exactly once');
    assert.deepEqual(got.part, events, 'participant: every event, in order, exactly once');

    // The service removes the participant: out of the room, and meeting:participant-left.
    const partLeft = waitForMatch(host, 'meeting:participant-left', (d) => d.userId === partId);
    assert.equal(await apiLeave(meetingId, partId), 1);
    await seed.waitSubscribed('/', room, 1);
    assert.equal((await partLeft).meetingId, meetingId);
    const afterLeave = collect(part, 'meeting:hand-raised');
    await seed.backend.publish('/', room, 'meeting:hand-raised', { meetingId, userId: hostId });
    await sleep(QUIET_MS);
    assert.deepEqual(afterLeave, [], 'not in the room any more');

    // Leave Meeting Room: meeting:leave -> meeting:left.
    const left = waitFor(host, 'meeting:left');
    host.emit('meeting:leave', { meetingId });
    assert.deepEqual(await left, { meetingId, userId: hostId });
    await seed.waitSubscribed('/', room, 0);

    // Heartbeat (ping/pong): socket.emit('ping') -> pong {timestamp}.
    const pong = waitFor(host, 'pong');
    host.emit('ping');
    const { timestamp } = await pong;
    assert.ok(Number.isInteger(timestamp) && timestamp >= connectedAt && timestamp <= Date.now(), String(timestamp));
    const [ack] = await emitAck(part, 'ping');
    assert.equal(ack.event, 'pong');
    assert.ok(ack.timestamp >= connectedAt);

    // disconnect
    const bye = waitFor(host, 'disconnect');
    host.disconnect();
    assert.equal(await bye, 'io client disconnect');
  });

  it('a participant added through the API: the service puts its sockets in the meeting room (any node, no claim needed) and takes them out', T, async () => {
    const meetingId = uid('meeting');
    const room = `meeting:${meetingId}`;
    const userId = uid('guest');
    const phone = await connectMeeting(seed.A, userId, []); // its token predates the invitation
    const laptop = await connectMeeting(seed.B, userId, []);
    const errors = collect(phone, 'error');
    assert.deepEqual((await emitAck(phone, 'meeting:join', { meetingId }))[0], { ok: false, error: 'forbidden' });
    await seed.waitSubscribed('/', `user:${userId}`, 2);
    // POST /meetings/:id/participants -> PUBLISH roomcast:room:/:user:<id> {"op":"join","room":"meeting:<id>"}
    assert.equal(await seed.backend.op('/', `user:${userId}`, { op: 'join', room }), 2);
    await seed.waitSubscribed('/', room, 2);
    const got = [phone, laptop].map((s) => waitFor(s, 'meeting:hand-raised'));
    assert.equal(await seed.backend.publish('/', room, 'meeting:hand-raised', { meetingId, userId: 'someone' }), 2);
    for (const g of await Promise.all(got)) assert.deepEqual(g, { meetingId, userId: 'someone' });
    // Put there by the service, meeting:join now succeeds.
    assert.deepEqual((await emitAck(laptop, 'meeting:join', { meetingId }))[0], { ok: true, meetingId });
    // Removed through the API: {"op":"leave"}; no more meeting events.
    assert.equal(await seed.backend.op('/', `user:${userId}`, { op: 'leave', room }), 2);
    await seed.waitSubscribed('/', room, 0);
    const after = [phone, laptop].map((s) => collect(s, 'meeting:locked'));
    await seed.backend.publish('/', room, 'meeting:locked', { meetingId });
    await sleep(QUIET_MS);
    assert.deepEqual(after, [[], []]);
    assert.equal(errors.length, 1, 'the refused join before the invitation');
  });

  it('authentication: a JWT {userId, type: "access"} is required; connect_error otherwise', T, async () => {
    // connect_error: no token, a bad one, one without the userId claim.
    const none = await connectError(seed.A.url, { transports: ['websocket', 'polling'] });
    assert.equal(none.message, 'unauthorized');
    assert.deepEqual(none.data, { code: 'missing_token' });
    const forged = await connectError(seed.B.url, { auth: { token: meetingToken('u-1', [], 'access').slice(0, -4) + 'AAAA' } });
    assert.deepEqual(forged.data, { code: 'bad_signature' });
    const subOnly = await connectError(seed.A.url, { auth: { token: tokenFor('u-1', { type: 'access' }) } });
    assert.deepEqual(subOnly.data, { code: 'missing_user_claim' });
    // A token that is not an access token (a refresh token) is told so and disconnected.
    const s = client(seed.B.url, { auth: { token: meetingToken('u-2', ['m'], 'refresh') } });
    const err = waitFor(s, 'error');
    const gone = waitFor(s, 'disconnect');
    assert.deepEqual(await err, { message: 'Invalid token type', code: 'invalid_token_type' });
    assert.equal(await gone, 'io server disconnect');
    // Nor is one without a type.
    const s2 = client(seed.A.url, { auth: { token: tokenFor('u-3', { meetings: ['m'] }, { userClaim: 'userId' }) } });
    assert.equal((await waitFor(s2, 'error')).code, 'invalid_token_type');
    // A good one connects (and is in no room but its own).
    const ok = await connectMeeting(seed.A, 'u-4', []);
    await expectNoEvent(ok, 'error', QUIET_MS);
    assert.ok(ok.connected);
  });

  it('meeting:join of a meeting the token does not list answers the error event', T, async () => {
    const s = await connectMeeting(seed.B, uid('user'), ['m-allowed', 'team-*']);
    const errors = collect(s, 'error');
    s.emit('meeting:join', { meetingId: 'm-other' });
    s.emit('meeting:join', {});
    assert.deepEqual((await emitAck(s, 'meeting:join', { meetingId: 'm-other' }))[0], { ok: false, error: 'forbidden' });
    assert.deepEqual((await emitAck(s, 'meeting:join', { meetingId: 'team-7' }))[0], { ok: true, meetingId: 'team-7' });
    await waitUntil(() => errors.length === 3, { what: 'three error events' });
    assert.deepEqual(errors.map(([e]) => e), [
      { message: 'Cannot join meeting', code: 'forbidden', meetingId: 'm-other' },
      { message: 'Cannot join meeting', code: 'bad_room' },
      { message: 'Cannot join meeting', code: 'forbidden', meetingId: 'm-other' },
    ]);
  });

  // ---- participants: announced on API joins and leaves, exactly once, connected or not --------

  it('every API join and leave is announced exactly once on every node, whether or not the participant is connected', T, async () => {
    const meetingId = uid('meeting');
    const room = `meeting:${meetingId}`;
    const [hostId, peerId] = [uid('host'), uid('peer')];
    const host = await connectMeeting(seed.A, hostId, [meetingId]);
    const peer = await connectMeeting(seed.B, peerId, [meetingId]);
    for (const s of [host, peer]) assert.equal((await emitAck(s, 'meeting:join', { meetingId }))[0].ok, true);
    await seed.waitSubscribed('/', room, 2);
    const heard = [host, peer].map(participantEvents);

    // Added through the API while none of their devices is connected: the op reaches no node.
    const away = uid('away');
    assert.equal(await apiJoin(meetingId, away), 0);
    // Added while connected with two devices, one on each node.
    const here = uid('here');
    const phone = await connectMeeting(seed.A, here, []);
    const laptop = await connectMeeting(seed.B, here, []);
    await seed.waitSubscribed('/', `user:${here}`, 2);
    assert.equal(await apiJoin(meetingId, here), 2);
    await waitUntil(async () => (await members(meetingId))[here] === 2, { what: 'both devices in the meeting room' });
    await waitUntil(() => heard.every((got) => count(got, 'meeting:participant-joined', here) >= 1),
      { what: 'participant-joined for the connected participant everywhere' });
    await sleep(QUIET_MS);
    for (const got of heard) {
      assert.equal(count(got, 'meeting:participant-joined', away), 1, `${JSON.stringify(got)}: the offline participant, once`);
      assert.equal(count(got, 'meeting:participant-joined', here), 1, `${JSON.stringify(got)}: the connected participant, once`);
    }
    // The connected participant's devices are in the room (they hear the meeting) ...
    const atLaptop = waitFor(laptop, 'meeting:hand-raised');
    assert.equal(await seed.backend.publish('/', room, 'meeting:hand-raised', { meetingId, userId: hostId }), 2);
    assert.deepEqual(await atLaptop, { meetingId, userId: hostId });
    // ... and closing the app does not make them leave the meeting (only the API does).
    phone.disconnect();
    laptop.disconnect();
    await waitUntil(async () => !(here in await members(meetingId)), { what: 'the closed devices out of the members hash' });
    await sleep(QUIET_MS);
    for (const got of heard) assert.equal(count(got, 'meeting:participant-left', here), 0, JSON.stringify(got));

    // Removed through the API, neither of them connected now.
    assert.equal(await apiLeave(meetingId, away), 0);
    assert.equal(await apiLeave(meetingId, here), 0);
    await waitUntil(() => heard.every((got) => count(got, 'meeting:participant-left', here) >= 1),
      { what: 'participant-left everywhere' });
    await sleep(QUIET_MS);
    for (const got of heard) {
      assert.equal(count(got, 'meeting:participant-left', away), 1, JSON.stringify(got));
      assert.equal(count(got, 'meeting:participant-left', here), 1, JSON.stringify(got));
      assert.equal(got.length, 4, `exactly two joins and two leaves: ${JSON.stringify(got)}`);
    }
    // and removing a participant who is connected announces it once too
    const back = await connectMeeting(seed.A, here, []);
    await seed.waitSubscribed('/', `user:${here}`, 1);
    assert.equal(await apiJoin(meetingId, here), 1);
    await waitUntil(async () => (await members(meetingId))[here] === 1, { what: 'the device in the meeting room' });
    assert.equal(await apiLeave(meetingId, here), 1);
    await waitUntil(async () => !(here in await members(meetingId)), { what: 'the device out of the room' });
    await waitUntil(() => heard.every((got) => got.length === 6), { what: 'the second join and leave everywhere' });
    await sleep(QUIET_MS);
    for (const got of heard) assert.equal(got.length, 6, JSON.stringify(got));
    assert.ok(back.connected);
  });

  it('meeting:join, meeting:leave and disconnects announce nothing; the members hash lists who is connected, across nodes', T, async () => {
    const meetingId = uid('meeting');
    const hostId = uid('host');
    const userId = uid('user');
    const host = await connectMeeting(seed.A, hostId, [meetingId]);
    await emitAck(host, 'meeting:join', { meetingId });
    const heard = participantEvents(host);
    const phone = await connectMeeting(seed.B, userId, [meetingId]);
    const laptop = await connectMeeting(seed.A, userId, [meetingId]);
    await emitAck(phone, 'meeting:join', { meetingId });
    await emitAck(laptop, 'meeting:join', { meetingId });
    // The service reads who is in the meeting.
    const m = await waitUntil(async () => {
      const o = await members(meetingId);
      return o[userId] === 2 ? o : null;
    }, { what: 'roomcast:members hash' });
    assert.deepEqual(m, { [hostId]: 1, [userId]: 2 });
    await emitAck(phone, 'meeting:leave', { meetingId });
    laptop.disconnect();
    await waitUntil(async () => !(userId in await members(meetingId)), { what: 'the user out of the members hash' });
    await sleep(QUIET_MS);
    assert.deepEqual(heard, [], 'participant events come from the service\'s API only');
  });

});
