/*
 * test_rooms.c: src/rooms.c, black-box through include/roomcast/rooms.h.
 *
 * Join/leave and their idempotence, leave_all, is_member, counts, the order and number of
 * on_room_open/on_room_close, rc_room_foreach while the callback makes the visited member leave
 * this room or all rooms (including the last member, which frees the room mid-walk), nested walks,
 * joins during a walk, no heap growth in steady-state join/leave, and 10,000 members x 100 rooms
 * driven at random against a plain bitmap model (rc_rooms_membership_count included). Every test
 * ends with zero rooms and zero memberships.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>

#include <cmocka.h>

#include "roomcast/common.h"
#include "roomcast/rooms.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

typedef struct sock {
    int id;
    int visits;
    rc_room_member rm;
} sock;

static sock *sock_of(rc_room_member *m) { return RC_CONTAINER_OF(m, sock, rm); }

enum { EV_OPEN = 1, EV_CLOSE = 2 };

typedef struct ev {
    int kind;
    char room[32];
    size_t size_in_cb;   /* rc_room_size(find(room)) seen from the callback, or (size_t)-1 if absent */
    size_t count_in_cb;  /* rc_rooms_count seen from the callback */
} ev;

typedef struct recorder {
    rc_rooms *rooms;
    ev evs[64];
    int n;
    int opens, closes;
    const char *rejoin_on_close;   /* room to join from on_room_close, once */
    rc_room_member *rejoiner;
} recorder;

static void rec_push(recorder *r, int kind, const char *room)
{
    r->opens += kind == EV_OPEN;
    r->closes += kind == EV_CLOSE;
    if (r->n >= (int)RC_ARRAY_LEN(r->evs))
        return;
    ev *e = &r->evs[r->n++];
    e->kind = kind;
    snprintf(e->room, sizeof(e->room), "%s", room);
    rc_room *rm = r->rooms ? rc_rooms_find(r->rooms, room) : NULL;
    e->size_in_cb = rm ? rc_room_size(rm) : (size_t)-1;
    e->count_in_cb = r->rooms ? rc_rooms_count(r->rooms) : 0;
}

static void on_open(void *arg, const char *room) { rec_push(arg, EV_OPEN, room); }

static void on_close(void *arg, const char *room)
{
    recorder *r = arg;
    rec_push(r, EV_CLOSE, room);
    if (r->rejoin_on_close && strcmp(room, r->rejoin_on_close) == 0) {
        r->rejoin_on_close = NULL;
        assert_int_equal(rc_rooms_join(r->rooms, r->rejoiner, room), 1);
    }
}

static rc_rooms *new_recorded(recorder *r)
{
    memset(r, 0, sizeof(*r));
    rc_rooms_callbacks cb = {on_open, on_close, r};
    r->rooms = rc_rooms_new(&cb);
    return r->rooms;
}

static void finish(rc_rooms *rs)
{
    assert_int_equal(rc_rooms_count(rs), 0);
    assert_int_equal(rc_rooms_membership_count(rs), 0);
    rc_rooms_free(rs);
}

/* ---- basics --------------------------------------------------------------------------------- */

