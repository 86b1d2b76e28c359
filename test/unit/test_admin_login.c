/*
 * test_admin_login.c: the Admin UI's login budget (src/admin_login.c), black-box through
 * src/admin_login.h with a clock the test drives.
 *
 * Covered: an address's own budget (5 at once, one more per 4 node intervals) and that its
 * refusals leave the node's budget alone; the node's loop-time budget (5 at once at a cheap hash,
 * 1 when a check takes more than 250 ms, refill from the measured time); the node's last check
 * kept for a fresh address (no wrong password for 20 node intervals); a right password giving the
 * check back; IPv6 keyed by /64 and an unknown address as one key; the table's bound (never more
 * than RC_ADMIN_LOGIN_ADDRS) and its least-recently-used eviction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/admin_login.h"
#include "roomcast/log.h"
#include "roomcast/server.h"

enum { RUN = RC_ADMIN_LOGIN_RUN, ADDRESS = RC_ADMIN_LOGIN_ADDRESS, NODE = RC_ADMIN_LOGIN_NODE };

static rc_addr ip(const char *s)
{
    rc_addr a;
    assert_int_equal(rc_addr_parse(s, strlen(s), &a), 0);
    return a;
}

/* 10.0.<i/256>.<i%256> */
static rc_addr nth(int i)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "10.0.%d.%d", i / 256, i % 256);
    return ip(buf);
}

/* Takes a check for a and, when allowed, runs it (took_ms, wrong password). */
static int try_login(rc_admin_login *l, const rc_addr *a, uint64_t now, uint64_t took_ms)
{
    int v = rc_admin_login_take(l, a, now);
    if (v == RUN) rc_admin_login_ran(l, a, took_ms, 0);
    return v;
}

/* Cost 4: a check takes ~2 ms, so the node has 5 at once and one more a second; an address 5 at
 * once and one more every 4 s. */
static void test_address_budget_spares_others(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr a = ip("198.51.100.7"), b = ip("203.0.113.9");
    /* a takes 4 of the node's 5; the last is kept for a fresh address */
    for (int i = 0; i < 4; i++) assert_int_equal(try_login(l, &a, 0, 1), RUN);
    assert_int_equal(try_login(l, &a, 0, 1), NODE);
    /* 4 s later the node is full again; a has 2 (1 left, 1 refilled), then its own budget is empty */
    assert_int_equal(try_login(l, &a, 4000, 1), RUN);
    assert_int_equal(try_login(l, &a, 4000, 1), RUN);
    /* a thousand more tries from a: none reaches the node's budget */
    for (int i = 0; i < 1000; i++) assert_int_equal(try_login(l, &a, 4000, 1), ADDRESS);
    assert_int_equal(try_login(l, &b, 4000, 1), RUN);
    assert_int_equal(try_login(l, &b, 4000, 1), RUN);
    assert_int_equal(try_login(l, &b, 4000, 1), NODE); /* the node's last: for a fresh address */
    /* a refills one check per 4 node intervals, not one per second */
    assert_int_equal(try_login(l, &a, 7900, 1), ADDRESS);
    assert_int_equal(try_login(l, &a, 8100, 1), RUN);
    assert_int_equal(try_login(l, &a, 8100, 1), ADDRESS);
    assert_int_equal(rc_admin_login_addresses(l), 2);
    rc_admin_login_free(l);
}

/* A brute force from one address, a try every 10 ms for a minute, and a login from another
 * address every 5 s: every one of those gets its check, the attacker one per 4 s at most. */
static void test_one_address_cannot_starve_another(void **state)
{
    rc_admin_login *l = rc_admin_login_new(10, 0);
    rc_addr attacker = ip("2001:db8:1:2::7"), admin = ip("192.0.2.1");
    int ran = 0, admin_ok = 0;
    for (uint64_t t = 0; t < 60000; t += 10) {
        rc_addr from = attacker;
        from.bytes[15] = (uint8_t)t; /* a different host of the same /64 each time */
        if (try_login(l, &from, t, 60) == RUN) ran++;
        if (t % 5000 == 2500) {
            assert_int_equal(rc_admin_login_take(l, &admin, t), RUN);
            rc_admin_login_ran(l, &admin, 60, 1);
            admin_ok++;
        }
    }
    assert_int_equal(admin_ok, 12);
    /* 5 at first, then one per 4 x 1.2 s (cost 10: 60 ms a check, 1/20 of the loop) */
    assert_in_range(ran, 5 + 60000 / 4880 - 2, 5 + 60000 / 4880 + 2);
    assert_int_equal(rc_admin_login_addresses(l), 2);
    rc_admin_login_free(l);
}

