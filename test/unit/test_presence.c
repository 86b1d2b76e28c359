/*
 * test_presence.c: presence against a real redis-server (no mocks), with two or three
 * in-process "nodes" (a Redis backplane + a presence instance each, distinct node ids) on one
 * event loop, and the embedded implementation against the same expectations.
 *
 * What Redis publishes is checked with an independent async hiredis client that PSUBSCRIBEs
 * P:status:* (so "published once" means once on the wire, not once per node), and what Redis
 * holds with a blocking client. Short timings: ttl 600 ms, heartbeat 200 ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_harness.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/errors.h"
#include "roomcast/log.h"
#include "roomcast/presence.h"
#include "roomcast/redis_cmd.h"

#include "redis_loop.h"
static const rc_presence_config fast = {.ttl_ms = 600, .heartbeat_ms = 200};

/* ---- a growable list of event strings ----------------------------------------------------- */

typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

static void sl_add(strlist *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sl_add(strlist *l, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = rc_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = rc_strdup(buf);
}

static size_t sl_count(const strlist *l, const char *s)
{
    size_t c = 0;
    for (size_t i = 0; i < l->n; i++) c += strcmp(l->v[i], s) == 0;
    return c;
}

static size_t sl_count_prefix(const strlist *l, const char *s)
{
    size_t c = 0, n = strlen(s);
    for (size_t i = 0; i < l->n; i++) c += strncmp(l->v[i], s, n) == 0;
    return c;
}

static void sl_clear(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) rc_free(l->v[i]);
    rc_free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- nodes ---------------------------------------------------------------------------------- */

typedef struct pnode {
    rc_config cfg;
    rc_backplane *bp;
    rc_presence *pr;
    int up, ups;
    uint64_t up_at_ms;
    strlist status;   /* "u1 0 w=7,8" per on_status */
    strlist members;  /* "/m r1 u1 1" per on_member */
    /* last on_query / on_members */
    int nanswers, err;
    uint64_t tag;
    size_t n, total;
    char answer[16384];
    int drained, drained_err;
} pnode;

static void n_on_status(void *arg, const char *user, int online, uint64_t ts, const uint64_t *w,
                        size_t nw)
{
    pnode *n = arg;
    char ids[256];
    size_t off = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < nw && off < sizeof(ids); i++)
        off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%" PRIu64, i ? "," : "", w[i]);
    assert_true(ts > 0);
    sl_add(&n->status, "%s %d w=%s", user, online, ids);
}

static void n_on_member(void *arg, const char *ns, const char *room, const char *user, int joined)
{
    sl_add(&((pnode *)arg)->members, "%s %s %s %d", ns, room, user, joined);
}

static void n_on_query(void *arg, uint64_t tag, int err, const char *const *users,
                       const unsigned char *online, size_t count)
{
    pnode *n = arg;
    size_t off = 0;
    n->nanswers++;
    n->tag = tag;
    n->err = err;
    n->n = count;
    n->answer[0] = '\0';
    for (size_t i = 0; !err && i < count && off < sizeof(n->answer); i++)
        off += (size_t)snprintf(n->answer + off, sizeof(n->answer) - off, "%s%s=%d", i ? " " : "",
                                users[i], online[i]);
}

static void n_on_members(void *arg, uint64_t tag, int err, const char *ns, const char *room,
                         const char *const *users, size_t count, size_t total)
{
    pnode *n = arg;
    size_t off = 0;
    n->nanswers++;
    n->tag = tag;
    n->err = err;
    n->n = count;
    n->total = total;
    n->answer[0] = '\0';
    for (size_t i = 0; i < count && off < sizeof(n->answer); i++)
        off += (size_t)snprintf(n->answer + off, sizeof(n->answer) - off, "%s%s", i ? " " : "", users[i]);
}

static void n_on_drained(void *arg, int err)
{
    pnode *n = arg;
    n->drained++;
    n->drained_err = err;
}

static void bp_on_message(void *arg, const rc_bp_message *m)
{
}

static void bp_on_state(void *arg, int up)
{
    pnode *n = arg;
    n->up = up;
    if (up) {
        n->ups++;
        n->up_at_ms = rc_now_mono_ms();
    }
    rc_presence_on_state(n->pr, up);
}

static void bp_on_raw(void *arg, const char *channel, const char *payload, size_t len)
{
    pnode *n = arg;
    assert_int_equal(rc_presence_on_raw(n->pr, channel, payload, len), 1);
}

/* url NULL: the embedded backplane. */
static void node_start(pnode *n, const char *url, const char *prefix, const char *id,
                       const rc_presence_config *cfg)
{
    rc_backplane_callbacks bcb = {.on_message = bp_on_message, .on_state = bp_on_state,
                                  .on_raw = bp_on_raw, .arg = n};
    rc_presence_callbacks pcb = {.on_status = n_on_status, .on_member = n_on_member,
                                 .on_query = n_on_query, .on_members = n_on_members,
                                 .on_drained = n_on_drained, .arg = n};
    memset(n, 0, sizeof(*n));
    n->cfg.redis_url = (char *)url;
    n->cfg.prefix = (char *)prefix;
    n->cfg.node_id = (char *)id;
    rc_backplane_redis_settings rs = {.url = url, .prefix = prefix, .node_id = id};
    n->bp = url ? rc_backplane_redis_new(base, &rs, &bcb) : rc_backplane_local_new(base, &bcb);
    assert_non_null(n->bp);
    n->pr = rc_presence_new(base, n->bp, id, cfg, &pcb);
    assert_non_null(n->pr);
}

/* No drain: as if the process died (its entries stay in Redis for the others to sweep). */
static void node_kill(pnode *n)
{
    if (n->pr) rc_presence_free(n->pr);
    if (n->bp) n->bp->ops->free(n->bp);
    n->pr = NULL;
    n->bp = NULL;
    sl_clear(&n->status);
    sl_clear(&n->members);
}

/* ---- loop helpers ----------------------------------------------------------------------------- */



static int never(void *arg)
{
    return 0;
}

static void run_for(int ms)
{
    run_until(never, NULL, ms);
}

static int answered(void *arg)
{
    return ((pnode *)arg)->nanswers > 0;
}

static void wait_answer(pnode *n)
{
    if (!run_until(answered, n, 3000)) fail_msg("no answer on %s", n->cfg.node_id);
    n->nanswers = 0;
}

/* Blocking client helpers. */
static long long redis_int(const rh_server *s, const char *fmt, ...)
{
    redisContext *c = rh_client(s);
    long long v = -2;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_INTEGER) v = r->integer;
    else if (r && r->type == REDIS_REPLY_NIL) v = -1;
    else if (r && r->type == REDIS_REPLY_STRING) v = atoll(r->str);
    if (r) freeReplyObject(r);
    redisFree(c);
    return v;
}

typedef struct reg_q {
    const rh_server *s;
    const char *prefix, *node;
} reg_q;

static int registered(void *arg)
{
    reg_q *q = arg;
    return redis_int(q->s, "ZSCORE %s:nodes %s", q->prefix, q->node) > 0;
}

