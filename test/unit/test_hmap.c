/*
 * test_hmap.c: src/hmap.c. Empty map, insert/find/remove, growth to 100k and shrink back,
 * iteration visits each node once, keys that differ only in length, hash spread over bucket
 * indices for sequential short keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "roomcast/common.h"
#include "roomcast/hmap.h"

typedef struct item {
    rc_hmap_node node;
    char key[24];
    int seen;
} item;

static item *item_of(rc_hmap_node *n) { return n ? RC_CONTAINER_OF(n, item, node) : NULL; }

static int is_pow2(size_t n) { return n && (n & (n - 1)) == 0; }

static size_t max_chain(const rc_hmap *m)
{
    size_t best = 0;
    for (size_t i = 0; i < m->nbuckets; i++) {
        size_t len = 0;
        for (rc_hmap_node *n = m->buckets[i]; n; n = n->next)
            len++;
        if (len > best)
            best = len;
    }
    return best;
}

static void test_empty_map(void **state)
{
    rc_hmap m = {0};
    assert_null(rc_hmap_find(&m, "x", 1));
    assert_null(rc_hmap_first(&m));
    rc_hmap_dispose(&m);
    assert_null(m.buckets);
    assert_int_equal(m.nbuckets, 0);
    rc_hmap_dispose(&m);
}

static void test_insert_find_remove(void **state)
{
    rc_hmap m = {0};
    item a = {.key = "alpha"}, b = {.key = "beta"}, e = {.key = ""};

    rc_hmap_insert(&m, &a.node, a.key, strlen(a.key));
    rc_hmap_insert(&m, &b.node, b.key, strlen(b.key));
    rc_hmap_insert(&m, &e.node, e.key, 0);
    assert_int_equal(m.count, 3);
    assert_true(is_pow2(m.nbuckets));
    assert_ptr_equal(item_of(rc_hmap_find(&m, "alpha", 5)), &a);
    assert_ptr_equal(item_of(rc_hmap_find(&m, "beta", 4)), &b);
    assert_ptr_equal(item_of(rc_hmap_find(&m, "", 0)), &e);
    assert_null(rc_hmap_find(&m, "gamma", 5));
    /* keys are (ptr, len): a prefix is a different key */
    assert_null(rc_hmap_find(&m, "alph", 4));
    assert_null(rc_hmap_find(&m, "alphabet", 8));
    assert_ptr_equal(item_of(rc_hmap_find(&m, "alphabet", 5)), &a);

    rc_hmap_remove(&m, &a.node);
    assert_int_equal(m.count, 2);
    assert_null(rc_hmap_find(&m, "alpha", 5));
    assert_ptr_equal(item_of(rc_hmap_find(&m, "beta", 4)), &b);
    rc_hmap_remove(&m, &e.node);
    rc_hmap_remove(&m, &b.node);
    assert_int_equal(m.count, 0);
    assert_null(rc_hmap_first(&m));
    assert_null(rc_hmap_find(&m, "beta", 4));
    rc_hmap_dispose(&m);
}

static void test_keys_differing_in_length_and_zero_bytes(void **state)
{
    rc_hmap m = {0};
    static const char raw[] = "ab\0\0\0\0\0\0\0\0\0\0";
    item it[12];

    for (size_t len = 0; len < RC_ARRAY_LEN(it); len++) {
        memcpy(it[len].key, raw, len);
        rc_hmap_insert(&m, &it[len].node, it[len].key, len);
    }
    for (size_t len = 0; len < RC_ARRAY_LEN(it); len++)
        assert_ptr_equal(item_of(rc_hmap_find(&m, raw, len)), &it[len]);
    /* zero padding of the tail word must not make lengths collide */
    assert_int_not_equal(rc_hash_bytes("a", 1), rc_hash_bytes("a\0", 2));
    assert_int_not_equal(rc_hash_bytes("", 0), rc_hash_bytes("\0", 1));
    assert_int_equal(rc_hash_bytes("room:42", 7), rc_hash_bytes("room:42", 7));
    rc_hmap_dispose(&m);
}

