/*
 * fuzz_redis_envelope.c: the JSON envelopes a node reads from its room channels (docs/redis.md,
 * section 3: event/data/args/except/id/origin, control ops, base64 attachments), as published by
 * any backend. Calls the envelope codec (src/backplane_envelope.c) directly: no Redis, no event
 * loop. Every accepted message is checked for the contract the node relies on, then encoded as
 * another node would publish it and decoded again, which must give back the same message.
 */
#include "../../src/backplane_envelope.h"

#include <stdlib.h>
#include <string.h>

static void fz_check(const rc_bp_message *m)
{
    if (m->ns || m->room) abort(); /* the channel's, set by the backplane */
    if (m->kind == RC_BP_EMIT) {
        if (!m->event || !m->event[0] || !m->args_json || m->args_json[0] != '[') abort();
        if (strlen(m->args_json) != m->args_len) abort();
        for (size_t i = 0; i < m->attachment_count; i++)
            if (m->attachments[i].len && !m->attachments[i].data) abort();
    } else if (m->kind == RC_BP_JOIN || m->kind == RC_BP_LEAVE) {
        if (!m->target_room || !m->target_room[0]) abort();
    } else if (m->kind != RC_BP_DISCONNECT) {
        abort();
    }
    for (size_t i = 0; i < m->except_count; i++)
        if (!m->except[i]) abort();
}

static int fz_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* b is a decoded re-encoding of a: the same message apart from origin. */
static void fz_check_same(const rc_bp_message *a, const rc_bp_message *b)
{
    if (a->kind != b->kind || !fz_str_eq(a->event, b->event) ||
        !fz_str_eq(a->target_room, b->target_room) || !fz_str_eq(a->id, b->id))
        abort();
    if (a->args_len != b->args_len || (a->args_len && memcmp(a->args_json, b->args_json, a->args_len)))
        abort();
    if (a->except_count != b->except_count) abort();
    for (size_t i = 0; i < a->except_count; i++)
        if (strcmp(a->except[i], b->except[i]) != 0) abort();
    if (a->attachment_count != b->attachment_count) abort();
    for (size_t i = 0; i < a->attachment_count; i++)
        if (a->attachments[i].len != b->attachments[i].len ||
            (a->attachments[i].len &&
             memcmp(a->attachments[i].data, b->attachments[i].data, a->attachments[i].len)))
            abort();
    if (!fz_str_eq(b->origin, "other-node")) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_envelope env, again;
    bp_buf out = {0};

    int verdict = bp_envelope_decode(&env, (const char *)data, size, "fuzz-node");
    if (verdict == BP_ENVELOPE_INVALID && !env.why) abort();
    if (verdict == BP_ENVELOPE_OK) {
        fz_check(&env.msg);
        if (bp_envelope_encode(&out, &env.msg, "other-node") != 0) abort();
        if (bp_envelope_decode(&again, out.p, out.len, "fuzz-node") != BP_ENVELOPE_OK) abort();
        fz_check_same(&env.msg, &again.msg);
        bp_envelope_dispose(&again);
    }
    bp_envelope_dispose(&env);
    bp_buf_dispose(&out);
    return 0;
}
