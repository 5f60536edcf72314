/* LoRA adapters over a loaded model, in the llama.cpp GGUF adapter format
 * (general.type = adapter, adapter.type = lora, adapter.lora.alpha, and pairs
 * `<weight>.lora_a` with ne = [in, rank] and `<weight>.lora_b` with ne = [rank, out]).
 * An adapter is checked against its base model in full before it exists, is immutable
 * afterwards, and never changes the base weights: the forward pass adds
 * scale * (alpha / rank) * B·(A·x) to the output of each adapted matrix, only for the
 * tokens whose sequence selected the adapter, so one model serves sequences with
 * different adapters (or none) in the same batch. Handles are reference counted and may
 * be shared between threads; load and release them while the model runs. */
#ifndef MODEL_LORA_H
#define MODEL_LORA_H

#include <stdint.h>

#include "gguf/gguf.h"
#include "hearth.h"
#include "model/model.h"

typedef struct model_lora model_lora;

/* Reads and checks the adapter in f against m: general.type and adapter.type, the
 * architecture (must equal m's), alpha (finite and > 0; absent means alpha = rank),
 * every tensor a `.lora_a`/`.lora_b` half of an adaptable matrix of m (attention q/k/v/
 * output, feed-forward gate/up/down, output) with both halves present, shapes matching
 * the base matrix, one rank across the file, a computable type and finite values. The
 * weights are copied (as float32), so f may be closed afterwards. The adapter may only
 * be applied to m, which must outlive it. Errors: FORMAT (not an adapter, a pair half
 * missing, ranks disagreeing, bad alpha, non-finite weights, other tensors), INVALID (made
 * for another model: architecture, target or shape not in m), UNSUPPORTED (another
 * adapter type, a tensor type without kernels, a model family without adapter support),
 * NOMEM. On failure *out is NULL and nothing was changed. One reference is returned. */
hearth_status model_lora_new(const model *m, const gguf_file *f, model_lora **out, hearth_err *err);

/* Opens path and runs model_lora_new; messages start with the path. */
hearth_status model_lora_open(const model *m, const char *path, model_lora **out, hearth_err *err);

/* Reference counting (atomic): retain returns a; release frees on the last reference
 * (accepts NULL). A forward pass does not take references: the caller holds one. */
model_lora *model_lora_retain(model_lora *a);
void model_lora_release(model_lora *a);

const char *model_lora_name(const model_lora *a); /* general.name, else "adapter" */
int64_t model_lora_rank(const model_lora *a);
float model_lora_alpha(const model_lora *a);
int64_t model_lora_n_targets(const model_lora *a); /* adapted matrices */
/* The kinds of matrices a adapts ("attn_q", "attn_k", "attn_v", "attn_output",
 * "ffn_gate", "ffn_up", "ffn_down", "output"; static strings, in that order) into
 * kinds[0..cap); returns how many there are. */
size_t model_lora_target_kinds(const model_lora *a, const char **kinds, size_t cap);

/* ---- selection per sequence ----------------------------------------------------- */
/* One adapter applied with a user scale (any finite value; 0 leaves the model as is). */
typedef struct model_lora_use {
    model_lora *adapter;
    float scale;
} model_lora_use;

/* The adapters one sequence runs with: use[0..n). The same adapter twice adds its scales. */
typedef struct model_lora_set {
    int32_t n;
    const model_lora_use *use;
} model_lora_set;

/* Per sequence id s < n_seq, seq[s]; sequences at or past n_seq use no adapter. */
typedef struct model_lora_map {
    int32_t n_seq;
    const model_lora_set *seq;
} model_lora_map;

/* Checks one set as model_forward_lora does: every adapter non-NULL and made for m,
 * every scale finite. INVALID otherwise. */
hearth_status model_lora_check_set(const model *m, const model_lora_set *set, hearth_err *err);

/* model_forward with adapters selected per sequence by map (borrowed for the call; NULL:
 * none). INVALID when an adapter was made for another model or a scale is not finite;
 * NOMEM when the adapter scratch (grown the first time an adapter larger than any before
 * is used) cannot be allocated. Both are checked before anything changes. */
hearth_status model_forward_lora(model_ctx *c, kv_cache *kv, const model_batch *b, const model_lora_map *map,
                                 hearth_err *err);

#endif
