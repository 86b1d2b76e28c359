/*
 * publisher: the backend of the roomcast benchmark. Publishes event "bench" with one argument
 * {"t": <CLOCK_MONOTONIC ns at publish>, "pad": "xxx..."} to rooms, at a fixed rate or as fast
 * as Redis takes it, in one of three formats:
 *
 *   roomcast  PUBLISH <prefix>:room:<ns>:<room> {"event":"bench","data":{"t":...,"pad":"..."}}
 *             (docs/redis.md)
 *   emitter   PUBLISH socket.io#<ns>#<room># with the msgpack message @socket.io/redis-emitter 5.x
 *             writes for io.to(room).emit("bench", {...}) (the adapter's msgpack layout, docs/redis.md):
 *             ["emitter", {type:2, data:["bench",{t,pad}], nsp}, {rooms:[room], flags:{}, except:[]}]
 *             Byte for byte what the emitter writes for an integral t (uint64 once t >= 2^32;
 *             notepack.io decodes it to a JS number, exact below 2^53 ns = 104 days of uptime).
 *   api       POST /api/publish {"ns":..,"room":..,"event":"bench","data":{...}} on a roomcast
 *             node with Authorization: Bearer <key>, one request at a time on a keep-alive
 *             connection (the fallback while a node runs without Redis).
 *
 * --cluster: --redis names one node of a Redis Cluster; the publisher reads CLUSTER SLOTS, connects
 * to every master and sends each roomcast message as SPUBLISH to the master of its channel's slot
 * (CRC16 of the name, or of its {hash tag}, modulo 16384; docs/redis.md "Redis Cluster").
 *
 * Redis commands are pipelined in batches of up to 256 (hiredis, blocking). Message i goes to
 * room --room, or to "<prefix><i % R>" with --rooms R. The delivered Socket.IO frame is about
 * 100 bytes with the default --pad 60.
 *
 * Prints one JSON object: published, receivers (sum of PUBLISH replies: subscribed connections
 * that got each message), seconds, rate and its own CPU time.
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { F_ROOMCAST, F_EMITTER, F_API };

static struct {
    const char *redis_host;
    int redis_port;
    int format;
    const char *room;
    unsigned rooms;
    const char *room_prefix;
    const char *ns;
    const char *prefix;
    unsigned long long count;
    double rate;
    double duration;
    int pad;
    const char *api_host;
    int api_port;
    const char *api_key;
    int cluster;
} O = {
    .redis_host = "127.0.0.1", .redis_port = 6379, .format = F_ROOMCAST, .room = "all",
    .room_prefix = "r", .ns = "/", .prefix = "roomcast", .count = 100, .pad = 60,
    .api_host = "127.0.0.1", .api_port = 3000,
};

static char padbuf[4096];

typedef struct buf {
    char d[8192];
    size_t n;
} buf;

static void put(buf *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->d)
        abort();
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put1(buf *b, uint8_t v)
{
    put(b, &v, 1);
}

/* msgpack string: fixstr, str8 or str16 */
static void mp_str(buf *b, const char *s, size_t n)
{
    if (n < 32) {
        put1(b, (uint8_t)(0xa0 | n));
    } else if (n < 256) {
        put1(b, 0xd9);
        put1(b, (uint8_t)n);
    } else {
        put1(b, 0xda);
        put1(b, (uint8_t)(n >> 8));
        put1(b, (uint8_t)n);
    }
    put(b, s, n);
}

static void mp_cstr(buf *b, const char *s)
{
    mp_str(b, s, strlen(s));
}

/* msgpack unsigned integer in its smallest form, as notepack.io writes an integral JS number */
static void mp_uint(buf *b, uint64_t v)
{
    int bytes;
    if (v < 128) {
        put1(b, (uint8_t)v);
        return;
    } else if (v < 0x100) {
        put1(b, 0xcc);
        bytes = 1;
    } else if (v < 0x10000) {
        put1(b, 0xcd);
        bytes = 2;
    } else if (v < 0x100000000ull) {
        put1(b, 0xce);
        bytes = 4;
    } else {
        put1(b, 0xcf);
        bytes = 8;
    }
    for (int i = bytes - 1; i >= 0; i--)
        put1(b, (uint8_t)(v >> (i * 8)));
}

static void room_name(char *out, size_t cap, unsigned long long i)
{
    if (O.rooms > 0)
        snprintf(out, cap, "%s%llu", O.room_prefix, i % O.rooms);
    else
        snprintf(out, cap, "%s", O.room);
}

