/*
 * auth.c: JWT verification for the Socket.IO CONNECT handshake (contract: include/roomcast/auth.h).
 *
 * Purpose: turn the bearer token a client presents into either a user id plus its claim set, or
 * exactly one reason from a fixed table ("expired", "bad_signature", ...) that the Socket.IO layer
 * sends back in CONNECT_ERROR and the metrics module uses as a label.
 *
 * API in call order:
 *   rc_auth_parse_algs()      config load: "HS256, RS256" -> RC_ALG_* bits ("none" is refused)
 *   rc_auth_verify()          per CONNECT: token -> rc_auth_status, and on success a result
 *   rc_auth_reason()          status -> static reason string (compare by pointer or strcmp)
 *   rc_auth_result_dispose()  frees what rc_auth_verify() put in the result
 *   rc_auth_expires_at()      a verified token's exp -> the second from which it is refused
 *   rc_auth_mint()            development tokens (HS only), for `roomcast token` and the tests
 *   rc_auth_config_dispose()  config teardown: frees (and scrubs) the strings of the config
 *
 * How rc_auth_verify() proceeds. The order matters: nothing the token says is trusted before the
 * signature is checked, except `alg`, and `alg` only picks among keys we already hold.
 *   1. NULL or empty -> missing_token. Longer than AUTH_MAX_TOKEN -> malformed_token.
 *   2. Shape: exactly three dot-separated segments of unpadded base64url; header and payload
 *      non-empty. Anything else -> malformed_token.
 *   3. Header, decoded here without libjwt: a JSON object without duplicate names, with a string
 *      `alg`, `typ` absent or "JWT", no `crit`. Else malformed_token.
 *   4. `alg` (case-sensitive) must be one of the nine names and in cfg->algs; `none` never is.
 *      The key comes from the family of that alg: HS* -> hs_secret, RS*, ES* -> public_key_pem.
 *      No key of that family -> alg_not_allowed. This is the algorithm-confusion defence: an HS
 *      token is never checked with the public key as an HMAC secret.
 *   5. An empty signature -> bad_signature. jwt_decode() with the chosen key; if it fails,
 *      an unverified jwt_decode() tells a signature failure (bad_signature) from a token libjwt
 *      cannot parse (malformed_token). After success jwt_get_alg() must equal the alg of step 4.
 *   6. Claims, read from libjwt's parsed (and now verified) claim set: exp and nbf (numbers,
 *      with cfg->leeway_s), iss, aud, then the user id.
 *
 * libjwt 1.10.2 as packaged by Debian 12 (read its source before changing steps 2-5):
 *   - jwt_decode() with a NULL key skips the signature check and reports alg "none" afterwards;
 *     with a key it refuses alg "none". It matches `alg` case-insensitively and refuses a `typ`
 *     other than "JWT" (case-insensitive).
 *   - Its base64 decoder (libb64) silently skips characters outside the alphabet, and for an
 *     empty segment it reads and writes one byte past a malloc(0) block (valgrind reports it;
 *     ASan does not, as it rounds malloc(0) up to one byte). Steps 2 and 5 keep both away.
 *   - Unverified, it parses the header with jansson (duplicate names: last wins) where step 3
 *     uses cJSON (first wins); hence the duplicate-name refusal and the jwt_get_alg() check.
 *   - ES* signatures must be raw R||S (JOSE), 2 * ceil(bits / 8) bytes; DER is refused.
 *   - The public key PEM is parsed again on every verification (a few tens of microseconds).
 *
 * Reading the config: algs 0 means the documented default, HS256 alone. A key whose length
 * field is 0 is taken up to its NUL; an empty key is no key. A negative leeway counts as 0.
 * user_claim NULL or "" means "sub". issuer and audience are checked when non-NULL.
 *
 * What it does not do: fetch keys (JWKS) or choose them by `kid`, cache results, check the
 * curve of an ES key against the alg, read `iat` or `jti`, or log anything (tokens never reach a
 * log, an error message or stderr).
 *
 * Ownership: the config belongs to the caller (the config module); rc_auth_verify() only reads
 * it. A result's user_id and claims_json are rc_malloc'd and released by rc_auth_result_dispose().
 * rc_auth_expires_at() tells the caller when this same check starts refusing a token; enforcing
 * that on a connected socket is the Socket.IO layer's job (sio.c), not this module's.
 * rc_auth_mint() returns an rc_malloc'd string. Nothing is kept between calls: the module has
 * no state of its own.
 */
#include "roomcast/auth.h"

