/* Loading a LoRA adapter: reads the adapter's metadata and tensor pairs, checks all of it
 * against the base model before allocating anything it keeps, and copies the weights as
 * float32. Never touches the base model's weights and never leaves a half-built adapter:
 * a refused file frees everything it allocated. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "model/lora_impl.h"

#define NAME_MAX_LEN 96

/* The matrices of a layer an adapter may target, by their GGUF names. */
static const struct {
    const char *kind;
    size_t offset;
} layer_targets[] = {
    {"attn_q", offsetof(model_layer, wq)},       {"attn_k", offsetof(model_layer, wk)},
    {"attn_v", offsetof(model_layer, wv)},       {"attn_output", offsetof(model_layer, wo)},
    {"ffn_gate", offsetof(model_layer, w_gate)}, {"ffn_up", offsetof(model_layer, w_up)},
    {"ffn_down", offsetof(model_layer, w_down)},
};
#define N_LAYER_TARGETS ((int64_t)(sizeof layer_targets / sizeof layer_targets[0]))

/* Slot of the model matrix named `name` (slots: layer * N_LAYER_TARGETS + kind, then the
 * untied logits matrix), or -1 when m has no adaptable matrix of that name. */
static int64_t target_slot(const model *m, const char *name) {
    bool tied = m->output.data == m->tok_embd.data;
    if (!strcmp(name, "output.weight")) return tied ? -1 : m->hp.n_layer * N_LAYER_TARGETS;
    if (strncmp(name, "blk.", 4) != 0) return -1;
    const char *p = name + 4;
    int64_t il = 0;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        il = il * 10 + (*p - '0');
        if (il >= m->hp.n_layer) return -1;
    }
    if (*p++ != '.') return -1;
    for (int64_t k = 0; k < N_LAYER_TARGETS; k++) {
        size_t kl = strlen(layer_targets[k].kind);
        if (!strncmp(p, layer_targets[k].kind, kl) && !strcmp(p + kl, ".weight")) return il * N_LAYER_TARGETS + k;
    }
    return -1;
}

static const kern_matrix *slot_matrix(const model *m, int64_t slot) {
    if (slot == m->hp.n_layer * N_LAYER_TARGETS) return &m->output;
    const model_layer *L = &m->layers[slot / N_LAYER_TARGETS];
    return (const kern_matrix *)((const char *)L + layer_targets[slot % N_LAYER_TARGETS].offset);
}

/* ---- metadata ------------------------------------------------------------------- */

/* Checks the string key equals want: FORMAT "<absent>: ..." when it is missing or not a
 * string, status mismatch "<what>: ..." when it differs. */
static hearth_status check_str(const gguf_file *f, const char *key, const char *want, const char *absent,
                               hearth_status mismatch, const char *what, hearth_err *err) {
    gguf_str s;
    if (!gguf_get_str(f, key, &s))
        return err_set(err, HEARTH_ERR_FORMAT, "%s: '%s' is %s", absent, key,
                       gguf_find(f, key) ? "not a string" : "missing");
    if (!gguf_str_eq(s, want))
        return err_set(err, mismatch, "%s: '%s' is '%.*s', expected '%s'", what, key, (int)(s.len > 64 ? 64 : s.len),
                       s.ptr, want);
    return HEARTH_OK;
}

