/*
 * adapter_peer.c: answers the requests of Node Socket.IO servers' Redis adapters (see
 * include/roomcast/adapter_peer.h for what each request gets).
 *
 * A request arrives decoded by the Socket.IO codec (include/roomcast/socketio_codec.h: JSON text
 * when its first byte is '{', msgpack otherwise, as the adapter decides), with the fields every
 * type shares; one function per request type reads what else it needs from the request in the
 * form it came in, checks its kind, and answers. A BROADCAST's packet is converted by the codec
 * as an inbound broadcast is (rc_socketio_packet_from_mp), so a Node server's emitWithAck reaches
 * roomcast's clients in the same bytes as its plain emit.
 *
 * Pending acks (BROADCAST): one slot per broadcast in a fixed ring; the slot's address is the ctx
 * handed to the node's emit_ack, so rc_adapter_peer_owns_ack is a range check. A slot lives until
 * the broadcast's timeout (flags.timeout, as the requester also forgets it then); acks after it
 * are counted as late and dropped. A slot is reused only after it expired, in ring order (1,024
 * slots): a client that answers after its broadcast's timeout, once its slot serves a later
 * broadcast, has its ack counted for that later one. Socket.IO clients answer at once or not at
 * all, and sio drops a socket's pending acks beyond 64, so this needs 1,024 broadcasts with acks
 * between a client's receipt and its late answer.
 *
 * What it does not do: subscribe, publish broadcasts, or act on the requests that need no answer.
 */
#include "roomcast/adapter_peer.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/socketio_codec.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <msgpack.h>
#include <string.h>

#define ACK_SLOTS 1024
#define ACK_TIMEOUT_DEFAULT_MS 5000u
#define ACK_TIMEOUT_MAX_MS 600000u

enum { T_SOCKETS, T_ALL_ROOMS, T_JOIN, T_LEAVE, T_DISCONNECT, T_FETCH, T_SSE, T_BROADCAST, T_UNKNOWN,
       T__COUNT };
static const char *const type_names[T__COUNT] = {
    "sockets", "all_rooms", "remote_join", "remote_leave", "remote_disconnect", "fetch_sockets",
    "server_side_emit", "broadcast", "unknown"};
enum { R_ANSWERED, R_PASSED, R_IGNORED, R_REFUSED, R__COUNT };
static const char *const result_names[R__COUNT] = {"answered", "passed", "ignored", "refused"};
enum { E_UNKNOWN_TYPE, E_BAD_FIELD, E_WRONG_NAMESPACE, E_BUSY, E__COUNT };
static const char *const refusal_names[E__COUNT] = {"unknown_type", "bad_field", "wrong_namespace", "busy"};
enum { A_RELAYED, A_LATE, A__COUNT };
static const char *const ack_names[A__COUNT] = {"relayed", "late"};

typedef struct ack_slot {
    uint64_t expires_ms;      /* 0: free */
    char *channel;            /* where the requester listens */
    char *request_id;
} ack_slot;

struct rc_adapter_peer {
    rc_backplane *bp;
    char *prefix;
    char *uid;
    rc_adapter_local local;
    ack_slot slots[ACK_SLOTS];
    size_t next_slot;
    uint64_t requests[T__COUNT][R__COUNT];
    uint64_t refused[E__COUNT];
    uint64_t acks[A__COUNT];
    uint64_t logged_ms;       /* refusals are logged at most once a second */
    uint64_t suppressed;
};

/* One request being handled. */
typedef struct req {
    rc_adapter_peer *p;
    const char *ns;
    const rc_socketio_request *in;
    const char *uid;          /* NULL when absent */
    const char *request_id;   /* "" when absent */
    int type;                 /* T_* */
    cJSON *list;              /* the answer's list being built */
} req;

rc_adapter_peer *rc_adapter_peer_new(rc_backplane *bp, const char *prefix, const char *uid,
                                     const rc_adapter_local *local)
{
    rc_adapter_peer *p = rc_calloc(1, sizeof(*p));
    p->bp = bp;
    p->prefix = rc_strdup(prefix);
    p->uid = rc_strdup(uid);
    p->local = *local;
    return p;
}

static void slot_clear(ack_slot *s)
{
    rc_free(s->channel);
    rc_free(s->request_id);
    memset(s, 0, sizeof(*s));
}

