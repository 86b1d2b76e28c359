/*
 * test_redis_config.c: the Redis settings beyond the URL (src/redis_config.c) through
 * rc_config_load: file keys and env variables, host:port lists, every contradiction refused with
 * the path of the field at fault, and the TLS files loaded once (a test CA, server and client
 * certificates made here with the openssl command).
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

#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/redis_config.h"

static char g_dir[64];
static char g_ca[128], g_cert[128], g_key[128], g_other_key[128], g_junk[128], g_cfg[128];

static const char *const env_names[] = {
    "ROOMCAST_CONFIG", "ROOMCAST_REDIS_URL", "ROOMCAST_REDIS_CA_FILE", "ROOMCAST_REDIS_CERT_FILE",
    "ROOMCAST_REDIS_KEY_FILE", "ROOMCAST_REDIS_SERVER_NAME", "ROOMCAST_REDIS_SENTINELS",
    "ROOMCAST_REDIS_MASTER_NAME", "ROOMCAST_REDIS_SENTINEL_PASSWORD", "ROOMCAST_REDIS_SENTINEL_USER",
    "ROOMCAST_REDIS_CLUSTER", "ROOMCAST_JWT_SECRET",
};

static void clear_env(void)
{
    for (size_t i = 0; i < RC_ARRAY_LEN(env_names); i++) unsetenv(env_names[i]);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int run(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int setup(void **state)
{
    strcpy(g_dir, "/tmp/rc_test_redis_config_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_ca, sizeof(g_ca), "%s/ca.pem", g_dir);
    snprintf(g_cert, sizeof(g_cert), "%s/client.pem", g_dir);
    snprintf(g_key, sizeof(g_key), "%s/client.key", g_dir);
    snprintf(g_other_key, sizeof(g_other_key), "%s/other.key", g_dir);
    snprintf(g_junk, sizeof(g_junk), "%s/junk.pem", g_dir);
    snprintf(g_cfg, sizeof(g_cfg), "%s/config.json", g_dir);
    if (run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
            "-subj /CN=test-ca -keyout %s/ca.key -out %s 2>/dev/null", g_dir, g_ca) != 0)
        return -1;
    if (run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
            "-subj /CN=client -keyout %s -out %s 2>/dev/null", g_key, g_cert) != 0)
        return -1;
    if (run("openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null",
            g_other_key) != 0)
        return -1;
    write_file(g_junk, "not a certificate\n");
    return 0;
}

static int teardown(void **state)
{
    run("rm -rf %s", g_dir);
    return 0;
}

static int each_setup(void **state)
{
    clear_env();
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    unlink(g_cfg);
    return 0;
}

/* Loads with the file text (NULL: no file); returns the errors joined by '\n' (caller frees),
 * or NULL when the load succeeded (cfg then holds the result). */
static char *load(rc_config *cfg, const char *file_text)
{
    rc_config_errors errs = {0};
    rc_config_flags flags = {.port = -1};
    if (file_text) {
        write_file(g_cfg, file_text);
        flags.config_path = g_cfg;
    }
    if (rc_config_load(cfg, &flags, &errs) == 0) return NULL;
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

static void expect_error(const char *file_text, const char *needle)
{
    rc_config cfg;
    char *errs = load(&cfg, file_text);
    if (!errs) {
        rc_config_dispose(&cfg);
        fail_msg("accepted; expected an error containing \"%s\"", needle);
    }
    if (!strstr(errs, needle)) fail_msg("errors:\n%s\nlack \"%s\"", errs, needle);
    rc_free(errs);
}

static void expect_ok(rc_config *cfg, const char *file_text)
{
    char *errs = load(cfg, file_text);
    if (errs) fail_msg("refused:\n%s", errs);
}

static void test_addr_lists(void **state)
{
    rc_redis_addr *list;
    size_t n;
    const char *why = NULL;
    assert_int_equal(rc_redis_addr_list_parse(" a:1 , b.example:26380,[::1]:7,c", 26379, &list, &n, &why), 0);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].host, "a");
    assert_int_equal(list[0].port, 1);
    assert_string_equal(list[1].host, "b.example");
    assert_int_equal(list[1].port, 26380);
    assert_string_equal(list[2].host, "::1");
    assert_int_equal(list[2].port, 7);
    assert_string_equal(list[3].host, "c");
    assert_int_equal(list[3].port, 26379);
    rc_redis_addr_list_free(list, n);

    static const char *const bad[] = {"", ",", "a:1,,b:2", "a:0", "a:65536", "a:", "a:x", ":1",
                                      "[::1", "[zz]:1", "a b:1", "a:1:2", "redis://a:1", "[::1]x"};
    for (size_t i = 0; i < RC_ARRAY_LEN(bad); i++) {
        why = NULL;
        if (rc_redis_addr_list_parse(bad[i], 6379, &list, &n, &why) == 0)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(why);
        assert_null(list);
    }
}

