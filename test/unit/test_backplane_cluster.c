/*
 * test_backplane_cluster.c: the Redis backplane in cluster mode (src/backplane_redis_shard.c)
 * against a real cluster of three masters (cluster_harness.h): room channels SSUBSCRIBEd on the
 * master of their slot, one SSUBSCRIBE per slot for a turn's worth of rooms, the subscription
 * barrier across masters, SPUBLISH between two nodes on every master, and a slot moved under a
 * subscribed room (the master's sunsubscribe, then the channel subscribed on the new owner).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../../src/redis_cluster.h"
#include "cluster_harness.h"
#include "roomcast/backplane.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/redis_config.h"

static ch_cluster cl;
static struct event_base *base;
static struct event *wake;
static rc_redis_addr seeds[CH_N];
static rc_redis_config rcfg;

typedef struct node {
    rc_backplane *bp;
    rc_backplane_redis_settings cfg;
    int up;
    int msgs;        /* messages received */
    int live;        /* when_subscribed answers */
} node;

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
}

static int run_until(int (*pred)(void *), void *arg, int timeout_ms)
{
    uint64_t end = rc_now_mono_ms() + (uint64_t)timeout_ms;
    while (!pred(arg)) {
        if (rc_now_mono_ms() >= end) return 0;
        event_base_loop(base, EVLOOP_ONCE);
    }
    return 1;
}

static void on_message(void *arg, const rc_bp_message *msg)
{
    node *n = arg;
    n->msgs++;
}

static void on_state(void *arg, int up)
{
    ((node *)arg)->up = up;
}

static void node_start(node *n, const char *id)
{
    rc_backplane_callbacks cb = {.on_message = on_message, .on_state = on_state, .arg = n};
    memset(n, 0, sizeof(*n));
    n->cfg.prefix = "tc";
    n->cfg.node_id = id;
    n->cfg.redis = &rcfg; /* no URL: the seeds only */
    n->bp = rc_backplane_redis_new(base, &n->cfg, &cb);
    assert_non_null(n->bp);
}

static int is_up(void *arg)
{
    return ((node *)arg)->up;
}

static double metric(const node *n, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    char key[160];
    double v = -1;
    n->bp->ops->write_metrics(n->bp, out);
    size_t len = evbuffer_get_length(out);
    char *text = rc_malloc(len + 1);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(text, key);
    if (p) v = atof(p + strlen(key));
    rc_free(text);
    evbuffer_free(out);
    return v;
}

/* The master serving slot (index into cl.s), from CLUSTER SLOTS of master 0. */
static int owner_of(uint16_t slot)
{
    redisReply *r = ch_command(&cl.s[0], "CLUSTER SLOTS");
    int who = -1;
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
            for (int k = 0; k < CH_N; k++)
                if (cl.s[k].port == e->element[2]->element[1]->integer) who = k;
    }
    if (r) freeReplyObject(r);
    return who;
}

static long long shardnumsub(const char *channel)
{
    int m = owner_of(redis_cluster_slot(channel, strlen(channel)));
    redisReply *r = m >= 0 ? ch_command(&cl.s[m], "PUBSUB SHARDNUMSUB %s", channel) : NULL;
    long long n = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->integer : -1;
    if (r) freeReplyObject(r);
    return n;
}

typedef struct numsub_q {
    const char *channel;
    long long want;
} numsub_q;

static int numsub_is(void *arg)
{
    numsub_q *q = arg;
    return shardnumsub(q->channel) == q->want;
}

static void wait_numsub(const char *channel, long long want)
{
    numsub_q q = {channel, want};
    if (!run_until(numsub_is, &q, 5000))
        fail_msg("SHARDNUMSUB %s: want %lld, have %lld", channel, want, shardnumsub(channel));
}

static long long ssubscribe_calls(void)
{
    long long n = 0;
    for (int i = 0; i < CH_N; i++) {
        long long c = rh_cmdstat_calls(&cl.s[i], "ssubscribe");
        n += c > 0 ? c : 0;
    }
    return n;
}

