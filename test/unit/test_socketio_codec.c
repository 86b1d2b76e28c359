/*
 * test_socketio_codec.c: unit tests for src/socketio_codec.c, Socket.IO's Redis formats
 * (docs/redis.md, "Socket.IO's Redis formats"), without Redis: the emitter's documented bytes,
 * msgpack values written as the JSON a Node server sends (numbers, dates, undefined, binary),
 * every refusal with its reason, every prefix of a valid message refused without reading past it
 * (each copied to a buffer of exactly its size, under ASan), the adapter format we publish read
 * back, and requests in JSON and msgpack.
 *
 * sio_emitter.test.js compares the whole path with a real Node server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/common.h"
#include "roomcast/socketio_codec.h"

static rc_socketio_codec *C;

static int setup(void **state)
{
    C = rc_socketio_codec_new();
    return 0;
}

static int teardown(void **state)
{
    rc_socketio_codec_free(C);
    return 0;
}

/* Decodes a copy of p[0..n) of exactly that size (an overread is an ASan report). */
static const char *decode(const void *p, size_t n, rc_socketio_broadcast *b, char **copy)
{
    *copy = malloc(n ? n : 1);
    memcpy(*copy, p, n);
    return rc_socketio_decode_broadcast(C, *copy, n, b);
}

/* [uid, {type:2, data:[ev, <arg>], nsp}, {rooms:[], except:[], flags:{}}] with <arg> written by
 * arg() into the packer. */
typedef void (*arg_fn)(msgpack_packer *pk);

static void pstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void build(msgpack_sbuffer *sb, const char *nsp, arg_fn arg, int type)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pstr(&pk, "emitter");
    msgpack_pack_map(&pk, 3);
    pstr(&pk, "type");
    msgpack_pack_int(&pk, type);
    pstr(&pk, "data");
    msgpack_pack_array(&pk, arg ? 2 : 1);
    pstr(&pk, "ev");
    if (arg) arg(&pk);
    pstr(&pk, "nsp");
    pstr(&pk, nsp);
    msgpack_pack_map(&pk, 3);
    pstr(&pk, "rooms");
    msgpack_pack_array(&pk, 0);
    pstr(&pk, "flags");
    msgpack_pack_map(&pk, 0);
    pstr(&pk, "except");
    msgpack_pack_array(&pk, 0);
}

static void assert_args(arg_fn arg, const char *want_json)
{
    msgpack_sbuffer sb;
    build(&sb, "/", arg, 2);
    rc_socketio_broadcast b;
    char *copy;
    const char *why = decode(sb.data, sb.size, &b, &copy);
    if (why) fail_msg("refused: %s (want %s)", why, want_json);
    assert_string_equal(b.msg.args_json, want_json);
    assert_int_equal(b.msg.args_len, strlen(want_json));
    free(copy);
    msgpack_sbuffer_destroy(&sb);
}

