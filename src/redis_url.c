/*
 * redis_url.c: ROOMCAST_REDIS_URL -> host, port (or unix path), TLS, user, password, db. See
 * include/roomcast/redis_url.h.
 *
 * What it is for: one strict parser that both the Redis backplane (at start) and config
 * validation (--check-config) can call, so a URL that would not work is refused before the node
 * starts, with a reason that names the part at fault.
 *
 * How it splits: after "redis://" or "rediss://", the userinfo ends at the LAST '@' (a password may contain an
 * unescaped '@'; the host and db never do), the host ends at ':' or '/' (or at ']' for an IPv6
 * literal), then an optional ":port" and an optional "/db". After "unix://" the same userinfo,
 * then an absolute path, then optionally "?db=N". Every byte must be printable ASCII.
 *
 * What it does not do: no DNS, no query options (?timeout=...), which are refused rather than
 * ignored. It does not check that the host or the socket exists, nor load TLS files
 * (redis_config.c does).
 *
 * Ownership: out's strings are heap copies freed by rc_redis_url_dispose; on failure out is all-zero.
 */
#include "roomcast/redis_url.h"

#include "roomcast/common.h"

#include <limits.h>
#include <stdio.h>
#include <strings.h>

static const char E_EMPTY[] = "empty URL";
static const char E_CHARS[] = "spaces and control characters are not allowed";
static const char E_SCHEME[] = "must start with redis://, rediss:// or unix://";
static const char E_PATH[] = "a unix socket path must be absolute and at most 107 bytes";
static const char E_QUERY[] = "query strings and fragments are not supported";
static const char E_USERINFO[] = "credentials must be ':password@' or 'user:password@'";
static const char E_PASSWORD[] = "empty password";
static const char E_ESCAPE[] = "bad %XX escape in user or password";
static const char E_HOST[] = "missing or invalid host";
static const char E_PORT[] = "port must be 1..65535";
static const char E_DB[] = "database must be a number 0..2147483647";
static const char E_TRAILING[] = "unexpected text after the database number";

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into a new string; NULL on a bad escape or an escaped NUL. */
static char *decode(const char *s, size_t n)
{
    char *d = rc_malloc(n + 1), *o = d;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int h = i + 2 < n ? hexval(s[i + 1]) : -1;
        int l = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (h < 0 || l < 0 || (h == 0 && l == 0)) {
            rc_free(d);
            return NULL;
        }
        *o++ = (char)(h * 16 + l);
        i += 2;
    }
    *o = '\0';
    return d;
}

/* Parses decimal digits at *p into [min, max]; advances *p. -1 when absent or out of range. */
static long parse_num(const char **p, long min, long max)
{
    const char *s = *p;
    long v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        if (v > max) return -1;
        s++;
    }
    if (v < min) return -1;
    *p = s;
    return v;
}

static int host_char_ok(char c, int ipv6)
{
    if (ipv6) return hexval(c) >= 0 || c == ':' || c == '.';
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c == '.' || c == '-' || c == '_';
}

/* The userinfo of [p, end): sets user and password, returns the first byte after '@' (p when
 * there is none), or NULL with *err set. */
static const char *parse_userinfo(const char *p, const char *at, rc_redis_url *out, const char **err)
{
    if (!at) return p;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon) {
        *err = E_USERINFO;
        return NULL;
    }
    if (colon + 1 == at) {
        *err = E_PASSWORD;
        return NULL;
    }
    if (colon > p && !(out->user = decode(p, (size_t)(colon - p)))) {
        *err = E_ESCAPE;
        return NULL;
    }
    if (!(out->password = decode(colon + 1, (size_t)(at - colon - 1)))) {
        *err = E_ESCAPE;
        return NULL;
    }
    return at + 1;
}

