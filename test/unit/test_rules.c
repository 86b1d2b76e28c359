/*
 * test_rules.c: the rules language (src/rules_compile.c, src/rules_run.c) against a fake
 * rc_rule_ops that records every call as a line of text: join authorization (claims globs, user
 * room, already a member, allow "any"), relay defaults, emit/onAck, ack, onError, if/unless,
 * disconnect, fail, forward, presence, the built-in default namespace, strict compile errors
 * with their paths, and rc_glob_match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/common.h"
#include "roomcast/rules.h"

/* ---- the fake node ------------------------------------------------------------------------ */

typedef struct fake {
    char log[8192];
    char members[16][64];
    size_t nmembers;
    const char *relay_result;
    const char *join_result;
    const void *on_ack;
    const void *then;
} fake;

static void logf_(fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(fake *f, const char *fmt, ...)
{
    size_t n = strlen(f->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
    va_end(ap);
}

static char *json_of(const cJSON *j)
{
    return j ? cJSON_PrintUnformatted(j) : strdup("<null>");
}

static const char *f_join(void *target, const char *room)
{
    fake *f = target;
    logf_(f, "join %s\n", room);
    if (f->join_result) return f->join_result;
    if (f->nmembers < 16) snprintf(f->members[f->nmembers++], 64, "%s", room);
    return NULL;
}

static const char *f_leave(void *target, const char *room)
{
    logf_(target, "leave %s\n", room);
    return NULL;
}

static int f_is_member(void *target, const char *room)
{
    fake *f = target;
    for (size_t i = 0; i < f->nmembers; i++)
        if (strcmp(f->members[i], room) == 0) return 1;
    return 0;
}

static const char *f_relay(void *target, const char *room, const char *event, cJSON *args, int include_sender)
{
    fake *f = target;
    char *a = json_of(args);
    logf_(f, "relay %s %s %s sender=%d\n", room, event, a, include_sender);
    free(a);
    cJSON_Delete(args);
    return f->relay_result;
}

static void f_emit(void *target, const char *event, cJSON *args, const void *on_ack)
{
    fake *f = target;
    char *a = json_of(args);
    logf_(f, "emit %s %s%s\n", event, a, on_ack ? " +onAck" : "");
    free(a);
    cJSON_Delete(args);
    f->on_ack = on_ack;
}

static void f_ack(void *target, cJSON *args)
{
    char *a = json_of(args);
    logf_(target, "ack %s\n", a);
    free(a);
    cJSON_Delete(args);
}

static void f_disconnect(void *target)
{
    logf_(target, "disconnect\n");
}

static const char *f_forward(void *target, const char *event, cJSON *data)
{
    char *a = json_of(data);
    logf_(target, "forward %s %s\n", event, a);
    free(a);
    cJSON_Delete(data);
    return NULL;
}

static const char *f_presence(void *target, cJSON *users, const void *then)
{
    fake *f = target;
    char *a = json_of(users);
    logf_(f, "presence %s\n", a);
    free(a);
    cJSON_Delete(users);
    f->then = then;
    return NULL;
}

static const rc_rule_ops ops = {
    .join = f_join, .leave = f_leave, .is_member = f_is_member, .relay = f_relay, .emit = f_emit,
    .ack = f_ack, .disconnect = f_disconnect, .forward = f_forward, .presence = f_presence,
};

/* Same, without the optional ops. */
static const rc_rule_ops ops_min = {
    .join = f_join, .leave = f_leave, .is_member = f_is_member, .relay = f_relay, .emit = f_emit,
    .ack = f_ack, .disconnect = f_disconnect,
};

/* ---- helpers ------------------------------------------------------------------------------ */

#define assert_prefix(s, prefix)                                                                   \
    do {                                                                                           \
        if (strncmp((s), (prefix), strlen(prefix)) != 0) fail_msg("'%s' does not start with '%s'", (s), (prefix)); \
    } while (0)

static rc_rules *compile(const char *json)
{
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (json) assert_non_null(j);
    rc_config_errors errs = {0};
    rc_rules *r = rc_rules_compile(j, "namespaces", &errs);
    for (size_t i = 0; i < errs.count; i++) print_error("%s\n", errs.items[i]);
    assert_int_equal(errs.count, 0);
    assert_non_null(r);
    rc_config_errors_dispose(&errs);
    cJSON_Delete(j);
    return r;
}

static const char *claims_42 = "{\"sub\":\"42\",\"rooms\":[\"project_*\",\"chat:?\"],\"team\":\"blue\"}";

typedef struct call {
    const char *ns;
    const char *event;   /* NULL: connect */
    const char *args;    /* JSON array text */
    const char *user;
    const char *claims;
    int has_ack;
} call;

/* Runs one event; returns rc_rules_run's result. */
static int run(const rc_rules *rules, fake *f, const rc_rule_ops *o, call c)
{
    const rc_ns_rules *ns = rc_rules_find_ns(rules, c.ns ? c.ns : "/", strlen(c.ns ? c.ns : "/"));
    assert_non_null(ns);
    cJSON *args = c.args ? cJSON_Parse(c.args) : NULL;
    if (c.args) assert_non_null(args);
    cJSON *auth = cJSON_Parse("{\"token\":\"T\",\"device\":\"web\"}");
    rc_rule_input in = {
        .ns = c.ns ? c.ns : "/", .sid = "S1", .user = c.user, .claims_json = c.claims, .auth = auth,
        .event = c.event, .args = args, .has_ack = c.has_ack,
    };
    int r = rc_rules_run(ns, &in, o ? o : &ops, f);
    cJSON_Delete(args);
    cJSON_Delete(auth);
    return r;
}

/* Runs an onAck / then continuation recorded by the fake. */
static void run_cont(const rc_rules *rules, fake *f, const void *cont, const char *event, const char *args,
                     int has_ack)
{
    const rc_ns_rules *ns = rc_rules_ns_at(rules, 0);
    cJSON *a = cJSON_Parse(args);
    rc_rule_input in = {.ns = rc_ns_rules_name(ns), .sid = "S1", .user = "42", .claims_json = claims_42,
                        .event = event, .args = a, .has_ack = has_ack};
    rc_rules_run_ack(ns, cont, &in, &ops, f);
    cJSON_Delete(a);
}

/* ---- the default namespace ---------------------------------------------------------------- */

static void test_default_rules(void **state)
{
    rc_rules *r = compile(NULL);
    assert_int_equal(rc_rules_ns_count(r), 1);
    const rc_ns_rules *ns = rc_rules_ns_at(r, 0);
    assert_string_equal(rc_ns_rules_name(ns), "/");
    assert_int_equal(rc_ns_rules_auth(ns), RC_NS_AUTH_REQUIRED);
    assert_int_equal(rc_ns_rules_token_in_query(ns), 0);
    assert_null(rc_rules_find_ns(r, "/chat", 5));
    assert_ptr_equal(rc_rules_find_ns(r, "/x", 1), ns);

    fake f = {0};
    /* allowed by a glob of the rooms claim; payload {"room": ...} */
    assert_int_equal(run(r, &f, NULL, (call){.event = "join", .args = "[{\"room\":\"project_1\"}]",
                                             .user = "42", .claims = claims_42, .has_ack = 1}), 1);
    assert_string_equal(f.log, "join project_1\nack [{\"ok\":true,\"room\":\"project_1\"}]\n");

    /* bare room name; '?' glob */
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = "[\"chat:7\"]", .user = "42", .claims = claims_42, .has_ack = 1});
    assert_string_equal(f.log, "join chat:7\nack [{\"ok\":true,\"room\":\"chat:7\"}]\n");

    /* not matched by any glob: forbidden, answered by the rule's onError */
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = "[\"chat:77\"]", .user = "42", .claims = claims_42, .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");

    /* own user room, with no rooms claim at all */
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = "[\"user:42\"]", .user = "42", .claims = "{\"sub\":\"42\"}",
                            .has_ack = 1});
    assert_string_equal(f.log, "join user:42\nack [{\"ok\":true,\"room\":\"user:42\"}]\n");
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = "[\"user:43\"]", .user = "42", .claims = "{\"sub\":\"42\"}",
                            .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");

    /* already a member (put there by a control op) */
    memset(&f, 0, sizeof(f));
    strcpy(f.members[f.nmembers++], "secret");
    run(r, &f, NULL, (call){.event = "join", .args = "[{\"room\":\"secret\"}]", .user = "42", .claims = claims_42,
                            .has_ack = 1});
    assert_string_equal(f.log, "join secret\nack [{\"ok\":true,\"room\":\"secret\"}]\n");

    /* bad rooms */
    static const char *const bad[] = {"[{}]", "[42]", "[\"\"]", "[]", "[{\"room\":5}]", "[null]"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        memset(&f, 0, sizeof(f));
        run(r, &f, NULL, (call){.event = "join", .args = bad[i], .user = "42", .claims = claims_42, .has_ack = 1});
        assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_room\"}]\n");
    }
    char long_room[260];
    memset(long_room, 0, sizeof(long_room));
    strcpy(long_room, "[\"project_");
    memset(long_room + strlen(long_room), 'x', 195);
    strcat(long_room, "\"]");
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = long_room, .user = "42", .claims = claims_42, .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_room\"}]\n");

    /* leave; no ack asked: nothing answered */
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "leave", .args = "[\"anything\"]", .user = "42", .claims = claims_42});
    assert_string_equal(f.log, "leave anything\n");
    memset(&f, 0, sizeof(f));
    run(r, &f, NULL, (call){.event = "join", .args = "[\"nope\"]", .user = "42", .claims = claims_42});
    assert_string_equal(f.log, "");

    /* unknown event: no rule */
    memset(&f, 0, sizeof(f));
    assert_int_equal(run(r, &f, NULL, (call){.event = "other", .args = "[]", .user = "42", .has_ack = 1}), 0);
    assert_string_equal(f.log, "");

    /* connect: an empty onConnect still "exists" */
    assert_int_equal(run(r, &f, NULL, (call){.user = "42"}), 1);
    assert_string_equal(f.log, "");

    /* user room of the default namespace */
    char *room = rc_ns_rules_user_room(ns, "42", NULL);
    assert_string_equal(room, "user:42");
    free(room);
    assert_null(rc_ns_rules_user_room(ns, NULL, NULL));
    rc_rules_free(r);
}

/* ---- join authorization ------------------------------------------------------------------- */