/* Builds channel and message for message i. */
static void build(unsigned long long i, buf *ch, buf *msg)
{
    char room[256];
    room_name(room, sizeof room, i);
    uint64_t t = bu_now_ns();
    ch->n = msg->n = 0;
    if (O.format == F_EMITTER) {
        char tmp[512];
        int n = snprintf(tmp, sizeof tmp, "socket.io#%s#%s#", O.ns, room);
        put(ch, tmp, (size_t)n);
        put1(msg, 0x93);
        mp_cstr(msg, "emitter");
        put1(msg, 0x83);
        mp_cstr(msg, "type");
        put1(msg, 0x02);
        mp_cstr(msg, "data");
        put1(msg, 0x92);
        mp_cstr(msg, "bench");
        put1(msg, 0x82);
        mp_cstr(msg, "t");
        mp_uint(msg, t);
        mp_cstr(msg, "pad");
        mp_str(msg, padbuf, (size_t)O.pad);
        mp_cstr(msg, "nsp");
        mp_cstr(msg, O.ns);
        put1(msg, 0x83);
        mp_cstr(msg, "rooms");
        put1(msg, 0x91);
        mp_cstr(msg, room);
        mp_cstr(msg, "flags");
        put1(msg, 0x80);
        mp_cstr(msg, "except");
        put1(msg, 0x90);
        return;
    }
    char tmp[4096 + 512];
    int n;
    if (O.format == F_ROOMCAST) {
        n = snprintf(tmp, sizeof tmp, "%s:room:%s:%s", O.prefix, O.ns, room);
        put(ch, tmp, (size_t)n);
        n = snprintf(tmp, sizeof tmp, "{\"event\":\"bench\",\"data\":{\"t\":%llu,\"pad\":\"%s\"}}",
                     (unsigned long long)t, padbuf);
    } else {
        n = snprintf(tmp, sizeof tmp,
                     "{\"ns\":\"%s\",\"room\":\"%s\",\"event\":\"bench\",\"data\":{\"t\":%llu,"
                     "\"pad\":\"%s\"}}",
                     O.ns, room, (unsigned long long)t, padbuf);
    }
    put(msg, tmp, (size_t)n);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* How many messages may have been sent by now (all of them without a rate). */
static unsigned long long due(uint64_t t0)
{
    if (O.rate <= 0)
        return O.count;
    unsigned long long d = (unsigned long long)(O.rate * (double)(bu_now_ns() - t0) / 1e9) + 1;
    return d < O.count ? d : O.count;
}

static int run_redis(unsigned long long *receivers)
{
    redisContext *rc = redisConnect(O.redis_host, O.redis_port);
    if (!rc || rc->err) {
        fprintf(stderr, "publisher: redis %s:%d: %s\n", O.redis_host, O.redis_port,
                rc ? rc->errstr : "out of memory");
        return -1;
    }
    static buf ch, msg;
    uint64_t t0 = bu_now_ns();
    unsigned long long sent = 0;
    while (sent < O.count) {
        unsigned long long d = due(t0);
        if (d <= sent) {
            sleep_ns(O.rate > 2000 ? 200000 : (uint64_t)(1e9 / O.rate / 2));
            continue;
        }
        unsigned long long batch = d - sent > 256 ? 256 : d - sent;
        for (unsigned long long k = 0; k < batch; k++) {
            build(sent + k, &ch, &msg);
            redisAppendCommand(rc, "PUBLISH %b %b", ch.d, ch.n, msg.d, msg.n);
        }
        for (unsigned long long k = 0; k < batch; k++) {
            redisReply *r = NULL;
            if (redisGetReply(rc, (void **)&r) != REDIS_OK || !r) {
                fprintf(stderr, "publisher: redis: %s\n", rc->errstr);
                redisFree(rc);
                return -1;
            }
            if (r->type == REDIS_REPLY_INTEGER)
                *receivers += (unsigned long long)r->integer;
            freeReplyObject(r);
        }
        sent += batch;
    }
    redisFree(rc);
    return 0;
}

/* ---- --cluster: SPUBLISH to the master of each channel's slot ---- */

static uint16_t crc16(const char *p, size_t n)
{
    uint16_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            c = (uint16_t)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
    }
    return c;
}

static uint16_t key_slot(const char *k, size_t n)
{
    const char *o = memchr(k, '{', n);
    if (o) {
        const char *c = memchr(o + 1, '}', n - (size_t)(o + 1 - k));
        if (c && c > o + 1)
            return crc16(o + 1, (size_t)(c - o - 1)) & 16383;
    }
    return crc16(k, n) & 16383;
}

enum { MAX_MASTERS = 16 };

