/* Special tokens of a vocabulary: the per-model default ids, the ids from metadata (each
 * validated against the vocabulary size), the end-of-turn / fill-in-the-middle tokens the
 * reference recognises by their text, the end-of-generation set, a few per-model strip
 * attributes, and the list of tokens matched whole before tokenizing. The text lists
 * below are the reference's published conventions; keep them in step with it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/mem.h"
#include "tokenizer/tok_internal.h"

static bool text_in(const tok_vocab *v, int32_t id, const char *const *list) {
    const tok_token *tk = &v->tokens[id];
    for (; *list; list++)
        if (strlen(*list) == tk->len && memcmp(*list, v->text + tk->off, tk->len) == 0) return true;
    return false;
}

static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "<end_of_utterance>", NULL,
};
static const char *const EOM_TEXTS[] = {"<|eom_id|>", NULL};
static const char *const FIM_PRE_TEXTS[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
    "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL,
};
static const char *const FIM_SUF_TEXTS[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>",
    "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL,
};
static const char *const FIM_MID_TEXTS[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
    "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL,
};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>", NULL};
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", NULL,
};
static const char *const ALWAYS_RENDERED_TEXTS[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

typedef struct id_key {
    const char *key;
    int64_t value;   /* from metadata, -1 when absent */
    int32_t *slot;
} id_key;

static hearth_status read_ids(tok_vocab *v, const tok_spec *spec, hearth_err *err) {
    int64_t bos = spec->bos;
    if (bos < 0 && v->kind == TOK_KIND_WPM) bos = spec->cls;
    const id_key keys[] = {
        {"tokenizer.ggml.bos_token_id", bos, &v->bos},
        {"tokenizer.ggml.eos_token_id", spec->eos, &v->eos},
        {"tokenizer.ggml.eot_token_id", spec->eot, &v->eot},
        {"tokenizer.ggml.eom_token_id", spec->eom, &v->eom},
        {"tokenizer.ggml.unknown_token_id", spec->unk, &v->unk},
        {"tokenizer.ggml.seperator_token_id", spec->sep, &v->sep},
        {"tokenizer.ggml.padding_token_id", spec->pad, &v->pad},
        {"tokenizer.ggml.mask_token_id", spec->mask, &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", spec->fim_pre, &v->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", spec->fim_suf, &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", spec->fim_mid, &v->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", spec->fim_pad, &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", spec->fim_rep, &v->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", spec->fim_sep, &v->fim_sep},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t id = keys[i].value;
        if (id == -1) continue;
        if (id < 0 || id >= v->n)
            return err_set(err, HEARTH_ERR_FORMAT, "%s = %lld is out of range (the vocabulary has %d tokens)", keys[i].key,
                           (long long)id, v->n);
        *keys[i].slot = (int32_t)id;
    }
    return HEARTH_OK;
}

static void set_defaults(tok_vocab *v) {
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (v->kind == TOK_KIND_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
    } else if (v->kind == TOK_KIND_WPM) {
        v->bos = 101, v->unk = 100, v->sep = 102, v->pad = 0, v->mask = 103;
    } else {
        v->bos = 11, v->eos = 11;
    }
    if (v->pre_no_bos) v->bos = -1;
    int32_t *defaults[] = {&v->bos, &v->eos, &v->unk, &v->sep, &v->pad, &v->mask};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (*defaults[i] >= v->n) *defaults[i] = -1;
}

/* Tokens recognised by text when metadata did not name them; they become control tokens. */
static void detect_by_text(tok_vocab *v) {
    struct { int32_t *slot; const char *const *texts; } finds[] = {
        {&v->eot, EOT_TEXTS}, {&v->eom, EOM_TEXTS}, {&v->fim_pre, FIM_PRE_TEXTS}, {&v->fim_suf, FIM_SUF_TEXTS},
        {&v->fim_mid, FIM_MID_TEXTS}, {&v->fim_pad, FIM_PAD_TEXTS}, {&v->fim_rep, FIM_REP_TEXTS},
        {&v->fim_sep, FIM_SEP_TEXTS},
    };
    for (int32_t id = 0; id < v->n; id++)
        for (size_t k = 0; k < sizeof finds / sizeof finds[0]; k++)
            if (*finds[k].slot < 0 && text_in(v, id, finds[k].texts)) {
                *finds[k].slot = id;
                v->tokens[id].attr |= TOK_ATTR_CONTROL;
            }
}

static int32_t eog_with_text(const tok_vocab *v, const char *text) {
    for (int32_t id = 0; id < v->n; id++) {
        const tok_token *tk = &v->tokens[id];
        if (v->eog[id] && strlen(text) == tk->len && memcmp(text, v->text + tk->off, tk->len) == 0) return id;
    }
    return -1;
}

