// Runs the Socket.IO protocol test suite (test-suite.js, vendored from socketio/socket.io-protocol)
// against a real roomcast node: starts the sanitizer build on a free loopback port with
// reference.json (the suite's reference server as a roomcast config), waits for GET /healthz,
// runs mocha with PROTOCOL_URL pointing at the node, then stops the node with SIGTERM.
//
//   node run.js [mocha args...]        e.g. node run.js --grep upgrade
//
// ROOMCAST_BIN: the binary (default build/san/roomcast of this repository). PROTOCOL_DEBUG=1 also
// copies the node's stderr (debug logs) to ours. Exit status: mocha's, or 1 when the node did not
// start, did not exit 0 after SIGTERM, or printed a sanitizer report (as test/e2e/lib/node.js
// requires of every e2e node).

import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.ROOMCAST_BIN || path.resolve(here, "..", "..", "build", "san", "roomcast");
const CONFIG = path.join(here, "reference.json");
const MOCHA = path.join(here, "node_modules", "mocha", "bin", "mocha");
const DEBUG = !!process.env.PROTOCOL_DEBUG;
const SANITIZER_MARKERS = ["ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"];
const READY_TIMEOUT_MS = 10000;
const STOP_TIMEOUT_MS = 10000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A port nobody listens on right now: bind port 0 on loopback, read it, close.
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function healthz(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.setTimeout(1000, () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

function fail(message, stderr) {
  console.error(`protocol: ${message}`);
  if (stderr) console.error(`--- roomcast stderr (tail) ---\n${stderr.split("\n").slice(-40).join("\n")}`);
  process.exitCode = 1;
}

const port = await freePort();
const env = { ...process.env, ROOMCAST_BIND: "127.0.0.1", ROOMCAST_LOG_FORMAT: "json",
  ROOMCAST_LOG_LEVEL: DEBUG ? "debug" : "info" };
// Settings from the outer environment must not leak into the node.
for (const k of ["ROOMCAST_CONFIG", "ROOMCAST_PORT", "ROOMCAST_REDIS_URL", "ROOMCAST_NODE_ID",
  "ROOMCAST_CORS_ORIGINS", "ROOMCAST_JWT_ALGS", "ROOMCAST_JWT_PUBLIC_KEY_FILE", "ROOMCAST_PREFIX",
  "ROOMCAST_API_KEY", "ROOMCAST_JWT_SECRET", "ROOMCAST_TLS_CERT", "ROOMCAST_TLS_KEY"]) delete env[k];
if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = "print_stacktrace=1";
// libevent's epoll backend rounds every timer wait up to a whole millisecond, so a session's ping
// and ping-timeout timers each fire up to ~1 ms late; the suite's "should close the session upon
// ping timeout" polls exactly pingInterval + pingTimeout after the handshake, with no margin, and
// lost that race in most runs here (socket.io's own reference server loses it too, less often).
// EVENT_PRECISE_TIMER=1 is libevent's switch to its timerfd-precise timers (README.md).
env.EVENT_PRECISE_TIMER = "1";

const args = ["--config", CONFIG, "--port", String(port), "--node-id", `protocol-${process.pid}`];
const child = spawn(BIN, args, { env, stdio: ["ignore", "ignore", "pipe"] });
const chunks = [];
child.stderr.on("data", (c) => { chunks.push(c); if (DEBUG) process.stderr.write(c); });
let exit = null;
const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve(exit = { code, signal })));
let spawnError = null;
child.once("error", (e) => { spawnError = e; });
const stderr = () => Buffer.concat(chunks).toString("utf8");

let ready = false;
for (const deadline = Date.now() + READY_TIMEOUT_MS; Date.now() < deadline && !exit && !spawnError;) {
  if (await healthz(port)) { ready = true; break; }
  await sleep(50);
}

if (!ready) {
  if (!exit && !spawnError) { child.kill("SIGKILL"); await exited; }
  fail(`roomcast did not become healthy (${spawnError ? spawnError.message : `exit ${JSON.stringify(exit)}`})` +
    `\ncmd: ${BIN} ${args.join(" ")}`, stderr());
} else {
  const url = `http://127.0.0.1:${port}`;
  console.log(`protocol: roomcast ${BIN} on ${url} with ${path.relative(process.cwd(), CONFIG)}`);
  const mocha = spawn(process.execPath, [MOCHA, ...process.argv.slice(2), path.join(here, "test-suite.js")],
    { cwd: here, env: { ...process.env, PROTOCOL_URL: url }, stdio: "inherit" });
  const mochaExit = await new Promise((resolve) => mocha.once("exit", (code, signal) => resolve({ code, signal })));
  if (mochaExit.code !== 0) fail(`mocha failed: ${JSON.stringify(mochaExit)}`);

  if (!exit) {
    child.kill("SIGTERM");
    const timer = setTimeout(() => { if (!exit) child.kill("SIGKILL"); }, STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
  const err = stderr();
  const marker = SANITIZER_MARKERS.find((m) => err.includes(m));
  if (marker) {
    fail(`roomcast printed a sanitizer report (${marker})`, err.slice(Math.max(0, err.indexOf(marker) - 2000)));
  } else if (exit.code !== 0 || exit.signal !== null) {
    fail(`roomcast did not exit cleanly after SIGTERM: ${JSON.stringify(exit)}`, err);
  }
}