static void test_join_allow(void **state)
{
    rc_rules *r = compile(
        "{\"/\": {\"joinAllow\": [\"team:{claims.team}\", \"{claims.extra}\"], \"userRoom\": \"u/{ns}/{user}\","
        "  \"events\": {"
        "    \"any\":   [{\"join\": \"{data}\", \"allow\": \"any\"}],"
        "    \"ns\":    [{\"join\": \"{data}\"}],"
        "    \"none\":  [{\"join\": \"{data}\", \"allow\": []}],"
        "    \"lit\":   [{\"join\": \"{data}\", \"allow\": [\"lobby\", \"p_*_x\"]}]"
        "}}}");
    const char *claims = "{\"sub\":\"7\",\"team\":\"blue\",\"extra\":[\"e1\",\"e2*\",5]}";
    static const struct { const char *event, *room; int ok; } cases[] = {
        {"any", "whatever", 1},
        {"ns", "team:blue", 1},   {"ns", "team:red", 0},   {"ns", "e1", 1},    {"ns", "e2-more", 1},
        {"ns", "5", 0},           {"ns", "u///7", 1},      {"ns", "u///8", 0},
        {"none", "team:blue", 0}, {"none", "u///7", 1},
        {"lit", "lobby", 1},      {"lit", "p_1_x", 1},     {"lit", "p_1_y", 0}, {"lit", "team:blue", 0},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++) {
        fake f = {0};
        char args[128], want[160];
        snprintf(args, sizeof(args), "[\"%s\"]", cases[i].room);
        run(r, &f, NULL, (call){.event = cases[i].event, .args = args, .user = "7", .claims = claims, .has_ack = 1});
        if (cases[i].ok) snprintf(want, sizeof(want), "join %s\n", cases[i].room);
        else snprintf(want, sizeof(want), "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");
        if (strcmp(f.log, want) != 0) fail_msg("case %zu (%s %s): got '%s'", i, cases[i].event, cases[i].room, f.log);
    }
    /* a glob with a missing placeholder allows nothing (not the room "team:") */
    fake f0 = {0};
    run(r, &f0, NULL, (call){.event = "ns", .args = "[\"team:\"]", .user = "7", .claims = "{\"sub\":\"7\"}", .has_ack = 1});
    assert_string_equal(f0.log, "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");
    /* an anonymous socket has no user room */
    fake f = {0};
    run(r, &f, NULL, (call){.event = "none", .args = "[\"u//\"]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");
    /* a failing node join is the rule's failure */
    memset(&f, 0, sizeof(f));
    f.join_result = "backplane_down";
    run(r, &f, NULL, (call){.event = "any", .args = "[\"x\"]", .user = "7", .claims = claims, .has_ack = 1});
    assert_string_equal(f.log, "join x\nack [{\"ok\":false,\"error\":\"backplane_down\"}]\n");

    /* a value the client chose never widens an allow list: "team_{data.team}" with team "*" would
     * be the glob "team_*" (every team); it is treated as missing instead, so only the exact room
     * of a team without glob characters is allowed */
    rc_rules *rc = compile(
        "{\"/\": {\"events\": {"
        "    \"t\": [{\"join\": \"{data.room}\", \"allow\": [\"team_{data.team}\", \"{data.also}\"]}]"
        "}}}");
    static const struct { const char *args; int ok; } client_globs[] = {
        {"[{\"room\": \"team_blue\", \"team\": \"blue\"}]", 1},
        {"[{\"room\": \"team_red\", \"team\": \"*\"}]", 0},
        {"[{\"room\": \"team_red\", \"team\": \"re?\"}]", 0},
        {"[{\"room\": \"team_red\", \"team\": \"blue\", \"also\": [\"x\", \"team_*\"]}]", 0},
        {"[{\"room\": \"x\", \"team\": \"blue\", \"also\": [\"x\", \"y\"]}]", 1},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(client_globs); i++) {
        fake fg = {0};
        run(rc, &fg, NULL, (call){.event = "t", .args = client_globs[i].args, .user = "7", .claims = claims, .has_ack = 1});
        int joined = strncmp(fg.log, "join ", 5) == 0;
        if (joined != client_globs[i].ok) fail_msg("client glob case %zu: got '%s'", i, fg.log);
    }
    rc_rules_free(rc);

    char *room = rc_ns_rules_user_room(rc_rules_ns_at(r, 0), "7", claims);
    assert_string_equal(room, "u///7");
    free(room);
    rc_rules_free(r);

    r = compile("{\"/\": {\"userRoom\": null}}");
    assert_null(rc_ns_rules_user_room(rc_rules_ns_at(r, 0), "7", NULL));
    rc_rules_free(r);
}

/* ---- relay -------------------------------------------------------------------------------- */

static void test_relay(void **state)
{
    rc_rules *r = compile(
        "{\"/chat\": {\"events\": {"
        "  \"msg\":   [{\"relay\": {\"room\": \"chat:{data.roomId}\"}}],"
        "  \"msg2\":  [{\"relay\": {\"room\": \"chat:{data.roomId}\", \"event\": \"message:new\", \"includeSender\": true,"
        "                          \"data\": {\"from\": \"{user}\", \"text\": \"{data.text}\"}}}],"
        "  \"msg3\":  [{\"relay\": {\"room\": \"chat:{data.roomId}\", \"args\": [\"{data.text}\", \"{args.1}\"],"
        "                          \"requireMember\": false}}],"
        "  \"msg4\":  [{\"relay\": {\"room\": \"chat:{data.roomId}\", \"args\": \"{data.text}\"}}],"
        "  \"dm\":    [{\"relay\": {\"room\": \"user:{data.to}\", \"event\": \"dm\", \"requireMember\": false,"
        "                          \"data\": \"{data.text}\"}}, {\"ack\": \"{room}\"}],"
        "  \"typed\": [{\"relay\": {\"room\": \"r\", \"event\": \"{data.event}\", \"requireMember\": false}}]"
        "}}}");
    fake f = {0};
    strcpy(f.members[f.nmembers++], "chat:1");

    /* defaults: same event, the received arguments (binary placeholders untouched), sender excluded */
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg", .user = "42",
                            .args = "[{\"roomId\":1,\"file\":{\"_placeholder\":true,\"num\":0}},\"two\"]"});
    assert_string_equal(f.log, "relay chat:1 msg [{\"roomId\":1,\"file\":{\"_placeholder\":true,\"num\":0}},\"two\"]"
                               " sender=0\n");

    /* requireMember (default): not in chat:2 */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg", .user = "42", .args = "[{\"roomId\":2}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n");

    /* missing room value: bad_room (a missing piece fails even inside "chat:...") */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg", .user = "42", .args = "[{}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_room\"}]\n");

    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg2", .user = "42", .args = "[{\"roomId\":\"1\",\"text\":\"hi\"}]"});
    assert_string_equal(f.log, "relay chat:1 message:new [{\"from\":\"42\",\"text\":\"hi\"}] sender=1\n");

    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg3", .user = "42", .args = "[{\"roomId\":9,\"text\":\"t\"}]"});
    assert_string_equal(f.log, "relay chat:9 msg3 [\"t\",null] sender=0\n");

    /* args must be an array */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg4", .user = "42", .args = "[{\"roomId\":1,\"text\":\"t\"}]",
                            .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_args\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "msg4", .user = "42", .args = "[{\"roomId\":1,\"text\":[1,2]}]"});
    assert_string_equal(f.log, "relay chat:1 msg4 [1,2] sender=0\n");

    /* a direct message to another user's room, {room} afterwards */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "dm", .user = "42", .args = "[{\"to\":\"7\",\"text\":\"yo\"}]",
                            .has_ack = 1});
    assert_string_equal(f.log, "relay user:7 dm [\"yo\"] sender=0\nack [\"user:7\"]\n");

    /* backplane failure */
    f.log[0] = 0;
    f.relay_result = "backplane_down";
    run(r, &f, NULL, (call){.ns = "/chat", .event = "dm", .user = "42", .args = "[{\"to\":\"7\"}]", .has_ack = 1});
    assert_string_equal(f.log, "relay user:7 dm [null] sender=0\nack [{\"ok\":false,\"error\":\"backplane_down\"}]\n");
    f.relay_result = NULL;

    /* event names from templates: reserved names and empty names are refused */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "typed", .args = "[{\"event\":\"disconnect\"}]", .has_ack = 1});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "typed", .args = "[{\"event\":\"\"}]", .has_ack = 1});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "typed", .args = "[{\"event\":\"ok\"}]"});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_event\"}]\n"
                               "ack [{\"ok\":false,\"error\":\"bad_event\"}]\n"
                               "relay r ok [{\"event\":\"ok\"}] sender=0\n");
    rc_rules_free(r);
}

/* ---- onError, if/unless, fail, ack once, disconnect --------------------------------------- */

