/*
 * server_delay.c: write coalescing of the transport (a namespace's writeDelay, docs/config.md;
 * docs/performance.md "Write coalescing").
 *
 * What it is for: in the paced regime a socket that gets several messages within a few
 * milliseconds pays one system call (writev, or one io_uring send) for each, because the flush
 * runs at the end of every loop turn. A frame that carries a delay (rc_frame.delay_ms, set by
 * the sender: sio's broadcasts for a namespace with writeDelay) lets its connection wait: the
 * connection is not put on the end-of-turn flush list but on the waiting list of that delay
 * value, and flushed when its first held frame has waited the delay. Frames queued meanwhile
 * join the same frame queue, so they leave in one write, in the order they were queued.
 *
 * One timer per delay value (1..RC_WRITE_DELAY_MAX ms), not one per connection: connections
 * join a value's list at its tail, so every list is in deadline order, and its timer is armed
 * for the head alone. When it fires, every connection due (within a quarter of a millisecond)
 * goes onto the flush list of server.c, which writes it like any other: either send path, the
 * output limit judged after that flush, a short write spilled into the bufferevent.
 * The timers are timerfds (CLOCK_MONOTONIC, absolute deadlines) read by the loop, not libevent
 * timers: without EVENT_BASE_FLAG_PRECISE_TIMER libevent reads the coarse clock and waits in
 * whole milliseconds, so a 1 ms delay became 4 to 6 (docs/performance.md "Write coalescing").
 *
 * What ends a wait early (server.c): any output that is not a held frame (a frame without a
 * delay, an HTTP answer, a control frame, rc_conn_output, a close after flush) puts the
 * connection on this turn's flush list, and the flush takes it off its waiting list
 * (rc_server__delay_cancel), writing the held frames first. A frame that would take the frame
 * queue over the connection's output limit flushes at the end of the turn too, so a delay never
 * lets more than the limit pile up unoffered. A frame with a shorter delay moves the connection
 * to the earlier deadline. rc_conn_close drops the queue as without a delay (and leaves the
 * list); rc_conn_close_after_flush writes what is queued first.
 *
 * What it does not do: TLS connections and those whose output already waits in the bufferevent
 * (server.c writes those through the bufferevent, never from the frame queue), polling
 * transports (their frames wait for the next poll anyway).
 *
 * Ownership: the rc_server_delay (lists and timers) belongs to its rc_server, created at the
 * first held frame and freed by rc_server_free (rc_server__delay_free). A connection is on at
 * most one list (dl_ms says which; 0: none) and leaves it before it is freed.
 * API: rc_server__delay_hold, rc_server__delay_cancel (server.c's calls);
 * rc_server_delay_counters (server.h); rc_server__delay_write_metrics, rc_server__delay_free.
 */
#include "roomcast/common.h"
#include "roomcast/metrics.h"
#include "roomcast/server.h"
#include "server_internal.h"

#include <event2/event.h>
#include <stdint.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Connections due within this much of the head are flushed with it (a timer's granularity). */
#define DELAY_SLACK_NS 250000ull

typedef struct delay_list {
    rc_server *server;
    rc_conn *head, *tail;
    int tfd;                 /* timerfd, -1 until the list is first used */
    struct event *ev;        /* read event of tfd */
    uint64_t armed_ns;       /* deadline tfd is set to; 0: disarmed */
} delay_list;

struct rc_server_delay {
    delay_list list[RC_WRITE_DELAY_MAX + 1]; /* by delay in ms; [0] unused */
    uint64_t holds, frames;
};

/* Sets the timer to the head's deadline (the lists are in deadline order), unless it is set to
 * that or to an earlier time already (it then fires early and comes back here). */
static void delay_arm(delay_list *l)
{
    if (!l->head || (l->armed_ns && l->armed_ns <= l->head->dl_due_ns)) return;
    uint64_t due = l->head->dl_due_ns;
    struct itimerspec its = {{0, 0}, {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)}};
    if (timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0) l->armed_ns = due;
}