/* Up, and the node's heartbeat is in P:nodes (its first registration went through). */
static void wait_live(const rh_server *s, pnode *n)
{
    reg_q q = {s, n->cfg.prefix, n->cfg.node_id};
    if (!run_until(registered, &q, 5000)) fail_msg("%s never registered", n->cfg.node_id);
    run_for(30); /* the registration batch behind the heartbeat */
}

/* ---- the independent observer: PSUBSCRIBE P:status:* ------------------------------------------ */

typedef struct observer {
    redisAsyncContext *ac;
    strlist msgs; /* "u1 1" per status message, from its JSON */
    int subscribed;
} observer;

static void obs_on_msg(redisAsyncContext *ac, void *r, void *privdata)
{
    observer *o = privdata;
    redisReply *reply = r;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    if (strcmp(reply->element[0]->str, "psubscribe") == 0) {
        o->subscribed = 1;
        return;
    }
    if (reply->elements != 4) return;
    cJSON *j = cJSON_Parse(reply->element[3]->str);
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(j, "user");
    const cJSON *online = cJSON_GetObjectItemCaseSensitive(j, "online");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "ts");
    assert_true(cJSON_IsString(user) && cJSON_IsBool(online) && cJSON_IsNumber(ts));
    /* the channel names the same user as the payload */
    const char *ch = reply->element[2]->str;
    assert_string_equal(strstr(ch, ":status:") + 8, user->valuestring);
    sl_add(&o->msgs, "%s %d", user->valuestring, cJSON_IsTrue(online));
    cJSON_Delete(j);
}

static int obs_ready(void *arg)
{
    return ((observer *)arg)->subscribed;
}

static void obs_start(observer *o, const rh_server *s, const char *prefix)
{
    char pattern[64];
    memset(o, 0, sizeof(*o));
    o->ac = redisAsyncConnect("127.0.0.1", s->port);
    assert_non_null(o->ac);
    assert_int_equal(o->ac->err, 0);
    redisLibeventAttach(o->ac, base);
    snprintf(pattern, sizeof(pattern), "%s:status:*", prefix);
    redisAsyncCommand(o->ac, obs_on_msg, o, "PSUBSCRIBE %s", pattern);
    if (!run_until(obs_ready, o, 3000)) fail_msg("observer not subscribed");
}

static void obs_stop(observer *o)
{
    if (o->ac) redisAsyncFree(o->ac);
    o->ac = NULL;
    sl_clear(&o->msgs);
}

typedef struct count_q {
    const strlist *l;
    const char *what;
    size_t want;
} count_q;

static int count_reached(void *arg)
{
    count_q *q = arg;
    return sl_count(q->l, q->what) >= q->want;
}

static void wait_count(const strlist *l, const char *what, size_t want, int timeout_ms)
{
    count_q q = {l, what, want};
    if (!run_until(count_reached, &q, timeout_ms))
        fail_msg("want %zu x \"%s\", have %zu", want, what, sl_count(l, what));
}

static double metric(rc_presence *pr, rc_backplane *bp, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    char key[160];
    double v = -1;
    if (pr) rc_presence_write_metrics(pr, out);
    if (bp) bp->ops->write_metrics(bp, out);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    if (p) v = strtod(p + strlen(key), NULL);
    else if (strncmp(text, key + 1, strlen(key + 1)) == 0) v = strtod(text + strlen(key + 1), NULL);
    evbuffer_free(out);
    return v;
}

static void query1(pnode *n, const char *user, const char *want)
{
    const char *u[1] = {user};
    assert_int_equal(rc_presence_query(n->pr, u, 1, 77), 0);
    wait_answer(n);
    assert_int_equal(n->err, 0);
    assert_int_equal(n->tag, 77);
    assert_string_equal(n->answer, want);
}

static void members_of(pnode *n, const char *ns, const char *room, const char *want)
{
    assert_int_equal(rc_presence_members(n->pr, ns, room, 5), 0);
    wait_answer(n);
    assert_int_equal(n->err, 0);
    assert_string_equal(n->answer, want);
}

/* ---- fixtures ------------------------------------------------------------------------------------ */


static char *url_for(const rh_server *s, char *buf, size_t size)
{
    snprintf(buf, size, "redis://127.0.0.1:%d", s->port);
    return buf;
}

/* ---- tests: config ------------------------------------------------------------------------------- */

