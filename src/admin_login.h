/*
 * admin_login.h: the Admin UI's password-login budget (src/admin_login.c), private to the admin
 * module: which CONNECTs to /admin may run bcrypt, per client address and for the whole node.
 *
 * API in call order: rc_admin_login_new -> for each password login: rc_admin_login_take, and
 * when it allowed the check, rc_admin_login_ran after it -> rc_admin_login_write_metrics ->
 * rc_admin_login_free. Times are monotonic milliseconds the caller passes (rc_now_mono_ms), so a
 * test can drive the clock.
 */
#ifndef ROOMCAST_ADMIN_LOGIN_H
#define ROOMCAST_ADMIN_LOGIN_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct rc_addr;
typedef struct rc_admin_login rc_admin_login;

#define RC_ADMIN_LOGIN_ADDRS 256   /* client addresses remembered; the least recently used goes */

/* What rc_admin_login_take decided. */
enum {
    RC_ADMIN_LOGIN_RUN = 0,        /* run bcrypt now, then call rc_admin_login_ran */
    RC_ADMIN_LOGIN_ADDRESS,        /* refused: this address's own budget is empty */
    RC_ADMIN_LOGIN_NODE,           /* refused: the node's loop-time budget is empty */
};

/* bcrypt_cost: the hash's cost ("$2b$NN$"), for what a check takes before one was measured. */
rc_admin_login *rc_admin_login_new(int bcrypt_cost, uint64_t now_ms);
void rc_admin_login_free(rc_admin_login *l);

/* A password login from `from` (the Engine.IO session's client address; NULL: unknown, which
 * is one address of its own). Takes one check from the address's budget and the node's, or
 * neither. Logs a refusal (one line a second at most). */
int rc_admin_login_take(rc_admin_login *l, const struct rc_addr *from, uint64_t now_ms);
/* The check allowed by the last take for `from` took took_ms; ok: the password was right, and
 * the address gets its check back (a right password is not a guess). */
void rc_admin_login_ran(rc_admin_login *l, const struct rc_addr *from, uint64_t took_ms, int ok);

/* Addresses in the table now (at most RC_ADMIN_LOGIN_ADDRS), how many were evicted, and
 * whether a's budget is in it (1) or would start full (0). */
size_t rc_admin_login_addresses(const rc_admin_login *l);
uint64_t rc_admin_login_evicted(const rc_admin_login *l);
int rc_admin_login_knows(const rc_admin_login *l, const struct rc_addr *a);
/* roomcast_admin_login_throttled_total{budget}, roomcast_admin_login_addresses,
 * roomcast_admin_login_addresses_evicted_total. */
void rc_admin_login_write_metrics(const rc_admin_login *l, struct evbuffer *out);

#endif
