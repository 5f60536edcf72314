/* f16 and bf16 conversions: every f16 value, rounding (ties to even) at normal,
 * subnormal and overflow boundaries, infinities and NaNs. The f16 oracle is the
 * compiler's _Float16 (soft-float, correctly rounded); bf16 is checked by exact
 * neighbour comparison in double. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t oracle_f16(float f) {
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static void test_f16_every_value(void **state) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kern_f16_to_f32((uint16_t)h);
        _Float16 hv;
        uint16_t hb = (uint16_t)h;
        memcpy(&hv, &hb, 2);
        float expect = (float)hv;
        bool is_nan = ((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff);
        if (is_nan) {
            if (!isnan(f)) fail_msg("f16 0x%04x: expected NaN, got %g", h, f);
            uint16_t back = kern_f32_to_f16(f);
            if (((back >> 10) & 0x1f) != 0x1f || !(back & 0x3ff))
                fail_msg("f16 NaN 0x%04x came back as 0x%04x", h, back);
            continue;
        }
        if (bits_of(f) != bits_of(expect))
            fail_msg("f16 0x%04x -> %a, expected %a", h, f, expect);
        uint16_t back = kern_f32_to_f16(f);
        if (back != h) fail_msg("f16 0x%04x -> %a -> 0x%04x", h, f, back);
    }
}

static void check_f16(float f) {
    uint16_t got = kern_f32_to_f16(f), want = oracle_f16(f);
    if (got != want) fail_msg("f32 %a (0x%08x) -> f16 0x%04x, expected 0x%04x", f, bits_of(f), got, want);
}

static void test_f16_rounding_edges(void **state) {
    /* literal expectations: the format facts themselves */
    assert_int_equal(kern_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(kern_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(kern_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(kern_f32_to_f16(65519.996f), 0x7bff);
    assert_int_equal(kern_f32_to_f16(65520.0f), 0x7c00);          /* tie -> even = inf */
    assert_int_equal(kern_f32_to_f16(-1e9f), 0xfc00);
    assert_int_equal(kern_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);  /* tie -> even (down) */
    assert_int_equal(kern_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie -> even (up) */
    assert_int_equal(kern_f32_to_f16(0x1p-24f), 0x0001);          /* smallest subnormal */
    assert_int_equal(kern_f32_to_f16(0x1p-25f), 0x0000);          /* tie -> even = 0 */
    assert_int_equal(kern_f32_to_f16(0x1.000002p-25f), 0x0001);
    assert_int_equal(kern_f32_to_f16(3 * 0x1p-25f), 0x0002);      /* 1.5 ulp tie -> 2 */
    assert_int_equal(kern_f32_to_f16(0x1p-14f), 0x0400);          /* smallest normal */
    assert_int_equal(kern_f32_to_f16(0x1.ff8p-15f), 0x03ff);      /* largest subnormal */
    assert_int_equal(kern_f32_to_f16(0x1.ffbp-15f), 0x03ff);
    assert_int_equal(kern_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* tie -> even: into normal */
    assert_int_equal(kern_f32_to_f16(-0.0f), 0x8000);
    assert_int_equal(kern_f32_to_f16(INFINITY), 0x7c00);
    assert_int_equal(kern_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(kern_f32_to_f16(1e-30f), 0x0000);
    assert_int_equal(kern_f32_to_f16(-1e-30f), 0x8000);
    uint16_t qnan = kern_f32_to_f16(NAN);
    assert_int_equal(qnan & 0x7c00, 0x7c00);
    assert_true((qnan & 0x3ff) != 0);
    assert_true(isnan(kern_f16_to_f32(kern_f32_to_f16(float_of(0x7f800001u)))));  /* signalling NaN */

    const float edges[] = {65504.0f, 65519.0f, 65520.0f, 65536.0f, 0x1p-24f, 0x1p-25f,
                           0x1.8p-24f, 0x1p-14f, 0x1.ffcp-15f, 0x1.ff8p-15f, 6.1e-5f, 1e-8f, 3.14159265f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        check_f16(edges[i]);
        check_f16(-edges[i]);
    }
}

static void test_f16_random_vs_oracle(void **state) {
    kt_rng r = {42};
    for (int i = 0; i < 400000; i++) {
        uint32_t u = (uint32_t)kt_next(&r);
        /* concentrate on the representable range: exponents around f16's */
        if (i & 1) u = (u & 0x807fffffu) | ((uint32_t)(96 + kt_next(&r) % 48) << 23);
        float f = float_of(u);
        if (isnan(f)) continue;
        check_f16(f);
    }
}

/* bf16 oracle: nearest of the two bf16 neighbours, ties to the even one. */
static uint16_t oracle_bf16(float f) {
    uint32_t u = bits_of(f);
    uint16_t lo = (uint16_t)(u >> 16);
    uint16_t hi = (uint16_t)(lo + 1);
    double dlo = fabs((double)f - (double)float_of((uint32_t)lo << 16));
    double dhi = fabs((double)float_of((uint32_t)hi << 16) - (double)f);
    if ((u & 0xffff) == 0) return lo;
    if (isinf(float_of((uint32_t)hi << 16))) {
        /* rounding up overflows: ties and beyond go to infinity */
        return (u & 0xffff) >= 0x8000 ? hi : lo;
    }
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

static void test_bf16(void **state) {
    assert_int_equal(kern_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(kern_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);       /* tie -> even */
    assert_int_equal(kern_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);   /* tie -> even */
    assert_int_equal(kern_f32_to_bf16(-2.5f), 0xc020);
    assert_int_equal(kern_f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(kern_f32_to_bf16(float_of(0x7f7fffffu)), 0x7f80);  /* FLT_MAX -> inf */
    assert_int_equal(kern_f32_to_bf16(float_of(0x00000001u)), 0x0000);  /* subnormal, rounds to 0 */
    assert_int_equal(kern_f32_to_bf16(float_of(0x00018000u)), 0x0002);  /* subnormal tie -> even */
    uint16_t nan = kern_f32_to_bf16(float_of(0x7f800001u));  /* payload only in low bits */
    assert_true(isnan(kern_bf16_to_f32(nan)));
    assert_true(kern_bf16_to_f32(0x3f80) == 1.0f);
    assert_int_equal(bits_of(kern_bf16_to_f32(0x8000)), 0x80000000u);

    kt_rng r = {7};
    for (int i = 0; i < 400000; i++) {
        float f = float_of((uint32_t)kt_next(&r));
        if (isnan(f)) continue;
        uint16_t got = kern_f32_to_bf16(f), want = oracle_bf16(f);
        if (got != want) fail_msg("f32 0x%08x -> bf16 0x%04x, expected 0x%04x", bits_of(f), got, want);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kern_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (kern_f32_to_bf16(f) != h) fail_msg("bf16 0x%04x does not round trip", h);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_every_value),
        cmocka_unit_test(test_f16_rounding_edges),
        cmocka_unit_test(test_f16_random_vs_oracle),
        cmocka_unit_test(test_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
