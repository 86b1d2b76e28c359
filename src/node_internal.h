/*
 * node_internal.h: what the files of the node share, and nothing else. Private (src/): other
 * modules and main.c use include/roomcast/node.h.
 *
 *   node.c            the composition root: rc_node_new / rc_node_free wire and tear down every
 *                     layer; the backplane and presence callbacks, room open/close, the drain.
 *   node_broadcast.c  the one way out to every node: the backplane accepts, then local fan-out.
 *   node_publish.c    the one parser of a backend's publish (POST /api/publish and P:notify).
 *   node_notify.c     notifications for a user (P:notify) and the status broadcast.
 *   node_rules.c      rc_rule_ops for the rules, the sio hooks that run rules, and the rules
 *                     waiting for a presence answer.
 *   node_api.c        the HTTP routes: /healthz, /readyz, /metrics, POST /api/publish.
 *   node_recovery.c   connection state recovery: kept emits, gap marks, sessions in Redis, the
 *                     recover hook (docs/recovery.md).
 *   node_recovery_hold.c  the rooms of a session whose client is away, kept subscribed until it
 *                     is recovered or gone (docs/recovery.md).
 *   node_socketio.c   Socket.IO's Redis formats (socketio.prefix): emitter and adapter
 *                     broadcasts and requests in, the node's broadcasts out in the adapter format.
 *   node_adapter.c    what the adapter peer (adapter_peer.h) is told of the local sockets.
 *
 * Calls between them go one way, down this list read from the bottom: node_api.c calls
 * node_publish.c, node_notify.c and node_broadcast.c; node_notify.c calls node_publish.c and
 * node_broadcast.c; node_rules.c calls node_broadcast.c; node.c calls the others (and takes the
 * addresses of their hooks and routes). node_broadcast.c and node_publish.c call none of them, except that node_broadcast.c hands an emit
 * to node_socketio.c when socketio.prefix is set; node_socketio.c calls only node_adapter.c, which
 * calls none of them.
 */
#ifndef ROOMCAST_NODE_INTERNAL_H
#define ROOMCAST_NODE_INTERNAL_H

#include "roomcast/node.h"
#include "roomcast/adapter_peer.h"
#include "roomcast/backplane.h"
#include "roomcast/config.h"
#include "roomcast/eio.h"
#include "roomcast/http.h"
#include "roomcast/jobs.h"
#include "roomcast/presence.h"
#include "roomcast/server.h"
#include "roomcast/sio.h"
#include "roomcast/socketio_codec.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_node_recovery rc_node_recovery;
typedef struct rc_node_socketio rc_node_socketio;
typedef struct rc_node_holds rc_node_holds;
typedef struct rc_node_gaps rc_node_gaps;

struct rc_node {
    struct event_base *base;
    rc_config *cfg;
    rc_server *server;
    rc_http_limits limits;
    rc_http_callbacks http_cb;
    rc_eio_server *eio;
    rc_sio_server *sio;
    rc_sio_hooks hooks;
    rc_backplane *bp;
    rc_backplane_callbacks bp_cb;
    rc_jobs *jobs;
    rc_presence *presence;
    rc_presence_callbacks presence_cb;
    rc_node_recovery *recovery;     /* connection state recovery (node_recovery.c) */
    rc_node_holds *holds;           /* rooms of away sessions kept heard (node_recovery_hold.c) */
    rc_node_gaps *gaps;             /* gap marks and their retries (node_recovery_gap.c) */
    rc_adapter_peer *adapter;       /* answers Node adapters' requests; NULL unless
                                     * ROOMCAST_SOCKETIO_PREFIX is set */
    struct rc_admin *admin;         /* the Admin UI (admin.enabled), else NULL */
    size_t admin_ns;                /* its namespace's index in sio; SIZE_MAX when off */
    struct pending_answer *pending; /* presence queries and member lists awaiting Redis */
    size_t pending_count;
    uint64_t next_tag;
    int presence_draining;
    uint64_t drain_started_ms;
    char *notify_channel;           /* <prefix>:notify, NULL without Redis */
    char *status_pattern;           /* "<prefix>:status:", the prefix of rc_redis_pattern_open,
                                     * while some namespace broadcasts status */
    rc_node_socketio *socketio;     /* NULL unless socketio.prefix is set (node_socketio.c) */
    int bp_up;
    int failed;                     /* the backplane can never work: the loop stops, exit 1 */
    int draining;
    struct event *drain_ev;
    size_t drain_batch;
    struct {                        /* counters of the node's own (/metrics: node_api.c) */
        uint64_t api_publishes;     /* messages accepted by POST /api/publish */
        uint64_t api_refused;       /* POST /api/publish answered 400 (a malformed request) */
        uint64_t notifications;     /* notifications received (P:notify, the API with "user") */
        uint64_t notifications_delivered; /* sockets this node delivered them to */
        uint64_t notifications_refused;   /* P:notify messages refused (malformed) */
    } stats;
    uint64_t notify_logged_ms;      /* the rate limit of notify_refused (node_notify.c) */
    uint64_t notify_suppressed;
};

