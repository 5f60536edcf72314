/* A scheduled sequence: request validation at submit time, and the bounded hand-over of
 * generated output from the scheduler thread to the consumer (sched_next, sched_cancel,
 * sched_release). The scheduler only appends under the sequence's lock and never waits
 * for the consumer; a consumer that leaves too much unread gets its sequence cancelled. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "base/checked.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/sched_internal.h"

static void buf_free(sched_buf *b) {
    mem_free(b->text);
    mem_free(b->tokens);
    mem_free(b->logprobs);
    mem_free(b->top);
}

/* The scheduler's share of a sequence: freed when it is done with it. */
static void seq_drop_run_state(sched_seq *q) {
    sampler_free(q->smp);
    tok_stream_free(q->stream);
    stop_matcher_free(q->stops);
    mem_free(q->tokens);
    sched_lora_clear(&q->lora);
    q->smp = NULL;
    q->stream = NULL;
    q->stops = NULL;
    q->tokens = NULL;
}

static void seq_destroy(sched_seq *q) {
    seq_drop_run_state(q);
    buf_free(&q->pend);
    buf_free(&q->out);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    mem_free(q);
}

/* Drops one reference under the lock; frees q when it was the last. */
static void seq_unref_locked(sched_seq *q) {
    bool last = --q->refs == 0;
    pthread_mutex_unlock(&q->mu);
    if (last) seq_destroy(q);
}

static hearth_status check_request(const sched *s, const sched_request *r, hearth_err *err) {
    if (!r->prompt || r->n_prompt == 0) return err_set(err, HEARTH_ERR_INVALID, "the prompt has no tokens");
    if (r->max_tokens <= 0)
        return err_set(err, HEARTH_ERR_INVALID, "max_tokens must be positive (got %d)", r->max_tokens);
    if (r->n_logprobs < -1 || r->n_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return err_set(err, HEARTH_ERR_INVALID, "top logprobs must be between 0 and %d (got %d)",
                       SAMPLER_MAX_TOP_LOGPROBS, r->n_logprobs);
    if (!(r->max_queue_wait_s >= 0 && r->max_queue_wait_s <= SCHED_MAX_QUEUE_WAIT_S))
        return err_set(err, HEARTH_ERR_INVALID, "max_queue_wait must be 0 to %d s (got %g)", SCHED_MAX_QUEUE_WAIT_S,
                       r->max_queue_wait_s);
    if (r->n_shown_control > SCHED_MAX_SHOWN_CONTROL || (r->n_shown_control && !r->shown_control))
        return err_set(err, HEARTH_ERR_INVALID, "%zu shown control tokens: at most %d, in an array",
                       r->n_shown_control, SCHED_MAX_SHOWN_CONTROL);
    for (size_t i = 0; i < r->n_shown_control; i++)
        if (!tok_is_control(s->v, r->shown_control[i]))
            return err_set(err, HEARTH_ERR_INVALID, "shown control token %zu (id %d) is not a control token of the vocabulary",
                           i, r->shown_control[i]);
    if ((int64_t)r->n_prompt > s->p.n_ctx || r->n_prompt > (size_t)INT32_MAX)
        return err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens does not fit the context of %lld positions",
                       r->n_prompt, (long long)s->p.n_ctx);
    for (size_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= s->n_vocab)
            return err_set(err, HEARTH_ERR_INVALID, "prompt token %zu (id %d) is outside the vocabulary (%d)", i,
                           r->prompt[i], s->n_vocab);
    return HEARTH_OK;
}

static hearth_status seq_sync_init(sched_seq *q, hearth_err *err) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot make a condition variable");
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_cond_init(&q->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok) return err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot make a condition variable");
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        pthread_cond_destroy(&q->cv);
        return err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot make a mutex");
    }
    return HEARTH_OK;
}

