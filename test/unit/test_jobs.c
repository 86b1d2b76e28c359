/*
 * test_jobs.c: src/jobs.c. The pure parts (config parser with its error paths, job ids, the opts
 * JSON, the embedded script's format), then the module on a real Redis backplane against a real
 * redis-server: what a hand-off writes, online / duplicate outcomes, the P:events stream read
 * back by a consumer group, failures, metrics, and freeing with replies in flight.
 * Real bullmq Workers processing these jobs: test/jobs/bullmq.test.js.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_harness.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/jobs.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"

#include "../../src/jobs_lua.h"

/* ---- config ------------------------------------------------------------------------------- */

/* Parses text as the "jobs" (or "events") section over the defaults; errors joined by '\n'. */
static int parse(rc_jobs_config *cfg, const char *text, int events, char *errs_out, size_t size)
{
    rc_config_errors errs = {0};
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    rc_jobs_config_init(cfg);
    int rc = events ? rc_jobs_events_config_parse(cfg, j, "events", &errs)
                    : rc_jobs_config_parse(cfg, j, "jobs", &errs);
    size_t off = 0;
    errs_out[0] = '\0';
    for (size_t i = 0; i < errs.count; i++)
        off += (size_t)snprintf(errs_out + off, size - off, "%s%s", i ? "\n" : "", errs.items[i]);
    assert_int_equal(rc, errs.count ? -1 : 0);
    rc_config_errors_dispose(&errs);
    cJSON_Delete(j);
    return rc;
}

static void test_config_defaults(void **state)
{
    rc_jobs_config c;
    rc_jobs_config_init(&c);
    assert_string_equal(c.queue, "email");
    assert_string_equal(c.name, "send-email");
    assert_string_equal(c.prefix, "bull");
    assert_int_equal(c.attempts, 3);
    assert_string_equal(c.backoff_type, "exponential");
    assert_int_equal(c.backoff_delay, 1000);
    assert_int_equal(c.priority, 0);
    assert_int_equal(c.delay, 0);
    assert_int_equal(c.dedup_ttl, 86400000);
    assert_int_equal(c.events_max_len, 100000);
    char *opts = rc_jobs_opts_json(&c, "n-1");
    assert_string_equal(opts, "{\"attempts\":3,\"backoff\":{\"type\":\"exponential\",\"delay\":1000},"
                              "\"removeOnComplete\":{\"age\":86400,\"count\":1000},"
                              "\"removeOnFail\":{\"age\":604800},"
                              "\"de\":{\"id\":\"n-1\",\"ttl\":86400000},\"jobId\":\"n-1\"}");
    rc_free(opts);
    rc_jobs_config_dispose(&c);
    rc_jobs_config_dispose(&c); /* disposing twice is harmless: all-zero after the first */
}

