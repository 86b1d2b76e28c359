/*
 * eio_cors.c: the Origin check of Engine.IO requests and the CORS headers of their answers (see
 * include/roomcast/eio_cors.h for the policy). eio.c calls it for every Engine.IO request; it owns
 * nothing but its refusal counters.
 */
#include "roomcast/eio_cors.h"
#include "roomcast/common.h"
#include "roomcast/http.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ORIGIN_MAX 512

/* Handshakes refused for their origin: polling, websocket. */
static uint64_t refused[2];

static int allowed(const rc_eio_cors *set, const char *origin)
{
    for (size_t i = 0; i < set->count; i++) {
        const char *o = set->origins[i];
        if (strcmp(o, "*") == 0 || strcmp(o, origin) == 0) return 1;
    }
    return 0;
}

/* An origin we may echo in a header: short, and visible ASCII only (no space, CR or LF). */
static int echoable(const char *origin)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)origin; *p; p++, n++) {
        if (*p < 0x21 || *p > 0x7e || n >= ORIGIN_MAX) return 0;
    }
    return n > 0;
}

void rc_eio_cors_write_headers(const rc_eio_cors *set, const rc_http_request *req, char *buf, size_t n)
{
    buf[0] = '\0';
    const char *origin = rc_http_header(req, "Origin");
    if (!origin || !allowed(set, origin) || !echoable(origin)) return;
    snprintf(buf, n, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n%s", origin,
             set->credentials ? "Access-Control-Allow-Credentials: true\r\n" : "");
}

int rc_eio_cors_refused(const rc_eio_cors *set, const rc_http_request *req)
{
    const char *origin = rc_http_header(req, "Origin");
    if (!origin || set->count == 0) return 0;
    return !allowed(set, origin) || !echoable(origin);
}

void rc_eio_cors_refuse(rc_http_request *req, const char *transport)
{
    int ws = strcmp(transport, "websocket") == 0;
    refused[ws]++;
    const char *origin = rc_http_header(req, "Origin");
    int echo = origin && echoable(origin);
    /* One line a second at most: a page retrying (or a flood) must not become a flood of logs. */
    static uint64_t logged_ms, unlogged;
    uint64_t now = rc_now_mono_ms();
    if (logged_ms && now - logged_ms < 1000) {
        unlogged++;
    } else {
        rc_log_warn("origin_refused",
                    "origin=%.64s transport=%s hint=%s refused_since_last_log=%llu",
                    echo ? origin : "(not printable)", transport,
                    "add the page's origin to cors.origins (ROOMCAST_CORS_ORIGINS)",
                    (unsigned long long)unlogged);
        logged_ms = now;
        unlogged = 0;
    }
    static const char body[] =
        "{\"code\":4,\"message\":\"Origin not allowed: add it to cors.origins (ROOMCAST_CORS_ORIGINS)\"}";
    char headers[ORIGIN_MAX + 128];
    headers[0] = '\0';
    if (echo) {
        snprintf(headers, sizeof(headers),
                 "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n"
                 "Access-Control-Allow-Credentials: true\r\n", origin);
    }
    rc_http_respond(req, 403, "application/json", body, sizeof(body) - 1, headers);
}

void rc_eio_cors_note(const rc_eio_cors *set, const rc_http_request *req)
{
    static int noted;
    if (noted || set->count > 0) return;
    const char *origin = rc_http_header(req, "Origin");
    const char *host = rc_http_header(req, "Host");
    if (!origin || !echoable(origin)) return;
    const char *authority = strstr(origin, "://");
    if (host && authority && strcmp(authority + 3, host) == 0) return; /* same origin */
    noted = 1;
    rc_log_info("cors_origins_unset",
                "origin=%.64s hint=%s", origin,
                "a browser hides the answers to this page's long-polling requests unless cors.origins "
                "(ROOMCAST_CORS_ORIGINS) lists its origin; logged once");
}

void rc_eio_cors_write_metrics(struct evbuffer *out)
{
    static const char *const transports[] = {"polling", "websocket"};
    rc_metrics_put_by_label(out, "roomcast_eio_origin_refused_total", "counter",
                            "Handshakes refused (403) for an Origin cors.origins does not list, by transport.",
                            "transport", transports, refused, 0, RC_ARRAY_LEN(transports));
}
