/*
 * test_ws.c: the WebSocket layer (src/ws.c, include/roomcast/ws.h) over real upgraded
 * connections of a private loop (net_loop.h), the test playing a client that masks its frames.
 * Framing: text, binary, empty and fragmented messages, pings between fragments, 7-, 16- and
 * 64-bit lengths, frames written together with the upgrade request or with each other; a masked
 * frame cut at every split point arrives once and intact. Refusals: every frame the layer must
 * refuse, with its close code (1002 protocol, 1007 bad UTF-8, 1009 too big — the oversized ones
 * as soon as their header is in), then the end of the connection and exactly one on_close;
 * valid close frames echoed; a close the owner asks for (also from inside on_message) and
 * no on_close for it. Upgrade checks, the accept key (RFC 6455's example) and UTF-8 validation.
 * Every test ends with no frame left live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "net_loop.h"
#include "ws_client.h"
#include "roomcast/http.h"
#include "roomcast/ws.h"

#define MAX 1000

static struct {
    rc_http_limits limits;
    rc_http_callbacks http_cb;
    size_t max_message;
    rc_ws *ws[64];
    int accepted;
    int messages;
    int binary;
    uint8_t last[200000];
    size_t last_len;
    int closes;
    int echo;               /* send every message back */
    int close_on_message;   /* rc_ws_close(ws, 1001) from inside on_message */
} W;

static void on_message(void *arg, rc_ws *ws, int binary, const uint8_t *data, size_t len)
{
    assert_ptr_equal(arg, &W);
    W.messages++;
    W.binary = binary;
    assert_true(len <= sizeof(W.last));
    if (len) memcpy(W.last, data, len);
    W.last_len = len;
    if (W.echo) rc_ws_send(ws, binary ? RC_WS_OP_BINARY : RC_WS_OP_TEXT, data, len);
    if (W.close_on_message) rc_ws_close(ws, RC_WS_CLOSE_GOING_AWAY);
}

static void on_close(void *arg, rc_ws *ws)
{
    assert_ptr_equal(arg, &W);
    W.closes++;
}

static const rc_ws_callbacks ws_cb = {.on_message = on_message, .on_close = on_close};

static void on_request(void *arg, rc_http_request *req)
{
    const char *why = rc_ws_check_upgrade(req);
    if (why) {
        rc_http_respond(req, 400, "text/plain", why, strlen(why), NULL);
        return;
    }
    assert_true(W.accepted < (int)RC_ARRAY_LEN(W.ws));
    W.ws[W.accepted++] = rc_ws_accept(req, W.max_message, &ws_cb, &W);
}

static void on_accept(void *arg, rc_conn *c)
{
    rc_http_attach(c, &W.limits, &W.http_cb);
}

static int setup(void **state)
{
    memset(&W, 0, sizeof(W));
    W.limits.max_header_bytes = 4096;
    W.limits.max_body_bytes = 1000;
    W.limits.header_timeout_ms = 2000;
    W.limits.keepalive_timeout_ms = 2000;
    W.http_cb.on_request = on_request;
    W.max_message = MAX;
    nl_setup(on_accept, NULL);
    return 0;
}

static int teardown(void **state)
{
    nl_teardown();
    rc_ws_global_cleanup();
    return 0;
}

/* ---- the client's side ---------------------------------------------------------------------- */

static const char upgrade_request[] =
    "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* A connection upgraded to WebSocket. */
static nl_client ws_connect(void)
{
    nl_client c = nl_connect();
    int before = W.accepted;
    wsc_upgrade(&c, "/chat");
    assert_int_equal(W.accepted, before + 1);
    return c;
}

static int messages_reached(nl_client *c, const void *n) { return W.messages >= *(const int *)n; }

/* Turns the loop until n messages in all have been delivered: 1, or 0 after two seconds. */
static int wait_messages(nl_client *c, int n) { return nl_wait(c, messages_reached, &n, 2000); }

static void expect_message(int n, int binary, const void *data, size_t len)
{
    assert_int_equal(W.messages, n);
    assert_int_equal(W.binary, binary);
    assert_int_equal(W.last_len, len);
    assert_memory_equal(W.last, data, len);
}