hearth_status seq_new(const sched *s, const sched_request *r, sched_seq **out, hearth_err *err) {
    *out = NULL;
    hearth_status st = check_request(s, r, err);
    if (st) return st;
    sched_seq *q = mem_calloc(1, sizeof *q);
    if (!q) return err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for a sequence");
    if ((st = seq_sync_init(q, err))) {
        mem_free(q);
        return st;
    }
    q->refs = 2;
    atomic_init(&q->cancel, false);
    q->max_unread = s->p.max_unread;
    q->n_prompt = (int64_t)r->n_prompt;
    q->max_tokens = r->max_tokens;
    q->ignore_eos = r->ignore_eos;
    q->n_logprobs = r->n_logprobs;
    q->deadline_ns = r->deadline_ns;
    q->max_queue_wait_s = r->max_queue_wait_s;
    /* generation stops once the token just sampled cannot be placed in the context */
    int64_t cap = q->n_prompt + r->max_tokens;
    q->cap_tokens = cap < s->p.n_ctx + 1 ? cap : s->p.n_ctx + 1;
    q->tokens = mem_alloc_array((size_t)q->cap_tokens, sizeof(int32_t));
    if (!q->tokens) st = err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for %lld tokens",
                                 (long long)q->cap_tokens);
    if (!st) st = sched_lora_copy(s, &r->lora, &q->lora, err);
    if (!st && !(q->smp = sampler_new(&r->sampling, s->n_vocab, err))) st = err ? err->status : HEARTH_ERR_INVALID;
    if (!st && !(q->stops = stop_matcher_new(r->stop, r->n_stop, err))) st = err ? err->status : HEARTH_ERR_INVALID;
    if (!st && !(q->stream = tok_stream_new(s->v, r->shown_control, r->n_shown_control)))
        st = err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for the detokenizer");
    if (st) {
        seq_destroy(q);
        return st;
    }
    memcpy(q->tokens, r->prompt, r->n_prompt * sizeof(int32_t));
    q->n_tokens = q->n_prompt;
    for (int64_t i = 0; i < q->n_prompt; i++) sampler_accept(q->smp, q->tokens[i]);
    *out = q;
    return HEARTH_OK;
}

void seq_discard(sched_seq *q) { seq_destroy(q); }

static bool buf_reserve(sched_buf *b, int n_top, bool logprobs, size_t text_len) {
    if (b->n == b->n_cap) {
        int32_t cap = b->n_cap ? b->n_cap * 2 : 16;
        int32_t *t = mem_realloc_array(b->tokens, (size_t)cap, sizeof *t);
        if (!t) return false;
        b->tokens = t;
        if (logprobs) {
            float *lp = mem_realloc_array(b->logprobs, (size_t)cap, sizeof *lp);
            if (!lp) return false;
            b->logprobs = lp;
        }
        if (n_top > 0) {
            sched_top *top = mem_realloc_array(b->top, (size_t)cap * (size_t)n_top, sizeof *top);
            if (!top) return false;
            b->top = top;
        }
        b->n_cap = cap;
    }
    size_t need;
    if (!ck_add(b->len, text_len + 1, &need)) return false;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need) cap *= 2;
        char *t = mem_realloc(b->text, cap);
        if (!t) return false;
        b->text = t;
        b->cap = cap;
    }
    return true;
}

bool seq_push(sched_seq *q, int32_t token, float logprob, const sampler_logprob *top, int n_top,
              const char *text, size_t len, hearth_err *err) {
    pthread_mutex_lock(&q->mu);
    sched_buf *b = &q->pend;
    int want_top = q->n_logprobs > 0 ? q->n_logprobs : 0;
    bool ok = buf_reserve(b, want_top, q->n_logprobs >= 0, len);
    if (!ok) {
        pthread_mutex_unlock(&q->mu);
        err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for generated output");
        return false;
    }
    b->tokens[b->n] = token;
    if (q->n_logprobs >= 0) b->logprobs[b->n] = logprob;
    for (int i = 0; i < want_top; i++)
        b->top[(size_t)b->n * (size_t)want_top + (size_t)i] =
            i < n_top ? (sched_top){top[i].token, top[i].logprob} : (sched_top){-1, -INFINITY};
    b->n++;
    memcpy(b->text + b->len, text, len);
    b->len += len;
    b->text[b->len] = '\0';
    bool over = b->n > q->max_unread;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (over)
        err_set(err, HEARTH_ERR_CANCELLED, "cancelled: the consumer left more than %d tokens unread", q->max_unread);
    return !over;
}

