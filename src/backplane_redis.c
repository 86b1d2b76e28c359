/*
 * backplane_redis.c: the Redis pub/sub backplane (hiredis async on the node's libevent loop).
 * Contract: include/roomcast/backplane.h. Channels, payloads and metrics: docs/redis.md.
 *
 * What it is for: carrying room and namespace traffic between nodes and from backends, with one
 * Redis channel per room that has local members (P2: a node never receives traffic for rooms it
 * has no member of), and readiness that is true only while delivery demonstrably works (P1).
 *
 * Two connections (bp_conn), each its own small state machine:
 *
 *     CLOSED --conn_open--> CONNECTING --handshake replied--> CONNECTED
 *        ^                      |                                 |
 *        +------ conn_close (we) or on_connect(err)/on_disconnect (hiredis) ---+
 *
 *   - sub: AUTH, SELECT, CLIENT SETNAME, then only SUBSCRIBE/UNSUBSCRIBE; receives messages.
 *   - cmd: AUTH, SELECT, CLIENT SETNAME, then PUBLISH (pipelined: never waits for a reply).
 *   The handshake is queued right after connect, before anything else; CONNECTED means Redis
 *   answered it (a TCP connect to a stopped Redis succeeds, so it proves nothing).
 *
 * Over them, the backplane's phase (bp->phase):
 *
 *   WAITING --retry timer--> RESOLVING --address--> CONNECTING --both CONNECTED--> SYNCING
 *      ^                                                                              |
 *      |                               canary received after resubscribe confirmed    v
 *      +----------------- any failure (bp_fail: both closed, backoff) <----------- UP
 *
 *   - RESOLVING is skipped for a numeric host; a name is resolved with glibc getaddrinfo_a so a
 *     slow or dead DNS server never blocks the event loop.
 *   - SYNCING: the sub connection resubscribes every wanted channel (batched), then SUBSCRIBEs
 *     the canary channel last; its confirmation proves every earlier SUBSCRIBE was processed.
 *     Then one canary PUBLISH on cmd must come back on sub. Only then UP and on_state(1).
 *   - UP: a canary every CANARY_INTERVAL_MS; a canary not back within CANARY_TIMEOUT_MS, a
 *     command unanswered for COMMAND_TIMEOUT_MS, an error reply to AUTH/SELECT/SUBSCRIBE, or
 *     either connection closing => bp_fail: on_state(0) (if it was UP), both connections torn
 *     down, retry after a jittered exponential backoff (BACKOFF_MIN_MS doubling to
 *     BACKOFF_MAX_MS, reset once UP). Phases other than UP have a deadline too (connect, sync).
 *   - One failure tears down both connections on purpose: one recovery path to test, and a
 *     half-working pair (publishing but deaf) is exactly what P1 warns about.
 *
 * Subscriptions: the backplane owns the set of channels it wants (bp->chans: bp_chan entries
 * with `wanted` = the node's wish, `sent` = what the sub connection was last told). room_open,
 * room_close and ns_open only flip `wanted` and put the entry on the dirty list; one flush per
 * loop turn (an event made active, so it runs after the callbacks already queued) sends the net
 * difference as one UNSUBSCRIBE and one SUBSCRIBE of up to SUB_BATCH channels each. Open, close,
 * open again within a turn costs nothing; an entry neither wanted nor sent is freed by the flush.
 *
 * Callbacks: on_message, on_raw and on_state run only from loop callbacks (hiredis I/O, the
 * timers, the flush event), never from inside publish/room_open/room_close/ns_open/new/free
 * (STYLE 15). free must not be called from inside any callback of ours (asserted).
 *
 * Modules (redis_cmd.h: presence, jobs) share the two connections. rc_redis_command and
 * rc_redis_eval go on the cmd connection through the same in-flight ring as PUBLISH, so they get
 * the same backlog bounds and the same COMMAND_TIMEOUT_MS (a stuck reply tears everything down
 * like any other). Each ring entry of a module command carries its callback; when a connection
 * goes away, those entries move to bp->failed and are answered with reply NULL from fail_ev (the
 * loop), in the order they were sent; free answers them NULL on the spot. Scripts: the first call
 * of a script on a connection goes as EVAL (Redis caches it), later ones as EVALSHA pipelined
 * behind it, so a Redis that restarted empty never answers NOSCRIPT to a burst of calls; a
 * NOSCRIPT that still comes (SCRIPT FLUSH) is retried once as EVAL from a copy of the arguments
 * kept with the ring entry (the retry then runs after whatever was pipelined behind the first
 * attempt). Raw channels are bp_chan entries with raw_refs > 0 (ns NULL): subscribed, batched,
 * resubscribed and freed exactly like room channels, delivered to on_raw without parsing.
 *
 * What it does not do: no Redis Cluster / Sentinel / TLS / unix sockets; no queueing while down
 * (publish returns -1 and the caller reports the error); delivery is at most once (a publish
 * accepted just before a failure may be lost with the connection); no timeout on individual SUBSCRIBE
 * replies (the canary covers a deaf subscription); no retry of a failed PUBLISH. Numbers in
 * received "args"/"data" pass through cJSON, so integers beyond 2^53 lose precision.
 *
 * Ownership: rc_backplane_redis_new copies what it needs from cfg and cb. Every hiredis context
 * belongs to its bp_conn; hiredis callbacks get the bp_conn and ignore a context that is no
 * longer conn->ac, so contexts being freed (by us or by hiredis) never reach freed state.
 *
 * API in call order: rc_backplane_redis_new -> ns_open/room_open/room_close/publish and the
 * redis_cmd.h calls (any order) -> write_metrics when scraped -> free.
 */
#include "roomcast/backplane.h"

#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/hmap.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/redis_url.h"

#include <arpa/inet.h>
#include <assert.h>
#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Timing. Detection of a silent subscription is bounded by CANARY_INTERVAL_MS + CANARY_TIMEOUT_MS
 * (+ one TICK_MS); a dead connection (EOF, RST) is detected at once. */
static const uint64_t CONNECT_TIMEOUT_MS = 2000; /* DNS + TCP connect + handshake replies */
static const uint64_t COMMAND_TIMEOUT_MS = 3000; /* oldest unanswered command; resync */
static const uint64_t CANARY_INTERVAL_MS = 1000; /* a canary PUBLISH this often while UP */
static const uint64_t CANARY_TIMEOUT_MS = 2000;  /* ... must come back on sub within this */
/* ... unless the sub connection is visibly delivering (messages arrived since the canary was
 * sent): then the canary is only queued behind a backlog, and gets up to this long. */
static const uint64_t CANARY_BUSY_MAX_MS = 30000;
static const uint64_t TICK_MS = 100;             /* timeout checks run this often */
static const uint64_t BACKOFF_MIN_MS = 100;      /* first retry after a failure, doubling ... */
static const uint64_t BACKOFF_MAX_MS = 5000;     /* ... up to this; each delay jittered to [d/2, d] */
static const uint64_t RESOLVE_POLL_MS = 5;       /* getaddrinfo_a completion polling */
/* Bounds on the command connection's backlog (STYLE 21): over either, publish returns -1. */
static const size_t MAX_INFLIGHT = 65536;               /* commands sent, reply not yet read */
static const size_t MAX_OUTPUT_BYTES = 32u * 1024 * 1024; /* hiredis output buffer not yet written */
enum { SUB_BATCH = 512 };                               /* channels per SUBSCRIBE/UNSUBSCRIBE */

enum conn_state { CONN_CLOSED = 0, CONN_CONNECTING, CONN_CONNECTED };
enum conn_role { ROLE_SUB = 0, ROLE_CMD };
enum cmd_kind { CMD_AUTH = 0, CMD_SELECT, CMD_SETNAME, CMD_PUBLISH, CMD_CANARY, CMD_USER, CMD_EVAL };
enum bp_phase { BP_WAITING = 0, BP_RESOLVING, BP_CONNECTING, BP_SYNCING, BP_UP, BP_CLOSED };

static const char *const phase_names[] = {"waiting", "resolving", "connecting", "syncing", "up",
                                          "closed"};

struct redis_bp;

/* A script call kept until answered, so that a NOSCRIPT reply can be retried as EVAL: one
 * allocation holding the arguments after "EVALSHA sha nkeys". */
typedef struct bp_eval {
    const char *source;       /* the script's Lua text (static, per redis_cmd.h) */
    char sha[41];
    int nkeys, argc;
    int retried;              /* already sent again as EVAL once */
    const char **argv;        /* into the same allocation */
    size_t *argvlen;
} bp_eval;

/* A regular command sent on a connection whose reply has not been read yet. hiredis answers a
 * connection's regular commands in order, so the oldest is at ring[head]. */
typedef struct bp_inflight {
    uint64_t sent_ns;
    int kind;                 /* enum cmd_kind */
    rc_redis_reply_fn cb;     /* CMD_USER / CMD_EVAL: the module's callback and its argument */
    void *arg;
    bp_eval *ev;              /* CMD_EVAL */
} bp_inflight;

