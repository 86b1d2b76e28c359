/*
 * node_rules.c: what rules act through (see src/node_internal.h): the rc_rule_ops the rules
 * engine calls (join, leave, relay, emit, ack, disconnect, forward, presence, members, visible,
 * verify),
 * on a rule_target (the socket and the inbound packet being handled), and the sio hooks that run
 * rules (connect, event, ack).
 *
 * A rule that asks presence (a status query, a member list) waits as a pending_answer, tagged;
 * node.c's presence callbacks bring the answer to rc_node__answer_pending, which finds the socket
 * again by namespace and id (it may be gone) and runs the rule's continuation with {data}.
 *
 * What it does not do: decide what an event means (src/rules_run.c does) or deliver to other
 * nodes (node_broadcast.c does).
 *
 * API: rc_node__socket_rules, rc_node__hook_on_connect, rc_node__hook_on_event,
 * rc_node__hook_on_ack, rc_node__hook_auth_error, rc_node__answer_pending, rc_node__pending_take,
 * rc_node__pending_free.
 */
#include "node_internal.h"
#include "roomcast/auth.h"
#include "roomcast/common.h"
#include "roomcast/jobs.h"
#include "roomcast/log.h"
#include "roomcast/presence.h"
#include "roomcast/rules.h"
#include "roomcast/sio.h"
#include "roomcast/sio_codec.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Static_assert(RC_BP_ARGS_MAX_DEPTH + 1 == CJSON_NESTING_LIMIT,
               "an envelope is one level deeper than its args (roomcast/message.h)");

/* What a rule acts on: the socket and the inbound packet being handled. */
typedef struct rule_target {
    rc_node *node;
    rc_sio_socket *socket;
    long long ack_id;               /* -1 once answered or when none was asked */
    const rc_bp_bytes *att;
    size_t att_count;
    const char *event;              /* the event being handled (for continuations) */
} rule_target;

#define MAX_PENDING_ANSWERS 10000

/* ---- pending answers --------------------------------------------------------------------- */

pending_answer *rc_node__pending_take(rc_node *n, uint64_t tag)
{
    for (pending_answer **pp = &n->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->tag != tag) continue;
        pending_answer *p = *pp;
        *pp = p->next;
        n->pending_count--;
        return p;
    }
    return NULL;
}

void rc_node__pending_free(pending_answer *p)
{
    rc_free(p->event);
    rc_free(p);
}

static void rule_ops_run_answer(rc_node *n, pending_answer *p, cJSON *data, const char *error);

/* Runs the rule waiting on tag (if it is still waiting) with data as {data}, or with
 * backplane_down when err; data is freed here either way. */
void rc_node__answer_pending(rc_node *n, uint64_t tag, int err, cJSON *data)
{
    pending_answer *p = rc_node__pending_take(n, tag);
    if (p) {
        rule_ops_run_answer(n, p, data, err ? "backplane_down" : NULL);
        rc_node__pending_free(p);
    }
    cJSON_Delete(data);
}

/* ---- rule operations ---------------------------------------------------------------------- */

/* The attachments go along only if the outgoing arguments still reference them. */
static size_t attachments_for(const rule_target *t, const cJSON *args)
{
    if (!t->att_count) return 0;
    return rc_sio_count_placeholders(args, (int)t->att_count) > 0 ? t->att_count : 0;
}

static const char *op_join(void *target, const char *room)
{
    rule_target *t = target;
    int r = rc_sio_join(t->socket, room);
    return r == RC_SIO_JOIN_TOO_MANY ? "too_many_rooms" : r == RC_SIO_JOIN_ROOM_LIMIT ? "room_limit" : NULL;
}

static const char *op_leave(void *target, const char *room)
{
    rule_target *t = target;
    rc_sio_leave(t->socket, room);
    return NULL;
}

static int op_is_member(void *target, const char *room)
{
    rule_target *t = target;
    return rc_sio_is_member(t->socket, room);
}

static const char *op_relay(void *target, const char *room, const char *event, cJSON *args,
                            int include_sender)
{
    rule_target *t = target;
    /* What this node delivers, every node must: arguments deeper than the envelope carries are
     * refused before anyone (this node's members included) receives them. */
    if (rc_sio_json_deeper_than(args, RC_BP_ARGS_MAX_DEPTH)) {
        cJSON_Delete(args);
        return "too_deep";
    }
    char *json = cJSON_PrintUnformatted(args);
    const char *sid = rc_sio_socket_id(t->socket);
    size_t att = attachments_for(t, args);
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = rc_sio_socket_ns(t->socket);
    msg.room = room;
    msg.event = event;
    msg.args_json = json;
    msg.args_len = strlen(json);
    msg.attachments = att ? t->att : NULL;
    msg.attachment_count = att;
    if (!include_sender) {
        msg.except = &sid;
        msg.except_count = 1;
    }
    int r = rc_node__broadcast(t->node, &msg);
    cJSON_free(json);
    cJSON_Delete(args);
    return r == 0 ? NULL : "backplane_down";
}

