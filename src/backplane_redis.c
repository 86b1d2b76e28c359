/*
 * backplane_redis.c: the Redis pub/sub backplane (hiredis async on the node's libevent loop).
 * Contract: include/roomcast/backplane.h. Channels, payloads and metrics: docs/redis.md.
 * Created by node.c (rc_backplane_redis_new) and driven through rc_backplane_ops.
 *
 * What it is for: carrying room and namespace traffic between nodes and from backends, with one
 * Redis channel per room that has local members (P2: a node never receives traffic for rooms it
 * has no member of), and readiness that is true only while delivery demonstrably works (P1).
 *
 * The Redis backplane is four files; this one holds the phases, the canary, the subscription
 * set and barrier, publish and receive:
 *
 *   redis_conn.c          one connection (connect, handshake, in-flight ring); this file owns two
 *   backplane_envelope.c  the JSON envelope of room/namespace messages, encode and decode
 *   redis_cmd.c           redis_cmd.h for modules: commands, scripts, raw channels
 *   backplane_redis.h     what this file and redis_cmd.c share (redis_bp__* / redis_cmd__*)
 *
 * Two connections (redis_conn): sub (AUTH, SELECT, CLIENT SETNAME, then only SUBSCRIBE and
 * UNSUBSCRIBE; receives messages) and cmd (the same handshake, then PUBLISH pipelined, never
 * waiting for a reply, the canary PUBLISH and the modules' commands). Over them, the backplane's
 * phase (bp->phase):
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
 * Raw channels (redis_cmd.h) are bp_chan entries with raw_refs > 0 (ns NULL): subscribed,
 * batched, resubscribed and freed exactly like room channels, delivered to on_raw unparsed.
 *
 * Callbacks: on_message, on_raw and on_state run only from loop callbacks (hiredis I/O, the
 * timers, the flush event), never from inside publish/room_open/room_close/ns_open/new/free
 * (STYLE 15). free must not be called from inside any callback of ours (asserted).
 *
 * What it does not do: no Redis Cluster / Sentinel / TLS / unix sockets; no queueing while down
 * (publish returns -1 and the caller reports the error); delivery is at most once (a publish
 * accepted just before a failure may be lost with the connection); no timeout on individual SUBSCRIBE
 * replies (the canary covers a deaf subscription); no retry of a failed PUBLISH. Numbers in
 * received "args"/"data" pass through cJSON, so integers beyond 2^53 lose precision.
 *
 * Ownership: rc_backplane_redis_new copies what it needs from the settings and cb. The two redis_conn
 * are embedded in the backplane, and so is redis_cmd.c's state.
 *
 * API in call order: rc_backplane_redis_new -> ns_open/room_open/room_close/publish and the
 * redis_cmd.h calls (any order) -> write_metrics when scraped -> free.
 */
#include "roomcast/backplane.h"

#include "backplane_envelope.h"
#include "backplane_redis.h"
#include "redis_conn.h"
#include "roomcast/common.h"
#include "roomcast/hmap.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_url.h"

#include <arpa/inet.h>
#include <assert.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Timing. Detection of a silent subscription is bounded by CANARY_INTERVAL_MS + CANARY_TIMEOUT_MS
 * (+ one TICK_MS); a dead connection (EOF, RST) is detected at once. The backlog bounds
 * (commands in flight, unsent bytes) are redis_conn.c's. */
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
enum { SUB_BATCH = 512 };                        /* channels per SUBSCRIBE/UNSUBSCRIBE */

enum bp_phase { BP_WAITING = 0, BP_RESOLVING, BP_CONNECTING, BP_SYNCING, BP_UP, BP_CLOSED };

static const char *const phase_names[] = {"waiting", "resolving", "connecting", "syncing", "up",
                                          "closed"};

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

typedef struct bp_resolve {
    struct gaicb req;
    struct addrinfo hints;
} bp_resolve;

struct redis_bp {
    rc_backplane super;
    struct event_base *base;
    rc_backplane_callbacks cb;
    int in_callback;             /* > 0 while on_message/on_state/on_raw run */

