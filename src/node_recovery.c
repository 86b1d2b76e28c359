/*
 * node_recovery.c: connection state recovery, the node's part (docs/recovery.md; the Socket.IO
 * side is src/sio_recover.c, the history script src/backplane_redis_keep.c).
 *
 * Kept emits: an emit the namespace's "recovery" keeps (rc_ns_rules_recovery_keeps) is handed to
 * the backplane's publish_kept, which appends it to P:history:<ns> and publishes it with its
 * offset in one script; every node, this one included, delivers it when it hears it, so every
 * node delivers kept emits in the order of the stream. A notification (P:notify) is heard by
 * every node: each asks publish_kept with a once key (P:once:<ns>:<id>), so it is kept and
 * published to the user room once. A backend's plain PUBLISH (no offset) to a kept room that
 * carries an "id" is handled the same way by every node that hears it (once key
 * P:once:<ns>:r<len>:<room>:<id>): not delivered as heard, but kept once and delivered by every
 * node when the script's PUBLISH, with its offset, is heard (when Redis refuses the script, each
 * node that heard it delivers it to its own sockets without offset, with a gap mark:
 * src/node_recovery_gap.c). An emit that reaches sockets without
 * an offset although its room is kept (a plain PUBLISH without id, a binary emit) leaves a gap
 * mark in the stream (field g): a socket of that room that recovers across it is refused (a
 * fresh session) rather than given a replay without it.
 *
 * Sessions: P:session:<pid> = {"sid","node","user","claims","rooms"} for every socket of a recoverable namespace,
 * written when it changes (connect, join, leave; batched once per loop turn) and rewritten every
 * refresh period while connected, with a TTL of the window plus that period: a node that dies
 * writes nothing, and its sessions still expire one window after their last refresh.
 *
 * Recovery (hooks.recover): one script reads the session and checks that the client's offset is
 * still in the stream; the pid's user must be the token's user, with the same claims but their
 * times (claims_digest). The socket is adopted (old sid,
 * rooms rejoined: subscriptions asked), and once the backplane confirms every subscription the
 * stream is read after the offset, 500 entries a page, keeping the entries of the socket's rooms;
 * then rc_sio_recover_done. At most recovery.maxReplayScan entries are read (a CPU bound: the
 * entries of other rooms cost as much to read). Anything else (unknown or expired pid, trimmed
 * offset, another user, a gap, a replay over limits.maxOutboundBytes, more entries after the
 * offset than maxReplayScan, Redis down, a gap mark this node still has to write) ends in
 * rc_sio_recover_refuse: a
 * fresh session, never a partial replay. Repeated recoveries are bounded too: the same script
 * counts them per user (per pid without a user) and namespace in P:recoveries:<ns>:<who>, and one
 * over recovery.maxRecoveriesPerMinute is a fresh session (rate_limited).
 *
 * Presence (presenceGrace): a socket of a recoverable namespace that leaves for a reason after
 * which the client reconnects by itself keeps its presence entry for its window (a timer per
 * node, one list); a recovery on this node takes it back (same sid), one on another node adds
 * its own entry first, so no offline/online pair is announced for a shorter gap; the user goes
 * offline one window late when the client does not come back.
 *
 * Rooms of a socket whose client is away stay subscribed until its session is recovered or gone
 * (src/node_recovery_hold.c): a plain PUBLISH to them is then heard, kept or gap-marked.
 *
 * Without Redis (the embedded backplane), recovery is off, logged once at start
 * (recovery_unavailable): the CONNECT reply carries no pid, so clients never try.
 *
 * What it does not do: decide what is kept (the rules' "recovery"), encode envelopes (the
 * backplane) or packets (sio).
 *
 * API: rc_node__recovery_new/free, rc_node__recovery_enabled, rc_node__recovery_publish,
 * rc_node__recovery_notify, rc_node__recovery_heard, rc_node__recovery_gap, rc_node__recovery_touch,
 * rc_node__hook_recover, rc_node__recovery_write_metrics.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/presence.h"
#include "roomcast/recovery_config.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/rules.h"
#include "roomcast/sio_admin.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 500
#define REFRESH_MAX_MS 15000

enum { R_RECOVERED, R_UNKNOWN, R_TRIMMED, R_USER, R_CLAIMS, R_GAP, R_TOO_LARGE, R_SCAN_LIMIT, R_ERROR,
       R_RATE_LIMITED, R__COUNT };
static const char *const result_names[R__COUNT] = {"recovered", "unknown_session", "offset_trimmed",
                                                   "user_mismatch", "claims_changed", "gap", "too_large",
                                                   "scan_limit", "error", "rate_limited"};

typedef struct dirty {
    int ns_index;
    char sid[24];
} dirty;

/* A recoverable socket's presence, kept after it left until its window passes (presenceGrace). */
typedef struct grace {
    struct grace *next;
    uint64_t due_ms;              /* monotonic */
    char sid[24];
} grace;

