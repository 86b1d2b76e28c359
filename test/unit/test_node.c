/*
 * test_node.c: a whole node (rc_node_new, include/roomcast/node.h) on the embedded backplane (no
 * Redis), listening on 127.0.0.1 on a free port (port 0), driven over plain TCP from this file:
 * the checks (/healthz, /readyz, /metrics), POST /api/publish (its refusals and a publish that
 * is accepted), the drain as a kept-alive connection sees it, and rc_node_free leaving nothing
 * behind (no live frame; ASan's leak check at exit covers every allocation).
 *
 * The config is built as src/main.c builds it (rc_config_load from the environment), then
 * pointed at port 0, which the file and the environment refuse but rc_server accepts. Each test
 * gets a fresh node and a private event_base; the client socket is non-blocking and the loop is
 * turned (EVLOOP_NONBLOCK) until a whole answer (headers + Content-Length body) has arrived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/frame.h"
#include "roomcast/log.h"
#include "roomcast/node.h"

#include "expo.h"

#define API_KEY "test-key"

typedef struct fixture {
    rc_config cfg;
    struct event_base *base;
    rc_node *node;
    int port;
} fixture;

/* One HTTP answer as the client read it. */
typedef struct answer {
    int status;
    char head[2048];
    char body[65536];
} answer;

static int setup(void **state)
{
    static const char *const unset[] = {"ROOMCAST_CONFIG", "ROOMCAST_PORT", "ROOMCAST_REDIS_URL",
                                        "ROOMCAST_TLS_CERT", "ROOMCAST_TLS_KEY", "ROOMCAST_CORS_ORIGINS"};
    for (size_t i = 0; i < RC_ARRAY_LEN(unset); i++) unsetenv(unset[i]);
    setenv("ROOMCAST_JWT_SECRET", "s3cret", 1);
    setenv("ROOMCAST_API_KEY", API_KEY, 1);
    setenv("ROOMCAST_BIND", "127.0.0.1", 1);
    setenv("ROOMCAST_NODE_ID", "test-node", 1);
    fixture *f = rc_calloc(1, sizeof(*f));
    rc_config_flags flags = {NULL, -1, NULL, NULL};
    rc_config_errors errs = {0};
    if (rc_config_load(&f->cfg, &flags, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) fprintf(stderr, "config: %s\n", errs.items[i]);
        rc_config_errors_dispose(&errs);
        rc_free(f);
        return -1;
    }
    rc_config_errors_dispose(&errs);
    f->cfg.port = 0;
    f->cfg.drain_grace_ms = 1000;
    rc_log_setup(RC_LOG_WARN, 0);
    f->base = event_base_new();
    const char *err = NULL;
    f->node = rc_node_new(f->base, &f->cfg, &err);
    if (!f->node) {
        fprintf(stderr, "rc_node_new: %s\n", err ? err : "?");
        event_base_free(f->base);
        rc_config_dispose(&f->cfg);
        rc_free(f);
        return -1;
    }
    f->port = rc_node_port(f->node);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rc_node_free(f->node);
    /* Whatever the node scheduled must be gone with it: the loop has nothing left to run. */
    event_base_loop(f->base, EVLOOP_NONBLOCK);
    event_base_free(f->base);
    rc_config_dispose(&f->cfg);
    rc_free(f);
    if (rc_frames_live != 0) {
        fprintf(stderr, "frames still live after rc_node_free: %llu\n", (unsigned long long)rc_frames_live);
        return -1;
    }
    return 0;
}

/* A connected, non-blocking client socket to the node. */
static int client_connect(const fixture *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)f->port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Blocking connect: the kernel completes it from the listen backlog, before the loop runs. */
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

/* Sends a request on fd: method, path, extra header lines (each ending in \r\n, or NULL) and a
 * body (NULL: none). The loop is turned while the socket cannot take it all. */
static void send_request(fixture *f, int fd, const char *method, const char *path, const char *headers,
                         const char *body)
{
    char req[8192];
    size_t blen = body ? strlen(body) : 0;
    int len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, path,
                       headers ? headers : "");
    if (body) len += snprintf(req + len, sizeof(req) - (size_t)len,
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
    len += snprintf(req + len, sizeof(req) - (size_t)len, "\r\n%s", body ? body : "");
    assert_true(len > 0 && (size_t)len < sizeof(req));
    size_t off = 0;
    uint64_t end = rc_now_mono_ms() + 5000;
    while (off < (size_t)len) {
        ssize_t w = send(fd, req + off, (size_t)len - off, MSG_NOSIGNAL);
        if (w > 0) off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail_msg("send: %s", strerror(errno));
        else event_base_loop(f->base, EVLOOP_NONBLOCK);
        assert_true(rc_now_mono_ms() < end);
    }
}

