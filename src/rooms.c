/*
 * rooms.c: the local room index of one namespace. See include/roomcast/rooms.h.
 *
 * Shape: one rc_rooms per namespace holds an rc_hmap name -> rc_room. A room is one allocation:
 * header plus its NUL-terminated name (flexible array member; the hmap key points into it). Each
 * membership is one node on two doubly linked lists at once:
 *
 *     room list   (room_prev/room_next, head rc_room.first)         -> rc_room_foreach
 *     member list (member_prev/member_next, head rc_room_member.first) -> leave_all, foreach_room
 *
 * with back pointers to its room and its member, so removing a membership is O(1) on both sides
 * (redis pubsub.c keeps the same two-way index with two dicts; here it is one node).
 *
 * Costs: join is one hash lookup, a duplicate check and O(1) linking; leave(name) is one hash
 * lookup plus finding the node on the shorter of the two lists (both lengths are known):
 * O(min(rooms of member, nodes in room)). A socket is usually in a few rooms while a room may hold
 * thousands, and the same rule stays cheap for the opposite shape (a socket in thousands of
 * one-member rooms). An O(1) alternative, a second hash keyed by (room, member), would cost a
 * 24-byte hmap node plus a bucket per membership (about 80 bytes instead of 48); not worth it for
 * sockets in a handful of rooms.
 *
 * Memory: nodes come from slabs owned by rc_rooms (16 nodes, doubling per slab up to 1024) and
 * return to a free list on leave, so steady-state join/leave does not call malloc. Slabs are kept
 * until rc_rooms_free (the high-water mark stays). On LP64:
 *     membership node   48 bytes (6 pointers) + under 1 byte of slab header (8 per >= 16 nodes)
 *     rc_room           56 bytes + strlen(name) + 1, one malloc, plus 8-32 bytes of bucket
 *                       array (hmap load between 1/4 and 1)
 *     rc_room_member    16 bytes, embedded in the owner
 * (the _Static_asserts below pin these on LP64; test/bench/micro_rooms.c measures the heap:
 * 48.2 bytes per membership in one 100k-member room, 48.4 with 1,000 rooms of ~400, 52.3 with
 * 10,000 rooms of ~20, rooms and buckets included.)
 *
 * Callbacks: on_room_open fires after the room is in the map and the first member is linked, so
 * the callback sees rc_rooms_find(name) with size 1. on_room_close fires after the last member is
 * unlinked and the room removed from the map, so a join from inside it makes a new room (and a new
 * on_room_open). The name argument is the room's own storage, valid during the call only.
 *
 * Iteration: rc_room_foreach raises room->busy. While a room is busy, a leave unlinks the node
 * from the member's list and counts it out of rc_room_size at once, but only marks it in the room
 * list (member = NULL); the walk skips such nodes and the outermost foreach sweeps them back to
 * the free list when it ends. So the walk's next pointer is always valid, whoever leaves. If the
 * room empties while busy it is removed from the map and on_room_close fires at once, as usual; the
 * struct itself is freed when the outermost foreach returns. Members that join during a walk are
 * linked at the head and are not visited by that walk. (rooms.h only promises that the visited
 * member may leave; this implementation also survives others leaving and nested walks.)
 *
 * Not done here: no locking (one loop thread per rc_rooms), no ordering guarantee between members,
 * no emission; the caller walks a room and queues one shared frame per member.
 */
#include "roomcast/rooms.h"

#include "roomcast/common.h"
#include "roomcast/hmap.h"

#include <assert.h>
#include <stdint.h>

#define SLAB_FIRST 16u
#define SLAB_MAX 1024u

struct rc_membership {
    struct rc_membership *room_prev;
    struct rc_membership *room_next;   /* also the free-list link */
    struct rc_membership *member_prev;
    struct rc_membership *member_next;
    rc_room *room;
    rc_room_member *member;            /* NULL: left while the room was busy, awaiting sweep */
};

struct rc_room {
    rc_hmap_node node;                 /* key = name */
    rc_rooms *owner;
    struct rc_membership *first;
    size_t size;                       /* live members */
    unsigned busy;                     /* nesting depth of rc_room_foreach */
    unsigned zombies;                  /* marked nodes still in the room list */
    char name[];
};

#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(sizeof(struct rc_membership) == 48, "design note: 48 bytes per membership");
_Static_assert(sizeof(struct rc_room) == 56, "design note: 56-byte room header");
_Static_assert(sizeof(rc_room_member) == 16, "design note: 16-byte rc_room_member");
#endif

