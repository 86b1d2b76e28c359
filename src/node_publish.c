/*
 * node_publish.c: the one parser of what a backend asks the node to publish (see
 * src/node_internal.h), for POST /api/publish (node_api.c) and P:notify (node_notify.c): the
 * same fields, the same checks and the same error codes whichever way a request comes in.
 * Fields and codes: docs/redis.md ("Publishing from a backend").
 *
 * Nothing is guessed. The text is one JSON object with nothing but whitespace after it; every
 * key is one of the fields below and appears once; a request says exactly one target: "room",
 * "user" (a notification) or "broadcast": true (every socket of the namespace), so a missing or
 * misspelt room is an error, never a namespace-wide broadcast. A notification may also carry
 * "email" (any JSON), which no socket receives: it is there for the offline job's Worker, whose
 * data is the whole notification (docs/jobs.md). Ids given as numbers follow
 * rc_tpl_id_number (exact integers up to 2^53 - 1, else refused); an event name must be one
 * socket.io-client can receive (rc_bp_emit_check).
 *
 * What it does not do: deliver, publish or answer (the callers do); look inside "data"/"args".
 *
 * Ownership: the parsed tree and the except array are the rc_node_publish's; every string it
 * points to lives in them until rc_node__publish_dispose.
 *
 * API: rc_node__publish_parse -> read the fields -> rc_node__publish_dispose (whatever parse
 * returned).
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/sio_codec.h"
#include "roomcast/template.h"

#include <string.h>

/* The fields, a bit each. */
enum { F_NS, F_ROOM, F_USER, F_BROADCAST, F_EVENT, F_DATA, F_ARGS, F_EXCEPT, F_ID, F_EMAIL, F__COUNT };
static const char *const field_names[F__COUNT] = {
    "ns", "room", "user", "broadcast", "event", "data", "args", "except", "id", "email",
};

static const char *refuse(rc_node_publish *p, const char *code, const char *field)
{
    p->field = field;
    return code;
}

/* A user or message id: a non-empty string, or a number that is an exact integer (written into
 * buf). NULL when it is neither. */
static const char *id_text(const cJSON *v, char buf[24])
{
    if (cJSON_IsString(v)) return v->valuestring[0] ? v->valuestring : NULL;
    if (cJSON_IsNumber(v) && rc_tpl_id_number(v->valuedouble, buf) == 0) return buf;
    return NULL;
}

/* "room,user" and the like: the targets given together. */
static const char *targets_named(unsigned seen)
{
    static const char *const names[8] = {
        NULL, "room", "user", "room,user", "broadcast", "room,broadcast", "user,broadcast",
        "room,user,broadcast",
    };
    unsigned bits = ((seen >> F_ROOM) & 1u) | ((seen >> F_USER) & 1u) << 1 | ((seen >> F_BROADCAST) & 1u) << 2;
    return names[bits];
}

const char *rc_node__publish_parse(const rc_node *n, rc_node_publish *p, const char *text, size_t len)
{
    const char *end = NULL;
    const cJSON *f[F__COUNT] = {0};
    unsigned seen = 0;

    memset(p, 0, sizeof(*p));
    p->ns = "/";
    p->root = text ? cJSON_ParseWithLengthOpts(text, len, &end, 0) : NULL;
    if (!cJSON_IsObject(p->root)) return refuse(p, "bad_json", NULL);
    while (end < text + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (end != text + len) return refuse(p, "trailing_text", NULL);

    for (const cJSON *c = p->root->child; c; c = c->next) {
        size_t k = 0;
        while (k < F__COUNT && strcmp(c->string, field_names[k]) != 0) k++;
        if (k == F__COUNT) return refuse(p, "unknown_field", c->string);
        if (seen & (1u << k)) return refuse(p, "duplicate_field", c->string);
        seen |= 1u << k;
        f[k] = c;
    }

    if (f[F_NS] && !cJSON_IsString(f[F_NS])) return refuse(p, "bad_ns", "ns");
    if (f[F_NS]) p->ns = f[F_NS]->valuestring;
    if (!rc_sio_has_ns(n->sio, p->ns) || (n->admin && strcmp(p->ns, n->cfg->admin.ns) == 0))
        return refuse(p, "unknown_namespace", "ns"); /* the Admin UI's namespace is not for backends */

    unsigned targets = seen & (1u << F_ROOM | 1u << F_USER | 1u << F_BROADCAST);
    if (!targets) return refuse(p, "no_target", NULL);
    if (targets & (targets - 1)) return refuse(p, "conflicting_fields", targets_named(targets));
    if (f[F_ROOM]) {
        if (!cJSON_IsString(f[F_ROOM]) || !f[F_ROOM]->valuestring[0]) return refuse(p, "bad_room", "room");
        p->room = f[F_ROOM]->valuestring;
    }
    if (f[F_USER] && !(p->user = id_text(f[F_USER], p->user_text))) return refuse(p, "bad_user", "user");
    if (f[F_BROADCAST]) {
        if (!cJSON_IsTrue(f[F_BROADCAST])) return refuse(p, "bad_broadcast", "broadcast");
        p->broadcast = 1;
    }
    /* "email" is for the offline notification's Worker (docs/jobs.md): only with "user" */
    if (f[F_EMAIL] && !p->user) return refuse(p, "conflicting_fields", p->room ? "room,email" : "broadcast,email");

    if (f[F_EVENT]) {
        if (!cJSON_IsString(f[F_EVENT]) || !f[F_EVENT]->valuestring[0]) return refuse(p, "bad_event", "event");
        p->event = f[F_EVENT]->valuestring;
    } else if (!p->user) {
        return refuse(p, "bad_event", "event"); /* only a notification has a default event */
    }
    if (f[F_ARGS] && !cJSON_IsArray(f[F_ARGS])) return refuse(p, "bad_args", "args");
    if (f[F_ARGS] && f[F_DATA]) return refuse(p, "data_and_args", "args");
    p->args = f[F_ARGS];
    p->data = f[F_DATA];
    /* What this node delivers, every node must: no deeper than the envelope carries ("data" is
     * one level deeper once it is the arguments array) */
    if ((p->args && rc_sio_json_deeper_than(p->args, RC_BP_ARGS_MAX_DEPTH)) ||
        (p->data && rc_sio_json_deeper_than(p->data, RC_BP_ARGS_MAX_DEPTH - 1)))
        return refuse(p, "too_deep", p->args ? "args" : "data");
    if (p->event && rc_bp_emit_check(p->event, p->args, 0)) return refuse(p, "reserved_event", "event");

    if (f[F_ID] && !(p->id = id_text(f[F_ID], p->id_text))) return refuse(p, "bad_id", "id");
    if (f[F_EXCEPT]) {
        const cJSON *it;
        if (!cJSON_IsArray(f[F_EXCEPT])) return refuse(p, "bad_except", "except");
        cJSON_ArrayForEach(it, f[F_EXCEPT]) {
            if (!cJSON_IsString(it) || !it->valuestring[0]) return refuse(p, "bad_except", "except");
        }
        size_t count = (size_t)cJSON_GetArraySize(f[F_EXCEPT]);
        p->except = rc_malloc((count ? count : 1) * sizeof(*p->except));
        cJSON_ArrayForEach(it, f[F_EXCEPT]) p->except[p->except_count++] = it->valuestring;
    }
    return NULL;
}

void rc_node__publish_dispose(rc_node_publish *p)
{
    rc_free(p->except);
    cJSON_Delete(p->root);
    memset(p, 0, sizeof(*p));
}