#include "roomcast/common.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <jwt.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest token we look at. A header is a few dozen bytes; 8 KiB leaves room for large claim
 * sets and stops anyone from making us base64-decode and parse megabytes per CONNECT. */
#define AUTH_MAX_TOKEN 8192

typedef struct auth_alg {
    const char *name;
    unsigned bit;
    jwt_alg_t jwt;
} auth_alg;

static const auth_alg auth_algs[] = {
    {"HS256", RC_ALG_HS256, JWT_ALG_HS256}, {"HS384", RC_ALG_HS384, JWT_ALG_HS384},
    {"HS512", RC_ALG_HS512, JWT_ALG_HS512}, {"RS256", RC_ALG_RS256, JWT_ALG_RS256},
    {"RS384", RC_ALG_RS384, JWT_ALG_RS384}, {"RS512", RC_ALG_RS512, JWT_ALG_RS512},
    {"ES256", RC_ALG_ES256, JWT_ALG_ES256}, {"ES384", RC_ALG_ES384, JWT_ALG_ES384},
    {"ES512", RC_ALG_ES512, JWT_ALG_ES512},
};

#define AUTH_HS_BITS (RC_ALG_HS256 | RC_ALG_HS384 | RC_ALG_HS512)

static const char *const auth_reasons[RC_AUTH__COUNT] = {
    [RC_AUTH_OK] = "ok",
    [RC_AUTH_MISSING] = "missing_token",
    [RC_AUTH_MALFORMED] = "malformed_token",
    [RC_AUTH_ALG_NOT_ALLOWED] = "alg_not_allowed",
    [RC_AUTH_BAD_SIGNATURE] = "bad_signature",
    [RC_AUTH_EXPIRED] = "expired",
    [RC_AUTH_NOT_YET_VALID] = "not_yet_valid",
    [RC_AUTH_BAD_ISSUER] = "bad_issuer",
    [RC_AUTH_BAD_AUDIENCE] = "bad_audience",
    [RC_AUTH_NO_USER] = "missing_user_claim",
};

const char *rc_auth_reason(rc_auth_status status)
{
    if ((unsigned)status >= RC_AUTH__COUNT)
        return "unknown";
    return auth_reasons[status];
}

/* ---- algorithms and keys ---------------------------------------------------------------- */

static const auth_alg *auth_alg_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(auth_algs); i++) {
        if (strlen(auth_algs[i].name) == len && memcmp(auth_algs[i].name, name, len) == 0)
            return &auth_algs[i];
    }
    return NULL;
}

/* The allow-list; an all-zero config means the documented default, HS256 alone. */
static unsigned auth_allowed(const rc_auth_config *cfg)
{
    return cfg->algs ? cfg->algs : RC_ALG_HS256;
}

/* A key given as (pointer, length); length 0 means "NUL-terminated". Returns 0 when there is no
 * usable key (absent, empty, or too long for libjwt's int length). */
static size_t auth_key_len(const char *key, size_t len)
{
    if (!key)
        return 0;
    if (len == 0)
        len = strlen(key);
    return len <= INT_MAX ? len : 0;
}

/* Picks the key for alg's family. Returns 0 and sets *key and *len, or -1 if we hold none. */
static int auth_key_for(const rc_auth_config *cfg, const auth_alg *alg, const unsigned char **key,
                        int *len)
{
    const char *k;
    size_t n;

    if (alg->bit & AUTH_HS_BITS) {
        k = cfg->hs_secret;
        n = auth_key_len(cfg->hs_secret, cfg->hs_secret_len);
    } else {
        k = cfg->public_key_pem;
        n = auth_key_len(cfg->public_key_pem, cfg->public_key_pem_len);
    }
    if (n == 0)
        return -1;
    *key = (const unsigned char *)k;
    *len = (int)n;
    return 0;
}

/* ---- shape and header ------------------------------------------------------------------- */

static int auth_b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Unpadded base64url: alphabet only, and a length that some byte string encodes to. */
static int auth_b64url_valid(rc_slice s)
{
    if (s.len % 4 == 1)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        if (auth_b64url_value((unsigned char)s.ptr[i]) < 0)
            return 0;
    }
    return 1;
}

/* Decodes a slice that passed auth_b64url_valid() into out (room for s.len * 3 / 4 bytes).
 * Returns the number of bytes written. */
