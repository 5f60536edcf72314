/* Block layouts: blocks written byte by byte with known scales and quants, whose values
 * the test derives itself from the published layout (in the form the format is usually
 * described), compared with what the kernels decode. Catches nibble order, bit order
 * and scale packing mistakes that round-trip tests cannot see. Also: quantizing data
 * that a format represents exactly gives it back exactly. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/kernels.h"

/* f16 bit patterns of the scales used below */
#define H_2 0x4000
#define H_0_5 0x3800
#define H_0_25 0x3400
#define H_0_125 0x3000
#define H_0_0625 0x2c00
#define H_M1_5 0xbe00

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void decode(uint32_t type, const uint8_t *blk, float *out, int n) {
    const kern_type_traits *t = kern_scalar_traits(type);
    assert_non_null(t);
    t->to_float(blk, out, n);
}

static void expect_values(const char *what, const float *got, const float *want, int n) {
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("%s: element %d is %g, expected %g", what, i, got[i], want[i]);
}

static void test_q4_0(void **state) {
    uint8_t b[18];
    float want[32], got[32];
    put16(b, H_0_5);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    for (int j = 0; j < 16; j++) {
        want[j] = 0.5f * (j - 8);            /* low nibbles: elements 0..15 */
        want[j + 16] = 0.5f * (15 - j - 8);  /* high nibbles: elements 16..31 */
    }
    decode(GGML_Q4_0, b, got, 32);
    expect_values("Q4_0", got, want, 32);
}

static void test_q4_1(void **state) {
    uint8_t b[20];
    float want[32], got[32];
    put16(b, H_0_25);
    put16(b + 2, H_M1_5);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)((3 * j) % 16 | ((j + 5) % 16) << 4);
    for (int j = 0; j < 16; j++) {
        want[j] = 0.25f * ((3 * j) % 16) - 1.5f;
        want[j + 16] = 0.25f * ((j + 5) % 16) - 1.5f;
    }
    decode(GGML_Q4_1, b, got, 32);
    expect_values("Q4_1", got, want, 32);
}

static const uint8_t qh_bytes[4] = {0x0f, 0xa5, 0x3c, 0x81};
static int qh_bit(int e) { return (qh_bytes[e / 8] >> (e % 8)) & 1; }   /* element e's 5th bit */

static void test_q5_0(void **state) {
    uint8_t b[22];
    float want[32], got[32];
    put16(b, H_0_5);
    memcpy(b + 2, qh_bytes, 4);
    for (int j = 0; j < 16; j++) b[6 + j] = (uint8_t)(7 * j + 3);
    for (int j = 0; j < 16; j++) {
        int q = (b[6 + j] & 15) + 16 * qh_bit(j);
        int q2 = (b[6 + j] >> 4) + 16 * qh_bit(j + 16);
        want[j] = 0.5f * (q - 16);
        want[j + 16] = 0.5f * (q2 - 16);
    }
    decode(GGML_Q5_0, b, got, 32);
    expect_values("Q5_0", got, want, 32);
}

static void test_q5_1(void **state) {
    uint8_t b[24];
    float want[32], got[32];
    put16(b, H_0_125);
    put16(b + 2, H_M1_5);
    memcpy(b + 4, qh_bytes, 4);
    for (int j = 0; j < 16; j++) b[8 + j] = (uint8_t)(11 * j + 1);
    for (int j = 0; j < 16; j++) {
        want[j] = 0.125f * ((b[8 + j] & 15) + 16 * qh_bit(j)) - 1.5f;
        want[j + 16] = 0.125f * ((b[8 + j] >> 4) + 16 * qh_bit(j + 16)) - 1.5f;
    }
    decode(GGML_Q5_1, b, got, 32);
    expect_values("Q5_1", got, want, 32);
}

static void test_q8_0_q8_1(void **state) {
    uint8_t b0[34], b1[36];
    float want[32], got[32];
    put16(b0, H_0_25);
    put16(b1, H_0_25);
    put16(b1 + 2, H_2);   /* s: not part of the values */
    for (int j = 0; j < 32; j++) {
        int8_t q = (int8_t)(7 * j - 100);
        memcpy(b0 + 2 + j, &q, 1);
        memcpy(b1 + 4 + j, &q, 1);
        want[j] = 0.25f * q;
    }
    decode(GGML_Q8_0, b0, got, 32);
    expect_values("Q8_0", got, want, 32);
    decode(GGML_Q8_1, b1, got, 32);
    expect_values("Q8_1", got, want, 32);
}

