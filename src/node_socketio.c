/*
 * node_socketio.c: the node speaking Socket.IO's own Redis formats (see src/node_internal.h and
 * docs/redis.md, "Socket.IO's Redis formats"): it hears @socket.io/redis-emitter and
 * @socket.io/redis-adapter broadcasts and requests, and publishes its own broadcasts as the
 * adapter does, so that backends using the emitter and Node Socket.IO servers share rooms with
 * roomcast nodes. All of it exists only with socketio.prefix (ROOMCAST_SOCKETIO_PREFIX) set: without
 * it rc_node__socketio_new returns NULL and no call below does anything.
 *
 * Subscriptions (raw channels of the backplane, include/roomcast/redis_cmd.h, so they are batched,
 * confirmed by the join barrier and restored after a reconnect like the node's own room
 * channels; never a pattern): K#<ns># and K-request#<ns># for each namespace served, and
 * K#<ns>#<room># while the room has local members (rooms the node opens and closes, and the room
 * named by each local socket's id, which Socket.IO's to(socket.id) targets).
 *
 * Broadcasts in: decoded (src/socketio_codec.c), refused unless the packet's namespace is the
 * channel's, dropped when the uid is this node's own (its echo), then handed to
 * rc_sio_broadcast_to with the message's rooms, except and volatile (src/sio_broadcast.c). They
 * carry no offset: a non-volatile one to a room that recovery keeps first leaves a gap mark for
 * each room it names (the whole namespace when it names none: rc_node__recovery_gap), so a
 * socket cut meanwhile gets a fresh session, never a replay silently without it.
 *
 * Broadcasts out (rc_node__socketio_publish, from rc_node__broadcast): every emit that starts on
 * this node goes out in the adapter format, on K#<ns>#<room># for a room and K#<ns># for the
 * namespace, with this node's uid, and not on the node's own JSON channels: one path per
 * broadcast, so another roomcast node hears it once (on the adapter channel) and Node servers hear
 * it too. Control ops (join, leave, disconnect) keep the JSON channels.
 *
 * Requests in (K-request#<ns>#, JSON or msgpack): dispatched by type through request_handlers[]
 * below. This file handles the types that need no answer: 2 (join), 3 (leave), 4 (disconnect)
 * with room options. The types a Node server waits on, 0 (sockets), 1 (allRooms), 5
 * (fetchSockets), 6 (serverSideEmit: with an ack it is answered; without, roomcast runs no server
 * code and nothing happens), 7 (broadcast with acks), and 2, 3, 4 naming one socket, go to the
 * adapter peer (src/node_adapter.c, src/adapter_peer.c), created with this file's uid and codec.
 * 8 and 9 are answers, never requests: counted as "unanswered" and ignored.
 *
 * Refusals: counted by reason (roomcast_socketio_refused_total) and logged as
 * socketio_bad_message at most once a second; nobody receives a refused message.
 *
 * Ownership: the node owns the rc_node_socketio (created in rc_node_new after the backplane and
 * freed in rc_node_free after sio, before the backplane); it owns its codec and channel buffer.
 */
#include "node_internal.h"

#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"
#include "roomcast/socketio_codec.h"

#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

enum { LOG_INTERVAL_MS = 1000 };

static const char *const refusal_reasons[] = {
    "truncated", "too_deep", "not_msgpack", "bad_layout", "bad_uid", "bad_packet", "bad_type",
    "ack_id", "bad_nsp", "bad_event", "reserved_event", "bad_data", "bad_string", "bad_key",
    "bad_ext", "too_many_attachments", "bad_opts", "bad_rooms", "bad_except", "bad_flags",
    "bad_json", "bad_request_id", "bad_close", "namespace_mismatch", "other",
};
enum { N_REASONS = sizeof(refusal_reasons) / sizeof(refusal_reasons[0]) };

static const char *const request_names[RC_SOCKETIO_REQ__COUNT] = {
    "sockets", "all_rooms", "remote_join", "remote_leave", "remote_disconnect", "remote_fetch",
    "server_side_emit", "broadcast", "broadcast_client_count", "broadcast_ack",
};

