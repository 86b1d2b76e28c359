// Validates Kubernetes manifests (multi-document YAML files, or stdin with "-") against the
// Kubernetes API schemas, offline:
//
//   node test/deploy/validate-manifests.mjs [--require-roomcast] FILE... | -
//
// 1. Schema: every document goes through the validator that the npm package kubernetes-models
//    compiled from the Kubernetes OpenAPI schemas (types, required fields, enums, formats), chosen
//    by apiVersion and kind; ServiceMonitor through @kubernetes-models/prometheus-operator (its CRD
//    schema). An apiVersion/kind without a schema is an error, not a skip.
// 2. Strict fields: the OpenAPI schemas allow unknown properties, but `kubectl apply` (server-side
//    field validation, Strict by default since 1.27) refuses them. So every key is also looked up in
//    the declared fields of its type (the same package's .d.ts declarations), recursively: a typo
//    such as `readinesProbe` fails here as it would on a cluster.
// 3. With --require-roomcast, what the roomcast deployment must have (issue 7; docs/operations.md):
//    probes on /healthz and /readyz, terminationGracePeriodSeconds above the preStop sleep plus
//    config.json's drain.grace, pod anti-affinity, a PodDisruptionBudget, an HPA aimed at the
//    Deployment, a Service selecting the pods, the config mounted from the ConfigMap, non-root.
//
// Exits 1 with one line per problem, 0 with a summary line.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, 'node_modules');

// apiVersion -> module directory of its models
const GROUPS = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'monitoring.coreos.com/v1': '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
};

const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

// ---- strict field check from the .d.ts declarations ----------------------------------------------

const dtsCache = new Map();

// Properties declared by the class of a model file, and where its imported type names live.
function declarations(dtsFile) {
  if (dtsCache.has(dtsFile)) return dtsCache.get(dtsFile);
  let decl = null;
  if (fs.existsSync(dtsFile)) {
    const text = fs.readFileSync(dtsFile, 'utf8');
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";/gm)) {
      for (const name of m[1].split(',').map((s) => s.trim())) imports.set(name, m[2]);
    }
    const cls = /export declare class \w+ extends Model<[^>]+>(?: implements [^{]+)? \{\n([\s\S]*?)\n\}/m.exec(text);
    if (cls) {
      const props = new Map();
      // `"name"?: Type;` on one line, or `"name"?: {` opening a multi-line inline type (a map)
      for (const m of cls[1].matchAll(/^ {4}"([^"]+)"\??: (.+)$/gm)) {
        props.set(m[1], m[2].endsWith('{') ? '{' : m[2].replace(/;$/, ''));
      }
      decl = { props, imports, dir: path.dirname(dtsFile) };
    }
  }
  dtsCache.set(dtsFile, decl);
  return decl;
}

function resolveImport(fromDir, spec) {
  const base = spec.startsWith('.') ? path.resolve(fromDir, spec) : path.join(modules, spec);
  return base.replace(/\.js$/, '') + '.d.ts';
}

// Walks `value` along the declared type `typeExpr` (as written in `decl`'s file).
function strictWalk(value, typeExpr, decl, where) {
  if (value === null || typeof value !== 'object') return;
  let t = typeExpr.trim();
  const arr = /^Array<(.+)>$/.exec(t);
  if (arr) {
    if (Array.isArray(value)) value.forEach((v, i) => strictWalk(v, arr[1], decl, `${where}[${i}]`));
    return;
  }
  if (t.startsWith('{')) return; // an index signature (map): any key
  const name = /^[A-Za-z0-9_]+$/.test(t) ? t : null;
  if (!name || !decl.imports.has(name)) return; // primitive, union, alias to something open
  const target = declarations(resolveImport(decl.dir, decl.imports.get(name)));
  if (!target) return; // a type alias (IntOrString, Quantity, RawExtension...): no fields to check
  strictObject(value, target, where);
}

function strictObject(obj, decl, where) {
  if (Array.isArray(obj)) return;
  for (const [k, v] of Object.entries(obj)) {
    if (!decl.props.has(k)) {
      problem(where, `unknown field "${k}"`);
      continue;
    }
    strictWalk(v, decl.props.get(k), decl, `${where}.${k}`);
  }
}

// ---- schema validation ----------------------------------------------------------------------------

async function modelFor(apiVersion, kind) {
  const dir = GROUPS[apiVersion];
  if (!dir || !/^[A-Za-z]+$/.test(kind || '')) return null;
  const file = path.join(modules, dir, `${kind}.js`);
  if (!fs.existsSync(file)) return null;
  const mod = await import(pathToFileURL(file).href);
  return { Model: mod[kind], dts: path.join(modules, dir, `${kind}.d.ts`) };
}

async function validateDoc(doc, where) {
  if (!doc || typeof doc !== 'object') return problem(where, 'not an object');
  const { apiVersion, kind } = doc;
  const m = await modelFor(apiVersion, kind);
  if (!m) return problem(where, `no schema for ${apiVersion} ${kind}`);
  try {
    new m.Model(doc).validate();
  } catch (e) {
    const details = (e.errors || []).map((x) => `${x.instancePath || '/'} ${x.message}`).join('; ');
    problem(where, `schema: ${details || e.message}`);
  }
  const decl = declarations(m.dts);
  if (!decl) return problem(where, `cannot read the field declarations of ${kind}`);
  strictObject(doc, decl, `${where} ${kind}`);
}

// ---- roomcast requirements -----------------------------------------------------------------------

