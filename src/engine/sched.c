/* Scheduler lifecycle and the thread-safe entry points (see sched.h): parameters, the
 * scheduler thread's loop (sleep when idle, admit queued requests into free slots, run a
 * step), submission with the bounded queue, the Retry-After estimate and statistics.
 * The thread is the only one touching the model context, KV cache and samplers; the
 * loop never spins: with nothing queued or running it waits on a condition variable. */
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/generate.h"
#include "engine/sched_internal.h"

#define RETRY_MIN_S 1.0
#define RETRY_MAX_S 600.0
#define MAX_SLOTS 1024

void sched_params_default(sched_params *p) {
    *p = (sched_params){.n_slots = 8, .n_ctx = 0, .max_queue = 64, .step_tokens = 512,
                        .prefill_tokens = PREFILL_TOKENS_DEFAULT, .n_threads = 0,
                        .prefix_slots = 8, .max_unread = 1024};
}

static hearth_status check_params(const model *m, sched_params *p, hearth_err *err) {
    int64_t train = model_hp(m)->n_ctx_train;
    if (p->n_ctx <= 0) p->n_ctx = train < GEN_DEFAULT_CTX ? train : GEN_DEFAULT_CTX;
    if (p->n_ctx > train)
        return err_set(err, HEARTH_ERR_RANGE, "scheduler: context of %lld positions exceeds the model's %lld",
                       (long long)p->n_ctx, (long long)train);
    if (p->n_ctx > INT32_MAX)
        return err_set(err, HEARTH_ERR_RANGE, "scheduler: context of %lld positions is too large",
                       (long long)p->n_ctx);
    if (p->n_slots < 1 || p->n_slots > MAX_SLOTS)
        return err_set(err, HEARTH_ERR_INVALID, "scheduler: n_slots must be 1..%d (got %d)", MAX_SLOTS, p->n_slots);
    if (p->step_tokens < p->n_slots)
        return err_set(err, HEARTH_ERR_INVALID, "scheduler: step_tokens (%d) must be at least n_slots (%d)",
                       p->step_tokens, p->n_slots);
    if (p->max_queue < 0 || p->prefix_slots < 0 || p->prefix_slots > MAX_SLOTS || p->max_unread < 1)
        return err_set(err, HEARTH_ERR_INVALID,
                       "scheduler: bad max_queue %d, prefix_slots %d (0..%d) or max_unread %d (>= 1)", p->max_queue,
                       p->prefix_slots, MAX_SLOTS, p->max_unread);
    return HEARTH_OK;
}

/* How a queued request ends before it gets a slot; NONE: it keeps waiting. The queue
 * wait is only checked (waiting) for requests still without a slot after admission. */
static sched_finish queued_end(const sched_seq *q, uint64_t now, bool waiting, hearth_err *e) {
    if (atomic_load(&q->cancel)) {
        err_set(e, HEARTH_ERR_CANCELLED, "cancelled by the caller while queued");
        return SCHED_FINISH_CANCELLED;
    }
    if (q->deadline_ns && now >= q->deadline_ns) {
        err_set(e, HEARTH_ERR_TIMEOUT, "the request's deadline passed while queued");
        return SCHED_FINISH_TIMEOUT;
    }
    if (waiting && q->queue_deadline_ns && now >= q->queue_deadline_ns) {
        err_set(e, HEARTH_ERR_BUSY, "waited %.3g s in the queue without getting a slot (max_queue_wait %.3g s)",
                (double)(now - q->queued_ns) / 1e9, q->max_queue_wait_s);
        return SCHED_FINISH_ERROR;
    }
    return SCHED_FINISH_NONE;
}

