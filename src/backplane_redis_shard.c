/*
 * backplane_redis_shard.c: the Redis backplane's cluster mode: one pair of connections per master
 * of a Redis Cluster, room and namespace channels on sharded pub/sub, commands routed by slot.
 * Shared state and the other files: src/backplane_redis.h; slots and replies:
 * src/redis_cluster.h; what operators and backends see: docs/redis.md ("Redis Cluster").
 *
 * Topology: the home connections (bp->sub, bp->cmd) go to a seed node, taken in turn at each
 * attempt; once the home cmd is CONNECTED it is asked CLUSTER SHARDS (CLUSTER SLOTS if refused),
 * and every master gets a shard: its own sub (SSUBSCRIBE only) and cmd (SPUBLISH, its canary,
 * the modules' commands for its slots) connections. The home pair keeps what sharded pub/sub
 * cannot carry: the classic SUBSCRIBEs of module channels (P:status:<user>,
 * P:visibility:<node>, P:notify) and the one PSUBSCRIBE pattern, which Redis Cluster delivers
 * from any node (a PUBLISH goes to every node over the cluster bus), and the home canary.
 *
 * Channels: a room or namespace channel is SSUBSCRIBEd on the master of its slot. Redis wants
 * the channels of one SSUBSCRIBE in one slot, so the flush sends one command per slot (up to
 * SUB_BATCH channels), all of a loop turn pipelined on each shard's connection. Publishing is
 * SPUBLISH on the slot's master.
 *
 * Slot moves: a MOVED answer (to SPUBLISH, to SSUBSCRIBE, to a module's command) names the new
 * owner: the slot's entry in the map is corrected at once, the channels of that slot subscribed
 * elsewhere are subscribed again on the owner, and a publish is sent again there (once); an ASK
 * answer sends the publish to the named node once, after ASKING. A master that lost a slot
 * pushes `sunsubscribe` for its channels: they are subscribed again on the owner (the map may be
 * stale, then the owner answers MOVED, which corrects it). Each of these asks the home node for
 * the whole map again (one request at a time). A map whose masters differ from the shards (a
 * master added, removed or failed over), or a move of a shard's canary slot, fails the
 * backplane: everything reconnects and learns the topology anew (a few hundred ms at 503).
 *
 * Liveness: each shard has its own canary, "P:canary:<node>:{<tag>}" with a tag chosen so that
 * its slot is one the shard serves, SPUBLISHed on its cmd and received on its sub: the same
 * round trip, timings and command timeout as the home pair's (redis_link.h), judged from the
 * backplane's one tick (redis_bp__shards_tick). The backplane is UP only when the home
 * canary and every shard's came back; any shard connection failing fails the whole backplane,
 * so readiness never claims a shard that is deaf.
 *
 * What it does not do: no replicas (reads and subscriptions go to masters); no retry of a
 * module's command on MOVED (the module sees the error, the map is refreshed for the next one);
 * no resolution of host names returned by the cluster without blocking (CLUSTER SHARDS gives IP
 * addresses unless the cluster is configured to announce names).
 *
 * Ownership: the shards, the seeds, the map and the scratch array are the backplane's, freed by
 * redis_bp__shards_dispose. A publish in flight owns a copy of its channel and payload (to send
 * it again after a redirect), freed with its answer.
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CANARY_TAGS = 4096 }; /* tags tried for a shard's canary slot */

/* ---- seeds and setup ----------------------------------------------------------------------- */

void redis_bp__cluster_setup(redis_bp *bp, const char *const *hosts, const int *ports, size_t n)
{
    bp->cluster = 1;
    size_t pl = strlen(bp->prefix) + 3;
    bp->key_prefix = rc_malloc(pl);
    snprintf(bp->key_prefix, pl, "{%s}", bp->prefix);
    bp->seed_hosts = rc_calloc(n ? n : 1, sizeof(*bp->seed_hosts));
    bp->seed_ports = rc_calloc(n ? n : 1, sizeof(*bp->seed_ports));
    for (size_t i = 0; i < n; i++) {
        bp->seed_hosts[i] = rc_strdup(hosts[i]);
        bp->seed_ports[i] = ports[i];
    }
    bp->nseeds = n;
    for (size_t s = 0; s < REDIS_CLUSTER_SLOTS; s++) bp->map.owner[s] = -1;
    bp->map.unowned = REDIS_CLUSTER_SLOTS;
}

