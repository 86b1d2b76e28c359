/*
 * test_config_dev.c: the development settings (src/config_dev.c): off by default, the "dev"
 * object of the file, ROOMCAST_DEV_PAGE and ROOMCAST_DEV_CLIENT_BUNDLE over it, and each
 * mistake refused with its path: unknown keys, wrong types, a bundle without the page, a bundle
 * that cannot be read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "roomcast/config_dev.h"
#include "roomcast/errors.h"

static void clear_env(void)
{
    unsetenv("ROOMCAST_DEV_PAGE");
    unsetenv("ROOMCAST_DEV_CLIENT_BUNDLE");
}

/* Parses json (NULL: no "dev" object) then the environment; returns the errors joined by '|'. */
static char *load(rc_dev_config *c, const char *json, char *buf, size_t n)
{
    rc_config_errors errs = {0};
    rc_dev_config_init(c);
    cJSON *j = json ? cJSON_Parse(json) : NULL;
    if (json) assert_non_null(j);
    rc_dev_config_parse(c, j, &errs);
    rc_dev_config_env(c, &errs);
    cJSON_Delete(j);
    buf[0] = '\0';
    for (size_t i = 0; i < errs.count; i++) {
        if (i) strncat(buf, "|", n - strlen(buf) - 1);
        strncat(buf, errs.items[i], n - strlen(buf) - 1);
    }
    rc_config_errors_dispose(&errs);
    return buf;
}

static void test_off_by_default(void **state)
{
    (void)state;
    char e[512];
    rc_dev_config c;
    clear_env();
    assert_string_equal(load(&c, NULL, e, sizeof(e)), "");
    assert_int_equal(c.page, 0);
    assert_null(c.client_bundle);
    rc_dev_config_dispose(&c);
    assert_string_equal(load(&c, "null", e, sizeof(e)), "");
    assert_int_equal(c.page, 0);
    rc_dev_config_dispose(&c);
}

static void test_file_and_env(void **state)
{
    (void)state;
    char e[512];
    rc_dev_config c;
    clear_env();
    assert_string_equal(load(&c, "{\"page\": true, \"clientBundle\": \"/dev/null\"}", e, sizeof(e)), "");
    assert_int_equal(c.page, 1);
    assert_string_equal(c.client_bundle, "/dev/null");
    rc_dev_config_dispose(&c);

    setenv("ROOMCAST_DEV_PAGE", "0", 1); /* the environment wins over the file */
    assert_string_equal(load(&c, "{\"page\": true}", e, sizeof(e)), "");
    assert_int_equal(c.page, 0);
    rc_dev_config_dispose(&c);
    setenv("ROOMCAST_DEV_PAGE", "1", 1);
    setenv("ROOMCAST_DEV_CLIENT_BUNDLE", "/dev/null", 1);
    assert_string_equal(load(&c, NULL, e, sizeof(e)), "");
    assert_int_equal(c.page, 1);
    assert_string_equal(c.client_bundle, "/dev/null");
    rc_dev_config_dispose(&c);
    setenv("ROOMCAST_DEV_PAGE", "", 1); /* empty is unset */
    unsetenv("ROOMCAST_DEV_CLIENT_BUNDLE");
    assert_string_equal(load(&c, "{\"page\": false}", e, sizeof(e)), "");
    assert_int_equal(c.page, 0);
    rc_dev_config_dispose(&c);
    clear_env();
}

static void test_refused(void **state)
{
    (void)state;
    char e[1024];
    rc_dev_config c;
    clear_env();
    assert_string_equal(load(&c, "{\"page\": \"yes\", \"clientBundle\": \"\", \"pages\": 1}", e, sizeof(e)),
                        "dev.pages: unknown key|dev.page: must be true or false|"
                        "dev.clientBundle: must be a non-empty path");
    rc_dev_config_dispose(&c);
    assert_string_equal(load(&c, "[]", e, sizeof(e)), "dev: must be an object like {\"page\":true}");
    rc_dev_config_dispose(&c);
    assert_string_equal(load(&c, "{\"clientBundle\": \"/dev/null\"}", e, sizeof(e)),
                        "dev.clientBundle: is served by the development page only: set dev.page "
                        "(ROOMCAST_DEV_PAGE=1) too, or leave it out");
    rc_dev_config_dispose(&c);
    assert_string_equal(load(&c, "{\"page\": true, \"clientBundle\": \"/nonexistent/socket.io.min.js\"}", e, sizeof(e)),
                        "dev.clientBundle: cannot read /nonexistent/socket.io.min.js: No such file or directory");
    rc_dev_config_dispose(&c);
    setenv("ROOMCAST_DEV_PAGE", "yes", 1);
    assert_string_equal(load(&c, NULL, e, sizeof(e)), "ROOMCAST_DEV_PAGE: must be 1, true, 0 or false");
    rc_dev_config_dispose(&c);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_file_and_env),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
