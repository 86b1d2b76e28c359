/*
 * node.c: the composition root of a roomcast node (see include/roomcast/node.h).
 *
 * Data flow in: TCP -> rc_server -> rc_http (routes in node_api.c) -> rc_eio (Engine.IO paths) ->
 * rc_sio -> hooks (node_rules.c) -> rules (rc_rules_run) -> rule ops (node_rules.c) -> rc_sio
 * (join/emit/ack) or rc_node__broadcast (node_broadcast.c) -> local fan-out (rc_sio_broadcast) +
 * backplane publish.
 * Data flow from other nodes and backends: backplane on_message -> rc_sio_broadcast/control;
 * on_raw -> P:notify and the status broadcast (node_notify.c) or presence.
 * HTTP API: POST /api/publish -> rc_node__broadcast (node_api.c).
 *
 * This file: rc_node_new (creates every layer and wires its callbacks to the node's files, see
 * src/node_internal.h), the backplane and presence callbacks, rooms opening and closing (the
 * status watch, the hold until subscribed), the drain (docs/operations.md, "Rolling updates and
 * drain") and rc_node_free.
 *
 * What it does not do: parse protocols (the layers do) or decide what events mean (rules do).
 */
#include "node_internal.h"
#include "roomcast/admin.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/config.h"
#include "roomcast/eio.h"
#include "roomcast/jobs.h"
#include "roomcast/log.h"
#include "roomcast/presence.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"
#include "roomcast/server.h"
#include "roomcast/sio.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

/* ---- backplane ---------------------------------------------------------------------------- */

static void bp_on_message(void *arg, const rc_bp_message *msg)
{
    rc_node *n = arg;
    if (msg->kind == RC_BP_EMIT && rc_node__recovery_heard(n, msg)) return; /* kept: heard again */
    if (msg->kind == RC_BP_EMIT) rc_sio_broadcast(n->sio, msg, rc_now_mono_ns());
    else rc_sio_control(n->sio, msg);
}

static void bp_on_state(void *arg, int up)
{
    rc_node *n = arg;
    if (n->bp_up != up) rc_log_info(up ? "backplane_up" : "backplane_down", "node=%s", n->cfg->node_id);
    n->bp_up = up;
    if (n->presence) rc_presence_on_state(n->presence, up);
    rc_node__listen_state(n, up);
}

static void bp_on_overheard(void *arg, const rc_bp_message *msg)
{
    rc_node__listen_overheard(arg, msg);
}

/* A configuration that can never work (a Redis certificate that cannot be verified): stop. */
static void bp_on_fatal(void *arg, const char *reason)
{
    rc_node *n = arg;
    rc_log_error("start_failed", "node=%s error=\"%s\"", n->cfg->node_id, reason);
    n->failed = 1;
    event_base_loopexit(n->base, NULL);
}

static void bp_on_pattern(void *arg, const char *prefix, const char *channel, const char *payload, size_t len)
{
    rc_node *n = arg;
    if (n->status_pattern && strcmp(prefix, n->status_pattern) == 0) rc_node__status_broadcast(n, payload, len);
    else rc_node__socketio_overheard(n, channel, payload, len); /* a recovery listener's */
}

static void bp_on_raw(void *arg, const char *channel, const char *payload, size_t len)
{
    rc_node *n = arg;
    if (n->socketio && rc_node__socketio_on_raw(n, channel, payload, len)) return;
    if (n->presence && rc_presence_on_raw(n->presence, channel, payload, len)) return;
    if (n->admin && rc_admin_on_raw(n->admin, channel, payload, len)) return;
    if (n->notify_channel && strcmp(channel, n->notify_channel) == 0) {
        n->stats.notifications++;
        rc_node__notify(n, payload, len);
    }
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

/* live = 0 comes only when the backplane is freed, after sio: the hold is detached by then. */
static void release_held(void *arg, int live)
{
    rc_sio_hold_release(arg);
}

static void on_room_open(void *arg, const char *ns, const char *room, rc_sio_socket *opener)
{
    rc_node *n = arg;
    n->bp->ops->room_open(n->bp, ns, room);
    rc_node__socketio_room(n, ns, room, 1);
    status_room_watch(n, ns, room, 1);
    /* The socket whose join opened the room hears nothing more (its ack, its CONNECT reply)
     * until the room's channel is subscribed: after "joined", a publish cannot be missed. */
    if (opener && n->bp->ops->when_subscribed && n->bp_up)
        n->bp->ops->when_subscribed(n->bp, release_held, rc_sio_hold_new(opener));
}

static void on_room_close(void *arg, const char *ns, const char *room)
{
    rc_node *n = arg;
    if (!rc_node__hold_keeps_channel(n, ns, room)) n->bp->ops->room_close(n->bp, ns, room);
    rc_node__socketio_room(n, ns, room, 0);
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
            rc_node__emit(n, rc_ns_rules_name(r), room, event, args, 0);
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
        rc_node__emit(n, ns, room, event, args, 1) != 0)
        rc_log_warn("announce_failed", "ns=%s room=%s", ns, room);
    cJSON_Delete(args);
}

