/*
 * backplane_redis_subs.c: the Redis backplane's subscription set and subscription barrier.
 * Shared state and the other files: src/backplane_redis.h; what Redis sees: docs/redis.md
 * ("Subscriptions: one channel per room, batched").
 *
 * The set: the backplane owns the channels it wants (bp->chans: bp_chan entries with `wanted` =
 * the node's wish, `sent` = what the current sub connection was last told). room_open,
 * room_close and ns_open only flip `wanted` and put the entry on the dirty list; one flush per
 * loop turn (flush_ev made active, so it runs after the callbacks already queued) sends the net
 * difference as UNSUBSCRIBE then SUBSCRIBE commands of up to SUB_BATCH channels each. Open,
 * close, open again within a turn costs nothing; an entry neither wanted nor sent is freed by the
 * flush. Raw channels (redis_cmd.h) are entries with raw_refs > 0 (ns NULL): subscribed, batched,
 * resubscribed and freed exactly like room channels, always by their literal name. Patterns
 * (rc_redis_pattern_open) are entries of their own, made only by that call: "<escaped prefix>*",
 * keyed with their NUL so that a literal channel of the same spelling stays another entry, sent
 * with PSUBSCRIBE/PUNSUBSCRIBE in batches of their own. Listen entries (rc_redis_listen_open)
 * are pattern entries too, on the backplane's own room and namespace channels of one namespace.
 *
 * The barrier (when_subscribed): Redis confirms a connection's (P)SUBSCRIBE channels in order,
 * so counting channels sent (subs_sent) and confirmed (subs_confirmed) is enough. A waiter's
 * target is subs_sent at the first flush after it registered; it goes (live = 1) once that many
 * are confirmed, or at once when no sub connection can confirm anything (the resync subscribes
 * later).
 *
 * Resync: a new sub connection starts with nothing sent (subs_reset when the old one went); once
 * it is CONNECTED every wanted entry is sent again, then the canary channel last, whose
 * confirmation (backplane_redis_recv.c) proves every earlier SUBSCRIBE was processed.
 *
 * What it does not do: decide anything about failure. The flush and the resync return -1 when
 * a command could not be sent; the caller (backplane_redis_phase.c, which also runs flush_ev)
 * fails the backplane. No timeout on a SUBSCRIBE reply: the canary covers a deaf subscription.
 *
 * Ownership: the entries and waiters are the backplane's, freed here (subs_dispose, when freed).
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"

#include <event2/event.h>
#include <string.h>

/* ---- names -------------------------------------------------------------------------------- */

/* Namespaces start with '/' and never contain ':', so "<P>:room:<ns>:<room>" splits at the
 * first ':' after "<P>:room:" and a room name may itself contain ':' ("meeting:42"). */
int redis_bp__ns_valid(const char *ns)
{
    return ns && ns[0] == '/' && !strchr(ns, ':');
}

void redis_bp__channel_build(const redis_bp *bp, bp_buf *b, const char *ns, const char *room)
{
    int kind = room ? RC_KEY_ROOM : RC_KEY_NS;
    size_t n = rc_key_write(b->p, b->cap, bp->prefix, kind, ns, room);
    if (n >= b->cap) { /* first use, or a longer name than any before: grow and write again */
        b->p = rc_realloc(b->p, n + 1);
        b->cap = n + 1;
        rc_key_write(b->p, b->cap, bp->prefix, kind, ns, room);
    }
    b->len = n;
}

/* ---- the set ------------------------------------------------------------------------------ */

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

bp_chan *redis_bp__chan_find(redis_bp *bp, const char *name, size_t len)
{
    rc_hmap_node *n = rc_hmap_find(&bp->chans, name, len);
    return n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
}

bp_chan *redis_bp__pattern_find(redis_bp *bp, const char *pat, size_t len)
{
    rc_hmap_node *n = rc_hmap_find(&bp->chans, pat, len + 1); /* with its NUL: a pattern's key */
    return n ? RC_CONTAINER_OF(n, bp_chan, node) : NULL;
}

int redis_bp__chan_wanted(const bp_chan *e)
{
    return e->wanted || e->raw_refs > 0;
}

void redis_bp__chan_mark_dirty(redis_bp *bp, bp_chan *e)
{
    if (e->dirty) return;
    e->dirty = 1;
    e->dirty_next = bp->dirty;
    bp->dirty = e;
}

