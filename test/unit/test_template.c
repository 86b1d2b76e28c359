/*
 * test_template.c: the template engine (src/template.c): typed whole-string substitution,
 * interpolation, alternatives, array indexes, missing values, {{ escapes, strict names, compile
 * errors with their paths, and lazy claims.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/common.h"
#include "roomcast/template.h"

static cJSON *g_args, *g_auth;

static rc_tpl_ctx make_ctx(void)
{
    rc_tpl_ctx ctx = {0};
    ctx.args = g_args;
    ctx.auth = g_auth;
    ctx.event = "chat:send";
    ctx.ns = "/chat";
    ctx.sid = "SID1";
    ctx.user = "42";
    ctx.claims_json = "{\"sub\":\"42\",\"rooms\":[\"project_*\",\"chat:1\"],\"org\":{\"id\":7}}";
    return ctx;
}

static int setup(void **state)
{
    g_args = cJSON_Parse("[{\"room\":\"r1\",\"n\":3,\"f\":1.5,\"ok\":true,\"nil\":null,\"empty\":\"\","
                         "\"items\":[\"a\",{\"b\":\"c\"}],\"obj\":{\"x\":1}},\"second\"]");
    g_auth = cJSON_Parse("{\"token\":\"t\",\"device\":\"phone\"}");
    return 0;
}

static int teardown(void **state)
{
    cJSON_Delete(g_args);
    cJSON_Delete(g_auth);
    return 0;
}

static rc_tpl *compile_text(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    rc_config_errors errs = {0};
    rc_tpl *t = rc_tpl_compile(j, "t", &errs);
    if (!t) {
        for (size_t i = 0; i < errs.count; i++) print_error("%s\n", errs.items[i]);
    }
    rc_config_errors_dispose(&errs);
    cJSON_Delete(j);
    return t;
}

/* Evaluates template `json` and returns its compact JSON ("<missing>" when missing). */
static char *eval_json(const char *json)
{
    rc_tpl *t = compile_text(json);
    assert_non_null(t);
    rc_tpl_ctx ctx = make_ctx();
    cJSON *v = rc_tpl_eval(t, &ctx);
    char *out = v ? cJSON_PrintUnformatted(v) : strdup("<missing>");
    cJSON_Delete(v);
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
    return out;
}

#define assert_eval(tpl, expected)                                                                 \
    do {                                                                                           \
        char *got_ = eval_json(tpl);                                                               \
        assert_string_equal(got_, expected);                                                       \
        free(got_);                                                                                \
    } while (0)

static void test_typed_whole_string(void **state)
{
    assert_eval("\"{data}\"", "{\"room\":\"r1\",\"n\":3,\"f\":1.5,\"ok\":true,\"nil\":null,\"empty\":\"\","
                              "\"items\":[\"a\",{\"b\":\"c\"}],\"obj\":{\"x\":1}}");
    assert_eval("\"{data.n}\"", "3");
    assert_eval("\"{data.ok}\"", "true");
    assert_eval("\"{data.nil}\"", "null");
    assert_eval("\"{data.obj}\"", "{\"x\":1}");
    assert_eval("\"{args}\"", "[{\"room\":\"r1\",\"n\":3,\"f\":1.5,\"ok\":true,\"nil\":null,\"empty\":\"\","
                              "\"items\":[\"a\",{\"b\":\"c\"}],\"obj\":{\"x\":1}},\"second\"]");
    assert_eval("\"{args.1}\"", "\"second\"");
    assert_eval("\"{user}\"", "\"42\"");
    assert_eval("\"{sid}\"", "\"SID1\"");
    assert_eval("\"{ns}\"", "\"/chat\"");
    assert_eval("\"{event}\"", "\"chat:send\"");
    assert_eval("\"{auth.device}\"", "\"phone\"");
    assert_eval("\"{claims.org}\"", "{\"id\":7}");
    assert_eval("\"{claims.rooms}\"", "[\"project_*\",\"chat:1\"]");
}

static void test_interpolation(void **state)
{
    assert_eval("\"room:{data.room}\"", "\"room:r1\"");
    assert_eval("\"{user}-{data.n}-{data.f}\"", "\"42-3-1.5\"");
    assert_eval("\"x{data.ok}{data.nil}\"", "\"xtruenull\"");
    assert_eval("\"o={data.obj}\"", "\"o={\\\"x\\\":1}\"");
    assert_eval("\"[{data.missing}]\"", "\"[]\"");
    assert_eval("\"{claims.org.id}/{claims.rooms.1}\"", "\"7/chat:1\"");
}

