/*
 * socketio_internal.h: what the files of the Socket.IO formats codec share. Private (src/): other
 * modules use include/roomcast/socketio_codec.h.
 *
 *   socketio_codec.c     the codec object, the skim and msgpack-c's unpacking, reading objects by
 *                        key, broadcasts in (msgpack -> Socket.IO JSON) and out (the adapter format)
 *   socketio_request.c   requests on K-request#<ns># (JSON or msgpack), with the helpers below
 *
 * socketio_request.c calls socketio_codec.c, never the reverse.
 */
#ifndef ROOMCAST_SOCKETIO_INTERNAL_H
#define ROOMCAST_SOCKETIO_INTERNAL_H

#include "roomcast/sio_codec.h"
#include "roomcast/socketio_codec.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

typedef struct text_buf {
    char *p;
    size_t len, cap;
} text_buf;

typedef struct ptr_list {
    const char **items;
    size_t count, cap;
} ptr_list;

struct rc_socketio_codec {
    msgpack_unpacked unpacked;
    text_buf json;
    ptr_list rooms, except, req_rooms;
    rc_bp_bytes att[RC_SIO_MAX_ATTACHMENTS];
    size_t att_count;
    int too_many;                  /* more binary values than RC_SIO_MAX_ATTACHMENTS */
    msgpack_sbuffer out;
    struct cJSON *req_json;               /* the last JSON request, freed at the next call */
};

/* ---- socketio_codec.c, for the other files ---------------------------------------------------- */

void rc_socketio__pl_push(ptr_list *l, const char *s);
/* Skims payload[0..len) (one value, containers that fit, RC_SOCKETIO_MAX_DEPTH) and unpacks it
 * into c->unpacked. NULL, or a reason ("truncated", "too_deep", "not_msgpack"). */
const char *rc_socketio__unpack(rc_socketio_codec *c, const char *payload, size_t len);
/* The value of key name in map o (the last one when repeated), or NULL. */
const msgpack_object *rc_socketio__get(const msgpack_object *o, const char *name);
/* notepack's undefined (fixext 1 of type 0). */
int rc_socketio__is_undefined(const msgpack_object *o);
/* A NUL-terminated copy (in c's zone) of a str that is UTF-8 without NUL, else NULL. */
const char *rc_socketio__cstr(rc_socketio_codec *c, const msgpack_object *o);
/* An array of strings (absent, nil, undefined: none) into l: 0, or -1 on a wrong type. */
int rc_socketio__rooms(rc_socketio_codec *c, const msgpack_object *o, ptr_list *l);

#endif
