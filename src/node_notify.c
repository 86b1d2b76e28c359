/*
 * node_notify.c: notifications for a user, and the status broadcast (see src/node_internal.h).
 *
 * A notification (P:notify, or POST /api/publish with "user"; docs/jobs.md, "How a notification
 * becomes a job") is handled on every node: each delivers it to its own sockets of that user
 * (the namespace's user room); a node with none hands it to the jobs script, which adds one
 * BullMQ job if the user is offline everywhere. A status change heard on <prefix>:status:* is
 * told to every local socket of the namespaces whose "status" option broadcasts.
 *
 * What it does not do: receive (node.c's bp_on_raw and node_api.c's route_publish call in) or
 * write jobs (src/jobs.c does).
 *
 * API: rc_node__args_json_of, rc_node__notify, rc_node__status_broadcast.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
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

/* A notification for a user (docs/jobs.md, "How a notification becomes a job"): every socket of the user in `ns` on this node
 * gets the event; if this node has none, the jobs script decides atomically, against the
 * cluster-wide presence set, whether the user is offline everywhere and adds the one job. Every
 * node receives the same notification, and the job id (the notification's id, or a digest of
 * the payload) makes the hand-off happen once. Returns a static error or NULL. */
const char *rc_node__notify(rc_node *n, const char *payload, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const char *err = NULL;
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "ns");
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(j, "event");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(j, "data");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "args");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char userbuf[64], idbuf[64];
    const char *uid = NULL, *nid = NULL;
    if (cJSON_IsString(user) && user->valuestring[0]) uid = user->valuestring;
    else if (cJSON_IsNumber(user)) { snprintf(userbuf, sizeof(userbuf), "%.0f", user->valuedouble); uid = userbuf; }
    if (cJSON_IsString(id)) nid = id->valuestring;
    else if (cJSON_IsNumber(id)) { snprintf(idbuf, sizeof(idbuf), "%.0f", id->valuedouble); nid = idbuf; }
    const char *nsname = cJSON_IsString(ns) ? ns->valuestring : "/";
    if (!cJSON_IsObject(j)) err = "bad_json";
    else if (!uid) err = "bad_user";
    else if (ns && !cJSON_IsString(ns)) err = "bad_ns";
    else if (!rc_sio_has_ns(n->sio, nsname)) err = "unknown_namespace";
    else if (event && (!cJSON_IsString(event) || !event->valuestring[0])) err = "bad_event";
    else if (args && !cJSON_IsArray(args)) err = "bad_args";
    if (err) {
        rc_log_debug("notify_invalid", "error=%s", err);
        cJSON_Delete(j);
        return err;
    }
    const rc_ns_rules *r = rc_rules_find_ns(n->cfg->rules, nsname, strlen(nsname));
    char *room = rc_ns_rules_user_room(r, uid, NULL);
    size_t delivered = 0;
    if (room) {
        char *json = rc_node__args_json_of(args, data);
        rc_bp_message msg = {0};
        msg.kind = RC_BP_EMIT;
        msg.ns = nsname;
        msg.room = room;
        msg.event = event ? event->valuestring : "notification";
        msg.args_json = json;
        msg.args_len = strlen(json);
        delivered = rc_sio_broadcast(n->sio, &msg, rc_now_mono_ns());
        cJSON_free(json);
        rc_free(room);
    }
    rc_metrics.notifications_delivered_total += delivered;
    if (delivered == 0 && n->jobs) rc_jobs_notify_offline(n->jobs, uid, nid, payload, len, notify_job_done, NULL);
    cJSON_Delete(j);
    return NULL;
}

/* A status change seen through the <prefix>:status:* pattern: namespaces whose "status" option
 * broadcasts tell every local socket (each node hears the pattern itself). */
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
