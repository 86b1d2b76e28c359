/*
 * backplane_envelope.c: the JSON envelope of room and namespace channels, both directions.
 * Contract: src/backplane_envelope.h; format: docs/redis.md ("Envelope on room and namespace
 * channels"). Called by the Redis backplane (backplane_redis.c's publish encodes; every message
 * backplane_redis_recv.c receives on a room or namespace channel is decoded) and by
 * test/fuzz/fuzz_redis_envelope.c.
 *
 * Encoding is written by hand into a bp_buf, keys in a fixed order ("event","args" or
 * "op","room", then "origin","except","id","attachments"), so every node sends the same bytes
 * for the same message; arguments are the caller's JSON text, copied as they are.
 *
 * Decoding parses the payload once with cJSON and checks each field against one rule (the
 * env_rule table below: what the field may hold, whether it may be missing or null, and the
 * reason logged when it breaks the rule). Nothing is guessed: an unknown or repeated key, a key
 * the message's kind does not take, "data" with "args", an id number that is not an exact
 * integer, or an emit socket.io-client could not parse (rc_bp_emit_check: a reserved event
 * name, more than 10 attachments, a placeholder out of range) refuses the whole message. What is
 * accepted and the reason given for a refusal are part of the wire contract
 * (roomcast_redis_messages_invalid_total, redis_bad_message).
 *
 * What it does not do: count, log or deliver (backplane_redis_recv.c does, with the channel's
 * namespace and room); check a namespace or room name (the channel already did); validate the
 * JSON inside "args"/"data" beyond what cJSON parses (numbers beyond 2^53 lose precision there:
 * that is payload, which ids and names never are).
 *
 * Ownership: encode writes into the caller's bp_buf. decode owns the cJSON tree and every
 * array it builds in the bp_envelope; bp_envelope_dispose releases them.
 */
#include "backplane_envelope.h"

#include "roomcast/common.h"
#include "roomcast/eio_codec.h"
#include "roomcast/template.h"

#include <cjson/cJSON.h>
#include <string.h>

/* ---- bp_buf ----------------------------------------------------------------------------------- */

static void buf_reserve(bp_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = rc_realloc(b->p, cap);
    b->cap = cap;
}

