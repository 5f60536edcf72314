/* Configuration: YAML parsing, defaults merged into models, precedence (defaults < file
 * < environment < settings), a table of bad configurations each refused with its
 * file:line:column and key, value parsers, and the dump read back to the same result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "base/mem.h"
#include "config/config.h"

static cfg_config *build_ok(const char *yaml, const cfg_setting *set, size_t n) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    hearth_status st = cfg_build_text(yaml, strlen(yaml), "t.yaml", true, set, n, &c, &errs, &err);
    if (st != HEARTH_OK) fail_msg("expected a valid config, got: %s", err.msg);
    return c;
}

static void test_parse_and_defaults(void **state) {
    cfg_config *c = build_ok("server:\n  port: 9001\n  memory_budget: 3GiB\n  timeout: 90s\n"
                             "defaults:\n  ttl: 30s\n  slots: 2\n  sampling: {temperature: 0.25}\n"
                             "models:\n"
                             "  - name: a\n    path: /m/a.gguf\n    aliases: [x, y]\n    ttl: forever\n"
                             "    sampling: {top_k: 5, temperature: 1.5}\n"
                             "    adapters:\n      - {name: s, path: /m/s.gguf}\n"
                             "  - name: b\n    url: https://example.com/dir/b-q4.gguf?download=1\n    preload: yes\n"
                             "    sha256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n    ctx: 512\n",
                             NULL, 0);
    assert_int_equal(c->server.port, 9001);
    assert_true(c->server.memory_budget == (int64_t)3 << 30);
    assert_true(c->server.timeout_s == 90);
    assert_int_equal(c->n_models, 2);
    const cfg_model *a = &c->models[0], *b = &c->models[1];
    assert_string_equal(a->name, "a");
    assert_int_equal(a->n_aliases, 2);
    assert_true(a->ttl_s == CFG_FOREVER);
    assert_int_equal(a->slots, 2);                      /* from defaults */
    assert_true(a->sampling.temperature == 1.5);         /* own value wins */
    assert_int_equal(a->sampling.top_k, 5);
    assert_int_equal(a->n_adapters, 1);
    assert_true(a->adapters[0].scale == 1.0);
    assert_true(b->ttl_s == 30);                         /* from defaults */
    assert_true(b->sampling.temperature == 0.25);
    assert_true(b->preload);
    assert_int_equal(b->ctx, 512);
    assert_string_equal(b->sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    assert_ptr_equal(cfg_find_model(c, "y"), a);
    assert_ptr_equal(cfg_find_model(c, "b"), b);
    assert_null(cfg_find_model(c, "nope"));
    char file[64];
    assert_true(cfg_url_file_name(b->url, file, sizeof file));
    assert_string_equal(file, "b-q4.gguf");
    cfg_free(c);
}

static void test_builtin_defaults(void **state) {
    cfg_config *c = build_ok("models:\n  - {name: m, path: /m.gguf}\n", NULL, 0);
    const cfg_model *m = &c->models[0];
    assert_int_equal(c->server.port, 8080);
    assert_true(m->ttl_s == 600);                        /* 10 minutes */
    assert_int_equal(m->ctx, 0);
    assert_int_equal(m->slots, 8);
    assert_false(m->preload);
    assert_true(c->server.max_keep_alive_s == 3600);
    assert_true(c->server.memory_budget_pct == 80);
    assert_true(cfg_memory_budget(&c->server, 1000) == 800);
    cfg_free(c);
}

/* defaults < file < environment < settings, for a server key and a per-model key */
static void test_precedence(void **state) {
    const char *yaml = "server: {port: 9001}\nmodels:\n  - {name: m, path: /m.gguf, ctx: 1024}\n";
    unsetenv("HEARTH_PORT");
    unsetenv("HEARTH_CTX");
    unsetenv("HEARTH_MODEL");
    cfg_config *c = build_ok(yaml, NULL, 0);
    assert_int_equal(c->server.port, 9001);
    assert_int_equal(c->models[0].ctx, 1024);
    cfg_free(c);
    setenv("HEARTH_PORT", "9002", 1);
    setenv("HEARTH_CTX", "2048", 1);
    c = build_ok(yaml, NULL, 0);
    assert_int_equal(c->server.port, 9002);
    assert_int_equal(c->models[0].ctx, 2048);
    cfg_free(c);
    cfg_setting flags[] = {{"server.port", "9003", "flag --port"}, {"models.ctx", "4096", "flag --ctx"}};
    c = build_ok(yaml, flags, 2);
    assert_int_equal(c->server.port, 9003);
    assert_int_equal(c->models[0].ctx, 4096);
    cfg_free(c);
    /* an environment value that is wrong names its variable */
    setenv("HEARTH_PORT", "http", 1);
    cfg_errors errs;
    hearth_err err;
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", true, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(errs.msg[0], "environment HEARTH_PORT: server.port:"));
    unsetenv("HEARTH_PORT");
    unsetenv("HEARTH_CTX");
}

