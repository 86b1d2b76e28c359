// Checks helm/roomcast:
//
//   node test/deploy/check-chart.mjs [ROOMCAST_BINARY]
//
// For each values file of helm/roomcast/ci/: `helm lint --strict`, `helm template`, then the
// rendered manifests through validate-manifests.mjs (Kubernetes schemas, strict fields, and the
// roomcast requirements for multi-pod installs), and, with a roomcast binary, the ConfigMap's
// config.json through `roomcast --check-config` with the keys the pods would get. Then the
// mistakes the chart must refuse at template time (no Redis, embedded Redis with several pods, a
// grace period shorter than the drain, secrets in the ConfigMap, a typo in values).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const chart = path.join(repo, 'helm', 'roomcast');
const helm = process.env.HELM || path.join(repo, 'build', 'tools', 'helm');
const binary = process.argv[2];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'check-chart-'));

const failures = [];
const fail = (m) => { failures.push(m); console.error(`FAIL ${m}`); };
const ok = (m) => console.log(`ok   ${m}`);
const run = (cmd, args, opts = {}) => spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });

// A throwaway key pair for installs whose public key lives in an existing Secret.
function publicKeyFile() {
  const key = path.join(tmp, 'k.pem');
  const pub = path.join(tmp, 'pub.pem');
  if (!fs.existsSync(pub)) {
    execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: 'ignore' });
    execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub], { stdio: 'ignore' });
  }
  return pub;
}

const ciDir = path.join(chart, 'ci');
const valueFiles = fs.readdirSync(ciDir).filter((f) => f.endsWith('-values.yaml')).sort();
if (!valueFiles.length) fail('no helm/roomcast/ci/*-values.yaml');

for (const vf of valueFiles) {
  const values = path.join(ciDir, vf);
  const lint = run(helm, ['lint', '--strict', chart, '-f', values]);
  if (lint.status !== 0) { fail(`helm lint --strict -f ci/${vf}:\n${lint.stdout}${lint.stderr}`); continue; }
  const tpl = run(helm, ['template', 'roomcast', chart, '-f', values, '--namespace', 'realtime']);
  if (tpl.status !== 0) { fail(`helm template -f ci/${vf}:\n${tpl.stderr}`); continue; }
  const out = path.join(tmp, vf.replace('-values.yaml', '.rendered.yaml'));
  fs.writeFileSync(out, tpl.stdout);
  const docs = YAML.parseAllDocuments(tpl.stdout).map((d) => d.toJS()).filter(Boolean);
  const multiPod = !docs.some((d) => d.kind === 'Deployment' && d.spec.replicas === 1);
  const v = run('node', [path.join(here, 'validate-manifests.mjs'), ...(multiPod ? ['--require-roomcast'] : []), out]);
  if (v.status !== 0) fail(`ci/${vf}: rendered manifests invalid:\n${v.stderr}`);
  else ok(`ci/${vf}: lint --strict, template, ${v.stdout.trim()}`);

  if (binary) {
    const cm = docs.find((d) => d.kind === 'ConfigMap');
    const secret = docs.find((d) => d.kind === 'Secret');
    const dep = docs.find((d) => d.kind === 'Deployment');
    const envNames = new Set(dep.spec.template.spec.containers[0].env.map((e) => e.name));
    const cfg = path.join(tmp, `${vf}.config.json`);
    fs.writeFileSync(cfg, cm.data['config.json']);
    const env = { PATH: process.env.PATH };
    const sd = (secret && secret.stringData) || {};
    if (envNames.has('ROOMCAST_JWT_SECRET')) env.ROOMCAST_JWT_SECRET = sd['jwt-secret'] || 'from-existing-secret-0123456789abcdef';
    if (envNames.has('ROOMCAST_JWT_PUBLIC_KEY_FILE')) {
      if (sd['jwt-public-key.pem']) {
        env.ROOMCAST_JWT_PUBLIC_KEY_FILE = path.join(tmp, `${vf}.pub.pem`);
        fs.writeFileSync(env.ROOMCAST_JWT_PUBLIC_KEY_FILE, sd['jwt-public-key.pem']);
      } else env.ROOMCAST_JWT_PUBLIC_KEY_FILE = publicKeyFile();
    }
    if (envNames.has('ROOMCAST_REDIS_URL')) env.ROOMCAST_REDIS_URL = sd['redis-url'] || 'redis://redis:6379';
    if (envNames.has('ROOMCAST_ADMIN_USERNAME')) { // the Admin UI (docs/admin-ui.md): plain values, the hash from a Secret
      const plain = (name) => (dep.spec.template.spec.containers[0].env.find((e) => e.name === name) || {}).value;
      for (const k of ['ROOMCAST_ADMIN_USERNAME', 'ROOMCAST_ADMIN_READONLY', 'ROOMCAST_ADMIN_MODE']) if (plain(k)) env[k] = plain(k);
      env.ROOMCAST_ADMIN_PASSWORD_HASH = sd['admin-password-hash'] || '$2b$04$wGywva59Semb2QUigHlK1uw.3MYlUWBh5L1ikdZKNeAXjMcmq6gc6';
    }
    const r = run(binary, ['--check-config', '--config', cfg], { env });
    if (r.status !== 0) fail(`ci/${vf}: roomcast --check-config rejects the ConfigMap's config.json:\n${r.stdout}${r.stderr}`);
    else ok(`ci/${vf}: roomcast --check-config accepts the rendered config.json`);
  }
}

