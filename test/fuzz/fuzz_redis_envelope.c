/*
 * fuzz_redis_envelope.c: the JSON envelopes a node reads from its room channels (DESIGN.md
 * section 3: event/data/args/except/id/origin, control ops, base64 attachments), as published by
 * any backend. Includes src/backplane_redis.c to reach its parser (bp_deliver) with a backplane
 * that never connects (a closed port): no Redis is needed. Every delivered message is checked
 * for the contract the node relies on.
 *
 * fuzz-excludes: backplane_redis
 */
#include "../../src/backplane_redis.c"

#include "roomcast/config.h"

static redis_bp *fz_bp;
static bp_chan *fz_room;

static void fz_on_message(void *arg, const rc_bp_message *m)
{
    (void)arg;
    if (!m->ns || strcmp(m->ns, "/") != 0 || !m->room || strcmp(m->room, "r1") != 0) abort();
    if (m->kind == RC_BP_EMIT) {
        if (!m->event || !m->event[0] || !m->args_json || m->args_json[0] != '[') abort();
        if (strlen(m->args_json) != m->args_len) abort();
        for (size_t i = 0; i < m->attachment_count; i++)
            if (m->attachments[i].len && !m->attachments[i].data) abort();
    } else if (m->kind == RC_BP_JOIN || m->kind == RC_BP_LEAVE) {
        if (!m->target_room || !m->target_room[0]) abort();
    }
    for (size_t i = 0; i < m->except_count; i++)
        if (!m->except[i]) abort();
}

static void fz_on_state(void *arg, int up) { (void)arg; (void)up; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz_bp) {
        static rc_config cfg;
        static rc_backplane_callbacks cb = {fz_on_message, fz_on_state, NULL, NULL};
        cfg.redis_url = (char *)"redis://127.0.0.1:1";
        cfg.prefix = (char *)"roomcast";
        cfg.node_id = (char *)"fuzz-node";
        struct event_base *base = event_base_new();
        rc_backplane *b = rc_backplane_redis_new(base, &cfg, &cb);
        if (!b) abort();
        fz_bp = to_bp(b);
        redis_room_open(b, "/", "r1");
        rc_hmap_node *n = rc_hmap_find(&fz_bp->chans, "roomcast:room:/:r1", 18);
        if (!n) abort();
        fz_room = RC_CONTAINER_OF(n, bp_chan, node);
    }
    bp_deliver(fz_bp, fz_room, (const char *)data, size);
    return 0;
}
