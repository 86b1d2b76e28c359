/*
 * socketio_codec.c: Socket.IO's Redis formats (@socket.io/redis-emitter, @socket.io/redis-adapter)
 * to roomcast's room message and back. Contract, and what is refused: include/roomcast/
 * socketio_codec.h; the formats: docs/redis.md ("Socket.IO's Redis formats").
 *
 * Decoding: a skim (mp_skim) first walks the bytes, checking that they hold exactly one msgpack
 * value whose containers declare no more elements than bytes remain and nest at most
 * RC_SOCKETIO_MAX_DEPTH deep; only then does libmsgpack-c build the object (msgpack_unpack_next),
 * since it allocates every container's declared size before reading its elements (five bytes
 * could otherwise ask for 64 GiB). The object is read by key name, and the arguments are written
 * as JSON text in one pass (json_value) the way JSON.stringify writes what notepack.io decodes:
 * numbers as JavaScript prints them (js_number), Dates as toISOString (js_date), undefined left
 * out or null, binary values replaced by placeholders and collected as attachments.
 *
 * Encoding: the node's emit (event, JSON arguments with placeholders, attachments) becomes the
 * adapter's [uid, packet, opts] with msgpack_pack_* into one reused buffer, once per broadcast.
 *
 * Requests are read in socketio_request.c with the helpers this file shares through
 * src/socketio_internal.h (unpacking, reading maps by key, string copies, room lists).
 *
 * What it does not do: decide who receives what (the node and src/sio_broadcast.c), talk to
 * Redis, or keep anything between calls except its buffers.
 *
 * Ownership: the codec owns its msgpack_unpacked (and the zone the object and its string copies
 * live in), its JSON text buffer, its pointer arrays and its pack buffer; everything it returns
 * points into them, or into the caller's payload (binary attachments, strings of an unpacked
 * object: msgpack-c references the input), until the next call.
 */
#include "socketio_internal.h"

#include "roomcast/common.h"
#include "roomcast/sio_codec.h"
#include "roomcast/ws.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rc_socketio_codec *rc_socketio_codec_new(void)
{
    rc_socketio_codec *c = rc_calloc(1, sizeof(*c));
    msgpack_unpacked_init(&c->unpacked);
    msgpack_sbuffer_init(&c->out);
    return c;
}

void rc_socketio_codec_free(rc_socketio_codec *c)
{
    if (!c) return;
    msgpack_unpacked_destroy(&c->unpacked);
    msgpack_sbuffer_destroy(&c->out);
    cJSON_Delete(c->req_json);
    rc_free(c->json.p);
    rc_free(c->rooms.items);
    rc_free(c->except.items);
    rc_free(c->req_rooms.items);
    rc_free(c);
}

/* ---- small buffers ------------------------------------------------------------------------- */

static void tb_reserve(text_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    b->p = rc_realloc(b->p, cap);
    b->cap = cap;
}

static void tb_put(text_buf *b, const char *s, size_t n)
{
    if (!n) return;
    tb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_putc(text_buf *b, char ch)
{
    tb_reserve(b, 1);
    b->p[b->len++] = ch;
    b->p[b->len] = '\0';
}

void rc_socketio__pl_push(ptr_list *l, const char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = rc_realloc(l->items, l->cap * sizeof(*l->items));
    }
    l->items[l->count++] = s;
}

/* ---- the skim ------------------------------------------------------------------------------- */

/* Size of the payload that follows a str/bin/ext header (ext: + its type byte), read from the
 * header's length field of n bytes at p. */