void redis_bp__cluster_next_seed(redis_bp *bp)
{
    if (!bp->nseeds) return;
    size_t i = bp->seed_at++ % bp->nseeds;
    rc_free(bp->url.host);
    bp->url.host = rc_strdup(bp->seed_hosts[i]);
    bp->url.port = bp->seed_ports[i];
}

static void request_refresh(redis_bp *bp);

/* ---- the barrier's bookkeeping -------------------------------------------------------------- */

/* One SSUBSCRIBE sent on a shard's sub and not wholly confirmed: Redis answers them in order. */
typedef struct pending_sub {
    uint16_t slot;
    uint16_t canary;
    uint32_t left;
} pending_sub;

typedef struct shard_ext {
    pending_sub *q;
    size_t head, len, cap;
} shard_ext;

/* The shard's queue lives after the struct (allocated together). */
static shard_ext *ext(bp_shard *sh)
{
    return (shard_ext *)(sh + 1);
}

static void q_push(bp_shard *sh, uint16_t slot, uint32_t n, int canary)
{
    shard_ext *x = ext(sh);
    if (x->len == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        pending_sub *q = rc_malloc(cap * sizeof(*q));
        for (size_t i = 0; i < x->len; i++) q[i] = x->q[(x->head + i) % x->cap];
        rc_free(x->q);
        x->q = q;
        x->cap = cap;
        x->head = 0;
    }
    pending_sub *p = &x->q[(x->head + x->len++) % x->cap];
    p->slot = slot;
    p->canary = (uint16_t)canary;
    p->left = n;
}

static pending_sub *q_head(bp_shard *sh)
{
    shard_ext *x = ext(sh);
    return x->len ? &x->q[x->head] : NULL;
}

static void q_pop(bp_shard *sh)
{
    shard_ext *x = ext(sh);
    x->head = (x->head + 1) % x->cap;
    x->len--;
}

int redis_bp__shards_reached(const redis_bp *bp, const sub_waiter *w)
{
    if (!w->shard_targets) return 1;
    for (size_t i = 0; i < w->nshard_targets && i < bp->nshards; i++)
        if (bp->shards[i]->subs_confirmed < w->shard_targets[i]) return 0;
    return 1;
}

int redis_bp__shards_deaf(const redis_bp *bp)
{
    if (!bp->cluster) return 0;
    if (bp->topo != 2) return 1;
    for (size_t i = 0; i < bp->nshards; i++)
        if (bp->shards[i]->sub.state != REDIS_CONN_CONNECTED) return 1;
    return 0;
}

/* ---- entries that must move ------------------------------------------------------------------ */

/* e is no longer subscribed anywhere (its shard dropped it or does not own its slot): the next
 * flush subscribes it on the owner. */
static void entry_unsend(redis_bp *bp, bp_chan *e)
{
    if (e->sent && e->shard >= 0 && (size_t)e->shard < bp->nshards) {
        bp->shards[e->shard]->nsubscribed--;
        bp->nsubscribed--;
    }
    e->sent = 0;
    e->confirmed = 0;
    e->shard = -1;
    redis_bp__chan_mark_dirty(bp, e);
}

/* Every sharded entry subscribed on a shard that is not its slot's owner now (slot -1: all, and
 * the wanted ones not subscribed anywhere, whose slot had no owner before). */
static void reroute(redis_bp *bp, int slot)
{
    int moved = 0;
    for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
        bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
        if (!e->sharded || (slot >= 0 && e->slot != slot)) continue;
        if (!e->sent) {
            if (slot < 0 && redis_bp__chan_wanted(e)) {
                redis_bp__chan_mark_dirty(bp, e);
                moved = 1;
            }
            continue;
        }
        if (redis_cluster_owner(&bp->map, e->slot) == e->shard) continue;
        entry_unsend(bp, e);
        moved = 1;
    }
    if (moved) redis_bp__schedule_flush(bp);
}

/* A MOVED naming host:port for slot (host "" = the node that answered, at index `from`).
 * 0 when the map now says so, -1 when the owner is not one of the shards (the caller fails). */
static int apply_moved(redis_bp *bp, uint16_t slot, const char *host, int port, int from)
{
    int idx = host[0] ? redis_cluster_find(&bp->map, host, port)
                      : (from >= 0 ? redis_cluster_find(&bp->map, bp->shards[from]->host, port) : -1);
    bp->moved++;
    request_refresh(bp);
    if (idx < 0) return -1;
    if (bp->map.owner[slot] < 0) bp->map.unowned--;
    bp->map.owner[slot] = (int16_t)idx;
    reroute(bp, slot);
    return 0;
}

