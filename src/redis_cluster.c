/*
 * redis_cluster.c: slots, CLUSTER SHARDS / CLUSTER SLOTS replies, MOVED / ASK (contract:
 * src/redis_cluster.h). Pure functions over hiredis replies; no I/O.
 *
 * The slot function is CRC16 with polynomial 0x1021, initial value 0, no reflection (the XMODEM
 * variant Redis Cluster specifies), over the key or its hash tag, modulo 16384. The table is
 * computed once from the polynomial.
 */
#include "redis_cluster.h"

#include "roomcast/common.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

/* ---- slots --------------------------------------------------------------------------------- */

static uint16_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++) c = (uint16_t)((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
        crc_table[i] = c;
    }
    crc_ready = 1;
}

static uint16_t crc16(const unsigned char *p, size_t n)
{
    if (!crc_ready) crc_init(); /* the loop is single-threaded; a race would write equal values */
    uint16_t c = 0;
    for (size_t i = 0; i < n; i++) c = (uint16_t)((c << 8) ^ crc_table[((c >> 8) ^ p[i]) & 0xff]);
    return c;
}

uint16_t redis_cluster_slot(const char *key, size_t len)
{
    const unsigned char *k = (const unsigned char *)key;
    const unsigned char *open = memchr(k, '{', len);
    if (open) {
        size_t from = (size_t)(open - k) + 1;
        const unsigned char *close = memchr(k + from, '}', len - from);
        if (close && close > k + from) return crc16(k + from, (size_t)(close - (k + from))) & 16383;
    }
    return crc16(k, len) & 16383;
}

/* ---- maps ---------------------------------------------------------------------------------- */

static void map_clear(redis_cluster_map *m)
{
    for (size_t i = 0; i < m->nmasters; i++) rc_free(m->masters[i].host);
    rc_free(m->masters);
    m->masters = NULL;
    m->nmasters = 0;
    for (size_t s = 0; s < REDIS_CLUSTER_SLOTS; s++) m->owner[s] = -1;
    m->unowned = REDIS_CLUSTER_SLOTS;
}

void redis_cluster_map_dispose(redis_cluster_map *m)
{
    map_clear(m);
}

int redis_cluster_find(const redis_cluster_map *m, const char *host, int port)
{
    for (size_t i = 0; i < m->nmasters; i++)
        if (m->masters[i].port == port && strcmp(m->masters[i].host, host) == 0) return (int)i;
    return -1;
}

/* The index of host:port, added if new; -1 beyond 16384 masters (a broken reply). */
static int map_master(redis_cluster_map *m, const char *host, size_t hostlen, int port)
{
    char *h = rc_strndup(host, hostlen);
    int i = redis_cluster_find(m, h, port);
    if (i >= 0 || m->nmasters >= REDIS_CLUSTER_SLOTS) {
        rc_free(h);
        return i;
    }
    m->masters = rc_realloc(m->masters, (m->nmasters + 1) * sizeof(*m->masters));
    m->masters[m->nmasters].host = h;
    m->masters[m->nmasters].port = port;
    return (int)m->nmasters++;
}

static int map_assign(redis_cluster_map *m, long long from, long long to, int master)
{
    if (from < 0 || to < from || to >= REDIS_CLUSTER_SLOTS || master < 0) return -1;
    for (long long s = from; s <= to; s++) {
        if (m->owner[s] < 0) m->unowned--;
        m->owner[s] = (int16_t)master;
    }
    return 0;
}

/* An address that says "the node you asked". */
static int addr_unknown(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '?');
}

static int is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* The value after key in a flat key/value array (RESP2 writes maps that way), or NULL. */
static const redisReply *field(const redisReply *arr, const char *key)
{
    if (!arr || arr->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < arr->elements; i += 2)
        if (is_str(arr->element[i]) && strcmp(arr->element[i]->str, key) == 0)
            return arr->element[i + 1];
    return NULL;
}

