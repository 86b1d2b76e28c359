/*
 * admin_config.c: the Admin UI settings (file: admin.*, environment ROOMCAST_ADMIN_*;
 * docs/admin-ui.md): defaults, the parser config.c calls for the "admin" object, the environment,
 * and the check of the bcrypt hash. Contract: include/roomcast/admin_config.h.
 *
 * The hash is checked with libcrypt (crypt_rn, the same call src/admin.c verifies passwords
 * with): a hash it cannot use is refused here, at --check-config, not at the first login.
 *
 * What it does not do: apply the settings (src/admin.c), or read anything but its own object
 * and variables.
 */
#include "roomcast/admin_config.h"
#include "roomcast/common.h"
#include "roomcast/rules.h"

#include <cjson/cJSON.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COST 13   /* 2^13 rounds: about half a second of the event loop per login */

void rc_admin_config_init(rc_admin_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ns = rc_strdup("/admin");
    cfg->development = 1;
}

void rc_admin_config_dispose(rc_admin_config *cfg)
{
    rc_free(cfg->username);
    rc_free(cfg->password_hash);
    rc_free(cfg->ns);
    memset(cfg, 0, sizeof(*cfg));
}

int rc_admin_hash_ok(const char *hash, const char **why)
{
    static const char b64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    *why = NULL;
    if (strlen(hash) != 60 || hash[0] != '$' || hash[1] != '2' || !strchr("aby", hash[2]) || hash[3] != '$' ||
        hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9' || hash[6] != '$' ||
        strspn(hash + 7, b64) != 53) {
        *why = "must be a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters), e.g. from "
               "htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'";
        return 0;
    }
    int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
    if (cost < 4 || cost > MAX_COST) {
        *why = "bcrypt cost must be 4..13 (each login runs it on the event loop)";
        return 0;
    }
    struct crypt_data *cd = rc_calloc(1, sizeof(*cd));
    const char *out = crypt_rn("roomcast-check", hash, cd, (int)sizeof(*cd));
    int ok = out && strncmp(out, hash, 7) == 0 && strlen(out) == 60;
    rc_free(cd);
    if (!ok) *why = "this system's libcrypt cannot check this bcrypt hash";
    return ok;
}

static int read_str(const cJSON *obj, const char *path, const char *key, char **out, rc_config_errors *errs)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsString(j) || !j->valuestring[0] || strlen(j->valuestring) > 200) {
        rc_config_error(errs, path, "must be a non-empty string of at most 200 characters");
        return -1;
    }
    rc_free(*out);
    *out = rc_strdup(j->valuestring);
    return 0;
}

static int read_mode(const char *v, int *development)
{
    if (strcmp(v, "development") == 0) *development = 1;
    else if (strcmp(v, "production") == 0) *development = 0;
    else return -1;
    return 0;
}

int rc_admin_config_parse(rc_admin_config *cfg, const cJSON *json, const char *path, rc_config_errors *errs)
{
    static const char *const keys[] = {"username", "passwordHash", "readonly", "mode", "namespace", NULL};
    size_t before = errs ? errs->count : 0;
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, path, "must be an object like {\"username\":\"admin\",\"passwordHash\":\"$2b$10$...\"}");
        return -1;
    }
    rc__config_check_keys(json, path, keys, errs);
    char p[256];
    snprintf(p, sizeof(p), "%s.username", path);
    read_str(json, p, "username", &cfg->username, errs);
    snprintf(p, sizeof(p), "%s.passwordHash", path);
    read_str(json, p, "passwordHash", &cfg->password_hash, errs);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(json, "readonly");
    snprintf(p, sizeof(p), "%s.readonly", path);
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsBool(j)) rc_config_error(errs, p, "must be true or false");
        else cfg->readonly = cJSON_IsTrue(j);
    }
    j = cJSON_GetObjectItemCaseSensitive(json, "mode");
    snprintf(p, sizeof(p), "%s.mode", path);
    if (j && !cJSON_IsNull(j) && (!cJSON_IsString(j) || read_mode(j->valuestring, &cfg->development) < 0))
        rc_config_error(errs, p, "must be \"development\" or \"production\"");
    j = cJSON_GetObjectItemCaseSensitive(json, "namespace");
    snprintf(p, sizeof(p), "%s.namespace", path);
    if (j && !cJSON_IsNull(j)) {
        const char *v = cJSON_IsString(j) ? j->valuestring : "";
        if (v[0] != '/' || strlen(v) < 2 || strlen(v) > 100 || strpbrk(v, ",:?#* "))
            rc_config_error(errs, p, "must be like \"/admin\" (no , : ? # * or space)");
        else {
            rc_free(cfg->ns);
            cfg->ns = rc_strdup(v);
        }
    }
    return errs && errs->count > before ? -1 : 0;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int rc_admin_config_env(rc_admin_config *cfg, rc_config_errors *errs)
{
    size_t before = errs ? errs->count : 0;
    const char *v;
    if ((v = env("ROOMCAST_ADMIN_USERNAME"))) {
        rc_free(cfg->username);
        cfg->username = rc_strdup(v);
    }
    if ((v = env("ROOMCAST_ADMIN_PASSWORD_HASH"))) {
        rc_free(cfg->password_hash);
        cfg->password_hash = rc_strdup(v);
    }
    if ((v = env("ROOMCAST_ADMIN_READONLY"))) {
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0) cfg->readonly = 1;
        else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) cfg->readonly = 0;
        else rc_config_error(errs, "ROOMCAST_ADMIN_READONLY", "must be true, false, 1 or 0");
    }
    if ((v = env("ROOMCAST_ADMIN_MODE")) && read_mode(v, &cfg->development) < 0)
        rc_config_error(errs, "ROOMCAST_ADMIN_MODE", "must be \"development\" or \"production\"");
    cfg->enabled = 0;
    if (!cfg->username != !cfg->password_hash) {
        rc_config_error(errs, cfg->username ? "admin.passwordHash" : "admin.username",
                        "the Admin UI needs both a username and a bcrypt password hash "
                        "(ROOMCAST_ADMIN_USERNAME, ROOMCAST_ADMIN_PASSWORD_HASH), or neither");
    } else if (cfg->username) {
        const char *why;
        if (strlen(cfg->username) > 200)
            rc_config_error(errs, "admin.username", "must be at most 200 characters");
        else if (!rc_admin_hash_ok(cfg->password_hash, &why))
            rc_config_error(errs, "admin.passwordHash", "%s", why);
        else
            cfg->enabled = 1;
    }
    return errs && errs->count > before ? -1 : 0;
}

void rc_admin_config_check_ns(const rc_admin_config *cfg, const struct rc_rules *rules, rc_config_errors *errs)
{
    if (cfg->enabled && rules && rc_rules_find_ns(rules, cfg->ns, strlen(cfg->ns)))
        rc_config_error(errs, "admin.namespace", "%s is also a namespace of the config (namespaces): "
                        "choose another name for the Admin UI's", cfg->ns);
}
