/* Fuzz helpers (see fz_util.h). */
#include "fz_util.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


uint8_t fz_u8(fz_in *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

uint32_t fz_u32(fz_in *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)fz_u8(in) << (8 * i);
    return v;
}

uint64_t fz_u64(fz_in *in) {
    uint64_t lo = fz_u32(in);
    return lo | (uint64_t)fz_u32(in) << 32;
}

double fz_f64(fz_in *in) {
    uint64_t bits = fz_u64(in);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

void fz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz invariant broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

const char *fz_fixture(const char *rel) {
    static char buf[4096];
    const char *dir = getenv("HEARTH_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : HEARTH_FIXTURES_DIR, rel);
    return buf;
}

char *fz_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *nb = realloc(buf, cap = cap * 2 + 65536 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

const char *const fz_vocab_files[] = {
    "vocab/ggml-vocab-llama-spm.gguf",      "vocab/ggml-vocab-phi-3.gguf",
    "vocab/ggml-vocab-gpt-2.gguf",          "vocab/ggml-vocab-deepseek-llm.gguf",
    "vocab/ggml-vocab-bert-bge.gguf",       "extra/vocab/ggml-vocab-deepseek-coder.gguf",
    "extra/vocab/ggml-vocab-falcon.gguf",   "extra/vocab/ggml-vocab-mpt.gguf",
    "extra/vocab/ggml-vocab-refact.gguf",   "extra/vocab/ggml-vocab-starcoder.gguf",
};
const size_t fz_n_vocab_files = sizeof fz_vocab_files / sizeof fz_vocab_files[0];

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

size_t fz_template_dirs(char **out, size_t cap) {
    static const char *const roots[] = {"templates", "extra/templates"};
    size_t n = 0;
    for (size_t r = 0; r < 2; r++) {
        DIR *d = opendir(fz_fixture(roots[r]));
        if (!d) continue;
        struct dirent *e;
        while ((e = readdir(d)) && n < cap) {
            if (e->d_name[0] == '.' || e->d_type == DT_REG) continue;
            size_t len = strlen(roots[r]) + strlen(e->d_name) + 2;
            if (!(out[n] = malloc(len))) break;
            snprintf(out[n++], len, "%s/%s", roots[r], e->d_name);
        }
        closedir(d);
    }
    qsort(out, n, sizeof *out, cmp_str);
    return n;
}
