/*
 * test_config.c: rc_config_load (src/config.c): defaults, file -> env -> flags precedence,
 * every validation error with its exact path, the JWT key checks (with keys generated here),
 * and that a failed load leaves the config zeroed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "roomcast/common.h"
#include "roomcast/config.h"
#include "roomcast/log.h"
#include "roomcast/rules.h"

static char g_dir[64];
static char g_rsa[128], g_ec[128], g_junk[128];

static const char *const env_names[] = {
    "ROOMCAST_CONFIG", "ROOMCAST_PORT", "ROOMCAST_BIND", "ROOMCAST_REDIS_URL", "ROOMCAST_PREFIX", "ROOMCAST_SOCKETIO_PREFIX",
    "ROOMCAST_NODE_ID", "ROOMCAST_API_KEY", "ROOMCAST_JWT_SECRET", "ROOMCAST_JWT_PUBLIC_KEY_FILE",
    "ROOMCAST_JWT_ALGS", "ROOMCAST_CORS_ORIGINS", "ROOMCAST_LOG_LEVEL", "ROOMCAST_LOG_FORMAT",
    "ROOMCAST_DEV_PAGE", "ROOMCAST_DEV_CLIENT_BUNDLE", "ROOMCAST_SEND_PATH",
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

static void write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, key), 1);
    fclose(f);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    strcpy(g_dir, "/tmp/rc_test_config_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_rsa, sizeof(g_rsa), "%s/rsa.pem", g_dir);
    snprintf(g_ec, sizeof(g_ec), "%s/ec.pem", g_dir);
    snprintf(g_junk, sizeof(g_junk), "%s/junk.pem", g_dir);
    write_key(g_rsa, EVP_RSA_gen(2048));
    write_key(g_ec, EVP_EC_gen("P-256"));
    write_file(g_junk, "not a key\n");
    return 0;
}

static int teardown(void **state)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/config.json", g_dir);
    unlink(path);
    unlink(g_rsa);
    unlink(g_ec);
    unlink(g_junk);
    rmdir(g_dir);
    return 0;
}

static int each_setup(void **state)
{
    clear_env();
    return 0;
}

/* Writes `json` to a temp file and returns its path (static buffer). */
static const char *config_file(const char *json)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/config.json", g_dir);
    write_file(path, json);
    return path;
}

static const rc_config_flags no_flags = {.port = -1};

static void dump(const rc_config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++) print_error("  %s\n", errs->items[i]);
}

/* Loads with the given file JSON (NULL: none) and flags; asserts success. */
static void load_ok(rc_config *cfg, const char *json, const rc_config_flags *flags)
{
    rc_config_flags f = flags ? *flags : no_flags;
    if (json) f.config_path = config_file(json);
    rc_config_errors errs = {0};
    int r = rc_config_load(cfg, &f, &errs);
    if (r != 0) dump(&errs);
    assert_int_equal(r, 0);
    assert_int_equal(errs.count, 0);
    rc_config_errors_dispose(&errs);
}