// ---- the PrometheusRule carries deploy/prometheus/roomcast-alerts.yml unchanged ----------------------
const alerts = path.join(repo, 'deploy', 'prometheus', 'roomcast-alerts.yml');
const copy = path.join(chart, 'files', 'roomcast-alerts.yml');
if (!fs.existsSync(copy) || fs.readFileSync(copy, 'utf8') !== fs.readFileSync(alerts, 'utf8')) {
  fail('helm/roomcast/files/roomcast-alerts.yml differs from deploy/prometheus/roomcast-alerts.yml: cp deploy/prometheus/roomcast-alerts.yml helm/roomcast/files/');
} else {
  const r = run(helm, ['template', 'roomcast', chart, '-f', path.join(ciDir, 'minimal-values.yaml'),
    '--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.runbookBaseUrl=https://docs.example.org/roomcast/',
    '--show-only', 'templates/prometheusrule.yaml']);
  const rule = r.status === 0 ? YAML.parse(r.stdout) : null;
  if (!rule) fail(`PrometheusRule did not render:\n${r.stderr}`);
  else {
    const rulesFile = path.join(tmp, 'prometheusrule-groups.yml');
    fs.writeFileSync(rulesFile, YAML.stringify({ groups: rule.spec.groups }));
    const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));
    // the chart puts the runbook links under its base; everything else is the file unchanged
    const expected = YAML.parse(fs.readFileSync(alerts, 'utf8').replaceAll('https://roomcast.example/docs',
      'https://docs.example.org/roomcast')).groups;
    const same = canon(rule.spec.groups) === canon(expected);
    const links = rule.spec.groups.flatMap((g) => g.rules).map((r) => r.annotations && r.annotations.runbook_url);
    if (links.some((u) => !/^https:\/\/docs\.example\.org\/roomcast\/operations\.md#roomcast[a-z]+$/.test(u || '')))
      fail(`every alert needs an absolute runbook_url under the chart's base: ${links.join(' ')}`);
    const pt = run('promtool', ['check', 'rules', rulesFile]);
    if (!same) fail('the rendered PrometheusRule groups differ from deploy/prometheus/roomcast-alerts.yml');
    else if (pt.status !== 0) fail(`promtool check rules on the rendered PrometheusRule:\n${pt.stdout}${pt.stderr}`);
    else ok('PrometheusRule = deploy/prometheus/roomcast-alerts.yml with runbook_url under the chart\'s base, and promtool accepts its groups');
  }
}

// ---- what the chart must refuse --------------------------------------------------------------------
const minimal = path.join(ciDir, 'minimal-values.yaml');
const refusals = [
  ['PrometheusRule without a runbook base', ['-f', minimal, '--set', 'prometheusRule.enabled=true'], /prometheusRule\.runbookBaseUrl is required/],
  ['no Redis', ['--set', 'auth.jwtSecret=x'], /redis\.url \(or redis\.existingSecret\) is required/],
  ['no JWT key', ['--set', 'redis.url=redis://r:6379'], /a JWT key is required/],
  ['embedded Redis with 3 pods', ['-f', minimal, '--set', 'redis.embedded=true', '--set', 'autoscaling.enabled=false'], /redis\.embedded=true serves rooms from one pod only/],
  ['grace period below the drain', ['-f', minimal, '--set', 'terminationGracePeriodSeconds=20'], /must be above preStopSleepSeconds \+ drain\.grace/],
  ['a secret in the ConfigMap', ['-f', minimal, '--set', 'config.jwt.secret=oops'], /config\.jwt\.secret would land in a ConfigMap/],
  ['the development page in config', ['-f', minimal, '--set', 'config.dev.page=true'], /config\.dev is the development page/],
  ['the development page in extraEnv', ['-f', minimal, '--set', 'extraEnv[0].name=ROOMCAST_DEV_PAGE', '--set-string', 'extraEnv[0].value=1'], /extraEnv ROOMCAST_DEV_PAGE is the development page/],
  ['a typo in values', ['-f', minimal, '--set', 'replicaCuont=3'], /Additional property replicaCuont is not allowed/],
  ['an unknown sticky mode', ['-f', minimal, '--set', 'ingress.sticky=sometimes'], /ingress\.sticky|sticky: .*must be one of/],
];
for (const [what, args, expect] of refusals) {
  const r = run(helm, ['template', 'roomcast', chart, ...args]);
  if (r.status === 0) fail(`helm template accepted ${what}`);
  else if (!expect.test(r.stderr)) fail(`helm template refused ${what}, but not with the expected message:\n${r.stderr}`);
  else ok(`refuses ${what}`);
}

fs.rmSync(tmp, { recursive: true, force: true });
if (failures.length) {
  console.error(`helm/roomcast: ${failures.length} problem(s)`);
  process.exit(1);
}
console.log('helm/roomcast: lint, template, schemas and refusals all good');