typedef struct rc_slab {
    struct rc_slab *next;
    struct rc_membership nodes[];
} rc_slab;

struct rc_rooms {
    rc_hmap map;
    rc_rooms_callbacks cb;
    struct rc_membership *free;
    rc_slab *slabs;
    size_t next_slab;                  /* node count of the next slab */
    size_t memberships;                /* live memberships, all rooms (rc_rooms_membership_count) */
};

/* ---- node pool ------------------------------------------------------------------------------ */

static struct rc_membership *node_get(rc_rooms *rs)
{
    if (!rs->free) {
        size_t n = rs->next_slab;
        rc_slab *s = rc_malloc(sizeof(*s) + n * sizeof(s->nodes[0]));
        s->next = rs->slabs;
        rs->slabs = s;
        for (size_t i = n; i-- > 0;) {
            s->nodes[i].room_next = rs->free;
            rs->free = &s->nodes[i];
        }
        if (rs->next_slab < SLAB_MAX)
            rs->next_slab *= 2;
    }
    struct rc_membership *ms = rs->free;
    rs->free = ms->room_next;
    return ms;
}

static void node_put(rc_rooms *rs, struct rc_membership *ms)
{
    ms->room_next = rs->free;
    rs->free = ms;
}

/* ---- list links ----------------------------------------------------------------------------- */

static void room_list_unlink(rc_room *room, struct rc_membership *ms)
{
    if (ms->room_prev)
        ms->room_prev->room_next = ms->room_next;
    else
        room->first = ms->room_next;
    if (ms->room_next)
        ms->room_next->room_prev = ms->room_prev;
}

static void member_list_unlink(rc_room_member *m, struct rc_membership *ms)
{
    if (ms->member_prev)
        ms->member_prev->member_next = ms->member_next;
    else
        m->first = ms->member_next;
    if (ms->member_next)
        ms->member_next->member_prev = ms->member_prev;
}

/* ---- rooms ---------------------------------------------------------------------------------- */

static rc_room *room_lookup(const rc_rooms *rs, const char *name, size_t len)
{
    rc_hmap_node *n = rc_hmap_find(&rs->map, name, len);
    return n ? RC_CONTAINER_OF(n, rc_room, node) : NULL;
}

/* Called when the last live member has left: out of the map, then on_room_close, then free
 * unless a foreach still stands in the room (that foreach frees it on return). */
static void room_close(rc_rooms *rs, rc_room *room)
{
    rc_hmap_remove(&rs->map, &room->node);
    if (rs->cb.on_room_close)
        rs->cb.on_room_close(rs->cb.arg, room->name);
    if (room->busy == 0) {
        assert(room->zombies == 0);
        rc_free(room);
    }
}

/* The outermost foreach has returned: sweep marked nodes, free the room if it was closed. */
static void room_settle(rc_room *room)
{
    rc_rooms *rs = room->owner;

    if (room->zombies) {
        struct rc_membership *ms = room->first;
        while (ms && room->zombies) {
            struct rc_membership *next = ms->room_next;
            if (!ms->member) {
                room_list_unlink(room, ms);
                node_put(rs, ms);
                room->zombies--;
            }
            ms = next;
        }
        assert(room->zombies == 0);
    }
    /* A room with no live member was already removed from the map by room_close; nothing can
     * join it again, so size 0 here means closed. */
    if (room->size == 0)
        rc_free(room);
}

/* Finds m's node in room by walking the shorter of the two lists: O(min(m->count, nodes in the
 * room)), one node touched per step. */
static struct rc_membership *membership_find(const rc_room *room, const rc_room_member *m)
{
    if (m->count <= room->size + room->zombies) {
        for (struct rc_membership *ms = m->first; ms; ms = ms->member_next) {
            if (ms->room == room)
                return ms;
        }
    } else {
        for (struct rc_membership *ms = room->first; ms; ms = ms->room_next) {
            if (ms->member == m)
                return ms;
        }
    }
    return NULL;
}

static void membership_drop(rc_rooms *rs, struct rc_membership *ms)
{
    rc_room *room = ms->room;
    rc_room_member *m = ms->member;

    member_list_unlink(m, ms);
    m->count--;
    room->size--;
    rs->memberships--;
    if (room->busy) {
        ms->member = NULL;
        room->zombies++;
    } else {
        room_list_unlink(room, ms);
        node_put(rs, ms);
    }
    if (room->size == 0)
        room_close(rs, room);
}

/* ---- public --------------------------------------------------------------------------------- */