static uint64_t be_read(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

/* NULL when p[0..len) is exactly one msgpack value whose containers fit (see the top). */
static const char *mp_skim(const uint8_t *p, size_t len)
{
    uint64_t pending[RC_SOCKETIO_MAX_DEPTH + 1];
    int top = 0;
    size_t i = 0;
    pending[0] = 1;
    for (;;) {
        while (top > 0 && pending[top] == 0) top--;
        if (pending[top] == 0) break;
        pending[top]--;
        if (i >= len) return "truncated";
        uint8_t b = p[i++];
        uint64_t count = 0, skip = 0;
        int hdr = 0, container = 0;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b <= 0x8f) {
            count = 2u * (b & 0x0f), container = 1;
        } else if (b <= 0x9f) {
            count = b & 0x0f, container = 1;
        } else if (b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: hdr = 1; break;                      /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;                      /* bin16, str16 */
            case 0xc6: case 0xdb: hdr = 4; break;                      /* bin32, str32 */
            case 0xc7: hdr = 1, skip = 1; break;                       /* ext8 (+ type) */
            case 0xc8: hdr = 2, skip = 1; break;
            case 0xc9: hdr = 4, skip = 1; break;
            case 0xca: skip = 4; break;                                /* float32 */
            case 0xcb: skip = 8; break;                                /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                                /* fixext 1..16 (+ type) */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: hdr = 2, container = 1; break;                  /* array16 */
            case 0xdd: hdr = 4, container = 1; break;                  /* array32 */
            case 0xde: hdr = 2, container = 2; break;                  /* map16 */
            case 0xdf: hdr = 4, container = 2; break;                  /* map32 */
            default: return "not_msgpack";                             /* 0xc1 */
            }
            if (hdr) {
                if ((size_t)hdr > len - i) return "truncated";
                uint64_t v = be_read(p + i, hdr);
                i += (size_t)hdr;
                if (container) count = container == 2 ? 2 * v : v;
                else skip += v;
            }
        }
        if (container) {
            if (count > len - i) return "truncated"; /* each element takes a byte at least */
            if (count == 0) continue;
            if (top + 1 > RC_SOCKETIO_MAX_DEPTH) return "too_deep";
            pending[++top] = count;
        } else {
            if (skip > len - i) return "truncated";
            i += (size_t)skip;
        }
    }
    return i == len ? NULL : "not_msgpack";
}

/* Skims, then unpacks into c->unpacked. */
const char *rc_socketio__unpack(rc_socketio_codec *c, const char *payload, size_t len)
{
    const char *why = mp_skim((const uint8_t *)payload, len);
    if (why) return why;
    size_t off = 0;
    if (msgpack_unpack_next(&c->unpacked, payload, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        return "not_msgpack";
    return NULL;
}

/* ---- reading the object --------------------------------------------------------------------- */

/* The value of key name in map o, or NULL. */
const msgpack_object *rc_socketio__get(const msgpack_object *o, const char *name)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t n = strlen(name);
    const msgpack_object *found = NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, name, n) == 0)
            found = &kv->val; /* the last one wins, as in a JavaScript object */
    }
    return found;
}

/* notepack's undefined: fixext 1 of type 0 (an ext8 of type 0 is an ArrayBuffer). */
int rc_socketio__is_undefined(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != 0 || o->via.ext.size != 1) return 0;
    return (uint8_t)o->via.ext.ptr[-2] == 0xd4; /* ext_form's test, for the one size */
}

/* A C string (in the zone) for a msgpack str: UTF-8 without NUL. NULL if it is not one. */
const char *rc_socketio__cstr(rc_socketio_codec *c, const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    size_t n = o->via.str.size; /* an empty str may have a NULL ptr */
    if (n && (memchr(o->via.str.ptr, '\0', n) || !rc_utf8_valid((const uint8_t *)o->via.str.ptr, n))) return NULL;
    char *s = msgpack_zone_malloc(c->unpacked.zone, n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, o->via.str.ptr, n);
    s[n] = '\0';
    return s;
}

/* An array of room names (absent, nil or undefined: none) into l. -1 on a wrong type. */
int rc_socketio__rooms(rc_socketio_codec *c, const msgpack_object *o, ptr_list *l)
{
    l->count = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL || rc_socketio__is_undefined(o)) return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY) return -1;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const char *s = rc_socketio__cstr(c, &o->via.array.ptr[i]);
        if (!s) return -1;
        rc_socketio__pl_push(l, s);
    }
    return 0;
}

/* ---- JavaScript's numbers and dates ----------------------------------------------------------- */