/* Alpha from adapter.lora.alpha; 0 when absent (then alpha = rank). */
static hearth_status read_meta(const model *m, const gguf_file *f, double *alpha, hearth_err *err) {
    hearth_status st;
    const char *not_lora = "not a LoRA adapter";
    if ((st = check_str(f, "general.type", "adapter", not_lora, HEARTH_ERR_FORMAT, not_lora, err)) ||
        (st = check_str(f, "adapter.type", "lora", not_lora, HEARTH_ERR_UNSUPPORTED, "unsupported adapter type",
                        err)) ||
        (st = check_str(f, "general.architecture", m->hp.arch_name, "malformed adapter", HEARTH_ERR_INVALID,
                        "adapter is for another architecture", err)))
        return st;
    *alpha = 0.0;
    if (!gguf_find(f, "adapter.lora.alpha")) return HEARTH_OK;
    if (!gguf_get_float(f, "adapter.lora.alpha", alpha))
        return err_set(err, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' is not a number");
    if (!isfinite(*alpha) || *alpha <= 0.0 || *alpha > 1e30)
        return err_set(err, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' = %g must be a finite number > 0", *alpha);
    return HEARTH_OK;
}

/* ---- tensors -------------------------------------------------------------------- */

/* The tensors of each target slot: halves[2 * slot] is .lora_a, [2 * slot + 1] .lora_b. */
static hearth_status sort_tensors(const model *m, const gguf_file *f, const gguf_tensor **halves,
                                  hearth_err *err) {
    uint64_t n = gguf_tensor_count(f);
    if (n == 0) return err_set(err, HEARTH_ERR_FORMAT, "adapter has no tensors");
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[NAME_MAX_LEN + 1];
        int nl = (int)(t->name.len > NAME_MAX_LEN ? NAME_MAX_LEN : t->name.len);
        snprintf(name, sizeof name, "%.*s", nl, t->name.ptr);
        size_t len = strlen(name);
        bool is_a = len > 7 && !strcmp(name + len - 7, ".lora_a"), is_b = len > 7 && !strcmp(name + len - 7, ".lora_b");
        if (t->name.len != len || (!is_a && !is_b))
            return err_set(err, HEARTH_ERR_FORMAT, "unknown tensor '%s' (an adapter holds only <weight>.lora_a and "
                           "<weight>.lora_b pairs)", name);
        name[len - 7] = '\0';
        int64_t slot = target_slot(m, name);
        if (slot < 0)
            return err_set(err, HEARTH_ERR_INVALID, "tensor '%s.lora_%c' targets '%s', which is not an adaptable "
                           "matrix of this %s model", name, is_a ? 'a' : 'b', name, m->hp.arch_name);
        halves[2 * slot + is_b] = t;
    }
    return HEARTH_OK;
}

static const char *type_name(uint32_t type) {
    const ggml_type_info *ti = ggml_type_get(type);
    return ti && ti->name ? ti->name : "unknown";
}

static hearth_status check_half(const gguf_tensor *t, int64_t want_ne0, int64_t want_ne1, const char *what,
                                hearth_err *err) {
    const char *fmt = "tensor '%.*s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] (%s)";
    if (t->ne[2] != 1 || t->ne[3] != 1 || t->ne[0] != want_ne0 || t->ne[1] != want_ne1)
        return err_set(err, HEARTH_ERR_INVALID, fmt, (int)t->name.len, t->name.ptr, (long long)t->ne[0],
                       (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3], (long long)want_ne0,
                       (long long)want_ne1, what);
    const kern_type_traits *tr = kern_traits(t->type);
    if (!tr || t->ne[0] % tr->block_elems != 0)
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "tensor '%.*s' has type %s, which Hearth cannot read at row "
                       "length %lld", (int)t->name.len, t->name.ptr, type_name(t->type), (long long)t->ne[0]);
    return HEARTH_OK;
}

/* Checks both halves of every slot and one rank across the file; counts pairs and floats. */
static hearth_status check_pairs(const model *m, const gguf_tensor **halves, int64_t n_slots, int64_t *rank,
                                 int64_t *n_pairs, size_t *n_floats, hearth_err *err) {
    *rank = 0;
    *n_pairs = 0;
    *n_floats = 0;
    const gguf_tensor *first = NULL;
    for (int64_t s = 0; s < n_slots; s++) {
        const gguf_tensor *a = halves[2 * s], *b = halves[2 * s + 1];
        if (!a && !b) continue;
        if (!a || !b) {
            const gguf_tensor *have = a ? a : b;
            return err_set(err, HEARTH_ERR_FORMAT, "tensor '%.*s' has no partner '.lora_%c' (both halves of a pair "
                           "are required)", (int)have->name.len, have->name.ptr, a ? 'b' : 'a');
        }
        const kern_matrix *w = slot_matrix(m, s);
        if (a->ne[1] != b->ne[0])
            return err_set(err, HEARTH_ERR_FORMAT, "rank mismatch: '%.*s' has rank %lld but '%.*s' has %lld",
                           (int)a->name.len, a->name.ptr, (long long)a->ne[1], (int)b->name.len, b->name.ptr,
                           (long long)b->ne[0]);
        if (!first) {
            first = a;
            *rank = a->ne[1];
        } else if (a->ne[1] != *rank) {
            return err_set(err, HEARTH_ERR_FORMAT, "rank mismatch: '%.*s' has rank %lld but '%.*s' has %lld",
                           (int)a->name.len, a->name.ptr, (long long)a->ne[1], (int)first->name.len, first->name.ptr,
                           (long long)*rank);
        }
        hearth_status st;
        if ((st = check_half(a, w->cols, *rank, "[input width of the base matrix, rank]", err)) ||
            (st = check_half(b, *rank, w->rows, "[rank, output width of the base matrix]", err)))
            return st;
        size_t fa, fb;
        if (!ck_mul((size_t)*rank, (size_t)(w->cols + w->rows), &fa) || !ck_add(*n_floats, fa, &fb))
            return err_set(err, HEARTH_ERR_FORMAT, "adapter is too large (rank %lld)", (long long)*rank);
        *n_floats = fb;
        (*n_pairs)++;
    }
    return HEARTH_OK;
}

