/*
 * redis_sentinel.c: asking Redis Sentinel where the master is, and listening for it to move
 * (include: src/redis_sentinel.h; the story for operators: docs/redis.md, "Sentinel").
 *
 * Design note. Two small state machines share the sentinel list and nothing else:
 *
 *   find:  [resolve the sentinel's name] -> connect -> SENTINEL GET-MASTER-ADDR-BY-NAME
 *          -> answer (an address, or a name when the sentinels announce host names: the
 *          caller resolves it, as it resolves a URL's host)
 *          Any failure (connect refused, AUTH refused, 1 s without an answer, nil: "I do not
 *          know that master", an error reply) moves on to the next sentinel; after one round
 *          without an answer the caller gets why. The next find starts at the sentinel that
 *          answered last.
 *   watch: [resolve] -> connect -> SUBSCRIBE +switch-master -> on_switch for our name.
 *          A lost watch connection moves to the next sentinel after WATCH_RETRY_MS.
 *
 * Every step that follows a callback of redis_conn (a failure, a reply) runs from the loop
 * through a zero timer, so a connection is never reopened from inside its own callback.
 * Names are resolved with the lookup every Redis connection uses (redis_link.h: glibc's
 * getaddrinfo_a, polled, never blocking the loop; an IPv4 answer is preferred). The timers stay
 * this file's: their rule is not the backplane's backoff but "move on to the next sentinel"
 * (after ASK_TIMEOUT_MS without an answer, WATCH_RETRY_MS after a lost watch).
 */
#include "redis_sentinel.h"

#include "redis_conn.h"
#include "redis_link.h"
#include "roomcast/common.h"
#include "roomcast/log.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const uint64_t ASK_TIMEOUT_MS = 1000; /* one sentinel: connect + answer */
static const uint64_t WATCH_RETRY_MS = 500;  /* a lost watch moves to the next sentinel after */
static const uint64_t RESOLVE_POLL_MS = REDIS_LINK_RESOLVE_POLL_MS;

enum find_step { FIND_IDLE = 0, FIND_RESOLVING, FIND_ASKING };

struct rc_sentinel {
    struct event_base *base;
    const rc_redis_config *cfg;
    SSL_CTX *ssl_ctx;
    rc_redis_url auth;              /* the sentinels' credentials (user, password); no db */
    char *find_name, *watch_name;   /* CLIENT SETNAME */
    rc_sentinel_switch_fn on_switch;
    void *arg;

    /* find */
    redis_conn fconn;
    int fstep;                      /* enum find_step */
    size_t fidx, ftried, last_good;
    rc_sentinel_found_fn ffn;
    void *farg;
    redis_link_resolve fres;
    char why[200];                  /* the last sentinel's failure, for the answer */
    struct event *fnext_ev;         /* zero timer: the next step, from the loop */
    struct event *ftimeout_ev;      /* ASK_TIMEOUT_MS per sentinel; also polls the resolver */

    /* watch */
    redis_conn wconn;
    int watching;
    size_t widx;
    redis_link_resolve wres;
    struct event *wretry_ev;        /* retry after a failure; also polls the resolver */

    rc_sentinel_stats stats;
};

static int open_to(rc_sentinel *s, redis_conn *c, const rc_redis_addr *a, const char *ip, const char *name)
{
    redis_conn_target t = {
        .ip = ip,
        .port = a->port,
        .ssl_ctx = s->ssl_ctx,
        .tls_name = s->cfg->server_name ? s->cfg->server_name : a->host,
    };
    return redis_conn_open(c, &t, &s->auth, name);
}

/* ---- find ------------------------------------------------------------------------------------ */

static void find_later(rc_sentinel *s)
{
    struct timeval now = {0, 0};
    event_add(s->fnext_ev, &now);
}

static void find_answer(rc_sentinel *s, const char *ip, int port, const char *why)
{
    rc_sentinel_found_fn fn = s->ffn;
    void *arg = s->farg;
    s->fstep = FIND_IDLE;
    s->ffn = NULL;
    event_del(s->ftimeout_ev);
    event_del(s->fnext_ev);
    redis_conn_close(&s->fconn);
    if (ip) s->stats.finds++;
    else s->stats.failures++;
    if (fn) fn(arg, ip, port, why);
}

