/*
 * backplane.c: what every backplane shares (include/roomcast/backplane.h): the metrics of its
 * counters, written the same way for the embedded and the Redis backplane.
 */
#include "roomcast/backplane.h"
#include "roomcast/metrics.h"

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
