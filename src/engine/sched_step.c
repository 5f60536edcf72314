/* One scheduler step: end cancelled and expired sequences, batch one decode token per
 * running sequence and then prompt chunks (earliest admitted first, so prompts finish one
 * after another in arrival order) up to the step's prefill budget, cutting only prompts
 * longer than what is left of it when nothing else was taken, run one forward pass
 * (a decode-only pass stops early for an arriving prompt and is redone with it),
 * and sample, detokenize, match stops and publish for every sequence that got logits.
 * Scheduler thread only; it never waits for a consumer. */
#include <sched.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "engine/sched_internal.h"

#define RATE_WEIGHT 0.2 /* weight of the newest step in the throughput averages */

void step_end(sched *s, int32_t slot, sched_finish why, const hearth_err *err) {
    sched_seq *q = s->slots[slot].q;
    if (why == SCHED_FINISH_ERROR) kv_seq_clear(s->kv, slot);
    else prefix_park(s, slot);
    s->slots[slot] = (sched_slot){0};
    pthread_mutex_lock(&s->mu);
    s->running--;
    /* its work leaves the admission estimate in the same hold: whoever sees the slot
       free (sched_stats, /metrics) also sees no wait for it */
    s->running_prompt -= s->slot_prompt_left[slot];
    s->running_gen -= s->slot_gen_left[slot];
    s->slot_prompt_left[slot] = s->slot_gen_left[slot] = 0;
    pthread_mutex_unlock(&s->mu);
    seq_finish(q, why, err);
}

static void end_with(sched *s, int32_t slot, sched_finish why, hearth_status st, const char *msg) {
    hearth_err e;
    err_set(&e, st, "%s", msg);
    step_end(s, slot, why, &e);
}

static void end_cancelled_and_expired(sched *s) {
    uint64_t now = clock_mono_ns();
    for (int32_t i = 0; i < s->p.n_slots; i++) {
        sched_seq *q = s->slots[i].q;
        if (!q) continue;
        if (atomic_load(&q->cancel))
            end_with(s, i, SCHED_FINISH_CANCELLED, HEARTH_ERR_CANCELLED, "cancelled by the caller");
        else if (q->deadline_ns && now >= q->deadline_ns)
            end_with(s, i, SCHED_FINISH_TIMEOUT, HEARTH_ERR_TIMEOUT, "the request's deadline passed");
    }
}

/* True when slot can take n more positions on top of the `pages` already promised this
 * step, evicting cached prefixes if needed; adds its pages to *pages. Eviction may
 * unshare the slot's last page, so its need is counted again afterwards. */
static bool reserve(sched *s, int32_t slot, int64_t n, int64_t *pages) {
    int64_t need = kv_pages_needed(s->kv, slot, n);
    if (kv_free_pages(s->kv) < *pages + need) {
        prefix_make_room(s, *pages + need);
        need = kv_pages_needed(s->kv, slot, n);
        if (kv_free_pages(s->kv) < *pages + need) return false;
    }
    *pages += need;
    return true;
}

/* Next prefilling slot by admission order after `after` (0: the first), or -1. */
static int32_t next_prefill(const sched *s, uint64_t after) {
    int32_t best = -1;
    for (int32_t i = 0; i < s->p.n_slots; i++) {
        const sched_slot *sl = &s->slots[i];
        if (!sl->q || sl->decoding || sl->admitted <= after) continue;
        if (best < 0 || sl->admitted < s->slots[best].admitted) best = i;
    }
    return best;
}

typedef struct step_counts {
    int32_t decode, prefill, outputs;
} step_counts;

