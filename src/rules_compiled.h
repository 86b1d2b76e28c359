/*
 * rules_compiled.h: the compiled form of the rules language, private to the rules module. Types
 * only, plus the one helper both halves call: src/rules_compile.c builds these structs from the
 * config's "namespaces" object (and frees them), src/rules_run.c reads them for every client
 * event. Nothing outside src/rules_*.c includes this file; everyone else sees the opaque
 * rc_rules / rc_ns_rules of include/roomcast/rules.h.
 *
 * Shape: rc_rules -> namespaces (rc_ns_rules) -> rules (sorted by event name, found by binary
 * search) -> action lists -> actions whose every value is a compiled rc_tpl (template.h).
 * Continuations (emit "onAck", presence and members "then") are rules of their own, owned by
 * their action.
 *
 * Ownership: rc_rules owns everything below it (every string, list and template) and is
 * immutable after rc_rules_compile; rc_rules_free releases it. The interpreter only reads it.
 */
#ifndef ROOMCAST_RULES_COMPILED_H
#define ROOMCAST_RULES_COMPILED_H

#include "roomcast/recovery_config.h"
#include "roomcast/rules.h"
#include "roomcast/template.h"

#include <stddef.h>

/* The verb of an action (its one key besides if/unless/allow). */
enum verb {
    V_JOIN, V_LEAVE, V_RELAY, V_EMIT, V_ACK, V_ACKARGS, V_DISCONNECT, V_FAIL, V_FORWARD, V_PRESENCE,
    V_VISIBLE, V_MEMBERS, V_VERIFY, V__COUNT
};

struct allow {
    int set;               /* given (else the namespace's joinAllow applies) */
    int any;
    size_t n;
    rc_tpl **globs;
};

struct rule;

/* The test of "if" or "unless": a template that must be truthy, {"equals": [A, B]} (A and B
 * evaluate to the same JSON value; two missing values are equal), {"in": [A, B]} (B evaluates
 * to an array and A, present, equals one of its elements) or {"member": "<room>"} (the sender's
 * socket is in that room). No test: a == NULL. */
enum cond_kind { COND_TRUTHY, COND_EQUALS, COND_IN, COND_MEMBER };
struct cond {
    enum cond_kind kind;
    rc_tpl *a, *b;         /* b: NULL for COND_TRUTHY */
};

struct action {
    enum verb verb;
    struct cond when;      /* "if" */
    struct cond unless;
    rc_tpl *room;          /* join, leave, relay, members */
    rc_tpl *event;         /* relay, emit, forward: NULL = the received event */
    rc_tpl *args;          /* relay, emit "args"; ackArgs */
    rc_tpl *value;         /* relay/emit/forward "data", ack, fail reason, presence users, verify token */
    struct allow allow;    /* join */
    int include_sender;    /* relay */
    int require_member;    /* relay */
    struct rule *cont;     /* emit onAck, presence and members then */
};

struct alist {
    size_t n;
    struct action *items;
};

/* An event a namespace option emits: {"event": <name template>, "data": <template>}. */
struct emit_spec {
    rc_tpl *event;
    rc_tpl *data;
};

struct rule {
    char *event;
    struct alist run;
    struct alist on_error;
    int has_on_error;
    /* an event's own "rateLimit" (per socket, besides the namespace's): 0 events = none */
    unsigned rl_events, rl_interval_ms;
    int rl_index;          /* 0.. among the namespace's limited events; -1 = no limit */
};

struct rc_ns_rules {
    char *name;
    size_t name_len;
    int auth;
    int token_in_query;
    rc_tpl *user_room;     /* NULL: none */
    struct allow join_allow;
    struct rule on_connect;
    size_t nrules;
    struct rule *rules;    /* sorted by event */
    /* "status": the room whose members hear a user's online/offline changes, as prefix +
     * user id + suffix, and the events they get. */
    char *status_prefix, *status_suffix;
    struct emit_spec status_ev[2];     /* [0] offline, [1] online */
    int status_broadcast;              /* every socket of the namespace hears every change */
    /* "track": rooms whose members are announced as users join and leave */
    char **track_globs;
    size_t ntrack;
    struct emit_spec track_ev[2];      /* [0] left, [1] joined */
    unsigned rate_events;  /* rateLimit.events per rateLimit.interval ms; 0 = no limit */
    unsigned rate_interval_ms;
    struct rule on_limit;  /* rateLimit.onLimit */
    /* "authError": a refused CONNECT is accepted, told this event, then disconnected (the
     * gateway way); event NULL: refused with CONNECT_ERROR (the Socket.IO way, the default) */
    struct emit_spec auth_error;
    int has_verify;        /* some action of the namespace is a `verify` (it needs key material) */
    int has_on_limit;
    unsigned n_event_limits; /* event rules with their own rateLimit */
    rc_recovery_config recovery; /* "recovery" (src/recovery_config.c) */
    unsigned write_delay_ms; /* "writeDelay" (src/rules_write_delay.c); 0: off */
};

struct rc_rules {
    size_t n;
    rc_ns_rules *ns;
};

struct cJSON;
/* src/rules_write_delay.c: reads ns_json's "writeDelay" into ns (0 when absent); a bad value is
 * refused into e with the path "<path>.writeDelay". */
void rc__rules_write_delay_parse(const struct cJSON *ns_json, const char *path, rc_ns_rules *ns,
                                 rc_config_errors *e);

#endif