static int group_setup(void **state)
{
    rc_log_setup(getenv("RC_TEST_DEBUG") ? RC_LOG_DEBUG : RC_LOG_ERROR + 1, 0);
    if (ch_start(&cl) != 0) return -1;
    for (int i = 0; i < CH_N; i++) {
        seeds[i].host = "127.0.0.1";
        seeds[i].port = cl.s[i].port;
    }
    rcfg.cluster = seeds;
    rcfg.cluster_count = CH_N;
    return 0;
}

static int group_teardown(void **state)
{
    ch_stop(&cl);
    return 0;
}

static int setup(void **state)
{
    struct timeval tv = {0, 5000};
    base = event_base_new();
    wake = event_new(base, -1, EV_PERSIST, on_wake, NULL);
    event_add(wake, &tv);
    return 0;
}

static int teardown(void **state)
{
    event_free(wake);
    event_base_free(base);
    return 0;
}

typedef struct msgs_q {
    node *n;
    int want;
} msgs_q;

static int has_msgs(void *arg)
{
    msgs_q *q = arg;
    return q->n->msgs >= q->want;
}

static void move_slot(uint16_t slot);

static void on_live(void *arg, int live)
{
    node *n = arg;
    if (live) n->live++;
}

static int has_live(void *arg)
{
    return ((node *)arg)->live > 0;
}

static void test_rooms_batched_per_slot(void **state)
{
    node a;
    char room[32], ch[64];
    static uint8_t seen[REDIS_CLUSTER_SLOTS];
    node_start(&a, "node-a");
    assert_true(run_until(is_up, &a, 5000));
    assert_int_equal((int)metric(&a, "roomcast_redis_cluster_masters"), CH_N);

    long long calls0 = ssubscribe_calls();
    int slots = 0;
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 1000; i++) {
        snprintf(room, sizeof(room), "room-%d", i);
        snprintf(ch, sizeof(ch), "tc:room:/:%s", room);
        uint16_t s = redis_cluster_slot(ch, strlen(ch));
        if (!seen[s]++) slots++;
        a.bp->ops->room_open(a.bp, "/", room);
    }
    a.bp->ops->when_subscribed(a.bp, on_live, &a);
    assert_true(run_until(has_live, &a, 5000));
    /* the barrier spans the masters: every channel is subscribed once it answers */
    assert_int_equal(shardnumsub("tc:room:/:room-0"), 1);
    assert_int_equal(shardnumsub("tc:room:/:room-999"), 1);
    long long calls = ssubscribe_calls() - calls0;
    printf("      1000 room_open in one turn: %lld SSUBSCRIBE commands for %d distinct slots\n", calls,
           slots);
    assert_int_equal(calls, slots); /* one per slot: Redis wants one slot per command */
    assert_int_equal((int)metric(&a, "roomcast_redis_subscribed_channels"), 1000);

    /* rooms whose names share a hash tag share a slot, and commands: 600 in 2 (512 + 88) */
    calls0 = ssubscribe_calls();
    a.live = 0;
    for (int i = 0; i < 600; i++) {
        snprintf(room, sizeof(room), "{team}-%d", i);
        a.bp->ops->room_open(a.bp, "/", room);
    }
    a.bp->ops->when_subscribed(a.bp, on_live, &a);
    assert_true(run_until(has_live, &a, 5000));
    assert_int_equal(shardnumsub("tc:room:/:{team}-599"), 1);
    printf("      600 rooms of one hash tag: %lld SSUBSCRIBE commands\n", ssubscribe_calls() - calls0);
    assert_int_equal(ssubscribe_calls() - calls0, 2);
    a.bp->ops->free(a.bp);
}

