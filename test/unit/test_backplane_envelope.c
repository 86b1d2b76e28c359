/*
 * test_backplane_envelope.c: unit tests for src/backplane_envelope.c, the JSON envelope of room
 * and namespace channels (docs/redis.md), without Redis: the exact bytes a node publishes, what
 * a node accepts and the reason it gives for everything it refuses, and a decoder that never
 * reads past its input (every prefix placed against a PROT_NONE page).
 *
 * test_backplane_redis.c covers the same envelopes end to end through a real redis-server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/backplane_envelope.h"
#include "roomcast/common.h"

/* ---- encoding ------------------------------------------------------------------------------ */

static void assert_encodes(const rc_bp_message *m, const char *origin, const char *want)
{
    bp_buf b = {0};
    assert_int_equal(bp_envelope_encode(&b, m, origin), 0);
    assert_int_equal(b.len, strlen(want));
    assert_string_equal(b.p, want);
    bp_buf_dispose(&b);
}

/* The two lines docs/redis.md gives byte for byte. */
static void test_encode_documented_bytes(void **state)
{
    static const uint8_t bin[] = {0x00, 0xff, 0x10};
    const char *except[] = {"sid-1"};
    rc_bp_bytes atts[] = {{bin, sizeof(bin)}};
    rc_bp_message emit = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "ev",
                          .args_json = "[1,\"a\"]", .except = except, .except_count = 1,
                          .id = "m1", .attachments = atts, .attachment_count = 1,
                          .origin = "ignored"};
    assert_encodes(&emit, "node-b",
                   "{\"event\":\"ev\",\"args\":[1,\"a\"],\"origin\":\"node-b\",\"except\":[\"sid-1\"],"
                   "\"id\":\"m1\",\"attachments\":[\"AP8Q\"]}");
    rc_bp_message join = {.kind = RC_BP_JOIN, .ns = "/", .target_room = "chat:42"};
    assert_encodes(&join, "node-b", "{\"op\":\"join\",\"room\":\"chat:42\",\"origin\":\"node-b\"}");
}

static void test_encode_each_kind_and_field(void **state)
{
    rc_bp_message leave = {.kind = RC_BP_LEAVE, .target_room = "x"};
    assert_encodes(&leave, "n", "{\"op\":\"leave\",\"room\":\"x\",\"origin\":\"n\"}");
    rc_bp_message disc = {.kind = RC_BP_DISCONNECT, .id = "7"};
    assert_encodes(&disc, "n", "{\"op\":\"disconnect\",\"origin\":\"n\",\"id\":\"7\"}");

    /* no arguments: "[]"; args_len 0 means "NUL-terminated"; a given length is honoured */
    rc_bp_message noargs = {.kind = RC_BP_EMIT, .event = "e"};
    assert_encodes(&noargs, "n", "{\"event\":\"e\",\"args\":[],\"origin\":\"n\"}");
    rc_bp_message strargs = {.kind = RC_BP_EMIT, .event = "e", .args_json = "[1,2]"};
    assert_encodes(&strargs, "n", "{\"event\":\"e\",\"args\":[1,2],\"origin\":\"n\"}");
    rc_bp_message lenargs = {.kind = RC_BP_EMIT, .event = "e", .args_json = "[1]garbage", .args_len = 3};
    assert_encodes(&lenargs, "n", "{\"event\":\"e\",\"args\":[1],\"origin\":\"n\"}");

    /* escaping: quote, backslash, the short escapes, other controls as \u00XX, UTF-8 as is */
    rc_bp_message esc = {.kind = RC_BP_EMIT, .event = "a\"b\\c\nd\re\tf\x01g\x1f\xc3\xa9"};
    assert_encodes(&esc, "n\x7f",
                   "{\"event\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f\xc3\xa9\",\"args\":[],"
                   "\"origin\":\"n\x7f\"}");

    /* several except ids (a NULL one is sent as ""), attachments of 0, 1 and 2 bytes */
    static const uint8_t one[] = {0xfb}, two[] = {0xfb, 0xef};
    const char *except[] = {"a", NULL, "c"};
    rc_bp_bytes atts[] = {{NULL, 0}, {one, 1}, {two, 2}};
    rc_bp_message many = {.kind = RC_BP_EMIT, .event = "e", .except = except, .except_count = 3,
                          .attachments = atts, .attachment_count = 3};
    assert_encodes(&many, "n",
                   "{\"event\":\"e\",\"args\":[],\"origin\":\"n\",\"except\":[\"a\",\"\",\"c\"],"
                   "\"attachments\":[\"\",\"+w==\",\"++8=\"]}");
    /* attachments only travel with an emit */
    rc_bp_message joinatts = {.kind = RC_BP_JOIN, .target_room = "x", .attachments = atts,
                              .attachment_count = 3};
    assert_encodes(&joinatts, "n", "{\"op\":\"join\",\"room\":\"x\",\"origin\":\"n\"}");
}