struct rc_node_recovery {
    size_t ns_count;
    unsigned char *enabled;         /* by namespace index */
    char **history_key;             /* by namespace index (NULL when off) */
    unsigned refresh_ms;
    struct event *flush_ev, *refresh_ev;
    dirty *dirty;
    size_t ndirty, dirty_cap;
    uint64_t results[R__COUNT];
    uint64_t replayed, kept, kept_heard, session_writes, graced;
    grace *graces;                  /* in due order per window; scanned by the refresh timer */
    struct event *grace_ev;
};

/* ---- setup -------------------------------------------------------------------------------- */

static void on_flush(evutil_socket_t fd, short what, void *arg);
static void on_refresh(evutil_socket_t fd, short what, void *arg);

void rc_node__recovery_new(rc_node *n)
{
    rc_node_recovery *r = rc_calloc(1, sizeof(*r));
    size_t count = rc_rules_ns_count(n->cfg->rules);
    r->ns_count = count;
    r->enabled = rc_calloc(count ? count : 1, 1);
    r->history_key = rc_calloc(count ? count : 1, sizeof(char *));
    unsigned min_window = 0;
    for (size_t i = 0; i < count; i++) {
        const rc_ns_rules *ns = rc_rules_ns_at(n->cfg->rules, i);
        const rc_recovery_config *c = rc_ns_rules_recovery(ns);
        if (!c->enabled) continue;
        if (!rc_redis_available(n->bp) || !n->bp->ops->publish_kept) {
            rc_log_warn("recovery_unavailable", "ns=%s reason=%s", rc_ns_rules_name(ns),
                        rc_redis_available(n->bp) ? "backplane_keeps_no_history" : "no_redis");
            continue;
        }
        r->enabled[i] = 1;
        r->history_key[i] = rc_key_new(n->cfg->prefix, RC_KEY_HISTORY, rc_ns_rules_name(ns), NULL);
        if (!min_window || c->max_disconnection_ms < min_window) min_window = c->max_disconnection_ms;
    }
    n->recovery = r;
    if (!min_window) return;
    rc_node__gaps_new(n);
    r->refresh_ms = min_window / 2 < REFRESH_MAX_MS ? min_window / 2 : REFRESH_MAX_MS;
    r->flush_ev = event_new(n->base, -1, 0, on_flush, n);
    r->refresh_ev = event_new(n->base, -1, EV_PERSIST, on_refresh, n);
    struct timeval tv = {r->refresh_ms / 1000, (r->refresh_ms % 1000) * 1000};
    event_add(r->refresh_ev, &tv);
}

void rc_node__recovery_free(rc_node *n)
{
    rc_node_recovery *r = n->recovery;
    if (!r) return;
    rc_node__gaps_free(n);
    if (r->flush_ev) event_free(r->flush_ev);
    if (r->refresh_ev) event_free(r->refresh_ev);
    if (r->grace_ev) event_free(r->grace_ev);
    while (r->graces) {
        grace *g = r->graces;
        r->graces = g->next;
        rc_free(g);
    }
    for (size_t i = 0; i < r->ns_count; i++) rc_free(r->history_key[i]);
    rc_free(r->history_key);
    rc_free(r->enabled);
    rc_free(r->dirty);
    rc_free(r);
    n->recovery = NULL;
}

int rc_node__recovery_enabled(const rc_node *n, size_t ns_index)
{
    const rc_node_recovery *r = n->recovery;
    return r && ns_index < r->ns_count && r->enabled[ns_index];
}

static int ns_index_of(const rc_node *n, const char *ns)
{
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++)
        if (strcmp(rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, i)), ns) == 0) return (int)i;
    return -1;
}

