/* GGUF v2/v3 reader: maps a file read-only and validates its whole structure at open.
 * Every count, length, offset, dimension, type id and alignment is checked against the
 * file size with overflow-safe arithmetic before use; a malformed file is refused with
 * one line naming what is wrong and where (byte offset, key or tensor name). After a
 * successful gguf_open every pointer it hands out is inside the mapping and valid until
 * gguf_close. This module never trusts a count and never asserts on input. */
#ifndef GGUF_GGUF_H
#define GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "gguf/types.h"

/* Metadata value types, numbered as in the file format. */
typedef enum gguf_vtype {
    GGUF_V_UINT8 = 0, GGUF_V_INT8 = 1, GGUF_V_UINT16 = 2, GGUF_V_INT16 = 3,
    GGUF_V_UINT32 = 4, GGUF_V_INT32 = 5, GGUF_V_FLOAT32 = 6, GGUF_V_BOOL = 7,
    GGUF_V_STRING = 8, GGUF_V_ARRAY = 9, GGUF_V_UINT64 = 10, GGUF_V_INT64 = 11,
    GGUF_V_FLOAT64 = 12,
} gguf_vtype;

/* A string inside the mapping: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_value gguf_value;

/* An array value. Numeric elements are read through gguf_arr_int/gguf_arr_float
 * (they may be unaligned in the file); string elements through strs; nested arrays
 * through arrs. */
typedef struct gguf_arr {
    gguf_vtype type;        /* element type */
    uint64_t n;             /* element count */
    const void *data;       /* numeric/bool elements, little-endian, possibly unaligned */
    const gguf_str *strs;   /* [n] when type == STRING, else NULL */
    const gguf_value *arrs; /* [n] when type == ARRAY (each has type ARRAY), else NULL */
} gguf_arr;

struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u;   /* UINT8..UINT64, BOOL */
        int64_t i;    /* INT8..INT64 */
        double f;     /* FLOAT32, FLOAT64 */
        gguf_str s;   /* STRING */
        gguf_arr a;   /* ARRAY */
    };
};

typedef struct gguf_kv {
    gguf_str key;
    gguf_value val;
} gguf_kv;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    gguf_str name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* elements per dimension, ne[0] fastest; unused dims are 1 */
    uint32_t type;             /* ggml tensor type id (gguf/types.h) */
    uint64_t offset;           /* relative to the data section */
    uint64_t size;             /* bytes, from type and shape */
    const void *data;          /* inside the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates path. On failure returns a status (IO, NOT_FOUND, FORMAT, NOMEM)
 * and fills err with one line such as
 *   "model.gguf: tensor 'blk.0.attn_q.weight' data [4096, +8192) extends past end of file (6000 bytes)". */
hearth_status gguf_open(const char *path, gguf_file **out, hearth_err *err);

/* Same validation over a caller-owned buffer (not copied; must outlive the handle).
 * name is used in messages. Used by tests and fuzzers. */
hearth_status gguf_open_memory(const void *buf, size_t size, const char *name,
                               gguf_file **out, hearth_err *err);

void gguf_close(gguf_file *f); /* accepts NULL */

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
const char *gguf_path(const gguf_file *f);

/* Metadata */
uint64_t gguf_kv_count(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
const gguf_value *gguf_find(const gguf_file *f, const char *key); /* NULL if absent */

/* Typed lookups. Each returns false when the key is absent or has an incompatible type.
 * Integers accept any integer type (and bool) whose value fits; floats accept either
 * float type and integers. */
bool gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
bool gguf_get_uint(const gguf_file *f, const char *key, uint64_t *out);
bool gguf_get_float(const gguf_file *f, const char *key, double *out);
bool gguf_get_bool(const gguf_file *f, const char *key, bool *out);
bool gguf_get_str(const gguf_file *f, const char *key, gguf_str *out);
bool gguf_get_arr(const gguf_file *f, const char *key, const gguf_arr **out);

/* Numeric array element i (i < a->n), converted; false for non-numeric arrays. */
bool gguf_arr_int(const gguf_arr *a, uint64_t i, int64_t *out);
bool gguf_arr_float(const gguf_arr *a, uint64_t i, double *out);

/* Tensors */
uint64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* True when s equals the NUL-terminated c string. */
bool gguf_str_eq(gguf_str s, const char *c);

const char *gguf_vtype_name(gguf_vtype t);

#endif
