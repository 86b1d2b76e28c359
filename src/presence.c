/*
 * presence.c: online status and tracked-room members, across nodes: the API and the local
 * tables. Contract: include/roomcast/presence.h. Keys, scripts and channels: docs/redis.md
 * ("Presence"). The other files of the module, and which calls which: the list at the top of
 * src/presence_internal.h (the Redis mode's calls and phases: presence_redis.c; their replies:
 * presence_reply.c; the deferred events: presence_events.c; who watches whom:
 * presence_watch.c; the embedded store: presence_local.c; the settings: presence_config.c).
 *
 * What it is for: answering "is this user online?" and "who is in this meeting?" the same way
 * on every node, with no scatter-gather over pub/sub (every node reads the same keys in
 * Redis), and never leaving a ghost behind a node that died: every entry belongs to a node,
 * every node heartbeats, and any node removes the entries of a node whose heartbeat is older
 * than the TTL.
 *
 * Local tables (both modes; the node's own truth, which Redis mirrors):
 *   conns     sid -> pr_conn {user, tracked memberships}     (re-registered after data loss)
 *   users     user -> pr_user {nconns, invisible}             (online users seen by this node)
 *   watches   watcher id <-> user, the last state each watched user's watchers were told, and
 *             (Redis mode) one P:status:<user> subscription per watched user (presence_watch.c)
 * Embedded mode adds what Redis holds otherwise (p->local, presence_local.c): tracked rooms
 * with per-user connection counts, and the invisible set.
 *
 * Each call changes the local tables, then, in Redis mode, sends its script call
 * (presence_redis.c: at once when LIVE; a removal is queued otherwise), or in embedded mode
 * queues its events for the loop (presence_events.c).
 *
 * Invisibility across a Redis restart that lost its data: P:invisible is gone with the presence
 * sets, so the nodes keep what they need to restore it. pr_user.invisible says a local user is
 * in P:invisible as far as this node knows: set by this node's own set_visible, and by the
 * notes on P:visibility:N, which Redis sends in the order its scripts ran (VISIBLE to every node
 * holding a connection of the user, JOIN to a node that sent the opposite), so the last one
 * wins everywhere. It goes with the pr_user (the last local connection). Re-registration sends
 * such a user's connections as 'i', and JOIN restores P:invisible before deciding on "online".
 *
 * Lifetimes: callbacks to the node always run from the loop: answers from Redis replies
 * (presence_reply.c), everything else from p->defer_ev (the embedded mode's events, refusals
 * while Redis is down). rc_presence_free orphans the calls in flight, whose replies then only
 * free them.
 *
 * What it does not do: decide which rooms are tracked or what the events are called (rules and
 * the node do), deliver to sockets (the node does, with the watcher ids it gets), damp
 * online/offline flapping of quick reconnects, or work on Redis Cluster (scripts build the
 * per-user keys themselves).
 */
#include "roomcast/presence.h"

#include "presence_internal.h"

#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/hmap.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>

static const char *const op_names[OP__COUNT] = {
    "connect", "disconnect", "member_add", "member_remove", "members", "query",
    "watch", "unwatch", "visibility", "heartbeat", "sweep", "reregister",
};

/* ---- small helpers --------------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    return s && s[0] && strlen(s) <= RC_PRESENCE_NAME_MAX;
}

/* A namespace starts with '/' and never contains ':' (docs/redis.md). */
static int ns_ok(const char *ns)
{
    return name_ok(ns) && ns[0] == '/' && !strchr(ns, ':');
}

/* ---- watches, raw channels ------------------------------------------------------------------- */

int rc_presence_watch(rc_presence *p, uint64_t watcher, const char *user)
{
    if (!watcher || !name_ok(user)) return RC_PRESENCE_EINVAL;
    int added = pr_watches__add(&p->watches, watcher, user, RC_PRESENCE_WATCH_MAX);
    if (added < 0) return RC_PRESENCE_EINVAL;
    p->ops[OP_WATCH] += (uint64_t)added;
    return RC_PRESENCE_OK;
}

void rc_presence_unwatch(rc_presence *p, uint64_t watcher, const char *user)
{
    if (user) p->ops[OP_UNWATCH] += (uint64_t)pr_watches__remove(&p->watches, watcher, user);
}

