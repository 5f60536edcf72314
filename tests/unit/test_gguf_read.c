/* GGUF reader and writer: round trips of every value type (nested arrays included),
 * accessor coercions, tensor layout and data, atomic file writes, allocation failures,
 * and every shared fixture file opening cleanly. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"

/* Runs a call that must succeed; the call passes &e_ as its err so a failure shows why. */
#define OK(expr)                                                                  \
    do {                                                                          \
        hearth_err e_ = {0};                                                      \
        hearth_status s_ = (expr);                                                \
        if (s_ != HEARTH_OK) fail_msg("%s -> %d: %s", #expr, (int)s_, e_.msg);    \
    } while (0)

static gguf_file *open_buf(void *buf, size_t size) {
    gguf_file *f = NULL;
    hearth_err e = {0};
    hearth_status st = gguf_open_memory(buf, size, "mem.gguf", &f, &e);
    if (st != HEARTH_OK) fail_msg("open failed (%d): %s", (int)st, e.msg);
    return f;
}

static void write_mem(gguf_writer *w, void **buf, size_t *size) {
    hearth_err e = {0};
    hearth_status st = gguf_writer_write_memory(w, buf, size, &e);
    if (st != HEARTH_OK) fail_msg("write_memory failed (%d): %s", (int)st, e.msg);
}

/* ---- metadata round trip ------------------------------------------------------------ */

static const int32_t i32s[] = {-7, 0, 2147483647, -2147483647 - 1};
static const float f32s[] = {1.5f, -0.25f, 3e38f};
static const uint8_t bools[] = {1, 0, 1};
static const uint64_t u64s[] = {0, 18446744073709551615ull};
static const char *const strs[] = {"alpha", "", "\xe6\x97\xa5\xe6\x9c\xac"};

static gguf_writer *scalar_writer(void) {
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    OK(gguf_writer_set_int(w, "t.u8", GGUF_V_UINT8, 200, &e_));
    OK(gguf_writer_set_int(w, "t.i8", GGUF_V_INT8, -100, &e_));
    OK(gguf_writer_set_int(w, "t.u16", GGUF_V_UINT16, 65535, &e_));
    OK(gguf_writer_set_int(w, "t.i16", GGUF_V_INT16, -32768, &e_));
    OK(gguf_writer_set_int(w, "t.u32", GGUF_V_UINT32, 4000000000, &e_));
    OK(gguf_writer_set_int(w, "t.i32", GGUF_V_INT32, -123456789, &e_));
    OK(gguf_writer_set_float(w, "t.f32", GGUF_V_FLOAT32, 0.1, &e_));
    OK(gguf_writer_set_bool(w, "t.bool", true, &e_));
    OK(gguf_writer_set_strn(w, "t.str", "a\0b\n", 4, &e_));
    OK(gguf_writer_set_u64(w, "t.u64", 9223372036854775813ull, &e_));
    OK(gguf_writer_set_int(w, "t.i64", GGUF_V_INT64, -1099511627776ll, &e_));
    OK(gguf_writer_set_float(w, "t.f64", GGUF_V_FLOAT64, 2.718281828459045, &e_));
    OK(gguf_writer_set_arr(w, "a.i32", GGUF_V_INT32, i32s, 4, &e_));
    OK(gguf_writer_set_arr(w, "a.f32", GGUF_V_FLOAT32, f32s, 3, &e_));
    OK(gguf_writer_set_arr(w, "a.bool", GGUF_V_BOOL, bools, 3, &e_));
    OK(gguf_writer_set_arr(w, "a.u64", GGUF_V_UINT64, u64s, 2, &e_));
    OK(gguf_writer_set_arr(w, "a.empty", GGUF_V_UINT16, NULL, 0, &e_));
    OK(gguf_writer_set_str_arr(w, "a.str", strs, 3, &e_));
    return w;
}

static void test_scalar_and_flat_array_roundtrip(void **state) {
    gguf_writer *w = scalar_writer();
    void *buf;
    size_t size;
    write_mem(w, &buf, &size);
    gguf_file *f = open_buf(buf, size);

    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_kv_count(f), 18);
    assert_int_equal(gguf_tensor_count(f), 0);
    assert_int_equal(gguf_file_size(f), size);
    assert_string_equal(gguf_path(f), "mem.gguf");

    const gguf_value *v;
    assert_non_null(v = gguf_find(f, "t.u8"));
    assert_int_equal(v->type, GGUF_V_UINT8);
    assert_int_equal(v->u, 200);
    assert_non_null(v = gguf_find(f, "t.i8"));
    assert_int_equal(v->type, GGUF_V_INT8);
    assert_int_equal(v->i, -100);
    assert_int_equal(gguf_find(f, "t.u16")->u, 65535);
    assert_int_equal(gguf_find(f, "t.i16")->i, -32768);
    assert_int_equal(gguf_find(f, "t.u32")->u, 4000000000u);
    assert_int_equal(gguf_find(f, "t.i32")->i, -123456789);
    assert_true(gguf_find(f, "t.f32")->f == (double)0.1f);
    assert_int_equal(gguf_find(f, "t.bool")->type, GGUF_V_BOOL);
    assert_int_equal(gguf_find(f, "t.bool")->u, 1);
    assert_true(gguf_find(f, "t.u64")->u == 9223372036854775813ull);
    assert_true(gguf_find(f, "t.i64")->i == -1099511627776ll);
    assert_true(gguf_find(f, "t.f64")->f == 2.718281828459045);
    gguf_str s;
    assert_true(gguf_get_str(f, "t.str", &s));
    assert_int_equal(s.len, 4);
    assert_memory_equal(s.ptr, "a\0b\n", 4);

    const gguf_arr *a;
    int64_t iv;
    double dv;
    assert_true(gguf_get_arr(f, "a.i32", &a));
    assert_int_equal(a->type, GGUF_V_INT32);
    assert_int_equal(a->n, 4);
    for (uint64_t i = 0; i < 4; i++) {
        assert_true(gguf_arr_int(a, i, &iv));
        assert_int_equal(iv, i32s[i]);
    }
    assert_false(gguf_arr_int(a, 4, &iv));
    assert_true(gguf_get_arr(f, "a.f32", &a));
    for (uint64_t i = 0; i < 3; i++) {
        assert_true(gguf_arr_float(a, i, &dv));
        assert_true(dv == (double)f32s[i]);
    }
    assert_false(gguf_arr_int(a, 0, &iv)); /* float elements are not integers */
    assert_true(gguf_get_arr(f, "a.bool", &a));
    assert_int_equal(a->type, GGUF_V_BOOL);
    assert_true(gguf_arr_int(a, 0, &iv) && iv == 1);
    assert_true(gguf_arr_int(a, 1, &iv) && iv == 0);
    assert_true(gguf_get_arr(f, "a.u64", &a));
    assert_true(gguf_arr_int(a, 0, &iv) && iv == 0);
    assert_false(gguf_arr_int(a, 1, &iv)); /* 2^64-1 does not fit in int64 */
    assert_true(gguf_arr_float(a, 1, &dv) && dv == 18446744073709551615.0);
    assert_true(gguf_get_arr(f, "a.empty", &a));
    assert_int_equal(a->type, GGUF_V_UINT16);
    assert_int_equal(a->n, 0);
    assert_true(gguf_get_arr(f, "a.str", &a));
    assert_int_equal(a->type, GGUF_V_STRING);
    assert_int_equal(a->n, 3);
    assert_non_null(a->strs);
    for (uint64_t i = 0; i < 3; i++) assert_true(gguf_str_eq(a->strs[i], strs[i]));
    assert_false(gguf_arr_int(a, 0, &iv));

    gguf_close(f);
    mem_free(buf);
    gguf_writer_free(w);
}

