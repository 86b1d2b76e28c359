/*
 * test_http.c: the HTTP/1.1 layer (src/http.c, include/roomcast/http.h) on real connections of
 * a private loop (net_loop.h). Requests are fed whole, one byte per write, and cut in two at
 * every split point; each must reach on_request exactly once with the same method, path, query,
 * headers and body. Also: pipelined and keep-alive requests, HEAD, Connection: close, held
 * requests and their abort callback, detaching, query decoding, and every limit with its status:
 * 431 (headers too big, too many), 413 (Content-Length or chunked body over the limit), 400
 * (malformed, Content-Length with Transfer-Encoding, loose chunk framing), 408 (headers too slow),
 * and the idle keep-alive close. Answers a client does not read: past max_pending_output the next
 * pipelined request waits until they are written (and a stall past the keep-alive timeout
 * closes); an error answer reaches a client still sending its body (lingering close).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "net_loop.h"
#include "roomcast/http.h"

enum { MODE_RESPOND, MODE_HOLD, MODE_DETACH, MODE_BIG };

#define BIG_ANSWER (256 * 1024)

/* What on_request saw of the last request, copied out. */
typedef struct seen_request {
    int method;
    char method_name[16];
    char path[256], query[256];
    char host[64], x_test[128], missing[8];
    char body[4096];
    size_t body_len;
    int upgrade, keep_alive;
    int has_missing;
} seen_request;

static struct {
    rc_http_limits limits;
    rc_http_callbacks cb;
    int mode;
    int requests;
    seen_request seen[8];    /* the first requests, in order */
    seen_request last;
    rc_http_request *held;
    int aborted;
    rc_conn *detached;
} H;

static void copy_slice(char *dst, size_t n, rc_slice s)
{
    assert_true(s.len < n);
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
}

static void copy_header(char *dst, size_t n, const rc_http_request *req, const char *name)
{
    const char *v = rc_http_header(req, name);
    snprintf(dst, n, "%s", v ? v : "");
}

static void on_abort(void *arg)
{
    assert_ptr_equal(arg, &H);
    H.aborted++;
    H.held = NULL;
}

static void on_request(void *arg, rc_http_request *req)
{
    assert_ptr_equal(arg, &H);
    H.requests++;
    seen_request *s = &H.last;
    memset(s, 0, sizeof(*s));
    s->method = req->method;
    snprintf(s->method_name, sizeof(s->method_name), "%s", req->method_name);
    copy_slice(s->path, sizeof(s->path), req->path);
    copy_slice(s->query, sizeof(s->query), req->query);
    copy_header(s->host, sizeof(s->host), req, "host");
    copy_header(s->x_test, sizeof(s->x_test), req, "X-TEST");
    s->has_missing = rc_http_header(req, "X-Missing") != NULL;
    assert_true(req->body_len < sizeof(s->body));
    if (req->body_len) memcpy(s->body, req->body, req->body_len);
    s->body_len = req->body_len;
    s->upgrade = req->upgrade;
    s->keep_alive = req->keep_alive;
    if (H.requests <= (int)RC_ARRAY_LEN(H.seen)) H.seen[H.requests - 1] = *s;
    switch (H.mode) {
    case MODE_HOLD:
        H.held = req;
        rc_http_hold(req, on_abort, &H);
        return;
    case MODE_DETACH:
        H.detached = rc_http_detach(req);
        rc_conn_write(H.detached, "detached", 8);
        return;
    case MODE_BIG: {
        static char big[BIG_ANSWER];
        memset(big, 'b', sizeof(big));
        rc_http_respond(req, 200, "text/plain", big, sizeof(big), NULL);
        return;
    }
    default: {
        char body[300];
        int n = snprintf(body, sizeof(body), "%s %s", s->method_name, s->path);
        rc_http_respond(req, 200, "text/plain", body, (size_t)n, "X-Extra: 1\r\n");
    }
    }
}

static void on_accept(void *arg, rc_conn *c)
{
    rc_http_attach(c, &H.limits, &H.cb);
}

