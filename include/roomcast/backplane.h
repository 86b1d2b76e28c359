/*
 * backplane.h: how a node exchanges room traffic with the other nodes. One interface, two
 * implementations: the embedded single-node backplane (src/backplane_local.c) and Redis pub/sub
 * (our own connections on the node's libevent loop, src/redis_conn.c; its files are listed in
 * src/backplane_redis.h).
 *
 * Delivery model: the node publishes a message with origin = its node id and, once publish has
 * accepted it (0), delivers it to its own local sockets itself, at once; a refused publish (-1)
 * is delivered to nobody. So publish decides acceptance before anything leaves: it checks and
 * encodes the message and queues it within its bounds, and what it accepts it does not refuse
 * later (the bytes go out when the loop next writes). A backplane hands the node (on_message) only
 * messages from *other* publishers (other nodes or backends): it drops those whose origin is the
 * node's own id, so no node ever delivers its own message twice.
 *
 * Subscriptions: the node calls room_open when a room gets its first local member and
 * room_close when it loses its last one, and ns_open for every namespace it serves; a Redis
 * backplane (un)subscribes P:room:<ns>:<room> / P:ns:<ns> accordingly (batched and pipelined),
 * so a node never receives traffic for rooms it has no member of.
 *
 * Channels and envelopes: docs/redis.md.
 *
 * Configuration: the composition root (node.c) creates a backplane; the Redis one takes the few
 * settings it needs (rc_backplane_redis_settings), not the node's whole configuration.
 *
 * Ownership: a message passed to publish is borrowed for the call. A message passed to
 * on_message is valid only during the callback.
 */
#ifndef ROOMCAST_BACKPLANE_H
#define ROOMCAST_BACKPLANE_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/message.h"

struct event_base;
struct evbuffer;
struct cJSON;
struct rc_redis_config;

typedef struct rc_backplane_callbacks {
    /* A message from another publisher for a room/namespace this node subscribed to. */
    void (*on_message)(void *arg, const rc_bp_message *msg);
    /* The backplane became usable (up = 1) or not (up = 0). Readiness follows it. After a
     * reconnect (up = 1 again) Redis may have restarted empty: re-register what the node owns. */
    void (*on_state)(void *arg, int up);
    /* A message on a raw channel opened with rc_redis_channel_open (redis_cmd.h); may be NULL. */
    void (*on_raw)(void *arg, const char *channel, const char *payload, size_t len);
    /* A message on a channel starting with a prefix opened with rc_redis_pattern_open
     * (redis_cmd.h): prefix as it was given, channel the one it came on; may be NULL. Never
     * confused with on_raw: a raw channel whose name looks like a pattern ("P:status:*" for a
     * user "*") is a channel of its own. */
    void (*on_pattern)(void *arg, const char *prefix, const char *channel, const char *payload, size_t len);
    /* The backplane can never work with this configuration (a Redis TLS certificate that cannot
     * be verified before the first successful connection): reason says why, naming the file.
     * The backplane stays down; the node stops. May be NULL. */
    void (*on_fatal)(void *arg, const char *reason);
    void *arg;
} rc_backplane_callbacks;

typedef struct rc_backplane rc_backplane;

/* Where and how long a kept emit is recorded (connection state recovery, docs/recovery.md). */
typedef struct rc_bp_keep {
    const char *history_key;     /* the namespace's stream, P:history:<ns> (keys.h) */
    unsigned window_ms;          /* entries older than this are trimmed (XTRIM MINID ~) */
    unsigned long max_length;    /* approximate cap of the stream (XADD MAXLEN ~) */
    const char *once_key;        /* NULL, or a key that makes the emit kept and published once
                                    cluster-wide (SET NX PX window_ms): every node may ask */
    /* Optional (NULL: nobody is told). When publish_kept returned 0, called exactly once, from
     * the loop, with failed = 1 when Redis answered an error (nothing was kept nor published:
     * Redis refuses writes, -OOM or -NOREPLICAS for example), 0 otherwise (kept; found kept
     * already under once_key; or no answer at all, the connection lost or the backplane freed:
     * unknown). Never called when publish_kept returns -1. */
    void (*done)(void *arg, int failed);
    void *done_arg;
} rc_bp_keep;

