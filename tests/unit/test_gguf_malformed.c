/* Malformed GGUF files: a small valid file is built byte by byte (recording where each
 * field lives), then broken one way at a time: truncated at every byte, huge counts and
 * lengths, bad value and tensor types, bad dimensions, offsets and alignment, duplicates,
 * overlaps, wrong versions and magic. Each must be refused with FORMAT and a one-line
 * message naming the file; a subset also goes through `hearth info`. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"

typedef struct bytes {
    uint8_t p[1024];
    size_t len;
} bytes;

static size_t put_le(bytes *b, uint64_t v, unsigned n) {
    size_t at = b->len;
    for (unsigned i = 0; i < n; i++) b->p[b->len++] = (uint8_t)(v >> (8 * i));
    return at;
}

static size_t put_str(bytes *b, const char *s) {
    size_t at = put_le(b, strlen(s), 8);
    memcpy(b->p + b->len, s, strlen(s));
    b->len += strlen(s);
    return at;
}

/* Where the fields of the valid file are, for patching. */
static struct {
    size_t version, n_tensors, n_kv;
    size_t kv0_key_len, kv0_type, kv0_str_len;
    size_t align_type, align_val;
    size_t arr1_key, arr1_elem_type, arr1_count, arr2_key;
    size_t strs_count, strs_elem0_len;
    size_t nested_count, nested_inner_count, nested_inner_type;
    size_t bool_val;
    size_t t0_name_len, t0_name, t0_n_dims, t0_ne0, t0_ne1, t0_type, t0_offset;
    size_t t1_name, t1_ne0, t1_type, t1_offset;
} at;

static bytes valid;

/* The valid file: 8 metadata entries, tensors t0 (F32 [8,2], 64 bytes at 0) and
 * t1 (Q8_0 [32], 34 bytes at 64); the file ends where t1's data ends. */
static void build_valid(void) {
    bytes *b = &valid;
    b->len = 0;
    memcpy(b->p, "GGUF", 4);
    b->len = 4;
    at.version = put_le(b, 3, 4);
    at.n_tensors = put_le(b, 2, 8);
    at.n_kv = put_le(b, 8, 8);

    at.kv0_key_len = put_str(b, "general.architecture");
    at.kv0_type = put_le(b, GGUF_V_STRING, 4);
    at.kv0_str_len = put_str(b, "llama");

    put_str(b, "general.alignment");
    at.align_type = put_le(b, GGUF_V_UINT32, 4);
    at.align_val = put_le(b, 32, 4);

    at.arr1_key = put_str(b, "a.arr1") + 8;
    put_le(b, GGUF_V_ARRAY, 4);
    at.arr1_elem_type = put_le(b, GGUF_V_INT32, 4);
    at.arr1_count = put_le(b, 3, 8);
    put_le(b, 1, 4), put_le(b, 2, 4), put_le(b, 3, 4);

    at.arr2_key = put_str(b, "a.arr2") + 8;
    put_le(b, GGUF_V_ARRAY, 4);
    put_le(b, GGUF_V_UINT8, 4);
    put_le(b, 2, 8);
    put_le(b, 7, 1), put_le(b, 9, 1);

    put_str(b, "a.strs");
    put_le(b, GGUF_V_ARRAY, 4);
    put_le(b, GGUF_V_STRING, 4);
    at.strs_count = put_le(b, 2, 8);
    at.strs_elem0_len = put_str(b, "x");
    put_str(b, "yz");

    put_str(b, "a.nested");
    put_le(b, GGUF_V_ARRAY, 4);
    put_le(b, GGUF_V_ARRAY, 4);
    at.nested_count = put_le(b, 2, 8);
    put_le(b, GGUF_V_UINT8, 4);
    put_le(b, 1, 8);
    put_le(b, 1, 1);
    at.nested_inner_type = put_le(b, GGUF_V_UINT8, 4);
    at.nested_inner_count = put_le(b, 2, 8);
    put_le(b, 2, 1), put_le(b, 3, 1);

    put_str(b, "b.flag");
    put_le(b, GGUF_V_BOOL, 4);
    at.bool_val = put_le(b, 1, 1);

    put_str(b, "f.val");
    put_le(b, GGUF_V_FLOAT64, 4);
    put_le(b, 0x3ff0000000000000ull, 8);

    at.t0_name_len = put_str(b, "t0");
    at.t0_name = at.t0_name_len + 8;
    at.t0_n_dims = put_le(b, 2, 4);
    at.t0_ne0 = put_le(b, 8, 8);
    at.t0_ne1 = put_le(b, 2, 8);
    at.t0_type = put_le(b, GGML_F32, 4);
    at.t0_offset = put_le(b, 0, 8);

    at.t1_name = put_str(b, "t1") + 8;
    put_le(b, 1, 4);
    at.t1_ne0 = put_le(b, 32, 8);
    at.t1_type = put_le(b, GGML_Q8_0, 4);
    at.t1_offset = put_le(b, 64, 8);

    while (b->len % 32) put_le(b, 0, 1);
    for (int i = 0; i < 64 + 34; i++) put_le(b, (uint64_t)(i * 13), 1);
}

