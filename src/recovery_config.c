/*
 * recovery_config.c: the "recovery" object of a namespace (docs/config.md): defaults, parsing,
 * Contract:
 * include/roomcast/recovery_config.h. Called by src/rules_compile.c for each namespace.
 *
 * What it does not do: anything at run time: whether an emit is kept is asked of the rules
 * (rc_ns_rules_recovery_keeps, src/rules_run.c), the recovery itself is src/node_recovery.c.
 */
#include "roomcast/recovery_config.h"

#include "roomcast/common.h"
#include "roomcast/errors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void set_defaults(rc_recovery_config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_disconnection_ms = 120000;
    c->max_length = 100000;
    c->max_replay_scan = 50000;
    c->max_recoveries_per_minute = 30;
    c->presence_grace = 1;
}

static void subpath(char *out, size_t cap, const char *path, const char *key)
{
    snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

static int parse_uint(const cJSON *obj, const char *path, const char *key, double lo, double hi,
                      double *out, rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return 0;
    double d = cJSON_IsNumber(j) ? j->valuedouble : -1;
    if (d < lo || d > hi || d != (double)(long long)d) {
        char p[256];
        subpath(p, sizeof(p), path, key);
        rc_config_error(errs, p, "must be an integer %.0f..%.0f", lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static int parse_bool(const cJSON *obj, const char *path, const char *key, int *out, rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsBool(j)) {
        char p[256];
        subpath(p, sizeof(p), path, key);
        rc_config_error(errs, p, "must be true or false");
        return -1;
    }
    *out = cJSON_IsTrue(j);
    return 0;
}

/* An array of 0..256 non-empty strings of at most 200 bytes each. */
static int parse_globs(const cJSON *obj, const char *path, const char *key, char ***out, size_t *n,
                       rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return 1; /* absent: the caller's default */
    char p[256];
    subpath(p, sizeof(p), path, key);
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > 256) {
        rc_config_error(errs, p, "must be an array of at most 256 globs");
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 200) {
            rc_config_error(errs, p, "each glob is a non-empty string of at most 200 bytes");
            return -1;
        }
    }
    size_t count = (size_t)cJSON_GetArraySize(j), i = 0;
    *out = rc_calloc(count ? count : 1, sizeof(char *));
    cJSON_ArrayForEach(it, j) (*out)[i++] = rc_strdup(it->valuestring);
    *n = count;
    return 0;
}

int rc_recovery_config_parse(rc_recovery_config *out, const cJSON *json, const char *path,
                             rc_config_errors *errs)
{
    static const char *const keys[] = {"enabled", "maxDisconnectionDuration", "maxLength", "maxReplayScan",
                                       "rooms", "volatile", "presenceGrace", "maxRecoveriesPerMinute", NULL};
    size_t before = errs ? errs->count : 0;
    if (!path) path = "";
    set_defaults(out);
    if (json && !cJSON_IsNull(json)) {
        if (!cJSON_IsObject(json)) {
            rc_config_error(errs, path, "must be an object like {\"enabled\":true,"
                                        "\"maxDisconnectionDuration\":120000}");
            return -1;
        }
        rc__config_check_keys(json, path, keys, errs);
        double d = out->max_disconnection_ms;
        parse_bool(json, path, "enabled", &out->enabled, errs);
        if (parse_uint(json, path, "maxDisconnectionDuration", 1000, 86400000, &d, errs) == 0)
            out->max_disconnection_ms = (unsigned)d;
        d = (double)out->max_length;
        if (parse_uint(json, path, "maxLength", 1000, 100000000, &d, errs) == 0)
            out->max_length = (unsigned long)d;
        d = (double)out->max_replay_scan;
        if (parse_uint(json, path, "maxReplayScan", 1000, 100000000, &d, errs) == 0)
            out->max_replay_scan = (unsigned long)d;
        d = out->max_recoveries_per_minute;
        if (parse_uint(json, path, "maxRecoveriesPerMinute", 0, 1000000, &d, errs) == 0)
            out->max_recoveries_per_minute = (unsigned)d;
        parse_bool(json, path, "presenceGrace", &out->presence_grace, errs);
        parse_globs(json, path, "rooms", &out->rooms, &out->nrooms, errs);
        parse_globs(json, path, "volatile", &out->volatile_events, &out->nvolatile, errs);
    }
    if (!out->rooms) {
        out->rooms = rc_calloc(1, sizeof(char *));
        out->rooms[0] = rc_strdup("*");
        out->nrooms = 1;
    }
    if (errs && errs->count > before) {
        rc_recovery_config_dispose(out);
        set_defaults(out);
        return -1;
    }
    return 0;
}

void rc_recovery_config_dispose(rc_recovery_config *c)
{
    for (size_t i = 0; i < c->nrooms; i++) rc_free(c->rooms[i]);
    rc_free(c->rooms);
    for (size_t i = 0; i < c->nvolatile; i++) rc_free(c->volatile_events[i]);
    rc_free(c->volatile_events);
    c->rooms = c->volatile_events = NULL;
    c->nrooms = c->nvolatile = 0;
}
