/*
 * fuzz_socketio.c: what a node reads on Socket.IO's Redis channels (docs/redis.md, "Socket.IO's
 * Redis formats"): msgpack broadcasts [uid, packet, opts] from @socket.io/redis-emitter and
 * adapters, and requests (JSON or msgpack). Calls the codec (src/socketio_codec.c) directly: no
 * Redis, no event loop. Every accepted broadcast is checked for the contract the node relies on
 * (the arguments are one JSON array cJSON reads back, placeholders number the attachments), then
 * published again as the adapter format and decoded once more, which must give the same message.
 */
#include "roomcast/socketio_codec.h"
#include "roomcast/sio_codec.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static rc_socketio_codec *codec, *codec2;

static void fz_check(const rc_socketio_broadcast *b)
{
    const rc_bp_message *m = &b->msg;
    if (!b->uid || !m->ns || m->ns[0] != '/' || !m->event || !m->event[0]) abort();
    if (rc_sio_event_reserved(m->event)) abort();
    if (!m->args_json || strlen(m->args_json) != m->args_len || m->args_json[0] != '[') abort();
    if (m->attachment_count > RC_SIO_MAX_ATTACHMENTS) abort();
    cJSON *args = cJSON_ParseWithLength(m->args_json, m->args_len);
    if (!cJSON_IsArray(args)) abort();
    cJSON_Delete(args);
    for (size_t i = 0; i < b->room_count; i++) if (!b->rooms[i]) abort();
    for (size_t i = 0; i < b->except_count; i++) if (!b->except[i]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!codec) {
        codec = rc_socketio_codec_new();
        codec2 = rc_socketio_codec_new();
    }
    char *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    rc_socketio_broadcast b;
    if (!rc_socketio_decode_broadcast(codec, copy, size, &b)) {
        fz_check(&b);
        /* as a node would publish it: one room at most, except as socket ids */
        rc_bp_message m = b.msg;
        m.room = b.room_count == 1 ? b.rooms[0] : NULL;
        m.except = b.except;
        m.except_count = b.except_count;
        const char *out;
        size_t n;
        if (rc_socketio_encode_broadcast(codec2, "fz", &m, &out, &n) != 0) abort();
        char *again = malloc(n);
        memcpy(again, out, n);
        rc_socketio_broadcast b2;
        if (rc_socketio_decode_broadcast(codec2, again, n, &b2)) abort();
        if (strcmp(b2.msg.event, m.event) || strcmp(b2.msg.ns, m.ns) ||
            b2.msg.attachment_count != m.attachment_count || b2.except_count != m.except_count)
            abort();
        free(again);
    }
    rc_socketio_request r;
    if (!rc_socketio_decode_request(codec, copy, size, &r)) {
        if (r.type < 0 || r.type >= RC_SOCKETIO_REQ__COUNT || (!r.json == !r.mp)) abort();
        for (size_t i = 0; i < r.room_count; i++) if (!r.rooms[i]) abort();
    }
    free(copy);
    return 0;
}
