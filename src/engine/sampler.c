/* The sampler chain (order and semantics in sampler.h): parameter checks, penalty
 * history, candidate filtering and the seeded draw. Everything sampler_sample touches is
 * allocated by sampler_new; it must never allocate, sort the whole vocabulary when top-k
 * is set, or let NaN reach a comparison that decides a token. */
#include "engine/sampler.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/sampler_rng.h"

typedef struct sampler_cand {
    int32_t id;
    float logit;
    float p;
} sampler_cand;

struct sampler {
    sampler_params params;    /* bias points at the sampler's own copy */
    int32_t n_vocab;
    sampler_rng rng;
    sampler_cand *cand;       /* [n_vocab] candidate scratch */

    bool penalties_on;
    int32_t *counts;          /* [n_vocab] occurrences in the window; NULL when penalties are off */
    int32_t *recent;          /* window > 0: ring [window] of the last accepted tokens;
                                 window -1: [n_vocab] distinct tokens in first-seen order */
    int32_t n_recent;         /* tokens held in recent */
    int32_t ring_head;        /* window > 0: slot of the oldest token once the ring is full */
};

void sampler_params_default(sampler_params *p) {
    *p = (sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = SAMPLER_DEFAULT_SEED,
        .bias = NULL,
        .n_bias = 0,
    };
}

uint64_t sampler_random_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed) return seed;
    uint64_t x = clock_mono_ns() ^ ((uint64_t)clock_unix_s() << 32);
    return sampler_splitmix64(&x);
}

static hearth_status sampler_check(const sampler_params *p, int32_t n_vocab, hearth_err *err) {
    if (n_vocab <= 0)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: n_vocab must be positive, got %d", n_vocab);
    if (!isfinite(p->temperature))
        return err_set(err, HEARTH_ERR_INVALID, "sampler: temperature must be a finite number");
    if (isnan(p->top_p) || p->top_p < 0)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: top_p must be >= 0, got %g", p->top_p);
    if (isnan(p->min_p) || p->min_p > 1)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: min_p must be <= 1, got %g", p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        return err_set(err, HEARTH_ERR_INVALID,
                       "sampler: repeat_penalty must be a finite number > 0, got %g", p->repeat_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > SAMPLER_MAX_WINDOW)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: repeat_last_n must be -1 or in [0, %d], got %d",
                       SAMPLER_MAX_WINDOW, p->repeat_last_n);
    if (!isfinite(p->presence_penalty))
        return err_set(err, HEARTH_ERR_INVALID, "sampler: presence_penalty must be a finite number");
    if (!isfinite(p->frequency_penalty))
        return err_set(err, HEARTH_ERR_INVALID, "sampler: frequency_penalty must be a finite number");
    if (p->n_bias > 0 && !p->bias)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: logit bias has %zu entries but no array", p->n_bias);
    if (p->n_bias > (size_t)n_vocab)
        return err_set(err, HEARTH_ERR_INVALID, "sampler: logit bias has %zu entries, more than the %d tokens",
                       p->n_bias, n_vocab);
    for (size_t i = 0; i < p->n_bias; i++) {
        const sampler_bias *b = &p->bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return err_set(err, HEARTH_ERR_INVALID, "sampler: logit bias token %d is outside the vocabulary [0, %d)",
                           b->token, n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return err_set(err, HEARTH_ERR_INVALID,
                           "sampler: logit bias for token %d must be a number or -infinity", b->token);
    }
    return HEARTH_OK;
}