static void test_coercions(void **state) {
    gguf_writer *w = scalar_writer();
    void *buf;
    size_t size;
    write_mem(w, &buf, &size);
    gguf_file *f = open_buf(buf, size);
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    gguf_str s;
    const gguf_arr *a;

    assert_true(gguf_get_int(f, "t.u8", &i) && i == 200);
    assert_true(gguf_get_int(f, "t.i16", &i) && i == -32768);
    assert_true(gguf_get_int(f, "t.u32", &i) && i == 4000000000ll);
    assert_true(gguf_get_int(f, "t.bool", &i) && i == 1);
    assert_false(gguf_get_int(f, "t.u64", &i)); /* 2^63+5 does not fit */
    assert_false(gguf_get_int(f, "t.f32", &i));
    assert_false(gguf_get_int(f, "t.str", &i));
    assert_false(gguf_get_int(f, "missing.key", &i));

    assert_true(gguf_get_uint(f, "t.u64", &u) && u == 9223372036854775813ull);
    assert_true(gguf_get_uint(f, "t.u16", &u) && u == 65535);
    assert_false(gguf_get_uint(f, "t.i32", &u)); /* negative */
    assert_false(gguf_get_uint(f, "t.f64", &u));

    assert_true(gguf_get_float(f, "t.f64", &d) && d == 2.718281828459045);
    assert_true(gguf_get_float(f, "t.i32", &d) && d == -123456789.0);
    assert_true(gguf_get_float(f, "t.u8", &d) && d == 200.0);
    assert_false(gguf_get_float(f, "t.str", &d));

    assert_true(gguf_get_bool(f, "t.bool", &b) && b);
    assert_false(gguf_get_bool(f, "t.u8", &b));
    assert_false(gguf_get_str(f, "t.u8", &s));
    assert_false(gguf_get_arr(f, "t.str", &a));
    assert_null(gguf_find(f, "t"));
    assert_null(gguf_find(f, "t.u8x"));
    assert_null(gguf_find_tensor(f, "t.u8"));

    gguf_close(f);
    mem_free(buf);
    gguf_writer_free(w);
}