static void patch(bytes *b, size_t off, uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; i++) b->p[off + i] = (uint8_t)(v >> (8 * i));
}

/* Opens the buffer and requires a FORMAT refusal with a one-line message naming the file,
 * containing want (when given). */
static void expect_refused(const uint8_t *p, size_t n, const char *what, const char *want) {
    gguf_file *f = NULL;
    hearth_err e = {0};
    hearth_status st = gguf_open_memory(p, n, "bad.gguf", &f, &e);
    if (st != HEARTH_ERR_FORMAT) {
        gguf_close(f);
        fail_msg("%s: expected FORMAT (%d), got %d: %s", what, (int)HEARTH_ERR_FORMAT, (int)st, e.msg);
    }
    assert_null(f);
    if (strncmp(e.msg, "bad.gguf: ", 10) != 0 || strlen(e.msg) <= 10 || strchr(e.msg, '\n'))
        fail_msg("%s: message is not one line naming the file: '%s'", what, e.msg);
    if (want && !strstr(e.msg, want)) fail_msg("%s: message '%s' does not mention '%s'", what, e.msg, want);
}

static void expect_patch_refused(size_t off, uint64_t v, unsigned n, const char *what, const char *want) {
    bytes b = valid;
    patch(&b, off, v, n);
    expect_refused(b.p, b.len, what, want);
}

static void test_valid_file_opens(void **state) {
    gguf_file *f = NULL;
    hearth_err e = {0};
    assert_int_equal(gguf_open_memory(valid.p, valid.len, "ok.gguf", &f, &e), HEARTH_OK);
    assert_int_equal(gguf_kv_count(f), 8);
    assert_int_equal(gguf_tensor_count(f), 2);
    const gguf_tensor *t1 = gguf_find_tensor(f, "t1");
    assert_non_null(t1);
    assert_ptr_equal((const uint8_t *)t1->data + t1->size, valid.p + valid.len);
    const gguf_value *nested = gguf_find(f, "a.nested");
    assert_non_null(nested);
    assert_int_equal(nested->a.arrs[1].a.n, 2);
    gguf_close(f);
}

static void test_truncated_everywhere(void **state) {
    for (size_t n = 0; n < valid.len; n++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", n);
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so any over-read is caught by ASan */
        memcpy(copy, valid.p, n);
        expect_refused(copy, n, what, NULL);
        free(copy);
    }
}

static void test_header(void **state) {
    expect_refused(valid.p, 0, "empty", "empty");
    expect_patch_refused(0, 0x47554747, 4, "bad magic", "not a GGUF file");
    expect_patch_refused(at.version, 1, 4, "version 1", "version 1 ");
    expect_patch_refused(at.version, 99, 4, "version 99", "version 99");
    expect_patch_refused(at.version, 0x03000000, 4, "big-endian version", "big-endian");
    const uint64_t huge[] = {1ull << 63, UINT64_MAX, (uint64_t)valid.len, 1ull << 32};
    for (size_t i = 0; i < 4; i++) {
        expect_patch_refused(at.n_tensors, huge[i], 8, "huge tensor count", "cannot fit");
        expect_patch_refused(at.n_kv, huge[i], 8, "huge kv count", "cannot fit");
    }
    /* one more entry than there are: the counts fit, the data does not */
    expect_patch_refused(at.n_kv, 9, 8, "kv count + 1", NULL);
    expect_patch_refused(at.n_tensors, 3, 8, "tensor count + 1", NULL);
}

