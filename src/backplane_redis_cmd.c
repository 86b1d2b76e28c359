/*
 * backplane_redis_cmd.c: include/roomcast/redis_cmd.h, the Redis commands, scripts and raw
 * channels that modules with state in Redis (presence.c, jobs.c, node.c's notify channel) use on
 * the backplane's connections. Shared state and the other files: src/backplane_redis.h.
 *
 * Each call finds the Redis backplane behind the rc_backplane (redis_bp__from: by its ops; the
 * embedded backplane is not one, so there every call refuses or does nothing), then:
 *   - rc_redis_command / rc_redis_eval: refused (-1) unless the backplane is UP, else sent on
 *     its cmd connection by redis_script.c, so they share PUBLISH's in-flight ring, backlog
 *     bounds and command timeout (a stuck reply tears everything down like any other). The reply
 *     goes from the connection straight to redis_script.c and on to the module; when the
 *     connection goes away the module gets NULL from the loop (redis_conn.c), and a free answers
 *     what is left NULL on the spot.
 *   - rc_redis_channel_open / close: raw channels in the backplane's subscription set
 *     (backplane_redis_subs.c): subscribed, batched, resubscribed and freed exactly like room
 *     channels, by their literal name; their messages reach on_raw without parsing.
 *   - rc_redis_pattern_open / close: the node's prefix subscriptions (PSUBSCRIBE), entries of
 *     their own in the same set; their messages reach on_pattern.
 *   - rc_redis_listen_open / close: a namespace's room and namespace channels through patterns
 *     (the recovery listener); their messages reach on_overheard, decoded.
 *   - rc_redis_prefix: the prefix of the modules' keys and channels (P, or {P} in a cluster).
 *
 * What it does not do: open connections, queue while Redis is down, or retry (redis_script.c
 * retries NOSCRIPT only).
 *
 * Ownership: arguments are borrowed for the call (redis_script.c copies a script's for its
 * retry); the prefix returned is the backplane's, valid until it is freed.
 */
#include "roomcast/redis_cmd.h"

#include "backplane_redis.h"

#include <string.h>

int rc_redis_available(const rc_backplane *bp)
{
    return redis_bp__from(bp) ? 1 : 0;
}

int rc_redis_clustered(const rc_backplane *b)
{
    const redis_bp *bp = redis_bp__from(b);
    return bp && bp->cluster;
}

const char *rc_redis_prefix(const rc_backplane *b)
{
    const redis_bp *bp = redis_bp__from(b);
    return bp ? (bp->key_prefix ? bp->key_prefix : bp->prefix) : NULL;
}

int rc_redis_command(rc_backplane *b, rc_redis_reply_fn cb, void *arg, int argc, const char **argv,
                     const size_t *argvlen)
{
    redis_bp *bp = redis_bp__from(b);
    if (!bp || bp->phase != BP_UP) return -1;
    if (bp->cluster) /* the key (argv[1] of the commands modules send) picks the master */
        return redis_bp__shard_command(bp, argc > 1 ? argv[1] : NULL,
                                       argc > 1 ? (argvlen ? argvlen[1] : strlen(argv[1])) : 0,
                                       NULL, cb, arg, 0, argc, argv, argvlen);
    return redis_script_command(&bp->scripts, &bp->cmd, cb, arg, argc, argv, argvlen);
}

int rc_redis_eval(rc_backplane *b, rc_redis_script *script, rc_redis_reply_fn cb, void *arg,
                  int nkeys, int argc, const char **argv, const size_t *argvlen)
{
    redis_bp *bp = redis_bp__from(b);
    if (!bp || bp->phase != BP_UP) return -1;
    if (bp->cluster) /* the first key picks the master (a script's keys share one slot) */
        return redis_bp__shard_command(bp, nkeys > 0 && argc > 0 ? argv[0] : NULL,
                                       nkeys > 0 && argc > 0 ? (argvlen ? argvlen[0] : strlen(argv[0])) : 0,
                                       script, cb, arg, nkeys, argc, argv, argvlen);
    return redis_script_eval(&bp->scripts, &bp->cmd, script, cb, arg, nkeys, argc, argv, argvlen);
}

void rc_redis_channel_open(rc_backplane *b, const char *channel)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp) redis_bp__raw_open(bp, channel);
}

void rc_redis_channel_close(rc_backplane *b, const char *channel)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp && channel) redis_bp__raw_close(bp, channel);
}

void rc_redis_pattern_open(rc_backplane *b, const char *prefix)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp) redis_bp__pattern_open(bp, prefix);
}

void rc_redis_pattern_close(rc_backplane *b, const char *prefix)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp && prefix) redis_bp__pattern_close(bp, prefix);
}

int rc_redis_listen_open(rc_backplane *b, const char *ns)
{
    redis_bp *bp = redis_bp__from(b);
    return bp ? redis_bp__listen(bp, ns, 1) : -1;
}

void rc_redis_listen_close(rc_backplane *b, const char *ns)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp) redis_bp__listen(bp, ns, 0);
}
