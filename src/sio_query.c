/*
 * sio_query.c: read-only questions about the local sockets of a namespace, for the node when
 * another kind of server asks what this one holds (src/adapter_peer.c answers Node Socket.IO
 * servers through the node): which sockets a room selection matches, which rooms exist, which
 * rooms a socket is in, since when it is connected.
 *
 * Selection follows Socket.IO's adapter: no rooms = every socket of the namespace, else the
 * union of the members of the listed rooms, minus every socket in an `except` room; a socket is
 * implicitly in the room named by its own id. Each socket is visited at most once.
 *
 * What it does not do: send anything, or change memberships itself. The sockets are collected
 * before the visits, so a visit may change the visited socket's rooms or disconnect it.
 *
 * API: rc_sio_ns_index -> rc_sio_select / rc_sio_foreach_room / rc_sio_socket_foreach_room,
 * rc_sio_socket_connected_ms (include/roomcast/sio.h, "Queries").
 */
#include "sio_internal.h"
#include "roomcast/common.h"

#include <string.h>

int rc_sio_ns_index(const rc_sio_server *srv, const char *ns)
{
    rc_sio_ns *n = rc_sio__find_ns(srv, ns, strlen(ns));
    return n ? n->index : -1;
}

/* 1 if s is in room (its own id counts as a room). */
static int in_room(const rc_sio_socket *s, const char *room)
{
    return strcmp(s->sid, room) == 0 || rc_rooms_is_member(s->ns->rooms, &s->member, room);
}

static int in_any(const rc_sio_socket *s, const char *const *rooms, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (in_room(s, rooms[i])) return 1;
    return 0;
}

typedef struct collect {
    rc_sio_socket **v;
    size_t n, cap;
    const char *const *rooms;     /* the rooms before the one being walked (dedup) */
    size_t before;
    const char *const *except;
    size_t except_count;
} collect;

static void collect_add(collect *c, rc_sio_socket *s)
{
    if (s->dead || in_any(s, c->rooms, c->before) || in_any(s, c->except, c->except_count)) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = rc_realloc(c->v, c->cap * sizeof(*c->v));
    }
    c->v[c->n++] = s;
}

static void collect_visit(void *arg, rc_room_member *m)
{
    collect_add(arg, RC_CONTAINER_OF(m, rc_sio_socket, member));
}

size_t rc_sio_select(rc_sio_server *srv, int ns_index, const char *const *rooms, size_t room_count,
                     const char *const *except, size_t except_count,
                     void (*fn)(void *arg, rc_sio_socket *s), void *arg)
{
    if (ns_index < 0 || (size_t)ns_index >= srv->ns_count) return 0;
    rc_sio_ns *ns = &srv->ns[ns_index];
    collect c = {NULL, 0, 0, rooms, 0, except, except_count};
    if (room_count == 0) {
        for (rc_hmap_node *h = rc_hmap_first(&ns->sockets); h; h = rc_hmap_next(&ns->sockets, h))
            collect_add(&c, RC_CONTAINER_OF(h, rc_sio_socket, node));
    }
    for (size_t i = 0; i < room_count; i++) {
        c.before = i;
        rc_room *room = rc_rooms_find(ns->rooms, rooms[i]);
        if (room) rc_room_foreach(room, collect_visit, &c);
        rc_hmap_node *h = rc_hmap_find(&ns->sockets, rooms[i], strlen(rooms[i]));
        if (h) {   /* the socket's own room, unless it joined a room named like itself */
            rc_sio_socket *s = RC_CONTAINER_OF(h, rc_sio_socket, node);
            if (!room || !rc_rooms_is_member(ns->rooms, &s->member, rooms[i])) collect_add(&c, s);
        }
    }
    for (size_t i = 0; i < c.n; i++) fn(arg, c.v[i]);
    rc_free(c.v);
    return c.n;
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

void rc_sio_socket_foreach_room(const rc_sio_socket *s, void (*fn)(void *arg, const char *room),
                                void *arg)
{
    if (!rc_rooms_is_member(s->ns->rooms, &s->member, s->sid)) fn(arg, s->sid);
    rc_member_foreach_room(&s->member, fn, arg);
}

uint64_t rc_sio_socket_connected_ms(const rc_sio_socket *s)
{
    return s->connected_ms;
}
