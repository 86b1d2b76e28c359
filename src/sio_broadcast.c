/*
 * sio_broadcast.c: the local fan-out of room messages (see include/roomcast/sio.h and
 * include/roomcast/message.h), for the node's own broadcasts and those other nodes publish.
 *
 * rc_sio_broadcast encodes an emit once: one text frame (the Socket.IO header and arguments) and
 * one binary frame per attachment, each shared by reference by every recipient's session, then
 * released here (the sessions hold their own references). Recipients are the room's members, or
 * every socket of the namespace when the message has no room, minus the sockets in msg->except
 * and sockets already removed.
 *
 * rc_sio_control applies a control op (join another room, leave one, disconnect) to the same
 * recipients, through rc_sio_join/leave/disconnect, so hooks fire as for a rule's own op.
 *
 * rc_sio_broadcast_to and rc_sio_select pick recipients as Socket.IO's adapter does (rooms,
 * except, a socket's own id as a room): the except rooms' members are marked first with the
 * selection's number (srv->mark_seq, one per selection, stored in each socket), then each member
 * of the target rooms not yet marked is marked and taken, so a socket in several rooms is taken
 * once, with no allocation and no set to build.
 *
 * What it does not do: publish to other nodes (the node does) or decide who may send (rules).
 */
#include "sio_internal.h"
#include "roomcast/common.h"
#include "roomcast/server.h"

typedef struct fanout {
    const rc_bp_message *msg;
    rc_frame *head;
    rc_frame **att;
    size_t att_count;
    size_t delivered;
    uint64_t born_ns;
    int ns_index;
} fanout;

static int excepted(const rc_bp_message *msg, const rc_sio_socket *s)
{
    for (size_t i = 0; i < msg->except_count; i++)
        if (strcmp(msg->except[i], s->sid) == 0) return 1;
    return 0;
}

static void fanout_one(fanout *f, rc_sio_socket *s)
{
    if (s->dead || excepted(f->msg, s)) return;
    if (s->rec) { /* being recovered: in order, after its replay (sio_recover.c) */
        rc_sio__recover_hold(s, f->head, f->att, f->att_count, f->msg->offset);
        f->delivered++;
        return;
    }
    rc_eio_send_frame(s->client->eio, f->head);
    for (size_t i = 0; i < f->att_count; i++) rc_eio_send_frame(s->client->eio, f->att[i]);
    f->delivered++;
}

/* The namespace's writeDelay on the broadcast's frames: the transport may hold them that long
 * to write them with what follows (src/server_delay.c). */
static void frames_delay(fanout *f, const rc_sio_ns *ns)
{
    unsigned ms = ns->set.write_delay_ms;
    if (!ms) return;
    if (ms > RC_WRITE_DELAY_MAX) ms = RC_WRITE_DELAY_MAX;
    f->head->delay_ms = (uint8_t)ms;
    for (size_t i = 0; i < f->att_count; i++) f->att[i]->delay_ms = (uint8_t)ms;
}

static void fanout_visit(void *arg, rc_room_member *m)
{
    fanout_one(arg, RC_CONTAINER_OF(m, rc_sio_socket, member));
}

size_t rc_sio_broadcast(rc_sio_server *srv, const rc_bp_message *msg, uint64_t born_ns)
{
    rc_sio_ns *ns = rc_sio__find_ns(srv, msg->ns, strlen(msg->ns));
    if (!ns || !msg->event) return 0;
    rc_room *room = NULL;
    if (msg->room) {
        room = rc_rooms_find(ns->rooms, msg->room);
        if (!room) return 0;
    } else if (ns->sockets.count == 0) {
        return 0;
    }
    fanout f = {0};
    f.msg = msg;
    f.born_ns = born_ns;
    f.ns_index = ns->index;
    int type = msg->attachment_count ? RC_SIO_BINARY_EVENT : RC_SIO_EVENT;
    if (msg->offset) { /* a kept emit: its offset is its last argument, the same for everyone */
        size_t len;
        char *args = rc_sio__args_with_offset(msg->args_json, msg->args_len, msg->offset, &len);
        f.head = rc_sio__encode_packet(type, ns->set.name, -1, (int)msg->attachment_count, msg->event, args, len);
        rc_free(args);
    } else {
        f.head = rc_sio__encode_packet(type, ns->set.name, -1, (int)msg->attachment_count, msg->event,
                                       msg->args_json, msg->args_len);
    }
    f.head->born_ns = born_ns;
    rc_frame *att_local[RC_SIO_MAX_ATTACHMENTS];
    f.att = att_local;
    f.att_count = msg->attachment_count <= RC_SIO_MAX_ATTACHMENTS ? msg->attachment_count : 0;
    for (size_t i = 0; i < f.att_count; i++)
        f.att[i] = rc_frame_from(RC_WS_OP_BINARY, msg->attachments[i].data, msg->attachments[i].len);
    frames_delay(&f, ns);
    if (room) {
        rc_room_foreach(room, fanout_visit, &f);
    } else {
        for (rc_hmap_node *n = rc_hmap_first(&ns->sockets); n; n = rc_hmap_next(&ns->sockets, n))
            fanout_one(&f, RC_CONTAINER_OF(n, rc_sio_socket, node));
    }
    rc_frame_unref(f.head);
    for (size_t i = 0; i < f.att_count; i++) rc_frame_unref(f.att[i]);
    ns->broadcasts++;
    ns->messages_out += f.delivered;
    /* once per broadcast, not per recipient (a clock read and a bucket search each): the time
     * by which every recipient's frame was queued, counted for each of them */
    if (born_ns && f.delivered)
        rc_histogram_observe_n(&srv->delivery_latency, (double)(rc_now_mono_ns() - born_ns) / 1e9,
                               f.delivered);
    return f.delivered;
}

