/*
 * test_frame.c: the shared outbound frame (src/frame.c, include/roomcast/frame.h): the
 * WebSocket header written in front of the payload for every length class (7-bit, 16-bit, 64-bit
 * lengths, at their edges), raw frames without a header, and reference counting: a frame lives
 * while any holder keeps a reference, rc_frame_live counts exactly the frames allocated and not
 * yet released, and every test ends with none left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "roomcast/common.h"
#include "roomcast/frame.h"

static int teardown(void **state)
{
    assert_int_equal(rc_frame_live(), 0);
    return 0;
}

/* Decodes a server header (FIN, unmasked) as a client would: the payload length, or -1. */
static int64_t header_len(const uint8_t *h, size_t hl, int *opcode)
{
    if (hl < 2 || !(h[0] & 0x80) || (h[1] & 0x80)) return -1;
    *opcode = h[0] & 0x0f;
    uint64_t n = h[1] & 0x7f;
    size_t ext = n == 126 ? 2 : n == 127 ? 8 : 0;
    if (hl != 2 + ext) return -1;
    if (ext) n = 0;
    for (size_t i = 0; i < ext; i++) n = n << 8 | h[2 + i];
    return (int64_t)n;
}

static void test_header_lengths(void **state)
{
    static const struct { uint64_t len; size_t hl; } cases[] = {
        {0, 2}, {1, 2}, {125, 2}, {126, 4}, {127, 4}, {65535, 4}, {65536, 10},
        {1000000, 10}, {0x7fffffffffffffffull, 10},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        uint8_t hdr[10];
        size_t hl = rc_ws_header_write(hdr, RC_WS_OP_BINARY, cases[i].len);
        assert_int_equal(hl, cases[i].hl);
        int op = -1;
        assert_int_equal(header_len(hdr, hl, &op), (int64_t)cases[i].len);
        assert_int_equal(op, RC_WS_OP_BINARY);
    }
    /* Shortest form only: 125 fits the first byte, 126 does not. */
    uint8_t hdr[10];
    rc_ws_header_write(hdr, RC_WS_OP_TEXT, 125);
    assert_int_equal(hdr[0], 0x81);
    assert_int_equal(hdr[1], 125);
    rc_ws_header_write(hdr, RC_WS_OP_CLOSE, 126);
    assert_int_equal(hdr[0], 0x88);
    assert_int_equal(hdr[1], 126);
    assert_int_equal(hdr[2], 0);
    assert_int_equal(hdr[3], 126);
}

static void test_frame_new_and_from(void **state)
{
    for (size_t len = 0; len < 70000; len = len ? len * 3 : 1) {
        uint8_t *data = rc_malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++) data[i] = (uint8_t)(i * 7);
        rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, data, len);
        assert_int_equal(rc_frame_live(), 1);
        assert_int_equal(f->refs, 1);
        assert_int_equal(f->opcode, RC_WS_OP_TEXT);
        assert_int_equal(f->len, len);
        assert_int_equal(rc_frame_wire_len(f), f->hdr_len + len);
        int op = -1;
        assert_int_equal(header_len(f->bytes, f->hdr_len, &op), (int64_t)len);
        assert_int_equal(op, RC_WS_OP_TEXT);
        assert_memory_equal(rc_frame_payload(f), data, len);
        assert_ptr_equal(rc_frame_payload(f), f->bytes + f->hdr_len);
        rc_frame_unref(f);
        assert_int_equal(rc_frame_live(), 0);
        rc_free(data);
    }
    rc_frame *f = rc_frame_new(RC_WS_OP_BINARY, 3);
    memcpy(rc_frame_payload(f), "abc", 3);
    assert_int_equal(f->born_ns, 0);
    assert_memory_equal(f->bytes, "\x82\x03" "abc", 5);
    rc_frame_unref(f);
}

static void test_frame_raw(void **state)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    rc_frame *f = rc_frame_raw(answer, strlen(answer));
    assert_int_equal(rc_frame_live(), 1);
    assert_int_equal(f->hdr_len, 0);
    assert_int_equal(f->opcode, 0);
    assert_int_equal(rc_frame_wire_len(f), strlen(answer));
    assert_memory_equal(f->bytes, answer, strlen(answer));
    rc_frame_unref(f);
    f = rc_frame_raw(NULL, 0);
    assert_int_equal(rc_frame_wire_len(f), 0);
    rc_frame_unref(f);
}

/* A broadcast: one frame, many holders taking and dropping references in any order. */
static void test_refcount_shared(void **state)
{
    enum { HOLDERS = 50 };
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, "42[\"x\"]", 7);
    rc_frame *held[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        held[i] = rc_frame_ref(f);
        assert_ptr_equal(held[i], f);
    }
    assert_int_equal(f->refs, HOLDERS + 1);
    rc_frame_unref(f); /* the publisher lets go first */
    assert_int_equal(rc_frame_live(), 1);
    for (int i = 0; i < HOLDERS; i += 2) rc_frame_unref(held[i]);
    assert_int_equal(rc_frame_live(), 1);
    assert_int_equal(f->refs, HOLDERS / 2);
    for (int i = HOLDERS - 1; i > 0; i -= 2) rc_frame_unref(held[i]);
    assert_int_equal(rc_frame_live(), 0);
}

static void test_live_counts_several(void **state)
{
    rc_frame *a = rc_frame_new(RC_WS_OP_TEXT, 10);
    rc_frame *b = rc_frame_raw("x", 1);
    rc_frame *c = rc_frame_from(RC_WS_OP_PING, "p", 1);
    assert_int_equal(rc_frame_live(), 3);
    rc_frame_ref(b);
    rc_frame_unref(b);
    assert_int_equal(rc_frame_live(), 3);
    rc_frame_unref(b);
    assert_int_equal(rc_frame_live(), 2);
    rc_frame_unref(c);
    rc_frame_unref(a);
    assert_int_equal(rc_frame_live(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_header_lengths, teardown),
        cmocka_unit_test_teardown(test_frame_new_and_from, teardown),
        cmocka_unit_test_teardown(test_frame_raw, teardown),
        cmocka_unit_test_teardown(test_refcount_shared, teardown),
        cmocka_unit_test_teardown(test_live_counts_several, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
