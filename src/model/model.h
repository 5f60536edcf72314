/* The model layer: hyper-parameters and weights of a transformer read from a GGUF file
 * (decoders llama/mistral, qwen2, qwen3; the encoder bert), and the forward pass over a
 * batch of tokens that may belong to several sequences. Loading checks every key, shape
 * and tensor type before anything is computed; the forward pass never reads outside what
 * loading checked. This layer never opens files, prints, or samples: it turns token ids
 * into logits or hidden states. */
#ifndef MODEL_MODEL_H
#define MODEL_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/kv_cache.h"
#include "gguf/gguf.h"
#include "hearth.h"
#include "kernels/kernels.h"

typedef enum model_arch {
    MODEL_ARCH_LLAMA, /* also "mistral": same graph */
    MODEL_ARCH_QWEN2, /* llama + q/k/v biases, NEOX rope */
    MODEL_ARCH_QWEN3, /* llama + per-head q/k RMS norms, explicit head dim, NEOX rope */
    MODEL_ARCH_BERT,  /* encoder: absolute positions, post-LayerNorm, GELU, bidirectional */
} model_arch;

typedef struct model_hparams {
    model_arch arch;
    char arch_name[32];  /* general.architecture as written in the file */
    int64_t n_ctx_train; /* positions the model was trained for */
    int64_t n_embd;      /* residual width */
    int64_t n_layer;
    int64_t n_ff;        /* feed-forward hidden width */
    int64_t n_head;      /* query heads */
    int64_t n_head_kv;   /* key/value heads (GQA: divides n_head) */
    int64_t head_dim_k;  /* elements per query/key head */
    int64_t head_dim_v;  /* elements per value head */
    int64_t n_rot;       /* leading elements of each head that RoPE rotates (even) */
    int64_t n_vocab;     /* rows of token_embd */
    float norm_eps;      /* RMS norm epsilon (bert: LayerNorm epsilon) */
    float rope_base;     /* RoPE frequency base */
    float rope_scale;    /* position multiplier (1 / linear scaling factor) */
    bool rope_neox;      /* pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    bool causal;         /* attention sees only earlier positions; false for bert unless
                            <arch>.attention.causal says true */
    int32_t pooling;     /* <arch>.pooling_type: -1 absent, 0 none, 1 mean, 2 cls, 3 last */
} model_hparams;

typedef struct model model;

/* Reads hyper-parameters and binds weights of f. The model borrows f's mapping: f must
 * outlive it. Errors: FORMAT (missing/out-of-range key, missing tensor, wrong shape),
 * UNSUPPORTED (architecture or tensor type), NOMEM. */
hearth_status model_new(const gguf_file *f, model **out, hearth_err *err);
void model_free(model *m); /* accepts NULL */
const model_hparams *model_hp(const model *m);
/* Bytes of the weights repacked at load (kern_matrix_prepare), held besides the mapping. */
size_t model_packed_bytes(const model *m);
/* True for encoders (bert): run with model_encode, they produce hidden states only. */
bool model_is_encoder(const model *m);

/* ---- batch --------------------------------------------------------------------- */
/* Tokens to run in one forward pass. Token i belongs to sequence seq[i] at position
 * pos[i]; its logits are computed only when logits[i] is set. Within one sequence the
 * tokens appear in order and continue exactly where the sequence's cache ends. */
typedef struct model_batch {
    int32_t n;        /* tokens in use */
    int32_t cap;      /* capacity of each array */
    int32_t *token;   /* [cap] */
    int32_t *pos;     /* [cap] */
    int32_t *seq;     /* [cap] */
    bool *logits;     /* [cap] */
} model_batch;

hearth_status model_batch_init(model_batch *b, int32_t cap, hearth_err *err);
void model_batch_free(model_batch *b);
void model_batch_clear(model_batch *b);
/* Appends one token; false when the batch is full. */
bool model_batch_add(model_batch *b, int32_t token, int32_t pos, int32_t seq, bool logits);

/* ---- run state ----------------------------------------------------------------- */
typedef struct model_ctx_params {
    int32_t n_batch;   /* most tokens per forward pass */
    int32_t n_outputs; /* most tokens with logits per forward pass (<= n_batch) */
    int64_t n_ctx;     /* longest sequence attention must cover (scratch per thread) */
    bool embeddings;   /* flagged tokens yield their final hidden state (model_embedding)
                          instead of logits; required for encoders */
} model_ctx_params;

typedef struct model_ctx model_ctx;

/* Activation scratch for batches up to the given sizes, allocated once. The context
 * borrows m and pool (NULL pool: single-threaded); both must outlive it. INVALID for bad
 * sizes or an encoder without embeddings. */
hearth_status model_ctx_new(const model *m, const model_ctx_params *p, kern_pool *pool,
                            model_ctx **out, hearth_err *err);
void model_ctx_free(model_ctx *c); /* accepts NULL */

/* A check the decoder's forward pass makes before each layer and before each piece of
 * the output projection (which then runs in pieces): when it returns true the pass stops,
 * leaves the cache as it was and returns HEARTH_ERR_CANCELLED. For a caller that would
 * rather redo a pass than keep new work waiting behind it. fn NULL: no checks. */
typedef bool (*model_interrupt_fn)(void *arg);
void model_ctx_set_interrupt(model_ctx *c, model_interrupt_fn fn, void *arg);

/* A KV cache configuration matching m's layers and heads, for n_ctx positions per
 * sequence and n_seq sequences. */
kv_config model_kv_config(const model *m, int64_t n_ctx, int32_t n_seq);

/* Runs batch b through a decoder: appends each token's keys and values to kv and
 * computes logits (or hidden states, see embeddings) for the flagged tokens, in batch
 * order, into the context's output buffer (read it with model_logits/model_embedding).
 * Checks the whole batch first (token ids, sizes, positions, cache room) and changes
 * nothing when it fails: INVALID for a malformed batch or an encoder model, RANGE when a
 * sequence would exceed its capacity, CANCELLED when the interrupt check stopped it. */
hearth_status model_forward(model_ctx *c, kv_cache *kv, const model_batch *b, hearth_err *err);

/* Runs an encoder over batch b, without a cache: a token at position 0 starts an input,
 * every other token continues the one before it (same sequence id, next position).
 * Attention covers the token's whole input (only earlier positions when the model is
 * causal) and never crosses inputs. Flagged tokens get their final hidden state. Checks
 * the batch first: INVALID for a malformed batch or a decoder model, RANGE for a
 * position past the context. */
hearth_status model_encode(model_ctx *c, const model_batch *b, hearth_err *err);

/* Logits of the i-th flagged token of the last forward pass: [n_vocab] floats, valid
 * until the next forward. Only for contexts without embeddings. */
const float *model_logits(const model_ctx *c, int32_t i);
/* Final hidden state of the i-th flagged token (after the output norm, where the
 * architecture has one): [n_embd] floats, valid until the next forward. Only for
 * contexts made with embeddings. */
const float *model_embedding(const model_ctx *c, int32_t i);
int32_t model_n_outputs(const model_ctx *c);

#endif