void redis_bp__schedule_flush(redis_bp *bp)
{
    if (bp->flush_scheduled) return;
    bp->flush_scheduled = 1;
    event_active(bp->flush_ev, EV_TIMEOUT, 0);
}

void redis_bp__chan_set_wanted(redis_bp *bp, const char *ns, const char *room, int wanted)
{
    redis_bp__channel_build(bp, &bp->chan_buf, ns, room);
    bp_chan *e = redis_bp__chan_find(bp, bp->chan_buf.p, bp->chan_buf.len);
    if (!e) {
        if (!wanted) return;
        e = chan_new(bp->chan_buf.p, bp->chan_buf.len, ns, room);
        e->shard = -1;
        if (bp->cluster) { /* a sharded channel: SSUBSCRIBE on its slot's master */
            e->sharded = 1;
            e->slot = redis_cluster_slot(e->name, e->len);
        }
        rc_hmap_insert(&bp->chans, &e->node, e->name, e->len);
    }
    if (e->wanted == (unsigned)wanted) return;
    e->wanted = wanted ? 1 : 0;
    redis_bp__chan_mark_dirty(bp, e);
    redis_bp__schedule_flush(bp);
}

/* Raw channels (redis_cmd.h) may not pose as the backplane's own: room, namespace and canary
 * channels. */
static int raw_channel_valid(const redis_bp *bp, const char *channel)
{
    if (!channel || !channel[0]) return 0;
    if (strcmp(channel, bp->canary_channel) == 0) return 0;
    char start[256];
    for (int kind = RC_KEY_ROOM; kind <= RC_KEY_NS; kind++) {
        size_t n = rc_key_write(start, sizeof(start), bp->prefix, kind, "", NULL);
        if (n < sizeof(start) && strncmp(channel, start, n) == 0) return 0;
    }
    return 1;
}

void redis_bp__raw_open(redis_bp *bp, const char *channel)
{
    if (!raw_channel_valid(bp, channel)) {
        rc_log_warn("redis_bad_channel", "raw=\"%s\"", channel ? channel : "");
        return;
    }
    size_t len = strlen(channel);
    bp_chan *e = redis_bp__chan_find(bp, channel, len);
    if (!e) {
        e = rc_calloc(1, sizeof(*e) + len + 1);
        e->shard = -1;
        memcpy(e->name, channel, len);
        e->len = len;
        rc_hmap_insert(&bp->chans, &e->node, e->name, e->len);
    }
    if (e->raw_refs++ > 0) return;
    redis_bp__chan_mark_dirty(bp, e);
    redis_bp__schedule_flush(bp);
}

static void raw_release(redis_bp *bp, bp_chan *e)
{
    if (!e || e->raw_refs == 0) return;
    if (--e->raw_refs > 0) return;
    redis_bp__chan_mark_dirty(bp, e);
    redis_bp__schedule_flush(bp);
}

void redis_bp__raw_close(redis_bp *bp, const char *channel)
{
    raw_release(bp, redis_bp__chan_find(bp, channel, strlen(channel)));
}

/* Redis glob characters (stringmatchlen): each gets a backslash, so the prefix matches itself
 * only. */
static int is_glob_char(char c)
{
    return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\';
}

/* "<prefix with its glob characters escaped>*" into bp->chan_buf. */
static void pattern_build(redis_bp *bp, const char *prefix)
{
    bp_buf *b = &bp->chan_buf;
    b->len = 0;
    for (const char *p = prefix; *p; p++) {
        if (is_glob_char(*p)) bp_buf_put(b, "\\", 1);
        bp_buf_put(b, p, 1);
    }
    bp_buf_put(b, "*", 1);
}

/* A pattern may not reach the backplane's own channels (room, namespace, canary): neither may
 * start with the other. */
static int pattern_prefix_valid(const redis_bp *bp, const char *prefix)
{
    if (!prefix || !prefix[0]) return 0;
    size_t plen = strlen(prefix);
    static const int own[] = {RC_KEY_ROOM, RC_KEY_NS, RC_KEY_CANARY};
    char start[256];
    for (size_t i = 0; i < RC_ARRAY_LEN(own); i++) {
        size_t n = rc_key_write(start, sizeof(start), bp->prefix, own[i], "", NULL);
        if (n >= sizeof(start)) return 0;
        size_t common = n < plen ? n : plen;
        if (strncmp(prefix, start, common) == 0) return 0;
    }
    return 1;
}