static void test_join_leave_idempotent(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock a = {.id = 1}, b = {.id = 2};

    assert_int_equal(rc_rooms_join(rs, &a.rm, "lobby"), 1);
    assert_int_equal(rc_rooms_join(rs, &a.rm, "lobby"), 0);
    assert_int_equal(rc_rooms_join(rs, &b.rm, "lobby"), 1);
    assert_int_equal(rc_rooms_join(rs, &a.rm, "game:7"), 1);
    assert_int_equal(rc_rooms_join(rs, &a.rm, ""), 1);   /* empty name is a name */

    assert_int_equal(rc_rooms_count(rs), 3);
    assert_int_equal(rc_rooms_membership_count(rs), 4);
    assert_int_equal(a.rm.count, 3);
    assert_int_equal(b.rm.count, 1);
    rc_room *lobby = rc_rooms_find(rs, "lobby");
    assert_non_null(lobby);
    assert_string_equal(rc_room_name(lobby), "lobby");
    assert_int_equal(rc_room_size(lobby), 2);
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "game:7")), 1);
    assert_null(rc_rooms_find(rs, "lobb"));

    assert_true(rc_rooms_is_member(rs, &a.rm, "lobby"));
    assert_true(rc_rooms_is_member(rs, &b.rm, "lobby"));
    assert_true(rc_rooms_is_member(rs, &a.rm, ""));
    assert_false(rc_rooms_is_member(rs, &b.rm, "game:7"));
    assert_false(rc_rooms_is_member(rs, &b.rm, "nowhere"));

    assert_int_equal(rc_rooms_leave(rs, &b.rm, "game:7"), 0);   /* room exists, not a member */
    assert_int_equal(rc_rooms_leave(rs, &b.rm, "nowhere"), 0);  /* no such room */
    assert_int_equal(rc_rooms_leave(rs, &a.rm, "lobby"), 1);
    assert_int_equal(rc_rooms_leave(rs, &a.rm, "lobby"), 0);
    assert_false(rc_rooms_is_member(rs, &a.rm, "lobby"));
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "lobby")), 1);
    assert_int_equal(a.rm.count, 2);

    assert_int_equal(rc_rooms_leave(rs, &b.rm, "lobby"), 1);   /* last one: room goes */
    assert_null(rc_rooms_find(rs, "lobby"));
    assert_int_equal(rc_rooms_count(rs), 2);
    assert_null(b.rm.first);
    assert_int_equal(b.rm.count, 0);

    /* rejoining a freed room makes a fresh one */
    assert_int_equal(rc_rooms_join(rs, &b.rm, "lobby"), 1);
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "lobby")), 1);

    rc_rooms_leave_all(rs, &a.rm);
    rc_rooms_leave_all(rs, &b.rm);
    rc_rooms_leave_all(rs, &b.rm);   /* no-op */
    assert_int_equal(r.opens, 4);
    assert_int_equal(r.closes, 4);
    finish(rs);
}

static void test_leave_all(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock a = {.id = 1}, b = {.id = 2};
    char name[24];

    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        rc_rooms_join(rs, &a.rm, name);
        if (i % 2)
            rc_rooms_join(rs, &b.rm, name);
    }
    assert_int_equal(a.rm.count, 50);
    assert_int_equal(rc_rooms_count(rs), 50);

    assert_int_equal(rc_rooms_membership_count(rs), 75);
    rc_rooms_leave_all(rs, &a.rm);
    assert_null(a.rm.first);
    assert_int_equal(a.rm.count, 0);
    assert_int_equal(rc_rooms_count(rs), 25);   /* the rooms b is in remain */
    assert_int_equal(rc_rooms_membership_count(rs), 25);
    assert_int_equal(r.closes, 25);
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        assert_false(rc_rooms_is_member(rs, &a.rm, name));
        rc_room *room = rc_rooms_find(rs, name);
        if (i % 2) {
            assert_non_null(room);
            assert_int_equal(rc_room_size(room), 1);
        } else {
            assert_null(room);
        }
    }
    rc_rooms_leave_all(rs, &b.rm);
    assert_int_equal(r.opens, 50);
    assert_int_equal(r.closes, 50);
    finish(rs);
}

static void collect_name(void *arg, const char *room)
{
    char *buf = arg;
    strcat(buf, room);
    strcat(buf, ";");
}

static void test_member_foreach_room(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);   /* no callbacks */
    sock a = {.id = 1};
    char buf[64] = "";

    rc_member_foreach_room(&a.rm, collect_name, buf);   /* all-zero member: in no room */
    assert_string_equal(buf, "");
    rc_rooms_join(rs, &a.rm, "x");
    rc_rooms_join(rs, &a.rm, "y");
    rc_rooms_join(rs, &a.rm, "z");
    rc_rooms_leave(rs, &a.rm, "y");
    rc_member_foreach_room(&a.rm, collect_name, buf);
    assert_true(strcmp(buf, "x;z;") == 0 || strcmp(buf, "z;x;") == 0);
    rc_rooms_leave_all(rs, &a.rm);
    finish(rs);
}