/* The namespace's index when recovery keeps this emit, else -1. */
static int kept_index(const rc_node *n, const rc_bp_message *msg)
{
    if (!n->recovery || !n->recovery->refresh_ev || msg->kind != RC_BP_EMIT || !msg->ns)
        return -1; /* no namespace has recovery: nothing more is looked at */
    int i = ns_index_of(n, msg->ns);
    if (i < 0 || !rc_node__recovery_enabled(n, (size_t)i)) return -1;
    return rc_ns_rules_recovery_keeps(rc_rules_ns_at(n->cfg->rules, (size_t)i), msg->room, msg->event) ? i : -1;
}

static const rc_recovery_config *config_of(const rc_node *n, int i)
{
    return rc_ns_rules_recovery(rc_rules_ns_at(n->cfg->rules, (size_t)i));
}

/* ---- kept emits and gaps ------------------------------------------------------------------ */

const char *rc_node__recovery_history(const rc_node *n, size_t ns_index, unsigned long *max_length)
{
    if (!rc_node__recovery_enabled(n, ns_index)) return NULL;
    *max_length = config_of(n, (int)ns_index)->max_length;
    return n->recovery->history_key[ns_index];
}

/* A mark in the stream: an emit to `room` reached sockets without an offset (retried until
 * written: src/node_recovery_gap.c). */
static void gap_mark(rc_node *n, int i, const char *room)
{
    rc_node__gap_mark(n, i, room);
}

int rc_node__recovery_publish(rc_node *n, rc_bp_message *msg)
{
    int i = kept_index(n, msg);
    if (i < 0 || !n->bp->ops->publish_kept) return 0;
    if (msg->attachment_count) { /* binary emits are not kept: a gap, then the ordinary publish */
        gap_mark(n, i, msg->room);
        return 0;
    }
    const rc_recovery_config *c = config_of(n, i);
    rc_bp_keep keep = {n->recovery->history_key[i], c->max_disconnection_ms, c->max_length, NULL, NULL, NULL};
    if (n->bp->ops->publish_kept(n->bp, msg, &keep) != 0) return -1;
    n->recovery->kept++;
    return 1;
}

int rc_node__recovery_notify(rc_node *n, rc_bp_message *msg, const char *payload, size_t len)
{
    int i = kept_index(n, msg);
    if (i < 0 || !n->bp->ops->publish_kept || msg->attachment_count) return 0;
    char id[2 * SHA_DIGEST_LENGTH + 1];
    const char *key_id = msg->id;
    if (!key_id) { /* the digest of the payload, as the job id is (docs/jobs.md) */
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)payload, len, md);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++) snprintf(id + 2 * k, 3, "%02x", md[k]);
        key_id = id;
    }
    char *once = rc_key_new(n->cfg->prefix, RC_KEY_ONCE, msg->ns, key_id);
    const rc_recovery_config *c = config_of(n, i);
    rc_bp_keep keep = {n->recovery->history_key[i], c->max_disconnection_ms, c->max_length, once, NULL, NULL};
    msg->origin = n->cfg->node_id;
    int rc = n->bp->ops->publish_kept(n->bp, msg, &keep);
    rc_free(once);
    return rc == 0 ? 1 : -1;
}

/* A backend's plain PUBLISH with an id to a kept room: every node that hears it asks the keep
 * script with the same once key, P:once:<ns>:r<room length>:<room>:<id> (the room is part of it:
 * the same id published to two rooms is two events, as it is live; the length keeps "a:b" + "c"
 * apart from "a" + "b:c", and the leading r from a notification's id). The first appends it and
 * publishes it with its offset; the others' scripts do nothing. 0 when asked, -1 when not. */
static int keep_heard(rc_node *n, int i, const rc_bp_message *msg)
{
    const char *room = msg->room ? msg->room : "";
    size_t len = strlen(room) + strlen(msg->id) + 32;
    char *b = rc_malloc(len);
    snprintf(b, len, "r%zu:%s:%s", strlen(room), room, msg->id);
    char *once = rc_key_new(n->cfg->prefix, RC_KEY_ONCE, msg->ns, b);
    rc_free(b);
    const rc_recovery_config *c = config_of(n, i);
    /* a copy, delivered here if Redis refuses to keep it (src/node_recovery_gap.c) */
    void *copy = rc_node__heard_copy(n, i, msg);
    rc_bp_keep keep = {n->recovery->history_key[i], c->max_disconnection_ms, c->max_length, once,
                       rc_node__heard_done, copy};
    int rc = n->bp->ops->publish_kept(n->bp, msg, &keep);
    rc_free(once);
    if (rc == 0) n->recovery->kept_heard++;
    else rc_node__heard_done(copy, 0); /* not asked: the caller delivers it with a gap mark */
    return rc;
}