void rc_presence_unwatch_all(rc_presence *p, uint64_t watcher)
{
    p->ops[OP_UNWATCH] += pr_watches__remove_all(&p->watches, watcher);
}

/* A note on P:visibility:N: what Redis holds of a user's visibility, sent to every node with a
 * connection of theirs when it changes (and to the node that asked), or to a node whose JOIN
 * carried the opposite. Kept only for local users: the others have nothing to restore. */
static void visibility_note(rc_presence *p, const char *payload, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(payload, len);
    const cJSON *user = root ? cJSON_GetObjectItemCaseSensitive(root, "user") : NULL;
    const cJSON *invisible = root ? cJSON_GetObjectItemCaseSensitive(root, "invisible") : NULL;
    if (cJSON_IsString(user) && cJSON_IsBool(invisible)) {
        pr_user *u = rc_presence__user_find(p, user->valuestring);
        if (u) u->invisible = cJSON_IsTrue(invisible);
    } else {
        rc_log_debug("presence_bad_note", "channel=\"%s\"", p->visibility_channel);
    }
    cJSON_Delete(root);
}

int rc_presence_on_raw(rc_presence *p, const char *channel, const char *payload, size_t len)
{
    if (!rc_presence__redis_mode(p) || !channel) return 0;
    if (strcmp(channel, p->visibility_channel) == 0) {
        visibility_note(p, payload, len);
        return 1;
    }
    if (strncmp(channel, p->status_prefix, p->status_prefix_len) != 0) return 0;
    const char *user = channel + p->status_prefix_len;
    cJSON *root = cJSON_ParseWithLength(payload, len);
    const cJSON *online = root ? cJSON_GetObjectItemCaseSensitive(root, "online") : NULL;
    const cJSON *ts = root ? cJSON_GetObjectItemCaseSensitive(root, "ts") : NULL;
    if (cJSON_IsBool(online)) {
        uint64_t t = cJSON_IsNumber(ts) && ts->valuedouble > 0 ? (uint64_t)ts->valuedouble : 0;
        rc_presence__status_deliver(p, user, cJSON_IsTrue(online), t);
    } else {
        rc_log_debug("presence_bad_status", "channel=\"%s\"", channel);
    }
    cJSON_Delete(root);
    return 1;
}

/* ---- connections and members ----------------------------------------------------------------- */

static pr_conn *conn_find(const rc_presence *p, const char *sid)
{
    rc_hmap_node *n = sid ? rc_hmap_find(&p->conns, sid, strlen(sid)) : NULL;
    return n ? RC_CONTAINER_OF(n, pr_conn, node) : NULL;
}

static pr_member *member_find(pr_conn *c, const char *ns, const char *room, pr_member ***link)
{
    for (pr_member **m = &c->members; *m; m = &(*m)->next) {
        if (strcmp((*m)->key, ns) == 0 && strcmp((*m)->room, room) == 0) {
            if (link) *link = m;
            return *m;
        }
    }
    return NULL;
}

int rc_presence_connect(rc_presence *p, const char *user, const char *sid)
{
    if (!name_ok(user) || !name_ok(sid)) return RC_PRESENCE_EINVAL;
    if (p->draining || conn_find(p, sid)) return RC_PRESENCE_ESTATE;
    p->ops[OP_CONNECT]++;
    pr_user *u = rc_presence__user_find(p, user);
    if (!u) {
        size_t ul = strlen(user);
        u = rc_calloc(1, sizeof(*u) + ul + 1);
        memcpy(u->id, user, ul + 1);
        rc_hmap_insert(&p->users, &u->node, u->id, ul);
    }
    size_t sl = strlen(sid);
    pr_conn *c = rc_calloc(1, sizeof(*c) + sl + 1);
    memcpy(c->sid, sid, sl + 1);
    c->user = u;
    u->nconns++;
    rc_hmap_insert(&p->conns, &c->node, c->sid, sl);

    if (!rc_presence__redis_mode(p)) {
        if (u->nconns == 1 && !pr_local__invisible(&p->local, user))
            rc_presence__defer_status(p, user, 1);
    } else if (p->phase == PH_LIVE) {
        const char *e[3] = {rc_presence__conn_kind(u), c->sid, u->id};
        rc_presence__send_join(p, 3, e);
    }
    return RC_PRESENCE_OK;
}