/* ---- pure functions ------------------------------------------------------------------------- */

static void test_accept_key(void **state)
{
    char out[29];
    rc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out); /* RFC 6455 section 1.3 */
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_utf8(void **state)
{
    static const struct { const char *s; size_t n; int ok; } cases[] = {
        {"", 0, 1}, {"plain ascii", 11, 1}, {"\xc3\xa9", 2, 1}, {"\xe2\x82\xac", 3, 1},
        {"\xf0\x9f\x98\x80", 4, 1}, {"\xf4\x8f\xbf\xbf", 4, 1}, {"\xed\x9f\xbf", 3, 1},
        {"\xff", 1, 0}, {"\xc0\xaf", 2, 0}, {"\xc1\xbf", 2, 0}, {"\xe0\x80\x80", 3, 0},
        {"\xed\xa0\x80", 3, 0}, {"\xf4\x90\x80\x80", 4, 0}, {"\xf8\x88\x80\x80\x80", 5, 0},
        {"\xe2\x82", 2, 0}, {"\x80", 1, 0}, {"a\xc3", 2, 0}, {"\xf0\x80\x80\x80", 4, 0},
        {"\x00", 1, 1},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++)
        assert_int_equal(rc_utf8_valid((const uint8_t *)cases[i].s, cases[i].n), cases[i].ok);
}

/* ---- upgrade -------------------------------------------------------------------------------- */

static void test_upgrade_refusals(void **state)
{
    static const struct { const char *req, *why; } cases[] = {
        {"POST /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
         "WebSocket upgrade must be a GET"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "missing Upgrade: websocket"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "missing Connection: upgrade"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         "unsupported Sec-WebSocket-Version"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         "bad Sec-WebSocket-Key"},
        {"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         "bad Sec-WebSocket-Key"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        nl_client c = nl_connect();
        nl_send_str(&c, cases[i].req);
        assert_true(nl_wait_str(&c, cases[i].why, 2000));
        assert_int_equal(strncmp(c.buf, "HTTP/1.1 400 ", 13), 0);
        nl_close(&c);
    }
    assert_int_equal(W.accepted, 0);
}

/* Frames written in the same packet as the upgrade request are not lost. */
static void test_frames_with_the_request(void **state)
{
    static uint8_t buf[1024];
    size_t n = strlen(upgrade_request);
    memcpy(buf, upgrade_request, n);
    n += wsc_frame(buf + n, 1, RC_WS_OP_TEXT, "first", 5);
    n += wsc_frame(buf + n, 1, RC_WS_OP_BINARY, "\x00\x01", 2);
    nl_client c = nl_connect();
    nl_send(&c, buf, n);
    assert_true(wait_messages(&c, 2));
    expect_message(2, 1, "\x00\x01", 2);
    nl_close(&c);
}

/* ---- framing -------------------------------------------------------------------------------- */

static void test_messages_and_pings(void **state)
{
    W.echo = 1;
    nl_client c = ws_connect();
    wsc_send(&c, 1, RC_WS_OP_TEXT, "42[\"hi\"]", 8);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_TEXT);
    assert_int_equal(wsc_in.fin, 1);
    assert_int_equal(wsc_in.len, 8);
    assert_memory_equal(wsc_in.payload, "42[\"hi\"]", 8);
    expect_message(1, 0, "42[\"hi\"]", 8);

    wsc_send(&c, 1, RC_WS_OP_BINARY, "\xff\x00\xfe", 3);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_BINARY);
    expect_message(2, 1, "\xff\x00\xfe", 3);

    wsc_send(&c, 1, RC_WS_OP_TEXT, "", 0);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    expect_message(3, 0, "", 0);

    wsc_send(&c, 1, RC_WS_OP_PING, "ping!", 5);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_PONG);
    assert_int_equal(wsc_in.len, 5);
    assert_memory_equal(wsc_in.payload, "ping!", 5);

    wsc_send(&c, 1, RC_WS_OP_PONG, "u", 1); /* unsolicited: ignored */
    wsc_send(&c, 1, RC_WS_OP_PING, "", 0);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_PONG);
    assert_int_equal(wsc_in.len, 0);
    assert_int_equal(W.messages, 3);
    assert_int_equal(W.closes, 0);
    nl_close(&c);
    nl_pump(NULL, 10);
    assert_int_equal(W.closes, 1); /* the peer went away */
}