static void test_arrays_by_index(void **state)
{
    assert_eval("\"{data.items.0}\"", "\"a\"");
    assert_eval("\"{data.items.1.b}\"", "\"c\"");
    assert_eval("\"{data.items.2}\"", "<missing>");
    assert_eval("\"{args.0.items.1}\"", "{\"b\":\"c\"}");
    assert_eval("\"{data.items.x}\"", "<missing>");
}

static void test_alternatives(void **state)
{
    assert_eval("\"{data.nope|data.room}\"", "\"r1\"");
    assert_eval("\"{data.nil|data.n}\"", "3");
    assert_eval("\"{data.room|data.n}\"", "\"r1\"");
    assert_eval("\"{data.nil|data.nope}\"", "null");
    assert_eval("\"{data.a|data.b}\"", "<missing>");
    assert_eval("\"id-{data.a|user}\"", "\"id-42\"");
}

static void test_missing_values(void **state)
{
    assert_eval("\"{data.missing}\"", "<missing>");
    assert_eval("{\"a\":\"{data.missing}\",\"b\":\"{user}\"}", "{\"b\":\"42\"}");
    assert_eval("[\"{data.missing}\",1]", "[null,1]");
    assert_eval("\"{room}\"", "<missing>");
    assert_eval("\"{error}\"", "<missing>");
}

static void test_escape_and_constants(void **state)
{
    assert_eval("\"{{user}\"", "\"{user}\"");
    assert_eval("\"a{{b}}\"", "\"a{b}}\"");
    assert_eval("\"}\"", "\"}\"");
    assert_eval("\"{{{user}\"", "\"{42\"");
    assert_eval("{\"ok\":true,\"n\":[1,2]}", "{\"ok\":true,\"n\":[1,2]}");
    assert_eval("12", "12");
    assert_eval("null", "null");
    assert_eval("{\"nested\":{\"u\":\"{user}\",\"k\":[\"{data.n}\",\"lit\"]}}",
                "{\"nested\":{\"u\":\"42\",\"k\":[3,\"lit\"]}}");

    rc_tpl *t = compile_text("\"plain {{text\"");
    assert_string_equal(rc_tpl_const_string(t), "plain {text");
    assert_false(rc_tpl_is_lookup(t));
    rc_tpl_free(t);
    t = compile_text("\"{data}\"");
    assert_null(rc_tpl_const_string(t));
    assert_true(rc_tpl_is_lookup(t));
    assert_false(rc_tpl_reads(t, "claims"));
    assert_true(rc_tpl_reads(t, "data"));
    rc_tpl_free(t);
    t = compile_text("{\"x\":[\"{claims.a}\", \"u{user|sid}\"]}");
    assert_true(rc_tpl_reads(t, "claims"));
    assert_true(rc_tpl_reads(t, "sid"));
    assert_false(rc_tpl_reads(t, "data"));
    assert_false(rc_tpl_reads(t, "nonsense"));
    static const char *const only_user[] = {"user", "sid", NULL};
    assert_true(rc_tpl_roots_other_than(t, only_user) != 0);
    static const char *const all3[] = {"user", "sid", "claims", NULL};
    assert_int_equal(rc_tpl_roots_other_than(t, all3), 0);
    rc_tpl_free(t);
}

static void test_now(void **state)
{
    rc_tpl *t = compile_text("\"{now}\"");
    rc_tpl *iso = compile_text("\"{nowIso}\"");
    rc_tpl_ctx ctx = make_ctx();
    uint64_t before = rc_now_wall_ms();
    cJSON *v = rc_tpl_eval(t, &ctx);
    assert_true(cJSON_IsNumber(v));
    assert_true(v->valuedouble >= (double)before && v->valuedouble < (double)before + 5000);
    cJSON *s = rc_tpl_eval(iso, &ctx);
    assert_true(cJSON_IsString(s));
    /* 2026-01-28T11:30:00.123Z */
    const char *x = s->valuestring;
    assert_int_equal(strlen(x), 24);
    assert_int_equal(x[4], '-');
    assert_int_equal(x[10], 'T');
    assert_int_equal(x[19], '.');
    assert_int_equal(x[23], 'Z');
    /* the same instant in both forms */
    char ms[4];
    snprintf(ms, sizeof(ms), "%03u", (unsigned)((uint64_t)v->valuedouble % 1000));
    assert_memory_equal(x + 20, ms, 3);
    cJSON_Delete(v);
    cJSON_Delete(s);
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
    rc_tpl_free(iso);
}

