/*
 * sio_query.c: read-only questions about the local sockets of a namespace, for the node when
 * another kind of server asks what this one holds (src/adapter_peer.c answers Node Socket.IO
 * servers through the node): a namespace's index, and which rooms exist (a socket's own id
 * counting as a room, as in Socket.IO). Which sockets a room selection matches is rc_sio_select's
 * (src/sio_broadcast.c); a socket's rooms and CONNECT time are in include/roomcast/sio_admin.h.
 *
 * What it does not do: send anything, or change memberships.
 *
 * API: rc_sio_ns_index, rc_sio_foreach_room (include/roomcast/sio.h, "Queries").
 */
#include "sio_internal.h"
#include "roomcast/common.h"

#include <string.h>

int rc_sio_ns_index(const rc_sio_server *srv, const char *ns)
{
    rc_sio_ns *n = rc_sio__find_ns(srv, ns, strlen(ns));
    return n ? n->index : -1;
}

void rc_sio_foreach_room(const rc_sio_server *srv, int ns_index,
                         void (*fn)(void *arg, const char *room), void *arg)
{
    if (ns_index < 0 || (size_t)ns_index >= srv->ns_count) return;
    const rc_sio_ns *ns = &srv->ns[ns_index];
    rc_rooms_foreach_name(ns->rooms, fn, arg);
    for (rc_hmap_node *h = rc_hmap_first(&ns->sockets); h; h = rc_hmap_next(&ns->sockets, h)) {
        const rc_sio_socket *s = RC_CONTAINER_OF(h, rc_sio_socket, node);
        if (!s->dead && !rc_rooms_find(ns->rooms, s->sid)) fn(arg, s->sid);
    }
}
