/*
 * admin_login.c: the Admin UI's password-login budget (src/admin_login.h; for operators:
 * docs/admin-ui.md, "Authentication"). bcrypt runs on the event loop, so a password login is a
 * slice of every client's time; this decides which logins may take one.
 *
 * Two token buckets, both counted in bcrypt checks:
 *   - the node's: one more check per max(LOOP_SHARE x a check's time, REFILL_MS) and at most
 *     max(1, min(BURST, BURST_MS / a check's time)) at once, so bcrypt takes at most 1/LOOP_SHARE
 *     of the loop on average and BURST_MS back to back. A check's time is the last one measured
 *     (before any, a guess from the hash's cost). This protects every client of the node.
 *   - one per client address (as nginx's limit_req keyed by $binary_remote_addr): ADDR_BURST at
 *     once, one more per ADDR_SHARE x the node's interval, so one address can spend at most
 *     1/ADDR_SHARE of the node's budget. An address whose bucket is empty is refused without
 *     touching the node's bucket: its failures cannot empty the budget others log in with.
 * The node's last RESERVE check (less when the node's burst is under 2) is kept for a "fresh"
 * address: one with no wrong password for FRESH_CHECKS of the node's intervals (new, or quiet
 * for about 25 s at bcrypt cost 10). Busy addresses together cannot take it, so the real admin at
 * a fresh address finds a check at once or within one node interval; to take every check, the
 * reserved ones too, an attacker needs about FRESH_CHECKS addresses, each coming back fresh. A
 * right password gives the address its check back (the node's is spent all the same) and does
 * not make it less fresh.
 *
 * Addresses are keyed by family and the first 4 (IPv4) or 8 (IPv6: the /64, one host has them
 * all) bytes, as src/eio.c keys handshakes. The table is fixed (RC_ADMIN_LOGIN_ADDRS slots, one
 * allocation); a new address past it takes the slot of the least recently used one, whose
 * bucket has most likely refilled anyway. It never grows with the number of attackers; an
 * attacker with more addresses than the node's budget has shares (or than the table has slots)
 * is limited by the node's bucket only: docs/security.md, "Admin login lockout from many
 * addresses".
 *
 * Ownership: src/admin.c holds one (rc_admin_new, rc_admin_login_free in rc_admin_free): one
 * allocation with the table in it, no timer; everything happens inside rc_admin_login_take/_ran.
 *
 * What it does not do: bcrypt (src/admin.c runs it), session ids (they cost nothing and are not
 * budgeted), anything across nodes (each node has its own budget and table).
 */
#include "admin_login.h"
#include "roomcast/common.h"
#include "roomcast/log.h"
#include "roomcast/metrics.h"
#include "roomcast/server.h"

#include <string.h>

#define BURST 5             /* the node's checks at once, at most */
#define BURST_MS 250        /* ... and no more than this much bcrypt at once */
#define REFILL_MS 1000      /* one more each second at most */
#define LOOP_SHARE 20       /* ... and bcrypt on at most 1/20 of the loop's time */
#define ADDR_BURST 5        /* an address's checks at once (the node's last is kept: 4 at most) */
#define ADDR_SHARE 4        /* an address refills 4 times slower than the node: 1/4 of it */
#define RESERVE 1.0         /* the node's last check, kept for fresh addresses */
#define FRESH_CHECKS 20     /* fresh: no wrong password for this many node intervals */
#define KEY_LEN 9           /* family + 8 address bytes */

typedef struct slot {
    uint8_t key[KEY_LEN];
    uint8_t failed;         /* a wrong password was checked for it, at failed_ms */
    double tokens;
    uint64_t ms;            /* when tokens was last brought up to date: the last take */
    uint64_t failed_ms;
} slot;

struct rc_admin_login {
    double tokens;          /* the node's */
    uint64_t tokens_ms;
    uint64_t bcrypt_ms;     /* what one check takes */
    size_t used;            /* slots in use: slots[0..used) */
    uint64_t evicted;
    uint64_t throttled[3];  /* by verdict (RC_ADMIN_LOGIN_ADDRESS, _NODE) */
    uint64_t logged_ms, unlogged;
    slot slots[RC_ADMIN_LOGIN_ADDRS];
};

static double node_burst(const rc_admin_login *l)
{
    double b = (double)BURST_MS / (double)l->bcrypt_ms;
    if (b > BURST) b = BURST;
    return b < 1.0 ? 1.0 : b;
}

static double node_interval(const rc_admin_login *l)
{
    double i = (double)l->bcrypt_ms * LOOP_SHARE;
    return i < REFILL_MS ? REFILL_MS : i;
}

static void make_key(const rc_addr *a, uint8_t key[KEY_LEN])
{
    memset(key, 0, KEY_LEN);
    if (!a) return;
    key[0] = a->family;
    memcpy(key + 1, a->bytes, a->family == 6 ? 8 : 4);
}

/* The slot index of key, or -1. */
static long find_index(const rc_admin_login *l, const uint8_t key[KEY_LEN])
{
    for (size_t i = 0; i < l->used; i++)
        if (memcmp(l->slots[i].key, key, KEY_LEN) == 0) return (long)i;
    return -1;
}

static slot *find(rc_admin_login *l, const uint8_t key[KEY_LEN])
{
    long i = find_index(l, key);
    return i < 0 ? NULL : &l->slots[i];
}

