/*
 * backplane_redis.c: the Redis pub/sub backplane (src/redis_conn.c connections on the node's loop):
 * its creation, its rc_backplane_ops and its free. Contract: include/roomcast/backplane.h;
 * channels, payloads and metrics: docs/redis.md. Created by the composition root (node.c) with
 * rc_backplane_redis_settings, driven through rc_backplane_ops.
 *
 * What it is for: carrying room and namespace traffic between nodes and from backends, with one
 * Redis channel per room that has local members (a node never receives traffic for rooms it has
 * no member of), and readiness that is true only while delivery demonstrably works.
 *
 * The backplane is five files sharing src/backplane_redis.h (which lists them and says who calls
 * whom); this one wires them: it makes the two connections (backplane_redis_phase.c runs them,
 * backplane_redis_recv.c gets the sub connection's pushes), the events, and the metrics. The ops:
 *   - publish encodes the envelope (backplane_envelope.c) and sends PUBLISH on cmd, pipelined,
 *     never waiting for the reply (its callback only times it and counts errors); refused (-1,
 *     counted) unless UP, so nothing queues while Redis is down;
 *   - room_open / room_close / ns_open flip the channel's wish; when_subscribed registers a
 *     barrier waiter (backplane_redis_subs.c);
 *   - write_metrics writes roomcast_redis_* (docs/redis.md, "Metrics").
 *
 * What it does not do: no queueing while down; delivery is at most once (a publish accepted just
 * before a failure may be lost with the connection); no retry of a failed PUBLISH.
 *
 * Ownership: rc_backplane_redis_new copies what it needs from the settings and the callbacks.
 * The two redis_conn, the modules' script state and every channel entry are embedded in or owned
 * by the backplane and go with free, which must not be called from inside any of its callbacks
 * (asserted).
 *
 * API in call order: rc_backplane_redis_new -> ns_open/room_open/room_close/publish/
 * when_subscribed and the redis_cmd.h calls (any order) -> write_metrics when scraped -> free.
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"
#include "redis_tls.h"
#include "roomcast/redis_config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static redis_bp *to_bp(rc_backplane *b)
{
    return RC_CONTAINER_OF(b, redis_bp, super);
}

static const redis_bp *to_cbp(const rc_backplane *b)
{
    return RC_CONTAINER_OF(b, const redis_bp, super);
}

/* ---- ops ------------------------------------------------------------------------------------- */

/* A PUBLISH's answer (redis_conn_reply_fn): timed and, if an error, counted. */
static void publish_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    redis_bp *bp = arg;
    if (!reply) return; /* the connection went away */
    rc_histogram_observe(&bp->publish_latency, (double)(rc_now_mono_ns() - cmd->sent_ns) / 1e9);
    if (reply->type == REDIS_REPLY_ERROR) {
        bp->super.stats.publish_failures++;
        rc_log_debug("redis_publish_error", "error=\"%s\"", reply->str);
    }
}

static int redis_publish(rc_backplane *b, const rc_bp_message *msg)
{
    redis_bp *bp = to_bp(b);
    if (bp->phase != BP_UP) {
        bp->super.stats.publish_failures++;
        return -1;
    }
    if (!redis_bp__ns_valid(msg->ns) || (msg->room && !msg->room[0]) ||
        bp_envelope_encode(&bp->payload_buf, msg, bp->node_id) != 0) {
        bp->super.stats.publish_failures++;
        rc_log_debug("redis_publish_refused", "ns=\"%s\" kind=%d", msg->ns ? msg->ns : "", msg->kind);
        return -1;
    }
    redis_bp__channel_build(bp, &bp->chan_buf, msg->ns, msg->room);
    const char *argv[3] = {"PUBLISH", bp->chan_buf.p, bp->payload_buf.p};
    size_t lens[3] = {7, bp->chan_buf.len, bp->payload_buf.len};
    int rc = bp->cluster ? redis_bp__shard_publish(bp, bp->chan_buf.p, bp->chan_buf.len,
                                                   bp->payload_buf.p, bp->payload_buf.len)
                         : redis_conn_command(&bp->cmd, publish_on_reply, bp, 3, argv, lens);
    bp_buf_trim(&bp->payload_buf);
    if (rc != 0) {
        bp->super.stats.publish_failures++;
        return -1;
    }
    bp->super.stats.publishes++;
    return 0;
}

