/*
 * test_backplane_redis.c: the Redis backplane against a real redis-server (no mocks), and the
 * embedded local backplane.
 *
 * Each test runs a libevent loop with one or two backplanes ("nodes" with different node ids)
 * and uses a blocking hiredis client as the backend (PUBLISH, PUBSUB NUMSUB, INFO commandstats).
 * Tests that kill, stop or reconfigure Redis start their own server; the others share one and
 * use a distinct key prefix each, so their channels never meet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_harness.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/redis_cmd.h"

/* ---- fixtures ------------------------------------------------------------------------------ */

#define MAX_MSGS 64

typedef struct rec_msg {
    int kind;
    char *ns, *room, *event, *args, *except, *target, *origin, *id, *atts; /* copies; except and
                                                                              atts joined by '|' */
} rec_msg;

typedef struct node {
    rc_backplane *bp;
    rc_backplane_redis_settings cfg;
    int up;
    int ups, downs;
    uint64_t down_at_ms, up_at_ms;
    rec_msg msgs[MAX_MSGS];
    int nmsgs;
    char *raw[MAX_MSGS];   /* "<channel> <payload>" from on_raw */
    int nraw;
} node;

#include "redis_loop.h"

static char *dup_or_null(const char *s)
{
    return s ? rc_strdup(s) : NULL;
}

static void on_message(void *arg, const rc_bp_message *m)
{
    node *n = arg;
    assert_true(n->nmsgs < MAX_MSGS);
    rec_msg *r = &n->msgs[n->nmsgs++];
    char buf[1024];
    size_t off = 0;

    r->kind = m->kind;
    r->ns = dup_or_null(m->ns);
    r->room = dup_or_null(m->room);
    r->event = dup_or_null(m->event);
    r->args = m->args_json ? rc_strndup(m->args_json, m->args_len) : NULL;
    r->target = dup_or_null(m->target_room);
    r->origin = dup_or_null(m->origin);
    r->id = dup_or_null(m->id);
    buf[0] = '\0';
    for (size_t i = 0; i < m->except_count; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? "|" : "", m->except[i]);
    r->except = m->except_count ? rc_strdup(buf) : NULL;
    off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->attachment_count; i++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s", i ? "|" : "");
        for (size_t k = 0; k < m->attachments[i].len; k++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%02x", m->attachments[i].data[k]);
    }
    r->atts = m->attachment_count ? rc_strdup(buf) : NULL;
}

static void on_raw(void *arg, const char *channel, const char *payload, size_t len)
{
    node *n = arg;
    char buf[512];
    assert_true(n->nraw < MAX_MSGS);
    snprintf(buf, sizeof(buf), "%s %.*s", channel, (int)len, payload);
    n->raw[n->nraw++] = rc_strdup(buf);
}

static void on_pattern(void *arg, const char *prefix, const char *channel, const char *payload, size_t len)
{
    node *n = arg;
    char buf[512];
    assert_true(n->nraw < MAX_MSGS);
    snprintf(buf, sizeof(buf), "pattern %s %s %.*s", prefix, channel, (int)len, payload);
    n->raw[n->nraw++] = rc_strdup(buf);
}

/* A message heard through a listen entry (rc_redis_listen_open): recorded in raw[] as
 * "over <ns> <room or -> <event>". */
static void on_overheard(void *arg, const rc_bp_message *m)
{
    node *n = arg;
    char buf[512];
    assert_true(n->nraw < MAX_MSGS);
    snprintf(buf, sizeof(buf), "over %s %s %s", m->ns, m->room ? m->room : "-", m->event ? m->event : "-");
    n->raw[n->nraw++] = rc_strdup(buf);
}

static void on_state(void *arg, int up)
{
    node *n = arg;
    assert_int_not_equal(n->up, up); /* only transitions are reported */
    n->up = up;
    if (up) {
        n->ups++;
        n->up_at_ms = rc_now_mono_ms();
    } else {
        n->downs++;
        n->down_at_ms = rc_now_mono_ms();
    }
}

static void clear_msgs(node *n)
{
    for (int i = 0; i < n->nmsgs; i++) {
        rec_msg *r = &n->msgs[i];
        rc_free(r->ns);
        rc_free(r->room);
        rc_free(r->event);
        rc_free(r->args);
        rc_free(r->except);
        rc_free(r->target);
        rc_free(r->origin);
        rc_free(r->id);
        rc_free(r->atts);
    }
    memset(n->msgs, 0, sizeof(n->msgs));
    n->nmsgs = 0;
    for (int i = 0; i < n->nraw; i++) rc_free(n->raw[i]);
    n->nraw = 0;
}

static void node_start(node *n, const char *url, const char *prefix, const char *node_id)
{
    rc_backplane_callbacks cb = {.on_message = on_message, .on_state = on_state, .on_raw = on_raw,
                                 .on_pattern = on_pattern, .on_overheard = on_overheard, .arg = n};
    memset(n, 0, sizeof(*n));
    n->cfg.url = url;
    n->cfg.prefix = prefix;
    n->cfg.node_id = node_id;
    n->bp = rc_backplane_redis_new(base, &n->cfg, &cb);
    assert_non_null(n->bp);
}

static void node_stop(node *n)
{
    if (n->bp) n->bp->ops->free(n->bp);
    n->bp = NULL;
    clear_msgs(n);
}

static char *url_for(const rh_server *s, char *buf, size_t size)
{
    snprintf(buf, size, "redis://127.0.0.1:%d", s->port);
    return buf;
}


/* Runs the loop until pred(arg) holds or timeout_ms passes; returns pred's last value. */

static int never(void *arg)
{
    return 0;
}

static void run_for(int ms)
{
    run_until(never, NULL, ms);
}

static int is_up(void *arg)
{
    return ((node *)arg)->up;
}

static int is_down(void *arg)
{
    return !((node *)arg)->up;
}

typedef struct numsub_q {
    const rh_server *s;
    const char *channel;
    long long want;
} numsub_q;

static int numsub_is(void *arg)
{
    numsub_q *q = arg;
    return rh_numsub(q->s, q->channel) == q->want;
}

static void wait_numsub(const rh_server *s, const char *channel, long long want)
{
    numsub_q q = {s, channel, want};
    if (!run_until(numsub_is, &q, 3000))
        fail_msg("PUBSUB NUMSUB %s: want %lld, have %lld", channel, want, rh_numsub(s, channel));
}

typedef struct count_q {
    node *n;
    int want;
} count_q;

static int has_msgs(void *arg)
{
    count_q *q = arg;
    return q->n->nmsgs >= q->want;
}

static void wait_msgs(node *n, int want)
{
    count_q q = {n, want};
    if (!run_until(has_msgs, &q, 3000)) fail_msg("want %d messages, have %d", want, n->nmsgs);
}