static void test_q8_k(void **state) {
    uint8_t b[292] = {0};
    float want[256], got[256], d = 0.01f;
    memcpy(b, &d, 4);
    for (int j = 0; j < 256; j++) {
        int8_t q = (int8_t)((j * 37) % 255 - 127);
        memcpy(b + 4 + j, &q, 1);
        want[j] = d * q;
    }
    decode(GGML_Q8_K, b, got, 256);
    expect_values("Q8_K", got, want, 256);

    /* the quantizer fills bsums with the sum of each 16 quants */
    float x[256];
    for (int j = 0; j < 256; j++) x[j] = sinf(0.37f * j) * (1 + j % 5);
    kern_scalar_traits(GGML_Q8_K)->from_float(x, b, 256);
    for (int g = 0; g < 16; g++) {
        int sum = 0;
        for (int l = 0; l < 16; l++) sum += (int8_t)b[4 + 16 * g + l];
        int16_t bs;
        memcpy(&bs, b + 4 + 256 + 2 * g, 2);
        assert_int_equal(bs, sum);
    }
}

/* Q4_K / Q5_K scale bytes for sc = {1,2,3,4,17,34,51,63}, mn = {5,6,7,8,20,40,60,33}:
   bytes 0-3: sc[0..3] | top 2 bits of sc[4..7] << 6; bytes 4-7: mn[0..3] | top 2 bits of
   mn[4..7] << 6; bytes 8-11: low 4 bits of sc[4..7] | low 4 bits of mn[4..7] << 4. */
static const uint8_t k_scales[12] = {0x41, 0x82, 0xc3, 0xc4, 0x45, 0x86, 0xc7, 0x88,
                                     0x41, 0x82, 0xc3, 0x1f};
static const int k_sc[8] = {1, 2, 3, 4, 17, 34, 51, 63};
static const int k_mn[8] = {5, 6, 7, 8, 20, 40, 60, 33};

static void test_q4_k(void **state) {
    uint8_t b[144];
    float want[256], got[256];
    put16(b, H_0_25);
    put16(b + 2, H_0_125);
    memcpy(b + 4, k_scales, 12);
    const uint8_t *qs = b + 16;
    for (int i = 0; i < 128; i++) b[16 + i] = (uint8_t)(i * 7 + 5);
    /* for each 64 elements: 32 low nibbles of qs[0..31] (sub-block is), then their 32
       high nibbles (sub-block is+1); qs advances by 32 */
    float *y = want;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, qs += 32) {
        for (int l = 0; l < 32; l++) *y++ = 0.25f * k_sc[is] * (qs[l] & 0xf) - 0.125f * k_mn[is];
        for (int l = 0; l < 32; l++) *y++ = 0.25f * k_sc[is + 1] * (qs[l] >> 4) - 0.125f * k_mn[is + 1];
    }
    decode(GGML_Q4_K, b, got, 256);
    expect_values("Q4_K", got, want, 256);
}

static void test_q5_k(void **state) {
    uint8_t b[176];
    float want[256], got[256];
    put16(b, H_0_0625);
    put16(b + 2, H_0_5);
    memcpy(b + 4, k_scales, 12);
    const uint8_t *qh = b + 16, *ql = b + 48;
    for (int i = 0; i < 32; i++) b[16 + i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 128; i++) b[48 + i] = (uint8_t)(i * 13 + 2);
    /* as Q4_K, plus a fifth bit from qh[l]: masks u1, u2 start at bits 0, 1 and move up
       two bits per 64 elements */
    float *y = want;
    int u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
        for (int l = 0; l < 32; l++)
            *y++ = 0.0625f * k_sc[is] * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - 0.5f * k_mn[is];
        for (int l = 0; l < 32; l++)
            *y++ = 0.0625f * k_sc[is + 1] * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - 0.5f * k_mn[is + 1];
    }
    decode(GGML_Q5_K, b, got, 256);
    expect_values("Q5_K", got, want, 256);
}

