/*
 * fuzz_sio_packet.c: libFuzzer target for src/sio_codec.c.
 *
 * Properties checked on every input (abort() marks a finding):
 *   - rc_sio_decode never reads outside the input (ASan), leaks nothing, sets a reason on
 *     failure and leaves no payload behind;
 *   - an accepted packet obeys the header contract (type range, namespace slice inside the
 *     input or the static "/", ack id of at most 15 digits, attachments only on 5/6, event set
 *     exactly for string-named events);
 *   - rc_sio_count_placeholders terminates on every accepted payload;
 *   - re-encoding (rc_sio_encode_header + cJSON_PrintUnformatted) decodes back to the same
 *     type, namespace, ack id, attachments and event name.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/common.h"
#include "roomcast/sio_codec.h"

static void check_round_trip(const rc_sio_packet *p)
{
    const cJSON *name = p->payload && cJSON_IsArray(p->payload) ? p->payload->child : NULL;
    /* 1e999 is a valid numeric event name (Infinity in JS) that cJSON prints as null. */
    if ((p->type == RC_SIO_EVENT || p->type == RC_SIO_BINARY_EVENT) && cJSON_IsNumber(name) &&
        !isfinite(name->valuedouble))
        return;

    char *nsp = rc_strndup(p->nsp.ptr, p->nsp.len);
    char *json = p->payload ? cJSON_PrintUnformatted(p->payload) : NULL;
    if (p->payload && !json) abort();
    size_t jl = json ? strlen(json) : 0;
    char *buf = rc_malloc(RC_SIO_HEADER_MAX + p->nsp.len + jl);
    size_t n = rc_sio_encode_header(buf, p->type, nsp, p->ack_id, p->attachments);
    if (n > RC_SIO_HEADER_MAX + p->nsp.len) abort();
    if (jl) memcpy(buf + n, json, jl);

    rc_sio_packet q;
    const char *err = NULL;
    if (rc_sio_decode(buf, n + jl, &q, &err) != 0) abort();
    if (q.type != p->type || q.ack_id != p->ack_id || q.attachments != p->attachments) abort();
    if (q.nsp.len != p->nsp.len || memcmp(q.nsp.ptr, p->nsp.ptr, p->nsp.len) != 0) abort();
    if (!q.event != !p->event || (p->event && strcmp(q.event, p->event) != 0)) abort();
    if (!q.payload != !p->payload) abort();
    rc_sio_packet_dispose(&q);

    rc_free(buf);
    cJSON_free(json);
    rc_free(nsp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    rc_sio_packet p;
    const char *err = NULL;

    if (rc_sio_decode(s, size, &p, &err) != 0) {
        if (!err || p.payload || p.event) abort();
        rc_sio_packet_dispose(&p);
        return 0;
    }

    if (p.type < RC_SIO_CONNECT || p.type > RC_SIO_BINARY_ACK) abort();
    if (p.nsp.len == 0 || p.nsp.ptr[0] != '/') abort();
    int in_input = p.nsp.ptr >= s && p.nsp.ptr + p.nsp.len <= s + size;
    if (!in_input && !(p.nsp.len == 1)) abort();
    if (p.ack_id < -1 || p.ack_id > 999999999999999LL) abort();
    int binary = p.type == RC_SIO_BINARY_EVENT || p.type == RC_SIO_BINARY_ACK;
    if (binary ? (p.attachments < 1 || p.attachments > RC_SIO_MAX_ATTACHMENTS) : p.attachments)
        abort();
    if ((p.type == RC_SIO_ACK || p.type == RC_SIO_BINARY_ACK) && p.ack_id < 0) abort();
    if (p.event) {
        const cJSON *name = cJSON_GetArrayItem(p.payload, 0);
        if (!cJSON_IsString(name) || name->valuestring != p.event) abort();
    }

    int count = rc_sio_count_placeholders(p.payload, p.attachments);
    if (count < -1) abort();

    check_round_trip(&p);
    rc_sio_packet_dispose(&p);
    return 0;
}
