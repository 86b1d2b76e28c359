/*
 * backplane_redis_phase.c: the Redis backplane's two connections and its phases over them.
 * Shared state and the other files: src/backplane_redis.h; what an operator sees (readiness,
 * timings, the canary): docs/redis.md ("Liveness: reconnects and the canary").
 *
 * The phase (bp->phase) is readiness: UP only while delivery demonstrably works.
 *
 *   WAITING --retry timer--> RESOLVING --address--> CONNECTING --both CONNECTED--> SYNCING
 *      ^                                                                              |
 *      |                               canary received after resubscribe confirmed    v
 *      +----------------- any failure (redis_bp__fail: both closed, backoff) <----- UP
 *
 *   - RESOLVING: the address is found afresh at every attempt. The resolver hook (bp->resolver,
 *     backplane_redis.h; Sentinel's master lookup) names a host and port, by default the URL's;
 *     a name is then looked up with glibc getaddrinfo_a so a slow or dead DNS server never
 *     blocks the event loop (skipped for a numeric host and a unix socket).
 *   - SYNCING: the sub connection resubscribes every wanted channel (batched), then SUBSCRIBEs
 *     the canary channel last (backplane_redis_subs.c); its confirmation proves every earlier
 *     SUBSCRIBE was processed. Then one canary PUBLISH on cmd must come back on sub. Only then
 *     UP and on_state(1).
 *   - UP: a canary every CANARY_INTERVAL_MS; a canary not back within CANARY_TIMEOUT_MS, a
 *     command unanswered for COMMAND_TIMEOUT_MS, an error reply to AUTH/SELECT/SUBSCRIBE, or
 *     either connection closing => redis_bp__fail: on_state(0) (if it was UP), both connections
 *     torn down, retry after a jittered exponential backoff (BACKOFF_MIN_MS doubling to
 *     BACKOFF_MAX_MS, reset once UP). Phases other than UP have a deadline too (connect, sync).
 *   - One failure tears down both connections on purpose: one recovery path to test, and a
 *     half-working pair (publishing but deaf) would report ready while rooms hear nothing.
 *
 * Here too: the event callbacks that can fail the backplane (the tick, the retry timer, and the
 * subscription flush, whose sending lives in backplane_redis_subs.c).
 *
 * TLS: a connection whose handshake fails on trust (the server's certificate cannot be verified,
 * or the server refused ours) before the backplane was ever UP is fatal: on_fatal tells the node,
 * which exits with the reason naming the CA file, instead of retrying a configuration that cannot
 * work. Once it has been UP, the same failure is retried like any other (a certificate rotated
 * on the server may be fixed without restarting every node).
 *
 * Error classes: a command on cmd answered READONLY (a failover demoted the Redis we write to)
 * fails the backplane, so the next attempt finds the master again through the resolver.
 *
 * Cluster mode (bp->cluster): the two connections above are the "home" pair, opened to a seed
 * node; the home cmd asks it for the topology, then every master gets its own pair
 * (backplane_redis_shard.c). CONNECTING ends when all of them are CONNECTED, SYNCING when the
 * home canary and every shard's canary came back; any failure of any of them tears all down.
 *
 * What it does not do: no queueing while down; no retry of a failed PUBLISH (at most once,
 * docs/redis.md).
 *
 * Ownership: the two redis_conn and the resolver request are the backplane's; free closes and
 * disposes of the connections (backplane_redis.c) and calls redis_bp__resolve_dispose.
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/log.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Timing. Detection of a silent subscription is bounded by CANARY_INTERVAL_MS + CANARY_TIMEOUT_MS
 * (+ one TICK_MS); a dead connection (EOF, RST) is detected at once. The backlog bounds
 * (commands in flight, unsent bytes) are redis_conn.c's. */