static void test_publish_across_masters_and_slot_move(void **state)
{
    node a, b;
    char ch[64];
    node_start(&a, "node-a");
    node_start(&b, "node-b");
    assert_true(run_until(is_up, &a, 5000));
    assert_true(run_until(is_up, &b, 5000));

    /* a room on each master */
    char rooms[CH_N][64];
    int have[CH_N] = {0}, found = 0;
    for (int k = 0; found < CH_N; k++) {
        snprintf(ch, sizeof(ch), "tc:room:/:r%d", k);
        int m = owner_of(redis_cluster_slot(ch, strlen(ch)));
        if (m < 0 || have[m]) continue;
        have[m] = 1;
        snprintf(rooms[found++], sizeof(rooms[0]), "%s", ch);
    }
    for (int i = 0; i < CH_N; i++) b.bp->ops->room_open(b.bp, "/", rooms[i] + strlen("tc:room:/:"));
    for (int i = 0; i < CH_N; i++) wait_numsub(rooms[i], 1);
    for (int i = 0; i < CH_N; i++) {
        rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = rooms[i] + strlen("tc:room:/:"),
                           .event = "hello"};
        assert_int_equal(a.bp->ops->publish(a.bp, &m), 0);
    }
    msgs_q q = {&b, CH_N};
    run_until(has_msgs, &q, 3000);
    assert_int_equal(b.msgs, CH_N);

    /* move the first room's slot to another master: its master drops the channel
     * (sunsubscribe), node b subscribes it on the new owner */
    uint16_t slot = redis_cluster_slot(rooms[0], strlen(rooms[0]));
    move_slot(slot);
    wait_numsub(rooms[0], 1);
    assert_true(metric(&b, "roomcast_redis_cluster_slot_drops_total") >= 1);
    /* and a publish from a, whose map is stale, still arrives (MOVED, sent again) */
    int before = b.msgs;
    rc_bp_message m = {.kind = RC_BP_EMIT, .ns = "/", .room = rooms[0] + strlen("tc:room:/:"),
                       .event = "after"};
    assert_int_equal(a.bp->ops->publish(a.bp, &m), 0);
    q.want = before + 1;
    run_until(has_msgs, &q, 3000);
    assert_int_equal(b.msgs, before + 1);
    assert_true(b.up && a.up);
    a.bp->ops->free(a.bp);
    b.bp->ops->free(b.bp);
}

/* Moves slot to the master after its owner: SETSLOT NODE on the new owner first, then the others. */
static void move_slot(uint16_t slot)
{
    int from = owner_of(slot), to = (from + 1) % CH_N;
    redisReply *id = ch_command(&cl.s[to], "CLUSTER MYID");
    assert_non_null(id);
    for (int i = 0; i < CH_N; i++) {
        int k = i == 0 ? to : i == 1 ? from : 3 - from - to;
        redisReply *r = ch_command(&cl.s[k], "CLUSTER SETSLOT %d NODE %s", slot, id->str);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    freeReplyObject(id);
    assert_int_equal(owner_of(slot), to);
}

typedef struct cmd_q {
    int answered;
    char reply[128];
} cmd_q;

static void on_cmd(void *arg, const redisReply *r)
{
    cmd_q *q = arg;
    q->answered = 1;
    if (r && r->type == REDIS_REPLY_INTEGER) snprintf(q->reply, sizeof(q->reply), "%lld", r->integer);
    else snprintf(q->reply, sizeof(q->reply), "%s", !r ? "(lost)" : r->str ? r->str : "?");
}

static int answered(void *arg)
{
    return ((cmd_q *)arg)->answered;
}

static void test_module_command_after_a_move(void **state)
{
    node a;
    node_start(&a, "node-a");
    assert_true(run_until(is_up, &a, 5000));
    const char *key = "tc:modkey"; /* never written: an empty slot moves without MIGRATE */
    const char *argv[2] = {"EXISTS", key};
    cmd_q q = {0};
    assert_int_equal(rc_redis_command(a.bp, on_cmd, &q, 2, argv, NULL), 0);
    assert_true(run_until(answered, &q, 3000));
    assert_string_equal(q.reply, "0");
    /* the slot moves behind the node's back: the next command is answered MOVED (no retry), the
     * map is corrected, and the one after it goes to the new owner */
    move_slot(redis_cluster_slot(key, strlen(key)));
    memset(&q, 0, sizeof(q));
    assert_int_equal(rc_redis_command(a.bp, on_cmd, &q, 2, argv, NULL), 0);
    assert_true(run_until(answered, &q, 3000));
    assert_memory_equal(q.reply, "MOVED", 5);
    memset(&q, 0, sizeof(q));
    assert_int_equal(rc_redis_command(a.bp, on_cmd, &q, 2, argv, NULL), 0);
    assert_true(run_until(answered, &q, 3000));
    assert_string_equal(q.reply, "0");
    assert_true(metric(&a, "roomcast_redis_cluster_moved_total") >= 1);
    assert_true(a.up);
    a.bp->ops->free(a.bp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rooms_batched_per_slot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_across_masters_and_slot_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_command_after_a_move, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