static void test_lengths(void **state) {
    const size_t fields[] = {at.kv0_key_len, at.kv0_str_len, at.strs_elem0_len, at.t0_name_len};
    for (size_t i = 0; i < 4; i++) {
        size_t remain = valid.len - fields[i] - 8;
        expect_patch_refused(fields[i], 1ull << 63, 8, "length 2^63", "exceeds");
        expect_patch_refused(fields[i], UINT64_MAX, 8, "length 2^64-1", "exceeds");
        expect_patch_refused(fields[i], remain + 1, 8, "length just past the end", "exceeds");
    }
    expect_patch_refused(at.kv0_key_len, 0, 8, "empty key", "empty metadata key");
    expect_patch_refused(at.t0_name_len, 0, 8, "empty tensor name", "empty tensor name");
    const size_t counts[] = {at.arr1_count, at.strs_count, at.nested_count, at.nested_inner_count};
    for (size_t i = 0; i < 4; i++) {
        expect_patch_refused(counts[i], 1ull << 63, 8, "array count 2^63", "cannot fit");
        expect_patch_refused(counts[i], UINT64_MAX, 8, "array count 2^64-1", "cannot fit");
        expect_patch_refused(counts[i], valid.len - counts[i], 8, "array count past the end", "cannot fit");
    }
}

static void test_value_types(void **state) {
    expect_patch_refused(at.kv0_type, 13, 4, "value type 13", "value type 13");
    expect_patch_refused(at.kv0_type, UINT32_MAX, 4, "value type 2^32-1", "not a GGUF value type");
    expect_patch_refused(at.arr1_elem_type, 13, 4, "array element type 13", "element type 13");
    expect_patch_refused(at.nested_inner_type, 200, 4, "nested element type", "element type 200");
    expect_patch_refused(at.bool_val, 2, 1, "bool 2", "bool");
    expect_patch_refused(at.align_val, 48, 4, "alignment 48", "power of two");
    expect_patch_refused(at.align_val, 0, 4, "alignment 0", "power of two");
    /* regression (found by the malformed corpus under UBSan): alignment 1 let F32 tensor
     * data start at any byte, and the kernels then loaded misaligned floats; the format
     * requires a multiple of 8 */
    expect_patch_refused(at.align_val, 1, 4, "alignment 1", "power of two >= 8");
    expect_patch_refused(at.align_val, 4, 4, "alignment 4", "power of two >= 8");
    expect_patch_refused(at.align_type, GGUF_V_INT32, 4, "alignment int32", "uint32");
    expect_patch_refused(at.arr2_key + 5, '1', 1, "duplicate key", "duplicate metadata key");
}

static void test_nesting_too_deep(void **state) {
    bytes b = {0};
    memcpy(b.p, "GGUF", 4);
    b.len = 4;
    put_le(&b, 3, 4);
    put_le(&b, 0, 8);
    put_le(&b, 1, 8);
    put_str(&b, "deep");
    put_le(&b, GGUF_V_ARRAY, 4);
    for (int d = 0; d < 9; d++) put_le(&b, GGUF_V_ARRAY, 4), put_le(&b, 1, 8);
    put_le(&b, GGUF_V_UINT8, 4), put_le(&b, 1, 8), put_le(&b, 0, 1);
    expect_refused(b.p, b.len, "arrays nested 10 deep", "nested more than");
}

static void test_tensor_table(void **state) {
    const uint64_t bad_types[] = {4, 5, 31, 36, 40, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "unknown tensor type id %llu", (unsigned long long)bad_types[i]);
        expect_patch_refused(at.t0_type, bad_types[i], 4, "bad tensor type", want);
    }
    expect_patch_refused(at.t0_n_dims, 0, 4, "0 dims", "dimensions");
    expect_patch_refused(at.t0_n_dims, 5, 4, "5 dims", "dimensions");
    expect_patch_refused(at.t0_n_dims, UINT32_MAX, 4, "2^32-1 dims", "dimensions");
    expect_patch_refused(at.t0_ne1, 0, 8, "zero dim", "at least 1");
    expect_patch_refused(at.t0_ne1, UINT64_MAX, 8, "negative dim", "at least 1");
    expect_patch_refused(at.t0_ne1, 1ull << 63, 8, "dim 2^63", "at least 1");
    bytes b = valid;
    patch(&b, at.t0_ne0, 1ull << 32, 8);
    patch(&b, at.t0_ne1, 1ull << 31, 8);
    expect_refused(b.p, b.len, "element count 2^63", "overflows");
    b = valid;
    patch(&b, at.t0_ne0, 1ull << 61, 8);
    expect_refused(b.p, b.len, "byte size past 2^64", "overflows");
    expect_patch_refused(at.t1_ne0, 31, 8, "ne0 not a block multiple", "multiple of the Q8_0 block size 32");
    expect_patch_refused(at.t1_offset, 65, 8, "misaligned offset", "alignment");
    expect_patch_refused(at.t1_offset, 96, 8, "data past the end", "past the end");
    expect_patch_refused(at.t1_offset, 1ull << 40, 8, "offset 2^40", "past the end");
    expect_patch_refused(at.t1_offset, UINT64_MAX - 31, 8, "offset wrapping", "past the end");
    expect_patch_refused(at.t1_offset, 32, 8, "overlapping tensors", "overlaps");
    expect_patch_refused(at.t1_offset, 0, 8, "same offset", "overlaps");
    expect_patch_refused(at.t1_name + 1, '0', 1, "duplicate tensor name", "duplicate tensor name");
    b = valid;
    patch(&b, at.t0_name, '\n', 1);
    patch(&b, at.t0_type, 1000, 4);
    expect_refused(b.p, b.len, "newline in a tensor name", "tensor '\\x0a0'");
}

