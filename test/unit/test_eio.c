/*
 * test_eio.c: Engine.IO sessions (src/eio.c, include/roomcast/eio.h) on a private loop, an HTTP
 * front (src/http.c) and real loopback connections (net_loop.h, ws_client.h), configured only by
 * an rc_eio_settings as the node fills it. Polling: the handshake's open packet, messages both
 * ways in payloads, ping/pong and the ping timeout, the client's close packet, error answers with
 * their codes, a held GET answered by a close. WebSocket: handshake, messages, ping/pong, close.
 * The upgrade from polling (probe, noop for the paused poll, queued packets flushed in order).
 * Settings: session cap, connect timeout, outbound cap (a queue by what waits behind its first
 * packet, a WebSocket by what a flush leaves unsent), CORS; hold/release; on_close always from
 * the loop, once per session. The pending-session budget: per connection (429 and close), per
 * address (429), behind a trusted proxy by X-Forwarded-For, in all (the oldest is closed).
 * Every test ends with no frame left live.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_loop.h"
#include "roomcast/eio.h"
#include "roomcast/http.h"
#include "roomcast/ws.h"
#include "ws_client.h"

#define MAX_OWNERS 16

/* What the owner (Socket.IO, in the node) would be: one per session. */
typedef struct owner {
    rc_eio_session *s;
    char sid[32];
    int messages;
    int binary;
    char last[256];
    size_t last_len;
    int closed;
    const char *reason;
} owner;

static struct {
    rc_http_limits limits;
    rc_http_callbacks http_cb;
    rc_eio_settings set;
    rc_eio_callbacks eio_cb;
    rc_eio_server *eio;
    owner owners[MAX_OWNERS];
    int opened;
    int close_on_message;       /* rc_eio_close from inside on_message */
} E;

static char *origins[] = {"https://ok.example"};

static void *on_open(void *arg, rc_eio_session *s, const rc_http_request *handshake)
{
    assert_ptr_equal(arg, &E);
    assert_true(E.opened < MAX_OWNERS);
    owner *o = &E.owners[E.opened++];
    o->s = s;
    snprintf(o->sid, sizeof(o->sid), "%s", rc_eio_sid(s));
    assert_ptr_equal(rc_eio_find(E.eio, o->sid), s);
    return o;
}

static void on_message(void *owner_, int binary, const uint8_t *data, size_t len)
{
    owner *o = owner_;
    assert_int_equal(o->closed, 0);
    o->messages++;
    o->binary = binary;
    assert_true(len < sizeof(o->last));
    if (len) memcpy(o->last, data, len);
    o->last[len] = '\0';
    o->last_len = len;
    if (E.close_on_message) rc_eio_close(o->s, "owner closed");
}

static void on_close(void *owner_, const char *reason)
{
    owner *o = owner_;
    o->closed++;
    o->reason = reason;
}

static void on_request(void *arg, rc_http_request *req)
{
    if (req->path.len >= 11 && memcmp(req->path.ptr, "/socket.io/", 11) == 0) {
        rc_eio_handle_request(E.eio, req);
        return;
    }
    rc_http_respond(req, 404, "text/plain", "no", 2, NULL);
}

static void on_accept(void *arg, rc_conn *c)
{
    rc_http_attach(c, &E.limits, &E.http_cb);
}

/* (Re)creates the Engine.IO server from E.set. */
static void eio_start(void)
{
    if (E.eio) rc_eio_server_free(E.eio);
    E.eio = rc_eio_server_new(nl_base, &E.set, &E.eio_cb);
}

static int setup(void **state)
{
    memset(&E, 0, sizeof(E));
    E.limits.max_header_bytes = 8192;
    E.limits.max_body_bytes = 1000;
    E.limits.header_timeout_ms = 2000;
    E.limits.keepalive_timeout_ms = 5000;
    E.limits.max_pending_output = 1 << 20;
    E.http_cb.on_request = on_request;
    E.set = (rc_eio_settings){
        .ping_interval_ms = 10000, .ping_timeout_ms = 5000, .connect_timeout_ms = 10000,
        .upgrade_timeout_ms = 10000, .max_payload = 1000, .allow_polling = 1, .allow_websocket = 1,
        .max_outbound_bytes = 1 << 20, .max_sessions = 0,
    };
    E.eio_cb = (rc_eio_callbacks){on_open, on_message, on_close, &E, NULL};
    nl_setup(on_accept, NULL);
    eio_start();
    return 0;
}

