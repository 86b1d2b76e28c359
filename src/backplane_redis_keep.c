/*
 * backplane_redis_keep.c: rc_backplane_ops.publish_kept for the Redis backplane (contract:
 * include/roomcast/backplane.h; the design: docs/recovery.md). An emit kept for connection state
 * recovery is appended to the namespace's history stream and published with its offset by one
 * Lua script, so the offset exists before anyone receives the emit, and every subscriber hears
 * kept emits in the order of the stream (Redis runs scripts one at a time, and pub/sub messages
 * reach a subscriber in the order they were published).
 *
 * The stream entry holds what a replay needs to rebuild the packet: r = the room ("" for the
 * whole namespace), x = the socket ids left out (space-separated), v = the event, a = its
 * arguments (JSON array text). The published envelope is the ordinary one (backplane_envelope.c)
 * with "offset" added by the script.
 *
 * A caller may ask to be told when Redis answers an error (rc_bp_keep.done): the node then
 * delivers a backend's plain PUBLISH itself instead of waiting for a kept copy that will never
 * come (src/node_recovery_gap.c).
 *
 * What it does not do: binary emits (the node never asks: docs/recovery.md), read the history
 * (src/node_recovery.c does), or decide what is kept (the node asks the rules).
 */
#include "backplane_redis.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/redis_cmd.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* KEYS[1] the history stream, KEYS[2] (optional) the once key. ARGV: window ms, max length,
 * channel, envelope without its closing brace, room, except, event, args. Returns the offset,
 * or false when the once key existed (another node kept it already). */
static rc_redis_script keep_script = {
    "if #KEYS > 1 and not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return false end\n"
    "local t = redis.call('TIME')\n"
    "local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[1])\n"
    "local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'r', ARGV[5], 'x', ARGV[6],"
    " 'v', ARGV[7], 'a', ARGV[8])\n"
    "if minid > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', minid) end\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[4] .. ',\"offset\":\"' .. id .. '\"}')\n"
    "return id\n",
    {0}};

static void keep_on_reply(void *arg, const redisReply *reply)
{
    redis_bp *bp = arg;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        bp->super.stats.publish_failures++;
        rc_log_warn("redis_keep_failed", "error=\"%s\"", reply ? reply->str : "connection lost");
    }
}

/* A kept emit whose caller asked to be told how it ended (rc_bp_keep.done). */
typedef struct keep_call {
    redis_bp *bp;
    void (*done)(void *arg, int failed);
    void *arg;
} keep_call;

static void keep_on_reply_done(void *arg, const redisReply *reply)
{
    keep_call *c = arg;
    keep_on_reply(c->bp, reply);
    c->done(c->arg, reply && reply->type == REDIS_REPLY_ERROR);
    rc_free(c);
}

int redis_bp__publish_kept(rc_backplane *b, const rc_bp_message *msg, const rc_bp_keep *keep)
{
    redis_bp *bp = redis_bp__from(b);
    if (!bp || bp->phase != BP_UP || msg->kind != RC_BP_EMIT || msg->attachment_count || !msg->event) {
        if (bp) bp->super.stats.publish_failures++;
        return -1;
    }
    rc_bp_message m = *msg;
    m.offset = NULL;
    if (!redis_bp__ns_valid(msg->ns) || (msg->room && !msg->room[0]) ||
        bp_envelope_encode(&bp->payload_buf, &m, bp->node_id) != 0) {
        bp->super.stats.publish_failures++;
        rc_log_debug("redis_publish_refused", "ns=\"%s\" kind=%d", msg->ns ? msg->ns : "", msg->kind);
        return -1;
    }
    redis_bp__channel_build(bp, &bp->chan_buf, msg->ns, msg->room);
    bp_buf except = {0};
    for (size_t i = 0; i < msg->except_count; i++) {
        if (i) bp_buf_put(&except, " ", 1);
        bp_buf_puts(&except, msg->except[i] ? msg->except[i] : "");
    }
    char window[24], maxlen[24];
    snprintf(window, sizeof(window), "%u", keep->window_ms);
    snprintf(maxlen, sizeof(maxlen), "%lu", keep->max_length);
    const char *args = msg->args_json && msg->args_len ? msg->args_json : "[]";
    size_t args_len = msg->args_json && msg->args_len ? msg->args_len : 2;
    int nkeys = keep->once_key ? 2 : 1;
    const char *argv[10];
    size_t lens[10];
    int k = 0;
    argv[k] = keep->history_key; lens[k++] = strlen(keep->history_key);
    if (keep->once_key) { argv[k] = keep->once_key; lens[k++] = strlen(keep->once_key); }
    argv[k] = window; lens[k++] = strlen(window);
    argv[k] = maxlen; lens[k++] = strlen(maxlen);
    argv[k] = bp->chan_buf.p; lens[k++] = bp->chan_buf.len;
    argv[k] = bp->payload_buf.p; lens[k++] = bp->payload_buf.len - 1; /* without its '}' */
    argv[k] = msg->room ? msg->room : ""; lens[k++] = msg->room ? strlen(msg->room) : 0;
    argv[k] = except.p ? except.p : ""; lens[k++] = except.len;
    argv[k] = msg->event; lens[k++] = strlen(msg->event);
    argv[k] = args; lens[k++] = args_len;
    keep_call *call = NULL;
    if (keep->done) {
        call = rc_malloc(sizeof(*call));
        *call = (keep_call){bp, keep->done, keep->done_arg};
    }
    int rc = call ? rc_redis_eval(b, &keep_script, keep_on_reply_done, call, nkeys, k, argv, lens)
                  : rc_redis_eval(b, &keep_script, keep_on_reply, bp, nkeys, k, argv, lens);
    bp_buf_dispose(&except);
    bp_buf_trim(&bp->payload_buf);
    if (rc != 0) {
        rc_free(call);
        bp->super.stats.publish_failures++;
        return -1;
    }
    bp->super.stats.publishes++;
    return 0;
}
