/*
 * test_adapter_peer.c: src/adapter_peer.c on a real Redis backplane against a real
 * redis-server. Requests as @socket.io/redis-adapter 8.3 publishes them (JSON text, and msgpack
 * for BROADCAST, built here with libmsgpack-c), decoded by the Socket.IO codec as the node
 * decodes them (what the codec refuses: test_socketio_codec.c), answers read back by a plain subscriber on the
 * response channels; the local sockets are a small table behind rc_adapter_local. Refused
 * requests publish nothing and act on nothing. Node servers asking for real:
 * test/e2e/sio_fleet.test.js.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_harness.h"
#include "redis_loop.h"
#include "roomcast/adapter_peer.h"
#include "roomcast/backplane.h"
#include "roomcast/redis_cmd.h"
#include "roomcast/socketio_codec.h"

/* ---- the local sockets --------------------------------------------------------------------- */

typedef struct fsock {
    const char *id;
    const char *rooms[3];
} fsock;

static fsock socks[] = {
    {"sA", {"r1", NULL}},
    {"sB", {"r1", "r2", NULL}},
    {"sC", {"r3", NULL}},
};
#define NSOCKS 3

typedef struct emitted {
    char sock[8];
    char event[32];
    char args[256];
    size_t att_count;
    const void *ctx;
} emitted;

static emitted emits[8];
static int nemits;
static char acted[64];

static int in_room(const fsock *s, const char *room)
{
    if (strcmp(s->id, room) == 0) return 1;
    for (int i = 0; s->rooms[i]; i++)
        if (strcmp(s->rooms[i], room) == 0) return 1;
    return 0;
}

static size_t l_select(void *arg, const char *ns, const rc_adapter_target *t,
                       void (*fn)(void *fn_arg, void *sock), void *fn_arg)
{
    size_t n = 0;
    if (strcmp(ns, "/") != 0) return 0;
    for (int i = 0; i < NSOCKS; i++) {
        int ok = t->room_count == 0;
        for (size_t r = 0; r < t->room_count; r++) ok |= in_room(&socks[i], t->rooms[r]);
        for (size_t e = 0; e < t->except_count; e++) ok &= !in_room(&socks[i], t->except[e]);
        if (ok) { fn(fn_arg, &socks[i]); n++; }
    }
    return n;
}

static void l_rooms(void *arg, const char *ns, void (*fn)(void *fn_arg, const char *room), void *fn_arg)
{
    fn(fn_arg, "r1");
    fn(fn_arg, "sA");
}

static const char *l_id(void *arg, void *sock)
{
    return ((fsock *)sock)->id;
}

static cJSON *l_fetch(void *arg, void *sock)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", ((fsock *)sock)->id);
    return o;
}

static void *l_find(void *arg, const char *ns, const char *sid)
{
    for (int i = 0; i < NSOCKS; i++)
        if (strcmp(socks[i].id, sid) == 0) return &socks[i];
    return NULL;
}

static void l_act(void *arg, void *sock, int type, const char *room, int close)
{
    snprintf(acted, sizeof(acted), "%d %s %s %d", type, ((fsock *)sock)->id, room ? room : "-", close);
}

static void l_emit_ack(void *arg, void *sock, const char *event, const char *args_json, size_t args_len,
                       const rc_bp_bytes *att, size_t att_count, const void *ctx)
{
    assert_true(nemits < 8);
    emitted *e = &emits[nemits++];
    snprintf(e->sock, sizeof(e->sock), "%s", ((fsock *)sock)->id);
    snprintf(e->event, sizeof(e->event), "%s", event);
    snprintf(e->args, sizeof(e->args), "%.*s", (int)args_len, args_json);
    e->att_count = att_count;
    if (att_count) assert_memory_equal(att[0].data, "\x01\x02\x03", 3);
    e->ctx = ctx;
}

static const rc_adapter_local local = {l_select, l_rooms, l_id, l_fetch, l_find, l_act, l_emit_ack, NULL};

/* ---- fixture ------------------------------------------------------------------------------- */

static int bp_up;
static void on_state(void *arg, int up) { bp_up = up; }
static int is_up(void *arg) { return bp_up; }

typedef struct fixture {
    rc_backplane *bp;
    rc_adapter_peer *peer;
    rc_socketio_codec *codec;
    redisContext *sub;     /* PSUBSCRIBE socket.io-response#* */
} fixture;

