/*
 * ws_client.h: the client side of a WebSocket for the unit tests (test_ws, test_eio), on an
 * nl_client (net_loop.h): builds masked client frames, well-formed or deliberately not, and reads
 * the server's (unmasked) frames out of what the client received. Include it after net_loop.h.
 */
#ifndef ROOMCAST_TEST_WS_CLIENT_H
#define ROOMCAST_TEST_WS_CLIENT_H

#include "net_loop.h"

/* Sends an upgrade request for target (path and query) with RFC 6455's example key, and checks
 * the 101 answer and its accept key; the answer is consumed. */
static inline void wsc_upgrade(nl_client *c, const char *target)
{
    char req[512];
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n", target);
    nl_send_str(c, req);
    assert_true(nl_wait_str(c, "\r\n\r\n", 2000));
    assert_int_equal(strncmp(c->buf, "HTTP/1.1 101 Switching Protocols\r\n", 34), 0);
    assert_non_null(strstr(c->buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    nl_consume(c, (size_t)(strstr(c->buf, "\r\n\r\n") + 4 - c->buf));
}

/* Builds a client frame. announced: the length written in the header (normally n); ext: force
 * a 2- or 8-byte length field (0: the shortest). Returns its size. */
static inline size_t wsc_frame_ex(uint8_t *out, int fin, int rsv, int opcode, int masked,
                                  const void *payload, size_t n, uint64_t announced, int ext)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t o = 0;
    out[o++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (!ext) ext = announced < 126 ? 0 : announced < 65536 ? 2 : 8;
    if (ext == 0) {
        out[o++] = (uint8_t)(m | announced);
    } else {
        out[o++] = (uint8_t)(m | (ext == 2 ? 126 : 127));
        for (int i = ext - 1; i >= 0; i--) out[o++] = (uint8_t)(announced >> (8 * i));
    }
    if (masked) {
        memcpy(out + o, key, 4);
        o += 4;
    }
    for (size_t i = 0; i < n; i++) out[o + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i % 4] : 0);
    return o + n;
}

static inline size_t wsc_frame(uint8_t *out, int fin, int opcode, const void *payload, size_t n)
{
    return wsc_frame_ex(out, fin, 0, opcode, 1, payload, n, n, 0);
}

static inline void wsc_send(nl_client *c, int fin, int opcode, const void *payload, size_t n)
{
    static uint8_t buf[200100];
    nl_send(c, buf, wsc_frame(buf, fin, opcode, payload, n));
}

typedef struct wsc_frame_in {
    int fin, opcode;
    uint8_t payload[200000];
    size_t len;
} wsc_frame_in;

static inline int wsc_frame_complete(nl_client *c, const void *unused)
{
    if (c->len < 2) return 0;
    const uint8_t *b = (const uint8_t *)c->buf;
    uint64_t n = b[1] & 0x7f;
    size_t h = n == 126 ? 4 : n == 127 ? 10 : 2;
    if (c->len < h) return 0;
    if (n >= 126) {
        n = 0;
        for (size_t i = 2; i < h; i++) n = n << 8 | b[i];
    }
    return c->len >= h + n;
}

/* Reads the next server frame (unmasked) into f; 0, or -1 if none came. */
static inline int wsc_next(nl_client *c, wsc_frame_in *f)
{
    if (!nl_wait(c, wsc_frame_complete, NULL, 2000)) return -1;
    const uint8_t *b = (const uint8_t *)c->buf;
    assert_int_equal(b[1] & 0x80, 0); /* server frames are never masked */
    f->fin = b[0] >> 7;
    f->opcode = b[0] & 0x0f;
    uint64_t n = b[1] & 0x7f;
    size_t h = n == 126 ? 4 : n == 127 ? 10 : 2;
    if (n >= 126) {
        n = 0;
        for (size_t i = 2; i < h; i++) n = n << 8 | b[i];
    }
    assert_true(n <= sizeof(f->payload));
    memcpy(f->payload, b + h, n);
    f->len = n;
    nl_consume(c, h + n);
    return 0;
}

static wsc_frame_in wsc_in; /* the last frame wsc_next read */

/* The next frame must be a close with this code, then the connection must end. */
static inline void wsc_expect_close(nl_client *c, int code)
{
    assert_int_equal(wsc_next(c, &wsc_in), 0);
    assert_int_equal(wsc_in.opcode, RC_WS_OP_CLOSE);
    assert_int_equal(wsc_in.len, 2);
    assert_int_equal(wsc_in.payload[0] << 8 | wsc_in.payload[1], code);
    assert_true(nl_wait_eof(c, 2000));
}

#endif
