/*
 * config.c: one rc_config from built-in defaults -> JSON file -> environment -> flags.
 * The file format is docs/config.md; this file implements exactly that table.
 *
 * Design note. rc_config_load fills the struct in four passes, each overriding the last, and
 * validates every value where it is read, so an error names where the bad value came from: a JSON
 * path for the file ("engine.pingInterval"), the variable for the environment
 * ("ROOMCAST_PORT"), the flag for the command line ("--port"). Checks that involve several
 * settings (an HS algorithm needs a secret, an RS/ES one a readable public key of the right
 * type) run once at the end and name the file's key. Every problem is collected, not just the
 * first; then the half-built config is disposed and zeroed, so a caller never sees one.
 *
 * Strings in rc_config are heap copies owned by it; the JWT part (rc_auth_config) is released
 * with rc_auth_config_dispose from auth.c; the compiled rules with rc_rules_free. The config is
 * read once at start and never changes afterwards.
 *
 * It does not: watch the file, expand variables inside the file, resolve host names, or connect
 * to Redis (a redis.url is only parsed, with redis_url.c, so that a bad one stops the start).
 *
 * API in call order: rc_config_load -> (read the fields) -> rc_config_dispose.
 */
#include "roomcast/config.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/redis_url.h"
#include "roomcast/rules.h"
#include "roomcast/server.h"
#include "roomcast/template.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_MS 86400000           /* timings: at most a day */
#define MAX_PAYLOAD 100000000     /* 100 MB */
#define MAX_HEADER_BYTES 1048576
#define MAX_OUTBOUND_BYTES (1u << 30)
#define MAX_CONNECTIONS 10000000
#define MAX_LEEWAY_S 86400
#define MAX_ROOM_BUDGET 100000000 /* limits.maxRooms, limits.maxMemberships */

/* ---- loading state ------------------------------------------------------------------------ */

struct loader {
    rc_config *cfg;
    rc_config_errors *errs;
    int body_set;              /* http.maxBodyBytes given (else it follows max_payload) */
    int pending_set;           /* limits.maxPendingSessions given (else maxConnections / 10) */
    char *pubkey_file;         /* jwt.publicKeyFile, read at the end */
    const char *pubkey_src;    /* where it came from, for errors */
    const cJSON *namespaces;   /* borrowed from the parsed file */
    int namespaces_given;
};

static void set_str(char **dst, const char *v)
{
    rc_free(*dst);
    *dst = v ? rc_strdup(v) : NULL;
}

static int parse_log_level(const char *s)
{
    if (strcmp(s, "debug") == 0) return RC_LOG_DEBUG;
    if (strcmp(s, "info") == 0) return RC_LOG_INFO;
    if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0) return RC_LOG_WARN;
    if (strcmp(s, "error") == 0) return RC_LOG_ERROR;
    return -1;
}

/* Value checks shared by all sources; each reports under `src` and returns 0 or -1. */

static int check_node_id(struct loader *L, const char *src, const char *v)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++) {
        char c = v[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
             c == '_' || c == '-';
    }
    if (!ok) rc_config_error(L->errs, src, "must be 1..128 characters of A-Z a-z 0-9 . _ -");
    return ok ? 0 : -1;
}

static int check_prefix(struct loader *L, const char *src, const char *v)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) ok = (unsigned char)v[i] > ' ' && (unsigned char)v[i] < 0x7f;
    if (!ok) rc_config_error(L->errs, src, "must be 1..64 printable characters without spaces");
    return ok ? 0 : -1;
}

static int check_redis_url(struct loader *L, const char *src, const char *v)
{
    rc_redis_url u;
    const char *why = NULL;
    if (rc_redis_url_parse(v, &u, &why) == 0) {
        rc_redis_url_dispose(&u);
        return 0;
    }
    rc_config_error(L->errs, src, "%s (expected redis[s]://[:password@]host[:port][/db] or unix:///path)", why);
    return -1;
}

static int check_port(struct loader *L, const char *src, long v)
{
    if (v >= 1 && v <= 65535) return 0;
    rc_config_error(L->errs, src, "must be an integer 1..65535");
    return -1;
}

static int check_non_empty(struct loader *L, const char *src, const char *v)
{
    if (*v) return 0;
    rc_config_error(L->errs, src, "must not be empty");
    return -1;
}

/* ---- the file ----------------------------------------------------------------------------- */

static char *keypath(const char *section, const char *key)
{
    size_t n = strlen(section) + strlen(key) + 2;
    char *p = rc_malloc(n);
    snprintf(p, n, "%s%s%s", section, *section ? "." : "", key);
    return p;
}

/* obj[key], or NULL when absent or null (null means "the default"). */
static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return cJSON_IsNull(j) ? NULL : j;
}

