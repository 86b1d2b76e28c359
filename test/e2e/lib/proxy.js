'use strict';
// A TCP proxy for connection state recovery tests (recovery.test.js, recovery_limits.test.js):
// every client connection is piped to the current target port. cut() drops every connection
// (both sides, at once); hold() makes new connections close at once until release().
// cutOver(proxy, socket, port) holds, points the proxy at the next node, cuts, and resolves once
// the client has seen the cut (its reconnect is for the caller to await).

const net = require('node:net');
const { waitUntil } = require('./node');

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

module.exports = { Proxy, cutOver };
