/*
 * presence.c: online status and tracked-room members, across nodes: the API, the local tables
 * and the Redis mode's calls, replies and phases. Contract: include/roomcast/presence.h. Keys,
 * scripts and channels: docs/redis.md ("Presence"). Beside it: presence_lua.h (the scripts'
 * text), presence_watch.c (who watches whom) and presence_local.c (the embedded store).
 *
 * What it is for: answering "is this user online?" and "who is in this meeting?" the same way
 * on every node, with no scatter-gather over pub/sub (every node reads the same keys in Redis), and never leaving a ghost
 * behind a node that died: every entry belongs to a node, every node heartbeats, and any
 * node removes the entries of a node whose heartbeat is older than the TTL.
 *
 * Local tables (both modes; the node's own truth, which Redis mirrors):
 *   conns     sid -> pr_conn {user, tracked memberships}     (re-registered after data loss)
 *   users     user -> pr_user {nconns, invisible}             (online users seen by this node)
 *   watches   watcher id <-> user, the last state each watched user's watchers were told, and
 *             (Redis mode) one P:status:<user> subscription per watched user (presence_watch.c)
 * Embedded mode adds what Redis holds otherwise (p->local, presence_local.c): tracked rooms
 * with per-user connection counts, and the invisible set.
 *
 * Redis mode, per node (P = prefix, N = node id), all changed only by the scripts below:
 *   P:presence:<user>   set of "N:<sid>"             online = non-empty (DESIGN.md section 4)
 *   P:node:N:conns      hash sid -> user             this node's connections
 *   P:node:N:members    hash "<sid>\0<ns>\0<room>" -> user   its tracked memberships
 *   P:members:<ns>:<room>  hash user -> count        members of a tracked room, across nodes
 *   P:nodes             zset N -> last heartbeat (Redis TIME, ms: node clocks never matter)
 *   P:sweeping          set of nodes whose entries are being removed
 *   P:invisible         set of users who appear offline
 *   P:visibility:N      channel: notes to N on its local users' visibility (subscribed for life)
 *
 * Scripts (presence_lua.h; each one atomic, so every transition is decided once, inside Redis):
 *   JOIN       entries 'c' sid user | 'i' sid user | 'm' sid user ns room: adds them; publishes
 *              "online" for a user whose set went 0 -> 1 (unless invisible; 'i', a user N holds
 *              invisible, is put back in P:invisible first); tells N on P:visibility:N when it
 *              holds a user's visibility wrong; returns the members that joined as a whole.
 *              Refuses everything ({-1}) if N is not in P:nodes: the node was swept.
 *   LEAVE      the same entries, removed; "offline" when a set goes 1 -> 0; members that left.
 *   HEARTBEAT  ZADD P:nodes now N; 1 if N was missing (swept, or Redis lost its data); -1 while
 *              N is in P:sweeping (its old entries are still being removed: not yet).
 *   SWEEP      moves nodes older than the TTL (or one named node: our own, at first start and at
 *              drain) from P:nodes to P:sweeping, then removes up to SWEEP_BUDGET entries of
 *              the nodes in P:sweeping, publishing "offline" for each user left empty; a node
 *              leaves P:sweeping when both of its hashes are empty. Returns whether more is left
 *              (the caller sweeps again at once), counts, and the members that left. Two nodes
 *              sweeping at once serialize in Redis and never remove one entry twice.
 *   QUERY      n users -> [Redis time, n booleans] (invisible users are false), one EVALSHA.
 *   VISIBLE    P:invisible add/remove, publishing the change if the user is connected, and a
 *              note to the caller and to every node with a connection of the user.
 *   MEMBERS    a tracked room's users (at most RC_PRESENCE_MEMBERS_MAX) and their total.
 *
 * Phases of a Redis-mode instance (p->phase):
 *   OFFLINE --on_state(1)--> RESETTING (first start, or we were swept: SWEEP our own node id
 *     until nothing is left) --> LIVE (HEARTBEAT, queued removals, JOIN batches of every local
 *     connection and membership, all pipelined at once; after an outage, the watched users'
 *     status is read back one TTL later, once other nodes have re-registered too)
 *   LIVE --on_state(0)--> OFFLINE; LIVE --HEARTBEAT -1 or JOIN -1--> RESETTING.
 *   Outside LIVE, calls change only the local tables (re-registration carries them); removals
 *   (disconnect, member_remove) are queued in p->removals and sent when LIVE, and put back there
 *   when their reply is lost, so a connection that closed during an outage cannot stay a ghost.
 *   The heartbeat timer (heartbeat_ms) sends HEARTBEAT + queued removals + one SWEEP while LIVE.
 *
 * Invisibility across a Redis restart that lost its data: P:invisible is gone with the presence
 * sets, so the nodes keep what they need to restore it. pr_user.invisible says a local user is
 * in P:invisible as far as this node knows: set by this node's own set_visible, and by the
 * notes on P:visibility:N, which Redis sends in the order its scripts ran (VISIBLE to every node
 * holding a connection of the user, JOIN to a node that sent the opposite), so the last one
 * wins everywhere. It goes with the pr_user (the last local connection). Re-registration sends
 * such a user's connections as 'i', and JOIN restores P:invisible before deciding on "online".
 *
 * Lifetimes: every Redis call carries a pr_req (kind, copied strings, tag), listed in
 * p->inflight; rc_presence_free orphans them (req->p = NULL), and a reply to an orphan only
 * frees it (the backplane answers every call, with NULL at the latest when it is freed).
 * Callbacks to the node always run from the loop: answers from Redis replies, everything else
 * from p->defer_ev (the embedded mode's events, refusals while Redis is down).
 *
 * What it does not do: decide which rooms are tracked or what the events are called (rules and
 * the node do), deliver to sockets (the node does, with the watcher ids it gets), damp
 * online/offline flapping of quick reconnects, or work on Redis Cluster (scripts build the
 * per-user keys themselves).
 */
