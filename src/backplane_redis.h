/*
 * backplane_redis.h: what the Redis backplane's files share. Private (src/): other modules use
 * include/roomcast/backplane.h and include/roomcast/redis_cmd.h.
 *
 * The Redis backplane carries room and namespace traffic between nodes and from backends
 * (contract: include/roomcast/backplane.h; channels, payloads, liveness and metrics:
 * docs/redis.md). It is these files, each calling by name only the ones listed below it:
 *
 *   backplane_redis_cmd.c    include/roomcast/redis_cmd.h for modules: finds the backplane
 *                            behind an rc_backplane, sends commands and scripts on cmd through
 *                            redis_script.c while up, puts raw channels in the subscription set
 *   backplane_redis.c        creation (rc_backplane_redis_new), rc_backplane_ops (publish, room
 *                            and namespace channels, when_subscribed, metrics, free)
 *   backplane_redis_recv.c   receiving: everything the sub connection pushes
 *   backplane_redis_sentinel.c  with Redis Sentinel: the master's address from the sentinels
 *                            (the resolver hook), ROLE checked on every new connection pair,
 *                            +switch-master followed at once
 *   backplane_redis_phase.c  the two connections and the phases over them: resolve, connect,
 *                            resync, canary, timeouts, failure and backoff
 *   backplane_redis_subs.c   the subscription set, its once-per-turn flush, the subscription
 *                            barrier (when_subscribed)
 *
 * Under them, each with its own header: redis_script.c (module commands and scripts on one
 * connection), redis_conn.c (one connection's I/O), redis_link.c (the lifecycle every connection
 * shares: timings, backoff, name lookup, canary round trip; used by backplane_redis_phase.c and
 * backplane_redis_shard.c alike), backplane_envelope.c (the JSON envelope).
 *
 * Two connections (redis_conn): sub (handshake, then only SUBSCRIBE-family commands; receives
 * messages) and cmd (handshake, then PUBLISH pipelined, the canary PUBLISH and the modules'
 * commands). Each command on cmd carries its sender's callback: publish's and the canary's
 * (this module's) or redis_script.c's; none passes through the backplane.
 *
 * Callbacks up (on_message, on_raw, on_state) run only from loop callbacks (connection I/O, the
 * timers, the flush event), never from inside an op or rc_backplane_redis_new; free must not be
 * called from inside any of them (asserted with in_callback).
 */
#ifndef ROOMCAST_BACKPLANE_REDIS_H
#define ROOMCAST_BACKPLANE_REDIS_H

#include "roomcast/backplane.h"

#include "backplane_envelope.h"
#include "redis_cluster.h"
#include "redis_conn.h"
#include "redis_link.h"
#include "redis_script.h"
#include "roomcast/hmap.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_config.h"
#include "roomcast/redis_url.h"

#include <event2/util.h>
#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct evbuffer;
struct rc_sentinel;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct redis_bp redis_bp;

/* Where the next attempt connects, found afresh before every (re)connect. The default (start
 * NULL) is the URL's host and port (or its unix path). Sentinel plugs the master lookup in here:
 * start begins finding the address and, later and from the loop (never from inside start), calls
 * redis_bp__resolved(bp, host, port) once, or redis_bp__fail(bp, reason). cancel (may be NULL)
 * abandons a lookup in progress: the attempt failed or the backplane is being freed; after it,
 * the resolver must not call back for that attempt. free (may be NULL) runs once, at free. */
typedef struct redis_bp_resolver {
    void (*start)(void *arg, redis_bp *bp);
    void (*cancel)(void *arg, redis_bp *bp);
    void (*free)(void *arg);
    void *arg;
} redis_bp_resolver;

enum { SUB_BATCH = 512 }; /* channels per SUBSCRIBE/UNSUBSCRIBE */

/* The backplane's phase (diagram: backplane_redis_phase.c). */
enum bp_phase { BP_WAITING = 0, BP_RESOLVING, BP_CONNECTING, BP_SYNCING, BP_UP, BP_CLOSED };

