/*
 * redis_conn.c: one Redis connection on the node's libevent loop, owning its I/O: connect (TCP,
 * unix socket, or TLS through libevent's OpenSSL bufferevent), the AUTH/SELECT/CLIENT SETNAME
 * handshake, the in-flight ring of regular commands, the NULL answers a lost connection owes,
 * the end-of-turn write and the capped read. Contract and state diagram: src/redis_conn.h; why
 * this is written here rather than taken from hiredis: docs/architecture.md ("Why some things
 * are written by hand"). Every Redis connection roomcast opens is one of these (the backplane's
 * sub and cmd, backplane_redis_phase.c).
 *
 * hiredis is used for two things only: redisFormatCommandArgv (commands into RESP) and
 * redisReader (RESP into redisReply trees).
 *
 * Handshake: AUTH (if the URL has a password), SELECT (if db is not 0) and CLIENT SETNAME are
 * formatted into the output right at open, before anything else; CONNECTED means Redis answered
 * them (a TCP connect to a stopped Redis succeeds, so it proves nothing). An error reply to AUTH
 * or SELECT fails the connection; a refused CLIENT SETNAME (ACL) only costs the name in CLIENT
 * LIST. The handshake's ring entries have fn NULL and their step in arg.
 *
 * Writing: commands are formatted into `out` as they are sent; the first of a loop turn
 * activates flush_ev, which runs once the turn's callbacks are done and writes `out` with one
 * writev on a plain socket. Only what the kernel does not take moves to the bufferevent's output
 * (libevent then waits for writability), and over TLS everything goes through the bufferevent.
 * Nothing is written before the connect (and the TLS handshake) completed.
 *
 * Reading: on a plain socket the bufferevent's own reading stays off (libevent 2.1 reads a
 * socket 4 KiB at a time) and our persistent read event reads 64 KiB at a time, up to
 * MAX_READS_PER_TURN reads or MAX_READ_NS_PER_TURN of work in one loop turn: under a burst the
 * server's once-per-turn flush then carries many messages per writev, while other clients wait
 * at most that long for their turn. Over TLS the OpenSSL bufferevent reads and we parse its
 * input. Replies are taken from the reader one at a time; one that arrives while no regular
 * command waits is a push (subscription confirmations and messages).
 *
 * The owner may close the connection from any callback: every loop over replies checks that the
 * session it started with (opens) is still the current one, and bufferevents may be freed from
 * inside their own callbacks (libevent holds a reference while it runs them).
 *
 * What it does not do: no reconnect, backoff, timeout or canary (the owner decides when to close
 * and reopen, with src/redis_link.c); no retry of any command; no DNS (the owner passes an address).
 *
 * Ownership: the bufferevent (and through it the socket and the SSL), the reader, `out` and the
 * events belong to the connection. A command's arg stays the sender's; the connection only hands
 * it back.
 */
#include "redis_conn.h"

#include "redis_tls.h"
#include "roomcast/common.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Bounds on a connection's backlog (docs/redis.md, "Liveness"): over either, sending returns -1. */
static const size_t MAX_INFLIGHT = 65536;                 /* commands sent, reply not yet read */
static const size_t MAX_OUTPUT_BYTES = 32u * 1024 * 1024; /* formatted, not yet written */

#define READ_CHUNK 65536                                  /* one read() on a plain socket */
#define MAX_READS_PER_TURN 64                             /* 4 MiB ... */
#define MAX_READ_NS_PER_TURN (100 * 1000000ull)           /* ... or 100 ms of work per turn */
#define FEED_SLICE 2048                                   /* bytes given to the reader at once */
/* Over TLS, what the OpenSSL bufferevent may read in one callback. Redis up to 7.0 (and Valkey
 * before 8.1) drops a TLS client whose socket filled up while it wrote ("SSL routines::bad
 * length" in its verbose log: it retries SSL_write with a shorter buffer), so a subscriber
 * that reads 16 KiB a turn loses its connection, and messages, under a burst. */
#define TLS_READ_PER_TURN (4 << 20)

/* The handshake's steps, kept in its ring entries' arg (their fn is NULL). */
enum { HANDSHAKE_AUTH = 1, HANDSHAKE_SELECT, HANDSHAKE_SETNAME };

/* ---- the in-flight ring ---------------------------------------------------------------------- */

static void ring_reset(redis_conn *c)
{
    c->ring_head = c->ring_len = 0;
}