    rc_redis_url url;
    int numeric_host;            /* no DNS needed */
    char *prefix, *node_id;
    char *canary_channel;
    char *sub_name, *cmd_name;   /* CLIENT SETNAME of each connection */

    int phase;                   /* enum bp_phase */
    uint64_t deadline_ms;        /* RESOLVING/CONNECTING/SYNCING must end by then */
    uint64_t backoff_ms;         /* last backoff step; 0 after UP */
    int attempts;                /* connection attempts started */
    bp_resolve *resolve;         /* in-flight getaddrinfo_a, possibly from an earlier attempt */
    redis_conn sub, cmd;
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

    struct event *flush_ev, *tick_ev, *retry_ev;
    bp_buf chan_buf, payload_buf;
    const char *argv[SUB_BATCH + 1];
    size_t argvlen[SUB_BATCH + 1];

    redis_cmd_state modules;     /* redis_cmd.c's: module commands and scripts */

    /* metrics */
    uint64_t reconnects, publishes, publish_failures, received, invalid, own, canary_failures,
        command_timeouts, raw_received;
    double canary_lag_s;
    rc_histogram publish_latency;
};

static void bp_fail(redis_bp *bp, const char *reason);
static void bp_schedule_flush(redis_bp *bp);
static void bp_flush(redis_bp *bp);
static void bp_maybe_probe(redis_bp *bp);
static void bp_resync(redis_bp *bp);

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
    bp_buf_puts(b, bp->prefix);
    bp_buf_puts(b, room ? ":room:" : ":ns:");
    bp_buf_puts(b, ns);
    if (room) {
        bp_buf_put(b, ":", 1);
        bp_buf_puts(b, room);
    }
}

/* ---- the two connections ------------------------------------------------------------------- */

/* Both down together (bp_fail, free); module commands they leave unanswered are queued by
 * redis_cmd.c through on_unanswered. */
static void bp_close_conns(redis_bp *bp)
{
    redis_conn_close(&bp->sub);
    redis_conn_close(&bp->cmd);
    redis_cmd__conn_closed(&bp->modules); /* a new connection may reach a Redis without them */
}

/* SUBSCRIBE/UNSUBSCRIBE of bp->argv[0..argc) on the sub connection: replies reach bp_on_push. */
static int sub_command(redis_bp *bp, int argc)
{
    return redis_conn_subscribe(&bp->sub, argc, bp->argv, bp->argvlen);
}

static void bp_on_conn_ready(void *arg, redis_conn *c)
{
    redis_bp *bp = arg;
    if (c == &bp->sub) {
        bp_resync(bp);
        if (bp->phase == BP_WAITING) return;
    }
    bp_maybe_probe(bp);
}

static void bp_on_conn_fail(void *arg, redis_conn *c, const char *reason)
{
    bp_fail(arg, reason);
}

static void bp_on_publish_reply(redis_bp *bp, const redis_conn_cmd *f, const redisReply *reply)
{
    rc_histogram_observe(&bp->publish_latency, (double)(rc_now_mono_ns() - f->sent_ns) / 1e9);
    if (reply->type == REDIS_REPLY_ERROR) {
        bp->publish_failures++;
        rc_log_debug("redis_publish_error", "error=\"%s\"", reply->str);
    }
}

static void bp_on_conn_reply(void *arg, redis_conn *c, const redis_conn_cmd *f, redisReply *reply)
{
    redis_bp *bp = arg;
    switch (f->kind) {
    case BP_CMD_PUBLISH:
        bp_on_publish_reply(bp, f, reply);
        return;
    case BP_CMD_CANARY:
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
            /* nobody subscribed to our own canary channel: the sub connection is deaf */
            bp->canary_failures++;
            bp_fail(bp, "canary channel has no subscriber");
        } else if (reply->type == REDIS_REPLY_ERROR) {
            bp_fail(bp, "canary PUBLISH refused");
        }
        return;
    default:
        redis_cmd__on_reply(&bp->modules, c, f, reply);
        return;
    }
}

