/*
 * test_server.c: the transport layer (src/server.c, include/roomcast/server.h) over loopback
 * TCP on a private loop (net_loop.h): the installed handler hears input and exactly one close;
 * raw writes, shared frames and bytes added to the output leave in the order they were queued;
 * one frame sent to several connections is written from its own bytes to each and released once
 * all are done; closing with frames queued releases them; close-after-flush delivers everything
 * first, even when the kernel buffer fills; read timeouts, the connection cap and paused accepting.
 * The lingering close: the peer still sending gets our bytes and a FIN, never a reset; the
 * descriptor stays counted until the peer closes or the time bound. The output limit is judged
 * after the flush (on_backlog), on_drain once the output empties; peer addresses and ranges.
 * Every test ends with no frame left live.
 *
 * The whole suite runs twice: with the writev send path and with the io_uring one
 * (src/server_uring.c), which must behave the same in every case above. test_send_path checks
 * that the second run really sends through io_uring, short sends included; where io_uring is
 * unavailable (a seccomp filter) the second run is skipped with a message.
 *
 * Write coalescing (frames with delay_ms): frames queued over several turns within the delay
 * leave in one write (one io_uring send), exactly once and in order, without anything but the
 * timer to end the wait; other output and the output limit end it at the end of the turn; a
 * close drops what is held, a close after flush writes it first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "net_loop.h"

#define MAX_CONNS 8

typedef struct srv_side {
    rc_conn *conn[MAX_CONNS];
    int accepted;
    int closes[MAX_CONNS];
    int reads[MAX_CONNS];
    int backlogs[MAX_CONNS];
    size_t last_backlog;
    int drains[MAX_CONNS];
    int echo;            /* write back what arrives */
    int close_on_read;   /* rc_conn_close from inside on_read, with a frame queued */
} srv_side;

static srv_side S;

static int index_of(rc_conn *c)
{
    for (int i = 0; i < S.accepted; i++)
        if (S.conn[i] == c) return i;
    fail_msg("unknown connection");
    return -1;
}

static void on_read(rc_conn *c, void *data)
{
    int i = index_of(c);
    S.reads[i]++;
    struct evbuffer *in = rc_conn_input(c);
    size_t n = evbuffer_get_length(in);
    char buf[65536];
    if (n > sizeof(buf)) n = sizeof(buf);
    evbuffer_remove(in, buf, n);
    if (S.echo) rc_conn_write(c, buf, n);
    if (S.close_on_read) {
        rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "late", 4);
        rc_conn_send_frame(c, f);
        rc_frame_unref(f);
        rc_conn_close(c);
        assert_true(rc_conn_is_closed(c)); /* the struct lives until the turn ends */
        rc_conn_write(c, "ignored", 7);
    }
}

static void on_close(rc_conn *c, void *data)
{
    S.closes[index_of(c)]++;
}

static void on_backlog(rc_conn *c, void *data, size_t backlog)
{
    S.backlogs[index_of(c)]++;
    S.last_backlog = backlog;
}

static void on_drain(rc_conn *c, void *data)
{
    S.drains[index_of(c)]++;
}

static const rc_conn_handler handler = {on_read, on_close, on_backlog, on_drain};

static void on_accept(void *arg, rc_conn *c)
{
    assert_true(S.accepted < MAX_CONNS);
    S.conn[S.accepted++] = c;
    rc_conn_set_handler(c, &handler, NULL);
}

static int setup(void **state)
{
    memset(&S, 0, sizeof(S));
    nl_setup(on_accept, NULL);
    return 0;
}

static int teardown(void **state)
{
    nl_teardown();
    return 0;
}

static void test_echo_and_one_close(void **state)
{
    S.echo = 1;
    nl_client c = nl_connect();
    assert_int_equal(S.accepted, 1);
    assert_int_equal(rc_server_conn_count(nl_server), 1);
    assert_ptr_equal(rc_conn_base(S.conn[0]), nl_base);
    nl_send_str(&c, "hello");
    assert_true(nl_wait_str(&c, "hello", 2000));
    assert_true(S.reads[0] >= 1);
    nl_close(&c);
    nl_pump(NULL, 20);
    assert_int_equal(S.closes[0], 1);
    assert_int_equal(rc_server_conn_count(nl_server), 0);
}

