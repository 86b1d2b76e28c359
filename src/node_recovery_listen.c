/*
 * node_recovery_listen.c: recovery listeners, so that a plain PUBLISH to a kept room is heard
 * even when every member of the room was on a node that died (docs/recovery.md, "Listeners").
 *
 * The hole they close: a backend's plain PUBLISH reaches the nodes subscribed to the room's
 * channel. A node keeps it (with an id) or marks a gap (without) when it hears it; but when the
 * only node with a member of the room is dead (SIGKILL, a crash), nobody hears it, and its
 * client would recover on a survivor with `recovered` true and without that event.
 *
 * Listeners: LISTENERS nodes of the fleet each hold a lease (P:listener-lease:<slot>, renewed
 * every TICK_MS, LEASE_MS long; a dead node's lease is free LEASE_MS later and taken by another
 * node at its next tick) and, while they hold it, hear every room and the namespace channel of
 * each recoverable namespace through patterns (rc_redis_listen_open). What they overhear takes
 * the path of a heard message with no delivery (rc_node__recovery_overheard): kept once with an
 * id, a gap mark without; messages that carry an offset (already kept) are ignored. With
 * socketio.prefix they also hear K#<ns>#<room># (a pattern on K#<ns>#): an emitter's or Node
 * server's broadcast to a kept room leaves a gap mark (rc_node__socketio_overheard).
 *
 * Proof of coverage, checked at every recovery: each listener incarnation (a lease taken, or the
 * backplane up again after a loss: a new sub connection) subscribes a marker channel of its own,
 * P:listener:<node>:<random>, on the same connection as its patterns, and once Redis has
 * confirmed both it records in P:listeners:<ns> marker -> start, the Redis time of the record, or
 * the earliest start of a listener still subscribed at that instant (PUBSUB NUMSUB of its marker)
 * if earlier: that one covered everything up to now, and this one covers from now on, so their
 * union is unbroken. A marker still subscribed at a later instant proves its listener was
 * subscribed all along (Redis drops a connection's subscriptions with it, and a new connection
 * gets a new marker). So a recovery (rc_node__listen_check, after the recovering node's own
 * subscriptions are confirmed) is safe when some marker is still subscribed with a start at or
 * before the client's offset: every plain PUBLISH since was heard by a listener. Else the client
 * gets a fresh session (result "unheard"), never a replay that may miss something. With leases
 * handed on one at a time (a rolling update: a draining node gives its lease back at once and
 * listens until it exits) the start never moves; only losing every listener at once does.
 *
 * What it does not do: work on a Redis Cluster (sharded channels have no patterns: there the
 * check answers "not applicable" and the hole is documented), deliver anything, or decide what
 * is kept (node_recovery.c). Left: a listener that dies between hearing a message and writing
 * its mark (milliseconds) loses it, like any node (docs/recovery.md).
 *
 * Ownership: everything here is this file's; replies find their state through n->listen and a
 * generation number (a reply for an older marker is ignored). Freed after the backplane, whose
 * free answers every pending reply first.
 *
 * API in call order: rc_node__listen_new -> rc_node__listen_state (backplane up/down) ->
 * rc_node__listen_overheard (on_overheard) / rc_node__listen_check (a recovery) ->
 * rc_node__listen_stop (drain) -> rc_node__listen_write_metrics -> rc_node__listen_free.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define LISTENERS 2
#define TICK_MS 1000
#define LEASE_MS 3000

enum { CHECK_COVERED, CHECK_UNHEARD, CHECK_ERROR, CHECK__COUNT };

struct rc_node_listen {
    struct event *tick_ev;
    char *lease_keys[LISTENERS];
    char **listeners_key;         /* by namespace index: P:listeners:<ns>, NULL when off */
    size_t ns_count;
    int slot;                     /* the lease held: 1..LISTENERS, 0 none */
    int listening;                /* the namespaces' patterns are open */
    int recorded;                 /* the current marker's coverage is written */
    int stopped;                  /* drained: the lease is given back, no more ticks */
    int lease_busy;               /* a lease call in flight */
    char *marker;                 /* the marker channel open now, or NULL */
    uint64_t gen;                 /* bumped whenever the marker changes */
    uint64_t checks[CHECK__COUNT], overheard, incarnations, leases_taken;
};

