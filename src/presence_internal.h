/*
 * presence_internal.h: what the files of presence share, and nothing else. Private (src/):
 * other modules use include/roomcast/presence.h. The module's design: the note at the top of
 * src/presence.c; keys, scripts and channels: docs/redis.md ("Presence").
 *
 * The files, each calling only the ones listed below it (never back up, so no two call each
 * other by name):
 *   presence.c          the API: connections, tracked members, queries, watches, visibility,
 *                       drain; rc_presence_new / _free, metrics, the raw channels (on_raw)
 *   presence_reply.c    Redis mode: the answers to every script call (rc_presence__on_reply),
 *                       which move the phases on. presence_redis.c reaches it only through
 *                       p->on_reply, set by rc_presence_new.
 *   presence_redis.c    Redis mode: script calls, queued removals, phases (rc_presence_on_state),
 *                       the heartbeat tick; the only includer of presence_lua.h
 *   presence_events.c   pr_req objects and their lists, and what reaches the node from the loop:
 *                       the deferred events, the embedded store's answers, status news for the
 *                       watchers, member lists
 *   presence_watch.c    who watches whom (presence_watch.h); presence_local.c, the embedded
 *                       store (presence_local.h): plain data structures, calling none of these
 *   presence_config.c   the settings (include/roomcast/presence_config.h); stands alone
 *
 * Ownership: every file works on the one rc_presence below, which presence.c allocates and
 * frees; a pr_req is owned by whichever list holds it (p->inflight, p->deferred, p->removals) or
 * by the function holding it between two lists.
 */
#ifndef ROOMCAST_PRESENCE_INTERNAL_H
#define ROOMCAST_PRESENCE_INTERNAL_H

#include "roomcast/hmap.h"
#include "roomcast/presence.h"
#include "roomcast/redis_cmd.h"

#include "presence_local.h"
#include "presence_watch.h"

#include <event2/util.h>
#include <stddef.h>
#include <stdint.h>

struct event;

enum pr_phase { PH_EMBEDDED = 0, PH_OFFLINE, PH_RESETTING, PH_LIVE };

/* Request and deferred-event kinds (pr_req.kind). */
enum pr_kind {
    REQ_JOIN = 0, REQ_LEAVE, REQ_HEARTBEAT, REQ_SWEEP, REQ_RESET, REQ_DRAIN, REQ_QUERY,
    REQ_RESYNC, REQ_MEMBERS, REQ_VISIBLE,
    EV_STATUS, EV_MEMBER, EV_QUERY, EV_MEMBERS, EV_DRAINED
};

/* Operations counted for roomcast_presence_operations_total (names: presence.c). */
enum pr_op {
    OP_CONNECT = 0, OP_DISCONNECT, OP_MEMBER_ADD, OP_MEMBER_REMOVE, OP_MEMBERS, OP_QUERY,
    OP_WATCH, OP_UNWATCH, OP_VISIBILITY, OP_HEARTBEAT, OP_SWEEP, OP_REREGISTER, OP__COUNT
};

/* ---- types ----------------------------------------------------------------------------------- */

/* A Redis call in flight, a removal waiting to be sent, or an event waiting for the loop. The
 * strings are copies packed in the same allocation (s[i] NUL-terminated). */
