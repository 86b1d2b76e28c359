/*
 * limit: the machine's floor for the fan-out scenario of the roomcast benchmark (issue 8).
 *
 * A minimal single-threaded epoll server that speaks just enough of WebSocket, Engine.IO and
 * Socket.IO for test/bench/loadgen: it accepts, answers the HTTP upgrade with 101 and a correct
 * Sec-WebSocket-Accept, sends the Engine.IO open packet, answers the Socket.IO CONNECT
 * (40...) with 40{"sid":"<20 chars>"} (the token is not checked), acks every event that carries
 * an ack id (42<id>[...] -> 43<id>[{"ok":true}]) and ignores pongs. A connection that has sent
 * at least one join event is a member of the one room it knows.
 *
 * On "blast N" (a line on stdin) it builds N server frames, ONE per message, each an unmasked
 * text frame 42["bench",{"t":<CLOCK_MONOTONIC ns when built>,"pad":"xxx..."}] (the frame roomcast
 * delivers for the publisher's default message, about 100 bytes), and writes all of them to every
 * member as fast as it can: writev of up to --batch frames per call straight from the shared
 * frame bytes, a (message, offset) cursor per socket when the kernel buffer is full (EAGAIN or
 * short write), EPOLLOUT until it drains. No copy, no allocation per delivery, no broker logic:
 * what is left is the kernel's cost (syscalls + loopback TCP) per delivery.
 *
 * When every member has taken every byte it prints one JSON line on stdout:
 *   {"blast":N,"members":M,"deliveries":N*M,"bytes":...,"frame_bytes":...,"write_s":...,
 *    "cpu_s":...,"user_s":...,"sys_s":...,"cpu_per_delivery_us":...,"writev":...,"partial":...}
 * (cpu_s: getrusage of this process from the command to the last byte written).
 *
 * On "pace RATE COUNT ROOMS" it sends COUNT messages at RATE messages/s, as the publisher does
 * with --rate: message i is due at start + i / RATE, is built (and time-stamped) when due, and
 * goes to the members of room i % ROOMS (a member's room is the k of its first join of "r<k>";
 * with ROOMS = 1 every member gets every message, like the room "all"). A timer ticks every
 * 200 us (half the interval below 2,000 messages/s); each tick builds the messages now due and
 * writes each touched socket ONCE, with writev of its frames of this tick: what roomcast does
 * per loop turn. A socket that does not take everything gets the rest copied and EPOLLOUT. After
 * the last message it prints {"paced":COUNT,"rate":..,"rooms":..,"deliveries":..,"writev":..,
 * "copied":..,"cpu_s":..,"user_s":..,"sys_s":..,"cpu_per_delivery_us":..,"late_ms_max":..}
 * (late_ms_max: the most a tick ran behind the schedule).
 *
 * Other commands:
 * "stats" prints {"conns":..,"members":..}; "quit" exits, and so does the end of input unless
 * --stay is given (or stdin is a file such as /dev/null): then it serves until killed.
 *
 * --uring: the pace ticks' sends go through io_uring (limit_uring.c): queued per socket as
 * above, submitted together at the end of the tick (one io_uring_enter per 1,024 sends), each
 * result handled like a writev's. "writev" in the pace report then counts those sends, and
 * "submits" the io_uring_enter calls. Blasts still use writev.
 *
 * usage: limit --port P [--pad 60] [--batch 64] [--stay] [--uring]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "limit_uring.h"

#define MAX_IN 16384
#define MAX_BATCH 1024
#define PACE_PENDING 32   /* frames a socket collects in one pace tick before it is written */
#define PACE_TICK_MAX 4096 /* messages one pace tick builds at most */

