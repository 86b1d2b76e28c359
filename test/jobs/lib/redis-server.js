'use strict';
// A throw-away redis-server on a free loopback port, killed when the test process exits.
const { spawn } = require('node:child_process');
const net = require('node:net');
const Redis = require('ioredis');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis() {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
    '--appendonly', 'no', '--dir', '/tmp'], { stdio: 'ignore' });
  const kill = () => { try { proc.kill('SIGKILL'); } catch { /* gone */ } };
  process.on('exit', kill);
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0,
      retryStrategy: () => null });
    c.on('error', () => {}); // refused until the server listens
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      break;
    } catch (e) {
      c.disconnect();
      if (Date.now() > deadline) { kill(); throw new Error(`redis-server on ${port}: ${e.message}`); }
      await new Promise(r => setTimeout(r, 50));
    }
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    connection: { host: '127.0.0.1', port },
    stop: async () => {
      const gone = new Promise(r => proc.once('exit', r));
      kill();
      await gone;
      process.removeListener('exit', kill);
    },
  };
}

module.exports = { startRedis, freePort };
