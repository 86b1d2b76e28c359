/*
 * test_log.c: src/log.c — level parsing and filtering, the text line format, JSON lines that
 * cJSON parses (escaping, UTF-8, spaces and quoted values), truncation of long lines, errno.
 * stderr is redirected to a pipe around each call and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/log.h"

/* ---- capturing stderr ----------------------------------------------------------------------- */

static int saved_stderr = -1, pipe_rd = -1;

static void capture_start(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    close(p[1]);
    pipe_rd = p[0];
}

/* Restores stderr and returns what was written (NUL-terminated, static storage). */
static const char *capture_end(size_t *len_out)
{
    static char buf[16384];
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    close(saved_stderr);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < sizeof(buf) && (n = read(pipe_rd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    close(pipe_rd);
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

/* Checks "YYYY-MM-DDTHH:MM:SS.mmmZ" at s. */
static void assert_timestamp(const char *s)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t i = 0; i < sizeof(pattern) - 1; i++) {
        if (pattern[i] == 'd') assert_true(isdigit((unsigned char)s[i]));
        else assert_int_equal(s[i], pattern[i]);
    }
}

/* Checks that [s, s+n) is well-formed UTF-8. */
static void assert_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        size_t k = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : 4;
        assert_true(*p < 0xF5 && (*p < 0x80 || *p >= 0xC2));
        assert_true((size_t)(e - p) >= k);
        for (size_t i = 1; i < k; i++) assert_int_equal(p[i] & 0xC0, 0x80);
        p += k;
    }
}

/* Parses one JSON line (which must be exactly one line) and checks the fixed fields. */
static cJSON *parse_json_line(const char *out, size_t len, const char *level, const char *event)
{
    assert_true(len > 0 && out[len - 1] == '\n');
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    assert_true(len <= 2048);
    assert_utf8(out, len);
    cJSON *j = cJSON_ParseWithLength(out, len - 1);
    if (!j) fail_msg("not JSON: %s", out);
    assert_true(cJSON_IsObject(j));
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    assert_true(cJSON_IsString(ts));
    assert_int_equal(strlen(ts->valuestring), 24);
    assert_timestamp(ts->valuestring);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "level")->valuestring, level);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "event")->valuestring, event);
    return j;
}

static const char *field(cJSON *j, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsString(v)) fail_msg("field %s missing or not a string", key);
    return v->valuestring;
}

static int field_count(cJSON *j)
{
    return cJSON_GetArraySize(j);
}

