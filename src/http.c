/*
 * http.c: HTTP/1.1 on an rc_conn with http-parser (see include/roomcast/http.h).
 *
 * Per connection we keep an rc_http_conn (the parser and at most one request in progress). The
 * request line and headers are accumulated in one arena, each name and value NUL-terminated, and
 * the arena is freed as soon as the request is answered, so an idle keep-alive connection holds
 * only the small rc_http_conn.
 *
 * Flow: bytes -> http_parser_execute over the input's chains -> on_message_complete pauses the
 * parser and stops reading -> on_request. After a response, the request state is reset and any
 * input left (a pipelined request) is parsed from a deferred read callback, never re-entrantly.
 * While more than max_pending_output of answers wait unsent, no further request is read (the
 * transport's on_drain resumes): a client that pipelines requests and never reads the answers
 * stalls, as with nginx, and is closed if it takes no byte for the keep-alive timeout.
 *
 * What it does not do: chunked responses, compression, HTTP/2, request bodies beyond the limit.
 */
#include "roomcast/http.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <http_parser.h>
#include <stdio.h>
#include <strings.h>

/* HTTP's counters (/metrics: rc_http_write_metrics). */
static struct {
    uint64_t requests[6];        /* responses by status class: [1] = 1xx .. [5] = 5xx */
    uint64_t payload_too_large;  /* bodies refused for exceeding the size limit */
} http_stats;

#define RC_HTTP_MAX_HEADERS 64

typedef struct rc_http_field {
    uint32_t name_off, value_off;
} rc_http_field;

typedef struct rc_http_conn {
    rc_http_request req;              /* public part (first member) */
    http_parser parser;
    rc_conn *conn;
    const rc_http_limits *limits;
    const rc_http_callbacks *cb;
    char *arena;                      /* url '\0' name '\0' value '\0' ... */
    size_t arena_len, arena_cap;
    uint32_t url_len;
    rc_http_field fields[RC_HTTP_MAX_HEADERS];
    uint16_t field_count;
    uint8_t last_cb;                  /* 0 none, 1 url, 2 field, 3 value */
    uint8_t in_request;               /* first byte of a request seen */
    uint8_t dispatched;               /* on_request called, not yet answered */
    uint8_t held;
    uint8_t failed;                   /* an error response was sent */
    uint8_t draining;                 /* waiting for unsent answers to be written (on_drain) */
    uint8_t *body;
    size_t body_len, body_cap;        /* body_cap: bytes allocated (grown by doubling) */
    uint64_t started_ms;              /* first byte of the request in progress (0: none yet) */
    struct event *deadline_ev;        /* first request: header deadline from accept (TLS handshake included) */
    void (*on_abort)(void *arg);
    void *abort_arg;
    /* Strict chunk framing (Debian's http-parser is built without HTTP_PARSER_STRICT, so it takes
     * any two bytes for the CRLF after chunk data): positions counted in bytes given to the
     * parser since the connection began. */
    uint64_t fed;                     /* position of cur[0] */
    const char *cur;                  /* the bytes of the http_parser_execute call in progress */
    size_t cur_len;
    unsigned char prev_last;          /* the byte at fed - 1 */
    uint64_t body_end;                /* position just past the last body byte seen */
    uint64_t chunk_size;              /* size of the chunk in progress (0: the last chunk) */
} rc_http_conn;

static void http_on_conn_read(rc_conn *c, void *data);
static void http_on_conn_close(rc_conn *c, void *data);
static void http_on_conn_drain(rc_conn *c, void *data);
static const rc_conn_handler http_conn_handler = {http_on_conn_read, http_on_conn_close, NULL, http_on_conn_drain};

const char *rc_http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* ---- request state ------------------------------------------------------------------------ */

static void http_reset(rc_http_conn *h)
{
    rc_free(h->arena);
    rc_free(h->body);
    h->arena = NULL;
    h->arena_len = h->arena_cap = 0;
    h->url_len = 0;
    h->field_count = 0;
    h->last_cb = 0;
    h->in_request = 0;
    h->started_ms = 0;
    h->dispatched = 0;
    h->held = 0;
    h->body = NULL;
    h->body_len = h->body_cap = 0;
    h->on_abort = NULL;
    h->abort_arg = NULL;
    memset(&h->req, 0, sizeof(h->req));
    h->req.conn = h->conn;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
}

