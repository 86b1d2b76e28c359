/*
 * loadgen: the Socket.IO load generator of the roomcast benchmark (test/bench/, issue 8).
 *
 * What it does. Opens N Socket.IO connections over WebSocket (no polling), each authenticated
 * with its own HS256 JWT (sub "u<index>", rooms claim from --token-rooms), and joins each to room
 * "<prefix><index % R>" plus the rooms of --join-also, using the 'join' event with an ack, as
 * roomcast's default rules and the Node reference server define it. It then listens: every
 * Socket.IO EVENT frame (42...) is one delivery; a number after "t": in it is the publisher's
 * CLOCK_MONOTONIC timestamp in ns, from which the delivery latency is taken.
 *
 * What it does not do: polling, binary events, permessage-deflate, TLS, reconnection. A
 * connection that fails or drops is counted under a reason and stays dead.
 *
 * Processes. The parent forks --procs children; child k owns the contiguous slice k of the
 * connection indexes (each process may hold at most ~20,000 descriptors). A child is one
 * libevent loop over raw non-blocking sockets: reads go into one shared scratch buffer and
 * frames are parsed in place; a connection keeps heap bytes only for a partial frame or an
 * unsent write. Connection i binds to source address --src-ips[i % count] with
 * IP_BIND_ADDRESS_NO_PORT, so the ephemeral port is picked per 4-tuple at connect time and each
 * source address gives its own ~28,000 ports.
 *
 * Parent <-> child: a pipe each way, fixed binary records (same machine, same binary). Children
 * send PROGRESS every 100 ms, CONNECT once every connection is ready or failed, and PHASE when
 * the parent asks (the child resets its phase counters right after). The parent prints one JSON
 * object per line on stdout: {"phase":"connect",...} first, then one per measured phase.
 *
 * Control. Without --control the run is: connect, report, listen --duration seconds (if > 0),
 * report "listen", exit. With --control the parent then reads commands from stdin:
 *   measure NAME EXPECT QUIET_MS TIMEOUT_MS
 *        ends when at least EXPECT deliveries arrived and none for 100 ms, or (QUIET_MS > 0)
 *        deliveries arrived and none for QUIET_MS, or after TIMEOUT_MS; prints {"phase":NAME}.
 *   quit (or end of input)
 *        closes every connection (FIN; RST with --rst) and exits.
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_PORTS 16
#define MAX_SRC 64
#define MAX_ALSO 8
#define MAX_PROCS 64
#define MAX_FRAME (1u << 20)
#define READ_CHUNK (256u * 1024)

/* ---- options ------------------------------------------------------------------------------ */

typedef struct opts {
    const char *host;
    int ports[MAX_PORTS];
    int nports;
    uint32_t conns;
    uint32_t offset;
    uint32_t rooms;
    const char *room_prefix;
    const char *also[MAX_ALSO];
    int nalso;
    const char *ns;
    const char *path;
    const char *secret;
    const char *token_rooms;
    int procs;
    struct in_addr src[MAX_SRC];
    int nsrc;
    double rate;         /* connections per second over all processes, 0 = unlimited */
    int concurrency;     /* handshakes in flight per process */
    int hs_timeout_ms;
    double duration;
    int control;
    int rst;             /* quit with RST instead of FIN */
    int spin;            /* busy-poll instead of sleeping (one core per process) */
    const char *ready_file;
} opts;

static opts O = {
    .host = "127.0.0.1", .nports = 0, .conns = 100, .rooms = 0, .room_prefix = "r", .ns = "/",
    .path = "/socket.io/", .secret = "bench-secret", .token_rooms = "*", .procs = 1,
    .concurrency = 256, .hs_timeout_ms = 30000,
};

/* ---- error reasons: one static table, indexed everywhere ----------------------------------- */

enum {
    E_SOCKET, E_CONNECT, E_HTTP, E_SIO_REFUSED, E_JOIN_REFUSED, E_TIMEOUT, E_PROTOCOL, E_EOF,
    E_RESET, E_WS_CLOSE, E_EIO_CLOSE, E_SIO_DISCONNECT, E_COUNT
};
/* The last five say how a connection was closed, during the handshake or once ready (the JSON
 * puts the former under the connect phase's errors and the latter under the measured phase's). */
static const char *const err_names[E_COUNT] = {
    "socket", "connect", "http_status", "sio_refused", "join_refused", "handshake_timeout",
    "protocol", "eof", "read_error", "ws_close", "eio_close", "sio_disconnect",
};

/* ---- records between child and parent ------------------------------------------------------ */

enum { REC_PROGRESS = 1, REC_CONNECT, REC_PHASE };
enum { CMD_PHASE = 1, CMD_QUIT };

typedef struct rec_progress {
    uint64_t deliveries;     /* this phase */
    uint64_t last_recv_ns;
    uint32_t ready, done;
} rec_progress;

typedef struct rec_connect {
    uint32_t assigned, connected, joined, failed;
    uint32_t err[E_COUNT];
    uint64_t t_first_start, t_last_connected, t_last_joined;
    double cpu_s;
    bu_hist hs;              /* connect() -> Socket.IO CONNECT reply, ns */
} rec_connect;

typedef struct rec_phase {
    uint64_t deliveries, min_t, last_recv_ns, no_ts;
    uint32_t ready, conn_min, conn_max;
    uint32_t err[E_COUNT];   /* new failures during the phase */
    double cpu_s;
    bu_hist lat;             /* publisher timestamp -> receipt, ns */
} rec_phase;

typedef struct rec_hdr {
    uint32_t type, len;
} rec_hdr;