/* ---- the shards' connections ---------------------------------------------------------------- */

static void shard_on_ready(void *arg, redis_conn *c);
static void shard_on_fail(void *arg, redis_conn *c, const char *reason);
static void shard_on_push(void *arg, redis_conn *c, redisReply *reply);

/* "P:canary:<node>:{<tag>}" whose slot is served by sh: among CANARY_TAGS tags, the highest such
 * slot (a reshard moves a shard's lowest slots first, so the canary moves least often). */
static void shard_pick_canary(redis_bp *bp, bp_shard *sh)
{
    char tag[16];
    int best = -1, best_tag = 0;
    for (int t = 0; t < CANARY_TAGS; t++) {
        int n = snprintf(tag, sizeof(tag), "%d", t);
        uint16_t slot = redis_cluster_slot(tag, (size_t)n);
        if (redis_cluster_owner(&bp->map, slot) == sh->index && (int)slot > best) {
            best = slot;
            best_tag = t;
        }
    }
    rc_free(sh->canary_channel);
    char *base = rc_key_new(bp->prefix, RC_KEY_CANARY, bp->node_id, NULL);
    size_t n = strlen(base) + 24;
    sh->canary_channel = rc_malloc(n);
    snprintf(sh->canary_channel, n, "%s:{%d}", base, best >= 0 ? best_tag : 0);
    rc_free(base);
    sh->canary_len = strlen(sh->canary_channel);
    sh->canary_slot = redis_cluster_slot(sh->canary_channel, sh->canary_len);
}

static bp_shard *shard_new(redis_bp *bp, int index, const char *host, int port)
{
    bp_shard *sh = rc_calloc(1, sizeof(*sh) + sizeof(shard_ext));
    sh->bp = bp;
    sh->index = index;
    sh->host = rc_strdup(host);
    sh->port = port;
    redis_conn_callbacks cb = {
        .on_ready = shard_on_ready,
        .on_fail = shard_on_fail,
        .on_push = shard_on_push,
        .arg = sh,
    };
    redis_conn_init(&sh->sub, bp->base, "shard-sub", &cb);
    redis_conn_init(&sh->cmd, bp->base, "shard-cmd", &cb);
    return sh;
}

/* The shards are closed (redis_bp__fail closed them); not called from one of their callbacks. */
static void shards_free(redis_bp *bp)
{
    for (size_t i = 0; i < bp->nshards; i++) {
        bp_shard *sh = bp->shards[i];
        redis_conn_close(&sh->sub);
        redis_conn_close(&sh->cmd);
        redis_conn_dispose(&sh->sub);
        redis_conn_dispose(&sh->cmd);
        redis_script_dispose(&sh->scripts);
        rc_free(ext(sh)->q);
        rc_free(sh->canary_channel);
        rc_free(sh->host);
        rc_free(sh);
    }
    rc_free(bp->shards);
    bp->shards = NULL;
    bp->nshards = 0;
}

static int shards_match(const redis_bp *bp, const redis_cluster_map *m)
{
    if (bp->nshards != m->nmasters) return 0;
    for (size_t i = 0; i < m->nmasters; i++)
        if (bp->shards[i]->port != m->masters[i].port || strcmp(bp->shards[i]->host, m->masters[i].host))
            return 0;
    return 1;
}

/* CONNECTING, topology known: the shards (the same ones again when the masters did not change)
 * and their connections. */
static void shards_connect(redis_bp *bp, redis_cluster_map *m)
{
    if (!shards_match(bp, m)) {
        shards_free(bp);
        bp->shards = rc_calloc(m->nmasters, sizeof(*bp->shards));
        for (size_t i = 0; i < m->nmasters; i++)
            bp->shards[i] = shard_new(bp, (int)i, m->masters[i].host, m->masters[i].port);
        bp->nshards = m->nmasters;
    }
    redis_cluster_map_dispose(&bp->map);
    bp->map = *m; /* takes its masters */
    bp->topo = 2;
    for (size_t i = 0; i < bp->nshards; i++) {
        bp_shard *sh = bp->shards[i];
        shard_pick_canary(bp, sh);
        redis_conn_target t = {
            .ip = sh->host,
            .port = sh->port,
            .ssl_ctx = bp->ssl_ctx,
            .tls_name = bp->server_name ? bp->server_name : sh->host,
        };
        if (redis_conn_open(&sh->sub, &t, &bp->url, bp->sub_name) != 0 ||
            redis_conn_open(&sh->cmd, &t, &bp->url, bp->cmd_name) != 0) {
            redis_bp__fail(bp, "could not start connecting to a cluster master");
            return;
        }
    }
    char masters[256];
    size_t w = 0;
    for (size_t i = 0; i < bp->nshards && w < sizeof(masters) - 1; i++)
        w += (size_t)snprintf(masters + w, sizeof(masters) - w, "%s%s:%d", i ? "," : "",
                              bp->shards[i]->host, bp->shards[i]->port);
    rc_log_info("redis_cluster_topology", "masters=%zu unowned_slots=%zu addresses=%s",
                bp->nshards, bp->map.unowned, masters);
}

