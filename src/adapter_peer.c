/*
 * adapter_peer.c: answers the requests of Node Socket.IO servers' Redis adapters (see
 * include/roomcast/adapter_peer.h for what each request gets).
 *
 * A request is JSON text when its first byte is '{' (what the adapter sends for everything but
 * BROADCAST), msgpack otherwise (notepack's encoding; libmsgpack-c decodes it). Both become one
 * cJSON tree: msgpack bin values turn into Socket.IO placeholders {"_placeholder":true,"num":n}
 * with the bytes kept as attachments (pointing into the payload, valid during the call), a
 * timestamp ext (-1, a JS Date) into its ISO-8601 string, ext 0 (undefined) into nothing (a map
 * entry is dropped, an array element becomes null, as JSON.stringify does). Then one function per
 * request type reads the fields it needs, checks their kinds, and answers.
 *
 * Pending acks (BROADCAST): one slot per broadcast in a fixed ring; the slot's address is the ctx
 * handed to the node's emit_ack, so rc_adapter_peer_owns_ack is a range check. A slot lives until
 * the broadcast's timeout (flags.timeout, as the requester also forgets it then); acks after it
 * are counted as late and dropped. A slot is reused only after it expired, in ring order.
 *
 * What it does not do: subscribe, publish broadcasts, or act on the requests that need no answer.
 */
#include "roomcast/adapter_peer.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>

#define ACK_SLOTS 1024
#define ACK_TIMEOUT_DEFAULT_MS 5000u
#define ACK_TIMEOUT_MAX_MS 600000u
#define MAX_ATTACHMENTS 64

enum { T_SOCKETS, T_ALL_ROOMS, T_JOIN, T_LEAVE, T_DISCONNECT, T_FETCH, T_SSE, T_BROADCAST, T_UNKNOWN,
       T__COUNT };
static const char *const type_names[T__COUNT] = {
    "sockets", "all_rooms", "remote_join", "remote_leave", "remote_disconnect", "fetch_sockets",
    "server_side_emit", "broadcast", "unknown"};
enum { R_ANSWERED, R_PASSED, R_IGNORED, R_REFUSED, R__COUNT };
static const char *const result_names[R__COUNT] = {"answered", "passed", "ignored", "refused"};
enum { E_TOO_LARGE, E_MALFORMED, E_UNKNOWN_TYPE, E_BAD_FIELD, E_WRONG_NAMESPACE, E_BUSY, E__COUNT };
static const char *const refusal_names[E__COUNT] = {
    "too_large", "malformed", "unknown_type", "bad_field", "wrong_namespace", "busy"};
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
    cJSON *root;
    rc_bp_bytes att[MAX_ATTACHMENTS];
    size_t att_count;
    const char *uid;          /* NULL when absent */
    char request_id[64];      /* "" when absent */
    int type;                 /* T_* */
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

/* ---- msgpack -> cJSON ------------------------------------------------------------------------ */

/* A JS Date from a msgpack timestamp (ext -1, 4, 8 or 12 bytes) as Date.toISOString() writes it. */
static cJSON *date_of(const char *d, uint32_t n)
{
    const uint8_t *b = (const uint8_t *)d;
    int64_t sec;
    uint32_t nsec = 0;
    if (n == 4) {
        sec = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    } else if (n == 8) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++) v = v << 8 | b[i];
        nsec = (uint32_t)(v >> 34);
        sec = (int64_t)(v & 0x3ffffffffULL);
    } else if (n == 12) {
        for (int i = 0; i < 4; i++) nsec = nsec << 8 | b[i];
        uint64_t v = 0;
        for (int i = 4; i < 12; i++) v = v << 8 | b[i];
        sec = (int64_t)v;
    } else {
        return NULL;
    }
    int64_t ms = sec * 1000 + nsec / 1000000;
    int64_t s = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) return NULL;
    char out[64];
    snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - s * 1000) % 1000);
    return cJSON_CreateString(out);
}

static int is_undefined(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == 0;
}

