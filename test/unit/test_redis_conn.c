/*
 * test_redis_conn.c: the pure part of src/redis_conn.c: which error replies carry a class its
 * owner acts on (READONLY for Sentinel, MOVED/ASK for Cluster), and which do not. The connection
 * itself runs against real Redis servers in test_backplane_redis.c, test_presence.c, test_jobs.c
 * and test/e2e/redis_tls.test.js (TLS, unix socket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <string.h>

#include "../../src/redis_conn.h"

static int cls_of(int type, const char *s)
{
    redisReply r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.str = (char *)s;
    r.len = s ? strlen(s) : 0;
    return redis_conn_error_class(&r);
}

static void test_error_classes(void **state)
{
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "READONLY You can't write against a read only replica."),
                     REDIS_ERR_READONLY);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "MOVED 3999 127.0.0.1:6381"), REDIS_ERR_MOVED);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "ASK 3999 127.0.0.1:6381"), REDIS_ERR_ASK);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "TRYAGAIN Multiple keys request during rehashing of slot"),
                     REDIS_ERR_TRYAGAIN);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "CLUSTERDOWN The cluster is down"), REDIS_ERR_CLUSTERDOWN);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "LOADING Redis is loading the dataset in memory"),
                     REDIS_ERR_LOADING);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "MASTERDOWN Link with MASTER is down"), REDIS_ERR_MASTERDOWN);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "READONLY"), REDIS_ERR_READONLY);

    /* errors of the command itself, look-alikes, and non-errors have no class */
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "ERR unknown command"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "NOSCRIPT No matching script"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "ASKING"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "MOVEDX 1 h:1"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, "readonly lower case"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_ERROR, ""), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_STATUS, "MOVED 1 h:1"), REDIS_ERR_NONE);
    assert_int_equal(cls_of(REDIS_REPLY_STRING, "READONLY"), REDIS_ERR_NONE);
    assert_int_equal(redis_conn_error_class(NULL), REDIS_ERR_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
