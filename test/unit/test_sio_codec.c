/*
 * test_sio_codec.c: unit tests for src/sio_codec.c (Socket.IO v5 packet decode/encode,
 * payload shapes, binary placeholders).
 *
 * Inputs are copied so that they end exactly where a PROT_NONE guard page begins: reading one
 * byte past the length (ours or cJSON's) faults.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/message.h"
#include "roomcast/sio_codec.h"

/* ---- guard page ------------------------------------------------------------------------- */

static char *g_page;  /* readable pages followed by one PROT_NONE page */
static size_t g_size; /* readable bytes */
static size_t g_page_size;

static int guard_setup(void **state)
{
    g_page_size = (size_t)sysconf(_SC_PAGESIZE);
    g_size = 2 * g_page_size;  /* room for the deep-nesting inputs */
    void *m = mmap(NULL, g_size + g_page_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return -1;
    if (mprotect((char *)m + g_size, g_page_size, PROT_NONE) != 0) return -1;
    g_page = m;
    return 0;
}

static int guard_teardown(void **state)
{
    munmap(g_page, g_size + g_page_size);
    return 0;
}

static const char *at_guard(const char *s, size_t n)
{
    assert_true(n <= g_size);
    char *dst = g_page + g_size - n;
    memcpy(dst, s, n);
    return dst;
}

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct decoded {
    rc_sio_packet p;
    const char *in;  /* where the input was placed */
    const char *err;
    int rc;
} decoded;

static decoded decode_n(const char *s, size_t n)
{
    decoded d;
    d.in = at_guard(s, n);
    d.err = NULL;
    d.rc = rc_sio_decode(d.in, n, &d.p, &d.err);
    return d;
}

static decoded decode(const char *s)
{
    return decode_n(s, strlen(s));
}

static void assert_nsp(const rc_sio_packet *p, const char *want)
{
    assert_int_equal(p->nsp.len, strlen(want));
    assert_memory_equal(p->nsp.ptr, want, p->nsp.len);
}

/* Decodes s and expects success with the given header fields. Returns the decoded packet,
 * which the caller disposes. */
static decoded expect_ok(const char *s, int type, const char *nsp, long long ack, int att)
{
    decoded d = decode(s);
    if (d.rc != 0) fail_msg("\"%s\" rejected: %s", s, d.err ? d.err : "(null)");
    assert_int_equal(d.p.type, type);
    assert_nsp(&d.p, nsp);
    assert_int_equal(d.p.ack_id, ack);
    assert_int_equal(d.p.attachments, att);
    return d;
}

static void expect_err_n(const char *s, size_t n, const char *reason)
{
    decoded d = decode_n(s, n);
    if (d.rc != -1) fail_msg("\"%.*s\" accepted, wanted %s", (int)n, s, reason);
    assert_non_null(d.err);
    if (strcmp(d.err, reason) != 0) fail_msg("\"%.*s\": got %s, wanted %s", (int)n, s, d.err, reason);
    assert_null(d.p.payload);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);
}

static void expect_err(const char *s, const char *reason)
{
    expect_err_n(s, strlen(s), reason);
}

/* ---- every packet type ------------------------------------------------------------------ */

static void test_connect(void **state)
{
    decoded d = expect_ok("0", RC_SIO_CONNECT, "/", -1, 0);
    assert_null(d.p.payload);
    assert_int_equal(d.p.nsp.ptr[0], '/');
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("0{\"token\":\"abc\"}", RC_SIO_CONNECT, "/", -1, 0);
    assert_true(cJSON_IsObject(d.p.payload));
    assert_string_equal(cJSON_GetObjectItem(d.p.payload, "token")->valuestring, "abc");
    rc_sio_packet_dispose(&d.p);

    /* The namespace slice points into the input; the comma is consumed. */
    d = expect_ok("0/admin,", RC_SIO_CONNECT, "/admin", -1, 0);
    assert_ptr_equal(d.p.nsp.ptr, d.in + 1);
    assert_null(d.p.payload);
    rc_sio_packet_dispose(&d.p);

    /* Without the comma the namespace runs to the end (the conformance suite sends 40/random). */
    d = expect_ok("0/random", RC_SIO_CONNECT, "/random", -1, 0);
    assert_ptr_equal(d.p.nsp.ptr, d.in + 1);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("0/admin,{\"token\":\"t\"}", RC_SIO_CONNECT, "/admin", -1, 0);
    assert_true(cJSON_IsObject(d.p.payload));
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("0{}", RC_SIO_CONNECT, "/", -1, 0);
    rc_sio_packet_dispose(&d.p);

    /* An explicit root namespace is still "/", sliced from the input. */
    d = expect_ok("0/,{}", RC_SIO_CONNECT, "/", -1, 0);
    assert_ptr_equal(d.p.nsp.ptr, d.in + 1);
    rc_sio_packet_dispose(&d.p);
}

