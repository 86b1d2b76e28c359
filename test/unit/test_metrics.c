/*
 * test_metrics.c: src/metrics.c — histogram buckets, the exposition helpers checked line by line
 * by a small parser (expo.h: HELP/TYPE once per family, name{labels} value), label escaping, and
 * the process_* metrics. The families of a whole node are checked in test_node.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/metrics.h"

#include "expo.h"

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_bounds(void **state)
{
    assert_true(rc_hist_bounds[0] == 0.00005);
    assert_true(rc_hist_bounds[RC_HIST_BUCKETS - 1] == 5.0);
    for (size_t i = 1; i < RC_HIST_BUCKETS; i++) assert_true(rc_hist_bounds[i] > rc_hist_bounds[i - 1]);
}

static void test_histogram_observe(void **state)
{
    rc_histogram h = {0};
    rc_histogram_observe(&h, 0.00005); /* on a bound: that bucket (le) */
    rc_histogram_observe(&h, -1);      /* clock step backwards: lowest bucket */
    rc_histogram_observe(&h, 0.0003);  /* (0.00025, 0.0005] */
    rc_histogram_observe(&h, 0.0005);
    rc_histogram_observe(&h, 2.0);     /* (1, 5] */
    rc_histogram_observe(&h, 10.0);    /* +Inf only */
    rc_histogram_observe(&h, NAN);     /* dropped */
    assert_int_equal(h.buckets[0], 2);
    assert_int_equal(h.buckets[3], 2);
    assert_int_equal(h.buckets[13], 1);
    uint64_t in_buckets = 0;
    for (size_t i = 0; i < RC_HIST_BUCKETS; i++) in_buckets += h.buckets[i];
    assert_int_equal(in_buckets, 5);
    assert_int_equal(h.count, 6);
    assert_true(fabs(h.sum - (0.00005 - 1 + 0.0003 + 0.0005 + 2 + 10)) < 1e-12);
}

static void test_histogram_exposition(void **state)
{
    rc_histogram hist = {0}, *h = &hist;
    rc_histogram_observe(h, 0.00004);
    rc_histogram_observe_n(h, 0.0002, 2); /* as two observations */
    rc_histogram_observe_n(h, 0.5, 0);    /* nothing */
    rc_histogram_observe(h, 0.003);
    rc_histogram_observe(h, 7);
    struct evbuffer *out = evbuffer_new();
    rc_metrics_put_histogram(out, "roomcast_delivery_latency_seconds", "Delivery latency.", h);
    static expo e;
    parse_expo(&e, out);

    const family *f = family_find(&e, "roomcast_delivery_latency_seconds");
    assert_non_null(f);
    assert_string_equal(f->type, "histogram");
    assert_int_equal(f->samples, RC_HIST_BUCKETS + 3);
    const char *n = "roomcast_delivery_latency_seconds_bucket";
    assert_true(value_of(&e, n, "le=5e-05") == 1);
    assert_true(value_of(&e, n, "le=0.0001") == 1);
    assert_true(value_of(&e, n, "le=0.00025") == 3);
    assert_true(value_of(&e, n, "le=0.0025") == 3);
    assert_true(value_of(&e, n, "le=0.005") == 4);
    assert_true(value_of(&e, n, "le=1") == 4);
    assert_true(value_of(&e, n, "le=5") == 4);
    assert_true(value_of(&e, n, "le=+Inf") == 5);
    assert_true(value_of(&e, "roomcast_delivery_latency_seconds_count", "") == 5);
    assert_true(fabs(value_of(&e, "roomcast_delivery_latency_seconds_sum", "") - 7.00344) < 1e-9);

    /* cumulative: never decreasing, le values ascending */
    double prev_le = -1, prev = 0;
    for (size_t i = 0; i < e.ns; i++) {
        if (strcmp(e.s[i].name, n) != 0) continue;
        double le = parse_value(e.s[i].labels + 3);
        assert_true(le > prev_le);
        assert_true(e.s[i].value >= prev);
        prev_le = le;
        prev = e.s[i].value;
    }
    assert_true(isinf(prev_le));
    evbuffer_free(out);
}

