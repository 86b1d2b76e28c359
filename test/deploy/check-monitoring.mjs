// Checks the monitoring files:
//
//   node test/deploy/check-monitoring.mjs
//
// 1. deploy/prometheus/roomcast-alerts.yml: `promtool check rules`, and its unit tests
//    (`promtool test rules roomcast-alerts.test.yml`: each alert fires, or not, on synthetic series).
// 2. deploy/prometheus/prometheus.yml: `promtool check config` (Debian's promtool lacks Kubernetes
//    service discovery: kubernetes_sd_configs is swapped for a static target, the rest is checked
//    as written, relabelling included).
// 3. deploy/grafana/roomcast.json: a Grafana dashboard (schemaVersion, unique uid and panel ids,
//    layout within 24 columns, every query on the ${datasource} variable and filtered by $job).
//    That each query runs in a real Prometheus and names only metrics a node exposes is checked by
//    test/e2e/ops_prometheus.test.js.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const promDir = path.join(repo, 'deploy', 'prometheus');
const failures = [];
const fail = (m) => { failures.push(m); console.error(`FAIL ${m}`); };
const ok = (m) => console.log(`ok   ${m}`);
const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => fs.existsSync(p)) || 'promtool';
const run = (args, cwd) => spawnSync(promtool, args, { encoding: 'utf8', cwd });
const last = (r) => (r.stdout + r.stderr).trim().split('\n').slice(-1)[0];

// ---- 1. rules ---------------------------------------------------------------------------------------
let r = run(['check', 'rules', 'roomcast-alerts.yml'], promDir);
if (r.status !== 0) fail(`promtool check rules:\n${r.stdout}${r.stderr}`);
else ok(`promtool check rules roomcast-alerts.yml: ${last(r)}`);
r = run(['test', 'rules', 'roomcast-alerts.test.yml'], promDir);
if (r.status !== 0) fail(`promtool test rules:\n${r.stdout}${r.stderr}`);
else ok(`promtool test rules roomcast-alerts.test.yml: ${last(r)}`);

// ---- 2. scrape config ----------------------------------------------------------------------------------
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'check-monitoring-'));
const conf = fs.readFileSync(path.join(promDir, 'prometheus.yml'), 'utf8');
const swapped = conf.replace(/^( +)kubernetes_sd_configs:\n\1  - role: pod\n/m, '$1static_configs:\n$1  - targets: ["127.0.0.1:3000"]\n');
if (swapped === conf) fail('prometheus.yml: the kubernetes_sd_configs block to swap was not found');
fs.writeFileSync(path.join(tmp, 'prometheus.yml'), swapped);
fs.copyFileSync(path.join(promDir, 'roomcast-alerts.yml'), path.join(tmp, 'roomcast-alerts.yml'));
r = run(['check', 'config', 'prometheus.yml'], tmp);
if (r.status !== 0) fail(`promtool check config prometheus.yml:\n${r.stdout}${r.stderr}`);
else ok('promtool check config prometheus.yml (rule file included)');
fs.rmSync(tmp, { recursive: true, force: true });

// ---- 3. dashboard --------------------------------------------------------------------------------------
const dashFile = path.join(repo, 'deploy', 'grafana', 'roomcast.json');
let dash;
try { dash = JSON.parse(fs.readFileSync(dashFile, 'utf8')); } catch (e) { fail(`roomcast.json: ${e.message}`); }
if (dash) {
  if (!dash.uid || !dash.title || !(dash.schemaVersion >= 30)) fail('dashboard: uid, title and schemaVersion >= 30 required');
  const vars = new Map((dash.templating?.list || []).map((v) => [v.name, v]));
  if (vars.get('datasource')?.type !== 'datasource' || vars.get('datasource')?.query !== 'prometheus') fail('dashboard: no Prometheus datasource variable');
  for (const v of ['job', 'instance']) if (vars.get(v)?.type !== 'query') fail(`dashboard: no $${v} variable`);
  const ids = new Set();
  let queries = 0;
  const walk = (panels) => {
    for (const p of panels || []) {
      if (ids.has(p.id)) fail(`dashboard: duplicate panel id ${p.id}`);
      ids.add(p.id);
      const g = p.gridPos || {};
      if (!(g.w > 0 && g.h > 0 && g.x >= 0 && g.x + g.w <= 24 && g.y >= 0)) fail(`dashboard: panel "${p.title}" gridPos ${JSON.stringify(g)}`);
      if (p.type !== 'row') {
        if (p.datasource?.uid !== '${datasource}') fail(`dashboard: panel "${p.title}" is not on the datasource variable`);
        if (!(p.targets || []).length) fail(`dashboard: panel "${p.title}" has no query`);
        for (const t of p.targets || []) {
          queries++;
          if (!t.expr || !t.refId) fail(`dashboard: panel "${p.title}" has a target without expr/refId`);
          else if (!/job=~"\$job"/.test(t.expr)) fail(`dashboard: panel "${p.title}" query ignores $job: ${t.expr}`);
        }
      }
      walk(p.panels);
    }
  };
  walk(dash.panels);
  if (queries < 20) fail(`dashboard: only ${queries} queries`);
  if (!failures.length) ok(`deploy/grafana/roomcast.json: ${ids.size} panels, ${queries} queries`);
}

if (failures.length) {
  console.error(`monitoring: ${failures.length} problem(s)`);
  process.exit(1);
}
console.log('monitoring: rules, rule tests, scrape config and dashboard all good');
