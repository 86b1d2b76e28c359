/*
 * eio_codec.c: Engine.IO v4 packet and polling-payload codec. See include/roomcast/eio_codec.h.
 *
 * Purpose: turn the bytes of one WebSocket text frame, or one polling POST body, into Engine.IO
 * packets, and write packets into a polling GET response body. Pure functions: no sessions, no
 * sockets, no clocks, no global state.
 *
 * API in call order:
 *   rc_eio_decode_text     one text packet: type digit + payload ("4hello", "2", "3probe").
 *   rc_eio_payload_decode  a polling body: records split on 0x1e, each either a text packet or
 *                          'b' + base64 (a binary MESSAGE); one callback per record, in order.
 *   rc_eio_payload_append  the other direction: append one record to a response body.
 *   rc_base64_*            standard base64 (RFC 4648 section 4) used by the 'b' records.
 *
 * What it does not do:
 *   - It does not decide whether a packet is allowed (a client PING, a second UPGRADE...); the
 *     session layer does.
 *   - It does not check UTF-8 or the size of a body; the HTTP/WebSocket layers enforce
 *     maxHttpBufferSize and text-frame validity before bytes reach it.
 *   - It does not handle WebSocket binary frames: those are MESSAGE packets with the raw bytes
 *     and need no decoding at all.
 *
 * Ownership: decoded packets are views. Text payloads point into the caller's input. A 'b'
 * record is decoded into scratch memory that is valid only during its callback: a stack buffer
 * for records up to EIO_STACK_SCRATCH decoded bytes, otherwise rc_malloc'd and freed as soon
 * as the callback returns. A callback that wants to keep the bytes copies them.
 *
 * Base64: written here (about 60 lines) rather than taken from OpenSSL, because
 * EVP_DecodeBlock neither requires padding nor reports how many bytes the padding removed, and
 * tolerates surrounding whitespace. Our decoder is strict: the length must be a multiple of 4,
 * only the standard alphabet, '=' only as the last one or two characters, and the bits that the
 * padding drops must be zero (so every accepted string is the canonical encoding of its bytes;
 * the Node encoder and every RFC 4648 encoder produce exactly that). Node's own decoder is more
 * lenient; a client that sends non-canonical base64 gets a parse error, which is what the
 * session layer does for any malformed record.
 *
 * Errors: decoders return -1 on malformed input and never read outside [s, s + len).
 * rc_eio_payload_append cannot report failure (the evbuffer only fails when memory runs out),
 * so, like rc_malloc, it aborts the process in that case.
 */
#include "roomcast/eio_codec.h"
#include "roomcast/common.h"

#include <assert.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>

/* 'b' records whose decoded size fits here are decoded on the stack. */
#define EIO_STACK_SCRATCH 1024

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- base64 ----------------------------------------------------------------------------- */

size_t rc_base64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

size_t rc_base64_encode(const uint8_t *in, size_t n, char *out)
{
    char *o = out;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = b64_alphabet[v >> 18];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = b64_alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return (size_t)(o - out);
}

int rc_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* out must have room for n / 4 * 3 bytes; the result may be up to 2 bytes shorter. */
long rc_base64_decode(const char *in, size_t n, uint8_t *out)
{
    const unsigned char *s = (const unsigned char *)in;
    uint8_t *o = out;

    if (n % 4 != 0) return -1;
    for (size_t i = 0; i < n; i += 4) {
        int last = i + 4 == n;
        int pad = 0;
        if (last && s[i + 3] == '=') pad = s[i + 2] == '=' ? 2 : 1;

        int a = rc_base64_value(s[i]), b = rc_base64_value(s[i + 1]);
        int c = pad == 2 ? 0 : rc_base64_value(s[i + 2]);
        int d = pad >= 1 ? 0 : rc_base64_value(s[i + 3]);
        if ((a | b | c | d) < 0) return -1;  /* also catches a stray '=' */
        /* Canonical form only: the bits the padding drops must be zero. */
        if (pad == 2 && (b & 15) != 0) return -1;
        if (pad == 1 && (c & 3) != 0) return -1;

        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        *o++ = (uint8_t)(v >> 16);
        if (pad < 2) *o++ = (uint8_t)(v >> 8);
        if (pad < 1) *o++ = (uint8_t)v;
    }
    return (long)(o - out);
}

/* ---- decoding --------------------------------------------------------------------------- */

int rc_eio_decode_text(const char *s, size_t len, rc_eio_packet *out)
{
    if (len == 0 || s[0] < '0' || s[0] > '6') return -1;
    out->type = s[0] - '0';
    out->binary = 0;
    out->data = (const uint8_t *)s + 1;
    out->len = len - 1;
    return 0;
}

/* Decodes the base64 record b64[0..n) and hands it to cb as a binary MESSAGE. */
static int eio_deliver_binary(const char *b64, size_t n, rc_eio_packet_cb cb, void *arg)
{
    uint8_t small[EIO_STACK_SCRATCH];
    size_t cap = n / 4 * 3;
    uint8_t *buf = cap <= sizeof(small) ? small : rc_malloc(cap);
    int rc;

    long got = rc_base64_decode(b64, n, buf);
    if (got < 0) {
        rc = -1;
    } else {
        rc_eio_packet p = {RC_EIO_MESSAGE, 1, buf, (size_t)got};
        rc = cb(arg, &p);
    }
    if (buf != small) rc_free(buf);
    return rc;
}

int rc_eio_payload_decode(const char *body, size_t len, rc_eio_packet_cb cb, void *arg)
{
    const char *p = body, *end = body + len;

    if (len == 0) return -1;
    for (;;) {
        const char *sep = memchr(p, RC_EIO_RECORD_SEP, (size_t)(end - p));
        const char *rec_end = sep ? sep : end;
        size_t n = (size_t)(rec_end - p);
        int rc;

        if (n == 0) return -1;  /* empty body, leading/trailing or doubled separator */
        if (p[0] == 'b') {
            rc = eio_deliver_binary(p + 1, n - 1, cb, arg);
        } else {
            rc_eio_packet pkt;
            if (rc_eio_decode_text(p, n, &pkt) != 0) return -1;
            rc = cb(arg, &pkt);
        }
        if (rc != 0) return rc;
        if (!sep) return 0;
        p = sep + 1;
    }
}

/* ---- encoding --------------------------------------------------------------------------- */

void rc_eio_payload_append(struct evbuffer *out, int first, int type, int binary,
                           const uint8_t *data, size_t len)
{
    assert(type >= RC_EIO_OPEN && type <= RC_EIO_NOOP);
    assert(!binary || type == RC_EIO_MESSAGE);

    size_t head = first ? 1 : 2;  /* [0x1e] + type digit or 'b' */
    size_t body = binary ? rc_base64_encoded_len(len) : len;
    struct evbuffer_iovec v;

    /* One contiguous reservation; +1 for the NUL rc_base64_encode writes (not committed). */
    if (evbuffer_reserve_space(out, (ev_ssize_t)(head + body + 1), &v, 1) != 1) {
        fprintf(stderr, "roomcast: evbuffer_reserve_space failed (out of memory)\n");
        abort();
    }
    char *w = v.iov_base;
    if (!first) *w++ = RC_EIO_RECORD_SEP;
    *w++ = binary ? 'b' : (char)('0' + type);
    if (binary) {
        rc_base64_encode(data, len, w);
    } else if (len) {
        memcpy(w, data, len);
    }
    v.iov_len = head + body;
    if (evbuffer_commit_space(out, &v, 1) != 0) {
        fprintf(stderr, "roomcast: evbuffer_commit_space failed\n");
        abort();
    }
}
