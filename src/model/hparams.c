/* Hyper-parameters from GGUF metadata: architecture name, sizes, norm epsilon, RoPE
 * settings, attention mask and pooling, each range-checked so the forward pass can trust
 * them. A missing required key or a value out of range is a FORMAT error naming the key;
 * never guesses a size. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "model/model_impl.h"

/* Upper bounds far above any published model, so a corrupt value cannot drive a huge
 * allocation; sizes are also bounded later by the tensors' real shapes. */
#define MAX_EMBD (1 << 17)
#define MAX_LAYERS 4096
#define MAX_FF (1 << 20)
#define MAX_HEADS 4096
#define MAX_HEAD_DIM 4096
#define MAX_CTX ((int64_t)1 << 24)

typedef struct arch_entry {
    const char *name;
    model_arch arch;
} arch_entry;

static const arch_entry arches[] = {
    {"llama", MODEL_ARCH_LLAMA},
    {"mistral", MODEL_ARCH_LLAMA},
    {"qwen2", MODEL_ARCH_QWEN2},
    {"qwen3", MODEL_ARCH_QWEN3},
    {"bert", MODEL_ARCH_BERT},
};

typedef struct hp_reader {
    const gguf_file *f;
    const char *arch;
    hearth_err *err;
} hp_reader;

static void key_name(const hp_reader *r, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", r->arch, suffix);
}

/* Reads integer key <arch>.<suffix> into *out, which holds the default when the key is
 * optional (required == false) and absent. The value must lie in [lo, hi]. */
static hearth_status get_int(const hp_reader *r, const char *suffix, bool required, int64_t lo,
                             int64_t hi, int64_t *out) {
    char key[160];
    key_name(r, suffix, key, sizeof key);
    const gguf_value *v = gguf_find(r->f, key);
    if (!v) {
        if (required) return err_set(r->err, HEARTH_ERR_FORMAT, "missing metadata key '%s'", key);
        return HEARTH_OK;
    }
    int64_t x;
    if (!gguf_get_int(r->f, key, &x))
        return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' is not an integer (type %s)", key,
                       gguf_vtype_name(v->type));
    if (x < lo || x > hi)
        return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' = %lld is out of range [%lld, %lld]",
                       key, (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return HEARTH_OK;
}

/* Optional float key; must be finite and within (lo, hi]. */
static hearth_status get_float(const hp_reader *r, const char *suffix, double lo, double hi,
                               float *out) {
    char key[160];
    key_name(r, suffix, key, sizeof key);
    const gguf_value *v = gguf_find(r->f, key);
    if (!v) return HEARTH_OK;
    double x;
    if (!gguf_get_float(r->f, key, &x))
        return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' is not a number (type %s)", key,
                       gguf_vtype_name(v->type));
    if (!isfinite(x) || x <= lo || x > hi)
        return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' = %g is out of range (%g, %g]", key,
                       x, lo, hi);
    *out = (float)x;
    return HEARTH_OK;
}

static hearth_status read_arch(const gguf_file *f, model_hparams *hp, hearth_err *err) {
    gguf_str name;
    if (!gguf_get_str(f, "general.architecture", &name))
        return err_set(err, HEARTH_ERR_FORMAT, "missing metadata key 'general.architecture'");
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++) {
        if (gguf_str_eq(name, arches[i].name)) {
            hp->arch = arches[i].arch;
            snprintf(hp->arch_name, sizeof hp->arch_name, "%s", arches[i].name);
            return HEARTH_OK;
        }
    }
    int shown = name.len > 64 ? 64 : (int)name.len;
    return err_set(err, HEARTH_ERR_UNSUPPORTED, "unsupported architecture '%.*s'", shown, name.ptr);
}

static hearth_status read_rope_scaling(const hp_reader *r, model_hparams *hp) {
    char key[160];
    gguf_str type;
    float factor = 1.0f;
    hearth_status st;
    key_name(r, "rope.scaling.type", key, sizeof key);
    bool has_type = gguf_get_str(r->f, key, &type);
    if (!has_type && gguf_find(r->f, key))
        return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' is not a string", key);
    if (has_type && !gguf_str_eq(type, "none") && !gguf_str_eq(type, "linear")) {
        int shown = type.len > 32 ? 32 : (int)type.len;
        return err_set(r->err, HEARTH_ERR_UNSUPPORTED, "RoPE scaling type '%.*s' (key '%s') is not supported",
                       shown, type.ptr, key);
    }
    if (has_type && gguf_str_eq(type, "none")) return HEARTH_OK;
    if ((st = get_float(r, "rope.scaling.factor", 0.0, 1024.0, &factor))) return st;
    if (factor == 1.0f && (st = get_float(r, "rope.scale_linear", 0.0, 1024.0, &factor))) return st;
    hp->rope_scale = 1.0f / factor;
    return HEARTH_OK;
}