/* NULL when o cannot be converted (a non-string key, a string with a NUL, too many binaries). */
static cJSON *from_msgpack(req *r, const msgpack_object *o)
{
    char *tmp;
    cJSON *c;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return cJSON_CreateNumber((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return cJSON_CreateNumber((double)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return cJSON_CreateNumber(o->via.f64);
    case MSGPACK_OBJECT_STR:
        if (memchr(o->via.str.ptr, 0, o->via.str.size)) return NULL;
        tmp = rc_strndup(o->via.str.ptr, o->via.str.size);
        c = cJSON_CreateString(tmp);
        rc_free(tmp);
        return c;
    case MSGPACK_OBJECT_BIN:
        if (r->att_count == MAX_ATTACHMENTS) return NULL;
        r->att[r->att_count].data = (const uint8_t *)o->via.bin.ptr;
        r->att[r->att_count].len = o->via.bin.size;
        c = cJSON_CreateObject();
        cJSON_AddTrueToObject(c, "_placeholder");
        cJSON_AddNumberToObject(c, "num", (double)r->att_count++);
        return c;
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == -1) return date_of(o->via.ext.ptr, o->via.ext.size);
        if (o->via.ext.type == 0) return cJSON_CreateNull();
        return NULL;
    case MSGPACK_OBJECT_ARRAY:
        c = cJSON_CreateArray();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            cJSON *e = from_msgpack(r, &o->via.array.ptr[i]);
            if (!e) { cJSON_Delete(c); return NULL; }
            cJSON_AddItemToArray(c, e);
        }
        return c;
    case MSGPACK_OBJECT_MAP:
        c = cJSON_CreateObject();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR || memchr(kv->key.via.str.ptr, 0, kv->key.via.str.size)) {
                cJSON_Delete(c);
                return NULL;
            }
            if (is_undefined(&kv->val)) continue;
            cJSON *e = from_msgpack(r, &kv->val);
            if (!e) { cJSON_Delete(c); return NULL; }
            tmp = rc_strndup(kv->key.via.str.ptr, kv->key.via.str.size);
            cJSON_AddItemToObject(c, tmp, e);
            rc_free(tmp);
        }
        return c;
    }
    return NULL;
}

static cJSON *parse(req *r, const char *payload, size_t len)
{
    if (payload[0] == '{') {
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
        if (root && end != payload + len) { cJSON_Delete(root); return NULL; }
        return root;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cJSON *root = NULL;
    if (msgpack_unpack_next(&u, payload, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len)
        root = from_msgpack(r, &u.data);
    msgpack_unpacked_destroy(&u);
    return root;
}

/* ---- fields ---------------------------------------------------------------------------------- */

/* A string array field (absent: empty): strings into a heap array (*out, the caller frees it,
 * NULL when empty). -1 when it is not an array of strings. */
static int strings_of(const cJSON *obj, const char *name, const char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    const cJSON *a = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a)) return -1;
    size_t n = (size_t)cJSON_GetArraySize(a);
    if (n == 0) return 0;
    const char **v = rc_calloc(n, sizeof(*v));
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next) {
        /* Node's rooms may be numbers (a room joined as 42): its name is the number's text. */
        if (!cJSON_IsString(e)) { rc_free(v); return -1; }
        v[i++] = e->valuestring;
    }
    *out = v;
    *count = i;
    return 0;
}

typedef struct target {
    rc_adapter_target t;
    const char **rooms, **except;
} target;

/* The "opts" of a request (or, for SOCKETS, "rooms" at the top): -1 when malformed. */
static int target_of(const cJSON *opts, target *t)
{
    memset(t, 0, sizeof(*t));
    if (opts && !cJSON_IsObject(opts)) return -1;
    if (strings_of(opts, "rooms", &t->rooms, &t->t.room_count) != 0) return -1;
    if (strings_of(opts, "except", &t->except, &t->t.except_count) != 0) {
        rc_free(t->rooms);
        return -1;
    }
    t->t.rooms = t->rooms;
    t->t.except = t->except;
    return 0;
}

static void target_dispose(target *t)
{
    rc_free(t->rooms);
    rc_free(t->except);
}

/* ---- requests -------------------------------------------------------------------------------- */

static void add_id(void *arg, void *sock)
{
    req *r = arg;
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r->root, "\x01out"),
                         cJSON_CreateString(r->p->local.socket_id(r->p->local.arg, sock)));
}

static void add_fetch(void *arg, void *sock)
{
    req *r = arg;
    cJSON *o = r->p->local.socket_fetch(r->p->local.arg, sock);
    if (o) cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(r->root, "\x01out"), o);
}

