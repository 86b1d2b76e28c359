/*
 * presence_events.c: the bottom of presence's own files (the list: src/presence_internal.h):
 * the pr_req objects every other part builds and lists, and what reaches the node from the
 * loop. Contract: src/presence_internal.h; the callbacks' contract: include/roomcast/presence.h.
 *
 * Deferred events: every callback that does not answer a Redis reply (the embedded mode's
 * status changes, members and answers; a refusal while Redis is down; on_drained) is queued in
 * p->deferred and run by p->defer_ev, so the node is never called back from inside its own
 * call. Status news goes through the watch index (presence_watch.c), which drops repeats of
 * what the watchers were last told; member lists are sorted and capped here for both modes.
 *
 * What it does not do: send anything to Redis (presence_redis.c) or change the local tables
 * (presence.c); the embedded store's answers only read them.
 */
#include "presence_internal.h"

#include "roomcast/common.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests -------------------------------------------------------------------------------- */

pr_req *rc_presence__req_new(rc_presence *p, int kind, size_t n, const char *const *s)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += strlen(s[i]) + 1;
    pr_req *r = rc_calloc(1, sizeof(*r) + n * sizeof(char *) + bytes);
    r->p = p;
    r->kind = kind;
    r->gen = p->gen;
    r->n = n;
    r->s = (const char **)(void *)(r + 1);
    char *d = (char *)(r->s + n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(s[i]);
        memcpy(d, s[i], l + 1);
        r->s[i] = d;
        d += l + 1;
    }
    return r;
}

void rc_presence__list_push(pr_req **head, pr_req **tail, pr_req *r)
{
    r->next = NULL;
    if (*tail) (*tail)->next = r;
    else *head = r;
    *tail = r;
}

void rc_presence__inflight_link(rc_presence *p, pr_req *r)
{
    r->prev = NULL;
    r->next = p->inflight;
    if (p->inflight) p->inflight->prev = r;
    p->inflight = r;
}

void rc_presence__inflight_unlink(rc_presence *p, pr_req *r)
{
    if (r->prev) r->prev->next = r->next;
    else p->inflight = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

pr_user *rc_presence__user_find(const rc_presence *p, const char *id)
{
    rc_hmap_node *n = rc_hmap_find(&p->users, id, strlen(id));
    return n ? RC_CONTAINER_OF(n, pr_user, node) : NULL;
}

/* ---- events for the node --------------------------------------------------------------------- */

void rc_presence__defer(rc_presence *p, pr_req *r)
{
    rc_presence__list_push(&p->deferred, &p->deferred_tail, r);
    event_active(p->defer_ev, EV_TIMEOUT, 0);
}

void rc_presence__defer_status(rc_presence *p, const char *user, int online)
{
    pr_req *r = rc_presence__req_new(p, EV_STATUS, 1, &user);
    r->flag = online;
    r->ts = rc_now_wall_ms();
    rc_presence__defer(p, r);
}

static void defer_member(rc_presence *p, const char *ns, const char *room, const char *user,
                         int joined)
{
    const char *s[3] = {ns, room, user};
    pr_req *r = rc_presence__req_new(p, EV_MEMBER, 3, s);
    r->flag = joined;
    rc_presence__defer(p, r);
}

/* Joined or left as a whole is announced, as the scripts' replies are in Redis mode. */
void rc_presence__local_count(rc_presence *p, const char *ns, const char *room, const char *user,
                              int delta)
{
    int change = pr_local__count(&p->local, ns, room, user, delta);
    if (change) defer_member(p, ns, room, user, change > 0);
}

void rc_presence__status_deliver(rc_presence *p, const char *user, int online, uint64_t ts)
{
    size_t n;
    const uint64_t *ids = pr_watches__news(&p->watches, user, online, ts,
                                           rc_presence__redis_mode(p), &n);
    /* the callback may unwatch: ids stay valid (scratch of the index) */
    if (ids && p->cb.on_status) p->cb.on_status(p->cb.arg, user, online, ts, ids, n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void rc_presence__answer_members(rc_presence *p, pr_req *r, const char **users, size_t n,
                                 size_t total)
{
    size_t k = 0;
    qsort(users, n, sizeof(*users), cmp_str);
    for (size_t i = 0; i < n && k < RC_PRESENCE_MEMBERS_MAX; i++)
        if (!k || strcmp(users[k - 1], users[i]) != 0) users[k++] = users[i];
    if (p->cb.on_members) p->cb.on_members(p->cb.arg, r->tag, 0, r->s[0], r->s[1], users, k, total);
}

/* ---- deferred events, and the embedded store's answers --------------------------------------- */

static void answer_query_local(rc_presence *p, pr_req *r)
{
    if (!p->cb.on_query) return;
    if (r->err) {
        p->cb.on_query(p->cb.arg, r->tag, r->err, r->s, NULL, r->n);
        return;
    }
    unsigned char *online = rc_malloc(r->n ? r->n : 1);
    for (size_t i = 0; i < r->n; i++)
        online[i] = !rc_presence__redis_mode(p) && rc_presence__user_find(p, r->s[i]) &&
                    !pr_local__invisible(&p->local, r->s[i]);
    p->cb.on_query(p->cb.arg, r->tag, 0, r->s, online, r->n);
    rc_free(online);
}

static void answer_members_local(rc_presence *p, pr_req *r)
{
    if (r->err) {
        if (p->cb.on_members)
            p->cb.on_members(p->cb.arg, r->tag, r->err, r->s[0], r->s[1], NULL, 0, 0);
        return;
    }
    size_t n;
    const char **users = pr_local__members(&p->local, r->s[0], r->s[1], &n);
    rc_presence__answer_members(p, r, users, n, n);
    rc_free(users);
}

/* Runs the events queued before this turn; those they queue run on the next one. */
void rc_presence__on_defer_ev(evutil_socket_t fd, short what, void *arg)
{
    rc_presence *p = arg;
    pr_req *list = p->deferred;
    p->deferred = p->deferred_tail = NULL;
    while (list) {
        pr_req *r = list;
        list = r->next;
        switch (r->kind) {
        case EV_STATUS:
            rc_presence__status_deliver(p, r->s[0], r->flag, r->ts);
            break;
        case EV_MEMBER:
            if (p->cb.on_member) p->cb.on_member(p->cb.arg, r->s[0], r->s[1], r->s[2], r->flag);
            break;
        case EV_QUERY:
            answer_query_local(p, r);
            break;
        case EV_MEMBERS:
            answer_members_local(p, r);
            break;
        case EV_DRAINED:
            if (p->cb.on_drained) p->cb.on_drained(p->cb.arg, r->err);
            break;
        }
        rc_free(r);
    }
}
