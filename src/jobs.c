/*
 * jobs.c: notifications for offline users become BullMQ jobs; forwarded client events go to the
 * Redis Stream P:events. Contract: include/roomcast/jobs.h. Layout and options: docs/jobs.md.
 *
 * Design note. The hand-off is one EVALSHA of the script in jobs_lua.h on the node's command
 * connection (redis_cmd.h), so the presence check, the duplicate check and the insert are one
 * atomic step in Redis: however many nodes run the same notification through it, the first adds
 * the job and the others find it. The node asks only after it found no local socket of the user;
 * the script then looks at P:presence:<user>, which covers every node.
 *
 * Everything that does not change per call is built once in rc_jobs_new: the queue's key names,
 * the number strings. Per call it builds the job id (rc_jobs_job_id), the opts JSON
 * (rc_jobs_opts_json, cJSON: offline notifications are not a hot path) and three key names.
 * Forwarding an event allocates nothing here: XADD's arguments point into the caller's strings.
 *
 * Replies: each notify carries a small request (callback, argument) freed by its reply. The
 * rc_jobs counts the replies it still waits for; rc_jobs_free with replies in flight only marks
 * it closing, and the last reply frees it without calling anyone (the backplane answers every
 * command, with reply NULL when the connection goes away).
 *
 * It does not: retry a failed hand-off (the caller sees the failure; the notification is lost
 * and counted), queue while Redis is down, write the presence set (presence.c does), add flows,
 * repeatable jobs or job schedulers, or read the events stream back.
 *
 * API in call order: rc_jobs_config_init -> rc_jobs_config_parse -> rc_jobs_new ->
 * rc_jobs_notify_offline / rc_jobs_forward_event -> rc_jobs_write_metrics -> rc_jobs_free.
 */
#include "roomcast/jobs.h"

#include "roomcast/common.h"
#include "roomcast/keys.h"
#include "roomcast/errors.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/template.h"

#include "jobs_lua.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME_LEN 256
#define MAX_ATTEMPTS 1000000
#define MAX_PRIORITY 2097151            /* BullMQ's limit, 2^21 - 1 */
#define MAX_DELAY_MS 31536000000LL      /* a year */
#define MAX_COUNT 1000000000LL
#define MAX_EVENTS_LEN 1000000000LL

const char rc_jobs_reason_added[] = "added";
const char rc_jobs_reason_online[] = "online";
const char rc_jobs_reason_duplicate[] = "duplicate";
const char rc_jobs_reason_down[] = "redis_down";
const char rc_jobs_reason_failed[] = "redis_error";

/* ---- config ------------------------------------------------------------------------------- */

void rc_jobs_config_init(rc_jobs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->queue = rc_strdup("email");
    cfg->name = rc_strdup("send-email");
    cfg->prefix = rc_strdup("bull");
    cfg->attempts = 3;
    cfg->backoff_type = rc_strdup("exponential");
    cfg->backoff_delay = 1000;
    cfg->remove_on_complete = (rc_jobs_keep){RC_JOBS_KEEP_OBJECT, 0, 1000, 86400, -1};
    cfg->remove_on_fail = (rc_jobs_keep){RC_JOBS_KEEP_OBJECT, 0, -1, 604800, -1};
    cfg->dedup_ttl = 86400000;
    cfg->events_max_len = 100000;
}

void rc_jobs_config_dispose(rc_jobs_config *cfg)
{
    rc_free(cfg->queue);
    rc_free(cfg->name);
    rc_free(cfg->prefix);
    rc_free(cfg->backoff_type);
    memset(cfg, 0, sizeof(*cfg));
}

struct parser {
    const char *path;
    rc_config_errors *errs;
    int failed;
};

static void perr(struct parser *P, const char *key, const char *sub, const char *msg)
{
    char p[512];
    snprintf(p, sizeof(p), "%s%s%s%s%s", P->path, *P->path ? "." : "", key, sub ? "." : "",
             sub ? sub : "");
    rc_config_error(P->errs, p, "%s", msg);
    P->failed = 1;
}

/* obj[key], NULL when absent or null (null means "keep the default"). */
static const cJSON *field(const cJSON *obj, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(j) ? NULL : j;
}

static int is_integer_in(const cJSON *j, long long min, long long max)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    return d >= (double)min && d <= (double)max && d == (double)(long long)d;
}