static size_t auth_b64url_decode(rc_slice s, unsigned char *out)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;

    for (size_t i = 0; i < s.len; i++) {
        acc = (acc << 6) | (unsigned)auth_b64url_value((unsigned char)s.ptr[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return n;
}

/* Splits token into header, payload and signature. Returns 0, or -1 if the shape is wrong. */
static int auth_split(const char *token, size_t len, rc_slice seg[3])
{
    const char *p = token, *end = token + len;

    for (int i = 0; i < 3; i++) {
        const char *dot = i < 2 ? memchr(p, '.', (size_t)(end - p)) : NULL;
        const char *stop = dot ? dot : end;

        if (i < 2 && !dot)
            return -1;
        seg[i].ptr = p;
        seg[i].len = (size_t)(stop - p);
        if (!auth_b64url_valid(seg[i]))
            return -1; /* also catches a fourth segment: '.' is not in the alphabet */
        p = stop + (dot ? 1 : 0);
    }
    return seg[0].len && seg[1].len ? 0 : -1;
}

/* Duplicate member names are how a header says one alg to us and another to libjwt (cJSON
 * keeps the first, jansson the last), so they are refused outright. Headers are tiny. */
static int auth_has_duplicate_names(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a; a = a->next) {
        for (const cJSON *b = a->next; b; b = b->next) {
            if (strcmp(a->string, b->string) == 0)
                return 1;
        }
    }
    return 0;
}

/* Step 3 and the first half of step 4: finds the header's alg in our table. */
static rc_auth_status auth_read_header(rc_slice seg, const auth_alg **alg)
{
    unsigned char json[AUTH_MAX_TOKEN / 4 * 3];
    size_t n = auth_b64url_decode(seg, json);
    const char *end = NULL;
    cJSON *head;
    const cJSON *v;
    rc_auth_status st = RC_AUTH_MALFORMED;

    if (memchr(json, '\0', n))
        return RC_AUTH_MALFORMED;
    head = cJSON_ParseWithLengthOpts((const char *)json, n, &end, 0);
    if (!head)
        return RC_AUTH_MALFORMED;
    while (end < (const char *)json + n && isspace((unsigned char)*end))
        end++;
    if (end != (const char *)json + n || !cJSON_IsObject(head) || auth_has_duplicate_names(head))
        goto out;
    v = cJSON_GetObjectItemCaseSensitive(head, "typ");
    if (v && !(cJSON_IsString(v) && strcasecmp(v->valuestring, "JWT") == 0))
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(head, "crit"))
        goto out; /* we implement no header extension, so we may not accept any as critical */
    v = cJSON_GetObjectItemCaseSensitive(head, "alg");
    if (!cJSON_IsString(v))
        goto out;
    *alg = auth_alg_by_name(v->valuestring, strlen(v->valuestring));
    st = *alg ? RC_AUTH_OK : RC_AUTH_ALG_NOT_ALLOWED; /* "none", "PS256", "hs256", ... */
out:
    cJSON_Delete(head);
    return st;
}

/* ---- claims ----------------------------------------------------------------------------- */

static long long auth_clamp_ll(double d)
{
    if (d >= 9223372036854775807.0)
        return LLONG_MAX;
    if (d <= -9223372036854775807.0)
        return LLONG_MIN;
    return (long long)d;
}

static int auth_is_decimal_integer(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
    }
    return 1;
}

/* The user id: a non-empty string, or an integer rendered in decimal. Integers are taken from
 * libjwt's own text for the claim (jansson keeps 64-bit integers; cJSON would round them
 * through a double). Returns an rc_malloc'd string or NULL. */
static char *auth_user_id(jwt_t *jwt, const cJSON *claims, const char *claim)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, claim);
    char *text, *id = NULL;

    if (cJSON_IsString(v))
        return v->valuestring[0] ? rc_strdup(v->valuestring) : NULL;
    if (!cJSON_IsNumber(v))
        return NULL;
    text = jwt_get_grants_json(jwt, claim);
    if (text && auth_is_decimal_integer(text))
        id = rc_strdup(text);
    free(text); /* allocated by jansson */
    return id;
}

static int auth_audience_matches(const cJSON *aud, const char *want)
{
    const cJSON *v;

    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    if (!cJSON_IsArray(aud))
        return 0;
    cJSON_ArrayForEach(v, aud) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0)
            return 1;
    }
    return 0;
}

