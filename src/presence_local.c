/*
 * presence_local.c: the embedded store of presence: tracked rooms with per-user connection
 * counts, and the invisible set, in memory, for a node without Redis. Contract:
 * src/presence_local.h. The same semantics as the Redis keys P:members:<ns>:<room> and
 * P:invisible (docs/redis.md, "Presence"), for a single node: presence (src/presence.c,
 * src/presence_events.c) calls it where it would run a script in Redis mode, and turns what it
 * reports into the same events.
 *
 * Entries: a room (pr_room) lists its users (pr_room_user, also found by "<ns>\0<room>\0<user>")
 * and frees itself with its last user; a user's count is the number of their connections in the
 * room, so joined and left are reported with the first and the last one.
 */
#include "presence_local.h"

#include "roomcast/common.h"

#include <string.h>

typedef struct pr_room pr_room;

typedef struct pr_room_user {
    rc_hmap_node node;                 /* st->room_users, key "<ns>\0<room>\0<user>" */
    pr_room *room;
    struct pr_room_user *next, *prev;  /* in room->users */
    size_t count;                      /* the user's connections in the room */
    const char *user;                  /* into key */
    char key[];
} pr_room_user;

struct pr_room {
    rc_hmap_node node;                 /* st->rooms, key "<ns>\0<room>" */
    pr_room_user *users;
    size_t nusers;
    char key[];
};

typedef struct pr_name {
    rc_hmap_node node;                 /* st->invisible */
    char s[];
} pr_name;

/* "<ns>\0<room>" or "<ns>\0<room>\0<user>" into st->key; returns its length. */
static size_t room_key(pr_local *st, const char *ns, const char *room, const char *user)
{
    size_t a = strlen(ns), b = strlen(room), c = user ? strlen(user) : 0;
    size_t n = a + 1 + b + (user ? 1 + c : 0);
    if (n + 1 > st->key_cap) {
        st->key_cap = n + 256;
        st->key = rc_realloc(st->key, st->key_cap);
    }
    memcpy(st->key, ns, a + 1);
    memcpy(st->key + a + 1, room, b + 1);
    if (user) memcpy(st->key + a + 1 + b + 1, user, c + 1);
    return n;
}

static pr_room *room_find(const pr_local *st, const char *key, size_t len)
{
    rc_hmap_node *n = rc_hmap_find(&st->rooms, key, len);
    return n ? RC_CONTAINER_OF(n, pr_room, node) : NULL;
}

int pr_local__count(pr_local *st, const char *ns, const char *room, const char *user, int delta)
{
    size_t klen = room_key(st, ns, room, user);
    rc_hmap_node *n = rc_hmap_find(&st->room_users, st->key, klen);
    pr_room_user *ru = n ? RC_CONTAINER_OF(n, pr_room_user, node) : NULL;
    if (delta > 0) {
        if (ru) {
            ru->count++;
            return 0;
        }
        ru = rc_calloc(1, sizeof(*ru) + klen + 1);
        memcpy(ru->key, st->key, klen + 1);
        ru->user = ru->key + strlen(ns) + 1 + strlen(room) + 1;
        ru->count = 1;
        rc_hmap_insert(&st->room_users, &ru->node, ru->key, klen);
        size_t rlen = strlen(ns) + 1 + strlen(room);
        pr_room *r = room_find(st, ru->key, rlen);
        if (!r) {
            r = rc_calloc(1, sizeof(*r) + rlen + 1);
            memcpy(r->key, ru->key, rlen + 1);
            rc_hmap_insert(&st->rooms, &r->node, r->key, rlen);
        }
        ru->room = r;
        ru->next = r->users;
        if (r->users) r->users->prev = ru;
        r->users = ru;
        r->nusers++;
        return 1;
    }
    if (!ru || --ru->count > 0) return 0;
    pr_room *r = ru->room;
    rc_hmap_remove(&st->room_users, &ru->node);
    if (ru->prev) ru->prev->next = ru->next;
    else r->users = ru->next;
    if (ru->next) ru->next->prev = ru->prev;
    rc_free(ru);
    if (--r->nusers == 0) {
        rc_hmap_remove(&st->rooms, &r->node);
        rc_free(r);
    }
    return -1;
}

const char **pr_local__members(pr_local *st, const char *ns, const char *room, size_t *n)
{
    size_t klen = room_key(st, ns, room, NULL);
    pr_room *r = room_find(st, st->key, klen);
    size_t total = r ? r->nusers : 0;
    const char **users = rc_malloc((total ? total : 1) * sizeof(*users));
    *n = 0;
    for (pr_room_user *ru = r ? r->users : NULL; ru; ru = ru->next) users[(*n)++] = ru->user;
    return users;
}

int pr_local__invisible(const pr_local *st, const char *user)
{
    return rc_hmap_find(&st->invisible, user, strlen(user)) != NULL;
}

int pr_local__set_invisible(pr_local *st, const char *user, int invisible)
{
    size_t ul = strlen(user);
    rc_hmap_node *n = rc_hmap_find(&st->invisible, user, ul);
    if (!invisible == !n) return 0; /* no change */
    if (n) {
        pr_name *e = RC_CONTAINER_OF(n, pr_name, node);
        rc_hmap_remove(&st->invisible, &e->node);
        rc_free(e);
    } else {
        pr_name *e = rc_calloc(1, sizeof(*e) + ul + 1);
        memcpy(e->s, user, ul + 1);
        rc_hmap_insert(&st->invisible, &e->node, e->s, ul);
    }
    return 1;
}

void pr_local__dispose(pr_local *st)
{
    rc_hmap_free_all(&st->room_users);
    rc_hmap_free_all(&st->rooms);
    rc_hmap_free_all(&st->invisible);
    rc_free(st->key);
    memset(st, 0, sizeof(*st));
}