#include "roomcast/presence.h"

#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/hmap.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"

#include "presence_local.h"
#include "presence_lua.h"
#include "presence_watch.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    JOIN_BATCH_ARGS = 1500,    /* arguments per re-registration JOIN call (~300-500 entries) */
    SWEEP_BUDGET = 1000,       /* entries one SWEEP call removes at most (bounds its run time) */
    SWEEP_NODES = 100,         /* dead nodes one SWEEP call takes on at most */
    MAX_REMOVALS = 100000      /* queued removals; beyond, the node resets itself on reconnect */
};

enum pr_phase { PH_EMBEDDED = 0, PH_OFFLINE, PH_RESETTING, PH_LIVE };

/* Request and deferred-event kinds (pr_req.kind). */
enum pr_kind {
    REQ_JOIN = 0, REQ_LEAVE, REQ_HEARTBEAT, REQ_SWEEP, REQ_RESET, REQ_DRAIN, REQ_QUERY,
    REQ_RESYNC, REQ_MEMBERS, REQ_VISIBLE,
    EV_STATUS, EV_MEMBER, EV_QUERY, EV_MEMBERS, EV_DRAINED
};

enum pr_op {
    OP_CONNECT = 0, OP_DISCONNECT, OP_MEMBER_ADD, OP_MEMBER_REMOVE, OP_MEMBERS, OP_QUERY,
    OP_WATCH, OP_UNWATCH, OP_VISIBILITY, OP_HEARTBEAT, OP_SWEEP, OP_REREGISTER, OP__COUNT
};
static const char *const op_names[OP__COUNT] = {
    "connect", "disconnect", "member_add", "member_remove", "members", "query",
    "watch", "unwatch", "visibility", "heartbeat", "sweep", "reregister",
};

/* ---- types ---------------------------------------------------------------------------------- */

/* A Redis call in flight, a removal waiting to be sent, or an event waiting for the loop. The
 * strings are copies packed in the same allocation (s[i] NUL-terminated). */
typedef struct pr_req {
    struct pr_req *next, *prev;   /* p->inflight (doubly), p->deferred / p->removals (next only) */
    rc_presence *p;               /* NULL once rc_presence_free orphaned it */
    int kind;                     /* enum pr_kind */
    int err, flag;                /* EV_*: err; EV_STATUS online / EV_MEMBER joined / heartbeat: registering */
    unsigned gen;                 /* p->gen when sent: replies from an older connection change no phase */
    uint64_t tag, ts;
    size_t n;
    const char **s;
} pr_req;

typedef struct pr_member {
    struct pr_member *next;       /* in pr_conn.members */
    const char *room;             /* into key, after the namespace */
    char key[];                   /* "<ns>\0<room>\0" */
} pr_member;

typedef struct pr_user {
    rc_hmap_node node;            /* p->users */
    size_t nconns;
    int invisible;                /* Redis mode: in P:invisible as far as this node knows (its own
                                     set_visible, P:visibility:N notes); re-registration restores it */
    char id[];
} pr_user;

typedef struct pr_conn {
    rc_hmap_node node;            /* p->conns, key sid */
    pr_user *user;
    pr_member *members;
    char sid[];
} pr_conn;

struct rc_presence {
    struct event_base *base;
    rc_backplane *bp;
    rc_presence_callbacks cb;
    rc_presence_config cfg;
    int phase;                    /* enum pr_phase */
    unsigned gen;                 /* bumped at every on_state(0) */
    int need_reset;               /* RESETTING before the next registration */
    int reset_inflight, sweep_inflight, drain_inflight;
    int rereg_needed;             /* a JOIN failed with an error reply: JOIN batches at next tick */
    int resync_pending;           /* re-read watched users' status once resync_at_ms passes */
    uint64_t resync_at_ms;
    int registered_once;          /* a later registration follows an outage: resync then */
    int draining, drained;

    char *node_id, *prefix, *status_prefix;
    size_t status_prefix_len;
    char *visibility_channel;     /* P:visibility:N: notes on local users' visibility */
    char *k_nodes, *k_sweeping, *k_invisible, *k_conns, *k_members;

    rc_hmap conns, users;
    pr_watches watches;           /* watchers and their P:status subscriptions (presence_watch.c) */
    pr_local local;               /* embedded mode: rooms and the invisible set (Redis's keys) */

    pr_req *inflight;
    pr_req *deferred, *deferred_tail;
    pr_req *removals, *removals_tail;
    size_t nremovals;
    struct event *defer_ev, *tick_ev;

    /* scratch for building calls */
    const char **argv;
    size_t argv_cap;
    char *sbuf;
    size_t sbuf_cap;

