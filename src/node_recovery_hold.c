/*
 * node_recovery_hold.c: a disconnected session's rooms kept heard (docs/recovery.md, "Rooms held
 * while the client is away").
 *
 * A client whose network drops is often the only local member of some of its rooms (its user
 * room above all): when its socket goes, sio leaves those rooms and the node would UNSUBSCRIBE
 * their channels, so a backend's plain PUBLISH to them during the gap would be heard by no node:
 * neither kept (with an id) nor gap-marked (without). So, when a socket of a recoverable
 * namespace leaves for a reason after which the client comes back by itself (the reasons
 * presenceGrace uses), the node holds a reference on each of its kept rooms (recovery.rooms) and
 * keeps their channels subscribed, delivering to nobody; a heard plain envelope goes through
 * rc_node__recovery_heard as with a live member (kept once with an id, gap mark without). With
 * socketio.prefix the room's Socket.IO channel (K#<ns>#<room>#) is held too, a reference of its
 * own: an emitter's broadcast to it leaves a gap mark (src/node_socketio.c).
 *
 * A hold ends (the channel is closed when no local member and no other hold needs it):
 *   - when the session is recovered on this node (rc_node__hold_back, from the on_connect hook);
 *   - when the session is no longer this node's: every check period (min(window/2, 15 s)) the
 *     node GETs P:session:<pid>; gone (expired, or deleted by a deliberate disconnect) or written
 *     by another node (its "node" field: recovered there) ends the hold;
 *   - at the latest when the session must have expired (window + check period after the leave);
 *   - at drain and shutdown (rc_node__holds_stop: the node is going, nobody will hear anyway).
 * A deliberate disconnect takes no hold. Bounded: the rooms held, all sessions together, are at
 * most limits.maxMemberships; a session that does not fit has its P:session key deleted, so its
 * recovery is a fresh session rather than a replay with a hole.
 *
 * What it does not do: cover the death of this node (nobody hears the held rooms until the
 * client is back: docs/recovery.md), deliver anything, or touch presence (node_recovery.c).
 *
 * Ownership: every hold and every held room is this file's; a held room lives while a hold
 * refers to it.
 *
 * API in call order: rc_node__holds_new -> rc_node__hold_take (on_disconnect, before sio leaves
 * the rooms) / rc_node__hold_back (on_connect) / rc_node__hold_keeps_channel (on_room_close) ->
 * rc_node__holds_stop (drain, shutdown) -> rc_node__holds_write_metrics -> rc_node__holds_free.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/hmap.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/recovery_config.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"
#include "roomcast/sio_admin.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define CHECK_MAX_MS 15000

/* A room channel kept subscribed for held sessions: key = "<ns>\0<room>". */
typedef struct held_room {
    rc_hmap_node node;            /* first: rc_hmap_free_all */
    size_t refs;                  /* holds that name it */
    size_t ns_len;
    char key[];
} held_room;

typedef struct hold {
    rc_hmap_node node;            /* by sid; first */
    struct hold *next, *prev;     /* the list the timer walks */
    uint64_t id;                  /* tells a check's reply which hold it was for */
    uint64_t due_ms, check_ms;    /* monotonic: the end at the latest, the next session check */
    char sid[24];
    char pid[40];                 /* 32 characters (sio) */
    held_room **rooms;
    size_t nrooms;
} hold;

struct rc_node_holds {
    rc_hmap by_sid;
    rc_hmap rooms;
    hold *list;
    struct event *tick;
    unsigned check_ms;
    uint64_t next_id;
    int stopped;
    size_t held_rooms;            /* sum of nrooms: bounded by limits.maxMemberships */
    uint64_t taken, refused, ended_back, ended_elsewhere, ended_expired;
};

static void on_tick(evutil_socket_t fd, short what, void *arg);

