/*
 * redis_conn.h: one Redis connection on the node's libevent loop, as an explicit state machine,
 * with its own I/O: a libevent bufferevent over TCP, a unix socket, or OpenSSL (rediss://),
 * hiredis's RESP reader (redisReader) for replies and its formatter (redisFormatCommandArgv) for
 * commands. Private (src/): implemented in redis_conn.c; docs/architecture.md ("Why some things
 * are written by hand") says why the I/O is ours. Every Redis connection roomcast opens is one
 * of these; today the Redis backplane owns two (sub and cmd, backplane_redis.h).
 *
 * It knows nothing about channels, phases, scripts or modules. Each regular command carries its
 * sender's callback (fn, arg), which gets the reply; the connection's own events (ready, failed,
 * subscription pushes, error classes) go to the redis_conn_callbacks its owner gave it.
 *
 *     CLOSED --redis_conn_open--> CONNECTING --connected, TLS done, handshake answered--> CONNECTED
 *        ^                            |                                                      |
 *        +------------ redis_conn_close (owner), or the connection failed -------------------+
 *
 * Commands: redis_conn_command sends a regular command and remembers it in the in-flight ring
 * (oldest first, as Redis answers them). Every command sent is answered exactly once: its fn
 * gets the reply, or reply NULL when the connection went away first. NULL answers are given
 * from the loop soon after (in send order), or at once inside redis_conn_dispose; never from
 * inside the call that closed the connection. redis_conn_subscribe sends SUBSCRIBE-family
 * commands, whose replies and messages come back through on_push: a reply that arrives while no
 * regular command waits is a push.
 *
 * I/O: commands of one loop turn are formatted into one buffer and written at the end of the
 * turn with one system call (the same moment the server flushes its sockets); only what the
 * kernel does not take waits in the bufferevent for writability. A readable plain socket is read
 * in 64 KiB reads, up to 4 MiB or 100 ms of work per loop turn, so a burst of published messages
 * reaches the server's once-per-turn flush in large batches; over TLS the OpenSSL bufferevent
 * reads and we parse what it read.
 *
 * Bounds: at most 65,536 regular commands unanswered and 32 MiB not yet written; over either,
 * sending returns -1.
 *
 * What it does not do: no reconnect, backoff, timeout or canary (its owner decides when to close
 * and reopen, with the lifecycle every owner shares: src/redis_link.h; redis_conn_overdue tells
 * it how old the oldest command is); no retry of any
 * command; no DNS (the owner passes a numeric address, obtained afresh for each open); no TLS
 * context (the owner's, redis_tls.h).
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
struct evbuffer;
struct bufferevent;
struct redisReader;
struct redisReply;
typedef struct ssl_ctx_st SSL_CTX;

enum redis_conn_state { REDIS_CONN_CLOSED = 0, REDIS_CONN_CONNECTING, REDIS_CONN_CONNECTED };

/* Why the connection failed (c->fail_class during on_fail). */
enum redis_conn_fail {
    REDIS_FAIL_IO = 0,       /* connect refused, connection lost, timeout: retrying may help */
    REDIS_FAIL_TLS_TRUST,    /* the TLS handshake failed on trust: the server's certificate
                                cannot be verified, or the server refused ours; retrying the same
                                files cannot help */
    REDIS_FAIL_REFUSED,      /* Redis refused AUTH or SELECT */
    REDIS_FAIL_PROTOCOL,     /* not RESP, or a reply nobody asked for */
};

/* The class of an error reply (redis_conn_error_class), for replies an owner acts on. */
enum redis_err_class {
    REDIS_ERR_NONE = 0,      /* not an error, or an error of the command itself */
    REDIS_ERR_READONLY,      /* "READONLY": we write to a replica (a failover demoted it) */
    REDIS_ERR_MOVED,         /* "MOVED <slot> <host>:<port>": the slot lives elsewhere now */
    REDIS_ERR_ASK,           /* "ASK <slot> <host>:<port>": ask once there (slot migrating) */
    REDIS_ERR_TRYAGAIN,      /* "TRYAGAIN": multi-key command during a migration */
    REDIS_ERR_CLUSTERDOWN,   /* "CLUSTERDOWN" */
    REDIS_ERR_LOADING,       /* "LOADING": Redis is loading its dataset */
    REDIS_ERR_MASTERDOWN,    /* "MASTERDOWN": a replica that lost its master */
};

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

/* All run from the loop. The owner may close the connection from any of them; it must not
 * dispose of it there. */