void rc_node__recovery_gap(rc_node *n, const char *ns, const char *room, const char *event)
{
    if (!n->recovery || !n->recovery->refresh_ev || !ns) return;
    int i = ns_index_of(n, ns);
    if (room && !room[0]) room = NULL; /* the whole namespace */
    if (i < 0 || !rc_node__recovery_enabled(n, (size_t)i) ||
        !rc_ns_rules_recovery_keeps(rc_rules_ns_at(n->cfg->rules, (size_t)i), room, event))
        return;
    gap_mark(n, i, room);
}

int rc_node__recovery_heard(rc_node *n, const rc_bp_message *msg)
{
    if (msg->offset) return 0;
    int i = kept_index(n, msg);
    if (i < 0) return 0;
    if (msg->id && !msg->attachment_count && keep_heard(n, i, msg) == 0)
        return 1; /* delivered when the script's PUBLISH (with its offset) is heard */
    gap_mark(n, i, msg->room);
    return 0;
}

/* ---- sessions ----------------------------------------------------------------------------- */

static void add_room(void *arg, const char *room)
{
    cJSON_AddItemToArray(arg, cJSON_CreateString(room));
}

static void session_on_reply(void *arg, const redisReply *reply)
{
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        rc_log_debug("recovery_session_failed", "error=\"%s\"", reply ? reply->str : "connection lost");
}

/* What a session's rooms were granted on: the token's claims but their times and id (exp, iat,
 * nbf, jti: a refreshed token keeps its session), as 128 bits of SHA-256 in hex; "" without
 * claims. A recovery whose token says something else (a room taken away) gets a fresh session. */
static void claims_digest(const char *claims_json, char out[33])
{
    static const char *const times[] = {"exp", "iat", "nbf", "jti", NULL};
    out[0] = '\0';
    cJSON *c = claims_json ? cJSON_Parse(claims_json) : NULL;
    if (!c) return;
    for (int i = 0; times[i]; i++)
        while (cJSON_GetObjectItemCaseSensitive(c, times[i])) cJSON_DeleteItemFromObjectCaseSensitive(c, times[i]);
    char *text = cJSON_PrintUnformatted(c);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), md);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    cJSON_free(text);
    cJSON_Delete(c);
}

static void session_write(rc_node *n, rc_sio_socket *s)
{
    int i = rc_sio_socket_ns_index(s);
    const rc_recovery_config *c = config_of(n, i);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "sid", rc_sio_socket_id(s));
    cJSON_AddStringToObject(j, "node", n->cfg->node_id); /* whose it is: node_recovery_hold.c */
    if (rc_sio_socket_user(s)) cJSON_AddStringToObject(j, "user", rc_sio_socket_user(s));
    char digest[33];
    claims_digest(rc_sio_socket_claims(s), digest);
    if (digest[0]) cJSON_AddStringToObject(j, "claims", digest);
    cJSON *rooms = cJSON_AddArrayToObject(j, "rooms");
    rc_sio_socket_rooms(s, add_room, rooms);
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char *key = rc_key_new(n->cfg->prefix, RC_KEY_SESSION, rc_sio_socket_pid(s), NULL);
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%u", c->max_disconnection_ms + n->recovery->refresh_ms);
    const char *argv[] = {"SET", key, json, "PX", ttl};
    if (rc_redis_command(n->bp, session_on_reply, NULL, 5, argv, NULL) == 0) n->recovery->session_writes++;
    rc_free(key);
    cJSON_free(json);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    rc_node_recovery *r = n->recovery;
    for (size_t k = 0; k < r->ndirty; k++) {
        rc_sio_socket *s = rc_sio_find_socket(n->sio, r->dirty[k].ns_index, r->dirty[k].sid);
        if (s && (k == 0 || strcmp(r->dirty[k].sid, r->dirty[k - 1].sid) != 0)) session_write(n, s);
    }
    r->ndirty = 0;
}