/* Under mu: ends the queued requests queued_end says must end. */
static void drop_queued(sched *s, uint64_t now, bool waiting) {
    sched_seq **link = &s->queue_head, *last = NULL;
    while (*link) {
        sched_seq *q = *link;
        hearth_err e;
        sched_finish why = queued_end(q, now, waiting, &e);
        if (why == SCHED_FINISH_NONE) {
            last = q;
            link = &q->next;
            continue;
        }
        *link = q->next;
        s->queued--;
        s->queued_prompt -= q->n_prompt;
        s->queued_gen -= q->cap_tokens - q->n_prompt;
        seq_finish(q, why, &e);
    }
    s->queue_tail = last;
}

/* Under mu: ends queued requests that were cancelled or passed their deadline, moves
 * queued requests into free slots (FIFO), then ends those still waiting past their
 * max_queue_wait: a request that finds a free slot when the scheduler looks takes it,
 * even when its bound passed during the step just run (the check is between steps).
 * Returns how many were admitted into admitted[]. */
static int32_t admit_locked(sched *s, int32_t *admitted) {
    uint64_t now = clock_mono_ns();
    atomic_store(&s->arrival, false);
    drop_queued(s, now, false);
    int32_t n = 0;
    for (int32_t i = 0; i < s->p.n_slots && s->queue_head; i++) {
        if (s->slots[i].q) continue;
        sched_seq *q = s->queue_head;
        if (!(s->queue_head = q->next)) s->queue_tail = NULL;
        q->next = NULL;
        s->queued--;
        s->queued_prompt -= q->n_prompt;
        s->queued_gen -= q->cap_tokens - q->n_prompt;
        s->running++;
        s->slots[i] = (sched_slot){.q = q, .admitted = ++s->tick};
        s->slot_prompt_left[i] = q->n_prompt; /* until the next step publishes */
        s->slot_gen_left[i] = q->cap_tokens - q->n_prompt;
        s->running_prompt += s->slot_prompt_left[i];
        s->running_gen += s->slot_gen_left[i];
        admitted[n++] = i;
    }
    if (s->queue_head) drop_queued(s, now, true);
    return n;
}

static void shut_down(sched *s) {
    hearth_err e;
    err_set(&e, HEARTH_ERR_CANCELLED, "the scheduler was stopped");
    for (int32_t i = 0; i < s->p.n_slots; i++)
        if (s->slots[i].q) step_end(s, i, SCHED_FINISH_CANCELLED, &e);
    pthread_mutex_lock(&s->mu);
    while (s->queue_head) {
        sched_seq *q = s->queue_head;
        s->queue_head = q->next;
        s->queued--;
        seq_finish(q, SCHED_FINISH_CANCELLED, &e);
    }
    s->queue_tail = NULL;
    pthread_mutex_unlock(&s->mu);
}

/* Under mu: sleeps a millisecond, or less when woken. */
static void wait_briefly(sched *s) {
    struct timespec ts;
    clock_timespec_in(CLOCK_REALTIME, 1, &ts);
    pthread_cond_timedwait(&s->wake, &s->mu, &ts);
}

static void *sched_main(void *arg) {
    sched *s = arg;
    int32_t *admitted = s->batch_slot + s->p.n_slots; /* second half of the same allocation */
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (!s->queue_head && s->running == 0) {
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        int32_t n = admit_locked(s, admitted);
        pthread_mutex_unlock(&s->mu);
        int64_t hits = 0;
        for (int32_t i = 0; i < n; i++) {
            sched_seq *q = s->slots[admitted[i]].q;
            q->n_cached = prefix_attach(s, admitted[i]);
            hits += q->n_cached;
        }
        bool ran = step_run(s);
        pthread_mutex_lock(&s->mu);
        s->prefix_hits += hits;
        if (!ran && s->running > 0) wait_briefly(s); /* no room this step: never spin */
    }
    pthread_mutex_unlock(&s->mu);
    shut_down(s);
    return NULL;
}

static void sched_destroy(sched *s) {
    model_batch_free(&s->batch);
    model_ctx_free(s->ctx);
    kv_cache_free(s->kv);
    kern_pool_free(s->pool);
    prefix_free_all(s);
    mem_free(s->slots);
    mem_free(s->batch_slot);
    mem_free(s->lora_sets);
    mem_free(s->slot_prompt_left);
    mem_free(s->slot_gen_left);
    mem_free(s->admit_free_at);
    mem_free(s->logits);
    mem_free(s->top_tmp);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    mem_free(s);
}

