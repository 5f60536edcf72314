/* Sampler chain: determinism per seed, greedy ties, each filter's support, empirical
 * frequencies, bias, hand-computed penalties, parameter checks, logprobs. All draws are
 * seeded, so every statistical bound below is checked against a fixed outcome. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "engine/sampler.h"
#include "engine/sampler_rng.h"

/* Every filter and penalty off, temperature 1: plain sampling from softmax(logits). */
static sampler_params plain_params(uint64_t seed) {
    sampler_params p;
    sampler_params_default(&p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static sampler *new_or_fail(const sampler_params *p, int32_t n_vocab) {
    hearth_err err = {0};
    sampler *s = sampler_new(p, n_vocab, &err);
    if (!s) fail_msg("sampler_new failed: %s", err.msg);
    return s;
}

/* Test-side generator for logits, independent of the sampler's own RNG. */
static float test_rand(uint64_t *state) {
    return (float)(sampler_splitmix64(state) >> 40) / (float)(1 << 24);
}

static void fill_random(float *logits, int n, uint64_t *state, float scale) {
    for (int i = 0; i < n; i++) logits[i] = (test_rand(state) - 0.5f) * scale;
}

static void set_log_probs(float *logits, const double *probs, int n) {
    for (int i = 0; i < n; i++) logits[i] = (float)log(probs[i]);
}

static int32_t sample_copy(sampler *s, const float *logits, int n) {
    float work[1024];
    assert_true(n <= 1024);
    memcpy(work, logits, (size_t)n * sizeof *work);
    return sampler_sample(s, work);
}

/* Counts of n_draws samples from the same logits. */
static void histogram(sampler *s, const float *logits, int n, int n_draws, int *counts) {
    memset(counts, 0, (size_t)n * sizeof *counts);
    for (int i = 0; i < n_draws; i++) {
        int32_t t = sample_copy(s, logits, n);
        if (t < 0 || t >= n) fail_msg("draw %d returned token %d outside [0, %d)", i, t, n);
        counts[t]++;
    }
}

static void test_splitmix_known_value(void **state) {
    uint64_t x = 0;
    uint64_t first = sampler_splitmix64(&x);
    if (first != 0xE220A8397B1DCDAFULL)
        fail_msg("splitmix64(0) first output %016llx, expected e220a8397b1dcdaf", (unsigned long long)first);
}

static void test_same_seed_same_sequence(void **state) {
    enum { N = 50, DRAWS = 1000 };
    float logits[N];
    uint64_t st = 7;
    fill_random(logits, N, &st, 4.0f);
    sampler_params p = plain_params(1234);
    sampler *a = new_or_fail(&p, N), *b = new_or_fail(&p, N);
    p.seed = 1235;
    sampler *c = new_or_fail(&p, N);
    int32_t seq_a[DRAWS];
    int differ = 0;
    for (int i = 0; i < DRAWS; i++) {
        seq_a[i] = sample_copy(a, logits, N);
        int32_t tb = sample_copy(b, logits, N), tc = sample_copy(c, logits, N);
        if (seq_a[i] != tb) fail_msg("draw %d: same seed gave %d and %d", i, seq_a[i], tb);
        differ += seq_a[i] != tc;
    }
    if (differ < DRAWS / 2) fail_msg("seeds 1234 and 1235 agreed on %d of %d draws", DRAWS - differ, DRAWS);
    sampler_reset(a);
    for (int i = 0; i < DRAWS; i++) {
        int32_t t = sample_copy(a, logits, N);
        if (t != seq_a[i]) fail_msg("after reset draw %d gave %d, first run %d", i, t, seq_a[i]);
    }
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

static void test_greedy_ties_lowest_id(void **state) {
    sampler_params p = plain_params(1);
    float temps[] = {0.0f, -1.0f};
    for (int k = 0; k < 2; k++) {
        p.temperature = temps[k];
        sampler *s = new_or_fail(&p, 6);
        float logits[6] = {1.0f, 5.0f, 3.0f, 5.0f, -2.0f, 5.0f};
        assert_int_equal(sampler_sample(s, logits), 1);
        float nan_first[6] = {NAN, 2.0f, 2.0f, 1.0f, 0.0f, -1.0f};
        assert_int_equal(sampler_sample(s, nan_first), 1);
        float all_banned[6] = {-INFINITY, -INFINITY, NAN, -INFINITY, -INFINITY, -INFINITY};
        assert_int_equal(sampler_sample(s, all_banned), SAMPLER_NO_TOKEN);
        sampler_free(s);
    }
}

static void test_top_k_one_is_greedy(void **state) {
    enum { N = 200 };
    uint64_t st = 99;
    float logits[N], work[N];
    const float temps[] = {0.1f, 1.0f, 3.0f, 100.0f};
    for (int ti = 0; ti < 4; ti++) {
        sampler_params p = plain_params(5 + (uint64_t)ti);
        p.top_k = 1;
        p.temperature = temps[ti];
        sampler *s = new_or_fail(&p, N);
        p.temperature = 0;
        sampler *g = new_or_fail(&p, N);
        for (int round = 0; round < 50; round++) {
            fill_random(logits, N, &st, 10.0f);
            if (round % 5 == 0) logits[N - 1] = logits[17] = 20.0f;   /* tie: 17 must win */
            memcpy(work, logits, sizeof logits);
            int32_t want = sampler_sample(g, work);
            memcpy(work, logits, sizeof logits);
            int32_t got = sampler_sample(s, work);
            if (got != want) fail_msg("temperature %g round %d: top_k=1 drew %d, greedy %d", temps[ti], round, got, want);
            if (round % 5 == 0) assert_int_equal(got, 17);
        }
        sampler_free(s);
        sampler_free(g);
    }
}

static void test_top_p_nucleus_only(void **state) {
    const double probs[5] = {0.45, 0.30, 0.15, 0.07, 0.03};
    float logits[5];
    set_log_probs(logits, probs, 5);
    int counts[5];
    for (int with_k = 0; with_k < 2; with_k++) {
        sampler_params p = plain_params(42);
        p.top_p = 0.7f;             /* 0.45 + 0.30 = 0.75 >= 0.7: nucleus {0, 1} */
        p.top_k = with_k ? 4 : 0;   /* sorted by top-k, or selected by top-p itself */
        sampler *s = new_or_fail(&p, 5);
        histogram(s, logits, 5, 5000, counts);
        for (int t = 2; t < 5; t++)
            if (counts[t]) fail_msg("top_k %d: token %d outside the nucleus drawn %d times", p.top_k, t, counts[t]);
        double f0 = counts[0] / 5000.0;   /* renormalised: 0.45 / 0.75 = 0.6 */
        if (fabs(f0 - 0.6) > 0.03) fail_msg("top_k %d: token 0 frequency %.4f, expected 0.6", p.top_k, f0);
        sampler_free(s);
    }
    sampler_params p = plain_params(3);
    p.top_p = 0.0f;
    sampler *s = new_or_fail(&p, 5);
    histogram(s, logits, 5, 200, counts);
    assert_int_equal(counts[0], 200);
    sampler_free(s);
}

/* A flat-ish vocabulary whose nucleus is far larger than the first selection head. */
static void test_top_p_large_nucleus(void **state) {
    enum { N = 1000 };
    float logits[N];
    uint64_t st = 2024;
    fill_random(logits, N, &st, 2.0f);
    double max = -INFINITY, sum = 0, prob[N];
    for (int i = 0; i < N; i++) max = fmax(max, logits[i]);
    for (int i = 0; i < N; i++) sum += (prob[i] = exp(logits[i] - max));
    /* The nucleus by brute force: probability threshold of the last token kept. */
    const float top_p = 0.5f;
    int order[N];
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    double mass = 0;
    int kept = 0;
    while (mass < top_p) mass += prob[order[kept++]] / sum;
    assert_true(kept > 100);
    float cut = logits[order[kept - 1]];

    sampler_params p = plain_params(77);
    p.top_p = top_p;
    sampler *s = new_or_fail(&p, N);
    int counts[N];
    histogram(s, logits, N, 4000, counts);
    int distinct = 0;
    for (int t = 0; t < N; t++) {
        if (counts[t] && logits[t] < cut)
            fail_msg("token %d (logit %g) below the nucleus cut %g drawn %d times", t, logits[t], cut, counts[t]);
        distinct += counts[t] > 0;
    }
    if (distinct < kept / 2) fail_msg("only %d distinct tokens drawn from a nucleus of %d", distinct, kept);
    sampler_free(s);
}

/* A nucleus too large for the sorted heads, whose cut falls inside a group of tied logits:
 * with a huge temperature the kept tokens are drawn uniformly, so the drawn set must be
 * exactly the nucleus of the sorted rule (ties kept lowest id first), whether found by
 * top-k's sort or without it. */
static void test_top_p_cut_among_ties(void **state) {
    enum { N = 1200, DRAWS = 10000 };
    static float logits[N];
    static int counts[N], order[N];
    static double prob[N];
    uint64_t st = 17;
    for (int i = 0; i < N; i++)
        logits[i] = i % 20 == 0 ? 3.0f : i % 2 == 1 ? 1.0f : -3.0f * test_rand(&st);
    double z = 0;
    for (int i = 0; i < N; i++) z += (prob[i] = exp(logits[i] - 3.0));
    const float top_p = (float)((60 * exp(0.0) + 500.5 * exp(-2.0)) / z);   /* cut at the 501st tie */
    /* Sorted rule by brute force: logit descending, then id; insertion into a ranked list. */
    int ranked = 0;
    for (int i = 0; i < N; i++) {
        int j = ranked++;
        while (j > 0 && logits[order[j - 1]] < logits[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    double mass = 0;
    int kept = 0;
    while (mass < top_p) mass += prob[order[kept++]] / z;
    assert_int_equal(kept, 561);
    static bool in_nucleus[N];
    for (int i = 0; i < N; i++) in_nucleus[i] = false;
    for (int i = 0; i < kept; i++) in_nucleus[order[i]] = true;

    for (int sorted = 0; sorted < 2; sorted++) {
        sampler_params p = plain_params(2718);
        p.top_p = top_p;
        p.top_k = sorted ? N - 1 : 0;
        p.temperature = 1e6f;
        sampler *s = new_or_fail(&p, N);
        memset(counts, 0, sizeof counts);
        for (int d = 0; d < DRAWS; d++) {
            float work[N];
            memcpy(work, logits, sizeof work);
            int32_t t = sampler_sample(s, work);
            assert_true(t >= 0 && t < N);
            counts[t]++;
        }
        for (int t = 0; t < N; t++) {
            if (counts[t] && !in_nucleus[t])
                fail_msg("top_k %d: token %d (logit %g) outside the nucleus drawn %d times", p.top_k, t, logits[t],
                         counts[t]);
            if (!counts[t] && in_nucleus[t])
                fail_msg("top_k %d: token %d (logit %g) in the nucleus never drawn", p.top_k, t, logits[t]);
        }
        sampler_free(s);
    }
}

static void test_min_p_floor(void **state) {
    const double probs[5] = {0.40, 0.30, 0.20, 0.06, 0.04};
    float logits[5];
    set_log_probs(logits, probs, 5);
    sampler_params p = plain_params(8);
    p.min_p = 0.2f;   /* floor 0.2 * 0.40 = 0.08: tokens 3 and 4 go */
    sampler *s = new_or_fail(&p, 5);
    int counts[5];
    histogram(s, logits, 5, 5000, counts);
    if (counts[3] || counts[4]) fail_msg("below min-p drawn: token 3 %d times, token 4 %d times", counts[3], counts[4]);
    for (int t = 0; t < 3; t++)
        if (!counts[t]) fail_msg("token %d above min-p never drawn", t);
    sampler_free(s);
}

static void test_low_temperature_concentrates(void **state) {
    const float logits[3] = {1.0f, 0.9f, 0.5f};
    const float temps[] = {2.0f, 1.0f, 0.3f, 0.05f, 0.001f};
    int counts[3];
    double prev = 0;
    for (int i = 0; i < 5; i++) {
        sampler_params p = plain_params(11);
        p.temperature = temps[i];
        sampler *s = new_or_fail(&p, 3);
        histogram(s, logits, 3, 4000, counts);
        double f = counts[0] / 4000.0;
        if (f < prev) fail_msg("temperature %g: top token frequency %.4f fell below %.4f", temps[i], f, prev);
        prev = f;
        sampler_free(s);
    }
    if (prev < 0.999) fail_msg("temperature 0.001: top token frequency only %.4f", prev);
}

static void test_empirical_frequencies(void **state) {
    enum { DRAWS = 20000 };
    const double probs[4] = {0.1, 0.2, 0.3, 0.4};
    float logits[4];
    set_log_probs(logits, probs, 4);
    const float temps[] = {1.0f, 2.0f};
    for (int ti = 0; ti < 2; ti++) {
        double want[4], z = 0;
        for (int t = 0; t < 4; t++) z += (want[t] = pow(probs[t], 1.0 / temps[ti]));
        sampler_params p = plain_params(31337);
        p.temperature = temps[ti];
        sampler *s = new_or_fail(&p, 4);
        int counts[4];
        histogram(s, logits, 4, DRAWS, counts);
        for (int t = 0; t < 4; t++) {
            double f = counts[t] / (double)DRAWS, w = want[t] / z;
            if (fabs(f - w) > 0.015)   /* ~4 standard deviations */
                fail_msg("temperature %g token %d: frequency %.4f, expected %.4f", temps[ti], t, f, w);
        }
        sampler_free(s);
    }
}

static void test_bias_bans_and_forces(void **state) {
    const double probs[4] = {0.7, 0.2, 0.05, 0.05};
    float logits[4];
    set_log_probs(logits, probs, 4);
    sampler_bias ban[] = {{0, -INFINITY}};
    sampler_params p = plain_params(4);
    p.bias = ban;
    p.n_bias = 1;
    sampler *s = new_or_fail(&p, 4);
    ban[0].token = 3;   /* the sampler keeps its own copy */
    int counts[4];
    histogram(s, logits, 4, 3000, counts);
    if (counts[0]) fail_msg("banned token 0 drawn %d times", counts[0]);
    if (!counts[3]) fail_msg("token 3 was never drawn: the bias array was not copied");
    sampler_free(s);

    p.temperature = 0;
    ban[0].token = 0;
    s = new_or_fail(&p, 4);
    float work[4];
    memcpy(work, logits, sizeof work);
    assert_int_equal(sampler_sample(s, work), 1);
    sampler_free(s);

    sampler_bias force[] = {{2, 100.0f}};
    p = plain_params(9);
    p.temperature = 1.5f;
    p.bias = force;
    p.n_bias = 1;
    s = new_or_fail(&p, 4);
    histogram(s, logits, 4, 1000, counts);
    if (counts[2] != 1000) fail_msg("bias +100 on token 2: drawn %d of 1000 times", counts[2]);
    sampler_free(s);

    sampler_bias all[] = {{0, -INFINITY}, {1, -INFINITY}, {2, -INFINITY}, {3, -INFINITY}};
    p.bias = all;
    p.n_bias = 4;
    s = new_or_fail(&p, 4);
    memcpy(work, logits, sizeof work);
    assert_int_equal(sampler_sample(s, work), SAMPLER_NO_TOKEN);
    sampler_free(s);
}

/* Runs a greedy sampler with the given penalties over history and returns the adjusted logits. */
static void penalised(float rep, float presence, float freq, int32_t last_n, const int32_t *hist, int n_hist,
                      float *out) {
    const float base[6] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
    sampler_params p = plain_params(1);
    p.temperature = 0;
    p.repeat_penalty = rep;
    p.presence_penalty = presence;
    p.frequency_penalty = freq;
    p.repeat_last_n = last_n;
    sampler *s = new_or_fail(&p, 6);
    for (int i = 0; i < n_hist; i++) sampler_accept(s, hist[i]);
    memcpy(out, base, sizeof base);
    sampler_sample(s, out);
    sampler_free(s);
}

static void expect_logits(const char *what, const float *got, const float *want) {
    for (int t = 0; t < 6; t++)
        if (fabsf(got[t] - want[t]) > 1e-6f) fail_msg("%s: token %d logit %g, expected %g", what, t, got[t], want[t]);
}

static void test_penalties_by_hand(void **state) {
    const int32_t hist[] = {0, 0, 1, 3, 99, -1};   /* 99 and -1 are outside the vocabulary: ignored */
    float got[6];
    /* token 0 twice (logit 2 > 0), token 1 once (-1 < 0), token 3 once (3 > 0). */
    penalised(2.0f, 0, 0, 64, hist, 6, got);
    expect_logits("repeat 2", got, (const float[6]){1.0f, -2.0f, 0.5f, 1.5f, -2.0f, 1.0f});
    penalised(1.0f, 0.5f, 0, 64, hist, 6, got);
    expect_logits("presence 0.5", got, (const float[6]){1.5f, -1.5f, 0.5f, 2.5f, -2.0f, 1.0f});
    penalised(1.0f, 0, 0.25f, 64, hist, 6, got);
    expect_logits("frequency 0.25", got, (const float[6]){1.5f, -1.25f, 0.5f, 2.75f, -2.0f, 1.0f});
    penalised(2.0f, 0.5f, 0.25f, 64, hist, 6, got);
    expect_logits("all three", got, (const float[6]){0.0f, -2.75f, 0.5f, 0.75f, -2.0f, 1.0f});
    penalised(2.0f, 0.5f, 0.25f, -1, hist, 6, got);
    expect_logits("whole history", got, (const float[6]){0.0f, -2.75f, 0.5f, 0.75f, -2.0f, 1.0f});
    /* A window of 2 sees only tokens 1 and 3. */
    penalised(2.0f, 0.5f, 0.25f, 2, hist, 6, got);
    expect_logits("window 2", got, (const float[6]){2.0f, -2.75f, 0.5f, 0.75f, -2.0f, 1.0f});
    penalised(2.0f, 0.5f, 0.25f, 0, hist, 6, got);
    expect_logits("window 0", got, (const float[6]){2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f});
    /* The window slides: 0 0 0 then 5 5 5 with window 3 leaves only token 5 (three times). */
    const int32_t slide[] = {0, 0, 0, 5, 5, 5};
    penalised(1.0f, 0, 1.0f, 3, slide, 6, got);
    expect_logits("slid window", got, (const float[6]){2.0f, -1.0f, 0.5f, 3.0f, -2.0f, -2.0f});
    /* 5 5 0 0 5 with window 3: token 5 left twice and came back once. */
    const int32_t back[] = {5, 5, 0, 0, 5};
    penalised(1.0f, 0, 1.0f, 3, back, 5, got);
    expect_logits("re-entered window", got, (const float[6]){0.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f});
}

static void test_penalty_changes_choice_and_reset(void **state) {
    sampler_params p = plain_params(1);
    p.temperature = 0;
    p.repeat_penalty = 3.0f;
    sampler *s = new_or_fail(&p, 3);
    const float base[3] = {2.0f, 1.0f, 0.0f};
    float work[3];
    memcpy(work, base, sizeof work);
    int32_t t = sampler_sample(s, work);
    assert_int_equal(t, 0);
    sampler_accept(s, t);
    memcpy(work, base, sizeof work);
    assert_int_equal(sampler_sample(s, work), 1);   /* 2 / 3 < 1 */
    sampler_reset(s);
    memcpy(work, base, sizeof work);
    assert_int_equal(sampler_sample(s, work), 0);
    sampler_free(s);
}

static void expect_invalid(const sampler_params *p, int32_t n_vocab, const char *name) {
    hearth_err err = {0};
    sampler *s = sampler_new(p, n_vocab, &err);
    if (s) {
        sampler_free(s);
        fail_msg("parameters with a bad %s were accepted", name);
    }
    if (err.status != HEARTH_ERR_INVALID) fail_msg("bad %s: status %d, expected INVALID", name, err.status);
    if (!strstr(err.msg, name)) fail_msg("bad %s: message '%s' does not name it", name, err.msg);
}

static void test_invalid_params(void **state) {
    sampler_params p = plain_params(1);
    expect_invalid(&p, 0, "n_vocab");
    expect_invalid(&p, -5, "n_vocab");
    p.temperature = NAN;
    expect_invalid(&p, 10, "temperature");
    p.temperature = INFINITY;
    expect_invalid(&p, 10, "temperature");
    p = plain_params(1);
    p.top_p = -0.1f;
    expect_invalid(&p, 10, "top_p");
    p.top_p = NAN;
    expect_invalid(&p, 10, "top_p");
    p = plain_params(1);
    p.min_p = NAN;
    expect_invalid(&p, 10, "min_p");
    p.min_p = 1.5f;
    expect_invalid(&p, 10, "min_p");
    p = plain_params(1);
    p.repeat_penalty = 0;
    expect_invalid(&p, 10, "repeat_penalty");
    p.repeat_penalty = NAN;
    expect_invalid(&p, 10, "repeat_penalty");
    p = plain_params(1);
    p.repeat_last_n = -2;
    expect_invalid(&p, 10, "repeat_last_n");
    p.repeat_last_n = SAMPLER_MAX_WINDOW + 1;
    expect_invalid(&p, 10, "repeat_last_n");
    p = plain_params(1);
    p.presence_penalty = NAN;
    expect_invalid(&p, 10, "presence_penalty");
    p = plain_params(1);
    p.frequency_penalty = -INFINITY;
    expect_invalid(&p, 10, "frequency_penalty");
    p = plain_params(1);
    sampler_bias out_of_range[] = {{10, 1.0f}};
    p.bias = out_of_range;
    p.n_bias = 1;
    expect_invalid(&p, 10, "bias");
    out_of_range[0].token = -1;
    expect_invalid(&p, 10, "bias");
    sampler_bias bad_value[] = {{3, NAN}};
    p.bias = bad_value;
    expect_invalid(&p, 10, "bias");
    bad_value[0].bias = INFINITY;
    expect_invalid(&p, 10, "bias");
    p.bias = NULL;
    expect_invalid(&p, 10, "bias");
    /* Edges that are allowed. */
    p = plain_params(1);
    p.top_p = 1.5f;
    p.min_p = -1.0f;
    p.temperature = -3.0f;
    p.repeat_last_n = -1;
    p.presence_penalty = -2.0f;
    sampler *s = new_or_fail(&p, 10);
    sampler_free(s);
}

static void test_no_allocation_when_sampling(void **state) {
    enum { N = 300 };
    float logits[N];
    uint64_t st = 5;
    fill_random(logits, N, &st, 8.0f);
    sampler_params p;
    sampler_params_default(&p);
    p.top_k = 0;
    p.repeat_penalty = 1.1f;
    p.frequency_penalty = 0.1f;
    sampler *s = new_or_fail(&p, N);
    mem_fail_at(1);
    for (int i = 0; i < 200; i++) {
        int32_t t = sample_copy(s, logits, N);
        assert_true(t >= 0 && t < N);
        sampler_accept(s, t);
    }
    long made = mem_fail_at(0);
    sampler_free(s);
    if (made != 0) fail_msg("sampling made %ld allocations", made);
}

static void test_allocation_failure(void **state) {
    sampler_params p = plain_params(1);
    p.repeat_penalty = 1.2f;
    sampler_bias b[] = {{1, 2.0f}};
    p.bias = b;
    p.n_bias = 1;
    mem_fail_at(0);
    sampler_free(new_or_fail(&p, 100));
    long n_allocs = mem_fail_at(0);
    assert_true(n_allocs >= 4);
    for (long k = 1; k <= n_allocs; k++) {
        hearth_err err = {0};
        mem_fail_at(k);
        sampler *s = sampler_new(&p, 100, &err);
        mem_fail_at(0);
        if (s) fail_msg("allocation %ld of %ld failed but sampler_new succeeded", k, n_allocs);
        assert_int_equal(err.status, HEARTH_ERR_NOMEM);
    }
}

static void test_logprobs(void **state) {
    enum { N = 100 };
    float logits[N];
    uint64_t st = 321;
    fill_random(logits, N, &st, 12.0f);
    logits[40] = logits[41] = 50.0f;   /* a tie at the top: 40 first */
    sampler_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
    double total = 0;
    for (int32_t t = 0; t < N; t++) {
        float lp;
        int n_top;
        hearth_err err = {0};
        assert_int_equal(sampler_logprobs(logits, N, t, t % 21, &lp, top, &n_top, &err), HEARTH_OK);
        assert_true(lp <= 0);
        total += exp(lp);
        assert_int_equal(n_top, t % 21);
        for (int i = 0; i < n_top; i++) {
            /* Exactly i tokens are strictly more likely, or tied with a lower id. */
            int ahead = 0;
            for (int u = 0; u < N; u++)
                ahead += logits[u] > logits[top[i].token] || (logits[u] == logits[top[i].token] && u < top[i].token);
            if (ahead != i) fail_msg("top[%d] is token %d but %d tokens rank ahead of it", i, top[i].token, ahead);
            if (i > 0 && top[i].logprob > top[i - 1].logprob) fail_msg("top list not sorted at %d", i);
        }
        if (n_top >= 2) {
            assert_int_equal(top[0].token, 40);
            assert_int_equal(top[1].token, 41);
        }
    }
    if (fabs(total - 1.0) > 1e-4) fail_msg("probabilities sum to %.6f", total);

    float few[4] = {-INFINITY, 1.0f, NAN, 1.0f};
    float lp;
    int n_top;
    hearth_err err = {0};
    assert_int_equal(sampler_logprobs(few, 4, 0, 4, &lp, top, &n_top, &err), HEARTH_OK);
    assert_true(lp == -INFINITY);
    assert_int_equal(n_top, 2);
    assert_int_equal(top[0].token, 1);
    assert_int_equal(top[1].token, 3);
    if (fabsf(top[0].logprob - logf(0.5f)) > 1e-6f) fail_msg("logprob %g, expected log 0.5", top[0].logprob);

    assert_int_equal(sampler_logprobs(few, 4, 4, 1, &lp, top, &n_top, &err), HEARTH_ERR_INVALID);
    assert_int_equal(sampler_logprobs(few, 4, 1, 21, &lp, top, &n_top, &err), HEARTH_ERR_INVALID);
    float none[2] = {-INFINITY, NAN};
    assert_int_equal(sampler_logprobs(none, 2, 0, 1, &lp, top, &n_top, &err), HEARTH_ERR_INVALID);
    assert_int_equal(sampler_logprobs(few, 4, 1, 0, &lp, NULL, &n_top, &err), HEARTH_OK);
    assert_int_equal(n_top, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splitmix_known_value),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_greedy_ties_lowest_id),
        cmocka_unit_test(test_top_k_one_is_greedy),
        cmocka_unit_test(test_top_p_nucleus_only),
        cmocka_unit_test(test_top_p_large_nucleus),
        cmocka_unit_test(test_top_p_cut_among_ties),
        cmocka_unit_test(test_min_p_floor),
        cmocka_unit_test(test_low_temperature_concentrates),
        cmocka_unit_test(test_empirical_frequencies),
        cmocka_unit_test(test_bias_bans_and_forces),
        cmocka_unit_test(test_penalties_by_hand),
        cmocka_unit_test(test_penalty_changes_choice_and_reset),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_no_allocation_when_sampling),
        cmocka_unit_test(test_allocation_failure),
        cmocka_unit_test(test_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
