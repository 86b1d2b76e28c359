/*
 * frame.h: the unit of outbound data, shared by every recipient of a broadcast.
 *
 * An rc_frame holds one Engine.IO packet already wrapped in a WebSocket frame header:
 *     bytes = [WebSocket header (hdr_len bytes)][Engine.IO packet (len bytes)]
 * (or, from rc_frame_raw, bytes with no header at all: an HTTP answer).
 * A WebSocket recipient gets all of `bytes` by reference (evbuffer_add_reference); a polling
 * recipient gets the packet part encoded into its response body. Server frames are never masked,
 * so every recipient can share the same bytes: a broadcast is serialized once.
 *
 * Reference counting: rc_frame_new returns a frame with one reference, owned by the caller.
 * Every holder (an evbuffer chain, a polling queue) takes its own reference and drops it when
 * done; the last rc_frame_unref frees the frame.
 */
#ifndef ROOMCAST_FRAME_H
#define ROOMCAST_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum { RC_WS_OP_CONT = 0, RC_WS_OP_TEXT = 1, RC_WS_OP_BINARY = 2, RC_WS_OP_CLOSE = 8,
       RC_WS_OP_PING = 9, RC_WS_OP_PONG = 10 };

typedef struct rc_frame {
    uint32_t refs;
    uint8_t opcode;     /* RC_WS_OP_TEXT (Engine.IO text packet) or RC_WS_OP_BINARY (raw bytes) */
    uint8_t hdr_len;    /* WebSocket header length, 2..10 */
    uint8_t delay_ms;   /* write coalescing (src/server_delay.c): the transport may hold this
                         * frame up to this long so that later ones leave in the same write;
                         * 0 (every constructor's value): written at the end of the loop turn.
                         * Set by the sender after construction (a namespace's writeDelay). */
    uint32_t len;       /* Engine.IO packet length (payload of the WebSocket frame) */
    uint64_t born_ns;   /* monotonic time the publish was accepted, for the latency histogram */
    uint8_t bytes[];    /* hdr_len + len bytes */
} rc_frame;

/* Writes a server (unmasked, FIN) WebSocket frame header for a payload of len bytes into hdr
 * (at least 10 bytes); returns its length. */
size_t rc_ws_header_write(uint8_t *hdr, int opcode, uint64_t len);

/* New frame of `len` payload bytes (contents uninitialised; fill rc_frame_payload). */
rc_frame *rc_frame_new(int opcode, size_t len);
/* New frame holding a copy of data. */
rc_frame *rc_frame_from(int opcode, const void *data, size_t len);
/* New frame of raw bytes written as they are, with no WebSocket header (hdr_len 0, opcode 0):
 * an HTTP answer queued on a connection like any frame. Never for a polling queue. */
rc_frame *rc_frame_raw(const void *data, size_t len);
static inline uint8_t *rc_frame_payload(rc_frame *f) { return f->bytes + f->hdr_len; }
static inline size_t rc_frame_wire_len(const rc_frame *f) { return (size_t)f->hdr_len + f->len; }
static inline rc_frame *rc_frame_ref(rc_frame *f) { f->refs++; return f; }
void rc_frame_unref(rc_frame *f);
/* Frames currently allocated: counted by rc_frame_new/rc_frame_raw and the last rc_frame_unref.
 * 0 once every holder has let go (unit-test teardowns check it; main.c logs it at exit). */
size_t rc_frame_live(void);
extern uint64_t rc_frames_live; /* the counter itself; read it through rc_frame_live */

#endif
