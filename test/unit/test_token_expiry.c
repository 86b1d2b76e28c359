/*
 * test_token_expiry.c: the two pieces of token-expiry enforcement that live outside sio.c:
 *   - rc_auth_expires_at (src/auth.c): the first second at which rc_auth_verify refuses
 *     the token, so a socket is never kept longer than a fresh CONNECT would be accepted, and
 *     never cut off while a CONNECT with the same token would still pass;
 *   - jwt.onExpiry and jwt.expiredEvent (src/config.c): default, values, and errors with paths.
 * The enforcement itself (timer, close paths, what the client sees) is test/e2e/token_expiry.test.js.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jwt.h>

#include "roomcast/auth.h"
#include "roomcast/common.h"
#include "roomcast/config.h"

#define NOW ((time_t)1700000000)

static rc_auth_config hs_cfg(int leeway)
{
    rc_auth_config cfg = {.algs = RC_ALG_HS256, .hs_secret = (char *)"expiry secret", .leeway_s = leeway};
    return cfg;
}

/* An HS256 token with exactly these claims (rc_auth_mint writes integer exp only). */
static char *sign_claims(const rc_auth_config *cfg, const char *claims_json)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims_json), 0);
    assert_int_equal(jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)cfg->hs_secret,
                                 (int)strlen(cfg->hs_secret)), 0);
    char *encoded = jwt_encode_str(jwt);
    assert_non_null(encoded);
    char *tok = rc_strdup(encoded);
    free(encoded);
    jwt_free(jwt);
    return tok;
}

/* Verifies at `now`; returns the status and, when OK, expires_at (else -1). */
static rc_auth_status verify_at(const rc_auth_config *cfg, const char *tok, time_t now, long long *expires_at)
{
    rc_auth_result r;
    rc_auth_status st = rc_auth_verify(cfg, tok, strlen(tok), now, &r);
    *expires_at = st == RC_AUTH_OK ? rc_auth_expires_at(cfg, r.exp) : -1;
    rc_auth_result_dispose(&r);
    return st;
}

/* expires_at is exactly the first second verification refuses the token. */
static void expect_boundary(const rc_auth_config *cfg, const char *tok, long long want)
{
    long long at;
    assert_int_equal(verify_at(cfg, tok, NOW, &at), RC_AUTH_OK);
    assert_int_equal(at, want);
    assert_int_equal(verify_at(cfg, tok, (time_t)(want - 1), &at), RC_AUTH_OK);
    assert_int_equal(at, want);
    assert_int_equal(verify_at(cfg, tok, (time_t)want, &at), RC_AUTH_EXPIRED);
}

static void test_expires_at_matches_verification(void **state)
{
    rc_auth_config strict = hs_cfg(0), lenient = hs_cfg(30);
    char *tok = rc_auth_mint(&strict, "alice", NULL, 10, NOW); /* exp = NOW + 10 */
    assert_non_null(tok);
    expect_boundary(&strict, tok, NOW + 11);
    expect_boundary(&lenient, tok, NOW + 41);
    rc_free(tok);

    /* A fractional exp: valid through its whole second, refused from the next one. */
    tok = sign_claims(&strict, "{\"sub\":\"alice\",\"exp\":1700000020.25}");
    assert_non_null(tok);
    expect_boundary(&strict, tok, NOW + 21);
    rc_free(tok);

    /* No exp: nothing to enforce. */
    long long at;
    tok = rc_auth_mint(&strict, "bob", NULL, 0, NOW);
    assert_int_equal(verify_at(&strict, tok, NOW, &at), RC_AUTH_OK);
    assert_int_equal(at, 0);
    rc_free(tok);

    /* An exp far beyond any clock is clamped, not undefined. */
    tok = sign_claims(&strict, "{\"sub\":\"carol\",\"exp\":1e300}");
    assert_int_equal(verify_at(&strict, tok, NOW, &at), RC_AUTH_OK);
    assert_true(at == LLONG_MAX);
    rc_free(tok);

    /* A refused token reports no exp; no exp means nothing to enforce; a negative leeway counts
     * as 0, as in verification. */
    rc_auth_result r;
    rc_auth_config negative = hs_cfg(-100);
    tok = rc_auth_mint(&strict, "dave", NULL, 10, NOW - 100);
    assert_int_equal(rc_auth_verify(&strict, tok, strlen(tok), NOW, &r), RC_AUTH_EXPIRED);
    assert_int_equal(r.exp, 0);
    assert_int_equal(rc_auth_expires_at(&strict, r.exp), 0);
    rc_free(tok);
    tok = rc_auth_mint(&negative, "erin", NULL, 10, NOW);
    expect_boundary(&negative, tok, NOW + 11);
    rc_free(tok);
    assert_true(rc_auth_expires_at(&lenient, LLONG_MAX - 5) == LLONG_MAX);
}