void bp_buf_put(bp_buf *b, const void *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void bp_buf_puts(bp_buf *b, const char *s)
{
    bp_buf_put(b, s, strlen(s));
}

void bp_buf_trim(bp_buf *b)
{
    if (b->cap > 256 * 1024) bp_buf_dispose(b);
}

void bp_buf_dispose(bp_buf *b)
{
    rc_free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A JSON string literal: quotes, backslashes and control characters escaped, other bytes (UTF-8
 * included) copied in runs. */
static void buf_put_jstr(bp_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *run = p;
    bp_buf_put(b, "\"", 1);
    for (; *p; p++) {
        if (*p >= 0x20 && *p != '"' && *p != '\\') continue;
        bp_buf_put(b, run, (size_t)(p - run));
        run = p + 1;
        const char *shortesc = *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : *p == '\n' ? "\\n"
                             : *p == '\r' ? "\\r" : *p == '\t' ? "\\t" : NULL;
        if (shortesc) {
            bp_buf_put(b, shortesc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            bp_buf_put(b, esc, 6);
        }
    }
    bp_buf_put(b, run, (size_t)(p - run));
    bp_buf_put(b, "\"", 1);
}

/* Standard base64 with padding (the Engine.IO codec's encoder: the same bytes). */
static void buf_put_base64(bp_buf *b, const uint8_t *d, size_t n)
{
    buf_reserve(b, rc_base64_encoded_len(n)); /* + 1 for the NUL it writes */
    b->len += rc_base64_encode(d, n, b->p + b->len);
}

/* "<ms>-<seq>", two decimal numbers of at most 20 digits: a Redis stream id. */
int bp_offset_valid(const char *s)
{
    size_t a = 0, b = 0;
    while (s[a] >= '0' && s[a] <= '9') a++;
    if (a == 0 || a > 20 || s[a] != '-') return 0;
    const char *t = s + a + 1;
    while (t[b] >= '0' && t[b] <= '9') b++;
    return b > 0 && b <= 20 && t[b] == '\0';
}

/* ---- encoding --------------------------------------------------------------------------------- */

int bp_envelope_encode(bp_buf *b, const rc_bp_message *m, const char *origin)
{
    b->len = 0;
    bp_buf_put(b, "{", 1);
    switch (m->kind) {
    case RC_BP_EMIT: {
        if (!m->event || !m->event[0]) return -1;
        size_t alen = m->args_json ? (m->args_len ? m->args_len : strlen(m->args_json)) : 0;
        bp_buf_puts(b, "\"event\":");
        buf_put_jstr(b, m->event);
        bp_buf_puts(b, ",\"args\":");
        if (alen) bp_buf_put(b, m->args_json, alen);
        else bp_buf_puts(b, "[]");
        break;
    }
    case RC_BP_JOIN:
    case RC_BP_LEAVE:
        if (!m->target_room || !m->target_room[0]) return -1;
        bp_buf_puts(b, m->kind == RC_BP_JOIN ? "\"op\":\"join\",\"room\":" : "\"op\":\"leave\",\"room\":");
        buf_put_jstr(b, m->target_room);
        break;
    case RC_BP_DISCONNECT:
        bp_buf_puts(b, "\"op\":\"disconnect\"");
        break;
    default:
        return -1;
    }
    bp_buf_puts(b, ",\"origin\":");
    buf_put_jstr(b, origin);
    if (m->except_count) {
        bp_buf_puts(b, ",\"except\":[");
        for (size_t i = 0; i < m->except_count; i++) {
            if (i) bp_buf_put(b, ",", 1);
            buf_put_jstr(b, m->except[i] ? m->except[i] : "");
        }
        bp_buf_put(b, "]", 1);
    }
    if (m->id) {
        bp_buf_puts(b, ",\"id\":");
        buf_put_jstr(b, m->id);
    }
    if (m->kind == RC_BP_EMIT && m->offset) {
        bp_buf_puts(b, ",\"offset\":");
        buf_put_jstr(b, m->offset);
    }
    if (m->kind == RC_BP_EMIT && m->attachment_count) {
        bp_buf_puts(b, ",\"attachments\":[");
        for (size_t i = 0; i < m->attachment_count; i++) {
            bp_buf_puts(b, i ? ",\"" : "\"");
            buf_put_base64(b, m->attachments[i].data, m->attachments[i].len);
            bp_buf_put(b, "\"", 1);
        }
        bp_buf_put(b, "]", 1);
    }
    bp_buf_put(b, "}", 1);
    return 0;
}

/* ---- decoding: one rule per field ------------------------------------------------------------- */

/* What a field may hold (env_rule.accept); a value matching none of the types breaks the rule. */
enum {
    ACCEPT_STRING = 1 << 0,
    ACCEPT_NUMBER = 1 << 1,
    ACCEPT_ARRAY = 1 << 2,        /* an array of anything */
    ACCEPT_STRINGS = 1 << 3,      /* an array whose items are all strings */
    NULL_IS_ABSENT = 1 << 4,      /* null reads as a missing field (otherwise it breaks the rule) */
    REQUIRED = 1 << 5,            /* a missing field breaks the rule */
    NONEMPTY = 1 << 6             /* a string must not be "" */
};

typedef struct env_rule {
    const char *name;
    unsigned accept;
    const char *refused;          /* why, when the value breaks the rule */
    const char *item_refused;     /* ACCEPT_STRINGS: why, when an item is not a string */
} env_rule;

/* The envelope's fields, in the order they are checked. */
static const env_rule RULE_ORIGIN = {"origin", ACCEPT_STRING | NULL_IS_ABSENT,
                                     "origin is not a string", NULL};
static const env_rule RULE_ID = {"id", ACCEPT_STRING | ACCEPT_NUMBER | NULL_IS_ABSENT,
                                 "id is not a string", NULL};
static const env_rule RULE_EXCEPT = {"except", ACCEPT_STRINGS | NULL_IS_ABSENT,
                                     "except is not an array", "except holds a non-string"};
static const env_rule RULE_OP = {"op", ACCEPT_STRING, "op is not a string", NULL};
static const env_rule RULE_OP_ROOM = {"room", ACCEPT_STRING | REQUIRED | NONEMPTY,
                                      "op without a room", NULL};
static const env_rule RULE_EVENT = {"event", ACCEPT_STRING | REQUIRED | NONEMPTY,
                                    "event must be a non-empty string", NULL};
static const env_rule RULE_ARGS = {"args", ACCEPT_ARRAY, "args is not an array", NULL};
static const env_rule RULE_OFFSET = {"offset", ACCEPT_STRING | NULL_IS_ABSENT, "offset is not a string", NULL};
static const env_rule RULE_ATTACHMENTS = {"attachments", ACCEPT_STRINGS | NULL_IS_ABSENT,
                                          "attachments is not an array",
                                          "attachment is not a string"};

static int refuse(bp_envelope *env, const char *why)
{
    env->why = why;
    return BP_ENVELOPE_INVALID;
}

/* The envelope's keys, a bit each (env_keys). */
enum { K_EVENT, K_DATA, K_ARGS, K_ATTACHMENTS, K_OP, K_ROOM, K_EXCEPT, K_ID, K_ORIGIN, K_OFFSET, K__COUNT };
static const char *const key_names[K__COUNT] = {
    "event", "data", "args", "attachments", "op", "room", "except", "id", "origin", "offset",
};
#define KEY(k) (1u << (k))
/* What each kind may carry besides except, id and origin. */
#define KEYS_COMMON (KEY(K_EXCEPT) | KEY(K_ID) | KEY(K_ORIGIN))
#define KEYS_EMIT (KEYS_COMMON | KEY(K_EVENT) | KEY(K_DATA) | KEY(K_ARGS) | KEY(K_ATTACHMENTS) | KEY(K_OFFSET))
#define KEYS_JOIN (KEYS_COMMON | KEY(K_OP) | KEY(K_ROOM))
#define KEYS_DISCONNECT (KEYS_COMMON | KEY(K_OP))

/* Every key is one of the envelope's, said once (a duplicate would leave two readings of one
 * message). One pass, a bit per name; env->keys = the bits seen. -1 with env->why and
 * env->field set otherwise. */
static int env_keys(bp_envelope *env)
{
    for (const cJSON *c = env->root->child; c; c = c->next) {
        size_t k = 0;
        while (k < K__COUNT && strcmp(c->string, key_names[k]) != 0) k++;
        env->field = c->string;
        if (k == K__COUNT || (env->keys & KEY(k))) {
            refuse(env, k == K__COUNT ? "unknown field" : "duplicate field");
            return -1;
        }
        env->keys |= KEY(k);
    }
    env->field = NULL;
    return 0;
}

/* A key the message's kind does not take (an emit's "room": the channel names the room; an
 * op's "event"): refused, never ignored. */
static int env_keys_fit(bp_envelope *env, unsigned allowed)
{
    unsigned extra = env->keys & ~allowed;
    if (!extra) return BP_ENVELOPE_OK;
    for (size_t k = 0; k < K__COUNT; k++)
        if (extra & KEY(k)) env->field = key_names[k];
    return refuse(env, "field does not fit the message");
}

/* Looks up rule->name in the envelope. 0 with *out = the value, or NULL when absent; -1 with
 * env->why set when the value breaks the rule. */
static int env_field(bp_envelope *env, const env_rule *rule, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(env->root, rule->name);
    unsigned a = rule->accept;

    *out = NULL;
    if (!v || ((a & NULL_IS_ABSENT) && cJSON_IsNull(v))) {
        if (!(a & REQUIRED)) return 0;
        refuse(env, rule->refused);
        return -1;
    }
    int ok = ((a & ACCEPT_STRING) && cJSON_IsString(v) && (!(a & NONEMPTY) || v->valuestring[0])) ||
             ((a & ACCEPT_NUMBER) && cJSON_IsNumber(v)) ||
             ((a & (ACCEPT_ARRAY | ACCEPT_STRINGS)) && cJSON_IsArray(v));
    if (!ok) {
        refuse(env, rule->refused);
        return -1;
    }
    if (a & ACCEPT_STRINGS) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            if (!cJSON_IsString(it)) {
                refuse(env, rule->item_refused);
                return -1;
            }
        }
    }
    *out = v;
    return 0;
}

/* Decodes padded standard base64 into out (room for len/4*3 bytes); -1 when malformed. Not
 * rc_base64_decode (eio_codec.h): that one also refuses bits set in the last character before
 * the padding, which envelopes have always been allowed to carry. */
static long attachment_decode(const char *s, size_t len, uint8_t *out)
{
    size_t o = 0;
    if (len % 4) return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = rc_base64_value(c)) < 0) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2) out[o++] = (uint8_t)(w >> 8);
        if (pad < 1) out[o++] = (uint8_t)w;
    }
    return (long)o;
}

