/* GGUF v3 writer (see writer.h). Metadata values are serialized when they are set; tensors
 * are recorded with their data source and laid out at write time. It must never write a
 * file the reader would refuse, and never leave a partial file at the destination path. */
#include "gguf/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"

#define WRITER_DEFAULT_ALIGNMENT 32
#define WRITER_MAX_ARRAY_DEPTH 8 /* the reader's limit */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf;

typedef struct wkv {
    char *key;
    wbuf val;  /* value type (u32) followed by the encoded value */
} wkv;

typedef struct wtensor {
    char *name;
    uint32_t type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t size;              /* bytes */
    const void *data;           /* caller-owned, or NULL when fill is set */
    gguf_tensor_fill_fn fill;
    void *ctx;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    size_t n_kv, cap_kv;
    wtensor *tensors;
    size_t n_tensors, cap_tensors;
};

/* ---- byte buffer -------------------------------------------------------------------- */

static bool wbuf_put(wbuf *b, const void *p, size_t n) {
    if (n > b->cap - b->len) {
        size_t need, cap = b->cap ? b->cap : 64;
        if (!ck_add(b->len, n, &need)) return false;
        while (cap < need)
            if (!ck_mul(cap, (size_t)2, &cap)) return false;
        uint8_t *np = mem_realloc(b->p, cap);
        if (!np) return false;
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

static bool wbuf_le(wbuf *b, uint64_t v, unsigned bytes) {
    uint8_t tmp[8];
    for (unsigned i = 0; i < bytes; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    return wbuf_put(b, tmp, bytes);
}

static bool wbuf_str(wbuf *b, const char *s, uint64_t len) {
    return wbuf_le(b, len, 8) && wbuf_put(b, s, (size_t)len);
}

/* ---- values ------------------------------------------------------------------------- */

static unsigned elem_bytes(gguf_vtype t) {
    switch (t) {
    case GGUF_V_UINT8: case GGUF_V_INT8: case GGUF_V_BOOL: return 1;
    case GGUF_V_UINT16: case GGUF_V_INT16: return 2;
    case GGUF_V_UINT32: case GGUF_V_INT32: case GGUF_V_FLOAT32: return 4;
    case GGUF_V_UINT64: case GGUF_V_INT64: case GGUF_V_FLOAT64: return 8;
    case GGUF_V_STRING: case GGUF_V_ARRAY: return 0;
    }
    return 0;
}

static bool vtype_valid(uint32_t t) { return t <= GGUF_V_FLOAT64; }

static hearth_status nomem(hearth_err *err, const char *key) {
    return err_set(err, HEARTH_ERR_NOMEM, "gguf writer: out of memory for '%s'", key);
}

/* Scalar v of a fixed-size type, range-checked against it. */
static hearth_status put_scalar(wbuf *b, const gguf_value *v, const char *key, hearth_err *err) {
    unsigned w = elem_bytes(v->type);
    uint64_t bits;
    bool ok = true;
    switch (v->type) {
    case GGUF_V_UINT8: case GGUF_V_UINT16: case GGUF_V_UINT32:
        ok = v->u < (1ull << (8 * w));
        bits = v->u;
        break;
    case GGUF_V_UINT64: bits = v->u; break;
    case GGUF_V_BOOL:
        ok = v->u <= 1;
        bits = v->u;
        break;
    case GGUF_V_INT8: case GGUF_V_INT16: case GGUF_V_INT32: {
        int64_t lim = (int64_t)1 << (8 * w - 1);
        ok = v->i >= -lim && v->i < lim;
        bits = (uint64_t)v->i;
        break;
    }
    case GGUF_V_INT64: bits = (uint64_t)v->i; break;
    case GGUF_V_FLOAT32: {
        float f = (float)v->f;
        uint32_t b32;
        memcpy(&b32, &f, 4);
        bits = b32;
        break;
    }
    case GGUF_V_FLOAT64: memcpy(&bits, &v->f, 8); break;
    default:
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': %s is not a scalar type", key,
                       gguf_vtype_name(v->type));
    }
    if (!ok)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': value out of range for %s", key,
                       gguf_vtype_name(v->type));
    return wbuf_le(b, bits, w) ? HEARTH_OK : nomem(err, key);
}

/* Array payload: element type, count, elements (nested arrays recursively, depth-limited). */
static hearth_status put_array(wbuf *b, const gguf_arr *a, int depth, const char *key, hearth_err *err) {
    if (!vtype_valid(a->type))
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': bad array element type %d", key, (int)a->type);
    if (a->type == GGUF_V_ARRAY && depth + 1 >= WRITER_MAX_ARRAY_DEPTH)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': arrays nested more than %d deep", key,
                       WRITER_MAX_ARRAY_DEPTH);
    if (!wbuf_le(b, (uint32_t)a->type, 4) || !wbuf_le(b, a->n, 8)) return nomem(err, key);
    if (a->n == 0) return HEARTH_OK;
    if (a->type == GGUF_V_STRING) {
        if (!a->strs) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': string array without strings", key);
        for (uint64_t i = 0; i < a->n; i++)
            if (!wbuf_str(b, a->strs[i].ptr, a->strs[i].len)) return nomem(err, key);
        return HEARTH_OK;
    }
    if (a->type == GGUF_V_ARRAY) {
        if (!a->arrs) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': nested array without items", key);
        for (uint64_t i = 0; i < a->n; i++) {
            if (a->arrs[i].type != GGUF_V_ARRAY)
                return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': nested item %llu is not an array", key,
                               (unsigned long long)i);
            hearth_status st = put_array(b, &a->arrs[i].a, depth + 1, key, err);
            if (st) return st;
        }
        return HEARTH_OK;
    }
    uint64_t total;
    if (!a->data || !ck_mul(a->n, (uint64_t)elem_bytes(a->type), &total) || total > SIZE_MAX)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': array data missing or too large", key);
    if (a->type == GGUF_V_BOOL)
        for (uint64_t i = 0; i < a->n; i++)
            if (((const uint8_t *)a->data)[i] > 1)
                return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': bool element %llu is not 0 or 1", key,
                               (unsigned long long)i);
    return wbuf_put(b, a->data, (size_t)total) ? HEARTH_OK : nomem(err, key);
}