static int ring_push(redis_conn *c, redis_conn_reply_fn fn, void *arg)
{
    if (c->ring_len == c->ring_cap) {
        if (c->ring_cap >= MAX_INFLIGHT) return -1;
        size_t cap = c->ring_cap ? c->ring_cap * 2 : 64;
        redis_conn_cmd *r = rc_malloc(cap * sizeof(*r));
        for (size_t i = 0; i < c->ring_len; i++)
            r[i] = c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        rc_free(c->ring);
        c->ring = r;
        c->ring_cap = cap;
        c->ring_head = 0;
    }
    redis_conn_cmd *f = &c->ring[(c->ring_head + c->ring_len) & (c->ring_cap - 1)];
    f->sent_ns = rc_now_mono_ns();
    f->fn = fn;
    f->arg = arg;
    c->ring_len++;
    return 0;
}

static redis_conn_cmd ring_pop(redis_conn *c)
{
    assert(c->ring_len > 0);
    redis_conn_cmd f = c->ring[c->ring_head];
    c->ring_head = (c->ring_head + 1) & (c->ring_cap - 1);
    c->ring_len--;
    return f;
}

/* Answers every lost command NULL, oldest first. Answers may lose more meanwhile (a connection
 * reopened and lost again): those are answered too. */
static void lost_run(redis_conn *c)
{
    while (c->nlost) {
        redis_conn_cmd *list = c->lost;
        size_t n = c->nlost;
        c->lost = NULL;
        c->nlost = c->lost_cap = 0;
        for (size_t i = 0; i < n; i++) {
            c->in_callback++;
            list[i].fn(list[i].arg, c, &list[i], NULL);
            c->in_callback--;
        }
        rc_free(list);
    }
}

static void on_lost_ev(evutil_socket_t fd, short what, void *arg)
{
    lost_run(arg);
}

/* The connection is going away: its senders' unanswered commands move to `lost`, to be
 * answered NULL from the loop (the handshake's own are dropped). */
static void ring_abandon(redis_conn *c)
{
    size_t moved = 0;
    for (size_t i = 0; i < c->ring_len; i++) {
        const redis_conn_cmd *f = &c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        if (!f->fn) continue;
        if (c->nlost == c->lost_cap) {
            c->lost_cap = c->lost_cap ? c->lost_cap * 2 : 16;
            c->lost = rc_realloc(c->lost, c->lost_cap * sizeof(*c->lost));
        }
        c->lost[c->nlost++] = *f;
        moved++;
    }
    ring_reset(c);
    if (moved) event_active(c->lost_ev, EV_TIMEOUT, 0);
}

int redis_conn_overdue(const redis_conn *c, uint64_t now_ns, uint64_t timeout_ns)
{
    return c->ring_len && now_ns - c->ring[c->ring_head].sent_ns >= timeout_ns;
}

int redis_conn_error_class(const redisReply *reply)
{
    static const struct {
        const char *word;
        int cls;
    } classes[] = {
        {"READONLY", REDIS_ERR_READONLY}, {"MOVED", REDIS_ERR_MOVED},
        {"ASK", REDIS_ERR_ASK}, {"TRYAGAIN", REDIS_ERR_TRYAGAIN},
        {"CLUSTERDOWN", REDIS_ERR_CLUSTERDOWN}, {"LOADING", REDIS_ERR_LOADING},
        {"MASTERDOWN", REDIS_ERR_MASTERDOWN},
    };
    if (!reply || reply->type != REDIS_REPLY_ERROR || !reply->str) return REDIS_ERR_NONE;
    for (size_t i = 0; i < RC_ARRAY_LEN(classes); i++) {
        size_t n = strlen(classes[i].word);
        if (reply->len >= n && memcmp(reply->str, classes[i].word, n) == 0 &&
            (reply->len == n || reply->str[n] == ' '))
            return classes[i].cls;
    }
    return REDIS_ERR_NONE;
}

/* ---- the session: teardown and failure -------------------------------------------------------- */

/* Frees what one open made (socket, SSL, reader, unsent output) and abandons the ring. */
static void session_end(redis_conn *c)
{
    if (c->rev) event_free(c->rev);
    c->rev = NULL;
    if (c->bev) {
        /* libevent 2.1 closes the socket (and frees the SSL) from the loop, later: shut it down
         * now, so Redis drops this client (its subscriptions) at once */
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (fd >= 0) shutdown(fd, SHUT_RDWR);
        bufferevent_free(c->bev);
    }
    c->bev = NULL;
    if (c->reader) redisReaderFree(c->reader);
    c->reader = NULL;
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    event_del(c->flush_ev);
    c->io_up = 0;
    c->tls = 0;
    c->state = REDIS_CONN_CLOSED;
    c->handshake_left = 0;
    ring_abandon(c);
}

