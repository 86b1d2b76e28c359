/*
 * bench_util.h: what the load generator and the publisher share.
 *
 *   bu_now_ns        CLOCK_MONOTONIC in nanoseconds. The publisher writes it into every payload
 *                    ("t"), the load generator subtracts it from its own clock on receipt: both run
 *                    on the same machine, so the difference is the delivery latency.
 *   bu_jwt_hs256     mints a compact HS256 JWT (OpenSSL HMAC) for a JSON claims object.
 *   bu_hist_*        an HDR-like log-linear latency histogram: exact below 128, then 64 linear
 *                    sub-buckets per power of two (relative error under 1.6 %). All-zero is an empty
 *                    histogram; histograms are plain data, so processes merge them by sending the
 *                    struct through a pipe and adding the counts.
 *
 * Nothing here allocates except bu_jwt_hs256's caller-provided output.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

uint64_t bu_now_ns(void);

/* Seconds of CPU (user + system) this process has used so far. */
double bu_cpu_self(void);

/* base64url without padding. dst needs 4 * ceil(n / 3) + 1 bytes; returns the length written
 * (dst is NUL-terminated). */
size_t bu_b64url(char *dst, const uint8_t *src, size_t n);

/* Writes "<header>.<claims>.<signature>" into out (NUL-terminated). Returns its length, or -1 if
 * cap is too small. */
int bu_jwt_hs256(char *out, size_t cap, const char *secret, const char *claims_json);

#define BU_HIST_SUB 64
#define BU_HIST_BUCKETS (BU_HIST_SUB * 36) /* values clamp at 2^41 - 1 ns, about 36 minutes */

typedef struct bu_hist {
    uint64_t count;
    uint64_t max;
    uint64_t sum;
    uint64_t n[BU_HIST_BUCKETS];
} bu_hist;

void bu_hist_add(bu_hist *h, uint64_t v);
void bu_hist_merge(bu_hist *dst, const bu_hist *src);
/* The value at percentile pct (0..100): the middle of its bucket, never above the maximum seen.
 * 0 for an empty histogram. */
uint64_t bu_hist_pct(const bu_hist *h, double pct);

#endif
