/*
 * redis_conn.c: one hiredis async connection on the node's libevent loop: connect, handshake,
 * the in-flight ring of regular commands, the NULL answers a lost connection owes, and the
 * guard against hiredis callbacks for a context we already let go. Contract and state diagram:
 * src/redis_conn.h. Every Redis connection roomcast opens is one of these (the backplane's sub
 * and cmd, backplane_redis_phase.c).
 *
 * Handshake: AUTH (if the URL has a password), SELECT (if db is not 0) and CLIENT SETNAME are
 * queued right after redisAsyncConnect, before anything else; CONNECTED means Redis answered
 * them (a TCP connect to a stopped Redis succeeds, so it proves nothing). An error reply to AUTH
 * or SELECT fails the connection; a refused CLIENT SETNAME (ACL) only costs the name in CLIENT
 * LIST. The handshake's ring entries have fn NULL and their step in arg.
 *
 * In-flight ring: hiredis answers a connection's regular commands in order, so the oldest is at
 * ring[head]; its send time is what the owner's command timeout looks at (redis_conn_overdue).
 * When the connection goes away (closed by the owner or by hiredis), the senders' entries move,
 * oldest first, to `lost`, which lost_ev answers NULL from the loop: a sender never hears of the
 * failure from inside the call that caused it, and nothing is dropped silently.
 *
 * What it does not do: no reconnect, backoff, timeout or canary (the owner decides when to close
 * and reopen); no retry of any command; no DNS (the owner passes an address).
 *
 * Ownership: the hiredis context belongs to its redis_conn. hiredis callbacks get the redis_conn
 * and ignore a context that is no longer c->ac, so contexts being freed (by us or by hiredis)
 * never reach the owner. A command's arg stays the sender's; the connection only hands it back.
 */
#include "redis_conn.h"

#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/redis_ev.h"

#include <assert.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* Bounds on a connection's backlog (docs/redis.md, "Liveness"): over either, sending returns -1. */
static const size_t MAX_INFLIGHT = 65536;                 /* commands sent, reply not yet read */
static const size_t MAX_OUTPUT_BYTES = 32u * 1024 * 1024; /* hiredis output buffer not yet written */

/* The handshake's steps, kept in its ring entries' arg (their fn is NULL). */
enum { HANDSHAKE_AUTH = 1, HANDSHAKE_SELECT, HANDSHAKE_SETNAME };

/* ---- the in-flight ring ---------------------------------------------------------------------- */

static void ring_reset(redis_conn *c)
{
    c->ring_head = c->ring_len = 0;
}

static int ring_push(redis_conn *c, redis_conn_reply_fn fn, void *arg)
{
    if (c->ring_len == c->ring_cap) {
        if (c->ring_cap >= MAX_INFLIGHT) return -1;
        size_t cap = c->ring_cap ? c->ring_cap * 2 : 64;
        redis_conn_cmd *r = rc_malloc(cap * sizeof(*r));
        for (size_t i = 0; i < c->ring_len; i++)
            r[i] = c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        rc_free(c->ring);
        c->ring = r;
        c->ring_cap = cap;
        c->ring_head = 0;
    }
    redis_conn_cmd *f = &c->ring[(c->ring_head + c->ring_len) & (c->ring_cap - 1)];
    f->sent_ns = rc_now_mono_ns();
    f->fn = fn;
    f->arg = arg;
    c->ring_len++;
    return 0;
}

static redis_conn_cmd ring_pop(redis_conn *c)
{
    assert(c->ring_len > 0);
    redis_conn_cmd f = c->ring[c->ring_head];
    c->ring_head = (c->ring_head + 1) & (c->ring_cap - 1);
    c->ring_len--;
    return f;
}

/* Answers every lost command NULL, oldest first. Answers may lose more meanwhile (a connection
 * reopened and lost again): those are answered too. */
static void lost_run(redis_conn *c)
{
    while (c->nlost) {
        redis_conn_cmd *list = c->lost;
        size_t n = c->nlost;
        c->lost = NULL;
        c->nlost = c->lost_cap = 0;
        for (size_t i = 0; i < n; i++) {
            c->in_callback++;
            list[i].fn(list[i].arg, c, &list[i], NULL);
            c->in_callback--;
        }
        rc_free(list);
    }
}

static void on_lost_ev(evutil_socket_t fd, short what, void *arg)
{
    lost_run(arg);
}

/* The connection is going away: its senders' unanswered commands move to `lost`, to be
 * answered NULL from the loop (the handshake's own are dropped). */
