/*
 * backplane_redis_recv.c: what the Redis backplane's sub connection receives (its on_push).
 * Shared state and the other files: src/backplane_redis.h; channels and envelopes:
 * docs/redis.md ("Pub/sub channels").
 *
 * Every push is one of:
 *   - an error reply to a SUBSCRIBE-family command: the backplane fails;
 *   - the confirmation of the canary channel's SUBSCRIBE: the resync is complete (sub_synced),
 *     the canary may go (backplane_redis_phase.c);
 *   - any other (P)SUBSCRIBE confirmation: one step of the subscription barrier
 *     (backplane_redis_subs.c);
 *   - a message on the canary channel: backplane_redis_phase.c checks the token;
 *   - a message on a raw channel: handed to on_raw unparsed; on a room or namespace channel:
 *     decoded (backplane_envelope.c), counted, and handed to on_message unless refused or our
 *     own echo; a pmessage of a pattern (rc_redis_pattern_open): on_pattern with the prefix it
 *     was opened with and the channel it came on; a pmessage of a listen entry
 *     (rc_redis_listen_open): decoded like a room's message and handed to on_overheard.
 * A refused envelope reaches nobody: it is counted (roomcast_redis_messages_invalid_total) and
 * logged as redis_bad_message at warn level, at most once a second (the lines in between are
 * counted in the next one's `suppressed`), so a misbehaving backend is seen without flooding
 * the log.
 * UNSUBSCRIBE confirmations and anything else are ignored. A message for a channel closed since
 * (its UNSUBSCRIBE still in flight) is dropped silently.
 *
 * What it does not do: send anything, or time anything (sub_last_push_ms is for the canary's
 * judgement in backplane_redis_phase.c). Numbers in received "args"/"data" pass through cJSON,
 * so integers beyond 2^53 lose precision.
 *
 * Ownership: the reply is hiredis's, valid during the call; a message handed up is valid only
 * during on_message/on_raw.
 */
#include "backplane_redis.h"

#include "roomcast/common.h"
#include "roomcast/log.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

enum { REFUSED_LOG_INTERVAL_MS = 1000 };

/* A name from the wire as a quoted log value: at most cap - 1 bytes, with '"', '\\' and control
 * characters replaced by '?'. */
static const char *log_text(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? '?' : *s;
    out[n] = '\0';
    return out;
}

/* One warn line per REFUSED_LOG_INTERVAL_MS at most; the others are counted into the next. */
static void log_refused(redis_bp *bp, const char *channel, const bp_envelope *env)
{
    uint64_t now = rc_now_mono_ms();
    if (bp->invalid_logged_ms && now - bp->invalid_logged_ms < REFUSED_LOG_INTERVAL_MS) {
        bp->invalid_suppressed++;
        return;
    }
    char chan[256], field[64];
    rc_log_warn("redis_bad_message", "channel=\"%s\" reason=\"%s\" field=\"%s\" suppressed=%llu",
                log_text(chan, sizeof(chan), channel), env->why ? env->why : "",
                log_text(field, sizeof(field), env->field), (unsigned long long)bp->invalid_suppressed);
    bp->invalid_logged_ms = now;
    bp->invalid_suppressed = 0;
}

static void deliver(redis_bp *bp, const bp_chan *e, const char *payload, size_t len)
{
    bp_envelope env;
    switch (bp_envelope_decode(&env, payload, len, bp->node_id)) {
    case BP_ENVELOPE_OK:
        env.msg.ns = e->ns;
        env.msg.room = e->room;
        bp->super.stats.receives++;
        if (bp->cb.on_message) {
            bp->in_callback++;
            bp->cb.on_message(bp->cb.arg, &env.msg);
            bp->in_callback--;
        }
        break;
    case BP_ENVELOPE_OWN:
        bp->own++;
        break;
    default:
        bp->invalid++;
        log_refused(bp, e->name, &env);
        break;
    }
    bp_envelope_dispose(&env);
}

