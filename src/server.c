/*
 * server.c: TCP listener and connections on libevent bufferevents (see include/roomcast/server.h).
 *
 * What it does: accepts, counts and limits connections, hands each to the accept callback, calls
 * the installed handler on input and on close, and frees closed connections at a safe point.
 * What it does not do: parse anything, or decide when to close (the handler does).
 *
 * Ownership: the server owns every rc_conn (a doubly linked list of live ones and a list of
 * closed ones awaiting free). A bufferevent is freed at close time (which also closes the fd and
 * drops the output buffer's references to shared frames); the rc_conn struct is freed by
 * rc_server_collect, run from a deferred event after the callbacks of the current turn.
 *
 * A close has two sides: the owner's (`closed`: no more callbacks, queued frames released,
 * on_close) and the descriptor's (`bev` freed, off the live list, uncounted). rc_conn_close does
 * both at once; a lingering close (rc_conn_close_after_flush, once flushed) does the first, then
 * keeps the descriptor on the live list, reading and discarding, until the peer's FIN or a bound.
 *
 * Output accounting for the slow-consumer limit: `fresh` counts bytes appended to the
 * bufferevent's output that no write has been offered yet (libevent writes them from its write
 * event in a later loop turn; the frame queue's writev offers everything at once). What a flush
 * leaves unsent, minus those fresh bytes, is the backlog on_backlog hears of.
 *
 * Send paths: the end-of-turn flush writes each plain connection with writev, or, when
 * rc_server_set_send_path chose io_uring, submits the turn's sends in one io_uring_enter first
 * (server_uring.c) and finishes each connection here from that result exactly as from a writev.
 * The struct definitions and the frame queue's steps the two files share: server_internal.h.
 */
#include "roomcast/server.h"
#include "server_internal.h"
#include "roomcast/common.h"
#include "roomcast/frame.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void conn_on_write(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);
static void conn_linger(rc_conn *c);

/* ---- addresses ---------------------------------------------------------------------------- */

static void addr_from_sockaddr(const struct sockaddr *sa, rc_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = 4;
        memcpy(out->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            out->family = 4;
            memcpy(out->bytes, b + 12, 4);
        } else {
            out->family = 6;
            memcpy(out->bytes, b, 16);
        }
    }
}

int rc_addr_parse(const char *s, size_t n, rc_addr *out)
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof(buf)) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, buf, &v4.sin_addr) == 1) addr_from_sockaddr((struct sockaddr *)&v4, out);
    else if (inet_pton(AF_INET6, buf, &v6.sin6_addr) == 1) addr_from_sockaddr((struct sockaddr *)&v6, out);
    else return -1;
    return 0;
}

int rc_cidr_parse(const char *s, rc_cidr *out)
{
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (rc_addr_parse(s, n, &out->addr) != 0) return -1;
    unsigned max = out->addr.family == 4 ? 32 : 128, bits = max;
    if (slash) {
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3) return -1;
        bits = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9') return -1;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > max) return -1;
    }
    out->bits = (uint8_t)bits;
    for (unsigned i = bits; i < max; i++)
        if (out->addr.bytes[i / 8] & (0x80 >> (i % 8))) return -1;
    return 0;
}

int rc_cidr_match(const rc_cidr *range, const rc_addr *a)
{
    if (a->family != range->addr.family) return 0;
    unsigned whole = range->bits / 8, rest = range->bits % 8;
    if (memcmp(a->bytes, range->addr.bytes, whole) != 0) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->bytes[whole] & mask) == range->addr.bytes[whole];
}

void rc_addr_format(const rc_addr *a, char *buf, size_t n)
{
    if (a->family == 0 || !inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->bytes, buf, (socklen_t)n))
        snprintf(buf, n, "unknown");
}

/* ---- connections -------------------------------------------------------------------------- */

