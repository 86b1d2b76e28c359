/*
 * eio.c: Engine.IO v4 sessions (see include/roomcast/eio.h and docs/protocol.md).
 *
 * A session has one transport at a time: a WebSocket (rc_ws), or long-polling, where outbound
 * packets wait in a queue of shared frames until a GET is held open to carry them. During an
 * upgrade a second, probing WebSocket exists next to the polling transport until the client sends
 * the `5` (upgrade) packet; the queue is then flushed over the WebSocket in order.
 *
 * Ownership: the server owns its sessions (a hash map by sid). Closing a session detaches its
 * transports at once and puts it on a list that a deferred event drains: that is where on_close
 * reaches the owner and where the session is freed, after the current callbacks unwind.
 *
 * Pending sessions: a session is pending from its handshake until the owner reports a namespace
 * connection (rc_eio_mark_connected), at the latest connect_timeout_ms. Pending sessions have a
 * budget of their own, like nginx's limit_conn keyed on a connection and on an address: at most
 * max_pending_per_conn from the handshakes of one TCP connection (not counted for a trusted
 * proxy, which carries many clients), at most max_pending_per_addr from one client address (the
 * peer, or for a trusted proxy the address X-Forwarded-For names; IPv6 by /64), both refused
 * with 429; and at most max_pending in all, where a new handshake closes the oldest pending
 * session instead of being refused, so a flood from many addresses cannot lock the door either.
 * The counts live in one hash map of small entries (pkey), each freed at zero.
 *
 * Slow consumers: the cap applies behind one packet, whatever its size (a Socket.IO packet with
 * its attachments is at most max_payload): a WebSocket session is closed when a flush leaves more
 * than max_outbound_bytes + max_payload unsent (the transport's on_backlog), a queue (polling
 * between two polls, or output on hold) when it holds more than that.
 *
 * What it does not do: JSONP, HTTP compression, permessage-deflate, WebTransport, cookies.
 */
#include "roomcast/eio.h"
#include "roomcast/common.h"
#include "roomcast/eio_codec.h"
#include "roomcast/eio_cors.h"
#include "roomcast/frame.h"
#include "roomcast/hmap.h"
#include "roomcast/http.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/server.h"
#include "roomcast/ws.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <strings.h>

const char rc_eio_reason_too_large[] = "packet too large";

/* Engine.IO's counters (/metrics: rc_eio_write_metrics). */
static struct {
    uint64_t opened[2];                        /* sessions by initial transport: polling, websocket */
    uint64_t upgrades;                         /* polling -> websocket */
    uint64_t disconnects[RC_EIO_DISC__COUNT];  /* by enum rc_eio_disconnect, Socket.IO's included */
    uint64_t pending_refused[2];               /* handshakes refused: per connection, per address */
    uint64_t pending_evicted;                  /* pending sessions closed for max_pending */
    uint64_t connect_timeouts;                 /* pending sessions closed at connect_timeout_ms */
} eio_stats;

/* A pending-session count: 'c' + a connection id, or 'a' + family + address (IPv6: /64). */
#define PKEY_LEN 18
typedef struct pkey {
    rc_hmap_node node;
    uint32_t count;
    char key[PKEY_LEN];
} pkey;

#define SID_LEN 20

enum { T_POLLING = 0, T_WEBSOCKET = 1 };

struct rc_eio_session {
    rc_hmap_node node;          /* in srv->sessions by sid */
    char sid[SID_LEN + 1];
    uint8_t transport;
    uint8_t closed;
    uint8_t ping_pending;
    uint8_t connected;          /* the owner reported a namespace connection */
    uint8_t hold;               /* output held (rc_eio_hold count): frames wait in the queue */
    uint8_t probed;             /* the upgrade probe was answered: polling is being paused */
    uint8_t pending;            /* not connected yet: counted in the pending budget */
    pkey *by_conn, *by_addr;    /* its counts (NULL where that cap does not apply) */
    rc_addr client;             /* the client's address, from the handshake */
    rc_eio_session *pend_prev, *pend_next; /* srv->pend_head .. pend_tail, oldest first */
    rc_eio_server *srv;
    rc_ws *ws;                  /* T_WEBSOCKET transport */
    rc_ws *probe;               /* WebSocket being upgraded to */
    rc_http_request *get;       /* held polling GET */
    rc_frame **queue;           /* polling outbound queue */
    uint32_t qlen, qcap;
    size_t qbytes;
    struct event *timer;
    uint64_t next_ping_ms;      /* when the next ping is due (if !ping_pending) */
    uint64_t pong_deadline_ms;  /* if ping_pending */
    uint64_t connect_deadline_ms;
    uint64_t upgrade_deadline_ms;
    void *owner;
    const char *close_reason;
    rc_eio_session *next_closed;
};

