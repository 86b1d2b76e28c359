/*
 * sio_admin.h: what the Socket.IO server lets the Admin UI module (src/admin.c) see of it: every
 * socket, a socket's rooms, Engine.IO session and why it is leaving, and per-namespace counts.
 * Read-only views; acting on sockets goes through sio.h (rc_sio_join, rc_sio_leave,
 * rc_sio_disconnect) like any other caller. Implemented in src/sio_admin.c.
 *
 * What it does not do: serialize anything (the admin module writes its JSON) or keep state.
 *
 * Ownership: strings returned live as long as the socket; a visit must not remove sockets (it
 * collects what to act on and acts after the visit).
 */
#ifndef ROOMCAST_SIO_ADMIN_H
#define ROOMCAST_SIO_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include "roomcast/sio.h"

size_t rc_sio_ns_count(const rc_sio_server *srv);
const char *rc_sio_ns_name(const rc_sio_server *srv, size_t ns_index);
/* Live sockets of a namespace; client events received and packets sent in it since start. */
uint64_t rc_sio_ns_sockets(const rc_sio_server *srv, size_t ns_index);
void rc_sio_ns_messages(const rc_sio_server *srv, size_t ns_index, uint64_t *in, uint64_t *out);
/* Visits every live socket of namespace ns_index. */
void rc_sio_foreach_socket(rc_sio_server *srv, size_t ns_index, void (*fn)(void *arg, rc_sio_socket *s),
                           void *arg);
/* Visits the rooms a socket is in (not its own id, which is no room here). */
void rc_sio_socket_rooms(const rc_sio_socket *s, void (*fn)(void *arg, const char *room), void *arg);
/* When it connected (Unix ms, to the second). */
uint64_t rc_sio_socket_issued_ms(const rc_sio_socket *s);
/* Its Engine.IO session id, and 1 while that session still polls. */
const char *rc_sio_socket_session(const rc_sio_socket *s);
int rc_sio_socket_polling(const rc_sio_socket *s);
/* During on_disconnect: why it leaves, in Socket.IO's words ("server namespace disconnect",
 * "client namespace disconnect", "transport close", "ping timeout", ...); "" when unknown. */
const char *rc_sio_socket_gone_reason(const rc_sio_socket *s);
/* Disconnects every socket of this socket's client (each hears DISCONNECT) and closes its
 * Engine.IO session, as Node's socket.disconnect(true) does. */
void rc_sio_socket_close_session(rc_sio_socket *s);
/* Engine.IO clients with a socket in some namespace, and those of them still polling. */
void rc_sio_client_counts(rc_sio_server *srv, uint64_t *clients, uint64_t *polling);

#endif
