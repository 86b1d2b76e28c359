/*
 * server.h: the transport layer — a TCP listener and its connections (rc_conn) on libevent
 * bufferevents. It knows nothing of HTTP or WebSocket: whoever currently owns a connection (the
 * HTTP layer, then the WebSocket layer after an upgrade) installs an rc_conn_handler and gets
 * told when bytes arrive and when the connection goes away.
 *
 * Lifecycle ("close now, free later"): rc_conn_close stops all I/O at once and calls the
 * handler's on_close exactly once; the struct itself is freed later, at a safe point of the loop,
 * so a caller that closes a connection from inside one of its callbacks may keep using the
 * pointer until it returns. rc_conn_close_after_flush lets pending output drain first (bounded by
 * a short timeout).
 *
 * Accept errors (EMFILE, ENFILE, ENOBUFS) pause accepting for a moment instead of spinning.
 */
#ifndef ROOMCAST_SERVER_H
#define ROOMCAST_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct bufferevent;
typedef struct rc_conn rc_conn;
typedef struct rc_server rc_server;

typedef struct rc_conn_handler {
    /* New bytes are in rc_conn_input(c). */
    void (*on_read)(rc_conn *c, void *data);
    /* The connection is closing (peer closed, error, timeout, or rc_conn_close): drop every
     * pointer to c. Called exactly once per handler that was installed when it happened. */
    void (*on_close)(rc_conn *c, void *data);
} rc_conn_handler;

/* Called for every accepted connection; it must install a handler (rc_conn_set_handler). */
typedef void (*rc_server_accept_fn)(void *arg, rc_conn *c);

rc_server *rc_server_new(struct event_base *base, const char *bind, int port, int max_conns,
                         rc_server_accept_fn on_accept, void *arg, const char **err);
void rc_server_free(rc_server *s);        /* closes every connection */
/* Serves TLS (1.2+) on this listener from now on: PEM certificate chain and key files. */
int rc_server_enable_tls(rc_server *s, const char *cert_file, const char *key_file, const char **err);
void rc_server_pause_accept(rc_server *s); /* draining: no new connections */
uint64_t rc_server_conn_count(const rc_server *s);
int rc_server_port(const rc_server *s);
/* Frees connections closed since the last call; the node calls it at the end of each loop turn
 * (it is also scheduled automatically). */
void rc_server_collect(rc_server *s);

void rc_conn_set_handler(rc_conn *c, const rc_conn_handler *h, void *data);
struct evbuffer *rc_conn_input(rc_conn *c);
struct event_base *rc_conn_base(rc_conn *c);
/* The output buffer, for writes of bytes this connection owns (queued frames go first). */
struct evbuffer *rc_conn_output(rc_conn *c);
/* Queues a shared frame (takes a reference); it is written at the end of the loop turn with the
 * connection's other frames in one writev, from the frame's own bytes. */
struct rc_frame;
void rc_conn_send_frame(rc_conn *c, struct rc_frame *f);
/* Bytes not yet handed to the kernel (the outbound limit is checked against this). */
size_t rc_conn_pending_bytes(rc_conn *c);
void rc_conn_write(rc_conn *c, const void *data, size_t len);
/* Read timeout (idle or header deadline); 0 disables. */
void rc_conn_set_read_timeout(rc_conn *c, int ms);
/* Runs the handler's on_read again from the loop (for input left over after a pause). */
void rc_conn_trigger_read(rc_conn *c);
void rc_conn_close(rc_conn *c);
void rc_conn_close_after_flush(rc_conn *c);
int rc_conn_is_closed(const rc_conn *c);
/* Stops reading (backpressure while a request is being answered) / resumes. */
void rc_conn_pause_read(rc_conn *c);
void rc_conn_resume_read(rc_conn *c);

#endif