static const uint64_t CONNECT_TIMEOUT_MS = 2000; /* DNS + TCP connect + handshake replies */
static const uint64_t COMMAND_TIMEOUT_MS = 3000; /* oldest unanswered command; resync */
static const uint64_t CANARY_INTERVAL_MS = 1000; /* a canary PUBLISH this often while UP */
static const uint64_t CANARY_TIMEOUT_MS = 2000;  /* ... must come back on sub within this */
/* ... unless the sub connection is visibly delivering (messages arrived since the canary was
 * sent): then the canary is only queued behind a backlog, and gets up to this long. */
static const uint64_t CANARY_BUSY_MAX_MS = 30000;
static const uint64_t TICK_MS = 100;             /* timeout checks run this often */
static const uint64_t BACKOFF_MIN_MS = 100;      /* first retry after a failure, doubling ... */
static const uint64_t BACKOFF_MAX_MS = 5000;     /* ... up to this; each delay jittered to [d/2, d] */
static const uint64_t RESOLVE_POLL_MS = 5;       /* getaddrinfo_a completion polling */

static const char *const phase_names[] = {"waiting", "resolving", "connecting", "syncing", "up",
                                          "closed"};

typedef struct bp_resolve {
    struct gaicb req;
    struct addrinfo hints;
    char *name;           /* req.ar_name: owned here, the resolver thread may still read it */
} bp_resolve;

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t rand_below(uint64_t n)
{
    uint64_t r;
    rc_random_bytes(&r, sizeof(r));
    return n ? r % n : 0;
}

static struct timeval ms_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static void set_state(redis_bp *bp, int up)
{
    bp->in_callback++;
    if (bp->cb.on_state) bp->cb.on_state(bp->cb.arg, up);
    bp->in_callback--;
}

/* ---- the canary ---------------------------------------------------------------------------- */

/* The canary PUBLISH's answer (redis_conn_reply_fn). */
static void canary_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    redis_bp *bp = arg;
    if (!reply) return; /* the connection went away: that failure was handled already */
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* nobody subscribed to our own canary channel: the sub connection is deaf */
        bp->canary_failures++;
        redis_bp__fail(bp, "canary channel has no subscriber");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        redis_bp__fail(bp, "canary PUBLISH refused");
    }
}

static void send_canary(redis_bp *bp)
{
    char token[40];
    const char *argv[3] = {"PUBLISH", bp->canary_channel, token};
    size_t lens[3];
    uint64_t now = rc_now_mono_ms();

    snprintf(token, sizeof(token), "%s:%" PRIu64, bp->canary_nonce, ++bp->canary_seq);
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    bp->canary_next_ms = now + CANARY_INTERVAL_MS;
    if (redis_conn_command(&bp->cmd, canary_on_reply, bp, 3, argv, lens) != 0)
        return; /* the command timeout will tell */
    bp->canary_pending = 1;
    bp->canary_sent_ms = now;
    bp->canary_sent_ns = rc_now_mono_ns();
}

/* SYNCING ends when the home canary and (cluster) every shard's came back. */
static void maybe_up(redis_bp *bp)
{
    if (bp->phase != BP_SYNCING || !bp->canary_ok || (bp->cluster && !redis_bp__shards_ok(bp)))
        return;
    char url[300];
    bp->phase = BP_UP;
    bp->ever_up = 1;
    bp->backoff_ms = 0;
    rc_log_info("redis_up", "url=%s address=%s:%d channels=%zu canary_ms=%.1f",
                rc_redis_url_redacted(&bp->url, url, sizeof(url)), bp->target_host ? bp->target_host : "-",
                bp->target_port, bp->nsubscribed, bp->canary_lag_s * 1000.0);
    set_state(bp, 1);
}

void redis_bp__maybe_probe(redis_bp *bp)
{
    if (bp->phase == BP_CONNECTING && bp->sub.state == REDIS_CONN_CONNECTED &&
        bp->cmd.state == REDIS_CONN_CONNECTED && (!bp->cluster || redis_bp__shards_connected(bp))) {
        if (redis_bp__sentinel_role_pending(bp)) return; /* behind Sentinel: ROLE says master first */
        bp->phase = BP_SYNCING;
        bp->deadline_ms = rc_now_mono_ms() + COMMAND_TIMEOUT_MS + CANARY_TIMEOUT_MS;
    }
    if (bp->phase != BP_SYNCING) return;
    if (bp->sub_synced && !bp->canary_pending && !bp->canary_ok) send_canary(bp);
    if (bp->cluster) redis_bp__shards_probe(bp);
    maybe_up(bp);
}