/* "attachments" (already checked to be an array of strings): one allocation for the bytes. */
static int decode_attachments(bp_envelope *env, const cJSON *atts)
{
    size_t n = (size_t)cJSON_GetArraySize(atts), total = 0, i = 0, off = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, atts) total += strlen(it->valuestring) / 4 * 3;
    env->attachments = rc_calloc(n ? n : 1, sizeof(*env->attachments));
    env->attachment_bytes = rc_malloc(total ? total : 1);
    cJSON_ArrayForEach(it, atts) {
        long got = attachment_decode(it->valuestring, strlen(it->valuestring),
                                     env->attachment_bytes + off);
        if (got < 0) return refuse(env, "attachment is not base64");
        env->attachments[i].data = env->attachment_bytes + off;
        env->attachments[i].len = (size_t)got;
        off += (size_t)got;
        i++;
    }
    env->msg.attachments = env->attachments;
    env->msg.attachment_count = n;
    return BP_ENVELOPE_OK;
}

/* {"op":"join"|"leave"|"disconnect", "room":...} */
static int decode_op(bp_envelope *env, const cJSON *op)
{
    rc_bp_message *m = &env->msg;
    const cJSON *target;

    if (strcmp(op->valuestring, "join") == 0) m->kind = RC_BP_JOIN;
    else if (strcmp(op->valuestring, "leave") == 0) m->kind = RC_BP_LEAVE;
    else if (strcmp(op->valuestring, "disconnect") == 0) m->kind = RC_BP_DISCONNECT;
    else return refuse(env, "unknown op");
    if (m->kind == RC_BP_DISCONNECT) return env_keys_fit(env, KEYS_DISCONNECT);
    if (env_field(env, &RULE_OP_ROOM, &target) != 0) return BP_ENVELOPE_INVALID;
    m->target_room = target->valuestring;
    return env_keys_fit(env, KEYS_JOIN);
}

