/*
 * node.c: the composition root of a roomcast node (see include/roomcast/node.h).
 *
 * Data flow in: TCP -> rc_server -> rc_http (routing below) -> rc_eio (Engine.IO paths) ->
 * rc_sio -> hooks here -> rules (rc_rules_run) -> rule ops here -> rc_sio (join/emit/ack) or
 * rc_node_broadcast -> local fan-out (rc_sio_broadcast) + backplane publish.
 * Data flow from other nodes and backends: backplane on_message -> rc_sio_broadcast/control.
 * HTTP API: POST /api/publish -> rc_node_broadcast.
 *
 * What it does not do: parse protocols (the layers do) or decide what events mean (rules do).
 */
#include "roomcast/node.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/eio.h"
#include "roomcast/http.h"
#include "roomcast/jobs.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/presence.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"
#include "roomcast/server.h"
#include "roomcast/sio.h"
#include "roomcast/sio_codec.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdio.h>

#ifndef RC_VERSION
#define RC_VERSION "dev"
#endif

struct rc_node {
    struct event_base *base;
    rc_config *cfg;
    rc_server *server;
    rc_http_limits limits;
    rc_http_callbacks http_cb;
    rc_eio_server *eio;
    rc_sio_server *sio;
    rc_sio_hooks hooks;
    rc_backplane *bp;
    rc_backplane_callbacks bp_cb;
    rc_jobs *jobs;
    rc_presence *presence;
    rc_presence_callbacks presence_cb;
    struct pending_answer *pending; /* presence queries and member lists awaiting Redis */
    size_t pending_count;
    uint64_t next_tag;
    int presence_draining;
    uint64_t drain_started_ms;
    char *notify_channel;           /* <prefix>:notify, NULL without Redis */
    char *status_pattern;           /* <prefix>:status:* while some namespace broadcasts status */
    int bp_up;
    int draining;
    struct event *drain_ev;
    size_t drain_batch;
};

/* What a rule acts on: the socket and the inbound packet being handled. */
typedef struct rule_target {
    rc_node *node;
    rc_sio_socket *socket;
    long long ack_id;               /* -1 once answered or when none was asked */
    const rc_bp_bytes *att;
    size_t att_count;
    const char *event;              /* the event being handled (for continuations) */
} rule_target;

/* A rule waiting for presence (a status query or a member list): the socket is looked up again
 * by namespace and id when the answer comes, since it may be gone by then. */
typedef struct pending_answer {
    struct pending_answer *next;
    uint64_t tag;
    int ns_index;
    char sid[24];
    long long ack_id;
    const void *then;
    char *event;
} pending_answer;

#define MAX_PENDING_ANSWERS 10000

/* ---- broadcast ---------------------------------------------------------------------------- */

static int node_ready(const rc_node *n) { return !n->draining && n->bp_up; }

/* Delivers locally, then publishes for the other nodes. -1 when the backplane is down (nothing
 * is delivered then, so the caller can refuse cleanly). */
static int node_broadcast(rc_node *n, rc_bp_message *msg)
{
    if (!n->bp->ops->is_up(n->bp)) {
        rc_metrics.backplane_publish_failures_total++;
        return -1;
    }
    msg->origin = n->cfg->node_id;
    if (msg->kind == RC_BP_EMIT) rc_sio_broadcast(n->sio, msg, rc_now_mono_ns());
    else rc_sio_control(n->sio, msg);
    if (n->bp->ops->publish(n->bp, msg) != 0) {
        rc_metrics.backplane_publish_failures_total++;
        return -1;
    }
    rc_metrics.backplane_publishes_total++;
    return 0;
}

/* Emits event(args) to a room (NULL: the whole namespace): on this node only (`cluster` 0: every
 * node hears the cause itself) or through node_broadcast. Returns node_broadcast's result. */
static int node_emit(rc_node *n, const char *ns, const char *room, const char *event, const cJSON *args,
                     int cluster)
{
    char *json = cJSON_PrintUnformatted(args);
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = ns;
    msg.room = room;
    msg.event = event;
    msg.args_json = json;
    msg.args_len = strlen(json);
    int r = 0;
    if (cluster) r = node_broadcast(n, &msg);
    else r = (int)rc_sio_broadcast(n->sio, &msg, rc_now_mono_ns());
    cJSON_free(json);
    return r;
}

static void bp_on_message(void *arg, const rc_bp_message *msg)
{
    rc_node *n = arg;
    rc_metrics.backplane_receives_total++;
    if (msg->kind == RC_BP_EMIT) rc_sio_broadcast(n->sio, msg, rc_now_mono_ns());
    else rc_sio_control(n->sio, msg);
}

