/* The `embeddings` section and the per-model `pooling` key: defaults, values read from
 * YAML and from settings, the dump reading back to the same values, and bad values
 * refused with the key and position named. */
#include "testutil.h"

#include <string.h>

#include "base/mem.h"
#include "config/config.h"

static cfg_config *build(const char *yaml, const cfg_setting *set, size_t n, cfg_errors *errs) {
    cfg_config *c = NULL;
    hearth_err err = {0};
    cfg_build_text(yaml, strlen(yaml), "test.yaml", false, set, n, &c, errs, &err);
    return c;
}

static void test_defaults(void **state) {
    (void)state;
    cfg_errors errs = {0};
    cfg_config *c = build("models: []\n", NULL, 0, &errs);
    assert_non_null(c);
    assert_true(c->embeddings.cache);
    assert_int_equal(c->embeddings.cache_max_entries, 10000);
    assert_int_equal(c->embeddings.cache_max_bytes, (int64_t)64 << 20);
    assert_true(c->embeddings.cache_ttl_s == 3600);
    assert_int_equal(c->embeddings.max_inputs, 2048);
    assert_int_equal(c->embeddings.max_request_tokens, 300000);
    assert_int_equal(c->embeddings.batch_tokens, 2048);
    assert_int_equal(c->embeddings.max_queue, 8192);
    assert_int_equal(c->defaults.pooling, -1);
    cfg_free(c);
}

static void test_values_and_round_trip(void **state) {
    (void)state;
    const char *yaml = "embeddings:\n  cache: false\n  cache_max_entries: 5\n  cache_max_bytes: 2MiB\n"
                       "  cache_ttl: 90s\n  max_inputs: 7\n  max_request_tokens: 4096\n  batch_tokens: 512\n  max_queue: 99\n"
                       "defaults:\n  pooling: last\n"
                       "models:\n  - name: a\n    path: /x/a.gguf\n    pooling: cls\n  - name: b\n    path: /x/b.gguf\n";
    cfg_setting set[] = {{"embeddings.max_inputs", "9", "flag --test"}};
    cfg_errors errs = {0};
    cfg_config *c = build(yaml, set, 1, &errs);
    if (!c) fail_msg("%s", errs.msg[0]);
    assert_false(c->embeddings.cache);
    assert_int_equal(c->embeddings.cache_max_entries, 5);
    assert_int_equal(c->embeddings.cache_max_bytes, 2 << 20);
    assert_true(c->embeddings.cache_ttl_s == 90);
    assert_int_equal(c->embeddings.max_inputs, 9);
    assert_int_equal(c->embeddings.max_request_tokens, 4096);
    assert_int_equal(c->embeddings.batch_tokens, 512);
    assert_int_equal(c->embeddings.max_queue, 99);
    assert_int_equal(c->models[0].pooling, 2);
    assert_int_equal(c->models[1].pooling, 3); /* from defaults */
    char *dump = cfg_dump(c);
    cfg_config *back = build(dump, NULL, 0, &errs);
    if (!back) fail_msg("the dump does not read back: %s\n%s", errs.msg[0], dump);
    const cfg_embeddings *x = &back->embeddings, *y = &c->embeddings;
    assert_true(x->cache == y->cache && x->cache_max_entries == y->cache_max_entries &&
                x->cache_max_bytes == y->cache_max_bytes && x->cache_ttl_s == y->cache_ttl_s &&
                x->max_inputs == y->max_inputs && x->max_request_tokens == y->max_request_tokens && x->batch_tokens == y->batch_tokens && x->max_queue == y->max_queue);
    assert_int_equal(back->models[0].pooling, 2);
    assert_int_equal(back->models[1].pooling, 3);
    mem_free(dump);
    cfg_free(back);
    cfg_free(c);
}

static void test_bad_values(void **state) {
    (void)state;
    cfg_errors errs = {0};
    cfg_config *c = build("embeddings:\n  cache: maybe\n  nope: 1\nmodels:\n  - name: a\n    path: /a\n    pooling: avg\n",
                          NULL, 0, &errs);
    assert_null(c);
    assert_int_equal(errs.n, 3);
    assert_non_null(strstr(errs.msg[0], "test.yaml:2:10: embeddings.cache"));
    assert_non_null(strstr(errs.msg[1], "embeddings.nope: unknown key"));
    assert_non_null(strstr(errs.msg[2], "models[0].pooling"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_and_round_trip),
        cmocka_unit_test(test_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
