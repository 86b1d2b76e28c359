/*
 * auth.h: JWT verification (libjwt 1.10) for the Socket.IO CONNECT handshake.
 *
 * What it does: checks the token's header `alg` against an allow-list *before* any signature
 * check (never `none`; an HS* token is never verified with a public key, an RS/ES token never with
 * the HS secret), verifies the signature with the key of that family, then exp/nbf with a leeway,
 * iss and aud when configured, and extracts the user id from a configurable claim (string or
 * integer). Every failure has its own static reason string (rc_auth_reason), used verbatim in
 * CONNECT_ERROR {"message":"unauthorized","data":{"code":<reason>}} and as a metrics label.
 *
 * What it does not do: fetch keys (JWKS), cache results, log tokens.
 *
 * Ownership: rc_auth_config is owned by the config module. rc_auth_result owns user_id and
 * claims_json (heap strings); release them with rc_auth_result_dispose().
 */
#ifndef ROOMCAST_AUTH_H
#define ROOMCAST_AUTH_H

#include <stddef.h>
#include <time.h>

typedef enum rc_auth_status {
    RC_AUTH_OK = 0,
    RC_AUTH_MISSING,          /* "missing_token" */
    RC_AUTH_MALFORMED,        /* "malformed_token" */
    RC_AUTH_ALG_NOT_ALLOWED,  /* "alg_not_allowed" (includes alg none, and HS with only a public key) */
    RC_AUTH_BAD_SIGNATURE,    /* "bad_signature" */
    RC_AUTH_EXPIRED,          /* "expired" */
    RC_AUTH_NOT_YET_VALID,    /* "not_yet_valid" */
    RC_AUTH_BAD_ISSUER,       /* "bad_issuer" */
    RC_AUTH_BAD_AUDIENCE,     /* "bad_audience" */
    RC_AUTH_NO_USER,          /* "missing_user_claim" */
    RC_AUTH__COUNT
} rc_auth_status;

/* Bits of rc_auth_config.algs, one per algorithm. */
enum {
    RC_ALG_HS256 = 1u << 0, RC_ALG_HS384 = 1u << 1, RC_ALG_HS512 = 1u << 2,
    RC_ALG_RS256 = 1u << 3, RC_ALG_RS384 = 1u << 4, RC_ALG_RS512 = 1u << 5,
    RC_ALG_ES256 = 1u << 6, RC_ALG_ES384 = 1u << 7, RC_ALG_ES512 = 1u << 8,
};

typedef struct rc_auth_config {
    unsigned algs;                 /* allow-list, RC_ALG_* bits; default RC_ALG_HS256 */
    char *hs_secret;               /* HS* key (may be NULL when only public-key algs are allowed) */
    size_t hs_secret_len;
    char *public_key_pem;          /* RS and ES verification key, PEM text (NULL if none) */
    size_t public_key_pem_len;
    int leeway_s;                  /* tolerance for exp and nbf, seconds (default 30) */
    char *issuer;                  /* required `iss` when non-NULL */
    char *audience;                /* required in `aud` (string or array) when non-NULL */
    char *user_claim;              /* claim holding the user id, default "sub" */
} rc_auth_config;

typedef struct rc_auth_result {
    char *user_id;      /* heap, NUL-terminated; set when status is RC_AUTH_OK */
    char *claims_json;  /* heap, the token's whole claim set as compact JSON; set on RC_AUTH_OK */
    long long exp;      /* the exp claim, 0 if absent */
} rc_auth_result;

/* Static reason string for a status ("ok" for RC_AUTH_OK). Compare by pointer or strcmp. */
const char *rc_auth_reason(rc_auth_status status);

/* Verifies token (len bytes, need not be NUL-terminated) at wall-clock time `now`. On RC_AUTH_OK
 * fills *out (caller disposes); on failure *out is left zeroed. token NULL or len 0 gives
 * RC_AUTH_MISSING. Never logs the token. */
rc_auth_status rc_auth_verify(const rc_auth_config *cfg, const char *token, size_t len, time_t now,
                              rc_auth_result *out);
void rc_auth_result_dispose(rc_auth_result *r);

/* The first wall-clock second (as time(NULL) counts) at which rc_auth_verify refuses a token
 * whose exp claim is `exp` (rc_auth_result.exp) as expired: exp + leeway + 1, since a token
 * passes while now <= exp + leeway (a fractional exp counts from its whole second, which
 * rc_auth_result.exp already is). 0 when exp is 0 (no exp claim); clamped to LLONG_MAX. The
 * Socket.IO layer ends a connected socket's authorisation then, so a token is never honoured
 * longer than a fresh CONNECT would honour it, and never cut off while one would pass. */
long long rc_auth_expires_at(const rc_auth_config *cfg, long long exp);

/* Parses a comma list such as "HS256,RS256" into RC_ALG_* bits. Returns 0, or -1 with *bad set to
 * a static description ("none is never allowed", "unknown algorithm") on a bad entry. */
int rc_auth_parse_algs(const char *list, unsigned *algs, const char **bad);

/* Signs a development token with the HS secret (first HS alg allowed, else HS256): claims `sub`
 * (or the configured user claim) = user, iat = now, exp = now + ttl_s (no exp if ttl_s <= 0),
 * plus every key of extra_claims_json (a JSON object text, may be NULL), plus iss/aud when
 * configured. Returns a heap string or NULL (no HS secret, bad extra JSON). */
char *rc_auth_mint(const rc_auth_config *cfg, const char *user, const char *extra_claims_json,
                   long ttl_s, time_t now);

void rc_auth_config_dispose(rc_auth_config *cfg);

#endif