static void test_fragments(void **state)
{
    nl_client c = ws_connect();
    /* "é" (c3 a9) cut between two fragments, a ping in the middle */
    wsc_send(&c, 0, RC_WS_OP_TEXT, "40{\"x\":\"\xc3", 9);
    wsc_send(&c, 0, RC_WS_OP_CONT, "", 0);
    wsc_send(&c, 1, RC_WS_OP_PING, "mid", 3);
    wsc_send(&c, 1, RC_WS_OP_CONT, "\xa9\"}", 3);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_PONG);
    assert_true(nl_wait_flag(&c, &W.messages, 2000));
    expect_message(1, 0, "40{\"x\":\"\xc3\xa9\"}", 12);
    /* binary in three pieces, up to exactly the limit */
    static uint8_t big[MAX];
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)i;
    wsc_send(&c, 0, RC_WS_OP_BINARY, big, 400);
    wsc_send(&c, 0, RC_WS_OP_CONT, big + 400, 400);
    wsc_send(&c, 1, RC_WS_OP_CONT, big + 800, 200);
    assert_true(wait_messages(&c, 2));
    expect_message(2, 1, big, sizeof(big));
    nl_close(&c);
}

/* A masked frame cut at every point, for each length form; then two frames in one write, and a
 * frame with the first part of the next. */
static void test_split_at_every_point(void **state)
{
    W.max_message = 70000;
    nl_client c = ws_connect();
    static uint8_t payload[70000], buf[70100];
    for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (uint8_t)('a' + i % 26);
    static const size_t sizes[] = {0, 1, 10, 125, 126, 300, 65535, 65536, 70000};
    int n = 0;
    for (size_t s = 0; s < RC_ARRAY_LEN(sizes); s++) {
        size_t len = wsc_frame(buf, 1, RC_WS_OP_TEXT, payload, sizes[s]);
        /* every cut for the short ones; the header and edges for the long ones */
        for (size_t at = 1; at < len; at++) {
            if (sizes[s] > 300 && at > 16 && at < len - 4 && at % 4099) continue;
            nl_send_split(&c, buf, len, at);
            assert_true(wait_messages(&c, ++n));
            expect_message(n, 0, payload, sizes[s]);
        }
    }
    size_t a = wsc_frame(buf, 1, RC_WS_OP_TEXT, "one", 3);
    size_t b = wsc_frame(buf + a, 1, RC_WS_OP_TEXT, "two", 3);
    nl_send(&c, buf, a + b);
    assert_true(wait_messages(&c, n + 2));
    expect_message(n + 2, 0, "two", 3);
    a = wsc_frame(buf, 1, RC_WS_OP_TEXT, "three", 5);
    b = wsc_frame(buf + a, 1, RC_WS_OP_BINARY, "four", 4);
    nl_send_split(&c, buf, a + b, a + 3);
    assert_true(wait_messages(&c, n + 4));
    expect_message(n + 4, 1, "four", 4);
    assert_int_equal(W.closes, 0);
    nl_close(&c);
}

/* ---- refusals ------------------------------------------------------------------------------- */

typedef struct refusal {
    const char *name;
    uint8_t bytes[300];
    size_t len;
    int code;
} refusal;

static void check_refusal(const refusal *r)
{
    int closes = W.closes, messages = W.messages;
    nl_client c = ws_connect();
    nl_send(&c, r->bytes, r->len);
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    if (wsc_in.opcode != RC_WS_OP_CLOSE || wsc_in.len != 2 || (wsc_in.payload[0] << 8 | wsc_in.payload[1]) != r->code)
        fail_msg("%s: opcode %d len %zu code %d, want close %d", r->name, wsc_in.opcode, wsc_in.len,
                 wsc_in.len >= 2 ? wsc_in.payload[0] << 8 | wsc_in.payload[1] : -1, r->code);
    assert_true(nl_wait_eof(&c, 2000));
    assert_int_equal(W.closes, closes + 1);
    assert_int_equal(W.messages, messages);
    nl_close(&c);
}