static void test_on_error_and_flow(void **state)
{
    rc_rules *r = compile(
        "{\"/\": {\"events\": {"
        "  \"j\": {\"do\": [{\"join\": \"room:{data}\"}, {\"emit\": {\"event\": \"joined\", \"data\": {\"roomId\": \"{room}\"}}}],"
        "         \"onError\": [{\"emit\": {\"event\": \"system:error\", \"data\": {\"code\": \"{error}\", \"room\": \"{room}\"}}}]},"
        "  \"cond\": [{\"ack\": \"yes\", \"if\": \"{data.flag}\"}, {\"ack\": \"no\", \"unless\": \"{data.flag}\"}],"
        "  \"cond2\": [{\"emit\": {\"event\": \"a\"}, \"if\": \"{data.flag}\"},"
        "             {\"emit\": {\"event\": \"b\"}, \"unless\": \"{data.flag}\"},"
        "             {\"emit\": {\"event\": \"c\"}, \"if\": \"{data.flag}\", \"unless\": \"{data.other}\"}],"
        "  \"f\": {\"do\": [{\"fail\": \"too_{data}\"}, {\"ack\": \"unreached\"}],"
        "         \"onError\": [{\"ack\": {\"err\": \"{error}\"}}, {\"ack\": \"second\"}]},"
        "  \"f2\": [{\"fail\": \"{data.none}\"}],"
        "  \"f3\": {\"do\": [{\"fail\": \"x\"}], \"onError\": [{\"fail\": \"y\"}, {\"ack\": \"unreached\"}]},"
        "  \"twice\": [{\"ack\": 1}, {\"ackArgs\": [2, 3]}, {\"fail\": \"late\"}],"
        "  \"args\": [{\"ackArgs\": \"{args}\"}],"
        "  \"badargs\": [{\"ackArgs\": \"{data}\"}],"
        "  \"bye\": [{\"ack\": \"bye\"}, {\"disconnect\": true}, {\"emit\": {\"event\": \"unreached\"}}],"
        "  \"byefail\": [{\"disconnect\": true}, {\"fail\": \"unreached\"}]"
        "}}}");
    fake f = {0};
    const char *cl = "{\"rooms\":[\"room:*\"]}";
    run(r, &f, NULL, (call){.event = "j", .args = "[\"1\"]", .user = "42", .claims = cl});
    assert_string_equal(f.log, "join room:1\nemit joined [{\"roomId\":\"room:1\"}]\n");
    f.log[0] = 0;
    f.nmembers = 0; /* else "already a member" allows it */
    run(r, &f, NULL, (call){.event = "j", .args = "[\"1\"]", .user = "42", .claims = "{}", .has_ack = 1});
    assert_string_equal(f.log, "emit system:error [{\"code\":\"forbidden\",\"room\":\"room:1\"}]\n"); /* onError: no ack */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "j", .args = "[{}]", .user = "42", .claims = cl});
    assert_string_equal(f.log, "emit system:error [{\"code\":\"bad_room\"}]\n"); /* {room} unset */

    static const struct { const char *args, *want; } conds[] = {
        {"[{\"flag\":true}]", "ack [\"yes\"]\n"}, {"[{\"flag\":1}]", "ack [\"yes\"]\n"},
        {"[{\"flag\":\"x\"}]", "ack [\"yes\"]\n"}, {"[{\"flag\":[]}]", "ack [\"yes\"]\n"},
        {"[{\"flag\":false}]", "ack [\"no\"]\n"}, {"[{\"flag\":0}]", "ack [\"no\"]\n"},
        {"[{\"flag\":\"\"}]", "ack [\"no\"]\n"},  {"[{\"flag\":null}]", "ack [\"no\"]\n"},
        {"[{}]", "ack [\"no\"]\n"},                {"[]", "ack [\"no\"]\n"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(conds); i++) {
        f.log[0] = 0;
        run(r, &f, NULL, (call){.event = "cond", .args = conds[i].args, .has_ack = 1});
        if (strcmp(f.log, conds[i].want) != 0) fail_msg("cond %zu: got '%s'", i, f.log);
    }
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "cond2", .args = "[{\"flag\":1}]"});
    run(r, &f, NULL, (call){.event = "cond2", .args = "[{\"flag\":1,\"other\":1}]"});
    run(r, &f, NULL, (call){.event = "cond2", .args = "[{}]"});
    assert_string_equal(f.log, "emit a []\nemit c []\nemit a []\nemit b []\n");

    /* comparisons: {"equals": [A, B]} and {"in": [A, [..]]} compare JSON values, types included */
    rc_rules *rc = compile(
        "{\"/\": {\"events\": {"
        "  \"eq\": [{\"ack\": \"access\", \"if\": {\"equals\": [\"{claims.type}\", \"access\"]}},"
        "          {\"ack\": \"other\", \"unless\": {\"$comment\": \"c\", \"equals\": [\"{claims.type}\", \"access\"]}}],"
        "  \"in\": [{\"ack\": \"bool\", \"if\": {\"in\": [\"{data.isOnline}\", [true, false]]}},"
        "          {\"ack\": \"not\", \"unless\": {\"in\": [\"{data.isOnline}\", [true, false]]}}],"
        "  \"same\": [{\"ack\": \"same\", \"if\": {\"equals\": [\"{data.a}\", \"{data.b}\"]}}],"
        "  \"obj\": [{\"ack\": \"truthy\", \"if\": {\"equals\": 1, \"x\": 2}}],"
        "  \"mem\": [{\"fail\": \"forbidden\", \"unless\": {\"member\": \"conversation:{data.id}\"}}, {\"ack\": \"member\"}],"
        "  \"*\": [{\"emit\": {\"event\": \"system:error\", \"data\": {\"code\": \"unknown_event\", \"event\": \"{event}\"}}},"
        "         {\"ack\": {\"ok\": false, \"error\": \"unknown_event\"}}]"
        "}}}");
    static const struct { const char *event, *args, *claims, *want; } cmps[] = {
        {"eq", "[]", "{\"type\":\"access\"}", "ack [\"access\"]\n"},
        {"eq", "[]", "{\"type\":\"refresh\"}", "ack [\"other\"]\n"},
        {"eq", "[]", "{\"type\":\"Access\"}", "ack [\"other\"]\n"},   /* case-sensitive */
        {"eq", "[]", "{}", "ack [\"other\"]\n"},                        /* missing */
        {"eq", "[]", "{\"type\":[\"access\"]}", "ack [\"other\"]\n"}, /* an array is not its element */
        {"in", "[{\"isOnline\":true}]", "{}", "ack [\"bool\"]\n"},
        {"in", "[{\"isOnline\":false}]", "{}", "ack [\"bool\"]\n"},
        {"in", "[{\"isOnline\":\"false\"}]", "{}", "ack [\"not\"]\n"},
        {"in", "[{\"isOnline\":0}]", "{}", "ack [\"not\"]\n"},
        {"in", "[{\"isOnline\":null}]", "{}", "ack [\"not\"]\n"},
        {"in", "[{}]", "{}", "ack [\"not\"]\n"},
        {"same", "[{\"a\":{\"x\":[1,2]},\"b\":{\"x\":[1,2]}}]", "{}", "ack [\"same\"]\n"},
        {"same", "[{\"a\":1,\"b\":\"1\"}]", "{}", ""},                    /* 1 is not "1" */
        {"same", "[{}]", "{}", "ack [\"same\"]\n"},                    /* two missing values are equal */
        {"obj", "[]", "{}", "ack [\"truthy\"]\n"},                     /* two keys: a plain template */
        /* {"member": room}: the fake's member list holds "conversation:7" (set below) */
        {"mem", "[{\"id\":7}]", "{}", "ack [\"member\"]\n"},
        {"mem", "[{\"id\":8}]", "{}", "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n"},
        {"mem", "[{}]", "{}", "ack [{\"ok\":false,\"error\":\"forbidden\"}]\n"}, /* no room name */
        /* no rule of its own: the catch-all "*" runs, with {event} the received name */
        {"nope", "[1]", "{}", "emit system:error [{\"code\":\"unknown_event\",\"event\":\"nope\"}]\n"
                              "ack [{\"ok\":false,\"error\":\"unknown_event\"}]\n"},
    };
    f.nmembers = 0;
    strcpy(f.members[f.nmembers++], "conversation:7");
    for (size_t i = 0; i < RC_ARRAY_LEN(cmps); i++) {
        f.log[0] = 0;
        run(rc, &f, NULL, (call){.event = cmps[i].event, .args = cmps[i].args, .claims = cmps[i].claims, .has_ack = 1});
        if (strcmp(f.log, cmps[i].want) != 0) fail_msg("comparison %zu: got '%s'", i, f.log);
    }
    rc_rules_free(rc);

    /* fail: reason from a template; onError answers once */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "f", .args = "[\"big\"]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"err\":\"too_big\"}]\n");
    /* empty reason: "failed"; default ack error */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "f2", .args = "[{}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"failed\"}]\n");
    /* a failure inside onError stops onError, nothing else happens */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "f3", .args = "[]", .has_ack = 1});
    assert_string_equal(f.log, "");

    /* an ack is answered once: later acks and the default error are not sent */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "twice", .args = "[]", .has_ack = 1});
    assert_string_equal(f.log, "ack [1]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "args", .args = "[1,{\"a\":2}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [1,{\"a\":2}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "badargs", .args = "[{\"a\":2}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_args\"}]\n");

    /* disconnect stops the rule */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "bye", .args = "[]", .has_ack = 1});
    assert_string_equal(f.log, "ack [\"bye\"]\ndisconnect\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "byefail", .args = "[]", .has_ack = 1});
    assert_string_equal(f.log, "disconnect\n");
    rc_rules_free(r);
}

/* ---- emit, onAck, onConnect ----------------------------------------------------------------- */

static void test_emit_on_ack_and_connect(void **state)
{
    rc_rules *r = compile(
        "{\"/notifications\": {\"auth\": \"optional\", \"tokenInQuery\": true,"
        "  \"onConnect\": [{\"emit\": {\"event\": \"connected\", \"data\": {\"userId\": \"{user}\", \"timestamp\": \"{now}\","
        "                                                   \"device\": \"{auth.device}\"}}},"
        "                 {\"join\": \"lobby\", \"allow\": \"any\"}],"
        "  \"events\": {"
        "    \"ping\":  [{\"emit\": {\"event\": \"pong\", \"data\": {\"at\": \"{nowIso}\"}}}],"
        "    \"ask\":   [{\"emit\": {\"event\": \"confirm?\", \"args\": [\"{data.q}\", 2],"
        "                          \"onAck\": {\"do\": [{\"relay\": {\"room\": \"lobby\", \"event\": \"answered\","
        "                                                           \"data\": {\"answer\": \"{data}\", \"q\": \"{event}\"}}}],"
        "                                     \"onError\": [{\"emit\": {\"event\": \"oops\", \"data\": \"{error}\"}}]}}}]"
        "}}}");
    const rc_ns_rules *ns = rc_rules_ns_at(r, 0);
    assert_int_equal(rc_ns_rules_auth(ns), RC_NS_AUTH_OPTIONAL);
    assert_int_equal(rc_ns_rules_token_in_query(ns), 1);

    fake f = {0};
    assert_int_equal(run(r, &f, NULL, (call){.ns = "/notifications", .user = "42", .claims = claims_42}), 1);
    /* {now} is a number of ms: check the shape */
    assert_non_null(strstr(f.log, "emit connected [{\"userId\":\"42\",\"timestamp\":1"));
    assert_non_null(strstr(f.log, ",\"device\":\"web\"}]\njoin lobby\n"));

    /* anonymous: {user} missing -> key omitted */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications"});
    assert_prefix(f.log, "emit connected [{\"timestamp\":");

    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "ping", .args = "[]"});
    assert_prefix(f.log, "emit pong [{\"at\":\"20");
    assert_non_null(strstr(f.log, "Z\"}]\n"));

    f.log[0] = 0;
    f.on_ack = NULL;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "ask", .args = "[{\"q\":\"sure\"}]", .user = "42"});
    assert_string_equal(f.log, "emit confirm? [\"sure\",2] +onAck\n");
    assert_non_null(f.on_ack);

    /* the client acks: its arguments are {args}/{data}, {event} is the emitted event */
    f.log[0] = 0;
    run_cont(r, &f, f.on_ack, "confirm?", "[\"yes\"]", 0);
    assert_string_equal(f.log, "relay lobby answered [{\"answer\":\"yes\",\"q\":\"confirm?\"}] sender=0\n");
    f.log[0] = 0;
    f.relay_result = "backplane_down";
    run_cont(r, &f, f.on_ack, "confirm?", "[]", 0);
    assert_string_equal(f.log, "relay lobby answered [{\"q\":\"confirm?\"}] sender=0\nemit oops [\"backplane_down\"]\n");
    /* NULL continuation: nothing */
    f.log[0] = 0;
    run_cont(r, &f, NULL, "x", "[]", 0);
    assert_string_equal(f.log, "");
    rc_rules_free(r);
}

