/*
 * test_deadline.c: the deadline min-heap (src/deadline.c, include/roomcast/deadline.h) that the
 * Socket.IO server uses for token expiry: pops in deadline order, never early; a removed (closed)
 * socket never comes out; equal deadlines all come out, each once; a socket that was never
 * queued (no exp) costs nothing and its removal is a no-op; every queued link's slot points at
 * its own entry after any mix of operations; the array is freed when the heap empties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "roomcast/common.h"
#include "roomcast/deadline.h"

/* Stands for rc_sio_socket: an owner with an embedded link, found again by container-of. */
typedef struct fake_socket {
    int id;
    int64_t exp;                 /* 0: no exp, never queued */
    rc_deadline_link expiry;
} fake_socket;

static fake_socket *owner_of(rc_deadline_link *l)
{
    return RC_CONTAINER_OF(l, fake_socket, expiry);
}

/* Heap order, and every slot pointing back at its own entry. */
static void check_invariants(const rc_deadline_heap *h)
{
    assert_true(h->count <= h->cap);
    for (uint32_t i = 0; i < h->count; i++) {
        assert_int_equal(h->items[i].link->slot, i + 1);
        if (i > 0) assert_true(h->items[(i - 1) / 2].at <= h->items[i].at);
    }
}

static void test_pops_in_deadline_order(void **state)
{
    enum { N = 300 };
    static fake_socket socks[N];
    rc_deadline_heap h = {0};
    srand(7);
    for (int i = 0; i < N; i++) {
        socks[i] = (fake_socket){.id = i, .exp = 1700000000 + rand() % 50};
        rc_deadline_add(&h, &socks[i].expiry, socks[i].exp);
        check_invariants(&h);
    }
    assert_int_equal(rc_deadline_count(&h), N);
    int64_t last = INT64_MIN;
    int popped = 0;
    for (int64_t now = 1700000000 - 1; now < 1700000000 + 60; now++) {
        rc_deadline_link *l;
        while ((l = rc_deadline_pop_due(&h, now)) != NULL) {
            fake_socket *s = owner_of(l);
            assert_true(s->exp <= now);          /* never early */
            assert_true(s->exp >= last);         /* in order */
            assert_false(rc_deadline_queued(l));
            last = s->exp;
            popped++;
            check_invariants(&h);
        }
        /* what is left is all later than now */
        assert_true(rc_deadline_next(&h) > now);
    }
    assert_int_equal(popped, N);
    assert_int_equal(rc_deadline_count(&h), 0);
    assert_null(h.items); /* freed when empty */
    assert_true(rc_deadline_next(&h) == INT64_MAX);
    rc_deadline_heap_dispose(&h);
}

static void test_nothing_due_before_the_earliest(void **state)
{
    fake_socket a = {.id = 1, .exp = 100}, b = {.id = 2, .exp = 50}, c = {.id = 3, .exp = 75};
    rc_deadline_heap h = {0};
    rc_deadline_add(&h, &a.expiry, a.exp);
    rc_deadline_add(&h, &b.expiry, b.exp);
    rc_deadline_add(&h, &c.expiry, c.exp);
    assert_true(rc_deadline_next(&h) == 50);
    assert_null(rc_deadline_pop_due(&h, 49));
    assert_int_equal(rc_deadline_count(&h), 3);
    assert_ptr_equal(rc_deadline_pop_due(&h, 50), &b.expiry);
    assert_null(rc_deadline_pop_due(&h, 74));
    assert_ptr_equal(rc_deadline_pop_due(&h, 1000), &c.expiry);
    assert_ptr_equal(rc_deadline_pop_due(&h, 1000), &a.expiry);
    assert_null(rc_deadline_pop_due(&h, INT64_MAX));
    rc_deadline_heap_dispose(&h);
}

/* A socket that closes before its token expires is taken out, wherever it sits in the heap, and
 * never fires; removing it twice (close after it fired) is harmless. */
static void test_removed_socket_never_fires(void **state)
{
    enum { N = 64 };
    static fake_socket socks[N];
    rc_deadline_heap h = {0};
    for (int i = 0; i < N; i++) {
        socks[i] = (fake_socket){.id = i, .exp = 1000 + (i * 37) % N};
        rc_deadline_add(&h, &socks[i].expiry, socks[i].exp);
    }
    /* the root, the last entry, and a spread of others */
    int closed[N] = {0};
    fake_socket *root = owner_of(h.items[0].link);
    fake_socket *last = owner_of(h.items[h.count - 1].link);
    closed[root->id] = closed[last->id] = 1;
    for (int i = 3; i < N; i += 5) closed[i] = 1;
    for (int i = 0; i < N; i++) {
        if (!closed[i]) continue;
        rc_deadline_remove(&h, &socks[i].expiry);
        assert_false(rc_deadline_queued(&socks[i].expiry));
        rc_deadline_remove(&h, &socks[i].expiry); /* again: no-op */
        check_invariants(&h);
    }
    int open = 0;
    for (int i = 0; i < N; i++) open += !closed[i];
    assert_int_equal(rc_deadline_count(&h), open);
    int64_t prev = INT64_MIN;
    rc_deadline_link *l;
    while ((l = rc_deadline_pop_due(&h, INT64_MAX)) != NULL) {
        fake_socket *s = owner_of(l);
        assert_false(closed[s->id]);
        assert_true(s->exp >= prev);
        prev = s->exp;
        rc_deadline_remove(&h, l); /* the close path after it fired: no-op */
        open--;
    }
    assert_int_equal(open, 0);
    rc_deadline_heap_dispose(&h);
}