static void test_config(void **state)
{
    rc_presence_config c;
    rc_config_errors errs = {0};
    assert_int_equal(rc_presence_config_parse(&c, NULL, "presence", &errs), 0);
    assert_int_equal(c.ttl_ms, 15000);
    assert_int_equal(c.heartbeat_ms, 5000);

    cJSON *j = cJSON_Parse("{\"ttl\":600,\"heartbeat\":200,\"$comment\":\"fast\"}");
    assert_int_equal(rc_presence_config_parse(&c, j, "presence", &errs), 0);
    assert_int_equal(c.ttl_ms, 600);
    assert_int_equal(c.heartbeat_ms, 200);
    assert_int_equal(errs.count, 0);
    cJSON_Delete(j);

    static const char *const bad[][2] = {
        {"{\"ttl\":0}", "presence.ttl: must be an integer 1..86400000 (ms)"},
        {"{\"heartbeat\":1.5}", "presence.heartbeat: must be an integer 1..86400000 (ms)"},
        {"{\"ttl\":\"15s\"}", "presence.ttl: must be an integer 1..86400000 (ms)"},
        {"{\"ttl\":1000,\"heartbeat\":600}", "presence.ttl: must be at least twice the heartbeat"},
        {"{\"tll\":1000}", "presence.tll: unknown key"},
        {"[1]", "presence: must be an object"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        j = cJSON_Parse(bad[i][0]);
        assert_int_equal(rc_presence_config_parse(&c, j, "presence", &errs), -1);
        assert_int_equal(errs.count, 1);
        assert_memory_equal(errs.items[0], bad[i][1], strlen(bad[i][1]));
        assert_int_equal(c.ttl_ms, 15000); /* defaults on error */
        rc_config_errors_dispose(&errs);
        cJSON_Delete(j);
    }
}

/* ---- tests: Redis ------------------------------------------------------------------------------------ */

/* Must show (docs/redis.md, "Presence"): two devices on two nodes -> online until the second
 * disconnects; the offline event is published once and reaches each watcher on any node once. */
static void test_two_devices_two_nodes(void **state)
{
    char url[64];
    pnode a, b, c;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p1", "node-a", &fast);
    node_start(&b, url, "p1", "node-b", &fast);
    node_start(&c, url, "p1", "node-c", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    wait_live(&shared, &c);
    obs_start(&o, &shared, "p1");

    /* watchers: two sockets on c, one on a */
    assert_int_equal(rc_presence_watch(c.pr, 7, "u1"), 0);
    assert_int_equal(rc_presence_watch(c.pr, 8, "u1"), 0);
    assert_int_equal(rc_presence_watch(c.pr, 8, "u1"), 0); /* repeat: no-op */
    assert_int_equal(rc_presence_watch(a.pr, 9, "u1"), 0);
    assert_int_equal(rc_presence_watch(a.pr, 0, "u1"), RC_PRESENCE_EINVAL);
    run_for(100); /* SUBSCRIBE p1:status:u1 on a and c */
    assert_int_equal(rh_numsub(&shared, "p1:status:u1"), 2); /* a and c (not the observer's pattern) */

    assert_int_equal(rc_presence_connect(a.pr, "u1", "sa1"), 0);
    assert_int_equal(rc_presence_connect(a.pr, "u1", "sa1"), RC_PRESENCE_ESTATE);
    assert_int_equal(rc_presence_connect(b.pr, "u1", "sb1"), 0);
    assert_int_equal(rc_presence_connect(b.pr, "", "sb2"), RC_PRESENCE_EINVAL);
    wait_count(&o.msgs, "u1 1", 1, 2000);
    wait_count(&c.status, "u1 1 w=8,7", 1, 2000);
    wait_count(&a.status, "u1 1 w=9", 1, 2000);
    query1(&c, "u1", "u1=1");
    assert_int_equal(redis_int(&shared, "SCARD p1:presence:u1"), 2);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_online_users"), 1);

    rc_presence_disconnect(a.pr, "sa1");
    rc_presence_disconnect(a.pr, "sa1"); /* unknown now: no-op */
    run_for(100);
    query1(&c, "u1", "u1=1");
    query1(&a, "u1", "u1=1");
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_online_users"), 0);

    rc_presence_disconnect(b.pr, "sb1");
    wait_count(&o.msgs, "u1 0", 1, 2000);
    wait_count(&c.status, "u1 0 w=8,7", 1, 2000);
    wait_count(&a.status, "u1 0 w=9", 1, 2000);
    query1(&b, "u1", "u1=0");
    run_for(300);
    assert_int_equal(o.msgs.n, 2); /* one online, one offline: nothing else on the wire */
    assert_int_equal(c.status.n, 2);
    assert_int_equal(a.status.n, 2);
    assert_int_equal(b.status.n, 0); /* b watches nobody */
    assert_int_equal(redis_int(&shared, "EXISTS p1:presence:u1"), 0);
    assert_int_equal(redis_int(&shared, "HLEN p1:node:node-a:conns"), 0);

    /* unwatch: the last watcher on a node unsubscribes it */
    rc_presence_unwatch(c.pr, 7, "u1");
    rc_presence_unwatch_all(c.pr, 8);
    rc_presence_unwatch_all(c.pr, 8);
    run_for(100);
    assert_int_equal(rh_numsub(&shared, "p1:status:u1"), 1);
    assert_int_equal(metric(c.pr, NULL, "roomcast_presence_watched_users"), 0);
    assert_true(metric(a.pr, NULL, "roomcast_presence_operations_total{op=\"connect\"}") == 1);

    obs_stop(&o);
    node_kill(&a);
    node_kill(&b);
    node_kill(&c);
}

/* Must show (docs/redis.md, "Presence"): a node killed without cleanup: each user only on it is
 * reported offline within TTL + one heartbeat, its entries and memberships are gone from Redis;
 * users also connected elsewhere stay online. */
static void test_node_killed(void **state)
{
    char url[64];
    pnode a, b;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p2", "node-a", &fast);
    node_start(&b, url, "p2", "node-b", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    obs_start(&o, &shared, "p2");
    rc_presence_watch(a.pr, 1, "only-b");
    rc_presence_watch(a.pr, 1, "both");

    assert_int_equal(rc_presence_connect(b.pr, "only-b", "b1"), 0);
    assert_int_equal(rc_presence_connect(b.pr, "only-b", "b2"), 0);
    assert_int_equal(rc_presence_connect(b.pr, "both", "b3"), 0);
    assert_int_equal(rc_presence_connect(a.pr, "both", "a1"), 0);
    assert_int_equal(rc_presence_member_add(b.pr, "b1", "/m", "meeting:1"), 0);
    assert_int_equal(rc_presence_member_add(b.pr, "b3", "/m", "meeting:1"), 0);
    assert_int_equal(rc_presence_member_add(a.pr, "a1", "/m", "meeting:1"), 0);
    wait_count(&o.msgs, "only-b 1", 1, 2000);
    wait_count(&o.msgs, "both 1", 1, 2000);
    members_of(&a, "/m", "meeting:1", "both only-b");
    run_for(50);

    uint64_t t0 = rc_now_mono_ms();
    node_kill(&b);
    wait_count(&o.msgs, "only-b 0", 1, fast.ttl_ms + fast.heartbeat_ms + 1000);
    uint64_t took = rc_now_mono_ms() - t0;
    printf("      node killed -> offline published after %" PRIu64 " ms (ttl %d + heartbeat %d)\n",
           took, fast.ttl_ms, fast.heartbeat_ms);
    assert_true(took <= (uint64_t)(fast.ttl_ms + fast.heartbeat_ms + 100));
    wait_count(&a.status, "only-b 0 w=1", 1, 1000);
    wait_count(&a.members, "/m meeting:1 only-b 0", 1, 1000);
    run_for(300);
    assert_int_equal(sl_count(&o.msgs, "only-b 0"), 1);
    assert_int_equal(sl_count_prefix(&o.msgs, "both "), 1); /* only its "online" */
    query1(&a, "both", "both=1");
    members_of(&a, "/m", "meeting:1", "both");
    assert_int_equal(a.members.n, 1); /* "both" stayed: a's own device is still in the room */

    /* nothing of node-b is left */
    assert_int_equal(redis_int(&shared, "EXISTS p2:node:node-b:conns"), 0);
    assert_int_equal(redis_int(&shared, "EXISTS p2:node:node-b:members"), 0);
    assert_int_equal(redis_int(&shared, "ZSCORE p2:nodes node-b"), -1);
    assert_int_equal(redis_int(&shared, "SCARD p2:sweeping"), 0);
    assert_int_equal(redis_int(&shared, "EXISTS p2:presence:only-b"), 0);
    assert_int_equal(redis_int(&shared, "SCARD p2:presence:both"), 1);
    assert_int_equal(redis_int(&shared, "SISMEMBER p2:presence:both node-a:a1"), 1);
    assert_int_equal(redis_int(&shared, "HGET p2:members:/m:meeting:1 both"), 1);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_swept_connections_total"), 3);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_swept_nodes_total"), 1);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_swept_offline_total"), 1);
    obs_stop(&o);
    node_kill(&a);
}

/* Two nodes sweep the same dead node at once, over several budgeted SWEEP calls: each of its
 * 2,500 users is still reported offline exactly once. */
static void test_concurrent_sweep(void **state)
{
    char url[64], user[32], sid[32];
    pnode a, b, v;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p3", "node-a", &fast);
    node_start(&b, url, "p3", "node-b", &fast);
    node_start(&v, url, "p3", "victim", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    wait_live(&shared, &v);
    obs_start(&o, &shared, "p3");
    enum { USERS = 2500 };
    for (int i = 0; i < USERS; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        snprintf(sid, sizeof(sid), "v%d", i);
        assert_int_equal(rc_presence_connect(v.pr, user, sid), 0);
    }
    assert_int_equal(rc_presence_connect(a.pr, "u0", "a0"), 0); /* u0 is also on a */
    for (int i = 0; i < 300 && o.msgs.n < USERS; i++) run_for(10);
    assert_int_equal(o.msgs.n, USERS);

    node_kill(&v);
    uint64_t t0 = rc_now_mono_ms();
    for (int i = 0; i < 400 && o.msgs.n < 2 * USERS - 1; i++) run_for(10);
    printf("      %d users on a dead node swept by two nodes in %" PRIu64 " ms: a %.0f + b %.0f "
           "connections, %.0f + %.0f SWEEP calls\n",
           USERS, rc_now_mono_ms() - t0, metric(a.pr, NULL, "roomcast_presence_swept_connections_total"),
           metric(b.pr, NULL, "roomcast_presence_swept_connections_total"),
           metric(a.pr, NULL, "roomcast_presence_sweeps_total"),
           metric(b.pr, NULL, "roomcast_presence_sweeps_total"));
    run_for(400);
    assert_int_equal(o.msgs.n, 2 * USERS - 1); /* every user offline once, except u0 */
    assert_int_equal(sl_count(&o.msgs, "u0 0"), 0);
    assert_int_equal(sl_count(&o.msgs, "u1 0"), 1);
    assert_int_equal(sl_count(&o.msgs, "u2499 0"), 1);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_swept_connections_total") +
                         metric(b.pr, NULL, "roomcast_presence_swept_connections_total"),
                     USERS);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_swept_offline_total") +
                         metric(b.pr, NULL, "roomcast_presence_swept_offline_total"),
                     USERS - 1);
    assert_int_equal(redis_int(&shared, "EXISTS p3:node:victim:conns"), 0);
    assert_int_equal(redis_int(&shared, "SCARD p3:sweeping"), 0);
    query1(&b, "u0", "u0=1");
    obs_stop(&o);
    node_kill(&a);
    node_kill(&b);
}

