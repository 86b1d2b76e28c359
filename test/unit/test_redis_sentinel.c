/*
 * test_redis_sentinel.c: the +switch-master message parser of src/redis_sentinel.c (the rest of
 * the module talks to real sentinels: test/e2e/redis_sentinel.test.js).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "../../src/redis_sentinel.h"

static int parse(const char *msg, const char *name, char *ip, int *port)
{
    return rc_sentinel_parse_switch(msg, strlen(msg), name, ip, 64, port);
}

static void test_switch_for_our_master(void **state)
{
    (void)state;
    char ip[64];
    int port = 0;
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster", ip, &port), 0);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(port, 6380);
    assert_int_equal(parse("m ::1 1 fe80::2 26379", "m", ip, &port), 0);
    assert_string_equal(ip, "fe80::2");
    assert_int_equal(port, 26379);
}

static void test_other_masters_and_garbage(void **state)
{
    (void)state;
    char ip[64] = "unchanged";
    int port = 7;
    assert_int_equal(parse("other 127.0.0.1 6379 127.0.0.1 6380", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymasterX 127.0.0.1 6379 127.0.0.1 6380", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1 6380 extra", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1 0", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1 65536", "mymaster", ip, &port), -1);
    assert_int_equal(parse("mymaster 127.0.0.1 6379 127.0.0.1 63x", "mymaster", ip, &port), -1);
    assert_int_equal(parse("", "mymaster", ip, &port), -1);
    assert_string_equal(ip, "unchanged");
    assert_int_equal(port, 7);
    /* an address longer than the caller's buffer is refused, not truncated */
    char small[8];
    assert_int_equal(rc_sentinel_parse_switch("m a 1 123.123.123.123 5", 23, "m", small, sizeof(small), &port), -1);
    /* a message longer than any real one */
    char big[700];
    memset(big, 'a', sizeof(big));
    assert_int_equal(rc_sentinel_parse_switch(big, sizeof(big), "m", ip, sizeof(ip), &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_for_our_master),
        cmocka_unit_test(test_other_masters_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
