/*
 * deadline.h: a binary min-heap of deadlines, for the many objects that share one timer (the
 * Socket.IO server keeps the sockets whose token expires in one, driven by a single event).
 *
 * Each object that may be queued embeds an rc_deadline_link; the heap holds (deadline, link)
 * pairs and keeps every queued link's slot up to date, so removal is O(log n) without a search,
 * and container-of leads from a link back to its object. An object that is never queued costs
 * its link (4 bytes) and nothing else. Deadlines are plain integers in whatever unit the caller
 * picks (sio uses wall-clock seconds); equal deadlines are allowed and come out in no particular
 * order.
 *
 * Ownership: the heap owns its entry array and nothing else; it never frees an object. An entry
 * leaves the heap in exactly one of two ways: rc_deadline_pop_due hands it to the caller, or the
 * object's owner calls rc_deadline_remove before freeing the object (a no-op when the link is not
 * queued). All-zero rc_deadline_heap and rc_deadline_link are valid empty states.
 *
 * API in call order: (zeroed heap) -> rc_deadline_add / rc_deadline_remove / rc_deadline_next /
 * rc_deadline_pop_due -> rc_deadline_heap_dispose.
 */
#ifndef ROOMCAST_DEADLINE_H
#define ROOMCAST_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_deadline_link {
    uint32_t slot;                 /* 0: not queued; else the entry's index + 1 */
} rc_deadline_link;

typedef struct rc_deadline_entry {
    int64_t at;
    rc_deadline_link *link;
} rc_deadline_entry;

typedef struct rc_deadline_heap {
    rc_deadline_entry *items;      /* items[0] is the earliest */
    uint32_t count, cap;
} rc_deadline_heap;

/* Queues link for deadline `at`. The link must not be queued already. */
void rc_deadline_add(rc_deadline_heap *h, rc_deadline_link *link, int64_t at);
/* Takes link out of the heap; nothing happens when it is not queued. */
void rc_deadline_remove(rc_deadline_heap *h, rc_deadline_link *link);
static inline int rc_deadline_queued(const rc_deadline_link *link) { return link->slot != 0; }
/* The earliest deadline, or INT64_MAX when the heap is empty. */
int64_t rc_deadline_next(const rc_deadline_heap *h);
/* Removes and returns the link with the earliest deadline if that deadline is <= now (its slot
 * is 0 again when it comes back), else NULL. */
rc_deadline_link *rc_deadline_pop_due(rc_deadline_heap *h, int64_t now);
static inline uint32_t rc_deadline_count(const rc_deadline_heap *h) { return h->count; }
/* Frees the entry array. Links still queued are left pointing at nothing: empty it first. */
void rc_deadline_heap_dispose(rc_deadline_heap *h);

#endif