/* Must show (docs/redis.md, "Presence"): Redis restarted empty: presence (and tracked members)
 * complete again within one heartbeat of the reconnect; watchers that knew keep quiet. */
static void test_redis_restart_empty(void **state)
{
    rh_server s;
    char url[64];
    pnode a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "p4", "node-a", &fast);
    node_start(&b, url, "p4", "node-b", &fast);
    wait_live(&s, &a);
    wait_live(&s, &b);
    rc_presence_watch(b.pr, 3, "ua");
    run_for(50); /* subscribed: a status published from now on reaches b */
    rc_presence_connect(a.pr, "ua", "a1");
    rc_presence_connect(a.pr, "ua", "a2");
    rc_presence_connect(b.pr, "ub", "b1");
    rc_presence_connect(b.pr, "ua", "b2");
    rc_presence_member_add(a.pr, "a1", "/", "room");
    rc_presence_member_add(b.pr, "b1", "/", "room");
    wait_count(&b.status, "ua 1 w=3", 1, 2000);
    run_for(50); /* both nodes' calls reached Redis (no ordering across connections) */
    members_of(&a, "/", "room", "ua ub");

    rh_kill(&s);
    run_for(300);
    /* while down: calls change the local tables; answers say so */
    rc_presence_connect(a.pr, "uc", "a3");
    rc_presence_disconnect(a.pr, "a2");
    const char *ua[1] = {"ua"};
    assert_int_equal(rc_presence_query(a.pr, ua, 1, 8), 0);
    assert_int_equal(a.nanswers, 0); /* never from inside the call */
    wait_answer(&a);
    assert_int_equal(a.err, RC_PRESENCE_EDOWN);
    assert_int_equal(a.tag, 8);
    assert_int_equal(rc_presence_members(a.pr, "/", "room", 9), 0);
    wait_answer(&a);
    assert_int_equal(a.err, RC_PRESENCE_EDOWN);
    assert_int_equal(rc_presence_set_visible(a.pr, "ua", 0), RC_PRESENCE_EDOWN);

    assert_int_equal(rh_start(&s, s.port, NULL), 0);
    int ups_a = a.ups, ups_b = b.ups;
    for (int i = 0; i < 800 && (a.ups == ups_a || b.ups == ups_b); i++) run_for(10);
    assert_true(a.ups > ups_a && b.ups > ups_b);
    uint64_t up = a.up_at_ms > b.up_at_ms ? a.up_at_ms : b.up_at_ms;
    /* complete again: every connection of both nodes, and the room */
    for (int i = 0; i < 100; i++) {
        if (redis_int(&s, "SCARD p4:presence:ua") == 2 && redis_int(&s, "SCARD p4:presence:ub") == 1 &&
            redis_int(&s, "SCARD p4:presence:uc") == 1 && redis_int(&s, "HLEN p4:members:/:room") == 2)
            break;
        run_for(5);
    }
    uint64_t took = rc_now_mono_ms() - up;
    printf("      Redis restarted empty -> presence complete %" PRIu64 " ms after the reconnect\n", took);
    assert_true(took < (uint64_t)fast.heartbeat_ms);
    assert_int_equal(redis_int(&s, "SISMEMBER p4:presence:ua node-a:a1"), 1);
    assert_int_equal(redis_int(&s, "SISMEMBER p4:presence:ua node-a:a2"), 0); /* closed while down */
    assert_int_equal(redis_int(&s, "SISMEMBER p4:presence:ua node-b:b2"), 1);
    assert_int_equal(redis_int(&s, "HEXISTS p4:node:node-a:conns a3"), 1); /* opened while down */
    assert_int_equal(redis_int(&s, "HEXISTS p4:node:node-a:conns a2"), 0);
    query1(&b, "uc", "uc=1");
    members_of(&b, "/", "room", "ua ub");
    run_for(fast.heartbeat_ms + 100); /* including b's read-back of the users it watches */
    /* b's watcher knew "ua" online: the re-registration's "online" is not news to it */
    assert_int_equal(b.status.n, 1);
    node_kill(&a);
    node_kill(&b);
    rh_kill(&s);
}

/* Restarts the Redis server s empty on its port and turns the loop until both nodes are up
 * again and the presence sets of users[] have the sizes in want[] (the re-registration). */
static void restart_empty(rh_server *s, pnode *a, pnode *b, const char *prefix,
                          const char *const *users, const long long *want, size_t n)
{
    rh_kill(s);
    run_for(300);
    int ups_a = a->ups, ups_b = b->ups;
    assert_int_equal(rh_start(s, s->port, NULL), 0);
    for (int i = 0; i < 800 && (a->ups == ups_a || b->ups == ups_b); i++) run_for(10);
    assert_true(a->ups > ups_a && b->ups > ups_b);
    size_t done = 0;
    for (int i = 0; i < 200 && done < n; i++) {
        done = 0;
        for (size_t k = 0; k < n; k++) done += redis_int(s, "SCARD %s:presence:%s", prefix, users[k]) == want[k];
        if (done < n) run_for(5);
    }
    assert_int_equal(done, n);
}