/* ---- topology ---------------------------------------------------------------------------- */

static void topo_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply);
static void topo_on_slots(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply);

static int topo_send(redis_bp *bp, int slots)
{
    const char *argv[2] = {"CLUSTER", slots ? "SLOTS" : "SHARDS"};
    size_t lens[2] = {7, slots ? 5u : 6u};
    return redis_conn_command(&bp->cmd, slots ? topo_on_slots : topo_on_reply, bp, 2, argv, lens);
}

void redis_bp__cluster_ask(redis_bp *bp)
{
    bp->topo = 1;
    bp->refreshing = 0;
    if (topo_send(bp, 0) != 0) redis_bp__fail(bp, "CLUSTER SHARDS could not be sent");
}

static void request_refresh(redis_bp *bp)
{
    if (bp->refreshing || bp->phase != BP_UP || bp->topo != 2) return;
    if (topo_send(bp, 0) == 0) bp->refreshing = 1;
}

/* A refresh while UP: the same masters (only slots moved), or everything again. */
static void topo_refresh(redis_bp *bp, redis_cluster_map *m)
{
    bp->refreshes++;
    if (!shards_match(bp, m)) {
        redis_cluster_map_dispose(m);
        redis_bp__fail(bp, "cluster masters changed");
        return;
    }
    redis_cluster_map_dispose(&bp->map);
    bp->map = *m;
    for (size_t i = 0; i < bp->nshards; i++) {
        if (redis_cluster_owner(&bp->map, bp->shards[i]->canary_slot) != (int)i) {
            redis_bp__fail(bp, "a shard's canary slot moved");
            return;
        }
    }
    reroute(bp, -1);
}

static void topo_handle(redis_bp *bp, redisReply *reply, int slots)
{
    if (!reply || bp->phase == BP_WAITING || bp->phase == BP_CLOSED) return;
    int refresh = bp->refreshing;
    bp->refreshing = 0;
    if (reply->type == REDIS_REPLY_ERROR && !slots) { /* no CLUSTER SHARDS (ACL, older Redis) */
        if (topo_send(bp, 1) != 0) redis_bp__fail(bp, "CLUSTER SLOTS could not be sent");
        else bp->refreshing = refresh;
        return;
    }
    redis_cluster_map m;
    memset(&m, 0, sizeof(m));
    const char *err = NULL;
    char reason[200];
    int rc = reply->type == REDIS_REPLY_ERROR ? -1
             : slots ? redis_cluster_map_from_slots(&m, reply, bp->url.host, &err)
                     : redis_cluster_map_from_shards(&m, reply, bp->url.host, bp->url.tls, &err);
    if (rc != 0 || m.nmasters == 0) {
        snprintf(reason, sizeof(reason), "cluster topology: %s",
                 reply->type == REDIS_REPLY_ERROR ? reply->str : err ? err : "no master serves a slot");
        redis_cluster_map_dispose(&m);
        if (refresh) {
            rc_log_warn("redis_cluster_refresh_failed", "reason=\"%s\"", reason);
            return;
        }
        redis_bp__fail(bp, reason);
        return;
    }
    if (refresh) topo_refresh(bp, &m);
    else if (bp->phase == BP_CONNECTING && bp->topo == 1) shards_connect(bp, &m);
    else redis_cluster_map_dispose(&m);
}

static void topo_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    topo_handle(arg, reply, 0);
}

static void topo_on_slots(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    topo_handle(arg, reply, 1);
}

/* ---- phases ---------------------------------------------------------------------------------- */

