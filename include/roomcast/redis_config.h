/*
 * redis_config.h: the Redis settings beyond the URL (file: redis.tls, redis.sentinels,
 * redis.masterName, redis.sentinelPassword, redis.cluster; env ROOMCAST_REDIS_CA_FILE,
 * ROOMCAST_REDIS_CERT_FILE, ROOMCAST_REDIS_KEY_FILE, ROOMCAST_REDIS_SENTINELS,
 * ROOMCAST_REDIS_MASTER_NAME, ROOMCAST_REDIS_SENTINEL_PASSWORD, ROOMCAST_REDIS_CLUSTER;
 * docs/config.md, docs/redis.md). A types-only header: config.h embeds rc_redis_config in
 * rc_config, so it includes neither config.h nor anything of the backplane. Implementation:
 * src/redis_config.c.
 *
 * The URL itself stays rc_config.redis_url (parsed by redis_url.h); it supplies the scheme (TLS
 * or not), the credentials and the db in every mode, and the address in the single-Redis mode.
 * With sentinels its host is replaced by the master the sentinels name; with a cluster it is one
 * more seed node. The Redis backplane is on when any of URL, sentinels or cluster is given
 * (rc_redis_config_wanted).
 *
 * What it does not do: connect, resolve names, or keep the TLS context (redis_tls.h builds one
 * from these paths when the backplane starts, and once at load time only to check the files).
 *
 * Ownership: rc_redis_config owns its strings and arrays; rc_redis_config_dispose frees them. The
 * *_src fields point to static strings naming where a value came from (for messages).
 *
 * API in call order: rc_redis_config_init -> rc_redis_config_parse (file section) ->
 * rc_redis_config_env -> rc_redis_config_check (with the final URL) -> ... ->
 * rc_redis_config_dispose.
 */
#ifndef ROOMCAST_REDIS_CONFIG_H
#define ROOMCAST_REDIS_CONFIG_H

#include <stddef.h>

/* Types only: this header must not include config.h. */
struct cJSON;
struct rc_config_errors;

/* One host:port of a sentinel or cluster node; host without brackets for IPv6. */
typedef struct rc_redis_addr {
    char *host;
    int port;
} rc_redis_addr;

typedef struct rc_redis_config {
    /* TLS (only with rediss://): PEM paths, NULL when not given. */
    char *ca_file;               /* NULL: the system's CAs */
    char *cert_file;             /* client certificate (mutual TLS), with key_file */
    char *key_file;
    char *server_name;           /* name checked in the server's certificate and sent as SNI;
                                    NULL: the host the node connects to */
    const char *ca_src, *cert_src, *key_src, *server_name_src;

    /* Sentinel: the master's name, and sentinels asked for its address. */
    rc_redis_addr *sentinels;
    size_t sentinel_count;
    char *master_name;
    char *sentinel_password;     /* AUTH to the sentinels (their requirepass); NULL: none */
    char *sentinel_user;         /* with sentinel_password for an ACL user; NULL: default user */
    const char *sentinels_src, *master_name_src;

    /* Cluster: seed nodes (any of them); the node learns the rest with CLUSTER SHARDS/SLOTS. */
    rc_redis_addr *cluster;
    size_t cluster_count;
    const char *cluster_src;
} rc_redis_config;

void rc_redis_config_init(rc_redis_config *cfg);
void rc_redis_config_dispose(rc_redis_config *cfg);

/* Reads the config file's "redis" object (path "redis"): its keys tls, sentinels, masterName,
 * sentinelPassword, sentinelUser, cluster. Keys url and prefix belong to config.c; any other key
 * is refused. json NULL is fine. Problems go to errs with their path; returns 0 or -1. */
int rc_redis_config_parse(rc_redis_config *cfg, const struct cJSON *json,
                          struct rc_config_errors *errs);
/* Reads the ROOMCAST_REDIS_* variables above over what cfg holds. 0 or -1 (errs got a problem). */
int rc_redis_config_env(rc_redis_config *cfg, struct rc_config_errors *errs);
/* Cross checks with the final URL (NULL when none): contradictions (sentinels without a master
 * name or the reverse, cluster with sentinels, TLS files without rediss://, a unix URL with
 * sentinels, cluster or TLS, a certificate without its key, a cluster URL with a db), and the TLS
 * files loaded once with OpenSSL (unreadable or bad files named with OpenSSL's reason). Each
 * problem names the field's source. 0 or -1. */
int rc_redis_config_check(const rc_redis_config *cfg, const char *url,
                          struct rc_config_errors *errs);

/* 1 when the node runs the Redis backplane: a URL, sentinels or a cluster is configured. */
int rc_redis_config_wanted(const rc_redis_config *cfg, const char *url);

/* Parses "host:port,host:port" (spaces around items allowed; "[v6]:port"; port defaults to
 * default_port when absent) into a new array. 0, or -1 with *err a static reason (nothing
 * allocated then). Exposed for the unit tests and the file's arrays. */
int rc_redis_addr_list_parse(const char *s, int default_port, rc_redis_addr **out, size_t *count,
                             const char **err);
/* One "host[:port]". 0, or -1 with *err. */
int rc_redis_addr_parse(const char *s, int default_port, rc_redis_addr *out, const char **err);
void rc_redis_addr_list_free(rc_redis_addr *list, size_t count);

#endif