static int teardown(void **state)
{
    if (E.eio) {
        rc_eio_server_free(E.eio);
        E.eio = NULL;
        for (int i = 0; i < E.opened; i++) assert_int_equal(E.owners[i].closed, 1);
    }
    nl_teardown();
    rc_ws_global_cleanup();
    return 0;
}

/* ---- HTTP client ---------------------------------------------------------------------------- */

typedef struct answer {
    int status;
    char head[2048];
    char body[4096];
    size_t body_len;
} answer;

static answer A;

/* Reads one whole answer into A; its status, or -1 if none came. */
static int read_answer(nl_client *c)
{
    memset(&A, 0, sizeof(A));
    if (!nl_wait_str(c, "\r\n\r\n", 2000)) return -1;
    size_t head = (size_t)(strstr(c->buf, "\r\n\r\n") + 4 - c->buf);
    assert_true(head < sizeof(A.head));
    memcpy(A.head, c->buf, head);
    assert_int_equal(sscanf(A.head, "HTTP/1.1 %d", &A.status), 1);
    const char *cl = strstr(A.head, "Content-Length: ");
    assert_non_null(cl);
    size_t len = strtoul(cl + 16, NULL, 10);
    if (!nl_wait_bytes(c, head + len, 2000)) return -1;
    assert_true(len < sizeof(A.body));
    memcpy(A.body, c->buf + head, len);
    A.body_len = len;
    nl_consume(c, head + len);
    return A.status;
}

static void get(nl_client *c, const char *query, const char *extra_headers)
{
    char req[1024];
    snprintf(req, sizeof(req), "GET /socket.io/?%s HTTP/1.1\r\nHost: h\r\n%s\r\n", query,
             extra_headers ? extra_headers : "");
    nl_send_str(c, req);
}

static void post(nl_client *c, const char *query, const void *body, size_t n, const char *extra_headers)
{
    char req[1024];
    int k = snprintf(req, sizeof(req), "POST /socket.io/?%s HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n%s\r\n",
                     query, n, extra_headers ? extra_headers : "");
    nl_send(c, req, (size_t)k);
    nl_send(c, body, n);
}

/* A polling handshake on c: the new session's owner. */
static owner *handshake(nl_client *c)
{
    int before = E.opened;
    get(c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(c), 200);
    assert_int_equal(E.opened, before + 1);
    owner *o = &E.owners[before];
    char want[300];
    snprintf(want, sizeof(want),
             "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%d,\"pingTimeout\":%d,\"maxPayload\":%zu}",
             o->sid, E.set.allow_websocket ? "\"websocket\"" : "", E.set.ping_interval_ms,
             E.set.ping_timeout_ms, E.set.max_payload);
    assert_string_equal(A.body, want);
    assert_non_null(strstr(A.head, "Cache-Control: no-store\r\n"));
    assert_int_equal(strlen(o->sid), 20);
    return o;
}

static const char *sid_query(const owner *o)
{
    static char q[128];
    snprintf(q, sizeof(q), "EIO=4&transport=polling&sid=%s", o->sid);
    return q;
}

static int owner_closed(nl_client *c, const void *o) { return ((const owner *)o)->closed != 0; }
static int wait_closed(nl_client *c, owner *o, int ms) { return nl_wait(c, owner_closed, o, ms); }

/* ---- polling -------------------------------------------------------------------------------- */

static void test_polling_handshake(void **state)
{
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    assert_int_equal(rc_eio_session_count(E.eio), 1);
    assert_null(rc_eio_find(E.eio, "AAAAAAAAAAAAAAAAAAAA"));
    owner *o2 = handshake(&c);
    assert_string_not_equal(o->sid, o2->sid);
    assert_int_equal(rc_eio_session_count(E.eio), 2);
    nl_close(&c);
}

