/*
 * eio_cors.h: the Origin check of Engine.IO requests, and the CORS headers of their answers.
 *
 * Browsers send Origin on cross-origin XHR (long-polling) and on every WebSocket. The node allows
 * the origins of cors.origins (rc_eio_settings.cors_origins, passed as an rc_eio_cors; "*" any) and answers them with the
 * exact origin in Access-Control-Allow-Origin (never "*": with credentials a browser refuses a
 * wildcard), Vary: Origin, and Access-Control-Allow-Credentials when cors.credentials is on.
 *
 * A handshake (polling or WebSocket) from an origin the list does not name is refused by
 * rc_eio_cors_refuse with 403 {"code":4,"message":"Origin not allowed ..."}. That one answer
 * carries the refused origin in Access-Control-Allow-Origin (and Allow-Credentials), so that the
 * page can read why it was refused (socket.io-client's connect_error: err.description 403,
 * err.context.responseText the body) instead of an opaque network error; it grants nothing, no
 * session exists. A browser never shows a page why a WebSocket handshake failed (only "websocket
 * error"), so the refusal is also logged (at most a line a second) and counted.
 *
 * With no list at all nothing is refused and no CORS header is sent (the default: same-origin
 * pages, and clients that are not browsers); rc_eio_cors_note logs a hint once when a page on
 * another origin tries polling.
 *
 * What it does not do: preflight answers (eio.c answers OPTIONS with rc_eio_cors_headers), cookies.
 */
#ifndef ROOMCAST_EIO_CORS_H
#define ROOMCAST_EIO_CORS_H

#include <stddef.h>

struct evbuffer;
typedef struct rc_http_request rc_http_request;

/* The policy: borrowed from rc_eio_settings (cors_origins, cors_origin_count, cors_credentials). */
typedef struct rc_eio_cors {
    char *const *origins;
    size_t count;
    int credentials;
} rc_eio_cors;

/* The CORS headers for req ("Name: value\r\n" lines into buf, "" when none apply: no Origin, or
 * an origin not listed). */
void rc_eio_cors_write_headers(const rc_eio_cors *cors, const rc_http_request *req, char *buf, size_t n);
/* 1 when req carries an Origin and a list exists that does not allow it. */
int rc_eio_cors_refused(const rc_eio_cors *cors, const rc_http_request *req);
/* Answers req (a refused handshake, transport "polling" or "websocket") with the readable 403. */
void rc_eio_cors_refuse(rc_http_request *req, const char *transport);
/* With no list: logs once per process (info, cors_origins_unset) the first polling handshake whose
 * Origin is not the Host it was sent to, with what to set. A hint for development, where that is
 * the usual reason a page fails with "xhr poll error"; behind a proxy that rewrites Host it may be
 * a same-origin page, hence only once and only a hint. */
void rc_eio_cors_note(const rc_eio_cors *cors, const rc_http_request *req);
/* Appends roomcast_eio_origin_refused_total{transport} to /metrics. */
void rc_eio_cors_write_metrics(struct evbuffer *out);

#endif
