/* test_keys.c: every name of keys.h's table, and the buffer contract of rc_key_write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roomcast/common.h"
#include "roomcast/keys.h"

static void expect_key(const char *prefix, int kind, const char *a, const char *b, const char *want)
{
    char *s = rc_key_new(prefix, kind, a, b);
    assert_string_equal(s, want);
    rc_free(s);
}

static void test_every_name(void **state)
{
    (void)state;
    expect_key("roomcast", RC_KEY_ROOM, "/chat", "meeting:42", "roomcast:room:/chat:meeting:42");
    expect_key("roomcast", RC_KEY_NS, "/", NULL, "roomcast:ns:/");
    expect_key("rc", RC_KEY_NOTIFY, NULL, NULL, "rc:notify");
    expect_key("rc", RC_KEY_STATUS, "u1", NULL, "rc:status:u1");
    expect_key("rc", RC_KEY_STATUS, "*", NULL, "rc:status:*");
    expect_key("rc", RC_KEY_CANARY, "n1", NULL, "rc:canary:n1");
    expect_key("rc", RC_KEY_VISIBILITY, "n1", NULL, "rc:visibility:n1");
    expect_key("rc", RC_KEY_PRESENCE, "42", NULL, "rc:presence:42");
    expect_key("rc", RC_KEY_MEMBERS, "/", "r1", "rc:members:/:r1");
    expect_key("rc", RC_KEY_NODES, NULL, NULL, "rc:nodes");
    expect_key("rc", RC_KEY_SWEEPING, NULL, NULL, "rc:sweeping");
    expect_key("rc", RC_KEY_INVISIBLE, NULL, NULL, "rc:invisible");
    expect_key("rc", RC_KEY_NODE_CONNS, "n1", NULL, "rc:node:n1:conns");
    expect_key("rc", RC_KEY_NODE_MEMBERS, "n1", NULL, "rc:node:n1:members");
    expect_key("rc", RC_KEY_EVENTS, NULL, NULL, "rc:events");
    expect_key("{bull}", RC_KEY_QUEUE, "email", NULL, "{bull}:email:");
    expect_key("rc", RC_KEY_HISTORY, "/chat", NULL, "rc:history:/chat");
    expect_key("rc", RC_KEY_SESSION, "pid1", NULL, "rc:session:pid1");
    expect_key("rc", RC_KEY_ONCE, "/", "n-1", "rc:once:/:n-1");
    /* parts left out at the end: the start every such name shares */
    expect_key("rc", RC_KEY_ROOM, "", NULL, "rc:room:");
    expect_key("rc", RC_KEY_NS, "", NULL, "rc:ns:");
    expect_key("rc", RC_KEY_STATUS, "", NULL, "rc:status:");
}

static void test_write_truncates_like_snprintf(void **state)
{
    (void)state;
    char small[8];
    size_t n = rc_key_write(small, sizeof(small), "roomcast", RC_KEY_NS, "/", NULL);
    assert_int_equal(n, strlen("roomcast:ns:/"));
    assert_string_equal(small, "roomcas");
    char fit[32];
    assert_int_equal(rc_key_write(fit, sizeof(fit), "roomcast", RC_KEY_NS, "/", NULL), 13);
    assert_string_equal(fit, "roomcast:ns:/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_name),
        cmocka_unit_test(test_write_truncates_like_snprintf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
