/*
 * presence_watch.c: the watchers of presence: which watcher ids watch which users, the last
 * status each watched user's watchers were told, and in Redis mode the P:status:<user>
 * subscription per watched user. Contract: src/presence_watch.h; used by src/presence.c (the
 * watch calls) and src/presence_events.c, which hands the ids that pr_watches__news returns to
 * the node's on_status.
 *
 * Entries: a pr_watch is one (watcher, user) pair, found by its key (the id's 8 bytes, then the
 * user id) and linked into the lists of its pr_watched (the user) and its pr_watcher, so both
 * "who watches u" and "what does w watch" are walks of a list. A pr_watched or a
 * pr_watcher is freed with its last pr_watch; the pr_watched closes its subscription then.
 */
#include "presence_watch.h"

#include "roomcast/common.h"
#include "roomcast/redis_cmd.h"

#include <string.h>

typedef struct pr_watch pr_watch;

typedef struct pr_watched {
    rc_hmap_node node;            /* ws->watched, key user */
    pr_watch *list;
    size_t n;
    int known;                    /* last state handed to the watchers or read back: -1 unknown */
    uint64_t known_ts;            /* time of that knowledge (ms; Redis TIME in Redis mode) */
    char *channel;                /* P:status:<user> while subscribed (Redis mode) */
    char id[];
} pr_watched;

typedef struct pr_watcher {
    rc_hmap_node node;            /* ws->watchers, key the 8 bytes of id */
    pr_watch *list;
    size_t n;
    uint64_t id;
} pr_watcher;

struct pr_watch {
    rc_hmap_node node;            /* ws->watches, key id bytes + user */
    pr_watched *u;
    pr_watcher *w;
    pr_watch *unext, *uprev, *wnext, *wprev;
    char key[];
};

static pr_watcher *watcher_find(const pr_watches *ws, uint64_t id)
{
    rc_hmap_node *n = rc_hmap_find(&ws->watchers, (const char *)&id, sizeof(id));
    return n ? RC_CONTAINER_OF(n, pr_watcher, node) : NULL;
}

static pr_watched *watched_find(const pr_watches *ws, const char *user)
{
    rc_hmap_node *n = rc_hmap_find(&ws->watched, user, strlen(user));
    return n ? RC_CONTAINER_OF(n, pr_watched, node) : NULL;
}

/* The (watcher, user) key into ws->key: the id's 8 bytes, then the user id. */
static size_t watch_key(pr_watches *ws, uint64_t id, const char *user)
{
    size_t ul = strlen(user), n = sizeof(id) + ul;
    if (n + 1 > ws->key_cap) {
        ws->key_cap = n + 256;
        ws->key = rc_realloc(ws->key, ws->key_cap);
    }
    memcpy(ws->key, &id, sizeof(id));
    memcpy(ws->key + sizeof(id), user, ul);
    return n;
}

int pr_watches__add(pr_watches *ws, uint64_t watcher, const char *user, size_t max)
{
    size_t klen = watch_key(ws, watcher, user);
    if (rc_hmap_find(&ws->watches, ws->key, klen)) return 0;
    pr_watcher *w = watcher_find(ws, watcher);
    if (w && w->n >= max) return -1;
    if (!w) {
        w = rc_calloc(1, sizeof(*w));
        w->id = watcher;
        rc_hmap_insert(&ws->watchers, &w->node, (const char *)&w->id, sizeof(w->id));
    }
    pr_watched *u = watched_find(ws, user);
    if (!u) {
        size_t ul = strlen(user);
        u = rc_calloc(1, sizeof(*u) + ul + 1);
        memcpy(u->id, user, ul + 1);
        u->known = -1;
        rc_hmap_insert(&ws->watched, &u->node, u->id, ul);
        if (ws->status_prefix) {
            size_t pl = strlen(ws->status_prefix);
            u->channel = rc_malloc(pl + ul + 1);
            memcpy(u->channel, ws->status_prefix, pl);
            memcpy(u->channel + pl, user, ul + 1);
            rc_redis_channel_open(ws->bp, u->channel);
        }
    }
    pr_watch *x = rc_calloc(1, sizeof(*x) + klen);
    memcpy(x->key, ws->key, klen);
    x->u = u;
    x->w = w;
    x->unext = u->list;
    if (u->list) u->list->uprev = x;
    u->list = x;
    u->n++;
    x->wnext = w->list;
    if (w->list) w->list->wprev = x;
    w->list = x;
    w->n++;
    rc_hmap_insert(&ws->watches, &x->node, x->key, klen);
    return 1;
}

static void watch_remove(pr_watches *ws, pr_watch *x)
{
    pr_watched *u = x->u;
    pr_watcher *w = x->w;
    rc_hmap_remove(&ws->watches, &x->node);
    if (x->uprev) x->uprev->unext = x->unext;
    else u->list = x->unext;
    if (x->unext) x->unext->uprev = x->uprev;
    if (x->wprev) x->wprev->wnext = x->wnext;
    else w->list = x->wnext;
    if (x->wnext) x->wnext->wprev = x->wprev;
    rc_free(x);
    if (--u->n == 0) {
        rc_hmap_remove(&ws->watched, &u->node);
        if (u->channel) rc_redis_channel_close(ws->bp, u->channel);
        rc_free(u->channel);
        rc_free(u);
    }
    if (--w->n == 0) {
        rc_hmap_remove(&ws->watchers, &w->node);
        rc_free(w);
    }
}

int pr_watches__remove(pr_watches *ws, uint64_t watcher, const char *user)
{
    size_t klen = watch_key(ws, watcher, user);
    rc_hmap_node *n = rc_hmap_find(&ws->watches, ws->key, klen);
    if (!n) return 0;
    watch_remove(ws, RC_CONTAINER_OF(n, pr_watch, node));
    return 1;
}

size_t pr_watches__remove_all(pr_watches *ws, uint64_t watcher)
{
    pr_watcher *w = watcher_find(ws, watcher);
    size_t removed = 0;
    while (w && w->list) {
        int last = w->n == 1; /* the last removal frees w */
        watch_remove(ws, w->list);
        removed++;
        if (last) break;
    }
    return removed;
}

const uint64_t *pr_watches__news(pr_watches *ws, const char *user, int online, uint64_t ts,
                                 int ordered, size_t *n)
{
    pr_watched *u = watched_find(ws, user);
    if (!u) return NULL;
    if (ordered && ts && ts < u->known_ts) return NULL;
    if (ts > u->known_ts) u->known_ts = ts;
    if (u->known == online) return NULL;
    u->known = online;
    if (u->n > ws->ids_cap) {
        ws->ids_cap = u->n + 16;
        rc_free(ws->ids);
        ws->ids = rc_malloc(ws->ids_cap * sizeof(*ws->ids));
    }
    *n = 0;
    for (pr_watch *x = u->list; x; x = x->unext) ws->ids[(*n)++] = x->w->id;
    return ws->ids;
}

void pr_watches__dispose(pr_watches *ws)
{
    for (rc_hmap_node *n = rc_hmap_first(&ws->watched); n; n = rc_hmap_next(&ws->watched, n)) {
        pr_watched *u = RC_CONTAINER_OF(n, pr_watched, node);
        if (u->channel) rc_redis_channel_close(ws->bp, u->channel);
        rc_free(u->channel);
    }
    rc_hmap_free_all(&ws->watches);
    rc_hmap_free_all(&ws->watchers);
    rc_hmap_free_all(&ws->watched);
    rc_free(ws->key);
    rc_free(ws->ids);
    memset(ws, 0, sizeof(*ws));
}
