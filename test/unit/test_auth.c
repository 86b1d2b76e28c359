/*
 * test_auth.c: unit tests for src/auth.c (JWT verification, include/roomcast/auth.h).
 *
 * Every reason code is produced at least once. Keys are generated when the group starts (RSA
 * 2048, EC P-256 and P-384, through the OpenSSL 3 API); tokens are signed by libjwt where it
 * can, and crafted by hand (base64url + HMAC or EVP_DigestSign) where the test needs a header
 * or signature libjwt would not produce: alg none, the HS256-with-public-key confusion, DER
 * versus raw ECDSA signatures, duplicate header names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "roomcast/auth.h"
#include "roomcast/common.h"

#include <cjson/cJSON.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW ((time_t)1700000000)
#define SECRET "correct horse battery staple"

/* ---- keys, made once for the whole group -------------------------------------------------- */

static struct {
    EVP_PKEY *rsa, *rsa2, *ec, *ec2, *ec384;
    char *rsa_priv, *rsa_pub, *rsa2_pub;
    char *ec_priv, *ec_pub, *ec2_pub, *ec384_priv, *ec384_pub;
} keys;

static char *bio_to_string(BIO *bio)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *s = rc_strndup(data, (size_t)n);

    BIO_free(bio);
    return s;
}

static char *pem_private(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());

    assert_int_equal(PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
    return bio_to_string(bio);
}

static char *pem_public(EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());

    assert_int_equal(PEM_write_bio_PUBKEY(bio, k), 1);
    return bio_to_string(bio);
}

static int group_setup(void **state)
{
    keys.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    keys.rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    keys.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    keys.ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    keys.ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (!keys.rsa || !keys.rsa2 || !keys.ec || !keys.ec2 || !keys.ec384)
        return -1;
    keys.rsa_priv = pem_private(keys.rsa);
    keys.rsa_pub = pem_public(keys.rsa);
    keys.rsa2_pub = pem_public(keys.rsa2);
    keys.ec_priv = pem_private(keys.ec);
    keys.ec_pub = pem_public(keys.ec);
    keys.ec2_pub = pem_public(keys.ec2);
    keys.ec384_priv = pem_private(keys.ec384);
    keys.ec384_pub = pem_public(keys.ec384);
    return 0;
}

static int group_teardown(void **state)
{
    EVP_PKEY_free(keys.rsa);
    EVP_PKEY_free(keys.rsa2);
    EVP_PKEY_free(keys.ec);
    EVP_PKEY_free(keys.ec2);
    EVP_PKEY_free(keys.ec384);
    rc_free(keys.rsa_priv);
    rc_free(keys.rsa_pub);
    rc_free(keys.rsa2_pub);
    rc_free(keys.ec_priv);
    rc_free(keys.ec_pub);
    rc_free(keys.ec2_pub);
    rc_free(keys.ec384_priv);
    rc_free(keys.ec384_pub);
    memset(&keys, 0, sizeof(keys));
    return 0;
}

/* ---- token builders ----------------------------------------------------------------------- */

static char *b64url(const void *data, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = rc_malloc(len / 3 * 4 + 5), *o = out;
    size_t i = 0;

    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = abc[(v >> 6) & 63];
        *o++ = abc[v & 63];
    }
    if (len - i == 1) {
        *o++ = abc[p[i] >> 2];
        *o++ = abc[(p[i] & 3) << 4];
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 8 | p[i + 1];
        *o++ = abc[v >> 10];
        *o++ = abc[(v >> 4) & 63];
        *o++ = abc[(v & 15) << 2];
    }
    *o = '\0';
    return out;
}

static char *b64url_str(const char *s)
{
    return b64url(s, strlen(s));
}

/* "b64(header).b64(payload)", the signing input. */
static char *signing_input(const char *header, const char *payload)
{
    char *h = b64url_str(header), *p = b64url_str(payload);
    char *in = rc_malloc(strlen(h) + strlen(p) + 2);

    sprintf(in, "%s.%s", h, p);
    rc_free(h);
    rc_free(p);
    return in;
}

static char *join_sig(char *input, const unsigned char *sig, size_t sig_len)
{
    char *s = b64url(sig, sig_len);
    char *tok = rc_malloc(strlen(input) + strlen(s) + 2);

    sprintf(tok, "%s.%s", input, s);
    rc_free(s);
    rc_free(input);
    return tok;
}

/* A token with any header, signed by HMAC with md and key; md NULL leaves the signature empty. */
static char *craft_hmac(const char *header, const char *payload, const EVP_MD *md, const char *key)
{
    char *input = signing_input(header, payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;

    if (md) {
        assert_non_null(HMAC(md, key, (int)strlen(key), (const unsigned char *)input,
                             strlen(input), mac, &mac_len));
    }
    return join_sig(input, mac, mac_len);
}

/* A token signed with OpenSSL directly. For EC keys, raw_ec chooses JOSE R||S (as RFC 7518
 * requires) over the DER that EVP_DigestSign produces. */
static char *craft_pkey(const char *header, const char *payload, EVP_PKEY *k, const EVP_MD *md,
                        int raw_ec, size_t ec_field_len)
{
    char *input = signing_input(header, payload);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[1024], raw[2 * 66];
    size_t der_len = sizeof(der);
    char *tok;

    assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input,
                                    strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    if (!raw_ec)
        return join_sig(input, der, der_len);

    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    assert_non_null(sig);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, (int)ec_field_len), ec_field_len);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + ec_field_len, (int)ec_field_len),
                     ec_field_len);
    ECDSA_SIG_free(sig);
    tok = join_sig(input, raw, 2 * ec_field_len);
    return tok;
}

