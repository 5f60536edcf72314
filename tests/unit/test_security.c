/* Security building blocks without a server: the token bucket (exact times), the
 * constant-time comparison, the Host header check, the request limits, and the `keys:`,
 * `limits:` and CORS configuration (secrets from sha256, env and file; what is refused;
 * the dump never holding a secret and reading back the same). */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "config/config.h"
#include "server/srv_auth.h"
#include "server/srv_bucket.h"
#include "server/srv_limits.h"
#include "testutil.h"

#define S 1000000000ull
#define SECRET_ENV "hk-env-0123456789abcdef"
#define SECRET_FILE "hk-file-fedcba9876543210"

static void test_bucket(void **state) {
    srv_bucket b;
    int retry = 0;
    srv_bucket_init(&b, 3, 100 * S); /* 3 a minute: one every 20 s */
    for (int i = 0; i < 3; i++) assert_true(srv_bucket_take(&b, 1, 100 * S, &retry));
    assert_false(srv_bucket_take(&b, 1, 100 * S, &retry));
    assert_int_equal(retry, 20);
    assert_false(srv_bucket_take(&b, 1, 110 * S, &retry));
    assert_int_equal(retry, 10);
    assert_true(srv_bucket_take(&b, 1, 120 * S, &retry));
    /* a long pause refills to the capacity only */
    assert_true(srv_bucket_take(&b, 3, 10000 * S, &retry));
    assert_false(srv_bucket_take(&b, 1, 10000 * S, &retry));
    /* a clock that goes back changes nothing */
    assert_false(srv_bucket_take(&b, 1, 5000 * S, &retry));

    /* tokens: charged after the fact, the debt delays the next request */
    srv_bucket_init(&b, 60, 0); /* one a second */
    assert_true(srv_bucket_ready(&b, 0, &retry));
    srv_bucket_charge(&b, 90, 0); /* 30 in debt */
    assert_false(srv_bucket_ready(&b, 0, &retry));
    assert_int_equal(retry, 31);
    assert_false(srv_bucket_ready(&b, 30 * S, &retry));
    assert_int_equal(retry, 1);
    assert_true(srv_bucket_ready(&b, 31 * S, &retry));

    /* a reload to a smaller rate keeps the level within the new capacity */
    srv_bucket_init(&b, 100, 0);
    srv_bucket_set_rate(&b, 10, 0);
    assert_true(b.level <= 10);
    assert_true(srv_bucket_take(&b, 10, 0, &retry));
    assert_false(srv_bucket_take(&b, 1, 0, &retry));
    assert_int_equal(retry, 6);
}

static void test_ct_equal(void **state) {
    unsigned char a[32], b[32];
    for (int i = 0; i < 32; i++) a[i] = b[i] = (unsigned char)(i * 7);
    assert_true(srv_ct_equal(a, b, 32));
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        if (srv_ct_equal(a, b, 32)) fail_msg("a difference at byte %d was not seen", i);
        b[i] ^= 0x80;
    }
    b[31] ^= 1;
    assert_true(srv_ct_equal(a, b, 31));
    assert_true(srv_ct_equal(a, b, 0));
}

static void test_host_header(void **state) {
    static const char *const ok[] = {NULL, "localhost", "LOCALHOST:8080", "localhost.", "127.0.0.1", "127.1.2.3:1",
                                     "[::1]", "[::1]:443"};
    static const char *const bad[] = {"", "evil.example.com", "localhost.evil.com", "127.0.0.1.nip.io", "10.0.0.1",
                                      "[::2]", "::1", "[::1", "localhost:", "localhost:80x", "127.0.0.1:123456",
                                      "0.0.0.0", "attacker:8080"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!srv_host_header_loopback(ok[i])) fail_msg("Host '%s' should be accepted", ok[i] ? ok[i] : "(none)");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (srv_host_header_loopback(bad[i])) fail_msg("Host '%s' should be refused", bad[i]);
    assert_true(cfg_host_is_loopback("127.0.0.1"));
    assert_true(cfg_host_is_loopback("::1"));
    assert_true(cfg_host_is_loopback("::ffff:127.0.0.9"));
    assert_false(cfg_host_is_loopback("0.0.0.0"));
    assert_false(cfg_host_is_loopback("::"));
    assert_false(cfg_host_is_loopback("192.168.1.2"));
}

static cfg_config *build(const char *yaml, cfg_errors *errs, hearth_err *err) {
    cfg_config *c = NULL;
    cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, errs, err);
    return c;
}

