/*
 * redis_cmd.h: commands, scripts and raw channels on the Redis backplane's connections, for the
 * modules that keep state in Redis (presence, jobs). They do not open connections of their own:
 * one node = one command connection + one subscription connection, whose reconnects, timeouts
 * and canary are handled once, by the backplane (src/backplane_redis_phase.c). Implemented in
 * src/backplane_redis_cmd.c (commands and scripts through src/redis_script.c).
 *
 * All functions return -1 without sending when Redis is down (the caller decides: refuse,
 * retry on the next on_state(1), or count a failure); callbacks always run from the loop, with
 * reply NULL on a connection error or a command timeout.
 *
 * Scripts: rc_redis_script holds the Lua source and its SHA-1 (computed on first use); calls go
 * out as EVALSHA and are retried once as EVAL when Redis answers NOSCRIPT (after a restart or a
 * SCRIPT FLUSH), so a caller never sees NOSCRIPT.
 *
 * Raw channels: channel_open/close manage subscriptions beyond the room/namespace channels (for
 * example P:status:<user>), refcounted and batched like room channels and restored after a
 * reconnect; messages arrive through rc_backplane_callbacks.on_raw. A raw channel's name is
 * always taken literally (SUBSCRIBE; Redis never globs a channel name), whatever it contains:
 * names built from user input (a user id "*" or "bo*") stay the one channel they spell.
 *
 * Patterns: pattern_open/close subscribe every channel whose name starts with a prefix
 * (PSUBSCRIBE <prefix>*, with the glob characters * ? [ ] \ of the prefix escaped, so the prefix
 * itself is literal too). It is a separate call, for the node's own fixed prefixes (P:status:);
 * never pass it anything built from user input. Messages arrive through on_pattern.
 *
 * Listening: listen_open/close subscribe every room channel and the namespace channel of a
 * namespace through patterns (PSUBSCRIBE "P:room:<ns>:*" and "P:ns:<ns>"), for connection state
 * recovery's listeners (src/node_recovery_listen.c); messages arrive decoded through
 * on_overheard. Refcounted, restored after a reconnect like every subscription.
 */
#ifndef ROOMCAST_REDIS_CMD_H
#define ROOMCAST_REDIS_CMD_H

#include <stddef.h>

struct redisReply;
typedef struct rc_backplane rc_backplane;

typedef void (*rc_redis_reply_fn)(void *arg, const struct redisReply *reply);

typedef struct rc_redis_script {
    const char *source;   /* Lua text, static */
    char sha[41];         /* filled on first use */
} rc_redis_script;

/* 1 if bp is the Redis backplane (these functions work), 0 for the embedded one. */
int rc_redis_available(const rc_backplane *bp);
int rc_redis_command(rc_backplane *bp, rc_redis_reply_fn cb, void *arg,
                     int argc, const char **argv, const size_t *argvlen);
int rc_redis_eval(rc_backplane *bp, rc_redis_script *script, rc_redis_reply_fn cb, void *arg,
                  int nkeys, int argc, const char **argv, const size_t *argvlen);
void rc_redis_channel_open(rc_backplane *bp, const char *channel);
void rc_redis_channel_close(rc_backplane *bp, const char *channel);
/* Refcounted like raw channels. A prefix that would cover the backplane's own room, namespace or
 * canary channels is refused (logged as redis_bad_channel). */
void rc_redis_pattern_open(rc_backplane *bp, const char *prefix);
void rc_redis_pattern_close(rc_backplane *bp, const char *prefix);
/* 0, or -1 (nothing subscribed) on a Redis Cluster, whose sharded channels have no patterns, on
 * the embedded backplane, or for a namespace the backplane cannot carry. */
int rc_redis_listen_open(rc_backplane *bp, const char *ns);
void rc_redis_listen_close(rc_backplane *bp, const char *ns);
/* The prefix of the modules' keys and of the channels their scripts publish (P:status:<user>,
 * P:visibility:<node>): P ("roomcast"), or "{P}" with a Redis Cluster, a hash tag that puts every
 * such key in one slot, since a presence script touches many users' keys at once (docs/redis.md,
 * "Redis Cluster"). Room, namespace and notify channels keep P. */
const char *rc_redis_prefix(const rc_backplane *bp);
/* 1 when bp runs on a Redis Cluster (keys of one script must share a slot). */
int rc_redis_clustered(const rc_backplane *bp);

#endif