static const cJSON *section(struct loader *L, const cJSON *root, const char *name, const char *const *keys)
{
    const cJSON *j = item(root, name);
    if (!j) return NULL;
    if (!cJSON_IsObject(j)) {
        rc_config_error(L->errs, name, "must be an object");
        return NULL;
    }
    rc__config_check_keys(j, name, keys, L->errs);
    return j;
}

/* A string at obj.key; returns it (borrowed) or NULL when absent or invalid (reported). */
static const char *file_str(struct loader *L, const cJSON *obj, const char *sec, const char *key)
{
    const cJSON *j = item(obj, key);
    if (!j) return NULL;
    char *p = keypath(sec, key);
    const char *v = NULL;
    if (!cJSON_IsString(j)) rc_config_error(L->errs, p, "must be a string");
    else if (check_non_empty(L, p, j->valuestring) == 0) v = j->valuestring;
    rc_free(p);
    return v;
}

/* An integer in [min, max] at obj.key into *out. `what` is the message for bad values. */
static void file_int(struct loader *L, const cJSON *obj, const char *sec, const char *key, double min,
                     double max, const char *what, long long *out)
{
    const cJSON *j = item(obj, key);
    if (!j) return;
    char *p = keypath(sec, key);
    double d = cJSON_IsNumber(j) ? j->valuedouble : 0;
    if (!cJSON_IsNumber(j) || d < min)
        rc_config_error(L->errs, p, "%s", what);
    else if (d > max)
        rc_config_error(L->errs, p, "must be at most %.0f", max);
    else if (d != (double)(long long)d)
        rc_config_error(L->errs, p, "%s", what);
    else
        *out = (long long)d;
    rc_free(p);
}

static void file_ms(struct loader *L, const cJSON *obj, const char *sec, const char *key, int *out)
{
    long long v = *out;
    file_int(L, obj, sec, key, 1, MAX_MS, "must be a positive integer (ms)", &v);
    *out = (int)v;
}

static void file_bytes(struct loader *L, const cJSON *obj, const char *sec, const char *key, double max,
                       size_t *out, int *set)
{
    long long v = -1;
    file_int(L, obj, sec, key, 1, max, "must be a positive integer (bytes)", &v);
    if (v < 0) return;
    *out = (size_t)v;
    if (set) *set = 1;
}

static void file_bool(struct loader *L, const cJSON *obj, const char *sec, const char *key, int *out)
{
    const cJSON *j = item(obj, key);
    if (!j) return;
    if (cJSON_IsBool(j)) {
        *out = cJSON_IsTrue(j);
        return;
    }
    char *p = keypath(sec, key);
    rc_config_error(L->errs, p, "must be a boolean");
    rc_free(p);
}

static void set_cors(rc_config *cfg, char **list, size_t n)
{
    for (size_t i = 0; i < cfg->cors_origin_count; i++) rc_free(cfg->cors_origins[i]);
    rc_free(cfg->cors_origins);
    cfg->cors_origins = list;
    cfg->cors_origin_count = n;
}

static void load_engine(struct loader *L, const cJSON *root)
{
    static const char *const keys[] = {"pingInterval", "pingTimeout", "connectTimeout", "upgradeTimeout",
                                       "maxPayload", "transports", NULL};
    const cJSON *s = section(L, root, "engine", keys);
    if (!s) return;
    rc_config *cfg = L->cfg;
    file_ms(L, s, "engine", "pingInterval", &cfg->ping_interval_ms);
    file_ms(L, s, "engine", "pingTimeout", &cfg->ping_timeout_ms);
    file_ms(L, s, "engine", "connectTimeout", &cfg->connect_timeout_ms);
    file_ms(L, s, "engine", "upgradeTimeout", &cfg->upgrade_timeout_ms);
    long long v = -1;
    file_int(L, s, "engine", "maxPayload", 1, MAX_PAYLOAD, "must be an integer 1..100000000 (bytes)", &v);
    if (v > 0) cfg->max_payload = (size_t)v;

    const cJSON *t = item(s, "transports");
    if (!t) return;
    if (!cJSON_IsArray(t) || !t->child) {
        rc_config_error(L->errs, "engine.transports", "must be a non-empty array of \"polling\", \"websocket\"");
        return;
    }
    int polling = 0, websocket = 0, i = 0;
    for (const cJSON *c = t->child; c; c = c->next, i++) {
        if (cJSON_IsString(c) && strcmp(c->valuestring, "polling") == 0) polling = 1;
        else if (cJSON_IsString(c) && strcmp(c->valuestring, "websocket") == 0) websocket = 1;
        else {
            char p[48];
            snprintf(p, sizeof(p), "engine.transports[%d]", i);
            rc_config_error(L->errs, p, "must be \"polling\" or \"websocket\"");
        }
    }
    if (polling || websocket) {
        cfg->allow_polling = polling;
        cfg->allow_websocket = websocket;
    }
}

/* Socket.IO's reserved event names: a client cannot listen for them as events. */
static int is_reserved_event(const char *name)
{
    static const char *const reserved[] = {
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(reserved); i++)
        if (strcmp(name, reserved[i]) == 0) return 1;
    return 0;
}