/* HEARTH_MODEL alone is a whole configuration; -m wins over it and repoints a model
 * of the same name. */
static void test_model_from_env_and_flag(void **state) {
    unsetenv("HEARTH_MODEL");
    setenv("HEARTH_MODEL", "/models/alpha.gguf", 1);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err;
    assert_int_equal(cfg_build(NULL, true, NULL, 0, &c, &errs, &err), HEARTH_OK);
    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0].name, "alpha");
    assert_string_equal(c->models[0].path, "/models/alpha.gguf");
    assert_true(c->models[0].preload);
    cfg_free(c);
    cfg_setting m[] = {{"model", "/other/alpha.gguf", "flag --model"}};
    const char *yaml = "models:\n  - {name: alpha, url: 'https://h/alpha.gguf', ttl: 5s}\n";
    c = build_ok(yaml, m, 1);
    assert_int_equal(c->n_models, 1);
    assert_string_equal(c->models[0].path, "/other/alpha.gguf");
    assert_null(c->models[0].url);
    assert_true(c->models[0].ttl_s == 5);
    cfg_free(c);
    unsetenv("HEARTH_MODEL");
}

typedef struct bad_case {
    const char *yaml;
    const char *expect; /* the first error starts with this */
} bad_case;

static const bad_case bad_cases[] = {
    {"server:\n  port: 70000\n", "t.yaml:2:9: server.port: expected an integer from 0 to 65535"},
    {"server:\n  port: eighty\n", "t.yaml:2:9: server.port: expected an integer"},
    {"server:\n  prot: 8080\n", "t.yaml:2:3: server.prot: unknown key"},
    {"srever:\n  port: 8080\n", "t.yaml:1:1: srever: unknown key"},
    {"server: [1, 2]\n", "t.yaml:1:9: server: expected a mapping, got a list"},
    {"server:\n  max_body: -1MiB\n", "t.yaml:2:13: server.max_body: expected a size"},
    {"server:\n  memory_budget: -8GiB\n", "t.yaml:2:18: server.memory_budget: expected a size"},
    {"server:\n  memory_budget: 150%\n", "t.yaml:2:18: server.memory_budget: expected a size"},
    {"server:\n  timeout: 0\n", "t.yaml:2:12: server.timeout: expected a duration above 0"},
    {"server:\n  port: 1\n  port: 2\n", "t.yaml:3:3: server: key 'port' is repeated (first at line 2)"},
    {"models: {name: a}\n", "t.yaml:1:9: models: expected a list, got a mapping"},
    {"models:\n  - name: a\n", "t.yaml:2:5: models[0]: model 'a' needs a path or a url"},
    {"models:\n  - path: /a.gguf\n", "t.yaml:2:5: models[0]: a model needs a name"},
    {"models:\n  - {name: a, path: /a.gguf, url: 'https://x/a.gguf'}\n", "t.yaml:2:35: models[0]: model 'a' has both"},
    {"models:\n  - {name: a, path: /a.gguf, ctx: -4}\n", "t.yaml:2:35: models[0].ctx: expected an integer from 16"},
    {"models:\n  - {name: a, path: /a.gguf, slots: 0}\n", "t.yaml:2:37: models[0].slots: expected an integer from 1"},
    {"models:\n  - {name: a, path: /a.gguf, slots: [1]}\n", "t.yaml:2:37: models[0].slots: expected a single value"},
    {"models:\n  - {name: a, path: /a.gguf, ttl: soon}\n", "t.yaml:2:35: models[0].ttl: expected a duration"},
    {"models:\n  - {name: a, path: /a.gguf, ttl: -1s}\n", "t.yaml:2:35: models[0].ttl: expected a duration"},
    {"models:\n  - {name: a, path: /a.gguf, preload: maybe}\n", "t.yaml:2:39: models[0].preload: expected true or false"},
    {"models:\n  - {name: a, path: /a.gguf, sha256: abc}\n", "t.yaml:2:38: models[0].sha256: expected 64 hexadecimal"},
    {"models:\n  - {name: a, path: /a.gguf, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg}\n",
     "t.yaml:2:38: models[0].sha256: expected 64 hexadecimal"},
    {"models:\n  - {name: a, path: /a.gguf, aliases: b}\n", "t.yaml:2:39: models[0].aliases: expected a list"},
    {"models:\n  - {name: a, path: /a.gguf, colour: red}\n", "t.yaml:2:30: models[0].colour: unknown key"},
    {"models:\n  - {name: 'a b', path: /a.gguf}\n", "t.yaml:2:12: models[0].name: 'a b' is not a valid model name"},
    {"models:\n  - {name: a, path: /a.gguf}\n  - {name: a, path: /b.gguf}\n",
     "t.yaml:3:12: models[1].name: 'a' is already used by model 'a'"},
    {"models:\n  - {name: a, path: /a.gguf, aliases: [z]}\n  - {name: b, path: /b.gguf, aliases: [z]}\n",
     "t.yaml:3:40: models[1].aliases[0]: 'z' is already used by model 'a' (as an alias)"},
    {"models:\n  - {name: a, path: /a.gguf, aliases: [b]}\n  - {name: b, path: /b.gguf}\n",
     "t.yaml:3:12: models[1].name: 'b' is already used by model 'a' (as an alias)"},
    {"models:\n  - {name: a, url: 'https://x/'}\n", "t.yaml:2:20: models[0]: the url of 'a' does not end in a usable file name"},
    {"models:\n  - {name: a, url: 'ftp://x/a.gguf'}\n", "t.yaml:2:20: models[0].url: expected an http://"},
    {"models:\n  - {name: a, path: /a.gguf, sampling: {temperature: 3}}\n",
     "t.yaml:2:54: models[0].sampling.temperature: expected a number from 0 to 2"},
    {"models:\n  - {name: a, path: /a.gguf, sampling: {warmth: 1}}\n", "t.yaml:2:41: models[0].sampling.warmth: unknown key"},
    {"models:\n  - {name: a, path: /a.gguf, adapters: [{name: s}]}\n",
     "t.yaml:2:41: models[0].adapters[0]: an adapter needs a name and a path"},
    {"models:\n  - {name: a, path: /a.gguf, adapters: [{name: s, path: /s, scale: big}]}\n",
     "t.yaml:2:68: models[0].adapters[0].scale: expected a number"},
    {"defaults:\n  name: a\n", "t.yaml:2:3: defaults.name: unknown key"},
    {"models:\n  - {name: a, path: }\n", "t.yaml:2:21: models[0].path: needs a value"},
    {"models: [\n", "t.yaml:2:1: (syntax):"},
    {"a: 1\n---\nb: 2\n", "t.yaml:1:1: a: unknown key"},
    {"- 1\n- 2\n", "t.yaml:1:1: (top level): expected a mapping, got a list"},
};