static void test_encode_refusals(void **state)
{
    bp_buf b = {0};
    rc_bp_message noevent = {.kind = RC_BP_EMIT};
    rc_bp_message emptyevent = {.kind = RC_BP_EMIT, .event = ""};
    rc_bp_message notarget = {.kind = RC_BP_JOIN};
    rc_bp_message emptytarget = {.kind = RC_BP_LEAVE, .target_room = ""};
    rc_bp_message unknown = {.kind = 42, .event = "e"};
    assert_int_equal(bp_envelope_encode(&b, &noevent, "n"), -1);
    assert_int_equal(bp_envelope_encode(&b, &emptyevent, "n"), -1);
    assert_int_equal(bp_envelope_encode(&b, &notarget, "n"), -1);
    assert_int_equal(bp_envelope_encode(&b, &emptytarget, "n"), -1);
    assert_int_equal(bp_envelope_encode(&b, &unknown, "n"), -1);
    bp_buf_dispose(&b);
}

/* ---- decoding ------------------------------------------------------------------------------ */

typedef struct refused_case {
    const char *input;
    const char *why;
} refused_case;

/* Every reason the decoder gives, and the corner each rule has (null, empty, wrong type). */
static const refused_case refused[] = {
    {"{not json", "bad JSON"},
    {"", "bad JSON"},
    {"[1,2]", "not an object"},
    {"\"s\"", "not an object"},
    {"{\"event\":\"x\"} trailing", "text after the JSON"},
    {"{\"event\":\"x\"}{}", "text after the JSON"},
    {"{\"event\":\"x\",\"origin\":5}", "origin is not a string"},
    {"{\"event\":\"x\",\"id\":{}}", "id is not a string"},
    {"{\"event\":\"x\",\"id\":true}", "id is not a string"},
    {"{\"event\":\"x\",\"except\":\"s1\"}", "except is not an array"},
    {"{\"event\":\"x\",\"except\":[1]}", "except holds a non-string"},
    {"{\"event\":\"x\",\"except\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\","
     "\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",null]}", "except holds a non-string"},
    {"{\"op\":null,\"event\":\"x\"}", "op is not a string"},
    {"{\"op\":5}", "op is not a string"},
    {"{\"op\":\"explode\"}", "unknown op"},
    {"{\"op\":\"JOIN\",\"room\":\"r\"}", "unknown op"},
    {"{\"op\":\"join\"}", "op without a room"},
    {"{\"op\":\"leave\",\"room\":null}", "op without a room"},
    {"{\"op\":\"join\",\"room\":\"\"}", "op without a room"},
    {"{\"op\":\"join\",\"room\":5}", "op without a room"},
    {"{\"data\":1}", "event must be a non-empty string"},
    {"{\"event\":null}", "event must be a non-empty string"},
    {"{\"event\":\"\"}", "event must be a non-empty string"},
    {"{\"event\":7}", "event must be a non-empty string"},
    {"{\"event\":\"x\",\"args\":{}}", "args is not an array"},
    {"{\"event\":\"x\",\"args\":null}", "args is not an array"},
    {"{\"event\":\"x\",\"attachments\":\"AP8Q\"}", "attachments is not an array"},
    {"{\"event\":\"x\",\"attachments\":[\"AP8Q\",1]}", "attachment is not a string"},
    {"{\"event\":\"x\",\"attachments\":[\"!!!!\"]}", "attachment is not base64"},
    {"{\"event\":\"x\",\"attachments\":[\"AP8\"]}", "attachment is not base64"},
    {"{\"event\":\"x\",\"attachments\":[\"A===\"]}", "attachment is not base64"},
    {"{\"event\":\"x\",\"attachments\":[\"AA=A\"]}", "attachment is not base64"},
    /* nothing is guessed: unknown, repeated or misplaced keys refuse the whole message */
    {"{\"event\":\"x\",\"rooms\":[\"r\"]}", "unknown field"},
    {"{\"Event\":\"x\"}", "unknown field"},
    {"{\"event\":\"x\",\"event\":\"y\"}", "duplicate field"},
    {"{\"event\":\"x\",\"data\":1,\"data\":2}", "duplicate field"},
    {"{\"event\":\"x\",\"room\":\"elsewhere\"}", "field does not fit the message"},
    {"{\"op\":\"join\",\"room\":\"r\",\"event\":\"x\"}", "field does not fit the message"},
    {"{\"op\":\"join\",\"room\":\"r\",\"data\":1}", "field does not fit the message"},
    {"{\"op\":\"disconnect\",\"room\":\"r\"}", "field does not fit the message"},
    {"{\"event\":\"x\",\"args\":[1],\"data\":9}", "data and args both given"},
    /* ids that went through a double are refused, never rounded */
    {"{\"event\":\"x\",\"id\":0.5}", "id is a number beyond 2^53 or not an integer"},
    {"{\"event\":\"x\",\"id\":9007199254740993}", "id is a number beyond 2^53 or not an integer"},
    {"{\"event\":\"x\",\"id\":1e300}", "id is a number beyond 2^53 or not an integer"},
    /* what socket.io-client cannot parse (it would drop every recipient) */
    {"{\"event\":\"connect\"}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"disconnect\",\"data\":1}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"newListener\"}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"removeListener\"}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"connect_error\"}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"disconnecting\"}", "reserved event name (socket.io-client would drop the connection)"},
    {"{\"event\":\"b\",\"attachments\":[\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\",\"\"]}",
     "more than 10 attachments"},
    {"{\"event\":\"b\",\"args\":[{\"_placeholder\":true,\"num\":1}],\"attachments\":[\"AP8Q\"]}",
     "placeholder out of range or malformed"},
    {"{\"event\":\"b\",\"data\":{\"f\":{\"_placeholder\":true,\"num\":-1}},\"attachments\":[\"AP8Q\"]}",
     "placeholder out of range or malformed"},
    {"{\"event\":\"b\",\"args\":[{\"_placeholder\":true,\"num\":0.5}],\"attachments\":[\"AP8Q\"]}",
     "placeholder out of range or malformed"},
    {"{\"event\":\"b\",\"args\":[{\"_placeholder\":true}],\"attachments\":[\"AP8Q\"]}",
     "placeholder out of range or malformed"},
    /* the order of the checks decides which reason is given */
    {"{\"origin\":5,\"id\":{},\"event\":7}", "origin is not a string"},
    {"{\"op\":\"join\",\"event\":\"x\",\"args\":5}", "op without a room"},
    {"{\"id\":{},\"bogus\":1}", "unknown field"},
};