static int write_full(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_full(int fd, void *p, size_t n)
{
    char *s = p;
    while (n > 0) {
        ssize_t r = read(fd, s, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        s += r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_rec(int fd, uint32_t type, const void *p, uint32_t len)
{
    rec_hdr h = {type, len};
    if (write_full(fd, &h, sizeof h) < 0)
        return -1;
    return write_full(fd, p, len);
}

/* =========================================================================================== */
/* Child: one event loop, a slice of the connections                                           */
/* =========================================================================================== */

enum { ST_IDLE, ST_TCP, ST_HTTP, ST_EIO_OPEN, ST_SIO_CONNECT, ST_JOINING, ST_READY, ST_DEAD };

typedef struct conn {
    struct event ev;
    int fd;
    uint32_t idx;            /* global index: user "u<idx>", room "<prefix><idx % R>" */
    uint8_t state;
    uint8_t joins_pending;
    uint8_t writing;         /* EV_WRITE is armed for c->out */
    uint32_t deliveries;     /* this phase */
    uint64_t t0;             /* when connect() was called */
    char *in;                /* bytes of an incomplete frame (or HTTP head) */
    uint32_t in_len;
    char *out;               /* bytes the socket did not take yet */
    uint32_t out_len;
    char *frag;              /* a fragmented message being assembled */
    uint32_t frag_len;
} conn;

static struct {
    struct event_base *base;
    conn *conns;
    uint32_t n, first;
    uint32_t next;           /* next to launch */
    uint32_t inflight;
    uint32_t ready, failed, connected, joined, done;
    int cmd_fd, rec_fd;
    struct event *launch_ev, *tick_ev, *progress_ev, *cmd_ev;
    uint64_t launch_t0;
    double rate;
    char *scratch;
    size_t scratch_cap;
    uint32_t rng;
    int connect_reported, close_logged;
    rec_connect cs;
    /* phase counters */
    uint64_t deliveries, min_t, last_recv, no_ts;
    uint32_t perr[E_COUNT];
    double cpu_mark;
    bu_hist lat;
    char hostport[64];
} C;

static uint32_t rng_next(void)
{
    uint32_t x = C.rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return C.rng = x;
}

static void conn_on_io(evutil_socket_t fd, short what, void *arg);
static void launch_more(void);

static void conn_arm(conn *c, short what)
{
    event_del(&c->ev);
    event_assign(&c->ev, C.base, c->fd, what, conn_on_io, c);
    event_add(&c->ev, NULL);
}

static void maybe_connect_done(void)
{
    if (C.connect_reported || C.done < C.n)
        return;
    C.connect_reported = 1;
    C.cs.assigned = C.n;
    C.cs.connected = C.connected;
    C.cs.joined = C.joined;
    C.cs.failed = C.failed;
    C.cs.cpu_s = bu_cpu_self();
    C.cpu_mark = C.cs.cpu_s;
    send_rec(C.rec_fd, REC_CONNECT, &C.cs, sizeof C.cs);
    memset(C.perr, 0, sizeof C.perr);
}

/* Closes the socket and marks the connection dead. The struct stays in the array, so callers
 * that still hold c only need to check c->state afterwards. */
static void conn_fail(conn *c, int reason)
{
    if (c->state == ST_DEAD)
        return;
    int was_ready = c->state == ST_READY;
    if (c->fd >= 0) {
        event_del(&c->ev);
        close(c->fd);
        c->fd = -1;
    }
    free(c->in);
    free(c->out);
    free(c->frag);
    c->in = c->out = c->frag = NULL;
    c->in_len = c->out_len = c->frag_len = 0;
    c->state = ST_DEAD;
    if (was_ready) {
        C.ready--;
        C.perr[reason]++;
        return;
    }
    C.cs.err[reason]++;
    C.failed++;
    C.done++;
    C.inflight--;
    maybe_connect_done();
    launch_more();
}

static void conn_write(conn *c, const char *p, size_t n)
{
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w == (ssize_t)n)
            return;
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_fail(c, E_RESET);
                return;
            }
            w = 0;
        }
        p += w;
        n -= (size_t)w;
    }
    c->out = realloc(c->out, c->out_len + n);
    if (!c->out)
        abort();
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    if (!c->writing) {
        c->writing = 1;
        conn_arm(c, EV_READ | EV_WRITE | EV_PERSIST);
    }
}

