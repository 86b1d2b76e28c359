/*
 * test_eio_codec.c: unit tests for src/eio_codec.c (Engine.IO packets, polling payloads,
 * base64).
 *
 * Split-point tests place every prefix of a valid input so that it ends exactly where a
 * PROT_NONE guard page begins: a decoder that reads one byte past its length faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/eio_codec.h"

/* ---- guard page ------------------------------------------------------------------------- */

static char *g_page;  /* one readable page followed by one PROT_NONE page */
static size_t g_page_size;

static int guard_setup(void **state)
{
    g_page_size = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, 2 * g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (m == MAP_FAILED) return -1;
    if (mprotect((char *)m + g_page_size, g_page_size, PROT_NONE) != 0) return -1;
    g_page = m;
    return 0;
}

static int guard_teardown(void **state)
{
    munmap(g_page, 2 * g_page_size);
    return 0;
}

/* Copies s[0..n) so that its last byte is the last readable byte before the guard page. */
static const char *at_guard(const void *s, size_t n)
{
    assert_true(n <= g_page_size);
    char *dst = g_page + g_page_size - n;
    memcpy(dst, s, n);
    return dst;
}

/* ---- a callback that records packets ---------------------------------------------------- */

#define MAX_SEEN 16

typedef struct seen_packet {
    int type, binary;
    size_t len;
    uint8_t data[8192];
    const uint8_t *ptr;
} seen_packet;

typedef struct collector {
    int n;
    int stop_at;      /* return stop_rc when the packet with this index arrives (-1: never) */
    int stop_rc;
    const char *lo, *hi;  /* when set, text payloads must lie inside [lo, hi) */
    seen_packet p[MAX_SEEN];
} collector;

static void collector_init(collector *c)
{
    memset(c, 0, sizeof(*c));
    c->stop_at = -1;
}

static int collect(void *arg, const rc_eio_packet *p)
{
    collector *c = arg;
    assert_true(c->n < MAX_SEEN);
    assert_true(p->len <= sizeof(c->p[0].data));
    assert_true(p->type >= RC_EIO_OPEN && p->type <= RC_EIO_NOOP);
    if (p->binary) assert_int_equal(p->type, RC_EIO_MESSAGE);
    if (c->lo && !p->binary) {
        assert_true((const char *)p->data >= c->lo);
        assert_true((const char *)p->data + p->len <= c->hi);
    }
    seen_packet *s = &c->p[c->n];
    s->type = p->type;
    s->binary = p->binary;
    s->len = p->len;
    s->ptr = p->data;
    if (p->len) memcpy(s->data, p->data, p->len);
    int idx = c->n++;
    return idx == c->stop_at ? c->stop_rc : 0;
}

static void assert_seen(const seen_packet *s, int type, int binary, const void *data, size_t len)
{
    assert_int_equal(s->type, type);
    assert_int_equal(s->binary, binary);
    assert_int_equal(s->len, len);
    if (len) assert_memory_equal(s->data, data, len);
}

/* ---- rc_eio_decode_text ----------------------------------------------------------------- */

static void test_decode_text_every_type(void **state)
{
    static const char *const in[] = {"0{\"sid\":\"x\"}", "1", "2", "3probe", "4hello", "5", "6"};
    for (int t = 0; t <= 6; t++) {
        rc_eio_packet p;
        size_t n = strlen(in[t]);
        const char *s = at_guard(in[t], n);
        assert_int_equal(rc_eio_decode_text(s, n, &p), 0);
        assert_int_equal(p.type, t);
        assert_int_equal(p.binary, 0);
        assert_ptr_equal(p.data, (const uint8_t *)s + 1);
        assert_int_equal(p.len, n - 1);
    }
}

static void test_decode_text_payload_bytes(void **state)
{
    /* Any bytes after the digit are payload, including NUL, 0x1e and non-ASCII. */
    static const char in[] = "4a\0b\x1e\xc3\xa9";
    rc_eio_packet p;
    assert_int_equal(rc_eio_decode_text(in, sizeof(in) - 1, &p), 0);
    assert_int_equal(p.type, RC_EIO_MESSAGE);
    assert_int_equal(p.len, sizeof(in) - 2);
    assert_memory_equal(p.data, in + 1, p.len);
}

static void test_decode_text_errors(void **state)
{
    static const char *const bad[] = {"7", "8hello", "9", "a", "b", "bAQID", "/", " 4", "\x1e", "-1"};
    rc_eio_packet p;
    assert_int_equal(rc_eio_decode_text(at_guard("", 0), 0, &p), -1);
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        size_t n = strlen(bad[i]);
        assert_int_equal(rc_eio_decode_text(at_guard(bad[i], n), n, &p), -1);
    }
    assert_int_equal(rc_eio_decode_text("\0004", 2, &p), -1);
}

