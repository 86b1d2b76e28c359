/*
 * fuzz_eio_payload.c: libFuzzer target for src/eio_codec.c.
 *
 * Properties checked on every input (abort() marks a finding):
 *   - rc_eio_decode_text and rc_eio_payload_decode never read outside the input (ASan), return
 *     only 0, -1 or the callback's value, and hand out well-formed packets;
 *   - a body that decodes is canonical: appending its packets again with
 *     rc_eio_payload_append reproduces the input byte for byte;
 *   - base64: a string that decodes re-encodes to itself, and encode/decode round-trips.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/common.h"
#include "roomcast/eio_codec.h"

typedef struct reencode {
    struct evbuffer *out;
    const char *lo, *hi;
    size_t n;
    size_t stop_at;  /* 0: never stop */
} reencode;

static int on_packet(void *arg, const rc_eio_packet *p)
{
    reencode *r = arg;
    if (p->type < RC_EIO_OPEN || p->type > RC_EIO_NOOP) abort();
    if (p->binary && p->type != RC_EIO_MESSAGE) abort();
    if (!p->binary && ((const char *)p->data < r->lo || (const char *)p->data + p->len > r->hi))
        abort();
    /* Touch every byte so ASan sees the whole view. */
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < p->len; i++) sum ^= p->data[i];
    (void)sum;
    rc_eio_payload_append(r->out, r->n == 0, p->type, p->binary, p->data, p->len);
    r->n++;
    return r->stop_at && r->n == r->stop_at ? 99 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    rc_eio_packet p;
    if (rc_eio_decode_text(s, size, &p) == 0) {
        if (p.binary || p.data != data + 1 || p.len != size - 1) abort();
    }

    reencode r = {evbuffer_new(), s, s + size, 0, size % 11};
    int rc = rc_eio_payload_decode(s, size, on_packet, &r);
    if (rc != 0 && rc != -1 && rc != 99) abort();
    if (rc == 99 && r.n != r.stop_at) abort();
    if (rc == 0) {
        if (evbuffer_get_length(r.out) != size) abort();
        if (size && memcmp(evbuffer_pullup(r.out, -1), data, size) != 0) abort();
    }
    evbuffer_free(r.out);

    uint8_t *dec = malloc(size / 4 * 3 + 1);
    long n = rc_base64_decode(s, size, dec);
    if (n >= 0) {
        char *enc = malloc(rc_base64_encoded_len((size_t)n) + 1);
        size_t en = rc_base64_encode(dec, (size_t)n, enc);
        if (en != size || memcmp(enc, data, size) != 0) abort();
        free(enc);
    }
    free(dec);

    char *enc = malloc(rc_base64_encoded_len(size) + 1);
    size_t en = rc_base64_encode(data, size, enc);
    if (en != rc_base64_encoded_len(size) || enc[en] != '\0') abort();
    uint8_t *back = malloc(en / 4 * 3 + 1);
    if (rc_base64_decode(enc, en, back) != (long)size || (size && memcmp(back, data, size) != 0))
        abort();
    free(back);
    free(enc);
    return 0;
}
