/*
 * node_devpage.c: the development page (docs/config.md "The development page"): GET /dev/ serves
 * one self-contained HTML page that loads the official socket.io-client browser bundle from
 * GET /dev/socket.io.min.js and lets a newcomer paste the token `make run` printed, connect, join a
 * room, watch events arrive, and publish to the room through POST /api/publish with the API key.
 * deploy/dev-run.sh fills the token, the key and the room in through the URL's fragment (never sent
 * to the node). The page talks to the node that served it (same origin: no CORS needed), on the
 * configured Engine.IO path.
 *
 * The bundle: dev.clientBundle names the socket.io.min.js to serve (deploy/dev-run.sh points it at
 * test/e2e/node_modules when that exists); without it /dev/socket.io.min.js redirects to the
 * package on a public CDN (jsDelivr, socket.io-client 4.x), for a browser that can reach it.
 *
 * Off unless dev.page (ROOMCAST_DEV_PAGE=1) is set: rc_node__devpage answers nothing then, and
 * the paths are 404 like any other. The page holds no secret; what it knows comes from the URL.
 *
 * What it does not do: serve other files, or authenticate (it needs nothing the public Engine.IO
 * path and /api/publish do not already check).
 *
 * API: rc_node__devpage (from rc_node__on_request, before its 404).
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/http.h"

#include <event2/buffer.h>
#include <string.h>

#define CDN_BUNDLE "https://cdn.jsdelivr.net/npm/socket.io-client@4/dist/socket.io.min.js"

/* The page, in two halves around the HTML-escaped Engine.IO path (body's data-path). */
static const char PAGE_HEAD[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>roomcast development page</title>\n"
    "<style>\n"
    "body { font: 14px/1.45 system-ui, \"DejaVu Sans\", sans-serif; margin: 0; color: #1d2330; background: #f4f6f9; }\n"
    "header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; align-items: baseline; gap: 16px; }\n"
    "header h1 { font-size: 17px; margin: 0; }\n"
    "header span { color: #aab3c5; font-size: 13px; }\n"
    "main { display: grid; grid-template-columns: minmax(320px, 430px) 1fr; gap: 16px; padding: 16px 20px; }\n"
    "section { background: #fff; border: 1px solid #d9dee7; border-radius: 6px; padding: 12px 14px; margin-bottom: 12px; }\n"
    "h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: #5a6478; margin: 0 0 8px; }\n"
    "label { display: block; font-size: 12px; color: #5a6478; margin: 6px 0 2px; }\n"
    "input, textarea { width: 100%; box-sizing: border-box; font: 12px/1.4 \"DejaVu Sans Mono\", monospace; padding: 5px 6px; border: 1px solid #c5ccd8; border-radius: 4px; }\n"
    "textarea { height: 54px; resize: vertical; }\n"
    "button { margin-top: 8px; padding: 5px 14px; border: 0; border-radius: 4px; background: #2f6fdf; color: #fff; font-weight: 600; cursor: pointer; }\n"
    "button.secondary { background: #6b778c; }\n"
    "button:disabled { background: #b7bfcc; cursor: default; }\n"
    "#status { font-weight: 600; }\n"
    "#status.on { color: #16813d; } #status.off { color: #b3261e; }\n"
    ".hint { font-size: 12px; color: #5a6478; margin: 6px 0 0; }\n"
    "code, pre { font: 12px/1.4 \"DejaVu Sans Mono\", monospace; }\n"
    "pre.cmd { background: #f4f6f9; padding: 6px 8px; border-radius: 4px; white-space: pre-wrap; word-break: break-all; margin: 6px 0 0; }\n"
    "#log { list-style: none; margin: 0; padding: 0; font: 12px/1.5 \"DejaVu Sans Mono\", monospace; }\n"
    "#log li { padding: 3px 0; border-bottom: 1px solid #eef1f5; word-break: break-all; }\n"
    "#log .t { color: #8a93a6; margin-right: 8px; }\n"
    "#log .k { display: inline-block; min-width: 78px; font-weight: 700; }\n"
    "#log .event .k { color: #2f6fdf; } #log .ack .k { color: #16813d; } #log .error .k { color: #b3261e; }\n"
    "#log .info .k { color: #6b778c; } #log .publish .k { color: #8a4fd6; }\n"
    "</style>\n"
    "<script src=\"/dev/socket.io.min.js\"></script>\n"
    "</head>\n"
    "<body data-path=\"";

static const char PAGE_TAIL[] =
    "\">\n"
    "<header><h1>roomcast development page</h1><span>socket.io-client in this browser, talking to this node</span></header>\n"
    "<main>\n"
    "<div>\n"
    "<section>\n"
    "<h2>1. Connect</h2>\n"
    "<label for=\"token\">token (printed by <code>make run</code>; sent in the handshake's <code>auth</code>)</label>\n"
    "<textarea id=\"token\" placeholder=\"paste a JWT here\" spellcheck=\"false\"></textarea>\n"
    "<button id=\"connect\">Connect</button>\n"
    "<p class=\"hint\">Status: <span id=\"status\" class=\"off\">disconnected</span> <span id=\"transport\"></span></p>\n"
    "</section>\n"
    "<section>\n"
    "<h2>2. Join a room</h2>\n"
    "<label for=\"room\">room (the token's <code>rooms</code> claim says which)</label>\n"
    "<input id=\"room\" value=\"project_p1\">\n"
    "<button id=\"join\" disabled>Join</button> <button id=\"leave\" class=\"secondary\" disabled>Leave</button>\n"
    "</section>\n"
    "<section>\n"
    "<h2>3. Publish to the room</h2>\n"
    "<label for=\"event\">event</label><input id=\"event\" value=\"task_created\">\n"
    "<label for=\"data\">data (JSON)</label><input id=\"data\" value='{\"title\":\"Live Task\"}'>\n"
    "<label for=\"key\">API key (printed by <code>make run</code>)</label><input id=\"key\" placeholder=\"api.key / ROOMCAST_API_KEY\" spellcheck=\"false\">\n"
    "<button id=\"publish\">Publish</button>\n"
    "<p class=\"hint\">The same from a shell:</p>\n"
    "<pre class=\"cmd\" id=\"curl\"></pre>\n"
    "</section>\n"
    "</div>\n"
    "<section>\n"
    "<h2>Events <span style=\"text-transform:none;letter-spacing:0;font-weight:400\">(newest first)</span></h2>\n"
    "<ul id=\"log\"></ul>\n"
    "</section>\n"
    "</main>\n"
    "<script>\n"
    "\"use strict\";\n"
    "(function () {\n"
    "  var $ = function (id) { return document.getElementById(id); };\n"
    "  var path = document.body.getAttribute(\"data-path\") || \"/socket.io/\";\n"
    "  var socket = null;\n"
    "  var hash = new URLSearchParams(location.hash.slice(1));\n"
    "  [\"token\", \"key\", \"room\"].forEach(function (k) { if (hash.get(k)) $(k).value = hash.get(k); });\n"
    "\n"
    "  function show(v) {\n"
    "    if (v instanceof ArrayBuffer) return \"ArrayBuffer(\" + v.byteLength + \")\";\n"
    "    if (ArrayBuffer.isView(v)) return v.constructor.name + \"(\" + v.byteLength + \")\";\n"
    "    try { return JSON.stringify(v); } catch (e) { return String(v); }\n"
    "  }\n"
    "  function log(kind, label, text) {\n"
    "    var li = document.createElement(\"li\");\n"
    "    li.className = kind;\n"
    "    var t = document.createElement(\"span\"); t.className = \"t\"; t.textContent = new Date().toLocaleTimeString();\n"
    "    var k = document.createElement(\"span\"); k.className = \"k\"; k.textContent = label;\n"
    "    li.appendChild(t); li.appendChild(k); li.appendChild(document.createTextNode(\" \" + text));\n"
    "    $(\"log\").insertBefore(li, $(\"log\").firstChild);\n"
    "  }\n"
    "  function userOf(token) {\n"
    "    try {\n"
    "      var p = JSON.parse(atob(token.split(\".\")[1].replace(/-/g, \"+\").replace(/_/g, \"/\")));\n"
    "      return p.sub ? \" as \" + p.sub : \"\";\n"
    "    } catch (e) { return \"\"; }\n"
    "  }\n"
    "  function setStatus(on, text) {\n"
    "    $(\"status\").textContent = text;\n"
    "    $(\"status\").className = on ? \"on\" : \"off\";\n"
    "    $(\"join\").disabled = $(\"leave\").disabled = !on;\n"
    "    $(\"connect\").textContent = socket ? \"Disconnect\" : \"Connect\";\n"
    "  }\n"
    "  function curl() {\n"
    "    var body = JSON.stringify({ room: $(\"room\").value, event: $(\"event\").value, data: \"@DATA@\" })\n"
    "      .replace('\"@DATA@\"', $(\"data\").value);\n"
    "    $(\"curl\").textContent = \"curl -X POST \" + location.origin + \"/api/publish \\\\\\n  -H 'Authorization: Bearer \" +\n"
    "      ($(\"key\").value || \"<api key>\") + \"' -H 'Content-Type: application/json' \\\\\\n  -d '\" + body + \"'\";\n"
    "  }\n"
    "  [\"room\", \"event\", \"data\", \"key\"].forEach(function (id) { $(id).addEventListener(\"input\", curl); });\n"
    "  curl();\n"
    "  if (typeof io !== \"function\") {\n"
    "    log(\"error\", \"error\", \"socket.io-client did not load from /dev/socket.io.min.js (set dev.clientBundle, or allow the CDN)\");\n"
    "    return;\n"
    "  }\n"
    "  log(\"info\", \"ready\", \"socket.io-client \" + (io.protocol !== undefined ? \"(protocol \" + io.protocol + \")\" : \"\") +\n"
    "    \" loaded; Engine.IO path \" + path);\n"
    "\n"
    "  $(\"connect\").onclick = function () {\n"
    "    if (socket) { socket.disconnect(); socket = null; setStatus(false, \"disconnected\"); return; }\n"
    "    socket = io({ path: path, auth: { token: $(\"token\").value.trim() } });\n"
    "    var s = socket;\n"
    "    setStatus(false, \"connecting...\");\n"
    "    s.io.on(\"open\", function () {\n"
    "      s.io.engine.on(\"upgrade\", function (t) { $(\"transport\").textContent = \"over \" + t.name; log(\"info\", \"upgrade\", \"now over \" + t.name); });\n"
    "    });\n"
    "    s.on(\"connect\", function () {\n"
    "      var t = s.io.engine.transport.name;\n"
    "      $(\"transport\").textContent = \"over \" + t;\n"
    "      setStatus(true, \"connected\" + userOf($(\"token\").value));\n"
    "      log(\"info\", \"connect\", \"socket id \" + s.id + \" over \" + t);\n"
    "    });\n"
    "    s.on(\"connect_error\", function (err) {\n"
    "      var why = err.message;\n"
    "      if (err.data) why += \" \" + JSON.stringify(err.data);\n"
    "      if (err.context && err.context.responseText) why += \" \" + err.context.responseText;\n"
    "      if (err.message === \"unauthorized\") why += \" (check the token)\";\n"
    "      log(\"error\", \"error\", why);\n"
    "      if (!s.active) { socket = null; setStatus(false, \"refused\"); }\n"
    "    });\n"
    "    s.on(\"disconnect\", function (reason) {\n"
    "      setStatus(false, s.active ? \"reconnecting...\" : \"disconnected\");\n"
    "      log(\"error\", \"disconnect\", reason);\n"
    "    });\n"
    "    s.onAny(function (event) {\n"
    "      var args = Array.prototype.slice.call(arguments, 1).map(show).join(\" \");\n"
    "      log(\"event\", event, args);\n"
    "    });\n"
    "  };\n"
    "  function roomOp(op) {\n"
    "    return function () {\n"
    "      var room = $(\"room\").value.trim();\n"
    "      socket.timeout(5000).emit(op, { room: room }, function (err, reply) {\n"
    "        if (err) log(\"error\", op, \"no ack within 5 s\");\n"
    "        else log(reply && reply.ok ? \"ack\" : \"error\", op, show(reply));\n"
    "      });\n"
    "    };\n"
    "  }\n"
    "  $(\"join\").onclick = roomOp(\"join\");\n"
    "  $(\"leave\").onclick = roomOp(\"leave\");\n"
    "  $(\"publish\").onclick = function () {\n"
    "    var data;\n"
    "    try { data = JSON.parse($(\"data\").value); } catch (e) { log(\"error\", \"publish\", \"data is not JSON: \" + e.message); return; }\n"
    "    fetch(\"/api/publish\", {\n"
    "      method: \"POST\",\n"
    "      headers: { \"Content-Type\": \"application/json\", \"Authorization\": \"Bearer \" + $(\"key\").value.trim() },\n"
    "      body: JSON.stringify({ room: $(\"room\").value.trim(), event: $(\"event\").value.trim(), data: data })\n"
    "    }).then(function (res) {\n"
    "      return res.text().then(function (text) { log(res.ok ? \"publish\" : \"error\", \"publish\", res.status + \" \" + text); });\n"
    "    }, function (e) { log(\"error\", \"publish\", String(e)); });\n"
    "  };\n"
    "})();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

static void add_escaped(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': evbuffer_add(out, "&amp;", 5); break;
        case '<': evbuffer_add(out, "&lt;", 4); break;
        case '>': evbuffer_add(out, "&gt;", 4); break;
        case '"': evbuffer_add(out, "&quot;", 6); break;
        case '\'': evbuffer_add(out, "&#39;", 5); break;
        default: evbuffer_add(out, s, 1);
        }
    }
}