typedef struct collect {
    rc_sio_socket **items;
    size_t count, cap;
} collect;

static void collect_visit(void *arg, rc_room_member *m)
{
    collect *c = arg;
    if (c->count == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->items = rc_realloc(c->items, c->cap * sizeof(*c->items));
    }
    c->items[c->count++] = RC_CONTAINER_OF(m, rc_sio_socket, member);
}

size_t rc_sio_control(rc_sio_server *srv, const rc_bp_message *msg)
{
    rc_sio_ns *ns = rc_sio__find_ns(srv, msg->ns, strlen(msg->ns));
    if (!ns) return 0;
    /* Collect first: the operation changes the very memberships being walked. No room means
     * every socket of the namespace (an op published on P:ns:<ns>). */
    collect col = {0};
    if (msg->room) {
        rc_room *room = rc_rooms_find(ns->rooms, msg->room);
        if (!room) return 0;
        rc_room_foreach(room, collect_visit, &col);
    } else {
        for (rc_hmap_node *h = rc_hmap_first(&ns->sockets); h; h = rc_hmap_next(&ns->sockets, h))
            collect_visit(&col, &RC_CONTAINER_OF(h, rc_sio_socket, node)->member);
    }
    size_t done = 0;
    for (size_t i = 0; i < col.count; i++) {
        rc_sio_socket *s = col.items[i];
        if (s->dead || excepted(msg, s)) continue;
        switch (msg->kind) {
        case RC_BP_JOIN:
            if (msg->target_room && rc_sio_join(s, msg->target_room) > 0) done++;
            break;
        case RC_BP_LEAVE:
            if (msg->target_room) done += (size_t)rc_sio_leave(s, msg->target_room);
            break;
        case RC_BP_DISCONNECT:
            rc_sio_disconnect(s);
            done++;
            break;
        }
    }
    rc_free(col.items);
    return done;
}

/* ---- selections as Socket.IO's adapter makes them ------------------------------------------ */

typedef void (*select_fn)(void *arg, rc_sio_socket *s);

typedef struct selection {
    uint32_t seq;
    select_fn fn;
    void *arg;
} selection;

/* A new selection number; on wrap-around every socket's mark is cleared first. */
static uint32_t mark_next(rc_sio_server *srv)
{
    if (++srv->mark_seq == 0) {
        for (size_t i = 0; i < srv->ns_count; i++) {
            rc_hmap *h = &srv->ns[i].sockets;
            for (rc_hmap_node *n = rc_hmap_first(h); n; n = rc_hmap_next(h, n))
                RC_CONTAINER_OF(n, rc_sio_socket, node)->mark = 0;
        }
        srv->mark_seq = 1;
    }
    return srv->mark_seq;
}

static void mark_visit(void *arg, rc_room_member *m)
{
    RC_CONTAINER_OF(m, rc_sio_socket, member)->mark = *(const uint32_t *)arg;
}

static void take(selection *sel, rc_sio_socket *s)
{
    if (s->mark == sel->seq) return;
    s->mark = sel->seq;
    if (!s->dead) sel->fn(sel->arg, s);
}

static void take_visit(void *arg, rc_room_member *m)
{
    take(arg, RC_CONTAINER_OF(m, rc_sio_socket, member));
}

static rc_sio_socket *socket_by_id(rc_sio_ns *ns, const char *sid)
{
    rc_hmap_node *n = rc_hmap_find(&ns->sockets, sid, strlen(sid));
    return n ? RC_CONTAINER_OF(n, rc_sio_socket, node) : NULL;
}

