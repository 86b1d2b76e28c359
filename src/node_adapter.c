/*
 * node_adapter.c: what the node tells the adapter peer (include/roomcast/adapter_peer.h) about
 * its sockets, through rc_adapter_local, when a Node Socket.IO server asks (fetchSockets,
 * allRooms, broadcasts with acks): the selection and rooms from sio's queries, and each socket
 * described as Node's adapter serializes a RemoteSocket.
 *
 * A fetched socket is {"id", "handshake", "rooms", "data"} (docs/migrating.md, "What a Node
 * server sees of roomcast's sockets"): handshake has what roomcast keeps of a CONNECT, the auth
 * payload without its token (a token is a credential: it never leaves the node), the CONNECT time
 * as Node writes it (time, issued; to the second), and empty headers, query, address and url, which roomcast
 * does not keep per socket; data is {"user": <the token's claims>, "userId": "<id>"} for a
 * socket with a user (what a gateway that verifies the token usually stores in socket.data),
 * {} for an anonymous one.
 *
 * What it does not do: parse or answer requests (the peer does) or subscribe.
 *
 * API: rc_node__adapter_new (from node_socketio.c when it starts) -> rc_node__adapter_request
 * (its dispatch table's entry for the requests a Node server waits on) -> rc_node__adapter_free.
 */
#include "node_internal.h"
#include "roomcast/adapter_peer.h"
#include "roomcast/common.h"
#include "roomcast/sio_admin.h"

#include <string.h>
#include <time.h>

static size_t local_select(void *arg, const char *ns, const rc_adapter_target *t,
                           void (*fn)(void *fn_arg, void *sock), void *fn_arg)
{
    rc_node *n = arg;
    rc_sio_target st = {t->rooms, t->room_count, t->except, t->except_count, 0};
    rc_sio_socket **v = NULL;
    size_t count = rc_sio_select(n->sio, ns, &st, &v);
    for (size_t i = 0; i < count; i++) fn(fn_arg, v[i]);
    rc_free(v);
    return count;
}

static void local_rooms(void *arg, const char *ns, void (*fn)(void *fn_arg, const char *room), void *fn_arg)
{
    rc_node *n = arg;
    rc_sio_foreach_room(n->sio, rc_sio_ns_index(n->sio, ns), fn, fn_arg);
}

static const char *local_socket_id(void *arg, void *sock)
{
    return rc_sio_socket_id(sock);
}

static void add_room(void *arg, const char *room)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(room));
}

static cJSON *local_socket_fetch(void *arg, void *sock)
{
    const rc_sio_socket *s = sock;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", rc_sio_socket_id(s));

    cJSON *h = cJSON_AddObjectToObject(o, "handshake");
    cJSON_AddObjectToObject(h, "headers");
    uint64_t ms = rc_sio_socket_issued_ms(s);
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    char when[96] = "";
    if (gmtime_r(&secs, &tm))   /* new Date().toString() on a server whose zone is UTC */
        strftime(when, sizeof(when), "%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)", &tm);
    cJSON_AddStringToObject(h, "time", when);
    cJSON_AddStringToObject(h, "address", "");
    cJSON_AddFalseToObject(h, "xdomain");
    cJSON_AddFalseToObject(h, "secure");
    cJSON_AddNumberToObject(h, "issued", (double)ms);
    cJSON_AddStringToObject(h, "url", "");
    cJSON_AddObjectToObject(h, "query");
    const cJSON *auth = rc_sio_socket_auth(s);
    cJSON_AddItemToObject(h, "auth", auth ? cJSON_Duplicate(auth, 1) : cJSON_CreateObject());

    cJSON *rooms = cJSON_AddArrayToObject(o, "rooms");   /* its own id first, as Socket.IO's */
    cJSON_AddItemToArray(rooms, cJSON_CreateString(rc_sio_socket_id(s)));
    rc_sio_socket_rooms(s, add_room, rooms);

    cJSON *data = cJSON_AddObjectToObject(o, "data");
    const char *user = rc_sio_socket_user(s);
    const char *claims = rc_sio_socket_claims(s);
    cJSON *c = claims ? cJSON_Parse(claims) : NULL;
    if (c) cJSON_AddItemToObject(data, "user", c);
    if (user) cJSON_AddStringToObject(data, "userId", user);
    return o;
}

static void *local_find(void *arg, const char *ns, const char *sid)
{
    rc_node *n = arg;
    return rc_sio_find_socket(n->sio, rc_sio_ns_index(n->sio, ns), sid);
}

static void local_act(void *arg, void *sock, int type, const char *room, int close)
{
    if (type == 2) rc_sio_join(sock, room);
    else if (type == 3) rc_sio_leave(sock, room);
    else if (close) rc_sio_disconnect_close(sock);
    else rc_sio_disconnect(sock);
}

static void local_emit_ack(void *arg, void *sock, const char *event, const char *args_json, size_t args_len,
                           const rc_bp_bytes *att, size_t att_count, const void *ctx)
{
    rc_sio_emit(sock, event, args_json, args_len, att, att_count, ctx);
}

static void adapter_local(rc_node *n, rc_adapter_local *local)
{
    memset(local, 0, sizeof(*local));
    local->select = local_select;
    local->rooms = local_rooms;
    local->socket_id = local_socket_id;
    local->socket_fetch = local_socket_fetch;
    local->find = local_find;
    local->act = local_act;
    local->emit_ack = local_emit_ack;
    local->arg = n;
}

void rc_node__adapter_new(rc_node *n, const char *prefix, const char *uid)
{
    rc_adapter_local local;
    adapter_local(n, &local);
    n->adapter = rc_adapter_peer_new(n->bp, prefix, uid, &local);
}

void rc_node__adapter_free(rc_node *n)
{
    rc_adapter_peer_free(n->adapter);
    n->adapter = NULL;
}

void rc_node__adapter_request(rc_node *n, const char *ns, const rc_socketio_request *req)
{
    if (n->adapter) rc_adapter_peer_on_request(n->adapter, rc_node__socketio_codec(n), ns, req);
}
