/*
 * sio_internal.h: the Socket.IO server's structures, shared by src/sio.c (sessions, sockets,
 * CONNECT, inbound packets, token expiry, holds), src/sio_broadcast.c (the local fan-out and
 * control ops) and src/sio_rate.c (rate limits). Nothing outside those files includes it; the public API is
 * include/roomcast/sio.h.
 *
 * Structure: one rc_sio_client per Engine.IO session (it is the session's owner object), holding
 * the sockets it opened, one per namespace. Each namespace (rc_sio_ns) has its room index and a
 * map sid -> socket. A socket is what rules act on: it has an id (20 random characters, never the
 * Engine.IO sid), the user id and claims from its token, the rest of its CONNECT auth payload,
 * and its room memberships (embedded rc_room_member). What a session may still send (its rateLimit
 * buckets, one rc_sio_budget per namespace) belongs to the client, so it outlives the sockets
 * (src/sio_rate.c).
 *
 * Ownership: the server owns its namespaces; a namespace's map links its sockets, which their
 * client owns (client->sockets, then client->dead until the client's hook returns). A hold
 * (rc_sio_hold) is owned by whoever took it; its client only links it, to detach it on close.
 */
#ifndef ROOMCAST_SIO_INTERNAL_H
#define ROOMCAST_SIO_INTERNAL_H

#include "roomcast/auth.h"
#include "roomcast/deadline.h"
#include "roomcast/eio.h"
#include "roomcast/frame.h"
#include "roomcast/hmap.h"
#include "roomcast/metrics.h"
#include "roomcast/rooms.h"
#include "roomcast/sio.h"
#include "roomcast/sio_codec.h"

#include <stdint.h>

#define RC_SIO_SOCKET_ID_LEN 20
#define RC_SIO_PID_LEN 32         /* a recoverable session's private id: 192 random bits */

struct event;
typedef struct rc_sio_client rc_sio_client;
typedef struct rc_sio_pending rc_sio_pending;

typedef struct rc_sio_ns {
    rc_sio_ns_settings set;       /* copied from rc_sio_settings; set.name is the name */
    int index;
    rc_rooms *rooms;
    rc_hmap sockets;
    rc_sio_server *srv;
    /* counters of this namespace (/metrics: rc_sio_write_metrics) */
    uint64_t messages_in;         /* client events received */
    uint64_t messages_out;        /* packets written to sockets */
    uint64_t broadcasts;          /* room and namespace emits fanned out locally */
} rc_sio_ns;

typedef struct rc_sio_pending_ack {
    uint32_t id;
    const void *ctx;
    char *event;
} rc_sio_pending_ack;

/* A token bucket: `events` per `interval` ms, bursts up to `events`. */
typedef struct rc_sio_bucket {
    float tokens;
    uint32_t last_ms;             /* 0: never used (starts full) */
} rc_sio_bucket;

/* What an Engine.IO session may still send to one namespace (src/sio_rate.c): kept by the
 * session, not the socket, so a namespace DISCONNECT and a new CONNECT start from what is left. */
typedef struct rc_sio_budget {
    rc_sio_bucket ns;             /* the namespace's rateLimit (events and later CONNECTs) */
    rc_sio_bucket *events;        /* events with their own rateLimit; NULL until one is sent */
    uint8_t connected;            /* a CONNECT was answered once: later ones cost a token */
} rc_sio_budget;

struct rc_sio_socket {
    rc_hmap_node node;            /* in ns->sockets */
    char sid[RC_SIO_SOCKET_ID_LEN + 1];
    uint8_t dead;                 /* removed; free when the client is not busy */
    uint16_t ack_count;
    rc_room_member member;
    rc_sio_client *client;
    rc_sio_ns *ns;
    rc_sio_socket *next;          /* in client->sockets, then in client->dead */
    char *user;
    char *claims_json;
    struct cJSON *auth;           /* CONNECT auth payload without "token", NULL if nothing else */
    rc_sio_pending_ack *acks;
    uint32_t next_ack_id;
    uint32_t mark;                /* srv->mark_seq of the last selection that took or left it out
                                   * (rc_sio_broadcast_to, rc_sio_select: each socket once) */
    rc_deadline_link expiry;      /* in srv->expiries while its token's exp is enforced */
    char pid[RC_SIO_PID_LEN + 1]; /* "" unless its namespace has recovery */
    rc_sio_pending *rec;          /* being recovered: broadcasts wait in it (src/sio_recover.c) */
    uint32_t issued_s;            /* when it connected (Unix seconds; fits malloc's 144-byte chunk) */
};

struct rc_sio_hold {
    rc_sio_client *client;        /* NULL once the client closed */
    rc_sio_hold *next;            /* in client->holds */
};

