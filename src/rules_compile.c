/*
 * rules_compile.c: the compiler of the rules language. The config's "namespaces" object (or the
 * built-in default) goes in; the immutable compiled form of src/rules_compiled.h comes out, for
 * src/rules_run.c to run. Language reference: docs/config.md ("Namespaces", "Rules", "The
 * built-in default").
 *
 * Design note. rc_rules_compile checks the JSON strictly (unknown keys and verbs are errors with
 * their full path) and builds immutable structs: namespaces -> rules (sorted by event name, so
 * the interpreter finds them by binary search) -> action lists -> actions whose every value is a
 * compiled rc_tpl (template.c). Compilation either succeeds completely or reports every problem
 * and returns NULL; partially built structures are freed by the same code that frees good ones
 * (rc_rules_free, which lives here beside the code that builds what it frees).
 *
 * It does not: run actions or evaluate templates (it only looks at their constant text: name
 * lengths, reserved event names), answer lookups on compiled rules (src/rules_run.c), or keep
 * any of the JSON it was given.
 *
 * Ownership: the JSON is borrowed and every string kept is copied. The rc_rules returned belongs
 * to the caller (the config), which frees it with rc_rules_free. Problems are appended to the
 * caller's rc_config_errors.
 *
 * API in call order: rc_rules_compile -> (lookups and runs: src/rules_run.c) -> rc_rules_free.
 */
#include "rules_compiled.h"
#include "roomcast/common.h"
#include "roomcast/errors.h"
#include "roomcast/sio_codec.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_NAMESPACES 32
#define MAX_NS_NAME 128

static const char *const verb_names[V__COUNT] = {
    "join", "leave", "relay", "emit", "ack", "ackArgs", "disconnect", "fail", "forward", "presence",
    "visible", "members", "verify",
};
#define VERB_LIST "join, leave, relay, emit, ack, ackArgs, disconnect, fail, forward, presence, visible, members, verify"

/* ---- freeing ------------------------------------------------------------------------------ */

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
        rc_tpl_free(ns->auth_error.event);
        rc_tpl_free(ns->auth_error.data);
        for (int k = 0; k < 2; k++) {
            rc_tpl_free(ns->status_ev[k].event);
            rc_tpl_free(ns->status_ev[k].data);
            rc_tpl_free(ns->track_ev[k].event);
            rc_tpl_free(ns->track_ev[k].data);
        }
        for (size_t k = 0; k < ns->ntrack; k++) rc_free(ns->track_globs[k]);
        rc_free(ns->track_globs);
        rc_recovery_config_dispose(&ns->recovery);
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

/* Socket.IO's own event names; the contract is in rules_compiled.h. */
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
        else if (c && rc_sio_event_reserved(c))
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
    case V_VERIFY:
        if (!cJSON_IsString(v)) rc_config_error(e, vpath, "token template must be a string");
        else a->value = rc_tpl_compile(v, vpath, e);
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
            struct cond *cond = c->string[0] == 'i' ? &a->when : &a->unless;
            /* a key given twice is reported by rc__config_check_keys above; the second is not
             * compiled over the first (which would leak it) */
            if (cond->a) continue;
            char *p = pathf("%s.%s", path, c->string);
            compile_cond(c, p, cond, e);
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

/* The two announcement specs of status (both required) or track (each optional: without it,
 * that change is tracked but not announced): out[0] from key k0, out[1] from k1. */
static void compile_emit_pair(const cJSON *j, const char *path, const char *k0, const char *k1,
                              int required, struct emit_spec out[2], rc_config_errors *e)
{
    const char *const which[2] = {k0, k1};
    for (int k = 0; k < 2; k++) {
        const cJSON *spec = cJSON_GetObjectItemCaseSensitive(j, which[k]);
        char *q = pathf("%s.%s", path, which[k]);
        if (!spec) {
            if (required) rc_config_error(e, q, "required");
        } else {
            compile_emit_spec(spec, q, &out[k], e);
        }
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
    compile_emit_pair(j, p, "offline", "online", 1, ns->status_ev, e);
    rc_free(p);
}

/* "track": {"rooms": [globs], "joined": spec, "left": spec}; joined and left are optional (a
 * room can be tracked for its member list alone) */
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
    compile_emit_pair(j, p, "left", "joined", 0, ns->track_ev, e);
    rc_free(p);
}

