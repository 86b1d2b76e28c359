/*
 * sio_codec.c: Socket.IO v5 packet codec. See include/roomcast/sio_codec.h.
 *
 * Purpose: decode the text of one Engine.IO MESSAGE into a Socket.IO packet, validated the way
 * socket.io-parser 4.2 validates it, and write packet headers for the encoder. Pure functions:
 * no sockets, no namespaces registry, no global state of ours.
 *
 * API in call order:
 *   rc_sio_decode              "<type>[<n>-][<nsp>,][<ack id>][<JSON>]" -> rc_sio_packet
 *   rc_sio_count_placeholders  binary packets: check {"_placeholder":true,"num":i} objects
 *   rc_sio_packet_dispose      frees the parsed payload
 *   rc_sio_encode_header       the other direction; the caller appends the JSON text
 *   rc_sio_json_deeper_than    nesting depth of a tree, for what may leave the node
 *
 * Parse order (each step only looks at bytes left over by the previous one):
 *   type digit '0'..'6'; for 5/6 decimal digits then '-' (1..RC_SIO_MAX_ATTACHMENTS, leading
 *   zeros allowed as in JS); if the next byte is '/', the namespace runs to ',' (consumed) or
 *   to the end; then up to 15 decimal digits of ack id; the rest, if any, must be one JSON text.
 *
 * JSON: the peer decodes with JSON.parse, and the bytes we accept are relayed to other clients
 * unchanged, so "valid" must mean what JSON.parse accepts, not what cJSON tolerates. cJSON 1.7.15
 * accepts "+1", "01", ".5", raw control characters in strings, "\uZZZZ" (as U+0000) and a BOM,
 * and returns the end of the value instead of rejecting trailing bytes. So the rest is first
 * checked by json_check (RFC 8259 grammar, iterative, nesting capped at CJSON_NESTING_LIMIT),
 * then parsed once by cJSON_ParseWithLengthOpts, and cJSON's parse end must equal the end of
 * the value json_check found (upstream 1.7.15 stops after 63 characters of a number; Debian's
 * patched build does not, and either way nothing truncated gets through). One kind of text
 * JSON.parse takes is still refused ("bad json"): a lone UTF-16 surrogate escape ("\ud800"),
 * which cJSON rejects.
 *
 * Stricter than socket.io-parser, on purpose (all are things the JS client never sends):
 *   - a namespace with an ASCII control byte (0x00-0x1f, 0x7f) is "bad namespace": namespaces
 *     end up in logs, metric labels and Redis channel names;
 *   - an EVENT name containing U+0000 is "bad payload shape": cJSON's C string would stop at
 *     the NUL, so rules would see another name than the receivers;
 *   - EVENT and ACK need a payload (socket.io-parser skips validation when the JSON is absent);
 *   - placeholders must carry an integer "num".
 *   Duplicate object keys resolve to the last one, as in JSON.parse (placeholders).
 *
 * What it does not do: it does not track namespaces, connection state or the binary
 * attachments that follow a 5/6 header (the session layer collects those), and it does not
 * check UTF-8 (the transport does).
 *
 * Ownership: rc_sio_packet.nsp points into the input (or at a static "/"), so the input must
 * outlive the slice. payload is a cJSON tree owned by the packet and freed by
 * rc_sio_packet_dispose; event points inside payload.
 */
#include "roomcast/sio_codec.h"

#include <assert.h>
#include <cjson/cJSON.h>

#define SIO_MAX_ACK_DIGITS 15
#define JSON_MAX_DEPTH CJSON_NESTING_LIMIT
/* Recursion guard for rc_sio_count_placeholders; parsed trees are never deeper than
 * CJSON_NESTING_LIMIT, trees built by hand could be. */
#define PLACEHOLDER_MAX_DEPTH (CJSON_NESTING_LIMIT + 1)

