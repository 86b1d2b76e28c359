/*
 * ws.c: WebSocket server side (see include/roomcast/ws.h).
 *
 * Inbound: on each read we peek the next frame's header in the connection's input buffer
 * (head_peek: the only code of roomcast that decodes a frame header), judge it (head_check), and
 * wait until the whole frame is buffered (its size is bounded by max_message, so waiting cannot
 * grow memory without bound). Then the frame goes through wslay's frame layer with ONE
 * wslay_frame_context shared by all connections: its receive callback hands out exactly the bytes
 * of this frame, so the context is back at its initial state when the frame is done and never
 * holds another connection's bytes. Payloads are unmasked into a shared scratch buffer and handed
 * up; only a fragmented message in flight gets a per-socket buffer.
 *
 * Why the peek, when wslay decodes the same header again: the decision about a frame must come
 * as soon as its header is in, before its payload (a header announcing 2^63 bytes is refused with
 * 1009 at once, and so is one with the length's top bit set, which wslay would call a protocol
 * error), and the shared context may only be handed a complete frame, whose length only the
 * header tells. wslay's frame API has no entry point past the header, so it reads those bytes
 * again; of its result only the unmasked payload is used.
 *
 * Outbound: frames are built by us (rc_frame, unmasked, FIN) and appended to the connection's
 * output, by reference for shared broadcast frames.
 *
 * Re-entrancy: the owner may close from inside on_message. The rc_ws stays allocated
 * until the read loop unwinds (`busy`), then is freed.
 */
#include "roomcast/ws.h"
#include "roomcast/common.h"
#include "roomcast/frame.h"
#include "roomcast/http.h"
#include "roomcast/log.h"
#include "roomcast/server.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <wslay/wslay.h>

struct rc_ws {
    rc_conn *conn;
    const rc_ws_callbacks *cb;
    void *arg;
    uint8_t *frag;          /* reassembly buffer while a fragmented message is in flight */
    size_t frag_len;
    size_t max_message;
    uint8_t frag_opcode;    /* 0 when no fragmented message is in flight */
    uint8_t closing;        /* a close was sent or requested: ignore further input */
    uint8_t busy;           /* inside the read loop */
    uint8_t dead;           /* the connection closed while busy: free at loop exit */
};

static void ws_on_conn_read(rc_conn *c, void *data);
static void ws_on_conn_close(rc_conn *c, void *data);
static void ws_on_conn_backlog(rc_conn *c, void *data, size_t backlog);
static const rc_conn_handler ws_conn_handler = {ws_on_conn_read, ws_on_conn_close, ws_on_conn_backlog, NULL};

/* ---- shared wslay frame context ----------------------------------------------------------- */

static struct {
    wslay_frame_context_ptr ctx;
    struct evbuffer *in;      /* the input being read */
    size_t remaining;         /* bytes of the current frame not yet handed to wslay */
    uint8_t *scratch;         /* unmasked payload of the current frame */
    size_t scratch_cap;
} shared;

static ssize_t shared_recv(uint8_t *buf, size_t len, int flags, void *user)
{
    size_t n = len < shared.remaining ? len : shared.remaining;
    if (n == 0) return WSLAY_ERR_WOULDBLOCK;
    int r = evbuffer_remove(shared.in, buf, n);
    if (r <= 0) return WSLAY_ERR_WOULDBLOCK;
    shared.remaining -= (size_t)r;
    return r;
}

static ssize_t shared_send(const uint8_t *data, size_t len, int flags, void *user) { return -1; }
static int shared_genmask(uint8_t *buf, size_t len, void *user) { return -1; }

static void shared_init(void)
{
    if (shared.ctx) return;
    static const struct wslay_frame_callbacks cbs = {shared_send, shared_recv, shared_genmask};
    if (wslay_frame_context_init(&shared.ctx, &cbs, NULL) != 0) {
        fprintf(stderr, "roomcast: wslay_frame_context_init failed\n");
        abort();
    }
}

