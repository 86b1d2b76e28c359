/*
 * log.c: one line per event, as text or as one JSON object, written to stderr.
 *
 * What it is for: rc_log(level, event, fmt, ...) where fmt formats space-separated key=value
 * pairs, for example rc_log(RC_LOG_INFO, "client_connected", "sid=%s ns=%s", sid, ns):
 *
 *   text: 2026-11-23T16:00:00.123Z INFO client_connected sid=abc ns=/chat
 *   json: {"ts":"2026-11-23T16:00:00.123Z","level":"info","event":"client_connected",
 *          "sid":"abc","ns":"/chat"}
 *
 * How the pairs are split (JSON mode): a key is [A-Za-z0-9_.-]+ directly followed by '=', at the
 * start of the formatted text or after a space. A value runs up to the next such " key=" or to
 * the end, trailing spaces dropped, so it may contain spaces as long as no word in it looks like
 * "key=". A value that may (user text, error messages) should be quoted by the caller:
 * key="..." with \" and \\ inside; JSON mode strips the quotes and decodes those two escapes,
 * text mode prints it as given. Text before the first key goes to "msg". Values are always JSON
 * strings (numbers too), escaped per RFC 8259; invalid UTF-8 bytes become U+FFFD. Callers must
 * not use the keys ts, level, event or truncated. Text mode keeps the formatted text as is
 * except that control characters are escaped (\n, \r, \t, \xNN), so one event stays one line.
 *
 * What it does not do: no allocation, no locking, no buffering, no rotation. Each line is built
 * in a 2 KiB stack buffer and handed to one write(2) on fd 2, so lines from this process (and,
 * being shorter than PIPE_BUF, from other writers on the same pipe) never interleave. A longer
 * line is cut at a character boundary: text mode ends it with "...", JSON mode closes the string
 * and the object and adds "truncated":true, so the line stays valid JSON. errno is preserved.
 *
 * API in call order: rc_log_level_parse and rc_log_setup at start-up, then rc_log_enabled (to
 * skip costly arguments) and rc_log, usually through the rc_log_<level> macros.
 */
#include "roomcast/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "roomcast/common.h"

#define LOG_LINE_MAX 2048

static int log_level = RC_LOG_INFO;
static int log_json;

static const char *const level_text[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_json[] = {"debug", "info", "warn", "error"};

void rc_log_setup(int level, int json)
{
    log_level = level < RC_LOG_DEBUG ? RC_LOG_DEBUG : level > RC_LOG_ERROR ? RC_LOG_ERROR : level;
    log_json = json != 0;
}

int rc_log_level_parse(const char *s)
{
    if (!s) return -1;
    for (int i = RC_LOG_DEBUG; i <= RC_LOG_ERROR; i++)
        if (strcasecmp(s, level_json[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return RC_LOG_WARN;
    return -1;
}

int rc_log_enabled(int level)
{
    return level >= log_level;
}

/* ---- a bounded line writer ----------------------------------------------------------------- */

/* Appends fail as a whole once they would pass `limit`; the bytes between limit and the end of
 * buf are reserved for the line's closing (see line_finish). */
typedef struct line {
    char buf[LOG_LINE_MAX];
    size_t len;
    size_t limit;
    int truncated;
} line;

static int put(line *l, const char *s, size_t n)
{
    if (l->truncated || l->len + n > l->limit) {
        l->truncated = 1;
        return -1;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return 0;
}

static int put_str(line *l, const char *s)
{
    return put(l, s, strlen(s));
}

/* Past the limit, into the reserve: only for the fixed closing bytes. */
static void put_reserved(line *l, const char *s)
{
    size_t n = strlen(s);
    if (l->len + n > sizeof(l->buf)) n = sizeof(l->buf) - l->len; /* cannot happen by design */
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static int is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* Length of the key at p when p starts "key=", else 0. */
static size_t key_at(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && is_key_char(*q)) q++;
    return (q > p && q < end && *q == '=') ? (size_t)(q - p) : 0;
}

/* Length of a valid UTF-8 sequence at p (1..4), or 0 when the bytes are not valid UTF-8. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else return 0;
    if ((size_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* JSON string body of [s, end); with `unquote`, \" and \\ are decoded first. Stops at the
 * first piece that does not fit (a character or escape is never split). */
static void put_json_string(line *l, const char *s, const char *end, int unquote)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *e = (const unsigned char *)end;
    while (p < e) {
        unsigned char c = *p;
        if (unquote && c == '\\' && p + 1 < e && (p[1] == '"' || p[1] == '\\')) c = *++p;
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; n = 2; }
        else if (c == '\n') { memcpy(esc, "\\n", 2); n = 2; }
        else if (c == '\r') { memcpy(esc, "\\r", 2); n = 2; }
        else if (c == '\t') { memcpy(esc, "\\t", 2); n = 2; }
        else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        } else if (c < 0x80) { esc[0] = (char)c; n = 1; }
        else {
            size_t u = utf8_len(p, e);
            if (u == 0) {
                if (put_str(l, "\\ufffd") < 0) return;
                p++;
                continue;
            }
            if (put(l, (const char *)p, u) < 0) return;
            p += u;
            continue;
        }
        if (put(l, esc, n) < 0) return;
        p++;
    }
}

/* Text mode: the bytes as they are, control characters escaped so the event stays on one line. */
static void put_text(line *l, const char *s, const char *end)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; p < (const unsigned char *)end; p++) {
        unsigned char c = *p;
        char esc[4] = {'\\', 0, 0, 0};
        size_t n = 2;
        if (c == '\n') esc[1] = 'n';
        else if (c == '\r') esc[1] = 'r';
        else if (c == '\t') esc[1] = 't';
        else if (c < 0x20 || c == 0x7f) {
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            n = 4;
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (put(l, esc, n) < 0) return;
    }
}

/* Next " key=" boundary at or after p: returns the position of the space, or end. */
static const char *next_boundary(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p == ' ' && key_at(p + 1, end)) return p;
    return end;
}

