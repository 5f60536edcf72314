/* TEST DOUBLE of src/engine/sched.h, for developing the server before the real
 * continuous-batching scheduler lands: one single-sequence gen_engine per slot, each on
 * its own worker thread, a bounded FIFO queue, and the same event contract (UTF-8-safe
 * text, stop strings, logprobs, deadlines, cancel, BUSY). CMakeLists.txt links it only
 * while src/engine/sched.c does not exist. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/generate.h"
#include "engine/sched.h"
#include "engine/stop.h"

typedef struct fevent {
    struct fevent *next;
    char *text;
    size_t len;
    int32_t token;
    bool has_token;
    float logprob;
    sched_top top[SAMPLER_MAX_TOP_LOGPROBS];
    sched_finish finish;
    int64_t prompt_tokens, completion_tokens;
    hearth_err err;
} fevent;

struct sched_seq {
    sched *s;
    sched_seq *next_queued;
    int32_t *prompt;
    size_t n_prompt;
    sched_request req;
    sampler_bias *bias;
    char *stops[STOP_MAX_STRINGS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    fevent *head, *tail, *cur;
    _Atomic bool cancel;
    int refs; /* owner + worker */
};

typedef struct worker {
    sched *s;
    pthread_t th;
    gen_engine *e;
} worker;

struct sched {
    const model *m;
    const tok_vocab *v;
    sched_params p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sched_seq *qhead, *qtail;
    int32_t queued, running;
    bool stop;
    worker *w;
    double avg_s; /* seconds per finished request */
};

void sched_params_default(sched_params *p) {
    *p = (sched_params){.n_slots = 8, .n_ctx = 0, .max_queue = 64, .step_tokens = 512, .n_threads = 0};
}

static void seq_unref(sched_seq *q) {
    pthread_mutex_lock(&q->mu);
    int left = --q->refs;
    pthread_mutex_unlock(&q->mu);
    if (left) return;
    for (fevent *ev = q->head; ev;) {
        fevent *n = ev->next;
        mem_free(ev->text);
        mem_free(ev);
        ev = n;
    }
    if (q->cur) {
        mem_free(q->cur->text);
        mem_free(q->cur);
    }
    for (size_t i = 0; i < q->req.n_stop; i++) mem_free(q->stops[i]);
    mem_free(q->prompt);
    mem_free(q->bias);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    mem_free(q);
}

static void push(sched_seq *q, fevent *ev) {
    pthread_mutex_lock(&q->mu);
    if (q->tail) q->tail->next = ev;
    else q->head = ev;
    q->tail = ev;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static fevent *new_event(const char *text, size_t len) {
    fevent *ev = mem_calloc(1, sizeof *ev);
    if (ev && len) {
        ev->text = mem_strndup(text, len);
        ev->len = len;
    }
    return ev;
}

static void finish(sched_seq *q, const char *text, size_t len, sched_finish f, int64_t n_gen, const hearth_err *err) {
    fevent *ev = new_event(text, len);
    if (!ev) return;
    ev->finish = f;
    ev->prompt_tokens = (int64_t)q->n_prompt;
    ev->completion_tokens = n_gen;
    if (err) ev->err = *err;
    push(q, ev);
}

static hearth_status copy_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    memcpy(ud, logits, (size_t)n_vocab * sizeof(float));
    return HEARTH_OK;
}

static bool expired(const sched_seq *q) { return q->req.deadline_ns && clock_mono_ns() > q->req.deadline_ns; }

