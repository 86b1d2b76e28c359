/*
 * node.h: one roomcast node — the composition root that wires the layers together:
 *   server (TCP) -> http -> ws / eio -> sio -> rules (through rc_rule_ops, src/node_rules.c)
 *   -> backplane (local or Redis), plus /healthz, /readyz, /metrics and POST /api/publish.
 *
 * Everything a client or backend publishes goes through one function (src/node_broadcast.c):
 * delivered to local sockets at once (encoded once), then published on the backplane for the
 * other nodes.
 *
 * Ownership: the node owns every layer object; rc_node_free tears them down in reverse order and
 * leaves no allocation behind (the ASan leak check at exit depends on it).
 */
#ifndef ROOMCAST_NODE_H
#define ROOMCAST_NODE_H

struct event_base;
struct rc_config;
typedef struct rc_node rc_node;

/* NULL with *err set when the listener cannot be opened or the backplane cannot be created. */
rc_node *rc_node_new(struct event_base *base, struct rc_config *cfg, const char **err);
void rc_node_free(rc_node *node);
int rc_node_port(const rc_node *node);
/* 1 when the node stopped its loop because it can never work (rc_backplane_callbacks.on_fatal:
 * a Redis TLS certificate that cannot be verified): the process should exit non-zero. */
int rc_node_failed(const rc_node *node);
/* Graceful drain (docs/operations.md, "Rolling updates and drain"): readiness fails, no new connections, sockets closed in
 * batches over the grace period, then the loop exits. */
void rc_node_drain(rc_node *node);

#endif
