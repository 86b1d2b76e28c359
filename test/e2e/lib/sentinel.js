'use strict';
// A real Redis Sentinel deployment for the end-to-end tests: one master, one replica and three
// redis-sentinel processes (Debian's redis-sentinel package), all on free loopback ports.
//
//   const s = await startSentinels({ masterName: 'mymaster' });
//   s.sentinelList                    '127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3' (ROOMCAST_REDIS_SENTINELS)
//   await s.masterPort()              the port the sentinels name as master now
//   s.servers                         [master, replica] (lib/redis.js RedisServer-like: port, kill())
//   await s.waitFailover(oldPort)     resolves with the new master's port once the sentinels agree
//   await s.revive(oldPort)           a killed server started again on its port; the sentinels make
//                                     it a replica of the current master (resolves once it is linked)
//   await s.stop()                    everything stopped (SIGKILL after 5 s)
//
// Sentinel timings are short on purpose (down after 1 s, failover timeout 5 s) so that a failover
// takes a few seconds. Every child is killed when the test process exits.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, sleep, waitUntil } = require('./node');
const { RespClient, findBinary } = require('./redis');

const DEBUG = !!process.env.E2E_DEBUG;
const children = new Set();
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
});

class Proc {
  constructor(tag, bin, args) {
    this.tag = tag;
    this.output = '';
    this.exit = null;
    this.child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.exited = new Promise((resolve) => {
      const done = (exit) => { children.delete(this.child); this.exit = exit; resolve(exit); };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', (err) => done({ code: -1, signal: null, error: err.message }));
    });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-16384);
      if (DEBUG) process.stderr.write(`[${tag}] ${chunk}`);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
  }

  get running() { return !this.exit; }

  async kill(signal = 'SIGKILL') {
    if (!this.running) return;
    this.child.kill(signal);
    await this.exited;
  }

  async stop() {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (this.running) this.child.kill('SIGKILL'); }, 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

// One command on a fresh connection; rejects on an error reply or after timeoutMs.
async function command(port, args, timeoutMs = 2000) {
  const c = new RespClient(port, { name: 'sentinel-test' });
  await c.connect();
  try {
    return await Promise.race([
      c.command(...args),
      sleep(timeoutMs).then(() => { throw new Error(`no answer from ${port} to ${args[0]}`); }),
    ]);
  } finally {
    c.close();
  }
}

async function startServer(dir, tag, extra = [], port = 0) {
  if (!port) port = await freePort();
  const p = new Proc(tag, findBinary('redis-server', 'REDIS_SERVER'), [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--dbfilename', `${tag}.rdb`, '--protected-mode', 'no', '--loglevel', 'warning',
    ...extra,
  ]);
  p.port = port;
  p.respawn = () => startServer(dir, tag, extra, port);
  await waitUntil(async () => {
    if (p.exit) throw new Error(`${tag} exited ${JSON.stringify(p.exit)}: ${p.output}`);
    try { return (await command(port, ['PING'], 500)) === 'PONG'; } catch { return false; }
  }, { timeout: 10000, interval: 50, what: `${tag} on ${port}` });
  return p;
}

async function startSentinels({ masterName = 'mymaster', count = 3, quorum = 2 } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-e2e-sentinel-'));
  process.on('exit', () => { try { fs.rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ } });
  const master = await startServer(dir, 'master');
  const replica = await startServer(dir, 'replica', ['--replicaof', '127.0.0.1', String(master.port)]);
  await waitUntil(async () => /master_link_status:up/.test(await command(replica.port, ['INFO', 'replication'])),
    { timeout: 10000, interval: 100, what: 'replica linked to its master' });

  const bin = findBinary('redis-sentinel', 'REDIS_SENTINEL');
  const sentinels = [];
  for (let i = 0; i < count; i++) {
    const port = await freePort();
    const conf = path.join(dir, `sentinel-${i}.conf`); // sentinel rewrites its file: one each
    fs.writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', 'protected-mode no', `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`, '',
    ].join('\n'));
    const p = new Proc(`sentinel-${i}`, bin, [conf]);
    p.port = port;
    sentinels.push(p);
  }
  // Ready when every sentinel knows the replica and the other sentinels (hello messages every
  // 2 s), so that a failover can be agreed on.
  await waitUntil(async () => {
    for (const s of sentinels) {
      if (s.exit) throw new Error(`sentinel exited ${JSON.stringify(s.exit)}: ${s.output}`);
      try {
        const reps = await command(s.port, ['SENTINEL', 'REPLICAS', masterName]);
        const peers = await command(s.port, ['SENTINEL', 'SENTINELS', masterName]);
        if (reps.length < 1 || peers.length < count - 1) return false;
      } catch { return false; }
    }
    return true;
  }, { timeout: 30000, interval: 200, what: 'sentinels know the replica and each other' });

  const masterPort = async () => {
    for (const s of sentinels) {
      if (!s.running) continue;
      try {
        const a = await command(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]);
        return Number(a[1]);
      } catch { /* next */ }
    }
    throw new Error('no sentinel answered');
  };
  return {
    masterName,
    servers: [master, replica],
    sentinels,
    sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
    masterPort,
    command,
    async waitFailover(oldPort, timeout = 30000) {
      let port = 0;
      await waitUntil(async () => {
        const ports = await Promise.all(sentinels.map((s) =>
          command(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]).then((a) => Number(a[1]), () => 0)));
        port = ports[0];
        return port && port !== oldPort && ports.every((x) => x === port);
      }, { timeout, interval: 100, what: 'sentinels agree on a new master' });
      return port;
    },
    async revive(port) {
      const i = this.servers.findIndex((p) => p.port === port);
      this.servers[i] = await this.servers[i].respawn();
      await waitUntil(async () => {
        const info = await command(port, ['INFO', 'replication']).catch(() => '');
        return /role:slave/.test(info) && /master_link_status:up/.test(info);
      }, { timeout: 30000, interval: 200, what: `server ${port} back as a linked replica` });
      await waitUntil(async () => {
        for (const s of sentinels) {
          const reps = await command(s.port, ['SENTINEL', 'REPLICAS', masterName]).catch(() => []);
          const ok = reps.some((r) => {
            const f = {};
            for (let k = 0; k + 1 < r.length; k += 2) f[r[k]] = r[k + 1];
            return Number(f.port) === port && !/s_down|o_down|disconnected/.test(f.flags || '');
          });
          if (!ok) return false;
        }
        return true;
      }, { timeout: 30000, interval: 200, what: `sentinels see ${port} as a healthy replica` });
    },
    async stop() {
      for (const p of [...sentinels, ...this.servers]) await p.stop();
    },
  };
}

module.exports = { startSentinels, command };
