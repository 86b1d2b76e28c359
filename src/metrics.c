/*
 * metrics.c: the node's counters and the Prometheus text exposition (format 0.0.4).
 *
 * What it is for: every module bumps plain uint64_t fields of the global rc_metrics with ++ on
 * its hot path (single-threaded loop, no atomics, no locks). Nothing is formatted until /metrics
 * is scraped; then rc_metrics_write walks the struct once and appends text to an evbuffer.
 *
 * What it does not do: it keeps no registry, allocates nothing per observation, and owns no
 * gauges. Gauges that belong to other modules (connections, sockets, rooms, readiness) arrive at
 * scrape time in an rc_metrics_gauges the caller fills and keeps owning. Labels come only from
 * static tables (reasons, transports, status classes) or the configured namespace list, so
 * cardinality is bounded; namespaces beyond RC_METRICS_MAX_NS are not exposed.
 *
 * Exposition rules kept here: every family gets "# HELP" and "# TYPE" exactly once, names are
 * roomcast_<thing>[_<unit>][_total], counters end in _total, label values are escaped (\\, \",
 * \n), reason families list every reason even at 0 so rate() queries see the series from the
 * start. The histogram stores non-cumulative buckets (one increment per observation) and is
 * made cumulative only on output.
 *
 * Auth reason labels: the strings of rc_auth_reason() (src/auth.c) are repeated in a local table
 * in RC_AUTH_* order, so this file and its unit test do not depend on the auth module. A static
 * assertion ties the table's length to RC_AUTH__COUNT; keep the strings in step with auth.c.
 *
 * API in call order: rc_histogram_observe (hot path), rc_metrics_write (scrape), which ends with
 * rc_metrics_write_process; rc_process_rss_bytes for logs and benchmarks.
 */
#include "roomcast/metrics.h"
#include "roomcast/common.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

rc_metrics_t rc_metrics;

const double rc_hist_bounds[RC_HIST_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,    0.025,  0.05,    0.1,    0.25,  1,      5,
};

static const char *const disconnect_reasons[] = {
    [RC_DISC_CLIENT] = "client",
    [RC_DISC_PING_TIMEOUT] = "ping_timeout",
    [RC_DISC_PARSE_ERROR] = "parse_error",
    [RC_DISC_SLOW_CONSUMER] = "slow_consumer",
    [RC_DISC_SERVER] = "server",
    [RC_DISC_TRANSPORT_ERROR] = "transport_error",
    [RC_DISC_TOKEN_EXPIRED] = "token_expired",
};
_Static_assert(RC_ARRAY_LEN(disconnect_reasons) == RC_DISC__COUNT, "disconnect reason table");

static const char *const eio_transports[] = {"polling", "websocket"};

/* ---- hot path ------------------------------------------------------------------------------ */

void rc_histogram_observe_n(rc_histogram *h, double seconds, uint64_t n)
{
    if (isnan(seconds)) return; /* would poison sum forever */
    for (size_t i = 0; i < RC_HIST_BUCKETS; i++) {
        if (seconds <= rc_hist_bounds[i]) {
            h->buckets[i] += n;
            break;
        }
    }
    /* above the last bound: counted only in count, i.e. in the implied +Inf bucket */
    h->count += n;
    h->sum += seconds * (double)n;
}

void rc_histogram_observe(rc_histogram *h, double seconds) { rc_histogram_observe_n(h, seconds, 1); }

/* ---- exposition helpers -------------------------------------------------------------------- */

typedef struct label {
    const char *name;
    const char *value;
} label;

static void put_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    /* help texts are static and contain no backslash or newline, so they need no escaping */
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label value escaping of the text format: backslash, double quote and line feed. */
static void put_label_value(struct evbuffer *out, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (!esc) continue;
        evbuffer_add(out, run, (size_t)(p - run));
        evbuffer_add(out, esc, 2);
        run = p + 1;
    }
    evbuffer_add(out, run, strlen(run));
}