static void test_defaults_and_wanted(void **state)
{
    rc_config cfg;
    expect_ok(&cfg, NULL);
    assert_null(cfg.redis.ca_file);
    assert_int_equal(cfg.redis.sentinel_count, 0);
    assert_int_equal(rc_redis_config_wanted(&cfg.redis, cfg.redis_url), 0);
    rc_config_dispose(&cfg);

    setenv("ROOMCAST_REDIS_CLUSTER", "10.0.0.1:7000,10.0.0.2:7000", 1);
    expect_ok(&cfg, NULL);
    assert_int_equal(cfg.redis.cluster_count, 2);
    assert_string_equal(cfg.redis.cluster[1].host, "10.0.0.2");
    assert_int_equal(cfg.redis.cluster[1].port, 7000);
    assert_int_equal(rc_redis_config_wanted(&cfg.redis, cfg.redis_url), 1);
    rc_config_dispose(&cfg);
}

static void test_file_keys(void **state)
{
    rc_config cfg;
    char text[1024];
    snprintf(text, sizeof(text),
             "{\"redis\":{\"url\":\"rediss://:pw@redis.internal:6380\",\"tls\":{\"ca\":\"%s\","
             "\"cert\":\"%s\",\"key\":\"%s\",\"serverName\":\"redis.internal\"}}}",
             g_ca, g_cert, g_key);
    expect_ok(&cfg, text);
    assert_string_equal(cfg.redis.ca_file, g_ca);
    assert_string_equal(cfg.redis.cert_file, g_cert);
    assert_string_equal(cfg.redis.key_file, g_key);
    assert_string_equal(cfg.redis.server_name, "redis.internal");
    rc_config_dispose(&cfg);

    expect_ok(&cfg, "{\"redis\":{\"sentinels\":[\"s1:26379\",\"s2\"],\"masterName\":\"mymaster\","
                    "\"sentinelPassword\":\"x\",\"url\":\"redis://:pw@mymaster/2\"}}");
    assert_int_equal(cfg.redis.sentinel_count, 2);
    assert_int_equal(cfg.redis.sentinels[1].port, 26379);
    assert_string_equal(cfg.redis.master_name, "mymaster");
    assert_string_equal(cfg.redis.sentinel_password, "x");
    rc_config_dispose(&cfg);

    /* the environment overrides the file */
    setenv("ROOMCAST_REDIS_SENTINELS", "e1:1", 1);
    setenv("ROOMCAST_REDIS_MASTER_NAME", "envmaster", 1);
    expect_ok(&cfg, "{\"redis\":{\"sentinels\":[\"s1:26379\"],\"masterName\":\"m\"}}");
    assert_int_equal(cfg.redis.sentinel_count, 1);
    assert_string_equal(cfg.redis.sentinels[0].host, "e1");
    assert_string_equal(cfg.redis.master_name, "envmaster");
    rc_config_dispose(&cfg);
}

