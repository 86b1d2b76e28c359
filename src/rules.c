/*
 * rules.c: the per-namespace rules language — compiled once from the config's "namespaces"
 * object, run for every client event. Language reference: docs/config.md.
 *
 * Design note. rc_rules_compile checks the JSON strictly (unknown keys and verbs are errors with
 * their full path) and builds immutable structs: namespaces -> rules (sorted by event name,
 * found by binary search) -> action lists -> actions whose every value is a compiled rc_tpl
 * (template.c). Compilation either succeeds completely or reports every problem and returns NULL;
 * partially built structures are freed by the same code that frees good ones.
 *
 * rc_rules_run keeps its state on the stack (struct run): the template context (claims are parsed
 * on the first `{claims...}` lookup, and freed when the run ends), {room}, the reason of a `fail`,
 * and whether the client's ack has already been answered. It decides and calls rc_rule_ops to
 * act; it never touches sockets, rooms or the network, and it never calls back into itself.
 * Every cJSON handed to an op is new and becomes the op's.
 *
 * It does not: keep state between events, re-parse template text, rate-limit, or validate what
 * the ops do with rooms (the node refuses socket-id rooms and the like).
 *
 * Continuations (emit "onAck", presence "then") are compiled rules; ops receive them as opaque
 * pointers that stay valid as long as the rules, and hand them back to rc_rules_run_ack.
 *
 * API in call order: rc_rules_compile -> rc_rules_find_ns / rc_ns_rules_* -> rc_rules_run
 * (per event, and with event NULL for onConnect) -> rc_rules_run_ack (later, per continuation)
 * -> rc_rules_free.
 */
#include "roomcast/rules.h"
#include "roomcast/common.h"
#include "roomcast/template.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_NAMESPACES 32
#define MAX_NS_NAME 128
#define MAX_PRESENCE_USERS 1000

/* Reasons that rules themselves produce (templates see them as {error}). */
static const char reason_bad_room[] = "bad_room";
static const char reason_forbidden[] = "forbidden";
static const char reason_bad_args[] = "bad_args";
static const char reason_bad_event[] = "bad_event";
static const char reason_unsupported[] = "unsupported";

/* ---- compiled form ------------------------------------------------------------------------ */

enum verb {
    V_JOIN, V_LEAVE, V_RELAY, V_EMIT, V_ACK, V_ACKARGS, V_DISCONNECT, V_FAIL, V_FORWARD, V_PRESENCE,
    V_VISIBLE, V_MEMBERS, V__COUNT
};
static const char *const verb_names[V__COUNT] = {
    "join", "leave", "relay", "emit", "ack", "ackArgs", "disconnect", "fail", "forward", "presence",
    "visible", "members",
};
#define VERB_LIST "join, leave, relay, emit, ack, ackArgs, disconnect, fail, forward, presence, visible, members"

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
    rc_tpl *room;          /* join, leave, relay */
    rc_tpl *event;         /* relay, emit, forward: NULL = the received event */
    rc_tpl *args;          /* relay, emit "args"; ackArgs */
    rc_tpl *value;         /* relay/emit/forward "data", ack, fail reason, presence users */
    struct allow allow;    /* join */
    int include_sender;    /* relay */
    int require_member;    /* relay */
    struct rule *cont;     /* emit onAck, presence then */
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
    int has_on_limit;
    unsigned n_event_limits; /* event rules with their own rateLimit */
};

struct rc_rules {
    size_t n;
    rc_ns_rules *ns;
};

static void rule_dispose(struct rule *r);

static void allow_dispose(struct allow *a)
{
    for (size_t i = 0; i < a->n; i++) rc_tpl_free(a->globs[i]);
    rc_free(a->globs);
}

static void alist_dispose(struct alist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        struct action *a = &l->items[i];
        rc_tpl_free(a->when.a);
        rc_tpl_free(a->when.b);
        rc_tpl_free(a->unless.a);
        rc_tpl_free(a->unless.b);
        rc_tpl_free(a->room);
        rc_tpl_free(a->event);
        rc_tpl_free(a->args);
        rc_tpl_free(a->value);
        allow_dispose(&a->allow);
        if (a->cont) {
            rule_dispose(a->cont);
            rc_free(a->cont);
        }
    }
    rc_free(l->items);
}

static void rule_dispose(struct rule *r)
{
    rc_free(r->event);
    alist_dispose(&r->run);
    alist_dispose(&r->on_error);
}

void rc_rules_free(rc_rules *rules)
{
    if (!rules) return;
    for (size_t i = 0; i < rules->n; i++) {
        rc_ns_rules *ns = &rules->ns[i];
        rc_free(ns->name);
        rc_tpl_free(ns->user_room);
        allow_dispose(&ns->join_allow);
        rule_dispose(&ns->on_connect);
        if (ns->has_on_limit) rule_dispose(&ns->on_limit);
        rc_free(ns->status_prefix);
        rc_free(ns->status_suffix);
        for (int k = 0; k < 2; k++) {
            rc_tpl_free(ns->status_ev[k].event);
            rc_tpl_free(ns->status_ev[k].data);
            rc_tpl_free(ns->track_ev[k].event);
            rc_tpl_free(ns->track_ev[k].data);
        }
        for (size_t k = 0; k < ns->ntrack; k++) rc_free(ns->track_globs[k]);
        rc_free(ns->track_globs);
        for (size_t k = 0; k < ns->nrules; k++) rule_dispose(&ns->rules[k]);
        rc_free(ns->rules);
    }
    rc_free(rules->ns);
    rc_free(rules);
}

/* ---- compiling ---------------------------------------------------------------------------- */

/* Where a list of actions runs: decides what "the received event" and "ack" mean there. */
enum where { IN_EVENT, IN_CONNECT, IN_ON_ACK, IN_PRESENCE };

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) return rc_strdup("?");
    if ((size_t)n < sizeof(small)) return rc_strndup(small, (size_t)n);
    char *p = rc_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static int is_reserved_event(const char *name)
{
    static const char *const reserved[] = {
        "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", NULL,
    };
    for (const char *const *r = reserved; *r; r++)
        if (strcmp(name, *r) == 0) return 1;
    return 0;
}

/* A template at obj[key] (NULL when absent), compiled with path "<path>.<key>". */
static rc_tpl *member_tpl(const cJSON *obj, const char *key, const char *path, rc_config_errors *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return NULL;
    char *p = pathf("%s.%s", path, key);
    rc_tpl *t = rc_tpl_compile(j, p, e);
    rc_free(p);
    return t;
}