/* The session failed by itself (from one of our event callbacks): end it, then tell the owner. */
static void conn_lost(redis_conn *c, int cls, const char *reason)
{
    session_end(c);
    c->fail_class = cls;
    c->cb.on_fail(c->cb.arg, c, reason);
}

/* ---- writing ---------------------------------------------------------------------------------- */

static size_t pending_output(const redis_conn *c)
{
    size_t n = evbuffer_get_length(c->out);
    if (c->bev) n += evbuffer_get_length(bufferevent_get_output(c->bev));
    return n;
}

/* End of the loop turn (or the connect completed): write what the turn formatted. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    redis_conn *c = arg;
    if (!c->io_up || evbuffer_get_length(c->out) == 0) return;
    if (!c->tls && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        evutil_socket_t s = bufferevent_getfd(c->bev);
        while (evbuffer_get_length(c->out)) {
            int n = evbuffer_write(c->out, s);
            if (n > 0) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
            char reason[160];
            snprintf(reason, sizeof(reason), "connection lost: write: %s",
                     n < 0 ? strerror(errno) : "closed");
            conn_lost(c, REDIS_FAIL_IO, reason);
            return;
        }
        if (evbuffer_get_length(c->out) == 0) return;
    }
    /* the kernel is full, or TLS: libevent writes the rest when it can */
    uint64_t gen = c->opens;
    if (bufferevent_write_buffer(c->bev, c->out) != 0 && c->opens == gen && c->bev)
        conn_lost(c, REDIS_FAIL_IO, "connection lost: write");
}

/* Formats one command into out; a regular one (fn set, or the handshake's) enters the ring. */
static int command_send(redis_conn *c, int regular, redis_conn_reply_fn fn, void *arg, int argc,
                        const char **argv, const size_t *argvlen)
{
    if (c->state == REDIS_CONN_CLOSED) return -1;
    if ((regular && c->ring_len >= MAX_INFLIGHT) || pending_output(c) >= MAX_OUTPUT_BYTES) return -1;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) return -1;
    if (regular && ring_push(c, fn, arg) != 0) {
        redisFreeCommand(cmd);
        return -1;
    }
    int rc = evbuffer_add(c->out, cmd, (size_t)len);
    redisFreeCommand(cmd);
    if (rc != 0) {
        if (regular) c->ring_len--; /* undo the push */
        return -1;
    }
    c->commands++;
    if (c->io_up) event_active(c->flush_ev, EV_WRITE, 0);
    return 0;
}

int redis_conn_command(redis_conn *c, redis_conn_reply_fn fn, void *arg, int argc,
                       const char **argv, const size_t *argvlen)
{
    assert(fn);
    return command_send(c, 1, fn, arg, argc, argv, argvlen);
}

int redis_conn_subscribe(redis_conn *c, int argc, const char **argv, const size_t *argvlen)
{
    return command_send(c, 0, NULL, NULL, argc, argv, argvlen);
}

/* ---- reading ---------------------------------------------------------------------------------- */

/* A handshake reply (handshake_left counts them down while CONNECTING). */
static void handshake_step(redis_conn *c, int step, const redisReply *reply)
{
    if (step != HANDSHAKE_SETNAME && reply->type == REDIS_REPLY_ERROR) {
        char reason[200];
        snprintf(reason, sizeof(reason), "%s refused: %s",
                 step == HANDSHAKE_AUTH ? "AUTH" : "SELECT", reply->str);
        c->fail_class = REDIS_FAIL_REFUSED;
        c->cb.on_fail(c->cb.arg, c, reason);
        return;
    }
    /* a refused CLIENT SETNAME (ACL) only costs the name in CLIENT LIST */
    c->handshake_left--;
    if (c->state == REDIS_CONN_CONNECTING && c->handshake_left == 0) {
        c->state = REDIS_CONN_CONNECTED;
        c->cb.on_ready(c->cb.arg, c);
    }
}

static void dispatch(redis_conn *c, redisReply *reply)
{
    if (c->ring_len == 0) {
        if (c->cb.on_push) c->cb.on_push(c->cb.arg, c, reply);
        else conn_lost(c, REDIS_FAIL_PROTOCOL, "protocol error: a reply nobody asked for");
        return;
    }
    redis_conn_cmd f = ring_pop(c);
    if (!f.fn) {
        handshake_step(c, (int)(intptr_t)f.arg, reply);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR && c->cb.on_error_class) {
        int cls = redis_conn_error_class(reply);
        if (cls != REDIS_ERR_NONE) c->cb.on_error_class(c->cb.arg, c, cls, reply);
    }
    c->in_callback++;
    f.fn(f.arg, c, &f, reply);
    c->in_callback--;
}

