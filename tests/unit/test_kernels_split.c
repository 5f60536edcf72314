/* A token's matmul output must not depend on the batch it arrives in: for every type
 * with a tiled (prepared) kernel, each token of a batch of 2..150 tokens, starting at
 * different offsets of the prompt and run on 1, 2 or 3 threads, gives bit for bit what
 * the token gives alone. Batches cross the 8-token tile and the 64-token work block, and
 * uneven sizes exercise the work split between threads (every output must be written
 * exactly as alone, none left out). Likewise a matrix cut into row slices
 * (kern_matrix_slice) gives bit for bit the rows of the whole, prepared or not.
 * Runs on every CPU path (CTest repeats it). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

#define ROWS 40   /* two full 16-row panels and a partial one */
#define COLS 512
#define MAX_TOK 160

static void check_type(uint32_t type, kern_pool **pools, kt_rng *r) {
    const kern_type_traits *t = kern_scalar_traits(type);
    size_t rb = kern_row_bytes(type, COLS);
    uint8_t *data = malloc(rb * ROWS);
    float *row = malloc(sizeof(float) * COLS), *x = malloc(sizeof(float) * MAX_TOK * COLS);
    float *alone = malloc(sizeof(float) * MAX_TOK * ROWS), *y = malloc(sizeof(float) * MAX_TOK * ROWS);
    assert_non_null(data);
    assert_non_null(row);
    assert_non_null(x);
    assert_non_null(alone);
    assert_non_null(y);
    for (int i = 0; i < ROWS; i++) {
        kt_fill_normal(r, row, COLS, 0.1f);
        t->from_float(row, data + (size_t)i * rb, COLS);
    }
    kt_fill_normal(r, x, MAX_TOK * COLS, 1.0f);
    kern_matrix m = {.type = type, .rows = ROWS, .cols = COLS, .row_bytes = rb, .data = data};
    assert_int_equal(kern_matrix_prepare(&m, NULL), HEARTH_OK);

    for (int tok = 0; tok < MAX_TOK; tok++)
        assert_int_equal(kern_matmul(NULL, &m, x + (size_t)tok * COLS, 1, alone + (size_t)tok * ROWS, ROWS), HEARTH_OK);

    static const int sizes[] = {2, 7, 9, 63, 64, 65, 100, 129, 150};
    static const int starts[] = {0, 3, 10};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t oi = 0; oi < sizeof starts / sizeof starts[0]; oi++)
            for (int k = 0; k < 3; k++) {
                int n = sizes[si], s0 = starts[oi];
                for (int i = 0; i < n * ROWS; i++) y[i] = -777.0f;
                assert_int_equal(kern_matmul(pools[k], &m, x + (size_t)s0 * COLS, n, y, ROWS), HEARTH_OK);
                for (int tok = 0; tok < n; tok++)
                    for (int i = 0; i < ROWS; i++) {
                        float got = y[tok * ROWS + i], want = alone[(s0 + tok) * ROWS + i];
                        if (memcmp(&got, &want, sizeof got) != 0)
                            fail_msg("%s: token %d of a %d-token batch from %d, %d threads, row %d: %.9g, alone %.9g",
                                     t->name, tok, n, s0, k + 1, i, got, want);
                    }
            }
    kern_matrix_release(&m);
    free(data);
    free(row);
    free(x);
    free(alone);
    free(y);
}

static void test_token_output_independent_of_batch(void **state) {
    (void)state;
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    kt_rng r = {4242};
    static const uint32_t types[] = {GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_Q8_0, GGML_Q4_0, GGML_F32, GGML_F16, GGML_BF16};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) check_type(types[i], pools, &r);
    for (int k = 0; k < 3; k++) kern_pool_free(pools[k]);
}

#define SLICE_TOK 5

/* Every slice [r0, r0 + n) of m over SLICE_TOK tokens equals those rows of the whole. */
static void check_slices(const kern_matrix *m, const char *name, kern_pool *pool, const float *x) {
    float whole[SLICE_TOK * ROWS], y[SLICE_TOK * ROWS];
    assert_int_equal(kern_matmul(pool, m, x, SLICE_TOK, whole, ROWS), HEARTH_OK);
    for (int r0 = 0; r0 < ROWS; r0 += KERN_SLICE_ROWS)
        for (int n = 1; r0 + n <= ROWS; n += 7) {
            kern_matrix part;
            assert_int_equal(kern_matrix_slice(m, r0, n, &part), HEARTH_OK);
            for (int i = 0; i < SLICE_TOK * ROWS; i++) y[i] = -777.0f;
            assert_int_equal(kern_matmul(pool, &part, x, SLICE_TOK, y + r0, ROWS), HEARTH_OK);
            for (int t = 0; t < SLICE_TOK; t++)
                for (int i = 0; i < ROWS; i++) {
                    float got = y[t * ROWS + i], want = i >= r0 && i < r0 + n ? whole[t * ROWS + i] : -777.0f;
                    if (memcmp(&got, &want, sizeof got) != 0)
                        fail_msg("%s: slice [%d, %d), token %d, row %d: %.9g, want %.9g", name, r0, r0 + n, t, i, got,
                                 want);
                }
        }
    kern_matrix part;
    assert_int_equal(kern_matrix_slice(m, KERN_SLICE_ROWS / 2, 4, &part), HEARTH_ERR_INVALID);
    assert_int_equal(kern_matrix_slice(m, KERN_SLICE_ROWS, ROWS, &part), HEARTH_ERR_INVALID);
    assert_int_equal(kern_matrix_slice(m, 0, 0, &part), HEARTH_ERR_INVALID);
}

static void test_row_slices_equal_the_whole(void **state) {
    (void)state;
    kern_pool *pool = kern_pool_new(2);
    kt_rng r = {77};
    static const uint32_t types[] = {GGML_Q4_K, GGML_Q6_K, GGML_Q8_0, GGML_F32, GGML_F16, GGML_BF16};
    float *row = malloc(sizeof(float) * COLS), *x = malloc(sizeof(float) * SLICE_TOK * COLS);
    assert_non_null(row);
    assert_non_null(x);
    kt_fill_normal(&r, x, SLICE_TOK * COLS, 1.0f);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const kern_type_traits *t = kern_scalar_traits(types[k]);
        size_t rb = kern_row_bytes(types[k], COLS);
        uint8_t *data = malloc(rb * ROWS);
        assert_non_null(data);
        for (int i = 0; i < ROWS; i++) {
            kt_fill_normal(&r, row, COLS, 0.1f);
            t->from_float(row, data + (size_t)i * rb, COLS);
        }
        kern_matrix m = {.type = types[k], .rows = ROWS, .cols = COLS, .row_bytes = rb, .data = data};
        check_slices(&m, t->name, pool, x);   /* rows as stored */
        assert_int_equal(kern_matrix_prepare(&m, NULL), HEARTH_OK);
        check_slices(&m, t->name, pool, x);   /* panels, where the CPU has them */
        kern_matrix_release(&m);
        free(data);
    }
    free(row);
    free(x);
    kern_pool_free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_output_independent_of_batch),
        cmocka_unit_test(test_row_slices_equal_the_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