/* ---- config ---------------------------------------------------------------------------------- */

static char g_file[64];

static int setup(void **state)
{
    strcpy(g_file, "/tmp/rc_test_expiry_XXXXXX");
    int fd = mkstemp(g_file);
    if (fd < 0) return -1;
    close(fd);
    unsetenv("ROOMCAST_CONFIG");
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    return 0;
}

static int teardown(void **state)
{
    unlink(g_file);
    unsetenv("ROOMCAST_JWT_SECRET");
    return 0;
}

/* Loads `json`; returns 0 or -1 with errs filled (the caller disposes both). */
static int load(const char *json, rc_config *cfg, rc_config_errors *errs)
{
    FILE *f = fopen(g_file, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    rc_config_flags flags = {.config_path = g_file, .port = -1};
    memset(errs, 0, sizeof(*errs));
    return rc_config_load(cfg, &flags, errs);
}

static void expect_error(const char *json, const char *want)
{
    rc_config cfg;
    rc_config_errors errs;
    assert_int_equal(load(json, &cfg, &errs), -1);
    int found = 0;
    for (size_t i = 0; i < errs.count; i++) found |= strcmp(errs.items[i], want) == 0;
    if (!found) {
        for (size_t i = 0; i < errs.count; i++) fprintf(stderr, "got: %s\n", errs.items[i]);
        fail_msg("expected error: %s", want);
    }
    rc_config_errors_dispose(&errs);
}

static void test_config_default_and_values(void **state)
{
    rc_config cfg;
    rc_config_errors errs;
    assert_int_equal(load("{}", &cfg, &errs), 0);
    assert_int_equal(cfg.token_expiry, RC_TOKEN_EXPIRY_RECONNECT);
    assert_null(cfg.token_expired_event);
    rc_config_dispose(&cfg);

    static const struct { const char *json; int mode; const char *event; } ok[] = {
        {"{\"jwt\": {\"onExpiry\": \"reconnect\"}}", RC_TOKEN_EXPIRY_RECONNECT, NULL},
        {"{\"jwt\": {\"onExpiry\": \"disconnect\", \"expiredEvent\": \"auth:expired\"}}",
         RC_TOKEN_EXPIRY_DISCONNECT, "auth:expired"},
        {"{\"jwt\": {\"onExpiry\": \"ignore\"}}", RC_TOKEN_EXPIRY_IGNORE, NULL},
        {"{\"jwt\": {\"expiredEvent\": \"session:expired\"}}", RC_TOKEN_EXPIRY_RECONNECT, "session:expired"},
        {"{\"jwt\": {\"onExpiry\": null, \"expiredEvent\": null}}", RC_TOKEN_EXPIRY_RECONNECT, NULL},
    };
    for (size_t i = 0; i < RC_ARRAY_LEN(ok); i++) {
        assert_int_equal(load(ok[i].json, &cfg, &errs), 0);
        assert_int_equal(cfg.token_expiry, ok[i].mode);
        if (ok[i].event) assert_string_equal(cfg.token_expired_event, ok[i].event);
        else assert_null(cfg.token_expired_event);
        rc_config_dispose(&cfg);
    }
}

static void test_config_errors(void **state)
{
    static const char mode_err[] = "jwt.onExpiry: must be \"reconnect\", \"disconnect\" or \"ignore\"";
    static const char event_err[] =
        "jwt.expiredEvent: must be an event name of 1..200 bytes, not one of Socket.IO's reserved names";
    expect_error("{\"jwt\": {\"onExpiry\": \"close\"}}", mode_err);
    expect_error("{\"jwt\": {\"onExpiry\": \"Reconnect\"}}", mode_err);
    expect_error("{\"jwt\": {\"onExpiry\": true}}", mode_err);
    expect_error("{\"jwt\": {\"expiredEvent\": \"\"}}", event_err);
    expect_error("{\"jwt\": {\"expiredEvent\": 5}}", event_err);
    expect_error("{\"jwt\": {\"expiredEvent\": \"disconnect\"}}", event_err);
    expect_error("{\"jwt\": {\"expiredEvent\": \"connect_error\"}}", event_err);
    char longname[300];
    snprintf(longname, sizeof(longname), "{\"jwt\": {\"expiredEvent\": \"%0201d\"}}", 0);
    expect_error(longname, event_err);
    expect_error("{\"jwt\": {\"onExpiry\": \"ignore\", \"expiredEvent\": \"x\"}}",
                 "jwt.expiredEvent: has no effect with jwt.onExpiry \"ignore\"");
    expect_error("{\"jwt\": {\"onExpire\": \"ignore\"}}", "jwt.onExpire: unknown key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expires_at_matches_verification),
        cmocka_unit_test(test_config_default_and_values),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
