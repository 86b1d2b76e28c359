/*
 * socketio_codec.h: the messages of @socket.io/redis-emitter 5.x and @socket.io/redis-adapter 8.x
 * (classic pub/sub adapter) on Redis, turned into roomcast's room message and back (docs/redis.md,
 * "Socket.IO's Redis formats"). Implemented in src/socketio_codec.c and src/socketio_request.c
 * (private header src/socketio_internal.h) with Debian's libmsgpack-c.
 * No I/O, no Redis, no state beyond the reusable buffers of one rc_socketio_codec, so the fuzz
 * target test/fuzz/fuzz_socketio.c and test/unit/test_socketio_codec.c call it directly; the node
 * (src/node_socketio.c) owns one codec and does the subscriptions and the delivery.
 *
 * Broadcasts (channels K#<ns># and K#<ns>#<room>#) are msgpack arrays [uid, packet, opts]:
 *   packet {type: 2, data: [event, ...args], nsp}   (nsp absent: "/")
 *   opts   {rooms: [..], except: [..], flags: {volatile, compress, ...}}
 * Maps are read by key name (the emitter and the adapter order them differently); keys the
 * format does not use are ignored, as Node's adapter ignores them. The arguments become
 * Socket.IO JSON text as a Node server would send it to its clients: numbers as JavaScript prints
 * them (integers beyond 2^53 rounded to a double, as notepack.io decodes them), nil as null, a
 * timestamp (ext -1) or notepack's old Date (fixext 8, type 0) as the ISO string Date.toJSON()
 * gives ("2026-12-06T17:00:00.000Z", null when out of range), notepack's undefined (fixext 1,
 * type 0) as null in an array and as a missing key in a map, bin (and ext type 0, notepack's
 * ArrayBuffer) as binary attachments with {"_placeholder":true,"num":N} in their place (the
 * packet is then a BINARY_EVENT), and any other ext as notepack gives it: [type, <binary>].
 *
 * Requests (channel K-request#<ns>#) are JSON text when they start with '{', msgpack otherwise
 * (as the adapter decides); rc_socketio_decode_request reads the fields every request type
 * shares and leaves the rest to the handler of its type, in either form.
 *
 * Refused, with a static reason for the counter and the log (nobody receives a refused
 * message): anything that is not exactly one well-formed msgpack value, a container declaring
 * more elements than bytes remain (msgpack-c allocates the declared count before reading), more
 * than RC_SOCKETIO_MAX_DEPTH nested arrays and maps, wrong types, a packet type other than EVENT,
 * an ack id, an event name that is not a non-reserved string, more than RC_SIO_MAX_ATTACHMENTS
 * binary values, strings that are not UTF-8, names with a NUL byte, map keys that are neither
 * strings nor integers, ext -1 values that are not 4, 8 or 12 bytes.
 *
 * Ownership: a decoded message points into the codec (until its next call or its free) and, for
 * attachments, into the payload passed in (keep it alive as long as the message).
 *
 * API in call order: rc_socketio_codec_new -> rc_socketio_decode_broadcast /
 * rc_socketio_decode_request / rc_socketio_encode_broadcast, any number of times ->
 * rc_socketio_codec_free.
 */
#ifndef ROOMCAST_SOCKETIO_CODEC_H
#define ROOMCAST_SOCKETIO_CODEC_H

#include "roomcast/message.h"

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct msgpack_object;

/* Nested arrays and maps a message may hold, the outer array counted (msgpack-c's own limit). */
#define RC_SOCKETIO_MAX_DEPTH 32

/* The uid of @socket.io/redis-emitter's messages. */
#define RC_SOCKETIO_EMITTER_UID "emitter"

typedef struct rc_socketio_codec rc_socketio_codec;

rc_socketio_codec *rc_socketio_codec_new(void);
void rc_socketio_codec_free(rc_socketio_codec *c);

/* A broadcast as the node delivers it. msg is an RC_BP_EMIT with ns = the packet's nsp, event,
 * args_json (the arguments after the event name, a JSON array) and attachments; msg.room and
 * msg.except are NULL: the recipients are rooms minus except (socket ids count as rooms). */