static void server_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                             int salen, void *arg)
{
    rc_server *s = arg;
    if (s->paused || (s->max_conns > 0 && s->count >= (uint64_t)s->max_conns)) {
        rc_server_counters.rejected++;
        close(fd);
        return;
    }
    struct bufferevent *bev;
    if (s->tls) {
        SSL *ssl = SSL_new(s->tls);
        bev = ssl ? bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                   BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
        if (!bev && ssl) SSL_free(ssl);
        if (bev) bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) {
        close(fd);
        return;
    }
    rc_conn *c = rc_calloc(1, sizeof(*c));
    c->bev = bev;
    c->fd = fd;
    c->server = s;
    c->id = ++s->next_id;
    if (sa) addr_from_sockaddr(sa, &c->peer);
    c->next = s->live;
    if (s->live) s->live->prev = c;
    s->live = c;
    s->count++;
    rc_server_counters.accepted++;
    bufferevent_setcb(bev, conn_on_read, conn_on_write, conn_on_event, c);
    if (s->tls) {
        /* OpenSSL owns the socket's bytes: the bufferevent writes as usual. */
        c->tls = 1;
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    } else {
        /* Output is written by server_on_flush at the end of the loop turn, not by the
         * bufferevent: its write event stays off unless the kernel buffer fills (no epoll_ctl
         * per message). */
        bufferevent_enable(bev, EV_READ);
    }
    /* Appends schedule the end-of-turn flush (plain) and the backlog check (both). */
    evbuffer_add_cb(bufferevent_get_output(bev), conn_on_output, c);
    s->on_accept(s->arg, c);
}

static void server_on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    rc_server *s = arg;
    if (!s->paused && s->listener) evconnlistener_enable(s->listener);
}

static void server_on_accept_error(struct evconnlistener *l, void *arg)
{
    rc_server *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors or buffers: stop accepting for a moment instead of spinning on a
     * listener that stays readable. */
    rc_log_warn("accept_error", "errno=%d error=%s backoff_ms=100", err, evutil_socket_error_to_string(err));
    if (s->listener) evconnlistener_disable(s->listener);
    struct timeval tv = {0, 100 * 1000};
    evtimer_add(s->resume_accept_ev, &tv);
}

static void server_on_collect(evutil_socket_t fd, short what, void *arg)
{
    rc_server_collect(arg);
}

static void frame_chain_cleanup(const void *data, size_t len, void *arg)
{
    rc_frame_unref(arg);
}

/* Moves the queued frames into the bufferevent's output, by reference (their refs go with them):
 * before any other write to the evbuffer (order), or when the kernel buffer is full (the
 * bufferevent then finishes the job). */
static void conn_fq_spill(rc_conn *c)
{
    if (!c->fq_len) return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    c->out_used = 1;
    for (uint16_t i = 0; i < c->fq_len; i++) {
        rc_frame *f = c->fq[i];
        size_t off = i == 0 ? c->fq_off : 0;
        if (evbuffer_add_reference(out, f->bytes + off, rc_frame_wire_len(f) - off, frame_chain_cleanup, f) != 0)
            rc_frame_unref(f);
    }
    c->fq_len = 0;
    c->fq_off = 0;
    c->fq_bytes = 0;
}

static void conn_fq_release(rc_conn *c)
{
    rc_server__delay_cancel(c);
    for (uint16_t i = 0; i < c->fq_len; i++) rc_frame_unref(c->fq[i]);
    c->fq_len = 0;
    c->fq_off = 0;
    c->fq_bytes = 0;
    if (c->fq && c->fq != c->fq_inline) rc_free(c->fq);
    c->fq = NULL;
    c->fq_cap = 0;
}

void rc_server__schedule_flush(rc_conn *c)
{
    if (c->pending || c->closed) return;
    c->pending = 1;
    c->next_pending = c->server->pending;
    c->server->pending = c;
    event_active(c->server->flush_ev, 0, 0);
}

int rc_server__fq_iov(const rc_conn *c, struct iovec *iov, int max, size_t *total)
{
    int n = 0;
    *total = 0;
    for (uint16_t i = 0; i < c->fq_len && n < max; i++, n++) {
        size_t off = i == 0 ? c->fq_off : 0;
        iov[n].iov_base = c->fq[i]->bytes + off;
        iov[n].iov_len = rc_frame_wire_len(c->fq[i]) - off;
        *total += iov[n].iov_len;
    }
    return n;
}