/* One channel the backplane wants or has told Redis about (backplane_redis_subs.c). */
typedef struct bp_chan {
    rc_hmap_node node;        /* in bp->chans, key = name */
    struct bp_chan *dirty_next;
    const char *ns;           /* into name[]; NULL for a raw channel or a pattern */
    const char *room;         /* into name[]; NULL for a namespace channel */
    const char *prefix;       /* a pattern: the literal prefix it was opened with, into name[] */
    size_t len;               /* strlen(name) */
    uint32_t raw_refs;        /* rc_redis_channel_open / pattern_open count (ns is NULL then) */
    unsigned wanted : 1;      /* the node has local members (room) or serves it (ns) */
    unsigned sent : 1;        /* the current sub connection was last told SUBSCRIBE */
    unsigned dirty : 1;       /* on bp->dirty */
    unsigned sharded : 1;     /* cluster: a room/namespace channel, SSUBSCRIBEd on its slot's
                               * master (backplane_redis_shard.c) */
    unsigned confirmed : 1;   /* sharded: its SSUBSCRIBE was confirmed */
    int16_t shard;            /* sharded and sent: the shard told SSUBSCRIBE, else -1 */
    uint16_t slot;            /* sharded: its slot */
    unsigned pattern : 1;     /* rc_redis_pattern_open: PSUBSCRIBE, delivered as pmessage; its
                               * key in bp->chans is name with its NUL (len + 1 bytes), so it
                               * never meets the literal channel spelled the same */
    unsigned listen_rooms : 1; /* a listen entry (rc_redis_listen_open) for every room of
                               * listen_ns; 0 for the namespace channel's */
    const char *listen_ns;    /* a listen entry: its namespace, into name[]; else NULL */
    char name[];              /* "<channel>\0<ns>\0<room>\0", or "<pattern>\0<prefix>\0" */
} bp_chan;

/* A when_subscribed caller waiting for Redis to confirm the SUBSCRIBEs sent before it. */
typedef struct sub_waiter {
    struct sub_waiter *next;
    uint64_t target;             /* subs_sent at the flush after registration */
    uint64_t *shard_targets;     /* cluster: each shard's subs_sent then */
    size_t nshard_targets;
    int assigned;                /* target set (by that flush) */
    void (*cb)(void *arg, int live);
    void *arg;
} sub_waiter;

/* Cluster mode: one master and the two connections the backplane keeps to it
 * (backplane_redis_shard.c). */
typedef struct bp_shard {
    struct redis_bp *bp;
    int index;                   /* in bp->shards and bp->map.masters */
    char *host;
    int port;
    redis_conn sub, cmd;         /* SSUBSCRIBE only / SPUBLISH, canary, modules' commands */
    redis_script_state scripts;  /* the modules' scripts on cmd */
    char *canary_channel;        /* P:canary:<node>:{<tag>}, a slot this master owns */
    size_t canary_len;
    uint16_t canary_slot;
    int synced;                  /* its canary SSUBSCRIBE confirmed on the current sub */
    redis_link_canary canary;    /* ok: came back since the attempt started */
    uint64_t last_push_ms;
    uint64_t subs_sent, subs_confirmed; /* channels, for the barrier (canary excluded) */
    size_t nsubscribed;          /* entries sent to this shard */
    uint64_t publishes;          /* SPUBLISH sent here */
} bp_shard;

struct redis_bp {
    rc_backplane super;
    struct event_base *base;
    rc_backplane_callbacks cb;
    int in_callback;             /* > 0 while on_message/on_state/on_raw run */

    rc_redis_url url;
    SSL_CTX *ssl_ctx;            /* rediss://: one verifying context for every connection */
    char *server_name;           /* redis.tls.serverName, or NULL: the host connected to */
    const rc_redis_config *rcfg; /* the settings beyond the URL (never NULL; borrowed) */
    redis_bp_resolver resolver;  /* start NULL: the URL's address */
    struct rc_sentinel *sentinel; /* with sentinels: backplane_redis_sentinel.c, else NULL */
    int role_sent, role_checked; /* this attempt's ROLE check (sentinel only) */
    char *target_host;           /* the current attempt's host (a name or an address) */
    int target_port;
    int ever_up;                 /* reached UP once: trust failures are fatal only before */
    char *prefix, *node_id;
    char *key_prefix;            /* the modules' keys: prefix, or "{prefix}" in a cluster */
    char *canary_channel;
    char *sub_name, *cmd_name;   /* CLIENT SETNAME of each connection */