/* Random byte changes (fixed seed): every result is OK or FORMAT, and an accepted file's
 * pointers all lie inside the buffer. */
static void test_random_mutations(void **state) {
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 20000; iter++) {
        bytes b = valid;
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            b.p[(rng >> 8) % b.len] = (uint8_t)rng;
        }
        uint8_t *exact = malloc(b.len); /* exact size, so any over-read is caught by ASan */
        memcpy(exact, b.p, b.len);
        gguf_file *f = NULL;
        hearth_err e = {0};
        hearth_status st = gguf_open_memory(exact, b.len, "fuzz.gguf", &f, &e);
        if (st != HEARTH_OK && st != HEARTH_ERR_FORMAT) fail_msg("iteration %d: status %d: %s", iter, (int)st, e.msg);
        if (st != HEARTH_OK && (!e.msg[0] || strchr(e.msg, '\n'))) fail_msg("iteration %d: bad message '%s'", iter, e.msg);
        for (uint64_t i = 0; f && i < gguf_tensor_count(f); i++) {
            const gguf_tensor *t = gguf_tensor_at(f, i);
            const uint8_t *d = t->data;
            assert_true(d >= exact && d + t->size <= exact + b.len);
        }
        for (uint64_t i = 0; f && i < gguf_kv_count(f); i++) {
            const gguf_kv *kv = gguf_kv_at(f, i);
            const uint8_t *k = (const uint8_t *)kv->key.ptr;
            assert_true(k >= exact && k + kv->key.len <= exact + b.len);
        }
        gguf_close(f);
        free(exact);
    }
}

/* The CLI reports the same refusals as one line on stderr with exit status 1. */
static void test_cli_refuses(void **state) {
    struct { const char *name; size_t off; uint64_t v; unsigned n; size_t len; } cases[] = {
        {"version1", 0, 0, 0, 0},
        {"truncated", 0, 0, 0, 100},
        {"badtype", 0, 0, 0, 0},
        {"overlap", 0, 0, 0, 0},
        {"hugecount", 0, 0, 0, 0},
    };
    cases[0].off = at.version, cases[0].v = 1, cases[0].n = 4;
    cases[2].off = at.t0_type, cases[2].v = 1000, cases[2].n = 4;
    cases[3].off = at.t1_offset, cases[3].v = 32, cases[3].n = 8;
    cases[4].off = at.n_kv, cases[4].v = UINT64_MAX, cases[4].n = 8;
    char dir[] = "/tmp/hearth-malformed-XXXXXX";
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = valid;
        if (cases[i].n) patch(&b, cases[i].off, cases[i].v, cases[i].n);
        size_t len = cases[i].len ? cases[i].len : b.len;
        char path[128], args[160];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, cases[i].name);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(b.p, 1, len, fp), len);
        fclose(fp);
        for (int json = 0; json < 2; json++) {
            snprintf(args, sizeof args, "info %s%s", path, json ? " --json" : "");
            char *out = NULL, *err = NULL;
            int code = run_hearth(args, &out, &err);
            assert_non_null(err);
            size_t elen = strlen(err);
            char *nl = strchr(err, '\n');
            if (code != 1 || elen < 2 || !nl || nl[1] != '\0' || strncmp(err, "hearth: error: ", 15) != 0 ||
                !strstr(err, path))
                fail_msg("hearth %s: exit %d, stderr '%s'", args, code, err);
            assert_string_equal(out, "");
            free(out);
            free(err);
        }
        unlink(path);
    }
    rmdir(dir);
}

static int setup(void **state) {
    build_valid();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file_opens),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_nesting_too_deep),
        cmocka_unit_test(test_tensor_table),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_cli_refuses),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