static hearth_status mark_eog(tok_vocab *v) {
    v->eog = mem_calloc((size_t)v->n, 1);
    if (!v->eog) return HEARTH_ERR_NOMEM;
    const int32_t ids[] = {v->fim_pad, v->fim_rep, v->fim_sep, v->eos, v->eot, v->eom};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i] >= 0) v->eog[ids[i]] = 1;
    for (int32_t id = 0; id < v->n; id++) {
        if (text_in(v, id, EOG_TEXTS)) {
            v->eog[id] = 1;
            v->tokens[id].attr |= TOK_ATTR_CONTROL;
        }
        if (text_in(v, id, ALWAYS_RENDERED_TEXTS)) v->tokens[id].attr = TOK_ATTR_USER_DEFINED;
    }
    /* Harmony-style vocabularies end a turn with <|return|>/<|call|>, so <|end|> is text. */
    int32_t end = eog_with_text(v, "<|end|>");
    if (end >= 0 && ((eog_with_text(v, "<|return|>") >= 0 && eog_with_text(v, "<|call|>") >= 0) ||
                     (eog_with_text(v, "<|calls|>") >= 0 && eog_with_text(v, "<|flush|>") >= 0))) {
        v->eog[end] = 0;
        v->tokens[end].attr = TOK_ATTR_USER_DEFINED;
    }
    int32_t s_end = eog_with_text(v, "</s>");
    if (s_end >= 0 && eog_with_text(v, "<|tool_response>") >= 0) {
        v->eog[s_end] = 0;
        v->tokens[s_end].attr = TOK_ATTR_NORMAL;
    }
    return HEARTH_OK;
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool contains(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; s && i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0) return true;
    return false;
}

static void set_attr_by_text(tok_vocab *v, const char *text, uint16_t attr, bool on) {
    int32_t id = tok_find(v, text, strlen(text));
    if (id < 0) return;
    if (on) v->tokens[id].attr |= attr;
    else v->tokens[id].attr &= (uint16_t)~attr;
}

/* Strip attributes the reference sets by model name (they are not stored in GGUF). */
static void set_strip_attrs(tok_vocab *v, const tok_spec *spec) {
    if (contains(spec->pre, spec->pre_len, "jina-v2-de") || contains(spec->pre, spec->pre_len, "jina-v2-es") ||
        contains(spec->pre, spec->pre_len, "jina-v2-code") || contains(spec->arch, spec->arch_len, "nomic-bert-moe") ||
        contains(spec->arch, spec->arch_len, "jina-bert-v3")) {
        set_attr_by_text(v, "<mask>", TOK_ATTR_LSTRIP, true);
    } else if (contains(spec->name, spec->name_len, "phi-3") || contains(spec->name, spec->name_len, "phi3")) {
        for (int32_t i = 0; i < v->n_special; i++) v->tokens[v->special[i]].attr |= TOK_ATTR_RSTRIP;
        set_attr_by_text(v, "</s>", TOK_ATTR_RSTRIP, true);
        set_attr_by_text(v, "<unk>", TOK_ATTR_RSTRIP, false);
        set_attr_by_text(v, "<s>", TOK_ATTR_RSTRIP, false);
        set_attr_by_text(v, "<|endoftext|>", TOK_ATTR_RSTRIP, false);
    } else if (contains(spec->name, spec->name_len, "modern-bert")) {
        set_attr_by_text(v, "[MASK]", TOK_ATTR_LSTRIP, true);
    }
}

/* Texts start with the same byte and either the same second byte or none. */
static bool same_start(const tok_vocab *v, int32_t a, int32_t b) {
    const tok_token *ta = &v->tokens[a], *tb = &v->tokens[b];
    const char *sa = v->text + ta->off, *sb = v->text + tb->off;
    if (sa[0] != sb[0] || (ta->len < 2) != (tb->len < 2)) return false;
    return ta->len < 2 || sa[1] == sb[1];
}

/* Longest text first, then lowest id: sorted as (UINT32_MAX - len) << 32 | id. */
static hearth_status list_specials(tok_vocab *v) {
    const uint16_t matched = TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN;
    int32_t n = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->tokens[id].attr & matched) n++;
    uint64_t *keys = mem_alloc_array(n ? (size_t)n : 1, sizeof *keys);
    v->special = mem_alloc_array(n ? (size_t)n : 1, sizeof *v->special);
    v->special_run_end = mem_alloc_array(n ? (size_t)n : 1, sizeof *v->special_run_end);
    if (!keys || !v->special || !v->special_run_end) {
        mem_free(keys);
        return HEARTH_ERR_NOMEM;
    }
    int32_t k = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->tokens[id].attr & matched) keys[k++] = ((uint64_t)(UINT32_MAX - v->tokens[id].len) << 32) | (uint32_t)id;
    qsort(keys, (size_t)n, sizeof *keys, u64_cmp);
    for (int32_t i = 0; i < n; i++) v->special[i] = (int32_t)(keys[i] & 0xFFFFFFFFu);
    for (int32_t i = n - 1; i >= 0; i--)
        v->special_run_end[i] = i + 1 < n && same_start(v, v->special[i], v->special[i + 1]) ? v->special_run_end[i + 1] : i + 1;
    v->n_special = n;
    mem_free(keys);
    return HEARTH_OK;
}

hearth_status tok_setup_specials(tok_vocab *v, const tok_spec *spec, hearth_err *err) {
    set_defaults(v);
    hearth_status st = read_ids(v, spec, err);
    if (st != HEARTH_OK) return st;
    if (spec->add_bos >= 0) v->add_bos = spec->add_bos;
    if (spec->add_eos >= 0) v->add_eos = spec->add_eos;
    if (spec->add_sep >= 0) v->add_sep = spec->add_sep;
    if (spec->add_space_prefix >= 0) v->add_space_prefix = spec->add_space_prefix;
    detect_by_text(v);
    if ((st = mark_eog(v)) != HEARTH_OK) return st;
    if ((st = list_specials(v)) != HEARTH_OK) return st;
    set_strip_attrs(v, spec);
    return HEARTH_OK;
}
