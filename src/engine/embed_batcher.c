/* The embedding batcher (see embed_batcher.h). One mutex guards the queue (an intrusive
 * list of the tickets' items, oldest first) and the tickets' progress; one condition
 * wakes the thread, another wakes waiting tickets after each pass. The forward pass runs
 * without the lock, over items the thread took out of the queue. Never prints. */
#include "engine/embed_batcher.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

typedef struct item {
    struct item *next;
    embed_ticket *t;
    size_t index;
    embed_input in;
} item;

struct embed_ticket {
    embed_batcher *b;
    embed_opts opts;
    float *out;
    item *items;
    size_t n, done;
    int in_flight;     /* items in the running pass */
    hearth_status st;
    hearth_err err;
};

struct embed_batcher {
    const model *m;
    embed_ctx *ctx;
    embed_batcher_config cfg;
    int64_t dim;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    item *head, *tail;
    bool stop, hold;
    embed_batcher_stats st;
    /* the pass being built and run (thread only) */
    item **pass;
    embed_input *pass_in;
    float *pass_out;
};

static bool same_opts(const embed_opts *a, const embed_opts *b) {
    return a->pooling == b->pooling && a->normalize == b->normalize;
}

/* Takes items for one pass out of the queue (lock held); returns how many. */
static size_t take_pass(embed_batcher *b) {
    const embed_opts *o = &b->head->t->opts;
    size_t n = 0, tokens = 0;
    item **link = &b->head, *prev = NULL;
    while (*link && n < (size_t)b->cfg.max_seq) {
        item *it = *link;
        if (same_opts(&it->t->opts, o) && tokens + it->in.n <= (size_t)b->cfg.batch_tokens) {
            *link = it->next;
            if (b->tail == it) b->tail = prev;
            it->next = NULL;
            tokens += it->in.n;
            it->t->in_flight++;
            b->pass[n] = it;
            b->pass_in[n++] = it->in;
            continue;
        }
        if (tokens + 1 > (size_t)b->cfg.batch_tokens) break;
        prev = it;
        link = &it->next;
    }
    b->st.queued -= (int64_t)n;
    b->st.passes++;
    b->st.inputs += n;
    b->st.tokens += tokens;
    if (n > b->st.max_pass_inputs) b->st.max_pass_inputs = n;
    return n;
}

static void *run(void *arg) {
    embed_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && (!b->head || b->hold)) pthread_cond_wait(&b->work_cv, &b->mu);
        if (b->stop) break;
        embed_opts o = b->head->t->opts;
        size_t n = take_pass(b);
        pthread_mutex_unlock(&b->mu);
        hearth_err err = {0};
        hearth_status st = embed_batch(b->ctx, b->pass_in, n, &o, b->pass_out, n, &err);
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < n; i++) {
            embed_ticket *t = b->pass[i]->t;
            if (st == HEARTH_OK)
                memcpy(t->out + b->pass[i]->index * (size_t)b->dim, b->pass_out + i * (size_t)b->dim,
                       (size_t)b->dim * sizeof(float));
            else if (t->st == HEARTH_OK) {
                t->st = st;
                t->err = err;
            }
            t->done++;
            t->in_flight--;
        }
        pthread_cond_broadcast(&b->done_cv);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

hearth_status embed_batcher_new(const model *m, const embed_batcher_config *cfg, embed_batcher **out,
                                hearth_err *err) {
    *out = NULL;
    embed_batcher *b = mem_calloc(1, sizeof *b);
    if (!b) return err_set(err, HEARTH_ERR_NOMEM, "embeddings: out of memory");
    b->m = m;
    b->cfg = *cfg;
    if (b->cfg.batch_tokens <= 0) b->cfg.batch_tokens = EMBED_BATCHER_DEFAULT_TOKENS;
    if (b->cfg.max_seq <= 0) b->cfg.max_seq = EMBED_BATCHER_DEFAULT_SEQ;
    if (b->cfg.max_queue <= 0) b->cfg.max_queue = EMBED_BATCHER_DEFAULT_QUEUE;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->work_cv, NULL);
    pthread_cond_init(&b->done_cv, NULL);
    embed_config ec = {.n_ctx = cfg->n_ctx, .n_batch = b->cfg.batch_tokens, .n_seq = b->cfg.max_seq,
                       .n_threads = cfg->n_threads};
    hearth_status st = embed_ctx_new(m, &ec, &b->ctx, err);
    if (!st) {
        b->cfg.n_ctx = embed_n_ctx(b->ctx);
        if (b->cfg.batch_tokens < b->cfg.n_ctx) b->cfg.batch_tokens = (int32_t)b->cfg.n_ctx;
        b->dim = embed_n_embd(b->ctx);
        b->pass = mem_alloc_array((size_t)b->cfg.max_seq, sizeof *b->pass);
        b->pass_in = mem_alloc_array((size_t)b->cfg.max_seq, sizeof *b->pass_in);
        b->pass_out = mem_alloc_array((size_t)b->cfg.max_seq, (size_t)b->dim * sizeof(float));
        if (!b->pass || !b->pass_in || !b->pass_out) st = err_set(err, HEARTH_ERR_NOMEM, "embeddings: out of memory");
    }
    if (!st) {
        if (pthread_create(&b->thread, NULL, run, b) != 0)
            st = err_set(err, HEARTH_ERR_NOMEM, "embeddings: cannot start the batching thread");
        else
            b->started = true;
    }
    if (st) {
        embed_batcher_free(b);
        return st;
    }
    *out = b;
    return HEARTH_OK;
}