static cfg_config *build_ok(const char *yaml) {
    cfg_errors errs;
    hearth_err err = {0};
    cfg_config *c = build(yaml, &errs, &err);
    if (!c) fail_msg("config refused: %s\n%s", err.msg, yaml);
    return c;
}

static void expect_refused(const char *yaml, const char *words) {
    cfg_errors errs;
    hearth_err err = {0};
    cfg_config *c = build(yaml, &errs, &err);
    if (c) fail_msg("config accepted, expected '%s':\n%s", words, yaml);
    if (!strstr(err.msg, words)) fail_msg("error '%s' does not say '%s'", err.msg, words);
}

static void sha256_hex(const char *s, char out[65]) {
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static char g_keyfile[64];

static void test_config_keys(void **state) {
    setenv("TEST_SEC_KEY", SECRET_ENV, 1);
    snprintf(g_keyfile, sizeof g_keyfile, "/tmp/hearth-key-XXXXXX");
    int fd = mkstemp(g_keyfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, SECRET_FILE "\n", strlen(SECRET_FILE) + 1), (ssize_t)strlen(SECRET_FILE) + 1);
    close(fd);
    char hex[65], yaml[2048];
    sha256_hex("hk-sha-secret-000000", hex);
    snprintf(yaml, sizeof yaml,
             "server: {cors_origins: [\"https://a.example\", \"http://localhost:3000\"]}\n"
             "limits: {max_tokens: 100, n: 2, stop: 1, stop_length: 8, messages: 3, headers: 20, header_timeout: 5s}\n"
             "keys:\n"
             "  - {name: ops, sha256: %s, admin: true}\n"
             "  - {name: env-k, env: TEST_SEC_KEY, models: [a], tools: false, requests_per_minute: 5}\n"
             "  - {name: file-k, file: %s, tools: [get_weather], tokens_per_minute: 1000, max_concurrent: 2}\n"
             "models:\n  - {name: a, path: /a.gguf, aliases: [al]}\n  - {name: b, path: /b.gguf}\n",
             hex, g_keyfile);
    cfg_config *c = build_ok(yaml);
    assert_int_equal(c->n_keys, 3);
    assert_int_equal(c->server.n_cors_origins, 2);
    assert_int_equal(c->limits.max_tokens, 100);
    assert_true(c->limits.header_timeout_s == 5);
    assert_true(c->limits.idle_timeout_s == 60); /* default kept */
    assert_true(c->keys[0].admin && c->keys[0].tools && c->keys[0].n_models == 1);
    assert_string_equal(c->keys[0].models[0], "*");
    assert_false(c->keys[1].tools);
    assert_int_equal(c->keys[1].requests_per_minute, 5);
    assert_int_equal(c->keys[2].n_tool_names, 1);

    /* the dump names where each secret comes from, never the secret, and reads back */
    char *one = cfg_dump(c);
    assert_non_null(one);
    assert_null(strstr(one, SECRET_ENV));
    assert_null(strstr(one, SECRET_FILE));
    assert_non_null(strstr(one, "env: \"TEST_SEC_KEY\""));
    cfg_config *c2 = build_ok(one);
    char *two = cfg_dump(c2);
    assert_string_equal(one, two);
    assert_memory_equal(c->keys[1].digest, c2->keys[1].digest, 32);

    /* the server side: lookup by the secret, models with aliases, tools, limits */
    srv_auth *a = NULL;
    hearth_err err = {0};
    assert_int_equal(srv_auth_new(c, &a, &err), HEARTH_OK);
    srv_error e;
    const char *reason = NULL;
    assert_null(srv_auth_check(a, NULL, &e, &reason));
    assert_string_equal(reason, "missing");
    assert_int_equal(e.status, 401);
    assert_null(srv_auth_check(a, "Bearer hk-env-0123456789abcdeX", &e, &reason));
    assert_string_equal(reason, "invalid");
    assert_null(srv_auth_check(a, "Basic " SECRET_ENV, &e, &reason));
    srv_key *k = srv_auth_check(a, "bearer   " SECRET_ENV " ", &e, &reason);
    assert_non_null(k);
    assert_string_equal(srv_key_name(k), "env-k");
    assert_true(srv_key_model_allowed(k, "a") && srv_key_model_allowed(k, "al"));
    assert_false(srv_key_model_allowed(k, "b"));
    assert_true(srv_key_model_allowed(k, "a:my-adapter")); /* a LoRA adapter of an allowed base */
    assert_false(srv_key_model_allowed(k, "b:my-adapter"));
    assert_false(srv_key_model_allowed(k, ":a"));
    assert_false(srv_key_admin(k));
    json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]", 0, NULL);
    assert_false(srv_key_tools_allowed(k, tools, &e));
    assert_int_equal(e.status, 403);
    assert_string_equal(e.code, "tools_not_allowed");
    const char *kind = NULL;
    for (int i = 0; i < 5; i++) assert_true(srv_key_admit(k, false, &e, &kind));
    assert_false(srv_key_admit(k, false, &e, &kind));
    assert_string_equal(kind, "requests");
    assert_int_equal(e.status, 429);
    assert_true(e.retry_after_s >= 1 && e.retry_after_s <= 12);
    for (int i = 0; i < 5; i++) srv_key_done(k, 10);
    srv_key *f = srv_auth_check(a, "Bearer " SECRET_FILE, &e, &reason);
    assert_non_null(f);
    assert_true(srv_key_model_allowed(f, "b"));
    assert_true(srv_key_tools_allowed(f, tools, &e));
    json_t *other = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"rm\"}}]", 0, NULL);
    assert_false(srv_key_tools_allowed(f, other, &e));
    assert_string_equal(e.code, "tool_not_allowed");
    assert_true(srv_key_admit(f, true, &e, &kind) && srv_key_admit(f, true, &e, &kind));
    assert_false(srv_key_admit(f, true, &e, &kind));
    assert_string_equal(kind, "concurrency");
    srv_key_done(f, 1500); /* beyond a minute's tokens */
    assert_false(srv_key_admit(f, true, &e, &kind));
    assert_string_equal(kind, "tokens");
    assert_true(e.retry_after_s >= 1);
    assert_true(srv_key_admit(f, false, &e, &kind)); /* a request without tokens still passes */
    srv_key_done(f, 0);
    srv_key_done(f, 0);
    /* a reload keeps a key's state by name; a key that went away no longer matches */
    c2->keys[1].requests_per_minute = 5;
    assert_int_equal(srv_auth_update(a, c2), HEARTH_OK);
    srv_key *again = srv_auth_check(a, "Bearer " SECRET_ENV, &e, &reason);
    assert_ptr_equal(again, k);
    assert_false(srv_key_admit(again, false, &e, &kind));
    srv_key_release(again);
    c2->n_keys = 1; /* a configuration with only ops */
    assert_int_equal(srv_auth_update(a, c2), HEARTH_OK);
    c2->n_keys = 3; /* back, so that cfg_free frees every entry */
    assert_null(srv_auth_check(a, "Bearer " SECRET_ENV, &e, &reason));
    assert_string_equal(srv_key_name(k), "env-k"); /* still valid while held */
    srv_key_release(k);
    srv_key_release(f);
    srv_auth_free(a);
    json_decref(tools);
    json_decref(other);
    mem_free(one);
    mem_free(two);
    cfg_free(c);
    cfg_free(c2);
    unlink(g_keyfile);
}