/* This sentinel could not help: remember why and move on, from the loop. */
static void find_skip(rc_sentinel *s, const char *fmt, const char *detail)
{
    const rc_redis_addr *a = &s->cfg->sentinels[s->fidx];
    char what[160];
    snprintf(what, sizeof(what), fmt, detail ? detail : "");
    snprintf(s->why, sizeof(s->why), "sentinel %s:%d: %s", a->host, a->port, what);
    rc_log_debug("sentinel_skip", "reason=\"%s\"", s->why);
    redis_conn_close(&s->fconn);
    event_del(s->ftimeout_ev);
    s->fstep = FIND_IDLE;
    s->ftried++;
    s->fidx = (s->fidx + 1) % s->cfg->sentinel_count;
    find_later(s);
}

static void find_on_reply(void *arg, redis_conn *c, const redis_conn_cmd *cmd, redisReply *r)
{
    rc_sentinel *s = arg;
    if (s->fstep != FIND_ASKING || c != &s->fconn) return;
    if (!r) return; /* the connection failed: on_fail moved on already */
    if (r->type == REDIS_REPLY_NIL) {
        find_skip(s, "does not know master \"%s\"", s->cfg->master_name);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        find_skip(s, "refused: %s", r->str);
        return;
    }
    char port_text[16] = "";
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 || r->element[0]->len > 255 ||
        r->element[1]->len >= sizeof(port_text)) {
        find_skip(s, "answered something that is not an address%s", NULL);
        return;
    }
    memcpy(port_text, r->element[1]->str, r->element[1]->len);
    char *end;
    long port = strtol(port_text, &end, 10);
    if (*end || port < 1 || port > 65535) {
        find_skip(s, "answered a bad port%s", NULL);
        return;
    }
    char host[256];
    memcpy(host, r->element[0]->str, r->element[0]->len);
    host[r->element[0]->len] = '\0';
    s->last_good = s->fidx;
    find_answer(s, host, (int)port, NULL); /* a name (announce-hostnames) is the caller's to resolve */
}

static void find_on_ready(void *arg, redis_conn *c)
{
    rc_sentinel *s = arg;
    const char *argv[3] = {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", s->cfg->master_name};
    size_t lens[3] = {8, 23, strlen(s->cfg->master_name)};
    if (redis_conn_command(c, find_on_reply, s, 3, argv, lens) != 0) find_skip(s, "could not send%s", NULL);
}

static void find_on_fail(void *arg, redis_conn *c, const char *reason)
{
    rc_sentinel *s = arg;
    if (s->fstep == FIND_ASKING) find_skip(s, "%s", reason);
}

static void find_connect(rc_sentinel *s, const char *ip)
{
    s->fstep = FIND_ASKING;
    if (open_to(s, &s->fconn, &s->cfg->sentinels[s->fidx], ip, s->find_name) != 0)
        find_skip(s, "could not start connecting%s", NULL);
}

/* The next step of a find, always from the loop. */
static void find_step(rc_sentinel *s)
{
    if (s->fstep != FIND_IDLE || !s->ffn) return;
    if (s->ftried >= s->cfg->sentinel_count) {
        char why[260];
        snprintf(why, sizeof(why), "no sentinel named the master (last: %s)", s->why);
        find_answer(s, NULL, 0, why);
        return;
    }
    const rc_redis_addr *a = &s->cfg->sentinels[s->fidx];
    struct timeval tv = redis_link_tv(ASK_TIMEOUT_MS);
    if (redis_link_numeric(a->host)) {
        event_add(s->ftimeout_ev, &tv);
        find_connect(s, a->host);
        return;
    }
    if (redis_link_resolve_start(&s->fres, a->host) != 0) {
        find_skip(s, "getaddrinfo_a failed%s", NULL);
        return;
    }
    s->fstep = FIND_RESOLVING;
    tv = redis_link_tv(RESOLVE_POLL_MS);
    event_add(s->ftimeout_ev, &tv);
}

static void find_on_next(evutil_socket_t fd, short what, void *arg)
{
    find_step(arg);
}

/* The per-sentinel timeout, which also polls a resolver while one runs. */
static void find_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    rc_sentinel *s = arg;
    if (s->fstep == FIND_RESOLVING) {
        char ip[INET6_ADDRSTRLEN];
        char why[200];
        int done = redis_link_resolve_poll(&s->fres, ip, sizeof(ip), why, sizeof(why));
        if (done == 0) {
            struct timeval tv = redis_link_tv(RESOLVE_POLL_MS);
            event_add(s->ftimeout_ev, &tv);
        } else if (done < 0) {
            find_skip(s, "%s", why);
        } else {
            struct timeval tv = redis_link_tv(ASK_TIMEOUT_MS);
            event_add(s->ftimeout_ev, &tv);
            find_connect(s, ip);
        }
        return;
    }
    if (s->fstep == FIND_ASKING) find_skip(s, "no answer within %s", "1 s");
}

