/*
 * sio.h: Socket.IO v5 over Engine.IO: namespaces, sockets, rooms, CONNECT with JWT auth, events,
 * acks in both directions, binary packets, and the local fan-out of broadcasts.
 *
 * sio sits on eio (it supplies eio's callbacks) and below the node, which it tells about accepted
 * connections, client events and client acks through rc_sio_hooks; the node decides what they
 * mean (rules) and acts back through the rc_sio_* functions below.
 *
 * What it does not do: read the configuration or the rules. The node fills rc_sio_settings from
 * them (server-wide limits, JWT and token expiry; per namespace its name, auth mode, ?token= and
 * rateLimit) and answers, through hooks, what needs the rules while sockets run: the room a
 * connecting user joins, an event's own rateLimit, how a refused CONNECT is answered. A socket's namespace index is its namespace's
 * place in rc_sio_settings.ns, so the node maps it to its own per-namespace data.
 *
 * A broadcast (rc_sio_broadcast) encodes the packet once into shared frames (text header plus one
 * frame per binary attachment) and hands every recipient the same bytes.
 *
 * Rooms opened by a join, and holding a socket's output: on_room_open fires when a join gives a
 * room its first local member, with the socket whose join opened it (NULL for an open no socket
 * caused). Everything that join causes reaches the client after on_room_open returns: the ack of
 * the event whose rule joined, and, for the user room joined at CONNECT, the CONNECT reply itself
 * (sio joins the user room before it answers). So a hook whose room subscription is not immediate
 * can take rc_sio_hold_new(opener) and call rc_sio_hold_release once the subscription is
 * confirmed: the client hears "joined" only when messages for the room can reach this node.
 *
 * Budgets (what one client may cost the node): a namespace's rateLimit is kept by the Engine.IO
 * session, not the socket, so a namespace DISCONNECT and a new CONNECT do not refill it, and every
 * CONNECT to a namespace after the session's first costs a token (refused with CONNECT_ERROR
 * rate_limited). A binary packet is bounded as a whole: its text and attachments together, the
 * partial ones it holds while they arrive included, at most settings.max_packet_bytes
 * (maxPayload), else the session is closed ("packet too large") and nobody receives it. Rooms
 * have a node-wide budget (settings.max_rooms, max_memberships; rc_sio_join refuses past it).
 *
 * Token expiry: a socket whose token has `exp` is ended when a CONNECT with that token would
 * start being refused (rc_auth_expires_at), as settings.token_expiry says: its Engine.IO session
 * is closed (reconnect) or it gets a namespace DISCONNECT (disconnect), after the optional
 * settings.token_expired_event; on_disconnect fires as for any other disconnect. One timer
 * serves the whole server, on the loop given to rc_sio_server_new.
 *
 * Ownership: the server owns namespaces, clients and sockets. A socket pointer given to a hook is
 * valid during the hook; a socket disconnected from inside a hook stays allocated until the hook
 * returns (deferred free). Strings and objects returned by accessors live as long as the socket.
 *
 * API in call order: rc_sio_server_new -> rc_sio_eio_callbacks (given to eio) -> hooks fire,
 * the node acts (join, emit, ack, broadcast, ...) -> eio freed -> rc_sio_server_free.
 */
#ifndef ROOMCAST_SIO_H
#define ROOMCAST_SIO_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/message.h"

struct cJSON;
struct event_base;
struct evbuffer;
struct rc_auth_config;
typedef struct rc_eio_callbacks rc_eio_callbacks;
typedef struct rc_sio_server rc_sio_server;
typedef struct rc_sio_socket rc_sio_socket;
typedef struct rc_sio_hold rc_sio_hold;
typedef struct rc_sio_pending rc_sio_pending;

