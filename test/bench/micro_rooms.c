/*
 * micro_rooms.c: costs of the room index (src/rooms.c) on one core, no I/O.
 *
 *   join      N members into R rooms, each member in K rooms (hash lookup + duplicate check + link)
 *   walk      rc_room_foreach over a big room, ns per visited member (the broadcast fan-out loop)
 *   leave     rc_rooms_leave by name, then rc_rooms_leave_all
 *   churn     join+leave of one member in a live room (the free-list steady state)
 *   memory    heap bytes per membership, from mallinfo2 (glibc), rooms included and excluded
 *
 * Build and run (release flags, no sanitizers):
 *   gcc -std=c11 -D_GNU_SOURCE -Iinclude -O2 -g test/bench/micro_rooms.c src/rooms.c src/hmap.c \
 *       src/common.c -lssl -lcrypto -o build/micro_rooms && build/micro_rooms [members] [rooms] [per]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "roomcast/common.h"
#include "roomcast/rooms.h"

typedef struct sock {
    rc_room_member rm;
    uint64_t sent;
} sock;

static size_t heap_in_use(void) { return mallinfo2().uordblks; }

static void on_visit(void *arg, rc_room_member *m)
{
    RC_CONTAINER_OF(m, sock, rm)->sent++;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void report(const char *what, uint64_t ns, size_t ops)
{
    printf("%-34s %10zu ops %9.1f ns/op\n", what, ops, ops ? (double)ns / (double)ops : 0.0);
}

int main(int argc, char **argv)
{
    size_t nmembers = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nrooms = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t per = argc > 3 ? strtoul(argv[3], NULL, 10) : 4;
    sock *s = rc_calloc(nmembers, sizeof(*s));
    char (*names)[24] = rc_malloc(nrooms * sizeof(*names));
    uint32_t *pick = rc_malloc(nmembers * per * sizeof(*pick));

    for (size_t r = 0; r < nrooms; r++)
        snprintf(names[r], sizeof(names[r]), "room:%zu", r);
    for (size_t i = 0; i < nmembers * per; i++)
        pick[i] = rng() % (uint32_t)nrooms;

    printf("members %zu, rooms %zu, joins per member %zu; sizeof(rc_room_member) %zu\n",
           nmembers, nrooms, per, sizeof(rc_room_member));

    /* memory: one big room, no per-room cost beyond one header */
    {
        rc_rooms *rs = rc_rooms_new(NULL);
        size_t before = heap_in_use();
        for (size_t i = 0; i < nmembers; i++)
            rc_rooms_join(rs, &s[i].rm, "everyone");
        size_t after = heap_in_use();
        printf("%-34s %10.1f bytes/membership\n", "memory, one room", (double)(after - before) / (double)nmembers);

        uint64_t t0 = rc_now_mono_ns();
        size_t rounds = 20;
        for (size_t k = 0; k < rounds; k++)
            rc_room_foreach(rc_rooms_find(rs, "everyone"), on_visit, NULL);
        report("walk, per visited member", rc_now_mono_ns() - t0, rounds * nmembers);

        /* churn: a member joins and leaves a live room; no malloc after warm-up */
        sock extra = {{0}, 0};
        size_t churn = 1000000;
        size_t h0 = heap_in_use();
        t0 = rc_now_mono_ns();
        for (size_t k = 0; k < churn; k++) {
            rc_rooms_join(rs, &extra.rm, "everyone");
            rc_rooms_leave_all(rs, &extra.rm);
        }
        report("churn join+leave_all, live room", rc_now_mono_ns() - t0, churn);
        printf("%-34s %10zd bytes\n", "heap change during churn", (ssize_t)(heap_in_use() - h0));

        for (size_t i = 0; i < nmembers; i++)
            rc_rooms_leave_all(rs, &s[i].rm);
        rc_rooms_free(rs);
    }

    /* join / leave over many rooms */
    {
        rc_rooms *rs = rc_rooms_new(NULL);
        size_t before = heap_in_use();
        size_t joined = 0;
        uint64_t t0 = rc_now_mono_ns();
        for (size_t i = 0; i < nmembers; i++) {
            for (size_t k = 0; k < per; k++)
                joined += (size_t)rc_rooms_join(rs, &s[i].rm, names[pick[i * per + k]]);
        }
        uint64_t t1 = rc_now_mono_ns();
        size_t after = heap_in_use();
        report("join (cold: slabs, rooms, buckets)", t1 - t0, nmembers * per);
        printf("%-34s %10.1f bytes/membership (%zu memberships, %zu rooms)\n", "memory, rooms included",
               (double)(after - before) / (double)joined, joined, rc_rooms_count(rs));

        t0 = rc_now_mono_ns();
        size_t left = 0;
        for (size_t i = 0; i < nmembers; i++)
            left += (size_t)rc_rooms_leave(rs, &s[i].rm, names[pick[i * per]]);
        report("leave by name", rc_now_mono_ns() - t0, nmembers);

        t0 = rc_now_mono_ns();
        for (size_t i = 0; i < nmembers; i++) {
            for (size_t k = 0; k < per; k++)
                rc_rooms_join(rs, &s[i].rm, names[pick[i * per + k]]);
        }
        report("join (warm: free list)", rc_now_mono_ns() - t0, nmembers * per);

        t0 = rc_now_mono_ns();
        for (size_t i = 0; i < nmembers; i++)
            rc_rooms_leave_all(rs, &s[i].rm);
        report("leave_all, per membership", rc_now_mono_ns() - t0, joined);
        if (rc_rooms_count(rs) != 0 || left == 0) {
            fprintf(stderr, "micro_rooms: index not empty at the end\n");
            return 1;
        }
        rc_rooms_free(rs);
    }

    uint64_t total = 0;
    for (size_t i = 0; i < nmembers; i++)
        total += s[i].sent;
    printf("(checksum %llu)\n", (unsigned long long)total);
    rc_free(pick);
    rc_free(names);
    rc_free(s);
    return 0;
}