static void redis_room_open(rc_backplane *b, const char *ns, const char *room)
{
    redis_bp *bp = to_bp(b);
    if (!redis_bp__ns_valid(ns) || !room || !room[0]) {
        rc_log_warn("redis_bad_channel", "ns=\"%s\" room=\"%s\"", ns ? ns : "", room ? room : "");
        return;
    }
    redis_bp__chan_set_wanted(bp, ns, room, 1);
}

static void redis_room_close(rc_backplane *b, const char *ns, const char *room)
{
    redis_bp *bp = to_bp(b);
    if (!redis_bp__ns_valid(ns) || !room || !room[0]) return;
    redis_bp__chan_set_wanted(bp, ns, room, 0);
}

static void redis_ns_open(rc_backplane *b, const char *ns)
{
    redis_bp *bp = to_bp(b);
    if (!redis_bp__ns_valid(ns)) {
        rc_log_warn("redis_bad_channel", "ns=\"%s\"", ns ? ns : "");
        return;
    }
    redis_bp__chan_set_wanted(bp, ns, NULL, 1);
}

static int redis_is_up(const rc_backplane *b)
{
    return to_cbp(b)->phase == BP_UP;
}

/* cb runs (from the loop) once every SUBSCRIBE requested so far is confirmed by Redis, or when
 * that cannot happen (connection lost). */
static void redis_when_subscribed(rc_backplane *b, void (*cb)(void *arg, int live), void *arg)
{
    redis_bp__waiter_add(to_bp(b), cb, arg);
}

/* Cluster mode's families (backplane_redis_shard.c keeps the counts). */
static void shards_metrics(const redis_bp *bp, struct evbuffer *out)
{
    if (!bp->cluster) return;
    rc_metrics_put_scalar(out, "roomcast_redis_cluster_masters", "gauge",
                          "Masters of the Redis Cluster this node has a shard connection pair to.",
                          bp->topo == 2 ? bp->nshards : 0);
    rc_metrics_put_scalar(out, "roomcast_redis_cluster_moved_total", "counter",
                          "MOVED answers (a slot served elsewhere than the map said).", bp->moved);
    rc_metrics_put_scalar(out, "roomcast_redis_cluster_ask_total", "counter",
                          "ASK answers to SPUBLISH (a slot being migrated).", bp->asks);
    rc_metrics_put_scalar(out, "roomcast_redis_cluster_slot_drops_total", "counter",
                          "Sharded channels a master dropped (sunsubscribe: its slot moved) and this "
                          "node subscribed again on the new owner.",
                          bp->slot_drops);
    rc_metrics_put_scalar(out, "roomcast_redis_cluster_refreshes_total", "counter",
                          "Slot maps read again while up (after a MOVED or a dropped channel).",
                          bp->refreshes);
    evbuffer_add_printf(out, "# HELP roomcast_redis_shard_channels Sharded channels subscribed "
                             "on each master.\n# TYPE roomcast_redis_shard_channels gauge\n");
    for (size_t i = 0; i < bp->nshards; i++)
        evbuffer_add_printf(out, "roomcast_redis_shard_channels{shard=\"%s:%d\"} %zu\n",
                            bp->shards[i]->host, bp->shards[i]->port, bp->shards[i]->nsubscribed);
    evbuffer_add_printf(out, "# HELP roomcast_redis_shard_publishes_total SPUBLISH sent to each "
                             "master.\n# TYPE roomcast_redis_shard_publishes_total counter\n");
    for (size_t i = 0; i < bp->nshards; i++)
        evbuffer_add_printf(out, "roomcast_redis_shard_publishes_total{shard=\"%s:%d\"} %" PRIu64 "\n",
                            bp->shards[i]->host, bp->shards[i]->port, bp->shards[i]->publishes);
}