int rc_server__fq_advance(rc_conn *c, size_t w, size_t total)
{
    size_t left = w;
    uint16_t done = 0;
    while (done < c->fq_len) {
        size_t avail = rc_frame_wire_len(c->fq[done]) - (done == 0 ? c->fq_off : 0);
        if (left < avail) {
            if (done == 0) c->fq_off += (uint32_t)left;
            else c->fq_off = (uint32_t)left;
            c->fq_bytes -= left;
            break;
        }
        left -= avail;
        c->fq_bytes -= avail;
        rc_frame_unref(c->fq[done]);
        done++;
        if (done < c->fq_len) c->fq_off = 0;
    }
    if (done == c->fq_len) {
        c->fq_len = 0;
        c->fq_off = 0;
    } else if (done) {
        memmove(c->fq, c->fq + done, (size_t)(c->fq_len - done) * sizeof(*c->fq));
        c->fq_len -= done;
    }
    return w < total; /* short write: the kernel buffer is full */
}

/* Writes the frame queue with writev, after what this turn's io_uring send took (`sent`: its
 * uring_state). Returns 0 when it is empty, 1 when the kernel buffer is full (the rest was
 * spilled into the evbuffer), -1 on a socket error. */
static int conn_fq_write(rc_conn *c, int sent)
{
    int fd = c->fd, full = sent > 0;
    if (sent < 0) {
        errno = c->uring_errno;
        return -1;
    }
    while (c->fq_len && !full) {
        struct iovec iov[RC_FQ_IOV_MAX];
        size_t total;
        int n = rc_server__fq_iov(c, iov, RC_FQ_IOV_MAX, &total);
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return -1;
        }
        full = rc_server__fq_advance(c, (size_t)w, total);
    }
    if (c->fq_len) {
        conn_fq_spill(c);
        c->fresh = 0; /* the spilled rest was offered to the kernel just now */
        return 1;
    }
    if (c->fq != c->fq_inline && c->fq) { /* back to the inline slots for an idle socket */
        rc_free(c->fq);
        c->fq = NULL;
        c->fq_cap = 0;
    }
    return 0;
}

void rc_conn_send_frame(rc_conn *c, rc_frame *f)
{
    if (c->closed) return;
    if (c->tls || c->write_armed || c->flush_close || c->out_used) {
        /* something is already queued in the evbuffer (or TLS writes): keep the order */
        struct evbuffer *out = bufferevent_get_output(c->bev);
        c->out_used = 1;
        rc_frame_ref(f);
        if (evbuffer_add_reference(out, f->bytes, rc_frame_wire_len(f), frame_chain_cleanup, f) != 0)
            rc_frame_unref(f);
        return;
    }
    if (!c->fq) {
        c->fq = c->fq_inline;
        c->fq_cap = RC_ARRAY_LEN(c->fq_inline);
    }
    if (c->fq_len == c->fq_cap) {
        uint16_t cap = c->fq_cap * 2;
        rc_frame **q = rc_malloc(cap * sizeof(*q));
        memcpy(q, c->fq, c->fq_len * sizeof(*q));
        if (c->fq != c->fq_inline) rc_free(c->fq);
        c->fq = q;
        c->fq_cap = cap;
    }
    c->fq[c->fq_len++] = rc_frame_ref(f);
    c->fq_bytes += rc_frame_wire_len(f);
    /* write coalescing: wait, unless the turn flushes it anyway or the limit would be passed */
    if (f->delay_ms && !c->pending && !(c->out_limit && c->fq_bytes > c->out_limit))
        rc_server__delay_hold(c, f->delay_ms);
    else rc_server__schedule_flush(c);
}

size_t rc_conn_pending_bytes(rc_conn *c)
{
    if (c->closed) return 0;
    return (c->out_used ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0) + c->fq_bytes;
}

/* After a flush: what stays unsent, less what no write was offered yet, against the owner's
 * limit. */
static void conn_check_backlog(rc_conn *c)
{
    size_t fresh = c->fresh;
    c->fresh = 0;
    if (!c->out_limit || c->closed || c->flush_close || !c->handler || !c->handler->on_backlog) return;
    size_t unsent = rc_conn_pending_bytes(c);
    size_t backlog = unsent > fresh ? unsent - fresh : 0;
    if (backlog > c->out_limit) c->handler->on_backlog(c, c->data, backlog);
}