/* rc_rooms_foreach_name: every room with a member, once; a room whose last member left is gone. */
static void test_foreach_name(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    sock a = {.id = 1}, b = {.id = 2};
    char buf[64] = "";
    rc_rooms_foreach_name(rs, collect_name, buf);
    assert_string_equal(buf, "");
    rc_rooms_join(rs, &a.rm, "x");
    rc_rooms_join(rs, &b.rm, "x");
    rc_rooms_join(rs, &b.rm, "y");
    rc_rooms_join(rs, &a.rm, "z");
    rc_rooms_leave(rs, &a.rm, "z");
    rc_rooms_foreach_name(rs, collect_name, buf);
    assert_true(strcmp(buf, "x;y;") == 0 || strcmp(buf, "y;x;") == 0);
    rc_rooms_leave_all(rs, &a.rm);
    rc_rooms_leave_all(rs, &b.rm);
    finish(rs);
}

static void test_leave_by_name_both_shapes(void **state)
{
    /* one member in many one-member rooms, and one room with many members: leave(name) must
     * find the node either way (walking the shorter list) */
    rc_rooms *rs = rc_rooms_new(NULL);
    enum { N = 2000 };
    sock *s = rc_calloc(N, sizeof(*s));
    sock solo = {.id = -1};
    char name[24];

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "own:%d", i);
        rc_rooms_join(rs, &solo.rm, name);
        rc_rooms_join(rs, &s[i].rm, "big");
    }
    rc_rooms_join(rs, &solo.rm, "big");
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "big")), N + 1);
    assert_int_equal(solo.rm.count, N + 1);
    for (int i = 0; i < N; i += 3) {
        snprintf(name, sizeof(name), "own:%d", i);
        assert_int_equal(rc_rooms_leave(rs, &solo.rm, name), 1);
        assert_int_equal(rc_rooms_leave(rs, &s[i].rm, "big"), 1);
        assert_int_equal(rc_rooms_leave(rs, &s[i].rm, name), 0);
    }
    assert_int_equal(rc_rooms_leave(rs, &solo.rm, "big"), 1);
    assert_int_equal(rc_rooms_leave(rs, &solo.rm, "big"), 0);
    for (int i = 0; i < N; i++)
        rc_rooms_leave_all(rs, &s[i].rm);
    rc_rooms_leave_all(rs, &solo.rm);
    finish(rs);
    rc_free(s);
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static void test_callback_order_and_state(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock a = {.id = 1}, b = {.id = 2};

    rc_rooms_join(rs, &a.rm, "r1");   /* open r1 */
    rc_rooms_join(rs, &b.rm, "r1");   /* nothing */
    rc_rooms_join(rs, &b.rm, "r2");   /* open r2 */
    rc_rooms_leave(rs, &a.rm, "r1");  /* nothing */
    rc_rooms_leave_all(rs, &b.rm);    /* close r1 and r2 (member-list order: r2 first) */

    assert_int_equal(r.n, 4);
    assert_int_equal(r.evs[0].kind, EV_OPEN);
    assert_string_equal(r.evs[0].room, "r1");
    assert_int_equal(r.evs[0].size_in_cb, 1);     /* open fires after the member is linked */
    assert_int_equal(r.evs[0].count_in_cb, 1);
    assert_int_equal(r.evs[1].kind, EV_OPEN);
    assert_string_equal(r.evs[1].room, "r2");
    assert_int_equal(r.evs[1].size_in_cb, 1);
    assert_int_equal(r.evs[1].count_in_cb, 2);
    assert_int_equal(r.evs[2].kind, EV_CLOSE);
    assert_string_equal(r.evs[2].room, "r2");
    assert_int_equal(r.evs[2].size_in_cb, (size_t)-1);   /* close fires after removal */
    assert_int_equal(r.evs[2].count_in_cb, 1);
    assert_int_equal(r.evs[3].kind, EV_CLOSE);
    assert_string_equal(r.evs[3].room, "r1");
    assert_int_equal(r.evs[3].size_in_cb, (size_t)-1);
    assert_int_equal(r.evs[3].count_in_cb, 0);
    finish(rs);
}

static void test_join_from_on_room_close(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock a = {.id = 1}, b = {.id = 2};

    rc_rooms_join(rs, &a.rm, "r");
    r.rejoin_on_close = "r";
    r.rejoiner = &b.rm;
    rc_rooms_leave(rs, &a.rm, "r");   /* close r, whose callback joins b: a new r opens */
    assert_int_equal(r.n, 3);
    assert_int_equal(r.evs[1].kind, EV_CLOSE);
    assert_int_equal(r.evs[2].kind, EV_OPEN);
    rc_room *room = rc_rooms_find(rs, "r");
    assert_non_null(room);
    assert_int_equal(rc_room_size(room), 1);
    assert_true(rc_rooms_is_member(rs, &b.rm, "r"));
    assert_false(rc_rooms_is_member(rs, &a.rm, "r"));
    rc_rooms_leave_all(rs, &b.rm);
    finish(rs);
}