static void bp_on_state(void *arg, int up)
{
    rc_node *n = arg;
    if (n->bp_up != up) rc_log_info(up ? "backplane_up" : "backplane_down", "node=%s", n->cfg->node_id);
    n->bp_up = up;
    if (n->presence) rc_presence_on_state(n->presence, up);
}

/* A namespace's status room (its "status" option) is watched while it has local members: the
 * watcher id is the namespace index + 1. */
static void status_room_watch(rc_node *n, const char *ns, const char *room, int watch)
{
    const rc_ns_rules *r = rc_rules_find_ns(n->cfg->rules, ns, strlen(ns));
    char user[256];
    if (!n->presence || !rc_ns_rules_status_user(r, room, user, sizeof(user))) return;
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++) {
        if (rc_rules_ns_at(n->cfg->rules, i) != r) continue;
        if (watch) rc_presence_watch(n->presence, (uint64_t)i + 1, user);
        else rc_presence_unwatch(n->presence, (uint64_t)i + 1, user);
    }
}

typedef struct held_session {
    rc_node *node;
    char sid[24];
} held_session;

static void release_held(void *arg, int live)
{
    held_session *h = arg;
    rc_eio_session *s = live ? rc_eio_find(h->node->eio, h->sid) : NULL;
    if (s) rc_eio_release(s);
    rc_free(h);
}

static void on_room_open(void *arg, const char *ns, const char *room)
{
    rc_node *n = arg;
    n->bp->ops->room_open(n->bp, ns, room);
    status_room_watch(n, ns, room, 1);
    /* The socket whose join opened the room hears nothing more (its ack, its CONNECT reply)
     * until the room's channel is subscribed: after "joined", a publish cannot be missed. */
    rc_sio_socket *joiner = rc_sio_joining_socket(n->sio);
    if (joiner && n->bp->ops->when_subscribed && n->bp_up) {
        rc_eio_session *es = rc_sio_socket_session(joiner);
        held_session *h = rc_malloc(sizeof(*h));
        h->node = n;
        snprintf(h->sid, sizeof(h->sid), "%s", rc_eio_sid(es));
        rc_eio_hold(es);
        n->bp->ops->when_subscribed(n->bp, release_held, h);
    }
}

static void on_room_close(void *arg, const char *ns, const char *room)
{
    rc_node *n = arg;
    n->bp->ops->room_close(n->bp, ns, room);
    status_room_watch(n, ns, room, 0);
}

/* ---- presence ----------------------------------------------------------------------------- */

/* A watched user went online or offline: each namespace watching them (watcher = its index + 1)
 * tells the members of that user's status room, on this node (every node hears P:status). */
static void presence_on_status(void *arg, const char *user, int online, uint64_t ts_ms,
                               const uint64_t *watchers, size_t count)
{
    rc_node *n = arg;
    for (size_t i = 0; i < count; i++) {
        const rc_ns_rules *r = watchers[i] >= 1 && watchers[i] <= rc_rules_ns_count(n->cfg->rules)
                                   ? rc_rules_ns_at(n->cfg->rules, (size_t)watchers[i] - 1) : NULL;
        char event[201];
        cJSON *args = NULL;
        char *room = rc_ns_rules_status_room(r, user);
        if (room && rc_ns_rules_announce(r, online ? RC_ANNOUNCE_ONLINE : RC_ANNOUNCE_OFFLINE, user, room,
                                         ts_ms, event, &args) == 0)
            node_emit(n, rc_ns_rules_name(r), room, event, args, 0);
        cJSON_Delete(args);
        rc_free(room);
    }
}

/* A user joined or left a tracked room as a whole (decided on this node): announce it to the
 * room on every node. */
static void presence_on_member(void *arg, const char *ns, const char *room, const char *user, int joined)
{
    rc_node *n = arg;
    const rc_ns_rules *r = rc_rules_find_ns(n->cfg->rules, ns, strlen(ns));
    char event[201];
    cJSON *args = NULL;
    if (rc_ns_rules_announce(r, joined ? RC_ANNOUNCE_JOINED : RC_ANNOUNCE_LEFT, user, room, 0, event, &args) == 0 &&
        node_emit(n, ns, room, event, args, 1) != 0)
        rc_log_warn("announce_failed", "ns=%s room=%s", ns, room);
    cJSON_Delete(args);
}