static void test_refused(void **state)
{
    expect_error("{\"redis\":{\"tls\":{\"ca\":\"/x\",\"verify\":false}}}", "redis.tls.verify: unknown key");
    expect_error("{\"redis\":{\"tls\":\"yes\"}}", "redis.tls: must be an object");
    expect_error("{\"redis\":{\"sentinels\":\"a:1\"}}", "redis.sentinels: must be an array");
    expect_error("{\"redis\":{\"sentinels\":[\"a:1\",\"b:x\"],\"masterName\":\"m\"}}", "redis.sentinels[1]: port");
    expect_error("{\"redis\":{\"cluster\":[\"a:1\",5]}}", "redis.cluster[1]: must be host:port");
    expect_error("{\"redis\":{\"sentinels\":[\"a:1\"]}}", "redis.sentinels: sentinels need the master's name");
    expect_error("{\"redis\":{\"masterName\":\"m\"}}", "redis.masterName: a master name needs sentinels");
    expect_error("{\"redis\":{\"sentinels\":[\"a:1\"],\"masterName\":\"m\",\"cluster\":[\"b:1\"]}}",
                 "redis.cluster: a cluster and sentinels cannot be used together");
    expect_error("{\"redis\":{\"cluster\":[\"b:1\"],\"url\":\"redis://b:1/3\"}}", "redis.cluster: a cluster has only database 0");
    expect_error("{\"redis\":{\"cluster\":[\"b:1\"],\"url\":\"unix:///tmp/r.sock\"}}", "redis.cluster: cannot be combined with a unix://");
    expect_error("{\"redis\":{\"sentinelPassword\":\"p\",\"url\":\"redis://h\"}}", "redis.sentinelPassword: given without sentinels");
    expect_error("{\"redis\":{\"url\":\"redis://h\",\"tls\":{\"ca\":\"/etc/ssl/certs/ca-certificates.crt\"}}}",
                 "redis.tls.ca: TLS settings need a rediss:// Redis URL");
    expect_error("{\"redis\":{\"url\":\"unix:///tmp/r.sock\",\"tls\":{\"serverName\":\"x\"}}}",
                 "redis.tls.serverName: TLS settings cannot be used with a unix:// Redis URL");
    expect_error("{\"redis\":{\"url\":\"rediss://h\",\"tls\":{\"cert\":\"/x.pem\"}}}",
                 "redis.tls.cert: a client certificate needs its key");
    expect_error("{\"redis\":{\"url\":\"rediss://h\",\"tls\":{\"key\":\"/x.key\"}}}",
                 "redis.tls.key: a client key needs its certificate");
    expect_error("{\"redis\":{\"url\":\"redis+tls://h\"}}", "redis.url: must start with redis://, rediss:// or unix://");

    setenv("ROOMCAST_REDIS_SENTINELS", "a:1,,b", 1);
    expect_error(NULL, "ROOMCAST_REDIS_SENTINELS: must be host:port");
    clear_env();
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    setenv("ROOMCAST_REDIS_CLUSTER", "a:1", 1);
    setenv("ROOMCAST_REDIS_SENTINELS", "b:1", 1);
    setenv("ROOMCAST_REDIS_MASTER_NAME", "m", 1);
    expect_error(NULL, "ROOMCAST_REDIS_CLUSTER: a cluster and sentinels cannot be used together");
}

static void test_tls_files(void **state)
{
    rc_config cfg;
    char text[1024];

    /* no CA file: the system's CAs */
    setenv("ROOMCAST_REDIS_URL", "rediss://redis.example", 1);
    expect_ok(&cfg, NULL);
    assert_null(cfg.redis.ca_file);
    rc_config_dispose(&cfg);

    setenv("ROOMCAST_REDIS_CA_FILE", g_ca, 1);
    setenv("ROOMCAST_REDIS_CERT_FILE", g_cert, 1);
    setenv("ROOMCAST_REDIS_KEY_FILE", g_key, 1);
    expect_ok(&cfg, NULL);
    rc_config_dispose(&cfg);

    /* each error names the variable, the file and the reason */
    setenv("ROOMCAST_REDIS_CA_FILE", "/nonexistent/ca.pem", 1);
    expect_error(NULL, "ROOMCAST_REDIS_CA_FILE: /nonexistent/ca.pem: No such file or directory");
    setenv("ROOMCAST_REDIS_CA_FILE", g_junk, 1);
    snprintf(text, sizeof(text), "ROOMCAST_REDIS_CA_FILE: %s: ", g_junk);
    expect_error(NULL, text);
    setenv("ROOMCAST_REDIS_CA_FILE", g_ca, 1);
    setenv("ROOMCAST_REDIS_CERT_FILE", g_junk, 1);
    snprintf(text, sizeof(text), "ROOMCAST_REDIS_CERT_FILE: %s: ", g_junk);
    expect_error(NULL, text);
    setenv("ROOMCAST_REDIS_CERT_FILE", g_cert, 1);
    setenv("ROOMCAST_REDIS_KEY_FILE", g_other_key, 1); /* a key that is not the certificate's */
    snprintf(text, sizeof(text), "ROOMCAST_REDIS_KEY_FILE: %s: key values mismatch", g_other_key);
    expect_error(NULL, text);

    clear_env();
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    snprintf(text, sizeof(text), "{\"redis\":{\"url\":\"rediss://h\",\"tls\":{\"ca\":\"%s\"}}}", g_junk);
    char needle[256];
    snprintf(needle, sizeof(needle), "redis.tls.ca: %s: ", g_junk);
    expect_error(text, needle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_lists),
        cmocka_unit_test_setup(test_defaults_and_wanted, each_setup),
        cmocka_unit_test_setup(test_file_keys, each_setup),
        cmocka_unit_test_setup(test_refused, each_setup),
        cmocka_unit_test_setup(test_tls_files, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