/* jwt.onExpiry and jwt.expiredEvent: what ends a connected socket whose token expires. */
static void load_token_expiry(struct loader *L, const cJSON *jwt)
{
    static const char *const modes[] = {
        [RC_TOKEN_EXPIRY_RECONNECT] = "reconnect",
        [RC_TOKEN_EXPIRY_DISCONNECT] = "disconnect",
        [RC_TOKEN_EXPIRY_IGNORE] = "ignore",
    };
    rc_config *cfg = L->cfg;
    const cJSON *m = item(jwt, "onExpiry");
    if (m) {
        int mode = -1;
        for (size_t i = 0; cJSON_IsString(m) && i < RC_ARRAY_LEN(modes); i++)
            if (strcmp(m->valuestring, modes[i]) == 0) mode = (int)i;
        if (mode < 0)
            rc_config_error(L->errs, "jwt.onExpiry", "must be \"reconnect\", \"disconnect\" or \"ignore\"");
        else
            cfg->token_expiry = mode;
    }
    const cJSON *e = item(jwt, "expiredEvent");
    if (!e) return;
    if (!cJSON_IsString(e) || !e->valuestring[0] || strlen(e->valuestring) > 200 ||
        is_reserved_event(e->valuestring)) {
        rc_config_error(L->errs, "jwt.expiredEvent",
                        "must be an event name of 1..200 bytes, not one of Socket.IO's reserved names");
        return;
    }
    if (cfg->token_expiry == RC_TOKEN_EXPIRY_IGNORE) {
        rc_config_error(L->errs, "jwt.expiredEvent", "has no effect with jwt.onExpiry \"ignore\"");
        return;
    }
    set_str(&cfg->token_expired_event, e->valuestring);
}

static void load_jwt(struct loader *L, const cJSON *root)
{
    static const char *const keys[] = {"secret", "publicKeyFile", "algorithms", "leeway", "issuer", "audience",
                                       "userClaim", "onExpiry", "expiredEvent", NULL};
    const cJSON *s = section(L, root, "jwt", keys);
    if (!s) return;
    rc_auth_config *jwt = &L->cfg->jwt;
    const char *v;
    if ((v = file_str(L, s, "jwt", "secret"))) {
        set_str(&jwt->hs_secret, v);
        jwt->hs_secret_len = strlen(v);
    }
    if ((v = file_str(L, s, "jwt", "publicKeyFile"))) {
        set_str(&L->pubkey_file, v);
        L->pubkey_src = "jwt.publicKeyFile";
    }
    if ((v = file_str(L, s, "jwt", "issuer"))) set_str(&jwt->issuer, v);
    if ((v = file_str(L, s, "jwt", "audience"))) set_str(&jwt->audience, v);
    if ((v = file_str(L, s, "jwt", "userClaim"))) set_str(&jwt->user_claim, v);
    long long leeway = jwt->leeway_s;
    file_int(L, s, "jwt", "leeway", 0, MAX_LEEWAY_S, "must be an integer 0..86400 (seconds)", &leeway);
    jwt->leeway_s = (int)leeway;
    load_token_expiry(L, s);

    const cJSON *a = item(s, "algorithms");
    if (!a) return;
    if (!cJSON_IsArray(a) || !a->child) {
        rc_config_error(L->errs, "jwt.algorithms", "must be a non-empty array of algorithm names");
        return;
    }
    unsigned algs = 0;
    int i = 0, bad = 0;
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        char p[48];
        snprintf(p, sizeof(p), "jwt.algorithms[%d]", i);
        unsigned one = 0;
        const char *why = NULL;
        if (!cJSON_IsString(c) || strchr(c->valuestring, ',')) {
            rc_config_error(L->errs, p, "must be an algorithm name such as \"HS256\"");
            bad = 1;
        } else if (rc_auth_parse_algs(c->valuestring, &one, &why) < 0 || !one) {
            rc_config_error(L->errs, p, "%s", why ? why : "unknown algorithm");
            bad = 1;
        } else {
            algs |= one;
        }
    }
    if (!bad) jwt->algs = algs;
}

/* http.trustedProxies: addresses or CIDR ranges whose X-Forwarded-For names the client. */
static void load_trusted_proxies(struct loader *L, const cJSON *a)
{
    if (!a) return;
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n < 0 || n > 256) {
        rc_config_error(L->errs, "http.trustedProxies", "must be an array of at most 256 addresses or CIDR ranges");
        return;
    }
    rc_cidr *list = rc_calloc((size_t)n + 1, sizeof(*list));
    int i = 0, k = 0;
    for (const cJSON *c = a->child; c; c = c->next, i++) {
        if (cJSON_IsString(c) && rc_cidr_parse(c->valuestring, &list[k]) == 0) {
            k++;
            continue;
        }
        char p[48];
        snprintf(p, sizeof(p), "http.trustedProxies[%d]", i);
        rc_config_error(L->errs, p, "must be an IP address or a CIDR range such as \"10.0.0.0/8\" (no host bits past the prefix)");
    }
    rc_free(L->cfg->trusted_proxies);
    L->cfg->trusted_proxies = list;
    L->cfg->trusted_proxy_count = (size_t)k;
}