static rc_tpl *room_tpl(const cJSON *j, const char *path, rc_config_errors *e)
{
    if (!cJSON_IsString(j)) {
        rc_config_error(e, path, "room template must be a string");
        return NULL;
    }
    rc_tpl *t = rc_tpl_compile(j, path, e);
    const char *c = rc_tpl_const_string(t);
    if (c && (!*c || strlen(c) > RC_TPL_NAME_MAX))
        rc_config_error(e, path, "a room name is 1..%d bytes", RC_TPL_NAME_MAX);
    return t;
}

static rc_tpl *event_tpl(const cJSON *obj, const char *path, rc_config_errors *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "event");
    if (!j) return NULL;
    char *p = pathf("%s.event", path);
    rc_tpl *t = NULL;
    if (!cJSON_IsString(j)) {
        rc_config_error(e, p, "must be a string (event name template)");
    } else {
        t = rc_tpl_compile(j, p, e);
        const char *c = rc_tpl_const_string(t);
        if (c && (!*c || strlen(c) > RC_TPL_NAME_MAX))
            rc_config_error(e, p, "an event name is 1..%d bytes", RC_TPL_NAME_MAX);
        else if (c && is_reserved_event(c))
            rc_config_error(e, p, "'%s' is a reserved event name", c);
    }
    rc_free(p);
    return t;
}

/* "args": a template that can give an array: an array, or exactly one {path}. */
static rc_tpl *args_tpl(const cJSON *j, const char *path, rc_config_errors *e)
{
    rc_tpl *t = rc_tpl_compile(j, path, e);
    if (t && !cJSON_IsArray(j) && !rc_tpl_is_lookup(t))
        rc_config_error(e, path, "must be an array template (an array, or one {path} giving an array)");
    return t;
}

static int get_bool(const cJSON *obj, const char *key, int dflt, const char *path, rc_config_errors *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return dflt;
    if (cJSON_IsBool(j)) return cJSON_IsTrue(j);
    char *p = pathf("%s.%s", path, key);
    rc_config_error(e, p, "must be a boolean");
    rc_free(p);
    return dflt;
}

static void compile_allow(const cJSON *j, const char *path, struct allow *out, rc_config_errors *e)
{
    out->set = 1;
    if (cJSON_IsString(j) && strcmp(j->valuestring, "any") == 0) {
        out->any = 1;
        return;
    }
    if (!cJSON_IsArray(j)) {
        rc_config_error(e, path, "must be \"any\" or an array of glob templates");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
    out->globs = rc_calloc(n ? n : 1, sizeof(*out->globs));
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        char *p = pathf("%s[%zu]", path, i);
        if (!cJSON_IsString(c)) rc_config_error(e, p, "must be a string (glob template)");
        else out->globs[out->n++] = rc_tpl_compile(c, p, e);
        rc_free(p);
    }
}

static void compile_rule(const cJSON *j, const char *path, enum where where, struct rule *out,
                         rc_config_errors *e);

static struct rule *compile_cont(const cJSON *obj, const char *key, const char *path, enum where where,
                                 rc_config_errors *e)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return NULL;
    struct rule *r = rc_calloc(1, sizeof(*r));
    char *p = pathf("%s.%s", path, key);
    compile_rule(j, p, where, r, e);
    rc_free(p);
    return r;
}

static const char *where_name(enum where w)
{
    switch (w) {
    case IN_CONNECT: return "onConnect";
    case IN_ON_ACK: return "onAck";
    default: return "this rule";
    }
}

static void compile_verb(const cJSON *v, const char *vpath, enum where where, struct action *a,
                         rc_config_errors *e)
{
    static const char *const relay_keys[] = {"room", "event", "args", "data", "includeSender",
                                             "requireMember", NULL};
    static const char *const emit_keys[] = {"event", "args", "data", "onAck", NULL};
    static const char *const forward_keys[] = {"event", "data", NULL};
    static const char *const presence_keys[] = {"users", "then", NULL};

    switch (a->verb) {
    case V_JOIN:
    case V_LEAVE:
        a->room = room_tpl(v, vpath, e);
        return;
    case V_ACK:
    case V_ACKARGS:
        if (where == IN_CONNECT || where == IN_ON_ACK)
            rc_config_error(e, vpath, "there is no ack to answer in %s", where_name(where));
        if (a->verb == V_ACK) a->value = rc_tpl_compile(v, vpath, e);
        else a->args = args_tpl(v, vpath, e);
        return;
    case V_DISCONNECT:
        if (!cJSON_IsTrue(v)) rc_config_error(e, vpath, "must be true");
        return;
    case V_FAIL:
        if (!cJSON_IsString(v)) rc_config_error(e, vpath, "reason template must be a string");
        else a->value = rc_tpl_compile(v, vpath, e);
        return;
    case V_FORWARD:
        if (cJSON_IsTrue(v)) {
            if (where == IN_CONNECT) rc_config_error(e, vpath, "needs an event in onConnect");
            return;
        }
        break;
    case V_VISIBLE:
        a->value = rc_tpl_compile(v, vpath, e);
        return;
    default:
        break;
    }

    if (!cJSON_IsObject(v)) {
        rc_config_error(e, vpath, a->verb == V_FORWARD ? "must be true or an object" : "must be an object");
        return;
    }
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(v, "room");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(v, "args");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(v, "data");
    switch (a->verb) {
    case V_RELAY:
        rc__config_check_keys(v, vpath, relay_keys, e);
        if (!room) {
            char *p = pathf("%s.room", vpath);
            rc_config_error(e, p, "required");
            rc_free(p);
        } else {
            char *p = pathf("%s.room", vpath);
            a->room = room_tpl(room, p, e);
            rc_free(p);
        }
        a->include_sender = get_bool(v, "includeSender", 0, vpath, e);
        a->require_member = get_bool(v, "requireMember", 1, vpath, e);
        break;
    case V_EMIT:
        rc__config_check_keys(v, vpath, emit_keys, e);
        a->cont = compile_cont(v, "onAck", vpath, IN_ON_ACK, e);
        break;
    case V_FORWARD:
        rc__config_check_keys(v, vpath, forward_keys, e);
        break;
    case V_MEMBERS: {
        static const char *const members_keys[] = {"room", "then", NULL};
        rc__config_check_keys(v, vpath, members_keys, e);
        const cJSON *mroom = cJSON_GetObjectItemCaseSensitive(v, "room");
        char *p = pathf("%s.room", vpath);
        if (!mroom) rc_config_error(e, p, "required");
        else a->room = room_tpl(mroom, p, e);
        rc_free(p);
        a->cont = compile_cont(v, "then", vpath, IN_PRESENCE, e);
        if (!a->cont) {
            p = pathf("%s.then", vpath);
            rc_config_error(e, p, "required");
            rc_free(p);
        }
        return;
    }
    case V_PRESENCE: {
        rc__config_check_keys(v, vpath, presence_keys, e);
        a->value = member_tpl(v, "users", vpath, e);
        a->cont = compile_cont(v, "then", vpath, IN_PRESENCE, e);
        const char *missing = !cJSON_GetObjectItemCaseSensitive(v, "users") ? "users"
                              : !a->cont ? "then" : NULL;
        if (missing) {
            char *p = pathf("%s.%s", vpath, missing);
            rc_config_error(e, p, "required");
            rc_free(p);
        }
        return;
    }
    default:
        return;
    }

    /* relay, emit, forward: event, and (relay, emit) args | data */
    a->event = event_tpl(v, vpath, e);
    if (!cJSON_GetObjectItemCaseSensitive(v, "event") && (a->verb == V_EMIT || where == IN_CONNECT)) {
        char *p = pathf("%s.event", vpath);
        rc_config_error(e, p, a->verb == V_EMIT ? "required" : "required in onConnect (no event was received)");
        rc_free(p);
    }
    if (args && data) rc_config_error(e, vpath, "give args or data, not both");
    if (args) {
        char *p = pathf("%s.args", vpath);
        a->args = args_tpl(args, p, e);
        rc_free(p);
    }
    if (data) a->value = member_tpl(v, "data", vpath, e);
}

