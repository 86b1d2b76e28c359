/*
 * eio.h: Engine.IO v4 sessions — handshake, heartbeat, long-polling, WebSocket, and the upgrade
 * from polling to WebSocket — below Socket.IO.
 *
 * Upward, a session talks to its owner (the Socket.IO client) only through rc_eio_callbacks:
 * on_open when a handshake succeeds (the owner returns its object), on_message for each MESSAGE
 * packet, on_close once when the session is gone. on_close is always delivered from the loop,
 * never from inside a call the owner made (rc_eio_close included), so the owner may free itself
 * there safely.
 *
 * Downward, the owner sends with rc_eio_send_frame (a shared, pre-framed rc_frame whose payload
 * is a whole Engine.IO packet) or rc_eio_send_message (copies). A session whose unsent output
 * exceeds the outbound limit is closed ("slow consumer") instead of growing without bound.
 *
 * Timers: one per session, armed for the earliest of: next ping, pong deadline, connect deadline
 * (cleared by rc_eio_mark_connected), upgrade deadline.
 */
#ifndef ROOMCAST_EIO_H
#define ROOMCAST_EIO_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct rc_config;
struct rc_frame;
typedef struct rc_http_request rc_http_request;
typedef struct rc_eio_server rc_eio_server;
typedef struct rc_eio_session rc_eio_session;

typedef struct rc_eio_callbacks {
    /* A handshake succeeded; return the owner object for the session (never NULL). The request
     * is the handshake (headers and query readable during the call only). */
    void *(*on_open)(void *arg, rc_eio_session *s, const rc_http_request *handshake);
    void (*on_message)(void *owner, int binary, const uint8_t *data, size_t len);
    /* reason: static string ("transport close", "ping timeout", "parse error", ...). */
    void (*on_close)(void *owner, const char *reason);
    void *arg;
} rc_eio_callbacks;

rc_eio_server *rc_eio_server_new(struct event_base *base, const struct rc_config *cfg,
                                 const rc_eio_callbacks *cb);
/* Closes every session (on_close fires for each, synchronously here) and frees the server. */
void rc_eio_server_free(rc_eio_server *srv);
/* Handles a request whose path is under the Engine.IO path. */
void rc_eio_handle_request(rc_eio_server *srv, rc_http_request *req);
uint64_t rc_eio_session_count(const rc_eio_server *srv);
/* Writes CORS response headers for req into buf ("" when none apply). */
void rc_eio_cors_headers(const rc_eio_server *srv, const rc_http_request *req, char *buf, size_t n);
/* Refuses new handshakes (draining). */
void rc_eio_server_refuse_new(rc_eio_server *srv);
/* Closes every session (draining, shutdown). */
void rc_eio_close_all(rc_eio_server *srv, const char *reason);

void rc_eio_send_frame(rc_eio_session *s, struct rc_frame *f);
/* Sends MESSAGE packets: text `data` prefixed by '4', or binary data as is. */
void rc_eio_send_message(rc_eio_session *s, int binary, const void *data, size_t len);
void rc_eio_close(rc_eio_session *s, const char *reason);
/* Holds the session's output (counted): frames wait, in order, until the last release. Used so
 * a client hears "joined" only once the room's backplane subscription is confirmed. */
void rc_eio_hold(rc_eio_session *s);
void rc_eio_release(rc_eio_session *s);
rc_eio_session *rc_eio_find(rc_eio_server *srv, const char *sid);
void rc_eio_mark_connected(rc_eio_session *s);
int rc_eio_is_websocket(const rc_eio_session *s);
const char *rc_eio_sid(const rc_eio_session *s);

#endif