/* unix://[userinfo@]/path[?db=N] from p (after the scheme). */
static int parse_unix(const char *p, rc_redis_url *out, const char **err)
{
    const char *q = strchr(p, '?');
    const char *end = q ? q : p + strlen(p);
    const char *at = NULL;
    for (const char *c = p; c < end && *c != '/'; c++)
        if (*c == '@') at = c;
    if (strchr(p, '#')) {
        *err = E_QUERY;
        return -1;
    }
    if (!(p = parse_userinfo(p, at, out, err))) return -1;
    if (*p != '/' || end - p > 107 || end - p < 2) {
        *err = E_PATH;
        return -1;
    }
    out->path = rc_strndup(p, (size_t)(end - p));
    if (q) {
        q++;
        if (strncmp(q, "db=", 3) != 0) {
            *err = E_QUERY;
            return -1;
        }
        q += 3;
        long db = parse_num(&q, 0, INT_MAX);
        if (db < 0) {
            *err = E_DB;
            return -1;
        }
        out->db = (int)db;
        if (*q) {
            *err = E_TRAILING;
            return -1;
        }
    }
    return 0;
}

int rc_redis_url_parse(const char *url, rc_redis_url *out, const char **err)
{
    const char *p, *at, *host, *host_end, *q;
    int ipv6 = 0;

    memset(out, 0, sizeof(*out));
    if (!url || !*url) {
        *err = E_EMPTY;
        return -1;
    }
    for (p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            *err = E_CHARS;
            return -1;
        }
    }
    if (strncasecmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        p = url + 9;
        out->tls = 1;
    } else if (strncasecmp(url, "unix://", 7) == 0) {
        if (parse_unix(url + 7, out, err) == 0) return 0;
        goto err;
    } else {
        *err = E_SCHEME;
        return -1;
    }

    at = strrchr(p, '@');
    if (strpbrk(at ? at : p, "?#")) {
        *err = E_QUERY;
        return -1;
    }
    if (!(p = parse_userinfo(p, at, out, err))) goto err;

    if (*p == '[') {
        ipv6 = 1;
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            *err = E_HOST;
            goto err;
        }
        q = host_end + 1;
    } else {
        host = p;
        host_end = host + strcspn(host, ":/");
        q = host_end;
    }
    if (host_end == host) {
        *err = E_HOST;
        goto err;
    }
    for (const char *c = host; c < host_end; c++) {
        if (!host_char_ok(*c, ipv6)) {
            *err = E_HOST;
            goto err;
        }
    }
    out->host = rc_strndup(host, (size_t)(host_end - host));

    out->port = 6379;
    if (*q == ':') {
        q++;
        long port = parse_num(&q, 1, 65535);
        if (port < 0) {
            *err = E_PORT;
            goto err;
        }
        out->port = (int)port;
    }
    if (*q == '/') {
        q++;
        if (*q) {
            long db = parse_num(&q, 0, INT_MAX);
            if (db < 0) {
                *err = E_DB;
                goto err;
            }
            out->db = (int)db;
        }
    }
    if (*q) {
        *err = E_TRAILING;
        goto err;
    }
    return 0;

err:
    rc_redis_url_dispose(out);
    return -1;
}

void rc_redis_url_dispose(rc_redis_url *u)
{
    rc_free(u->host);
    rc_free(u->path);
    rc_free(u->user);
    rc_free(u->password);
    memset(u, 0, sizeof(*u));
}

char *rc_redis_url_redacted(const rc_redis_url *u, char *buf, size_t size)
{
    const char *user = u->user ? u->user : "", *pw = u->password ? ":***@" : "";
    if (u->path) {
        snprintf(buf, size, "unix://%s%s%s?db=%d", user, pw, u->path, u->db);
        return buf;
    }
    const char *host = u->host ? u->host : "";
    int bracket = strchr(host, ':') != NULL;
    snprintf(buf, size, "%s://%s%s%s%s%s:%d/%d", u->tls ? "rediss" : "redis", user, pw,
             bracket ? "[" : "", host, bracket ? "]" : "", u->port, u->db);
    return buf;
}