static void test_disconnect(void **state)
{
    decoded d = expect_ok("1", RC_SIO_DISCONNECT, "/", -1, 0);
    assert_null(d.p.payload);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("1/chat,", RC_SIO_DISCONNECT, "/chat", -1, 0);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("1/chat", RC_SIO_DISCONNECT, "/chat", -1, 0);
    rc_sio_packet_dispose(&d.p);
}

static void test_event(void **state)
{
    decoded d = expect_ok("2[\"hello\",\"y\"]", RC_SIO_EVENT, "/", -1, 0);
    assert_string_equal(d.p.event, "hello");
    assert_ptr_equal(d.p.event, cJSON_GetArrayItem(d.p.payload, 0)->valuestring);
    assert_int_equal(cJSON_GetArraySize(d.p.payload), 2);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("21[\"hello\",\"y\"]", RC_SIO_EVENT, "/", 1, 0);
    assert_string_equal(d.p.event, "hello");
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("2/chat,7[\"ev\",{}]", RC_SIO_EVENT, "/chat", 7, 0);
    assert_string_equal(d.p.event, "ev");
    rc_sio_packet_dispose(&d.p);

    /* Numeric event names are allowed; event stays NULL. */
    d = expect_ok("2[42,\"x\"]", RC_SIO_EVENT, "/", -1, 0);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("2[-1.5e3]", RC_SIO_EVENT, "/", -1, 0);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);

    /* Unicode names, escapes, whitespace JSON.parse allows around and inside the value. */
    d = expect_ok("2[\"\xc3\xa9v\\u00e9nt\\n\"]", RC_SIO_EVENT, "/", -1, 0);
    assert_string_equal(d.p.event, "\xc3\xa9v\xc3\xa9nt\n");
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("2 [ \"a\" , 1 ]\r\n\t ", RC_SIO_EVENT, "/", -1, 0);
    assert_string_equal(d.p.event, "a");
    rc_sio_packet_dispose(&d.p);

    /* U+0000 in another argument is fine. */
    d = expect_ok("2[\"x\",\"a\\u0000b\"]", RC_SIO_EVENT, "/", -1, 0);
    rc_sio_packet_dispose(&d.p);
}

static void test_ack(void **state)
{
    decoded d = expect_ok("31[\"ack-y\"]", RC_SIO_ACK, "/", 1, 0);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("3/chat,7[]", RC_SIO_ACK, "/chat", 7, 0);
    assert_int_equal(cJSON_GetArraySize(d.p.payload), 0);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("37[4]", RC_SIO_ACK, "/", 7, 0);
    rc_sio_packet_dispose(&d.p);

    /* Acks may carry anything, even values that would be reserved event names. */
    d = expect_ok("30[\"connect\"]", RC_SIO_ACK, "/", 0, 0);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);
}