static hearth_status put_value(wbuf *b, const gguf_value *v, const char *key, hearth_err *err) {
    if (!vtype_valid(v->type))
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': bad value type %d", key, (int)v->type);
    if (!wbuf_le(b, (uint32_t)v->type, 4)) return nomem(err, key);
    if (v->type == GGUF_V_STRING) {
        if (!v->s.ptr && v->s.len) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': NULL string", key);
        return wbuf_str(b, v->s.ptr, v->s.len) ? HEARTH_OK : nomem(err, key);
    }
    if (v->type == GGUF_V_ARRAY) return put_array(b, &v->a, 0, key, err);
    return put_scalar(b, v, key, err);
}

static hearth_status check_alignment_key(const char *key, const gguf_value *v, hearth_err *err) {
    if (strcmp(key, "general.alignment") != 0) return HEARTH_OK;
    if (v->type != GGUF_V_UINT32 || v->u < 8 || (v->u & (v->u - 1)) != 0)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: general.alignment must be a uint32 power of two >= 8");
    return HEARTH_OK;
}

hearth_status gguf_writer_set(gguf_writer *w, const char *key, const gguf_value *v, hearth_err *err) {
    if (!w || !key || !*key || !v) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: empty key or missing value");
    hearth_status st = check_alignment_key(key, v, err);
    if (st) return st;
    wbuf b = {0};
    if ((st = put_value(&b, v, key, err))) {
        mem_free(b.p);
        return st;
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            mem_free(w->kvs[i].val.p);
            w->kvs[i].val = b;
            return HEARTH_OK;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *nk = mem_realloc_array(w->kvs, cap, sizeof *nk);
        if (!nk) {
            mem_free(b.p);
            return nomem(err, key);
        }
        w->kvs = nk;
        w->cap_kv = cap;
    }
    char *k = mem_strdup(key);
    if (!k) {
        mem_free(b.p);
        return nomem(err, key);
    }
    w->kvs[w->n_kv++] = (wkv){.key = k, .val = b};
    return HEARTH_OK;
}

