/*
 * test_redis_cluster.c: src/redis_cluster.c against a real cluster of three masters
 * (cluster_harness.h): slots as CLUSTER KEYSLOT computes them, the slot -> master maps read from
 * CLUSTER SHARDS and CLUSTER SLOTS, and MOVED / ASK replies as Redis writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "cluster_harness.h"
#include "../../src/redis_cluster.h"

static ch_cluster cl;

static int setup(void **state)
{
    (void)state;
    return ch_start(&cl);
}

static int teardown(void **state)
{
    (void)state;
    ch_stop(&cl);
    return 0;
}

static void test_crc16_check_value(void **state)
{
    (void)state;
    /* CRC16/XMODEM's check value for "123456789" is 0x31C3 */
    assert_int_equal(redis_cluster_slot("123456789", 9), 0x31C3);
    assert_int_equal(redis_cluster_slot("", 0), 0);
}

static void test_slot_matches_keyslot(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "foo", "bar", "roomcast:room:/:r1", "roomcast:room:/chat:meeting:42", "roomcast:ns:/",
        "roomcast:notify", "{roomcast}:presence:42", "{bull}:email:id", "{bull}:email:wait",
        "{user1000}.following", "{user1000}.followers", "{}", "{}x", "x{}", "a{b}c", "a{{b}}",
        "x{}{y}", "{a", "a}", "}{a}", "{a}{b}", "{{}}", "roomcast:canary:n1:{7}", "\xff\x00\x01",
    };
    static const size_t lens[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                  0, 0, 3};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t len = lens[i] ? lens[i] : strlen(keys[i]);
        redisContext *c = rh_client(&cl.s[0]);
        assert_non_null(c);
        const char *argv[3] = {"CLUSTER", "KEYSLOT", keys[i]};
        size_t argvlen[3] = {7, 7, len};
        redisReply *r = redisCommandArgv(c, 3, argv, argvlen);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(redis_cluster_slot(keys[i], len), r->integer);
        freeReplyObject(r);
        redisFree(c);
    }
    /* a tag makes keys of one family share a slot; the same names without it spread */
    assert_int_equal(redis_cluster_slot("{bull}:email:wait", 17), redis_cluster_slot("bull", 4));
    assert_int_not_equal(redis_cluster_slot("a{}b", 4), redis_cluster_slot("", 0));
}

static void check_map(const redis_cluster_map *m)
{
    assert_int_equal(m->nmasters, CH_N);
    assert_int_equal(m->unowned, 0);
    for (int i = 0; i < CH_N; i++) {
        int first = redis_cluster_owner(m, (uint16_t)ch_first_slot(i));
        int last = redis_cluster_owner(m, (uint16_t)ch_last_slot(i));
        assert_true(first >= 0);
        assert_int_equal(first, last);
        assert_string_equal(m->masters[first].host, "127.0.0.1");
        assert_int_equal(m->masters[first].port, cl.s[i].port);
        assert_int_equal(redis_cluster_find(m, "127.0.0.1", cl.s[i].port), first);
    }
}

static void test_map_from_shards_and_slots(void **state)
{
    (void)state;
    for (int asked = 0; asked < CH_N; asked++) {
        redis_cluster_map shards = {0}, slots = {0};
        const char *err = NULL;
        redisReply *r = ch_command(&cl.s[asked], "CLUSTER SHARDS");
        assert_non_null(r);
        assert_int_equal(redis_cluster_map_from_shards(&shards, r, "127.0.0.1", 0, &err), 0);
        assert_null(err);
        freeReplyObject(r);
        check_map(&shards);

        r = ch_command(&cl.s[asked], "CLUSTER SLOTS");
        assert_non_null(r);
        assert_int_equal(redis_cluster_map_from_slots(&slots, r, "127.0.0.1", &err), 0);
        freeReplyObject(r);
        check_map(&slots);
        for (int s = 0; s < REDIS_CLUSTER_SLOTS; s++) {
            int a = redis_cluster_owner(&shards, (uint16_t)s), b = redis_cluster_owner(&slots, (uint16_t)s);
            assert_int_equal(shards.masters[a].port, slots.masters[b].port);
        }
        /* no TLS port in this cluster: asking for it is an error, not a guess */
        r = ch_command(&cl.s[asked], "CLUSTER SHARDS");
        assert_int_equal(redis_cluster_map_from_shards(&shards, r, "127.0.0.1", 1, &err), -1);
        assert_non_null(err);
        assert_int_equal(shards.nmasters, 0);
        freeReplyObject(r);
        redis_cluster_map_dispose(&shards);
        redis_cluster_map_dispose(&slots);
    }
}

static void test_not_a_topology(void **state)
{
    (void)state;
    redis_cluster_map m = {0};
    const char *err = NULL;
    redisReply *r = ch_command(&cl.s[0], "PING");
    assert_int_equal(redis_cluster_map_from_shards(&m, r, "h", 0, &err), -1);
    assert_non_null(err);
    assert_int_equal(redis_cluster_map_from_slots(&m, r, "h", &err), -1);
    assert_int_equal(redis_cluster_owner(&m, 0), -1);
    freeReplyObject(r);
    r = ch_command(&cl.s[0], "CLUSTER KEYSLOT x"); /* an integer */
    assert_int_equal(redis_cluster_map_from_slots(&m, r, "h", &err), -1);
    freeReplyObject(r);
    redis_cluster_map_dispose(&m);
}

static void test_moved_as_redis_writes_it(void **state)
{
    (void)state;
    /* "foo" is slot 12182: master 2's; ask master 0 */
    redisReply *r = ch_command(&cl.s[0], "GET foo");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    uint16_t slot = 0;
    int port = 0;
    char host[64];
    assert_int_equal(redis_cluster_redirect(r->str, r->len, &slot, host, sizeof(host), &port), 1);
    assert_int_equal(slot, 12182);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, cl.s[2].port);
    freeReplyObject(r);

    /* SPUBLISH is routed like a key */
    r = ch_command(&cl.s[0], "SPUBLISH foo x");
    assert_int_equal(redis_cluster_redirect(r->str, r->len, &slot, host, sizeof(host), &port), 1);
    assert_int_equal(port, cl.s[2].port);
    freeReplyObject(r);

    static const char ask[] = "ASK 3999 [::1]:6381";
    assert_int_equal(redis_cluster_redirect(ask, strlen(ask), &slot, host, sizeof(host), &port), 2);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "[::1]");
    assert_int_equal(port, 6381);
    static const char noep[] = "MOVED 7 :6380";
    assert_int_equal(redis_cluster_redirect(noep, strlen(noep), &slot, host, sizeof(host), &port), 1);
    assert_string_equal(host, "");
    static const char *const bad[] = {"MOVED", "MOVED 16384 h:1", "MOVED 1 h", "MOVED 1 h:0",
                                      "MOVED 1 h:99999", "MOVED x h:1", "ERR x", "ASK 1 h:1 z",
                                      "MOVED 1 h:1x", "CROSSSLOT Keys"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(redis_cluster_redirect(bad[i], strlen(bad[i]), &slot, host, 4, &port), 0);
    static const char longhost[] = "MOVED 1 abcdefgh:1";
    assert_int_equal(redis_cluster_redirect(longhost, strlen(longhost), &slot, host, 4, &port), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_check_value),
        cmocka_unit_test(test_slot_matches_keyslot),
        cmocka_unit_test(test_map_from_shards_and_slots),
        cmocka_unit_test(test_not_a_topology),
        cmocka_unit_test(test_moved_as_redis_writes_it),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
