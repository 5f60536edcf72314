/* WordPiece on a small vocabulary in GGUF's convention (word-initial pieces carry U+2581,
 * continuations are stored without "##"): lower-casing and accent stripping, punctuation
 * and CJK split, greedy longest match, [UNK], [CLS]/[SEP], and decoding. */
#include "testutil.h"

#include "tok_test_vocab.h"

#define SP "\xe2\x96\x81"

enum {
    PAD = 0, UNK, CLS, SEP, MASK, T_HELLO, T_WORLD, T_UN, T_AFF, T_ABLE, T_AFFABLE_NO, T_BANG, T_COMMA, T_ZHONG,
    T_NAIVE, T_CAFE, N_TOKENS,
};

static void bert_ids(tok_spec *s) {
    s->unk = UNK;
    s->cls = CLS;
    s->sep = SEP;
    s->pad = PAD;
    s->mask = MASK;
}

static tok_vocab *wpm_vocab(void) {
    static const test_tok toks[N_TOKENS] = {
        [PAD] = {"[PAD]", 0, TOK_TYPE_CONTROL},   [UNK] = {"[UNK]", 0, TOK_TYPE_CONTROL},
        [CLS] = {"[CLS]", 0, TOK_TYPE_CONTROL},   [SEP] = {"[SEP]", 0, TOK_TYPE_CONTROL},
        [MASK] = {"[MASK]", 0, TOK_TYPE_CONTROL}, [T_HELLO] = {SP "hello", 0, 0},
        [T_WORLD] = {SP "world", 0, 0},           [T_UN] = {SP "un", 0, 0},
        [T_AFF] = {"aff", 0, 0},                  [T_ABLE] = {"able", 0, 0},
        [T_AFFABLE_NO] = {"affab", 0, 0},         [T_BANG] = {SP "!", 0, 0},
        [T_COMMA] = {SP ",", 0, 0},               [T_ZHONG] = {SP "\xe4\xb8\xad", 0, 0},
        [T_NAIVE] = {SP "naive", 0, 0},           [T_CAFE] = {SP "cafe", 0, 0},
    };
    return test_vocab("bert", NULL, toks, N_TOKENS, NULL, 0, bert_ids);
}

static void test_basic_tokenization(void **state) {
    tok_vocab *v = wpm_vocab();
    EXPECT_IDS(v, "Hello, world!", false, false, T_HELLO, T_COMMA, T_WORLD, T_BANG);
    /* Greedy longest match: "affab" is longer than "aff" but leaves "le", which cannot be
     * matched, so the whole word is unknown. */
    EXPECT_IDS(v, "UNAFFABLE", false, false, UNK);
    EXPECT_IDS(v, "unaff able", false, false, T_UN, T_AFF, UNK);
    EXPECT_IDS(v, "  Na\xc3\xafve\tCAF\xc3\x89 ", false, false, T_NAIVE, T_CAFE); /* accents stripped */
    EXPECT_IDS(v, "\xe4\xb8\xad\xe5\x9b\xbd", false, false, T_ZHONG, UNK);          /* each ideograph alone */
    EXPECT_IDS(v, "hel\x01lo\xe2\x80\x8b", false, false, T_HELLO);                    /* controls and Cf vanish */
    EXPECT_NO_IDS(v, "   \n ", false, false);
    tok_free(v);
}

static void test_cls_sep(void **state) {
    tok_vocab *v = wpm_vocab();
    assert_true(tok_adds_bos(v));
    assert_true(tok_adds_eos(v));
    assert_int_equal(tok_bos(v), CLS);
    assert_int_equal(tok_eos(v), -1);
    EXPECT_IDS(v, "hello", true, false, CLS, T_HELLO, SEP);
    EXPECT_IDS(v, "hello [SEP] world", false, true, T_HELLO, SEP, T_WORLD);
    tok_free(v);
}

static void test_decode(void **state) {
    tok_vocab *v = wpm_vocab();
    const int32_t ids[] = {CLS, T_UN, T_AFF, T_ABLE, T_WORLD, SEP};
    expect_decode(v, ids, 6, false, " unaffable world", 16);
    expect_decode(v, ids, 6, true, "[CLS] unaffable world[SEP]", 26);
    tok_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_tokenization),
        cmocka_unit_test(test_cls_sep),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