/* Writes v as Number.prototype.toString (and JSON.stringify) print it; non-finite: null. */
static void js_number(text_buf *b, double v)
{
    char buf[48];
    if (!isfinite(v)) {
        tb_put(b, "null", 4);
        return;
    }
    if (v == 0) {
        tb_putc(b, '0');
        return;
    }
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) { /* exact below 2^53 */
        int n = snprintf(buf, sizeof(buf), "%.0f", v);
        tb_put(b, buf, (size_t)n);
        return;
    }
    /* the shortest digits that read back as v (the closest of that length) */
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, v);
        if (strtod(buf, NULL) == v) break;
    }
    const char *s = buf;
    int neg = *s == '-';
    if (neg) s++;
    char digits[24];
    int k = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[k++] = *s;
    while (k > 1 && digits[k - 1] == '0') k--;
    int n = atoi(s + 1) + 1; /* v = 0.d1d2..dk * 10^n */
    if (neg) tb_putc(b, '-');
    if (k <= n && n <= 21) {
        tb_put(b, digits, (size_t)k);
        for (int i = k; i < n; i++) tb_putc(b, '0');
    } else if (0 < n && n <= 21) {
        tb_put(b, digits, (size_t)n);
        tb_putc(b, '.');
        tb_put(b, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        tb_put(b, "0.", 2);
        for (int i = 0; i < -n; i++) tb_putc(b, '0');
        tb_put(b, digits, (size_t)k);
    } else {
        tb_putc(b, digits[0]);
        if (k > 1) {
            tb_putc(b, '.');
            tb_put(b, digits + 1, (size_t)(k - 1));
        }
        int e = n - 1;
        int m = snprintf(buf, sizeof(buf), "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        tb_put(b, buf, (size_t)m);
    }
}

/* Days since 1970-01-01 to a proleptic Gregorian date. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* new Date(x).toJSON(): TimeClip, then the ISO string ("+YYYYYY" outside years 0..9999), or
 * null for an invalid date. */
static void js_date(text_buf *b, double x)
{
    if (!isfinite(x) || fabs(x) > 8.64e15) {
        tb_put(b, "null", 4);
        return;
    }
    int64_t ms = (int64_t)trunc(x);
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t y;
    int mo, d;
    civil_from_days(days, &y, &mo, &d);
    char buf[64];
    int n;
    if (y >= 0 && y <= 9999)
        n = snprintf(buf, sizeof(buf), "\"%04" PRId64, y);
    else
        n = snprintf(buf, sizeof(buf), "\"%c%06" PRId64, y < 0 ? '-' : '+', y < 0 ? -y : y);
    n += snprintf(buf + n, sizeof(buf) - (size_t)n, "-%02d-%02dT%02d:%02d:%02d.%03dZ\"", mo, d,
                  (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60), (int)(rem % 1000));
    tb_put(b, buf, (size_t)n);
}

/* The header an ext value came with: its fixext prefix (0xd4..0xd8), 0xc7 for ext8, or 0xc8 for
 * ext16 and ext32 alike. msgpack-c keeps the input's bytes (ptr[-1] is the type), and the bytes
 * before tell the forms apart: a fixext's prefix is never equal to the length byte an ext of that
 * size would have. notepack.io decodes each form differently. */
static uint8_t ext_form(const msgpack_object *o)
{
    const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
    uint32_t size = o->via.ext.size;
    static const struct { uint32_t size; uint8_t prefix; } fix[] = {
        {1, 0xd4}, {2, 0xd5}, {4, 0xd6}, {8, 0xd7}, {16, 0xd8}};
    for (size_t i = 0; i < sizeof(fix) / sizeof(fix[0]); i++)
        if (size == fix[i].size && p[-2] == fix[i].prefix) return fix[i].prefix;
    return size <= 0xff && p[-2] == size && p[-3] == 0xc7 ? 0xc7 : 0xc8;
}

enum ext_kind { EXT_BYTES = 0, EXT_DATE, EXT_UNDEFINED, EXT_ARRAYBUFFER, EXT_BAD };

/* What notepack.io makes of an ext value: a Date (*ms before TimeClip), undefined, an ArrayBuffer,
 * [type, Buffer] (EXT_BYTES), or a timestamp it would misread (EXT_BAD: an ext8 of type -1 is read
 * as 12 bytes whatever its length). */
static int ext_kind(const msgpack_object *o, double *ms)
{
    const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
    int8_t type = o->via.ext.type;
    switch (ext_form(o)) {
    case 0xd4:
        return type == 0 ? EXT_UNDEFINED : EXT_BYTES;
    case 0xd6:
        if (type != -1) return EXT_BYTES;
        *ms = (double)(uint32_t)be_read(p, 4) * 1e3;
        return EXT_DATE;
    case 0xd7:
        if (type == 0) { /* notepack's old Date encoding: int64 milliseconds */
            *ms = (double)(int32_t)(uint32_t)be_read(p, 4) * 4294967296.0 + (double)(uint32_t)be_read(p + 4, 4);
            return EXT_DATE;
        }
        if (type == -1) {
            uint32_t hi = (uint32_t)be_read(p, 4), lo = (uint32_t)be_read(p + 4, 4);
            *ms = ((double)(hi & 0x3) * 4294967296.0 + (double)lo) * 1e3 + (double)(hi >> 2) / 1e6;
            return EXT_DATE;
        }
        return EXT_BYTES;
    case 0xc7:
        if (type == 0) return EXT_ARRAYBUFFER;
        if (type != -1) return EXT_BYTES;
        if (o->via.ext.size != 12) return EXT_BAD;
        {
            uint32_t ns = (uint32_t)be_read(p, 4), lo = (uint32_t)be_read(p + 8, 4);
            int32_t hi = (int32_t)(uint32_t)be_read(p + 4, 4);
            *ms = ((double)hi * 4294967296.0 + (double)lo) * 1e3 + (double)ns / 1e6;
        }
        return EXT_DATE;
    case 0xc8:
        return type == 0 ? EXT_ARRAYBUFFER : EXT_BYTES;
    default: /* 0xd5, 0xd8 */
        return EXT_BYTES;
    }
}

/* ---- msgpack -> JSON text -------------------------------------------------------------------- */

/* A JSON string literal, escaped as JSON.stringify does (input: valid UTF-8). */
static void json_string(text_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    tb_reserve(b, n + 2);
    b->p[b->len++] = '"';
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        tb_put(b, s + start, i - start);
        start = i + 1;
        char esc[7] = {'\\', 0};
        size_t m = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15];
            m = 6;
        }
        tb_put(b, esc, m);
    }
    tb_put(b, s + start, n - start);
    tb_putc(b, '"');
}