static void test_error_answers(void **state)
{
    static const struct { const char *method, *query; int status; const char *body; } cases[] = {
        {"GET", "EIO=3&transport=polling", 400, "{\"code\":5,\"message\":\"Unsupported protocol version\"}"},
        {"GET", "transport=polling", 400, "{\"code\":5,\"message\":\"Unsupported protocol version\"}"},
        {"GET", "EIO=4", 400, "{\"code\":0,\"message\":\"Transport unknown\"}"},
        {"GET", "EIO=4&transport=flashsocket", 400, "{\"code\":0,\"message\":\"Transport unknown\"}"},
        {"GET", "EIO=4&transport=polling&sid=nosuchsession", 400, "{\"code\":1,\"message\":\"Session ID unknown\"}"},
        {"POST", "EIO=4&transport=polling", 400, "{\"code\":2,\"message\":\"Bad handshake method\"}"},
        {"GET", "EIO=4&transport=websocket", 400, "{\"code\":3,\"message\":\"Bad request\"}"},
    };
    nl_client c = nl_connect();
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        if (strcmp(cases[i].method, "GET") == 0) get(&c, cases[i].query, NULL);
        else post(&c, cases[i].query, "4x", 2, NULL);
        assert_int_equal(read_answer(&c), cases[i].status);
        assert_string_equal(A.body, cases[i].body);
    }
    assert_int_equal(E.opened, 0);
    nl_close(&c);
}

static void test_polling_messages(void **state)
{
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    static const char body[] = "4hello\x1e" "4w\xc3\xb6rld\x1e" "bAQID";
    post(&c, sid_query(o), body, strlen(body), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "ok");
    assert_int_equal(o->messages, 3);
    assert_int_equal(o->binary, 1);
    assert_memory_equal(o->last, "\x01\x02\x03", 3);

    rc_eio_send_message(o->s, 0, "hi", 2);
    rc_eio_send_message(o->s, 1, "\x01\x02\x03", 3);
    assert_int_equal(rc_frame_live(), 2); /* queued for the next GET */
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "4hi\x1e" "bAQID");
    assert_int_equal(rc_frame_live(), 0);

    /* a GET with nothing queued is held until something is sent */
    get(&c, sid_query(o), NULL);
    nl_pump(&c, 20);
    assert_int_equal(c.len, 0);
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "42[\"shared\"]", 12);
    rc_eio_send_frame(o->s, f);
    rc_frame_unref(f);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "42[\"shared\"]");
    assert_int_equal(o->closed, 0);
    nl_close(&c);
}

static void test_polling_bad_posts(void **state)
{
    static const struct { const char *body; size_t n; const char *headers; } cases[] = {
        {"4a\x1e\x1e" "4b", 6, NULL},                              /* empty record */
        {"9x", 2, NULL},                                           /* unknown type */
        {"4\xff", 2, NULL},                                        /* not UTF-8 */
        {"bAQI", 4, NULL},                                         /* bad base64 */
        {"4x", 2, "Content-Type: application/octet-stream\r\n"},  /* binary POST */
        {"2", 1, NULL},                                            /* ping from the client */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        nl_client c = nl_connect();
        owner *o = handshake(&c);
        post(&c, sid_query(o), cases[i].body, cases[i].n, cases[i].headers);
        int st = read_answer(&c);
        if (i == 4) {
            assert_int_equal(st, 400); /* refused, the session goes on */
            assert_int_equal(o->closed, 0);
            rc_eio_close(o->s, "done");
        } else if (i == 5) {
            assert_int_equal(st, 200);
        } else {
            assert_int_equal(st, 400);
            assert_string_equal(A.body, "{\"code\":3,\"message\":\"Bad request\"}");
        }
        assert_true(wait_closed(&c, o, 2000));
        if (i != 4) assert_string_equal(o->reason, "parse error");
        nl_close(&c);
    }
}