void rc_ws_global_cleanup(void)
{
    if (shared.ctx) wslay_frame_context_free(shared.ctx);
    rc_free(shared.scratch);
    memset(&shared, 0, sizeof(shared));
}

/* Reads one complete, buffered frame of total_len bytes through wslay. Returns the payload
 * length (payload in shared.scratch), or -1 if wslay refused the frame (head_check lets through
 * a length not written in its shortest form; wslay does not). */
static long read_frame(struct evbuffer *in, size_t total_len, uint64_t payload_len)
{
    shared_init();
    if (payload_len > shared.scratch_cap) {
        size_t cap = shared.scratch_cap ? shared.scratch_cap : 4096;
        while (cap < payload_len) cap *= 2;
        shared.scratch = rc_realloc(shared.scratch, cap);
        shared.scratch_cap = cap;
    }
    shared.in = in;
    shared.remaining = total_len;
    uint64_t got = 0;
    for (;;) {
        struct wslay_frame_iocb iocb;
        memset(&iocb, 0, sizeof(iocb));
        ssize_t r = wslay_frame_recv(shared.ctx, &iocb);
        if (r < 0) {
            /* A length not in its shortest form: drop the rest of the frame and the shared
             * context's state with it. */
            wslay_frame_context_free(shared.ctx);
            shared.ctx = NULL;
            evbuffer_drain(in, shared.remaining);
            shared.remaining = 0;
            shared.in = NULL;
            return -1;
        }
        if (iocb.data_length) memcpy(shared.scratch + got, iocb.data, iocb.data_length);
        got += iocb.data_length;
        if (got == payload_len) break;
    }
    shared.in = NULL;
    return (long)got;
}

/* ---- UTF-8 and accept key ----------------------------------------------------------------- */

int rc_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { need = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; cp = c & 0x07; }
        else return 0;
        if (i + need >= n) return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

void rc_ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "%s%s", key, guid);
    SHA1((const unsigned char *)buf, (size_t)n, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[28] = '\0';
}

/* ---- upgrade ------------------------------------------------------------------------------ */

const char *rc_ws_check_upgrade(const rc_http_request *req)
{
    if (req->method != RC_HTTP_GET) return "WebSocket upgrade must be a GET";
    if (!rc_http_header_has_token(req, "Upgrade", "websocket")) return "missing Upgrade: websocket";
    if (!rc_http_header_has_token(req, "Connection", "upgrade")) return "missing Connection: upgrade";
    const char *v = rc_http_header(req, "Sec-WebSocket-Version");
    if (!v || strcmp(v, "13") != 0) return "unsupported Sec-WebSocket-Version";
    const char *key = rc_http_header(req, "Sec-WebSocket-Key");
    unsigned char raw[32];
    if (!key || strlen(key) != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key, 24) != 18)
        return "bad Sec-WebSocket-Key";
    return NULL;
}

rc_ws *rc_ws_accept(rc_http_request *req, size_t max_message, const rc_ws_callbacks *cb, void *arg)
{
    char accept[29];
    rc_ws_accept_key(rc_http_header(req, "Sec-WebSocket-Key"), accept);
    char head[200];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    rc_conn *c = rc_http_detach(req);
    rc_conn_write(c, head, (size_t)n);
    rc_ws *ws = rc_calloc(1, sizeof(*ws));
    ws->conn = c;
    ws->cb = cb;
    ws->arg = arg;
    ws->max_message = max_message;
    rc_conn_set_handler(c, &ws_conn_handler, ws);
    if (evbuffer_get_length(rc_conn_input(c)) > 0) rc_conn_trigger_read(c);
    return ws;
}

void rc_ws_set_callbacks(rc_ws *ws, const rc_ws_callbacks *cb, void *arg)
{
    ws->cb = cb;
    ws->arg = arg;
}

/* ---- output ------------------------------------------------------------------------------- */

