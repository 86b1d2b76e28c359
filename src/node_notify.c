/*
 * node_notify.c: notifications for a user, and the status broadcast (see src/node_internal.h).
 *
 * A notification (P:notify, or POST /api/publish with "user"; docs/jobs.md, "How a notification
 * becomes a job") is handled on every node: each delivers it to its own sockets of that user
 * (the namespace's user room); a node with none hands it to the jobs script, which adds one
 * BullMQ job if the user is offline everywhere. The text is parsed as a publish
 * (node_publish.c), so P:notify and POST /api/publish accept exactly the same fields; a refused
 * P:notify message is counted (roomcast_notifications_refused_total) and logged (notify_refused,
 * at most once a second) and reaches nobody. A status change heard on <prefix>:status:<user>
 * (the node's pattern subscription) is told to every local socket of the namespaces whose
 * "status" option broadcasts.
 *
 * What it does not do: receive (node.c's bp_on_raw and bp_on_pattern, and node_api.c's
 * route_publish call in) or write jobs (src/jobs.c does).
 *
 * API: rc_node__args_json_of, rc_node__notify, rc_node__status_broadcast.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/rules.h"

#include <stdio.h>
#include <string.h>

/* The arguments of a publish as JSON array text: "args" as given, or "data" as the only one
 * (none when absent). cJSON_free the result. */
char *rc_node__args_json_of(const cJSON *args, const cJSON *data)
{
    if (args) return cJSON_PrintUnformatted(args);
    cJSON *arr = cJSON_CreateArray();
    if (data) cJSON_AddItemReferenceToArray(arr, (cJSON *)data);
    char *json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return json;
}

static void notify_job_done(void *arg, int status, const char *reason)
{
    if (status < 0) rc_log_warn("job_handoff_failed", "reason=%s", reason);
    else rc_log_debug("job_handoff", "status=%d reason=%s", status, reason);
}

enum { REFUSED_LOG_INTERVAL_MS = 1000 };

/* A refused P:notify message: counted, and logged at most once a second (the others are counted
 * into the next line's `suppressed`). */
static void notify_refused(rc_node *n, const char *err, const char *field)
{
    n->stats.notifications_refused++;
    uint64_t now = rc_now_mono_ms();
    if (n->notify_logged_ms && now - n->notify_logged_ms < REFUSED_LOG_INTERVAL_MS) {
        n->notify_suppressed++;
        return;
    }
    char f[64];
    size_t k = 0;
    for (const char *c = field; c && *c && k + 1 < sizeof(f); c++)
        f[k++] = (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) ? '?' : *c;
    f[k] = '\0';
    rc_log_warn("notify_refused", "error=%s field=\"%s\" suppressed=%llu", err, f,
                (unsigned long long)n->notify_suppressed);
    n->notify_logged_ms = now;
    n->notify_suppressed = 0;
}

/* A notification for a user (docs/jobs.md, "How a notification becomes a job"): every socket of
 * the user in `ns` on this node gets the event; if this node has none, the jobs script decides
 * atomically, against the cluster-wide presence set, whether the user is offline everywhere and
 * adds the one job. Every node receives the same notification, and the job id (the
 * notification's id, or a digest of the payload) makes the hand-off happen once. The text is
 * parsed by rc_node__publish_parse, as POST /api/publish is: a notification is a publish with
 * "user". Returns a static error code or NULL. */
const char *rc_node__notify(rc_node *n, const char *payload, size_t len)
{
    rc_node_publish p;
    const char *err = rc_node__publish_parse(n, &p, payload, len);
    if (!err && !p.user) { /* P:notify carries notifications for a user, nothing else */
        err = "bad_user";
        p.field = "user";
    }
    if (err) {
        notify_refused(n, err, p.field);
        rc_node__publish_dispose(&p);
        return err;
    }
    const rc_ns_rules *r = rc_rules_find_ns(n->cfg->rules, p.ns, strlen(p.ns));
    char *room = rc_ns_rules_user_room(r, p.user, NULL);
    size_t delivered = 0;
    if (room) {
        char *json = rc_node__args_json_of(p.args, p.data);
        rc_bp_message msg = {0};
        msg.kind = RC_BP_EMIT;
        msg.ns = p.ns;
        msg.room = room;
        msg.event = p.event ? p.event : "notification";
        msg.args_json = json;
        msg.args_len = strlen(json);
        msg.id = p.id;
        msg.except = p.except;
        msg.except_count = p.except_count;
        /* kept for recovery: published once to the user room, delivered as every node hears it
         * (refused: nobody here gets it, and the jobs script decides as for an absent user) */
        int kept = rc_node__recovery_notify(n, &msg, payload, len);
        if (kept > 0) delivered = rc_sio_room_size(n->sio, p.ns, room);
        else if (kept == 0) delivered = rc_sio_broadcast(n->sio, &msg, rc_now_mono_ns());
        cJSON_free(json);
        rc_free(room);
    }
    n->stats.notifications_delivered += delivered;
    if (delivered == 0 && n->jobs) rc_jobs_notify_offline(n->jobs, p.user, p.id, payload, len, notify_job_done, NULL);
    rc_node__publish_dispose(&p);
    return NULL;
}

/* A status change heard on a <prefix>:status:<user> channel (the node's pattern subscription):
 * namespaces whose "status" option broadcasts tell every local socket (each node hears the
 * pattern itself). */
void rc_node__status_broadcast(rc_node *n, const char *payload, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(j, "online");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    if (!cJSON_IsString(user) || !cJSON_IsBool(online)) {
        cJSON_Delete(j);
        return;
    }
    for (size_t i = 0; i < rc_rules_ns_count(n->cfg->rules); i++) {
        const rc_ns_rules *r = rc_rules_ns_at(n->cfg->rules, i);
        if (!rc_ns_rules_status_broadcast(r)) continue;
        char event[201];
        cJSON *args = NULL;
        if (rc_ns_rules_announce(r, cJSON_IsTrue(online) ? RC_ANNOUNCE_ONLINE : RC_ANNOUNCE_OFFLINE,
                                 user->valuestring, NULL, cJSON_IsNumber(ts) ? (uint64_t)ts->valuedouble : 0,
                                 event, &args) == 0)
            rc_node__emit(n, rc_ns_rules_name(r), NULL, event, args, 0);
        cJSON_Delete(args);
    }
    cJSON_Delete(j);
}