static pending_answer *pending_take(rc_node *n, uint64_t tag)
{
    for (pending_answer **pp = &n->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->tag != tag) continue;
        pending_answer *p = *pp;
        *pp = p->next;
        n->pending_count--;
        return p;
    }
    return NULL;
}

static void pending_free(pending_answer *p)
{
    rc_free(p->event);
    rc_free(p);
}

static void rule_ops_run_answer(rc_node *n, pending_answer *p, cJSON *data, const char *error);

/* Runs the rule waiting on tag (if it is still waiting) with data as {data}, or with
 * backplane_down when err; data is freed here either way. */
static void answer_pending(rc_node *n, uint64_t tag, int err, cJSON *data)
{
    pending_answer *p = pending_take(n, tag);
    if (p) {
        rule_ops_run_answer(n, p, data, err ? "backplane_down" : NULL);
        pending_free(p);
    }
    cJSON_Delete(data);
}

static void presence_on_query(void *arg, uint64_t tag, int err, const char *const *users,
                              const unsigned char *online, size_t count)
{
    cJSON *data = NULL;
    if (!err) {
        data = cJSON_CreateObject();
        for (size_t i = 0; i < count; i++) cJSON_AddBoolToObject(data, users[i], online[i]);
    }
    answer_pending(arg, tag, err, data);
}

static void presence_on_members(void *arg, uint64_t tag, int err, const char *ns, const char *room,
                                const char *const *users, size_t count, size_t total)
{
    cJSON *data = NULL;
    if (!err) {
        data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "room", room);
        cJSON *list = cJSON_AddArrayToObject(data, "members");
        for (size_t i = 0; i < count; i++) cJSON_AddItemToArray(list, cJSON_CreateString(users[i]));
        cJSON_AddNumberToObject(data, "total", (double)total);
    }
    answer_pending(arg, tag, err, data);
}

static void presence_on_drained(void *arg, int err)
{
    rc_node *n = arg;
    rc_log_info("presence_drained", "node=%s err=%d", n->cfg->node_id, err);
    event_base_loopexit(n->base, NULL);
}

/* ---- notifications (P:notify) ------------------------------------------------------------- */

/* The arguments of a publish as JSON array text: "args" as given, or "data" as the only one
 * (none when absent). cJSON_free the result. */
static char *args_json_of(const cJSON *args, const cJSON *data)
{
    if (args) return cJSON_PrintUnformatted(args);
    cJSON *arr = cJSON_CreateArray();
    if (data) cJSON_AddItemReferenceToArray(arr, (cJSON *)data);
    char *json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return json;
}

static void notify_job_done(void *arg, int status, const char *reason)
{
    if (status < 0) rc_log_warn("job_handoff_failed", "reason=%s", reason);
    else rc_log_debug("job_handoff", "status=%d reason=%s", status, reason);
}

/* A notification for a user (DESIGN.md section 3): every socket of the user in `ns` on this node
 * gets the event; if this node has none, the jobs script decides atomically, against the
 * cluster-wide presence set, whether the user is offline everywhere and adds the one job. Every
 * node receives the same notification, and the job id (the notification's id, or a digest of
 * the payload) makes the hand-off happen once. Returns a static error or NULL. */
static const char *node_notify(rc_node *n, const char *payload, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const char *err = NULL;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "ns");
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(j, "event");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "args");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char userbuf[64], idbuf[64];
    const char *uid = NULL, *nid = NULL;
    if (cJSON_IsString(user) && user->valuestring[0]) uid = user->valuestring;
    else if (cJSON_IsNumber(user)) { snprintf(userbuf, sizeof(userbuf), "%.0f", user->valuedouble); uid = userbuf; }
    if (cJSON_IsString(id)) nid = id->valuestring;
    else if (cJSON_IsNumber(id)) { snprintf(idbuf, sizeof(idbuf), "%.0f", id->valuedouble); nid = idbuf; }
    const char *nsname = cJSON_IsString(ns) ? ns->valuestring : "/";
    if (!cJSON_IsObject(j)) err = "bad_json";
    else if (!uid) err = "bad_user";
    else if (ns && !cJSON_IsString(ns)) err = "bad_ns";
    else if (!rc_sio_has_ns(n->sio, nsname)) err = "unknown_namespace";
    else if (event && (!cJSON_IsString(event) || !event->valuestring[0])) err = "bad_event";
    else if (args && !cJSON_IsArray(args)) err = "bad_args";
    if (err) {
        rc_log_debug("notify_invalid", "error=%s", err);
        cJSON_Delete(j);
        return err;
    }
    const rc_ns_rules *r = rc_rules_find_ns(n->cfg->rules, nsname, strlen(nsname));
    char *room = rc_ns_rules_user_room(r, uid, NULL);
    size_t delivered = 0;
    if (room) {
        char *json = args_json_of(args, data);
        rc_bp_message msg = {0};
        msg.kind = RC_BP_EMIT;
        msg.ns = nsname;
        msg.room = room;
        msg.event = event ? event->valuestring : "notification";
        msg.args_json = json;
        msg.args_len = strlen(json);
        delivered = rc_sio_broadcast(n->sio, &msg, rc_now_mono_ns());
        cJSON_free(json);
        rc_free(room);
    }
    rc_metrics.notifications_delivered_total += delivered;
    if (delivered == 0 && n->jobs) rc_jobs_notify_offline(n->jobs, uid, nid, payload, len, notify_job_done, NULL);
    cJSON_Delete(j);
    return NULL;
}