static void start(fixture *f)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", shared.port);
    rc_backplane_callbacks cb = {.on_state = on_state};
    bp_up = 0;
    f->bp = rc_backplane_redis_new(base, &(rc_backplane_redis_settings){.url = url, .prefix = "rc", .node_id = "node-a"}, &cb);
    assert_non_null(f->bp);
    assert_true(run_until(is_up, NULL, 3000));
    f->peer = rc_adapter_peer_new(f->bp, "socket.io", "self01", &local);
    f->codec = rc_socketio_codec_new();
    f->sub = rh_client(&shared);
    redisReply *r = redisCommand(f->sub, "PSUBSCRIBE socket.io-response#*");
    assert_non_null(r);
    freeReplyObject(r);
    struct timeval tv = {3, 0};
    redisSetTimeout(f->sub, tv);
    nemits = 0;
    acted[0] = '\0';
}

static void stop(fixture *f)
{
    rc_adapter_peer_free(f->peer);
    rc_socketio_codec_free(f->codec);
    f->bp->ops->free(f->bp);
    redisFree(f->sub);
}

static int req_bytes(fixture *f, const char *payload, size_t len)
{
    rc_socketio_request in;
    const char *why = rc_socketio_decode_request(f->codec, payload, len, &in);
    if (why) fail_msg("the codec refused the request: %s", why);
    return rc_adapter_peer_on_request(f->peer, f->codec, "/", &in);
}

static int req(fixture *f, const char *json)
{
    return req_bytes(f, json, strlen(json));
}

static int never(void *arg) { return 0; }

/* The next answer: its channel into chan, its payload returned (rc_free). */
static char *next_answer(fixture *f, char *chan, size_t chan_size, size_t *len)
{
    run_until(never, NULL, 50);   /* let the loop write the PUBLISHes */
    redisReply *r = NULL;
    assert_int_equal(redisGetReply(f->sub, (void **)&r), REDIS_OK);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);   /* pmessage, pattern, channel, payload */
    snprintf(chan, chan_size, "%s", r->element[2]->str);
    char *out = rc_malloc(r->element[3]->len + 1);
    memcpy(out, r->element[3]->str, r->element[3]->len + 1);
    if (len) *len = r->element[3]->len;
    freeReplyObject(r);
    return out;
}

static void expect_answer(fixture *f, const char *chan, const char *payload)
{
    char c[128];
    char *a = next_answer(f, c, sizeof(c), NULL);
    assert_string_equal(c, chan);
    assert_string_equal(a, payload);
    rc_free(a);
}

static double metric(const rc_adapter_peer *p, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    rc_adapter_peer_write_metrics(p, out);
    size_t len = evbuffer_get_length(out);
    char *text = rc_malloc(len + 1);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    evbuffer_free(out);
    char key[200];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = strstr(text, key);
    double v = at ? atof(at + strlen(key)) : -1;
    rc_free(text);
    return v;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_queries(void **state)
{
    fixture f;
    start(&f);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"q1\",\"type\":1}"), RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"q1\",\"rooms\":[\"r1\",\"sA\"]}");

    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"q2\",\"type\":5,"
                             "\"opts\":{\"rooms\":[\"r1\",\"r3\"],\"except\":[\"r2\"]}}"), RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#",
                  "{\"requestId\":\"q2\",\"sockets\":[{\"id\":\"sA\"},{\"id\":\"sC\"}]}");

    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"q3\",\"type\":0,\"rooms\":[\"r2\"]}"),
                     RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"q3\",\"sockets\":[\"sB\"]}");

    /* no uid: the shared response channel */
    assert_int_equal(req(&f, "{\"requestId\":\"q4\",\"type\":5,\"opts\":{\"rooms\":[\"nowhere\"]}}"),
                     RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#", "{\"requestId\":\"q4\",\"sockets\":[]}");
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_total{type=\"fetch_sockets\",result=\"answered\"}"), 2);
    stop(&f);
}

