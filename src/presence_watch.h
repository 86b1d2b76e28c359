/*
 * presence_watch.h: who watches whose status, for presence (src/presence.c and
 * src/presence_events.c; implementation: src/presence_watch.c). A two-way index, watcher id <->
 * user, that keeps per watched user the last state its watchers were told, and in Redis mode
 * one subscription to P:status:<user> per watched user (refcounted by its watchers, through the
 * backplane's raw channels).
 *
 * Watcher ids are the node's (nonzero, e.g. a socket serial) and are never dereferenced.
 * Ownership: the index owns its entries and copies the strings it is given; rc_presence embeds
 * it (src/presence_internal.h). All-zero is a valid empty index with no subscriptions;
 * pr_watches__dispose frees it (closing its subscriptions).
 *
 * API in call order: set bp and status_prefix (Redis mode) -> add / remove / remove_all per
 * watcher, news per status change -> dispose.
 */
#ifndef ROOMCAST_PRESENCE_WATCH_H
#define ROOMCAST_PRESENCE_WATCH_H

#include "roomcast/hmap.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rc_backplane rc_backplane;

typedef struct pr_watches {
    rc_backplane *bp;           /* Redis mode: subscribes status_prefix + user per watched user */
    const char *status_prefix;  /* "P:status:", the owner's string; NULL: no subscriptions */
    rc_hmap watched;            /* user -> pr_watched; the key is the user id, NUL-terminated */
    rc_hmap watchers;           /* the 8 bytes of a watcher id -> pr_watcher */
    rc_hmap watches;            /* id bytes + user -> pr_watch, linked into both of the above */
    char *key;                  /* scratch for building keys */
    size_t key_cap;
    uint64_t *ids;              /* scratch: the ids pr_watches__news returns */
    size_t ids_cap;
} pr_watches;

/* watcher now watches user. 1: added (the first watcher of user subscribes their channel);
 * 0: it already did; -1: refused, watcher already watches max users. */
int pr_watches__add(pr_watches *ws, uint64_t watcher, const char *user, size_t max);
/* watcher no longer watches user (the last watcher of user unsubscribes): 1, or 0 when it did
 * not watch them. */
int pr_watches__remove(pr_watches *ws, uint64_t watcher, const char *user);
/* Everything watcher watches: returns how many watches were removed. */
size_t pr_watches__remove_all(pr_watches *ws, uint64_t watcher);

/* user is online (1) or offline (0) as of ts (ms; 0: unknown). When that is news for user's
 * watchers, returns their ids (*n >= 1) and remembers it: not the state they were last told
 * and, when ordered, not older than what told them (a status published before a read-back
 * that already told them). NULL when it is not news, or nobody watches user. The array is the
 * index's scratch, valid until the next pr_watches__news (add and remove leave it alone, so a
 * callback handed it may unwatch). */
const uint64_t *pr_watches__news(pr_watches *ws, const char *user, int online, uint64_t ts,
                                 int ordered, size_t *n);

/* Frees every entry and closes every subscription; the index is empty (all-zero) again. */
void pr_watches__dispose(pr_watches *ws);

#endif
