/* Synthetic bert models (`hearth mkmodel --arch bert`): the generated WordPiece
 * vocabulary has BERT's special ids and exactly the asked size, tokenizes lower-case
 * ASCII text without [UNK] and lower-cases capitals; the model loads as an encoder with
 * CLS pooling, embeds to finite unit vectors that differ between texts; the same seed
 * gives the same bytes; bert with fewer KV heads than heads is refused. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/embed.h"
#include "engine/generate.h"
#include "synth/synth.h"

static const char *write_bert(int slot, int64_t kv_heads, hearth_status *st, hearth_err *err) {
    static char paths[3][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/hearth-synthbert-%d-%d.gguf", (int)getpid(), slot);
    synth_params p = {.arch = SYNTH_BERT, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = kv_heads, .n_ff = 256,
                      .n_vocab = 3000, .n_ctx = 128, .seed = 5, .scheme = quant_scheme_find("q8_0")};
    *st = synth_write_model(&p, NULL, paths[slot], err);
    return paths[slot];
}

static void embed_text(gen_model *gm, const char *text, float *out) {
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_err err = {0};
    if (tok_encode(gm->vocab, text, strlen(text), true, false, &ids, &n, &err)) fail_msg("%s", err.msg);
    embed_ctx *e = NULL;
    embed_config c = {.n_threads = 1};
    if (embed_ctx_new(gm->model, &c, &e, &err)) fail_msg("%s", err.msg);
    embed_input in = {ids, n};
    embed_opts o;
    embed_opts_default(&o);
    if (embed_batch(e, &in, 1, &o, out, 1, &err)) fail_msg("%s", err.msg);
    embed_ctx_free(e);
    mem_free(ids);
}

static void test_vocab_and_model(void **state) {
    (void)state;
    hearth_status st;
    hearth_err err = {0};
    const char *path = write_bert(0, 4, &st, &err);
    if (st) fail_msg("%s", err.msg);
    gen_model *gm = NULL;
    if (gen_model_open(path, &gm, &err)) fail_msg("%s", err.msg);
    assert_int_equal(tok_n_vocab(gm->vocab), 3000);
    assert_true(model_is_encoder(gm->model));
    assert_int_equal(embed_model_pooling(gm->model), EMBED_POOL_CLS);
    int32_t *ids = NULL;
    size_t n = 0;
    const char *text = "The quick brown fox, 42 times!";
    assert_int_equal(tok_encode(gm->vocab, text, strlen(text), true, false, &ids, &n, &err), HEARTH_OK);
    assert_true(n >= 9);
    assert_int_equal(ids[0], 101);
    assert_int_equal(ids[n - 1], 102);
    for (size_t i = 1; i + 1 < n; i++)
        if (ids[i] == 100 || ids[i] < 104) fail_msg("token %zu of '%s' is special (%d)", i, text, ids[i]);
    int32_t *lower = NULL;
    size_t n_lower = 0;
    const char *ltext = "the quick brown fox, 42 times!";
    assert_int_equal(tok_encode(gm->vocab, ltext, strlen(ltext), true, false, &lower, &n_lower, &err), HEARTH_OK);
    assert_int_equal(n, n_lower);
    assert_memory_equal(ids, lower, n * sizeof *ids);
    mem_free(ids);
    mem_free(lower);
    float a[64], b[64];
    embed_text(gm, "a river runs past the stone", a);
    embed_text(gm, "forty windows in the garden", b);
    double na = 0, dot = 0;
    for (int i = 0; i < 64; i++) {
        if (!isfinite(a[i])) fail_msg("value %d is not finite", i);
        na += (double)a[i] * a[i];
        dot += (double)a[i] * b[i];
    }
    if (fabs(na - 1.0) > 1e-4) fail_msg("norm^2 %.6f, want 1", na);
    if (dot > 0.999) fail_msg("two different texts: cosine %.6f", dot);
    gen_model_close(gm);
    unlink(path);
}

static void test_deterministic_and_checked(void **state) {
    (void)state;
    hearth_status st;
    hearth_err err = {0};
    const char *a = write_bert(1, 4, &st, &err);
    if (st) fail_msg("%s", err.msg);
    const char *b = write_bert(2, 4, &st, &err);
    if (st) fail_msg("%s", err.msg);
    size_t na, nb;
    char *da = read_file(a, &na), *db = read_file(b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da);
    free(db);
    unlink(a);
    unlink(b);
    const char *c = write_bert(1, 2, &st, &err);
    assert_int_equal(st, HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "KV heads"));
    assert_int_equal(access(c, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_and_model),
        cmocka_unit_test(test_deterministic_and_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
