/* GGUF v3 writer: collects metadata and tensors, then writes a complete file atomically
 * (temporary file in the same folder, then rename) or into one memory buffer. Tensor
 * data are placed in insertion order, each at a multiple of the alignment (32, or the
 * uint32 general.alignment when set). Every input is validated when it is added, so a
 * writer never produces a file the reader would refuse. */
#ifndef GGUF_WRITER_H
#define GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void);       /* NULL when out of memory */
void gguf_writer_free(gguf_writer *w);    /* accepts NULL */

/* Metadata. Keys must be non-empty. Setting a key that is already set replaces its value
 * in place (so a tool can copy a file's metadata, then override some of it). Each returns
 * INVALID for a bad argument (fills err), NOMEM on allocation failure, else OK. */

/* Any value, deep-copied: scalars, strings and arrays of any element type including nested
 * arrays, in the reader's representation (gguf/gguf.h). Copying a value from an open file
 * is how tools carry metadata across. */
hearth_status gguf_writer_set(gguf_writer *w, const char *key, const gguf_value *v, hearth_err *err);

/* Integer of type UINT8..UINT64 or INT8..INT64 (range-checked against that type). */
hearth_status gguf_writer_set_int(gguf_writer *w, const char *key, gguf_vtype type, int64_t v,
                                  hearth_err *err);
hearth_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v, hearth_err *err);
/* FLOAT32 or FLOAT64. */
hearth_status gguf_writer_set_float(gguf_writer *w, const char *key, gguf_vtype type, double v,
                                    hearth_err *err);
hearth_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool v, hearth_err *err);
hearth_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *s, hearth_err *err);
hearth_status gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len,
                                   hearth_err *err);

/* Numeric or bool array: n packed little-endian elements of elem_type (e.g. float[] for
 * FLOAT32, int32_t[] for INT32, one byte 0/1 per BOOL). */
hearth_status gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_vtype elem_type,
                                  const void *data, uint64_t n, hearth_err *err);
/* Array of n NUL-terminated strings. */
hearth_status gguf_writer_set_str_arr(gguf_writer *w, const char *key, const char *const *strs,
                                      uint64_t n, hearth_err *err);

/* Tensors. Names must be non-empty and unique, 1 <= n_dims <= 4, every ne >= 1, the type
 * known and ne[0] a multiple of its block size. data holds gguf_tensor_bytes() bytes; it is
 * NOT copied and must stay valid until the writer is written or freed. */
hearth_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const int64_t *ne, const void *data, hearth_err *err);

/* Same, with the data produced at write time, one tensor at a time: fill(ctx, dst, size, err)
 * writes size bytes into dst and returns OK or an error (which fails the write). Lets a tool
 * convert a model tensor by tensor without holding all outputs in memory. */
typedef hearth_status (*gguf_tensor_fill_fn)(void *ctx, void *dst, uint64_t size, hearth_err *err);
hearth_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                        const int64_t *ne, gguf_tensor_fill_fn fill, void *ctx,
                                        hearth_err *err);

/* Bytes of a tensor of this type and shape; false when invalid (unknown type, a dimension
 * < 1, ne[0] not a multiple of the block size, or overflow). */
bool gguf_tensor_bytes(uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t *out);

/* Writes the file atomically: on failure nothing is left at path (an existing file there is
 * untouched) and err says why (IO, NOMEM, or the error of a fill callback). */
hearth_status gguf_writer_write_file(const gguf_writer *w, const char *path, hearth_err *err);

/* Writes the whole file into a buffer from mem_alloc (release with mem_free). */
hearth_status gguf_writer_write_memory(const gguf_writer *w, void **out, size_t *size, hearth_err *err);

#endif