/* The helpers each module writes its families with (the families of a whole node: test_node.c). */
static void test_helpers(void **state)
{
    static const char *const codes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    static const uint64_t counts[] = {0, 0, 5, 0, 1, 0};
    static const char *const info_names[] = {"version", "node"};
    static const char *const info_values[] = {"1.2.3", "node-a"};
    struct evbuffer *out = evbuffer_new();
    rc_metrics_put_scalar(out, "roomcast_connections", "gauge", "Open TCP connections.", 12);
    rc_metrics_put_by_label(out, "roomcast_http_requests_total", "counter", "HTTP responses.", "code", codes,
                            counts, 1, RC_ARRAY_LEN(codes));
    rc_metrics_put_labelled(out, "roomcast_build_info", "gauge", "Build.", info_names, info_values, 2, 1);
    rc_metrics_put_gauge_double(out, "roomcast_redis_canary_lag_seconds", "Lag.", 0.25);
    static expo e;
    parse_expo(&e, out);
    assert_int_equal(e.nf, 4);
    assert_string_equal(family_find(&e, "roomcast_connections")->type, "gauge");
    assert_string_equal(family_find(&e, "roomcast_http_requests_total")->type, "counter");
    assert_int_equal(family_find(&e, "roomcast_http_requests_total")->samples, 5); /* "" (index 0) skipped */
    assert_true(value_of(&e, "roomcast_connections", "") == 12);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=2xx") == 5);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=4xx") == 1);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=5xx") == 0);
    assert_true(value_of(&e, "roomcast_build_info", "version=1.2.3|node=node-a") == 1);
    assert_true(value_of(&e, "roomcast_redis_canary_lag_seconds", "") == 0.25);
    evbuffer_free(out);
}

static void test_label_escaping(void **state)
{
    static const char *const odd[] = {"/a\"b", "/c\\d\ne"};
    static const uint64_t v[] = {1, 2};
    static const char *const info_names[] = {"version", "node"};
    static const char *const info_values[] = {"v\"1\\", "n\n"};
    struct evbuffer *out = evbuffer_new();
    rc_metrics_put_by_label(out, "roomcast_sockets", "gauge", "Sockets.", "namespace", odd, v, 0, 2);
    rc_metrics_put_labelled(out, "roomcast_build_info", "gauge", "Build.", info_names, info_values, 2, 1);

    size_t len = evbuffer_get_length(out);
    char *text = rc_malloc(len + 1);
    evbuffer_copyout(out, text, len);
    text[len] = '\0';
    assert_non_null(strstr(text, "roomcast_sockets{namespace=\"/a\\\"b\"} 1\n"));
    assert_non_null(strstr(text, "roomcast_sockets{namespace=\"/c\\\\d\\ne\"} 2\n"));
    assert_non_null(strstr(text, "roomcast_build_info{version=\"v\\\"1\\\\\",node=\"n\\n\"} 1\n"));
    rc_free(text);

    static expo e; /* and the parser reads the original values back */
    parse_expo(&e, out);
    assert_true(value_of(&e, "roomcast_sockets", "namespace=/c\\d\ne") == 2);
    assert_true(value_of(&e, "roomcast_sockets", "namespace=/a\"b") == 1);
    evbuffer_free(out);
}

static void test_empty_family(void **state)
{
    /* a family with no sample yet (no namespace served) keeps its HELP and TYPE */
    struct evbuffer *out = evbuffer_new();
    rc_metrics_put_by_label(out, "roomcast_sockets", "gauge", "Sockets.", "namespace", NULL, NULL, 0, 0);
    static expo e;
    parse_expo(&e, out);
    assert_int_equal(e.nf, 1);
    assert_int_equal(family_find(&e, "roomcast_sockets")->samples, 0);
    evbuffer_free(out);
}

static void test_process_metrics(void **state)
{
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write_process(out);
    static expo e;
    parse_expo(&e, out);
    assert_int_equal(e.nf, 6);

    double cpu = value_of(&e, "process_cpu_seconds_total", "");
    double rss = value_of(&e, "process_resident_memory_bytes", "");
    double vsz = value_of(&e, "process_virtual_memory_bytes", "");
    double fds = value_of(&e, "process_open_fds", "");
    double max = value_of(&e, "process_max_fds", "");
    double start = value_of(&e, "process_start_time_seconds", "");
    double now = (double)time(NULL);
    assert_true(cpu >= 0 && cpu < 3600);
    assert_true(rss > 1024 * 1024 && rss <= vsz);
    assert_true(fds >= 3 && fds <= max);
    assert_true(start <= now + 2 && start > now - 600); /* this test process started just now */

    size_t r = rc_process_rss_bytes();
    assert_true(r > 0 && (double)r > rss / 2 && (double)r < rss * 2);

    /* one more descriptor open shows up */
    int extra = dup(0);
    assert_true(extra >= 0);
    evbuffer_drain(out, evbuffer_get_length(out));
    rc_metrics_write_process(out);
    parse_expo(&e, out);
    assert_true(value_of(&e, "process_open_fds", "") == fds + 1);
    close(extra);
    evbuffer_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_histogram_observe),
        cmocka_unit_test(test_histogram_exposition),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_empty_family),
        cmocka_unit_test(test_process_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
