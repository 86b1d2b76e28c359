/*
 * redis_config.c: the Redis settings beyond the URL: TLS files and server name, Sentinel, Cluster
 * (file: redis.*, env ROOMCAST_REDIS_*, docs/config.md). Contract: include/roomcast/redis_config.h.
 *
 * Design note. config.c calls four things here: rc_redis_config_init (defaults: nothing set),
 * rc_redis_config_parse for the file's "redis" object, rc_redis_config_env for the variables
 * (which override the file), and rc_redis_config_check once the URL is final, for everything
 * that involves two settings and for the TLS files, which it loads once with OpenSSL
 * (redis_tls.c) so that a bad file stops --check-config and the start with OpenSSL's reason.
 * Each value remembers where it came from (a static string), so a problem names the file's key or
 * the variable that holds the value at fault.
 *
 * What it does not do: connect, resolve names, or keep the TLS context.
 */
#include "roomcast/redis_config.h"

#include "redis_tls.h"
#include "roomcast/common.h"
#include "roomcast/errors.h"
#include "roomcast/redis_url.h"

#include <cjson/cJSON.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADDRS 64
#define DEFAULT_SENTINEL_PORT 26379
#define DEFAULT_CLUSTER_PORT 6379

static const char E_ADDR[] = "must be host:port (an IPv6 address in brackets: [::1]:6379)";
static const char E_PORT[] = "port must be 1..65535";
static const char E_EMPTY[] = "must name at least one host:port";
static const char E_MANY[] = "at most 64 addresses";

void rc_redis_config_init(rc_redis_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

void rc_redis_addr_list_free(rc_redis_addr *list, size_t count)
{
    for (size_t i = 0; i < count; i++) rc_free(list[i].host);
    rc_free(list);
}

void rc_redis_config_dispose(rc_redis_config *cfg)
{
    rc_free(cfg->ca_file);
    rc_free(cfg->cert_file);
    rc_free(cfg->key_file);
    rc_free(cfg->server_name);
    rc_redis_addr_list_free(cfg->sentinels, cfg->sentinel_count);
    rc_free(cfg->master_name);
    rc_free(cfg->sentinel_password);
    rc_free(cfg->sentinel_user);
    rc_redis_addr_list_free(cfg->cluster, cfg->cluster_count);
    memset(cfg, 0, sizeof(*cfg));
}

int rc_redis_config_wanted(const rc_redis_config *cfg, const char *url)
{
    return url || cfg->sentinel_count || cfg->cluster_count;
}

/* ---- host:port ------------------------------------------------------------------------------ */

static int host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

int rc_redis_addr_parse(const char *s, int default_port, rc_redis_addr *out, const char **err)
{
    const char *host, *end, *p;
    memset(out, 0, sizeof(*out));
    if (*s == '[') {
        host = s + 1;
        end = strchr(host, ']');
        if (!end || end == host) goto bad;
        for (p = host; p < end; p++)
            if (!strchr("0123456789abcdefABCDEF:.", *p)) goto bad;
        p = end + 1;
    } else {
        host = s;
        end = host;
        while (*end && *end != ':') {
            if (!host_char_ok(*end)) goto bad;
            end++;
        }
        if (end == host) goto bad;
        p = end;
    }
    int port = default_port;
    if (*p == ':') {
        p++;
        char *e;
        if (*p < '0' || *p > '9') {
            *err = E_PORT;
            return -1;
        }
        long v = strtol(p, &e, 10);
        if (*e || v < 1 || v > 65535) {
            *err = E_PORT;
            return -1;
        }
        port = (int)v;
    } else if (*p) {
        goto bad;
    }
    out->host = rc_strndup(host, (size_t)(end - host));
    out->port = port;
    return 0;
bad:
    *err = E_ADDR;
    return -1;
}

int rc_redis_addr_list_parse(const char *s, int default_port, rc_redis_addr **out, size_t *count,
                             const char **err)
{
    rc_redis_addr *list = NULL;
    size_t n = 0;
    *out = NULL;
    *count = 0;
    const char *b;
    size_t len;
    for (const char *r = s; (r = rc_list_next(r, &b, &len));) {
        if (!len) {
            *err = E_ADDR;
            goto fail;
        }
        if (n == MAX_ADDRS) {
            *err = E_MANY;
            goto fail;
        }
        char *item = rc_strndup(b, len);
        list = rc_realloc(list, (n + 1) * sizeof(*list));
        int rc = rc_redis_addr_parse(item, default_port, &list[n], err);
        rc_free(item);
        if (rc != 0) goto fail;
        n++;
    }
    if (n == 0) {
        *err = E_EMPTY;
        goto fail;
    }
    *out = list;
    *count = n;
    return 0;
fail:
    rc_redis_addr_list_free(list, n);
    return -1;
}

/* ---- the file ------------------------------------------------------------------------------- */

static void set_str(char **dst, const char *v)
{
    rc_free(*dst);
    *dst = v ? rc_strdup(v) : NULL;
}

/* A non-empty string at obj.key (path "<path>.<key>"), or NULL (absent, null, or reported). */
static const char *file_str(const cJSON *obj, const char *path, const char *key, rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return NULL;
    if (cJSON_IsString(j) && j->valuestring[0]) return j->valuestring;
    char p[64];
    snprintf(p, sizeof(p), "%s.%s", path, key);
    rc_config_error(errs, p, "must be a non-empty string");
    return NULL;
}

/* redis.sentinels / redis.cluster: an array of "host:port" strings. */
static void file_addrs(const cJSON *obj, const char *key, int default_port, rc_redis_addr **list,
                       size_t *count, const char **src, const char *srcname, rc_config_errors *errs)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!a || cJSON_IsNull(a)) return;
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n < 1 || n > MAX_ADDRS) {
        rc_config_error(errs, srcname, "must be an array of 1..64 \"host:port\" strings");
        return;
    }
    rc_redis_addr *out = rc_calloc((size_t)n, sizeof(*out));
    size_t k = 0;
    int i = 0, bad = 0;
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        const char *why = E_ADDR;
        if (cJSON_IsString(c) && rc_redis_addr_parse(c->valuestring, default_port, &out[k], &why) == 0) {
            k++;
            continue;
        }
        char p[64];
        snprintf(p, sizeof(p), "%s[%d]", srcname, i);
        rc_config_error(errs, p, "%s", why);
        bad = 1;
    }
    if (bad) {
        rc_redis_addr_list_free(out, k);
        return;
    }
    rc_redis_addr_list_free(*list, *count);
    *list = out;
    *count = k;
    *src = srcname;
}