    /* metrics */
    uint64_t ops[OP__COUNT];
    uint64_t sweeps, swept_nodes, swept_conns, swept_offline, errors;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static int name_ok(const char *s)
{
    return s && s[0] && strlen(s) <= RC_PRESENCE_NAME_MAX;
}

/* A namespace starts with '/' and never contains ':' (docs/redis.md). */
static int ns_ok(const char *ns)
{
    return name_ok(ns) && ns[0] == '/' && !strchr(ns, ':');
}

static int redis_mode(const rc_presence *p)
{
    return p->phase != PH_EMBEDDED;
}

static pr_user *user_find(const rc_presence *p, const char *id)
{
    rc_hmap_node *n = rc_hmap_find(&p->users, id, strlen(id));
    return n ? RC_CONTAINER_OF(n, pr_user, node) : NULL;
}

static const char **argv_reserve(rc_presence *p, size_t n)
{
    if (n > p->argv_cap) {
        size_t cap = p->argv_cap ? p->argv_cap : 64;
        while (cap < n) cap *= 2;
        p->argv = rc_realloc(p->argv, cap * sizeof(*p->argv));
        p->argv_cap = cap;
    }
    return p->argv;
}

static pr_req *req_new(rc_presence *p, int kind, size_t n, const char *const *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += strlen(s[i]) + 1;
    pr_req *r = rc_calloc(1, sizeof(*r) + n * sizeof(char *) + bytes);
    r->p = p;
    r->kind = kind;
    r->gen = p->gen;
    r->n = n;
    r->s = (const char **)(void *)(r + 1);
    char *d = (char *)(r->s + n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(s[i]);
        memcpy(d, s[i], l + 1);
        r->s[i] = d;
        d += l + 1;
    }
    return r;
}

static void list_push(pr_req **head, pr_req **tail, pr_req *r)
{
    r->next = NULL;
    if (*tail) (*tail)->next = r;
    else *head = r;
    *tail = r;
}

static void inflight_link(rc_presence *p, pr_req *r)
{
    r->prev = NULL;
    r->next = p->inflight;
    if (p->inflight) p->inflight->prev = r;
    p->inflight = r;
}

static void inflight_unlink(rc_presence *p, pr_req *r)
{
    if (r->prev) r->prev->next = r->next;
    else p->inflight = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Queues an event for the loop (STYLE 15). */
static void defer(rc_presence *p, pr_req *r)
{
    list_push(&p->deferred, &p->deferred_tail, r);
    event_active(p->defer_ev, EV_TIMEOUT, 0);
}

static void defer_status(rc_presence *p, const char *user, int online)
{
    pr_req *r = req_new(p, EV_STATUS, 1, &user);
    r->flag = online;
    r->ts = rc_now_wall_ms();
    defer(p, r);
}

static void defer_member(rc_presence *p, const char *ns, const char *room, const char *user,
                         int joined)
{
    const char *s[3] = {ns, room, user};
    pr_req *r = req_new(p, EV_MEMBER, 3, s);
    r->flag = joined;
    defer(p, r);
}

/* ---- watches -------------------------------------------------------------------------------- */

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

/* A status for user, as of time ts (Redis TIME in Redis mode; 0: unknown), handed to on_status
 * when it is news for this node's watchers (pr_watches__news). */
static void status_deliver(rc_presence *p, const char *user, int online, uint64_t ts)
{
    size_t n;
    const uint64_t *ids = pr_watches__news(&p->watches, user, online, ts, redis_mode(p), &n);
    /* the callback may unwatch: ids stay valid (scratch of the index) */
    if (ids && p->cb.on_status) p->cb.on_status(p->cb.arg, user, online, ts, ids, n);
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
        pr_user *u = user_find(p, user->valuestring);
        if (u) u->invisible = cJSON_IsTrue(invisible);
    } else {
        rc_log_debug("presence_bad_note", "channel=\"%s\"", p->visibility_channel);
    }
    cJSON_Delete(root);
}

int rc_presence_on_raw(rc_presence *p, const char *channel, const char *payload, size_t len)
{
    if (!redis_mode(p) || !channel) return 0;
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
        status_deliver(p, user, cJSON_IsTrue(online), t);
    } else {
        rc_log_debug("presence_bad_status", "channel=\"%s\"", channel);
    }
    cJSON_Delete(root);
    return 1;
}

/* ---- Redis calls ------------------------------------------------------------------------------ */

static void pr_on_reply(void *arg, const redisReply *reply);

/* Sends a script call carrying r (listed in p->inflight until answered). -1 when refused
 * (Redis down, backlog full): r is the caller's again. */
static int send_eval(rc_presence *p, rc_redis_script *sc, pr_req *r, int nkeys, int argc,
                     const char **argv)
{
    r->gen = p->gen;
    inflight_link(p, r);
    if (rc_redis_eval(p->bp, sc, pr_on_reply, r, nkeys, argc, argv, NULL) == 0) return 0;
    inflight_unlink(p, r);
    p->errors++;
    return -1;
}

/* JOIN or LEAVE with entries: KEYS first, then P, N, entries. */
static int send_entries(rc_presence *p, pr_req *r, size_t n, const char *const *entries)
{
    int join = r->kind == REQ_JOIN;
    const char **argv = argv_reserve(p, n + 6);
    int k = 0;
    if (join) argv[k++] = p->k_nodes;
    argv[k++] = p->k_conns;
    argv[k++] = p->k_members;
    argv[k++] = p->k_invisible;
    int nkeys = k;
    argv[k++] = p->prefix;
    argv[k++] = p->node_id;
    for (size_t i = 0; i < n; i++) argv[k++] = entries[i];
    return send_eval(p, join ? &lua_join : &lua_leave, r, nkeys, k, argv);
}

static void send_join(rc_presence *p, size_t n, const char *const *entries)
{
    pr_req *r = req_new(p, REQ_JOIN, 0, NULL);
    if (send_entries(p, r, n, entries) != 0) {
        rc_free(r);
        p->rereg_needed = 1; /* the next heartbeat tick re-registers everything */
    }
}

