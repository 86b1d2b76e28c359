/*
 * redis_tls.c: the OpenSSL client side of rediss:// connections: one verifying SSL_CTX built from
 * the configured files, one SSL per connection with SNI and the host check, and the words for a
 * failed handshake. Contract: src/redis_tls.h.
 *
 * Choices: the server is always verified (SSL_VERIFY_PEER); there is no "insecure" switch. The
 * CA file replaces the system's CAs rather than adding to them, so a private CA pins the Redis
 * it signed. The name checked is the configured serverName, else the host of the URL (or the
 * address a sentinel or cluster node named): an IP address is matched against the certificate's
 * IP SANs and sent without SNI (RFC 6066 forbids literal addresses there).
 *
 * What it does not do: no I/O, no session resumption, no reload of rotated files (a restart
 * picks them up).
 */
#include "redis_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Writes "<src>: <file>: <reason>" with OpenSSL's last queued reason (or errno's text). */
static void file_error(char *err, size_t errlen, const char *src, const char *file, int use_errno)
{
    char reason[256];
    unsigned long e = ERR_peek_last_error();
    if (use_errno) snprintf(reason, sizeof(reason), "%s", strerror(errno));
    else if (e) ERR_error_string_n(e, reason, sizeof(reason));
    else snprintf(reason, sizeof(reason), "rejected by OpenSSL");
    /* OpenSSL's string is "error:0A00018E:SSL routines::ca md too weak": keep what follows "::" */
    const char *r = strstr(reason, "::");
    snprintf(err, errlen, "%s: %s: %s", src ? src : "redis.tls", file, r ? r + 2 : reason);
    ERR_clear_error();
}

static int readable(const char *file, char *err, size_t errlen, const char *src)
{
    FILE *f = fopen(file, "r");
    if (f) {
        fclose(f);
        return 1;
    }
    file_error(err, errlen, src, file, 1);
    return 0;
}

SSL_CTX *rc_redis_tls_ctx_new(const rc_redis_config *cfg, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "redis.tls: cannot create an OpenSSL context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (cfg->ca_file) {
        if (!readable(cfg->ca_file, err, errlen, cfg->ca_src)) goto fail;
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            file_error(err, errlen, cfg->ca_src, cfg->ca_file, 0);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(err, errlen, "redis.tls.ca: the system's CA certificates cannot be loaded");
        goto fail;
    }
    if (cfg->cert_file) {
        if (!readable(cfg->cert_file, err, errlen, cfg->cert_src)) goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
            file_error(err, errlen, cfg->cert_src, cfg->cert_file, 0);
            goto fail;
        }
    }
    if (cfg->key_file) {
        if (!readable(cfg->key_file, err, errlen, cfg->key_src)) goto fail;
        if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
            file_error(err, errlen, cfg->key_src, cfg->key_file, 0);
            goto fail;
        }
    }
    if (cfg->cert_file && cfg->key_file && SSL_CTX_check_private_key(ctx) != 1) {
        file_error(err, errlen, cfg->key_src, cfg->key_file, 0);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

static int is_ip(const char *host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

SSL *rc_redis_tls_ssl_new(SSL_CTX *ctx, const char *host, const char *server_name)
{
    const char *name = server_name ? server_name : host;
    SSL *ssl = SSL_new(ctx);
    if (!ssl) return NULL;
    int ok;
    if (is_ip(name)) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, name) == 1 && SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

int rc_redis_tls_describe_failure(SSL *ssl, unsigned long ssl_err, char *buf, size_t size)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ssl_err ? ssl_err : ERR_peek_error();
    if (v != X509_V_OK) {
        snprintf(buf, size, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return 1;
    }
    if (!e) {
        snprintf(buf, size, "connection closed during the TLS handshake");
        return 0;
    }
    if (ERR_SYSTEM_ERROR(e)) { /* the socket's error, recorded by OpenSSL */
        snprintf(buf, size, "%s", strerror(ERR_GET_REASON(e)));
        ERR_clear_error();
        return 0;
    }
    const char *r = ERR_reason_error_string(e);
    if (r) snprintf(buf, size, "%s", r);
    else ERR_error_string_n(e, buf, size);
    ERR_clear_error();
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) return 0;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_WRONG_VERSION_NUMBER: /* not a TLS port */
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL:
        return 1;
    default:
        return 0;
    }
}
