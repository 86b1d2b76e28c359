/*
 * redis_cmd.c: include/roomcast/redis_cmd.h, the Redis commands, scripts and raw channels that
 * modules with state in Redis (presence.c, jobs.c, node.c's notify channel) use on the
 * backplane's connections. Called by those modules; backplane_redis.c calls back in through
 * the redis_cmd__* functions (src/backplane_redis.h) with replies and lost connections.
 *
 * Commands: rc_redis_command and rc_redis_eval go on the backplane's cmd connection through the
 * same in-flight ring as PUBLISH (redis_conn.c), so they get the same backlog bounds and the
 * same command timeout (a stuck reply tears everything down like any other). Each ring entry
 * carries the module's callback. When a connection goes away, its module entries are queued in
 * `failed` and answered with reply NULL from fail_ev (the loop), in the order they were sent;
 * redis_cmd__dispose (the backplane's free) answers them NULL on the spot.
 *
 * Scripts: the SHA-1 of a script is computed once (OpenSSL). The first call of a script on a
 * connection goes as EVAL (Redis caches it), later ones as EVALSHA pipelined behind it, so a
 * Redis that restarted empty never answers NOSCRIPT to a burst of calls. A NOSCRIPT that still
 * comes (SCRIPT FLUSH) is retried once as EVAL from the copy of the arguments kept with the call
 * (the retry then runs after whatever was pipelined behind the first attempt).
 *
 * Raw channels: kept in the backplane's subscription set (backplane_redis.c), subscribed,
 * batched, resubscribed and freed exactly like room channels; their messages reach on_raw
 * without parsing.
 *
 * What it does not do: open connections, queue while Redis is down (every call returns -1 then),
 * or retry anything but NOSCRIPT. On the embedded backplane every call refuses or does nothing.
 *
 * Ownership: arguments are borrowed for the call (rc_redis_eval copies them for the retry); a
 * script's source is static and its sha is filled in place; reply callbacks run from the loop
 * with a reply valid only during the call, or NULL when the connection failed or timed out.
 */
#include "roomcast/redis_cmd.h"

#include "backplane_redis.h"
#include "roomcast/common.h"
#include "roomcast/log.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A script call kept until answered, so that a NOSCRIPT reply can be retried as EVAL: one
 * allocation holding the arguments after "EVALSHA sha nkeys". */
typedef struct redis_script_call {
    const char *source;       /* the script's Lua text (static, per redis_cmd.h) */
    char sha[41];
    int nkeys, argc;
    int retried;              /* already sent again as EVAL once */
    const char **argv;        /* into the same allocation */
    size_t *argvlen;
} redis_script_call;

/* ---- answering modules ------------------------------------------------------------------------ */

/* Calls a module callback; the backplane's free is asserted not to happen inside it. */
static void module_callback(redis_cmd_state *s, const redis_conn_cmd *f, const redisReply *reply)
{
    s->in_callback++;
    if (f->cb) f->cb(f->arg, reply);
    s->in_callback--;
}

/* Answers every queued failure with reply NULL. Callbacks may send new commands meanwhile. */
static void run_failed(redis_cmd_state *s)
{
    while (s->nfailed) {
        redis_conn_cmd *list = s->failed;
        size_t n = s->nfailed;
        s->failed = NULL;
        s->nfailed = s->failed_cap = 0;
        for (size_t i = 0; i < n; i++) {
            module_callback(s, &list[i], NULL);
            rc_free(list[i].call);
        }
        rc_free(list);
    }
}

static void on_fail_ev(evutil_socket_t fd, short what, void *arg)
{
    run_failed(arg);
}

void redis_cmd__on_unanswered(redis_cmd_state *s, const redis_conn_cmd *f)
{
    if (f->kind != BP_CMD_MODULE && f->kind != BP_CMD_SCRIPT) return;
    if (s->nfailed == s->failed_cap) {
        s->failed_cap = s->failed_cap ? s->failed_cap * 2 : 16;
        s->failed = rc_realloc(s->failed, s->failed_cap * sizeof(*s->failed));
    }
    s->failed[s->nfailed++] = *f;
    if (s->fail_ev) event_active(s->fail_ev, EV_TIMEOUT, 0);
}