void rc_node__holds_new(rc_node *n)
{
    unsigned min_window = 0;
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++) {
        if (!rc_node__recovery_enabled(n, i)) continue;
        unsigned w = rc_ns_rules_recovery(rc_rules_ns_at(n->cfg->rules, i))->max_disconnection_ms;
        if (!min_window || w < min_window) min_window = w;
    }
    if (!min_window) return; /* no namespace has recovery: nothing is ever held */
    rc_node_holds *h = rc_calloc(1, sizeof(*h));
    h->check_ms = min_window / 2 < CHECK_MAX_MS ? min_window / 2 : CHECK_MAX_MS;
    h->tick = evtimer_new(n->base, on_tick, n);
    n->holds = h;
}

static void room_release(rc_node *n, held_room *r)
{
    rc_node_holds *h = n->holds;
    if (--r->refs) return;
    rc_hmap_remove(&h->rooms, &r->node);
    const char *ns = r->key, *room = r->key + r->ns_len + 1;
    if (rc_sio_room_size(n->sio, ns, room) == 0) n->bp->ops->room_close(n->bp, ns, room);
    rc_node__socketio_room(n, ns, room, 0); /* its reference (a raw channel is refcounted) */
    rc_free(r);
}

static void hold_end(rc_node *n, hold *d, uint64_t *counter)
{
    rc_node_holds *h = n->holds;
    rc_hmap_remove(&h->by_sid, &d->node);
    if (d->prev) d->prev->next = d->next;
    else h->list = d->next;
    if (d->next) d->next->prev = d->prev;
    for (size_t i = 0; i < d->nrooms; i++) room_release(n, d->rooms[i]);
    h->held_rooms -= d->nrooms;
    if (counter) (*counter)++;
    rc_free(d->rooms);
    rc_free(d);
}

void rc_node__holds_stop(rc_node *n)
{
    rc_node_holds *h = n->holds;
    if (!h) return;
    h->stopped = 1;
    while (h->list) hold_end(n, h->list, NULL);
    event_del(h->tick);
}

void rc_node__holds_free(rc_node *n)
{
    rc_node_holds *h = n->holds;
    if (!h) return;
    while (h->list) { /* the backplane may be gone: the records only */
        hold *d = h->list;
        h->list = d->next;
        rc_free(d->rooms);
        rc_free(d);
    }
    rc_hmap_dispose(&h->by_sid);
    rc_hmap_free_all(&h->rooms);
    event_free(h->tick);
    rc_free(h);
    n->holds = NULL;
}

static void arm(rc_node *n)
{
    rc_node_holds *h = n->holds;
    if (!h->list) {
        event_del(h->tick);
        return;
    }
    uint64_t next = UINT64_MAX, now = rc_now_mono_ms();
    for (hold *d = h->list; d; d = d->next) {
        if (d->due_ms < next) next = d->due_ms;
        if (d->check_ms < next) next = d->check_ms;
    }
    uint64_t wait = next > now ? next - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    event_add(h->tick, &tv);
}

/* ---- taking a hold ------------------------------------------------------------------------ */

typedef struct collect {
    const rc_recovery_config *c;
    char **rooms;
    size_t count, cap;
} collect;

static void collect_room(void *arg, const char *room)
{
    collect *k = arg;
    int kept = 0;
    for (size_t i = 0; i < k->c->nrooms && !kept; i++) kept = rc_glob_match(k->c->rooms[i], room);
    if (!kept) return;
    if (k->count == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 8;
        k->rooms = rc_realloc(k->rooms, k->cap * sizeof(char *));
    }
    k->rooms[k->count++] = rc_strdup(room);
}

static void session_del_on_reply(void *arg, const redisReply *reply)
{
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        rc_log_warn("recovery_hold_refuse_failed", "error=\"%s\"", reply ? reply->str : "connection lost");
}

