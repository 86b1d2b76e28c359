/*
 * node_recovery_gap.c: gap marks in a namespace's history, and what a node does when Redis
 * refuses to keep a backend's plain PUBLISH (docs/recovery.md; the rest of recovery is
 * src/node_recovery.c).
 *
 * Gap marks: an emit of a kept room that reaches sockets without an offset (a plain PUBLISH
 * without id, a binary emit, a Socket.IO emitter broadcast) appends {r: room, g: 1} to
 * P:history:<ns> (XADD MAXLEN ~ maxLength), so a socket of that room that recovers across it is
 * refused (src/node_recovery.c reads it). A mark Redis refuses (-OOM, -NOREPLICAS, -READONLY) or
 * does not answer is kept in a pending list and sent again every second until written (later
 * than the event it stands for, which is safe: it can only refuse more recoveries, never fewer);
 * while a namespace has marks pending, recoveries on this node into it are refused
 * (rc_node__gaps_pending). A recovery on another node in that time, or of a node that died with
 * marks pending, finds no mark: docs/recovery.md says what that means. The list is bounded:
 * past PENDING_MAX, a namespace's marks become one mark for the whole namespace (room "").
 *
 * A plain PUBLISH with an id to a kept room is asked of the keep script, not delivered as heard
 * (src/node_recovery.c, keep_heard): the node copies it (the backplane's message is valid only
 * during its callback) and, when the script's answer is an error (nothing kept nor published,
 * so no copy with an offset will ever come), delivers the copy to its own sockets, as a plain
 * PUBLISH without id is delivered (live, no offset), and writes a gap mark for its room. Every
 * node that heard it does the same for its own sockets: together that is live delivery.
 *
 * What it does not do: decide what is kept (node_recovery.c asks the rules) or read the history.
 *
 * Ownership: the node's rc_node_gaps (n->gaps) is this file's, created and freed by
 * node_recovery.c after the backplane (whose free answers every command left, so no callback
 * runs after rc_node__gaps_free); a command's arg and a heard copy belong to their callback.
 *
 * API in call order: rc_node__gaps_new -> rc_node__gap_mark / rc_node__heard_copy ->
 * rc_node__heard_done / rc_node__gaps_pending -> rc_node__gaps_write_metrics -> rc_node__gaps_free.
 */
#include "node_internal.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/redis_cmd.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#define PENDING_MAX 256
#define RETRY_MS 1000

typedef struct pending_gap {
    struct pending_gap *next;
    int ns_index;
    int sending;                    /* a retry is in flight */
    char *room;                     /* NULL: the whole namespace */
} pending_gap;

struct rc_node_gaps {
    pending_gap *pending;
    size_t npending;
    struct event *retry_ev;
    uint64_t written, failures, heard_failed;
};

/* One XADD in flight: a first attempt (p NULL) or a pending mark's retry. */
typedef struct mark_call {
    rc_node *n;
    pending_gap *p;
    int ns_index;
    char *room;
} mark_call;

void rc_node__gaps_new(rc_node *n)
{
    if (!n->gaps) n->gaps = rc_calloc(1, sizeof(*n->gaps));
}

void rc_node__gaps_free(rc_node *n)
{
    rc_node_gaps *g = n->gaps;
    if (!g) return;
    if (g->retry_ev) event_free(g->retry_ev);
    while (g->pending) {
        pending_gap *p = g->pending;
        g->pending = p->next;
        rc_free(p->room);
        rc_free(p);
    }
    rc_free(g);
    n->gaps = NULL;
}

static void send_mark(rc_node *n, int i, const char *room, pending_gap *p);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    rc_node *n = arg;
    for (pending_gap *p = n->gaps->pending; p; p = p->next)
        if (!p->sending) send_mark(n, p->ns_index, p->room, p);
}

static void arm_retry(rc_node *n)
{
    rc_node_gaps *g = n->gaps;
    if (!g->retry_ev) g->retry_ev = evtimer_new(n->base, on_retry, n);
    if (evtimer_pending(g->retry_ev, NULL)) return;
    struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
    evtimer_add(g->retry_ev, &tv);
}

/* Adds (i, room) to the pending marks, unless a mark not yet resent covers it already. */
static void pend(rc_node *n, int i, const char *room)
{
    rc_node_gaps *g = n->gaps;
    if (g->npending >= PENDING_MAX) room = NULL; /* the whole namespace: covers all of its rooms */
    for (pending_gap *p = g->pending; p; p = p->next)
        if (p->ns_index == i && !p->sending && (!p->room || (room && strcmp(p->room, room) == 0))) {
            arm_retry(n);
            return;
        }
    pending_gap *p = rc_calloc(1, sizeof(*p));
    p->ns_index = i;
    p->room = room ? rc_strdup(room) : NULL;
    p->next = g->pending;
    g->pending = p;
    g->npending++;
    arm_retry(n);
}

static void unpend(rc_node_gaps *g, pending_gap *gone)
{
    for (pending_gap **pp = &g->pending; *pp; pp = &(*pp)->next) {
        if (*pp != gone) continue;
        *pp = gone->next;
        g->npending--;
        rc_free(gone->room);
        rc_free(gone);
        return;
    }
}