static void test_config_parse(void **state)
{
    rc_jobs_config c;
    char e[2048];
    assert_int_equal(parse(&c, "{\"queue\":\"mail\",\"name\":\"notify\",\"prefix\":\"{bq}\","
                               "\"attempts\":5,\"backoff\":{\"type\":\"fixed\",\"delay\":250,"
                               "\"jitter\":0.5},\"priority\":7,\"delay\":1500,"
                               "\"removeOnComplete\":true,\"removeOnFail\":100,\"dedupTtl\":0,"
                               "\"$comment\":\"ignored\"}", 0, e, sizeof(e)), 0);
    assert_string_equal(c.queue, "mail");
    assert_string_equal(c.prefix, "{bq}");
    char *opts = rc_jobs_opts_json(&c, "a\"b\\c\xc3\xbc");
    assert_string_equal(opts, "{\"attempts\":5,\"backoff\":{\"type\":\"fixed\",\"delay\":250,"
                              "\"jitter\":0.5},\"delay\":1500,\"priority\":7,"
                              "\"removeOnComplete\":true,\"removeOnFail\":100,"
                              "\"jobId\":\"a\\\"b\\\\c\xc3\xbc\"}");
    rc_free(opts);
    rc_jobs_config_dispose(&c);

    /* null keeps the default; false turns backoff off; a number is a fixed backoff */
    assert_int_equal(parse(&c, "{\"queue\":null,\"backoff\":false,\"removeOnFail\":false,"
                               "\"removeOnComplete\":{\"count\":0}}", 0, e, sizeof(e)), 0);
    assert_string_equal(c.queue, "email");
    assert_null(c.backoff_type);
    opts = rc_jobs_opts_json(&c, "x");
    assert_string_equal(opts, "{\"attempts\":3,\"removeOnComplete\":{\"count\":0},"
                              "\"removeOnFail\":false,\"de\":{\"id\":\"x\",\"ttl\":86400000},"
                              "\"jobId\":\"x\"}");
    rc_free(opts);
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "{\"backoff\":300}", 0, e, sizeof(e)), 0);
    assert_string_equal(c.backoff_type, "fixed");
    assert_int_equal(c.backoff_delay, 300);
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "{\"backoff\":{\"type\":\"linear\"}}", 0, e, sizeof(e)), 0);
    assert_string_equal(c.backoff_type, "linear"); /* a Worker's custom strategy */
    assert_int_equal(c.backoff_delay, 0);
    rc_jobs_config_dispose(&c);

    /* events */
    assert_int_equal(parse(&c, "{\"maxLen\":5000}", 1, e, sizeof(e)), 0);
    assert_int_equal(c.events_max_len, 5000);
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "{\"maxLen\":0,\"stream\":\"x\"}", 1, e, sizeof(e)), -1);
    assert_string_equal(e, "events.stream: unknown key\n"
                           "events.maxLen: must be an integer 1..1000000000");
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "[]", 1, e, sizeof(e)), -1);
    assert_string_equal(e, "events: must be an object");
    rc_jobs_config_dispose(&c);
    rc_config_errors errs = {0};
    rc_jobs_config_init(&c);
    assert_int_equal(rc_jobs_config_parse(&c, NULL, "jobs", &errs), 0); /* no section */
    assert_int_equal(errs.count, 0);
    rc_jobs_config_dispose(&c);
}

static void test_config_errors(void **state)
{
    rc_jobs_config c;
    char e[4096];
    assert_int_equal(parse(&c, "{\"queue\":\"a:b\",\"name\":\"\",\"prefix\":5,\"attempts\":0,"
                               "\"priority\":2097152,\"delay\":-1,\"dedupTtl\":1.5,"
                               "\"removeOnComplete\":\"yes\",\"removeOnFail\":{\"age\":-1,\"x\":1},"
                               "\"backoff\":{\"type\":\"\",\"delay\":\"1\",\"jitter\":2},"
                               "\"bogus\":1,\"attempts\":2}", 0, e, sizeof(e)), -1);
    assert_string_equal(e,
        "jobs.bogus: unknown key\n"
        "jobs.attempts: duplicate key\n"
        "jobs.queue: must not contain ':'\n"
        "jobs.name: must be a string of 1..256 bytes\n"
        "jobs.prefix: must be a string of 1..256 bytes\n"
        "jobs.attempts: must be an integer 1..1000000\n"
        "jobs.backoff.type: must be \"fixed\", \"exponential\" or the name of the Worker's custom "
        "strategy\n"
        "jobs.backoff.delay: must be an integer 0..31536000000\n"
        "jobs.backoff.jitter: must be a number 0..1\n"
        "jobs.priority: must be an integer 0..2097151\n"
        "jobs.delay: must be an integer 0..31536000000\n"
        "jobs.removeOnComplete: must be true, false, a count or {\"age\", \"count\", \"limit\"}\n"
        "jobs.removeOnFail.x: unknown key\n"
        "jobs.removeOnFail.age: must be an integer 0..31536000\n"
        "jobs.removeOnFail: needs \"age\" (seconds) or \"count\"\n"
        "jobs.dedupTtl: must be an integer 0..31536000000");
    /* what failed kept its default */
    assert_string_equal(c.queue, "email");
    assert_int_equal(c.attempts, 3);
    assert_string_equal(c.backoff_type, "exponential");
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "{\"removeOnComplete\":-3,\"backoff\":\"1s\"}", 0, e, sizeof(e)), -1);
    assert_string_equal(e,
        "jobs.backoff: must be false, a delay in ms, or {\"type\", \"delay\", \"jitter\"}\n"
        "jobs.removeOnComplete: must be true, false, a count 0..1000000000 or "
        "{\"age\", \"count\", \"limit\"}");
    rc_jobs_config_dispose(&c);
    assert_int_equal(parse(&c, "\"email\"", 0, e, sizeof(e)), -1);
    assert_string_equal(e, "jobs: must be an object");
    rc_jobs_config_dispose(&c);
}