/* A rule waiting for presence (a status query or a member list): the socket is looked up again
 * by namespace and id when the answer comes, since it may be gone by then. */
typedef struct pending_answer {
    struct pending_answer *next;
    uint64_t tag;
    int ns_index;
    char sid[24];
    long long ack_id;
    const void *then;
    char *event;
} pending_answer;

/* ---- node_broadcast.c ------------------------------------------------------------------- */

/* 1 when /readyz answers 200: not draining and the backplane is up. */
int rc_node__ready(const rc_node *n);
/* Publishes for the other nodes, then delivers locally. -1 when the backplane refuses it (down,
 * backlog full, a name it cannot carry): nothing is delivered then, to anyone, so the caller can
 * refuse cleanly. */
int rc_node__broadcast(rc_node *n, rc_bp_message *msg);
/* Emits event(args) to a room (NULL: the whole namespace): on this node only (`cluster` 0: every
 * node hears the cause itself) or through rc_node__broadcast. Returns rc_node__broadcast's
 * result. args stays the caller's. */
int rc_node__emit(rc_node *n, const char *ns, const char *room, const char *event, const cJSON *args,
                  int cluster);

/* ---- node_publish.c --------------------------------------------------------------------- */

/* A backend's publish request, parsed and checked (docs/redis.md, "Publishing from a backend").
 * Exactly one of room, user, broadcast is set. Strings point into root (or the *_text buffers)
 * and live until rc_node__publish_dispose. */
typedef struct rc_node_publish {
    cJSON *root;
    const char *ns;                 /* "/" when absent; a namespace the node serves */
    const char *room;               /* "room": that room, or NULL */
    const char *user;               /* "user": a notification for that user, or NULL */
    int broadcast;                  /* "broadcast": true: every socket of the namespace */
    const char *event;              /* NULL only for a notification that leaves it out */
    const cJSON *args, *data;       /* at most one of them */
    const char *id;                 /* message id, or NULL */
    const char **except;            /* socket ids left out (heap array), except_count of them */
    size_t except_count;
    const char *field;              /* after a refusal: the field at fault, or NULL */
    char user_text[24], id_text[24];/* a user or id given as a number, as text */
} rc_node_publish;

/* Parses text[0..len) into p. NULL when it is a valid request, else a static error code
 * ("bad_json", "trailing_text", "unknown_field", "duplicate_field", "bad_ns",
 * "unknown_namespace", "no_target", "conflicting_fields", "bad_room", "bad_user",
 * "bad_broadcast", "bad_event", "reserved_event", "bad_args", "data_and_args", "too_deep",
 * "bad_id", "bad_except") with p->field naming the field when there is one. Either way p must
 * be disposed. */
const char *rc_node__publish_parse(const rc_node *n, rc_node_publish *p, const char *text, size_t len);
void rc_node__publish_dispose(rc_node_publish *p);

/* ---- node_notify.c ---------------------------------------------------------------------- */

/* The arguments of a publish as JSON array text: "args" as given, or "data" as the only one
 * (none when absent). cJSON_free the result. */
char *rc_node__args_json_of(const cJSON *args, const cJSON *data);
/* Handles one notification (the JSON text of P:notify or of POST /api/publish with "user",
 * parsed by rc_node__publish_parse; a request without "user" is refused as bad_user): delivers
 * it to the user's local sockets, or hands it to the jobs script. A refusal is counted and logged
 * (notify_refused, at most once a second). Returns a static error code or NULL. */
const char *rc_node__notify(rc_node *n, const char *payload, size_t len);
/* A status change heard on <prefix>:status:*: told to every local socket of the namespaces
 * whose "status" option broadcasts. */
void rc_node__status_broadcast(rc_node *n, const char *payload, size_t len);

/* ---- node_rules.c ----------------------------------------------------------------------- */

/* The rules of a socket's namespace (sio's namespace index is the rules' index). */
const struct rc_ns_rules *rc_node__socket_rules(const rc_node *n, const rc_sio_socket *s);
/* rc_sio_hooks that run rules (arg is the node). */
void rc_node__hook_on_connect(void *arg, rc_sio_socket *s, const cJSON *auth);
void rc_node__hook_on_event(void *arg, rc_sio_socket *s, const rc_sio_event *ev);
/* rc_sio_hooks.auth_error: the namespace's "authError" event for a refused CONNECT, or NULL. */
char *rc_node__hook_auth_error(void *arg, size_t ns_index, const char *reason, char event[201]);
void rc_node__hook_on_ack(void *arg, rc_sio_socket *s, const void *ctx, const char *event,
                          const rc_sio_event *ack);