static void json_placeholder(rc_socketio_codec *c, const char *data, size_t len)
{
    if (c->att_count == RC_SIO_MAX_ATTACHMENTS) {
        c->too_many = 1;
        return;
    }
    char buf[48];
    int n = snprintf(buf, sizeof(buf), "{\"_placeholder\":true,\"num\":%zu}", c->att_count);
    c->att[c->att_count].data = (const uint8_t *)data;
    c->att[c->att_count].len = len;
    c->att_count++;
    tb_put(&c->json, buf, (size_t)n);
}

/* Writes o as JSON text (o is not undefined: the caller decided where that goes). */
static const char *json_value(rc_socketio_codec *c, const msgpack_object *o)
{
    text_buf *b = &c->json;
    char buf[32];
    int n;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        tb_put(b, "null", 4);
        return NULL;
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean) tb_put(b, "true", 4);
        else tb_put(b, "false", 5);
        return NULL;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 <= (UINT64_C(1) << 53)) {
            n = snprintf(buf, sizeof(buf), "%" PRIu64, o->via.u64);
            tb_put(b, buf, (size_t)n);
        } else {
            js_number(b, (double)o->via.u64);
        }
        return NULL;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        if (o->via.i64 >= -(INT64_C(1) << 53)) {
            n = snprintf(buf, sizeof(buf), "%" PRId64, o->via.i64);
            tb_put(b, buf, (size_t)n);
        } else {
            js_number(b, (double)o->via.i64);
        }
        return NULL;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        js_number(b, o->via.f64);
        return NULL;
    case MSGPACK_OBJECT_STR:
        if (o->via.str.size && !rc_utf8_valid((const uint8_t *)o->via.str.ptr, o->via.str.size)) return "bad_string";
        json_string(b, o->via.str.ptr, o->via.str.size);
        return NULL;
    case MSGPACK_OBJECT_BIN:
        json_placeholder(c, o->via.bin.ptr, o->via.bin.size);
        return NULL;
    case MSGPACK_OBJECT_EXT: {
        double ms = 0;
        switch (ext_kind(o, &ms)) {
        case EXT_DATE:
            js_date(b, ms);
            return NULL;
        case EXT_UNDEFINED: /* only reached for a top-level value: as in an array */
            tb_put(b, "null", 4);
            return NULL;
        case EXT_ARRAYBUFFER:
            json_placeholder(c, o->via.ext.ptr, o->via.ext.size);
            return NULL;
        case EXT_BAD:
            return "bad_ext";
        default: /* notepack: [type, Buffer] */
            n = snprintf(buf, sizeof(buf), "[%d,", (int)o->via.ext.type);
            tb_put(b, buf, (size_t)n);
            json_placeholder(c, o->via.ext.ptr, o->via.ext.size);
            tb_putc(b, ']');
            return NULL;
        }
    }
    case MSGPACK_OBJECT_ARRAY:
        tb_putc(b, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) tb_putc(b, ',');
            const msgpack_object *e = &o->via.array.ptr[i];
            if (rc_socketio__is_undefined(e)) {
                tb_put(b, "null", 4);
                continue;
            }
            const char *why = json_value(c, e);
            if (why) return why;
        }
        tb_putc(b, ']');
        return NULL;
    case MSGPACK_OBJECT_MAP: {
        tb_putc(b, '{');
        int first = 1;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (rc_socketio__is_undefined(&kv->val)) continue; /* JSON.stringify leaves the key out */
            if (!first) tb_putc(b, ',');
            first = 0;
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                if (kv->key.via.str.size && !rc_utf8_valid((const uint8_t *)kv->key.via.str.ptr, kv->key.via.str.size)) return "bad_string";
                json_string(b, kv->key.via.str.ptr, kv->key.via.str.size);
            } else if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                       kv->key.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                tb_putc(b, '"'); /* a JavaScript property name: the number as text */
                json_value(c, &kv->key);
                tb_putc(b, '"');
            } else {
                return "bad_key";
            }
            tb_putc(b, ':');
            const char *why = json_value(c, &kv->val);
            if (why) return why;
        }
        tb_putc(b, '}');
        return NULL;
    }
    default:
        return "bad_data";
    }
}