static void test_bad_configs(void **state) {
    int mismatches = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        cfg_config *c = NULL;
        cfg_errors errs;
        hearth_err err;
        hearth_status st = cfg_build_text(bc->yaml, strlen(bc->yaml), "t.yaml", false, NULL, 0, &c, &errs, &err);
        if (st != HEARTH_ERR_INVALID || errs.n == 0 || strncmp(errs.msg[0], bc->expect, strlen(bc->expect)) != 0) {
            printf("case %zu:\n%s  expected: %s\n  got (%d): %s\n", i, bc->yaml, bc->expect, st,
                   errs.n ? errs.msg[0] : "(no error)");
            mismatches++;
        }
        assert_null(c);
    }
    assert_int_equal(mismatches, 0);
}

/* Two documents are refused even when the first is valid. */
static void test_second_document(void **state) {
    const char *yaml = "server: {port: 1}\n---\nserver: {port: 2}\n";
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err;
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(errs.msg[0], "only one YAML document"));
}

static void test_values(void **state) {
    int64_t b;
    double d;
    assert_true(cfg_parse_size("8GiB", &b) && b == (int64_t)8 << 30);
    assert_true(cfg_parse_size("512 MB", &b) && b == 512000000);
    assert_true(cfg_parse_size("1.5KiB", &b) && b == 1536);
    assert_true(cfg_parse_size("4096", &b) && b == 4096);
    assert_false(cfg_parse_size("-1", &b));
    assert_false(cfg_parse_size("1.5", &b)); /* a fraction of a byte */
    assert_false(cfg_parse_size("8XB", &b));
    assert_false(cfg_parse_size("99999999999TiB", &b));
    assert_false(cfg_parse_size("0x10", &b));
    assert_true(cfg_parse_duration("10m", false, &d) && d == 600);
    assert_true(cfg_parse_duration("1h30m", false, &d) && d == 5400);
    assert_true(cfg_parse_duration("250ms", false, &d) && d == 0.25);
    assert_true(cfg_parse_duration("2.5", false, &d) && d == 2.5);
    assert_true(cfg_parse_duration("0", false, &d) && d == 0);
    assert_true(cfg_parse_duration("forever", true, &d) && d == CFG_FOREVER);
    assert_false(cfg_parse_duration("forever", false, &d));
    assert_false(cfg_parse_duration("10x", false, &d));
    assert_false(cfg_parse_duration("m", false, &d));
    char buf[32];
    cfg_format_duration(5400, buf, sizeof buf);
    assert_string_equal(buf, "1h30m");
    cfg_format_duration(0.25, buf, sizeof buf);
    assert_string_equal(buf, "0.25s");
    cfg_format_size((int64_t)3 << 30, buf, sizeof buf);
    assert_string_equal(buf, "3GiB");
    assert_true(cfg_valid_name("qwen2.5:0.5b-instruct"));
    assert_true(cfg_valid_name("Qwen/Qwen2.5"));
    assert_false(cfg_valid_name("../x"));
    assert_false(cfg_valid_name("/x"));
    assert_false(cfg_valid_name(""));
    char f[64];
    assert_true(cfg_url_file_name("hf://o/r@v1/sub/m.gguf", f, sizeof f) && !strcmp(f, "m.gguf"));
    assert_false(cfg_url_file_name("https://h/..", f, sizeof f));
    assert_false(cfg_url_file_name("https://h/.hidden", f, sizeof f));
    assert_false(cfg_url_file_name("https://h/%2e%2e%2fetc", f, sizeof f));
}