/* Invisibility outlives a Redis restart that lost its data. Every node holding a connection of
 * an invisible user remembers it (the node that hid them, and the others from the notes Redis
 * sends them on P:visibility:<node>), and the JOIN that re-registers the connection puts the user
 * back in P:invisible before it decides to publish "online": no watcher on any node hears
 * "online", queries answer false. A user made visible again is forgotten by every node. */
static void test_invisible_redis_restart(void **state)
{
    static const char *const users[] = {"ghost", "late", "both", "shy"};
    rh_server s;
    char url[64];
    pnode a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "p14", "node-a", &fast);
    node_start(&b, url, "p14", "node-b", &fast);
    wait_live(&s, &a);
    wait_live(&s, &b);
    for (size_t i = 0; i < RC_ARRAY_LEN(users); i++) {
        rc_presence_watch(a.pr, 7, users[i]);
        rc_presence_watch(b.pr, 8, users[i]);
    }
    run_for(50);
    rc_presence_connect(a.pr, "ghost", "g1"); /* on both nodes; a hides them, then leaves */
    rc_presence_connect(b.pr, "ghost", "g2");
    rc_presence_connect(a.pr, "both", "o1");  /* on both nodes, hidden by a, stays on both */
    rc_presence_connect(b.pr, "both", "o2");
    rc_presence_connect(a.pr, "late", "l1");  /* hidden by a before b's device comes */
    rc_presence_connect(a.pr, "shy", "s1");   /* hidden, then visible again */
    for (size_t i = 0; i < RC_ARRAY_LEN(users); i++) {
        char want[64];
        snprintf(want, sizeof(want), "%s 1 w=8", users[i]);
        wait_count(&b.status, want, 1, 2000);
    }
    for (size_t i = 0; i < RC_ARRAY_LEN(users); i++)
        assert_int_equal(rc_presence_set_visible(a.pr, users[i], 0), 0);
    wait_count(&b.status, "shy 0 w=8", 1, 2000);
    assert_int_equal(rc_presence_set_visible(a.pr, "shy", 1), 0);
    wait_count(&b.status, "shy 1 w=8", 2, 2000);
    rc_presence_connect(b.pr, "late", "l2");  /* b learns it from its own JOIN */
    run_for(50);
    rc_presence_disconnect(a.pr, "g1");       /* only b holds ghost and late now */
    rc_presence_disconnect(a.pr, "l1");
    run_for(100);
    assert_int_equal(redis_int(&s, "SCARD p14:invisible"), 3);
    size_t na = a.status.n, nb = b.status.n;
    assert_int_equal(na, 9); /* four online, four offline, shy online again */
    assert_int_equal(nb, 9);

    static const long long sizes[] = {1, 1, 2, 1};
    restart_empty(&s, &a, &b, "p14", users, sizes, RC_ARRAY_LEN(users));
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible ghost"), 1);
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible late"), 1);
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible both"), 1);
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible shy"), 0);
    const char *q[4] = {"ghost", "late", "both", "shy"};
    for (pnode *n = &a; n; n = n == &a ? &b : NULL) {
        assert_int_equal(rc_presence_query(n->pr, q, 4, 3), 0);
        wait_answer(n);
        assert_int_equal(n->err, 0);
        assert_string_equal(n->answer, "ghost=0 late=0 both=0 shy=1");
    }
    run_for(fast.ttl_ms + 2 * fast.heartbeat_ms); /* including the read-back of watched users */
    assert_int_equal(a.status.n, na);             /* no watcher heard anything */
    assert_int_equal(b.status.n, nb);

    /* Visible again (asked on b): a, which holds a device too, forgets it as well; the last
     * device of ghost leaving b makes b forget ghost (P:invisible keeps it while Redis does). */
    assert_int_equal(rc_presence_set_visible(b.pr, "both", 1), 0);
    wait_count(&a.status, "both 1 w=7", 2, 2000);
    rc_presence_disconnect(b.pr, "g2");
    run_for(100);
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible ghost"), 1);
    na = a.status.n;
    nb = b.status.n;
    static const long long sizes2[] = {0, 1, 2, 1};
    restart_empty(&s, &a, &b, "p14", users, sizes2, RC_ARRAY_LEN(users));
    assert_int_equal(redis_int(&s, "SCARD p14:invisible"), 1);
    assert_int_equal(redis_int(&s, "SISMEMBER p14:invisible late"), 1);
    query1(&a, "both", "both=1");
    query1(&b, "late", "late=0");
    run_for(fast.ttl_ms + 2 * fast.heartbeat_ms);
    assert_int_equal(a.status.n, na); /* both: known online; late: still hidden */
    assert_int_equal(b.status.n, nb);
    node_kill(&a);
    node_kill(&b);
    rh_kill(&s);
}

/* A connection closed while Redis is unreachable (data kept): its removal is sent once the
 * node is back, so it never stays a ghost; the offline is published then. */
static void test_disconnect_during_outage(void **state)
{
    char url[64];
    pnode a;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p5", "node-a", &fast);
    wait_live(&shared, &a);
    obs_start(&o, &shared, "p5");
    rc_presence_connect(a.pr, "u", "s1");
    rc_presence_member_add(a.pr, "s1", "/", "r");
    wait_count(&o.msgs, "u 1", 1, 2000);

    /* cut the node's connections (the observer is a pub/sub client and survives) */
    assert_int_equal(redis_int(&shared, "CLIENT KILL TYPE normal SKIPME yes") >= 1, 1);
    for (int i = 0; i < 100 && a.up; i++) run_for(5);
    assert_int_equal(a.up, 0);
    rc_presence_disconnect(a.pr, "s1");
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_removals_queued"), 1);
    assert_int_equal(redis_int(&shared, "SCARD p5:presence:u"), 1);
    wait_count(&o.msgs, "u 0", 1, 3000);
    assert_int_equal(a.up, 1);
    assert_int_equal(redis_int(&shared, "EXISTS p5:presence:u"), 0);
    assert_int_equal(redis_int(&shared, "EXISTS p5:members:/:r"), 0);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_removals_queued"), 0);
    assert_int_equal(o.msgs.n, 2);
    obs_stop(&o);
    node_kill(&a);
}

/* Kills the two connections of one node (found by their CLIENT SETNAME). */
static void kill_node_connections(const rh_server *s, const char *node)
{
    redisContext *c = rh_client(s);
    redisReply *r = redisCommand(c, "CLIENT LIST");
    char name[64];
    snprintf(name, sizeof(name), " name=roomcast:%s:", node);
    for (const char *line = r->str; line && *line;) {
        const char *end = strchr(line, '\n');
        const char *hit = strstr(line, name);
        if (hit && (!end || hit < end)) {
            redisReply *k = redisCommand(c, "CLIENT KILL ID %lld", atoll(line + 3));
            freeReplyObject(k);
        }
        line = end ? end + 1 : NULL;
    }
    freeReplyObject(r);
    redisFree(c);
}

/* A change published while a node was disconnected (its subscription too) still reaches its
 * watchers: the node reads the statuses back after reconnecting. */