typedef struct bp_conn {
    struct redis_bp *bp;
    redisAsyncContext *ac;  /* NULL unless CONNECTING or CONNECTED */
    int role;               /* enum conn_role */
    int state;              /* enum conn_state */
    int handshake_left;     /* handshake replies still expected while CONNECTING */
    bp_inflight *ring;      /* power-of-two capacity, grown on demand up to MAX_INFLIGHT */
    size_t ring_cap, ring_head, ring_len;
} bp_conn;

/* One channel the backplane wants or has told Redis about. */
typedef struct bp_chan {
    rc_hmap_node node;        /* in bp->chans, key = name */
    struct bp_chan *dirty_next;
    const char *ns;           /* into name[] */
    const char *room;         /* into name[]; NULL for a namespace channel */
    size_t len;               /* strlen(name) */
    uint32_t raw_refs;        /* rc_redis_channel_open count (raw channel; ns is NULL then) */
    unsigned wanted : 1;      /* the node has local members (room) or serves it (ns) */
    unsigned sent : 1;        /* the current sub connection was last told SUBSCRIBE */
    unsigned dirty : 1;       /* on bp->dirty */
    unsigned pattern : 1;     /* a raw name ending in '*': PSUBSCRIBE, delivered as pmessage */
    char name[];              /* "<channel>\0<ns>\0<room>\0" */
} bp_chan;

typedef struct bp_buf {
    char *p;
    size_t len, cap;
} bp_buf;

typedef struct bp_resolve {
    struct gaicb req;
    struct addrinfo hints;
} bp_resolve;

typedef struct redis_bp {
    rc_backplane super;
    struct event_base *base;
    rc_backplane_callbacks cb;
    int in_callback;             /* > 0 while on_message/on_state run */

    rc_redis_url url;
    int numeric_host;            /* no DNS needed */
    char *prefix, *node_id;
    char *canary_channel;
    char *client_name[2];        /* CLIENT SETNAME per role */

    int phase;                   /* enum bp_phase */
    uint64_t deadline_ms;        /* RESOLVING/CONNECTING/SYNCING must end by then */
    uint64_t backoff_ms;         /* last backoff step; 0 after UP */
    int attempts;                /* connection attempts started */
    bp_resolve *resolve;         /* in-flight getaddrinfo_a, possibly from an earlier attempt */
    bp_conn sub, cmd;
    int sub_synced;              /* canary SUBSCRIBE confirmed on the current sub connection */
    /* Subscription barrier (when_subscribed): channels sent in SUBSCRIBE commands and confirmed
     * by Redis on the current sub connection (Redis confirms in order), and the waiters. */
    uint64_t subs_sent, subs_confirmed;
    struct sub_waiter *waiters;

    char canary_nonce[12];       /* random per instance: a node id used twice cannot fool us */
    uint64_t canary_seq;         /* last canary token sent: "<nonce>:<seq>" */
    int canary_pending;
    uint64_t canary_sent_ms, canary_next_ms, canary_sent_ns;
    uint64_t sub_last_push_ms;   /* the sub connection's last message or confirmation */
    uint64_t last_tick_ms;       /* when bp_on_tick last ran (a late tick = a busy loop) */

    rc_hmap chans;               /* bp_chan by channel name */
    bp_chan *dirty;              /* entries changed since the last flush */
    size_t nsubscribed;          /* entries with sent = 1 */
    int flush_scheduled;

    struct event *flush_ev, *tick_ev, *retry_ev, *fail_ev;
    bp_buf chan_buf, payload_buf;
    const char *argv[SUB_BATCH + 1];
    size_t argvlen[SUB_BATCH + 1];

    /* redis_cmd.h: module commands that lost their connection, answered NULL from fail_ev */
    bp_inflight *failed;
    size_t nfailed, failed_cap;
    /* scripts sent with EVAL on the current cmd connection (later calls go as EVALSHA) */
    char (*loaded)[41];
    size_t nloaded, loaded_cap;
    const char **eargv;          /* scratch argument vector for EVAL/EVALSHA */
    size_t *eargvlen;
    size_t eargv_cap;

    /* metrics */
    uint64_t reconnects, publishes, publish_failures, received, invalid, own, canary_failures,
        commands, command_timeouts, module_commands, module_errors, noscript, raw_received;
    double canary_lag_s;
    rc_histogram publish_latency;
} redis_bp;

static void bp_fail(redis_bp *bp, const char *reason);
static void bp_schedule_flush(redis_bp *bp);
static void bp_flush(redis_bp *bp);
static void sub_on_push(redisAsyncContext *ac, void *r, void *privdata);

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t rand_below(uint64_t n)
{
    uint64_t r;
    rc_random_bytes(&r, sizeof(r));
    return n ? r % n : 0;
}

static struct timeval ms_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static void buf_reserve(bp_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = rc_realloc(b->p, cap);
    b->cap = cap;
}

