/*
 * hmap.h: an intrusive string-keyed hash map (chained, power-of-two buckets, grows at load 1).
 *
 * The node (rc_hmap_node) is embedded in the value's struct; the key bytes belong to the value
 * and must stay valid and unchanged while the node is in the map. The map allocates only its
 * bucket array. All-zero rc_hmap is a valid empty map.
 */
#ifndef ROOMCAST_HMAP_H
#define ROOMCAST_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_hmap_node {
    struct rc_hmap_node *next;
    const char *key;
    uint32_t keylen;
    uint32_t hash;
} rc_hmap_node;

typedef struct rc_hmap {
    rc_hmap_node **buckets;
    size_t nbuckets;   /* 0 or a power of two */
    size_t count;
} rc_hmap;

uint32_t rc_hash_bytes(const void *key, size_t len);
/* Inserts node under key (no duplicate check: find first). */
void rc_hmap_insert(rc_hmap *map, rc_hmap_node *node, const char *key, size_t keylen);
rc_hmap_node *rc_hmap_find(const rc_hmap *map, const char *key, size_t keylen);
void rc_hmap_remove(rc_hmap *map, rc_hmap_node *node);
/* Frees the bucket array; the nodes are the caller's. */
void rc_hmap_dispose(rc_hmap *map);
/* For a map whose entries are rc_malloc'd structs that start with their node, owned by the map:
 * frees every entry, then the bucket array. */
void rc_hmap_free_all(rc_hmap *map);

/* Iteration: for (it = rc_hmap_first(m); it; it = rc_hmap_next(m, it)). Removing the current
 * node is not allowed during the walk; collect first. */
rc_hmap_node *rc_hmap_first(const rc_hmap *map);
rc_hmap_node *rc_hmap_next(const rc_hmap *map, const rc_hmap_node *node);

#endif