static void test_resync_after_outage(void **state)
{
    char url[64];
    pnode a, b;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p12", "node-a", &fast);
    node_start(&b, url, "p12", "node-b", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    rc_presence_watch(a.pr, 4, "bu");
    rc_presence_watch(a.pr, 4, "steady");
    run_for(50);
    rc_presence_connect(b.pr, "bu", "s1");
    rc_presence_connect(b.pr, "steady", "s2");
    wait_count(&a.status, "bu 1 w=4", 1, 2000);
    wait_count(&a.status, "steady 1 w=4", 1, 2000);

    kill_node_connections(&shared, "node-a");
    for (int i = 0; i < 100 && a.up; i++) run_for(2);
    assert_int_equal(a.up, 0);
    rc_presence_disconnect(b.pr, "s1"); /* "bu 0" is published while a cannot hear it */
    run_for(30);
    assert_int_equal(a.status.n, 2);
    wait_count(&a.status, "bu 0 w=4", 1, 3000);
    run_for(fast.heartbeat_ms);
    assert_int_equal(a.status.n, 3); /* "steady" did not change: nothing */
    node_kill(&a);
    node_kill(&b);
}

/* Must show (docs/redis.md, "Presence"): online status of 1,000 users in one round trip to
 * Redis. */
static void test_query_1000(void **state)
{
    static const rc_presence_config slow = {.ttl_ms = 20000, .heartbeat_ms = 10000};
    char url[64];
    pnode a;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p6", "node-a", &slow);
    wait_live(&shared, &a);
    char names[RC_PRESENCE_QUERY_MAX + 1][16], sid[16];
    const char *users[RC_PRESENCE_QUERY_MAX + 1];
    for (int i = 0; i <= RC_PRESENCE_QUERY_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "q%d", i);
        users[i] = names[i];
        if (i % 2 == 0) {
            snprintf(sid, sizeof(sid), "s%d", i);
            rc_presence_connect(a.pr, names[i], sid);
        }
    }
    rc_presence_set_visible(a.pr, "q4", 0);
    run_for(100); /* the JOINs are done; no heartbeat is due for 10 s */

    assert_int_equal(rc_presence_query(a.pr, users, RC_PRESENCE_QUERY_MAX + 1, 1), RC_PRESENCE_EINVAL);
    double cmds0 = metric(NULL, a.bp, "roomcast_redis_module_commands_total");
    long long calls0 = rh_cmdstat_calls(&shared, "evalsha") + rh_cmdstat_calls(&shared, "eval");
    assert_int_equal(rc_presence_query(a.pr, users, RC_PRESENCE_QUERY_MAX, 42), 0);
    wait_answer(&a);
    double cmds = metric(NULL, a.bp, "roomcast_redis_module_commands_total") - cmds0;
    long long calls = rh_cmdstat_calls(&shared, "evalsha") + rh_cmdstat_calls(&shared, "eval") - calls0;
    printf("      query of %d users: %.0f command(s) sent, %lld script call(s) in Redis\n",
           RC_PRESENCE_QUERY_MAX, cmds, calls);
    assert_int_equal(cmds, 1);
    assert_int_equal(calls, 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.tag, 42);
    assert_int_equal(a.n, RC_PRESENCE_QUERY_MAX);
    assert_non_null(strstr(a.answer, "q0=1 q1=0 q2=1 q3=0 q4=0 q5=0 q6=1 "));
    assert_non_null(strstr(a.answer, " q998=1 q999=0"));
    size_t ones = 0;
    for (const char *p = a.answer; (p = strstr(p, "=1")); p++) ones++;
    assert_int_equal(ones, RC_PRESENCE_QUERY_MAX / 2 - 1); /* q4 is invisible */

    /* an empty list is answered too (without Redis), and unknown users are offline */
    assert_int_equal(rc_presence_query(a.pr, users, 0, 9), 0);
    wait_answer(&a);
    assert_int_equal(a.n, 0);
    query1(&a, "nobody", "nobody=0");
    node_kill(&a);
}