static void conn_flush(conn *c)
{
    while (c->out_len > 0) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_fail(c, E_RESET);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (uint32_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->writing = 0;
    conn_arm(c, EV_READ | EV_PERSIST);
}

/* One masked text frame (RFC 6455 5.3: every client frame is masked). */
static void ws_send_text(conn *c, const char *s, size_t n)
{
    char buf[4096];
    size_t h = 0;
    if (n + 14 > sizeof buf)
        abort();
    buf[h++] = (char)0x81;
    if (n < 126) {
        buf[h++] = (char)(0x80 | n);
    } else {
        buf[h++] = (char)(0x80 | 126);
        buf[h++] = (char)(n >> 8);
        buf[h++] = (char)n;
    }
    uint32_t m = rng_next();
    uint8_t mask[4] = {(uint8_t)m, (uint8_t)(m >> 8), (uint8_t)(m >> 16), (uint8_t)(m >> 24)};
    memcpy(buf + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (char)(s[i] ^ mask[i & 3]);
    conn_write(c, buf, h + n);
}

static void ws_send_control(conn *c, int opcode, const char *s, size_t n)
{
    char buf[2 + 4 + 125];
    if (n > 125)
        n = 125;
    buf[0] = (char)(0x80 | opcode);
    buf[1] = (char)(0x80 | n);
    uint32_t m = rng_next();
    memcpy(buf + 2, &m, 4);
    for (size_t i = 0; i < n; i++)
        buf[6 + i] = (char)(s[i] ^ buf[2 + (i & 3)]);
    conn_write(c, buf, 6 + n);
}

/* "<type>[/ns,]" prefix of a Socket.IO packet for our namespace. */
static int sio_prefix(char *buf, size_t cap, char type)
{
    if (strcmp(O.ns, "/") == 0)
        return snprintf(buf, cap, "4%c", type);
    return snprintf(buf, cap, "4%c%s,", type, O.ns);
}

static void send_sio_connect(conn *c)
{
    char claims[512], token[1024], pkt[1400];
    long now = (long)time(NULL);
    snprintf(claims, sizeof claims,
             "{\"sub\":\"u%u\",\"rooms\":[\"%s\"],\"iat\":%ld,\"exp\":%ld}", c->idx,
             O.token_rooms, now, now + 86400);
    if (bu_jwt_hs256(token, sizeof token, O.secret, claims) < 0)
        abort();
    int n = sio_prefix(pkt, sizeof pkt, '0');
    n += snprintf(pkt + n, sizeof pkt - (size_t)n, "{\"token\":\"%s\"}", token);
    ws_send_text(c, pkt, (size_t)n);
}

static void send_join(conn *c, unsigned ack_id, const char *room, uint32_t num, int with_num)
{
    char pkt[512];
    int n = sio_prefix(pkt, sizeof pkt, '2');
    if (with_num)
        n += snprintf(pkt + n, sizeof pkt - (size_t)n, "%u[\"join\",{\"room\":\"%s%u\"}]", ack_id,
                      room, num);
    else
        n += snprintf(pkt + n, sizeof pkt - (size_t)n, "%u[\"join\",{\"room\":\"%s\"}]", ack_id,
                      room);
    ws_send_text(c, pkt, (size_t)n);
}

static void conn_ready(conn *c)
{
    uint64_t now = bu_now_ns();
    c->state = ST_READY;
    C.ready++;
    C.joined++;
    C.done++;
    C.inflight--;
    if (now > C.cs.t_last_joined)
        C.cs.t_last_joined = now;
    maybe_connect_done();
    launch_more();
}

static void on_sio_connected(conn *c)
{
    uint64_t now = bu_now_ns();
    C.connected++;
    bu_hist_add(&C.cs.hs, now - c->t0);
    if (now > C.cs.t_last_connected)
        C.cs.t_last_connected = now;
    unsigned id = 0;
    if (O.rooms > 0)
        send_join(c, id++, O.room_prefix, c->idx % O.rooms, 1);
    for (int i = 0; i < O.nalso; i++)
        send_join(c, id++, O.also[i], 0, 0);
    if (c->state == ST_DEAD)
        return;
    c->joins_pending = (uint8_t)id;
    c->state = ST_JOINING;
    if (id == 0)
        conn_ready(c);
}

static void on_delivery(conn *c, const char *s, size_t n)
{
    uint64_t now = bu_now_ns();
    c->deliveries++;
    C.deliveries++;
    C.last_recv = now;
    const char *t = memmem(s, n, "\"t\":", 4);
    if (!t) {
        C.no_ts++;
        return;
    }
    t += 4;
    uint64_t v = 0;
    const char *end = s + n;
    while (t < end && *t >= '0' && *t <= '9')
        v = v * 10 + (uint64_t)(*t++ - '0');
    if (t < end && (*t == '.' || *t == 'e' || *t == 'E')) { /* a float: rare, re-read */
        char tmp[40];
        const char *b = (const char *)memmem(s, n, "\"t\":", 4) + 4;
        size_t l = (size_t)(end - b) < sizeof tmp - 1 ? (size_t)(end - b) : sizeof tmp - 1;
        memcpy(tmp, b, l);
        tmp[l] = '\0';
        v = (uint64_t)strtod(tmp, NULL);
    }
    if (v == 0 || v > now) {
        C.no_ts++;
        return;
    }
    if (C.min_t == 0 || v < C.min_t)
        C.min_t = v;
    bu_hist_add(&C.lat, now - v);
}

/* A Socket.IO packet (the payload of an Engine.IO message). */
static void on_sio(conn *c, const char *s, size_t n)
{
    if (n == 0)
        return;
    char type = s[0];
    size_t i = 1;
    if (i < n && s[i] == '/') { /* namespace */
        while (i < n && s[i] != ',')
            i++;
        if (i < n)
            i++;
    }
    switch (type) {
    case '0':
        if (c->state == ST_SIO_CONNECT)
            on_sio_connected(c);
        break;
    case '4':
        conn_fail(c, E_SIO_REFUSED);
        break;
    case '3':
        if (c->state != ST_JOINING)
            break;
        if (!memmem(s + i, n - i, "\"ok\":true", 9)) {
            conn_fail(c, E_JOIN_REFUSED);
            break;
        }
        if (--c->joins_pending == 0)
            conn_ready(c);
        break;
    case '2':
        on_delivery(c, s + i, n - i);
        break;
    case '1':
        conn_fail(c, E_SIO_DISCONNECT);
        break;
    default:
        break;
    }
}

/* An Engine.IO packet (one WebSocket text message). */
static void on_eio(conn *c, const char *s, size_t n)
{
    if (n == 0)
        return;
    switch (s[0]) {
    case '0':
        if (c->state == ST_EIO_OPEN) {
            c->state = ST_SIO_CONNECT;
            send_sio_connect(c);
        }
        break;
    case '2':
        ws_send_text(c, "3", 1);
        break;
    case '4':
        on_sio(c, s + 1, n - 1);
        break;
    case '1':
        conn_fail(c, E_EIO_CLOSE);
        break;
    default:
        break;
    }
}

/* Parses as many frames as p holds. Returns the bytes consumed, or -1 if c failed. */
static ssize_t ws_parse(conn *c, char *p, size_t len)
{
    size_t off = 0;
    while (c->state != ST_DEAD) {
        size_t avail = len - off;
        uint8_t *f = (uint8_t *)p + off;
        if (avail < 2)
            break;
        int fin = f[0] & 0x80, op = f[0] & 0x0f, masked = f[1] & 0x80;
        uint64_t plen = f[1] & 0x7f;
        size_t h = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = plen << 8 | f[2 + i];
            h = 10;
        }
        if (masked)
            h += 4;
        if (plen > MAX_FRAME) {
            conn_fail(c, E_PROTOCOL);
            return -1;
        }
        if (avail < h + plen)
            break;
        char *pl = (char *)f + h;
        if (masked)
            for (size_t i = 0; i < plen; i++)
                pl[i] ^= (char)f[h - 4 + (i & 3)];
        off += h + (size_t)plen;
        switch (op) {
        case 0x1:
        case 0x2:
        case 0x0:
            if (op != 0 && fin && !c->frag) {
                if (op == 0x1)
                    on_eio(c, pl, (size_t)plen);
                break;
            }
            c->frag = realloc(c->frag, c->frag_len + plen + 1);
            if (!c->frag)
                abort();
            memcpy(c->frag + c->frag_len, pl, (size_t)plen);
            c->frag_len += (uint32_t)plen;
            if (fin) {
                char *m = c->frag;
                uint32_t ml = c->frag_len;
                c->frag = NULL;
                c->frag_len = 0;
                if (ml > 0 && m[0] >= '0' && m[0] <= '9')
                    on_eio(c, m, ml);
                free(m);
            }
            break;
        case 0x8:
            if (!C.close_logged) { /* the first close frame of this process, for diagnosis */
                C.close_logged = 1;
                fprintf(stderr, "loadgen: conn u%u got close %d %.*s (state %d)\n", c->idx,
                        plen >= 2 ? (uint8_t)pl[0] << 8 | (uint8_t)pl[1] : 0,
                        plen > 2 ? (int)plen - 2 : 0, pl + 2, c->state);
            }
            conn_fail(c, E_WS_CLOSE);
            return -1;
        case 0x9:
            ws_send_control(c, 0xA, pl, (size_t)plen);
            break;
        default:
            break;
        }
    }
    return c->state == ST_DEAD ? -1 : (ssize_t)off;
}

static void conn_read(conn *c)
{
    size_t have = c->in_len;
    if (C.scratch_cap < have + READ_CHUNK) {
        C.scratch_cap = have + READ_CHUNK;
        C.scratch = realloc(C.scratch, C.scratch_cap);
        if (!C.scratch)
            abort();
    }
    if (have) {
        memcpy(C.scratch, c->in, have);
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
    }
    ssize_t r = read(c->fd, C.scratch + have, READ_CHUNK);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_fail(c, r == 0 ? E_EOF : E_RESET);
        return;
    }
    size_t len = have + (r > 0 ? (size_t)r : 0);
    char *p = C.scratch;
    if (c->state == ST_HTTP) {
        char *eoh = memmem(p, len, "\r\n\r\n", 4);
        if (!eoh) {
            if (len > 16384)
                conn_fail(c, E_HTTP);
            else
                goto keep;
            return;
        }
        if (len < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            conn_fail(c, E_HTTP);
            return;
        }
        c->state = ST_EIO_OPEN;
        size_t hl = (size_t)(eoh + 4 - p);
        p += hl;
        len -= hl;
    }
    ssize_t used = ws_parse(c, p, len);
    if (used < 0)
        return;
    p += used;
    len -= (size_t)used;
keep:
    if (len > 0) {
        c->in = malloc(len);
        if (!c->in)
            abort();
        memcpy(c->in, p, len);
        c->in_len = (uint32_t)len;
    }
}