static uint64_t shard_commands(const redis_bp *bp)
{
    uint64_t n = 0;
    for (size_t i = 0; i < bp->nshards; i++) n += bp->shards[i]->sub.commands + bp->shards[i]->cmd.commands;
    return n;
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
               "Messages handed to Redis with PUBLISH (the same count as roomcast_backplane_publishes_total).",
               bp->super.stats.publishes);
    rc_metrics_put_scalar(out, "roomcast_redis_publish_failures_total", "counter",
               "Publishes refused (backplane down, backlog full, bad message) or answered with an "
               "error.",
               bp->super.stats.publish_failures);
    rc_metrics_put_scalar(out, "roomcast_redis_messages_received_total", "counter",
               "Messages from other publishers handed to the node.", bp->super.stats.receives);
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
               bp->sub.commands + bp->cmd.commands + shard_commands(bp));
    rc_metrics_put_scalar(out, "roomcast_redis_command_timeouts_total", "counter",
               "Connections torn down because a command went unanswered too long.",
               bp->command_timeouts);
    rc_metrics_put_scalar(out, "roomcast_redis_module_commands_total", "counter",
               "Commands and script calls sent for modules (presence, jobs).",
               bp->scripts.commands);
    rc_metrics_put_scalar(out, "roomcast_redis_module_errors_total", "counter",
               "Module commands and script calls answered with an error.", bp->scripts.errors);
    rc_metrics_put_scalar(out, "roomcast_redis_noscript_total", "counter",
               "Script calls answered NOSCRIPT and sent again as EVAL.", bp->scripts.noscript);
    rc_metrics_put_scalar(out, "roomcast_redis_raw_messages_total", "counter",
               "Messages received on module (raw) channels.", bp->raw_received);
    rc_metrics_put_scalar(out, "roomcast_redis_overheard_messages_total", "counter",
               "Room and namespace messages heard through a recovery listener's patterns "
               "(docs/recovery.md, \"Listeners\"); 0 on nodes that never listened.", bp->overheard);
    rc_metrics_put_gauge_double(out, "roomcast_redis_canary_lag_seconds",
                                "Last canary round trip (PUBLISH on the command connection to receipt "
                                "on the subscriber).",
                                bp->canary.lag_s);
    rc_metrics_put_histogram(out, "roomcast_redis_publish_latency_seconds",
                             "PUBLISH round trip on the command connection.", h);
    shards_metrics(bp, out);
    redis_bp__sentinel_write_metrics(bp, out);
}

static void redis_free(rc_backplane *b)
{
    redis_bp *bp = to_bp(b);
    assert(bp->in_callback == 0 && "free the backplane outside on_message/on_state");
    assert(bp->cmd.in_callback == 0 && "free the backplane outside a module's reply callback");

    bp->phase = BP_CLOSED;
    if (bp->resolver.cancel) bp->resolver.cancel(bp->resolver.arg, bp);
    redis_conn_close(&bp->sub);
    redis_conn_close(&bp->cmd);
    /* Commands still unanswered (modules' among them) get reply NULL now; any command their
     * owners send from the callback is refused: the phase is CLOSED. */
    redis_conn_dispose(&bp->sub);
    redis_conn_dispose(&bp->cmd);
    redis_script_dispose(&bp->scripts);
    redis_bp__shards_dispose(bp);
    event_free(bp->flush_ev);
    event_free(bp->tick_ev);
    event_free(bp->retry_ev);
    redis_link_resolve_dispose(&bp->resolve);
    redis_bp__subs_dispose(bp);
    bp_buf_dispose(&bp->chan_buf);
    bp_buf_dispose(&bp->payload_buf);
    if (bp->resolver.free) bp->resolver.free(bp->resolver.arg);
    if (bp->ssl_ctx) SSL_CTX_free(bp->ssl_ctx);
    rc_free(bp->server_name);
    rc_free(bp->target_host);
    rc_redis_url_dispose(&bp->url);
    rc_free(bp->prefix);
    rc_free(bp->node_id);
    rc_free(bp->canary_channel);
    rc_free(bp->sub_name);
    rc_free(bp->cmd_name);
    rc_free(bp);
}

static const rc_backplane_ops redis_ops = {
    .when_subscribed = redis_when_subscribed,
    .publish = redis_publish,
    .publish_kept = redis_bp__publish_kept,
    .room_open = redis_room_open,
    .room_close = redis_room_close,
    .ns_open = redis_ns_open,
    .is_up = redis_is_up,
    .write_metrics = redis_write_metrics,
    .free = redis_free,
};