struct rc_node_socketio {
    rc_node *n;
    char *prefix;                /* K */
    size_t prefix_len;
    char uid[16];                /* this node's uid in the adapter format */
    rc_socketio_codec *codec;
    char *chan;                  /* channel name scratch */
    size_t chan_cap;
    struct {
        uint64_t received[2];            /* broadcasts delivered: [0] emitter, [1] adapters */
        uint64_t own;                    /* our own echoes */
        uint64_t published, publish_failures;
        uint64_t requests[RC_SOCKETIO_REQ__COUNT];
        uint64_t unanswered;             /* request types with no handler */
        uint64_t refused[2][N_REASONS];  /* [0] broadcasts, [1] requests */
    } stats;
    uint64_t logged_ms, suppressed;
};

/* ---- names ---------------------------------------------------------------------------------- */

/* "<K><infix><ns>#[<room>#]" into x->chan. */
static const char *chan_build(rc_node_socketio *x, const char *infix, const char *ns, const char *room)
{
    size_t need = x->prefix_len + strlen(infix) + strlen(ns) + (room ? strlen(room) + 1 : 0) + 3;
    if (need > x->chan_cap) {
        x->chan = rc_realloc(x->chan, need);
        x->chan_cap = need;
    }
    snprintf(x->chan, x->chan_cap, "%s%s%s#%s%s", x->prefix, infix, ns, room ? room : "", room ? "#" : "");
    return x->chan;
}

/* ---- refusals ------------------------------------------------------------------------------- */

