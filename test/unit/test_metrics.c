/*
 * test_metrics.c: src/metrics.c — histogram buckets, the text exposition checked line by line
 * by a small parser (HELP/TYPE once per family, name{labels} value), label escaping, and the
 * process_* metrics.
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

/* ---- a small exposition parser ------------------------------------------------------------- */

#define MAX_SAMPLES 512
#define MAX_FAMILIES 64

typedef struct sample {
    char name[128];
    char labels[512]; /* decoded, as k=v pairs joined by '|' in order */
    double value;
} sample;

typedef struct family {
    char name[128];
    char type[16];
    int help_lines, type_lines, samples;
} family;

typedef struct expo {
    sample s[MAX_SAMPLES];
    size_t ns;
    family f[MAX_FAMILIES];
    size_t nf;
} expo;

static family *family_get(expo *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    assert_true(e->nf < MAX_FAMILIES);
    family *f = &e->f[e->nf++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static int is_name_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == ':'; }
static int is_name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == ':'; }

/* Reads a metric or label name at *p into out; fails the test when there is none. */
static void parse_name(const char **p, char *out, size_t cap, int colon_ok)
{
    const char *q = *p;
    assert_true(is_name_start(*q) && (colon_ok || *q != ':'));
    while (is_name_char(*q) && (colon_ok || *q != ':')) q++;
    assert_true((size_t)(q - *p) < cap);
    memcpy(out, *p, (size_t)(q - *p));
    out[q - *p] = '\0';
    *p = q;
}

static double parse_value(const char *v)
{
    if (strcmp(v, "+Inf") == 0) return INFINITY;
    if (strcmp(v, "-Inf") == 0) return -INFINITY;
    if (strcmp(v, "NaN") == 0) return NAN;
    char *end;
    double d = strtod(v, &end);
    assert_true(end != v && *end == '\0');
    return d;
}

/* The family a sample belongs to: its own name, or for histograms the name without the suffix. */
static family *owner(expo *e, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(name), sl = strlen(suffixes[k]);
        if (n <= sl || strcmp(name + n - sl, suffixes[k]) != 0) continue;
        for (size_t i = 0; i < e->nf; i++)
            if (strlen(e->f[i].name) == n - sl && strncmp(e->f[i].name, name, n - sl) == 0 &&
                strcmp(e->f[i].type, "histogram") == 0)
                return &e->f[i];
    }
    return NULL;
}

static void parse_line(expo *e, const char *line, family **current)
{
    if (line[0] == '#') {
        char kind[8], name[128];
        assert_true(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0);
        memcpy(kind, line + 2, 4);
        kind[4] = '\0';
        const char *p = line + 7;
        parse_name(&p, name, sizeof(name), 1);
        assert_int_equal(*p, ' ');
        p++;
        family *f = family_get(e, name);
        if (strcmp(kind, "HELP") == 0) {
            f->help_lines++;
            assert_true(strlen(p) > 0);
        } else {
            f->type_lines++;
            assert_true(strcmp(p, "counter") == 0 || strcmp(p, "gauge") == 0 ||
                        strcmp(p, "histogram") == 0 || strcmp(p, "summary") == 0 ||
                        strcmp(p, "untyped") == 0);
            assert_int_equal(f->samples, 0); /* TYPE comes before the samples */
            snprintf(f->type, sizeof(f->type), "%s", p);
            *current = f;
        }
        return;
    }
    assert_true(e->ns < MAX_SAMPLES);
    sample *s = &e->s[e->ns++];
    const char *p = line;
    parse_name(&p, s->name, sizeof(s->name), 1);
    s->labels[0] = '\0';
    size_t ll = 0;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            char lname[64];
            parse_name(&p, lname, sizeof(lname), 0);
            ll += (size_t)snprintf(s->labels + ll, sizeof(s->labels) - ll, "%s%s=", ll ? "|" : "",
                                   lname);
            assert_int_equal(*p++, '=');
            assert_int_equal(*p++, '"');
            while (*p != '"') {
                assert_true(*p != '\0' && *p != '\n');
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    assert_true(c == '\\' || c == '"' || c == 'n');
                    if (c == 'n') c = '\n';
                }
                assert_true(ll + 1 < sizeof(s->labels));
                s->labels[ll++] = c;
                s->labels[ll] = '\0';
            }
            p++;
            if (*p == ',') p++;
            else assert_int_equal(*p, '}');
        }
        p++;
    }
    assert_int_equal(*p, ' ');
    s->value = parse_value(p + 1);
    family *f = owner(e, s->name);
    assert_non_null(f);
    assert_ptr_equal(f, *current); /* samples of a family are grouped right after its TYPE */
    f->samples++;
}