/* KEYS: the lease slots. ARGV: node id, lease ms, "1" take or renew / "0" give back. The slot
 * held afterwards (1-based), 0 for none. */
static rc_redis_script lease_script = {
    "for i, k in ipairs(KEYS) do\n"
    "  if redis.call('GET', k) == ARGV[1] then\n"
    "    if ARGV[3] == '0' then redis.call('DEL', k) return 0 end\n"
    "    redis.call('PEXPIRE', k, ARGV[2]) return i\n"
    "  end\n"
    "end\n"
    "if ARGV[3] == '0' then return 0 end\n"
    "for i, k in ipairs(KEYS) do\n"
    "  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then return i end\n"
    "end\n"
    "return 0\n",
    {0}};

/* KEYS: P:listeners:<ns> of each recoverable namespace. ARGV: the new marker. Records, in each,
 * marker -> the earliest start of the markers still subscribed, or now (Redis time, ms); drops
 * the markers nobody is subscribed to any more. */
static rc_redis_script record_script = {
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "for _, k in ipairs(KEYS) do\n"
    "  local start = now\n"
    "  local h = redis.call('HGETALL', k)\n"
    "  for i = 1, #h, 2 do\n"
    "    if redis.call('PUBSUB', 'NUMSUB', h[i])[2] > 0 then\n"
    "      local s = tonumber(h[i + 1])\n"
    "      if s and s < start then start = s end\n"
    "    else\n"
    "      redis.call('HDEL', k, h[i])\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', k, ARGV[1], string.format('%d', start))\n"
    "end\n"
    "return 1\n",
    {0}};

/* KEYS: P:listeners:<ns>. ARGV: the client's offset, its milliseconds. 1 when a marker still
 * subscribed started at or before it, else 0. */
static rc_redis_script check_script = {
    "local h = redis.call('HGETALL', KEYS[1])\n"
    "local at = tonumber(ARGV[1])\n"
    "for i = 1, #h, 2 do\n"
    "  local s = tonumber(h[i + 1])\n"
    "  if s and s <= at and redis.call('PUBSUB', 'NUMSUB', h[i])[2] > 0 then return 1 end\n"
    "end\n"
    "return 0\n",
    {0}};

static void on_tick(evutil_socket_t fd, short what, void *arg);

void rc_node__listen_new(rc_node *n)
{
    size_t count = rc_rules_ns_count(n->cfg->rules), wanted = 0;
    for (size_t i = 0; i < count; i++) wanted += rc_node__recovery_enabled(n, i) ? 1 : 0;
    if (!wanted || !rc_redis_available(n->bp)) return;
    if (rc_redis_clustered(n->bp)) {
        rc_log_warn("recovery_listeners_unavailable", "reason=cluster");
        return;
    }
    rc_node_listen *l = rc_calloc(1, sizeof(*l));
    l->ns_count = count;
    l->listeners_key = rc_calloc(count, sizeof(char *));
    for (size_t i = 0; i < count; i++)
        if (rc_node__recovery_enabled(n, i))
            l->listeners_key[i] = rc_key_new(n->cfg->prefix, RC_KEY_LISTENERS,
                                             rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, i)), NULL);
    for (int s = 0; s < LISTENERS; s++) {
        char slot[16];
        snprintf(slot, sizeof(slot), "%d", s + 1);
        l->lease_keys[s] = rc_key_new(n->cfg->prefix, RC_KEY_LISTENER_LEASE, slot, NULL);
    }
    l->tick_ev = event_new(n->base, -1, EV_PERSIST, on_tick, n);
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    event_add(l->tick_ev, &tv);
    n->listen = l;
}

void rc_node__listen_free(rc_node *n)
{
    rc_node_listen *l = n->listen;
    if (!l) return;
    event_free(l->tick_ev);
    for (size_t i = 0; i < l->ns_count; i++) rc_free(l->listeners_key[i]);
    rc_free(l->listeners_key);
    for (int s = 0; s < LISTENERS; s++) rc_free(l->lease_keys[s]);
    rc_free(l->marker);
    rc_free(l);
    n->listen = NULL;
}

/* ---- the marker and its record ------------------------------------------------------------ */

static void marker_close(rc_node *n)
{
    rc_node_listen *l = n->listen;
    l->gen++;
    l->recorded = 0;
    if (!l->marker) return;
    rc_redis_channel_close(n->bp, l->marker);
    rc_free(l->marker);
    l->marker = NULL;
}