static void presence_on_query(void *arg, uint64_t tag, int err, const char *const *users,
                              const unsigned char *online, size_t count)
{
    cJSON *data = NULL;
    if (!err) {
        data = cJSON_CreateObject();
        for (size_t i = 0; i < count; i++) cJSON_AddBoolToObject(data, users[i], online[i]);
    }
    rc_node__answer_pending(arg, tag, err, data);
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
    rc_node__answer_pending(arg, tag, err, data);
}

static void presence_on_drained(void *arg, int err)
{
    rc_node *n = arg;
    rc_log_info("presence_drained", "node=%s err=%d", n->cfg->node_id, err);
    event_base_loopexit(n->base, NULL);
}

/* ---- sio hooks that run no rules ---------------------------------------------------------- */

/* The Admin UI's sockets (src/admin.c) run no rules and touch no presence. */
static int is_admin(const rc_node *n, const rc_sio_socket *s)
{
    return (size_t)rc_sio_socket_ns_index(s) == n->admin_ns;
}

static void hook_on_connect(void *arg, rc_sio_socket *s, const cJSON *auth)
{
    rc_node *n = arg;
    if (n->admin) rc_admin_on_connect(n->admin, s);
    if (!is_admin(n, s)) rc_node__hook_on_connect(arg, s, auth);
}

static void hook_on_event(void *arg, rc_sio_socket *s, const rc_sio_event *ev)
{
    rc_node *n = arg;
    if (n->admin) rc_admin_on_event(n->admin, s, ev);
    if (!is_admin(n, s)) rc_node__hook_on_event(arg, s, ev);
}

static void hook_on_upgrade(void *arg, rc_sio_socket *s)
{
    rc_node *n = arg;
    if (n->admin) rc_admin_on_upgrade(n->admin, s);
}

static const char *hook_admit(void *arg, size_t ns_index, const cJSON *auth, const rc_addr *from)
{
    rc_node *n = arg;
    return n->admin && ns_index == n->admin_ns ? rc_admin_admit(n->admin, auth, from) : "unauthorized";
}

/* Tracked rooms ("track"): every join and leave, by rule or by backend control op. */
static void hook_on_membership(void *arg, rc_sio_socket *s, const char *room, int joined)
{
    rc_node *n = arg;
    rc_node__recovery_touch(n, s);
    if (n->admin) rc_admin_on_membership(n->admin, s, room, joined);
    if (is_admin(n, s)) return;
    if (!n->presence || !rc_sio_socket_user(s) || !rc_ns_rules_tracked(rc_node__socket_rules(n, s), room)) return;
    if (joined) rc_presence_member_add(n->presence, rc_sio_socket_id(s), rc_sio_socket_ns(s), room);
    else rc_presence_member_remove(n->presence, rc_sio_socket_id(s), rc_sio_socket_ns(s), room);
}

static void hook_on_disconnect(void *arg, rc_sio_socket *s)
{
    rc_node *n = arg;
    if (n->admin) rc_admin_on_disconnect(n->admin, s);
    if (is_admin(n, s)) return;
    rc_node__socketio_socket(n, s, 0);
    rc_node__recovery_left(n, s);
    rc_node__hold_take(n, s);
    if (n->presence && rc_sio_socket_user(s) &&
        !rc_node__recovery_presence_leave(n, s))
        rc_presence_disconnect(n->presence, rc_sio_socket_id(s));
}

static char *hook_user_room(void *arg, const rc_sio_socket *s)
{
    return rc_ns_rules_user_room(rc_node__socket_rules(arg, s), rc_sio_socket_user(s), rc_sio_socket_claims(s));
}