static void run(worker *w, sched_seq *q) {
    sched *s = w->s;
    int32_t n_vocab = tok_n_vocab(s->v);
    float *logits = mem_alloc_array((size_t)n_vocab, sizeof(float));
    float *raw = mem_alloc_array((size_t)n_vocab, sizeof(float));
    hearth_err err = {0};
    sampler *sm = logits && raw ? sampler_new(&q->req.sampling, n_vocab, &err) : NULL;
    stop_matcher *stm = sm ? stop_matcher_new((const char *const *)q->stops, q->req.n_stop, &err) : NULL;
    tok_stream *ts = stm ? tok_stream_new(s->v, false) : NULL;
    int64_t n_gen = 0;
    if (!ts) {
        finish(q, NULL, 0, SCHED_FINISH_ERROR, 0, &err);
        goto out;
    }
    gen_reset(w->e);
    if (gen_eval(w->e, q->prompt, q->n_prompt, false, copy_row, logits, &err) != HEARTH_OK) {
        finish(q, NULL, 0, SCHED_FINISH_ERROR, 0, &err);
        goto out;
    }
    int64_t limit = gen_n_ctx(w->e) - (int64_t)q->n_prompt;
    if (q->req.max_tokens < limit) limit = q->req.max_tokens;
    for (;;) {
        if (atomic_load(&q->cancel)) {
            finish(q, NULL, 0, SCHED_FINISH_CANCELLED, n_gen, NULL);
            break;
        }
        if (expired(q)) {
            finish(q, NULL, 0, SCHED_FINISH_TIMEOUT, n_gen, NULL);
            break;
        }
        if (n_gen >= limit) {
            const char *t;
            size_t tl;
            stop_matcher_finish(stm, &t, &tl);
            finish(q, t, tl, SCHED_FINISH_LENGTH, n_gen, NULL);
            break;
        }
        if (q->req.n_logprobs >= 0) memcpy(raw, logits, (size_t)n_vocab * sizeof(float));
        int32_t tok = sampler_sample(sm, logits);
        if (tok < 0) {
            err_set(&err, HEARTH_ERR_INTERNAL, "no token could be sampled");
            finish(q, NULL, 0, SCHED_FINISH_ERROR, n_gen, &err);
            break;
        }
        sampler_accept(sm, tok);
        n_gen++;
        if (tok_is_eog(s->v, tok) && !q->req.ignore_eos) {
            const char *t;
            size_t tl;
            stop_matcher_finish(stm, &t, &tl);
            finish(q, t, tl, SCHED_FINISH_STOP, n_gen, NULL);
            break;
        }
        char *piece;
        size_t pl;
        const char *emit = NULL;
        size_t el = 0;
        bool stopped = false;
        if (tok_stream_push(ts, tok, &piece, &pl, &err) != HEARTH_OK ||
            stop_matcher_feed(stm, piece, pl, &emit, &el, &stopped) != HEARTH_OK) {
            finish(q, NULL, 0, SCHED_FINISH_ERROR, n_gen, &err);
            break;
        }
        fevent *ev = new_event(emit, el);
        if (!ev) break;
        ev->token = tok;
        ev->has_token = true;
        if (q->req.n_logprobs >= 0) {
            sampler_logprob top[SAMPLER_MAX_TOP_LOGPROBS];
            int nt = 0;
            sampler_logprobs(raw, n_vocab, tok, q->req.n_logprobs, &ev->logprob, top, &nt, NULL);
            for (int k = 0; k < q->req.n_logprobs; k++)
                ev->top[k] = k < nt ? (sched_top){top[k].token, top[k].logprob} : (sched_top){-1, -INFINITY};
        }
        push(q, ev);
        if (stopped) {
            finish(q, NULL, 0, SCHED_FINISH_STOP, n_gen, NULL);
            break;
        }
        if (gen_eval(w->e, &tok, 1, false, copy_row, logits, &err) != HEARTH_OK) {
            finish(q, NULL, 0, SCHED_FINISH_ERROR, n_gen, &err);
            break;
        }
    }
out:
    tok_stream_free(ts);
    stop_matcher_free(stm);
    sampler_free(sm);
    mem_free(logits);
    mem_free(raw);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sched *s = w->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !s->qhead) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        sched_seq *q = s->qhead;
        s->qhead = q->next_queued;
        if (!s->qhead) s->qtail = NULL;
        s->queued--;
        s->running++;
        pthread_mutex_unlock(&s->mu);
        double t0 = clock_mono_s();
        run(w, q);
        double dt = clock_mono_s() - t0;
        seq_unref(q);
        pthread_mutex_lock(&s->mu);
        s->running--;
        s->avg_s = s->avg_s > 0 ? 0.8 * s->avg_s + 0.2 * dt : dt;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