typedef struct waiting {
    rc_node *n;
    uint64_t gen;
} waiting;

static void record_on_reply(void *arg, const redisReply *reply)
{
    waiting *w = arg;
    rc_node_listen *l = w->n->listen;
    /* NULL: the connection went (on_state(0) closes the marker) or the backplane is being
     * freed; nothing to do either way */
    if (l && l->gen == w->gen && reply) {
        if (reply->type == REDIS_REPLY_INTEGER) {
            l->recorded = 1;
            rc_log_info("recovery_listening", "node=%s marker=%s", w->n->cfg->node_id, l->marker);
        } else {
            rc_log_warn("recovery_listen_record_failed", "error=\"%s\"",
                        reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            marker_close(w->n); /* the next tick starts a new incarnation */
        }
    }
    rc_free(w);
}

/* The marker and the patterns are confirmed by Redis: record the coverage. */
static void on_confirmed(void *arg, int live)
{
    waiting *w = arg;
    rc_node *n = w->n;
    rc_node_listen *l = live ? n->listen : NULL;
    if (!l || l->gen != w->gen || !l->marker) {
        rc_free(w);
        return;
    }
    const char **argv = rc_calloc(l->ns_count + 1, sizeof(char *));
    int k = 0;
    for (size_t i = 0; i < l->ns_count; i++)
        if (l->listeners_key[i]) argv[k++] = l->listeners_key[i];
    argv[k] = l->marker;
    if (rc_redis_eval(n->bp, &record_script, record_on_reply, w, k, k + 1, argv, NULL) != 0) {
        rc_free(w);
        marker_close(n);
    }
    rc_free(argv);
}

/* A new incarnation: a fresh marker, subscribed with the patterns on the current connection. */
static void marker_open(rc_node *n)
{
    rc_node_listen *l = n->listen;
    marker_close(n);
    char nonce[17];
    rc_random_id(nonce, 16);
    l->marker = rc_key_new(n->cfg->prefix, RC_KEY_LISTENER, n->cfg->node_id, nonce);
    rc_redis_channel_open(n->bp, l->marker);
    l->incarnations++;
    waiting *w = rc_calloc(1, sizeof(*w));
    w->n = n;
    w->gen = l->gen;
    n->bp->ops->when_subscribed(n->bp, on_confirmed, w);
}

static void listening_set(rc_node *n, int on)
{
    rc_node_listen *l = n->listen;
    if (l->listening == on) return;
    if (!on) marker_close(n); /* the marker goes first: its UNSUBSCRIBE precedes the patterns' */
    for (size_t i = 0; i < l->ns_count; i++) {
        if (!l->listeners_key[i]) continue;
        const char *ns = rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, i));
        if (on) rc_redis_listen_open(n->bp, ns);
        else rc_redis_listen_close(n->bp, ns);
        char *k = rc_node__socketio_listen_prefix(n, ns); /* Socket.IO's formats: K#<ns># */
        if (k && on) rc_redis_pattern_open(n->bp, k);
        else if (k) rc_redis_pattern_close(n->bp, k);
        rc_free(k);
    }
    l->listening = on;
    if (on) marker_open(n);
}

/* ---- the lease ---------------------------------------------------------------------------- */

static void lease_on_reply(void *arg, const redisReply *reply)
{
    rc_node *n = arg;
    rc_node_listen *l = n->listen;
    if (!l) return;
    l->lease_busy = 0;
    if (!reply || reply->type != REDIS_REPLY_INTEGER || l->stopped) return; /* next tick */
    int slot = (int)reply->integer;
    if (slot && !l->slot) {
        l->leases_taken++;
        rc_log_info("recovery_listener_lease", "node=%s slot=%d", n->cfg->node_id, slot);
    }
    l->slot = slot;
    listening_set(n, slot > 0);
    if (slot && !l->marker && n->bp->ops->is_up(n->bp)) marker_open(n); /* a failed record */
}

