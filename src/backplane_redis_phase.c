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
 *     a name is then looked up (redis_link.h: glibc getaddrinfo_a) so a slow or dead DNS
 *     server never blocks the event loop (skipped for a numeric host and a unix socket).
 *   - SYNCING: the sub connection resubscribes every wanted channel (batched), then SUBSCRIBEs
 *     the canary channel last (backplane_redis_subs.c); its confirmation proves every earlier
 *     SUBSCRIBE was processed. Then one canary PUBLISH on cmd must come back on sub. Only then
 *     UP and on_state(1).
 *   - UP: a canary every CANARY_INTERVAL_MS; a canary not back within CANARY_TIMEOUT_MS, a
 *     command unanswered for COMMAND_TIMEOUT_MS (timings: src/redis_link.h, shared with the
 *     cluster shards and the sentinel connections), an error reply to AUTH/SELECT/SUBSCRIBE, or
 *     either connection closing => redis_bp__fail: on_state(0) (if it was UP), both connections
 *     torn down, retry after a jittered exponential backoff (BACKOFF_MIN_MS doubling to
 *     BACKOFF_MAX_MS, reset once UP). Phases other than UP have a deadline too (connect, sync).
 *   - One failure tears down both connections on purpose: one recovery path to test, and a
 *     half-working pair (publishing but deaf) would report ready while rooms hear nothing.
 *
 * Here too: the event callbacks that can fail the backplane (the tick, the retry timer, and the
 * subscription flush, whose sending lives in backplane_redis_subs.c). The one tick judges every
 * connection of the backplane (this pair, and the shards' through redis_bp__shards_tick); the
 * pieces it judges with (backoff, name lookup, canary round trip) are redis_link.c's, the same
 * for every pair.
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
 * disposes of the connections (backplane_redis.c) and of the lookup (redis_link_resolve_dispose).
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/log.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The timings are redis_link.h's (one set for every connection); the tick is the backplane's. */
static const uint64_t TICK_MS = 100; /* timeout checks run this often */

static const char *const phase_names[] = {"waiting", "resolving", "connecting", "syncing", "up",
                                          "closed"};

/* ---- small helpers ------------------------------------------------------------------------ */

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
    /* not sent: the command timeout will tell */
    redis_link_canary_send(&bp->canary, &bp->cmd, "PUBLISH", bp->canary_channel,
                           strlen(bp->canary_channel), bp->canary_nonce, canary_on_reply, bp);
}

/* SYNCING ends when the home canary and (cluster) every shard's came back. */
static void maybe_up(redis_bp *bp)
{
    if (bp->phase != BP_SYNCING || !bp->canary.ok || (bp->cluster && !redis_bp__shards_ok(bp)))
        return;
    char url[300];
    bp->phase = BP_UP;
    bp->ever_up = 1;
    bp->backoff_ms = 0;
    rc_log_info("redis_up", "url=%s address=%s:%d channels=%zu canary_ms=%.1f",
                rc_redis_url_redacted(&bp->url, url, sizeof(url)), bp->target_host ? bp->target_host : "-",
                bp->target_port, bp->nsubscribed, bp->canary.lag_s * 1000.0);
    set_state(bp, 1);
}

void redis_bp__maybe_probe(redis_bp *bp)
{
    if (bp->phase == BP_CONNECTING && bp->sub.state == REDIS_CONN_CONNECTED &&
        bp->cmd.state == REDIS_CONN_CONNECTED && (!bp->cluster || redis_bp__shards_connected(bp))) {
        if (redis_bp__sentinel_role_pending(bp)) return; /* behind Sentinel: ROLE says master first */
        bp->phase = BP_SYNCING;
        bp->deadline_ms = rc_now_mono_ms() + REDIS_LINK_COMMAND_TIMEOUT_MS + REDIS_LINK_CANARY_TIMEOUT_MS;
    }
    if (bp->phase != BP_SYNCING) return;
    if (bp->sub_synced && !bp->canary.pending && !bp->canary.ok) send_canary(bp);
    if (bp->cluster) redis_bp__shards_probe(bp);
    maybe_up(bp);
}

