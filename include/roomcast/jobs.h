/*
 * jobs.h: the hand-off of notifications for offline users to BullMQ, and the forwarding of
 * client events to the Redis Stream P:events. Both run on the node's Redis command connection
 * (redis_cmd.h); neither opens a connection of its own. Layout, options and the Worker side:
 * docs/jobs.md.
 *
 * A notification for a user with no connection on this node goes to rc_jobs_notify_offline. One
 * Lua script (src/jobs_lua.h, loaded with EVALSHA) then decides atomically in Redis: if the
 * user's presence set P:presence:<user> is non-empty the user is online somewhere (that node
 * delivers) and nothing is written; else exactly one BullMQ job is added the way bullmq 5.x and
 * 6.x add one, with the notification as its data. Every node may call it for the same
 * notification: the job id is derived from the notification id, so the second and later calls
 * find the job (or its deduplication key) and add nothing.
 *
 * Ownership: rc_jobs_config owns its strings (rc_jobs_config_dispose). rc_jobs_new copies what
 * it needs from the config. Arguments of every call are borrowed for the call. Callbacks run
 * from the loop, never from inside the call that queued them, and never after rc_jobs_free.
 *
 * API in call order: rc_jobs_config_init -> rc_jobs_config_parse / rc_jobs_events_config_parse
 * -> rc_jobs_new -> rc_jobs_notify_offline / rc_jobs_forward_event (any order, any number)
 * -> rc_jobs_write_metrics when scraped -> rc_jobs_free -> rc_jobs_config_dispose.
 */
#ifndef ROOMCAST_JOBS_H
#define ROOMCAST_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "roomcast/jobs_config.h"

struct cJSON;
struct evbuffer;
typedef struct rc_backplane rc_backplane;

/* ---- pure helpers (exposed for the node's logs and for the tests) ------------------------- */

#define RC_JOBS_ID_MAX 128            /* longer notification ids are hashed */
#define RC_JOBS_ID_SIZE (RC_JOBS_ID_MAX + 1)

/* The BullMQ job id for a notification: its id when BullMQ accepts it as a custom id (1..128
 * bytes of valid UTF-8, not an integer, no ':', no control character, not a queue key suffix
 * such as "meta");
 * else "n-" + the SHA-1 (hex) of the id; with no id at all, "n-" + the SHA-1 of the notification
 * JSON bytes. Deterministic, so every node derives the same one. Returns 0 when the id was used
 * as is, 1 when derived. */
int rc_jobs_job_id(const char *id, const char *json, size_t len, char out[RC_JOBS_ID_SIZE]);

/* The job's opts JSON as BullMQ stores it (attempts, backoff, delay, priority, removeOnComplete,
 * removeOnFail, de, jobId; delay/priority/backoff/de only when set). Heap string: rc_free. */
char *rc_jobs_opts_json(const rc_jobs_config *cfg, const char *job_id);

/* ---- the module ---------------------------------------------------------------------------- */

typedef struct rc_jobs rc_jobs;

/* status of a hand-off */
enum {
    RC_JOBS_ERROR = -1,     /* not sent, error reply, or connection lost: nothing known added */
    RC_JOBS_NOT_ADDED = 0,  /* reason rc_jobs_reason_online or rc_jobs_reason_duplicate */
    RC_JOBS_ADDED = 1
};
/* Reasons, static strings compared by pointer. */
extern const char rc_jobs_reason_added[];      /* "added" */
extern const char rc_jobs_reason_online[];     /* "online": the presence set was not empty */
extern const char rc_jobs_reason_duplicate[];  /* "duplicate": that job id exists or was added
                                                  within the dedup window */
extern const char rc_jobs_reason_down[];       /* "redis_down": not sent (down, or no Redis) */
extern const char rc_jobs_reason_failed[];     /* "redis_error": error reply or connection lost */

typedef void (*rc_jobs_done_fn)(void *arg, int status, const char *reason);

/* cfg: built with rc_jobs_config_init (+ parse), or NULL for the defaults; copied. bp is
 * borrowed and must outlive the rc_jobs. With the embedded backplane every call fails
 * (returns -1, counted), as there is no Redis to hold the job. */
rc_jobs *rc_jobs_new(const rc_jobs_config *cfg, rc_backplane *bp);

/* Hands a notification for `user` (no local socket of that user) to BullMQ unless the user is
 * online on another node. id: the notification's id or NULL; notification_json: the whole
 * notification, valid JSON (it becomes the job's data verbatim). Returns 0 when sent: cb (may be
 * NULL) then runs once from the loop with the outcome; -1 when not sent (Redis down, embedded
 * backplane, empty user): cb is not called. Every outcome is counted. */
int rc_jobs_notify_offline(rc_jobs *j, const char *user, const char *id,
                           const char *notification_json, size_t len, rc_jobs_done_fn cb,
                           void *arg);

/* One client event to forward (docs/jobs.md, "The events stream `P:events`"). NULL strings are written as "". */
typedef struct rc_jobs_event {
    const char *ns;
    const char *event;
    const char *user;
    const char *sid;
    const char *node;
    const char *data_json;   /* JSON text; NULL: "null" */
    size_t data_len;
    uint64_t ts_ms;          /* 0: now */
} rc_jobs_event;

/* XADD P:events MAXLEN ~ <events_max_len> * ns .. event .. user .. sid .. node .. data .. ts ..
 * Returns 0 when sent (the reply is counted: forwarded or failed), -1 when not sent (counted). */
int rc_jobs_forward_event(rc_jobs *j, const rc_jobs_event *ev);

/* Appends roomcast_jobs_skipped_total{reason}, roomcast_jobs_failures_total,
 * roomcast_events_forwarded_total and roomcast_events_forward_failures_total (HELP and TYPE
 * lines included). j may be NULL: zeros. roomcast_jobs_added_total is rc_metrics.jobs_added_total
 * (metrics.c writes it; this module increments it). */
void rc_jobs_write_metrics(const rc_jobs *j, struct evbuffer *out);

/* Frees now; replies still in flight are absorbed later without calling their callbacks. */
void rc_jobs_free(rc_jobs *j);

#endif