static int reset(void **state)
{
    rc_log_setup(RC_LOG_INFO, 0);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_level_parse(void **state)
{
    assert_int_equal(rc_log_level_parse("debug"), RC_LOG_DEBUG);
    assert_int_equal(rc_log_level_parse("info"), RC_LOG_INFO);
    assert_int_equal(rc_log_level_parse("warn"), RC_LOG_WARN);
    assert_int_equal(rc_log_level_parse("WARNING"), RC_LOG_WARN);
    assert_int_equal(rc_log_level_parse("Error"), RC_LOG_ERROR);
    assert_int_equal(rc_log_level_parse("verbose"), -1);
    assert_int_equal(rc_log_level_parse(""), -1);
    assert_int_equal(rc_log_level_parse(NULL), -1);
}

static int evaluated;
static const char *side_effect(void)
{
    evaluated++;
    return "x";
}

static void test_level_filtering(void **state)
{
    rc_log_setup(RC_LOG_WARN, 0);
    assert_false(rc_log_enabled(RC_LOG_DEBUG));
    assert_false(rc_log_enabled(RC_LOG_INFO));
    assert_true(rc_log_enabled(RC_LOG_WARN));
    assert_true(rc_log_enabled(RC_LOG_ERROR));

    size_t len;
    capture_start();
    rc_log(RC_LOG_INFO, "hidden", "a=%d", 1);
    rc_log_debug("hidden", "a=%s", side_effect()); /* arguments not even evaluated */
    const char *out = capture_end(&len);
    assert_int_equal(len, 0);
    assert_int_equal(evaluated, 0);

    capture_start();
    rc_log_warn("shown_warn", "a=%d", 1);
    rc_log_error("shown_error", "a=%d", 2);
    out = capture_end(&len);
    assert_non_null(strstr(out, " WARN shown_warn a=1\n"));
    assert_non_null(strstr(out, " ERROR shown_error a=2\n"));

    rc_log_setup(RC_LOG_DEBUG, 0);
    capture_start();
    rc_log_debug("shown_debug", "a=%s", side_effect());
    out = capture_end(&len);
    assert_int_equal(evaluated, 1);
    assert_non_null(strstr(out, " DEBUG shown_debug a=x\n"));

    /* out-of-range levels given to setup are clamped */
    rc_log_setup(99, 0);
    assert_false(rc_log_enabled(RC_LOG_WARN));
    assert_true(rc_log_enabled(RC_LOG_ERROR));
    rc_log_setup(-5, 0);
    assert_true(rc_log_enabled(RC_LOG_DEBUG));
}

static void test_text_format(void **state)
{
    size_t len;
    capture_start();
    rc_log(RC_LOG_INFO, "client_connected", "sid=%s ns=%s user=%s", "abc", "/chat", "u1");
    const char *out = capture_end(&len);
    assert_timestamp(out);
    assert_string_equal(out + 24, " INFO client_connected sid=abc ns=/chat user=u1\n");

    /* no pairs: the line ends after the event */
    capture_start();
    rc_log(RC_LOG_ERROR, "shutdown", "%s", "");
    out = capture_end(&len);
    assert_string_equal(out + 24, " ERROR shutdown\n");

    /* control characters cannot start a new line */
    capture_start();
    rc_log(RC_LOG_WARN, "evil", "user=%s", "a\nb\r\tc\x01");
    out = capture_end(&len);
    assert_string_equal(out + 24, " WARN evil user=a\\nb\\r\\tc\\x01\n");
}

static void test_json_basic(void **state)
{
    rc_log_setup(RC_LOG_INFO, 1);
    size_t len;
    capture_start();
    rc_log(RC_LOG_INFO, "client_connected", "sid=%s ns=%s user=%s n=%d", "abc", "/chat", "u1", 42);
    const char *out = capture_end(&len);
    cJSON *j = parse_json_line(out, len, "info", "client_connected");
    assert_string_equal(field(j, "sid"), "abc");
    assert_string_equal(field(j, "ns"), "/chat");
    assert_string_equal(field(j, "user"), "u1");
    assert_string_equal(field(j, "n"), "42"); /* numbers stay strings */
    assert_int_equal(field_count(j), 7);
    assert_memory_equal(out, "{\"ts\":\"", 7); /* ts, level, event come first */
    cJSON_Delete(j);

    capture_start();
    rc_log(RC_LOG_WARN, "nothing", "%s", "");
    out = capture_end(&len);
    j = parse_json_line(out, len, "warn", "nothing");
    assert_int_equal(field_count(j), 3);
    cJSON_Delete(j);
}

static void test_json_escaping(void **state)
{
    rc_log_setup(RC_LOG_DEBUG, 1);
    size_t len;
    capture_start();
    rc_log(RC_LOG_DEBUG, "escapes", "q=%s bs=%s ctl=%s utf=%s bad=%s empty=", "a\"b", "c\\d",
           "x\ny\x01z\x7f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\xff\xc3(\xed\xa0\x80");
    const char *out = capture_end(&len);
    cJSON *j = parse_json_line(out, len, "debug", "escapes");
    assert_string_equal(field(j, "q"), "a\"b");
    assert_string_equal(field(j, "bs"), "c\\d");
    assert_string_equal(field(j, "ctl"), "x\ny\x01z\x7f");
    assert_string_equal(field(j, "utf"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* invalid bytes (stray 0xff, cut 2-byte sequence, encoded surrogate) become U+FFFD */
    assert_non_null(strstr(field(j, "bad"), "\xef\xbf\xbd"));
    assert_null(strchr(field(j, "bad"), '\xff'));
    assert_string_equal(field(j, "empty"), "");
    cJSON_Delete(j);
}

static void test_json_splitting(void **state)
{
    rc_log_setup(RC_LOG_INFO, 1);
    size_t len;

    /* a value runs until the next " key=", so plain spaces stay in it */
    capture_start();
    rc_log(RC_LOG_INFO, "redis_error", "err=%s  attempt=%d tail=%s", "connection refused (111)", 3,
           "a b = c");
    const char *out = capture_end(&len);
    cJSON *j = parse_json_line(out, len, "info", "redis_error");
    assert_string_equal(field(j, "err"), "connection refused (111)");
    assert_string_equal(field(j, "attempt"), "3");
    assert_string_equal(field(j, "tail"), "a b = c");
    cJSON_Delete(j);

    /* quoted values may hold anything, including " k=" and escaped quotes */
    capture_start();
    rc_log(RC_LOG_INFO, "rule_denied", "why=\"%s\" code=%d raw=\"unterminated x=1", "a=b c=\\\"d\\\\", 7);
    out = capture_end(&len);
    j = parse_json_line(out, len, "info", "rule_denied");
    assert_string_equal(field(j, "why"), "a=b c=\"d\\");
    assert_string_equal(field(j, "code"), "7");
    assert_string_equal(field(j, "raw"), "\"unterminated"); /* no closing quote: taken raw */
    assert_string_equal(field(j, "x"), "1");
    cJSON_Delete(j);

    /* text before the first key is the message */
    capture_start();
    rc_log(RC_LOG_INFO, "started", "listening on %s port=%d", "0.0.0.0", 8080);
    out = capture_end(&len);
    j = parse_json_line(out, len, "info", "started");
    assert_string_equal(field(j, "msg"), "listening on 0.0.0.0");
    assert_string_equal(field(j, "port"), "8080");
    cJSON_Delete(j);

    /* text mode prints the quoted form as given */
    rc_log_setup(RC_LOG_INFO, 0);
    capture_start();
    rc_log(RC_LOG_INFO, "rule_denied", "why=\"%s\"", "x y");
    out = capture_end(&len);
    assert_string_equal(out + 24, " INFO rule_denied why=\"x y\"\n");
}

static void test_truncation(void **state)
{
    static char big[6000];
    size_t len;

    /* JSON: long ASCII value, long escape-heavy value, long multi-byte value */
    static const char *const fills[] = {"a", "\x01", "\"", "\xe2\x82\xac"};
    rc_log_setup(RC_LOG_INFO, 1);
    for (size_t f = 0; f < RC_ARRAY_LEN(fills); f++) {
        for (size_t shift = 0; shift < 7; shift++) { /* move the cut across escape boundaries */
            size_t fl = strlen(fills[f]), n = 0;
            while (n + fl < sizeof(big) - 1) memcpy(big + n, fills[f], fl), n += fl;
            big[n] = '\0';
            capture_start();
            rc_log(RC_LOG_INFO, "big", "pad=%.*s v=%s after=1", (int)shift, "xxxxxxx", big);
            const char *out = capture_end(&len);
            cJSON *j = parse_json_line(out, len, "info", "big");
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
            assert_true(strlen(field(j, "v")) > 300);
            assert_null(cJSON_GetObjectItemCaseSensitive(j, "after"));
            assert_true(len > 1900);
            cJSON_Delete(j);
        }
    }

    /* many short fields: the cut falls between fields */
    char many[3000];
    size_t n = 0;
    for (int i = 0; n + 16 < sizeof(many); i++) n += (size_t)snprintf(many + n, sizeof(many) - n, "k%d=v%d ", i, i);
    capture_start();
    rc_log(RC_LOG_INFO, "many", "%s", many);
    const char *out = capture_end(&len);
    cJSON *j = parse_json_line(out, len, "info", "many");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "truncated")));
    assert_string_equal(field(j, "k0"), "v0");
    cJSON_Delete(j);

    /* text: one line of at most 2 KiB ending in "..." */
    rc_log_setup(RC_LOG_INFO, 0);
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    capture_start();
    rc_log(RC_LOG_INFO, "big", "v=%s", big);
    out = capture_end(&len);
    assert_true(len <= 2048 && len > 1900);
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    assert_memory_equal(out + len - 4, "...\n", 4);

    /* a line that just fits is not marked */
    capture_start();
    rc_log(RC_LOG_INFO, "fits", "v=%.*s", 1900, big);
    out = capture_end(&len);
    assert_memory_equal(out + len - 2, "b\n", 2);
}

