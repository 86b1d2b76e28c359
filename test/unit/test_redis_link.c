/*
 * test_redis_link.c: the connection lifecycle pieces every Redis connection shares
 * (src/redis_link.h): the jittered exponential backoff stays in its bounds and doubles up to its
 * cap; a name lookup answers an address and can be disposed of while it runs; the canary's
 * rules (its token, "lost" only when overdue and the subscriber is not delivering).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/redis_link.h"
#include "roomcast/common.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <time.h>

static void test_backoff(void **state)
{
    uint64_t step = 0, expect = REDIS_LINK_BACKOFF_MIN_MS;
    for (int i = 0; i < 20; i++) {
        uint64_t d = redis_link_backoff(&step);
        assert_int_equal(step, expect);
        assert_true(d >= step / 2 && d <= step);
        expect = expect * 2 > REDIS_LINK_BACKOFF_MAX_MS ? REDIS_LINK_BACKOFF_MAX_MS : expect * 2;
    }
    assert_int_equal(step, REDIS_LINK_BACKOFF_MAX_MS);
    /* the jitter is real: 200 draws at the cap are not all the same */
    uint64_t first = redis_link_backoff(&step), differ = 0;
    for (int i = 0; i < 200; i++) differ += redis_link_backoff(&step) != first;
    assert_true(differ > 0);
    step = 0; /* the owner's reset once the link works */
    assert_true(redis_link_backoff(&step) <= REDIS_LINK_BACKOFF_MIN_MS);
}

static void test_numeric(void **state)
{
    assert_true(redis_link_numeric("127.0.0.1"));
    assert_true(redis_link_numeric("::1"));
    assert_false(redis_link_numeric("localhost"));
    assert_false(redis_link_numeric("127.0.0.1:6379"));
}

static void test_resolve(void **state)
{
    redis_link_resolve r;
    memset(&r, 0, sizeof(r));
    redis_link_resolve_dispose(&r); /* idle: nothing to do */
    assert_int_equal(redis_link_resolve_start(&r, "localhost"), 0);
    char ip[64], why[200];
    int done = 0;
    for (int i = 0; i < 2000 && done == 0; i++) {
        done = redis_link_resolve_poll(&r, ip, sizeof(ip), why, sizeof(why));
        if (done == 0) nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    if (done != 1) fail_msg("localhost: %s", done < 0 ? why : "no answer");
    assert_true(strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0);
    assert_false(redis_link_resolve_running(&r, "localhost"));
    redis_link_resolve_dispose(&r);
    assert_null(r.name);

    /* disposed of while it may still run: cancelled or waited for, never leaked */
    assert_int_equal(redis_link_resolve_start(&r, "localhost"), 0);
    assert_int_equal(redis_link_resolve_start(&r, "localhost"), 0); /* a new one replaces it */
    redis_link_resolve_dispose(&r);
    assert_null(r.name);
}

static void no_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, struct redisReply *reply)
{
}

static void test_canary(void **state)
{
    struct event_base *base = event_base_new();
    redis_conn_callbacks cb = {0};
    redis_conn c;
    memset(&c, 0, sizeof(c));
    redis_conn_init(&c, base, "cmd", &cb);
    redis_link_canary k;
    memset(&k, 0, sizeof(k));

    /* a closed connection: not sent, nothing pending, the next one due an interval later */
    uint64_t now = rc_now_mono_ms();
    assert_int_equal(redis_link_canary_send(&k, &c, "PUBLISH", "ch", 2, "abc", no_reply, NULL), -1);
    assert_false(k.pending);
    assert_int_equal(k.seq, 1);
    assert_true(k.next_ms >= now + REDIS_LINK_CANARY_INTERVAL_MS);
    assert_false(redis_link_canary_due(&k, now));
    assert_true(redis_link_canary_due(&k, k.next_ms));

    /* only the pending token counts */
    assert_false(redis_link_canary_received(&k, "abc", "abc:1", 5)); /* none pending */
    k.pending = 1;
    k.sent_ms = 1000;
    k.sent_ns = rc_now_mono_ns();
    assert_false(redis_link_canary_received(&k, "abc", "abc:0", 5));
    assert_false(redis_link_canary_received(&k, "xyz", "abc:1", 5));
    assert_false(redis_link_canary_received(&k, "abc", "abc:1x", 6));
    assert_true(k.pending);
    assert_true(redis_link_canary_received(&k, "abc", "abc:1", 5));
    assert_false(k.pending);
    assert_true(k.lag_s >= 0);

    /* lost: overdue, and the subscriber delivered nothing since (or waited the busy maximum) */
    k.pending = 1;
    uint64_t t = k.sent_ms + REDIS_LINK_CANARY_TIMEOUT_MS;
    assert_false(redis_link_canary_lost(&k, t - 1, 0));
    assert_true(redis_link_canary_lost(&k, t, 0));
    assert_true(redis_link_canary_lost(&k, t, k.sent_ms - 1));
    assert_false(redis_link_canary_lost(&k, t, k.sent_ms));
    assert_true(redis_link_canary_lost(&k, k.sent_ms + REDIS_LINK_CANARY_BUSY_MAX_MS, k.sent_ms + 5));
    assert_false(redis_link_canary_due(&k, UINT64_MAX));

    k.ok = 1;
    redis_link_canary_reset(&k);
    assert_false(k.pending);
    assert_false(k.ok);
    assert_int_equal(k.seq, 1); /* the sequence goes on */

    redis_conn_dispose(&c);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_canary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