/* A connection's JOIN entry kind: 'i' when this node holds its user invisible, so that a JOIN
 * that finds the user gone from Redis (a restart that lost the data) puts them back in
 * P:invisible before deciding whether to publish "online". */
static const char *conn_kind(const pr_user *u)
{
    return u->invisible ? "i" : "c";
}

/* Re-registration batch under construction. */
typedef struct pr_batch {
    const char *e[JOIN_BATCH_ARGS + 8];
    size_t n;
    int failed;
} pr_batch;

static void batch_flush(rc_presence *p, pr_batch *b)
{
    if (!b->n || b->failed) {
        b->n = 0; /* after a failure the rest is dropped: rereg_needed sends it all again */
        return;
    }
    pr_req *r = req_new(p, REQ_JOIN, 0, NULL);
    if (send_entries(p, r, b->n, b->e) != 0) {
        rc_free(r);
        b->failed = 1;
        p->rereg_needed = 1; /* the next heartbeat tick tries again */
    }
    b->n = 0;
}

/* Every local connection and membership, in JOIN calls of about JOIN_BATCH_ARGS arguments,
 * pipelined in one go. Idempotent: entries already there change nothing and publish nothing. */
static void send_join_batches(rc_presence *p)
{
    pr_batch *b = rc_malloc(sizeof(*b));
    b->n = 0;
    b->failed = 0;
    p->ops[OP_REREGISTER]++;
    p->rereg_needed = 0;
    for (rc_hmap_node *it = rc_hmap_first(&p->conns); it && !b->failed;
         it = rc_hmap_next(&p->conns, it)) {
        pr_conn *c = RC_CONTAINER_OF(it, pr_conn, node);
        if (b->n + 3 > JOIN_BATCH_ARGS) batch_flush(p, b);
        b->e[b->n++] = conn_kind(c->user);
        b->e[b->n++] = c->sid;
        b->e[b->n++] = c->user->id;
        for (pr_member *m = c->members; m; m = m->next) {
            if (b->n + 5 > JOIN_BATCH_ARGS) batch_flush(p, b);
            b->e[b->n++] = "m";
            b->e[b->n++] = c->sid;
            b->e[b->n++] = c->user->id;
            b->e[b->n++] = m->key;
            b->e[b->n++] = m->room;
        }
    }
    batch_flush(p, b);
    rc_free(b);
}

static int send_leave(rc_presence *p, pr_req *r)
{
    return send_entries(p, r, r->n, r->s);
}

static void removals_clear(rc_presence *p)
{
    while (p->removals) {
        pr_req *r = p->removals;
        p->removals = r->next;
        rc_free(r);
    }
    p->removals_tail = NULL;
    p->nremovals = 0;
}

static void removal_queue(rc_presence *p, pr_req *r)
{
    if (p->nremovals >= MAX_REMOVALS) {
        /* An outage this long: forget them and remove all of our entries at reconnect instead. */
        rc_log_warn("presence_removals_overflow", "queued=%zu", p->nremovals);
        removals_clear(p);
        p->need_reset = 1;
        rc_free(r);
        return;
    }
    list_push(&p->removals, &p->removals_tail, r);
    p->nremovals++;
}

/* Sends the queued removals (LIVE only); one that cannot be sent stays first in line. */
static void removals_send(rc_presence *p)
{
    while (p->removals && p->phase == PH_LIVE) {
        pr_req *r = p->removals;
        p->removals = r->next;
        if (!p->removals) p->removals_tail = NULL;
        p->nremovals--;
        if (send_leave(p, r) != 0) {
            r->next = p->removals;
            p->removals = r;
            if (!p->removals_tail) p->removals_tail = r;
            p->nremovals++;
            return;
        }
    }
}

/* A LEAVE for a connection or membership that is gone locally: sent now when LIVE, else queued
 * until it can be (the entry may still be in Redis: it must not stay there). */
static void removal_dispatch(rc_presence *p, pr_req *r)
{
    if (p->draining) { /* the drain sweep removes every entry of this node */
        rc_free(r);
        return;
    }
    if (p->phase == PH_LIVE && send_leave(p, r) == 0) return;
    removal_queue(p, r);
}

static void send_heartbeat(rc_presence *p, int registering)
{
    const char *argv[3] = {p->k_nodes, p->k_sweeping, p->node_id};
    pr_req *r = req_new(p, REQ_HEARTBEAT, 0, NULL);
    r->flag = registering;
    p->ops[OP_HEARTBEAT]++;
    if (send_eval(p, &lua_heartbeat, r, 2, 3, argv) != 0) rc_free(r);
}

/* SWEEP: kind REQ_SWEEP (dead nodes), REQ_RESET or REQ_DRAIN (this node's own entries). */
static int send_sweep(rc_presence *p, int kind)
{
    char ttl[24], budget[16], nodes[16];
    int dead = kind == REQ_SWEEP;
    snprintf(ttl, sizeof(ttl), "%d", p->cfg.ttl_ms);
    snprintf(budget, sizeof(budget), "%d", SWEEP_BUDGET);
    snprintf(nodes, sizeof(nodes), "%d", SWEEP_NODES);
    const char *argv[8] = {p->k_nodes, p->k_sweeping, p->k_invisible, p->prefix,
                           dead ? "dead" : "node", dead ? ttl : p->node_id, budget, nodes};
    pr_req *r = req_new(p, kind, 0, NULL);
    p->ops[OP_SWEEP]++;
    p->sweeps++;
    if (send_eval(p, &lua_sweep, r, 3, 8, argv) != 0) {
        rc_free(r);
        return -1;
    }
    if (kind == REQ_SWEEP) p->sweep_inflight = 1;
    else if (kind == REQ_RESET) p->reset_inflight = 1;
    else p->drain_inflight = 1;
    return 0;
}