int redis_bp__shards_connected(const redis_bp *bp)
{
    if (bp->topo != 2 || !bp->nshards) return 0;
    for (size_t i = 0; i < bp->nshards; i++)
        if (bp->shards[i]->sub.state != REDIS_CONN_CONNECTED ||
            bp->shards[i]->cmd.state != REDIS_CONN_CONNECTED)
            return 0;
    return 1;
}

static void canary_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    bp_shard *sh = arg;
    redis_bp *bp = sh->bp;
    if (!reply) return;
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        bp->canary_failures++;
        redis_bp__fail(bp, "a shard's canary channel has no subscriber");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        char reason[200];
        snprintf(reason, sizeof(reason), "a shard's canary SPUBLISH refused: %s", reply->str);
        redis_bp__fail(bp, reason);
    }
}

static void shard_send_canary(redis_bp *bp, bp_shard *sh)
{
    redis_link_canary_send(&sh->canary, &sh->cmd, "SPUBLISH", sh->canary_channel, sh->canary_len,
                           bp->canary_nonce, canary_on_reply, sh);
}

void redis_bp__shards_probe(redis_bp *bp)
{
    for (size_t i = 0; i < bp->nshards; i++) {
        bp_shard *sh = bp->shards[i];
        if (sh->synced && !sh->canary.ok && !sh->canary.pending) shard_send_canary(bp, sh);
    }
}

int redis_bp__shards_ok(const redis_bp *bp)
{
    if (bp->topo != 2 || !bp->nshards) return 0;
    for (size_t i = 0; i < bp->nshards; i++)
        if (!bp->shards[i]->canary.ok) return 0;
    return 1;
}

int redis_bp__shards_tick(redis_bp *bp, uint64_t now_ms)
{
    uint64_t now_ns = rc_now_mono_ns();
    for (size_t i = 0; i < bp->nshards; i++) {
        bp_shard *sh = bp->shards[i];
        if (redis_link_canary_lost(&sh->canary, now_ms, sh->last_push_ms)) {
            bp->canary_failures++;
            redis_bp__fail(bp, "a shard's canary not received");
            return -1;
        }
        if (redis_conn_overdue(&sh->cmd, now_ns, REDIS_LINK_COMMAND_TIMEOUT_MS * 1000000ull)) {
            bp->command_timeouts++;
            redis_bp__fail(bp, "a shard's command timed out");
            return -1;
        }
        if (redis_link_canary_due(&sh->canary, now_ms)) shard_send_canary(bp, sh);
    }
    return 0;
}

void redis_bp__shards_close(redis_bp *bp)
{
    for (size_t i = 0; i < bp->nshards; i++) {
        bp_shard *sh = bp->shards[i];
        redis_conn_close(&sh->sub);
        redis_conn_close(&sh->cmd);
        sh->synced = 0;
        redis_link_canary_reset(&sh->canary);
        sh->subs_sent = sh->subs_confirmed = 0;
        sh->nsubscribed = 0;
        ext(sh)->head = ext(sh)->len = 0;
    }
    bp->topo = 0;
    bp->refreshing = 0;
}

/* ---- a shard's connections ------------------------------------------------------------------ */

static void shard_on_ready(void *arg, redis_conn *c)
{
    bp_shard *sh = arg;
    redis_bp *bp = sh->bp;
    if (c == &sh->sub) {
        /* every wanted channel of this shard's slots, then its canary last */
        for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
            bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
            if (e->sharded && !e->sent && redis_bp__chan_wanted(e)) redis_bp__chan_mark_dirty(bp, e);
        }
        const char *argv[2] = {"SSUBSCRIBE", sh->canary_channel};
        size_t lens[2] = {10, sh->canary_len};
        if (redis_bp__flush(bp) != 0 || redis_conn_subscribe(&sh->sub, 2, argv, lens) != 0) {
            redis_bp__fail(bp, "SSUBSCRIBE could not be sent");
            return;
        }
        q_push(sh, sh->canary_slot, 1, 1);
    }
    redis_bp__maybe_probe(bp);
}

static void shard_on_fail(void *arg, redis_conn *c, const char *reason)
{
    bp_shard *sh = arg;
    char r[300];
    snprintf(r, sizeof(r), "%s:%d: %s", sh->host, sh->port, reason);
    redis_bp__fail(sh->bp, r);
}

static void shard_on_canary(redis_bp *bp, bp_shard *sh, const char *payload, size_t len)
{
    if (!redis_link_canary_received(&sh->canary, bp->canary_nonce, payload, len) ||
        bp->phase != BP_SYNCING || sh->canary.ok)
        return;
    sh->canary.ok = 1;
    redis_bp__maybe_probe(bp);
}

