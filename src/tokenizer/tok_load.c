/* tok_load: reads the tokenizer.ggml.* metadata of an open GGUF file into a tok_spec and
 * builds the vocabulary from it. Every key is type-checked and every array length compared
 * with the token count here; a wrong one is a FORMAT error naming the key. The spec only
 * borrows the file's strings for the duration of the call. */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "tokenizer/tok_internal.h"

typedef struct load_ctx {
    const gguf_file *f;
    hearth_err *err;
    hearth_status st;
} load_ctx;

static bool fail(load_ctx *c, hearth_status st, const char *key, const char *what) {
    if (c->st == HEARTH_OK) c->st = err_set(c->err, st, "%s %s", key, what);
    return false;
}

/* Optional string; returns false (with an error) when present with another type. */
static bool get_str(load_ctx *c, const char *key, const char **s, size_t *len) {
    const gguf_value *v = gguf_find(c->f, key);
    if (!v) return true;
    if (v->type != GGUF_V_STRING) return fail(c, HEARTH_ERR_FORMAT, key, "is not a string");
    *s = v->s.ptr;
    *len = (size_t)v->s.len;
    return true;
}

static bool get_id(load_ctx *c, const char *key, int64_t *out) {
    const gguf_value *v = gguf_find(c->f, key);
    if (!v) return true;
    int64_t id;
    if (!gguf_get_int(c->f, key, &id) || v->type == GGUF_V_BOOL) return fail(c, HEARTH_ERR_FORMAT, key, "is not an integer");
    if (id < 0 || id > INT32_MAX) {
        c->st = err_set(c->err, HEARTH_ERR_FORMAT, "%s = %lld is out of range", key, (long long)id);
        return false;
    }
    *out = id;
    return true;
}

static bool get_flag(load_ctx *c, const char *key, int *out) {
    const gguf_value *v = gguf_find(c->f, key);
    if (!v) return true;
    bool b;
    if (!gguf_get_bool(c->f, key, &b)) return fail(c, HEARTH_ERR_FORMAT, key, "is not a bool");
    *out = b;
    return true;
}

/* An optional array of n_expected elements of the given kind; *arr NULL when absent. */
static bool get_arr(load_ctx *c, const char *key, bool strings, uint64_t n_expected, bool check_n, const gguf_arr **arr) {
    *arr = NULL;
    const gguf_value *v = gguf_find(c->f, key);
    if (!v) return true;
    if (v->type != GGUF_V_ARRAY) return fail(c, HEARTH_ERR_FORMAT, key, "is not an array");
    const gguf_arr *a = &v->a;
    bool numeric = a->type != GGUF_V_STRING && a->type != GGUF_V_ARRAY && a->type != GGUF_V_BOOL;
    if (strings ? a->type != GGUF_V_STRING : !numeric)
        return fail(c, HEARTH_ERR_FORMAT, key, strings ? "is not an array of strings" : "is not an array of numbers");
    if (check_n && a->n != n_expected) {
        c->st = err_set(c->err, HEARTH_ERR_FORMAT, "%s has %llu entries but tokenizer.ggml.tokens has %llu", key,
                        (unsigned long long)a->n, (unsigned long long)n_expected);
        return false;
    }
    if (a->n > UINT32_MAX) return fail(c, HEARTH_ERR_FORMAT, key, "has too many entries");
    *arr = a;
    return true;
}

/* Borrowed string pointers and lengths of a string array. */
static bool str_views(load_ctx *c, const char *key, const gguf_arr *a, const char ***texts, uint32_t **lens) {
    size_t n = (size_t)a->n;
    *texts = mem_alloc_array(n ? n : 1, sizeof **texts);
    *lens = mem_alloc_array(n ? n : 1, sizeof **lens);
    if (!*texts || !*lens) return fail(c, HEARTH_ERR_NOMEM, key, "does not fit in memory");
    for (size_t i = 0; i < n; i++) {
        if (a->strs[i].len > UINT32_MAX) return fail(c, HEARTH_ERR_FORMAT, key, "has an entry longer than 4 GiB");
        (*texts)[i] = a->strs[i].ptr;
        (*lens)[i] = (uint32_t)a->strs[i].len;
    }
    return true;
}

static bool read_numbers(load_ctx *c, const char *key, const gguf_arr *a, float **scores, int32_t **types) {
    size_t n = (size_t)a->n;
    if (scores && !(*scores = mem_alloc_array(n ? n : 1, sizeof **scores)))
        return fail(c, HEARTH_ERR_NOMEM, key, "does not fit in memory");
    if (types && !(*types = mem_alloc_array(n ? n : 1, sizeof **types)))
        return fail(c, HEARTH_ERR_NOMEM, key, "does not fit in memory");
    for (size_t i = 0; i < n; i++) {
        double d;
        int64_t k;
        if (scores && gguf_arr_float(a, i, &d)) {
            (*scores)[i] = (float)d;
        } else if (types && gguf_arr_int(a, i, &k) && k >= INT32_MIN && k <= INT32_MAX) {
            (*types)[i] = (int32_t)k;
        } else {
            c->st = err_set(c->err, HEARTH_ERR_FORMAT, "%s[%zu] is not a valid %s", key, i, scores ? "number" : "integer");
            return false;
        }
    }
    return true;
}