static int is_zero(const rc_config *cfg)
{
    static const rc_config zero;
    return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

/* Loads and expects exactly these errors, in this order. */
static void expect_errors(const char *json, const rc_config_flags *flags, const char *const *want)
{
    rc_config_flags f = flags ? *flags : no_flags;
    if (json) f.config_path = config_file(json);
    rc_config cfg;
    memset(&cfg, 0xab, sizeof(cfg));
    rc_config_errors errs = {0};
    assert_int_equal(rc_config_load(&cfg, &f, &errs), -1);
    assert_true(is_zero(&cfg));
    size_t n = 0;
    while (want[n]) n++;
    int ok = errs.count == n;
    for (size_t i = 0; ok && i < n; i++) ok = strcmp(errs.items[i], want[i]) == 0;
    if (!ok) {
        dump(&errs);
        for (size_t i = 0; i < n; i++) print_error("  want: %s\n", want[i]);
        fail_msg("errors differ");
    }
    rc_config_errors_dispose(&errs);
}

#define EXPECT(json, flags, ...) expect_errors(json, flags, (const char *const[]){__VA_ARGS__, NULL})

/* ---- tests -------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    setenv("ROOMCAST_JWT_SECRET", "s3cret", 1);
    rc_config cfg;
    load_ok(&cfg, NULL, NULL);
    assert_string_equal(cfg.bind, "0.0.0.0");
    assert_int_equal(cfg.port, 3000);
    assert_string_equal(cfg.path, "/socket.io/");
    char want_id[300], host[256] = "";
    gethostname(host, sizeof(host) - 1);
    snprintf(want_id, sizeof(want_id), "%s-%ld", host, (long)getpid());
    assert_string_equal(cfg.node_id, want_id);
    assert_string_equal(cfg.prefix, "roomcast");
    assert_null(cfg.redis_url);
    assert_null(cfg.api_key);
    assert_int_equal(cfg.ping_interval_ms, 25000);
    assert_int_equal(cfg.ping_timeout_ms, 20000);
    assert_int_equal(cfg.connect_timeout_ms, 10000);
    assert_int_equal(cfg.upgrade_timeout_ms, 10000);
    assert_int_equal(cfg.max_payload, 1000000);
    assert_int_equal(cfg.allow_polling, 1);
    assert_int_equal(cfg.allow_websocket, 1);
    assert_int_equal(cfg.http_max_header_bytes, 16384);
    assert_int_equal(cfg.http_max_body_bytes, 1000000);
    assert_int_equal(cfg.http_header_timeout_ms, 10000);
    assert_int_equal(cfg.http_keepalive_timeout_ms, 15000);
    assert_int_equal(cfg.max_outbound_bytes, 1048576);
    assert_int_equal(cfg.max_connections, 100000);
    assert_int_equal(cfg.max_pending_sessions, 10000);
    assert_int_equal(cfg.max_pending_per_address, 128);
    assert_int_equal(cfg.max_pending_per_connection, 8);
    assert_int_equal(cfg.trusted_proxy_count, 0);
    assert_int_equal(cfg.cors_origin_count, 0);
    assert_int_equal(cfg.cors_credentials, 1);
    assert_int_equal(cfg.jwt.algs, RC_ALG_HS256);
    assert_string_equal(cfg.jwt.hs_secret, "s3cret");
    assert_int_equal(cfg.jwt.hs_secret_len, 6);
    assert_null(cfg.jwt.public_key_pem);
    assert_int_equal(cfg.jwt.leeway_s, 30);
    assert_null(cfg.jwt.issuer);
    assert_null(cfg.jwt.audience);
    assert_string_equal(cfg.jwt.user_claim, "sub");
    assert_int_equal(cfg.log_level, RC_LOG_INFO);
    assert_int_equal(cfg.log_json, !isatty(2));
    assert_int_equal(cfg.drain_grace_ms, 30000);
    assert_null(cfg.config_path);
    assert_int_equal(rc_rules_ns_count(cfg.rules), 1);
    assert_string_equal(rc_ns_rules_name(rc_rules_ns_at(cfg.rules, 0)), "/");
    rc_config_dispose(&cfg);
    assert_true(is_zero(&cfg));

    /* NULL flags and NULL errs are fine */
    assert_int_equal(rc_config_load(&cfg, NULL, NULL), 0);
    rc_config_dispose(&cfg);
}

static void test_defaults_need_a_secret(void **state)
{
    EXPECT(NULL, NULL, "jwt.secret: required when an HS algorithm is allowed (or set ROOMCAST_JWT_SECRET)");
    /* ... but not when no namespace verifies tokens */
    rc_config cfg;
    load_ok(&cfg, "{\"namespaces\": {\"/\": {\"auth\": \"none\"}, \"/b\": {\"auth\": \"none\"}}}", NULL);
    assert_int_equal(rc_rules_ns_count(cfg.rules), 2);
    rc_config_dispose(&cfg);
}

