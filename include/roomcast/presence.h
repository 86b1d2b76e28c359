/*
 * presence.h: who is online, across every node, and who is in the rooms a rule marks as
 * tracked. A user is online while at least one of their connections (sockets) is live on any
 * node. Implementation: src/presence.c and its parts (the list at the top of
 * src/presence_internal.h); settings: roomcast/presence_config.h; keys, scripts and channels:
 * docs/redis.md ("Presence").
 *
 * Two stores behind one API, chosen by the backplane given to rc_presence_new:
 *   - Redis (rc_redis_available(bp) == 1): the truth lives in Redis (docs/redis.md) and is
 *     changed only by Lua scripts, so "went online", "went offline", "joined" and "left" are
 *     decided inside Redis, exactly once per transition, however many devices and nodes take
 *     part. Each node heartbeats; any node sweeps the entries of a node whose heartbeat is older
 *     than ttl_ms (several sweeping at once is safe: each entry is removed by exactly one sweep).
 *   - Embedded (the local backplane): the same semantics on in-memory maps for a single node.
 *
 * Events, and who fires them:
 *   - Status: published on P:status:<user> as {"user":"<id>","online":true|false,"ts":<ms>} by
 *     whichever script made the transition. A node subscribes to that channel while at least one
 *     of its watchers watches the user, and hands each change to on_status once, with the list
 *     of its watchers (encode once, send to all). Repeats of the state a node already knows are
 *     dropped, so a watcher sees alternating online/offline.
 *   - Members: on_member fires on the one node whose call (or sweep) made a user join or leave a
 *     tracked room as a whole; that node announces it to the room (locally and through the
 *     backplane). Counted per connection: a user with two devices in the room joins with the
 *     first and leaves with the last.
 *
 * Invisibility: rc_presence_set_visible(user, 0) puts the user in P:invisible: queries answer
 * false, status changes are not published, and if the user was online "offline" is published
 * now; visible again publishes "online" if they are connected. It lasts until set back (not
 * tied to connections), so a device that reconnects does not flash online. Room membership is
 * not affected by invisibility. In Redis mode every node holding a connection of an invisible
 * user remembers it (Redis tells them when it changes), so a Redis restart that loses the data
 * does not make the user visible: the re-registration restores it before anything is published.
 * A node forgets it when the user becomes visible or their last connection on the node closes.
 *
 * Redis state changes (Redis mode):
 *   - Redis down: calls keep working on the local tables; queries and member lists answer with
 *     err RC_PRESENCE_EDOWN. On the next on_state(1) the node re-registers every live connection
 *     and membership (pipelined batches, before anything else is sent), sends the removals it
 *     could not send, and one ttl_ms later re-reads the status of the users it watches (a
 *     change missed while down reaches on_status).
 *   - Redis restarted empty: the same re-registration makes the state complete again as soon as
 *     the node is connected. Users it brings back online are published "online" (and members
 *     it brings back fire joined): a watcher that asked while Redis was empty was told
 *     "offline", and this corrects it; a watcher that knew them online sees nothing, as repeats
 *     are dropped. Invisible users stay invisible (nothing is published for them). A plain
 *     reconnect without data loss publishes nothing.
 *   - Swept while alive (the node was unreachable longer than ttl_ms): others published its
 *     users offline; the node notices (heartbeat or a refused call), finishes removing its own
 *     old entries and registers again, publishing them online.
 *   - First start: entries left by an earlier process with the same node id are removed (their
 *     users go offline if nowhere else) before the node registers.
 *
 * Lifetimes (the rule for callbacks): nothing the caller passes is kept; strings are copied.
 * Answers identify their request by the caller's 64-bit tag, and status events name watchers
 * by the caller's 64-bit watcher id: presence never dereferences either, so a socket that closed
 * meanwhile is found missing by the node's own lookup (use a serial number or a
 * generation-checked handle, never a pointer). Strings handed to callbacks are valid only
 * during the call. Every callback runs from the event loop, never from inside a call into this
 * module, and callbacks may call back into the module (not rc_presence_free).
 *
 * API in call order:
 *   rc_presence_config_parse (or _default) -> rc_presence_new(base, bp, node_id, cfg, cb)
 *   -> forward the backplane's on_state to rc_presence_on_state and its on_raw to
 *      rc_presence_on_raw (any order, for the node's whole life):
 *      connect / disconnect per socket, member_add / member_remove per tracked room,
 *      watch / unwatch / unwatch_all per watcher, query, members, set_visible
 *   -> rc_presence_drain at shutdown (wait for on_drained) -> rc_presence_free, before the
 *      backplane is freed.
 */
#ifndef ROOMCAST_PRESENCE_H
#define ROOMCAST_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "roomcast/presence_config.h"

struct event_base;
struct evbuffer;
typedef struct rc_backplane rc_backplane;

enum {
    RC_PRESENCE_QUERY_MAX = 1000,    /* users per rc_presence_query (one Redis round trip) */
    RC_PRESENCE_MEMBERS_MAX = 1000,  /* users returned per member list (total is given too) */
    RC_PRESENCE_WATCH_MAX = 1000,    /* users one watcher may watch at once */
    RC_PRESENCE_NAME_MAX = 512       /* bytes in a user id, sid, room name */
};

