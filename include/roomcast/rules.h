/*
 * rules.h: the per-namespace rules language — what each client event does — compiled from the
 * config's "namespaces" object, and the template engine behind it. Language reference:
 * docs/config.md.
 *
 * The rules module decides; the node acts. rc_rules_run evaluates the actions of one event (or
 * of the namespace's onConnect list) and performs each through rc_rule_ops, which the node
 * implements (join a room, relay to a room, emit to the sender, ack, ...). The module never
 * touches sockets, rooms or the network itself, so it is tested with a fake ops table
 * (test/unit/test_rules.c). src/rules_compile.c compiles and frees; src/rules_run.c runs and
 * answers the lookups; src/rules_compiled.h is the compiled form they share.
 *
 * Ownership: compiled rules are immutable after rc_rules_compile and owned by the config.
 * During rc_rules_run, the input is borrowed; cJSON values handed to ops (args) become the
 * callee's and must be freed by it (cJSON_Delete).
 */
#ifndef ROOMCAST_RULES_H
#define ROOMCAST_RULES_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/errors.h"

struct cJSON;

typedef struct rc_rules rc_rules;        /* all namespaces */
typedef struct rc_ns_rules rc_ns_rules;  /* one namespace */

enum rc_ns_auth { RC_NS_AUTH_REQUIRED = 0, RC_NS_AUTH_OPTIONAL = 1, RC_NS_AUTH_NONE = 2 };

/* Compiles `namespaces` (a JSON object: name -> namespace definition). NULL json compiles the
 * built-in default (namespace "/" with the join/leave rules of docs/config.md, "The built-in
 * default"). Problems are reported into errs with paths below `path` (for example
 * "namespaces"); returns NULL then. */
rc_rules *rc_rules_compile(const struct cJSON *json, const char *path, rc_config_errors *errs);
void rc_rules_free(rc_rules *rules);

size_t rc_rules_ns_count(const rc_rules *rules);
const rc_ns_rules *rc_rules_ns_at(const rc_rules *rules, size_t i);
const rc_ns_rules *rc_rules_find_ns(const rc_rules *rules, const char *name, size_t len);

const char *rc_ns_rules_name(const rc_ns_rules *ns);
int rc_ns_rules_auth(const rc_ns_rules *ns);           /* enum rc_ns_auth */
int rc_ns_rules_token_in_query(const rc_ns_rules *ns); /* 1 if ?token= is accepted */
/* "writeDelay" in ms (0: off, at most 20): how long a socket's broadcast frames of this namespace
 * may wait to leave in one write with those queued meanwhile (src/rules_write_delay.c). */
unsigned rc_ns_rules_write_delay(const rc_ns_rules *ns);
/* 1 if the namespace verifies tokens: at connect (auth other than none) or by a `verify` action.
 * The config requires key material only then. */
int rc_ns_rules_verifies_tokens(const rc_ns_rules *ns);
/* How the namespace refuses a CONNECT whose token does not verify ("authError"). 0: the Socket.IO
 * way, CONNECT_ERROR (the default; nothing is written). 1: the gateway way: accept the CONNECT,
 * emit `event` with `*args` (a new array, the caller's) to it, then disconnect it; reason (the
 * rc_auth_reason string) is {error} in the event's templates. A template that fails to give an
 * event name falls back to 0. */
int rc_ns_rules_auth_error(const rc_ns_rules *ns, const char *reason, char event[201], struct cJSON **args);
/* The user room for a user ("user:<id>" by default; the namespace's "userRoom" template), as a
 * heap string; NULL when the namespace has no user room or user is NULL. */
char *rc_ns_rules_user_room(const rc_ns_rules *ns, const char *user, const char *claims_json);

/* What the rules see of one client event or connect. Everything is borrowed. */
typedef struct rc_rule_input {
    const char *ns;
    const char *sid;                /* Socket.IO socket id */
    const char *user;               /* user id, NULL when anonymous */
    const char *claims_json;        /* token claims as JSON text, NULL when anonymous */
    const struct cJSON *auth;       /* CONNECT auth payload (object); NULL reads as {} (no payload) */
    const char *event;              /* event name; NULL means "connect" (run onConnect) */
    const struct cJSON *args;       /* JSON array of the event's arguments after the name; NULL on connect */
    int has_ack;                    /* the client asked for an ack */
} rc_rule_input;

/* What rules can do. Return values that are `const char *` are NULL on success or a static
 * reason string ("forbidden", "bad_room", "backplane_down", ...) that templates see as {error}.
 * Every cJSON passed in is owned by the callee. */
