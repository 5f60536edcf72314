/* tok_encode: special-token partition, then the per-kind encoder on each plain-text
 * fragment, with BOS/EOS as the vocabulary says. The partition follows the reference:
 * special tokens are tried longest text first, each one cutting every remaining text
 * fragment at its occurrences (left to right); control and unknown tokens take part only
 * when parse_special, user-defined tokens always. Never reads outside text[0, len). */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "tokenizer/tok_internal.h"

typedef struct frag {
    int32_t id;   /* -1 for text */
    size_t off;   /* text: [off, off + len) of the input */
    size_t len;
} frag;

typedef struct frag_list {
    frag *v;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, frag f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *nv = mem_realloc_array(l->v, cap, sizeof *nv);
        if (!nv) return false;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return true;
}

static bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Cuts text fragment f at every occurrence of token id (text t, n bytes) into out. */
static bool cut_fragment(const char *text, frag f, int32_t id, const char *t, size_t n, uint16_t attr, frag_list *out) {
    size_t pos = f.off, end = f.off + f.len;
    while (pos < end) {
        const char *hit = end - pos >= n ? memmem(text + pos, end - pos, t, n) : NULL;
        if (!hit) break;
        size_t at = (size_t)(hit - text), left = at - pos;
        if (attr & TOK_ATTR_LSTRIP)
            while (left > 0 && is_ascii_space(text[pos + left - 1])) left--;
        if (left > 0 && !frag_push(out, (frag){-1, pos, left})) return false;
        if (!frag_push(out, (frag){id, 0, 0})) return false;
        pos = at + n;
        if (attr & TOK_ATTR_RSTRIP)
            while (pos < end && is_ascii_space(text[pos])) pos++;
    }
    return pos >= end || frag_push(out, (frag){-1, pos, end - pos});
}

/* The bytes and the pairs of adjacent bytes a text holds: a special token whose first
 * byte or first two bytes are not among them cannot occur in it. */
typedef struct text_bytes {
    uint64_t one[256 / 64];
    uint64_t two[65536 / 64];
} text_bytes;

static void note_bytes(const char *text, size_t len, text_bytes *tb) {
    memset(tb, 0, sizeof *tb);
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)text[i];
        tb->one[b >> 6] |= 1ull << (b & 63);
        if (i + 1 < len) {
            unsigned pair = b << 8 | (unsigned char)text[i + 1];
            tb->two[pair >> 6] |= 1ull << (pair & 63);
        }
    }
}

static bool may_occur(const text_bytes *tb, const char *t, size_t n) {
    unsigned b = (unsigned char)t[0];
    if (!(tb->one[b >> 6] >> (b & 63) & 1)) return false;
    if (n < 2) return true;
    unsigned pair = b << 8 | (unsigned char)t[1];
    return tb->two[pair >> 6] >> (pair & 63) & 1;
}

/* True when token text t occurs in one of the text fragments. */
static bool occurs(const char *text, const frag_list *frags, const char *t, size_t n) {
    for (size_t i = 0; i < frags->n; i++) {
        const frag *f = &frags->v[i];
        if (f->id < 0 && f->len >= n && memmem(text + f->off, f->len, t, n)) return true;
    }
    return false;
}

static bool partition(const tok_vocab *v, const char *text, size_t len, bool parse_special, frag_list *frags) {
    if (len == 0) return true;
    if (!frag_push(frags, (frag){-1, 0, len})) return false;
    text_bytes tb;
    note_bytes(text, len, &tb);
    frag_list next = {0};
    bool ok = true;
    for (int32_t s = 0, run_end = 0; ok && s < v->n_special; s++) {
        int32_t id = v->special[s];
        const tok_token *tk = &v->tokens[id];
        const char *t = v->text + tk->off;
        /* deepseek-llm has 2,400 special tokens, 2,385 of them "[PAD...]": a run whose start
         * is not in the text is skipped at once, and fragments are only rebuilt for a
         * token that occurs. */
        if (s >= run_end) {
            run_end = v->special_run_end[s];
            if (!may_occur(&tb, t, tk->len)) {
                s = run_end - 1;
                continue;
            }
        }
        if (!parse_special && (tk->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        if (tk->len > len || !occurs(text, frags, t, tk->len)) continue;
        next.n = 0;
        for (size_t i = 0; ok && i < frags->n; i++) {
            frag f = frags->v[i];
            ok = f.id >= 0 ? frag_push(&next, f) : cut_fragment(text, f, id, t, tk->len, tk->attr, &next);
        }
        frag_list swap = *frags;
        *frags = next;
        next = swap;
    }
    mem_free(next.v);
    return ok;
}

static bool encode_fragments(const tok_vocab *v, const char *text, const frag_list *frags, bool add_special,
                             tok_ids *out) {
    bool add_front = add_special && (v->add_bos || v->kind == TOK_KIND_WPM) && v->bos >= 0;
    if (add_front && !tok_ids_push(out, v->bos)) return false;
    bool prev_special = true; /* SPM: the space prefix goes before the first text and after each special token */
    for (size_t i = 0; i < frags->n; i++) {
        const frag *f = &frags->v[i];
        bool ok;
        if (f->id >= 0) {
            ok = tok_ids_push(out, f->id);
            prev_special = true;
        } else if (v->kind == TOK_KIND_SPM) {
            ok = tok_spm_encode(v, text + f->off, f->len, v->add_space_prefix && prev_special, out);
            prev_special = false;
        } else if (v->kind == TOK_KIND_BPE) {
            ok = tok_bpe_encode(v, text + f->off, f->len, out);
        } else {
            ok = tok_wpm_encode(v, text + f->off, f->len, out);
        }
        if (!ok) return false;
    }
    if (add_special) {
        int32_t last = v->kind == TOK_KIND_WPM ? v->sep : (v->add_eos ? v->eos : -1);
        if (last >= 0 && !tok_ids_push(out, last)) return false;
    }
    return true;
}

hearth_status tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                         int32_t **ids, size_t *n_ids, hearth_err *err) {
    if (!v || !ids || !n_ids || (!text && len > 0))
        return err_set(err, HEARTH_ERR_INVALID, "tok_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    frag_list frags = {0};
    tok_ids out = {0};
    bool ok = partition(v, text, len, parse_special, &frags) && encode_fragments(v, text, &frags, add_special, &out);
    mem_free(frags.v);
    if (!ok) {
        mem_free(out.v);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    }
    *ids = out.v;
    *n_ids = out.n;
    return HEARTH_OK;
}
