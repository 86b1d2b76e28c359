/*
 * hmap.c: intrusive string-keyed hash map. See include/roomcast/hmap.h.
 *
 * What it is: separate chaining over a power-of-two bucket array. The caller embeds an
 * rc_hmap_node in its own struct; the node stores the key pointer, its length and the full 32-bit
 * hash, so a lookup compares hashes before bytes and a resize never rehashes a key.
 *
 * Sizing: the table starts at 8 buckets on the first insert and doubles when an insert would take
 * the load above 1 (count <= nbuckets always holds). It halves when a removal leaves the load
 * under 1/4 (never below 8 buckets), so the 4x gap between the two thresholds keeps a map whose
 * size oscillates around one boundary from reallocating on every call. Resizing is the only
 * allocation; rc_hmap_dispose frees the array and returns the map to all-zero.
 *
 * Draining: owners close everything with "while ((n = rc_hmap_first(m))) remove(n)". A plain
 * rescan from bucket 0 makes that quadratic (200k entries: 26 s under ASan), so the bucket array
 * carries a hidden header with a scan hint, the lowest index that may be non-empty: an insert
 * lowers it, rc_hmap_first raises it to the bucket it found, a resize resets it. map->buckets
 * points just past that header, so the public struct and the bucket layout are unchanged.
 *
 * What it does not do: no duplicate check on insert (find first), no ownership of nodes or keys,
 * no seeding. rc_hash_bytes is deterministic and host-endian: fine for an in-process index,
 * not for anything stored or sent, and not hardened against chosen-key flooding.
 *
 * API in call order: rc_hmap_find -> rc_hmap_insert -> rc_hmap_remove; rc_hmap_first/next to
 * walk (no removal during a walk: a removal may shrink and rehash); rc_hmap_dispose at the end.
 */
#include "roomcast/hmap.h"

#include "roomcast/common.h"

#include <assert.h>

#define HMAP_MIN_BUCKETS 8u

typedef struct hmap_table {
    size_t first_hint;          /* no bucket below this index holds a node */
    rc_hmap_node *slots[];
} hmap_table;

static hmap_table *table_of(const rc_hmap *map)
{
    return RC_CONTAINER_OF(map->buckets, hmap_table, slots);
}

/* Word-at-a-time hash: each 8-byte word is xored into a 64-bit state, a multiply by an odd
 * constant carries low bits upward and an xor-shift folds the high bits back down. The tail is
 * zero-padded and the length is mixed into the seed, so "a" and "a\0" differ. A final avalanche
 * makes the low bits (the bucket index) depend on every input bit. */
static inline uint64_t hash_round(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9fb21c651e98df25ull;
    return h ^ (h >> 29);
}

uint32_t rc_hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)len * 0xc2b2ae3d27d4eb4full);
    uint64_t w;

    while (len >= 8) {
        memcpy(&w, p, 8);
        h = hash_round(h, w);
        p += 8;
        len -= 8;
    }
    if (len) {
        w = 0;
        memcpy(&w, p, len);
        h = hash_round(h, w);
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static void hmap_resize(rc_hmap *map, size_t nbuckets)
{
    hmap_table *t = rc_calloc(1, sizeof(*t) + nbuckets * sizeof(t->slots[0]));
    rc_hmap_node **nb = t->slots;
    size_t mask = nbuckets - 1;

    for (size_t i = 0; i < map->nbuckets; i++) {
        rc_hmap_node *n = map->buckets[i];
        while (n) {
            rc_hmap_node *next = n->next;
            rc_hmap_node **slot = &nb[n->hash & mask];
            n->next = *slot;
            *slot = n;
            n = next;
        }
    }
    if (map->buckets)
        rc_free(table_of(map));
    t->first_hint = 0;
    map->buckets = nb;
    map->nbuckets = nbuckets;
}

void rc_hmap_insert(rc_hmap *map, rc_hmap_node *node, const char *key, size_t keylen)
{
    assert(keylen <= UINT32_MAX);
    if (map->count >= map->nbuckets)
        hmap_resize(map, map->nbuckets ? map->nbuckets * 2 : HMAP_MIN_BUCKETS);

    node->key = key;
    node->keylen = (uint32_t)keylen;
    node->hash = rc_hash_bytes(key, keylen);

    size_t i = node->hash & (map->nbuckets - 1);
    hmap_table *t = table_of(map);
    node->next = t->slots[i];
    t->slots[i] = node;
    if (i < t->first_hint)
        t->first_hint = i;
    map->count++;
}

rc_hmap_node *rc_hmap_find(const rc_hmap *map, const char *key, size_t keylen)
{
    if (map->count == 0)
        return NULL;
    uint32_t hash = rc_hash_bytes(key, keylen);
    for (rc_hmap_node *n = map->buckets[hash & (map->nbuckets - 1)]; n; n = n->next) {
        if (n->hash == hash && n->keylen == keylen && memcmp(n->key, key, keylen) == 0)
            return n;
    }
    return NULL;
}

void rc_hmap_remove(rc_hmap *map, rc_hmap_node *node)
{
    rc_hmap_node **pp = &map->buckets[node->hash & (map->nbuckets - 1)];

    while (*pp != node) {
        assert(*pp != NULL && "rc_hmap_remove: node is not in this map");
        pp = &(*pp)->next;
    }
    *pp = node->next;
    node->next = NULL;
    map->count--;

    if (map->nbuckets > HMAP_MIN_BUCKETS && map->count < map->nbuckets / 4)
        hmap_resize(map, map->nbuckets / 2);
}

void rc_hmap_dispose(rc_hmap *map)
{
    if (map->buckets)
        rc_free(table_of(map));
    map->buckets = NULL;
    map->nbuckets = 0;
    map->count = 0;
}

static rc_hmap_node *hmap_scan(const rc_hmap *map, size_t from)
{
    for (size_t i = from; i < map->nbuckets; i++) {
        if (map->buckets[i])
            return map->buckets[i];
    }
    return NULL;
}

/* The hint lives in the heap block, not in *map, so updating it through a const map is fine. */
rc_hmap_node *rc_hmap_first(const rc_hmap *map)
{
    if (map->count == 0)
        return NULL;
    hmap_table *t = table_of(map);
    while (!t->slots[t->first_hint])
        t->first_hint++;
    return t->slots[t->first_hint];
}

rc_hmap_node *rc_hmap_next(const rc_hmap *map, const rc_hmap_node *node)
{
    if (node->next)
        return node->next;
    return hmap_scan(map, (node->hash & (map->nbuckets - 1)) + 1);
}

void rc_hmap_free_all(rc_hmap *map)
{
    rc_hmap_node *n = rc_hmap_first(map);
    while (n) {
        rc_hmap_node *next = rc_hmap_next(map, n);
        rc_free(n);
        n = next;
    }
    rc_hmap_dispose(map);
}
