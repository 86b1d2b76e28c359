/*
 * sio_internal.h: the Socket.IO server's structures, shared by src/sio.c (sessions, sockets,
 * CONNECT, inbound packets, token expiry, holds) and src/sio_broadcast.c (the local fan-out and
 * control ops). Nothing outside those files includes it; the public API is
 * include/roomcast/sio.h.
 *
 * Structure: one rc_sio_client per Engine.IO session (it is the session's owner object), holding
 * the sockets it opened, one per namespace. Each namespace (rc_sio_ns) has its room index and a
 * map sid -> socket. A socket is what rules act on: it has an id (20 random characters, never the
 * Engine.IO sid), the user id and claims from its token, the rest of its CONNECT auth payload,
 * and its room memberships (embedded rc_room_member).
 *
 * Ownership: the server owns its namespaces; a namespace's map links its sockets, which their
 * client owns (client->sockets, then client->dead until the client's hook returns). A hold
 * (rc_sio_hold) is owned by whoever took it; its client only links it, to detach it on close.
 */
#ifndef ROOMCAST_SIO_INTERNAL_H
#define ROOMCAST_SIO_INTERNAL_H

#include "roomcast/deadline.h"
#include "roomcast/eio.h"
#include "roomcast/frame.h"
#include "roomcast/hmap.h"
#include "roomcast/rooms.h"
#include "roomcast/sio.h"
#include "roomcast/sio_codec.h"

#include <stdint.h>

#define RC_SIO_SOCKET_ID_LEN 20

struct event;
typedef struct rc_sio_client rc_sio_client;

typedef struct rc_sio_ns {
    rc_sio_ns_settings set;       /* copied from rc_sio_settings; set.name is the name */
    int index;
    rc_rooms *rooms;
    rc_hmap sockets;
    rc_sio_server *srv;
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
    float rate_tokens;            /* token bucket of the namespace's rateLimit */
    uint32_t rate_last_ms;
    rc_sio_bucket *event_buckets; /* events with their own rateLimit; NULL until one is sent */
    rc_deadline_link expiry;      /* in srv->expiries while its token's exp is enforced */
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
    char *bearer;                 /* Authorization: Bearer of the handshake, if any */
    char *query_token;            /* ?token= of the handshake, if any */
    int busy;                     /* inside a hook */
    /* a binary packet waiting for its attachments */
    rc_sio_packet bin;
    char *bin_nsp;
    rc_bp_bytes *bin_att;
    int bin_have;
};

struct rc_sio_server {
    rc_sio_settings set;          /* copied; set.ns is NULL (each namespace has its own copy) */
    const rc_sio_hooks *hooks;
    rc_sio_ns *ns;
    size_t ns_count;
    rc_eio_callbacks eio_cb;
    uint64_t socket_count;
    struct event_base *base;      /* the loop (the expiry timer runs on it) */
    rc_deadline_heap expiries;    /* sockets by the wall-clock second their token expires */
    struct event *expiry_timer;   /* one for the whole server; NULL until a token has exp */
    int64_t expiry_armed_for;     /* deadline the timer fires by (0: not armed) */
};

/* The namespace named name[0..len), or NULL. */
rc_sio_ns *rc_sio__find_ns(const rc_sio_server *srv, const char *name, size_t len);
/* Builds the text of a Socket.IO packet into a new frame: '4' + header + [ "event", args... ]
 * (args_json is the arguments' JSON array text). event NULL gives a plain array (acks). */
rc_frame *rc_sio__encode_packet(int type, const char *nsp, long long id, int attachments,
                                const char *event, const char *args_json, size_t args_len);

#endif