static void test_ack_id_zero_and_limits(void **state)
{
    decoded d = expect_ok("20[\"x\"]", RC_SIO_EVENT, "/", 0, 0);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("30[]", RC_SIO_ACK, "/", 0, 0);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("2/a,0[\"x\"]", RC_SIO_EVENT, "/a", 0, 0);
    rc_sio_packet_dispose(&d.p);
    /* Leading zeros are digits like any other (JS: Number("007") == 7). */
    d = expect_ok("2007[\"x\"]", RC_SIO_EVENT, "/", 7, 0);
    rc_sio_packet_dispose(&d.p);

    /* 15 digits is the most (JS safe integers); 16 is rejected however small the value. */
    d = expect_ok("2999999999999999[\"x\"]", RC_SIO_EVENT, "/", 999999999999999LL, 0);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("3999999999999999[]", RC_SIO_ACK, "/", 999999999999999LL, 0);
    rc_sio_packet_dispose(&d.p);
    expect_err("21234567890123456[\"x\"]", "bad ack id");
    expect_err("20000000000000000[\"x\"]", "bad ack id");
    expect_err("39999999999999999999999999[]", "bad ack id");
    expect_err("2/chat,1234567890123456", "bad ack id");
}

static void test_connect_error(void **state)
{
    decoded d = expect_ok("4{\"message\":\"Invalid namespace\"}", RC_SIO_CONNECT_ERROR, "/", -1, 0);
    assert_true(cJSON_IsObject(d.p.payload));
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("4/nonexistent,{\"message\":\"Invalid namespace\"}", RC_SIO_CONNECT_ERROR,
                  "/nonexistent", -1, 0);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("4\"legacy reason\"", RC_SIO_CONNECT_ERROR, "/", -1, 0);
    assert_true(cJSON_IsString(d.p.payload));
    rc_sio_packet_dispose(&d.p);
}

static void test_binary_event_and_ack(void **state)
{
    /* Socket.IO v5 binary events: placeholders and attachments */
    static const char ev[] =
        "52-[\"b\",{\"_placeholder\":true,\"num\":0},{\"x\":{\"_placeholder\":true,\"num\":1}}]";
    decoded d = expect_ok(ev, RC_SIO_BINARY_EVENT, "/", -1, 2);
    assert_string_equal(d.p.event, "b");
    assert_int_equal(rc_sio_count_placeholders(d.p.payload, d.p.attachments), 2);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("52-/chat,789[\"b\",{\"_placeholder\":true,\"num\":0},"
                  "{\"_placeholder\":true,\"num\":1}]", RC_SIO_BINARY_EVENT, "/chat", 789, 2);
    assert_int_equal(rc_sio_count_placeholders(d.p.payload, d.p.attachments), 2);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("62-789[{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]",
                  RC_SIO_BINARY_ACK, "/", 789, 2);
    assert_null(d.p.event);
    assert_int_equal(rc_sio_count_placeholders(d.p.payload, d.p.attachments), 2);
    rc_sio_packet_dispose(&d.p);

    d = expect_ok("61-/chat,0[{\"_placeholder\":true,\"num\":0}]", RC_SIO_BINARY_ACK, "/chat", 0, 1);
    rc_sio_packet_dispose(&d.p);

    /* Counts 1..10; leading zeros allowed as in JS. */
    d = expect_ok("510-[\"x\"]", RC_SIO_BINARY_EVENT, "/", -1, 10);
    rc_sio_packet_dispose(&d.p);
    d = expect_ok("501-[1]", RC_SIO_BINARY_EVENT, "/", -1, 1);
    rc_sio_packet_dispose(&d.p);
}

static void test_bad_attachments(void **state)
{
    expect_err("5[\"a\"]", "bad attachments");        /* no count */
    expect_err("5-[\"a\"]", "bad attachments");       /* empty count */
    expect_err("50-[\"a\"]", "bad attachments");      /* zero */
    expect_err("500-[\"a\"]", "bad attachments");
    expect_err("511-[\"a\"]", "bad attachments");     /* over RC_SIO_MAX_ATTACHMENTS */
    expect_err("599999999999999999999999-[\"a\"]", "bad attachments");  /* no overflow */
    expect_err("52[\"a\"]", "bad attachments");       /* no '-' */
    expect_err("52", "bad attachments");
    expect_err("5", "bad attachments");
    expect_err("6", "bad attachments");
    expect_err("5a-[\"a\"]", "bad attachments");
    expect_err("52/chat,[\"a\"]", "bad attachments");
    expect_err("62-", "bad ack id");
    /* Non-binary types have no count: the digits are the ack id and "-..." is not JSON. */
    expect_err("22-[\"a\"]", "bad json");
    expect_err("31-[]", "bad json");
}

