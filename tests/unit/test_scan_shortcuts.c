/* The shortcuts taken to make the fuzz targets fast must not change any result: UTF-8
 * validation that skips ASCII eight bytes at a time, the special-token partition that
 * skips runs of tokens starting alike and only rebuilds fragments for a token that
 * occurs, the template lexer's memchr scans, line counting and operator switch, and
 * configuration locations grown with the models. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "chat_check.h"
#include "config/config.h"
#include "tok_test_vocab.h"

/* ---- utf8_valid -------------------------------------------------------------------- */

/* Character by character, the way utf8_valid worked before its ASCII shortcut. */
static int valid_slowly(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (!len) return 0;
        i += len;
    }
    return 1;
}

static void test_utf8_valid_around_ascii_runs(void **state) {
    static const char *const middles[] = {"", "\xc3\xa9", "\x80", "\xe2\x82", "\xed\xa0\x80", "\xf0\x9f\x98\x80",
                                          "\xc0\xaf", "\xff", "\x7f"};
    char buf[64];
    for (size_t m = 0; m < sizeof middles / sizeof middles[0]; m++)
        for (size_t before = 0; before <= 20; before++)
            for (size_t after = 0; after <= 10; after++) {
                memset(buf, 'a', before);
                size_t ml = strlen(middles[m]);
                memcpy(buf + before, middles[m], ml);
                memset(buf + before + ml, 'b', after);
                size_t n = before + ml + after;
                if (utf8_valid(buf, n) != valid_slowly(buf, n))
                    fail_msg("middle %zu after %zu ASCII bytes, %zu after: utf8_valid %d, reference %d", m, before,
                             after, utf8_valid(buf, n), valid_slowly(buf, n));
            }
}

/* ---- special tokens ------------------------------------------------------------------ */

enum { T_PAD1 = 256, T_PAD2, T_PAD3, T_P, T_AB, T_BC, T_X, T_BAR, N_TOKENS };

static char byte_text[256][4];

static tok_vocab *specials_vocab(void) {
    static test_tok toks[N_TOKENS];
    for (int b = 0; b < 256; b++) {
        size_t n = tok_utf8_put(tok_byte_to_cp((uint8_t)b), byte_text[b]);
        byte_text[b][n] = '\0';
        toks[b] = (test_tok){byte_text[b], 0, 0};
    }
    /* three of the same length and start (one run, as deepseek-llm's 2,385 "[PAD...]") */
    toks[T_PAD1] = (test_tok){"[PAD1]", 0, TOK_TYPE_USER_DEFINED};
    toks[T_PAD2] = (test_tok){"[PAD2]", 0, TOK_TYPE_USER_DEFINED};
    toks[T_PAD3] = (test_tok){"[PAD3]", 0, TOK_TYPE_USER_DEFINED};
    toks[T_P] = (test_tok){"[P]", 0, TOK_TYPE_USER_DEFINED};
    toks[T_AB] = (test_tok){"ab", 0, TOK_TYPE_USER_DEFINED}; /* same length as "bc", lower id: tried first */
    toks[T_BC] = (test_tok){"bc", 0, TOK_TYPE_USER_DEFINED};
    toks[T_X] = (test_tok){"<|x|>", 0, TOK_TYPE_CONTROL};
    toks[T_BAR] = (test_tok){"|", 0, TOK_TYPE_USER_DEFINED};
    static const char *const merges[] = {"z z"}; /* gpt2 vocabularies need merges; no text here has "zz" */
    return test_vocab("gpt2", "gpt-2", toks, N_TOKENS, merges, 1, NULL);
}

static void test_special_runs(void **state) {
    tok_vocab *v = specials_vocab();
    EXPECT_IDS(v, "x[PAD2]y", false, false, 'x', T_PAD2, 'y');
    EXPECT_IDS(v, "[PAD3][P][PAD1]", false, false, T_PAD3, T_P, T_PAD1);
    EXPECT_IDS(v, "[PA", false, false, '[', 'P', 'A');
    EXPECT_IDS(v, "[PAD4]", false, false, '[', 'P', 'A', 'D', '4', ']');
    EXPECT_IDS(v, "abc", false, false, T_AB, 'c');
    EXPECT_IDS(v, "zbc", false, false, 'z', T_BC);
    /* the control token only with parse_special; "|" is user-defined and always cuts */
    EXPECT_IDS(v, "<|x|>", false, false, '<', T_BAR, 'x', T_BAR, '>');
    EXPECT_IDS(v, "<|x|>|", false, true, T_X, T_BAR);
    tok_free(v);
}

/* ---- template lexer ------------------------------------------------------------------ */

static void test_lexer_scans(void **state) {
    check_render("a\r\nb\rc\r", "a\nb\nc");
    check_render("a{b{ c}", "a{b{ c}");
    check_render("x{# a {{ b }} #}y{#-#}z", "xyz");
    check_render("{% raw %}{{ x }}{% endraw %}", "{{ x }}");
    check_render("{{ 7 // 2 }}|{{ 7 / 2 }}|{{ 2 ** 3 }}|{{ 2 * 3 }}|{{ 1 != 2 }}|{{ 3 >= 3 }}|{{ 2 <= 1 }}|{{ 2 < 1 }}"
                 "|{{ 2 > 1 }}|{{ 1 == 1 }}|{{ 7 % 4 }}|{{ 1 ~ 2 }}|{{ [1, 2][1] }}|{{ {'a': 3}.a }}",
                 "3|3.5|8|6|True|True|False|False|True|True|3|12|2|3");
    check_error("{{ ! }}", HEARTH_ERR_FORMAT, "unexpected character");
    check_error("{{ 1 @ 2 }}", HEARTH_ERR_FORMAT, "unexpected character");
    check_error("a\r\nb\rc\n{{ ! }}", HEARTH_ERR_FORMAT, "line 4");
    check_error("one\n{# open", HEARTH_ERR_FORMAT, "line 2");
}

/* ---- configuration locations ----------------------------------------------------------- */

static void test_config_many_models(void **state) {
    enum { N = 40, BAD = 37 };
    char *yaml = malloc(N * 64 + 16);
    size_t k = (size_t)sprintf(yaml, "models:\n");
    for (int i = 0; i < N; i++)
        k += (size_t)(i == BAD ? sprintf(yaml + k, "  - path: /m%d.gguf\n", i)
                               : sprintf(yaml + k, "  - {name: m%d, path: /m%d.gguf}\n", i, i));
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    assert_int_equal(cfg_build_text(yaml, k, "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    assert_null(c);
    char want[64];
    snprintf(want, sizeof want, "t.yaml:%d:5: models[%d]: a model needs a name", BAD + 2, BAD);
    if (errs.n != 1 || strcmp(errs.msg[0], want) != 0)
        fail_msg("%zu problems, first '%s' (want one: '%s')", errs.n, errs.n ? errs.msg[0] : "", want);
    free(yaml);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_valid_around_ascii_runs),
        cmocka_unit_test(test_special_runs),
        cmocka_unit_test(test_lexer_scans),
        cmocka_unit_test(test_config_many_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
