/* Edited GGUF copies for tests (see gguf_edit.h). */
#include "gguf_edit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"

static bool str_is(gguf_str s, const char *c) { return c && gguf_str_eq(s, c); }

static int copy_tensors(const gguf_file *f, const gguf_edit *e, gguf_writer *w, void **zeros, size_t *n_zeros,
                        hearth_err *err) {
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (str_is(t->name, e->drop_tensor)) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        uint32_t type = t->type;
        int64_t ne[GGUF_MAX_DIMS];
        memcpy(ne, t->ne, sizeof ne);
        const void *data = t->data;
        bool retype = str_is(t->name, e->retype_tensor), reshape = str_is(t->name, e->reshape_tensor);
        if (retype) type = e->new_type;
        if (reshape) {
            int64_t tmp = ne[0];
            ne[0] = ne[1];
            ne[1] = tmp;
        }
        if (retype || reshape) {
            uint64_t bytes;
            if (!gguf_tensor_bytes(type, t->n_dims, ne, &bytes)) {
                fprintf(stderr, "gguf_edit: %s cannot take that type/shape\n", name);
                return -1;
            }
            data = zeros[(*n_zeros)++] = calloc(1, bytes);
        }
        if (gguf_writer_add_tensor(w, name, type, t->n_dims, ne, data, err)) return -1;
    }
    return 0;
}

int gguf_edit_copy(const char *src, const gguf_edit *e, const char *dst, void **buf, size_t *size) {
    hearth_err err = {0};
    gguf_file *f = NULL;
    gguf_writer *w = gguf_writer_new();
    void *zeros[4] = {0};
    size_t n_zeros = 0;
    int rc = -1;
    if (!w || gguf_open(src, &f, &err)) goto done;
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (str_is(kv->key, e->drop_key)) continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (gguf_writer_set(w, key, &kv->val, &err)) goto done;
    }
    if (e->set_str_key && gguf_writer_set_str(w, e->set_str_key, e->set_str_val, &err)) goto done;
    if (e->set_int_key && gguf_writer_set_int(w, e->set_int_key, GGUF_V_INT64, e->set_int_val, &err)) goto done;
    if (copy_tensors(f, e, w, zeros, &n_zeros, &err)) goto done;
    if (dst ? gguf_writer_write_file(w, dst, &err) : gguf_writer_write_memory(w, buf, size, &err)) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "gguf_edit: %s: %s\n", src, err.msg);
    for (size_t i = 0; i < n_zeros; i++) free(zeros[i]);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}