void rc_presence_disconnect(rc_presence *p, const char *sid)
{
    pr_conn *c = conn_find(p, sid);
    if (!c) return;
    pr_user *u = c->user;
    p->ops[OP_DISCONNECT]++;
    rc_hmap_remove(&p->conns, &c->node);

    if (rc_presence__redis_mode(p)) {
        size_t n = 3, k = 0;
        for (pr_member *m = c->members; m; m = m->next) n += 5;
        const char **e = rc_malloc(n * sizeof(*e));
        for (pr_member *m = c->members; m; m = m->next) {
            e[k++] = "m";
            e[k++] = c->sid;
            e[k++] = u->id;
            e[k++] = m->key;
            e[k++] = m->room;
        }
        e[k++] = "c";
        e[k++] = c->sid;
        e[k++] = u->id;
        pr_req *r = rc_presence__req_new(p, REQ_LEAVE, n, e);
        rc_free(e);
        rc_presence__removal_dispatch(p, r);
    }
    while (c->members) {
        pr_member *m = c->members;
        c->members = m->next;
        if (!rc_presence__redis_mode(p)) rc_presence__local_count(p, m->key, m->room, u->id, -1);
        rc_free(m);
    }
    if (--u->nconns == 0) {
        if (!rc_presence__redis_mode(p) && !pr_local__invisible(&p->local, u->id))
            rc_presence__defer_status(p, u->id, 0);
        rc_hmap_remove(&p->users, &u->node);
        rc_free(u);
    }
    rc_free(c);
}

int rc_presence_member_add(rc_presence *p, const char *sid, const char *ns, const char *room)
{
    if (!name_ok(sid) || !ns_ok(ns) || !name_ok(room)) return RC_PRESENCE_EINVAL;
    pr_conn *c = conn_find(p, sid);
    if (p->draining || !c) return RC_PRESENCE_ESTATE;
    if (member_find(c, ns, room, NULL)) return RC_PRESENCE_OK;
    p->ops[OP_MEMBER_ADD]++;
    size_t a = strlen(ns), b = strlen(room);
    pr_member *m = rc_calloc(1, sizeof(*m) + a + 1 + b + 1);
    memcpy(m->key, ns, a + 1);
    memcpy(m->key + a + 1, room, b + 1);
    m->room = m->key + a + 1;
    m->next = c->members;
    c->members = m;
    if (!rc_presence__redis_mode(p)) {
        rc_presence__local_count(p, ns, room, c->user->id, 1);
    } else if (p->phase == PH_LIVE) {
        const char *e[5] = {"m", c->sid, c->user->id, m->key, m->room};
        rc_presence__send_join(p, 5, e);
    }
    return RC_PRESENCE_OK;
}

void rc_presence_member_remove(rc_presence *p, const char *sid, const char *ns, const char *room)
{
    pr_conn *c = conn_find(p, sid);
    pr_member **link = NULL;
    pr_member *m = c && ns && room ? member_find(c, ns, room, &link) : NULL;
    if (!m) return;
    p->ops[OP_MEMBER_REMOVE]++;
    *link = m->next;
    if (!rc_presence__redis_mode(p)) {
        rc_presence__local_count(p, ns, room, c->user->id, -1);
    } else {
        const char *e[5] = {"m", c->sid, c->user->id, m->key, m->room};
        rc_presence__removal_dispatch(p, rc_presence__req_new(p, REQ_LEAVE, 5, e));
    }
    rc_free(m);
}

int rc_presence_members(rc_presence *p, const char *ns, const char *room, uint64_t tag)
{
    if (!ns_ok(ns) || !name_ok(room)) return RC_PRESENCE_EINVAL;
    const char *s[2] = {ns, room};
    p->ops[OP_MEMBERS]++;
    int kind = rc_presence__redis_mode(p) ? REQ_MEMBERS : EV_MEMBERS;
    pr_req *r = rc_presence__req_new(p, kind, 2, s);
    r->tag = tag;
    if (rc_presence__redis_mode(p)) {
        if (rc_presence__send_members(p, r) == 0) return RC_PRESENCE_OK;
        r->kind = EV_MEMBERS;
        r->err = RC_PRESENCE_EDOWN;
    }
    rc_presence__defer(p, r);
    return RC_PRESENCE_OK;
}

