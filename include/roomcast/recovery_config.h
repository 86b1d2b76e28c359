/*
 * recovery_config.h: a namespace's connection state recovery settings (the "recovery" object of
 * a namespace, docs/config.md and docs/recovery.md), a types-only header: the compiled rules
 * embed rc_recovery_config in each namespace, so it includes nothing of the rules or the config.
 * Implementation: src/recovery_config.c.
 *
 * What it does not do: apply the settings (the node does: src/node_recovery.c) or know whether
 * Redis is there (recovery needs it; the node turns a namespace's recovery off without Redis).
 *
 * Ownership: the globs belong to the struct; rc_recovery_config_dispose frees them.
 *
 * API in call order: rc_recovery_config_parse (defaults first) -> (rules: rc_ns_rules_recovery,
 * rc_ns_rules_recovery_keeps) -> rc_recovery_config_dispose.
 */
#ifndef ROOMCAST_RECOVERY_CONFIG_H
#define ROOMCAST_RECOVERY_CONFIG_H

#include <stddef.h>

struct cJSON;
struct rc_config_errors;

typedef struct rc_recovery_config {
    int enabled;                    /* "enabled": false (the default: no pid, nothing kept) */
    unsigned max_disconnection_ms;  /* "maxDisconnectionDuration": 120000 (1 s .. 24 h) */
    unsigned long max_length;       /* "maxLength": 100000 entries kept at most per namespace
                                       (approximately, a memory bound; 1000 .. 100000000) */
    unsigned long max_replay_scan;  /* "maxReplayScan": 50000 history entries read at most by one
                                       recovery (1000 .. 100000000); a recovery that would read
                                       more is a fresh session (a CPU bound, docs/security.md) */
    unsigned max_recoveries_per_minute; /* "maxRecoveriesPerMinute": 30 recoveries at most per
                                       user (per pid without a user) and namespace in a minute,
                                       cluster-wide; more are fresh sessions (0 = unlimited;
                                       0 .. 1000000; a CPU bound, docs/security.md) */
    int presence_grace;             /* "presenceGrace": true: a user's offline is announced only
                                       once the window has passed without a reconnect */
    char **rooms;                   /* "rooms": globs of the rooms whose events are kept
                                       (default ["*"]); the user room is one of them if it matches */
    size_t nrooms;
    char **volatile_events;         /* "volatile": globs of event names never kept (default []) */
    size_t nvolatile;
} rc_recovery_config;

/* Sets the defaults, then reads json (NULL or JSON null: defaults, recovery off). Problems are
 * added to errs as "<path>.<key>: <message>". Returns 0, or -1 when errs got a problem. */
int rc_recovery_config_parse(rc_recovery_config *out, const struct cJSON *json, const char *path,
                             struct rc_config_errors *errs);
void rc_recovery_config_dispose(rc_recovery_config *c);

#endif