static void assert_refused(arg_fn arg, const char *nsp, int type, const char *want)
{
    msgpack_sbuffer sb;
    build(&sb, nsp, arg, type);
    rc_socketio_broadcast b;
    char *copy;
    const char *why = decode(sb.data, sb.size, &b, &copy);
    assert_non_null(why);
    assert_string_equal(why, want);
    free(copy);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- the emitter's bytes ------------------------------------------------------------------- */

/* emitter.emit("hello","world") as observed, key order rooms, flags, except. */
static const uint8_t HELLO[] = {
    0x93, 0xa7, 'e', 'm', 'i', 't', 't', 'e', 'r',
    0x83, 0xa4, 't', 'y', 'p', 'e', 0x02, 0xa4, 'd', 'a', 't', 'a', 0x92, 0xa5, 'h', 'e', 'l', 'l', 'o',
    0xa5, 'w', 'o', 'r', 'l', 'd', 0xa3, 'n', 's', 'p', 0xa1, '/',
    0x83, 0xa5, 'r', 'o', 'o', 'm', 's', 0x90, 0xa5, 'f', 'l', 'a', 'g', 's', 0x80,
    0xa6, 'e', 'x', 'c', 'e', 'p', 't', 0x90,
};

static void test_emitter_bytes(void **state)
{
    rc_socketio_broadcast b;
    char *copy;
    assert_null(decode(HELLO, sizeof(HELLO), &b, &copy));
    assert_string_equal(b.uid, "emitter");
    assert_string_equal(b.msg.ns, "/");
    assert_string_equal(b.msg.event, "hello");
    assert_string_equal(b.msg.args_json, "[\"world\"]");
    assert_int_equal(b.room_count, 0);
    assert_int_equal(b.except_count, 0);
    assert_int_equal(b.is_volatile, 0);
    assert_int_equal(b.msg.attachment_count, 0);
    free(copy);
}

/* Every proper prefix is refused, and reads nothing past its end. */
static void test_every_prefix_refused(void **state)
{
    for (size_t n = 0; n < sizeof(HELLO); n++) {
        rc_socketio_broadcast b;
        char *copy;
        const char *why = decode(HELLO, n, &b, &copy);
        assert_non_null(why);
        free(copy);
    }
}

/* ---- values -------------------------------------------------------------------------------- */

static double D;
static void a_double(msgpack_packer *pk) { msgpack_pack_double(pk, D); }

static void assert_number(double v, const char *want)
{
    char json[64];
    snprintf(json, sizeof(json), "[%s]", want);
    D = v;
    assert_args(a_double, json);
}

static void test_numbers_as_javascript(void **state)
{
    assert_number(0.1, "0.1");
    assert_number(-1.5, "-1.5");
    assert_number(1e21, "1e+21");
    assert_number(1e20, "100000000000000000000");
    assert_number(1e-7, "1e-7");
    assert_number(1.5e-6, "0.0000015");
    assert_number(123e-20, "1.23e-18");
    assert_number(5e-324, "5e-324");
    assert_number(1.7976931348623157e308, "1.7976931348623157e+308");
    assert_number(-0.0, "0");
    assert_number(1.0 / 3, "0.3333333333333333");
    assert_number(123456789.125, "123456789.125");
    assert_number(0.0 / 0.0, "null");
}

static void a_ints(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint64(pk, 255);
    msgpack_pack_int64(pk, -3);
    msgpack_pack_uint64(pk, (UINT64_C(1) << 53) + 2);
    msgpack_pack_uint64(pk, (UINT64_C(1) << 53) + 1); /* a double rounds it, as notepack does */
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_uint64(pk, UINT64_MAX);
}

static void test_integers(void **state)
{
    assert_args(a_ints, "[[255,-3,9007199254740994,9007199254740992,-9223372036854776000,18446744073709552000]]");
}

static const char *EXT_BYTES;
static size_t EXT_LEN;
static void a_raw(msgpack_packer *pk) { msgpack_sbuffer_write(pk->data, EXT_BYTES, EXT_LEN); }

static void assert_raw(const void *bytes, size_t n, const char *want)
{
    EXT_BYTES = bytes;
    EXT_LEN = n;
    assert_args(a_raw, want);
}

static void test_dates(void **state)
{
    /* timestamp 32: 2026-12-06T17:00:00Z = 1796576400 */
    static const uint8_t ts32[] = {0xd6, 0xff, 0x6b, 0x15, 0x94, 0x90};
    assert_raw(ts32, sizeof(ts32), "[\"2026-12-06T17:00:00.000Z\"]");
    /* timestamp 64: 123 ms after the epoch (ns = 123000000 << 2 in the high bits) */
    uint64_t v = ((uint64_t)123000000 << 34) | 0;
    uint8_t ts64[10] = {0xd7, 0xff};
    for (int i = 0; i < 8; i++) ts64[2 + i] = (uint8_t)(v >> (56 - 8 * i));
    assert_raw(ts64, sizeof(ts64), "[\"1970-01-01T00:00:00.123Z\"]");
    /* timestamp 96: -1 s + 999 ms = 1969-12-31T23:59:59.999Z */
    static const uint8_t ts96[] = {0xc7, 0x0c, 0xff, 0x3b, 0x8b, 0x87, 0xc0, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0xff, 0xff};
    assert_raw(ts96, sizeof(ts96), "[\"1969-12-31T23:59:59.999Z\"]");
    /* year 12000 and year -50: six digits with a sign */
    static const uint8_t y12000[] = {0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x49, 0xb1, 0xd6, 0x01, 0x00};
    assert_raw(y12000, sizeof(y12000), "[\"+012000-01-01T00:00:00.000Z\"]");
    static const uint8_t yneg[] = {0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf1, 0x28, 0x7f, 0xa3, 0x00};
    assert_raw(yneg, sizeof(yneg), "[\"-000050-01-01T00:00:00.000Z\"]");
    /* beyond 8.64e15 ms: an invalid Date, which JSON writes as null */
    static const uint8_t huge[] = {0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    assert_raw(huge, sizeof(huge), "[null]");
    /* notepack's old Date (fixext 8, type 0): milliseconds */
    static const uint8_t old[] = {0xd7, 0x00, 0, 0, 0, 0, 0, 0, 0x03, 0xe8};
    assert_raw(old, sizeof(old), "[\"1970-01-01T00:00:01.000Z\"]");
}

static void test_undefined_and_binary(void **state)
{
    /* {"a": undefined, "b": [undefined, bin 01 02], 7: ext 5 (2 bytes)} */
    static const uint8_t m[] = {0x83, 0xa1, 'a', 0xd4, 0x00, 0x00, 0xa1, 'b', 0x92, 0xd4, 0x00, 0x00,
                                0xc4, 0x02, 0x01, 0x02, 0x07, 0xd5, 0x05, 0xaa, 0xbb};
    EXT_BYTES = (const char *)m;
    EXT_LEN = sizeof(m);
    msgpack_sbuffer sb;
    build(&sb, "/", a_raw, 2);
    rc_socketio_broadcast b;
    char *copy;
    assert_null(decode(sb.data, sb.size, &b, &copy));
    assert_string_equal(b.msg.args_json,
                        "[{\"b\":[null,{\"_placeholder\":true,\"num\":0}],\"7\":[5,{\"_placeholder\":true,\"num\":1}]}]");
    assert_int_equal(b.msg.attachment_count, 2);
    assert_int_equal(b.msg.attachments[0].len, 2);
    assert_int_equal(b.msg.attachments[0].data[1], 0x02);
    assert_int_equal(b.msg.attachments[1].data[0], 0xaa);
    free(copy);
    msgpack_sbuffer_destroy(&sb);
}

/* notepack's other ext forms: a fixext 4 of type 0 and an ext16 of type -1 are [type, Buffer]; an
 * ext8 of type 0 is an ArrayBuffer (binary). */
static void test_other_ext_forms(void **state)
{
    static const uint8_t fix4[] = {0xd6, 0x00, 1, 2, 3, 4};
    assert_raw(fix4, sizeof(fix4), "[[0,{\"_placeholder\":true,\"num\":0}]]");
    static const uint8_t e16[] = {0xc8, 0x00, 0x0c, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_raw(e16, sizeof(e16), "[[-1,{\"_placeholder\":true,\"num\":0}]]");
    static const uint8_t ab[] = {0xc7, 0x02, 0x00, 9, 9};
    assert_raw(ab, sizeof(ab), "[{\"_placeholder\":true,\"num\":0}]");
    static const uint8_t fix16[] = {0xd8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_raw(fix16, sizeof(fix16), "[[-1,{\"_placeholder\":true,\"num\":0}]]");
}

static void a_str(msgpack_packer *pk) { pstr(pk, "\"\\\b\f\n\r\t\x01\x7f\xc3\xa9\xe2\x80\xa8/"); }

static void test_strings_as_json_stringify(void **state)
{
    assert_args(a_str, "[\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\x7f\xc3\xa9\xe2\x80\xa8/\"]");
}

/* ---- refusals ------------------------------------------------------------------------------ */

static void a_bad_utf8(msgpack_packer *pk) { msgpack_pack_str(pk, 1); msgpack_pack_str_body(pk, "\xff", 1); }
static void a_bad_ext(msgpack_packer *pk)
{
    static const char e[] = {(char)0xc7, 0x04, (char)0xff, 0, 0, 0, 0}; /* ext8 -1 of 4 bytes */
    msgpack_sbuffer_write(pk->data, e, sizeof(e));
}
static void a_bad_key(msgpack_packer *pk) { msgpack_pack_map(pk, 1); msgpack_pack_nil(pk); msgpack_pack_nil(pk); }
static void a_many_bins(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 11);
    for (int i = 0; i < 11; i++) {
        msgpack_pack_bin(pk, 1);
        msgpack_pack_bin_body(pk, "x", 1);
    }
}
static int DEPTH;
static void a_deep(msgpack_packer *pk)
{
    for (int i = 0; i < DEPTH; i++) msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
}

static void test_refusals(void **state)
{
    assert_refused(NULL, "/", 3, "bad_type");
    assert_refused(NULL, "chat", 2, "bad_nsp");
    assert_refused(a_bad_utf8, "/", 2, "bad_string");
    assert_refused(a_bad_ext, "/", 2, "bad_ext");
    assert_refused(a_bad_key, "/", 2, "bad_key");
    assert_refused(a_many_bins, "/", 2, "too_many_attachments");
    /* the outer array, the packet map and data hold the argument: 3 + DEPTH levels */
    DEPTH = RC_SOCKETIO_MAX_DEPTH - 3;
    char want[2 * RC_SOCKETIO_MAX_DEPTH + 8], *w = want;
    for (int i = 0; i <= DEPTH; i++) *w++ = '[';
    w += sprintf(w, "null");
    for (int i = 0; i <= DEPTH; i++) *w++ = ']';
    *w = '\0';
    assert_args(a_deep, want);
    DEPTH = RC_SOCKETIO_MAX_DEPTH - 2;
    assert_refused(a_deep, "/", 2, "too_deep");

#define RAW(s, why) {s, sizeof(s) - 1, why}
    static const struct { const char *bytes; size_t n; const char *why; } raw[] = {
        RAW("\xc1", "not_msgpack"),
        RAW("\x93\xdd\xff\xff\xff\xff", "truncated"),                 /* 4 billion elements */
        RAW("\x92\xa1x\x80", "bad_layout"),
        RAW("\x93\x01\x80\x80", "bad_uid"),
        RAW("\x93\xa1x\xa1y\x80", "bad_packet"),
        RAW("\x93\xa1x\x81\xa4type\x02\x80", "bad_data"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\xa7" "connect\x80", "reserved_event"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\x01\x80", "bad_event"),
        RAW("\x93\xa1x\x83\xa4type\x02\xa2id\x01\xa4" "data\x91\xa1" "e\x80", "ack_id"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\xa1" "e\x81\xa5rooms\xa1r", "bad_rooms"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\xa1" "e\x81\xa6" "except\x91\x01", "bad_except"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\xa1" "e\x90", "bad_opts"),
        RAW("\x93\xa1x\x82\xa4type\x02\xa4" "data\x91\xa1" "e\x80\x00", "not_msgpack"), /* trailing */
    };
#undef RAW
    for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
        rc_socketio_broadcast b;
        char *copy;
        const char *why = decode(raw[i].bytes, raw[i].n, &b, &copy);
        if (!why || strcmp(why, raw[i].why) != 0)
            fail_msg("case %zu: got %s, want %s", i, why ? why : "(accepted)", raw[i].why);
        free(copy);
    }
}

/* ---- what we publish ------------------------------------------------------------------------- */

static void test_encode_reads_back(void **state)
{
    static const uint8_t bin[] = {0x00, 0xff};
    rc_bp_bytes atts[] = {{bin, sizeof(bin)}};
    const char *except[] = {"sidA", "sidB"};
    const char *args = "[1,-2,0.5,\"s\",null,true,{\"k\":[{\"_placeholder\":true,\"num\":0}]},9007199254740993]";
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/chat", .room = "room:1", .event = "ev",
                       .args_json = args, .args_len = strlen(args), .attachments = atts,
                       .attachment_count = 1, .except = except, .except_count = 2};
    const char *out;
    size_t n;
    assert_int_equal(rc_socketio_encode_broadcast(C, "abc123", &m, &out, &n), 0);
    char *copy = malloc(n);
    memcpy(copy, out, n);
    rc_socketio_broadcast b;
    assert_null(rc_socketio_decode_broadcast(C, copy, n, &b));
    assert_string_equal(b.uid, "abc123");
    assert_string_equal(b.msg.ns, "/chat");
    assert_string_equal(b.msg.event, "ev");
    assert_string_equal(b.msg.args_json,
                        "[1,-2,0.5,\"s\",null,true,{\"k\":[{\"_placeholder\":true,\"num\":0}]},9007199254740992]");
    assert_int_equal(b.msg.attachment_count, 1);
    assert_memory_equal(b.msg.attachments[0].data, bin, 2);
    assert_int_equal(b.room_count, 1);
    assert_string_equal(b.rooms[0], "room:1");
    assert_int_equal(b.except_count, 2);
    assert_string_equal(b.except[1], "sidB");
    free(copy);

    rc_bp_message ns = {.kind = RC_BP_EMIT, .ns = "/", .event = "x"};
    assert_int_equal(rc_socketio_encode_broadcast(C, "u", &ns, &out, &n), 0);
    /* [ "u", {type:2, data:["x"], nsp:"/"}, {rooms:[], except:[], flags:{}} ] */
    static const uint8_t want[] = {0x93, 0xa1, 'u', 0x83, 0xa4, 't', 'y', 'p', 'e', 0x02, 0xa4, 'd', 'a', 't', 'a',
                                   0x91, 0xa1, 'x', 0xa3, 'n', 's', 'p', 0xa1, '/', 0x83, 0xa5, 'r', 'o', 'o',
                                   'm', 's', 0x90, 0xa6, 'e', 'x', 'c', 'e', 'p', 't', 0x90, 0xa5, 'f', 'l',
                                   'a', 'g', 's', 0x80};
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
}

/* ---- requests ---------------------------------------------------------------------------------- */

static void test_requests(void **state)
{
    rc_socketio_request r;
    const char *j = "{\"type\":4,\"opts\":{\"rooms\":[\"r1\"],\"except\":[\"r2\"]},\"close\":true}";
    assert_null(rc_socketio_decode_request(C, j, strlen(j), &r));
    assert_int_equal(r.type, RC_SOCKETIO_REQ_REMOTE_DISCONNECT);
    assert_int_equal(r.has_opts, 1);
    assert_int_equal(r.opts_room_count, 1);
    assert_string_equal(r.opts_rooms[0], "r1");
    assert_string_equal(r.opts_except[0], "r2");
    assert_int_equal(r.close, 1);
    assert_non_null(r.json);
    assert_null(r.mp);

    j = "{\"type\":2,\"opts\":{\"rooms\":[],\"except\":[]},\"rooms\":[\"x\",\"y\"]}";
    assert_null(rc_socketio_decode_request(C, j, strlen(j), &r));
    assert_int_equal(r.room_count, 2);
    assert_string_equal(r.rooms[1], "y");

    /* msgpack: {uid:"abc", requestId:"q", type:6, data:["ping"]} */
    static const char mp[] = "\x84\xa3uid\xa3" "abc\xa9requestId\xa1q\xa4type\x06\xa4" "data\x91\xa4ping";
    assert_null(rc_socketio_decode_request(C, mp, sizeof(mp) - 1, &r));
    assert_int_equal(r.type, RC_SOCKETIO_REQ_SERVER_SIDE_EMIT);
    assert_string_equal(r.uid, "abc");
    assert_string_equal(r.request_id, "q");
    assert_non_null(r.mp);

    static const struct { const char *s; const char *why; } bad[] = {
        {"{\"type\":99}", "bad_type"},
        {"{\"type\":2.5}", "bad_type"},
        {"{\"type\":2,\"opts\":{\"rooms\":\"r\"}}", "bad_rooms"},
        {"{\"type\":2,\"opts\":[]}", "bad_opts"},
        {"{\"type\":4,\"close\":1}", "bad_close"},
        {"{\"type\":6,\"uid\":5}", "bad_uid"},
        {"{nope", "bad_json"},
        {"\x91\x01", "bad_layout"},
        {"", "truncated"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = rc_socketio_decode_request(C, bad[i].s, strlen(bad[i].s), &r);
        if (!why || strcmp(why, bad[i].why) != 0)
            fail_msg("case %zu: got %s, want %s", i, why ? why : "(accepted)", bad[i].why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emitter_bytes),
        cmocka_unit_test(test_every_prefix_refused),
        cmocka_unit_test(test_numbers_as_javascript),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_undefined_and_binary),
        cmocka_unit_test(test_other_ext_forms),
        cmocka_unit_test(test_strings_as_json_stringify),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_encode_reads_back),
        cmocka_unit_test(test_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