static void wait_up(node *n, int timeout_ms)
{
    if (!run_until(is_up, n, timeout_ms)) fail_msg("backplane %s not up", n->cfg.node_id);
}

/* One value from write_metrics (the sample line "name value"). */
static double metric(const node *n, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    char key[128];
    double v = -1;
    n->bp->ops->write_metrics(n->bp, out);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    if (p) v = strtod(p + strlen(key), NULL);
    evbuffer_free(out);
    return v;
}


/* ---- tests ----------------------------------------------------------------------------------- */

static int local_msgs;
static void local_on_message(void *arg, const rc_bp_message *m)
{
    local_msgs++;
}

static void test_local_backplane(void **state)
{
    rc_backplane_callbacks cb = {.on_message = local_on_message};
    rc_backplane *bp = rc_backplane_local_new(base, &cb);
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "e", .args_json = "[1]",
                       .args_len = 3};
    struct evbuffer *out = evbuffer_new();

    assert_int_equal(bp->ops->is_up(bp), 1);
    bp->ops->ns_open(bp, "/");
    bp->ops->room_open(bp, "/", "r");
    assert_int_equal(bp->ops->publish(bp, &m), 0);
    bp->ops->room_close(bp, "/", "r");
    run_for(20);
    assert_int_equal(local_msgs, 0);
    bp->ops->write_metrics(bp, out);
    assert_int_equal(evbuffer_get_length(out), 0);
    evbuffer_free(out);
    bp->ops->free(bp);
}

static void test_bad_url(void **state)
{
    rc_backplane_redis_settings cfg;
    rc_backplane_callbacks cb = {.on_message = on_message, .on_state = on_state};
    memset(&cfg, 0, sizeof(cfg));
    cfg.prefix = "x";
    cfg.node_id = "n";
    assert_null(rc_backplane_redis_new(base, &cfg, &cb));
    cfg.url = "http://127.0.0.1:6379";
    assert_null(rc_backplane_redis_new(base, &cfg, &cb));
    cfg.url = "redis://127.0.0.1:99999";
    assert_null(rc_backplane_redis_new(base, &cfg, &cb));
}

static void test_subscribe_and_receive(void **state)
{
    char url[64];
    node a;
    node_start(&a, url_for(&shared, url, sizeof(url)), "t1", "node-a");
    assert_int_equal(a.bp->ops->is_up(a.bp), 0); /* never up from inside new */
    wait_up(&a, 3000);

    const char *ch = "t1:room:/chat:meeting:42";
    a.bp->ops->room_open(a.bp, "/chat", "meeting:42");
    wait_numsub(&shared, ch, 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1);

    /* "data": one argument */
    assert_int_equal(rh_publish(&shared, ch, "{\"event\":\"task_created\",\"data\":{\"id\":1,\"title\":\"Live Task\"}}"), 1);
    wait_msgs(&a, 1);
    assert_int_equal(a.msgs[0].kind, RC_BP_EMIT);
    assert_string_equal(a.msgs[0].ns, "/chat");
    assert_string_equal(a.msgs[0].room, "meeting:42");
    assert_string_equal(a.msgs[0].event, "task_created");
    assert_string_equal(a.msgs[0].args, "[{\"id\":1,\"title\":\"Live Task\"}]");
    assert_null(a.msgs[0].origin);
    assert_null(a.msgs[0].except);
    assert_null(a.msgs[0].id);

    /* "args": several arguments, with the optional fields */
    rh_publish(&shared, ch, "{\"event\":\"x\",\"args\":[1,\"two\",{\"three\":3}],\"except\":[\"s1\",\"s2\"],"
                            "\"id\":\"m-1\",\"origin\":\"backend-7\"}");
    /* neither: no arguments; a scalar "data" */
    rh_publish(&shared, ch, "{\"event\":\"ping\"}");
    rh_publish(&shared, ch, "  {\"event\":\"n\",\"data\":5,\"id\":17}\n");
    /* control op */
    rh_publish(&shared, ch, "{\"op\":\"join\",\"room\":\"chat:42\"}");
    wait_msgs(&a, 5);
    assert_string_equal(a.msgs[1].event, "x");
    assert_string_equal(a.msgs[1].args, "[1,\"two\",{\"three\":3}]");
    assert_string_equal(a.msgs[1].except, "s1|s2");
    assert_string_equal(a.msgs[1].id, "m-1");
    assert_string_equal(a.msgs[1].origin, "backend-7");
    assert_string_equal(a.msgs[2].args, "[]");
    assert_string_equal(a.msgs[3].args, "[5]");
    assert_string_equal(a.msgs[3].id, "17");
    assert_int_equal(a.msgs[4].kind, RC_BP_JOIN);
    assert_string_equal(a.msgs[4].target, "chat:42");
    assert_string_equal(a.msgs[4].room, "meeting:42");

    /* malformed: counted and dropped; a valid message after them still arrives */
    static const char *const bad[] = {
        "{not json",
        "[1,2]",
        "{\"event\":\"\"}",
        "{\"event\":7}",
        "{\"data\":1}",
        "{\"event\":\"x\",\"args\":{}}",
        "{\"op\":\"explode\"}",
        "{\"op\":\"join\"}",
        "{\"event\":\"x\",\"except\":[1]}",
        "{\"event\":\"x\",\"except\":\"s1\"}",
        "{\"event\":\"x\",\"attachments\":[\"!!!!\"]}",
        "{\"event\":\"x\"} trailing",
        "{\"event\":\"x\",\"origin\":5}",
        "{\"event\":\"x\",\"id\":{}}",
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) rh_publish(&shared, ch, bad[i]);
    /* our own echo: dropped, not invalid */
    rh_publish(&shared, ch, "{\"event\":\"x\",\"origin\":\"node-a\"}");
    rh_publish(&shared, ch, "{\"event\":\"after\",\"args\":[]}");
    wait_msgs(&a, 6);
    run_for(50);
    assert_int_equal(a.nmsgs, 6);
    assert_string_equal(a.msgs[5].event, "after");
    assert_int_equal((int)metric(&a, "roomcast_redis_messages_invalid_total"), (int)RC_ARRAY_LEN(bad));
    assert_int_equal((int)metric(&a, "roomcast_redis_messages_own_total"), 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_messages_received_total"), 6);

    /* namespace channel: room is NULL */
    a.bp->ops->ns_open(a.bp, "/chat");
    wait_numsub(&shared, "t1:ns:/chat", 1);
    rh_publish(&shared, "t1:ns:/chat", "{\"event\":\"all\",\"data\":\"hi\"}");
    wait_msgs(&a, 7);
    assert_string_equal(a.msgs[6].ns, "/chat");
    assert_null(a.msgs[6].room);
    assert_string_equal(a.msgs[6].args, "[\"hi\"]");

    /* invalid names are refused, not subscribed */
    a.bp->ops->room_open(a.bp, "chat", "r");
    a.bp->ops->room_open(a.bp, "/a:b", "r");
    a.bp->ops->ns_open(a.bp, "/x:y");

    /* close: unsubscribed, and nothing more is delivered */
    a.bp->ops->room_close(a.bp, "/chat", "meeting:42");
    wait_numsub(&shared, ch, 0);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1); /* the ns channel */
    assert_int_equal(rh_publish(&shared, ch, "{\"event\":\"late\"}"), 0);
    run_for(30);
    assert_int_equal(a.nmsgs, 7);
    node_stop(&a);
    assert_int_equal(rh_numsub(&shared, "t1:ns:/chat"), 0);
}

