/* Model quantization: the named schemes a user asks for ("Q4_K_M", "q8_0", "f16"), the
 * per-tensor type each scheme gives (the published llama.cpp recipe, including its
 * fallbacks for rows that K-quant blocks do not tile), multi-threaded conversion of rows
 * into any type the kernels can encode, and whole-file requantization that streams one
 * tensor at a time into the GGUF writer. Never prints: progress and warnings reach the
 * caller through a callback. */
#ifndef QUANT_QUANT_H
#define QUANT_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "hearth.h"
#include "kernels/kernels.h"

/* Which layer-dependent bumps of the recipe apply on top of the base type. */
typedef enum quant_mix {
    QUANT_MIX_NONE, /* one type (the output matrix still gets Q6_K, as in the reference) */
    QUANT_MIX_S,    /* Q4_K_S: attn_v of the first 4 layers and ffn_down of the first eighth Q5_K */
    QUANT_MIX_M,    /* Q4_K_M/Q5_K_M: attn_v and ffn_down Q6_K in the "more bits" layers */
} quant_mix;

/* A quantization scheme. ftype is the llama_ftype number written to general.file_type. */
typedef struct quant_scheme {
    const char *name;   /* canonical spelling, e.g. "Q4_K_M" */
    uint32_t ftype;
    uint32_t base_type; /* ggml type of most matrices */
    quant_mix mix;
} quant_scheme;

/* Case-insensitive lookup; NULL when the name is not a scheme. */
const quant_scheme *quant_scheme_find(const char *name);
/* Name of a general.file_type number (Q4_K_S for 14, Q5_K_S for 16); NULL if unknown. */
const char *quant_ftype_name(uint32_t ftype);
/* Comma-separated list of the scheme names, for usage messages. */
const char *quant_scheme_list(void);

/* What the plan needs to know about one tensor. */
typedef struct quant_tensor_desc {
    const char *name;
    uint32_t n_dims;
    const int64_t *ne;  /* [n_dims], ne[0] = row length */
    uint32_t src_type;  /* the tensor's current type */
} quant_tensor_desc;

typedef struct quant_tensor_plan {
    uint32_t type;  /* type to write */
    bool fallback;  /* the recipe's type did not tile the rows; a 32-element (or F16) type replaces it */
} quant_tensor_plan;

/* Chooses the output type of every tensor of a file (order matters: layer counters run in
 * file order, as in the reference). 1-D tensors become F32; norms and other tensors the
 * reference never quantizes keep their type; with F32/F16/BF16 schemes every other tensor
 * gets that type; with quantized schemes the recipe of the scheme applies. */
void quant_plan_file(const quant_scheme *s, const quant_tensor_desc *tensors, uint64_t n,
                     quant_tensor_plan *out);

/* ---- row conversion ---------------------------------------------------------- */
/* Writes row `row` (n floats) of a source tensor; called from pool threads at once for
 * different rows, so it must be thread-safe and deterministic per row. */
typedef void (*quant_row_fn)(void *ctx, int64_t row, float *out, int64_t n);

/* Converts n_rows rows of n_cols floats, produced by src, into dst_type rows packed
 * contiguously in dst (n_rows * kern_row_bytes(dst_type, n_cols) bytes). Rows are split
 * across the pool (NULL: one thread); the result does not depend on the thread count.
 * Errors: UNSUPPORTED (no encoder for dst_type), INVALID (n_cols not a multiple of its
 * block), NOMEM. */
hearth_status quant_rows(kern_pool *pool, quant_row_fn src, void *src_ctx, uint32_t dst_type,
                         int64_t n_cols, int64_t n_rows, void *dst, hearth_err *err);

/* ---- whole files --------------------------------------------------------------- */
/* Told about each tensor as it is written (index in file order, tensor count, source
 * tensor, output type). requantized: the source was already quantized and is decoded
 * and encoded again (quality loss the user should hear about). */
typedef void (*quant_progress_fn)(void *ud, uint64_t index, uint64_t count, const gguf_tensor *t,
                                  const quant_tensor_plan *plan, bool requantized);

/* Writes in to out_path with scheme s: all metadata copied (general.file_type set to the
 * scheme's ftype, general.quantization_version to 2 for quantized schemes), tensors in
 * the same order, each converted while it is written, so memory holds one output tensor
 * at a time. Atomic: on failure nothing is left at out_path. Errors: UNSUPPORTED (a
 * tensor type that cannot be decoded), IO, NOMEM. */
hearth_status quant_file(const gguf_file *in, const char *out_path, const quant_scheme *s, kern_pool *pool,
                         quant_progress_fn progress, void *ud, hearth_err *err);

#endif