/* An array of depth levels: [[...[[1,2,3]]...]] with two copies at each level but the last. */
static void build_nested(gguf_value *v, gguf_value *pool, int depth) {
    static const int32_t leaf[] = {1, 2, 3};
    v->type = GGUF_V_ARRAY;
    if (depth == 1) {
        v->a = (gguf_arr){.type = GGUF_V_INT32, .n = 3, .data = leaf};
        return;
    }
    build_nested(&pool[0], pool + 2, depth - 1);
    pool[1] = pool[0];
    v->a = (gguf_arr){.type = GGUF_V_ARRAY, .n = 2, .arrs = pool};
}

static void check_nested(const gguf_value *v, int depth) {
    assert_int_equal(v->type, GGUF_V_ARRAY);
    if (depth == 1) {
        int64_t x;
        assert_int_equal(v->a.type, GGUF_V_INT32);
        assert_int_equal(v->a.n, 3);
        assert_true(gguf_arr_int(&v->a, 2, &x) && x == 3);
        return;
    }
    assert_int_equal(v->a.type, GGUF_V_ARRAY);
    assert_int_equal(v->a.n, 2);
    assert_non_null(v->a.arrs);
    check_nested(&v->a.arrs[0], depth - 1);
    check_nested(&v->a.arrs[1], depth - 1);
}

static void test_nested_arrays(void **state) {
    gguf_writer *w = gguf_writer_new();
    gguf_value pool[40], top, mixed_items[2], mixed;
    gguf_str names[2] = {{"x", 1}, {"yz", 2}};
    build_nested(&top, pool, 8); /* the deepest nesting the format allows here */
    OK(gguf_writer_set(w, "n.deep", &top, &e_));
    mixed_items[0] = (gguf_value){.type = GGUF_V_ARRAY, .a = {.type = GGUF_V_STRING, .n = 2, .strs = names}};
    mixed_items[1] = (gguf_value){.type = GGUF_V_ARRAY, .a = {.type = GGUF_V_UINT8, .n = 0}};
    mixed = (gguf_value){.type = GGUF_V_ARRAY, .a = {.type = GGUF_V_ARRAY, .n = 2, .arrs = mixed_items}};
    OK(gguf_writer_set(w, "n.mixed", &mixed, &e_));

    gguf_value too_deep;
    build_nested(&too_deep, pool, 9);
    hearth_err e = {0};
    assert_int_equal(gguf_writer_set(w, "n.too_deep", &too_deep, &e), HEARTH_ERR_INVALID);
    assert_true(strlen(e.msg) > 0);

    void *buf;
    size_t size;
    write_mem(w, &buf, &size);
    gguf_file *f = open_buf(buf, size);
    assert_int_equal(gguf_kv_count(f), 2);
    check_nested(gguf_find(f, "n.deep"), 8);
    const gguf_value *m = gguf_find(f, "n.mixed");
    assert_non_null(m);
    assert_int_equal(m->a.type, GGUF_V_ARRAY);
    assert_int_equal(m->a.arrs[0].a.type, GGUF_V_STRING);
    assert_true(gguf_str_eq(m->a.arrs[0].a.strs[1], "yz"));
    assert_int_equal(m->a.arrs[1].a.n, 0);

    /* a value read from a file copies through the writer unchanged */
    gguf_writer *w2 = gguf_writer_new();
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        OK(gguf_writer_set(w2, key, &kv->val, &e_));
    }
    void *buf2;
    size_t size2;
    write_mem(w2, &buf2, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(buf2, buf, size);

    mem_free(buf2);
    gguf_writer_free(w2);
    gguf_close(f);
    mem_free(buf);
    gguf_writer_free(w);
}