static void load_file(struct loader *L, const cJSON *root)
{
    static const char *const top[] = {"listen", "path", "nodeId", "redis", "api", "engine", "http", "limits",
                                      "cors", "jwt", "log", "drain", "namespaces", "jobs", "events",
                                      "presence", "tls", "dev", "socketio", "admin", "transport", NULL};
    static const char *const tls_keys[] = {"cert", "key", NULL};
    static const char *const listen_keys[] = {"bind", "port", NULL};
    static const char *const redis_keys[] = {"url", "prefix", "tls", "sentinels", "masterName",
                                             "sentinelPassword", "sentinelUser", "cluster", NULL};
    static const char *const api_keys[] = {"key", NULL};
    static const char *const http_keys[] = {"maxHeaderBytes", "maxBodyBytes", "headerTimeout",
                                            "keepAliveTimeout", "trustedProxies", NULL};
    static const char *const limits_keys[] = {"maxOutboundBytes", "maxConnections", "maxRoomsPerSocket",
                                              "maxRooms", "maxMemberships", "maxPendingSessions",
                                              "maxPendingPerAddress", "maxPendingPerConnection", NULL};
    static const char *const cors_keys[] = {"origins", "credentials", NULL};
    static const char *const log_keys[] = {"level", "format", NULL};
    static const char *const drain_keys[] = {"grace", NULL};
    rc_config *cfg = L->cfg;
    const cJSON *s;
    const char *v;

    rc__config_check_keys(root, "", top, L->errs);

    if ((s = section(L, root, "listen", listen_keys))) {
        if ((v = file_str(L, s, "listen", "bind"))) set_str(&cfg->bind, v);
        long long port = cfg->port;
        file_int(L, s, "listen", "port", 1, 65535, "must be an integer 1..65535", &port);
        cfg->port = (int)port;
    }
    if ((v = file_str(L, root, "", "path"))) {
        size_t n = strlen(v);
        if (v[0] != '/' || n > 256 || strpbrk(v, "?# \t\r\n")) {
            rc_config_error(L->errs, "path", "must start with '/', be at most 256 bytes, without spaces, '?' or '#'");
        } else {
            char *p = rc_malloc(n + 2);
            memcpy(p, v, n + 1);
            if (p[n - 1] != '/') memcpy(p + n, "/", 2);
            rc_free(cfg->path);
            cfg->path = p;
        }
    }
    if ((v = file_str(L, root, "", "nodeId")) && check_node_id(L, "nodeId", v) == 0) set_str(&cfg->node_id, v);
    if ((s = section(L, root, "redis", redis_keys))) {
        if ((v = file_str(L, s, "redis", "url")) && check_redis_url(L, "redis.url", v) == 0)
            set_str(&cfg->redis_url, v);
        if ((v = file_str(L, s, "redis", "prefix")) && check_prefix(L, "redis.prefix", v) == 0)
            set_str(&cfg->prefix, v);
        rc_redis_config_parse(&cfg->redis, s, L->errs);
    }
    if ((s = section(L, root, "api", api_keys)) && (v = file_str(L, s, "api", "key"))) set_str(&cfg->api_key, v);
    load_engine(L, root);
    if ((s = section(L, root, "http", http_keys))) {
        file_bytes(L, s, "http", "maxHeaderBytes", MAX_HEADER_BYTES, &cfg->http_max_header_bytes, NULL);
        file_bytes(L, s, "http", "maxBodyBytes", MAX_PAYLOAD, &cfg->http_max_body_bytes, &L->body_set);
        file_ms(L, s, "http", "headerTimeout", &cfg->http_header_timeout_ms);
        file_ms(L, s, "http", "keepAliveTimeout", &cfg->http_keepalive_timeout_ms);
        load_trusted_proxies(L, item(s, "trustedProxies"));
    }
    if ((s = section(L, root, "limits", limits_keys))) {
        file_bytes(L, s, "limits", "maxOutboundBytes", MAX_OUTBOUND_BYTES, &cfg->max_outbound_bytes, NULL);
        long long n = cfg->max_connections;
        file_int(L, s, "limits", "maxConnections", 1, MAX_CONNECTIONS, "must be a positive integer", &n);
        cfg->max_connections = (int)n;
        n = cfg->max_rooms_per_socket;
        file_int(L, s, "limits", "maxRoomsPerSocket", 1, 1000000, "must be an integer 1..1000000", &n);
        cfg->max_rooms_per_socket = (int)n;
        n = (long long)cfg->max_rooms;
        file_int(L, s, "limits", "maxRooms", 1, MAX_ROOM_BUDGET, "must be an integer 1..100000000", &n);
        cfg->max_rooms = (size_t)n;
        n = (long long)cfg->max_memberships;
        file_int(L, s, "limits", "maxMemberships", 1, MAX_ROOM_BUDGET, "must be an integer 1..100000000", &n);
        cfg->max_memberships = (size_t)n;
        n = -1;
        file_int(L, s, "limits", "maxPendingSessions", 1, MAX_CONNECTIONS, "must be a positive integer", &n);
        if (n > 0) {
            cfg->max_pending_sessions = (int)n;
            L->pending_set = 1;
        }
        n = cfg->max_pending_per_address;
        file_int(L, s, "limits", "maxPendingPerAddress", 0, 1000000, "must be an integer 0..1000000 (0: no limit)", &n);
        cfg->max_pending_per_address = (int)n;
        n = cfg->max_pending_per_connection;
        file_int(L, s, "limits", "maxPendingPerConnection", 0, 1000000, "must be an integer 0..1000000 (0: no limit)",
                 &n);
        cfg->max_pending_per_connection = (int)n;
    }
    if ((s = section(L, root, "cors", cors_keys))) {
        file_bool(L, s, "cors", "credentials", &cfg->cors_credentials);
        const cJSON *o = item(s, "origins");
        if (o && !cJSON_IsArray(o)) {
            rc_config_error(L->errs, "cors.origins", "must be an array of origins");
        } else if (o) {
            size_t n = (size_t)cJSON_GetArraySize(o), k = 0;
            char **list = rc_calloc(n ? n : 1, sizeof(char *));
            int i = 0;
            for (const cJSON *c = o->child; c; c = c->next, i++) {
                if (cJSON_IsString(c) && c->valuestring[0]) {
                    list[k++] = rc_strdup(c->valuestring);
                } else {
                    char p[48];
                    snprintf(p, sizeof(p), "cors.origins[%d]", i);
                    rc_config_error(L->errs, p, "must be a non-empty string");
                }
            }
            set_cors(cfg, list, k);
        }
    }
    load_jwt(L, root);
    if ((s = section(L, root, "log", log_keys))) {
        if ((v = file_str(L, s, "log", "level"))) {
            int lvl = parse_log_level(v);
            if (lvl < 0) rc_config_error(L->errs, "log.level", "must be debug, info, warn or error");
            else cfg->log_level = lvl;
        }
        if ((v = file_str(L, s, "log", "format"))) {
            if (strcmp(v, "json") == 0) cfg->log_json = 1;
            else if (strcmp(v, "text") == 0) cfg->log_json = 0;
            else rc_config_error(L->errs, "log.format", "must be \"json\" or \"text\"");
        }
    }
    if ((s = section(L, root, "drain", drain_keys))) file_ms(L, s, "drain", "grace", &cfg->drain_grace_ms);
    if ((s = section(L, root, "tls", tls_keys))) {
        if ((v = file_str(L, s, "tls", "cert"))) set_str(&cfg->tls_cert_file, v);
        if ((v = file_str(L, s, "tls", "key"))) set_str(&cfg->tls_key_file, v);
    }
    if ((s = item(root, "jobs"))) rc_jobs_config_parse(&cfg->jobs, s, "jobs", L->errs);
    if ((s = item(root, "events"))) rc_jobs_events_config_parse(&cfg->jobs, s, "events", L->errs);
    if ((s = item(root, "presence"))) rc_presence_config_parse(&cfg->presence, s, "presence", L->errs);
    if ((s = item(root, "admin"))) rc_admin_config_parse(&cfg->admin, s, "admin", L->errs);
    if ((s = item(root, "dev"))) rc_dev_config_parse(&cfg->dev, s, L->errs);
    if ((s = item(root, "socketio"))) rc_socketio_config_parse(&cfg->socketio, s, "socketio", L->errs);
    if ((s = item(root, "transport"))) rc_server_config_parse(&cfg->transport, s, "transport", L->errs);
    L->namespaces = item(root, "namespaces");
}