/* An integer in [min, max] at obj.key (sub: the key inside it, for nested objects). */
static void read_int(struct parser *P, const cJSON *obj, const char *key, const char *sub,
                     long long min, long long max, long long *out)
{
    const cJSON *j = field(obj, sub ? sub : key);
    if (!j) return;
    if (is_integer_in(j, min, max)) {
        *out = (long long)j->valuedouble;
        return;
    }
    char msg[96];
    snprintf(msg, sizeof(msg), "must be an integer %lld..%lld", min, max);
    perr(P, key, sub, msg);
}

static void read_str(struct parser *P, const cJSON *obj, const char *key, int no_colon, char **out)
{
    const cJSON *j = field(obj, key);
    if (!j) return;
    size_t n = cJSON_IsString(j) ? strlen(j->valuestring) : 0;
    if (n == 0 || n > MAX_NAME_LEN)
        perr(P, key, NULL, "must be a string of 1..256 bytes");
    else if (no_colon && strchr(j->valuestring, ':'))
        perr(P, key, NULL, "must not contain ':'");
    else {
        rc_free(*out);
        *out = rc_strdup(j->valuestring);
    }
}

/* removeOnComplete / removeOnFail: true, false, N, or {"age", "count", "limit"}. */
static void read_keep(struct parser *P, const cJSON *obj, const char *key, rc_jobs_keep *out)
{
    static const char *const keys[] = {"age", "count", "limit", NULL};
    const cJSON *j = field(obj, key);
    if (!j) return;
    if (cJSON_IsBool(j)) {
        *out = (rc_jobs_keep){RC_JOBS_KEEP_BOOL, cJSON_IsTrue(j), -1, -1, -1};
    } else if (cJSON_IsNumber(j)) {
        if (!is_integer_in(j, 0, MAX_COUNT)) {
            perr(P, key, NULL,
                 "must be true, false, a count 0..1000000000 or {\"age\", \"count\", \"limit\"}");
            return;
        }
        *out = (rc_jobs_keep){RC_JOBS_KEEP_COUNT, 0, (long long)j->valuedouble, -1, -1};
    } else if (cJSON_IsObject(j)) {
        char p[300];
        snprintf(p, sizeof(p), "%s%s%s", P->path, *P->path ? "." : "", key);
        size_t before = P->errs->count;
        rc__config_check_keys(j, p, keys, P->errs);
        if (P->errs->count != before) P->failed = 1;
        rc_jobs_keep k = {RC_JOBS_KEEP_OBJECT, 0, -1, -1, -1};
        read_int(P, j, key, "age", 0, MAX_DELAY_MS / 1000, &k.age);
        read_int(P, j, key, "count", 0, MAX_COUNT, &k.count);
        read_int(P, j, key, "limit", 1, MAX_COUNT, &k.limit);
        if (k.age < 0 && k.count < 0)
            perr(P, key, NULL, "needs \"age\" (seconds) or \"count\"");
        else
            *out = k;
    } else {
        perr(P, key, NULL, "must be true, false, a count or {\"age\", \"count\", \"limit\"}");
    }
}