static int hook_event_limit(void *arg, const rc_sio_socket *s, const char *event, unsigned *events,
                            unsigned *interval_ms)
{
    return rc_ns_rules_event_limit(rc_node__socket_rules(arg, s), event, events, interval_ms);
}

/* What sio reads of the configuration and the rules, namespace by namespace (sio copies it). */
static rc_sio_server *sio_new(rc_node *n)
{
    const rc_config *cfg = n->cfg;
    size_t count = rc_rules_ns_count(cfg->rules);
    rc_sio_ns_settings *ns = rc_calloc(count + 1, sizeof(*ns));
    static const int auth_modes[] = {
        [RC_NS_AUTH_REQUIRED] = RC_SIO_AUTH_REQUIRED, [RC_NS_AUTH_OPTIONAL] = RC_SIO_AUTH_OPTIONAL,
        [RC_NS_AUTH_NONE] = RC_SIO_AUTH_NONE,
    };
    for (size_t i = 0; i < count; i++) {
        const rc_ns_rules *r = rc_rules_ns_at(cfg->rules, i);
        ns[i].name = rc_ns_rules_name(r);
        ns[i].auth = auth_modes[rc_ns_rules_auth(r)];
        ns[i].token_in_query = rc_ns_rules_token_in_query(r);
        rc_ns_rules_rate_limit(r, &ns[i].rate_events, &ns[i].rate_interval_ms);
        ns[i].event_limit_count = rc_ns_rules_event_limit_count(r);
        ns[i].recovery = rc_node__recovery_enabled(n, i);
        ns[i].write_delay_ms = rc_ns_rules_write_delay(r);
    }
    n->admin_ns = SIZE_MAX;
    if (cfg->admin.enabled) { /* the Admin UI's namespace comes last: rules index the others */
        n->admin_ns = count;
        ns[count].name = cfg->admin.ns;
        ns[count].auth = RC_SIO_AUTH_HOOK;
        count++;
    }
    static const int expiry_modes[] = {
        [RC_TOKEN_EXPIRY_RECONNECT] = RC_SIO_EXPIRY_RECONNECT,
        [RC_TOKEN_EXPIRY_DISCONNECT] = RC_SIO_EXPIRY_DISCONNECT, [RC_TOKEN_EXPIRY_IGNORE] = RC_SIO_EXPIRY_IGNORE,
    };
    rc_sio_settings set = {
        .ns = ns, .ns_count = count, .jwt = &cfg->jwt, .max_rooms_per_socket = cfg->max_rooms_per_socket,
        .max_rooms = cfg->max_rooms, .max_memberships = cfg->max_memberships, .max_packet_bytes = cfg->max_payload,
        .token_expiry = expiry_modes[cfg->token_expiry], .token_expired_event = cfg->token_expired_event,
    };
    rc_sio_server *sio = rc_sio_server_new(n->base, &set, &n->hooks);
    rc_free(ns);
    return sio;
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
    n->http_cb.on_request = rc_node__on_request;
    n->http_cb.arg = n;
    n->bp_cb.on_message = bp_on_message;
    n->bp_cb.on_state = bp_on_state;
    n->bp_cb.on_raw = bp_on_raw;
    n->bp_cb.on_pattern = bp_on_pattern;
    n->bp_cb.on_overheard = bp_on_overheard;
    n->bp_cb.on_fatal = bp_on_fatal;
    n->bp_cb.arg = n;
    if (rc_redis_config_wanted(&cfg->redis, cfg->redis_url)) {
        rc_backplane_redis_settings rs = {.url = cfg->redis_url, .prefix = cfg->prefix,
                                         .node_id = cfg->node_id, .redis = &cfg->redis};
        n->bp = rc_backplane_redis_new(base, &rs, &n->bp_cb);
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
        n->notify_channel = rc_key_new(cfg->prefix, RC_KEY_NOTIFY, NULL, NULL);
        rc_redis_channel_open(n->bp, n->notify_channel);
        for (size_t i = 0; i < rc_rules_ns_count(cfg->rules); i++) {
            if (!rc_ns_rules_status_broadcast(rc_rules_ns_at(cfg->rules, i)) || n->status_pattern) continue;
            n->status_pattern = rc_key_new(rc_redis_prefix(n->bp), RC_KEY_STATUS, "", NULL);
            rc_redis_pattern_open(n->bp, n->status_pattern);
        }
    }
    rc_node__socketio_new(n);
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
    n->hooks.on_ack = rc_node__hook_on_ack;
    n->hooks.on_room_open = on_room_open;
    n->hooks.on_room_close = on_room_close;
    n->hooks.user_room = hook_user_room;
    n->hooks.event_limit = hook_event_limit;
    n->hooks.auth_error = rc_node__hook_auth_error;
    n->hooks.recover = rc_node__hook_recover;
    n->hooks.admit = hook_admit;
    n->hooks.on_upgrade = hook_on_upgrade;
    n->hooks.arg = n;
    rc_node__recovery_new(n);
    rc_node__holds_new(n);
    rc_node__listen_new(n);
    n->sio = sio_new(n);
    for (size_t i = 0; i < rc_rules_ns_count(cfg->rules); i++)
        n->bp->ops->ns_open(n->bp, rc_ns_rules_name(rc_rules_ns_at(cfg->rules, i)));
    rc_eio_settings eio_set = {
        .ping_interval_ms = cfg->ping_interval_ms, .ping_timeout_ms = cfg->ping_timeout_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms, .upgrade_timeout_ms = cfg->upgrade_timeout_ms,
        .max_payload = cfg->max_payload, .allow_polling = cfg->allow_polling,
        .allow_websocket = cfg->allow_websocket, .max_outbound_bytes = cfg->max_outbound_bytes,
        .max_sessions = cfg->max_connections, .max_pending = cfg->max_pending_sessions,
        .max_pending_per_addr = cfg->max_pending_per_address,
        .max_pending_per_conn = cfg->max_pending_per_connection, .trusted_proxies = cfg->trusted_proxies,
        .trusted_proxy_count = cfg->trusted_proxy_count, .cors_origins = cfg->cors_origins,
        .cors_origin_count = cfg->cors_origin_count, .cors_credentials = cfg->cors_credentials,
    };
    n->eio = rc_eio_server_new(base, &eio_set, rc_sio_eio_callbacks(n->sio));
    if (cfg->admin.enabled)
        n->admin = rc_admin_new(base, &cfg->admin, n->bp, n->sio, n->eio, cfg->node_id, n->admin_ns);
    n->server = rc_server_new(base, cfg->bind, cfg->port, cfg->max_connections, rc_node__on_accept, n, err);
    if (n->server && ((cfg->tls_cert_file &&
                       rc_server_enable_tls(n->server, cfg->tls_cert_file, cfg->tls_key_file, err) != 0) ||
                      rc_server_set_send_path(n->server, cfg->transport.send_path, err) != 0)) {
        rc_server_free(n->server);
        n->server = NULL;
    }
    if (!n->server) {
        rc_admin_free(n->admin);
        n->admin = NULL;
        rc_eio_server_free(n->eio);
        rc_sio_server_free(n->sio);
        rc_jobs_free(n->jobs);
        if (n->presence) rc_presence_free(n->presence);
        rc_free(n->notify_channel);
        rc_free(n->status_pattern);
        rc_node__socketio_free(n->socketio);
        n->bp->ops->free(n->bp);
        rc_node__listen_free(n);
        rc_node__holds_free(n);
        rc_node__recovery_free(n);
        rc_free(n);
        return NULL;
    }
    return n;
}

