/*
 * metrics.h: the Prometheus text exposition (format 0.0.4): histograms, the helpers every module
 * writes its own families with, and the standard process_* metrics.
 *
 * Each module owns its counters: plain integers it bumps with ++ on its hot path (the loop is
 * single-threaded), formatted only when /metrics is scraped, by the module's own
 * rc_<module>_write_metrics with these helpers (Redis's stat_* habit). Layers above may bump a
 * lower layer's shared counter (a refusal, a disconnect reason), never the other way round.
 * /metrics (src/node_api.c) calls each module's writer in turn. Labels have bounded cardinality:
 * namespaces (at most RC_METRICS_MAX_NS, by their index in the config), reasons from static
 * tables; never rooms or users.
 */
#ifndef ROOMCAST_METRICS_H
#define ROOMCAST_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define RC_METRICS_MAX_NS 32
/* Latency buckets in seconds, suited to sub-millisecond delivery. */
#define RC_HIST_BUCKETS 14
extern const double rc_hist_bounds[RC_HIST_BUCKETS]; /* 50us .. 5s; +Inf implied */

typedef struct rc_histogram {
    uint64_t buckets[RC_HIST_BUCKETS]; /* non-cumulative counts per bucket; +Inf = count - sum(buckets) */
    uint64_t count;
    double sum;                        /* seconds */
} rc_histogram;

void rc_histogram_observe(rc_histogram *h, double seconds);
/* n observations of the same value. */
void rc_histogram_observe_n(rc_histogram *h, double seconds, uint64_t n);

/* The standard process_* metrics from /proc/self: cpu seconds, resident and virtual memory,
 * open and max fds, start time. */
void rc_metrics_write_process(struct evbuffer *out);

/* Exposition helpers: each writes a family's HELP and TYPE lines, then its samples. Names are
 * roomcast_<thing>[_<unit>][_total]; help texts contain no backslash or newline; label values are
 * escaped here. */
void rc_metrics_put_scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
                           uint64_t v);
void rc_metrics_put_gauge_double(struct evbuffer *out, const char *name, const char *help, double v);
/* One sample per label value: {label_name="table[i]"} values[i], for i in [from, to). Reason
 * families list every reason, even at 0, so that rate() sees the series from the start. */
void rc_metrics_put_by_label(struct evbuffer *out, const char *name, const char *type, const char *help,
                             const char *label_name, const char *const *table, const uint64_t *values,
                             size_t from, size_t to);
/* One sample with n labels (build information). */
void rc_metrics_put_labelled(struct evbuffer *out, const char *name, const char *type, const char *help,
                             const char *const *label_names, const char *const *label_values, size_t n,
                             uint64_t v);
void rc_metrics_put_histogram(struct evbuffer *out, const char *name, const char *help,
                              const rc_histogram *h);

/* Resident set size in bytes (from /proc/self/statm), for benchmarks and logs. */
size_t rc_process_rss_bytes(void);

#endif
