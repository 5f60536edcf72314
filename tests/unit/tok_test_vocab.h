/* Small in-memory vocabularies for the tokenizer unit tests, built through tok_build (the
 * metadata-to-vocabulary half of tok_load) so each test states its whole vocabulary. */
#ifndef TESTS_TOK_TEST_VOCAB_H
#define TESTS_TOK_TEST_VOCAB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "tokenizer/tok_internal.h"

typedef struct test_tok {
    const char *text;
    float score;
    int type; /* TOK_TYPE_* */
} test_tok;

/* Builds a vocabulary; spec_edit (may be NULL) adjusts the spec before building. */
static inline tok_vocab *test_vocab(const char *model, const char *pre, const test_tok *toks, size_t n,
                             const char *const *merges, size_t n_merges, void (*spec_edit)(tok_spec *)) {
    tok_spec spec;
    tok_spec_init(&spec);
    spec.model = model;
    spec.model_len = strlen(model);
    if (pre) {
        spec.pre = pre;
        spec.pre_len = strlen(pre);
    }
    const char **texts = calloc(n, sizeof *texts);
    uint32_t *lens = calloc(n, sizeof *lens);
    float *scores = calloc(n, sizeof *scores);
    int32_t *types = calloc(n, sizeof *types);
    for (size_t i = 0; i < n; i++) {
        texts[i] = toks[i].text;
        lens[i] = (uint32_t)strlen(toks[i].text);
        scores[i] = toks[i].score;
        types[i] = toks[i].type ? toks[i].type : TOK_TYPE_NORMAL;
    }
    uint32_t *mlens = calloc(n_merges + 1, sizeof *mlens);
    for (size_t i = 0; i < n_merges; i++) mlens[i] = (uint32_t)strlen(merges[i]);
    spec.n_tokens = (uint32_t)n;
    spec.tok_text = texts;
    spec.tok_len = lens;
    spec.scores = scores;
    spec.types = types;
    if (merges) {
        spec.n_merges = (uint32_t)n_merges;
        spec.merge_text = merges;
        spec.merge_len = mlens;
    }
    if (spec_edit) spec_edit(&spec);
    tok_vocab *v = NULL;
    hearth_err err = {0};
    hearth_status st = tok_build(&spec, &v, &err);
    if (st != HEARTH_OK) print_error("tok_build: %s\n", err.msg);
    assert_int_equal(st, HEARTH_OK);
    free(texts);
    free(lens);
    free(scores);
    free(types);
    free(mlens);
    return v;
}

/* Encodes text and compares with the expected ids, printing both on mismatch. */
static inline void expect_ids(const tok_vocab *v, const char *text, bool add_special, bool parse_special,
                       const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_err err = {0};
    assert_int_equal(tok_encode(v, text, strlen(text), add_special, parse_special, &ids, &n, &err), HEARTH_OK);
    bool same = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    if (!same) {
        print_error("text \"%s\":\n  expected", text);
        for (size_t i = 0; i < n_want; i++) print_error(" %d", want[i]);
        print_error("\n  got     ");
        for (size_t i = 0; i < n; i++) print_error(" %d", ids[i]);
        print_error("\n");
    }
    mem_free(ids);
    assert_true(same);
}

#define EXPECT_IDS(v, text, add, parse, ...)                                                        \
    do {                                                                                            \
        const int32_t want_[] = {__VA_ARGS__};                                                      \
        expect_ids((v), (text), (add), (parse), want_, sizeof want_ / sizeof want_[0]);             \
    } while (0)

#define EXPECT_NO_IDS(v, text, add, parse) expect_ids((v), (text), (add), (parse), NULL, 0)

/* Decodes ids and compares with the expected bytes. */
static inline void expect_decode(const tok_vocab *v, const int32_t *ids, size_t n, bool render_special, const char *want,
                          size_t want_len) {
    char *out = NULL;
    size_t len = 0;
    hearth_err err = {0};
    assert_int_equal(tok_decode(v, ids, n, render_special, &out, &len, &err), HEARTH_OK);
    if (len != want_len || memcmp(out, want, len) != 0)
        print_error("decoded \"%.*s\" (%zu bytes), expected \"%.*s\" (%zu bytes)\n", (int)len, out, len, (int)want_len,
                    want, want_len);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, len);
    mem_free(out);
}

#endif