int rc_node_port(const rc_node *n) { return rc_server_port(n->server); }
int rc_node_failed(const rc_node *n) { return n->failed; }

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
    rc_node__holds_stop(n); /* the node is going: its sockets' clients come back elsewhere */
    rc_node__listen_stop(n); /* another node takes its listener lease now */
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
    rc_node__holds_stop(n); /* before sio closes its sockets: no hold is taken for them */
    if (n->drain_ev) event_free(n->drain_ev);
    rc_admin *admin = n->admin;
    n->admin = NULL;                  /* sockets closing now are told to nobody */
    rc_eio_server_free(n->eio);       /* on_close reaches sio for every session */
    rc_server_free(n->server);        /* closes what is left (idle HTTP connections) */
    rc_sio_server_free(n->sio);
    rc_admin_free(admin);
    rc_jobs_free(n->jobs);
    if (n->presence) rc_presence_free(n->presence);
    while (n->pending) rc_node__pending_free(rc_node__pending_take(n, n->pending->tag));
    rc_free(n->notify_channel);
    rc_free(n->status_pattern);
    rc_node__socketio_free(n->socketio);
    n->bp->ops->free(n->bp);
    rc_node__listen_free(n);
    rc_node__holds_free(n);
    rc_node__recovery_free(n);
    rc_free(n);
}
