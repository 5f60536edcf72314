/* Continuous-batching scheduler, control: a full queue answers BUSY at once with a
 * Retry-After estimate; a cancel ends a sequence within one step and frees its slot for
 * the next request; deadlines end queued and running sequences with TIMEOUT; a consumer
 * that never reads is cancelled without holding back the others; sched_free with work in
 * flight ends every sequence (their handles stay readable until released). */
#include "testutil.h"

#include <unistd.h>

#include "sched_test_util.h"

#define LONG_RUN 2000 /* tokens no test waits for: the sequence is always ended earlier */

static int32_t prompt[64];
static st_result res, res2;

static sched_seq *submit_long(sched *s, size_t n_prompt) {
    sched_request r;
    st_request(&r, prompt, n_prompt, LONG_RUN);
    r.ignore_eos = true;
    return st_submit(s, &r);
}

/* Reads until q has produced a token; returns the tokens read. */
static int wait_first_token(sched_seq *q) {
    sched_event ev;
    do {
        if (!sched_next(q, &ev, ST_WAIT_MS)) fail_msg("no event within %d ms", ST_WAIT_MS);
    } while (ev.n_tokens == 0 && ev.finish == SCHED_FINISH_NONE);
    assert_int_equal(ev.finish, SCHED_FINISH_NONE);
    return ev.n_tokens;
}

static void test_queue_full_is_busy_at_once(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 1, 64, 2048);
    sched_seq *a = submit_long(s, 10), *b = submit_long(s, 12);
    sched_request r;
    st_request(&r, prompt, 8, 4);
    r.ignore_eos = true;
    sched_seq *c = NULL;
    hearth_err err = {0};
    assert_int_equal(sched_submit(s, &r, &c, &err), HEARTH_ERR_BUSY);
    assert_null(c);
    assert_non_null(strstr(err.msg, "retry"));
    double wait = sched_retry_after_s(s);
    if (!(wait >= 1.0 && wait <= 600.0)) fail_msg("retry after %g s is outside [1, 600]", wait);

    /* once the running sequence is cancelled, the queued one runs and there is room again */
    wait_first_token(a);
    sched_cancel(a);
    wait_first_token(b);
    assert_int_equal(sched_submit(s, &r, &c, &err), HEARTH_OK);
    st_collect(a, -1, &res);
    assert_int_equal(res.finish, SCHED_FINISH_CANCELLED);
    sched_release(a);
    sched_release(b);
    st_collect(c, -1, &res);
    assert_int_equal(res.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(res.completion_tokens, 4);
    sched_release(c);
    sched_free(s);
}

static void test_cancel_within_one_step_frees_slot(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 0, 64, 2048);
    sched_seq *a = submit_long(s, 10);
    int first = wait_first_token(a);
    sched_cancel(a);
    sched_stats st;
    sched_get_stats(s, &st);
    st_collect(a, -1, &res);
    sched_release(a);
    /* alone in the scheduler, a gets exactly one token per step */
    assert_int_equal(res.finish, SCHED_FINISH_CANCELLED);
    if (res.completion_tokens > st.steps + 1)
        fail_msg("cancelled after %lld steps but %lld tokens were generated", (long long)st.steps,
                 (long long)res.completion_tokens);
    assert_int_equal(first + res.n_tokens, res.completion_tokens);

    sched_request r;
    st_request(&r, prompt, 20, 7);
    sched_seq *b = st_submit(s, &r);
    st_collect(b, -1, &res);
    sched_release(b);
    st_reference(&r, 2048, &res2);
    st_expect_same(&res2, &res, "after a cancel");
    sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    sched_free(s);
}

static void test_deadline_is_timeout(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(2, 2, 64, 2048);
    sched_request r;
    st_request(&r, prompt, 10, LONG_RUN);
    r.ignore_eos = true;
    r.deadline_ns = clock_mono_ns() - 1;
    sched_seq *q = st_submit(s, &r);
    st_collect(q, -1, &res);
    sched_release(q);
    assert_int_equal(res.finish, SCHED_FINISH_TIMEOUT);
    assert_int_equal(res.completion_tokens, 0);
    assert_int_equal(res.err.status, HEARTH_ERR_TIMEOUT);

    r.deadline_ns = clock_mono_ns() + 300 * 1000000ull;
    q = st_submit(s, &r);
    st_collect(q, -1, &res);
    sched_release(q);
    assert_int_equal(res.finish, SCHED_FINISH_TIMEOUT);
    assert_true(res.completion_tokens > 0 && res.completion_tokens < LONG_RUN);
    assert_int_equal(res.n_tokens, res.completion_tokens);
    sched_free(s);
}

static void test_stalled_consumer_is_cancelled(void **state) {
    ST_NEED_MODEL();
    sched_params p;
    sched_params_default(&p);
    p.n_slots = 2;
    p.n_ctx = 2048;
    p.n_threads = 2;
    p.max_unread = 48; /* above the reader's whole reply, so only the stalled one can pass it */
    sched *s = NULL;
    hearth_err err = {0};
    assert_int_equal(sched_new(st_model->model, st_model->vocab, &p, &s, &err), HEARTH_OK);
    sched_seq *stalled = submit_long(s, 16);
    sched_request r;
    st_request(&r, prompt, 30, 40);
    r.ignore_eos = true;
    sched_seq *reader = st_submit(s, &r);
    st_collect(reader, -1, &res);
    sched_release(reader);
    assert_int_equal(res.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(res.completion_tokens, 40);

    /* the stalled one is never read until the scheduler has let go of it */
    sched_stats stats;
    for (int i = 0; i < 60000; i++) {
        sched_get_stats(s, &stats);
        if (stats.running == 0) break;
        usleep(1000);
    }
    assert_int_equal(stats.running, 0);
    st_collect(stalled, -1, &res2);
    sched_release(stalled);
    assert_int_equal(res2.finish, SCHED_FINISH_CANCELLED);
    assert_non_null(strstr(res2.err.msg, "unread"));
    assert_int_equal(res2.n_tokens, 49);
    sched_free(s);
}

static void test_free_with_work_in_flight(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(2, 4, 32, 2048);
    sched_seq *q[6];
    for (int i = 0; i < 6; i++) q[i] = submit_long(s, 5 + (size_t)i * 9);
    wait_first_token(q[0]);
    sched_release(q[5]); /* released before the end: freed by the scheduler */
    sched_free(s);
    for (int i = 0; i < 5; i++) {
        st_collect(q[i], -1, &res);
        if (res.finish != SCHED_FINISH_CANCELLED) fail_msg("sequence %d ended with %d, not CANCELLED", i, res.finish);
        sched_release(q[i]);
    }
}

static int setup(void **state) {
    st_prompt(prompt, 64, 4242);
    return st_open("models/llama-spm-f16.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_full_is_busy_at_once),
        cmocka_unit_test(test_cancel_within_one_step_frees_slot),
        cmocka_unit_test(test_deadline_is_timeout),
        cmocka_unit_test(test_stalled_consumer_is_cancelled),
        cmocka_unit_test(test_free_with_work_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, st_close);
}