static void op_emit(void *target, const char *event, cJSON *args, const void *on_ack)
{
    rule_target *t = target;
    char *json = cJSON_PrintUnformatted(args);
    size_t att = attachments_for(t, args);
    rc_sio_emit(t->socket, event, json, strlen(json), att ? t->att : NULL, att, on_ack);
    cJSON_free(json);
    cJSON_Delete(args);
}

static void op_ack(void *target, cJSON *args)
{
    rule_target *t = target;
    if (t->ack_id >= 0) {
        char *json = cJSON_PrintUnformatted(args);
        size_t att = attachments_for(t, args);
        rc_sio_ack(t->socket, t->ack_id, json, strlen(json), att ? t->att : NULL, att);
        cJSON_free(json);
        t->ack_id = -1;
    }
    cJSON_Delete(args);
}

static void op_disconnect(void *target)
{
    rule_target *t = target;
    rc_sio_disconnect(t->socket);
}

static const char *op_forward(void *target, const char *event, cJSON *data)
{
    rule_target *t = target;
    rc_node *n = t->node;
    char *json = data ? cJSON_PrintUnformatted(data) : NULL;
    rc_jobs_event ev = {
        .ns = rc_sio_socket_ns(t->socket), .event = event, .user = rc_sio_socket_user(t->socket),
        .sid = rc_sio_socket_id(t->socket), .node = n->cfg->node_id,
        .data_json = json, .data_len = json ? strlen(json) : 0, .ts_ms = 0,
    };
    int r = n->jobs ? rc_jobs_forward_event(n->jobs, &ev) : -1;
    cJSON_free(json);
    cJSON_Delete(data);
    return r == 0 ? NULL : "backplane_down";
}

/* Registers a rule continuation that waits for a presence answer; returns its tag. */
static uint64_t pending_add(rule_target *t, const void *then, const char *event)
{
    rc_node *n = t->node;
    if (n->pending_count >= MAX_PENDING_ANSWERS) return 0;
    pending_answer *p = rc_calloc(1, sizeof(*p));
    p->tag = ++n->next_tag;
    p->ns_index = rc_sio_socket_ns_index(t->socket);
    snprintf(p->sid, sizeof(p->sid), "%s", rc_sio_socket_id(t->socket));
    p->ack_id = t->ack_id;
    p->then = then;
    p->event = event ? rc_strdup(event) : NULL;
    p->next = n->pending;
    n->pending = p;
    n->pending_count++;
    return p->tag;
}

static const char *op_presence(void *target, cJSON *users, const void *then)
{
    rule_target *t = target;
    rc_node *n = t->node;
    size_t count = (size_t)cJSON_GetArraySize(users);
    const char **list = rc_calloc(count ? count : 1, sizeof(char *));
    size_t i = 0;
    for (const cJSON *c = users->child; c && i < count; c = c->next) list[i++] = c->valuestring;
    uint64_t tag = n->presence ? pending_add(t, then, t->event) : 0;
    int r = tag ? rc_presence_query(n->presence, list, i, tag) : -1;
    rc_free(list);
    cJSON_Delete(users);
    if (r != 0) {
        if (tag) rc_node__pending_free(rc_node__pending_take(n, tag));
        return "backplane_down";
    }
    t->ack_id = -1; /* the answer's `then` owns the ack now */
    return NULL;
}

static const char *op_members(void *target, const char *room, const void *then)
{
    rule_target *t = target;
    rc_node *n = t->node;
    uint64_t tag = n->presence ? pending_add(t, then, t->event) : 0;
    int r = tag ? rc_presence_members(n->presence, rc_sio_socket_ns(t->socket), room, tag) : -1;
    if (r != 0) {
        if (tag) rc_node__pending_free(rc_node__pending_take(n, tag));
        return "backplane_down";
    }
    t->ack_id = -1;
    return NULL;
}

static const char *op_visible(void *target, int visible)
{
    rule_target *t = target;
    const char *user = rc_sio_socket_user(t->socket);
    if (!user) return "forbidden";
    if (!t->node->presence || rc_presence_set_visible(t->node->presence, user, visible) != 0)
        return "backplane_down";
    return NULL;
}

/* A token given to a rule (seed 002's auth:login) is held to exactly what the CONNECT holds a
 * token to: the same rc_auth_verify with the node's jwt settings. The result's strings become
 * the rules'. */
static const char *op_verify(void *target, const char *token, size_t len, char **user, char **claims_json)
{
    rule_target *t = target;
    rc_auth_result ar;
    memset(&ar, 0, sizeof(ar));
    rc_auth_status st = rc_auth_verify(&t->node->cfg->jwt, token, len, time(NULL), &ar);
    if (st != RC_AUTH_OK) {
        rc_log_debug("rule_verify_failed", "ns=%s sid=%s reason=%s", rc_sio_socket_ns(t->socket),
                     rc_sio_socket_id(t->socket), rc_auth_reason(st));
        return rc_auth_reason(st);
    }
    *user = ar.user_id;
    *claims_json = ar.claims_json;
    return NULL;
}

