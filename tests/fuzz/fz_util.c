/* Fuzz helpers (see fz_util.h). */
#include "fz_util.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/writer.h"
#include "kernels/kernels.h"

uint8_t fz_u8(fz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

uint32_t fz_u32(fz_in *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}

uint64_t fz_u64(fz_in *in) {
    uint64_t lo = fz_u32(in);
    return lo | (uint64_t)fz_u32(in) << 32;
}

double fz_f64(fz_in *in) {
    uint64_t bits = fz_u64(in);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

const char *fz_fixture(const char *rel) {
    static char buf[4096];
    const char *dir = getenv("HEARTH_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : HEARTH_FIXTURES_DIR, rel);
    return buf;
}

char *fz_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *nb = realloc(buf, cap = cap * 2 + 65536 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

const char *const fz_vocab_files[] = {
    "vocab/ggml-vocab-llama-spm.gguf",      "vocab/ggml-vocab-phi-3.gguf",
    "vocab/ggml-vocab-gpt-2.gguf",          "vocab/ggml-vocab-deepseek-llm.gguf",
    "vocab/ggml-vocab-bert-bge.gguf",       "extra/vocab/ggml-vocab-deepseek-coder.gguf",
    "extra/vocab/ggml-vocab-falcon.gguf",   "extra/vocab/ggml-vocab-mpt.gguf",
    "extra/vocab/ggml-vocab-refact.gguf",   "extra/vocab/ggml-vocab-starcoder.gguf",
};
const size_t fz_n_vocab_files = sizeof fz_vocab_files / sizeof fz_vocab_files[0];

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t fz_template_dirs(char **out, size_t cap) {
    static const char *const roots[] = {"templates", "extra/templates"};
    size_t n = 0;
    for (size_t r = 0; r < 2; r++) {
        DIR *d = opendir(fz_fixture(roots[r]));
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) && n < cap) {
            if (e->d_name[0] == '.' || e->d_type == DT_REG) continue;
            size_t len = strlen(roots[r]) + strlen(e->d_name) + 2;
            if (!(out[n] = malloc(len))) break;
            snprintf(out[n++], len, "%s/%s", roots[r], e->d_name);
        }
        closedir(d);
    }
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}

/* ---- model builder ---------------------------------------------------------------- */

void fz_model_spec_default(fz_model_spec *s, const char *arch) {
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->n_embd = 32;
    s->n_layer = 1;
    s->n_ff = 64;
    s->n_head = 4;
    s->n_head_kv = 2;
    s->head_dim = 8;
    s->n_vocab = 48;
    s->weight_type = GGML_F32;
    /* llama derives the head size from embedding_length / head_count */
    if (strcmp(arch, "qwen3") != 0) s->key_mode[FZ_K_KEY_LEN] = s->key_mode[FZ_K_VAL_LEN] = FZ_KEY_ABSENT;
    s->key_mode[FZ_K_ROPE_FACTOR] = FZ_KEY_ABSENT;
}

typedef struct fill_ctx {
    uint32_t type;
    uint32_t seed;
    bool norm;      /* values near 1 */
} fill_ctx;

static float next_uniform(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) - 0.5f; /* [-0.5, 0.5) */
}

static hearth_status fill_tensor(void *vctx, void *dst, uint64_t size, hearth_err *err) {
    fill_ctx *c = vctx;
    uint32_t st = c->seed;
    if (c->type == GGML_F32) {
        float *f = dst;
        for (uint64_t i = 0; i < size / 4; i++) f[i] = (c->norm ? 1.0f : 0.0f) + next_uniform(&st);
    } else if (c->type == GGML_F16 || c->type == GGML_BF16) {
        uint16_t *h = dst;
        for (uint64_t i = 0; i < size / 2; i++) {
            float v = (c->norm ? 1.0f : 0.0f) + next_uniform(&st);
            h[i] = c->type == GGML_F16 ? kern_f32_to_f16(v) : kern_f32_to_bf16(v);
        }
    } else {
        /* quantized blocks: every f16 scale 0x1111 (about 5e-4) and every quant 0x11: finite values */
        memset(dst, 0x11, size);
    }
    return HEARTH_OK;
}

typedef struct builder {
    const fz_model_spec *s;
    gguf_writer *w;
    fill_ctx fills[FZ_MAX_TENSORS];
    int n_tensors;
    bool ok;
} builder;

static void add(builder *b, const char *name, uint32_t type, int64_t ne0, int64_t ne1, int n_dims) {
    if (!b->ok) return;
    int idx = b->n_tensors++;
    if (idx >= FZ_MAX_TENSORS) {
        b->ok = false;
        return;
    }
    uint8_t mode = b->s->tensor_mode[idx] % FZ_T_MODES;
    int64_t ne[2] = {ne0, ne1};
    if (mode == FZ_T_MISSING) return;
    if (mode == FZ_T_GROW) ne[n_dims - 1] += 1;
    if (mode == FZ_T_SWAP && n_dims == 2) ne[0] = ne1, ne[1] = ne0;
    if (mode == FZ_T_SWAP && n_dims == 1) n_dims = 2, ne[1] = 1 + (ne0 & 1);
    if (mode == FZ_T_RETYPE) type = b->s->retype[idx] % GGML_TYPE_LIMIT;
    b->fills[idx] = (fill_ctx){.type = type, .seed = 0x9e3779b9u * (uint32_t)(idx + 1), .norm = n_dims == 1};
    hearth_err err;
    if (gguf_writer_add_tensor_fn(b->w, name, type, (uint32_t)n_dims, ne, fill_tensor, &b->fills[idx], &err))
        b->ok = false;
}

static void set_key(builder *b, int k, const char *suffix, int64_t true_val, bool is_float, double true_f) {
    if (!b->ok) return;
    char key[96];
    snprintf(key, sizeof key, "%s.%s", b->s->arch, suffix);
    hearth_err err;
    hearth_status st = HEARTH_OK;
    switch (b->s->key_mode[k] % FZ_KEY_MODES) {
    case FZ_KEY_TRUE:
        st = is_float ? gguf_writer_set_float(b->w, key, GGUF_V_FLOAT32, true_f, &err)
                      : gguf_writer_set_int(b->w, key, GGUF_V_UINT32, true_val, &err);
        break;
    case FZ_KEY_ABSENT:
        break;
    case FZ_KEY_RAW:
        st = is_float ? gguf_writer_set_float(b->w, key, GGUF_V_FLOAT64, b->s->key_raw_f[k], &err)
                      : gguf_writer_set_int(b->w, key, GGUF_V_INT64, b->s->key_raw[k], &err);
        break;
    default:
        st = is_float ? gguf_writer_set_str(b->w, key, "10000", &err)
                      : gguf_writer_set_float(b->w, key, GGUF_V_FLOAT32, (double)true_val, &err);
        break;
    }
    if (st) b->ok = false;
}

bool fz_model_build(const fz_model_spec *s, void **buf, size_t *size) {
    const int64_t e = s->n_embd, hd = s->head_dim, ff = s->n_ff, nv = s->n_vocab;
    const int64_t q_dim = s->n_head * hd, kv_dim = s->n_head_kv * hd;
    if (e < 1 || e > 4096 || s->n_layer < 1 || s->n_layer > 4 || ff < 1 || ff > 4096 || s->n_head < 1 ||
        s->n_head > 64 || s->n_head_kv < 1 || s->n_head_kv > 64 || hd < 1 || hd > 256 || nv < 1 || nv > 4096)
        return false;
    builder b = {.s = s, .w = gguf_writer_new(), .ok = true};
    if (!b.w) return false;
    hearth_err err;
    if (gguf_writer_set_str(b.w, "general.architecture", s->arch, &err)) b.ok = false;
    set_key(&b, FZ_K_CTX, "context_length", 64, false, 0);
    set_key(&b, FZ_K_EMBD, "embedding_length", e, false, 0);
    set_key(&b, FZ_K_LAYERS, "block_count", s->n_layer, false, 0);
    set_key(&b, FZ_K_FF, "feed_forward_length", ff, false, 0);
    set_key(&b, FZ_K_HEADS, "attention.head_count", s->n_head, false, 0);
    set_key(&b, FZ_K_HEADS_KV, "attention.head_count_kv", s->n_head_kv, false, 0);
    set_key(&b, FZ_K_KEY_LEN, "attention.key_length", hd, false, 0);
    set_key(&b, FZ_K_VAL_LEN, "attention.value_length", hd, false, 0);
    set_key(&b, FZ_K_ROT, "rope.dimension_count", hd, false, 0);
    set_key(&b, FZ_K_EPS, "attention.layer_norm_rms_epsilon", 0, true, 1e-5);
    set_key(&b, FZ_K_ROPE_BASE, "rope.freq_base", 0, true, 10000.0);
    set_key(&b, FZ_K_ROPE_FACTOR, "rope.scaling.factor", 0, true, 1.0);

    uint32_t wt = s->weight_type;
    add(&b, "token_embd.weight", wt, e, nv, 2);
    add(&b, "output_norm.weight", GGML_F32, e, 0, 1);
    add(&b, "output.weight", wt, e, nv, 2);
    for (int64_t il = 0; il < s->n_layer; il++) {
        char name[64];
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, (int)il), name)
        add(&b, BLK("attn_norm.weight"), GGML_F32, e, 0, 1);
        add(&b, BLK("attn_q.weight"), wt, e, q_dim, 2);
        add(&b, BLK("attn_k.weight"), wt, e, kv_dim, 2);
        add(&b, BLK("attn_v.weight"), wt, e, kv_dim, 2);
        add(&b, BLK("attn_output.weight"), wt, q_dim, e, 2);
        add(&b, BLK("ffn_norm.weight"), GGML_F32, e, 0, 1);
        add(&b, BLK("ffn_gate.weight"), wt, e, ff, 2);
        add(&b, BLK("ffn_up.weight"), wt, e, ff, 2);
        add(&b, BLK("ffn_down.weight"), wt, ff, e, 2);
        if (!strcmp(s->arch, "qwen2")) {
            add(&b, BLK("attn_q.bias"), GGML_F32, q_dim, 0, 1);
            add(&b, BLK("attn_k.bias"), GGML_F32, kv_dim, 0, 1);
            add(&b, BLK("attn_v.bias"), GGML_F32, kv_dim, 0, 1);
        }
        if (!strcmp(s->arch, "qwen3")) {
            add(&b, BLK("attn_q_norm.weight"), GGML_F32, hd, 0, 1);
            add(&b, BLK("attn_k_norm.weight"), GGML_F32, hd, 0, 1);
        }
#undef BLK
    }
    bool ok = b.ok && gguf_writer_write_memory(b.w, buf, size, &err) == HEARTH_OK;
    gguf_writer_free(b.w);
    return ok;
}