rc_rooms *rc_rooms_new(const rc_rooms_callbacks *cb)
{
    rc_rooms *rs = rc_calloc(1, sizeof(*rs));
    if (cb)
        rs->cb = *cb;
    rs->next_slab = SLAB_FIRST;
    return rs;
}

void rc_rooms_free(rc_rooms *rs)
{
    if (!rs)
        return;
    /* Members still present are detached (reset to all-zero) rather than left dangling; no
     * on_room_close fires here. */
    rc_hmap_node *n = rc_hmap_first(&rs->map);
    while (n) {
        rc_hmap_node *next = rc_hmap_next(&rs->map, n);
        rc_room *room = RC_CONTAINER_OF(n, rc_room, node);
        assert(room->busy == 0 && "rc_rooms_free from inside rc_room_foreach");
        for (struct rc_membership *ms = room->first; ms; ms = ms->room_next) {
            if (ms->member) {
                ms->member->first = NULL;
                ms->member->count = 0;
            }
        }
        rc_free(room);
        n = next;
    }
    rc_hmap_dispose(&rs->map);
    while (rs->slabs) {
        rc_slab *s = rs->slabs;
        rs->slabs = s->next;
        rc_free(s);
    }
    rc_free(rs);
}

int rc_rooms_join(rc_rooms *rs, rc_room_member *m, const char *name)
{
    size_t len = strlen(name);
    rc_room *room = room_lookup(rs, name, len);
    int created = 0;

    if (room) {
        if (membership_find(room, m))
            return 0;
    } else {
        room = rc_malloc(sizeof(*room) + len + 1);
        room->owner = rs;
        room->first = NULL;
        room->size = 0;
        room->busy = 0;
        room->zombies = 0;
        memcpy(room->name, name, len + 1);
        rc_hmap_insert(&rs->map, &room->node, room->name, len);
        created = 1;
    }

    struct rc_membership *ms = node_get(rs);
    ms->room = room;
    ms->member = m;
    ms->room_prev = NULL;
    ms->room_next = room->first;
    if (room->first)
        room->first->room_prev = ms;
    room->first = ms;
    room->size++;
    ms->member_prev = NULL;
    ms->member_next = m->first;
    if (m->first)
        m->first->member_prev = ms;
    m->first = ms;
    m->count++;
    rs->memberships++;

    if (created && rs->cb.on_room_open)
        rs->cb.on_room_open(rs->cb.arg, room->name);
    return 1;
}

int rc_rooms_leave(rc_rooms *rs, rc_room_member *m, const char *name)
{
    rc_room *room = room_lookup(rs, name, strlen(name));
    struct rc_membership *ms = room ? membership_find(room, m) : NULL;

    if (!ms)
        return 0;
    membership_drop(rs, ms);
    return 1;
}

void rc_rooms_leave_all(rc_rooms *rs, rc_room_member *m)
{
    while (m->first)
        membership_drop(rs, m->first);
}

int rc_rooms_is_member(const rc_rooms *rs, const rc_room_member *m, const char *name)
{
    const rc_room *room = room_lookup(rs, name, strlen(name));
    return room && membership_find(room, m) != NULL;
}

rc_room *rc_rooms_find(const rc_rooms *rs, const char *name)
{
    return room_lookup(rs, name, strlen(name));
}

void rc_rooms_foreach_name(const rc_rooms *rs, void (*fn)(void *arg, const char *room), void *arg)
{
    for (rc_hmap_node *h = rc_hmap_first(&rs->map); h; h = rc_hmap_next(&rs->map, h)) {
        const rc_room *room = RC_CONTAINER_OF(h, rc_room, node);
        if (room->size) fn(arg, room->name);
    }
}

size_t rc_room_size(const rc_room *room)
{
    return room->size;
}

const char *rc_room_name(const rc_room *room)
{
    return room->name;
}

size_t rc_rooms_count(const rc_rooms *rs)
{
    return rs->map.count;
}

size_t rc_rooms_membership_count(const rc_rooms *rs)
{
    return rs->memberships;
}

void rc_room_foreach(rc_room *room, rc_room_visit_fn fn, void *arg)
{
    room->busy++;
    for (struct rc_membership *ms = room->first; ms; ms = ms->room_next) {
        if (ms->member)
            fn(arg, ms->member);
    }
    if (--room->busy == 0)
        room_settle(room);
}

void rc_member_foreach_room(const rc_room_member *m, void (*fn)(void *arg, const char *room), void *arg)
{
    for (const struct rc_membership *ms = m->first; ms; ms = ms->member_next)
        fn(arg, ms->room->name);
}