static hearth_status make_engine(sched *s, hearth_err *err) {
    const sched_params *p = &s->p;
    s->pool = kern_pool_new(p->n_threads);
    s->slots = mem_calloc((size_t)p->n_slots, sizeof *s->slots);
    s->batch_slot = mem_alloc_array((size_t)p->n_slots * 2, sizeof *s->batch_slot);
    s->logits = mem_alloc_array((size_t)s->n_vocab, sizeof *s->logits);
    s->top_tmp = mem_alloc_array(SAMPLER_MAX_TOP_LOGPROBS, sizeof *s->top_tmp);
    s->prefixes = mem_calloc((size_t)p->prefix_slots + 1, sizeof *s->prefixes);
    s->lora_sets = mem_calloc((size_t)p->n_slots, sizeof *s->lora_sets);
    s->slot_prompt_left = mem_calloc((size_t)p->n_slots, sizeof *s->slot_prompt_left);
    s->slot_gen_left = mem_calloc((size_t)p->n_slots, sizeof *s->slot_gen_left);
    s->admit_free_at = mem_calloc((size_t)p->n_slots, sizeof *s->admit_free_at);
    if (!s->pool || !s->slots || !s->batch_slot || !s->logits || !s->top_tmp || !s->prefixes || !s->lora_sets ||
        !s->slot_prompt_left || !s->slot_gen_left || !s->admit_free_at)
        return err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for %d slots", p->n_slots);
    kv_config kc = model_kv_config(s->m, p->n_ctx, p->n_slots + p->prefix_slots);
    kc.n_pages = (int64_t)p->n_slots * ((p->n_ctx + kc.page_size - 1) / kc.page_size);
    model_ctx_params mp = {.n_batch = p->step_tokens, .n_outputs = p->n_slots, .n_ctx = p->n_ctx};
    hearth_status st = kv_cache_new(&kc, &s->kv, err);
    if (!st) st = model_ctx_new(s->m, &mp, s->pool, &s->ctx, err);
    if (!st) st = model_batch_init(&s->batch, p->step_tokens, err);
    if (!st) s->kv_pages_total = kc.n_pages;
    return st;
}

hearth_status sched_new(const model *m, const tok_vocab *v, const sched_params *p, sched **out, hearth_err *err) {
    *out = NULL;
    sched_params sp = *p;
    hearth_status st = check_params(m, &sp, err);
    if (st) return st;
    sched *s = mem_calloc(1, sizeof *s);
    if (!s) return err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory");
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        mem_free(s);
        return err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot make a mutex");
    }
    if (pthread_cond_init(&s->wake, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        mem_free(s);
        return err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot make a condition variable");
    }
    atomic_init(&s->arrival, false);
    s->m = m;
    s->v = v;
    s->p = sp;
    s->n_vocab = (int32_t)model_hp(m)->n_vocab;
    if (!(st = make_engine(s, err)) && pthread_create(&s->thread, NULL, sched_main, s) != 0)
        st = err_set(err, HEARTH_ERR_NOMEM, "scheduler: cannot start its thread");
    if (st) {
        sched_destroy(s);
        return st;
    }
    *out = s;
    return HEARTH_OK;
}

void sched_free(sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    sched_destroy(s);
}

/* Under mu. */
static double retry_after_locked(const sched *s) {
    double pre = s->prefill_tps > 0 ? s->prefill_tps : DEFAULT_PREFILL_TPS;
    double dec = s->decode_tps > 0 ? s->decode_tps : DEFAULT_DECODE_TPS;
    int32_t n = s->queued + s->running;
    double work = (double)(s->queued_prompt + s->running_prompt) / pre + (double)(s->queued_gen + s->running_gen) / dec;
    double r = n > 0 ? work / n : 0.0;
    return r < RETRY_MIN_S ? RETRY_MIN_S : r > RETRY_MAX_S ? RETRY_MAX_S : r;
}