static void test_order_of_writes(void **state)
{
    nl_client c = nl_connect();
    rc_conn *sc = S.conn[0];
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "B", 1);
    rc_conn_write(sc, "A", 1);
    rc_conn_send_frame(sc, f);
    evbuffer_add(rc_conn_output(sc), "C", 1);
    rc_conn_send_frame(sc, f);
    rc_conn_write(sc, "D", 1);
    rc_frame_unref(f);
    assert_int_equal(rc_frame_live(), 2); /* the connection holds it (and "A", queued as a raw
                                            * frame) until written */
    assert_true(rc_conn_pending_bytes(sc) > 0);
    static const char want[] = "A\x81\x01" "BC\x81\x01" "BD";
    assert_true(nl_wait_bytes(&c, sizeof(want) - 1, 2000));
    assert_memory_equal(c.buf, want, sizeof(want) - 1);
    nl_pump(&c, 5);
    assert_int_equal(rc_frame_live(), 0);
    assert_int_equal(rc_conn_pending_bytes(sc), 0);
    nl_close(&c);
}

static void test_shared_frame_to_many(void **state)
{
    enum { N = 5 };
    nl_client c[N];
    for (int i = 0; i < N; i++) c[i] = nl_connect();
    assert_int_equal(S.accepted, N);
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "42[\"news\"]", 10);
    for (int i = 0; i < N; i++) rc_conn_send_frame(S.conn[i], f);
    assert_int_equal(f->refs, N + 1);
    rc_frame_unref(f);
    for (int i = 0; i < N; i++) {
        assert_true(nl_wait_bytes(&c[i], 12, 2000));
        assert_memory_equal(c[i].buf, "\x81\x0a" "42[\"news\"]", 12);
    }
    assert_int_equal(rc_frame_live(), 0);
    for (int i = 0; i < N; i++) nl_close(&c[i]);
}

/* More frames than the inline slots, several turns in a row. */
static void test_many_frames_queued(void **state)
{
    nl_client c = nl_connect();
    size_t want = 0;
    for (int turn = 0; turn < 5; turn++) {
        for (int i = 0; i < 40; i++) {
            char p[16];
            int n = snprintf(p, sizeof(p), "m%d.%d", turn, i);
            rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, p, (size_t)n);
            rc_conn_send_frame(S.conn[0], f);
            want += rc_frame_wire_len(f);
            rc_frame_unref(f);
        }
        nl_step(&c);
    }
    assert_true(nl_wait_bytes(&c, want, 2000));
    assert_int_equal(c.len, want);
    assert_non_null(memmem(c.buf, c.len, "m4.39", 5));
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&c);
}

static void test_close_with_frames_queued(void **state)
{
    nl_client c = nl_connect();
    rc_frame *f = rc_frame_from(RC_WS_OP_BINARY, "xyz", 3);
    rc_conn_send_frame(S.conn[0], f);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    assert_int_equal(rc_frame_live(), 1);
    rc_conn_close(S.conn[0]);
    assert_int_equal(rc_frame_live(), 0);
    assert_int_equal(S.closes[0], 1);
    rc_conn_close(S.conn[0]); /* a second close is a no-op until the struct is collected */
    assert_int_equal(S.closes[0], 1);
    assert_true(nl_wait_eof(&c, 2000));
    nl_close(&c);
}

static void test_close_from_inside_on_read(void **state)
{
    S.close_on_read = 1;
    nl_client c = nl_connect();
    nl_send_str(&c, "x");
    assert_true(nl_wait_eof(&c, 2000));
    assert_int_equal(S.closes[0], 1);
    assert_int_equal(c.len, 0); /* nothing queued after the close was written */
    nl_close(&c);
}

/* A megabyte the client does not read at first: the kernel buffer fills, the rest waits in the
 * bufferevent, and close-after-flush still delivers every byte before the close. */