/* An object whose one key (besides $comment) is "equals", "in" or "member" is a test of its own;
 * any other value is a template tested for truthiness. */
static void compile_cond(const cJSON *j, const char *path, struct cond *out, rc_config_errors *e)
{
    const cJSON *op = NULL;
    size_t keys = 0;
    if (cJSON_IsObject(j))
        for (const cJSON *c = j->child; c; c = c->next)
            if (!rc__config_is_comment(c)) {
                keys++;
                op = c;
            }
    if (keys != 1 || (strcmp(op->string, "equals") != 0 && strcmp(op->string, "in") != 0 &&
                      strcmp(op->string, "member") != 0)) {
        out->kind = COND_TRUTHY;
        out->a = rc_tpl_compile(j, path, e);
        return;
    }
    char *p = pathf("%s.%s", path, op->string);
    if (op->string[0] == 'm') {
        out->kind = COND_MEMBER;
        if (!cJSON_IsString(op)) rc_config_error(e, p, "must be a room template (a string)");
        else out->a = rc_tpl_compile(op, p, e);
        rc_free(p);
        return;
    }
    if (!cJSON_IsArray(op) || cJSON_GetArraySize(op) != 2) {
        rc_config_error(e, p, "must be an array of two templates, [A, B]");
    } else {
        out->kind = op->string[0] == 'e' ? COND_EQUALS : COND_IN;
        char *pa = pathf("%s[0]", p), *pb = pathf("%s[1]", p);
        out->a = rc_tpl_compile(op->child, pa, e);
        out->b = rc_tpl_compile(op->child->next, pb, e);
        rc_free(pa);
        rc_free(pb);
    }
    rc_free(p);
}

static void compile_action(const cJSON *j, const char *path, enum where where, struct action *a,
                           rc_config_errors *e)
{
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, path, "must be an object with one verb (" VERB_LIST ")");
        return;
    }
    rc__config_check_keys(j, path, NULL, e);
    const cJSON *verb = NULL, *allow = NULL;
    for (const cJSON *c = j->child; c; c = c->next) {
        if (rc__config_is_comment(c)) continue;
        if (strcmp(c->string, "if") == 0 || strcmp(c->string, "unless") == 0) {
            char *p = pathf("%s.%s", path, c->string);
            compile_cond(c, p, c->string[0] == 'i' ? &a->when : &a->unless, e);
            rc_free(p);
            continue;
        }
        if (strcmp(c->string, "allow") == 0) { allow = c; continue; }
        size_t v;
        for (v = 0; v < V__COUNT; v++)
            if (strcmp(c->string, verb_names[v]) == 0) break;
        char *p = pathf("%s.%s", path, c->string);
        if (v == V__COUNT) {
            rc_config_error(e, p, "unknown key (verbs: " VERB_LIST "; options: if, unless, allow)");
        } else if (verb) {
            rc_config_error(e, path, "more than one verb ('%s' and '%s')", verb->string, c->string);
        } else {
            verb = c;
            a->verb = (enum verb)v;
        }
        rc_free(p);
    }
    if (!verb) {
        rc_config_error(e, path, "no verb (one of " VERB_LIST ")");
        return;
    }
    if (allow) {
        char *p = pathf("%s.allow", path);
        if (a->verb != V_JOIN) rc_config_error(e, p, "only join takes allow");
        else compile_allow(allow, p, &a->allow, e);
        rc_free(p);
    }
    char *vpath = pathf("%s.%s", path, verb->string);
    compile_verb(verb, vpath, where, a, e);
    rc_free(vpath);
}

static void compile_list(const cJSON *j, const char *path, enum where where, struct alist *out,
                         rc_config_errors *e)
{
    if (!cJSON_IsArray(j)) {
        rc_config_error(e, path, "must be an array of actions");
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(j), i = 0;
    out->items = rc_calloc(n ? n : 1, sizeof(*out->items));
    out->n = n;
    for (const cJSON *c = j->child; c; c = c->next, i++) {
        char *p = pathf("%s[%zu]", path, i);
        compile_action(c, p, where, &out->items[i], e);
        rc_free(p);
    }
}

/* The "events" and "interval" of a rateLimit object at path p (defaults: interval 1000 ms). */
static void parse_limit(const cJSON *rl, const char *p, unsigned *events, unsigned *interval_ms,
                        rc_config_errors *e)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(rl, "events");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(rl, "interval");
    if (!cJSON_IsNumber(ev) || ev->valuedouble < 1 || ev->valuedouble > 1e6 ||
        ev->valuedouble != (double)(unsigned)ev->valuedouble) {
        char *q = pathf("%s.events", p);
        rc_config_error(e, q, "must be an integer 1..1000000");
        rc_free(q);
    } else {
        *events = (unsigned)ev->valuedouble;
    }
    *interval_ms = 1000;
    if (iv) {
        if (!cJSON_IsNumber(iv) || iv->valuedouble < 1 || iv->valuedouble > 3600000 ||
            iv->valuedouble != (double)(unsigned)iv->valuedouble) {
            char *q = pathf("%s.interval", p);
            rc_config_error(e, q, "must be an integer 1..3600000 (ms)");
            rc_free(q);
        } else {
            *interval_ms = (unsigned)iv->valuedouble;
        }
    }
}