/* backoff: false (none), N (fixed N ms, as BullMQ normalizes it), or {"type", "delay", "jitter"}. */
static void read_backoff(struct parser *P, const cJSON *obj, rc_jobs_config *cfg)
{
    static const char *const keys[] = {"type", "delay", "jitter", NULL};
    const cJSON *j = field(obj, "backoff");
    if (!j) return;
    if (cJSON_IsFalse(j)) {
        rc_free(cfg->backoff_type);
        cfg->backoff_type = NULL;
        cfg->backoff_delay = 0;
        cfg->backoff_jitter = 0;
        return;
    }
    if (cJSON_IsNumber(j)) {
        long long d = -1;
        read_int(P, obj, "backoff", NULL, 0, MAX_DELAY_MS, &d);
        if (d < 0) return;
        rc_free(cfg->backoff_type);
        cfg->backoff_type = rc_strdup("fixed");
        cfg->backoff_delay = d;
        cfg->backoff_jitter = 0;
        return;
    }
    if (!cJSON_IsObject(j)) {
        perr(P, "backoff", NULL, "must be false, a delay in ms, or {\"type\", \"delay\", \"jitter\"}");
        return;
    }
    char p[300];
    snprintf(p, sizeof(p), "%s%sbackoff", P->path, *P->path ? "." : "");
    size_t before = P->errs->count;
    rc__config_check_keys(j, p, keys, P->errs);
    if (P->errs->count != before) P->failed = 1;
    const cJSON *type = field(j, "type");
    const cJSON *jitter = field(j, "jitter");
    long long delay = 0;
    double jit = 0;
    int ok = 1;
    if (!cJSON_IsString(type) || !type->valuestring[0] || strlen(type->valuestring) > MAX_NAME_LEN) {
        perr(P, "backoff", "type",
             "must be \"fixed\", \"exponential\" or the name of the Worker's custom strategy");
        ok = 0;
    }
    if (field(j, "delay")) {
        delay = -1;
        read_int(P, j, "backoff", "delay", 0, MAX_DELAY_MS, &delay);
        if (delay < 0) ok = 0;
    }
    if (jitter) {
        if (!cJSON_IsNumber(jitter) || jitter->valuedouble < 0 || jitter->valuedouble > 1) {
            perr(P, "backoff", "jitter", "must be a number 0..1");
            ok = 0;
        } else {
            jit = jitter->valuedouble;
        }
    }
    if (!ok) return;
    rc_free(cfg->backoff_type);
    cfg->backoff_type = rc_strdup(type->valuestring);
    cfg->backoff_delay = delay;
    cfg->backoff_jitter = jit;
}

static int begin(struct parser *P, const cJSON *json, const char *path, rc_config_errors *errs,
                 const char *const *keys)
{
    P->path = path ? path : "";
    P->errs = errs;
    P->failed = 0;
    if (!json || cJSON_IsNull(json)) return 0;
    if (!cJSON_IsObject(json)) {
        rc_config_error(errs, P->path, "must be an object");
        P->failed = 1;
        return 0;
    }
    size_t before = errs->count;
    rc__config_check_keys(json, P->path, keys, errs);
    if (errs->count != before) P->failed = 1;
    return 1;
}

int rc_jobs_config_parse(rc_jobs_config *cfg, const cJSON *json, const char *path,
                         rc_config_errors *errs)
{
    static const char *const keys[] = {"queue", "name", "prefix", "attempts", "backoff", "priority",
                                       "delay", "removeOnComplete", "removeOnFail", "dedupTtl", NULL};
    struct parser P;
    if (!begin(&P, json, path, errs, keys)) return P.failed ? -1 : 0;
    read_str(&P, json, "queue", 1, &cfg->queue);
    read_str(&P, json, "name", 0, &cfg->name);
    read_str(&P, json, "prefix", 0, &cfg->prefix);
    long long v = cfg->attempts;
    read_int(&P, json, "attempts", NULL, 1, MAX_ATTEMPTS, &v);
    cfg->attempts = (int)v;
    read_backoff(&P, json, cfg);
    v = cfg->priority;
    read_int(&P, json, "priority", NULL, 0, MAX_PRIORITY, &v);
    cfg->priority = (int)v;
    read_int(&P, json, "delay", NULL, 0, MAX_DELAY_MS, &cfg->delay);
    read_keep(&P, json, "removeOnComplete", &cfg->remove_on_complete);
    read_keep(&P, json, "removeOnFail", &cfg->remove_on_fail);
    read_int(&P, json, "dedupTtl", NULL, 0, MAX_DELAY_MS, &cfg->dedup_ttl);
    return P.failed ? -1 : 0;
}

int rc_jobs_events_config_parse(rc_jobs_config *cfg, const cJSON *json, const char *path,
                                rc_config_errors *errs)
{
    static const char *const keys[] = {"maxLen", NULL};
    struct parser P;
    if (!begin(&P, json, path, errs, keys)) return P.failed ? -1 : 0;
    read_int(&P, json, "maxLen", NULL, 1, MAX_EVENTS_LEN, &cfg->events_max_len);
    return P.failed ? -1 : 0;
}

/* ---- job id and opts ---------------------------------------------------------------------- */

/* Queue key suffixes (BullMQ's QueueKeys, plus metrics): a job id equal to one would make the
 * job hash collide with a queue key. */
static const char *const reserved_ids[] = {
    "active", "wait", "waiting-children", "paused", "id", "delayed", "prioritized",
    "stalled-check", "completed", "failed", "stalled", "repeat", "limiter", "meta", "events",
    "pc", "marker", "de", "metrics",
};

