/* test_recovery.c: the pure parts of connection state recovery: the "recovery" object of a
 * namespace (defaults, refusals with their paths), which emits are kept (rooms globs, volatile
 * events, namespace-wide emits), and the offset appended as the last argument of a packet. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "roomcast/common.h"
#include "roomcast/errors.h"
#include "roomcast/recovery_config.h"
#include "roomcast/rules.h"

#include <cjson/cJSON.h>
#include <string.h>

char *rc_sio__args_with_offset(const char *args, size_t len, const char *offset, size_t *out_len);

static int parse(const char *json, rc_recovery_config *out, rc_config_errors *errs)
{
    cJSON *j = cJSON_Parse(json);
    int r = rc_recovery_config_parse(out, j, "namespaces./.recovery", errs);
    cJSON_Delete(j);
    return r;
}

static void test_defaults_are_off(void **state)
{
    (void)state;
    rc_recovery_config c;
    rc_config_errors e = {0};
    assert_int_equal(rc_recovery_config_parse(&c, NULL, "x", &e), 0);
    assert_int_equal(c.enabled, 0);
    assert_int_equal(c.max_disconnection_ms, 120000);
    assert_int_equal(c.max_replay_scan, 50000);
    assert_int_equal(c.max_recoveries_per_minute, 30);
    assert_int_equal(c.nrooms, 1);
    assert_string_equal(c.rooms[0], "*");
    rc_recovery_config_dispose(&c);
    rc_config_errors_dispose(&e);
}

static void test_parse_and_refusals(void **state)
{
    (void)state;
    rc_recovery_config c;
    rc_config_errors e = {0};
    assert_int_equal(parse("{\"enabled\":true,\"maxDisconnectionDuration\":5000,\"rooms\":[\"chat:*\"],"
                           "\"volatile\":[\"typing*\"],\"maxLength\":2000,\"presenceGrace\":false,"
                           "\"maxReplayScan\":3000,\"maxRecoveriesPerMinute\":0}", &c, &e), 0);
    assert_int_equal(c.enabled, 1);
    assert_int_equal(c.max_recoveries_per_minute, 0); /* unlimited */
    assert_int_equal(c.max_replay_scan, 3000);
    assert_int_equal(c.max_disconnection_ms, 5000);
    assert_int_equal(c.max_length, 2000);
    assert_int_equal(c.presence_grace, 0);
    assert_int_equal(c.nvolatile, 1);
    rc_recovery_config_dispose(&c);
    assert_int_equal(e.count, 0);

    assert_int_equal(parse("{\"enabled\":1}", &c, &e), -1);
    assert_int_equal(parse("{\"maxDisconnectionDuration\":999}", &c, &e), -1);
    assert_int_equal(parse("{\"rooms\":[\"\"]}", &c, &e), -1);
    assert_int_equal(parse("{\"nope\":1}", &c, &e), -1);
    assert_int_equal(parse("[]", &c, &e), -1);
    assert_int_equal(parse("{\"maxReplayScan\":999}", &c, &e), -1);
    assert_int_equal(parse("{\"maxRecoveriesPerMinute\":-1}", &c, &e), -1);
    assert_int_equal(parse("{\"maxRecoveriesPerMinute\":2.5}", &c, &e), -1);
    assert_int_equal(e.count, 8);
    assert_non_null(strstr(e.items[7], "namespaces./.recovery.maxRecoveriesPerMinute"));
    assert_non_null(strstr(e.items[0], "namespaces./.recovery.enabled"));
    assert_int_equal(c.enabled, 0); /* a refused object leaves the defaults */
    rc_recovery_config_dispose(&c);
    rc_config_errors_dispose(&e);
}

static void test_what_is_kept(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"/\":{\"auth\":\"none\",\"recovery\":{\"enabled\":true,\"rooms\":[\"chat:*\",\"user:*\"],"
                           "\"volatile\":[\"typing\"]}},\"/all\":{\"auth\":\"none\",\"recovery\":{\"enabled\":true}},"
                           "\"/off\":{\"auth\":\"none\"}}");
    rc_config_errors e = {0};
    rc_rules *r = rc_rules_compile(j, "namespaces", &e);
    cJSON_Delete(j);
    assert_non_null(r);
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/", 1);
    assert_int_equal(rc_ns_rules_recovery_keeps(ns, "chat:1", "msg"), 1);
    assert_int_equal(rc_ns_rules_recovery_keeps(ns, "user:bob", "msg"), 1);
    assert_int_equal(rc_ns_rules_recovery_keeps(ns, "lobby", "msg"), 0);
    assert_int_equal(rc_ns_rules_recovery_keeps(ns, "chat:1", "typing"), 0);   /* volatile */
    assert_int_equal(rc_ns_rules_recovery_keeps(ns, NULL, "msg"), 0);         /* no "*" */
    assert_int_equal(rc_ns_rules_recovery_keeps(rc_rules_find_ns(r, "/all", 4), NULL, "msg"), 1);
    assert_int_equal(rc_ns_rules_recovery_keeps(rc_rules_find_ns(r, "/off", 4), "chat:1", "msg"), 0);
    rc_rules_free(r);
    rc_config_errors_dispose(&e);
}

static void expect_args(const char *args, const char *offset, const char *want)
{
    size_t n;
    char *s = rc_sio__args_with_offset(args, args ? strlen(args) : 0, offset, &n);
    assert_string_equal(s, want);
    assert_int_equal(n, strlen(want));
    rc_free(s);
}

static void test_offset_is_the_last_argument(void **state)
{
    (void)state;
    expect_args("[1,{\"a\":2}]", "17-0", "[1,{\"a\":2},\"17-0\"]");
    expect_args("[]", "17-3", "[\"17-3\"]");
    expect_args(NULL, "1-1", "[\"1-1\"]");
    expect_args("[ ]", "1-1", "[\"1-1\"]");
    expect_args("[\"x\"]", "1700000000000-12", "[\"x\",\"1700000000000-12\"]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_off),
        cmocka_unit_test(test_parse_and_refusals),
        cmocka_unit_test(test_what_is_kept),
        cmocka_unit_test(test_offset_is_the_last_argument),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