static void test_invisible(void **state)
{
    char url[64];
    pnode a, b;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p7", "node-a", &fast);
    node_start(&b, url, "p7", "node-b", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    obs_start(&o, &shared, "p7");
    rc_presence_watch(b.pr, 5, "ghost");
    run_for(50);
    rc_presence_connect(a.pr, "ghost", "g1");
    wait_count(&b.status, "ghost 1 w=5", 1, 2000);

    assert_int_equal(rc_presence_set_visible(a.pr, "ghost", 0), 0);
    wait_count(&b.status, "ghost 0 w=5", 1, 2000);
    query1(&b, "ghost", "ghost=0");
    rc_presence_set_visible(b.pr, "ghost", 0); /* again, from another node: no change */
    rc_presence_connect(b.pr, "ghost", "g2");  /* another device: still invisible */
    rc_presence_disconnect(a.pr, "g1");
    rc_presence_disconnect(b.pr, "g2");        /* gone entirely: nothing to publish */
    run_for(200);
    assert_int_equal(o.msgs.n, 2);
    rc_presence_connect(b.pr, "ghost", "g3");  /* back later: invisibility lasts */
    run_for(100);
    assert_int_equal(o.msgs.n, 2);
    query1(&a, "ghost", "ghost=0");

    assert_int_equal(rc_presence_set_visible(b.pr, "ghost", 1), 0);
    wait_count(&b.status, "ghost 1 w=5", 2, 2000);
    query1(&a, "ghost", "ghost=1");
    rc_presence_disconnect(b.pr, "g3");
    wait_count(&o.msgs, "ghost 0", 2, 2000);
    rc_presence_set_visible(a.pr, "ghost", 1); /* already visible and offline: nothing */
    run_for(100);
    assert_int_equal(o.msgs.n, 4);
    assert_int_equal(b.status.n, 4);
    assert_int_equal(rc_presence_set_visible(a.pr, "", 0), RC_PRESENCE_EINVAL);
    obs_stop(&o);
    node_kill(&a);
    node_kill(&b);
}

/* Must show (docs/redis.md, "Presence"): member lists of a tracked room are the same from every
 * node; joined and left are decided once, with a user's devices counted across nodes. */
static void test_members_across_nodes(void **state)
{
    char url[64];
    pnode a, b, c;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p8", "node-a", &fast);
    node_start(&b, url, "p8", "node-b", &fast);
    node_start(&c, url, "p8", "node-c", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    wait_live(&shared, &c);
    rc_presence_connect(a.pr, "alice", "a1");
    rc_presence_connect(b.pr, "alice", "b1");
    rc_presence_connect(b.pr, "bob", "b2");
    rc_presence_connect(c.pr, "carol", "c1");
    assert_int_equal(rc_presence_member_add(a.pr, "a1", "/meet", "meeting:42"), 0);
    assert_int_equal(rc_presence_member_add(a.pr, "a1", "/meet", "meeting:42"), 0); /* repeat */
    run_for(50);
    assert_int_equal(rc_presence_member_add(b.pr, "b1", "/meet", "meeting:42"), 0);
    assert_int_equal(rc_presence_member_add(b.pr, "b2", "/meet", "meeting:42"), 0);
    assert_int_equal(rc_presence_member_add(c.pr, "c1", "/meet", "meeting:42"), 0);
    assert_int_equal(rc_presence_member_add(c.pr, "nope", "/meet", "meeting:42"), RC_PRESENCE_ESTATE);
    assert_int_equal(rc_presence_member_add(c.pr, "c1", "meet", "x"), RC_PRESENCE_EINVAL);
    assert_int_equal(rc_presence_member_add(c.pr, "c1", "/a:b", "x"), RC_PRESENCE_EINVAL);
    run_for(100);
    /* each join decided once, on the node whose call made it */
    assert_int_equal(sl_count(&a.members, "/meet meeting:42 alice 1"), 1);
    assert_int_equal(sl_count(&b.members, "/meet meeting:42 alice 1"), 0);
    assert_int_equal(sl_count(&b.members, "/meet meeting:42 bob 1"), 1);
    assert_int_equal(sl_count(&c.members, "/meet meeting:42 carol 1"), 1);
    members_of(&a, "/meet", "meeting:42", "alice bob carol");
    assert_int_equal(a.total, 3);
    members_of(&b, "/meet", "meeting:42", "alice bob carol");
    members_of(&c, "/meet", "meeting:42", "alice bob carol");

    /* alice's first device leaves: still a member; her last: left, once */
    rc_presence_member_remove(a.pr, "a1", "/meet", "meeting:42");
    rc_presence_member_remove(a.pr, "a1", "/meet", "meeting:42");
    run_for(100);
    members_of(&c, "/meet", "meeting:42", "alice bob carol");
    assert_int_equal(a.members.n + b.members.n + c.members.n, 3);
    rc_presence_disconnect(b.pr, "b1"); /* disconnect leaves its tracked rooms */
    run_for(100);
    assert_int_equal(sl_count(&b.members, "/meet meeting:42 alice 0"), 1);
    members_of(&a, "/meet", "meeting:42", "bob carol");
    members_of(&c, "/meet", "meeting:42", "bob carol");
    members_of(&c, "/meet", "empty", "");
    assert_int_equal(c.total, 0);
    assert_int_equal(rc_presence_members(c.pr, "/meet", "", 1), RC_PRESENCE_EINVAL);
    node_kill(&a);
    node_kill(&b);
    node_kill(&c);
}

/* A node unreachable longer than the TTL is swept while alive: it notices, removes its old
 * entries and registers again; its users are online again (published), with no ghost left. */
static void test_swept_while_alive(void **state)
{
    char url[64];
    pnode a, b;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p9", "node-a", &fast);
    node_start(&b, url, "p9", "node-b", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    obs_start(&o, &shared, "p9");
    rc_presence_connect(a.pr, "u", "s1");
    rc_presence_member_add(a.pr, "s1", "/", "r");
    wait_count(&o.msgs, "u 1", 1, 2000);

    /* what a sweep by b does first when node-a's heartbeat is older than the TTL (done here by
     * hand, atomically, so that a's next heartbeat cannot win the race) */
    redis_int(&shared, "EVAL %s 2 p9:nodes p9:sweeping node-a",
              "redis.call('ZREM', KEYS[1], ARGV[1]) return redis.call('SADD', KEYS[2], ARGV[1])");
    wait_count(&o.msgs, "u 0", 1, 2000);
    wait_count(&o.msgs, "u 1", 2, 2000);
    run_for(400);
    assert_int_equal(o.msgs.n, 3);
    query1(&b, "u", "u=1");
    members_of(&b, "/", "r", "u");
    assert_int_equal(redis_int(&shared, "SCARD p9:presence:u"), 1);
    assert_true(redis_int(&shared, "ZSCORE p9:nodes node-a") > 1);
    assert_int_equal(redis_int(&shared, "SCARD p9:sweeping"), 0);
    obs_stop(&o);
    node_kill(&a);
    node_kill(&b);
}

/* A new process with the same node id first removes what the old one left behind. Drain removes
 * everything of the node and reports when done. */
static void test_restart_same_id_and_drain(void **state)
{
    char url[64];
    pnode a, b;
    observer o;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p10", "node-a", &fast);
    node_start(&b, url, "p10", "node-b", &fast);
    wait_live(&shared, &a);
    wait_live(&shared, &b);
    obs_start(&o, &shared, "p10");
    rc_presence_connect(a.pr, "old", "s1");
    rc_presence_connect(a.pr, "both", "s2");
    rc_presence_connect(b.pr, "both", "s3");
    rc_presence_member_add(a.pr, "s1", "/", "r");
    wait_count(&o.msgs, "old 1", 1, 2000);
    node_kill(&a);
    node_start(&a, url, "p10", "node-a", &fast); /* restarted at once: its heartbeat is fresh */
    wait_count(&o.msgs, "old 0", 1, 2000);
    wait_count(&a.members, "/ r old 0", 1, 2000);
    wait_live(&shared, &a);
    assert_int_equal(redis_int(&shared, "HLEN p10:node:node-a:conns"), 0);
    query1(&b, "both", "both=1");

    /* drain */
    rc_presence_connect(a.pr, "new", "s4");
    rc_presence_connect(a.pr, "both", "s5");
    wait_count(&o.msgs, "new 1", 1, 2000);
    rc_presence_drain(a.pr);
    rc_presence_drain(a.pr); /* once */
    assert_int_equal(a.drained, 0); /* never from inside the call */
    for (int i = 0; i < 200 && !a.drained; i++) run_for(5);
    assert_int_equal(a.drained, 1);
    assert_int_equal(a.drained_err, 0);
    wait_count(&o.msgs, "new 0", 1, 1000);
    assert_int_equal(redis_int(&shared, "EXISTS p10:node:node-a:conns"), 0);
    assert_int_equal(redis_int(&shared, "ZSCORE p10:nodes node-a"), -1);
    assert_int_equal(redis_int(&shared, "SCARD p10:presence:both"), 1);
    assert_int_equal(rc_presence_connect(a.pr, "late", "s6"), RC_PRESENCE_ESTATE);
    rc_presence_disconnect(a.pr, "s4"); /* local only now */
    run_for(fast.heartbeat_ms * 2); /* no heartbeat brings the node back */
    assert_int_equal(redis_int(&shared, "ZSCORE p10:nodes node-a"), -1);
    assert_int_equal(sl_count_prefix(&o.msgs, "both "), 1);
    obs_stop(&o);
    node_kill(&a);
    node_kill(&b);
}

/* Answers and events never reach a presence freed before they arrived. */
static void test_free_with_calls_in_flight(void **state)
{
    char url[64];
    pnode a;
    node_start(&a, url_for(&shared, url, sizeof(url)), "p11", "node-a", &fast);
    wait_live(&shared, &a);
    const char *u[2] = {"x", "y"};
    rc_presence_connect(a.pr, "x", "s1");
    rc_presence_member_add(a.pr, "s1", "/", "r");
    rc_presence_query(a.pr, u, 2, 1);
    rc_presence_members(a.pr, "/", "r", 2);
    rc_presence_free(a.pr);
    a.pr = NULL;
    run_for(100); /* the replies arrive for orphans */
    node_kill(&a);
}

/* The ACL that docs/redis.md documents is enough for the backplane and presence. */
static void test_acl_as_documented(void **state)
{
    static const char *const args[] = {
        "--user", "rc", "on", ">pw", "~p13:*", "&p13:*", "+subscribe", "+unsubscribe", "+publish",
        "+select", "+client|setname", "+eval", "+evalsha", "+time", "+zadd", "+zscore", "+zrem",
        "+zrangebyscore", "+sadd", "+srem", "+scard", "+sismember", "+smembers", "+hset", "+hsetnx",
        "+hdel", "+hincrby", "+hscan", "+hlen", "+hkeys", "+exists", NULL};
    rh_server s;
    char url[96];
    pnode a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), args), 0);
    snprintf(url, sizeof(url), "redis://rc:pw@127.0.0.1:%d", s.port);
    node_start(&a, url, "p13", "node-a", &fast);
    node_start(&b, url, "p13", "node-b", &fast);
    wait_live(&s, &a);
    wait_live(&s, &b);
    rc_presence_watch(a.pr, 1, "u");
    run_for(50);
    rc_presence_connect(b.pr, "u", "s1");
    rc_presence_member_add(b.pr, "s1", "/", "r");
    wait_count(&a.status, "u 1 w=1", 1, 2000);
    query1(&a, "u", "u=1");
    members_of(&a, "/", "r", "u");
    assert_int_equal(rc_presence_set_visible(a.pr, "u", 0), 0);
    wait_count(&a.status, "u 0 w=1", 1, 2000);
    rc_presence_set_visible(a.pr, "u", 1);
    node_kill(&b); /* swept by a */
    wait_count(&a.status, "u 0 w=1", 2, 2000);
    assert_int_equal(metric(a.pr, NULL, "roomcast_presence_errors_total"), 0);
    assert_int_equal(metric(NULL, a.bp, "roomcast_redis_module_errors_total"), 0);
    node_kill(&a);
    rh_kill(&s);
}

