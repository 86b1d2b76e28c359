/*
 * net_loop.h: the fixture the transport-layer unit tests share (test_server, test_http,
 * test_ws, test_eio): a private libevent loop (`nl_base`, kept turning by a 1 ms timer), an
 * rc_server listening on 127.0.0.1 at a free port, and plain client sockets on the test's side
 * of the loopback whose received bytes pile up in an nl_client. Everything runs on the test's
 * one thread: waiting for an answer means turning the server's loop and reading the client
 * socket in turns, until a condition holds or a timeout passes.
 *
 * API in call order: nl_setup(on_accept, arg) -> nl_connect -> nl_send / nl_wait_* / nl_pump
 * -> nl_close -> nl_teardown (frees the server and the loop, then checks that no rc_frame is
 * left live). Include it once in a test file, after cmocka.h.
 */
#ifndef ROOMCAST_TEST_NET_LOOP_H
#define ROOMCAST_TEST_NET_LOOP_H

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/frame.h"
#include "roomcast/log.h"
#include "roomcast/server.h"
#include "roomcast/server_config.h"

static struct event_base *nl_base;
static struct event *nl_wake;
static rc_server *nl_server;
static int nl_port;
static int nl_send_path; /* when set (enum rc_send_path), nl_setup gives the server this send path */
static int nl_rcvbuf;  /* when set, nl_connect gives its socket this SO_RCVBUF (before connecting) */
static uint64_t nl_accepted;              /* connections handed to the test's accept callback */
static rc_server_accept_fn nl_user_accept;

typedef struct nl_client {
    int fd;
    int eof;          /* the server closed (read returned 0 or the connection was reset) */
    char *buf;        /* everything received and not consumed, NUL-terminated */
    size_t len, cap;
} nl_client;

static void nl_on_wake(evutil_socket_t fd, short what, void *arg)
{
}

static void nl_on_accept(void *arg, rc_conn *c)
{
    nl_accepted++;
    nl_user_accept(arg, c);
}

/* A fresh loop and a server whose accepted connections go to on_accept. */
static inline void nl_setup(rc_server_accept_fn on_accept, void *arg)
{
    nl_user_accept = on_accept;
    rc_log_setup(getenv("RC_TEST_DEBUG") ? RC_LOG_DEBUG : RC_LOG_ERROR + 1, 0);
    nl_base = event_base_new();
    assert_non_null(nl_base);
    nl_wake = event_new(nl_base, -1, EV_PERSIST, nl_on_wake, NULL);
    struct timeval tv = {0, 1000};
    event_add(nl_wake, &tv);
    const char *err = NULL;
    nl_server = rc_server_new(nl_base, "127.0.0.1", 0, 0, nl_on_accept, arg, &err);
    assert_non_null(nl_server);
    if (nl_send_path) assert_int_equal(rc_server_set_send_path(nl_server, nl_send_path, &err), 0);
    nl_port = rc_server_port(nl_server);
}

/* Frees the server (closing every connection), turns the loop once more for deferred frees,
 * frees the loop, and checks that every frame was released. */
static inline void nl_teardown(void)
{
    if (nl_server) rc_server_free(nl_server);
    nl_server = NULL;
    nl_rcvbuf = 0;
    event_base_loop(nl_base, EVLOOP_NONBLOCK);
    event_free(nl_wake);
    event_base_free(nl_base);
    nl_base = NULL;
    assert_int_equal(rc_frame_live(), 0);
}

/* Reads what the socket has (non-blocking) into c->buf. */
static inline void nl_client_poll(nl_client *c)
{
    for (;;) {
        if (c->cap - c->len < 4097) {
            c->cap = c->cap ? c->cap * 2 : 8192;
            c->buf = rc_realloc(c->buf, c->cap);
        }
        ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len - 1);
        if (r > 0) {
            c->len += (size_t)r;
            c->buf[c->len] = '\0';
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) c->eof = 1;
        return;
    }
}

/* One turn of the server's loop (at most about a millisecond), then the client reads. */
static inline void nl_step(nl_client *c)
{
    event_base_loop(nl_base, EVLOOP_ONCE);
    if (c) nl_client_poll(c);
}

/* Turns the loop for about ms milliseconds. */
static inline void nl_pump(nl_client *c, int ms)
{
    uint64_t end = rc_now_mono_ms() + (uint64_t)ms;
    do nl_step(c); while (rc_now_mono_ms() < end);
}

/* Turns the loop until pred(c, arg) holds: 1, or 0 after timeout_ms. */
static inline int nl_wait(nl_client *c, int (*pred)(nl_client *, const void *), const void *arg,
                          int timeout_ms)
{
    uint64_t end = rc_now_mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (c) nl_client_poll(c);
        if (pred(c, arg)) return 1;
        if (rc_now_mono_ms() >= end) return 0;
        nl_step(c);
    }
}

static inline int nl_has_str(nl_client *c, const void *s) { return c->len && strstr(c->buf, s) != NULL; }
static inline int nl_has_bytes(nl_client *c, const void *n) { return c->len >= *(const size_t *)n; }
static inline int nl_is_eof(nl_client *c, const void *unused) { return c->eof; }

static inline int nl_wait_str(nl_client *c, const char *s, int timeout_ms) { return nl_wait(c, nl_has_str, s, timeout_ms); }
static inline int nl_wait_bytes(nl_client *c, size_t n, int timeout_ms) { return nl_wait(c, nl_has_bytes, &n, timeout_ms); }
static inline int nl_wait_eof(nl_client *c, int timeout_ms) { return nl_wait(c, nl_is_eof, NULL, timeout_ms); }

/* Turns the loop until *flag is non-zero: 1, or 0 after timeout_ms. */
static inline int nl_flag_set(nl_client *c, const void *flag) { return *(const volatile int *)flag != 0; }
static inline int nl_wait_flag(nl_client *c, const int *flag, int timeout_ms) { return nl_wait(c, nl_flag_set, flag, timeout_ms); }

/* Drops the first n received bytes. */
static inline void nl_consume(nl_client *c, size_t n)
{
    assert_true(n <= c->len);
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* A connection to the server, accepted by the time it returns (unless the server refuses it:
 * then after about 200 turns of the loop). */
static inline nl_client nl_connect(void)
{
    nl_client c = {0};
    c.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c.fd >= 0);
    if (nl_rcvbuf) setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &nl_rcvbuf, sizeof(nl_rcvbuf));
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)nl_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    uint64_t before = nl_accepted;
    for (int i = 0; i < 200 && nl_accepted == before; i++) nl_step(NULL);
    return c;
}

/* Writes all of data, turning the loop while the socket is full. */
static inline void nl_send(nl_client *c, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = write(c->fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else {
            assert_true(w < 0 && (errno == EAGAIN || errno == EINTR));
            nl_step(c);
        }
    }
}

static inline void nl_send_str(nl_client *c, const char *s) { nl_send(c, s, strlen(s)); }

/* Sends data in two writes cut at `at`, letting the server read the first part alone. */
static inline void nl_send_split(nl_client *c, const void *data, size_t n, size_t at)
{
    nl_send(c, data, at);
    for (int i = 0; i < 3; i++) event_base_loop(nl_base, EVLOOP_NONBLOCK);
    nl_send(c, (const char *)data + at, n - at);
}

static inline void nl_close(nl_client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    rc_free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

#endif
