/* Private to src/model: the model struct shared by loading (hparams.c, weights.c) and
 * the forward pass (forward.c). Nothing outside src/model includes this file. */
#ifndef MODEL_MODEL_IMPL_H
#define MODEL_MODEL_IMPL_H

#include "model/model.h"

typedef struct model_layer {
    float *attn_norm;          /* [n_embd] */
    kern_matrix wq;            /* [n_head * head_dim_k] x [n_embd] */
    kern_matrix wk;            /* [n_head_kv * head_dim_k] x [n_embd] */
    kern_matrix wv;            /* [n_head_kv * head_dim_v] x [n_embd] */
    kern_matrix wo;            /* [n_embd] x [n_head * head_dim_v] */
    float *bq, *bk, *bv;       /* qwen2 biases, else NULL */
    float *q_norm, *k_norm;    /* qwen3 per-head norms [head_dim_k], else NULL */
    float *ffn_norm;           /* [n_embd] */
    kern_matrix w_gate, w_up;  /* [n_ff] x [n_embd] */
    kern_matrix w_down;        /* [n_embd] x [n_ff] */
} model_layer;

struct model {
    model_hparams hp;
    kern_matrix tok_embd;      /* [n_vocab] x [n_embd] */
    kern_matrix output;        /* [n_vocab] x [n_embd]; token_embd when tied */
    float *output_norm;        /* [n_embd] */
    model_layer *layers;       /* [n_layer] */
    float *f32_arena;          /* one allocation behind every float* above */
};

/* Fills hp from f's metadata (hparams.c). n_vocab is set later from token_embd. */
hearth_status model_read_hparams(const gguf_file *f, model_hparams *hp, hearth_err *err);

/* Binds and checks every tensor of m->hp's architecture (weights.c). */
hearth_status model_bind_weights(const gguf_file *f, model *m, hearth_err *err);

#endif