static void conn_tcp_connected(conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        conn_fail(c, E_CONNECT);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s?EIO=4&transport=websocket HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: cm9vbWNhc3QtYmVuY2gtMQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     O.path, C.hostport);
    c->state = ST_HTTP;
    conn_arm(c, EV_READ | EV_PERSIST);
    conn_write(c, req, (size_t)n);
}

static void conn_on_io(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (c->state == ST_TCP) {
        conn_tcp_connected(c);
        return;
    }
    if ((what & EV_WRITE) && c->out_len > 0)
        conn_flush(c);
    if ((what & EV_READ) && c->state != ST_DEAD)
        conn_read(c);
}

static void conn_start(conn *c)
{
    int one = 1;
    c->t0 = bu_now_ns();
    if (C.cs.t_first_start == 0)
        C.cs.t_first_start = c->t0;
    C.inflight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = ST_TCP;
        conn_fail(c, E_SOCKET);
        return;
    }
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr = O.src[c->idx % (uint32_t)O.nsrc];
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_TCP;
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0) {
        conn_fail(c, E_SOCKET);
        return;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET};
    dst.sin_port = htons((uint16_t)O.ports[c->idx % (uint32_t)O.nports]);
    inet_pton(AF_INET, O.host, &dst.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        conn_fail(c, E_CONNECT);
        return;
    }
    event_assign(&c->ev, C.base, c->fd, EV_WRITE, conn_on_io, c);
    event_add(&c->ev, NULL);
}