void rc_adapter_peer_free(rc_adapter_peer *p)
{
    if (!p) return;
    for (size_t i = 0; i < ACK_SLOTS; i++) slot_clear(&p->slots[i]);
    rc_free(p->prefix);
    rc_free(p->uid);
    rc_free(p);
}

/* ---- refusals and answers ------------------------------------------------------------------ */

static int refuse(rc_adapter_peer *p, int type, int reason, const char *ns, const char *detail)
{
    p->requests[type][R_REFUSED]++;
    p->refused[reason]++;
    uint64_t now = rc_now_mono_ms();
    if (now - p->logged_ms >= 1000) {
        rc_log_warn("adapter_request_refused", "reason=%s type=%s ns=\"%s\" detail=\"%s\" suppressed=%llu",
                    refusal_names[reason], type_names[type], ns, detail ? detail : "",
                    (unsigned long long)p->suppressed);
        p->logged_ms = now;
        p->suppressed = 0;
    } else {
        p->suppressed++;
    }
    return RC_ADAPTER_HANDLED;
}

/* The channel the requester reads answers on: its own (every adapter 8.x subscribes
 * <K>-response#<ns>#<uid>#), else the shared one. Heap string. */
static char *response_channel(const rc_adapter_peer *p, const char *ns, const char *uid)
{
    size_t n = strlen(p->prefix) + strlen(ns) + (uid ? strlen(uid) : 0) + 16;
    char *c = rc_malloc(n);
    snprintf(c, n, "%s-response#%s#%s%s", p->prefix, ns, uid ? uid : "", uid ? "#" : "");
    return c;
}

static void publish(rc_adapter_peer *p, const char *channel, const char *payload, size_t len)
{
    const char *argv[3] = {"PUBLISH", channel, payload};
    size_t argvlen[3] = {7, strlen(channel), len};
    if (rc_redis_command(p->bp, NULL, NULL, 3, argv, argvlen) != 0)
        rc_log_debug("adapter_answer_dropped", "channel=\"%s\" reason=backplane_down", channel);
}

/* Publishes obj (JSON) to the requester and frees it; counts the request answered. */
static int answer(req *r, cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    char *channel = response_channel(r->p, r->ns, r->uid);
    if (text) publish(r->p, channel, text, strlen(text));
    rc_free(channel);
    cJSON_free(text);
    r->p->requests[r->type][R_ANSWERED]++;
    return RC_ADAPTER_HANDLED;
}

static cJSON *answer_new(const req *r, int with_type)
{
    cJSON *o = cJSON_CreateObject();
    if (with_type) cJSON_AddNumberToObject(o, "type", with_type);
    cJSON_AddStringToObject(o, "requestId", r->request_id);
    return o;
}

/* ---- fields a type reads itself ------------------------------------------------------------ */

static const msgpack_object *mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* A string field of the request, in either form, as a heap copy (rc_free); NULL when absent or
 * not a string without NUL bytes. */
static char *field_str(const rc_socketio_request *in, const char *name)
{
    if (in->json) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in->json, name);
        return cJSON_IsString(v) ? rc_strdup(v->valuestring) : NULL;
    }
    const msgpack_object *v = mp_get(in->mp, name);
    if (!v || v->type != MSGPACK_OBJECT_STR || memchr(v->via.str.ptr, 0, v->via.str.size)) return NULL;
    return rc_strndup(v->via.str.ptr, v->via.str.size);
}

/* opts.flags.timeout in ms, or the default when absent or not a number >= 0. */
static uint64_t ack_timeout(const rc_socketio_request *in)
{
    double ms = -1;
    if (in->json) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(in->json, "opts"), "flags"), "timeout");
        if (cJSON_IsNumber(t)) ms = t->valuedouble;
    } else {
        const msgpack_object *t = mp_get(mp_get(mp_get(in->mp, "opts"), "flags"), "timeout");
        if (t && t->type == MSGPACK_OBJECT_POSITIVE_INTEGER) ms = (double)t->via.u64;
        else if (t && (t->type == MSGPACK_OBJECT_FLOAT64 || t->type == MSGPACK_OBJECT_FLOAT32)) ms = t->via.f64;
    }
    if (!(ms >= 0)) return ACK_TIMEOUT_DEFAULT_MS;
    return ms > ACK_TIMEOUT_MAX_MS ? ACK_TIMEOUT_MAX_MS : (uint64_t)ms;
}