static void refuse(rc_node_socketio *x, int request, const char *why, const char *channel)
{
    size_t i = 0;
    while (i < N_REASONS - 1 && strcmp(refusal_reasons[i], why) != 0) i++;
    x->stats.refused[request][i]++;
    uint64_t now = rc_now_mono_ms();
    if (x->logged_ms && now - x->logged_ms < LOG_INTERVAL_MS) {
        x->suppressed++;
        return;
    }
    char chan[200];
    size_t k = 0;
    for (const char *s = channel; *s && k + 1 < sizeof(chan); s++)
        chan[k++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '?' : *s;
    chan[k] = '\0';
    rc_log_warn("socketio_bad_message", "channel=\"%s\" kind=%s reason=%s suppressed=%llu", chan,
                request ? "request" : "broadcast", why, (unsigned long long)x->suppressed);
    x->logged_ms = now;
    x->suppressed = 0;
}

/* ---- requests without an answer ---------------------------------------------------------------- */

static size_t request_select(rc_node *n, const char *ns, const rc_socketio_request *req, rc_sio_socket ***out)
{
    rc_sio_target t = {req->opts_rooms, req->opts_room_count, req->opts_except, req->opts_except_count, 0};
    return rc_sio_select(n->sio, ns, &t, out);
}

static void req_join_leave(rc_node *n, const char *ns, const rc_socketio_request *req)
{
    if (!req->has_opts) { /* the adapter's older form (one sid, answered), not sent by 8.x */
        rc_node__adapter_request(n, ns, req);
        return;
    }
    rc_sio_socket **list;
    size_t count = request_select(n, ns, req, &list);
    for (size_t i = 0; i < count; i++)
        for (size_t r = 0; r < req->room_count; r++) {
            if (req->type == RC_SOCKETIO_REQ_REMOTE_JOIN) rc_sio_join(list[i], req->rooms[r]);
            else rc_sio_leave(list[i], req->rooms[r]);
        }
    rc_free(list);
}

static void req_disconnect(rc_node *n, const char *ns, const rc_socketio_request *req)
{
    if (!req->has_opts) {
        rc_node__adapter_request(n, ns, req);
        return;
    }
    rc_sio_socket **list;
    size_t count = request_select(n, ns, req, &list);
    for (size_t i = 0; i < count; i++) {
        if (req->close) rc_sio_disconnect_close(list[i]);
        else rc_sio_disconnect(list[i]);
    }
    rc_free(list);
}

/* The dispatch by request type. A type that needs an answer gets its entry here from the file
 * that answers it (its function declared in src/node_internal.h). serverSideEmit reaches server
 * code, and roomcast runs none: without an ack nothing happens; with one (requestId set) the
 * caller waits for one answer per server, which the adapter peer gives. */
static const rc_node_socketio_request_fn request_handlers[RC_SOCKETIO_REQ__COUNT] = {
    [RC_SOCKETIO_REQ_SOCKETS] = rc_node__adapter_request,
    [RC_SOCKETIO_REQ_ALL_ROOMS] = rc_node__adapter_request,
    [RC_SOCKETIO_REQ_REMOTE_JOIN] = req_join_leave,
    [RC_SOCKETIO_REQ_REMOTE_LEAVE] = req_join_leave,
    [RC_SOCKETIO_REQ_REMOTE_DISCONNECT] = req_disconnect,
    [RC_SOCKETIO_REQ_REMOTE_FETCH] = rc_node__adapter_request,
    [RC_SOCKETIO_REQ_SERVER_SIDE_EMIT] = rc_node__adapter_request,
    [RC_SOCKETIO_REQ_BROADCAST] = rc_node__adapter_request,
};

/* ---- receiving ------------------------------------------------------------------------------------ */

/* The namespace a channel names after its start ("<ns>#..."), served by this node, or NULL;
 * *rest is what follows "<ns>#". */
static const char *channel_ns(rc_node_socketio *x, const char *s, const char **rest)
{
    const char *hash = strchr(s, '#');
    if (!hash) return NULL;
    for (size_t i = 0; i < rc_rules_ns_count(x->n->cfg->rules); i++) {
        const char *name = rc_ns_rules_name(rc_rules_ns_at(x->n->cfg->rules, i));
        if (strlen(name) == (size_t)(hash - s) && memcmp(name, s, (size_t)(hash - s)) == 0) {
            *rest = hash + 1;
            return name;
        }
    }
    return NULL;
}

static void on_broadcast(rc_node_socketio *x, const char *channel, const char *ns, const char *payload, size_t len)
{
    rc_socketio_broadcast b;
    const char *why = rc_socketio_decode_broadcast(x->codec, payload, len, &b);
    if (why) {
        refuse(x, 0, why, channel);
        return;
    }
    if (strcmp(b.uid, x->uid) == 0) {
        x->stats.own++;
        return;
    }
    if (strcmp(b.msg.ns, ns) != 0) {
        refuse(x, 0, "namespace_mismatch", channel);
        return;
    }
    x->stats.received[strcmp(b.uid, RC_SOCKETIO_EMITTER_UID) != 0]++;
    if (!b.is_volatile) { /* reaches sockets without an offset: a gap for a kept room */
        if (!b.room_count) rc_node__recovery_gap(x->n, ns, NULL, b.msg.event);
        for (size_t i = 0; i < b.room_count; i++) rc_node__recovery_gap(x->n, ns, b.rooms[i], b.msg.event);
    }
    rc_sio_target t = {b.rooms, b.room_count, b.except, b.except_count, b.is_volatile};
    rc_sio_broadcast_to(x->n->sio, &b.msg, &t, rc_now_mono_ns());
}

static void on_request(rc_node_socketio *x, const char *channel, const char *ns, const char *payload, size_t len)
{
    rc_socketio_request req;
    const char *why = rc_socketio_decode_request(x->codec, payload, len, &req);
    if (why) {
        refuse(x, 1, why, channel);
        return;
    }
    if (req.uid && strcmp(req.uid, x->uid) == 0) return; /* our own request */
    x->stats.requests[req.type]++;
    rc_node_socketio_request_fn fn = request_handlers[req.type];
    if (fn) fn(x->n, ns, &req);
    else x->stats.unanswered++;
}

int rc_node__socketio_on_raw(rc_node *n, const char *channel, const char *payload, size_t len)
{
    rc_node_socketio *x = n->socketio;
    if (!x || strncmp(channel, x->prefix, x->prefix_len) != 0) return 0;
    const char *s = channel + x->prefix_len, *rest = NULL, *ns;
    if (s[0] == '#' && (ns = channel_ns(x, s + 1, &rest))) {
        on_broadcast(x, channel, ns, payload, len);
        return 1;
    }
    if (strncmp(s, "-request#", 9) == 0 && (ns = channel_ns(x, s + 9, &rest)) && !*rest) {
        on_request(x, channel, ns, payload, len);
        return 1;
    }
    return 0;
}

/* ---- subscriptions ------------------------------------------------------------------------------ */

void rc_node__socketio_room(rc_node *n, const char *ns, const char *room, int open)
{
    rc_node_socketio *x = n->socketio;
    if (!x || !room || !room[0]) return;
    const char *c = chan_build(x, "#", ns, room);
    if (open) rc_redis_channel_open(n->bp, c);
    else rc_redis_channel_close(n->bp, c);
}

void rc_node__socketio_socket(rc_node *n, const rc_sio_socket *s, int open)
{
    if (n->socketio) rc_node__socketio_room(n, rc_sio_socket_ns(s), rc_sio_socket_id(s), open);
}

/* ---- publishing ----------------------------------------------------------------------------------- */

static void publish_on_reply(void *arg, const redisReply *reply)
{
    rc_node_socketio *x = arg;
    if (!reply || reply->type == REDIS_REPLY_ERROR) x->stats.publish_failures++;
}

int rc_node__socketio_publish(rc_node *n, const rc_bp_message *msg)
{
    rc_node_socketio *x = n->socketio;
    const char *payload;
    size_t len;
    if (rc_socketio_encode_broadcast(x->codec, x->uid, msg, &payload, &len) != 0) {
        x->stats.publish_failures++;
        return -1;
    }
    const char *chan = chan_build(x, "#", msg->ns, msg->room);
    const char *argv[3] = {"PUBLISH", chan, payload};
    size_t lens[3] = {7, strlen(chan), len};
    if (rc_redis_command(n->bp, publish_on_reply, x, 3, argv, lens) != 0) {
        x->stats.publish_failures++;
        return -1;
    }
    x->stats.published++;
    return 0;
}

/* ---- life ------------------------------------------------------------------------------------------ */

rc_node_socketio *rc_node__socketio_new(rc_node *n)
{
    const char *prefix = n->cfg->socketio.prefix;
    if (!prefix || !rc_redis_available(n->bp)) return NULL;
    rc_node_socketio *x = rc_calloc(1, sizeof(*x));
    x->n = n;
    x->prefix = rc_strdup(prefix);
    x->prefix_len = strlen(prefix);
    rc_random_id(x->uid, 6); /* an adapter's uid is 6 random characters too */
    x->codec = rc_socketio_codec_new();
    n->socketio = x;
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++) {
        const char *ns = rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, i));
        rc_redis_channel_open(n->bp, chan_build(x, "#", ns, NULL));
        rc_redis_channel_open(n->bp, chan_build(x, "-request#", ns, NULL));
    }
    rc_node__adapter_new(n, x->prefix, x->uid);
    rc_log_info("socketio_formats", "prefix=%s uid=%s", x->prefix, x->uid);
    return x;
}