static void add_room(void *arg, const char *room)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(room));
}

/* SOCKETS (rooms at the top level) and REMOTE_FETCH (rooms in opts): the selected sockets. */
static int on_select(req *r, const cJSON *opts, int fetch)
{
    target t;
    if (target_of(opts, &t) != 0) return refuse(r->p, r->type, E_BAD_FIELD, r->ns, "opts");
    /* The list is built inside the request's tree, under a key no request can carry. */
    cJSON *list = cJSON_AddArrayToObject(r->root, "\x01out");
    r->p->local.select(r->p->local.arg, r->ns, &t.t, fetch ? add_fetch : add_id, r);
    target_dispose(&t);
    cJSON *o = answer_new(r, 0);
    cJSON_DetachItemViaPointer(r->root, list);
    cJSON_AddItemToObject(o, "sockets", list);
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
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(r->root, "sid");
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(r->root, "room");
    const cJSON *close = cJSON_GetObjectItemCaseSensitive(r->root, "close");
    if (!cJSON_IsString(sid) || (type != 4 && !cJSON_IsString(room)) || !r->request_id[0])
        return refuse(r->p, r->type, E_BAD_FIELD, r->ns, "sid");
    void *sock = r->p->local.find(r->p->local.arg, r->ns, sid->valuestring);
    if (!sock) {
        r->p->requests[r->type][R_IGNORED]++;
        return RC_ADAPTER_HANDLED;
    }
    r->p->local.act(r->p->local.arg, sock, type, type == 4 ? NULL : room->valuestring, cJSON_IsTrue(close));
    return answer(r, answer_new(r, 0));
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
    const char *event;
    const char *args;
    size_t args_len;
    const rc_bp_bytes *att;
    size_t att_count;
    const ack_slot *slot;
} emit_ctx;

static void emit_one(void *arg, void *sock)
{
    emit_ctx *e = arg;
    e->p->local.emit_ack(e->p->local.arg, sock, e->event, e->args, e->args_len, e->att, e->att_count, e->slot);
}

/* BROADCAST with acks: {uid, requestId, type: 7, packet: {type, data, nsp}, opts}. */
static int on_broadcast(req *r)
{
    const cJSON *packet = cJSON_GetObjectItemCaseSensitive(r->root, "packet");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(r->root, "opts");
    const cJSON *nsp = cJSON_GetObjectItemCaseSensitive(packet, "nsp");
    const cJSON *ptype = cJSON_GetObjectItemCaseSensitive(packet, "type");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(packet, "data");
    if (!cJSON_IsObject(packet) || !r->request_id[0] || !cJSON_IsNumber(ptype) ||
        (ptype->valuedouble != 2 && ptype->valuedouble != 5) || !cJSON_IsArray(data) ||
        !cJSON_IsString(data->child) || (nsp && !cJSON_IsString(nsp)))
        return refuse(r->p, r->type, E_BAD_FIELD, r->ns, "packet");
    if (strcmp(nsp ? nsp->valuestring : "/", r->ns) != 0)
        return refuse(r->p, r->type, E_WRONG_NAMESPACE, r->ns, nsp->valuestring);
    target t;
    if (target_of(opts, &t) != 0) return refuse(r->p, r->type, E_BAD_FIELD, r->ns, "opts");
    const cJSON *flags = cJSON_GetObjectItemCaseSensitive(opts, "flags");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(flags, "timeout");
    uint64_t ms = ACK_TIMEOUT_DEFAULT_MS;
    if (cJSON_IsNumber(timeout) && timeout->valuedouble >= 0)
        ms = timeout->valuedouble > ACK_TIMEOUT_MAX_MS ? ACK_TIMEOUT_MAX_MS : (uint64_t)timeout->valuedouble;

    /* The event and its arguments, checked as any emit a backend asks for. */
    cJSON *event = cJSON_DetachItemViaPointer((cJSON *)data, data->child);
    const char *why = rc_bp_emit_check(event->valuestring, data, r->att_count);
    if (why) {
        cJSON_Delete(event);
        target_dispose(&t);
        return refuse(r->p, r->type, E_BAD_FIELD, r->ns, why);
    }
    uint64_t now = rc_now_mono_ms();
    ack_slot *slot = slot_take(r->p, now);
    if (!slot) {
        cJSON_Delete(event);
        target_dispose(&t);
        refuse(r->p, r->type, E_BUSY, r->ns, "pending acks");
        r->p->requests[r->type][R_REFUSED]--;   /* still answered: a count of 0, not a stall */
        cJSON *o = answer_new(r, 8);
        cJSON_AddNumberToObject(o, "clientCount", 0);
        return answer(r, o);
    }
    slot->expires_ms = now + (ms ? ms : 1);
    slot->channel = response_channel(r->p, r->ns, r->uid);
    slot->request_id = rc_strdup(r->request_id);
    char *args = cJSON_PrintUnformatted(data);
    emit_ctx e = {r->p, event->valuestring, args, strlen(args), r->att, r->att_count, slot};
    size_t count = r->p->local.select(r->p->local.arg, r->ns, &t.t, emit_one, &e);
    cJSON_free(args);
    cJSON_Delete(event);
    target_dispose(&t);
    if (count == 0) slot_clear(slot);
    cJSON *o = answer_new(r, 8);
    cJSON_AddNumberToObject(o, "clientCount", (double)count);
    return answer(r, o);
}