static void test_bad_type(void **state)
{
    expect_err("", "bad type");
    expect_err("7", "bad type");
    expect_err("9[\"a\"]", "bad type");
    expect_err("a", "bad type");
    expect_err("/chat,", "bad type");
    expect_err("[\"a\"]", "bad type");
    expect_err("-1", "bad type");
    expect_err(" 2[\"a\"]", "bad type");
    expect_err_n("\0002[\"a\"]", 6, "bad type");
}

static void test_bad_namespace(void **state)
{
    expect_err("2/ch\x01" "at,[\"a\"]", "bad namespace");
    expect_err("0/a\x7f", "bad namespace");
    expect_err("0/a\tb,", "bad namespace");
    expect_err_n("0/a\0b,{}", 8, "bad namespace");
    /* Without a comma, everything up to the end is namespace, payload included. */
    decoded d = decode("2/chat[\"a\"]");
    assert_int_equal(d.rc, -1);
    assert_string_equal(d.err, "bad payload shape");
    assert_nsp(&d.p, "/chat[\"a\"]");
    rc_sio_packet_dispose(&d.p);
}

static void test_bad_json(void **state)
{
    static const char *const bad[] = {
        "2[\"a\"]x", "2[\"a\"] ]", "2[\"a\"][]", "2[\"a\"],",  /* trailing garbage */
        "2[\"a\"", "2[", "2{", "2[\"a", "2[\"a\",", "2[\"a\\", "2[\"a\\u00",  /* truncated */
        "2abc[\"a\"]",                    /* Socket.IO v5: a non-integer ack id */
        "2[+1]", "2[01]", "2[.5]", "2[1.]", "2[1e]", "2[-]", "2[0x10]", "2[1,]",
        "2[\"a\",]", "2[,\"a\"]", "2[\"a\" \"b\"]", "2[NaN]", "2[Infinity]", "2[tru]", "2[nul]",
        "2['a']", "2[\"a\\x41\"]", "2[\"a\\uZZZZ\"]", "2[\"a\\u12\"]", "2[\"a\tb\"]",
        "2[\"a\nb\"]", "2[\"\x01\"]",
        "2\xef\xbb\xbf[\"a\"]",         /* BOM: cJSON skips it, JSON.parse does not */
        "2[\"a\"]\f", "2\v[\"a\"]",       /* only space, tab, CR, LF are JSON whitespace */
        "0{\"a\"}", "0{\"a\":}", "0{a:1}", "0{\"a\":1,}", "0{\"a\" 1}", "0{1:2}",
        "4\"unterminated",
        "2[\"\\ud800\"]",                 /* lone surrogate: JSON.parse takes it, cJSON does not */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) expect_err(bad[i], "bad json");
    expect_err_n("2[\"a\"]\0", 7, "bad json");
    expect_err_n("2[\"a\0\"]", 7, "bad json");

    /* Numbers longer than 63 characters: upstream cJSON 1.7.15 parses only the first 63 and
     * stops mid-number; Debian's build (CVE-2023-26819 patch) parses them whole. Either way the
     * decoder must not accept a truncated value. */
    char longnum[128] = "2[\"a\",";
    memset(longnum + 6, '7', 70);
    strcpy(longnum + 76, "]");
    decoded d = decode(longnum);
    if (d.rc == 0) {
        double v = cJSON_GetArrayItem(d.p.payload, 1)->valuedouble;
        assert_true(v > 7.7e69 && v < 7.8e69);
    } else {
        assert_string_equal(d.err, "bad json");
    }
    rc_sio_packet_dispose(&d.p);
}