/* ---- forward and presence ----------------------------------------------------------------- */

static void test_forward_and_presence(void **state)
{
    rc_rules *r = compile(
        "{\"/\": {\"events\": {"
        "  \"save\":  [{\"forward\": true}, {\"ack\": {\"ok\": true}}],"
        "  \"save2\": [{\"forward\": {\"event\": \"chat.saved\", \"data\": {\"by\": \"{user}\", \"msg\": \"{data}\"}}}],"
        "  \"who\":   [{\"presence\": {\"users\": \"{data.userIds}\","
        "                             \"then\": [{\"emit\": {\"event\": \"online-status\", \"data\": {\"status\": \"{data}\"}}},"
        "                                        {\"ack\": {\"status\": \"{data}\"}}]}}],"
        "  \"one\":   [{\"presence\": {\"users\": \"{data.userId}\", \"then\": [{\"ack\": \"{data}\"}]}}]"
        "}}}");
    fake f = {0};
    run(r, &f, NULL, (call){.event = "save", .args = "[{\"t\":1},2]", .user = "42", .has_ack = 1});
    assert_string_equal(f.log, "forward save {\"t\":1}\nack [{\"ok\":true}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "save", .args = "[]", .user = "42"});
    assert_string_equal(f.log, "forward save null\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "save2", .args = "[\"m\"]", .user = "42"});
    assert_string_equal(f.log, "forward chat.saved {\"by\":\"42\",\"msg\":\"m\"}\n");

    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "who", .args = "[{\"userIds\":[\"1\",2,\"3\"]}]", .user = "42", .has_ack = 1});
    assert_string_equal(f.log, "presence [\"1\",\"2\",\"3\"]\n");
    assert_non_null(f.then);
    f.log[0] = 0;
    run_cont(r, &f, f.then, "who", "[{\"1\":true,\"2\":false,\"3\":true}]", 1);
    assert_string_equal(f.log, "emit online-status [{\"status\":{\"1\":true,\"2\":false,\"3\":true}}]\n"
                               "ack [{\"status\":{\"1\":true,\"2\":false,\"3\":true}}]\n");

    /* one user as a string; bad user lists */
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "one", .args = "[{\"userId\":\"9\"}]", .has_ack = 1});
    assert_string_equal(f.log, "presence [\"9\"]\n");
    static const char *const bad[] = {"[{}]", "[{\"userIds\":[]}]", "[{\"userIds\":[{}]}]", "[{\"userIds\":\"\"}]",
                                      "[{\"userIds\":[\"\"]}]"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        f.log[0] = 0;
        run(r, &f, NULL, (call){.event = "who", .args = bad[i], .has_ack = 1});
        if (strcmp(f.log, "ack [{\"ok\":false,\"error\":\"bad_args\"}]\n") != 0) fail_msg("bad %zu: '%s'", i, f.log);
    }
    /* at most 1,000 users in one query */
    static char many[16384] = "[{\"userIds\":[";
    for (int i = 0; i < 1001; i++) sprintf(many + strlen(many), "%s\"%d\"", i ? "," : "", i);
    strcat(many, "]}]");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "who", .args = many, .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"bad_args\"}]\n");

    /* a node without these ops: unsupported */
    f.log[0] = 0;
    run(r, &f, &ops_min, (call){.event = "save", .args = "[]", .has_ack = 1});
    run(r, &f, &ops_min, (call){.event = "one", .args = "[{\"userId\":\"9\"}]", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"ok\":false,\"error\":\"unsupported\"}]\n"
                               "ack [{\"ok\":false,\"error\":\"unsupported\"}]\n");
    rc_rules_free(r);
}

/* ---- claims are read only when needed ------------------------------------------------------- */

static void test_claims_lazy(void **state)
{
    rc_rules *r = compile("{\"/\": {\"userRoom\": \"u:{user}\", \"events\": {"
                          "  \"a\": [{\"ack\": \"{user}\"}],"
                          "  \"b\": [{\"ack\": \"{claims.rooms.0}\"}]}}}");
    fake f = {0};
    /* broken claims text does not matter to a rule that never reads claims */
    run(r, &f, NULL, (call){.event = "a", .args = "[]", .user = "42", .claims = "{broken", .has_ack = 1});
    run(r, &f, NULL, (call){.event = "b", .args = "[]", .user = "42", .claims = "{broken", .has_ack = 1});
    run(r, &f, NULL, (call){.event = "b", .args = "[]", .user = "42", .claims = claims_42, .has_ack = 1});
    assert_string_equal(f.log, "ack [\"42\"]\nack [null]\nack [\"project_*\"]\n");
    rc_rules_free(r);
}

/* ---- compile errors ----------------------------------------------------------------------- */

static void expect_errors(const char *json, const char *const *want)
{
    cJSON *j = cJSON_Parse(json);
    if (!j) fail_msg("bad test JSON: %s", json);
    rc_config_errors errs = {0};
    rc_rules *r = rc_rules_compile(j, "namespaces", &errs);
    assert_null(r);
    size_t n = 0;
    while (want[n]) n++;
    int ok = errs.count == n;
    for (size_t i = 0; ok && i < n; i++) ok = strcmp(errs.items[i], want[i]) == 0;
    if (!ok) {
        for (size_t i = 0; i < errs.count; i++) print_error("  got:  %s\n", errs.items[i]);
        for (size_t i = 0; i < n; i++) print_error("  want: %s\n", want[i]);
        fail_msg("errors differ for %s", json);
    }
    rc_config_errors_dispose(&errs);
    cJSON_Delete(j);
}

#define EXPECT(json, ...) expect_errors(json, (const char *const[]){__VA_ARGS__, NULL})

