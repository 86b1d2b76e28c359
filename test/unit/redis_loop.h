/*
 * redis_loop.h: the fixture the Redis-backed unit tests share (test_backplane_redis,
 * test_presence, test_jobs): one real redis-server for the whole group (`shared`), and a fresh
 * libevent loop per test (`base`, kept turning by a 5 ms `wake` timer) with run_until to drive it
 * until a condition holds. Include it once, after redis_harness.h, in a test file.
 */
#ifndef ROOMCAST_TEST_REDIS_LOOP_H
#define ROOMCAST_TEST_REDIS_LOOP_H

#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "redis_harness.h"
#include "roomcast/common.h"
#include "roomcast/log.h"

static rh_server shared;
static struct event_base *base;
static struct event *wake;

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
}

/* Turns the loop until pred(arg) holds: 1, or 0 after timeout_ms. */
static int run_until(int (*pred)(void *), void *arg, int timeout_ms)
{
    uint64_t end = rc_now_mono_ms() + (uint64_t)timeout_ms;
    while (!pred(arg)) {
        if (rc_now_mono_ms() >= end) return 0;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return 1;
}

static int group_setup(void **state)
{
    rc_log_setup(getenv("RC_TEST_DEBUG") ? RC_LOG_DEBUG : RC_LOG_ERROR + 1, 0);
    if (rh_start(&shared, rh_free_port(), NULL) != 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    rh_kill(&shared);
    return 0;
}

static int setup(void **state)
{
    struct timeval tv = {0, 5000};
    base = event_base_new();
    wake = event_new(base, -1, EV_PERSIST, on_wake, NULL);
    event_add(wake, &tv);
    return 0;
}

static int teardown(void **state)
{
    event_free(wake);
    event_base_free(base);
    base = NULL;
    return 0;
}

#endif
