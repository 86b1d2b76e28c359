'use strict';
/*
 * node check-emitter.js REDIS_PORT PUBLISHER: checks that test/bench/publisher --format emitter
 * writes the bytes the real @socket.io/redis-emitter writes for
 *   emitter.to("room1").emit("bench", {t: <integer>, pad: "x" * 60})
 * (same channel, same msgpack apart from the 8 bytes of t). Exits 0 when they match.
 */
const { createClient } = require('redis');
const { Emitter } = require('@socket.io/redis-emitter');
const { execFileSync } = require('child_process');

async function main() {
  const [port, publisher] = process.argv.slice(2);
  if (!port || !publisher) {
    console.error('usage: node check-emitter.js REDIS_PORT PUBLISHER');
    process.exit(2);
  }
  const url = 'redis://127.0.0.1:' + port;
  const sub = createClient({ url });
  const pub = createClient({ url });
  await Promise.all([sub.connect(), pub.connect()]);
  const got = [];
  await sub.subscribe('socket.io#/#room1#', (m) => got.push(m), true);
  new Emitter(pub).to('room1').emit('bench', { t: 2 ** 40 + 12345, pad: 'x'.repeat(60) });
  await new Promise((r) => setTimeout(r, 200));
  execFileSync(publisher, ['--redis', '127.0.0.1:' + port, '--format', 'emitter', '--room', 'room1', '--count', '1']);
  await new Promise((r) => setTimeout(r, 200));
  await Promise.allSettled([sub.quit(), pub.quit()]);
  if (got.length !== 2) {
    console.error(`expected 2 messages on socket.io#/#room1#, got ${got.length}`);
    process.exit(1);
  }
  const [a, b] = got.map((m) => m.toString('hex'));
  const t = a.indexOf('a174cf'); // "t" then uint64
  const same = t > 0 && a.length === b.length && a.slice(0, t + 6) === b.slice(0, t + 6) && a.slice(t + 22) === b.slice(t + 22);
  console.log('emitter  : ' + a);
  console.log('publisher: ' + b);
  console.log(same ? 'same bytes apart from t' : 'DIFFERENT');
  process.exit(same ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
