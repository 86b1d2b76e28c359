/*
 * redis_cluster.h: Redis Cluster topology for the backplane. Private (src/): implemented in
 * redis_cluster.c; used by the Redis backplane's cluster mode (backplane_redis_shard.c) and
 * tested against real cluster-enabled redis-servers by test/unit/test_redis_cluster.c.
 *
 * What it is for: which master owns a key's or a sharded channel's slot. It computes slots
 * (CRC16 of the key, or of its hash tag, modulo 16384, as Redis does), turns a CLUSTER SHARDS
 * (Redis 7) or CLUSTER SLOTS reply into a slot -> master map, and reads MOVED / ASK error
 * replies.
 *
 * What it does not do: no I/O. Asking Redis (which node, when to refresh) and connecting to the
 * masters is the backplane's; this module only reads replies it is handed.
 *
 * Ownership: a redis_cluster_map owns its masters' strings; redis_cluster_map_dispose frees
 * them. All-zero is a valid empty map (every slot unowned).
 *
 * API in call order: redis_cluster_map_from_reply (or _from_shards / _from_slots) ->
 * redis_cluster_owner ... -> redis_cluster_map_dispose; redis_cluster_slot and
 * redis_cluster_redirect any time.
 */
#ifndef ROOMCAST_REDIS_CLUSTER_H
#define ROOMCAST_REDIS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct redisReply;

enum { REDIS_CLUSTER_SLOTS = 16384 };

/* One master: where to connect. host is an IP address (a name only when the cluster gives no
 * IP: CLUSTER SHARDS' endpoint). */
typedef struct redis_cluster_master {
    char *host;
    int port;
} redis_cluster_master;

typedef struct redis_cluster_map {
    redis_cluster_master *masters;   /* in the order first met in the reply */
    size_t nmasters;
    int16_t owner[REDIS_CLUSTER_SLOTS]; /* index into masters, or -1: nobody serves it */
    size_t unowned;                  /* slots with owner -1 */
} redis_cluster_map;

/* The slot of key[0..len): CRC16 (XMODEM) of the whole key, or, when it has a hash tag (a '{'
 * followed later by a '}' with at least one byte between the first '{' and the first '}' after
 * it), of the bytes between them. Exactly Redis's keyHashSlot. */
uint16_t redis_cluster_slot(const char *key, size_t len);

/* Fills *m (all-zero or disposed before) from a CLUSTER SHARDS reply: for each shard its master
 * (role "master"; its "ip", else its "endpoint"; "tls-port" when tls, else "port"). Or from a
 * CLUSTER SLOTS reply: the first node of each range. An empty or "?" address means "the node you
 * asked": asked_host is used. 0, or -1 with *err set to a static reason (and *m left empty). */
int redis_cluster_map_from_shards(redis_cluster_map *m, const struct redisReply *r,
                                  const char *asked_host, int tls, const char **err);
int redis_cluster_map_from_slots(redis_cluster_map *m, const struct redisReply *r,
                                 const char *asked_host, const char **err);
void redis_cluster_map_dispose(redis_cluster_map *m);

/* Index of the master owning slot, or -1. */
int redis_cluster_owner(const redis_cluster_map *m, uint16_t slot);
/* Index of the master at host:port, or -1. */
int redis_cluster_find(const redis_cluster_map *m, const char *host, int port);
/* 1 when a and b name the same masters in the same order (only slots moved between them). */
int redis_cluster_same_masters(const redis_cluster_map *a, const redis_cluster_map *b);

/* Reads an error reply "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (len bytes).
 * 1 for MOVED, 2 for ASK, with *slot, host (NUL-terminated, at most hostcap - 1 bytes; the
 * last ':' separates the port, so an IPv6 address works; empty when Redis does not know the
 * endpoint: the node that answered) and *port; 0 for any other text. */
int redis_cluster_redirect(const char *err, size_t len, uint16_t *slot, char *host,
                           size_t hostcap, int *port);

#endif