/* The server pings every pingInterval; a pong re-arms; no pong within pingTimeout closes the
 * session, and the held GET is answered with a close packet. */
static void test_polling_ping_pong_and_timeout(void **state)
{
    E.set.ping_interval_ms = 60;
    E.set.ping_timeout_ms = 120;
    eio_start();
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    uint64_t t0 = rc_now_mono_ms();
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "2");
    assert_true(rc_now_mono_ms() - t0 >= 30); /* not at once: at pingInterval */
    post(&c, sid_query(o), "3", 1, NULL);
    assert_int_equal(read_answer(&c), 200);
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "2");
    /* no pong this time */
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "1");
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "ping timeout");
    assert_int_equal(rc_eio_session_count(E.eio), 0);
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 400); /* gone */
    nl_close(&c);
}

static void test_polling_close_packet(void **state)
{
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    post(&c, sid_query(o), "1", 1, NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "transport close");
    assert_int_equal(rc_eio_session_count(E.eio), 0);
    nl_close(&c);
}

/* Two GETs at once end the session. */
static void test_polling_two_gets(void **state)
{
    nl_client a = nl_connect(), b = nl_connect();
    owner *o = handshake(&a);
    get(&a, sid_query(o), NULL);
    nl_pump(&a, 10);
    get(&b, sid_query(o), NULL);
    assert_int_equal(read_answer(&b), 400);
    assert_int_equal(read_answer(&a), 200);
    assert_string_equal(A.body, "1");
    assert_true(wait_closed(&a, o, 2000));
    assert_string_equal(o->reason, "parse error");
    nl_close(&a);
    nl_close(&b);
}

/* on_close comes from the loop, never from inside rc_eio_close, and once. */
static void test_close_is_deferred(void **state)
{
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    rc_eio_close(o->s, "bye");
    assert_int_equal(o->closed, 0);
    assert_int_equal(rc_eio_session_count(E.eio), 0);
    assert_null(rc_eio_find(E.eio, o->sid));
    rc_eio_close(o->s, "again"); /* no-op until freed */
    rc_eio_send_message(o->s, 0, "x", 1); /* dropped */
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "bye");
    nl_pump(&c, 10);
    assert_int_equal(o->closed, 1);
    nl_close(&c);
}

static void test_hold_and_release(void **state)
{
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    rc_eio_hold(o->s);
    rc_eio_hold(o->s);
    rc_eio_send_message(o->s, 0, "a", 1);
    get(&c, sid_query(o), NULL);
    nl_pump(&c, 20);
    assert_int_equal(c.len, 0);
    rc_eio_send_message(o->s, 0, "b", 1);
    rc_eio_release(o->s);
    nl_pump(&c, 10);
    assert_int_equal(c.len, 0);
    rc_eio_release(o->s);
    assert_int_equal(read_answer(&c), 200);
    assert_string_equal(A.body, "4a\x1e" "4b");
    rc_eio_release(o->s); /* one too many: ignored */
    nl_close(&c);
}

/* ---- WebSocket ------------------------------------------------------------------------------ */