/* The dump is valid configuration that reads back to the same dump. */
static void test_dump_round_trip(void **state) {
    cfg_config *c = build_ok("server: {port: 9001, memory_budget: 75%, max_keep_alive: forever, host: '::1'}\n"
                             "defaults: {ttl: 0, sampling: {min_p: 0.1}}\n"
                             "models:\n  - {name: a, path: \"/m/we\\\"ird.gguf\", aliases: [b], threads: 3,"
                             " sampling: {seed: -5, max_tokens: 9, repeat_penalty: 1.1}}\n",
                             NULL, 0);
    char *one = cfg_dump(c);
    assert_non_null(one);
    cfg_free(c);
    c = build_ok(one, NULL, 0);
    char *two = cfg_dump(c);
    assert_string_equal(one, two);
    assert_true(c->models[0].ttl_s == 0);
    assert_string_equal(c->models[0].path, "/m/we\"ird.gguf");
    assert_true(c->server.max_keep_alive_s == CFG_FOREVER);
    mem_free(one);
    mem_free(two);
    cfg_free(c);
}

static void test_same_load(void **state) {
    cfg_config *c = build_ok("models:\n  - {name: a, path: /a.gguf, ttl: 1m}\n  - {name: b, path: /a.gguf, ttl: 2m,"
                             " aliases: [q]}\n  - {name: c, path: /a.gguf, ctx: 64}\n",
                             NULL, 0);
    assert_true(cfg_model_same_load(&c->models[0], &c->models[1])); /* ttl and aliases do not matter */
    assert_false(cfg_model_same_load(&c->models[0], &c->models[2]));
    cfg_model copy;
    assert_int_equal(cfg_model_copy(&copy, &c->models[1]), HEARTH_OK);
    assert_string_equal(copy.aliases[0], "q");
    assert_true(cfg_model_same_load(&copy, &c->models[1]));
    cfg_model_clear(&copy);
    cfg_free(c);
}

/* Every allocation failure while building ends cleanly with NOMEM. */
static void test_alloc_failures(void **state) {
    const char *yaml = "server: {host: '::1'}\nmodels:\n  - {name: a, path: /a.gguf, aliases: [x, y],"
                       " adapters: [{name: s, path: /s}]}\n";
    mem_fail_at(0);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err;
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_OK);
    cfg_free(c);
    long total = mem_fail_at(0);
    for (long n = 1; n <= total; n++) {
        mem_fail_at(n);
        hearth_status st = cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err);
        mem_fail_at(0);
        if (st == HEARTH_OK) cfg_free(c);
        else assert_int_equal(st, HEARTH_ERR_NOMEM);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_defaults), cmocka_unit_test(test_builtin_defaults),
        cmocka_unit_test(test_precedence),         cmocka_unit_test(test_model_from_env_and_flag),
        cmocka_unit_test(test_bad_configs),        cmocka_unit_test(test_second_document),
        cmocka_unit_test(test_values),             cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_same_load),          cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