/* "authError": "connect_error" (the default: CONNECT_ERROR, as Socket.IO refuses) or {"event":
 * <name>, "data": <template>}: a CONNECT whose token does not verify is accepted, told that event,
 * then disconnected (as a gateway that checks the token in its connection handler does). Its
 * templates see {error} (the auth reason), {ns}, {now} and {nowIso}; without "data" the event
 * carries {"code": <reason>, "message": "unauthorized"}. */
static void compile_auth_error(const cJSON *j, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const roots[] = {"error", "ns", "now", "nowIso", NULL};
    char *p = pathf("%s.authError", path);
    if (cJSON_IsString(j) && strcmp(j->valuestring, "connect_error") == 0) {
        rc_free(p);
        return;
    }
    if (!cJSON_IsObject(j)) {
        rc_config_error(e, p, "must be \"connect_error\" or {\"event\": <name>, \"data\": <template>}");
    } else {
        compile_emit_spec(j, p, &ns->auth_error, e);
        if ((ns->auth_error.event && rc_tpl_roots_other_than(ns->auth_error.event, roots)) ||
            (ns->auth_error.data && rc_tpl_roots_other_than(ns->auth_error.data, roots)))
            rc_config_error(e, p, "may use only {error}, {ns}, {now} and {nowIso} (there is no socket)");
        if (ns->auth == RC_NS_AUTH_NONE)
            rc_config_error(e, p, "never used with auth \"none\" (no token is verified at connect)");
    }
    rc_free(p);
}

/* 1 if some action of the list, or of a continuation below it, is a `verify`. */
static int alist_verifies(const struct alist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct action *a = &l->items[i];
        if (a->verb == V_VERIFY) return 1;
        if (a->cont && (alist_verifies(&a->cont->run) || alist_verifies(&a->cont->on_error))) return 1;
    }
    return 0;
}

static int rule_verifies(const struct rule *r)
{
    return alist_verifies(&r->run) || alist_verifies(&r->on_error);
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

static void compile_events(const cJSON *events, const char *path, rc_ns_rules *ns, rc_config_errors *e);

static void compile_ns(const cJSON *j, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    static const char *const ns_keys[] = {"auth", "tokenInQuery", "userRoom", "joinAllow", "onConnect",
                                          "events", "rateLimit", "status", "track", "authError", "recovery",
                                          "writeDelay", NULL};
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
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(j, "authError");
    if (ae && !cJSON_IsNull(ae)) compile_auth_error(ae, path, ns, e);

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
    p = pathf("%s.recovery", path);
    rc_recovery_config_parse(&ns->recovery, cJSON_GetObjectItemCaseSensitive(j, "recovery"), p, e);
    rc_free(p);
    rc__rules_write_delay_parse(j, path, ns, e);

    const cJSON *events = cJSON_GetObjectItemCaseSensitive(j, "events");
    compile_events(events, path, ns, e);
    ns->has_verify = rule_verifies(&ns->on_connect) || (ns->has_on_limit && rule_verifies(&ns->on_limit));
    for (size_t i = 0; i < ns->nrules && !ns->has_verify; i++) ns->has_verify = rule_verifies(&ns->rules[i]);
}

/* "events": event name -> rule, sorted by name for the interpreter's binary search. */
static void compile_events(const cJSON *events, const char *path, rc_ns_rules *ns, rc_config_errors *e)
{
    if (!events) return;
    char *p = pathf("%s.events", path);
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
        else if (rc_sio_event_reserved(c->string))
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