/* Who may CONNECT to a namespace. */
enum rc_sio_auth {
    RC_SIO_AUTH_REQUIRED = 0,      /* a valid token, or CONNECT_ERROR */
    RC_SIO_AUTH_OPTIONAL,          /* a token is verified when given; anonymous otherwise */
    RC_SIO_AUTH_NONE,              /* tokens are ignored; every socket is anonymous */
    RC_SIO_AUTH_HOOK               /* no token: hooks.admit judges the CONNECT payload (the
                                      Admin UI's /admin); anonymous, its payload is not kept */
};

/* What happens to a socket when its token expires. */
enum rc_sio_expiry {
    RC_SIO_EXPIRY_RECONNECT = 0,   /* close the Engine.IO session (the client reconnects) */
    RC_SIO_EXPIRY_DISCONNECT,      /* namespace DISCONNECT (no automatic reconnect) */
    RC_SIO_EXPIRY_IGNORE           /* nothing: tokens are checked at CONNECT only */
};

typedef struct rc_sio_ns_settings {
    const char *name;              /* "/" or "/chat" */
    int auth;                      /* enum rc_sio_auth */
    int token_in_query;            /* 1: the handshake's ?token= is accepted (after auth.token
                                      and Authorization: Bearer) */
    unsigned rate_events;          /* rateLimit: a token bucket of rate_events per
                                      rate_interval_ms, bursts up to rate_events; 0 = none */
    unsigned rate_interval_ms;
    unsigned event_limit_count;    /* events with their own rateLimit (hooks.event_limit indexes
                                      them); 0: event_limit is never asked */
    int recovery;                  /* 1: connection state recovery (the CONNECT reply carries a
                                      pid; a CONNECT with pid and offset asks hooks.recover) */
    unsigned write_delay_ms;       /* writeDelay: broadcast frames of this namespace carry it
                                      (rc_frame.delay_ms, at most RC_WRITE_DELAY_MAX); 0: off */
} rc_sio_ns_settings;

typedef struct rc_sio_settings {
    const rc_sio_ns_settings *ns;  /* the namespaces served, by index */
    size_t ns_count;
    const struct rc_auth_config *jwt; /* how CONNECT tokens are verified */
    int max_rooms_per_socket;      /* a join over it fails (RC_SIO_JOIN_TOO_MANY); 0 = no limit */
    size_t max_rooms;              /* rooms with local members, every namespace together: a join
                                      that would open one more fails (RC_SIO_JOIN_ROOM_LIMIT);
                                      0 = no limit. A socket's user room is always joined. */
    size_t max_memberships;        /* socket-room memberships, every namespace together: a join
                                      past it fails (RC_SIO_JOIN_ROOM_LIMIT); 0 = no limit */
    size_t max_packet_bytes;       /* maxPayload: a binary packet whose text and attachments
                                      together exceed it closes the session; 0 = no limit */
    int token_expiry;              /* enum rc_sio_expiry */
    const char *token_expired_event; /* emitted to an expiring socket first; NULL = none */
} rc_sio_settings;

typedef struct rc_sio_event {
    const char *name;                 /* event name; NULL for an ack */
    const struct cJSON *args;         /* array of the arguments after the name */
    long long ack_id;                 /* -1 when no ack was asked */
    const rc_bp_bytes *attachments;   /* binary attachments (placeholders refer to them) */
    size_t attachment_count;
    int limited;                      /* over a rateLimit (the namespace's or the event's own):
                                         refuse, don't run it */
} rc_sio_event;