void rc_node__hold_take(rc_node *n, rc_sio_socket *s)
{
    rc_node_holds *h = n->holds;
    int i = rc_sio_socket_ns_index(s);
    if (!h || h->stopped || n->draining || !rc_sio_socket_pid(s)[0] || i < 0 ||
        !rc_node__recovery_enabled(n, (size_t)i) || !rc_node__recovery_comes_back(s))
        return;
    const char *sid = rc_sio_socket_id(s);
    rc_hmap_node *old = rc_hmap_find(&h->by_sid, sid, strlen(sid));
    if (old) hold_end(n, (hold *)old, NULL); /* left twice (a half-open socket replaced): the newest */
    const char *ns = rc_sio_socket_ns(s);
    collect k = {rc_ns_rules_recovery(rc_rules_ns_at(n->cfg->rules, (size_t)i)), NULL, 0, 0};
    rc_sio_socket_rooms(s, collect_room, &k);
    size_t cap = n->cfg->max_memberships;
    if (k.count && cap && h->held_rooms + k.count > cap) {
        /* no room for it: its recovery must not look complete, so its session goes */
        h->refused++;
        rc_log_warn("recovery_hold_refused", "sid=%s rooms=%zu held=%zu max=%zu", sid, k.count, h->held_rooms, cap);
        char *key = rc_key_new(n->cfg->prefix, RC_KEY_SESSION, rc_sio_socket_pid(s), NULL);
        const char *argv[] = {"DEL", key};
        rc_redis_command(n->bp, session_del_on_reply, NULL, 2, argv, NULL);
        rc_free(key);
    } else if (k.count) {
        unsigned window = k.c->max_disconnection_ms;
        hold *d = rc_calloc(1, sizeof(*d));
        d->id = ++h->next_id;
        uint64_t now = rc_now_mono_ms();
        d->due_ms = now + window + h->check_ms; /* the session's TTL at most: gone by then */
        d->check_ms = now + h->check_ms;
        snprintf(d->sid, sizeof(d->sid), "%s", sid);
        snprintf(d->pid, sizeof(d->pid), "%s", rc_sio_socket_pid(s));
        d->rooms = rc_calloc(k.count, sizeof(held_room *));
        size_t ns_len = strlen(ns);
        for (size_t r = 0; r < k.count; r++) {
            size_t rl = strlen(k.rooms[r]), kl = ns_len + 1 + rl;
            char *key = rc_malloc(kl + 1);
            memcpy(key, ns, ns_len + 1);
            memcpy(key + ns_len + 1, k.rooms[r], rl + 1);
            rc_hmap_node *f = rc_hmap_find(&h->rooms, key, kl);
            held_room *hr = f ? (held_room *)f : NULL;
            if (!hr) {
                hr = rc_malloc(sizeof(*hr) + kl + 1);
                memset(hr, 0, sizeof(*hr));
                memcpy(hr->key, key, kl + 1);
                hr->ns_len = ns_len;
                rc_hmap_insert(&h->rooms, &hr->node, hr->key, kl);
                n->bp->ops->room_open(n->bp, ns, k.rooms[r]); /* wanted already: its member is leaving */
                rc_node__socketio_room(n, ns, k.rooms[r], 1); /* Socket.IO's room channel too */
            }
            hr->refs++;
            d->rooms[d->nrooms++] = hr;
            rc_free(key);
        }
        h->held_rooms += d->nrooms;
        rc_hmap_insert(&h->by_sid, &d->node, d->sid, strlen(d->sid));
        d->next = h->list;
        if (h->list) h->list->prev = d;
        h->list = d;
        h->taken++;
        arm(n);
    }
    for (size_t r = 0; r < k.count; r++) rc_free(k.rooms[r]);
    rc_free(k.rooms);
}

void rc_node__hold_back(rc_node *n, const rc_sio_socket *s)
{
    rc_node_holds *h = n->holds;
    if (!h || !h->list) return;
    const char *sid = rc_sio_socket_id(s);
    rc_hmap_node *f = rc_hmap_find(&h->by_sid, sid, strlen(sid));
    if (!f) return;
    hold_end(n, (hold *)f, &h->ended_back); /* the socket is a member of its rooms again */
    arm(n);
}