/* The attention mask and the pooling an embedding should use. Decoders must be causal;
 * bert is bidirectional unless the file says otherwise. Pooling types follow the
 * reference's numbering; 4 (rank: a reranker's classification head) is not supported. */
static hearth_status read_encoder_keys(const hp_reader *r, model_hparams *hp) {
    char key[160];
    bool encoder = hp->arch == MODEL_ARCH_BERT;
    hp->causal = !encoder;
    key_name(r, "attention.causal", key, sizeof key);
    if (gguf_find(r->f, key)) {
        bool causal;
        if (!gguf_get_bool(r->f, key, &causal))
            return err_set(r->err, HEARTH_ERR_FORMAT, "metadata key '%s' is not a bool", key);
        if (!causal && !encoder)
            return err_set(r->err, HEARTH_ERR_UNSUPPORTED, "metadata key '%s' = false: %s runs causal attention only",
                           key, hp->arch_name);
        hp->causal = causal;
    }
    int64_t pooling = -1;
    hearth_status st = get_int(r, "pooling_type", false, 0, 4, &pooling);
    if (st) return st;
    if (pooling == 4)
        return err_set(r->err, HEARTH_ERR_UNSUPPORTED,
                       "metadata key '%s.pooling_type' = 4 (rank): reranking models are not supported", hp->arch_name);
    hp->pooling = (int32_t)pooling;
    return HEARTH_OK;
}

hearth_status model_read_hparams(const gguf_file *f, model_hparams *hp, hearth_err *err) {
    memset(hp, 0, sizeof *hp);
    hearth_status st = read_arch(f, hp, err);
    if (st) return st;
    hp_reader r = {f, hp->arch_name, err};

    if ((st = get_int(&r, "context_length", true, 1, MAX_CTX, &hp->n_ctx_train)) ||
        (st = get_int(&r, "embedding_length", true, 1, MAX_EMBD, &hp->n_embd)) ||
        (st = get_int(&r, "block_count", true, 1, MAX_LAYERS, &hp->n_layer)) ||
        (st = get_int(&r, "feed_forward_length", true, 1, MAX_FF, &hp->n_ff)) ||
        (st = get_int(&r, "attention.head_count", true, 1, MAX_HEADS, &hp->n_head)))
        return st;
    hp->n_head_kv = hp->n_head;
    if ((st = get_int(&r, "attention.head_count_kv", false, 1, hp->n_head, &hp->n_head_kv))) return st;
    if (hp->n_head % hp->n_head_kv != 0)
        return err_set(err, HEARTH_ERR_FORMAT,
                       "metadata key '%s.attention.head_count_kv' = %lld does not divide head_count %lld",
                       hp->arch_name, (long long)hp->n_head_kv, (long long)hp->n_head);

    /* The head size defaults to embedding_length / head_count; key_length overrides it
     * (qwen3 and others whose heads do not tile the residual width). */
    hp->head_dim_k = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    if ((st = get_int(&r, "attention.key_length", false, 2, MAX_HEAD_DIM, &hp->head_dim_k))) return st;
    if (hp->head_dim_k < 2)
        return err_set(err, HEARTH_ERR_FORMAT,
                       "metadata: embedding_length %lld over head_count %lld gives no head size >= 2 "
                       "and '%s.attention.key_length' is absent",
                       (long long)hp->n_embd, (long long)hp->n_head, hp->arch_name);
    hp->head_dim_v = hp->head_dim_k;
    if ((st = get_int(&r, "attention.value_length", false, 1, MAX_HEAD_DIM, &hp->head_dim_v))) return st;

    hp->n_rot = hp->head_dim_k;
    if ((st = get_int(&r, "rope.dimension_count", false, 2, hp->head_dim_k, &hp->n_rot))) return st;
    if (hp->n_rot % 2 != 0)
        return err_set(err, HEARTH_ERR_FORMAT, "metadata key '%s.rope.dimension_count' = %lld is odd",
                       hp->arch_name, (long long)hp->n_rot);

    hp->norm_eps = 1e-5f;
    hp->rope_base = 10000.0f;
    hp->rope_scale = 1.0f;
    if (hp->arch == MODEL_ARCH_BERT) hp->norm_eps = 1e-12f;
    if ((st = get_float(&r, hp->arch == MODEL_ARCH_BERT ? "attention.layer_norm_epsilon"
                                                        : "attention.layer_norm_rms_epsilon",
                        0.0, 1.0, &hp->norm_eps)) ||
        (st = get_float(&r, "rope.freq_base", 0.0, 1e12, &hp->rope_base)) ||
        (st = read_rope_scaling(&r, hp)) || (st = read_encoder_keys(&r, hp)))
        return st;
    hp->rope_neox = hp->arch == MODEL_ARCH_QWEN2 || hp->arch == MODEL_ARCH_QWEN3;
    return HEARTH_OK;
}