static void conn_drained(rc_conn *c)
{
    if (!c->want_drain || c->closed) return;
    c->want_drain = 0;
    if (c->handler && c->handler->on_drain) c->handler->on_drain(c, c->data);
}

void rc_conn_set_output_limit(rc_conn *c, size_t limit) { c->out_limit = limit; }

void rc_conn_notify_drain(rc_conn *c)
{
    if (c->closed) return;
    c->want_drain = 1;
    rc_server__schedule_flush(c);
}

/* The end-of-turn write of a plain connection: -1 when it closed (an error, or the end of a
 * close-after-flush), else 0. */
static int server_flush_conn(rc_conn *c)
{
    int sent = c->uring_state; /* this turn's io_uring send, if any (server_uring.c) */
    c->uring_state = 0;
    /* out_used clear: the evbuffer is empty, no need to touch it (a cache miss per delivery) */
    if ((c->fq_len || sent) && (!c->out_used || evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)) {
        int r = conn_fq_write(c, sent);
        if (r < 0) {
            rc_log_debug("conn_write_error", "errno=%d", errno);
            rc_conn_close(c);
            return -1;
        }
        if (r == 0) {
            if (c->flush_close) {
                conn_linger(c);
                return -1;
            }
            return 0;
        }
        /* r == 1: the rest is in the evbuffer; the code below writes what it can and arms */
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    conn_fq_spill(c);
    if (evbuffer_get_length(out) == 0) {
        c->out_used = 0;
        if (c->flush_close) {
            conn_linger(c);
            return -1;
        }
        return 0;
    }
    /* Bytes in the evbuffer (HTTP answers, control frames, a spilled rest): libevent keeps a
     * bufferevent's output frozen except inside its own write callback, so let that write
     * them; conn_on_write turns the write event off again once drained. */
    c->write_armed = 1;
    bufferevent_enable(c->bev, EV_WRITE);
    return 0;
}

/* Redis's handleClientsWithPendingWrites, on libevent: every connection that got output during
 * this turn is written once, with one writev of everything it has queued. Only when the kernel
 * buffer is full does the bufferevent's write event take over until the output drains. */
static void server_on_flush(evutil_socket_t fd, short what, void *arg)
{
    rc_server *s = arg;
    rc_conn *list = s->pending;
    s->pending = NULL;
    if (s->uring) rc_server__uring_send(s->uring, list);
    while (list) {
        rc_conn *c = list;
        list = c->next_pending;
        c->next_pending = NULL;
        c->pending = 0;
        rc_server__delay_cancel(c); /* written now, with what it held */
        if (c->closed) continue;
        if (!c->write_armed && !c->tls) {
            int r = server_flush_conn(c);
            if (r < 0) continue; /* closed */
        }
        /* The armed and TLS ones are written by their bufferevent between turns. */
        if (rc_conn_pending_bytes(c) == 0) conn_drained(c);
        else conn_check_backlog(c);
    }
    rc_server_collect(s);
}

static void conn_on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    rc_conn *c = arg;
    if (info->n_added == 0 || c->closed) return;
    c->fresh += info->n_added;
    if (c->pending) return;
    c->pending = 1;
    c->next_pending = c->server->pending;
    c->server->pending = c;
    event_active(c->server->flush_ev, 0, 0);
}