/* Step 6, on a token whose signature has been verified. Fills *out only on RC_AUTH_OK. */
static rc_auth_status auth_check_claims(const rc_auth_config *cfg, jwt_t *jwt, time_t now,
                                        rc_auth_result *out)
{
    char *json = jwt_get_grants_json(jwt, NULL); /* compact, sorted keys; jansson's malloc */
    cJSON *claims = json ? cJSON_Parse(json) : NULL;
    const cJSON *exp, *nbf, *v;
    const char *claim = cfg->user_claim && cfg->user_claim[0] ? cfg->user_claim : "sub";
    double leeway = cfg->leeway_s > 0 ? (double)cfg->leeway_s : 0.0;
    rc_auth_status st = RC_AUTH_MALFORMED;
    char *user;

    if (!cJSON_IsObject(claims))
        goto out; /* a payload that is a JSON array passes libjwt */
    exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
    if ((exp && !cJSON_IsNumber(exp)) || (nbf && !cJSON_IsNumber(nbf)))
        goto out;
    if (exp && (double)now > exp->valuedouble + leeway) {
        st = RC_AUTH_EXPIRED;
        goto out;
    }
    if (nbf && (double)now + leeway < nbf->valuedouble) {
        st = RC_AUTH_NOT_YET_VALID;
        goto out;
    }
    if (cfg->issuer) {
        v = cJSON_GetObjectItemCaseSensitive(claims, "iss");
        if (!cJSON_IsString(v) || strcmp(v->valuestring, cfg->issuer) != 0) {
            st = RC_AUTH_BAD_ISSUER;
            goto out;
        }
    }
    if (cfg->audience &&
        !auth_audience_matches(cJSON_GetObjectItemCaseSensitive(claims, "aud"), cfg->audience)) {
        st = RC_AUTH_BAD_AUDIENCE;
        goto out;
    }
    user = auth_user_id(jwt, claims, claim);
    if (!user) {
        st = RC_AUTH_NO_USER;
        goto out;
    }
    out->user_id = user;
    out->claims_json = rc_strdup(json);
    out->exp = exp ? auth_clamp_ll(exp->valuedouble) : 0;
    st = RC_AUTH_OK;
out:
    cJSON_Delete(claims);
    free(json);
    return st;
}

/* ---- verify ----------------------------------------------------------------------------- */

/* Step 6 refuses once `now > exp + leeway`, now being whole seconds. For a valid token exp >= now
 * - leeway > 0, and rc_auth_result.exp is exp truncated, i.e. its whole second, so the first
 * refused second is exp + leeway + 1 whether exp had a fraction or not. */
long long rc_auth_expires_at(const rc_auth_config *cfg, long long exp)
{
    long long leeway = cfg->leeway_s > 0 ? cfg->leeway_s : 0;

    if (exp <= 0)
        return 0;
    if (exp >= LLONG_MAX - leeway - 1)
        return LLONG_MAX;
    return exp + leeway + 1;
}

/* jwt_decode() with our key failed. Without a key libjwt parses the same text but checks no
 * signature; if that works, the signature was the problem. */
static rc_auth_status auth_classify_failure(const char *token)
{
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, NULL, 0);

    jwt_free(jwt);
    return rc == 0 ? RC_AUTH_BAD_SIGNATURE : RC_AUTH_MALFORMED;
}

rc_auth_status rc_auth_verify(const rc_auth_config *cfg, const char *token, size_t len, time_t now,
                              rc_auth_result *out)
{
    char text[AUTH_MAX_TOKEN + 1];
    rc_slice seg[3];
    const auth_alg *alg = NULL;
    const unsigned char *key = NULL;
    int key_len = 0;
    jwt_t *jwt = NULL;
    rc_auth_status st;

    assert(cfg && out);
    memset(out, 0, sizeof(*out));
    if (!token || len == 0)
        return RC_AUTH_MISSING;
    if (len > AUTH_MAX_TOKEN || auth_split(token, len, seg) != 0)
        return RC_AUTH_MALFORMED;
    st = auth_read_header(seg[0], &alg);
    if (st != RC_AUTH_OK)
        return st;
    if (!(auth_allowed(cfg) & alg->bit) || auth_key_for(cfg, alg, &key, &key_len) != 0)
        return RC_AUTH_ALG_NOT_ALLOWED;
    if (seg[2].len == 0)
        return RC_AUTH_BAD_SIGNATURE;

    memcpy(text, token, len);
    text[len] = '\0';
    if (jwt_decode(&jwt, text, key, key_len) != 0)
        return auth_classify_failure(text);
    /* Step 3 and libjwt read the same header; this holds whatever either parser does. */
    if (jwt_get_alg(jwt) != alg->jwt)
        st = RC_AUTH_BAD_SIGNATURE;
    else
        st = auth_check_claims(cfg, jwt, now, out);
    jwt_free(jwt);
    return st;
}

void rc_auth_result_dispose(rc_auth_result *r)
{
    if (!r)
        return;
    rc_free(r->user_id);
    rc_free(r->claims_json);
    memset(r, 0, sizeof(*r));
}

