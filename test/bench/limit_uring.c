/*
 * limit_uring.c: the io_uring writer of test/bench/limit; see limit_uring.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "limit_uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct lu_op {
    void *tag;
    lu_done_fn done;
    int n;
    struct msghdr msg;
    struct iovec iov[LU_IOV];
} lu_op;

static struct io_uring ring;
static lu_op ops[LU_ENTRIES];
static unsigned nq;
static unsigned long long submits;

int lu_init(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
    int r = io_uring_queue_init_params(LU_ENTRIES, &ring, &p);
    if (r == -EINVAL) {
        memset(&p, 0, sizeof p);
        r = io_uring_queue_init_params(LU_ENTRIES, &ring, &p);
    }
    if (r < 0)
        return r;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    r = io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe;
    if (r < 0 || io_uring_peek_cqe(&ring, &cqe) != 0)
        return r < 0 ? r : -EIO;
    io_uring_cqe_seen(&ring, cqe);
    io_uring_register_ring_fd(&ring);
    return 0;
}

void lu_send(int fd, const struct iovec *iov, int n, void *tag, lu_done_fn done)
{
    if (nq == LU_ENTRIES)
        lu_flush();
    lu_op *op = &ops[nq];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe)
        abort();
    memcpy(op->iov, iov, (size_t)n * sizeof *iov);
    op->n = n;
    op->tag = tag;
    op->done = done;
    if (n == 1) {
        io_uring_prep_send(sqe, fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        memset(&op->msg, 0, sizeof op->msg);
        op->msg.msg_iov = op->iov;
        op->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, fd, &op->msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data(sqe, op);
    nq++;
}

void lu_flush(void)
{
    unsigned seen = 0, n = nq;
    while (seen < n) {
        int r = io_uring_submit_and_wait(&ring, 1);
        submits++;
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "limit: io_uring_enter: %s\n", strerror(-r));
            abort();
        }
        struct io_uring_cqe *cqe;
        unsigned head, k = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            lu_op *op = io_uring_cqe_get_data(cqe);
            op->done(op->tag, cqe->res, op->iov, op->n);
            k++;
        }
        io_uring_cq_advance(&ring, k);
        seen += k;
    }
    nq = 0;
}

unsigned long long lu_submits(void) { return submits; }
