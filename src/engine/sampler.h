/* Token sampler: turns one position's logits into the next token, deterministically for
 * a given seed. It owns its candidate buffers and penalty history, so sampling allocates
 * nothing per call. It never prints, never reads the clock or a global RNG (except in
 * sampler_random_seed, which exists to pick a seed), and never keeps the caller's logits.
 *
 * The chain, applied by sampler_sample in this order:
 *   1. logit bias        logit[t] += bias (each entry in turn; -INFINITY bans t)
 *   2. penalties         for each distinct token t among the last repeat_last_n accepted
 *                        tokens, occurring c times there:
 *                          logit > 0 ? logit /= repeat_penalty : logit *= repeat_penalty
 *                          logit -= c * frequency_penalty + presence_penalty
 *   (NaN logits count as -INFINITY, +INFINITY as FLT_MAX, from here on)
 *   3. temperature <= 0  greedy: the highest logit, ties going to the lowest id; stop here
 *   4. top-k             keep the k highest logits (ties: lower id first); partial selection
 *   5. softmax           probabilities over the remaining candidates
 *   6. top-p             keep the smallest highest-probability prefix whose mass >= top_p
 *   7. min-p             keep candidates with p >= min_p * p_max
 *   8. temperature       p ∝ exp((logit - logit_max) / temperature) over what is left
 *   9. draw              one uniform number from the sampler's xoshiro256** generator
 *                        (seeded by splitmix64), walked along the candidates' cumulative mass
 * Filters 6 and 7 always keep at least the most likely candidate; top-p without top-k
 * sorts only a small head, or finds its cut by bisection, never the whole vocabulary.
 * Every non-greedy call consumes exactly one random number from a pure-integer generator,
 * so a seed gives the same random sequence everywhere, and the same tokens wherever the
 * C library's expf rounds alike. Tokens whose logit is -INFINITY after steps 1-2 are never
 * drawn. */
#ifndef ENGINE_SAMPLER_H
#define ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define SAMPLER_NO_TOKEN (-1)              /* every logit was -INFINITY or NaN */
#define SAMPLER_MAX_WINDOW (1 << 20)       /* largest repeat_last_n, in tokens */
#define SAMPLER_MAX_TOP_LOGPROBS 20
#define SAMPLER_DEFAULT_SEED 0x4845415254480001ULL

typedef struct sampler_bias {
    int32_t token;
    float bias;   /* added to the logit; -INFINITY bans the token; NaN and +INFINITY refused */
} sampler_bias;

typedef struct sampler_params {
    float temperature;        /* <= 0: greedy (argmax; ties go to the lowest id); must be finite */
    int32_t top_k;            /* <= 0: off */
    float top_p;              /* >= 1: off; 0 keeps only the most likely token; < 0 or NaN refused */
    float min_p;              /* <= 0: off; > 1 or NaN refused */
    float repeat_penalty;     /* 1: off; must be finite and > 0 */
    int32_t repeat_last_n;    /* window of recent tokens for all penalties; -1 = whole history,
                                 0 = off; at most SAMPLER_MAX_WINDOW */
    float presence_penalty;   /* 0: off (OpenAI semantics); must be finite */
    float frequency_penalty;  /* 0: off; must be finite */
    uint64_t seed;
    const sampler_bias *bias; /* [n_bias], copied by sampler_new; entries for one token add up */
    size_t n_bias;            /* at most n_vocab */
} sampler_params;

/* temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_last_n 64 with every penalty
 * off, no bias, seed SAMPLER_DEFAULT_SEED (fixed, so runs repeat; see sampler_random_seed). */
void sampler_params_default(sampler_params *p);

/* A seed from the operating system's entropy (falling back to the clock), for requests
 * that give none. */
uint64_t sampler_random_seed(void);

typedef struct sampler sampler;

/* Checks p against a vocabulary of n_vocab tokens and allocates the sampler's buffers
 * (12 bytes per vocabulary entry; with penalties on, 4 more plus 4 per window token, or
 * 8 more for the whole-history window). One sampler per sequence, used by one thread at a time.
 * Returns NULL and fills err: HEARTH_ERR_INVALID naming the bad parameter, or NOMEM. */
sampler *sampler_new(const sampler_params *p, int32_t n_vocab, hearth_err *err);
void sampler_free(sampler *s);

/* Samples one token from logits[n_vocab], which it modifies (bias, penalties). Returns
 * a token in [0, n_vocab), or SAMPLER_NO_TOKEN when no logit is left above -INFINITY.
 * Does not record the token: call sampler_accept with the token actually used. */
int32_t sampler_sample(sampler *s, float *logits);

/* Appends token to the history the penalties look at; ids outside [0, n_vocab) are ignored.
 * Also used to feed prompt tokens when they should count for penalties. */
void sampler_accept(sampler *s, int32_t token);

/* Clears the history and restarts the random sequence from the seed given at creation. */
void sampler_reset(sampler *s);

typedef struct sampler_logprob {
    int32_t token;
    float logprob;   /* natural log of the probability */
} sampler_logprob;

/* Log-softmax of raw logits[n_vocab] (call it before sampler_sample, which modifies
 * them). Stores token's log-probability in *token_logprob (-INFINITY if its logit is
 * -INFINITY or NaN) and the min(n_top, tokens with a finite logit) most likely tokens in
 * top[], most likely first, ties by lower id, their count in *n_top_out. n_top must be in
 * [0, SAMPLER_MAX_TOP_LOGPROBS]; top may be NULL when n_top is 0. Returns HEARTH_ERR_INVALID
 * for a bad argument or when no logit is finite. Allocates nothing. */
hearth_status sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int n_top,
                               float *token_logprob, sampler_logprob *top, int *n_top_out,
                               hearth_err *err);

#endif