/* Failure reasons: one object each, so callers may compare them by pointer within a build. */
static const char sio_err_type[] = "bad type";
static const char sio_err_attachments[] = "bad attachments";
static const char sio_err_namespace[] = "bad namespace";
static const char sio_err_ack_id[] = "bad ack id";
static const char sio_err_json[] = "bad json";
static const char sio_err_shape[] = "bad payload shape";
static const char sio_err_reserved[] = "reserved event name";

static const char *const sio_reserved_events[] = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

/* ---- strict JSON syntax check ----------------------------------------------------------- */

typedef const unsigned char *jpos;

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static jpos json_ws(jpos p, jpos end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p is at '"'. Returns the position after the closing quote, or NULL. Sets *nul when an
 * escape decodes to U+0000. */
static jpos json_string(jpos p, jpos end, int *nul)
{
    for (p++; p < end;) {
        unsigned char c = *p++;
        if (c == '"') return p;
        if (c < 0x20) return NULL;
        if (c != '\\') continue;
        if (p == end) return NULL;
        switch (*p++) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
        case 'u': {
            int v = 0;
            if (end - p < 4) return NULL;
            for (int i = 0; i < 4; i++) {
                int h = hex_value(p[i]);
                if (h < 0) return NULL;
                v = v << 4 | h;
            }
            if (v == 0) *nul = 1;
            p += 4;
            break;
        }
        default:
            return NULL;
        }
    }
    return NULL;
}

static jpos json_digits(jpos p, jpos end)
{
    if (p == end || !is_digit(*p)) return NULL;
    while (p < end && is_digit(*p)) p++;
    return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static jpos json_number(jpos p, jpos end)
{
    if (p < end && *p == '-') p++;
    if (p < end && *p == '0') {
        p++;
    } else if (!(p = json_digits(p, end))) {
        return NULL;
    }
    if (p < end && *p == '.' && !(p = json_digits(p + 1, end))) return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!(p = json_digits(p, end))) return NULL;
    }
    return p;
}

static jpos json_literal(jpos p, jpos end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    return p + n;
}

/* An object member's key and colon; returns where its value starts, or NULL. */
static jpos json_member_key(jpos p, jpos end)
{
    int nul = 0;
    if (p == end || *p != '"' || !(p = json_string(p, end, &nul))) return NULL;
    p = json_ws(p, end);
    if (p == end || *p != ':') return NULL;
    return json_ws(p + 1, end);
}

/* Checks that text[0..len) is one JSON text as JSON.parse accepts it: whitespace, one value,
 * whitespace. Sets *value_end to the offset just past the value, and *first_nul when the value
 * is an array whose element 0 is a string containing U+0000. Returns 0 or -1. */
static int json_check(const char *text, size_t len, size_t *value_end, int *first_nul)
{
    jpos start = (jpos)text, end = start + len, p = json_ws(start, end);
    char kind[JSON_MAX_DEPTH];  /* '[' or '{' for each enclosing container */
    size_t depth = 0;
    int in_first = 0;           /* inside element 0 of a top-level array */

    *first_nul = 0;
    for (;;) {
        /* A value starts at p. */
        int nul = 0;
        if (p == end) return -1;
        switch (*p) {
        case '[':
        case '{':
            if (depth == JSON_MAX_DEPTH) return -1;
            if (depth == 0) in_first = *p == '[';
            kind[depth++] = (char)*p;
            p = json_ws(p + 1, end);
            if (p < end && *p == (kind[depth - 1] == '[' ? ']' : '}')) {
                p++;
                depth--;
                break;
            }
            if (kind[depth - 1] == '{' && !(p = json_member_key(p, end))) return -1;
            continue;
        case '"':
            if (!(p = json_string(p, end, &nul))) return -1;
            if (nul && in_first && depth == 1) *first_nul = 1;
            break;
        case 't': p = json_literal(p, end, "true"); break;
        case 'f': p = json_literal(p, end, "false"); break;
        case 'n': p = json_literal(p, end, "null"); break;
        default: p = json_number(p, end); break;
        }
        if (!p) return -1;

        /* After a value: close containers, or step to the next element or member. */
        for (;;) {
            if (depth == 0) {
                *value_end = (size_t)(p - start);
                return json_ws(p, end) == end ? 0 : -1;
            }
            p = json_ws(p, end);
            if (p == end) return -1;
            char o = kind[depth - 1];
            if (*p == (o == '[' ? ']' : '}')) {
                p++;
                depth--;
                continue;
            }
            if (*p != ',') return -1;
            if (depth == 1) in_first = 0;
            p = json_ws(p + 1, end);
            if (o == '{' && !(p = json_member_key(p, end))) return -1;
            break;
        }
    }
}

