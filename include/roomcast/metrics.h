/*
 * metrics.h: the node's counters, gauges and histograms, and their Prometheus text exposition.
 *
 * Hot-path counters are plain integers in one global struct (the event loop is single-threaded),
 * bumped with ++ and formatted only when /metrics is scraped (Redis's stat_* habit). Labels have
 * bounded cardinality: namespaces (by the index of the namespace in the config, at most
 * RC_METRICS_MAX_NS), reasons from static tables; never rooms or users.
 *
 * Gauges that other modules own (connections, rooms, backplane state) are passed in at scrape
 * time through rc_metrics_gauges.
 */
#ifndef ROOMCAST_METRICS_H
#define ROOMCAST_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/auth.h"

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

enum rc_disconnect_reason {
    RC_DISC_CLIENT = 0,        /* transport close / client namespace disconnect */
    RC_DISC_PING_TIMEOUT,
    RC_DISC_PARSE_ERROR,
    RC_DISC_SLOW_CONSUMER,
    RC_DISC_SERVER,            /* server disconnect (rule, control op, drain) */
    RC_DISC_TRANSPORT_ERROR,
    RC_DISC_TOKEN_EXPIRED,     /* the socket's token expired while connected (jwt.onExpiry) */
    RC_DISC__COUNT
};

typedef struct rc_metrics {
    uint64_t connections_accepted_total;      /* TCP */
    uint64_t connections_rejected_total;      /* over max_connections or draining */
    uint64_t http_requests_total[6];          /* by status class: [1]=1xx .. [5]=5xx */
    uint64_t eio_sessions_opened_total[2];    /* [0] polling, [1] websocket (initial transport) */
    uint64_t eio_upgrades_total;
    uint64_t handshakes_total;                /* Socket.IO CONNECT accepted */
    uint64_t auth_failures_total[RC_AUTH__COUNT];
    uint64_t messages_in_total[RC_METRICS_MAX_NS];   /* client events received */
    uint64_t messages_out_total[RC_METRICS_MAX_NS];  /* packets written to sockets */
    uint64_t broadcasts_total[RC_METRICS_MAX_NS];    /* room/namespace emits fanned out locally */
    uint64_t disconnects_total[RC_DISC__COUNT];
    uint64_t slow_consumer_drops_total;
    uint64_t rate_limited_total;
    uint64_t payload_too_large_total;
    uint64_t backplane_publishes_total;
    uint64_t backplane_publish_failures_total;
    uint64_t backplane_receives_total;
    uint64_t api_publishes_total;
    uint64_t jobs_added_total;
    uint64_t notifications_total;             /* notifications received (P:notify, API) */
    uint64_t notifications_delivered_total;   /* sockets they were delivered to */
    rc_histogram delivery_latency;            /* publish accepted -> bytes handed to the socket */
} rc_metrics_t;

extern rc_metrics_t rc_metrics;

/* Gauges and labels read at scrape time. */
typedef struct rc_metrics_gauges {
    const char *const *ns_names;   /* namespace name by index */
    size_t ns_count;
    const uint64_t *sockets_by_ns; /* Socket.IO sockets connected, by namespace */
    const uint64_t *rooms_by_ns;   /* rooms with local members, by namespace */
    uint64_t connections;          /* open TCP connections */
    uint64_t eio_sessions;         /* open Engine.IO sessions */
    int ready;                     /* 1 when /readyz is 200 */
    int draining;
    const char *version;
    const char *node_id;
} rc_metrics_gauges;

/* Appends the whole exposition (HELP and TYPE lines, counters, gauges, histogram, build info,
 * and the process_* metrics) to out. */
void rc_metrics_write(struct evbuffer *out, const rc_metrics_gauges *g);

/* The standard process_* metrics from /proc/self: cpu seconds, resident and virtual memory,
 * open and max fds, start time. */
void rc_metrics_write_process(struct evbuffer *out);

/* Exposition helpers for the modules that write their own families (presence, the Redis
 * backplane): HELP and TYPE lines, then the samples. Help texts contain no backslash or newline. */
void rc_metrics_put_scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
                           uint64_t v);
void rc_metrics_put_gauge_double(struct evbuffer *out, const char *name, const char *help, double v);
/* A counter family with one sample per label value: table[i] = values[i], for i in [from, to). */
void rc_metrics_put_by_label(struct evbuffer *out, const char *name, const char *help,
                             const char *label_name, const char *const *table, const uint64_t *values,
                             size_t from, size_t to);
void rc_metrics_put_histogram(struct evbuffer *out, const char *name, const char *help,
                              const rc_histogram *h);

/* Resident set size in bytes (from /proc/self/statm), for benchmarks and logs. */
size_t rc_process_rss_bytes(void);

#endif
