/*
 * presence_redis.c: presence's Redis mode, the sending side: every script call, the removals
 * queued while Redis is unreachable, the phases of an instance and the heartbeat tick. Contract:
 * src/presence_internal.h (rc_presence_on_state: include/roomcast/presence.h). The answers to
 * these calls: presence_reply.c, reached through p->on_reply. The scripts' text:
 * presence_lua.h, included here only; their keys, arguments and replies: docs/redis.md
 * ("Presence").
 *
 * Keys (P = prefix, N = node id), all changed only by the scripts:
 *   P:presence:<user>   set of "N:<sid>"             online = non-empty
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
 * What it does not do: read replies (presence_reply.c moves the phases on from them), or change
 * the local tables (presence.c owns them; this file reads them to re-register).
 */
#include "presence_internal.h"

#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"

#include "presence_lua.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

enum {
    JOIN_BATCH_ARGS = 1500,    /* arguments per re-registration JOIN call (~300-500 entries) */
    SWEEP_BUDGET = 1000,       /* entries one SWEEP call removes at most (bounds its run time) */
    SWEEP_NODES = 100,         /* dead nodes one SWEEP call takes on at most */
    MAX_REMOVALS = 100000      /* queued removals; beyond, the node resets itself on reconnect */
};

/* ---- script calls ---------------------------------------------------------------------------- */

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

/* Sends a script call carrying r (listed in p->inflight until answered). -1 when refused
 * (Redis down, backlog full): r is the caller's again. */
static int send_eval(rc_presence *p, rc_redis_script *sc, pr_req *r, int nkeys, int argc,
                     const char **argv)
{
    r->gen = p->gen;
    rc_presence__inflight_link(p, r);
    if (rc_redis_eval(p->bp, sc, p->on_reply, r, nkeys, argc, argv, NULL) == 0) return 0;
    rc_presence__inflight_unlink(p, r);
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

void rc_presence__send_join(rc_presence *p, size_t n, const char *const *entries)
{
    pr_req *r = rc_presence__req_new(p, REQ_JOIN, 0, NULL);
    if (send_entries(p, r, n, entries) != 0) {
        rc_free(r);
        p->rereg_needed = 1; /* the next heartbeat tick re-registers everything */
    }
}

/* A connection's JOIN entry kind: 'i' when this node holds its user invisible, so that a JOIN
 * that finds the user gone from Redis (a restart that lost the data) puts them back in
 * P:invisible before deciding whether to publish "online". */
const char *rc_presence__conn_kind(const pr_user *u)
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
    pr_req *r = rc_presence__req_new(p, REQ_JOIN, 0, NULL);
    if (send_entries(p, r, b->n, b->e) != 0) {
        rc_free(r);
        b->failed = 1;
        p->rereg_needed = 1; /* the next heartbeat tick tries again */
    }
    b->n = 0;
}

/* Every local connection and membership, in JOIN calls of about JOIN_BATCH_ARGS arguments,
 * pipelined in one go. Idempotent: entries already there change nothing and publish nothing. */
void rc_presence__send_join_batches(rc_presence *p)
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
        b->e[b->n++] = rc_presence__conn_kind(c->user);
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

void rc_presence__removals_clear(rc_presence *p)
{
    while (p->removals) {
        pr_req *r = p->removals;
        p->removals = r->next;
        rc_free(r);
    }
    p->removals_tail = NULL;
    p->nremovals = 0;
}