/* A raw subscriber that reads one message with a timeout (after the loop has run). */
static char *raw_read_message(redisContext *c)
{
    redisReply *r = NULL;
    char *s = NULL;
    if (redisGetReply(c, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_ARRAY &&
        r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
        s = rc_strndup(r->element[2]->str, r->element[2]->len);
    if (r) freeReplyObject(r);
    return s;
}

static void test_node_to_node(void **state)
{
    char url[64];
    node a, b;
    node_start(&a, url_for(&shared, url, sizeof(url)), "t2", "node-a");
    node_start(&b, url, "t2", "node-b");
    /* opened before the backplane is up: subscribed by the time it reports up */
    a.bp->ops->room_open(a.bp, "/", "r1");
    a.bp->ops->ns_open(a.bp, "/");
    wait_up(&a, 3000);
    assert_int_equal(rh_numsub(&shared, "t2:room:/:r1"), 1);
    assert_int_equal(rh_numsub(&shared, "t2:ns:/"), 1);
    wait_up(&b, 3000);
    b.bp->ops->room_open(b.bp, "/", "r1");
    b.bp->ops->ns_open(b.bp, "/");
    wait_numsub(&shared, "t2:room:/:r1", 2);
    wait_numsub(&shared, "t2:ns:/", 2);

    redisContext *raw = rh_client(&shared);
    redisReply *r = redisCommand(raw, "SUBSCRIBE t2:room:/:r1");
    freeReplyObject(r);

    static const uint8_t bin1[] = {0x00, 0xff, 0x10};
    static const uint8_t bin2[] = {0x41};
    rc_bp_bytes atts[2] = {{bin1, sizeof(bin1)}, {bin2, sizeof(bin2)}};
    const char *except[] = {"sid-1", "sid\"2"};
    static const char args[] = "[1,\"a\",{\"_placeholder\":true,\"num\":0}]";
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = "r1", .event = "ev\n1",
                       .args_json = args, .args_len = sizeof(args) - 1,
                       .attachments = atts, .attachment_count = 2, .except = except,
                       .except_count = 2, .id = "m1"};
    assert_int_equal(b.bp->ops->publish(b.bp, &m), 0);
    wait_msgs(&a, 1);
    run_for(50);
    assert_int_equal(b.nmsgs, 0); /* a node never gets its own message back */
    assert_int_equal(a.msgs[0].kind, RC_BP_EMIT);
    assert_string_equal(a.msgs[0].event, "ev\n1");
    assert_string_equal(a.msgs[0].args, "[1,\"a\",{\"_placeholder\":true,\"num\":0}]");
    assert_string_equal(a.msgs[0].origin, "node-b");
    assert_string_equal(a.msgs[0].except, "sid-1|sid\"2");
    assert_string_equal(a.msgs[0].id, "m1");
    assert_string_equal(a.msgs[0].atts, "00ff10|41");
    assert_string_equal(a.msgs[0].room, "r1");

    char *wire = raw_read_message(raw);
    assert_non_null(wire);
    assert_string_equal(wire, "{\"event\":\"ev\\n1\",\"args\":[1,\"a\",{\"_placeholder\":true,\"num\":0}],"
                              "\"origin\":\"node-b\",\"except\":[\"sid-1\",\"sid\\\"2\"],\"id\":\"m1\","
                              "\"attachments\":[\"AP8Q\",\"QQ==\"]}");
    rc_free(wire);
    redisFree(raw);

    /* control ops and a namespace-wide emit */
    rc_bp_message join = {.kind = RC_BP_JOIN, .ns = "/", .room = "r1", .target_room = "chat:42"};
    rc_bp_message leave = {.kind = RC_BP_LEAVE, .ns = "/", .room = "r1", .target_room = "chat:42"};
    rc_bp_message disc = {.kind = RC_BP_DISCONNECT, .ns = "/", .room = "r1"};
    rc_bp_message all = {.kind = RC_BP_EMIT, .ns = "/", .event = "all"};
    assert_int_equal(b.bp->ops->publish(b.bp, &join), 0);
    assert_int_equal(b.bp->ops->publish(b.bp, &leave), 0);
    assert_int_equal(b.bp->ops->publish(b.bp, &disc), 0);
    assert_int_equal(b.bp->ops->publish(b.bp, &all), 0);
    /* refused: no event, no target, bad namespace */
    rc_bp_message noev = {.kind = RC_BP_EMIT, .ns = "/", .room = "r1"};
    rc_bp_message notarget = {.kind = RC_BP_JOIN, .ns = "/", .room = "r1"};
    rc_bp_message badns = {.kind = RC_BP_EMIT, .ns = "/a:b", .room = "r1", .event = "e"};
    assert_int_equal(b.bp->ops->publish(b.bp, &noev), -1);
    assert_int_equal(b.bp->ops->publish(b.bp, &notarget), -1);
    assert_int_equal(b.bp->ops->publish(b.bp, &badns), -1);
    wait_msgs(&a, 5);
    assert_int_equal(a.msgs[1].kind, RC_BP_JOIN);
    assert_string_equal(a.msgs[1].target, "chat:42");
    assert_int_equal(a.msgs[2].kind, RC_BP_LEAVE);
    assert_int_equal(a.msgs[3].kind, RC_BP_DISCONNECT);
    assert_string_equal(a.msgs[3].origin, "node-b");
    assert_int_equal(a.msgs[4].kind, RC_BP_EMIT);
    assert_null(a.msgs[4].room);
    assert_string_equal(a.msgs[4].args, "[]");
    /* and the other way round */
    rc_bp_message back = {.kind = RC_BP_EMIT, .ns = "/", .room = "r1", .event = "back"};
    assert_int_equal(a.bp->ops->publish(a.bp, &back), 0);
    wait_msgs(&b, 1);
    assert_string_equal(b.msgs[0].origin, "node-a");
    run_for(50);
    assert_int_equal(a.nmsgs, 5);

    assert_int_equal((int)metric(&b, "roomcast_redis_publishes_total"), 5);
    assert_int_equal((int)metric(&b, "roomcast_redis_publish_failures_total"), 3);
    assert_true(metric(&b, "roomcast_redis_publish_latency_seconds_count") >= 5);
    node_stop(&a);
    node_stop(&b);
}

static void test_batching(void **state)
{
    char url[64], room[32], ch[64];
    node a;
    node_start(&a, url_for(&shared, url, sizeof(url)), "t3", "node-a");
    wait_up(&a, 3000);
    run_for(20);

    double cmds0 = metric(&a, "roomcast_redis_commands_total");
    long long subs0 = rh_cmdstat_calls(&shared, "subscribe");
    for (int i = 0; i < 1000; i++) {
        snprintf(room, sizeof(room), "room-%d", i);
        a.bp->ops->room_open(a.bp, "/", room);
    }
    wait_numsub(&shared, "t3:room:/:room-999", 1);
    wait_numsub(&shared, "t3:room:/:room-0", 1);
    double cmds1 = metric(&a, "roomcast_redis_commands_total");
    long long subs1 = rh_cmdstat_calls(&shared, "subscribe");
    /* canary PUBLISHes may run meanwhile; SUBSCRIBE is what counts */
    printf("      1000 room_open in one turn: %lld SUBSCRIBE commands, %.0f commands in all\n",
           subs1 - subs0, cmds1 - cmds0);
    assert_int_equal(subs1 - subs0, 2); /* 512 + 488 */
    assert_true(cmds1 - cmds0 <= 4);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1000);

    /* racing within one turn: open/close/open is one SUBSCRIBE; open/close is nothing */
    subs0 = subs1;
    a.bp->ops->room_open(a.bp, "/", "x");
    a.bp->ops->room_close(a.bp, "/", "x");
    a.bp->ops->room_open(a.bp, "/", "x");
    a.bp->ops->room_open(a.bp, "/", "y");
    a.bp->ops->room_close(a.bp, "/", "y");
    a.bp->ops->room_close(a.bp, "/", "never-opened");
    a.bp->ops->room_open(a.bp, "/", "room-5"); /* already open */
    wait_numsub(&shared, "t3:room:/:x", 1);
    run_for(30);
    assert_int_equal(rh_numsub(&shared, "t3:room:/:y"), 0);
    assert_int_equal(rh_cmdstat_calls(&shared, "subscribe") - subs0, 1);

    /* racing across turns: closed then reopened before the UNSUBSCRIBE was answered */
    a.bp->ops->room_close(a.bp, "/", "x");
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* the flush sends UNSUBSCRIBE x */
    a.bp->ops->room_open(a.bp, "/", "x");
    wait_numsub(&shared, "t3:room:/:x", 1);
    run_for(50);
    assert_int_equal(rh_numsub(&shared, "t3:room:/:x"), 1);
    rh_publish(&shared, "t3:room:/:x", "{\"event\":\"still-here\"}");
    wait_msgs(&a, 1);

    /* closing all 1000 in one turn */
    long long unsubs0 = rh_cmdstat_calls(&shared, "unsubscribe");
    for (int i = 0; i < 1000; i++) {
        snprintf(room, sizeof(room), "room-%d", i);
        a.bp->ops->room_close(a.bp, "/", room);
    }
    wait_numsub(&shared, "t3:room:/:room-999", 0);
    wait_numsub(&shared, "t3:room:/:room-0", 0);
    long long unsubs = rh_cmdstat_calls(&shared, "unsubscribe") - unsubs0;
    printf("      1000 room_close in one turn: %lld UNSUBSCRIBE commands\n", unsubs);
    assert_int_equal(unsubs, 2);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1);
    snprintf(ch, sizeof(ch), "t3:room:/:room-%d", 500);
    assert_int_equal(rh_numsub(&shared, ch), 0);
    node_stop(&a);
}

