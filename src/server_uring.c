/*
 * server_uring.c: the io_uring send path of the transport (include/roomcast/server.h,
 * rc_server_set_send_path; docs/architecture.md "Send paths").
 *
 * What it is for: at the end of a loop turn server.c writes every connection that got output,
 * each with one writev. In the paced regime (one message at a time) that is one system call per
 * delivery, and on this kind of machine the call's entry and exit are a good part of its cost.
 * Here the turn's sends become one io_uring submission instead: each eligible connection's
 * queued frames go into one IORING_OP_SEND (one frame) or IORING_OP_SENDMSG (several, the same
 * iovecs writev would get), and one io_uring_enter submits the whole turn (in batches of the
 * ring's size).
 *
 * Every send carries MSG_DONTWAIT: the kernel issues it inline during io_uring_enter and never
 * parks it waiting for room in the socket buffer (a full buffer completes with -EAGAIN or a short
 * count, exactly what writev would return). So all completions of a submission are in the
 * completion ring when io_uring_submit_and_wait returns, and they are applied to the frame
 * queues right there, before any other code runs: the queued frames (which hold their
 * references, src/frame.c) outlive their sends, a connection cannot be closed or spilled while
 * its send is in flight, and the byte accounting is the writev path's own
 * (rc_server__fq_advance). The result is left in the connection (uring_state) for server.c's
 * flush, which then treats it like the outcome of a writev: the rest of a short send is spilled
 * into the bufferevent, which writes it when the socket drains; an error closes the connection;
 * the output limit is judged after the flush as before. No completion is ever left for later, so
 * the ring needs no eventfd on the loop.
 *
 * What it does not do: TLS connections (OpenSSL writes them through their bufferevent),
 * connections whose output already sits in the bufferevent (HTTP answers written there, a
 * previous short write) or whose write event is armed: server.c writes those as before. No
 * registered buffers: IORING_OP_SEND copies from user memory like writev, and fixed buffers
 * only serve zero-copy sends, whose second completion per send costs more than copying a
 * 100-byte frame (docs/performance.md).
 *
 * Start-up: rc_server_set_send_path probes (io_uring_queue_init, then a NOP submitted and
 * completed, then the SEND and SENDMSG opcodes): a seccomp filter (containers) makes
 * io_uring_setup fail with EPERM or ENOSYS. "auto" then falls back to writev; "io_uring" refuses
 * to start. The path in use is logged (send_path) and exported (roomcast_send_path).
 *
 * Ownership: the rc_uring belongs to its rc_server (rc_server_free calls rc_server__uring_free).
 * API: rc_server_set_send_path / rc_server_send_path (server.h); rc_server__uring_send,
 * rc_server__uring_write_metrics, rc_server__uring_free (server_internal.h, server.c's calls).
 */
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/server.h"
#include "roomcast/server_config.h"
#include "server_internal.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Sends per submission: a room of 10,000 is written in ten io_uring_enter calls. */
#define URING_ENTRIES 1024
/* iovecs of one send, as many as a writev of the flush takes; a connection with more frames
 * queued gets the rest by writev. The ops array is 1 MiB, touched only as far as a turn uses it. */
#define URING_IOV RC_FQ_IOV_MAX

typedef struct uring_op {
    rc_conn *c;
    size_t total;                /* bytes offered */
    struct msghdr msg;
    struct iovec iov[URING_IOV];
} uring_op;

struct rc_uring {
    struct io_uring ring;
    uring_op *ops;               /* one per submission queue entry */
    uint64_t sends, submits, short_sends;
};

/* ---- start-up ------------------------------------------------------------------------------ */

static char uring_why[160];

static struct rc_uring *uring_open(void)
{
    struct rc_uring *u = rc_calloc(1, sizeof(*u));
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* SUBMIT_ALL: an entry that fails does not stop the rest of the batch; COOP_TASKRUN and
     * SINGLE_ISSUER: no interrupt for task work, one thread submits. Older kernels refuse the
     * flags (EINVAL): try again without. */
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int r = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
    if (r == -EINVAL) {
        memset(&p, 0, sizeof(p));
        r = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
    }
    if (r < 0) {
        snprintf(uring_why, sizeof(uring_why), "io_uring_setup: %s%s", strerror(-r),
                 r == -EPERM || r == -ENOSYS ? " (forbidden here: a seccomp filter or a sysctl)" : "");
        rc_free(u);
        return NULL;
    }
    const char *why = NULL;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    if (!probe || !io_uring_opcode_supported(probe, IORING_OP_SEND) ||
        !io_uring_opcode_supported(probe, IORING_OP_SENDMSG))
        why = "the kernel lacks IORING_OP_SEND or IORING_OP_SENDMSG";
    if (probe) io_uring_free_probe(probe);
    struct io_uring_sqe *sqe = why ? NULL : io_uring_get_sqe(&u->ring);
    if (sqe) {
        io_uring_prep_nop(sqe);
        struct io_uring_cqe *cqe = NULL;
        r = io_uring_submit_and_wait(&u->ring, 1);
        if (r < 0) {
            snprintf(uring_why, sizeof(uring_why), "io_uring_enter: %s", strerror(-r));
            why = uring_why;
        } else if (io_uring_peek_cqe(&u->ring, &cqe) != 0 || cqe->res != 0) {
            why = "a NOP did not complete";
        }
        if (cqe) io_uring_cqe_seen(&u->ring, cqe);
    } else if (!why) {
        why = "no submission queue entry";
    }
    if (why) {
        if (why != uring_why) snprintf(uring_why, sizeof(uring_why), "%s", why);
        io_uring_queue_exit(&u->ring);
        rc_free(u);
        return NULL;
    }
    io_uring_register_ring_fd(&u->ring); /* spares the fd lookup per enter; optional */
    u->ops = rc_calloc(URING_ENTRIES, sizeof(*u->ops));
    return u;
}

