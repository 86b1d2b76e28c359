'use strict';
// Helpers for the operations end-to-end tests (ops_*.test.js): real redis-server, prometheus and
// nginx from Debian's packages, each started on a free loopback port with a generated config in a
// temp dir, and stopped by the test (or, as a last resort, when the test process exits).
//
//   ensureServers()                      installs the three if missing (test/deploy/ensure-tools.sh)
//   const redis = await startRedis();    redis.url, redis.command('SMEMBERS', key), redis.stop()
//   const prom = await startPrometheus({ targets: ['127.0.0.1:p1', ...], ruleFiles: [...] });
//   await prom.query('roomcast_connections')   -> the result vector
//   const lb = await startNginx({ httpBlock: nginxRepoConf(nodes, port), ports: [port] })
//                                        docker/nginx/roomcast.conf in front of the nodes; lb.stop()
//   await waitUntil(async () => ..., { timeout, what })
//
// Every child gets a bounded start (STARTUP_TIMEOUT_MS) and a bounded stop (SIGTERM, then
// SIGKILL); none of them outlives the test process.

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort, waitUntil: waitUntilNode } = require('./node');
const { encodeCommand, parseReply } = require('./redis');

const REPO = path.resolve(__dirname, '..', '..', '..');
const STARTUP_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;
const DEBUG = !!process.env.E2E_DEBUG;

// ---- tools -------------------------------------------------------------------------------------

