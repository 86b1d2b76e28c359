/*
 * eio_codec.h: Engine.IO v4 packet and polling-payload codec (no I/O, no allocation on decode
 * except for base64 records).
 *
 * Text packet: one type digit then the payload ("4hello", "2", "3probe").
 * WebSocket: a binary frame is a MESSAGE packet whose payload is the raw bytes (no type byte).
 * Polling payload (HTTP body): packets joined by 0x1e; a record starting with 'b' is a binary
 * MESSAGE in standard base64 with padding.
 *
 * Decoders return 0 on success and -1 on malformed input; they never read past len.
 */
#ifndef ROOMCAST_EIO_CODEC_H
#define ROOMCAST_EIO_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum rc_eio_type {
    RC_EIO_OPEN = 0, RC_EIO_CLOSE = 1, RC_EIO_PING = 2, RC_EIO_PONG = 3,
    RC_EIO_MESSAGE = 4, RC_EIO_UPGRADE = 5, RC_EIO_NOOP = 6
};

#define RC_EIO_RECORD_SEP '\x1e'

typedef struct rc_eio_packet {
    int type;              /* enum rc_eio_type */
    int binary;            /* 1 for a binary MESSAGE */
    const uint8_t *data;   /* payload; points into the input, or into decoder scratch for base64 */
    size_t len;
} rc_eio_packet;

/* Decodes one text packet (a WebSocket text frame, or one polling record that is not 'b'). */
int rc_eio_decode_text(const char *s, size_t len, rc_eio_packet *out);

/* Splits a polling POST body on 0x1e and calls cb for each packet, in order. 'b' records are
 * base64-decoded into a temporary buffer valid only during the callback. Returns 0; -1 when a
 * record is malformed (empty record, unknown type digit, bad base64) — records before it were
 * already delivered; or the first non-zero value cb returned (which stops the walk). */
typedef int (*rc_eio_packet_cb)(void *arg, const rc_eio_packet *p);
int rc_eio_payload_decode(const char *body, size_t len, rc_eio_packet_cb cb, void *arg);

/* Appends one packet to a polling response body in out: the 0x1e separator first unless
 * `first`, then either the type digit + payload, or 'b' + base64(payload) for a binary message. */
void rc_eio_payload_append(struct evbuffer *out, int first, int type, int binary,
                           const uint8_t *data, size_t len);

/* Standard base64 (RFC 4648, with padding). encode writes base64_encoded_len(n) bytes + NUL;
 * decode returns the decoded length or -1 on bad input (wrong length, bad characters). */
size_t rc_base64_encoded_len(size_t n);
size_t rc_base64_encode(const uint8_t *in, size_t n, char *out);
long rc_base64_decode(const char *in, size_t n, uint8_t *out);
/* The 6-bit value of one standard base64 character, or -1. */
int rc_base64_value(unsigned char c);

#endif