static void put_name_labels(struct evbuffer *out, const char *name, const char *suffix,
                            const label *labels, size_t nlabels)
{
    evbuffer_add(out, name, strlen(name));
    if (suffix) evbuffer_add(out, suffix, strlen(suffix));
    if (!nlabels) return;
    evbuffer_add(out, "{", 1);
    for (size_t i = 0; i < nlabels; i++) {
        evbuffer_add_printf(out, "%s%s=\"", i ? "," : "", labels[i].name);
        put_label_value(out, labels[i].value ? labels[i].value : "");
        evbuffer_add(out, "\"", 1);
    }
    evbuffer_add(out, "}", 1);
}

static void put_u64(struct evbuffer *out, const char *name, const char *suffix, const label *labels,
                    size_t nlabels, uint64_t v)
{
    put_name_labels(out, name, suffix, labels, nlabels);
    evbuffer_add_printf(out, " %" PRIu64 "\n", v);
}

/* Go's ParseFloat spellings for the special values; otherwise the shorter of %.15g and %.17g
 * that reads back as the same double (0.1 stays "0.1"). */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) snprintf(buf, cap, "NaN");
    else if (isinf(v)) snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
    }
}

static void put_double(struct evbuffer *out, const char *name, const char *suffix,
                       const label *labels, size_t nlabels, double v)
{
    char num[40];
    fmt_double(num, sizeof(num), v);
    put_name_labels(out, name, suffix, labels, nlabels);
    evbuffer_add_printf(out, " %s\n", num);
}

/* Family with one sample and no labels. */
void rc_metrics_put_scalar(struct evbuffer *out, const char *name, const char *type, const char *help,
                           uint64_t v)
{
    put_family(out, name, type, help);
    put_u64(out, name, NULL, NULL, 0, v);
}

static size_t ns_exposed(const rc_metrics_gauges *g)
{
    return g->ns_count < RC_METRICS_MAX_NS ? g->ns_count : RC_METRICS_MAX_NS;
}

/* Family labelled by namespace; values may be NULL (then only HELP and TYPE are written). */
static void put_by_ns(struct evbuffer *out, const rc_metrics_gauges *g, const char *name,
                      const char *type, const char *help, const uint64_t *values)
{
    put_family(out, name, type, help);
    if (!values || !g->ns_names) return;
    for (size_t i = 0; i < ns_exposed(g); i++) {
        label l = {"namespace", g->ns_names[i]};
        put_u64(out, name, NULL, &l, 1, values[i]);
    }
}

/* Family labelled `label_name` over a static table of values. */
void rc_metrics_put_gauge_double(struct evbuffer *out, const char *name, const char *help, double v)
{
    put_family(out, name, "gauge", help);
    put_double(out, name, NULL, NULL, 0, v);
}

void rc_metrics_put_by_label(struct evbuffer *out, const char *name, const char *help,
                             const char *label_name, const char *const *table, const uint64_t *values,
                             size_t from, size_t to)
{
    put_family(out, name, "counter", help);
    for (size_t i = from; i < to; i++) {
        label l = {label_name, table[i]};
        put_u64(out, name, NULL, &l, 1, values[i]);
    }
}

void rc_metrics_put_histogram(struct evbuffer *out, const char *name, const char *help,
                              const rc_histogram *h)
{
    char le[40];
    uint64_t cum = 0;
    put_family(out, name, "histogram", help);
    for (size_t i = 0; i < RC_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        snprintf(le, sizeof(le), "%g", rc_hist_bounds[i]); /* 6 digits are exact for our bounds */
        label l = {"le", le};
        put_u64(out, name, "_bucket", &l, 1, cum);
    }
    label inf = {"le", "+Inf"};
    put_u64(out, name, "_bucket", &inf, 1, h->count);
    put_double(out, name, "_sum", NULL, 0, h->sum);
    put_u64(out, name, "_count", NULL, 0, h->count);
}

/* ---- the node's families ------------------------------------------------------------------- */