static void test_text_and_truthy(void **state)
{
    static const struct { const char *tpl; int truthy; const char *text; } cases[] = {
        {"\"{data.room}\"", 1, "r1"},   {"\"{data.n}\"", 1, "3"},      {"\"{data.ok}\"", 1, "true"},
        {"\"{data.nil}\"", 0, "null"},  {"\"{data.empty}\"", 0, ""},  {"\"{data.missing}\"", 0, ""},
        {"\"{data.items}\"", 1, "[\"a\",{\"b\":\"c\"}]"},               {"false", 0, "false"},
        {"0", 0, "0"},                  {"\"\"", 0, ""},               {"\"x{data.missing}\"", 1, "x"},
        {"\"{data.missing}{data.empty}\"", 0, ""},                      {"{}", 1, "{}"},
        {"\"{user}\"", 1, "42"},        {"\"{room}\"", 0, ""},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        rc_tpl *t = compile_text(cases[i].tpl);
        rc_tpl_ctx ctx = make_ctx();
        char *heap;
        assert_int_equal(rc_tpl_truthy(t, &ctx), cases[i].truthy);
        assert_string_equal(rc_tpl_text(t, &ctx, &heap), cases[i].text);
        free(heap);
        rc_tpl_ctx_dispose(&ctx);
        rc_tpl_free(t);
    }
}

static void test_names(void **state)
{
    static const struct { const char *tpl; const char *name; } cases[] = {
        {"\"{data.room}\"", "r1"},
        {"\"project_{data.n}\"", "project_3"},
        {"\"{data}\"", NULL},             /* whole-string form must find a string */
        {"\"{data.n}\"", NULL},
        {"\"x{data.ok}\"", NULL},         /* booleans, null, objects do not make names */
        {"\"x{data.nil}\"", NULL},
        {"\"x{data.obj}\"", NULL},
        {"\"x{data.missing}\"", NULL},
        {"\"{data.empty}\"", NULL},       /* empty */
        {"\"lit\"", "lit"},
        {"\"{data.missing|data.room}\"", "r1"},
        {"\"x{data.f}\"", NULL},         /* 1.5: not an id number, never rounded */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        rc_tpl *t = compile_text(cases[i].tpl);
        rc_tpl_ctx ctx = make_ctx();
        char buf[RC_TPL_NAME_MAX + 1];
        int n = rc_tpl_name(t, &ctx, buf);
        if (cases[i].name) {
            assert_int_equal(n, (int)strlen(cases[i].name));
            assert_string_equal(buf, cases[i].name);
        } else {
            assert_int_equal(n, -1);
        }
        rc_tpl_ctx_dispose(&ctx);
        rc_tpl_free(t);
    }
    /* 200 bytes is the limit */
    char long_json[300];
    cJSON *arg = cJSON_CreateArray();
    char s200[201], s201[202];
    memset(s200, 'a', 200); s200[200] = 0;
    memset(s201, 'a', 201); s201[201] = 0;
    cJSON_AddItemToArray(arg, cJSON_CreateString(s200));
    cJSON_AddItemToArray(arg, cJSON_CreateString(s201));
    snprintf(long_json, sizeof(long_json), "\"{args.0}\"");
    rc_tpl *t0 = compile_text(long_json);
    rc_tpl *t1 = compile_text("\"{args.1}\"");
    rc_tpl *t2 = compile_text("\"x{args.0}\"");
    rc_tpl_ctx ctx = {.args = arg};
    char buf[RC_TPL_NAME_MAX + 1];
    assert_int_equal(rc_tpl_name(t0, &ctx, buf), 200);
    assert_int_equal(rc_tpl_name(t1, &ctx, buf), -1);
    assert_int_equal(rc_tpl_name(t2, &ctx, buf), -1);
    rc_tpl_free(t0);
    rc_tpl_free(t1);
    rc_tpl_free(t2);
    cJSON_Delete(arg);
}