/* {"event":..., "args":[...] or "data":..., "attachments":[...]} */
static int decode_emit(bp_envelope *env)
{
    rc_bp_message *m = &env->msg;
    const cJSON *event, *args, *atts;

    if (env_field(env, &RULE_EVENT, &event) != 0) return BP_ENVELOPE_INVALID;
    m->kind = RC_BP_EMIT;
    m->event = event->valuestring;
    if (env_keys_fit(env, KEYS_EMIT) != BP_ENVELOPE_OK) return BP_ENVELOPE_INVALID;

    if (env_field(env, &RULE_ARGS, &args) != 0) return BP_ENVELOPE_INVALID;
    if (args && (env->keys & KEY(K_DATA))) return refuse(env, "data and args both given");
    if (env_field(env, &RULE_ATTACHMENTS, &atts) != 0) return BP_ENVELOPE_INVALID;
    const cJSON *offset;
    if (env_field(env, &RULE_OFFSET, &offset) != 0) return BP_ENVELOPE_INVALID;
    if (offset) {
        if (!bp_offset_valid(offset->valuestring)) return refuse(env, "offset is not a stream id");
        m->offset = offset->valuestring;
    }
    if (!args) {
        cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(env->root, "data");
        env->args_array = cJSON_CreateArray();
        if (data) cJSON_AddItemToArray(env->args_array, data); /* "data" is the one argument */
        args = env->args_array;
    }
    /* What socket.io-client could not parse would drop every recipient (backplane.h). */
    const char *bad = rc_bp_emit_check(m->event, args, atts ? (size_t)cJSON_GetArraySize(atts) : 0);
    if (bad) return refuse(env, bad);

    env->args_json = cJSON_PrintUnformatted(args);
    if (!env->args_json) return refuse(env, "args could not be printed");
    m->args_json = env->args_json;
    m->args_len = strlen(env->args_json);
    return atts ? decode_attachments(env, atts) : BP_ENVELOPE_OK;
}