    /* phases (backplane_redis_phase.c) */
    int phase;                   /* enum bp_phase */
    uint64_t deadline_ms;        /* RESOLVING/CONNECTING/SYNCING must end by then */
    uint64_t backoff_ms;         /* last backoff step (redis_link_backoff); 0 after UP */
    int attempts;                /* connection attempts started */
    redis_link_resolve resolve;  /* getaddrinfo_a, possibly still running from an earlier attempt */
    redis_conn sub, cmd;
    int sub_synced;              /* canary SUBSCRIBE confirmed on the current sub connection */
    char canary_nonce[12];       /* random per instance: a node id used twice cannot fool us */
    redis_link_canary canary;    /* the home canary (ok: came back in this attempt) */
    uint64_t sub_last_push_ms;   /* the sub connection's last message or confirmation */
    uint64_t last_tick_ms;       /* when the tick last ran (a late tick = a busy loop) */
    struct event *tick_ev, *retry_ev;

    /* subscriptions (backplane_redis_subs.c) */
    rc_hmap chans;               /* bp_chan by channel name */
    bp_chan *dirty;              /* entries changed since the last flush */
    size_t nsubscribed;          /* entries with sent = 1 */
    int flush_scheduled;
    struct event *flush_ev;
    /* Subscription barrier (when_subscribed): channels sent in SUBSCRIBE commands and confirmed
     * by Redis on the current sub connection (Redis confirms in order), and the waiters. */
    uint64_t subs_sent, subs_confirmed;
    sub_waiter *waiters;
    const char *argv[SUB_BATCH + 1];
    size_t argvlen[SUB_BATCH + 1];

    /* cluster (backplane_redis_shard.c); cluster = 0 for a single Redis */
    int cluster;
    char **seed_hosts;           /* the nodes asked for the topology, in turn */
    int *seed_ports;
    size_t nseeds, seed_at;
    redis_cluster_map map;       /* slot -> index in shards */
    bp_shard **shards;
    size_t nshards;
    int topo;                    /* 0 unknown, 1 asked, 2 known (this attempt) */
    int refreshing;              /* a refresh of the map in flight while UP */
    void *scratch;               /* the shards' flush's array */
    size_t scratch_cap;
    uint64_t moved, asks, slot_drops, refreshes;

    bp_buf chan_buf, payload_buf;
    redis_script_state scripts;  /* the modules' commands and scripts on cmd */

    /* metrics */
    uint64_t reconnects, invalid, own, canary_failures,
        command_timeouts, raw_received, role_mismatches, overheard;
    uint64_t invalid_logged_ms, invalid_suppressed; /* the rate limit of redis_bad_message */
    rc_histogram publish_latency;
};

/* ---- backplane_redis.c, for backplane_redis_cmd.c ----------------------------------------------- */

/* The Redis backplane behind b, or NULL (b is NULL or another backplane). */
redis_bp *redis_bp__from(const rc_backplane *b);

/* ---- backplane_redis_sentinel.c ---------------------------------------------------------------- */

/* With sentinels configured: bp->sentinel, the resolver hook (the master from the sentinels at
 * every attempt) and the +switch-master watch. */
void redis_bp__sentinel_attach(redis_bp *bp);
/* While CONNECTING with both connections up: 1 while this attempt's ROLE check has not said
 * "master" yet (it sends ROLE once, and maybe_probe runs again on the answer); 0 without
 * sentinels or once checked. */
int redis_bp__sentinel_role_pending(redis_bp *bp);
void redis_bp__sentinel_write_metrics(const redis_bp *bp, struct evbuffer *out);

/* ---- backplane_redis_recv.c ------------------------------------------------------------------- */

/* The sub connection's on_push: SUBSCRIBE confirmations, messages, errors. */
void redis_bp__on_push(void *arg, redis_conn *c, struct redisReply *reply);

/* ---- backplane_redis_phase.c ------------------------------------------------------------------ */