static int setup(void **state)
{
    memset(&H, 0, sizeof(H));
    H.limits.max_header_bytes = 2048;
    H.limits.max_body_bytes = 1000;
    H.limits.header_timeout_ms = 2000;
    H.limits.keepalive_timeout_ms = 2000;
    H.limits.max_pending_output = 1 << 20;
    H.cb.on_request = on_request;
    H.cb.arg = &H;
    nl_setup(on_accept, NULL);
    return 0;
}

static int teardown(void **state)
{
    nl_teardown();
    return 0;
}

/* Waits for one whole answer (headers and Content-Length bytes of body); returns its status and
 * copies its body into body (if given), consuming it from c. */
static int read_answer(nl_client *c, char *body, size_t n)
{
    if (!nl_wait_str(c, "\r\n\r\n", 2000)) return -1;
    int status = 0;
    assert_int_equal(sscanf(c->buf, "HTTP/1.1 %d", &status), 1);
    const char *cl = strstr(c->buf, "Content-Length: ");
    assert_non_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10);
    size_t head = (size_t)(strstr(c->buf, "\r\n\r\n") + 4 - c->buf);
    if (!nl_wait_bytes(c, head + len, 2000)) return -1;
    if (body) {
        assert_true(len < n);
        memcpy(body, c->buf + head, len);
        body[len] = '\0';
    }
    nl_consume(c, head + len);
    return status;
}

/* ---- one request, fed in every way ---------------------------------------------------------- */

typedef struct sample {
    const char *name;
    const char *bytes;
    int method;
    const char *path, *query, *x_test, *body;
} sample;

static const sample samples[] = {
    {"GET with a query", "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: example\r\n"
                         "X-Test: one, two\r\n\r\n",
     RC_HTTP_GET, "/socket.io/", "EIO=4&transport=polling", "one, two", ""},
    {"POST with Content-Length", "POST /api/publish HTTP/1.1\r\nHost: example\r\nContent-Length: 11\r\n"
                                 "Content-Type: text/plain\r\n\r\nhello world",
     RC_HTTP_POST, "/api/publish", "", "", "hello world"},
    {"POST chunked", "POST /c?x HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n"
                     "x-test: chunks\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     RC_HTTP_POST, "/c", "x", "chunks", "hello world"},
    {"OPTIONS, no headers but Host", "OPTIONS * HTTP/1.1\r\nHost: example\r\n\r\n",
     RC_HTTP_OPTIONS, "*", "", "", ""},
};

static void check_request(const seen_request *r, const sample *s)
{
    assert_int_equal(r->method, s->method);
    assert_string_equal(r->path, s->path);
    assert_string_equal(r->query, s->query);
    assert_string_equal(r->host, "example");
    assert_string_equal(r->x_test, s->x_test);
    assert_false(r->has_missing);
    assert_int_equal(r->body_len, strlen(s->body));
    assert_memory_equal(r->body, s->body, r->body_len);
    assert_true(r->keep_alive);
    assert_false(r->upgrade);
}

static void check_seen(const sample *s) { check_request(&H.last, s); }

static void expect_answer(nl_client *c, const sample *s)
{
    static const char *const names[] = {"", "GET", "POST", "OPTIONS", "HEAD"};
    char body[300], want[300];
    assert_int_equal(read_answer(c, body, sizeof(body)), 200);
    snprintf(want, sizeof(want), "%s %s", names[s->method], s->path);
    assert_string_equal(body, want);
}

static void test_whole(void **state)
{
    nl_client c = nl_connect();
    for (size_t i = 0; i < RC_ARRAY_LEN(samples); i++) {
        int before = H.requests;
        nl_send_str(&c, samples[i].bytes);
        expect_answer(&c, &samples[i]);
        assert_int_equal(H.requests, before + 1);
        check_seen(&samples[i]);
    }
    nl_close(&c);
}

static void test_byte_by_byte(void **state)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(samples); i++) {
        nl_client c = nl_connect();
        const char *b = samples[i].bytes;
        size_t n = strlen(b);
        for (size_t k = 0; k < n; k++) {
            nl_send(&c, b + k, 1);
            event_base_loop(nl_base, EVLOOP_NONBLOCK);
            if (k + 1 < n) assert_int_equal(H.requests, (int)i);
        }
        expect_answer(&c, &samples[i]);
        assert_int_equal(H.requests, (int)i + 1);
        check_seen(&samples[i]);
        nl_close(&c);
    }
}