void redis_bp__on_canary(redis_bp *bp, const char *payload, size_t len)
{
    char token[40];
    snprintf(token, sizeof(token), "%s:%" PRIu64, bp->canary_nonce, bp->canary_seq);
    if (!bp->canary_pending || len != strlen(token) || memcmp(payload, token, len) != 0) return;
    bp->canary_pending = 0;
    bp->canary_lag_s = (double)(rc_now_mono_ns() - bp->canary_sent_ns) / 1e9;
    if (bp->phase != BP_SYNCING) return;
    bp->canary_ok = 1;
    maybe_up(bp);
}

/* ---- the connections ----------------------------------------------------------------------- */

void redis_bp__on_conn_ready(void *arg, redis_conn *c)
{
    redis_bp *bp = arg;
    if (c == &bp->sub && redis_bp__resync(bp) != 0) {
        redis_bp__fail(bp, "SUBSCRIBE could not be sent");
        return;
    }
    if (c == &bp->cmd && bp->cluster) redis_bp__cluster_ask(bp); /* then the shards connect */
    redis_bp__maybe_probe(bp);
}

void redis_bp__on_error_class(void *arg, redis_conn *c, int cls, const struct redisReply *reply)
{
    redis_bp *bp = arg;
    if (cls == REDIS_ERR_READONLY) redis_bp__fail(bp, "READONLY: the Redis written to is a replica now");
}

/* What a trust failure before the first UP means, in words naming the file at fault. */
static void tls_fatal(redis_bp *bp, const char *reason)
{
    const rc_redis_config *r = bp->rcfg;
    char msg[900];
    snprintf(msg, sizeof(msg), "Redis TLS to %s:%d refused: %s (CA: %s%s%s%s%s%s%s)",
             bp->target_host ? bp->target_host : "?", bp->target_port, reason,
             r->ca_file ? r->ca_file : "the system's CAs", r->ca_file ? " from " : "",
             r->ca_file ? r->ca_src : "", r->cert_file ? "; client certificate: " : "",
             r->cert_file ? r->cert_file : "", r->cert_file ? " from " : "", r->cert_file ? r->cert_src : "");
    rc_log_error("redis_tls_refused", "error=\"%s\"", msg);
    bp->phase = BP_CLOSED;
    redis_conn_close(&bp->sub);
    redis_conn_close(&bp->cmd);
    if (bp->cb.on_fatal) {
        bp->in_callback++;
        bp->cb.on_fatal(bp->cb.arg, msg);
        bp->in_callback--;
    }
}

void redis_bp__on_conn_fail(void *arg, redis_conn *c, const char *reason)
{
    redis_bp *bp = arg;
    if (c->fail_class == REDIS_FAIL_TLS_TRUST && !bp->ever_up && bp->phase != BP_CLOSED) {
        tls_fatal(bp, reason);
        return;
    }
    redis_bp__fail(bp, reason);
}

static void connect_both(redis_bp *bp, const char *ip)
{
    redis_conn_target t = {
        .ip = ip,
        .port = bp->target_port,
        .path = bp->url.path,
        .ssl_ctx = bp->ssl_ctx,
        .tls_name = bp->server_name ? bp->server_name : bp->target_host,
    };
    bp->phase = BP_CONNECTING;
    if (redis_conn_open(&bp->sub, &t, &bp->url, bp->sub_name) != 0 ||
        redis_conn_open(&bp->cmd, &t, &bp->url, bp->cmd_name) != 0)
        redis_bp__fail(bp, "could not start connecting");
}

/* ---- resolving ----------------------------------------------------------------------------- */