/* QUERY for r's users (REQ_QUERY or REQ_RESYNC): KEYS P:invisible and P:presence:<user> each,
 * ARGV the users. The key strings are built in one scratch buffer. */
static int send_query(rc_presence *p, pr_req *r)
{
    size_t plen = strlen(p->prefix), bytes = 0;
    for (size_t i = 0; i < r->n; i++) bytes += plen + 10 + strlen(r->s[i]) + 1;
    if (bytes + 1 > p->sbuf_cap) {
        p->sbuf_cap = bytes + 256;
        p->sbuf = rc_realloc(p->sbuf, p->sbuf_cap);
    }
    const char **argv = argv_reserve(p, 2 * r->n + 1);
    char *d = p->sbuf;
    argv[0] = p->k_invisible;
    for (size_t i = 0; i < r->n; i++) {
        size_t ul = strlen(r->s[i]);
        argv[1 + i] = d;
        memcpy(d, p->prefix, plen);
        memcpy(d + plen, ":presence:", 10);
        memcpy(d + plen + 10, r->s[i], ul + 1);
        d += plen + 10 + ul + 1;
        argv[1 + r->n + i] = r->s[i];
    }
    return send_eval(p, &lua_query, r, (int)r->n + 1, (int)(2 * r->n + 1), argv);
}

/* Re-reads the status of every watched user, so that changes published while this node was
 * disconnected still reach on_status (anything already known is dropped by status_deliver). */
static void resync_watched(rc_presence *p)
{
    const char *batch[RC_PRESENCE_QUERY_MAX];
    size_t n = 0;
    const rc_hmap *watched = &p->watches.watched;
    for (rc_hmap_node *it = rc_hmap_first(watched); it; it = rc_hmap_next(watched, it)) {
        batch[n++] = it->key; /* the user id, NUL-terminated */
        if (n < RC_PRESENCE_QUERY_MAX && rc_hmap_next(watched, it)) continue;
        pr_req *r = req_new(p, REQ_RESYNC, n, batch);
        n = 0;
        if (send_query(p, r) != 0) {
            rc_free(r);
            return;
        }
    }
}

static void arm_tick(rc_presence *p, int ms);

/* LIVE: heartbeat (registers the node), queued removals, every local entry and a sweep, all
 * pipelined now; calls made from here on are sent at once, behind them. Watched statuses are
 * read back one TTL later, when nodes that reconnected at about the same time (after a Redis
 * restart) have registered again: earlier, their users would read as offline. */
static void pr_register(rc_presence *p)
{
    p->phase = PH_LIVE;
    send_heartbeat(p, 1);
    removals_send(p);
    send_join_batches(p);
    if (!p->sweep_inflight) send_sweep(p, REQ_SWEEP);
    if (p->registered_once && p->watches.watched.count) {
        /* Re-read only after a TTL: a node that reconnects later than this one has re-registered
         * by then (or is dead by the same rule the sweep uses), so no watcher hears a false
         * offline-then-online flap. */
        p->resync_pending = 1;
        p->resync_at_ms = rc_now_mono_ms() + p->cfg.ttl_ms;
    }
    p->registered_once = 1;
    arm_tick(p, p->cfg.heartbeat_ms);
}

/* RESETTING: remove whatever Redis holds under our node id, then register. */
static void pr_start_reset(rc_presence *p)
{
    p->phase = PH_RESETTING;
    p->need_reset = 1;
    if (!p->reset_inflight) send_sweep(p, REQ_RESET);
}

void rc_presence_on_state(rc_presence *p, int up)
{
    if (!redis_mode(p)) return;
    if (!up) {
        p->phase = PH_OFFLINE;
        p->gen++;
        p->reset_inflight = p->sweep_inflight = 0;
        return;
    }
    if (p->draining || p->phase != PH_OFFLINE) return;
    if (p->need_reset) pr_start_reset(p);
    else pr_register(p);
}

/* ---- replies ---------------------------------------------------------------------------------- */

static long long reply_int(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return atoll(e->str);
    return 0;
}

/* (ns, room, user) triples from element `from` on: members that joined or left as a whole. */
static void reply_members(rc_presence *p, const redisReply *r, size_t from, int joined)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = from; i + 2 < r->elements; i += 3) {
        const redisReply *ns = r->element[i], *room = r->element[i + 1], *user = r->element[i + 2];
        if (ns->type != REDIS_REPLY_STRING || room->type != REDIS_REPLY_STRING ||
            user->type != REDIS_REPLY_STRING)
            continue;
        if (p->cb.on_member) p->cb.on_member(p->cb.arg, ns->str, room->str, user->str, joined);
    }
}

