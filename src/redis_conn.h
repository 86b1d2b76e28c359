/*
 * redis_conn.h: one hiredis async connection on the node's libevent loop, as an explicit state
 * machine (STYLE 16). Private to the Redis backplane: implemented in redis_conn.c, owned by
 * backplane_redis.c (its sub and cmd connections), also used by redis_cmd.c (module commands
 * on cmd). It knows nothing about channels, phases or modules; it reports up through the
 * redis_conn_callbacks it was given.
 *
 *     CLOSED --redis_conn_open--> CONNECTING --handshake answered--> CONNECTED
 *        ^                            |                                  |
 *        +------------ redis_conn_close (owner), or hiredis closed it ---+
 *
 * Commands: redis_conn_command sends a regular command and remembers it in the in-flight ring
 * (oldest first, as Redis answers them) with the owner's tag; its reply comes back through
 * on_reply with that entry. redis_conn_subscribe sends SUBSCRIBE-family commands, whose replies
 * and messages come back through on_push. Bounds: at most 65,536 regular commands unanswered and
 * 32 MiB not yet written; over either, sending returns -1.
 */
#ifndef ROOMCAST_REDIS_CONN_H
#define ROOMCAST_REDIS_CONN_H

#include "roomcast/redis_cmd.h"
#include "roomcast/redis_url.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct redisAsyncContext;
struct redisReply;
struct redis_script_call;

enum redis_conn_state { REDIS_CONN_CLOSED = 0, REDIS_CONN_CONNECTING, REDIS_CONN_CONNECTED };

/* A regular command sent, reply not read yet. sent_ns is the connection's; the rest is the
 * owner's, handed back unchanged with the reply (kind >= 0: negative kinds are the handshake's). */
typedef struct redis_conn_cmd {
    uint64_t sent_ns;                 /* rc_now_mono_ns() when sent */
    int kind;                         /* the owner's tag (backplane_redis.h: enum bp_cmd_kind) */
    rc_redis_reply_fn cb;             /* module commands: the module's callback and argument */
    void *arg;
    struct redis_script_call *call;   /* script calls: kept for a NOSCRIPT retry (redis_cmd.c) */
} redis_conn_cmd;

typedef struct redis_conn redis_conn;

/* All run from hiredis callbacks on the loop, except on_unanswered (see there). The owner may
 * close the connection from any of them; it must not dispose of it there. */
typedef struct redis_conn_callbacks {
    /* The handshake (AUTH, SELECT, CLIENT SETNAME) was answered: the state is now CONNECTED. */
    void (*on_ready)(void *arg, redis_conn *c);
    /* The connection is no use any more: the connect failed, the connection was lost (the state
     * is already CLOSED), or Redis refused AUTH or SELECT (still open: the owner closes it).
     * reason is valid during the call. */
    void (*on_fail)(void *arg, redis_conn *c, const char *reason);
    /* The reply to a command sent with redis_conn_command; cmd is its entry. */
    void (*on_reply)(void *arg, redis_conn *c, const redis_conn_cmd *cmd, struct redisReply *reply);
    /* A reply or message on a connection used with redis_conn_subscribe. */
    void (*on_push)(void *arg, redis_conn *c, struct redisReply *reply);
    /* The connection went away with cmd unanswered: once per such command, oldest first, from
     * inside redis_conn_close or just before on_fail. Record it; do not call into c. */
    void (*on_unanswered)(void *arg, redis_conn *c, const redis_conn_cmd *cmd);
    void *arg;
} redis_conn_callbacks;

struct redis_conn {
    struct redisAsyncContext *ac; /* NULL unless CONNECTING or CONNECTED */
    const char *name;             /* "sub" or "cmd", for logs */
    int state;                    /* enum redis_conn_state */
    int handshake_left;           /* handshake replies still expected while CONNECTING */
    redis_conn_cmd *ring;         /* power-of-two capacity, grown on demand */
    size_t ring_cap, ring_head, ring_len;
    uint64_t commands;            /* commands sent, handshake and SUBSCRIBE included (metrics) */
    redis_conn_callbacks cb;
};

/* c is all-zero or closed; name is static. */
void redis_conn_init(redis_conn *c, const char *name, const redis_conn_callbacks *cb);
/* Connects to ip:url->port and queues the handshake (AUTH if url has a password, SELECT if its
 * db is not 0, CLIENT SETNAME client_name) ahead of anything else. 0, or -1 (the caller closes). */
int redis_conn_open(redis_conn *c, struct event_base *base, const char *ip, const rc_redis_url *url,
                    const char *client_name);
/* Closes now (CLOSED): unanswered commands go to on_unanswered, and hiredis's own callbacks for
 * the old context are ignored from here on. Safe on a closed connection. */
void redis_conn_close(redis_conn *c);
/* Frees the ring; c must be closed. */
void redis_conn_dispose(redis_conn *c);

/* Sends a regular command with the owner's tag (cb, arg, call may be NULL). 0, or -1 when not
 * connected, over a bound, or refused by hiredis. */
int redis_conn_command(redis_conn *c, int kind, rc_redis_reply_fn cb, void *arg,
                       struct redis_script_call *call, int argc, const char **argv,
                       const size_t *argvlen);
/* Sends SUBSCRIBE/UNSUBSCRIBE/PSUBSCRIBE/PUNSUBSCRIBE; replies reach on_push. 0, or -1. */
int redis_conn_subscribe(redis_conn *c, int argc, const char **argv, const size_t *argvlen);
/* 1 when the oldest unanswered regular command was sent timeout_ns or more before now_ns. */
int redis_conn_overdue(const redis_conn *c, uint64_t now_ns, uint64_t timeout_ns);

#endif