void rc_node__recovery_touch(rc_node *n, rc_sio_socket *s)
{
    rc_node_recovery *r = n->recovery;
    if (!r || !r->flush_ev || !rc_sio_socket_pid(s)[0]) return;
    const char *sid = rc_sio_socket_id(s);
    if (r->ndirty && strcmp(r->dirty[r->ndirty - 1].sid, sid) == 0) return;
    if (r->ndirty == r->dirty_cap) {
        r->dirty_cap = r->dirty_cap ? r->dirty_cap * 2 : 64;
        r->dirty = rc_realloc(r->dirty, r->dirty_cap * sizeof(*r->dirty));
    }
    r->dirty[r->ndirty].ns_index = rc_sio_socket_ns_index(s);
    snprintf(r->dirty[r->ndirty].sid, sizeof(r->dirty[r->ndirty].sid), "%s", sid);
    if (r->ndirty++ == 0) event_active(r->flush_ev, 0, 0);
}

static void refresh_one(void *arg, rc_sio_socket *s)
{
    session_write(arg, s);
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    if (!n->bp->ops->is_up(n->bp)) return;
    for (size_t i = 0; i < n->recovery->ns_count; i++)
        if (n->recovery->enabled[i]) rc_sio_foreach_socket(n->sio, i, refresh_one, n);
}

/* ---- presence grace ----------------------------------------------------------------------- */

/* Why a socket left, in Socket.IO's words: those after which a client reconnects by itself ("token
 * expired": jwt.onExpiry "reconnect" closes the session, and the client comes back with a fresh
 * token, verified again, for the same user). */
static int recoverable_reason(const char *why)
{
    static const char *const ok[] = {"transport close", "transport error", "ping timeout", "forced close",
                                     "server shutting down", "forced server close", "slow consumer",
                                     "token expired"};
    for (size_t i = 0; i < RC_ARRAY_LEN(ok); i++)
        if (why && strcmp(why, ok[i]) == 0) return 1;
    return 0;
}

int rc_node__recovery_comes_back(const rc_sio_socket *s)
{
    return recoverable_reason(rc_sio_socket_gone_reason(s));
}

static void grace_arm(rc_node_recovery *r)
{
    if (!r->graces) return;
    uint64_t now = rc_now_mono_ms(), due = r->graces->due_ms;
    for (grace *g = r->graces; g; g = g->next)
        if (g->due_ms < due) due = g->due_ms;
    uint64_t wait = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    event_add(r->grace_ev, &tv);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    rc_node_recovery *r = n->recovery;
    uint64_t now = rc_now_mono_ms();
    for (grace **pp = &r->graces; *pp;) {
        grace *g = *pp;
        if (g->due_ms > now) {
            pp = &g->next;
            continue;
        }
        *pp = g->next;
        if (n->presence) rc_presence_disconnect(n->presence, g->sid);
        rc_free(g);
    }
    grace_arm(r);
}

void rc_node__recovery_left(rc_node *n, rc_sio_socket *s)
{
    if (!n->recovery || !n->recovery->refresh_ev || !rc_sio_socket_pid(s)[0] ||
        recoverable_reason(rc_sio_socket_gone_reason(s)))
        return;
    /* left on purpose (a namespace DISCONNECT either way, a parse error): as Socket.IO, no
     * session is kept for it */
    char *key = rc_key_new(n->cfg->prefix, RC_KEY_SESSION, rc_sio_socket_pid(s), NULL);
    const char *argv[] = {"DEL", key};
    rc_redis_command(n->bp, session_on_reply, NULL, 2, argv, NULL);
    rc_free(key);
}

int rc_node__recovery_presence_leave(rc_node *n, rc_sio_socket *s)
{
    const char *why = rc_sio_socket_gone_reason(s);
    rc_node_recovery *r = n->recovery;
    int i = rc_sio_socket_ns_index(s);
    if (!r || !n->presence || !rc_sio_socket_pid(s)[0] || !rc_node__recovery_enabled(n, (size_t)i) ||
        !config_of(n, i)->presence_grace || !recoverable_reason(why))
        return 0;
    if (!r->grace_ev) r->grace_ev = evtimer_new(n->base, on_grace, n);
    grace *g = rc_calloc(1, sizeof(*g));
    g->due_ms = rc_now_mono_ms() + config_of(n, i)->max_disconnection_ms;
    snprintf(g->sid, sizeof(g->sid), "%s", rc_sio_socket_id(s));
    g->next = r->graces;
    r->graces = g;
    r->graced++;
    grace_arm(r);
    return 1;
}

void rc_node__recovery_presence_back(rc_node *n, const rc_sio_socket *s)
{
    rc_node_recovery *r = n->recovery;
    if (!r) return;
    for (grace **pp = &r->graces; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->sid, rc_sio_socket_id(s)) != 0) continue;
        grace *g = *pp; /* back on this node: its presence entry is still the one it had */
        *pp = g->next;
        rc_free(g);
        return;
    }
}