static void test_nesting_limit(void **state)
{
    /* cJSON and the syntax check both allow exactly CJSON_NESTING_LIMIT nested containers. */
    static char buf[2 + 2 * (CJSON_NESTING_LIMIT + 1) + 1];
    for (int depth = CJSON_NESTING_LIMIT; depth <= CJSON_NESTING_LIMIT + 1; depth++) {
        size_t n = 0;
        buf[n++] = '3';
        buf[n++] = '0';
        for (int i = 0; i < depth; i++) buf[n++] = '[';
        for (int i = 0; i < depth; i++) buf[n++] = ']';
        decoded d = decode_n(buf, n);
        if (depth == CJSON_NESTING_LIMIT) {
            assert_int_equal(d.rc, 0);
        } else {
            assert_int_equal(d.rc, -1);
            assert_string_equal(d.err, "bad json");
        }
        rc_sio_packet_dispose(&d.p);
    }
    /* Mixed objects and arrays: 999 levels inside the top-level array. */
    size_t n = 0;
    static char mixed[8 * CJSON_NESTING_LIMIT];
    n += (size_t)sprintf(mixed, "2[\"x\",");
    for (int i = 0; i < CJSON_NESTING_LIMIT - 1; i++) n += (size_t)sprintf(mixed + n, "{\"k\":");
    n += (size_t)sprintf(mixed + n, "1");
    for (int i = 0; i < CJSON_NESTING_LIMIT - 1; i++) mixed[n++] = '}';
    mixed[n++] = ']';
    decoded d = decode_n(mixed, n);
    assert_int_equal(d.rc, 0);
    assert_string_equal(d.p.event, "x");
    rc_sio_packet_dispose(&d.p);
}

static void test_bad_payload_shape(void **state)
{
    static const char *const bad[] = {
        "0[]", "0\"x\"", "0null", "0true", "0 [1]",      /* CONNECT: object or absent */
        "1{}", "1[]", "1/chat,{}", "1\"x\"", "1null",          /* DISCONNECT: nothing */
        "2", "2/chat,", "27", "2[]", "2{}", "2\"x\"", "2null", "25",  /* EVENT */
        "2[null]", "2[{}]", "2[[\"a\"]]", "2[true]", "2[false,1]",
        "2[\"a\\u0000\"]", "2[\"connect\\u0000\"]",            /* U+0000 in the name */
        "31{}", "31\"x\"", "31", "31null", "3/a,1",            /* ACK: array */
        "4", "4[]", "45", "4null", "4 1", "4true", "4/a,",       /* CONNECT_ERROR */
        "51-", "51-{}", "51-[]", "61-1{}", "61-1",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) expect_err(bad[i], "bad payload shape");
    /* ACK without an id */
    expect_err("3[]", "bad ack id");
    expect_err("3/chat,[\"x\"]", "bad ack id");
    expect_err("61-[]", "bad ack id");
}

static void test_reserved_names(void **state)
{
    static const char *const names[] = {"connect", "connect_error", "disconnect",
                                        "disconnecting", "newListener", "removeListener"};
    char buf[64];
    for (size_t i = 0; i < RC_ARRAY_LEN(names); i++) {
        snprintf(buf, sizeof(buf), "2[\"%s\"]", names[i]);
        expect_err(buf, "reserved event name");
        snprintf(buf, sizeof(buf), "2/chat,3[\"%s\",{}]", names[i]);
        expect_err(buf, "reserved event name");
        snprintf(buf, sizeof(buf), "51-[\"%s\",{\"_placeholder\":true,\"num\":0}]", names[i]);
        expect_err(buf, "reserved event name");
    }
    /* Escaped spelling is the same name. */
    expect_err("2[\"\\u0063onnect\"]", "reserved event name");
    /* Near misses are ordinary names. */
    static const char *const ok[] = {"2[\"Connect\"]", "2[\"connect \"]", "2[\"connected\"]",
                                     "2[\"disconnec\"]", "2[\"newlistener\"]", "2[\"\"]"};
    for (size_t i = 0; i < RC_ARRAY_LEN(ok); i++) {
        decoded d = decode(ok[i]);
        assert_int_equal(d.rc, 0);
        assert_non_null(d.p.event);
        rc_sio_packet_dispose(&d.p);
    }
}

static void test_dispose_is_safe(void **state)
{
    rc_sio_packet zero;
    memset(&zero, 0, sizeof(zero));
    rc_sio_packet_dispose(&zero);
    rc_sio_packet_dispose(&zero);

    decoded d = decode("2[\"a\",{\"b\":[1,2,3]}]");
    assert_int_equal(d.rc, 0);
    rc_sio_packet_dispose(&d.p);
    assert_null(d.p.payload);
    assert_null(d.p.event);
    rc_sio_packet_dispose(&d.p);

    /* err may be NULL. */
    rc_sio_packet p;
    assert_int_equal(rc_sio_decode("9", 1, &p, NULL), -1);
    rc_sio_packet_dispose(&p);
}