sampler *sampler_new(const sampler_params *p, int32_t n_vocab, hearth_err *err) {
    if (!p) {
        err_set(err, HEARTH_ERR_INVALID, "sampler: no parameters");
        return NULL;
    }
    if (sampler_check(p, n_vocab, err) != HEARTH_OK) return NULL;
    sampler *s = mem_calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->params = *p;
    s->params.bias = NULL;
    s->n_vocab = n_vocab;
    if (p->n_bias > 0) {
        sampler_bias *copy = mem_alloc_array(p->n_bias, sizeof *copy);
        if (!copy) goto nomem;
        memcpy(copy, p->bias, p->n_bias * sizeof *copy);
        s->params.bias = copy;
    }
    s->cand = mem_alloc_array((size_t)n_vocab, sizeof *s->cand);
    if (!s->cand) goto nomem;
    s->penalties_on = p->repeat_last_n != 0 &&
                      (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
    if (s->penalties_on) {
        size_t n_recent = p->repeat_last_n > 0 ? (size_t)p->repeat_last_n : (size_t)n_vocab;
        s->counts = mem_calloc((size_t)n_vocab, sizeof *s->counts);
        s->recent = mem_alloc_array(n_recent, sizeof *s->recent);
        if (!s->counts || !s->recent) goto nomem;
    }
    sampler_rng_seed(&s->rng, p->seed);
    return s;
nomem:
    sampler_free(s);
    err_set(err, HEARTH_ERR_NOMEM, "sampler: out of memory for a vocabulary of %d tokens", n_vocab);
    return NULL;
}

void sampler_free(sampler *s) {
    if (!s) return;
    mem_free((void *)s->params.bias);
    mem_free(s->cand);
    mem_free(s->counts);
    mem_free(s->recent);
    mem_free(s);
}

void sampler_reset(sampler *s) {
    if (s->penalties_on) {
        memset(s->counts, 0, (size_t)s->n_vocab * sizeof *s->counts);
        s->n_recent = 0;
        s->ring_head = 0;
    }
    sampler_rng_seed(&s->rng, s->params.seed);
}

void sampler_accept(sampler *s, int32_t token) {
    if (!s->penalties_on || token < 0 || token >= s->n_vocab) return;
    int32_t window = s->params.repeat_last_n;
    if (window < 0) {
        if (s->counts[token] == 0) s->recent[s->n_recent++] = token;
        if (s->counts[token] < INT32_MAX) s->counts[token]++;
        return;
    }
    if (s->n_recent < window) {
        s->recent[s->n_recent++] = token;
    } else {
        s->counts[s->recent[s->ring_head]]--;
        s->recent[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % window;
    }
    s->counts[token]++;
}

static void sampler_penalize(const sampler_params *p, float *logit, int32_t count) {
    float v = *logit;
    v = v > 0 ? v / p->repeat_penalty : v * p->repeat_penalty;
    *logit = v - ((float)count * p->frequency_penalty + p->presence_penalty);
}

/* Each distinct token of the window is penalised once. In a ring a token may appear many
 * times, so its count is negated while visited and restored afterwards. */
static void sampler_apply_penalties(sampler *s, float *logits) {
    if (s->params.repeat_last_n < 0) {
        for (int32_t i = 0; i < s->n_recent; i++) {
            int32_t t = s->recent[i];
            sampler_penalize(&s->params, &logits[t], s->counts[t]);
        }
        return;
    }
    for (int32_t i = 0; i < s->n_recent; i++) {
        int32_t t = s->recent[i];
        if (s->counts[t] > 0) {
            sampler_penalize(&s->params, &logits[t], s->counts[t]);
            s->counts[t] = -s->counts[t];
        }
    }
    for (int32_t i = 0; i < s->n_recent; i++) {
        int32_t t = s->recent[i];
        if (s->counts[t] < 0) s->counts[t] = -s->counts[t];
    }
}

/* Bias, penalties, then NaN -> -inf and +inf -> FLT_MAX so later steps compare numbers. */
static void sampler_adjust_logits(sampler *s, float *logits) {
    for (size_t i = 0; i < s->params.n_bias; i++) logits[s->params.bias[i].token] += s->params.bias[i].bias;
    if (s->penalties_on) sampler_apply_penalties(s, logits);
    for (int32_t t = 0; t < s->n_vocab; t++) {
        if (isnan(logits[t])) logits[t] = -INFINITY;
        else if (logits[t] == INFINITY) logits[t] = FLT_MAX;
    }
}

static int32_t sampler_argmax(const float *logits, int32_t n_vocab) {
    int32_t best = SAMPLER_NO_TOKEN;
    float best_logit = -INFINITY;
    for (int32_t t = 0; t < n_vocab; t++)
        if (logits[t] > best_logit) {
            best_logit = logits[t];
            best = t;
        }
    return best;
}

/* Strict total order: higher logit first, then lower id. */
static inline bool sampler_better(const sampler_cand *a, const sampler_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void sampler_swap(sampler_cand *c, size_t i, size_t j) {
    sampler_cand tmp = c[i];
    c[i] = c[j];
    c[j] = tmp;
}

/* Restores the heap property below i in a heap whose root is its worst element. */
static void sampler_sift_down(sampler_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && sampler_better(&h[worst], &h[l])) worst = l;
        if (r < n && sampler_better(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        sampler_swap(h, i, worst);
        i = worst;
    }
}

/* Moves the k best of c[0..n) to c[0..k), best first, in O(n log k): a heap of the k
 * best so far with the worst at its root, then a heap sort of those k. */
static void sampler_select_top(sampler_cand *c, size_t n, size_t k) {
    for (size_t i = k / 2; i-- > 0;) sampler_sift_down(c, k, i);
    for (size_t i = k; i < n; i++)
        if (sampler_better(&c[i], &c[0])) {
            sampler_swap(c, 0, i);
            sampler_sift_down(c, k, 0);
        }
    for (size_t end = k; end-- > 1;) {
        sampler_swap(c, 0, end);
        sampler_sift_down(c, end, 0);
    }
}

static void sampler_softmax(sampler_cand *c, size_t n) {
    float max = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].logit - max);
        sum += c[i].p;
    }
    for (size_t i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* On candidates sorted best first: the length of the smallest prefix whose mass reaches
 * top_p, or 0 when even all n do not (rounding). */
static size_t sampler_nucleus_len(const sampler_cand *c, size_t n, float top_p) {
    double mass = 0;
    for (size_t i = 0; i < n; i++) {
        mass += c[i].p;
        if (mass >= top_p) return i + 1;
    }
    return 0;
}

/* Order-preserving maps between finite floats and unsigned integers. */
static uint32_t sampler_float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static float sampler_key_float(uint32_t k) {
    uint32_t u = (k & 0x80000000u) ? k & 0x7FFFFFFFu : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double sampler_mass_from(const sampler_cand *c, size_t n, float logit) {
    double mass = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit >= logit) mass += c[i].p;
    return mass;
}

#define SAMPLER_BUCKETS 256

/* Narrows [*lo, *hi], a range of logits holding the top-p cut, to the logits of the one
 * histogram bucket the cut falls in; false when that is not possible (one value left). */
static bool sampler_narrow_cut(const sampler_cand *c, size_t n, float top_p, float *lo, float *hi) {
    if (*lo >= *hi) return false;
    double mass[SAMPLER_BUCKETS] = {0}, above = 0;
    float b_min[SAMPLER_BUCKETS], b_max[SAMPLER_BUCKETS];
    for (int b = 0; b < SAMPLER_BUCKETS; b++) {
        b_min[b] = INFINITY;
        b_max[b] = -INFINITY;
    }
    double base = *lo, scale = SAMPLER_BUCKETS / ((double)*hi - base);
    for (size_t i = 0; i < n; i++) {
        float l = c[i].logit;
        if (l > *hi) above += c[i].p;
        if (l > *hi || l < *lo) continue;
        int b = (int)(((double)l - base) * scale);
        b = b < SAMPLER_BUCKETS ? b : SAMPLER_BUCKETS - 1;
        mass[b] += c[i].p;
        b_min[b] = l < b_min[b] ? l : b_min[b];
        b_max[b] = l > b_max[b] ? l : b_max[b];
    }
    for (int b = SAMPLER_BUCKETS - 1; b >= 0; b--) {
        if (above + mass[b] >= top_p && mass[b] > 0) {
            *lo = b_min[b];
            *hi = b_max[b];
            return true;
        }
        above += mass[b];
    }
    return false;
}

/* Top-p on unsorted candidates, keeping the set the sorted rule keeps without sorting a
 * large nucleus. Histogram passes narrow the range of the cut (the logit of the last
 * candidate kept), a bisection over the logits' ordered bit patterns pins it; all
 * candidates above it stay, and of those equal to it the lowest ids until the mass
 * reaches top_p. The kept candidates end up in c[0..returned) in a fixed order. */
static size_t sampler_top_p_bisect(sampler_cand *c, size_t n, float top_p) {
    float lo_logit = c[0].logit, hi_logit = c[0].logit;
    for (size_t i = 1; i < n; i++) {
        if (c[i].logit < lo_logit) lo_logit = c[i].logit;
        if (c[i].logit > hi_logit) hi_logit = c[i].logit;
    }
    if (sampler_mass_from(c, n, lo_logit) < top_p) return n;
    float lo_narrow = lo_logit, hi_narrow = hi_logit;
    for (int round = 0; round < 4 && sampler_narrow_cut(c, n, top_p, &lo_narrow, &hi_narrow); round++) {}
    if (sampler_mass_from(c, n, lo_narrow) >= top_p) {   /* rounding could disagree: then search it all */
        lo_logit = lo_narrow;
        hi_logit = hi_narrow;
    }
    uint32_t lo = sampler_float_key(lo_logit), hi = sampler_float_key(hi_logit);
    while (lo < hi) {   /* invariant: the mass from lo reaches top_p */
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (sampler_mass_from(c, n, sampler_key_float(mid)) >= top_p) lo = mid;
        else hi = mid - 1;
    }
    float cut = sampler_key_float(lo);
    size_t above = 0;
    double mass = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit > cut) {
            mass += c[i].p;
            sampler_swap(c, above++, i);
        }
    size_t ties_end = above;
    for (size_t i = above; i < n; i++)
        if (c[i].logit == cut) sampler_swap(c, ties_end++, i);
    size_t n_ties = ties_end - above, take = 0;
    while (take < n_ties && (take == 0 || mass < top_p)) mass += c[above + take++].p;
    if (take < n_ties) sampler_select_top(c + above, n_ties, take);   /* equal logits: lowest ids */
    return above + take;
}

/* Top-p on unsorted candidates: a sorted head of 64, then 512, usually holds the mass;
 * a flat distribution over a large vocabulary falls through to the bisection. */
static size_t sampler_top_p(sampler_cand *c, size_t n, float top_p) {
    for (size_t head = 64; head <= 512; head *= 8) {
        if (head >= n) {
            sampler_select_top(c, n, n);
            size_t len = sampler_nucleus_len(c, n, top_p);
            return len ? len : n;
        }
        sampler_select_top(c, n, head);
        size_t len = sampler_nucleus_len(c, head, top_p);
        if (len) return len;
    }
    return sampler_top_p_bisect(c, n, top_p);
}

static size_t sampler_min_p(sampler_cand *c, size_t n, float min_p) {
    float p_max = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].p > p_max) p_max = c[i].p;
    float threshold = min_p * p_max;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].p >= threshold) c[kept++] = c[i];
    return kept;
}