static void buf_put(bp_buf *b, const void *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(bp_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Drops a buffer that one large message grew, so idle nodes do not keep it. */
static void buf_trim(bp_buf *b)
{
    if (b->cap > 256 * 1024) {
        rc_free(b->p);
        memset(b, 0, sizeof(*b));
    }
}

/* A JSON string literal: quotes, backslashes and control characters escaped, other bytes (UTF-8
 * included) copied in runs. */
static void buf_put_jstr(bp_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *run = p;
    buf_put(b, "\"", 1);
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\') continue;
        buf_put(b, run, (size_t)(p - run));
        run = p + 1;
        const char *shortesc = *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : *p == '\n' ? "\\n"
                             : *p == '\r' ? "\\r" : *p == '\t' ? "\\t" : NULL;
        if (shortesc) {
            buf_put(b, shortesc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            buf_put(b, esc, 6);
        }
    }
    buf_put(b, run, (size_t)(p - run));
    buf_put(b, "\"", 1);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void buf_put_base64(bp_buf *b, const uint8_t *d, size_t n)
{
    buf_reserve(b, (n + 2) / 3 * 4);
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes padded standard base64 into out (room for len/4*3 bytes); -1 when malformed. */
static long base64_decode(const char *s, size_t len, uint8_t *out)
{
    size_t o = 0;
    if (len % 4) return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(c)) < 0) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
    }
    return (long)o;
}

/* Namespaces start with '/' and never contain ':', so "<P>:room:<ns>:<room>" splits at the
 * first ':' after "<P>:room:" and a room name may itself contain ':' ("meeting:42"). */
static int ns_valid(const char *ns)
{
    return ns && ns[0] == '/' && !strchr(ns, ':');
}

/* Writes the channel of (ns, room) into b: P:room:<ns>:<room>, or P:ns:<ns> when room is NULL. */
static void channel_build(const redis_bp *bp, bp_buf *b, const char *ns, const char *room)
{
    b->len = 0;
    buf_puts(b, bp->prefix);
    buf_puts(b, room ? ":room:" : ":ns:");
    buf_puts(b, ns);
    if (room) {
        buf_put(b, ":", 1);
        buf_puts(b, room);
    }
}

/* ---- commands and the in-flight ring ---------------------------------------------------- */

static void ring_reset(bp_conn *c)
{
    c->ring_head = c->ring_len = 0;
}

static int ring_push(bp_conn *c, int kind, rc_redis_reply_fn cb, void *arg, bp_eval *ev)
{
    if (c->ring_len == c->ring_cap) {
        if (c->ring_cap >= MAX_INFLIGHT) return -1;
        size_t cap = c->ring_cap ? c->ring_cap * 2 : 64;
        bp_inflight *r = rc_malloc(cap * sizeof(*r));
        for (size_t i = 0; i < c->ring_len; i++)
            r[i] = c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        rc_free(c->ring);
        c->ring = r;
        c->ring_cap = cap;
        c->ring_head = 0;
    }
    bp_inflight *f = &c->ring[(c->ring_head + c->ring_len) & (c->ring_cap - 1)];
    f->sent_ns = rc_now_mono_ns();
    f->kind = kind;
    f->cb = cb;
    f->arg = arg;
    f->ev = ev;
    c->ring_len++;
    return 0;
}

static bp_inflight ring_pop(bp_conn *c)
{
    assert(c->ring_len > 0);
    bp_inflight f = c->ring[c->ring_head];
    c->ring_head = (c->ring_head + 1) & (c->ring_cap - 1);
    c->ring_len--;
    return f;
}

static void conn_on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Sends a regular command (its reply goes to conn_on_reply). -1 when over a bound or refused.
 * cb/arg/ev are kept in the ring for module commands (CMD_USER, CMD_EVAL). */
static int conn_command_cb(bp_conn *c, int kind, rc_redis_reply_fn cb, void *arg, bp_eval *ev,
                           int argc, const char **argv, const size_t *argvlen)
{
    if (!c->ac) return -1;
    if (c->ring_len >= MAX_INFLIGHT || sdslen(c->ac->c.obuf) >= MAX_OUTPUT_BYTES) return -1;
    if (ring_push(c, kind, cb, arg, ev) != 0) return -1;
    if (redisAsyncCommandArgv(c->ac, conn_on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        c->ring_len--; /* undo the push */
        return -1;
    }
    c->bp->commands++;
    return 0;
}

static int conn_command(bp_conn *c, int kind, int argc, const char **argv, const size_t *argvlen)
{
    return conn_command_cb(c, kind, NULL, NULL, NULL, argc, argv, argvlen);
}

static void bp_on_fail_ev(evutil_socket_t fd, short what, void *arg);
static void bp_run_failed(redis_bp *bp);

/* The connection is going away with commands unanswered: the module commands among them are
 * queued to be answered with reply NULL from the loop (fail_ev), in the order they were sent. */
static void ring_abandon(bp_conn *c)
{
    redis_bp *bp = c->bp;
    size_t queued = 0;
    for (size_t i = 0; i < c->ring_len; i++) {
        bp_inflight *f = &c->ring[(c->ring_head + i) & (c->ring_cap - 1)];
        if (f->kind != CMD_USER && f->kind != CMD_EVAL) continue;
        if (bp->nfailed == bp->failed_cap) {
            bp->failed_cap = bp->failed_cap ? bp->failed_cap * 2 : 16;
            bp->failed = rc_realloc(bp->failed, bp->failed_cap * sizeof(*bp->failed));
        }
        bp->failed[bp->nfailed++] = *f;
        queued++;
    }
    ring_reset(c);
    if (c->role == ROLE_CMD) bp->nloaded = 0; /* a new connection may reach a Redis without them */
    if (queued && bp->fail_ev) event_active(bp->fail_ev, EV_TIMEOUT, 0);
}

/* SUBSCRIBE/UNSUBSCRIBE on the sub connection: replies arrive as pushes (sub_on_push). */
static int sub_command(redis_bp *bp, int argc)
{
    if (!bp->sub.ac) return -1;
    if (redisAsyncCommandArgv(bp->sub.ac, sub_on_push, &bp->sub, argc, bp->argv, bp->argvlen) !=
        REDIS_OK)
        return -1;
    bp->commands++;
    return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

/* We close: forget the context first, so every callback hiredis runs while freeing it (NULL
 * replies, on_disconnect) sees a stale context and returns. Inside one of this context's own
 * callbacks hiredis defers the free until the callback returns. */
static void conn_close(bp_conn *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->state = CONN_CLOSED;
    c->handshake_left = 0;
    ring_abandon(c);
    if (ac) redisAsyncFree(ac);
}

/* hiredis closed the context itself (it frees it after this returns): forget it, then fail. */
static void conn_lost(bp_conn *c, const char *reason)
{
    c->ac = NULL;
    c->state = CONN_CLOSED;
    c->handshake_left = 0;
    ring_abandon(c);
    bp_fail(c->bp, reason);
}

static void conn_on_connect(const redisAsyncContext *ac, int status)
{
    bp_conn *c = ac->data;
    if (ac != c->ac) return;
    if (status != REDIS_OK) {
        char reason[160];
        snprintf(reason, sizeof(reason), "connect failed: %s", ac->errstr ? ac->errstr : "?");
        conn_lost(c, reason);
        return;
    }
    /* TCP is up. Nothing else may happen here: hiredis does not guard this callback against a
     * free, and the handshake already waits in the output buffer. */
}

static void conn_on_disconnect(const redisAsyncContext *ac, int status)
{
    bp_conn *c = ac->data;
    if (ac != c->ac) return;
    char reason[160];
    snprintf(reason, sizeof(reason), "connection lost: %s", ac->errstr ? ac->errstr : "closed");
    conn_lost(c, reason);
}

static void bp_on_conn_ready(redis_bp *bp, bp_conn *c);

static int conn_open(bp_conn *c, const char *ip)
{
    redis_bp *bp = c->bp;
    const char *argv[3];
    size_t lens[3];
    char db[16];
    int argc, rc = 0;

    redisAsyncContext *ac = redisAsyncConnect(ip, bp->url.port);
    if (!ac) return -1;
    if (ac->err) {
        rc_log_warn("redis_connect_failed", "role=%s error=\"%s\"",
                    c->role == ROLE_SUB ? "sub" : "cmd", ac->errstr);
        redisAsyncFree(ac);
        return -1;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, bp->base) != REDIS_OK) {
        redisAsyncFree(ac);
        return -1;
    }
    redisAsyncSetConnectCallback(ac, conn_on_connect);
    redisAsyncSetDisconnectCallback(ac, conn_on_disconnect);
    c->ac = ac;
    c->state = CONN_CONNECTING;
    ring_reset(c);

    /* The handshake goes first in the output buffer; hiredis writes it once connected. */
    if (bp->url.password) {
        argc = 0;
        argv[argc++] = "AUTH";
        if (bp->url.user) argv[argc++] = bp->url.user;
        argv[argc++] = bp->url.password;
        for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
        rc |= conn_command(c, CMD_AUTH, argc, argv, lens);
    }
    if (bp->url.db) {
        snprintf(db, sizeof(db), "%d", bp->url.db);
        argv[0] = "SELECT";
        argv[1] = db;
        lens[0] = 6;
        lens[1] = strlen(db);
        rc |= conn_command(c, CMD_SELECT, 2, argv, lens);
    }
    argv[0] = "CLIENT";
    argv[1] = "SETNAME";
    argv[2] = bp->client_name[c->role];
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    rc |= conn_command(c, CMD_SETNAME, 3, argv, lens);
    c->handshake_left = (int)c->ring_len;
    return rc ? -1 : 0;
}

static void bp_on_publish_reply(redis_bp *bp, bp_inflight f, redisReply *reply)
{
    rc_histogram_observe(&bp->publish_latency, (double)(rc_now_mono_ns() - f.sent_ns) / 1e9);
    if (reply->type == REDIS_REPLY_ERROR) {
        bp->publish_failures++;
        rc_log_debug("redis_publish_error", "error=\"%s\"", reply->str);
    }
}

static void bp_on_module_reply(redis_bp *bp, bp_inflight f, const redisReply *reply);

static void conn_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    bp_conn *c = privdata;
    redis_bp *bp = c->bp;
    redisReply *reply = r;
    if (!reply || ac != c->ac) return; /* the context is being freed */

    bp_inflight f = ring_pop(c);
    switch (f.kind) {
    case CMD_AUTH:
    case CMD_SELECT:
        if (reply->type == REDIS_REPLY_ERROR) {
            char reason[200];
            snprintf(reason, sizeof(reason), "%s refused: %s", f.kind == CMD_AUTH ? "AUTH" : "SELECT",
                     reply->str);
            bp_fail(bp, reason);
            return;
        }
        c->handshake_left--;
        break;
    case CMD_SETNAME: /* a refusal (ACL) only costs the name in CLIENT LIST */
        c->handshake_left--;
        break;
    case CMD_PUBLISH:
        bp_on_publish_reply(bp, f, reply);
        return;
    case CMD_CANARY:
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
            /* nobody subscribed to our own canary channel: the sub connection is deaf */
            bp->canary_failures++;
            bp_fail(bp, "canary channel has no subscriber");
        } else if (reply->type == REDIS_REPLY_ERROR) {
            bp_fail(bp, "canary PUBLISH refused");
        }
        return;
    case CMD_USER:
    case CMD_EVAL:
        bp_on_module_reply(bp, f, reply);
        return;
    }
    if (c->state == CONN_CONNECTING && c->handshake_left == 0) {
        c->state = CONN_CONNECTED;
        bp_on_conn_ready(bp, c);
    }
}

/* ---- subscriptions ----------------------------------------------------------------------- */

static bp_chan *chan_new(const char *name, size_t len, const char *ns, const char *room)
{
    size_t nslen = strlen(ns), roomlen = room ? strlen(room) : 0;
    bp_chan *e = rc_calloc(1, sizeof(*e) + len + 1 + nslen + 1 + roomlen + 1);
    char *p = e->name;
    memcpy(p, name, len);
    p += len + 1;
    memcpy(p, ns, nslen);
    e->ns = p;
    p += nslen + 1;
    if (room) {
        memcpy(p, room, roomlen);
        e->room = p;
    }
    e->len = len;
    return e;
}

/* Subscribed while the node wants it as a room/namespace channel or a module holds it open. */
static int chan_wanted(const bp_chan *e)
{
    return e->wanted || e->raw_refs > 0;
}

static void chan_mark_dirty(redis_bp *bp, bp_chan *e)
{
    if (e->dirty) return;
    e->dirty = 1;
    e->dirty_next = bp->dirty;
    bp->dirty = e;
}

static void chan_set_wanted(redis_bp *bp, const char *ns, const char *room, int wanted)
{
    channel_build(bp, &bp->chan_buf, ns, room);
    rc_hmap_node *n = rc_hmap_find(&bp->chans, bp->chan_buf.p, bp->chan_buf.len);
    bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
    if (!e) {
        if (!wanted) return;
        e = chan_new(bp->chan_buf.p, bp->chan_buf.len, ns, room);
        rc_hmap_insert(&bp->chans, &e->node, e->name, e->len);
    }
    if (e->wanted == (unsigned)wanted) return;
    e->wanted = wanted ? 1 : 0;
    chan_mark_dirty(bp, e);
    bp_schedule_flush(bp);
}

/* ---- subscription barrier ------------------------------------------------------------------ */

typedef struct sub_waiter {
    struct sub_waiter *next;
    uint64_t target;             /* subs_sent at the flush after registration */
    int assigned;                /* target set (by that flush) */
    void (*cb)(void *arg, int live);
    void *arg;
} sub_waiter;