/* A status change seen through the <prefix>:status:* pattern: namespaces whose "status" option
 * broadcasts tell every local socket (each node hears the pattern itself). */
static void status_broadcast(rc_node *n, const char *payload, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(j, "online");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    if (!cJSON_IsString(user) || !cJSON_IsBool(online)) {
        cJSON_Delete(j);
        return;
    }
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++) {
        const rc_ns_rules *r = rc_rules_ns_at(n->cfg->rules, i);
        if (!rc_ns_rules_status_broadcast(r)) continue;
        char event[201];
        cJSON *args = NULL;
        if (rc_ns_rules_announce(r, cJSON_IsTrue(online) ? RC_ANNOUNCE_ONLINE : RC_ANNOUNCE_OFFLINE,
                                 user->valuestring, NULL, cJSON_IsNumber(ts) ? (uint64_t)ts->valuedouble : 0,
                                 event, &args) == 0)
            node_emit(n, rc_ns_rules_name(r), NULL, event, args, 0);
        cJSON_Delete(args);
    }
    cJSON_Delete(j);
}

static void bp_on_raw(void *arg, const char *channel, const char *payload, size_t len)
{
    rc_node *n = arg;
    if (n->status_pattern && strcmp(channel, n->status_pattern) == 0) {
        status_broadcast(n, payload, len);
        return;
    }
    if (n->presence && rc_presence_on_raw(n->presence, channel, payload, len)) return;
    if (n->notify_channel && strcmp(channel, n->notify_channel) == 0) {
        rc_metrics.notifications_total++;
        node_notify(n, payload, len);
    }
}

/* ---- rule operations ---------------------------------------------------------------------- */

/* The attachments go along only if the outgoing arguments still reference them. */
static size_t attachments_for(const rule_target *t, const cJSON *args)
{
    if (!t->att_count) return 0;
    return rc_sio_count_placeholders(args, (int)t->att_count) > 0 ? t->att_count : 0;
}

static const char *op_join(void *target, const char *room)
{
    rule_target *t = target;
    return rc_sio_join(t->socket, room) < 0 ? "too_many_rooms" : NULL;
}

static const char *op_leave(void *target, const char *room)
{
    rule_target *t = target;
    rc_sio_leave(t->socket, room);
    return NULL;
}

/* Tracked rooms ("track"): every join and leave, by rule or by backend control op. */
static void hook_on_membership(void *arg, rc_sio_socket *s, const char *room, int joined)
{
    rc_node *n = arg;
    if (!n->presence || !rc_sio_socket_user(s) || !rc_ns_rules_tracked(rc_sio_socket_rules(s), room)) return;
    if (joined) rc_presence_member_add(n->presence, rc_sio_socket_id(s), rc_sio_socket_ns(s), room);
    else rc_presence_member_remove(n->presence, rc_sio_socket_id(s), rc_sio_socket_ns(s), room);
}

static int op_is_member(void *target, const char *room)
{
    rule_target *t = target;
    return rc_sio_is_member(t->socket, room);
}

static const char *op_relay(void *target, const char *room, const char *event, cJSON *args,
                            int include_sender)
{
    rule_target *t = target;
    char *json = cJSON_PrintUnformatted(args);
    const char *sid = rc_sio_socket_id(t->socket);
    size_t att = attachments_for(t, args);
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = rc_sio_socket_ns(t->socket);
    msg.room = room;
    msg.event = event;
    msg.args_json = json;
    msg.args_len = strlen(json);
    msg.attachments = att ? t->att : NULL;
    msg.attachment_count = att;
    if (!include_sender) {
        msg.except = &sid;
        msg.except_count = 1;
    }
    int r = node_broadcast(t->node, &msg);
    cJSON_free(json);
    cJSON_Delete(args);
    return r == 0 ? NULL : "backplane_down";
}

