/* The ggml tensor type table: ids, names and block layouts as stored in GGUF files.
 * The reader uses it to size tensors; the kernels say which of these they can compute. */
#ifndef GGUF_TYPES_H
#define GGUF_TYPES_H

#include <stdbool.h>
#include <stdint.h>

typedef enum ggml_type {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3,
    GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8, GGML_Q8_1 = 9,
    GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14,
    GGML_Q8_K = 15, GGML_IQ2_XXS = 16, GGML_IQ2_XS = 17, GGML_IQ3_XXS = 18,
    GGML_IQ1_S = 19, GGML_IQ4_NL = 20, GGML_IQ3_S = 21, GGML_IQ2_S = 22, GGML_IQ4_XS = 23,
    GGML_I8 = 24, GGML_I16 = 25, GGML_I32 = 26, GGML_I64 = 27, GGML_F64 = 28,
    GGML_IQ1_M = 29, GGML_BF16 = 30, GGML_TQ1_0 = 34, GGML_TQ2_0 = 35, GGML_MXFP4 = 39,
    GGML_TYPE_LIMIT = 64,
} ggml_type;

typedef struct ggml_type_info {
    const char *name;      /* "Q4_K", "F16", ... ; NULL for an unknown id */
    uint32_t block_elems;  /* elements per block (1 for plain types) */
    uint32_t block_bytes;  /* bytes per block */
} ggml_type_info;

/* Info for a type id; name == NULL when the id is not a known ggml type. */
const ggml_type_info *ggml_type_get(uint32_t type);

/* Case-insensitive name lookup ("q4_k" -> GGML_Q4_K); false if unknown. */
bool ggml_type_from_name(const char *name, uint32_t *out);

#endif