void rc_metrics_write(struct evbuffer *out, const rc_metrics_gauges *g)
{
    static const rc_metrics_gauges none;
    const rc_metrics_t *m = &rc_metrics;
    if (!g) g = &none;

    /* connections and HTTP */
    rc_metrics_put_scalar(out, "roomcast_connections", "gauge", "Open TCP connections.", g->connections);
    rc_metrics_put_scalar(out, "roomcast_connections_accepted_total", "counter",
               "TCP connections accepted.", m->connections_accepted_total);
    rc_metrics_put_scalar(out, "roomcast_connections_rejected_total", "counter",
               "TCP connections refused because of max_connections or draining.",
               m->connections_rejected_total);
    static const char *const codes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
    rc_metrics_put_by_label(out, "roomcast_http_requests_total", "HTTP responses sent, by status class.",
                 "code", codes, m->http_requests_total, 1, RC_ARRAY_LEN(codes));

    /* Engine.IO */
    rc_metrics_put_scalar(out, "roomcast_eio_sessions", "gauge", "Open Engine.IO sessions.", g->eio_sessions);
    rc_metrics_put_by_label(out, "roomcast_eio_sessions_opened_total",
                 "Engine.IO sessions opened, by initial transport.", "transport", eio_transports,
                 m->eio_sessions_opened_total, 0, RC_ARRAY_LEN(eio_transports));
    rc_metrics_put_scalar(out, "roomcast_eio_upgrades_total", "counter",
               "Engine.IO upgrades from polling to websocket.", m->eio_upgrades_total);

    /* Socket.IO */
    put_by_ns(out, g, "roomcast_sockets", "gauge", "Connected Socket.IO sockets, by namespace.",
              g->sockets_by_ns);
    rc_metrics_put_scalar(out, "roomcast_handshakes_total", "counter", "Socket.IO CONNECT handshakes accepted.",
               m->handshakes_total);
    const char *auth_reasons[RC_AUTH__COUNT]; /* the names auth.c gives; [RC_AUTH_OK] is not exposed */
    for (int i = 0; i < RC_AUTH__COUNT; i++) auth_reasons[i] = rc_auth_reason((rc_auth_status)i);
    rc_metrics_put_by_label(out, "roomcast_auth_failures_total", "Socket.IO CONNECT refused, by auth reason.",
                 "reason", auth_reasons, m->auth_failures_total, RC_AUTH_OK + 1, RC_AUTH__COUNT);
    put_by_ns(out, g, "roomcast_messages_in_total", "counter",
              "Client events received, by namespace.", m->messages_in_total);
    put_by_ns(out, g, "roomcast_messages_out_total", "counter",
              "Packets written to sockets, by namespace.", m->messages_out_total);
    put_by_ns(out, g, "roomcast_broadcasts_total", "counter",
              "Room and namespace emits fanned out locally, by namespace.", m->broadcasts_total);
    put_by_ns(out, g, "roomcast_rooms", "gauge", "Rooms with local members, by namespace.",
              g->rooms_by_ns);
    rc_metrics_put_by_label(out, "roomcast_disconnects_total", "Socket disconnections, by reason.", "reason",
                 disconnect_reasons, m->disconnects_total, 0, RC_DISC__COUNT);

    /* limits */
    rc_metrics_put_scalar(out, "roomcast_slow_consumer_drops_total", "counter",
               "Sockets closed because their output buffer passed the cap.",
               m->slow_consumer_drops_total);
    rc_metrics_put_scalar(out, "roomcast_rate_limited_total", "counter", "Client events refused by rate limits.",
               m->rate_limited_total);
    rc_metrics_put_scalar(out, "roomcast_payload_too_large_total", "counter",
               "Payloads refused for exceeding the size limit.", m->payload_too_large_total);

    /* backplane, API, jobs */
    rc_metrics_put_scalar(out, "roomcast_backplane_publishes_total", "counter",
               "Messages published to the backplane.", m->backplane_publishes_total);
    rc_metrics_put_scalar(out, "roomcast_backplane_publish_failures_total", "counter",
               "Backplane publishes that failed.", m->backplane_publish_failures_total);
    rc_metrics_put_scalar(out, "roomcast_backplane_receives_total", "counter",
               "Messages received from the backplane.", m->backplane_receives_total);
    rc_metrics_put_scalar(out, "roomcast_api_publishes_total", "counter",
               "Messages accepted by the HTTP publish API.", m->api_publishes_total);
    rc_metrics_put_scalar(out, "roomcast_jobs_added_total", "counter", "Jobs added.", m->jobs_added_total);
    rc_metrics_put_scalar(out, "roomcast_notifications_total", "counter",
               "Notifications for a user received (P:notify, POST /api/publish with user).",
               m->notifications_total);
    rc_metrics_put_scalar(out, "roomcast_notifications_delivered_total", "counter",
               "Sockets this node delivered notifications to.", m->notifications_delivered_total);

    rc_metrics_put_histogram(out, "roomcast_delivery_latency_seconds",
                  "Time from publish accepted to the frame queued for every recipient (once per recipient).", &m->delivery_latency);

    /* state and identity */
    rc_metrics_put_scalar(out, "roomcast_ready", "gauge", "1 when the node reports ready.", g->ready ? 1 : 0);
    rc_metrics_put_scalar(out, "roomcast_draining", "gauge", "1 while the node drains.", g->draining ? 1 : 0);
    put_family(out, "roomcast_build_info", "gauge", "Build and node identity; always 1.");
    label info[2] = {{"version", g->version ? g->version : "unknown"},
                     {"node", g->node_id ? g->node_id : "unknown"}};
    put_u64(out, "roomcast_build_info", NULL, info, 2, 1);

    rc_metrics_write_process(out);
}