/* The node's last check is for a fresh address: busy addresses together cannot take it. */
static void test_node_reserve_for_fresh_address(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr busy[3] = {ip("10.1.0.1"), ip("10.1.0.2"), ip("10.1.0.3")};
    rc_addr fresh = ip("10.9.9.9");
    /* each busy address takes one (fresh then), leaving the node 2 */
    for (int i = 0; i < 3; i++) assert_int_equal(try_login(l, &busy[i], 0, 1), RUN);
    /* busy[0] is no longer fresh: it may take the node's second last, not its last */
    assert_int_equal(try_login(l, &busy[0], 0, 1), RUN);
    assert_int_equal(try_login(l, &busy[1], 0, 1), NODE);
    assert_int_equal(try_login(l, &busy[2], 0, 1), NODE);
    assert_int_equal(try_login(l, &fresh, 0, 1), RUN);
    assert_int_equal(try_login(l, &fresh, 0, 1), NODE);
    rc_admin_login_free(l);
}

/* Fresh is no wrong password for 20 node intervals (20 s here), whatever the address's own
 * budget: an address that refilled is not fresh yet, a new one is. */
static void test_fresh_after_quiet_time(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr a = ip("10.2.0.1"), others[4] = {ip("10.2.0.2"), ip("10.2.0.3"), ip("10.2.0.4"), ip("10.2.0.5")};
    rc_addr newcomer = ip("10.2.0.9");
    assert_int_equal(try_login(l, &a, 0, 1), RUN);
    /* 4 s later the node is full; four new addresses take it down to its last check */
    for (int i = 0; i < 4; i++) assert_int_equal(try_login(l, &others[i], 4000, 1), RUN);
    /* 4.5 s: the node has 1.5; a's own budget is full again, but a failed 4.5 s ago */
    assert_int_equal(try_login(l, &a, 4500, 1), NODE);
    assert_int_equal(try_login(l, &newcomer, 4500, 1), RUN);
    /* 21 s: the node is full; the others (failed at 4 s) take it down to its last check */
    for (int i = 0; i < 4; i++) assert_int_equal(try_login(l, &others[i], 21000, 1), RUN);
    assert_int_equal(try_login(l, &others[0], 21000, 1), NODE);
    assert_int_equal(try_login(l, &a, 21000, 1), RUN); /* quiet for 21 s: fresh */
    rc_admin_login_free(l);
}

/* A right password gives the address its check back; the node's is spent all the same. */
static void test_right_password_refunds_address(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr a = ip("192.0.2.1");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(rc_admin_login_take(l, &a, 0), RUN);
        rc_admin_login_ran(l, &a, 1, 1);
    }
    assert_int_equal(rc_admin_login_take(l, &a, 0), NODE); /* the node's 5 are gone */
    assert_int_equal(rc_admin_login_take(l, &a, 1000), RUN);
    rc_admin_login_free(l);
}

/* A check that takes more than 250 ms: one at a time, one per 20 checks' time. */
static void test_expensive_check_node_budget(void **state)
{
    rc_admin_login *l = rc_admin_login_new(12, 0);
    rc_addr a = ip("10.0.0.1"), b = ip("10.0.0.2"), c = ip("10.0.0.3");
    assert_int_equal(try_login(l, &a, 0, 299), RUN); /* measured: 300 ms a check */
    assert_int_equal(try_login(l, &b, 0, 299), NODE);
    assert_int_equal(try_login(l, &b, 5000, 299), NODE); /* 20 x 300 ms = 6 s a check */
    assert_int_equal(try_login(l, &b, 6100, 299), RUN);
    assert_int_equal(try_login(l, &c, 6100, 299), NODE);
    rc_admin_login_free(l);
}

