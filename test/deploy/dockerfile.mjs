// Proves docker/Dockerfile without a docker engine, by doing what its build stage says:
//
//   node test/deploy/dockerfile.mjs [--out DIR]
//
// 1. Parses docker/Dockerfile (continuations, comments, JSON forms).
// 2. Build stage: in a scratch directory standing in for the image's filesystem, performs each
//    COPY (every source must be admitted by docker/Dockerfile.dockerignore, the build context's
//    allow-list) and each RUN (with `sh -c`, in WORKDIR, ARG defaults in the environment), exactly
//    as written. These are deploy/install-deps.sh and `make build/roomcast`, the steps `make test`
//    runs; running them from a tree holding only the copied files proves the image builds from
//    what the context admits.
// 3. Runtime stage: both stages are Debian 12 slim; the user is not root; every shared library the
//    built binary links (ldd -> dpkg -S) belongs to a package the stage installs, to one of their
//    dependencies, or to Debian's required set (present in every Debian image); the binary is
//    copied from where the build stage made it to the ENTRYPOINT's path; the HEALTHCHECK command
//    passes against a node started from the built binary with docker/config.json, and fails when
//    nothing listens.
// With --out DIR the built binary is left at DIR/roomcast for further checks.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const DOCKERFILE = path.join(repo, 'docker', 'Dockerfile');
const IGNORE = path.join(repo, 'docker', 'Dockerfile.dockerignore');
const outArg = process.argv.indexOf('--out');
const outDir = outArg > 0 ? path.resolve(process.argv[outArg + 1]) : null;

const failures = [];
const fail = (msg) => { failures.push(msg); console.error(`FAIL ${msg}`); };
const ok = (msg) => console.log(`ok   ${msg}`);

// ---- parse -----------------------------------------------------------------------------------------
function parseDockerfile(text) {
  const lines = text.split('\n');
  const instrs = [];
  let cur = '';
  for (const raw of lines) {
    if (!cur && /^\s*#/.test(raw)) continue; // comment (or parser directive)
    if (cur && /^\s*#/.test(raw)) continue; // comment inside a continued instruction
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) { cur += line.slice(0, -1) + ' '; continue; }
    cur += line;
    if (cur.trim()) {
      const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(cur);
      if (!m) throw new Error(`cannot parse Dockerfile line: ${cur}`);
      instrs.push({ op: m[1].toUpperCase(), args: m[2].trim() });
    }
    cur = '';
  }
  const stages = [];
  for (const i of instrs) {
    if (i.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args);
      stages.push({ image: m[1], name: m[2] || null, instrs: [] });
    } else if (stages.length) {
      stages[stages.length - 1].instrs.push(i);
    }
  }
  return stages;
}

// ---- .dockerignore (the subset we use: "*", plain paths, "dir/", negations) -------------------------
function admitted(relPath, patterns) {
  let excluded = false;
  for (let p of patterns) {
    const neg = p.startsWith('!');
    if (neg) p = p.slice(1);
    p = p.replace(/\/+$/, '');
    if (/[?[\]]|\*./.test(p) || (p.includes('*') && p !== '*')) {
      throw new Error(`dockerignore pattern ${p} is beyond this checker's matcher: extend admitted()`);
    }
    const hit = p === '*' ? true : (relPath === p || relPath.startsWith(`${p}/`));
    if (hit) excluded = !neg;
  }
  return !excluded;
}