static void bp_on_conn_unanswered(void *arg, redis_conn *c, const redis_conn_cmd *f)
{
    redis_bp *bp = arg;
    redis_cmd__on_unanswered(&bp->modules, f);
}

static void bp_on_push(void *arg, redis_conn *c, redisReply *reply);

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

/* Raw channels (redis_cmd.h, through redis_cmd.c) may not pose as the backplane's own: room,
 * namespace and canary channels. */
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

void redis_bp__channel_open(redis_bp *bp, const char *channel)
{
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

void redis_bp__channel_close(redis_bp *bp, const char *channel)
{
    rc_hmap_node *n = rc_hmap_find(&bp->chans, channel, strlen(channel));
    bp_chan *e = n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
    if (!e || e->raw_refs == 0) return;
    if (--e->raw_refs > 0) return;
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
    if (bp->sub.state == REDIS_CONN_CONNECTED) {
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
    if (bp->sub.state != REDIS_CONN_CONNECTED || rc != 0) waiters_run(bp, 1);
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
    if (redis_conn_command(&bp->cmd, BP_CMD_CANARY, NULL, NULL, NULL, 3, argv, lens) != 0)
        return; /* the command timeout will tell */
    bp->canary_pending = 1;
    bp->canary_sent_ms = now;
    bp->canary_sent_ns = rc_now_mono_ns();
}

/* SYNCING: both connections answer and every subscription is confirmed -> one canary round trip. */
static void bp_maybe_probe(redis_bp *bp)
{
    if (bp->phase == BP_CONNECTING && bp->sub.state == REDIS_CONN_CONNECTED &&
        bp->cmd.state == REDIS_CONN_CONNECTED) {
        bp->phase = BP_SYNCING;
        bp->deadline_ms = rc_now_mono_ms() + COMMAND_TIMEOUT_MS + CANARY_TIMEOUT_MS;
    }
    if (bp->phase == BP_SYNCING && bp->sub_synced && !bp->canary_pending) bp_send_canary(bp);
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
    if (redis_conn_open(&bp->sub, bp->base, ip, &bp->url, bp->sub_name) != 0 ||
        redis_conn_open(&bp->cmd, bp->base, ip, &bp->url, bp->cmd_name) != 0)
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

    bp_close_conns(bp);
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

static void bp_check_ring(redis_bp *bp, redis_conn *c, uint64_t now_ns)
{
    if (bp->phase == BP_WAITING || !redis_conn_overdue(c, now_ns, COMMAND_TIMEOUT_MS * 1000000ull))
        return;
    bp->command_timeouts++;
    bp_fail(bp, c == &bp->sub ? "sub command timed out" : "command timed out");
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

/* A message on a room or namespace channel: decoded (backplane_envelope.c), counted, and handed
 * to on_message unless it is malformed or our own echo. */
static void bp_deliver(redis_bp *bp, const bp_chan *e, const char *payload, size_t len)
{
    bp_envelope env;
    switch (bp_envelope_decode(&env, payload, len, bp->node_id)) {
    case BP_ENVELOPE_OK:
        env.msg.ns = e->ns;
        env.msg.room = e->room;
        bp->received++;
        if (bp->cb.on_message) {
            bp->in_callback++;
            bp->cb.on_message(bp->cb.arg, &env.msg);
            bp->in_callback--;
        }
        break;
    case BP_ENVELOPE_OWN:
        bp->own++;
        break;
    default:
        bp->invalid++;
        rc_log_debug("redis_bad_message", "channel=\"%s\" reason=\"%s\"", e->name, env.why);
        break;
    }
    bp_envelope_dispose(&env);
}

/* Everything the sub connection receives: SUBSCRIBE confirmations, messages, errors. */
static void bp_on_push(void *arg, redis_conn *c, redisReply *reply)
{
    redis_bp *bp = arg;
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

static int redis_publish(rc_backplane *b, const rc_bp_message *msg)
{
    redis_bp *bp = to_bp(b);
    if (bp->phase != BP_UP) {
        bp->publish_failures++;
        return -1;
    }
    if (!ns_valid(msg->ns) || (msg->room && !msg->room[0]) ||
        bp_envelope_encode(&bp->payload_buf, msg, bp->node_id) != 0) {
        bp->publish_failures++;
        rc_log_debug("redis_publish_refused", "ns=\"%s\" kind=%d", msg->ns ? msg->ns : "", msg->kind);
        return -1;
    }
    channel_build(bp, &bp->chan_buf, msg->ns, msg->room);
    const char *argv[3] = {"PUBLISH", bp->chan_buf.p, bp->payload_buf.p};
    size_t lens[3] = {7, bp->chan_buf.len, bp->payload_buf.len};
    int rc = redis_conn_command(&bp->cmd, BP_CMD_PUBLISH, NULL, NULL, NULL, 3, argv, lens);
    bp_buf_trim(&bp->payload_buf);
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

static void redis_write_metrics(const rc_backplane *b, struct evbuffer *out)
{
    const redis_bp *bp = to_cbp(b);
    const rc_histogram *h = &bp->publish_latency;

    rc_metrics_put_scalar(out, "roomcast_redis_up", "gauge",
               "1 while the Redis backplane is usable: both connections answer, subscriptions are "
               "confirmed and the canary comes back.",
               bp->phase == BP_UP);
    rc_metrics_put_scalar(out, "roomcast_redis_reconnects_total", "counter",
               "Connection attempts after the first (each one reconnects both connections).",
               bp->reconnects);
    rc_metrics_put_scalar(out, "roomcast_redis_subscribed_channels", "gauge",
               "Room, namespace and module (raw) channels subscribed on the current connection "
               "(canary excluded).",
               bp->nsubscribed);
    rc_metrics_put_scalar(out, "roomcast_redis_publishes_total", "counter",
               "Messages handed to Redis with PUBLISH.", bp->publishes);
    rc_metrics_put_scalar(out, "roomcast_redis_publish_failures_total", "counter",
               "Publishes refused (backplane down, backlog full, bad message) or answered with an "
               "error.",
               bp->publish_failures);
    rc_metrics_put_scalar(out, "roomcast_redis_messages_received_total", "counter",
               "Messages from other publishers handed to the node.", bp->received);
    rc_metrics_put_scalar(out, "roomcast_redis_messages_invalid_total", "counter",
               "Messages dropped because their JSON or envelope was malformed.", bp->invalid);
    rc_metrics_put_scalar(out, "roomcast_redis_messages_own_total", "counter",
               "Messages dropped because this node published them (already delivered locally).",
               bp->own);
    rc_metrics_put_scalar(out, "roomcast_redis_canary_failures_total", "counter",
               "Canary round trips that failed (not received in time, or no subscriber).",
               bp->canary_failures);
    rc_metrics_put_scalar(out, "roomcast_redis_commands_total", "counter",
               "Commands sent to Redis (round trips), including handshakes and SUBSCRIBE batches.",
               bp->sub.commands + bp->cmd.commands);
    rc_metrics_put_scalar(out, "roomcast_redis_command_timeouts_total", "counter",
               "Connections torn down because a command went unanswered too long.",
               bp->command_timeouts);
    rc_metrics_put_scalar(out, "roomcast_redis_module_commands_total", "counter",
               "Commands and script calls sent for modules (presence, jobs).",
               bp->modules.commands);
    rc_metrics_put_scalar(out, "roomcast_redis_module_errors_total", "counter",
               "Module commands and script calls answered with an error.", bp->modules.errors);
    rc_metrics_put_scalar(out, "roomcast_redis_noscript_total", "counter",
               "Script calls answered NOSCRIPT and sent again as EVAL.", bp->modules.noscript);
    rc_metrics_put_scalar(out, "roomcast_redis_raw_messages_total", "counter",
               "Messages received on module (raw) channels.", bp->raw_received);
    rc_metrics_put_gauge_double(out, "roomcast_redis_canary_lag_seconds",
                                "Last canary round trip (PUBLISH on the command connection to receipt "
                                "on the subscriber).",
                                bp->canary_lag_s);
    rc_metrics_put_histogram(out, "roomcast_redis_publish_latency_seconds",
                             "PUBLISH round trip on the command connection.", h);
}

static void redis_free(rc_backplane *b)
{
    redis_bp *bp = to_bp(b);
    assert(bp->in_callback == 0 && "free the backplane outside on_message/on_state");
    assert(bp->modules.in_callback == 0 && "free the backplane outside a module's reply callback");

    bp->phase = BP_CLOSED;
    bp_close_conns(bp); /* callbacks hiredis runs now see stale contexts and return */
    /* Module commands still unanswered get reply NULL now (any command their owners send from
     * the callback is refused: the phase is CLOSED). */
    redis_cmd__dispose(&bp->modules);
    event_free(bp->flush_ev);
    event_free(bp->tick_ev);
    event_free(bp->retry_ev);
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
    redis_conn_dispose(&bp->sub);
    redis_conn_dispose(&bp->cmd);
    bp_buf_dispose(&bp->chan_buf);
    bp_buf_dispose(&bp->payload_buf);
    rc_redis_url_dispose(&bp->url);
    rc_free(bp->prefix);
    rc_free(bp->node_id);
    rc_free(bp->canary_channel);
    rc_free(bp->sub_name);
    rc_free(bp->cmd_name);
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

rc_backplane *rc_backplane_redis_new(struct event_base *base,
                                     const rc_backplane_redis_settings *settings,
                                     const rc_backplane_callbacks *cb)
{
    rc_redis_url url;
    const char *err = NULL;
    unsigned char addr[sizeof(struct in6_addr)];

    if (rc_redis_url_parse(settings->url, &url, &err) != 0) {
        rc_log_error("redis_bad_url", "error=\"%s\"", err);
        return NULL;
    }
    const char *node_id = settings->node_id && settings->node_id[0] ? settings->node_id : "node";
    const char *prefix = settings->prefix && settings->prefix[0] ? settings->prefix : "roomcast";

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
    bp->sub_name = client_name(node_id, "sub");
    bp->cmd_name = client_name(node_id, "cmd");
    redis_conn_callbacks conn_cb = {
        .on_ready = bp_on_conn_ready,
        .on_fail = bp_on_conn_fail,
        .on_reply = bp_on_conn_reply,
        .on_push = bp_on_push,
        .on_unanswered = bp_on_conn_unanswered,
        .arg = bp,
    };
    redis_conn_init(&bp->sub, "sub", &conn_cb);
    redis_conn_init(&bp->cmd, "cmd", &conn_cb);
    bp->phase = BP_WAITING;
    rc_random_id(bp->canary_nonce, 8);

    bp->flush_ev = event_new(base, -1, 0, bp_on_flush_ev, bp);
    bp->tick_ev = event_new(base, -1, EV_PERSIST, bp_on_tick, bp);
    bp->retry_ev = evtimer_new(base, bp_on_retry, bp);
    redis_cmd__init(&bp->modules, base);
    struct timeval tick = ms_tv(TICK_MS), now = {0, 0};
    event_add(bp->tick_ev, &tick);
    event_add(bp->retry_ev, &now); /* the first attempt runs from the loop, not from here */

    char buf[300];
    rc_log_info("redis_backplane", "url=%s prefix=%s node=%s",
                rc_redis_url_redacted(&bp->url, buf, sizeof(buf)), bp->prefix, bp->node_id);
    return &bp->super;
}

/* ---- for redis_cmd.c (backplane_redis.h) ---------------------------------------------------- */

redis_bp *redis_bp__from(const rc_backplane *b)
{
    return b && b->ops == &redis_ops ? RC_CONTAINER_OF(b, redis_bp, super) : NULL;
}

redis_cmd_state *redis_bp__cmd_state(redis_bp *bp)
{
    return &bp->modules;
}

redis_conn *redis_bp__cmd_conn_if_up(redis_bp *bp)
{
    return bp->phase == BP_UP ? &bp->cmd : NULL;
}

const char *redis_bp__prefix(const redis_bp *bp)
{
    return bp->prefix;
}