static void test_config_refusals(void **state) {
    const char *m = "models:\n  - {name: a, path: /a.gguf}\n";
    char y[1024];
    snprintf(y, sizeof y, "keys:\n  - {name: k, env: TEST_SEC_UNSET_VAR}\n%s", m);
    unsetenv("TEST_SEC_UNSET_VAR");
    expect_refused(y, "TEST_SEC_UNSET_VAR is not set");
    setenv("TEST_SEC_SHORT", "short", 1);
    snprintf(y, sizeof y, "keys:\n  - {name: k, env: TEST_SEC_SHORT}\n%s", m);
    expect_refused(y, "shorter than 16");
    snprintf(y, sizeof y, "keys:\n  - {name: k}\n%s", m);
    expect_refused(y, "needs its secret");
    snprintf(y, sizeof y, "keys:\n  - {name: k, sha256: abc}\n%s", m);
    expect_refused(y, "64 hexadecimal digits");
    snprintf(y, sizeof y, "keys:\n  - {name: k, env: A, file: /b}\n%s", m);
    expect_refused(y, "one secret");
    snprintf(y, sizeof y, "keys:\n  - {name: k, file: /nonexistent/key}\n%s", m);
    expect_refused(y, "cannot open key file");
    snprintf(y, sizeof y, "keys:\n  - {name: k, env: HOME, max_concurrent: -1}\n%s", m);
    expect_refused(y, "keys[0].max_concurrent");
    snprintf(y, sizeof y, "keys:\n  - {name: k, env: HOME, colour: red}\n%s", m);
    expect_refused(y, "unknown key");
    snprintf(y, sizeof y, "limits: {n: 9}\n%s", m);
    expect_refused(y, "limits.n");
    snprintf(y, sizeof y, "server: {cors_origins: [\"not an origin\"]}\n%s", m);
    expect_refused(y, "is not an origin");
    snprintf(y, sizeof y, "server: {host: 0.0.0.0}\n%s", m);
    expect_refused(y, "non-loopback address without API keys");
    snprintf(y, sizeof y, "server: {host: 0.0.0.0, allow_unauthenticated: true}\n%s", m);
    cfg_free(build_ok(y));
    snprintf(y, sizeof y, "server: {host: \"::\"}\nkeys:\n  - {name: k, sha256: %064d}\n%s", 0, m);
    cfg_free(build_ok(y));
}