static void test_compile_errors(void **state)
{
    EXPECT("[]", "namespaces: must be an object (namespace name -> definition)");
    EXPECT("{}", "namespaces: at least one namespace is required");
    EXPECT("{\"chat\": {}}",
           "namespaces.chat: a namespace name starts with '/', is at most 128 bytes, and has no spaces, ',', '?' or '#'");
    EXPECT("{\"/a,b\": {}}",
           "namespaces./a,b: a namespace name starts with '/', is at most 128 bytes, and has no spaces, ',', '?' or '#'");
    EXPECT("{\"/\": 1}", "namespaces./: must be an object");
    EXPECT("{\"/\": {}, \"/\": {}}", "namespaces./: duplicate key");
    EXPECT("{\"/\": {\"auth\": \"maybe\", \"tokenInQuery\": 1, \"userRoom\": 5, \"joinAllow\": \"all\", \"evnts\": {}}}",
           "namespaces./.evnts: unknown key",
           "namespaces./.auth: must be \"required\", \"optional\" or \"none\"",
           "namespaces./.tokenInQuery: must be a boolean",
           "namespaces./.userRoom: room template must be a string",
           "namespaces./.joinAllow: must be \"any\" or an array of glob templates");
    EXPECT("{\"/\": {\"userRoom\": \"u:{claims.sub}\"}, \"/b\": {\"userRoom\": \"everyone\"}, \"/c\": {\"userRoom\": \"{user}{data}\"}}",
           "namespaces./.userRoom: must contain {user} and use nothing but {user} and {ns} (backends address a user by id alone)",
           "namespaces./b.userRoom: must contain {user} and use nothing but {user} and {ns} (backends address a user by id alone)",
           "namespaces./c.userRoom: must contain {user} and use nothing but {user} and {ns} (backends address a user by id alone)");
    EXPECT("{\"/\": {\"joinAllow\": [\"ok\", 3, \"{bad}\"]}}",
           "namespaces./.joinAllow[1]: must be a string (glob template)",
           "namespaces./.joinAllow[2]: unknown value 'bad' in {bad} (known: args, data, event, ns, sid, user, claims, "
           "auth, room, error, now, nowIso, verified; write {{ for a literal {)");
    EXPECT("{\"/\": {\"events\": []}}", "namespaces./.events: must be an object (event name -> rule)");
    EXPECT("{\"/\": {\"events\": {\"disconnect\": [], \"\": [], \"x\": 5, \"y\": {\"do\": 1, \"else\": []}, \"z\": {}}}}",
           "namespaces./.events.disconnect: 'disconnect' is a reserved event name (use onConnect for connections)",
           "namespaces./.events.: an event name must not be empty",
           "namespaces./.events.x: must be an array of actions or {\"do\": [...], \"onError\": [...]}",
           "namespaces./.events.y.else: unknown key",
           "namespaces./.events.y.do: must be an array of actions",
           "namespaces./.events.z.do: required");
    EXPECT("{\"/chat\": {\"events\": {\"join\": {\"do\": [{\"join\": \"{data}\"}, {\"relay\": {\"room\": 5}}]}}}}",
           "namespaces./chat.events.join.do[1].relay.room: room template must be a string");
    EXPECT("{\"/chat\": {\"events\": {\"join\": [{\"join\": {\"room\": \"x\"}}]}}}",
           "namespaces./chat.events.join[0].join: room template must be a string");
    EXPECT("{\"/\": {\"events\": {\"e\": [5, {}, {\"jion\": \"x\"}, {\"join\": \"a\", \"leave\": \"b\"},"
           "                              {\"leave\": \"a\", \"allow\": \"any\"}, {\"join\": \"\"}]}}}",
           "namespaces./.events.e[0]: must be an object with one verb (join, leave, relay, emit, ack, ackArgs, "
           "disconnect, fail, forward, presence, visible, members, verify)",
           "namespaces./.events.e[1]: no verb (one of join, leave, relay, emit, ack, ackArgs, disconnect, fail, "
           "forward, presence, visible, members, verify)",
           "namespaces./.events.e[2].jion: unknown key (verbs: join, leave, relay, emit, ack, ackArgs, disconnect, "
           "fail, forward, presence, visible, members, verify; options: if, unless, allow)",
           "namespaces./.events.e[2]: no verb (one of join, leave, relay, emit, ack, ackArgs, disconnect, fail, "
           "forward, presence, visible, members, verify)",
           "namespaces./.events.e[3]: more than one verb ('join' and 'leave')",
           "namespaces./.events.e[4].allow: only join takes allow",
           "namespaces./.events.e[5].join: a room name is 1..200 bytes");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"ack\": 1, \"if\": {\"equals\": [1]}},"
           "                              {\"ack\": 1, \"unless\": {\"in\": \"{data}\"}}]}}}",
           "namespaces./.events.e[0].if.equals: must be an array of two templates, [A, B]",
           "namespaces./.events.e[1].unless.in: must be an array of two templates, [A, B]");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"ack\": 1, \"if\": {\"member\": [\"r\"]}}]}}}",
           "namespaces./.events.e[0].if.member: must be a room template (a string)");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"relay\": {\"event\": \"x\", \"to\": \"r\", \"includeSender\": \"yes\","
           "                                         \"args\": {\"a\": 1}, \"data\": 1}}]}}}",
           "namespaces./.events.e[0].relay.to: unknown key",
           "namespaces./.events.e[0].relay.room: required",
           "namespaces./.events.e[0].relay.includeSender: must be a boolean",
           "namespaces./.events.e[0].relay: give args or data, not both",
           "namespaces./.events.e[0].relay.args: must be an array template (an array, or one {path} giving an array)");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"relay\": \"r\"}, {\"emit\": {\"data\": 1}}, {\"emit\": {\"event\": 5}},"
           "                              {\"emit\": {\"event\": \"connect\"}}, {\"emit\": {\"event\": \"a\", \"args\": \"x{data}\"}}]}}}",
           "namespaces./.events.e[0].relay: must be an object",
           "namespaces./.events.e[1].emit.event: required",
           "namespaces./.events.e[2].emit.event: must be a string (event name template)",
           "namespaces./.events.e[3].emit.event: 'connect' is a reserved event name",
           "namespaces./.events.e[4].emit.args: must be an array template (an array, or one {path} giving an array)");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"disconnect\": 1}, {\"fail\": 5}, {\"forward\": false},"
           "                              {\"forward\": {\"room\": \"x\"}}, {\"presence\": {}}, {\"ackArgs\": {\"a\": 1}}]}}}",
           "namespaces./.events.e[0].disconnect: must be true",
           "namespaces./.events.e[1].fail: reason template must be a string",
           "namespaces./.events.e[2].forward: must be true or an object",
           "namespaces./.events.e[3].forward.room: unknown key",
           "namespaces./.events.e[4].presence.users: required",
           "namespaces./.events.e[5].ackArgs: must be an array template (an array, or one {path} giving an array)");
    EXPECT("{\"/\": {\"onConnect\": [{\"ack\": 1}, {\"relay\": {\"room\": \"r\"}}, {\"forward\": true},"
           "                         {\"emit\": {\"event\": \"e\", \"onAck\": [{\"ack\": 2}, {\"emit\": {}}]}}]}}",
           "namespaces./.onConnect[0].ack: there is no ack to answer in onConnect",
           "namespaces./.onConnect[1].relay.event: required in onConnect (no event was received)",
           "namespaces./.onConnect[2].forward: needs an event in onConnect",
           "namespaces./.onConnect[3].emit.onAck[0].ack: there is no ack to answer in onAck",
           "namespaces./.onConnect[3].emit.onAck[1].emit.event: required");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"emit\": {\"event\": \"x\", \"data\": \"{nope}\"}, \"if\": \"{also.bad}\"}]}}}",
           "namespaces./.events.e[0].if: unknown value 'also' in {also.bad} (known: args, data, event, ns, sid, user, "
           "claims, auth, room, error, now, nowIso, verified; write {{ for a literal {)",
           "namespaces./.events.e[0].emit.data: unknown value 'nope' in {nope} (known: args, data, event, ns, sid, user, "
           "claims, auth, room, error, now, nowIso, verified; write {{ for a literal {)");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"ack\": 1, \"ack\": 2}]}}}",
           "namespaces./.events.e[0].ack: duplicate key",
           "namespaces./.events.e[0]: more than one verb ('ack' and 'ack')");
    /* found by fuzz_config: the second "unless" was compiled over the first, leaking it (the
     * ASan build of this test fails on the leak) */
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"ack\": 1, \"unless\": \"{data.flag}\", \"unless\": \"{data.other}\"}]}}}",
           "namespaces./.events.e[0].unless: duplicate key");
    EXPECT("{\"/\": {\"events\": {\"e\": [{\"ack\": 1, \"if\": {\"equals\": [\"{data}\", 1]}, \"if\": \"{data}\"}]}}}",
           "namespaces./.events.e[0].if: duplicate key");

    char many[4096] = "{";
    for (int i = 0; i < 33; i++) sprintf(many + strlen(many), "%s\"/n%d\": {}", i ? "," : "", i);
    strcat(many, "}");
    EXPECT(many, "namespaces: at most 32 namespaces (found 33)");

    /* long paths are never cut */
    char ev[1200], json[1400], want[1600];
    memset(ev, 'e', 1000);
    ev[1000] = 0;
    snprintf(json, sizeof(json), "{\"/\": {\"events\": {\"%s\": [{\"join\": 1}]}}}", ev);
    snprintf(want, sizeof(want), "namespaces./.events.%s[0].join: room template must be a string", ev);
    EXPECT(json, want);

    /* NULL errs works and still fails */
    cJSON *j = cJSON_Parse("{\"/\": 1}");
    assert_null(rc_rules_compile(j, NULL, NULL));
    cJSON_Delete(j);
}

static void test_comments_are_ignored(void **state)
{
    rc_rules *r = compile("{\"$comment\": \"top\", \"/\": {\"$comment\": \"ns\", \"events\": {\"$comment\": \"ev\","
                          "  \"e\": {\"$comment\": \"rule\", \"do\": [{\"$comment\": \"act\", \"emit\": {\"$comment\": \"o\","
                          "       \"event\": \"x\", \"data\": {\"$comment\": \"data is data\"}}}]}}}}");
    assert_int_equal(rc_rules_ns_count(r), 1);
    fake f = {0};
    assert_int_equal(run(r, &f, NULL, (call){.event = "$comment", .args = "[]"}), 0);
    run(r, &f, NULL, (call){.event = "e", .args = "[]"});
    assert_string_equal(f.log, "emit x [{\"$comment\":\"data is data\"}]\n");
    rc_rules_free(r);
}

/* ---- globs -------------------------------------------------------------------------------- */

static void test_glob(void **state)
{
    static const struct { const char *p, *s; int m; } cases[] = {
        {"", "", 1},            {"", "a", 0},           {"*", "", 1},            {"*", "anything", 1},
        {"a", "a", 1},          {"a", "b", 0},          {"a*", "abc", 1},        {"*c", "abc", 1},
        {"a*c", "ac", 1},       {"a*c", "abdc", 1},     {"a*c", "abd", 0},       {"?", "a", 1},
        {"?", "", 0},           {"??", "a", 0},         {"a?c", "abc", 1},       {"project_*", "project_1", 1},
        {"project_*", "project", 0},                    {"*:*:*", "a:b:c", 1},   {"*:*:*", "a:b", 0},
        {"**a", "bba", 1},      {"a*b*c", "aXbYbZc", 1}, {"a*b*c", "aXbYbZ", 0}, {"?", "\xc3\xa9", 1},
        {"x?y", "x\xe2\x82\xacy", 1},                   {"*?", "\xc3\xa9", 1},   {"user:42", "user:420", 0},
        {"a*", "b", 0},         {"*a", "", 0},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(cases); i++)
        if (rc_glob_match(cases[i].p, cases[i].s) != cases[i].m)
            fail_msg("glob '%s' vs '%s': want %d", cases[i].p, cases[i].s, cases[i].m);

    /* no exponential backtracking: this returns at once */
    char pat[128] = "", s[4096];
    for (int i = 0; i < 30; i++) strcat(pat, "*a");
    strcat(pat, "b");
    memset(s, 'a', sizeof(s) - 1);
    s[sizeof(s) - 1] = 0;
    uint64_t t0 = rc_now_mono_ms();
    assert_int_equal(rc_glob_match(pat, s), 0);
    assert_true(rc_now_mono_ms() - t0 < 1000);
}

/* ---- the five seed systems (docs/migrating.md, deploy/config/): their documented client flows */

static void test_seed_tasks(void **state)
{
    /* NestJS tasks: joinProject {projectId} -> room project_<id>, answered by ack */
    rc_rules *r = compile(
        "{\"/\": {\"joinAllow\": \"any\", \"events\": {"
        "  \"joinProject\": {\"do\": [{\"join\": \"project_{data.projectId}\"},"
        "                           {\"ack\": {\"projectId\": \"{data.projectId}\", \"status\": \"success\"}}],"
        "                  \"onError\": [{\"ack\": {\"projectId\": \"{data.projectId}\", \"status\": \"error\", \"error\": \"{error}\"}}]},"
        "  \"leaveProject\": [{\"leave\": \"project_{data.projectId}\"}, {\"ack\": {\"status\": \"success\"}}]"
        "}}}");
    fake f = {0};
    run(r, &f, NULL, (call){.event = "joinProject", .args = "[{\"projectId\":\"p1\"}]", .user = "u1", .has_ack = 1});
    assert_string_equal(f.log, "join project_p1\nack [{\"projectId\":\"p1\",\"status\":\"success\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "joinProject", .args = "[{}]", .user = "u1", .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"status\":\"error\",\"error\":\"bad_room\"}]\n");
    rc_rules_free(r);
}

