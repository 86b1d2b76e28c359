/*
 * backplane_redis.h: what the Redis backplane's two files share, and nothing else. Private
 * (src/): other modules use include/roomcast/backplane.h and include/roomcast/redis_cmd.h.
 *
 *   backplane_redis.c  the backplane: connections' owner, phases, canary, subscriptions,
 *                      publish and receive. Its state (redis_bp) stays opaque here.
 *   redis_cmd.c        redis_cmd.h for modules: commands and scripts on the cmd connection,
 *                      raw channels. Its state (redis_cmd_state) is embedded in redis_bp.
 *
 * Each calls the other only through the redis_bp__* / redis_cmd__* functions below.
 */
#ifndef ROOMCAST_BACKPLANE_REDIS_H
#define ROOMCAST_BACKPLANE_REDIS_H

#include "redis_conn.h"

#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct redisReply;
typedef struct rc_backplane rc_backplane;
typedef struct redis_bp redis_bp;

/* What a command on the cmd connection is for (redis_conn_cmd.kind). */
enum bp_cmd_kind {
    BP_CMD_PUBLISH = 0,   /* a room/namespace PUBLISH (backplane_redis.c) */
    BP_CMD_CANARY,        /* the canary PUBLISH (backplane_redis.c) */
    BP_CMD_MODULE,        /* rc_redis_command (redis_cmd.c) */
    BP_CMD_SCRIPT         /* rc_redis_eval: EVAL or EVALSHA (redis_cmd.c) */
};

/* redis_cmd.c's state. All-zero before redis_cmd__init. */
typedef struct redis_cmd_state {
    struct event *fail_ev;       /* answers `failed` from the loop */
    redis_conn_cmd *failed;      /* module commands whose connection went away, in send order */
    size_t nfailed, failed_cap;
    char (*loaded)[41];          /* scripts sent as EVAL on the current cmd connection */
    size_t nloaded, loaded_cap;
    const char **eargv;          /* scratch argument vector for EVAL/EVALSHA */
    size_t *eargvlen;
    size_t eargv_cap;
    int in_callback;             /* > 0 while a module's reply callback runs */
    uint64_t commands, errors, noscript; /* metrics, written by backplane_redis.c */
} redis_cmd_state;

/* ---- backplane_redis.c, for redis_cmd.c -------------------------------------------------------- */

/* The Redis backplane behind b, or NULL (b is NULL or the embedded backplane). */
redis_bp *redis_bp__from(const rc_backplane *b);
redis_cmd_state *redis_bp__cmd_state(redis_bp *bp);
/* The cmd connection while the backplane is up; NULL otherwise (modules are refused then). */
redis_conn *redis_bp__cmd_conn_if_up(redis_bp *bp);
const char *redis_bp__prefix(const redis_bp *bp);
/* Raw channels in the backplane's subscription set (refcounted; see redis_cmd.h). */
void redis_bp__channel_open(redis_bp *bp, const char *channel);
void redis_bp__channel_close(redis_bp *bp, const char *channel);

/* ---- redis_cmd.c, for backplane_redis.c -------------------------------------------------------- */

void redis_cmd__init(redis_cmd_state *s, struct event_base *base);
/* The reply to a BP_CMD_MODULE or BP_CMD_SCRIPT command that came back on cmd. */
void redis_cmd__on_reply(redis_cmd_state *s, redis_conn *cmd, const redis_conn_cmd *f,
                         const struct redisReply *reply);
/* A command left unanswered by a connection going away: module commands are queued to be
 * answered with reply NULL from the loop; other kinds are ignored. */
void redis_cmd__on_unanswered(redis_cmd_state *s, const redis_conn_cmd *f);
/* The cmd connection closed: a new one may reach a Redis without our scripts. */
void redis_cmd__conn_closed(redis_cmd_state *s);
/* Answers every queued module command with reply NULL now, then frees the state. */
void redis_cmd__dispose(redis_cmd_state *s);

#endif
