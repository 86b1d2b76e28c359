/*
 * bench_util.c: clock, CPU time, JWT minting and the latency histogram (see bench_util.h).
 */
#include "bench_util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

uint64_t bu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bu_cpu_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

size_t bu_b64url(char *dst, const uint8_t *src, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        dst[o++] = tab[v >> 18 & 63];
        dst[o++] = tab[v >> 12 & 63];
        dst[o++] = tab[v >> 6 & 63];
        dst[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        dst[o++] = tab[v >> 18 & 63];
        dst[o++] = tab[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        dst[o++] = tab[v >> 18 & 63];
        dst[o++] = tab[v >> 12 & 63];
        dst[o++] = tab[v >> 6 & 63];
    }
    dst[o] = '\0';
    return o;
}

int bu_jwt_hs256(char *out, size_t cap, const char *secret, const char *claims_json)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    size_t clen = strlen(claims_json);
    size_t need = (sizeof header / 3 + 1) * 4 + (clen / 3 + 1) * 4 + 2 + 44 + 1;
    if (need > cap)
        return -1;
    size_t o = bu_b64url(out, (const uint8_t *)header, sizeof header - 1);
    out[o++] = '.';
    o += bu_b64url(out + o, (const uint8_t *)claims_json, clen);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)out, o, mac, &maclen))
        return -1;
    out[o++] = '.';
    o += bu_b64url(out + o, mac, maclen);
    return (int)o;
}

static size_t hist_index(uint64_t v)
{
    if (v < 2 * BU_HIST_SUB)
        return (size_t)v;
    if (v >> 41)
        v = ((uint64_t)1 << 41) - 1;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;   /* v >> shift is in [64, 127] */
    return (size_t)shift * BU_HIST_SUB + (size_t)(v >> shift);
}

static uint64_t hist_mid(size_t idx)
{
    if (idx < 2 * BU_HIST_SUB)
        return idx;
    unsigned shift = (unsigned)(idx / BU_HIST_SUB - 1);
    uint64_t m = idx % BU_HIST_SUB + BU_HIST_SUB;
    return (m << shift) + ((uint64_t)1 << shift) / 2;
}

void bu_hist_add(bu_hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

void bu_hist_merge(bu_hist *dst, const bu_hist *src)
{
    for (size_t i = 0; i < BU_HIST_BUCKETS; i++)
        dst->n[i] += src->n[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bu_hist_pct(const bu_hist *h, double pct)
{
    if (h->count == 0)
        return 0;
    uint64_t target = (uint64_t)(pct / 100.0 * (double)h->count + 0.999999);
    if (target < 1)
        target = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BU_HIST_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= target) {
            uint64_t v = hist_mid(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}