static void test_seed_projects(void **state)
{
    /* React Native projects: project and conversation rooms, message:send -> message:new */
    rc_rules *r = compile(
        "{\"/\": {\"tokenInQuery\": true, \"joinAllow\": [\"{claims.rooms}\"], \"events\": {"
        "  \"join:project\":       [{\"join\": \"project:{data.projectId}\"}],"
        "  \"leave:project\":      [{\"leave\": \"project:{data.projectId}\"}],"
        "  \"join:conversation\":  [{\"join\": \"conversation:{data.conversationId}\"}],"
        "  \"leave:conversation\": [{\"leave\": \"conversation:{data.conversationId}\"}],"
        "  \"message:send\": [{\"relay\": {\"room\": \"conversation:{data.conversationId}\", \"event\": \"message:new\","
        "                                 \"includeSender\": true,"
        "                                 \"data\": {\"conversationId\": \"{data.conversationId}\", \"senderId\": \"{user}\","
        "                                          \"message\": \"{data.message}\", \"createdAt\": \"{nowIso}\"}}},"
        "                    {\"forward\": true}]"
        "}}}");
    fake f = {0};
    const char *cl = "{\"sub\":\"u1\",\"rooms\":[\"project:*\",\"conversation:c*\"]}";
    run(r, &f, NULL, (call){.event = "join:project", .args = "[{\"projectId\":\"p\"}]", .user = "u1", .claims = cl});
    run(r, &f, NULL, (call){.event = "join:conversation", .args = "[{\"conversationId\":\"c1\"}]", .user = "u1", .claims = cl});
    run(r, &f, NULL, (call){.event = "join:conversation", .args = "[{\"conversationId\":\"x\"}]", .user = "u1", .claims = cl});
    assert_string_equal(f.log, "join project:p\njoin conversation:c1\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "message:send", .user = "u1", .claims = cl,
                            .args = "[{\"conversationId\":\"c1\",\"message\":{\"content\":\"Hello!\",\"type\":\"text\"}}]"});
    assert_prefix(f.log, "relay conversation:c1 message:new [{\"conversationId\":\"c1\",\"senderId\":\"u1\","
                               "\"message\":{\"content\":\"Hello!\",\"type\":\"text\"},\"createdAt\":\"20");
    assert_non_null(strstr(f.log, "Z\"}] sender=1\nforward message:send {\"conversationId\":\"c1\",\"message\":"));
    rc_rules_free(r);
}

static const char chat_seed[] =
    "{\"/chat\": {\"joinAllow\": [\"chat:{claims.rooms}\", \"chat:room-*\"],"
    "  \"onConnect\": [{\"join\": \"chat:lobby\", \"allow\": \"any\"}],"
    "  \"events\": {"
    "    \"auth:login\":  [{\"emit\": {\"event\": \"system:notification\", \"data\": {\"type\": \"auth\", \"success\": true, \"userId\": \"{user}\"}}}],"
    "    \"auth:logout\": [{\"emit\": {\"event\": \"system:notification\", \"data\": {\"type\": \"logout\"}}}, {\"disconnect\": true}],"
    "    \"chat:message\": ["
    "      {\"if\": \"{data.roomId}\", \"relay\": {\"room\": \"chat:{data.roomId}\", \"includeSender\": true,"
    "        \"data\": {\"content\": \"{data.content}\", \"roomId\": \"{data.roomId}\", \"userId\": \"{user}\", \"timestamp\": \"{nowIso}\"}}},"
    "      {\"unless\": \"{data.roomId}\", \"relay\": {\"room\": \"chat:lobby\", \"includeSender\": true,"
    "        \"data\": {\"content\": \"{data.content}\", \"userId\": \"{user}\", \"timestamp\": \"{nowIso}\"}}}],"
    "    \"chat:room:create\": [{\"forward\": true}, {\"ack\": {\"ok\": true}}],"
    "    \"chat:room:join\":  {\"do\": [{\"join\": \"chat:{data}\"}, {\"emit\": {\"event\": \"chat:room:joined\", \"data\": {\"roomId\": \"{data}\"}}}],"
    "                        \"onError\": [{\"emit\": {\"event\": \"system:error\", \"data\": {\"code\": \"{error}\", \"message\": \"cannot join {data}\"}}}]},"
    "    \"chat:room:leave\": [{\"leave\": \"chat:{data}\"}, {\"emit\": {\"event\": \"chat:room:left\", \"data\": {\"roomId\": \"{data}\"}}}],"
    "    \"status:update\": ["
    "      {\"if\": \"{data.isOnline}\", \"relay\": {\"room\": \"chat:lobby\", \"event\": \"status:online\", \"data\": {\"userId\": \"{user}\"}}},"
    "      {\"unless\": \"{data.isOnline}\", \"relay\": {\"room\": \"chat:lobby\", \"event\": \"status:offline\", \"data\": {\"userId\": \"{user}\"}}}],"
    "    \"status:typing\": [{\"relay\": {\"room\": \"chat:{data.roomId}\","
    "        \"data\": {\"userId\": \"{user}\", \"roomId\": \"{data.roomId}\", \"isTyping\": \"{data.isTyping}\"}}}]"
    "}}}";

static void test_seed_chat(void **state)
{
    rc_rules *r = compile(chat_seed);
    fake f = {0};
    const char *cl = "{\"sub\":\"u1\"}";
    run(r, &f, NULL, (call){.ns = "/chat", .user = "u1", .claims = cl});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "chat:room:join", .args = "[\"room-123\"]", .user = "u1", .claims = cl});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "chat:room:join", .args = "[\"secret\"]", .user = "u1", .claims = cl});
    assert_string_equal(f.log, "join chat:lobby\njoin chat:room-123\nemit chat:room:joined [{\"roomId\":\"room-123\"}]\n"
                               "emit system:error [{\"code\":\"forbidden\",\"message\":\"cannot join secret\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "chat:message", .args = "[{\"content\":\"hi\",\"roomId\":\"room-123\"}]",
                            .user = "u1"});
    assert_prefix(f.log, "relay chat:room-123 chat:message [{\"content\":\"hi\",\"roomId\":\"room-123\",\"userId\":\"u1\"");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "chat:message", .args = "[{\"content\":\"all\"}]", .user = "u1"});
    assert_prefix(f.log, "relay chat:lobby chat:message [{\"content\":\"all\",\"userId\":\"u1\"");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/chat", .event = "status:typing", .args = "[{\"roomId\":\"room-123\",\"isTyping\":true}]",
                            .user = "u1"});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "status:update", .args = "[{\"isOnline\":false}]", .user = "u1"});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "chat:room:leave", .args = "[\"room-123\"]", .user = "u1"});
    run(r, &f, NULL, (call){.ns = "/chat", .event = "auth:logout", .args = "[]", .user = "u1"});
    assert_string_equal(f.log,
        "relay chat:room-123 status:typing [{\"userId\":\"u1\",\"roomId\":\"room-123\",\"isTyping\":true}] sender=0\n"
        "relay chat:lobby status:offline [{\"userId\":\"u1\"}] sender=0\n"
        "leave chat:room-123\nemit chat:room:left [{\"roomId\":\"room-123\"}]\n"
        "emit system:notification [{\"type\":\"logout\"}]\ndisconnect\n");
    rc_rules_free(r);
}

