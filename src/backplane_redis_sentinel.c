/*
 * backplane_redis_sentinel.c: the Redis backplane behind Redis Sentinel. Shared state:
 * src/backplane_redis.h; the sentinel conversation itself: src/redis_sentinel.c; for operators:
 * docs/redis.md ("Sentinel").
 *
 * Three rules, each closing one way to keep writing to the wrong Redis:
 *   1. Every attempt asks the sentinels first: the backplane's resolver hook (RESOLVING) is
 *      rc_sentinel_find, so a reconnect after any failure goes to the master of the moment.
 *   2. Every new pair of connections checks ROLE before it may sync: an address the sentinels
 *      named a moment ago can be a replica already (a failover in progress). Anything but
 *      "master" fails the attempt, and the next one asks the sentinels again after the backoff.
 *   3. A +switch-master for our master, heard on the watch connection, fails the backplane at
 *      once (unless it is already on that address), instead of waiting for a canary to go
 *      missing, and cuts short a backoff in progress; a READONLY answer fails it too
 *      (backplane_redis_phase.c).
 * /readyz follows the phase: 503 from the failure until the canary has come back through the
 * new master.
 *
 * Ownership: bp->sentinel is created here and freed through the resolver's free hook.
 */
#include "backplane_redis.h"
#include "redis_sentinel.h"

#include "roomcast/log.h"

#include <hiredis/hiredis.h>
#include <string.h>
#include <strings.h>

static void on_found(void *arg, const char *host, int port, const char *why)
{
    redis_bp *bp = arg;
    if (!host) {
        redis_bp__fail(bp, why);
        return;
    }
    rc_log_debug("sentinel_master", "address=%s:%d", host, port);
    redis_bp__resolved(bp, host, port);
}

static void resolver_start(void *arg, redis_bp *bp)
{
    bp->role_checked = 0;
    bp->role_sent = 0;
    rc_sentinel_find(bp->sentinel, on_found, bp);
}

static void resolver_cancel(void *arg, redis_bp *bp)
{
    rc_sentinel_cancel(bp->sentinel);
}

static void resolver_free(void *arg)
{
    redis_bp *bp = arg;
    rc_sentinel_free(bp->sentinel);
    bp->sentinel = NULL;
}

static void on_switch(void *arg, const char *host, int port)
{
    redis_bp *bp = arg;
    if (bp->phase == BP_CLOSED) return;
    if (bp->phase == BP_WAITING) {
        redis_bp__retry_now(bp); /* backing off from the dead master: the new one is there now */
        return;
    }
    if (bp->phase != BP_RESOLVING && bp->target_host && strcmp(bp->target_host, host) == 0 &&
        bp->target_port == port)
        return; /* already there */
    redis_bp__fail(bp, "sentinel: +switch-master");
}

static void role_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *r)
{
    redis_bp *bp = arg;
    if (!r || bp->phase != BP_CONNECTING || c != &bp->cmd) return; /* an attempt gone already */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
        strcasecmp(r->element[0]->str, "master") == 0) {
        bp->role_checked = 1;
        redis_bp__maybe_probe(bp);
        return;
    }
    char why[120];
    snprintf(why, sizeof(why), "sentinel named %s:%d, but its ROLE is %s", bp->target_host ? bp->target_host : "?",
             bp->target_port,
             r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING
                 ? r->element[0]->str
                 : "not an answer");
    bp->role_mismatches++;
    redis_bp__fail(bp, why);
}

int redis_bp__sentinel_role_pending(redis_bp *bp)
{
    if (!bp->sentinel || bp->role_checked) return 0;
    if (!bp->role_sent) {
        static const char *argv[1] = {"ROLE"};
        static const size_t lens[1] = {4};
        if (redis_conn_command(&bp->cmd, role_on_reply, bp, 1, argv, lens) != 0) {
            redis_bp__fail(bp, "ROLE could not be sent");
            return 1;
        }
        bp->role_sent = 1;
    }
    return 1;
}

void redis_bp__sentinel_attach(redis_bp *bp)
{
    bp->sentinel = rc_sentinel_new(bp->base, bp->rcfg, bp->ssl_ctx, bp->node_id, on_switch, bp);
    bp->resolver = (redis_bp_resolver){
        .start = resolver_start,
        .cancel = resolver_cancel,
        .free = resolver_free,
        .arg = bp,
    };
    rc_sentinel_watch(bp->sentinel);
}

void redis_bp__sentinel_write_metrics(const redis_bp *bp, struct evbuffer *out)
{
    if (!bp->sentinel) return;
    rc_sentinel_stats st;
    rc_sentinel_get_stats(bp->sentinel, &st);
    rc_metrics_put_scalar(out, "roomcast_redis_sentinel_lookups_total", "counter",
                          "Master addresses obtained from the sentinels (one per connection attempt).",
                          st.finds);
    rc_metrics_put_scalar(out, "roomcast_redis_sentinel_lookup_failures_total", "counter",
                          "Attempts in which no sentinel named the master.", st.failures);
    rc_metrics_put_scalar(out, "roomcast_redis_sentinel_switches_total", "counter",
                          "+switch-master events heard for our master.", st.switches);
    rc_metrics_put_scalar(out, "roomcast_redis_sentinel_role_mismatches_total", "counter",
                          "Connections refused because the address the sentinels named was not a master.",
                          bp->role_mismatches);
}