/* ---- foreach -------------------------------------------------------------------------------- */

typedef struct walk {
    rc_rooms *rooms;
    const char *room;
    int mode;
    int visits;
    sock *victim;          /* WALK_OTHER: leaves when the first member is visited */
    sock *newcomer;        /* WALK_JOIN */
} walk;

enum { WALK_COUNT, WALK_LEAVE_THIS, WALK_LEAVE_ALL, WALK_CLOSE_FREE, WALK_LEAVE_REJOIN, WALK_OTHER, WALK_JOIN, WALK_NESTED };

static void visit(void *arg, rc_room_member *m)
{
    walk *w = arg;
    sock *s = sock_of(m);
    s->visits++;
    w->visits++;
    switch (w->mode) {
    case WALK_LEAVE_THIS:
        assert_int_equal(rc_rooms_leave(w->rooms, m, w->room), 1);
        break;
    case WALK_LEAVE_ALL:
        rc_rooms_leave_all(w->rooms, m);
        break;
    case WALK_CLOSE_FREE:
        /* the owner leaves everything and frees itself at once: nothing may touch it after */
        rc_rooms_leave_all(w->rooms, m);
        rc_free(s);
        break;
    case WALK_LEAVE_REJOIN:
        assert_int_equal(rc_rooms_leave(w->rooms, m, w->room), 1);
        assert_int_equal(rc_rooms_join(w->rooms, m, w->room), 1);
        break;
    case WALK_OTHER:
        if (w->victim && s != w->victim) {
            assert_int_equal(rc_rooms_leave(w->rooms, &w->victim->rm, w->room), 1);
            w->victim = NULL;
        }
        break;
    case WALK_JOIN:
        if (w->newcomer) {
            assert_int_equal(rc_rooms_join(w->rooms, &w->newcomer->rm, w->room), 1);
            w->newcomer = NULL;
        }
        break;
    case WALK_NESTED:
        if (w->visits == 1) {
            /* an inner walk over the same room in which every visited member leaves */
            walk inner = {.rooms = w->rooms, .room = w->room, .mode = WALK_LEAVE_THIS};
            rc_room_foreach(rc_rooms_find(w->rooms, w->room), visit, &inner);
            w->visits += inner.visits;
        }
        break;
    default:
        break;
    }
}

static void fill(rc_rooms *rs, sock *s, int n, const char *room)
{
    for (int i = 0; i < n; i++) {
        s[i].id = i;
        s[i].visits = 0;
        rc_rooms_join(rs, &s[i].rm, room);
    }
}

static void test_foreach_plain(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    sock s[10];
    memset(s, 0, sizeof(s));
    fill(rs, s, 10, "r");
    walk w = {.rooms = rs, .room = "r", .mode = WALK_COUNT};
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);
    assert_int_equal(w.visits, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(s[i].visits, 1);
        rc_rooms_leave_all(rs, &s[i].rm);
    }
    finish(rs);
}

static void test_foreach_visited_leaves_this_room(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock s[8], other = {.id = 99};
    memset(s, 0, sizeof(s));
    fill(rs, s, 8, "r");
    rc_rooms_join(rs, &s[3].rm, "keep");
    rc_rooms_join(rs, &other.rm, "keep");

    walk w = {.rooms = rs, .room = "r", .mode = WALK_LEAVE_THIS};
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);   /* the last leave frees "r" mid-walk */
    assert_int_equal(w.visits, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(s[i].visits, 1);
    assert_null(rc_rooms_find(rs, "r"));
    assert_int_equal(r.closes, 1);
    assert_int_equal(s[3].rm.count, 1);
    assert_true(rc_rooms_is_member(rs, &s[3].rm, "keep"));
    for (int i = 0; i < 8; i++)
        assert_int_equal(s[i].rm.count, i == 3);

    /* nodes left during the walk went back to the free list: the room reopens fine */
    fill(rs, s, 8, "r");
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "r")), 8);
    for (int i = 0; i < 8; i++)
        rc_rooms_leave_all(rs, &s[i].rm);
    rc_rooms_leave_all(rs, &other.rm);
    assert_int_equal(r.opens, r.closes);
    finish(rs);
}