/* Appends the text released at the end (held-back bytes); false on NOMEM. */
static bool seq_push_text(sched_seq *q, const char *text, size_t len) {
    if (len == 0) return true;
    pthread_mutex_lock(&q->mu);
    sched_buf *b = &q->pend;
    size_t need;
    bool ok = ck_add(b->len, len + 1, &need);
    if (ok && need > b->cap) {
        char *t = mem_realloc(b->text, need);
        if ((ok = t != NULL)) {
            b->text = t;
            b->cap = need;
        }
    }
    if (ok) {
        memcpy(b->text + b->len, text, len);
        b->len += len;
        b->text[b->len] = '\0';
    }
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* Releases what the detokenizer and the stop matcher still hold; a stop string may
 * still match in it. False on NOMEM. */
static bool seq_release_tail(sched_seq *q, bool *stopped) {
    *stopped = stop_matcher_matched(q->stops) >= 0;
    if (*stopped) return true;
    char *tail;
    size_t tail_len;
    const char *emit;
    size_t emit_len;
    if (tok_stream_flush(q->stream, &tail, &tail_len, NULL) != HEARTH_OK) return false;
    if (tail_len > 0) {
        if (stop_matcher_feed(q->stops, tail, tail_len, &emit, &emit_len, stopped) != HEARTH_OK) return false;
        if (!seq_push_text(q, emit, emit_len)) return false;
    }
    if (*stopped) return true;
    stop_matcher_finish(q->stops, &emit, &emit_len);
    return seq_push_text(q, emit, emit_len);
}

void seq_finish(sched_seq *q, sched_finish why, const hearth_err *err) {
    hearth_err e = {0};
    if (err) e = *err;
    if (why == SCHED_FINISH_STOP || why == SCHED_FINISH_LENGTH || why == SCHED_FINISH_TIMEOUT) {
        bool stopped;
        if (!seq_release_tail(q, &stopped)) {
            why = SCHED_FINISH_ERROR;
            err_set(&e, HEARTH_ERR_NOMEM, "scheduler: out of memory for the last output");
        } else if (stopped && why == SCHED_FINISH_LENGTH) {
            why = SCHED_FINISH_STOP;
        }
    }
    int stop_index = why == SCHED_FINISH_STOP && q->stops ? stop_matcher_matched(q->stops) : -1;
    seq_drop_run_state(q);
    pthread_mutex_lock(&q->mu);
    q->finish = why;
    q->stop_index = stop_index;
    q->err = e;
    q->usage_prompt = q->n_prompt;
    q->usage_completion = q->n_gen;
    q->usage_cached = q->n_cached;
    pthread_cond_broadcast(&q->cv);
    seq_unref_locked(q);
}

bool sched_next(sched_seq *q, sched_event *ev, int timeout_ms) {
    memset(ev, 0, sizeof *ev);
    ev->text = "";
    ev->stop_index = -1;
    struct timespec until;
    if (timeout_ms >= 0) clock_timespec_in(CLOCK_MONOTONIC, timeout_ms, &until);
    pthread_mutex_lock(&q->mu);
    while (!q->delivered && q->pend.n == 0 && q->pend.len == 0 && q->finish == SCHED_FINISH_NONE) {
        if (timeout_ms < 0) pthread_cond_wait(&q->cv, &q->mu);
        else if (pthread_cond_timedwait(&q->cv, &q->mu, &until) != 0) break;
    }
    bool have = !q->delivered && (q->pend.n > 0 || q->pend.len > 0 || q->finish != SCHED_FINISH_NONE);
    if (have) {
        sched_buf t = q->out;
        q->out = q->pend;
        q->pend = t;
        q->pend.n = 0;
        q->pend.len = 0;
        sched_buf *b = &q->out;
        if (b->len > 0) ev->text = b->text;
        ev->len = b->len;
        ev->n_tokens = b->n;
        ev->tokens = b->n ? b->tokens : NULL;
        ev->logprobs = b->n && q->n_logprobs >= 0 ? b->logprobs : NULL;
        ev->top = b->n && q->n_logprobs > 0 ? b->top : NULL;
        ev->finish = q->finish;
        if (q->finish != SCHED_FINISH_NONE) {
            q->delivered = true;
            ev->stop_index = q->stop_index;
            ev->prompt_tokens = q->usage_prompt;
            ev->completion_tokens = q->usage_completion;
            ev->cached_tokens = q->usage_cached;
            ev->err = q->err;
        }
    }
    pthread_mutex_unlock(&q->mu);
    return have;
}

void sched_cancel(sched_seq *q) {
    if (q) atomic_store(&q->cancel, true);
}

void sched_release(sched_seq *q) {
    if (!q) return;
    atomic_store(&q->cancel, true);
    pthread_mutex_lock(&q->mu);
    seq_unref_locked(q);
}