/* Runs the waiters whose target is reached (all of them when `all`). */
static void waiters_run(redis_bp *bp, int all)
{
    sub_waiter **pp = &bp->waiters, *ready = NULL;
    while (*pp) {
        sub_waiter *w = *pp;
        if (all || (w->assigned && w->target <= bp->subs_confirmed)) {
            *pp = w->next;
            w->next = ready;
            ready = w;
        } else {
            pp = &w->next;
        }
    }
    while (ready) {
        sub_waiter *w = ready;
        ready = w->next;
        w->cb(w->arg, 1);
        rc_free(w);
    }
}

/* Sends the dirty entries whose `sent` differs from `subscribe` as batched commands; channels
 * and patterns (PSUBSCRIBE) in separate passes. */
static int send_batches_of(redis_bp *bp, int subscribe, int patterns)
{
    int n = 0;
    bp->argv[0] = patterns ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE") : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    bp->argvlen[0] = strlen(bp->argv[0]);
    for (bp_chan *e = bp->dirty; e; e = e->dirty_next) {
        if (e->pattern != (unsigned)patterns) continue;
        if (chan_wanted(e) != subscribe || e->sent == (unsigned)subscribe) continue;
        bp->argv[++n] = e->name;
        bp->argvlen[n] = e->len;
        e->sent = subscribe ? 1 : 0;
        if (subscribe) {
            bp->nsubscribed++;
            bp->subs_sent++;
        } else {
            bp->nsubscribed--;
        }
        if (n == SUB_BATCH) {
            if (sub_command(bp, n + 1) != 0) return -1;
            n = 0;
            bp->argv[0] = patterns ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE") : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
            bp->argvlen[0] = strlen(bp->argv[0]);
        }
    }
    if (n && sub_command(bp, n + 1) != 0) return -1;
    return 0;
}

static int send_batches(redis_bp *bp, int subscribe)
{
    if (send_batches_of(bp, subscribe, 0) != 0) return -1;
    return send_batches_of(bp, subscribe, 1);
}

/* Sends the net changes (when the sub connection is CONNECTED; otherwise the next resync sends
 * every wanted channel) and frees entries that are neither wanted nor subscribed. */
static void bp_flush(redis_bp *bp)
{
    int rc = 0;
    if (bp->sub.state == CONN_CONNECTED) {
        rc = send_batches(bp, 0);
        if (rc == 0) rc = send_batches(bp, 1);
    }
    bp_chan *e = bp->dirty;
    bp->dirty = NULL;
    while (e) {
        bp_chan *next = e->dirty_next;
        e->dirty = 0;
        e->dirty_next = NULL;
        if (!chan_wanted(e) && !e->sent) {
            rc_hmap_remove(&bp->chans, &e->node);
            rc_free(e);
        }
        e = next;
    }
    /* Waiters registered before this flush wait for everything it sent. Without a live sub
     * connection nothing can be confirmed: let them go (the resync subscribes later). */
    for (sub_waiter *w = bp->waiters; w; w = w->next) {
        if (w->assigned) continue;
        w->assigned = 1;
        w->target = bp->subs_sent;
    }
    if (bp->sub.state != CONN_CONNECTED || rc != 0) waiters_run(bp, 1);
    else waiters_run(bp, 0);
    if (rc != 0) bp_fail(bp, "SUBSCRIBE could not be sent");
}

static void bp_on_flush_ev(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    bp->flush_scheduled = 0;
    bp_flush(bp);
}

static void bp_schedule_flush(redis_bp *bp)
{
    if (bp->flush_scheduled) return;
    bp->flush_scheduled = 1;
    event_active(bp->flush_ev, EV_TIMEOUT, 0);
}

/* A new sub connection: every entry is unsent; unwanted ones go, wanted ones are sent again. */
static void subs_reset(redis_bp *bp)
{
    waiters_run(bp, 1);
    bp->subs_sent = bp->subs_confirmed = 0;
    bp_chan *drop = NULL;
    for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
        bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
        e->sent = 0;
        e->dirty = 0;
        e->dirty_next = NULL;
        if (!chan_wanted(e)) {
            e->dirty_next = drop;
            drop = e;
        }
    }
    while (drop) {
        bp_chan *next = drop->dirty_next;
        rc_hmap_remove(&bp->chans, &drop->node);
        rc_free(drop);
        drop = next;
    }
    bp->dirty = NULL;
    bp->nsubscribed = 0;
    bp->sub_synced = 0;
}

/* The sub connection is CONNECTED: subscribe every wanted channel, then the canary channel, whose
 * confirmation comes after every earlier one. */
static void bp_resync(redis_bp *bp)
{
    for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
        bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
        if (chan_wanted(e)) chan_mark_dirty(bp, e);
    }
    bp_flush(bp);
    if (bp->phase == BP_WAITING) return; /* the flush failed */
    bp->argv[0] = "SUBSCRIBE";
    bp->argvlen[0] = 9;
    bp->argv[1] = bp->canary_channel;
    bp->argvlen[1] = strlen(bp->canary_channel);
    if (sub_command(bp, 2) != 0) bp_fail(bp, "SUBSCRIBE could not be sent");
}

/* ---- phases ------------------------------------------------------------------------------ */

static void bp_set_state(redis_bp *bp, int up)
{
    bp->in_callback++;
    if (bp->cb.on_state) bp->cb.on_state(bp->cb.arg, up);
    bp->in_callback--;
}

static void bp_send_canary(redis_bp *bp)
{
    char token[40];
    const char *argv[3] = {"PUBLISH", bp->canary_channel, token};
    size_t lens[3];
    uint64_t now = rc_now_mono_ms();

    snprintf(token, sizeof(token), "%s:%" PRIu64, bp->canary_nonce, ++bp->canary_seq);
    for (int i = 0; i < 3; i++) lens[i] = strlen(argv[i]);
    bp->canary_next_ms = now + CANARY_INTERVAL_MS;
    if (conn_command(&bp->cmd, CMD_CANARY, 3, argv, lens) != 0) return; /* the command timeout will tell */
    bp->canary_pending = 1;
    bp->canary_sent_ms = now;
    bp->canary_sent_ns = rc_now_mono_ns();
}

/* SYNCING: both connections answer and every subscription is confirmed -> one canary round trip. */
static void bp_maybe_probe(redis_bp *bp)
{
    if (bp->phase == BP_CONNECTING && bp->sub.state == CONN_CONNECTED &&
        bp->cmd.state == CONN_CONNECTED) {
        bp->phase = BP_SYNCING;
        bp->deadline_ms = rc_now_mono_ms() + COMMAND_TIMEOUT_MS + CANARY_TIMEOUT_MS;
    }
    if (bp->phase == BP_SYNCING && bp->sub_synced && !bp->canary_pending) bp_send_canary(bp);
}

static void bp_on_conn_ready(redis_bp *bp, bp_conn *c)
{
    if (c->role == ROLE_SUB) {
        bp_resync(bp);
        if (bp->phase == BP_WAITING) return;
    }
    bp_maybe_probe(bp);
}

static void bp_on_canary(redis_bp *bp, const char *payload, size_t len)
{
    char token[40];
    snprintf(token, sizeof(token), "%s:%" PRIu64, bp->canary_nonce, bp->canary_seq);
    if (!bp->canary_pending || len != strlen(token) || memcmp(payload, token, len) != 0) return;
    bp->canary_pending = 0;
    bp->canary_lag_s = (double)(rc_now_mono_ns() - bp->canary_sent_ns) / 1e9;
    if (bp->phase != BP_SYNCING) return;

    char url[300];
    bp->phase = BP_UP;
    bp->backoff_ms = 0;
    rc_log_info("redis_up", "url=%s channels=%zu canary_ms=%.1f",
                rc_redis_url_redacted(&bp->url, url, sizeof(url)), bp->nsubscribed,
                bp->canary_lag_s * 1000.0);
    bp_set_state(bp, 1);
}

static void bp_connect(redis_bp *bp, const char *ip)
{
    bp->phase = BP_CONNECTING;
    if (conn_open(&bp->sub, ip) != 0 || conn_open(&bp->cmd, ip) != 0)
        bp_fail(bp, "could not start connecting");
}

static void resolve_free(bp_resolve *res)
{
    if (res->req.ar_result) freeaddrinfo(res->req.ar_result);
    rc_free(res);
}

/* RESOLVING: polls getaddrinfo_a; prefers an IPv4 address, as hiredis itself does. */
static void bp_poll_resolve(redis_bp *bp)
{
    bp_resolve *res = bp->resolve;
    int err = gai_error(&res->req);
    if (err == EAI_INPROGRESS) {
        struct timeval tv = ms_tv(RESOLVE_POLL_MS);
        event_add(bp->retry_ev, &tv);
        return;
    }
    bp->resolve = NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    if (err == 0) {
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *ai = res->req.ar_result; ai; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET) {
                pick = ai;
                break;
            }
            if (!pick && ai->ai_family == AF_INET6) pick = ai;
        }
        if (pick && pick->ai_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, sizeof(ip));
        else if (pick)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip,
                      sizeof(ip));
    }
    resolve_free(res);
    if (!ip[0]) {
        char reason[160];
        snprintf(reason, sizeof(reason), "cannot resolve %s: %s", bp->url.host,
                 err ? gai_strerror(err) : "no address");
        bp_fail(bp, reason);
        return;
    }
    bp_connect(bp, ip);
}