static void test_decode_refusals(void **state)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(refused); i++) {
        bp_envelope env;
        int v = bp_envelope_decode(&env, refused[i].input, strlen(refused[i].input), "me");
        if (v != BP_ENVELOPE_INVALID || !env.why || strcmp(env.why, refused[i].why) != 0)
            fail_msg("%s: got %d \"%s\", want \"%s\"", refused[i].input, v, env.why ? env.why : "",
                     refused[i].why);
        bp_envelope_dispose(&env);
    }
}

/* The key at fault is named, for the log. */
static void test_decode_refusal_field(void **state)
{
    static const struct {
        const char *input, *field;
    } cases[] = {
        {"{\"event\":\"x\",\"to\":\"r\"}", "to"},
        {"{\"event\":\"x\",\"id\":\"a\",\"id\":\"b\"}", "id"},
        {"{\"event\":\"x\",\"room\":\"r\"}", "room"},
        {"{\"op\":\"leave\",\"room\":\"r\",\"attachments\":[]}", "attachments"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        bp_envelope env;
        assert_int_equal(bp_envelope_decode(&env, cases[i].input, strlen(cases[i].input), "me"),
                         BP_ENVELOPE_INVALID);
        assert_non_null(env.field);
        assert_string_equal(env.field, cases[i].field);
        bp_envelope_dispose(&env);
    }
}

/* Our own echo is recognised before any later field is looked at. */
static void test_decode_own_echo(void **state)
{
    static const char *const own[] = {
        "{\"event\":\"x\",\"origin\":\"me\"}",
        "{\"origin\":\"me\",\"id\":{},\"except\":5,\"op\":\"explode\"}",
        "{\"origin\":\"me\"}",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(own); i++) {
        bp_envelope env;
        assert_int_equal(bp_envelope_decode(&env, own[i], strlen(own[i]), "me"), BP_ENVELOPE_OWN);
        bp_envelope_dispose(&env);
    }
}

static void decode_ok(bp_envelope *env, const char *input)
{
    int v = bp_envelope_decode(env, input, strlen(input), "me");
    if (v != BP_ENVELOPE_OK) fail_msg("%s: got %d \"%s\"", input, v, env->why ? env->why : "");
    assert_null(env->msg.ns);
    assert_null(env->msg.room);
}

static void test_decode_emit(void **state)
{
    bp_envelope env;

    decode_ok(&env, "{\"event\":\"task_created\",\"data\":{\"id\":1,\"title\":\"Live Task\"}}");
    assert_int_equal(env.msg.kind, RC_BP_EMIT);
    assert_string_equal(env.msg.event, "task_created");
    assert_string_equal(env.msg.args_json, "[{\"id\":1,\"title\":\"Live Task\"}]");
    assert_int_equal(env.msg.args_len, strlen(env.msg.args_json));
    assert_null(env.msg.origin);
    assert_null(env.msg.id);
    assert_int_equal(env.msg.except_count, 0);
    assert_int_equal(env.msg.attachment_count, 0);
    bp_envelope_dispose(&env);

    /* null origin/id/except/attachments read as absent; whitespace around */
    decode_ok(&env, " \t{\"event\":\"x\",\"args\":[1,\"two\"],\"origin\":null,\"id\":null,"
                    "\"except\":null,\"attachments\":null}\r\n ");
    assert_string_equal(env.msg.args_json, "[1,\"two\"]");
    assert_null(env.msg.origin);
    assert_null(env.msg.id);
    bp_envelope_dispose(&env);

    /* neither args nor data: no arguments; "data":null is one null argument */
    decode_ok(&env, "{\"event\":\"x\"}");
    assert_string_equal(env.msg.args_json, "[]");
    bp_envelope_dispose(&env);
    decode_ok(&env, "{\"event\":\"x\",\"data\":null}");
    assert_string_equal(env.msg.args_json, "[null]");
    bp_envelope_dispose(&env);

    /* a numeric id is read as text; origin and except come through */
    decode_ok(&env, "{\"event\":\"n\",\"data\":5,\"id\":17,\"origin\":\"other\",\"except\":[\"s1\",\"s2\"]}");
    assert_string_equal(env.msg.id, "17");
    assert_string_equal(env.msg.origin, "other");
    assert_int_equal(env.msg.except_count, 2);
    assert_string_equal(env.msg.except[0], "s1");
    assert_string_equal(env.msg.except[1], "s2");
    bp_envelope_dispose(&env);
    decode_ok(&env, "{\"event\":\"n\",\"id\":9007199254740991}");
    assert_string_equal(env.msg.id, "9007199254740991");
    bp_envelope_dispose(&env);
    decode_ok(&env, "{\"event\":\"n\",\"id\":-42}");
    assert_string_equal(env.msg.id, "-42");
    bp_envelope_dispose(&env);

    /* an event name that is reserved only in another case is fine; so are placeholders without
     * attachments (plain data to the client) */
    decode_ok(&env, "{\"event\":\"Connect\",\"data\":{\"_placeholder\":true,\"num\":99}}");
    assert_int_equal(env.msg.attachment_count, 0);
    bp_envelope_dispose(&env);

    /* more except ids than fit inline */
    decode_ok(&env, "{\"event\":\"x\",\"except\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\","
                    "\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\",\"r\"]}");
    assert_int_equal(env.msg.except_count, 18);
    assert_string_equal(env.msg.except[17], "r");
    bp_envelope_dispose(&env);
}

static void test_decode_attachments(void **state)
{
    bp_envelope env;
    decode_ok(&env, "{\"event\":\"b\",\"args\":[{\"_placeholder\":true,\"num\":0}],"
                    "\"attachments\":[\"AP8Q\",\"\",\"+w==\",\"AB==\"]}");
    assert_int_equal(env.msg.attachment_count, 4);
    assert_int_equal(env.msg.attachments[0].len, 3);
    assert_memory_equal(env.msg.attachments[0].data, "\x00\xff\x10", 3);
    assert_int_equal(env.msg.attachments[1].len, 0);
    assert_int_equal(env.msg.attachments[2].len, 1);
    assert_int_equal(env.msg.attachments[2].data[0], 0xfb);
    /* bits set before the padding are accepted (unlike Engine.IO's decoder) and dropped */
    assert_int_equal(env.msg.attachments[3].len, 1);
    assert_int_equal(env.msg.attachments[3].data[0], 0x00);
    bp_envelope_dispose(&env);

    decode_ok(&env, "{\"event\":\"b\",\"attachments\":[]}");
    assert_int_equal(env.msg.attachment_count, 0);
    bp_envelope_dispose(&env);
}

static void test_decode_ops(void **state)
{
    bp_envelope env;
    decode_ok(&env, "{\"op\":\"join\",\"room\":\"chat:42\"}");
    assert_int_equal(env.msg.kind, RC_BP_JOIN);
    assert_string_equal(env.msg.target_room, "chat:42");
    assert_null(env.msg.event);
    assert_null(env.msg.args_json);
    bp_envelope_dispose(&env);

    decode_ok(&env, "{\"op\":\"leave\",\"room\":\"r\",\"id\":\"m\",\"except\":[\"s\"]}");
    assert_int_equal(env.msg.kind, RC_BP_LEAVE);
    assert_string_equal(env.msg.id, "m");
    assert_int_equal(env.msg.except_count, 1);
    bp_envelope_dispose(&env);

    decode_ok(&env, "{\"op\":\"disconnect\",\"origin\":\"n2\"}");
    assert_int_equal(env.msg.kind, RC_BP_DISCONNECT);
    assert_null(env.msg.target_room);
    bp_envelope_dispose(&env);
}

/* What one node publishes, another decodes into the same message. */
static void test_round_trip(void **state)
{
    static const uint8_t bin[] = {1, 2, 3, 4, 5};
    const char *except[] = {"s1", "s\"2"};
    rc_bp_bytes atts[] = {{bin, sizeof(bin)}, {bin, 1}};
    rc_bp_message m = {.kind = RC_BP_EMIT, .event = "ev\n1", .args_json = "[1,\"a\",{\"b\":null}]",
                       .except = except, .except_count = 2, .id = "m1", .attachments = atts,
                       .attachment_count = 2};
    bp_buf b = {0};
    bp_envelope env;
    assert_int_equal(bp_envelope_encode(&b, &m, "node-b"), 0);
    assert_int_equal(bp_envelope_decode(&env, b.p, b.len, "node-a"), BP_ENVELOPE_OK);
    assert_string_equal(env.msg.event, "ev\n1");
    assert_string_equal(env.msg.args_json, m.args_json);
    assert_string_equal(env.msg.origin, "node-b");
    assert_string_equal(env.msg.id, "m1");
    assert_int_equal(env.msg.except_count, 2);
    assert_string_equal(env.msg.except[1], "s\"2");
    assert_int_equal(env.msg.attachment_count, 2);
    assert_memory_equal(env.msg.attachments[0].data, bin, sizeof(bin));
    assert_int_equal(env.msg.attachments[1].len, 1);
    bp_envelope_dispose(&env);
    /* ... and the publisher drops it as its own */
    assert_int_equal(bp_envelope_decode(&env, b.p, b.len, "node-b"), BP_ENVELOPE_OWN);
    bp_envelope_dispose(&env);
    bp_buf_dispose(&b);
}

/* Every prefix of a valid envelope, ending where a PROT_NONE page begins: refused, never read past. */
static void test_decode_every_prefix_guarded(void **state)
{
    static const char full[] = "{\"event\":\"e\",\"args\":[1,\"a\"],\"origin\":\"o\",\"except\":[\"s\"],"
                               "\"id\":\"m\",\"attachments\":[\"AP8Q\"]}";
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(mprotect(mem + page, page, PROT_NONE), 0);
    size_t n = sizeof(full) - 1;
    for (size_t len = 0; len <= n; len++) {
        char *p = mem + page - len;
        memcpy(p, full, len);
        bp_envelope env;
        int v = bp_envelope_decode(&env, p, len, "me");
        assert_int_equal(v, len == n ? BP_ENVELOPE_OK : BP_ENVELOPE_INVALID);
        bp_envelope_dispose(&env);
    }
    munmap(mem, 2 * page);
}

/* "offset" (connection state recovery, docs/recovery.md): encoded after "id"; a kept emit comes
 * back to its own node (not dropped as an echo); anything but a stream id is refused. */
static void test_offset(void **state)
{
    (void)state;
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "ev", .args_json = "[1]",
                       .id = "m1", .offset = "1700000000000-3"};
    assert_encodes(&m, "n1", "{\"event\":\"ev\",\"args\":[1],\"origin\":\"n1\",\"id\":\"m1\","
                             "\"offset\":\"1700000000000-3\"}");
    bp_envelope env;
    const char *own = "{\"event\":\"ev\",\"args\":[1],\"origin\":\"n1\",\"offset\":\"17-0\"}";
    assert_int_equal(bp_envelope_decode(&env, own, strlen(own), "n1"), BP_ENVELOPE_OK);
    assert_string_equal(env.msg.offset, "17-0");
    bp_envelope_dispose(&env);
    const char *echo = "{\"event\":\"ev\",\"args\":[1],\"origin\":\"n1\"}";
    assert_int_equal(bp_envelope_decode(&env, echo, strlen(echo), "n1"), BP_ENVELOPE_OWN);
    bp_envelope_dispose(&env);
    static const char *const bad[] = {
        "{\"event\":\"ev\",\"offset\":\"x\"}", "{\"event\":\"ev\",\"offset\":\"17\"}",
        "{\"event\":\"ev\",\"offset\":\"17-\"}", "{\"event\":\"ev\",\"offset\":7}",
        "{\"op\":\"disconnect\",\"offset\":\"1-1\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(bp_envelope_decode(&env, bad[i], strlen(bad[i]), "n1"), BP_ENVELOPE_INVALID);
        bp_envelope_dispose(&env);
    }
    assert_int_equal(bp_offset_valid("1-1"), 1);
    assert_int_equal(bp_offset_valid("123456789012345678901-1"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_documented_bytes),
        cmocka_unit_test(test_encode_each_kind_and_field),
        cmocka_unit_test(test_encode_refusals),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_decode_refusal_field),
        cmocka_unit_test(test_decode_own_echo),
        cmocka_unit_test(test_decode_emit),
        cmocka_unit_test(test_decode_attachments),
        cmocka_unit_test(test_decode_ops),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_every_prefix_guarded),
        cmocka_unit_test(test_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
