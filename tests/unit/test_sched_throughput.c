/* Continuous-batching scheduler, throughput: aggregate decode speed of 1 and of 8
 * concurrent sequences on the Q8_0 fixture with 2 threads, printed for the record (no
 * timing is asserted: the machine is shared). Asserts only that every sequence ran to its
 * token limit. */
#include "testutil.h"

#include <pthread.h>

#include "sched_test_util.h"

#define N_TOK 192
#define MAX_SEQ 8

typedef struct bench_job {
    sched *s;
    int32_t prompt[16];
    st_result res;
} bench_job;

static bench_job jobs[MAX_SEQ];

static void *bench_thread(void *arg) {
    bench_job *j = arg;
    sched_request r;
    st_request(&r, j->prompt, 16, N_TOK);
    r.ignore_eos = true;
    sched_seq *q = st_submit(j->s, &r);
    st_collect(q, -1, &j->res);
    sched_release(q);
    return NULL;
}

/* Aggregate completion tokens per second of n concurrent sequences. */
static double run(int n, double *step_tps) {
    sched *s = st_sched(MAX_SEQ, MAX_SEQ, 128, 256);
    pthread_t th[MAX_SEQ];
    double t0 = clock_mono_s();
    for (int i = 0; i < n; i++) {
        jobs[i].s = s;
        st_prompt(jobs[i].prompt, 16, 900 + (uint32_t)i);
        assert_int_equal(pthread_create(&th[i], NULL, bench_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double secs = clock_mono_s() - t0;
    sched_stats st;
    sched_get_stats(s, &st);
    *step_tps = st.decode_tps;
    sched_free(s);
    for (int i = 0; i < n; i++) {
        assert_int_equal(jobs[i].res.finish, SCHED_FINISH_LENGTH);
        assert_int_equal(jobs[i].res.completion_tokens, N_TOK);
    }
    return n * N_TOK / secs;
}

static void test_decode_throughput_1_vs_8(void **state) {
    ST_NEED_MODEL();
    double step1, step8;
    double one = run(1, &step1), eight = run(MAX_SEQ, &step8);
    printf("scheduler decode, llama-spm-q8_0, 2 threads: 1 sequence %.0f tok/s (steps %.0f), "
           "8 sequences %.0f tok/s aggregate (steps %.0f), x%.2f\n",
           one, step1, eight, step8, eight / one);
}

static int setup(void **state) { return st_open("models/llama-spm-q8_0.gguf"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_throughput_1_vs_8),
    };
    return cmocka_run_group_tests(tests, setup, st_close);
}