/* ---- every split point ------------------------------------------------------------------ */

static const char *const valid_inputs[] = {
    "0", "0/admin,", "0/admin,{\"token\":\"abc\",\"n\":[1,2.5e-3,true,false,null]}",
    "1/chat,", "2[\"hello\",\"y\"]", "21[\"hello\",\"y\"]", "2/chat,7[\"ev\",{}]",
    "2[\"\xc3\xa9\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\",-0.5E+2,{\"a\":{\"b\":[]}}]",
    "31[\"ack-y\"]", "3/chat,7[]", "4{\"message\":\"Invalid namespace\"}", "4\"legacy\"",
    "52-[\"b\",{\"_placeholder\":true,\"num\":0},{\"x\":{\"_placeholder\":true,\"num\":1}}]",
    "52-/chat,789[\"b\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    "62-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    "2[1]", "2[\"t\",true,false]", "2[\"x\",null]", "2[\"x\",123]", "4/x,\"r\"",
};

static void test_every_prefix(void **state)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(valid_inputs); i++) {
        const char *s = valid_inputs[i];
        size_t n = strlen(s);
        for (size_t k = 0; k <= n; k++) {
            decoded d = decode_n(s, k);
            if (k == n && d.rc != 0) fail_msg("\"%s\" rejected: %s", s, d.err);
            assert_true(d.rc == 0 || d.rc == -1);
            if (d.rc == -1) {
                assert_non_null(d.err);
                assert_null(d.p.payload);
            } else {
                assert_true(d.p.type >= RC_SIO_CONNECT && d.p.type <= RC_SIO_BINARY_ACK);
            }
            /* The namespace is the static "/" or a slice of this input. */
            if (d.p.nsp.ptr < d.in || d.p.nsp.ptr >= d.in + k) {
                assert_nsp(&d.p, "/");
            } else {
                assert_true(d.p.nsp.ptr + d.p.nsp.len <= d.in + k);
            }
            /* Packets with a JSON array or string payload only decode when complete. */
            if (k < n && d.rc == 0) {
                assert_true(s[0] == '0' || s[0] == '1');
            }
            rc_sio_packet_dispose(&d.p);
        }
    }
}

/* ---- encoding --------------------------------------------------------------------------- */

static void expect_header(int type, const char *nsp, long long ack, int att, const char *want)
{
    char buf[RC_SIO_HEADER_MAX + 64];
    memset(buf, 'X', sizeof(buf));
    size_t n = rc_sio_encode_header(buf, type, nsp, ack, att);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(buf[n], 'X');  /* not NUL-terminated, nothing written past n */
    assert_true(n <= RC_SIO_HEADER_MAX + (nsp ? strlen(nsp) : 0));
}

static void test_encode_header(void **state)
{
    expect_header(RC_SIO_EVENT, "/", -1, 0, "2");
    expect_header(RC_SIO_EVENT, NULL, -1, 0, "2");
    expect_header(RC_SIO_EVENT, "", -1, 0, "2");
    expect_header(RC_SIO_EVENT, "/chat", 12, 0, "2/chat,12");
    expect_header(RC_SIO_EVENT, "/", 0, 0, "20");
    expect_header(RC_SIO_BINARY_EVENT, "/", -1, 2, "52-");
    expect_header(RC_SIO_BINARY_EVENT, "/chat", 789, 2, "52-/chat,789");
    expect_header(RC_SIO_BINARY_ACK, "/", 789, 2, "62-789");
    expect_header(RC_SIO_BINARY_ACK, "/", 0, 10, "610-0");
    expect_header(RC_SIO_CONNECT, "/admin", -1, 0, "0/admin,");
    expect_header(RC_SIO_CONNECT, "/", -1, 0, "0");
    expect_header(RC_SIO_DISCONNECT, "/chat", -1, 0, "1/chat,");
    expect_header(RC_SIO_ACK, "/chat", 7, 0, "3/chat,7");
    expect_header(RC_SIO_CONNECT_ERROR, "/nonexistent", -1, 0, "4/nonexistent,");
    expect_header(RC_SIO_ACK, "/", LLONG_MAX, 0, "39223372036854775807");
    expect_header(RC_SIO_BINARY_ACK, "/n", LLONG_MAX, INT_MAX, "62147483647-/n,9223372036854775807");
    expect_header(RC_SIO_EVENT, "/", -1, -3, "2");
}