/* Reweights by temperature (the max-logit candidate gets weight 1), then draws. */
static int32_t sampler_draw(sampler *s, sampler_cand *c, size_t n) {
    float temp = s->params.temperature;
    float max = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        if (temp != 1.0f) c[i].p = expf((c[i].logit - max) / temp);
        total += c[i].p;
    }
    double u = sampler_rng_uniform(&s->rng) * total, cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i].p <= 0) continue;
        cum += c[i].p;
        last = i;
        if (u < cum) return c[i].id;
    }
    return c[last].id;
}

int32_t sampler_sample(sampler *s, float *logits) {
    const sampler_params *p = &s->params;
    sampler_adjust_logits(s, logits);
    if (p->temperature <= 0) return sampler_argmax(logits, s->n_vocab);

    sampler_cand *c = s->cand;
    size_t n = 0;
    for (int32_t t = 0; t < s->n_vocab; t++)
        if (logits[t] > -INFINITY) c[n++] = (sampler_cand){.id = t, .logit = logits[t]};
    if (n == 0) return SAMPLER_NO_TOKEN;

    bool sorted = false;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        sampler_select_top(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sorted = true;
    }
    sampler_softmax(c, n);
    if (p->top_p < 1.0f) {
        size_t len = sorted ? sampler_nucleus_len(c, n, p->top_p) : sampler_top_p(c, n, p->top_p);
        if (len) n = len;
    }
    if (p->min_p > 0) n = sampler_min_p(c, n, p->min_p);
    return sampler_draw(s, c, n);
}
