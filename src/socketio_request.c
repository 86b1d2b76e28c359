/*
 * socketio_request.c: requests on Socket.IO's request channel K-request#<ns># (contract:
 * include/roomcast/socketio_codec.h, rc_socketio_decode_request; formats: docs/redis.md,
 * "Socket.IO's Redis formats"). JSON text when the first byte is '{' (as the adapter decides),
 * msgpack otherwise; the fields every request type shares are read here, the rest is left to the
 * handler of the type (src/node_socketio.c), which gets the whole request in its form.
 *
 * What it does not do: act on a request, or answer one.
 *
 * Ownership: a decoded request points into the codec (its parsed JSON, kept until the next
 * request, or its unpacked msgpack and lists) and into the payload.
 */
#include "socketio_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* A JSON array of strings (absent or null: none) into l. */
static int json_rooms(const cJSON *a, ptr_list *l)
{
    l->count = 0;
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a)) return -1;
    for (const cJSON *e = a->child; e; e = e->next) {
        if (!cJSON_IsString(e)) return -1;
        rc_socketio__pl_push(l, e->valuestring);
    }
    return 0;
}

static const char *request_json(rc_socketio_codec *c, const char *payload, size_t len,
                                rc_socketio_request *out)
{
    c->req_json = cJSON_ParseWithLength(payload, len);
    const cJSON *r = c->req_json;
    if (!cJSON_IsObject(r)) return "bad_json";
    out->json = r;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "type");
    if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= RC_SOCKETIO_REQ__COUNT ||
        t->valuedouble != trunc(t->valuedouble))
        return "bad_type";
    out->type = (int)t->valuedouble;
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(r, "uid");
    if (uid && !cJSON_IsNull(uid)) {
        if (!cJSON_IsString(uid)) return "bad_uid";
        out->uid = uid->valuestring;
    }
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(r, "requestId");
    if (rid && !cJSON_IsNull(rid)) {
        if (!cJSON_IsString(rid)) return "bad_request_id";
        out->request_id = rid->valuestring;
    }
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(r, "opts");
    if (opts && !cJSON_IsNull(opts)) {
        if (!cJSON_IsObject(opts)) return "bad_opts";
        out->has_opts = 1;
        if (json_rooms(cJSON_GetObjectItemCaseSensitive(opts, "rooms"), &c->rooms)) return "bad_rooms";
        if (json_rooms(cJSON_GetObjectItemCaseSensitive(opts, "except"), &c->except)) return "bad_except";
    }
    if (json_rooms(cJSON_GetObjectItemCaseSensitive(r, "rooms"), &c->req_rooms)) return "bad_rooms";
    const cJSON *close = cJSON_GetObjectItemCaseSensitive(r, "close");
    if (close && !cJSON_IsNull(close)) {
        if (!cJSON_IsBool(close)) return "bad_close";
        out->close = cJSON_IsTrue(close);
    }
    return NULL;
}

static const char *request_mp(rc_socketio_codec *c, const char *payload, size_t len,
                              rc_socketio_request *out)
{
    const char *why = rc_socketio__unpack(c, payload, len);
    if (why) return why;
    const msgpack_object *r = &c->unpacked.data;
    if (r->type != MSGPACK_OBJECT_MAP) return "bad_layout";
    out->mp = r;
    const msgpack_object *t = rc_socketio__get(r, "type");
    if (!t || t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 >= RC_SOCKETIO_REQ__COUNT) return "bad_type";
    out->type = (int)t->via.u64;
    const msgpack_object *v = rc_socketio__get(r, "uid");
    if (v && v->type != MSGPACK_OBJECT_NIL && !rc_socketio__is_undefined(v) && !(out->uid = rc_socketio__cstr(c, v))) return "bad_uid";
    v = rc_socketio__get(r, "requestId");
    if (v && v->type != MSGPACK_OBJECT_NIL && !rc_socketio__is_undefined(v) && !(out->request_id = rc_socketio__cstr(c, v)))
        return "bad_request_id";
    const msgpack_object *opts = rc_socketio__get(r, "opts");
    if (opts && opts->type != MSGPACK_OBJECT_NIL && !rc_socketio__is_undefined(opts)) {
        if (opts->type != MSGPACK_OBJECT_MAP) return "bad_opts";
        out->has_opts = 1;
        if (rc_socketio__rooms(c, rc_socketio__get(opts, "rooms"), &c->rooms)) return "bad_rooms";
        if (rc_socketio__rooms(c, rc_socketio__get(opts, "except"), &c->except)) return "bad_except";
    }
    if (rc_socketio__rooms(c, rc_socketio__get(r, "rooms"), &c->req_rooms)) return "bad_rooms";
    v = rc_socketio__get(r, "close");
    if (v && v->type != MSGPACK_OBJECT_NIL && !rc_socketio__is_undefined(v)) {
        if (v->type != MSGPACK_OBJECT_BOOLEAN) return "bad_close";
        out->close = v->via.boolean;
    }
    return NULL;
}

const char *rc_socketio_decode_request(rc_socketio_codec *c, const char *payload, size_t len,
                                       rc_socketio_request *out)
{
    memset(out, 0, sizeof(*out));
    cJSON_Delete(c->req_json);
    c->req_json = NULL;
    c->rooms.count = c->except.count = c->req_rooms.count = 0;
    const char *why = len && payload[0] == '{' ? request_json(c, payload, len, out)
                                               : request_mp(c, payload, len, out);
    if (why) return why;
    out->opts_rooms = c->rooms.items;
    out->opts_room_count = c->rooms.count;
    out->opts_except = c->except.items;
    out->opts_except_count = c->except.count;
    out->rooms = c->req_rooms.items;
    out->room_count = c->req_rooms.count;
    return NULL;
}