/* Appends to the arena, enforcing the header size limit. -1 when over it. */
static int arena_append(rc_http_conn *h, const char *p, size_t n)
{
    if (h->arena_len + n + 1 > h->limits->max_header_bytes) return -1;
    if (h->arena_len + n + 1 > h->arena_cap) {
        size_t cap = h->arena_cap ? h->arena_cap * 2 : 512;
        while (cap < h->arena_len + n + 1) cap *= 2;
        h->arena = rc_realloc(h->arena, cap);
        h->arena_cap = cap;
    }
    memcpy(h->arena + h->arena_len, p, n);
    h->arena_len += n;
    return 0;
}

static int arena_terminate(rc_http_conn *h)
{
    if (arena_append(h, "", 0) != 0) return -1;
    h->arena[h->arena_len++] = '\0';
    return 0;
}

/* Sends an error status and closes after the flush. */
static void http_fail(rc_http_conn *h, int status)
{
    if (h->failed) return;
    h->failed = 1;
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, rc_http_status_text(status), strlen(rc_http_status_text(status)) + 1,
                     rc_http_status_text(status));
    http_stats.requests[status / 100]++;
    rc_conn_write(h->conn, head, (size_t)n);
    rc_conn_close_after_flush(h->conn);
}

/* ---- http-parser callbacks ---------------------------------------------------------------- */