static long long int_of(const redisReply *r, int *ok)
{
    if (r && r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (is_str(r)) {
        char *end;
        long long v = strtoll(r->str, &end, 10);
        if (end != r->str && *end == '\0') return v;
    }
    *ok = 0;
    return -1;
}

int redis_cluster_map_from_shards(redis_cluster_map *m, const redisReply *r,
                                  const char *asked_host, int tls, const char **err)
{
    map_clear(m);
    *err = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        *err = "CLUSTER SHARDS: not an array";
        goto fail;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *slots = field(r->element[i], "slots");
        const redisReply *nodes = field(r->element[i], "nodes");
        if (!slots || slots->type != REDIS_REPLY_ARRAY || !nodes || nodes->type != REDIS_REPLY_ARRAY ||
            slots->elements % 2) {
            *err = "CLUSTER SHARDS: a shard without slots or nodes";
            goto fail;
        }
        if (slots->elements == 0) continue; /* a shard serving nothing (being emptied, or new) */
        int master = -1;
        for (size_t n = 0; n < nodes->elements && master < 0; n++) {
            const redisReply *nd = nodes->element[n];
            const redisReply *role = field(nd, "role");
            if (!is_str(role) || strcmp(role->str, "master") != 0) continue;
            const redisReply *ep = field(nd, "endpoint"), *ip = field(nd, "ip");
            const redisReply *port = field(nd, tls ? "tls-port" : "port");
            const char *host = asked_host;
            size_t hostlen = strlen(asked_host);
            if (is_str(ip) && !addr_unknown(ip->str, ip->len)) {
                host = ip->str;
                hostlen = ip->len;
            } else if (is_str(ep) && !addr_unknown(ep->str, ep->len)) {
                host = ep->str;
                hostlen = ep->len;
            }
            int ok = 1;
            long long p = int_of(port, &ok);
            if (!ok || p <= 0 || p > 65535) {
                *err = tls ? "CLUSTER SHARDS: a master without tls-port" : "CLUSTER SHARDS: bad port";
                goto fail;
            }
            master = map_master(m, host, hostlen, (int)p);
        }
        if (master < 0) {
            *err = "CLUSTER SHARDS: a shard with slots and no master";
            goto fail;
        }
        for (size_t s = 0; s < slots->elements; s += 2) {
            int ok = 1;
            long long a = int_of(slots->element[s], &ok), b = int_of(slots->element[s + 1], &ok);
            if (!ok || map_assign(m, a, b, master) != 0) {
                *err = "CLUSTER SHARDS: bad slot range";
                goto fail;
            }
        }
    }
    return 0;
fail:
    map_clear(m);
    return -1;
}

int redis_cluster_map_from_slots(redis_cluster_map *m, const redisReply *r, const char *asked_host,
                                 const char **err)
{
    map_clear(m);
    *err = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        *err = "CLUSTER SLOTS: not an array";
        goto fail;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (!e || e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2) {
            *err = "CLUSTER SLOTS: bad range entry";
            goto fail;
        }
        const redisReply *nd = e->element[2];
        int ok = 1;
        long long a = int_of(e->element[0], &ok), b = int_of(e->element[1], &ok);
        long long p = int_of(nd->element[1], &ok);
        if (!ok || !is_str(nd->element[0]) || p <= 0 || p > 65535) {
            *err = "CLUSTER SLOTS: bad range entry";
            goto fail;
        }
        const redisReply *ip = nd->element[0];
        int master = addr_unknown(ip->str, ip->len)
                         ? map_master(m, asked_host, strlen(asked_host), (int)p)
                         : map_master(m, ip->str, ip->len, (int)p);
        if (map_assign(m, a, b, master) != 0) {
            *err = "CLUSTER SLOTS: bad slot range";
            goto fail;
        }
    }
    return 0;
fail:
    map_clear(m);
    return -1;
}

int redis_cluster_owner(const redis_cluster_map *m, uint16_t slot)
{
    return slot < REDIS_CLUSTER_SLOTS && m->masters ? m->owner[slot] : -1;
}

int redis_cluster_same_masters(const redis_cluster_map *a, const redis_cluster_map *b)
{
    if (a->nmasters != b->nmasters) return 0;
    for (size_t i = 0; i < a->nmasters; i++)
        if (a->masters[i].port != b->masters[i].port || strcmp(a->masters[i].host, b->masters[i].host))
            return 0;
    return 1;
}

/* ---- redirects ----------------------------------------------------------------------------- */

int redis_cluster_redirect(const char *err, size_t len, uint16_t *slot, char *host, size_t hostcap,
                           int *port)
{
    int kind;
    size_t i;
    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        kind = 1;
        i = 6;
    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        kind = 2;
        i = 4;
    } else {
        return 0;
    }
    long s = 0;
    size_t digits = 0;
    while (i < len && err[i] >= '0' && err[i] <= '9' && digits < 6) {
        s = s * 10 + (err[i++] - '0');
        digits++;
    }
    if (!digits || s >= REDIS_CLUSTER_SLOTS || i >= len || err[i] != ' ') return 0;
    i++;
    size_t start = i, colon = 0;
    for (size_t j = i; j < len; j++) {
        if (err[j] == ':') colon = j;
        if (err[j] == ' ' || err[j] == '\r' || err[j] == '\n') return 0;
    }
    if (!colon || colon + 1 >= len || colon - start >= hostcap) return 0; /* host may be empty */
    long p = 0;
    for (size_t j = colon + 1; j < len; j++) {
        if (err[j] < '0' || err[j] > '9' || p > 65535) return 0;
        p = p * 10 + (err[j] - '0');
    }
    if (p <= 0 || p > 65535) return 0;
    memcpy(host, err + start, colon - start);
    host[colon - start] = '\0';
    *slot = (uint16_t)s;
    *port = (int)p;
    return kind;
}