static void test_writer_replaces_and_refuses(void **state) {
    gguf_writer *w = gguf_writer_new();
    hearth_err e = {0};
    OK(gguf_writer_set_int(w, "k", GGUF_V_UINT32, 1, &e_));
    OK(gguf_writer_set_str(w, "k", "now a string", &e_));
    assert_int_equal(gguf_writer_set_int(w, "r", GGUF_V_UINT8, 256, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "r", GGUF_V_INT8, -129, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "r", GGUF_V_UINT64, -1, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "r", GGUF_V_FLOAT32, 1, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_str(w, "", "x", &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "general.alignment", GGUF_V_UINT32, 48, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "general.alignment", GGUF_V_UINT32, 4, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_set_int(w, "general.alignment", GGUF_V_UINT64, 64, &e), HEARTH_ERR_INVALID);
    uint8_t bad_bool = 2;
    assert_int_equal(gguf_writer_set_arr(w, "r", GGUF_V_BOOL, &bad_bool, 1, &e), HEARTH_ERR_INVALID);

    float data[64] = {0};
    int64_t ne_bad0[] = {0, 2}, ne_q8[] = {33, 1}, ne_ok[] = {8, 2};
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_F32, 2, ne_bad0, data, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_Q8_0, 2, ne_q8, data, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "t", 4, 2, ne_ok, data, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_F32, 5, ne_ok, data, &e), HEARTH_ERR_INVALID);
    assert_int_equal(gguf_writer_add_tensor(w, "", GGML_F32, 2, ne_ok, data, &e), HEARTH_ERR_INVALID);
    OK(gguf_writer_add_tensor(w, "t", GGML_F32, 2, ne_ok, data, &e_));
    assert_int_equal(gguf_writer_add_tensor(w, "t", GGML_F32, 2, ne_ok, data, &e), HEARTH_ERR_INVALID);
    assert_non_null(strstr(e.msg, "duplicate"));

    void *buf;
    size_t size;
    write_mem(w, &buf, &size);
    gguf_file *f = open_buf(buf, size);
    assert_int_equal(gguf_kv_count(f), 1);
    gguf_str s;
    assert_true(gguf_get_str(f, "k", &s) && gguf_str_eq(s, "now a string"));
    assert_int_equal(gguf_tensor_count(f), 1);
    gguf_close(f);
    mem_free(buf);
    gguf_writer_free(w);
}

/* ---- tensors ------------------------------------------------------------------------ */