/* Hands out every complete reply the reader holds. 0, or -1 when the session ended meanwhile
 * (closed by the owner from a callback, or failed here). */
static int drain_replies(redis_conn *c, uint64_t gen)
{
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(c->reader, &r) != REDIS_OK) {
            char reason[200];
            snprintf(reason, sizeof(reason), "protocol error: %s", c->reader->errstr);
            conn_lost(c, REDIS_FAIL_PROTOCOL, reason);
            return -1;
        }
        if (!r) return 0;
        dispatch(c, r);
        freeReplyObject(r);
        if (c->opens != gen || !c->reader) return -1;
    }
}

/* Feeds bytes of session `gen` to the reader, FEED_SLICE at a time, handing out the replies of
 * each slice before the next. redisReader moves its unread bytes to the front of its buffer every
 * 1 KiB it parses, so the bytes it moves grow with what it holds: small slices keep that near one
 * copy of the input however large the read was. 0, or -1 as drain_replies. */
static int feed(redis_conn *c, const char *buf, size_t n, uint64_t gen)
{
    while (n) {
        size_t k = n < FEED_SLICE ? n : FEED_SLICE;
        if (redisReaderFeed(c->reader, buf, k) != REDIS_OK) {
            conn_lost(c, REDIS_FAIL_PROTOCOL, "protocol error: reader");
            return -1;
        }
        buf += k;
        n -= k;
        if (drain_replies(c, gen) != 0) return -1;
    }
    return 0;
}

/* A plain socket is readable: read it in 64 KiB reads, within the per-turn caps. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    static char buf[READ_CHUNK]; /* one loop, one thread: nothing reads while feed runs */
    redis_conn *c = arg;
    uint64_t gen = c->opens, t0 = rc_now_mono_ns();
    for (int i = 0; i < MAX_READS_PER_TURN; i++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            if (feed(c, buf, (size_t)n, gen) != 0) return;
            if ((size_t)n < sizeof(buf) || rc_now_mono_ns() - t0 > MAX_READ_NS_PER_TURN) return;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        char reason[160];
        snprintf(reason, sizeof(reason), "connection lost: %s", n == 0 ? "closed by Redis" : strerror(errno));
        conn_lost(c, REDIS_FAIL_IO, reason);
        return;
    }
}

/* TLS: the OpenSSL bufferevent read (and decrypted) something. */
static void on_tls_read(struct bufferevent *bev, void *arg)
{
    redis_conn *c = arg;
    uint64_t gen = c->opens;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (evbuffer_get_length(in)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) return;
        size_t n = v.iov_len;
        if (feed(c, v.iov_base, n, gen) != 0) return; /* the session ended: bev may be gone */
        evbuffer_drain(in, n);
    }
}

/* ---- connect and the bufferevent's events ------------------------------------------------------ */

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    redis_conn *c = arg;
    int sock_err = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_CONNECTED) {
        c->io_up = 1;
        if (!c->tls) {
            c->rev = event_new(c->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST, on_readable, c);
            if (!c->rev || event_add(c->rev, NULL) != 0) {
                conn_lost(c, REDIS_FAIL_IO, "cannot watch the socket");
                return;
            }
        }
        on_flush(-1, 0, c); /* the handshake, and whatever was sent meanwhile */
        return;
    }
    if (!(what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) return;

    char reason[320], why[256];
    int cls = REDIS_FAIL_IO;
    unsigned long ssl_err = c->tls ? bufferevent_get_openssl_error(bev) : 0;
    if (ERR_GET_LIB(ssl_err) == 0) ssl_err = 0; /* libevent's record of SSL_ERROR_SYSCALL: I/O */
    SSL *ssl = c->tls ? bufferevent_openssl_get_ssl(bev) : NULL;
    if (c->tls && (ssl_err || (ssl && SSL_get_verify_result(ssl) != X509_V_OK))) {
        if (rc_redis_tls_describe_failure(ssl, ssl_err, why, sizeof(why))) cls = REDIS_FAIL_TLS_TRUST;
        snprintf(reason, sizeof(reason), "TLS %s: %s", c->io_up ? "error" : "handshake failed", why);
    } else if (c->tls && !c->io_up && sock_err && sock_err != EAGAIN) {
        snprintf(reason, sizeof(reason), "connect failed: %s", evutil_socket_error_to_string(sock_err));
    } else if (what & BEV_EVENT_EOF) {
        snprintf(reason, sizeof(reason), "connection lost: closed by Redis%s",
                 c->tls && !c->io_up ? " during the TLS handshake (is that a TLS port?)" : "");
    } else {
        snprintf(reason, sizeof(reason), "%s: %s", c->io_up ? "connection lost" : "connect failed",
                 sock_err ? evutil_socket_error_to_string(sock_err) : "error");
    }
    conn_lost(c, cls, reason);
}