int rc_presence_query(rc_presence *p, const char *const *users, size_t n, uint64_t tag)
{
    if (n > RC_PRESENCE_QUERY_MAX || (n && !users)) return RC_PRESENCE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!users[i] || strlen(users[i]) > RC_PRESENCE_NAME_MAX) return RC_PRESENCE_EINVAL;
    p->ops[OP_QUERY]++;
    pr_req *r = rc_presence__req_new(p, EV_QUERY, n, users);
    r->tag = tag;
    if (rc_presence__redis_mode(p) && n) {
        r->kind = REQ_QUERY;
        if (rc_presence__send_query(p, r) == 0) return RC_PRESENCE_OK;
        r->kind = EV_QUERY;
        r->err = RC_PRESENCE_EDOWN;
    }
    rc_presence__defer(p, r);
    return RC_PRESENCE_OK;
}

int rc_presence_set_visible(rc_presence *p, const char *user, int visible)
{
    if (!name_ok(user)) return RC_PRESENCE_EINVAL;
    p->ops[OP_VISIBILITY]++;
    if (!rc_presence__redis_mode(p)) {
        if (pr_local__set_invisible(&p->local, user, !visible) && rc_presence__user_find(p, user))
            rc_presence__defer_status(p, user, visible ? 1 : 0);
        return RC_PRESENCE_OK;
    }
    if (rc_presence__send_visible(p, user, visible) != 0) return RC_PRESENCE_EDOWN;
    /* Remembered now, so that a JOIN sent after this call carries it; the script's notes, in
     * Redis order, settle any race with another node's call. */
    pr_user *u = rc_presence__user_find(p, user);
    if (u) u->invisible = !visible;
    return RC_PRESENCE_OK;
}

void rc_presence_drain(rc_presence *p)
{
    if (p->draining) return;
    p->draining = 1;
    if (p->tick_ev) event_del(p->tick_ev);
    rc_presence__removals_clear(p);
    pr_req *r = rc_presence__req_new(p, EV_DRAINED, 0, NULL);
    if (!rc_presence__redis_mode(p)) {
        p->drained = 1;
    } else if (p->phase != PH_OFFLINE && rc_presence__send_sweep(p, REQ_DRAIN) == 0) {
        rc_free(r);
        return;
    } else {
        r->err = RC_PRESENCE_EDOWN;
    }
    rc_presence__defer(p, r);
}

/* ---- lifecycle, metrics ---------------------------------------------------------------------- */

rc_presence *rc_presence_new(struct event_base *base, rc_backplane *bp, const char *node_id,
                             const rc_presence_config *cfg, const rc_presence_callbacks *cb)
{
    rc_presence *p = rc_calloc(1, sizeof(*p));
    p->base = base;
    p->bp = bp;
    if (cb) p->cb = *cb;
    if (cfg) p->cfg = *cfg;
    else rc_presence_config_default(&p->cfg);
    if (p->cfg.heartbeat_ms <= 0) p->cfg.heartbeat_ms = 5000;
    if (p->cfg.ttl_ms < 2 * p->cfg.heartbeat_ms) p->cfg.ttl_ms = 2 * p->cfg.heartbeat_ms;
    p->node_id = rc_strdup(node_id && node_id[0] ? node_id : "node");
    p->on_reply = rc_presence__on_reply;
    p->defer_ev = event_new(base, -1, 0, rc_presence__on_defer_ev, p);
    if (!rc_redis_available(bp)) {
        p->phase = PH_EMBEDDED;
        return p;
    }
    const char *prefix = rc_redis_prefix(bp);
    p->phase = PH_OFFLINE;
    p->need_reset = 1; /* first start: clear what an earlier process with our id left behind */
    p->prefix = rc_strdup(prefix);
    p->status_prefix = rc_key_new(prefix, RC_KEY_STATUS, "", NULL);
    p->status_prefix_len = strlen(p->status_prefix);
    p->watches.bp = bp;
    p->watches.status_prefix = p->status_prefix;
    p->k_nodes = rc_key_new(prefix, RC_KEY_NODES, NULL, NULL);
    p->k_sweeping = rc_key_new(prefix, RC_KEY_SWEEPING, NULL, NULL);
    p->k_invisible = rc_key_new(prefix, RC_KEY_INVISIBLE, NULL, NULL);
    p->k_conns = rc_key_new(prefix, RC_KEY_NODE_CONNS, p->node_id, NULL);
    p->k_members = rc_key_new(prefix, RC_KEY_NODE_MEMBERS, p->node_id, NULL);
    p->visibility_channel = rc_key_new(prefix, RC_KEY_VISIBILITY, p->node_id, NULL);
    rc_redis_channel_open(bp, p->visibility_channel);
    rc_presence__tick_start(p);
    return p;
}

