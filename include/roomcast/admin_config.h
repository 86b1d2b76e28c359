/*
 * admin_config.h: the settings of the Socket.IO Admin UI server side (config file section
 * "admin", environment ROOMCAST_ADMIN_*; docs/admin-ui.md, docs/config.md), and their parsers.
 * Types only, apart from the parsers: config.h embeds rc_admin_config and includes this header,
 * not admin.h. Implementation: src/admin_config.c.
 *
 * Off by default: with no username and password hash there is no /admin namespace at all. Both
 * are given or neither; the hash must be bcrypt ($2a$, $2b$ or $2y$, cost 4..13) that this
 * system's libcrypt can check.
 *
 * Ownership: rc_admin_config owns its strings; rc_admin_config_dispose frees them.
 *
 * API in call order: rc_admin_config_init -> rc_admin_config_parse (file) ->
 * rc_admin_config_env (environment, then the checks) -> ... -> rc_admin_config_dispose.
 */
#ifndef ROOMCAST_ADMIN_CONFIG_H
#define ROOMCAST_ADMIN_CONFIG_H

#include "roomcast/errors.h"

struct cJSON;

typedef struct rc_admin_config {
    int enabled;            /* set by rc_admin_config_env: a username and a valid hash */
    char *username;         /* admin.username / ROOMCAST_ADMIN_USERNAME; NULL = off */
    char *password_hash;    /* admin.passwordHash / ROOMCAST_ADMIN_PASSWORD_HASH (bcrypt) */
    char *ns;               /* admin.namespace: "/admin" */
    int readonly;           /* admin.readonly / ROOMCAST_ADMIN_READONLY: no join, leave, disconnect */
    int development;        /* admin.mode / ROOMCAST_ADMIN_MODE: "development" (1, default: sockets,
                               rooms and events are shown) or "production" (0: statistics only) */
} rc_admin_config;

void rc_admin_config_init(rc_admin_config *cfg);
void rc_admin_config_dispose(rc_admin_config *cfg);
/* Reads the "admin" object over what cfg holds. Problems go to errs as "<path>.<key>: ...";
 * unknown keys are errors. Returns 0, or -1 when it added an error. */
int rc_admin_config_parse(rc_admin_config *cfg, const struct cJSON *json, const char *path,
                          rc_config_errors *errs);
/* Reads ROOMCAST_ADMIN_USERNAME, ROOMCAST_ADMIN_PASSWORD_HASH, ROOMCAST_ADMIN_READONLY,
 * ROOMCAST_ADMIN_MODE over the file's values, then checks the whole (both or neither of
 * username and hash; a bcrypt hash libcrypt accepts) and sets enabled. */
int rc_admin_config_env(rc_admin_config *cfg, rc_config_errors *errs);
/* The admin namespace must not be one of the config's namespaces (rules may be NULL). */
struct rc_rules;
void rc_admin_config_check_ns(const rc_admin_config *cfg, const struct rc_rules *rules, rc_config_errors *errs);
/* 1 if hash is a bcrypt hash this system can verify (and its cost is at most 13), else 0 with
 * *why set to a static reason. */
int rc_admin_hash_ok(const char *hash, const char **why);

#endif