/* ---- process_* ------------------------------------------------------------------------------ */

/* Reads a small /proc file whole into buf (NUL-terminated). Returns its length or -1. */
static ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Fields of /proc/self/stat we use, counted as in proc(5) (utime is field 14). */
typedef struct proc_stat {
    unsigned long long utime, stime, starttime, vsize;
} proc_stat;

static int read_proc_stat(proc_stat *ps)
{
    char buf[1024];
    if (read_small_file("/proc/self/stat", buf, sizeof(buf)) <= 0) return -1;
    /* comm (field 2) may hold spaces and parentheses: fields restart after the last ')' */
    const char *p = strrchr(buf, ')');
    if (!p) return -1;
    p++;
    unsigned long long f[24] = {0}; /* f[k] is field k, for 3 < k <= 23 */
    for (int k = 3; k <= 23; k++) {
        while (*p == ' ') p++;
        if (!*p) return -1;
        char *end;
        f[k] = strtoull(p, &end, 10); /* field 3 (state) is a letter: parses as 0, skipped */
        if (end == p) while (*end && *end != ' ') end++;
        p = end;
    }
    ps->utime = f[14];
    ps->stime = f[15];
    ps->starttime = f[22];
    ps->vsize = f[23];
    return 0;
}

/* System boot time from the btime line of /proc/stat (read in pieces: the intr line is long). */
static int read_boot_time(unsigned long long *btime)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return -1;
    char line[256];
    int at_line_start = 1, found = -1;
    while (fgets(line, sizeof(line), f)) {
        if (at_line_start && strncmp(line, "btime ", 6) == 0) {
            *btime = strtoull(line + 6, NULL, 10);
            found = 0;
            break;
        }
        at_line_start = strchr(line, '\n') != NULL;
    }
    fclose(f);
    return found;
}

static long open_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

size_t rc_process_rss_bytes(void)
{
    char buf[256];
    unsigned long long size, resident;
    if (read_small_file("/proc/self/statm", buf, sizeof(buf)) <= 0) return 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

void rc_metrics_write_process(struct evbuffer *out)
{
    static double start_time; /* constant for the process: computed on the first scrape */
    double ticks = (double)sysconf(_SC_CLK_TCK);
    proc_stat ps;
    int have_stat = read_proc_stat(&ps) == 0 && ticks > 0;

    if (have_stat) {
        put_family(out, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.");
        put_double(out, "process_cpu_seconds_total", NULL, NULL, 0,
                   (double)(ps.utime + ps.stime) / ticks);
    }
    size_t rss = rc_process_rss_bytes();
    if (rss) {
        rc_metrics_put_scalar(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   rss);
    }
    if (have_stat) {
        rc_metrics_put_scalar(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   ps.vsize);
    }
    long fds = open_fd_count();
    if (fds >= 0) {
        rc_metrics_put_scalar(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                   (uint64_t)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        put_family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        put_double(out, "process_max_fds", NULL, NULL, 0,
                   rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    }
    unsigned long long btime;
    if (start_time == 0 && have_stat && read_boot_time(&btime) == 0)
        start_time = (double)btime + (double)ps.starttime / ticks;
    if (start_time > 0) {
        put_family(out, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.");
        put_double(out, "process_start_time_seconds", NULL, NULL, 0, start_time);
    }
}