hearth_status tok_load(const gguf_file *f, tok_vocab **out, hearth_err *err) {
    if (!f || !out) return err_set(err, HEARTH_ERR_INVALID, "tok_load: NULL argument");
    *out = NULL;
    load_ctx c = {f, err, HEARTH_OK};
    tok_spec spec;
    tok_spec_init(&spec);
    const gguf_arr *tokens = NULL, *scores = NULL, *types = NULL, *merges = NULL;
    const char **tok_text = NULL, **merge_text = NULL;
    uint32_t *tok_len = NULL, *merge_len = NULL;
    float *score_v = NULL;
    int32_t *type_v = NULL;

    bool ok = get_str(&c, "tokenizer.ggml.model", &spec.model, &spec.model_len) &&
              get_str(&c, "tokenizer.ggml.pre", &spec.pre, &spec.pre_len) &&
              get_str(&c, "general.name", &spec.name, &spec.name_len) &&
              get_str(&c, "general.architecture", &spec.arch, &spec.arch_len) &&
              get_arr(&c, "tokenizer.ggml.tokens", true, 0, false, &tokens);
    if (ok && !spec.model) ok = fail(&c, HEARTH_ERR_FORMAT, "tokenizer.ggml.model", "is missing (the file has no vocabulary)");
    if (ok && !tokens) ok = fail(&c, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens", "is missing");
    if (ok) {
        spec.n_tokens = (uint32_t)tokens->n;
        ok = str_views(&c, "tokenizer.ggml.tokens", tokens, &tok_text, &tok_len) &&
             get_arr(&c, "tokenizer.ggml.scores", false, tokens->n, true, &scores) &&
             get_arr(&c, "tokenizer.ggml.token_type", false, tokens->n, true, &types) &&
             get_arr(&c, "tokenizer.ggml.merges", true, 0, false, &merges);
    }
    if (ok && scores) ok = read_numbers(&c, "tokenizer.ggml.scores", scores, &score_v, NULL);
    if (ok && types) ok = read_numbers(&c, "tokenizer.ggml.token_type", types, NULL, &type_v);
    if (ok && merges) {
        ok = str_views(&c, "tokenizer.ggml.merges", merges, &merge_text, &merge_len);
        spec.n_merges = (uint32_t)merges->n;
    }
    ok = ok && get_id(&c, "tokenizer.ggml.bos_token_id", &spec.bos) && get_id(&c, "tokenizer.ggml.eos_token_id", &spec.eos) &&
         get_id(&c, "tokenizer.ggml.eot_token_id", &spec.eot) && get_id(&c, "tokenizer.ggml.eom_token_id", &spec.eom) &&
         get_id(&c, "tokenizer.ggml.unknown_token_id", &spec.unk) &&
         get_id(&c, "tokenizer.ggml.seperator_token_id", &spec.sep) &&
         get_id(&c, "tokenizer.ggml.padding_token_id", &spec.pad) && get_id(&c, "tokenizer.ggml.mask_token_id", &spec.mask) &&
         get_id(&c, "tokenizer.ggml.cls_token_id", &spec.cls) &&
         get_id(&c, "tokenizer.ggml.fim_pre_token_id", &spec.fim_pre) &&
         get_id(&c, "tokenizer.ggml.fim_suf_token_id", &spec.fim_suf) &&
         get_id(&c, "tokenizer.ggml.fim_mid_token_id", &spec.fim_mid) &&
         get_id(&c, "tokenizer.ggml.fim_pad_token_id", &spec.fim_pad) &&
         get_id(&c, "tokenizer.ggml.fim_rep_token_id", &spec.fim_rep) &&
         get_id(&c, "tokenizer.ggml.fim_sep_token_id", &spec.fim_sep);
    /* The older names of the fill-in-the-middle ids, used when the new ones are absent. */
    if (ok && spec.fim_pre < 0) ok = get_id(&c, "tokenizer.ggml.prefix_token_id", &spec.fim_pre);
    if (ok && spec.fim_suf < 0) ok = get_id(&c, "tokenizer.ggml.suffix_token_id", &spec.fim_suf);
    if (ok && spec.fim_mid < 0) ok = get_id(&c, "tokenizer.ggml.middle_token_id", &spec.fim_mid);
    ok = ok && get_flag(&c, "tokenizer.ggml.add_bos_token", &spec.add_bos) &&
         get_flag(&c, "tokenizer.ggml.add_eos_token", &spec.add_eos) &&
         get_flag(&c, "tokenizer.ggml.add_sep_token", &spec.add_sep) &&
         get_flag(&c, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix);
    if (ok) {
        spec.tok_text = tok_text;
        spec.tok_len = tok_len;
        spec.scores = score_v;
        spec.types = type_v;
        spec.merge_text = merge_text;
        spec.merge_len = merge_len;
        c.st = tok_build(&spec, out, err);
    }
    mem_free(tok_text);
    mem_free(tok_len);
    mem_free(merge_text);
    mem_free(merge_len);
    mem_free(score_v);
    mem_free(type_v);
    return c.st;
}