/* IPv6 by /64; an unknown address (NULL) is one key of its own. */
static void test_keys(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr x1 = ip("2001:db8:0:1::1"), x2 = ip("2001:db8:0:1:ffff::2"), y = ip("2001:db8:0:2::1");
    rc_addr v4 = ip("32.1.13.184"); /* the first 4 bytes of 2001:db8:: */
    for (int i = 0; i < 4; i++) assert_int_equal(try_login(l, i % 2 ? &x2 : &x1, 0, 1), RUN);
    assert_int_equal(rc_admin_login_addresses(l), 1);
    assert_int_equal(try_login(l, &y, 0, 1), RUN); /* fresh: the node's last */
    assert_int_equal(try_login(l, NULL, 0, 1), NODE);
    assert_int_equal(try_login(l, &v4, 0, 1), NODE);
    assert_int_equal(rc_admin_login_addresses(l), 4);
    assert_true(rc_admin_login_knows(l, NULL) && rc_admin_login_knows(l, &v4));
    /* 4 s later: x has 2, whichever host of its /64 asks */
    assert_int_equal(try_login(l, &x2, 4000, 1), RUN);
    assert_int_equal(try_login(l, &x1, 4000, 1), RUN);
    assert_int_equal(try_login(l, &x2, 4000, 1), ADDRESS);
    assert_int_equal(try_login(l, &y, 4000, 1), RUN);
    rc_admin_login_free(l);
}

/* The table never holds more than RC_ADMIN_LOGIN_ADDRS; a new address takes the slot of the
 * least recently used one. */
static void test_table_bound_and_lru(void **state)
{
    rc_admin_login *l = rc_admin_login_new(4, 0);
    rc_addr victim = ip("192.0.2.66"), kept = ip("192.0.2.77");
    uint64_t t = 0;
    rc_admin_login_take(l, &victim, t);
    rc_admin_login_take(l, &kept, t);
    /* fill the table up, one new address per ms; kept is tried again now and then */
    for (int i = 0; i < RC_ADMIN_LOGIN_ADDRS - 2; i++) {
        rc_addr a = nth(i);
        rc_admin_login_take(l, &a, ++t);
        if (i % 50 == 0) rc_admin_login_take(l, &kept, t);
    }
    assert_int_equal(rc_admin_login_addresses(l), RC_ADMIN_LOGIN_ADDRS);
    assert_int_equal(rc_admin_login_evicted(l), 0);
    assert_true(rc_admin_login_knows(l, &victim));
    /* one more address: the victim (tried at 0, the least recently) goes, kept stays */
    rc_addr extra = nth(1000);
    rc_admin_login_take(l, &extra, ++t);
    assert_int_equal(rc_admin_login_addresses(l), RC_ADMIN_LOGIN_ADDRS);
    assert_int_equal(rc_admin_login_evicted(l), 1);
    assert_false(rc_admin_login_knows(l, &victim));
    assert_true(rc_admin_login_knows(l, &kept) && rc_admin_login_knows(l, &extra));
    rc_addr first = nth(0);
    assert_true(rc_admin_login_knows(l, &first));
    /* the next one takes the oldest left: nth(0), tried at 1 */
    rc_addr extra2 = nth(1001);
    rc_admin_login_take(l, &extra2, ++t);
    assert_false(rc_admin_login_knows(l, &first));
    assert_true(rc_admin_login_knows(l, &kept));
    /* a flood of ten thousand new addresses: the table stays at its size */
    for (int i = 0; i < 10000; i++) {
        rc_addr a = nth(2000 + i);
        rc_admin_login_take(l, &a, ++t);
    }
    assert_int_equal(rc_admin_login_addresses(l), RC_ADMIN_LOGIN_ADDRS);
    assert_int_equal(rc_admin_login_evicted(l), 10002);
    rc_admin_login_free(l);
}

int main(void)
{
    rc_log_setup(getenv("RC_TEST_DEBUG") ? RC_LOG_DEBUG : RC_LOG_ERROR + 1, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_budget_spares_others),
        cmocka_unit_test(test_one_address_cannot_starve_another),
        cmocka_unit_test(test_node_reserve_for_fresh_address),
        cmocka_unit_test(test_fresh_after_quiet_time),
        cmocka_unit_test(test_right_password_refunds_address),
        cmocka_unit_test(test_expensive_check_node_budget),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_table_bound_and_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