static void compile_rule(const cJSON *j, const char *path, enum where where, struct rule *out,
                         rc_config_errors *e)
{
    static const char *const rule_keys[] = {"do", "onError", "rateLimit", NULL};
    if (cJSON_IsArray(j)) {
        compile_list(j, path, where, &out->run, e);
        return;
    }
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, path, "must be an array of actions or {\"do\": [...], \"onError\": [...]}");
        return;
    }
    rc__config_check_keys(j, path, rule_keys, e);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "do");
    const cJSON *on_error = cJSON_GetObjectItemCaseSensitive(j, "onError");
    char *p = pathf("%s.do", path);
    if (!run) rc_config_error(e, p, "required");
    else compile_list(run, p, where, &out->run, e);
    rc_free(p);
    if (on_error) {
        out->has_on_error = 1;
        p = pathf("%s.onError", path);
        compile_list(on_error, p, where, &out->on_error, e);
        rc_free(p);
    }
    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(j, "rateLimit");
    if (rl) {
        static const char *const keys[] = {"events", "interval", NULL};
        p = pathf("%s.rateLimit", path);
        if (where != IN_EVENT || !out->event) {
            rc_config_error(e, p, "only an event's rule takes a rateLimit (the namespace's goes beside events)");
        } else if (!cJSON_IsObject(rl)) {
            rc_config_error(e, p, "must be an object {\"events\": N, \"interval\": ms}");
        } else {
            rc__config_check_keys(rl, p, keys, e);
            parse_limit(rl, p, &out->rl_events, &out->rl_interval_ms, e);
        }
        rc_free(p);
    }
}

static int rule_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rule *)a)->event, ((const struct rule *)b)->event);
}

static int bad_ns_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NS_NAME || s[0] != '/') return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == ',' || c == '?' || c == '#') return 1;
    }
    return 0;
}

static void compile_emit_spec(const cJSON *j, const char *path, struct emit_spec *out, rc_config_errors *e)
{
    static const char *const keys[] = {"event", "data", NULL};
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, path, "must be an object {\"event\": <name>, \"data\": <template>}");
        return;
    }
    rc__config_check_keys(j, path, keys, e);
    out->event = event_tpl(j, path, e);
    if (!out->event) {
        char *p = pathf("%s.event", path);
        rc_config_error(e, p, "required");
        rc_free(p);
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    if (d) {
        char *p = pathf("%s.data", path);
        out->data = rc_tpl_compile(d, p, e);
        rc_free(p);
    }
}

/* The two required announcement specs of status or track: out[0] from key k0, out[1] from k1. */
static void compile_emit_pair(const cJSON *j, const char *path, const char *k0, const char *k1,
                              struct emit_spec out[2], rc_config_errors *e)
{
    const char *const which[2] = {k0, k1};
    for (int k = 0; k < 2; k++) {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, which[k]);
        char *q = pathf("%s.%s", path, which[k]);
        if (!spec) rc_config_error(e, q, "required");
        else compile_emit_spec(spec, q, &out[k], e);
        rc_free(q);
    }
}

/* "status": {"room": "status:{user}", "online": spec, "offline": spec} */
static void compile_status(const cJSON *j, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const keys[] = {"room", "online", "offline", "broadcast", NULL};
    char *p = pathf("%s.status", path);
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, p, "must be an object {\"room\", \"online\", \"offline\"}");
        rc_free(p);
        return;
    }
    rc__config_check_keys(j, p, keys, e);
    ns->status_broadcast = get_bool(j, "broadcast", 0, p, e);
    const cJSON *room = cJSON_GetObjectItemCaseSensitive(j, "room");
    const char *tpl = cJSON_IsString(room) ? room->valuestring : "status:{user}";
    const char *at = strstr(tpl, "{user}");
    char *q = pathf("%s.room", p);
    if (room && !cJSON_IsString(room)) rc_config_error(e, q, "must be a string");
    else if (!at || strchr(at + 6, '{') || memchr(tpl, '{', (size_t)(at - tpl)) || strlen(tpl) > 150)
        rc_config_error(e, q, "must contain {user} once and no other placeholder");
    else {
        ns->status_prefix = rc_strndup(tpl, (size_t)(at - tpl));
        ns->status_suffix = rc_strdup(at + 6);
    }
    rc_free(q);
    compile_emit_pair(j, p, "offline", "online", ns->status_ev, e);
    rc_free(p);
}

/* "track": {"rooms": [globs], "joined": spec, "left": spec} */
static void compile_track(const cJSON *j, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const keys[] = {"rooms", "joined", "left", NULL};
    char *p = pathf("%s.track", path);
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, p, "must be an object {\"rooms\", \"joined\", \"left\"}");
        rc_free(p);
        return;
    }
    rc__config_check_keys(j, p, keys, e);
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(j, "rooms");
    char *q = pathf("%s.rooms", p);
    if (!cJSON_IsArray(rooms) || cJSON_GetArraySize(rooms) < 1) {
        rc_config_error(e, q, "must be a non-empty array of room globs");
    } else {
        ns->track_globs = rc_calloc((size_t)cJSON_GetArraySize(rooms), sizeof(char *));
        for (const cJSON *c = rooms->child; c; c = c->next) {
            if (!cJSON_IsString(c) || !c->valuestring[0]) rc_config_error(e, q, "each glob must be a non-empty string");
            else ns->track_globs[ns->ntrack++] = rc_strdup(c->valuestring);
        }
    }
    rc_free(q);
    compile_emit_pair(j, p, "left", "joined", ns->track_ev, e);
    rc_free(p);
}

/* "rateLimit": {"events": N, "interval": ms, "onLimit": rule} — a token bucket per socket. */
static void compile_rate_limit(const cJSON *rl, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const keys[] = {"events", "interval", "onLimit", NULL};
    char *p = pathf("%s.rateLimit", path);
    if (!cJSON_IsObject(rl)) {
        rc_config_error(e, p, "must be an object {\"events\": N, \"interval\": ms, \"onLimit\": rule}");
        rc_free(p);
        return;
    }
    rc__config_check_keys(rl, p, keys, e);
    parse_limit(rl, p, &ns->rate_events, &ns->rate_interval_ms, e);
    const cJSON *ol = cJSON_GetObjectItemCaseSensitive(rl, "onLimit");
    if (ol) {
        char *q = pathf("%s.onLimit", p);
        compile_rule(ol, q, IN_EVENT, &ns->on_limit, e);
        ns->has_on_limit = 1;
        rc_free(q);
    }
    rc_free(p);
}