/* ---- base64 ------------------------------------------------------------------------------ */

static void test_base64_rfc4648_vectors(void **state)
{
    /* RFC 4648 section 10. */
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                      "Zm9vYmFy"};
    for (size_t i = 0; i < RC_ARRAY_LEN(plain); i++) {
        size_t n = strlen(plain[i]), en = strlen(enc[i]);
        char out[16];
        uint8_t dec[16];

        assert_int_equal(rc_base64_encoded_len(n), en);
        memset(out, 'X', sizeof(out));
        assert_int_equal(rc_base64_encode((const uint8_t *)plain[i], n, out), en);
        assert_string_equal(out, enc[i]);  /* also checks the NUL */

        assert_int_equal(rc_base64_decode(at_guard(enc[i], en), en, dec), (long)n);
        assert_memory_equal(dec, plain[i], n);
    }
}

static void test_base64_protocol_examples(void **state)
{
    /* Engine.IO v4 base64 binary: 01 02 03 04 -> AQIDBA==, 01 02 03 -> AQID, 04 -> BA== */
    static const uint8_t b4[] = {1, 2, 3, 4};
    char out[16];
    uint8_t dec[16];
    rc_base64_encode(b4, 4, out);
    assert_string_equal(out, "AQIDBA==");
    rc_base64_encode(b4, 3, out);
    assert_string_equal(out, "AQID");
    rc_base64_encode(b4 + 3, 1, out);
    assert_string_equal(out, "BA==");
    assert_int_equal(rc_base64_decode("AQIDBA==", 8, dec), 4);
    assert_memory_equal(dec, b4, 4);
}

static void test_base64_round_trip_all_bytes(void **state)
{
    uint8_t in[256], dec[256 + 3];
    char enc[360];
    for (int i = 0; i < 256; i++) in[i] = (uint8_t)(255 - i);
    for (size_t n = 0; n <= sizeof(in); n++) {
        size_t en = rc_base64_encode(in, n, enc);
        assert_int_equal(en, rc_base64_encoded_len(n));
        assert_int_equal(strlen(enc), en);
        assert_int_equal(rc_base64_decode(at_guard(enc, en), en, dec), (long)n);
        assert_memory_equal(dec, in, n);
    }
}

static void test_base64_rejects(void **state)
{
    static const char *const bad[] = {
        "Z", "Zg", "Zg=", "Zm9vY",          /* length not a multiple of 4 (padding required) */
        "Zm9v!A==", "Zm-_", "Zm9v\nZg==",   /* characters outside the standard alphabet */
        " Zg=", "Zg==\r\n\r\n",
        "Zg==Zm9v", "Zm=v", "=Zm9", "====", "Z===", "Zm9vZ===",  /* misplaced padding */
        "Zh==", "Zm9=",                     /* non-canonical: padding drops non-zero bits */
    };
    uint8_t dec[16];
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        size_t n = strlen(bad[i]);
        assert_int_equal(rc_base64_decode(at_guard(bad[i], n), n, dec), -1);
    }
    assert_int_equal(rc_base64_decode("Zg\0=", 4, dec), -1);
    assert_int_equal(rc_base64_decode("Zm9v\xc3\xa9Zg", 8, dec), -1);
}

/* ---- rc_eio_payload_decode --------------------------------------------------------------- */

static void test_payload_mixed_records(void **state)
{
    static const char body[] = "4hello\x1e" "2\x1e" "bAQIDBA==\x1e" "3probe\x1e" "b\x1e"
                               "40/admin,{\"token\":\"\xc3\xa9\"}\x1e" "6";
    static const uint8_t bin[] = {1, 2, 3, 4};
    collector c;
    collector_init(&c);
    size_t n = sizeof(body) - 1;
    const char *s = at_guard(body, n);
    c.lo = s;
    c.hi = s + n;
    assert_int_equal(rc_eio_payload_decode(s, n, collect, &c), 0);
    assert_int_equal(c.n, 7);
    assert_seen(&c.p[0], RC_EIO_MESSAGE, 0, "hello", 5);
    assert_ptr_equal(c.p[0].ptr, (const uint8_t *)s + 1);  /* text points into the input */
    assert_seen(&c.p[1], RC_EIO_PING, 0, "", 0);
    assert_seen(&c.p[2], RC_EIO_MESSAGE, 1, bin, 4);
    assert_seen(&c.p[3], RC_EIO_PONG, 0, "probe", 5);
    assert_seen(&c.p[4], RC_EIO_MESSAGE, 1, "", 0);  /* 'b' alone: an empty binary message */
    static const char sio[] = "0/admin,{\"token\":\"\xc3\xa9\"}";
    assert_seen(&c.p[5], RC_EIO_MESSAGE, 0, sio, sizeof(sio) - 1);
    assert_seen(&c.p[6], RC_EIO_NOOP, 0, "", 0);
}