/* ---- broadcasts ------------------------------------------------------------------------------- */

const char *rc_socketio_packet_from_mp(rc_socketio_codec *c, const msgpack_object *packet,
                                       rc_socketio_broadcast *out)
{
    if (!packet || packet->type != MSGPACK_OBJECT_MAP) return "bad_packet";
    const msgpack_object *type = rc_socketio__get(packet, "type");
    if (!type || type->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return "bad_type";
    if (type->via.u64 != RC_SIO_EVENT) return "bad_type";
    const msgpack_object *id = rc_socketio__get(packet, "id");
    if (id && !rc_socketio__is_undefined(id) && id->type != MSGPACK_OBJECT_NIL) return "ack_id";
    const msgpack_object *nsp = rc_socketio__get(packet, "nsp");
    if (!nsp || rc_socketio__is_undefined(nsp)) {
        out->msg.ns = "/";
    } else {
        out->msg.ns = rc_socketio__cstr(c, nsp);
        if (!out->msg.ns || out->msg.ns[0] != '/') return "bad_nsp";
    }
    const msgpack_object *data = rc_socketio__get(packet, "data");
    if (!data || data->type != MSGPACK_OBJECT_ARRAY || data->via.array.size == 0) return "bad_data";
    out->msg.event = rc_socketio__cstr(c, &data->via.array.ptr[0]);
    if (!out->msg.event || !out->msg.event[0]) return "bad_event";
    if (rc_sio_event_reserved(out->msg.event)) return "reserved_event";
    c->json.len = 0;
    c->att_count = 0;
    c->too_many = 0;
    tb_putc(&c->json, '[');
    for (uint32_t i = 1; i < data->via.array.size; i++) {
        if (i > 1) tb_putc(&c->json, ',');
        const msgpack_object *e = &data->via.array.ptr[i];
        if (rc_socketio__is_undefined(e)) {
            tb_put(&c->json, "null", 4);
            continue;
        }
        const char *why = json_value(c, e);
        if (why) return why;
    }
    tb_putc(&c->json, ']');
    if (c->too_many) return "too_many_attachments";
    out->msg.kind = RC_BP_EMIT;
    out->msg.args_json = c->json.p;
    out->msg.args_len = c->json.len;
    out->msg.attachments = c->att_count ? c->att : NULL;
    out->msg.attachment_count = c->att_count;
    return NULL;
}

const char *rc_socketio_decode_broadcast(rc_socketio_codec *c, const char *payload, size_t len,
                                         rc_socketio_broadcast *out)
{
    memset(out, 0, sizeof(*out));
    const char *why = rc_socketio__unpack(c, payload, len);
    if (why) return why;
    const msgpack_object *root = &c->unpacked.data;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 3) return "bad_layout";
    const msgpack_object *a = root->via.array.ptr;
    out->uid = rc_socketio__cstr(c, &a[0]);
    if (!out->uid) return "bad_uid";
    if ((why = rc_socketio_packet_from_mp(c, &a[1], out))) return why;
    const msgpack_object *opts = &a[2];
    if (opts->type != MSGPACK_OBJECT_MAP) return "bad_opts";
    if (rc_socketio__rooms(c, rc_socketio__get(opts, "rooms"), &c->rooms) != 0) return "bad_rooms";
    if (rc_socketio__rooms(c, rc_socketio__get(opts, "except"), &c->except) != 0) return "bad_except";
    const msgpack_object *flags = rc_socketio__get(opts, "flags");
    if (flags && flags->type != MSGPACK_OBJECT_NIL && !rc_socketio__is_undefined(flags)) {
        if (flags->type != MSGPACK_OBJECT_MAP) return "bad_flags";
        const msgpack_object *v = rc_socketio__get(flags, "volatile");
        /* JavaScript truthiness of what the emitter sets (true) or leaves out */
        out->is_volatile = v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
    }
    out->rooms = c->rooms.items;
    out->room_count = c->rooms.count;
    out->except = c->except.items;
    out->except_count = c->except.count;
    return NULL;
}