/* ---- recovering a session ----------------------------------------------------------------- */

/* KEYS: the session, the history, the budget's counter (P:recoveries:<ns>:<who>). ARGV: the
 * offset, the budget (recovery.maxRecoveriesPerMinute, 0: none). {0} unknown pid, {1} offset
 * trimmed, {3} over the budget, {2, session} both there and within it. Only a recovery that would
 * read the history is counted (the others cost one GET): the counter lives one minute from its
 * first count, a fixed window, so a user recovers at most twice the budget in any 60 s. */
static rc_redis_script recover_script = {
    "local s = redis.call('GET', KEYS[1])\n"
    "if not s then return {0} end\n"
    "if #redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1]) == 0 then return {1} end\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  local c = redis.call('INCR', KEYS[3])\n"
    "  if c == 1 or redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], 60000) end\n"
    "  if c > tonumber(ARGV[2]) then return {3} end\n"
    "end\n"
    "return {2, s}\n",
    {0}};

typedef struct recovering {
    rc_node *n;
    rc_sio_pending *p;
    int ns_index;
    char *user;
    char claims[33];                /* claims_digest of the CONNECT's token */
    char sid[24];
    char last[48];                  /* the last stream id read (the client's offset at first) */
    char **rooms;
    size_t nrooms;
    size_t limit;                   /* replay bytes at most */
    unsigned long scan_max;         /* history entries read at most (recovery.maxReplayScan) */
    unsigned long scanned;          /* history entries read so far */
    unsigned long asked;            /* COUNT of the page in flight */
    size_t replayed;
    uint64_t started_ns;
} recovering;

static void recovering_end(recovering *rc, int result)
{
    rc_node_recovery *r = rc->n->recovery;
    if (r) r->results[result]++;
    if (result == R_RECOVERED) {
        if (r) r->replayed += rc->replayed;
        rc_log_info("recovered", "sid=%s replayed=%zu ms=%.1f", rc->sid, rc->replayed,
                    (double)(rc_now_mono_ns() - rc->started_ns) / 1e6);
        rc_sio_recover_done(rc->p, rc->last);
    } else {
        rc_log_info("recovery_refused", "reason=%s", result_names[result]);
        rc_sio_recover_refuse(rc->p);
    }
    for (size_t i = 0; i < rc->nrooms; i++) rc_free(rc->rooms[i]);
    rc_free(rc->rooms);
    rc_free(rc->user);
    rc_free(rc);
}

static int in_rooms(const recovering *rc, const char *room, size_t len)
{
    if (len == 0) return 1; /* the whole namespace */
    for (size_t i = 0; i < rc->nrooms; i++)
        if (strlen(rc->rooms[i]) == len && memcmp(rc->rooms[i], room, len) == 0) return 1;
    return 0;
}

static int excepted(const char *list, size_t len, const char *sid)
{
    size_t sl = strlen(sid);
    for (size_t at = 0; at + sl <= len;) {
        const char *sp = memchr(list + at, ' ', len - at);
        size_t end = sp ? (size_t)(sp - list) : len;
        if (end - at == sl && memcmp(list + at, sid, sl) == 0) return 1;
        at = end + 1;
    }
    return 0;
}

static void read_page(recovering *rc);

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t k = 0; k + 1 < fields->elements; k += 2)
        if (fields->element[k]->type == REDIS_REPLY_STRING && strcmp(fields->element[k]->str, name) == 0)
            return fields->element[k + 1];
    return NULL;
}