/* ---- creation -------------------------------------------------------------------------------- */

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
    static const rc_redis_config no_config;
    rc_redis_url url;
    const char *err = NULL;
    const rc_redis_config *rcfg = settings->redis ? settings->redis : &no_config;
    size_t nclusters = rcfg->cluster_count;
    if (!settings->url && nclusters) { /* a cluster without a URL: the first seed, no AUTH */
        memset(&url, 0, sizeof(url));
        url.host = rc_strdup(rcfg->cluster[0].host);
        url.port = rcfg->cluster[0].port;
    } else if (rc_redis_url_parse(settings->url ? settings->url : rcfg->sentinel_count ? "redis://sentinel" : NULL,
                                  &url, &err) != 0) {
        /* behind Sentinel the URL gives only the scheme, credentials and db (the host comes from
         * the sentinels); it may be left out (redis_config.c requires a URL, sentinels or seeds) */
        rc_log_error("redis_bad_url", "error=\"%s\"", err);
        return NULL;
    }
    SSL_CTX *ssl_ctx = NULL;
    if (url.tls) {
        char why[512];
        if (!(ssl_ctx = rc_redis_tls_ctx_new(rcfg, why, sizeof(why)))) {
            rc_log_error("redis_tls_refused", "error=\"%s\"", why);
            rc_redis_url_dispose(&url);
            return NULL;
        }
    }
    const char *node_id = settings->node_id && settings->node_id[0] ? settings->node_id : "node";
    const char *prefix = settings->prefix && settings->prefix[0] ? settings->prefix : "roomcast";

    redis_bp *bp = rc_calloc(1, sizeof(*bp));
    bp->super.ops = &redis_ops;
    bp->base = base;
    if (cb) bp->cb = *cb;
    bp->url = url;
    bp->ssl_ctx = ssl_ctx;
    bp->rcfg = rcfg;
    bp->server_name = rcfg->server_name ? rc_strdup(rcfg->server_name) : NULL;
    bp->prefix = rc_strdup(prefix);
    bp->node_id = rc_strdup(node_id);
    bp->canary_channel = rc_key_new(prefix, RC_KEY_CANARY, node_id, NULL);
    bp->sub_name = client_name(node_id, "sub");
    bp->cmd_name = client_name(node_id, "cmd");
    redis_conn_callbacks conn_cb = {
        .on_ready = redis_bp__on_conn_ready,
        .on_fail = redis_bp__on_conn_fail,
        .on_push = redis_bp__on_push,
        .on_error_class = redis_bp__on_error_class,
        .arg = bp,
    };
    redis_conn_init(&bp->sub, base, "sub", &conn_cb);
    redis_conn_init(&bp->cmd, base, "cmd", &conn_cb);
    bp->phase = BP_WAITING;
    rc_random_id(bp->canary_nonce, 8);

    bp->flush_ev = event_new(base, -1, 0, redis_bp__on_flush, bp);
    bp->tick_ev = event_new(base, -1, EV_PERSIST, redis_bp__on_tick, bp);
    bp->retry_ev = evtimer_new(base, redis_bp__on_retry, bp);
    if (rcfg->sentinel_count) redis_bp__sentinel_attach(bp);
    if (nclusters) { /* the seeds: the URL's host (when given) first, then the list */
        const char **hosts = rc_calloc(nclusters + 1, sizeof(*hosts));
        int *ports = rc_calloc(nclusters + 1, sizeof(*ports));
        size_t n = 0;
        if (settings->url) {
            hosts[n] = url.host;
            ports[n++] = url.port;
        }
        for (size_t i = 0; i < nclusters; i++) {
            hosts[n] = rcfg->cluster[i].host;
            ports[n++] = rcfg->cluster[i].port;
        }
        redis_bp__cluster_setup(bp, hosts, ports, n);
        rc_free(hosts);
        rc_free(ports);
    }
    redis_bp__phase_start(bp);

    char buf[300];
    if (rcfg->sentinel_count)
        rc_log_info("redis_backplane", "sentinels=%zu master=%s prefix=%s node=%s", rcfg->sentinel_count,
                    rcfg->master_name, bp->prefix, bp->node_id);
    else
        rc_log_info("redis_backplane", "url=%s prefix=%s node=%s",
                    rc_redis_url_redacted(&bp->url, buf, sizeof(buf)), bp->prefix, bp->node_id);
    return &bp->super;
}

redis_bp *redis_bp__from(const rc_backplane *b)
{
    return b && b->ops == &redis_ops ? RC_CONTAINER_OF(b, redis_bp, super) : NULL;
}