/* A token made the ordinary way, by libjwt. key is an HMAC secret or a private key PEM. */
static char *lib_token(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *jwt = NULL;
    char *enc, *tok;

    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    enc = jwt_encode_str(jwt);
    assert_non_null(enc);
    tok = rc_strdup(enc);
    free(enc);
    jwt_free(jwt);
    return tok;
}

/* ---- configs and verification ------------------------------------------------------------- */

static rc_auth_config hs_cfg(unsigned algs)
{
    rc_auth_config c = {
        .algs = algs,
        .hs_secret = (char *)SECRET,
        .hs_secret_len = strlen(SECRET),
        .leeway_s = 30,
    };
    return c;
}

static rc_auth_config pk_cfg(unsigned algs, const char *pem)
{
    rc_auth_config c = {
        .algs = algs,
        .public_key_pem = (char *)pem,
        .public_key_pem_len = pem ? strlen(pem) : 0,
        .leeway_s = 30,
    };
    return c;
}

/* Verifies tok; on failure checks that the result was left zeroed. Frees tok. */
static rc_auth_status verify_tok(const rc_auth_config *cfg, char *tok, rc_auth_result *r)
{
    rc_auth_result junk = {(char *)"x", (char *)"y", 7};
    rc_auth_status st;

    *r = junk;
    st = rc_auth_verify(cfg, tok, strlen(tok), NOW, r);
    if (st != RC_AUTH_OK) {
        assert_null(r->user_id);
        assert_null(r->claims_json);
        assert_int_equal(r->exp, 0);
    } else {
        assert_non_null(r->user_id);
        assert_non_null(r->claims_json);
    }
    rc_free(tok);
    return st;
}

/* The status only; the result is disposed. */
static rc_auth_status check(const rc_auth_config *cfg, char *tok)
{
    rc_auth_result r;
    rc_auth_status st = verify_tok(cfg, tok, &r);

    rc_auth_result_dispose(&r);
    return st;
}

static char *hs256(const char *claims)
{
    return lib_token(JWT_ALG_HS256, SECRET, claims);
}

#define HDR_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define ALICE "{\"sub\":\"alice\"}"

/* ---- reason strings ------------------------------------------------------------------------ */

static void test_reasons(void **state)
{
    static const char *const want[RC_AUTH__COUNT] = {
        "ok", "missing_token", "malformed_token", "alg_not_allowed", "bad_signature",
        "expired", "not_yet_valid", "bad_issuer", "bad_audience", "missing_user_claim",
    };

    for (int i = 0; i < RC_AUTH__COUNT; i++)
        assert_string_equal(rc_auth_reason((rc_auth_status)i), want[i]);
    assert_ptr_equal(rc_auth_reason(RC_AUTH_EXPIRED), rc_auth_reason(RC_AUTH_EXPIRED));
    assert_string_equal(rc_auth_reason(RC_AUTH__COUNT), "unknown");
}

/* ---- missing and malformed ----------------------------------------------------------------- */

static void test_missing(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_result r = {(char *)"x", (char *)"y", 7};

    assert_int_equal(rc_auth_verify(&cfg, NULL, 10, NOW, &r), RC_AUTH_MISSING);
    assert_null(r.user_id);
    assert_int_equal(rc_auth_verify(&cfg, "abc", 0, NOW, &r), RC_AUTH_MISSING);
    assert_null(r.claims_json);
}

static void test_malformed_shape(void **state)
{
    static const char *const bad[] = {
        "abc", "a.b", "a.b.c.d", "..", "...", ".eyJ9.sig", "eyJ9..sig", "eyJ!.eyJ9.sig",
        "eyJ9.eyJ9.si+g", "eyJ9.eyJ9.si/g", "eyJ9=.eyJ9.sig", "eyJhbGciOiJIUzI1NiJ9.eyJ9.abcde",
        "e.eyJ9.sig", " eyJ9.eyJ9.sig", "eyJ9.eyJ9.sig\n",
    };
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_result r;

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        assert_int_equal(rc_auth_verify(&cfg, bad[i], strlen(bad[i]), NOW, &r),
                         RC_AUTH_MALFORMED);
    }
    /* A valid header with an empty payload: refused before libjwt (see test_rs_family). */
    char *h = b64url_str(HDR_HS256), empty_payload[128];
    snprintf(empty_payload, sizeof(empty_payload), "%s..c2ln", h);
    rc_free(h);
    assert_int_equal(rc_auth_verify(&cfg, empty_payload, strlen(empty_payload), NOW, &r),
                     RC_AUTH_MALFORMED);
    /* An embedded NUL inside the given length. */
    char *tok = hs256(ALICE);
    size_t len = strlen(tok);
    tok[5] = '\0';
    assert_int_equal(rc_auth_verify(&cfg, tok, len, NOW, &r), RC_AUTH_MALFORMED);
    rc_free(tok);
}