static owner *ws_handshake(nl_client *c)
{
    int before = E.opened;
    wsc_upgrade(c, "/socket.io/?EIO=4&transport=websocket");
    assert_int_equal(E.opened, before + 1);
    owner *o = &E.owners[before];
    assert_int_equal(wsc_next(c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_TEXT);
    char want[300];
    int n = snprintf(want, sizeof(want),
                     "0{\"sid\":\"%s\",\"upgrades\":[],\"pingInterval\":%d,\"pingTimeout\":%d,\"maxPayload\":%zu}",
                     o->sid, E.set.ping_interval_ms, E.set.ping_timeout_ms, E.set.max_payload);
    assert_int_equal(wsc_in.len, (size_t)n);
    assert_memory_equal(wsc_in.payload, want, (size_t)n);
    return o;
}

static void expect_text(nl_client *c, const char *text)
{
    assert_int_equal(wsc_next(c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_TEXT);
    assert_int_equal(wsc_in.len, strlen(text));
    assert_memory_equal(wsc_in.payload, text, wsc_in.len);
}

static void test_websocket_session(void **state)
{
    E.set.ping_interval_ms = 60;
    E.set.ping_timeout_ms = 500;
    eio_start();
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    wsc_send(&c, 1, RC_WS_OP_TEXT, "4abc", 4);
    wsc_send(&c, 1, RC_WS_OP_BINARY, "\x00\xff", 2);
    rc_eio_send_message(o->s, 0, "hey", 3);
    rc_eio_send_message(o->s, 1, "\x05", 1);
    expect_text(&c, "4hey");
    assert_int_equal(wsc_next(&c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_BINARY);
    assert_int_equal(wsc_in.len, 1);
    assert_int_equal(o->messages, 2);
    assert_int_equal(o->binary, 1);
    /* the server's ping, our pong, and the next ping */
    expect_text(&c, "2");
    wsc_send(&c, 1, RC_WS_OP_TEXT, "3", 1);
    expect_text(&c, "2");
    wsc_send(&c, 1, RC_WS_OP_TEXT, "3", 1);
    assert_int_equal(o->closed, 0);
    /* the client's close packet */
    wsc_send(&c, 1, RC_WS_OP_TEXT, "1", 1);
    wsc_expect_close(&c, 1000);
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "transport close");
    nl_close(&c);
}

static void test_websocket_ping_timeout(void **state)
{
    E.set.ping_interval_ms = 40;
    E.set.ping_timeout_ms = 60;
    eio_start();
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    expect_text(&c, "2");
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "ping timeout");
    wsc_expect_close(&c, 1000);
    nl_close(&c);
}

static void test_websocket_peer_goes_away(void **state)
{
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    nl_close(&c);
    assert_true(wait_closed(NULL, o, 2000));
    assert_string_equal(o->reason, "transport close");
}

static void test_websocket_bad_packet(void **state)
{
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    wsc_send(&c, 1, RC_WS_OP_TEXT, "x", 1);
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "parse error");
    wsc_expect_close(&c, 1000);
    nl_close(&c);
}

static void test_close_from_on_message(void **state)
{
    E.close_on_message = 1;
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    uint8_t buf[64];
    size_t a = wsc_frame(buf, 1, RC_WS_OP_TEXT, "4one", 4);
    size_t b = wsc_frame(buf + a, 1, RC_WS_OP_TEXT, "4two", 4);
    nl_send(&c, buf, a + b);
    wsc_expect_close(&c, 1000);
    assert_true(wait_closed(&c, o, 2000));
    assert_int_equal(o->messages, 1);
    assert_string_equal(o->reason, "owner closed");
    nl_close(&c);
}

/* Polling, then a probe, then the upgrade: what waited in the polling queue goes over the
 * WebSocket, in order. */
static void test_upgrade_from_polling(void **state)
{
    nl_client p = nl_connect();
    owner *o = handshake(&p);
    get(&p, sid_query(o), NULL); /* held */
    nl_pump(&p, 10);
    nl_client w = nl_connect();
    char target[128];
    snprintf(target, sizeof(target), "/socket.io/?EIO=4&transport=websocket&sid=%s", o->sid);
    wsc_upgrade(&w, target);
    assert_int_equal(E.opened, 1); /* no new session */
    wsc_send(&w, 1, RC_WS_OP_TEXT, "2probe", 6);
    expect_text(&w, "3probe");
    assert_int_equal(read_answer(&p), 200);
    assert_string_equal(A.body, "6"); /* the paused poll ends with a noop */
    rc_eio_send_message(o->s, 0, "queued1", 7);
    rc_eio_send_message(o->s, 0, "queued2", 7);
    wsc_send(&w, 1, RC_WS_OP_TEXT, "5", 1);
    expect_text(&w, "4queued1");
    expect_text(&w, "4queued2");
    rc_eio_send_message(o->s, 0, "direct", 6);
    expect_text(&w, "4direct");
    wsc_send(&w, 1, RC_WS_OP_TEXT, "4up", 3);
    nl_pump(&w, 10);
    assert_string_equal(o->last, "up");
    /* polling is over for this session */
    get(&p, sid_query(o), NULL);
    assert_int_equal(read_answer(&p), 400);
    assert_int_equal(o->closed, 0);
    nl_close(&p);
    nl_close(&w);
}