int bp_envelope_decode(bp_envelope *env, const char *payload, size_t len, const char *own_origin)
{
    const char *end = NULL;
    const cJSON *origin, *id, *except, *op;

    memset(env, 0, sizeof(*env));
    env->except = env->except_inline;
    env->root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    if (!env->root || !cJSON_IsObject(env->root))
        return refuse(env, env->root ? "not an object" : "bad JSON");
    while (end && end < payload + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
        end++;
    if (end != payload + len) return refuse(env, "text after the JSON");

    if (env_field(env, &RULE_ORIGIN, &origin) != 0) return BP_ENVELOPE_INVALID;
    if (origin) {
        /* A kept emit comes back to its own node too: the history script published it, and every
         * node delivers kept emits in the order Redis ran them (docs/recovery.md). */
        if (strcmp(origin->valuestring, own_origin) == 0 &&
            !cJSON_GetObjectItemCaseSensitive(env->root, "offset"))
            return BP_ENVELOPE_OWN;
        env->msg.origin = origin->valuestring;
    }

    if (env_keys(env) != 0) return BP_ENVELOPE_INVALID;

    if (env_field(env, &RULE_ID, &id) != 0) return BP_ENVELOPE_INVALID;
    if (cJSON_IsString(id)) {
        env->msg.id = id->valuestring;
    } else if (id) {
        if (rc_tpl_id_number(id->valuedouble, env->id_text) != 0)
            return refuse(env, "id is a number beyond 2^53 or not an integer");
        env->msg.id = env->id_text;
    }

    if (env_field(env, &RULE_EXCEPT, &except) != 0) return BP_ENVELOPE_INVALID;
    if (except) {
        size_t n = (size_t)cJSON_GetArraySize(except), i = 0;
        const cJSON *it;
        if (n > RC_ARRAY_LEN(env->except_inline)) env->except = rc_malloc(n * sizeof(*env->except));
        cJSON_ArrayForEach(it, except) env->except[i++] = it->valuestring;
        env->msg.except = env->except;
        env->msg.except_count = i;
    }

    if (env_field(env, &RULE_OP, &op) != 0) return BP_ENVELOPE_INVALID;
    return op ? decode_op(env, op) : decode_emit(env);
}

void bp_envelope_dispose(bp_envelope *env)
{
    if (env->except != env->except_inline) rc_free(env->except);
    rc_free(env->attachments);
    rc_free(env->attachment_bytes);
    if (env->args_json) cJSON_free(env->args_json);
    cJSON_Delete(env->args_array);
    cJSON_Delete(env->root);
    memset(env, 0, sizeof(*env));
}
