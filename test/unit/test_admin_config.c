/*
 * test_admin_config.c: the Admin UI settings (src/admin_config.c) through rc_config_load, so the
 * call sites in src/config.c are covered too: off by default; on with a username and a bcrypt
 * hash (file or environment); every refusal with its path: one of the two alone, a hash that is
 * not bcrypt, too costly, or that libcrypt cannot use, unknown keys, bad mode/readonly, and a
 * namespace that collides with the config's own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roomcast/admin_config.h"
#include "roomcast/common.h"
#include "roomcast/config.h"

/* bcryptjs.hashSync("pw", 4) and ("pw", 14) */
#define HASH4 "$2b$04$wGywva59Semb2QUigHlK1uw.3MYlUWBh5L1ikdZKNeAXjMcmq6gc6"
#define HASH14 "$2b$14$pyVryYEO1B1M05LokKsGMutCZ7AUWPirGG6nRNtIhjfjUyKfSOE9G"

static char g_path[64];

static void clear_env(void)
{
    static const char *const names[] = {"ROOMCAST_ADMIN_USERNAME", "ROOMCAST_ADMIN_PASSWORD_HASH",
                                        "ROOMCAST_ADMIN_READONLY", "ROOMCAST_ADMIN_MODE", "ROOMCAST_CONFIG",
                                        "ROOMCAST_JWT_SECRET"};
    for (size_t i = 0; i < RC_ARRAY_LEN(names); i++) unsetenv(names[i]);
    setenv("ROOMCAST_JWT_SECRET", "s3cret", 1);
}

static int each_setup(void **state)
{
    clear_env();
    return 0;
}

static int teardown(void **state)
{
    unlink(g_path);
    return 0;
}

/* Loads json; returns the errors joined by '\n' (heap, "" when none) and the config in *cfg
 * (disposed by the caller when the load succeeded). */
static char *load(const char *json, rc_config *cfg, int *ok)
{
    snprintf(g_path, sizeof(g_path), "/tmp/rc_test_admin_%d.json", (int)getpid());
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    rc_config_flags flags = {.port = -1, .config_path = g_path};
    rc_config_errors errs = {0};
    *ok = rc_config_load(cfg, &flags, &errs) == 0;
    size_t n = 1;
    for (size_t i = 0; i < errs.count; i++) n += strlen(errs.items[i]) + 1;
    char *all = rc_calloc(1, n);
    for (size_t i = 0; i < errs.count; i++) {
        strcat(all, errs.items[i]);
        strcat(all, "\n");
    }
    rc_config_errors_dispose(&errs);
    return all;
}

static void expect_error(const char *json, const char *want)
{
    rc_config cfg;
    int ok;
    char *errs = load(json, &cfg, &ok);
    if (ok || !strstr(errs, want)) fail_msg("want an error containing \"%s\", got:\n%s", want, errs);
    rc_free(errs);
}

static void test_off_by_default(void **state)
{
    rc_config cfg;
    int ok;
    char *errs = load("{}", &cfg, &ok);
    assert_true(ok);
    assert_false(cfg.admin.enabled);
    assert_null(cfg.admin.username);
    rc_free(errs);
    rc_config_dispose(&cfg);
}

static void test_file_and_env(void **state)
{
    rc_config cfg;
    int ok;
    char *errs = load("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"" HASH4 "\",\"readonly\":true,"
                      "\"mode\":\"production\",\"namespace\":\"/ops\"}}", &cfg, &ok);
    if (!ok) fail_msg("%s", errs);
    rc_free(errs);
    assert_true(cfg.admin.enabled);
    assert_string_equal(cfg.admin.username, "ops");
    assert_string_equal(cfg.admin.ns, "/ops");
    assert_true(cfg.admin.readonly);
    assert_false(cfg.admin.development);
    rc_config_dispose(&cfg);

    setenv("ROOMCAST_ADMIN_USERNAME", "admin", 1);
    setenv("ROOMCAST_ADMIN_PASSWORD_HASH", HASH4, 1);
    setenv("ROOMCAST_ADMIN_READONLY", "false", 1);
    errs = load("{\"admin\":{\"readonly\":true}}", &cfg, &ok);
    if (!ok) fail_msg("%s", errs);
    rc_free(errs);
    assert_true(cfg.admin.enabled);
    assert_string_equal(cfg.admin.username, "admin");
    assert_string_equal(cfg.admin.ns, "/admin");
    assert_false(cfg.admin.readonly);      /* the environment wins over the file */
    assert_true(cfg.admin.development);    /* the default, as instrument()'s */
    rc_config_dispose(&cfg);
}

static void test_refusals(void **state)
{
    expect_error("{\"admin\":{\"username\":\"ops\"}}", "admin.passwordHash: the Admin UI needs both");
    expect_error("{\"admin\":{\"passwordHash\":\"" HASH4 "\"}}", "admin.username: the Admin UI needs both");
    expect_error("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"secret\"}}",
                 "admin.passwordHash: must be a bcrypt hash");
    /* the right shape but a prefix bcrypt does not have, or a salt libcrypt refuses */
    expect_error("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"$2x$10$" "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0\"}}",
                 "admin.passwordHash: must be a bcrypt hash");
    expect_error("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"" HASH14 "\"}}",
                 "admin.passwordHash: bcrypt cost must be 4..13");
    expect_error("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"" HASH4 "\",\"pasword\":1}}",
                 "admin.pasword");
    expect_error("{\"admin\":{\"mode\":\"debug\"}}", "admin.mode: must be \"development\" or \"production\"");
    expect_error("{\"admin\":{\"readonly\":\"yes\"}}", "admin.readonly: must be true or false");
    expect_error("{\"admin\":[]}", "admin: must be an object");
    expect_error("{\"admin\":{\"username\":\"ops\",\"passwordHash\":\"" HASH4 "\"},"
                 "\"namespaces\":{\"/admin\":{\"auth\":\"none\"}}}",
                 "admin.namespace: /admin is also a namespace of the config");
    setenv("ROOMCAST_ADMIN_READONLY", "maybe", 1);
    expect_error("{}", "ROOMCAST_ADMIN_READONLY: must be true, false, 1 or 0");
}

static void test_hash_ok(void **state)
{
    const char *why;
    assert_true(rc_admin_hash_ok(HASH4, &why));
    assert_null(why);
    char y[61];
    snprintf(y, sizeof(y), "%s", HASH4);
    y[2] = 'y'; /* $2y$ (PHP's name for the same thing) */
    assert_true(rc_admin_hash_ok(y, &why));
    assert_false(rc_admin_hash_ok("$1$abc$def", &why));
    assert_non_null(why);
    assert_false(rc_admin_hash_ok("", &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_off_by_default, each_setup),
        cmocka_unit_test_setup(test_file_and_env, each_setup),
        cmocka_unit_test_setup(test_refusals, each_setup),
        cmocka_unit_test_setup(test_hash_ok, each_setup),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