static void test_q6_k(void **state) {
    uint8_t b[210];
    float want[256], got[256];
    for (int i = 0; i < 128; i++) b[i] = (uint8_t)(i * 11 + 7);          /* ql */
    for (int i = 0; i < 64; i++) b[128 + i] = (uint8_t)(i * 29 + 3);     /* qh */
    for (int i = 0; i < 16; i++) b[192 + i] = (uint8_t)(int8_t)((i - 8) * 9);  /* scales */
    put16(b + 208, H_0_0625);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    /* per 128 elements, for l < 32: four quants from ql[l], ql[l+32] (low, then high
       nibbles) and the 2-bit pairs of qh[l]; scale index l/16 + 0, 2, 4, 6 */
    for (int n = 0; n < 256; n += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q2 = ((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            want[n + l] = 0.0625f * sc[is] * q1;
            want[n + l + 32] = 0.0625f * sc[is + 2] * q2;
            want[n + l + 64] = 0.0625f * sc[is + 4] * q3;
            want[n + l + 96] = 0.0625f * sc[is + 6] * q4;
        }
    }
    decode(GGML_Q6_K, b, got, 256);
    expect_values("Q6_K", got, want, 256);
}

/* Data a format represents exactly (fp16 scale, quants in range, the extreme on the
   side the quantizer maps it to) must come back unchanged. */
static void test_exact_round_trip(void **state) {
    /* value = 0.25 * (q - zero) for symmetric types, 0.25 * q - 2 for offset types */
    const struct { uint32_t type; int levels, zero; bool offset; } cases[] = {
        {GGML_Q8_0, 255, 127, false}, {GGML_Q4_0, 16, 8, false}, {GGML_Q5_0, 32, 16, false},
        {GGML_Q4_1, 16, 0, true}, {GGML_Q5_1, 32, 0, true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const kern_type_traits *t = kern_scalar_traits(cases[k].type);
        float x[64], back[64];
        uint8_t buf[128];
        for (int i = 0; i < 64; i++) {
            int q = (i * 5) % cases[k].levels;
            x[i] = cases[k].offset ? 0.25f * q - 2.0f : 0.25f * (q - cases[k].zero);
        }
        for (int blk = 0; blk < 2; blk++) {   /* both ends of the range in every block */
            float *xb = x + 32 * blk;
            xb[3] = cases[k].offset ? -2.0f : -0.25f * cases[k].zero;
            if (cases[k].offset) xb[5] = 0.25f * (cases[k].levels - 1) - 2.0f;
        }
        t->from_float(x, buf, 64);
        t->to_float(buf, back, 64);
        for (int i = 0; i < 64; i++)
            if (back[i] != x[i]) fail_msg("%s: element %d came back %g, was %g", t->name, i, back[i], x[i]);
    }
}

static void test_traits_table(void **state) {
    const uint32_t types[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q8_1, GGML_Q8_K,
                              GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
    const uint32_t sizes[][2] = {{1, 4}, {1, 2}, {1, 2}, {32, 34}, {32, 36}, {256, 292},
                                 {32, 18}, {32, 20}, {32, 22}, {32, 24}, {256, 144}, {256, 176}, {256, 210}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const kern_type_traits *t = kern_traits(types[i]);
        assert_non_null(t);
        assert_non_null(kern_scalar_traits(types[i]));
        assert_int_equal(t->type, types[i]);
        assert_int_equal(t->block_elems, sizes[i][0]);
        assert_int_equal(t->block_bytes, sizes[i][1]);
        assert_true(t->to_float && t->from_float && t->vec_dot);
        assert_non_null(kern_traits(t->vec_dot_type));
        assert_int_equal(kern_row_bytes(types[i], 4096), 4096 / sizes[i][0] * sizes[i][1]);
    }
    assert_null(kern_traits(GGML_Q2_K));
    assert_null(kern_traits(GGML_IQ2_XXS));
    assert_null(kern_traits(1000));
    assert_int_equal(kern_row_bytes(GGML_Q4_K, 4000), 0);   /* not whole blocks */
    assert_int_equal(kern_row_bytes(GGML_Q4_0, -32), 0);
    assert_int_equal(kern_row_bytes(GGML_Q2_K, 256), 0);
    assert_int_equal(kern_row_bytes(GGML_F32, INT64_MAX), 0);   /* overflow */
    assert_int_equal(kern_traits(GGML_Q4_0)->vec_dot_type, GGML_Q8_0);
    assert_int_equal(kern_traits(GGML_Q4_1)->vec_dot_type, GGML_Q8_1);
    assert_int_equal(kern_traits(GGML_Q5_1)->vec_dot_type, GGML_Q8_1);
    assert_int_equal(kern_traits(GGML_Q6_K)->vec_dot_type, GGML_Q8_K);
    assert_int_equal(kern_traits(GGML_F16)->vec_dot_type, GGML_F32);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q4_1),
        cmocka_unit_test(test_q5_0),
        cmocka_unit_test(test_q5_1),
        cmocka_unit_test(test_q8_0_q8_1),
        cmocka_unit_test(test_q8_k),
        cmocka_unit_test(test_q4_k),
        cmocka_unit_test(test_q5_k),
        cmocka_unit_test(test_q6_k),
        cmocka_unit_test(test_exact_round_trip),
        cmocka_unit_test(test_traits_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