static void test_kill_and_restart(void **state)
{
    rh_server s;
    char url[64];
    node a;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t4", "node-a");
    wait_up(&a, 3000);
    a.bp->ops->room_open(a.bp, "/", "r");
    wait_numsub(&s, "t4:room:/:r", 1);

    uint64_t t0 = rc_now_mono_ms();
    rh_kill(&s);
    if (!run_until(is_down, &a, 3000)) fail_msg("not down 3 s after SIGKILL");
    printf("      SIGKILL -> on_state(0) after %" PRIu64 " ms\n", a.down_at_ms - t0);
    assert_int_equal(a.bp->ops->is_up(a.bp), 0);
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "e"};
    assert_int_equal(a.bp->ops->publish(a.bp, &m), -1);
    run_for(700); /* a few refused reconnects */

    uint64_t t1 = rc_now_mono_ms();
    assert_int_equal(rh_start(&s, s.port, NULL), 0);
    wait_up(&a, 8000);
    printf("      redis restarted -> on_state(1) after %" PRIu64 " ms\n", a.up_at_ms - t1);
    assert_int_equal(a.ups, 2);
    assert_int_equal(a.downs, 1);
    assert_int_equal(rh_numsub(&s, "t4:room:/:r"), 1); /* restored before on_state(1) */
    assert_int_equal(rh_publish(&s, "t4:room:/:r", "{\"event\":\"back\"}"), 1);
    wait_msgs(&a, 1);
    assert_int_equal(a.bp->ops->publish(a.bp, &m), 0);
    assert_true(metric(&a, "roomcast_redis_reconnects_total") >= 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_up"), 1);
    node_stop(&a);
    rh_kill(&s);
}

static void test_sigstop_canary(void **state)
{
    rh_server s;
    char url[64];
    node a;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t5", "node-a");
    wait_up(&a, 3000);
    a.bp->ops->room_open(a.bp, "/", "r");
    wait_numsub(&s, "t5:room:/:r", 1);
    run_for(1100); /* at least one canary while healthy */
    assert_true(metric(&a, "roomcast_redis_canary_lag_seconds") > 0);

    uint64_t t0 = rc_now_mono_ms();
    rh_signal(&s, SIGSTOP);
    if (!run_until(is_down, &a, 4000)) fail_msg("not down while Redis was stopped");
    printf("      SIGSTOP -> on_state(0) after %" PRIu64 " ms\n", a.down_at_ms - t0);
    assert_true(metric(&a, "roomcast_redis_canary_failures_total") >= 1);
    int64_t left = 4000 - (int64_t)(rc_now_mono_ms() - t0);
    if (left > 0) run_for((int)left);
    assert_int_equal(a.up, 0);

    uint64_t t1 = rc_now_mono_ms();
    rh_signal(&s, SIGCONT);
    wait_up(&a, 8000);
    printf("      SIGCONT -> on_state(1) after %" PRIu64 " ms\n", a.up_at_ms - t1);
    assert_int_equal(rh_publish(&s, "t5:room:/:r", "{\"event\":\"back\"}"), 1);
    wait_msgs(&a, 1);
    node_stop(&a);
    rh_kill(&s);
}

