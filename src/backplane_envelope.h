/*
 * backplane_envelope.h: the JSON envelope carried on room and namespace channels (docs/redis.md,
 * "Envelope on room and namespace channels"), turned into bytes and back. Private to the Redis
 * backplane: implemented in backplane_envelope.c, called by backplane_redis.c (publish),
 * backplane_redis_recv.c (receive) and the fuzz target test/fuzz/fuzz_redis_envelope.c. No I/O,
 * no Redis, no state.
 */
#ifndef ROOMCAST_BACKPLANE_ENVELOPE_H
#define ROOMCAST_BACKPLANE_ENVELOPE_H

#include "roomcast/backplane.h"

#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* A growable byte string, always NUL-terminated once written. All-zero is empty; the owner
 * releases it with bp_buf_dispose. */
typedef struct bp_buf {
    char *p;
    size_t len, cap;
} bp_buf;

void bp_buf_put(bp_buf *b, const void *s, size_t n);
void bp_buf_puts(bp_buf *b, const char *s);
/* Frees the storage if one large message grew it past 256 KiB, so an idle node does not keep it. */
void bp_buf_trim(bp_buf *b);
void bp_buf_dispose(bp_buf *b);

/* Writes the envelope of m into out (replacing what it held), keys in the documented order, with
 * "origin" = origin (m->origin is not used). ns and room are not part of it: they name the
 * channel. Returns 0, or -1 when m lacks what its kind needs (an EMIT without an event, a
 * JOIN/LEAVE without a target room, an unknown kind); out then holds garbage. */
int bp_envelope_encode(bp_buf *out, const rc_bp_message *m, const char *origin);

/* 1 if s is a Redis stream id "<ms>-<seq>" (an "offset"). */
int bp_offset_valid(const char *s);

enum bp_envelope_verdict {
    BP_ENVELOPE_OK = 0,    /* env->msg holds the message */
    BP_ENVELOPE_OWN,       /* a well-formed "origin" equal to own_origin: our own echo */
    BP_ENVELOPE_INVALID    /* malformed; env->why says why (a static string) */
};

/* A decoded envelope and the storage its message points into. */
typedef struct bp_envelope {
    rc_bp_message msg;     /* ns and room are left NULL: the caller knows the channel */
    const char *why;       /* BP_ENVELOPE_INVALID: the reason (static), for the log */
    const char *field;     /* with "unknown field", "duplicate field", "field does not fit the
                            * message": the key at fault (into root, or static) */
    unsigned keys;         /* the keys present, a bit each (backplane_envelope.c) */
    struct cJSON *root, *args_array;
    char *args_json;
    const char **except;   /* except_inline, or a heap array for more than 16 ids */
    const char *except_inline[16];
    rc_bp_bytes *attachments;
    uint8_t *attachment_bytes;
    char id_text[24];      /* a numeric "id" as text (rc_tpl_id_number) */
} bp_envelope;

/* Decodes payload[0..len) into env and returns an enum bp_envelope_verdict. Whatever it returns,
 * env must be released with bp_envelope_dispose, and must not move in between (msg points into
 * it). The checks, in order: one JSON object with nothing but whitespace after it; "origin"
 * (own echo detected here, before any later field is looked at); every key known and said once;
 * "id" (a string, or an integer up to 2^53 - 1); "except"; then "op" with its "room", or
 * "event", "args" or "data" (not both) and "attachments"; no key the kind does not take; an
 * emit passes rc_bp_emit_check (what socket.io-client can parse). Nothing is guessed: a message
 * is understood whole or refused. */
int bp_envelope_decode(bp_envelope *env, const char *payload, size_t len, const char *own_origin);
void bp_envelope_dispose(bp_envelope *env);

#endif