static void test_close_after_flush_big(void **state)
{
    nl_rcvbuf = 4096;
    nl_client c = nl_connect();
    enum { CHUNK = 16384, CHUNKS = 64 };
    static uint8_t payload[CHUNK];
    size_t total = 0;
    for (int i = 0; i < CHUNKS; i++) {
        memset(payload, 'a' + i % 26, sizeof(payload));
        rc_frame *f = rc_frame_from(RC_WS_OP_BINARY, payload, sizeof(payload));
        rc_conn_send_frame(S.conn[0], f);
        total += rc_frame_wire_len(f);
        rc_frame_unref(f);
        if (i % 8 == 7) event_base_loop(nl_base, EVLOOP_NONBLOCK); /* flush what fits */
    }
    rc_conn_write(S.conn[0], "END", 3);
    total += 3;
    assert_true(rc_conn_pending_bytes(S.conn[0]) > 0);
    rc_conn_close_after_flush(S.conn[0]);
    assert_int_equal(S.closes[0], 0);
    assert_true(nl_wait_eof(&c, 5000));
    assert_int_equal(c.len, total);
    assert_memory_equal(c.buf + total - 3, "END", 3);
    assert_int_equal(S.closes[0], 1);
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&c);
}

static void test_read_timeout(void **state)
{
    nl_client c = nl_connect();
    rc_conn_set_read_timeout(S.conn[0], 50);
    uint64_t t0 = rc_now_mono_ms();
    assert_true(nl_wait_eof(&c, 2000));
    assert_true(rc_now_mono_ms() - t0 >= 40);
    assert_int_equal(S.closes[0], 1);
    nl_close(&c);
}

static void test_pause_and_resume_read(void **state)
{
    S.echo = 1;
    nl_client c = nl_connect();
    rc_conn_pause_read(S.conn[0]);
    nl_send_str(&c, "held");
    nl_pump(&c, 20);
    assert_int_equal(S.reads[0], 0);
    rc_conn_resume_read(S.conn[0]);
    assert_true(nl_wait_str(&c, "held", 2000));
    nl_close(&c);
}

static void test_connection_cap(void **state)
{
    const char *err = NULL;
    rc_server *capped = rc_server_new(nl_base, "127.0.0.1", 0, 1, nl_on_accept, NULL, &err);
    assert_non_null(capped);
    int saved = nl_port;
    nl_port = rc_server_port(capped);
    rc_server *saved_srv = nl_server;
    nl_server = capped;
    nl_client a = nl_connect();
    nl_client b = nl_connect();
    assert_int_equal(S.accepted, 1);
    assert_int_equal(rc_server_conn_count(capped), 1);
    assert_true(nl_wait_eof(&b, 2000)); /* refused: closed at once */
    nl_close(&b);
    nl_close(&a);
    rc_server_free(capped);
    assert_int_equal(S.closes[0], 1);
    nl_server = saved_srv;
    nl_port = saved;
}

static void test_pause_accept(void **state)
{
    nl_client a = nl_connect();
    rc_server_pause_accept(nl_server);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)nl_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    /* connections already there go on */
    S.echo = 1;
    nl_send_str(&a, "still");
    assert_true(nl_wait_str(&a, "still", 2000));
    nl_close(&a);
}

/* Writes as much as the socket takes, turning the server's loop between writes: the bytes
 * written, or -1 on an error other than a full buffer (a reset: what lingering prevents). */
static long send_much(nl_client *c, size_t total)
{
    static char chunk[65536];
    memset(chunk, 'z', sizeof(chunk));
    size_t sent = 0;
    uint64_t end = rc_now_mono_ms() + 3000;
    while (sent < total && rc_now_mono_ms() < end) {
        ssize_t w = send(c->fd, chunk, sizeof(chunk) < total - sent ? sizeof(chunk) : total - sent, MSG_NOSIGNAL);
        if (w > 0) sent += (size_t)w;
        else if (errno != EAGAIN && errno != EINTR) return -1;
        nl_step(c);
    }
    return (long)sent;
}

/* The owner closes while the peer is still sending: the peer gets the last frame, then the end
 * of the stream, and every byte it sends is taken (no reset); the owner hears on_close at once,
 * the descriptor stays counted until the peer closes too. */