/* Frees every node of a map whose nodes are the first member of a malloc'd struct. */
static void map_free_all(rc_hmap *m)
{
    rc_hmap_node *n = rc_hmap_first(m);
    while (n) {
        rc_hmap_node *next = rc_hmap_next(m, n);
        rc_free(n); /* rc_hmap_node is the first member of every struct stored here */
        n = next;
    }
    rc_hmap_dispose(m);
}

void rc_presence_free(rc_presence *p)
{
    if (!p) return;
    while (p->inflight) { /* answers to these only free them */
        pr_req *r = p->inflight;
        rc_presence__inflight_unlink(p, r);
        r->p = NULL;
    }
    while (p->deferred) {
        pr_req *r = p->deferred;
        p->deferred = r->next;
        rc_free(r);
    }
    rc_presence__removals_clear(p);
    for (rc_hmap_node *n = rc_hmap_first(&p->conns); n; n = rc_hmap_next(&p->conns, n)) {
        pr_conn *c = RC_CONTAINER_OF(n, pr_conn, node);
        while (c->members) {
            pr_member *m = c->members;
            c->members = m->next;
            rc_free(m);
        }
    }
    if (p->visibility_channel) rc_redis_channel_close(p->bp, p->visibility_channel);
    map_free_all(&p->conns);
    map_free_all(&p->users);
    pr_watches__dispose(&p->watches);
    pr_local__dispose(&p->local);
    if (p->tick_ev) event_free(p->tick_ev);
    event_free(p->defer_ev);
    rc_free(p->argv);
    rc_free(p->sbuf);
    rc_free(p->node_id);
    rc_free(p->prefix);
    rc_free(p->status_prefix);
    rc_free(p->visibility_channel);
    rc_free(p->k_nodes);
    rc_free(p->k_sweeping);
    rc_free(p->k_invisible);
    rc_free(p->k_conns);
    rc_free(p->k_members);
    rc_free(p);
}

void rc_presence_write_metrics(const rc_presence *p, struct evbuffer *out)
{
    rc_metrics_put_scalar(out, "roomcast_presence_online_users", "gauge",
               "Users with at least one connection on this node.", p->users.count);
    rc_metrics_put_scalar(out, "roomcast_presence_connections", "gauge",
               "Connections this node holds in presence.", p->conns.count);
    rc_metrics_put_scalar(out, "roomcast_presence_watched_users", "gauge",
               "Users whose status changes this node's sockets watch.", p->watches.watched.count);
    rc_metrics_put_by_label(out, "roomcast_presence_operations_total",
                            "Presence operations by kind.", "op", op_names, p->ops, 0, OP__COUNT);
    rc_metrics_put_scalar(out, "roomcast_presence_sweeps_total", "counter",
               "Sweeps of dead nodes' entries run by this node (SWEEP calls).", p->sweeps);
    rc_metrics_put_scalar(out, "roomcast_presence_swept_nodes_total", "counter",
               "Dead nodes whose entries this node's sweeps finished removing.", p->swept_nodes);
    rc_metrics_put_scalar(out, "roomcast_presence_swept_connections_total", "counter",
               "Connections of dead nodes removed by this node's sweeps.", p->swept_conns);
    rc_metrics_put_scalar(out, "roomcast_presence_swept_offline_total", "counter",
               "Users reported offline by this node's sweeps.", p->swept_offline);
    rc_metrics_put_scalar(out, "roomcast_presence_removals_queued", "gauge",
               "Removals waiting for Redis (connections closed while it was unreachable).",
               p->nremovals);
    rc_metrics_put_scalar(out, "roomcast_presence_errors_total", "counter",
               "Presence calls to Redis refused, failed or answered with an error.", p->errors);
}