static void load_path(struct loader *L, const char *file)
{
    size_t len;
    char *text = rc_read_file(file, &len);
    if (!text) {
        rc_config_error(L->errs, file, "cannot read: %s", strerror(errno));
        return;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1); /* + the NUL */
    if (!root) {
        int line = 1, col = 1;
        for (const char *c = text; end && c < end && c < text + len; c++) {
            if (*c == '\n') { line++; col = 1; }
            else col++;
        }
        rc_config_error(L->errs, file, "invalid JSON near line %d, column %d", line, col);
    } else if (!cJSON_IsObject(root)) {
        rc_config_error(L->errs, file, "the top level must be a JSON object");
    } else {
        load_file(L, root);
        if (L->namespaces) {
            L->namespaces_given = 1;
            L->cfg->rules = rc_rules_compile(L->namespaces, "namespaces", L->errs);
        }
        L->namespaces = NULL;
    }
    cJSON_Delete(root);
    rc_free(text);
}

/* ---- environment and flags ---------------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* an empty variable is the same as an unset one */
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || s[0] == ' ' || s[0] == '+') return -1;
    *out = v;
    return 0;
}

/* Splits a comma list, trimming spaces and skipping empty entries. */
static char **split_list(const char *s, size_t *count)
{
    char **list = NULL;
    size_t n = 0, len;
    const char *item;
    for (const char *r = s; (r = rc_list_next(r, &item, &len));) {
        if (!len) continue;
        list = rc_realloc(list, (n + 1) * sizeof(char *));
        list[n++] = rc_strndup(item, len);
    }
    *count = n;
    return list;
}