/* Header + printed payload decodes back to the same packet. */
static void test_encode_decode_round_trip(void **state)
{
    static const struct {
        int type;
        const char *nsp;
        long long ack;
        int att;
        const char *json;
    } cases[] = {
        {RC_SIO_CONNECT, "/admin", -1, 0, ""},
        {RC_SIO_CONNECT, "/", -1, 0, "{\"sid\":\"abc\"}"},
        {RC_SIO_DISCONNECT, "/chat", -1, 0, ""},
        {RC_SIO_EVENT, "/", 0, 0, "[\"hello\",1]"},
        {RC_SIO_EVENT, "/chat", 999999999999999LL, 0, "[7]"},
        {RC_SIO_ACK, "/chat", 12, 0, "[]"},
        {RC_SIO_CONNECT_ERROR, "/x", -1, 0, "{\"message\":\"no\"}"},
        {RC_SIO_BINARY_EVENT, "/chat", 789, 2,
         "[\"b\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"},
        {RC_SIO_BINARY_ACK, "/", 3, 1, "[{\"_placeholder\":true,\"num\":0}]"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        char buf[RC_SIO_HEADER_MAX + 256];
        size_t n = rc_sio_encode_header(buf, cases[i].type, cases[i].nsp, cases[i].ack,
                                        cases[i].att);
        size_t jl = strlen(cases[i].json);
        memcpy(buf + n, cases[i].json, jl);
        decoded d = decode_n(buf, n + jl);
        assert_int_equal(d.rc, 0);
        assert_int_equal(d.p.type, cases[i].type);
        assert_nsp(&d.p, cases[i].nsp);
        assert_int_equal(d.p.ack_id, cases[i].ack);
        assert_int_equal(d.p.attachments, cases[i].att);
        if (cases[i].att) {
            assert_int_equal(rc_sio_count_placeholders(d.p.payload, d.p.attachments),
                             cases[i].att);
        }
        rc_sio_packet_dispose(&d.p);
    }
}

/* ---- placeholders ----------------------------------------------------------------------- */

static int count_in(const char *json, int attachments)
{
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    int n = rc_sio_count_placeholders(v, attachments);
    cJSON_Delete(v);
    return n;
}

static void test_placeholders(void **state)
{
    assert_int_equal(rc_sio_count_placeholders(NULL, 0), 0);
    assert_int_equal(count_in("[\"a\",1,{\"b\":[true,null]}]", 0), 0);
    assert_int_equal(count_in("[\"b\",{\"_placeholder\":true,\"num\":0},"
                              "{\"x\":{\"_placeholder\":true,\"num\":1}}]", 2), 2);
    /* Deeply nested, in objects and arrays, depth first. */
    assert_int_equal(count_in("[[[{\"a\":[{\"_placeholder\":true,\"num\":2}]}]],"
                              "{\"_placeholder\":true,\"num\":0},"
                              "{\"k\":{\"l\":{\"_placeholder\":true,\"num\":1}}}]", 3), 3);
    /* num may repeat; the caller compares the count with the attachments. */
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":0},"
                              "{\"_placeholder\":true,\"num\":0}]", 1), 2);
    /* 1.0 and 1e0 are the integer 1. */
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":1.0},"
                              "{\"_placeholder\":true,\"num\":1e0}]", 2), 2);
    /* A placeholder is replaced whole: members beside _placeholder are not visited. */
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":0,"
                              "\"x\":{\"_placeholder\":true,\"num\":9}}]", 1), 1);

    /* Not placeholders: _placeholder must be the JSON true. */
    assert_int_equal(count_in("[{\"_placeholder\":false,\"num\":0}]", 1), 0);
    assert_int_equal(count_in("[{\"_placeholder\":\"true\",\"num\":0}]", 1), 0);
    assert_int_equal(count_in("[{\"_placeholder\":1,\"num\":0}]", 1), 0);
    assert_int_equal(count_in("[{\"_Placeholder\":true,\"num\":0}]", 1), 0);
    assert_int_equal(count_in("[{\"_placeholder\":false,\"x\":{\"_placeholder\":true,\"num\":0}}]",
                              1), 1);

    /* Duplicate keys: the last one wins, as in JSON.parse. */
    assert_int_equal(count_in("[{\"_placeholder\":false,\"_placeholder\":true,\"num\":0}]", 1), 1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"_placeholder\":false,\"num\":0}]", 1), 0);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":0,\"num\":5}]", 1), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":5,\"num\":0}]", 1), 1);

    /* Malformed or out of range. */
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":2}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":0}]", 0), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":-1}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":0.5}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":\"0\"}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":null}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true}]", 2), -1);
    assert_int_equal(count_in("[{\"_placeholder\":true,\"num\":1e300}]", 2), -1);
    assert_int_equal(count_in("[1,{\"a\":{\"_placeholder\":true,\"num\":[0]}}]", 2), -1);
    /* A root that is itself a placeholder. */
    assert_int_equal(count_in("{\"_placeholder\":true,\"num\":0}", 1), 1);
}