typedef struct client_q {
    const rh_server *s;
    const char *needle;
} client_q;

static int client_list_has(void *arg)
{
    client_q *q = arg;
    redisContext *c = rh_client(q->s);
    redisReply *r;
    int found = 0;
    if (!c) return 0;
    r = redisCommand(c, "AUTH pw");
    freeReplyObject(r);
    r = redisCommand(c, "CLIENT LIST");
    found = r && r->type == REDIS_REPLY_STRING && strstr(r->str, q->needle) != NULL;
    if (r) freeReplyObject(r);
    redisFree(c);
    return found;
}

static void test_auth_and_select(void **state)
{
    /* alice has exactly the permissions docs/redis.md asks for */
    static const char *const args[] = {"--requirepass", "pw", "--user", "alice", "on", ">secret",
                                       "&t6:*", "+subscribe", "+unsubscribe", "+publish", "+select",
                                       "+client|setname", NULL};
    rh_server s;
    char url_a[96], url_b[96], url_c[96];
    node a, b, c;
    assert_int_equal(rh_start(&s, rh_free_port(), args), 0);
    snprintf(url_a, sizeof(url_a), "redis://:pw@127.0.0.1:%d/2", s.port);
    snprintf(url_b, sizeof(url_b), "redis://alice:secret@127.0.0.1:%d/3", s.port);
    snprintf(url_c, sizeof(url_c), "redis://:wrong@127.0.0.1:%d", s.port);
    node_start(&a, url_a, "t6", "node a"); /* a space, replaced in CLIENT SETNAME */
    node_start(&b, url_b, "t6", "node-b");
    node_start(&c, url_c, "t6", "node-c");
    wait_up(&a, 3000);
    wait_up(&b, 3000);

    client_q qa = {&s, "name=roomcast:node_a:sub"};
    client_q qa_db = {&s, "db=2"};
    client_q qb = {&s, "user=alice"};
    client_q qb_db = {&s, "db=3"};
    assert_true(client_list_has(&qa));
    assert_true(client_list_has(&qa_db));
    assert_true(client_list_has(&qb));
    assert_true(client_list_has(&qb_db));

    a.bp->ops->room_open(a.bp, "/", "r");
    run_for(100);
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = "r", .event = "hello"};
    assert_int_equal(b.bp->ops->publish(b.bp, &m), 0);
    wait_msgs(&a, 1);
    assert_string_equal(a.msgs[0].origin, "node-b");

    /* a wrong password never comes up, never reports a state change, refuses publishes */
    run_for(500);
    assert_int_equal(c.up, 0);
    assert_int_equal(c.ups + c.downs, 0);
    assert_int_equal(c.bp->ops->publish(c.bp, &m), -1);
    assert_true(metric(&c, "roomcast_redis_reconnects_total") >= 1);
    node_stop(&a);
    node_stop(&b);
    node_stop(&c);
    rh_kill(&s);
}

static void test_host_name_and_unreachable(void **state)
{
    char url[64];
    node a, b;
    /* a name goes through the non-blocking resolver */
    snprintf(url, sizeof(url), "redis://localhost:%d", shared.port);
    node_start(&a, url, "t7", "node-a");
    wait_up(&a, 3000);
    node_stop(&a);

    /* nothing listening: stays down, retries with backoff, frees cleanly mid-attempt */
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", rh_free_port());
    node_start(&b, url, "t7", "node-b");
    run_for(800);
    assert_int_equal(b.up, 0);
    double tries = metric(&b, "roomcast_redis_reconnects_total");
    printf("      unreachable for 800 ms: %.0f reconnect attempts (backoff 100 ms doubling)\n", tries);
    assert_true(tries >= 2 && tries <= 6);
    node_stop(&b);

    /* freed while still resolving / connecting */
    snprintf(url, sizeof(url), "redis://localhost:%d", shared.port);
    node_start(&a, url, "t7", "node-a");
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    node_stop(&a);
}

static void test_metrics_format(void **state)
{
    static const char *const families[][2] = {
        {"roomcast_redis_up", "gauge"},
        {"roomcast_redis_reconnects_total", "counter"},
        {"roomcast_redis_subscribed_channels", "gauge"},
        {"roomcast_redis_publishes_total", "counter"},
        {"roomcast_redis_publish_failures_total", "counter"},
        {"roomcast_redis_messages_received_total", "counter"},
        {"roomcast_redis_messages_invalid_total", "counter"},
        {"roomcast_redis_messages_own_total", "counter"},
        {"roomcast_redis_canary_failures_total", "counter"},
        {"roomcast_redis_commands_total", "counter"},
        {"roomcast_redis_command_timeouts_total", "counter"},
        {"roomcast_redis_module_commands_total", "counter"},
        {"roomcast_redis_module_errors_total", "counter"},
        {"roomcast_redis_noscript_total", "counter"},
        {"roomcast_redis_raw_messages_total", "counter"},
        {"roomcast_redis_canary_lag_seconds", "gauge"},
        {"roomcast_redis_publish_latency_seconds", "histogram"},
    };
    char url[64], line[160];
    node a;
    node_start(&a, url_for(&shared, url, sizeof(url)), "t8", "node-a");
    wait_up(&a, 3000);
    struct evbuffer *out = evbuffer_new();
    a.bp->ops->write_metrics(a.bp, out);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    for (size_t i = 0; i < RC_ARRAY_LEN(families); i++) {
        snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof(line), "# TYPE %s %s\n", families[i][0], families[i][1]);
        assert_non_null(strstr(text, line));
    }
    assert_non_null(strstr(text, "roomcast_redis_publish_latency_seconds_bucket{le=\"+Inf\"} "));
    assert_non_null(strstr(text, "\nroomcast_redis_up 1\n"));
    /* the handshake (CLIENT SETNAME on both), the canary SUBSCRIBE and one canary PUBLISH */
    assert_true(metric(&a, "roomcast_redis_commands_total") >= 4);
    evbuffer_free(out);
    node_stop(&a);
}


/* ---- redis_cmd.h: module commands, scripts, raw channels ---------------------------------- */

#define MAX_REPLIES 64

/* What a module callback saw: the reply flattened to text ("NULL" for no reply), and whether it
 * ran from inside the call that sent it (it must not). */
typedef struct replies {
    char *text[MAX_REPLIES];
    int n;
    int sending;      /* 1 while the test is inside rc_redis_command/rc_redis_eval */
    int reentered;
} replies;

