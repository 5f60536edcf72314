/* Private to src/model: the model struct shared by loading (hparams.c, weights.c,
 * bert.c), the run state shared by the forward passes (forward.c, bert.c), and the
 * binding helpers. Nothing outside src/model includes this file. */
#ifndef MODEL_MODEL_IMPL_H
#define MODEL_MODEL_IMPL_H

#include "model/lora.h"
#include "model/model.h"

typedef struct model_layer {
    float *attn_norm;          /* [n_embd]; bert: LayerNorm after attention */
    kern_matrix wq;            /* [n_head * head_dim_k] x [n_embd] */
    kern_matrix wk;            /* [n_head_kv * head_dim_k] x [n_embd] */
    kern_matrix wv;            /* [n_head_kv * head_dim_v] x [n_embd] */
    kern_matrix wo;            /* [n_embd] x [n_head * head_dim_v] */
    float *bq, *bk, *bv;       /* qwen2 and bert biases, else NULL */
    float *q_norm, *k_norm;    /* qwen3 per-head norms [head_dim_k], else NULL */
    float *ffn_norm;           /* [n_embd]; bert: LayerNorm after the feed-forward */
    kern_matrix w_gate, w_up;  /* [n_ff] x [n_embd]; bert has no gate */
    kern_matrix w_down;        /* [n_embd] x [n_ff] */
    /* bert only, else NULL: */
    float *bo;                 /* [n_embd] attention output bias */
    float *attn_norm_b;        /* [n_embd] */
    float *ffn_norm_b;         /* [n_embd] */
    float *b_up;               /* [n_ff] */
    float *b_down;             /* [n_embd] */
} model_layer;

struct model {
    model_hparams hp;
    kern_matrix tok_embd;      /* [n_vocab] x [n_embd] */
    kern_matrix output;        /* [n_vocab] x [n_embd]; token_embd when tied; empty for bert */
    float *output_norm;        /* [n_embd]; NULL for bert */
    model_layer *layers;       /* [n_layer] */
    /* bert only: */
    kern_matrix pos_embd;      /* [n_ctx_train] x [n_embd] absolute position embeddings */
    kern_matrix type_embd;     /* [token types] x [n_embd]; row 0 is added to every token */
    float *embd_norm;          /* [n_embd] LayerNorm of the summed embeddings */
    float *embd_norm_b;        /* [n_embd] */
    float *f32_arena;          /* one allocation behind every float* above */
    size_t packed_bytes;       /* weights repacked by kern_matrix_prepare (owned) */
};

/* Run state of one model (forward.c allocates it; bert.c reuses the same buffers). */
/* Per model_ctx: the adapters of the current forward and grow-only scratch. */
typedef struct model_lora_run {
    bool active;                     /* some token of this forward has a nonzero scale */
    const model_batch *b;            /* the current batch (borrowed during the forward) */
    bool output_rows;                /* matmul rows are the flagged tokens, not the batch */
    int32_t n_act;                   /* distinct adapters used */
    const model_lora **act;          /* [cap_act] */
    float *coef;                     /* [n_act][b->n] scale * alpha / rank per token */
    int32_t *out_tok;                /* [n_batch] batch index of each flagged token */
    int32_t *rows;                   /* [n_batch] gathered matmul rows */
    float *xg, *h, *yg;              /* gathered inputs, A·x, B·h */
    size_t cap_act, cap_coef, cap_tok, cap_rows, cap_xg, cap_h, cap_yg; /* elements allocated */
} model_lora_run;

/* Tokens order[first .. first + n) attend together (same sequence, consecutive). */
typedef struct attn_block {
    int32_t first, n;
} attn_block;

struct model_ctx {
    const model *m;
    kern_pool *pool;
    model_ctx_params p;
    int n_threads;
    float *x;        /* [n_batch][n_embd] residual stream */
    float *xn;       /* [n_batch][n_embd] normed input of a sub-layer, then its output */
    float *q;        /* [n_batch][n_head * head_dim_k] */
    float *k;        /* [n_batch][n_head_kv * head_dim_k] */
    float *v;        /* [n_batch][n_head_kv * head_dim_v] */
    float *att;      /* [n_batch][n_head * head_dim_v] attention output */
    float *gate;     /* [n_batch][n_ff] */
    float *up;       /* [n_batch][n_ff] */
    float *scores;   /* [n_threads][n_ctx * (KERN_ATTEND_QUERIES + head_dim_k)] (bert.c): attention
                        weights of a few (token, head) queries, then one input's keys of one
                        head, transposed */
    float *attn_ws_raw;
    float *attn_ws;  /* [n_threads][attn_ws_floats] kern_attn workspaces, 64-byte aligned */
    size_t attn_ws_floats;
    float *rope_cs;  /* [n_batch][n_rot] RoPE cos/sin of each token's position */
    int32_t *order;  /* [n_batch] batch indices grouped by sequence, in batch order */
    attn_block *blocks;  /* [n_batch] runs of consecutive tokens of one sequence */
    int32_t n_blocks;
    int attn_heads;  /* query heads of one KV head per attention block (forward.c) */
    int attn_level;  /* kern_cpu_level the attention kernels run at */
    float *out_x;    /* [n_outputs][n_embd] final hidden state of flagged tokens */
    float *logits;   /* [n_outputs][n_vocab]; NULL with embeddings */
    int32_t n_out;   /* rows in out_x (and logits) from the last forward */
    model_lora_run lora; /* adapters selected for the current forward (lora_apply.c) */
    model_interrupt_fn interrupt; /* checked between layers and output pieces; NULL: never */
    void *interrupt_arg;
};

/* Fills hp from f's metadata (hparams.c). n_vocab is set later from token_embd. */
hearth_status model_read_hparams(const gguf_file *f, model_hparams *hp, hearth_err *err);

/* Binds and checks every tensor of m->hp's architecture (weights.c). */
hearth_status model_bind_weights(const gguf_file *f, model *m, hearth_err *err);

/* Where norm weights and biases are converted to; next == NULL only checks them. */
typedef struct f32_arena {
    float *next;
    size_t left;
} f32_arena;

/* Binds tensor name as a rows x cols matrix, checking shape and type (weights.c). */
hearth_status model_bind_matrix(const gguf_file *f, const char *name, int64_t rows, int64_t cols,
                                kern_matrix *out, hearth_err *err);
/* Checks tensor name is a vector of n and converts it into the arena (weights.c). */
hearth_status model_bind_vector(const gguf_file *f, const char *name, int64_t n, f32_arena *a, float **out,
                                hearth_err *err);

/* bert.c: the floats its norm weights and biases need, and its tensors after token_embd. */
size_t model_bert_arena_floats(const model_hparams *hp);
hearth_status model_bert_bind(const gguf_file *f, model *m, f32_arena *a, hearth_err *err);

#endif
