/*
 * redis_ev.h: hiredis's asynchronous hooks on libevent, written for roomcast's loop.
 *
 * hiredis ships an adapter (hiredis/adapters/libevent.h) whose read event is one-shot: it is
 * deleted when it fires and added back after every read, two epoll changes per read. Its write
 * event is armed for every command and disarmed once the buffer is out: two more changes per
 * batch, and a loop turn passes before anything is sent. This adapter keeps the read event
 * persistent and writes the commands of a loop turn at the end of that turn (the same moment the
 * server flushes its sockets), arming the write event only while the kernel does not take
 * everything, and while a connect is in progress.
 */
#ifndef ROOMCAST_REDIS_EV_H
#define ROOMCAST_REDIS_EV_H

struct redisAsyncContext;
struct event_base;

/* Attaches ac to base (as redisLibeventAttach does). REDIS_OK, or REDIS_ERR when something is
 * already attached or an event cannot be made. hiredis frees what this allocates through its
 * cleanup hook, when the context is freed. */
int rc_redis_ev_attach(struct redisAsyncContext *ac, struct event_base *base);

#endif