/* One more reference on the pattern entry whose pattern is in bp->chan_buf, made on first use as
 * "<pattern>\0<tail>\0": tail is the prefix it was opened with (listen -1), or the namespace of a
 * listen entry (listen 1: every room, 0: the namespace channel). */
static void pattern_ref(redis_bp *bp, const char *tail, int listen)
{
    bp_chan *e = redis_bp__pattern_find(bp, bp->chan_buf.p, bp->chan_buf.len);
    if (!e) {
        size_t len = bp->chan_buf.len, tlen = strlen(tail);
        e = rc_calloc(1, sizeof(*e) + len + 1 + tlen + 1);
        e->shard = -1;
        memcpy(e->name, bp->chan_buf.p, len);
        memcpy(e->name + len + 1, tail, tlen);
        if (listen < 0) e->prefix = e->name + len + 1;
        else e->listen_ns = e->name + len + 1;
        e->listen_rooms = listen == 1;
        e->len = len;
        e->pattern = 1;
        rc_hmap_insert(&bp->chans, &e->node, e->name, e->len + 1);
    }
    if (e->raw_refs++ > 0) return;
    redis_bp__chan_mark_dirty(bp, e);
    redis_bp__schedule_flush(bp);
}

void redis_bp__pattern_open(redis_bp *bp, const char *prefix)
{
    if (!pattern_prefix_valid(bp, prefix)) {
        rc_log_warn("redis_bad_channel", "pattern=\"%s\"", prefix ? prefix : "");
        return;
    }
    pattern_build(bp, prefix);
    pattern_ref(bp, prefix, -1);
}

void redis_bp__pattern_close(redis_bp *bp, const char *prefix)
{
    pattern_build(bp, prefix);
    raw_release(bp, redis_bp__pattern_find(bp, bp->chan_buf.p, bp->chan_buf.len));
}

/* ---- listening: a namespace's own channels through patterns -------------------------------- */

/* Listen entries are pattern entries on the backplane's own channels, made only here: "<escaped
 * P:room:<ns>:>*" (room set: every room) and "<escaped P:ns:<ns>>" (no '*': that one channel),
 * named "<pattern>\0<ns>\0"; their pmessages are decoded like room messages and go to
 * on_overheard (backplane_redis_recv.c). */
static void listen_build(redis_bp *bp, const char *ns, int rooms)
{
    char *name = rc_key_new(bp->prefix, rooms ? RC_KEY_ROOM : RC_KEY_NS, ns, rooms ? "" : NULL);
    pattern_build(bp, name);
    rc_free(name);
    if (!rooms) bp->chan_buf.p[--bp->chan_buf.len] = '\0'; /* the channel itself: no '*' */
}

static void listen_entry(redis_bp *bp, const char *ns, int rooms, int open)
{
    listen_build(bp, ns, rooms);
    if (open) pattern_ref(bp, ns, rooms ? 1 : 0);
    else raw_release(bp, redis_bp__pattern_find(bp, bp->chan_buf.p, bp->chan_buf.len));
}

int redis_bp__listen(redis_bp *bp, const char *ns, int open)
{
    if (bp->cluster || !redis_bp__ns_valid(ns)) return -1; /* sharded channels have no patterns */
    listen_entry(bp, ns, 1, open);
    listen_entry(bp, ns, 0, open);
    return 0;
}

/* ---- the barrier --------------------------------------------------------------------------- */