typedef struct rc_sio_hooks {
    /* auth: the whole CONNECT payload (its token included), NULL when absent. */
    void (*on_connect)(void *arg, rc_sio_socket *s, const struct cJSON *auth);
    void (*on_event)(void *arg, rc_sio_socket *s, const rc_sio_event *ev);
    /* The client answered an ack the server asked for with rc_sio_emit(..., ctx). */
    void (*on_ack)(void *arg, rc_sio_socket *s, const void *ctx, const char *event, const rc_sio_event *ack);
    /* A socket joined (1) or left (0) a room through rc_sio_join/rc_sio_leave (rules, control
     * ops, the user room); not called for the rooms a disconnecting socket leaves. */
    void (*on_membership)(void *arg, rc_sio_socket *s, const char *room, int joined);
    /* The socket is leaving (client or server disconnect, or its session closed); still linked. */
    void (*on_disconnect)(void *arg, rc_sio_socket *s);
    /* A room got its first local member; opener is the socket whose join opened it (NULL for an
     * open no socket caused). Fires before the join returns and before on_membership; the hook
     * may hold opener (rc_sio_hold_new), see the note at the top. */
    void (*on_room_open)(void *arg, const char *ns, const char *room, rc_sio_socket *opener);
    /* A room lost its last local member. */
    void (*on_room_close)(void *arg, const char *ns, const char *room);
    /* The room a socket with a user joins at CONNECT, as a heap string sio frees (rc_free);
     * NULL for none. Asked after the token is verified, before on_connect; never for anonymous
     * sockets. NULL hook: no user rooms. */
    char *(*user_room)(void *arg, const rc_sio_socket *s);
    /* An event's own rateLimit, checked after the namespace's: its index among the namespace's
     * event_limit_count limited events, with *events per *interval_ms; -1 when the event has none. */
    int (*event_limit)(void *arg, const rc_sio_socket *s, const char *event, unsigned *events,
                       unsigned *interval_ms);
    /* A CONNECT to namespace ns_index (its place in settings.ns) was refused: its token did not
     * verify, for reason (rc_auth_reason). NULL: answer CONNECT_ERROR (Socket.IO's way). Else the
     * arguments of an event, as a heap JSON array text sio frees (rc_free), with the event's name
     * written to `event` (1..200 bytes): the CONNECT is accepted, that event sent, then the
     * namespace's DISCONNECT, the way of a gateway that checks tokens in its connection handler.
     * No socket exists meanwhile (no user room, on_connect or rules). NULL hook: CONNECT_ERROR. */
    char *(*auth_error)(void *arg, size_t ns_index, const char *reason, char event[201]);
    /* A CONNECT to a namespace with recovery carried a string pid and offset, and its token
     * verified (user: its user, NULL when anonymous). Nothing is answered until the node ends p
     * (see "Connection state recovery" below). NULL hook: every CONNECT is a fresh one. */
    void (*recover)(void *arg, rc_sio_pending *p, int ns_index, const char *pid, const char *offset,
                    const char *user);
    /* A CONNECT to a namespace whose auth is RC_SIO_AUTH_HOOK, with its payload (NULL when
     * absent) and the client's address (rc_eio_client_addr of its session): NULL admits it, else
     * the CONNECT_ERROR message to refuse it with (a static string of at most 200 plain
     * characters). NULL hook: every such CONNECT is refused. */
    const char *(*admit)(void *arg, size_t ns_index, const struct cJSON *auth, const struct rc_addr *from);
    /* The socket's Engine.IO session upgraded from polling to websocket; may be NULL. The hook
     * must not disconnect sockets (it is called for each socket of the session in turn). */
    void (*on_upgrade)(void *arg, rc_sio_socket *s);
    void *arg;
} rc_sio_hooks;

/* settings is copied (its namespace array too); the strings and jwt it points to, and hooks,
 * must outlive the server. base runs the token expiry timer (NULL: expiry is not enforced). */
rc_sio_server *rc_sio_server_new(struct event_base *base, const rc_sio_settings *settings,
                                 const rc_sio_hooks *hooks);
void rc_sio_server_free(rc_sio_server *srv); /* after eio is gone */
const rc_eio_callbacks *rc_sio_eio_callbacks(rc_sio_server *srv);

/* Socket accessors. */
const char *rc_sio_socket_id(const rc_sio_socket *s);
const char *rc_sio_socket_user(const rc_sio_socket *s);      /* NULL when anonymous */
const char *rc_sio_socket_claims(const rc_sio_socket *s);    /* JSON text or NULL */
/* The CONNECT auth payload without its "token" field, parsed once at CONNECT and owned by the
 * socket; NULL if nothing remains. */