static void resolve_free(bp_resolve *res)
{
    if (res->req.ar_result) freeaddrinfo(res->req.ar_result);
    rc_free(res->name);
    rc_free(res);
}

/* RESOLVING: polls getaddrinfo_a; prefers an IPv4 address, as hiredis itself does. */
static void poll_resolve(redis_bp *bp)
{
    bp_resolve *res = bp->resolve;
    int err = gai_error(&res->req);
    if (err == EAI_INPROGRESS) {
        struct timeval tv = ms_tv(RESOLVE_POLL_MS);
        event_add(bp->retry_ev, &tv);
        return;
    }
    bp->resolve = NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    if (err == 0) {
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *ai = res->req.ar_result; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
            if (!pick && ai->ai_family == AF_INET6) pick = ai;
        }
        if (pick && pick->ai_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, sizeof(ip));
        else if (pick)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip,
                      sizeof(ip));
    }
    resolve_free(res);
    if (!ip[0]) {
        char reason[160];
        snprintf(reason, sizeof(reason), "cannot resolve %s: %s", bp->target_host,
                 err ? gai_strerror(err) : "no address");
        redis_bp__fail(bp, reason);
        return;
    }
    connect_both(bp, ip);
}

void redis_bp__resolve_dispose(redis_bp *bp)
{
    if (!bp->resolve) return;
    /* a resolver thread may still be writing into the request: cancel, or wait for it */
    if (gai_cancel(&bp->resolve->req) == EAI_NOTCANCELED) {
        const struct gaicb *list[1] = {&bp->resolve->req};
        while (gai_error(&bp->resolve->req) == EAI_INPROGRESS) gai_suspend(list, 1, NULL);
    }
    resolve_free(bp->resolve);
    bp->resolve = NULL;
}

/* ---- attempts and failures ----------------------------------------------------------------- */

static void attempt_start(redis_bp *bp)
{
    if (bp->attempts++ > 0) bp->reconnects++;
    bp->deadline_ms = rc_now_mono_ms() + CONNECT_TIMEOUT_MS;
    if (bp->cluster) redis_bp__cluster_next_seed(bp); /* the home connections' seed */
    bp->phase = BP_RESOLVING;
    if (bp->url.path) {
        connect_both(bp, NULL);
        return;
    }
    if (bp->resolver.start) {
        bp->resolver.start(bp->resolver.arg, bp); /* calls redis_bp__resolved later */
        return;
    }
    redis_bp__resolved(bp, bp->url.host, bp->url.port);
}

void redis_bp__resolved(redis_bp *bp, const char *host, int port)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (bp->phase != BP_RESOLVING) return;
    if (host != bp->target_host) {
        rc_free(bp->target_host);
        bp->target_host = rc_strdup(host);
    }
    bp->target_port = port;
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
        connect_both(bp, host);
        return;
    }
    if (bp->resolve && (gai_error(&bp->resolve->req) != EAI_INPROGRESS ||
                        strcmp(bp->resolve->name, host) != 0))
        redis_bp__resolve_dispose(bp); /* a stale answer, or a lookup of another name */
    if (!bp->resolve) {
        bp_resolve *res = rc_calloc(1, sizeof(*res));
        struct gaicb *list[1] = {&res->req};
        res->hints.ai_family = AF_UNSPEC;
        res->hints.ai_socktype = SOCK_STREAM;
        res->name = rc_strdup(host);
        res->req.ar_name = res->name;
        res->req.ar_request = &res->hints;
        int err = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (err != 0) {
            resolve_free(res);
            redis_bp__fail(bp, "getaddrinfo_a failed");
            return;
        }
        bp->resolve = res;
    }
    poll_resolve(bp);
}

void redis_bp__on_retry(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    if (bp->phase == BP_WAITING) attempt_start(bp);
    else if (bp->phase == BP_RESOLVING && bp->resolve) poll_resolve(bp);
}

void redis_bp__retry_now(redis_bp *bp)
{
    if (bp->phase != BP_WAITING) return;
    struct timeval now = {0, 0};
    bp->backoff_ms = 0;
    event_add(bp->retry_ev, &now);
}