static void op_emit(void *target, const char *event, cJSON *args, const void *on_ack)
{
    rule_target *t = target;
    char *json = cJSON_PrintUnformatted(args);
    size_t att = attachments_for(t, args);
    rc_sio_emit(t->socket, event, json, strlen(json), att ? t->att : NULL, att, on_ack);
    cJSON_free(json);
    cJSON_Delete(args);
}

static void op_ack(void *target, cJSON *args)
{
    rule_target *t = target;
    if (t->ack_id >= 0) {
        char *json = cJSON_PrintUnformatted(args);
        size_t att = attachments_for(t, args);
        rc_sio_ack(t->socket, t->ack_id, json, strlen(json), att ? t->att : NULL, att);
        cJSON_free(json);
        t->ack_id = -1;
    }
    cJSON_Delete(args);
}

static void op_disconnect(void *target)
{
    rule_target *t = target;
    rc_sio_disconnect(t->socket);
}

static const char *op_forward(void *target, const char *event, cJSON *data)
{
    rule_target *t = target;
    rc_node *n = t->node;
    char *json = data ? cJSON_PrintUnformatted(data) : NULL;
    rc_jobs_event ev = {
        .ns = rc_sio_socket_ns(t->socket), .event = event, .user = rc_sio_socket_user(t->socket),
        .sid = rc_sio_socket_id(t->socket), .node = n->cfg->node_id,
        .data_json = json, .data_len = json ? strlen(json) : 0, .ts_ms = 0,
    };
    int r = n->jobs ? rc_jobs_forward_event(n->jobs, &ev) : -1;
    cJSON_free(json);
    cJSON_Delete(data);
    return r == 0 ? NULL : "backplane_down";
}

/* Registers a rule continuation that waits for a presence answer; returns its tag. */
static uint64_t pending_add(rule_target *t, const void *then, const char *event)
{
    rc_node *n = t->node;
    if (n->pending_count >= MAX_PENDING_ANSWERS) return 0;
    pending_answer *p = rc_calloc(1, sizeof(*p));
    p->tag = ++n->next_tag;
    p->ns_index = rc_sio_socket_ns_index(t->socket);
    snprintf(p->sid, sizeof(p->sid), "%s", rc_sio_socket_id(t->socket));
    p->ack_id = t->ack_id;
    p->then = then;
    p->event = event ? rc_strdup(event) : NULL;
    p->next = n->pending;
    n->pending = p;
    n->pending_count++;
    return p->tag;
}

static const char *op_presence(void *target, cJSON *users, const void *then)
{
    rule_target *t = target;
    rc_node *n = t->node;
    size_t count = (size_t)cJSON_GetArraySize(users);
    const char **list = rc_calloc(count ? count : 1, sizeof(char *));
    size_t i = 0;
    for (const cJSON *c = users->child; c && i < count; c = c->next) list[i++] = c->valuestring;
    uint64_t tag = n->presence ? pending_add(t, then, t->event) : 0;
    int r = tag ? rc_presence_query(n->presence, list, i, tag) : -1;
    rc_free(list);
    cJSON_Delete(users);
    if (r != 0) {
        if (tag) pending_free(pending_take(n, tag));
        return "backplane_down";
    }
    t->ack_id = -1; /* the answer's `then` owns the ack now */
    return NULL;
}

static const char *op_members(void *target, const char *room, const void *then)
{
    rule_target *t = target;
    rc_node *n = t->node;
    uint64_t tag = n->presence ? pending_add(t, then, t->event) : 0;
    int r = tag ? rc_presence_members(n->presence, rc_sio_socket_ns(t->socket), room, tag) : -1;
    if (r != 0) {
        if (tag) pending_free(pending_take(n, tag));
        return "backplane_down";
    }
    t->ack_id = -1;
    return NULL;
}

static const char *op_visible(void *target, int visible)
{
    rule_target *t = target;
    const char *user = rc_sio_socket_user(t->socket);
    if (!user) return "forbidden";
    if (!t->node->presence || rc_presence_set_visible(t->node->presence, user, visible) != 0)
        return "backplane_down";
    return NULL;
}

static const rc_rule_ops rule_ops = {
    .forward = op_forward,
    .presence = op_presence,
    .members = op_members,
    .visible = op_visible,
    .join = op_join,
    .leave = op_leave,
    .is_member = op_is_member,
    .relay = op_relay,
    .emit = op_emit,
    .ack = op_ack,
    .disconnect = op_disconnect,
};

