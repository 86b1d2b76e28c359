/*
 * deadline.c: the binary min-heap of include/roomcast/deadline.h.
 *
 * Layout: items[0..count) in heap order by `at`; entry i's link has slot i + 1, updated on every
 * move, which is what makes rc_deadline_remove O(log n). The array doubles when full, halves
 * when a quarter full (above a small floor), and is freed when the heap empties, so a node whose
 * sockets carry no expiring token holds no array at all.
 *
 * What it does not do: own or free the objects, keep equal deadlines in insertion order, or run
 * a timer (the caller arms one for rc_deadline_next and drains rc_deadline_pop_due).
 */
#include "roomcast/deadline.h"
#include "roomcast/common.h"

#include <assert.h>

#define DEADLINE_MIN_CAP 16

static void heap_place(rc_deadline_heap *h, uint32_t i, rc_deadline_entry e)
{
    h->items[i] = e;
    e.link->slot = i + 1;
}

/* Moves the entry at i towards the root while it is earlier than its parent. */
static void heap_sift_up(rc_deadline_heap *h, uint32_t i)
{
    rc_deadline_entry e = h->items[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->items[parent].at <= e.at) break;
        heap_place(h, i, h->items[parent]);
        i = parent;
    }
    heap_place(h, i, e);
}

/* Moves the entry at i towards the leaves while a child is earlier. */
static void heap_sift_down(rc_deadline_heap *h, uint32_t i)
{
    rc_deadline_entry e = h->items[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->count) break;
        if (child + 1 < h->count && h->items[child + 1].at < h->items[child].at) child++;
        if (e.at <= h->items[child].at) break;
        heap_place(h, i, h->items[child]);
        i = child;
    }
    heap_place(h, i, e);
}

static void heap_shrink(rc_deadline_heap *h)
{
    if (h->count == 0) {
        rc_free(h->items);
        h->items = NULL;
        h->cap = 0;
    } else if (h->cap > DEADLINE_MIN_CAP && h->count < h->cap / 4) {
        h->cap /= 2;
        h->items = rc_realloc(h->items, h->cap * sizeof(*h->items));
    }
}

void rc_deadline_add(rc_deadline_heap *h, rc_deadline_link *link, int64_t at)
{
    assert(link->slot == 0);
    if (h->count == h->cap) {
        h->cap = h->cap ? h->cap * 2 : DEADLINE_MIN_CAP;
        h->items = rc_realloc(h->items, h->cap * sizeof(*h->items));
    }
    uint32_t i = h->count++;
    h->items[i] = (rc_deadline_entry){at, link};
    heap_sift_up(h, i);
}

void rc_deadline_remove(rc_deadline_heap *h, rc_deadline_link *link)
{
    if (link->slot == 0) return;
    uint32_t i = link->slot - 1;
    assert(i < h->count && h->items[i].link == link);
    link->slot = 0;
    uint32_t last = --h->count;
    if (i != last) {
        /* The last entry fills the hole; it may belong above or below it. */
        int64_t removed_at = h->items[i].at;
        h->items[i] = h->items[last];
        if (h->items[i].at < removed_at) heap_sift_up(h, i);
        else heap_sift_down(h, i);
    }
    heap_shrink(h);
}

int64_t rc_deadline_next(const rc_deadline_heap *h)
{
    return h->count ? h->items[0].at : INT64_MAX;
}

rc_deadline_link *rc_deadline_pop_due(rc_deadline_heap *h, int64_t now)
{
    if (h->count == 0 || h->items[0].at > now) return NULL;
    rc_deadline_link *link = h->items[0].link;
    rc_deadline_remove(h, link);
    return link;
}

void rc_deadline_heap_dispose(rc_deadline_heap *h)
{
    rc_free(h->items);
    h->items = NULL;
    h->count = h->cap = 0;
}