static void compile_ns(const cJSON *j, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const ns_keys[] = {"auth", "tokenInQuery", "userRoom", "joinAllow", "onConnect",
                                          "events", "rateLimit", "status", "track", NULL};
    static const cJSON default_user_room = {.type = cJSON_String, .valuestring = (char *)"user:{user}"};
    static const cJSON default_allow_item = {.type = cJSON_String, .valuestring = (char *)"{claims.rooms}"};
    static const cJSON default_allow = {.type = cJSON_Array, .child = (cJSON *)&default_allow_item};

    if (!cJSON_IsObject(j)) {
        rc_config_error(e, path, "must be an object");
        return;
    }
    rc__config_check_keys(j, path, ns_keys, e);

    const cJSON *auth = cJSON_GetObjectItemCaseSensitive(j, "auth");
    if (auth) {
        if (cJSON_IsString(auth) && strcmp(auth->valuestring, "required") == 0) ns->auth = RC_NS_AUTH_REQUIRED;
        else if (cJSON_IsString(auth) && strcmp(auth->valuestring, "optional") == 0) ns->auth = RC_NS_AUTH_OPTIONAL;
        else if (cJSON_IsString(auth) && strcmp(auth->valuestring, "none") == 0) ns->auth = RC_NS_AUTH_NONE;
        else {
            char *p = pathf("%s.auth", path);
            rc_config_error(e, p, "must be \"required\", \"optional\" or \"none\"");
            rc_free(p);
        }
    }
    ns->token_in_query = get_bool(j, "tokenInQuery", 0, path, e);

    /* Backends address a user by id alone (P:notify, POST /api/publish), so the user room must
     * be computable from the id: it must read {user} and nothing but {user} and {ns}. */
    static const char *const user_room_roots[] = {"user", "ns", NULL};
    const cJSON *ur = cJSON_GetObjectItemCaseSensitive(j, "userRoom");
    char *p = pathf("%s.userRoom", path);
    if (!ur) ns->user_room = room_tpl(&default_user_room, p, e);
    else if (!cJSON_IsNull(ur)) ns->user_room = room_tpl(ur, p, e);
    if (ns->user_room && (!rc_tpl_reads(ns->user_room, "user") ||
                          rc_tpl_roots_other_than(ns->user_room, user_room_roots)))
        rc_config_error(e, p, "must contain {user} and use nothing but {user} and {ns} "
                              "(backends address a user by id alone)");
    rc_free(p);

    const cJSON *ja = cJSON_GetObjectItemCaseSensitive(j, "joinAllow");
    p = pathf("%s.joinAllow", path);
    compile_allow(ja ? ja : &default_allow, p, &ns->join_allow, e);
    rc_free(p);

    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(j, "onConnect");
    if (oc) {
        p = pathf("%s.onConnect", path);
        compile_rule(oc, p, IN_CONNECT, &ns->on_connect, e);
        rc_free(p);
    }

    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(j, "rateLimit");
    if (rl && !cJSON_IsNull(rl)) compile_rate_limit(rl, path, ns, e);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    if (st && !cJSON_IsNull(st)) compile_status(st, path, ns, e);
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(j, "track");
    if (tr && !cJSON_IsNull(tr)) compile_track(tr, path, ns, e);

    const cJSON *events = cJSON_GetObjectItemCaseSensitive(j, "events");
    if (!events) return;
    p = pathf("%s.events", path);
    if (!cJSON_IsObject(events)) {
        rc_config_error(e, p, "must be an object (event name -> rule)");
        rc_free(p);
        return;
    }
    rc__config_check_keys(events, p, NULL, e);
    size_t n = (size_t)cJSON_GetArraySize(events);
    ns->rules = rc_calloc(n ? n : 1, sizeof(*ns->rules));
    for (const cJSON *c = events->child; c; c = c->next) {
        if (rc__config_is_comment(c)) continue;
        char *rp = pathf("%s.%s", p, c->string);
        if (!c->string[0]) rc_config_error(e, rp, "an event name must not be empty");
        else if (is_reserved_event(c->string))
            rc_config_error(e, rp, "'%s' is a reserved event name (use onConnect for connections)", c->string);
        struct rule *r = &ns->rules[ns->nrules++];
        r->event = rc_strdup(c->string);
        compile_rule(c, rp, IN_EVENT, r, e);
        rc_free(rp);
    }
    rc_free(p);
    qsort(ns->rules, ns->nrules, sizeof(*ns->rules), rule_cmp);
    for (size_t i = 0; i < ns->nrules; i++)
        ns->rules[i].rl_index = ns->rules[i].rl_events ? (int)ns->n_event_limits++ : -1;
}

static const char default_namespaces[] =
    "{\"/\": {\"auth\": \"required\", \"events\": {"
    "  \"join\":  {\"do\": [{\"join\": \"{data.room|data}\"}, {\"ack\": {\"ok\": true, \"room\": \"{room}\"}}],"
    "             \"onError\": [{\"ack\": {\"ok\": false, \"error\": \"{error}\"}}]},"
    "  \"leave\": {\"do\": [{\"leave\": \"{data.room|data}\"}, {\"ack\": {\"ok\": true, \"room\": \"{room}\"}}],"
    "             \"onError\": [{\"ack\": {\"ok\": false, \"error\": \"{error}\"}}]}"
    "}}}";

rc_rules *rc_rules_compile(const cJSON *json, const char *path, rc_config_errors *errs)
{
    rc_config_errors local = {0};
    rc_config_errors *e = errs ? errs : &local;
    size_t before = e->count;
    if (!path) path = "namespaces";

    if (!json) {
        cJSON *def = cJSON_Parse(default_namespaces);
        rc_rules *r = rc_rules_compile(def, path, errs);
        cJSON_Delete(def);
        return r;
    }
    if (!cJSON_IsObject(json)) {
        rc_config_error(e, path, "must be an object (namespace name -> definition)");
        rc_config_errors_dispose(&local);
        return NULL;
    }
    rc__config_check_keys(json, path, NULL, e);
    size_t n = 0;
    for (const cJSON *c = json->child; c; c = c->next) n += !rc__config_is_comment(c);
    if (n == 0) rc_config_error(e, path, "at least one namespace is required");
    if (n > MAX_NAMESPACES) rc_config_error(e, path, "at most %d namespaces (found %zu)", MAX_NAMESPACES, n);

    rc_rules *rules = rc_calloc(1, sizeof(*rules));
    rules->ns = rc_calloc(n ? n : 1, sizeof(*rules->ns));
    for (const cJSON *c = json->child; c; c = c->next) {
        if (rc__config_is_comment(c)) continue;
        char *p = pathf("%s.%s", path, c->string);
        if (bad_ns_name(c->string))
            rc_config_error(e, p, "a namespace name starts with '/', is at most %d bytes, and has no "
                                  "spaces, ',', '?' or '#'", MAX_NS_NAME);
        rc_ns_rules *ns = &rules->ns[rules->n++];
        ns->name = rc_strdup(c->string);
        ns->name_len = strlen(ns->name);
        compile_ns(c, p, ns, e);
        rc_free(p);
    }
    if (e->count == before) return rules;
    rc_rules_free(rules);
    rc_config_errors_dispose(&local);
    return NULL;
}

