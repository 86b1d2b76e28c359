/*
 * redis_tls.h: the OpenSSL client side of rediss:// connections. Private (src/): implemented in
 * redis_tls.c, used by redis_config.c (to check the files when the config loads) and by the
 * connection layer (one context per backplane, one SSL per connection).
 *
 * What it does not do: no I/O (libevent's OpenSSL bufferevent drives the handshake and the
 * records), no reload of files at run time.
 *
 * Ownership: the SSL_CTX belongs to the caller (SSL_CTX_free); each SSL is handed to a
 * bufferevent created with BEV_OPT_CLOSE_ON_FREE, which frees it.
 *
 * API in call order: rc_redis_tls_ctx_new -> rc_redis_tls_ssl_new (per connection) ->
 * rc_redis_tls_describe_failure (when a handshake failed) -> SSL_CTX_free.
 */
#ifndef ROOMCAST_REDIS_TLS_H
#define ROOMCAST_REDIS_TLS_H

#include "roomcast/redis_config.h"

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* A client context that verifies the server: cfg->ca_file or, when NULL, the system's CAs;
 * cfg->cert_file and cfg->key_file (both or neither) as the client certificate, checked to match.
 * NULL on failure with err filled as "<source>: <file>: <OpenSSL's reason>", e.g.
 * "ROOMCAST_REDIS_CA_FILE: /etc/ca.pem: no certificate or crl found". */
SSL_CTX *rc_redis_tls_ctx_new(const rc_redis_config *cfg, char *err, size_t errlen);

/* A new client SSL for one connection to host (a name or an IP address): SNI (names only) and
 * the check that the certificate is for server_name, or for host when server_name is NULL (an
 * IP address is checked against the certificate's IP SANs). NULL when OpenSSL refuses. */
SSL *rc_redis_tls_ssl_new(SSL_CTX *ctx, const char *host, const char *server_name);

/* After a failed handshake on ssl: writes why into buf ("certificate verify failed: unable to
 * get local issuer certificate", or the first error of OpenSSL's queue, which it empties) and
 * returns 1 when the failure is one of trust or certificates (retrying cannot help: the node
 * refuses to start), 0 for anything else (a closed connection, a timeout). ssl may be NULL. */
int rc_redis_tls_describe_failure(SSL *ssl, unsigned long ssl_err, char *buf, size_t size);

#endif
