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
 * a short timeout), then closes the way nginx does ("lingering close"): the write side is shut
 * (the peer reads every byte, then the FIN), and input is read and thrown away until the peer
 * closes too, for at most RC_CONN_LINGER_MS and RC_CONN_LINGER_BYTES. A peer still sending when we
 * close (a WebSocket frame over the size limit, a request body refused with 413) thus reads our
 * last words (a close frame, an error answer) instead of a connection reset. The owner hears
 * on_close when the lingering starts; the descriptor stays counted until it ends.
 *
 * Output accounting: a connection is a slow consumer by what stays unsent after the node has
 * written all the kernel would take, not by what one turn queued: the owner sets an output limit
 * and hears on_backlog after a flush that leaves more than that unsent. rc_conn_notify_drain lets an owner wait for the output to empty instead (HTTP stops
 * reading pipelined requests while its answers wait).
 *
 * Peer addresses (rc_addr, rc_cidr) are kept per connection for limits keyed by who connects.
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
    /* The connection is closing (peer closed, error, timeout, rc_conn_close, or the lingering of
     * rc_conn_close_after_flush begins): drop every pointer to c. Called exactly once per handler
     * that was installed when it happened. */
    void (*on_close)(rc_conn *c, void *data);
    /* Optional. After a flush, more than the output limit (rc_conn_set_output_limit) stays unsent:
     * `backlog` bytes. The handler decides (usually: close). */
    void (*on_backlog)(rc_conn *c, void *data, size_t backlog);
    /* Optional. The output is empty again, once per rc_conn_notify_drain. */
    void (*on_drain)(rc_conn *c, void *data);
} rc_conn_handler;

/* ---- peer addresses ---------------------------------------------------------------------- */

typedef struct rc_addr {
    uint8_t family;      /* 4 or 6; 0 unknown. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is 4 */
    uint8_t bytes[16];   /* network order; an IPv4 address in the first 4 */
} rc_addr;

typedef struct rc_cidr {
    rc_addr addr;        /* bits past the prefix are zero */
    uint8_t bits;        /* prefix length: up to 32 (IPv4) or 128 (IPv6) */
} rc_cidr;

/* "192.0.2.1", "2001:db8::1" (the first n bytes of s, no brackets or port). 0, or -1. */
int rc_addr_parse(const char *s, size_t n, rc_addr *out);
/* An address or a range: "10.0.0.0/8", "fd00::/8", "192.0.2.7" (= /32). 0, or -1 (also for
 * bits set past the prefix, "10.0.0.1/8": a typo, not a range). */
int rc_cidr_parse(const char *s, rc_cidr *out);
int rc_cidr_match(const rc_cidr *range, const rc_addr *a);
/* "192.0.2.1", "2001:db8::1", or "unknown". */
void rc_addr_format(const rc_addr *a, char *buf, size_t n);

/* Called for every accepted connection; it must install a handler (rc_conn_set_handler). */
typedef void (*rc_server_accept_fn)(void *arg, rc_conn *c);

rc_server *rc_server_new(struct event_base *base, const char *bind, int port, int max_conns,
                         rc_server_accept_fn on_accept, void *arg, const char **err);
void rc_server_free(rc_server *s);        /* closes every connection */
/* Serves TLS (1.2+) on this listener from now on: PEM certificate chain and key files. */
int rc_server_enable_tls(rc_server *s, const char *cert_file, const char *key_file, const char **err);
/* Chooses how plain sockets are written at the end of a turn (enum rc_send_path of
 * roomcast/server_config.h; src/server_uring.c): AUTO probes io_uring and falls back to writev,
 * IO_URING fails (-1, *err says why) where the probe does, WRITEV never tries. Logs the path in
 * use. TLS sockets always write through their bufferevent. Call before connections arrive. */
int rc_server_set_send_path(rc_server *s, int path, const char **err);
/* "io_uring" or "writev": the path in use. */
const char *rc_server_send_path(const rc_server *s);
/* The io_uring path's counters (zeros on writev): sends completed, io_uring_enter calls, sends
 * the kernel took in part or not at all. */
