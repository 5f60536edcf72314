/* libFuzzer target: any bytes through gguf_open_memory, then every accessor over every
 * key, value, array element and tensor the reader accepted, touching each byte it hands
 * out (ASan catches a pointer outside the buffer). A refusal must carry a message. */
#include <stdint.h>
#include <string.h>

#include "fz_util.h"
#include "gguf/gguf.h"

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n) {
    const volatile uint8_t *b = p;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) sum += b[i];
    sink += sum;
}

static void walk_value(const gguf_value *v, int depth) {
    if (depth > 64) fz_fail("array nesting depth %d accepted", depth);
    (void)gguf_vtype_name(v->type);
    if (v->type == GGUF_V_STRING) touch(v->s.ptr, v->s.len);
    if (v->type != GGUF_V_ARRAY) return;
    const gguf_arr *a = &v->a;
    for (uint64_t i = 0; i < a->n; i++) {
        int64_t iv;
        double fv;
        if (a->type == GGUF_V_STRING) touch(a->strs[i].ptr, a->strs[i].len);
        else if (a->type == GGUF_V_ARRAY) walk_value(&a->arrs[i], depth + 1);
        else if (!gguf_arr_float(a, i, &fv)) fz_fail("numeric array element %llu unreadable", (unsigned long long)i);
        else (void)gguf_arr_int(a, i, &iv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    hearth_err err = {0};
    hearth_status st = gguf_open_memory(data, size, "fuzz.gguf", &f, &err);
    if (st) {
        if (f) fz_fail("refusal left a handle");
        if (!err.msg[0] || !memchr(err.msg, '\0', sizeof err.msg)) fz_fail("refusal without a message");
        return 0;
    }
    (void)gguf_version(f);
    (void)gguf_alignment(f);
    if (gguf_file_size(f) != size) fz_fail("file size %llu, buffer %zu", (unsigned long long)gguf_file_size(f), size);
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        touch(kv->key.ptr, kv->key.len);
        walk_value(&kv->val, 0);
        char key[256];
        if (kv->key.len >= sizeof key || memchr(kv->key.ptr, '\0', kv->key.len)) continue;
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = '\0';
        if (!gguf_find(f, key)) fz_fail("key '%s' listed but not found", key);
        int64_t i64;
        uint64_t u64;
        double d;
        bool b;
        gguf_str s;
        const gguf_arr *a;
        (void)gguf_get_int(f, key, &i64);
        (void)gguf_get_uint(f, key, &u64);
        (void)gguf_get_float(f, key, &d);
        (void)gguf_get_bool(f, key, &b);
        if (gguf_get_str(f, key, &s)) touch(s.ptr, s.len);
        (void)gguf_get_arr(f, key, &a);
    }
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        touch(t->name.ptr, t->name.len);
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS) fz_fail("tensor with %u dims accepted", t->n_dims);
        const uint8_t *base = data, *p = t->data;
        if (t->size && (p < base || p + t->size > base + size)) fz_fail("tensor data outside the buffer");
        if (t->size) touch(p, 1), touch(p + t->size - 1, 1);
        char name[256];
        if (t->name.len >= sizeof name || memchr(t->name.ptr, '\0', t->name.len)) continue;
        memcpy(name, t->name.ptr, t->name.len);
        name[t->name.len] = '\0';
        if (!gguf_find_tensor(f, name)) fz_fail("tensor '%s' listed but not found", name);
    }
    (void)gguf_find(f, "general.architecture");
    (void)gguf_find_tensor(f, "token_embd.weight");
    gguf_close(f);
    return 0;
}