/* Parses the whole exposition; the text must end with a newline and have no blank lines. */
static void parse_expo(expo *e, struct evbuffer *buf)
{
    memset(e, 0, sizeof(*e));
    size_t len = evbuffer_get_length(buf);
    char *text = rc_malloc(len + 1);
    evbuffer_copyout(buf, text, len);
    text[len] = '\0';
    assert_true(len > 0 && text[len - 1] == '\n');
    family *current = NULL;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        assert_true(*line != '\0');
        parse_line(e, line, &current);
    }
    for (size_t i = 0; i < e->nf; i++) {
        assert_int_equal(e->f[i].help_lines, 1);
        assert_int_equal(e->f[i].type_lines, 1);
        if (strcmp(e->f[i].type, "counter") == 0) {
            size_t n = strlen(e->f[i].name);
            assert_true(n > 6 && strcmp(e->f[i].name + n - 6, "_total") == 0);
        }
    }
    rc_free(text);
}

static const sample *find(const expo *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->ns; i++)
        if (strcmp(e->s[i].name, name) == 0 && strcmp(e->s[i].labels, labels) == 0) return &e->s[i];
    return NULL;
}

static double value_of(const expo *e, const char *name, const char *labels)
{
    const sample *s = find(e, name, labels);
    if (!s) fail_msg("missing sample %s{%s}", name, labels);
    return s->value;
}

static const family *family_find(const expo *e, const char *name)
{
    for (size_t i = 0; i < e->nf; i++)
        if (strcmp(e->f[i].name, name) == 0) return &e->f[i];
    return NULL;
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static int reset(void **state)
{
    memset(&rc_metrics, 0, sizeof(rc_metrics));
    return 0;
}

static const char *const ns_names[] = {"/", "/chat"};
static const uint64_t sockets[] = {3, 7};
static const uint64_t rooms[] = {1, 4};

static rc_metrics_gauges sample_gauges(void)
{
    rc_metrics_gauges g = {
        .ns_names = ns_names, .ns_count = 2, .sockets_by_ns = sockets, .rooms_by_ns = rooms,
        .connections = 12, .eio_sessions = 10, .ready = 1, .draining = 0,
        .version = "1.2.3", .node_id = "node-a",
    };
    return g;
}

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
    rc_histogram *h = &rc_metrics.delivery_latency;
    rc_histogram_observe(h, 0.00004);
    rc_histogram_observe_n(h, 0.0002, 2); /* as two observations */
    rc_histogram_observe_n(h, 0.5, 0);    /* nothing */
    rc_histogram_observe(h, 0.003);
    rc_histogram_observe(h, 7);
    struct evbuffer *out = evbuffer_new();
    rc_metrics_gauges g = sample_gauges();
    rc_metrics_write(out, &g);
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

static void test_families(void **state)
{
    rc_metrics.connections_accepted_total = 42;
    rc_metrics.http_requests_total[2] = 5;
    rc_metrics.http_requests_total[4] = 1;
    rc_metrics.eio_sessions_opened_total[1] = 9;
    rc_metrics.auth_failures_total[RC_AUTH_EXPIRED] = 2;
    rc_metrics.messages_in_total[1] = 100;
    rc_metrics.messages_out_total[0] = 5;
    rc_metrics.disconnects_total[RC_DISC_PING_TIMEOUT] = 3;
    rc_metrics.jobs_added_total = 8;
    struct evbuffer *out = evbuffer_new();
    rc_metrics_gauges g = sample_gauges();
    rc_metrics_write(out, &g);
    static expo e;
    parse_expo(&e, out);

    static const struct { const char *name, *type; } expected[] = {
        {"roomcast_connections", "gauge"},
        {"roomcast_connections_accepted_total", "counter"},
        {"roomcast_connections_rejected_total", "counter"},
        {"roomcast_http_requests_total", "counter"},
        {"roomcast_eio_sessions", "gauge"},
        {"roomcast_eio_sessions_opened_total", "counter"},
        {"roomcast_eio_upgrades_total", "counter"},
        {"roomcast_sockets", "gauge"},
        {"roomcast_handshakes_total", "counter"},
        {"roomcast_auth_failures_total", "counter"},
        {"roomcast_messages_in_total", "counter"},
        {"roomcast_messages_out_total", "counter"},
        {"roomcast_broadcasts_total", "counter"},
        {"roomcast_rooms", "gauge"},
        {"roomcast_disconnects_total", "counter"},
        {"roomcast_slow_consumer_drops_total", "counter"},
        {"roomcast_rate_limited_total", "counter"},
        {"roomcast_payload_too_large_total", "counter"},
        {"roomcast_backplane_publishes_total", "counter"},
        {"roomcast_backplane_publish_failures_total", "counter"},
        {"roomcast_backplane_receives_total", "counter"},
        {"roomcast_api_publishes_total", "counter"},
        {"roomcast_jobs_added_total", "counter"},
        {"roomcast_notifications_total", "counter"},
        {"roomcast_notifications_delivered_total", "counter"},
        {"roomcast_delivery_latency_seconds", "histogram"},
        {"roomcast_ready", "gauge"},
        {"roomcast_draining", "gauge"},
        {"roomcast_build_info", "gauge"},
        {"process_cpu_seconds_total", "counter"},
        {"process_resident_memory_bytes", "gauge"},
        {"process_virtual_memory_bytes", "gauge"},
        {"process_open_fds", "gauge"},
        {"process_max_fds", "gauge"},
        {"process_start_time_seconds", "gauge"},
    };
    assert_int_equal(e.nf, RC_ARRAY_LEN(expected));
    for (size_t i = 0; i < RC_ARRAY_LEN(expected); i++) {
        const family *f = family_find(&e, expected[i].name);
        if (!f) fail_msg("missing family %s", expected[i].name);
        assert_string_equal(f->type, expected[i].type);
        assert_true(f->samples > 0);
    }

    assert_true(value_of(&e, "roomcast_connections", "") == 12);
    assert_true(value_of(&e, "roomcast_connections_accepted_total", "") == 42);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=2xx") == 5);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=4xx") == 1);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=5xx") == 0);
    assert_true(value_of(&e, "roomcast_eio_sessions_opened_total", "transport=websocket") == 9);
    assert_true(value_of(&e, "roomcast_eio_sessions_opened_total", "transport=polling") == 0);
    assert_true(value_of(&e, "roomcast_sockets", "namespace=/chat") == 7);
    assert_true(value_of(&e, "roomcast_rooms", "namespace=/") == 1);
    assert_true(value_of(&e, "roomcast_messages_in_total", "namespace=/chat") == 100);
    assert_true(value_of(&e, "roomcast_messages_out_total", "namespace=/") == 5);
    assert_true(value_of(&e, "roomcast_broadcasts_total", "namespace=/") == 0);
    assert_true(value_of(&e, "roomcast_jobs_added_total", "") == 8);
    assert_true(value_of(&e, "roomcast_ready", "") == 1);
    assert_true(value_of(&e, "roomcast_draining", "") == 0);
    assert_true(value_of(&e, "roomcast_build_info", "version=1.2.3|node=node-a") == 1);

    /* every auth reason but ok, even at zero; every disconnect reason */
    static const char *const reasons[] = {
        "missing_token", "malformed_token", "alg_not_allowed", "bad_signature", "expired",
        "not_yet_valid", "bad_issuer", "bad_audience", "missing_user_claim",
    };
    assert_int_equal(family_find(&e, "roomcast_auth_failures_total")->samples, RC_AUTH__COUNT - 1);
    for (size_t i = 0; i < RC_ARRAY_LEN(reasons); i++) {
        char l[64];
        snprintf(l, sizeof(l), "reason=%s", reasons[i]);
        assert_true(value_of(&e, "roomcast_auth_failures_total", l) ==
                    (i + 1 == RC_AUTH_EXPIRED ? 2 : 0));
    }
    assert_null(find(&e, "roomcast_auth_failures_total", "reason=ok"));
    assert_int_equal(family_find(&e, "roomcast_disconnects_total")->samples, RC_DISC__COUNT);
    assert_true(value_of(&e, "roomcast_disconnects_total", "reason=ping_timeout") == 3);
    assert_true(value_of(&e, "roomcast_disconnects_total", "reason=transport_error") == 0);
    evbuffer_free(out);
}