typedef struct rc_server_uring_stats {
    uint64_t sends, submits, short_sends;
} rc_server_uring_stats;
rc_server_uring_stats rc_server_uring_counters(const rc_server *s);
/* Write coalescing (src/server_delay.c): a frame whose delay_ms is set (1..RC_WRITE_DELAY_MAX)
 * may wait that long on its connection so that frames queued meanwhile leave in the same write;
 * any other output, the output limit or a close ends the wait early. Counters: deferred flushes
 * (holds) and the frames queued while held (frames / holds = frames per such write). */
#define RC_WRITE_DELAY_MAX 20
typedef struct rc_server_delay_stats {
    uint64_t holds, frames;
} rc_server_delay_stats;
rc_server_delay_stats rc_server_delay_counters(const rc_server *s);
void rc_server_pause_accept(rc_server *s); /* draining: no new connections */
uint64_t rc_server_conn_count(const rc_server *s);

/* The transport's counters. The layers above bump the two they decide: a connection refused
 * for a limit of theirs (Engine.IO's session cap), and a connection closed because its unsent
 * output stayed over the cap after a flush (Engine.IO sessions). */
typedef struct rc_server_stats {
    uint64_t accepted;              /* TCP connections accepted */
    uint64_t rejected;              /* refused: max connections, draining, or a layer's own cap */
    uint64_t slow_consumer_drops;   /* closed because their output buffer passed the cap */
    uint64_t linger_cut;            /* lingering closes ended by their time or byte bound */
} rc_server_stats;
extern rc_server_stats rc_server_counters;

/* Bounds of the lingering close (see the top of this file). */
#define RC_CONN_LINGER_MS 2000
#define RC_CONN_LINGER_BYTES (64u << 20)

/* Appends the transport's families to /metrics: open connections (and those lingering),
 * accepted, rejected, slow consumers, lingering closes cut short. */
void rc_server_write_metrics(const rc_server *s, struct evbuffer *out);
int rc_server_port(const rc_server *s);
/* Frees connections closed since the last call; the node calls it at the end of each loop turn
 * (it is also scheduled automatically). */
void rc_server_collect(rc_server *s);

void rc_conn_set_handler(rc_conn *c, const rc_conn_handler *h, void *data);
/* Who connected (from accept), and a number no other connection of this process gets. */
const rc_addr *rc_conn_peer(const rc_conn *c);
uint64_t rc_conn_id(const rc_conn *c);
struct evbuffer *rc_conn_input(rc_conn *c);
struct event_base *rc_conn_base(rc_conn *c);
/* The output buffer, for writes of bytes this connection owns (queued frames go first). */
struct evbuffer *rc_conn_output(rc_conn *c);
/* Queues a shared frame (takes a reference); it is written at the end of the loop turn with the
 * connection's other frames in one writev, from the frame's own bytes; or, when f->delay_ms is
 * set, up to that many ms later with the frames queued meanwhile (server_delay.c). */
struct rc_frame;
void rc_conn_send_frame(rc_conn *c, struct rc_frame *f);
/* Bytes not yet handed to the kernel. */
size_t rc_conn_pending_bytes(rc_conn *c);
/* on_backlog is called after a flush that leaves more than limit bytes unsent (bytes queued
 * since the last write the kernel was offered do not count yet); 0 = no limit. */
void rc_conn_set_output_limit(rc_conn *c, size_t limit);
/* on_drain once the output is empty (at the next flush if it is empty already). */
void rc_conn_notify_drain(rc_conn *c);
void rc_conn_write(rc_conn *c, const void *data, size_t len);
/* Read timeout (idle or header deadline); 0 disables. */
void rc_conn_set_read_timeout(rc_conn *c, int ms);
/* Write timeout: output waiting this long without the peer taking a byte closes; 0 disables. */
void rc_conn_set_write_timeout(rc_conn *c, int ms);
/* Runs the handler's on_read again from the loop (for input left over after a pause). */
void rc_conn_trigger_read(rc_conn *c);
void rc_conn_close(rc_conn *c);
void rc_conn_close_after_flush(rc_conn *c);
int rc_conn_is_closed(const rc_conn *c);
/* Stops reading (backpressure while a request is being answered) / resumes. */
void rc_conn_pause_read(rc_conn *c);
void rc_conn_resume_read(rc_conn *c);

#endif
