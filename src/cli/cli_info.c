/* `hearth info FILE [--json]`: a summary of a GGUF file (format, architecture and its
 * hyper-parameters, tensors by type, parameter count, vocabulary, chat template), as text
 * or as one JSON object. It only reads the file; an invalid file gives one error line. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"
#include "cli/cli.h"
#include "gguf/gguf.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth info FILE [--json]\n"
            "\n"
            "Shows a GGUF file's format version, architecture and hyper-parameters, tensors\n"
            "by type, parameter count, vocabulary and whether it has a chat template.\n"
            "\n"
            "  --json      print one JSON object instead of text\n"
            "  -h, --help  show this help\n");
}

/* Facts gathered once for both output forms. */
typedef struct info_summary {
    gguf_str arch, name, vocab_type, pre;
    bool has_arch, has_name, has_vocab_type, has_pre, has_template;
    uint64_t vocab_size;
    bool has_vocab;
    uint64_t n_params;         /* elements over all tensors (saturates at 2^64-1) */
    uint64_t type_counts[GGML_TYPE_LIMIT];
} info_summary;

static void summarize(const gguf_file *f, info_summary *s) {
    memset(s, 0, sizeof *s);
    s->has_arch = gguf_get_str(f, "general.architecture", &s->arch);
    s->has_name = gguf_get_str(f, "general.name", &s->name);
    s->has_vocab_type = gguf_get_str(f, "tokenizer.ggml.model", &s->vocab_type);
    s->has_pre = gguf_get_str(f, "tokenizer.ggml.pre", &s->pre);
    s->has_template = gguf_find(f, "tokenizer.chat_template") != NULL;
    const gguf_arr *tokens;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens)) {
        s->has_vocab = true;
        s->vocab_size = tokens->n;
    }
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) n *= (uint64_t)t->ne[d]; /* validated by the reader */
        s->n_params = __builtin_add_overflow(s->n_params, n, &s->n_params) ? UINT64_MAX : s->n_params;
        s->type_counts[t->type]++;
    }
}

static bool key_in_arch(gguf_str key, const info_summary *s) {
    return s->has_arch && s->arch.len > 0 && key.len > s->arch.len && key.ptr[s->arch.len] == '.' &&
           memcmp(key.ptr, s->arch.ptr, s->arch.len) == 0;
}

/* ---- text --------------------------------------------------------------------------- */

/* Prints s with control characters escaped, cut after max bytes. */
static void print_text_str(gguf_str s, uint64_t max) {
    uint64_t n = s.len < max ? s.len : max;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (n < s.len) printf("... (%" PRIu64 " bytes)", s.len);
}