static void test_growth_iteration_shrink(void **state)
{
    enum { N = 100000 };
    rc_hmap m = {0};
    item *items = rc_calloc(N, sizeof(*items));
    size_t last_buckets = 0;

    for (int i = 0; i < N; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "sock:%d", i);
        assert_null(rc_hmap_find(&m, items[i].key, strlen(items[i].key)));
        rc_hmap_insert(&m, &items[i].node, items[i].key, strlen(items[i].key));
        assert_true(is_pow2(m.nbuckets));
        assert_true(m.count <= m.nbuckets);           /* load factor <= 1 */
        assert_true(m.nbuckets >= last_buckets);
        if (m.nbuckets != last_buckets && last_buckets)
            assert_int_equal(m.nbuckets, last_buckets * 2);
        last_buckets = m.nbuckets;
    }
    assert_int_equal(m.count, N);
    assert_int_equal(m.nbuckets, 131072);
    assert_true(max_chain(&m) <= 10);
    for (int i = 0; i < N; i++)
        assert_ptr_equal(item_of(rc_hmap_find(&m, items[i].key, strlen(items[i].key))), &items[i]);

    /* iteration visits every node exactly once */
    size_t visited = 0;
    for (rc_hmap_node *n = rc_hmap_first(&m); n; n = rc_hmap_next(&m, n)) {
        item *it = item_of(n);
        assert_int_equal(it->seen, 0);
        it->seen = 1;
        visited++;
    }
    assert_int_equal(visited, N);

    /* remove the even ones: the odd ones stay findable through each shrink */
    for (int i = 0; i < N; i += 2)
        rc_hmap_remove(&m, &items[i].node);
    assert_int_equal(m.count, N / 2);
    for (int i = 0; i < N; i++) {
        rc_hmap_node *n = rc_hmap_find(&m, items[i].key, strlen(items[i].key));
        if (i % 2)
            assert_ptr_equal(item_of(n), &items[i]);
        else
            assert_null(n);
    }
    /* remove the rest, collecting first (removal during a walk is not allowed) */
    for (int i = 1; i < N; i += 2) {
        rc_hmap_remove(&m, &items[i].node);
        assert_true(m.count <= m.nbuckets);
        assert_true(m.nbuckets == 8 || m.count >= m.nbuckets / 4);   /* shrinks */
    }
    assert_int_equal(m.count, 0);
    assert_int_equal(m.nbuckets, 8);
    assert_null(rc_hmap_first(&m));
    rc_hmap_dispose(&m);
    rc_free(items);
}

static void test_drain_through_first(void **state)
{
    /* "while ((n = rc_hmap_first(m))) remove(n)" is how owners close everything (eio, sio);
     * it must stay linear, not rescan the emptied front buckets on every call */
    enum { N = 200000 };
    rc_hmap m = {0};
    item *items = rc_calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++) {
        snprintf(items[i].key, sizeof(items[i].key), "sid-%d", i);
        rc_hmap_insert(&m, &items[i].node, items[i].key, strlen(items[i].key));
    }
    uint64_t t0 = rc_now_mono_ns();
    size_t removed = 0;
    rc_hmap_node *n;
    while ((n = rc_hmap_first(&m)) != NULL) {
        item_of(n)->seen++;
        rc_hmap_remove(&m, n);
        removed++;
        if (removed == N / 2) {
            /* a re-insert below the scan position must be found again */
            rc_hmap_insert(&m, &items[0].node, items[0].key, strlen(items[0].key));
        }
    }
    uint64_t ms = (rc_now_mono_ns() - t0) / 1000000;
    assert_int_equal(removed, N + 1);
    assert_int_equal(items[0].seen, 2);
    /* linear is a few ms even under ASan; the quadratic rescan took many seconds */
    assert_true(ms < 2000);
    rc_hmap_dispose(&m);
    rc_free(items);
}

static void test_oscillation_does_not_thrash(void **state)
{
    /* count around a grow boundary: grow once, then no resize on each remove/insert */
    rc_hmap m = {0};
    item it[17];
    for (int i = 0; i < 17; i++) {
        snprintf(it[i].key, sizeof(it[i].key), "k%d", i);
        rc_hmap_insert(&m, &it[i].node, it[i].key, strlen(it[i].key));
    }
    assert_int_equal(m.nbuckets, 32);
    rc_hmap_node **buckets = m.buckets;
    for (int round = 0; round < 100; round++) {
        rc_hmap_remove(&m, &it[16].node);
        rc_hmap_insert(&m, &it[16].node, it[16].key, strlen(it[16].key));
    }
    assert_ptr_equal(m.buckets, buckets);
    rc_hmap_dispose(&m);
}

static void test_hash_spread(void **state)
{
    /* 65536 short sequential keys into 65536 buckets: about 1/e (0.368) of the buckets stay
     * empty for a random function; clustering would leave more empty. */
    enum { N = 65536 };
    unsigned char *hits = rc_calloc(N, 1);
    size_t empty = 0;
    char key[32];
    for (int i = 0; i < N; i++) {
        int len = snprintf(key, sizeof(key), "room-%d", i);
        uint32_t h = rc_hash_bytes(key, (size_t)len);
        if (hits[h & (N - 1)] < 255)
            hits[h & (N - 1)]++;
    }
    for (int i = 0; i < N; i++)
        empty += hits[i] == 0;
    double frac = (double)empty / N;
    assert_true(frac < 0.38);

    /* the same for keys that differ only in their high bytes of one word */
    memset(hits, 0, N);
    empty = 0;
    for (int i = 0; i < N; i++) {
        unsigned char k[8] = {0, 0, 0, 0, 0, 0, (unsigned char)(i & 0xff), (unsigned char)(i >> 8)};
        uint32_t h = rc_hash_bytes(k, 8);
        if (hits[h & (N - 1)] < 255)
            hits[h & (N - 1)]++;
    }
    for (int i = 0; i < N; i++)
        empty += hits[i] == 0;
    frac = (double)empty / N;
    assert_true(frac < 0.38);
    rc_free(hits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_keys_differing_in_length_and_zero_bytes),
        cmocka_unit_test(test_growth_iteration_shrink),
        cmocka_unit_test(test_drain_through_first),
        cmocka_unit_test(test_oscillation_does_not_thrash),
        cmocka_unit_test(test_hash_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