static void bp_attempt_start(redis_bp *bp)
{
    if (bp->attempts++ > 0) bp->reconnects++;
    bp->deadline_ms = rc_now_mono_ms() + CONNECT_TIMEOUT_MS;
    if (bp->numeric_host) {
        bp_connect(bp, bp->url.host);
        return;
    }
    bp->phase = BP_RESOLVING;
    if (bp->resolve && gai_error(&bp->resolve->req) != EAI_INPROGRESS) {
        resolve_free(bp->resolve); /* a stale answer from an attempt that timed out */
        bp->resolve = NULL;
    }
    if (!bp->resolve) {
        bp_resolve *res = rc_calloc(1, sizeof(*res));
        struct gaicb *list[1] = {&res->req};
        res->hints.ai_family = AF_UNSPEC;
        res->hints.ai_socktype = SOCK_STREAM;
        res->req.ar_name = bp->url.host;
        res->req.ar_request = &res->hints;
        int err = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (err != 0) {
            rc_free(res);
            bp_fail(bp, "getaddrinfo_a failed");
            return;
        }
        bp->resolve = res;
    }
    bp_poll_resolve(bp);
}

static void bp_on_retry(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    if (bp->phase == BP_WAITING) bp_attempt_start(bp);
    else if (bp->phase == BP_RESOLVING && bp->resolve) bp_poll_resolve(bp);
}

/* Any failure: both connections down, subscriptions to be resent, retry after a backoff. */
static void bp_fail(redis_bp *bp, const char *reason)
{
    if (bp->phase == BP_WAITING || bp->phase == BP_CLOSED) return;
    int was_up = bp->phase == BP_UP;
    const char *phase = phase_names[bp->phase];

    conn_close(&bp->sub);
    conn_close(&bp->cmd);
    subs_reset(bp);
    bp->canary_pending = 0;
    bp->phase = BP_WAITING;

    uint64_t step = bp->backoff_ms ? bp->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (step > BACKOFF_MAX_MS) step = BACKOFF_MAX_MS;
    bp->backoff_ms = step;
    uint64_t delay = step / 2 + rand_below(step / 2 + 1);
    struct timeval tv = ms_tv(delay);
    event_add(bp->retry_ev, &tv);

    rc_log_warn("redis_down", "reason=\"%s\" phase=%s retry_ms=%" PRIu64, reason, phase, delay);
    if (was_up) bp_set_state(bp, 0);
}

static void bp_check_ring(redis_bp *bp, bp_conn *c, uint64_t now_ns)
{
    if (!c->ring_len || bp->phase == BP_WAITING) return;
    if (now_ns - c->ring[c->ring_head].sent_ns < COMMAND_TIMEOUT_MS * 1000000ull) return;
    bp->command_timeouts++;
    bp_fail(bp, c->role == ROLE_SUB ? "sub command timed out" : "command timed out");
}

static void bp_on_tick(evutil_socket_t fd, short what, void *arg)
{
    redis_bp *bp = arg;
    uint64_t now = rc_now_mono_ms();
    /* A tick that comes late means this loop was busy (a burst of deliveries): replies may be
     * waiting unread in our own sockets, so judge no timeout on this tick. */
    int late = bp->last_tick_ms && now - bp->last_tick_ms > 500;
    bp->last_tick_ms = now;
    if (late && bp->phase == BP_UP) return;

    switch (bp->phase) {
    case BP_RESOLVING:
    case BP_CONNECTING:
    case BP_SYNCING:
        if (now >= bp->deadline_ms) {
            if (bp->phase == BP_SYNCING && bp->canary_pending) bp->canary_failures++;
            bp_fail(bp, bp->phase == BP_SYNCING ? "resubscribe/canary timed out"
                                                : "connect timed out");
            return;
        }
        break;
    case BP_UP:
        if (bp->canary_pending && now - bp->canary_sent_ms >= CANARY_TIMEOUT_MS) {
            int delivering = bp->sub_last_push_ms >= bp->canary_sent_ms &&
                             now - bp->canary_sent_ms < CANARY_BUSY_MAX_MS;
            if (!delivering) {
                bp->canary_failures++;
                bp_fail(bp, "canary not received");
                return;
            }
        }
        if (!bp->canary_pending && now >= bp->canary_next_ms) bp_send_canary(bp);
        break;
    default:
        return;
    }
    uint64_t now_ns = rc_now_mono_ns();
    bp_check_ring(bp, &bp->cmd, now_ns);
    bp_check_ring(bp, &bp->sub, now_ns);
}

/* ---- receiving ----------------------------------------------------------------------------- */

static void bp_invalid(redis_bp *bp, const bp_chan *e, const char *why)
{
    bp->invalid++;
    rc_log_debug("redis_bad_message", "channel=\"%s\" reason=\"%s\"", e->name, why);
}

/* Parses an envelope (DESIGN.md section 3, docs/redis.md) and hands it to on_message. */
static void bp_deliver(redis_bp *bp, const bp_chan *e, const char *payload, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    cJSON *argsarr = NULL;
    char *args_json = NULL;
    const char *except_stack[16], **except = except_stack;
    rc_bp_bytes *att = NULL;
    uint8_t *att_bytes = NULL;
    char idbuf[32];
    rc_bp_message m;

    memset(&m, 0, sizeof(m));
    if (!root || !cJSON_IsObject(root)) {
        bp_invalid(bp, e, root ? "not an object" : "bad JSON");
        goto done;
    }
    while (end && end < payload + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end != payload + len) {
        bp_invalid(bp, e, "text after the JSON");
        goto done;
    }

    const cJSON *origin = cJSON_GetObjectItemCaseSensitive(root, "origin");
    if (origin && !cJSON_IsNull(origin)) {
        if (!cJSON_IsString(origin)) {
            bp_invalid(bp, e, "origin is not a string");
            goto done;
        }
        if (strcmp(origin->valuestring, bp->node_id) == 0) {
            bp->own++;
            goto done;
        }
        m.origin = origin->valuestring;
    }

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    if (cJSON_IsString(id)) {
        m.id = id->valuestring;
    } else if (cJSON_IsNumber(id)) {
        snprintf(idbuf, sizeof(idbuf), "%.17g", id->valuedouble);
        m.id = idbuf;
    } else if (id && !cJSON_IsNull(id)) {
        bp_invalid(bp, e, "id is not a string");
        goto done;
    }

    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(root, "except");
    if (ex && !cJSON_IsNull(ex)) {
        if (!cJSON_IsArray(ex)) {
            bp_invalid(bp, e, "except is not an array");
            goto done;
        }
        size_t n = (size_t)cJSON_GetArraySize(ex), i = 0;
        if (n > RC_ARRAY_LEN(except_stack)) except = rc_malloc(n * sizeof(*except));
        const cJSON *it;
        cJSON_ArrayForEach(it, ex) {
            if (!cJSON_IsString(it)) {
                bp_invalid(bp, e, "except holds a non-string");
                goto done;
            }
            except[i++] = it->valuestring;
        }
        m.except = except;
        m.except_count = i;
    }

    m.ns = e->ns;
    m.room = e->room;
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(root, "op");
    if (op) {
        if (!cJSON_IsString(op)) {
            bp_invalid(bp, e, "op is not a string");
            goto done;
        }
        if (strcmp(op->valuestring, "join") == 0) m.kind = RC_BP_JOIN;
        else if (strcmp(op->valuestring, "leave") == 0) m.kind = RC_BP_LEAVE;
        else if (strcmp(op->valuestring, "disconnect") == 0) m.kind = RC_BP_DISCONNECT;
        else {
            bp_invalid(bp, e, "unknown op");
            goto done;
        }
        if (m.kind != RC_BP_DISCONNECT) {
            const cJSON *target = cJSON_GetObjectItemCaseSensitive(root, "room");
            if (!cJSON_IsString(target) || !target->valuestring[0]) {
                bp_invalid(bp, e, "op without a room");
                goto done;
            }
            m.target_room = target->valuestring;
        }
    } else {
        const cJSON *event = cJSON_GetObjectItemCaseSensitive(root, "event");
        if (!cJSON_IsString(event) || !event->valuestring[0]) {
            bp_invalid(bp, e, "event must be a non-empty string");
            goto done;
        }
        m.kind = RC_BP_EMIT;
        m.event = event->valuestring;

        const cJSON *args = cJSON_GetObjectItemCaseSensitive(root, "args");
        if (args) {
            if (!cJSON_IsArray(args)) {
                bp_invalid(bp, e, "args is not an array");
                goto done;
            }
            args_json = cJSON_PrintUnformatted(args);
        } else {
            cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(root, "data");
            argsarr = cJSON_CreateArray();
            if (data) cJSON_AddItemToArray(argsarr, data); /* "data" is the one argument */
            args_json = cJSON_PrintUnformatted(argsarr);
        }
        if (!args_json) {
            bp_invalid(bp, e, "args could not be printed");
            goto done;
        }
        m.args_json = args_json;
        m.args_len = strlen(args_json);

        const cJSON *atts = cJSON_GetObjectItemCaseSensitive(root, "attachments");
        if (atts && !cJSON_IsNull(atts)) {
            if (!cJSON_IsArray(atts)) {
                bp_invalid(bp, e, "attachments is not an array");
                goto done;
            }
            size_t n = (size_t)cJSON_GetArraySize(atts), total = 0, i = 0, off = 0;
            const cJSON *it;
            cJSON_ArrayForEach(it, atts) {
                if (!cJSON_IsString(it)) {
                    bp_invalid(bp, e, "attachment is not a string");
                    goto done;
                }
                total += strlen(it->valuestring) / 4 * 3;
            }
            att = rc_calloc(n ? n : 1, sizeof(*att));
            att_bytes = rc_malloc(total ? total : 1);
            cJSON_ArrayForEach(it, atts) {
                long got = base64_decode(it->valuestring, strlen(it->valuestring), att_bytes + off);
                if (got < 0) {
                    bp_invalid(bp, e, "attachment is not base64");
                    goto done;
                }
                att[i].data = att_bytes + off;
                att[i].len = (size_t)got;
                off += (size_t)got;
                i++;
            }
            m.attachments = att;
            m.attachment_count = n;
        }
    }

    bp->received++;
    if (bp->cb.on_message) {
        bp->in_callback++;
        bp->cb.on_message(bp->cb.arg, &m);
        bp->in_callback--;
    }

done:
    if (except != except_stack) rc_free(except);
    rc_free(att);
    rc_free(att_bytes);
    if (args_json) cJSON_free(args_json);
    cJSON_Delete(argsarr);
    cJSON_Delete(root);
}

