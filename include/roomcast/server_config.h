/*
 * server_config.h: the transport's settings (file: transport.*, env ROOMCAST_SEND_PATH;
 * docs/config.md), a types-only header: config.h embeds rc_server_config in rc_config, and
 * server.h includes this header, so it includes neither of them. Implementation:
 * src/server_config.c.
 *
 * What it does not do: apply the settings (rc_server_set_send_path does, at start), or know
 * anything else of the config file.
 *
 * Ownership: rc_server_config holds no pointers; copy it freely.
 *
 * API in call order: rc_server_config_default, then rc_server_config_parse (file) and
 * rc_server_send_path_parse (env) -> rc_server_set_send_path.
 */
#ifndef ROOMCAST_SERVER_CONFIG_H
#define ROOMCAST_SERVER_CONFIG_H

/* Types only: this header must not include config.h. */
struct cJSON;
struct rc_config_errors;

/* How plain (non-TLS) sockets are written at the end of a loop turn. */
enum rc_send_path {
    RC_SEND_PATH_AUTO = 0,   /* io_uring when the start-up probe passes, else writev */
    RC_SEND_PATH_WRITEV,     /* one writev per socket per turn */
    RC_SEND_PATH_IO_URING    /* one io_uring submission per turn; refuse to start without it */
};

/* {"sendPath": "auto" | "io_uring" | "writev"} */
typedef struct rc_server_config {
    int send_path;           /* enum rc_send_path; RC_SEND_PATH_AUTO */
} rc_server_config;

void rc_server_config_default(rc_server_config *out);
/* "auto", "io_uring" or "writev" -> *out (enum rc_send_path). Returns 0, or -1 for anything else. */
int rc_server_send_path_parse(const char *s, int *out);
/* The name of a send path: "auto", "io_uring" or "writev". */
const char *rc_server_send_path_name(int path);
/* Reads the "transport" object over what out holds (keys absent or null keep their value).
 * Problems are added to errs as "<path>.<key>: <message>"; unknown keys are errors. Returns 0,
 * or -1 when errs got a problem. */
int rc_server_config_parse(rc_server_config *out, const struct cJSON *json, const char *path,
                           struct rc_config_errors *errs);

#endif