static void check_tensors(gguf_file *f, uint32_t align, const float *f32, const uint8_t *q8, const uint16_t *f16) {
    assert_int_equal(gguf_alignment(f), align);
    assert_int_equal(gguf_tensor_count(f), 3);
    const gguf_tensor *t = gguf_find_tensor(f, "w.f32");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_F32);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 4);
    assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->size, 48);
    assert_int_equal(t->offset, 0);
    assert_memory_equal(t->data, f32, 48);

    t = gguf_find_tensor(f, "w.q8");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_Q8_0);
    assert_int_equal(t->size, 2 * 2 * 34);
    assert_int_equal(t->offset % align, 0);
    assert_true(t->offset >= 48);
    assert_memory_equal(t->data, q8, 136);

    t = gguf_find_tensor(f, "w.f16.3d");
    assert_non_null(t);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->size, 2 * 3 * 4 * 2);
    assert_int_equal(t->offset % align, 0);
    assert_memory_equal(t->data, f16, 48);
    assert_ptr_equal(gguf_tensor_at(f, 2), t);
    assert_null(gguf_tensor_at(f, 3));

    /* the data section starts aligned from the file start (the first key is at byte 32) */
    const gguf_tensor *first = gguf_tensor_at(f, 0);
    const uint8_t *file_start = (const uint8_t *)gguf_kv_at(f, 0)->key.ptr - 32;
    assert_int_equal(((const uint8_t *)first->data - first->offset - file_start) % align, 0);
}

static hearth_status fill_f16(void *ctx, void *dst, uint64_t size, hearth_err *err) {
    memcpy(dst, ctx, (size_t)size);
    return HEARTH_OK;
}

static hearth_status fill_fails(void *ctx, void *dst, uint64_t size, hearth_err *err) {
    return err_set(err, HEARTH_ERR_UNSUPPORTED, "conversion failed on purpose");
}

static gguf_writer *tensor_writer(uint32_t align, float *f32, uint8_t *q8, uint16_t *f16) {
    for (int i = 0; i < 12; i++) f32[i] = (float)i * 0.5f - 2.0f;
    for (int i = 0; i < 136; i++) q8[i] = (uint8_t)(i * 7 + 3);
    for (int i = 0; i < 24; i++) f16[i] = (uint16_t)(0x3c00 + i);
    gguf_writer *w = gguf_writer_new();
    int64_t ne_f32[] = {4, 3}, ne_q8[] = {64, 2}, ne_f16[] = {2, 3, 4};
    if (align != 32) OK(gguf_writer_set_int(w, "general.alignment", GGUF_V_UINT32, align, &e_));
    OK(gguf_writer_set_str(w, "general.architecture", "test", &e_));
    OK(gguf_writer_add_tensor(w, "w.f32", GGML_F32, 2, ne_f32, f32, &e_));
    OK(gguf_writer_add_tensor(w, "w.q8", GGML_Q8_0, 2, ne_q8, q8, &e_));
    OK(gguf_writer_add_tensor_fn(w, "w.f16.3d", GGML_F16, 3, ne_f16, fill_f16, f16, &e_));
    return w;
}

static void test_tensor_roundtrip(void **state) {
    const uint32_t aligns[] = {32, 64, 8, 256};
    for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
        float f32[12];
        uint8_t q8[136];
        uint16_t f16[24];
        gguf_writer *w = tensor_writer(aligns[k], f32, q8, f16);
        void *buf;
        size_t size;
        write_mem(w, &buf, &size);
        gguf_file *f = open_buf(buf, size);
        check_tensors(f, aligns[k], f32, q8, f16);
        gguf_close(f);
        mem_free(buf);
        gguf_writer_free(w);
    }
}

static void test_write_file_atomic(void **state) {
    char dir[] = "/tmp/hearth-gguf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/model.gguf", dir);

    float f32[12];
    uint8_t q8[136];
    uint16_t f16[24];
    gguf_writer *w = tensor_writer(32, f32, q8, f16);
    OK(gguf_writer_write_file(w, path, &e_));
    gguf_file *f = NULL;
    hearth_err e = {0};
    assert_int_equal(gguf_open(path, &f, &e), HEARTH_OK);
    check_tensors(f, 32, f32, q8, f16);
    void *mem;
    size_t mem_size;
    write_mem(w, &mem, &mem_size);
    size_t file_size;
    char *bytes = read_file(path, &file_size);
    assert_int_equal(file_size, mem_size);
    assert_memory_equal(bytes, mem, mem_size);
    free(bytes);
    mem_free(mem);
    gguf_close(f);

    /* a failing producer leaves the existing file as it was, and no temporary behind */
    int64_t ne[] = {32};
    OK(gguf_writer_add_tensor_fn(w, "w.fails", GGML_F32, 1, ne, fill_fails, NULL, &e_));
    assert_int_equal(gguf_writer_write_file(w, path, &e), HEARTH_ERR_UNSUPPORTED);
    assert_string_equal(e.msg, "conversion failed on purpose");
    bytes = read_file(path, &file_size);
    assert_int_equal(file_size, mem_size);
    free(bytes);
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.') entries++;
    closedir(d);
    assert_int_equal(entries, 1);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir.gguf", dir);
    assert_int_equal(gguf_writer_write_file(w, missing, &e), HEARTH_ERR_IO);
    gguf_writer_free(w);
    unlink(path);
    rmdir(dir);
}