static void test_malformed_header(void **state)
{
    static const char *const bad[] = {
        "not json", "[\"HS256\"]", "\"HS256\"", "{}", "{\"alg\":256}", "{\"alg\":null}",
        "{\"alg\":\"HS256\"} trailing", "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{\"alg\":\"HS256\",\"typ\":5}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{\"alg\":\"HS256\"",
    };
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++)
        assert_int_equal(check(&cfg, craft_hmac(bad[i], ALICE, EVP_sha256(), SECRET)),
                         RC_AUTH_MALFORMED);
    /* A NUL inside the decoded header, after a valid object. */
    static const char nul_head[] = "{\"alg\":\"HS256\"}\0x";
    char *h = b64url(nul_head, sizeof(nul_head) - 1), *p = b64url_str(ALICE);
    char tok[256];
    snprintf(tok, sizeof(tok), "%s.%s.c2ln", h, p);
    assert_int_equal(check(&cfg, rc_strdup(tok)), RC_AUTH_MALFORMED);
    rc_free(h);
    rc_free(p);
    /* typ is compared without case, as libjwt does; "jwt" is fine. */
    rc_auth_result r;
    assert_int_equal(verify_tok(&cfg, craft_hmac("{\"alg\":\"HS256\",\"typ\":\"jwt\"}", ALICE,
                                                 EVP_sha256(), SECRET), &r), RC_AUTH_OK);
    rc_auth_result_dispose(&r);
}

/* Properly signed tokens whose payload libjwt or we cannot use. */
static void test_malformed_payload(void **state)
{
    static const char *const bad[] = {
        "not json", "[1,2]", "\"alice\"", "{\"sub\":\"alice\"", "{\"sub\":\"alice\",\"exp\":\"soon\"}",
        "{\"sub\":\"alice\",\"nbf\":true}", "{\"sub\":\"alice\",\"exp\":null}",
        "{\"sub\":\"\xff\xfe\"}", "{\"sub\":\"alice\",\"n\":123456789012345678901234567890}",
    };
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);

    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++)
        assert_int_equal(check(&cfg, craft_hmac(HDR_HS256, bad[i], EVP_sha256(), SECRET)),
                         RC_AUTH_MALFORMED);
}

static void test_max_length(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    char claims[8300];
    char *tok = NULL;
    size_t fill;

    /* Grow a filler claim until the token is as long as allowed (8192 or just under). */
    for (fill = 6000;; fill++) {
        char *t;
        int n = snprintf(claims, sizeof(claims), "{\"sub\":\"alice\",\"pad\":\"%0*d\"}",
                         (int)fill, 0);
        assert_true(n > 0 && (size_t)n < sizeof(claims));
        t = hs256(claims);
        if (strlen(t) > 8192) {
            rc_free(t);
            break;
        }
        rc_free(tok);
        tok = t;
    }
    assert_true(strlen(tok) >= 8189);
    assert_int_equal(check(&cfg, tok), RC_AUTH_OK);
    /* One more filler byte crosses the limit. */
    assert_int_equal(check(&cfg, hs256(claims)), RC_AUTH_MALFORMED);
}

/* ---- algorithms ---------------------------------------------------------------------------- */

static void test_hs_family(void **state)
{
    static const struct { jwt_alg_t alg; unsigned bit; } hs[] = {
        {JWT_ALG_HS256, RC_ALG_HS256}, {JWT_ALG_HS384, RC_ALG_HS384}, {JWT_ALG_HS512, RC_ALG_HS512},
    };
    rc_auth_config all = hs_cfg(RC_ALG_HS256 | RC_ALG_HS384 | RC_ALG_HS512);

    for (size_t i = 0; i < RC_ARRAY_LEN(hs); i++) {
        rc_auth_config only = hs_cfg(hs[i].bit);
        rc_auth_config other = hs_cfg((RC_ALG_HS256 | RC_ALG_HS384 | RC_ALG_HS512) & ~hs[i].bit);
        rc_auth_result r;

        assert_int_equal(verify_tok(&all, lib_token(hs[i].alg, SECRET, ALICE), &r), RC_AUTH_OK);
        assert_string_equal(r.user_id, "alice");
        rc_auth_result_dispose(&r);
        assert_null(r.user_id);
        assert_int_equal(check(&only, lib_token(hs[i].alg, SECRET, ALICE)), RC_AUTH_OK);
        assert_int_equal(check(&other, lib_token(hs[i].alg, SECRET, ALICE)),
                         RC_AUTH_ALG_NOT_ALLOWED);
        assert_int_equal(check(&all, lib_token(hs[i].alg, "another secret", ALICE)),
                         RC_AUTH_BAD_SIGNATURE);
    }
}

static void test_default_algs(void **state)
{
    rc_auth_config cfg = hs_cfg(0); /* all-zero allow-list: HS256 only */

    assert_int_equal(check(&cfg, hs256(ALICE)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, lib_token(JWT_ALG_HS512, SECRET, ALICE)),
                     RC_AUTH_ALG_NOT_ALLOWED);
}