hearth_status sched_new(const model *m, const tok_vocab *v, const sched_params *p, sched **out, hearth_err *err) {
    *out = NULL;
    sched *s = mem_calloc(1, sizeof *s);
    if (!s) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    s->m = m;
    s->v = v;
    s->p = *p;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->w = mem_calloc((size_t)p->n_slots, sizeof *s->w);
    if (!s->w) {
        sched_free(s);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    gen_config gc = {.n_ctx = p->n_ctx, .n_threads = 1};
    for (int32_t i = 0; i < p->n_slots; i++) {
        s->w[i].s = s;
        hearth_status st = gen_engine_new(m, v, &gc, &s->w[i].e, err);
        if (st == HEARTH_OK && pthread_create(&s->w[i].th, NULL, worker_main, &s->w[i]) != 0)
            st = err_set(err, HEARTH_ERR_NOMEM, "cannot start a worker");
        if (st != HEARTH_OK) {
            gen_engine_free(s->w[i].e);
            s->w[i].e = NULL;
            sched_free(s);
            return st;
        }
    }
    *out = s;
    return HEARTH_OK;
}

void sched_free(sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    for (sched_seq *q = s->qhead; q; q = q->next_queued) atomic_store(&q->cancel, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int32_t i = 0; s->w && i < s->p.n_slots; i++)
        if (s->w[i].e) {
            pthread_join(s->w[i].th, NULL);
            gen_engine_free(s->w[i].e);
        }
    for (sched_seq *q = s->qhead; q;) {
        sched_seq *n = q->next_queued;
        finish(q, NULL, 0, SCHED_FINISH_CANCELLED, 0, NULL);
        seq_unref(q);
        q = n;
    }
    mem_free(s->w);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    mem_free(s);
}

hearth_status sched_submit(sched *s, const sched_request *r, sched_seq **out, hearth_err *err) {
    *out = NULL;
    if (!r->prompt || r->n_prompt == 0 || r->max_tokens <= 0 || r->n_stop > STOP_MAX_STRINGS || r->n_logprobs > 20)
        return err_set(err, HEARTH_ERR_INVALID, "bad request");
    if ((int64_t)r->n_prompt >= s->p.n_ctx)
        return err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens does not fit the context of %lld", r->n_prompt,
                       (long long)s->p.n_ctx);
    sched_seq *q = mem_calloc(1, sizeof *q);
    if (!q) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    q->s = s;
    q->req = *r;
    q->prompt = mem_alloc_array(r->n_prompt, sizeof *q->prompt);
    if (q->prompt) memcpy(q->prompt, r->prompt, r->n_prompt * sizeof *q->prompt);
    q->n_prompt = r->n_prompt;
    if (r->sampling.n_bias) {
        q->bias = mem_alloc_array(r->sampling.n_bias, sizeof *q->bias);
        if (q->bias) memcpy(q->bias, r->sampling.bias, r->sampling.n_bias * sizeof *q->bias);
        q->req.sampling.bias = q->bias;
    }
    for (size_t i = 0; i < r->n_stop; i++) q->stops[i] = mem_strdup(r->stop[i]);
    q->req.stop = NULL;
    q->req.prompt = NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->refs = 2;
    pthread_mutex_lock(&s->mu);
    int32_t free_slots = s->p.n_slots - s->running;
    if (s->queued >= (free_slots > 0 ? free_slots : 0) + s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        q->refs = 1;
        seq_unref(q);
        return err_set(err, HEARTH_ERR_BUSY, "the server is busy: %d requests are waiting", s->p.max_queue);
    }
    if (s->qtail) s->qtail->next_queued = q;
    else s->qhead = q;
    s->qtail = q;
    s->queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = q;
    return HEARTH_OK;
}

bool sched_next(sched_seq *q, sched_event *out, int timeout_ms) {
    pthread_mutex_lock(&q->mu);
    if (q->cur) {
        mem_free(q->cur->text);
        mem_free(q->cur);
        q->cur = NULL;
    }
    if (!q->head && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        ts.tv_sec += timeout_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        while (!q->head && pthread_cond_timedwait(&q->cv, &q->mu, &ts) == 0) {
        }
    }
    fevent *ev = q->head;
    if (ev) {
        q->head = ev->next;
        if (!q->head) q->tail = NULL;
        q->cur = ev;
    }
    pthread_mutex_unlock(&q->mu);
    if (!ev) return false;
    *out = (sched_event){
        .text = ev->text ? ev->text : "",
        .len = ev->len,
        .n_tokens = ev->has_token ? 1 : 0,
        .tokens = ev->has_token ? &ev->token : NULL,
        .logprobs = ev->has_token && q->req.n_logprobs >= 0 ? &ev->logprob : NULL,
        .top = ev->has_token && q->req.n_logprobs > 0 ? ev->top : NULL,
        .finish = ev->finish,
        .prompt_tokens = ev->prompt_tokens,
        .completion_tokens = ev->completion_tokens,
        .err = ev->err,
    };
    return true;
}

void sched_cancel(sched_seq *q) { atomic_store(&q->cancel, true); }

void sched_release(sched_seq *q) {
    if (!q) return;
    sched_cancel(q);
    seq_unref(q);
}

double sched_retry_after_s(const sched *s) {
    double avg = s->avg_s > 0 ? s->avg_s : 1.0;
    return avg * (double)(s->queued + 1) / (double)(s->p.n_slots > 0 ? s->p.n_slots : 1);
}

void sched_get_stats(const sched *s, sched_stats *st) {
    *st = (sched_stats){.queued = s->queued, .running = s->running, .n_slots = s->p.n_slots};
}