static void page_on_reply(void *arg, const redisReply *reply)
{
    recovering *rc = arg;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || !rc_sio_recover_alive(rc->p)) {
        recovering_end(rc, R_ERROR);
        return;
    }
    for (size_t e = 0; e < reply->elements; e++) {
        const redisReply *ent = reply->element[e];
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || ent->element[0]->type != REDIS_REPLY_STRING ||
            ent->element[1]->type != REDIS_REPLY_ARRAY) {
            recovering_end(rc, R_ERROR);
            return;
        }
        if (++rc->scanned > rc->scan_max) { /* more to read than one recovery may: docs/security.md */
            recovering_end(rc, R_SCAN_LIMIT);
            return;
        }
        snprintf(rc->last, sizeof(rc->last), "%s", ent->element[0]->str);
        const redisReply *f = ent->element[1];
        const redisReply *room = field(f, "r");
        if (!room || room->type != REDIS_REPLY_STRING || !in_rooms(rc, room->str, room->len)) continue;
        if (field(f, "g")) { /* something reached this room without an offset */
            recovering_end(rc, R_GAP);
            return;
        }
        const redisReply *x = field(f, "x"), *v = field(f, "v"), *a = field(f, "a");
        if (!v || !a || v->type != REDIS_REPLY_STRING || a->type != REDIS_REPLY_STRING) continue;
        if (x && x->type == REDIS_REPLY_STRING && excepted(x->str, x->len, rc->sid)) continue;
        rc->replayed++;
        if (rc_sio_recover_add(rc->p, v->str, a->str, a->len, rc->last) > rc->limit) {
            recovering_end(rc, R_TOO_LARGE);
            return;
        }
    }
    if (!rc_sio_recover_alive(rc->p)) recovering_end(rc, R_TOO_LARGE); /* too much waited meanwhile */
    else if (reply->elements == rc->asked) read_page(rc);
    else recovering_end(rc, R_RECOVERED);
}

static void read_page(recovering *rc)
{
    char start[52], count[16];
    snprintf(start, sizeof(start), "(%s", rc->last);
    /* one entry past the bound at most: a history of exactly scan_max entries still recovers */
    unsigned long left = rc->scan_max + 1 - rc->scanned;
    rc->asked = left < PAGE ? left : PAGE;
    snprintf(count, sizeof(count), "%lu", rc->asked);
    const char *argv[] = {"XRANGE", rc->n->recovery->history_key[rc->ns_index], start, "+", "COUNT", count};
    if (rc_redis_command(rc->n->bp, page_on_reply, rc, 6, argv, NULL) != 0) recovering_end(rc, R_ERROR);
}

/* Every room of the adopted socket is subscribed (or cannot be): the history is read now, so
 * what it does not hold yet reaches the socket live (held in order by sio until done). */
static void on_subscribed(void *arg, int live)
{
    recovering *rc = arg;
    if (!live || !rc_sio_recover_alive(rc->p)) {
        recovering_end(rc, R_ERROR);
        return;
    }
    read_page(rc);
}

static void session_on_lookup(void *arg, const redisReply *reply)
{
    recovering *rc = arg;
    rc_node *n = rc->n;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER || !rc_sio_recover_alive(rc->p)) {
        recovering_end(rc, R_ERROR);
        return;
    }
    long long verdict = reply->element[0]->integer;
    if (verdict == 3) {
        rc_log_info("recovery_rate_limited", "ns=%s user=%s",
                    rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, (size_t)rc->ns_index)), rc->user ? rc->user : "");
        recovering_end(rc, R_RATE_LIMITED);
        return;
    }
    if (verdict != 2 || reply->elements != 2 || reply->element[1]->type != REDIS_REPLY_STRING) {
        recovering_end(rc, verdict == 1 ? R_TRIMMED : R_UNKNOWN);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(reply->element[1]->str, reply->element[1]->len);
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(j, "sid");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    if (!cJSON_IsString(sid) || !cJSON_IsArray(rooms) || strlen(sid->valuestring) >= sizeof(rc->sid)) {
        cJSON_Delete(j);
        recovering_end(rc, R_ERROR);
        return;
    }
    /* The pid is a capability, but only for its own user: another user's pid is refused. */
    const char *su = cJSON_IsString(user) ? user->valuestring : NULL;
    if ((su == NULL) != (rc->user == NULL) || (su && strcmp(su, rc->user) != 0)) {
        cJSON_Delete(j);
        rc_log_warn("recovery_user_mismatch", "ns=%s", rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, (size_t)rc->ns_index)));
        recovering_end(rc, R_USER);
        return;
    }
    /* ... and for the claims its rooms were granted on (a token that lost a room's claim). */
    const cJSON *claims = cJSON_GetObjectItemCaseSensitive(j, "claims");
    if (strcmp(cJSON_IsString(claims) ? claims->valuestring : "", rc->claims) != 0) {
        cJSON_Delete(j);
        recovering_end(rc, R_CLAIMS);
        return;
    }
    snprintf(rc->sid, sizeof(rc->sid), "%s", sid->valuestring);
    size_t count = (size_t)cJSON_GetArraySize(rooms);
    rc->rooms = rc_calloc(count ? count : 1, sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, rooms) if (cJSON_IsString(it)) rc->rooms[rc->nrooms++] = rc_strdup(it->valuestring);
    cJSON_Delete(j);
    if (rc_sio_recover_adopt(rc->p, rc->sid, (const char *const *)rc->rooms, rc->nrooms) != 0) {
        recovering_end(rc, R_ERROR);
        return;
    }
    if (n->bp->ops->when_subscribed) n->bp->ops->when_subscribed(n->bp, on_subscribed, rc);
    else read_page(rc);
}

