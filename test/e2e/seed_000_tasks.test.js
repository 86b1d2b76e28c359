'use strict';
// Seed 000 (docs/migrating.md, "Seed 000"): the tasks app's NestJS EventsGateway, replaced by
// roomcast running deploy/config/tasks.json on two nodes and a real Redis. The backend side
// (TasksService emitting task_created / task_updated / task_deleted to project_{id}) is a plain
// Redis client publishing on roomcast:room:/:project_<id>.
//
// The document's test script (test-websocket.js): 1. log in via REST, get a JWT; 2. connect to
// ws://localhost:3000 with it; 3. emit joinProject for a newly created project -> "Joined room:
// { projectId: '...', status: 'success' }"; 4. POST /tasks; 5. receive task_created
// { title: 'Live Task', ... }. Security: unauthenticated connections are rejected; events go
// only to the project's room. Tokens: auth: { token } or the Bearer header.

const { describe, it, before, after, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {
  client, connectError, closeClients, emitAck, waitFor, collect, sleep, token,
} = require('./lib/node');
const { startSeed, tokenFor, connectSeed, waitUntil } = require('./lib/seeds');

const T = { timeout: 20000 };
const QUIET_MS = 300;
const uid = (p) => `${p}-${crypto.randomBytes(3).toString('hex')}`;

describe('seed 000: tasks (real-time task updates) on roomcast', () => {
  let seed;
  before(async () => { seed = await startSeed('tasks.json'); });
  afterEach(async () => { closeClients(); if (seed) await seed.checkAlive(); });
  after(async () => { closeClients(); if (seed) await seed.stop(); });

  it("replays the test script: login JWT, connect, joinProject, POST /tasks -> task_created", T, async () => {
    // 1. Authentication: the REST login returns a JWT (user id in sub, the user's projects).
    const projectId = uid('proj'); // "a newly created project"
    const jwt = tokenFor('user-1', { email: 'dev@example.com', projects: [projectId] });
    // 2. Connection, as the script does it: io('ws://localhost:3000', { auth: { token } }).
    const socket = await connectSeed(seed.B, '/', { auth: { token: jwt } });
    assert.ok(socket.connected, 'Socket connected!');
    // 3. Room join: joinProject -> the gateway's reply.
    const [joined] = await emitAck(socket, 'joinProject', { projectId });
    assert.deepEqual(joined, { projectId, status: 'success' }, 'Joined room: { projectId, status: "success" }');

    // A teammate on the other node, in the same project; a user of another project.
    const mate = await connectSeed(seed.A, '/', { auth: { token: tokenFor('user-2', { projects: [projectId] }) } });
    assert.deepEqual((await emitAck(mate, 'joinProject', { projectId }))[0], { projectId, status: 'success' });
    const otherProject = uid('proj');
    const outsider = await connectSeed(seed.A, '/', { auth: { token: tokenFor('user-3', { projects: [otherProject] }) } });
    assert.deepEqual((await emitAck(outsider, 'joinProject', { projectId: otherProject }))[0],
      { projectId: otherProject, status: 'success' });
    await seed.waitSubscribed('/', `project_${projectId}`, 2);

    const got = { socket: {}, mate: {}, outsider: {} };
    for (const ev of ['task_created', 'task_updated', 'task_deleted']) {
      got.socket[ev] = collect(socket, ev);
      got.mate[ev] = collect(mate, ev);
      got.outsider[ev] = collect(outsider, ev);
    }

    // 4. Trigger: POST /tasks. TasksService now publishes instead of calling the gateway.
    const task = { id: 't-1', title: 'Live Task', description: 'created over REST', projectId, status: 'TODO' };
    const received = waitFor(socket, 'task_created');
    assert.equal(await seed.backend.publish('/', `project_${projectId}`, 'task_created', task), 2, 'both nodes');
    // 5. Reception: "EVENT RECEIVED: task_created  Data: { title: 'Live Task', ... }".
    const data = await received;
    assert.equal(data.title, 'Live Task');
    assert.deepEqual(data, task);

    // The other task events of TasksService.
    const updated = { ...task, status: 'DONE' };
    assert.equal(await seed.backend.publish('/', `project_${projectId}`, 'task_updated', updated), 2);
    assert.equal(await seed.backend.publish('/', `project_${projectId}`, 'task_deleted', { id: task.id, projectId }), 2);
    await waitUntil(() => ['socket', 'mate'].every((k) => got[k].task_deleted.length === 1), { what: 'task_deleted' });
    await sleep(QUIET_MS);
    for (const k of ['socket', 'mate']) {
      assert.deepEqual(got[k].task_created, [[task]], k);
      assert.deepEqual(got[k].task_updated, [[updated]], k);
      assert.deepEqual(got[k].task_deleted, [[{ id: task.id, projectId }]], k);
    }
    // Room isolation: server.to('project_{id}') only.
    for (const ev of Object.keys(got.outsider)) assert.deepEqual(got.outsider[ev], [], `outsider got ${ev}`);

    // leaveProject: no more events for that socket.
    assert.deepEqual((await emitAck(socket, 'leaveProject', { projectId }))[0], { projectId, status: 'success' });
    await seed.waitSubscribed('/', `project_${projectId}`, 1);
    assert.equal(await seed.backend.publish('/', `project_${projectId}`, 'task_created', { id: 't-2', title: 'Later', projectId }), 1);
    await waitUntil(() => got.mate.task_created.length === 2, { what: 'the teammate still gets it' });
    await sleep(QUIET_MS);
    assert.equal(got.socket.task_created.length, 1, 'nothing after leaveProject');
  });

  it('the token may come in the Authorization: Bearer header', T, async () => {
    const projectId = uid('proj');
    const jwt = tokenFor('user-4', { projects: [projectId] });
    for (const transports of [['websocket'], ['polling', 'websocket']]) {
      const s = await connectSeed(seed.A, '/', { transports, extraHeaders: { Authorization: `Bearer ${jwt}` } });
      assert.deepEqual((await emitAck(s, 'joinProject', { projectId }))[0], { projectId, status: 'success' });
      await seed.waitSubscribed('/', `project_${projectId}`, 1);
      const got = waitFor(s, 'task_created');
      await seed.backend.publish('/', `project_${projectId}`, 'task_created', { title: 'Live Task', projectId });
      assert.deepEqual(await got, { title: 'Live Task', projectId });
      s.disconnect();
      await seed.waitSubscribed('/', `project_${projectId}`, 0);
    }
  });

  it('unauthenticated connections are rejected at the handshake and get nothing', T, async () => {
    const cases = [
      [{}, 'missing_token'],
      [{ auth: { token: 'not-a-jwt' } }, 'malformed_token'],
      [{ auth: { token: token({ sub: 'user-1' }, { secret: 'some-other-secret' }) } }, 'bad_signature'],
      [{ auth: { token: tokenFor('user-1', { exp: Math.floor(Date.now() / 1000) - 3600 }) } }, 'expired'],
      [{ extraHeaders: { Authorization: 'Bearer garbage' }, transports: ['websocket'] }, 'malformed_token'],
    ];
    for (const [opts, code] of cases) {
      const err = await connectError(seed.B.url, opts);
      assert.equal(err.message, 'unauthorized', code);
      assert.deepEqual(err.data, { code }, JSON.stringify(opts));
      assert.equal(err.socket.connected, false);
    }
    // A socket that never connected is in no room: a publish to user:<id> reaches no node.
    assert.equal(await seed.backend.publish('/', 'user:user-1', 'task_created', { title: 'x' }), 0);
  });

  it('room isolation: a project the token does not list is refused with the error reply and the exception event', T, async () => {
    const mine = uid('proj');
    const theirs = uid('proj');
    const s = await connectSeed(seed.A, '/', { auth: { token: tokenFor('user-5', { projects: [mine] }) } });
    const exception = waitFor(s, 'exception');
    const [reply] = await emitAck(s, 'joinProject', { projectId: theirs });
    assert.deepEqual(reply, { projectId: theirs, status: 'error', message: 'forbidden' });
    assert.deepEqual(await exception, { status: 'error', message: 'forbidden' });
    // Without a projectId the room cannot be named.
    const [bad] = await emitAck(s, 'joinProject', {});
    assert.deepEqual(bad, { status: 'error', message: 'bad_room' });
    // Not in the room: a task of that project does not reach it.
    const tasks = collect(s, 'task_created');
    await seed.backend.publish('/', `project_${theirs}`, 'task_created', { title: 'secret' });
    await sleep(QUIET_MS);
    assert.deepEqual(tasks, []);
  });

  it('a project created after the login: the backend puts the user in its room, then joinProject succeeds', T, async () => {
    const jwt = tokenFor('user-6', { projects: [] }); // logged in before the project existed
    const s = await connectSeed(seed.B, '/', { auth: { token: jwt } });
    const projectId = uid('proj-new');
    assert.deepEqual((await emitAck(s, 'joinProject', { projectId }))[0],
      { projectId, status: 'error', message: 'forbidden' }, 'not in the token');
    // ProjectsService.create(): PUBLISH roomcast:room:/:user:user-6 {"op":"join","room":"project_<id>"}
    await seed.waitSubscribed('/', 'user:user-6', 1);
    assert.equal(await seed.backend.op('/', 'user:user-6', { op: 'join', room: `project_${projectId}` }), 1, 'the node holding the socket');
    await seed.waitSubscribed('/', `project_${projectId}`, 1);
    assert.deepEqual((await emitAck(s, 'joinProject', { projectId }))[0], { projectId, status: 'success' });
    const got = waitFor(s, 'task_created');
    await seed.backend.publish('/', `project_${projectId}`, 'task_created', { title: 'Live Task', projectId });
    assert.deepEqual(await got, { title: 'Live Task', projectId });
    // Another socket without the claim and without the op is still refused.
    const other = await connectSeed(seed.A, '/', { auth: { token: tokenFor('user-7', { projects: [] }) } });
    assert.equal((await emitAck(other, 'joinProject', { projectId }))[0].status, 'error');
  });

  it('a client flooding events is rate limited per socket (exception event)', T, async () => {
    const s = client(seed.A.url, { auth: { token: tokenFor('flood', { projects: ['*'] }) } });
    await waitFor(s, 'connect');
    const exceptions = collect(s, 'exception');
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => emitAck(s, 'joinProject', { projectId: `f${i}` })));
    const limited = replies.filter(([r]) => r.status === 'error' && r.message === 'rate_limited').length;
    assert.ok(limited >= 10 && limited <= 20, `${limited} of 40 refused (burst 20, refill 20/s)`);
    await waitUntil(() => exceptions.length === limited, { what: 'one exception per refused event' });
    assert.deepEqual(exceptions[0], [{ status: 'error', message: 'rate_limited' }]);
  });
});