static const char full_file[] =
    "{\"$comment\": \"every key\","
    " \"listen\": {\"bind\": \"127.0.0.1\", \"port\": 4000},"
    " \"path\": \"/rt\", \"nodeId\": \"node-a\","
    " \"redis\": {\"url\": \"redis://:pw@127.0.0.1:6379/1\", \"prefix\": \"app:rc\"},"
    " \"api\": {\"key\": \"k1\"},"
    " \"engine\": {\"pingInterval\": 1000, \"pingTimeout\": 2000, \"connectTimeout\": 3000, \"upgradeTimeout\": 4000,"
    "            \"maxPayload\": 5000, \"transports\": [\"websocket\"]},"
    " \"http\": {\"maxHeaderBytes\": 8192, \"headerTimeout\": 5000, \"keepAliveTimeout\": 6000},"
    " \"limits\": {\"maxOutboundBytes\": 65536, \"maxConnections\": 10},"
    " \"cors\": {\"origins\": [\"http://a\", \"http://b\"], \"credentials\": false},"
    " \"jwt\": {\"secret\": \"file-secret\", \"algorithms\": [\"HS256\", \"HS512\"], \"leeway\": 0,"
    "         \"issuer\": \"iss\", \"audience\": \"aud\", \"userClaim\": \"userId\"},"
    " \"log\": {\"level\": \"debug\", \"format\": \"json\"},"
    " \"drain\": {\"grace\": 7000},"
    " \"namespaces\": {\"/chat\": {}, \"/n\": {\"auth\": \"optional\"}}}";

static void test_file(void **state)
{
    rc_config cfg;
    load_ok(&cfg, full_file, NULL);
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_int_equal(cfg.port, 4000);
    assert_string_equal(cfg.path, "/rt/");
    assert_string_equal(cfg.node_id, "node-a");
    assert_string_equal(cfg.redis_url, "redis://:pw@127.0.0.1:6379/1");
    assert_string_equal(cfg.prefix, "app:rc");
    assert_string_equal(cfg.api_key, "k1");
    assert_int_equal(cfg.ping_interval_ms, 1000);
    assert_int_equal(cfg.ping_timeout_ms, 2000);
    assert_int_equal(cfg.connect_timeout_ms, 3000);
    assert_int_equal(cfg.upgrade_timeout_ms, 4000);
    assert_int_equal(cfg.max_payload, 5000);
    assert_int_equal(cfg.allow_polling, 0);
    assert_int_equal(cfg.allow_websocket, 1);
    assert_int_equal(cfg.http_max_header_bytes, 8192);
    assert_int_equal(cfg.http_max_body_bytes, 5000); /* follows maxPayload */
    assert_int_equal(cfg.http_header_timeout_ms, 5000);
    assert_int_equal(cfg.http_keepalive_timeout_ms, 6000);
    assert_int_equal(cfg.max_outbound_bytes, 65536);
    assert_int_equal(cfg.max_connections, 10);
    assert_int_equal(cfg.cors_origin_count, 2);
    assert_string_equal(cfg.cors_origins[1], "http://b");
    assert_int_equal(cfg.cors_credentials, 0);
    assert_string_equal(cfg.jwt.hs_secret, "file-secret");
    assert_int_equal(cfg.jwt.algs, RC_ALG_HS256 | RC_ALG_HS512);
    assert_int_equal(cfg.jwt.leeway_s, 0);
    assert_string_equal(cfg.jwt.issuer, "iss");
    assert_string_equal(cfg.jwt.audience, "aud");
    assert_string_equal(cfg.jwt.user_claim, "userId");
    assert_int_equal(cfg.log_level, RC_LOG_DEBUG);
    assert_int_equal(cfg.log_json, 1);
    assert_int_equal(cfg.drain_grace_ms, 7000);
    assert_non_null(strstr(cfg.config_path, "config.json"));
    assert_int_equal(rc_rules_ns_count(cfg.rules), 2);
    assert_non_null(rc_rules_find_ns(cfg.rules, "/n", 2));
    rc_config_dispose(&cfg);

    /* explicit maxBodyBytes; path already ending in '/'; null = default; text logs */
    load_ok(&cfg, "{\"path\": \"/x/\", \"http\": {\"maxBodyBytes\": 123}, \"redis\": {\"url\": null}, \"namespaces\": null,"
                  " \"jwt\": {\"secret\": \"s\"}, \"log\": {\"format\": \"text\", \"level\": \"warning\"}}", NULL);
    assert_string_equal(cfg.path, "/x/");
    assert_int_equal(cfg.http_max_body_bytes, 123);
    assert_int_equal(cfg.max_payload, 1000000);
    assert_null(cfg.redis_url);
    assert_int_equal(cfg.log_json, 0);
    assert_int_equal(cfg.log_level, RC_LOG_WARN);
    assert_int_equal(rc_rules_ns_count(cfg.rules), 1); /* namespaces: null -> the default */
    rc_config_dispose(&cfg);
}

