/*
 * backplane.h: how a node exchanges room traffic with the other nodes. One interface, two
 * implementations: the embedded single-node backplane (src/backplane_local.c) and Redis pub/sub
 * (hiredis async on the node's libevent loop; its files are listed in src/backplane_redis.h).
 *
 * Delivery model: the node always delivers to its own local sockets itself, at once, and then
 * publishes the message with origin = its node id. A backplane hands the node (on_message) only
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

typedef struct rc_backplane_callbacks {
    /* A message from another publisher for a room/namespace this node subscribed to. */
    void (*on_message)(void *arg, const rc_bp_message *msg);
    /* The backplane became usable (up = 1) or not (up = 0). Readiness follows it. After a
     * reconnect (up = 1 again) Redis may have restarted empty: re-register what the node owns. */
    void (*on_state)(void *arg, int up);
    /* A message on a raw channel opened with rc_redis_channel_open (redis_cmd.h); may be NULL. */
    void (*on_raw)(void *arg, const char *channel, const char *payload, size_t len);
    void *arg;
} rc_backplane_callbacks;

typedef struct rc_backplane rc_backplane;

typedef struct rc_backplane_ops {
    /* 0 when accepted for delivery to the other nodes, -1 when the backplane is down (the
     * caller refuses the client's relay with an error instead of queueing without bound). */
    int (*publish)(rc_backplane *bp, const rc_bp_message *msg);
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

struct rc_backplane {
    const rc_backplane_ops *ops;
};

/* What the Redis backplane needs to start; borrowed for rc_backplane_redis_new (it copies). */
typedef struct rc_backplane_redis_settings {
    const char *url;      /* redis://[[user]:password@]host[:port][/db] (docs/redis.md) */
    const char *prefix;   /* key and channel prefix P; NULL or "" = "roomcast" */
    const char *node_id;  /* this node's id (origin, canary, CLIENT SETNAME); NULL or "" = "node" */
} rc_backplane_redis_settings;

rc_backplane *rc_backplane_local_new(struct event_base *base, const rc_backplane_callbacks *cb);
/* Returns NULL and logs when settings->url is missing or refused (redis_url.h); otherwise the
 * backplane, which connects from the loop (on_state(1) once usable). */
rc_backplane *rc_backplane_redis_new(struct event_base *base,
                                     const rc_backplane_redis_settings *settings,
                                     const rc_backplane_callbacks *cb);

#endif
