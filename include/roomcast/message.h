/*
 * message.h: the room message, as the node hands it to the local fan-out (sio.h) and to the
 * other nodes (backplane.h). Types only, no functions: a base-layer header, so the Socket.IO
 * layer and the backplane each speak it without knowing the other. (One constant besides:
 * RC_BP_ARGS_MAX_DEPTH, the envelope's limit that a publisher checks.)
 *
 * A message is an emit (event + arguments to a room or a whole namespace) or a control op that
 * changes the memberships of a room's sockets (join another room, leave one, disconnect).
 * The wire forms are docs/redis.md's envelopes (src/backplane_envelope.c).
 *
 * Ownership: every pointer is borrowed; whoever hands a message over keeps it valid for the call
 * (or, for a message received, for the callback).
 */
#ifndef ROOMCAST_MESSAGE_H
#define ROOMCAST_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

enum rc_bp_kind {
    RC_BP_EMIT = 0,        /* emit event+args to the room (or the whole namespace) */
    RC_BP_JOIN,            /* every socket in `room` joins `target_room` */
    RC_BP_LEAVE,           /* every socket in `room` leaves `target_room` */
    RC_BP_DISCONNECT       /* every socket in `room` is disconnected */
};

/* The deepest "args" array (nesting levels, the array itself counted) a message may carry. Every
 * node decodes a Redis envelope with cJSON, whose nesting limit (CJSON_NESTING_LIMIT) is 1000,
 * and the envelope object holds "args" one level down: deeper arguments would be delivered by
 * the node that publishes them and dropped by every other. So a node refuses them before any
 * delivery (docs/redis.md, "Envelope on room and namespace channels"). */
#define RC_BP_ARGS_MAX_DEPTH 999

/* A binary attachment of a Socket.IO packet. */
typedef struct rc_bp_bytes {
    const uint8_t *data;
    size_t len;
} rc_bp_bytes;

typedef struct rc_bp_message {
    int kind;                       /* enum rc_bp_kind */
    const char *ns;                 /* namespace, e.g. "/" or "/chat" */
    const char *room;               /* NULL: the whole namespace (channel P:ns:<ns>) */
    const char *event;              /* RC_BP_EMIT: event name */
    const char *args_json;          /* RC_BP_EMIT: JSON array text of the arguments after the name */
    size_t args_len;
    const rc_bp_bytes *attachments; /* RC_BP_EMIT: binary attachments referenced by placeholders */
    size_t attachment_count;
    const char *const *except;      /* socket ids that must not receive it */
    size_t except_count;
    const char *target_room;        /* RC_BP_JOIN / RC_BP_LEAVE */
    const char *origin;             /* publishing node id; NULL for backends */
    const char *id;                 /* optional message id */
    const char *offset;             /* RC_BP_EMIT: its place in the namespace's history (a Redis
                                       stream id, docs/recovery.md), appended to the packet as its
                                       last argument; NULL for an emit that is not kept */
} rc_bp_message;

#endif