static void lease_call(rc_node *n, int take)
{
    rc_node_listen *l = n->listen;
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", LEASE_MS);
    const char *argv[LISTENERS + 3];
    for (int s = 0; s < LISTENERS; s++) argv[s] = l->lease_keys[s];
    argv[LISTENERS] = n->cfg->node_id;
    argv[LISTENERS + 1] = ms;
    argv[LISTENERS + 2] = take ? "1" : "0";
    if (rc_redis_eval(n->bp, &lease_script, take ? lease_on_reply : NULL, n, LISTENERS, LISTENERS + 3, argv,
                      NULL) == 0 && take)
        l->lease_busy = 1;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    rc_node_listen *l = n->listen;
    if (l->stopped || l->lease_busy || !n->bp->ops->is_up(n->bp)) return;
    lease_call(n, 1);
}

void rc_node__listen_state(rc_node *n, int up)
{
    rc_node_listen *l = n->listen;
    if (!l) return;
    /* A lost connection took the marker's subscription with it: the next one needs a new
     * marker, or a record of the old one could pass for an unbroken incarnation. */
    if (!up) marker_close(n);
    else if (l->listening) marker_open(n);
    else if (!l->stopped && !l->lease_busy) lease_call(n, 1); /* at once, not a tick later */
}

void rc_node__listen_stop(rc_node *n)
{
    rc_node_listen *l = n->listen;
    if (!l || l->stopped) return;
    l->stopped = 1;
    event_del(l->tick_ev);
    /* Given back now, so another node listens before this one goes; this one listens until it
     * exits (its marker vanishes with its connection). */
    if (l->slot && n->bp->ops->is_up(n->bp)) lease_call(n, 0);
    l->slot = 0;
}

/* ---- what listeners do -------------------------------------------------------------------- */

void rc_node__listen_overheard(rc_node *n, const rc_bp_message *msg)
{
    rc_node_listen *l = n->listen;
    if (!l || !l->listening || msg->kind != RC_BP_EMIT) return;
    l->overheard++;
    rc_node__recovery_overheard(n, msg); /* kept once (an id) or a gap mark; nothing delivered */
}

typedef struct checking {
    rc_node *n;
    void (*done)(void *arg, int verdict);
    void *arg;
} checking;

static void check_on_reply(void *arg, const redisReply *reply)
{
    checking *c = arg;
    int verdict = !reply || reply->type != REDIS_REPLY_INTEGER ? -1 : reply->integer == 1 ? 1 : 0;
    rc_node_listen *l = c->n->listen;
    if (l) l->checks[verdict == 1 ? CHECK_COVERED : verdict == 0 ? CHECK_UNHEARD : CHECK_ERROR]++;
    c->done(c->arg, verdict);
    rc_free(c);
}

int rc_node__listen_check(rc_node *n, int ns_index, const char *offset, void (*done)(void *arg, int verdict),
                          void *arg)
{
    rc_node_listen *l = n->listen;
    if (!l || ns_index < 0 || (size_t)ns_index >= l->ns_count || !l->listeners_key[ns_index]) return 1;
    char ms[24];
    size_t len = strcspn(offset, "-");
    if (len == 0 || len >= sizeof(ms)) return -1;
    memcpy(ms, offset, len);
    ms[len] = '\0';
    checking *c = rc_calloc(1, sizeof(*c));
    c->n = n;
    c->done = done;
    c->arg = arg;
    const char *argv[] = {l->listeners_key[ns_index], ms};
    if (rc_redis_eval(n->bp, &check_script, check_on_reply, c, 1, 2, argv, NULL) != 0) {
        rc_free(c);
        return -1;
    }
    return 0;
}

void rc_node__listen_write_metrics(const rc_node *n, struct evbuffer *out)
{
    const rc_node_listen *l = n->listen;
    if (!l) return;
    static const char *const results[CHECK__COUNT] = {"covered", "unheard", "error"};
    rc_metrics_put_gauge_double(out, "roomcast_recovery_listening",
                         "1 while this node is a recovery listener with its coverage recorded.",
                         (double)(l->listening && l->recorded));
    rc_metrics_put_scalar(out, "roomcast_recovery_listener_incarnations_total", "counter",
                          "Listener incarnations started here (a lease taken, or Redis back after a loss).",
                          l->incarnations);
    rc_metrics_put_scalar(out, "roomcast_recovery_overheard_total", "counter",
                          "Emits this node heard as a listener only and kept or gap-marked.", l->overheard);
    rc_metrics_put_by_label(out, "roomcast_recovery_listener_checks_total", "counter",
                            "Recoveries' checks that a listener heard every room since the client's offset.",
                            "result", results, l->checks, 0, CHECK__COUNT);
}