typedef struct conn {
    int fd;
    uint8_t upgraded;
    uint8_t member;
    uint8_t out_armed;        /* EPOLLOUT is on */
    uint8_t in_blast;         /* owes frames of the current blast */
    uint8_t closed;           /* freed after the current batch of events */
    uint32_t in_len;
    char *in;                 /* bytes of an incomplete request or frame */
    char *out;                /* handshake replies the socket did not take (copied: rare) */
    uint32_t out_len;
    uint32_t bmsg, boff;      /* blast cursor: next frame, bytes of it already written */
    uint32_t idx;             /* in the members array, when member */
    int32_t room;             /* k of the first join of "r<k>", -1 before */
    uint16_t npend;           /* pace: frames of this tick not yet written */
    uint16_t pend[PACE_PENDING];
    struct conn *next_dead;
} conn;

typedef struct frame {
    char *bytes;
    uint32_t len;
} frame;

static struct {
    int port, pad, batch, stay, uring;
    int ep, lfd;
    uint32_t conns, nmembers, cap_members;
    conn **members;
    /* the current blast */
    frame *frames;
    uint32_t nframes, owing, blast_members, done_members;
    conn *dead;
    uint64_t t0, bytes, writev_calls, partial;
    struct rusage ru0;
    int stdin_open;
} S = {.pad = 60, .batch = 64};

/* the current pace (fixed-rate sending) */
static struct {
    int active, tfd;
    double rate;
    uint32_t count, rooms, sent;
    uint32_t *room_start; /* members of room k: room_conns[room_start[k] .. room_start[k + 1]) */
    conn **room_conns;
    conn **touched;       /* sockets with frames in the current tick */
    uint64_t t0, deliveries, writev_calls, copied, late_ns_max;
    unsigned long long submits0;
    struct rusage ru0;
} P = {.tfd = -1};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void ep_set(conn *c, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->out_armed = (uint8_t)out;
}

static void blast_done_one(void);

/* Closes the socket now; the struct is freed after the current batch of events (another event
 * of the batch, or the blast loop, may still hold it: they check c->closed). */
static void conn_close(conn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    epoll_ctl(S.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->member) {
        conn *last = S.members[--S.nmembers];
        S.members[c->idx] = last;
        last->idx = c->idx;
    }
    S.conns--;
    c->member = 0;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
    c->in_len = c->out_len = 0;
    c->next_dead = S.dead;
    S.dead = c;
    if (c->in_blast) {
        c->in_blast = 0;
        blast_done_one();
    }
}

static void free_dead(void)
{
    while (S.dead) {
        conn *c = S.dead;
        S.dead = c->next_dead;
        free(c);
    }
}

/* ---- handshake-time output (small, copied only when the socket does not take it) ----------- */

/* Copies bytes the socket did not take behind c->out and waits for EPOLLOUT to drain them. */
static void out_append(conn *c, const void *p, size_t n)
{
    char *o = realloc(c->out, c->out_len + n);
    if (!o)
        abort();
    memcpy(o + c->out_len, p, n);
    c->out = o;
    c->out_len += (uint32_t)n;
    if (!c->out_armed)
        ep_set(c, 1);
}

static int conn_send(conn *c, const void *p, size_t n)
{
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w == (ssize_t)n)
            return 0;
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -1;
            w = 0;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    out_append(c, p, n);
    return 0;
}

static int ws_send_text(conn *c, const char *s, size_t n)
{
    char buf[512];
    size_t h = 0;
    if (n + 4 > sizeof buf)
        return -1;
    buf[h++] = (char)0x81;
    if (n < 126) {
        buf[h++] = (char)n;
    } else {
        buf[h++] = 126;
        buf[h++] = (char)(n >> 8);
        buf[h++] = (char)n;
    }
    memcpy(buf + h, s, n);
    return conn_send(c, buf, h + n);
}

/* ---- blast ---------------------------------------------------------------------------------- */