static void load_env(struct loader *L)
{
    rc_config *cfg = L->cfg;
    const char *v;
    long n;
    if ((v = env("ROOMCAST_PORT"))) {
        if (parse_long(v, &n) < 0) n = 0;
        if (check_port(L, "ROOMCAST_PORT", n) == 0) cfg->port = (int)n;
    }
    if ((v = env("ROOMCAST_BIND"))) set_str(&cfg->bind, v);
    if ((v = env("ROOMCAST_SEND_PATH")) && rc_server_send_path_parse(v, &cfg->transport.send_path) != 0)
        rc_config_error(L->errs, "ROOMCAST_SEND_PATH", "must be auto, io_uring or writev");
    if ((v = env("ROOMCAST_REDIS_URL")) && check_redis_url(L, "ROOMCAST_REDIS_URL", v) == 0)
        set_str(&cfg->redis_url, v);
    rc_redis_config_env(&cfg->redis, L->errs);
    if ((v = env("ROOMCAST_PREFIX")) && check_prefix(L, "ROOMCAST_PREFIX", v) == 0) set_str(&cfg->prefix, v);
    if ((v = env("ROOMCAST_NODE_ID")) && check_node_id(L, "ROOMCAST_NODE_ID", v) == 0) set_str(&cfg->node_id, v);
    if ((v = env("ROOMCAST_API_KEY"))) set_str(&cfg->api_key, v);
    rc_socketio_config_env(&cfg->socketio, env("ROOMCAST_SOCKETIO_PREFIX"), "ROOMCAST_SOCKETIO_PREFIX", L->errs);
    if ((v = env("ROOMCAST_TLS_CERT"))) set_str(&cfg->tls_cert_file, v);
    if ((v = env("ROOMCAST_TLS_KEY"))) set_str(&cfg->tls_key_file, v);
    if ((v = env("ROOMCAST_JWT_SECRET"))) {
        set_str(&cfg->jwt.hs_secret, v);
        cfg->jwt.hs_secret_len = strlen(v);
    }
    if ((v = env("ROOMCAST_JWT_PUBLIC_KEY_FILE"))) {
        set_str(&L->pubkey_file, v);
        L->pubkey_src = "ROOMCAST_JWT_PUBLIC_KEY_FILE";
    }
    if ((v = env("ROOMCAST_JWT_ALGS"))) {
        unsigned algs = 0;
        const char *why = NULL;
        if (rc_auth_parse_algs(v, &algs, &why) < 0)
            rc_config_error(L->errs, "ROOMCAST_JWT_ALGS", "%s", why ? why : "unknown algorithm");
        else if (!algs)
            rc_config_error(L->errs, "ROOMCAST_JWT_ALGS", "must name at least one algorithm");
        else
            cfg->jwt.algs = algs;
    }
    if ((v = env("ROOMCAST_CORS_ORIGINS"))) {
        size_t count;
        char **list = split_list(v, &count);
        set_cors(cfg, list, count);
    }
    if ((v = env("ROOMCAST_LOG_LEVEL"))) {
        int lvl = parse_log_level(v);
        if (lvl < 0) rc_config_error(L->errs, "ROOMCAST_LOG_LEVEL", "must be debug, info, warn or error");
        else cfg->log_level = lvl;
    }
    if ((v = env("ROOMCAST_LOG_FORMAT"))) {
        if (strcmp(v, "json") == 0) cfg->log_json = 1;
        else if (strcmp(v, "text") == 0) cfg->log_json = 0;
        else rc_config_error(L->errs, "ROOMCAST_LOG_FORMAT", "must be \"json\" or \"text\"");
    }
    rc_admin_config_env(&cfg->admin, L->errs);
    rc_dev_config_env(&cfg->dev, L->errs);
}

static void load_flags(struct loader *L, const rc_config_flags *flags)
{
    rc_config *cfg = L->cfg;
    if (flags->port != -1 && check_port(L, "--port", flags->port) == 0) cfg->port = flags->port;
    if (flags->redis_url && check_redis_url(L, "--redis", flags->redis_url) == 0)
        set_str(&cfg->redis_url, flags->redis_url);
    if (flags->node_id && check_node_id(L, "--node-id", flags->node_id) == 0) set_str(&cfg->node_id, flags->node_id);
}