/* ---- configuration ---------------------------------------------------------------------- */

int rc_auth_parse_algs(const char *list, unsigned *algs, const char **bad)
{
    unsigned bits = 0;
    const char *p = list, *why = "empty algorithm list";

    while (p && *p) {
        const char *name, *name_end;
        const auth_alg *a;

        while (isspace((unsigned char)*p))
            p++;
        name = p;
        while (*p && *p != ',' && !isspace((unsigned char)*p))
            p++;
        name_end = p;
        while (isspace((unsigned char)*p))
            p++;
        if (*p && *p != ',') {
            why = "unknown algorithm"; /* "HS 256" */
            goto fail;
        }
        if (*p == ',')
            p++;
        if (name_end == name)
            continue; /* tolerate "HS256," and ",," */
        if ((size_t)(name_end - name) == 4 && strncasecmp(name, "none", 4) == 0) {
            why = "none is never allowed";
            goto fail;
        }
        a = auth_alg_by_name(name, (size_t)(name_end - name));
        if (!a) {
            why = "unknown algorithm";
            goto fail;
        }
        bits |= a->bit;
    }
    if (!bits)
        goto fail;
    *algs = bits;
    if (bad)
        *bad = NULL;
    return 0;
fail:
    if (bad)
        *bad = why;
    return -1;
}

void rc_auth_config_dispose(rc_auth_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->hs_secret) {
        /* The length is trusted only up to the string itself when it is given as 0. */
        OPENSSL_cleanse(cfg->hs_secret,
                        cfg->hs_secret_len ? cfg->hs_secret_len : strlen(cfg->hs_secret));
    }
    rc_free(cfg->hs_secret);
    rc_free(cfg->public_key_pem);
    rc_free(cfg->issuer);
    rc_free(cfg->audience);
    rc_free(cfg->user_claim);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- development tokens ----------------------------------------------------------------- */

/* Sets a string claim, replacing whatever extra_claims_json put there. */
static int auth_put_string(jwt_t *jwt, const char *name, const char *value)
{
    jwt_del_grants(jwt, name);
    return jwt_add_grant(jwt, name, value);
}

static int auth_put_int(jwt_t *jwt, const char *name, long value)
{
    jwt_del_grants(jwt, name);
    return jwt_add_grant_int(jwt, name, value);
}

char *rc_auth_mint(const rc_auth_config *cfg, const char *user, const char *extra_claims_json,
                   long ttl_s, time_t now)
{
    const auth_alg *alg = &auth_algs[0]; /* first allowed of HS256, HS384, HS512; else HS256 */
    const char *claim = cfg->user_claim && cfg->user_claim[0] ? cfg->user_claim : "sub";
    size_t key_len = auth_key_len(cfg->hs_secret, cfg->hs_secret_len);
    jwt_t *jwt = NULL;
    char *encoded = NULL, *token = NULL;

    for (size_t i = 0; i < RC_ARRAY_LEN(auth_algs); i++) {
        if ((auth_algs[i].bit & AUTH_HS_BITS) && (auth_allowed(cfg) & auth_algs[i].bit)) {
            alg = &auth_algs[i];
            break;
        }
    }
    if (key_len == 0 || !user || !user[0] || jwt_new(&jwt) != 0)
        return NULL;
    /* The claims named by the arguments and the config win over extra_claims_json. */
    if (extra_claims_json && jwt_add_grants_json(jwt, extra_claims_json) != 0)
        goto out; /* not a JSON object, or duplicate names */
    if (auth_put_string(jwt, claim, user) != 0 || auth_put_int(jwt, "iat", (long)now) != 0)
        goto out;
    jwt_del_grants(jwt, "exp");
    if (ttl_s > 0 && jwt_add_grant_int(jwt, "exp", (long)now > LONG_MAX - ttl_s
                                                        ? LONG_MAX : (long)now + ttl_s) != 0)
        goto out;
    if (cfg->issuer && auth_put_string(jwt, "iss", cfg->issuer) != 0)
        goto out;
    if (cfg->audience && auth_put_string(jwt, "aud", cfg->audience) != 0)
        goto out;
    if (jwt_set_alg(jwt, alg->jwt, (const unsigned char *)cfg->hs_secret, (int)key_len) != 0)
        goto out;
    encoded = jwt_encode_str(jwt);
    if (encoded)
        token = rc_strdup(encoded);
out:
    free(encoded); /* libjwt's malloc */
    jwt_free(jwt);
    return token;
}