hearth_status gguf_writer_set_int(gguf_writer *w, const char *key, gguf_vtype type, int64_t v, hearth_err *err) {
    gguf_value val = {.type = type};
    switch (type) {
    case GGUF_V_UINT8: case GGUF_V_UINT16: case GGUF_V_UINT32: case GGUF_V_UINT64:
        if (v < 0) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': negative value for %s", key ? key : "",
                                  gguf_vtype_name(type));
        val.u = (uint64_t)v;
        break;
    case GGUF_V_INT8: case GGUF_V_INT16: case GGUF_V_INT32: case GGUF_V_INT64: val.i = v; break;
    default:
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': %s is not an integer type", key ? key : "",
                       gguf_vtype_name(type));
    }
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v, hearth_err *err) {
    gguf_value val = {.type = GGUF_V_UINT64, .u = v};
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_float(gguf_writer *w, const char *key, gguf_vtype type, double v, hearth_err *err) {
    if (type != GGUF_V_FLOAT32 && type != GGUF_V_FLOAT64)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': %s is not a float type", key ? key : "",
                       gguf_vtype_name(type));
    gguf_value val = {.type = type, .f = v};
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, hearth_err *err) {
    gguf_value val = {.type = GGUF_V_BOOL, .u = v};
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len, hearth_err *err) {
    gguf_value val = {.type = GGUF_V_STRING, .s = {s, len}};
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, hearth_err *err) {
    if (!s) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': NULL string", key ? key : "");
    return gguf_writer_set_strn(w, key, s, strlen(s), err);
}

hearth_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem_type, const void *data,
                                  uint64_t n, hearth_err *err) {
    if (elem_bytes(elem_type) == 0)
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': %s arrays need gguf_writer_set", key ? key : "",
                       gguf_vtype_name(elem_type));
    gguf_value val = {.type = GGUF_V_ARRAY, .a = {.type = elem_type, .n = n, .data = data}};
    return gguf_writer_set(w, key, &val, err);
}

hearth_status gguf_writer_set_str_arr(gguf_writer *w, const char *key, const char *const *strs, uint64_t n,
                                      hearth_err *err) {
    if (n && !strs) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': NULL string list", key ? key : "");
    gguf_str *tab = n ? mem_alloc_array((size_t)n, sizeof *tab) : NULL;
    if (n && !tab) return nomem(err, key ? key : "");
    for (uint64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            mem_free(tab);
            return err_set(err, HEARTH_ERR_INVALID, "gguf writer: '%s': string %llu is NULL", key ? key : "",
                           (unsigned long long)i);
        }
        tab[i] = (gguf_str){strs[i], strlen(strs[i])};
    }
    gguf_value val = {.type = GGUF_V_ARRAY, .a = {.type = GGUF_V_STRING, .n = n, .strs = tab}};
    hearth_status st = gguf_writer_set(w, key, &val, err);
    mem_free(tab);
    return st;
}

/* ---- tensors ------------------------------------------------------------------------ */

bool gguf_tensor_bytes(uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t *out) {
    const ggml_type_info *ti = ggml_type_get(type);
    if (!ti->name || n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne) return false;
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne[d] < 1) return false;
    if (ne[0] % ti->block_elems != 0) return false;
    uint64_t size;
    int64_t n_elems = 1;
    if (!ck_mul((uint64_t)(ne[0] / ti->block_elems), (uint64_t)ti->block_bytes, &size)) return false;
    for (uint32_t d = 0; d < n_dims; d++)
        if (!ck_mul(n_elems, ne[d], &n_elems)) return false;
    for (uint32_t d = 1; d < n_dims; d++)
        if (!ck_mul(size, (uint64_t)ne[d], &size)) return false;
    *out = size;
    return true;
}