static int on_message_begin(http_parser *p)
{
    rc_http_conn *h = p->data;
    if (!h->in_request) {
        h->in_request = 1;
        if (!h->started_ms) h->started_ms = rc_now_mono_ms();
    }
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    rc_http_conn *h = p->data;
    h->last_cb = 1;
    if (arena_append(h, at, n) != 0) return -1;
    h->url_len += (uint32_t)n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    rc_http_conn *h = p->data;
    if (h->last_cb != 2) {
        if (arena_terminate(h) != 0) return -1; /* ends the url or the previous value */
        if (h->field_count == RC_HTTP_MAX_HEADERS) return -1;
        h->fields[h->field_count].name_off = (uint32_t)h->arena_len;
        h->fields[h->field_count].value_off = 0;
        h->field_count++;
        h->last_cb = 2;
    }
    return arena_append(h, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    rc_http_conn *h = p->data;
    if (h->last_cb != 3) {
        if (arena_terminate(h) != 0) return -1; /* ends the name */
        h->fields[h->field_count - 1].value_off = (uint32_t)h->arena_len;
        h->last_cb = 3;
    }
    return arena_append(h, at, n);
}

static int on_headers_complete(http_parser *p)
{
    rc_http_conn *h = p->data;
    if (arena_terminate(h) != 0) return -1;
    if (h->last_cb == 2) { /* a name without a value */
        h->fields[h->field_count - 1].value_off = (uint32_t)h->arena_len - 1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > h->limits->max_body_bytes) {
        http_stats.payload_too_large++;
        http_fail(h, 413);
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    rc_http_conn *h = p->data;
    if (h->body_len + n > h->limits->max_body_bytes) {
        http_stats.payload_too_large++;
        http_fail(h, 413);
        return -1;
    }
    h->body_end = h->fed + (uint64_t)(at + n - h->cur);
    if (h->body_len + n + 1 > h->body_cap) {
        /* doubling, so a body arriving in many reads is copied O(size) times in all, not O(size^2) */
        size_t cap = h->body_cap ? h->body_cap : 4096;
        while (cap < h->body_len + n + 1) cap *= 2;
        h->body = rc_realloc(h->body, cap);
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, at, n);
    h->body_len += n;
    h->body[h->body_len] = '\0';
    return 0;
}

static int on_chunk_header(http_parser *p)
{
    rc_http_conn *h = p->data;
    h->chunk_size = p->content_length;
    return 0;
}

static int http_byte_at(const rc_http_conn *h, uint64_t pos)
{
    if (pos >= h->fed && pos - h->fed < h->cur_len) return (unsigned char)h->cur[pos - h->fed];
    if (h->fed > 0 && pos == h->fed - 1) return h->prev_last;
    return -1;
}

/* Called as the parser takes the second byte after a chunk's data: both must be CR LF (the LF
 * is in the current bytes, the CR there or the last byte of the previous call). */
static int on_chunk_complete(http_parser *p)
{
    rc_http_conn *h = p->data;
    if (h->chunk_size == 0) return 0; /* the last chunk: no data, the trailer is parsed as headers */
    if (http_byte_at(h, h->body_end) != '\r' || http_byte_at(h, h->body_end + 1) != '\n') return -1;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    rc_http_conn *h = p->data;
    rc_http_request *r = &h->req;
    r->conn = h->conn;
    switch (p->method) {
    case HTTP_GET: r->method = RC_HTTP_GET; break;
    case HTTP_POST: r->method = RC_HTTP_POST; break;
    case HTTP_OPTIONS: r->method = RC_HTTP_OPTIONS; break;
    case HTTP_HEAD: r->method = RC_HTTP_HEAD; break;
    default: r->method = RC_HTTP_OTHER; break;
    }
    r->method_name = http_method_str((enum http_method)p->method);
    const char *url = h->arena;
    size_t ulen = h->url_len;
    const char *q = memchr(url, '?', ulen);
    r->path.ptr = url;
    r->path.len = q ? (size_t)(q - url) : ulen;
    r->query.ptr = q ? q + 1 : url + ulen;
    r->query.len = q ? ulen - (size_t)(q - url) - 1 : 0;
    r->body = h->body;
    r->body_len = h->body_len;
    r->upgrade = p->upgrade;
    r->keep_alive = http_should_keep_alive(p);
    h->dispatched = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

/* ---- connection handler ------------------------------------------------------------------- */

/* The first request's headers must be complete within the header timeout of the accept, however
 * slowly bytes (or a TLS handshake, which the HTTP layer never sees) dribble in. */
static void http_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    rc_http_conn *h = arg;
    if (!h->dispatched && !h->failed) {
        rc_log_debug("http_header_deadline", "started=%d", h->started_ms != 0);
        if (h->started_ms) http_fail(h, 408);
        else rc_conn_close(h->conn);
    }
}

static void http_deadline_stop(rc_http_conn *h)
{
    if (!h->deadline_ev) return;
    event_free(h->deadline_ev);
    h->deadline_ev = NULL;
}

void rc_http_attach(rc_conn *c, const rc_http_limits *limits, const rc_http_callbacks *cb)
{
    rc_http_conn *h = rc_calloc(1, sizeof(*h));
    h->conn = c;
    h->limits = limits;
    h->cb = cb;
    http_reset(h);
    rc_conn_set_handler(c, &http_conn_handler, h);
    rc_conn_set_read_timeout(c, limits->header_timeout_ms);
    h->deadline_ev = evtimer_new(rc_conn_base(c), http_on_deadline, h);
    struct timeval tv = {limits->header_timeout_ms / 1000, (limits->header_timeout_ms % 1000) * 1000};
    evtimer_add(h->deadline_ev, &tv);
}

static void http_on_conn_read(rc_conn *c, void *data)
{
    rc_http_conn *h = data;
    if (h->dispatched || h->failed) return;
    struct evbuffer *in = rc_conn_input(c);
    if (!h->started_ms && evbuffer_get_length(in) > 0) h->started_ms = rc_now_mono_ms();
    while (!h->dispatched && !h->failed && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1) break;
        h->cur = v.iov_base;
        h->cur_len = v.iov_len;
        size_t n = http_parser_execute(&h->parser, &parser_settings, v.iov_base, v.iov_len);
        if (n > 0) h->prev_last = ((const unsigned char *)v.iov_base)[n - 1];
        h->fed += n;
        enum http_errno err = HTTP_PARSER_ERRNO(&h->parser);
        if (err != HPE_OK && err != HPE_PAUSED) {
            if (!h->failed) {
                int status = (err == HPE_CB_url || err == HPE_CB_header_field ||
                              err == HPE_CB_header_value || err == HPE_HEADER_OVERFLOW) ? 431 : 400;
                if (err == HPE_CB_header_field && h->field_count == RC_HTTP_MAX_HEADERS) status = 431;
                http_fail(h, status);
            }
            return;
        }
        evbuffer_drain(in, n);
        if (!h->dispatched && n < v.iov_len) {
            /* The parser stopped early without finishing a message: an upgrade request whose
             * message-complete came first is handled above; anything else is malformed. */
            http_fail(h, 400);
            return;
        }
    }
    if (h->started_ms && !h->dispatched && !h->failed) {
        /* Slowloris: the whole header block must arrive within the deadline, however slowly
         * the bytes dribble in (the read timeout alone restarts at every byte); bytes the parser
         * skips before a request line count too. */
        if (rc_now_mono_ms() - h->started_ms > (uint64_t)h->limits->header_timeout_ms) {
            http_fail(h, 408);
            return;
        }
        rc_conn_set_read_timeout(c, h->limits->header_timeout_ms);
    }
    if (h->dispatched) {
        http_deadline_stop(h);
        rc_conn_pause_read(c);
        rc_conn_set_read_timeout(c, 0);
        h->cb->on_request(h->cb->arg, &h->req);
    }
}

static void http_on_conn_close(rc_conn *c, void *data)
{
    rc_http_conn *h = data;
    http_deadline_stop(h);
    if (h->held && h->on_abort) h->on_abort(h->abort_arg);
    rc_free(h->arena);
    rc_free(h->body);
    rc_free(h);
}

static rc_http_conn *http_of(rc_http_request *req)
{
    return (rc_http_conn *)req; /* req is the first member */
}

/* After an answer: either close, or get ready for the next request on this connection. */
static void http_finish(rc_http_conn *h, int keep_alive)
{
    /* Answered: a held request no longer needs its abort callback. */
    h->held = 0;
    h->on_abort = NULL;
    h->abort_arg = NULL;
    if (!keep_alive) {
        h->failed = 1;
        rc_conn_close_after_flush(h->conn);
        return;
    }
    http_reset(h);
    rc_conn_set_read_timeout(h->conn, h->limits->keepalive_timeout_ms);
    /* A client that pipelines requests and never reads the answers: past the cap, read nothing
     * more until they are written, instead of answering into an ever-growing buffer; no byte
     * taken for the keep-alive timeout closes it. */
    if (h->limits->max_pending_output && rc_conn_pending_bytes(h->conn) > h->limits->max_pending_output) {
        h->draining = 1;
        rc_conn_set_write_timeout(h->conn, h->limits->keepalive_timeout_ms);
        rc_conn_notify_drain(h->conn);
        return;
    }
    rc_conn_resume_read(h->conn);
    if (evbuffer_get_length(rc_conn_input(h->conn)) > 0) rc_conn_trigger_read(h->conn);
}

static void http_on_conn_drain(rc_conn *c, void *data)
{
    rc_http_conn *h = data;
    if (!h->draining) return;
    h->draining = 0;
    rc_conn_set_write_timeout(c, 0);
    rc_conn_resume_read(c);
    if (evbuffer_get_length(rc_conn_input(c)) > 0) rc_conn_trigger_read(c);
}

static void write_head(rc_http_conn *h, int status, const char *content_type, size_t len,
                       const char *extra_headers, int keep_alive)
{
    struct evbuffer *out = rc_conn_output(h->conn);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, rc_http_status_text(status));
    if (content_type) evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    if (extra_headers) evbuffer_add(out, extra_headers, strlen(extra_headers));
    evbuffer_add_printf(out, "Connection: %s\r\n\r\n", keep_alive ? "keep-alive" : "close");
    http_stats.requests[status / 100 < 6 ? status / 100 : 5]++;
}

