/*
 * metrics.c: the exposition helpers, histograms and process_* metrics (include/roomcast/metrics.h).
 *
 * What it does not do: it keeps no registry and no counters of its own, allocates nothing per
 * observation, and knows no module's families: each module writes its own with these helpers.
 *
 * Exposition rules kept here: every family gets "# HELP" and "# TYPE" exactly once, label values
 * are escaped (\\, \", \n). The histogram stores non-cumulative buckets (one increment per
 * observation) and is made cumulative only on output.
 *
 * API in call order: rc_histogram_observe (hot path); rc_metrics_put_* and
 * rc_metrics_write_process (scrape); rc_process_rss_bytes for logs and benchmarks.
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

const double rc_hist_bounds[RC_HIST_BUCKETS] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,    0.025,  0.05,    0.1,    0.25,  1,      5,
};

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

void rc_metrics_put_gauge_double(struct evbuffer *out, const char *name, const char *help, double v)
{
    put_family(out, name, "gauge", help);
    put_double(out, name, NULL, NULL, 0, v);
}

void rc_metrics_put_by_label(struct evbuffer *out, const char *name, const char *type, const char *help,
                             const char *label_name, const char *const *table, const uint64_t *values,
                             size_t from, size_t to)
{
    put_family(out, name, type, help);
    for (size_t i = from; i < to; i++) {
        label l = {label_name, table[i]};
        put_u64(out, name, NULL, &l, 1, values[i]);
    }
}

void rc_metrics_put_labelled(struct evbuffer *out, const char *name, const char *type, const char *help,
                             const char *const *label_names, const char *const *label_values, size_t n,
                             uint64_t v)
{
    label labels[8];
    if (n > RC_ARRAY_LEN(labels)) n = RC_ARRAY_LEN(labels);
    for (size_t i = 0; i < n; i++) labels[i] = (label){label_names[i], label_values[i]};
    put_family(out, name, type, help);
    put_u64(out, name, NULL, labels, n, v);
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
