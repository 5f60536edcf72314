/* Cross-request batching of embeddings: one thread per embedding model owns an embed_ctx
 * and a bounded queue of inputs. Requests submit their inputs (a ticket) and wait; the
 * thread packs queued inputs from any number of tickets into one forward pass up to a
 * token budget and an input count, runs it, and copies each input's vector into its
 * ticket's output. Inputs of one pass share pooling and normalisation (others wait for a
 * later pass). A full queue refuses a submission at once (BUSY); freeing a ticket cancels
 * its inputs still queued and waits for a pass that is using them. Never prints. */
#ifndef ENGINE_EMBED_BATCHER_H
#define ENGINE_EMBED_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/embed.h"
#include "hearth.h"
#include "model/model.h"

#define EMBED_BATCHER_DEFAULT_TOKENS 2048
#define EMBED_BATCHER_DEFAULT_SEQ 128
#define EMBED_BATCHER_DEFAULT_QUEUE 8192

typedef struct embed_batcher_config {
    int64_t n_ctx;        /* longest input; <= 0: min(training context, EMBED_DEFAULT_CTX) */
    int32_t batch_tokens; /* most tokens per pass; <= 0: EMBED_BATCHER_DEFAULT_TOKENS (raised to n_ctx) */
    int32_t max_seq;      /* most inputs per pass; <= 0: EMBED_BATCHER_DEFAULT_SEQ */
    int64_t max_queue;    /* most inputs waiting; <= 0: EMBED_BATCHER_DEFAULT_QUEUE */
    int n_threads;        /* compute threads; <= 0: one per physical core */
} embed_batcher_config;

typedef struct embed_batcher_stats {
    uint64_t passes, inputs, tokens; /* forward passes run, inputs and tokens embedded */
    uint64_t max_pass_inputs;        /* the most inputs one pass held */
    int64_t queued;                  /* inputs waiting now */
} embed_batcher_stats;

typedef struct embed_batcher embed_batcher;
typedef struct embed_ticket embed_ticket;

/* Starts the thread over m (borrowed: it must outlive the batcher). Errors as
 * embed_ctx_new, NOMEM. */
hearth_status embed_batcher_new(const model *m, const embed_batcher_config *cfg, embed_batcher **out,
                                hearth_err *err);
/* Stops the thread. Every ticket must have been freed. Accepts NULL. */
void embed_batcher_free(embed_batcher *b);
int64_t embed_batcher_n_embd(const embed_batcher *b);
int64_t embed_batcher_n_ctx(const embed_batcher *b);
void embed_batcher_get_stats(embed_batcher *b, embed_batcher_stats *out);
/* While held, the thread starts no new pass (a running one finishes): inputs queue up.
 * For tests that need a known packing, and for pausing a model. */
void embed_batcher_hold(embed_batcher *b, bool hold);

/* Queues in[0..n) (token arrays borrowed until the ticket is freed) to be embedded into
 * out[n][n_embd] (borrowed likewise). o->pooling must not be NONE and o->truncate is
 * ignored: inputs must fit the context. Every input is checked first: INVALID (no
 * inputs, an empty input, a token outside the vocabulary, pooling NONE), RANGE (longer
 * than the context), naming the input's index; BUSY when the queue has no room for all
 * n; NOMEM. */
hearth_status embed_batcher_submit(embed_batcher *b, const embed_input *in, size_t n, const embed_opts *o, float *out,
                                   embed_ticket **t, hearth_err *err);
/* Waits at most timeout_ms for every input of t; true when they are all done (or the
 * ticket failed). */
bool embed_ticket_wait(embed_ticket *t, int timeout_ms);
/* OK when every input was embedded; else the status of the pass that failed. */
hearth_status embed_ticket_status(const embed_ticket *t, hearth_err *err);
/* Cancels what is still queued, waits for a pass using t's inputs, frees. Accepts NULL. */
void embed_ticket_free(embed_ticket *t);

#endif
