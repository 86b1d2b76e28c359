/*
 * config_dev.h: the development settings (file: dev.*, env ROOMCAST_DEV_PAGE and
 * ROOMCAST_DEV_CLIENT_BUNDLE; docs/config.md), a types-only header: config.h embeds rc_dev_config
 * in rc_config, so this header includes neither it nor anything of the node. Implementation:
 * src/config_dev.c. The page itself is src/node_devpage.c.
 *
 * What it does not do: serve anything, or turn itself on: it is off unless a file or the
 * environment says so (deploy/dev-run.sh, behind `make run`, does; the Helm chart and the
 * Docker image never do).
 *
 * Ownership: rc_dev_config owns client_bundle; rc_dev_config_dispose frees it.
 *
 * API in call order: rc_dev_config_init -> rc_dev_config_parse (the "dev" object of the file)
 * -> rc_dev_config_env (the environment, then the cross-checks) -> rc_dev_config_dispose.
 */
#ifndef ROOMCAST_CONFIG_DEV_H
#define ROOMCAST_CONFIG_DEV_H

/* Types only: this header must not include config.h. */
struct cJSON;
struct rc_config_errors;

typedef struct rc_dev_config {
    int page;             /* serve the development page at /dev/ (file dev.page; ROOMCAST_DEV_PAGE) */
    char *client_bundle;  /* socket.io-client's browser bundle (socket.io.min.js) served at
                           * /dev/socket.io.min.js; NULL: that path redirects to a CDN (file
                           * dev.clientBundle; ROOMCAST_DEV_CLIENT_BUNDLE) */
} rc_dev_config;

void rc_dev_config_init(rc_dev_config *out);
/* Reads the "dev" object of the file (NULL or JSON null: nothing). Problems go to errs as
 * "dev.<key>: <message>". Returns 0 or -1. */
int rc_dev_config_parse(rc_dev_config *out, const struct cJSON *json, struct rc_config_errors *errs);
/* Reads ROOMCAST_DEV_PAGE ("1"/"true" or "0"/"false") and ROOMCAST_DEV_CLIENT_BUNDLE over the
 * file's values, then checks the result: a bundle only with the page on, and readable. */
int rc_dev_config_env(rc_dev_config *out, struct rc_config_errors *errs);
void rc_dev_config_dispose(rc_dev_config *c);

#endif