/* ---- scripts ---------------------------------------------------------------------------------- */

static int sha_loaded(const redis_cmd_state *s, const char *sha)
{
    for (size_t i = 0; i < s->nloaded; i++)
        if (memcmp(s->loaded[i], sha, 40) == 0) return 1;
    return 0;
}

static void sha_forget(redis_cmd_state *s, const char *sha)
{
    for (size_t i = 0; i < s->nloaded; i++) {
        if (memcmp(s->loaded[i], sha, 40) != 0) continue;
        memcpy(s->loaded[i], s->loaded[s->nloaded - 1], 41);
        s->nloaded--;
        return;
    }
}

static void sha_remember(redis_cmd_state *s, const char *sha)
{
    if (sha_loaded(s, sha)) return;
    if (s->nloaded == s->loaded_cap) {
        s->loaded_cap = s->loaded_cap ? s->loaded_cap * 2 : 8;
        s->loaded = rc_realloc(s->loaded, s->loaded_cap * sizeof(*s->loaded));
    }
    memcpy(s->loaded[s->nloaded++], sha, 41);
}

void redis_cmd__conn_closed(redis_cmd_state *s)
{
    s->nloaded = 0;
}

static void script_sha(rc_redis_script *script)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(script->source, strlen(script->source), md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20)
        abort(); /* SHA-1 is always there in OpenSSL 3; nothing sensible to do otherwise */
    for (unsigned i = 0; i < 20; i++) {
        script->sha[2 * i] = hex[md[i] >> 4];
        script->sha[2 * i + 1] = hex[md[i] & 15];
    }
    script->sha[40] = '\0';
}

/* Sends call as EVALSHA, or as EVAL when the script was not yet sent on this connection (its
 * first call) or Redis answered NOSCRIPT. Commands on one connection run in order, so every
 * EVALSHA pipelined behind the EVAL finds the script loaded. */
static int eval_send(redis_cmd_state *s, redis_conn *cmd, redis_script_call *call,
                     rc_redis_reply_fn cb, void *arg, int as_eval)
{
    char nkeys[16];
    size_t need = (size_t)call->argc + 3;
    if (need > s->eargv_cap) {
        size_t cap = s->eargv_cap ? s->eargv_cap : 64;
        while (cap < need) cap *= 2;
        rc_free(s->eargv);
        rc_free(s->eargvlen);
        s->eargv = rc_malloc(cap * sizeof(*s->eargv));
        s->eargvlen = rc_malloc(cap * sizeof(*s->eargvlen));
        s->eargv_cap = cap;
    }
    if (!as_eval && !sha_loaded(s, call->sha)) as_eval = 1;
    snprintf(nkeys, sizeof(nkeys), "%d", call->nkeys);
    s->eargv[0] = as_eval ? "EVAL" : "EVALSHA";
    s->eargvlen[0] = as_eval ? 4 : 7;
    s->eargv[1] = as_eval ? call->source : call->sha;
    s->eargvlen[1] = as_eval ? strlen(call->source) : 40;
    s->eargv[2] = nkeys;
    s->eargvlen[2] = strlen(nkeys);
    for (int i = 0; i < call->argc; i++) {
        s->eargv[3 + i] = call->argv[i];
        s->eargvlen[3 + i] = call->argvlen[i];
    }
    int rc = redis_conn_command(cmd, BP_CMD_SCRIPT, cb, arg, call, (int)need, s->eargv, s->eargvlen);
    if (rc == 0 && as_eval) sha_remember(s, call->sha);
    if (s->eargv_cap > 4096) { /* one huge call does not pin its scratch vector */
        rc_free(s->eargv);
        rc_free(s->eargvlen);
        s->eargv = NULL;
        s->eargvlen = NULL;
        s->eargv_cap = 0;
    }
    return rc;
}