static void test_server_side_emit_and_control(void **state)
{
    fixture f;
    start(&f);
    /* serverSideEmit with an ack: answered with no data; without: the caller's */
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"e1\",\"type\":6,\"data\":[\"ping\",1]}"),
                     RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#", "{\"type\":6,\"requestId\":\"e1\"}");
    assert_int_equal(req(&f, "{\"uid\":\"emitter\",\"type\":6,\"data\":[\"ping\",1]}"), RC_ADAPTER_NOT_MINE);

    /* join/leave/disconnect with room options: the caller's */
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"type\":2,\"opts\":{\"rooms\":[\"r1\"],\"except\":[]},"
                             "\"rooms\":[\"r9\"]}"), RC_ADAPTER_NOT_MINE);
    assert_string_equal(acted, "");
    /* ...naming one socket: acted on and answered; a socket not here: silence */
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"j1\",\"type\":2,\"sid\":\"sB\",\"room\":\"r7\"}"),
                     RC_ADAPTER_HANDLED);
    assert_string_equal(acted, "2 sB r7 0");
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"j1\"}");
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"j2\",\"type\":4,\"sid\":\"zz\",\"close\":true}"),
                     RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"j3\",\"type\":4,\"sid\":\"sC\",\"close\":true}"),
                     RC_ADAPTER_HANDLED);
    assert_string_equal(acted, "4 sC - 1");
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"j3\"}");

    /* our own requests are ignored */
    assert_int_equal(req(&f, "{\"uid\":\"self01\",\"requestId\":\"o1\",\"type\":1}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"o2\",\"type\":1}"), RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"o2\",\"rooms\":[\"r1\",\"sA\"]}");
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_total{type=\"all_rooms\",result=\"ignored\"}"), 1);
    stop(&f);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A BROADCAST request as the adapter packs it: data ["ev", bin 010203, Date(1500), {"u": undefined}] */
static void pack_broadcast(msgpack_sbuffer *sb, const char *nsp, const char *room)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pack_str(&pk, "uid"); pack_str(&pk, "n2");
    pack_str(&pk, "requestId"); pack_str(&pk, "b1");
    pack_str(&pk, "type"); msgpack_pack_int(&pk, 7);
    pack_str(&pk, "packet");
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "type"); msgpack_pack_int(&pk, 2);
    pack_str(&pk, "data");
    msgpack_pack_array(&pk, 4);
    pack_str(&pk, "ev");
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "\x01\x02\x03", 3);
    msgpack_pack_ext(&pk, 8, -1);   /* timestamp 64: 1.5 s */
    msgpack_pack_ext_body(&pk, "\x77\x35\x94\x00\x00\x00\x00\x01", 8);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "u");
    msgpack_pack_ext(&pk, 1, 0);
    msgpack_pack_ext_body(&pk, "\x00", 1);
    pack_str(&pk, "nsp"); pack_str(&pk, nsp);
    pack_str(&pk, "opts");
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "rooms"); msgpack_pack_array(&pk, 1); pack_str(&pk, room);
    pack_str(&pk, "except"); msgpack_pack_array(&pk, 0);
    pack_str(&pk, "flags"); msgpack_pack_map(&pk, 1); pack_str(&pk, "timeout"); msgpack_pack_int(&pk, 300);
}

static void test_broadcast_with_acks(void **state)
{
    fixture f;
    start(&f);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_broadcast(&sb, "/", "r1");
    assert_int_equal(req_bytes(&f, sb.data, sb.size), RC_ADAPTER_HANDLED);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(nemits, 2);
    assert_string_equal(emits[0].sock, "sA");
    assert_string_equal(emits[1].sock, "sB");
    assert_string_equal(emits[0].event, "ev");
    assert_string_equal(emits[0].args, "[{\"_placeholder\":true,\"num\":0},\"1970-01-01T00:00:01.500Z\",{}]");
    assert_int_equal(emits[0].att_count, 1);
    assert_true(rc_adapter_peer_owns_ack(f.peer, emits[0].ctx));
    assert_false(rc_adapter_peer_owns_ack(f.peer, &f));
    expect_answer(&f, "socket.io-response#/#n2#", "{\"type\":8,\"requestId\":\"b1\",\"clientCount\":2}");

    /* a plain ack: JSON; an ack with binary: msgpack, as the adapter answers */
    cJSON *args = cJSON_Parse("[{\"ok\":1},\"ignored\"]");
    rc_adapter_peer_on_ack(f.peer, emits[0].ctx, args, NULL, 0);
    cJSON_Delete(args);
    expect_answer(&f, "socket.io-response#/#n2#", "{\"type\":9,\"requestId\":\"b1\",\"packet\":{\"ok\":1}}");
    args = cJSON_Parse("[{\"_placeholder\":true,\"num\":0}]");
    rc_bp_bytes bin = {(const uint8_t *)"\xff\x00", 2};
    rc_adapter_peer_on_ack(f.peer, emits[1].ctx, args, &bin, 1);
    cJSON_Delete(args);
    char chan[128];
    size_t len;
    char *a = next_answer(&f, chan, sizeof(chan), &len);
    assert_string_equal(chan, "socket.io-response#/#n2#");
    static const char want[] = "\x83\xa4type\x09\xa9requestId\xa2" "b1\xa6packet\xc4\x02\xff\x00";
    assert_int_equal(len, sizeof(want) - 1);
    assert_memory_equal(a, want, len);
    rc_free(a);

    /* after the broadcast's timeout: dropped and counted */
    run_until(never, NULL, 350);
    args = cJSON_Parse("[1]");
    rc_adapter_peer_on_ack(f.peer, emits[1].ctx, args, NULL, 0);
    cJSON_Delete(args);
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_broadcast_acks_total{result=\"late\"}"), 1);
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_broadcast_acks_total{result=\"relayed\"}"), 2);
    stop(&f);
}

