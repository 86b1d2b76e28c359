/*
 * test_redis_url.c: rc_redis_url_parse accepts the documented forms (redis://, rediss://,
 * unix://) and refuses the rest with a reason; rc_redis_url_redacted never prints the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "roomcast/redis_url.h"

static void expect_ok(const char *url, const char *host, int port, const char *user,
                      const char *password, int db)
{
    rc_redis_url u;
    const char *err = NULL;
    int rc = rc_redis_url_parse(url, &u, &err);
    if (rc != 0) fail_msg("%s refused: %s", url, err);
    assert_string_equal(u.host, host);
    assert_int_equal(u.port, port);
    if (user) assert_string_equal(u.user, user);
    else assert_null(u.user);
    if (password) assert_string_equal(u.password, password);
    else assert_null(u.password);
    assert_int_equal(u.db, db);
    rc_redis_url_dispose(&u);
    assert_null(u.host);
}

static void expect_refused(const char *url)
{
    rc_redis_url u;
    const char *err = NULL;
    if (rc_redis_url_parse(url, &u, &err) == 0) fail_msg("%s accepted", url ? url : "(null)");
    assert_non_null(err);
    assert_true(strlen(err) > 0);
    assert_null(u.host);
    assert_null(u.user);
    assert_null(u.password);
}

static void test_accepted_forms(void **state)
{
    expect_ok("redis://127.0.0.1:6380", "127.0.0.1", 6380, NULL, NULL, 0);
    expect_ok("redis://localhost", "localhost", 6379, NULL, NULL, 0);
    expect_ok("REDIS://redis-master.default.svc:7000/", "redis-master.default.svc", 7000, NULL,
              NULL, 0);
    expect_ok("redis://h/3", "h", 6379, NULL, NULL, 3);
    expect_ok("redis://:s3cret@h:1/15", "h", 1, NULL, "s3cret", 15);
    expect_ok("redis://alice:pw@h:65535/0", "h", 65535, "alice", "pw", 0);
    expect_ok("redis://[::1]:6390/2", "::1", 6390, NULL, NULL, 2);
    expect_ok("redis://[::1]", "::1", 6379, NULL, NULL, 0);
    /* the userinfo ends at the last '@'; escapes decode */
    expect_ok("redis://:p@ss:w@h", "h", 6379, NULL, "p@ss:w", 0);
    expect_ok("redis://us%3Aer:p%2Fw%25@h", "h", 6379, "us:er", "p/w%", 0);
    expect_ok("redis://h:6379/2147483647", "h", 6379, NULL, NULL, 2147483647);
}

static void test_refused_forms(void **state)
{
    expect_refused(NULL);
    expect_refused("");
    expect_refused("http://h:6379");
    expect_refused("h:6379");
    expect_refused("redis://");
    expect_refused("redis://:6379");
    expect_refused("redis://h:0");
    expect_refused("redis://h:65536");
    expect_refused("redis://h:");
    expect_refused("redis://h:63x79");
    expect_refused("redis://h/x");
    expect_refused("redis://h/-1");
    expect_refused("redis://h/2147483648");
    expect_refused("redis://h/1/2");
    expect_refused("redis://h?timeout=1");
    expect_refused("redis://h/0#frag");
    expect_refused("redis://pw@h");          /* ambiguous: no ':' in the userinfo */
    expect_refused("redis://user:@h");       /* empty password */
    expect_refused("redis://:p%zz@h");       /* bad escape */
    expect_refused("redis://:p%2@h");        /* truncated escape */
    expect_refused("redis://:p%00@h");       /* escaped NUL */
    expect_refused("redis://h st:6379");     /* space */
    expect_refused("redis://h\t:6379");
    expect_refused("redis://[::1:6379");     /* unclosed bracket */
    expect_refused("redis://[zz]:6379");
    expect_refused("redis://bad!host:6379");
}

static void test_tls_and_unix(void **state)
{
    rc_redis_url u;
    const char *err = NULL;
    char buf[160];

    assert_int_equal(rc_redis_url_parse("rediss://:pw@redis.example:6380/1", &u, &err), 0);
    assert_int_equal(u.tls, 1);
    assert_string_equal(u.host, "redis.example");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 1);
    assert_null(u.path);
    assert_string_equal(rc_redis_url_redacted(&u, buf, sizeof(buf)), "rediss://:***@redis.example:6380/1");
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("REDISS://10.0.0.1", &u, &err), 0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(u.port, 6379);
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("redis://h", &u, &err), 0);
    assert_int_equal(u.tls, 0);
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("unix:///run/redis/redis.sock", &u, &err), 0);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_null(u.host);
    assert_int_equal(u.port, 0);
    assert_int_equal(u.tls, 0);
    assert_int_equal(u.db, 0);
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("unix://bob:s%40cret@/tmp/r.sock?db=3", &u, &err), 0);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "s@cret");
    assert_int_equal(u.db, 3);
    rc_redis_url_redacted(&u, buf, sizeof(buf));
    assert_string_equal(buf, "unix://bob:***@/tmp/r.sock?db=3");
    assert_null(strstr(buf, "cret"));
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("unix://:pw@/tmp/r.sock", &u, &err), 0);
    assert_null(u.user);
    assert_string_equal(u.password, "pw");
    rc_redis_url_dispose(&u);

    expect_refused("unix://");
    expect_refused("unix:///");                 /* no path */
    expect_refused("unix://relative/path");
    expect_refused("unix:///tmp/r.sock?db=x");
    expect_refused("unix:///tmp/r.sock?timeout=1");
    expect_refused("unix:///tmp/r.sock?db=1&x=2");
    expect_refused("unix:///tmp/r.sock#f");
    expect_refused("unix://pw@/tmp/r.sock");    /* ambiguous userinfo */
    expect_refused("unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    expect_refused("rediss://");
    expect_refused("rediss://h?x");
    expect_refused("redis+tls://h");
}

static void test_redacted(void **state)
{
    rc_redis_url u;
    const char *err;
    char buf[128];

    assert_int_equal(rc_redis_url_parse("redis://alice:topsecret@h:7/2", &u, &err), 0);
    rc_redis_url_redacted(&u, buf, sizeof(buf));
    assert_string_equal(buf, "redis://alice:***@h:7/2");
    assert_null(strstr(buf, "topsecret"));
    rc_redis_url_dispose(&u);

    assert_int_equal(rc_redis_url_parse("redis://[::1]", &u, &err), 0);
    assert_string_equal(rc_redis_url_redacted(&u, buf, sizeof(buf)), "redis://[::1]:6379/0");
    rc_redis_url_dispose(&u);

    /* all-zero is a valid empty value */
    rc_redis_url_dispose(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_forms),
        cmocka_unit_test(test_refused_forms),
        cmocka_unit_test(test_tls_and_unix),
        cmocka_unit_test(test_redacted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