static void serve_page(rc_node *n, rc_http_request *req)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, PAGE_HEAD, sizeof(PAGE_HEAD) - 1);
    add_escaped(out, n->cfg->path);
    evbuffer_add(out, PAGE_TAIL, sizeof(PAGE_TAIL) - 1);
    rc_http_respond_buffer(req, 200, "text/html; charset=utf-8", out,
                           "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
    evbuffer_free(out);
}

static void serve_bundle(rc_node *n, rc_http_request *req)
{
    const char *file = n->cfg->dev.client_bundle;
    if (!file) {
        static const char body[] = "socket.io-client from a CDN (set dev.clientBundle to serve a local copy)\n";
        rc_http_respond(req, 302, "text/plain", body, sizeof(body) - 1, "Location: " CDN_BUNDLE "\r\n");
        return;
    }
    size_t len;
    char *js = rc_read_file(file, &len);
    if (!js) {
        static const char body[] = "dev.clientBundle cannot be read\n";
        rc_http_respond(req, 500, "text/plain", body, sizeof(body) - 1, NULL);
        return;
    }
    rc_http_respond(req, 200, "text/javascript; charset=utf-8", js, len,
                    "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n");
    rc_free(js);
}

int rc_node__devpage(rc_node *n, rc_http_request *req)
{
    if (!n->cfg->dev.page) return 0;
    int page = rc_slice_eq(req->path, "/dev") || rc_slice_eq(req->path, "/dev/");
    int bundle = rc_slice_eq(req->path, "/dev/socket.io.min.js");
    if (!page && !bundle) return 0;
    if (req->method != RC_HTTP_GET && req->method != RC_HTTP_HEAD) {
        rc_http_respond(req, 405, "text/plain", "method not allowed\n", 19, "Allow: GET, HEAD\r\n");
        return 1;
    }
    if (page) serve_page(n, req);
    else serve_bundle(n, req);
    return 1;
}
