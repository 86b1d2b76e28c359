/*
 * frame.c: reference-counted, pre-framed outbound packets. See include/roomcast/frame.h.
 */
#include "roomcast/frame.h"
#include "roomcast/common.h"

#include <assert.h>

uint64_t rc_frames_live;

size_t rc_ws_header_write(uint8_t *hdr, int opcode, uint64_t len)
{
    hdr[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len < 65536) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++) hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

rc_frame *rc_frame_new(int opcode, size_t len)
{
    uint8_t hdr[10];
    size_t hl = rc_ws_header_write(hdr, opcode, len);
    rc_frame *f = rc_malloc(sizeof(*f) + hl + len);
    f->refs = 1;
    f->opcode = (uint8_t)opcode;
    f->hdr_len = (uint8_t)hl;
    f->delay_ms = 0;
    f->len = (uint32_t)len;
    f->born_ns = 0;
    memcpy(f->bytes, hdr, hl);
    rc_frames_live++;
    return f;
}

rc_frame *rc_frame_from(int opcode, const void *data, size_t len)
{
    rc_frame *f = rc_frame_new(opcode, len);
    if (len) memcpy(rc_frame_payload(f), data, len);
    return f;
}

rc_frame *rc_frame_raw(const void *data, size_t len)
{
    rc_frame *f = rc_malloc(sizeof(*f) + len);
    f->refs = 1;
    f->opcode = 0;
    f->hdr_len = 0;
    f->delay_ms = 0;
    f->len = (uint32_t)len;
    f->born_ns = 0;
    if (len) memcpy(f->bytes, data, len);
    rc_frames_live++;
    return f;
}

size_t rc_frame_live(void) { return (size_t)rc_frames_live; }

void rc_frame_unref(rc_frame *f)
{
    assert(f->refs > 0);
    if (--f->refs == 0) {
        rc_frames_live--;
        rc_free(f);
    }
}