static void test_payload_single_record(void **state)
{
    collector c;
    collector_init(&c);
    assert_int_equal(rc_eio_payload_decode(at_guard("2", 1), 1, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_seen(&c.p[0], RC_EIO_PING, 0, "", 0);

    collector_init(&c);
    assert_int_equal(rc_eio_payload_decode(at_guard("bBA==", 5), 5, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_seen(&c.p[0], RC_EIO_MESSAGE, 1, "\x04", 1);
}

static void test_payload_malformed(void **state)
{
    static const struct {
        const char *body;
        size_t len;
        int delivered;  /* records before the bad one were already delivered */
    } cases[] = {
        {"", 0, 0},
        {"\x1e", 1, 0},
        {"\x1e" "4a", 3, 0},
        {"4a\x1e", 3, 1},
        {"4a\x1e\x1e" "4b", 6, 1},
        {"abc", 3, 0},               /* Engine.IO v4: unknown type char */
        {"4a\x1e" "9", 4, 1},
        {"4a\x1e" "b!!!!", 7, 1},    /* bad base64 */
        {"bAQI", 4, 0},              /* missing padding */
        {"2\x1e" "3\x1e" "bA", 6, 2},
        {"4a\x1e" "7b", 5, 1},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        collector c;
        collector_init(&c);
        const char *s = at_guard(cases[i].body, cases[i].len);
        assert_int_equal(rc_eio_payload_decode(s, cases[i].len, collect, &c), -1);
        assert_int_equal(c.n, cases[i].delivered);
    }
}

static void test_payload_callback_stops_walk(void **state)
{
    static const char body[] = "4a\x1e" "bAQID\x1e" "4c\x1e" "4d";
    collector c;
    collector_init(&c);
    c.stop_at = 1;
    c.stop_rc = 7;
    assert_int_equal(rc_eio_payload_decode(body, sizeof(body) - 1, collect, &c), 7);
    assert_int_equal(c.n, 2);

    collector_init(&c);
    c.stop_at = 0;
    c.stop_rc = -5;
    assert_int_equal(rc_eio_payload_decode(body, sizeof(body) - 1, collect, &c), -5);
    assert_int_equal(c.n, 1);

    /* A stop takes effect even when a later record is malformed. */
    collector_init(&c);
    c.stop_at = 0;
    c.stop_rc = 3;
    assert_int_equal(rc_eio_payload_decode("4a\x1e!", 4, collect, &c), 3);
}

/* Binary records on both sides of the stack-scratch size, so both the stack and the heap path
 * run (ASan checks the heap one is freed and never overrun). */
static void test_payload_binary_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 2, 3, 766, 767, 768, 769, 1021, 1022, 1023, 1024,
                                   1025, 1026, 1027, 1028, 3000, 6000};
    static uint8_t raw[6000];
    static char body[1 + 8004 + 3];
    for (size_t i = 0; i < sizeof(raw); i++) raw[i] = (uint8_t)(i * 131 + 7);

    for (size_t k = 0; k < RC_ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        body[0] = 'b';
        size_t en = rc_base64_encode(raw, n, body + 1);
        memcpy(body + 1 + en, "\x1e" "2", 2);

        collector c;
        collector_init(&c);
        assert_int_equal(rc_eio_payload_decode(body, 1 + en + 2, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_seen(&c.p[0], RC_EIO_MESSAGE, 1, raw, n);
        assert_seen(&c.p[1], RC_EIO_PING, 0, "", 0);
    }
}

/* Every prefix of a valid body either decodes or fails cleanly, never reads past its end,
 * and delivers at most the records of the whole body. */
static void test_payload_every_prefix(void **state)
{
    static const char body[] = "4hello\x1e" "2\x1e" "bAQIDBA==\x1e" "b\x1e"
                               "42[\"ev\",{\"a\":1}]\x1e" "bAQID\x1e" "6";
    size_t n = sizeof(body) - 1;
    for (size_t k = 0; k <= n; k++) {
        collector c;
        collector_init(&c);
        const char *s = at_guard(body, k);
        c.lo = s;
        c.hi = s + k;
        int rc = rc_eio_payload_decode(s, k, collect, &c);
        assert_true(rc == 0 || rc == -1);
        assert_true(c.n <= 7);
        if (k == n) {
            assert_int_equal(rc, 0);
            assert_int_equal(c.n, 7);
        }
        if (k > 0 && body[k - 1] == RC_EIO_RECORD_SEP) assert_int_equal(rc, -1);

        rc_eio_packet p;
        rc = rc_eio_decode_text(s, k, &p);
        assert_true(rc == 0 || rc == -1);
        if (rc == 0) assert_true((const char *)p.data + p.len == s + k);
    }
}

/* ---- rc_eio_payload_append --------------------------------------------------------------- */

static void assert_buffer_equal(struct evbuffer *b, const void *want, size_t n)
{
    assert_int_equal(evbuffer_get_length(b), n);
    unsigned char *got = evbuffer_pullup(b, -1);
    if (n) assert_memory_equal(got, want, n);
}

static void test_append_builds_payload(void **state)
{
    static const uint8_t bin[] = {1, 2, 3, 4};
    static const char want[] = "4hello\x1e" "2\x1e" "bAQIDBA==\x1e" "b\x1e" "6\x1e" "0{}";
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);

    rc_eio_payload_append(b, 1, RC_EIO_MESSAGE, 0, (const uint8_t *)"hello", 5);
    assert_buffer_equal(b, "4hello", 6);
    rc_eio_payload_append(b, 0, RC_EIO_PING, 0, NULL, 0);
    rc_eio_payload_append(b, 0, RC_EIO_MESSAGE, 1, bin, sizeof(bin));
    rc_eio_payload_append(b, 0, RC_EIO_MESSAGE, 1, NULL, 0);
    rc_eio_payload_append(b, 0, RC_EIO_NOOP, 0, NULL, 0);
    rc_eio_payload_append(b, 0, RC_EIO_OPEN, 0, (const uint8_t *)"{}", 2);
    assert_buffer_equal(b, want, sizeof(want) - 1);
    evbuffer_free(b);

    b = evbuffer_new();
    rc_eio_payload_append(b, 1, RC_EIO_MESSAGE, 1, bin, 3);
    assert_buffer_equal(b, "bAQID", 5);
    evbuffer_free(b);

    b = evbuffer_new();
    rc_eio_payload_append(b, 1, RC_EIO_CLOSE, 0, NULL, 0);
    assert_buffer_equal(b, "1", 1);
    evbuffer_free(b);
}

static void test_append_then_decode_round_trip(void **state)
{
    static uint8_t big[5000];
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (uint8_t)(i ^ (i >> 3));
    struct evbuffer *b = evbuffer_new();

    /* Appends onto a buffer that already holds data in several chains. */
    for (int i = 0; i < 3; i++) {
        rc_eio_payload_append(b, i == 0, RC_EIO_MESSAGE, 0, (const uint8_t *)"2[\"x\"]", 6);
        rc_eio_payload_append(b, 0, RC_EIO_MESSAGE, 1, big, sizeof(big) - (size_t)i);
    }
    size_t n = evbuffer_get_length(b);
    const char *s = (const char *)evbuffer_pullup(b, -1);
    collector c;
    collector_init(&c);
    assert_int_equal(rc_eio_payload_decode(s, n, collect, &c), 0);
    assert_int_equal(c.n, 6);
    for (int i = 0; i < 3; i++) {
        assert_seen(&c.p[2 * i], RC_EIO_MESSAGE, 0, "2[\"x\"]", 6);
        assert_seen(&c.p[2 * i + 1], RC_EIO_MESSAGE, 1, big, sizeof(big) - (size_t)i);
    }
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_text_every_type),
        cmocka_unit_test(test_decode_text_payload_bytes),
        cmocka_unit_test(test_decode_text_errors),
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64_protocol_examples),
        cmocka_unit_test(test_base64_round_trip_all_bytes),
        cmocka_unit_test(test_base64_rejects),
        cmocka_unit_test(test_payload_mixed_records),
        cmocka_unit_test(test_payload_single_record),
        cmocka_unit_test(test_payload_malformed),
        cmocka_unit_test(test_payload_callback_stops_walk),
        cmocka_unit_test(test_payload_binary_sizes),
        cmocka_unit_test(test_payload_every_prefix),
        cmocka_unit_test(test_append_builds_payload),
        cmocka_unit_test(test_append_then_decode_round_trip),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