static void raw_deliver(redis_bp *bp, const char *name, const char *payload, size_t len)
{
    bp->raw_received++;
    if (!bp->cb.on_raw) return;
    bp->in_callback++;
    bp->cb.on_raw(bp->cb.arg, name, payload, len);
    bp->in_callback--;
}

/* A message heard through a listen entry (rc_redis_listen_open): decoded as a room's, handed to
 * on_overheard, never delivered. Our own echo and envelopes refused by the decoder are dropped
 * silently: the node publishes its own messages itself, and a refused envelope is counted and
 * logged by whichever node is subscribed to its channel. */
static void overheard(redis_bp *bp, const bp_chan *e, const char *channel, const char *payload, size_t len)
{
    size_t skip = 0;
    if (e->listen_rooms) { /* "P:room:<ns>:<room>": the room after the pattern's literal part */
        skip = strlen(bp->prefix) + strlen(":room:") + strlen(e->listen_ns) + 1;
        if (strlen(channel) < skip) return;
    }
    bp->overheard++;
    if (!bp->cb.on_overheard) return;
    bp_envelope env;
    if (bp_envelope_decode(&env, payload, len, bp->node_id) == BP_ENVELOPE_OK) {
        env.msg.ns = e->listen_ns;
        env.msg.room = e->listen_rooms ? channel + skip : NULL;
        bp->in_callback++;
        bp->cb.on_overheard(bp->cb.arg, &env.msg);
        bp->in_callback--;
    }
    bp_envelope_dispose(&env);
}

void redis_bp__message(redis_bp *bp, const char *chan, size_t chanlen, const char *payload,
                       size_t len)
{
    bp_chan *e = redis_bp__chan_find(bp, chan, chanlen);
    if (!e) return;
    /* An entry closed from inside on_raw stays allocated until the next flush. */
    if (e->raw_refs) raw_deliver(bp, e->name, payload, len);
    if (e->wanted) deliver(bp, e, payload, len); /* else: closed since */
}

void redis_bp__on_push(void *arg, redis_conn *c, redisReply *reply)
{
    redis_bp *bp = arg;
    bp->sub_last_push_ms = rc_now_mono_ms();

    if (reply->type == REDIS_REPLY_ERROR) {
        char reason[200];
        snprintf(reason, sizeof(reason), "SUBSCRIBE refused: %s", reply->str);
        redis_bp__fail(bp, reason);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = reply->element[0]->str;
    const redisReply *chan = reply->element[1];
    int is_canary = chan->len == strlen(bp->canary_channel) &&
                    memcmp(chan->str, bp->canary_channel, chan->len) == 0;

    if (strcmp(kind, "message") == 0) {
        const redisReply *payload = reply->element[2];
        if (payload->type != REDIS_REPLY_STRING) return;
        if (is_canary) {
            redis_bp__on_canary(bp, payload->str, payload->len);
            return;
        }
        redis_bp__message(bp, chan->str, chan->len, payload->str, payload->len);
    } else if (strcmp(kind, "subscribe") == 0 && is_canary) {
        bp->sub_synced = 1;
        redis_bp__maybe_probe(bp);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0) {
        redis_bp__sub_confirmed(bp);
    } else if (strcmp(kind, "pmessage") == 0 && reply->elements >= 4 &&
               reply->element[2]->type == REDIS_REPLY_STRING &&
               reply->element[3]->type == REDIS_REPLY_STRING) {
        /* [pmessage, pattern, channel, payload]: to on_pattern with the prefix and the channel */
        bp_chan *e = redis_bp__pattern_find(bp, chan->str, chan->len);
        if (!e || !e->raw_refs) return;
        if (e->listen_ns) {
            overheard(bp, e, reply->element[2]->str, reply->element[3]->str, reply->element[3]->len);
            return;
        }
        bp->raw_received++;
        if (!bp->cb.on_pattern) return;
        bp->in_callback++;
        bp->cb.on_pattern(bp->cb.arg, e->prefix, reply->element[2]->str, reply->element[3]->str,
                          reply->element[3]->len);
        bp->in_callback--;
    }
}