static void test_precedence(void **state)
{
    const char *file = "{\"listen\": {\"port\": 4000, \"bind\": \"10.0.0.1\"}, \"nodeId\": \"file\","
                       " \"redis\": {\"url\": \"redis://file:1\", \"prefix\": \"file\"}, \"api\": {\"key\": \"file\"},"
                       " \"jwt\": {\"secret\": \"file\", \"algorithms\": [\"HS384\"]}, \"cors\": {\"origins\": [\"http://f\"]},"
                       " \"log\": {\"level\": \"debug\", \"format\": \"text\"}}";
    rc_config cfg;
    /* file only */
    load_ok(&cfg, file, NULL);
    assert_int_equal(cfg.port, 4000);
    assert_string_equal(cfg.redis_url, "redis://file:1");
    assert_string_equal(cfg.node_id, "file");
    assert_int_equal(cfg.jwt.algs, RC_ALG_HS384);
    rc_config_dispose(&cfg);

    /* env over file */
    setenv("ROOMCAST_PORT", "5000", 1);
    setenv("ROOMCAST_BIND", "10.0.0.2", 1);
    setenv("ROOMCAST_REDIS_URL", "redis://env:2", 1);
    setenv("ROOMCAST_PREFIX", "env", 1);
    setenv("ROOMCAST_NODE_ID", "env", 1);
    setenv("ROOMCAST_API_KEY", "env", 1);
    setenv("ROOMCAST_JWT_SECRET", "env-secret", 1);
    setenv("ROOMCAST_JWT_ALGS", "HS256, HS512", 1);
    setenv("ROOMCAST_CORS_ORIGINS", " http://e1 ,, http://e2,", 1);
    setenv("ROOMCAST_LOG_LEVEL", "error", 1);
    setenv("ROOMCAST_LOG_FORMAT", "json", 1);
    load_ok(&cfg, file, NULL);
    assert_int_equal(cfg.port, 5000);
    assert_string_equal(cfg.bind, "10.0.0.2");
    assert_string_equal(cfg.redis_url, "redis://env:2");
    assert_string_equal(cfg.prefix, "env");
    assert_string_equal(cfg.node_id, "env");
    assert_string_equal(cfg.api_key, "env");
    assert_string_equal(cfg.jwt.hs_secret, "env-secret");
    assert_int_equal(cfg.jwt.hs_secret_len, 10);
    assert_int_equal(cfg.jwt.algs, RC_ALG_HS256 | RC_ALG_HS512);
    assert_int_equal(cfg.cors_origin_count, 2);
    assert_string_equal(cfg.cors_origins[0], "http://e1");
    assert_string_equal(cfg.cors_origins[1], "http://e2");
    assert_int_equal(cfg.log_level, RC_LOG_ERROR);
    assert_int_equal(cfg.log_json, 1);
    rc_config_dispose(&cfg);

    /* flags over env */
    rc_config_flags flags = {.port = 6000, .redis_url = "redis://flag:3", .node_id = "flag"};
    load_ok(&cfg, file, &flags);
    assert_int_equal(cfg.port, 6000);
    assert_string_equal(cfg.redis_url, "redis://flag:3");
    assert_string_equal(cfg.node_id, "flag");
    rc_config_dispose(&cfg);

    /* an empty variable is the same as an unset one */
    setenv("ROOMCAST_PORT", "", 1);
    setenv("ROOMCAST_REDIS_URL", "", 1);
    load_ok(&cfg, file, NULL);
    assert_int_equal(cfg.port, 4000);
    assert_string_equal(cfg.redis_url, "redis://file:1");
    rc_config_dispose(&cfg);

    /* ROOMCAST_CONFIG names the file; --config wins over it */
    clear_env();
    setenv("ROOMCAST_CONFIG", config_file("{\"listen\": {\"port\": 4444}, \"jwt\": {\"secret\": \"s\"}}"), 1);
    assert_int_equal(rc_config_load(&cfg, &no_flags, NULL), 0);
    assert_int_equal(cfg.port, 4444);
    rc_config_dispose(&cfg);
    char other[160];
    snprintf(other, sizeof(other), "%s/other.json", g_dir);
    write_file(other, "{\"listen\": {\"port\": 5555}, \"jwt\": {\"secret\": \"s\"}}");
    rc_config_flags f2 = {.port = -1, .config_path = other};
    assert_int_equal(rc_config_load(&cfg, &f2, NULL), 0);
    assert_int_equal(cfg.port, 5555);
    assert_string_equal(cfg.config_path, other);
    rc_config_dispose(&cfg);
    unlink(other);
}

