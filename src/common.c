/*
 * common.c: allocation wrappers that abort on out-of-memory, clocks, randomness.
 * See include/roomcast/common.h.
 */
#include "roomcast/common.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void rc_oom(size_t n)
{
    fprintf(stderr, "roomcast: out of memory allocating %zu bytes\n", n);
    abort();
}

void *rc_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) rc_oom(n);
    return p;
}

void *rc_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p) rc_oom(count * n);
    return p;
}

void *rc_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) rc_oom(n);
    return q;
}

char *rc_strdup(const char *s)
{
    return rc_strndup(s, strlen(s));
}

char *rc_strndup(const char *s, size_t n)
{
    char *d = rc_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *rc_strcat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = rc_malloc(la + lb + lc + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

void rc_free(void *p)
{
    free(p);
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t rc_now_mono_ms(void) { return clock_ns(CLOCK_MONOTONIC) / 1000000ull; }
uint64_t rc_now_wall_ms(void) { return clock_ns(CLOCK_REALTIME) / 1000000ull; }
uint64_t rc_now_mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

static void random_fill(void *buf, size_t n)
{
    if (RAND_bytes(buf, (int)n) != 1) {
        fprintf(stderr, "roomcast: RAND_bytes failed\n");
        abort();
    }
}

/* Every RAND_bytes call makes a getpid() system call (OpenSSL's fork check), and a handshake
 * draws two ids: small requests are served from a pool refilled 4 KiB at a time, and each byte
 * handed out is wiped from the pool. roomcast is single-threaded and never forks. */
void rc_random_bytes(void *buf, size_t n)
{
    static unsigned char pool[4096];
    static size_t pool_left;
    if (n > sizeof(pool) / 8) {
        random_fill(buf, n);
        return;
    }
    if (pool_left < n) {
        random_fill(pool, sizeof(pool));
        pool_left = sizeof(pool);
    }
    unsigned char *from = pool + sizeof(pool) - pool_left;
    memcpy(buf, from, n);
    memset(from, 0, n);
    pool_left -= n;
}

void rc_random_id(char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[64];
    if (len >= sizeof(raw)) len = sizeof(raw) - 1;
    rc_random_bytes(raw, len);
    for (size_t i = 0; i < len; i++) out[i] = alphabet[raw[i] & 63];
    out[len] = '\0';
}

#define RC_READ_FILE_MAX (16u << 20) /* config files, PEM keys, a bundle: far below */

char *rc_read_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = rc_malloc(cap);
    for (;;) {
        if (len + 1 == cap) {
            if (cap >= RC_READ_FILE_MAX) {
                errno = EFBIG;
                goto err;
            }
            cap *= 2;
            buf = rc_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            goto err;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
err:;
    int saved = errno;
    close(fd);
    rc_free(buf);
    errno = saved;
    return NULL;
}

const char *rc_list_next(const char *s, const char **item, size_t *len)
{
    if (!*s) return NULL;
    const char *comma = strchr(s, ',');
    const char *e = comma ? comma : s + strlen(s);
    const char *b = s;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    const char *t = e;
    while (t > b && (t[-1] == ' ' || t[-1] == '\t')) t--;
    *item = b;
    *len = (size_t)(t - b);
    return comma ? comma + 1 : e;
}