struct rc_eio_server {
    struct event_base *base;
    rc_eio_settings set;
    rc_eio_cors cors;           /* set's cors_* fields, for eio_cors.c */
    const rc_eio_callbacks *cb;
    rc_hmap sessions;
    rc_eio_session *closed;     /* awaiting on_close + free */
    struct event *reap_ev;
    int refuse_new;
    rc_hmap pkeys;              /* pkey entries by key */
    rc_eio_session *pend_head, *pend_tail;
    uint64_t pending;           /* sessions on that list */
};

static void session_arm_timer(rc_eio_session *s);
static void session_send_frame(rc_eio_session *s, rc_frame *f);

/* ---- helpers ------------------------------------------------------------------------------ */

static rc_eio_session *find_session(rc_eio_server *srv, const char *sid)
{
    rc_hmap_node *n = rc_hmap_find(&srv->sessions, sid, strlen(sid));
    return n ? RC_CONTAINER_OF(n, rc_eio_session, node) : NULL;
}

void rc_eio_cors_headers(const rc_eio_server *srv, const rc_http_request *req, char *buf, size_t n)
{
    rc_eio_cors_write_headers(&srv->cors, req, buf, n);
}

static void respond_error(rc_eio_server *srv, rc_http_request *req, int code)
{
    static const char *const messages[] = {"Transport unknown", "Session ID unknown",
                                           "Bad handshake method", "Bad request", "Forbidden",
                                           "Unsupported protocol version"};
    char body[96], cors[1100];
    int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, messages[code]);
    rc_eio_cors_headers(srv, req, cors, sizeof(cors));
    rc_http_respond(req, code == 4 ? 403 : 400, "application/json", body, (size_t)n, cors);
}

static void respond_payload(rc_eio_session *s, rc_http_request *req, struct evbuffer *body)
{
    char headers[1200];
    char cors[1100];
    rc_eio_cors_headers(s->srv, req, cors, sizeof(cors));
    snprintf(headers, sizeof(headers), "Cache-Control: no-store\r\n%s", cors);
    rc_http_respond_buffer(req, 200, "text/plain; charset=UTF-8", body, headers);
}

/* Answers the held GET with everything queued (or a single packet of `type` if the queue is
 * empty and type >= 0). */
static void flush_get(rc_eio_session *s, int type)
{
    if (!s->get) return;
    rc_http_request *req = s->get;
    s->get = NULL;
    struct evbuffer *body = evbuffer_new();
    if (s->qlen == 0 && type >= 0) {
        rc_eio_payload_append(body, 1, type, 0, NULL, 0);
    }
    for (uint32_t i = 0; i < s->qlen; i++) {
        rc_frame *f = s->queue[i];
        const uint8_t *p = rc_frame_payload(f);
        if (f->opcode == RC_WS_OP_BINARY)
            rc_eio_payload_append(body, i == 0, RC_EIO_MESSAGE, 1, p, f->len);
        else
            rc_eio_payload_append(body, i == 0, p[0] - '0', 0, p + 1, f->len - 1);
        rc_frame_unref(f);
    }
    s->qlen = 0;
    s->qbytes = 0;
    respond_payload(s, req, body);
    evbuffer_free(body);
}

static void get_aborted(void *arg)
{
    rc_eio_session *s = arg;
    s->get = NULL;
}

/* ---- pending sessions --------------------------------------------------------------------- */

static pkey *pkey_find(rc_eio_server *srv, const char *key)
{
    rc_hmap_node *n = rc_hmap_find(&srv->pkeys, key, PKEY_LEN);
    return n ? RC_CONTAINER_OF(n, pkey, node) : NULL;
}

static pkey *pkey_take(rc_eio_server *srv, const char *key)
{
    pkey *k = pkey_find(srv, key);
    if (!k) {
        k = rc_calloc(1, sizeof(*k));
        memcpy(k->key, key, PKEY_LEN);
        rc_hmap_insert(&srv->pkeys, &k->node, k->key, PKEY_LEN);
    }
    k->count++;
    return k;
}

static void pkey_drop(rc_eio_server *srv, pkey *k)
{
    if (k && --k->count == 0) {
        rc_hmap_remove(&srv->pkeys, &k->node);
        rc_free(k);
    }
}

/* The counts a new session would take, decided before it exists. */
typedef struct pending_keys {
    char conn[PKEY_LEN], addr[PKEY_LEN];
    uint8_t per_conn, per_addr;
    rc_addr client;             /* kept by the session (rc_eio_client_addr) */
} pending_keys;

/* 0: the handshake may open a session (keys filled for pending_add); -1: refused and answered
 * (429; a connection past its own budget is closed too, so a pipelined flood ends there). */
