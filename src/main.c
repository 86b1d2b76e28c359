/*
 * main.c: command line, configuration, signals and the event loop of build/roomcast.
 *
 *   roomcast [--config FILE] [--port N] [--redis URL] [--node-id ID] [--check-config]
 *            [--version] [--help]
 *   roomcast token --sub ID [--claim key=value ...] [--ttl SECONDS] [--config FILE]
 *
 * SIGTERM and SIGINT start a graceful drain; a second signal exits at once. A bad setting never
 * starts a half-configured node: every problem is printed with its field path, exit code 2.
 */
#include "roomcast/auth.h"
#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/frame.h"
#include "roomcast/log.h"
#include "roomcast/node.h"
#include "roomcast/ws.h"

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef RC_VERSION
#define RC_VERSION "dev"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: roomcast [--config FILE] [--port N] [--redis URL] [--node-id ID]\n"
            "                [--check-config] [--version] [--help]\n"
            "       roomcast token --sub ID [--claim key=value ...] [--ttl SECONDS] [--config FILE]\n"
            "Environment: ROOMCAST_CONFIG, ROOMCAST_PORT, ROOMCAST_BIND, ROOMCAST_REDIS_URL,\n"
            "ROOMCAST_PREFIX, ROOMCAST_NODE_ID, ROOMCAST_JWT_SECRET, ROOMCAST_JWT_PUBLIC_KEY_FILE,\n"
            "ROOMCAST_JWT_ALGS, ROOMCAST_CORS_ORIGINS, ROOMCAST_API_KEY, ROOMCAST_LOG_LEVEL,\n"
            "ROOMCAST_LOG_FORMAT. See docs/config.md.\n");
}

static int load_config(rc_config *cfg, const rc_config_flags *flags)
{
    rc_config_errors errs = {0};
    if (rc_config_load(cfg, flags, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++) fprintf(stderr, "config: %s\n", errs.items[i]);
        rc_config_errors_dispose(&errs);
        return -1;
    }
    rc_config_errors_dispose(&errs);
    return 0;
}

/* roomcast token --sub ID [--claim k=v ...] [--ttl S] */
static int cmd_token(int argc, char **argv)
{
    rc_config_flags flags = {NULL, -1, NULL, NULL};
    const char *sub = NULL;
    long ttl = 3600;
    cJSON *claims = cJSON_CreateObject();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sub") == 0 && i + 1 < argc) sub = argv[++i];
        else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc) ttl = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) flags.config_path = argv[++i];
        else if ((strcmp(argv[i], "--port") == 0 || strcmp(argv[i], "--redis") == 0 ||
                  strcmp(argv[i], "--node-id") == 0) && i + 1 < argc)
            i++; /* a node's flags, accepted so that `token` takes the same arguments as the node */
        else if (strcmp(argv[i], "--claim") == 0 && i + 1 < argc) {
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (!eq) { fprintf(stderr, "token: --claim wants key=value\n"); cJSON_Delete(claims); return 2; }
            char *key = rc_strndup(kv, (size_t)(eq - kv));
            cJSON *v = cJSON_Parse(eq + 1); /* JSON if it parses (arrays, numbers), else a string */
            if (!v) v = cJSON_CreateString(eq + 1);
            cJSON_AddItemToObject(claims, key, v);
            rc_free(key);
        } else {
            fprintf(stderr, "token: unknown argument %s\n", argv[i]);
            cJSON_Delete(claims);
            return 2;
        }
    }
    if (!sub) { fprintf(stderr, "token: --sub ID is required\n"); cJSON_Delete(claims); return 2; }
    rc_config cfg;
    if (load_config(&cfg, &flags) != 0) { cJSON_Delete(claims); return 2; }
    char *extra = cJSON_PrintUnformatted(claims);
    char *tok = rc_auth_mint(&cfg.jwt, sub, extra, ttl, time(NULL));
    cJSON_free(extra);
    cJSON_Delete(claims);
    rc_config_dispose(&cfg);
    if (!tok) { fprintf(stderr, "token: no HS secret configured (ROOMCAST_JWT_SECRET)\n"); return 2; }
    printf("%s\n", tok);
    rc_free(tok);
    return 0;
}