static void sub_on_push(redisAsyncContext *ac, void *r, void *privdata)
{
    bp_conn *c = privdata;
    redis_bp *bp = c->bp;
    redisReply *reply = r;
    if (!reply || ac != c->ac) return;
    bp->sub_last_push_ms = rc_now_mono_ms();

    if (reply->type == REDIS_REPLY_ERROR) {
        char reason[200];
        snprintf(reason, sizeof(reason), "SUBSCRIBE refused: %s", reply->str);
        bp_fail(bp, reason);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1];
    int is_canary = chan->len == strlen(bp->canary_channel) &&
                    memcmp(chan->str, bp->canary_channel, chan->len) == 0;

    if (strcmp(kind, "message") == 0) {
        const redisReply *payload = reply->element[2];
        if (payload->type != REDIS_REPLY_STRING) return;
        if (is_canary) {
            bp_on_canary(bp, payload->str, payload->len);
            return;
        }
        rc_hmap_node *n = rc_hmap_find(&bp->chans, chan->str, chan->len);
        bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
        if (!e) return;
        /* An entry closed from inside on_raw stays allocated until the next flush. */
        if (e->raw_refs) {
            bp->raw_received++;
            if (bp->cb.on_raw) {
                bp->in_callback++;
                bp->cb.on_raw(bp->cb.arg, e->name, payload->str, payload->len);
                bp->in_callback--;
            }
        }
        if (e->wanted) bp_deliver(bp, e, payload->str, payload->len); /* else: closed since */
    } else if (strcmp(kind, "subscribe") == 0 && is_canary) {
        bp->sub_synced = 1;
        bp_maybe_probe(bp);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0) {
        bp->subs_confirmed++;
        if (bp->waiters) waiters_run(bp, 0);
    } else if (strcmp(kind, "pmessage") == 0 && reply->elements >= 4 &&
               reply->element[3]->type == REDIS_REPLY_STRING) {
        /* [pmessage, pattern, channel, payload]: delivered to on_raw under the pattern's name */
        rc_hmap_node *n = rc_hmap_find(&bp->chans, chan->str, chan->len);
        bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
        if (e && e->pattern && e->raw_refs && bp->cb.on_raw) {
            bp->raw_received++;
            bp->in_callback++;
            bp->cb.on_raw(bp->cb.arg, e->name, reply->element[3]->str, reply->element[3]->len);
            bp->in_callback--;
        }
    }
}

/* ---- ops ------------------------------------------------------------------------------------- */

static redis_bp *to_bp(rc_backplane *b)
{
    return RC_CONTAINER_OF(b, redis_bp, super);
}

static const redis_bp *to_cbp(const rc_backplane *b)
{
    return RC_CONTAINER_OF(b, const redis_bp, super);
}

/* Builds the JSON envelope of msg into b; -1 when msg lacks what its kind needs. */
static int envelope_build(const redis_bp *bp, bp_buf *b, const rc_bp_message *m)
{
    b->len = 0;
    buf_put(b, "{", 1);
    switch (m->kind) {
    case RC_BP_EMIT: {
        if (!m->event || !m->event[0]) return -1;
        size_t alen = m->args_json ? (m->args_len ? m->args_len : strlen(m->args_json)) : 0;
        buf_puts(b, "\"event\":");
        buf_put_jstr(b, m->event);
        buf_puts(b, ",\"args\":");
        if (alen) buf_put(b, m->args_json, alen);
        else buf_puts(b, "[]");
        break;
    }
    case RC_BP_JOIN:
    case RC_BP_LEAVE:
        if (!m->target_room || !m->target_room[0]) return -1;
        buf_puts(b, m->kind == RC_BP_JOIN ? "\"op\":\"join\",\"room\":" : "\"op\":\"leave\",\"room\":");
        buf_put_jstr(b, m->target_room);
        break;
    case RC_BP_DISCONNECT:
        buf_puts(b, "\"op\":\"disconnect\"");
        break;
    default:
        return -1;
    }
    buf_puts(b, ",\"origin\":");
    buf_put_jstr(b, bp->node_id);
    if (m->except_count) {
        buf_puts(b, ",\"except\":[");
        for (size_t i = 0; i < m->except_count; i++) {
            if (i) buf_put(b, ",", 1);
            buf_put_jstr(b, m->except[i] ? m->except[i] : "");
        }
        buf_put(b, "]", 1);
    }
    if (m->id) {
        buf_puts(b, ",\"id\":");
        buf_put_jstr(b, m->id);
    }
    if (m->kind == RC_BP_EMIT && m->attachment_count) {
        buf_puts(b, ",\"attachments\":[");
        for (size_t i = 0; i < m->attachment_count; i++) {
            buf_puts(b, i ? ",\"" : "\"");
            buf_put_base64(b, m->attachments[i].data, m->attachments[i].len);
            buf_put(b, "\"", 1);
        }
        buf_put(b, "]", 1);
    }
    buf_put(b, "}", 1);
    return 0;
}

static int redis_publish(rc_backplane *b, const rc_bp_message *msg)
{
    redis_bp *bp = to_bp(b);
    if (bp->phase != BP_UP) {
        bp->publish_failures++;
        return -1;
    }
    if (!ns_valid(msg->ns) || (msg->room && !msg->room[0]) ||
        envelope_build(bp, &bp->payload_buf, msg) != 0) {
        bp->publish_failures++;
        rc_log_debug("redis_publish_refused", "ns=\"%s\" kind=%d", msg->ns ? msg->ns : "", msg->kind);
        return -1;
    }
    channel_build(bp, &bp->chan_buf, msg->ns, msg->room);
    const char *argv[3] = {"PUBLISH", bp->chan_buf.p, bp->payload_buf.p};
    size_t lens[3] = {7, bp->chan_buf.len, bp->payload_buf.len};
    int rc = conn_command(&bp->cmd, CMD_PUBLISH, 3, argv, lens);
    buf_trim(&bp->payload_buf);
    if (rc != 0) {
        bp->publish_failures++;
        return -1;
    }
    bp->publishes++;
    return 0;
}

static void redis_room_open(rc_backplane *b, const char *ns, const char *room)
{
    redis_bp *bp = to_bp(b);
    if (!ns_valid(ns) || !room || !room[0]) {
        rc_log_warn("redis_bad_channel", "ns=\"%s\" room=\"%s\"", ns ? ns : "", room ? room : "");
        return;
    }
    chan_set_wanted(bp, ns, room, 1);
}

static void redis_room_close(rc_backplane *b, const char *ns, const char *room)
{
    redis_bp *bp = to_bp(b);
    if (!ns_valid(ns) || !room || !room[0]) return;
    chan_set_wanted(bp, ns, room, 0);
}

static void redis_ns_open(rc_backplane *b, const char *ns)
{
    redis_bp *bp = to_bp(b);
    if (!ns_valid(ns)) {
        rc_log_warn("redis_bad_channel", "ns=\"%s\"", ns ? ns : "");
        return;
    }
    chan_set_wanted(bp, ns, NULL, 1);
}

static int redis_is_up(const rc_backplane *b)
{
    return to_cbp(b)->phase == BP_UP;
}

static void put_metric(struct evbuffer *out, const char *name, const char *type, const char *help,
                       uint64_t value)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type,
                        name, value);
}