static const rc_rule_ops rule_ops = {
    .verify = op_verify,
    .forward = op_forward,
    .presence = op_presence,
    .members = op_members,
    .visible = op_visible,
    .join = op_join,
    .leave = op_leave,
    .is_member = op_is_member,
    .relay = op_relay,
    .emit = op_emit,
    .ack = op_ack,
    .disconnect = op_disconnect,
};

const rc_ns_rules *rc_node__socket_rules(const rc_node *n, const rc_sio_socket *s)
{
    return rc_rules_ns_at(n->cfg->rules, (size_t)rc_sio_socket_ns_index(s));
}

/* What rules see of a socket; with_auth also the auth payload the socket kept (borrowed). */
static void fill_input(rc_rule_input *in, rc_sio_socket *s, int with_auth)
{
    memset(in, 0, sizeof(*in));
    in->ns = rc_sio_socket_ns(s);
    in->sid = rc_sio_socket_id(s);
    in->user = rc_sio_socket_user(s);
    in->claims_json = rc_sio_socket_claims(s);
    if (with_auth) in->auth = rc_sio_socket_auth(s);
}

void rc_node__hook_on_connect(void *arg, rc_sio_socket *s, const cJSON *auth)
{
    rc_node *n = arg;
    rc_node__socketio_socket(n, s, 1);
    rc_node__recovery_presence_back(n, s);
    rc_node__hold_back(n, s);
    if (n->presence && rc_sio_socket_user(s))
        rc_presence_connect(n->presence, rc_sio_socket_user(s), rc_sio_socket_id(s));
    rc_node__recovery_touch(n, s);
    rule_target t = {arg, s, -1, NULL, 0, NULL};
    rc_rule_input in;
    fill_input(&in, s, 0);
    in.auth = auth;
    rc_rules_run(rc_node__socket_rules(n, s), &in, &rule_ops, &t);
}

/* How namespace ns_index refuses a CONNECT ("authError"): NULL for CONNECT_ERROR, else the event's
 * arguments as heap JSON text (sio's now) and its name in `event`. sio's namespaces are the
 * rules' namespaces, in the same order (node.c builds one from the other). */
char *rc_node__hook_auth_error(void *arg, size_t ns_index, const char *reason, char event[201])
{
    rc_node *n = arg;
    cJSON *args = NULL;
    if (rc_ns_rules_auth_error(rc_rules_ns_at(n->cfg->rules, ns_index), reason, event, &args) != 1) return NULL;
    char *json = cJSON_PrintUnformatted(args);
    char *out = rc_strdup(json);
    cJSON_free(json);
    cJSON_Delete(args);
    return out;
}

void rc_node__hook_on_event(void *arg, rc_sio_socket *s, const rc_sio_event *ev)
{
    rule_target t = {arg, s, ev->ack_id, ev->attachments, ev->attachment_count, ev->name};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = ev->name;
    in.args = ev->args;
    in.has_ack = ev->ack_id >= 0;
    int matched = 1;
    if (ev->limited) rc_rules_run_limited(rc_node__socket_rules(arg, s), &in, &rule_ops, &t);
    else matched = rc_rules_run(rc_node__socket_rules(arg, s), &in, &rule_ops, &t);
    if (!matched && t.ack_id >= 0) {
        static const char unknown[] = "[{\"ok\":false,\"error\":\"unknown_event\"}]";
        rc_sio_ack(s, t.ack_id, unknown, sizeof(unknown) - 1, NULL, 0);
    }
}

void rc_node__hook_on_ack(void *arg, rc_sio_socket *s, const void *ctx, const char *event,
                          const rc_sio_event *ack)
{
    rc_node *n = arg;
    if (n->adapter && rc_adapter_peer_owns_ack(n->adapter, ctx)) {
        rc_adapter_peer_on_ack(n->adapter, ctx, ack->args, ack->attachments, ack->attachment_count);
        return;
    }
    rule_target t = {arg, s, -1, ack->attachments, ack->attachment_count, event};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = event;
    in.args = ack->args;
    rc_rules_run_ack(rc_node__socket_rules(arg, s), ctx, &in, &rule_ops, &t);
}

/* Runs a rule continuation with {data} = the presence answer (or, on error, answers the ack the
 * event still awaits with {"ok":false,"error":...}). */
static void rule_ops_run_answer(rc_node *n, pending_answer *p, cJSON *data, const char *error)
{
    rc_sio_socket *s = rc_sio_find_socket(n->sio, p->ns_index, p->sid);
    if (!s) return;
    if (error) {
        if (p->ack_id >= 0) {
            char out[96];
            int len = snprintf(out, sizeof(out), "[{\"ok\":false,\"error\":\"%s\"}]", error);
            rc_sio_ack(s, p->ack_id, out, (size_t)len, NULL, 0);
        }
        return;
    }
    rule_target t = {n, s, p->ack_id, NULL, 0, p->event};
    rc_rule_input in;
    fill_input(&in, s, 1);
    in.event = p->event;
    cJSON *args = cJSON_CreateArray();
    cJSON_AddItemReferenceToArray(args, data);
    in.args = args;
    in.has_ack = p->ack_id >= 0;
    rc_rules_run_ack(rc_node__socket_rules(n, s), p->then, &in, &rule_ops, &t);
    cJSON_Delete(args);
}
