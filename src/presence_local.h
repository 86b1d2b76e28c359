/*
 * presence_local.h: the embedded store of presence (src/presence_local.c): for a node running
 * without Redis, what Redis holds in Redis mode, in memory: the tracked rooms with each user's
 * connection count, and the set of invisible users. Used by src/presence.c and
 * src/presence_events.c only, in embedded mode; Redis mode never touches it.
 *
 * A plain data structure: it fires no events and keeps no pointer to the presence. Its calls
 * report transitions (a user joined or left a room as a whole, a visibility that changed) and
 * presence_events.c turns them into deferred events, as the scripts' replies are in Redis mode.
 *
 * Ownership: the store owns every entry and the strings in them; it copies what it is given.
 * All-zero is a valid empty store; pr_local__dispose frees it.
 */
#ifndef ROOMCAST_PRESENCE_LOCAL_H
#define ROOMCAST_PRESENCE_LOCAL_H

#include "roomcast/hmap.h"

#include <stddef.h>

typedef struct pr_local {
    rc_hmap rooms;       /* "<ns>\0<room>" -> pr_room, with its users */
    rc_hmap room_users;  /* "<ns>\0<room>\0<user>" -> pr_room_user {count} */
    rc_hmap invisible;   /* user -> pr_name: users who appear offline (outlives connections) */
    char *key;           /* scratch for building keys */
    size_t key_cap;
} pr_local;

/* Frees every entry; the store is empty (all-zero) again. */
void pr_local__dispose(pr_local *st);

/* 1 when user is in the invisible set. */
int pr_local__invisible(const pr_local *st, const char *user);
/* Adds user to the invisible set (invisible 1) or removes them (0): 1 when that changed it. */
int pr_local__set_invisible(pr_local *st, const char *user, int invisible);

/* One connection of user enters (delta +1) or leaves (-1) the tracked room ns/room. Returns 1
 * when user joined it as a whole (their first connection in it), -1 when they left it as a
 * whole (their last one), else 0. A leave that was never entered is a no-op (0). */
int pr_local__count(pr_local *st, const char *ns, const char *room, const char *user, int delta);

/* The users in ns/room, unsorted: an array of *n strings, which the caller frees with rc_free
 * (the strings stay the store's: valid until its next change). Never NULL. */
const char **pr_local__members(pr_local *st, const char *ns, const char *room, size_t *n);

#endif