typedef struct rc_rule_ops {
    const char *(*join)(void *target, const char *room);
    const char *(*leave)(void *target, const char *room);
    int (*is_member)(void *target, const char *room);
    /* args: array of arguments (without the event name). include_sender 0 excludes the sender's
     * socket only (its other sockets still receive). */
    const char *(*relay)(void *target, const char *room, const char *event, struct cJSON *args,
                         int include_sender);
    /* on_ack: NULL, or an opaque compiled action list to run (rc_rules_run_ack) when the client
     * acknowledges this emit; the node then sends the event with an ack id. */
    void (*emit)(void *target, const char *event, struct cJSON *args, const void *on_ack);
    void (*ack)(void *target, struct cJSON *args);     /* ignored by the node if !has_ack */
    void (*disconnect)(void *target);
    /* Optional (NULL: the action fails with "unsupported"). */
    /* forward: append {ns, event, user, sid, node, data, ts} to the P:events stream (data may be
     * a JSON null). */
    const char *(*forward)(void *target, const char *event, struct cJSON *data);
    /* presence: look up whether each user id of `users` (an array of 1..100 strings) is online,
     * then call rc_rules_run_ack(ns, then, in, ...) with in->args = [{"<user>": true|false, ...}],
     * in->event = the event being handled and in->has_ack = whether that event still awaits its
     * ack (so `ack` in `then` answers it). */
    const char *(*presence)(void *target, struct cJSON *users, const void *then);
    /* visible: the socket's user appears online (1) or offline (0) to everyone (all devices). */
    const char *(*visible)(void *target, int visible);
    /* members: list the users in a tracked room (across nodes), then run `then` (as presence
     * does) with {data} = {"room": ..., "members": [user ids], "total": N}. */
    const char *(*members)(void *target, const char *room, const void *then);
    /* verify: verify a token (len bytes; NULL or len 0 when there is none) exactly as the CONNECT
     * does (the same keys, algorithms, leeway, iss, aud and user claim). NULL when it verifies,
     * with *user and *claims_json set to heap strings (the caller's, rc_free); else the static
     * reason (rc_auth_reason: "missing_token", "bad_signature", "expired", ...). */
    const char *(*verify)(void *target, const char *token, size_t len, char **user, char **claims_json);
} rc_rule_ops;

/* Runs the actions for input->event (or onConnect when event is NULL). Returns 1 if a rule
 * existed for the event, 0 if not (the node then answers an ack, if asked, with an error). */
int rc_rules_run(const rc_ns_rules *ns, const rc_rule_input *in, const rc_rule_ops *ops, void *target);

/* Runs an on_ack action list (from ops->emit) with in->args = the client's ack arguments and
 * in->event = the event that was emitted (in->has_ack 0), or a presence `then` list (see
 * ops->presence). The pointer stays valid as long as the compiled rules. */
void rc_rules_run_ack(const rc_ns_rules *ns, const void *on_ack, const rc_rule_input *in,
                      const rc_rule_ops *ops, void *target);

/* Per-socket inbound event rate limit of the namespace ("rateLimit"): at most *events client
 * events per *interval_ms, as a token bucket (burst = events). *events 0 means no limit. */
void rc_ns_rules_rate_limit(const rc_ns_rules *ns, unsigned *events, unsigned *interval_ms);
/* An event's own rateLimit (the rule that would run for it, the catch-all "*" included): its
 * index among the namespace's limited events (0..rc_ns_rules_event_limit_count - 1) with its
 * events per interval_ms, or -1 when that rule has no limit of its own. */
int rc_ns_rules_event_limit(const rc_ns_rules *ns, const char *event, unsigned *events, unsigned *interval_ms);
unsigned rc_ns_rules_event_limit_count(const rc_ns_rules *ns);
/* Runs the namespace's rateLimit.onLimit rule for a refused event ({error} = "rate_limited");
 * without one, answers the event's ack (if asked) with {"ok":false,"error":"rate_limited"}. */
void rc_rules_run_limited(const rc_ns_rules *ns, const rc_rule_input *in, const rc_rule_ops *ops, void *target);

/* Status rooms ("status" option): 1 and the user id in `user` if `room` is this namespace's
 * status room of some user; the room name of a user's status (heap), NULL without the option. */
int rc_ns_rules_status_user(const rc_ns_rules *ns, const char *room, char *user, size_t n);
char *rc_ns_rules_status_room(const rc_ns_rules *ns, const char *user);
/* 1 if the namespace's "status" option has "broadcast": every socket hears every change. */
int rc_ns_rules_status_broadcast(const rc_ns_rules *ns);
/* 1 if the room matches a glob of the namespace's "track" option. */
int rc_ns_rules_tracked(const rc_ns_rules *ns, const char *room);
/* The event a namespace announces: kind 0 = user offline, 1 = online ("status" option), 2 = user
 * left `room`, 3 = joined it ("track" option). Writes the event name and a new args array
 * (caller frees). -1 when the namespace has no such option or the templates fail. */
enum { RC_ANNOUNCE_OFFLINE = 0, RC_ANNOUNCE_ONLINE = 1, RC_ANNOUNCE_LEFT = 2, RC_ANNOUNCE_JOINED = 3 };
int rc_ns_rules_announce(const rc_ns_rules *ns, int kind, const char *user, const char *room,
                         uint64_t ts_ms, char event[201], struct cJSON **args);

/* The namespace's "recovery" settings (never NULL for a namespace; NULL ns gives NULL). */
const struct rc_recovery_config *rc_ns_rules_recovery(const rc_ns_rules *ns);
/* 1 if an emit of `event` to `room` (NULL: the whole namespace) is kept for connection state
 * recovery: recovery is on, the event matches no "volatile" glob, and the room matches a glob
 * of "rooms" (a namespace-wide emit is kept when "rooms" holds "*"). */
int rc_ns_rules_recovery_keeps(const rc_ns_rules *ns, const char *room, const char *event);

/* Glob match used for room authorization: '*' any run, '?' one char, no escapes. */
int rc_glob_match(const char *pattern, const char *s);

#endif
