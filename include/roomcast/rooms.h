/*
 * rooms.h: the local room index of one namespace: room -> members and member -> rooms, updated
 * together, O(1) join and leave, a room freed when its last member leaves.
 *
 * A member is an rc_room_member embedded in the owner's struct (the Socket.IO socket); the index
 * never allocates or frees members, and container-of leads from a member back to its owner.
 * Each membership is one small node taken from a free list (no malloc per join in steady state).
 *
 * on_room_open fires when a room gets its first member, on_room_close after its last member left
 * (the backplane subscribes and unsubscribes the room's channel from these). Both receive the
 * room name, valid only during the call.
 *
 * Iteration: rc_room_foreach visits each member once. The callback may make the visited member
 * leave rooms (including this one) or leave all rooms; it must not remove *other* members.
 */
#ifndef ROOMCAST_ROOMS_H
#define ROOMCAST_ROOMS_H

#include <stddef.h>

typedef struct rc_rooms rc_rooms;
typedef struct rc_room rc_room;
struct rc_membership;

typedef struct rc_room_member {
    struct rc_membership *first;   /* this member's memberships; all-zero = in no room */
    unsigned count;
} rc_room_member;

typedef struct rc_rooms_callbacks {
    void (*on_room_open)(void *arg, const char *room);
    void (*on_room_close)(void *arg, const char *room);
    void *arg;
} rc_rooms_callbacks;

rc_rooms *rc_rooms_new(const rc_rooms_callbacks *cb);   /* cb may be NULL */
/* All members must have left (rc_rooms_leave_all) before. */
void rc_rooms_free(rc_rooms *rooms);

/* 1 joined, 0 already a member. */
int rc_rooms_join(rc_rooms *rooms, rc_room_member *m, const char *room);
/* 1 left, 0 was not a member. */
int rc_rooms_leave(rc_rooms *rooms, rc_room_member *m, const char *room);
void rc_rooms_leave_all(rc_rooms *rooms, rc_room_member *m);
int rc_rooms_is_member(const rc_rooms *rooms, const rc_room_member *m, const char *room);

rc_room *rc_rooms_find(const rc_rooms *rooms, const char *room);
size_t rc_room_size(const rc_room *room);
const char *rc_room_name(const rc_room *room);
size_t rc_rooms_count(const rc_rooms *rooms);   /* rooms with at least one member */
/* Live memberships, all rooms together (a member in 3 rooms counts 3). The index enforces no
 * total itself: the Socket.IO server checks its budgets (limits.maxRooms, maxMemberships) first. */
size_t rc_rooms_membership_count(const rc_rooms *rooms);

typedef void (*rc_room_visit_fn)(void *arg, rc_room_member *m);
void rc_room_foreach(rc_room *room, rc_room_visit_fn fn, void *arg);
/* Visits the name of every room with at least one member (the callback must not change
 * memberships). */
void rc_rooms_foreach_name(const rc_rooms *rooms, void (*fn)(void *arg, const char *room), void *arg);
/* Visits the names of the rooms a member is in (the callback must not change memberships). */
void rc_member_foreach_room(const rc_room_member *m, void (*fn)(void *arg, const char *room), void *arg);

#endif
