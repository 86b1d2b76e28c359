/*
 * redis_link.c: the connection lifecycle shared by every owner of a redis_conn: timings, the
 * jittered backoff, the asynchronous name lookup and the canary round trip. Contract and who
 * uses it: src/redis_link.h. It holds no event and fails nothing: its owners' ticks ask it.
 *
 * Ownership: a redis_link_resolve owns its request and the copy of the name the resolver thread
 * reads; redis_link_resolve_dispose is the one place that frees them (after cancelling the
 * request, or waiting for the thread when it cannot be cancelled).
 */
#include "redis_link.h"

#include "roomcast/common.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct timeval redis_link_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

uint64_t redis_link_backoff(uint64_t *step_ms)
{
    uint64_t step = *step_ms ? *step_ms * 2 : REDIS_LINK_BACKOFF_MIN_MS, r;
    if (step > REDIS_LINK_BACKOFF_MAX_MS) step = REDIS_LINK_BACKOFF_MAX_MS;
    *step_ms = step;
    rc_random_bytes(&r, sizeof(r));
    return step / 2 + r % (step / 2 + 1);
}

int redis_link_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---- names ------------------------------------------------------------------------------- */

void redis_link_resolve_dispose(redis_link_resolve *r)
{
    if (r->busy && gai_cancel(&r->req) == EAI_NOTCANCELED) {
        const struct gaicb *list[1] = {&r->req};
        while (gai_error(&r->req) == EAI_INPROGRESS) gai_suspend(list, 1, NULL);
    }
    if (r->req.ar_result) freeaddrinfo(r->req.ar_result);
    rc_free(r->name);
    memset(r, 0, sizeof(*r));
}

int redis_link_resolve_start(redis_link_resolve *r, const char *host)
{
    redis_link_resolve_dispose(r);
    r->name = rc_strdup(host);
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->req.ar_name = r->name;
    r->req.ar_request = &r->hints;
    struct gaicb *list[1] = {&r->req};
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        redis_link_resolve_dispose(r);
        return -1;
    }
    r->busy = 1;
    return 0;
}

int redis_link_resolve_running(const redis_link_resolve *r, const char *host)
{
    return r->busy && strcmp(r->name, host) == 0 && gai_error((struct gaicb *)&r->req) == EAI_INPROGRESS;
}

int redis_link_resolve_poll(redis_link_resolve *r, char *ip, size_t iplen, char *why, size_t whylen)
{
    int err = gai_error(&r->req);
    if (err == EAI_INPROGRESS) return 0;
    r->busy = 0;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = err ? NULL : r->req.ar_result; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (!pick && ai->ai_family == AF_INET6) pick = ai;
    }
    ip[0] = '\0';
    if (pick && pick->ai_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, (socklen_t)iplen);
    else if (pick)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip, (socklen_t)iplen);
    if (!ip[0]) {
        snprintf(why, whylen, "cannot resolve %s: %s", r->name, err ? gai_strerror(err) : "no address");
        return -1;
    }
    return 1;
}

/* ---- the canary -------------------------------------------------------------------------- */

int redis_link_canary_send(redis_link_canary *k, redis_conn *c, const char *verb,
                           const char *channel, size_t chanlen, const char *nonce,
                           redis_conn_reply_fn fn, void *arg)
{
    char token[40];
    uint64_t now = rc_now_mono_ms();
    snprintf(token, sizeof(token), "%s:%" PRIu64, nonce, ++k->seq);
    const char *argv[3] = {verb, channel, token};
    size_t lens[3] = {strlen(verb), chanlen, strlen(token)};
    k->next_ms = now + REDIS_LINK_CANARY_INTERVAL_MS;
    if (redis_conn_command(c, fn, arg, 3, argv, lens) != 0) return -1;
    k->pending = 1;
    k->sent_ms = now;
    k->sent_ns = rc_now_mono_ns();
    return 0;
}

int redis_link_canary_received(redis_link_canary *k, const char *nonce, const char *payload,
                               size_t len)
{
    char token[40];
    snprintf(token, sizeof(token), "%s:%" PRIu64, nonce, k->seq);
    if (!k->pending || len != strlen(token) || memcmp(payload, token, len) != 0) return 0;
    k->pending = 0;
    k->lag_s = (double)(rc_now_mono_ns() - k->sent_ns) / 1e9;
    return 1;
}

int redis_link_canary_lost(const redis_link_canary *k, uint64_t now_ms, uint64_t last_push_ms)
{
    if (!k->pending || now_ms - k->sent_ms < REDIS_LINK_CANARY_TIMEOUT_MS) return 0;
    int delivering = last_push_ms >= k->sent_ms && now_ms - k->sent_ms < REDIS_LINK_CANARY_BUSY_MAX_MS;
    return !delivering;
}

int redis_link_canary_due(const redis_link_canary *k, uint64_t now_ms)
{
    return !k->pending && now_ms >= k->next_ms;
}

void redis_link_canary_reset(redis_link_canary *k)
{
    k->pending = 0;
    k->ok = 0;
}