int rc_redis_config_parse(rc_redis_config *cfg, const cJSON *json, rc_config_errors *errs)
{
    static const char *const tls_keys[] = {"ca", "cert", "key", "serverName", NULL};
    size_t before = errs ? errs->count : 0;
    const char *v;
    if (!json || !cJSON_IsObject(json)) return 0; /* config.c reports a "redis" that is no object */

    const cJSON *tls = cJSON_GetObjectItemCaseSensitive(json, "tls");
    if (tls && !cJSON_IsNull(tls)) {
        if (!cJSON_IsObject(tls)) {
            rc_config_error(errs, "redis.tls", "must be an object like {\"ca\": \"/path/ca.pem\"}");
        } else {
            rc__config_check_keys(tls, "redis.tls", tls_keys, errs);
            if ((v = file_str(tls, "redis.tls", "ca", errs))) {
                set_str(&cfg->ca_file, v);
                cfg->ca_src = "redis.tls.ca";
            }
            if ((v = file_str(tls, "redis.tls", "cert", errs))) {
                set_str(&cfg->cert_file, v);
                cfg->cert_src = "redis.tls.cert";
            }
            if ((v = file_str(tls, "redis.tls", "key", errs))) {
                set_str(&cfg->key_file, v);
                cfg->key_src = "redis.tls.key";
            }
            if ((v = file_str(tls, "redis.tls", "serverName", errs))) {
                set_str(&cfg->server_name, v);
                cfg->server_name_src = "redis.tls.serverName";
            }
        }
    }
    file_addrs(json, "sentinels", DEFAULT_SENTINEL_PORT, &cfg->sentinels, &cfg->sentinel_count,
               &cfg->sentinels_src, "redis.sentinels", errs);
    file_addrs(json, "cluster", DEFAULT_CLUSTER_PORT, &cfg->cluster, &cfg->cluster_count,
               &cfg->cluster_src, "redis.cluster", errs);
    if ((v = file_str(json, "redis", "masterName", errs))) {
        set_str(&cfg->master_name, v);
        cfg->master_name_src = "redis.masterName";
    }
    if ((v = file_str(json, "redis", "sentinelPassword", errs))) set_str(&cfg->sentinel_password, v);
    if ((v = file_str(json, "redis", "sentinelUser", errs))) set_str(&cfg->sentinel_user, v);
    return errs && errs->count > before ? -1 : 0;
}

/* ---- the environment ------------------------------------------------------------------------ */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* an empty variable is the same as an unset one */
}

static void env_addrs(const char *name, int default_port, rc_redis_addr **list, size_t *count,
                      const char **src, rc_config_errors *errs)
{
    const char *v = env(name), *why = NULL;
    if (!v) return;
    rc_redis_addr *out;
    size_t n;
    if (rc_redis_addr_list_parse(v, default_port, &out, &n, &why) != 0) {
        rc_config_error(errs, name, "%s (expected host:port,host:port,...)", why);
        return;
    }
    rc_redis_addr_list_free(*list, *count);
    *list = out;
    *count = n;
    *src = name;
}