/* Length of the UTF-8 sequence at s (shortest form, no surrogates), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    if (s[0] < 0xc2 || s[0] > 0xf4 || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    if (len == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))) return 0;
    if (len == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))) return 0;
    return len;
}

static int id_usable(const char *id)
{
    const unsigned char *s = (const unsigned char *)id;
    size_t n = strlen(id);
    if (n == 0 || n > RC_JOBS_ID_MAX) return 0;
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_seq(s + i, n - i);
            if (!k) return 0;
            i += k - 1;
            continue;
        }
        if (c < 0x20 || c == 0x7f || c == ':') return 0;
        if (c >= '0' && c <= '9') digits++;
    }
    /* BullMQ refuses integer ids (they would collide with its own counter's ids) */
    if (digits == n || (id[0] == '-' && digits == n - 1 && n > 1)) return 0;
    for (size_t i = 0; i < RC_ARRAY_LEN(reserved_ids); i++)
        if (strcmp(id, reserved_ids[i]) == 0) return 0;
    return 1;
}

int rc_jobs_job_id(const char *id, const char *json, size_t len, char out[RC_JOBS_ID_SIZE])
{
    if (id && id_usable(id)) {
        memcpy(out, id, strlen(id) + 1);
        return 0;
    }
    const void *src = id ? (const void *)id : (const void *)json;
    size_t n = id ? strlen(id) : (json ? len : 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(src ? src : "", n, md, &mdlen, EVP_sha1(), NULL) != 1) abort();
    static const char hex[] = "0123456789abcdef";
    out[0] = 'n';
    out[1] = '-';
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 + 2 * i] = hex[md[i] >> 4];
        out[3 + 2 * i] = hex[md[i] & 15];
    }
    out[2 + 2 * mdlen] = '\0';
    return 1;
}

static cJSON *keep_json(const rc_jobs_keep *k)
{
    if (k->mode == RC_JOBS_KEEP_BOOL) return cJSON_CreateBool(k->remove);
    if (k->mode == RC_JOBS_KEEP_COUNT) return cJSON_CreateNumber((double)k->count);
    cJSON *o = cJSON_CreateObject();
    if (k->age >= 0) cJSON_AddNumberToObject(o, "age", (double)k->age);
    if (k->count >= 0) cJSON_AddNumberToObject(o, "count", (double)k->count);
    if (k->limit >= 0) cJSON_AddNumberToObject(o, "limit", (double)k->limit);
    return o;
}

char *rc_jobs_opts_json(const rc_jobs_config *cfg, const char *job_id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "attempts", cfg->attempts);
    if (cfg->backoff_type) {
        cJSON *b = cJSON_AddObjectToObject(o, "backoff");
        cJSON_AddStringToObject(b, "type", cfg->backoff_type);
        cJSON_AddNumberToObject(b, "delay", (double)cfg->backoff_delay);
        if (cfg->backoff_jitter > 0) cJSON_AddNumberToObject(b, "jitter", cfg->backoff_jitter);
    }
    if (cfg->delay > 0) cJSON_AddNumberToObject(o, "delay", (double)cfg->delay);
    if (cfg->priority > 0) cJSON_AddNumberToObject(o, "priority", cfg->priority);
    cJSON_AddItemToObject(o, "removeOnComplete", keep_json(&cfg->remove_on_complete));
    cJSON_AddItemToObject(o, "removeOnFail", keep_json(&cfg->remove_on_fail));
    if (cfg->dedup_ttl > 0) {
        cJSON *de = cJSON_AddObjectToObject(o, "de");
        cJSON_AddStringToObject(de, "id", job_id);
        cJSON_AddNumberToObject(de, "ttl", (double)cfg->dedup_ttl);
    }
    cJSON_AddStringToObject(o, "jobId", job_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) abort();
    char *s = rc_strdup(text);
    cJSON_free(text);
    return s;
}

/* ---- the module ---------------------------------------------------------------------------- */

enum qkey { QK_ID, QK_META, QK_WAIT, QK_PAUSED, QK_ACTIVE, QK_PRIORITIZED, QK_PC, QK_DELAYED,
            QK_MARKER, QK_EVENTS, QK__COUNT };