void rc_sentinel_find(rc_sentinel *s, rc_sentinel_found_fn fn, void *arg)
{
    rc_sentinel_cancel(s);
    s->ffn = fn;
    s->farg = arg;
    s->ftried = 0;
    s->fidx = s->last_good;
    s->why[0] = '\0';
    find_later(s);
}

void rc_sentinel_cancel(rc_sentinel *s)
{
    s->ffn = NULL;
    s->fstep = FIND_IDLE;
    event_del(s->fnext_ev);
    event_del(s->ftimeout_ev);
    redis_conn_close(&s->fconn);
    redis_link_resolve_dispose(&s->fres);
}

/* ---- watch ----------------------------------------------------------------------------------- */

int rc_sentinel_parse_switch(const char *msg, size_t len, const char *name, char *ip, size_t iplen, int *port)
{
    /* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
    char buf[600];
    if (len >= sizeof(buf)) return -1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    char *field[5];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save)) {
        if (n == 5) return -1; /* a sixth field */
        field[n++] = t;
    }
    if (n != 5 || strcmp(field[0], name) != 0) return -1;
    char *end;
    long p = strtol(field[4], &end, 10);
    if (*end || p < 1 || p > 65535 || strlen(field[3]) >= iplen || !field[3][0]) return -1;
    strcpy(ip, field[3]);
    *port = (int)p;
    return 0;
}

static void watch_retry(rc_sentinel *s, uint64_t ms)
{
    struct timeval tv = redis_link_tv(ms);
    event_add(s->wretry_ev, &tv);
}

static void watch_on_ready(void *arg, redis_conn *c)
{
    rc_sentinel *s = arg;
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    size_t lens[2] = {9, 14};
    if (redis_conn_subscribe(c, 2, argv, lens) != 0) {
        redis_conn_close(c);
        s->widx = (s->widx + 1) % s->cfg->sentinel_count;
        watch_retry(s, WATCH_RETRY_MS);
    }
}

static void watch_on_fail(void *arg, redis_conn *c, const char *reason)
{
    rc_sentinel *s = arg;
    const rc_redis_addr *a = &s->cfg->sentinels[s->widx];
    rc_log_info("sentinel_watch_lost", "sentinel=%s:%d reason=\"%s\"", a->host, a->port, reason);
    redis_conn_close(c);
    s->widx = (s->widx + 1) % s->cfg->sentinel_count;
    watch_retry(s, WATCH_RETRY_MS);
}

static void watch_on_push(void *arg, redis_conn *c, redisReply *r)
{
    rc_sentinel *s = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return; /* the subscribe confirmation, or something we did not ask for */
    char ip[256];
    int port;
    if (rc_sentinel_parse_switch(r->element[2]->str, r->element[2]->len, s->cfg->master_name, ip, sizeof(ip),
                                 &port) != 0)
        return; /* another master's switch */
    s->stats.switches++;
    rc_log_info("sentinel_switch_master", "master=%s address=%s:%d", s->cfg->master_name, ip, port);
    if (s->on_switch) s->on_switch(s->arg, ip, port);
}

static void watch_connect(rc_sentinel *s, const char *ip)
{
    if (open_to(s, &s->wconn, &s->cfg->sentinels[s->widx], ip, s->watch_name) != 0) {
        s->widx = (s->widx + 1) % s->cfg->sentinel_count;
        watch_retry(s, WATCH_RETRY_MS);
    }
}

