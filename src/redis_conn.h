/*
 * redis_conn.h: one hiredis async connection on the node's libevent loop, as an explicit state
 * machine. Private (src/): implemented in redis_conn.c. Every Redis connection roomcast opens is
 * one of these; today the Redis backplane owns two (sub and cmd, backplane_redis.h).
 *
 * It knows nothing about channels, phases, scripts or modules. Each regular command carries its
 * sender's callback (fn, arg), which gets the reply; the connection's own events (ready, failed,
 * subscription pushes) go to the redis_conn_callbacks its owner gave it.
 *
 *     CLOSED --redis_conn_open--> CONNECTING --handshake answered--> CONNECTED
 *        ^                            |                                  |
 *        +------------ redis_conn_close (owner), or hiredis closed it ---+
 *
 * Commands: redis_conn_command sends a regular command and remembers it in the in-flight ring
 * (oldest first, as Redis answers them). Every command sent is answered exactly once: its fn
 * gets the reply, or reply NULL when the connection went away first. NULL answers are given
 * from the loop soon after (in send order), or at once inside redis_conn_dispose; never from
 * inside the call that closed the connection. redis_conn_subscribe sends SUBSCRIBE-family
 * commands, whose replies and messages come back through on_push.
 *
 * Bounds: at most 65,536 regular commands unanswered and 32 MiB not yet written; over either,
 * sending returns -1.
 *
 * What it does not do: no reconnect, backoff, timeout or canary (its owner decides when to
 * close and reopen; redis_conn_overdue tells it how old the oldest command is); no retry of any
 * command; no DNS (the owner passes an address).
 *
 * API in call order: redis_conn_init -> (redis_conn_open -> redis_conn_command /
 * redis_conn_subscribe ... -> redis_conn_close) any number of times -> redis_conn_dispose.
 */
#ifndef ROOMCAST_REDIS_CONN_H
#define ROOMCAST_REDIS_CONN_H

#include "roomcast/redis_url.h"

#include <stddef.h>
#include <stdint.h>

struct event;
struct event_base;
struct redisAsyncContext;
struct redisReply;

enum redis_conn_state { REDIS_CONN_CLOSED = 0, REDIS_CONN_CONNECTING, REDIS_CONN_CONNECTED };

typedef struct redis_conn redis_conn;
typedef struct redis_conn_cmd redis_conn_cmd;

/* A regular command's answer, always from the loop: reply is valid during the call, or NULL
 * when the connection went away before Redis answered (c may have been reopened since). cmd is
 * the command's entry. fn may send new commands on c; it must not dispose of c. */
typedef void (*redis_conn_reply_fn)(void *arg, redis_conn *c, const redis_conn_cmd *cmd,
                                    struct redisReply *reply);

/* A regular command sent, answer not given yet. */
struct redis_conn_cmd {
    uint64_t sent_ns;             /* rc_now_mono_ns() when sent */
    redis_conn_reply_fn fn;       /* the sender's; NULL for the handshake's own commands */
    void *arg;                    /* the sender's, handed back to fn unchanged */
};

/* All run from hiredis callbacks on the loop. The owner may close the connection from any of
 * them; it must not dispose of it there. */
typedef struct redis_conn_callbacks {
    /* The handshake (AUTH, SELECT, CLIENT SETNAME) was answered: the state is now CONNECTED. */
    void (*on_ready)(void *arg, redis_conn *c);
    /* The connection is no use any more: the connect failed, the connection was lost (the state
     * is already CLOSED), or Redis refused AUTH or SELECT (still open: the owner closes it).
     * reason is valid during the call. */
    void (*on_fail)(void *arg, redis_conn *c, const char *reason);
    /* A reply or message on a connection used with redis_conn_subscribe. */
    void (*on_push)(void *arg, redis_conn *c, struct redisReply *reply);
    void *arg;
} redis_conn_callbacks;

struct redis_conn {
    struct redisAsyncContext *ac; /* NULL unless CONNECTING or CONNECTED */
    struct event_base *base;
    const char *name;             /* "sub" or "cmd", for logs */
    int state;                    /* enum redis_conn_state */
    int handshake_left;           /* handshake replies still expected while CONNECTING */
    redis_conn_cmd *ring;         /* power-of-two capacity, grown on demand */
    size_t ring_cap, ring_head, ring_len;
    redis_conn_cmd *lost;         /* commands of a connection gone away, to be answered NULL */
    size_t nlost, lost_cap;
    struct event *lost_ev;        /* answers `lost` from the loop */
    int in_callback;              /* > 0 while a command's fn runs */
    int subscriber;               /* set by the owner before redis_conn_open: after the
                                   * handshake, every reply goes to on_push (SSUBSCRIBE too) */
    int push_mode;                /* a subscriber past its handshake */
    uint64_t opens;               /* redis_conn_open calls: tells one session from the next */
    uint64_t commands;            /* commands sent, handshake and SUBSCRIBE included (metrics) */
    redis_conn_callbacks cb;
};

/* c is all-zero; name is static; everything runs on base. */
void redis_conn_init(redis_conn *c, struct event_base *base, const char *name,
                     const redis_conn_callbacks *cb);
/* Connects to ip:url->port and queues the handshake (AUTH if url has a password, SELECT if its
 * db is not 0, CLIENT SETNAME client_name) ahead of anything else. c is closed. 0, or -1 (the
 * caller closes). */
int redis_conn_open(redis_conn *c, const char *ip, const rc_redis_url *url, const char *client_name);
/* Closes now (CLOSED): unanswered commands are answered NULL from the loop, and hiredis's own
 * callbacks for the old context are ignored from here on. Safe on a closed connection. */
void redis_conn_close(redis_conn *c);
/* c must be closed, and not inside one of its commands' fn: answers what is still owed NULL
 * now, then frees everything. */
void redis_conn_dispose(redis_conn *c);

/* Sends a regular command; fn (not NULL) gets its answer with arg. 0, or -1 when not
 * connected, over a bound, or refused by hiredis (fn is then never called). */
int redis_conn_command(redis_conn *c, redis_conn_reply_fn fn, void *arg, int argc,
                       const char **argv, const size_t *argvlen);
/* Sends SUBSCRIBE/UNSUBSCRIBE/PSUBSCRIBE/PUNSUBSCRIBE; replies reach on_push. On a subscriber
 * (c->subscriber) also SSUBSCRIBE/SUNSUBSCRIBE: once CONNECTED, every reply of a subscriber goes
 * to on_push, and redis_conn_command refuses. 0, or -1. */
int redis_conn_subscribe(redis_conn *c, int argc, const char **argv, const size_t *argvlen);
/* 1 when the oldest unanswered regular command was sent timeout_ns or more before now_ns. */
int redis_conn_overdue(const redis_conn *c, uint64_t now_ns, uint64_t timeout_ns);

#endif