static void test_seed_meetings(void **state)
{
    rc_rules *r = compile(
        "{\"/\": {\"joinAllow\": [\"meeting:{claims.meetings}\"], \"events\": {"
        "  \"meeting:join\":  {\"do\": [{\"join\": \"meeting:{data.meetingId}\"},"
        "                             {\"emit\": {\"event\": \"meeting:joined\", \"data\": {\"meetingId\": \"{data.meetingId}\"}}}],"
        "                    \"onError\": [{\"emit\": {\"event\": \"error\", \"data\": {\"message\": \"{error}\"}}}]},"
        "  \"meeting:leave\": [{\"leave\": \"meeting:{data.meetingId}\"},"
        "                     {\"emit\": {\"event\": \"meeting:left\", \"data\": {\"meetingId\": \"{data.meetingId}\"}}}],"
        "  \"ping\": [{\"emit\": {\"event\": \"pong\", \"data\": {\"timestamp\": \"{now}\"}}}]"
        "}}}");
    fake f = {0};
    const char *cl = "{\"userId\":\"u9\",\"type\":\"access\",\"meetings\":[\"m1\",\"m2\"]}";
    run(r, &f, NULL, (call){.event = "meeting:join", .args = "[{\"meetingId\":\"m1\"}]", .user = "u9", .claims = cl});
    run(r, &f, NULL, (call){.event = "meeting:join", .args = "[{\"meetingId\":\"m3\"}]", .user = "u9", .claims = cl});
    run(r, &f, NULL, (call){.event = "meeting:leave", .args = "[{\"meetingId\":\"m1\"}]", .user = "u9", .claims = cl});
    assert_string_equal(f.log, "join meeting:m1\nemit meeting:joined [{\"meetingId\":\"m1\"}]\n"
                               "emit error [{\"message\":\"forbidden\"}]\n"
                               "leave meeting:m1\nemit meeting:left [{\"meetingId\":\"m1\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.event = "ping", .args = "[]", .user = "u9"});
    assert_prefix(f.log, "emit pong [{\"timestamp\":1");
    rc_rules_free(r);
}

static void test_seed_notifications(void **state)
{
    rc_rules *r = compile(
        "{\"/notifications\": {"
        "  \"onConnect\": [{\"emit\": {\"event\": \"connected\", \"data\": {\"userId\": \"{user}\", \"timestamp\": \"{now}\"}}}],"
        "  \"events\": {"
        "    \"ping\": [{\"emit\": {\"event\": \"pong\", \"data\": {\"timestamp\": \"{now}\"}}}, {\"ack\": {\"event\": \"pong\", \"timestamp\": \"{now}\"}}],"
        "    \"join-room\":  {\"do\": [{\"join\": \"{data.room}\"}, {\"emit\": {\"event\": \"joined-room\", \"data\": {\"room\": \"{room}\"}}},"
        "                            {\"ack\": {\"event\": \"joined-room\", \"room\": \"{room}\"}}],"
        "                   \"onError\": [{\"ack\": {\"event\": \"error\", \"error\": \"{error}\"}}]},"
        "    \"leave-room\": [{\"leave\": \"{data.room}\"}, {\"emit\": {\"event\": \"left-room\", \"data\": {\"room\": \"{room}\"}}},"
        "                    {\"ack\": {\"event\": \"left-room\", \"room\": \"{room}\"}}],"
        "    \"get-online-status\": [{\"presence\": {\"users\": \"{data.userIds}\", \"then\": ["
        "        {\"emit\": {\"event\": \"online-status\", \"data\": {\"status\": \"{data}\"}}},"
        "        {\"ack\": {\"event\": \"online-status\", \"status\": \"{data}\"}}]}}],"
        "    \"subscribe-user-status\": [{\"join\": \"status:{data.userId}\", \"allow\": \"any\"},"
        "        {\"emit\": {\"event\": \"subscribed\", \"data\": {\"userId\": \"{data.userId}\"}}},"
        "        {\"ack\": {\"event\": \"subscribed\", \"userId\": \"{data.userId}\"}}]"
        "}}}");
    fake f = {0};
    const char *cl = "{\"sub\":\"123\",\"rooms\":[\"project-*\"]}";
    run(r, &f, NULL, (call){.ns = "/notifications", .user = "123", .claims = cl});
    assert_prefix(f.log, "emit connected [{\"userId\":\"123\",\"timestamp\":1");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "join-room", .args = "[{\"room\":\"project-123\"}]", .user = "123",
                            .claims = cl, .has_ack = 1});
    assert_string_equal(f.log, "join project-123\nemit joined-room [{\"room\":\"project-123\"}]\n"
                               "ack [{\"event\":\"joined-room\",\"room\":\"project-123\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "join-room", .args = "[{\"room\":\"user:456\"}]", .user = "123",
                            .claims = cl, .has_ack = 1});
    assert_string_equal(f.log, "ack [{\"event\":\"error\",\"error\":\"forbidden\"}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "get-online-status", .args = "[{\"userIds\":[\"123\",\"456\",\"789\"]}]",
                            .user = "123", .claims = cl, .has_ack = 1});
    assert_string_equal(f.log, "presence [\"123\",\"456\",\"789\"]\n");
    f.log[0] = 0;
    run_cont(r, &f, f.then, "get-online-status", "[{\"123\":true,\"456\":false,\"789\":true}]", 1);
    assert_string_equal(f.log, "emit online-status [{\"status\":{\"123\":true,\"456\":false,\"789\":true}}]\n"
                               "ack [{\"event\":\"online-status\",\"status\":{\"123\":true,\"456\":false,\"789\":true}}]\n");
    f.log[0] = 0;
    run(r, &f, NULL, (call){.ns = "/notifications", .event = "subscribe-user-status", .args = "[{\"userId\":\"456\"}]",
                            .user = "123", .claims = cl});
    assert_string_equal(f.log, "join status:456\nemit subscribed [{\"userId\":\"456\"}]\n");
    rc_rules_free(r);
}

/* Namespace options for presence and rate limits: status rooms, tracked rooms, announcements. */
static void test_status_track_rate(void **state)
{
    (void)state;
    rc_rules *r = compile("{\"/n\": {"
        "\"status\": {\"room\": \"st:{user}!\", \"online\": {\"event\": \"status:online\", \"data\": {\"userId\": \"{user}\", \"on\": \"{data.online}\"}},"
        "             \"offline\": {\"event\": \"status:offline\"}},"
        "\"track\": {\"rooms\": [\"meeting:*\"], \"joined\": {\"event\": \"meeting:participant-joined\", \"data\": {\"userId\": \"{user}\", \"room\": \"{room}\"}},"
        "           \"left\": {\"event\": \"meeting:participant-left\", \"data\": \"{data}\"}},"
        "\"rateLimit\": {\"events\": 7, \"interval\": 250},"
        "\"events\": {\"v\": [{\"visible\": \"{data.isOnline}\"}], \"m\": [{\"members\": {\"room\": \"meeting:{data}\", \"then\": [{\"ack\": \"{data}\"}]}}]}}}");
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/n", 2);
    char user[64];
    assert_int_equal(rc_ns_rules_status_user(ns, "st:42!", user, sizeof(user)), 1);
    assert_string_equal(user, "42");
    assert_int_equal(rc_ns_rules_status_user(ns, "st:!", user, sizeof(user)), 0);   /* no user */
    assert_int_equal(rc_ns_rules_status_user(ns, "xt:42!", user, sizeof(user)), 0);
    char *room = rc_ns_rules_status_room(ns, "7");
    assert_string_equal(room, "st:7!");
    rc_free(room);
    assert_int_equal(rc_ns_rules_tracked(ns, "meeting:1"), 1);
    assert_int_equal(rc_ns_rules_tracked(ns, "chat:1"), 0);
    char ev[201];
    cJSON *args = NULL;
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_ONLINE, "42", "st:42!", 5, ev, &args), 0);
    assert_string_equal(ev, "status:online");
    char *txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"userId\":\"42\",\"on\":true}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    /* no data template: the announcement's own {data} */
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_OFFLINE, "42", "st:42!", 5, ev, &args), 0);
    txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"user\":\"42\",\"online\":false,\"ts\":5}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_JOINED, "9", "meeting:3", 0, ev, &args), 0);
    assert_string_equal(ev, "meeting:participant-joined");
    txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"userId\":\"9\",\"room\":\"meeting:3\"}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    /* without a data template: the announcement, with the glob's captures */
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_LEFT, "9", "meeting:3", 0, ev, &args), 0);
    txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"user\":\"9\",\"joined\":false,\"room\":\"meeting:3\",\"match\":[\"3\"]}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    unsigned events, interval;
    rc_ns_rules_rate_limit(ns, &events, &interval);
    assert_int_equal(events, 7);
    assert_int_equal(interval, 250);
    /* no event has a limit of its own here */
    assert_int_equal(rc_ns_rules_event_limit_count(ns), 0);
    assert_int_equal(rc_ns_rules_event_limit(ns, "v", &events, &interval), -1);
    /* without the options */
    const rc_ns_rules *none = rc_rules_find_ns(r, "/n", 2);
    assert_non_null(none);
    rc_rules_free(r);

    r = compile("{\"/\": {}}");
    ns = rc_rules_find_ns(r, "/", 1);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_ONLINE, "1", "x", 0, ev, &args), -1);
    assert_null(rc_ns_rules_status_room(ns, "1"));
    rc_ns_rules_rate_limit(ns, &events, &interval);
    assert_int_equal(events, 0);
    rc_rules_free(r);

    /* compile errors with their paths */
    const char *bad[][2] = {
        {"{\"/\": {\"status\": {\"room\": \"st:{user}:{ns}\", \"online\": {\"event\": \"a\"}, \"offline\": {\"event\": \"b\"}}}}",
         "namespaces./.status.room: must contain {user} once and no other placeholder"},
        {"{\"/\": {\"status\": {\"online\": {\"event\": \"a\"}}}}", "namespaces./.status.offline: required"},
        {"{\"/\": {\"track\": {\"rooms\": [], \"joined\": {\"event\": \"a\"}, \"left\": {\"event\": \"b\"}}}}",
         "namespaces./.track.rooms: must be a non-empty array of room globs"},
        {"{\"/\": {\"rateLimit\": {\"events\": 0}}}", "namespaces./.rateLimit.events: must be an integer 1..1000000"},
        {"{\"/\": {\"events\": {\"m\": [{\"members\": {\"room\": \"x\"}}]}}}", "namespaces./.events.m[0].members.then: required"},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        cJSON *j = cJSON_Parse(bad[i][0]);
        rc_config_errors errs = {0};
        rc_rules *br = rc_rules_compile(j, "namespaces", &errs);
        assert_null(br);
        int found = 0;
        for (size_t k = 0; k < errs.count; k++) found |= strcmp(errs.items[k], bad[i][1]) == 0;
        if (!found) {
            for (size_t k = 0; k < errs.count; k++) print_error("got: %s\n", errs.items[k]);
            fail_msg("missing error: %s", bad[i][1]);
        }
        rc_config_errors_dispose(&errs);
        cJSON_Delete(j);
    }
}

/* An event's own rateLimit: indexes in event-name order, the catch-all's for unknown events. */
static void test_event_rate_limits(void **state)
{
    (void)state;
    rc_rules *r = compile("{\"/\": {\"rateLimit\": {\"events\": 30},"
        "\"events\": {\"typing\": {\"do\": [{\"ack\": 1}], \"rateLimit\": {\"events\": 5, \"interval\": 2000}},"
        "             \"msg\": [{\"ack\": 2}],"
        "             \"*\": {\"do\": [{\"fail\": \"unknown_event\"}], \"rateLimit\": {\"events\": 2}},"
        "             \"alpha\": {\"do\": [], \"rateLimit\": {\"events\": 1, \"interval\": 60000}}}}}");
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/", 1);
    unsigned events = 0, interval = 0;
    assert_int_equal(rc_ns_rules_event_limit_count(ns), 3);
    /* sorted: "*" < "alpha" < "msg" < "typing" */
    assert_int_equal(rc_ns_rules_event_limit(ns, "*", &events, &interval), 0);
    assert_int_equal(events, 2);
    assert_int_equal(interval, 1000); /* the default interval */
    assert_int_equal(rc_ns_rules_event_limit(ns, "alpha", &events, &interval), 1);
    assert_int_equal(interval, 60000);
    assert_int_equal(rc_ns_rules_event_limit(ns, "typing", &events, &interval), 2);
    assert_int_equal(events, 5);
    assert_int_equal(interval, 2000);
    assert_int_equal(rc_ns_rules_event_limit(ns, "msg", &events, &interval), -1);
    assert_int_equal(rc_ns_rules_event_limit(ns, "nope", &events, &interval), 0); /* the catch-all's */
    rc_rules_free(r);

    /* only an event's rule takes one; values are checked */
    EXPECT("{\"/\": {\"onConnect\": {\"do\": [], \"rateLimit\": {\"events\": 1}},"
           "\"events\": {\"e\": {\"do\": [], \"rateLimit\": {\"events\": 0, \"interval\": 5, \"burst\": 1}},"
           "             \"f\": {\"do\": [], \"rateLimit\": 3}}}}",
           "namespaces./.onConnect.rateLimit: only an event's rule takes a rateLimit (the namespace's goes beside events)",
           "namespaces./.events.e.rateLimit.burst: unknown key",
           "namespaces./.events.e.rateLimit.events: must be an integer 1..1000000",
           "namespaces./.events.f.rateLimit: must be an object {\"events\": N, \"interval\": ms}");
}

/* ---- verify, authError, track without announcements, {auth} without a payload ------------ */

/* The node verifies with rc_auth_verify; the fake knows two good tokens. */
static const char *f_verify(void *target, const char *token, size_t len, char **user, char **claims_json)
{
    fake *f = target;
    logf_(f, "verify %s\n", token ? token : "<none>");
    if (!token || !len) return "missing_token";
    if (strcmp(token, "good-42") != 0 && strcmp(token, "good-7") != 0) return "bad_signature";
    *user = rc_strdup(token + 5);
    char claims[64];
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"type\":\"access\"}", token + 5);
    *claims_json = rc_strdup(claims);
    return NULL;
}

static const rc_rule_ops ops_verify = {
    .join = f_join, .leave = f_leave, .is_member = f_is_member, .relay = f_relay, .emit = f_emit,
    .ack = f_ack, .disconnect = f_disconnect, .verify = f_verify,
};

