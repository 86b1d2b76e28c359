/*
 * node_api.c: the node's HTTP routes (see src/node_internal.h): Engine.IO paths go to rc_eio;
 * /healthz, /readyz and /metrics (docs/operations.md, "Checks" and "Monitoring"); POST
 * /api/publish, enabled by api.key (docs/config.md), whose body node_publish.c parses, and which
 * publishes to a room or (said explicitly) a namespace through rc_node__broadcast, or to a user
 * as a notification (node_notify.c).
 *
 * What it does not do: parse HTTP (src/http.c) or write the metrics text (src/metrics.c and each
 * module's write_metrics).
 *
 * API: rc_node__on_accept (the server's accept callback), rc_node__on_request (the HTTP one).
 */
#include "node_internal.h"
#include "roomcast/admin.h"
#include "roomcast/common.h"
#include "roomcast/eio.h"
#include "roomcast/http.h"
#include "roomcast/jobs.h"
#include "roomcast/metrics.h"
#include "roomcast/presence.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/server.h"
#include "roomcast/sio.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#ifndef RC_VERSION
#define RC_VERSION "dev"
#endif

static void respond_json(rc_http_request *req, int status, const char *json)
{
    rc_http_respond(req, status, "application/json", json, strlen(json), NULL);
}

/* Every module writes its own families (docs/operations.md, "Monitoring"); the node adds its
 * own counters, its state and identity, and the process_* metrics. */
static void route_metrics(rc_node *n, rc_http_request *req)
{
    struct evbuffer *out = evbuffer_new();
    rc_server_write_metrics(n->server, out);
    rc_http_write_metrics(out);
    rc_eio_write_metrics(n->eio, out);
    rc_sio_write_metrics(n->sio, out);
    rc_backplane_write_metrics(n->bp, out);
    rc_node__recovery_write_metrics(n, out);
    rc_node__holds_write_metrics(n, out);
    rc_node__listen_write_metrics(n, out);
    rc_node__socketio_write_metrics(n, out);
    if (n->adapter) rc_adapter_peer_write_metrics(n->adapter, out);
    rc_metrics_put_scalar(out, "roomcast_api_publishes_total", "counter",
                          "Messages accepted by the HTTP publish API.", n->stats.api_publishes);
    rc_metrics_put_scalar(out, "roomcast_api_publishes_refused_total", "counter",
                          "POST /api/publish requests refused as malformed (400).", n->stats.api_refused);
    rc_metrics_put_scalar(out, "roomcast_notifications_total", "counter",
                          "Notifications for a user received (P:notify, POST /api/publish with user).",
                          n->stats.notifications);
    rc_metrics_put_scalar(out, "roomcast_notifications_delivered_total", "counter",
                          "Sockets this node delivered notifications to.", n->stats.notifications_delivered);
    rc_metrics_put_scalar(out, "roomcast_notifications_refused_total", "counter",
                          "P:notify messages refused as malformed (logged as notify_refused).",
                          n->stats.notifications_refused);
    rc_jobs_write_metrics(n->jobs, out);
    if (n->presence) rc_presence_write_metrics(n->presence, out);
    if (n->admin) rc_admin_write_metrics(n->admin, out);
    rc_metrics_put_scalar(out, "roomcast_ready", "gauge", "1 when the node reports ready.",
                          rc_node__ready(n) ? 1 : 0);
    rc_metrics_put_scalar(out, "roomcast_draining", "gauge", "1 while the node drains.", n->draining ? 1 : 0);
    static const char *const info_labels[] = {"version", "node"};
    const char *info_values[] = {RC_VERSION, n->cfg->node_id ? n->cfg->node_id : "unknown"};
    rc_metrics_put_labelled(out, "roomcast_build_info", "gauge", "Build and node identity; always 1.",
                            info_labels, info_values, 2, 1);
    rc_metrics_write_process(out);
    rc_http_respond_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", out, NULL);
    evbuffer_free(out);
}

/* {"ok":false,"error":"<code>"}, with "field" when the code does not name the field itself. */
static void respond_error(rc_http_request *req, int status, const char *code, const char *field)
{
    int generic = strcmp(code, "unknown_field") == 0 || strcmp(code, "duplicate_field") == 0 ||
                  strcmp(code, "conflicting_fields") == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddFalseToObject(o, "ok");
    cJSON_AddStringToObject(o, "error", code);
    if (generic && field) cJSON_AddStringToObject(o, "field", field);
    char *out = cJSON_PrintUnformatted(o);
    respond_json(req, status, out);
    cJSON_free(out);
    cJSON_Delete(o);
}

/* POST /api/publish (docs/redis.md, "Publishing from a backend"; docs/config.md, api.key). The
 * body is parsed by rc_node__publish_parse, as P:notify is; a refusal answers 400 and reaches
 * nobody. A publish the backplane refuses answers 503, and reaches nobody either
 * (rc_node__broadcast). */
