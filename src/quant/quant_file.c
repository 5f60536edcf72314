/* Whole-file requantization: plans every tensor's type, copies the metadata, and hands
 * the writer one fill callback per tensor that decodes the source rows and encodes them
 * in the planned type while the file is written (tensors whose type does not change are
 * copied byte for byte). Holds one output tensor in memory at a time; the input stays
 * memory-mapped. Never modifies the input. */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "gguf/writer.h"
#include "quant/quant.h"

typedef struct file_job file_job;

typedef struct file_tensor {
    file_job *job;
    uint64_t index;
    const gguf_tensor *t;
    quant_tensor_plan plan;
    const kern_type_traits *src_tr; /* decoder of the source type; NULL when copied */
    size_t src_row_bytes;
    int64_t n_cols, n_rows;
} file_tensor;

struct file_job {
    kern_pool *pool;
    uint64_t count;
    quant_progress_fn progress;
    void *ud;
};

static bool is_float_type(uint32_t t) { return t == GGML_F32 || t == GGML_F16 || t == GGML_BF16; }

static void src_row(void *ctx, int64_t row, float *out, int64_t n) {
    const file_tensor *ft = ctx;
    ft->src_tr->to_float((const unsigned char *)ft->t->data + (size_t)row * ft->src_row_bytes, out, n);
}

static hearth_status fill_tensor(void *ctx, void *dst, uint64_t size, hearth_err *err) {
    file_tensor *ft = ctx;
    hearth_status st = HEARTH_OK;
    if (!ft->src_tr) memcpy(dst, ft->t->data, (size_t)size);
    else st = quant_rows(ft->job->pool, src_row, ft, ft->plan.type, ft->n_cols, ft->n_rows, dst, err);
    if (st) {
        err_prefix(err, "tensor '%.*s'", (int)ft->t->name.len, ft->t->name.ptr);
        return st;
    }
    if (ft->job->progress)
        ft->job->progress(ft->job->ud, ft->index, ft->job->count, ft->t, &ft->plan,
                          ft->src_tr && !is_float_type(ft->t->type));
    return HEARTH_OK;
}

static hearth_status copy_metadata(const gguf_file *in, gguf_writer *w, const quant_scheme *s, hearth_err *err) {
    hearth_status st = HEARTH_OK;
    for (uint64_t i = 0; i < gguf_kv_count(in) && !st; i++) {
        const gguf_kv *kv = gguf_kv_at(in, i);
        char *key = mem_strndup(kv->key.ptr, (size_t)kv->key.len);
        if (!key) return err_set(err, HEARTH_ERR_NOMEM, "quantize: out of memory copying metadata");
        st = gguf_writer_set(w, key, &kv->val, err);
        mem_free(key);
    }
    if (!st) st = gguf_writer_set_int(w, "general.file_type", GGUF_V_UINT32, s->ftype, err);
    if (!st && !is_float_type(s->base_type))
        st = gguf_writer_set_int(w, "general.quantization_version", GGUF_V_UINT32, 2, err);
    return st;
}

/* Names are NUL-terminated copies in one block, so the plan can compare them as C strings. */
static hearth_status describe(const gguf_file *in, quant_tensor_desc *descs, char **names_out, hearth_err *err) {
    uint64_t n = gguf_tensor_count(in);
    size_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += (size_t)gguf_tensor_at(in, i)->name.len + 1;
    char *names = mem_alloc(total ? total : 1);
    if (!names) return err_set(err, HEARTH_ERR_NOMEM, "quantize: out of memory for tensor names");
    char *p = names;
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(in, i);
        memcpy(p, t->name.ptr, (size_t)t->name.len);
        p[t->name.len] = '\0';
        descs[i] = (quant_tensor_desc){.name = p, .n_dims = t->n_dims, .ne = t->ne, .src_type = t->type};
        p += t->name.len + 1;
    }
    *names_out = names;
    return HEARTH_OK;
}

static hearth_status prepare(file_tensor *ft, const quant_tensor_desc *d, hearth_err *err) {
    const gguf_tensor *t = ft->t;
    ft->n_cols = t->ne[0];
    ft->n_rows = t->ne[1] * t->ne[2] * t->ne[3]; /* fits: the reader checked the tensor's size */
    if (ft->plan.type == t->type) return HEARTH_OK;
    ft->src_tr = kern_traits(t->type);
    if (!ft->src_tr) {
        const ggml_type_info *ti = ggml_type_get(t->type);
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "tensor '%s' has type %s, which Hearth cannot decode", d->name,
                       ti && ti->name ? ti->name : "unknown");
    }
    ft->src_row_bytes = kern_row_bytes(t->type, ft->n_cols);
    return HEARTH_OK;
}

hearth_status quant_file(const gguf_file *in, const char *out_path, const quant_scheme *s, kern_pool *pool,
                         quant_progress_fn progress, void *ud, hearth_err *err) {
    uint64_t n = gguf_tensor_count(in);
    file_job job = {.pool = pool, .count = n, .progress = progress, .ud = ud};
    quant_tensor_desc *descs = mem_calloc(n ? n : 1, sizeof *descs);
    quant_tensor_plan *plans = mem_calloc(n ? n : 1, sizeof *plans);
    file_tensor *fts = mem_calloc(n ? n : 1, sizeof *fts);
    gguf_writer *w = gguf_writer_new();
    char *names = NULL;
    hearth_status st = HEARTH_OK;
    if (!descs || !plans || !fts || !w) st = err_set(err, HEARTH_ERR_NOMEM, "quantize: out of memory");
    if (!st) st = describe(in, descs, &names, err);
    if (!st) {
        quant_plan_file(s, descs, n, plans);
        st = copy_metadata(in, w, s, err);
    }
    for (uint64_t i = 0; i < n && !st; i++) {
        fts[i] = (file_tensor){.job = &job, .index = i, .t = gguf_tensor_at(in, i), .plan = plans[i]};
        st = prepare(&fts[i], &descs[i], err);
        if (!st)
            st = gguf_writer_add_tensor_fn(w, descs[i].name, plans[i].type, descs[i].n_dims, descs[i].ne, fill_tensor,
                                           &fts[i], err);
    }
    if (!st) st = gguf_writer_write_file(w, out_path, err);
    gguf_writer_free(w);
    mem_free(names);
    mem_free(fts);
    mem_free(plans);
    mem_free(descs);
    return st;
}