/* ---- JSON arguments -> msgpack ------------------------------------------------------------------ */

/* {"_placeholder":true,"num":n} with n in [0, count): n, else -1. */
static int placeholder_num(const cJSON *o, size_t count)
{
    if (!count || !cJSON_IsObject(o)) return -1;
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "_placeholder");
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(o, "num");
    if (!cJSON_IsTrue(ph) || !cJSON_IsNumber(num)) return -1;
    double d = num->valuedouble;
    if (d < 0 || d >= (double)count || d != trunc(d)) return -1;
    return (int)d;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* notepack's forms: integral numbers as the smallest integer, others as float64. */
static void pack_json(msgpack_packer *pk, const cJSON *j, const rc_bp_message *m)
{
    int num;
    if (cJSON_IsNull(j) || cJSON_IsInvalid(j)) {
        msgpack_pack_nil(pk);
    } else if (cJSON_IsFalse(j)) {
        msgpack_pack_false(pk);
    } else if (cJSON_IsTrue(j)) {
        msgpack_pack_true(pk);
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == trunc(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
            if (d >= 0) msgpack_pack_uint64(pk, (uint64_t)d);
            else msgpack_pack_int64(pk, (int64_t)d);
        } else {
            msgpack_pack_double(pk, d);
        }
    } else if (cJSON_IsString(j)) {
        pack_str(pk, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *e = j->child; e; e = e->next) pack_json(pk, e, m);
    } else if ((num = placeholder_num(j, m->attachment_count)) >= 0) {
        msgpack_pack_bin(pk, m->attachments[num].len);
        if (m->attachments[num].len) msgpack_pack_bin_body(pk, m->attachments[num].data, m->attachments[num].len);
    } else if (cJSON_IsObject(j)) {
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(j));
        for (const cJSON *e = j->child; e; e = e->next) {
            pack_str(pk, e->string ? e->string : "");
            pack_json(pk, e, m);
        }
    } else {
        msgpack_pack_nil(pk);
    }
}

int rc_socketio_encode_broadcast(rc_socketio_codec *c, const char *uid, const rc_bp_message *m,
                                 const char **out, size_t *out_len)
{
    if (m->kind != RC_BP_EMIT || !m->event || !m->ns) return -1;
    cJSON *args = NULL;
    if (m->args_json && m->args_len) {
        args = cJSON_ParseWithLength(m->args_json, m->args_len);
        if (!cJSON_IsArray(args)) {
            cJSON_Delete(args);
            return -1;
        }
    }
    msgpack_sbuffer_clear(&c->out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, uid);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "type");
    msgpack_pack_uint8(&pk, RC_SIO_EVENT);
    pack_str(&pk, "data");
    msgpack_pack_array(&pk, 1 + (size_t)(args ? cJSON_GetArraySize(args) : 0));
    pack_str(&pk, m->event);
    for (const cJSON *e = args ? args->child : NULL; e; e = e->next) pack_json(&pk, e, m);
    pack_str(&pk, "nsp");
    pack_str(&pk, m->ns);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "rooms");
    msgpack_pack_array(&pk, m->room ? 1 : 0);
    if (m->room) pack_str(&pk, m->room);
    pack_str(&pk, "except");
    msgpack_pack_array(&pk, m->except_count);
    for (size_t i = 0; i < m->except_count; i++) pack_str(&pk, m->except[i]);
    pack_str(&pk, "flags");
    msgpack_pack_map(&pk, 0);
    cJSON_Delete(args);
    *out = c->out.data;
    *out_len = c->out.size;
    return 0;
}