static int collect(void *arg, const char *s)
{
    char *out = arg;
    strcat(out, s);
    strcat(out, ";");
    return 0;
}

static int stop_at_chat(void *arg, const char *s)
{
    return strncmp(s, "chat", 4) == 0 ? 7 : 0;
}

static void test_each_string(void **state)
{
    static const struct { const char *tpl; const char *strings; } cases[] = {
        {"\"{claims.rooms}\"", "project_*;chat:1;"},
        {"\"p_{user}\"", "p_42;"},
        {"\"{user}\"", "42;"},
        {"\"{claims.org}\"", ""},
        {"\"{claims.nope}\"", ""},
        {"[\"a\",\"{user}\",3]", "a;42;"},
        {"\"lit\"", "lit;"},
        {"\"p_{claims.rooms}\"", "p_project_*;p_chat:1;"},        /* one glob per element */
        {"\"{user}:{claims.rooms}:{claims.org.id}\"", "42:project_*:7;42:chat:1:7;"},
        {"\"x{claims.nope}\"", ""},                               /* missing: no glob at all */
        {"\"x{claims.org}\"", ""},                                /* objects make no glob */
        {"\"x{claims.sub}{claims.nope}\"", ""},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        rc_tpl *t = compile_text(cases[i].tpl);
        rc_tpl_ctx ctx = make_ctx();
        char out[256] = "";
        assert_int_equal(rc_tpl_each_string(t, &ctx, collect, out), 0);
        assert_string_equal(out, cases[i].strings);
        rc_tpl_ctx_dispose(&ctx);
        rc_tpl_free(t);
    }
    rc_tpl *t = compile_text("\"{claims.rooms}\"");
    rc_tpl_ctx ctx = make_ctx();
    assert_int_equal(rc_tpl_each_string(t, &ctx, stop_at_chat, NULL), 7);
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
}

static void test_claims_are_lazy(void **state)
{
    rc_tpl *t = compile_text("\"{user}\"");
    rc_tpl *c = compile_text("\"{claims.sub}\"");
    rc_tpl_ctx ctx = make_ctx();
    cJSON *v = rc_tpl_eval(t, &ctx);
    cJSON_Delete(v);
    assert_int_equal(ctx.claims_parsed_, 0);
    assert_null(ctx.claims_);
    v = rc_tpl_eval(c, &ctx);
    assert_string_equal(v->valuestring, "42");
    cJSON_Delete(v);
    assert_int_equal(ctx.claims_parsed_, 1);
    assert_non_null(ctx.claims_);
    rc_tpl_ctx_dispose(&ctx);
    assert_null(ctx.claims_);
    /* bad or absent claims are simply missing */
    ctx = make_ctx();
    ctx.claims_json = "{not json";
    v = rc_tpl_eval(c, &ctx);
    assert_null(v);
    rc_tpl_ctx_dispose(&ctx);
    ctx.claims_json = NULL;
    assert_null(rc_tpl_eval(c, &ctx));
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
    rc_tpl_free(c);
}