/* ---- job ids and the script --------------------------------------------------------------- */

static void test_job_id(void **state)
{
    char id[RC_JOBS_ID_SIZE];
    assert_int_equal(rc_jobs_job_id("n-1", "{}", 2, id), 0);
    assert_string_equal(id, "n-1");
    assert_int_equal(rc_jobs_job_id("042x", "{}", 2, id), 0);
    assert_string_equal(id, "042x");
    assert_int_equal(rc_jobs_job_id("caf\xc3\xa9 1", "{}", 2, id), 0); /* spaces, UTF-8: fine */
    assert_string_equal(id, "caf\xc3\xa9 1");
    assert_int_equal(rc_jobs_job_id("mail-\xf0\x9f\x93\xa7", "{}", 2, id), 0);
    static const struct { const char *in, *out; } derived[] = {
        {"42", "n-92cfceb39d57d914ed8b14d0e37643de0797ae56"},   /* an integer */
        {"-7", "n-565e8bd101bd602536fe79ba40584a1561da3581"},
        {"a:b", "n-dcea6d9ccd3d20ba1549f6d9b5dde60742158882"},  /* ':' */
        {"meta", "n-cb030491157b26a570b6ee91e5b068d99c3b72f6"}, /* a queue key */
        {"a\x01" "b", "n-493640e343952a777b37ae0cb5e14b4c90c19402"},
        {"\xff", "n-85e53271e14006f0265921d02d4d736cdc580b0b"},          /* not UTF-8 */
        {"\xc3(", "n-697b8464bab71c2dcfe41d944b4c5b1ed2b6ebf9"},
        {"\xed\xa0\x80", "n-10db70ec072d000c68dd95879f9b831e43a859fd"},                                    /* a surrogate */
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(derived); i++) {
        assert_int_equal(rc_jobs_job_id(derived[i].in, "{}", 2, id), 1);
        assert_string_equal(id, derived[i].out);
    }
    char longid[RC_JOBS_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(rc_jobs_job_id(longid, "{}", 2, id), 1);
    assert_string_equal(id, "n-2699b675922cc84a9b0dfd926eb7f8211c78693d");
    longid[RC_JOBS_ID_MAX] = '\0'; /* exactly the limit: kept */
    assert_int_equal(rc_jobs_job_id(longid, "{}", 2, id), 0);
    assert_int_equal(strlen(id), RC_JOBS_ID_MAX);
    assert_int_equal(rc_jobs_job_id("", "{}", 2, id), 1);
    assert_int_equal(strncmp(id, "n-", 2), 0);
    /* no id: the hash of the notification's bytes, so every node derives the same */
    const char *n = "{\"user\":\"5\",\"event\":\"e\"}";
    assert_int_equal(rc_jobs_job_id(NULL, n, strlen(n), id), 1);
    assert_string_equal(id, "n-c1fd7846cf47b41dd7d3490b3715c2a9a6bcb831");
}

static void test_script_format(void **state)
{
    /* test/jobs/lib/script.js reads the script out of jobs_lua.h: no '"' or '\' inside */
    const char *s = rc_jobs_notify_offline_lua;
    assert_null(strchr(s, '"'));
    assert_null(strchr(s, '\\'));
    assert_non_null(strstr(s, "redis.call"));
    assert_int_equal(s[strlen(s) - 1], '\n');
}

/* ---- on a real Redis ---------------------------------------------------------------------- */

#include "redis_loop.h"
static int bp_up;

static void on_state(void *arg, int up)
{
    bp_up = up;
}



static int is_up(void *arg)
{
    return bp_up;
}

typedef struct outcome {
    int n;
    int status[8];
    const char *reason[8];
} outcome;

static void on_done(void *arg, int status, const char *reason)
{
    outcome *o = arg;
    assert_true(o->n < 8);
    o->status[o->n] = status;
    o->reason[o->n++] = reason;
}

typedef struct want_n {
    outcome *o;
    int n;
} want_n;

static int has_n(void *arg)
{
    want_n *w = arg;
    return w->o->n >= w->n;
}

static void wait_outcomes(outcome *o, int n)
{
    want_n w = {o, n};
    if (!run_until(has_n, &w, 5000)) fail_msg("want %d outcomes, have %d", n, o->n);
}

static rc_backplane *bp_start(const char *prefix, rc_config *cfg, char *url, size_t urlsize)
{
    rc_backplane_callbacks cb = {.on_state = on_state};
    snprintf(url, urlsize, "redis://127.0.0.1:%d", shared.port);
    memset(cfg, 0, sizeof(*cfg));
    cfg->redis_url = url;
    cfg->prefix = (char *)prefix;
    cfg->node_id = (char *)"node-a";
    bp_up = 0;
    rc_backplane_redis_settings rs = {.url = cfg->redis_url, .prefix = cfg->prefix, .node_id = cfg->node_id};
    rc_backplane *bp = rc_backplane_redis_new(base, &rs, &cb);
    assert_non_null(bp);
    if (!run_until(is_up, NULL, 3000)) fail_msg("backplane not up");
    return bp;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static const char *hget(const redisReply *h, const char *field)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, field) == 0) return h->element[i + 1]->str;
    return NULL;
}