static void test_bad_signature_hs(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    char *tok, *dot, *forged, *p;

    /* Payload swapped after signing. */
    tok = hs256(ALICE);
    dot = strchr(tok, '.');
    p = b64url_str("{\"sub\":\"admin\"}");
    forged = rc_malloc(strlen(tok) + strlen(p) + 1);
    sprintf(forged, "%.*s.%s%s", (int)(dot - tok), tok, p, strrchr(tok, '.'));
    assert_int_equal(check(&cfg, forged), RC_AUTH_BAD_SIGNATURE);
    rc_free(p);

    /* Signature truncated, emptied, or one character changed. */
    tok[strlen(tok) - 4] = '\0';
    assert_int_equal(check(&cfg, rc_strdup(tok)), RC_AUTH_BAD_SIGNATURE);
    strrchr(tok, '.')[1] = '\0';
    assert_int_equal(check(&cfg, rc_strdup(tok)), RC_AUTH_BAD_SIGNATURE);
    rc_free(tok);
    tok = hs256(ALICE);
    p = strrchr(tok, '.') + 1;
    *p = *p == 'A' ? 'B' : 'A';
    assert_int_equal(check(&cfg, tok), RC_AUTH_BAD_SIGNATURE);
}

static void test_rs_family(void **state)
{
    rc_auth_config cfg = pk_cfg(RC_ALG_RS256 | RC_ALG_RS512, keys.rsa_pub);
    rc_auth_config wrong = pk_cfg(RC_ALG_RS256, keys.rsa2_pub);
    rc_auth_config nokey = pk_cfg(RC_ALG_RS256, NULL);
    rc_auth_config eckey = pk_cfg(RC_ALG_RS256, keys.ec_pub);
    rc_auth_config hsonly = hs_cfg(RC_ALG_HS256 | RC_ALG_RS256);
    rc_auth_result r;

    assert_int_equal(verify_tok(&cfg, lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE), &r),
                     RC_AUTH_OK);
    assert_string_equal(r.user_id, "alice");
    rc_auth_result_dispose(&r);
    assert_int_equal(check(&cfg, lib_token(JWT_ALG_RS512, keys.rsa_priv, ALICE)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, lib_token(JWT_ALG_RS384, keys.rsa_priv, ALICE)),
                     RC_AUTH_ALG_NOT_ALLOWED);
    /* Signed by OpenSSL directly: interoperates. */
    assert_int_equal(check(&cfg, craft_pkey("{\"alg\":\"RS256\"}", ALICE, keys.rsa, EVP_sha256(),
                                            0, 0)), RC_AUTH_OK);
    /* Another key, no key, a key of the wrong type, a secret but no public key. */
    assert_int_equal(check(&wrong, lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE)),
                     RC_AUTH_BAD_SIGNATURE);
    assert_int_equal(check(&nokey, lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE)),
                     RC_AUTH_ALG_NOT_ALLOWED);
    assert_int_equal(check(&eckey, lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE)),
                     RC_AUTH_BAD_SIGNATURE);
    assert_int_equal(check(&hsonly, lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE)),
                     RC_AUTH_ALG_NOT_ALLOWED);
    /* An empty signature never reaches libjwt (its base64 decoder would write one byte into
     * a malloc(0) block: valgrind sees it, ASan does not). */
    char *tok = lib_token(JWT_ALG_RS256, keys.rsa_priv, ALICE);
    strrchr(tok, '.')[1] = '\0';
    assert_int_equal(check(&cfg, tok), RC_AUTH_BAD_SIGNATURE);
    /* Digest mismatch: RS256 header, SHA-512 signature. */
    assert_int_equal(check(&cfg, craft_pkey("{\"alg\":\"RS256\"}", ALICE, keys.rsa, EVP_sha512(),
                                            0, 0)), RC_AUTH_BAD_SIGNATURE);
}

static void test_es_family(void **state)
{
    rc_auth_config cfg = pk_cfg(RC_ALG_ES256, keys.ec_pub);
    rc_auth_config wrong = pk_cfg(RC_ALG_ES256, keys.ec2_pub);
    rc_auth_config rsakey = pk_cfg(RC_ALG_ES256, keys.rsa_pub);
    rc_auth_config p384 = pk_cfg(RC_ALG_ES384, keys.ec384_pub);
    rc_auth_result r;

    assert_int_equal(verify_tok(&cfg, lib_token(JWT_ALG_ES256, keys.ec_priv, ALICE), &r),
                     RC_AUTH_OK);
    assert_string_equal(r.user_id, "alice");
    rc_auth_result_dispose(&r);
    assert_int_equal(check(&p384, lib_token(JWT_ALG_ES384, keys.ec384_priv, ALICE)), RC_AUTH_OK);
    assert_int_equal(check(&wrong, lib_token(JWT_ALG_ES256, keys.ec_priv, ALICE)),
                     RC_AUTH_BAD_SIGNATURE);
    assert_int_equal(check(&rsakey, lib_token(JWT_ALG_ES256, keys.ec_priv, ALICE)),
                     RC_AUTH_BAD_SIGNATURE);
    /* libjwt wants JOSE raw R||S (64 bytes for P-256): an OpenSSL signature converted to it
     * verifies, the same signature left in DER does not. */
    assert_int_equal(check(&cfg, craft_pkey("{\"alg\":\"ES256\"}", ALICE, keys.ec, EVP_sha256(),
                                            1, 32)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, craft_pkey("{\"alg\":\"ES256\"}", ALICE, keys.ec, EVP_sha256(),
                                            0, 0)), RC_AUTH_BAD_SIGNATURE);
    assert_int_equal(check(&p384, craft_pkey("{\"alg\":\"ES384\"}", ALICE, keys.ec384,
                                             EVP_sha384(), 1, 48)), RC_AUTH_OK);
    /* A signature that is valid base64url but the wrong length for the curve. */
    char *tok = lib_token(JWT_ALG_ES256, keys.ec_priv, ALICE);
    tok[strlen(tok) - 3] = '\0';
    assert_int_equal(check(&cfg, tok), RC_AUTH_BAD_SIGNATURE);
}