/* Runs the waiters whose target is reached (all of them when `all`). */
static void waiters_run(redis_bp *bp, int all)
{
    sub_waiter **pp = &bp->waiters, *ready = NULL;
    while (*pp) {
        sub_waiter *w = *pp;
        if (all || (w->assigned && w->target <= bp->subs_confirmed &&
                    redis_bp__shards_reached(bp, w))) {
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
        rc_free(w->shard_targets);
        rc_free(w);
    }
}

void redis_bp__waiter_add(redis_bp *bp, void (*cb)(void *arg, int live), void *arg)
{
    sub_waiter *w = rc_calloc(1, sizeof(*w));
    w->cb = cb;
    w->arg = arg;
    w->next = bp->waiters;
    bp->waiters = w;
    redis_bp__schedule_flush(bp);
}

void redis_bp__waiters_check(redis_bp *bp)
{
    if (bp->waiters) waiters_run(bp, 0);
}

void redis_bp__sub_confirmed(redis_bp *bp)
{
    bp->subs_confirmed++;
    if (bp->waiters) waiters_run(bp, 0);
}

/* ---- flush and resync ---------------------------------------------------------------------- */

/* SUBSCRIBE-family command of bp->argv[0..argc) on the sub connection: replies reach on_push. */
static int sub_command(redis_bp *bp, int argc)
{
    return redis_conn_subscribe(&bp->sub, argc, bp->argv, bp->argvlen);
}

/* Sends the dirty entries whose `sent` differs from `subscribe` as batched commands; channels
 * and patterns (PSUBSCRIBE) in separate passes. */
static int send_batches_of(redis_bp *bp, int subscribe, int patterns)
{
    int n = 0;
    bp->argv[0] = patterns ? (subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE") : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    bp->argvlen[0] = strlen(bp->argv[0]);
    for (bp_chan *e = bp->dirty; e; e = e->dirty_next) {
        if (e->pattern != (unsigned)patterns || e->sharded) continue; /* sharded: the shards' */
        if (redis_bp__chan_wanted(e) != subscribe || e->sent == (unsigned)subscribe) continue;
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

int redis_bp__flush(redis_bp *bp)
{
    int rc = 0;
    if (bp->sub.state == REDIS_CONN_CONNECTED) {
        rc = send_batches(bp, 0);
        if (rc == 0) rc = send_batches(bp, 1);
    }
    if (bp->cluster && rc == 0) rc = redis_bp__shards_flush(bp);
    bp_chan *e = bp->dirty;
    bp->dirty = NULL;
    while (e) {
        bp_chan *next = e->dirty_next;
        e->dirty = 0;
        e->dirty_next = NULL;
        if (!redis_bp__chan_wanted(e) && !e->sent) {
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
        if (bp->nshards) {
            w->shard_targets = rc_calloc(bp->nshards, sizeof(*w->shard_targets));
            w->nshard_targets = bp->nshards;
            for (size_t i = 0; i < bp->nshards; i++) w->shard_targets[i] = bp->shards[i]->subs_sent;
        }
    }
    if (bp->sub.state != REDIS_CONN_CONNECTED || rc != 0 || redis_bp__shards_deaf(bp))
        waiters_run(bp, 1);
    else waiters_run(bp, 0);
    return rc;
}

void redis_bp__subs_reset(redis_bp *bp)
{
    waiters_run(bp, 1);
    bp->subs_sent = bp->subs_confirmed = 0;
    bp_chan *drop = NULL;
    for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
        bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
        e->sent = 0;
        e->confirmed = 0;
        e->shard = -1;
        e->dirty = 0;
        e->dirty_next = NULL;
        if (!redis_bp__chan_wanted(e)) {
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

int redis_bp__resync(redis_bp *bp)
{
    for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
        bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
        if (redis_bp__chan_wanted(e)) redis_bp__chan_mark_dirty(bp, e);
    }
    if (redis_bp__flush(bp) != 0) return -1;
    bp->argv[0] = "SUBSCRIBE";
    bp->argvlen[0] = 9;
    bp->argv[1] = bp->canary_channel;
    bp->argvlen[1] = strlen(bp->canary_channel);
    return sub_command(bp, 2);
}

/* ---- free ------------------------------------------------------------------------------------ */

void redis_bp__subs_dispose(redis_bp *bp)
{
    while (bp->waiters) { /* told with live = 0: only release what they hold */
        sub_waiter *w = bp->waiters;
        bp->waiters = w->next;
        w->cb(w->arg, 0);
        rc_free(w->shard_targets);
        rc_free(w);
    }
    rc_hmap_node *n = rc_hmap_first(&bp->chans);
    while (n) {
        rc_hmap_node *next = rc_hmap_next(&bp->chans, n);
        rc_free(RC_CONTAINER_OF(n, bp_chan, node));
        n = next;
    }
    rc_hmap_dispose(&bp->chans);
}
