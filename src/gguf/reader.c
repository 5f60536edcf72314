/* GGUF v2/v3 reader: maps the file, parses and validates the header, metadata and tensor
 * table in one pass, and builds the lookup tables the accessors use. Every count, length
 * and offset is checked against the bytes that remain with overflow-safe arithmetic before
 * it is used; a malformed file is refused with one line "<file>: <what> (<where>)".
 * It must never read outside the buffer, assert on input, or hand out a pointer that is not
 * inside the mapping. */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_ARRAY_DEPTH 8
/* Smallest possible encodings, used to bound counts by the bytes that remain. */
#define GGUF_MIN_KV_BYTES 14     /* key length 8 + one key byte + type 4 + a 1-byte value */
#define GGUF_MIN_TENSOR_BYTES 33 /* name length 8 + one byte + n_dims 4 + one dim 8 + type 4 + offset 8 */

struct gguf_file {
    char *path;              /* as given to gguf_open, or the name given to gguf_open_memory */
    const uint8_t *base;     /* the whole file */
    uint64_t size;           /* bytes */
    bool mapped;             /* base is our mmap (unmapped at close) */
    uint32_t version;
    uint32_t alignment;      /* bytes; a power of two */
    uint64_t data_offset;    /* start of the tensor data section, from the file start */
    uint64_t n_kv;
    gguf_kv *kvs;            /* [n_kv] */
    uint64_t n_tensors;
    gguf_tensor *tensors;    /* [n_tensors] */
    uint64_t *kv_index;      /* open-addressing hash of key -> index+1 (0 = empty), [kv_slots] */
    uint64_t kv_slots;
    uint64_t *tensor_index;  /* same for tensor names, [tensor_slots] */
    uint64_t tensor_slots;
};

/* ---- messages ----------------------------------------------------------------------- */