/* ---- lookups ------------------------------------------------------------------------------ */

size_t rc_rules_ns_count(const rc_rules *rules) { return rules ? rules->n : 0; }

const rc_ns_rules *rc_rules_ns_at(const rc_rules *rules, size_t i)
{
    return rules && i < rules->n ? &rules->ns[i] : NULL;
}

const rc_ns_rules *rc_rules_find_ns(const rc_rules *rules, const char *name, size_t len)
{
    for (size_t i = 0; rules && i < rules->n; i++)
        if (rules->ns[i].name_len == len && memcmp(rules->ns[i].name, name, len) == 0) return &rules->ns[i];
    return NULL;
}

const char *rc_ns_rules_name(const rc_ns_rules *ns) { return ns->name; }
int rc_ns_rules_auth(const rc_ns_rules *ns) { return ns->auth; }
int rc_ns_rules_token_in_query(const rc_ns_rules *ns) { return ns->token_in_query; }

char *rc_ns_rules_user_room(const rc_ns_rules *ns, const char *user, const char *claims_json)
{
    if (!ns->user_room || !user) return NULL;
    rc_tpl_ctx ctx = {.ns = ns->name, .user = user, .claims_json = claims_json};
    char buf[RC_TPL_NAME_MAX + 1];
    int n = rc_tpl_name(ns->user_room, &ctx, buf);
    rc_tpl_ctx_dispose(&ctx);
    return n < 0 ? NULL : rc_strdup(buf);
}