typedef struct rc_backplane_ops {
    /* 0 when accepted for delivery to the other nodes, -1 when refused: the backplane is down,
     * its backlog is full, or it cannot carry the message (a namespace with ':'). The caller then
     * delivers it to nobody and refuses the client's relay (or the backend's publish) with an
     * error instead of queueing without bound. */
    int (*publish)(rc_backplane *bp, const rc_bp_message *msg);
    /* Optional (NULL: the backplane keeps no history; the embedded one). An RC_BP_EMIT without
     * attachments is appended to keep->history_key and published with its offset (the stream
     * id) in one script, so its offset exists before anyone receives it and every node hears
     * kept emits in the order of the stream. The publishing node is told too: on_message gets
     * its own kept emits (msg->offset set), and it delivers them then, not at once. Accepted
     * and refused as publish is. */
    int (*publish_kept)(rc_backplane *bp, const rc_bp_message *msg, const rc_bp_keep *keep);
    void (*room_open)(rc_backplane *bp, const char *ns, const char *room);
    void (*room_close)(rc_backplane *bp, const char *ns, const char *room);
    void (*ns_open)(rc_backplane *bp, const char *ns);
    int (*is_up)(const rc_backplane *bp);
    /* Optional (NULL: subscriptions take effect at once). cb runs from the loop with live = 1
     * once every room_open/ns_open made so far is confirmed by the broker (or can no longer be),
     * so a client is told "joined" only when messages for the room can reach this node; with
     * live = 0 when the backplane is freed first (release the arg only). */
    void (*when_subscribed)(rc_backplane *bp, void (*cb)(void *arg, int live), void *arg);
    /* Appends this backplane's metrics in Prometheus text format (may append nothing). */
    void (*write_metrics)(const rc_backplane *bp, struct evbuffer *out);
    void (*free)(rc_backplane *bp);
} rc_backplane_ops;

/* Counted once, here, whichever backplane runs: the implementation counts what it accepts,
 * refuses and hands to on_message; the node counts the publishes it refuses itself because the
 * backplane is down. */
typedef struct rc_backplane_stats {
    uint64_t publishes;          /* accepted for delivery to the other nodes */
    uint64_t publish_failures;   /* refused, or (Redis) answered with an error */
    uint64_t receives;           /* messages from other publishers handed to on_message */
} rc_backplane_stats;

struct rc_backplane {
    const rc_backplane_ops *ops;
    rc_backplane_stats stats;
};

/* Appends roomcast_backplane_* (from bp->stats), then the implementation's own families. */
void rc_backplane_write_metrics(const rc_backplane *bp, struct evbuffer *out);

/* Whether an emit a backend asked for (the Redis envelope, POST /api/publish, P:notify) may go to
 * Socket.IO clients: the checks a client's own packet passes in src/sio.c, since socket.io-client
 * drops the whole connection ("parse error") on a packet it cannot parse. The event name is
 * non-empty and not reserved (rc_sio_event_reserved); at most RC_SIO_MAX_ATTACHMENTS
 * attachments; with attachments, every {"_placeholder":true,"num":n} in args is an integer n in
 * [0, attachment_count) (rc_sio_count_placeholders; without attachments such objects are plain
 * data to the client). args is the arguments array (NULL: none). Returns NULL, or a static
 * reason naming what is wrong. */
const char *rc_bp_emit_check(const char *event, const struct cJSON *args, size_t attachment_count);

/* What the Redis backplane needs to start; borrowed for rc_backplane_redis_new (it copies). */
typedef struct rc_backplane_redis_settings {
    const char *url;      /* redis[s]://[[user]:password@]host[:port][/db] or unix:///path
                             (docs/redis.md); may be NULL when redis->sentinels or redis->cluster
                             is given */
    const char *prefix;   /* key and channel prefix P; NULL or "" = "roomcast" */
    const char *node_id;  /* this node's id (origin, canary, CLIENT SETNAME); NULL or "" = "node" */
    const struct rc_redis_config *redis; /* TLS files, sentinels, cluster (redis_config.h); NULL:
                                            none. Borrowed: it must outlive the backplane. */
} rc_backplane_redis_settings;

rc_backplane *rc_backplane_local_new(struct event_base *base, const rc_backplane_callbacks *cb);
/* Returns NULL and logs when settings->url is missing or refused (redis_url.h); otherwise the
 * backplane, which connects from the loop (on_state(1) once usable). */
rc_backplane *rc_backplane_redis_new(struct event_base *base,
                                     const rc_backplane_redis_settings *settings,
                                     const rc_backplane_callbacks *cb);

#endif