static void test_alg_none(void **state)
{
    static const char *const heads[] = {
        "{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"alg\":\"none\"}", "{\"alg\":\"None\"}",
        "{\"alg\":\"NONE\",\"typ\":\"JWT\"}",
    };
    rc_auth_config hs = hs_cfg(0x1ff);
    rc_auth_config pk = pk_cfg(0x1ff, keys.rsa_pub);

    for (size_t i = 0; i < RC_ARRAY_LEN(heads); i++) {
        /* The classic unsigned token: header.payload. with an empty signature. */
        assert_int_equal(check(&hs, craft_hmac(heads[i], ALICE, NULL, NULL)),
                         RC_AUTH_ALG_NOT_ALLOWED);
        assert_int_equal(check(&pk, craft_hmac(heads[i], ALICE, NULL, NULL)),
                         RC_AUTH_ALG_NOT_ALLOWED);
        /* Or with some signature attached. */
        assert_int_equal(check(&hs, craft_hmac(heads[i], ALICE, EVP_sha256(), SECRET)),
                         RC_AUTH_ALG_NOT_ALLOWED);
    }
    /* What we guard against: libjwt without a key accepts it. */
    char *tok = craft_hmac(heads[0], ALICE, NULL, NULL);
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_decode(&jwt, tok, NULL, 0), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_NONE);
    jwt_free(jwt);
    rc_free(tok);
}

static void test_alg_unknown_or_case(void **state)
{
    static const char *const heads[] = {
        "{\"alg\":\"hs256\"}", "{\"alg\":\"Hs256\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"EdDSA\"}",
        "{\"alg\":\"\"}", "{\"alg\":\"HS256 \"}",
    };
    rc_auth_config cfg = hs_cfg(0x1ff);

    for (size_t i = 0; i < RC_ARRAY_LEN(heads); i++)
        assert_int_equal(check(&cfg, craft_hmac(heads[i], ALICE, EVP_sha256(), SECRET)),
                         RC_AUTH_ALG_NOT_ALLOWED);
}

/* An attacker takes the RSA public key (it is public) and uses its PEM text as an HMAC secret. */
static void test_alg_confusion(void **state)
{
    rc_auth_config rs_only = pk_cfg(RC_ALG_RS256, keys.rsa_pub);
    rc_auth_config both = pk_cfg(RC_ALG_HS256 | RC_ALG_RS256, keys.rsa_pub);
    char *tok = craft_hmac(HDR_HS256, "{\"sub\":\"admin\"}", EVP_sha256(), keys.rsa_pub);
    jwt_t *jwt = NULL;

    /* The token is dangerous: libjwt handed the public key accepts it as HS256. */
    assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)keys.rsa_pub,
                                (int)strlen(keys.rsa_pub)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);

    assert_int_equal(check(&rs_only, rc_strdup(tok)), RC_AUTH_ALG_NOT_ALLOWED);
    assert_int_equal(check(&both, rc_strdup(tok)), RC_AUTH_ALG_NOT_ALLOWED);
    rc_free(tok);

    /* The same trick through a duplicate "alg": cJSON reads the first, jansson the last. */
    tok = craft_hmac("{\"alg\":\"RS256\",\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", EVP_sha256(),
                     keys.rsa_pub);
    assert_int_equal(jwt_decode(&jwt, tok, (const unsigned char *)keys.rsa_pub,
                                (int)strlen(keys.rsa_pub)), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);
    assert_int_equal(check(&rs_only, tok), RC_AUTH_MALFORMED);
}

/* ---- time ---------------------------------------------------------------------------------- */

static char *timed(const char *claim, long long value)
{
    char claims[128];

    snprintf(claims, sizeof(claims), "{\"sub\":\"alice\",\"%s\":%lld}", claim, value);
    return hs256(claims);
}

static void test_exp_leeway(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256); /* leeway 30 */
    rc_auth_config strict = hs_cfg(RC_ALG_HS256);
    rc_auth_config negative = hs_cfg(RC_ALG_HS256);
    rc_auth_result r;

    strict.leeway_s = 0;
    negative.leeway_s = -100;
    assert_int_equal(verify_tok(&cfg, timed("exp", NOW + 3600), &r), RC_AUTH_OK);
    assert_int_equal(r.exp, NOW + 3600);
    rc_auth_result_dispose(&r);
    assert_int_equal(check(&cfg, timed("exp", NOW - 30)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, timed("exp", NOW - 31)), RC_AUTH_EXPIRED);
    assert_int_equal(check(&strict, timed("exp", NOW)), RC_AUTH_OK);
    assert_int_equal(check(&strict, timed("exp", NOW - 1)), RC_AUTH_EXPIRED);
    assert_int_equal(check(&negative, timed("exp", NOW)), RC_AUTH_OK);
    assert_int_equal(check(&negative, timed("exp", NOW - 1)), RC_AUTH_EXPIRED);
    assert_int_equal(check(&strict, hs256("{\"sub\":\"a\",\"exp\":1699999999.5}")),
                     RC_AUTH_EXPIRED);
    assert_int_equal(check(&strict, hs256("{\"sub\":\"a\",\"exp\":1700000000.5}")), RC_AUTH_OK);
    /* Absent exp: valid, reported as 0. Huge exp: clamped, not undefined. */
    assert_int_equal(verify_tok(&cfg, hs256(ALICE), &r), RC_AUTH_OK);
    assert_int_equal(r.exp, 0);
    rc_auth_result_dispose(&r);
    assert_int_equal(verify_tok(&cfg, hs256("{\"sub\":\"a\",\"exp\":1e300}"), &r), RC_AUTH_OK);
    assert_true(r.exp > 0);
    rc_auth_result_dispose(&r);
}