/* Tokens minted together expire in the same second: all come out at that second, each once. */
static void test_equal_deadlines(void **state)
{
    enum { N = 40 };
    static fake_socket socks[N];
    rc_deadline_heap h = {0};
    for (int i = 0; i < N; i++) {
        socks[i] = (fake_socket){.id = i, .exp = i % 4 == 0 ? 501 : 500};
        rc_deadline_add(&h, &socks[i].expiry, socks[i].exp);
    }
    /* one of the equal ones leaves before expiring */
    rc_deadline_remove(&h, &socks[5].expiry);
    assert_null(rc_deadline_pop_due(&h, 499));
    int seen[N] = {0}, at500 = 0, at501 = 0;
    rc_deadline_link *l;
    while ((l = rc_deadline_pop_due(&h, 500)) != NULL) {
        fake_socket *s = owner_of(l);
        assert_int_equal(s->exp, 500);
        assert_int_equal(seen[s->id]++, 0);
        at500++;
    }
    assert_int_equal(at500, 30 - 1);
    while ((l = rc_deadline_pop_due(&h, 501)) != NULL) {
        fake_socket *s = owner_of(l);
        assert_int_equal(s->exp, 501);
        assert_int_equal(seen[s->id]++, 0);
        at501++;
    }
    assert_int_equal(at501, 10);
    assert_int_equal(seen[5], 0);
    rc_deadline_heap_dispose(&h);
}

/* A socket without exp is never added: its link stays zero, removing it changes nothing, and a
 * heap of such sockets holds no memory. */
static void test_socket_without_exp(void **state)
{
    fake_socket none = {.id = 1}, timed = {.id = 2, .exp = 10};
    rc_deadline_heap h = {0};
    assert_false(rc_deadline_queued(&none.expiry));
    rc_deadline_remove(&h, &none.expiry);
    assert_int_equal(rc_deadline_count(&h), 0);
    assert_null(h.items);
    assert_true(rc_deadline_next(&h) == INT64_MAX);
    assert_null(rc_deadline_pop_due(&h, INT64_MAX));

    rc_deadline_add(&h, &timed.expiry, timed.exp);
    rc_deadline_remove(&h, &none.expiry); /* does not disturb the queued one */
    assert_int_equal(rc_deadline_count(&h), 1);
    assert_true(rc_deadline_queued(&timed.expiry));
    assert_ptr_equal(rc_deadline_pop_due(&h, 10), &timed.expiry);
    assert_false(rc_deadline_queued(&none.expiry));
    rc_deadline_heap_dispose(&h);
}

/* Random connects, closes and expiries against a plain reference array; a socket may be queued
 * again after it came out (a reconnect reuses nothing, but the heap must not care). */
static void test_random_against_reference(void **state)
{
    enum { N = 500, STEPS = 20000 };
    static fake_socket socks[N];
    static int queued[N];
    rc_deadline_heap h = {0};
    uint32_t peak = 0;
    srand(42);
    for (int i = 0; i < N; i++) socks[i] = (fake_socket){.id = i};
    int64_t now = 0;
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % N;
        int op = rand() % 4;
        if (op == 0 && !queued[i]) {
            socks[i].exp = now + 1 + rand() % 30;
            rc_deadline_add(&h, &socks[i].expiry, socks[i].exp);
            queued[i] = 1;
        } else if (op == 1) {
            rc_deadline_remove(&h, &socks[i].expiry);
            queued[i] = 0;
        } else if (op == 2) {
            now++;
            rc_deadline_link *l;
            while ((l = rc_deadline_pop_due(&h, now)) != NULL) {
                fake_socket *s = owner_of(l);
                assert_true(queued[s->id]);
                assert_true(s->exp <= now);
                queued[s->id] = 0;
            }
        }
        uint32_t want = 0;
        int64_t earliest = INT64_MAX;
        for (int k = 0; k < N; k++) {
            if (!queued[k]) continue;
            want++;
            if (socks[k].exp < earliest) earliest = socks[k].exp;
            assert_true(rc_deadline_queued(&socks[k].expiry));
        }
        assert_int_equal(rc_deadline_count(&h), want);
        assert_true(rc_deadline_next(&h) == earliest);
        if (want > peak) peak = want;
        if (step % 97 == 0) check_invariants(&h);
    }
    assert_true(peak > 16); /* the array grew past its first size at least once */
    for (int i = 0; i < N; i++) rc_deadline_remove(&h, &socks[i].expiry);
    assert_int_equal(rc_deadline_count(&h), 0);
    assert_null(h.items);
    rc_deadline_heap_dispose(&h);
}

/* After a burst the array shrinks back; it never holds more than four times what it needs
 * (above the floor). */
static void test_shrinks_after_a_burst(void **state)
{
    enum { N = 4096 };
    static fake_socket socks[N];
    rc_deadline_heap h = {0};
    for (int i = 0; i < N; i++) {
        socks[i] = (fake_socket){.id = i, .exp = i};
        rc_deadline_add(&h, &socks[i].expiry, socks[i].exp);
    }
    assert_true(h.cap >= N);
    for (int i = 0; i < N - 10; i++) rc_deadline_remove(&h, &socks[N - 1 - i].expiry);
    assert_int_equal(rc_deadline_count(&h), 10);
    assert_true(h.cap <= 64);
    check_invariants(&h);
    for (int i = 0; i < 10; i++) assert_ptr_equal(rc_deadline_pop_due(&h, INT64_MAX), &socks[i].expiry);
    assert_null(h.items);
    rc_deadline_heap_dispose(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pops_in_deadline_order),
        cmocka_unit_test(test_nothing_due_before_the_earliest),
        cmocka_unit_test(test_removed_socket_never_fires),
        cmocka_unit_test(test_equal_deadlines),
        cmocka_unit_test(test_socket_without_exp),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_shrinks_after_a_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