const struct cJSON *rc_sio_socket_auth(const rc_sio_socket *s);
const char *rc_sio_socket_ns(const rc_sio_socket *s);
int rc_sio_socket_ns_index(const rc_sio_socket *s);         /* its place in settings.ns */
/* The live socket with this id in namespace ns_index, or NULL (answers that arrive later look
 * their socket up again instead of keeping a pointer). */
rc_sio_socket *rc_sio_find_socket(rc_sio_server *srv, int ns_index, const char *sid);

/* Why rc_sio_join refused: the socket is in settings.max_rooms_per_socket rooms already, or the
 * node's budget (settings.max_rooms, max_memberships) is spent. */
enum { RC_SIO_JOIN_TOO_MANY = -1, RC_SIO_JOIN_ROOM_LIMIT = -2 };

/* Socket actions. Room functions return 1 on change, 0 when nothing changed; rc_sio_join returns
 * RC_SIO_JOIN_TOO_MANY or RC_SIO_JOIN_ROOM_LIMIT when refused (nothing changed; joining a room
 * the socket is in is never refused). */
int rc_sio_join(rc_sio_socket *s, const char *room);
int rc_sio_leave(rc_sio_socket *s, const char *room);
int rc_sio_is_member(const rc_sio_socket *s, const char *room);
/* Emits event with args (JSON array text) to this socket. With ctx != NULL the server asks for
 * an ack and on_ack gets ctx back (at most 64 outstanding per socket; the oldest is dropped). */
void rc_sio_emit(rc_sio_socket *s, const char *event, const char *args_json, size_t args_len,
                 const rc_bp_bytes *att, size_t att_count, const void *ctx);
void rc_sio_ack(rc_sio_socket *s, long long id, const char *args_json, size_t args_len,
                const rc_bp_bytes *att, size_t att_count);
/* Server-side namespace disconnect: sends DISCONNECT, removes the socket. */
void rc_sio_disconnect(rc_sio_socket *s);

/* Holds everything sent to the socket's client from now on (its whole Engine.IO session, every
 * namespace; holds are counted): packets wait, in order, until the hold is released. */
rc_sio_hold *rc_sio_hold_new(rc_sio_socket *s);
/* Ends the hold and frees it; exactly once per hold. Safe after the socket or its session is
 * gone, and after rc_sio_server_free (then it only frees the hold). */
void rc_sio_hold_release(rc_sio_hold *h);

/* Connection state recovery (docs/recovery.md). A CONNECT that asks for it waits in p (no socket,
 * no reply; a second CONNECT for that namespace closes the session) while the node looks its
 * session up, then the node ends p with exactly one of rc_sio_recover_done or
 * rc_sio_recover_refuse, which free it; in between:
 *   rc_sio_recover_adopt: the session is known: a socket with its old sid and the same pid is
 *     created and joins `rooms` (hooks fire as for any join), but is told nothing yet: what is
 *     broadcast to it meanwhile waits in p, in order. -1 when the client is gone or the sid is
 *     in use on this node (then refuse).
 *   rc_sio_recover_add: a missed event for the replay (encoded now, with offset as its last
 *     argument); returns the bytes of the replay so far (the node bounds it).
 * rc_sio_recover_done sends the replay, then the CONNECT reply with the same sid and pid (the
 * client's socket.recovered), then what was broadcast meanwhile (a kept emit only when its
 * offset is after last_offset, the last one replayed; NULL: none was), then on_connect.
 * rc_sio_recover_refuse sends nothing of the replay: an adopted socket is removed without a word
 * and the CONNECT is answered as a fresh one (new sid, new pid). Both only free p when the client
 * closed meanwhile. rc_sio_recover_alive: 0 once the client is gone, or once more was broadcast
 * to the adopted socket than may wait (16 MiB): then the node refuses. */
int rc_sio_recover_adopt(rc_sio_pending *p, const char *sid, const char *const *rooms, size_t count);
size_t rc_sio_recover_add(rc_sio_pending *p, const char *event, const char *args_json, size_t args_len,
                          const char *offset);