void rc_http_respond(rc_http_request *req, int status, const char *content_type,
                     const void *body, size_t len, const char *extra_headers)
{
    rc_http_conn *h = http_of(req);
    if (rc_conn_is_closed(h->conn)) return;
    int ka = req->keep_alive;
    write_head(h, status, content_type, len, extra_headers, ka);
    if (len && req->method != RC_HTTP_HEAD) rc_conn_write(h->conn, body, len);
    http_finish(h, ka);
}

void rc_http_respond_buffer(rc_http_request *req, int status, const char *content_type,
                            struct evbuffer *body, const char *extra_headers)
{
    rc_http_conn *h = http_of(req);
    if (rc_conn_is_closed(h->conn)) {
        evbuffer_drain(body, evbuffer_get_length(body));
        return;
    }
    int ka = req->keep_alive;
    write_head(h, status, content_type, evbuffer_get_length(body), extra_headers, ka);
    evbuffer_add_buffer(rc_conn_output(h->conn), body);
    http_finish(h, ka);
}

void rc_http_hold(rc_http_request *req, void (*on_abort)(void *arg), void *arg)
{
    rc_http_conn *h = http_of(req);
    h->held = 1;
    h->on_abort = on_abort;
    h->abort_arg = arg;
}

rc_conn *rc_http_detach(rc_http_request *req)
{
    rc_http_conn *h = http_of(req);
    rc_conn *c = h->conn;
    http_deadline_stop(h);
    rc_conn_set_handler(c, NULL, NULL);
    rc_conn_set_read_timeout(c, 0);
    rc_free(h->arena);
    rc_free(h->body);
    rc_free(h);
    rc_conn_resume_read(c);
    return c;
}