/* Turns the loop until one whole answer has arrived on fd (5 s at most), and parses it. */
static void read_answer(fixture *f, int fd, answer *a)
{
    char buf[sizeof(a->head) + sizeof(a->body)];
    size_t have = 0;
    uint64_t end = rc_now_mono_ms() + 5000;
    memset(a, 0, sizeof(*a));
    for (;;) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r > 0) have += (size_t)r;
        else if (r == 0) fail_msg("connection closed after %zu bytes", have);
        else if (errno != EAGAIN && errno != EWOULDBLOCK) fail_msg("recv: %s", strerror(errno));
        buf[have] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh) {
            size_t hlen = (size_t)(eoh - buf) + 4;
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            assert_non_null(cl);
            assert_true(cl < eoh);
            size_t blen = strtoul(cl + 17, NULL, 10);
            assert_true(hlen < sizeof(a->head) && blen < sizeof(a->body));
            if (have >= hlen + blen) {
                assert_int_equal(have, hlen + blen); /* nothing more was sent */
                memcpy(a->head, buf, hlen);
                memcpy(a->body, buf + hlen, blen);
                assert_int_equal(sscanf(a->head, "HTTP/1.1 %d", &a->status), 1);
                return;
            }
        }
        if (rc_now_mono_ms() >= end) fail_msg("no whole answer after 5 s (%zu bytes: %s)", have, buf);
        if (r <= 0) usleep(1000);
    }
}

/* One request on a new connection, closed afterwards. */
static void request(fixture *f, const char *method, const char *path, const char *headers, const char *body,
                    answer *a)
{
    int fd = client_connect(f);
    send_request(f, fd, method, path, headers, body);
    read_answer(f, fd, a);
    close(fd);
}

static void publish(fixture *f, const char *auth, const char *body, answer *a)
{
    char headers[256] = "";
    if (auth) snprintf(headers, sizeof(headers), "Authorization: %s\r\n", auth);
    request(f, "POST", "/api/publish", headers, body, a);
}

static void test_checks(void **state)
{
    fixture *f = *state;
    answer a;
    request(f, "GET", "/healthz", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "ok\n");
    request(f, "GET", "/readyz", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "ready\n");
    request(f, "POST", "/healthz", NULL, "{}", &a);
    assert_int_equal(a.status, 405);
    request(f, "GET", "/nowhere", NULL, NULL, &a);
    assert_int_equal(a.status, 404);
}

static void test_metrics(void **state)
{
    fixture *f = *state;
    answer a;
    request(f, "GET", "/metrics", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "text/plain; version=0.0.4"));
    assert_non_null(strstr(a.body, "\nroomcast_ready 1\n"));
    assert_non_null(strstr(a.body, "\nroomcast_draining 0\n"));
}

/* Every family a node exposes, with its type, each written by the module that owns it (server,
 * http, eio, sio, backplane, node, jobs, presence) and the process_* metrics. */