/* What rules see of a socket; with_auth also parses the auth payload the socket kept (the caller
 * frees in->auth with cJSON_Delete). */
static void fill_input(rc_rule_input *in, rc_sio_socket *s, int with_auth)
{
    memset(in, 0, sizeof(*in));
    in->ns = rc_sio_socket_ns(s);
    in->sid = rc_sio_socket_id(s);
    in->user = rc_sio_socket_user(s);
    in->claims_json = rc_sio_socket_claims(s);
    const char *auth_json = with_auth ? rc_sio_socket_auth(s) : NULL;
    if (auth_json) in->auth = cJSON_Parse(auth_json);
}

static void hook_on_connect(void *arg, rc_sio_socket *s, const cJSON *auth)
{
    rc_node *n = arg;
    if (n->presence && rc_sio_socket_user(s))
        rc_presence_connect(n->presence, rc_sio_socket_user(s), rc_sio_socket_id(s));
    rule_target t = {arg, s, -1, NULL, 0, NULL};
    rc_rule_input in;
    fill_input(&in, s, 0);
    in.auth = auth;
    rc_rules_run(rc_sio_socket_rules(s), &in, &rule_ops, &t);
}

static void hook_on_event(void *arg, rc_sio_socket *s, const rc_sio_event *ev)
{
    rule_target t = {arg, s, ev->ack_id, ev->attachments, ev->attachment_count, ev->name};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = ev->name;
    in.args = ev->args;
    in.has_ack = ev->ack_id >= 0;
    int matched = 1;
    if (ev->limited) rc_rules_run_limited(rc_sio_socket_rules(s), &in, &rule_ops, &t);
    else matched = rc_rules_run(rc_sio_socket_rules(s), &in, &rule_ops, &t);
    cJSON_Delete((cJSON *)in.auth);
    if (!matched && t.ack_id >= 0) {
        static const char unknown[] = "[{\"ok\":false,\"error\":\"unknown_event\"}]";
        rc_sio_ack(s, t.ack_id, unknown, sizeof(unknown) - 1, NULL, 0);
    }
}

static void hook_on_ack(void *arg, rc_sio_socket *s, const void *ctx, const char *event, const rc_sio_event *ack)
{
    rule_target t = {arg, s, -1, ack->attachments, ack->attachment_count, event};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = event;
    in.args = ack->args;
    rc_rules_run_ack(rc_sio_socket_rules(s), ctx, &in, &rule_ops, &t);
    cJSON_Delete((cJSON *)in.auth);
}

/* Runs a rule continuation with {data} = the presence answer (or, on error, answers the ack the
 * event still awaits with {"ok":false,"error":...}). */
static void rule_ops_run_answer(rc_node *n, pending_answer *p, cJSON *data, const char *error)
{
    rc_sio_socket *s = rc_sio_find_socket(n->sio, p->ns_index, p->sid);
    if (!s) return;
    if (error) {
        if (p->ack_id >= 0) {
            char out[96];
            int len = snprintf(out, sizeof(out), "[{\"ok\":false,\"error\":\"%s\"}]", error);
            rc_sio_ack(s, p->ack_id, out, (size_t)len, NULL, 0);
        }
        return;
    }
    rule_target t = {n, s, p->ack_id, NULL, 0, p->event};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = p->event;
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemReferenceToArray(args, data);
    in.args = args;
    in.has_ack = p->ack_id >= 0;
    rc_rules_run_ack(rc_sio_socket_rules(s), p->then, &in, &rule_ops, &t);
    cJSON_Delete((cJSON *)in.auth);
    cJSON_Delete(args);
}

static void hook_on_disconnect(void *arg, rc_sio_socket *s)
{
    rc_node *n = arg;
    if (n->presence && rc_sio_socket_user(s)) rc_presence_disconnect(n->presence, rc_sio_socket_id(s));
}

/* ---- HTTP routes -------------------------------------------------------------------------- */

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
        .ready = node_ready(n), .draining = n->draining, .version = RC_VERSION, .node_id = n->cfg->node_id,
    };
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write(out, &g);
    if (n->bp->ops->write_metrics) n->bp->ops->write_metrics(n->bp, out);
    rc_jobs_write_metrics(n->jobs, out);
    if (n->presence) rc_presence_write_metrics(n->presence, out);
    rc_http_respond_buffer(req, 200, "text/plain; version=0.0.4; charset=utf-8", out, NULL);
    evbuffer_free(out);
}