/* Starts connections while the rate and the in-flight cap allow. Not re-entrant: a connection
 * that fails inside conn_start calls back here, and the outer loop simply goes on. */
static void launch_more(void)
{
    static int running;
    if (C.next >= C.n || running)
        return;
    running = 1;
    uint64_t allowed = UINT64_MAX;
    if (C.rate > 0)
        allowed = (uint64_t)(C.rate * (double)(bu_now_ns() - C.launch_t0) / 1e9) + 1;
    while (C.next < C.n && C.inflight < (uint32_t)O.concurrency && C.next < allowed)
        conn_start(&C.conns[C.next++]);
    if (C.next >= C.n && C.launch_ev)
        event_del(C.launch_ev);
    running = 0;
}

static void on_launch_tick(evutil_socket_t fd, short what, void *arg)
{
    launch_more();
}

static void on_second_tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = bu_now_ns(), limit = (uint64_t)O.hs_timeout_ms * 1000000u;
    if (C.done >= C.n)
        return;
    for (uint32_t i = 0; i < C.next; i++) {
        conn *c = &C.conns[i];
        if (c->state != ST_READY && c->state != ST_DEAD && now - c->t0 > limit)
            conn_fail(c, E_TIMEOUT);
    }
}

static void on_progress_tick(evutil_socket_t fd, short what, void *arg)
{
    rec_progress p = {C.deliveries, C.last_recv, C.ready, C.done};
    send_rec(C.rec_fd, REC_PROGRESS, &p, sizeof p);
}

static void report_phase(void)
{
    static rec_phase ph;
    memset(&ph, 0, sizeof ph);
    ph.deliveries = C.deliveries;
    ph.min_t = C.min_t;
    ph.last_recv_ns = C.last_recv;
    ph.no_ts = C.no_ts;
    ph.ready = C.ready;
    ph.conn_min = UINT32_MAX;
    for (uint32_t i = 0; i < C.n; i++) {
        conn *c = &C.conns[i];
        if (c->state == ST_READY) {
            if (c->deliveries < ph.conn_min)
                ph.conn_min = c->deliveries;
            if (c->deliveries > ph.conn_max)
                ph.conn_max = c->deliveries;
        }
        c->deliveries = 0;
    }
    if (ph.conn_min == UINT32_MAX)
        ph.conn_min = 0;
    memcpy(ph.err, C.perr, sizeof ph.err);
    double cpu = bu_cpu_self();
    ph.cpu_s = cpu - C.cpu_mark;
    C.cpu_mark = cpu;
    memcpy(&ph.lat, &C.lat, sizeof ph.lat);
    send_rec(C.rec_fd, REC_PHASE, &ph, sizeof ph);
    C.deliveries = C.min_t = C.last_recv = C.no_ts = 0;
    memset(C.perr, 0, sizeof C.perr);
    memset(&C.lat, 0, sizeof C.lat);
}

static void on_cmd(evutil_socket_t fd, short what, void *arg)
{
    uint32_t cmd;
    if (read_full(fd, &cmd, sizeof cmd) < 0 || cmd == CMD_QUIT) {
        event_base_loopbreak(C.base);
        return;
    }
    if (cmd == CMD_PHASE)
        report_phase();
}

