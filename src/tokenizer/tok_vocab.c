/* Building a vocabulary from its metadata (tok_spec) and the read-only accessors. tok_build
 * copies every string it keeps, validates every count, type and id, and either returns a
 * complete vocabulary or frees everything it made; it never keeps a pointer into spec. */
#include <stdio.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "tokenizer/tok_internal.h"

void tok_spec_init(tok_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->bos = spec->eos = spec->eot = spec->eom = spec->unk = -1;
    spec->sep = spec->pad = spec->mask = spec->cls = -1;
    spec->fim_pre = spec->fim_suf = spec->fim_mid = -1;
    spec->fim_pad = spec->fim_rep = spec->fim_sep = -1;
    spec->add_bos = spec->add_eos = spec->add_sep = spec->add_space_prefix = -1;
}

static bool str_is(const char *s, size_t n, const char *c) {
    return s && strlen(c) == n && memcmp(s, c, n) == 0;
}

static hearth_status set_kind(tok_vocab *v, const tok_spec *spec, hearth_err *err) {
    if (!spec->model) return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.model is missing");
    if (str_is(spec->model, spec->model_len, "llama")) {
        v->kind = TOK_KIND_SPM;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else if (str_is(spec->model, spec->model_len, "gpt2")) {
        v->kind = TOK_KIND_BPE;
    } else if (str_is(spec->model, spec->model_len, "bert")) {
        v->kind = TOK_KIND_WPM;
        v->add_bos = true;
        v->add_sep = true;
    } else {
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "tokenizer.ggml.model '%.*s' is not supported (llama, gpt2, bert are)",
                       (int)(spec->model_len > 64 ? 64 : spec->model_len), spec->model);
    }
    v->pre_name = "";
    if (v->kind != TOK_KIND_BPE) return HEARTH_OK;
    const tok_pre_info *pre = spec->pre ? tok_pre_lookup(spec->pre, spec->pre_len) : tok_pre_lookup("default", 7);
    if (!pre)
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "tokenizer.ggml.pre '%.*s' is not a supported pre-tokenizer",
                       (int)(spec->pre_len > 64 ? 64 : spec->pre_len), spec->pre);
    v->pre_name = pre->name;
    v->ignore_merges = pre->ignore_merges;
    v->add_bos = pre->add_bos;
    hearth_status st = tok_pretok_new(pre->regex_set, &v->pretok, err);
    if (st != HEARTH_OK) return st;
    v->pre_no_bos = pre->no_bos;
    return HEARTH_OK;
}

static hearth_status copy_tokens(tok_vocab *v, const tok_spec *spec, hearth_err *err) {
    if (spec->n_tokens == 0) return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens is empty");
    if (spec->n_tokens > (uint32_t)INT32_MAX)
        return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens has too many entries (%u)", spec->n_tokens);
    v->n = (int32_t)spec->n_tokens;
    v->tokens = mem_calloc(spec->n_tokens, sizeof *v->tokens);
    if (!v->tokens) return HEARTH_ERR_NOMEM;

    /* An empty text becomes "[EMPTY_<id>]" (at most 19 bytes), as in the reference. */
    char empty[32];
    uint64_t total = 0;
    for (uint32_t i = 0; i < spec->n_tokens; i++) {
        uint64_t len = spec->tok_len[i] ? spec->tok_len[i] : (uint64_t)snprintf(empty, sizeof empty, "[EMPTY_%u]", i);
        if (!ck_add(total, len, &total) || total > UINT32_MAX)
            return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens: texts exceed 4 GiB");
    }
    v->text = mem_alloc(total ? total : 1);
    if (!v->text) return HEARTH_ERR_NOMEM;

    uint32_t off = 0;
    for (uint32_t i = 0; i < spec->n_tokens; i++) {
        tok_token *tk = &v->tokens[i];
        const char *src = spec->tok_text[i];
        uint32_t len = spec->tok_len[i];
        if (len == 0) {
            len = (uint32_t)snprintf(empty, sizeof empty, "[EMPTY_%u]", i);
            src = empty;
        }
        memcpy(v->text + off, src, len);
        tk->off = off;
        tk->len = len;
        off += len;
        if (len > v->max_token_len) v->max_token_len = len;
        tk->score = spec->scores ? spec->scores[i] : 0.0f;

        static const uint16_t attr_of_type[7] = {
            0, TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN, TOK_ATTR_CONTROL, TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE,
        };
        int32_t type = spec->types ? spec->types[i] : TOK_TYPE_NORMAL;
        if (type < 0 || type > TOK_TYPE_BYTE)
            return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.token_type[%u] = %d is not a token type (0-6)", i, type);
        tk->attr = attr_of_type[type];
        if (type == TOK_TYPE_BYTE && v->kind == TOK_KIND_SPM) {
            const char *t = v->text + tk->off;
            unsigned byte;
            char tail;
            if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>' ||
                sscanf(t + 3, "%2x%c", &byte, &tail) != 2 || tail != '>')
                return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens[%u]: byte token '%.*s' is not of the form <0xXX>",
                               i, (int)(len > 32 ? 32 : len), t);
        }
    }
    return tok_index_texts(v) == HEARTH_OK ? HEARTH_OK : HEARTH_ERR_NOMEM;
}