/* ---- lookups ------------------------------------------------------------------------------ */

const char *rc_http_header(const rc_http_request *req, const char *name)
{
    const rc_http_conn *h = (const rc_http_conn *)req;
    for (unsigned i = 0; i < h->field_count; i++) {
        if (strcasecmp(h->arena + h->fields[i].name_off, name) == 0)
            return h->arena + h->fields[i].value_off;
    }
    return NULL;
}

const char *rc_http_header_last(const rc_http_request *req, const char *name)
{
    const rc_http_conn *h = (const rc_http_conn *)req;
    for (unsigned i = h->field_count; i-- > 0;) {
        if (strcasecmp(h->arena + h->fields[i].name_off, name) == 0)
            return h->arena + h->fields[i].value_off;
    }
    return NULL;
}

int rc_http_header_has_token(const rc_http_request *req, const char *name, const char *token)
{
    const char *v = rc_http_header(req, name);
    size_t tl = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        const char *e = v;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0) return 1;
        v = e;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int rc_http_query_param(const rc_http_request *req, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    const char *p = req->query.ptr, *end = req->query.ptr + req->query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nl && memcmp(p, name, nl) == 0) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : pe; v < pe && o + 1 < n; v++) {
                if (*v == '%' && pe - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    buf[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else if (*v == '+') {
                    buf[o++] = ' ';
                } else {
                    buf[o++] = *v;
                }
            }
            buf[o] = '\0';
            return 1;
        }
        p = pe + 1;
    }
    return 0;
}

/* ---- client address ----------------------------------------------------------------------- */

static int trusted_proxy(const rc_cidr *trusted, size_t n, const rc_addr *a)
{
    for (size_t i = 0; i < n; i++)
        if (rc_cidr_match(&trusted[i], a)) return 1;
    return 0;
}

/* One X-Forwarded-For entry, maybe with a port: "192.0.2.1", "192.0.2.1:443", "[2001:db8::1]:443". */
static int forwarded_addr(const char *p, size_t n, rc_addr *out)
{
    if (n && p[0] == '[') {
        const char *e = memchr(p, ']', n);
        return e ? rc_addr_parse(p + 1, (size_t)(e - p - 1), out) : -1;
    }
    const char *colon = memchr(p, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - p) - 1)) n = (size_t)(colon - p);
    return rc_addr_parse(p, n, out);
}

int rc_http_client_addr(const rc_http_request *req, const rc_cidr *trusted, size_t n, rc_addr *out)
{
    *out = *rc_conn_peer(req->conn);
    if (!trusted_proxy(trusted, n, out)) return 0;
    const char *xff = rc_http_header_last(req, "X-Forwarded-For");
    const char *end = xff ? xff + strlen(xff) : NULL;
    while (xff && end > xff) {
        const char *b = end;
        while (b > xff && b[-1] != ',') b--;
        const char *next = b > xff ? b - 1 : xff;
        while (b < end && (*b == ' ' || *b == '\t')) b++;
        const char *e = end;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        rc_addr a;
        if (forwarded_addr(b, (size_t)(e - b), &a) != 0) break; /* not an address: keep the last one */
        *out = a;
        if (!trusted_proxy(trusted, n, &a)) break;
        end = next;
    }
    return 1;
}

void rc_http_write_metrics(struct evbuffer *out)
{
    static const char *const codes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    rc_metrics_put_by_label(out, "roomcast_http_requests_total", "counter", "HTTP responses sent, by status class.",
                            "code", codes, http_stats.requests, 1, RC_ARRAY_LEN(codes));
    rc_metrics_put_scalar(out, "roomcast_payload_too_large_total", "counter",
                          "Payloads refused for exceeding the size limit.", http_stats.payload_too_large);
}