void redis_bp__fail(redis_bp *bp, const char *reason)
{
    if (bp->phase == BP_WAITING || bp->phase == BP_CLOSED) return;
    int was_up = bp->phase == BP_UP;
    if (bp->phase == BP_RESOLVING && bp->resolver.cancel) bp->resolver.cancel(bp->resolver.arg, bp);
    const char *phase = phase_names[bp->phase];

    /* Both down together; what they leave unanswered is answered NULL from the loop. */
    redis_conn_close(&bp->sub);
    redis_conn_close(&bp->cmd);
    if (bp->cluster) redis_bp__shards_close(bp);
    redis_bp__subs_reset(bp);
    bp->canary_pending = 0;
    bp->canary_ok = 0;
    bp->phase = BP_WAITING;

    uint64_t step = bp->backoff_ms ? bp->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (step > BACKOFF_MAX_MS) step = BACKOFF_MAX_MS;
    bp->backoff_ms = step;
    uint64_t delay = step / 2 + rand_below(step / 2 + 1);
    struct timeval tv = ms_tv(delay);
    event_add(bp->retry_ev, &tv);

    rc_log_warn("redis_down", "reason=\"%s\" phase=%s retry_ms=%" PRIu64, reason, phase, delay);
    if (was_up) set_state(bp, 0);
}

/* ---- timers -------------------------------------------------------------------------------- */

static void check_ring(redis_bp *bp, redis_conn *c, uint64_t now_ns)
{
    if (bp->phase == BP_WAITING || !redis_conn_overdue(c, now_ns, COMMAND_TIMEOUT_MS * 1000000ull))
        return;
    bp->command_timeouts++;
    redis_bp__fail(bp, c == &bp->sub ? "sub command timed out" : "command timed out");
}

void redis_bp__on_tick(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    uint64_t now = rc_now_mono_ms();
    /* A tick that comes late means this loop was busy (a burst of deliveries): replies may be
     * waiting unread in our own sockets, so judge no timeout on this tick. */
    int late = bp->last_tick_ms && now - bp->last_tick_ms > 500;
    bp->last_tick_ms = now;
    if (late && bp->phase == BP_UP) return;

    switch (bp->phase) {
    case BP_RESOLVING:
    case BP_CONNECTING:
    case BP_SYNCING:
        if (now >= bp->deadline_ms) {
            if (bp->phase == BP_SYNCING && bp->canary_pending) bp->canary_failures++;
            redis_bp__fail(bp, bp->phase == BP_SYNCING ? "resubscribe/canary timed out"
                                                       : "connect timed out");
            return;
        }
        break;
    case BP_UP:
        if (bp->canary_pending && now - bp->canary_sent_ms >= CANARY_TIMEOUT_MS) {
            int delivering = bp->sub_last_push_ms >= bp->canary_sent_ms &&
                             now - bp->canary_sent_ms < CANARY_BUSY_MAX_MS;
            if (!delivering) {
                bp->canary_failures++;
                redis_bp__fail(bp, "canary not received");
                return;
            }
        }
        if (!bp->canary_pending && now >= bp->canary_next_ms) send_canary(bp);
        if (bp->cluster && redis_bp__shards_tick(bp, now) != 0) return;
        break;
    default:
        return;
    }
    uint64_t now_ns = rc_now_mono_ns();
    check_ring(bp, &bp->cmd, now_ns);
    check_ring(bp, &bp->sub, now_ns);
}

void redis_bp__on_flush(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    bp->flush_scheduled = 0;
    if (redis_bp__flush(bp) != 0) redis_bp__fail(bp, "SUBSCRIBE could not be sent");
}

void redis_bp__phase_start(redis_bp *bp)
{
    struct timeval tick = ms_tv(TICK_MS), now = {0, 0};
    event_add(bp->tick_ev, &tick);
    event_add(bp->retry_ev, &now); /* the first attempt runs from the loop, not from here */
}