static void ring_abandon(redis_conn *c)
{
    size_t moved = 0;
    for (size_t i = 0; i < c->ring_len; i++) {
        const redis_conn_cmd *f = &c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        if (!f->fn) continue;
        if (c->nlost == c->lost_cap) {
            c->lost_cap = c->lost_cap ? c->lost_cap * 2 : 16;
            c->lost = rc_realloc(c->lost, c->lost_cap * sizeof(*c->lost));
        }
        c->lost[c->nlost++] = *f;
        moved++;
    }
    ring_reset(c);
    if (moved) event_active(c->lost_ev, EV_TIMEOUT, 0);
}

int redis_conn_overdue(const redis_conn *c, uint64_t now_ns, uint64_t timeout_ns)
{
    return c->ring_len && now_ns - c->ring[c->ring_head].sent_ns >= timeout_ns;
}

/* ---- sending ---------------------------------------------------------------------------------- */

static void conn_on_reply(redisAsyncContext *ac, void *r, void *privdata);
static void conn_on_push(redisAsyncContext *ac, void *r, void *privdata);

/* Sends one regular command: the owner's (fn set) or the handshake's (fn NULL, step in arg). */
static int command_send(redis_conn *c, redis_conn_reply_fn fn, void *arg, int argc,
                        const char **argv, const size_t *argvlen)
{
    if (!c->ac || c->push_mode) return -1;
    if (c->ring_len >= MAX_INFLIGHT || sdslen(c->ac->c.obuf) >= MAX_OUTPUT_BYTES) return -1;
    if (ring_push(c, fn, arg) != 0) return -1;
    if (redisAsyncCommandArgv(c->ac, conn_on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        c->ring_len--; /* undo the push */
        return -1;
    }
    c->commands++;
    return 0;
}

int redis_conn_command(redis_conn *c, redis_conn_reply_fn fn, void *arg, int argc,
                       const char **argv, const size_t *argvlen)
{
    assert(fn);
    return command_send(c, fn, arg, argc, argv, argvlen);
}

int redis_conn_subscribe(redis_conn *c, int argc, const char **argv, const size_t *argvlen)
{
    if (!c->ac) return -1;
    if (!c->push_mode) {
        if (redisAsyncCommandArgv(c->ac, conn_on_push, c, argc, argv, argvlen) != REDIS_OK) return -1;
        c->commands++;
        return 0;
    }
    if (sdslen(c->ac->c.obuf) >= MAX_OUTPUT_BYTES ||
        redisAppendCommandArgv(&c->ac->c, argc, argv, argvlen) != REDIS_OK)
        return -1;
    if (c->ac->ev.addWrite) c->ac->ev.addWrite(c->ac->ev.data);
    c->commands++;
    return 0;
}

/* ---- hiredis callbacks ------------------------------------------------------------------------ */

/* hiredis closed the context itself (it frees it after this returns): forget it, then fail. */
static void conn_lost(redis_conn *c, const char *reason)
{
    c->ac = NULL;
    c->state = REDIS_CONN_CLOSED;
    c->handshake_left = 0;
    ring_abandon(c);
    c->cb.on_fail(c->cb.arg, c, reason);
}

static void conn_on_connect(const redisAsyncContext *ac, int status)
{
    redis_conn *c = ac->data;
    if (ac != c->ac) return;
    if (status != REDIS_OK) {
        char reason[160];
        snprintf(reason, sizeof(reason), "connect failed: %s", ac->errstr ? ac->errstr : "?");
        conn_lost(c, reason);
        return;
    }
    /* TCP is up. Nothing else may happen here: hiredis does not guard this callback against a
     * free, and the handshake already waits in the output buffer. */
}

static void conn_on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_conn *c = ac->data;
    if (ac != c->ac) return;
    char reason[160];
    snprintf(reason, sizeof(reason), "connection lost: %s", ac->errstr ? ac->errstr : "closed");
    conn_lost(c, reason);
}

/* A handshake reply (handshake_left counts them down while CONNECTING). */
static void handshake_step(redis_conn *c, int step, const redisReply *reply)
{
    if (step != HANDSHAKE_SETNAME && reply->type == REDIS_REPLY_ERROR) {
        char reason[200];
        snprintf(reason, sizeof(reason), "%s refused: %s",
                 step == HANDSHAKE_AUTH ? "AUTH" : "SELECT", reply->str);
        c->cb.on_fail(c->cb.arg, c, reason);
        return;
    }
    /* a refused CLIENT SETNAME (ACL) only costs the name in CLIENT LIST */
    c->handshake_left--;
    if (c->state == REDIS_CONN_CONNECTING && c->handshake_left == 0) {
        c->state = REDIS_CONN_CONNECTED;
        c->push_mode = c->subscriber;
        c->cb.on_ready(c->cb.arg, c);
    }
}

