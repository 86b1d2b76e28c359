'use strict';
/*
 * The reference roomcast is measured against: a plain Socket.IO 4.8 server as a Node team would
 * write it, mirroring roomcast's default rules (docs/config.md, "The built-in default"):
 *   - @socket.io/redis-adapter (classic pub/sub) so that @socket.io/redis-emitter publishers and
 *     other nodes reach its sockets;
 *   - a middleware that verifies the HS256 JWT in the CONNECT auth payload (auth.token) and
 *     refuses with {"message":"unauthorized","data":{"code":...}};
 *   - every socket joins `user:<sub>`;
 *   - event 'join' with payload {"room":"x"} or "x", acked with {"ok":true,"room":"x"} when the
 *     room matches a glob of the token's `rooms` claim, else {"ok":false,"error":"forbidden"};
 *     'leave' likewise.
 *
 * Environment: PORT (3000), REDIS_URL (redis://127.0.0.1:6379), JWT_SECRET (required).
 * Prints "listening <port>" on stdout once the adapter is connected and the port is bound.
 */
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');
const jwt = require('jsonwebtoken');

const port = parseInt(process.env.PORT || '3000', 10);
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error('JWT_SECRET is required');
  process.exit(2);
}

const globCache = new Map();
function globMatch(glob, s) {
  let re = globCache.get(glob);
  if (!re) {
    const src = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    re = new RegExp('^' + src + '$');
    globCache.set(glob, re);
  }
  return re.test(s);
}

function roomOf(data) {
  const room = data && typeof data === 'object' ? data.room : data;
  if (typeof room !== 'string' || room.length === 0 || Buffer.byteLength(room) > 200) return null;
  return room;
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on('error', (e) => console.error('redis pub:', e.message));
  sub.on('error', (e) => console.error('redis sub:', e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub) });

  io.use((socket, next) => {
    const token = socket.handshake.auth && socket.handshake.auth.token;
    if (typeof token !== 'string') {
      const err = new Error('unauthorized');
      err.data = { code: 'missing_token' };
      return next(err);
    }
    jwt.verify(token, secret, { algorithms: ['HS256'] }, (e, claims) => {
      if (e) {
        const err = new Error('unauthorized');
        err.data = { code: e.name === 'TokenExpiredError' ? 'expired' : 'invalid_token' };
        return next(err);
      }
      socket.data.user = String(claims.sub);
      socket.data.rooms = Array.isArray(claims.rooms) ? claims.rooms.filter((g) => typeof g === 'string') : [];
      next();
    });
  });

  io.on('connection', (socket) => {
    const userRoom = 'user:' + socket.data.user;
    socket.join(userRoom);
    socket.on('join', (data, ack) => {
      const room = roomOf(data);
      let reply;
      if (room === null) reply = { ok: false, error: 'bad_room' };
      else if (room === userRoom || socket.rooms.has(room) || socket.data.rooms.some((g) => globMatch(g, room))) {
        socket.join(room);
        reply = { ok: true, room };
      } else reply = { ok: false, error: 'forbidden' };
      if (typeof ack === 'function') ack(reply);
    });
    socket.on('leave', (data, ack) => {
      const room = roomOf(data);
      if (room !== null) socket.leave(room);
      if (typeof ack === 'function') ack(room === null ? { ok: false, error: 'bad_room' } : { ok: true, room });
    });
  });

  httpServer.listen(port, '127.0.0.1', () => console.log('listening ' + port));
  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