static void test_lingering_close(void **state)
{
    nl_client c = nl_connect();
    assert_int_equal(send_much(&c, 256 * 1024), 256 * 1024); /* unread input on the server side */
    rc_frame *f = rc_frame_from(RC_WS_OP_CLOSE, "\x03\xf1", 2);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    rc_conn_close_after_flush(S.conn[0]);
    assert_int_equal(send_much(&c, 4 << 20), 4 << 20);
    assert_true(nl_wait_eof(&c, 2000));
    assert_memory_equal(c.buf, "\x88\x02\x03\xf1", 4);
    assert_int_equal(S.closes[0], 1);
    assert_int_equal(rc_server_conn_count(nl_server), 1); /* lingering */
    nl_close(&c);
    uint64_t t0 = rc_now_mono_ms();
    while (rc_server_conn_count(nl_server) > 0 && rc_now_mono_ms() - t0 < 1000) nl_step(NULL);
    assert_int_equal(rc_server_conn_count(nl_server), 0);
    assert_true(rc_now_mono_ms() - t0 < RC_CONN_LINGER_MS / 2); /* at the peer's FIN, not the bound */
}

/* A peer that neither closes nor stops: the lingering ends at its time bound. */
static void test_lingering_is_bounded(void **state)
{
    nl_client c = nl_connect();
    uint64_t cut0 = rc_server_counters.linger_cut;
    rc_conn_write(S.conn[0], "bye", 3);
    rc_conn_close_after_flush(S.conn[0]);
    assert_true(nl_wait_eof(&c, 2000)); /* our FIN; the client's side stays open */
    assert_int_equal(rc_server_conn_count(nl_server), 1);
    uint64_t t0 = rc_now_mono_ms();
    while (rc_server_conn_count(nl_server) > 0 && rc_now_mono_ms() - t0 < RC_CONN_LINGER_MS + 1000) nl_step(NULL);
    assert_int_equal(rc_server_conn_count(nl_server), 0);
    assert_true(rc_now_mono_ms() - t0 >= RC_CONN_LINGER_MS - 500);
    assert_int_equal(rc_server_counters.linger_cut, cut0 + 1);
    nl_close(&c);
}

/* The output limit is judged after the flush: a burst the kernel takes is not a backlog; a peer
 * that does not read leaves one. */
static void test_backlog_after_flush(void **state)
{
    nl_client reader = nl_connect();
    nl_rcvbuf = 4096;
    nl_client stuck = nl_connect();
    nl_rcvbuf = 0;
    static uint8_t payload[100000];
    for (int k = 0; k < 2; k++) rc_conn_set_output_limit(S.conn[k], 50000);
    rc_frame *f = rc_frame_from(RC_WS_OP_BINARY, payload, sizeof(payload));
    rc_conn_send_frame(S.conn[0], f); /* twice the limit, queued at once */
    size_t want = rc_frame_wire_len(f);
    assert_true(nl_wait_bytes(&reader, want, 2000));
    assert_int_equal(S.backlogs[0], 0);
    for (int i = 0; i < 200 && !S.backlogs[1]; i++) {
        rc_conn_send_frame(S.conn[1], f);
        event_base_loop(nl_base, EVLOOP_NONBLOCK);
    }
    rc_frame_unref(f);
    assert_true(S.backlogs[1] >= 1);
    assert_true(S.last_backlog > 50000);
    rc_conn_close(S.conn[1]);
    nl_close(&stuck);
    nl_close(&reader);
}

static void test_drain(void **state)
{
    nl_rcvbuf = 4096;
    nl_client c = nl_connect();
    nl_rcvbuf = 0;
    rc_conn_notify_drain(S.conn[0]); /* empty already: at the next flush */
    nl_pump(NULL, 5);
    assert_int_equal(S.drains[0], 1);
    static uint8_t payload[1 << 20];
    rc_frame *f = rc_frame_from(RC_WS_OP_BINARY, payload, sizeof(payload));
    for (int i = 0; i < 8; i++) rc_conn_send_frame(S.conn[0], f);
    size_t want = 8 * rc_frame_wire_len(f);
    rc_frame_unref(f);
    rc_conn_notify_drain(S.conn[0]);
    nl_pump(NULL, 50);
    assert_true(rc_conn_pending_bytes(S.conn[0]) > 0);
    assert_int_equal(S.drains[0], 1);
    assert_true(nl_wait_bytes(&c, want, 5000));
    nl_pump(&c, 5);
    assert_int_equal(S.drains[0], 2);
    nl_close(&c);
}