rc_server *rc_server_new(struct event_base *base, const char *bind, int port, int max_conns,
                         rc_server_accept_fn on_accept, void *arg, const char **err)
{
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    char spec[300];
    /* libevent's parser refuses port 0 (any free port): parse with 1 and patch it. */
    int parse_port = port > 0 ? port : 1;
    if (strchr(bind, ':')) snprintf(spec, sizeof(spec), "[%s]:%d", bind, parse_port);
    else snprintf(spec, sizeof(spec), "%s:%d", bind, parse_port);
    memset(&ss, 0, sizeof(ss));
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) != 0) {
        *err = "bad listen address";
        return NULL;
    }
    if (port == 0) {
        if (ss.ss_family == AF_INET6) ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        else ((struct sockaddr_in *)&ss)->sin_port = 0;
    }
    rc_server *s = rc_calloc(1, sizeof(*s));
    s->base = base;
    s->on_accept = on_accept;
    s->arg = arg;
    s->max_conns = max_conns;
    s->listener = evconnlistener_new_bind(base, server_on_accept, s,
                                          LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                          4096, (struct sockaddr *)&ss, sslen);
    if (!s->listener) {
        *err = strerror(errno);
        rc_free(s);
        return NULL;
    }
    evconnlistener_set_error_cb(s->listener, server_on_accept_error);
    /* Accepted sockets inherit TCP_NODELAY from the listener (Linux): one call here instead of
     * one per connection. Frames are written whole and at once; Nagle would only delay them. */
    int one = 1;
    setsockopt(evconnlistener_get_fd(s->listener), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->collect_ev = event_new(base, -1, 0, server_on_collect, s);
    s->flush_ev = event_new(base, -1, 0, server_on_flush, s);
    /* Same priority as I/O on purpose: an event activated during a turn runs after the events
     * already active in it, so the flush comes once the turn's callbacks are done; a lower
     * priority would starve while input keeps arriving (libevent runs lower priorities only when
     * no higher one is active). */
    s->resume_accept_ev = evtimer_new(base, server_on_resume_accept, s);
    /* Learn the actual port (port 0 asks the kernel for one). */
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &blen);
    s->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return s;
}

int rc_server_enable_tls(rc_server *s, const char *cert_file, const char *key_file, const char **err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) { *err = "cannot create a TLS context"; return -1; }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        *err = "cannot load the TLS certificate (tls.cert)";
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        *err = "cannot load the TLS key (tls.key)";
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        *err = "the TLS key does not match the certificate";
    } else {
        s->tls = ctx;
        return 0;
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return -1;
}

void rc_server_pause_accept(rc_server *s)
{
    /* Close the listening socket itself: a disabled listener would let the kernel keep
     * completing handshakes that nobody answers; closed, new clients are refused at once and
     * go to another node. */
    s->paused = 1;
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
}

uint64_t rc_server_conn_count(const rc_server *s) { return s->count; }

rc_server_stats rc_server_counters;

void rc_server_write_metrics(const rc_server *s, struct evbuffer *out)
{
    rc_metrics_put_scalar(out, "roomcast_connections", "gauge", "Open TCP connections.", s->count);
    rc_metrics_put_scalar(out, "roomcast_connections_accepted_total", "counter", "TCP connections accepted.",
                          rc_server_counters.accepted);
    rc_metrics_put_scalar(out, "roomcast_connections_rejected_total", "counter",
                          "TCP connections refused because of max_connections or draining.",
                          rc_server_counters.rejected);
    rc_metrics_put_scalar(out, "roomcast_slow_consumer_drops_total", "counter",
                          "Sockets closed because their unsent output stayed over the cap after a flush.",
                          rc_server_counters.slow_consumer_drops);
    rc_metrics_put_scalar(out, "roomcast_connections_lingering", "gauge",
                          "Connections in a lingering close (counted in roomcast_connections).", s->lingering);
    rc_metrics_put_scalar(out, "roomcast_lingering_cut_total", "counter",
                          "Lingering closes ended by their time or byte bound rather than the peer's close.",
                          rc_server_counters.linger_cut);
    rc_server__uring_write_metrics(s, out);
    rc_server__delay_write_metrics(s, out);
}
int rc_server_port(const rc_server *s) { return s->port; }

void rc_server_collect(rc_server *s)
{
    /* A closed connection still on the pending list is freed by a later collect (the flush
     * handler collects again after clearing the list). */
    rc_conn **pp = &s->dead;
    while (*pp) {
        rc_conn *c = *pp;
        if (c->pending) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        rc_free(c);
    }
}

void rc_server_free(rc_server *s)
{
    while (s->live) rc_conn_close(s->live);
    for (rc_conn *c = s->pending; c; c = c->next_pending) c->pending = 0;
    s->pending = NULL;
    rc_server_collect(s);
    if (s->listener) evconnlistener_free(s->listener);
    event_free(s->collect_ev);
    event_free(s->flush_ev);
    if (s->tls) SSL_CTX_free(s->tls);
    event_free(s->resume_accept_ev);
    rc_server__uring_free(s->uring);
    rc_server__delay_free(s->delay);
    rc_free(s);
}