const sh = (cmd, opts = {}) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', ...opts });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function main() {
  const stages = parseDockerfile(fs.readFileSync(DOCKERFILE, 'utf8'));
  const patterns = fs.readFileSync(IGNORE, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  if (stages.length !== 2) fail(`expected a build stage and a runtime stage, found ${stages.length}`);
  for (const s of stages) {
    if (s.image !== 'debian:12-slim') fail(`stage ${s.name || '(runtime)'} is FROM ${s.image}, not debian:12-slim`);
  }
  const [build, runtime] = stages;
  if (!build || !runtime) return;

  // ---- build stage ----
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'roomcast-dockerfile-'));
  const inImage = (p) => path.join(root, p);
  let workdir = '/';
  const env = { ...process.env };
  const runs = [];
  const t0 = Date.now();
  try {
    for (const { op, args } of build.instrs) {
      if (op === 'WORKDIR') {
        workdir = path.posix.resolve(workdir, args);
        fs.mkdirSync(inImage(workdir), { recursive: true });
      } else if (op === 'ARG') {
        const [name, def] = args.split('=');
        if (env[`DOCKER_ARG_${name}`]) env[name] = env[`DOCKER_ARG_${name}`];
        else if (def !== undefined) env[name] = def.replace(/^"|"$/g, '');
      } else if (op === 'ENV') {
        for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]] = m[2].replace(/^"|"$/g, '');
      } else if (op === 'COPY') {
        const parts = args.split(/\s+/);
        if (parts[0].startsWith('--')) { fail(`build-stage COPY with options is not simulated: ${args}`); continue; }
        const dest = path.posix.resolve(workdir, parts[parts.length - 1]);
        for (const src of parts.slice(0, -1)) {
          if (!admitted(src, patterns)) fail(`COPY ${src}: excluded from the build context by ${path.relative(repo, IGNORE)}`);
          const from = path.join(repo, src);
          if (!fs.existsSync(from)) { fail(`COPY ${src}: no such file in the repository`); continue; }
          const to = inImage(dest);
          fs.mkdirSync(fs.statSync(from).isDirectory() ? to : path.dirname(to), { recursive: true });
          fs.cpSync(from, to, { recursive: true });
        }
      } else if (op === 'RUN') {
        if (args.startsWith('[')) { fail(`exec-form RUN is not simulated: ${args}`); continue; }
        runs.push(args);
        const t = Date.now();
        const r = sh(args, { cwd: inImage(workdir), env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
        if (r.status !== 0) {
          fail(`RUN ${args} exited ${r.status}:\n${(r.stdout + r.stderr).split('\n').slice(-30).join('\n')}`);
          return;
        }
        ok(`RUN ${args} (${Date.now() - t} ms)`);
      } else {
        fail(`build-stage instruction ${op} is not simulated`);
      }
    }
    // The build stage must run the same steps as `make test`: the dependency installer and the
    // release target.
    if (!runs.some((r) => /^deploy\/install-deps\.sh runtime\b/.test(r))) fail('the build stage does not run deploy/install-deps.sh runtime');
    if (!runs.some((r) => /^make\b.*\sbuild\/roomcast\b/.test(r))) fail('the build stage does not run make build/roomcast');

    // ---- runtime stage ----
    const ri = (op) => runtime.instrs.filter((i) => i.op === op);
    const user = ri('USER').pop();
    const uid = user ? user.args.split(':')[0] : 'root';
    if (!user || uid === 'root' || uid === '0') fail(`runtime USER is ${user ? user.args : 'unset (root)'}`);
    else ok(`runtime user ${user.args}`);

    const copy = ri('COPY').find((i) => i.args.startsWith('--from=build'));
    const [, fromPath, toPath] = copy ? /--from=build\s+(\S+)\s+(\S+)/.exec(copy.args) || [] : [];
    const binary = fromPath && inImage(fromPath);
    if (!binary || !fs.existsSync(binary)) { fail(`COPY --from=build ${fromPath}: the build stage made no such file`); return; }
    const entry = ri('ENTRYPOINT').pop();
    const entryArgs = entry ? JSON.parse(entry.args) : [];
    if (entryArgs[0] !== toPath) fail(`ENTRYPOINT ${entry && entry.args} does not run the copied binary ${toPath}`);
    const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
    ok(`built ${fromPath} in ${Math.round((Date.now() - t0) / 1000)} s: ${version}`);

    // packages installed by the runtime stage, and their dependency closure
    const installs = ri('RUN').map((i) => i.args).join(' && ');
    const m = /apt-get install((?:\s+-\S+)*)\s+([^&]+)/.exec(installs);
    const pkgs = m ? m[2].trim().split(/\s+/) : [];
    if (!pkgs.length) fail('the runtime stage installs no packages');
    const closure = new Set(pkgs);
    const dep = sh(`apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances ${pkgs.join(' ')}`);
    for (const line of dep.stdout.split('\n')) {
      const n = /^\s*\|?(?:Depends|PreDepends):\s+<?([^\s>]+)>?/.exec(line) || /^([a-z0-9][a-z0-9.+-]+)$/.exec(line);
      if (n) closure.add(n[1].replace(/:any$/, ''));
    }
    const ldd = execFileSync('ldd', [binary], { encoding: 'utf8' });
    const libs = [...ldd.matchAll(/=>\s+(\/\S+)/g)].map((x) => x[1]);
    // one dpkg -S for every spelling of every library path (usrmerge: /lib is /usr/lib)
    const spellings = new Map(); // path -> lib
    for (const lib of libs) {
      const real = fs.realpathSync(lib);
      for (const c of [lib, real, lib.replace(/^\/lib\//, '/usr/lib/'), real.replace(/^\/lib\//, '/usr/lib/')]) spellings.set(c, lib);
    }
    const owners = new Map(); // lib -> package
    const dpkgS = spawnSync('dpkg', ['-S', ...spellings.keys()], { encoding: 'utf8' });
    for (const line of dpkgS.stdout.split('\n')) {
      const m = /^([^:\s]+)(?::\S+)?: (\/\S+)$/.exec(line);
      if (m && spellings.has(m[2])) owners.set(spellings.get(m[2]), m[1]);
    }
    const ownerPkgs = [...new Set(owners.values())];
    const priorities = new Map(spawnSync('dpkg-query', ['-W', '-f=${Package} ${Priority}\n', ...ownerPkgs], { encoding: 'utf8' })
      .stdout.split('\n').filter(Boolean).map((l) => l.split(' ')));
    const missing = [];
    for (const lib of libs) {
      const owner = owners.get(lib);
      if (!owner) { missing.push(`${lib} (no package owns it)`); continue; }
      if (!closure.has(owner) && priorities.get(owner) !== 'required') missing.push(`${path.basename(lib)} from ${owner}`);
    }
    if (missing.length) fail(`the runtime stage lacks libraries the binary links: ${missing.join(', ')}`);
    else ok(`runtime packages (${pkgs.join(' ')}) cover all ${libs.length} linked libraries`);

    // HEALTHCHECK against a node from the built binary, with the compose config
    const hc = ri('HEALTHCHECK').pop();
    const hcCmd = hc && /CMD\s+(\[.*\])\s*$/.exec(hc.args);
    if (!hcCmd) fail('no HEALTHCHECK CMD ["..."]');
    else {
      const argv = JSON.parse(hcCmd[1]);
      const port = await freePort();
      const node = spawn(binary, [], {
        env: { PATH: process.env.PATH, ROOMCAST_PORT: String(port), ROOMCAST_BIND: '127.0.0.1',
          ROOMCAST_CONFIG: path.join(repo, 'docker', 'config.json'), ROOMCAST_JWT_SECRET: 'dockerfile-check-secret-0123456789abcdef',
          ROOMCAST_LOG_FORMAT: 'json' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      node.stderr.on('data', (d) => { stderr += d; });
      const hcEnv = { PATH: process.env.PATH, ROOMCAST_PORT: String(port) };
      let passed = false;
      for (let i = 0; i < 50 && !passed; i++) {
        await new Promise((r) => setTimeout(r, 100));
        passed = spawnSync(argv[0], argv.slice(1), { env: hcEnv, timeout: 3000 }).status === 0;
      }
      node.kill('SIGTERM');
      const code = await new Promise((r) => node.once('exit', (c) => r(c)));
      if (!passed) fail(`HEALTHCHECK never passed against the built node:\n${stderr.slice(-2000)}`);
      else ok('HEALTHCHECK passes against a node started from the built binary with docker/config.json');
      if (code !== 0) fail(`the node exited ${code} on SIGTERM`);
      const down = spawnSync(argv[0], argv.slice(1), { env: hcEnv, timeout: 3000 }).status;
      if (down === 0) fail('HEALTHCHECK passes with no node listening');
      else ok('HEALTHCHECK fails with no node listening');
    }
    if (outDir) {
      fs.mkdirSync(outDir, { recursive: true });
      fs.copyFileSync(binary, path.join(outDir, 'roomcast'));
      fs.chmodSync(path.join(outDir, 'roomcast'), 0o755);
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

await main();
if (failures.length) {
  console.error(`docker/Dockerfile: ${failures.length} problem(s)`);
  process.exit(1);
}
console.log('docker/Dockerfile: build steps reproduced, runtime stage checked');
