/*
 * node_broadcast.c: the node's one way out to every node (see src/node_internal.h). A publish
 * (a rule's relay, POST /api/publish, an announce) is first handed to the backplane for the
 * other nodes, which deliver it when they hear it (node.c's bp_on_message), and only once the
 * backplane has accepted it (encoded, checked and queued: the bytes leave when the loop next
 * writes) is it delivered to this node's sockets (encoded once, rc_sio_broadcast). So "refused"
 * means refused: a publish the backplane will not carry (down, backlog full, a name it cannot
 * carry) has reached nobody, local members included, when the caller answers with an error.
 *
 * What it does not do: decide who hears what (rules and the callers do) or retry: with the
 * backplane down it refuses and counts the failure, and the caller answers the client.
 *
 * API: rc_node__ready, rc_node__broadcast, rc_node__emit.
 */
#include "node_internal.h"
#include "roomcast/common.h"

#include <string.h>

int rc_node__ready(const rc_node *n) { return !n->draining && n->bp_up; }

/* Publishes for the other nodes, then delivers locally; -1, having delivered nothing, when the
 * backplane refuses it. */
int rc_node__broadcast(rc_node *n, rc_bp_message *msg)
{
    if (!n->bp->ops->is_up(n->bp)) {
        n->bp->stats.publish_failures++; /* refused here: the backplane counts the rest */
        return -1;
    }
    msg->origin = n->cfg->node_id;
    int kept = rc_node__recovery_publish(n, msg); /* kept: delivered here when Redis publishes it */
    if (kept) return kept > 0 ? 0 : -1;
    /* One path per broadcast: with socketio.prefix an emit goes out in the adapter format only
     * (node_socketio.c), which other roomcast nodes and Node servers hear alike. */
    if (n->socketio && msg->kind == RC_BP_EMIT) {
        if (rc_node__socketio_publish(n, msg) != 0) return -1;
    } else if (n->bp->ops->publish(n->bp, msg) != 0) {
        return -1; /* counted by the backplane */
    }
    if (msg->kind == RC_BP_EMIT) rc_sio_broadcast(n->sio, msg, rc_now_mono_ns());
    else rc_sio_control(n->sio, msg);
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