/* The connections' on_ready and on_fail. */
void redis_bp__on_conn_ready(void *arg, redis_conn *c);
void redis_bp__on_conn_fail(void *arg, redis_conn *c, const char *reason);
/* Event callbacks (arg = bp): tick_ev (timeouts and the canary, every TICK_MS), retry_ev (the
 * next attempt, or polling the resolver), flush_ev (the subscription flush, once per turn). */
void redis_bp__on_tick(evutil_socket_t fd, short what, void *arg);
void redis_bp__on_retry(evutil_socket_t fd, short what, void *arg);
void redis_bp__on_flush(evutil_socket_t fd, short what, void *arg);
/* Starts the timers: the tick, and the first attempt from the loop (not from here). */
void redis_bp__phase_start(redis_bp *bp);
/* Any failure: on_state(0) if it was UP, both connections closed, subscriptions to be resent,
 * retry after a backoff. Does nothing while WAITING or CLOSED. */
void redis_bp__fail(redis_bp *bp, const char *reason);
/* While WAITING: the next attempt now, the backoff forgotten (news that the cause is gone, such as
 * a +switch-master). */
void redis_bp__retry_now(redis_bp *bp);
/* SYNCING may start (both connections CONNECTED), or its canary may go (subscriptions synced). */
void redis_bp__maybe_probe(redis_bp *bp);
/* A message on the canary channel. */
void redis_bp__on_canary(redis_bp *bp, const char *payload, size_t len);
/* The resolver found where the current attempt connects: a host name (looked up with DNS, not
 * blocking the loop) or a numeric address, and a port. Only while RESOLVING; from the loop. */
void redis_bp__resolved(redis_bp *bp, const char *host, int port);
/* A command on cmd was answered with an error of a class (redis_conn.h's on_error_class). */
void redis_bp__on_error_class(void *arg, redis_conn *c, int cls, const struct redisReply *reply);

/* ---- backplane_redis_shard.c ------------------------------------------------------------------ */

/* Cluster mode from creation: the seed nodes (copied). */
void redis_bp__cluster_setup(redis_bp *bp, const char *const *hosts, const int *ports, size_t n);
/* An attempt starts: the home connections go to the next seed (bp->url's host and port). */
void redis_bp__cluster_next_seed(redis_bp *bp);
/* The home cmd connection is CONNECTED: ask it for the topology (CLUSTER SHARDS). */
void redis_bp__cluster_ask(redis_bp *bp);
/* 1 when the topology is known and every shard's two connections are CONNECTED. */
int redis_bp__shards_connected(const redis_bp *bp);
/* SYNCING: the canaries of the shards whose subscriptions are synced. */
void redis_bp__shards_probe(redis_bp *bp);
/* 1 when every shard's canary came back in this attempt. */
int redis_bp__shards_ok(const redis_bp *bp);
/* UP: each shard's canary and command timeout. 0, or -1 when it failed the backplane. */
int redis_bp__shards_tick(redis_bp *bp, uint64_t now_ms);
/* redis_bp__fail: every shard connection closed, its state reset, the map forgotten. */
void redis_bp__shards_close(redis_bp *bp);
/* The flush's sharded part: SSUBSCRIBE / SUNSUBSCRIBE of dirty sharded entries, one command per
 * slot (Redis wants the channels of one command in one slot). 0, or -1 (the caller fails). */
int redis_bp__shards_flush(redis_bp *bp);
/* Publish in cluster mode: SPUBLISH on the master of the channel's slot, redirected once on
 * MOVED/ASK. 0, or -1. */
int redis_bp__shard_publish(redis_bp *bp, const char *chan, size_t chanlen, const char *payload,
                            size_t len);
/* A module's command or script (redis_cmd.h) in cluster mode: sent to the master of key's slot
 * (the home connection when key is NULL). */
int redis_bp__shard_command(redis_bp *bp, const char *key, size_t keylen, rc_redis_script *script,
                            rc_redis_reply_fn cb, void *arg, int nkeys, int argc,
                            const char **argv, const size_t *argvlen);