static int pending_admit(rc_eio_server *srv, rc_http_request *req, pending_keys *pk)
{
    static const char *const why[] = {"Too many unconnected sessions on this connection",
                                      "Too many unconnected sessions from this address"};
    const rc_eio_settings *set = &srv->set;
    rc_addr a;
    int proxied = rc_http_client_addr(req, set->trusted_proxies, set->trusted_proxy_count, &a);
    memset(pk, 0, sizeof(*pk));
    pk->client = a;
    pk->per_conn = set->max_pending_per_conn > 0 && !proxied;
    pk->per_addr = set->max_pending_per_addr > 0;
    uint64_t id = rc_conn_id(req->conn);
    pk->conn[0] = 'c';
    memcpy(pk->conn + 1, &id, sizeof(id));
    pk->addr[0] = 'a';
    pk->addr[1] = (char)a.family;
    memcpy(pk->addr + 2, a.bytes, a.family == 6 ? 8 : 4); /* IPv6 by /64: one host has them all */
    pkey *k;
    int refused = -1;
    if (pk->per_conn && (k = pkey_find(srv, pk->conn)) && k->count >= (uint32_t)set->max_pending_per_conn)
        refused = 0;
    else if (pk->per_addr && (k = pkey_find(srv, pk->addr)) && k->count >= (uint32_t)set->max_pending_per_addr)
        refused = 1;
    if (refused < 0) return 0;
    eio_stats.pending_refused[refused]++;
    /* One line a second at most: a flood must not become a flood of logs. */
    static uint64_t logged_ms, unlogged;
    uint64_t now = rc_now_mono_ms();
    if (logged_ms && now - logged_ms < 1000) {
        unlogged++;
    } else {
        char ip[64];
        rc_addr_format(&a, ip, sizeof(ip));
        rc_log_warn("pending_refused", "addr=%s limit=%s refused_since_last_log=%llu", ip,
                    refused ? "address" : "connection", (unsigned long long)unlogged);
        logged_ms = now;
        unlogged = 0;
    }
    char body[128], cors[1100], headers[1200];
    int n = snprintf(body, sizeof(body), "{\"code\":4,\"message\":\"%s\"}", why[refused]);
    rc_eio_cors_headers(srv, req, cors, sizeof(cors));
    snprintf(headers, sizeof(headers), "Retry-After: 1\r\n%s", cors);
    if (refused == 0) req->keep_alive = 0;
    rc_http_respond(req, 429, "application/json", body, (size_t)n, headers);
    return -1;
}

static void pending_add(rc_eio_session *s, const pending_keys *pk)
{
    rc_eio_server *srv = s->srv;
    s->pending = 1;
    s->by_conn = pk->per_conn ? pkey_take(srv, pk->conn) : NULL;
    s->by_addr = pk->per_addr ? pkey_take(srv, pk->addr) : NULL;
    s->pend_prev = srv->pend_tail;
    s->pend_next = NULL;
    if (srv->pend_tail) srv->pend_tail->pend_next = s;
    else srv->pend_head = s;
    srv->pend_tail = s;
    srv->pending++;
}

static void pending_remove(rc_eio_session *s)
{
    if (!s->pending) return;
    rc_eio_server *srv = s->srv;
    s->pending = 0;
    pkey_drop(srv, s->by_conn);
    pkey_drop(srv, s->by_addr);
    s->by_conn = s->by_addr = NULL;
    if (s->pend_prev) s->pend_prev->pend_next = s->pend_next;
    else srv->pend_head = s->pend_next;
    if (s->pend_next) s->pend_next->pend_prev = s->pend_prev;
    else srv->pend_tail = s->pend_prev;
    s->pend_prev = s->pend_next = NULL;
    srv->pending--;
}

/* ---- close -------------------------------------------------------------------------------- */

static void server_on_reap(evutil_socket_t fd, short what, void *arg);

static void session_free(rc_eio_session *s)
{
    for (uint32_t i = 0; i < s->qlen; i++) rc_frame_unref(s->queue[i]);
    rc_free(s->queue);
    event_free(s->timer);
    rc_free(s);
}

void rc_eio_close(rc_eio_session *s, const char *reason)
{
    if (s->closed) return;
    rc_eio_server *srv = s->srv;
    rc_log_debug("eio_close", "sid=%s reason=\"%s\"", s->sid, reason);
    s->closed = 1;
    s->close_reason = reason;
    pending_remove(s);
    rc_hmap_remove(&srv->sessions, &s->node);
    evtimer_del(s->timer);
    if (s->get) {
        /* Tell a polling client the session is over. */
        rc_http_request *req = s->get;
        s->get = NULL;
        struct evbuffer *body = evbuffer_new();
        rc_eio_payload_append(body, 1, RC_EIO_CLOSE, 0, NULL, 0);
        respond_payload(s, req, body);
        evbuffer_free(body);
    }
    if (s->ws) {
        rc_ws_close(s->ws, reason == rc_eio_reason_too_large ? RC_WS_CLOSE_TOO_BIG : RC_WS_CLOSE_NORMAL);
        s->ws = NULL;
    }
    if (s->probe) {
        rc_ws_close(s->probe, RC_WS_CLOSE_NORMAL);
        s->probe = NULL;
    }
    s->next_closed = srv->closed;
    srv->closed = s;
    event_active(srv->reap_ev, 0, 0);
}

