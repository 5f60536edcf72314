/* Scheduler, shown control tokens: exactly the control tokens a request lists
 * (sched_request.shown_control) are text in its output, an end-of-generation token kept by
 * ignore_eos is never text even when listed, and a list with an id that is not a control
 * token, or longer than SCHED_MAX_SHOWN_CONTROL, is refused with INVALID naming it.
 * Tokens are forced with logit_bias at temperature 0 on the fixture llama model, whose
 * vocabulary has <s> (1) and </s> (2) as control tokens. */
#include "testutil.h"

#include "sched_test_util.h"

#define TOK_BOS 1
#define TOK_EOS 2
#define TOK_BRACE 29912 /* "{", a normal token */

static int32_t prompt[16];
static st_result res;

/* Runs a request forced to write `forced` n times, showing shown[0..n_shown). */
static void run_forced(sched *s, int32_t forced, int32_t n, const int32_t *shown, size_t n_shown) {
    sched_request r;
    st_request(&r, prompt, 16, n);
    r.ignore_eos = true;
    sampler_bias bias = {forced, 100.0f};
    r.sampling.bias = &bias;
    r.sampling.n_bias = 1;
    r.shown_control = shown;
    r.n_shown_control = n_shown;
    sched_seq *q = st_submit(s, &r);
    st_collect(q, -1, &res);
    sched_release(q);
    if (res.completion_tokens != n) fail_msg("%lld tokens generated, expected %d", (long long)res.completion_tokens, n);
    for (int i = 0; i < res.n_tokens; i++)
        if (res.tokens[i] != forced) fail_msg("token %d is %d, not the forced %d", i, res.tokens[i], forced);
}

static void test_listed_control_tokens_are_text(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 4, 64, 256);
    const int32_t bos[] = {TOK_BOS};
    run_forced(s, TOK_BOS, 3, bos, 1);
    assert_string_equal(res.text, "<s><s><s>");
    run_forced(s, TOK_BOS, 3, NULL, 0);
    assert_string_equal(res.text, "");
    const int32_t other[] = {TOK_EOS}; /* listed, but not the token written */
    run_forced(s, TOK_BOS, 2, other, 1);
    assert_string_equal(res.text, "");
    /* an end-of-generation token kept by ignore_eos is never text, listed or not */
    const int32_t both[] = {TOK_BOS, TOK_EOS};
    run_forced(s, TOK_EOS, 3, both, 2);
    assert_string_equal(res.text, "");
    sched_free(s);
}

static void expect_refused(sched *s, const int32_t *shown, size_t n_shown, const char *why) {
    sched_request r;
    st_request(&r, prompt, 16, 2);
    r.shown_control = shown;
    r.n_shown_control = n_shown;
    sched_seq *q = NULL;
    hearth_err err = {0};
    hearth_status st = sched_submit(s, &r, &q, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, why))
        fail_msg("status %d, message '%s': expected INVALID naming '%s'", st, err.msg, why);
    assert_null(q);
}

static void test_bad_lists_refused(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 4, 64, 256);
    const int32_t normal[] = {TOK_BOS, TOK_BRACE};
    expect_refused(s, normal, 2, "token 1 (id 29912) is not a control token");
    const int32_t negative[] = {-1};
    expect_refused(s, negative, 1, "(id -1) is not a control token");
    const int32_t past[] = {32000};
    expect_refused(s, past, 1, "(id 32000) is not a control token");
    expect_refused(s, NULL, 1, "shown control tokens");
    int32_t many[SCHED_MAX_SHOWN_CONTROL + 1];
    for (size_t i = 0; i < SCHED_MAX_SHOWN_CONTROL + 1; i++) many[i] = TOK_BOS;
    expect_refused(s, many, SCHED_MAX_SHOWN_CONTROL + 1, "at most");
    /* the longest list is accepted */
    run_forced(s, TOK_BOS, 1, many, SCHED_MAX_SHOWN_CONTROL);
    assert_string_equal(res.text, "<s>");
    sched_free(s);
}

static int setup(void **state) {
    st_prompt(prompt, 16, 77);
    return st_open("models/llama-spm-f16.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listed_control_tokens_are_text),
        cmocka_unit_test(test_bad_lists_refused),
    };
    return cmocka_run_group_tests(tests, setup, st_close);
}