#define CASE(nm, code_, expr)                                                                    \
    do {                                                                                         \
        refusal r_ = {.name = nm, .code = code_};                                                \
        uint8_t *o_ = r_.bytes;                                                                  \
        (void)o_;                                                                                \
        r_.len = (expr);                                                                         \
        check_refusal(&r_);                                                                      \
    } while (0)

static void test_protocol_refusals(void **state)
{
    uint8_t big[200];
    memset(big, 'a', sizeof(big));
    CASE("unmasked", 1002, wsc_frame_ex(o_, 1, 0, RC_WS_OP_TEXT, 0, "40", 2, 2, 0));
    for (int rsv = 1; rsv <= 4; rsv <<= 1)
        CASE("rsv", 1002, wsc_frame_ex(o_, 1, rsv, RC_WS_OP_TEXT, 1, "40", 2, 2, 0));
    static const int reserved[] = {3, 4, 5, 6, 7, 11, 12, 13, 14, 15};
    for (size_t i = 0; i < RC_ARRAY_LEN(reserved); i++)
        CASE("reserved opcode", 1002, wsc_frame_ex(o_, 1, 0, reserved[i], 1, "x", 1, 1, 0));
    CASE("fragmented ping", 1002, wsc_frame(o_, 0, RC_WS_OP_PING, "a", 1));
    CASE("fragmented close", 1002, wsc_frame(o_, 0, RC_WS_OP_CLOSE, "\x03\xe8", 2));
    CASE("ping of 126 bytes", 1002, wsc_frame(o_, 1, RC_WS_OP_PING, big, 126));
    CASE("continuation without a start", 1002, wsc_frame(o_, 1, RC_WS_OP_CONT, "40", 2));
    CASE("text inside a fragmented message", 1002,
         wsc_frame(o_, 0, RC_WS_OP_TEXT, "4", 1) + wsc_frame(o_ + 7, 1, RC_WS_OP_TEXT, "0", 1));
    CASE("binary inside a fragmented message", 1002,
         wsc_frame(o_, 0, RC_WS_OP_TEXT, "4", 1) + wsc_frame(o_ + 7, 1, RC_WS_OP_BINARY, "x", 1));
    CASE("16-bit length for 5 bytes (not the shortest form)", 1002,
         wsc_frame_ex(o_, 1, 0, RC_WS_OP_TEXT, 1, "hello", 5, 5, 2));
    CASE("invalid UTF-8", 1007, wsc_frame(o_, 1, RC_WS_OP_TEXT, "4\xff", 2));
    CASE("truncated UTF-8", 1007, wsc_frame(o_, 1, RC_WS_OP_TEXT, "4\xe2\x82", 3));
    CASE("invalid UTF-8 across fragments", 1007,
         wsc_frame(o_, 0, RC_WS_OP_TEXT, "4\xe2", 2) + wsc_frame(o_ + 8, 1, RC_WS_OP_CONT, "\x28\xa1", 2));
}

/* Oversized frames are refused as soon as their header is in: no payload is sent at all. */
static void test_too_big(void **state)
{
    CASE("header only, maxPayload + 1", 1009, wsc_frame_ex(o_, 1, 0, RC_WS_OP_TEXT, 1, "", 0, MAX + 1, 0));
    CASE("header only, 2^63 - 1", 1009, wsc_frame_ex(o_, 1, 0, RC_WS_OP_TEXT, 1, "", 0, 0x7fffffffffffffffull, 8));
    CASE("header only, top bit set", 1009, wsc_frame_ex(o_, 1, 0, RC_WS_OP_BINARY, 1, "", 0, 0xffffffffffffffffull, 8));
    CASE("16-bit length 65535 on 3 bytes", 1009, wsc_frame_ex(o_, 1, 0, RC_WS_OP_TEXT, 1, "abc", 3, 65535, 2));
}