static void test_errno_preserved(void **state)
{
    capture_start();
    errno = EAGAIN;
    rc_log(RC_LOG_ERROR, "e", "x=%d", 1);
    assert_int_equal(errno, EAGAIN);
    capture_end(NULL);
}

static void test_lines_are_whole(void **state)
{
    rc_log_setup(RC_LOG_INFO, 1);
    size_t len;
    capture_start();
    for (int i = 0; i < 20; i++) rc_log(RC_LOG_INFO, "tick", "i=%d", i);
    const char *out = capture_end(&len);
    int lines = 0;
    for (const char *p = out; *p; lines++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        cJSON *j = parse_json_line(p, (size_t)(nl - p) + 1, "info", "tick");
        char want[8];
        snprintf(want, sizeof(want), "%d", lines);
        assert_string_equal(field(j, "i"), want);
        cJSON_Delete(j);
        p = nl + 1;
    }
    assert_int_equal(lines, 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_level_parse, reset),
        cmocka_unit_test_setup(test_level_filtering, reset),
        cmocka_unit_test_setup(test_text_format, reset),
        cmocka_unit_test_setup(test_json_basic, reset),
        cmocka_unit_test_setup(test_json_escaping, reset),
        cmocka_unit_test_setup(test_json_splitting, reset),
        cmocka_unit_test_setup(test_truncation, reset),
        cmocka_unit_test_setup(test_errno_preserved, reset),
        cmocka_unit_test_setup(test_lines_are_whole, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