/* The retry timer: (re)connects the watch, polling the resolver while it runs. */
static void watch_on_retry(evutil_socket_t fd, short what, void *arg)
{
    rc_sentinel *s = arg;
    if (!s->watching || s->wconn.state != REDIS_CONN_CLOSED) return;
    const rc_redis_addr *a = &s->cfg->sentinels[s->widx];
    if (redis_link_numeric(a->host)) {
        watch_connect(s, a->host);
        return;
    }
    if (!s->wres.busy && !s->wres.name) {
        if (redis_link_resolve_start(&s->wres, a->host) != 0) {
            s->widx = (s->widx + 1) % s->cfg->sentinel_count;
            watch_retry(s, WATCH_RETRY_MS);
            return;
        }
    }
    char ip[INET6_ADDRSTRLEN];
    char why[200];
    int done = redis_link_resolve_poll(&s->wres, ip, sizeof(ip), why, sizeof(why));
    if (done == 0) {
        watch_retry(s, RESOLVE_POLL_MS);
        return;
    }
    redis_link_resolve_dispose(&s->wres);
    if (done < 0) {
        rc_log_info("sentinel_watch_lost", "sentinel=%s:%d reason=\"%s\"", a->host, a->port, why);
        s->widx = (s->widx + 1) % s->cfg->sentinel_count;
        watch_retry(s, WATCH_RETRY_MS);
        return;
    }
    watch_connect(s, ip);
}

void rc_sentinel_watch(rc_sentinel *s)
{
    s->watching = 1;
    watch_retry(s, 0);
}

/* ---- the object ------------------------------------------------------------------------------ */

static char *conn_name(const char *node_id, const char *role)
{
    size_t n = strlen(node_id) + strlen(role) + 16;
    char *p = rc_malloc(n);
    snprintf(p, n, "roomcast:%s:%s", node_id, role);
    for (char *q = p; *q; q++)
        if (*q <= ' ' || *q == 0x7f) *q = '-'; /* CLIENT SETNAME refuses spaces */
    return p;
}

rc_sentinel *rc_sentinel_new(struct event_base *base, const rc_redis_config *cfg, SSL_CTX *ssl_ctx,
                             const char *node_id, rc_sentinel_switch_fn on_switch, void *arg)
{
    rc_sentinel *s = rc_calloc(1, sizeof(*s));
    s->base = base;
    s->cfg = cfg;
    s->ssl_ctx = ssl_ctx;
    s->auth.user = cfg->sentinel_user;
    s->auth.password = cfg->sentinel_password;
    s->find_name = conn_name(node_id, "sentinel");
    s->watch_name = conn_name(node_id, "sentinel-watch");
    s->on_switch = on_switch;
    s->arg = arg;
    redis_conn_callbacks fcb = {.on_ready = find_on_ready, .on_fail = find_on_fail, .arg = s};
    redis_conn_callbacks wcb = {.on_ready = watch_on_ready, .on_fail = watch_on_fail, .on_push = watch_on_push,
                                .arg = s};
    redis_conn_init(&s->fconn, base, "sentinel", &fcb);
    redis_conn_init(&s->wconn, base, "sentinel-watch", &wcb);
    s->fnext_ev = evtimer_new(base, find_on_next, s);
    s->ftimeout_ev = evtimer_new(base, find_on_timeout, s);
    s->wretry_ev = evtimer_new(base, watch_on_retry, s);
    if (!s->fnext_ev || !s->ftimeout_ev || !s->wretry_ev) abort(); /* out of memory, as rc_malloc */
    return s;
}

void rc_sentinel_free(rc_sentinel *s)
{
    if (!s) return;
    rc_sentinel_cancel(s);
    s->watching = 0;
    redis_conn_close(&s->wconn);
    redis_link_resolve_dispose(&s->wres);
    event_free(s->fnext_ev);
    event_free(s->ftimeout_ev);
    event_free(s->wretry_ev);
    redis_conn_dispose(&s->fconn);
    redis_conn_dispose(&s->wconn);
    rc_free(s->find_name);
    rc_free(s->watch_name);
    rc_free(s);
}

void rc_sentinel_get_stats(const rc_sentinel *s, rc_sentinel_stats *out)
{
    *out = s->stats;
}