static void test_foreach_visited_leaves_all_rooms(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock s[6];
    memset(s, 0, sizeof(s));
    fill(rs, s, 6, "a");
    fill(rs, s, 6, "b");
    fill(rs, s, 3, "c");

    walk w = {.rooms = rs, .room = "a", .mode = WALK_LEAVE_ALL};
    rc_room_foreach(rc_rooms_find(rs, "a"), visit, &w);
    assert_int_equal(w.visits, 6);
    assert_int_equal(rc_rooms_count(rs), 0);
    assert_int_equal(r.opens, 3);
    assert_int_equal(r.closes, 3);
    for (int i = 0; i < 6; i++) {
        assert_null(s[i].rm.first);
        assert_int_equal(s[i].rm.count, 0);
    }
    finish(rs);
}

static void test_foreach_visited_frees_itself(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    for (int i = 0; i < 20; i++) {
        sock *s = rc_calloc(1, sizeof(*s));
        s->id = i;
        rc_rooms_join(rs, &s->rm, "all");
        rc_rooms_join(rs, &s->rm, i % 2 ? "odd" : "even");
    }
    walk w = {.rooms = rs, .room = "all", .mode = WALK_CLOSE_FREE};
    rc_room_foreach(rc_rooms_find(rs, "all"), visit, &w);   /* ASan: no use after free */
    assert_int_equal(w.visits, 20);
    assert_int_equal(r.closes, 3);
    finish(rs);
}

static void test_foreach_single_member_leaves(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock s = {.id = 1};
    rc_rooms_join(rs, &s.rm, "solo");
    walk w = {.rooms = rs, .room = "solo", .mode = WALK_LEAVE_THIS};
    rc_room_foreach(rc_rooms_find(rs, "solo"), visit, &w);
    assert_int_equal(w.visits, 1);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.evs[1].kind, EV_CLOSE);
    assert_int_equal(r.evs[1].size_in_cb, (size_t)-1);

    rc_rooms_join(rs, &s.rm, "solo");
    w.mode = WALK_LEAVE_ALL;
    w.visits = 0;
    rc_room_foreach(rc_rooms_find(rs, "solo"), visit, &w);
    assert_int_equal(w.visits, 1);
    assert_int_equal(r.closes, 2);
    finish(rs);
}

static void test_foreach_leave_and_rejoin(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    sock s[5];
    memset(s, 0, sizeof(s));
    fill(rs, s, 5, "r");
    walk w = {.rooms = rs, .room = "r", .mode = WALK_LEAVE_REJOIN};
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);
    assert_int_equal(w.visits, 5);   /* rejoined members are not visited again */
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "r")), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s[i].visits, 1);
        assert_int_equal(s[i].rm.count, 1);
        rc_rooms_leave_all(rs, &s[i].rm);
    }
    finish(rs);
}

static void test_foreach_other_member_leaves(void **state)
{
    /* beyond rooms.h's promise, but the implementation tolerates it: a member removed before
     * its turn is skipped */
    rc_rooms *rs = rc_rooms_new(NULL);
    sock s[5];
    memset(s, 0, sizeof(s));
    fill(rs, s, 5, "r");
    walk w = {.rooms = rs, .room = "r", .mode = WALK_OTHER, .victim = &s[0]};
    /* head insertion: s[4] is visited first, s[0] last */
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);
    assert_int_equal(w.visits, 4);
    assert_int_equal(s[0].visits, 0);
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "r")), 4);
    for (int i = 0; i < 5; i++)
        rc_rooms_leave_all(rs, &s[i].rm);
    finish(rs);
}

static void test_foreach_join_during_walk(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    sock s[4], late = {.id = 50};
    memset(s, 0, sizeof(s));
    fill(rs, s, 4, "r");
    walk w = {.rooms = rs, .room = "r", .mode = WALK_JOIN, .newcomer = &late};
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);
    assert_int_equal(w.visits, 4);
    assert_int_equal(late.visits, 0);
    assert_int_equal(rc_room_size(rc_rooms_find(rs, "r")), 5);
    for (int i = 0; i < 4; i++)
        rc_rooms_leave_all(rs, &s[i].rm);
    rc_rooms_leave_all(rs, &late.rm);
    finish(rs);
}

