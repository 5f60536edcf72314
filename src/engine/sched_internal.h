/* Shared internals of the scheduler (sched.c, sched_step.c, sched_seq.c, sched_prefix.c):
 * the sequence record with its event buffers, the slot table and the prefix cache.
 * Nothing here is visible outside src/engine/sched*.c. Locking: sched.mu guards the
 * queue and the published statistics; sched_seq.mu guards a sequence's event buffers and
 * finish state. A thread may take a seq lock while holding sched.mu, never the reverse. */
#ifndef ENGINE_SCHED_INTERNAL_H
#define ENGINE_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine/sched.h"
#include "engine/stop.h"

/* The adapters a sequence (or a cached prefix) was computed with: one reference each. */
typedef struct sched_lora {
    model_lora_use *use;     /* [n] */
    int32_t n;
} sched_lora;

/* Generated output not yet read by the consumer. */
typedef struct sched_buf {
    char *text;
    size_t len, cap;
    int32_t *tokens;
    float *logprobs;     /* [cap] when logprobs were asked for */
    sched_top *top;      /* [cap * n_top] */
    int32_t n, n_cap;
} sched_buf;

struct sched_seq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;                /* the consumer until sched_release, the scheduler until finished */
    atomic_bool cancel;      /* set by sched_cancel / sched_release */

    /* under mu */
    sched_buf pend, out;     /* filled by the scheduler; handed to the consumer */
    sched_finish finish;     /* set once, when the scheduler is done with the sequence */
    int stop_index;          /* with finish STOP: the stop string that matched, or -1 */
    bool delivered;          /* the last event went out */
    hearth_err err;
    int64_t usage_prompt, usage_completion, usage_cached;
    int32_t max_unread;

    /* owned by whoever holds the request: the submitter, then the scheduler thread */
    sched_seq *next;         /* queue link */
    int32_t *tokens;         /* prompt, then generated tokens: [cap_tokens] */
    int64_t n_prompt, n_tokens, cap_tokens;
    int32_t max_tokens;
    bool ignore_eos;
    int n_logprobs;
    uint64_t deadline_ns;
    sampler *smp;
    tok_stream *stream;
    stop_matcher *stops;
    int64_t n_gen;           /* completion tokens so far */
    int64_t n_cached;        /* prompt tokens taken from shared pages */
    uint64_t queued_ns;      /* clock_mono_ns() at submission */
    uint64_t queue_deadline_ns; /* after which it may no longer take a slot; 0: none */
    double max_queue_wait_s; /* > 0: the bound that deadline came from */
    sched_lora lora;         /* adapters, one reference each (sched_lora.c) */
};

typedef struct sched_slot {
    sched_seq *q;            /* NULL: free */
    bool decoding;           /* prompt done: next is the token to feed */
    int32_t next;
    uint64_t admitted;       /* admission order: earlier slots prefill first */
} sched_slot;

/* A finished sequence's pages, kept so a later prompt with the same prefix forks them. */
typedef struct sched_prefix {
    int32_t *tokens;         /* [n]; the cache sequence holds exactly these positions */
    int64_t n, cap;          /* n == 0: empty */
    uint64_t last_used;
    sched_lora lora;         /* the adapters its pages were computed with */
} sched_prefix;

struct sched {
    const model *m;
    const tok_vocab *v;
    sched_params p;
    int32_t n_vocab;

    /* scheduler thread only */
    kern_pool *pool;
    model_ctx *ctx;
    kv_cache *kv;
    model_batch batch;
    int32_t *batch_slot;     /* [n_slots]: slot of each logits row of the last forward */
    float *logits;           /* [n_vocab] copy the sampler may modify */
    sampler_logprob *top_tmp;
    sched_slot *slots;       /* [n_slots]; kv sequence i belongs to slot i */
    sched_prefix *prefixes;  /* [prefix_slots]; kv sequence n_slots + i */
    uint64_t tick;
    model_lora_set *lora_sets; /* [n_slots] the last step's adapter map (sched_lora.c) */

    bool interrupted_last;   /* the last step was interrupted: the next one may not be */

    pthread_t thread;
    bool thread_started;
    /* set by a submission that can take a free slot at once, cleared by admission: a
       decode-only step in flight stops at its next check so the prompt need not wait */
    atomic_bool arrival;

