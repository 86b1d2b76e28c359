/*
 * ws.h: WebSocket (RFC 6455) server side on an rc_conn taken over from HTTP.
 *
 * Inbound frames are parsed only when complete (the header is peeked in the input buffer), then
 * unmasked by wslay's frame layer through one context shared by every connection, so an idle
 * socket holds no wslay state and no buffer (a wslay event context costs 8.6 KiB, a frame
 * context 4.2 KiB). Per-socket state beyond the small rc_ws exists only while a fragmented
 * message is being reassembled.
 *
 * Enforced: client frames must be masked (1002), reserved bits and unknown opcodes (1002),
 * control frames unfragmented and <= 125 bytes (1002), valid continuation sequencing (1002),
 * UTF-8 in text messages (1007), message size <= max_message (1009). Pings are answered with
 * pongs; a close frame is answered with a close frame, then the connection closes. Every close
 * goes through the transport's lingering close (include/roomcast/server.h): the peer reads the
 * close frame and its code even while it is still sending the rest of a refused frame.
 *
 * Outbound frames are written by roomcast itself (no wslay event API: it copies every message):
 * rc_ws_send_frame hands the socket a reference to a shared, pre-framed rc_frame.
 *
 * Ownership: the rc_ws belongs to its connection and is freed when the connection closes, right
 * after on_close. rc_ws_close starts a close handshake; on_close is *not* called for a close the
 * owner asked for (the owner already knows), only when the peer or the network ends it.
 */
#ifndef ROOMCAST_WS_H
#define ROOMCAST_WS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_ws rc_ws;
typedef struct rc_http_request rc_http_request;
struct rc_frame;

typedef struct rc_ws_callbacks {
    void (*on_message)(void *arg, rc_ws *ws, int binary, const uint8_t *data, size_t len);
    void (*on_close)(void *arg, rc_ws *ws);
    /* Optional: after a flush, more than the output limit (rc_ws_set_output_limit) stays unsent
     * (the transport's on_backlog). */
    void (*on_backlog)(void *arg, rc_ws *ws, size_t backlog);
} rc_ws_callbacks;

enum { RC_WS_CLOSE_NORMAL = 1000, RC_WS_CLOSE_GOING_AWAY = 1001, RC_WS_CLOSE_PROTOCOL = 1002,
       RC_WS_CLOSE_BAD_DATA = 1007, RC_WS_CLOSE_POLICY = 1008, RC_WS_CLOSE_TOO_BIG = 1009,
       RC_WS_CLOSE_INTERNAL = 1011 };

/* NULL if req is an acceptable upgrade request, else a reason ("missing Sec-WebSocket-Key"...). */
const char *rc_ws_check_upgrade(const rc_http_request *req);
/* Answers 101 and takes the connection from HTTP. */
rc_ws *rc_ws_accept(rc_http_request *req, size_t max_message, const rc_ws_callbacks *cb, void *arg);
void rc_ws_set_callbacks(rc_ws *ws, const rc_ws_callbacks *cb, void *arg);

void rc_ws_send(rc_ws *ws, int opcode, const void *data, size_t len);  /* copies */
void rc_ws_send_frame(rc_ws *ws, struct rc_frame *f);                   /* shares */
size_t rc_ws_pending_bytes(const rc_ws *ws);
/* on_backlog past this many unsent bytes after a flush (0: none). */
void rc_ws_set_output_limit(rc_ws *ws, size_t limit);
void rc_ws_close(rc_ws *ws, uint16_t code);

/* UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). 1 valid. */
int rc_utf8_valid(const uint8_t *s, size_t n);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 chars + NUL into out. */
void rc_ws_accept_key(const char *key, char out[29]);

/* Frees the shared wslay context at shutdown. */
void rc_ws_global_cleanup(void);

#endif