static int type_of(int n)
{
    return n >= 0 && n <= 7 ? n : T_UNKNOWN;
}

int rc_adapter_peer_on_request(rc_adapter_peer *p, const char *ns, const char *payload, size_t len)
{
    req r = {0};
    r.p = p;
    r.ns = ns;
    r.type = T_UNKNOWN;
    if (len > RC_ADAPTER_MAX_REQUEST) return refuse(p, T_UNKNOWN, E_TOO_LARGE, ns, NULL);
    if (len == 0 || !(r.root = parse(&r, payload, len)) || !cJSON_IsObject(r.root)) {
        cJSON_Delete(r.root);
        return refuse(p, T_UNKNOWN, E_MALFORMED, ns, NULL);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(r.root, "type");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(r.root, "uid");
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(r.root, "requestId");
    int rc;
    if (!cJSON_IsNumber(type) || type->valuedouble != (double)(int)type->valuedouble ||
        type_of((int)type->valuedouble) == T_UNKNOWN) {
        rc = refuse(p, T_UNKNOWN, E_UNKNOWN_TYPE, ns, NULL);
        goto out;
    }
    r.type = type_of((int)type->valuedouble);
    if ((uid && !cJSON_IsString(uid)) || (rid && !cJSON_IsString(rid) && !cJSON_IsNumber(rid))) {
        rc = refuse(p, r.type, E_BAD_FIELD, ns, "uid");
        goto out;
    }
    r.uid = uid ? uid->valuestring : NULL;
    if (cJSON_IsString(rid)) snprintf(r.request_id, sizeof(r.request_id), "%s", rid->valuestring);
    else if (rid) snprintf(r.request_id, sizeof(r.request_id), "%.0f", rid->valuedouble);
    if (r.uid && strcmp(r.uid, p->uid) == 0) {
        p->requests[r.type][R_IGNORED]++;
        rc = RC_ADAPTER_HANDLED;
        goto out;
    }
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(r.root, "opts");
    switch (r.type) {
    case T_SOCKETS:
    case T_ALL_ROOMS:
    case T_FETCH:
        if (!r.request_id[0]) { rc = refuse(p, r.type, E_BAD_FIELD, ns, "requestId"); break; }
        if (r.type == T_ALL_ROOMS) rc = on_all_rooms(&r);
        else if (r.type == T_SOCKETS) rc = on_select(&r, r.root, 0);
        else rc = on_select(&r, opts, 1);
        break;
    case T_JOIN:
    case T_LEAVE:
    case T_DISCONNECT:
        if (opts) { p->requests[r.type][R_PASSED]++; rc = RC_ADAPTER_NOT_MINE; break; }
        rc = on_one_socket(&r, r.type);
        break;
    case T_SSE:
        if (!rid) { p->requests[r.type][R_PASSED]++; rc = RC_ADAPTER_NOT_MINE; break; }
        /* No server-side handlers here: the answer of a handler that calls back with nothing. */
        rc = answer(&r, answer_new(&r, 6));
        break;
    default:
        rc = on_broadcast(&r);
        break;
    }
out:
    cJSON_Delete(r.root);
    return rc;
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
