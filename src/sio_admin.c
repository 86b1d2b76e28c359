/*
 * sio_admin.c: the read-only views of the Socket.IO server that the Admin UI module needs
 * (include/roomcast/sio_admin.h): namespaces and their counts, every socket, a socket's rooms and
 * session. It reads the structures of src/sio_internal.h and changes nothing but, for
 * rc_sio_socket_close_session, the session's life (through eio, as a ping timeout would).
 *
 * It also relays eio's on_upgrade to hooks.on_upgrade, socket by socket (rc_sio__client_on_upgrade,
 * installed by rc_sio_server_new).
 *
 * What it does not do: JSON, the cluster, authentication (src/admin.c).
 */
#include "sio_internal.h"
#include "roomcast/common.h"

#include <string.h>

size_t rc_sio_ns_count(const rc_sio_server *srv) { return srv->ns_count; }

const char *rc_sio_ns_name(const rc_sio_server *srv, size_t ns_index)
{
    return ns_index < srv->ns_count ? srv->ns[ns_index].set.name : NULL;
}

uint64_t rc_sio_ns_sockets(const rc_sio_server *srv, size_t ns_index)
{
    return ns_index < srv->ns_count ? srv->ns[ns_index].sockets.count : 0;
}

void rc_sio_ns_messages(const rc_sio_server *srv, size_t ns_index, uint64_t *in, uint64_t *out)
{
    *in = ns_index < srv->ns_count ? srv->ns[ns_index].messages_in : 0;
    *out = ns_index < srv->ns_count ? srv->ns[ns_index].messages_out : 0;
}

void rc_sio_foreach_socket(rc_sio_server *srv, size_t ns_index, void (*fn)(void *arg, rc_sio_socket *s),
                           void *arg)
{
    if (ns_index >= srv->ns_count) return;
    const rc_hmap *map = &srv->ns[ns_index].sockets;
    for (rc_hmap_node *h = rc_hmap_first(map); h; h = rc_hmap_next(map, h)) {
        rc_sio_socket *s = RC_CONTAINER_OF(h, rc_sio_socket, node);
        if (!s->dead) fn(arg, s);
    }
}

void rc_sio_socket_rooms(const rc_sio_socket *s, void (*fn)(void *arg, const char *room), void *arg)
{
    rc_member_foreach_room(&s->member, fn, arg);
}

const char *rc_sio_socket_session(const rc_sio_socket *s) { return rc_eio_sid(s->client->eio); }
int rc_sio_socket_polling(const rc_sio_socket *s) { return rc_eio_is_polling(s->client->eio); }
const char *rc_sio_socket_gone_reason(const rc_sio_socket *s) { return s->ns->srv->gone ? s->ns->srv->gone : ""; }
uint64_t rc_sio_socket_issued_ms(const rc_sio_socket *s) { return (uint64_t)s->issued_s * 1000; }

/* As Node's client._disconnect(): every socket of the client hears its DISCONNECT, then the
 * session closes. */
void rc_sio_socket_close_session(rc_sio_socket *s)
{
    if (s->dead) return;
    rc_sio_client *c = s->client;
    while (c->sockets) rc_sio_disconnect(c->sockets);
    rc_eio_close(c->eio, "forced close");
}

void rc_sio__client_on_upgrade(void *owner)
{
    rc_sio_client *c = owner;
    const rc_sio_hooks *h = c->srv->hooks;
    if (!h->on_upgrade) return;
    for (rc_sio_socket *s = c->sockets; s; s = s->next) h->on_upgrade(h->arg, s); /* removes none */
}

/* A client is counted at its socket of the lowest namespace index, so once. */
void rc_sio_client_counts(rc_sio_server *srv, uint64_t *clients, uint64_t *polling)
{
    *clients = *polling = 0;
    for (size_t i = 0; i < srv->ns_count; i++) {
        const rc_hmap *map = &srv->ns[i].sockets;
        for (rc_hmap_node *h = rc_hmap_first(map); h; h = rc_hmap_next(map, h)) {
            rc_sio_socket *s = RC_CONTAINER_OF(h, rc_sio_socket, node);
            int first = 1;
            for (rc_sio_socket *o = s->client->sockets; o; o = o->next)
                if (o->ns->index < (int)i) first = 0;
            if (!first || s->dead) continue;
            (*clients)++;
            if (rc_eio_is_polling(s->client->eio)) (*polling)++;
        }
    }
}