static void test_metric_families(void **state)
{
    fixture *f = *state;
    answer a;
    publish(f, "Bearer " API_KEY, "{\"room\":\"r1\",\"event\":\"e\",\"data\":1}", &a);
    assert_int_equal(a.status, 202);
    request(f, "GET", "/metrics", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    struct evbuffer *buf = evbuffer_new();
    evbuffer_add(buf, a.body, strlen(a.body));
    static expo e;
    parse_expo(&e, buf);
    evbuffer_free(buf);

    static const struct { const char *name, *type; } expected[] = {
        {"roomcast_connections", "gauge"},
        {"roomcast_connections_accepted_total", "counter"},
        {"roomcast_connections_rejected_total", "counter"},
        {"roomcast_slow_consumer_drops_total", "counter"},
        {"roomcast_connections_lingering", "gauge"},
        {"roomcast_lingering_cut_total", "counter"},
        {"roomcast_send_path", "gauge"},
        {"roomcast_uring_sends_total", "counter"},
        {"roomcast_uring_submits_total", "counter"},
        {"roomcast_uring_short_sends_total", "counter"},
        {"roomcast_write_delay_holds_total", "counter"},
        {"roomcast_write_delay_frames_total", "counter"},
        {"roomcast_http_requests_total", "counter"},
        {"roomcast_payload_too_large_total", "counter"},
        {"roomcast_eio_sessions", "gauge"},
        {"roomcast_eio_sessions_opened_total", "counter"},
        {"roomcast_eio_upgrades_total", "counter"},
        {"roomcast_disconnects_total", "counter"},
        {"roomcast_eio_sessions_pending", "gauge"},
        {"roomcast_eio_pending_refused_total", "counter"},
        {"roomcast_eio_pending_evicted_total", "counter"},
        {"roomcast_eio_connect_timeouts_total", "counter"},
        {"roomcast_eio_origin_refused_total", "counter"},
        {"roomcast_sockets", "gauge"},
        {"roomcast_handshakes_total", "counter"},
        {"roomcast_auth_failures_total", "counter"},
        {"roomcast_messages_in_total", "counter"},
        {"roomcast_messages_out_total", "counter"},
        {"roomcast_broadcasts_total", "counter"},
        {"roomcast_rooms", "gauge"},
        {"roomcast_memberships", "gauge"},
        {"roomcast_joins_refused_total", "counter"},
        {"roomcast_rate_limited_total", "counter"},
        {"roomcast_packets_too_large_total", "counter"},
        {"roomcast_delivery_latency_seconds", "histogram"},
        {"roomcast_backplane_publishes_total", "counter"},
        {"roomcast_backplane_publish_failures_total", "counter"},
        {"roomcast_backplane_receives_total", "counter"},
        {"roomcast_api_publishes_total", "counter"},
        {"roomcast_api_publishes_refused_total", "counter"},
        {"roomcast_notifications_total", "counter"},
        {"roomcast_notifications_delivered_total", "counter"},
        {"roomcast_notifications_refused_total", "counter"},
        {"roomcast_jobs_added_total", "counter"},
        {"roomcast_jobs_skipped_total", "counter"},
        {"roomcast_jobs_failures_total", "counter"},
        {"roomcast_events_forwarded_total", "counter"},
        {"roomcast_events_forward_failures_total", "counter"},
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
    for (size_t i = 0; i < RC_ARRAY_LEN(expected); i++) {
        const family *fam = family_find(&e, expected[i].name);
        if (!fam) fail_msg("missing family %s", expected[i].name);
        assert_string_equal(fam->type, expected[i].type);
        assert_true(fam->samples > 0);
    }
    /* the rest are presence's (roomcast_presence_*, embedded store): nothing unexpected */
    size_t presence = 0;
    for (size_t i = 0; i < e.nf; i++) presence += strncmp(e.f[i].name, "roomcast_presence_", 18) == 0;
    assert_int_equal(e.nf, RC_ARRAY_LEN(expected) + presence);
    assert_true(presence > 0);

    assert_true(value_of(&e, "roomcast_api_publishes_total", "") == 1);
    assert_true(value_of(&e, "roomcast_backplane_publishes_total", "") == 1);
    assert_true(value_of(&e, "roomcast_broadcasts_total", "namespace=/") == 0); /* r1 has no member here */
    assert_true(value_of(&e, "roomcast_sockets", "namespace=/") == 0);
    assert_true(value_of(&e, "roomcast_http_requests_total", "code=2xx") >= 1);
    assert_true(value_of(&e, "roomcast_connections", "") >= 1); /* this request's */
    assert_true(value_of(&e, "roomcast_ready", "") == 1);
    const family *info = family_find(&e, "roomcast_build_info");
    assert_int_equal(info->samples, 1);
    for (size_t i = 0; i < e.ns; i++) {
        if (strcmp(e.s[i].name, "roomcast_build_info") != 0) continue;
        assert_true(strncmp(e.s[i].labels, "version=", 8) == 0 && e.s[i].labels[8] != '|');
        assert_non_null(strstr(e.s[i].labels, "|node=test-node"));
        assert_true(e.s[i].value == 1);
    }
    /* every auth reason but ok, even at zero; every disconnect reason */
    static const char *const reasons[] = {
        "missing_token", "malformed_token", "alg_not_allowed", "bad_signature", "expired",
        "not_yet_valid", "bad_issuer", "bad_audience", "missing_user_claim",
    };
    assert_int_equal(family_find(&e, "roomcast_auth_failures_total")->samples, RC_ARRAY_LEN(reasons));
    for (size_t i = 0; i < RC_ARRAY_LEN(reasons); i++) {
        char l[64];
        snprintf(l, sizeof(l), "reason=%s", reasons[i]);
        assert_true(value_of(&e, "roomcast_auth_failures_total", l) == 0);
    }
    assert_null(find(&e, "roomcast_auth_failures_total", "reason=ok"));
    static const char *const disc[] = {"client", "ping_timeout", "parse_error", "slow_consumer", "server",
                                       "transport_error", "token_expired"};
    assert_int_equal(family_find(&e, "roomcast_disconnects_total")->samples, RC_ARRAY_LEN(disc));
    for (size_t i = 0; i < RC_ARRAY_LEN(disc); i++) {
        char l[64];
        snprintf(l, sizeof(l), "reason=%s", disc[i]);
        assert_non_null(find(&e, "roomcast_disconnects_total", l));
    }
}

static void test_publish_refused(void **state)
{
    fixture *f = *state;
    answer a;
    static const char ok_body[] = "{\"room\":\"r1\",\"event\":\"hello\",\"data\":{\"a\":1}}";
    publish(f, NULL, ok_body, &a);
    assert_int_equal(a.status, 401);
    assert_string_equal(a.body, "{\"ok\":false,\"error\":\"unauthorized\"}");
    publish(f, "Bearer wrong-key", ok_body, &a);
    assert_int_equal(a.status, 401);
    publish(f, API_KEY, ok_body, &a); /* the key without "Bearer " */
    assert_int_equal(a.status, 401);

    static const struct {
        const char *body;
        const char *error;
    } bad[] = {
        {"{not json", "bad_json"},
        {"[1,2]", "bad_json"},
        {"{\"room\":\"r1\"}", "bad_event"},
        {"{\"ns\":\"/nope\",\"event\":\"e\"}", "unknown_namespace"},
        {"{\"ns\":7,\"event\":\"e\"}", "bad_ns"},
        {"{\"room\":\"\",\"event\":\"e\"}", "bad_room"},
        {"{\"room\":\"r1\",\"event\":\"e\",\"args\":{}}", "bad_args"},
        {"{\"room\":\"r1\",\"event\":\"e\",\"args\":[1],\"data\":1}", "data_and_args"},
        {"{\"event\":\"e\"}", "no_target"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        char want[128];
        snprintf(want, sizeof(want), "{\"ok\":false,\"error\":\"%s\"}", bad[i].error);
        publish(f, "Bearer " API_KEY, bad[i].body, &a);
        assert_int_equal(a.status, 400);
        assert_string_equal(a.body, want);
    }
    request(f, "GET", "/api/publish", "Authorization: Bearer " API_KEY "\r\n", NULL, &a);
    assert_int_equal(a.status, 405);
}

static void test_publish_accepted(void **state)
{
    fixture *f = *state;
    answer a;
    publish(f, "Bearer " API_KEY, "{\"room\":\"r1\",\"event\":\"hello\",\"data\":{\"a\":1}}", &a);
    assert_int_equal(a.status, 202);
    assert_string_equal(a.body, "{\"ok\":true}");
    publish(f, "Bearer " API_KEY, "{\"broadcast\":true,\"event\":\"everyone\",\"args\":[1,\"two\"]}", &a);
    assert_int_equal(a.status, 202);
    /* A user with no socket here: a notification (no jobs without Redis), still accepted. */
    publish(f, "Bearer " API_KEY, "{\"user\":\"42\",\"event\":\"notification\",\"data\":{}}", &a);
    assert_int_equal(a.status, 202);
    assert_string_equal(a.body, "{\"ok\":true}");
}

/* The drain, seen by a connection opened before it: with no socket to close, the node removes
 * its presence (embedded: at once) and asks the loop to exit well before the 3 s safety timeout;
 * the connection then reads /readyz 503 "draining" and roomcast_draining 1. */
static void test_drain(void **state)
{
    fixture *f = *state;
    answer a;
    int fd = client_connect(f);
    send_request(f, fd, "GET", "/readyz", NULL, NULL);
    read_answer(f, fd, &a);
    assert_int_equal(a.status, 200);
    rc_node_drain(f->node);
    uint64_t end = rc_now_mono_ms() + 2000;
    while (!event_base_got_exit(f->base)) {
        event_base_loop(f->base, EVLOOP_NONBLOCK);
        if (rc_now_mono_ms() >= end) fail_msg("the drain did not exit the loop within 2 s");
        usleep(1000);
    }
    send_request(f, fd, "GET", "/readyz", NULL, NULL);
    read_answer(f, fd, &a);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.body, "draining\n");
    send_request(f, fd, "GET", "/metrics", NULL, NULL);
    read_answer(f, fd, &a);
    assert_non_null(strstr(a.body, "\nroomcast_ready 0\n"));
    assert_non_null(strstr(a.body, "\nroomcast_draining 1\n"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metric_families, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