static void blast_report(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double us = tv_s(ru.ru_utime) - tv_s(S.ru0.ru_utime);
    double sy = tv_s(ru.ru_stime) - tv_s(S.ru0.ru_stime);
    uint64_t deliveries = (uint64_t)S.nframes * S.done_members;
    double wall = (now_ns() - S.t0) / 1e9;
    printf("{\"blast\":%u,\"members\":%u,\"completed\":%u,\"deliveries\":%llu,\"bytes\":%llu,\"frame_bytes\":%u,"
           "\"batch\":%d,\"write_s\":%.6f,\"cpu_s\":%.3f,\"user_s\":%.3f,\"sys_s\":%.3f,"
           "\"cpu_per_delivery_us\":%.4f,\"writev\":%llu,\"partial\":%llu}\n",
           S.nframes, S.blast_members, S.done_members, (unsigned long long)deliveries, (unsigned long long)S.bytes,
           S.nframes ? S.frames[0].len : 0, S.batch, wall, us + sy, us, sy,
           deliveries ? (us + sy) / (double)deliveries * 1e6 : 0,
           (unsigned long long)S.writev_calls, (unsigned long long)S.partial);
    fflush(stdout);
    for (uint32_t i = 0; i < S.nframes; i++)
        free(S.frames[i].bytes);
    free(S.frames);
    S.frames = NULL;
    S.nframes = 0;
}

static void blast_done_one(void)
{
    if (--S.owing == 0)
        blast_report();
}

/* Writes what the socket takes of c's remaining frames. 0: all written, 1: the kernel buffer is
 * full (EPOLLOUT armed), -1: the connection was closed. */
static int blast_write(conn *c)
{
    struct iovec iov[MAX_BATCH];
    while (c->bmsg < S.nframes) {
        int n = 0;
        size_t total = 0;
        for (uint32_t m = c->bmsg; m < S.nframes && n < S.batch; m++, n++) {
            uint32_t off = m == c->bmsg ? c->boff : 0;
            iov[n].iov_base = S.frames[m].bytes + off;
            iov[n].iov_len = S.frames[m].len - off;
            total += iov[n].iov_len;
        }
        ssize_t w = writev(c->fd, iov, n);
        S.writev_calls++;
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_close(c);
            return -1;
        }
        S.bytes += (uint64_t)w;
        size_t left = (size_t)w;
        while (left > 0) { /* advance the cursor by w bytes */
            uint32_t avail = S.frames[c->bmsg].len - c->boff;
            if (left < avail) {
                c->boff += (uint32_t)left;
                break;
            }
            left -= avail;
            c->bmsg++;
            c->boff = 0;
        }
        if ((size_t)w < total)
            break; /* short write: the kernel buffer is full */
    }
    if (c->bmsg < S.nframes) {
        S.partial++;
        if (!c->out_armed)
            ep_set(c, 1);
        return 1;
    }
    c->in_blast = 0;
    S.done_members++;
    if (c->out_armed && c->out_len == 0)
        ep_set(c, 0);
    blast_done_one();
    return 0;
}

/* The frame roomcast delivers for the publisher's message, time-stamped now. */
static void build_frame(frame *fr)
{
    char pad[4096];
    memset(pad, 'x', (size_t)S.pad);
    pad[S.pad] = '\0';
    char pl[4200];
    int len = snprintf(pl, sizeof pl, "42[\"bench\",{\"t\":%llu,\"pad\":\"%s\"}]",
                       (unsigned long long)now_ns(), pad);
    char *f = malloc((size_t)len + 4);
    if (!f)
        abort();
    size_t h = 0;
    f[h++] = (char)0x81;
    if (len < 126) {
        f[h++] = (char)len;
    } else {
        f[h++] = 126;
        f[h++] = (char)(len >> 8);
        f[h++] = (char)len;
    }
    memcpy(f + h, pl, (size_t)len);
    fr->bytes = f;
    fr->len = (uint32_t)(h + (size_t)len);
}

