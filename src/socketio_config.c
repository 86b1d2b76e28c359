/*
 * socketio_config.c: the Socket.IO Redis formats setting (file: socketio.prefix, env
 * ROOMCAST_SOCKETIO_PREFIX; docs/config.md): the parser config.c calls for the "socketio" object
 * and the variable, and the one cross-setting check. Contract: include/roomcast/socketio_config.h.
 *
 * What it does not do: read anything else, or apply the setting (src/node_socketio.c does).
 */
#include "roomcast/socketio_config.h"

#include "roomcast/common.h"
#include "roomcast/errors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

void rc_socketio_config_default(rc_socketio_config *out)
{
    out->prefix = NULL;
}

/* A prefix names channels: 1..RC_SOCKETIO_PREFIX_MAX bytes, no control characters. */
static int prefix_set(rc_socketio_config *out, const char *v, const char *path, rc_config_errors *errs)
{
    size_t n = strlen(v);
    int ok = n >= 1 && n <= RC_SOCKETIO_PREFIX_MAX;
    for (size_t i = 0; ok && i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ok = 0;
    if (!ok) {
        rc_config_error(errs, path, "must be 1..%d bytes without control characters (the key prefix of "
                        "@socket.io/redis-emitter and @socket.io/redis-adapter, usually \"socket.io\")",
                        RC_SOCKETIO_PREFIX_MAX);
        return -1;
    }
    rc_free(out->prefix);
    out->prefix = rc_strdup(v);
    return 0;
}

int rc_socketio_config_parse(rc_socketio_config *out, const cJSON *json, const char *path,
                             rc_config_errors *errs)
{
    static const char *const keys[] = {"prefix", NULL};
    if (!path) path = "";
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, path, "must be an object like {\"prefix\":\"socket.io\"}");
        return -1;
    }
    size_t before = errs ? errs->count : 0;
    rc__config_check_keys(json, path, keys, errs);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(json, "prefix");
    if (p && !cJSON_IsNull(p)) {
        char at[256];
        snprintf(at, sizeof(at), "%s%sprefix", path, path[0] ? "." : "");
        if (!cJSON_IsString(p)) rc_config_error(errs, at, "must be a string such as \"socket.io\"");
        else prefix_set(out, p->valuestring, at, errs);
    }
    return errs && errs->count > before ? -1 : 0;
}

int rc_socketio_config_env(rc_socketio_config *out, const char *value, const char *source,
                           rc_config_errors *errs)
{
    if (!value || !value[0]) return 0;
    return prefix_set(out, value, source, errs);
}

void rc_socketio_config_check(const rc_socketio_config *c, int has_redis, rc_config_errors *errs)
{
    if (c->prefix && !has_redis)
        rc_config_error(errs, "socketio.prefix",
                        "needs Redis (redis.url, ROOMCAST_REDIS_URL, sentinels or a cluster): the emitter and "
                        "the adapter publish on Redis, which the embedded single-node backplane does not use");
}

void rc_socketio_config_dispose(rc_socketio_config *c)
{
    rc_free(c->prefix);
    c->prefix = NULL;
}