static void redis_write_metrics(const rc_backplane *b, struct evbuffer *out)
{
    const redis_bp *bp = to_cbp(b);
    const rc_histogram *h = &bp->publish_latency;

    put_metric(out, "roomcast_redis_up", "gauge",
               "1 while the Redis backplane is usable: both connections answer, subscriptions are "
               "confirmed and the canary comes back.",
               bp->phase == BP_UP);
    put_metric(out, "roomcast_redis_reconnects_total", "counter",
               "Connection attempts after the first (each one reconnects both connections).",
               bp->reconnects);
    put_metric(out, "roomcast_redis_subscribed_channels", "gauge",
               "Room, namespace and module (raw) channels subscribed on the current connection "
               "(canary excluded).",
               bp->nsubscribed);
    put_metric(out, "roomcast_redis_publishes_total", "counter",
               "Messages handed to Redis with PUBLISH.", bp->publishes);
    put_metric(out, "roomcast_redis_publish_failures_total", "counter",
               "Publishes refused (backplane down, backlog full, bad message) or answered with an "
               "error.",
               bp->publish_failures);
    put_metric(out, "roomcast_redis_messages_received_total", "counter",
               "Messages from other publishers handed to the node.", bp->received);
    put_metric(out, "roomcast_redis_messages_invalid_total", "counter",
               "Messages dropped because their JSON or envelope was malformed.", bp->invalid);
    put_metric(out, "roomcast_redis_messages_own_total", "counter",
               "Messages dropped because this node published them (already delivered locally).",
               bp->own);
    put_metric(out, "roomcast_redis_canary_failures_total", "counter",
               "Canary round trips that failed (not received in time, or no subscriber).",
               bp->canary_failures);
    put_metric(out, "roomcast_redis_commands_total", "counter",
               "Commands sent to Redis (round trips), including handshakes and SUBSCRIBE batches.",
               bp->commands);
    put_metric(out, "roomcast_redis_command_timeouts_total", "counter",
               "Connections torn down because a command went unanswered too long.",
               bp->command_timeouts);
    put_metric(out, "roomcast_redis_module_commands_total", "counter",
               "Commands and script calls sent for modules (presence, jobs).", bp->module_commands);
    put_metric(out, "roomcast_redis_module_errors_total", "counter",
               "Module commands and script calls answered with an error.", bp->module_errors);
    put_metric(out, "roomcast_redis_noscript_total", "counter",
               "Script calls answered NOSCRIPT and sent again as EVAL.", bp->noscript);
    put_metric(out, "roomcast_redis_raw_messages_total", "counter",
               "Messages received on module (raw) channels.", bp->raw_received);
    evbuffer_add_printf(out,
                        "# HELP roomcast_redis_canary_lag_seconds Last canary round trip "
                        "(PUBLISH on the command connection to receipt on the subscriber).\n"
                        "# TYPE roomcast_redis_canary_lag_seconds gauge\n"
                        "roomcast_redis_canary_lag_seconds %.6f\n",
                        bp->canary_lag_s);

    evbuffer_add_printf(out,
                        "# HELP roomcast_redis_publish_latency_seconds PUBLISH round trip on the "
                        "command connection.\n"
                        "# TYPE roomcast_redis_publish_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < RC_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        evbuffer_add_printf(out, "roomcast_redis_publish_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            rc_hist_bounds[i], cum);
    }
    evbuffer_add_printf(out,
                        "roomcast_redis_publish_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                        "roomcast_redis_publish_latency_seconds_sum %.9g\n"
                        "roomcast_redis_publish_latency_seconds_count %" PRIu64 "\n",
                        h->count, h->sum, h->count);
}

static void redis_free(rc_backplane *b)
{
    redis_bp *bp = to_bp(b);
    assert(bp->in_callback == 0 && "free the backplane outside on_message/on_state");

    bp->phase = BP_CLOSED;
    conn_close(&bp->sub); /* callbacks hiredis runs now see stale contexts and return */
    conn_close(&bp->cmd);
    /* Module commands still unanswered get reply NULL now: their owners release what they
     * attached (any command they send from the callback is refused: the phase is CLOSED). */
    bp_run_failed(bp);
    event_free(bp->flush_ev);
    event_free(bp->tick_ev);
    event_free(bp->retry_ev);
    event_free(bp->fail_ev);
    if (bp->resolve) {
        /* a resolver thread may still be writing into the request: cancel, or wait for it */
        if (gai_cancel(&bp->resolve->req) == EAI_NOTCANCELED) {
            const struct gaicb *list[1] = {&bp->resolve->req};
            while (gai_error(&bp->resolve->req) == EAI_INPROGRESS) gai_suspend(list, 1, NULL);
        }
        resolve_free(bp->resolve);
    }

    while (bp->waiters) { /* told with live = 0: only release what they hold */
        sub_waiter *w = bp->waiters;
        bp->waiters = w->next;
        w->cb(w->arg, 0);
        rc_free(w);
    }
    rc_hmap_node *n = rc_hmap_first(&bp->chans);
    while (n) {
        rc_hmap_node *next = rc_hmap_next(&bp->chans, n);
        rc_free(RC_CONTAINER_OF(n, bp_chan, node));
        n = next;
    }
    rc_hmap_dispose(&bp->chans);
    rc_free(bp->sub.ring);
    rc_free(bp->cmd.ring);
    rc_free(bp->chan_buf.p);
    rc_free(bp->payload_buf.p);
    rc_free(bp->failed);
    rc_free(bp->loaded);
    rc_free(bp->eargv);
    rc_free(bp->eargvlen);
    rc_redis_url_dispose(&bp->url);
    rc_free(bp->prefix);
    rc_free(bp->node_id);
    rc_free(bp->canary_channel);
    rc_free(bp->client_name[0]);
    rc_free(bp->client_name[1]);
    rc_free(bp);
}

/* cb runs (from the loop) once every SUBSCRIBE requested so far is confirmed by Redis, or when
 * that cannot happen (connection lost). */
static void redis_when_subscribed(rc_backplane *b, void (*cb)(void *arg, int live), void *arg)
{
    redis_bp *bp = to_bp(b);
    sub_waiter *w = rc_calloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->next = bp->waiters;
    bp->waiters = w;
    bp_schedule_flush(bp);
}

static const rc_backplane_ops redis_ops = {
    .when_subscribed = redis_when_subscribed,
    .publish = redis_publish,
    .room_open = redis_room_open,
    .room_close = redis_room_close,
    .ns_open = redis_ns_open,
    .is_up = redis_is_up,
    .write_metrics = redis_write_metrics,
    .free = redis_free,
};

/* "roomcast:<node>:<role>" with bytes CLIENT SETNAME refuses (spaces, controls) replaced. */
static char *client_name(const char *node_id, const char *role)
{
    size_t n = strlen(node_id) + strlen(role) + 16;
    char *s = rc_malloc(n);
    snprintf(s, n, "roomcast:%s:%s", node_id, role);
    for (char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) *p = '_';
    return s;
}

rc_backplane *rc_backplane_redis_new(struct event_base *base, const struct rc_config *cfg,
                                     const rc_backplane_callbacks *cb)
{
    rc_redis_url url;
    const char *err = NULL;
    unsigned char addr[sizeof(struct in6_addr)];

    if (rc_redis_url_parse(cfg->redis_url, &url, &err) != 0) {
        rc_log_error("redis_bad_url", "error=\"%s\"", err);
        return NULL;
    }
    const char *node_id = cfg->node_id && cfg->node_id[0] ? cfg->node_id : "node";
    const char *prefix = cfg->prefix && cfg->prefix[0] ? cfg->prefix : "roomcast";

    redis_bp *bp = rc_calloc(1, sizeof(*bp));
    bp->super.ops = &redis_ops;
    bp->base = base;
    if (cb) bp->cb = *cb;
    bp->url = url;
    bp->numeric_host = inet_pton(AF_INET, url.host, addr) == 1 || inet_pton(AF_INET6, url.host, addr) == 1;
    bp->prefix = rc_strdup(prefix);
    bp->node_id = rc_strdup(node_id);
    size_t n = strlen(prefix) + strlen(node_id) + 16;
    bp->canary_channel = rc_malloc(n);
    snprintf(bp->canary_channel, n, "%s:canary:%s", prefix, node_id);
    bp->client_name[ROLE_SUB] = client_name(node_id, "sub");
    bp->client_name[ROLE_CMD] = client_name(node_id, "cmd");
    bp->sub.bp = bp->cmd.bp = bp;
    bp->sub.role = ROLE_SUB;
    bp->cmd.role = ROLE_CMD;
    bp->phase = BP_WAITING;
    rc_random_id(bp->canary_nonce, 8);

    bp->flush_ev = event_new(base, -1, 0, bp_on_flush_ev, bp);
    bp->tick_ev = event_new(base, -1, EV_PERSIST, bp_on_tick, bp);
    bp->retry_ev = evtimer_new(base, bp_on_retry, bp);
    bp->fail_ev = event_new(base, -1, 0, bp_on_fail_ev, bp);
    struct timeval tick = ms_tv(TICK_MS), now = {0, 0};
    event_add(bp->tick_ev, &tick);
    event_add(bp->retry_ev, &now); /* the first attempt runs from the loop, not from here */

    char buf[300];
    rc_log_info("redis_backplane", "url=%s prefix=%s node=%s",
                rc_redis_url_redacted(&bp->url, buf, sizeof(buf)), bp->prefix, bp->node_id);
    return &bp->super;
}

/* ---- redis_cmd.h: module commands, scripts and raw channels -------------------------------- */

static int is_redis(const rc_backplane *b)
{
    return b && b->ops == &redis_ops;
}

int rc_redis_available(const rc_backplane *bp)
{
    return is_redis(bp) ? 1 : 0;
}