/* Fills ss from t: a unix path or a numeric address. Its length, or 0 when t is unusable. */
static socklen_t target_addr(const redis_conn_target *t, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (t->path) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t n = strlen(t->path);
        if (n == 0 || n >= sizeof(un->sun_path)) return 0;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, t->path, n + 1);
        return (socklen_t)sizeof(*un);
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (t->ip && inet_pton(AF_INET, t->ip, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)t->port);
        return (socklen_t)sizeof(*in4);
    }
    if (t->ip && inet_pton(AF_INET6, t->ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)t->port);
        return (socklen_t)sizeof(*in6);
    }
    return 0;
}

void redis_conn_init(redis_conn *c, struct event_base *base, const char *name,
                     const redis_conn_callbacks *cb)
{
    c->base = base;
    c->name = name;
    c->cb = *cb;
    c->out = evbuffer_new();
    c->flush_ev = event_new(base, -1, 0, on_flush, c);
    c->lost_ev = event_new(base, -1, 0, on_lost_ev, c);
}

int redis_conn_open(redis_conn *c, const redis_conn_target *t, const rc_redis_url *auth,
                    const char *client_name)
{
    const char *argv[3];
    size_t lens[3];
    char db[16];
    int argc, rc = 0;
    struct sockaddr_storage ss;

    assert(c->state == REDIS_CONN_CLOSED && !c->bev);
    socklen_t sl = target_addr(t, &ss);
    if (!sl) return -1;
    c->opens++;
    ring_reset(c);
    c->tls = t->ssl_ctx != NULL;
    if (c->tls) {
        SSL *ssl = rc_redis_tls_ssl_new(t->ssl_ctx, t->ip ? t->ip : "localhost", t->tls_name);
        if (!ssl) return -1;
        c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) {
            SSL_free(ssl);
            c->tls = 0;
            return -1;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
        /* read what waits, as on a plain socket (libevent's default is 16 KiB a callback): a
         * subscriber that reads slowly makes Redis 7.0 drop it (see TLS_READ_PER_TURN) */
        bufferevent_set_max_single_read(c->bev, TLS_READ_PER_TURN);
        bufferevent_setcb(c->bev, on_tls_read, NULL, on_event, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    } else {
        c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev) return -1;
        bufferevent_setcb(c->bev, NULL, NULL, on_event, c); /* we read the socket ourselves */
    }
    c->reader = redisReaderCreate();
    c->state = REDIS_CONN_CONNECTING;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, sl) != 0) {
        session_end(c);
        return -1;
    }
    if (!t->path) {
        int one = 1;
        setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }

    /* The handshake goes first in the output; it is written once connected. */
    if (auth && auth->password) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (auth->user) argv[argc++] = auth->user;
        argv[argc++] = auth->password;
        for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        rc |= command_send(c, 1, NULL, (void *)(intptr_t)HANDSHAKE_AUTH, argc, argv, lens);
    }
    if (auth && auth->db) {
        snprintf(db, sizeof(db), "%d", auth->db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        rc |= command_send(c, 1, NULL, (void *)(intptr_t)HANDSHAKE_SELECT, 2, argv, lens);
    }
    argv[0] = "CLIENT";
    argv[1] = "SETNAME";
    argv[2] = client_name;
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    rc |= command_send(c, 1, NULL, (void *)(intptr_t)HANDSHAKE_SETNAME, 3, argv, lens);
    c->handshake_left = (int)c->ring_len;
    return rc ? -1 : 0;
}

void redis_conn_close(redis_conn *c)
{
    session_end(c);
}

void redis_conn_dispose(redis_conn *c)
{
    assert(!c->bev);
    assert(c->in_callback == 0 && "dispose of a connection outside its commands' callbacks");
    lost_run(c);
    if (c->lost_ev) event_free(c->lost_ev);
    c->lost_ev = NULL;
    if (c->flush_ev) event_free(c->flush_ev);
    c->flush_ev = NULL;
    if (c->out) evbuffer_free(c->out);
    c->out = NULL;
    rc_free(c->lost);
    c->lost = NULL;
    c->nlost = c->lost_cap = 0;
    rc_free(c->ring);
    c->ring = NULL;
    c->ring_cap = c->ring_head = c->ring_len = 0;
}