int rc_node__hold_keeps_channel(const rc_node *n, const char *ns, const char *room)
{
    const rc_node_holds *h = n->holds;
    if (!h || !h->rooms.count || !room) return 0;
    size_t ns_len = strlen(ns), rl = strlen(room), kl = ns_len + 1 + rl;
    char stack[256];
    char *key = kl + 1 <= sizeof(stack) ? stack : rc_malloc(kl + 1);
    memcpy(key, ns, ns_len + 1);
    memcpy(key + ns_len + 1, room, rl + 1);
    int found = rc_hmap_find(&h->rooms, key, kl) != NULL;
    if (key != stack) rc_free(key);
    return found;
}

/* ---- checks and expiry -------------------------------------------------------------------- */

typedef struct check {
    rc_node *n;
    uint64_t id;
    char sid[24];
} check;

static void check_on_reply(void *arg, const redisReply *reply)
{
    check *c = arg;
    rc_node *n = c->n;
    rc_node_holds *h = n->holds;
    rc_hmap_node *f = h ? rc_hmap_find(&h->by_sid, c->sid, strlen(c->sid)) : NULL;
    hold *d = f ? (hold *)f : NULL;
    if (d && d->id == c->id && reply && reply->type != REDIS_REPLY_ERROR) {
        int mine = 0;
        if (reply->type == REDIS_REPLY_STRING) {
            cJSON *j = cJSON_ParseWithLength(reply->str, reply->len);
            const cJSON *node = cJSON_GetObjectItemCaseSensitive(j, "node");
            mine = !cJSON_IsString(node) || strcmp(node->valuestring, n->cfg->node_id) == 0;
            cJSON_Delete(j);
        }
        if (!mine) { /* expired, deleted (a deliberate disconnect) or recovered on another node */
            hold_end(n, d, &h->ended_elsewhere);
            arm(n);
        }
    }
    rc_free(c);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    rc_node_holds *h = n->holds;
    uint64_t now = rc_now_mono_ms();
    for (hold *d = h->list, *next; d; d = next) {
        next = d->next;
        if (d->due_ms <= now) {
            hold_end(n, d, &h->ended_expired);
            continue;
        }
        if (d->check_ms > now) continue;
        d->check_ms = now + h->check_ms;
        check *c = rc_calloc(1, sizeof(*c));
        c->n = n;
        c->id = d->id;
        snprintf(c->sid, sizeof(c->sid), "%s", d->sid);
        char *key = rc_key_new(n->cfg->prefix, RC_KEY_SESSION, d->pid, NULL);
        const char *argv[] = {"GET", key};
        if (rc_redis_command(n->bp, check_on_reply, c, 2, argv, NULL) != 0) rc_free(c);
        rc_free(key);
    }
    arm(n);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void rc_node__holds_write_metrics(const rc_node *n, struct evbuffer *out)
{
    const rc_node_holds *h = n->holds;
    if (!h) return;
    rc_metrics_put_scalar(out, "roomcast_recovery_holds", "gauge",
                          "Disconnected recoverable sessions whose rooms this node keeps hearing.", h->by_sid.count);
    rc_metrics_put_scalar(out, "roomcast_recovery_held_rooms", "gauge",
                          "Rooms of those sessions, counted once per session (at most limits.maxMemberships).",
                          h->held_rooms);
    rc_metrics_put_scalar(out, "roomcast_recovery_holds_total", "counter",
                          "Sessions whose rooms this node started to hold after their socket left.", h->taken);
    rc_metrics_put_scalar(out, "roomcast_recovery_holds_refused_total", "counter",
                          "Sessions whose rooms did not fit under limits.maxMemberships (their session was "
                          "deleted: a fresh session on reconnect).", h->refused);
    static const char *const ends[] = {"recovered_here", "session_moved_or_gone", "expired"};
    uint64_t v[3] = {h->ended_back, h->ended_elsewhere, h->ended_expired};
    rc_metrics_put_by_label(out, "roomcast_recovery_holds_ended_total", "counter",
                            "Holds ended, by why (drain and shutdown are not counted).", "reason", ends, v, 0, 3);
}