typedef struct rc_socketio_broadcast {
    rc_bp_message msg;
    const char *uid;                /* the publisher: "emitter", or an adapter's (or node's) uid */
    const char *const *rooms;       /* none: the whole namespace */
    size_t room_count;
    const char *const *except;      /* rooms (and socket ids) whose members are left out */
    size_t except_count;
    int is_volatile;                /* flags.volatile: only sockets writable right now */
} rc_socketio_broadcast;

/* Decodes payload[0..len) into out. NULL when accepted, else a static reason ("truncated",
 * "too_deep", "not_msgpack", "bad_layout", "bad_uid", "bad_packet", "bad_type", "ack_id",
 * "bad_nsp", "bad_event", "reserved_event", "bad_data", "bad_string", "bad_key", "bad_ext",
 * "too_many_attachments", "bad_opts", "bad_rooms", "bad_except", "bad_flags"). */
const char *rc_socketio_decode_broadcast(rc_socketio_codec *c, const char *payload, size_t len,
                                         rc_socketio_broadcast *out);

/* Writes m (an RC_BP_EMIT) as the adapter publishes a broadcast: [uid, {type:2, data:[event,
 * ...args], nsp}, {rooms, except, flags:{}}], with rooms = [m->room] (none for the namespace),
 * except = m->except (socket ids: rooms in Socket.IO), the attachments back in place of their
 * placeholders as bin. *out points into the codec until its next call. 0, or -1 when m cannot be
 * written (no event, args_json not a JSON array). */
int rc_socketio_encode_broadcast(rc_socketio_codec *c, const char *uid, const rc_bp_message *m,
                                 const char **out, size_t *out_len);

/* Request types (the adapter's RequestType). */
enum rc_socketio_request_type {
    RC_SOCKETIO_REQ_SOCKETS = 0,
    RC_SOCKETIO_REQ_ALL_ROOMS = 1,
    RC_SOCKETIO_REQ_REMOTE_JOIN = 2,
    RC_SOCKETIO_REQ_REMOTE_LEAVE = 3,
    RC_SOCKETIO_REQ_REMOTE_DISCONNECT = 4,
    RC_SOCKETIO_REQ_REMOTE_FETCH = 5,
    RC_SOCKETIO_REQ_SERVER_SIDE_EMIT = 6,
    RC_SOCKETIO_REQ_BROADCAST = 7,
    RC_SOCKETIO_REQ_BROADCAST_CLIENT_COUNT = 8,
    RC_SOCKETIO_REQ_BROADCAST_ACK = 9,
    RC_SOCKETIO_REQ__COUNT
};

/* A request with the fields the types share. Exactly one of json / mp is set: the whole request
 * in the form it came in, for the handler of its type to read what else it needs. */
typedef struct rc_socketio_request {
    int type;                       /* 0..RC_SOCKETIO_REQ__COUNT-1 */
    const char *uid;                /* NULL when absent (the emitter sends none but with type 6) */
    const char *request_id;         /* NULL when absent */
    int has_opts;                   /* "opts" present (joins, leaves, disconnects, fetches) */
    const char *const *opts_rooms;  /* opts.rooms */
    size_t opts_room_count;
    const char *const *opts_except; /* opts.except */
    size_t opts_except_count;
    const char *const *rooms;       /* "rooms" (the rooms to join or leave) */
    size_t room_count;
    int close;                      /* "close": true (disconnect closes the connection) */
    const struct cJSON *json;       /* the request, when it came as JSON */
    const struct msgpack_object *mp;/* the request, when it came as msgpack */
} rc_socketio_request;

/* Decodes a request (JSON object or msgpack map). NULL when accepted, else a static reason
 * ("bad_json", "truncated", "too_deep", "not_msgpack", "bad_layout", "bad_type", "bad_uid",
 * "bad_request_id", "bad_opts", "bad_rooms", "bad_except", "bad_close"). A type this codec does
 * not know (>= RC_SOCKETIO_REQ__COUNT) is "bad_type". */
const char *rc_socketio_decode_request(rc_socketio_codec *c, const char *payload, size_t len,
                                       rc_socketio_request *out);

/* The packet of a msgpack request (type 7's "packet"), converted as a broadcast's: out->msg gets
 * ns, event, args_json and attachments (into the codec and the request's payload); the rest of
 * out is left zero. For the handlers of sio-fleet's request types. NULL or a reason as above. */
const char *rc_socketio_packet_from_mp(rc_socketio_codec *c, const struct msgpack_object *packet,
                                       rc_socketio_broadcast *out);

#endif