static hearth_status add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                const int64_t *ne, const void *data, gguf_tensor_fill_fn fill, void *ctx,
                                hearth_err *err) {
    if (!w || !name || !*name) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: empty tensor name");
    uint64_t size;
    if (!gguf_tensor_bytes(type, n_dims, ne, &size))
        return err_set(err, HEARTH_ERR_INVALID,
                       "gguf writer: tensor '%s': bad type %u or shape (1-4 dims, each >= 1, ne[0] a multiple of "
                       "the block size)", name, type);
    if (!data && !fill) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: tensor '%s': no data", name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return err_set(err, HEARTH_ERR_INVALID, "gguf writer: duplicate tensor '%s'", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? w->cap_tensors * 2 : 16;
        wtensor *nt = mem_realloc_array(w->tensors, cap, sizeof *nt);
        if (!nt) return nomem(err, name);
        w->tensors = nt;
        w->cap_tensors = cap;
    }
    wtensor t = {.type = type, .n_dims = n_dims, .size = size, .data = data, .fill = fill, .ctx = ctx};
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t.ne[d] = d < n_dims ? ne[d] : 1;
    if (!(t.name = mem_strdup(name))) return nomem(err, name);
    w->tensors[w->n_tensors++] = t;
    return HEARTH_OK;
}

hearth_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const int64_t *ne, const void *data, hearth_err *err) {
    return add_tensor(w, name, type, n_dims, ne, data, NULL, NULL, err);
}

hearth_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                        const int64_t *ne, gguf_tensor_fill_fn fill, void *ctx, hearth_err *err) {
    if (!fill) return err_set(err, HEARTH_ERR_INVALID, "gguf writer: tensor '%s': no fill function", name ? name : "");
    return add_tensor(w, name, type, n_dims, ne, NULL, fill, ctx, err);
}

gguf_writer *gguf_writer_new(void) { return mem_calloc(1, sizeof(gguf_writer)); }

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        mem_free(w->kvs[i].key);
        mem_free(w->kvs[i].val.p);
    }
    for (size_t i = 0; i < w->n_tensors; i++) mem_free(w->tensors[i].name);
    mem_free(w->kvs);
    mem_free(w->tensors);
    mem_free(w);
}

/* ---- layout and output -------------------------------------------------------------- */

static uint32_t writer_alignment(const gguf_writer *w) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, "general.alignment") == 0) {
            const uint8_t *p = w->kvs[i].val.p + 4; /* after the type, validated as UINT32 */
            return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
    return WRITER_DEFAULT_ALIGNMENT;
}

static uint64_t pad_to(uint64_t n, uint32_t align) { return (align - n % align) % align; }

/* Header, metadata, tensor table and the padding up to the data section; the total file
 * size (with each tensor's data padded to the alignment) in *total. */
static hearth_status build_header(const gguf_writer *w, wbuf *h, uint64_t *total, hearth_err *err) {
    uint32_t align = writer_alignment(w);
    bool ok = wbuf_put(h, "GGUF", 4) && wbuf_le(h, 3, 4) && wbuf_le(h, w->n_tensors, 8) && wbuf_le(h, w->n_kv, 8);
    for (size_t i = 0; ok && i < w->n_kv; i++)
        ok = wbuf_str(h, w->kvs[i].key, strlen(w->kvs[i].key)) && wbuf_put(h, w->kvs[i].val.p, w->kvs[i].val.len);
    uint64_t offset = 0;
    for (size_t i = 0; ok && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        ok = wbuf_str(h, t->name, strlen(t->name)) && wbuf_le(h, t->n_dims, 4);
        for (uint32_t d = 0; ok && d < t->n_dims; d++) ok = wbuf_le(h, (uint64_t)t->ne[d], 8);
        ok = ok && wbuf_le(h, t->type, 4) && wbuf_le(h, offset, 8);
        if (ok && (!ck_add(offset, t->size, &offset) || !ck_add(offset, pad_to(offset, align), &offset)))
            return err_set(err, HEARTH_ERR_INVALID, "gguf writer: tensor data exceeds 2^64 bytes");
    }
    static const uint8_t zeros[256];
    ok = ok && wbuf_put(h, zeros, (size_t)pad_to(h->len, align));
    if (!ok) return err_set(err, HEARTH_ERR_NOMEM, "gguf writer: out of memory building the header");
    if (!ck_add((uint64_t)h->len, offset, total))
        return err_set(err, HEARTH_ERR_INVALID, "gguf writer: file exceeds 2^64 bytes");
    return HEARTH_OK;
}