static void select_walk(rc_sio_server *srv, rc_sio_ns *ns, const rc_sio_target *t, select_fn fn, void *arg)
{
    selection sel = {mark_next(srv), fn, arg};
    for (size_t i = 0; i < t->except_count; i++) {
        rc_room *room = rc_rooms_find(ns->rooms, t->except[i]);
        if (room) rc_room_foreach(room, mark_visit, &sel.seq);
        rc_sio_socket *s = socket_by_id(ns, t->except[i]);
        if (s) s->mark = sel.seq;
    }
    if (t->room_count == 0) {
        for (rc_hmap_node *n = rc_hmap_first(&ns->sockets); n; n = rc_hmap_next(&ns->sockets, n))
            take(&sel, RC_CONTAINER_OF(n, rc_sio_socket, node));
        return;
    }
    for (size_t i = 0; i < t->room_count; i++) {
        rc_room *room = rc_rooms_find(ns->rooms, t->rooms[i]);
        if (room) rc_room_foreach(room, take_visit, &sel);
        rc_sio_socket *s = socket_by_id(ns, t->rooms[i]);
        if (s) take(&sel, s);
    }
}

typedef struct fanout_to {
    fanout f;
    int only_writable;
} fanout_to;

static void fanout_to_one(void *arg, rc_sio_socket *s)
{
    fanout_to *ft = arg;
    if (ft->only_writable && !rc_eio_writable(s->client->eio)) return;
    rc_eio_send_frame(s->client->eio, ft->f.head);
    for (size_t i = 0; i < ft->f.att_count; i++) rc_eio_send_frame(s->client->eio, ft->f.att[i]);
    ft->f.delivered++;
}

size_t rc_sio_broadcast_to(rc_sio_server *srv, const rc_bp_message *msg, const rc_sio_target *t,
                           uint64_t born_ns)
{
    rc_sio_ns *ns = rc_sio__find_ns(srv, msg->ns, strlen(msg->ns));
    if (!ns || !msg->event || ns->sockets.count == 0) return 0;
    fanout_to ft = {{0}, t->only_writable};
    fanout *f = &ft.f;
    int type = msg->attachment_count ? RC_SIO_BINARY_EVENT : RC_SIO_EVENT;
    f->head = rc_sio__encode_packet(type, ns->set.name, -1, (int)msg->attachment_count, msg->event,
                                    msg->args_json, msg->args_len);
    f->head->born_ns = born_ns;
    rc_frame *att_local[RC_SIO_MAX_ATTACHMENTS];
    f->att = att_local;
    f->att_count = msg->attachment_count <= RC_SIO_MAX_ATTACHMENTS ? msg->attachment_count : 0;
    for (size_t i = 0; i < f->att_count; i++)
        f->att[i] = rc_frame_from(RC_WS_OP_BINARY, msg->attachments[i].data, msg->attachments[i].len);
    frames_delay(f, ns);
    select_walk(srv, ns, t, fanout_to_one, &ft);
    rc_frame_unref(f->head);
    for (size_t i = 0; i < f->att_count; i++) rc_frame_unref(f->att[i]);
    ns->broadcasts++;
    ns->messages_out += f->delivered;
    if (born_ns && f->delivered)
        rc_histogram_observe_n(&srv->delivery_latency, (double)(rc_now_mono_ns() - born_ns) / 1e9,
                               f->delivered);
    return f->delivered;
}

static void collect_socket(void *arg, rc_sio_socket *s)
{
    collect_visit(arg, &s->member);
}

size_t rc_sio_select(rc_sio_server *srv, const char *ns_name, const rc_sio_target *t, rc_sio_socket ***out)
{
    *out = NULL;
    rc_sio_ns *ns = rc_sio__find_ns(srv, ns_name, strlen(ns_name));
    if (!ns) return 0;
    collect col = {0};
    select_walk(srv, ns, t, collect_socket, &col);
    *out = col.items;
    return col.count;
}

void rc_sio_disconnect_close(rc_sio_socket *s)
{
    rc_sio_client *c = s->client;
    collect col = {0};
    for (rc_sio_socket *x = c->sockets; x; x = x->next)
        if (!x->dead) collect_visit(&col, &x->member);
    for (size_t i = 0; i < col.count; i++) rc_sio_disconnect(col.items[i]);
    rc_free(col.items);
    rc_eio_close(c->eio, "server disconnect");
}

int rc_sio_has_ns(const rc_sio_server *srv, const char *ns)
{
    return rc_sio__find_ns(srv, ns, strlen(ns)) != NULL;
}