static void test_fragments_past_the_limit(void **state)
{
    nl_client c = ws_connect();
    static uint8_t part[600];
    memset(part, 'x', sizeof(part));
    wsc_send(&c, 0, RC_WS_OP_TEXT, part, 600);
    wsc_send(&c, 1, RC_WS_OP_CONT, part, 401);
    wsc_expect_close(&c, 1009);
    assert_int_equal(W.closes, 1);
    assert_int_equal(W.messages, 0);
    nl_close(&c);
}

static void test_close_frames(void **state)
{
    static const struct { const char *payload; size_t n; int code; } cases[] = {
        {"\x03\xe8", 2, 1000},            /* echoed */
        {"", 0, 1000},                    /* no code: answered 1000 */
        {"\x0b\xb8", 2, 3000},
        {"\x13\x87" "bye \xe2\x9c\x93", 9, 4999},
        {"\x03", 1, 1002},
        {"\x03\xe7", 2, 1002},            /* 999 */
        {"\x03\xec", 2, 1002},            /* 1004 */
        {"\x03\xed", 2, 1002},            /* 1005 */
        {"\x03\xee", 2, 1002},            /* 1006 */
        {"\x03\xf7", 2, 1002},            /* 1015 */
        {"\x0b\xb7", 2, 1002},            /* 2999 */
        {"\x13\x88", 2, 1002},            /* 5000 */
        {"\x03\xe8\xff", 3, 1002},        /* invalid UTF-8 reason */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        refusal r = {.name = "close", .code = cases[i].code};
        r.len = wsc_frame(r.bytes, 1, RC_WS_OP_CLOSE, cases[i].payload, cases[i].n);
        check_refusal(&r);
    }
}

/* ---- closes the owner asks for -------------------------------------------------------------- */

static void test_owner_close(void **state)
{
    nl_client c = ws_connect();
    rc_ws_close(W.ws[0], RC_WS_CLOSE_GOING_AWAY);
    rc_ws_send(W.ws[0], RC_WS_OP_TEXT, "after", 5); /* dropped */
    assert_int_equal(rc_ws_pending_bytes(W.ws[0]), 0);
    wsc_expect_close(&c, 1001);
    assert_int_equal(W.closes, 0);
    nl_close(&c);
}

static void test_close_inside_on_message(void **state)
{
    W.close_on_message = 1;
    nl_client c = ws_connect();
    uint8_t buf[64];
    size_t a = wsc_frame(buf, 1, RC_WS_OP_TEXT, "first", 5);
    size_t b = wsc_frame(buf + a, 1, RC_WS_OP_TEXT, "second", 6);
    nl_send(&c, buf, a + b);
    wsc_expect_close(&c, 1001);
    expect_message(1, 0, "first", 5); /* the rest of the input is ignored */
    assert_int_equal(W.closes, 0);
    nl_close(&c);
}

/* One frame, shared by two sockets. */
static void test_shared_frame(void **state)
{
    nl_client a = ws_connect(), b = ws_connect();
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "42[\"all\"]", 9);
    rc_ws_send_frame(W.ws[0], f);
    rc_ws_send_frame(W.ws[1], f);
    assert_true(rc_ws_pending_bytes(W.ws[0]) >= rc_frame_wire_len(f));
    rc_frame_unref(f);
    assert_int_equal(wsc_next(&a, &wsc_in), 0);
    assert_memory_equal(wsc_in.payload, "42[\"all\"]", 9);
    assert_int_equal(wsc_next(&b, &wsc_in), 0);
    assert_memory_equal(wsc_in.payload, "42[\"all\"]", 9);
    assert_int_equal(rc_frame_live(), 0);
    rc_ws_set_callbacks(W.ws[1], &ws_cb, &W);
    nl_close(&a);
    nl_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test_setup_teardown(test_upgrade_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frames_with_the_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages_and_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_at_every_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragments_past_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_frame, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
