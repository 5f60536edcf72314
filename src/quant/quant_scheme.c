/* The scheme table and the per-tensor type recipe. The recipe follows the one published
 * with llama.cpp's quantizer (llama_tensor_get_type), restricted to the types Hearth
 * encodes: the output matrix gets Q6_K unless the scheme is Q8_0; in the _M mixes attn_v
 * and ffn_down get Q6_K in the "more bits" layers (the first and last eighth and every
 * third in between); a K-quant whose 256-element blocks do not tile a row falls back to
 * a 32-element type. Pure table logic: never touches tensor data. */
#include <string.h>
#include <strings.h>

#include "quant/quant.h"

static const quant_scheme schemes[] = {
    {"F32", 0, GGML_F32, QUANT_MIX_NONE},     {"F16", 1, GGML_F16, QUANT_MIX_NONE},
    {"BF16", 32, GGML_BF16, QUANT_MIX_NONE},  {"Q4_0", 2, GGML_Q4_0, QUANT_MIX_NONE},
    {"Q4_1", 3, GGML_Q4_1, QUANT_MIX_NONE},   {"Q8_0", 7, GGML_Q8_0, QUANT_MIX_NONE},
    {"Q5_0", 8, GGML_Q5_0, QUANT_MIX_NONE},   {"Q5_1", 9, GGML_Q5_1, QUANT_MIX_NONE},
    {"Q4_K", 14, GGML_Q4_K, QUANT_MIX_NONE},  {"Q4_K_S", 14, GGML_Q4_K, QUANT_MIX_S},
    {"Q4_K_M", 15, GGML_Q4_K, QUANT_MIX_M},   {"Q5_K", 16, GGML_Q5_K, QUANT_MIX_NONE},
    {"Q5_K_S", 16, GGML_Q5_K, QUANT_MIX_S},   {"Q5_K_M", 17, GGML_Q5_K, QUANT_MIX_M},
    {"Q6_K", 18, GGML_Q6_K, QUANT_MIX_NONE},
};

const quant_scheme *quant_scheme_find(const char *name) {
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (!strcasecmp(name, schemes[i].name)) return &schemes[i];
    return NULL;
}

const char *quant_ftype_name(uint32_t ftype) {
    const char *name = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (schemes[i].ftype == ftype && (!name || schemes[i].mix != QUANT_MIX_NONE)) name = schemes[i].name;
    return name;
}

const char *quant_scheme_list(void) {
    return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q4_K_S, Q4_K_M, Q5_K, Q5_K_S, Q5_K_M, Q6_K";
}

static bool is_float_type(uint32_t t) { return t == GGML_F32 || t == GGML_F16 || t == GGML_BF16; }

static bool contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

/* Tensors the reference never quantizes: vectors, norms, expert routers, position and
 * token-type embeddings. */
static bool quantizable(const quant_tensor_desc *t) {
    return t->n_dims >= 2 && !contains(t->name, "_norm.weight") && !contains(t->name, "ffn_gate_inp.weight") &&
           strcmp(t->name, "position_embd.weight") != 0 && strcmp(t->name, "token_types.weight") != 0;
}

static uint32_t block_elems(uint32_t type) { return ggml_type_get(type)->block_elems; }

static bool use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

typedef struct plan_state {
    bool has_output;
    int64_t n_attn_v, n_ffn_down;
    int64_t i_attn_v, i_ffn_down;
} plan_state;

static uint32_t recipe_type(const quant_scheme *s, plan_state *st, const quant_tensor_desc *t) {
    uint32_t type = s->base_type;
    bool is_output = !strcmp(t->name, "output.weight") || (!st->has_output && !strcmp(t->name, "token_embd.weight"));
    if (is_output) {
        if (t->ne[0] % block_elems(type) != 0) type = GGML_Q8_0;
        else if (type != GGML_Q8_0) type = GGML_Q6_K;
    } else if (contains(t->name, "attn_v.weight")) {
        if (s->mix == QUANT_MIX_M && use_more_bits(st->i_attn_v, st->n_attn_v)) type = GGML_Q6_K;
        else if (s->mix == QUANT_MIX_S && s->base_type == GGML_Q4_K && st->i_attn_v < 4) type = GGML_Q5_K;
        st->i_attn_v++;
    } else if (contains(t->name, "ffn_down")) {
        if (s->mix == QUANT_MIX_M && use_more_bits(st->i_ffn_down, st->n_ffn_down)) type = GGML_Q6_K;
        else if (s->mix == QUANT_MIX_S && s->base_type == GGML_Q4_K && st->i_ffn_down < st->n_ffn_down / 8)
            type = GGML_Q5_K;
        st->i_ffn_down++;
    } else if (contains(t->name, "attn_qkv.weight") && s->mix == QUANT_MIX_M) {
        type = s->base_type == GGML_Q4_K ? GGML_Q5_K : GGML_Q6_K;
    }
    return type;
}

/* The reference's substitutes for a K-quant whose blocks do not tile the row; F16 when
 * even 32-element blocks do not. */
static uint32_t fallback_type(uint32_t type, int64_t row) {
    switch (type) {
    case GGML_Q4_K: type = GGML_Q5_0; break;
    case GGML_Q5_K: type = GGML_Q5_1; break;
    case GGML_Q6_K: type = GGML_Q8_0; break;
    default: type = GGML_F16; break;
    }
    return row % block_elems(type) == 0 ? type : GGML_F16;
}

void quant_plan_file(const quant_scheme *s, const quant_tensor_desc *tensors, uint64_t n,
                     quant_tensor_plan *out) {
    plan_state st = {0};
    for (uint64_t i = 0; i < n; i++) {
        const quant_tensor_desc *t = &tensors[i];
        st.has_output |= !strcmp(t->name, "output.weight");
        if (!quantizable(t)) continue;
        st.n_attn_v += contains(t->name, "attn_v.weight");
        st.n_ffn_down += contains(t->name, "ffn_down");
    }
    for (uint64_t i = 0; i < n; i++) {
        const quant_tensor_desc *t = &tensors[i];
        out[i] = (quant_tensor_plan){.type = t->src_type, .fallback = false};
        if (t->n_dims < 2) {
            out[i].type = GGML_F32;
            continue;
        }
        if (!quantizable(t)) continue;
        if (is_float_type(s->base_type)) {
            out[i].type = s->base_type;
            continue;
        }
        uint32_t type = recipe_type(s, &st, t);
        if (t->ne[0] % block_elems(type) != 0) {
            type = fallback_type(type, t->ne[0]);
            out[i].fallback = true;
        }
        out[i].type = type;
    }
}
