'use strict';
// What the connection state recovery tests share (recovery.test.js, recovery_limits.test.js,
// recovery_listen.test.js). A TCP proxy: every client connection is piped to the current target port. cut() drops every connection
// (both sides, at once); hold() makes new connections close at once until release().
// cutOver(proxy, socket, port) holds, points the proxy at the next node, cuts, and resolves once
// the client has seen the cut (its reconnect is for the caller to await, with nextConnect).
// Clients: connectVia (the official client with default reconnection; closeClients closes every
// one made), onceConnected, nextConnect, record (every event but status announcements, with its
// arguments: the offset is the last), join (the configs' "join" event, acked), joinedWithOffset (a
// client in a room through the proxy, with one event received).

const net = require('node:net');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { waitUntil, token, emitAck, publishOk } = require('./node');

class Proxy {
  constructor(target) {
    this.target = target;
    this.conns = new Set();
    this.held = false;
    this.server = net.createServer((c) => {
      if (this.held) { c.destroy(); return; }
      const up = net.connect(this.target, '127.0.0.1');
      const pair = { c, up };
      this.conns.add(pair);
      const drop = () => { c.destroy(); up.destroy(); this.conns.delete(pair); };
      c.on('error', drop); up.on('error', drop); c.on('close', drop); up.on('close', drop);
      c.pipe(up); up.pipe(c);
    });
  }
  listen() { return new Promise((r) => this.server.listen(0, '127.0.0.1', () => r(this.server.address().port))); }
  cut() { for (const { c, up } of this.conns) { c.destroy(); up.destroy(); } this.conns.clear(); }
  hold() { this.held = true; }
  release() { this.held = false; }
  close() { this.cut(); return new Promise((r) => this.server.close(() => r())); }
}

async function cutOver(proxy, s, port) {
  proxy.hold();
  proxy.target = port;
  proxy.cut();
  await waitUntil(() => !s.connected, { what: 'the client sees the cut' });
}

const clients = new Set();
// user null: no token (an anonymous socket)
function connectVia(url, user, ns = '/', extra = {}) {
  const auth = user === null ? { ...extra } : { token: token({ sub: user }), ...extra };
  const s = io(`${url}${ns === '/' ? '' : ns}`, { forceNew: true, auth });
  clients.add(s);
  return s;
}
function closeClients() {
  for (const s of clients) s.close();
  clients.clear();
}
const onceConnected = (s, ms = 20000) => new Promise((resolve, reject) => {
  if (s.connected) { resolve(); return; }
  const t = setTimeout(() => reject(new Error('no connect')), ms);
  s.once('connect', () => { clearTimeout(t); resolve(); });
});
const nextConnect = (s, ms = 30000) => new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('no reconnect')), ms);
  s.once('connect', () => { clearTimeout(t); resolve(); });
});
function record(s) {
  const got = [];
  s.onAny((event, ...args) => { if (!event.startsWith('status:')) got.push({ event, args }); });
  return got;
}
async function join(s, room) { assert.deepEqual(await emitAck(s, 'join', { room }), [{ ok: true, room }]); }
// A client of `ns` that joined `room` through `proxy` (pointed at node `at`; `url` is the
// proxy's) and received one event published through node `via`, so it holds an offset:
// {x, got, sid}.
async function joinedWithOffset(proxy, url, at, user, room, via, { ns = '/', event = 'e', data = { seq: 0 } } = {}) {
  proxy.release();
  proxy.target = at.port;
  const x = connectVia(url, user, ns);
  await onceConnected(x);
  await join(x, room);
  const got = record(x);
  await publishOk(via, { ...(ns === '/' ? {} : { ns }), room, event, data });
  await waitUntil(() => got.length === 1, { timeout: 10000, what: 'the first event' });
  return { x, got, sid: x.id };
}

module.exports = { Proxy, cutOver, connectVia, closeClients, onceConnected, nextConnect, record, join, joinedWithOffset };
