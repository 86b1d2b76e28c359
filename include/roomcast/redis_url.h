/*
 * redis_url.h: parse ROOMCAST_REDIS_URL / redis.url into its parts.
 *
 * Accepted forms (docs/redis.md):
 *   redis://[[user]:password@]host[:port][/db]      plain TCP
 *   rediss://[[user]:password@]host[:port][/db]     TLS (same parts; tls = 1)
 *   unix://[[user]:password@]/absolute/path[?db=N]  a unix socket (path set, host NULL, port 0)
 *   - "redis://:pw@h"      -> AUTH pw            (the default user, requirepass)
 *   - "redis://user:pw@h"  -> AUTH user pw       (Redis 6+ ACL user)
 *   - host: a name, an IPv4 address, or an IPv6 address in brackets ("[::1]")
 *   - port: 1..65535, default 6379; db: 0..2147483647, default 0 ("/" alone is db 0)
 *   - user and password may carry %XX escapes (needed for '@', ':', '/' and '%' inside them)
 * Refused, with a static reason string: other schemes, userinfo without ':' ("redis://pw@h" is
 * ambiguous), an empty password, a query string or fragment (except "?db=N" on unix://, the only
 * place a db number can go there), anything after the db number, control characters or spaces, a
 * unix path that is not absolute or longer than a sockaddr_un holds (107 bytes).
 *
 * Ownership: rc_redis_url_parse fills *out with heap strings that rc_redis_url_dispose frees;
 * on failure *out is left all-zero and nothing needs freeing. All-zero is a valid empty value.
 * The reason returned through *err is a static string (compare by pointer or print it).
 */
#ifndef ROOMCAST_REDIS_URL_H
#define ROOMCAST_REDIS_URL_H

#include <stddef.h>

typedef struct rc_redis_url {
    char *host;       /* without brackets for IPv6; NULL for a unix socket */
    int port;         /* 0 for a unix socket */
    char *path;       /* the unix socket's path, or NULL */
    int tls;          /* 1 for rediss:// */
    char *user;       /* NULL: AUTH <password> only */
    char *password;   /* NULL: no AUTH */
    int db;           /* SELECT <db> when non-zero */
} rc_redis_url;

/* 0 on success; -1 with *err set (never NULL) when the URL is refused. url may be NULL (-1). */
int rc_redis_url_parse(const char *url, rc_redis_url *out, const char **err);
void rc_redis_url_dispose(rc_redis_url *u);

/* Writes "redis[s]://[user:***@]host:port/db" or "unix://[user:***@]/path?db=N" (the password
 * masked) into buf for logs and messages; returns buf. Never prints the password. */
char *rc_redis_url_redacted(const rc_redis_url *u, char *buf, size_t size);

#endif