static const char *const qkey_suffix[QK__COUNT] = {
    "id", "meta", "wait", "paused", "active", "prioritized", "pc", "delayed", "marker", "events",
};

struct rc_jobs {
    rc_backplane *bp;
    rc_jobs_config cfg;          /* a copy: strings owned here */
    char *qprefix;               /* "<bullmq prefix>:<queue>:" */
    char *qkeys[QK__COUNT];
    char delay_s[24], priority_s[24], ttl_s[24], maxlen_s[24];
    rc_redis_script script;
    unsigned inflight;           /* replies still expected */
    int closing;                 /* rc_jobs_free called: the last reply frees */
    uint64_t added, skipped_online, skipped_duplicate, failures;
    uint64_t forwarded, forward_failures;
};

struct notify_req {
    rc_jobs *j;
    rc_jobs_done_fn cb;
    void *arg;
    char job_id[RC_JOBS_ID_SIZE];
    /* Redis Cluster: presence is asked first (its keys are in another slot than the queue's),
     * then the script runs with these */
    char *json;
    size_t len;
};

rc_jobs *rc_jobs_new(const rc_jobs_config *cfg, rc_backplane *bp)
{
    rc_jobs_config defaults;
    rc_jobs_config_init(&defaults);
    if (!cfg) cfg = &defaults;
    rc_jobs *j = rc_calloc(1, sizeof(*j));
    j->bp = bp;
    j->cfg = *cfg;
    j->cfg.queue = rc_strdup(cfg->queue);
    j->cfg.name = rc_strdup(cfg->name);
    j->cfg.prefix = rc_strdup(cfg->prefix);
    j->cfg.backoff_type = cfg->backoff_type ? rc_strdup(cfg->backoff_type) : NULL;
    j->qprefix = rc_key_new(cfg->prefix, RC_KEY_QUEUE, cfg->queue, NULL);
    for (int i = 0; i < QK__COUNT; i++) j->qkeys[i] = rc_strcat3(j->qprefix, qkey_suffix[i], NULL);
    snprintf(j->delay_s, sizeof(j->delay_s), "%lld", cfg->delay);
    snprintf(j->priority_s, sizeof(j->priority_s), "%d", cfg->priority);
    snprintf(j->ttl_s, sizeof(j->ttl_s), "%lld", cfg->dedup_ttl);
    snprintf(j->maxlen_s, sizeof(j->maxlen_s), "%lld", cfg->events_max_len);
    j->script.source = rc_jobs_notify_offline_lua;
    rc_jobs_config_dispose(&defaults);
    /* On a Redis Cluster a queue's keys must share one slot: the prefix must carry a hash tag. */
    const char *open = strchr(j->cfg.prefix, '{'), *close = open ? strchr(open + 1, '}') : NULL;
    if (rc_redis_clustered(bp) && (!close || close == open + 1))
        rc_log_error("jobs_prefix_untagged", "prefix=%s reason=\"on a Redis Cluster jobs.prefix must be a "
                     "hash tag such as {bull} (and the Workers' prefix the same): offline jobs will fail\"",
                     j->cfg.prefix);
    return j;
}

static void jobs_destroy(rc_jobs *j)
{
    for (int i = 0; i < QK__COUNT; i++) rc_free(j->qkeys[i]);
    rc_free(j->qprefix);
    rc_jobs_config_dispose(&j->cfg);
    rc_free(j);
}

void rc_jobs_free(rc_jobs *j)
{
    if (!j) return;
    if (j->inflight) {
        j->closing = 1;
        return;
    }
    jobs_destroy(j);
}

/* One reply fewer to wait for; frees j when it was the last one after rc_jobs_free. */
static void jobs_release(rc_jobs *j)
{
    if (--j->inflight == 0 && j->closing) jobs_destroy(j);
}