struct rc_sio_client {
    rc_sio_server *srv;
    rc_eio_session *eio;
    rc_sio_socket *sockets;
    rc_sio_socket *dead;
    rc_sio_hold *holds;           /* holds taken on this session and not yet released */
    rc_sio_pending *pendings;     /* CONNECTs waiting for their recovery (src/sio_recover.c) */
    char *bearer;                 /* Authorization: Bearer of the handshake, if any */
    char *query_token;            /* ?token= of the handshake, if any */
    int busy;                     /* inside a hook */
    rc_sio_budget *budgets;       /* by namespace index; NULL until a rateLimit is spent */
    /* a binary packet waiting for its attachments */
    rc_sio_packet bin;
    char *bin_nsp;
    rc_bp_bytes *bin_att;
    int bin_have;
    size_t bin_bytes;             /* its text and the attachments so far (max_packet_bytes) */
};

struct rc_sio_server {
    rc_sio_settings set;          /* copied; set.ns is NULL (each namespace has its own copy) */
    const rc_sio_hooks *hooks;
    rc_sio_ns *ns;
    size_t ns_count;
    rc_eio_callbacks eio_cb;
    uint64_t socket_count;
    uint32_t mark_seq;            /* the current selection's mark (never 0 once used) */
    struct event_base *base;      /* the loop (the expiry timer runs on it) */
    rc_deadline_heap expiries;    /* sockets by the wall-clock second their token expires */
    struct event *expiry_timer;   /* one for the whole server; NULL until a token has exp */
    int64_t expiry_armed_for;     /* deadline the timer fires by (0: not armed) */
    /* counters (/metrics: rc_sio_write_metrics) */
    uint64_t handshakes;                      /* CONNECT accepted */
    uint64_t auth_failures[RC_AUTH__COUNT];   /* CONNECT refused, by rc_auth_status */
    uint64_t rate_limited;                    /* client events and CONNECTs refused by rate limits */
    uint64_t joins_refused[3];                /* by limit: rooms, memberships, per socket */
    uint64_t packets_too_large;               /* binary packets over max_packet_bytes */
    rc_histogram delivery_latency;            /* publish accepted -> frame queued, per recipient */
    const char *gone;             /* why the socket being removed leaves (Socket.IO's words), set
                                     before each socket_remove, read during on_disconnect */
};

/* src/sio_rate.c: 1 if the session may CONNECT to ns now (the first CONNECT to a namespace is
 * free, a later one costs a token of its rateLimit); 1 if socket s may send `event` now (a token
 * of the namespace's rateLimit, then one of the event's own). Refusals are counted by the caller. */
int rc_sio__rate_connect(rc_sio_client *c, const rc_sio_ns *ns);
int rc_sio__rate_event(rc_sio_client *c, const rc_sio_socket *s, const char *event);
/* Frees the session's budgets (its close). */
void rc_sio__rate_dispose(rc_sio_client *c);

/* src/sio.c: a socket for a CONNECT whose token verified (ar's strings and auth are taken; auth
 * may be NULL), with sid (NULL: a fresh one) and pid (NULL: a fresh one if the namespace has
 * recovery); linked, its user room joined. Then rc_sio__connect_reply sends the CONNECT reply.
 * rc_sio__socket_remove unlinks a socket (on_disconnect fires) and frees it now or later. */
rc_sio_socket *rc_sio__socket_create(rc_sio_client *c, rc_sio_ns *ns, rc_auth_result *ar, struct cJSON *auth,
                                     const char *sid, const char *pid);
void rc_sio__connect_reply(rc_sio_socket *s);
void rc_sio__socket_remove(rc_sio_socket *s);

/* src/sio_recover.c (include/roomcast/sio.h, "Connection state recovery"): 1 when the CONNECT
 * is taken over (a recovery was asked of the node; ar's strings and *auth are taken); a CONNECT
 * pending for ns on c; the session closed (pendings detached); a socket freed; a broadcast to a
 * socket being recovered (frames kept with the emit's offset, NULL for none). */
int rc_sio__recover_begin(rc_sio_client *c, rc_sio_ns *ns, const struct cJSON *payload, rc_auth_result *ar,
                          struct cJSON **auth);
int rc_sio__recover_pending(const rc_sio_client *c, const rc_sio_ns *ns);
void rc_sio__recover_client_closed(rc_sio_client *c);
void rc_sio__recover_socket_free(rc_sio_socket *s);
void rc_sio__recover_hold(rc_sio_socket *s, rc_frame *head, rc_frame **att, size_t att_count, const char *offset);

/* '[a,b]' with offset appended as a last string argument: '[a,b,"<offset>"]' (heap, *out_len). */
char *rc_sio__args_with_offset(const char *args, size_t len, const char *offset, size_t *out_len);

/* src/sio_admin.c: eio's on_upgrade: tells hooks.on_upgrade of each socket of the client. */
void rc_sio__client_on_upgrade(void *owner);

/* The namespace named name[0..len), or NULL. */
rc_sio_ns *rc_sio__find_ns(const rc_sio_server *srv, const char *name, size_t len);
/* Builds the text of a Socket.IO packet into a new frame: '4' + header + [ "event", args... ]
 * (args_json is the arguments' JSON array text). event NULL gives a plain array (acks). */
rc_frame *rc_sio__encode_packet(int type, const char *nsp, long long id, int attachments,
                                const char *event, const char *args_json, size_t args_len);

#endif