static void test_file_errors(void **state)
{
    EXPECT("{\"listen\": {\"port\": 0, \"bind\": \"\", \"host\": 1}, \"path\": \"socket\", \"nodeId\": \"a b\","
           " \"redis\": {\"url\": \"http://x\", \"prefix\": \"a b\"}, \"api\": {\"key\": 5}, \"extra\": true,"
           " \"engine\": {\"pingInterval\": 0, \"pingTimeout\": -1, \"connectTimeout\": 1.5, \"upgradeTimeout\": \"10\","
           "            \"maxPayload\": 100000001, \"transports\": [\"polling\", \"carrier-pigeon\"]},"
           " \"http\": {\"maxHeaderBytes\": 0, \"maxBodyBytes\": 2e9, \"headerTimeout\": 86400001, \"keepAliveTimeout\": 0},"
           " \"limits\": {\"maxOutboundBytes\": -5, \"maxConnections\": 0},"
           " \"cors\": {\"origins\": [\"\", 3], \"credentials\": \"yes\"},"
           " \"jwt\": {\"secret\": \"\", \"algorithms\": [\"none\", \"HS999\", 5], \"leeway\": -1, \"userClaim\": \"\"},"
           " \"log\": {\"level\": \"loud\", \"format\": \"xml\"}, \"drain\": {\"grace\": 0},"
           " \"namespaces\": {\"/\": {\"events\": {\"e\": [{\"join\": 1}]}}}}",
           NULL,
           "extra: unknown key",
           "listen.host: unknown key",
           "listen.bind: must not be empty",
           "listen.port: must be an integer 1..65535",
           "path: must start with '/', be at most 256 bytes, without spaces, '?' or '#'",
           "nodeId: must be 1..128 characters of A-Z a-z 0-9 . _ -",
           "redis.url: must start with redis://, rediss:// or unix:// (expected redis[s]://[:password@]host[:port][/db] or unix:///path)",
           "redis.prefix: must be 1..64 printable characters without spaces",
           "api.key: must be a string",
           "engine.pingInterval: must be a positive integer (ms)",
           "engine.pingTimeout: must be a positive integer (ms)",
           "engine.connectTimeout: must be a positive integer (ms)",
           "engine.upgradeTimeout: must be a positive integer (ms)",
           "engine.maxPayload: must be at most 100000000",
           "engine.transports[1]: must be \"polling\" or \"websocket\"",
           "http.maxHeaderBytes: must be a positive integer (bytes)",
           "http.maxBodyBytes: must be at most 100000000",
           "http.headerTimeout: must be at most 86400000",
           "http.keepAliveTimeout: must be a positive integer (ms)",
           "limits.maxOutboundBytes: must be a positive integer (bytes)",
           "limits.maxConnections: must be a positive integer",
           "cors.credentials: must be a boolean",
           "cors.origins[0]: must be a non-empty string",
           "cors.origins[1]: must be a non-empty string",
           "jwt.secret: must not be empty",
           "jwt.userClaim: must not be empty",
           "jwt.leeway: must be an integer 0..86400 (seconds)",
           "jwt.algorithms[0]: none is never allowed",
           "jwt.algorithms[1]: unknown algorithm",
           "jwt.algorithms[2]: must be an algorithm name such as \"HS256\"",
           "log.level: must be debug, info, warn or error",
           "log.format: must be \"json\" or \"text\"",
           "drain.grace: must be a positive integer (ms)",
           "namespaces./.events.e[0].join: room template must be a string",
           "jwt.secret: required when an HS algorithm is allowed (or set ROOMCAST_JWT_SECRET)");

    EXPECT("{\"engine\": 5, \"jwt\": {\"secret\": \"s\", \"algorithms\": []}, \"cors\": {\"origins\": \"*\"},"
           " \"limits\": [], \"namespaces\": []}", NULL,
           "engine: must be an object",
           "limits: must be an object",
           "cors.origins: must be an array of origins",
           "jwt.algorithms: must be a non-empty array of algorithm names",
           "namespaces: must be an object (namespace name -> definition)");
    EXPECT("{\"engine\": {\"transports\": []}, \"jwt\": {\"secret\": \"s\"}}", NULL,
           "engine.transports: must be a non-empty array of \"polling\", \"websocket\"");
    EXPECT("{\"listen\": {\"port\": 1}, \"listen\": {\"port\": 2}, \"jwt\": {\"secret\": \"s\"}}", NULL,
           "listen: duplicate key");
}