static void on_notify_reply(void *arg, const redisReply *r)
{
    struct notify_req *q = arg;
    rc_jobs *j = q->j;
    int status = RC_JOBS_ERROR;
    const char *reason = rc_jobs_reason_failed;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 && r->integer <= 2) {
        static const int st[3] = {RC_JOBS_NOT_ADDED, RC_JOBS_ADDED, RC_JOBS_NOT_ADDED};
        static const char *const why[3] = {rc_jobs_reason_online, rc_jobs_reason_added,
                                           rc_jobs_reason_duplicate};
        status = st[r->integer];
        reason = why[r->integer];
    }
    if (reason == rc_jobs_reason_added) {
        j->added++;
        rc_log_debug("job_added", "job_id=%s", q->job_id);
    } else if (reason == rc_jobs_reason_online) {
        j->skipped_online++;
    } else if (reason == rc_jobs_reason_duplicate) {
        j->skipped_duplicate++;
        rc_log_debug("job_duplicate", "job_id=%s", q->job_id);
    } else {
        j->failures++;
        char detail[160];
        if (!r)
            snprintf(detail, sizeof(detail), "connection lost");
        else if (r->type == REDIS_REPLY_ERROR)
            snprintf(detail, sizeof(detail), "%.*s", (int)(r->len < 150 ? r->len : 150), r->str);
        else
            snprintf(detail, sizeof(detail), "unexpected reply type %d", r->type);
        rc_log_warn("job_handoff_failed", "job_id=%s reason=%s detail=%s", q->job_id, reason,
                    detail);
    }
    if (!j->closing && q->cb) q->cb(q->arg, status, reason);
    rc_free(q->json);
    rc_free(q);
    jobs_release(j);
}

/* The job script for q; presence_checked: KEYS 1 is a key of the queue, not read (ARGV 9). */
static int notify_eval(rc_jobs *j, struct notify_req *q, const char *user, const char *json,
                       size_t len, int presence_checked)
{
    char ts[24];
    snprintf(ts, sizeof(ts), "%" PRIu64, rc_now_wall_ms());
    char *presence = presence_checked ? NULL : rc_key_new(rc_redis_prefix(j->bp), RC_KEY_PRESENCE, user, NULL);
    char *job_key = rc_strcat3(j->qprefix, q->job_id, NULL);
    char *de_key = rc_strcat3(j->qprefix, "de:", q->job_id);
    char *opts = rc_jobs_opts_json(&j->cfg, q->job_id);

    /* KEYS and ARGV exactly as listed at the top of jobs_lua.h */
    const char *argv[] = {
        presence ? presence : job_key, job_key, j->qkeys[QK_ID], j->qkeys[QK_META], j->qkeys[QK_WAIT],
        j->qkeys[QK_PAUSED], j->qkeys[QK_ACTIVE], j->qkeys[QK_PRIORITIZED], j->qkeys[QK_PC],
        j->qkeys[QK_DELAYED], j->qkeys[QK_MARKER], j->qkeys[QK_EVENTS], de_key,
        q->job_id, j->cfg.name, json, opts, ts, j->delay_s, j->priority_s, j->ttl_s,
        presence_checked ? "1" : "0",
    };
    size_t argvlen[RC_ARRAY_LEN(argv)];
    for (size_t i = 0; i < RC_ARRAY_LEN(argv); i++) argvlen[i] = strlen(argv[i]);
    argvlen[15] = len; /* the notification: its length is given */

    int rc = rc_redis_eval(j->bp, &j->script, on_notify_reply, q, 13, (int)RC_ARRAY_LEN(argv),
                           argv, argvlen);
    rc_free(presence);
    rc_free(job_key);
    rc_free(de_key);
    rc_free(opts);
    return rc;
}

/* Redis Cluster, step 1: SCARD P:presence:<user> answered. */
static void on_presence_checked(void *arg, const redisReply *r)
{
    struct notify_req *q = arg;
    rc_jobs *j = q->j;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0) {
        redisReply online = {.type = REDIS_REPLY_INTEGER, .integer = 0};
        on_notify_reply(q, &online);
        return;
    }
    if (!r || r->type != REDIS_REPLY_INTEGER || j->closing ||
        notify_eval(j, q, NULL, q->json, q->len, 1) != 0) {
        on_notify_reply(q, r && r->type == REDIS_REPLY_ERROR ? r : NULL);
        return;
    }
}