static const struct rule *find_rule(const rc_ns_rules *ns, const char *event)
{
    size_t lo = 0, hi = ns->nrules;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(event, ns->rules[mid].event);
        if (c == 0) return &ns->rules[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* Iterative glob: on a mismatch, retry from the last '*' one character further. O(n*m). */
int rc_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?') {
            p++;
            s++;
            while (((unsigned char)*s & 0xC0) == 0x80) s++; /* one UTF-8 character */
        } else if (*p && *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

/* ---- running ------------------------------------------------------------------------------ */

struct run {
    const rc_ns_rules *ns;
    const rc_rule_input *in;
    const rc_rule_ops *ops;
    void *target;
    rc_tpl_ctx ctx;
    char *room;            /* {room} */
    char *reason;          /* the reason of a `fail` action */
    int acked;
    int stopped;           /* after disconnect */
};

static void run_init(struct run *r, const rc_ns_rules *ns, const rc_rule_input *in, const rc_rule_ops *ops,
                     void *target)
{
    memset(r, 0, sizeof(*r));
    r->ns = ns;
    r->in = in;
    r->ops = ops;
    r->target = target;
    r->ctx.args = in->args;
    r->ctx.auth = in->auth;
    r->ctx.event = in->event;
    r->ctx.ns = in->ns ? in->ns : ns->name;
    r->ctx.sid = in->sid;
    r->ctx.user = in->user;
    r->ctx.claims_json = in->claims_json;
}

static void run_dispose(struct run *r)
{
    rc_tpl_ctx_dispose(&r->ctx);
    rc_free(r->room);
    rc_free(r->reason);
}

static void set_room(struct run *r, const char *room)
{
    rc_free(r->room);
    r->room = rc_strdup(room);
    r->ctx.room = r->room;
}

/* The room of an action (in buf or the template), or NULL: bad_room. Sets {room}. */
static const char *eval_room(struct run *r, const rc_tpl *t, char buf[RC_TPL_NAME_MAX + 1])
{
    if (rc_tpl_name(t, &r->ctx, buf) < 0) return NULL;
    set_room(r, buf);
    return buf;
}

/* The event name of a relay/emit/forward, or NULL: bad_event. */
static const char *eval_event(struct run *r, const struct action *a, char buf[RC_TPL_NAME_MAX + 1])
{
    if (!a->event) return r->in->event;
    const char *c = rc_tpl_const_string(a->event);
    if (c) return c;
    if (rc_tpl_name(a->event, &r->ctx, buf) < 0 || is_reserved_event(buf)) return NULL;
    return buf;
}

/* The arguments of a relay/emit: "args" (must be an array), "data" (one argument), else for a
 * relay a copy of the received arguments and for an emit none. NULL: bad_args. */
static cJSON *eval_args(struct run *r, const struct action *a)
{
    if (a->args) {
        cJSON *v = rc_tpl_eval(a->args, &r->ctx);
        if (cJSON_IsArray(v)) return v;
        cJSON_Delete(v);
        return NULL;
    }
    cJSON *arr = cJSON_CreateArray();
    if (a->value) {
        cJSON *v = rc_tpl_eval(a->value, &r->ctx);
        cJSON_AddItemToArray(arr, v ? v : cJSON_CreateNull());
    } else if (a->verb == V_RELAY && cJSON_IsArray(r->in->args)) {
        for (const cJSON *c = r->in->args->child; c; c = c->next)
            cJSON_AddItemToArray(arr, cJSON_Duplicate(c, 1));
    }
    return arr;
}

struct glob_arg {
    const char *room;
};

static int glob_fn(void *arg, const char *pattern)
{
    return rc_glob_match(pattern, ((struct glob_arg *)arg)->room);
}

static int join_allowed(struct run *r, const struct action *a, const char *room)
{
    const struct allow *allow = a->allow.set ? &a->allow : &r->ns->join_allow;
    if (allow->any) return 1;
    if (r->ns->user_room && r->in->user) {
        char own[RC_TPL_NAME_MAX + 1];
        if (rc_tpl_name(r->ns->user_room, &r->ctx, own) >= 0 && strcmp(own, room) == 0) return 1;
    }
    struct glob_arg g = {room};
    for (size_t i = 0; i < allow->n; i++)
        if (rc_tpl_each_string(allow->globs[i], &r->ctx, glob_fn, &g)) return 1;
    return r->ops->is_member && r->ops->is_member(r->target, room);
}

static const char *do_presence(struct run *r, const struct action *a)
{
    if (!r->ops->presence) return reason_unsupported;
    cJSON *v = rc_tpl_eval(a->value, &r->ctx);
    cJSON *users = cJSON_CreateArray();
    const char *err = NULL;
    if (cJSON_IsString(v) || cJSON_IsNumber(v)) {
        cJSON *one = v;
        v = cJSON_CreateArray();
        cJSON_AddItemToArray(v, one);
    }
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
    if (n < 1 || n > MAX_PRESENCE_USERS) err = reason_bad_args;
    for (const cJSON *c = v ? v->child : NULL; c && !err; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring[0]) {
            cJSON_AddItemToArray(users, cJSON_CreateString(c->valuestring));
        } else if (cJSON_IsNumber(c)) {
            char num[32];
            snprintf(num, sizeof(num), "%.17g", c->valuedouble);
            cJSON_AddItemToArray(users, cJSON_CreateString(num));
        } else {
            err = reason_bad_args;
        }
    }
    cJSON_Delete(v);
    if (err) {
        cJSON_Delete(users);
        return err;
    }
    return r->ops->presence(r->target, users, a->cont);
}

static const char *do_action(struct run *r, const struct action *a)
{
    const rc_rule_ops *ops = r->ops;
    char room_buf[RC_TPL_NAME_MAX + 1], event_buf[RC_TPL_NAME_MAX + 1];
    const char *room, *event;
    cJSON *args;

    switch (a->verb) {
    case V_JOIN:
        if (!(room = eval_room(r, a->room, room_buf))) return reason_bad_room;
        if (!join_allowed(r, a, room)) return reason_forbidden;
        return ops->join(r->target, room);
    case V_LEAVE:
        if (!(room = eval_room(r, a->room, room_buf))) return reason_bad_room;
        return ops->leave(r->target, room);
    case V_RELAY:
        if (!(room = eval_room(r, a->room, room_buf))) return reason_bad_room;
        if (a->require_member && !(ops->is_member && ops->is_member(r->target, room))) return reason_forbidden;
        if (!(event = eval_event(r, a, event_buf))) return reason_bad_event;
        if (!(args = eval_args(r, a))) return reason_bad_args;
        return ops->relay(r->target, room, event, args, a->include_sender);
    case V_EMIT:
        if (!(event = eval_event(r, a, event_buf))) return reason_bad_event;
        if (!(args = eval_args(r, a))) return reason_bad_args;
        ops->emit(r->target, event, args, a->cont);
        return NULL;
    case V_ACK:
    case V_ACKARGS:
        if (!r->in->has_ack || r->acked) return NULL;
        if (a->verb == V_ACK) {
            cJSON *v = rc_tpl_eval(a->value, &r->ctx);
            args = cJSON_CreateArray();
            cJSON_AddItemToArray(args, v ? v : cJSON_CreateNull());
        } else {
            args = rc_tpl_eval(a->args, &r->ctx);
            if (!cJSON_IsArray(args)) {
                cJSON_Delete(args);
                return reason_bad_args;
            }
        }
        r->acked = 1;
        ops->ack(r->target, args);
        return NULL;
    case V_DISCONNECT:
        r->stopped = 1;
        ops->disconnect(r->target);
        return NULL;
    case V_FAIL: {
        char *heap;
        const char *text = rc_tpl_text(a->value, &r->ctx, &heap);
        size_t n = strlen(text);
        rc_free(r->reason);
        r->reason = n ? rc_strndup(text, n > RC_TPL_NAME_MAX ? RC_TPL_NAME_MAX : n) : rc_strdup("failed");
        rc_free(heap);
        return r->reason;
    }
    case V_FORWARD: {
        if (!ops->forward) return reason_unsupported;
        if (!(event = eval_event(r, a, event_buf))) return reason_bad_event;
        cJSON *data = NULL;
        if (a->value) data = rc_tpl_eval(a->value, &r->ctx);
        else if (cJSON_IsArray(r->in->args) && r->in->args->child) data = cJSON_Duplicate(r->in->args->child, 1);
        return ops->forward(r->target, event, data ? data : cJSON_CreateNull());
    }
    case V_PRESENCE:
        return do_presence(r, a);
    case V_VISIBLE:
        if (!r->ops->visible) return reason_unsupported;
        return r->ops->visible(r->target, rc_tpl_truthy(a->value, &r->ctx));
    case V_MEMBERS: {
        if (!r->ops->members) return reason_unsupported;
        char mroom[RC_TPL_NAME_MAX + 1];
        if (rc_tpl_name(a->room, &r->ctx, mroom) < 0) return reason_bad_room;
        set_room(r, mroom);
        return r->ops->members(r->target, mroom, a->cont);
    }
    case V__COUNT:
        break;
    }
    return NULL;
}

static int cond_holds(const struct cond *c, struct run *r)
{
    rc_tpl_ctx *ctx = &r->ctx;
    if (c->kind == COND_TRUTHY) return rc_tpl_truthy(c->a, ctx);
    if (c->kind == COND_MEMBER) {
        char room[RC_TPL_NAME_MAX + 1];
        return rc_tpl_name(c->a, ctx, room) >= 0 && r->ops->is_member && r->ops->is_member(r->target, room);
    }
    cJSON *a = rc_tpl_eval(c->a, ctx), *b = rc_tpl_eval(c->b, ctx);
    int holds = 0;
    if (c->kind == COND_EQUALS)
        holds = a && b ? cJSON_Compare(a, b, 1) : !a && !b;
    else if (a && cJSON_IsArray(b))
        for (const cJSON *x = b->child; x && !holds; x = x->next) holds = cJSON_Compare(a, x, 1);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return holds;
}

/* Runs a list until an action fails (its reason) or the socket is disconnected. */
static const char *run_list(struct run *r, const struct alist *l)
{
    for (size_t i = 0; i < l->n && !r->stopped; i++) {
        const struct action *a = &l->items[i];
        if (a->when.a && !cond_holds(&a->when, r)) continue;
        if (a->unless.a && cond_holds(&a->unless, r)) continue;
        const char *err = do_action(r, a);
        if (err) return err;
    }
    return NULL;
}

static void run_rule(struct run *r, const struct rule *rule)
{
    const char *err = run_list(r, &rule->run);
    if (!err || r->stopped) return;
    r->ctx.error = err;
    if (rule->has_on_error) {
        run_list(r, &rule->on_error);
    } else if (r->in->has_ack && !r->acked) {
        cJSON *res = cJSON_CreateObject();
        cJSON_AddFalseToObject(res, "ok");
        cJSON_AddStringToObject(res, "error", err);
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, res);
        r->acked = 1;
        r->ops->ack(r->target, args);
    }
}

