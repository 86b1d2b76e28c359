/*
 * redis_sentinel.h: where the master is, according to Redis Sentinel. Private (src/):
 * implemented in redis_sentinel.c; its owner is the Redis backplane (backplane_redis_phase.c),
 * which asks before every connection attempt. docs/redis.md ("Sentinel") tells the whole story.
 *
 * Two jobs, each on its own redis_conn to one sentinel at a time:
 *   - find: asks `SENTINEL GET-MASTER-ADDR-BY-NAME <name>` of the sentinels in turn, starting
 *     with the one that answered last, until one names the master; a sentinel that is down,
 *     slow (1 s), refuses, or does not know the name is skipped. The answer (or the reason none
 *     came) reaches the caller's callback, from the loop.
 *   - watch: a SUBSCRIBE to `+switch-master` on one sentinel (moving to the next when it fails,
 *     after a short backoff). When the sentinels promote a new master for our name, on_switch
 *     gets its address at once, so the backplane reconnects without waiting for a timeout.
 * Sentinel addresses may be names: they are resolved with getaddrinfo_a, off the loop.
 *
 * What it does not do: no connection to the master itself and no role check (the backplane
 * checks ROLE on every new master connection and treats READONLY as "ask again"); no sentinel
 * discovery beyond the configured list (SENTINEL SENTINELS): the list is the deployment's.
 *
 * Ownership: the sentinel object owns its two connections, its timers and the resolver
 * requests; rc_sentinel_free releases everything, including a find in progress (whose callback
 * is then never called). TLS: the SSL_CTX is borrowed (the backplane's), used when the URL is
 * rediss:// (sentinels then speak TLS too).
 *
 * API in call order: rc_sentinel_new -> rc_sentinel_watch -> rc_sentinel_find (any number of
 * times, one at a time) -> rc_sentinel_free.
 */
#ifndef ROOMCAST_REDIS_SENTINEL_H
#define ROOMCAST_REDIS_SENTINEL_H

#include "roomcast/redis_config.h"

#include <stdint.h>

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct rc_sentinel rc_sentinel;

/* The answer of a find: host (an address, or a name if the sentinels announce host names) and
 * port of the master, or host NULL and why. */
typedef void (*rc_sentinel_found_fn)(void *arg, const char *host, int port, const char *why);
/* The sentinels switched our master to host:port. */
typedef void (*rc_sentinel_switch_fn)(void *arg, const char *host, int port);

/* cfg (borrowed, must outlive the object) gives the sentinels, the master's name and the
 * sentinels' credentials; ssl_ctx NULL for plain TCP; node_id names the connections in CLIENT
 * LIST ("roomcast:<node>:sentinel" and ":sentinel-watch"). */
rc_sentinel *rc_sentinel_new(struct event_base *base, const rc_redis_config *cfg, SSL_CTX *ssl_ctx,
                             const char *node_id, rc_sentinel_switch_fn on_switch, void *arg);
/* Starts watching +switch-master. */
void rc_sentinel_watch(rc_sentinel *s);
/* Asks the sentinels; fn gets the answer from the loop. A find already running is replaced
 * (its callback is not called). */
void rc_sentinel_find(rc_sentinel *s, rc_sentinel_found_fn fn, void *arg);
/* Stops a find in progress without answering it. */
void rc_sentinel_cancel(rc_sentinel *s);
void rc_sentinel_free(rc_sentinel *s);

/* Counters for /metrics (backplane_redis.c writes them). */
typedef struct rc_sentinel_stats {
    uint64_t finds;       /* finds answered with an address */
    uint64_t failures;    /* finds that no sentinel answered */
    uint64_t switches;    /* +switch-master events for our master */
} rc_sentinel_stats;
void rc_sentinel_get_stats(const rc_sentinel *s, rc_sentinel_stats *out);

/* Pure parsers, exposed for the unit tests. */
/* "+switch-master" payload "<name> <old-ip> <old-port> <new-ip> <new-port>": when the name is
 * `name`, writes the new address and returns 0; -1 otherwise. */
int rc_sentinel_parse_switch(const char *msg, size_t len, const char *name, char *ip, size_t iplen,
                             int *port);

#endif
