/*
 * sio.h: Socket.IO v5 over Engine.IO: namespaces, sockets, rooms, CONNECT with JWT auth, events,
 * acks in both directions, binary packets, and the local fan-out of broadcasts.
 *
 * sio sits on eio (it supplies eio's callbacks) and below the node, which it tells about accepted
 * connections, client events and client acks through rc_sio_hooks; the node decides what they
 * mean (rules) and acts back through the rc_sio_* functions below.
 *
 * A broadcast (rc_sio_broadcast) encodes the packet once into shared frames (text header plus one
 * frame per binary attachment) and hands every recipient the same bytes.
 *
 * Token expiry: a socket whose token has `exp` is ended when a CONNECT with that token would
 * start being refused (rc_auth_expires_at), as cfg->token_expiry says: its Engine.IO session is
 * closed (reconnect) or it gets a namespace DISCONNECT (disconnect), after the optional
 * cfg->token_expired_event; on_disconnect fires as for any other disconnect. One timer serves
 * the whole server, on the loop given to rc_sio_server_new.
 *
 * Ownership: the server owns namespaces, clients and sockets. A socket pointer given to a hook is
 * valid during the hook; a socket disconnected from inside a hook stays allocated until the hook
 * returns (deferred free). Strings returned by accessors live as long as the socket.
 */
#ifndef ROOMCAST_SIO_H
#define ROOMCAST_SIO_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/backplane.h"

struct cJSON;
struct rc_config;
struct rc_ns_rules;
typedef struct rc_eio_callbacks rc_eio_callbacks;
typedef struct rc_sio_server rc_sio_server;
typedef struct rc_sio_socket rc_sio_socket;

typedef struct rc_sio_event {
    const char *name;                 /* event name; NULL for an ack */
    const struct cJSON *args;         /* array of the arguments after the name */
    long long ack_id;                 /* -1 when no ack was asked */
    const rc_bp_bytes *attachments;   /* binary attachments (placeholders refer to them) */
    size_t attachment_count;
    int limited;                      /* over the namespace's rateLimit: refuse, don't run it */
} rc_sio_event;

typedef struct rc_sio_hooks {
    void (*on_connect)(void *arg, rc_sio_socket *s, const struct cJSON *auth);
    void (*on_event)(void *arg, rc_sio_socket *s, const rc_sio_event *ev);
    /* The client answered an ack the server asked for with rc_sio_emit(..., ctx). */
    void (*on_ack)(void *arg, rc_sio_socket *s, const void *ctx, const char *event, const rc_sio_event *ack);
    /* A socket joined (1) or left (0) a room through rc_sio_join/rc_sio_leave (rules, control
     * ops, the user room); not called for the rooms a disconnecting socket leaves. */
    void (*on_membership)(void *arg, rc_sio_socket *s, const char *room, int joined);
    /* The socket is leaving (client or server disconnect, or its session closed); still linked. */
    void (*on_disconnect)(void *arg, rc_sio_socket *s);
    void (*on_room_open)(void *arg, const char *ns, const char *room);
    void (*on_room_close)(void *arg, const char *ns, const char *room);
    void *arg;
} rc_sio_hooks;

rc_sio_server *rc_sio_server_new(struct event_base *base, const struct rc_config *cfg,
                                 const rc_sio_hooks *hooks);
void rc_sio_server_free(rc_sio_server *srv); /* after eio is gone */
const rc_eio_callbacks *rc_sio_eio_callbacks(rc_sio_server *srv);

/* Socket accessors. */
const char *rc_sio_socket_id(const rc_sio_socket *s);
const char *rc_sio_socket_user(const rc_sio_socket *s);      /* NULL when anonymous */
const char *rc_sio_socket_claims(const rc_sio_socket *s);    /* JSON text or NULL */
/* The CONNECT auth payload without its "token" field, as JSON text; NULL if nothing remains. */
const char *rc_sio_socket_auth(const rc_sio_socket *s);
const char *rc_sio_socket_ns(const rc_sio_socket *s);
int rc_sio_socket_ns_index(const rc_sio_socket *s);
/* The live socket with this id in namespace ns_index, or NULL (answers that arrive later look
 * their socket up again instead of keeping a pointer). */
rc_sio_socket *rc_sio_find_socket(rc_sio_server *srv, int ns_index, const char *sid);
const struct rc_ns_rules *rc_sio_socket_rules(const rc_sio_socket *s);

/* Socket actions. Room functions return 1 on change, 0 when nothing changed; rc_sio_join
 * returns -1 when the socket is already in limits.maxRoomsPerSocket rooms. */
int rc_sio_join(rc_sio_socket *s, const char *room);
int rc_sio_leave(rc_sio_socket *s, const char *room);
int rc_sio_is_member(const rc_sio_socket *s, const char *room);
/* During on_room_open: the socket whose join opened the room (NULL for other opens). */
rc_sio_socket *rc_sio_joining_socket(const rc_sio_server *srv);
struct rc_eio_session *rc_sio_socket_session(const rc_sio_socket *s);
/* Emits event with args (JSON array text) to this socket. With ctx != NULL the server asks for
 * an ack and on_ack gets ctx back (at most 64 outstanding per socket; the oldest is dropped). */
void rc_sio_emit(rc_sio_socket *s, const char *event, const char *args_json, size_t args_len,
                 const rc_bp_bytes *att, size_t att_count, const void *ctx);
void rc_sio_ack(rc_sio_socket *s, long long id, const char *args_json, size_t args_len,
                const rc_bp_bytes *att, size_t att_count);
/* Server-side namespace disconnect: sends DISCONNECT, removes the socket. */
void rc_sio_disconnect(rc_sio_socket *s);

/* Local fan-out of an RC_BP_EMIT to the room (or namespace) members; returns recipients. */
size_t rc_sio_broadcast(rc_sio_server *srv, const rc_bp_message *msg, uint64_t born_ns);
/* Applies a control op (RC_BP_JOIN/LEAVE/DISCONNECT) to the local members of msg->room. */
size_t rc_sio_control(rc_sio_server *srv, const rc_bp_message *msg);
/* 1 if the namespace is served. */
int rc_sio_has_ns(const rc_sio_server *srv, const char *ns);

/* Gauges for /metrics: names, sockets and rooms by namespace index. */
size_t rc_sio_ns_count(const rc_sio_server *srv);
void rc_sio_gauges(const rc_sio_server *srv, const char **names, uint64_t *sockets, uint64_t *rooms);
uint64_t rc_sio_socket_count(const rc_sio_server *srv);
/* Disconnects up to max sockets (drain); returns how many. */
size_t rc_sio_disconnect_some(rc_sio_server *srv, size_t max);

/* Appends a JSON string literal for s (with quotes and escapes) to out; returns bytes written.
 * out must have room for 6 * strlen(s) + 3 bytes. */
size_t rc_json_quote(char *out, const char *s);

#endif
