/*
 * config.h: every setting of a node in one struct, built once at start from
 *   built-in defaults -> JSON config file -> environment (ROOMCAST_*) -> command-line flags,
 * then validated. A node never starts half-configured: rc_config_load either returns a complete,
 * valid config or a list of problems, each prefixed with the field's path in the JSON file
 * ("engine.pingInterval: must be a positive integer (ms)", "namespaces./chat.events.join[0]: ...").
 *
 * The file format and the rules language are documented in docs/config.md.
 *
 * Ownership: rc_config owns every string and the compiled rules; rc_config_dispose frees them.
 */
#ifndef ROOMCAST_CONFIG_H
#define ROOMCAST_CONFIG_H

#include <stddef.h>
#include "roomcast/auth.h"
#include "roomcast/errors.h"
#include "roomcast/admin_config.h"
#include "roomcast/config_dev.h"
#include "roomcast/jobs_config.h"
#include "roomcast/presence_config.h"
#include "roomcast/redis_config.h"
#include "roomcast/socketio_config.h"
#include "roomcast/server_config.h"

struct rc_rules;
struct rc_cidr;

/* What the node does when the token a socket connected with expires (file: jwt.onExpiry). */
enum rc_token_expiry {
    RC_TOKEN_EXPIRY_RECONNECT = 0, /* "reconnect" (default): close the Engine.IO session */
    RC_TOKEN_EXPIRY_DISCONNECT,    /* "disconnect": namespace DISCONNECT, no automatic reconnect */
    RC_TOKEN_EXPIRY_IGNORE,        /* "ignore": the socket keeps its access (tokens checked at CONNECT only) */
};

/* Command-line flags (NULL / -1 when not given); they override everything else. */
typedef struct rc_config_flags {
    const char *config_path;   /* --config */
    int port;                  /* --port, -1 if absent */
    const char *redis_url;     /* --redis */
    const char *node_id;       /* --node-id */
} rc_config_flags;

typedef struct rc_config {
    /* listener and identity */
    char *bind;                    /* "0.0.0.0"; env ROOMCAST_BIND; file listen.bind */
    int port;                      /* 3000; env ROOMCAST_PORT; file listen.port */
    char *path;                    /* Engine.IO path, "/socket.io/" (always ends with '/'); file path */
    char *node_id;                 /* hostname-pid; env ROOMCAST_NODE_ID; file nodeId */
    char *prefix;                  /* "roomcast"; env ROOMCAST_PREFIX; file redis.prefix */
    char *redis_url;               /* NULL = embedded backplane; env ROOMCAST_REDIS_URL; file redis.url */
    char *api_key;                 /* NULL = /api/publish disabled; env ROOMCAST_API_KEY; file api.key */

    /* Engine.IO (file: engine.*) */
    int ping_interval_ms;          /* 25000 */
    int ping_timeout_ms;           /* 20000 */
    int connect_timeout_ms;        /* 10000: no namespace connected by then -> closed (the
                                      deadline of a pending session) */
    int upgrade_timeout_ms;        /* 10000 */
    size_t max_payload;            /* 1000000 bytes, advertised as maxPayload */
    int allow_polling;             /* 1; engine.transports */
    int allow_websocket;           /* 1 */

    /* HTTP (file: http.*) */
    size_t http_max_header_bytes;  /* 16384 -> 431 */
    size_t http_max_body_bytes;    /* max_payload -> 413 (polling POST and /api/publish) */
    int http_header_timeout_ms;    /* 10000: a request's headers must arrive within this */
    int http_keepalive_timeout_ms; /* 15000: idle keep-alive connection closed after this */
    struct rc_cidr *trusted_proxies; /* none; http.trustedProxies: peers whose last X-Forwarded-For
                                        line names the client (for the per-address limits) */
    size_t trusted_proxy_count;

    /* per-socket and per-node limits (file: limits.*) */
    size_t max_outbound_bytes;     /* 1 MiB: a socket whose unsent bytes exceed this is dropped */
    int max_connections;           /* 100000 TCP connections, and as many Engine.IO sessions */
    int max_rooms_per_socket;      /* 1000: a join over it fails with "too_many_rooms" */
    size_t max_rooms;              /* 100000 rooms with local members (all namespaces): a join
                                      that would open one more fails with "room_limit" */
    size_t max_memberships;        /* 1000000 socket-room memberships: a join past it fails
                                      with "room_limit" */
    int max_pending_sessions;      /* maxConnections / 10: sessions without a namespace, in all
                                      (the oldest is closed to make room) */
    int max_pending_per_address;   /* 128 (0: none): per client address (IPv6 /64), else 429 */
    int max_pending_per_connection; /* 8 (0: none): per TCP connection, else 429 and close */

    /* CORS (file: cors.*; env ROOMCAST_CORS_ORIGINS comma list) */
    char **cors_origins;
    size_t cors_origin_count;
    int cors_credentials;          /* 1 */

    /* JWT (file: jwt.*; env ROOMCAST_JWT_SECRET, ROOMCAST_JWT_PUBLIC_KEY_FILE, ROOMCAST_JWT_ALGS) */
    rc_auth_config jwt;
    int token_expiry;              /* enum rc_token_expiry, reconnect; file jwt.onExpiry */
    char *token_expired_event;     /* emitted to the socket before it is closed for expiry;
                                      NULL = none; file jwt.expiredEvent */

    /* logs (env ROOMCAST_LOG_LEVEL, ROOMCAST_LOG_FORMAT; file log.*) */
    int log_level;                 /* enum rc_log_level, info */
    int log_json;                  /* 1 = json, 0 = text; default: text on a tty */

    int drain_grace_ms;            /* 30000 (file: drain.grace) */

    /* TLS on the listener (file: tls.cert / tls.key, PEM paths; env ROOMCAST_TLS_CERT and
     * ROOMCAST_TLS_KEY). Both or neither; loaded and checked when the node starts. */
    char *tls_cert_file;
    char *tls_key_file;

    rc_jobs_config jobs;           /* BullMQ hand-off (file: jobs.*) and P:events (file: events.*) */
    rc_presence_config presence;   /* presence TTL and heartbeat (file: presence.*) */
    rc_admin_config admin;         /* the Admin UI's /admin namespace (file: admin.*); off by default */
    rc_dev_config dev;             /* the development page (file: dev.*), off by default */
    rc_redis_config redis;         /* Redis TLS, Sentinel, Cluster (file: redis.*; redis_config.h) */
    rc_socketio_config socketio;   /* Socket.IO's Redis formats (file: socketio.*) */
    rc_server_config transport;    /* send path (file: transport.*, env ROOMCAST_SEND_PATH) */

    struct rc_rules *rules;        /* compiled namespaces and rules (file: namespaces) */
    char *config_path;             /* the file read, or NULL */
} rc_config;

/* Builds the config. Returns 0, or -1 with errs filled (cfg is then disposed and zeroed). */
int rc_config_load(rc_config *cfg, const rc_config_flags *flags, rc_config_errors *errs);
void rc_config_dispose(rc_config *cfg);

#endif