static void test_nbf_leeway(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_config strict = hs_cfg(RC_ALG_HS256);

    strict.leeway_s = 0;
    assert_int_equal(check(&cfg, timed("nbf", NOW - 3600)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, timed("nbf", NOW + 30)), RC_AUTH_OK);
    assert_int_equal(check(&cfg, timed("nbf", NOW + 31)), RC_AUTH_NOT_YET_VALID);
    assert_int_equal(check(&strict, timed("nbf", NOW)), RC_AUTH_OK);
    assert_int_equal(check(&strict, timed("nbf", NOW + 1)), RC_AUTH_NOT_YET_VALID);
}

/* ---- iss, aud, user ------------------------------------------------------------------------ */

static void test_issuer(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_config none = hs_cfg(RC_ALG_HS256);

    cfg.issuer = (char *)"https://id.example";
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"iss\":\"https://id.example\"}")),
                     RC_AUTH_OK);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"iss\":\"https://id.example/\"}")),
                     RC_AUTH_BAD_ISSUER);
    assert_int_equal(check(&cfg, hs256(ALICE)), RC_AUTH_BAD_ISSUER);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"iss\":7}")), RC_AUTH_BAD_ISSUER);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"iss\":[\"https://id.example\"]}")),
                     RC_AUTH_BAD_ISSUER);
    assert_int_equal(check(&none, hs256("{\"sub\":\"a\",\"iss\":\"anyone\"}")), RC_AUTH_OK);
}

static void test_audience(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_config none = hs_cfg(RC_ALG_HS256);

    cfg.audience = (char *)"roomcast";
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":\"roomcast\"}")), RC_AUTH_OK);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":[\"api\",\"roomcast\"]}")),
                     RC_AUTH_OK);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":\"roomcast2\"}")),
                     RC_AUTH_BAD_AUDIENCE);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":[\"api\",1,null]}")),
                     RC_AUTH_BAD_AUDIENCE);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":[]}")), RC_AUTH_BAD_AUDIENCE);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"aud\":{\"roomcast\":1}}")),
                     RC_AUTH_BAD_AUDIENCE);
    assert_int_equal(check(&cfg, hs256(ALICE)), RC_AUTH_BAD_AUDIENCE);
    assert_int_equal(check(&none, hs256("{\"sub\":\"a\",\"aud\":\"other\"}")), RC_AUTH_OK);
    /* Checked in order: an expired token with a wrong issuer reports expired. */
    cfg.issuer = (char *)"me";
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"exp\":1,\"iss\":\"x\"}")),
                     RC_AUTH_EXPIRED);
    assert_int_equal(check(&cfg, hs256("{\"sub\":\"a\",\"iss\":\"x\",\"aud\":\"x\"}")),
                     RC_AUTH_BAD_ISSUER);
}

static void expect_user(const rc_auth_config *cfg, const char *claims, const char *want)
{
    rc_auth_result r;
    rc_auth_status st = verify_tok(cfg, hs256(claims), &r);

    if (want) {
        assert_int_equal(st, RC_AUTH_OK);
        assert_string_equal(r.user_id, want);
    } else {
        assert_int_equal(st, RC_AUTH_NO_USER);
    }
    rc_auth_result_dispose(&r);
}

static void test_user_claim(void **state)
{
    rc_auth_config sub = hs_cfg(RC_ALG_HS256);
    rc_auth_config uid = hs_cfg(RC_ALG_HS256);
    rc_auth_config empty = hs_cfg(RC_ALG_HS256);

    uid.user_claim = (char *)"userId";
    empty.user_claim = (char *)"";
    expect_user(&sub, ALICE, "alice");
    expect_user(&sub, "{\"sub\":42}", "42");
    expect_user(&sub, "{\"sub\":\"\"}", NULL);
    expect_user(&sub, "{\"name\":\"alice\"}", NULL);
    expect_user(&sub, "{\"sub\":true}", NULL);
    expect_user(&sub, "{\"sub\":null}", NULL);
    expect_user(&sub, "{\"sub\":{\"id\":1}}", NULL);
    expect_user(&sub, "{\"sub\":[\"alice\"]}", NULL);
    expect_user(&sub, "{\"sub\":4.5}", NULL);
    expect_user(&uid, "{\"sub\":\"alice\",\"userId\":7}", "7");
    expect_user(&uid, "{\"userId\":-7}", "-7");
    expect_user(&uid, "{\"userId\":0}", "0");
    /* 2^60 + 1: exact, no trip through a double. */
    expect_user(&uid, "{\"userId\":1152921504606846977}", "1152921504606846977");
    expect_user(&uid, "{\"userId\":\"u-1\"}", "u-1");
    expect_user(&uid, "{\"sub\":\"alice\"}", NULL);
    expect_user(&empty, ALICE, "alice");
}