static void blast(uint32_t n)
{
    if (S.nframes) {
        printf("{\"error\":\"busy\"}\n");
        fflush(stdout);
        return;
    }
    if (n == 0 || S.nmembers == 0) {
        printf("{\"blast\":%u,\"members\":%u,\"deliveries\":0}\n", n, S.nmembers);
        fflush(stdout);
        return;
    }
    getrusage(RUSAGE_SELF, &S.ru0);
    S.t0 = now_ns();
    S.bytes = S.writev_calls = S.partial = 0;
    S.frames = calloc(n, sizeof *S.frames);
    if (!S.frames)
        abort();
    for (uint32_t i = 0; i < n; i++)
        build_frame(&S.frames[i]);
    S.nframes = n;
    S.blast_members = S.nmembers;
    S.done_members = 0;
    S.owing = S.nmembers + 1; /* +1: held until the loop below is through */
    for (uint32_t i = 0; i < S.nmembers; i++) {
        conn *c = S.members[i];
        c->bmsg = c->boff = 0;
        c->in_blast = 1;
    }
    /* Walk by index, from the end: a socket closed in blast_write swaps the last member into its
     * slot, which has already been visited. */
    for (uint32_t i = S.nmembers; i-- > 0;) {
        if (i >= S.nmembers)
            continue;
        conn *c = S.members[i];
        if (c->out_len == 0)
            blast_write(c); /* otherwise the EPOLLOUT handler starts it after the handshake bytes */
    }
    blast_done_one();
}

/* ---- pace ----------------------------------------------------------------------------------- */

/* Copies what a send did not take (all but its first w bytes) behind c->out. */
static void pace_rest(conn *c, size_t w, const struct iovec *iov, int n)
{
    P.copied++;
    size_t skip = w;
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        out_append(c, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
    }
}

/* --uring: the result of a send queued by pace_flush, handled as a writev's. */
static void pace_sent(void *tag, int res, const struct iovec *iov, int n)
{
    conn *c = tag;
    if (c->closed)
        return;
    if (res < 0) {
        if (res != -EAGAIN && res != -EINTR) {
            conn_close(c);
            return;
        }
        res = 0;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if ((size_t)res < total)
        pace_rest(c, (size_t)res, iov, n);
}

/* Writes c's frames of this tick with one writev; what the socket does not take is copied into
 * c->out (EPOLLOUT drains it), behind anything already there. */
static void pace_flush(conn *c, const frame *fr)
{
    struct iovec iov[PACE_PENDING];
    size_t total = 0;
    for (int i = 0; i < c->npend; i++) {
        iov[i].iov_base = fr[c->pend[i]].bytes;
        iov[i].iov_len = fr[c->pend[i]].len;
        total += iov[i].iov_len;
    }
    int n = c->npend;
    c->npend = 0;
    ssize_t w = 0;
    if (c->out_len == 0 && S.uring) { /* queued; lu_flush at the end of the tick sends it */
        lu_send(c->fd, iov, n, c, pace_sent);
        P.writev_calls++;
        return;
    }
    if (c->out_len == 0) {
        w = writev(c->fd, iov, n);
        P.writev_calls++;
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c);
                return;
            }
            w = 0;
        }
        if ((size_t)w == total)
            return;
    }
    pace_rest(c, (size_t)w, iov, n);
}

static void pace_report(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double us = tv_s(ru.ru_utime) - tv_s(P.ru0.ru_utime);
    double sy = tv_s(ru.ru_stime) - tv_s(P.ru0.ru_stime);
    printf("{\"paced\":%u,\"rate\":%.1f,\"rooms\":%u,\"members\":%u,\"deliveries\":%llu,"
           "\"secs\":%.3f,\"writev\":%llu,\"copied\":%llu,\"cpu_s\":%.3f,\"user_s\":%.3f,"
           "\"sys_s\":%.3f,\"cpu_per_delivery_us\":%.4f,\"late_ms_max\":%.3f,\"uring\":%d,"
           "\"submits\":%llu}\n",
           P.count, P.rate, P.rooms, S.nmembers, (unsigned long long)P.deliveries,
           (now_ns() - P.t0) / 1e9, (unsigned long long)P.writev_calls,
           (unsigned long long)P.copied, us + sy, us, sy,
           P.deliveries ? (us + sy) / (double)P.deliveries * 1e6 : 0, P.late_ns_max / 1e6, S.uring,
           lu_submits() - P.submits0);
    fflush(stdout);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(P.tfd, 0, &off, NULL);
    free(P.room_start);
    free(P.room_conns);
    free(P.touched);
    P.room_start = NULL;
    P.room_conns = NULL;
    P.touched = NULL;
    P.active = 0;
}