void embed_batcher_free(embed_batcher *b) {
    if (!b) return;
    if (b->started) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_broadcast(&b->work_cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    embed_ctx_free(b->ctx);
    mem_free(b->pass);
    mem_free(b->pass_in);
    mem_free(b->pass_out);
    pthread_cond_destroy(&b->done_cv);
    pthread_cond_destroy(&b->work_cv);
    pthread_mutex_destroy(&b->mu);
    mem_free(b);
}

int64_t embed_batcher_n_embd(const embed_batcher *b) { return b->dim; }

int64_t embed_batcher_n_ctx(const embed_batcher *b) { return b->cfg.n_ctx; }

void embed_batcher_get_stats(embed_batcher *b, embed_batcher_stats *out) {
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    pthread_mutex_unlock(&b->mu);
}

void embed_batcher_hold(embed_batcher *b, bool hold) {
    pthread_mutex_lock(&b->mu);
    b->hold = hold;
    pthread_cond_broadcast(&b->work_cv);
    pthread_mutex_unlock(&b->mu);
}

static hearth_status check(const embed_batcher *b, const embed_input *in, size_t n, const embed_opts *o,
                           hearth_err *err) {
    int64_t n_vocab = model_hp(b->m)->n_vocab;
    if (n == 0) return err_set(err, HEARTH_ERR_INVALID, "embeddings: no inputs");
    embed_pooling p = o->pooling == EMBED_POOL_DEFAULT ? embed_model_pooling(b->m) : o->pooling;
    if (p < EMBED_POOL_MEAN || p > EMBED_POOL_LAST)
        return err_set(err, HEARTH_ERR_INVALID, "embeddings: pooling '%s' does not give one vector per input",
                       embed_pooling_name(p));
    for (size_t i = 0; i < n; i++) {
        if (in[i].n == 0 || !in[i].tokens) return err_set(err, HEARTH_ERR_INVALID, "input %zu has no tokens", i);
        if (in[i].n > (size_t)b->cfg.n_ctx)
            return err_set(err, HEARTH_ERR_RANGE, "input %zu has %zu tokens, more than the model's context of %lld", i,
                           in[i].n, (long long)b->cfg.n_ctx);
        for (size_t k = 0; k < in[i].n; k++)
            if (in[i].tokens[k] < 0 || in[i].tokens[k] >= n_vocab)
                return err_set(err, HEARTH_ERR_INVALID, "input %zu: token %zu (id %d) is outside the vocabulary (%lld)",
                               i, k, in[i].tokens[k], (long long)n_vocab);
    }
    return HEARTH_OK;
}

hearth_status embed_batcher_submit(embed_batcher *b, const embed_input *in, size_t n, const embed_opts *o, float *out,
                                   embed_ticket **tp, hearth_err *err) {
    *tp = NULL;
    hearth_status st = check(b, in, n, o, err);
    if (st) return st;
    embed_ticket *t = mem_calloc(1, sizeof *t);
    item *items = t ? mem_calloc(n, sizeof *items) : NULL;
    if (!items) {
        mem_free(t);
        return err_set(err, HEARTH_ERR_NOMEM, "embeddings: out of memory");
    }
    *t = (embed_ticket){.b = b, .opts = *o, .out = out, .items = items, .n = n};
    t->opts.truncate = false;
    if (t->opts.pooling == EMBED_POOL_DEFAULT) t->opts.pooling = embed_model_pooling(b->m);
    for (size_t i = 0; i < n; i++) items[i] = (item){.t = t, .index = i, .in = in[i]};
    pthread_mutex_lock(&b->mu);
    if (b->st.queued + (int64_t)n > b->cfg.max_queue) {
        int64_t q = b->st.queued;
        pthread_mutex_unlock(&b->mu);
        mem_free(items);
        mem_free(t);
        return err_set(err, HEARTH_ERR_BUSY, "embeddings: %lld inputs are queued; %zu more do not fit (the limit is %lld)",
                       (long long)q, n, (long long)b->cfg.max_queue);
    }
    for (size_t i = 0; i < n; i++) {
        if (b->tail) b->tail->next = &items[i];
        else b->head = &items[i];
        b->tail = &items[i];
    }
    b->st.queued += (int64_t)n;
    pthread_cond_signal(&b->work_cv);
    pthread_mutex_unlock(&b->mu);
    *tp = t;
    return HEARTH_OK;
}

bool embed_ticket_wait(embed_ticket *t, int timeout_ms) {
    embed_batcher *b = t->b;
    struct timespec until;
    clock_timespec_in(CLOCK_REALTIME, timeout_ms, &until);
    pthread_mutex_lock(&b->mu);
    while (t->done < t->n && pthread_cond_timedwait(&b->done_cv, &b->mu, &until) != ETIMEDOUT) {
    }
    bool done = t->done == t->n;
    pthread_mutex_unlock(&b->mu);
    return done;
}

hearth_status embed_ticket_status(const embed_ticket *t, hearth_err *err) {
    if (t->st && err) *err = t->err;
    return t->st;
}

void embed_ticket_free(embed_ticket *t) {
    if (!t) return;
    embed_batcher *b = t->b;
    pthread_mutex_lock(&b->mu);
    item **link = &b->head, *prev = NULL;
    while (*link) {
        item *it = *link;
        if (it->t == t) {
            *link = it->next;
            if (b->tail == it) b->tail = prev;
            b->st.queued--;
            continue;
        }
        prev = it;
        link = &it->next;
    }
    while (t->in_flight > 0) pthread_cond_wait(&b->done_cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
    mem_free(t->items);
    mem_free(t);
}