static void test_addresses(void **state)
{
    nl_client a = nl_connect(), b = nl_connect();
    const rc_addr *p = rc_conn_peer(S.conn[0]);
    char buf[64];
    rc_addr_format(p, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1");
    assert_int_not_equal(rc_conn_id(S.conn[0]), rc_conn_id(S.conn[1]));

    rc_addr x;
    assert_int_equal(rc_addr_parse("2001:db8::1", 11, &x), 0);
    assert_int_equal(x.family, 6);
    assert_int_equal(rc_addr_parse("::ffff:192.0.2.9", 16, &x), 0); /* IPv4-mapped: IPv4 */
    assert_int_equal(x.family, 4);
    rc_addr_format(&x, buf, sizeof(buf));
    assert_string_equal(buf, "192.0.2.9");
    assert_int_equal(rc_addr_parse("192.0.2.9:80", 12, &x), -1);
    assert_int_equal(rc_addr_parse("", 0, &x), -1);

    rc_cidr r;
    assert_int_equal(rc_cidr_parse("10.0.0.0/8", &r), 0);
    assert_int_equal(rc_addr_parse("10.200.3.4", 10, &x), 0);
    assert_true(rc_cidr_match(&r, &x));
    assert_int_equal(rc_addr_parse("11.0.0.1", 8, &x), 0);
    assert_false(rc_cidr_match(&r, &x));
    assert_int_equal(rc_cidr_parse("192.0.2.7", &r), 0); /* one address: /32 */
    assert_int_equal(r.bits, 32);
    assert_int_equal(rc_cidr_parse("fc00::/7", &r), 0);
    assert_int_equal(rc_cidr_parse("fd00::/7", &r), -1); /* a bit set past the prefix */
    assert_int_equal(rc_cidr_parse("fc00::/7", &r), 0);
    assert_int_equal(rc_addr_parse("fdff::1", 7, &x), 0);
    assert_true(rc_cidr_match(&r, &x));
    assert_int_equal(rc_addr_parse("10.0.0.1", 8, &x), 0);
    assert_false(rc_cidr_match(&r, &x)); /* another family */
    assert_int_equal(rc_cidr_parse("0.0.0.0/0", &r), 0);
    assert_true(rc_cidr_match(&r, &x));
    static const char *const bad[] = {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129", "host", "1.2.3.4/0008"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) assert_int_equal(rc_cidr_parse(bad[i], &r), -1);
    nl_close(&a);
    nl_close(&b);
}

static void test_bad_listen_address(void **state)
{
    const char *err = NULL;
    assert_null(rc_server_new(nl_base, "not an address", 0, 0, on_accept, NULL, &err));
    assert_string_equal(err, "bad listen address");
}

/* The path in use is the one asked for, and in the io_uring run every send went through the ring:
 * a shared frame to two sockets, then more than a stuck socket's buffer takes (short sends, the
 * rest finished by the bufferevent) and still everything arrives in order. */
static void test_send_path(void **state)
{
    int uring = nl_send_path == RC_SEND_PATH_IO_URING;
    assert_string_equal(rc_server_send_path(nl_server), uring ? "io_uring" : "writev");
    nl_client a = nl_connect(), b = nl_connect();
    rc_server_uring_stats st0 = rc_server_uring_counters(nl_server);
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "42[\"x\"]", 7);
    rc_conn_send_frame(S.conn[0], f);
    rc_conn_send_frame(S.conn[1], f);
    rc_frame_unref(f);
    assert_true(nl_wait_bytes(&a, 9, 2000));
    assert_true(nl_wait_bytes(&b, 9, 2000));
    rc_server_uring_stats st1 = rc_server_uring_counters(nl_server);
    assert_int_equal(st1.sends - st0.sends, uring ? 2 : 0);
    assert_int_equal(st1.submits - st0.submits, uring ? 1 : 0); /* one turn: one io_uring_enter */
    nl_close(&b);
    nl_rcvbuf = 4096;
    nl_client c = nl_connect();
    nl_rcvbuf = 0;
    enum { CHUNK = 16000, CHUNKS = 400 }; /* 6.4 MB: more than the 4 MiB a send buffer grows to */
    static uint8_t payload[CHUNK];
    size_t total = 0;
    for (int i = 0; i < CHUNKS; i++) {
        memset(payload, 'a' + i % 26, sizeof(payload));
        rc_frame *g = rc_frame_from(RC_WS_OP_BINARY, payload, sizeof(payload));
        rc_conn_send_frame(S.conn[2], g);
        total += rc_frame_wire_len(g);
        rc_frame_unref(g);
        event_base_loop(nl_base, EVLOOP_NONBLOCK);
    }
    rc_server_uring_stats st2 = rc_server_uring_counters(nl_server);
    if (uring) assert_true(st2.short_sends > st1.short_sends);
    assert_true(nl_wait_bytes(&c, total, 10000));
    assert_int_equal(c.len, total);
    for (int i = 0; i < CHUNKS; i++) assert_int_equal(c.buf[i * (CHUNK + 4) + 4], 'a' + i % 26);
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&c);
    nl_close(&a);
}

