/*
 * node_api.c: the node's HTTP routes (see src/node_internal.h): Engine.IO paths go to rc_eio;
 * /healthz, /readyz and /metrics (docs/operations.md, "Checks" and "Monitoring"); POST
 * /api/publish, enabled by api.key (docs/config.md), which publishes to a room or a namespace
 * through rc_node__broadcast, or to a user as a notification (node_notify.c).
 *
 * What it does not do: parse HTTP (src/http.c) or write the metrics text (src/metrics.c and each
 * module's write_metrics).
 *
 * API: rc_node__on_accept (the server's accept callback), rc_node__on_request (the HTTP one).
 */
#include "node_internal.h"
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

static void route_metrics(rc_node *n, rc_http_request *req)
{
    size_t count = rc_sio_ns_count(n->sio);
    const char *names[RC_METRICS_MAX_NS];
    uint64_t sockets[RC_METRICS_MAX_NS], rooms[RC_METRICS_MAX_NS];
    if (count > RC_METRICS_MAX_NS) count = RC_METRICS_MAX_NS;
    rc_sio_gauges(n->sio, names, sockets, rooms);
    rc_metrics_gauges g = {
        .ns_names = names, .ns_count = count, .sockets_by_ns = sockets, .rooms_by_ns = rooms,
        .connections = rc_server_conn_count(n->server), .eio_sessions = rc_eio_session_count(n->eio),
        .ready = rc_node__ready(n), .draining = n->draining, .version = RC_VERSION, .node_id = n->cfg->node_id,
    };
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write(out, &g);
    if (n->bp->ops->write_metrics) n->bp->ops->write_metrics(n->bp, out);
    rc_jobs_write_metrics(n->jobs, out);
    if (n->presence) rc_presence_write_metrics(n->presence, out);
    rc_http_respond_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", out, NULL);
    evbuffer_free(out);
}

/* POST /api/publish (docs/architecture.md, "Presence, notifications, jobs"; docs/config.md, api.key). */
static void route_publish(rc_node *n, rc_http_request *req)
{
    const char *auth = rc_http_header(req, "Authorization");
    size_t keylen = strlen(n->cfg->api_key);
    if (!auth || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != keylen ||
        CRYPTO_memcmp(auth + 7, n->cfg->api_key, keylen) != 0) {
        respond_json(req, 401, "{\"ok\":false,\"error\":\"unauthorized\"}");
        return;
    }
    cJSON *body = req->body ? cJSON_ParseWithLength((const char *)req->body, req->body_len) : NULL;
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        respond_json(req, 400, "{\"ok\":false,\"error\":\"bad_json\"}");
        return;
    }
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(body, "ns");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(body, "room");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(body, "user");
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(body, "event");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(body, "data");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(body, "args");
    const char *nsname = cJSON_IsString(ns) ? ns->valuestring : "/";
    const char *error = NULL;
    if (ns && !cJSON_IsString(ns)) error = "bad_ns";
    else if (!rc_sio_has_ns(n->sio, nsname)) error = "unknown_namespace";
    else if (!cJSON_IsString(event) || !event->valuestring[0]) error = "bad_event";
    else if (room && (!cJSON_IsString(room) || !room->valuestring[0])) error = "bad_room";
    else if (user && !cJSON_IsString(user)) error = "bad_user";
    else if (args && !cJSON_IsArray(args)) error = "bad_args";
    else if (args && data) error = "data_and_args";
    if (error) {
        char out[128];
        snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"%s\"}", error);
        respond_json(req, 400, out);
        cJSON_Delete(body);
        return;
    }
    char *json = rc_node__args_json_of(args, data);
    if (user) {
        /* A notification: with Redis every node must see it (P:notify), this one included;
         * embedded, it is handled here. */
        const char *nerr = NULL;
        if (n->notify_channel) {
            const char *argv[3] = {"PUBLISH", n->notify_channel, (const char *)req->body};
            size_t argvlen[3] = {7, strlen(n->notify_channel), req->body_len};
            if (rc_redis_command(n->bp, NULL, NULL, 3, argv, argvlen) != 0) nerr = "backplane_down";
        } else {
            rc_metrics.notifications_total++;
            nerr = rc_node__notify(n, (const char *)req->body, req->body_len);
        }
        if (nerr) {
            char out[128];
            snprintf(out, sizeof(out), "{\"ok\":false,\"error\":\"%s\"}", nerr);
            respond_json(req, strcmp(nerr, "backplane_down") == 0 ? 503 : 400, out);
        } else {
            rc_metrics.api_publishes_total++;
            respond_json(req, 202, "{\"ok\":true}");
        }
        cJSON_free(json);
        cJSON_Delete(body);
        return;
    }
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = nsname;
    msg.room = room ? room->valuestring : NULL;
    msg.event = event->valuestring;
    msg.args_json = json;
    msg.args_len = strlen(json);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    if (cJSON_IsString(id)) msg.id = id->valuestring;
    if (rc_node__broadcast(n, &msg) != 0) {
        respond_json(req, 503, "{\"ok\":false,\"error\":\"backplane_down\"}");
    } else {
        rc_metrics.api_publishes_total++;
        respond_json(req, 202, "{\"ok\":true}");
    }
    cJSON_free(json);
    cJSON_Delete(body);
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
    rc_http_respond(req, 404, "text/plain", "not found\n", 10, NULL);
}

void rc_node__on_accept(void *arg, rc_conn *c)
{
    rc_node *n = arg;
    rc_http_attach(c, &n->limits, &n->http_cb);
}