/* Writes s for a one-line message: at most 80 bytes, control and non-ASCII bytes escaped. */
static const char *str_for_msg(gguf_str s, char *buf, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    uint64_t shown = 0;
    for (; shown < s.len && shown < 80 && o + 5 < cap; shown++) {
        unsigned char c = (unsigned char)s.ptr[shown];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
    }
    if (shown < s.len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- bounded cursor ----------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *name;   /* file name for messages */
    hearth_err *err;
} cursor;

static uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static hearth_status need(cursor *c, uint64_t n, const char *what, const char *where) {
    if (n <= remaining(c)) return HEARTH_OK;
    return err_set(c->err, HEARTH_ERR_FORMAT,
                   "%s: file ends inside %s (%s, offset %" PRIu64 ": needs %" PRIu64
                   " bytes, %" PRIu64 " remain)",
                   c->name, what, where, c->pos, n, remaining(c));
}

static uint64_t load_le(const uint8_t *p, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static hearth_status read_u32(cursor *c, uint32_t *out, const char *what, const char *where) {
    hearth_status st = need(c, 4, what, where);
    if (st) return st;
    *out = (uint32_t)load_le(c->base + c->pos, 4);
    c->pos += 4;
    return HEARTH_OK;
}

static hearth_status read_u64(cursor *c, uint64_t *out, const char *what, const char *where) {
    hearth_status st = need(c, 8, what, where);
    if (st) return st;
    *out = load_le(c->base + c->pos, 8);
    c->pos += 8;
    return HEARTH_OK;
}

/* A length-prefixed string; the length is checked against the bytes that remain. */
static hearth_status read_str(cursor *c, gguf_str *out, const char *what, const char *where) {
    uint64_t start = c->pos, len;
    hearth_status st = read_u64(c, &len, what, where);
    if (st) return st;
    if (len > remaining(c))
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: %s length %" PRIu64 " exceeds the %" PRIu64
                       " bytes left in the file (%s, offset %" PRIu64 ")",
                       c->name, what, len, remaining(c), where, start);
    out->ptr = (const char *)c->base + c->pos;
    out->len = len;
    c->pos += len;
    return HEARTH_OK;
}

/* ---- metadata values ---------------------------------------------------------------- */

static bool vtype_valid(uint32_t t) { return t <= GGUF_V_FLOAT64; }

/* Bytes of one scalar of a fixed-size type; 0 for STRING and ARRAY. */
static unsigned scalar_bytes(gguf_vtype t) {
    switch (t) {
    case GGUF_V_UINT8: case GGUF_V_INT8: case GGUF_V_BOOL: return 1;
    case GGUF_V_UINT16: case GGUF_V_INT16: return 2;
    case GGUF_V_UINT32: case GGUF_V_INT32: case GGUF_V_FLOAT32: return 4;
    case GGUF_V_UINT64: case GGUF_V_INT64: case GGUF_V_FLOAT64: return 8;
    case GGUF_V_STRING: case GGUF_V_ARRAY: return 0;
    }
    return 0;
}

static void value_free(gguf_value *v);

static void arr_free(gguf_arr *a) {
    mem_free((void *)a->strs);
    if (a->arrs) {
        gguf_value *items = (gguf_value *)a->arrs;
        for (uint64_t i = 0; i < a->n; i++) value_free(&items[i]);
        mem_free(items);
    }
    a->strs = NULL;
    a->arrs = NULL;
}

static void value_free(gguf_value *v) {
    if (v->type == GGUF_V_ARRAY) arr_free(&v->a);
}

/* Decodes a fixed-size scalar at p into v (type already set). */
static void scalar_decode(gguf_value *v, const uint8_t *p) {
    uint64_t raw = load_le(p, scalar_bytes(v->type));
    switch (v->type) {
    case GGUF_V_UINT8: case GGUF_V_UINT16: case GGUF_V_UINT32: case GGUF_V_UINT64:
    case GGUF_V_BOOL:
        v->u = raw;
        break;
    case GGUF_V_INT8: v->i = (int8_t)raw; break;
    case GGUF_V_INT16: v->i = (int16_t)raw; break;
    case GGUF_V_INT32: v->i = (int32_t)raw; break;
    case GGUF_V_INT64: v->i = (int64_t)raw; break;
    case GGUF_V_FLOAT32: {
        float f;
        uint32_t r32 = (uint32_t)raw;
        memcpy(&f, &r32, 4);
        v->f = f;
        break;
    }
    case GGUF_V_FLOAT64: memcpy(&v->f, &raw, 8); break;
    case GGUF_V_STRING: case GGUF_V_ARRAY: break;
    }
}

static hearth_status read_value(cursor *c, gguf_vtype type, int depth, gguf_value *out,
                                const char *where);

static hearth_status read_array(cursor *c, int depth, gguf_arr *out, const char *where) {
    uint64_t start = c->pos;
    uint32_t et;
    uint64_t n;
    hearth_status st = read_u32(c, &et, "an array's element type", where);
    if (st) return st;
    if (!vtype_valid(et))
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: array element type %" PRIu32 " is not a GGUF value type (%s, offset %" PRIu64 ")",
                       c->name, et, where, start);
    if (et == GGUF_V_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: arrays nested more than %d deep (%s, offset %" PRIu64 ")",
                       c->name, GGUF_MAX_ARRAY_DEPTH, where, start);
    if ((st = read_u64(c, &n, "an array's element count", where))) return st;

    uint64_t min_elem = scalar_bytes(et);
    if (et == GGUF_V_STRING) min_elem = 8;
    if (et == GGUF_V_ARRAY) min_elem = 12;
    uint64_t min_total;
    if (!ck_mul(n, min_elem, &min_total) || min_total > remaining(c))
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: array of %" PRIu64 " %s elements cannot fit in the %" PRIu64
                       " bytes left in the file (%s, offset %" PRIu64 ")",
                       c->name, n, gguf_vtype_name(et), remaining(c), where, start);

    gguf_arr a = {.type = et, .n = n, .data = c->base + c->pos};
    if (et == GGUF_V_STRING) {
        gguf_str *strs = n ? mem_alloc_array(n, sizeof *strs) : NULL;
        if (n && !strs)
            return err_set(c->err, HEARTH_ERR_NOMEM, "%s: out of memory for a %" PRIu64
                           "-string array (%s)", c->name, n, where);
        for (uint64_t i = 0; i < n; i++) {
            if ((st = read_str(c, &strs[i], "a string array element", where))) {
                mem_free(strs);
                return st;
            }
        }
        a.strs = strs;
    } else if (et == GGUF_V_ARRAY) {
        gguf_value *items = n ? mem_calloc(n, sizeof *items) : NULL;
        if (n && !items)
            return err_set(c->err, HEARTH_ERR_NOMEM, "%s: out of memory for a %" PRIu64
                           "-array array (%s)", c->name, n, where);
        a.arrs = items;
        for (uint64_t i = 0; i < n; i++) {
            if ((st = read_value(c, GGUF_V_ARRAY, depth + 1, &items[i], where))) {
                a.n = i;
                arr_free(&a);
                return st;
            }
        }
    } else {
        const uint8_t *p = c->base + c->pos;
        if (et == GGUF_V_BOOL) {
            for (uint64_t i = 0; i < n; i++)
                if (p[i] > 1)
                    return err_set(c->err, HEARTH_ERR_FORMAT,
                                   "%s: bool array element %" PRIu64 " has value %u, not 0 or 1 (%s, offset %" PRIu64 ")",
                                   c->name, i, p[i], where, c->pos + i);
        }
        c->pos += min_total;
    }
    *out = a;
    return HEARTH_OK;
}