/* ---- write coalescing (src/server_delay.c) --------------------------------------------------- */

static rc_frame *delayed_frame(const char *text, unsigned ms)
{
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, text, strlen(text));
    f->delay_ms = (uint8_t)ms;
    return f;
}

/* Frames of a 20 ms delay queued over several loop turns leave in one write, all of them, in
 * order, once the delay has passed with nothing else happening (the timer ends the wait). A
 * round the machine interrupted for longer than the delay is tried again (holds then count 2). */
static void test_write_delay_gathers(void **state)
{
    nl_client c = nl_connect();
    int uring = nl_send_path == RC_SEND_PATH_IO_URING;
    int gathered = 0;
    size_t want = 0;
    for (int round = 0; round < 3 && !gathered; round++) {
        rc_server_delay_stats d0 = rc_server_delay_counters(nl_server);
        rc_server_uring_stats u0 = rc_server_uring_counters(nl_server);
        for (int i = 0; i < 6; i++) {
            char p[32];
            snprintf(p, sizeof(p), "r%d.m%d;", round, i);
            rc_frame *f = delayed_frame(p, 20);
            rc_conn_send_frame(S.conn[0], f);
            want += rc_frame_wire_len(f);
            rc_frame_unref(f);
            event_base_loop(nl_base, EVLOOP_NONBLOCK); /* a loop turn: without a delay, a write */
        }
        assert_true(nl_wait_bytes(&c, want, 2000)); /* the delay is bounded: no more sends needed */
        rc_server_delay_stats d1 = rc_server_delay_counters(nl_server);
        rc_server_uring_stats u1 = rc_server_uring_counters(nl_server);
        assert_int_equal(d1.frames - d0.frames, 6);
        assert_true(d1.holds - d0.holds >= 1);
        gathered = d1.holds - d0.holds == 1;
        if (gathered && uring) assert_int_equal(u1.sends - u0.sends, 1); /* one send for six frames */
        char p[32];
        for (int i = 0; i < 6; i++) { /* exactly once, in order */
            snprintf(p, sizeof(p), "r%d.m%d;", round, i);
            const char *at = strstr(c.buf, p);
            assert_non_null(at);
            assert_null(strstr(at + 1, p));
            if (i) {
                char q[32];
                snprintf(q, sizeof(q), "r%d.m%d;", round, i - 1);
                assert_true(strstr(c.buf, q) < at);
            }
        }
    }
    assert_true(gathered);
    assert_int_equal(c.len, want);
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&c);
}

/* Output that is not a held frame (a frame without a delay, a raw write) ends the wait at the
 * end of the turn, the held frames first; so does a frame that would pass the output limit. */
