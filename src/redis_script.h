/*
 * redis_script.h: modules' commands and Lua scripts on one redis_conn, each answered exactly
 * once. Private (src/): implemented in redis_script.c; called by backplane_redis_cmd.c, which
 * implements rc_redis_command and rc_redis_eval (include/roomcast/redis_cmd.h) with it and picks
 * the connection. It knows nothing about the backplane (phases, channels): it sends where it is
 * told, and the connection carries each call's reply back to it (redis_conn.h's fn and arg).
 *
 * Answers: the module's callback gets the reply, or NULL when the connection went away first
 * (redis_conn answers lost commands NULL from the loop), never from inside the sending call.
 * Error replies are counted (`errors`) and passed on as they are.
 *
 * Scripts: rc_redis_script's SHA-1 is computed once. The first call of a script on a connection
 * goes as EVAL (Redis caches it), later ones as EVALSHA pipelined behind it, so a Redis that
 * restarted empty never answers NOSCRIPT to a burst of calls. "On a connection" means on one
 * session of it: after redis_conn_open (c->opens moves on) every script goes as EVAL once more.
 * A NOSCRIPT that still comes (SCRIPT FLUSH) is retried once as EVAL from a copy of the
 * arguments kept with the call, and counted (`noscript`); the caller never sees it.
 *
 * Ownership: one redis_script_state per connection it sends on, embedded in the connection's
 * owner, all-zero to start. Arguments are borrowed for the call (eval copies them for the
 * retry); a script's source is static and its sha is filled in place.
 *
 * API in call order: redis_script_command / redis_script_eval (any order) -> the connection
 * closed and disposed -> redis_script_dispose.
 */
#ifndef ROOMCAST_REDIS_SCRIPT_H
#define ROOMCAST_REDIS_SCRIPT_H

#include "redis_conn.h"
#include "roomcast/redis_cmd.h"

#include <stddef.h>
#include <stdint.h>

typedef struct redis_script_state {
    char (*loaded)[41];          /* scripts sent as EVAL in session loaded_session of the connection */
    size_t nloaded, loaded_cap;
    uint64_t loaded_session;     /* the connection's `opens` when loaded was last valid */
    const char **eargv;          /* scratch argument vector for EVAL/EVALSHA */
    size_t *eargvlen;
    size_t eargv_cap;
    uint64_t commands, errors, noscript; /* metrics: calls sent, error replies, NOSCRIPT retries */
} redis_script_state;

/* Sends argv[0..argc) on c (argvlen NULL: strlen); cb (may be NULL) gets the answer with arg.
 * 0, or -1 when argc < 1, argv is NULL or c refuses it (cb is then never called). */
int redis_script_command(redis_script_state *s, redis_conn *c, rc_redis_reply_fn cb, void *arg,
                         int argc, const char **argv, const size_t *argvlen);
/* Calls script with nkeys keys among argv[0..argc) (argvlen NULL: strlen), answered like a
 * command. 0, or -1 when the arguments are wrong (nkeys < 0, argc < nkeys, no argv, no
 * source) or c refuses it. */
int redis_script_eval(redis_script_state *s, redis_conn *c, rc_redis_script *script,
                      rc_redis_reply_fn cb, void *arg, int nkeys, int argc, const char **argv,
                      const size_t *argvlen);
/* Frees the state. The connection it sent on is closed and disposed already (so every call was
 * answered). */
void redis_script_dispose(redis_script_state *s);

#endif
