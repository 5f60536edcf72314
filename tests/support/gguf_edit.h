/* Test helper: writes an edited copy of a GGUF file (a model with one thing wrong), so
 * tests can check that loading refuses it with a clear error. */
#ifndef TESTS_GGUF_EDIT_H
#define TESTS_GGUF_EDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gguf_edit {
    const char *set_str_key, *set_str_val;   /* string key to set (e.g. general.architecture) */
    const char *set_int_key;                 /* integer key to set (as INT64) */
    int64_t set_int_val;
    const char *drop_key;                    /* metadata key to leave out */
    const char *drop_tensor;                 /* tensor to leave out */
    const char *retype_tensor;               /* tensor whose type becomes new_type (zero data) */
    uint32_t new_type;
    const char *reshape_tensor;              /* tensor whose ne[0], ne[1] are swapped (zero data) */
} gguf_edit;

/* Copies src with the edit applied to dst (a file) or, when dst is NULL, into a buffer *buf
 * of *size bytes (release with mem_free). Returns 0 on success, -1 (after printing why) on failure. */
int gguf_edit_copy(const char *src, const gguf_edit *e, const char *dst, void **buf, size_t *size);

#endif
