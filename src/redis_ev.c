/*
 * redis_ev.c: hiredis's asynchronous hooks on libevent (see include/roomcast/redis_ev.h).
 *
 * hiredis calls five hooks: addRead/delRead/addWrite/delWrite when it wants to read or write,
 * and cleanup when the context is freed. Here:
 *   - read: one persistent EV_READ event, added once and deleted only by delRead;
 *   - write: addWrite marks the connection as having output and activates `flush`, an event run
 *     at the end of the current loop turn, which lets hiredis write everything the turn queued
 *     with one system call. Only when the socket does not take it all (or a connect is still in
 *     progress) is the EV_WRITE event armed, and it is one-shot, like hiredis's.
 *   - a readable event reads what is waiting, up to MAX_READS_PER_TURN reads of 16 KiB (hiredis
 *     reads 16 KiB a call) or MAX_READ_NS_PER_TURN of work, before the turn ends. The server
 *     flushes its sockets once per turn: under a burst of publishes every socket then gets the
 *     frames of many messages in one writev, while at a moderate rate there is one read and the
 *     flush follows at once. The caps bound how long one turn spends on Redis input (4 MiB or
 *     100 ms, whichever comes first), so other clients wait at most that for their turn.
 * A hook may free the context (a write error disconnects it): cleanup then only marks the
 * struct dead while one of our callbacks is running, and that callback frees it on the way out.
 */
#include "roomcast/redis_ev.h"
#include "roomcast/common.h"

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/ioctl.h>

#define MAX_READS_PER_TURN 256
#define MAX_READ_NS_PER_TURN (100 * 1000000ull)

typedef struct redis_ev {
    redisAsyncContext *ac;
    struct event *rev;   /* EV_READ | EV_PERSIST */
    struct event *wev;   /* EV_WRITE, one-shot: armed only while the kernel buffer is full */
    struct event *flush; /* activated by addWrite: hiredis writes at the end of the turn */
    unsigned reading : 1, want_write : 1, write_armed : 1, writing : 1, dead : 1;
    unsigned in_cb;      /* depth of our callbacks on the stack */
} redis_ev;

static void ev_arm_write(redis_ev *e)
{
    if (e->write_armed) return;
    e->write_armed = 1;
    event_add(e->wev, NULL);
}

/* Lets hiredis write (or finish its connect); the hooks it calls meanwhile see `writing`. */
static void ev_handle_write(redis_ev *e)
{
    e->in_cb++;
    e->writing = 1;
    redisAsyncHandleWrite(e->ac);
    e->in_cb--;
    if (e->dead) {
        if (e->in_cb == 0) rc_free(e);
        return;
    }
    e->writing = 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    redis_ev *e = arg;
    e->in_cb++;
    uint64_t t0 = rc_now_mono_ns();
    for (int reads = 0; reads < MAX_READS_PER_TURN; reads++) {
        redisAsyncHandleRead(e->ac);
        if (e->dead || !e->reading || (e->ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) break;
        if (rc_now_mono_ns() - t0 > MAX_READ_NS_PER_TURN) break;
        int waiting = 0;
        if (ioctl(fd, FIONREAD, &waiting) != 0 || waiting <= 0) break;
    }
    e->in_cb--;
    if (e->dead && e->in_cb == 0) rc_free(e);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    redis_ev *e = arg;
    e->write_armed = 0; /* one-shot: it fired, it is no longer pending */
    ev_handle_write(e);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    redis_ev *e = arg;
    if (e->want_write && !e->write_armed) ev_handle_write(e);
}

static void hook_add_read(void *arg)
{
    redis_ev *e = arg;
    if (e->reading) return;
    e->reading = 1;
    event_add(e->rev, NULL);
}

static void hook_del_read(void *arg)
{
    redis_ev *e = arg;
    if (!e->reading) return;
    e->reading = 0;
    event_del(e->rev);
}

static void hook_add_write(void *arg)
{
    redis_ev *e = arg;
    e->want_write = 1;
    /* While hiredis is writing, "add write" means the socket is full or the connect has not
     * completed: wait for writability. Before the connect completes, likewise. */
    if (e->writing || !(e->ac->c.flags & REDIS_CONNECTED)) {
        ev_arm_write(e);
        return;
    }
    if (!e->write_armed) event_active(e->flush, EV_WRITE, 0);
}

static void hook_del_write(void *arg)
{
    redis_ev *e = arg;
    e->want_write = 0;
    if (e->write_armed) {
        e->write_armed = 0;
        event_del(e->wev);
    }
}

static void hook_cleanup(void *arg)
{
    redis_ev *e = arg;
    event_free(e->rev);
    event_free(e->wev);
    event_free(e->flush);
    e->rev = e->wev = e->flush = NULL;
    if (e->in_cb) e->dead = 1; /* the callback on the stack frees it */
    else rc_free(e);
}

int rc_redis_ev_attach(redisAsyncContext *ac, struct event_base *base)
{
    if (ac->ev.data != NULL) return REDIS_ERR;
    redis_ev *e = rc_calloc(1, sizeof(*e));
    e->ac = ac;
    e->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_read, e);
    e->wev = event_new(base, ac->c.fd, EV_WRITE, on_writable, e);
    e->flush = event_new(base, -1, 0, on_flush, e);
    if (!e->rev || !e->wev || !e->flush) {
        if (e->rev) event_free(e->rev);
        if (e->wev) event_free(e->wev);
        if (e->flush) event_free(e->flush);
        rc_free(e);
        return REDIS_ERR;
    }
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
    ac->ev.data = e;
    /* as hiredis's adapter does: read at once, and write to learn when the connect completes */
    hook_add_read(e);
    ev_arm_write(e);
    e->want_write = 1;
    return REDIS_OK;
}