/* Converts t to float32 at dst (rows x cols) and checks every value is finite. */
static hearth_status copy_half(const gguf_tensor *t, float *dst, int64_t rows, int64_t cols, kern_matrix *out,
                               hearth_err *err) {
    int64_t n = rows * cols;
    kern_traits(t->type)->to_float(t->data, dst, n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return err_set(err, HEARTH_ERR_FORMAT, "tensor '%.*s' holds a non-finite value at element %lld",
                           (int)t->name.len, t->name.ptr, (long long)i);
    *out = (kern_matrix){.type = GGML_F32, .rows = rows, .cols = cols,
                         .row_bytes = (size_t)cols * sizeof(float), .data = dst};
    return HEARTH_OK;
}

static hearth_status build(model_lora *a, const gguf_tensor **halves, int64_t n_slots, size_t n_floats,
                           hearth_err *err) {
    const model *m = a->m;
    a->pairs = mem_calloc((size_t)a->n_pairs, sizeof *a->pairs);
    a->weights = mem_alloc_array(n_floats, sizeof(float));
    if (!a->pairs || !a->weights)
        return err_set(err, HEARTH_ERR_NOMEM, "adapter: out of memory for %zu weights", n_floats);
    float *next = a->weights;
    int64_t i = 0;
    for (int64_t s = 0; s < n_slots; s++) {
        if (!halves[2 * s]) continue;
        lora_pair *p = &a->pairs[i++];
        p->base = slot_matrix(m, s);
        int64_t in = p->base->cols, out = p->base->rows;
        hearth_status st = copy_half(halves[2 * s], next, a->rank, in, &p->a, err);
        if (!st) st = copy_half(halves[2 * s + 1], next + a->rank * in, out, a->rank, &p->b, err);
        if (st) return st;
        next += a->rank * (in + out);
        if (in > a->max_in) a->max_in = in;
        if (p->base == &m->output) a->logits_out = out;
        else if (out > a->max_out) a->max_out = out;
    }
    return HEARTH_OK;
}

hearth_status model_lora_new(const model *m, const gguf_file *f, model_lora **out, hearth_err *err) {
    *out = NULL;
    if (m->hp.arch != MODEL_ARCH_LLAMA && m->hp.arch != MODEL_ARCH_QWEN2 && m->hp.arch != MODEL_ARCH_QWEN3)
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "LoRA adapters are not supported for '%s' models",
                       m->hp.arch_name);
    double alpha;
    hearth_status st = read_meta(m, f, &alpha, err);
    if (st) return st;
    int64_t n_slots = m->hp.n_layer * N_LAYER_TARGETS + 1, rank, n_pairs;
    size_t n_floats;
    const gguf_tensor **halves = mem_calloc(2 * (size_t)n_slots, sizeof *halves);
    if (!halves) return err_set(err, HEARTH_ERR_NOMEM, "adapter: out of memory");
    model_lora *a = NULL;
    if (!(st = sort_tensors(m, f, halves, err)) &&
        !(st = check_pairs(m, halves, n_slots, &rank, &n_pairs, &n_floats, err)) &&
        !(a = mem_calloc(1, sizeof *a)))
        st = err_set(err, HEARTH_ERR_NOMEM, "adapter: out of memory");
    if (!st) {
        atomic_init(&a->refs, 1);
        a->m = m;
        a->rank = rank;
        a->n_pairs = n_pairs;
        a->alpha = alpha > 0.0 ? (float)alpha : (float)rank;
        gguf_str name;
        if (gguf_get_str(f, "general.name", &name) && name.len > 0)
            snprintf(a->name, sizeof a->name, "%.*s", (int)(name.len < sizeof a->name ? name.len : sizeof a->name - 1),
                     name.ptr);
        else
            snprintf(a->name, sizeof a->name, "adapter");
        st = build(a, halves, n_slots, n_floats, err);
    }
    mem_free(halves);
    if (st) {
        model_lora_release(a);
        return st;
    }
    *out = a;
    return HEARTH_OK;
}

hearth_status model_lora_open(const model *m, const char *path, model_lora **out, hearth_err *err) {
    *out = NULL;
    gguf_file *f = NULL;
    hearth_status st = gguf_open(path, &f, err);
    if (st) return st; /* the reader's message names the file */
    st = model_lora_new(m, f, out, err);
    if (st) err_prefix(err, "%s", path);
    gguf_close(f);
    return st;
}

model_lora *model_lora_retain(model_lora *a) {
    atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    return a;
}

void model_lora_release(model_lora *a) {
    if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1) return;
    mem_free(a->pairs);
    mem_free(a->weights);
    mem_free(a);
}

const char *model_lora_name(const model_lora *a) { return a->name; }
int64_t model_lora_rank(const model_lora *a) { return a->rank; }
float model_lora_alpha(const model_lora *a) { return a->alpha; }
int64_t model_lora_n_targets(const model_lora *a) { return a->n_pairs; }

static bool adapts(const model_lora *a, const kern_matrix *w) {
    for (int64_t i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].base == w) return true;
    return false;
}

size_t model_lora_target_kinds(const model_lora *a, const char **kinds, size_t cap) {
    const model *m = a->m;
    size_t n = 0;
    for (int64_t k = 0; k < N_LAYER_TARGETS; k++) {
        bool found = false;
        for (int64_t il = 0; il < m->hp.n_layer && !found; il++) found = adapts(a, slot_matrix(m, il * N_LAYER_TARGETS + k));
        if (found && n++ < cap) kinds[n - 1] = layer_targets[k].kind;
    }
    if (adapts(a, &m->output) && m->output.data != m->tok_embd.data && n++ < cap) kinds[n - 1] = "output";
    return n;
}
