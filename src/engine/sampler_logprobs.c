/* Log-probabilities of raw logits for the API's logprobs: the chosen token's and the n
 * most likely. Reads the logits only; allocates nothing; NaN counts as -infinity and
 * never enters the top list. */
#include <math.h>

#include "base/err.h"
#include "engine/sampler.h"

/* Inserts (t, v) into top[0..*n), kept best first, at most cap entries. Tokens arrive in
 * increasing id order, so an equal value goes after those already there. */
static void logprobs_insert(sampler_logprob *top, int *n, int cap, int32_t t, float v) {
    if (*n == cap && !(v > top[cap - 1].logprob)) return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && v > top[i - 1].logprob) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (sampler_logprob){.token = t, .logprob = v};
}

hearth_status sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int n_top,
                               float *token_logprob, sampler_logprob *top, int *n_top_out,
                               hearth_err *err) {
    if (!logits || n_vocab <= 0)
        return err_set(err, HEARTH_ERR_INVALID, "logprobs: no logits");
    if (token < 0 || token >= n_vocab)
        return err_set(err, HEARTH_ERR_INVALID, "logprobs: token %d is outside the vocabulary [0, %d)",
                       token, n_vocab);
    if (n_top < 0 || n_top > SAMPLER_MAX_TOP_LOGPROBS || (n_top > 0 && !top))
        return err_set(err, HEARTH_ERR_INVALID, "logprobs: top count must be in [0, %d], got %d",
                       SAMPLER_MAX_TOP_LOGPROBS, n_top);

    float max = -INFINITY;
    for (int32_t t = 0; t < n_vocab; t++)
        if (logits[t] > max) max = logits[t];
    if (!isfinite(max))
        return err_set(err, HEARTH_ERR_INVALID, "logprobs: the largest of %d logits is not a finite number", n_vocab);
    double sum = 0;
    for (int32_t t = 0; t < n_vocab; t++)
        if (logits[t] > -INFINITY) sum += exp((double)logits[t] - max);
    double log_z = max + log(sum);

    int n = 0;
    for (int32_t t = 0; t < n_vocab && n_top > 0; t++)
        if (isfinite(logits[t])) logprobs_insert(top, &n, n_top, t, (float)(logits[t] - log_z));
    float lp = logits[token];
    *token_logprob = lp > -INFINITY ? (float)(lp - log_z) : -INFINITY;
    *n_top_out = n;
    return HEARTH_OK;
}
