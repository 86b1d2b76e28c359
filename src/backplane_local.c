/*
 * backplane_local.c: the embedded single-node backplane, used when no Redis URL is configured.
 * See include/roomcast/backplane.h.
 *
 * What it is for: letting the node run alone with the same code path as a cluster node. The node
 * delivers to its own sockets itself once publish has accepted (backplane.h, "Delivery model"),
 * so with no other node there is nothing left to do: publish accepts the message and drops it.
 *
 * State: none worth a machine. It is always up: is_up returns 1 from creation to free, so
 * /readyz depends only on the node itself.
 *
 * What it does not do: it never calls on_message (there is no other publisher; backends reach a
 * single node through POST /api/publish, which the node delivers locally) and never calls
 * on_state (nothing can change). room_open, room_close and ns_open are no-ops. It counts what it
 * accepts (roomcast_backplane_*, backplane.c) and writes no families of its own: roomcast_redis_*
 * would only mislead without Redis.
 *
 * redis_cmd.h on this backplane: rc_redis_available returns 0, every command, script call and
 * rc_redis_prefix refuses (-1 / NULL), channel_open/close do nothing. That dispatch lives in
 * backplane_redis_cmd.c (redis_bp__from checks the ops pointer), so nothing here knows about
 * Redis; modules with state (presence) keep it in memory instead when rc_redis_available is 0.
 *
 * Ownership: rc_backplane_local_new returns a heap object owned by the caller, released with
 * ops->free. The callbacks struct is copied; the event base is not used.
 */
#include "roomcast/backplane.h"

#include "roomcast/common.h"

typedef struct local_bp {
    rc_backplane super;
    rc_backplane_callbacks cb; /* kept for symmetry with the Redis backplane; never called */
} local_bp;

static int local_publish(rc_backplane *bp, const rc_bp_message *msg)
{
    bp->stats.publishes++;
    return 0;
}

static void local_room_open(rc_backplane *bp, const char *ns, const char *room)
{
}

static void local_room_close(rc_backplane *bp, const char *ns, const char *room)
{
}

static void local_ns_open(rc_backplane *bp, const char *ns)
{
}

static int local_is_up(const rc_backplane *bp)
{
    return 1;
}

static void local_write_metrics(const rc_backplane *bp, struct evbuffer *out)
{
}

static void local_free(rc_backplane *bp)
{
    rc_free(RC_CONTAINER_OF(bp, local_bp, super));
}

static const rc_backplane_ops local_ops = {
    .publish = local_publish,
    .room_open = local_room_open,
    .room_close = local_room_close,
    .ns_open = local_ns_open,
    .is_up = local_is_up,
    .write_metrics = local_write_metrics,
    .free = local_free,
};

rc_backplane *rc_backplane_local_new(struct event_base *base, const rc_backplane_callbacks *cb)
{
    local_bp *bp = rc_calloc(1, sizeof(*bp));
    bp->super.ops = &local_ops;
    if (cb) bp->cb = *cb;
    return &bp->super;
}