static void child_main(uint32_t first, uint32_t n, int cmd_fd, int rec_fd, double rate)
{
    memset(&C, 0, sizeof C);
    C.first = first;
    C.n = n;
    C.cmd_fd = cmd_fd;
    C.rec_fd = rec_fd;
    C.rate = rate;
    C.rng = 2463534242u ^ (first * 2654435761u) ^ (uint32_t)getpid();
    if (C.rng == 0)
        C.rng = 1;
    if (O.nports == 1)
        snprintf(C.hostport, sizeof C.hostport, "%s:%d", O.host, O.ports[0]);
    else
        snprintf(C.hostport, sizeof C.hostport, "%s", O.host);
    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    C.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    C.conns = calloc(n ? n : 1, sizeof(conn));
    if (!C.base || !C.conns)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        C.conns[i].fd = -1;
        C.conns[i].idx = O.offset + first + i;
    }
    struct timeval ms1 = {0, 1000}, s1 = {1, 0}, ms100 = {0, 100000};
    C.launch_ev = event_new(C.base, -1, EV_PERSIST, on_launch_tick, NULL);
    C.tick_ev = event_new(C.base, -1, EV_PERSIST, on_second_tick, NULL);
    C.progress_ev = event_new(C.base, -1, EV_PERSIST, on_progress_tick, NULL);
    C.cmd_ev = event_new(C.base, cmd_fd, EV_READ | EV_PERSIST, on_cmd, NULL);
    event_add(C.launch_ev, &ms1);
    event_add(C.tick_ev, &s1);
    event_add(C.progress_ev, &ms100);
    event_add(C.cmd_ev, NULL);
    C.launch_t0 = bu_now_ns();
    launch_more();
    maybe_connect_done();
    if (O.spin) { /* never sleeps in epoll_wait: a sender on loopback then wakes no one */
        while (!event_base_got_break(C.base) && !event_base_got_exit(C.base))
            event_base_loop(C.base, EVLOOP_NONBLOCK);
    } else {
        event_base_dispatch(C.base);
    }
    /* Quit: a plain close (FIN), or with --rst an abortive one that leaves no TIME_WAIT. */
    struct linger lg = {1, 0};
    for (uint32_t i = 0; i < n; i++)
        if (C.conns[i].fd >= 0) {
            if (O.rst)
                setsockopt(C.conns[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            close(C.conns[i].fd);
        }
    _exit(0);
}

/* =========================================================================================== */
/* Parent: forks the children, aggregates, prints JSON lines                                   */
/* =========================================================================================== */

typedef struct child {
    pid_t pid;
    int cmd_fd, rec_fd;
    rec_progress prog;
    int connect_done, phase_done, dead;
    rec_connect cs;
    rec_phase ph;
} child;

static child K[MAX_PROCS];

/* Reads one record from child k into its slots. Returns the type, or -1 when the child is gone. */
static int read_rec(int k)
{
    rec_hdr h;
    if (read_full(K[k].rec_fd, &h, sizeof h) < 0) {
        K[k].dead = 1;
        return -1;
    }
    void *dst = NULL;
    size_t want = 0;
    if (h.type == REC_PROGRESS) {
        dst = &K[k].prog;
        want = sizeof K[k].prog;
    } else if (h.type == REC_CONNECT) {
        dst = &K[k].cs;
        want = sizeof K[k].cs;
        K[k].connect_done = 1;
    } else if (h.type == REC_PHASE) {
        dst = &K[k].ph;
        want = sizeof K[k].ph;
        K[k].phase_done = 1;
    }
    if (!dst || want != h.len || read_full(K[k].rec_fd, dst, want) < 0) {
        K[k].dead = 1;
        return -1;
    }
    return (int)h.type;
}

/* Waits up to ms for records from any child; returns 1 if stdin is readable (when asked). */
static int pump(int ms, int watch_stdin)
{
    struct pollfd pf[MAX_PROCS + 1];
    int n = 0, map[MAX_PROCS + 1];
    for (int k = 0; k < O.procs; k++)
        if (!K[k].dead) {
            pf[n].fd = K[k].rec_fd;
            pf[n].events = POLLIN;
            map[n++] = k;
        }
    int in_slot = -1;
    if (watch_stdin) {
        in_slot = n;
        pf[n].fd = 0;
        pf[n].events = POLLIN;
        map[n++] = -1;
    }
    if (poll(pf, (nfds_t)n, ms) <= 0)
        return 0;
    int stdin_ready = 0;
    for (int i = 0; i < n; i++) {
        if (!pf[i].revents)
            continue;
        if (i == in_slot)
            stdin_ready = 1;
        else
            read_rec(map[i]);
    }
    return stdin_ready;
}

static int alive(void)
{
    int n = 0;
    for (int k = 0; k < O.procs; k++)
        n += !K[k].dead;
    return n;
}

static void print_lat(const char *key, const bu_hist *h)
{
    printf(",\"%s\":{\"n\":%llu,\"mean\":%.1f,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
           "\"max\":%.1f}",
           key, (unsigned long long)h->count, h->count ? (double)h->sum / h->count / 1e3 : 0.0,
           bu_hist_pct(h, 50) / 1e3, bu_hist_pct(h, 90) / 1e3, bu_hist_pct(h, 99) / 1e3,
           bu_hist_pct(h, 99.9) / 1e3, h->max / 1e3);
}

static void print_errs(const uint32_t *err)
{
    printf(",\"errors\":{");
    int first = 1;
    for (int e = 0; e < E_COUNT; e++)
        if (err[e]) {
            printf("%s\"%s\":%u", first ? "" : ",", err_names[e], err[e]);
            first = 0;
        }
    printf("}");
}

static void report_connect(void)
{
    static rec_connect a;
    memset(&a, 0, sizeof a);
    for (int k = 0; k < O.procs; k++) {
        rec_connect *s = &K[k].cs;
        a.assigned += s->assigned;
        a.connected += s->connected;
        a.joined += s->joined;
        a.failed += s->failed;
        for (int e = 0; e < E_COUNT; e++)
            a.err[e] += s->err[e];
        if (s->t_first_start && (!a.t_first_start || s->t_first_start < a.t_first_start))
            a.t_first_start = s->t_first_start;
        if (s->t_last_connected > a.t_last_connected)
            a.t_last_connected = s->t_last_connected;
        if (s->t_last_joined > a.t_last_joined)
            a.t_last_joined = s->t_last_joined;
        a.cpu_s += s->cpu_s;
        bu_hist_merge(&a.hs, &s->hs);
    }
    double tc = a.t_last_connected > a.t_first_start ? (a.t_last_connected - a.t_first_start) / 1e9 : 0;
    double tj = a.t_last_joined > a.t_first_start ? (a.t_last_joined - a.t_first_start) / 1e9 : 0;
    printf("{\"phase\":\"connect\",\"procs\":%d,\"conns\":%u,\"connected\":%u,\"joined\":%u,"
           "\"failed\":%u,\"secs_connect\":%.3f,\"secs_join\":%.3f,\"handshakes_per_s\":%.1f,"
           "\"joined_per_s\":%.1f,\"cpu_s\":%.3f",
           O.procs, a.assigned, a.connected, a.joined, a.failed, tc, tj,
           tc > 0 ? a.connected / tc : 0, tj > 0 ? a.joined / tj : 0, a.cpu_s);
    print_lat("handshake_us", &a.hs);
    print_errs(a.err);
    printf("}\n");
    fflush(stdout);
}

static void report_phase_json(const char *name, double wall)
{
    static rec_phase a;
    memset(&a, 0, sizeof a);
    a.conn_min = UINT32_MAX;
    for (int k = 0; k < O.procs; k++) {
        rec_phase *s = &K[k].ph;
        if (K[k].dead && !K[k].phase_done)
            continue;
        a.deliveries += s->deliveries;
        a.no_ts += s->no_ts;
        a.ready += s->ready;
        if (s->min_t && (!a.min_t || s->min_t < a.min_t))
            a.min_t = s->min_t;
        if (s->last_recv_ns > a.last_recv_ns)
            a.last_recv_ns = s->last_recv_ns;
        if (s->ready && s->conn_min < a.conn_min)
            a.conn_min = s->conn_min;
        if (s->conn_max > a.conn_max)
            a.conn_max = s->conn_max;
        for (int e = 0; e < E_COUNT; e++)
            a.err[e] += s->err[e];
        a.cpu_s += s->cpu_s;
        bu_hist_merge(&a.lat, &s->lat);
    }
    if (a.conn_min == UINT32_MAX)
        a.conn_min = 0;
    double span = a.min_t && a.last_recv_ns > a.min_t ? (a.last_recv_ns - a.min_t) / 1e9 : 0;
    printf("{\"phase\":\"%s\",\"ready\":%u,\"deliveries\":%llu,\"no_timestamp\":%llu,"
           "\"secs\":%.3f,\"deliveries_per_s\":%.1f,\"per_conn_min\":%u,\"per_conn_max\":%u,"
           "\"wall_s\":%.3f,\"cpu_s\":%.3f",
           name, a.ready, (unsigned long long)a.deliveries, (unsigned long long)a.no_ts, span,
           span > 0 ? a.deliveries / span : 0, a.conn_min, a.conn_max, wall, a.cpu_s);
    print_lat("latency_us", &a.lat);
    print_errs(a.err);
    printf("}\n");
    fflush(stdout);
}

static void send_cmd_all(uint32_t cmd)
{
    for (int k = 0; k < O.procs; k++)
        if (!K[k].dead && write_full(K[k].cmd_fd, &cmd, sizeof cmd) < 0)
            K[k].dead = 1;
}

/* Runs one measured phase: see the header comment for the end conditions. */
static void measure(const char *name, uint64_t expect, int quiet_ms, int timeout_ms)
{
    uint64_t t0 = bu_now_ns();
    for (;;) {
        pump(20, 0);
        uint64_t now = bu_now_ns(), sum = 0, last = 0;
        for (int k = 0; k < O.procs; k++) {
            sum += K[k].prog.deliveries;
            if (K[k].prog.last_recv_ns > last)
                last = K[k].prog.last_recv_ns;
        }
        double quiet = last ? (now - last) / 1e6 : 0;
        if (expect > 0 && sum >= expect && quiet >= 150)
            break;
        if (quiet_ms > 0 && sum > 0 && quiet >= quiet_ms)
            break;
        if ((now - t0) / 1e6 >= timeout_ms || !alive())
            break;
    }
    for (int k = 0; k < O.procs; k++)
        K[k].phase_done = 0;
    send_cmd_all(CMD_PHASE);
    for (;;) {
        int pending = 0;
        for (int k = 0; k < O.procs; k++)
            pending += !K[k].dead && !K[k].phase_done;
        if (!pending)
            break;
        pump(100, 0);
    }
    for (int k = 0; k < O.procs; k++)
        memset(&K[k].prog, 0, sizeof K[k].prog);
    report_phase_json(name, (bu_now_ns() - t0) / 1e9);
}

static void control_loop(void)
{
    char line[512];
    size_t len = 0;
    for (;;) {
        if (!pump(200, 1))
            continue;
        ssize_t r = read(0, line + len, sizeof line - 1 - len);
        if (r <= 0)
            return;
        len += (size_t)r;
        line[len] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            char name[64];
            unsigned long long expect;
            int quiet, timeout;
            if (strncmp(line, "quit", 4) == 0)
                return;
            if (sscanf(line, "measure %63s %llu %d %d", name, &expect, &quiet, &timeout) == 4)
                measure(name, expect, quiet, timeout);
            else if (line[0])
                fprintf(stderr, "loadgen: unknown command: %s\n", line);
            size_t used = (size_t)(nl + 1 - line);
            memmove(line, nl + 1, len - used + 1);
            len -= used;
        }
        if (len >= sizeof line - 1)
            len = 0;
    }
}