static void test_foreach_nested_same_room(void **state)
{
    recorder r;
    rc_rooms *rs = new_recorded(&r);
    sock s[6];
    memset(s, 0, sizeof(s));
    fill(rs, s, 6, "r");
    walk w = {.rooms = rs, .room = "r", .mode = WALK_NESTED};
    /* outer visits one member, the inner walk empties and closes the room; the outer walk then
     * finds only marked nodes and ends; the room is freed when the outer walk returns */
    rc_room_foreach(rc_rooms_find(rs, "r"), visit, &w);
    assert_int_equal(w.visits, 1 + 6);
    assert_int_equal(r.closes, 1);
    assert_null(rc_rooms_find(rs, "r"));
    finish(rs);
}

/* ---- no malloc in steady state -------------------------------------------------------------- */

extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

static void test_steady_state_does_not_allocate(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    enum { N = 300 };
    sock *s = rc_calloc(N, sizeof(*s));
    sock anchor = {.id = -1};

    rc_rooms_join(rs, &anchor.rm, "r");   /* keeps "r" alive */
    for (int i = 0; i < N; i++)
        rc_rooms_join(rs, &s[i].rm, "r");
    for (int i = 0; i < N; i++)
        rc_rooms_leave(rs, &s[i].rm, "r");

    size_t before = heap_in_use();
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++)
            rc_rooms_join(rs, &s[i].rm, "r");
        for (int i = N - 1; i >= 0; i--)
            assert_int_equal(rc_rooms_leave(rs, &s[i].rm, "r"), 1);
    }
    assert_int_equal(heap_in_use(), before);
    rc_rooms_leave_all(rs, &anchor.rm);
    finish(rs);
    rc_free(s);
}

static void test_free_detaches_remaining_members(void **state)
{
    rc_rooms *rs = rc_rooms_new(NULL);
    sock a = {.id = 1}, b = {.id = 2};
    rc_rooms_join(rs, &a.rm, "x");
    rc_rooms_join(rs, &a.rm, "y");
    rc_rooms_join(rs, &b.rm, "y");
    rc_rooms_free(rs);   /* contract violation, handled: members reset to all-zero */
    assert_null(a.rm.first);
    assert_int_equal(a.rm.count, 0);
    assert_null(b.rm.first);
    rc_rooms_free(NULL);
}

/* ---- randomized against a model -------------------------------------------------------------- */

enum { RM = 10000, RR = 100 };

typedef struct model {
    unsigned char in[RM][RR];
    unsigned room_size[RR];
    unsigned member_count[RM];
    unsigned live_rooms;
} model;

static uint64_t rng_state;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

typedef struct check_walk {
    const model *mdl;
    int room;
    sock *base;
    unsigned char *seen;
    size_t visits;
} check_walk;

static void check_visit(void *arg, rc_room_member *m)
{
    check_walk *cw = arg;
    sock *s = sock_of(m);
    int id = (int)(s - cw->base);
    assert_true(id >= 0 && id < RM);
    assert_true(cw->mdl->in[id][cw->room]);
    assert_int_equal(cw->seen[id], 0);
    cw->seen[id] = 1;
    cw->visits++;
}

typedef struct name_walk {
    const model *mdl;
    int member;
    unsigned n;
} name_walk;

static void check_name(void *arg, const char *room)
{
    name_walk *nw = arg;
    int r;
    assert_int_equal(sscanf(room, "room-%d", &r), 1);
    assert_true(r >= 0 && r < RR);
    assert_true(nw->mdl->in[nw->member][r]);
    nw->n++;
}