static void conn_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_conn *c = privdata;
    redisReply *reply = r;
    if (!reply || ac != c->ac) return; /* the context is being freed */
    if (c->push_mode) {
        /* a subscriber after its handshake: hiredis hands every reply to the handshake's
         * callbacks, which it holds again and again in monitor mode (redis_conn_open) */
        c->cb.on_push(c->cb.arg, c, reply);
        return;
    }

    redis_conn_cmd f = ring_pop(c);
    if (!f.fn) {
        handshake_step(c, (int)(intptr_t)f.arg, reply);
        return;
    }
    c->in_callback++;
    f.fn(f.arg, c, &f, reply);
    c->in_callback--;
}

static void conn_on_push(redisAsyncContext *ac, void *r, void *privdata)
{
    redis_conn *c = privdata;
    redisReply *reply = r;
    if (!reply || ac != c->ac) return;
    c->cb.on_push(c->cb.arg, c, reply);
}

/* ---- open and close --------------------------------------------------------------------------- */

void redis_conn_init(redis_conn *c, struct event_base *base, const char *name,
                     const redis_conn_callbacks *cb)
{
    c->base = base;
    c->name = name;
    c->cb = *cb;
    c->lost_ev = event_new(base, -1, 0, on_lost_ev, c);
}

int redis_conn_open(redis_conn *c, const char *ip, const rc_redis_url *url, const char *client_name)
{
    const char *argv[3];
    size_t lens[3];
    char db[16];
    int argc, rc = 0;

    redisAsyncContext *ac = redisAsyncConnect(ip, url->port);
    if (!ac) return -1;
    if (ac->err) {
        rc_log_warn("redis_connect_failed", "role=%s error=\"%s\"", c->name, ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = c;
    if (rc_redis_ev_attach(ac, c->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return -1;
    }
    /* hiredis 0.14 knows SUBSCRIBE and PSUBSCRIBE only: it drops the replies and messages of
     * SSUBSCRIBE (sharded pub/sub, Redis 7). A subscriber is therefore put in hiredis's monitor
     * mode, where every reply goes to the callback of the oldest command and that callback is
     * held again: after the handshake, the handshake's own callbacks take every reply, and
     * conn_on_reply passes them to on_push (push_mode). SUBSCRIBE-family commands are only
     * appended to the output buffer, with no callback of their own. */
    if (c->subscriber) ac->c.flags |= REDIS_MONITORING;
    redisAsyncSetConnectCallback(ac, conn_on_connect);
    redisAsyncSetDisconnectCallback(ac, conn_on_disconnect);
    c->ac = ac;
    c->state = REDIS_CONN_CONNECTING;
    c->push_mode = 0;
    c->opens++;
    ring_reset(c);

    /* The handshake goes first in the output buffer; hiredis writes it once connected. */
    if (url->password) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (url->user) argv[argc++] = url->user;
        argv[argc++] = url->password;
        for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        rc |= command_send(c, NULL, (void *)(intptr_t)HANDSHAKE_AUTH, argc, argv, lens);
    }
    if (url->db) {
        snprintf(db, sizeof(db), "%d", url->db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        rc |= command_send(c, NULL, (void *)(intptr_t)HANDSHAKE_SELECT, 2, argv, lens);
    }
    argv[0] = "CLIENT";
    argv[1] = "SETNAME";
    argv[2] = client_name;
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    rc |= command_send(c, NULL, (void *)(intptr_t)HANDSHAKE_SETNAME, 3, argv, lens);
    c->handshake_left = (int)c->ring_len;
    return rc ? -1 : 0;
}

/* We close: forget the context first, so every callback hiredis runs while freeing it (NULL
 * replies, on_disconnect) sees a stale context and returns. Inside one of this context's own
 * callbacks hiredis defers the free until the callback returns. */
void redis_conn_close(redis_conn *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->state = REDIS_CONN_CLOSED;
    c->handshake_left = 0;
    ring_abandon(c);
    if (ac) redisAsyncFree(ac);
}

void redis_conn_dispose(redis_conn *c)
{
    assert(!c->ac);
    assert(c->in_callback == 0 && "dispose of a connection outside its commands' callbacks");
    lost_run(c);
    if (c->lost_ev) event_free(c->lost_ev);
    c->lost_ev = NULL;
    rc_free(c->lost);
    c->lost = NULL;
    c->nlost = c->lost_cap = 0;
    rc_free(c->ring);
    c->ring = NULL;
    c->ring_cap = c->ring_head = c->ring_len = 0;
}