static void on_sweep_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err, int current)
{
    if (current) {
        if (r->kind == REQ_SWEEP) p->sweep_inflight = 0;
        if (r->kind == REQ_RESET) p->reset_inflight = 0;
    }
    if (r->kind == REQ_DRAIN) p->drain_inflight = 0;
    if (err) {
        if (r->kind == REQ_DRAIN && p->cb.on_drained) p->cb.on_drained(p->cb.arg, err);
        return; /* a reset or sweep is tried again by the next tick or reconnect */
    }
    long long more = reply_int(reply, 0), nodes = reply_int(reply, 1), conns = reply_int(reply, 2),
              offline = reply_int(reply, 3);
    if (r->kind == REQ_SWEEP) {
        p->swept_nodes += (uint64_t)nodes;
        p->swept_conns += (uint64_t)conns;
        p->swept_offline += (uint64_t)offline;
    }
    if (nodes || conns)
        rc_log_info("presence_sweep", "mode=%s nodes=%lld connections=%lld offline=%lld more=%lld",
                    r->kind == REQ_SWEEP ? "dead" : r->kind == REQ_RESET ? "reset" : "drain", nodes,
                    conns, offline, more);
    reply_members(p, reply, 4, 0);

    switch (r->kind) {
    case REQ_SWEEP:
        if (more && current && p->phase == PH_LIVE && !p->draining) send_sweep(p, REQ_SWEEP);
        break;
    case REQ_RESET:
        if (!current || p->draining || p->phase != PH_RESETTING) break;
        if (more) {
            send_sweep(p, REQ_RESET);
            break;
        }
        p->need_reset = 0;
        removals_clear(p); /* what they would remove is gone */
        pr_register(p);
        break;
    case REQ_DRAIN:
        if (more && send_sweep(p, REQ_DRAIN) == 0) break;
        if (!more) p->drained = 1;
        if (p->cb.on_drained) p->cb.on_drained(p->cb.arg, more ? RC_PRESENCE_EDOWN : RC_PRESENCE_OK);
        break;
    }
}

static void on_query_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err)
{
    if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements != r->n + 1)) err = RC_PRESENCE_EFAIL;
    if (r->kind == REQ_RESYNC) {
        /* A change missed while disconnected reaches on_status. A user the watchers were never
         * told about (known -1) is reported too: their first answer may have come from a query,
         * and a repeat is harmless where a missed change is not. The node's own query answers
         * teach nothing here: the socket that asked is not necessarily a watcher. */
        uint64_t ts = err ? 0 : (uint64_t)reply_int(reply, 0);
        for (size_t i = 0; !err && i < r->n; i++)
            status_deliver(p, r->s[i], reply_int(reply, i + 1) == 1, ts);
        return;
    }
    if (!p->cb.on_query) return;
    if (err) {
        p->cb.on_query(p->cb.arg, r->tag, err, r->s, NULL, r->n);
        return;
    }
    unsigned char *online = rc_malloc(r->n ? r->n : 1);
    for (size_t i = 0; i < r->n; i++) online[i] = reply_int(reply, i + 1) == 1;
    p->cb.on_query(p->cb.arg, r->tag, 0, r->s, online, r->n);
    rc_free(online);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts, drops repeats and caps a member list, then answers. */
static void answer_members(rc_presence *p, pr_req *r, const char **users, size_t n, size_t total)
{
    size_t k = 0;
    qsort(users, n, sizeof(*users), cmp_str);
    for (size_t i = 0; i < n && k < RC_PRESENCE_MEMBERS_MAX; i++)
        if (!k || strcmp(users[k - 1], users[i]) != 0) users[k++] = users[i];
    if (p->cb.on_members) p->cb.on_members(p->cb.arg, r->tag, 0, r->s[0], r->s[1], users, k, total);
}

static void on_members_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err)
{
    if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) err = RC_PRESENCE_EFAIL;
    if (err) {
        if (p->cb.on_members) p->cb.on_members(p->cb.arg, r->tag, err, r->s[0], r->s[1], NULL, 0, 0);
        return;
    }
    size_t n = 0;
    const char **users = rc_malloc(reply->elements * sizeof(*users));
    for (size_t i = 1; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING) users[n++] = reply->element[i]->str;
    answer_members(p, r, users, n, (size_t)reply_int(reply, 0));
    rc_free(users);
}

static void pr_on_reply(void *arg, const redisReply *reply)
{
    pr_req *r = arg;
    rc_presence *p = r->p;
    if (!p) { /* orphaned by rc_presence_free */
        rc_free(r);
        return;
    }
    inflight_unlink(p, r);
    int current = r->gen == p->gen;
    int err = !reply ? RC_PRESENCE_EDOWN
            : reply->type == REDIS_REPLY_ERROR ? RC_PRESENCE_EFAIL : RC_PRESENCE_OK;
    if (err) {
        p->errors++;
        if (reply) rc_log_warn("presence_redis_error", "kind=%d error=\"%s\"", r->kind, reply->str);
    }

    switch (r->kind) {
    case REQ_JOIN:
        if (err == RC_PRESENCE_EFAIL) p->rereg_needed = 1; /* a NULL is healed by the reconnect */
        if (err) break;
        if (reply_int(reply, 0) < 0) { /* we were swept: not registered any more */
            if (current && p->phase == PH_LIVE && !p->draining) {
                rc_log_warn("presence_node_swept", "node=%s action=reset", p->node_id);
                pr_start_reset(p);
            }
            break;
        }
        reply_members(p, reply, 1, 1);
        break;
    case REQ_LEAVE:
        if (err) { /* sent again by the next tick or registration, never in a tight loop */
            if (p->draining) break;
            removal_queue(p, r);
            return;
        }
        reply_members(p, reply, 1, 0);
        break;
    case REQ_HEARTBEAT:
        if (err || !current || p->phase != PH_LIVE || p->draining) break;
        if (reply->type != REDIS_REPLY_INTEGER) break;
        if (reply->integer < 0) {
            rc_log_warn("presence_node_swept", "node=%s action=reset", p->node_id);
            pr_start_reset(p);
        } else if (reply->integer == 1 && !r->flag) {
            rc_log_warn("presence_node_missing", "node=%s action=reregister", p->node_id);
            send_join_batches(p);
        }
        break;
    case REQ_SWEEP:
    case REQ_RESET:
    case REQ_DRAIN:
        on_sweep_reply(p, r, reply, err, current);
        break;
    case REQ_QUERY:
    case REQ_RESYNC:
        on_query_reply(p, r, reply, err);
        break;
    case REQ_MEMBERS:
        on_members_reply(p, r, reply, err);
        break;
    case REQ_VISIBLE:
        break;
    }
    rc_free(r);
}

