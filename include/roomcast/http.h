/*
 * http.h: HTTP/1.1 server side on an rc_conn, with http-parser.
 *
 * One request at a time per connection: when a request is complete the connection stops reading
 * and the request goes to on_request, which must do exactly one of
 *   - rc_http_respond*: answer now (keep-alive continues with the next request);
 *   - rc_http_hold: answer later (Engine.IO long-polling GET); if the connection dies first the
 *     on_abort callback given to rc_http_hold fires and the request is gone;
 *   - rc_http_detach: take the connection away from HTTP (WebSocket upgrade); bytes after the
 *     request's headers stay in the connection's input for the new owner.
 *
 * Limits, each answered with its status then a close: request line + headers over
 * max_header_bytes (431), a body over max_body_bytes (413), malformed or smuggling-prone input
 * such as both Content-Length and Transfer-Encoding (400), headers not complete within
 * header_timeout_ms of the first byte (408). An idle keep-alive connection is closed after
 * keepalive_timeout_ms. Answers a client does not read: past max_pending_output unsent, the
 * connection reads no further request until they are written.
 *
 * Ownership: the request and every slice/string it exposes belong to the HTTP layer and stay
 * valid until it is answered, detached or aborted.
 */
#ifndef ROOMCAST_HTTP_H
#define ROOMCAST_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/common.h"

struct evbuffer;
struct rc_addr;
struct rc_cidr;
typedef struct rc_conn rc_conn;

typedef struct rc_http_limits {
    size_t max_header_bytes;
    size_t max_body_bytes;
    int header_timeout_ms;
    int keepalive_timeout_ms;
    size_t max_pending_output;   /* unsent answer bytes over which no further request is read until
                                    they are written (closed after keepalive_timeout_ms without
                                    progress); 0 = none */
} rc_http_limits;

typedef struct rc_http_request rc_http_request;

enum rc_http_method { RC_HTTP_GET = 1, RC_HTTP_POST, RC_HTTP_OPTIONS, RC_HTTP_HEAD, RC_HTTP_OTHER };

struct rc_http_request {
    rc_conn *conn;
    int method;              /* enum rc_http_method */
    const char *method_name; /* "GET", ... */
    rc_slice path;           /* URL path, not decoded */
    rc_slice query;          /* after '?', not decoded; len 0 if none */
    const uint8_t *body;     /* complete body (NULL when empty) */
    size_t body_len;
    int upgrade;             /* the parser saw Connection: upgrade + Upgrade */
    int keep_alive;
};

typedef struct rc_http_callbacks {
    void (*on_request)(void *arg, rc_http_request *req);
    void *arg;
} rc_http_callbacks;

/* Puts a freshly accepted connection under HTTP. limits and cb must outlive it. */
void rc_http_attach(rc_conn *c, const rc_http_limits *limits, const rc_http_callbacks *cb);

/* Case-insensitive header lookup: the NUL-terminated value of the first match, or NULL. */
const char *rc_http_header(const rc_http_request *req, const char *name);
/* The same, last match (the line the nearest proxy added, for X-Forwarded-For). */
const char *rc_http_header_last(const rc_http_request *req, const char *name);
/* Does the comma-separated header contain token (case-insensitive)? */
int rc_http_header_has_token(const rc_http_request *req, const char *name, const char *token);
/* The client's address: the peer's, or when the peer is one of the trusted proxies, the rightmost
 * address of the last X-Forwarded-For line that is not a trusted proxy itself (nginx's real_ip
 * with real_ip_recursive: that line is the one the nearest proxy wrote, so a client cannot choose
 * the result; an entry that is not an address ends the walk with the last good one). Returns 1
 * when the peer is a trusted proxy. */
int rc_http_client_addr(const rc_http_request *req, const struct rc_cidr *trusted, size_t n, struct rc_addr *out);
/* Query parameter value (percent-decoded into buf of size n, NUL-terminated). 1 found, 0 not. */
int rc_http_query_param(const rc_http_request *req, const char *name, char *buf, size_t n);

/* extra_headers: NULL or "Name: value\r\n" lines. */
void rc_http_respond(rc_http_request *req, int status, const char *content_type,
                     const void *body, size_t len, const char *extra_headers);
/* Same, moving the contents of body (drained). */
void rc_http_respond_buffer(rc_http_request *req, int status, const char *content_type,
                            struct evbuffer *body, const char *extra_headers);
void rc_http_hold(rc_http_request *req, void (*on_abort)(void *arg), void *arg);
/* Removes the connection from HTTP; the request is freed. Returns the connection. */
rc_conn *rc_http_detach(rc_http_request *req);

const char *rc_http_status_text(int status);

/* Appends HTTP's families to /metrics: responses by status class, payloads refused for size. */
void rc_http_write_metrics(struct evbuffer *out);

#endif
