/*
 * adapter_peer.h: roomcast as a peer of Node Socket.IO servers that use @socket.io/redis-adapter
 * (the classic pub/sub adapter, 8.x): the requests on <K>-request#<ns># that wait for an answer
 * from every server, answered on the response channels. docs/migrating.md says what each answer
 * holds and what roomcast cannot answer faithfully.
 *
 * Why: a Node server counts its peers with PUBSUB NUMSUB <K>-request#<ns># and waits for one
 * answer from each (fetchSockets, allRooms, serverSideEmit with an ack, broadcasts with acks)
 * until its requestsTimeout (5 s by default). A roomcast node subscribed to that channel is
 * counted, so it answers every such request exactly once: faithfully where it can, otherwise with
 * an empty, well-formed answer, never silence.
 *
 * What it does not do: subscribe (the node opens the request channel), decode messages (the
 * caller decodes each with include/roomcast/socketio_codec.h and hands it over), act on requests
 * that need no answer (REMOTE_JOIN/LEAVE/DISCONNECT with room options, SERVER_SIDE_EMIT without ack: the
 * caller dispatches them; rc_adapter_peer_on_request returns RC_ADAPTER_NOT_MINE), or know
 * sockets itself: what a namespace holds comes from the node through rc_adapter_local (the
 * backplane never calls up).
 *
 * Answers, by request type (the adapter's numbers):
 *   0 SOCKETS      {"requestId","sockets":[ids]}          the ids of the selected local sockets
 *   1 ALL_ROOMS    {"requestId","rooms":[names]}          local rooms and socket ids
 *   2,3,4 with sid {"requestId"}                          after acting on that local socket
 *                                                          (silent when it is not here, as Node)
 *   5 REMOTE_FETCH {"requestId","sockets":[...]}          local.socket_fetch for each selected one
 *   6 SERVER_SIDE_EMIT with requestId  {"type":6,"requestId"} (no handlers: `undefined` as data)
 *   7 BROADCAST    emits the packet with an ack to the selected local sockets, answers
 *                  {"type":8,"requestId","clientCount"}, then one {"type":9,"requestId",
 *                  "packet":<first ack argument>} per client ack (msgpack when it has binary).
 * Answers go to <K>-response#<ns>#<uid># (the requester's own channel, which every adapter 8.x
 * subscribes), or to <K>-response#<ns># when the request carries no uid.
 *
 * Refused (counted by reason, logged at most once a second, never acted on): a type that is not
 * a request (8, 9), a field of the wrong kind (a missing requestId where an answer is expected, a
 * sid that is not a string, a packet no Socket.IO client could parse), a packet for another
 * namespace. What the codec refuses (malformed JSON or msgpack, unknown types, oversized
 * messages) never reaches the peer: the caller counts it. A BROADCAST while every ack slot is
 * waiting still gets its answer, a count of 0 (counted as busy).
 *
 * Ownership: the peer owns its copies of the prefix and uid, and the pending acks. Pointers given
 * to callbacks are valid during the call.
 *
 * API in call order: rc_adapter_peer_new -> rc_adapter_peer_on_request (each decoded request) / rc_adapter_peer_owns_ack + rc_adapter_peer_on_ack (a client's ack) ->
 * rc_adapter_peer_write_metrics -> rc_adapter_peer_free.
 */
#ifndef ROOMCAST_ADAPTER_PEER_H
#define ROOMCAST_ADAPTER_PEER_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/message.h"

struct cJSON;
struct evbuffer;
struct rc_socketio_codec;
struct rc_socketio_request;
typedef struct rc_backplane rc_backplane;
typedef struct rc_adapter_peer rc_adapter_peer;

/* rc_adapter_peer_on_request's results. */
enum {
    RC_ADAPTER_HANDLED = 1,   /* answered, ignored (our own) or refused: nothing left to do */
    RC_ADAPTER_NOT_MINE = 0   /* a request that needs no answer: the caller acts on it */
};

/* Which local sockets a request selects (Socket.IO's rooms/except options). */
typedef struct rc_adapter_target {
    const char *const *rooms;
    size_t room_count;          /* 0: every socket of the namespace */
    const char *const *except;
    size_t except_count;
} rc_adapter_target;

/* What the node tells the peer about its sockets. A socket is an opaque pointer, valid during
 * the callback that handed it over. */
typedef struct rc_adapter_local {
    /* Visits the selected live sockets of namespace ns, each once; returns how many. */
    size_t (*select)(void *arg, const char *ns, const rc_adapter_target *t,
                     void (*fn)(void *fn_arg, void *sock), void *fn_arg);
    /* Visits every room of ns with local members and every socket id, each once. */
    void (*rooms)(void *arg, const char *ns, void (*fn)(void *fn_arg, const char *room), void *fn_arg);
    const char *(*socket_id)(void *arg, void *sock);
    /* REMOTE_FETCH: a new object {"id","handshake","rooms","data"} for the socket (the peer
     * frees it). */
    struct cJSON *(*socket_fetch)(void *arg, void *sock);
    /* The live socket with this id in ns, or NULL. */
    void *(*find)(void *arg, const char *ns, const char *sid);
    /* A request naming one socket: type 2 joins room, 3 leaves room, 4 disconnects it (close:
     * its whole connection). */
    void (*act)(void *arg, void *sock, int type, const char *room, int close);
    /* Emits event(args_json) to sock asking for an ack: the node hands the answer to
     * rc_adapter_peer_on_ack with ctx. */
    void (*emit_ack)(void *arg, void *sock, const char *event, const char *args_json, size_t args_len,
                     const rc_bp_bytes *att, size_t att_count, const void *ctx);
    void *arg;
} rc_adapter_local;

/* prefix: the adapter's key (ROOMCAST_SOCKETIO_PREFIX); uid: this node's uid in that format
 * (its own requests are ignored). bp must be the Redis backplane and outlive the peer. */
rc_adapter_peer *rc_adapter_peer_new(rc_backplane *bp, const char *prefix, const char *uid,
                                     const rc_adapter_local *local);
void rc_adapter_peer_free(rc_adapter_peer *p);

/* A request heard on <prefix>-request#<ns># (ns: the namespace of that channel), decoded with
 * rc_socketio_decode_request by codec, which the peer uses again for a BROADCAST's packet (the
 * decoded request must still be valid: no other codec call in between). */
int rc_adapter_peer_on_request(rc_adapter_peer *p, struct rc_socketio_codec *codec, const char *ns,
                               const struct rc_socketio_request *in);

/* 1 if ctx is one the peer gave to emit_ack (then the ack is the peer's, not the rules'). */
int rc_adapter_peer_owns_ack(const rc_adapter_peer *p, const void *ctx);
/* A client answered: args is the ack's argument array (attachments referenced by placeholders).
 * Relayed to the requester while its broadcast's timeout runs, dropped (counted) after. */
void rc_adapter_peer_on_ack(rc_adapter_peer *p, const void *ctx, const struct cJSON *args,
                            const rc_bp_bytes *att, size_t att_count);

/* roomcast_adapter_requests_total{type,result}, roomcast_adapter_requests_refused_total{reason},
 * roomcast_adapter_broadcast_acks_total{result}. */
void rc_adapter_peer_write_metrics(const rc_adapter_peer *p, struct evbuffer *out);

#endif