    /* under mu */
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    sched_seq *queue_head, *queue_tail;
    int32_t queued, running;
    int64_t queued_prompt, queued_gen;   /* work waiting in the queue, in tokens */
    int64_t running_prompt, running_gen; /* work left in the slots, in tokens */
    int64_t kv_pages_used, kv_pages_total;
    int64_t prefix_hits;
    double decode_tps, prefill_tps;      /* 0 until measured */
    double decode_step_s;                /* seconds per step without prompt tokens (until one ran:
                                            of the last step; 0 before any) */
    bool decode_step_pure;               /* decode_step_s was measured on decode-only steps */
    int64_t steps;
    int64_t steps_interrupted;
    int64_t *slot_prompt_left;           /* [n_slots] prompt tokens each slot still has to prefill */
    int64_t *slot_gen_left;              /* [n_slots] tokens each slot may still generate; 0: free */
    double *admit_free_at;               /* [n_slots] scratch of the wait estimate */
};

#define DEFAULT_PREFILL_TPS 100.0 /* stand-ins until steps were measured */
#define DEFAULT_DECODE_TPS 10.0

/* ---- sequences (sched_seq.c) ---- */
/* Validates r and builds a sequence with its sampler, detokenizer and stop matcher. */
hearth_status seq_new(const sched *s, const sched_request *r, sched_seq **out, hearth_err *err);
/* Frees a sequence the scheduler never took (submit failed after seq_new). */
void seq_discard(sched_seq *q);
/* Appends one generated token (with its logprobs when asked) and released text. False
 * when memory ran out or the consumer left too much unread: the caller finishes q. */
bool seq_push(sched_seq *q, int32_t token, float logprob, const sampler_logprob *top, int n_top,
              const char *text, size_t len, hearth_err *err);
/* Publishes the last event and drops the scheduler's reference (q may be freed). */
void seq_finish(sched_seq *q, sched_finish why, const hearth_err *err);

/* ---- prefix reuse (sched_prefix.c) ---- */
/* Points slot's sequence at the longest cached or running prefix of its prompt (never the
 * whole prompt); returns the tokens reused. */
int64_t prefix_attach(sched *s, int32_t slot);
/* Keeps what slot's sequence computed as a cached prefix, then clears the slot's sequence. */
void prefix_park(sched *s, int32_t slot);
/* Evicts cached prefixes, least recently used first, until pages are free. */
bool prefix_make_room(sched *s, int64_t pages);
void prefix_free_all(sched *s);

/* ---- adapters (sched_lora.c) ---- */
/* Checks set against the model and copies it into *out with a reference per adapter
 * (uses with scale 0 dropped). INVALID, NOMEM; *out is empty on failure. */
hearth_status sched_lora_copy(const sched *s, const model_lora_set *set, sched_lora *out, hearth_err *err);
/* Copies a into *out with its own references; false (out unchanged) on NOMEM. */
bool sched_lora_dup(const sched_lora *a, sched_lora *out);
void sched_lora_clear(sched_lora *l); /* drops the references; *l becomes empty */
/* Same adapters with the same scales in the same order. */
bool sched_lora_same(const sched_lora *a, const sched_lora *b);
/* The per-slot adapter map of the current slots for model_forward_lora (filled into
 * *map), or NULL when no slot uses an adapter. */
const model_lora_map *sched_lora_map(sched *s, model_lora_map *map);

/* ---- queue-wait admission (sched_admit.c) ---- */
/* A replay of the work ahead of a new request (see "Queue-wait admission" in sched.h):
 * when each slot frees, in seconds from now. */
typedef struct admit_sim {
    double *free_at;         /* [n_slots] */
    int32_t n_slots;
    double step_s;           /* seconds per decode step */
    double prefill_tps;      /* prompt tokens per second */
} admit_sim;
/* All slots free; free_at is the caller's scratch of n_slots. */
void admit_sim_init(admit_sim *m, double *free_at, int32_t n_slots, double step_s, double prefill_tps);
/* The busy slots: prompt_left[i] tokens to prefill and gen_left[i] to generate (both 0:
 * slot i is free). Call once, before admit_sim_queue. */
void admit_sim_slots(admit_sim *m, const int64_t *prompt_left, const int64_t *gen_left);
/* A queued request ahead (in FIFO order) takes the slot that frees first; its prompt
 * stalls every slot still busy then. */
void admit_sim_queue(admit_sim *m, int64_t n_prompt, int64_t gen_budget);
/* When the next request would get a slot: the earliest free_at. */
double admit_sim_wait(const admit_sim *m);
/* Under mu: the wait of a request submitted now; stops replaying (returning a value above
 * limit_s) once the wait exceeds limit_s (<= 0: no limit). */
double admit_wait_locked(const sched *s, double limit_s);
/* Under mu: the stand-in-aware rates the estimates use. */
double admit_step_s(const sched *s);
double admit_prefill_tps(const sched *s);

/* ---- steps (sched_step.c) ---- */
/* Runs one step over the admitted slots; false when there was nothing to run. */
bool step_run(sched *s);
/* Ends slot's sequence and frees the slot. */
void step_end(sched *s, int32_t slot, sched_finish why, const hearth_err *err);

#endif
