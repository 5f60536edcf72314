/* Model loading: hyper-parameters read with their defaults, and every malformed model
 * (unknown architecture, missing or out-of-range key, missing tensor, wrong shape,
 * uncomputable tensor type) refused with the right status and a message naming the
 * culprit. Also the forward pass's batch checks. Uses the tiny llama fixture. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "gguf_edit.h"
#include "kernels/kernels.h"
#include "model/model.h"

#define TINY "models/llama-2-tiny-random.gguf"

/* Loads an edited copy of the tiny model; returns the status and fills err. */
static hearth_status load_edited(const gguf_edit *e, hearth_err *err) {
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(gguf_edit_copy(fixture_path(TINY), e, NULL, &buf, &size), 0);
    gguf_file *f = NULL;
    model *m = NULL;
    hearth_status st = gguf_open_memory(buf, size, "edited.gguf", &f, err);
    assert_int_equal(st, HEARTH_OK);
    st = model_new(f, &m, err);
    if (st) assert_null(m);
    model_free(m);
    gguf_close(f);
    mem_free(buf);
    return st;
}

static void expect(const gguf_edit *e, hearth_status want, const char *needle) {
    hearth_err err = {0};
    hearth_status st = load_edited(e, &err);
    if (st != want || !strstr(err.msg, needle))
        fail_msg("status %d (want %d), message '%s' (want it to contain '%s')", st, want, err.msg, needle);
}

static void test_hparams(void **state) {
    if (!fixtures_available()) return;
    hearth_err err;
    gguf_file *f = NULL;
    model *m = NULL;
    assert_int_equal(gguf_open(fixture_path(TINY), &f, &err), HEARTH_OK);
    assert_int_equal(model_new(f, &m, &err), HEARTH_OK);
    const model_hparams *hp = model_hp(m);
    assert_int_equal(hp->arch, MODEL_ARCH_LLAMA);
    assert_int_equal(hp->n_embd, 8);
    assert_int_equal(hp->n_layer, 1);
    assert_int_equal(hp->n_head, 2);
    assert_int_equal(hp->n_head_kv, 2);
    assert_int_equal(hp->head_dim_k, 4);
    assert_int_equal(hp->n_rot, 4);
    assert_int_equal(hp->n_ff, 32);
    assert_int_equal(hp->n_vocab, 32000);
    assert_int_equal(hp->n_ctx_train, 4096);
    assert_float_equal(hp->rope_base, 10000.0f, 0.0f); /* absent key: default */
    assert_float_equal(hp->norm_eps, 1e-5f, 1e-9f);
    assert_false(hp->rope_neox);
    model_free(m);
    gguf_close(f);
}

static void test_refusals(void **state) {
    if (!fixtures_available()) return;
    expect(&(gguf_edit){.set_str_key = "general.architecture", .set_str_val = "gpt2"}, HEARTH_ERR_UNSUPPORTED,
           "unsupported architecture 'gpt2'");
    expect(&(gguf_edit){.drop_key = "general.architecture"}, HEARTH_ERR_FORMAT, "general.architecture");
    expect(&(gguf_edit){.set_int_key = "llama.block_count", .set_int_val = 0}, HEARTH_ERR_FORMAT,
           "'llama.block_count' = 0 is out of range");
    expect(&(gguf_edit){.set_int_key = "llama.embedding_length", .set_int_val = -8}, HEARTH_ERR_FORMAT,
           "llama.embedding_length");
    expect(&(gguf_edit){.set_int_key = "llama.attention.head_count", .set_int_val = 1000000}, HEARTH_ERR_FORMAT,
           "llama.attention.head_count");
    expect(&(gguf_edit){.set_int_key = "llama.attention.head_count_kv", .set_int_val = 3}, HEARTH_ERR_FORMAT,
           "llama.attention.head_count_kv");
    expect(&(gguf_edit){.set_int_key = "llama.rope.dimension_count", .set_int_val = 3}, HEARTH_ERR_FORMAT,
           "llama.rope.dimension_count");
    expect(&(gguf_edit){.set_str_key = "llama.rope.freq_base", .set_str_val = "fast"}, HEARTH_ERR_FORMAT,
           "llama.rope.freq_base");
    expect(&(gguf_edit){.drop_key = "llama.feed_forward_length"}, HEARTH_ERR_FORMAT,
           "missing metadata key 'llama.feed_forward_length'");
    expect(&(gguf_edit){.drop_tensor = "blk.0.ffn_up.weight"}, HEARTH_ERR_FORMAT,
           "missing tensor 'blk.0.ffn_up.weight'");
    expect(&(gguf_edit){.drop_tensor = "output_norm.weight"}, HEARTH_ERR_FORMAT, "'output_norm.weight'");
    expect(&(gguf_edit){.reshape_tensor = "blk.0.ffn_down.weight"}, HEARTH_ERR_FORMAT,
           "tensor 'blk.0.ffn_down.weight' has shape [8, 32, 1, 1], expected [32, 8]");
}