/* The value of one sample line "name value" (name may carry labels). */
static double metric(const rc_jobs *j, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    rc_jobs_write_metrics(j, out);
    size_t len = evbuffer_get_length(out);
    char *text = rc_malloc(len + 1);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    evbuffer_free(out);
    char key[160];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    double v = p ? atof(p + strlen(key)) : -1;
    rc_free(text);
    return v;
}

static void test_handoff(void **state)
{
    rc_config cfg;
    char url[64];
    rc_backplane *bp = bp_start("tj", &cfg, url, sizeof(url));
    rc_jobs_config jc;
    rc_jobs_config_init(&jc);
    rc_jobs *j = rc_jobs_new(&jc, bp);
    redisContext *c = rh_client(&shared);
    outcome o = {0};
    uint64_t jobs_before = (uint64_t)metric(j, "roomcast_jobs_added_total");

    const char *n1 = "{\"id\":\"n-1\",\"user\":\"42\",\"ns\":\"/\",\"event\":\"notification\","
                     "\"data\":{\"title\":\"Hi\"}}";
    uint64_t t0 = rc_now_wall_ms();
    assert_int_equal(rc_jobs_notify_offline(j, "42", "n-1", n1, strlen(n1), on_done, &o), 0);
    assert_int_equal(o.n, 0); /* never from inside the call */
    assert_int_equal(rc_jobs_notify_offline(j, "42", "n-1", n1, strlen(n1), on_done, &o), 0);
    wait_outcomes(&o, 2);
    assert_int_equal(o.status[0], RC_JOBS_ADDED);
    assert_ptr_equal(o.reason[0], rc_jobs_reason_added);
    assert_int_equal(o.status[1], RC_JOBS_NOT_ADDED);
    assert_ptr_equal(o.reason[1], rc_jobs_reason_duplicate);
    assert_int_equal((uint64_t)metric(j, "roomcast_jobs_added_total"), jobs_before + 1);

    /* the job hash: what bullmq's Queue.add writes */
    redisReply *h = cmd(c, "HGETALL bull:email:n-1");
    assert_int_equal(h->elements, 14);
    assert_string_equal(hget(h, "name"), "send-email");
    assert_string_equal(hget(h, "data"), n1);
    char *opts = rc_jobs_opts_json(&jc, "n-1");
    assert_string_equal(hget(h, "opts"), opts);
    rc_free(opts);
    uint64_t ts = strtoull(hget(h, "timestamp"), NULL, 10);
    assert_true(ts >= t0 && ts <= rc_now_wall_ms());
    assert_string_equal(hget(h, "delay"), "0");
    assert_string_equal(hget(h, "priority"), "0");
    assert_string_equal(hget(h, "deid"), "n-1");
    freeReplyObject(h);
    redisReply *r = cmd(c, "LRANGE bull:email:wait 0 -1");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "n-1");
    freeReplyObject(r);
    r = cmd(c, "ZSCORE bull:email:marker 0");
    assert_string_equal(r->str, "0");
    freeReplyObject(r);
    r = cmd(c, "GET bull:email:id");
    assert_string_equal(r->str, "2");
    freeReplyObject(r);
    r = cmd(c, "PTTL bull:email:de:n-1");
    assert_true(r->integer > 86000000);
    freeReplyObject(r);
    r = cmd(c, "XRANGE bull:email:events - +");
    assert_int_equal(r->elements, 3);
    static const char *const evs[] = {"added", "waiting", "duplicated"};
    for (size_t i = 0; i < 3; i++) {
        redisReply *kv = r->element[i]->element[1];
        assert_string_equal(kv->element[0]->str, "event");
        assert_string_equal(kv->element[1]->str, evs[i]);
        assert_string_equal(kv->element[3]->str, "n-1");
    }
    freeReplyObject(r);

    /* online on another node: nothing written; no id: derived from the bytes */
    freeReplyObject(cmd(c, "SADD tj:presence:7 node-b:abc"));
    const char *n2 = "{\"user\":\"7\",\"event\":\"x\"}";
    assert_int_equal(rc_jobs_notify_offline(j, "7", NULL, n2, strlen(n2), on_done, &o), 0);
    assert_int_equal(rc_jobs_notify_offline(j, "8", NULL, n2, strlen(n2), NULL, NULL), 0);
    assert_int_equal(rc_jobs_notify_offline(j, "9", "77", n2, strlen(n2), on_done, &o), 0);
    wait_outcomes(&o, 4);
    assert_ptr_equal(o.reason[2], rc_jobs_reason_online);
    assert_int_equal(o.status[2], RC_JOBS_NOT_ADDED);
    assert_ptr_equal(o.reason[3], rc_jobs_reason_added);
    char id[RC_JOBS_ID_SIZE];
    rc_jobs_job_id(NULL, n2, strlen(n2), id);
    r = cmd(c, "LRANGE bull:email:wait 0 -1");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[1]->str, id);
    rc_jobs_job_id("77", NULL, 0, id);
    assert_string_equal(r->element[0]->str, id);
    assert_string_equal(r->element[2]->str, "n-1");
    freeReplyObject(r);
    r = cmd(c, "EXISTS bull:email:77");
    assert_int_equal(r->integer, 0); /* "77" is an integer: BullMQ would refuse it as a custom id */
    freeReplyObject(r);
    r = cmd(c, "HGET bull:email:%s name", id);
    assert_string_equal(r->str, "send-email");
    freeReplyObject(r);

    assert_int_equal((int)metric(j, "roomcast_jobs_skipped_total{reason=\"online\"}"), 1);
    assert_int_equal((int)metric(j, "roomcast_jobs_skipped_total{reason=\"duplicate\"}"), 1);
    assert_int_equal((int)metric(j, "roomcast_jobs_failures_total"), 0);
    assert_int_equal((uint64_t)metric(j, "roomcast_jobs_added_total"), jobs_before + 3);

    /* a script error reaches the callback as a failure, counted */
    freeReplyObject(cmd(c, "SET bull:email:wait not-a-list"));
    assert_int_equal(rc_jobs_notify_offline(j, "10", "n-wrongtype", n2, strlen(n2), on_done, &o), 0);
    wait_outcomes(&o, 5);
    assert_int_equal(o.status[4], RC_JOBS_ERROR);
    assert_ptr_equal(o.reason[4], rc_jobs_reason_failed);
    assert_int_equal((int)metric(j, "roomcast_jobs_failures_total"), 1);
    /* an empty user is refused without sending */
    assert_int_equal(rc_jobs_notify_offline(j, "", "n-9", n2, strlen(n2), on_done, &o), -1);
    assert_int_equal((int)metric(j, "roomcast_jobs_failures_total"), 2);

    redisFree(c);
    rc_jobs_free(j);
    rc_jobs_config_dispose(&jc);
    bp->ops->free(bp);
}