void rc_conn_set_handler(rc_conn *c, const rc_conn_handler *h, void *data)
{
    c->handler = h;
    c->data = data;
}

struct evbuffer *rc_conn_input(rc_conn *c) { return bufferevent_get_input(c->bev); }
struct event_base *rc_conn_base(rc_conn *c) { return c->server->base; }
struct evbuffer *rc_conn_output(rc_conn *c)
{
    conn_fq_spill(c); /* whatever is written next goes after the queued frames */
    c->out_used = 1;  /* the caller adds to it */
    return bufferevent_get_output(c->bev);
}

void rc_conn_write(rc_conn *c, const void *data, size_t len)
{
    if (c->closed || len == 0) return;
    if (c->tls || c->write_armed || c->flush_close || c->out_used || len > UINT32_MAX) {
        conn_fq_spill(c);
        c->out_used = 1;
        bufferevent_write(c->bev, data, len);
        return;
    }
    /* Through the frame queue like any frame: written with the turn's other frames by one writev,
     * without turning the bufferevent's write event on and off (two epoll_ctl per answer). */
    rc_frame *f = rc_frame_raw(data, len);
    rc_conn_send_frame(c, f);
    rc_frame_unref(f);
}

/* Both timeouts at once. "No timeout" is a day, never a cleared timeout: libevent 2.1 keeps a
 * persistent event's old timeout when it is re-added without one (ev_io_timeout), so a cleared
 * HTTP header timeout came back at the WebSocket's first read and dropped idle sockets.
 * Engine.IO's heartbeat bounds silent peers far sooner. */
