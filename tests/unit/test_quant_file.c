/* Whole-file quantization of the fixture model: the output re-opens with the input's
 * metadata (file type changed), tensor order and shapes, and exactly the per-tensor types
 * and metadata of the reference quantizer's own Q4_K_M file; the decoded weights stay
 * close to the originals; quantized input is decoded and re-encoded (and reported);
 * failures leave nothing behind; the CLI's usage, errors and warnings. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

static char out_path[64];

static gguf_file *open_or_fail(const char *path) {
    gguf_file *f = NULL;
    hearth_err err = {0};
    if (gguf_open(path, &f, &err)) fail_msg("%s", err.msg);
    return f;
}

typedef struct seen {
    uint64_t calls, requantized;
} seen;

static void count(void *ud, uint64_t index, uint64_t n, const gguf_tensor *t, const quant_tensor_plan *plan,
                  bool requantized) {
    seen *s = ud;
    assert_int_equal(index, s->calls);
    s->calls++;
    s->requantized += requantized;
}

static gguf_file *quantize(const char *fixture, const char *scheme, seen *s) {
    gguf_file *in = open_or_fail(fixture_path(fixture));
    kern_pool *pool = kern_pool_new(2);
    hearth_err err = {0};
    hearth_status st = quant_file(in, out_path, quant_scheme_find(scheme), pool, count, s, &err);
    kern_pool_free(pool);
    if (st) fail_msg("quant_file(%s, %s): %s", fixture, scheme, err.msg);
    assert_int_equal(s->calls, gguf_tensor_count(in));
    gguf_close(in);
    return open_or_fail(out_path);
}

static bool value_equal(const gguf_value *a, const gguf_value *b);

static bool arr_equal(const gguf_arr *a, const gguf_arr *b) {
    if (a->type != b->type || a->n != b->n) return false;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->type == GGUF_V_STRING) {
            if (a->strs[i].len != b->strs[i].len || memcmp(a->strs[i].ptr, b->strs[i].ptr, a->strs[i].len)) return false;
        } else if (a->type == GGUF_V_ARRAY) {
            if (!value_equal(&a->arrs[i], &b->arrs[i])) return false;
        } else {
            double x, y;
            if (!gguf_arr_float(a, i, &x) || !gguf_arr_float(b, i, &y) || memcmp(&x, &y, sizeof x)) return false;
        }
    }
    return true;
}

static bool value_equal(const gguf_value *a, const gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_V_STRING: return a->s.len == b->s.len && !memcmp(a->s.ptr, b->s.ptr, a->s.len);
    case GGUF_V_ARRAY: return arr_equal(&a->a, &b->a);
    case GGUF_V_FLOAT32:
    case GGUF_V_FLOAT64: return a->f == b->f;
    case GGUF_V_INT8: case GGUF_V_INT16: case GGUF_V_INT32: case GGUF_V_INT64: return a->i == b->i;
    default: return a->u == b->u;
    }
}

/* Every key of `want` is in `got` with the same value and position, and nothing more;
 * general.file_type must equal ftype. */
static void expect_same_metadata(const gguf_file *got, const gguf_file *want, uint64_t ftype) {
    assert_int_equal(gguf_kv_count(got), gguf_kv_count(want));
    for (uint64_t i = 0; i < gguf_kv_count(want); i++) {
        const gguf_kv *w = gguf_kv_at(want, i), *g = gguf_kv_at(got, i);
        if (w->key.len != g->key.len || memcmp(w->key.ptr, g->key.ptr, w->key.len))
            fail_msg("key %llu: '%.*s', want '%.*s'", (unsigned long long)i, (int)g->key.len, g->key.ptr,
                     (int)w->key.len, w->key.ptr);
        if (gguf_str_eq(w->key, "general.file_type")) continue;
        if (!value_equal(&w->val, &g->val)) fail_msg("value of '%.*s' differs", (int)w->key.len, w->key.ptr);
    }
    uint64_t ft;
    assert_true(gguf_get_uint(got, "general.file_type", &ft));
    assert_int_equal(ft, ftype);
}

