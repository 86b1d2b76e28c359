/*
 * cluster_harness.h: a real Redis Cluster of three masters for tests (redis_harness.h's servers
 * with --cluster-enabled yes), joined without redis-cli: each master is given a third of the
 * slots with CLUSTER ADDSLOTSRANGE, the first one MEETs the others, and ch_start waits until
 * every master reports cluster_state:ok and sees three masters.
 *
 *   ch_cluster c;
 *   ch_start(&c);              0, or -1 (everything started is killed again)
 *   c.s[i].port                master i serves slots [i * 5462, ...] (the last one up to 16383)
 *   ch_stop(&c);
 *
 * Node files go to a fresh directory under /tmp, removed by ch_stop. Header-only.
 */
#ifndef ROOMCAST_TEST_CLUSTER_HARNESS_H
#define ROOMCAST_TEST_CLUSTER_HARNESS_H

#include "redis_harness.h"

enum { CH_N = 3 };

typedef struct ch_cluster {
    rh_server s[CH_N];
    int bus[CH_N];       /* cluster bus ports */
    char dir[64];
} ch_cluster;

static inline int ch_first_slot(int i)
{
    return i * 5462;
}

static inline int ch_last_slot(int i)
{
    return i == CH_N - 1 ? 16383 : (i + 1) * 5462 - 1;
}

/* A reply to a command on a fresh client of s, or NULL. The caller frees it. */
static inline redisReply *ch_command(const rh_server *s, const char *fmt, ...)
{
    redisContext *c = rh_client(s);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static inline int ch_ok(const rh_server *s)
{
    redisReply *r = ch_command(s, "CLUSTER INFO");
    int ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
             strstr(r->str, "cluster_known_nodes:3");
    if (r) freeReplyObject(r);
    return ok;
}

static inline void ch_stop(ch_cluster *c)
{
    char path[128];
    for (int i = 0; i < CH_N; i++) {
        if (c->s[i].port) {
            snprintf(path, sizeof(path), "%s/nodes-%d.conf", c->dir, c->s[i].port);
            unlink(path);
        }
        rh_kill(&c->s[i]);
    }
    if (c->dir[0]) rmdir(c->dir);
}

static inline int ch_start(ch_cluster *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/rc-cluster-XXXXXX");
    if (!mkdtemp(c->dir)) {
        c->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < CH_N; i++) {
        char conf[128], bus[16];
        int port = rh_free_port();
        /* the bus port defaults to port + 10000, which may not exist: pick one */
        c->bus[i] = rh_free_port();
        snprintf(bus, sizeof(bus), "%d", c->bus[i]);
        snprintf(conf, sizeof(conf), "%s/nodes-%d.conf", c->dir, port);
        const char *extra[] = {"--cluster-enabled", "yes", "--cluster-config-file", conf,
                               "--cluster-port", bus, "--cluster-node-timeout", "2000", NULL};
        if (rh_start(&c->s[i], port, extra) != 0) goto fail;
    }
    for (int i = 0; i < CH_N; i++) {
        redisReply *r = ch_command(&c->s[i], "CLUSTER ADDSLOTSRANGE %d %d", ch_first_slot(i),
                                   ch_last_slot(i));
        int ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
        if (!ok) goto fail;
    }
    for (int i = 1; i < CH_N; i++) {
        redisReply *r = ch_command(&c->s[0], "CLUSTER MEET 127.0.0.1 %d %d", c->s[i].port,
                                   c->bus[i]);
        if (r) freeReplyObject(r);
    }
    for (int waited = 0; waited < 20000; waited += 50) {
        int all = 1;
        for (int i = 0; i < CH_N; i++) all = all && ch_ok(&c->s[i]);
        if (all) return 0;
        rh_sleep_ms(50);
    }
fail:
    ch_stop(c);
    return -1;
}

#endif
