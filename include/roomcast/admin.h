/*
 * admin.h: the server side of the Socket.IO Admin UI (@socket.io/admin-ui 0.5, what its
 * instrument() does in a Node server), for a whole roomcast cluster; docs/admin-ui.md.
 *
 * The UI connects to one node's admin namespace ("/admin") with {username, password} in its
 * CONNECT payload (checked against a bcrypt hash, never a JWT: the namespace's auth mode is
 * RC_SIO_AUTH_HOOK and rc_admin_admit judges it). It then hears, on that socket:
 *   config {supportedFeatures}, all_sockets [...]        once, at connect (all_sockets and the
 *                                                        events below in "development" mode)
 *   server_stats {serverId, hostname, pid, uptime, clientsCount, pollingClientsCount,
 *                 aggregatedEvents, namespaces}          every 2 s, from every node
 *   socket_connected, socket_updated (an upgrade to websocket), socket_disconnected,
 *   room_joined, room_left, event_received
 *                                                        as they happen, on any node
 * and may send the operations join, leave, _disconnect (refused in read-only mode), which
 * reach the sockets they name on whichever node holds them.
 *
 * Across nodes: every node with the Admin UI on publishes its statistics and its socket and
 * room events on one Redis channel, P:admin (keys.h), and applies the operations it reads
 * there, as Node's instrument() does through its adapter. A node publishes events only while
 * an admin socket is connected somewhere in the cluster (it learns it from the statistics of
 * the node holding it), so a cluster nobody watches sends nothing on P:admin. A new admin
 * socket's all_sockets waits up to 700 ms for the other nodes' answers to the "fetch" its node
 * publishes (answers later than that arrive as socket_connected). Without Redis (the embedded
 * backplane) it shows this node.
 *
 * What it does not do: event_sent, the EMIT operation,
 * session ids valid on other nodes (a node accepts only its own), bytes in/out; handshake
 * headers are not kept.
 *
 * Ownership: the node creates it after sio and eio and frees it before them; it borrows cfg,
 * bp, sio and eio. Hooks are called by the node from its sio hooks.
 *
 * API in call order: rc_admin_new -> rc_admin_admit / rc_admin_on_* (sio hooks),
 * rc_admin_on_raw (backplane) -> rc_admin_write_metrics -> rc_admin_free.
 */
#ifndef ROOMCAST_ADMIN_H
#define ROOMCAST_ADMIN_H

#include <stddef.h>
#include "roomcast/admin_config.h"
#include "roomcast/backplane.h"
#include "roomcast/eio.h"
#include "roomcast/sio.h"

struct cJSON;
struct rc_addr;
struct event_base;
struct evbuffer;
typedef struct rc_admin rc_admin;

/* ns_index: the admin namespace's place in sio's settings. */
rc_admin *rc_admin_new(struct event_base *base, const rc_admin_config *cfg, rc_backplane *bp,
                       rc_sio_server *sio, rc_eio_server *eio, const char *node_id, size_t ns_index);
void rc_admin_free(rc_admin *a);

/* 1 if s is a socket of the admin namespace (the node runs no rules for it). */
int rc_admin_owns(const rc_admin *a, const rc_sio_socket *s);
/* rc_sio_hooks.admit for the admin namespace: NULL admits; else "invalid credentials" (what
 * the UI expects) or "too many attempts" (over the login budget of `from`, the client's address
 * as the Engine.IO session saw it, or the node's; src/admin_login.c). */
const char *rc_admin_admit(rc_admin *a, const struct cJSON *auth, const struct rc_addr *from);
/* Hooks for sockets of every namespace, the admin one included. */
void rc_admin_on_connect(rc_admin *a, rc_sio_socket *s);
void rc_admin_on_event(rc_admin *a, rc_sio_socket *s, const rc_sio_event *ev);
void rc_admin_on_membership(rc_admin *a, rc_sio_socket *s, const char *room, int joined);
void rc_admin_on_upgrade(rc_admin *a, rc_sio_socket *s);
void rc_admin_on_disconnect(rc_admin *a, rc_sio_socket *s);
/* A message on a raw channel: 1 if it was P:admin (handled), 0 otherwise. */
int rc_admin_on_raw(rc_admin *a, const char *channel, const char *payload, size_t len);
/* roomcast_admin_*: logins by result, operations by kind, refusals, admin sockets. */
void rc_admin_write_metrics(const rc_admin *a, struct evbuffer *out);

#endif