int rc_redis_config_env(rc_redis_config *cfg, rc_config_errors *errs)
{
    size_t before = errs ? errs->count : 0;
    const char *v;
    if ((v = env("ROOMCAST_REDIS_CA_FILE"))) {
        set_str(&cfg->ca_file, v);
        cfg->ca_src = "ROOMCAST_REDIS_CA_FILE";
    }
    if ((v = env("ROOMCAST_REDIS_CERT_FILE"))) {
        set_str(&cfg->cert_file, v);
        cfg->cert_src = "ROOMCAST_REDIS_CERT_FILE";
    }
    if ((v = env("ROOMCAST_REDIS_KEY_FILE"))) {
        set_str(&cfg->key_file, v);
        cfg->key_src = "ROOMCAST_REDIS_KEY_FILE";
    }
    if ((v = env("ROOMCAST_REDIS_SERVER_NAME"))) {
        set_str(&cfg->server_name, v);
        cfg->server_name_src = "ROOMCAST_REDIS_SERVER_NAME";
    }
    env_addrs("ROOMCAST_REDIS_SENTINELS", DEFAULT_SENTINEL_PORT, &cfg->sentinels,
              &cfg->sentinel_count, &cfg->sentinels_src, errs);
    env_addrs("ROOMCAST_REDIS_CLUSTER", DEFAULT_CLUSTER_PORT, &cfg->cluster, &cfg->cluster_count,
              &cfg->cluster_src, errs);
    if ((v = env("ROOMCAST_REDIS_MASTER_NAME"))) {
        set_str(&cfg->master_name, v);
        cfg->master_name_src = "ROOMCAST_REDIS_MASTER_NAME";
    }
    if ((v = env("ROOMCAST_REDIS_SENTINEL_PASSWORD"))) set_str(&cfg->sentinel_password, v);
    if ((v = env("ROOMCAST_REDIS_SENTINEL_USER"))) set_str(&cfg->sentinel_user, v);
    return errs && errs->count > before ? -1 : 0;
}

/* ---- cross checks --------------------------------------------------------------------------- */

int rc_redis_config_check(const rc_redis_config *cfg, const char *url, rc_config_errors *errs)
{
    size_t before = errs ? errs->count : 0;
    rc_redis_url u;
    const char *why = NULL;
    int have_url = url && rc_redis_url_parse(url, &u, &why) == 0; /* config.c reports a bad one */
    if (!have_url) memset(&u, 0, sizeof(u));
    int tls_files = cfg->ca_file || cfg->cert_file || cfg->key_file || cfg->server_name;

    if (cfg->sentinel_count && !cfg->master_name)
        rc_config_error(errs, cfg->sentinels_src,
                        "sentinels need the master's name (redis.masterName or ROOMCAST_REDIS_MASTER_NAME)");
    if (cfg->master_name && !cfg->sentinel_count)
        rc_config_error(errs, cfg->master_name_src,
                        "a master name needs sentinels to ask (redis.sentinels or ROOMCAST_REDIS_SENTINELS)");
    if (cfg->sentinel_password && !cfg->sentinel_count)
        rc_config_error(errs, "redis.sentinelPassword", "given without sentinels");
    if (cfg->sentinel_user && !cfg->sentinel_password)
        rc_config_error(errs, "redis.sentinelUser", "needs redis.sentinelPassword");
    if (cfg->cluster_count && cfg->sentinel_count)
        rc_config_error(errs, cfg->cluster_src,
                        "a cluster and sentinels cannot be used together (a cluster fails over by itself)");
    if (cfg->cluster_count && u.db)
        rc_config_error(errs, cfg->cluster_src,
                        "a cluster has only database 0, but the Redis URL selects database %d", u.db);
    if (u.path && (cfg->cluster_count || cfg->sentinel_count))
        rc_config_error(errs, cfg->cluster_count ? cfg->cluster_src : cfg->sentinels_src,
                        "cannot be combined with a unix:// Redis URL");
    if (cfg->cert_file && !cfg->key_file)
        rc_config_error(errs, cfg->cert_src, "a client certificate needs its key (redis.tls.key or ROOMCAST_REDIS_KEY_FILE)");
    if (cfg->key_file && !cfg->cert_file)
        rc_config_error(errs, cfg->key_src, "a client key needs its certificate (redis.tls.cert or ROOMCAST_REDIS_CERT_FILE)");
    if (tls_files && !u.tls) {
        const char *src = cfg->ca_file ? cfg->ca_src : cfg->cert_file ? cfg->cert_src
                        : cfg->key_file ? cfg->key_src : cfg->server_name_src;
        if (u.path)
            rc_config_error(errs, src, "TLS settings cannot be used with a unix:// Redis URL");
        else
            rc_config_error(errs, src, "TLS settings need a rediss:// Redis URL (%s)",
                            have_url ? "it is redis://" : "set ROOMCAST_REDIS_URL=rediss://[:password@]host:port");
    }
    /* Load the files once, so that an unreadable or bad one stops the start with the reason. */
    if (u.tls && (!errs || errs->count == before)) {
        char err[512];
        SSL_CTX *ctx = rc_redis_tls_ctx_new(cfg, err, sizeof(err));
        if (ctx) SSL_CTX_free(ctx);
        else rc_config_error(errs, NULL, "%s", err);
    }
    if (have_url) rc_redis_url_dispose(&u);
    return errs && errs->count > before ? -1 : 0;
}