int rc_server_set_send_path(rc_server *s, int path, const char **err)
{
    if (s->uring) {
        rc_server__uring_free(s->uring);
        s->uring = NULL;
    }
    if (path != RC_SEND_PATH_WRITEV) s->uring = uring_open();
    if (!s->uring && path == RC_SEND_PATH_IO_URING) {
        static char msg[240];
        snprintf(msg, sizeof(msg), "transport.sendPath is io_uring but io_uring is unavailable: %s", uring_why);
        *err = msg;
        return -1;
    }
    if (s->uring)
        rc_log_info("send_path", "path=io_uring setting=%s", rc_server_send_path_name(path));
    else if (path == RC_SEND_PATH_WRITEV)
        rc_log_info("send_path", "path=writev setting=writev");
    else
        rc_log_warn("send_path", "path=writev setting=auto reason=\"%s\"", uring_why);
    return 0;
}

const char *rc_server_send_path(const rc_server *s) { return s->uring ? "io_uring" : "writev"; }

void rc_server__uring_free(struct rc_uring *u)
{
    if (!u) return;
    io_uring_queue_exit(&u->ring);
    rc_free(u->ops);
    rc_free(u);
}

/* ---- the turn's sends ---------------------------------------------------------------------- */

/* Applies one completion to its connection's queue (see the top). */
static void uring_complete(struct rc_uring *u, const struct io_uring_cqe *cqe)
{
    uring_op *op = io_uring_cqe_get_data(cqe);
    rc_conn *c = op->c;
    op->c = NULL;
    u->sends++;
    if (cqe->res >= 0) {
        c->uring_state = (int8_t)rc_server__fq_advance(c, (size_t)cqe->res, op->total);
    } else if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
        c->uring_state = 1; /* nothing taken: the kernel buffer is full */
    } else {
        c->uring_state = -1;
        c->uring_errno = -cqe->res;
    }
    if (c->uring_state == 1) u->short_sends++;
}

/* Submits the n prepared sends and applies their n completions. */
static void uring_run(struct rc_uring *u, unsigned n)
{
    unsigned seen = 0;
    int tries = 0;
    while (seen < n) {
        int r = io_uring_submit_and_wait(&u->ring, 1);
        u->submits++;
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            /* Submitted entries point into u->ops and at live connections: nothing can be
             * taken back safely. A kernel that refuses a valid submission is not one to run
             * on. */
            rc_log_error("send_path_failed", "io_uring_enter=%s", strerror(-r));
            abort();
        }
        if (r < 0 && ++tries > 1000) {
            rc_log_error("send_path_failed", "io_uring_enter=%s retries=%d", strerror(-r), tries);
            abort();
        }
        struct io_uring_cqe *cqe;
        unsigned head, k = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe) {
            uring_complete(u, cqe);
            k++;
        }
        io_uring_cq_advance(&u->ring, k);
        seen += k;
    }
}

void rc_server__uring_send(struct rc_uring *u, rc_conn *list)
{
    unsigned n = 0;
    for (rc_conn *c = list; c; c = c->next_pending) {
        c->uring_state = 0;
        /* what server_flush_conn would writev: plain, not armed, frames queued, nothing in the
         * bufferevent before them */
        if (c->closed || c->tls || c->write_armed || !c->fq_len) continue;
        if (c->out_used && evbuffer_get_length(bufferevent_get_output(c->bev)) != 0) continue;
        if (n == URING_ENTRIES) {
            uring_run(u, n);
            n = 0;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
        if (!sqe) continue; /* cannot happen (one entry per op); writev takes it */
        uring_op *op = &u->ops[n];
        int k = rc_server__fq_iov(c, op->iov, URING_IOV, &op->total);
        int fd = c->fd;
        if (k == 1) {
            io_uring_prep_send(sqe, fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        } else {
            memset(&op->msg, 0, sizeof(op->msg));
            op->msg.msg_iov = op->iov;
            op->msg.msg_iovlen = (size_t)k;
            io_uring_prep_sendmsg(sqe, fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        op->c = c;
        io_uring_sqe_set_data(sqe, op);
        n++;
    }
    if (n) uring_run(u, n);
}

/* ---- metrics --------------------------------------------------------------------------------- */

void rc_server__uring_write_metrics(const rc_server *s, struct evbuffer *out)
{
    static const char *const names[] = {"path"};
    const char *uring[] = {"io_uring"}, *writev[] = {"writev"};
    const struct rc_uring *u = s->uring;
    rc_metrics_put_labelled(out, "roomcast_send_path", "gauge",
                            "The send path of plain sockets (1: in use): io_uring or writev.", names,
                            u ? uring : writev, 1, 1);
    rc_metrics_put_scalar(out, "roomcast_uring_sends_total", "counter",
                          "Sends completed through io_uring (one per socket per loop turn with output).",
                          u ? u->sends : 0);
    rc_metrics_put_scalar(out, "roomcast_uring_submits_total", "counter",
                          "io_uring_enter calls that submitted a turn's sends.", u ? u->submits : 0);
    rc_metrics_put_scalar(out, "roomcast_uring_short_sends_total", "counter",
                          "io_uring sends the kernel took only in part (or not at all): the socket's buffer was full.",
                          u ? u->short_sends : 0);
}

rc_server_uring_stats rc_server_uring_counters(const rc_server *s)
{
    rc_server_uring_stats st = {0, 0, 0};
    if (s->uring) {
        st.sends = s->uring->sends;
        st.submits = s->uring->submits;
        st.short_sends = s->uring->short_sends;
    }
    return st;
}