void rc_presence__removal_queue(rc_presence *p, pr_req *r)
{
    if (p->nremovals >= MAX_REMOVALS) {
        /* An outage this long: forget them and remove all of our entries at reconnect instead. */
        rc_log_warn("presence_removals_overflow", "queued=%zu", p->nremovals);
        rc_presence__removals_clear(p);
        p->need_reset = 1;
        rc_free(r);
        return;
    }
    rc_presence__list_push(&p->removals, &p->removals_tail, r);
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
void rc_presence__removal_dispatch(rc_presence *p, pr_req *r)
{
    if (p->draining) { /* the drain sweep removes every entry of this node */
        rc_free(r);
        return;
    }
    if (p->phase == PH_LIVE && send_leave(p, r) == 0) return;
    rc_presence__removal_queue(p, r);
}

static void send_heartbeat(rc_presence *p, int registering)
{
    const char *argv[3] = {p->k_nodes, p->k_sweeping, p->node_id};
    pr_req *r = rc_presence__req_new(p, REQ_HEARTBEAT, 0, NULL);
    r->flag = registering;
    p->ops[OP_HEARTBEAT]++;
    if (send_eval(p, &lua_heartbeat, r, 2, 3, argv) != 0) rc_free(r);
}

/* SWEEP: kind REQ_SWEEP (dead nodes), REQ_RESET or REQ_DRAIN (this node's own entries). */
int rc_presence__send_sweep(rc_presence *p, int kind)
{
    char ttl[24], budget[16], nodes[16];
    int dead = kind == REQ_SWEEP;
    snprintf(ttl, sizeof(ttl), "%d", p->cfg.ttl_ms);
    snprintf(budget, sizeof(budget), "%d", SWEEP_BUDGET);
    snprintf(nodes, sizeof(nodes), "%d", SWEEP_NODES);
    const char *argv[8] = {p->k_nodes, p->k_sweeping, p->k_invisible, p->prefix,
                           dead ? "dead" : "node", dead ? ttl : p->node_id, budget, nodes};
    pr_req *r = rc_presence__req_new(p, kind, 0, NULL);
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
int rc_presence__send_query(rc_presence *p, pr_req *r)
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
 * disconnected still reach on_status (anything already known is dropped when the answer is
 * delivered: rc_presence__status_deliver). */
static void resync_watched(rc_presence *p)
{
    const char *batch[RC_PRESENCE_QUERY_MAX];
    size_t n = 0;
    const rc_hmap *watched = &p->watches.watched;
    for (rc_hmap_node *it = rc_hmap_first(watched); it; it = rc_hmap_next(watched, it)) {
        batch[n++] = it->key; /* the user id, NUL-terminated */
        if (n < RC_PRESENCE_QUERY_MAX && rc_hmap_next(watched, it)) continue;
        pr_req *r = rc_presence__req_new(p, REQ_RESYNC, n, batch);
        n = 0;
        if (rc_presence__send_query(p, r) != 0) {
            rc_free(r);
            return;
        }
    }
}

int rc_presence__send_members(rc_presence *p, pr_req *r)
{
    char max[16];
    snprintf(max, sizeof(max), "%d", RC_PRESENCE_MEMBERS_MAX);
    char *key = rc_key_new(p->prefix, RC_KEY_MEMBERS, r->s[0], r->s[1]);
    const char *argv[2] = {key, max};
    int rc = send_eval(p, &lua_members, r, 1, 2, argv);
    rc_free(key);
    return rc;
}

int rc_presence__send_visible(rc_presence *p, const char *user, int visible)
{
    char *key = rc_key_new(p->prefix, RC_KEY_PRESENCE, user, NULL);
    const char *argv[6] = {p->k_invisible, key, p->prefix, user, visible ? "1" : "0", p->node_id};
    pr_req *r = rc_presence__req_new(p, REQ_VISIBLE, 0, NULL);
    int rc = send_eval(p, &lua_visible, r, 2, 6, argv);
    rc_free(key);
    if (rc != 0) rc_free(r);
    return rc;
}

/* ---- phases ---------------------------------------------------------------------------------- */

static void arm_tick(rc_presence *p, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(p->tick_ev, &tv);
}

/* LIVE: heartbeat (registers the node), queued removals, every local entry and a sweep, all
 * pipelined now; calls made from here on are sent at once, behind them. Watched statuses are
 * read back one TTL later, when nodes that reconnected at about the same time (after a Redis
 * restart) have registered again: earlier, their users would read as offline. */
void rc_presence__register(rc_presence *p)
{
    p->phase = PH_LIVE;
    send_heartbeat(p, 1);
    removals_send(p);
    rc_presence__send_join_batches(p);
    if (!p->sweep_inflight) rc_presence__send_sweep(p, REQ_SWEEP);
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
void rc_presence__start_reset(rc_presence *p)
{
    p->phase = PH_RESETTING;
    p->need_reset = 1;
    if (!p->reset_inflight) rc_presence__send_sweep(p, REQ_RESET);
}

void rc_presence_on_state(rc_presence *p, int up)
{
    if (!rc_presence__redis_mode(p)) return;
    if (!up) {
        p->phase = PH_OFFLINE;
        p->gen++;
        p->reset_inflight = p->sweep_inflight = 0;
        return;
    }
    if (p->draining || p->phase != PH_OFFLINE) return;
    if (p->need_reset) rc_presence__start_reset(p);
    else rc_presence__register(p);
}

/* ---- heartbeat tick -------------------------------------------------------------------------- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rc_presence *p = arg;
    if (p->draining) return;
    arm_tick(p, p->cfg.heartbeat_ms);
    /* in case the node created us after the backplane came up (no on_state(1) to forward) */
    if (p->phase == PH_OFFLINE && p->bp->ops->is_up(p->bp)) rc_presence_on_state(p, 1);
    if (p->phase == PH_RESETTING && !p->reset_inflight) rc_presence__send_sweep(p, REQ_RESET);
    if (p->phase != PH_LIVE) return;
    send_heartbeat(p, 0);
    removals_send(p);
    if (p->rereg_needed) rc_presence__send_join_batches(p);
    if (!p->sweep_inflight) rc_presence__send_sweep(p, REQ_SWEEP);
    if (p->resync_pending && rc_now_mono_ms() >= p->resync_at_ms) {
        p->resync_pending = 0;
        resync_watched(p);
    }
}

void rc_presence__tick_start(rc_presence *p)
{
    p->tick_ev = evtimer_new(p->base, on_tick, p);
    arm_tick(p, 0);
}