/* Builds the messages due by now and writes each touched socket once. */
static void pace_tick(void)
{
    uint64_t buf;
    if (read(P.tfd, &buf, sizeof buf) < 0 && errno != EAGAIN)
        return;
    uint64_t now = now_ns();
    uint64_t due = (uint64_t)(P.rate * (double)(now - P.t0) / 1e9) + 1;
    if (due > P.count)
        due = P.count;
    if (due <= P.sent)
        return;
    uint64_t sched = P.t0 + (uint64_t)((double)P.sent * 1e9 / P.rate);
    if (now > sched && now - sched > P.late_ns_max)
        P.late_ns_max = now - sched;
    uint32_t k = (uint32_t)(due - P.sent);
    if (k > PACE_TICK_MAX)
        k = PACE_TICK_MAX;
    frame fr[PACE_TICK_MAX];
    conn **touched = P.touched;
    uint32_t ntouched = 0;
    for (uint32_t j = 0; j < k; j++) {
        build_frame(&fr[j]);
        uint32_t room = (P.sent + j) % P.rooms;
        for (uint32_t m = P.room_start[room]; m < P.room_start[room + 1]; m++) {
            conn *c = P.room_conns[m];
            if (c->closed)
                continue;
            if (c->npend == PACE_PENDING) {
                if (S.uring)
                    lu_flush(); /* its earlier send first: they must not race */
                pace_flush(c, fr); /* still in touched */
            }
            else if (c->npend == 0)
                touched[ntouched++] = c; /* each member once: at most nmembers */
            c->pend[c->npend++] = (uint16_t)j;
            P.deliveries++;
        }
    }
    for (uint32_t i = 0; i < ntouched; i++)
        if (!touched[i]->closed && touched[i]->npend)
            pace_flush(touched[i], fr);
    if (S.uring)
        lu_flush(); /* every send of the tick, in one io_uring_enter per LU_ENTRIES */
    for (uint32_t j = 0; j < k; j++)
        free(fr[j].bytes);
    P.sent += k;
    if (P.sent == P.count)
        pace_report();
}

static void pace(double rate, uint32_t count, uint32_t rooms)
{
    if (S.nframes || P.active || rate <= 0 || count == 0 || rooms == 0) {
        printf("{\"error\":\"%s\"}\n", S.nframes || P.active ? "busy" : "pace RATE COUNT ROOMS");
        fflush(stdout);
        return;
    }
    /* bucket the members by room (counting sort); with one room, everyone */
    P.room_start = calloc((size_t)rooms + 1, sizeof *P.room_start);
    P.room_conns = malloc(((size_t)S.nmembers + 1) * sizeof *P.room_conns);
    P.touched = malloc(((size_t)S.nmembers + 1) * sizeof *P.touched);
    if (!P.room_start || !P.room_conns || !P.touched)
        abort();
    for (uint32_t i = 0; i < S.nmembers; i++) {
        int32_t r = rooms == 1 ? 0 : S.members[i]->room;
        if (r >= 0 && (uint32_t)r < rooms)
            P.room_start[r + 1]++;
    }
    for (uint32_t r = 0; r < rooms; r++)
        P.room_start[r + 1] += P.room_start[r];
    uint32_t *fill = calloc(rooms, sizeof *fill);
    if (!fill)
        abort();
    for (uint32_t i = 0; i < S.nmembers; i++) {
        int32_t r = rooms == 1 ? 0 : S.members[i]->room;
        if (r >= 0 && (uint32_t)r < rooms)
            P.room_conns[P.room_start[r] + fill[r]++] = S.members[i];
    }
    free(fill);
    P.rate = rate;
    P.count = count;
    P.rooms = rooms;
    P.sent = 0;
    P.deliveries = P.writev_calls = P.copied = P.late_ns_max = 0;
    P.submits0 = lu_submits();
    P.active = 1;
    getrusage(RUSAGE_SELF, &P.ru0);
    P.t0 = now_ns();
    long tick_ns = rate > 2000 ? 200000 : (long)(1e9 / rate / 2);
    struct itimerspec its = {{tick_ns / 1000000000, tick_ns % 1000000000}, {0, 1}};
    timerfd_settime(P.tfd, 0, &its, NULL);
}

