/* The embedding cache: hits return exactly what was stored, every key field separates
 * entries, least-recently-used eviction under the entry and byte bounds, replacement,
 * the TTL on an injected clock, and the counters. */
#include "testutil.h"

#include <string.h>

#include "engine/embed_cache.h"

typedef struct fake_clock {
    uint64_t ns;
} fake_clock;

static uint64_t fake_now(void *ud) { return ((fake_clock *)ud)->ns; }

static embed_cache *new_cache(int64_t entries, int64_t bytes, double ttl, fake_clock *clk) {
    embed_cache_config c = {.max_entries = entries, .max_bytes = bytes, .ttl_s = ttl, .now_ns = fake_now,
                            .clock_ud = clk};
    embed_cache *ec = NULL;
    hearth_err err = {0};
    if (embed_cache_new(&c, &ec, &err)) fail_msg("embed_cache_new: %s", err.msg);
    return ec;
}

static embed_cache_key text_key(const char *s) {
    return (embed_cache_key){.model = 1, .pooling = 1, .flags = EMBED_CACHE_NORMALIZE, .data = s, .len = strlen(s)};
}

static void put_text(embed_cache *c, const char *s, float v) {
    float vec[4] = {v, v + 1, v + 2, v + 3};
    embed_cache_key k = text_key(s);
    embed_cache_put(c, &k, vec, 4, (int64_t)strlen(s));
}

static bool has(embed_cache *c, const char *s) {
    float out[4];
    int64_t n = 0;
    embed_cache_key k = text_key(s);
    return embed_cache_get(c, &k, out, 4, &n);
}

static void test_hit_returns_stored(void **state) {
    (void)state;
    fake_clock clk = {0};
    embed_cache *c = new_cache(10, 1 << 20, 0, &clk);
    put_text(c, "hello", 0.5f);
    float out[4] = {0};
    int64_t n = 0;
    embed_cache_key k = text_key("hello");
    assert_true(embed_cache_get(c, &k, out, 4, &n));
    assert_int_equal(n, 5);
    for (int i = 0; i < 4; i++)
        if (out[i] != 0.5f + (float)i) fail_msg("value %d: got %g, stored %g", i, out[i], 0.5f + (float)i);
    assert_false(embed_cache_get(c, &k, out, 8, &n)); /* another dimension is a miss */
    embed_cache_stats st;
    embed_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, embed_cache_entry_bytes(5, 4));
    embed_cache_free(c);
}

static void test_key_fields_separate(void **state) {
    (void)state;
    fake_clock clk = {0};
    embed_cache *c = new_cache(10, 1 << 20, 0, &clk);
    put_text(c, "abc", 1);
    float out[4];
    int64_t n;
    embed_cache_key k = text_key("abc");
    k.model = 2;
    assert_false(embed_cache_get(c, &k, out, 4, &n));
    k = text_key("abc");
    k.pooling = 2;
    assert_false(embed_cache_get(c, &k, out, 4, &n));
    k = text_key("abc");
    k.flags = 0;
    assert_false(embed_cache_get(c, &k, out, 4, &n));
    k = text_key("abc");
    k.flags |= EMBED_CACHE_TOKENS;
    assert_false(embed_cache_get(c, &k, out, 4, &n));
    assert_false(has(c, "abd"));
    assert_false(has(c, "ab"));
    assert_true(has(c, "abc"));
    embed_cache_free(c);
}

static void test_lru_order_by_entries(void **state) {
    (void)state;
    fake_clock clk = {0};
    embed_cache *c = new_cache(3, 1 << 20, 0, &clk);
    put_text(c, "a", 1);
    put_text(c, "b", 2);
    put_text(c, "c", 3);
    assert_true(has(c, "a")); /* a is now the most recent: b is the oldest */
    put_text(c, "d", 4);
    assert_false(has(c, "b"));
    assert_true(has(c, "a"));
    assert_true(has(c, "c"));
    assert_true(has(c, "d"));
    put_text(c, "e", 5); /* recency now a, c, d (oldest a) */
    assert_false(has(c, "a"));
    embed_cache_stats st;
    embed_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 2);
    embed_cache_free(c);
}

static void test_byte_bound(void **state) {
    (void)state;
    fake_clock clk = {0};
    int64_t one = embed_cache_entry_bytes(2, 4);
    embed_cache *c = new_cache(100, 2 * one + one / 2, 0, &clk);
    put_text(c, "k1", 1);
    put_text(c, "k2", 2);
    put_text(c, "k3", 3);
    embed_cache_stats st;
    embed_cache_get_stats(c, &st);
    if (st.bytes > 2 * one + one / 2) fail_msg("cache holds %lld bytes, bound %lld", (long long)st.bytes,
                                               (long long)(2 * one + one / 2));
    assert_int_equal(st.entries, 2);
    assert_false(has(c, "k1"));
    assert_true(has(c, "k3"));
    /* an entry larger than the whole bound is not stored and evicts nothing */
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    put_text(c, big, 9);
    assert_false(has(c, big));
    assert_true(has(c, "k2"));
    embed_cache_free(c);
}

static void test_replace_same_key(void **state) {
    (void)state;
    fake_clock clk = {0};
    embed_cache *c = new_cache(10, 1 << 20, 0, &clk);
    put_text(c, "same", 1);
    put_text(c, "same", 7);
    float out[4];
    int64_t n;
    embed_cache_key k = text_key("same");
    assert_true(embed_cache_get(c, &k, out, 4, &n));
    assert_true(out[0] == 7.0f);
    embed_cache_stats st;
    embed_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 1);
    embed_cache_free(c);
}

static void test_ttl(void **state) {
    (void)state;
    fake_clock clk = {.ns = 1000};
    embed_cache *c = new_cache(10, 1 << 20, 60, &clk);
    put_text(c, "old", 1);
    clk.ns += 30ull * 1000000000ull;
    put_text(c, "new", 2);
    assert_true(has(c, "old"));
    clk.ns += 31ull * 1000000000ull; /* old is 61 s old, new 31 s */
    assert_false(has(c, "old"));
    assert_true(has(c, "new"));
    embed_cache_stats st;
    embed_cache_get_stats(c, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 1);
    embed_cache_free(c);
}

static void test_bad_config(void **state) {
    (void)state;
    embed_cache_config cfg = {.max_entries = 0, .max_bytes = 10};
    embed_cache *c = NULL;
    hearth_err err = {0};
    assert_int_equal(embed_cache_new(&cfg, &c, &err), HEARTH_ERR_INVALID);
    assert_null(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_returns_stored), cmocka_unit_test(test_key_fields_separate),
        cmocka_unit_test(test_lru_order_by_entries), cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_replace_same_key), cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
