/*
 * jobs_config.h: the settings of the BullMQ hand-off and of the P:events stream (config file
 * sections "jobs" and "events"; docs/jobs.md has the table), and their parsers. Types only, apart
 * from the parsers: config.h embeds rc_jobs_config and includes this header, not jobs.h.
 *
 * Ownership: rc_jobs_config owns its strings; rc_jobs_config_dispose frees them.
 */
#ifndef ROOMCAST_JOBS_CONFIG_H
#define ROOMCAST_JOBS_CONFIG_H

#include "roomcast/errors.h"

struct cJSON;

/* removeOnComplete / removeOnFail, as BullMQ reads them. */
enum rc_jobs_keep_mode {
    RC_JOBS_KEEP_BOOL = 0,  /* true: remove at once; false: keep forever */
    RC_JOBS_KEEP_COUNT,     /* N: keep the newest N */
    RC_JOBS_KEEP_OBJECT     /* {"age": seconds, "count": N, "limit": N}, each optional */
};
typedef struct rc_jobs_keep {
    int mode;               /* enum rc_jobs_keep_mode */
    int remove;             /* BOOL */
    long long count;        /* COUNT, OBJECT (-1: absent) */
    long long age;          /* OBJECT, seconds (-1: absent) */
    long long limit;        /* OBJECT (-1: absent) */
} rc_jobs_keep;

/* Config file sections "jobs" and "events" (docs/jobs.md has the table). */
typedef struct rc_jobs_config {
    char *queue;                 /* "email" (no ':') */
    char *name;                  /* "send-email": the job name */
    char *prefix;                /* "bull": BullMQ's key prefix, may carry a {hash tag} */
    int attempts;                /* 3 */
    char *backoff_type;          /* "exponential"; NULL: no backoff (retry at once) */
    long long backoff_delay;     /* 1000 ms */
    double backoff_jitter;       /* 0 = none (then not written) */
    int priority;                /* 0 = none; 1 (highest) .. 2097151 */
    long long delay;             /* 0 ms */
    rc_jobs_keep remove_on_complete;  /* {"age": 86400, "count": 1000} */
    rc_jobs_keep remove_on_fail;      /* {"age": 604800} */
    long long dedup_ttl;         /* 86400000 ms: BullMQ deduplication window per job id; 0 = off */
    long long events_max_len;    /* 100000: XADD P:events MAXLEN ~ this (section "events") */
} rc_jobs_config;

/* Fills the defaults above (strings heap-allocated). */
void rc_jobs_config_init(rc_jobs_config *cfg);
void rc_jobs_config_dispose(rc_jobs_config *cfg);
/* Reads the "jobs" object over what cfg holds (keys absent or null keep their value). Every
 * problem is added to errs as "<path>.<key>: <message>"; unknown keys are errors. json NULL is
 * fine (nothing to read). Returns 0, or -1 when it added an error. */
int rc_jobs_config_parse(rc_jobs_config *cfg, const struct cJSON *json, const char *path,
                         rc_config_errors *errs);
/* The same for the "events" object: {"maxLen": N}. */
int rc_jobs_events_config_parse(rc_jobs_config *cfg, const struct cJSON *json, const char *path,
                                rc_config_errors *errs);

#endif