static void test_verify(void **state)
{
    (void)state;
    /* seed 002's auth:login: the token of the payload must verify and name the connection's user */
    rc_rules *r = compile("{\"/chat\": {\"events\": {\"auth:login\": {"
        "\"do\": [{\"verify\": \"{data.token}\"},"
        "         {\"unless\": {\"equals\": [\"{verified.user}\", \"{user}\"]}, \"fail\": \"user_mismatch\"},"
        "         {\"emit\": {\"event\": \"ok\", \"data\": {\"v\": \"{verified}\", \"t\": \"{verified.claims.type}\"}}}],"
        "\"onError\": [{\"emit\": {\"event\": \"system:error\", \"data\": {\"code\": \"{error}\", \"v\": \"{verified.user}\"}}},"
        "             {\"ack\": {\"ok\": false, \"error\": \"{error}\"}}]}}}}");
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/chat", 5);
    assert_int_equal(rc_ns_rules_verifies_tokens(ns), 1);
    fake f = {0};
    run(r, &f, &ops_verify, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"token\":\"good-42\"}]", .user = "42"});
    assert_string_equal(f.log, "verify good-42\n"
                               "emit ok [{\"v\":{\"user\":\"42\",\"claims\":{\"sub\":\"42\",\"type\":\"access\"}},\"t\":\"access\"}]\n");
    f.log[0] = 0;
    /* another user's valid token */
    run(r, &f, &ops_verify, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"token\":\"good-7\"}]", .user = "42",
                                   .has_ack = 1});
    assert_string_equal(f.log, "verify good-7\nemit system:error [{\"code\":\"user_mismatch\",\"v\":\"7\"}]\n"
                               "ack [{\"ok\":false,\"error\":\"user_mismatch\"}]\n");
    f.log[0] = 0;
    /* a token that does not verify: its reason is {error}, and {verified} stays missing */
    run(r, &f, &ops_verify, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"token\":\"forged\"}]", .user = "42"});
    assert_string_equal(f.log, "verify forged\nemit system:error [{\"code\":\"bad_signature\"}]\n");
    f.log[0] = 0;
    /* no token, or one that is not a string: no token at all (as the CONNECT reads auth.token) */
    run(r, &f, &ops_verify, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"userType\":\"user\"}]", .user = "42"});
    run(r, &f, &ops_verify, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"token\":42}]", .user = "42"});
    assert_string_equal(f.log, "verify <none>\nemit system:error [{\"code\":\"missing_token\"}]\n"
                               "verify <none>\nemit system:error [{\"code\":\"missing_token\"}]\n");
    f.log[0] = 0;
    /* a node without the op */
    run(r, &f, &ops_min, (call){.ns = "/chat", .event = "auth:login", .args = "[{\"token\":\"good-42\"}]", .user = "42"});
    assert_string_equal(f.log, "emit system:error [{\"code\":\"unsupported\"}]\n");
    rc_rules_free(r);

    /* verify in a continuation counts too; a namespace without tokens and without verify does not */
    r = compile("{\"/a\": {\"auth\": \"none\", \"events\": {\"e\": [{\"emit\": {\"event\": \"x\", \"onAck\": [{\"verify\": \"{data}\"}]}}]}},"
                " \"/b\": {\"auth\": \"none\"}, \"/c\": {\"auth\": \"optional\"}}");
    assert_int_equal(rc_ns_rules_verifies_tokens(rc_rules_find_ns(r, "/a", 2)), 1);
    assert_int_equal(rc_ns_rules_verifies_tokens(rc_rules_find_ns(r, "/b", 2)), 0);
    assert_int_equal(rc_ns_rules_verifies_tokens(rc_rules_find_ns(r, "/c", 2)), 1);
    rc_rules_free(r);

    EXPECT("{\"/\": {\"events\": {\"e\": [{\"verify\": {\"token\": \"{data}\"}}, {\"verify\": \"{nope}\"}]}}}",
           "namespaces./.events.e[0].verify: token template must be a string",
           "namespaces./.events.e[1].verify: unknown value 'nope' in {nope} (known: args, data, event, ns, sid, user, "
           "claims, auth, room, error, now, nowIso, verified; write {{ for a literal {)");
}

static void test_auth_error(void **state)
{
    (void)state;
    rc_rules *r = compile("{\"/\": {},"
        " \"/sio\": {\"authError\": \"connect_error\"},"
        " \"/gw\": {\"authError\": {\"event\": \"system:error\", \"data\": {\"code\": \"{error}\", \"message\": \"Authentication failed\", \"ns\": \"{ns}\"}}},"
        " \"/plain\": {\"auth\": \"optional\", \"authError\": {\"event\": \"auth:{error}\"}}}");
    char ev[201];
    cJSON *args = (cJSON *)1;
    assert_int_equal(rc_ns_rules_auth_error(rc_rules_find_ns(r, "/", 1), "expired", ev, &args), 0);
    assert_null(args);
    assert_int_equal(rc_ns_rules_auth_error(rc_rules_find_ns(r, "/sio", 4), "expired", ev, &args), 0);
    assert_null(args);
    assert_int_equal(rc_ns_rules_auth_error(rc_rules_find_ns(r, "/gw", 3), "bad_signature", ev, &args), 1);
    assert_string_equal(ev, "system:error");
    char *txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"code\":\"bad_signature\",\"message\":\"Authentication failed\",\"ns\":\"/gw\"}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    /* without data: {code, message} with Socket.IO's message */
    assert_int_equal(rc_ns_rules_auth_error(rc_rules_find_ns(r, "/plain", 6), "missing_token", ev, &args), 1);
    assert_string_equal(ev, "auth:missing_token");
    txt = cJSON_PrintUnformatted(args);
    assert_string_equal(txt, "[{\"code\":\"missing_token\",\"message\":\"unauthorized\"}]");
    cJSON_free(txt);
    cJSON_Delete(args);
    rc_rules_free(r);

    EXPECT("{\"/\": {\"authError\": \"event\"}, \"/b\": {\"authError\": {\"data\": {\"u\": \"{user}\"}}},"
           " \"/c\": {\"auth\": \"none\", \"authError\": {\"event\": \"e\"}}, \"/d\": {\"authError\": {\"event\": \"disconnect\"}}}",
           "namespaces./.authError: must be \"connect_error\" or {\"event\": <name>, \"data\": <template>}",
           "namespaces./b.authError.event: required",
           "namespaces./b.authError: may use only {error}, {ns}, {now} and {nowIso} (there is no socket)",
           "namespaces./c.authError: never used with auth \"none\" (no token is verified at connect)",
           "namespaces./d.authError.event: 'disconnect' is a reserved event name");
}

/* "track" without joined/left: the room's members are tracked (member lists), nothing is announced. */
static void test_track_silent(void **state)
{
    (void)state;
    rc_rules *r = compile("{\"/\": {\"track\": {\"rooms\": [\"meeting:*\"]}},"
                          " \"/j\": {\"track\": {\"rooms\": [\"m:*\"], \"joined\": {\"event\": \"in\"}}}}");
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/", 1);
    char ev[201];
    cJSON *args = NULL;
    assert_int_equal(rc_ns_rules_tracked(ns, "meeting:1"), 1);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_JOINED, "9", "meeting:1", 0, ev, &args), -1);
    assert_null(args);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_LEFT, "9", "meeting:1", 0, ev, &args), -1);
    ns = rc_rules_find_ns(r, "/j", 2);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_JOINED, "9", "m:1", 0, ev, &args), 0);
    assert_string_equal(ev, "in");
    cJSON_Delete(args);
    assert_int_equal(rc_ns_rules_announce(ns, RC_ANNOUNCE_LEFT, "9", "m:1", 0, ev, &args), -1);
    rc_rules_free(r);
}

/* socket.handshake.auth is {} without a CONNECT payload: so is {auth}, in onConnect and events. */
static void test_auth_default(void **state)
{
    (void)state;
    rc_rules *r = compile("{\"/\": {\"auth\": \"optional\", \"onConnect\": [{\"emit\": {\"event\": \"auth\", \"data\": \"{auth}\"}}],"
                          " \"events\": {\"e\": [{\"emit\": {\"event\": \"a\", \"data\": {\"auth\": \"{auth}\", \"x\": \"{auth.x}\"}}}]}}}");
    const rc_ns_rules *ns = rc_rules_find_ns(r, "/", 1);
    fake f = {0};
    rc_rule_input in = {.ns = "/", .sid = "S1"};
    rc_rules_run(ns, &in, &ops, &f);
    cJSON *args = cJSON_Parse("[]");
    in.event = "e";
    in.args = args;
    rc_rules_run(ns, &in, &ops, &f);
    assert_string_equal(f.log, "emit auth [{}]\nemit a [{\"auth\":{}}]\n");
    cJSON_Delete(args);
    rc_rules_free(r);
}

/* "writeDelay": 0 (absent) to 20 ms, handed to the transport by the node; anything else refused. */
static void test_write_delay(void **state)
{
    rc_rules *r = compile("{\"/\": {\"writeDelay\": 5}, \"/b\": {}, \"/c\": {\"writeDelay\": 20}, \"/d\": {\"writeDelay\": null}}");
    assert_int_equal(rc_ns_rules_write_delay(rc_rules_ns_at(r, 0)), 5);
    assert_int_equal(rc_ns_rules_write_delay(rc_rules_ns_at(r, 1)), 0);
    assert_int_equal(rc_ns_rules_write_delay(rc_rules_ns_at(r, 2)), 20);
    assert_int_equal(rc_ns_rules_write_delay(rc_rules_ns_at(r, 3)), 0);
    rc_rules_free(r);
    EXPECT("{\"/\": {\"writeDelay\": 21}, \"/b\": {\"writeDelay\": -1}, \"/c\": {\"writeDelay\": 1.5}, \"/d\": {\"writeDelay\": \"5\"}}",
           "namespaces./.writeDelay: must be an integer number of milliseconds, 0 (off) to 20",
           "namespaces./b.writeDelay: must be an integer number of milliseconds, 0 (off) to 20",
           "namespaces./c.writeDelay: must be an integer number of milliseconds, 0 (off) to 20",
           "namespaces./d.writeDelay: must be an integer number of milliseconds, 0 (off) to 20");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_rules),
        cmocka_unit_test(test_join_allow),
        cmocka_unit_test(test_relay),
        cmocka_unit_test(test_on_error_and_flow),
        cmocka_unit_test(test_emit_on_ack_and_connect),
        cmocka_unit_test(test_forward_and_presence),
        cmocka_unit_test(test_claims_lazy),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_comments_are_ignored),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_seed_tasks),
        cmocka_unit_test(test_seed_projects),
        cmocka_unit_test(test_seed_chat),
        cmocka_unit_test(test_seed_meetings),
        cmocka_unit_test(test_seed_notifications),
        cmocka_unit_test(test_status_track_rate),
        cmocka_unit_test(test_event_rate_limits),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_auth_error),
        cmocka_unit_test(test_track_silent),
        cmocka_unit_test(test_auth_default),
        cmocka_unit_test(test_write_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