static void test_json_broadcast(void **state)
{
    fixture f;
    start(&f);
    /* an adapter with a JSON parser: no binaries, the same answers */
    assert_int_equal(req(&f, "{\"uid\":\"n3\",\"requestId\":\"b2\",\"type\":7,\"packet\":{\"type\":2,"
                             "\"data\":[\"ev\",{\"a\":[1,2.5]}],\"nsp\":\"/\"},\"opts\":{\"rooms\":[\"r3\"],"
                             "\"except\":[],\"flags\":{\"timeout\":1000}}}"), RC_ADAPTER_HANDLED);
    assert_int_equal(nemits, 1);
    assert_string_equal(emits[0].sock, "sC");
    assert_string_equal(emits[0].args, "[{\"a\":[1,2.5]}]");
    expect_answer(&f, "socket.io-response#/#n3#", "{\"type\":8,\"requestId\":\"b2\",\"clientCount\":1}");
    rc_adapter_peer_on_ack(f.peer, emits[0].ctx, NULL, NULL, 0);   /* an ack with no argument */
    expect_answer(&f, "socket.io-response#/#n3#", "{\"type\":9,\"requestId\":\"b2\"}");
    /* nobody selected: a count of 0 at once */
    assert_int_equal(req(&f, "{\"uid\":\"n3\",\"requestId\":\"b3\",\"type\":7,\"packet\":{\"type\":2,"
                             "\"data\":[\"ev\"]},\"opts\":{\"rooms\":[\"empty\"]}}"), RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n3#", "{\"type\":8,\"requestId\":\"b3\",\"clientCount\":0}");
    stop(&f);
}

static void test_refused(void **state)
{
    fixture f;
    start(&f);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":8,\"clientCount\":1}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":9}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"type\":5,\"opts\":{}}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":2,\"sid\":\"sA\"}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":3,\"sid\":7,\"room\":\"r\"}"), RC_ADAPTER_HANDLED);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_broadcast(&sb, "/chat", "r1");   /* a packet for another namespace */
    assert_int_equal(req_bytes(&f, sb.data, sb.size), RC_ADAPTER_HANDLED);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":7,\"packet\":{\"type\":2,"
                             "\"data\":[\"disconnect\"]},\"opts\":{}}"), RC_ADAPTER_HANDLED); /* reserved */
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"x\",\"type\":7,\"packet\":{\"type\":2,"
                             "\"data\":[]},\"opts\":{}}"), RC_ADAPTER_HANDLED);
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"type\":7,\"packet\":{\"type\":2,\"data\":[\"e\"]}}"),
                     RC_ADAPTER_HANDLED);   /* no requestId */

    /* nothing was acted on or published: the next answer is this one */
    assert_int_equal(nemits, 0);
    assert_string_equal(acted, "");
    assert_int_equal(req(&f, "{\"uid\":\"n1\",\"requestId\":\"ok\",\"type\":1}"), RC_ADAPTER_HANDLED);
    expect_answer(&f, "socket.io-response#/#n1#", "{\"requestId\":\"ok\",\"rooms\":[\"r1\",\"sA\"]}");
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_refused_total{reason=\"unknown_type\"}"), 2);
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_refused_total{reason=\"bad_field\"}"), 6);
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_refused_total{reason=\"wrong_namespace\"}"), 1);
    assert_int_equal((int)metric(f.peer, "roomcast_adapter_requests_total{type=\"broadcast\",result=\"refused\"}"), 4);
    stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_side_emit_and_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_with_acks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_broadcast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
