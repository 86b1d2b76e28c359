/*
 * fuzz_jwt.c: libFuzzer target for rc_auth_verify() (src/auth.c).
 *
 * Each input is used twice:
 *   1. as a token, verified under a fixed HS256 config and under a fixed ES256/RS256 config
 *      (public key below; its private half is not in the tree). This drives the shape, header
 *      and alg checks and libjwt's HMAC and PEM verification paths with arbitrary bytes.
 *   2. as a claim set: the target wraps it in an HS256 header and signs it with the config's
 *      secret, so the bytes get past the signature and into libjwt's JSON parser and our claim
 *      checks. Such a token is correctly signed, so it may never be refused with
 *      bad_signature, alg_not_allowed or missing_token; that is checked (abort on violation).
 *
 * Invariants checked on every call: a failure leaves the result zeroed; a success gives a
 * non-empty user id and a claims_json that is a JSON object; every status has a reason.
 *
 * Build and run (see the Makefile's fuzz target):
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude test/fuzz/fuzz_jwt.c src/auth.c \
 *         src/common.c -ljwt -lcjson -lssl -lcrypto -o build/tmp/fuzz_jwt
 *   build/tmp/fuzz_jwt -max_total_time=20 test/fuzz/corpus/jwt
 */
#include "roomcast/auth.h"
#include "roomcast/common.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NOW ((time_t)1700000000)
#define FUZZ_SECRET "roomcast-fuzz-secret"
#define FUZZ_MAX_TOKEN 8192

static const char fuzz_ec_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEFcqLNWHplPadBK+fNN1S5hczN0ce\n"
    "EQ9+TV6SnGEQYIjRuFbdu2eAkfAfPWJ2yj7PDJIhq1jpq2oDJHeLwhPa9g==\n"
    "-----END PUBLIC KEY-----\n";

static const rc_auth_config fuzz_hs = {
    .algs = RC_ALG_HS256,
    .hs_secret = (char *)FUZZ_SECRET,
    .hs_secret_len = sizeof(FUZZ_SECRET) - 1,
    .leeway_s = 30,
    .issuer = (char *)"https://id.example",
    .audience = (char *)"roomcast",
};

static const rc_auth_config fuzz_pk = {
    .algs = RC_ALG_ES256 | RC_ALG_RS256 | RC_ALG_HS256, /* HS256 allowed, but no secret */
    .public_key_pem = (char *)fuzz_ec_pub,
    .public_key_pem_len = sizeof(fuzz_ec_pub) - 1,
    .leeway_s = 30,
    .user_claim = (char *)"userId",
};

static void fuzz_fail(const char *what, rc_auth_status st)
{
    fprintf(stderr, "fuzz_jwt: invariant broken: %s (status %s)\n", what, rc_auth_reason(st));
    abort();
}

static rc_auth_status fuzz_verify(const rc_auth_config *cfg, const char *tok, size_t len)
{
    rc_auth_result r;
    rc_auth_status st = rc_auth_verify(cfg, tok, len, FUZZ_NOW, &r);

    if ((unsigned)st >= RC_AUTH__COUNT || !rc_auth_reason(st))
        fuzz_fail("status out of range", st);
    if (st != RC_AUTH_OK) {
        if (r.user_id || r.claims_json || r.exp)
            fuzz_fail("result not zeroed on failure", st);
        return st;
    }
    if (!r.user_id || !r.user_id[0] || !r.claims_json)
        fuzz_fail("empty result on success", st);
    cJSON *claims = cJSON_Parse(r.claims_json);
    if (!cJSON_IsObject(claims))
        fuzz_fail("claims_json is not an object", st);
    cJSON_Delete(claims);
    rc_auth_result_dispose(&r);
    return st;
}

static size_t fuzz_b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[n++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[n++] = abc[(acc << (6 - bits)) & 63];
    return n;
}

/* Wraps data as the payload of an HS256 token signed with FUZZ_SECRET. */
static void fuzz_signed_payload(const uint8_t *data, size_t size)
{
    static const char head[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char tok[FUZZ_MAX_TOKEN + 256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    size_t n;
    rc_auth_status st;

    if (size > 6100)
        return; /* the token could not fit in tok; 8 KiB is already past the limit */
    n = fuzz_b64url((const uint8_t *)head, sizeof(head) - 1, tok);
    tok[n++] = '.';
    n += fuzz_b64url(data, size, tok + n);
    if (!HMAC(EVP_sha256(), FUZZ_SECRET, (int)sizeof(FUZZ_SECRET) - 1, (const unsigned char *)tok,
              n, mac, &mac_len))
        abort();
    tok[n++] = '.';
    n += fuzz_b64url(mac, mac_len, tok + n);

    st = fuzz_verify(&fuzz_hs, tok, n);
    if (n > FUZZ_MAX_TOKEN) {
        if (st != RC_AUTH_MALFORMED)
            fuzz_fail("oversized token accepted", st);
    } else if (st == RC_AUTH_MISSING || st == RC_AUTH_ALG_NOT_ALLOWED ||
               st == RC_AUTH_BAD_SIGNATURE) {
        fuzz_fail("correctly signed token refused as unsigned or wrongly signed", st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* rc_auth_verify() reads exactly size bytes; ASan catches any read past them. */
    fuzz_verify(&fuzz_hs, (const char *)data, size);
    fuzz_verify(&fuzz_pk, (const char *)data, size);
    fuzz_signed_payload(data, size);
    return 0;
}