static const char *trim_right(const char *s, const char *end)
{
    while (end > s && end[-1] == ' ') end--;
    return end;
}

/* One field: ,"key":"value" with the key header placed whole or not at all. */
static void put_json_field(line *l, const char *key, size_t klen, const char *v, const char *vend,
                           int unquote)
{
    char head[96];
    if (klen > sizeof(head) - 8) klen = sizeof(head) - 8; /* absurdly long keys are cut */
    head[0] = ',';
    head[1] = '"';
    memcpy(head + 2, key, klen);
    memcpy(head + 2 + klen, "\":\"", 3);
    if (put(l, head, klen + 5) < 0) return;
    put_json_string(l, v, vend, unquote);
    put_reserved(l, "\""); /* the string is open: close it even when the value was cut */
}

static void put_json_pairs(line *l, const char *s, const char *end)
{
    const char *p = s;
    while (p < end && *p == ' ') p++;
    if (p < end && !key_at(p, end)) {
        const char *b = next_boundary(p, end);
        put_json_field(l, "msg", 3, p, trim_right(p, b), 0);
        p = b;
    }
    while (p < end && !l->truncated) {
        while (p < end && *p == ' ') p++;
        size_t klen = key_at(p, end);
        if (!klen) break; /* only spaces left */
        const char *key = p;
        const char *v = p + klen + 1;
        /* key="quoted value": used only when the closing quote ends the token */
        if (v < end && *v == '"') {
            const char *q = v + 1;
            while (q < end && *q != '"') q += (*q == '\\' && q + 1 < end) ? 2 : 1;
            if (q < end && (q + 1 == end || q[1] == ' ')) {
                put_json_field(l, key, klen, v + 1, q, 1);
                p = q + 1;
                continue;
            }
        }
        const char *b = next_boundary(v, end);
        put_json_field(l, key, klen, v, trim_right(v, b), 0);
        p = b;
    }
}

/* ---- rc_log -------------------------------------------------------------------------------- */

static size_t format_time(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    return n;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* nowhere to report a failure to log */
        buf += n;
        len -= (size_t)n;
    }
}

void rc_log(int level, const char *event, const char *fmt, ...)
{
    if (!rc_log_enabled(level)) return;
    int saved_errno = errno;
    if (level < RC_LOG_DEBUG) level = RC_LOG_DEBUG;
    if (level > RC_LOG_ERROR) level = RC_LOG_ERROR;
    if (!event) event = "";

    char pairs[LOG_LINE_MAX];
    size_t plen = 0;
    int pairs_cut = 0;
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(pairs, sizeof(pairs), fmt, ap);
        va_end(ap);
        if (n > 0) plen = (size_t)n < sizeof(pairs) ? (size_t)n : sizeof(pairs) - 1;
        pairs_cut = n >= (int)sizeof(pairs);
    }

    char ts[40];
    size_t tslen = format_time(ts, sizeof(ts));
    line l;
    l.len = 0;
    l.truncated = 0;
    if (log_json) {
        l.limit = sizeof(l.buf) - sizeof("\",\"truncated\":true}\n");
        put(&l, "{\"ts\":\"", 7);
        put(&l, ts, tslen);
        put_str(&l, "\",\"level\":\"");
        put_str(&l, level_json[level]);
        put_str(&l, "\",\"event\":\"");
        put_json_string(&l, event, event + strlen(event), 0);
        put_reserved(&l, "\"");
        put_json_pairs(&l, pairs, pairs + plen);
        if (l.truncated || pairs_cut) put_reserved(&l, ",\"truncated\":true");
        put_reserved(&l, "}\n");
    } else {
        l.limit = sizeof(l.buf) - sizeof("...\n");
        put(&l, ts, tslen);
        put(&l, " ", 1);
        put_str(&l, level_text[level]);
        put(&l, " ", 1);
        put_text(&l, event, event + strlen(event));
        if (plen) {
            put(&l, " ", 1);
            put_text(&l, pairs, pairs + plen);
        }
        if (l.truncated || pairs_cut) put_reserved(&l, "...");
        put_reserved(&l, "\n");
    }
    write_all(l.buf, l.len);
    errno = saved_errno;
}