static void server_on_reap(evutil_socket_t fd, short what, void *arg)
{
    rc_eio_server *srv = arg;
    while (srv->closed) {
        rc_eio_session *s = srv->closed;
        srv->closed = s->next_closed;
        if (s->owner) srv->cb->on_close(s->owner, s->close_reason);
        session_free(s);
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

static void slow_consumer(rc_eio_session *s, size_t unsent)
{
    rc_server_counters.slow_consumer_drops++;
    eio_stats.disconnects[RC_EIO_DISC_SLOW_CONSUMER]++;
    rc_log_info("slow_consumer", "sid=%s unsent=%zu", s->sid, unsent);
    rc_eio_close(s, "slow consumer");
}

/* The WebSocket transport's flush left too much unsent (see the top of this file). */
static void ws_on_backlog(void *arg, rc_ws *ws, size_t backlog)
{
    rc_eio_session *s = arg;
    if (!s->closed && s->ws == ws) slow_consumer(s, backlog);
}

static void session_send_frame(rc_eio_session *s, rc_frame *f)
{
    if (s->closed) return;
    if (s->transport == T_WEBSOCKET && s->ws && !s->hold) {
        rc_ws_send_frame(s->ws, f); /* judged after the flush: ws_on_backlog */
        return;
    }
    if (s->qlen == s->qcap) {
        s->qcap = s->qcap ? s->qcap * 2 : 4;
        s->queue = rc_realloc(s->queue, s->qcap * sizeof(*s->queue));
    }
    s->queue[s->qlen++] = rc_frame_ref(f);
    s->qbytes += f->len;
    /* The cap applies behind one packet (a Socket.IO packet with its attachments is at most
     * max_payload), which the next poll (or the end of the hold) delivers whatever its size. */
    if (s->qbytes > s->srv->set.max_outbound_bytes + s->srv->set.max_payload) {
        slow_consumer(s, s->qbytes);
        return;
    }
    if (s->get && !s->hold) flush_get(s, -1);
}

void rc_eio_send_frame(rc_eio_session *s, rc_frame *f) { session_send_frame(s, f); }

/* Sends everything the queue holds through the session's current transport, in order (after an
 * upgrade, or when a hold ends). */
static void requeue_all(rc_eio_session *s)
{
    uint32_t n = s->qlen;
    rc_frame **q = s->queue;
    s->queue = NULL;
    s->qlen = s->qcap = 0;
    s->qbytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        session_send_frame(s, q[i]);
        rc_frame_unref(q[i]);
    }
    rc_free(q);
}

void rc_eio_hold(rc_eio_session *s)
{
    if (s->hold < 255) s->hold++;
}

void rc_eio_release(rc_eio_session *s)
{
    if (s->hold == 0 || --s->hold > 0 || s->closed) return;
    if (s->transport == T_WEBSOCKET && s->ws) {
        requeue_all(s);
    } else if (s->get && s->qlen) {
        flush_get(s, -1);
    }
}

rc_eio_session *rc_eio_find(rc_eio_server *srv, const char *sid)
{
    return find_session(srv, sid);
}

void rc_eio_send_message(rc_eio_session *s, int binary, const void *data, size_t len)
{
    if (s->closed) return;
    rc_frame *f;
    if (binary) {
        f = rc_frame_from(RC_WS_OP_BINARY, data, len);
    } else {
        f = rc_frame_new(RC_WS_OP_TEXT, len + 1);
        uint8_t *p = rc_frame_payload(f);
        p[0] = '4';
        memcpy(p + 1, data, len);
    }
    session_send_frame(s, f);
    rc_frame_unref(f);
}

static void send_control(rc_eio_session *s, char type)
{
    rc_frame *f = rc_frame_from(RC_WS_OP_TEXT, &type, 1);
    session_send_frame(s, f);
    rc_frame_unref(f);
}

/* ---- timers ------------------------------------------------------------------------------- */

static void session_on_timer(evutil_socket_t fd, short what, void *arg)
{
    rc_eio_session *s = arg;
    const rc_eio_settings *set = &s->srv->set;
    uint64_t now = rc_now_mono_ms();
    if (!s->connected && s->connect_deadline_ms && now >= s->connect_deadline_ms) {
        rc_log_debug("connect_timeout", "sid=%s", s->sid);
        eio_stats.connect_timeouts++;
        rc_eio_close(s, "connect timeout");
        return;
    }
    if (s->probe && s->upgrade_deadline_ms && now >= s->upgrade_deadline_ms) {
        rc_ws_close(s->probe, RC_WS_CLOSE_NORMAL);
        s->probe = NULL;
        s->upgrade_deadline_ms = 0;
    }
    if (s->ping_pending) {
        if (now >= s->pong_deadline_ms) {
            eio_stats.disconnects[RC_EIO_DISC_PING_TIMEOUT]++;
            rc_eio_close(s, "ping timeout");
            return;
        }
    } else if (now >= s->next_ping_ms) {
        s->ping_pending = 1;
        s->pong_deadline_ms = now + (uint64_t)set->ping_timeout_ms;
        send_control(s, '2');
        if (s->closed) return;
    }
    session_arm_timer(s);
}

static void session_arm_timer(rc_eio_session *s)
{
    uint64_t due = s->ping_pending ? s->pong_deadline_ms : s->next_ping_ms;
    if (!s->connected && s->connect_deadline_ms && s->connect_deadline_ms < due) due = s->connect_deadline_ms;
    if (s->probe && s->upgrade_deadline_ms && s->upgrade_deadline_ms < due) due = s->upgrade_deadline_ms;
    uint64_t now = rc_now_mono_ms();
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(s->timer, &tv);
}

void rc_eio_mark_connected(rc_eio_session *s)
{
    s->connected = 1;
    pending_remove(s);
}

const char *rc_eio_sid(const rc_eio_session *s) { return s->sid; }
const rc_addr *rc_eio_client_addr(const rc_eio_session *s) { return &s->client; }
int rc_eio_writable(const rc_eio_session *s)
{
    if (s->closed || s->hold) return 0;
    return s->transport == T_WEBSOCKET ? s->ws && rc_ws_pending_bytes(s->ws) == 0 : s->get != NULL;
}
int rc_eio_is_polling(const rc_eio_session *s) { return s->transport == T_POLLING; }
uint64_t rc_eio_opened_total(void) { return eio_stats.opened[0] + eio_stats.opened[1]; }

/* ---- inbound packets ---------------------------------------------------------------------- */

/* Handles one packet on the session's current transport. Returns -1 if the session closed. */
static int session_on_packet(rc_eio_session *s, const rc_eio_packet *p)
{
    if (s->closed) return -1;
    switch (p->type) {
    case RC_EIO_PONG:
        if (s->ping_pending) {
            s->ping_pending = 0;
            s->next_ping_ms = rc_now_mono_ms() + (uint64_t)s->srv->set.ping_interval_ms;
            session_arm_timer(s);
        }
        return 0;
    case RC_EIO_MESSAGE:
        s->srv->cb->on_message(s->owner, p->binary, p->data, p->len);
        return s->closed ? -1 : 0;
    case RC_EIO_CLOSE:
        /* The client closes (over polling, its POST carries the `1`): the GET it still holds is
         * answered with a noop `6`, as engine.io's polling transport does, not with the `1`
         * that rc_eio_close sends when the server ends a session. (A held GET finds the queue
         * empty unless output is held: then it carries those packets instead.) */
        if (s->get) flush_get(s, RC_EIO_NOOP);
        eio_stats.disconnects[RC_EIO_DISC_CLIENT]++;
        rc_eio_close(s, "transport close");
        return -1;
    case RC_EIO_NOOP:
        return 0;
    default: /* ping from a client (wrong direction in v4), open, stray upgrade */
        eio_stats.disconnects[RC_EIO_DISC_PARSE_ERROR]++;
        rc_eio_close(s, "parse error");
        return -1;
    }
}

static int post_packet_cb(void *arg, const rc_eio_packet *p)
{
    return session_on_packet(arg, p) < 0 ? 1 : 0;
}

/* ---- WebSocket transport ------------------------------------------------------------------ */

static void ws_on_message(void *arg, rc_ws *ws, int binary, const uint8_t *data, size_t len)
{
    rc_eio_session *s = arg;
    rc_eio_packet p;
    if (binary) {
        p.type = RC_EIO_MESSAGE;
        p.binary = 1;
        p.data = data;
        p.len = len;
    } else if (rc_eio_decode_text((const char *)data, len, &p) != 0) {
        eio_stats.disconnects[RC_EIO_DISC_PARSE_ERROR]++;
        rc_eio_close(s, "parse error");
        return;
    }
    session_on_packet(s, &p);
}

static void ws_on_close(void *arg, rc_ws *ws)
{
    rc_eio_session *s = arg;
    if (s->ws == ws) s->ws = NULL;
    eio_stats.disconnects[RC_EIO_DISC_CLIENT]++;
    rc_eio_close(s, "transport close");
}

static const rc_ws_callbacks ws_transport_cb = {ws_on_message, ws_on_close, ws_on_backlog};

static void probe_on_message(void *arg, rc_ws *ws, int binary, const uint8_t *data, size_t len)
{
    rc_eio_session *s = arg;
    if (!binary && len == 6 && memcmp(data, "2probe", 6) == 0) {
        rc_ws_send(ws, RC_WS_OP_TEXT, "3probe", 6);
        s->probed = 1;
        /* Let the client's paused poll finish now rather than at the next ping. */
        if (s->get) flush_get(s, RC_EIO_NOOP);
        return;
    }
    if (!binary && len == 1 && data[0] == '5') {
        /* Upgrade complete: the WebSocket becomes the transport; flush what polling held. */
        s->probe = NULL;
        s->upgrade_deadline_ms = 0;
        s->ws = ws;
        s->transport = T_WEBSOCKET;
        rc_ws_set_callbacks(ws, &ws_transport_cb, s);
        rc_ws_set_output_limit(ws, s->srv->set.max_outbound_bytes + s->srv->set.max_payload);
        eio_stats.upgrades++;
        if (s->get) flush_get(s, RC_EIO_NOOP);
        requeue_all(s);
        if (s->srv->cb->on_upgrade) s->srv->cb->on_upgrade(s->owner);
        return;
    }
    /* Anything else aborts the upgrade; the polling session goes on. */
    s->probe = NULL;
    s->probed = 0;
    rc_ws_close(ws, RC_WS_CLOSE_PROTOCOL);
}

static void probe_on_close(void *arg, rc_ws *ws)
{
    rc_eio_session *s = arg;
    if (s->probe == ws) {
        s->probe = NULL;
        s->probed = 0;
    }
}

static const rc_ws_callbacks probe_cb = {probe_on_message, probe_on_close, NULL};

/* ---- handshake ---------------------------------------------------------------------------- */

/* A new session, pending; past max_pending the oldest pending session makes room. */
static rc_eio_session *session_new(rc_eio_server *srv, int transport, const pending_keys *pk)
{
    if (srv->set.max_pending > 0 && srv->pending >= (uint64_t)srv->set.max_pending && srv->pend_head) {
        eio_stats.pending_evicted++;
        rc_eio_close(srv->pend_head, "too many pending sessions");
    }
    rc_eio_session *s = rc_calloc(1, sizeof(*s));
    s->srv = srv;
    s->transport = (uint8_t)transport;
    do {
        rc_random_id(s->sid, SID_LEN);
    } while (find_session(srv, s->sid));
    rc_hmap_insert(&srv->sessions, &s->node, s->sid, SID_LEN);
    s->timer = evtimer_new(srv->base, session_on_timer, s);
    uint64_t now = rc_now_mono_ms();
    s->next_ping_ms = now + (uint64_t)srv->set.ping_interval_ms;
    s->connect_deadline_ms = now + (uint64_t)srv->set.connect_timeout_ms;
    pending_add(s, pk);
    s->client = pk->client;
    session_arm_timer(s);
    eio_stats.opened[transport]++;
    return s;
}

static int open_packet(rc_eio_session *s, char *buf, size_t n)
{
    const rc_eio_settings *set = &s->srv->set;
    int upgrades = s->transport == T_POLLING && set->allow_websocket;
    return snprintf(buf, n, "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%d,\"pingTimeout\":%d,"
                            "\"maxPayload\":%zu}",
                    s->sid, upgrades ? "\"websocket\"" : "", set->ping_interval_ms,
                    set->ping_timeout_ms, set->max_payload);
}

/* max_sessions (the node gives limits.maxConnections) bounds Engine.IO sessions too: polling
 * sessions outlive their TCP connections, so counting connections alone would let handshakes pile
 * up sessions. */
static int session_cap_reached(const rc_eio_server *srv)
{
    if (srv->set.max_sessions > 0 && srv->sessions.count >= (size_t)srv->set.max_sessions) {
        rc_server_counters.rejected++;
        return 1;
    }
    return 0;
}

void rc_eio_handle_request(rc_eio_server *srv, rc_http_request *req)
{
    char eio[8], transport[16], sid[64];
    if (req->method == RC_HTTP_OPTIONS) {
        char cors[1100], headers[2048];
        rc_eio_cors_headers(srv, req, cors, sizeof(cors));
        const char *rh = rc_http_header(req, "Access-Control-Request-Headers");
        if (cors[0]) {
            snprintf(headers, sizeof(headers),
                     "%sAccess-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE\r\n"
                     "Access-Control-Allow-Headers: %.512s\r\n", cors, rh ? rh : "");
        } else {
            headers[0] = '\0';
        }
        rc_http_respond(req, 204, NULL, NULL, 0, headers);
        return;
    }
    if (!rc_http_query_param(req, "EIO", eio, sizeof(eio)) || strcmp(eio, "4") != 0) {
        respond_error(srv, req, 5);
        return;
    }
    if (!rc_http_query_param(req, "transport", transport, sizeof(transport))) {
        respond_error(srv, req, 0);
        return;
    }
    int is_ws = strcmp(transport, "websocket") == 0;
    int is_polling = strcmp(transport, "polling") == 0;
    if ((!is_ws && !is_polling) || (is_ws && !srv->set.allow_websocket) ||
        (is_polling && !srv->set.allow_polling)) {
        respond_error(srv, req, 0);
        return;
    }
    int has_sid = rc_http_query_param(req, "sid", sid, sizeof(sid));

    if (is_ws) {
        if (!req->upgrade || rc_ws_check_upgrade(req) != NULL) {
            respond_error(srv, req, 3);
            return;
        }
        if (rc_eio_cors_refused(&srv->cors, req)) {
            rc_eio_cors_refuse(req, "websocket");
            return;
        }
        if (has_sid) {
            rc_eio_session *s = find_session(srv, sid);
            if (!s) { respond_error(srv, req, 1); return; }
            if (s->transport != T_POLLING) {
                /* The session is on a WebSocket already: engine.io accepts this one (101) and
                 * closes it at once, leaving the session alone; so do we. No callbacks: nothing
                 * of it reaches the session. */
                rc_ws_close(rc_ws_accept(req, srv->set.max_payload, NULL, NULL), RC_WS_CLOSE_NORMAL);
                return;
            }
            if (s->probe) { respond_error(srv, req, 3); return; }
            s->probe = rc_ws_accept(req, srv->set.max_payload, &probe_cb, s);
            s->upgrade_deadline_ms = rc_now_mono_ms() + (uint64_t)srv->set.upgrade_timeout_ms;
            session_arm_timer(s);
            return;
        }
        if (srv->refuse_new || session_cap_reached(srv)) { respond_error(srv, req, 4); return; }
        pending_keys pk;
        if (pending_admit(srv, req, &pk) != 0) return;
        rc_eio_session *s = session_new(srv, T_WEBSOCKET, &pk);
        s->owner = srv->cb->on_open(srv->cb->arg, s, req);
        s->ws = rc_ws_accept(req, srv->set.max_payload, &ws_transport_cb, s);
        rc_ws_set_output_limit(s->ws, srv->set.max_outbound_bytes + srv->set.max_payload);
        char open[256];
        int n = open_packet(s, open, sizeof(open));
        rc_ws_send(s->ws, RC_WS_OP_TEXT, open, (size_t)n);
        return;
    }

    /* polling */
    if (!has_sid) {
        if (req->method != RC_HTTP_GET) { respond_error(srv, req, 2); return; }
        if (rc_eio_cors_refused(&srv->cors, req)) { rc_eio_cors_refuse(req, "polling"); return; }
        rc_eio_cors_note(&srv->cors, req);
        if (srv->refuse_new || session_cap_reached(srv)) { respond_error(srv, req, 4); return; }
        pending_keys pk;
        if (pending_admit(srv, req, &pk) != 0) return;
        rc_eio_session *s = session_new(srv, T_POLLING, &pk);
        s->owner = srv->cb->on_open(srv->cb->arg, s, req);
        char open[256];
        int n = open_packet(s, open, sizeof(open));
        struct evbuffer *body = evbuffer_new();
        evbuffer_add(body, open, (size_t)n);
        respond_payload(s, req, body);
        evbuffer_free(body);
        return;
    }
    rc_eio_session *s = find_session(srv, sid);
    if (!s) { respond_error(srv, req, 1); return; }
    if (s->transport != T_POLLING) { respond_error(srv, req, 3); return; }
    if (req->method == RC_HTTP_GET) {
        if (s->get) {
            /* Two GETs at once: a protocol error; end the session. */
            respond_error(srv, req, 3);
            rc_eio_close(s, "parse error");
            return;
        }
        s->get = req;
        rc_http_hold(req, get_aborted, s);
        if (s->qlen > 0 && !s->hold) flush_get(s, -1);
        else if (s->probed && s->probe) flush_get(s, RC_EIO_NOOP); /* let the client's pause finish */
        return;
    }
    if (req->method == RC_HTTP_POST) {
        const char *ct = rc_http_header(req, "Content-Type");
        if (ct && strncasecmp(ct, "application/octet-stream", 24) == 0) {
            respond_error(srv, req, 3);
            return;
        }
        char cors[1100], headers[1200];
        rc_eio_cors_headers(srv, req, cors, sizeof(cors));
        snprintf(headers, sizeof(headers), "Cache-Control: no-store\r\n%s", cors);
        /* Engine.IO text is UTF-8, as a WebSocket text frame must be: a body that is not would
         * reach WebSocket members as an invalid text frame. */
        if (req->body_len && !rc_utf8_valid(req->body, req->body_len)) {
            eio_stats.disconnects[RC_EIO_DISC_PARSE_ERROR]++;
            rc_eio_close(s, "parse error");
            respond_error(srv, req, 3);
            return;
        }
        int r = rc_eio_payload_decode((const char *)req->body, req->body_len, post_packet_cb, s);
        if (r < 0) {
            eio_stats.disconnects[RC_EIO_DISC_PARSE_ERROR]++;
            rc_eio_close(s, "parse error");
            respond_error(srv, req, 3);
            return;
        }
        rc_http_respond(req, 200, "text/html", "ok", 2, headers);
        return;
    }
    respond_error(srv, req, 3);
}

/* ---- server ------------------------------------------------------------------------------- */

rc_eio_server *rc_eio_server_new(struct event_base *base, const rc_eio_settings *settings,
                                 const rc_eio_callbacks *cb)
{
    rc_eio_server *srv = rc_calloc(1, sizeof(*srv));
    srv->base = base;
    srv->set = *settings;
    srv->cors = (rc_eio_cors){settings->cors_origins, settings->cors_origin_count, settings->cors_credentials};
    srv->cb = cb;
    srv->reap_ev = event_new(base, -1, 0, server_on_reap, srv);
    return srv;
}

void rc_eio_server_refuse_new(rc_eio_server *srv) { srv->refuse_new = 1; }

void rc_eio_close_all(rc_eio_server *srv, const char *reason)
{
    rc_hmap_node *n;
    while ((n = rc_hmap_first(&srv->sessions)) != NULL)
        rc_eio_close(RC_CONTAINER_OF(n, rc_eio_session, node), reason);
}
uint64_t rc_eio_session_count(const rc_eio_server *srv) { return srv->sessions.count; }

void rc_eio_server_free(rc_eio_server *srv)
{
    rc_eio_close_all(srv, "server shutting down");
    server_on_reap(-1, 0, srv);
    rc_hmap_dispose(&srv->sessions);
    rc_hmap_dispose(&srv->pkeys); /* empty: every pending session let go of its counts */
    event_free(srv->reap_ev);
    rc_free(srv);
}

void rc_eio_count_disconnect(int reason)
{
    if (reason >= 0 && reason < RC_EIO_DISC__COUNT) eio_stats.disconnects[reason]++;
}

void rc_eio_write_metrics(const rc_eio_server *srv, struct evbuffer *out)
{
    static const char *const transports[] = {"polling", "websocket"};
    static const char *const reasons[] = {
        [RC_EIO_DISC_CLIENT] = "client",
        [RC_EIO_DISC_PING_TIMEOUT] = "ping_timeout",
        [RC_EIO_DISC_PARSE_ERROR] = "parse_error",
        [RC_EIO_DISC_SLOW_CONSUMER] = "slow_consumer",
        [RC_EIO_DISC_SERVER] = "server",
        [RC_EIO_DISC_TRANSPORT_ERROR] = "transport_error",
        [RC_EIO_DISC_TOKEN_EXPIRED] = "token_expired",
    };
    _Static_assert(RC_ARRAY_LEN(reasons) == RC_EIO_DISC__COUNT, "disconnect reason table");
    rc_metrics_put_scalar(out, "roomcast_eio_sessions", "gauge", "Open Engine.IO sessions.",
                          rc_eio_session_count(srv));
    rc_metrics_put_by_label(out, "roomcast_eio_sessions_opened_total", "counter",
                            "Engine.IO sessions opened, by initial transport.", "transport", transports,
                            eio_stats.opened, 0, RC_ARRAY_LEN(transports));
    rc_metrics_put_scalar(out, "roomcast_eio_upgrades_total", "counter",
                          "Engine.IO upgrades from polling to websocket.", eio_stats.upgrades);
    rc_metrics_put_by_label(out, "roomcast_disconnects_total", "counter", "Socket disconnections, by reason.",
                            "reason", reasons, eio_stats.disconnects, 0, RC_EIO_DISC__COUNT);
    static const char *const limits[] = {"connection", "address"};
    rc_metrics_put_scalar(out, "roomcast_eio_sessions_pending", "gauge",
                          "Engine.IO sessions that have not connected a namespace yet.", srv->pending);
    rc_metrics_put_by_label(out, "roomcast_eio_pending_refused_total", "counter",
                            "Handshakes refused (429) for the pending-session budget, by limit.", "limit", limits,
                            eio_stats.pending_refused, 0, RC_ARRAY_LEN(limits));
    rc_metrics_put_scalar(out, "roomcast_eio_pending_evicted_total", "counter",
                          "Pending sessions closed to make room under the node's pending cap.",
                          eio_stats.pending_evicted);
    rc_metrics_put_scalar(out, "roomcast_eio_connect_timeouts_total", "counter",
                          "Sessions closed for connecting no namespace within engine.connectTimeout.",
                          eio_stats.connect_timeouts);
    rc_eio_cors_write_metrics(out);
}