void redis_cmd__on_reply(redis_cmd_state *s, redis_conn *cmd, const redis_conn_cmd *f,
                         const redisReply *reply)
{
    if (f->kind == BP_CMD_SCRIPT && reply->type == REDIS_REPLY_ERROR && !f->call->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* Redis forgot the script (restart behind a proxy, SCRIPT FLUSH): send it again as EVAL.
         * It now runs after the commands pipelined behind the first attempt. */
        s->noscript++;
        f->call->retried = 1;
        sha_forget(s, f->call->sha);
        if (eval_send(s, cmd, f->call, f->cb, f->arg, 1) == 0) return;
        module_callback(s, f, NULL);
        rc_free(f->call);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s->errors++;
        rc_log_debug("redis_command_error", "error=\"%s\"", reply->str);
    }
    module_callback(s, f, reply);
    rc_free(f->call);
}

/* ---- lifetime --------------------------------------------------------------------------------- */

void redis_cmd__init(redis_cmd_state *s, struct event_base *base)
{
    s->fail_ev = event_new(base, -1, 0, on_fail_ev, s);
}

void redis_cmd__dispose(redis_cmd_state *s)
{
    /* Module commands still unanswered get reply NULL now: their owners release what they
     * attached (any command they send from the callback is refused: the backplane is closed). */
    run_failed(s);
    event_free(s->fail_ev);
    rc_free(s->failed);
    rc_free(s->loaded);
    rc_free(s->eargv);
    rc_free(s->eargvlen);
    memset(s, 0, sizeof(*s));
}

/* ---- redis_cmd.h ------------------------------------------------------------------------------ */

int rc_redis_available(const rc_backplane *bp)
{
    return redis_bp__from(bp) ? 1 : 0;
}

const char *rc_redis_prefix(const rc_backplane *b)
{
    const redis_bp *bp = redis_bp__from(b);
    return bp ? redis_bp__prefix(bp) : NULL;
}

int rc_redis_command(rc_backplane *b, rc_redis_reply_fn cb, void *arg, int argc, const char **argv,
                     const size_t *argvlen)
{
    redis_bp *bp = redis_bp__from(b);
    if (!bp || argc < 1 || !argv) return -1;
    redis_conn *cmd = redis_bp__cmd_conn_if_up(bp);
    if (!cmd) return -1;
    if (redis_conn_command(cmd, BP_CMD_MODULE, cb, arg, NULL, argc, argv, argvlen) != 0) return -1;
    redis_bp__cmd_state(bp)->commands++;
    return 0;
}

int rc_redis_eval(rc_backplane *b, rc_redis_script *script, rc_redis_reply_fn cb, void *arg,
                  int nkeys, int argc, const char **argv, const size_t *argvlen)
{
    redis_bp *bp = redis_bp__from(b);
    if (!bp || !script || !script->source || nkeys < 0 || argc < nkeys || (argc && !argv))
        return -1;
    redis_conn *cmd = redis_bp__cmd_conn_if_up(bp);
    if (!cmd) return -1;
    redis_cmd_state *s = redis_bp__cmd_state(bp);
    if (!script->sha[0]) script_sha(script);

    /* The arguments are copied (one allocation) so that a NOSCRIPT reply can be retried. */
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    size_t head = sizeof(redis_script_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    redis_script_call *call = rc_malloc(head + bytes + 1);
    call->source = script->source;
    memcpy(call->sha, script->sha, 41);
    call->nkeys = nkeys;
    call->argc = argc;
    call->retried = 0;
    call->argvlen = (size_t *)(void *)(call + 1);
    call->argv = (const char **)(void *)(call->argvlen + argc);
    char *p = (char *)(call->argv + argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], n);
        call->argv[i] = p;
        call->argvlen[i] = n;
        p += n;
    }
    if (eval_send(s, cmd, call, cb, arg, 0) != 0) {
        rc_free(call);
        return -1;
    }
    s->commands++;
    return 0;
}

void rc_redis_channel_open(rc_backplane *b, const char *channel)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp) redis_bp__channel_open(bp, channel);
}

void rc_redis_channel_close(rc_backplane *b, const char *channel)
{
    redis_bp *bp = redis_bp__from(b);
    if (bp && channel) redis_bp__channel_close(bp, channel);
}
