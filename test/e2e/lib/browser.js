'use strict';
// Helpers for the browser end-to-end tests: Debian's headless Chromium driven by playwright-core
// (no browser download: playwright is pointed at the distribution's binary), a screenshot folder
// per test file, and a tiny static HTTP server for the test pages, which also serves the official
// socket.io-client browser bundle.
//
//   const { launchBrowser, screenshots, serveStatic } = require('./lib/browser');
//   const browser = await launchBrowser();          // a playwright Browser; await browser.close()
//   const shots = screenshots('browser');           // build/screenshots/browser/ (emptied, printed)
//   await shots.save(page, '01-connected');         // -> build/screenshots/browser/01-connected.png
//   const site = await serveStatic({ routes: { '/': '<html>...' } });
//   site.origin                                     // "http://127.0.0.1:<port>" (the page's origin)
//   site.close()
//
// serveStatic: `routes` maps a path (without the query) to an HTML string (served as text/html)
// or to a function (req, res) for anything else (set a cookie, other content types).
// `/socket.io.min.js` (and its .map) is always served from test/e2e/node_modules/socket.io-client
// /dist: a page loads the official client with <script src="/socket.io.min.js"></script>, which
// defines the global `io`. Anything else is 404. host defaults to 127.0.0.1; pass "localhost"
// to get another origin for the same server (origins compare the host name as written).
//
// What this file does not do: start roomcast nodes or nginx (lib/node.js, lib/ops.js), assert.
// Every page a test opens belongs to the browser; browser.close() ends them all.

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { chromium } = require('playwright-core');

const REPO = path.resolve(__dirname, '..', '..', '..');
const BUNDLE_DIR = path.resolve(__dirname, '..', 'node_modules', 'socket.io-client', 'dist');

// Debian's chromium-headless-shell (deploy/install-deps.sh test installs it); the full chromium
// package works too when that is what a machine has.
const CANDIDATES = ['/usr/bin/chromium-headless-shell', '/usr/bin/chromium'];

function chromiumPath() {
  if (process.env.ROOMCAST_CHROMIUM) return process.env.ROOMCAST_CHROMIUM;
  for (const p of CANDIDATES) {
    try { fs.accessSync(p, fs.constants.X_OK); return p; } catch { /* next */ }
  }
  throw new Error(`no Chromium found (${CANDIDATES.join(', ')}): run deploy/install-deps.sh test, ` +
    'or set ROOMCAST_CHROMIUM to a Chromium binary');
}

// Launches headless Chromium. The sandbox is off (`chromiumSandbox: false`, which makes
// playwright pass --no-sandbox): CI and this project's machines run the tests as root, and
// Chromium refuses to start its sandbox as root ("Running as root without --no-sandbox is not
// supported", crbug.com/638180). The pages it loads are this repository's own test pages, served
// from loopback, so the sandbox protects nothing here. opts go to chromium.launch. Chromium talks
// to playwright over a pipe: it exits with the test process even when a test fails before
// browser.close() (playwright also kills it in its own exit handler).
function launchBrowser(opts = {}) {
  return chromium.launch({
    executablePath: chromiumPath(),
    chromiumSandbox: false,
    timeout: 30000,
    ...opts,
  });
}

// A screenshot folder for one test file: build/screenshots/<name>/, emptied first (screenshots
// of an earlier run never mix with this one's), its path printed once on stderr. build/ is
// ignored by git.
function screenshots(name) {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`screenshot folder name ${JSON.stringify(name)}`);
  const dir = path.join(REPO, 'build', 'screenshots', name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  process.stderr.write(`# screenshots: ${dir}\n`);
  return {
    dir,
    // Full-page PNG of `page` as <dir>/<step>.png; resolves with the file's path.
    async save(page, step) {
      if (!/^[A-Za-z0-9_.-]+$/.test(step)) throw new Error(`screenshot name ${JSON.stringify(step)}`);
      const file = path.join(dir, `${step}.png`);
      await page.screenshot({ path: file, fullPage: true });
      return file;
    },
  };
}

function serveBundle(res, file) {
  const p = path.join(BUNDLE_DIR, file);
  fs.readFile(p, (err, data) => {
    if (err) { res.writeHead(500); res.end(String(err)); return; }
    res.writeHead(200, {
      'Content-Type': file.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8',
      'Cache-Control': 'no-store',
    });
    res.end(data);
  });
}

// The static server for test pages (see the top of the file).
function serveStatic({ routes = {}, host = '127.0.0.1' } = {}) {
  const server = http.createServer((req, res) => {
    const urlPath = (req.url || '/').split('?')[0];
    const route = routes[urlPath];
    if (typeof route === 'function') return route(req, res);
    if (typeof route === 'string') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      return res.end(route);
    }
    if (urlPath === '/socket.io.min.js' || urlPath === '/socket.io.min.js.map') {
      return serveBundle(res, urlPath.slice(1));
    }
    if (urlPath === '/favicon.ico') { res.writeHead(204); return res.end(); }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    return res.end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.unref();
      resolve({
        port,
        origin: `http://${host}:${port}`,
        url: (p = '/') => `http://${host}:${port}${p}`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

module.exports = { launchBrowser, screenshots, serveStatic, chromiumPath, BUNDLE_DIR };