/* POST /api/publish (DESIGN.md section 3). */
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
    char *json = args_json_of(args, data);
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
            nerr = node_notify(n, (const char *)req->body, req->body_len);
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
    char *user_room = NULL;
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = nsname;
    msg.room = user ? user_room : (room ? room->valuestring : NULL);
    msg.event = event->valuestring;
    msg.args_json = json;
    msg.args_len = strlen(json);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    if (cJSON_IsString(id)) msg.id = id->valuestring;
    if (user && !user_room) {
        respond_json(req, 400, "{\"ok\":false,\"error\":\"no_user_room\"}");
    } else if (node_broadcast(n, &msg) != 0) {
        respond_json(req, 503, "{\"ok\":false,\"error\":\"backplane_down\"}");
    } else {
        rc_metrics.api_publishes_total++;
        respond_json(req, 202, "{\"ok\":true}");
    }
    rc_free(user_room);
    cJSON_free(json);
    cJSON_Delete(body);
}

static int path_is(const rc_http_request *req, const char *p) { return rc_slice_eq(req->path, p); }

static void node_on_request(void *arg, rc_http_request *req)
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
        if (node_ready(n)) rc_http_respond(req, 200, "text/plain", "ready\n", 6, NULL);
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

static void node_on_accept(void *arg, rc_conn *c)
{
    rc_node *n = arg;
    rc_http_attach(c, &n->limits, &n->http_cb);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

rc_node *rc_node_new(struct event_base *base, rc_config *cfg, const char **err)
{
    rc_node *n = rc_calloc(1, sizeof(*n));
    n->base = base;
    n->cfg = cfg;
    n->limits.max_header_bytes = cfg->http_max_header_bytes;
    n->limits.max_body_bytes = cfg->http_max_body_bytes;
    n->limits.header_timeout_ms = cfg->http_header_timeout_ms;
    n->limits.keepalive_timeout_ms = cfg->http_keepalive_timeout_ms;
    n->limits.max_pending_output = cfg->max_outbound_bytes;
    n->http_cb.on_request = node_on_request;
    n->http_cb.arg = n;
    n->bp_cb.on_message = bp_on_message;
    n->bp_cb.on_state = bp_on_state;
    n->bp_cb.on_raw = bp_on_raw;
    n->bp_cb.arg = n;
    if (cfg->redis_url) {
        n->bp = rc_backplane_redis_new(base, cfg, &n->bp_cb);
        if (!n->bp) {
            *err = "cannot create the Redis backplane (see the log)";
            rc_free(n);
            return NULL;
        }
    } else {
        n->bp = rc_backplane_local_new(base, &n->bp_cb);
        n->bp_up = 1;
    }
    if (rc_redis_available(n->bp)) {
        size_t plen = strlen(cfg->prefix);
        n->notify_channel = rc_malloc(plen + 8);
        snprintf(n->notify_channel, plen + 8, "%s:notify", cfg->prefix);
        rc_redis_channel_open(n->bp, n->notify_channel);
        for (size_t i = 0; i < rc_rules_ns_count(cfg->rules); i++) {
            if (!rc_ns_rules_status_broadcast(rc_rules_ns_at(cfg->rules, i)) || n->status_pattern) continue;
            n->status_pattern = rc_malloc(plen + 10);
            snprintf(n->status_pattern, plen + 10, "%s:status:*", cfg->prefix);
            rc_redis_channel_open(n->bp, n->status_pattern);
        }
    }
    n->jobs = rc_jobs_new(&cfg->jobs, n->bp);
    n->presence_cb.on_status = presence_on_status;
    n->presence_cb.on_member = presence_on_member;
    n->presence_cb.on_query = presence_on_query;
    n->presence_cb.on_members = presence_on_members;
    n->presence_cb.on_drained = presence_on_drained;
    n->presence_cb.arg = n;
    n->presence = rc_presence_new(base, n->bp, cfg->node_id, &cfg->presence, &n->presence_cb);
    n->hooks.on_connect = hook_on_connect;
    n->hooks.on_disconnect = hook_on_disconnect;
    n->hooks.on_membership = hook_on_membership;
    n->hooks.on_event = hook_on_event;
    n->hooks.on_ack = hook_on_ack;
    n->hooks.on_room_open = on_room_open;
    n->hooks.on_room_close = on_room_close;
    n->hooks.arg = n;
    n->sio = rc_sio_server_new(base, cfg, &n->hooks);
    for (size_t i = 0; i < rc_rules_ns_count(cfg->rules); i++)
        n->bp->ops->ns_open(n->bp, rc_ns_rules_name(rc_rules_ns_at(cfg->rules, i)));
    rc_eio_settings eio_set = {
        .ping_interval_ms = cfg->ping_interval_ms, .ping_timeout_ms = cfg->ping_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms, .upgrade_timeout_ms = cfg->upgrade_timeout_ms,
        .max_payload = cfg->max_payload, .allow_polling = cfg->allow_polling,
        .allow_websocket = cfg->allow_websocket, .max_outbound_bytes = cfg->max_outbound_bytes,
        .max_sessions = cfg->max_connections, .cors_origins = cfg->cors_origins,
        .cors_origin_count = cfg->cors_origin_count, .cors_credentials = cfg->cors_credentials,
    };
    n->eio = rc_eio_server_new(base, &eio_set, rc_sio_eio_callbacks(n->sio));
    n->server = rc_server_new(base, cfg->bind, cfg->port, cfg->max_connections, node_on_accept, n, err);
    if (n->server && cfg->tls_cert_file &&
        rc_server_enable_tls(n->server, cfg->tls_cert_file, cfg->tls_key_file, err) != 0) {
        rc_server_free(n->server);
        n->server = NULL;
    }
    if (!n->server) {
        rc_eio_server_free(n->eio);
        rc_sio_server_free(n->sio);
        rc_jobs_free(n->jobs);
        if (n->presence) rc_presence_free(n->presence);
        rc_free(n->notify_channel);
        rc_free(n->status_pattern);
        n->bp->ops->free(n->bp);
        rc_free(n);
        return NULL;
    }
    return n;
}

int rc_node_port(const rc_node *n) { return rc_server_port(n->server); }

/* Everything is closed: remove this node's presence entries, then exit (on_drained, or the
 * safety timeout of the next tick). */
static void node_drain_finish(rc_node *n)
{
    if (n->presence && !n->presence_draining) {
        n->presence_draining = 1;
        rc_log_info("drain_done", "node=%s presence=removing", n->cfg->node_id);
        rc_presence_drain(n->presence);
        struct timeval tv = {3, 0};
        evtimer_add(n->drain_ev, &tv);
        return;
    }
    rc_log_info("drain_done", "node=%s", n->cfg->node_id);
    event_base_loopexit(n->base, NULL);
}

static void node_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    if (n->presence_draining) { /* safety timeout: presence did not answer */
        event_base_loopexit(n->base, NULL);
        return;
    }
    rc_sio_disconnect_some(n->sio, n->drain_batch);
    if (rc_sio_socket_count(n->sio) == 0) rc_eio_close_all(n->eio, "server shutting down");
    if (rc_sio_socket_count(n->sio) == 0 && rc_eio_session_count(n->eio) == 0) {
        node_drain_finish(n);
        return;
    }
    if (rc_sio_socket_count(n->sio) == 0) {
        /* Sessions that never joined a namespace: close them all now. */
        rc_eio_close_all(n->eio, "server shutting down");
    }
    int ms = n->cfg->drain_grace_ms / 10;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(n->drain_ev, &tv);
}