/* Runs the rule waiting on tag (if it is still waiting) with data as {data}, or with
 * backplane_down when err; data is freed here either way. */
void rc_node__answer_pending(rc_node *n, uint64_t tag, int err, cJSON *data);
/* Unlinks the pending answer with this tag (NULL when none); rc_node__pending_free frees it. */
pending_answer *rc_node__pending_take(rc_node *n, uint64_t tag);
void rc_node__pending_free(pending_answer *p);

/* ---- node_recovery.c -------------------------------------------------------------------- */

/* Created after the backplane, before sio (which asks rc_node__recovery_enabled per namespace);
 * freed after the backplane. */
void rc_node__recovery_new(rc_node *n);
void rc_node__recovery_free(rc_node *n);
/* 1 if namespace ns_index has recovery on (its config asks, and Redis is there). */
int rc_node__recovery_enabled(const rc_node *n, size_t ns_index);
/* An emit about to be published: 0 when it is not kept (publish it as usual; a binary emit of a
 * kept room leaves a gap mark first), 1 when it was handed to publish_kept (every node, this
 * one included, delivers it when Redis publishes it), -1 when that was refused. */
int rc_node__recovery_publish(rc_node *n, rc_bp_message *msg);
/* The same for a notification every node hears: kept and published once cluster-wide (the once
 * key is its id, or the digest of payload). 0 not kept, 1 handed over, -1 refused. */
int rc_node__recovery_notify(rc_node *n, rc_bp_message *msg, const char *payload, size_t len);
/* An emit heard from the backplane, before it is delivered. One without an offset to a kept room
 * is kept once cluster-wide when it has an id (returns 1: deliver nothing now, the kept copy
 * comes back with its offset), else leaves a gap mark (returns 0: deliver it). */
int rc_node__recovery_heard(rc_node *n, const rc_bp_message *msg);
/* An emit of namespace ns to room (NULL or "": the whole namespace) that reaches this node's
 * sockets without an offset by another way than the node's own channels (Socket.IO's adapter and
 * emitter formats, src/node_socketio.c): when recovery keeps it (the namespace has recovery and
 * rc_ns_rules_recovery_keeps says so for room and event), a gap mark for room is appended to the
 * history, so a socket of that room that recovers across it gets a fresh session rather than a
 * replay without it. Nothing otherwise. Call it before delivering; the mark is written by a
 * command sent now (its failure is logged as recovery_gap_failed). */
void rc_node__recovery_gap(rc_node *n, const char *ns, const char *room, const char *event);
/* The socket's session changed (connect, join, leave): rewritten at the end of the loop turn. */
void rc_node__recovery_touch(rc_node *n, rc_sio_socket *s);
/* A socket left: for a reason after which the client does not reconnect by itself (a namespace
 * DISCONNECT, a parse error), its session is deleted, as Socket.IO keeps none then. */
void rc_node__recovery_left(rc_node *n, rc_sio_socket *s);
/* presenceGrace: 1 when the socket's presence is kept for its window (the caller then does not
 * disconnect it from presence); a socket back on this node within it takes it back. */
int rc_node__recovery_presence_leave(rc_node *n, rc_sio_socket *s);
void rc_node__recovery_presence_back(rc_node *n, const rc_sio_socket *s);
/* rc_sio_hooks.recover (arg is the node). */
void rc_node__hook_recover(void *arg, rc_sio_pending *p, int ns_index, const char *pid, const char *offset,
                           const char *user);
void rc_node__recovery_write_metrics(const rc_node *n, struct evbuffer *out);
/* 1 when the socket left for a reason after which the client reconnects by itself (transport
 * close or error, ping timeout, server shutting down, token expired...). */
int rc_node__recovery_comes_back(const rc_sio_socket *s);

/* The namespace's history key (P:history:<ns>) and its recovery.maxLength, or NULL when the
 * namespace has no recovery. */
const char *rc_node__recovery_history(const rc_node *n, size_t ns_index, unsigned long *max_length);

/* ---- node_recovery_gap.c ---------------------------------------------------------------- */

/* Created by rc_node__recovery_new when some namespace has recovery (else n->gaps stays NULL and
 * every call is a no-op); freed by rc_node__recovery_free, after the backplane. */
void rc_node__gaps_new(rc_node *n);
void rc_node__gaps_free(rc_node *n);
/* Appends a gap mark for room (NULL: the whole namespace) to namespace ns_index's history; one
 * that Redis refuses or does not answer is sent again every second until written. */
