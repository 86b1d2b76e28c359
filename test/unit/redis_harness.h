/*
 * redis_harness.h: a real redis-server for tests, as a child process on a free loopback port.
 *
 *   rh_server s;
 *   rh_start(&s, rh_free_port(), NULL);     starts and waits until it answers (5 s at most)
 *   redisContext *c = rh_client(&s);        a blocking hiredis client (the "backend")
 *   rh_signal(&s, SIGSTOP) / SIGCONT        freeze and thaw it
 *   rh_kill(&s)                             SIGKILL and reap; rh_start(&s, s.port, ...) again
 *
 * The server runs with no persistence (--save '' --appendonly no), its output goes to /dev/null,
 * and it gets SIGKILL if the test process dies (PR_SET_PDEATHSIG), so no test leaves one behind.
 * extra_args (NULL-terminated, may be NULL) are appended to the command line, e.g.
 * {"--requirepass", "pw", NULL}. Requires redis-server on PATH. Header-only; all static inline.
 */
#ifndef ROOMCAST_TEST_REDIS_HARNESS_H
#define ROOMCAST_TEST_REDIS_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct rh_server {
    pid_t pid;   /* 0 when not running */
    int port;
} rh_server;

static inline void rh_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A loopback port that was free a moment ago (bind to port 0, read it back, close). */
static inline int rh_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* A blocking client with a 2 s timeout; NULL if the server does not accept. */
static inline redisContext *rh_client(const rh_server *s)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) redisSetTimeout(c, tv);
    return c;
}

/* 0 once the server answers PING (an error reply such as NOAUTH counts as an answer). */
static inline int rh_wait_ready(const rh_server *s, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        redisContext *c = rh_client(s);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r != NULL;
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return 0;
        }
        rh_sleep_ms(20);
    }
    return -1;
}

static inline int rh_start(rh_server *s, int port, const char *const *extra_args)
{
    char portbuf[16];
    const char *argv[48];
    int argc = 0;

    snprintf(portbuf, sizeof(portbuf), "%d", port);
    argv[argc++] = "redis-server";
    argv[argc++] = "--port";
    argv[argc++] = portbuf;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--daemonize";
    argv[argc++] = "no";
    argv[argc++] = "--dir";
    argv[argc++] = "/tmp";
    for (int i = 0; extra_args && extra_args[i] && argc < 47; i++) argv[argc++] = extra_args[i];
    argv[argc] = NULL;

    s->port = port;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    if (rh_wait_ready(s, 5000) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        s->pid = 0;
        return -1;
    }
    return 0;
}

static inline void rh_signal(const rh_server *s, int sig)
{
    if (s->pid > 0) kill(s->pid, sig);
}

static inline void rh_kill(rh_server *s)
{
    if (s->pid <= 0) return;
    kill(s->pid, SIGCONT); /* a stopped process still dies of SIGKILL, but be explicit */
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* Runs a command on a fresh blocking client and returns its integer reply (or the first
 * integer of an array reply's pairs, as PUBSUB NUMSUB gives), -1 on failure. */
static inline long long rh_numsub(const rh_server *s, const char *channel)
{
    redisContext *c = rh_client(s);
    long long n = -1;
    if (!c) return -1;
    redisReply *r = redisCommand(c, "PUBSUB NUMSUB %s", channel);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_INTEGER)
        n = r->element[1]->integer;
    if (r) freeReplyObject(r);
    redisFree(c);
    return n;
}

/* PUBLISH channel payload; returns the receiver count or -1. */
static inline long long rh_publish(const rh_server *s, const char *channel, const char *payload)
{
    redisContext *c = rh_client(s);
    long long n = -1;
    if (!c) return -1;
    redisReply *r = redisCommand(c, "PUBLISH %s %s", channel, payload);
    if (r && r->type == REDIS_REPLY_INTEGER) n = r->integer;
    if (r) freeReplyObject(r);
    redisFree(c);
    return n;
}

/* "calls" of one command from INFO commandstats (e.g. "subscribe"), -1 if absent. */
static inline long long rh_cmdstat_calls(const rh_server *s, const char *cmd)
{
    redisContext *c = rh_client(s);
    long long n = -1;
    char key[64];
    if (!c) return -1;
    redisReply *r = redisCommand(c, "INFO commandstats");
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        n = p ? atoll(p + strlen(key)) : 0;
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return n;
}

#endif