/* The shortest decimal that reads back as the same float (or double). */
static void print_shortest(double x, bool single) {
    char buf[40];
    if (x == floor(x) && fabs(x) < 1e15) {
        printf("%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double back = strtod(buf, NULL);
        if (single ? (float)back == (float)x : back == x) break;
    }
    fputs(buf, stdout);
}

static void print_text_value(const gguf_value *v) {
    switch (v->type) {
    case GGUF_V_UINT8: case GGUF_V_UINT16: case GGUF_V_UINT32: case GGUF_V_UINT64:
        printf("%" PRIu64, v->u);
        break;
    case GGUF_V_INT8: case GGUF_V_INT16: case GGUF_V_INT32: case GGUF_V_INT64:
        printf("%" PRId64, v->i);
        break;
    case GGUF_V_FLOAT32: case GGUF_V_FLOAT64: print_shortest(v->f, v->type == GGUF_V_FLOAT32); break;
    case GGUF_V_BOOL: fputs(v->u ? "true" : "false", stdout); break;
    case GGUF_V_STRING: print_text_str(v->s, 60); break;
    case GGUF_V_ARRAY: printf("[%" PRIu64 " x %s]", v->a.n, gguf_vtype_name(v->a.type)); break;
    }
}

static void print_text(const gguf_file *f, const info_summary *s) {
    uint64_t size = gguf_file_size(f);
    printf("file:            %s\n", gguf_path(f));
    printf("size:            %" PRIu64 " bytes (%.1f MiB)\n", size, (double)size / (1024.0 * 1024.0));
    printf("gguf version:    %" PRIu32 "\n", gguf_version(f));
    printf("alignment:       %" PRIu32 "\n", gguf_alignment(f));
    fputs("architecture:    ", stdout);
    if (s->has_arch) print_text_str(s->arch, 80);
    else fputs("(none)", stdout);
    fputs("\nname:            ", stdout);
    if (s->has_name) print_text_str(s->name, 80);
    else fputs("(none)", stdout);
    putchar('\n');
    bool header = false;
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (!key_in_arch(kv->key, s)) continue;
        if (!header) puts("hyper-parameters:");
        header = true;
        fputs("  ", stdout);
        print_text_str(kv->key, 80);
        printf("%*s", kv->key.len < 40 ? (int)(40 - kv->key.len) : 1, "");
        print_text_value(&kv->val);
        putchar('\n');
    }
    printf("metadata keys:   %" PRIu64 "\n", gguf_kv_count(f));
    printf("tensors:         %" PRIu64, gguf_tensor_count(f));
    const char *sep = " (";
    for (uint32_t t = 0; t < GGML_TYPE_LIMIT; t++) {
        if (!s->type_counts[t]) continue;
        printf("%s%s %" PRIu64, sep, ggml_type_get(t)->name, s->type_counts[t]);
        sep = ", ";
    }
    puts(gguf_tensor_count(f) ? ")" : "");
    printf("parameters:      %" PRIu64 " (%.2f M)\n", s->n_params, (double)s->n_params / 1e6);
    fputs("vocab:           ", stdout);
    if (s->has_vocab_type) print_text_str(s->vocab_type, 80);
    else fputs("(none)", stdout);
    if (s->has_vocab) printf(", %" PRIu64 " tokens", s->vocab_size);
    fputs("\npre-tokenizer:   ", stdout);
    if (s->has_pre) print_text_str(s->pre, 80);
    else fputs("(none)", stdout);
    printf("\nchat template:   %s\n", s->has_template ? "yes" : "no");
}

/* ---- json --------------------------------------------------------------------------- */

