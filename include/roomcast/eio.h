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
 * is a whole Engine.IO packet) or rc_eio_send_message (copies). A session is closed as a "slow
 * consumer" when, after the node has written what the peer takes, more than the outbound limit
 * stays unsent beyond one packet (max_payload): one packet larger than the limit is not slow.
 *
 * Pending sessions (handshaken, no namespace connected yet) have a budget of their own: per TCP
 * connection and per client address (429 past them), in all (the oldest makes room), and the
 * connect deadline. The owner ends a session's pending state with rc_eio_mark_connected.
 *
 * Timers: one per session, armed for the earliest of: next ping, pong deadline, connect deadline
 * (cleared by rc_eio_mark_connected), upgrade deadline.
 *
 * Settings: the composition root fills an rc_eio_settings (from its configuration) and passes it
 * to rc_eio_server_new, which copies it; Engine.IO reads nothing else of the node's config.
 */
#ifndef ROOMCAST_EIO_H
#define ROOMCAST_EIO_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct rc_frame;
typedef struct rc_http_request rc_http_request;
typedef struct rc_eio_server rc_eio_server;
typedef struct rc_eio_session rc_eio_session;
struct rc_addr;
struct rc_cidr;

typedef struct rc_eio_callbacks {
    /* A handshake succeeded; return the owner object for the session (never NULL). The request
     * is the handshake (headers and query readable during the call only). */
    void *(*on_open)(void *arg, rc_eio_session *s, const rc_http_request *handshake);
    void (*on_message)(void *owner, int binary, const uint8_t *data, size_t len);
    /* reason: static string ("transport close", "ping timeout", "parse error", ...). */
    void (*on_close)(void *owner, const char *reason);
    void *arg;
    /* The session's transport became websocket (a polling session upgraded); may be NULL. */
    void (*on_upgrade)(void *owner);
} rc_eio_callbacks;

/* Everything Engine.IO needs to know of the node's configuration (docs/config.md: engine.*,
 * limits.*, cors.*). */
typedef struct rc_eio_settings {
    int ping_interval_ms;          /* advertised pingInterval: a ping this long after the last pong */
    int ping_timeout_ms;           /* advertised pingTimeout: no pong by then -> "ping timeout" */
    int connect_timeout_ms;        /* no rc_eio_mark_connected by then -> "connect timeout" */
    int upgrade_timeout_ms;        /* a probing WebSocket not upgraded by then is closed */
    size_t max_payload;            /* advertised maxPayload; the WebSocket message limit */
    int allow_polling;             /* transports accepted for a handshake */
    int allow_websocket;
    size_t max_outbound_bytes;     /* a session with more unsent bytes than this plus max_payload
                                      after a flush is closed ("slow consumer") */
    int max_sessions;              /* handshakes refused (403) at this many sessions; 0 = no cap */
    int max_pending;               /* pending sessions in all; a handshake past it closes the oldest
                                      pending session; 0 = no cap */
    int max_pending_per_addr;      /* pending sessions per client address (IPv6: per /64); 429
                                      past it; 0 = no cap */
    int max_pending_per_conn;      /* pending sessions from the handshakes of one TCP connection
                                      (not applied to trusted proxies); 429 and close; 0 = no cap */
    const struct rc_cidr *trusted_proxies; /* borrowed: peers whose last X-Forwarded-For line names
                                              the client address */
    size_t trusted_proxy_count;
    char *const *cors_origins;     /* allowed Origin values ("*" for any); borrowed: must outlive
                                      the server. None: no CORS headers, every Origin accepted */
    size_t cors_origin_count;
    int cors_credentials;          /* add Access-Control-Allow-Credentials: true */
} rc_eio_settings;

/* settings is copied (cors_origins is borrowed); cb must outlive the server. */
rc_eio_server *rc_eio_server_new(struct event_base *base, const rc_eio_settings *settings,
                                 const rc_eio_callbacks *cb);
/* Closes every session (on_close fires for each, synchronously here) and frees the server. */
void rc_eio_server_free(rc_eio_server *srv);
/* Handles a request whose path is under the Engine.IO path. */
void rc_eio_handle_request(rc_eio_server *srv, rc_http_request *req);
uint64_t rc_eio_session_count(const rc_eio_server *srv);

/* Why a socket or session ended: the label of roomcast_disconnects_total. Engine.IO counts its
 * own; the Socket.IO layer above counts the namespace disconnects it decides. */
enum rc_eio_disconnect {
    RC_EIO_DISC_CLIENT = 0,        /* transport close / client namespace disconnect */
    RC_EIO_DISC_PING_TIMEOUT,
    RC_EIO_DISC_PARSE_ERROR,
    RC_EIO_DISC_SLOW_CONSUMER,
    RC_EIO_DISC_SERVER,            /* server disconnect (rule, control op, drain) */
    RC_EIO_DISC_TRANSPORT_ERROR,
    RC_EIO_DISC_TOKEN_EXPIRED,     /* the socket's token expired while connected (jwt.onExpiry) */
    RC_EIO_DISC__COUNT
};
void rc_eio_count_disconnect(int reason);
/* Appends Engine.IO's families to /metrics: sessions open and opened by transport, upgrades,
 * disconnects by reason, pending sessions and their refusals, evictions and timeouts. */
void rc_eio_write_metrics(const rc_eio_server *srv, struct evbuffer *out);
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
/* The close reason for a packet over maxPayload (compared by pointer): a WebSocket session
 * closed with it sends close code 1009 instead of 1000. */
extern const char rc_eio_reason_too_large[];
/* Holds the session's output (counted): frames wait, in order, until the last release. Used so
 * a client hears "joined" only once the room's backplane subscription is confirmed. */
void rc_eio_hold(rc_eio_session *s);
void rc_eio_release(rc_eio_session *s);
rc_eio_session *rc_eio_find(rc_eio_server *srv, const char *sid);
/* The session connected a namespace: it leaves the pending budget and its connect deadline. */
void rc_eio_mark_connected(rc_eio_session *s);
const char *rc_eio_sid(const rc_eio_session *s);
/* The client's address as the handshake gave it: the peer, or behind a trusted proxy the address
 * its X-Forwarded-For names (as the pending budget counts it). Valid while the session is. */
const struct rc_addr *rc_eio_client_addr(const rc_eio_session *s);
/* 1 when a packet sent now would go out at once: not closed or held, and a WebSocket with nothing
 * unsent or a polling session with a GET waiting (Socket.IO's volatile packets need it). */
int rc_eio_writable(const rc_eio_session *s);
/* 1 while the session's transport is polling (not upgraded); sessions opened since start (both
 * for the Admin UI, src/admin.c). */
int rc_eio_is_polling(const rc_eio_session *s);
uint64_t rc_eio_opened_total(void);

#endif
