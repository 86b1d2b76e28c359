/*
 * rules_run.c: the interpreter of the rules language, and every lookup on compiled rules. For
 * each client event (and for onConnect) it runs the actions compiled by src/rules_compile.c
 * (their form: src/rules_compiled.h) and acts through the node's rc_rule_ops. Language
 * reference: docs/config.md ("Rules", "Templates", "Online status and tracked rooms").
 *
 * Design note. rc_rules_run keeps its state on the stack (struct run): the template context
 * (claims are parsed on the first `{claims...}` lookup, and freed when the run ends), {room}, the
 * reason of a `fail`, {verified} (what the last `verify` verified: the node checks the token, the
 * rules only keep the result), and whether the client's ack has already been answered. {auth}
 * reads as {} when the CONNECT carried no payload, as Socket.IO's socket.handshake.auth does. It decides and
 * calls rc_rule_ops to act; it never touches sockets, rooms or the network, and it never calls
 * back into itself. Every cJSON handed to an op is new and becomes the op's.
 *
 * Continuations (emit "onAck", presence and members "then") are compiled rules; ops receive them
 * as opaque pointers that stay valid as long as the rules, and hand them back to
 * rc_rules_run_ack.
 *
 * The lookups read the compiled form and nothing else: namespaces by name, a namespace's auth
 * mode and how it refuses a CONNECT (rc_ns_rules_auth_error), user room, rate limits (the socket layer keeps the token buckets), status room and
 * tracked rooms, and the events that status and track announce (rc_ns_rules_announce).
 *
 * It does not: compile or free rules (src/rules_compile.c), keep state between events, re-parse
 * template text, count rate limits, or validate what the ops do with rooms (the node refuses
 * socket-id rooms and the like).
 *
 * Ownership: the compiled rules and the rule input are borrowed. Heap strings returned by
 * rc_ns_rules_user_room and rc_ns_rules_status_room, and the args of rc_ns_rules_announce,
 * belong to the caller.
 *
 * API in call order (after rc_rules_compile): rc_rules_find_ns / rc_rules_ns_at /
 * rc_ns_rules_* -> rc_rules_run (per event, and with event NULL for onConnect), or
 * rc_rules_run_limited for an event the rate limit refused -> rc_rules_run_ack (later, per
 * continuation); rc_ns_rules_announce when a status or tracked room changes.
 */
#include "rules_compiled.h"
#include "roomcast/common.h"
#include "roomcast/sio_codec.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_PRESENCE_USERS 1000

/* Reasons that rules themselves produce (templates see them as {error}). */
static const char reason_bad_room[] = "bad_room";
static const char reason_forbidden[] = "forbidden";
static const char reason_bad_args[] = "bad_args";
static const char reason_bad_event[] = "bad_event";
static const char reason_unsupported[] = "unsupported";

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
int rc_ns_rules_verifies_tokens(const rc_ns_rules *ns) { return ns->auth != RC_NS_AUTH_NONE || ns->has_verify; }

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
    cJSON *verified;       /* {verified}: {"user", "claims"} of the last `verify` that passed */
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
    /* Socket.IO's socket.handshake.auth is {} when the CONNECT carried no payload: so is {auth}. */
    static const cJSON no_auth = {.type = cJSON_Object};
    r->ctx.args = in->args;
    r->ctx.auth = in->auth ? in->auth : &no_auth;
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
    cJSON_Delete(r->verified);
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
    if (rc_tpl_name(a->event, &r->ctx, buf) < 0 || rc_sio_event_reserved(buf)) return NULL;
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
    int found = 0;
    r->ctx.globs_from_trusted_only = 1;
    for (size_t i = 0; i < allow->n && !found; i++) found = rc_tpl_each_string(allow->globs[i], &r->ctx, glob_fn, &g);
    r->ctx.globs_from_trusted_only = 0;
    if (found) return 1;
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
            char num[24]; /* a user id: exact digits or refused (rc_tpl_id_number) */
            if (rc_tpl_id_number(c->valuedouble, num) == 0) cJSON_AddItemToArray(users, cJSON_CreateString(num));
            else err = reason_bad_args;
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

/* `verify`: the token the template gives (a string; anything else is no token) is verified by the
 * node as at connect; on success {verified} = {"user": <id>, "claims": <claim set>}. */
static const char *do_verify(struct run *r, const struct action *a)
{
    if (!r->ops->verify) return reason_unsupported;
    cJSON *v = rc_tpl_eval(a->value, &r->ctx);
    const char *token = cJSON_IsString(v) ? v->valuestring : NULL;
    char *user = NULL, *claims_json = NULL;
    const char *err = r->ops->verify(r->target, token, token ? strlen(token) : 0, &user, &claims_json);
    cJSON_Delete(v);
    if (!err) {
        cJSON *claims = claims_json ? cJSON_Parse(claims_json) : NULL;
        cJSON *verified = cJSON_CreateObject();
        cJSON_AddStringToObject(verified, "user", user ? user : "");
        cJSON_AddItemToObject(verified, "claims", claims ? claims : cJSON_CreateObject());
        cJSON_Delete(r->verified);
        r->verified = verified;
        r->ctx.verified = verified;
    }
    rc_free(user);
    rc_free(claims_json);
    return err;
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
    case V_VERIFY:
        return do_verify(r, a);
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

int rc_ns_rules_auth_error(const rc_ns_rules *ns, const char *reason, char event[201], cJSON **args)
{
    *args = NULL;
    if (!ns || !ns->auth_error.event) return 0;
    rc_tpl_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.ns = ns->name;
    ctx.error = reason;
    int r = rc_tpl_name(ns->auth_error.event, &ctx, event);
    if (r >= 0 && !rc_sio_event_reserved(event)) {
        *args = cJSON_CreateArray();
        cJSON *v = NULL;
        if (ns->auth_error.data) {
            v = rc_tpl_eval(ns->auth_error.data, &ctx);
        } else {
            v = cJSON_CreateObject();
            cJSON_AddStringToObject(v, "code", reason);
            cJSON_AddStringToObject(v, "message", "unauthorized");
        }
        cJSON_AddItemToArray(*args, v ? v : cJSON_CreateNull());
    }
    rc_tpl_ctx_dispose(&ctx);
    return *args ? 1 : 0;
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

const rc_recovery_config *rc_ns_rules_recovery(const rc_ns_rules *ns)
{
    return ns ? &ns->recovery : NULL;
}

int rc_ns_rules_recovery_keeps(const rc_ns_rules *ns, const char *room, const char *event)
{
    const rc_recovery_config *c = ns ? &ns->recovery : NULL;
    if (!c || !c->enabled || !event) return 0;
    for (size_t i = 0; i < c->nvolatile; i++)
        if (rc_glob_match(c->volatile_events[i], event)) return 0;
    for (size_t i = 0; i < c->nrooms; i++) {
        if (!room) {
            if (strcmp(c->rooms[i], "*") == 0) return 1;
        } else if (rc_glob_match(c->rooms[i], room)) {
            return 1;
        }
    }
    return 0;
}