/* ---- protocol ------------------------------------------------------------------------------- */

static int make_member(conn *c)
{
    if (c->member)
        return 0;
    if (S.nmembers == S.cap_members) {
        S.cap_members = S.cap_members ? S.cap_members * 2 : 1024;
        S.members = realloc(S.members, S.cap_members * sizeof *S.members);
        if (!S.members)
            abort();
    }
    c->member = 1;
    c->idx = S.nmembers;
    S.members[S.nmembers++] = c;
    return 0;
}

/* One Engine.IO message from the client. */
static int on_message(conn *c, const char *s, size_t n)
{
    if (n >= 2 && s[0] == '4' && s[1] == '0') { /* Socket.IO CONNECT */
        static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        static uint64_t seq = 0x9e3779b97f4a7c15ull;
        char sid[21], pkt[64];
        uint64_t x = seq += 0x9e3779b97f4a7c15ull;
        for (int i = 0; i < 20; i++) {
            x ^= x >> 29;
            x *= 0xbf58476d1ce4e5b9ull;
            sid[i] = al[(x >> 58) & 63];
        }
        sid[20] = '\0';
        int l = snprintf(pkt, sizeof pkt, "40{\"sid\":\"%s\"}", sid);
        return ws_send_text(c, pkt, (size_t)l);
    }
    if (n >= 2 && s[0] == '4' && s[1] == '2') { /* an event: ack it when it has an ack id */
        size_t i = 2;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == 2)
            return 0;
        char pkt[64];
        int l = snprintf(pkt, sizeof pkt, "43%.*s[{\"ok\":true}]", (int)(i - 2), s + 2);
        make_member(c);
        const char *r = memmem(s, n, "\"room\":\"r", 9);
        if (c->room < 0 && r && r + 9 < s + n && r[9] >= '0' && r[9] <= '9')
            c->room = atoi(r + 9);
        return ws_send_text(c, pkt, (size_t)l);
    }
    if (n >= 2 && s[0] == '4' && s[1] == '1')
        return -1; /* Socket.IO DISCONNECT */
    if (n >= 1 && s[0] == '1')
        return -1; /* Engine.IO close */
    return 0;      /* '3' pong and anything else */
}

/* Parses the client's frames in p (masked, unmasked in place). Returns bytes consumed, -1 to
 * close. Fragmented messages are not expected from loadgen: they close the connection. */
static ssize_t ws_parse(conn *c, char *p, size_t len)
{
    size_t off = 0;
    for (;;) {
        size_t avail = len - off;
        uint8_t *f = (uint8_t *)p + off;
        if (avail < 2)
            break;
        int fin = f[0] & 0x80, op = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t h = 2;
        if (!(f[1] & 0x80))
            return -1; /* client frames are masked */
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (plen == 127) {
            return -1;
        }
        h += 4;
        if (plen > MAX_IN - 16)
            return -1;
        if (avail < h + plen)
            break;
        uint8_t *mask = f + h - 4;
        char *pl = (char *)f + h;
        for (size_t i = 0; i < plen; i++)
            pl[i] ^= (char)mask[i & 3];
        off += h + (size_t)plen;
        if (op == 0x8 || !fin || op == 0x0)
            return -1;
        if (op == 0x9) {
            char pong[2 + 125];
            pong[0] = (char)0x8A;
            pong[1] = (char)plen;
            memcpy(pong + 2, pl, (size_t)plen);
            if (conn_send(c, pong, 2 + (size_t)plen) < 0)
                return -1;
        } else if (op == 0x1 && on_message(c, pl, (size_t)plen) < 0) {
            return -1;
        }
    }
    return (ssize_t)off;
}