static void test_write_delay_ends_early(void **state)
{
    nl_client c = nl_connect();
    rc_frame *f = delayed_frame("held1;", 20);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    assert_true(rc_conn_pending_bytes(S.conn[0]) > 0);
    f = rc_frame_from(RC_WS_OP_TEXT, "now1;", 5);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    event_base_loop(nl_base, EVLOOP_NONBLOCK);
    assert_int_equal(rc_conn_pending_bytes(S.conn[0]), 0); /* written in this turn */
    f = delayed_frame("held2;", 20);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    rc_conn_write(S.conn[0], "raw2;", 5);
    event_base_loop(nl_base, EVLOOP_NONBLOCK);
    assert_int_equal(rc_conn_pending_bytes(S.conn[0]), 0);
    /* the limit: 2 frames of 33 bytes against 50 */
    rc_conn_set_output_limit(S.conn[0], 50);
    static const char pad[] = "lim-0123456789abcdefghijklmnop;"; /* 31 bytes */
    f = delayed_frame(pad, 20);
    rc_conn_send_frame(S.conn[0], f);
    assert_true(rc_conn_pending_bytes(S.conn[0]) > 0);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    event_base_loop(nl_base, EVLOOP_NONBLOCK);
    assert_int_equal(rc_conn_pending_bytes(S.conn[0]), 0);
    assert_int_equal(S.backlogs[0], 0);
    assert_true(nl_wait_str(&c, "raw2;", 2000));
    const char *h1 = strstr(c.buf, "held1;"), *n1 = strstr(c.buf, "now1;");
    const char *h2 = strstr(c.buf, "held2;"), *r2 = strstr(c.buf, "raw2;");
    assert_true(h1 && n1 && h2 && r2);
    assert_true(h1 < n1 && n1 < h2 && h2 < r2);
    size_t want = (size_t)(r2 - c.buf) + 5 + 2 * (2 + strlen(pad));
    assert_true(nl_wait_bytes(&c, want, 2000));
    assert_int_equal(c.len, want);
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&c);
}

/* A close drops what is held, as it drops a turn's frames without a delay, and the timer finds
 * nothing of it later; a close after flush writes what is held first, then the FIN. */
static void test_write_delay_and_close(void **state)
{
    nl_client a = nl_connect(), b = nl_connect();
    rc_frame *f = delayed_frame("gone;", 5);
    rc_conn_send_frame(S.conn[0], f);
    rc_conn_send_frame(S.conn[0], f);
    rc_frame_unref(f);
    rc_conn_close(S.conn[0]);
    assert_int_equal(S.closes[0], 1);
    assert_int_equal(rc_frame_live(), 0);
    f = delayed_frame("kept;", 20);
    rc_conn_send_frame(S.conn[1], f);
    rc_conn_send_frame(S.conn[1], f);
    rc_frame_unref(f);
    rc_conn_close_after_flush(S.conn[1]);
    assert_true(nl_wait_eof(&b, 2000));
    assert_int_equal(b.len, 2 * 7);
    assert_memory_equal(b.buf, "\x81\x05kept;\x81\x05kept;", 14);
    assert_int_equal(S.closes[1], 1);
    assert_true(nl_wait_eof(&a, 2000));
    assert_int_equal(a.len, 0);
    nl_pump(NULL, 30); /* past both delays: the timers find no connection */
    assert_int_equal(rc_frame_live(), 0);
    nl_close(&a);
    nl_close(&b);
}

/* io_uring_setup may be forbidden here (seccomp): 1 if a server can use it. */
static int uring_available(void)
{
    struct event_base *base = event_base_new();
    const char *err = NULL;
    rc_server *s = rc_server_new(base, "127.0.0.1", 0, 0, on_accept, NULL, &err);
    int ok = s && rc_server_set_send_path(s, RC_SEND_PATH_IO_URING, &err) == 0;
    if (!ok) fprintf(stderr, "io_uring unavailable, its run is skipped: %s\n", err ? err : "?");
    if (s) rc_server_free(s);
    event_base_free(base);
    return ok;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_and_one_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_of_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_frame_to_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_frames_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_frames_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_inside_on_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_flush_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listen_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lingering_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lingering_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_after_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_delay_gathers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_delay_ends_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_delay_and_close, setup, teardown),
    };
    rc_log_setup(RC_LOG_ERROR + 1, 0);
    nl_send_path = RC_SEND_PATH_WRITEV;
    int failed = cmocka_run_group_tests_name("server (writev)", tests, NULL, NULL);
    if (uring_available()) {
        nl_send_path = RC_SEND_PATH_IO_URING;
        failed += cmocka_run_group_tests_name("server (io_uring)", tests, NULL, NULL);
    }
    return failed;
}