/* An SSUBSCRIBE's confirmation (one per channel, in order). */
static void shard_confirmed(redis_bp *bp, bp_shard *sh, const char *chan, size_t len, int canary)
{
    pending_sub *p = q_head(sh);
    if (p && --p->left == 0) q_pop(sh);
    if (canary) {
        sh->synced = 1;
        redis_bp__maybe_probe(bp);
        return;
    }
    bp_chan *e = redis_bp__chan_find(bp, chan, len);
    if (e && e->sharded && e->sent && e->shard == sh->index) e->confirmed = 1;
    sh->subs_confirmed++;
    redis_bp__waiters_check(bp);
}

/* An error on the sub: MOVED for an SSUBSCRIBE (its slot moved, the map was stale) re-routes its
 * channels; anything else fails the backplane. */
static void shard_sub_error(redis_bp *bp, bp_shard *sh, const redisReply *reply)
{
    uint16_t slot;
    int port;
    char host[256];
    if (redis_cluster_redirect(reply->str, reply->len, &slot, host, sizeof(host), &port) == 1) {
        pending_sub *p = q_head(sh);
        if (p && p->slot == slot) {
            if (p->canary) {
                redis_bp__fail(bp, "a shard's canary slot moved");
                return;
            }
            sh->subs_confirmed += p->left; /* answered: nothing will confirm them */
            q_pop(sh);
            redis_bp__waiters_check(bp);
        }
        for (rc_hmap_node *n = rc_hmap_first(&bp->chans); n; n = rc_hmap_next(&bp->chans, n)) {
            bp_chan *e = RC_CONTAINER_OF(n, bp_chan, node);
            if (e->sharded && e->sent && e->slot == slot && e->shard == sh->index) entry_unsend(bp, e);
        }
        if (apply_moved(bp, slot, host, port, sh->index) != 0)
            redis_bp__fail(bp, "a slot moved to a master this node does not know");
        else
            redis_bp__schedule_flush(bp);
        return;
    }
    char reason[200];
    snprintf(reason, sizeof(reason), "SSUBSCRIBE refused: %s", reply->str);
    redis_bp__fail(bp, reason);
}

static void shard_on_push(void *arg, redis_conn *c, redisReply *reply)
{
    bp_shard *sh = arg;
    redis_bp *bp = sh->bp;
    sh->last_push_ms = rc_now_mono_ms();
    if (c != &sh->sub) return;
    if (reply->type == REDIS_REPLY_ERROR) {
        shard_sub_error(bp, sh, reply);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1];
    int canary = chan->len == sh->canary_len && memcmp(chan->str, sh->canary_channel, chan->len) == 0;

    if (strcmp(kind, "smessage") == 0) {
        const redisReply *payload = reply->element[2];
        if (payload->type != REDIS_REPLY_STRING) return;
        if (canary) shard_on_canary(bp, sh, payload->str, payload->len);
        else redis_bp__message(bp, chan->str, chan->len, payload->str, payload->len);
    } else if (strcmp(kind, "ssubscribe") == 0) {
        shard_confirmed(bp, sh, chan->str, chan->len, canary);
    } else if (strcmp(kind, "sunsubscribe") == 0) {
        if (canary) {
            redis_bp__fail(bp, "a shard's canary slot moved");
            return;
        }
        /* Our own SUNSUBSCRIBE left the entry unsent; a confirmed entry still sent here was
         * dropped by Redis: its slot moved. */
        bp_chan *e = redis_bp__chan_find(bp, chan->str, chan->len);
        if (!e || !e->sharded || !e->sent || !e->confirmed || e->shard != sh->index) return;
        bp->slot_drops++;
        entry_unsend(bp, e);
        redis_bp__schedule_flush(bp);
        request_refresh(bp);
    }
}

/* ---- the flush ------------------------------------------------------------------------------- */

typedef struct pick {
    bp_chan *e;
    int sub;      /* 1 SSUBSCRIBE, 0 SUNSUBSCRIBE */
    int shard;
} pick;

static int pick_cmp(const void *a, const void *b)
{
    const pick *x = a, *y = b;
    if (x->sub != y->sub) return x->sub - y->sub; /* SUNSUBSCRIBE first */
    if (x->shard != y->shard) return x->shard - y->shard;
    return (int)x->e->slot - (int)y->e->slot;
}