static void test_unsupported_type(void **state) {
    if (!fixtures_available()) return;
    /* any known type the kernels cannot compute whose blocks tile a 32-element row */
    for (uint32_t t = 0; t < GGML_TYPE_LIMIT; t++) {
        const ggml_type_info *ti = ggml_type_get(t);
        if (!ti || !ti->name || kern_traits(t) || 32 % ti->block_elems != 0) continue;
        char want[128];
        snprintf(want, sizeof want, "tensor 'blk.0.ffn_down.weight' has type %s, which Hearth does not support",
                 ti->name);
        expect(&(gguf_edit){.retype_tensor = "blk.0.ffn_down.weight", .new_type = t}, HEARTH_ERR_UNSUPPORTED, want);
        return;
    }
    skip();
}

static void test_tied_output(void **state) {
    if (!fixtures_available()) return;
    hearth_err err = {0};
    assert_int_equal(load_edited(&(gguf_edit){.drop_tensor = "output.weight"}, &err), HEARTH_OK);
}

static void test_batch_checks(void **state) {
    if (!fixtures_available()) return;
    hearth_err err;
    gguf_file *f = NULL;
    model *m = NULL;
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    assert_int_equal(gguf_open(fixture_path(TINY), &f, &err), HEARTH_OK);
    assert_int_equal(model_new(f, &m, &err), HEARTH_OK);
    model_ctx_params cp = {.n_batch = 4, .n_outputs = 2, .n_ctx = 8};
    assert_int_equal(model_ctx_new(m, &cp, NULL, &c, &err), HEARTH_OK);
    kv_config kc = model_kv_config(m, 8, 2);
    assert_int_equal(kv_cache_new(&kc, &kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&b, 8, &err), HEARTH_OK);

    model_batch_add(&b, 1, 1, 0, true); /* sequence 0 is empty: must start at 0 */
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "expected 0"));
    model_batch_clear(&b);
    model_batch_add(&b, 32000, 0, 0, true);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_ERR_INVALID);
    model_batch_clear(&b);
    for (int i = 0; i < 3; i++) model_batch_add(&b, 1, i, 0, true);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_ERR_INVALID); /* 3 outputs > 2 */
    assert_int_equal(kv_seq_len(kv, 0), 0);

    /* two sequences in one batch */
    model_batch_clear(&b);
    model_batch_add(&b, 1, 0, 0, false);
    model_batch_add(&b, 1, 0, 1, false);
    model_batch_add(&b, 450, 1, 0, true);
    model_batch_add(&b, 450, 1, 1, true);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_OK);
    assert_int_equal(model_n_outputs(c), 2);
    assert_memory_equal(model_logits(c, 0), model_logits(c, 1), 32000 * sizeof(float));
    assert_int_equal(kv_seq_len(kv, 0), 2);

    /* filling the context: positions 2..7 fit, 8 does not */
    model_batch_clear(&b);
    for (int i = 2; i < 6; i++) model_batch_add(&b, 1, i, 0, false);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_OK);
    model_batch_clear(&b);
    for (int i = 6; i < 9; i++) model_batch_add(&b, 1, i, 0, false);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_ERR_RANGE);
    assert_non_null(strstr(err.msg, "context full"));
    assert_int_equal(kv_seq_len(kv, 0), 6);

    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    model_free(m);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_unsupported_type),
        cmocka_unit_test(test_tied_output),
        cmocka_unit_test(test_batch_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