static void test_bad_files(void **state)
{
    char missing[160], want[300];
    snprintf(missing, sizeof(missing), "%s/missing.json", g_dir);
    rc_config_flags f = {.port = -1, .config_path = missing};
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", missing);
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    EXPECT(NULL, &f, want);

    const char *path = config_file("{\n  \"listen\": {\"port\": 1,}\n}");
    snprintf(want, sizeof(want), "%s: invalid JSON near line 2, column 25", path);
    f.config_path = path;
    EXPECT(NULL, &f, want);

    path = config_file("[1, 2]");
    snprintf(want, sizeof(want), "%s: the top level must be a JSON object", path);
    EXPECT(NULL, &f, want);

    path = config_file("{} trailing");
    snprintf(want, sizeof(want), "%s: invalid JSON near line 1, column 4", path);
    EXPECT(NULL, &f, want);

    f.config_path = g_dir; /* a directory */
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", g_dir);
    EXPECT(NULL, &f, want);
}

static void test_env_and_flag_errors(void **state)
{
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    setenv("ROOMCAST_PORT", "30x", 1);
    setenv("ROOMCAST_REDIS_URL", "redis//nope", 1);
    setenv("ROOMCAST_PREFIX", "a b", 1);
    setenv("ROOMCAST_NODE_ID", "a/b", 1);
    setenv("ROOMCAST_JWT_ALGS", "HS256,none", 1);
    setenv("ROOMCAST_LOG_LEVEL", "loud", 1);
    setenv("ROOMCAST_LOG_FORMAT", "xml", 1);
    rc_config_flags flags = {.port = 70000, .redis_url = "redis://", .node_id = ""};
    EXPECT(NULL, &flags,
           "ROOMCAST_PORT: must be an integer 1..65535",
           "ROOMCAST_REDIS_URL: must start with redis://, rediss:// or unix:// (expected redis[s]://[:password@]host[:port][/db] or unix:///path)",
           "ROOMCAST_PREFIX: must be 1..64 printable characters without spaces",
           "ROOMCAST_NODE_ID: must be 1..128 characters of A-Z a-z 0-9 . _ -",
           "ROOMCAST_JWT_ALGS: none is never allowed",
           "ROOMCAST_LOG_LEVEL: must be debug, info, warn or error",
           "ROOMCAST_LOG_FORMAT: must be \"json\" or \"text\"",
           "--port: must be an integer 1..65535",
           "--redis: missing or invalid host (expected redis[s]://[:password@]host[:port][/db] or unix:///path)",
           "--node-id: must be 1..128 characters of A-Z a-z 0-9 . _ -");
    clear_env();
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    setenv("ROOMCAST_PORT", "0", 1);
    EXPECT(NULL, NULL, "ROOMCAST_PORT: must be an integer 1..65535");
}

