/* Private to src/model: the adapter struct shared by loading (lora_load.c) and applying
 * (lora_apply.c), and the hooks the forward pass (forward.c) calls: prepare once per
 * forward, apply after each matmul. Nothing outside src/model includes this file. */
#ifndef MODEL_LORA_IMPL_H
#define MODEL_LORA_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "model/lora.h"
#include "model/model_impl.h"

typedef struct lora_pair {
    const kern_matrix *base; /* the model's matrix this pair adapts ([out] x [in]) */
    kern_matrix a;           /* F32 [rank] x [in] */
    kern_matrix b;           /* F32 [out] x [rank] */
} lora_pair;

struct model_lora {
    atomic_long refs;
    const model *m;          /* the model it was checked against */
    char name[64];
    float alpha;
    int64_t rank;
    int64_t n_pairs;
    lora_pair *pairs;        /* [n_pairs] */
    float *weights;          /* every A and B, one allocation */
    int64_t max_in;          /* widest A input over all pairs */
    int64_t max_out;         /* widest B output over pairs other than the logits matrix */
    int64_t logits_out;      /* n_vocab when the logits matrix is adapted, else 0 */
};


void model_lora_run_free(model_lora_run *r);

/* Checks map against m, notes which adapter applies to which token of b with what
 * coefficient and grows the scratch. Changes nothing but r. */
hearth_status model_lora_prepare(model_lora_run *r, const model *m, const model_ctx_params *p,
                                 const model_batch *b, const model_lora_map *map, hearth_err *err);

/* From now on, matmul rows are b's flagged tokens in order (the logits matmul). */
void model_lora_use_output_rows(model_lora_run *r);

/* y[i] += coef * B·(A·x[i]) for every row i of an n-row matmul of w whose token uses an
 * adapter with a pair for w. */
hearth_status model_lora_apply(model_lora_run *r, kern_pool *pool, const kern_matrix *w, const float *x,
                               int64_t n, float *y, int64_t ldy, hearth_err *err);

#endif