void redis_bp__on_canary(redis_bp *bp, const char *payload, size_t len)
{
    if (!redis_link_canary_received(&bp->canary, bp->canary_nonce, payload, len) ||
        bp->phase != BP_SYNCING)
        return;
    bp->canary.ok = 1;
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

/* RESOLVING: polls the lookup of target_host, then connects. */
static void poll_resolve(redis_bp *bp)
{
    char ip[INET6_ADDRSTRLEN], why[300];
    int done = redis_link_resolve_poll(&bp->resolve, ip, sizeof(ip), why, sizeof(why));
    if (done == 0) {
        struct timeval tv = redis_link_tv(REDIS_LINK_RESOLVE_POLL_MS);
        event_add(bp->retry_ev, &tv);
        return;
    }
    redis_link_resolve_dispose(&bp->resolve);
    if (done < 0) redis_bp__fail(bp, why);
    else connect_both(bp, ip);
}

/* ---- attempts and failures ----------------------------------------------------------------- */

static void attempt_start(redis_bp *bp)
{
    if (bp->attempts++ > 0) bp->reconnects++;
    bp->deadline_ms = rc_now_mono_ms() + REDIS_LINK_CONNECT_TIMEOUT_MS;
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
    if (bp->phase != BP_RESOLVING) return;
    if (host != bp->target_host) {
        rc_free(bp->target_host);
        bp->target_host = rc_strdup(host);
    }
    bp->target_port = port;
    if (redis_link_numeric(host)) {
        connect_both(bp, host);
        return;
    }
    /* a lookup of this name still running (an earlier attempt's) is waited for; anything else
     * (a stale answer, another name) starts afresh */
    if (!redis_link_resolve_running(&bp->resolve, host) &&
        redis_link_resolve_start(&bp->resolve, host) != 0) {
        redis_bp__fail(bp, "getaddrinfo_a failed");
        return;
    }
    poll_resolve(bp);
}

void redis_bp__on_retry(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    if (bp->phase == BP_WAITING) attempt_start(bp);
    else if (bp->phase == BP_RESOLVING && bp->resolve.busy) poll_resolve(bp);
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
    redis_link_canary_reset(&bp->canary);
    bp->phase = BP_WAITING;

    uint64_t delay = redis_link_backoff(&bp->backoff_ms);
    struct timeval tv = redis_link_tv(delay);
    event_add(bp->retry_ev, &tv);

    rc_log_warn("redis_down", "reason=\"%s\" phase=%s retry_ms=%" PRIu64, reason, phase, delay);
    if (was_up) set_state(bp, 0);
}

/* ---- timers -------------------------------------------------------------------------------- */

static void check_ring(redis_bp *bp, redis_conn *c, uint64_t now_ns)
{
    if (bp->phase == BP_WAITING || !redis_conn_overdue(c, now_ns, REDIS_LINK_COMMAND_TIMEOUT_MS * 1000000ull))
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
            if (bp->phase == BP_SYNCING && bp->canary.pending) bp->canary_failures++;
            redis_bp__fail(bp, bp->phase == BP_SYNCING ? "resubscribe/canary timed out"
                                                       : "connect timed out");
            return;
        }
        break;
    case BP_UP:
        if (redis_link_canary_lost(&bp->canary, now, bp->sub_last_push_ms)) {
            bp->canary_failures++;
            redis_bp__fail(bp, "canary not received");
            return;
        }
        if (redis_link_canary_due(&bp->canary, now)) send_canary(bp);
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
    struct timeval tick = redis_link_tv(TICK_MS), now = {0, 0};
    event_add(bp->tick_ev, &tick);
    event_add(bp->retry_ev, &now); /* the first attempt runs from the loop, not from here */
}