static void reply_text(const redisReply *r, char *buf, size_t size)
{
    size_t off;
    if (!r) {
        snprintf(buf, size, "NULL");
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        snprintf(buf, size, "%.*s", (int)r->len, r->str);
        break;
    case REDIS_REPLY_ERROR:
        snprintf(buf, size, "ERR:%.*s", (int)r->len, r->str);
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(buf, size, "%lld", r->integer);
        break;
    case REDIS_REPLY_NIL:
        snprintf(buf, size, "nil");
        break;
    case REDIS_REPLY_ARRAY:
        off = (size_t)snprintf(buf, size, "[");
        for (size_t i = 0; i < r->elements && off < size; i++) {
            if (i) off += (size_t)snprintf(buf + off, size - off, ",");
            if (off < size) reply_text(r->element[i], buf + off, size - off);
            off = strlen(buf);
        }
        if (off < size) snprintf(buf + off, size - off, "]");
        break;
    default:
        snprintf(buf, size, "?");
    }
}

static void on_reply(void *arg, const struct redisReply *r)
{
    replies *rs = arg;
    char buf[256];
    if (rs->sending) rs->reentered = 1;
    assert_true(rs->n < MAX_REPLIES);
    reply_text(r, buf, sizeof(buf));
    rs->text[rs->n++] = rc_strdup(buf);
}

static void replies_clear(replies *rs)
{
    for (int i = 0; i < rs->n; i++) rc_free(rs->text[i]);
    memset(rs, 0, sizeof(*rs));
}

typedef struct nreplies_q {
    replies *rs;
    int want;
} nreplies_q;

static int has_replies(void *arg)
{
    nreplies_q *q = arg;
    return q->rs->n >= q->want;
}

static void wait_replies(replies *rs, int want)
{
    nreplies_q q = {rs, want};
    if (!run_until(has_replies, &q, 3000)) fail_msg("want %d replies, have %d", want, rs->n);
}

static int cmd(rc_backplane *bp, replies *rs, int argc, const char **argv)
{
    rs->sending = 1;
    int rc = rc_redis_command(bp, on_reply, rs, argc, argv, NULL);
    rs->sending = 0;
    return rc;
}

static int eval(rc_backplane *bp, rc_redis_script *sc, replies *rs, int nkeys, int argc,
                const char **argv)
{
    rs->sending = 1;
    int rc = rc_redis_eval(bp, sc, on_reply, rs, nkeys, argc, argv, NULL);
    rs->sending = 0;
    return rc;
}

static void test_module_api_local(void **state)
{
    rc_backplane_callbacks cb = {.on_message = local_on_message};
    rc_backplane *bp = rc_backplane_local_new(base, &cb);
    rc_redis_script sc = {.source = "return 1"};
    const char *argv[] = {"PING"};
    replies rs;
    memset(&rs, 0, sizeof(rs));
    assert_int_equal(rc_redis_available(bp), 0);
    assert_int_equal(rc_redis_available(NULL), 0);
    assert_null(rc_redis_prefix(bp));
    assert_int_equal(cmd(bp, &rs, 1, argv), -1);
    assert_int_equal(eval(bp, &sc, &rs, 0, 0, NULL), -1);
    rc_redis_channel_open(bp, "x:status:1"); /* no-ops */
    rc_redis_channel_close(bp, "x:status:1");
    run_for(20);
    assert_int_equal(rs.n, 0);
    bp->ops->free(bp);
}

static rc_redis_script incr_script = {
    .source = "local v = redis.call('INCRBY', KEYS[1], ARGV[1])\n"
              "return {v, ARGV[2] or 'none', #KEYS, #ARGV}\n",
};
static rc_redis_script error_script = {.source = "return redis.error_reply('my failure')"};

static void test_module_commands_and_scripts(void **state)
{
    char url[64];
    node a;
    replies rs;
    memset(&rs, 0, sizeof(rs));
    node_start(&a, url_for(&shared, url, sizeof(url)), "t9", "node-a");
    assert_int_equal(rc_redis_available(a.bp), 1);
    assert_string_equal(rc_redis_prefix(a.bp), "t9");
    const char *set[] = {"SET", "t9:k", "v\0x"};
    assert_int_equal(cmd(a.bp, &rs, 3, set), -1); /* not up yet */
    wait_up(&a, 3000);

    /* plain commands, binary-safe arguments through argvlen */
    size_t setlen[] = {3, 4, 3};
    rs.sending = 1;
    assert_int_equal(rc_redis_command(a.bp, on_reply, &rs, 3, set, setlen), 0);
    rs.sending = 0;
    const char *get[] = {"STRLEN", "t9:k"};
    const char *bad[] = {"NOSUCHCOMMAND"};
    assert_int_equal(cmd(a.bp, &rs, 2, get), 0);
    assert_int_equal(cmd(a.bp, &rs, 1, bad), 0);
    wait_replies(&rs, 3);
    assert_int_equal(rs.reentered, 0);
    assert_string_equal(rs.text[0], "OK");
    assert_string_equal(rs.text[1], "3");
    assert_memory_equal(rs.text[2], "ERR:ERR unknown command", 23);
    replies_clear(&rs);

    /* scripts: the first call goes as EVAL, the next ones as EVALSHA (pipelined behind it) */
    redisContext *c = rh_client(&shared);
    redisReply *r = redisCommand(c, "CONFIG RESETSTAT");
    freeReplyObject(r);
    const char *args1[] = {"t9:n", "5", "extra"};
    const char *args2[] = {"t9:n", "2"};
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 3, args1), 0);
    assert_int_equal(strlen(incr_script.sha), 40);
    for (int i = 0; i < 5; i++) assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args2), 0);
    wait_replies(&rs, 6);
    assert_int_equal(rs.reentered, 0);
    assert_string_equal(rs.text[0], "[5,extra,1,2]");
    assert_string_equal(rs.text[5], "[15,none,1,1]");
    assert_int_equal(rh_cmdstat_calls(&shared, "eval"), 1);
    assert_int_equal(rh_cmdstat_calls(&shared, "evalsha"), 5);
    r = redisCommand(c, "SCRIPT EXISTS %s", incr_script.sha); /* our SHA-1 is Redis's */
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    replies_clear(&rs);

    /* Redis forgets its scripts: the caller never sees NOSCRIPT */
    r = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args2), 0);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args2), 0);
    wait_replies(&rs, 2);
    assert_string_equal(rs.text[0], "[17,none,1,1]");
    assert_string_equal(rs.text[1], "[19,none,1,1]");
    assert_int_equal((int)metric(&a, "roomcast_redis_noscript_total"), 2);
    replies_clear(&rs);

    /* an error reply from a script reaches the caller as is */
    assert_int_equal(eval(a.bp, &error_script, &rs, 0, 0, NULL), 0);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 2, 1, args2), -1); /* nkeys > argc */
    wait_replies(&rs, 1);
    assert_string_equal(rs.text[0], "ERR:my failure");
    assert_int_equal((int)metric(&a, "roomcast_redis_module_errors_total"), 2);
    assert_true(metric(&a, "roomcast_redis_module_commands_total") >= 12);
    replies_clear(&rs);

    /* commands in flight when the backplane is freed are answered NULL during free */
    const char *ping[] = {"PING"};
    assert_int_equal(cmd(a.bp, &rs, 1, ping), 0);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args2), 0);
    node_stop(&a);
    assert_int_equal(rs.n, 2);
    assert_string_equal(rs.text[0], "NULL");
    assert_string_equal(rs.text[1], "NULL");
    replies_clear(&rs);
    redisFree(c);
}