static void test_label_escaping(void **state)
{
    static const char *const odd[] = {"/a\"b", "/c\\d\ne"};
    static const uint64_t v[] = {1, 2};
    rc_metrics_gauges g = {.ns_names = odd, .ns_count = 2, .sockets_by_ns = v,
                           .version = "v\"1\\", .node_id = "n\n"};
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write(out, &g);

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
    assert_true(value_of(&e, "roomcast_messages_in_total", "namespace=/a\"b") == 0);
    evbuffer_free(out);
}

static void test_no_gauges(void **state)
{
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write(out, NULL);
    static expo e;
    parse_expo(&e, out);
    /* namespace families keep HELP and TYPE but have no samples */
    assert_int_equal(family_find(&e, "roomcast_sockets")->samples, 0);
    assert_int_equal(family_find(&e, "roomcast_messages_in_total")->samples, 0);
    assert_true(value_of(&e, "roomcast_build_info", "version=unknown|node=unknown") == 1);
    evbuffer_free(out);
}

static void test_namespace_cap(void **state)
{
    static const char *names[RC_METRICS_MAX_NS + 3];
    static uint64_t counts[RC_METRICS_MAX_NS + 3];
    static char bufs[RC_METRICS_MAX_NS + 3][16];
    for (size_t i = 0; i < RC_ARRAY_LEN(names); i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "/ns%zu", i);
        names[i] = bufs[i];
        counts[i] = i;
    }
    rc_metrics_gauges g = {.ns_names = names, .ns_count = RC_ARRAY_LEN(names),
                           .sockets_by_ns = counts, .rooms_by_ns = counts};
    struct evbuffer *out = evbuffer_new();
    rc_metrics_write(out, &g);
    static expo e;
    parse_expo(&e, out);
    assert_int_equal(family_find(&e, "roomcast_sockets")->samples, RC_METRICS_MAX_NS);
    assert_int_equal(family_find(&e, "roomcast_messages_in_total")->samples, RC_METRICS_MAX_NS);
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
        cmocka_unit_test_setup(test_histogram_exposition, reset),
        cmocka_unit_test_setup(test_families, reset),
        cmocka_unit_test_setup(test_label_escaping, reset),
        cmocka_unit_test_setup(test_no_gauges, reset),
        cmocka_unit_test_setup(test_namespace_cap, reset),
        cmocka_unit_test(test_process_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
