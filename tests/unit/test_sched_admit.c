/* Queue-wait admission of the scheduler: the wait estimate replayed by hand on small
 * cases (busy and free slots, prompts still to prefill, requests queued ahead); a real
 * scheduler refusing a request at once (BUSY, reason QUEUE_WAIT, the estimate and the
 * bound in the message) while a long sequence holds its only slot, queueing it when the
 * bound is off or generous, telling a full queue apart; and a queued request that is
 * still waiting when its bound passes ending with ERROR/BUSY instead of running late. */
#include "testutil.h"

#include "engine/sched_internal.h"
#include "sched_test_util.h"

#define LONG_RUN 2000 /* tokens no test waits for: the sequence is always ended earlier */

static int32_t prompt[64];
static st_result res;

static void expect_near(double want, double got, const char *what) {
    if (!(fabs(want - got) <= 1e-9 * (1 + fabs(want)))) fail_msg("%s: expected %.12g s, got %.12g s", what, want, got);
}

static void test_estimate_by_hand(void **state) {
    double at[3];
    admit_sim m;
    int64_t none[3] = {0, 0, 0};

    admit_sim_init(&m, at, 3, 0.01, 100);
    admit_sim_slots(&m, none, none);
    expect_near(0, admit_sim_wait(&m), "all slots free");

    /* one slot with 10 tokens left at 10 ms a step */
    int64_t gen1[1] = {10}, p0[1] = {0};
    admit_sim_init(&m, at, 1, 0.01, 100);
    admit_sim_slots(&m, p0, gen1);
    expect_near(0.10, admit_sim_wait(&m), "one busy slot");

    /* 50 prompt tokens still to prefill at 100 tokens/s stall both busy slots by 0.5 s */
    int64_t gen2[2] = {10, 4}, p2[2] = {50, 0};
    admit_sim_init(&m, at, 2, 0.01, 100);
    admit_sim_slots(&m, p2, gen2);
    expect_near(0.54, admit_sim_wait(&m), "prefill stalls every busy slot");

    /* a request queued ahead (20 prompt tokens, 5 to generate) takes the slot at 0.1 s
     * and keeps it until 0.1 + 0.2 + 0.05 */
    admit_sim_init(&m, at, 1, 0.01, 100);
    admit_sim_slots(&m, p0, gen1);
    admit_sim_queue(&m, 20, 5);
    expect_near(0.35, admit_sim_wait(&m), "behind a queued request");

    /* a free slot is taken at once by the request ahead, whose prompt (0.1 s) stalls
     * the busy slot (1.0 s -> 1.1 s); the new request waits for the first to free */
    int64_t gen3[2] = {0, 100}, p3[2] = {0, 0};
    admit_sim_init(&m, at, 2, 0.01, 100);
    admit_sim_slots(&m, p3, gen3);
    admit_sim_queue(&m, 10, 10);
    expect_near(0.2, admit_sim_wait(&m), "queued request in a free slot");
    expect_near(1.1, at[1], "busy slot stalled by the queued prompt");
    admit_sim_queue(&m, 0, 100);
    expect_near(1.1, admit_sim_wait(&m), "two requests ahead");
}

static sched_seq *submit_long(sched *s) {
    sched_request r;
    st_request(&r, prompt, 10, LONG_RUN);
    r.ignore_eos = true;
    return st_submit(s, &r);
}

static void wait_first_token(sched_seq *q) {
    sched_event ev;
    do {
        if (!sched_next(q, &ev, ST_WAIT_MS)) fail_msg("no event within %d ms", ST_WAIT_MS);
    } while (ev.n_tokens == 0 && ev.finish == SCHED_FINISH_NONE);
    assert_int_equal(ev.finish, SCHED_FINISH_NONE);
}

