/*
 * node_broadcast.c: the node's one way out to every node (see src/node_internal.h). A publish
 * (a rule's relay, POST /api/publish, an announce) is delivered to this node's sockets at once
 * (encoded once, rc_sio_broadcast) and then published on the backplane for the other nodes,
 * which deliver it when they hear it (node.c's bp_on_message).
 *
 * What it does not do: decide who hears what (rules and the callers do) or retry: with the
 * backplane down it refuses and counts the failure, and the caller answers the client.
 *
 * API: rc_node__ready, rc_node__broadcast, rc_node__emit.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/metrics.h"

#include <string.h>

int rc_node__ready(const rc_node *n) { return !n->draining && n->bp_up; }

/* Delivers locally, then publishes for the other nodes. -1 when the backplane is down (nothing
 * is delivered then, so the caller can refuse cleanly). */
int rc_node__broadcast(rc_node *n, rc_bp_message *msg)
{
    if (!n->bp->ops->is_up(n->bp)) {
        rc_metrics.backplane_publish_failures_total++;
        return -1;
    }
    msg->origin = n->cfg->node_id;
    if (msg->kind == RC_BP_EMIT) rc_sio_broadcast(n->sio, msg, rc_now_mono_ns());
    else rc_sio_control(n->sio, msg);
    if (n->bp->ops->publish(n->bp, msg) != 0) {
        rc_metrics.backplane_publish_failures_total++;
        return -1;
    }
    rc_metrics.backplane_publishes_total++;
    return 0;
}

/* Emits event(args) to a room (NULL: the whole namespace): on this node only (`cluster` 0: every
 * node hears the cause itself) or through rc_node__broadcast. Returns rc_node__broadcast's
 * result. */
int rc_node__emit(rc_node *n, const char *ns, const char *room, const char *event, const cJSON *args,
                  int cluster)
{
    char *json = cJSON_PrintUnformatted(args);
    rc_bp_message msg = {0};
    msg.kind = RC_BP_EMIT;
    msg.ns = ns;
    msg.room = room;
    msg.event = event;
    msg.args_json = json;
    msg.args_len = strlen(json);
    int r = 0;
    if (cluster) r = rc_node__broadcast(n, &msg);
    else r = (int)rc_sio_broadcast(n->sio, &msg, rc_now_mono_ns());
    cJSON_free(json);
    return r;
}