static step_counts build_batch(sched *s) {
    step_counts c = {0};
    model_batch *b = &s->batch;
    model_batch_clear(b);
    int64_t pages = 0;
    for (int32_t i = 0; i < s->p.n_slots; i++) {
        sched_slot *sl = &s->slots[i];
        if (!sl->q || !sl->decoding) continue;
        if (!reserve(s, i, 1, &pages)) {
            end_with(s, i, SCHED_FINISH_LENGTH, HEARTH_ERR_RANGE, "the KV cache is full");
            continue;
        }
        model_batch_add(b, sl->next, (int32_t)kv_seq_len(s->kv, i), i, true);
        s->batch_slot[c.outputs++] = i;
        c.decode++;
    }
    uint64_t after = 0;
    int32_t i;
    int64_t cap = b->cap, budget = s->p.prefill_tokens;
    if (budget > 0 && b->n + budget < cap) cap = b->n + budget;
    int64_t room = cap - b->n;
    while (b->n < cap && (i = next_prefill(s, after)) >= 0) {
        sched_seq *q = s->slots[i].q;
        after = s->slots[i].admitted;
        int64_t done = kv_seq_len(s->kv, i), left = q->n_prompt - done;
        int64_t chunk = left < cap - b->n ? left : cap - b->n;
        /* A prompt that fits whole in a step waits for the next one rather than being cut:
           cut, it would still wait for that step, and its tokens would delay the first token
           of the prompts finishing in this one. */
        if (chunk < left && c.prefill > 0 && left <= room) break;
        if (!reserve(s, i, chunk, &pages)) break;
        for (int64_t t = done; t < done + chunk; t++)
            model_batch_add(b, q->tokens[t], (int32_t)t, i, t == q->n_prompt - 1);
        if (done + chunk == q->n_prompt) s->batch_slot[c.outputs++] = i;
        c.prefill += (int32_t)chunk;
    }
    return c;
}

/* Samples from slot's logits row and publishes the token; ends the sequence when done. */
static void take_token(sched *s, int32_t slot, const float *raw) {
    sched_slot *sl = &s->slots[slot];
    sched_seq *q = sl->q;
    hearth_err err;
    memcpy(s->logits, raw, (size_t)s->n_vocab * sizeof(float));
    int32_t tok = sampler_sample(q->smp, s->logits);
    if (tok == SAMPLER_NO_TOKEN) {
        end_with(s, slot, SCHED_FINISH_ERROR, HEARTH_ERR_INTERNAL,
                 "no token could be sampled: every logit is -inf or NaN");
        return;
    }
    sampler_accept(q->smp, tok);
    float lp = 0.0f;
    int n_top = 0;
    if (q->n_logprobs >= 0 &&
        sampler_logprobs(raw, s->n_vocab, tok, q->n_logprobs, &lp, s->top_tmp, &n_top, NULL) != HEARTH_OK)
        n_top = 0;
    sl->decoding = true;
    bool eog = tok_is_eog(s->v, tok);
    if (eog && !q->ignore_eos) {
        step_end(s, slot, SCHED_FINISH_STOP, NULL);
        return;
    }
    q->tokens[q->n_tokens++] = tok;
    q->n_gen++;
    char *text, none[1] = "";
    size_t len;
    const char *emit;
    size_t emit_len;
    bool stopped = false;
    hearth_status st = HEARTH_OK;
    if (eog) { /* kept by ignore_eos: never text, even when listed as shown */
        text = none;
        len = 0;
    } else {
        st = tok_stream_push(q->stream, tok, &text, &len, &err);
    }
    if (!st) st = stop_matcher_feed(q->stops, text, len, &emit, &emit_len, &stopped);
    if (st) {
        if (st == HEARTH_ERR_NOMEM) err_set(&err, st, "scheduler: out of memory for the generated text");
        step_end(s, slot, SCHED_FINISH_ERROR, &err);
        return;
    }
    if (!seq_push(q, tok, lp, s->top_tmp, n_top, emit, emit_len, &err))
        step_end(s, slot, err.status == HEARTH_ERR_CANCELLED ? SCHED_FINISH_CANCELLED : SCHED_FINISH_ERROR, &err);
    else if (stopped) step_end(s, slot, SCHED_FINISH_STOP, NULL);
    else if (q->n_gen >= q->max_tokens || kv_seq_len(s->kv, slot) >= s->p.n_ctx)
        step_end(s, slot, SCHED_FINISH_LENGTH, NULL);
    else sl->next = tok;
}

