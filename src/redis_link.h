/*
 * redis_link.h: the lifecycle of a Redis connection that its owner runs around redis_conn (which
 * owns only the I/O: src/redis_conn.h), written once for every owner: the backplane's sub/cmd
 * pair (backplane_redis_phase.c), each Redis Cluster master's pair (backplane_redis_shard.c) and
 * the sentinel connections (redis_sentinel.c). Private (src/): implemented in redis_link.c.
 *
 *   - the timings (connect, command, canary, backoff), in one place;
 *   - the jittered exponential backoff between attempts (redis_link_backoff);
 *   - the asynchronous name lookup that precedes every attempt (glibc getaddrinfo_a, polled
 *     from the owner's timer: a slow or dead DNS server never blocks the loop);
 *   - the canary round trip: a PUBLISH (or SPUBLISH) of "<nonce>:<seq>" on the owner's command
 *     connection that must come back on its subscriber within REDIS_LINK_CANARY_TIMEOUT_MS.
 *
 * What it does not do: it holds no event and no connection and fails nothing itself: the owner's
 * one tick asks it (redis_conn_overdue, redis_link_canary_lost, its own deadline) and decides
 * what a failure tears down (for the backplane: every connection at once, docs/redis.md).
 *
 * API in call order: resolve: redis_link_resolve_start -> redis_link_resolve_poll until not 0
 * -> redis_link_resolve_dispose (also to cancel). Canary: redis_link_canary_send ->
 * redis_link_canary_received / redis_link_canary_lost -> redis_link_canary_due -> send ...;
 * redis_link_canary_reset at each new attempt. Backoff: redis_link_backoff after each failure,
 * the step set to 0 once the link works.
 */
#ifndef ROOMCAST_REDIS_LINK_H
#define ROOMCAST_REDIS_LINK_H

#include "redis_conn.h"

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

/* Timings. Detection of a silent subscription is bounded by CANARY_INTERVAL + CANARY_TIMEOUT
 * (+ the owner's tick); a dead connection (EOF, RST) is detected at once by redis_conn. */
#define REDIS_LINK_CONNECT_TIMEOUT_MS 2000ull  /* DNS + TCP connect + handshake replies */
#define REDIS_LINK_COMMAND_TIMEOUT_MS 3000ull  /* oldest unanswered command */
#define REDIS_LINK_CANARY_INTERVAL_MS 1000ull  /* a canary this often while up */
#define REDIS_LINK_CANARY_TIMEOUT_MS 2000ull   /* ... must come back within this */
/* ... unless the subscriber is visibly delivering (messages arrived since the canary was sent):
 * then the canary is only queued behind a backlog, and gets up to this long. */
#define REDIS_LINK_CANARY_BUSY_MAX_MS 30000ull
#define REDIS_LINK_BACKOFF_MIN_MS 100ull       /* first retry after a failure, doubling ... */
#define REDIS_LINK_BACKOFF_MAX_MS 5000ull      /* ... up to this; each delay jittered to [d/2, d] */
#define REDIS_LINK_RESOLVE_POLL_MS 5ull        /* getaddrinfo_a completion polling */

struct timeval redis_link_tv(uint64_t ms);

/* The next delay after a failure: *step_ms (0 at first, or after success) doubles from
 * BACKOFF_MIN_MS up to BACKOFF_MAX_MS, and the delay returned is drawn in [step/2, step]. */
uint64_t redis_link_backoff(uint64_t *step_ms);

/* 1 when host is a numeric IPv4 or IPv6 address (no lookup needed). */
int redis_link_numeric(const char *host);

/* One getaddrinfo_a request. All-zero is idle. The request (and the name it reads) belongs to
 * this struct until it completed or was cancelled: only redis_link_resolve_dispose frees it. */
typedef struct redis_link_resolve {
    struct gaicb req;
    struct addrinfo hints;
    char *name;
    int busy;                     /* started, completion not seen yet */
} redis_link_resolve;

/* Disposes of any earlier request, then looks host up. 0, or -1. */
int redis_link_resolve_start(redis_link_resolve *r, const char *host);
/* 1 when a lookup of host started and has not completed yet (its answer can be waited for). */
int redis_link_resolve_running(const redis_link_resolve *r, const char *host);
/* 1: done, ip filled (an IPv4 address preferred); 0: still running; -1: failed, why filled.
 * The request stays allocated until redis_link_resolve_dispose. */
int redis_link_resolve_poll(redis_link_resolve *r, char *ip, size_t iplen, char *why, size_t whylen);
/* Cancels (or waits for the resolver thread) and frees; r is idle again. Safe when idle. */
void redis_link_resolve_dispose(redis_link_resolve *r);

/* A canary round trip. All-zero is ready; the token's sequence number only grows. */
typedef struct redis_link_canary {
    uint64_t seq;                 /* last token sent: "<nonce>:<seq>" */
    int pending;                  /* sent, not back yet */
    int ok;                       /* came back in this attempt (the owner sets it) */
    uint64_t sent_ms, sent_ns, next_ms;
    double lag_s;                 /* the last round trip */
} redis_link_canary;

/* Sends "<verb> <channel> <nonce>:<seq+1>" on c (verb PUBLISH or SPUBLISH); fn gets the
 * answer (arg its argument). The next one is due CANARY_INTERVAL_MS from now either way.
 * 0, or -1 when it could not be sent (the command timeout will tell). */
int redis_link_canary_send(redis_link_canary *k, redis_conn *c, const char *verb,
                           const char *channel, size_t chanlen, const char *nonce,
                           redis_conn_reply_fn fn, void *arg);
/* A message on the canary channel: 1 when it is the pending token (pending cleared, lag_s
 * set), 0 for anything else (an old token, another instance's). */
int redis_link_canary_received(redis_link_canary *k, const char *nonce, const char *payload,
                               size_t len);
/* 1 when the pending canary is overdue and the subscriber did not deliver anything since it
 * was sent (last_push_ms: its last message), or waited CANARY_BUSY_MAX_MS even so. */
int redis_link_canary_lost(const redis_link_canary *k, uint64_t now_ms, uint64_t last_push_ms);
/* 1 when none is pending and the next is due. */
int redis_link_canary_due(const redis_link_canary *k, uint64_t now_ms);
/* A new attempt: nothing pending, not ok (the sequence goes on). */
void redis_link_canary_reset(redis_link_canary *k);

#endif
