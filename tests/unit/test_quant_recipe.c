/* Quantization schemes and the per-tensor recipe: names (case-insensitive), ftype
 * numbers, the Q4_K_M/Q5_K_M "more bits" layers of a 22-layer model, the output and tied
 * embedding rules, Q4_K_S bumps, float schemes, vectors and norms, and the fallbacks for
 * rows that 256-element (or 32-element) blocks do not tile. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "gguf/types.h"
#include "quant/quant.h"

#define MAX_T 512

/* A llama-shaped tensor list: embd, per layer norm/q/k/v/o/norm/gate/up/down, norm, output. */
typedef struct model_list {
    char names[MAX_T][64];
    int64_t ne[MAX_T][2];
    quant_tensor_desc d[MAX_T];
    quant_tensor_plan p[MAX_T];
    uint64_t n;
} model_list;

static void add(model_list *m, const char *name, int64_t ne0, int64_t ne1) {
    uint64_t i = m->n++;
    snprintf(m->names[i], sizeof m->names[i], "%s", name);
    m->ne[i][0] = ne0;
    m->ne[i][1] = ne1;
    m->d[i] = (quant_tensor_desc){.name = m->names[i], .n_dims = ne1 ? 2 : 1, .ne = m->ne[i], .src_type = GGML_F16};
    if (!ne1) m->d[i].src_type = GGML_F32;
}

static void build(model_list *m, int layers, int64_t dim, int64_t ffn, bool tied) {
    char name[64];
    m->n = 0;
    add(m, "token_embd.weight", dim, 1000);
    for (int l = 0; l < layers; l++) {
        static const char *mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"};
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l), add(m, name, dim, 0);
        for (int k = 0; k < 6; k++) snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[k]), add(m, name, dim, k >= 4 ? ffn : dim);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l), add(m, name, dim, 0);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l), add(m, name, ffn, dim);
    }
    add(m, "output_norm.weight", dim, 0);
    if (!tied) add(m, "output.weight", dim, 1000);
}

static uint32_t type_of(const model_list *m, const char *name) {
    for (uint64_t i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) return m->p[i].type;
    fail_msg("no tensor %s", name);
    return 0;
}

static const char *tn(uint32_t t) { return ggml_type_get(t)->name; }

static void expect_type(const model_list *m, const char *name, uint32_t want) {
    uint32_t got = type_of(m, name);
    if (got != want) fail_msg("%s: got %s, want %s", name, tn(got), tn(want));
}

/* The type of blk.<layer>.<what>.weight. */
static void expect_blk(const model_list *m, int layer, const char *what, uint32_t want) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s.weight", layer, what);
    expect_type(m, name, want);
}

static void plan(model_list *m, const char *scheme) {
    const quant_scheme *s = quant_scheme_find(scheme);
    assert_non_null(s);
    quant_plan_file(s, m->d, m->n, m->p);
}

static void test_scheme_names(void **state) {
    const char *names[] = {"q4_k_m", "Q4_K_M", "q4_K_m", "Q8_0", "q5_k_m", "f16", "BF16", "f32", "q6_k", "q4_0",
                           "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q4_k_s", "q5_k_s"};
    const uint32_t ftypes[] = {15, 15, 15, 7, 17, 1, 32, 0, 18, 2, 3, 8, 9, 14, 16, 14, 16};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const quant_scheme *s = quant_scheme_find(names[i]);
        if (!s) fail_msg("scheme '%s' not found", names[i]);
        if (s->ftype != ftypes[i]) fail_msg("%s: ftype %u, want %u", names[i], s->ftype, ftypes[i]);
    }
    assert_null(quant_scheme_find("q3_k_m"));
    assert_null(quant_scheme_find("q4_k_mm"));
    assert_null(quant_scheme_find(""));
    assert_string_equal(quant_ftype_name(15), "Q4_K_M");
    assert_string_equal(quant_ftype_name(14), "Q4_K_S");
    assert_string_equal(quant_ftype_name(7), "Q8_0");
    assert_null(quant_ftype_name(99));
}