void rc_node_drain(rc_node *n)
{
    if (n->draining) return;
    n->draining = 1;
    rc_server_pause_accept(n->server);
    rc_eio_server_refuse_new(n->eio);
    uint64_t total = rc_sio_socket_count(n->sio);
    /* Ten batches over the grace period, so reconnects spread out instead of stampeding. */
    n->drain_batch = (size_t)((total + 9) / 10);
    if (n->drain_batch == 0) n->drain_batch = 1;
    rc_log_info("drain_start", "node=%s sockets=%llu grace_ms=%d", n->cfg->node_id,
                (unsigned long long)total, n->cfg->drain_grace_ms);
    n->drain_ev = evtimer_new(n->base, node_on_drain_tick, n);
    n->drain_started_ms = rc_now_mono_ms();
    if (total == 0 && rc_eio_session_count(n->eio) == 0) {
        node_drain_finish(n);
        return;
    }
    struct timeval tv = {0, 0};
    evtimer_add(n->drain_ev, &tv);
}

void rc_node_free(rc_node *n)
{
    if (n->drain_ev) event_free(n->drain_ev);
    rc_eio_server_free(n->eio);       /* on_close reaches sio for every session */
    rc_server_free(n->server);        /* closes what is left (idle HTTP connections) */
    rc_sio_server_free(n->sio);
    rc_jobs_free(n->jobs);
    if (n->presence) rc_presence_free(n->presence);
    while (n->pending) pending_free(pending_take(n, n->pending->tag));
    rc_free(n->notify_channel);
    rc_free(n->status_pattern);
    n->bp->ops->free(n->bp);
    rc_free(n);
}