void rc_sio_recover_done(rc_sio_pending *p, const char *last_offset);
void rc_sio_recover_refuse(rc_sio_pending *p);
int rc_sio_recover_alive(const rc_sio_pending *p);
/* The claims (JSON text) of the token the recovering CONNECT presented; NULL without a token. */
const char *rc_sio_recover_claims(const rc_sio_pending *p);
/* The socket's private session id (pid), "" when its namespace has no recovery. */
const char *rc_sio_socket_pid(const rc_sio_socket *s);
/* Local members of a room (0 when the room or namespace is unknown). */
size_t rc_sio_room_size(const rc_sio_server *srv, const char *ns, const char *room);

/* Local fan-out of an RC_BP_EMIT to the room (or namespace) members; returns recipients. */
size_t rc_sio_broadcast(rc_sio_server *srv, const rc_bp_message *msg, uint64_t born_ns);
/* Applies a control op (RC_BP_JOIN/LEAVE/DISCONNECT) to the local members of msg->room. */
size_t rc_sio_control(rc_sio_server *srv, const rc_bp_message *msg);
/* Recipients picked the way Socket.IO's adapter picks them (src/node_socketio.c): the members
 * of any of `rooms` (none: every socket of the namespace), minus the members of any of `except`;
 * a socket is also in the room named by its own id; each socket at most once. */
typedef struct rc_sio_target {
    const char *const *rooms;
    size_t room_count;
    const char *const *except;
    size_t except_count;
    int only_writable;            /* volatile: only sockets whose session can write right now
                                   * (rc_eio_writable) */
} rc_sio_target;
/* Local fan-out of an RC_BP_EMIT of namespace msg->ns to t's sockets (msg->room and msg->except
 * are not used), encoded once as rc_sio_broadcast does; returns recipients. */
size_t rc_sio_broadcast_to(rc_sio_server *srv, const rc_bp_message *msg, const rc_sio_target *t,
                           uint64_t born_ns);
/* t's sockets in namespace ns (only_writable not used), into *out (rc_free it; NULL when none);
 * returns how many. Sockets may be acted on afterwards (join, leave, disconnect). */
size_t rc_sio_select(rc_sio_server *srv, const char *ns, const rc_sio_target *t, rc_sio_socket ***out);
/* Socket.IO's disconnect(true): every namespace socket of s's session gets DISCONNECT, then the
 * session closes. */
void rc_sio_disconnect_close(rc_sio_socket *s);
/* 1 if the namespace is served. */
int rc_sio_has_ns(const rc_sio_server *srv, const char *ns);

/* Appends this layer's families to /metrics: sockets, rooms, messages and broadcasts by
 * namespace, memberships, handshakes, auth failures by reason, refused joins by limit, rate-limit
 * refusals, oversize binary packets, delivery latency. */
void rc_sio_write_metrics(const rc_sio_server *srv, struct evbuffer *out);
uint64_t rc_sio_socket_count(const rc_sio_server *srv);
/* Disconnects up to max sockets (drain); returns how many. */
size_t rc_sio_disconnect_some(rc_sio_server *srv, size_t max);

/* Queries (src/sio_query.c): what the local sockets of a namespace are, for a peer server that
 * asks (include/roomcast/adapter_peer.h). None of them sends anything. */
/* The namespace's place in settings.ns, or -1 when it is not served. */
int rc_sio_ns_index(const rc_sio_server *srv, const char *ns);
/* Visits every room of namespace ns_index with local members, then the id of every socket (its
 * implicit room), each name once. fn must not change memberships. */
void rc_sio_foreach_room(const rc_sio_server *srv, int ns_index,
                         void (*fn)(void *arg, const char *room), void *arg);

/* Appends a JSON string literal for s (with quotes and escapes) to out; returns bytes written.
 * out must have room for 6 * strlen(s) + 3 bytes. */
size_t rc_json_quote(char *out, const char *s);

#endif