static void test_placeholders_deep_tree(void **state)
{
    /* A tree built by hand may be deeper than anything the parser returns; the walk refuses it
     * instead of recursing without bound. */
    cJSON *root = cJSON_CreateArray(), *cur = root;
    for (int i = 0; i < CJSON_NESTING_LIMIT + 10; i++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToArray(cur, next);
        cur = next;
    }
    assert_int_equal(rc_sio_count_placeholders(root, 1), -1);
    cJSON_Delete(root);
}

/* rc_sio_json_deeper_than: containers count a level each, scalars none; a parsed tree as deep as
 * a packet may be (1,000 levels) is one over RC_BP_ARGS_MAX_DEPTH. */
static void test_json_depth(void **state)
{
    static const struct { const char *json; int depth; } cases[] = {
        {"1", 0}, {"\"x\"", 0}, {"[]", 1}, {"{}", 1}, {"[1,2]", 1}, {"[[1]]", 2}, {"[{\"a\":[]},1]", 3},
        {"[1,[2,[3]],{}]", 3}, {"{\"a\":{\"b\":{\"c\":{}}}}", 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *v = cJSON_Parse(cases[i].json);
        assert_non_null(v);
        assert_false(rc_sio_json_deeper_than(v, cases[i].depth));
        assert_int_equal(rc_sio_json_deeper_than(v, cases[i].depth - 1), cases[i].depth > 0);
        cJSON_Delete(v);
    }
    assert_false(rc_sio_json_deeper_than(NULL, 0));
    char *text = rc_malloc(2 * CJSON_NESTING_LIMIT + 1);
    memset(text, '[', CJSON_NESTING_LIMIT);
    memset(text + CJSON_NESTING_LIMIT, ']', CJSON_NESTING_LIMIT);
    text[2 * CJSON_NESTING_LIMIT] = '\0';
    cJSON *deep = cJSON_Parse(text);
    assert_non_null(deep);
    assert_true(rc_sio_json_deeper_than(deep, RC_BP_ARGS_MAX_DEPTH));
    assert_false(rc_sio_json_deeper_than(deep->child, RC_BP_ARGS_MAX_DEPTH));
    cJSON_Delete(deep);
    rc_free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_ack_id_zero_and_limits),
        cmocka_unit_test(test_connect_error),
        cmocka_unit_test(test_binary_event_and_ack),
        cmocka_unit_test(test_bad_attachments),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_bad_namespace),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_bad_payload_shape),
        cmocka_unit_test(test_reserved_names),
        cmocka_unit_test(test_dispose_is_safe),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_encode_header),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_placeholders),
        cmocka_unit_test(test_placeholders_deep_tree),
        cmocka_unit_test(test_json_depth),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
