/*
 * common.h: the few helpers every module uses.
 *
 * Allocation: rc_malloc/rc_calloc/rc_realloc/rc_strdup/rc_strndup abort the process on
 * out-of-memory (one place, like Redis's zmalloc), so no caller carries a dead NULL path.
 * rc_free(NULL) is fine.
 *
 * Slices: rc_slice is a (pointer, length) view into memory owned by someone else, never
 * NUL-terminated by contract. Parsers return slices into their input (parse in place).
 */
#ifndef ROOMCAST_COMMON_H
#define ROOMCAST_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RC_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define RC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

typedef struct rc_slice {
    const char *ptr;
    size_t len;
} rc_slice;

static inline int rc_slice_eq(rc_slice a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

void *rc_malloc(size_t n);
void *rc_calloc(size_t count, size_t n);
void *rc_realloc(void *p, size_t n);
char *rc_strdup(const char *s);
char *rc_strndup(const char *s, size_t n);
/* a, b and c (c may be NULL) joined in one new string (Redis key names: prefix, ':kind:', id). */
char *rc_strcat3(const char *a, const char *b, const char *c);
void rc_free(void *p);

/* Monotonic and wall clocks in milliseconds. */
uint64_t rc_now_mono_ms(void);
uint64_t rc_now_wall_ms(void);
/* Monotonic clock in nanoseconds (latency measurement). */
uint64_t rc_now_mono_ns(void);

/* Fills buf with n cryptographically random bytes (OpenSSL RAND_bytes); aborts on failure. */
void rc_random_bytes(void *buf, size_t n);
/* Writes a random base64url id of exactly len characters plus NUL into out (len < 64). */
void rc_random_id(char *out, size_t len);

/* Comma lists (env values such as "a, b,c"): the next item of s, trimmed of spaces and tabs, in
 * *item and *len (len 0 for an empty item). Returns where the rest starts, or NULL when s is at its
 * end: `for (const char *r = s; (r = rc_list_next(r, &item, &len));)`. */
const char *rc_list_next(const char *s, const char **item, size_t *len);

/* Reads a whole file (at most 16 MiB) into a heap buffer, NUL-terminated; NULL with errno set on
 * failure (EFBIG when larger). */
char *rc_read_file(const char *path, size_t *len_out);

#endif