const char *rc_redis_prefix(const rc_backplane *b)
{
    return is_redis(b) ? to_cbp(b)->prefix : NULL;
}

/* Calls a module callback; free is asserted not to happen inside it. */
static void module_callback(redis_bp *bp, const bp_inflight *f, const redisReply *reply)
{
    bp->in_callback++;
    if (f->cb) f->cb(f->arg, reply);
    bp->in_callback--;
}

/* Answers every queued failure with reply NULL. Callbacks may send new commands meanwhile. */
static void bp_run_failed(redis_bp *bp)
{
    while (bp->nfailed) {
        bp_inflight *list = bp->failed;
        size_t n = bp->nfailed;
        bp->failed = NULL;
        bp->nfailed = bp->failed_cap = 0;
        for (size_t i = 0; i < n; i++) {
            module_callback(bp, &list[i], NULL);
            rc_free(list[i].ev);
        }
        rc_free(list);
    }
}

static void bp_on_fail_ev(evutil_socket_t fd, short what, void *arg)
{
    bp_run_failed(arg);
}

static int sha_loaded(const redis_bp *bp, const char *sha)
{
    for (size_t i = 0; i < bp->nloaded; i++)
        if (memcmp(bp->loaded[i], sha, 40) == 0) return 1;
    return 0;
}

static void sha_forget(redis_bp *bp, const char *sha)
{
    for (size_t i = 0; i < bp->nloaded; i++) {
        if (memcmp(bp->loaded[i], sha, 40) != 0) continue;
        memcpy(bp->loaded[i], bp->loaded[bp->nloaded - 1], 41);
        bp->nloaded--;
        return;
    }
}

static void sha_remember(redis_bp *bp, const char *sha)
{
    if (sha_loaded(bp, sha)) return;
    if (bp->nloaded == bp->loaded_cap) {
        bp->loaded_cap = bp->loaded_cap ? bp->loaded_cap * 2 : 8;
        bp->loaded = rc_realloc(bp->loaded, bp->loaded_cap * sizeof(*bp->loaded));
    }
    memcpy(bp->loaded[bp->nloaded++], sha, 41);
}

/* Sends ev as EVALSHA, or as EVAL when the script was not yet sent on this connection (its
 * first call) or Redis answered NOSCRIPT. Commands on one connection run in order, so every
 * EVALSHA pipelined behind the EVAL finds the script loaded. */
static int eval_send(redis_bp *bp, bp_eval *ev, rc_redis_reply_fn cb, void *arg, int as_eval)
{
    char nkeys[16];
    size_t need = (size_t)ev->argc + 3;
    if (need > bp->eargv_cap) {
        size_t cap = bp->eargv_cap ? bp->eargv_cap : 64;
        while (cap < need) cap *= 2;
        rc_free(bp->eargv);
        rc_free(bp->eargvlen);
        bp->eargv = rc_malloc(cap * sizeof(*bp->eargv));
        bp->eargvlen = rc_malloc(cap * sizeof(*bp->eargvlen));
        bp->eargv_cap = cap;
    }
    if (!as_eval && !sha_loaded(bp, ev->sha)) as_eval = 1;
    snprintf(nkeys, sizeof(nkeys), "%d", ev->nkeys);
    bp->eargv[0] = as_eval ? "EVAL" : "EVALSHA";
    bp->eargvlen[0] = as_eval ? 4 : 7;
    bp->eargv[1] = as_eval ? ev->source : ev->sha;
    bp->eargvlen[1] = as_eval ? strlen(ev->source) : 40;
    bp->eargv[2] = nkeys;
    bp->eargvlen[2] = strlen(nkeys);
    for (int i = 0; i < ev->argc; i++) {
        bp->eargv[3 + i] = ev->argv[i];
        bp->eargvlen[3 + i] = ev->argvlen[i];
    }
    int rc = conn_command_cb(&bp->cmd, CMD_EVAL, cb, arg, ev, (int)need, bp->eargv, bp->eargvlen);
    if (rc == 0 && as_eval) sha_remember(bp, ev->sha);
    if (bp->eargv_cap > 4096) { /* one huge call does not pin its scratch vector */
        rc_free(bp->eargv);
        rc_free(bp->eargvlen);
        bp->eargv = NULL;
        bp->eargvlen = NULL;
        bp->eargv_cap = 0;
    }
    return rc;
}

static void bp_on_module_reply(redis_bp *bp, bp_inflight f, const redisReply *reply)
{
    if (f.kind == CMD_EVAL && reply->type == REDIS_REPLY_ERROR && !f.ev->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* Redis forgot the script (restart behind a proxy, SCRIPT FLUSH): send it again as EVAL.
         * It now runs after the commands pipelined behind the first attempt. */
        bp->noscript++;
        f.ev->retried = 1;
        sha_forget(bp, f.ev->sha);
        if (eval_send(bp, f.ev, f.cb, f.arg, 1) == 0) return;
        module_callback(bp, &f, NULL);
        rc_free(f.ev);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        bp->module_errors++;
        rc_log_debug("redis_command_error", "error=\"%s\"", reply->str);
    }
    module_callback(bp, &f, reply);
    rc_free(f.ev);
}

int rc_redis_command(rc_backplane *b, rc_redis_reply_fn cb, void *arg, int argc, const char **argv,
                     const size_t *argvlen)
{
    if (!is_redis(b) || argc < 1 || !argv) return -1;
    redis_bp *bp = to_bp(b);
    if (bp->phase != BP_UP) return -1;
    if (conn_command_cb(&bp->cmd, CMD_USER, cb, arg, NULL, argc, argv, argvlen) != 0) return -1;
    bp->module_commands++;
    return 0;
}

static void script_sha(rc_redis_script *script)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(script->source, strlen(script->source), md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20)
        abort(); /* SHA-1 is always there in OpenSSL 3; nothing sensible to do otherwise */
    for (unsigned i = 0; i < 20; i++) {
        script->sha[2 * i] = hex[md[i] >> 4];
        script->sha[2 * i + 1] = hex[md[i] & 15];
    }
    script->sha[40] = '\0';
}

int rc_redis_eval(rc_backplane *b, rc_redis_script *script, rc_redis_reply_fn cb, void *arg,
                  int nkeys, int argc, const char **argv, const size_t *argvlen)
{
    if (!is_redis(b) || !script || !script->source || nkeys < 0 || argc < nkeys ||
        (argc && !argv))
        return -1;
    redis_bp *bp = to_bp(b);
    if (bp->phase != BP_UP) return -1;
    if (!script->sha[0]) script_sha(script);

    /* The arguments are copied (one allocation) so that a NOSCRIPT reply can be retried. */
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    size_t head = sizeof(bp_eval) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    bp_eval *ev = rc_malloc(head + bytes + 1);
    ev->source = script->source;
    memcpy(ev->sha, script->sha, 41);
    ev->nkeys = nkeys;
    ev->argc = argc;
    ev->retried = 0;
    ev->argvlen = (size_t *)(void *)(ev + 1);
    ev->argv = (const char **)(void *)(ev->argvlen + argc);
    char *p = (char *)(ev->argv + argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], n);
        ev->argv[i] = p;
        ev->argvlen[i] = n;
        p += n;
    }
    if (eval_send(bp, ev, cb, arg, 0) != 0) {
        rc_free(ev);
        return -1;
    }
    bp->module_commands++;
    return 0;
}

/* Raw channels may not pose as the backplane's own: room, namespace and canary channels. */
static int raw_channel_valid(const redis_bp *bp, const char *channel)
{
    size_t plen = strlen(bp->prefix);
    if (!channel || !channel[0]) return 0;
    if (strcmp(channel, bp->canary_channel) == 0) return 0;
    if (strncmp(channel, bp->prefix, plen) == 0 &&
        (strncmp(channel + plen, ":room:", 6) == 0 || strncmp(channel + plen, ":ns:", 4) == 0))
        return 0;
    return 1;
}

void rc_redis_channel_open(rc_backplane *b, const char *channel)
{
    if (!is_redis(b)) return;
    redis_bp *bp = to_bp(b);
    if (!raw_channel_valid(bp, channel)) {
        rc_log_warn("redis_bad_channel", "raw=\"%s\"", channel ? channel : "");
        return;
    }
    size_t len = strlen(channel);
    rc_hmap_node *n = rc_hmap_find(&bp->chans, channel, len);
    bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
    if (!e) {
        e = rc_calloc(1, sizeof(*e) + len + 1);
        memcpy(e->name, channel, len);
        e->len = len;
        e->pattern = channel[len - 1] == '*';
        rc_hmap_insert(&bp->chans, &e->node, e->name, e->len);
    }
    if (e->raw_refs++ > 0) return;
    chan_mark_dirty(bp, e);
    bp_schedule_flush(bp);
}

void rc_redis_channel_close(rc_backplane *b, const char *channel)
{
    if (!is_redis(b) || !channel) return;
    redis_bp *bp = to_bp(b);
    rc_hmap_node *n = rc_hmap_find(&bp->chans, channel, strlen(channel));
    bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
    if (!e || e->raw_refs == 0) return;
    if (--e->raw_refs > 0) return;
    chan_mark_dirty(bp, e);
    bp_schedule_flush(bp);
}