let ensured = false;
// redis-server, prometheus and nginx (apt-get when missing; a no-op taking milliseconds otherwise).
function ensureServers() {
  if (ensured) return;
  const script = path.join(REPO, 'test', 'deploy', 'ensure-tools.sh');
  const r = spawnSync(script, ['servers'], { encoding: 'utf8', timeout: 300000 });
  if (r.status !== 0) {
    throw new Error(`${script} servers failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
  ensured = true;
}

// Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
function which(cmd, extra = []) {
  const dirs = [...(process.env.PATH || '').split(':'), ...extra];
  for (const d of dirs) {
    const p = path.join(d, cmd);
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  throw new Error(`${cmd} not found in PATH (${dirs.join(':')})`);
}

// ---- temp dirs and children ---------------------------------------------------------------------

const children = new Set();
const tempDirs = [];
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ } }
});

function makeTempDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `roomcast-ops-${tag}-`));
  tempDirs.push(d);
  return d;
}

// A child process with its output kept (last 64 KiB) for failure messages.
class Managed {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.output = '';
    this.exit = null;
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    children.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        children.delete(this.child);
        resolve(this.exit);
      });
      this.child.once('error', (err) => {
        this.output += `\nspawn error: ${err.message}`;
        this.exit = { code: -1, signal: null, error: err };
        children.delete(this.child);
        resolve(this.exit);
      });
    });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-65536);
      if (DEBUG) process.stderr.write(`[${name}] ${chunk}`);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
  }

  tail(lines = 30) {
    return this.output.split('\n').slice(-lines).join('\n');
  }

  async stop() {
    if (this.exit) return this.exit;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (!this.exit) this.child.kill('SIGKILL'); }, STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
    return this.exit;
  }
}

// Polls fn until it returns a truthy value (which is returned): lib/node.js's waitUntil with this
// file's defaults (servers start slowly: 10 s, every 100 ms).
const waitUntil = (fn, opts = {}) => waitUntilNode(fn, { timeout: 10000, interval: 100, ...opts });

// GET on loopback, fresh connection; resolves {status, body, json()}.
function httpGet(port, urlPath, { timeout = 3000, host = '127.0.0.1', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path: urlPath, method: 'GET', agent: false,
      headers: { Connection: 'close', ...headers } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: res.headers, body, json: () => JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`GET ${urlPath} on ${port}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// ---- Redis -------------------------------------------------------------------------------------

// One command on a fresh connection (enough for tests that inspect keys now and then).
function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${args[0]}: no reply`)); }, 3000);
    sock.on('connect', () => sock.write(encodeCommand(args)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const r = parseReply(buf);
      if (!r) return;
      clearTimeout(timer);
      sock.destroy();
      if (r[0] instanceof Error) reject(r[0]);
      else resolve(r[0]);
    });
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

async function startRedis() {
  ensureServers();
  const port = await freePort();
  const dir = makeTempDir('redis');
  const proc = new Managed('redis', which('redis-server', ['/usr/bin', '/usr/sbin']), [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning',
  ]);
  await waitUntil(async () => {
    if (proc.exit) throw new Error(`redis-server exited ${JSON.stringify(proc.exit)}: ${proc.tail()}`);
    return (await redisCommand(port, 'PING')) === 'PONG';
  }, { timeout: STARTUP_TIMEOUT_MS, interval: 50, what: `redis-server on ${port}` });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    command: (...args) => redisCommand(port, ...args),
    stop: () => proc.stop(),
    proc,
  };
}

// ---- Prometheus ----------------------------------------------------------------------------------

// targets: ["127.0.0.1:port", ...] scraped every second as job "roomcast".
// ruleFiles: absolute paths of rule files to load (the repo's alert rules, say).
async function startPrometheus({ targets, ruleFiles = [], job = 'roomcast' }) {
  ensureServers();
  const dir = makeTempDir('prometheus');
  const port = await freePort();
  const conf = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    ruleFiles.length ? 'rule_files:' : '',
    ...ruleFiles.map((f) => `  - ${JSON.stringify(f)}`),
    'scrape_configs:',
    `  - job_name: ${JSON.stringify(job)}`,
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: ${JSON.stringify(targets)}`,
    '',
  ].filter((l) => l !== '').join('\n') + '\n';
  const confFile = path.join(dir, 'prometheus.yml');
  fs.writeFileSync(confFile, conf);
  const proc = new Managed('prometheus', which('prometheus', ['/usr/bin', '/usr/sbin']), [
    `--config.file=${confFile}`,
    `--web.listen-address=127.0.0.1:${port}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    '--storage.tsdb.retention.time=1h',
    '--log.level=warn',
  ]);
  await waitUntil(async () => {
    if (proc.exit) throw new Error(`prometheus exited ${JSON.stringify(proc.exit)}: ${proc.tail()}`);
    return (await httpGet(port, '/-/ready')).status === 200;
  }, { timeout: STARTUP_TIMEOUT_MS, interval: 100, what: `prometheus on ${port}` });

  const api = async (p) => {
    const res = await httpGet(port, p);
    const body = res.json();
    if (res.status !== 200 || body.status !== 'success') {
      throw new Error(`prometheus ${p}: ${res.status} ${res.body}`);
    }
    return body.data;
  };
  return {
    port,
    dir,
    confFile,
    proc,
    api,
    // the result vector of an instant query
    query: async (expr) => (await api(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result,
    targets: async () => (await api('/api/v1/targets')).activeTargets,
    rules: async () => (await api('/api/v1/rules')).groups,
    stop: () => proc.stop(),
  };
}

// ---- nginx ---------------------------------------------------------------------------------------

// Runs nginx as the current user on a generated config: `httpBlock` is the content of the http{}
// block (upstreams and servers); `ports` are waited for. Temp paths, pid and logs stay in the temp
// dir; the access log has one line per request: client address, request line, status and
// `up=<upstream address>` (which node served it).
async function startNginx({ httpBlock, ports }) {
  ensureServers();
  const dir = makeTempDir('nginx');
  fs.chmodSync(dir, 0o755);
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) {
    fs.mkdirSync(path.join(dir, sub), { mode: 0o777 });
  }
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const conf = `# generated by test/e2e/lib/ops.js
${asRoot ? 'user root root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  log_format roomcast_ops '$remote_addr [$time_local] "$request" $status up=$upstream_addr';
  access_log ${dir}/logs/access.log roomcast_ops;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${httpBlock}
}
`;
  const confFile = path.join(dir, 'nginx.conf');
  fs.writeFileSync(confFile, conf);
  const bin = which('nginx', ['/usr/sbin', '/usr/bin']);
  const test = spawnSync(bin, ['-t', '-p', dir, '-c', confFile, '-e', `${dir}/logs/error.log`], { encoding: 'utf8' });
  if (test.status !== 0) throw new Error(`nginx -t failed:\n${test.stderr}\n--- conf ---\n${conf}`);
  const proc = new Managed('nginx', bin, ['-p', dir, '-c', confFile, '-e', `${dir}/logs/error.log`, '-g', 'daemon off;']);
  for (const port of ports) {
    await waitUntil(async () => {
      if (proc.exit) throw new Error(`nginx exited ${JSON.stringify(proc.exit)}: ${proc.tail()}`);
      return await new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('connect', () => { s.destroy(); resolve(true); });
        s.on('error', () => resolve(false));
      });
    }, { timeout: STARTUP_TIMEOUT_MS, interval: 50, what: `nginx on ${port}` });
  }
  return {
    dir,
    confFile,
    proc,
    accessLog: () => { try { return fs.readFileSync(path.join(dir, 'logs', 'access.log'), 'utf8'); } catch { return ''; } },
    errorLog: () => { try { return fs.readFileSync(path.join(dir, 'logs', 'error.log'), 'utf8'); } catch { return ''; } },
    stop: () => proc.stop(),
  };
}

// docker/nginx/roomcast.conf itself (the compose demo's load balancer: sticky `hash $remote_addr
// consistent`), with its `server roomcast-N:3000` lines pointed at the test's nodes (node N-1; the
// lines beyond nodes.length are dropped) and its `listen 8080;` at a loopback port. The result is
// an httpBlock for startNginx. Fails if the file no longer has the shape this relies on.
function nginxRepoConf(nodes, port) {
  const file = path.join(REPO, 'docker', 'nginx', 'roomcast.conf');
  const text = fs.readFileSync(file, 'utf8');
  let servers = 0;
  let listens = 0;
  const out = text
    .replace(/^(\s*)server\s+roomcast-(\d+):3000(\s[^;]*)?;\n/gm, (m, indent, n, params) => {
      const node = nodes[Number(n) - 1];
      if (!node) return '';
      servers++;
      return `${indent}server 127.0.0.1:${node.port}${params || ''};\n`;
    })
    .replace(/^(\s*)listen\s+8080;/gm, (m, indent) => { listens++; return `${indent}listen 127.0.0.1:${port};`; });
  if (servers !== nodes.length) throw new Error(`${file}: ${servers} "server roomcast-N:3000" lines for ${nodes.length} nodes`);
  if (listens !== 1) throw new Error(`${file}: expected one "listen 8080;"`);
  if (!/hash \$remote_addr consistent;/.test(out)) throw new Error(`${file}: no "hash $remote_addr consistent;"`);
  return out;
}

// ---- metrics -------------------------------------------------------------------------------------

// Parses the text exposition into {name{labels}: value} (samples only).
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

// Metric family names (from # TYPE lines) of an exposition.
function metricFamilies(text) {
  const names = new Set();
  for (const line of text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (m) names.add(m[1]);
  }
  return names;
}

async function scrape(port) {
  const res = await httpGet(port, '/metrics');
  if (res.status !== 200) throw new Error(`/metrics on ${port}: ${res.status}`);
  return res.body;
}

// One sample's value from a node's /metrics (undefined when absent).
async function metric(port, series) {
  return parseMetrics(await scrape(port)).get(series);
}

// ---- node config ---------------------------------------------------------------------------------

// The rules the ops tests rely on, kept here so that they do not depend on other suites' configs:
// join/leave by ack (rooms allowed by the token's `rooms` claim) and `say`, relayed to a room as
// `said` {from, text}. Short engine timings as in the other suites; drain.grace 200 ms unless set.
function opsConfig({ drainGrace = 200 } = {}) {
  const ackError = [{ ack: { ok: false, error: '{error}' } }];
  return {
    engine: { pingInterval: 500, pingTimeout: 400, connectTimeout: 2000 },
    drain: { grace: drainGrace },
    namespaces: {
      '/': {
        events: {
          join: { do: [{ join: '{data.room|data}' }, { ack: { ok: true, room: '{room}' } }], onError: ackError },
          leave: { do: [{ leave: '{data.room|data}' }, { ack: { ok: true, room: '{room}' } }], onError: ackError },
          say: {
            do: [
              { relay: { room: '{data.room}', event: 'said', data: { from: '{user}', text: '{data.text}' },
                includeSender: true, requireMember: true } },
              { ack: { ok: true, room: '{room}' } },
            ],
            onError: ackError,
          },
        },
      },
    },
  };
}

// ---- socket.io-client across addresses -----------------------------------------------------------

// Options that make socket.io-client connect from a given loopback source address, for both of
// its transports (xmlhttprequest-ssl polling and ws): sticky hashing on $remote_addr then spreads
// clients over the upstreams as it would spread real users.
function fromAddress(localAddress) {
  return { agent: new http.Agent({ localAddress, keepAlive: false }), localAddress };
}

module.exports = {
  REPO, ensureServers, which, makeTempDir, Managed, waitUntil, httpGet,
  startRedis, redisCommand, startPrometheus, startNginx, nginxRepoConf, opsConfig,
  parseMetrics, metricFamilies, scrape, metric, fromAddress,
};
