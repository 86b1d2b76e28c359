/*
 * sio_rate.c: the inbound rate limits of the Socket.IO server (a namespace's rateLimit and the
 * rateLimits of single events, docs/config.md), kept per Engine.IO session. Called by src/sio.c
 * for each CONNECT and each client event; the structures are in src/sio_internal.h.
 *
 * Whose budget: the session's (the client object), one rc_sio_budget per namespace, not the
 * namespace socket's. A socket is cheap to make again (DISCONNECT, CONNECT, on the same
 * connection), so a budget kept by the socket would start full with every new one; kept by the
 * session it carries over, and a CONNECT after the first to the same namespace costs a token of
 * that namespace's bucket too (it costs the node a token check, rooms and presence). The first
 * CONNECT is free, so a client that connects once has its whole burst for events.
 *
 * A bucket holds `events` tokens, refilled at events per interval, and starts full at first use
 * (last_ms 0). An event takes a token of the namespace's bucket, then one of its own limit's (an
 * event refused by the first does not spend the second).
 *
 * What it does not do: count or answer refusals (sio.c counts them in rate_limited and answers:
 * the event goes to the hooks marked limited, the CONNECT gets CONNECT_ERROR rate_limited), or
 * know which events have their own limit (the node's event_limit hook says).
 */
#include "sio_internal.h"
#include "roomcast/common.h"

/* Takes a token: refills for the time since the last take, at most `events`. First use: full. */
static int bucket_take(rc_sio_bucket *b, uint32_t now, unsigned events, unsigned interval)
{
    if (b->last_ms == 0) {
        b->tokens = (float)events;
        b->last_ms = now ? now : 1;
    }
    b->tokens += (float)(uint32_t)(now - b->last_ms) * (float)events / (float)interval;
    b->last_ms = now ? now : 1;
    if (b->tokens > (float)events) b->tokens = (float)events;
    if (b->tokens < 1.0f) return 0;
    b->tokens -= 1.0f;
    return 1;
}

static rc_sio_budget *budget_of(rc_sio_client *c, const rc_sio_ns *ns)
{
    if (!c->budgets) c->budgets = rc_calloc(c->srv->ns_count, sizeof(*c->budgets));
    return &c->budgets[ns->index];
}

int rc_sio__rate_connect(rc_sio_client *c, const rc_sio_ns *ns)
{
    if (!ns->set.rate_events) return 1;
    rc_sio_budget *b = budget_of(c, ns);
    if (!b->connected) {
        b->connected = 1;
        return 1;
    }
    return bucket_take(&b->ns, (uint32_t)rc_now_mono_ms(), ns->set.rate_events, ns->set.rate_interval_ms);
}

int rc_sio__rate_event(rc_sio_client *c, const rc_sio_socket *s, const char *event)
{
    const rc_sio_ns_settings *set = &s->ns->set;
    const rc_sio_hooks *hooks = s->ns->srv->hooks;
    uint32_t now = (uint32_t)rc_now_mono_ms();
    if (!set->rate_events && (!set->event_limit_count || !hooks->event_limit)) return 1;
    rc_sio_budget *b = budget_of(c, s->ns);
    if (set->rate_events && !bucket_take(&b->ns, now, set->rate_events, set->rate_interval_ms)) return 0;
    if (!set->event_limit_count || !hooks->event_limit) return 1;
    unsigned events, interval;
    int k = hooks->event_limit(hooks->arg, s, event, &events, &interval);
    if (k < 0 || (unsigned)k >= set->event_limit_count) return 1;
    if (!b->events) b->events = rc_calloc(set->event_limit_count, sizeof(*b->events));
    return bucket_take(&b->events[k], now, events, interval);
}

void rc_sio__rate_dispose(rc_sio_client *c)
{
    if (!c->budgets) return;
    for (size_t i = 0; i < c->srv->ns_count; i++) rc_free(c->budgets[i].events);
    rc_free(c->budgets);
    c->budgets = NULL;
}
