/* Embeddings: runs tokenized inputs through a model and pools each input's final hidden
 * states into one vector (or keeps one per token), optionally L2-normalised. Works for
 * encoders (bert) and decoders (llama, qwen2, qwen3: hidden states after the final norm).
 * Several inputs share one forward pass; attention never crosses inputs, so an input's
 * embedding does not depend on what it was batched with (up to float rounding).
 * Never prints; one embed_ctx is used by one thread at a time. */
#ifndef ENGINE_EMBED_H
#define ENGINE_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "model/model.h"

/* Numbered as <arch>.pooling_type in GGUF files. */
typedef enum embed_pooling {
    EMBED_POOL_DEFAULT = -1, /* the model's pooling_type; absent: mean (encoders), last (decoders) */
    EMBED_POOL_NONE = 0,     /* one row per token */
    EMBED_POOL_MEAN = 1,     /* average over all the input's tokens (special tokens included) */
    EMBED_POOL_CLS = 2,      /* the first token's state */
    EMBED_POOL_LAST = 3,     /* the last token's state */
} embed_pooling;

/* "none", "mean", "cls", "last" (and "default"); false for anything else. */
bool embed_pooling_parse(const char *s, embed_pooling *out);
const char *embed_pooling_name(embed_pooling p);
/* What EMBED_POOL_DEFAULT means for m. */
embed_pooling embed_model_pooling(const model *m);

#define EMBED_DEFAULT_CTX 4096
#define EMBED_DEFAULT_SEQ 64

typedef struct embed_config {
    int64_t n_ctx;   /* longest input in tokens; <= 0: min(training context, EMBED_DEFAULT_CTX);
                        larger than the training context is refused */
    int32_t n_batch; /* most tokens per forward pass; <= 0 or < n_ctx: n_ctx */
    int32_t n_seq;   /* most inputs per forward pass; <= 0: EMBED_DEFAULT_SEQ */
    int n_threads;   /* <= 0: one per physical core */
} embed_config;

typedef struct embed_ctx embed_ctx;

/* Run state for m (borrowed: it must outlive the context): threads, activations for
 * n_batch tokens and, for decoders, a KV cache for one pass. RANGE/INVALID for a bad
 * configuration, NOMEM. */
hearth_status embed_ctx_new(const model *m, const embed_config *cfg, embed_ctx **out, hearth_err *err);
void embed_ctx_free(embed_ctx *e); /* accepts NULL */
int64_t embed_n_embd(const embed_ctx *e);
int64_t embed_n_ctx(const embed_ctx *e);

typedef struct embed_input {
    const int32_t *tokens; /* [n] ids, with the model's special tokens already added */
    size_t n;
} embed_input;

typedef struct embed_opts {
    embed_pooling pooling;
    bool normalize; /* scale each row to unit L2 norm (an all-zero row stays zero) */
    bool truncate;  /* cut inputs longer than the context to its first n_ctx tokens
                       instead of refusing them */
} embed_opts;

/* pooling DEFAULT, normalize, no truncation. */
void embed_opts_default(embed_opts *o);

/* Rows embed_batch writes: one per input, or with pooling NONE one per token (after
 * truncation). */
size_t embed_rows(const embed_ctx *e, const embed_input *in, size_t n_in, const embed_opts *o);

/* Embeds n_in inputs into out: [out_rows][n_embd] floats, rows in input order (with
 * pooling NONE, each input's tokens in order). Inputs are packed into as few forward
 * passes as n_batch and n_seq allow. Every input is checked before anything runs:
 * INVALID for no inputs, an empty input, a token outside the vocabulary or out_rows too
 * small; RANGE for an input longer than the context (unless truncate). Messages name the
 * input's index. */
hearth_status embed_batch(embed_ctx *e, const embed_input *in, size_t n_in, const embed_opts *o, float *out,
                          size_t out_rows, hearth_err *err);

#endif