static int offset_valid(const char *s)
{
    size_t a = strspn(s, "0123456789");
    if (a == 0 || a > 20 || s[a] != '-') return 0;
    size_t b = strspn(s + a + 1, "0123456789");
    return b > 0 && b <= 20 && s[a + 1 + b] == '\0';
}

void rc_node__hook_recover(void *arg, rc_sio_pending *p, int ns_index, const char *pid, const char *offset,
                           const char *user)
{
    rc_node *n = arg;
    recovering *rc = rc_calloc(1, sizeof(*rc));
    rc->n = n;
    rc->p = p;
    rc->ns_index = ns_index;
    rc->user = user ? rc_strdup(user) : NULL;
    claims_digest(rc_sio_recover_claims(p), rc->claims);
    rc->limit = n->cfg->max_outbound_bytes ? n->cfg->max_outbound_bytes : ((size_t)64 << 20);
    rc->scan_max = config_of(n, ns_index)->max_replay_scan;
    rc->started_ns = rc_now_mono_ns();
    if (!rc_node__recovery_enabled(n, (size_t)ns_index) || !offset_valid(offset)) {
        recovering_end(rc, R_UNKNOWN);
        return;
    }
    if (rc_node__gaps_pending(n, ns_index)) { /* a mark this node could not write yet */
        recovering_end(rc, R_GAP);
        return;
    }
    snprintf(rc->last, sizeof(rc->last), "%s", offset);
    char *key = rc_key_new(n->cfg->prefix, RC_KEY_SESSION, pid, NULL);
    /* whose budget: the user's, or the pid's for an anonymous socket ("u:"/"p:" keep them apart) */
    size_t wl = strlen(user ? user : pid) + 3;
    char *who = rc_malloc(wl);
    snprintf(who, wl, "%s:%s", user ? "u" : "p", user ? user : pid);
    const char *ns = rc_ns_rules_name(rc_rules_ns_at(n->cfg->rules, (size_t)ns_index));
    char *count_key = rc_key_new(n->cfg->prefix, RC_KEY_RECOVERIES, ns, who);
    char budget[16];
    snprintf(budget, sizeof(budget), "%u", config_of(n, ns_index)->max_recoveries_per_minute);
    const char *argv[] = {key, n->recovery->history_key[ns_index], count_key, offset, budget};
    int sent = rc_redis_eval(n->bp, &recover_script, session_on_lookup, rc, 3, 5, argv, NULL);
    rc_free(count_key);
    rc_free(who);
    rc_free(key);
    if (sent != 0) recovering_end(rc, R_ERROR);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void rc_node__recovery_write_metrics(const rc_node *n, struct evbuffer *out)
{
    const rc_node_recovery *r = n->recovery;
    if (!r || !r->refresh_ev) return; /* no namespace has recovery: no families */
    rc_metrics_put_by_label(out, "roomcast_recovery_attempts_total", "counter",
                            "CONNECTs that asked for connection state recovery, by result.", "result",
                            result_names, r->results, 0, R__COUNT);
    rc_metrics_put_scalar(out, "roomcast_recovery_replayed_events_total", "counter",
                          "Missed events sent to recovered sockets.", r->replayed);
    rc_metrics_put_scalar(out, "roomcast_recovery_kept_total", "counter",
                          "Emits this node appended to a namespace's history (kept for recovery).", r->kept);
    rc_metrics_put_scalar(out, "roomcast_recovery_kept_heard_total", "counter",
                          "Backends' plain PUBLISHes with an id to a kept room that this node asked the history "
                          "script to keep (once cluster-wide: every node that hears one asks).", r->kept_heard);
    rc_node__gaps_write_metrics(n, out);
    rc_metrics_put_scalar(out, "roomcast_recovery_session_writes_total", "counter",
                          "Recoverable sessions written to Redis (changes and refreshes).", r->session_writes);
    rc_metrics_put_scalar(out, "roomcast_recovery_presence_graced_total", "counter",
                          "Sockets whose presence was kept for their window after they left (presenceGrace).",
                          r->graced);
}
