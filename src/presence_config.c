/*
 * presence_config.c: the presence settings (file: presence.*, docs/config.md): defaults, and the
 * parser config.c calls for the "presence" object. Contract: include/roomcast/presence_config.h.
 *
 * What it does not do: read anything but that one object, or apply the settings (rc_presence_new
 * copies them). Problems go to the config's error list, each with its path, like every other
 * part of the config file.
 */
#include "roomcast/presence_config.h"

#include "roomcast/errors.h"

#include <cjson/cJSON.h>
#include <stdio.h>

void rc_presence_config_default(rc_presence_config *out)
{
    out->ttl_ms = 15000;
    out->heartbeat_ms = 5000;
}

static int parse_ms(const cJSON *obj, const char *path, const char *key, int *out,
                    rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return 0;
    char p[256];
    snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", key);
    double d = cJSON_IsNumber(j) ? j->valuedouble : -1;
    if (d < 1 || d > 86400000 || d != (double)(long long)d) {
        rc_config_error(errs, p, "must be an integer 1..86400000 (ms)");
        return -1;
    }
    *out = (int)d;
    return 0;
}

int rc_presence_config_parse(rc_presence_config *out, const cJSON *json, const char *path,
                             rc_config_errors *errs)
{
    static const char *const keys[] = {"ttl", "heartbeat", NULL};
    size_t before = errs ? errs->count : 0;
    int bad = 0;
    if (!path) path = "";
    rc_presence_config_default(out);
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, path, "must be an object like {\"ttl\":15000,\"heartbeat\":5000}");
        return -1;
    }
    rc__config_check_keys(json, path, keys, errs);
    bad |= parse_ms(json, path, "ttl", &out->ttl_ms, errs);
    bad |= parse_ms(json, path, "heartbeat", &out->heartbeat_ms, errs);
    if (!bad && out->ttl_ms < 2 * out->heartbeat_ms) {
        char p[256];
        snprintf(p, sizeof(p), "%s%sttl", path, path[0] ? "." : "");
        rc_config_error(errs, p, "must be at least twice the heartbeat (%d ms), or a node whose "
                        "heartbeat is a little late is taken for dead", out->heartbeat_ms);
        bad = -1;
    }
    if (errs && errs->count > before) bad = -1;
    if (bad) rc_presence_config_default(out);
    return bad ? -1 : 0;
}
