'use strict';
// A flood of Engine.IO handshakes that never connect a namespace (issue 15, finding 1), run as a
// child process so it does not share the event loop of the test measuring the other clients:
//
//   node lib/flood_pending.js PORT FROM_ADDRESS MS CONNS PER_WRITE MAX
//
// keeps CONNS keep-alive connections open from FROM_ADDRESS (a loopback address other than the
// clients', so that the node sees another peer), writes PER_WRITE pipelined polling handshakes on
// each, reopens a connection as soon as the node closes it, and stops after MS ms or MAX
// handshakes written. Prints one JSON line: handshakes written, answers by status, connections
// opened and closed by the node, and the first refusal's status line and body.

const net = require('node:net');

const HANDSHAKE = Buffer.from('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n');

async function flood(port, from, ms, conns, perWrite, max) {
  const t0 = Date.now();
  const out = { written: 0, statuses: {}, opened: 0, closedByNode: 0, firstRefusal: null, ms: 0 };
  const one = () => new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let tail = '';
    let closing = false;
    sock.on('connect', () => {
      out.opened++;
      const n = Math.min(perWrite, max - out.written);
      out.written += n;
      if (n > 0) sock.write(Buffer.concat(Array(n).fill(HANDSHAKE)));
    });
    sock.on('data', (chunk) => {
      const text = tail + chunk.toString('latin1');
      for (const m of text.matchAll(/HTTP\/1\.1 (\d{3})[^\r]*\r\n/g)) {
        out.statuses[m[1]] = (out.statuses[m[1]] || 0) + 1;
        if (m[1] !== '200' && !out.firstRefusal) {
          const at = text.indexOf('\r\n\r\n', m.index);
          out.firstRefusal = at > 0 ? `${m[0].trim()} ${text.slice(at + 4, at + 200).split('HTTP/1.1')[0]}` : m[0].trim();
        }
      }
      tail = text.slice(-200);
      // Done when every handshake on this connection was answered: go again on a fresh one.
      if (!closing && Date.now() - t0 >= ms) { closing = true; sock.destroy(); }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      if (!closing) out.closedByNode++;
      resolve();
    });
  });
  await Promise.all(Array.from({ length: conns }, async () => {
    while (Date.now() - t0 < ms && out.written < max) {
      await Promise.race([one(), new Promise((r) => setTimeout(r, Math.max(1, ms - (Date.now() - t0))))]);
    }
  }));
  out.ms = Date.now() - t0;
  return out;
}

if (require.main === module) {
  const [port, from, ms, conns, perWrite, max] = process.argv.slice(2);
  flood(Number(port), from, Number(ms), Number(conns), Number(perWrite), Number(max)).then(
    (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); },
    (e) => { process.stdout.write(`${JSON.stringify({ error: e.message })}\n`); process.exit(1); });
}

module.exports = { flood };