static void test_claims_json(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_result r;
    cJSON *c;

    assert_int_equal(verify_tok(&cfg, hs256("{\"sub\":\"alice\",\"rooms\":[\"doc:*\",\"team:1\"],"
                                            "\"exp\":1700003600,\"n\":{\"a\":1}}"), &r),
                     RC_AUTH_OK);
    assert_null(strchr(r.claims_json, ' '));
    assert_null(strchr(r.claims_json, '\n'));
    c = cJSON_Parse(r.claims_json);
    assert_non_null(c);
    assert_string_equal(cJSON_GetObjectItem(c, "sub")->valuestring, "alice");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "rooms")), 2);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "rooms"), 0)->valuestring,
                        "doc:*");
    assert_int_equal(cJSON_GetObjectItem(c, "exp")->valuedouble, 1700003600);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "n"), "a")->valueint, 1);
    assert_int_equal(r.exp, 1700003600);
    cJSON_Delete(c);
    rc_auth_result_dispose(&r);
    rc_auth_result_dispose(NULL);
}

/* The token need not be NUL-terminated: only len bytes are read. */
static void test_unterminated(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    char *tok = hs256(ALICE);
    size_t len = strlen(tok);
    char *buf = rc_malloc(len); /* exactly len bytes: ASan catches any read past them */
    rc_auth_result r;

    memcpy(buf, tok, len);
    assert_int_equal(rc_auth_verify(&cfg, buf, len, NOW, &r), RC_AUTH_OK);
    assert_string_equal(r.user_id, "alice");
    rc_auth_result_dispose(&r);
    assert_int_equal(rc_auth_verify(&cfg, buf, len - 1, NOW, &r), RC_AUTH_BAD_SIGNATURE);
    rc_free(buf);
    rc_free(tok);
}

/* ---- configuration helpers ---------------------------------------------------------------- */

static void test_parse_algs(void **state)
{
    unsigned algs = 12345;
    const char *bad = "untouched";

    assert_int_equal(rc_auth_parse_algs("HS256", &algs, &bad), 0);
    assert_int_equal(algs, RC_ALG_HS256);
    assert_null(bad);
    assert_int_equal(rc_auth_parse_algs(" HS256 ,RS256,\tES512 ", &algs, &bad), 0);
    assert_int_equal(algs, RC_ALG_HS256 | RC_ALG_RS256 | RC_ALG_ES512);
    assert_int_equal(rc_auth_parse_algs("HS256,HS384,HS512,RS256,RS384,RS512,ES256,ES384,ES512",
                                        &algs, NULL), 0);
    assert_int_equal(algs, 0x1ff);
    assert_int_equal(rc_auth_parse_algs("RS256,", &algs, &bad), 0);
    assert_int_equal(algs, RC_ALG_RS256);
    assert_int_equal(rc_auth_parse_algs("HS256,HS256", &algs, &bad), 0);
    assert_int_equal(algs, RC_ALG_HS256);

    algs = 77;
    assert_int_equal(rc_auth_parse_algs("none", &algs, &bad), -1);
    assert_string_equal(bad, "none is never allowed");
    assert_int_equal(algs, 77);
    assert_int_equal(rc_auth_parse_algs("HS256, NONE", &algs, &bad), -1);
    assert_string_equal(bad, "none is never allowed");
    assert_int_equal(rc_auth_parse_algs("hs256", &algs, &bad), -1);
    assert_string_equal(bad, "unknown algorithm");
    assert_int_equal(rc_auth_parse_algs("HS256,PS256", &algs, &bad), -1);
    assert_string_equal(bad, "unknown algorithm");
    assert_int_equal(rc_auth_parse_algs("HS 256", &algs, &bad), -1);
    assert_string_equal(bad, "unknown algorithm");
    assert_int_equal(rc_auth_parse_algs("HS2560", &algs, &bad), -1);
    assert_int_equal(rc_auth_parse_algs("", &algs, &bad), -1);
    assert_non_null(bad);
    assert_int_equal(rc_auth_parse_algs(" , ", &algs, &bad), -1);
    assert_int_equal(rc_auth_parse_algs(NULL, &algs, NULL), -1);
    assert_int_equal(algs, 77);
}

static void test_mint_round_trip(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_result r;
    char *tok = rc_auth_mint(&cfg, "alice", NULL, 3600, NOW);
    cJSON *c;

    assert_non_null(tok);
    assert_int_equal(verify_tok(&cfg, tok, &r), RC_AUTH_OK);
    assert_string_equal(r.user_id, "alice");
    assert_int_equal(r.exp, NOW + 3600);
    c = cJSON_Parse(r.claims_json);
    assert_int_equal(cJSON_GetObjectItem(c, "iat")->valuedouble, NOW);
    cJSON_Delete(c);
    rc_auth_result_dispose(&r);

    /* Expires: one second past exp + leeway. */
    tok = rc_auth_mint(&cfg, "alice", NULL, 10, NOW - 41);
    assert_int_equal(check(&cfg, tok), RC_AUTH_EXPIRED);
    /* No exp at all when ttl <= 0. */
    assert_int_equal(verify_tok(&cfg, rc_auth_mint(&cfg, "bob", NULL, 0, NOW), &r), RC_AUTH_OK);
    assert_int_equal(r.exp, 0);
    assert_null(strstr(r.claims_json, "\"exp\""));
    rc_auth_result_dispose(&r);
}

