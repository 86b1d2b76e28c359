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
 * (cpu_s: getrusage of this process from the command to the last byte written). Other commands:
 * "stats" prints {"conns":..,"members":..}; "quit" exits, and so does the end of input unless
 * --stay is given (or stdin is a file such as /dev/null): then it serves until killed.
 *
 * usage: limit --port P [--pad 60] [--batch 64] [--stay]
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
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_IN 16384
#define MAX_BATCH 1024

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
    struct conn *next_dead;
} conn;

typedef struct frame {
    char *bytes;
    uint32_t len;
} frame;

static struct {
    int port, pad, batch, stay;
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
    char *o = realloc(c->out, c->out_len + n);
    if (!o)
        abort();
    memcpy(o + c->out_len, p, n);
    c->out = o;
    c->out_len += (uint32_t)n;
    if (!c->out_armed)
        ep_set(c, 1);
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
    char pad[4096];
    memset(pad, 'x', (size_t)S.pad);
    pad[S.pad] = '\0';
    for (uint32_t i = 0; i < n; i++) {
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
        S.frames[i].bytes = f;
        S.frames[i].len = (uint32_t)(h + (size_t)len);
    }
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
        unsigned n;
        if (sscanf(line, "blast %u", &n) == 1) {
            blast(n);
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
        {"port", 1, 0, 'p'}, {"pad", 1, 0, 'P'}, {"batch", 1, 0, 'b'}, {"stay", 0, 0, 's'}, {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'p': S.port = atoi(optarg); break;
        case 'P': S.pad = atoi(optarg); break;
        case 'b': S.batch = atoi(optarg); break;
        case 's': S.stay = 1; break;
        default:
            fprintf(stderr, "usage: limit --port P [--pad 60] [--batch 64] [--stay]\n"
                            "  stdin: 'blast N' | 'stats' | 'quit'\n");
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
    static conn lmark, imark;
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
        free_dead();
    }
}