static void test_open_errors(void **state) {
    gguf_file *f = (gguf_file *)1;
    hearth_err e = {0};
    assert_int_equal(gguf_open("/nonexistent/dir/x.gguf", &f, &e), HEARTH_ERR_NOT_FOUND);
    assert_null(f);
    assert_non_null(strstr(e.msg, "/nonexistent/dir/x.gguf"));
    assert_int_equal(gguf_open("/tmp", &f, &e), HEARTH_ERR_IO);
    assert_non_null(strstr(e.msg, "directory"));
    gguf_close(NULL);
}

/* Every allocation the reader makes can fail: the open ends with NOMEM, never a crash. */
static void test_allocation_failures(void **state) {
    gguf_writer *w = scalar_writer();
    gguf_value pool[8], top;
    build_nested(&top, pool, 3);
    OK(gguf_writer_set(w, "n.nested", &top, &e_));
    void *buf;
    size_t size;
    write_mem(w, &buf, &size);
    gguf_writer_free(w);

    mem_fail_at(0);
    gguf_file *f = NULL;
    hearth_err e = {0};
    assert_int_equal(gguf_open_memory(buf, size, "mem.gguf", &f, &e), HEARTH_OK);
    gguf_close(f);
    long allocs = mem_fail_at(0);
    assert_true(allocs >= 4);
    for (long n = 1; n <= allocs; n++) {
        mem_fail_at(n);
        hearth_status st = gguf_open_memory(buf, size, "mem.gguf", &f, &e);
        mem_fail_at(0);
        if (st != HEARTH_ERR_NOMEM) fail_msg("allocation %ld of %ld failed, open returned %d: %s", n, allocs, (int)st, e.msg);
        assert_null(f);
    }
    mem_free(buf);
}

/* ---- fixtures ----------------------------------------------------------------------- */

static void open_all_in(const char *rel, int *count) {
    DIR *d = opendir(fixture_path(rel));
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".gguf") != 0) continue;
        char rel_file[512];
        snprintf(rel_file, sizeof rel_file, "%s/%s", rel, de->d_name);
        gguf_file *f = NULL;
        hearth_err e = {0};
        hearth_status st = gguf_open(fixture_path(rel_file), &f, &e);
        if (st != HEARTH_OK) fail_msg("%s: status %d: %s", rel_file, (int)st, e.msg);
        gguf_str arch;
        if (!gguf_get_str(f, "general.architecture", &arch) || arch.len == 0)
            fail_msg("%s: no general.architecture", rel_file);
        for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            if (gguf_find_tensor(f, "") || gguf_tensor_at(f, i) != t) fail_msg("lookup broken");
        }
        gguf_close(f);
        (*count)++;
    }
    closedir(d);
}

static void test_fixtures_open(void **state) {
    if (!fixtures_available()) return;
    int count = 0;
    open_all_in("models", &count);
    open_all_in("vocab", &count);
    open_all_in("extra/vocab", &count);
    open_all_in("adapters", &count);
    assert_true(count >= 10);

    gguf_file *f = NULL;
    hearth_err e = {0};
    assert_int_equal(gguf_open(fixture_path("models/llama-spm-f16.gguf"), &f, &e), HEARTH_OK);
    gguf_str s;
    assert_true(gguf_get_str(f, "general.architecture", &s) && gguf_str_eq(s, "llama"));
    int64_t n;
    assert_true(gguf_get_int(f, "llama.embedding_length", &n) && n == 256);
    assert_true(gguf_get_int(f, "llama.block_count", &n) && n == 2);
    const gguf_arr *tokens;
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens));
    assert_int_equal(tokens->type, GGUF_V_STRING);
    assert_int_equal(tokens->n, 32000);
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, GGML_F16);
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 32000);
    assert_int_equal(t->size, 256 * 32000 * 2);
    gguf_close(f);

    assert_int_equal(gguf_open(fixture_path("models/llama-spm-q4_k_m.gguf"), &f, &e), HEARTH_OK);
    t = gguf_find_tensor(f, "blk.0.attn_q.weight");
    assert_non_null(t);
    assert_true(t->type == GGML_Q4_K || t->type == GGML_Q6_K || t->type == GGML_Q5_K);
    assert_int_equal(t->size, (uint64_t)t->ne[1] * (t->ne[0] / 256) * ggml_type_get(t->type)->block_bytes);
    gguf_close(f);
}