static void conn_apply_timeouts(rc_conn *c)
{
    int r = c->read_ms > 0 ? c->read_ms : 24 * 3600 * 1000;
    int w = c->write_ms > 0 ? c->write_ms : 24 * 3600 * 1000;
    struct timeval rtv = {r / 1000, (r % 1000) * 1000}, wtv = {w / 1000, (w % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &rtv, &wtv);
}

void rc_conn_set_read_timeout(rc_conn *c, int ms)
{
    if (c->closed) return;
    c->read_ms = ms;
    conn_apply_timeouts(c);
}

void rc_conn_set_write_timeout(rc_conn *c, int ms)
{
    if (c->closed) return;
    c->write_ms = ms;
    conn_apply_timeouts(c);
}

void rc_conn_pause_read(rc_conn *c)
{
    if (!c->closed) bufferevent_disable(c->bev, EV_READ);
}

void rc_conn_resume_read(rc_conn *c)
{
    if (!c->closed) bufferevent_enable(c->bev, EV_READ);
}

int rc_conn_is_closed(const rc_conn *c) { return c->closed; }
const rc_addr *rc_conn_peer(const rc_conn *c) { return &c->peer; }
uint64_t rc_conn_id(const rc_conn *c) { return c->id; }

void rc_conn_trigger_read(rc_conn *c)
{
    if (!c->closed)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* The descriptor's side of a close: the bufferevent (and the fd) go, the struct waits on the
 * dead list for rc_server_collect. */
static void conn_release(rc_conn *c)
{
    rc_server *s = c->server;
    if (c->prev) c->prev->next = c->next;
    else s->live = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->dead;
    s->dead = c;
    s->count--;
    if (c->lingering) s->lingering--;
    bufferevent_free(c->bev);
    c->bev = NULL;
    event_active(s->collect_ev, 0, 0);
}

/* The owner's side of a close, once `closed` is set: on_close, exactly once. */
static void conn_notify_close(rc_conn *c)
{
    const rc_conn_handler *h = c->handler;
    c->handler = NULL;
    if (h && h->on_close) h->on_close(c, c->data);
}

void rc_conn_close(rc_conn *c)
{
    if (!c->bev) return;          /* released already */
    int owner_knows = c->closed;  /* lingering: the owner heard on_close when it began */
    c->closed = 1;
    conn_fq_release(c);
    conn_release(c);
    if (!owner_knows) conn_notify_close(c);
}

/* Throws input away while closing; ends the connection past the byte bound. 1 if it did. */
static int conn_discard(rc_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    evbuffer_drain(in, n);
    c->discarded += n;
    if (c->discarded <= RC_CONN_LINGER_BYTES) return 0;
    rc_server_counters.linger_cut++;
    rc_conn_close(c);
    return 1;
}

static void linger_on_read(struct bufferevent *bev, void *arg)
{
    rc_conn *c = arg;
    if (conn_discard(c)) return;
    uint64_t now = rc_now_mono_ms();
    if (now >= c->linger_end_ms) {
        rc_server_counters.linger_cut++;
        rc_conn_close(c);
        return;
    }
    /* The read timeout is the time left, so the whole lingering stays within its bound however
     * the bytes trickle in. */
    c->read_ms = (int)(c->linger_end_ms - now);
    conn_apply_timeouts(c);
}

static void linger_on_event(struct bufferevent *bev, short what, void *arg)
{
    rc_conn *c = arg;
    if (what & BEV_EVENT_TIMEOUT) rc_server_counters.linger_cut++;
    rc_conn_close(c); /* the peer's FIN (the normal end), an error, or the time bound */
}

/* The output is flushed: shut the write side (the peer reads everything, then our FIN) and read
 * until the peer closes too, instead of closing with its bytes unread (which resets the
 * connection and can destroy what we sent before the peer reads it). */
static void conn_linger(rc_conn *c)
{
    if (c->closed) return;
    int fd = bufferevent_getfd(c->bev);
    if (c->peer_eof || fd < 0 || shutdown(fd, SHUT_WR) != 0) {
        rc_conn_close(c); /* nothing more will come, or the socket is gone already */
        return;
    }
    c->lingering = 1;
    c->server->lingering++;
    c->flush_close = 0;
    c->write_ms = 0;
    c->read_ms = RC_CONN_LINGER_MS;
    c->linger_end_ms = rc_now_mono_ms() + RC_CONN_LINGER_MS;
    bufferevent_setcb(c->bev, linger_on_read, NULL, linger_on_event, c);
    bufferevent_disable(c->bev, EV_WRITE);
    conn_apply_timeouts(c);
    bufferevent_enable(c->bev, EV_READ);
    c->closed = 1;
    conn_fq_release(c);
    conn_notify_close(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) linger_on_read(c->bev, c);
}

void rc_conn_close_after_flush(rc_conn *c)
{
    if (c->closed || c->flush_close) return;
    conn_fq_spill(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_linger(c);
        return;
    }
    c->flush_close = 1;
    /* Input is read and thrown away from now on (conn_on_read): a peer blocked sending the rest
     * of a refused frame or body then reads our answer. A peer that does not let the flush
     * progress must not keep us waiting: bound the writes (a silent peer that reads is fine). */
    c->read_ms = 0;
    c->write_ms = 5000;
    conn_apply_timeouts(c);
    bufferevent_enable(c->bev, EV_READ);
    if (!c->pending && !c->write_armed && !c->tls) {
        c->pending = 1;
        c->next_pending = c->server->pending;
        c->server->pending = c;
        event_active(c->server->flush_ev, 0, 0);
    }
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
    rc_conn *c = arg;
    if (c->flush_close) {
        conn_discard(c);
        return;
    }
    if (!c->closed && c->handler && c->handler->on_read) c->handler->on_read(c, c->data);
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
    rc_conn *c = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
    c->out_used = 0;
    if (c->write_armed && !c->tls) {
        /* Drained: back to writing from the end-of-turn flush. */
        c->write_armed = 0;
        bufferevent_disable(bev, EV_WRITE);
    }
    if (c->flush_close) {
        conn_linger(c);
        return;
    }
    conn_drained(c);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
    rc_conn *c = arg;
    if (c->flush_close && (what & BEV_EVENT_EOF) && (what & BEV_EVENT_READING) && !(what & BEV_EVENT_ERROR)) {
        /* The peer shut its side while we flush our last bytes: it may still read them. */
        c->peer_eof = 1;
        return;
    }
    if (what & BEV_EVENT_TIMEOUT) rc_log_debug("conn_timeout", "what=%d", (int)what);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) rc_conn_close(c);
}