/* ---- requests -------------------------------------------------------------------------------- */

static void add_id(void *arg, void *sock)
{
    req *r = arg;
    cJSON_AddItemToArray(r->list, cJSON_CreateString(r->p->local.socket_id(r->p->local.arg, sock)));
}

static void add_fetch(void *arg, void *sock)
{
    req *r = arg;
    cJSON *o = r->p->local.socket_fetch(r->p->local.arg, sock);
    if (o) cJSON_AddItemToArray(r->list, o);
}

static void add_room(void *arg, const char *room)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(room));
}

/* SOCKETS (the top-level "rooms") and REMOTE_FETCH (opts): the selected sockets. */
static int on_select(req *r, int fetch)
{
    const rc_socketio_request *in = r->in;
    rc_adapter_target t = {in->rooms, in->room_count, NULL, 0};
    if (fetch) t = (rc_adapter_target){in->opts_rooms, in->opts_room_count, in->opts_except, in->opts_except_count};
    cJSON *o = answer_new(r, 0);
    r->list = cJSON_AddArrayToObject(o, "sockets");
    r->p->local.select(r->p->local.arg, r->ns, &t, fetch ? add_fetch : add_id, r);
    return answer(r, o);
}

static int on_all_rooms(req *r)
{
    cJSON *o = answer_new(r, 0);
    cJSON *rooms = cJSON_AddArrayToObject(o, "rooms");
    r->p->local.rooms(r->p->local.arg, r->ns, add_room, rooms);
    return answer(r, o);
}

/* REMOTE_JOIN/LEAVE/DISCONNECT naming one socket ("sid"): Node answers only when it has it. */
static int on_one_socket(req *r, int type)
{
    char *sid = field_str(r->in, "sid");
    char *room = type == T_DISCONNECT ? NULL : field_str(r->in, "room");
    int rc;
    if (!sid || (type != T_DISCONNECT && !room) || !r->request_id[0]) {
        rc = refuse(r->p, r->type, E_BAD_FIELD, r->ns, "sid");
    } else {
        void *sock = r->p->local.find(r->p->local.arg, r->ns, sid);
        if (!sock) {
            r->p->requests[r->type][R_IGNORED]++;
            rc = RC_ADAPTER_HANDLED;
        } else {
            r->p->local.act(r->p->local.arg, sock, type, room, r->in->close);
            rc = answer(r, answer_new(r, 0));
        }
    }
    rc_free(sid);
    rc_free(room);
    return rc;
}

static ack_slot *slot_take(rc_adapter_peer *p, uint64_t now)
{
    for (size_t i = 0; i < ACK_SLOTS; i++) {
        ack_slot *s = &p->slots[(p->next_slot + i) % ACK_SLOTS];
        if (s->expires_ms == 0 || s->expires_ms <= now) {
            p->next_slot = (p->next_slot + i + 1) % ACK_SLOTS;
            slot_clear(s);
            return s;
        }
    }
    return NULL;
}

typedef struct emit_ctx {
    rc_adapter_peer *p;
    const rc_bp_message *m;
    const ack_slot *slot;
} emit_ctx;

static void emit_one(void *arg, void *sock)
{
    emit_ctx *e = arg;
    e->p->local.emit_ack(e->p->local.arg, sock, e->m->event, e->m->args_json, e->m->args_len,
                         e->m->attachments, e->m->attachment_count, e->slot);
}

/* The packet of a JSON BROADCAST (another parser than the adapter's default): data is
 * [event, ...args] without binaries. args_json is a heap string. */
static const char *packet_from_json(const cJSON *packet, rc_bp_message *m, char **args_json)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(packet, "type");
    const cJSON *nsp = cJSON_GetObjectItemCaseSensitive(packet, "nsp");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(packet, "data");
    if (!cJSON_IsObject(packet) || !cJSON_IsNumber(type) || type->valuedouble != 2) return "bad_packet";
    if (nsp && !cJSON_IsString(nsp)) return "bad_nsp";
    if (!cJSON_IsArray(data) || !cJSON_IsString(data->child)) return "bad_event";
    cJSON *args = cJSON_CreateArray();
    for (const cJSON *e = data->child->next; e; e = e->next) cJSON_AddItemToArray(args, cJSON_Duplicate(e, 1));
    const char *why = rc_bp_emit_check(data->child->valuestring, args, 0);
    if (!why) {
        m->ns = nsp ? nsp->valuestring : "/";
        m->event = data->child->valuestring;
        *args_json = cJSON_PrintUnformatted(args);
        m->args_len = strlen(*args_json);
        m->args_json = *args_json;
    }
    cJSON_Delete(args);
    return why;
}