typedef struct pr_req {
    struct pr_req *next, *prev;   /* p->inflight (doubly), p->deferred / p->removals (next only) */
    rc_presence *p;               /* NULL once rc_presence_free orphaned it */
    int kind;                     /* enum pr_kind */
    int err;                      /* EV_*: the err handed to the callback */
    int flag;                     /* EV_STATUS online / EV_MEMBER joined / heartbeat: registering */
    unsigned gen;                 /* p->gen when sent: a reply from an older connection changes
                                     no phase */
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
    int invisible;                /* Redis mode: in P:invisible as far as this node knows (its
                                     own set_visible, P:visibility:N notes); re-registration
                                     restores it */
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
    rc_redis_reply_fn on_reply;   /* rc_presence__on_reply: every script call's answer */
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

static inline int rc_presence__redis_mode(const rc_presence *p)
{
    return p->phase != PH_EMBEDDED;
}

/* ---- presence_events.c: requests, and events for the node ------------------------------------ */

/* A request of kind carrying copies of the n strings s (n may be 0, s then NULL), gen p->gen.
 * Freed with rc_free. */
pr_req *rc_presence__req_new(rc_presence *p, int kind, size_t n, const char *const *s);
/* Appends r to the singly linked list head..tail. */
void rc_presence__list_push(pr_req **head, pr_req **tail, pr_req *r);
/* Lists r in p->inflight / takes it out again. */
void rc_presence__inflight_link(rc_presence *p, pr_req *r);
void rc_presence__inflight_unlink(rc_presence *p, pr_req *r);
/* The local user id, or NULL when no connection of theirs is on this node. */
pr_user *rc_presence__user_find(const rc_presence *p, const char *id);

/* Queues r (an EV_* request) for the loop, which hands it to the node: callbacks never run
 * inside a call into this module. */
void rc_presence__defer(rc_presence *p, pr_req *r);
/* Embedded mode: queues a status change of user, as of now. */
void rc_presence__defer_status(rc_presence *p, const char *user, int online);
/* Embedded mode: one connection of user enters (+1) or leaves (-1) the tracked room ns/room;
 * joined or left as a whole is queued for on_member. */
void rc_presence__local_count(rc_presence *p, const char *ns, const char *room, const char *user,
                              int delta);
/* p->defer_ev's callback: runs the events queued before this turn. */
void rc_presence__on_defer_ev(evutil_socket_t fd, short what, void *arg);

/* A status for user, as of time ts (Redis TIME in Redis mode; 0: unknown), handed to on_status
 * when it is news for this node's watchers. */
void rc_presence__status_deliver(rc_presence *p, const char *user, int online, uint64_t ts);
/* Sorts, drops repeats and caps users (n of them, total in the room), then answers r (a
 * members request: s[0] ns, s[1] room) through on_members. users is reordered in place. */
void rc_presence__answer_members(rc_presence *p, pr_req *r, const char **users, size_t n,
                                 size_t total);

/* ---- presence_redis.c: Redis mode's calls, removals and phases ------------------------------- */

/* Redis mode, at rc_presence_new: creates the heartbeat timer and fires it at once. */
void rc_presence__tick_start(rc_presence *p);

/* A connection's JOIN entry kind: "i" when this node holds its user invisible, else "c". */
const char *rc_presence__conn_kind(const pr_user *u);
/* One JOIN call with n entries; when refused, the next tick re-registers everything. */
void rc_presence__send_join(rc_presence *p, size_t n, const char *const *entries);
/* Every local connection and membership, in pipelined JOIN batches. */
void rc_presence__send_join_batches(rc_presence *p);

/* r: a REQ_LEAVE whose strings are the entries. Sent now when LIVE, else queued (a draining
 * node frees it: the drain sweep removes every entry). */
void rc_presence__removal_dispatch(rc_presence *p, pr_req *r);
/* Queues r for the next LIVE moment (beyond the bound: forgets the queue, resets instead). */
void rc_presence__removal_queue(rc_presence *p, pr_req *r);
/* Frees every queued removal. */
void rc_presence__removals_clear(rc_presence *p);

/* SWEEP: kind REQ_SWEEP (dead nodes), REQ_RESET or REQ_DRAIN (this node's own entries). 0 when
 * sent, -1 when refused. */
int rc_presence__send_sweep(rc_presence *p, int kind);
/* QUERY for r's users (REQ_QUERY or REQ_RESYNC). 0 when sent, -1 when refused (r is the
 * caller's again). */
int rc_presence__send_query(rc_presence *p, pr_req *r);
/* MEMBERS for r (REQ_MEMBERS: s[0] ns, s[1] room). 0 when sent, -1 when refused (r is the
 * caller's again). */
int rc_presence__send_members(rc_presence *p, pr_req *r);
/* VISIBLE: user appears offline (visible 0) or normally. 0 when sent, -1 when refused. */
int rc_presence__send_visible(rc_presence *p, const char *user, int visible);

/* LIVE: heartbeat, queued removals, every local entry and a sweep, all pipelined now. */
void rc_presence__register(rc_presence *p);
/* RESETTING: remove whatever Redis holds under our node id, then register. */
void rc_presence__start_reset(rc_presence *p);

/* ---- presence_reply.c: answers --------------------------------------------------------------- */

/* The answer to a script call carrying arg (a pr_req): p->on_reply. */
void rc_presence__on_reply(void *arg, const struct redisReply *reply);

#endif