void rc_node__socketio_free(rc_node_socketio *x)
{
    if (!x) return;
    rc_node__adapter_free(x->n);
    rc_socketio_codec_free(x->codec);
    rc_free(x->chan);
    rc_free(x->prefix);
    rc_free(x);
}

rc_socketio_codec *rc_node__socketio_codec(const rc_node *n)
{
    return n->socketio ? n->socketio->codec : NULL;
}

void rc_node__socketio_write_metrics(const rc_node *n, struct evbuffer *out)
{
    const rc_node_socketio *x = n->socketio;
    if (!x) return;
    static const char *const sources[] = {"emitter", "adapter"};
    rc_metrics_put_by_label(out, "roomcast_socketio_broadcasts_received_total", "counter",
                            "Socket.IO Redis broadcasts delivered to local sockets, by publisher "
                            "(@socket.io/redis-emitter, or an adapter: Node servers and other roomcast nodes).",
                            "source", sources, x->stats.received, 0, 2);
    rc_metrics_put_scalar(out, "roomcast_socketio_broadcasts_own_total", "counter",
                          "Socket.IO Redis broadcasts dropped because this node published them.",
                          x->stats.own);
    rc_metrics_put_scalar(out, "roomcast_socketio_broadcasts_published_total", "counter",
                          "Broadcasts this node published in the adapter format.", x->stats.published);
    rc_metrics_put_scalar(out, "roomcast_socketio_publish_failures_total", "counter",
                          "Adapter-format publishes refused (Redis down, message not encodable) or "
                          "answered with an error.",
                          x->stats.publish_failures);
    rc_metrics_put_by_label(out, "roomcast_socketio_requests_total", "counter",
                            "Requests heard on the Socket.IO request channel, by type.", "type",
                            request_names, x->stats.requests, 0, RC_SOCKETIO_REQ__COUNT);
    rc_metrics_put_scalar(out, "roomcast_socketio_requests_unanswered_total", "counter",
                          "Requests of a type this node does not handle (ignored).", x->stats.unanswered);
    rc_metrics_put_by_label(out, "roomcast_socketio_broadcasts_refused_total", "counter",
                            "Socket.IO Redis broadcasts refused (delivered to nobody), by reason.",
                            "reason", refusal_reasons, x->stats.refused[0], 0, N_REASONS);
    rc_metrics_put_by_label(out, "roomcast_socketio_requests_refused_total", "counter",
                            "Socket.IO Redis requests refused (applied to nobody), by reason.",
                            "reason", refusal_reasons, x->stats.refused[1], 0, N_REASONS);
}
