'use strict';
// A hand-driven Engine.IO v4 client over a raw WebSocket (package `ws`), for the tests that need
// to misbehave: never answer pings, never send a Socket.IO CONNECT, keep a connection open after a
// CONNECT_ERROR, send exact frames.

const WebSocket = require('ws');

class RawEio {
  // opts.autoPong: answer each server ping '2' with '3' (default false)
  constructor(ws, { autoPong = false } = {}) {
    this.ws = ws;
    this.autoPong = autoPong;
    this.messages = []; // {data: string|Buffer, binary: bool, at: ms}
    this.waiters = [];
    this.pings = 0;
    this.openedAt = Date.now();
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        for (const w of this.waiters.splice(0)) w.reject(new Error(`connection closed (code ${code}) while waiting for a message`));
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => { /* 'close' follows */ });
    ws.on('message', (data, isBinary) => {
      const msg = { data: isBinary ? Buffer.from(data) : data.toString('utf8'), binary: isBinary, at: Date.now() };
      if (!isBinary && msg.data === '2') {
        this.pings += 1;
        if (this.autoPong && ws.readyState === WebSocket.OPEN) ws.send('3');
      }
      this.messages.push(msg);
      this._pump();
    });
  }

  // Opens ws://host/socket.io/?EIO=4&transport=websocket and reads the open packet.
  // Returns the RawEio; its .handshake is the parsed open packet.
  static async open(baseWsUrl, { query = '', headers = {}, autoPong = false, timeoutMs = 5000, path = '/socket.io/' } = {}) {
    const url = `${baseWsUrl}${path}?EIO=4&transport=websocket${query}`;
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    const raw = new RawEio(ws, { autoPong });
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`websocket ${url} not open within ${timeoutMs} ms`)), timeoutMs);
      ws.once('open', () => { clearTimeout(timer); raw.openedAt = Date.now(); resolve(); });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        reject(new Error(`websocket ${url} refused: HTTP ${res.statusCode}`));
      });
      ws.once('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const first = await raw.next(timeoutMs);
    if (typeof first !== 'string' || first[0] !== '0') {
      throw new Error(`expected an Engine.IO open packet, got ${JSON.stringify(String(first))}`);
    }
    raw.handshake = JSON.parse(first.slice(1));
    return raw;
  }

  _pump() {
    while (this.waiters.length) {
      const w = this.waiters[0];
      const idx = this.messages.findIndex((m) => w.pred(m.data));
      if (idx < 0) return;
      const [m] = this.messages.splice(idx, 1);
      this.waiters.shift();
      clearTimeout(w.timer);
      w.resolve(m.data);
    }
  }

  // Next message (string or Buffer) matching pred, skipping pings unless pred wants them.
  next(timeoutMs = 3000, pred = (d) => d !== '2') {
    return new Promise((resolve, reject) => {
      if (this.closeInfo && !this.messages.some((m) => pred(m.data))) {
        reject(new Error(`connection already closed (code ${this.closeInfo.code})`));
        return;
      }
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no matching message within ${timeoutMs} ms; got so far: ` +
          JSON.stringify(this.messages.map((m) => (m.binary ? `<binary ${m.data.length}>` : m.data)).slice(-10))));
      }, timeoutMs);
      this.waiters.push(w);
      this._pump();
    });
  }

  // Next message starting with prefix (e.g. '40', '44', '42').
  nextStartingWith(prefix, timeoutMs = 3000) {
    return this.next(timeoutMs, (d) => typeof d === 'string' && d.startsWith(prefix));
  }

  // Resolves with the close info, or rejects if still open after ms.
  async waitClosed(ms) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  // Messages other than pings received so far and not consumed by next().
  pending() {
    return this.messages.filter((m) => m.data !== '2').map((m) => m.data);
  }

  send(data) {
    this.ws.send(data);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
  }
}

module.exports = { RawEio, WebSocket };