static hearth_status read_value(cursor *c, gguf_vtype type, int depth, gguf_value *out,
                                const char *where) {
    gguf_value v = {.type = type};
    hearth_status st;
    if (type == GGUF_V_STRING) {
        st = read_str(c, &v.s, "a string value", where);
    } else if (type == GGUF_V_ARRAY) {
        st = read_array(c, depth, &v.a, where);
    } else {
        st = need(c, scalar_bytes(type), "a value", where);
        if (!st) {
            if (type == GGUF_V_BOOL && c->base[c->pos] > 1)
                return err_set(c->err, HEARTH_ERR_FORMAT,
                               "%s: bool value %u is not 0 or 1 (%s, offset %" PRIu64 ")",
                               c->name, c->base[c->pos], where, c->pos);
            scalar_decode(&v, c->base + c->pos);
            c->pos += scalar_bytes(type);
        }
    }
    if (st) return st;
    *out = v;
    return HEARTH_OK;
}

/* ---- name hash tables --------------------------------------------------------------- */

static uint64_t hash_bytes(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool str_equal(gguf_str a, gguf_str b) {
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Slot count for n names: a power of two at least twice n. */
static bool table_slots(uint64_t n, uint64_t *slots) {
    uint64_t s = 16;
    while (s < n * 2) {
        if (!ck_mul(s, 2, &s)) return false;
    }
    *slots = s;
    return true;
}

/* Finds name in a table; returns its 1-based index or 0. name_at gives the name of entry i. */
typedef gguf_str (*name_fn)(const gguf_file *f, uint64_t i);

static gguf_str kv_name(const gguf_file *f, uint64_t i) { return f->kvs[i].key; }
static gguf_str tensor_name(const gguf_file *f, uint64_t i) { return f->tensors[i].name; }

static uint64_t table_find(const gguf_file *f, const uint64_t *table, uint64_t slots, name_fn name_at,
                           gguf_str name, uint64_t *slot_out) {
    uint64_t mask = slots - 1, s = hash_bytes(name.ptr, name.len) & mask;
    for (;;) {
        uint64_t e = table[s];
        if (e == 0 || str_equal(name_at(f, e - 1), name)) {
            if (slot_out) *slot_out = s;
            return e;
        }
        s = (s + 1) & mask;
    }
}

/* ---- parse -------------------------------------------------------------------------- */

static hearth_status parse_header(cursor *c, gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size == 0)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: file is empty, not a GGUF file (0 bytes)", c->name);
    if (c->size < 4 || memcmp(c->base, "GGUF", 4) != 0)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: not a GGUF file (bad magic at offset 0)", c->name);
    c->pos = 4;
    hearth_status st = read_u32(c, &f->version, "the version", "header");
    if (st) return st;
    if (f->version != 2 && f->version != 3) {
        const char *hint = (f->version & 0xffff) == 0 && f->version ? ", a big-endian file?" : "";
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: GGUF version %" PRIu32 " is not supported, only 2 and 3 (header, offset 4%s)",
                       c->name, f->version, hint);
    }
    if ((st = read_u64(c, n_tensors, "the tensor count", "header"))) return st;
    if ((st = read_u64(c, n_kv, "the metadata count", "header"))) return st;
    uint64_t need_t, need_kv, need_all;
    if (!ck_mul(*n_tensors, (uint64_t)GGUF_MIN_TENSOR_BYTES, &need_t) ||
        !ck_mul(*n_kv, (uint64_t)GGUF_MIN_KV_BYTES, &need_kv) || !ck_add(need_t, need_kv, &need_all) ||
        need_all > remaining(c))
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: %" PRIu64 " tensors and %" PRIu64 " metadata entries cannot fit in the %" PRIu64
                       " bytes after the header (header, offset 8)",
                       c->name, *n_tensors, *n_kv, remaining(c));
    return HEARTH_OK;
}