/* The published rule: more bits for i < n/8, i >= 7n/8, and (i - n/8) % 3 == 2. */
static void test_q4_k_m_22_layers(void **state) {
    static model_list m;
    build(&m, 22, 2048, 5632, false);
    plan(&m, "Q4_K_M");
    const bool more[22] = {[0] = 1, [1] = 1, [4] = 1, [7] = 1, [10] = 1, [13] = 1, [16] = 1, [19] = 1, [20] = 1, [21] = 1};
    for (int l = 0; l < 22; l++) {
        uint32_t want = more[l] ? GGML_Q6_K : GGML_Q4_K;
        expect_blk(&m, l, "attn_v", want);
        expect_blk(&m, l, "ffn_down", want);
        expect_blk(&m, l, "attn_q", GGML_Q4_K);
        expect_blk(&m, l, "attn_k", GGML_Q4_K);
        expect_blk(&m, l, "ffn_up", GGML_Q4_K);
        expect_blk(&m, l, "attn_norm", GGML_F32);
    }
    expect_type(&m, "output.weight", GGML_Q6_K);
    expect_type(&m, "token_embd.weight", GGML_Q4_K);
    expect_type(&m, "output_norm.weight", GGML_F32);
    for (uint64_t i = 0; i < m.n; i++) assert_false(m.p[i].fallback);

    plan(&m, "q5_k_m");
    for (int l = 0; l < 22; l++) {
        expect_blk(&m, l, "ffn_down", more[l] ? GGML_Q6_K : GGML_Q5_K);
        expect_blk(&m, l, "ffn_gate", GGML_Q5_K);
    }
    expect_type(&m, "output.weight", GGML_Q6_K);
}

/* With 2 layers (the fixture model) only layer 1 is a "more bits" layer, as in the
 * reference's own Q4_K_M file. */
static void test_q4_k_m_2_layers(void **state) {
    static model_list m;
    build(&m, 2, 256, 512, false);
    plan(&m, "Q4_K_M");
    expect_type(&m, "blk.0.attn_v.weight", GGML_Q4_K);
    expect_type(&m, "blk.0.ffn_down.weight", GGML_Q4_K);
    expect_type(&m, "blk.1.attn_v.weight", GGML_Q6_K);
    expect_type(&m, "blk.1.ffn_down.weight", GGML_Q6_K);
}

static void test_single_types_and_output(void **state) {
    static model_list m;
    build(&m, 4, 256, 512, false);
    plan(&m, "Q8_0");
    expect_type(&m, "output.weight", GGML_Q8_0);
    expect_type(&m, "blk.3.attn_v.weight", GGML_Q8_0);
    plan(&m, "Q4_0");
    expect_type(&m, "output.weight", GGML_Q6_K);
    expect_type(&m, "token_embd.weight", GGML_Q4_0);
    expect_type(&m, "blk.0.ffn_down.weight", GGML_Q4_0);
    plan(&m, "q4_k");
    expect_type(&m, "blk.0.attn_v.weight", GGML_Q4_K);
    expect_type(&m, "blk.0.ffn_down.weight", GGML_Q4_K);
    expect_type(&m, "output.weight", GGML_Q6_K);
    plan(&m, "Q6_K");
    expect_type(&m, "blk.2.ffn_up.weight", GGML_Q6_K);
    plan(&m, "F16");
    expect_type(&m, "output.weight", GGML_F16);
    expect_type(&m, "blk.1.attn_v.weight", GGML_F16);
    expect_type(&m, "blk.1.ffn_norm.weight", GGML_F32);
    plan(&m, "bf16");
    expect_type(&m, "token_embd.weight", GGML_BF16);
    plan(&m, "f32");
    expect_type(&m, "blk.0.attn_q.weight", GGML_F32);
}