typedef struct redis_conn_callbacks {
    /* The handshake (AUTH, SELECT, CLIENT SETNAME) was answered: the state is now CONNECTED. */
    void (*on_ready)(void *arg, redis_conn *c);
    /* The connection is no use any more: the connect or the TLS handshake failed, the
     * connection was lost (the state is already CLOSED), or Redis refused AUTH or SELECT (still
     * open: the owner closes it). reason is valid during the call; c->fail_class says which. */
    void (*on_fail)(void *arg, redis_conn *c, const char *reason);
    /* A reply or message on a connection used with redis_conn_subscribe. */
    void (*on_push)(void *arg, redis_conn *c, struct redisReply *reply);
    /* Optional: a regular command was answered with an error of class cls (not REDIS_ERR_NONE),
     * before its sender's fn gets the same reply. The owner may close c here (the sender is
     * still answered, with this reply). */
    void (*on_error_class)(void *arg, redis_conn *c, int cls, const struct redisReply *reply);
    void *arg;
} redis_conn_callbacks;

/* Where to connect, for one redis_conn_open: the owner finds it afresh at every attempt (DNS, a
 * sentinel's answer, a cluster's slot map). */
typedef struct redis_conn_target {
    const char *ip;               /* numeric IPv4 or IPv6 address; NULL with path */
    int port;
    const char *path;             /* a unix socket's path, or NULL */
    SSL_CTX *ssl_ctx;             /* TLS when not NULL (borrowed; it must outlive the session) */
    const char *tls_name;         /* the name (or IP) the certificate must carry; NULL: ip */
} redis_conn_target;

struct redis_conn {
    struct event_base *base;
    const char *name;             /* "sub" or "cmd", for logs */
    int state;                    /* enum redis_conn_state */
    int handshake_left;           /* handshake replies still expected while CONNECTING */
    struct bufferevent *bev;      /* NULL unless CONNECTING or CONNECTED */
    struct event *rev;            /* plain sockets: our persistent read event (NULL over TLS) */
    struct evbuffer *out;         /* commands of this loop turn, written at its end */
    struct event *flush_ev;       /* activated by the first command of a turn */
    struct redisReader *reader;   /* NULL unless CONNECTING or CONNECTED */
    int tls;                      /* this session is over TLS */
    int io_up;                    /* connected (TLS handshake done): out may be written */
    int fail_class;               /* enum redis_conn_fail of the last on_fail */
    redis_conn_cmd *ring;         /* power-of-two capacity, grown on demand */
    size_t ring_cap, ring_head, ring_len;
    redis_conn_cmd *lost;         /* commands of a connection gone away, to be answered NULL */
    size_t nlost, lost_cap;
    struct event *lost_ev;        /* answers `lost` from the loop */
    int in_callback;              /* > 0 while a command's fn runs */
    uint64_t opens;               /* redis_conn_open calls: tells one session from the next */
    uint64_t commands;            /* commands sent, handshake and SUBSCRIBE included (metrics) */
    redis_conn_callbacks cb;
};

/* c is all-zero; name is static; everything runs on base. */
void redis_conn_init(redis_conn *c, struct event_base *base, const char *name,
                     const redis_conn_callbacks *cb);
/* Connects to t and queues the handshake (AUTH if auth has a password, SELECT if its db is not
 * 0, CLIENT SETNAME client_name) ahead of anything else; auth's host and port are not used. c is
 * closed. 0, or -1 (the caller closes; nothing was reported through on_fail). */
int redis_conn_open(redis_conn *c, const redis_conn_target *t, const rc_redis_url *auth,
                    const char *client_name);
/* Closes now (CLOSED): unanswered commands are answered NULL from the loop. Safe on a closed
 * connection and from inside any of c's callbacks. */
void redis_conn_close(redis_conn *c);
/* c must be closed, and not inside one of its commands' fn: answers what is still owed NULL
 * now, then frees everything. */
void redis_conn_dispose(redis_conn *c);

/* Sends a regular command; fn (not NULL) gets its answer with arg. 0, or -1 when not
 * connecting or connected, or over a bound (fn is then never called). Commands sent while
 * CONNECTING are written after the handshake. */
int redis_conn_command(redis_conn *c, redis_conn_reply_fn fn, void *arg, int argc,
                       const char **argv, const size_t *argvlen);
/* Sends SUBSCRIBE/UNSUBSCRIBE/PSUBSCRIBE/PUNSUBSCRIBE (or SSUBSCRIBE...); replies reach
 * on_push. 0, or -1. */
int redis_conn_subscribe(redis_conn *c, int argc, const char **argv, const size_t *argvlen);
/* 1 when the oldest unanswered regular command was sent timeout_ns or more before now_ns. */
int redis_conn_overdue(const redis_conn *c, uint64_t now_ns, uint64_t timeout_ns);
/* The class of an error reply (REDIS_ERR_NONE for anything else). Pure. */
int redis_conn_error_class(const struct redisReply *reply);

#endif
