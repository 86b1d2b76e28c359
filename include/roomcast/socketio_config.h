/*
 * socketio_config.h: the setting that makes a node speak Socket.IO's own Redis formats (file:
 * socketio.*, env ROOMCAST_SOCKETIO_PREFIX; docs/config.md, docs/redis.md "Socket.IO's Redis
 * formats"), a types-only header: config.h embeds rc_socketio_config in rc_config. Implementation:
 * src/socketio_config.c.
 *
 * What it does not do: apply the setting (the node does, src/node_socketio.c) or know the rest
 * of the config, except for the one contradiction it checks (rc_socketio_config_check: the
 * formats travel over Redis, so a prefix without Redis is refused).
 *
 * Ownership: prefix is owned by the struct; rc_socketio_config_dispose frees it.
 *
 * API in call order: rc_socketio_config_default -> rc_socketio_config_parse (file) and/or
 * rc_socketio_config_env -> rc_socketio_config_check -> ... -> rc_socketio_config_dispose.
 */
#ifndef ROOMCAST_SOCKETIO_CONFIG_H
#define ROOMCAST_SOCKETIO_CONFIG_H

/* Types only: this header must not include config.h. */
struct cJSON;
struct rc_config_errors;

/* The longest prefix accepted (it names every channel, which also carry a namespace and a room). */
#define RC_SOCKETIO_PREFIX_MAX 200

typedef struct rc_socketio_config {
    /* The key prefix K of @socket.io/redis-emitter and @socket.io/redis-adapter (their default is
     * "socket.io"); NULL: off (no subscription, no per-message work). */
    char *prefix;
} rc_socketio_config;

void rc_socketio_config_default(rc_socketio_config *out);
/* Reads the file's "socketio" object ({"prefix":"socket.io"}; NULL or JSON null: nothing).
 * Problems go to errs as "<path>.<key>: <message>". 0, or -1 when errs got a problem. */
int rc_socketio_config_parse(rc_socketio_config *out, const struct cJSON *json, const char *path,
                             struct rc_config_errors *errs);
/* ROOMCAST_SOCKETIO_PREFIX (value non-NULL and non-empty): overrides the file. 0 or -1. */
int rc_socketio_config_env(rc_socketio_config *out, const char *value, const char *source,
                           struct rc_config_errors *errs);
/* The cross-setting checks, once everything is read: a prefix needs the Redis backplane
 * (has_redis 0: the embedded backplane, which has no Redis to hear the emitter on). */
void rc_socketio_config_check(const rc_socketio_config *c, int has_redis, struct rc_config_errors *errs);
void rc_socketio_config_dispose(rc_socketio_config *c);

#endif