/* Parses text[0..len) as the payload; NULL when it is not exactly one JSON.parse-valid text. */
static cJSON *json_parse(const char *text, size_t len, int *first_nul)
{
    size_t value_end;
    const char *parse_end = NULL;

    if (json_check(text, len, &value_end, first_nul) != 0) return NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &parse_end, 0);
    if (v && parse_end != text + value_end) {  /* cJSON stopped early (a >63-char number) */
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

/* ---- decoding --------------------------------------------------------------------------- */

static int sio_is_reserved(const char *name)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(sio_reserved_events); i++) {
        if (strcmp(name, sio_reserved_events[i]) == 0) return 1;
    }
    return 0;
}

/* Checks the payload shape the packet type requires; sets p->event. Returns a reason or NULL. */
static const char *sio_check_shape(rc_sio_packet *p, int first_nul)
{
    const cJSON *v = p->payload;

    switch (p->type) {
    case RC_SIO_CONNECT:
        return v && !cJSON_IsObject(v) ? sio_err_shape : NULL;
    case RC_SIO_DISCONNECT:
        return v ? sio_err_shape : NULL;
    case RC_SIO_EVENT:
    case RC_SIO_BINARY_EVENT: {
        if (!cJSON_IsArray(v) || !v->child) return sio_err_shape;
        const cJSON *name = v->child;
        if (cJSON_IsNumber(name)) return NULL;
        if (!cJSON_IsString(name) || first_nul) return sio_err_shape;
        if (sio_is_reserved(name->valuestring)) return sio_err_reserved;
        p->event = name->valuestring;
        return NULL;
    }
    case RC_SIO_ACK:
    case RC_SIO_BINARY_ACK:
        if (p->ack_id < 0) return sio_err_ack_id;
        return cJSON_IsArray(v) ? NULL : sio_err_shape;
    case RC_SIO_CONNECT_ERROR:
        return cJSON_IsObject(v) || cJSON_IsString(v) ? NULL : sio_err_shape;
    default:
        return sio_err_type;
    }
}

int rc_sio_decode(const char *s, size_t len, rc_sio_packet *out, const char **err)
{
    const char *p = s, *end = s + len;
    const char *why = NULL;
    int first_nul = 0;

    memset(out, 0, sizeof(*out));
    out->type = -1;
    out->nsp = (rc_slice){"/", 1};
    out->ack_id = -1;

    if (p == end || *p < '0' || *p > '6') {
        why = sio_err_type;
        goto fail;
    }
    out->type = *p++ - '0';

    if (out->type == RC_SIO_BINARY_EVENT || out->type == RC_SIO_BINARY_ACK) {
        const char *digits = p;
        int n = 0;
        for (; p < end && is_digit(*p); p++) {
            n = n * 10 + (*p - '0');
            if (n > RC_SIO_MAX_ATTACHMENTS) break;
        }
        if (p == digits || n < 1 || n > RC_SIO_MAX_ATTACHMENTS || p == end || *p != '-') {
            why = sio_err_attachments;
            goto fail;
        }
        p++;
        out->attachments = n;
    }

    if (p < end && *p == '/') {
        const char *nsp = p;
        for (; p < end && *p != ','; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x20 || c == 0x7f) {
                why = sio_err_namespace;
                goto fail;
            }
        }
        out->nsp = (rc_slice){nsp, (size_t)(p - nsp)};
        if (p < end) p++;  /* the ',' */
    }

    if (p < end && is_digit(*p)) {
        const char *digits = p;
        long long id = 0;
        for (; p < end && is_digit(*p); p++) {
            if (p - digits == SIO_MAX_ACK_DIGITS) {
                why = sio_err_ack_id;
                goto fail;
            }
            id = id * 10 + (*p - '0');
        }
        out->ack_id = id;
    }

    if (p < end) {
        out->payload = json_parse(p, (size_t)(end - p), &first_nul);
        if (!out->payload) {
            why = sio_err_json;
            goto fail;
        }
    }

    why = sio_check_shape(out, first_nul);
    if (why) goto fail;
    return 0;

