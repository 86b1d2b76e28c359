/*
 * presence_reply.c: presence's Redis mode, the answering side: what each script's reply means,
 * handed to the node (status news, member changes, query and member-list answers, on_drained)
 * and to the phases (a node found swept resets, a reset that is done registers, a sweep with
 * more left goes on). Contract: src/presence_internal.h; replies' shapes: docs/redis.md
 * ("Presence"); the calls and phases: presence_redis.c, which reaches this file only through
 * p->on_reply.
 *
 * Lifetimes: every call carries a pr_req listed in p->inflight; rc_presence_free orphans them
 * (req->p = NULL), and a reply to an orphan only frees it (the backplane answers every call,
 * with NULL at the latest when it is freed). A reply from before an on_state(0) (req->gen is
 * not p->gen) is still handed to the node but moves no phase. A LEAVE whose reply is lost goes
 * back to the removal queue: the entry may still be in Redis.
 *
 * What it does not do: decide when to send (presence_redis.c) or change the local tables.
 */
#include "presence_internal.h"

#include "roomcast/common.h"
#include "roomcast/log.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>

static long long reply_int(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements) return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return atoll(e->str);
    return 0;
}

/* (ns, room, user) triples from element `from` on: members that joined or left as a whole. */
static void reply_members(rc_presence *p, const redisReply *r, size_t from, int joined)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = from; i + 2 < r->elements; i += 3) {
        const redisReply *ns = r->element[i], *room = r->element[i + 1], *user = r->element[i + 2];
        if (ns->type != REDIS_REPLY_STRING || room->type != REDIS_REPLY_STRING ||
            user->type != REDIS_REPLY_STRING)
            continue;
        if (p->cb.on_member) p->cb.on_member(p->cb.arg, ns->str, room->str, user->str, joined);
    }
}

static void on_sweep_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err, int current)
{
    if (current) {
        if (r->kind == REQ_SWEEP) p->sweep_inflight = 0;
        if (r->kind == REQ_RESET) p->reset_inflight = 0;
    }
    if (r->kind == REQ_DRAIN) p->drain_inflight = 0;
    if (err) {
        if (r->kind == REQ_DRAIN && p->cb.on_drained) p->cb.on_drained(p->cb.arg, err);
        return; /* a reset or sweep is tried again by the next tick or reconnect */
    }
    long long more = reply_int(reply, 0), nodes = reply_int(reply, 1), conns = reply_int(reply, 2),
              offline = reply_int(reply, 3);
    if (r->kind == REQ_SWEEP) {
        p->swept_nodes += (uint64_t)nodes;
        p->swept_conns += (uint64_t)conns;
        p->swept_offline += (uint64_t)offline;
    }
    if (nodes || conns)
        rc_log_info("presence_sweep", "mode=%s nodes=%lld connections=%lld offline=%lld more=%lld",
                    r->kind == REQ_SWEEP ? "dead" : r->kind == REQ_RESET ? "reset" : "drain", nodes,
                    conns, offline, more);
    reply_members(p, reply, 4, 0);

    switch (r->kind) {
    case REQ_SWEEP:
        if (more && current && p->phase == PH_LIVE && !p->draining)
            rc_presence__send_sweep(p, REQ_SWEEP);
        break;
    case REQ_RESET:
        if (!current || p->draining || p->phase != PH_RESETTING) break;
        if (more) {
            rc_presence__send_sweep(p, REQ_RESET);
            break;
        }
        p->need_reset = 0;
        rc_presence__removals_clear(p); /* what they would remove is gone */
        rc_presence__register(p);
        break;
    case REQ_DRAIN:
        if (more && rc_presence__send_sweep(p, REQ_DRAIN) == 0) break;
        if (!more) p->drained = 1;
        if (p->cb.on_drained)
            p->cb.on_drained(p->cb.arg, more ? RC_PRESENCE_EDOWN : RC_PRESENCE_OK);
        break;
    }
}