static int http_upgrade(conn *c, char *p, size_t hl)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char *key = NULL;
    size_t keylen = 0;
    if (hl < 4 || memcmp(p, "GET ", 4) != 0)
        return -1;
    for (char *l = memmem(p, hl, "\r\n", 2); l && l + 2 < p + hl;) {
        l += 2;
        char *e = memmem(l, (size_t)(p + hl - l), "\r\n", 2);
        if (!e)
            break;
        if ((size_t)(e - l) > 18 && strncasecmp(l, "Sec-WebSocket-Key:", 18) == 0) {
            key = l + 18;
            while (key < e && (*key == ' ' || *key == '\t'))
                key++;
            keylen = (size_t)(e - key);
            while (keylen && (key[keylen - 1] == ' ' || key[keylen - 1] == '\t'))
                keylen--;
        }
        l = e;
    }
    if (!key || keylen == 0 || keylen > 64)
        return -1;
    char cat[128];
    memcpy(cat, key, keylen);
    memcpy(cat + keylen, guid, sizeof guid - 1);
    unsigned char dg[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)cat, keylen + sizeof guid - 1, dg);
    char acc[64];
    EVP_EncodeBlock((unsigned char *)acc, dg, SHA_DIGEST_LENGTH);

    static uint64_t sidn;
    char open[256], resp[512];
    int ol = snprintf(open, sizeof open,
                      "0{\"sid\":\"limit%015llu\",\"upgrades\":[],\"pingInterval\":25000,"
                      "\"pingTimeout\":20000,\"maxPayload\":1000000}",
                      (unsigned long long)++sidn);
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n%c%c%s",
                      acc, (char)0x81, (char)ol, open);
    c->upgraded = 1;
    return conn_send(c, resp, (size_t)rl);
}

static void conn_read(conn *c)
{
    char buf[MAX_IN + 4096];
    size_t have = c->in_len;
    if (have)
        memcpy(buf, c->in, have);
    ssize_t r = read(c->fd, buf + have, sizeof buf - have);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (r < 0)
        return;
    size_t len = have + (size_t)r;
    char *p = buf;
    if (!c->upgraded) {
        char *eoh = memmem(p, len, "\r\n\r\n", 4);
        if (!eoh) {
            if (len >= MAX_IN) {
                conn_close(c);
                return;
            }
            goto keep;
        }
        size_t hl = (size_t)(eoh + 4 - p);
        if (http_upgrade(c, p, hl) < 0) {
            conn_close(c);
            return;
        }
        p += hl;
        len -= hl;
    }
    ssize_t used = ws_parse(c, p, len);
    if (used < 0) {
        conn_close(c);
        return;
    }
    p += used;
    len -= (size_t)used;
keep:
    if (len != c->in_len || p != buf) {
        if (len == 0) {
            free(c->in);
            c->in = NULL;
        } else {
            char *in = c->in_len >= len ? c->in : realloc(c->in, len);
            if (!in)
                abort();
            memmove(in, p, len);
            c->in = in;
        }
        c->in_len = (uint32_t)len;
    }
}

static void conn_writable(conn *c)
{
    while (c->out_len > 0) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            conn_close(c);
            return;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (uint32_t)w;
    }
    free(c->out);
    c->out = NULL;
    if (c->in_blast) {
        blast_write(c);
        return;
    }
    ep_set(c, 0);
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN, or EMFILE and the like: retried on the next readiness */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->fd = fd;
        c->room = -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        S.conns++;
    }
}