static hearth_status copy_merges(tok_vocab *v, const tok_spec *spec, hearth_err *err) {
    if (v->kind != TOK_KIND_BPE) return HEARTH_OK;
    if (!spec->merge_text) return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.merges is missing (required by gpt2 tokenizers)");
    v->n_merges = spec->n_merges;
    v->merges = mem_calloc(spec->n_merges ? spec->n_merges : 1, sizeof *v->merges);
    if (!v->merges) return HEARTH_ERR_NOMEM;
    uint64_t total = 0;
    for (uint32_t i = 0; i < spec->n_merges; i++)
        if (!ck_add(total, (uint64_t)spec->merge_len[i], &total) || total > UINT32_MAX)
            return err_set(err, HEARTH_ERR_FORMAT, "tokenizer.ggml.merges: texts exceed 4 GiB");
    v->merge_text = mem_alloc(total ? total : 1);
    if (!v->merge_text) return HEARTH_ERR_NOMEM;
    uint32_t off = 0;
    for (uint32_t i = 0; i < spec->n_merges; i++) {
        const char *s = spec->merge_text[i];
        uint32_t len = spec->merge_len[i];
        memcpy(v->merge_text + off, s, len);
        tok_merge *m = &v->merges[i];
        m->off = off;
        /* Split at the first space after the first byte; a merge without one never applies. */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (sp) {
            m->first_len = (uint32_t)(sp - s);
            m->second_len = len - m->first_len - 1;
        }
        off += len;
    }
    return tok_index_merges(v) == HEARTH_OK ? HEARTH_OK : HEARTH_ERR_NOMEM;
}

static void set_byte_tokens(tok_vocab *v) {
    for (int b = 0; b < 256; b++) {
        v->byte_token[b] = -1;
        if (v->kind != TOK_KIND_SPM) continue;
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = tok_find(v, hex, 6);
        if (id < 0) {
            char one = (char)b;
            id = tok_find(v, &one, 1);
        }
        v->byte_token[b] = id;
    }
}

hearth_status tok_build(const tok_spec *spec, tok_vocab **out, hearth_err *err) {
    *out = NULL;
    tok_vocab *v = mem_calloc(1, sizeof *v);
    if (!v) return err_set(err, HEARTH_ERR_NOMEM, "out of memory loading the vocabulary");
    hearth_status st = set_kind(v, spec, err);
    if (st == HEARTH_OK) st = copy_tokens(v, spec, err);
    if (st == HEARTH_OK) st = copy_merges(v, spec, err);
    if (st == HEARTH_OK) st = tok_setup_specials(v, spec, err);
    if (st != HEARTH_OK) {
        if (st == HEARTH_ERR_NOMEM) err_set(err, st, "out of memory loading the vocabulary");
        tok_free(v);
        return st;
    }
    set_byte_tokens(v);
    *out = v;
    return HEARTH_OK;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    mem_free(v->tokens);
    mem_free(v->text);
    tok_table_free(&v->by_text);
    mem_free(v->merges);
    mem_free(v->merge_text);
    tok_table_free(&v->by_pair);
    mem_free(v->eog);
    mem_free(v->special);
    mem_free(v->special_run_end);
    tok_pretok_free(v->pretok);
    mem_free(v);
}

tok_kind tok_get_kind(const tok_vocab *v) { return v->kind; }

const char *tok_kind_name(const tok_vocab *v) {
    return v->kind == TOK_KIND_SPM ? "SPM" : v->kind == TOK_KIND_BPE ? "BPE" : "WPM";
}

const char *tok_pre_name(const tok_vocab *v) { return v->pre_name; }
int32_t tok_n_vocab(const tok_vocab *v) { return v->n; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_eot(const tok_vocab *v) { return v->eot; }
bool tok_adds_bos(const tok_vocab *v) { return (v->add_bos || v->kind == TOK_KIND_WPM) && v->bos >= 0; }

bool tok_adds_eos(const tok_vocab *v) {
    if (v->kind == TOK_KIND_WPM) return v->sep >= 0;
    return v->add_eos && v->eos >= 0;
}

bool tok_is_eog(const tok_vocab *v, int32_t id) { return id >= 0 && id < v->n && v->eog[id]; }

bool tok_is_control(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n && (v->tokens[id].attr & TOK_ATTR_CONTROL);
}

int32_t tok_control_id(const tok_vocab *v, const char *text, size_t len) {
    int32_t id = tok_find(v, text, len);
    if (id < 0 || tok_is_control(v, id)) return id;
    /* the index keeps the last of tokens sharing a text: look for a control one among the others */
    for (int32_t i = 0; i < v->n; i++)
        if (i != id && tok_is_control(v, i) && v->tokens[i].len == len && !memcmp(v->text + v->tokens[i].off, text, len))
            return i;
    return -1;
}

const char *tok_text(const tok_vocab *v, int32_t id, size_t *len) {
    if (id < 0 || id >= v->n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = v->tokens[id].len;
    return v->text + v->tokens[id].off;
}

bool tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *nv = mem_realloc_array(a->v, cap, sizeof *nv);
        if (!nv) return false;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return true;
}