double sched_retry_after_s(const sched *s) {
    sched *w = (sched *)s; /* the lock is the only thing written */
    pthread_mutex_lock(&w->mu);
    double r = retry_after_locked(s);
    pthread_mutex_unlock(&w->mu);
    return r;
}

/* Under mu: fills r->refusal (when asked for) and err for a BUSY answer. */
static hearth_status refuse(const sched *s, const sched_request *r, sched_busy why, double wait, hearth_err *err) {
    double retry = why == SCHED_BUSY_QUEUE_WAIT ? wait - r->max_queue_wait_s : retry_after_locked(s);
    retry = retry < RETRY_MIN_S ? RETRY_MIN_S : retry > RETRY_MAX_S ? RETRY_MAX_S : retry;
    if (r->refusal) *r->refusal = (sched_refusal){.why = why, .wait_s = wait, .retry_after_s = retry};
    if (why == SCHED_BUSY_QUEUE_WAIT)
        return err_set(err, HEARTH_ERR_BUSY, "estimated queue wait %.3g s exceeds max_queue_wait %.3g s; retry in %.0f s",
                       wait, r->max_queue_wait_s, retry);
    return err_set(err, HEARTH_ERR_BUSY, "scheduler: all %d slots busy and %d requests queued; retry in %.0f s",
                   s->p.n_slots, s->queued, retry);
}

hearth_status sched_submit(sched *s, const sched_request *r, sched_seq **out, hearth_err *err) {
    *out = NULL;
    if (r->refusal) *r->refusal = (sched_refusal){0};
    sched_seq *q;
    hearth_status st = seq_new(s, r, &q, err);
    if (st) return st;
    pthread_mutex_lock(&s->mu);
    int32_t free_slots = s->p.n_slots - s->running;
    double bound = q->max_queue_wait_s, wait = 0;
    if (s->stop) st = err_set(err, HEARTH_ERR_CANCELLED, "scheduler: shutting down");
    else if (s->queued - free_slots >= s->p.max_queue) st = refuse(s, r, SCHED_BUSY_QUEUE_FULL, 0, err);
    else if (bound > 0 && (wait = admit_wait_locked(s, bound)) > bound)
        st = refuse(s, r, SCHED_BUSY_QUEUE_WAIT, wait, err);
    if (st) {
        pthread_mutex_unlock(&s->mu);
        seq_discard(q);
        return st;
    }
    q->queued_ns = clock_mono_ns();
    if (bound > 0) q->queue_deadline_ns = q->queued_ns + (uint64_t)(bound * 1e9);
    if (s->queue_tail) s->queue_tail->next = q;
    else s->queue_head = q;
    s->queue_tail = q;
    s->queued++;
    s->queued_prompt += q->n_prompt;
    s->queued_gen += q->cap_tokens - q->n_prompt;
    if (s->queued <= free_slots) atomic_store(&s->arrival, true);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    *out = q;
    return HEARTH_OK;
}

void sched_get_stats(const sched *s, sched_stats *st) {
    sched *w = (sched *)s;
    pthread_mutex_lock(&w->mu);
    *st = (sched_stats){.queued = s->queued,
                        .running = s->running,
                        .n_slots = s->p.n_slots,
                        .kv_pages_used = s->kv_pages_used,
                        .kv_pages_total = s->kv_pages_total,
                        .prefix_hits_tokens = s->prefix_hits,
                        .decode_tps = s->decode_tps,
                        .prefill_tps = s->prefill_tps,
                        .steps = s->steps,
                        .steps_interrupted = s->steps_interrupted,
                        .decode_step_s = s->decode_step_s,
                        .queue_wait_s = admit_wait_locked(s, 0)};
    pthread_mutex_unlock(&w->mu);
}
