'use strict';
// Seed 001 (docs/migrating.md, "Seed 001"): the React Native / web app's WebSocket module
// (projects, chat, stage completions), replaced by roomcast running deploy/config/projects.json on
// two nodes and a real Redis. The backend's WebSocketService (emitProjectUpdate,
// emitStageCompletion, notifications) is a plain Redis client publishing.
//
// Client -> server: join:project, leave:project {projectId}; join:conversation, leave:conversation
// {conversationId}; message:send {conversationId, message: {content, type}}.
// Server -> client: project:update {type: 'status_change', data}, stage:completed, message:new,
// notification:new.
// What changed for the client (the document's own "In production, you should"): the user id
// comes from a JWT (auth: { token }), not from query { userId }, which is ignored.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  client, connectError, closeClients, emitAck, waitFor, collect, sleep, expectNoEvent,
} = require('./lib/node');
const { startSeed, tokenFor, connectSeed, waitUntil } = require('./lib/seeds');

const T = { timeout: 20000 };
const QUIET_MS = 300;
const uid = (p) => `${p}-${crypto.randomBytes(3).toString('hex')}`;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('seed 001: projects, chat and stages on roomcast', () => {
  let seed;
  before(async () => { seed = await startSeed('projects.json'); });
  afterEach(async () => { closeClients(); if (seed) await seed.checkAlive(); });
  after(async () => { closeClients(); if (seed) await seed.stop(); });

  // The document's client, with the one change: a token instead of trusting query.userId.
  const connectClient = (node, userId, claims, extra = {}) => connectSeed(node, '/', {
    query: { userId }, // still sent by old builds: ignored
    auth: { token: tokenFor(userId, claims) },
    transports: ['websocket'],
    ...extra,
  });

  it('project updates, stage completions, conversations, messages and notifications across two nodes', T, async () => {
    const projectId = uid('project');
    const conversationId = uid('conv');
    const claims = { projects: [projectId], conversations: [conversationId] };
    const alice = await connectClient(seed.A, 'u-alice', claims);
    const bob = await connectClient(seed.B, 'u-bob', claims);
    const bobPhone = await connectClient(seed.A, 'u-bob', {}); // bob's second device, in no room
    const outsider = await connectClient(seed.B, 'u-carol', { projects: ['other'], conversations: ['other'] });

    // socket.emit('join:project', { projectId }) — as the document does it, without an ack...
    bob.emit('join:project', { projectId });
    // ...or with one (roomcast answers it when asked).
    assert.deepEqual((await emitAck(alice, 'join:project', { projectId }))[0], { ok: true, projectId });
    await seed.waitSubscribed('/', `project:${projectId}`, 2);

    const updates = [alice, bob, outsider].map((s) => collect(s, 'project:update'));
    const stages = [alice, bob, outsider].map((s) => collect(s, 'stage:completed'));
    // ProjectsService.updateProject -> wsService.emitProjectUpdate(projectId, {type, data})
    const update = { type: 'status_change', data: { status: 'IN_PROGRESS', projectId } };
    assert.equal(await seed.backend.publish('/', `project:${projectId}`, 'project:update', update), 2);
    // ProjectsService.completeStage -> wsService.emitStageCompletion(projectId, stage)
    const stage = { id: 'stage-2', name: 'Foundation', projectId, completedAt: new Date().toISOString() };
    assert.equal(await seed.backend.publish('/', `project:${projectId}`, 'stage:completed', stage), 2);
    await waitUntil(() => stages[0].length === 1 && stages[1].length === 1, { what: 'stage:completed' });

    // Conversations and messages.
    bob.emit('join:conversation', { conversationId });
    assert.deepEqual((await emitAck(alice, 'join:conversation', { conversationId }))[0], { ok: true, conversationId });
    await seed.waitSubscribed('/', `conversation:${conversationId}`, 2);
    const messages = [alice, bob, outsider, bobPhone].map((s) => collect(s, 'message:new'));
    const sentAt = Date.now();
    alice.emit('message:send', { conversationId, message: { content: 'Hello!', type: 'text' } });
    await waitUntil(() => messages[0].length === 1 && messages[1].length === 1, { what: 'message:new' });
    const [msg] = messages[1][0];
    assert.match(msg.createdAt, ISO);
    assert.ok(Date.parse(msg.createdAt) >= sentAt - 1000);
    assert.deepEqual(msg, {
      conversationId, senderId: 'u-alice', content: 'Hello!', type: 'text',
      message: { content: 'Hello!', type: 'text' }, createdAt: msg.createdAt,
    });
    assert.deepEqual(messages[0][0], [msg], 'the sender gets it too');
    // The backend stores it from the events stream.
    const stored = await seed.backend.nextEvent((e) => e.event === 'message:send' && e.data.conversationId === conversationId);
    assert.equal(stored.ns, '/');
    assert.equal(stored.user, 'u-alice');
    assert.equal(stored.sid, alice.id);
    assert.ok([seed.A.nodeId, seed.B.nodeId].includes(stored.node));
    assert.deepEqual(stored.data, { conversationId, senderId: 'u-alice', message: { content: 'Hello!', type: 'text' } });

    // notification:new to a user (every device, any node); one BullMQ job if offline.
    const notes = [bob, bobPhone, alice].map((s) => collect(s, 'notification:new'));
    const notification = { id: uid('n'), type: 'stage', title: 'Stage completed', body: 'Foundation', projectId };
    assert.equal(await seed.backend.notify({ id: notification.id, user: 'u-bob', ns: '/', event: 'notification:new', data: notification }), 2);
    await waitUntil(() => notes[0].length === 1 && notes[1].length === 1, { what: 'notification:new on both of bob\'s devices' });

    await sleep(QUIET_MS);
    assert.deepEqual(updates.map((u) => u.length), [1, 1, 0]);
    assert.deepEqual(updates[0][0], [update]);
    assert.deepEqual(updates[1][0], [update]);
    assert.deepEqual(stages[1][0], [stage]);
    assert.equal(stages[2].length, 0, 'not in the project');
    assert.deepEqual(messages.map((m) => m.length), [1, 1, 0, 0], 'only the conversation\'s members');
    assert.deepEqual(notes.map((n) => n.length), [1, 1, 0]);
    assert.deepEqual(notes[0][0], [notification]);

    // leave:conversation / leave:project: nothing more for bob.
    bob.emit('leave:conversation', { conversationId });
    assert.deepEqual((await emitAck(bob, 'leave:project', { projectId }))[0], { ok: true, projectId });
    await seed.waitSubscribed('/', `project:${projectId}`, 1);
    await seed.waitSubscribed('/', `conversation:${conversationId}`, 1);
    await seed.backend.publish('/', `project:${projectId}`, 'project:update', { type: 'status_change', data: { n: 2 } });
    alice.emit('message:send', { conversationId, message: { content: 'still there?', type: 'text' } });
    await waitUntil(() => updates[0].length === 2 && messages[0].length === 2, { what: 'alice still gets them' });
    await sleep(QUIET_MS);
    assert.equal(updates[1].length, 1);
    assert.equal(messages[1].length, 1);
  });

  it('the user id comes from the token: query.userId is ignored, and no token means no connection', T, async () => {
    const conversationId = uid('conv');
    // The seed's client: io(url, { query: { userId } }): refused now.
    const err = await connectError(seed.A.url, { query: { userId: 'u-alice' }, transports: ['websocket'] });
    assert.equal(err.message, 'unauthorized');
    assert.deepEqual(err.data, { code: 'missing_token' });
    // A token in the query string is not accepted either (tokens in URLs end up in logs).
    const err2 = await connectError(seed.A.url, { query: { token: tokenFor('u-alice') }, transports: ['websocket'] });
    assert.deepEqual(err2.data, { code: 'missing_token' });
    // With a token, query.userId cannot impersonate anyone.
    const mallory = await connectClient(seed.B, 'u-mallory', { conversations: [conversationId] },
      { query: { userId: 'u-alice' } });
    assert.deepEqual((await emitAck(mallory, 'join:conversation', { conversationId }))[0], { ok: true, conversationId });
    const got = waitFor(mallory, 'message:new');
    mallory.emit('message:send', { conversationId, message: { content: 'hi', type: 'text' } });
    assert.equal((await got).senderId, 'u-mallory');
    // And the user room is the token's user's.
    await seed.waitSubscribed('/', 'user:u-mallory', 1);
    assert.equal(await seed.redis.numsub('roomcast:room:/:user:u-alice'), 0);
  });

  it('refused joins and invalid or unauthorized messages answer the NestJS exception event', T, async () => {
    const projectId = uid('project');
    const conversationId = uid('conv');
    const s = await connectClient(seed.A, 'u-dave', { projects: [projectId], conversations: [conversationId] });
    const exceptions = collect(s, 'exception');

    // A project / conversation the token does not list.
    assert.deepEqual((await emitAck(s, 'join:project', { projectId: 'someone-elses' }))[0], { ok: false, error: 'forbidden' });
    s.emit('join:conversation', { conversationId: 'someone-elses' }); // no ack: the event alone
    // No id at all.
    assert.deepEqual((await emitAck(s, 'join:project', {}))[0], { ok: false, error: 'bad_room' });
    // A message to a conversation it has not joined: neither delivered nor stored.
    const before = (await seed.backend.events()).length;
    assert.deepEqual((await emitAck(s, 'message:send', { conversationId, message: { content: 'x', type: 'text' } }))[0],
      { ok: false, error: 'forbidden' });
    // Invalid messages.
    await emitAck(s, 'join:conversation', { conversationId });
    assert.deepEqual((await emitAck(s, 'message:send', { conversationId, message: { type: 'text' } }))[0],
      { ok: false, error: 'invalid_message' });
    assert.deepEqual((await emitAck(s, 'message:send', 'Hello!'))[0], { ok: false, error: 'invalid_message' });

    await waitUntil(() => exceptions.length === 6, { what: 'six exception events' });
    assert.deepEqual(exceptions.map(([e]) => e), [
      { status: 'error', message: 'forbidden', event: 'join:project' },
      { status: 'error', message: 'forbidden', event: 'join:conversation' },
      { status: 'error', message: 'bad_room', event: 'join:project' },
      { status: 'error', message: 'forbidden', event: 'message:send' },
      { status: 'error', message: 'invalid_message', event: 'message:send' },
      { status: 'error', message: 'invalid_message', event: 'message:send' },
    ]);
    assert.equal((await seed.backend.events()).length, before, 'nothing forwarded');
    await expectNoEvent(s, 'message:new', QUIET_MS);
  });

  it('notification:new for a user offline on every node becomes one BullMQ email job', T, async () => {
    const id = uid('n-offline');
    const n = { id, user: 'u-nobody', ns: '/', event: 'notification:new', data: { title: 'Stage completed' } };
    assert.equal(await seed.backend.notify(n), 2);
    const job = await waitUntil(() => seed.backend.job(id), { what: `bull:email:${id}` });
    assert.equal(job.name, 'send-email');
    assert.deepEqual(JSON.parse(job.data), n);
    assert.equal(await seed.redis.command('LLEN', 'bull:email:wait'), 1, 'one job for two nodes');
  });

  it('a client flooding events is rate limited per socket (error ack)', T, async () => {
    const s = client(seed.B.url, { auth: { token: tokenFor('u-flood') }, transports: ['websocket'] });
    await waitFor(s, 'connect');
    const replies = await Promise.all(Array.from({ length: 60 }, () => emitAck(s, 'join:project', { projectId: 'x' })));
    const limited = replies.filter(([r]) => r.error === 'rate_limited').length;
    assert.ok(limited >= 20 && limited <= 30, `${limited} of 60 refused (burst 30, refill 30/s)`);
  });
});