static int run_cluster(unsigned long long *receivers)
{
    static int8_t owner[16384];
    redisContext *m[MAX_MASTERS];
    int ports[MAX_MASTERS], nm = 0;
    char hosts[MAX_MASTERS][64];
    redisContext *seed = redisConnect(O.redis_host, O.redis_port);
    redisReply *slots = seed && !seed->err ? redisCommand(seed, "CLUSTER SLOTS") : NULL;
    if (!slots || slots->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "publisher: CLUSTER SLOTS on %s:%d failed\n", O.redis_host, O.redis_port);
        return -1;
    }
    memset(owner, -1, sizeof owner);
    for (size_t i = 0; i < slots->elements; i++) {
        redisReply *e = slots->element[i], *nd = e->element[2];
        const char *h = nd->element[0]->len ? nd->element[0]->str : O.redis_host;
        int port = (int)nd->element[1]->integer, k;
        for (k = 0; k < nm; k++)
            if (ports[k] == port && !strcmp(hosts[k], h))
                break;
        if (k == nm) {
            if (nm == MAX_MASTERS)
                return -1;
            snprintf(hosts[nm], sizeof hosts[nm], "%s", h);
            ports[nm] = port;
            m[nm] = redisConnect(h, port);
            if (!m[nm] || m[nm]->err) {
                fprintf(stderr, "publisher: master %s:%d unreachable\n", h, port);
                return -1;
            }
            nm++;
        }
        for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
            owner[s] = (int8_t)k;
    }
    freeReplyObject(slots);
    redisFree(seed);
    static buf ch, msg;
    unsigned pending[MAX_MASTERS];
    uint64_t t0 = bu_now_ns();
    unsigned long long sent = 0;
    while (sent < O.count) {
        unsigned long long d = due(t0);
        if (d <= sent) {
            sleep_ns(O.rate > 2000 ? 200000 : (uint64_t)(1e9 / O.rate / 2));
            continue;
        }
        unsigned long long batch = d - sent > 256 ? 256 : d - sent;
        memset(pending, 0, sizeof pending);
        for (unsigned long long k = 0; k < batch; k++) {
            build(sent + k, &ch, &msg);
            int o = owner[key_slot(ch.d, ch.n)];
            if (o < 0)
                return -1;
            redisAppendCommand(m[o], "SPUBLISH %b %b", ch.d, ch.n, msg.d, msg.n);
            pending[o]++;
        }
        for (int o = 0; o < nm; o++) {
            for (unsigned k = 0; k < pending[o]; k++) {
                redisReply *r = NULL;
                if (redisGetReply(m[o], (void **)&r) != REDIS_OK || !r) {
                    fprintf(stderr, "publisher: redis: %s\n", m[o]->errstr);
                    return -1;
                }
                if (r->type == REDIS_REPLY_INTEGER)
                    *receivers += (unsigned long long)r->integer;
                else if (r->type == REDIS_REPLY_ERROR && sent == 0 && k == 0)
                    fprintf(stderr, "publisher: %s\n", r->str);
                freeReplyObject(r);
            }
        }
        sent += batch;
    }
    for (int o = 0; o < nm; o++)
        redisFree(m[o]);
    return 0;
}

/* POST /api/publish, one request in flight on a keep-alive connection. */
static int run_api(unsigned long long *accepted)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.api_port)};
    inet_pton(AF_INET, O.api_host, &a.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("publisher: connect api");
        return -1;
    }
    static buf ch, msg;
    static char req[16384], resp[65536];
    uint64_t t0 = bu_now_ns();
    size_t rlen = 0;
    for (unsigned long long i = 0; i < O.count; i++) {
        while (due(t0) <= i)
            sleep_ns(O.rate > 2000 ? 200000 : (uint64_t)(1e9 / O.rate / 2));
        build(i, &ch, &msg);
        int n = snprintf(req, sizeof req,
                         "POST /api/publish HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%.*s",
                         O.api_host, O.api_port, O.api_key ? O.api_key : "", msg.n, (int)msg.n,
                         msg.d);
        if (write(fd, req, (size_t)n) != n) {
            perror("publisher: write api");
            return -1;
        }
        /* one response: head, then Content-Length bytes */
        for (;;) {
            char *eoh = memmem(resp, rlen, "\r\n\r\n", 4);
            if (eoh) {
                size_t head = (size_t)(eoh + 4 - resp), body = 0;
                char *cl = memmem(resp, head, "Content-Length:", 15);
                if (!cl)
                    cl = memmem(resp, head, "content-length:", 15);
                if (cl)
                    body = strtoul(cl + 15, NULL, 10);
                if (rlen >= head + body) {
                    if (rlen > 12 && resp[9] == '2')
                        (*accepted)++;
                    else if (i == 0)
                        fprintf(stderr, "publisher: api answered %.*s\n", (int)(head + body), resp);
                    memmove(resp, resp + head + body, rlen - head - body);
                    rlen -= head + body;
                    break;
                }
            }
            ssize_t r = read(fd, resp + rlen, sizeof resp - rlen);
            if (r <= 0) {
                fprintf(stderr, "publisher: api connection closed\n");
                return -1;
            }
            rlen += (size_t)r;
        }
    }
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: publisher [options]\n"
            "  --redis HOST:PORT    (127.0.0.1:6379)\n"
            "  --format F           roomcast | emitter | api (roomcast)\n"
            "  --room NAME          target room (all)\n"
            "  --rooms R            message i goes to <room-prefix><i %% R> instead\n"
            "  --room-prefix S      (r)\n"
            "  --ns NS              namespace (/)\n"
            "  --prefix P           roomcast channel prefix (roomcast)\n"
            "  --count N            messages (100)\n"
            "  --rate R             messages/s (0: as fast as possible)\n"
            "  --duration S         with --rate: count = rate * S\n"
            "  --pad N              pad string length (60)\n"
            "  --api HOST:PORT      roomcast node for --format api (127.0.0.1:3000)\n"
            "  --api-key K          its ROOMCAST_API_KEY\n"
            "  --cluster            --redis is a Redis Cluster node: SPUBLISH to each slot's master\n");
}