fail:
    cJSON_Delete(out->payload);
    out->payload = NULL;
    out->event = NULL;
    if (err) *err = why;
    return -1;
}

void rc_sio_packet_dispose(rc_sio_packet *p)
{
    cJSON_Delete(p->payload);
    p->payload = NULL;
    p->event = NULL;
}

/* ---- encoding --------------------------------------------------------------------------- */

/* Writes v in decimal without a NUL; returns the number of bytes. */
static size_t put_decimal(char *w, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) w[i] = tmp[n - 1 - i];
    return n;
}

size_t rc_sio_encode_header(char *buf, int type, const char *nsp, long long ack_id, int attachments)
{
    char *w = buf;

    assert(type >= RC_SIO_CONNECT && type <= RC_SIO_BINARY_ACK);
    *w++ = (char)('0' + type);
    if (attachments > 0) {
        w += put_decimal(w, (unsigned long long)attachments);
        *w++ = '-';
    }
    if (nsp && nsp[0] && strcmp(nsp, "/") != 0) {
        size_t n = strlen(nsp);
        memcpy(w, nsp, n);
        w += n;
        *w++ = ',';
    }
    if (ack_id >= 0) w += put_decimal(w, (unsigned long long)ack_id);
    return (size_t)(w - buf);
}

/* ---- binary placeholders ---------------------------------------------------------------- */

/* The last member named key, as JSON.parse keeps the last of duplicate keys. */
static const cJSON *sio_last_member(const cJSON *obj, const char *key)
{
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (c->string && strcmp(c->string, key) == 0) found = c;
    }
    return found;
}

static int sio_count_walk(const cJSON *v, int attachments, int depth)
{
    if (depth > PLACEHOLDER_MAX_DEPTH) return -1;
    if (cJSON_IsObject(v) && cJSON_IsTrue(sio_last_member(v, "_placeholder"))) {
        const cJSON *num = sio_last_member(v, "num");
        if (!num || !cJSON_IsNumber(num)) return -1;
        double d = num->valuedouble;
        if (!(d >= 0 && d < attachments) || d != (double)(int)d) return -1;
        return 1;
    }
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return 0;

    int total = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        int n = sio_count_walk(c, attachments, depth + 1);
        if (n < 0) return -1;
        total += n;
    }
    return total;
}

int rc_sio_count_placeholders(const struct cJSON *payload, int attachments)
{
    if (!payload) return 0;
    return sio_count_walk(payload, attachments, 0);
}

int rc_sio_event_reserved(const char *name)
{
    return name && sio_is_reserved(name);
}

int rc_sio_json_deeper_than(const cJSON *v, int max)
{
    if (!v || !(cJSON_IsArray(v) || cJSON_IsObject(v))) return 0;
    if (max <= 0) return 1;
    for (const cJSON *c = v->child; c; c = c->next)
        if (rc_sio_json_deeper_than(c, max - 1)) return 1;
    return 0;
}