static int parse_src_ips(const char *s)
{
    /* "127.0.0.1-127.0.0.8" or "127.0.0.1,127.0.0.2" or "127.0.0.1" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = '\0';
        struct in_addr a, b;
        if (inet_pton(AF_INET, buf, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1)
            return -1;
        for (uint32_t v = ntohl(a.s_addr); v <= ntohl(b.s_addr) && O.nsrc < MAX_SRC; v++)
            O.src[O.nsrc++].s_addr = htonl(v);
        return O.nsrc ? 0 : -1;
    }
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
        if (O.nsrc < MAX_SRC && inet_pton(AF_INET, t, &O.src[O.nsrc++]) != 1)
            return -1;
    return O.nsrc ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [options]\n"
            "  --host A            server address (127.0.0.1)\n"
            "  --port P[,P...]     server port(s); connection i goes to port i %% count (3000)\n"
            "  --conns N           connections (100)\n"
            "  --offset N          first connection index: user u<N>, ... (0)\n"
            "  --rooms R           connection i joins room <prefix><i %% R> (0: none)\n"
            "  --room-prefix S     (r)\n"
            "  --join-also ROOM    also join ROOM (repeatable, up to %d)\n"
            "  --ns NS             namespace (/)\n"
            "  --path P            Engine.IO path (/socket.io/)\n"
            "  --secret S          HS256 secret for the tokens (bench-secret)\n"
            "  --token-rooms GLOB  the tokens' rooms claim (*)\n"
            "  --procs P           processes (1)\n"
            "  --src-ips A-B|A,B   source addresses, round robin (127.0.0.1)\n"
            "  --rate R            connections/s over all processes (0: as fast as allowed)\n"
            "  --concurrency C     handshakes in flight per process (256)\n"
            "  --timeout MS        handshake timeout (30000)\n"
            "  --duration S        after connecting, listen S seconds and report (0)\n"
            "  --control           after connecting, read commands from stdin (see source)\n"
            "  --ready-file F      create F once every connection is ready or failed\n"
            "  --rst               close with RST at the end (default: FIN)\n"
            "  --spin              busy-poll (a core per process): the server's writes then wake\n"
            "                      no sleeping receiver; for measuring that cost, not the default\n"
            "  --json              JSON lines on stdout (the only output format)\n",
            MAX_ALSO);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},        {"port", 1, 0, 'p'},         {"conns", 1, 0, 'n'},
        {"offset", 1, 0, 'o'},      {"rooms", 1, 0, 'r'},        {"room-prefix", 1, 0, 'x'},
        {"join-also", 1, 0, 'a'},   {"ns", 1, 0, 's'},           {"path", 1, 0, 'P'},
        {"secret", 1, 0, 'k'},      {"token-rooms", 1, 0, 'g'},  {"procs", 1, 0, 'j'},
        {"src-ips", 1, 0, 'i'},     {"rate", 1, 0, 'R'},         {"concurrency", 1, 0, 'c'},
        {"timeout", 1, 0, 't'},     {"duration", 1, 0, 'd'},     {"control", 0, 0, 'C'},
        {"ready-file", 1, 0, 'f'},  {"json", 0, 0, 'J'},         {"rst", 0, 0, 'Z'},
        {"spin", 0, 0, 'S'},        {"help", 0, 0, '?'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': O.host = optarg; break;
        case 'p':
            for (char *t = strtok(optarg, ","); t && O.nports < MAX_PORTS; t = strtok(NULL, ","))
                O.ports[O.nports++] = atoi(t);
            break;
        case 'n': O.conns = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'o': O.offset = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'r': O.rooms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'x': O.room_prefix = optarg; break;
        case 'a':
            if (O.nalso < MAX_ALSO)
                O.also[O.nalso++] = optarg;
            break;
        case 's': O.ns = optarg; break;
        case 'P': O.path = optarg; break;
        case 'k': O.secret = optarg; break;
        case 'g': O.token_rooms = optarg; break;
        case 'j': O.procs = atoi(optarg); break;
        case 'i':
            if (parse_src_ips(optarg) < 0) {
                fprintf(stderr, "loadgen: bad --src-ips %s\n", optarg);
                return 2;
            }
            break;
        case 'R': O.rate = atof(optarg); break;
        case 'c': O.concurrency = atoi(optarg); break;
        case 't': O.hs_timeout_ms = atoi(optarg); break;
        case 'd': O.duration = atof(optarg); break;
        case 'C': O.control = 1; break;
        case 'f': O.ready_file = optarg; break;
        case 'J': break;
        case 'Z': O.rst = 1; break;
        case 'S': O.spin = 1; break;
        default: usage(); return 2;
        }
    }
    if (O.nports == 0)
        O.ports[O.nports++] = 3000;
    if (O.nsrc == 0)
        inet_pton(AF_INET, "127.0.0.1", &O.src[O.nsrc++]);
    if (O.procs < 1 || O.procs > MAX_PROCS || O.concurrency < 1 || O.nalso + (O.rooms > 0) > 200) {
        usage();
        return 2;
    }
    if (O.procs > (int)O.conns && O.conns > 0)
        O.procs = (int)O.conns;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    for (int k = 0; k < O.procs; k++) {
        int cmd[2], rec[2];
        if (pipe(cmd) < 0 || pipe(rec) < 0) {
            perror("pipe");
            return 1;
        }
        uint32_t first = (uint32_t)((uint64_t)O.conns * k / O.procs);
        uint32_t last = (uint32_t)((uint64_t)O.conns * (k + 1) / O.procs);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (int j = 0; j < k; j++) {
                close(K[j].cmd_fd);
                close(K[j].rec_fd);
            }
            close(cmd[1]);
            close(rec[0]);
            close(0);
            child_main(first, last - first, cmd[0], rec[1], O.rate / O.procs);
        }
        close(cmd[0]);
        close(rec[1]);
        K[k].pid = pid;
        K[k].cmd_fd = cmd[1];
        K[k].rec_fd = rec[0];
    }

    /* Connect phase: wait until every child has settled all its connections. */
    for (;;) {
        int pending = 0;
        for (int k = 0; k < O.procs; k++)
            pending += !K[k].dead && !K[k].connect_done;
        if (!pending)
            break;
        pump(200, 0);
    }
    report_connect();
    if (O.ready_file) {
        FILE *f = fopen(O.ready_file, "w");
        if (f)
            fclose(f);
    }
    if (O.control)
        control_loop();
    else if (O.duration > 0)
        measure("listen", 0, 0, (int)(O.duration * 1000));
    send_cmd_all(CMD_QUIT);
    for (int k = 0; k < O.procs; k++)
        waitpid(K[k].pid, NULL, 0);
    return 0;
}