static hearth_status parse_kvs(cursor *c, gguf_file *f, uint64_t n_kv) {
    if (!table_slots(n_kv, &f->kv_slots))
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: too many metadata entries (header)", c->name);
    f->kvs = mem_calloc(n_kv ? n_kv : 1, sizeof *f->kvs);
    f->kv_index = mem_calloc(f->kv_slots, sizeof *f->kv_index);
    if (!f->kvs || !f->kv_index)
        return err_set(c->err, HEARTH_ERR_NOMEM, "%s: out of memory for %" PRIu64 " metadata entries",
                       c->name, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        char where[160], keybuf[96];
        uint64_t start = c->pos;
        snprintf(where, sizeof where, "metadata entry %" PRIu64, i);
        gguf_kv *kv = &f->kvs[i];
        hearth_status st = read_str(c, &kv->key, "a metadata key", where);
        if (st) return st;
        if (kv->key.len == 0)
            return err_set(c->err, HEARTH_ERR_FORMAT, "%s: empty metadata key (%s, offset %" PRIu64 ")",
                           c->name, where, start);
        snprintf(where, sizeof where, "key '%s'", str_for_msg(kv->key, keybuf, sizeof keybuf));
        uint64_t slot;
        if (table_find(f, f->kv_index, f->kv_slots, kv_name, kv->key, &slot))
            return err_set(c->err, HEARTH_ERR_FORMAT, "%s: duplicate metadata key (%s, offset %" PRIu64 ")",
                           c->name, where, start);
        uint32_t type;
        uint64_t type_pos = c->pos;
        if ((st = read_u32(c, &type, "a metadata value type", where))) return st;
        if (!vtype_valid(type))
            return err_set(c->err, HEARTH_ERR_FORMAT,
                           "%s: value type %" PRIu32 " is not a GGUF value type (%s, offset %" PRIu64 ")",
                           c->name, type, where, type_pos);
        if ((st = read_value(c, (gguf_vtype)type, 0, &kv->val, where))) return st;
        f->kv_index[slot] = i + 1;
        f->n_kv = i + 1;
    }
    return HEARTH_OK;
}

static hearth_status apply_alignment(cursor *c, gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_value *v = gguf_find(f, "general.alignment");
    if (!v) return HEARTH_OK;
    if (v->type != GGUF_V_UINT32)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: alignment must be a uint32, not %s (key 'general.alignment')",
                       c->name, gguf_vtype_name(v->type));
    /* the format requires a multiple of 8, which also keeps every scalar element aligned */
    if (v->u < 8 || (v->u & (v->u - 1)) != 0)
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: alignment %" PRIu64 " is not a power of two >= 8 (key 'general.alignment')", c->name, v->u);
    f->alignment = (uint32_t)v->u;
    return HEARTH_OK;
}