hearth_status gguf_writer_write_memory(const gguf_writer *w, void **out, size_t *size, hearth_err *err) {
    *out = NULL;
    *size = 0;
    wbuf h = {0};
    uint64_t total;
    hearth_status st = build_header(w, &h, &total, err);
    if (st) {
        mem_free(h.p);
        return st;
    }
    uint8_t *buf = total <= SIZE_MAX ? mem_alloc((size_t)total) : NULL;
    if (!buf) {
        mem_free(h.p);
        return err_set(err, HEARTH_ERR_NOMEM, "gguf writer: out of memory for a %llu-byte file",
                       (unsigned long long)total);
    }
    memcpy(buf, h.p, h.len);
    uint64_t pos = h.len;
    mem_free(h.p);
    uint32_t align = writer_alignment(w);
    for (size_t i = 0; i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        if (t->fill) {
            if ((st = t->fill(t->ctx, buf + pos, t->size, err))) {
                mem_free(buf);
                return st;
            }
        } else {
            memcpy(buf + pos, t->data, (size_t)t->size);
        }
        pos += t->size;
        uint64_t pad = pad_to(pos, align);
        memset(buf + pos, 0, (size_t)pad);
        pos += pad;
    }
    *out = buf;
    *size = (size_t)total;
    return HEARTH_OK;
}

static hearth_status write_all(int fd, const void *p, uint64_t n, const char *path, hearth_err *err) {
    const uint8_t *b = p;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t r = write(fd, b, chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return err_set(err, HEARTH_ERR_IO, "%s: write failed: %s", path, r < 0 ? strerror(errno) : "no progress");
        b += r;
        n -= (uint64_t)r;
    }
    return HEARTH_OK;
}

static hearth_status write_tensors(const gguf_writer *w, int fd, uint64_t pos, const char *path, hearth_err *err) {
    static const uint8_t zeros[256];
    uint32_t align = writer_alignment(w);
    hearth_status st = HEARTH_OK;
    for (size_t i = 0; i < w->n_tensors && !st; i++) {
        const wtensor *t = &w->tensors[i];
        if (t->fill) {
            void *tmp = t->size <= SIZE_MAX ? mem_alloc((size_t)t->size) : NULL;
            if (!tmp)
                return err_set(err, HEARTH_ERR_NOMEM, "gguf writer: out of memory for tensor '%s'", t->name);
            st = t->fill(t->ctx, tmp, t->size, err);
            if (!st) st = write_all(fd, tmp, t->size, path, err);
            mem_free(tmp);
        } else {
            st = write_all(fd, t->data, t->size, path, err);
        }
        pos += t->size;
        if (!st) st = write_all(fd, zeros, pad_to(pos, align), path, err);
        pos += pad_to(pos, align);
    }
    return st;
}

hearth_status gguf_writer_write_file(const gguf_writer *w, const char *path, hearth_err *err) {
    wbuf h = {0};
    uint64_t total;
    hearth_status st = build_header(w, &h, &total, err);
    if (st) {
        mem_free(h.p);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = mem_alloc(plen + sizeof ".tmp-XXXXXX");
    if (!tmp) {
        mem_free(h.p);
        return err_set(err, HEARTH_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", sizeof ".tmp-XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = err_set(err, HEARTH_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
    } else {
        st = fchmod(fd, 0644) == 0 ? HEARTH_OK
                                   : err_set(err, HEARTH_ERR_IO, "%s: chmod failed: %s", tmp, strerror(errno));
        if (!st) st = write_all(fd, h.p, h.len, path, err);
        if (!st) st = write_tensors(w, fd, h.len, path, err);
        if (!st && fsync(fd) != 0) st = err_set(err, HEARTH_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
        if (close(fd) != 0 && !st) st = err_set(err, HEARTH_ERR_IO, "%s: close failed: %s", path, strerror(errno));
        if (!st && rename(tmp, path) != 0)
            st = err_set(err, HEARTH_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                         strerror(errno));
        if (st) unlink(tmp);
    }
    mem_free(tmp);
    mem_free(h.p);
    return st;
}