static void test_delayed_and_prioritized(void **state)
{
    rc_config cfg;
    char url[64];
    rc_backplane *bp = bp_start("tk", &cfg, url, sizeof(url));
    rc_jobs_config jc;
    rc_config_errors errs = {0};
    cJSON *json = cJSON_Parse("{\"queue\":\"q2\",\"prefix\":\"{b}\",\"delay\":5000,\"priority\":3}");
    rc_jobs_config_init(&jc);
    assert_int_equal(rc_jobs_config_parse(&jc, json, "jobs", &errs), 0);
    cJSON_Delete(json);
    rc_jobs *j = rc_jobs_new(&jc, bp);
    outcome o = {0};
    uint64_t t0 = rc_now_wall_ms();
    assert_int_equal(rc_jobs_notify_offline(j, "u", "d-1", "{}", 2, on_done, &o), 0);
    wait_outcomes(&o, 1);
    assert_int_equal(o.status[0], RC_JOBS_ADDED);
    rc_jobs_free(j);
    rc_jobs_config_dispose(&jc);

    redisContext *c = rh_client(&shared);
    redisReply *r = cmd(c, "HMGET {b}:q2:d-1 delay priority timestamp");
    assert_string_equal(r->element[0]->str, "5000");
    assert_string_equal(r->element[1]->str, "3");
    uint64_t ts = strtoull(r->element[2]->str, NULL, 10);
    assert_true(ts >= t0);
    freeReplyObject(r);
    r = cmd(c, "ZSCORE {b}:q2:delayed d-1");
    assert_true(strtod(r->str, NULL) == (double)((ts + 5000) * 4096));
    freeReplyObject(r);
    r = cmd(c, "ZSCORE {b}:q2:marker 1");
    assert_true(strtoull(r->str, NULL, 10) == ts + 5000);
    freeReplyObject(r);
    r = cmd(c, "EXISTS {b}:q2:wait {b}:q2:prioritized"); /* a worker promotes it when due */
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(c);
    bp->ops->free(bp);
}

