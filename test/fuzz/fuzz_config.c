/*
 * fuzz_config.c: libFuzzer target for src/config.c, src/rules_compile.c and src/template.c.
 *
 * Each input is taken as JSON and used three ways (abort() marks a finding):
 *   - as a template: compiled, then evaluated every way (typed, text, name, truthiness, glob
 *     strings) with the input itself as the event's arguments and auth payload;
 *   - as a "namespaces" object: rc_rules_compile returns rules exactly when it reports no
 *     error, every error is prefixed with the path "namespaces", and when it compiles, every
 *     event rule named in the input and every onConnect list runs against a checking fake node
 *     (rooms are 1..200 bytes, event names non-empty and not reserved, args are arrays, presence
 *     user lists hold 1..100 strings), and every continuation handed out (onAck, then) runs too;
 *   - as a config file (through a memfd): rc_config_load fails exactly when it reports errors,
 *     and then leaves the config zeroed. Inputs naming a key file are skipped here: reading an
 *     arbitrary path (a FIFO, /dev/zero) is not what this target tests.
 * ASan/UBSan catch memory errors and leaks.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/rules.h"
#include "roomcast/template.h"

#define MAX_CONT 8

typedef struct checker {
    const void *cont[MAX_CONT];
    size_t ncont;
    int member;
} checker;

static void check_room(const char *room)
{
    size_t n = strlen(room);
    if (n == 0 || n > RC_TPL_NAME_MAX) abort();
}

static void check_event(const char *event)
{
    static const char *const reserved[] = {"connect", "connect_error", "disconnect", "disconnecting",
                                           "newListener", "removeListener"};
    if (!event || !event[0]) abort();
    for (size_t i = 0; i < RC_ARRAY_LEN(reserved); i++)
        if (strcmp(event, reserved[i]) == 0) abort();
}

static void check_args(cJSON *args)
{
    if (!cJSON_IsArray(args)) abort();
    cJSON_Delete(args);
}

static void keep_cont(checker *c, const void *cont)
{
    if (cont && c->ncont < MAX_CONT) c->cont[c->ncont++] = cont;
}

static const char *op_join(void *t, const char *room) { check_room(room); return NULL; }
static const char *op_leave(void *t, const char *room) { check_room(room); return NULL; }
static int op_is_member(void *t, const char *room)
{
    check_room(room);
    return ((checker *)t)->member;
}
static const char *op_relay(void *t, const char *room, const char *event, cJSON *args, int include_sender)
{
    check_room(room);
    check_event(event);
    check_args(args);
    return include_sender ? NULL : "backplane_down";
}
static void op_emit(void *t, const char *event, cJSON *args, const void *on_ack)
{
    check_event(event);
    check_args(args);
    keep_cont(t, on_ack);
}
static void op_ack(void *t, cJSON *args) { check_args(args); }
static void op_disconnect(void *t) {}
static const char *op_forward(void *t, const char *event, cJSON *data)
{
    check_event(event);
    if (!data) abort();
    cJSON_Delete(data);
    return NULL;
}
static const char *op_presence(void *t, cJSON *users, const void *then)
{
    int n = cJSON_GetArraySize(users);
    if (!cJSON_IsArray(users) || n < 1 || n > 100 || !then) abort();
    for (cJSON *u = users->child; u; u = u->next)
        if (!cJSON_IsString(u) || !u->valuestring[0]) abort();
    cJSON_Delete(users);
    keep_cont(t, then);
    return NULL;
}

static const rc_rule_ops ops = {
    .join = op_join, .leave = op_leave, .is_member = op_is_member, .relay = op_relay, .emit = op_emit,
    .ack = op_ack, .disconnect = op_disconnect, .forward = op_forward, .presence = op_presence,
};

static int count_string(void *arg, const char *s)
{
    if (!s) abort();
    (*(size_t *)arg)++;
    return 0;
}

static void fuzz_template(const cJSON *json, const cJSON *args)
{
    rc_tpl *t = rc_tpl_compile(json, "t", NULL);
    if (!t) return;
    rc_tpl_ctx ctx = {.args = args, .auth = json, .event = "e", .ns = "/", .sid = "s", .user = "u",
                      .room = "r", .error = "x", .claims_json = "{\"rooms\":[\"a*\",\"?b\"],\"n\":1}"};
    cJSON_Delete(rc_tpl_eval(t, &ctx));
    char *heap;
    const char *text = rc_tpl_text(t, &ctx, &heap);
    if (!text) abort();
    rc_free(heap);
    (void)rc_tpl_truthy(t, &ctx);
    char name[RC_TPL_NAME_MAX + 1];
    int n = rc_tpl_name(t, &ctx, name);
    if (n > RC_TPL_NAME_MAX || (n >= 0 && (size_t)n != strlen(name))) abort();
    size_t count = 0;
    rc_tpl_each_string(t, &ctx, count_string, &count);
    rc_tpl_ctx_dispose(&ctx);
    rc_tpl_free(t);
}

static void run_ns(const rc_ns_rules *ns, const cJSON *ns_json, const cJSON *args)
{
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(ns_json, "events");
    for (int member = 0; member < 2; member++) {
        for (const cJSON *ev = events ? events->child : NULL;; ev = ev->next) {
            checker c = {.member = member};
            rc_rule_input in = {.ns = rc_ns_rules_name(ns), .sid = "sid", .user = member ? "42" : NULL,
                                .claims_json = member ? "{\"sub\":\"42\",\"rooms\":[\"*\"]}" : NULL,
                                .auth = ns_json, .event = ev ? ev->string : NULL, .args = ev ? args : NULL,
                                .has_ack = member};
            rc_rules_run(ns, &in, &ops, &c);
            for (size_t i = 0; i < c.ncont; i++) {
                checker c2 = {.member = member};
                rc_rule_input ack = in;
                ack.args = args;
                rc_rules_run_ack(ns, c.cont[i], &ack, &ops, &c2);
            }
            if (!ev) break;
        }
    }
    char *room = rc_ns_rules_user_room(ns, "42", "{\"sub\":\"42\"}");
    if (room) check_room(room);
    rc_free(room);
}

static void fuzz_rules(const cJSON *json, const cJSON *args)
{
    rc_config_errors errs = {0};
    rc_rules *rules = rc_rules_compile(json, "namespaces", &errs);
    if (!rules != (errs.count > 0)) abort();
    for (size_t i = 0; i < errs.count; i++)
        if (strncmp(errs.items[i], "namespaces", 10) != 0) abort();
    rc_config_errors_dispose(&errs);
    if (!rules) return;
    for (size_t i = 0; i < rc_rules_ns_count(rules); i++) {
        const rc_ns_rules *ns = rc_rules_ns_at(rules, i);
        const char *name = rc_ns_rules_name(ns);
        if (rc_rules_find_ns(rules, name, strlen(name)) != ns) abort();
        run_ns(ns, cJSON_GetObjectItemCaseSensitive(json, name), args);
    }
    rc_rules_free(rules);
}

static void fuzz_config_file(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "publicKeyFile", 13)) return;
    int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
    if (fd < 0) return;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rc_config_flags flags = {.port = -1, .config_path = path};
    rc_config cfg;
    rc_config_errors errs = {0};
    int r = rc_config_load(&cfg, &flags, &errs);
    if ((r < 0) != (errs.count > 0)) abort();
    if (r == 0) {
        if (!cfg.rules || !cfg.node_id || !cfg.path || cfg.path[strlen(cfg.path) - 1] != '/') abort();
        rc_config_dispose(&cfg);
    } else {
        static const rc_config zero;
        if (memcmp(&cfg, &zero, sizeof(zero)) != 0) abort();
    }
    rc_config_errors_dispose(&errs);
    close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const vars[] = {"ROOMCAST_CONFIG", "ROOMCAST_PORT", "ROOMCAST_BIND", "ROOMCAST_REDIS_URL",
                                       "ROOMCAST_PREFIX", "ROOMCAST_NODE_ID", "ROOMCAST_API_KEY",
                                       "ROOMCAST_JWT_PUBLIC_KEY_FILE", "ROOMCAST_JWT_ALGS", "ROOMCAST_CORS_ORIGINS",
                                       "ROOMCAST_LOG_LEVEL", "ROOMCAST_LOG_FORMAT"};
    for (size_t i = 0; i < RC_ARRAY_LEN(vars); i++) unsetenv(vars[i]);
    setenv("ROOMCAST_JWT_SECRET", "fuzz", 1); /* so that valid files load */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *json = cJSON_ParseWithLength((const char *)data, size);
    if (json) {
        cJSON *args = cJSON_IsArray(json) ? cJSON_Duplicate(json, 1) : cJSON_CreateArray();
        if (!cJSON_IsArray(json)) cJSON_AddItemToArray(args, cJSON_Duplicate(json, 1));
        fuzz_template(json, args);
        fuzz_rules(json, args);
        cJSON_Delete(args);
        cJSON_Delete(json);
    }
    fuzz_config_file(data, size);
    return 0;
}
