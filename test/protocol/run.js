// Runs the Socket.IO protocol test suite (test-suite.js, vendored from socketio/socket.io-protocol)
// against a real roomcast node: starts the sanitizer build on a free loopback port with
// reference.json (the suite's reference server as a roomcast config), runs mocha with
// PROTOCOL_URL pointing at the node, then stops the node with SIGTERM.
//
//   node run.js [mocha args...]        e.g. node run.js --grep upgrade
//
// The node is started and stopped by the end-to-end harness (test/e2e/lib/node.js: startNode waits
// for GET /healthz; stop requires exit 0 after SIGTERM and no sanitizer report), so this runner holds
// only what is particular to the suite. ROOMCAST_BIN: the binary (default build/san/roomcast of this
// repository). Exit status: mocha's, or 1 when the node did not start or did not stop cleanly.

import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const { startNode } = require("../e2e/lib/node.js");
const CONFIG = path.join(here, "reference.json");
const MOCHA = path.join(here, "node_modules", "mocha", "bin", "mocha");

// libevent's epoll backend rounds every timer wait up to a whole millisecond, so a session's ping
// and ping-timeout timers each fire up to ~1 ms late; the suite's "should close the session upon
// ping timeout" polls exactly pingInterval + pingTimeout after the handshake, with no margin, and
// lost that race in most runs here (socket.io's own reference server loses it too, less often).
// EVENT_PRECISE_TIMER=1 is libevent's switch to its timerfd-precise timers (README.md).
const env = { EVENT_PRECISE_TIMER: "1", ROOMCAST_LOG_LEVEL: "info",
  ROOMCAST_JWT_SECRET: undefined, ROOMCAST_API_KEY: undefined };

let node;
try {
  node = await startNode({ config: CONFIG, env, nodeId: `protocol-${process.pid}` });
} catch (e) {
  console.error(`protocol: roomcast did not become healthy: ${e.message}`);
  process.exit(1);
}
const url = `http://127.0.0.1:${node.port}`;
console.log(`protocol: roomcast on ${url} with ${path.relative(process.cwd(), CONFIG)}`);
const mocha = spawn(process.execPath, [MOCHA, ...process.argv.slice(2), path.join(here, "test-suite.js")],
  { cwd: here, env: { ...process.env, PROTOCOL_URL: url }, stdio: "inherit" });
const mochaExit = await new Promise((resolve) => mocha.once("exit", (code, signal) => resolve({ code, signal })));
if (mochaExit.code !== 0) {
  console.error(`protocol: mocha failed: ${JSON.stringify(mochaExit)}`);
  process.exitCode = 1;
}
try {
  await node.stop();
} catch (e) {
  console.error(`protocol: ${e.message}`);
  process.exitCode = 1;
}
