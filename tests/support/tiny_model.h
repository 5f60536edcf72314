/* Test helper: writes a small decoder model (every tensor the model layer needs, and a
 * small SPM tokenizer so the CLI can run it) with the GGUF writer. Shapes come from the
 * true sizes in the spec; each metadata key and each tensor can be written as is, left
 * out, or broken, so fuzzers and tests can explore what loading must refuse. */
#ifndef TESTS_TINY_MODEL_H
#define TESTS_TINY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tiny_key_mode { TINY_KEY_TRUE, TINY_KEY_ABSENT, TINY_KEY_RAW, TINY_KEY_WRONG_TYPE, TINY_KEY_MODES };
enum tiny_tensor_mode { TINY_T_OK, TINY_T_MISSING, TINY_T_GROW, TINY_T_SWAP, TINY_T_RETYPE, TINY_T_MODES };

/* The hyper-parameter keys, each "<arch>.<suffix>". */
enum {
    TINY_K_CTX, TINY_K_EMBD, TINY_K_LAYERS, TINY_K_FF, TINY_K_HEADS, TINY_K_HEADS_KV, TINY_K_KEY_LEN,
    TINY_K_VAL_LEN, TINY_K_ROT, TINY_K_EPS, TINY_K_ROPE_BASE, TINY_K_ROPE_FACTOR, TINY_K_COUNT
};

#define TINY_MAX_TENSORS 64

typedef struct tiny_spec {
    const char *arch;              /* general.architecture ("llama", "qwen2", "qwen3", ...) */
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_vocab; /* true sizes */
    uint32_t weight_type;          /* type of the 2-D weights (F32, F16, Q8_0, ...) */
    uint8_t key_mode[TINY_K_COUNT];  /* tiny_key_mode per key */
    int64_t key_raw[TINY_K_COUNT];   /* value written for TINY_KEY_RAW integer keys (INT64) */
    double key_raw_f[TINY_K_COUNT];  /* value written for TINY_KEY_RAW float keys (FLOAT64) */
    uint8_t tensor_mode[TINY_MAX_TENSORS]; /* tiny_tensor_mode per tensor, in writing order */
    uint32_t retype[TINY_MAX_TENSORS];     /* type for TINY_T_RETYPE */
    bool tokenizer;                /* write the SPM tokenizer (n_vocab + extra_tokens tokens) */
    int64_t extra_tokens;          /* tokens beyond the embedding rows (a broken model when > 0) */
} tiny_spec;

/* A spec whose model loads: the given architecture, 32-wide, one layer, 4 heads of 8
 * (2 KV heads), 48 tokens, F32 weights, every key and tensor true, no tokenizer. */
void tiny_spec_default(tiny_spec *s, const char *arch);

/* Tensors a spec writes (their index is the one tensor_mode and retype use). */
int tiny_tensor_count(const tiny_spec *s);

/* Writes the model into *buf (mem_alloc'd, release with mem_free). Returns false when
 * the writer refuses a broken shape or type, or the sizes are absurd for a test. */
bool tiny_build(const tiny_spec *s, void **buf, size_t *size);

#endif
