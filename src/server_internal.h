/*
 * server_internal.h: what the transport's own files share (server.c, server_uring.c), never
 * included outside them: the rc_conn and rc_server structs, and the frame queue's two steps
 * that a send path needs (which bytes to offer, and what to drop once the kernel took some).
 *
 * Ownership is server.c's (see its design note). A send path borrows the queued frames' bytes
 * for the length of one system call (writev, or one io_uring_enter that completes the sends it
 * submits before it returns): the frames stay referenced by the queue until
 * rc_server__fq_advance drops those the kernel took, so their bytes outlive the send.
 */
#ifndef ROOMCAST_SERVER_INTERNAL_H
#define ROOMCAST_SERVER_INTERNAL_H

#include "roomcast/frame.h"
#include "roomcast/server.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct evbuffer;

struct rc_uring;
typedef struct rc_server_delay rc_server_delay;

struct rc_conn {
    struct bufferevent *bev;
    int fd;                    /* bev's socket, kept here: the flush writes it without asking */
    rc_server *server;
    const rc_conn_handler *handler;
    void *data;
    rc_conn *prev, *next;      /* live list, or the dead list (next only) once closed */
    rc_conn *next_pending;     /* in server->pending while output waits for the end of the turn */
    rc_conn *dl_prev, *dl_next; /* on a write delay's waiting list (server_delay.c) */
    uint64_t dl_due_ns;        /* when that wait ends (monotonic) */
    uint8_t dl_ms;             /* the list's delay; 0: not waiting */
    uint8_t closed;
    uint8_t flush_close;
    uint8_t pending;           /* on the pending-write list */
    uint8_t write_armed;       /* the kernel buffer was full: libevent's write event is on */
    uint8_t tls;               /* TLS: the bufferevent writes (through OpenSSL), not the flush */
    uint8_t out_used;          /* bytes may sit in the bufferevent's output: set by every path
                                * that adds there, cleared where it is seen empty. Saves two
                                * libevent calls (and their cache misses) per delivery. */
    uint8_t lingering;         /* closed for its owner; reading and discarding until the end */
    uint8_t peer_eof;          /* the peer shut its side while we flushed before a close */
    uint8_t want_drain;        /* on_drain once the output is empty */
    int8_t uring_state;        /* this turn's io_uring send, applied to the queue already:
                                * 0 none or all taken, 1 the kernel buffer is full, -1 an error */
    int uring_errno;           /* the error of uring_state -1 */
    int read_ms, write_ms;     /* timeouts as set (0: none) */
    size_t out_limit;          /* rc_conn_set_output_limit; 0: none */
    size_t fresh;              /* output bytes appended since the last write offered (see top) */
    size_t discarded;          /* input thrown away while closing */
    uint64_t linger_end_ms;
    uint64_t id;
    rc_addr peer;
    /* Shared frames queued this turn, written by the flush straight from their bytes (writev):
     * no buffer chain and no allocation per delivery. Four inline slots, more on the heap. */
    uint16_t fq_len, fq_cap;
    uint32_t fq_off;           /* bytes of fq[0] already written */
    size_t fq_bytes;
    rc_frame **fq;             /* fq_inline or a heap array */
    rc_frame *fq_inline[4];
};

struct rc_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *collect_ev;       /* frees dead connections after the current callbacks */
    struct event *resume_accept_ev; /* re-enables accepting after an accept error */
    struct event *flush_ev;         /* writes pending output once per loop turn */
    rc_conn *pending;               /* connections with output appended this turn */
    SSL_CTX *tls;                   /* NULL: plain TCP */
    rc_server_accept_fn on_accept;
    void *arg;
    rc_conn *live;
    rc_conn *dead;
    uint64_t count;
    uint64_t lingering;             /* connections in a lingering close (counted in count) */
    uint64_t next_id;
    int max_conns;
    int port;
    int paused;
    struct rc_uring *uring;         /* the io_uring send path (server_uring.c); NULL: writev */
    rc_server_delay *delay;         /* write coalescing (server_delay.c); NULL until first used */
};

/* Frames the queue offers to one send: at most this many iovecs. */
#define RC_FQ_IOV_MAX 64

/* Fills iov (up to max entries) with the queue's unsent bytes from its head; *total gets their
 * length. Returns the number of entries (0: the queue is empty). */
int rc_server__fq_iov(const rc_conn *c, struct iovec *iov, int max, size_t *total);
/* The kernel took w of the total bytes offered by rc_server__fq_iov: drops (unrefs) the frames
 * sent whole and moves the offset into a frame sent in part. Returns 1 when w < total (the
 * kernel buffer is full), else 0. */
int rc_server__fq_advance(rc_conn *c, size_t w, size_t total);

/* server_uring.c, called by server.c: the turn's io_uring sends for the connections of list
 * (linked by next_pending), each result left in uring_state; the metrics; the ring's end. */
void rc_server__uring_send(struct rc_uring *u, rc_conn *list);
void rc_server__uring_write_metrics(const rc_server *s, struct evbuffer *out);
void rc_server__uring_free(struct rc_uring *u);

/* server.c, called by server_delay.c: puts c on this turn's flush list (no-op if it is on it
 * already or closed). */
void rc_server__schedule_flush(rc_conn *c);

/* server_delay.c, called by server.c: c just queued a frame of delay ms (1..RC_WRITE_DELAY_MAX)
 * and is not on the flush list: it waits on that delay's list (or moves to this earlier
 * deadline); cancel takes it off (a flush or a close); the metrics; the lists' end. */
void rc_server__delay_hold(rc_conn *c, unsigned ms);
void rc_server__delay_cancel(rc_conn *c);
void rc_server__delay_write_metrics(const rc_server *s, struct evbuffer *out);
void rc_server__delay_free(rc_server_delay *d);

#endif