static void test_compile_errors(void **state)
{
    static const struct { const char *tpl; const char *error; } cases[] = {
        {"\"{usr}\"", "t: unknown value 'usr' in {usr}"},
        {"\"a{\"", "t: unterminated '{' (write {{ for a literal {)"},
        {"\"{}\"", "t: empty placeholder {} (write {{ for a literal {)"},
        {"\"{data.}\"", "t: bad placeholder {data.} (write {{ for a literal {)"},
        {"\"{data..x}\"", "t: bad placeholder {data..x} (write {{ for a literal {)"},
        {"\"{data|}\"", "t: bad placeholder {data|}"},
        {"\"{ user }\"", "t: bad placeholder { user } (write {{ for a literal {)"},
        {"\"{user.x}\"", "t: 'user' has no fields in {user.x}"},
        {"\"{now.x}\"", "t: 'now' has no fields in {now.x}"},
        {"{\"a\":[1,\"{nope}\"]}", "t.a[1]: unknown value 'nope' in {nope}"},
        {"\"{user|sid|ns|event|room|error|data|args|auth}\"", "t: more than 8 alternatives"},
        {"\"{data.1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17}\"", "t: more than 16 segments"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        cJSON *j = cJSON_Parse(cases[i].tpl);
        rc_config_errors errs = {0};
        rc_tpl *t = rc_tpl_compile(j, "t", &errs);
        assert_null(t);
        assert_int_equal(errs.count, 1);
        if (strncmp(errs.items[0], cases[i].error, strlen(cases[i].error)) != 0)
            fail_msg("case %zu: got '%s', want prefix '%s'", i, errs.items[0], cases[i].error);
        rc_config_errors_dispose(&errs);
        cJSON_Delete(j);
    }
    /* NULL errs is fine */
    cJSON *j = cJSON_Parse("\"{bad}\"");
    assert_null(rc_tpl_compile(j, "t", NULL));
    cJSON_Delete(j);
}

static void test_numbers_as_text(void **state)
{
    cJSON *args = cJSON_Parse("[{\"big\":1738000000000,\"neg\":-5,\"frac\":0.1,\"huge\":1e300}]");
    rc_tpl *t = compile_text("\"{data.big}|{data.neg}|{data.frac}|{data.huge}\"");
    rc_tpl_ctx ctx = {.args = args};
    char *heap;
    assert_string_equal(rc_tpl_text(t, &ctx, &heap), "1738000000000|-5|0.1|1e+300");
    free(heap);
    rc_tpl_free(t);
    cJSON_Delete(args);
}

/* Numbers that become ids or names: exact integers up to 2^53 - 1, nothing else. */
static void test_id_numbers(void **state)
{
    static const struct { double d; const char *text; } cases[] = {
        {0, "0"}, {-0.0, "0"}, {42, "42"}, {-42, "-42"}, {1738000000000, "1738000000000"},
        {9007199254740991.0, "9007199254740991"}, {-9007199254740991.0, "-9007199254740991"},
        {9007199254740992.0, NULL},  /* 2^53: also what 9007199254740993 reads as */
        {-9007199254740992.0, NULL}, {41.6, NULL}, {0.5, NULL}, {1e300, NULL},
        {1.2345678901234568e18, NULL},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        char out[24];
        int r = rc_tpl_id_number(cases[i].d, out);
        if (cases[i].text) {
            assert_int_equal(r, 0);
            assert_string_equal(out, cases[i].text);
        } else {
            assert_int_equal(r, -1);
        }
    }
    char nan_out[24];
    assert_int_equal(rc_tpl_id_number(__builtin_nan(""), nan_out), -1);

    /* in names and allow globs: the two 19-digit ids never make one room, 2^53 + 1 never
     * becomes 2^53, a fraction is never rounded */
    cJSON *args = cJSON_Parse("[{\"a\":1234567890123456789,\"b\":1234567890123456788,"
                              "\"c\":9007199254740993,\"d\":41.6,\"e\":9007199254740991}]");
    static const struct { const char *tpl; const char *name; } names[] = {
        {"\"project_{data.a}\"", NULL}, {"\"project_{data.b}\"", NULL}, {"\"user:{data.c}\"", NULL},
        {"\"user:{data.d}\"", NULL}, {"\"user:{data.e}\"", "user:9007199254740991"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(names); i++) {
        rc_tpl *t = compile_text(names[i].tpl);
        rc_tpl_ctx ctx = {.args = args};
        char buf[RC_TPL_NAME_MAX + 1];
        int n = rc_tpl_name(t, &ctx, buf);
        if (names[i].name) assert_string_equal(buf, names[i].name);
        else assert_int_equal(n, -1);
        rc_tpl_free(t);
    }
    rc_tpl_ctx ctx = {.claims_json = "{\"projects\":[1234567890123456789,7,41.6]}"};
    rc_tpl *t = compile_text("\"project_{claims.projects}\"");
    char out[256] = "";
    assert_int_equal(rc_tpl_each_string(t, &ctx, collect, out), 0);
    assert_string_equal(out, "project_7;"); /* the others allow no room at all */
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
    cJSON_Delete(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_whole_string),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_arrays_by_index),
        cmocka_unit_test(test_alternatives),
        cmocka_unit_test(test_missing_values),
        cmocka_unit_test(test_escape_and_constants),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_text_and_truthy),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_each_string),
        cmocka_unit_test(test_claims_are_lazy),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_numbers_as_text),
        cmocka_unit_test(test_id_numbers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