static void delay_on_timer(evutil_socket_t fd, short what, void *arg)
{
    delay_list *l = arg;
    uint64_t expirations;
    if (read(l->tfd, &expirations, sizeof(expirations)) < 0) { /* EAGAIN: nothing expired */ }
    l->armed_ns = 0;
    uint64_t now = rc_now_mono_ns();
    while (l->head && l->head->dl_due_ns <= now + DELAY_SLACK_NS) {
        rc_conn *c = l->head;
        rc_server__delay_cancel(c);
        rc_server__schedule_flush(c);
    }
    delay_arm(l);
}

static void delay_unlink(delay_list *l, rc_conn *c)
{
    if (c->dl_prev) c->dl_prev->dl_next = c->dl_next;
    else l->head = c->dl_next;
    if (c->dl_next) c->dl_next->dl_prev = c->dl_prev;
    else l->tail = c->dl_prev;
    c->dl_prev = c->dl_next = NULL;
    c->dl_ms = 0;
}

void rc_server__delay_hold(rc_conn *c, unsigned ms)
{
    rc_server *s = c->server;
    if (ms > RC_WRITE_DELAY_MAX) ms = RC_WRITE_DELAY_MAX;
    if (!s->delay) {
        s->delay = rc_calloc(1, sizeof(*s->delay));
        for (unsigned i = 1; i <= RC_WRITE_DELAY_MAX; i++) s->delay->list[i].tfd = -1;
    }
    rc_server_delay *d = s->delay;
    delay_list *l = &d->list[ms];
    if (l->tfd < 0) {
        l->server = s;
        l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (l->tfd >= 0) l->ev = event_new(s->base, l->tfd, EV_READ | EV_PERSIST, delay_on_timer, l);
        if (!l->ev || event_add(l->ev, NULL) != 0) { /* out of descriptors: no delay, as if off */
            if (l->ev) event_free(l->ev);
            if (l->tfd >= 0) close(l->tfd);
            l->ev = NULL;
            l->tfd = -1;
            rc_server__schedule_flush(c);
            return;
        }
    }
    d->frames++;
    uint64_t due = rc_now_mono_ns() + (uint64_t)ms * 1000000ull;
    if (c->dl_ms) {
        if (c->dl_due_ns <= due) return; /* waiting already, no later than this frame asks */
        delay_unlink(&d->list[c->dl_ms], c);
    } else {
        d->holds++;
    }
    c->dl_ms = (uint8_t)ms;
    c->dl_due_ns = due;
    c->dl_prev = l->tail;
    c->dl_next = NULL;
    if (l->tail) l->tail->dl_next = c;
    else l->head = c;
    l->tail = c;
    delay_arm(l);
}

void rc_server__delay_cancel(rc_conn *c)
{
    if (!c->dl_ms) return;
    delay_unlink(&c->server->delay->list[c->dl_ms], c);
}

rc_server_delay_stats rc_server_delay_counters(const rc_server *s)
{
    rc_server_delay_stats st = {0, 0};
    if (s->delay) {
        st.holds = s->delay->holds;
        st.frames = s->delay->frames;
    }
    return st;
}

void rc_server__delay_write_metrics(const rc_server *s, struct evbuffer *out)
{
    rc_server_delay_stats st = rc_server_delay_counters(s);
    rc_metrics_put_scalar(out, "roomcast_write_delay_holds_total", "counter",
                          "Flushes a namespace's writeDelay deferred (each ends in one write of what gathered).",
                          st.holds);
    rc_metrics_put_scalar(out, "roomcast_write_delay_frames_total", "counter",
                          "Frames queued on connections waiting out a writeDelay (frames per write: this / holds).",
                          st.frames);
}

void rc_server__delay_free(rc_server_delay *d)
{
    if (!d) return;
    for (unsigned i = 1; i <= RC_WRITE_DELAY_MAX; i++) {
        if (d->list[i].ev) event_free(d->list[i].ev);
        if (d->list[i].tfd >= 0) close(d->list[i].tfd);
    }
    rc_free(d);
}