/* BROADCAST with acks: {uid, requestId, type: 7, packet: {type, data, nsp}, opts}. */
static int on_broadcast(req *r, rc_socketio_codec *codec)
{
    const rc_socketio_request *in = r->in;
    if (!r->request_id[0]) return refuse(r->p, r->type, E_BAD_FIELD, r->ns, "requestId");
    rc_socketio_broadcast bc;
    memset(&bc, 0, sizeof(bc));
    char *args_json = NULL;
    const char *why = in->mp ? rc_socketio_packet_from_mp(codec, mp_get(in->mp, "packet"), &bc)
                             : packet_from_json(cJSON_GetObjectItemCaseSensitive(in->json, "packet"), &bc.msg, &args_json);
    if (why) return refuse(r->p, r->type, E_BAD_FIELD, r->ns, why);
    if (strcmp(bc.msg.ns, r->ns) != 0) {
        cJSON_free(args_json);
        return refuse(r->p, r->type, E_WRONG_NAMESPACE, r->ns, bc.msg.ns);
    }
    rc_adapter_target t = {in->opts_rooms, in->opts_room_count, in->opts_except, in->opts_except_count};
    uint64_t now = rc_now_mono_ms();
    ack_slot *slot = slot_take(r->p, now);
    size_t count = 0;
    if (!slot) {
        r->p->refused[E_BUSY]++;   /* still answered: a count of 0, not a stall */
        rc_log_debug("adapter_acks_busy", "ns=\"%s\" request=\"%s\"", r->ns, r->request_id);
    } else {
        uint64_t ms = ack_timeout(in);
        slot->expires_ms = now + (ms ? ms : 1);
        slot->channel = response_channel(r->p, r->ns, r->uid);
        slot->request_id = rc_strdup(r->request_id);
        emit_ctx e = {r->p, &bc.msg, slot};
        count = r->p->local.select(r->p->local.arg, r->ns, &t, emit_one, &e);
        if (count == 0) slot_clear(slot);
    }
    cJSON_free(args_json);
    cJSON *o = answer_new(r, 8);
    cJSON_AddNumberToObject(o, "clientCount", (double)count);
    return answer(r, o);
}

int rc_adapter_peer_on_request(rc_adapter_peer *p, rc_socketio_codec *codec, const char *ns,
                               const rc_socketio_request *in)
{
    req r = {p, ns, in, in->uid, in->request_id ? in->request_id : "", T_UNKNOWN, NULL};
    if (in->type < 0 || in->type > 7) return refuse(p, T_UNKNOWN, E_UNKNOWN_TYPE, ns, NULL);
    r.type = in->type;
    if (r.uid && strcmp(r.uid, p->uid) == 0) {
        p->requests[r.type][R_IGNORED]++;
        return RC_ADAPTER_HANDLED;
    }
    switch (r.type) {
    case T_SOCKETS:
    case T_ALL_ROOMS:
    case T_FETCH:
        if (!r.request_id[0]) return refuse(p, r.type, E_BAD_FIELD, ns, "requestId");
        return r.type == T_ALL_ROOMS ? on_all_rooms(&r) : on_select(&r, r.type == T_FETCH);
    case T_JOIN:
    case T_LEAVE:
    case T_DISCONNECT:
        if (in->has_opts) break;
        return on_one_socket(&r, r.type);
    case T_SSE:
        if (!in->request_id) break;
        /* No server-side handlers here: the answer of a handler that calls back with nothing. */
        return answer(&r, answer_new(&r, 6));
    default:
        return on_broadcast(&r, codec);
    }
    p->requests[r.type][R_PASSED]++;
    return RC_ADAPTER_NOT_MINE;
}

/* ---- acks ------------------------------------------------------------------------------------ */

int rc_adapter_peer_owns_ack(const rc_adapter_peer *p, const void *ctx)
{
    const char *c = ctx, *b = (const char *)p->slots;
    return c >= b && c < (const char *)(p->slots + ACK_SLOTS);
}

