/*
 * backplane.c: what every backplane shares (include/roomcast/backplane.h): the metrics of its
 * counters, written the same way for the embedded and the Redis backplane, and the check of an
 * emit a backend asked for (rc_bp_emit_check), shared by the Redis envelope
 * (src/backplane_envelope.c) and the node's publish parser (src/node_publish.c) so that every
 * way in refuses the same things.
 */
#include "roomcast/backplane.h"
#include "roomcast/metrics.h"
#include "roomcast/sio_codec.h"

void rc_backplane_write_metrics(const rc_backplane *bp, struct evbuffer *out)
{
    rc_metrics_put_scalar(out, "roomcast_backplane_publishes_total", "counter",
                          "Messages published to the backplane.", bp->stats.publishes);
    rc_metrics_put_scalar(out, "roomcast_backplane_publish_failures_total", "counter",
                          "Backplane publishes that failed.", bp->stats.publish_failures);
    rc_metrics_put_scalar(out, "roomcast_backplane_receives_total", "counter",
                          "Messages received from the backplane.", bp->stats.receives);
    if (bp->ops->write_metrics) bp->ops->write_metrics(bp, out);
}

const char *rc_bp_emit_check(const char *event, const struct cJSON *args, size_t attachment_count)
{
    if (!event || !event[0]) return "event must be a non-empty string";
    if (rc_sio_event_reserved(event)) return "reserved event name (socket.io-client would drop the connection)";
    if (attachment_count > RC_SIO_MAX_ATTACHMENTS) return "more than 10 attachments";
    if (attachment_count && rc_sio_count_placeholders(args, (int)attachment_count) < 0)
        return "placeholder out of range or malformed";
    return NULL;
}