static void test_refused_at_arrival(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 2, 64, 2048);
    sched_seq *a = submit_long(s);
    wait_first_token(a);
    /* the only slot has up to LONG_RUN tokens to go: far beyond a millisecond */
    double est = sched_queue_wait_s(s);
    if (!(est > 0.001)) fail_msg("estimated wait %g s behind a %d-token sequence", est, LONG_RUN);
    printf("estimated wait behind a %d-token sequence: %.3f s\n", LONG_RUN, est);

    sched_request r;
    st_request(&r, prompt, 8, 4);
    sched_refusal why;
    r.refusal = &why;
    r.max_queue_wait_s = 0.001;
    sched_seq *b = NULL;
    hearth_err err = {0};
    assert_int_equal(sched_submit(s, &r, &b, &err), HEARTH_ERR_BUSY);
    assert_null(b);
    assert_int_equal(why.why, SCHED_BUSY_QUEUE_WAIT);
    if (!(why.wait_s > 0.001)) fail_msg("refused with an estimated wait of %g s", why.wait_s);
    if (!(why.retry_after_s >= 1)) fail_msg("retry after %g s", why.retry_after_s);
    if (!strstr(err.msg, "exceeds max_queue_wait 0.001 s")) fail_msg("message: %s", err.msg);
    sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.queued, 0);

    /* no bound, or a generous one: queued */
    r.max_queue_wait_s = 0;
    sched_seq *c = st_submit(s, &r);
    r.max_queue_wait_s = 86400;
    sched_seq *d = st_submit(s, &r);
    assert_int_equal(why.why, SCHED_BUSY_NONE);
    /* the queue (2) is full now: that reason wins over the wait */
    r.max_queue_wait_s = 0.001;
    assert_int_equal(sched_submit(s, &r, &b, &err), HEARTH_ERR_BUSY);
    assert_int_equal(why.why, SCHED_BUSY_QUEUE_FULL);

    /* a bad bound is refused as such */
    r.max_queue_wait_s = -1;
    assert_int_equal(sched_submit(s, &r, &b, &err), HEARTH_ERR_INVALID);
    r.max_queue_wait_s = NAN;
    assert_int_equal(sched_submit(s, &r, &b, &err), HEARTH_ERR_INVALID);

    sched_cancel(a);
    st_collect(c, -1, &res);
    assert_int_equal(res.finish, SCHED_FINISH_LENGTH);
    st_collect(d, -1, &res);
    assert_int_equal(res.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(res.completion_tokens, 4);
    sched_release(a);
    sched_release(c);
    sched_release(d);
    sched_free(s);
}

/* The estimate can be wrong (speeds change); a request still queued when its bound
 * passes must not run late. The scheduler's measured speeds are set here to absurdly
 * fast ones so that the estimate admits it while the long sequence keeps the slot. */
static void test_expires_in_queue(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 2, 64, 2048);
    sched_seq *a = submit_long(s);
    wait_first_token(a);
    sched_request r;
    st_request(&r, prompt, 8, 4);
    r.max_queue_wait_s = 0.001;
    sched_seq *b = NULL;
    hearth_err err = {0};
    hearth_status st = HEARTH_ERR_BUSY;
    /* a step publishing real speeds between the two calls refuses it: try again */
    for (int tries = 0; st == HEARTH_ERR_BUSY && tries < 1000; tries++) {
        pthread_mutex_lock(&s->mu);
        s->decode_step_s = 1e-12;
        s->prefill_tps = 1e15;
        pthread_mutex_unlock(&s->mu);
        st = sched_submit(s, &r, &b, &err);
    }
    if (st != HEARTH_OK) fail_msg("never admitted into the queue: %s", err.msg);
    st_collect(b, -1, &res);
    assert_int_equal(res.finish, SCHED_FINISH_ERROR);
    assert_int_equal(res.err.status, HEARTH_ERR_BUSY);
    assert_int_equal(res.completion_tokens, 0);
    if (!strstr(res.err.msg, "max_queue_wait")) fail_msg("message: %s", res.err.msg);
    sched_release(b);
    /* the long sequence was never disturbed */
    sched_stats stats;
    sched_get_stats(s, &stats);
    assert_int_equal(stats.running, 1);
    assert_int_equal(stats.queued, 0);
    sched_release(a);
    sched_free(s);
}

static int setup(void **state) {
    st_prompt(prompt, 64, 777);
    return st_open("models/llama-spm-f16.gguf");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_by_hand),
        cmocka_unit_test(test_refused_at_arrival),
        cmocka_unit_test(test_expires_in_queue),
    };
    return cmocka_run_group_tests(tests, setup, st_close);
}
