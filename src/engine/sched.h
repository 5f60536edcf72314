/* Continuous-batching scheduler: one thread per loaded model runs steps. Each step
 * decodes one token for every running sequence and fills the rest of the step's token
 * budget with prompt chunks of waiting sequences (chunked prefill, decode first). KV
 * pages come from one paged cache shared by all slots; a new prompt reuses the cached
 * pages of the longest matching prefix (a second chat turn or a repeated system prompt
 * is not recomputed). Requests beyond the slots wait in a bounded queue; when it is full
 * sched_submit answers BUSY at once with a Retry-After estimate from measured throughput.
 * Detokenization (UTF-8 safe) and stop strings are applied here, so every text event is
 * final. This layer knows nothing of HTTP or JSON.
 *
 * Threading: sched_submit/sched_next/sched_cancel/sched_release are safe from any thread;
 * the model, KV cache and sampler are touched only by the scheduler thread. */
#ifndef ENGINE_SCHED_H
#define ENGINE_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "hearth.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* Half the default step; see docs/PERFORMANCE.md, "Serving", for how it was chosen. */
#define PREFILL_TOKENS_DEFAULT 256

typedef struct sched_params {
    int32_t n_slots;      /* sequences decoded concurrently (default 8) */
    int64_t n_ctx;        /* positions per sequence (prompt + output); <= 0: min(training
                             context, 4096); more than the training context is refused */
    int32_t max_queue;    /* waiting requests beyond the slots before BUSY (default 64; 0: none) */
    int32_t step_tokens;  /* most tokens per forward step (decode + prefill chunks, default 512);
                             at least n_slots */
    int32_t prefill_tokens; /* most prompt tokens per step, on top of the decode tokens (default
                             PREFILL_TOKENS_DEFAULT; <= 0: step_tokens): bounds the time running
                             sequences wait for a prompt, and finishes prompts one after another */
    int n_threads;        /* kernel threads; <= 0: physical cores */
    int32_t prefix_slots; /* finished sequences whose pages are kept for prefix reuse
                             (default n_slots; 0: only running sequences are shared) */
    int32_t max_unread;   /* generated tokens a sequence may hold that its consumer has not
                             read; beyond that it is cancelled (default 1024) */
} sched_params;

/* The defaults above. The KV pool holds n_slots * n_ctx positions (rounded up to pages);
 * cached prefixes live in pages no running sequence needs and are evicted, least recently
 * used first, when one does. */
void sched_params_default(sched_params *p);

typedef struct sched sched;

/* Starts the scheduler thread over m/v (borrowed; must outlive it). INVALID/RANGE for bad
 * parameters, NOMEM. */
hearth_status sched_new(const model *m, const tok_vocab *v, const sched_params *p, sched **out, hearth_err *err);
/* Stops the thread; running and queued sequences end with SCHED_FINISH_CANCELLED. Their
 * handles stay valid (sched_next delivers the last event) until sched_release. */
void sched_free(sched *s); /* accepts NULL */

typedef struct sched_request {
    const int32_t *prompt;        /* [n_prompt], copied by sched_submit */
    size_t n_prompt;
    int32_t max_tokens;           /* > 0; the context also bounds it */
    bool ignore_eos;              /* keep going past end-of-generation tokens */
    sampler_params sampling;      /* bias array copied */
    const char *const *stop;      /* [n_stop] stop strings, copied */
    size_t n_stop;
    int n_logprobs;               /* -1: none; 0..20: chosen token's logprob + that many top */
    uint64_t deadline_ns;         /* clock_mono_ns() deadline; 0: none */
    model_lora_set lora;          /* adapters of the sequence (n = 0: none; at most
                                     SCHED_MAX_LORA); borrowed: the scheduler retains each
                                     adapter until the sequence is done, so the caller may
                                     release its own references at once. Uses with scale 0
                                     are dropped. Prefix reuse only matches pages computed
                                     with the same adapters and scales. */
    const int32_t *shown_control; /* [n_shown_control] control tokens whose text appears in
                                     the generated text as written (tool-call markers such
                                     as "[TOOL_CALLS]"), copied; every other control token
                                     is no text. Each must be a control token of the
                                     vocabulary (INVALID otherwise); at most
                                     SCHED_MAX_SHOWN_CONTROL. End-of-generation tokens are
                                     never text, listed or not (they end the sequence, or
                                     with ignore_eos are dropped from the text). */
    size_t n_shown_control;
    double max_queue_wait_s;      /* > 0: the longest this request may wait for a slot (see
                                     "Queue-wait admission" below); 0: no bound */
    struct sched_refusal *refusal; /* optional: filled when sched_submit answers BUSY */
} sched_request;

/* Queue-wait admission (sched_admit.c). With max_queue_wait_s > 0, sched_submit estimates
 * how long the request would wait for a slot (sched_queue_wait_s) and answers BUSY at once
 * when that exceeds the bound; a request it queued that is still without a slot when the
 * scheduler looks (between steps, after filling free slots) max_queue_wait_s after
 * submission ends (finish ERROR, err.status BUSY) instead of being admitted late.
 * The estimate replays the slots' and the queue's work in FIFO order: a slot frees after
 * its sequence's remaining token budget (cap - generated, an upper bound: it may stop
 * earlier) at the measured decode step time; every prompt still to prefill (in the slots
 * and ahead in the queue, prefix reuse ignored) stalls all busy slots for its length at
 * the measured prefill rate; each queued request takes the slot that frees first. */