static hearth_status parse_tensor_info(cursor *c, gguf_file *f, uint64_t i) {
    char where[160], namebuf[96];
    uint64_t start = c->pos;
    gguf_tensor *t = &f->tensors[i];
    snprintf(where, sizeof where, "tensor %" PRIu64, i);
    hearth_status st = read_str(c, &t->name, "a tensor name", where);
    if (st) return st;
    if (t->name.len == 0)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: empty tensor name (%s, offset %" PRIu64 ")",
                       c->name, where, start);
    snprintf(where, sizeof where, "tensor '%s'", str_for_msg(t->name, namebuf, sizeof namebuf));
    uint64_t slot;
    if (table_find(f, f->tensor_index, f->tensor_slots, tensor_name, t->name, &slot))
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: duplicate tensor name (%s, offset %" PRIu64 ")",
                       c->name, where, start);
    if ((st = read_u32(c, &t->n_dims, "a tensor's dimension count", where))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: %" PRIu32 " dimensions, expected 1 to %d (%s)",
                       c->name, t->n_dims, GGUF_MAX_DIMS, where);
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        uint64_t raw;
        if ((st = read_u64(c, &raw, "a tensor dimension", where))) return st;
        if (raw == 0 || raw > (uint64_t)INT64_MAX)
            return err_set(c->err, HEARTH_ERR_FORMAT, "%s: dimension %" PRIu32 " is %" PRId64 ", must be at least 1 (%s)",
                           c->name, d, (int64_t)raw, where);
        t->ne[d] = (int64_t)raw;
        if (!ck_mul(n_elems, t->ne[d], &n_elems))
            return err_set(c->err, HEARTH_ERR_FORMAT, "%s: element count overflows 64 bits (%s)", c->name, where);
    }
    if ((st = read_u32(c, &t->type, "a tensor type", where))) return st;
    const ggml_type_info *ti = ggml_type_get(t->type);
    if (!ti->name)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: unknown tensor type id %" PRIu32 " (%s)",
                       c->name, t->type, where);
    if (t->ne[0] % ti->block_elems != 0)
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: first dimension %" PRId64 " is not a multiple of the %s block size %" PRIu32 " (%s)",
                       c->name, t->ne[0], ti->name, ti->block_elems, where);
    uint64_t row_bytes, size = 0;
    bool fits = ck_mul((uint64_t)(t->ne[0] / ti->block_elems), (uint64_t)ti->block_bytes, &row_bytes);
    fits = fits && ck_mul(row_bytes, (uint64_t)t->ne[1], &size);
    fits = fits && ck_mul(size, (uint64_t)t->ne[2], &size);
    fits = fits && ck_mul(size, (uint64_t)t->ne[3], &size);
    if (!fits)
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: tensor byte size overflows 64 bits (%s)", c->name, where);
    t->size = size;
    if ((st = read_u64(c, &t->offset, "a tensor offset", where))) return st;
    if (t->offset % f->alignment != 0)
        return err_set(c->err, HEARTH_ERR_FORMAT,
                       "%s: data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32 " (%s)",
                       c->name, t->offset, f->alignment, where);
    f->tensor_index[slot] = i + 1;
    f->n_tensors = i + 1;
    return HEARTH_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places the data section and checks every tensor's range lies in the file, without overlap. */
static hearth_status place_tensor_data(cursor *c, gguf_file *f) {
    uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    if (!ck_add(c->pos, pad, &f->data_offset))
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: data section offset overflows (offset %" PRIu64 ")",
                       c->name, c->pos);
    if (f->n_tensors == 0) return HEARTH_OK;
    char namebuf[96];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        uint64_t abs;
        if (!ck_add(f->data_offset, t->offset, &abs) || !ck_range(abs, t->size, f->size))
            return err_set(c->err, HEARTH_ERR_FORMAT,
                           "%s: tensor data [%" PRIu64 ", +%" PRIu64 ") extends past the end of the file (%" PRIu64
                           " bytes; tensor '%s', data section at %" PRIu64 ")",
                           c->name, t->offset, t->size, f->size, str_for_msg(t->name, namebuf, sizeof namebuf),
                           f->data_offset);
        t->data = f->base + abs;
    }
    gguf_tensor **order = mem_alloc_array(f->n_tensors, sizeof *order);
    if (!order) return err_set(c->err, HEARTH_ERR_NOMEM, "%s: out of memory sorting tensors", c->name);
    for (uint64_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_by_offset);
    hearth_status st = HEARTH_OK;
    for (uint64_t i = 1; i < f->n_tensors && !st; i++) {
        const gguf_tensor *a = order[i - 1], *b = order[i];
        if (b->offset - a->offset < a->size) {
            char other[96];
            st = err_set(c->err, HEARTH_ERR_FORMAT,
                         "%s: tensor data [%" PRIu64 ", +%" PRIu64 ") overlaps tensor '%s' at [%" PRIu64 ", +%" PRIu64
                         ") (tensor '%s')",
                         c->name, b->offset, b->size, str_for_msg(a->name, other, sizeof other), a->offset, a->size,
                         str_for_msg(b->name, namebuf, sizeof namebuf));
        }
    }
    mem_free(order);
    return st;
}