int rc_rules_run(const rc_ns_rules *ns, const rc_rule_input *in, const rc_rule_ops *ops, void *target)
{
    if (!ns) return 0;
    const struct rule *rule = in->event ? find_rule(ns, in->event) : &ns->on_connect;
    if (!rule && in->event) rule = find_rule(ns, "*"); /* the catch-all, for events with no rule */
    if (!rule) return 0;
    struct run r;
    run_init(&r, ns, in, ops, target);
    run_rule(&r, rule);
    run_dispose(&r);
    return 1;
}

/* Appends to `out` the text each '*' of pattern matched in s (s is known to match). Leftmost
 * stars take the shortest text that still lets the rest match. */
static void glob_captures(const char *pattern, const char *s, cJSON *out)
{
    while (*pattern) {
        if (*pattern == '*') {
            const char *rest = pattern + 1;
            size_t n = 0;
            while (s[n] && !rc_glob_match(rest, s + n)) n++;
            char *cap = rc_strndup(s, n);
            cJSON_AddItemToArray(out, cJSON_CreateString(cap));
            rc_free(cap);
            s += n;
            pattern = rest;
        } else {
            if (*pattern == '?') {
                /* one UTF-8 character */
                s++;
                while ((*s & 0xc0) == 0x80) s++;
            } else {
                s++;
            }
            pattern++;
        }
    }
}

int rc_ns_rules_status_user(const rc_ns_rules *ns, const char *room, char *user, size_t n)
{
    if (!ns || !ns->status_prefix) return 0;
    size_t pl = strlen(ns->status_prefix), sl = strlen(ns->status_suffix), rl = strlen(room);
    if (rl <= pl + sl || strncmp(room, ns->status_prefix, pl) != 0 ||
        strcmp(room + rl - sl, ns->status_suffix) != 0 || rl - pl - sl >= n)
        return 0;
    memcpy(user, room + pl, rl - pl - sl);
    user[rl - pl - sl] = '\0';
    return 1;
}

char *rc_ns_rules_status_room(const rc_ns_rules *ns, const char *user)
{
    if (!ns || !ns->status_prefix) return NULL;
    size_t n = strlen(ns->status_prefix) + strlen(user) + strlen(ns->status_suffix) + 1;
    char *room = rc_malloc(n);
    snprintf(room, n, "%s%s%s", ns->status_prefix, user, ns->status_suffix);
    return room;
}

int rc_ns_rules_status_broadcast(const rc_ns_rules *ns)
{
    return ns && ns->status_prefix && ns->status_broadcast;
}

int rc_ns_rules_tracked(const rc_ns_rules *ns, const char *room)
{
    for (size_t i = 0; ns && i < ns->ntrack; i++)
        if (rc_glob_match(ns->track_globs[i], room)) return 1;
    return 0;
}

int rc_ns_rules_announce(const rc_ns_rules *ns, int kind, const char *user, const char *room,
                         uint64_t ts_ms, char event[201], cJSON **args)
{
    *args = NULL;
    if (!ns) return -1;
    int on = kind & 1;
    const struct emit_spec *spec = kind < 2 ? &ns->status_ev[on] : &ns->track_ev[on];
    if (!spec->event || (kind < 2 && !ns->status_prefix) || (kind >= 2 && !ns->ntrack)) return -1;
    /* {data} is {"user", "online"|"joined", "ts"|"room"}; {user} and {room} are set too. */
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "user", user);
    if (kind < 2) {
        cJSON_AddBoolToObject(d, "online", on);
        cJSON_AddNumberToObject(d, "ts", (double)ts_ms);
    } else {
        cJSON_AddBoolToObject(d, "joined", on);
        cJSON_AddStringToObject(d, "room", room);
        /* {data.match.N}: the text the Nth '*' of the matching glob stood for
         * ("meeting:*" and "meeting:42" give match.0 = "42"). */
        cJSON *match = cJSON_AddArrayToObject(d, "match");
        for (size_t i = 0; i < ns->ntrack; i++) {
            if (!rc_glob_match(ns->track_globs[i], room)) continue;
            glob_captures(ns->track_globs[i], room, match);
            break;
        }
    }
    cJSON *in_args = cJSON_CreateArray();
    cJSON_AddItemToArray(in_args, d);
    rc_tpl_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.args = in_args;
    ctx.ns = ns->name;
    ctx.user = user;
    ctx.room = room;
    int r = rc_tpl_name(spec->event, &ctx, event);
    if (r >= 0) {
        cJSON *v = spec->data ? rc_tpl_eval(spec->data, &ctx) : NULL;
        *args = cJSON_CreateArray();
        if (v) cJSON_AddItemToArray(*args, v);
        else if (!spec->data) cJSON_AddItemToArray(*args, cJSON_Duplicate(d, 1));
    }
    rc_tpl_ctx_dispose(&ctx);
    cJSON_Delete(in_args);
    return r >= 0 ? 0 : -1;
}

void rc_ns_rules_rate_limit(const rc_ns_rules *ns, unsigned *events, unsigned *interval_ms)
{
    *events = ns ? ns->rate_events : 0;
    *interval_ms = ns ? ns->rate_interval_ms : 0;
}

int rc_ns_rules_event_limit(const rc_ns_rules *ns, const char *event, unsigned *events, unsigned *interval_ms)
{
    const struct rule *r = ns ? find_rule(ns, event) : NULL;
    if (ns && !r) r = find_rule(ns, "*");
    if (!r || r->rl_index < 0) return -1;
    *events = r->rl_events;
    *interval_ms = r->rl_interval_ms;
    return r->rl_index;
}

unsigned rc_ns_rules_event_limit_count(const rc_ns_rules *ns) { return ns ? ns->n_event_limits : 0; }

void rc_rules_run_limited(const rc_ns_rules *ns, const rc_rule_input *in, const rc_rule_ops *ops, void *target)
{
    if (!ns) return;
    struct run r;
    run_init(&r, ns, in, ops, target);
    r.ctx.error = "rate_limited";
    if (ns->has_on_limit) {
        run_list(&r, &ns->on_limit.run);
    } else if (in->has_ack) {
        cJSON *res = cJSON_CreateObject();
        cJSON_AddFalseToObject(res, "ok");
        cJSON_AddStringToObject(res, "error", "rate_limited");
        cJSON *args = cJSON_CreateArray();
        cJSON_AddItemToArray(args, res);
        r.acked = 1;
        ops->ack(target, args);
    }
    run_dispose(&r);
}

void rc_rules_run_ack(const rc_ns_rules *ns, const void *on_ack, const rc_rule_input *in,
                      const rc_rule_ops *ops, void *target)
{
    if (!ns || !on_ack) return;
    struct run r;
    run_init(&r, ns, in, ops, target);
    run_rule(&r, on_ack);
    run_dispose(&r);
}