void rc_node__gap_mark(rc_node *n, int ns_index, const char *room);
/* 1 while this node has a mark of namespace ns_index still to write (recoveries are refused). */
int rc_node__gaps_pending(const rc_node *n, int ns_index);
/* A heard plain PUBLISH with an id, copied for rc_bp_keep.done (arg) before publish_kept:
 * rc_node__heard_done(arg, failed) delivers it to this node's sockets with a gap mark when
 * failed, and frees the copy either way (call it with 0 when publish_kept refused). */
void *rc_node__heard_copy(rc_node *n, int ns_index, const rc_bp_message *msg);
void rc_node__heard_done(void *arg, int failed);
void rc_node__gaps_write_metrics(const rc_node *n, struct evbuffer *out);

/* ---- node_recovery_hold.c --------------------------------------------------------------- */

/* After rc_node__recovery_new (NULL, and every call a no-op, when no namespace has recovery). */
void rc_node__holds_new(rc_node *n);
/* A socket is leaving (before sio leaves its rooms): for a reason it comes back from, its kept
 * rooms stay subscribed (a reference each) until its session is recovered or gone. */
void rc_node__hold_take(rc_node *n, rc_sio_socket *s);
/* A socket connected (recovered here: the same sid): its hold ends. */
void rc_node__hold_back(rc_node *n, const rc_sio_socket *s);
/* 1 while a hold needs the room's channel (on_room_close then keeps it subscribed). */
int rc_node__hold_keeps_channel(const rc_node *n, const char *ns, const char *room);
/* Drain and shutdown: every hold ends and none is taken any more (the backplane must be alive). */
void rc_node__holds_stop(rc_node *n);
void rc_node__holds_write_metrics(const rc_node *n, struct evbuffer *out);
void rc_node__holds_free(rc_node *n);
/* ---- node_socketio.c -------------------------------------------------------------------- */

/* NULL (and nothing done) without socketio.prefix or without Redis; else subscribes each
 * namespace's broadcast and request channels and sets n->socketio. */
rc_node_socketio *rc_node__socketio_new(rc_node *n);
void rc_node__socketio_free(rc_node_socketio *x);
/* A room with local members opened (1) or closed (0): its K#<ns>#<room># channel. Nothing
 * without n->socketio. */
void rc_node__socketio_room(rc_node *n, const char *ns, const char *room, int open);
/* A socket connected (1) or left (0): the channel of the room named by its id. */
void rc_node__socketio_socket(rc_node *n, const rc_sio_socket *s, int open);
/* A raw channel's message: 1 when it was one of ours (handled), 0 otherwise. */
int rc_node__socketio_on_raw(rc_node *n, const char *channel, const char *payload, size_t len);
/* Publishes an RC_BP_EMIT in the adapter format (n->socketio set): 0, or -1 when refused. */
int rc_node__socketio_publish(rc_node *n, const rc_bp_message *msg);
void rc_node__socketio_write_metrics(const rc_node *n, struct evbuffer *out);
/* The codec requests were decoded with (NULL without n->socketio), for their handlers. */
rc_socketio_codec *rc_node__socketio_codec(const rc_node *n);
/* A handler of one request type (ns: the channel's namespace, served here). The dispatch table
 * is request_handlers[] in node_socketio.c: a file that answers a type puts its function there. */
typedef void (*rc_node_socketio_request_fn)(rc_node *n, const char *ns, const rc_socketio_request *req);

/* ---- node_adapter.c ------------------------------------------------------------------- */

/* Creates n->adapter, the peer that answers Node servers' requests (prefix and uid: those of
 * node_socketio.c, which calls this when it starts), with callbacks that read the node's sockets. */
void rc_node__adapter_new(rc_node *n, const char *prefix, const char *uid);
void rc_node__adapter_free(rc_node *n);
/* An entry of node_socketio.c's request_handlers[]: hands the request to n->adapter. */
void rc_node__adapter_request(rc_node *n, const char *ns, const rc_socketio_request *req);

/* ---- node_api.c ------------------------------------------------------------------------- */

/* rc_http_callbacks.on_request (arg is the node): Engine.IO paths, then the routes. */
void rc_node__on_request(void *arg, rc_http_request *req);
/* rc_server accept callback: attaches HTTP to the connection. */
void rc_node__on_accept(void *arg, rc_conn *c);
/* node_devpage.c: answers /dev/ and /dev/socket.io.min.js when dev.page is on (returns 1), else
 * returns 0 and leaves req alone. */
int rc_node__devpage(rc_node *n, rc_http_request *req);

#endif
