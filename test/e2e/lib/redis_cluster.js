'use strict';
// A real Redis Cluster for end-to-end tests: three (or n) redis-server --cluster-enabled yes on free
// loopback ports (node files in a temp dir, no persistence), joined by
// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`.
//
//   const cl = await startCluster();        resolves once every master says cluster_state:ok
//   cl.seeds                                 '127.0.0.1:p1,127.0.0.1:p2,...' (ROOMCAST_REDIS_CLUSTER)
//   cl.masters[i]                            {port, id, client (RespClient on that master)}
//   await cl.owner(slot)                     index of the master serving slot (CLUSTER SLOTS)
//   await cl.moveSlot(slot, to)              CLUSTER SETSLOT IMPORTING / MIGRATING, MIGRATE of its
//                                            keys, then SETSLOT NODE on every master
//   await cl.reshard(from, to, n)            redis-cli --cluster reshard of n slots (lowest first)
//   slotOf(key)                              the key's slot (CRC16 with hash tags, as Redis)
//   await cl.stop()
//
// Every child is killed when the test process exits (lib/redis.js's guard).

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { RespClient, findBinary } = require('./redis');
const { freePort, sleep } = require('./node');

const children = new Set();
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

function crc16(buf) {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function slotOf(key) {
  const b = Buffer.from(key);
  const open = b.indexOf('{');
  if (open >= 0) {
    const close = b.indexOf('}', open + 1);
    if (close > open + 1) return crc16(b.subarray(open + 1, close)) & 16383;
  }
  return crc16(b) & 16383;
}

async function waitOk(client, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await client.command('CLUSTER', 'INFO').catch(() => '');
    if (String(info).includes('cluster_state:ok')) return;
    if (Date.now() > end) throw new Error(`${what}: cluster_state not ok within ${timeoutMs} ms`);
    await sleep(100);
  }
}

class RedisCluster {
  constructor(n) { this.n = n; this.masters = []; this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rc-cluster-')); }

  async start() {
    const bin = findBinary('redis-server', 'REDIS_SERVER');
    for (let i = 0; i < this.n; i++) {
      const port = await freePort();
      const bus = await freePort(); // port + 10000 may not exist: name the bus port
      const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-port', String(bus), '--cluster-config-file', path.join(this.dir, `nodes-${port}.conf`),
        '--cluster-node-timeout', '3000', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      { stdio: ['ignore', 'ignore', process.env.E2E_DEBUG ? 'inherit' : 'ignore'] });
      children.add(child);
      child.once('exit', () => children.delete(child));
      const m = { port, bus, child };
      this.masters.push(m);
    }
    for (const m of this.masters) {
      const end = Date.now() + 10000;
      for (;;) {
        try { m.client = new RespClient(m.port, { name: `cluster-${m.port}` }); await m.client.connect(); break; } catch (e) {
          if (Date.now() > end) throw e;
          await sleep(50);
        }
      }
      m.id = await m.client.command('CLUSTER', 'MYID');
    }
    const cli = findBinary('redis-cli', 'REDIS_CLI');
    const r = spawnSync(cli, ['--cluster', 'create', ...this.masters.map((m) => `127.0.0.1:${m.port}`),
      '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stderr || r.stdout}`);
    for (const m of this.masters) await waitOk(m.client, `master ${m.port}`);
    // every master must see every other one with its slots before nodes ask for the topology
    const end = Date.now() + 20000;
    for (;;) {
      const views = await Promise.all(this.masters.map((m) => m.client.command('CLUSTER', 'SLOTS')));
      if (views.every((v) => v.length >= this.n)) break;
      if (Date.now() > end) throw new Error('cluster: masters disagree on the slots');
      await sleep(100);
    }
    this.seeds = this.masters.map((m) => `127.0.0.1:${m.port}`).join(',');
    return this;
  }

  async owner(slot, via = 0) {
    const ranges = await this.masters[via].client.command('CLUSTER', 'SLOTS');
    for (const [from, to, [, port]] of ranges) {
      if (slot >= from && slot <= to) return this.masters.findIndex((m) => m.port === Number(port));
    }
    return -1;
  }

  // Moves one slot as redis-cli --cluster reshard does for each slot it moves.
  async moveSlot(slot, to) {
    const from = await this.owner(slot);
    if (from === to) return;
    const src = this.masters[from]; const dst = this.masters[to];
    await dst.client.command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.id);
    await src.client.command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.id);
    for (;;) {
      const keys = await src.client.command('CLUSTER', 'GETKEYSINSLOT', slot, 100);
      if (!keys.length) break;
      await src.client.command('MIGRATE', '127.0.0.1', dst.port, '', 0, 5000, 'KEYS', ...keys);
    }
    await dst.client.command('CLUSTER', 'SETSLOT', slot, 'NODE', dst.id);
    await src.client.command('CLUSTER', 'SETSLOT', slot, 'NODE', dst.id);
    for (const m of this.masters) {
      if (m !== src && m !== dst) await m.client.command('CLUSTER', 'SETSLOT', slot, 'NODE', dst.id);
    }
  }

  // redis-cli --cluster reshard: n slots from master `from` to master `to` (redis-cli takes the
  // source's lowest slots first). Resolves with redis-cli's output.
  reshard(from, to, n) {
    const cli = findBinary('redis-cli', 'REDIS_CLI');
    return new Promise((resolve, reject) => {
      const child = spawn(cli, ['--cluster', 'reshard', `127.0.0.1:${this.masters[from].port}`,
        '--cluster-from', this.masters[from].id, '--cluster-to', this.masters[to].id,
        '--cluster-slots', String(n), '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`redis-cli --cluster reshard: ${code}\n${out.slice(-2000)}`))));
    });
  }

  async stop() {
    for (const m of this.masters) {
      if (m.client) m.client.close();
      if (m.child && m.child.exitCode === null) {
        const gone = new Promise((res) => m.child.once('exit', res));
        m.child.kill('SIGKILL');
        await gone;
      }
    }
    try { fs.rmSync(this.dir, { recursive: true, force: true }); } catch { /* best effort */ }
  }
}

async function startCluster(n = 3) {
  const cl = new RedisCluster(n);
  try {
    return await cl.start();
  } catch (e) {
    await cl.stop();
    throw e;
  }
}

module.exports = { startCluster, slotOf, crc16 };