/* Tensors in the same order with the same shapes; types as in `types_of` when given. */
static void expect_same_tensors(const gguf_file *got, const gguf_file *src, const gguf_file *types_of) {
    assert_int_equal(gguf_tensor_count(got), gguf_tensor_count(src));
    for (uint64_t i = 0; i < gguf_tensor_count(src); i++) {
        const gguf_tensor *g = gguf_tensor_at(got, i), *s = gguf_tensor_at(src, i);
        assert_true(g->name.len == s->name.len && !memcmp(g->name.ptr, s->name.ptr, s->name.len));
        assert_int_equal(g->n_dims, s->n_dims);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) assert_int_equal(g->ne[d], s->ne[d]);
        if (types_of && g->type != gguf_tensor_at(types_of, i)->type)
            fail_msg("tensor '%.*s': type %s, the reference quantizer chose %s", (int)g->name.len, g->name.ptr,
                     ggml_type_get(g->type)->name, ggml_type_get(gguf_tensor_at(types_of, i)->type)->name);
    }
}

/* RMS of the difference over RMS of the original, for one tensor decoded from both files. */
static double rel_error(const gguf_file *a, const gguf_file *b, const char *name) {
    const gguf_tensor *ta = gguf_find_tensor(a, name), *tb = gguf_find_tensor(b, name);
    int64_t cols = ta->ne[0], rows = ta->ne[1];
    float *ra = mem_alloc_array((size_t)cols, sizeof *ra), *rb = mem_alloc_array((size_t)cols, sizeof *rb);
    double num = 0, den = 0;
    for (int64_t r = 0; r < rows; r++) {
        kern_traits(ta->type)->to_float((const char *)ta->data + r * kern_row_bytes(ta->type, cols), ra, cols);
        kern_traits(tb->type)->to_float((const char *)tb->data + r * kern_row_bytes(tb->type, cols), rb, cols);
        for (int64_t c = 0; c < cols; c++) {
            num += (double)(ra[c] - rb[c]) * (ra[c] - rb[c]);
            den += (double)ra[c] * ra[c];
        }
    }
    mem_free(ra);
    mem_free(rb);
    return sqrt(num / den);
}

static void test_q4_k_m_matches_reference_layout(void **state) {
    if (!fixtures_available()) return;
    seen s = {0};
    gguf_file *out = quantize("models/llama-spm-f16.gguf", "q4_k_m", &s);
    assert_int_equal(s.requantized, 0);
    gguf_file *src = open_or_fail(fixture_path("models/llama-spm-f16.gguf"));
    gguf_file *ref = open_or_fail(fixture_path("models/llama-spm-q4_k_m.gguf"));
    expect_same_metadata(out, src, 15);
    expect_same_metadata(out, ref, 15);
    expect_same_tensors(out, src, ref);
    double e_q4 = rel_error(src, out, "blk.0.ffn_up.weight"), e_q6 = rel_error(src, out, "blk.1.ffn_down.weight");
    if (!(e_q4 < 0.12 && e_q6 < 0.04 && e_q6 < e_q4))
        fail_msg("relative RMS error Q4_K %.4f (want < 0.12), Q6_K %.4f (want < 0.04)", e_q4, e_q6);
    gguf_close(ref);
    gguf_close(src);
    gguf_close(out);
    unlink(out_path);
}

static void test_q8_0(void **state) {
    if (!fixtures_available()) return;
    seen s = {0};
    gguf_file *out = quantize("models/llama-spm-f16.gguf", "Q8_0", &s);
    gguf_file *src = open_or_fail(fixture_path("models/llama-spm-f16.gguf"));
    gguf_file *ref = open_or_fail(fixture_path("models/llama-spm-q8_0.gguf"));
    expect_same_metadata(out, ref, 7);
    expect_same_tensors(out, src, ref);
    assert_int_equal(gguf_file_size(out), gguf_file_size(ref));
    double e = rel_error(src, out, "output.weight");
    if (!(e < 0.01)) fail_msg("Q8_0 relative RMS error %.5f, want < 0.01", e);
    gguf_close(ref);
    gguf_close(src);
    gguf_close(out);
    unlink(out_path);
}