static void test_mint_options(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_RS256 | RC_ALG_HS512 | RC_ALG_HS384);
    rc_auth_config hs512 = hs_cfg(RC_ALG_HS512);
    rc_auth_config hs384 = hs_cfg(RC_ALG_HS384);
    rc_auth_config nosecret = pk_cfg(RC_ALG_HS256 | RC_ALG_RS256, keys.rsa_pub);
    rc_auth_result r;
    cJSON *c;
    char *tok;

    cfg.issuer = (char *)"https://id.example";
    cfg.audience = (char *)"roomcast";
    cfg.user_claim = (char *)"userId";
    hs384.issuer = cfg.issuer;
    hs384.audience = cfg.audience;
    hs384.user_claim = cfg.user_claim;
    /* First allowed HS alg in the order HS256, HS384, HS512 is HS384; the claims named by arguments and config win. */
    tok = rc_auth_mint(&cfg, "u-9",
                       "{\"rooms\":[\"team:*\"],\"userId\":\"mallory\",\"iss\":\"evil\","
                       "\"exp\":1,\"n\":12345678901234}", 60, NOW);
    assert_non_null(tok);
    assert_int_equal(check(&hs512, rc_strdup(tok)), RC_AUTH_ALG_NOT_ALLOWED);
    assert_int_equal(verify_tok(&hs384, tok, &r), RC_AUTH_OK);
    assert_string_equal(r.user_id, "u-9");
    assert_int_equal(r.exp, NOW + 60);
    c = cJSON_Parse(r.claims_json);
    assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring, "https://id.example");
    assert_string_equal(cJSON_GetObjectItem(c, "aud")->valuestring, "roomcast");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "rooms"), 0)->valuestring,
                        "team:*");
    assert_null(cJSON_GetObjectItem(c, "sub"));
    cJSON_Delete(c);
    assert_non_null(strstr(r.claims_json, "\"n\":12345678901234"));
    rc_auth_result_dispose(&r);

    /* No HS alg allowed at all: HS256. */
    rc_auth_config rs = hs_cfg(RC_ALG_RS256);
    rc_auth_config hs256only = hs_cfg(RC_ALG_HS256);
    assert_int_equal(check(&hs256only, rc_auth_mint(&rs, "a", NULL, 60, NOW)), RC_AUTH_OK);

    /* Refusals. */
    assert_null(rc_auth_mint(&nosecret, "alice", NULL, 60, NOW));
    assert_null(rc_auth_mint(&hs512, "alice", "{not json", 60, NOW));
    assert_null(rc_auth_mint(&hs512, "alice", "[1,2]", 60, NOW));
    assert_null(rc_auth_mint(&hs512, "alice", "\"x\"", 60, NOW));
    assert_null(rc_auth_mint(&hs512, "alice", "{\"a\":1,\"a\":2}", 60, NOW));
    assert_null(rc_auth_mint(&hs512, NULL, NULL, 60, NOW));
    assert_null(rc_auth_mint(&hs512, "", NULL, 60, NOW));
    /* Extreme ttl does not overflow. */
    assert_int_equal(check(&hs512, rc_auth_mint(&hs512, "a", NULL, LONG_MAX, NOW)), RC_AUTH_OK);
}

static void test_config_dispose(void **state)
{
    rc_auth_config cfg = {
        .algs = RC_ALG_HS256 | RC_ALG_RS256,
        .hs_secret = rc_strdup(SECRET),
        .hs_secret_len = strlen(SECRET),
        .public_key_pem = rc_strdup(keys.rsa_pub),
        .public_key_pem_len = strlen(keys.rsa_pub),
        .leeway_s = 30,
        .issuer = rc_strdup("iss"),
        .audience = rc_strdup("aud"),
        .user_claim = rc_strdup("userId"),
    };
    static const rc_auth_config zero;

    rc_auth_config_dispose(&cfg);
    assert_memory_equal(&cfg, &zero, sizeof(cfg));
    rc_auth_config_dispose(&cfg); /* twice is harmless */
    rc_auth_config_dispose(NULL);
}

/* A secret given without its length is used up to its NUL. */
static void test_secret_without_len(void **state)
{
    rc_auth_config cfg = hs_cfg(RC_ALG_HS256);
    rc_auth_config empty = hs_cfg(RC_ALG_HS256);

    cfg.hs_secret_len = 0;
    empty.hs_secret = (char *)"";
    empty.hs_secret_len = 0;
    assert_int_equal(check(&cfg, hs256(ALICE)), RC_AUTH_OK);
    assert_int_equal(check(&empty, hs256(ALICE)), RC_AUTH_ALG_NOT_ALLOWED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_malformed_shape),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_malformed_payload),
        cmocka_unit_test(test_max_length),
        cmocka_unit_test(test_hs_family),
        cmocka_unit_test(test_default_algs),
        cmocka_unit_test(test_bad_signature_hs),
        cmocka_unit_test(test_rs_family),
        cmocka_unit_test(test_es_family),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_unknown_or_case),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_exp_leeway),
        cmocka_unit_test(test_nbf_leeway),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_audience),
        cmocka_unit_test(test_user_claim),
        cmocka_unit_test(test_claims_json),
        cmocka_unit_test(test_unterminated),
        cmocka_unit_test(test_parse_algs),
        cmocka_unit_test(test_mint_round_trip),
        cmocka_unit_test(test_mint_options),
        cmocka_unit_test(test_config_dispose),
        cmocka_unit_test(test_secret_without_len),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