/* ---- cross-setting checks ----------------------------------------------------------------- */

#define HS_ALGS (RC_ALG_HS256 | RC_ALG_HS384 | RC_ALG_HS512)
#define RS_ALGS (RC_ALG_RS256 | RC_ALG_RS384 | RC_ALG_RS512)
#define ES_ALGS (RC_ALG_ES256 | RC_ALG_ES384 | RC_ALG_ES512)

/* Reads the public key file and checks that it is a PEM public key of the family in use. */
static void load_public_key(struct loader *L)
{
    rc_auth_config *jwt = &L->cfg->jwt;
    size_t len;
    char *pem = rc_read_file(L->pubkey_file, &len);
    if (!pem) {
        rc_config_error(L->errs, L->pubkey_src, "cannot read %s: %s", L->pubkey_file, strerror(errno));
        return;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!key) {
        ERR_clear_error();
        rc_config_error(L->errs, L->pubkey_src, "%s is not a PEM public key (-----BEGIN PUBLIC KEY-----)",
                        L->pubkey_file);
        rc_free(pem);
        return;
    }
    int type = EVP_PKEY_get_base_id(key);
    EVP_PKEY_free(key);
    if ((jwt->algs & RS_ALGS) && type != EVP_PKEY_RSA)
        rc_config_error(L->errs, L->pubkey_src, "an RS algorithm is allowed but %s is not an RSA key",
                        L->pubkey_file);
    if ((jwt->algs & ES_ALGS) && type != EVP_PKEY_EC)
        rc_config_error(L->errs, L->pubkey_src, "an ES algorithm is allowed but %s is not an EC key",
                        L->pubkey_file);
    rc_free(jwt->public_key_pem);
    jwt->public_key_pem = pem;
    jwt->public_key_pem_len = len;
}

static int rules_verify_tokens(const rc_rules *rules)
{
    for (size_t i = 0; i < rc_rules_ns_count(rules); i++)
        if (rc_ns_rules_verifies_tokens(rc_rules_ns_at(rules, i))) return 1;
    return 0;
}

/* A namespace names Redis channels (P:ns:<ns>, P:room:<ns>:<room>, docs/redis.md), which split at
 * the first ':' after the namespace: one with ':' is refused here, with its path, rather than
 * at every publish once the node runs. Refused with or without Redis, so a config means the
 * same on one node and on many. */
static void check_ns_names(struct loader *L, const rc_rules *rules)
{
    for (size_t i = 0; i < rc_rules_ns_count(rules); i++) {
        const char *name = rc_ns_rules_name(rc_rules_ns_at(rules, i));
        if (!strchr(name, ':')) continue;
        char path[200];
        snprintf(path, sizeof(path), "namespaces.%s", name);
        rc_config_error(L->errs, path, "a namespace name may not contain ':' (it names Redis channels)");
    }
}

static void finish(struct loader *L)
{
    rc_config *cfg = L->cfg;
    if (!L->namespaces_given) cfg->rules = rc_rules_compile(NULL, "namespaces", L->errs);
    if (cfg->rules) check_ns_names(L, cfg->rules);
    rc_admin_config_check_ns(&cfg->admin, cfg->rules, L->errs);
    rc_socketio_config_check(&cfg->socketio, rc_redis_config_wanted(&cfg->redis, cfg->redis_url), L->errs);
    if (!L->body_set) cfg->http_max_body_bytes = cfg->max_payload;
    if (!L->pending_set) cfg->max_pending_sessions = cfg->max_connections >= 10 ? cfg->max_connections / 10 : 1;
    else if (cfg->max_pending_sessions > cfg->max_connections)
        rc_config_error(L->errs, "limits.maxPendingSessions", "must be at most limits.maxConnections (%d)",
                        cfg->max_connections);
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        rc_config_error(L->errs, cfg->tls_cert_file ? "tls.key" : "tls.cert",
                        "TLS needs both a certificate (tls.cert) and a key (tls.key)");
    for (int i = 0; i < 2; i++) {
        const char *f = i ? cfg->tls_key_file : cfg->tls_cert_file;
        if (f && access(f, R_OK) != 0)
            rc_config_error(L->errs, i ? "tls.key" : "tls.cert", "cannot read %s: %s", f, strerror(errno));
    }
    rc_redis_config_check(&cfg->redis, cfg->redis_url, L->errs);
    if (!cfg->node_id) {
        char host[256] = "";
        if (gethostname(host, sizeof(host) - 1) < 0 || !host[0]) strcpy(host, "roomcast");
        host[sizeof(host) - 1] = '\0';
        for (char *c = host; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                  *c == '_' || *c == '-'))
                *c = '-';
        char id[160];
        snprintf(id, sizeof(id), "%.100s-%ld", host, (long)getpid());
        cfg->node_id = rc_strdup(id);
    }
    if (L->pubkey_file) load_public_key(L);
    /* Key material is needed only if some namespace verifies tokens. */
    if (cfg->rules && !rules_verify_tokens(cfg->rules)) return;
    if ((cfg->jwt.algs & HS_ALGS) && !cfg->jwt.hs_secret)
        rc_config_error(L->errs, "jwt.secret",
                        "required when an HS algorithm is allowed (or set ROOMCAST_JWT_SECRET)");
    if ((cfg->jwt.algs & (RS_ALGS | ES_ALGS)) && !L->pubkey_file)
        rc_config_error(L->errs, "jwt.publicKeyFile",
                        "required when an RS or ES algorithm is allowed (or set ROOMCAST_JWT_PUBLIC_KEY_FILE)");
}