static void test_jwt_keys(void **state)
{
    rc_config cfg;
    char file[512];

    /* RS256 with an RSA key: the PEM is read into the config; no HS secret needed */
    snprintf(file, sizeof(file), "{\"jwt\": {\"algorithms\": [\"RS256\"], \"publicKeyFile\": \"%s\"}}", g_rsa);
    load_ok(&cfg, file, NULL);
    assert_int_equal(cfg.jwt.algs, RC_ALG_RS256);
    assert_non_null(cfg.jwt.public_key_pem);
    assert_true(strncmp(cfg.jwt.public_key_pem, "-----BEGIN PUBLIC KEY-----", 26) == 0);
    assert_int_equal(cfg.jwt.public_key_pem_len, strlen(cfg.jwt.public_key_pem));
    rc_config_dispose(&cfg);

    /* ES256 + key file from the environment */
    setenv("ROOMCAST_JWT_ALGS", "ES256", 1);
    setenv("ROOMCAST_JWT_PUBLIC_KEY_FILE", g_ec, 1);
    load_ok(&cfg, NULL, NULL);
    assert_int_equal(cfg.jwt.algs, RC_ALG_ES256);
    assert_non_null(cfg.jwt.public_key_pem);
    rc_config_dispose(&cfg);

    /* wrong key type, unreadable file, not a key */
    char want[512];
    setenv("ROOMCAST_JWT_ALGS", "RS256", 1);
    snprintf(want, sizeof(want), "ROOMCAST_JWT_PUBLIC_KEY_FILE: an RS algorithm is allowed but %s is not an RSA key", g_ec);
    EXPECT(NULL, NULL, want);
    setenv("ROOMCAST_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem", 1);
    EXPECT(NULL, NULL, "ROOMCAST_JWT_PUBLIC_KEY_FILE: cannot read /nonexistent/key.pem: No such file or directory");
    clear_env();
    snprintf(file, sizeof(file), "{\"jwt\": {\"algorithms\": [\"ES384\"], \"publicKeyFile\": \"%s\"}}", g_junk);
    snprintf(want, sizeof(want), "jwt.publicKeyFile: %s is not a PEM public key (-----BEGIN PUBLIC KEY-----)", g_junk);
    EXPECT(file, NULL, want);

    /* RS allowed, no key file; HS allowed, no secret */
    EXPECT("{\"jwt\": {\"algorithms\": [\"RS256\", \"HS256\"]}}", NULL,
           "jwt.secret: required when an HS algorithm is allowed (or set ROOMCAST_JWT_SECRET)",
           "jwt.publicKeyFile: required when an RS or ES algorithm is allowed (or set ROOMCAST_JWT_PUBLIC_KEY_FILE)");
}

static void test_errors_accumulate(void **state)
{
    rc_config_errors errs = {0};
    rc_config_error(&errs, "earlier", "problem %d", 1);
    rc_config_error(&errs, NULL, "no path");
    rc_config cfg;
    assert_int_equal(rc_config_load(&cfg, &no_flags, &errs), -1); /* no secret */
    assert_int_equal(errs.count, 3);
    assert_string_equal(errs.items[0], "earlier: problem 1");
    assert_string_equal(errs.items[1], "no path");
    assert_string_equal(errs.items[2], "jwt.secret: required when an HS algorithm is allowed (or set ROOMCAST_JWT_SECRET)");
    rc_config_errors_dispose(&errs);
    assert_int_equal(errs.count, 0);
    assert_null(errs.items);
}

static void test_read_file(void **state)
{
    const char *path = config_file("hello");
    size_t len = 0;
    char *s = rc_read_file(path, &len);
    assert_string_equal(s, "hello");
    assert_int_equal(len, 5);
    rc_free(s);
    assert_null(rc_read_file("/nonexistent", NULL));
}

static void test_example_config_loads(void **state)
{
    /* deploy/config/example.json must stay valid */
    const char *candidates[] = {"deploy/config/example.json", "../deploy/config/example.json",
                                "../../deploy/config/example.json", "../../../deploy/config/example.json"};
    const char *found = NULL;
    for (size_t i = 0; i < RC_ARRAY_LEN(candidates) && !found; i++)
        if (access(candidates[i], R_OK) == 0) found = candidates[i];
    if (!found) skip();
    setenv("ROOMCAST_JWT_SECRET", "example-secret", 1);
    setenv("ROOMCAST_JWT_PUBLIC_KEY_FILE", g_rsa, 1); /* the example names a file under /etc */
    rc_config_flags f = {.port = -1, .config_path = found};
    rc_config cfg;
    rc_config_errors errs = {0};
    int r = rc_config_load(&cfg, &f, &errs);
    if (r) dump(&errs);
    assert_int_equal(r, 0);
    assert_true(rc_rules_ns_count(cfg.rules) >= 2);
    rc_config_dispose(&cfg);
    rc_config_errors_dispose(&errs);
}