/* ---- deferred events, and the embedded store's answers ------------------------------------- */

/* Embedded mode: one connection of user enters (+1) or leaves (-1) the tracked room ns/room;
 * joined or left as a whole is announced, as the scripts' replies are in Redis mode. */
static void local_count(rc_presence *p, const char *ns, const char *room, const char *user,
                        int delta)
{
    int change = pr_local__count(&p->local, ns, room, user, delta);
    if (change) defer_member(p, ns, room, user, change > 0);
}

static void answer_query_local(rc_presence *p, pr_req *r)
{
    if (!p->cb.on_query) return;
    if (r->err) {
        p->cb.on_query(p->cb.arg, r->tag, r->err, r->s, NULL, r->n);
        return;
    }
    unsigned char *online = rc_malloc(r->n ? r->n : 1);
    for (size_t i = 0; i < r->n; i++)
        online[i] = !redis_mode(p) && user_find(p, r->s[i]) &&
                    !pr_local__invisible(&p->local, r->s[i]);
    p->cb.on_query(p->cb.arg, r->tag, 0, r->s, online, r->n);
    rc_free(online);
}

static void answer_members_local(rc_presence *p, pr_req *r)
{
    if (r->err) {
        if (p->cb.on_members) p->cb.on_members(p->cb.arg, r->tag, r->err, r->s[0], r->s[1], NULL, 0, 0);
        return;
    }
    size_t n;
    const char **users = pr_local__members(&p->local, r->s[0], r->s[1], &n);
    answer_members(p, r, users, n, n);
    rc_free(users);
}

/* Runs the events queued before this turn; those they queue run on the next one. */
static void on_defer_ev(evutil_socket_t fd, short what, void *arg)
{
    rc_presence *p = arg;
    pr_req *list = p->deferred;
    p->deferred = p->deferred_tail = NULL;
    while (list) {
        pr_req *r = list;
        list = r->next;
        switch (r->kind) {
        case EV_STATUS:
            status_deliver(p, r->s[0], r->flag, r->ts);
            break;
        case EV_MEMBER:
            if (p->cb.on_member) p->cb.on_member(p->cb.arg, r->s[0], r->s[1], r->s[2], r->flag);
            break;
        case EV_QUERY:
            answer_query_local(p, r);
            break;
        case EV_MEMBERS:
            answer_members_local(p, r);
            break;
        case EV_DRAINED:
            if (p->cb.on_drained) p->cb.on_drained(p->cb.arg, r->err);
            break;
        }
        rc_free(r);
    }
}