static void test_upgrade_aborted(void **state)
{
    nl_client p = nl_connect();
    owner *o = handshake(&p);
    nl_client w = nl_connect();
    char target[128];
    snprintf(target, sizeof(target), "/socket.io/?EIO=4&transport=websocket&sid=%s", o->sid);
    wsc_upgrade(&w, target);
    wsc_send(&w, 1, RC_WS_OP_TEXT, "4nope", 5);
    wsc_expect_close(&w, 1002);
    /* the polling session goes on */
    rc_eio_send_message(o->s, 0, "still", 5);
    get(&p, sid_query(o), NULL);
    assert_int_equal(read_answer(&p), 200);
    assert_string_equal(A.body, "4still");
    assert_int_equal(o->closed, 0);
    nl_close(&p);
    nl_close(&w);
}

/* ---- settings ------------------------------------------------------------------------------- */

static void test_session_cap_and_refuse_new(void **state)
{
    E.set.max_sessions = 1;
    eio_start();
    nl_client c = nl_connect();
    handshake(&c);
    get(&c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c), 403);
    assert_string_equal(A.body, "{\"code\":4,\"message\":\"Forbidden\"}");
    E.set.max_sessions = 0;
    eio_start();
    assert_int_equal(E.owners[0].closed, 1);
    assert_string_equal(E.owners[0].reason, "server shutting down");
    rc_eio_server_refuse_new(E.eio);
    get(&c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c), 403);
    assert_int_equal(E.opened, 1);
    nl_close(&c);
}

static void test_transports_allowed(void **state)
{
    E.set.allow_polling = 0;
    eio_start();
    nl_client c = nl_connect();
    get(&c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c), 400);
    assert_string_equal(A.body, "{\"code\":0,\"message\":\"Transport unknown\"}");
    E.set.allow_polling = 1;
    E.set.allow_websocket = 0;
    eio_start();
    owner *o = handshake(&c); /* advertises no upgrade */
    assert_non_null(o);
    nl_close(&c);
}

static void test_connect_timeout(void **state)
{
    E.set.connect_timeout_ms = 50;
    eio_start();
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    owner *kept = handshake(&c);
    rc_eio_mark_connected(kept->s);
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "connect timeout");
    nl_pump(&c, 60);
    assert_int_equal(kept->closed, 0);
    nl_close(&c);
}

/* A polling queue may hold one packet (up to max_payload) plus the cap: whatever the next poll
 * takes first, a packet over the cap alone is fine; the cap behind one is not. */