int rc_jobs_notify_offline(rc_jobs *j, const char *user, const char *id,
                           const char *notification_json, size_t len, rc_jobs_done_fn cb,
                           void *arg)
{
    if (!user || !user[0] || !notification_json || !rc_redis_available(j->bp)) {
        j->failures++;
        rc_log_debug("job_handoff_failed", "id=%s reason=%s", id ? id : "",
                     user && user[0] ? rc_jobs_reason_down : "no_user");
        return -1;
    }
    struct notify_req *q = rc_calloc(1, sizeof(*q));
    q->j = j;
    q->cb = cb;
    q->arg = arg;
    rc_jobs_job_id(id, notification_json, len, q->job_id);

    int rc;
    if (rc_redis_clustered(j->bp)) {
        /* two steps: presence lives in its own slot ({P}), the queue in BullMQ's; "exactly one
         * job" still holds (the script refuses an existing job id in the queue's slot) */
        q->json = rc_strndup(notification_json, len);
        q->len = len;
        char *presence = rc_key_new(rc_redis_prefix(j->bp), RC_KEY_PRESENCE, user, NULL);
        const char *argv[2] = {"SCARD", presence};
        rc = rc_redis_command(j->bp, on_presence_checked, q, 2, argv, NULL);
        rc_free(presence);
        if (rc != 0) rc_free(q->json);
    } else {
        rc = notify_eval(j, q, user, notification_json, len, 0);
    }
    if (rc != 0) {
        j->failures++;
        rc_log_debug("job_handoff_failed", "job_id=%s reason=%s", q->job_id, rc_jobs_reason_down);
        rc_free(q);
        return -1;
    }
    j->inflight++;
    return 0;
}

static void on_forward_reply(void *arg, const redisReply *r)
{
    rc_jobs *j = arg;
    if (r && r->type != REDIS_REPLY_ERROR) {
        j->forwarded++;
    } else {
        j->forward_failures++;
        rc_log_debug("event_forward_failed", "detail=%s",
                     !r ? "connection lost" : r->str ? r->str : "error");
    }
    jobs_release(j);
}

int rc_jobs_forward_event(rc_jobs *j, const rc_jobs_event *ev)
{
    if (!rc_redis_available(j->bp)) {
        j->forward_failures++;
        return -1;
    }
    char ts[24];
    snprintf(ts, sizeof(ts), "%" PRIu64, ev->ts_ms ? ev->ts_ms : rc_now_wall_ms());
    char *stream = rc_key_new(rc_redis_prefix(j->bp), RC_KEY_EVENTS, NULL, NULL);
#define S(x) ((x) ? (x) : "")
    const char *argv[] = {
        "XADD", stream, "MAXLEN", "~", j->maxlen_s, "*",
        "ns", S(ev->ns), "event", S(ev->event), "user", S(ev->user), "sid", S(ev->sid),
        "node", S(ev->node), "data", ev->data_json ? ev->data_json : "null", "ts", ts,
    };
#undef S
    size_t argvlen[RC_ARRAY_LEN(argv)];
    for (size_t i = 0; i < RC_ARRAY_LEN(argv); i++) argvlen[i] = strlen(argv[i]);
    if (ev->data_json) argvlen[17] = ev->data_len;
    int rc = rc_redis_command(j->bp, on_forward_reply, j, (int)RC_ARRAY_LEN(argv), argv, argvlen);
    rc_free(stream);
    if (rc != 0) {
        j->forward_failures++;
        return -1;
    }
    j->inflight++;
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------- */

void rc_jobs_write_metrics(const rc_jobs *j, struct evbuffer *out)
{
    static const char *const skip_reasons[] = {"online", "duplicate"};
    uint64_t skipped[] = {j ? j->skipped_online : 0, j ? j->skipped_duplicate : 0};
    rc_metrics_put_scalar(out, "roomcast_jobs_added_total", "counter", "Jobs added.", j ? j->added : 0);
    rc_metrics_put_by_label(out, "roomcast_jobs_skipped_total", "counter",
                            "Offline hand-offs that added no job: the user was online on some node, or "
                            "the job already existed.",
                            "reason", skip_reasons, skipped, 0, 2);
    rc_metrics_put_scalar(out, "roomcast_jobs_failures_total", "counter",
                          "Offline hand-offs not done: Redis down or absent, an error reply, or the "
                          "connection lost.",
                          j ? j->failures : 0);
    rc_metrics_put_scalar(out, "roomcast_events_forwarded_total", "counter",
                          "Client events appended to the events stream.", j ? j->forwarded : 0);
    rc_metrics_put_scalar(out, "roomcast_events_forward_failures_total", "counter",
                          "Client events not appended to the events stream (Redis down or absent, or "
                          "an error reply).",
                          j ? j->forward_failures : 0);
}