static void on_query_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err)
{
    if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements != r->n + 1))
        err = RC_PRESENCE_EFAIL;
    if (r->kind == REQ_RESYNC) {
        /* A change missed while disconnected reaches on_status. A user the watchers were never
         * told about (known -1) is reported too: their first answer may have come from a query,
         * and a repeat is harmless where a missed change is not. The node's own query answers
         * teach nothing here: the socket that asked is not necessarily a watcher. */
        uint64_t ts = err ? 0 : (uint64_t)reply_int(reply, 0);
        for (size_t i = 0; !err && i < r->n; i++)
            rc_presence__status_deliver(p, r->s[i], reply_int(reply, i + 1) == 1, ts);
        return;
    }
    if (!p->cb.on_query) return;
    if (err) {
        p->cb.on_query(p->cb.arg, r->tag, err, r->s, NULL, r->n);
        return;
    }
    unsigned char *online = rc_malloc(r->n ? r->n : 1);
    for (size_t i = 0; i < r->n; i++) online[i] = reply_int(reply, i + 1) == 1;
    p->cb.on_query(p->cb.arg, r->tag, 0, r->s, online, r->n);
    rc_free(online);
}

static void on_members_reply(rc_presence *p, pr_req *r, const redisReply *reply, int err)
{
    if (!err && (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1)) err = RC_PRESENCE_EFAIL;
    if (err) {
        if (p->cb.on_members)
            p->cb.on_members(p->cb.arg, r->tag, err, r->s[0], r->s[1], NULL, 0, 0);
        return;
    }
    size_t n = 0;
    const char **users = rc_malloc(reply->elements * sizeof(*users));
    for (size_t i = 1; i < reply->elements; i++)
        if (reply->element[i]->type == REDIS_REPLY_STRING) users[n++] = reply->element[i]->str;
    rc_presence__answer_members(p, r, users, n, (size_t)reply_int(reply, 0));
    rc_free(users);
}

/* Every script call is answered here (p->on_reply), once: with NULL when the connection failed
 * before the answer, or when the backplane is freed. */
void rc_presence__on_reply(void *arg, const redisReply *reply)
{
    pr_req *r = arg;
    rc_presence *p = r->p;
    if (!p) { /* orphaned by rc_presence_free */
        rc_free(r);
        return;
    }
    rc_presence__inflight_unlink(p, r);
    int current = r->gen == p->gen;
    int err = !reply ? RC_PRESENCE_EDOWN
            : reply->type == REDIS_REPLY_ERROR ? RC_PRESENCE_EFAIL : RC_PRESENCE_OK;
    if (err) {
        p->errors++;
        if (reply) rc_log_warn("presence_redis_error", "kind=%d error=\"%s\"", r->kind, reply->str);
    }

    switch (r->kind) {
    case REQ_JOIN:
        if (err == RC_PRESENCE_EFAIL) p->rereg_needed = 1; /* a NULL is healed by the reconnect */
        if (err) break;
        if (reply_int(reply, 0) < 0) { /* we were swept: not registered any more */
            if (current && p->phase == PH_LIVE && !p->draining) {
                rc_log_warn("presence_node_swept", "node=%s action=reset", p->node_id);
                rc_presence__start_reset(p);
            }
            break;
        }
        reply_members(p, reply, 1, 1);
        break;
    case REQ_LEAVE:
        if (err) { /* sent again by the next tick or registration, never in a tight loop */
            if (p->draining) break;
            rc_presence__removal_queue(p, r);
            return;
        }
        reply_members(p, reply, 1, 0);
        break;
    case REQ_HEARTBEAT:
        if (err || !current || p->phase != PH_LIVE || p->draining) break;
        if (reply->type != REDIS_REPLY_INTEGER) break;
        if (reply->integer < 0) {
            rc_log_warn("presence_node_swept", "node=%s action=reset", p->node_id);
            rc_presence__start_reset(p);
        } else if (reply->integer == 1 && !r->flag) {
            rc_log_warn("presence_node_missing", "node=%s action=reregister", p->node_id);
            rc_presence__send_join_batches(p);
        }
        break;
    case REQ_SWEEP:
    case REQ_RESET:
    case REQ_DRAIN:
        on_sweep_reply(p, r, reply, err, current);
        break;
    case REQ_QUERY:
    case REQ_RESYNC:
        on_query_reply(p, r, reply, err);
        break;
    case REQ_MEMBERS:
        on_members_reply(p, r, reply, err);
        break;
    case REQ_VISIBLE:
        break;
    }
    rc_free(r);
}