/* err values in callbacks; also returned by calls that refuse. */
enum {
    RC_PRESENCE_OK = 0,
    RC_PRESENCE_EINVAL = -1,   /* bad argument (empty or too long name, bad namespace, too many) */
    RC_PRESENCE_EDOWN = -2,    /* Redis unreachable, or the connection failed before the answer */
    RC_PRESENCE_EFAIL = -3,    /* Redis answered with an error */
    RC_PRESENCE_ESTATE = -4    /* refused: unknown or duplicate sid, draining */
};

typedef struct rc_presence rc_presence;

typedef struct rc_presence_callbacks {
    /* A watched user's status changed. watchers: the ids watching them now (n >= 1). ts_ms: wall
     * clock of the change (Redis TIME in Redis mode). */
    void (*on_status)(void *arg, const char *user, int online, uint64_t ts_ms,
                      const uint64_t *watchers, size_t n);
    /* user joined (1) or left (0) the tracked room ns/room as a whole, decided by this node's
     * call or sweep: announce it to the room. */
    void (*on_member)(void *arg, const char *ns, const char *room, const char *user, int joined);
    /* Answer to rc_presence_query: users[i] is online[i] (1/0), in the order asked. On err
     * (RC_PRESENCE_EDOWN / EFAIL) online is NULL. */
    void (*on_query)(void *arg, uint64_t tag, int err, const char *const *users,
                     const unsigned char *online, size_t n);
    /* Answer to rc_presence_members: n user ids (sorted, at most RC_PRESENCE_MEMBERS_MAX) of the
     * total members of ns/room. */
    void (*on_members)(void *arg, uint64_t tag, int err, const char *ns, const char *room,
                       const char *const *users, size_t n, size_t total);
    /* rc_presence_drain is done: err 0 when this node's entries are gone from Redis. */
    void (*on_drained)(void *arg, int err);
    void *arg;
} rc_presence_callbacks;

/* bp: the node's backplane (Redis or local), which must outlive the presence. node_id: the id
 * used by the backplane (entries are "<node>:<sid>"). cfg NULL: defaults. cb is copied. In Redis
 * mode it subscribes P:visibility:<node_id> for its whole life (through rc_presence_on_raw). */
rc_presence *rc_presence_new(struct event_base *base, rc_backplane *bp, const char *node_id,
                             const rc_presence_config *cfg, const rc_presence_callbacks *cb);
/* Frees the local state without touching Redis (drain first for a clean exit). Pending
 * answers are dropped: their callbacks never run. Call before freeing the backplane. */
void rc_presence_free(rc_presence *p);

/* Forward the backplane's on_state here (after the node's own handling). */
void rc_presence_on_state(rc_presence *p, int up);
/* Forward the backplane's on_raw here: 1 when the channel was presence's (consumed). */
int rc_presence_on_raw(rc_presence *p, const char *channel, const char *payload, size_t len);

/* A socket of user is live on this node (call once its user is known, e.g. on CONNECT).
 * 0, or EINVAL / ESTATE (sid already known, or draining). */
int rc_presence_connect(rc_presence *p, const char *user, const char *sid);
/* The socket is gone: it leaves presence and every tracked room it was in. Unknown sid: no-op. */
void rc_presence_disconnect(rc_presence *p, const char *sid);

/* The connected socket sid entered / left the tracked room ns/room (call when the rule marks
 * the room tracked and the join/leave succeeded). Repeats are no-ops. 0, EINVAL or ESTATE. */
int rc_presence_member_add(rc_presence *p, const char *sid, const char *ns, const char *room);
void rc_presence_member_remove(rc_presence *p, const char *sid, const char *ns, const char *room);
/* The members of ns/room, answered through on_members with tag. 0 or EINVAL. */
int rc_presence_members(rc_presence *p, const char *ns, const char *room, uint64_t tag);

/* Online status of n users (n <= RC_PRESENCE_QUERY_MAX), answered through on_query with tag:
 * one EVALSHA in Redis mode. 0 or EINVAL (then no callback). */
int rc_presence_query(rc_presence *p, const char *const *users, size_t n, uint64_t tag);

/* Watcher (a nonzero id chosen by the node, e.g. a socket serial) wants user's status changes.
 * Refcounted per user: the first watcher subscribes P:status:<user>, the last one leaving
 * unsubscribes. Repeats are no-ops. 0 or EINVAL (also beyond RC_PRESENCE_WATCH_MAX). */
int rc_presence_watch(rc_presence *p, uint64_t watcher, const char *user);
void rc_presence_unwatch(rc_presence *p, uint64_t watcher, const char *user);
/* Everything watcher watches (call when its socket closes). */
void rc_presence_unwatch_all(rc_presence *p, uint64_t watcher);

/* user appears offline (visible 0) or normally (1). 0 when sent (or applied, embedded),
 * EINVAL, or EDOWN when Redis is unreachable (nothing changed). */
int rc_presence_set_visible(rc_presence *p, const char *user, int visible);

/* Shutdown: stops heartbeats and removes every entry of this node from Redis (users nowhere
 * else go offline, with the event published once; rooms' members leave through on_member), then
 * on_drained. Afterwards connect and member_add refuse; disconnect is local only. */
void rc_presence_drain(rc_presence *p);

/* Appends roomcast_presence_* in Prometheus text format (HELP and TYPE lines). */
void rc_presence_write_metrics(const rc_presence *p, struct evbuffer *out);

#endif