/* ---- connections and members ------------------------------------------------------------------ */

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
    pr_user *u = user_find(p, user);
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

    if (!redis_mode(p)) {
        if (u->nconns == 1 && !pr_local__invisible(&p->local, user)) defer_status(p, user, 1);
    } else if (p->phase == PH_LIVE) {
        const char *e[3] = {conn_kind(u), c->sid, u->id};
        send_join(p, 3, e);
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

    if (redis_mode(p)) {
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
        pr_req *r = req_new(p, REQ_LEAVE, n, e);
        rc_free(e);
        removal_dispatch(p, r);
    }
    while (c->members) {
        pr_member *m = c->members;
        c->members = m->next;
        if (!redis_mode(p)) local_count(p, m->key, m->room, u->id, -1);
        rc_free(m);
    }
    if (--u->nconns == 0) {
        if (!redis_mode(p) && !pr_local__invisible(&p->local, u->id)) defer_status(p, u->id, 0);
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
    if (!redis_mode(p)) {
        local_count(p, ns, room, c->user->id, 1);
    } else if (p->phase == PH_LIVE) {
        const char *e[5] = {"m", c->sid, c->user->id, m->key, m->room};
        send_join(p, 5, e);
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
    if (!redis_mode(p)) {
        local_count(p, ns, room, c->user->id, -1);
    } else {
        const char *e[5] = {"m", c->sid, c->user->id, m->key, m->room};
        removal_dispatch(p, req_new(p, REQ_LEAVE, 5, e));
    }
    rc_free(m);
}

int rc_presence_members(rc_presence *p, const char *ns, const char *room, uint64_t tag)
{
    if (!ns_ok(ns) || !name_ok(room)) return RC_PRESENCE_EINVAL;
    const char *s[2] = {ns, room};
    p->ops[OP_MEMBERS]++;
    pr_req *r = req_new(p, redis_mode(p) ? REQ_MEMBERS : EV_MEMBERS, 2, s);
    r->tag = tag;
    if (redis_mode(p)) {
        char max[16];
        snprintf(max, sizeof(max), "%d", RC_PRESENCE_MEMBERS_MAX);
        char *key = rc_malloc(strlen(p->prefix) + strlen(ns) + strlen(room) + 16);
        sprintf(key, "%s:members:%s:%s", p->prefix, ns, room);
        const char *argv[2] = {key, max};
        int rc = send_eval(p, &lua_members, r, 1, 2, argv);
        rc_free(key);
        if (rc == 0) return RC_PRESENCE_OK;
        r->kind = EV_MEMBERS;
        r->err = RC_PRESENCE_EDOWN;
    }
    defer(p, r);
    return RC_PRESENCE_OK;
}

int rc_presence_query(rc_presence *p, const char *const *users, size_t n, uint64_t tag)
{
    if (n > RC_PRESENCE_QUERY_MAX || (n && !users)) return RC_PRESENCE_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!users[i] || strlen(users[i]) > RC_PRESENCE_NAME_MAX) return RC_PRESENCE_EINVAL;
    p->ops[OP_QUERY]++;
    pr_req *r = req_new(p, EV_QUERY, n, users);
    r->tag = tag;
    if (redis_mode(p) && n) {
        r->kind = REQ_QUERY;
        if (send_query(p, r) == 0) return RC_PRESENCE_OK;
        r->kind = EV_QUERY;
        r->err = RC_PRESENCE_EDOWN;
    }
    defer(p, r);
    return RC_PRESENCE_OK;
}

int rc_presence_set_visible(rc_presence *p, const char *user, int visible)
{
    if (!name_ok(user)) return RC_PRESENCE_EINVAL;
    p->ops[OP_VISIBILITY]++;
    if (!redis_mode(p)) {
        if (pr_local__set_invisible(&p->local, user, !visible) && user_find(p, user))
            defer_status(p, user, visible ? 1 : 0);
        return RC_PRESENCE_OK;
    }
    char *key = rc_strcat3(p->prefix, ":presence:", user);
    const char *argv[6] = {p->k_invisible, key, p->prefix, user, visible ? "1" : "0", p->node_id};
    pr_req *r = req_new(p, REQ_VISIBLE, 0, NULL);
    int rc = send_eval(p, &lua_visible, r, 2, 6, argv);
    rc_free(key);
    if (rc != 0) {
        rc_free(r);
        return RC_PRESENCE_EDOWN;
    }
    /* Remembered now, so that a JOIN sent after this call carries it; the script's notes, in
     * Redis order, settle any race with another node's call. */
    pr_user *u = user_find(p, user);
    if (u) u->invisible = !visible;
    return RC_PRESENCE_OK;
}

void rc_presence_drain(rc_presence *p)
{
    if (p->draining) return;
    p->draining = 1;
    if (p->tick_ev) event_del(p->tick_ev);
    removals_clear(p);
    pr_req *r = req_new(p, EV_DRAINED, 0, NULL);
    if (!redis_mode(p)) {
        p->drained = 1;
    } else if (p->phase != PH_OFFLINE && send_sweep(p, REQ_DRAIN) == 0) {
        rc_free(r);
        return;
    } else {
        r->err = RC_PRESENCE_EDOWN;
    }
    defer(p, r);
}

/* ---- heartbeat, lifecycle, metrics ------------------------------------------------------------- */

static void arm_tick(rc_presence *p, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(p->tick_ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rc_presence *p = arg;
    if (p->draining) return;
    arm_tick(p, p->cfg.heartbeat_ms);
    /* in case the node created us after the backplane came up (no on_state(1) to forward) */
    if (p->phase == PH_OFFLINE && p->bp->ops->is_up(p->bp)) rc_presence_on_state(p, 1);
    if (p->phase == PH_RESETTING && !p->reset_inflight) send_sweep(p, REQ_RESET);
    if (p->phase != PH_LIVE) return;
    send_heartbeat(p, 0);
    removals_send(p);
    if (p->rereg_needed) send_join_batches(p);
    if (!p->sweep_inflight) send_sweep(p, REQ_SWEEP);
    if (p->resync_pending && rc_now_mono_ms() >= p->resync_at_ms) {
        p->resync_pending = 0;
        resync_watched(p);
    }
}

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
    p->defer_ev = event_new(base, -1, 0, on_defer_ev, p);
    if (!rc_redis_available(bp)) {
        p->phase = PH_EMBEDDED;
        return p;
    }
    const char *prefix = rc_redis_prefix(bp);
    p->phase = PH_OFFLINE;
    p->need_reset = 1; /* first start: clear what an earlier process with our id left behind */
    p->prefix = rc_strdup(prefix);
    p->status_prefix = rc_strcat3(prefix, ":status:", NULL);
    p->status_prefix_len = strlen(p->status_prefix);
    p->watches.bp = bp;
    p->watches.status_prefix = p->status_prefix;
    p->k_nodes = rc_strcat3(prefix, ":nodes", NULL);
    p->k_sweeping = rc_strcat3(prefix, ":sweeping", NULL);
    p->k_invisible = rc_strcat3(prefix, ":invisible", NULL);
    char *node_key = rc_strcat3(prefix, ":node:", p->node_id);
    p->k_conns = rc_strcat3(node_key, ":conns", NULL);
    p->k_members = rc_strcat3(node_key, ":members", NULL);
    rc_free(node_key);
    p->visibility_channel = rc_strcat3(prefix, ":visibility:", p->node_id);
    rc_redis_channel_open(bp, p->visibility_channel);
    p->tick_ev = evtimer_new(base, on_tick, p);
    arm_tick(p, 0);
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
        inflight_unlink(p, r);
        r->p = NULL;
    }
    while (p->deferred) {
        pr_req *r = p->deferred;
        p->deferred = r->next;
        rc_free(r);
    }
    removals_clear(p);
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
    rc_metrics_put_by_label(out, "roomcast_presence_operations_total", "Presence operations by kind.", "op",
                            op_names, p->ops, 0, OP__COUNT);
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