function requireRoomcast(docs, where) {
  const of = (kind) => docs.filter((d) => d.kind === kind);
  const [dep] = of('Deployment');
  if (!dep) return problem(where, 'no Deployment');
  const pod = dep.spec.template.spec;
  const c = pod.containers.find((x) => x.name === 'roomcast') || pod.containers[0];
  const podLabels = dep.spec.template.metadata.labels || {};
  const selects = (sel) => sel && Object.entries(sel).every(([k, v]) => podLabels[k] === v);

  if (!selects(dep.spec.selector.matchLabels)) problem(where, 'Deployment selector does not match its pod labels');
  if (!c.readinessProbe || c.readinessProbe.httpGet?.path !== '/readyz') problem(where, 'readinessProbe must GET /readyz');
  if (!c.livenessProbe || c.livenessProbe.httpGet?.path !== '/healthz') problem(where, 'livenessProbe must GET /healthz');
  const ports = new Set((c.ports || []).map((p) => p.name));
  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const p = c[probe]?.httpGet?.port;
    if (typeof p === 'string' && !ports.has(p)) problem(where, `${probe} uses port "${p}", not a container port`);
  }
  const pa = pod.affinity?.podAntiAffinity;
  if (!pa || !(pa.preferredDuringSchedulingIgnoredDuringExecution || pa.requiredDuringSchedulingIgnoredDuringExecution)) {
    problem(where, 'no pod anti-affinity');
  }
  if (pod.securityContext?.runAsNonRoot !== true) problem(where, 'pod securityContext.runAsNonRoot must be true');

  // terminationGracePeriodSeconds > preStop sleep + drain.grace of the mounted config
  const cm = of('ConfigMap').find((x) => x.data && x.data['config.json']);
  let graceMs = 30000;
  if (!cm) problem(where, 'no ConfigMap with config.json');
  else {
    try {
      const cfg = JSON.parse(cm.data['config.json']);
      if (cfg.drain && cfg.drain.grace) graceMs = cfg.drain.grace;
    } catch (e) { problem(where, `config.json in the ConfigMap is not JSON: ${e.message}`); }
    const vol = (pod.volumes || []).find((v) => v.configMap && v.configMap.name === cm.metadata.name);
    const mounted = vol && (c.volumeMounts || []).some((m) => m.name === vol.name && m.mountPath === '/etc/roomcast/config.json');
    if (!mounted) problem(where, 'config.json is not mounted at /etc/roomcast/config.json');
    const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
    if (env.ROOMCAST_CONFIG !== '/etc/roomcast/config.json') problem(where, 'ROOMCAST_CONFIG must point at the mounted config');
  }
  const pre = c.lifecycle?.preStop?.exec?.command?.[0] === 'sleep' ? Number(c.lifecycle.preStop.exec.command[1]) : 0;
  const tgps = pod.terminationGracePeriodSeconds ?? 30;
  if (!(tgps > pre + graceMs / 1000)) {
    problem(where, `terminationGracePeriodSeconds ${tgps} must exceed preStop ${pre} s + drain.grace ${graceMs / 1000} s`);
  }

  const svc = of('Service')[0];
  if (!svc || !selects(svc.spec.selector)) problem(where, 'no Service selecting the pods');
  const pdb = of('PodDisruptionBudget')[0];
  if (!pdb || !selects(pdb.spec.selector.matchLabels)) problem(where, 'no PodDisruptionBudget selecting the pods');
  const hpa = of('HorizontalPodAutoscaler')[0];
  if (!hpa || hpa.spec.scaleTargetRef.kind !== 'Deployment' || hpa.spec.scaleTargetRef.name !== dep.metadata.name) {
    problem(where, 'no HorizontalPodAutoscaler aimed at the Deployment');
  }
  if (hpa && dep.spec.replicas !== undefined) problem(where, 'Deployment sets replicas while an HPA owns the count');
  for (const sm of of('ServiceMonitor')) {
    if (!svc || !Object.entries(sm.spec.selector.matchLabels || {}).every(([k, v]) => svc.metadata.labels?.[k] === v)) {
      problem(where, 'ServiceMonitor does not select the Service');
    }
  }
  for (const ing of of('Ingress')) {
    const a = ing.metadata.annotations || {};
    if (!a['nginx.ingress.kubernetes.io/affinity'] && !a['nginx.ingress.kubernetes.io/upstream-hash-by']) {
      problem(where, 'Ingress has no session affinity (polling needs it)');
    }
  }
}

// ---- main ------------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const roomcast = args.includes('--require-roomcast');
const files = args.filter((a) => a !== '--require-roomcast');
if (!files.length) {
  console.error('usage: validate-manifests.mjs [--require-roomcast] FILE... | -');
  process.exit(2);
}
let count = 0;
const all = [];
for (const file of files) {
  const text = file === '-' ? fs.readFileSync(0, 'utf8') : fs.readFileSync(file, 'utf8');
  const name = file === '-' ? 'stdin' : path.relative(process.cwd(), file);
  const docs = YAML.parseAllDocuments(text, { prettyErrors: true });
  for (const [i, d] of docs.entries()) {
    for (const e of [...d.errors, ...d.warnings]) problem(`${name} doc ${i + 1}`, `YAML: ${e.message}`);
    const obj = d.toJS();
    if (obj === null || obj === undefined) continue;
    count++;
    all.push(obj);
    await validateDoc(obj, `${name} doc ${i + 1}${obj.metadata?.name ? ` (${obj.kind} ${obj.metadata.name})` : ''}`);
  }
}
if (roomcast) requireRoomcast(all, files.join(' '));
if (!count) problem(files.join(' '), 'no documents');
if (problems.length) {
  for (const p of problems) console.error(`INVALID ${p}`);
  process.exit(1);
}
const kinds = [...new Set(all.map((d) => d.kind))].join(', ');
console.log(`valid: ${count} documents (${kinds}) in ${files.length} file(s)${roomcast ? ', roomcast requirements met' : ''}`);
