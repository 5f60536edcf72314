/* The ggml tensor type table: for every type id a GGUF file may carry, its name and block
 * layout (elements per block, bytes per block). Ids that ggml retired (4, 5, 31-33 and
 * 36-38, the old interleaved Q4_0/IQ4_NL layouts) are unknown here, so files using them are
 * refused. This file only describes layouts; it never computes on tensor data. */
#include "gguf/types.h"

#include <ctype.h>

#define QK_K 256

static const ggml_type_info type_table[GGML_TYPE_LIMIT] = {
    [GGML_F32] = {"F32", 1, 4},
    [GGML_F16] = {"F16", 1, 2},
    [GGML_Q4_0] = {"Q4_0", 32, 2 + 16},
    [GGML_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},
    [GGML_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},
    [GGML_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [GGML_Q8_0] = {"Q8_0", 32, 2 + 32},
    [GGML_Q8_1] = {"Q8_1", 32, 2 + 2 + 32},
    [GGML_Q2_K] = {"Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2},
    [GGML_Q3_K] = {"Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2},
    [GGML_Q4_K] = {"Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2},
    [GGML_Q5_K] = {"Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2},
    [GGML_Q6_K] = {"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
    [GGML_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    [GGML_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 8 * 2},
    [GGML_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
    [GGML_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + 3 * QK_K / 8},
    [GGML_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 32 * 2},
    [GGML_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [GGML_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64},
    [GGML_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32},
    [GGML_IQ4_XS] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2},
    [GGML_I8] = {"I8", 1, 1},
    [GGML_I16] = {"I16", 1, 2},
    [GGML_I32] = {"I32", 1, 4},
    [GGML_I64] = {"I64", 1, 8},
    [GGML_F64] = {"F64", 1, 8},
    [GGML_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [GGML_BF16] = {"BF16", 1, 2},
    [GGML_TQ1_0] = {"TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2},
    [GGML_TQ2_0] = {"TQ2_0", QK_K, QK_K / 4 + 2},
    [GGML_MXFP4] = {"MXFP4", 32, 1 + 16},
};

static const ggml_type_info unknown_type = {0};

const ggml_type_info *ggml_type_get(uint32_t type) {
    if (type >= GGML_TYPE_LIMIT || !type_table[type].name) return &unknown_type;
    return &type_table[type];
}

static bool name_equal_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return false;
    return *a == *b;
}

bool ggml_type_from_name(const char *name, uint32_t *out) {
    if (!name) return false;
    for (uint32_t t = 0; t < GGML_TYPE_LIMIT; t++) {
        if (type_table[t].name && name_equal_nocase(type_table[t].name, name)) {
            if (out) *out = t;
            return true;
        }
    }
    return false;
}
