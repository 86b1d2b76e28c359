/*
 * sio_codec.h: Socket.IO v5 packet codec (the text inside an Engine.IO MESSAGE).
 *
 *   <type>[<attachments>-][<nsp>,][<ack id>][<JSON payload>]
 *
 * Decoding parses the header in place (slices into the input) and the payload once with cJSON,
 * validating the shape each type requires:
 *   CONNECT (0)       payload absent or an object
 *   DISCONNECT (1)    no payload
 *   EVENT (2) / BINARY_EVENT (5)  non-empty array; [0] is a string that is not a reserved name
 *                     (connect, connect_error, disconnect, disconnecting, newListener,
 *                     removeListener) or a number
 *   ACK (3) / BINARY_ACK (6)      array, ack id required
 *   CONNECT_ERROR (4) object or string (only servers send it; servers close on receiving it)
 *   binary types need an attachment count 1..RC_SIO_MAX_ATTACHMENTS; other types must have none.
 * Namespace: "/" when omitted; otherwise starts with '/' and runs to ',' or the end of input.
 * Ack id: decimal digits, at most 15 of them (fits in a JS safe integer).
 *
 * Encoding writes the header; the caller appends the JSON payload text.
 *
 * rc_sio_count_placeholders and rc_sio_json_deeper_than look at parsed (or rule-built) trees.
 */
#ifndef ROOMCAST_SIO_CODEC_H
#define ROOMCAST_SIO_CODEC_H

#include <stddef.h>
#include "roomcast/common.h"

struct cJSON;

enum rc_sio_type {
    RC_SIO_CONNECT = 0, RC_SIO_DISCONNECT = 1, RC_SIO_EVENT = 2, RC_SIO_ACK = 3,
    RC_SIO_CONNECT_ERROR = 4, RC_SIO_BINARY_EVENT = 5, RC_SIO_BINARY_ACK = 6
};

#define RC_SIO_MAX_ATTACHMENTS 10
/* Longest header rc_sio_encode_header can write, excluding the namespace. */
#define RC_SIO_HEADER_MAX 40

typedef struct rc_sio_packet {
    int type;                 /* enum rc_sio_type */
    rc_slice nsp;             /* "/" when omitted; points into the input or a static string */
    long long ack_id;         /* -1 when absent */
    int attachments;          /* binary attachment count, 0 for non-binary types */
    struct cJSON *payload;    /* parsed payload or NULL when absent; owned by the packet */
    const char *event;        /* EVENT/BINARY_EVENT: name (points into payload), NULL if numeric */
} rc_sio_packet;

/* Decodes s[0..len). Returns 0, or -1 with *err set to a static reason ("bad type",
 * "bad attachments", "bad namespace", "bad ack id", "bad json", "bad payload shape",
 * "reserved event name"). The packet must be disposed even on error (it is safe on a zeroed one). */
int rc_sio_decode(const char *s, size_t len, rc_sio_packet *out, const char **err);
void rc_sio_packet_dispose(rc_sio_packet *p);

/* Writes "<type>[<n>-][<nsp>,][<ack id>]" into buf (capacity RC_SIO_HEADER_MAX + nsp length).
 * nsp "/" (or NULL) is omitted. ack_id < 0 means none. attachments is written only when > 0.
 * Returns the number of bytes written (not NUL-terminated). */
size_t rc_sio_encode_header(char *buf, int type, const char *nsp, long long ack_id, int attachments);

/* Counts {"_placeholder":true,"num":n} objects in a payload (depth first) and checks that each n
 * is an integer in [0, attachments). Returns the count, or -1 if a placeholder is malformed or out
 * of range. Used to validate binary packets before relaying them. */
int rc_sio_count_placeholders(const struct cJSON *payload, int attachments);

/* 1 if name is an event name socket.io-client refuses (connect, connect_error, disconnect,
 * disconnecting, newListener, removeListener): a packet carrying it is a parse error there. The
 * decoder refuses it from clients; whoever emits to clients on a backend's behalf checks it too. */
int rc_sio_event_reserved(const char *name);

/* 1 if v nests deeper than max levels (a scalar is 0 deep, [] 1, [[1]] 2; objects count as
 * arrays), else 0. Looks at most max + 1 levels down. Used before a relay leaves the node
 * (RC_BP_ARGS_MAX_DEPTH in roomcast/message.h). */
int rc_sio_json_deeper_than(const struct cJSON *v, int max);

#endif