static int send_run(redis_bp *bp, const pick *run, size_t n)
{
    bp_shard *sh = bp->shards[run[0].shard];
    const char *cmd = run[0].sub ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
    for (size_t at = 0; at < n; at += SUB_BATCH) {
        size_t k = n - at < SUB_BATCH ? n - at : SUB_BATCH;
        bp->argv[0] = cmd;
        bp->argvlen[0] = strlen(cmd);
        for (size_t i = 0; i < k; i++) {
            bp->argv[i + 1] = run[at + i].e->name;
            bp->argvlen[i + 1] = run[at + i].e->len;
        }
        if (redis_conn_subscribe(&sh->sub, (int)k + 1, bp->argv, bp->argvlen) != 0) return -1;
        for (size_t i = 0; i < k; i++) {
            bp_chan *e = run[at + i].e;
            if (run[0].sub) {
                e->sent = 1;
                e->confirmed = 0;
                e->shard = (int16_t)sh->index;
                sh->nsubscribed++;
                bp->nsubscribed++;
                sh->subs_sent++;
            } else {
                sh->nsubscribed--;
                bp->nsubscribed--;
                e->sent = 0;
                e->confirmed = 0;
                e->shard = -1;
            }
        }
        if (run[0].sub) q_push(sh, run[0].e->slot, (uint32_t)k, 0);
    }
    return 0;
}

int redis_bp__shards_flush(redis_bp *bp)
{
    if (bp->topo != 2) return 0; /* the shards' resync sends them */
    size_t n = 0;
    for (bp_chan *e = bp->dirty; e; e = e->dirty_next)
        if (e->sharded && redis_bp__chan_wanted(e) != e->sent) n++;
    if (!n) return 0;
    if (n > bp->scratch_cap) {
        rc_free(bp->scratch);
        bp->scratch = rc_malloc(n * sizeof(pick));
        bp->scratch_cap = n;
    }
    pick *picks = (pick *)bp->scratch;
    size_t m = 0;
    for (bp_chan *e = bp->dirty; e; e = e->dirty_next) {
        if (!e->sharded || redis_bp__chan_wanted(e) == e->sent) continue;
        int sub = !e->sent;
        int shard = sub ? redis_cluster_owner(&bp->map, e->slot) : e->shard;
        if (shard < 0 || (size_t)shard >= bp->nshards ||
            bp->shards[shard]->sub.state != REDIS_CONN_CONNECTED) {
            /* no owner known, or its sub is not up: the shard's resync (or a refresh) sends it;
             * an unsubscribe from a shard that is gone needs nothing */
            if (!sub) entry_unsend(bp, e);
            continue;
        }
        picks[m].e = e;
        picks[m].sub = sub;
        picks[m].shard = shard;
        m++;
    }
    qsort(picks, m, sizeof(*picks), pick_cmp);
    for (size_t i = 0; i < m;) {
        size_t j = i + 1;
        while (j < m && picks[j].sub == picks[i].sub && picks[j].shard == picks[i].shard &&
               picks[j].e->slot == picks[i].e->slot)
            j++;
        if (send_run(bp, picks + i, j - i) != 0) return -1;
        i = j;
    }
    return 0;
}

/* ---- publishing ------------------------------------------------------------------------------ */

typedef struct pub_req {
    redis_bp *bp;
    uint16_t slot;
    int redirected;
    size_t chanlen, len;
    char data[]; /* channel, then payload */
} pub_req;

static void pub_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply);

static void asking_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
}

static int pub_send(redis_bp *bp, bp_shard *sh, pub_req *p, int asking)
{
    if (asking) {
        const char *a[1] = {"ASKING"};
        size_t al[1] = {6};
        if (redis_conn_command(&sh->cmd, asking_on_reply, NULL, 1, a, al) != 0) return -1;
    }
    const char *argv[3] = {"SPUBLISH", p->data, p->data + p->chanlen};
    size_t lens[3] = {8, p->chanlen, p->len};
    if (redis_conn_command(&sh->cmd, pub_on_reply, p, 3, argv, lens) != 0) return -1;
    sh->publishes++;
    return 0;
}

static int shard_of_conn(const redis_bp *bp, const redis_conn *c)
{
    for (size_t i = 0; i < bp->nshards; i++)
        if (&bp->shards[i]->cmd == c) return (int)i;
    return -1;
}