/* cJSON (with placeholders) -> msgpack, binaries as bin. */
static void pack(msgpack_packer *pk, const cJSON *v, const rc_bp_bytes *att, size_t att_count)
{
    if (cJSON_IsObject(v)) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(v, "_placeholder");
        const cJSON *num = cJSON_GetObjectItemCaseSensitive(v, "num");
        if (cJSON_IsTrue(ph) && cJSON_IsNumber(num) && num->valuedouble >= 0 &&
            num->valuedouble < (double)att_count) {
            const rc_bp_bytes *b = &att[(size_t)num->valuedouble];
            msgpack_pack_bin(pk, b->len);
            msgpack_pack_bin_body(pk, b->data, b->len);
            return;
        }
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(v));
        for (const cJSON *e = v->child; e; e = e->next) {
            size_t n = strlen(e->string);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, e->string, n);
            pack(pk, e, att, att_count);
        }
    } else if (cJSON_IsArray(v)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(v));
        for (const cJSON *e = v->child; e; e = e->next) pack(pk, e, att, att_count);
    } else if (cJSON_IsString(v)) {
        size_t n = strlen(v->valuestring);
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, v->valuestring, n);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == (double)(int64_t)d && d > -9007199254740992.0 && d < 9007199254740992.0)
            msgpack_pack_int64(pk, (int64_t)d);
        else
            msgpack_pack_double(pk, d);
    } else if (cJSON_IsBool(v)) {
        if (cJSON_IsTrue(v)) msgpack_pack_true(pk);
        else msgpack_pack_false(pk);
    } else {
        msgpack_pack_nil(pk);
    }
}

void rc_adapter_peer_on_ack(rc_adapter_peer *p, const void *ctx, const cJSON *args,
                            const rc_bp_bytes *att, size_t att_count)
{
    ack_slot *s = (ack_slot *)ctx;
    if (!rc_adapter_peer_owns_ack(p, ctx) || s->expires_ms == 0 || s->expires_ms <= rc_now_mono_ms()) {
        p->acks[A_LATE]++;
        return;
    }
    p->acks[A_RELAYED]++;
    const cJSON *first = cJSON_IsArray(args) ? args->child : NULL;   /* Node keeps the first */
    if (att_count == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "type", 9);
        cJSON_AddStringToObject(o, "requestId", s->request_id);
        if (first) cJSON_AddItemReferenceToObject(o, "packet", (cJSON *)first);
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (text) publish(p, s->channel, text, strlen(text));
        cJSON_free(text);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, first ? 3 : 2);
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "type", 4);
    msgpack_pack_int(&pk, 9);
    msgpack_pack_str(&pk, 9);
    msgpack_pack_str_body(&pk, "requestId", 9);
    size_t n = strlen(s->request_id);
    msgpack_pack_str(&pk, n);
    msgpack_pack_str_body(&pk, s->request_id, n);
    if (first) {
        msgpack_pack_str(&pk, 6);
        msgpack_pack_str_body(&pk, "packet", 6);
        pack(&pk, first, att, att_count);
    }
    publish(p, s->channel, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- metrics --------------------------------------------------------------------------------- */

void rc_adapter_peer_write_metrics(const rc_adapter_peer *p, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP roomcast_adapter_requests_total Requests of Node Socket.IO "
                             "redis adapters heard on the request channel, by type and result.\n"
                             "# TYPE roomcast_adapter_requests_total counter\n");
    for (int t = 0; t < T__COUNT; t++)
        for (int r = 0; r < R__COUNT; r++)
            evbuffer_add_printf(out, "roomcast_adapter_requests_total{type=\"%s\",result=\"%s\"} %llu\n",
                                type_names[t], result_names[r], (unsigned long long)p->requests[t][r]);
    rc_metrics_put_by_label(out, "roomcast_adapter_requests_refused_total", "counter",
                            "Adapter requests refused (not acted on), by reason.", "reason",
                            refusal_names, p->refused, 0, E__COUNT);
    rc_metrics_put_by_label(out, "roomcast_adapter_broadcast_acks_total", "counter",
                            "Client acks of adapter broadcasts: relayed to the requester, or late "
                            "(after the broadcast's timeout) and dropped.", "result",
                            ack_names, p->acks, 0, A__COUNT);
}