/* Barrier: 1 when every shard confirmed what w waits for (w->shard_targets), or not clustered. */
int redis_bp__shards_reached(const redis_bp *bp, const sub_waiter *w);
/* Barrier: 1 when a shard's sub connection cannot confirm anything now. */
int redis_bp__shards_deaf(const redis_bp *bp);
/* free: connections closed and disposed, everything freed. */
void redis_bp__shards_dispose(redis_bp *bp);

/* ---- backplane_redis_recv.c, for the shards ---------------------------------------------------- */

/* A message on channel chan (room, namespace or raw) from any subscriber connection. */
void redis_bp__message(redis_bp *bp, const char *chan, size_t chanlen, const char *payload,
                       size_t len);

/* ---- backplane_redis_subs.c ------------------------------------------------------------------- */

/* Namespaces start with '/' and never contain ':'. */
int redis_bp__ns_valid(const char *ns);
/* src/backplane_redis_keep.c: rc_backplane_ops.publish_kept. */
int redis_bp__publish_kept(rc_backplane *b, const rc_bp_message *msg, const rc_bp_keep *keep);
/* Writes the channel of (ns, room) into b: P:room:<ns>:<room>, or P:ns:<ns> when room is NULL. */
void redis_bp__channel_build(const redis_bp *bp, bp_buf *b, const char *ns, const char *room);
/* The node's wish for a room (room set) or namespace channel; takes effect at the next flush. */
void redis_bp__chan_set_wanted(redis_bp *bp, const char *ns, const char *room, int wanted);
/* Raw channels (redis_cmd.h): refcounted, literal; names that pose as the backplane's own are
 * refused. */
void redis_bp__raw_open(redis_bp *bp, const char *channel);
void redis_bp__raw_close(redis_bp *bp, const char *channel);
/* Patterns (redis_cmd.h): refcounted; the prefix is escaped, then '*' appended. */
void redis_bp__pattern_open(redis_bp *bp, const char *prefix);
void redis_bp__pattern_close(redis_bp *bp, const char *prefix);
/* Listening (redis_cmd.h, rc_redis_listen_open): both pattern entries of ns, refcounted; -1 on a
 * cluster or for a namespace the backplane cannot carry. */
int redis_bp__listen(redis_bp *bp, const char *ns, int open);
/* The channel entry named name[0..len) (room, namespace or raw), or NULL. */
bp_chan *redis_bp__chan_find(redis_bp *bp, const char *name, size_t len);
/* The pattern entry whose PSUBSCRIBE pattern is pat[0..len) (pat[len] must be NUL, as in a
 * hiredis reply), or NULL. */
bp_chan *redis_bp__pattern_find(redis_bp *bp, const char *pat, size_t len);
/* Makes flush_ev run the flush once, after the callbacks already queued in this turn. */
void redis_bp__schedule_flush(redis_bp *bp);
/* Sends the net changes when sub is CONNECTED, frees entries neither wanted nor subscribed and
 * lets the waiters go that can go. 0, or -1 when a command could not be sent (the caller fails). */
int redis_bp__flush(redis_bp *bp);
/* Subscribed while wanted as a room/namespace channel or held open by a module. */
int redis_bp__chan_wanted(const bp_chan *e);
/* Puts e on the dirty list (the next flush looks at it). */
void redis_bp__chan_mark_dirty(redis_bp *bp, bp_chan *e);
/* A new sub connection is CONNECTED: every wanted channel, then the canary channel last (its
 * confirmation comes after every earlier one). 0, or -1 (the caller fails). */
int redis_bp__resync(redis_bp *bp);
/* The sub connection is gone: every entry is unsent, unwanted ones are freed, waiters go. */
void redis_bp__subs_reset(redis_bp *bp);
/* The shards confirmed more: waiters whose targets are reached go. */
void redis_bp__waiters_check(redis_bp *bp);
/* Redis confirmed one more (P)SUBSCRIBE channel: waiters whose target is reached go. */
void redis_bp__sub_confirmed(redis_bp *bp);
/* A when_subscribed caller; it goes at the next flush or after. */
void redis_bp__waiter_add(redis_bp *bp, void (*cb)(void *arg, int live), void *arg);
/* free: waiters told live = 0, every entry freed. */
void redis_bp__subs_dispose(redis_bp *bp);

#endif