/* ---- the embedded implementation ------------------------------------------------------------ */

static void test_embedded(void **state)
{
    pnode e;
    node_start(&e, NULL, NULL, "solo", NULL);
    assert_int_equal(rc_presence_on_raw(e.pr, "roomcast:status:x", "{}", 2), 0);
    rc_presence_watch(e.pr, 1, "u1");
    rc_presence_watch(e.pr, 2, "u1");
    assert_int_equal(rc_presence_connect(e.pr, "u1", "s1"), 0);
    assert_int_equal(rc_presence_connect(e.pr, "u1", "s2"), 0);
    assert_int_equal(e.status.n, 0); /* from the loop, never inside the call */
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 1 w=2,1"), 1);
    query1(&e, "u1", "u1=1");
    rc_presence_disconnect(e.pr, "s1");
    run_for(20);
    query1(&e, "u1", "u1=1");
    rc_presence_disconnect(e.pr, "s2");
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 0 w=2,1"), 1);
    assert_int_equal(e.status.n, 2);
    query1(&e, "u1", "u1=0");

    /* invisible */
    rc_presence_connect(e.pr, "u1", "s3");
    run_for(20);
    assert_int_equal(rc_presence_set_visible(e.pr, "u1", 0), 0);
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 0 w=2,1"), 2);
    query1(&e, "u1", "u1=0");
    rc_presence_disconnect(e.pr, "s3");
    rc_presence_connect(e.pr, "u1", "s4");
    run_for(20);
    assert_int_equal(e.status.n, 4);
    rc_presence_set_visible(e.pr, "u1", 1);
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 1 w=2,1"), 3);
    /* as in Redis mode: hidden while on two devices, one of them leaving changes nothing */
    rc_presence_connect(e.pr, "u1", "s7");
    assert_int_equal(rc_presence_set_visible(e.pr, "u1", 0), 0);
    rc_presence_disconnect(e.pr, "s7");
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 0 w=2,1"), 3);
    query1(&e, "u1", "u1=0");
    assert_int_equal(rc_presence_set_visible(e.pr, "u1", 1), 0);
    run_for(20);
    assert_int_equal(sl_count(&e.status, "u1 1 w=2,1"), 4);
    assert_int_equal(e.status.n, 7);
    rc_presence_unwatch_all(e.pr, 1);
    rc_presence_unwatch(e.pr, 2, "u1");

    /* members */
    rc_presence_connect(e.pr, "u2", "s5");
    rc_presence_connect(e.pr, "u2", "s6");
    rc_presence_member_add(e.pr, "s4", "/m", "r");
    rc_presence_member_add(e.pr, "s5", "/m", "r");
    rc_presence_member_add(e.pr, "s6", "/m", "r");
    run_for(20);
    assert_int_equal(e.members.n, 2);
    members_of(&e, "/m", "r", "u1 u2");
    rc_presence_member_remove(e.pr, "s5", "/m", "r");
    run_for(20);
    assert_int_equal(e.members.n, 2);
    rc_presence_disconnect(e.pr, "s6");
    run_for(20);
    assert_int_equal(sl_count(&e.members, "/m r u2 0"), 1);
    members_of(&e, "/m", "r", "u1");

    const char *q[3] = {"u1", "u2", "u3"};
    assert_int_equal(rc_presence_query(e.pr, q, 3, 3), 0);
    wait_answer(&e);
    assert_string_equal(e.answer, "u1=1 u2=1 u3=0");
    assert_int_equal(metric(e.pr, NULL, "roomcast_presence_online_users"), 2);

    rc_presence_drain(e.pr);
    run_for(20);
    assert_int_equal(e.drained, 1);
    assert_int_equal(e.drained_err, 0);
    node_kill(&e);
}

static void test_metrics_format(void **state)
{
    static const char *const families[][2] = {
        {"roomcast_presence_online_users", "gauge"},
        {"roomcast_presence_connections", "gauge"},
        {"roomcast_presence_watched_users", "gauge"},
        {"roomcast_presence_operations_total", "counter"},
        {"roomcast_presence_sweeps_total", "counter"},
        {"roomcast_presence_swept_nodes_total", "counter"},
        {"roomcast_presence_swept_connections_total", "counter"},
        {"roomcast_presence_swept_offline_total", "counter"},
        {"roomcast_presence_removals_queued", "gauge"},
        {"roomcast_presence_errors_total", "counter"},
    };
    pnode e;
    char line[160];
    node_start(&e, NULL, NULL, "solo", NULL);
    struct evbuffer *out = evbuffer_new();
    rc_presence_write_metrics(e.pr, out);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    for (size_t i = 0; i < RC_ARRAY_LEN(families); i++) {
        snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof(line), "# TYPE %s %s\n", families[i][0], families[i][1]);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "roomcast_presence_operations_total{op=\"query\"} 0\n"));
    evbuffer_free(out);
    node_kill(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_devices_two_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invisible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swept_while_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_same_id_and_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_calls_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_during_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_after_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invisible_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acl_as_documented, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
