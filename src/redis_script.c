/*
 * redis_script.c: modules' commands and Lua scripts on one redis_conn (contract:
 * src/redis_script.h). Called by backplane_redis_cmd.c for rc_redis_command and rc_redis_eval;
 * calls only redis_conn.c, and is called back by it, through the fn each command carries, with
 * the reply or with NULL.
 *
 * Each call is one allocation (script_call): the module's callback and argument, and for a
 * script the copy of its arguments a NOSCRIPT retry needs. It is the arg of the connection's
 * ring entry and is freed right after the module's callback ran.
 *
 * Scripts: the SHA-1 of a script is computed once (OpenSSL). `loaded` lists the scripts sent as
 * EVAL in the connection's current session (redis_conn's `opens`; a new session empties it), so
 * the first call goes as EVAL and later ones as EVALSHA pipelined behind it. A NOSCRIPT reply
 * (SCRIPT FLUSH) is retried once as EVAL; the retry then runs after whatever was pipelined
 * behind the first attempt.
 *
 * What it does not do: pick a connection, refuse while Redis is down, or queue (the caller does
 * or does not send); retry anything but NOSCRIPT; look at replies beyond errors.
 *
 * Ownership: a script_call belongs to the connection's ring entry until answered. Reply
 * callbacks get a reply valid only during the call, or NULL.
 */
#include "redis_script.h"

#include "roomcast/common.h"
#include "roomcast/log.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One call, kept until answered. A script call holds, in the same allocation, the arguments
 * after "EVALSHA sha nkeys", so that a NOSCRIPT reply can be retried as EVAL. */
typedef struct script_call {
    redis_script_state *s;
    rc_redis_reply_fn cb;     /* the module's, may be NULL */
    void *arg;
    const char *source;       /* the script's Lua text (static, per redis_cmd.h); NULL: a command */
    char sha[41];
    int nkeys, argc;
    int retried;              /* already sent again as EVAL once */
    const char **argv;        /* into the same allocation */
    size_t *argvlen;
} script_call;

/* ---- answering modules ------------------------------------------------------------------------ */

static void call_answer(script_call *call, const redisReply *reply)
{
    if (call->cb) call->cb(call->arg, reply);
    rc_free(call);
}

static int eval_send(redis_script_state *s, redis_conn *c, script_call *call, int as_eval);

/* The connection's answer to a call (redis_conn_reply_fn): NULL when the connection went away. */
static void call_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *reply)
{
    script_call *call = arg;
    redis_script_state *s = call->s;
    if (!reply) {
        call_answer(call, NULL);
        return;
    }
    if (call->source && reply->type == REDIS_REPLY_ERROR && !call->retried &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* Redis forgot the script (restart behind a proxy, SCRIPT FLUSH): send it again as EVAL.
         * It now runs after the commands pipelined behind the first attempt. */
        s->noscript++;
        call->retried = 1;
        for (size_t i = 0; i < s->nloaded; i++) { /* forget it */
            if (memcmp(s->loaded[i], call->sha, 40) != 0) continue;
            memcpy(s->loaded[i], s->loaded[s->nloaded - 1], 41);
            s->nloaded--;
            break;
        }
        if (eval_send(s, c, call, 1) == 0) return;
        call_answer(call, NULL);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s->errors++;
        rc_log_debug("redis_command_error", "error=\"%s\"", reply->str);
    }
    call_answer(call, reply);
}

/* ---- scripts ---------------------------------------------------------------------------------- */

/* 1 when sha went as EVAL in c's current session (a new session forgets them all). */
static int sha_loaded(redis_script_state *s, const redis_conn *c, const char *sha)
{
    if (s->loaded_session != c->opens) {
        s->nloaded = 0;
        s->loaded_session = c->opens;
    }
    for (size_t i = 0; i < s->nloaded; i++)
        if (memcmp(s->loaded[i], sha, 40) == 0) return 1;
    return 0;
}

static void sha_remember(redis_script_state *s, const redis_conn *c, const char *sha)
{
    if (sha_loaded(s, c, sha)) return;
    if (s->nloaded == s->loaded_cap) {
        s->loaded_cap = s->loaded_cap ? s->loaded_cap * 2 : 8;
        s->loaded = rc_realloc(s->loaded, s->loaded_cap * sizeof(*s->loaded));
    }
    memcpy(s->loaded[s->nloaded++], sha, 41);
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

/* Sends call as EVALSHA, or as EVAL when the script was not yet sent in this session (its first
 * call) or Redis answered NOSCRIPT. Commands on one connection run in order, so every EVALSHA
 * pipelined behind the EVAL finds the script loaded. */
static int eval_send(redis_script_state *s, redis_conn *c, script_call *call, int as_eval)
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
    if (!as_eval && !sha_loaded(s, c, call->sha)) as_eval = 1;
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
    int rc = redis_conn_command(c, call_on_reply, call, (int)need, s->eargv, s->eargvlen);
    if (rc == 0 && as_eval) sha_remember(s, c, call->sha);
    if (s->eargv_cap > 4096) { /* one huge call does not pin its scratch vector */
        rc_free(s->eargv);
        rc_free(s->eargvlen);
        s->eargv = NULL;
        s->eargvlen = NULL;
        s->eargv_cap = 0;
    }
    return rc;
}

/* ---- redis_script.h --------------------------------------------------------------------------- */

int redis_script_command(redis_script_state *s, redis_conn *c, rc_redis_reply_fn cb, void *arg,
                         int argc, const char **argv, const size_t *argvlen)
{
    if (argc < 1 || !argv) return -1;
    script_call *call = rc_calloc(1, sizeof(*call));
    call->s = s;
    call->cb = cb;
    call->arg = arg;
    if (redis_conn_command(c, call_on_reply, call, argc, argv, argvlen) != 0) {
        rc_free(call);
        return -1;
    }
    s->commands++;
    return 0;
}

int redis_script_eval(redis_script_state *s, redis_conn *c, rc_redis_script *script,
                      rc_redis_reply_fn cb, void *arg, int nkeys, int argc, const char **argv,
                      const size_t *argvlen)
{
    if (!script || !script->source || nkeys < 0 || argc < nkeys || (argc && !argv)) return -1;
    if (!script->sha[0]) script_sha(script);

    /* The arguments are copied (one allocation) so that a NOSCRIPT reply can be retried. */
    size_t bytes = 0;
    for (int i = 0; i < argc; i++) bytes += argvlen ? argvlen[i] : strlen(argv[i]);
    size_t head = sizeof(script_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    script_call *call = rc_malloc(head + bytes + 1);
    call->s = s;
    call->cb = cb;
    call->arg = arg;
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
    if (eval_send(s, c, call, 0) != 0) {
        rc_free(call);
        return -1;
    }
    s->commands++;
    return 0;
}

void redis_script_dispose(redis_script_state *s)
{
    rc_free(s->loaded);
    rc_free(s->eargv);
    rc_free(s->eargvlen);
    memset(s, 0, sizeof(*s));
}
