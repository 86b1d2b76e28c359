/*
 * presence_config.h: the settings of presence (file: presence.*, docs/config.md), a types-only
 * header: config.h embeds rc_presence_config in rc_config, and presence.h includes this header,
 * so it includes neither of them. Implementation: src/presence_config.c.
 *
 * What it does not do: it does not apply the settings (rc_presence_new copies them, and raises
 * a heartbeat or TTL that a caller built by hand out of range), and it knows nothing of the rest
 * of the config file.
 *
 * Ownership: rc_presence_config holds no pointers; copy it freely.
 *
 * API in call order: rc_presence_config_default, or rc_presence_config_parse (which sets the
 * defaults first) -> rc_presence_new.
 */
#ifndef ROOMCAST_PRESENCE_CONFIG_H
#define ROOMCAST_PRESENCE_CONFIG_H

/* Types only: this header must not include config.h. */
struct cJSON;
struct rc_config_errors;

/* Timing, from the config object {"ttl":15000,"heartbeat":5000} (milliseconds). A node whose
 * last heartbeat is older than ttl_ms is swept; its users who are nowhere else are reported
 * offline within ttl_ms + heartbeat_ms of its last heartbeat. */
typedef struct rc_presence_config {
    int ttl_ms;        /* 15000 */
    int heartbeat_ms;  /* 5000; ttl_ms must be at least 2 * heartbeat_ms */
} rc_presence_config;

void rc_presence_config_default(rc_presence_config *out);
/* Sets the defaults, then reads json (NULL or JSON null: defaults). Problems are added to errs
 * as "<path>.<key>: <message>". Returns 0, or -1 when errs got a problem (out holds the
 * defaults then). */
int rc_presence_config_parse(rc_presence_config *out, const struct cJSON *json, const char *path,
                             struct rc_config_errors *errs);

#endif