/* socketio.prefix (file) and ROOMCAST_SOCKETIO_PREFIX: off by default, needs Redis, refuses an
 * empty prefix and unknown keys. (A namespace never contains '#', which splits channel names.) */
static void test_socketio(void **state)
{
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    rc_config cfg;
    load_ok(&cfg, NULL, NULL);
    assert_null(cfg.socketio.prefix);
    rc_config_dispose(&cfg);
    load_ok(&cfg, "{\"redis\":{\"url\":\"redis://127.0.0.1\"},\"socketio\":{\"prefix\":\"socket.io\"}}", NULL);
    assert_string_equal(cfg.socketio.prefix, "socket.io");
    rc_config_dispose(&cfg);
    setenv("ROOMCAST_SOCKETIO_PREFIX", "env.io", 1);
    load_ok(&cfg, "{\"redis\":{\"url\":\"redis://127.0.0.1\"},\"socketio\":{\"prefix\":\"socket.io\"}}", NULL);
    assert_string_equal(cfg.socketio.prefix, "env.io");
    rc_config_dispose(&cfg);
    EXPECT(NULL, NULL,
           "socketio.prefix: needs Redis (redis.url, ROOMCAST_REDIS_URL, sentinels or a cluster): the emitter and "
           "the adapter publish on Redis, which the embedded single-node backplane does not use");
    unsetenv("ROOMCAST_SOCKETIO_PREFIX");
    EXPECT("{\"redis\":{\"url\":\"redis://127.0.0.1\"},\"socketio\":{\"prefix\":\"\",\"x\":1}}", NULL,
           "socketio.x: unknown key",
           "socketio.prefix: must be 1..200 bytes without control characters (the key prefix of "
           "@socket.io/redis-emitter and @socket.io/redis-adapter, usually \"socket.io\")");
}

/* transport.sendPath / ROOMCAST_SEND_PATH: auto by default, the env over the file, anything else
 * refused with its path. */
static void test_send_path(void **state)
{
    setenv("ROOMCAST_JWT_SECRET", "s", 1);
    rc_config cfg;
    load_ok(&cfg, NULL, NULL);
    assert_int_equal(cfg.transport.send_path, RC_SEND_PATH_AUTO);
    rc_config_dispose(&cfg);
    load_ok(&cfg, "{\"transport\":{\"sendPath\":\"writev\"}}", NULL);
    assert_int_equal(cfg.transport.send_path, RC_SEND_PATH_WRITEV);
    rc_config_dispose(&cfg);
    setenv("ROOMCAST_SEND_PATH", "io_uring", 1);
    load_ok(&cfg, "{\"transport\":{\"sendPath\":\"writev\"}}", NULL);
    assert_int_equal(cfg.transport.send_path, RC_SEND_PATH_IO_URING);
    rc_config_dispose(&cfg);
    setenv("ROOMCAST_SEND_PATH", "epoll", 1);
    EXPECT(NULL, NULL, "ROOMCAST_SEND_PATH: must be auto, io_uring or writev");
    unsetenv("ROOMCAST_SEND_PATH");
    EXPECT("{\"transport\":{\"sendPath\":1,\"delay\":2}}", NULL, "transport.delay: unknown key",
           "transport.sendPath: must be \"auto\", \"io_uring\" or \"writev\"");
    EXPECT("{\"transport\":[]}", NULL, "transport: must be an object like {\"sendPath\":\"auto\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, each_setup),
        cmocka_unit_test_setup(test_socketio, each_setup),
        cmocka_unit_test_setup(test_send_path, each_setup),
        cmocka_unit_test_setup(test_defaults_need_a_secret, each_setup),
        cmocka_unit_test_setup(test_file, each_setup),
        cmocka_unit_test_setup(test_precedence, each_setup),
        cmocka_unit_test_setup(test_file_errors, each_setup),
        cmocka_unit_test_setup(test_bad_files, each_setup),
        cmocka_unit_test_setup(test_env_and_flag_errors, each_setup),
        cmocka_unit_test_setup(test_jwt_keys, each_setup),
        cmocka_unit_test_setup(test_errors_accumulate, each_setup),
        cmocka_unit_test_setup(test_read_file, each_setup),
        cmocka_unit_test_setup(test_example_config_loads, each_setup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