static void test_type_table(void **state) {
    struct { uint32_t id; const char *name; uint32_t elems, bytes; } want[] = {
        {GGML_F32, "F32", 1, 4},       {GGML_F16, "F16", 1, 2},       {GGML_Q4_0, "Q4_0", 32, 18},
        {GGML_Q4_1, "Q4_1", 32, 20},   {GGML_Q5_0, "Q5_0", 32, 22},   {GGML_Q5_1, "Q5_1", 32, 24},
        {GGML_Q8_0, "Q8_0", 32, 34},   {GGML_Q8_1, "Q8_1", 32, 36},   {GGML_Q2_K, "Q2_K", 256, 84},
        {GGML_Q3_K, "Q3_K", 256, 110}, {GGML_Q4_K, "Q4_K", 256, 144}, {GGML_Q5_K, "Q5_K", 256, 176},
        {GGML_Q6_K, "Q6_K", 256, 210}, {GGML_Q8_K, "Q8_K", 256, 292}, {GGML_BF16, "BF16", 1, 2},
        {GGML_IQ2_XXS, "IQ2_XXS", 256, 66}, {GGML_IQ2_XS, "IQ2_XS", 256, 74},
        {GGML_IQ3_XXS, "IQ3_XXS", 256, 98}, {GGML_IQ1_S, "IQ1_S", 256, 50},
        {GGML_IQ4_NL, "IQ4_NL", 32, 18},    {GGML_IQ3_S, "IQ3_S", 256, 110},
        {GGML_IQ2_S, "IQ2_S", 256, 82},     {GGML_IQ4_XS, "IQ4_XS", 256, 136},
        {GGML_IQ1_M, "IQ1_M", 256, 56},     {GGML_TQ1_0, "TQ1_0", 256, 54},
        {GGML_TQ2_0, "TQ2_0", 256, 66},     {GGML_MXFP4, "MXFP4", 32, 17},
        {GGML_I8, "I8", 1, 1}, {GGML_I16, "I16", 1, 2}, {GGML_I32, "I32", 1, 4}, {GGML_I64, "I64", 1, 8},
        {GGML_F64, "F64", 1, 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ggml_type_info *ti = ggml_type_get(want[i].id);
        if (!ti->name || strcmp(ti->name, want[i].name) || ti->block_elems != want[i].elems ||
            ti->block_bytes != want[i].bytes)
            fail_msg("type %u: got %s %u/%u, want %s %u/%u", want[i].id, ti->name ? ti->name : "(null)",
                     ti->block_elems, ti->block_bytes, want[i].name, want[i].elems, want[i].bytes);
        uint32_t back;
        assert_true(ggml_type_from_name(want[i].name, &back));
        assert_int_equal(back, want[i].id);
    }
    uint32_t id;
    assert_true(ggml_type_from_name("q4_k", &id) && id == GGML_Q4_K);
    assert_false(ggml_type_from_name("Q4_2", &id));
    const uint32_t retired[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 63, 64, 1000, 0xffffffffu};
    for (size_t i = 0; i < sizeof retired / sizeof retired[0]; i++) assert_null(ggml_type_get(retired[i])->name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_scalar_and_flat_array_roundtrip),
        cmocka_unit_test(test_coercions),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_writer_replaces_and_refuses),
        cmocka_unit_test(test_tensor_roundtrip),
        cmocka_unit_test(test_write_file_atomic),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_fixtures_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