static void test_outbound_cap(void **state)
{
    E.set.max_outbound_bytes = 100;
    E.set.max_payload = 200;
    eio_start();
    nl_client c = nl_connect();
    owner *o = handshake(&c);
    char chunk[250];
    memset(chunk, 'x', sizeof(chunk));
    rc_eio_send_message(o->s, 0, chunk, sizeof(chunk)); /* 251 bytes, over the cap */
    nl_pump(&c, 5);
    assert_int_equal(o->closed, 0);
    get(&c, sid_query(o), NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_int_equal(A.body_len, 251);
    for (int i = 0; i < 7; i++) rc_eio_send_message(o->s, 0, chunk, 40); /* 287 bytes */
    nl_pump(&c, 5);
    assert_int_equal(o->closed, 0);
    rc_eio_send_message(o->s, 0, chunk, 40); /* 328 */
    assert_true(wait_closed(&c, o, 2000));
    assert_string_equal(o->reason, "slow consumer");
    nl_close(&c);
}

static int got_bytes(nl_client *c, const void *n) { return c->len >= *(const size_t *)n; }

/* A WebSocket is judged after the flush: a message far over the cap goes to a peer that reads;
 * a peer that stops reading is dropped once more than the cap plus a packet stays unsent. */
static void test_outbound_cap_websocket(void **state)
{
    E.set.max_outbound_bytes = 16384;
    E.set.max_payload = 200000;
    eio_start();
    nl_client c = nl_connect();
    owner *o = ws_handshake(&c);
    static uint8_t big[200000];
    memset(big, 'b', sizeof(big));
    rc_eio_send_message(o->s, 1, big, sizeof(big));
    rc_eio_send_message(o->s, 1, big, 1000);
    size_t want = sizeof(big) + 10 + 1000 + 4;
    assert_true(nl_wait(&c, got_bytes, &want, 5000));
    assert_int_equal(o->closed, 0);

    nl_client q = {0};
    nl_rcvbuf = 4096;
    q = nl_connect();
    nl_rcvbuf = 0;
    owner *stuck = ws_handshake(&q);
    for (int i = 0; i < 400 && !stuck->closed; i++) {
        rc_eio_send_message(stuck->s, 1, big, 8192);
        event_base_loop(nl_base, EVLOOP_NONBLOCK); /* the flush; the client reads nothing */
    }
    assert_true(nl_wait_flag(NULL, &stuck->closed, 2000));
    assert_string_equal(stuck->reason, "slow consumer");
    assert_int_equal(o->closed, 0);
    nl_close(&q);
    nl_close(&c);
}

/* ---- the pending-session budget ----------------------------------------------------------- */

static void test_pending_per_connection(void **state)
{
    E.set.max_pending_per_conn = 2;
    eio_start();
    nl_client c = nl_connect();
    owner *a = handshake(&c);
    handshake(&c);
    get(&c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c), 429);
    assert_string_equal(A.body, "{\"code\":4,\"message\":\"Too many unconnected sessions on this connection\"}");
    assert_non_null(strstr(A.head, "Retry-After: 1\r\n"));
    assert_non_null(strstr(A.head, "Connection: close\r\n"));
    assert_true(nl_wait_eof(&c, 2000));
    assert_int_equal(E.opened, 2);
    nl_close(&c);
    /* another connection has a budget of its own; a connected session leaves the budget */
    nl_client d = nl_connect();
    owner *b = handshake(&d);
    rc_eio_mark_connected(b->s);
    handshake(&d);
    handshake(&d);
    assert_int_equal(E.opened, 5);
    assert_int_equal(a->closed, 0);
    nl_close(&d);
}

static void test_pending_per_address(void **state)
{
    E.set.max_pending_per_addr = 2;
    eio_start();
    nl_client c1 = nl_connect(), c2 = nl_connect(), c3 = nl_connect();
    owner *a = handshake(&c1);
    handshake(&c2);
    get(&c3, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c3), 429);
    assert_string_equal(A.body, "{\"code\":4,\"message\":\"Too many unconnected sessions from this address\"}");
    assert_null(strstr(A.head, "Connection: close\r\n")); /* the connection may try again later */
    rc_eio_mark_connected(a->s);
    handshake(&c3);
    /* a WebSocket handshake counts the same way */
    nl_client w = nl_connect();
    nl_send_str(&w, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n");
    assert_int_equal(read_answer(&w), 429);
    /* a session that goes away frees its place */
    rc_eio_close(E.owners[1].s, "gone");
    nl_close(&w);
    w = nl_connect();
    ws_handshake(&w);
    assert_int_equal(E.opened, 4);
    nl_close(&w);
    nl_close(&c1);
    nl_close(&c2);
    nl_close(&c3);
}