typedef struct app {
    struct event_base *base;
    rc_node *node;
    int signals;
} app;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;
    if (++a->signals > 1) {
        rc_log_warn("exit_now", "signal=%d", (int)sig);
        event_base_loopbreak(a->base);
        return;
    }
    rc_log_info("signal", "signal=%d action=drain", (int)sig);
    rc_node_drain(a->node);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0) return cmd_token(argc - 1, argv + 1);
    rc_config_flags flags = {NULL, -1, NULL, NULL};
    int check_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) flags.config_path = argv[++i];
        else if (strcmp(a, "--port") == 0 && i + 1 < argc) {
            char *end;
            long p = strtol(argv[++i], &end, 10);
            if (*end || p < 0 || p > 65535) { fprintf(stderr, "--port: bad port\n"); return 2; }
            flags.port = (int)p;
        } else if (strcmp(a, "--redis") == 0 && i + 1 < argc) flags.redis_url = argv[++i];
        else if (strcmp(a, "--node-id") == 0 && i + 1 < argc) flags.node_id = argv[++i];
        else if (strcmp(a, "--check-config") == 0) check_only = 1;
        else if (strcmp(a, "--version") == 0) { printf("roomcast %s\n", RC_VERSION); return 0; }
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
        else { fprintf(stderr, "unknown argument: %s\n", a); usage(stderr); return 2; }
    }
    rc_config cfg;
    if (load_config(&cfg, &flags) != 0) return 2;
    if (check_only) {
        printf("config ok\n");
        rc_config_dispose(&cfg);
        return 0;
    }
    rc_log_setup(cfg.log_level, cfg.log_json);
    signal(SIGPIPE, SIG_IGN);
    /* A burst allocates and frees many small blocks (frames, queue nodes, parsed packets): keep
     * glibc from returning the heap top to the kernel (brk) and faulting it back on every burst. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);

    app a = {0};
    /* Descriptors are re-armed all the time: bufferevents toggle their write interest. With the epoll
     * changelist, libevent folds the changes of one loop turn per descriptor into at most one
     * epoll_ctl (a delete and an add of the same events cost nothing). libevent documents one
     * case where it is unsafe, descriptors cloned with dup(); roomcast never dups one. */
    struct event_config *ecfg = event_config_new();
    if (ecfg)
        event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    a.base = ecfg ? event_base_new_with_config(ecfg) : NULL;
    if (ecfg)
        event_config_free(ecfg);
    if (!a.base) {
        rc_log_error("start_failed", "error=\"event_base_new failed\"");
        rc_config_dispose(&cfg);
        return 1;
    }
    const char *err = NULL;
    a.node = rc_node_new(a.base, &cfg, &err);
    if (!a.node) {
        rc_log_error("start_failed", "error=\"%s\"", err ? err : "unknown");
        event_base_free(a.base);
        rc_config_dispose(&cfg);
        return 1;
    }
    struct event *sigterm = evsignal_new(a.base, SIGTERM, on_signal, &a);
    struct event *sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    rc_log_info("listening", "node=%s bind=%s port=%d backplane=%s version=%s", cfg.node_id, cfg.bind,
                rc_node_port(a.node), rc_redis_config_wanted(&cfg.redis, cfg.redis_url) ? "redis" : "local", RC_VERSION);
    if (cfg.dev.page)
        rc_log_warn("dev_page", "path=/dev/ note=\"development only: never set dev.page in production\"");
    event_base_dispatch(a.base);

    int code = rc_node_failed(a.node) ? 1 : 0;
    rc_node_free(a.node);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(a.base);
    rc_ws_global_cleanup();
    rc_log_info("stopped", "node=%s frames_live=%llu", cfg.node_id, (unsigned long long)rc_frames_live);
    rc_config_dispose(&cfg);
    return code;
}