static void test_module_commands_on_failure(void **state)
{
    rh_server s;
    char url[64];
    node a;
    replies rs;
    static const char *const debug_on[] = {"--enable-debug-command", "yes", NULL};
    memset(&rs, 0, sizeof(rs));
    assert_int_equal(rh_start(&s, rh_free_port(), debug_on), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t10", "node-a");
    wait_up(&a, 3000);

    /* a slow script holds the connection; Redis dies under it: NULL, from the loop */
    const char *args[] = {"t10:n", "1"};
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args), 0);
    wait_replies(&rs, 1);
    const char *block[] = {"DEBUG", "SLEEP", "0.3"};
    assert_int_equal(cmd(a.bp, &rs, 3, block), 0);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args), 0);
    run_for(50);
    rh_kill(&s);
    wait_replies(&rs, 3);
    assert_int_equal(rs.reentered, 0);
    assert_string_equal(rs.text[1], "NULL");
    assert_string_equal(rs.text[2], "NULL");
    if (!run_until(is_down, &a, 3000)) fail_msg("not down");
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args), -1);
    assert_int_equal(cmd(a.bp, &rs, 1, block), -1);

    /* a new, empty Redis: the first call on the new connection loads the script again */
    assert_int_equal(rh_start(&s, s.port, NULL), 0);
    wait_up(&a, 8000);
    replies_clear(&rs);
    assert_int_equal(eval(a.bp, &incr_script, &rs, 1, 2, args), 0);
    wait_replies(&rs, 1);
    assert_string_equal(rs.text[0], "[1,none,1,1]");
    assert_int_equal(rh_cmdstat_calls(&s, "eval"), 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_noscript_total"), 0);
    replies_clear(&rs);
    node_stop(&a);
    rh_kill(&s);
}

static void test_raw_channels(void **state)
{
    rh_server s;
    char url[64], ch[64];
    node a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t11", "node-a");
    node_start(&b, url, "t11", "node-b");
    rc_redis_channel_open(a.bp, "t11:status:u1"); /* before up: subscribed when it comes up */
    wait_up(&a, 3000);
    wait_up(&b, 3000);
    assert_int_equal(rh_numsub(&s, "t11:status:u1"), 1);

    /* refcounted: two opens, one close -> still subscribed; refused names */
    rc_redis_channel_open(a.bp, "t11:status:u1");
    rc_redis_channel_close(a.bp, "t11:status:u1");
    rc_redis_channel_open(a.bp, "t11:room:/:r");   /* a room channel: refused */
    rc_redis_channel_open(a.bp, "t11:canary:node-a");
    rc_redis_channel_open(a.bp, "");
    rc_redis_channel_close(a.bp, "t11:never-opened");
    run_for(50);
    assert_int_equal(rh_numsub(&s, "t11:status:u1"), 1);
    assert_int_equal(rh_numsub(&s, "t11:room:/:r"), 0);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1);

    /* messages reach on_raw as published (no envelope parsing, no origin filter) */
    assert_int_equal(rh_publish(&s, "t11:status:u1", "{\"user\":\"u1\",\"online\":true}"), 1);
    assert_int_equal(rh_publish(&s, "t11:status:u1", "not json at all"), 1);
    for (int i = 0; i < 100 && a.nraw < 2; i++) run_for(10);
    assert_int_equal(a.nraw, 2);
    assert_string_equal(a.raw[0], "t11:status:u1 {\"user\":\"u1\",\"online\":true}");
    assert_string_equal(a.raw[1], "t11:status:u1 not json at all");
    assert_int_equal(a.nmsgs, 0);
    assert_int_equal((int)metric(&a, "roomcast_redis_raw_messages_total"), 2);
    assert_int_equal((int)metric(&a, "roomcast_redis_messages_invalid_total"), 0);

    /* a raw channel and a room channel on the same node, opened in one turn: one SUBSCRIBE */
    long long subs0 = rh_cmdstat_calls(&s, "subscribe");
    for (int i = 0; i < 300; i++) {
        snprintf(ch, sizeof(ch), "t11:status:v%d", i);
        rc_redis_channel_open(b.bp, ch);
    }
    b.bp->ops->room_open(b.bp, "/", "r");
    wait_numsub(&s, "t11:status:v299", 1);
    wait_numsub(&s, "t11:room:/:r", 1);
    assert_int_equal(rh_cmdstat_calls(&s, "subscribe") - subs0, 1);

    /* survives a Redis restart: resubscribed before up */
    rh_kill(&s);
    if (!run_until(is_down, &a, 3000)) fail_msg("not down");
    assert_int_equal(rh_start(&s, s.port, NULL), 0);
    wait_up(&a, 8000);
    wait_up(&b, 8000);
    assert_int_equal(rh_numsub(&s, "t11:status:u1"), 1);
    assert_int_equal(rh_numsub(&s, "t11:status:v7"), 1);
    rh_publish(&s, "t11:status:u1", "again");
    for (int i = 0; i < 100 && a.nraw < 3; i++) run_for(10);
    assert_int_equal(a.nraw, 3);

    /* closed: unsubscribed, nothing more arrives */
    rc_redis_channel_close(a.bp, "t11:status:u1");
    wait_numsub(&s, "t11:status:u1", 0);
    rh_publish(&s, "t11:status:u1", "late");
    run_for(30);
    assert_int_equal(a.nraw, 3);
    for (int i = 0; i < 300; i++) {
        snprintf(ch, sizeof(ch), "t11:status:v%d", i);
        rc_redis_channel_close(b.bp, ch);
    }
    wait_numsub(&s, "t11:status:v299", 0);
    assert_int_equal((int)metric(&b, "roomcast_redis_subscribed_channels"), 1);
    node_stop(&a);
    node_stop(&b);
    rh_kill(&s);
}

/* A raw channel is always its literal name, whatever it contains; a pattern is only ever made by
 * rc_redis_pattern_open, whose prefix is literal too. A user "*" watched through a raw channel
 * hears that user and nobody else. */