static void mark_on_reply(void *arg, const redisReply *reply)
{
    mark_call *c = arg;
    rc_node_gaps *g = c->n->gaps;
    if (reply && reply->type != REDIS_REPLY_ERROR) {
        g->written++;
        if (c->p) unpend(g, c->p);
    } else {
        /* Redis refuses writes, or the answer is lost: the history lacks this mark until a retry
         * writes it (docs/recovery.md) */
        g->failures++;
        rc_log_warn("recovery_gap_failed", "room=\"%s\" error=\"%s\" retry_ms=%d", c->room ? c->room : "",
                    reply ? reply->str : "connection lost", RETRY_MS);
        if (c->p) {
            c->p->sending = 0;
            arm_retry(c->n);
        } else {
            pend(c->n, c->ns_index, c->room);
        }
    }
    rc_free(c->room);
    rc_free(c);
}

static void send_mark(rc_node *n, int i, const char *room, pending_gap *p)
{
    unsigned long max_length = 0;
    const char *key = rc_node__recovery_history(n, (size_t)i, &max_length);
    if (!key) return;
    char maxlen[24];
    snprintf(maxlen, sizeof(maxlen), "%lu", max_length);
    mark_call *c = rc_calloc(1, sizeof(*c));
    c->n = n;
    c->p = p;
    c->ns_index = i;
    c->room = room ? rc_strdup(room) : NULL;
    const char *argv[] = {"XADD", key, "MAXLEN", "~", maxlen, "*", "r", room ? room : "", "g", "1"};
    if (rc_redis_command(n->bp, mark_on_reply, c, 10, argv, NULL) == 0) {
        if (p) p->sending = 1;
        return;
    }
    rc_free(c->room); /* Redis is down: pending until it is back */
    rc_free(c);
    if (p) arm_retry(n);
    else pend(n, i, room);
}

void rc_node__gap_mark(rc_node *n, int i, const char *room)
{
    if (n->gaps) send_mark(n, i, room, NULL);
}

int rc_node__gaps_pending(const rc_node *n, int i)
{
    for (const pending_gap *p = n->gaps ? n->gaps->pending : NULL; p; p = p->next)
        if (p->ns_index == i) return 1;
    return 0;
}

/* ---- a plain PUBLISH the keep script could not keep ---------------------------------------- */

typedef struct heard {
    rc_node *n;
    int ns_index;
    rc_bp_message msg;              /* its strings below, owned */
    char *ns, *room, *event, *args, *origin, *id;
    char **except;
} heard;

void *rc_node__heard_copy(rc_node *n, int i, const rc_bp_message *msg)
{
    heard *h = rc_calloc(1, sizeof(*h));
    h->n = n;
    h->ns_index = i;
    h->msg = *msg;
    h->msg.ns = h->ns = rc_strdup(msg->ns);
    h->msg.room = h->room = msg->room ? rc_strdup(msg->room) : NULL;
    h->msg.event = h->event = msg->event ? rc_strdup(msg->event) : NULL;
    h->msg.origin = h->origin = msg->origin ? rc_strdup(msg->origin) : NULL;
    h->msg.id = h->id = msg->id ? rc_strdup(msg->id) : NULL;
    h->args = rc_malloc(msg->args_len + 1);
    if (msg->args_len) memcpy(h->args, msg->args_json, msg->args_len);
    h->args[msg->args_len] = '\0';
    h->msg.args_json = h->args;
    h->msg.attachments = NULL; /* never kept: keep_heard asks only without attachments */
    h->msg.attachment_count = 0;
    h->except = rc_calloc(msg->except_count ? msg->except_count : 1, sizeof(char *));
    for (size_t k = 0; k < msg->except_count; k++) h->except[k] = rc_strdup(msg->except[k] ? msg->except[k] : "");
    h->msg.except = (const char *const *)h->except;
    h->msg.offset = NULL;
    return h;
}

void rc_node__heard_done(void *arg, int failed)
{
    heard *h = arg;
    if (failed) { /* nothing kept nor published: delivered here as heard, as without an id */
        rc_node *n = h->n;
        if (n->gaps) n->gaps->heard_failed++;
        rc_node__gap_mark(n, h->ns_index, h->msg.room);
        rc_sio_broadcast(n->sio, &h->msg, rc_now_mono_ns());
    }
    for (size_t k = 0; k < h->msg.except_count; k++) rc_free(h->except[k]);
    rc_free(h->except);
    rc_free(h->ns);
    rc_free(h->room);
    rc_free(h->event);
    rc_free(h->origin);
    rc_free(h->id);
    rc_free(h->args);
    rc_free(h);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void rc_node__gaps_write_metrics(const rc_node *n, struct evbuffer *out)
{
    const rc_node_gaps *g = n->gaps;
    if (!g) return;
    rc_metrics_put_scalar(out, "roomcast_recovery_gaps_total", "counter",
                          "Gap marks written: emits of a kept room delivered without an offset.", g->written);
    rc_metrics_put_scalar(out, "roomcast_recovery_gap_failures_total", "counter",
                          "Gap mark writes Redis refused or did not answer (each is retried every second).",
                          g->failures);
    rc_metrics_put_scalar(out, "roomcast_recovery_gaps_pending", "gauge",
                          "Gap marks waiting to be written again; recoveries into their namespace on this node "
                          "are refused meanwhile.", (uint64_t)g->npending);
    rc_metrics_put_scalar(out, "roomcast_recovery_kept_heard_failed_total", "counter",
                          "Backends' plain PUBLISHes with an id whose keep script Redis refused: delivered to this "
                          "node's sockets as heard (no offset), with a gap mark.", g->heard_failed);
}