/* Q4_K_S: attn_v of the first four layers and ffn_down of the first eighth get Q5_K. */
static void test_q4_k_s(void **state) {
    static model_list m;
    build(&m, 16, 256, 512, false);
    plan(&m, "Q4_K_S");
    for (int l = 0; l < 16; l++) {
        expect_blk(&m, l, "attn_v", l < 4 ? GGML_Q5_K : GGML_Q4_K);
        expect_blk(&m, l, "ffn_down", l < 2 ? GGML_Q5_K : GGML_Q4_K);
    }
}

/* Without output.weight the embeddings double as the output and get its type. */
static void test_tied_embeddings(void **state) {
    static model_list m;
    build(&m, 2, 256, 512, true);
    plan(&m, "Q4_K_M");
    expect_type(&m, "token_embd.weight", GGML_Q6_K);
    plan(&m, "Q8_0");
    expect_type(&m, "token_embd.weight", GGML_Q8_0);
}

/* Rows of 288 (32 | 288, 256 does not): K-quants fall back to 32-element types; the
 * output gets Q8_0 by the output rule. Rows of 100 fit no block: F16. */
static void test_fallbacks(void **state) {
    static model_list m;
    build(&m, 8, 288, 96, false);
    plan(&m, "Q4_K_M");
    expect_type(&m, "blk.2.attn_q.weight", GGML_Q5_0);
    expect_type(&m, "blk.0.attn_v.weight", GGML_Q8_0); /* Q6_K -> Q8_0 */
    expect_type(&m, "blk.0.ffn_down.weight", GGML_Q8_0); /* rows of 96 */
    expect_type(&m, "output.weight", GGML_Q8_0);
    expect_type(&m, "token_embd.weight", GGML_Q5_0);
    uint64_t i = 0;
    while (strcmp(m.names[i], "blk.2.attn_q.weight")) i++;
    assert_true(m.p[i].fallback);
    plan(&m, "Q5_K_M");
    expect_type(&m, "blk.2.attn_q.weight", GGML_Q5_1);

    build(&m, 2, 100, 64, false);
    plan(&m, "Q4_K_M");
    expect_type(&m, "blk.0.attn_q.weight", GGML_F16);
    expect_type(&m, "output.weight", GGML_F16);
    plan(&m, "Q8_0");
    expect_type(&m, "blk.1.ffn_up.weight", GGML_F16);
    expect_type(&m, "blk.1.ffn_down.weight", GGML_Q8_0); /* rows of 64 fit */
}

/* 1-D tensors become F32 even from F16; 2-D norms keep their type. */
static void test_vectors_and_norms(void **state) {
    const int64_t ne1[1] = {64}, ne2[2] = {64, 4};
    quant_tensor_desc d[3] = {
        {.name = "blk.0.attn_q.bias", .n_dims = 1, .ne = ne1, .src_type = GGML_F16},
        {.name = "blk.0.attn_q_norm.weight", .n_dims = 2, .ne = ne2, .src_type = GGML_F16},
        {.name = "blk.0.ffn_gate_inp.weight", .n_dims = 2, .ne = ne2, .src_type = GGML_BF16},
    };
    quant_tensor_plan p[3];
    quant_plan_file(quant_scheme_find("Q4_0"), d, 3, p);
    assert_int_equal(p[0].type, GGML_F32);
    assert_int_equal(p[1].type, GGML_F16);
    assert_int_equal(p[2].type, GGML_BF16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheme_names),    cmocka_unit_test(test_q4_k_m_22_layers),
        cmocka_unit_test(test_q4_k_m_2_layers), cmocka_unit_test(test_single_types_and_output),
        cmocka_unit_test(test_q4_k_s),          cmocka_unit_test(test_tied_embeddings),
        cmocka_unit_test(test_fallbacks),       cmocka_unit_test(test_vectors_and_norms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