static void test_patterns_are_explicit(void **state)
{
    rh_server s;
    char url[64];
    node a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t12", "node-a");
    node_start(&b, url, "t12", "node-b");
    wait_up(&a, 3000);
    wait_up(&b, 3000);

    rc_redis_channel_open(a.bp, "t12:status:*");  /* a user named "*": a channel, not a pattern */
    rc_redis_channel_open(a.bp, "t12:status:bo*");
    rc_redis_pattern_open(b.bp, "t12:status:");   /* the node's own prefix subscription */
    rc_redis_pattern_open(b.bp, "t12:w[a]?*\\");   /* glob characters in a prefix are literal */
    rc_redis_pattern_open(b.bp, "t12:room:");     /* refused: would cover room channels */
    rc_redis_pattern_open(b.bp, "t12:");          /* refused: covers all of them */
    rc_redis_pattern_open(b.bp, "");
    wait_numsub(&s, "t12:status:*", 1);
    wait_numsub(&s, "t12:status:bo*", 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 2);
    assert_int_equal((int)metric(&b, "roomcast_redis_subscribed_channels"), 2);

    /* bob's status: the pattern hears it, the literal "*" and "bo*" channels do not */
    assert_int_equal(rh_publish(&s, "t12:status:bob", "{\"user\":\"bob\",\"online\":true}"), 1);
    assert_int_equal(rh_publish(&s, "t12:status:*", "star"), 2); /* a's channel and b's pattern */
    assert_int_equal(rh_publish(&s, "t12:w[a]?*\\x", "glob"), 1);
    assert_int_equal(rh_publish(&s, "t12:wa?*\\x", "no"), 0);
    assert_int_equal(rh_publish(&s, "t12:room:/:r", "{\"event\":\"x\"}"), 0);
    for (int i = 0; i < 100 && (a.nraw < 1 || b.nraw < 3); i++) run_for(10);
    run_for(30);
    assert_int_equal(a.nraw, 1);
    assert_string_equal(a.raw[0], "t12:status:* star");
    assert_int_equal(b.nraw, 3);
    assert_string_equal(b.raw[0], "pattern t12:status: t12:status:bob {\"user\":\"bob\",\"online\":true}");
    assert_string_equal(b.raw[1], "pattern t12:status: t12:status:* star");
    assert_string_equal(b.raw[2], "pattern t12:w[a]?*\\ t12:w[a]?*\\x glob");

    /* one node with both the literal "*" channel and the pattern: each delivered its own way */
    rc_redis_pattern_open(a.bp, "t12:status:");
    run_for(50);
    assert_int_equal(rh_publish(&s, "t12:status:*", "both"), 3);
    assert_int_equal(rh_publish(&s, "t12:status:carol", "pat"), 2);
    for (int i = 0; i < 100 && a.nraw < 4; i++) run_for(10);
    run_for(30);
    assert_int_equal(a.nraw, 4);
    assert_string_equal(a.raw[1], "t12:status:* both");
    assert_string_equal(a.raw[2], "pattern t12:status: t12:status:* both");
    assert_string_equal(a.raw[3], "pattern t12:status: t12:status:carol pat");

    /* closing the pattern leaves the literal channel alone, and the other way round */
    rc_redis_pattern_close(a.bp, "t12:status:");
    run_for(50);
    assert_int_equal(rh_numsub(&s, "t12:status:*"), 1);
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 2);
    rc_redis_channel_close(a.bp, "t12:status:*");
    rc_redis_channel_close(a.bp, "t12:status:bo*");
    wait_numsub(&s, "t12:status:*", 0);
    assert_int_equal(rh_publish(&s, "t12:status:*", "late"), 1); /* b's pattern only */
    node_stop(&a);
    node_stop(&b);
    rh_kill(&s);
}

/* Listening (the recovery listener): every room and the namespace channel of one namespace,
 * decoded, through on_overheard only; a namespace that is a prefix of another ("/ch", "/chat")
 * hears its own channels only; the node's own echo and refused envelopes are not handed up. */
static void test_listening(void **state)
{
    rh_server s;
    char url[64];
    node a, b;
    assert_int_equal(rh_start(&s, rh_free_port(), NULL), 0);
    node_start(&a, url_for(&s, url, sizeof(url)), "t13", "node-a");
    node_start(&b, url, "t13", "node-b");
    wait_up(&a, 3000);
    wait_up(&b, 3000);
    a.bp->ops->room_open(a.bp, "/chat", "r1");
    assert_int_equal(rc_redis_listen_open(b.bp, "/chat"), 0);
    assert_int_equal(rc_redis_listen_open(b.bp, "/ch"), 0);
    assert_int_equal(rc_redis_listen_open(b.bp, "bad:ns"), -1);
    wait_numsub(&s, "t13:room:/chat:r1", 1);
    run_for(50);

    assert_int_equal(rh_publish(&s, "t13:room:/chat:r1", "{\"event\":\"one\"}"), 2); /* a, and b's pattern */
    assert_int_equal(rh_publish(&s, "t13:room:/chat:a:b*", "{\"event\":\"two\"}"), 1);
    assert_int_equal(rh_publish(&s, "t13:ns:/chat", "{\"event\":\"three\"}"), 1);
    assert_int_equal(rh_publish(&s, "t13:room:/ch:x", "{\"event\":\"four\"}"), 1);
    assert_int_equal(rh_publish(&s, "t13:room:/chat:r2", "not json"), 1);   /* refused: not handed up */
    assert_int_equal(rh_publish(&s, "t13:ns:/chatter", "{\"event\":\"no\"}"), 0); /* another namespace */
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/chat", .room = "r9", .event = "own", .args_json = "[]",
                       .args_len = 2};
    assert_int_equal(b.bp->ops->publish(b.bp, &m), 0); /* b's own echo: not overheard */
    for (int i = 0; i < 100 && (b.nraw < 4 || a.nmsgs < 1); i++) run_for(10);
    run_for(50);
    assert_int_equal(b.nraw, 4);
    assert_string_equal(b.raw[0], "over /chat r1 one");
    assert_string_equal(b.raw[1], "over /chat a:b* two");
    assert_string_equal(b.raw[2], "over /chat - three");
    assert_string_equal(b.raw[3], "over /ch x four");
    assert_int_equal(b.nmsgs, 0); /* nothing reaches on_message */
    assert_int_equal(a.nmsgs, 1);
    assert_int_equal(a.nraw, 0);
    assert_int_equal((int)metric(&b, "roomcast_redis_overheard_messages_total"), 6); /* echo and refused included */

    rc_redis_listen_close(b.bp, "/chat");
    run_for(50);
    assert_int_equal(rh_publish(&s, "t13:room:/chat:r1", "{\"event\":\"late\"}"), 1); /* a only */
    assert_int_equal(rh_publish(&s, "t13:room:/ch:y", "{\"event\":\"five\"}"), 1);
    for (int i = 0; i < 100 && b.nraw < 5; i++) run_for(10);
    assert_int_equal(b.nraw, 5);
    assert_string_equal(b.raw[4], "over /ch y five");
    node_stop(&a);
    node_stop(&b);
    rh_kill(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_backplane, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_and_receive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_to_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_name_and_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_and_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigstop_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_api_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_commands_and_scripts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_commands_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patterns_are_explicit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listening, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