/* A JSON string from bytes that may not be valid UTF-8 (invalid bytes become U+FFFD). */
static json_t *json_from_str(gguf_str s) {
    if (utf8_valid(s.ptr, (size_t)s.len)) return json_stringn(s.ptr, (size_t)s.len);
    size_t cap;
    if (__builtin_mul_overflow((size_t)s.len, (size_t)3, &cap)) return NULL;
    char *buf = mem_alloc(cap);
    if (!buf) return NULL;
    size_t o = 0;
    for (uint64_t i = 0; i < s.len;) {
        uint32_t cp;
        size_t n = utf8_decode(s.ptr + i, (size_t)(s.len - i), &cp);
        if (n) {
            memcpy(buf + o, s.ptr + i, n);
            o += n;
            i += n;
        } else {
            memcpy(buf + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    json_t *j = json_stringn(buf, o);
    mem_free(buf);
    return j;
}

static json_t *json_from_value(const gguf_value *v) {
    switch (v->type) {
    case GGUF_V_UINT8: case GGUF_V_UINT16: case GGUF_V_UINT32: case GGUF_V_UINT64:
        return v->u <= (uint64_t)INT64_MAX ? json_integer((json_int_t)v->u) : json_real((double)v->u);
    case GGUF_V_INT8: case GGUF_V_INT16: case GGUF_V_INT32: case GGUF_V_INT64:
        return json_integer((json_int_t)v->i);
    case GGUF_V_FLOAT32: case GGUF_V_FLOAT64:
        return isfinite(v->f) ? json_real(v->f) : json_null();
    case GGUF_V_BOOL: return json_boolean(v->u != 0);
    case GGUF_V_STRING: return json_from_str(v->s);
    case GGUF_V_ARRAY:
        return json_pack("{s:s, s:I}", "type", gguf_vtype_name(v->a.type), "n", (json_int_t)v->a.n);
    }
    return NULL;
}

/* Sets obj[key] = val (taking val); false when val is NULL or setting fails. */
static bool set_new(json_t *obj, const char *key, json_t *val) {
    return val && json_object_set_new(obj, key, val) == 0;
}

static json_t *str_or_null(bool has, gguf_str s) { return has ? json_from_str(s) : json_null(); }

static json_t *build_json(const gguf_file *f, const info_summary *s) {
    json_t *root = json_object(), *types = json_object(), *meta = json_object();
    bool ok = root && types && meta;
    ok = ok && set_new(root, "file", json_string(gguf_path(f)));
    ok = ok && set_new(root, "file_size", json_integer((json_int_t)gguf_file_size(f)));
    ok = ok && set_new(root, "version", json_integer(gguf_version(f)));
    ok = ok && set_new(root, "alignment", json_integer(gguf_alignment(f)));
    ok = ok && set_new(root, "architecture", str_or_null(s->has_arch, s->arch));
    ok = ok && set_new(root, "name", str_or_null(s->has_name, s->name));
    ok = ok && set_new(root, "kv_count", json_integer((json_int_t)gguf_kv_count(f)));
    ok = ok && set_new(root, "tensor_count", json_integer((json_int_t)gguf_tensor_count(f)));
    for (uint32_t t = 0; ok && t < GGML_TYPE_LIMIT; t++)
        if (s->type_counts[t]) ok = set_new(types, ggml_type_get(t)->name, json_integer((json_int_t)s->type_counts[t]));
    ok = ok && json_object_set(root, "tensor_types", types) == 0;
    ok = ok && set_new(root, "n_params", s->n_params <= (uint64_t)INT64_MAX ? json_integer((json_int_t)s->n_params)
                                                                            : json_real((double)s->n_params));
    ok = ok && set_new(root, "vocab_type", str_or_null(s->has_vocab_type, s->vocab_type));
    ok = ok && set_new(root, "vocab_size", s->has_vocab ? json_integer((json_int_t)s->vocab_size) : json_null());
    ok = ok && set_new(root, "pre_tokenizer", str_or_null(s->has_pre, s->pre));
    ok = ok && set_new(root, "chat_template", json_boolean(s->has_template));
    for (uint64_t i = 0; ok && i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        json_t *key = json_from_str(kv->key), *val = json_from_value(&kv->val);
        ok = key && val && json_object_setn_new(meta, json_string_value(key), json_string_length(key), val) == 0;
        if (!ok && !key) json_decref(val);
        json_decref(key);
    }
    ok = ok && json_object_set(root, "metadata", meta) == 0;
    json_decref(types);
    json_decref(meta);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

int cli_info(int argc, char **argv) {
    const char *path = NULL;
    bool as_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            as_json = true;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "hearth info: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (path) {
            fprintf(stderr, "hearth info: one FILE only (got '%s' and '%s')\n", path, argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    gguf_file *f = NULL;
    hearth_err err = {0};
    if (gguf_open(path, &f, &err) != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return 1;
    }
    info_summary s;
    summarize(f, &s);
    int code = 0;
    if (as_json) {
        json_t *root = build_json(f, &s);
        char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text) {
            puts(text);
            free(text);
        } else {
            fprintf(stderr, "hearth: error: %s: out of memory building the JSON summary\n", path);
            code = 1;
        }
        json_decref(root);
    } else {
        print_text(f, &s);
    }
    gguf_close(f);
    if (fflush(stdout) != 0 && code == 0) {
        fprintf(stderr, "hearth: error: cannot write the output\n");
        code = 1;
    }
    return code;
}