static void test_pending_behind_trusted_proxy(void **state)
{
    static rc_cidr trusted[2];
    assert_int_equal(rc_cidr_parse("127.0.0.0/8", &trusted[0]), 0);
    assert_int_equal(rc_cidr_parse("10.0.0.0/8", &trusted[1]), 0);
    E.set.trusted_proxies = trusted;
    E.set.trusted_proxy_count = 2;
    E.set.max_pending_per_addr = 1;
    E.set.max_pending_per_conn = 1; /* not applied to a trusted proxy's connection */
    eio_start();
    nl_client c = nl_connect();
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: 192.0.2.1\r\n");
    assert_int_equal(read_answer(&c), 200);
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: 192.0.2.1\r\n");
    assert_int_equal(read_answer(&c), 429);
    /* the rightmost address that is not a trusted proxy; a port is ignored */
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: 192.0.2.1, 192.0.2.2:5555, 10.1.2.3\r\n");
    assert_int_equal(read_answer(&c), 200);
    /* a client's own X-Forwarded-For line does not count: the last line is the proxy's */
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-For: 192.0.2.2\r\n");
    assert_int_equal(read_answer(&c), 429);
    /* IPv6 by /64 */
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: [2001:db8:0:1::1]:443\r\n");
    assert_int_equal(read_answer(&c), 200);
    get(&c, "EIO=4&transport=polling", "X-Forwarded-For: 2001:db8:0:1::2\r\n");
    assert_int_equal(read_answer(&c), 429);
    /* no header: the proxy itself */
    get(&c, "EIO=4&transport=polling", NULL);
    assert_int_equal(read_answer(&c), 200);
    assert_int_equal(E.opened, 4);
    nl_close(&c);
}

static void test_pending_cap_evicts_the_oldest(void **state)
{
    E.set.max_pending = 2;
    eio_start();
    nl_client c = nl_connect();
    owner *a = handshake(&c);
    owner *b = handshake(&c);
    rc_eio_mark_connected(b->s);
    owner *d = handshake(&c);
    nl_pump(&c, 5);
    assert_int_equal(a->closed, 0);
    handshake(&c); /* the third pending one: the oldest makes room */
    assert_true(wait_closed(&c, a, 2000));
    assert_string_equal(a->reason, "too many pending sessions");
    assert_int_equal(b->closed, 0);
    assert_int_equal(d->closed, 0);
    nl_close(&c);
}

#define ORIGIN_REFUSED \
    "{\"code\":4,\"message\":\"Origin not allowed: add it to cors.origins (ROOMCAST_CORS_ORIGINS)\"}"

static void test_cors(void **state)
{
    E.set.cors_origins = origins;
    E.set.cors_origin_count = 1;
    E.set.cors_credentials = 1;
    eio_start();
    nl_client c = nl_connect();
    get(&c, "EIO=4&transport=polling", "Origin: https://ok.example\r\n");
    assert_int_equal(read_answer(&c), 200);
    assert_non_null(strstr(A.head, "Access-Control-Allow-Origin: https://ok.example\r\nVary: Origin\r\n"
                                   "Access-Control-Allow-Credentials: true\r\n"));
    /* an origin not on the list: refused, no session; only the refusal names the origin, so that
     * the page can read why */
    get(&c, "EIO=4&transport=polling", "Origin: https://evil.example\r\n");
    assert_int_equal(read_answer(&c), 403);
    assert_string_equal(A.body, ORIGIN_REFUSED);
    assert_non_null(strstr(A.head, "Access-Control-Allow-Origin: https://evil.example\r\n"));
    nl_send_str(&c, "OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: h\r\n"
                    "Origin: https://ok.example\r\nAccess-Control-Request-Headers: authorization\r\n\r\n");
    assert_int_equal(read_answer(&c), 204);
    assert_non_null(strstr(A.head, "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n"));
    assert_non_null(strstr(A.head, "Access-Control-Allow-Headers: authorization\r\n"));
    nl_close(&c);

    /* a WebSocket from an origin not on the list is refused */
    nl_client w = nl_connect();
    nl_send_str(&w, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n");
    assert_int_equal(read_answer(&w), 403);
    assert_string_equal(A.body, ORIGIN_REFUSED);
    nl_close(&w);
    assert_int_equal(E.opened, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_polling_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_bad_posts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_ping_pong_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_close_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_two_gets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_is_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_ping_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_peer_goes_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_websocket_bad_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_aborted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_cap_and_refuse_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transports_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_cap_websocket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_per_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_per_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_behind_trusted_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_cap_evicts_the_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