static hearth_status parse_tensors(cursor *c, gguf_file *f, uint64_t n_tensors) {
    if (!table_slots(n_tensors, &f->tensor_slots))
        return err_set(c->err, HEARTH_ERR_FORMAT, "%s: too many tensors (header)", c->name);
    f->tensors = mem_calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    f->tensor_index = mem_calloc(f->tensor_slots, sizeof *f->tensor_index);
    if (!f->tensors || !f->tensor_index)
        return err_set(c->err, HEARTH_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", c->name, n_tensors);
    for (uint64_t i = 0; i < n_tensors; i++) {
        hearth_status st = parse_tensor_info(c, f, i);
        if (st) return st;
    }
    return place_tensor_data(c, f);
}

static hearth_status parse(gguf_file *f, hearth_err *err) {
    cursor c = {.base = f->base, .size = f->size, .name = f->path, .err = err};
    uint64_t n_tensors, n_kv;
    hearth_status st = parse_header(&c, f, &n_tensors, &n_kv);
    if (!st) st = parse_kvs(&c, f, n_kv);
    if (!st) st = apply_alignment(&c, f);
    if (!st) st = parse_tensors(&c, f, n_tensors);
    return st;
}

/* ---- open / close ------------------------------------------------------------------- */

static hearth_status file_new(const char *name, gguf_file **out, hearth_err *err) {
    gguf_file *f = mem_calloc(1, sizeof *f);
    if (f) f->path = mem_strdup(name ? name : "(memory)");
    if (!f || !f->path) {
        mem_free(f);
        return err_set(err, HEARTH_ERR_NOMEM, "%s: out of memory opening the file", name ? name : "(memory)");
    }
    *out = f;
    return HEARTH_OK;
}

static hearth_status finish_open(gguf_file *f, gguf_file **out, hearth_err *err) {
    hearth_status st = parse(f, err);
    if (st) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return HEARTH_OK;
}

hearth_status gguf_open_memory(const void *buf, size_t size, const char *name, gguf_file **out,
                               hearth_err *err) {
    *out = NULL;
    if (!buf && size) return err_set(err, HEARTH_ERR_INVALID, "%s: NULL buffer", name ? name : "(memory)");
    gguf_file *f;
    hearth_status st = file_new(name, &f, err);
    if (st) return st;
    f->base = buf;
    f->size = size;
    return finish_open(f, out, err);
}

hearth_status gguf_open(const char *path, gguf_file **out, hearth_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return err_set(err, e == ENOENT ? HEARTH_ERR_NOT_FOUND : HEARTH_ERR_IO, "%s: cannot open: %s", path,
                       strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, HEARTH_ERR_IO, "%s: cannot read: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return err_set(err, HEARTH_ERR_IO, "%s: cannot read: %s", path,
                       S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    gguf_file *f;
    hearth_status st = file_new(path, &f, err);
    if (st) {
        close(fd);
        return st;
    }
    f->size = (uint64_t)sb.st_size;
    if (f->size > 0) {
        void *map = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            gguf_close(f);
            return err_set(err, HEARTH_ERR_IO, "%s: cannot map %" PRIu64 " bytes: %s", path, (uint64_t)sb.st_size,
                           strerror(e));
        }
        f->base = map;
        f->mapped = true;
    }
    close(fd);
    return finish_open(f, out, err);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (uint64_t i = 0; i < f->n_kv; i++) value_free(&f->kvs[i].val);
    mem_free(f->kvs);
    mem_free(f->kv_index);
    mem_free(f->tensors);
    mem_free(f->tensor_index);
    if (f->mapped) munmap((void *)f->base, (size_t)f->size);
    mem_free(f->path);
    mem_free(f);
}

/* ---- accessors ---------------------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint64_t gguf_file_size(const gguf_file *f) { return f->size; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
const char *gguf_path(const gguf_file *f) { return f->path; }
uint64_t gguf_kv_count(const gguf_file *f) { return f->n_kv; }
uint64_t gguf_tensor_count(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) { return i < f->n_kv ? &f->kvs[i] : NULL; }

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_value *gguf_find(const gguf_file *f, const char *key) {
    if (!f->kv_index || !key) return NULL;
    gguf_str k = {key, strlen(key)};
    uint64_t e = table_find(f, f->kv_index, f->kv_slots, kv_name, k, NULL);
    return e ? &f->kvs[e - 1].val : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    if (!f->tensor_index || !name) return NULL;
    gguf_str k = {name, strlen(name)};
    uint64_t e = table_find(f, f->tensor_index, f->tensor_slots, tensor_name, k, NULL);
    return e ? &f->tensors[e - 1] : NULL;
}

static bool is_unsigned(gguf_vtype t) {
    return t == GGUF_V_UINT8 || t == GGUF_V_UINT16 || t == GGUF_V_UINT32 || t == GGUF_V_UINT64 ||
           t == GGUF_V_BOOL;
}

static bool is_signed(gguf_vtype t) {
    return t == GGUF_V_INT8 || t == GGUF_V_INT16 || t == GGUF_V_INT32 || t == GGUF_V_INT64;
}

static bool is_float(gguf_vtype t) { return t == GGUF_V_FLOAT32 || t == GGUF_V_FLOAT64; }

static bool value_int(const gguf_value *v, int64_t *out) {
    if (is_signed(v->type)) {
        *out = v->i;
        return true;
    }
    if (is_unsigned(v->type) && v->u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->u;
        return true;
    }
    return false;
}

static bool value_float(const gguf_value *v, double *out) {
    if (is_float(v->type)) *out = v->f;
    else if (is_signed(v->type)) *out = (double)v->i;
    else if (is_unsigned(v->type)) *out = (double)v->u;
    else return false;
    return true;
}

bool gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_value *v = gguf_find(f, key);
    int64_t x;
    if (!v || !value_int(v, &x)) return false;
    *out = x;
    return true;
}

bool gguf_get_uint(const gguf_file *f, const char *key, uint64_t *out) {
    const gguf_value *v = gguf_find(f, key);
    if (!v) return false;
    if (is_unsigned(v->type)) *out = v->u;
    else if (is_signed(v->type) && v->i >= 0) *out = (uint64_t)v->i;
    else return false;
    return true;
}

bool gguf_get_float(const gguf_file *f, const char *key, double *out) {
    const gguf_value *v = gguf_find(f, key);
    double x;
    if (!v || !value_float(v, &x)) return false;
    *out = x;
    return true;
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_value *v = gguf_find(f, key);
    if (!v || v->type != GGUF_V_BOOL) return false;
    *out = v->u != 0;
    return true;
}

bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out) {
    const gguf_value *v = gguf_find(f, key);
    if (!v || v->type != GGUF_V_STRING) return false;
    *out = v->s;
    return true;
}

bool gguf_get_arr(const gguf_file *f, const char *key, const gguf_arr **out) {
    const gguf_value *v = gguf_find(f, key);
    if (!v || v->type != GGUF_V_ARRAY) return false;
    *out = &v->a;
    return true;
}

static bool arr_elem(const gguf_arr *a, uint64_t i, gguf_value *v) {
    if (!a || i >= a->n || scalar_bytes(a->type) == 0) return false;
    unsigned w = scalar_bytes(a->type);
    v->type = a->type;
    scalar_decode(v, (const uint8_t *)a->data + i * w);
    return true;
}

bool gguf_arr_int(const gguf_arr *a, uint64_t i, int64_t *out) {
    gguf_value v;
    return arr_elem(a, i, &v) && value_int(&v, out);
}

bool gguf_arr_float(const gguf_arr *a, uint64_t i, double *out) {
    gguf_value v;
    return arr_elem(a, i, &v) && value_float(&v, out);
}

bool gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

const char *gguf_vtype_name(gguf_vtype t) {
    static const char *const names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                        "bool", "string", "array", "uint64", "int64", "float64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}