static void pub_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    pub_req *p = arg;
    redis_bp *bp = p->bp;
    if (!reply) { /* the connection went away (the backplane may be gone too) */
        rc_free(p);
        return;
    }
    rc_histogram_observe(&bp->publish_latency, (double)(rc_now_mono_ns() - cmd->sent_ns) / 1e9);
    if (reply->type == REDIS_REPLY_ERROR) {
        uint16_t slot;
        int port;
        char host[256];
        int kind = redis_cluster_redirect(reply->str, reply->len, &slot, host, sizeof(host), &port);
        if (kind && !p->redirected && bp->phase == BP_UP) {
            int from = shard_of_conn(bp, c);
            int idx = -1;
            if (kind == 1) {
                if (apply_moved(bp, slot, host, port, from) == 0) idx = bp->map.owner[slot];
            } else {
                bp->asks++;
                idx = host[0] ? redis_cluster_find(&bp->map, host, port) : from;
            }
            p->redirected = 1;
            if (idx >= 0 && pub_send(bp, bp->shards[idx], p, kind == 2) == 0) return;
        }
        bp->super.stats.publish_failures++;
        rc_log_debug("redis_publish_error", "error=\"%s\"", reply->str);
    }
    rc_free(p);
}

int redis_bp__shard_publish(redis_bp *bp, const char *chan, size_t chanlen, const char *payload,
                            size_t len)
{
    uint16_t slot = redis_cluster_slot(chan, chanlen);
    int idx = redis_cluster_owner(&bp->map, slot);
    if (idx < 0 || (size_t)idx >= bp->nshards) return -1;
    pub_req *p = rc_malloc(sizeof(*p) + chanlen + len);
    p->bp = bp;
    p->slot = slot;
    p->redirected = 0;
    p->chanlen = chanlen;
    p->len = len;
    memcpy(p->data, chan, chanlen);
    memcpy(p->data + chanlen, payload, len);
    if (pub_send(bp, bp->shards[idx], p, 0) != 0) {
        rc_free(p);
        return -1;
    }
    return 0;
}

/* ---- modules' commands ---------------------------------------------------------------------- */

typedef struct mod_req {
    redis_bp *bp;
    rc_redis_reply_fn cb;
    void *arg;
} mod_req;

static void mod_on_reply(void *arg, const redisReply *reply)
{
    mod_req *q = arg;
    uint16_t slot;
    int port;
    char host[256];
    /* MOVED: the map is stale; the module sees the error and the next call goes right */
    if (reply && reply->type == REDIS_REPLY_ERROR &&
        redis_cluster_redirect(reply->str, reply->len, &slot, host, sizeof(host), &port) == 1 &&
        q->bp->phase == BP_UP && apply_moved(q->bp, slot, host, port, -1) != 0)
        request_refresh(q->bp);
    if (q->cb) q->cb(q->arg, reply);
    rc_free(q);
}

int redis_bp__shard_command(redis_bp *bp, const char *key, size_t keylen, rc_redis_script *script,
                            rc_redis_reply_fn cb, void *arg, int nkeys, int argc,
                            const char **argv, const size_t *argvlen)
{
    redis_conn *c = &bp->cmd;
    redis_script_state *st = &bp->scripts;
    if (key && bp->topo == 2) {
        int idx = redis_cluster_owner(&bp->map, redis_cluster_slot(key, keylen));
        if (idx >= 0 && (size_t)idx < bp->nshards) {
            c = &bp->shards[idx]->cmd;
            st = &bp->shards[idx]->scripts;
        }
    }
    mod_req *q = rc_malloc(sizeof(*q));
    q->bp = bp;
    q->cb = cb;
    q->arg = arg;
    int rc = script ? redis_script_eval(st, c, script, mod_on_reply, q, nkeys, argc, argv, argvlen)
                    : redis_script_command(st, c, mod_on_reply, q, argc, argv, argvlen);
    if (rc != 0) rc_free(q);
    return rc;
}

/* ---- free ------------------------------------------------------------------------ */

void redis_bp__shards_dispose(redis_bp *bp)
{
    if (!bp->cluster) return;
    shards_free(bp);
    redis_cluster_map_dispose(&bp->map);
    for (size_t i = 0; i < bp->nseeds; i++) rc_free(bp->seed_hosts[i]);
    rc_free(bp->seed_hosts);
    rc_free(bp->seed_ports);
    rc_free(bp->scratch);
    bp->scratch = NULL;
    rc_free(bp->key_prefix);
    bp->key_prefix = NULL;
}