static void test_request_limits(void **state) {
    cfg_limits l;
    cfg_config *c = build_ok("limits: {max_tokens: 10, n: 2, stop: 1, stop_length: 4, messages: 2}\n"
                             "models:\n  - {name: a, path: /a.gguf}\n");
    l = c->limits;
    cfg_free(c);
    static const struct { const char *body, *param; } cases[] = {
        {"{\"model\":\"a\",\"prompt\":\"x\",\"max_tokens\":11}", "max_tokens"},
        {"{\"model\":\"a\",\"prompt\":\"x\",\"n\":3}", "n"},
        {"{\"model\":\"a\",\"prompt\":\"x\",\"stop\":[\"a\",\"b\"]}", "stop"},
        {"{\"model\":\"a\",\"prompt\":\"x\",\"stop\":\"abcde\"}", "stop"},
        {"{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"1\"},{\"role\":\"user\",\"content\":\"2\"},"
         "{\"role\":\"user\",\"content\":\"3\"}]}",
         "messages"},
        {"{\"model\":\"a\",\"prompt\":\"x\",\"max_tokens\":10,\"n\":2,\"stop\":\"abcd\"}", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_req r;
        srv_error e;
        srv_api api = strstr(cases[i].body, "messages") ? SRV_API_CHAT : SRV_API_COMPLETION;
        if (!srv_req_parse(cases[i].body, strlen(cases[i].body), api, 1000, &r, &e))
            fail_msg("case %zu does not parse: %s", i, e.message);
        bool ok = srv_limits_check(&l, &r, &e);
        srv_req_free(&r);
        if (!cases[i].param) {
            if (!ok) fail_msg("case %zu refused: %s", i, e.message);
            continue;
        }
        if (ok) fail_msg("case %zu accepted, expected a 400 on %s", i, cases[i].param);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.param, cases[i].param);
    }
}

/* "base:adapter" is allowed with its base, but a model, alias or route whose own name
 * has a colon is a name of its own: listing "a" must not open "a:big", nor listing the
 * route "assistant" the route "assistant:premium". */
static void test_key_colon_names(void **state) {
    char hex[65], yaml[1024];
    sha256_hex("hk-colon-secret-00000", hex);
    snprintf(yaml, sizeof yaml,
             "keys:\n  - {name: k, sha256: %s, models: [a, assistant]}\n"
             "models:\n  - {name: a, path: /a.gguf}\n  - {name: \"a:big\", path: /b.gguf, aliases: [\"a:large\"]}\n"
             "routes:\n  - {name: assistant, targets: [local:a]}\n  - {name: \"assistant:premium\", targets: [local:a]}\n",
             hex);
    cfg_config *c = build_ok(yaml);
    srv_auth *a = NULL;
    hearth_err err = {0};
    assert_int_equal(srv_auth_new(c, &a, &err), HEARTH_OK);
    srv_error e;
    const char *reason = NULL;
    srv_key *k = srv_auth_check(a, "Bearer hk-colon-secret-00000", &e, &reason);
    assert_non_null(k);
    assert_true(srv_key_model_allowed(k, "a"));
    assert_true(srv_key_model_allowed(k, "a:my-adapter"));
    const char *closed[] = {"a:big", "a:large", "assistant:premium"};
    for (size_t i = 0; i < 3; i++)
        if (srv_key_model_allowed(k, closed[i])) fail_msg("a key for [a] may use '%s'", closed[i]);
    srv_key_release(k);
    srv_auth_free(a);
    cfg_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),         cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_host_header),    cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_config_refusals), cmocka_unit_test(test_request_limits),
        cmocka_unit_test(test_key_colon_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