static double blend(double avg, double sample) {
    return avg > 0 ? avg + RATE_WEIGHT * (sample - avg) : sample;
}

/* Publishes throughput, step time, work left in the slots (per slot, for admission) and
 * cache occupancy for other threads. */
static void publish(sched *s, step_counts c, double seconds) {
    int64_t total = kv_cache_config(s->kv)->n_pages;
    int64_t prompt_left = 0, gen_left = 0;
    pthread_mutex_lock(&s->mu);
    for (int32_t i = 0; i < s->p.n_slots; i++) {
        const sched_seq *q = s->slots[i].q;
        int64_t p = 0, g = 0;
        if (q) {
            if (!s->slots[i].decoding) p = q->n_prompt - kv_seq_len(s->kv, i);
            g = q->cap_tokens - q->n_prompt - q->n_gen;
        }
        s->slot_prompt_left[i] = p;
        s->slot_gen_left[i] = g;
        prompt_left += p;
        gen_left += g;
    }
    if (seconds > 0 && c.decode > 0) s->decode_tps = blend(s->decode_tps, c.decode / seconds);
    if (seconds > 0 && c.prefill > 0) s->prefill_tps = blend(s->prefill_tps, c.prefill / seconds);
    if (seconds > 0 && c.decode > 0 && c.prefill == 0) {
        s->decode_step_s = s->decode_step_pure ? blend(s->decode_step_s, seconds) : seconds;
        s->decode_step_pure = true;
    } else if (seconds > 0 && c.decode + c.prefill > 0 && !s->decode_step_pure) {
        s->decode_step_s = seconds; /* stand-in until a decode-only step: a step with a prompt is longer */
    }
    s->running_prompt = prompt_left;
    s->running_gen = gen_left;
    s->kv_pages_total = total;
    s->kv_pages_used = total - kv_free_pages(s->kv);
    if (c.decode + c.prefill > 0) s->steps++;
    pthread_mutex_unlock(&s->mu);
}

static bool prompt_arrived(void *arg) { return atomic_load_explicit(&((sched *)arg)->arrival, memory_order_relaxed); }

/* A step without prompt tokens stops for an arriving prompt, so that the prompt's first
 * token need not wait for it: the step is redone with the prompt (its tokens' results do
 * not depend on the batch). Never two steps in a row, so decoding always advances. */
static bool interrupt_for_arrival(sched *s, step_counts c) {
    bool may = c.prefill == 0 && !s->interrupted_last;
    model_ctx_set_interrupt(s->ctx, may ? prompt_arrived : NULL, s);
    return may;
}

bool step_run(sched *s) {
    end_cancelled_and_expired(s);
    step_counts c = build_batch(s);
    if (s->batch.n == 0) {
        publish(s, c, 0);
        return false;
    }
    double t0 = clock_mono_s();
    hearth_err err;
    model_lora_map map;
    bool may_interrupt = interrupt_for_arrival(s, c);
    hearth_status st = model_forward_lora(s->ctx, s->kv, &s->batch, sched_lora_map(s, &map), &err);
    s->interrupted_last = may_interrupt && st == HEARTH_ERR_CANCELLED;
    if (s->interrupted_last) {
        pthread_mutex_lock(&s->mu);
        s->steps_interrupted++;
        pthread_mutex_unlock(&s->mu);
        return true;
    }
    if (st) {
        for (int32_t t = 0; t < s->batch.n; t++)
            if (s->slots[s->batch.seq[t]].q) step_end(s, s->batch.seq[t], SCHED_FINISH_ERROR, &err);
        publish(s, c, 0);
        return true;
    }
    for (int32_t r = 0; r < c.outputs; r++) take_token(s, s->batch_slot[r], model_logits(s->ctx, r));
    publish(s, c, clock_mono_s() - t0);
    /* A consumer woken by these tokens may be queued on this thread's core, behind the
       next step: let it write them first (measured: the top 1% of first-token times lost
       1.4-1.6 ms there under load; RELIABILITY.md, session 5). Returns at once when nothing waits. */
    if (c.outputs > 0) sched_yield();
    return true;
}
