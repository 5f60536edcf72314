/* Single-sequence generation: a loaded model file (weights + tokenizer), an engine that
 * owns the run state, KV cache and thread pool for one sequence, prompt evaluation (for
 * logits) and the generation loop (prefill in batches, sample, decode one token per step,
 * stop on end-of-generation or a token count, stream text through the UTF-8-safe
 * detokenizer). The server's scheduler will batch many sequences over the same model
 * layer; this file is what the CLI and tests use. Never prints; reports through
 * callbacks and hearth_err. */
#ifndef ENGINE_GENERATE_H
#define ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "hearth.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

/* ---- a model file, opened and checked ------------------------------------------ */
typedef struct gen_model {
    gguf_file *file;   /* the mapping the weights point into */
    model *model;
    tok_vocab *vocab;
} gen_model;

/* Opens path, reads the model and its tokenizer; checks that the tokenizer's ids fit the
 * embedding table. Errors: NOT_FOUND/IO/FORMAT from the file, FORMAT/UNSUPPORTED from
 * the model or tokenizer, NOMEM. The message starts with the path. */
hearth_status gen_model_open(const char *path, gen_model **out, hearth_err *err);
void gen_model_close(gen_model *gm); /* accepts NULL */

/* ---- engine ---------------------------------------------------------------------- */
#define GEN_DEFAULT_CTX 4096
#define GEN_DEFAULT_BATCH 256

typedef struct gen_config {
    int64_t n_ctx;     /* positions of the sequence; <= 0: min(training context, GEN_DEFAULT_CTX);
                          larger than the training context is refused */
    int32_t n_batch;   /* most tokens per forward pass when evaluating a prompt; <= 0: default */
    int n_threads;     /* <= 0: one per physical core */
    bool all_logits;   /* gen_eval may ask for every position's logits */
} gen_config;

typedef struct gen_engine gen_engine;

/* Borrows m and v (they must outlive the engine). INVALID/RANGE for a bad config, NOMEM. */
hearth_status gen_engine_new(const model *m, const tok_vocab *v, const gen_config *cfg, gen_engine **out,
                             hearth_err *err);
void gen_engine_free(gen_engine *e); /* accepts NULL */
int64_t gen_n_ctx(const gen_engine *e);
int gen_n_threads(const gen_engine *e);

/* Runs the sequence with the adapters uses[0..n) (n = 0: none) from the next evaluation
 * on. The engine takes its own reference to each and drops those of the previous set.
 * INVALID for a NULL adapter, a scale that is not finite or an adapter of another model;
 * NOMEM. On failure the previous set stays. */
hearth_status gen_set_lora(gen_engine *e, const model_lora_use *uses, int32_t n, hearth_err *err);

/* Forgets the sequence (positions restart at 0). */
void gen_reset(gen_engine *e);

/* Receives one row of logits: row index (position in the evaluated tokens), n_vocab
 * floats valid during the call. A non-OK return stops the evaluation with that status. */
typedef hearth_status (*gen_rows_fn)(void *ud, int64_t index, const float *logits, int64_t n_vocab,
                                     hearth_err *err);

/* Appends tokens to the sequence and runs them in batches of n_batch. Calls fn for every
 * token when all (needs cfg.all_logits), else once for the last one. RANGE when the
 * tokens do not fit the context (checked before computing), INVALID for an empty list or
 * an id outside the vocabulary. */
hearth_status gen_eval(gen_engine *e, const int32_t *tokens, size_t n, bool all, gen_rows_fn fn, void *ud,
                       hearth_err *err);

/* ---- generation ------------------------------------------------------------------ */
typedef enum gen_stop {
    GEN_STOP_EOG = 1,     /* the model produced an end-of-generation token (not emitted) */
    GEN_STOP_LENGTH = 2,  /* n_predict tokens were generated */
    GEN_STOP_CONTEXT = 3, /* the context filled up */
    GEN_STOP_CALLER = 4,  /* the piece callback asked to stop */
} gen_stop;

typedef struct gen_request {
    const int32_t *prompt;          /* [n_prompt] token ids */
    size_t n_prompt;
    int32_t n_predict;              /* most tokens to generate; <= 0: until EOG or a full context */
    const sampler_params *sampling; /* NULL: greedy */
} gen_request;

typedef struct gen_stats {
    int64_t n_prompt, n_generated;
    double prompt_s, gen_s;         /* wall time of prefill and of decoding */
    gen_stop stop;
} gen_stats;

/* Receives each generated token and the text it completes (may be empty while a UTF-8
 * character is incomplete; token -1 for the final flush). Return false to stop. */
typedef bool (*gen_piece_fn)(void *ud, int32_t token, const char *text, size_t len);

/* Resets the sequence, evaluates the prompt and generates. RANGE when the prompt does
 * not fit the context; INVALID for bad sampling parameters or an empty prompt. */
hearth_status gen_generate(gen_engine *e, const gen_request *r, gen_piece_fn fn, void *ud, gen_stats *stats,
                           hearth_err *err);

#endif