static void wait_forwarded(const rc_jobs *j, int n)
{
    uint64_t end = rc_now_mono_ms() + 3000;
    while (metric(j, "roomcast_events_forwarded_total") < n && rc_now_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal((int)metric(j, "roomcast_events_forwarded_total"), n);
}

static void test_forward_event(void **state)
{
    rc_config cfg;
    char url[64];
    rc_backplane *bp = bp_start("tf", &cfg, url, sizeof(url));
    rc_jobs_config jc;
    rc_jobs_config_init(&jc);
    jc.events_max_len = 100;
    rc_jobs *j = rc_jobs_new(&jc, bp);
    redisContext *c = rh_client(&shared);
    freeReplyObject(cmd(c, "XGROUP CREATE tf:events backends $ MKSTREAM"));

    const char data[] = "{\"text\":\"hi\",\"bin\":\"\\u0000\"}";
    rc_jobs_event ev = {.ns = "/chat", .event = "message", .user = "42", .sid = "sid-1",
                        .node = "node-a", .data_json = data, .data_len = sizeof(data) - 1,
                        .ts_ms = 1700000000123ULL};
    assert_int_equal(rc_jobs_forward_event(j, &ev), 0);
    rc_jobs_event anon = {.ns = "/", .event = "ping"}; /* no user, no data, ts now */
    assert_int_equal(rc_jobs_forward_event(j, &anon), 0);
    wait_forwarded(j, 2);
    assert_int_equal((int)metric(j, "roomcast_events_forward_failures_total"), 0);

    redisReply *r = cmd(c, "XREADGROUP GROUP backends w1 COUNT 2 STREAMS tf:events >");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    redisReply *entries = r->element[0]->element[1];
    assert_int_equal(entries->elements, 2);
    redisReply *kv = entries->element[0]->element[1];
    const char *const want[] = {"ns", "/chat", "event", "message", "user", "42", "sid", "sid-1",
                                       "node", "node-a", "data", data, "ts", "1700000000123"};
    assert_int_equal(kv->elements, 14);
    for (size_t i = 0; i < 14; i++) assert_string_equal(kv->element[i]->str, want[i]);
    kv = entries->element[1]->element[1];
    assert_string_equal(kv->element[5]->str, "");     /* user */
    assert_string_equal(kv->element[11]->str, "null"); /* data */
    uint64_t ts = strtoull(kv->element[13]->str, NULL, 10);
    assert_true(ts > 1700000000123ULL);
    freeReplyObject(r);

    for (int i = 0; i < 1000; i++) assert_int_equal(rc_jobs_forward_event(j, &anon), 0);
    wait_forwarded(j, 1002);
    r = cmd(c, "XLEN tf:events");
    assert_true(r->integer >= 100 && r->integer < 300); /* MAXLEN ~ 100 */
    freeReplyObject(r);
    redisFree(c);
    rc_jobs_free(j);
    rc_jobs_config_dispose(&jc);
    bp->ops->free(bp);
}

static void test_failures_and_free(void **state)
{
    rc_jobs_config jc;
    rc_jobs_config_init(&jc);

    /* the embedded backplane: no Redis, every call refused and counted */
    rc_backplane_callbacks cb = {.on_state = on_state};
    rc_backplane *local = rc_backplane_local_new(base, &cb);
    rc_jobs *j = rc_jobs_new(NULL, local); /* NULL: the defaults */
    outcome o = {0};
    assert_int_equal(rc_jobs_notify_offline(j, "1", "n-1", "{}", 2, on_done, &o), -1);
    rc_jobs_event ev = {.ns = "/", .event = "e"};
    assert_int_equal(rc_jobs_forward_event(j, &ev), -1);
    assert_int_equal((int)metric(j, "roomcast_jobs_failures_total"), 1);
    assert_int_equal((int)metric(j, "roomcast_events_forward_failures_total"), 1);
    rc_jobs_free(j);
    local->ops->free(local);
    assert_int_equal((int)metric(NULL, "roomcast_events_forwarded_total"), 0);

    /* freed with replies in flight: they are absorbed, no callback, no leak (ASan) */
    rc_config cfg;
    char url[64];
    rc_backplane *bp = bp_start("tg", &cfg, url, sizeof(url));
    j = rc_jobs_new(&jc, bp);
    assert_int_equal(rc_jobs_notify_offline(j, "1", "n-1", "{}", 2, on_done, &o), 0);
    assert_int_equal(rc_jobs_forward_event(j, &ev), 0);
    rc_jobs_free(j);
    for (int i = 0; i < 20; i++) event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(o.n, 0);
    /* and freed before the backplane: the backplane answers what is left with NULL */
    j = rc_jobs_new(&jc, bp);
    assert_int_equal(rc_jobs_notify_offline(j, "1", "n-2", "{}", 2, on_done, &o), 0);
    rc_jobs_free(j);
    bp->ops->free(bp);
    assert_int_equal(o.n, 0);

    /* Redis gone: refused while down; an unanswered call fails with the connection */
    rh_server own;
    assert_int_equal(rh_start(&own, rh_free_port(), NULL), 0);
    rc_backplane_callbacks cb2 = {.on_state = on_state};
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", own.port);
    cfg.redis_url = url;
    bp_up = 0;
    bp = rc_backplane_redis_new(base, &(rc_backplane_redis_settings){.url = cfg.redis_url, .prefix = cfg.prefix, .node_id = cfg.node_id}, &cb2);
    assert_true(run_until(is_up, NULL, 3000));
    j = rc_jobs_new(&jc, bp);
    rh_signal(&own, SIGSTOP);
    assert_int_equal(rc_jobs_notify_offline(j, "1", "n-3", "{}", 2, on_done, &o), 0);
    wait_outcomes(&o, 1); /* the backplane's command timeout */
    assert_int_equal(o.status[0], RC_JOBS_ERROR);
    assert_ptr_equal(o.reason[0], rc_jobs_reason_failed);
    assert_int_equal(rc_jobs_notify_offline(j, "1", "n-4", "{}", 2, on_done, &o), -1);
    assert_int_equal((int)metric(j, "roomcast_jobs_failures_total"), 2);
    rh_kill(&own);
    rc_jobs_free(j);
    bp->ops->free(bp);
    rc_jobs_config_dispose(&jc);
}

/* ---- main ---------------------------------------------------------------------------------- */


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_job_id),
        cmocka_unit_test(test_script_format),
        cmocka_unit_test_setup_teardown(test_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_and_prioritized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forward_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_and_free, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