static void on_stdin(void)
{
    static char line[256];
    static size_t ll;
    ssize_t r = read(0, line + ll, sizeof line - 1 - ll);
    if (r <= 0) {
        if (r < 0 && errno == EINTR)
            return;
        epoll_ctl(S.ep, EPOLL_CTL_DEL, 0, NULL);
        S.stdin_open = 0;
        if (!S.stay)
            exit(0);
        return;
    }
    ll += (size_t)r;
    char *nl;
    while ((nl = memchr(line, '\n', ll))) {
        *nl = '\0';
        unsigned n, cnt, rooms;
        double rate;
        if (sscanf(line, "blast %u", &n) == 1) {
            blast(n);
        } else if (sscanf(line, "pace %lf %u %u", &rate, &cnt, &rooms) == 3) {
            pace(rate, cnt, rooms);
        } else if (strncmp(line, "stats", 5) == 0) {
            printf("{\"conns\":%u,\"members\":%u}\n", S.conns, S.nmembers);
            fflush(stdout);
        } else if (strncmp(line, "quit", 4) == 0) {
            exit(0);
        } else if (line[0]) {
            fprintf(stderr, "limit: unknown command: %s\n", line);
        }
        size_t used = (size_t)(nl + 1 - line);
        memmove(line, nl + 1, ll - used);
        ll -= used;
    }
    if (ll == sizeof line - 1)
        ll = 0;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"port", 1, 0, 'p'}, {"pad", 1, 0, 'P'}, {"batch", 1, 0, 'b'}, {"stay", 0, 0, 's'},
        {"uring", 0, 0, 'u'}, {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'p': S.port = atoi(optarg); break;
        case 'P': S.pad = atoi(optarg); break;
        case 'b': S.batch = atoi(optarg); break;
        case 's': S.stay = 1; break;
        case 'u': S.uring = 1; break;
        default:
            fprintf(stderr, "usage: limit --port P [--pad 60] [--batch 64] [--stay] [--uring]\n"
                            "  stdin: 'blast N' | 'pace RATE COUNT ROOMS' | 'stats' | 'quit'\n");
            return 2;
        }
    }
    if (S.port <= 0 || S.port > 65535 || S.pad < 0 || S.pad > 4000 || S.batch < 1 ||
        S.batch > MAX_BATCH) {
        fprintf(stderr, "limit: bad options (--port required; --pad 0..4000; --batch 1..%d)\n",
                MAX_BATCH);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (S.uring) {
        int r = lu_init();
        if (r < 0) {
            fprintf(stderr, "limit: io_uring unavailable: %s\n", strerror(-r));
            return 1;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(S.lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(S.lfd, 4096) < 0) {
        perror("limit: bind/listen");
        return 1;
    }
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    static conn lmark, imark, tmark;
    P.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &tmark};
    if (P.tfd < 0 || epoll_ctl(S.ep, EPOLL_CTL_ADD, P.tfd, &tev) < 0) {
        perror("limit: timerfd");
        return 1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lmark};
    epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd, &ev);
    ev.data.ptr = &imark;
    S.stdin_open = epoll_ctl(S.ep, EPOLL_CTL_ADD, 0, &ev) == 0;
    if (!S.stdin_open)
        S.stay = 1; /* stdin is a file or /dev/null: no commands, serve until killed */
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(S.ep, evs, 512, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("limit: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c == &lmark) {
                on_accept();
                continue;
            }
            if (c == &imark) {
                on_stdin();
                continue;
            }
            if (c == &tmark) {
                pace_tick();
                continue;
            }
            if (c->closed)
                continue;
            uint32_t e = evs[i].events;
            if (e & EPOLLOUT) {
                conn_writable(c);
                continue; /* EPOLLIN is level-triggered: read on the next round */
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(c);
        }
        if (!P.active) /* a pace's room lists hold closed connections until it ends */
            free_dead();
    }
}