static int host_port(const char *s, const char **host, int *port)
{
    static char hb[2][128];
    static int which;
    char *h = hb[which++ & 1];
    snprintf(h, 128, "%s", s);
    char *c = strrchr(h, ':');
    if (!c)
        return -1;
    *c = '\0';
    *host = h;
    *port = atoi(c + 1);
    return *port > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"redis", 1, 0, 'r'}, {"format", 1, 0, 'f'}, {"room", 1, 0, 'm'},
        {"rooms", 1, 0, 'R'}, {"room-prefix", 1, 0, 'x'}, {"ns", 1, 0, 'n'},
        {"prefix", 1, 0, 'p'}, {"count", 1, 0, 'c'}, {"rate", 1, 0, 't'},
        {"duration", 1, 0, 'd'}, {"pad", 1, 0, 'P'}, {"api", 1, 0, 'a'},
        {"api-key", 1, 0, 'k'}, {"json", 0, 0, 'J'}, {"cluster", 0, 0, 'C'}, {"help", 0, 0, '?'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'r':
            if (host_port(optarg, &O.redis_host, &O.redis_port) < 0) {
                usage();
                return 2;
            }
            break;
        case 'f':
            if (!strcmp(optarg, "roomcast"))
                O.format = F_ROOMCAST;
            else if (!strcmp(optarg, "emitter"))
                O.format = F_EMITTER;
            else if (!strcmp(optarg, "api"))
                O.format = F_API;
            else {
                usage();
                return 2;
            }
            break;
        case 'm': O.room = optarg; break;
        case 'R': O.rooms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'x': O.room_prefix = optarg; break;
        case 'n': O.ns = optarg; break;
        case 'p': O.prefix = optarg; break;
        case 'c': O.count = strtoull(optarg, NULL, 10); break;
        case 't': O.rate = atof(optarg); break;
        case 'd': O.duration = atof(optarg); break;
        case 'P': O.pad = atoi(optarg); break;
        case 'a':
            if (host_port(optarg, &O.api_host, &O.api_port) < 0) {
                usage();
                return 2;
            }
            break;
        case 'k': O.api_key = optarg; break;
        case 'J': break;
        case 'C': O.cluster = 1; break;
        default: usage(); return 2;
        }
    }
    if (O.pad < 0 || O.pad >= (int)sizeof padbuf - 1) {
        usage();
        return 2;
    }
    memset(padbuf, 'x', (size_t)O.pad);
    if (O.duration > 0 && O.rate > 0)
        O.count = (unsigned long long)(O.rate * O.duration);

    unsigned long long receivers = 0;
    uint64_t t0 = bu_now_ns();
    int rc = O.format == F_API ? run_api(&receivers)
             : O.cluster         ? run_cluster(&receivers)
                                 : run_redis(&receivers);
    double secs = (bu_now_ns() - t0) / 1e9;
    if (rc < 0)
        return 1;
    printf("{\"published\":%llu,\"receivers\":%llu,\"secs\":%.3f,\"rate\":%.1f,\"cpu_s\":%.3f,"
           "\"format\":\"%s\"}\n",
           O.count, receivers, secs, secs > 0 ? O.count / secs : 0, bu_cpu_self(),
           O.format == F_EMITTER ? "emitter" : O.format == F_API ? "api" : "roomcast");
    return 0;
}