#define SCHED_MAX_QUEUE_WAIT_S 86400 /* the largest max_queue_wait_s (a day) */

typedef enum sched_busy {
    SCHED_BUSY_NONE = 0,
    SCHED_BUSY_QUEUE_FULL,  /* max_queue requests already wait (or the scheduler stops) */
    SCHED_BUSY_QUEUE_WAIT,  /* the estimated wait for a slot exceeds max_queue_wait_s */
} sched_busy;

typedef struct sched_refusal {
    sched_busy why;
    double wait_s;          /* the estimated wait for a slot (QUEUE_WAIT) */
    double retry_after_s;   /* when to try again, >= 1 s: QUEUE_FULL sched_retry_after_s,
                               QUEUE_WAIT the estimate's excess over the bound */
} sched_refusal;

#define SCHED_MAX_LORA 16
#define SCHED_MAX_SHOWN_CONTROL 64 /* the longest sched_request.shown_control */

typedef enum sched_finish {
    SCHED_FINISH_NONE = 0,
    SCHED_FINISH_STOP,      /* end-of-generation token or a stop string */
    SCHED_FINISH_LENGTH,    /* max_tokens or the context */
    SCHED_FINISH_CANCELLED, /* sched_cancel or sched_free */
    SCHED_FINISH_TIMEOUT,   /* deadline passed */
    SCHED_FINISH_ERROR,
} sched_finish;

typedef struct sched_top { int32_t token; float logprob; } sched_top;

/* One event covers every token generated since the consumer last read, so a slow
 * consumer gets fewer, larger events; the scheduler never waits for it. */
typedef struct sched_event {
    /* text released by this event (may be empty), valid until the next sched_next or
     * sched_release. Text lags tokens while a UTF-8 character or a possible stop string
     * is incomplete, and never contains (or follows) a matched stop string. */
    const char *text;
    size_t len;
    /* tokens this event covers, with logprobs when requested (an end-of-generation
     * token that finished the sequence is not among them) */
    int32_t n_tokens;
    const int32_t *tokens;
    const float *logprobs;        /* [n_tokens] or NULL: log-softmax of the raw logits */
    const sched_top *top;         /* [n_tokens * n_logprobs] or NULL, most likely first;
                                     {-1, -INFINITY} pads rows with fewer finite logits */
    sched_finish finish;          /* != NONE on the last event */
    int stop_index;               /* finish STOP: the index in the request's stop strings of
                                     the one that matched, -1 when an end-of-generation token
                                     ended it (and on every other event) */
    int64_t prompt_tokens, completion_tokens, cached_tokens;  /* usage, on the last event */
    hearth_err err;               /* when finish == ERROR (status BUSY: it waited in the
                                     queue past max_queue_wait_s); CANCELLED/TIMEOUT say why */
} sched_event;

typedef struct sched_seq sched_seq;

/* Queues a request. BUSY at once when the queue is full (sched_retry_after_s gives the
 * estimate) or the estimated wait exceeds r->max_queue_wait_s (r->refusal says which); RANGE when the prompt does not fit the context (message names the counts);
 * INVALID for bad parameters (empty prompt, token outside the vocabulary, max_tokens <= 0,
 * n_logprobs outside -1..20, sampling, stop strings, an adapter made for another model or a
 * non-finite scale), NOMEM. */
hearth_status sched_submit(sched *s, const sched_request *r, sched_seq **out, hearth_err *err);

/* Waits up to timeout_ms (< 0: without limit) for the next event; false on timeout.
 * After an event with finish != NONE there are no more: it returns false at once. One
 * consumer thread per sequence. */
bool sched_next(sched_seq *q, sched_event *ev, int timeout_ms);

/* Asks the sequence to stop; it frees its slot within one step. Idempotent. */
void sched_cancel(sched_seq *q);
/* The caller is done with q: cancels it if still running and frees it later. Also valid
 * after sched_free. q must not be used afterwards. */
void sched_release(sched_seq *q);

/* Seconds a client should wait before retrying: the work ahead (prompt tokens left at the
 * measured prefill speed, max_tokens left at the measured decode speed, over running and
 * queued requests) divided by the number of those requests, i.e. the expected time until
 * one finishes and a queue place opens. Defaults stand in until steps were measured.
 * Clamped to [1, 600]. */
double sched_retry_after_s(const sched *s);

/* Seconds a request submitted now would wait for a slot (0 when one is free for it), as
 * admission estimates it (see "Queue-wait admission"). */
double sched_queue_wait_s(const sched *s);

typedef struct sched_stats {
    int32_t queued, running, n_slots;
    int64_t kv_pages_used, kv_pages_total;
    int64_t prefix_hits_tokens;     /* prompt tokens served from cached pages, total */
    double decode_tps, prefill_tps; /* recent measured throughput (tokens/s, all slots) */
    int64_t steps;                  /* forward steps run */
    int64_t steps_interrupted;      /* decode steps stopped for an arriving prompt (redone with it) */
    double decode_step_s;           /* recent duration of a step without prompt tokens (until
                                       one ran, of the last step); 0 before any step */
    double queue_wait_s;            /* sched_queue_wait_s now */
} sched_stats;
void sched_get_stats(const sched *s, sched_stats *st);

#endif
