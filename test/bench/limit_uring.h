/*
 * limit_uring.h: the io_uring writer of test/bench/limit (--uring): sends queued during a pace
 * tick and submitted together, in one io_uring_enter per LU_ENTRIES sends, instead of one writev
 * each. Every send carries MSG_DONTWAIT, so the kernel completes it inside that io_uring_enter
 * (a full socket buffer gives a short count or -EAGAIN, as writev would): lu_flush hands every
 * result back before it returns, and the iovecs' bytes only have to live until then.
 *
 * API in call order: lu_init -> (lu_send ... lu_flush) per tick.
 */
#ifndef LIMIT_URING_H
#define LIMIT_URING_H

#include <stddef.h>
#include <sys/uio.h>

#define LU_ENTRIES 1024
#define LU_IOV 32

/* Sets up the ring and submits a NOP. 0, or -errno (EPERM/ENOSYS: forbidden here). */
int lu_init(void);
/* The result of one send: res bytes taken (>= 0) or -errno; iov/n as given to lu_send. */
typedef void (*lu_done_fn)(void *tag, int res, const struct iovec *iov, int n);
/* Queues a send of iov[0..n) (n <= LU_IOV) on fd; a full queue is flushed first. */
void lu_send(int fd, const struct iovec *iov, int n, void *tag, lu_done_fn done);
/* Submits what is queued and calls every send's done before returning. */
void lu_flush(void);
/* io_uring_enter calls and sends so far. */
unsigned long long lu_submits(void);

#endif
