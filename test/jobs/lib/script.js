'use strict';
// roomcast's hand-off script, exactly as the C build embeds it (src/jobs_lua.h), and the EVAL
// call src/jobs.c makes with it: the same KEYS, ARGV and opts JSON (test/unit/test_jobs.c checks
// the C side's opts text and keys against the same expectations).
const fs = require('node:fs');
const path = require('node:path');

const HEADER = path.join(__dirname, '..', '..', '..', 'src', 'jobs_lua.h');

// The header's format (see its opening comment): between the BEGIN and END comments, one Lua line
// per C line written as "<lua>\n", no double quote or backslash inside.
function loadScript(file = HEADER) {
  const text = fs.readFileSync(file, 'utf8');
  const begin = text.indexOf('/* BEGIN notify_offline.lua */');
  const end = text.indexOf('/* END notify_offline.lua */');
  if (begin < 0 || end < begin) throw new Error(`${file}: BEGIN/END markers not found`);
  const lines = text.slice(begin, end).split('\n').slice(1).filter(l => l.trim() !== '');
  return lines.map((l, i) => {
    const m = /^\s*"([^"\\]*)\\n"$/.exec(l);
    if (!m) throw new Error(`${file}: line ${i + 1} of the script is not "<lua>\\n": ${l}`);
    return m[1] + '\n';
  }).join('');
}

const LUA = loadScript();

// The defaults of rc_jobs_config_init (src/jobs.c), in the config file's spelling.
const DEFAULTS = Object.freeze({
  queue: 'email', name: 'send-email', prefix: 'bull', attempts: 3,
  backoff: { type: 'exponential', delay: 1000 }, priority: 0, delay: 0,
  removeOnComplete: { age: 86400, count: 1000 }, removeOnFail: { age: 604800 },
  dedupTtl: 86400000,
});

// rc_jobs_opts_json: the opts object as BullMQ stores it.
function optsFor(cfg, jobId) {
  const o = { attempts: cfg.attempts };
  if (cfg.backoff) {
    o.backoff = typeof cfg.backoff === 'number'
      ? { type: 'fixed', delay: cfg.backoff }
      : { type: cfg.backoff.type, delay: cfg.backoff.delay ?? 0,
          ...(cfg.backoff.jitter > 0 ? { jitter: cfg.backoff.jitter } : {}) };
  }
  if (cfg.delay > 0) o.delay = cfg.delay;
  if (cfg.priority > 0) o.priority = cfg.priority;
  o.removeOnComplete = cfg.removeOnComplete;
  o.removeOnFail = cfg.removeOnFail;
  if (cfg.dedupTtl > 0) o.de = { id: jobId, ttl: cfg.dedupTtl };
  o.jobId = jobId;
  return o;
}

// rc_jobs_notify_offline's EVALSHA: resolves to 1 (added), 0 (online) or 2 (duplicate).
// p: { rcPrefix = 'roomcast', user, jobId, notification (object), cfg overrides, ts }
async function handOff(redis, p) {
  const cfg = { ...DEFAULTS, ...(p.cfg || {}) };
  const q = `${cfg.prefix}:${cfg.queue}:`;
  const keys = [
    `${p.rcPrefix || 'roomcast'}:presence:${p.user}`, q + p.jobId,
    ...['id', 'meta', 'wait', 'paused', 'active', 'prioritized', 'pc', 'delayed', 'marker', 'events']
      .map(s => q + s),
    `${q}de:${p.jobId}`,
  ];
  const data = typeof p.notification === 'string' ? p.notification : JSON.stringify(p.notification);
  const args = [p.jobId, cfg.name, data, JSON.stringify(optsFor(cfg, p.jobId)),
    String(p.ts ?? Date.now()), String(cfg.delay), String(cfg.priority), String(cfg.dedupTtl)];
  return redis.eval(LUA, keys.length, ...keys, ...args);
}

// rc_jobs_forward_event's XADD.
function forwardArgs(rcPrefix, maxLen, ev) {
  return [`${rcPrefix}:events`, 'MAXLEN', '~', String(maxLen), '*',
    'ns', ev.ns, 'event', ev.event, 'user', ev.user, 'sid', ev.sid, 'node', ev.node,
    'data', ev.data, 'ts', String(ev.ts)];
}

module.exports = { LUA, loadScript, DEFAULTS, optsFor, handOff, forwardArgs };