void rc_ws_send(rc_ws *ws, int opcode, const void *data, size_t len)
{
    if (ws->closing) return;
    /* a frame of its own, queued like a broadcast's: written with the turn's other frames */
    rc_frame *f = rc_frame_from(opcode, data, len);
    rc_conn_send_frame(ws->conn, f);
    rc_frame_unref(f);
}

void rc_ws_send_frame(rc_ws *ws, rc_frame *f)
{
    if (ws->closing) return;
    rc_conn_send_frame(ws->conn, f);
}

size_t rc_ws_pending_bytes(const rc_ws *ws)
{
    return ws->closing ? 0 : rc_conn_pending_bytes(ws->conn);
}

void rc_ws_set_output_limit(rc_ws *ws, size_t limit)
{
    if (!ws->closing) rc_conn_set_output_limit(ws->conn, limit);
}

static void ws_on_conn_backlog(rc_conn *c, void *data, size_t backlog)
{
    rc_ws *ws = data;
    if (!ws->closing && ws->cb && ws->cb->on_backlog) ws->cb->on_backlog(ws->arg, ws, backlog);
}

static void send_close(rc_ws *ws, uint16_t code)
{
    uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    rc_ws_send(ws, RC_WS_OP_CLOSE, payload, code ? 2 : 0);
    ws->closing = 1;
    rc_conn_close_after_flush(ws->conn);
}

void rc_ws_close(rc_ws *ws, uint16_t code)
{
    ws->cb = NULL; /* the owner asked: no on_close */
    if (!ws->closing) send_close(ws, code);
}

/* A protocol violation by the peer: close with code, tell the owner. */
static void fail(rc_ws *ws, uint16_t code)
{
    rc_log_debug("ws_close", "code=%u", (unsigned)code);
    const rc_ws_callbacks *cb = ws->cb;
    void *arg = ws->arg;
    ws->cb = NULL;
    if (!ws->closing) send_close(ws, code);
    if (cb && cb->on_close) cb->on_close(arg, ws);
}

/* ---- input -------------------------------------------------------------------------------- */

static void deliver(rc_ws *ws, int opcode, const uint8_t *data, size_t len)
{
    if (opcode == RC_WS_OP_TEXT && !rc_utf8_valid(data, len)) {
        fail(ws, RC_WS_CLOSE_BAD_DATA);
        return;
    }
    if (ws->cb && ws->cb->on_message) ws->cb->on_message(ws->arg, ws, opcode == RC_WS_OP_BINARY, data, len);
}