/* Quantized input: decoded and encoded again, every changed tensor reported. */
static void test_requantize(void **state) {
    if (!fixtures_available()) return;
    seen s = {0};
    gguf_file *out = quantize("models/llama-spm-q8_0.gguf", "Q4_K_M", &s);
    assert_int_equal(s.requantized, 16); /* 2 x 7 layer matrices + embeddings + output; norms are F32 */
    gguf_file *src = open_or_fail(fixture_path("models/llama-spm-q8_0.gguf"));
    gguf_file *ref = open_or_fail(fixture_path("models/llama-spm-q4_k_m.gguf"));
    expect_same_tensors(out, src, ref);
    double e = rel_error(src, out, "blk.0.attn_q.weight");
    if (!(e < 0.12)) fail_msg("relative RMS error %.4f, want < 0.12", e);
    gguf_close(ref);
    gguf_close(src);
    gguf_close(out);
    unlink(out_path);

    /* same type: copied byte for byte, nothing re-encoded */
    seen s2 = {0};
    out = quantize("models/llama-spm-q8_0.gguf", "q8_0", &s2);
    assert_int_equal(s2.requantized, 0);
    src = open_or_fail(fixture_path("models/llama-spm-q8_0.gguf"));
    const gguf_tensor *a = gguf_find_tensor(out, "blk.1.attn_k.weight"), *b = gguf_find_tensor(src, "blk.1.attn_k.weight");
    assert_int_equal(a->size, b->size);
    assert_memory_equal(a->data, b->data, a->size);
    gguf_close(src);
    gguf_close(out);
    unlink(out_path);
}

static void test_failure_leaves_nothing(void **state) {
    if (!fixtures_available()) return;
    gguf_file *in = open_or_fail(fixture_path("models/llama-spm-f16.gguf"));
    hearth_err err = {0};
    hearth_status st = quant_file(in, "/nonexistent-dir/out.gguf", quant_scheme_find("q8_0"), NULL, NULL, NULL, &err);
    assert_int_equal(st, HEARTH_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/out.gguf"));
    gguf_close(in);
}

static int run(const char *args, char **out, char **err) {
    int code = run_hearth(args, out, err);
    assert_non_null(*out);
    assert_non_null(*err);
    return code;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_cli(void **state) {
    char *out, *err, args[512];
    assert_int_equal(run("quantize --help", &out, &err), 0);
    assert_non_null(strstr(out, "usage: hearth quantize"));
    assert_non_null(strstr(out, "Q4_K_M"));
    free(out), free(err);

    assert_int_equal(run("quantize a.gguf b.gguf", &out, &err), 2);
    assert_non_null(strstr(err, "usage: hearth quantize"));
    free(out), free(err);

    assert_int_equal(run("quantize a.gguf b.gguf q3_k_xl", &out, &err), 2);
    assert_non_null(strstr(err, "unknown type 'q3_k_xl'"));
    assert_int_equal(lines(err), 1);
    free(out), free(err);

    snprintf(args, sizeof args, "quantize /nonexistent/in.gguf %s q8_0", out_path);
    assert_int_equal(run(args, &out, &err), 1);
    assert_int_equal(lines(err), 1);
    assert_non_null(strstr(err, "hearth: error: /nonexistent/in.gguf"));
    assert_int_equal(access(out_path, F_OK), -1);
    free(out), free(err);

    if (!fixtures_available()) return;
    snprintf(args, sizeof args, "quantize -t 2 %s %s Q4_k_M", fixture_path("models/llama-spm-q8_0.gguf"), out_path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "Q4_K_M"));
    assert_non_null(strstr(err, "warning: the input is already quantized"));
    assert_int_equal(lines(err), 1);
    free(out), free(err);
    unlink(out_path);
}

int main(void) {
    snprintf(out_path, sizeof out_path, "/tmp/hearth-quant-%d.gguf", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_k_m_matches_reference_layout),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_requantize),
        cmocka_unit_test(test_failure_leaves_nothing),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
