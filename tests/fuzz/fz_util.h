/* Shared helpers of the libFuzzer targets and their seed generator: a reader that takes
 * typed values off the fuzz input, fixture paths, and a builder that writes a small
 * decoder model (every tensor the model layer needs) with the GGUF writer. Never used by
 * the library; never aborts except through fz_fail, which reports a broken invariant. */
#ifndef TESTS_FUZZ_FZ_UTIL_H
#define TESTS_FUZZ_FZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- fuzz input ---------------------------------------------------------------- */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);              /* 0 once the input is used up */
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
double fz_f64(fz_in *in);              /* any bit pattern, NaN and infinities included */

/* Prints "fuzz invariant broken: ..." and aborts, so libFuzzer records the input. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- fixtures ------------------------------------------------------------------- */
/* Path of rel under $HEARTH_FIXTURES or the configured fixtures folder (static buffer). */
const char *fz_fixture(const char *rel);
/* Whole file in a malloc'd, NUL-terminated buffer; NULL when it cannot be read. */
char *fz_read_file(const char *path, size_t *len);

/* The vocabularies fuzz_tokenizer loads, relative to the fixtures folder (SPM, byte-level
 * BPE with several pre-tokenizers, WordPiece); each has a ".inp" file of test texts. */
extern const char *const fz_vocab_files[];
extern const size_t fz_n_vocab_files;

/* Fixture chat-template folders ("templates/NAME", "extra/templates/NAME"), sorted;
 * returns how many were found (at most cap), each a malloc'd string. */
size_t fz_template_dirs(char **out, size_t cap);

/* ---- a small model ----------------------------------------------------------------
 * Shapes come from the true sizes below; each metadata key and each tensor can be
 * written as is, left out, or broken, so a fuzzer (or a test) can explore what model
 * loading must refuse. */
enum fz_key_mode { FZ_KEY_TRUE, FZ_KEY_ABSENT, FZ_KEY_RAW, FZ_KEY_WRONG_TYPE, FZ_KEY_MODES };
enum fz_tensor_mode { FZ_T_OK, FZ_T_MISSING, FZ_T_GROW, FZ_T_SWAP, FZ_T_RETYPE, FZ_T_MODES };

enum {
    FZ_K_CTX, FZ_K_EMBD, FZ_K_LAYERS, FZ_K_FF, FZ_K_HEADS, FZ_K_HEADS_KV, FZ_K_KEY_LEN, FZ_K_VAL_LEN,
    FZ_K_ROT, FZ_K_EPS, FZ_K_ROPE_BASE, FZ_K_ROPE_FACTOR, FZ_K_COUNT
};

#define FZ_MAX_TENSORS 64

typedef struct fz_model_spec {
    const char *arch;              /* general.architecture ("llama", "qwen2", "qwen3", ...) */
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_vocab; /* true sizes */
    uint32_t weight_type;          /* type of the 2-D weights (F32, F16, Q8_0, ...) */
    uint8_t key_mode[FZ_K_COUNT];  /* fz_key_mode per key */
    int64_t key_raw[FZ_K_COUNT];   /* value written for FZ_KEY_RAW integer keys */
    double key_raw_f[FZ_K_COUNT];  /* value written for FZ_KEY_RAW float keys */
    uint8_t tensor_mode[FZ_MAX_TENSORS]; /* fz_tensor_mode per tensor, in writing order */
    uint32_t retype[FZ_MAX_TENSORS];     /* type for FZ_T_RETYPE */
} fz_model_spec;

/* A spec whose model loads: the given architecture and sizes, every key and tensor true. */
void fz_model_spec_default(fz_model_spec *s, const char *arch);

/* Writes the model into *buf (mem_alloc'd, release with mem_free). Returns false when
 * the writer refuses a broken shape or type (nothing to test then) or sizes are absurd. */
bool fz_model_build(const fz_model_spec *s, void **buf, size_t *size);

#endif
