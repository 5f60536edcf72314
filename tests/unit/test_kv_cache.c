/* Paged KV cache: page accounting, capacity errors, prefix sharing by fork with
 * copy-before-write, truncation returning pages, and row addressing across pages. */
#include "testutil.h"

#include <string.h>

#include "engine/kv_cache.h"

static kv_cache *make(int32_t n_seq, int64_t n_ctx, int64_t n_pages) {
    kv_config c = {.n_layer = 2, .k_dim = 3, .v_dim = 5, .page_size = 4, .n_ctx = n_ctx, .n_seq = n_seq,
                   .n_pages = n_pages};
    kv_cache *kv = NULL;
    hearth_err err;
    assert_int_equal(kv_cache_new(&c, &kv, &err), HEARTH_OK);
    return kv;
}

static void fill(kv_cache *kv, int32_t seq, int64_t from, int64_t to, uint16_t base) {
    for (int64_t p = from; p < to; p++)
        for (int32_t l = 0; l < 2; l++) {
            for (int i = 0; i < 3; i++) kv_k_row(kv, l, seq, p)[i] = (uint16_t)(base + p * 10 + l);
            for (int i = 0; i < 5; i++) kv_v_row(kv, l, seq, p)[i] = (uint16_t)(base + p * 10 + l + 5);
        }
}

static void check(kv_cache *kv, int32_t seq, int64_t from, int64_t to, uint16_t base) {
    for (int64_t p = from; p < to; p++)
        for (int32_t l = 0; l < 2; l++) {
            assert_int_equal(kv_k_row(kv, l, seq, p)[2], (uint16_t)(base + p * 10 + l));
            assert_int_equal(kv_v_row(kv, l, seq, p)[4], (uint16_t)(base + p * 10 + l + 5));
        }
}

static void test_append_and_capacity(void **state) {
    kv_cache *kv = make(1, 10, 0);
    hearth_err err;
    assert_int_equal(kv_free_pages(kv), 3); /* ceil(10 / 4) */
    assert_int_equal(kv_seq_append(kv, 0, 5, &err), HEARTH_OK);
    assert_int_equal(kv_free_pages(kv), 1);
    fill(kv, 0, 0, 5, 100);
    assert_int_equal(kv_seq_append(kv, 0, 5, &err), HEARTH_OK);
    fill(kv, 0, 5, 10, 100);
    check(kv, 0, 0, 10, 100);
    assert_int_equal(kv_seq_append(kv, 0, 1, &err), HEARTH_ERR_RANGE);
    assert_non_null(strstr(err.msg, "context full"));
    assert_int_equal(kv_seq_len(kv, 0), 10);
    int64_t n;
    const uint16_t *run = kv_k_run(kv, 1, 0, 5, &n);
    assert_int_equal(n, 3); /* positions 5..7 share page 1 */
    assert_ptr_equal(run, kv_k_row(kv, 1, 0, 5));
    kv_seq_truncate(kv, 0, 3);
    assert_int_equal(kv_free_pages(kv), 2);
    check(kv, 0, 0, 3, 100);
    kv_seq_clear(kv, 0);
    assert_int_equal(kv_free_pages(kv), 3);
    kv_cache_free(kv);
}

static void test_pool_exhaustion_changes_nothing(void **state) {
    kv_cache *kv = make(2, 16, 3);
    hearth_err err;
    assert_int_equal(kv_seq_append(kv, 0, 8, &err), HEARTH_OK);
    assert_int_equal(kv_seq_append(kv, 1, 8, &err), HEARTH_ERR_RANGE);
    assert_int_equal(kv_seq_len(kv, 1), 0);
    assert_int_equal(kv_free_pages(kv), 1);
    kv_cache_free(kv);
}

static void test_fork_shares_and_copies_before_write(void **state) {
    kv_cache *kv = make(2, 16, 0);
    hearth_err err;
    assert_int_equal(kv_seq_append(kv, 0, 6, &err), HEARTH_OK);
    fill(kv, 0, 0, 6, 100);
    int64_t free_before = kv_free_pages(kv);
    assert_int_equal(kv_seq_fork(kv, 0, 1, 6, &err), HEARTH_OK);
    assert_int_equal(kv_free_pages(kv), free_before); /* shared, not copied */
    assert_ptr_equal(kv_k_row(kv, 0, 1, 1), kv_k_row(kv, 0, 0, 1));
    check(kv, 1, 0, 6, 100);
    /* appending to the fork copies the shared, partly filled page first */
    assert_int_equal(kv_pages_needed(kv, 1, 1), 1);
    assert_int_equal(kv_seq_append(kv, 1, 1, &err), HEARTH_OK);
    fill(kv, 1, 6, 7, 200);
    assert_true(kv_k_row(kv, 0, 1, 5) != kv_k_row(kv, 0, 0, 5));
    assert_ptr_equal(kv_k_row(kv, 0, 1, 1), kv_k_row(kv, 0, 0, 1)); /* full page still shared */
    check(kv, 1, 0, 6, 100);
    assert_int_equal(kv_seq_append(kv, 0, 1, &err), HEARTH_OK);
    fill(kv, 0, 6, 7, 300);
    check(kv, 1, 6, 7, 200);
    check(kv, 0, 6, 7, 300);
    kv_seq_clear(kv, 0);
    check(kv, 1, 0, 6, 100);
    kv_seq_clear(kv, 1);
    assert_int_equal(kv_free_pages(kv), 8);
    assert_int_equal(kv_seq_fork(kv, 0, 1, 1, &err), HEARTH_ERR_RANGE);
    kv_cache_free(kv);
}

static void test_bad_config(void **state) {
    kv_config c = {.n_layer = 1, .k_dim = 0, .v_dim = 1, .page_size = 4, .n_ctx = 8, .n_seq = 1};
    kv_cache *kv = NULL;
    hearth_err err;
    assert_int_equal(kv_cache_new(&c, &kv, &err), HEARTH_ERR_INVALID);
    assert_null(kv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_capacity),
        cmocka_unit_test(test_pool_exhaustion_changes_nothing),
        cmocka_unit_test(test_fork_shares_and_copies_before_write),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