/* A slot for a new address, with a full bucket: a free one, else the least recently used. */
static slot *insert(rc_admin_login *l, const uint8_t key[KEY_LEN], uint64_t now)
{
    slot *s;
    if (l->used < RC_ADMIN_LOGIN_ADDRS) {
        s = &l->slots[l->used++];
    } else {
        s = &l->slots[0];
        for (size_t i = 1; i < l->used; i++)
            if (l->slots[i].ms < s->ms) s = &l->slots[i];
        l->evicted++;
    }
    memcpy(s->key, key, KEY_LEN);
    s->failed = 0;
    s->tokens = ADDR_BURST;
    s->ms = now;
    return s;
}

rc_admin_login *rc_admin_login_new(int bcrypt_cost, uint64_t now_ms)
{
    rc_admin_login *l = rc_calloc(1, sizeof(*l));
    /* 2^cost rounds: about 60 ms at cost 10 */
    l->bcrypt_ms = bcrypt_cost >= 4 && bcrypt_cost <= 31 ? ((uint64_t)1 << bcrypt_cost) / 16 + 1 : 64;
    l->tokens = node_burst(l);
    l->tokens_ms = now_ms;
    return l;
}

void rc_admin_login_free(rc_admin_login *l) { rc_free(l); }

static void log_refusal(rc_admin_login *l, const rc_addr *from, int verdict, uint64_t now)
{
    /* One line a second at most: a brute force must not become a flood of logs. */
    if (l->logged_ms && now - l->logged_ms < 1000) {
        l->unlogged++;
        return;
    }
    char ip[64] = "unknown";
    if (from) rc_addr_format(from, ip, sizeof(ip));
    rc_log_warn("admin_login_throttled", "addr=%s budget=%s throttled_since_last_log=%llu", ip,
                verdict == RC_ADMIN_LOGIN_ADDRESS ? "address" : "node", (unsigned long long)l->unlogged);
    l->logged_ms = now;
    l->unlogged = 0;
}

int rc_admin_login_take(rc_admin_login *l, const rc_addr *from, uint64_t now_ms)
{
    double interval = node_interval(l), burst = node_burst(l);
    if (now_ms > l->tokens_ms) l->tokens += (double)(now_ms - l->tokens_ms) / interval;
    l->tokens_ms = now_ms;
    if (l->tokens > burst) l->tokens = burst;

    uint8_t key[KEY_LEN];
    make_key(from, key);
    slot *s = find(l, key);
    if (!s) s = insert(l, key, now_ms);
    if (now_ms > s->ms) s->tokens += (double)(now_ms - s->ms) / (interval * ADDR_SHARE);
    s->ms = now_ms;
    if (s->tokens > ADDR_BURST) s->tokens = ADDR_BURST;

    int verdict = RC_ADMIN_LOGIN_RUN;
    int fresh = !s->failed || (double)(now_ms - s->failed_ms) >= interval * FRESH_CHECKS;
    double reserve = burst - 1.0 < RESERVE ? burst - 1.0 : RESERVE;
    if (s->tokens < 1.0) verdict = RC_ADMIN_LOGIN_ADDRESS;
    else if (l->tokens < 1.0 + (fresh ? 0.0 : reserve)) verdict = RC_ADMIN_LOGIN_NODE;
    if (verdict != RC_ADMIN_LOGIN_RUN) {
        l->throttled[verdict]++;
        log_refusal(l, from, verdict, now_ms);
        return verdict;
    }
    s->tokens -= 1.0;
    l->tokens -= 1.0;
    return RC_ADMIN_LOGIN_RUN;
}

void rc_admin_login_ran(rc_admin_login *l, const rc_addr *from, uint64_t took_ms, int ok)
{
    l->bcrypt_ms = took_ms + 1;
    uint8_t key[KEY_LEN];
    make_key(from, key);
    slot *s = find(l, key);
    if (!s) return;
    if (!ok) {
        s->failed = 1;
        s->failed_ms = s->ms; /* the take's time */
    } else if ((s->tokens += 1.0) > ADDR_BURST) {
        s->tokens = ADDR_BURST;
    }
}

size_t rc_admin_login_addresses(const rc_admin_login *l) { return l->used; }

int rc_admin_login_knows(const rc_admin_login *l, const rc_addr *a)
{
    uint8_t key[KEY_LEN];
    make_key(a, key);
    return find_index(l, key) >= 0;
}
uint64_t rc_admin_login_evicted(const rc_admin_login *l) { return l->evicted; }

void rc_admin_login_write_metrics(const rc_admin_login *l, struct evbuffer *out)
{
    static const char *const budgets[] = {"", "address", "node"};
    rc_metrics_put_by_label(out, "roomcast_admin_login_throttled_total", "counter",
                            "Admin UI password logins refused without bcrypt, by the budget that was empty.",
                            "budget", budgets, l->throttled, 1, 3);
    rc_metrics_put_scalar(out, "roomcast_admin_login_addresses", "gauge",
                          "Client addresses in the Admin UI login budget's table.", l->used);
    rc_metrics_put_scalar(out, "roomcast_admin_login_addresses_evicted_total", "counter",
                          "Client addresses dropped from the full login budget table (least recently used).",
                          l->evicted);
}