static void model_check(rc_rooms *rs, const model *mdl, sock *s, const recorder *rec)
{
    char name[24];
    unsigned char *seen = rc_malloc(RM);
    assert_int_equal(rc_rooms_count(rs), mdl->live_rooms);
    assert_int_equal((unsigned)(rec->opens - rec->closes), mdl->live_rooms);
    size_t memberships = 0;
    for (int r = 0; r < RR; r++) memberships += mdl->room_size[r];
    assert_int_equal(rc_rooms_membership_count(rs), memberships);
    for (int r = 0; r < RR; r++) {
        snprintf(name, sizeof(name), "room-%d", r);
        rc_room *room = rc_rooms_find(rs, name);
        if (!mdl->room_size[r]) {
            assert_null(room);
            continue;
        }
        assert_non_null(room);
        assert_int_equal(rc_room_size(room), mdl->room_size[r]);
        memset(seen, 0, RM);
        check_walk cw = {mdl, r, s, seen, 0};
        rc_room_foreach(room, check_visit, &cw);
        assert_int_equal(cw.visits, mdl->room_size[r]);
    }
    for (int i = 0; i < RM; i += 7) {
        assert_int_equal(s[i].rm.count, mdl->member_count[i]);
        name_walk nw = {mdl, i, 0};
        rc_member_foreach_room(&s[i].rm, check_name, &nw);
        assert_int_equal(nw.n, mdl->member_count[i]);
    }
    rc_free(seen);
}

static void model_leave(model *mdl, int i, int r)
{
    mdl->in[i][r] = 0;
    mdl->member_count[i]--;
    if (--mdl->room_size[r] == 0)
        mdl->live_rooms--;
}

static void test_randomized_against_model(void **state)
{
    recorder rec;
    rc_rooms *rs = new_recorded(&rec);
    rec.rooms = NULL;   /* skip the per-event lookups: counts only */
    model *mdl = rc_calloc(1, sizeof(*mdl));
    sock *s = rc_calloc(RM, sizeof(*s));
    char name[24];
    enum { OPS = 400000, CHECK_EVERY = 50000 };

    rng_state = 0x2545f4914f6cdd1dull;
    for (int op = 1; op <= OPS; op++) {
        int i = (int)(rng() % RM);
        int r = (int)(rng() % RR);
        unsigned dice = rng() % 100;
        snprintf(name, sizeof(name), "room-%d", r);
        if (dice < 55) {
            int got = rc_rooms_join(rs, &s[i].rm, name);
            assert_int_equal(got, !mdl->in[i][r]);
            if (got) {
                mdl->in[i][r] = 1;
                mdl->member_count[i]++;
                if (mdl->room_size[r]++ == 0)
                    mdl->live_rooms++;
            }
        } else if (dice < 90) {
            int got = rc_rooms_leave(rs, &s[i].rm, name);
            assert_int_equal(got, mdl->in[i][r]);
            if (got)
                model_leave(mdl, i, r);
        } else if (dice < 92) {
            rc_rooms_leave_all(rs, &s[i].rm);
            for (int k = 0; k < RR; k++) {
                if (mdl->in[i][k])
                    model_leave(mdl, i, k);
            }
            assert_int_equal(s[i].rm.count, 0);
        } else {
            assert_int_equal(rc_rooms_is_member(rs, &s[i].rm, name), mdl->in[i][r]);
            assert_int_equal(s[i].rm.count, mdl->member_count[i]);
        }
        if (op % CHECK_EVERY == 0)
            model_check(rs, mdl, s, &rec);
    }
    /* everyone leaves; every room closes exactly once over the run */
    for (int i = 0; i < RM; i++)
        rc_rooms_leave_all(rs, &s[i].rm);
    assert_int_equal(rec.opens, rec.closes);
    finish(rs);
    rc_free(s);
    rc_free(mdl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_leave_idempotent),
        cmocka_unit_test(test_leave_all),
        cmocka_unit_test(test_member_foreach_room),
        cmocka_unit_test(test_foreach_name),
        cmocka_unit_test(test_leave_by_name_both_shapes),
        cmocka_unit_test(test_callback_order_and_state),
        cmocka_unit_test(test_join_from_on_room_close),
        cmocka_unit_test(test_foreach_plain),
        cmocka_unit_test(test_foreach_visited_leaves_this_room),
        cmocka_unit_test(test_foreach_visited_leaves_all_rooms),
        cmocka_unit_test(test_foreach_visited_frees_itself),
        cmocka_unit_test(test_foreach_single_member_leaves),
        cmocka_unit_test(test_foreach_leave_and_rejoin),
        cmocka_unit_test(test_foreach_other_member_leaves),
        cmocka_unit_test(test_foreach_join_during_walk),
        cmocka_unit_test(test_foreach_nested_same_room),
        cmocka_unit_test(test_steady_state_does_not_allocate),
        cmocka_unit_test(test_free_detaches_remaining_members),
        cmocka_unit_test(test_randomized_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