static void handle_frame(rc_ws *ws, int fin, int opcode, const uint8_t *p, size_t len)
{
    switch (opcode) {
    case RC_WS_OP_PING:
        /* A peer that floods pings and never reads gets no more pongs once 64 KiB of output
         * wait: pongs must not grow the node's memory (the outbound cap counts from there). */
        if (rc_conn_pending_bytes(ws->conn) < 65536) rc_ws_send(ws, RC_WS_OP_PONG, p, len);
        return;
    case RC_WS_OP_PONG:
        return;
    case RC_WS_OP_CLOSE: {
        uint16_t code = RC_WS_CLOSE_NORMAL;
        if (len == 1) { fail(ws, RC_WS_CLOSE_PROTOCOL); return; }
        if (len >= 2) {
            code = (uint16_t)(p[0] << 8 | p[1]);
            int valid = (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
                        (code >= 3000 && code <= 4999);
            if (!valid || !rc_utf8_valid(p + 2, len - 2)) { fail(ws, RC_WS_CLOSE_PROTOCOL); return; }
        }
        fail(ws, code);
        return;
    }
    case RC_WS_OP_TEXT:
    case RC_WS_OP_BINARY:
        if (fin) { deliver(ws, opcode, p, len); return; }
        ws->frag_opcode = (uint8_t)opcode;
        ws->frag = rc_malloc(len ? len : 1);
        memcpy(ws->frag, p, len);
        ws->frag_len = len;
        return;
    case RC_WS_OP_CONT:
        ws->frag = rc_realloc(ws->frag, ws->frag_len + len + 1);
        memcpy(ws->frag + ws->frag_len, p, len);
        ws->frag_len += len;
        if (fin) {
            uint8_t *msg = ws->frag;
            size_t mlen = ws->frag_len;
            int op = ws->frag_opcode;
            ws->frag = NULL;
            ws->frag_len = 0;
            ws->frag_opcode = 0;
            deliver(ws, op, msg, mlen);
            rc_free(msg);
        }
        return;
    }
}

/* The header of the frame at the front of the input, as the peer wrote it. */
typedef struct ws_head {
    uint8_t fin, rsv, opcode, masked;
    uint8_t len;            /* header bytes: 2, 4 or 10, plus 4 with a mask key */
    uint64_t payload_len;   /* as announced, not yet judged */
} ws_head;

/* Decodes the header at the front of in without consuming it: 0 when it is all there, -1 when
 * more bytes are needed. */
static int head_peek(struct evbuffer *in, ws_head *h)
{
    uint8_t b[14];
    ev_ssize_t got = evbuffer_copyout(in, b, sizeof(b));
    if (got < 2) return -1;
    h->fin = b[0] >> 7;
    h->rsv = (b[0] >> 4) & 7;
    h->opcode = b[0] & 0x0f;
    h->masked = b[1] >> 7;
    uint8_t code = b[1] & 0x7f;
    size_t ext = code == 126 ? 2 : code == 127 ? 8 : 0;
    h->len = (uint8_t)(2 + ext + (h->masked ? 4 : 0));
    if ((size_t)got < h->len) return -1;
    h->payload_len = ext ? 0 : code;
    for (size_t i = 0; i < ext; i++) h->payload_len = h->payload_len << 8 | b[2 + i];
    return 0;
}

/* Judges a header before its payload is buffered: 0 to go on, or the close code. */
static uint16_t head_check(const rc_ws *ws, const ws_head *h)
{
    int control = h->opcode >= 8;
    if (h->rsv || !h->masked || (h->opcode > 2 && h->opcode < 8) || h->opcode > 10 ||
        (control && (!h->fin || h->payload_len > 125)) ||
        (h->opcode == RC_WS_OP_CONT && !ws->frag_opcode) ||
        ((h->opcode == RC_WS_OP_TEXT || h->opcode == RC_WS_OP_BINARY) && ws->frag_opcode))
        return RC_WS_CLOSE_PROTOCOL;
    /* Two comparisons: the sum alone would wrap for a length near 2^64. */
    if (!control && (h->payload_len > ws->max_message || ws->frag_len + h->payload_len > ws->max_message))
        return RC_WS_CLOSE_TOO_BIG;
    return 0;
}

static void ws_on_conn_read(rc_conn *c, void *data)
{
    rc_ws *ws = data;
    struct evbuffer *in = rc_conn_input(c);
    ws->busy = 1;
    while (!ws->closing && !ws->dead) {
        ws_head h;
        if (head_peek(in, &h) != 0) break;
        uint16_t refused = head_check(ws, &h);
        if (refused) {
            fail(ws, refused);
            break;
        }
        if (evbuffer_get_length(in) < h.len + h.payload_len) break; /* wait for the rest of this frame */
        long n = read_frame(in, h.len + (size_t)h.payload_len, h.payload_len);
        if (n < 0) {
            fail(ws, RC_WS_CLOSE_PROTOCOL);
            break;
        }
        handle_frame(ws, h.fin, h.opcode, shared.scratch, (size_t)n);
    }
    ws->busy = 0;
    if (ws->dead) {
        rc_free(ws->frag);
        rc_free(ws);
    }
}

static void ws_on_conn_close(rc_conn *c, void *data)
{
    rc_ws *ws = data;
    const rc_ws_callbacks *cb = ws->cb;
    ws->cb = NULL;
    ws->closing = 1;
    if (cb && cb->on_close) cb->on_close(ws->arg, ws);
    if (ws->busy) {
        ws->dead = 1;
        return;
    }
    rc_free(ws->frag);
    rc_free(ws);
}