static void route_publish(rc_node *n, rc_http_request *req)
{
    const char *auth = rc_http_header(req, "Authorization");
    size_t keylen = strlen(n->cfg->api_key);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != keylen ||
        CRYPTO_memcmp(auth + 7, n->cfg->api_key, keylen) != 0) {
        respond_json(req, 401, "{\"ok\":false,\"error\":\"unauthorized\"}");
        return;
    }
    rc_node_publish p;
    const char *err = rc_node__publish_parse(n, &p, (const char *)req->body, req->body_len);
    if (err) {
        n->stats.api_refused++;
        respond_error(req, 400, err, p.field);
        rc_node__publish_dispose(&p);
        return;
    }
    if (p.user) {
        /* A notification: with Redis every node must see it (P:notify), this one included, and
         * parses the same text the same way; embedded, it is handled here. */
        const char *nerr = NULL;
        if (n->notify_channel) {
            const char *argv[3] = {"PUBLISH", n->notify_channel, (const char *)req->body};
            size_t argvlen[3] = {7, strlen(n->notify_channel), req->body_len};
            if (rc_redis_command(n->bp, NULL, NULL, 3, argv, argvlen) != 0) nerr = "backplane_down";
        } else {
            n->stats.notifications++;
            nerr = rc_node__notify(n, (const char *)req->body, req->body_len);
        }
        if (nerr) {
            respond_error(req, strcmp(nerr, "backplane_down") == 0 ? 503 : 400, nerr, NULL);
        } else {
            n->stats.api_publishes++;
            respond_json(req, 202, "{\"ok\":true}");
        }
        rc_node__publish_dispose(&p);
        return;
    }
    char *json = rc_node__args_json_of(p.args, p.data);
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = p.ns;
    msg.room = p.room; /* NULL with "broadcast": true, and only then */
    msg.event = p.event;
    msg.args_json = json;
    msg.args_len = strlen(json);
    msg.id = p.id;
    msg.except = p.except;
    msg.except_count = p.except_count;
    if (rc_node__broadcast(n, &msg) != 0) {
        respond_json(req, 503, "{\"ok\":false,\"error\":\"backplane_down\"}");
    } else {
        n->stats.api_publishes++;
        respond_json(req, 202, "{\"ok\":true}");
    }
    cJSON_free(json);
    rc_node__publish_dispose(&p);
}

static int path_is(const rc_http_request *req, const char *p) { return rc_slice_eq(req->path, p); }

void rc_node__on_request(void *arg, rc_http_request *req)
{
    rc_node *n = arg;
    const char *eio_path = n->cfg->path; /* ends with '/' */
    size_t plen = strlen(eio_path);
    if ((req->path.len >= plen && memcmp(req->path.ptr, eio_path, plen) == 0) ||
        (req->path.len == plen - 1 && memcmp(req->path.ptr, eio_path, plen - 1) == 0)) {
        rc_eio_handle_request(n->eio, req);
        return;
    }
    int get = req->method == RC_HTTP_GET || req->method == RC_HTTP_HEAD;
    if (path_is(req, "/healthz")) {
        if (!get) { rc_http_respond(req, 405, "text/plain", "method not allowed\n", 19, "Allow: GET, HEAD\r\n"); return; }
        rc_http_respond(req, 200, "text/plain", "ok\n", 3, NULL);
        return;
    }
    if (path_is(req, "/readyz")) {
        if (!get) { rc_http_respond(req, 405, "text/plain", "method not allowed\n", 19, "Allow: GET, HEAD\r\n"); return; }
        if (rc_node__ready(n)) rc_http_respond(req, 200, "text/plain", "ready\n", 6, NULL);
        else rc_http_respond(req, 503, "text/plain", n->draining ? "draining\n" : "backplane down\n",
                             n->draining ? 9 : 15, NULL);
        return;
    }
    if (path_is(req, "/metrics")) {
        if (!get) { rc_http_respond(req, 405, "text/plain", "method not allowed\n", 19, "Allow: GET, HEAD\r\n"); return; }
        route_metrics(n, req);
        return;
    }
    if (path_is(req, "/api/publish") && n->cfg->api_key) {
        if (req->method != RC_HTTP_POST) { rc_http_respond(req, 405, "text/plain", "method not allowed\n", 19, "Allow: POST\r\n"); return; }
        route_publish(n, req);
        return;
    }
    if (rc_node__devpage(n, req)) return;
    rc_http_respond(req, 404, "text/plain", "not found\n", 10, NULL);
}

void rc_node__on_accept(void *arg, rc_conn *c)
{
    rc_node *n = arg;
    rc_http_attach(c, &n->limits, &n->http_cb);
}