static void test_every_split_point(void **state)
{
    int expected = 0;
    for (size_t i = 0; i < RC_ARRAY_LEN(samples); i++) {
        const char *b = samples[i].bytes;
        size_t n = strlen(b);
        /* one keep-alive connection for all the cuts of a sample: also checks the reset */
        nl_client c = nl_connect();
        for (size_t at = 1; at < n; at++) {
            nl_send_split(&c, b, n, at);
            expect_answer(&c, &samples[i]);
            assert_int_equal(H.requests, ++expected);
            check_seen(&samples[i]);
        }
        nl_close(&c);
    }
}

static void test_pipelined(void **state)
{
    nl_client c = nl_connect();
    char all[2048] = "";
    for (size_t i = 0; i < RC_ARRAY_LEN(samples); i++) strcat(all, samples[i].bytes);
    nl_send_str(&c, all);
    for (size_t i = 0; i < RC_ARRAY_LEN(samples); i++) {
        expect_answer(&c, &samples[i]);
        check_request(&H.seen[i], &samples[i]);
    }
    assert_int_equal(H.requests, (int)RC_ARRAY_LEN(samples));
    nl_close(&c);
}

static void test_head_and_close(void **state)
{
    nl_client c = nl_connect();
    nl_send_str(&c, "HEAD /x HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(nl_wait_str(&c, "\r\n\r\n", 2000));
    assert_non_null(strstr(c.buf, "Content-Length: 7\r\n"));
    assert_non_null(strstr(c.buf, "X-Extra: 1\r\n"));
    nl_pump(&c, 10);
    assert_string_equal(strstr(c.buf, "\r\n\r\n"), "\r\n\r\n"); /* no body after a HEAD */
    nl_consume(&c, c.len);
    nl_send_str(&c, "GET /bye HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n");
    assert_true(nl_wait_eof(&c, 2000));
    assert_non_null(strstr(c.buf, "Connection: close\r\n"));
    assert_false(H.last.keep_alive);
    nl_close(&c);
}

static void test_http10_closes(void **state)
{
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /old HTTP/1.0\r\n\r\n");
    assert_true(nl_wait_eof(&c, 2000));
    assert_int_equal(strncmp(c.buf, "HTTP/1.1 200 OK\r\n", 17), 0);
    nl_close(&c);
}

static void test_query_param(void **state)
{
    H.mode = MODE_HOLD;
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /q?a=1&sid=x%2Fy+z&empty=&flag&a=2&bad=%zz&cut=%4 HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(nl_wait_flag(&c, &H.requests, 2000));
    char v[16];
    assert_true(rc_http_query_param(H.held, "a", v, sizeof(v)));
    assert_string_equal(v, "1"); /* the first one */
    assert_true(rc_http_query_param(H.held, "sid", v, sizeof(v)));
    assert_string_equal(v, "x/y z");
    assert_true(rc_http_query_param(H.held, "empty", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(rc_http_query_param(H.held, "flag", v, sizeof(v)));
    assert_string_equal(v, "");
    assert_true(rc_http_query_param(H.held, "bad", v, sizeof(v)));
    assert_string_equal(v, "%zz");
    assert_true(rc_http_query_param(H.held, "cut", v, sizeof(v)));
    assert_string_equal(v, "%4");
    assert_false(rc_http_query_param(H.held, "nope", v, sizeof(v)));
    assert_false(rc_http_query_param(H.held, "fla", v, sizeof(v)));
    char small[3];
    assert_true(rc_http_query_param(H.held, "sid", small, sizeof(small)));
    assert_string_equal(small, "x/"); /* truncated, still terminated */
    rc_http_respond(H.held, 204, NULL, NULL, 0, NULL);
    H.held = NULL;
    assert_int_equal(read_answer(&c, NULL, 0), 204);
    assert_int_equal(H.aborted, 0);
    nl_close(&c);
}

static void test_header_tokens(void **state)
{
    H.mode = MODE_HOLD;
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /ws HTTP/1.1\r\nHost: example\r\nConnection: keep-alive, Upgrade\r\n"
                    "Upgrade: websocket\r\nX-Empty:\r\n\r\n");
    assert_true(nl_wait_flag(&c, &H.requests, 2000));
    assert_true(H.last.upgrade);
    assert_true(rc_http_header_has_token(H.held, "connection", "upgrade"));
    assert_true(rc_http_header_has_token(H.held, "Connection", "KEEP-ALIVE"));
    assert_false(rc_http_header_has_token(H.held, "Connection", "close"));
    assert_false(rc_http_header_has_token(H.held, "Connection", "upgr"));
    assert_false(rc_http_header_has_token(H.held, "X-Missing", "x"));
    assert_string_equal(rc_http_header(H.held, "x-empty"), "");
    rc_http_respond(H.held, 200, NULL, "", 0, NULL);
    H.held = NULL;
    nl_close(&c);
}

/* A held request is answered later; if the connection goes first, the abort callback fires.
 * (While a request is held the connection does not read, so a peer's close is noticed when the
 * answer is written, or here, when the connection is closed.) */
static void test_hold_then_abort(void **state)
{
    H.mode = MODE_HOLD;
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /poll HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(nl_wait_flag(&c, &H.requests, 2000));
    assert_non_null(H.held);
    nl_send_str(&c, "GET /next HTTP/1.1\r\nHost: example\r\n\r\n"); /* not read while held */
    nl_pump(&c, 20);
    assert_int_equal(H.requests, 1);
    assert_int_equal(H.aborted, 0);
    rc_conn_close(H.held->conn);
    assert_int_equal(H.aborted, 1);
    assert_null(H.held);
    assert_true(nl_wait_eof(&c, 2000));
    nl_close(&c);
}

static void test_hold_then_answer_then_next(void **state)
{
    H.mode = MODE_HOLD;
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /poll HTTP/1.1\r\nHost: example\r\n\r\nGET /next HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_true(nl_wait_flag(&c, &H.requests, 2000));
    nl_pump(&c, 10);
    assert_int_equal(H.requests, 1);
    H.mode = MODE_RESPOND;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "late", 4);
    rc_http_respond_buffer(H.held, 200, "text/plain", b, NULL);
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
    H.held = NULL;
    char body[64];
    assert_int_equal(read_answer(&c, body, sizeof(body)), 200);
    assert_string_equal(body, "late");
    assert_int_equal(read_answer(&c, body, sizeof(body)), 200);
    assert_string_equal(body, "GET /next");
    assert_int_equal(H.aborted, 0);
    nl_close(&c);
}

static void test_detach_keeps_following_bytes(void **state)
{
    H.mode = MODE_DETACH;
    nl_client c = nl_connect();
    nl_send_str(&c, "GET /chat HTTP/1.1\r\nHost: example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    "\x81\x80" "abcd");
    assert_true(nl_wait_str(&c, "detached", 2000));
    assert_non_null(H.detached);
    struct evbuffer *in = rc_conn_input(H.detached);
    assert_int_equal(evbuffer_get_length(in), 6);
    assert_memory_equal(evbuffer_pullup(in, 6), "\x81\x80" "abcd", 6);
    rc_conn_close(H.detached);
    nl_close(&c);
}

/* ---- limits --------------------------------------------------------------------------------- */

/* Sends bytes on a fresh connection; returns the status of the answer, which must be followed
 * by a close. */
static int refused_with(const char *bytes, size_t n)
{
    nl_client c = nl_connect();
    nl_send(&c, bytes, n);
    int eof = nl_wait_eof(&c, 3000);
    int status = -1;
    if (c.len) sscanf(c.buf, "HTTP/1.1 %d", &status);
    if (c.len) assert_non_null(strstr(c.buf, "Connection: close\r\n"));
    nl_close(&c);
    assert_true(eof);
    return status;
}

static void test_limits(void **state)
{
    char big[4096];
    int n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: example\r\nX-Big: %0*d\r\n\r\n", 2100, 0);
    assert_int_equal(refused_with(big, (size_t)n), 431);
    n = snprintf(big, sizeof(big), "GET /%0*d HTTP/1.1\r\n\r\n", 2100, 0);
    assert_int_equal(refused_with(big, (size_t)n), 431);
    /* just under the limit goes through */
    n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: example\r\nX-Big: %0*d\r\n\r\n", 1900, 0);
    nl_client ok = nl_connect();
    nl_send(&ok, big, (size_t)n);
    assert_int_equal(read_answer(&ok, NULL, 0), 200);
    nl_close(&ok);

    size_t off = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 70; i++) off += (size_t)snprintf(big + off, sizeof(big) - off, "H%d: v\r\n", i);
    off += (size_t)snprintf(big + off, sizeof(big) - off, "\r\n");
    assert_int_equal(refused_with(big, off), 431); /* more than 64 headers */

    static const char cl_over[] = "POST / HTTP/1.1\r\nHost: example\r\nContent-Length: 1001\r\n\r\n";
    assert_int_equal(refused_with(cl_over, strlen(cl_over)), 413); /* refused before the body */
    n = snprintf(big, sizeof(big), "POST / HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "200\r\n%0*d\r\n200\r\n%0*d\r\n0\r\n\r\n", 512, 0, 512, 0);
    assert_int_equal(refused_with(big, (size_t)n), 413);
    static const char cl_ok[] = "POST / HTTP/1.1\r\nHost: example\r\nContent-Length: 1000\r\n\r\n";
    nl_client c = nl_connect();
    nl_send_str(&c, cl_ok);
    memset(big, 'b', 1000);
    nl_send(&c, big, 1000);
    assert_int_equal(read_answer(&c, NULL, 0), 200);
    assert_int_equal(H.last.body_len, 1000);
    nl_close(&c);

    static const char both[] = "POST / HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_int_equal(refused_with(both, strlen(both)), 400);
    static const char loose_chunk[] = "POST / HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      "5\r\nhelloXY0\r\n\r\n";
    assert_int_equal(refused_with(loose_chunk, strlen(loose_chunk)), 400);
    static const char garbage[] = "HELLO\r\n\r\n";
    assert_int_equal(refused_with(garbage, strlen(garbage)), 400);
    assert_int_equal(H.requests, 2);
}

/* The loose-chunk check at every cut: the CR LF after chunk data may arrive in another read. */
static void test_chunk_crlf_split(void **state)
{
    static const char good[] = "POST / HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    size_t n = strlen(good);
    nl_client c = nl_connect();
    for (size_t at = 1; at < n; at++) {
        nl_send_split(&c, good, n, at);
        assert_int_equal(read_answer(&c, NULL, 0), 200);
        assert_int_equal(H.last.body_len, 5);
        assert_memory_equal(H.last.body, "abcde", 5);
    }
    nl_close(&c);
}

static void test_header_timeout(void **state)
{
    H.limits.header_timeout_ms = 150;
    H.limits.keepalive_timeout_ms = 150;
    /* bytes dribbling in: the deadline counts from the first one, not the last */
    nl_client c = nl_connect();
    static const char part[] = "GET / HTTP/1.1\r\nHost: e";
    uint64_t t0 = rc_now_mono_ms();
    for (size_t i = 0; i < sizeof(part) - 1 && !c.eof; i++) {
        nl_send(&c, part + i, 1);
        nl_pump(&c, 20);
    }
    assert_true(nl_wait_eof(&c, 2000));
    assert_true(rc_now_mono_ms() - t0 < 1000);
    assert_int_equal(strncmp(c.buf, "HTTP/1.1 408 ", 13), 0);
    nl_close(&c);

    /* nothing at all: closed without an answer */
    c = nl_connect();
    assert_true(nl_wait_eof(&c, 2000));
    assert_int_equal(c.len, 0);
    nl_close(&c);

    /* idle after an answer: the keep-alive timeout closes it */
    c = nl_connect();
    nl_send_str(&c, "GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    assert_int_equal(read_answer(&c, NULL, 0), 200);
    t0 = rc_now_mono_ms();
    assert_true(nl_wait_eof(&c, 2000));
    assert_true(rc_now_mono_ms() - t0 >= 100);
    assert_int_equal(c.len, 0);
    nl_close(&c);
    assert_int_equal(H.requests, 1);
}

/* Turns the server's loop for about ms without the client reading. */
static void turn_without_reading(int ms)
{
    uint64_t end = rc_now_mono_ms() + (uint64_t)ms;
    while (rc_now_mono_ms() < end) nl_step(NULL);
}

/* A client that pipelines requests and does not read the answers: once more than
 * max_pending_output waits unsent, no further request is read; reading lets them all through. */
static void test_unread_answers_stop_reading(void **state)
{
    H.mode = MODE_BIG;
    H.limits.max_pending_output = 1000;
    nl_rcvbuf = 4096;
    nl_client c = nl_connect();
    nl_rcvbuf = 0;
    enum { N = 40 };
    char reqs[N * 40];
    size_t n = 0;
    for (int i = 0; i < N; i++) n += (size_t)snprintf(reqs + n, sizeof(reqs) - n, "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
    nl_send(&c, reqs, n);
    turn_without_reading(200);
    int stalled_at = H.requests;
    assert_true(stalled_at >= 1);
    assert_true(stalled_at < N);
    turn_without_reading(100);
    assert_int_equal(H.requests, stalled_at); /* nothing more while nothing is read */
    for (int i = 0; i < N; i++) {
        assert_int_equal(read_answer(&c, NULL, 0), 200);
    }
    assert_int_equal(H.requests, N);
    nl_close(&c);
}

/* The same client, never reading: it is closed once no byte was taken for the keep-alive timeout. */
static void test_unread_answers_time_out(void **state)
{
    H.mode = MODE_BIG;
    H.limits.max_pending_output = 1000;
    H.limits.keepalive_timeout_ms = 300;
    nl_rcvbuf = 4096;
    nl_client c = nl_connect();
    nl_rcvbuf = 0;
    char reqs[40 * 40];
    size_t n = 0;
    for (int i = 0; i < 40; i++) n += (size_t)snprintf(reqs + n, sizeof(reqs) - n, "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
    nl_send(&c, reqs, n);
    uint64_t t0 = rc_now_mono_ms();
    while (rc_server_conn_count(nl_server) > 0 && rc_now_mono_ms() - t0 < 3000) nl_step(NULL);
    assert_int_equal(rc_server_conn_count(nl_server), 0);
    assert_true(rc_now_mono_ms() - t0 >= 250);
    nl_close(&c);
}

/* A body over the limit is refused from its headers while the client is still sending it: the
 * 413 arrives, then the end of the stream, never a reset (the node reads and discards the rest). */
static void test_error_answer_reaches_a_client_still_sending(void **state)
{
    nl_client c = nl_connect();
    nl_send_str(&c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3000000\r\n\r\n");
    static char body[3000000];
    memset(body, 'x', sizeof(body));
    nl_send(&c, body, sizeof(body)); /* every byte goes: the node keeps reading */
    assert_true(nl_wait_eof(&c, 3000));
    assert_non_null(strstr(c.buf, "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_int_equal(H.requests, 0);
    nl_close(&c);
}

static void test_status_text(void **state)
{
    assert_string_equal(rc_http_status_text(101), "Switching Protocols");
    assert_string_equal(rc_http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(rc_http_status_text(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_split_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http10_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_param, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_then_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_then_answer_then_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_keeps_following_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_crlf_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_answers_stop_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_answers_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_answer_reaches_a_client_still_sending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