/* ---- entry points ------------------------------------------------------------------------- */

static void set_defaults(rc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->bind = rc_strdup("0.0.0.0");
    cfg->port = 3000;
    cfg->path = rc_strdup("/socket.io/");
    cfg->prefix = rc_strdup("roomcast");
    cfg->ping_interval_ms = 25000;
    cfg->ping_timeout_ms = 20000;
    cfg->connect_timeout_ms = 10000;
    cfg->upgrade_timeout_ms = 10000;
    cfg->max_payload = 1000000;
    cfg->allow_polling = 1;
    cfg->allow_websocket = 1;
    cfg->http_max_header_bytes = 16384;
    cfg->http_header_timeout_ms = 10000;
    cfg->http_keepalive_timeout_ms = 15000;
    cfg->max_outbound_bytes = 1048576;
    cfg->max_connections = 100000;
    cfg->max_rooms_per_socket = 1000;
    cfg->max_rooms = 100000;
    cfg->max_memberships = 1000000;
    cfg->max_pending_per_address = 128;
    cfg->max_pending_per_connection = 8;
    cfg->cors_credentials = 1;
    cfg->jwt.algs = RC_ALG_HS256;
    cfg->jwt.leeway_s = 30;
    cfg->jwt.user_claim = rc_strdup("sub");
    cfg->log_level = RC_LOG_INFO;
    cfg->log_json = !isatty(2);
    cfg->drain_grace_ms = 30000;
    rc_jobs_config_init(&cfg->jobs);
    rc_presence_config_default(&cfg->presence);
    rc_admin_config_init(&cfg->admin);
    rc_dev_config_init(&cfg->dev);
    rc_redis_config_init(&cfg->redis);
    rc_socketio_config_default(&cfg->socketio);
    rc_server_config_default(&cfg->transport);
}

int rc_config_load(rc_config *cfg, const rc_config_flags *flags, rc_config_errors *errs)
{
    static const rc_config_flags no_flags = {.port = -1};
    rc_config_errors mine = {0};
    struct loader L = {.cfg = cfg, .errs = &mine};
    if (!flags) flags = &no_flags;

    set_defaults(cfg);
    const char *file = flags->config_path ? flags->config_path : env("ROOMCAST_CONFIG");
    if (file) {
        cfg->config_path = rc_strdup(file);
        load_path(&L, file);
    }
    load_env(&L);
    load_flags(&L, flags);
    finish(&L);
    rc_free(L.pubkey_file);

    int failed = mine.count > 0;
    if (errs && errs->count == 0) {
        *errs = mine;
    } else if (errs) {
        errs->items = rc_realloc(errs->items, (errs->count + mine.count) * sizeof(*errs->items));
        memcpy(errs->items + errs->count, mine.items, mine.count * sizeof(*mine.items));
        errs->count += mine.count;
        rc_free(mine.items);
    } else {
        rc_config_errors_dispose(&mine);
    }
    if (failed) {
        rc_config_dispose(cfg);
        return -1;
    }
    return 0;
}

void rc_config_dispose(rc_config *cfg)
{
    if (!cfg) return;
    rc_free(cfg->bind);
    rc_free(cfg->path);
    rc_free(cfg->node_id);
    rc_free(cfg->prefix);
    rc_free(cfg->redis_url);
    rc_redis_config_dispose(&cfg->redis);
    rc_free(cfg->api_key);
    set_cors(cfg, NULL, 0);
    rc_auth_config_dispose(&cfg->jwt);
    rc_free(cfg->token_expired_event);
    rc_jobs_config_dispose(&cfg->jobs);
    rc_admin_config_dispose(&cfg->admin);
    rc_dev_config_dispose(&cfg->dev);
    rc_socketio_config_dispose(&cfg->socketio);
    rc_free(cfg->tls_cert_file);
    rc_free(cfg->tls_key_file);
    rc_free(cfg->trusted_proxies);
    rc_rules_free(cfg->rules);
    rc_free(cfg->config_path);
    memset(cfg, 0, sizeof(*cfg));
}
