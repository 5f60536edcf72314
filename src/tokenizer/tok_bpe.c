/* Byte-level BPE encoding ("gpt2" vocabularies): the pre-tokenizer cuts the text into
 * words, each word's bytes are mapped to printable characters (the GPT-2 byte mapping),
 * and the adjacent pair with the lowest merge rank is merged until no pair has a rank.
 * A final piece that is no token contributes the tokens of its single bytes, if any (as
 * the reference does). Fails only on NOMEM. */
#include <string.h>

#include "base/mem.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_merge_queue.h"

/* Bytes of one code point once byte-mapped: up to 4 raw bytes, each a 2-byte character. */
#define MAPPED_MAX 8

static bool try_pair(const tok_vocab *v, const tok_sym *syms, int32_t left, int32_t right, tok_queue *q) {
    if (left < 0 || right < 0) return true;
    int32_t rank = tok_merge_rank(v, syms[left].text, syms[left].n, syms[right].text, syms[right].n);
    if (rank < 0) return true;
    tok_cand c = {.key = rank, .left = left, .right = right, .size = syms[left].n + syms[right].n};
    return tok_queue_push(q, c);
}

static bool emit_piece(const tok_vocab *v, const char *s, size_t n, tok_ids *out) {
    int32_t id = tok_find(v, s, n);
    if (id >= 0) return tok_ids_push(out, id);
    for (size_t i = 0; i < n; i++) {
        int32_t b = tok_find(v, s + i, 1);
        if (b >= 0 && !tok_ids_push(out, b)) return false;
    }
    return true;
}

/* Merges one byte-mapped word. syms has room for len symbols; q is empty and keeps its
 * storage for the next word. */
static bool bpe_word(const tok_vocab *v, const char *word, size_t len, tok_sym *syms, tok_queue *q, tok_ids *out) {
    if (len == 0) return true;
    if (v->ignore_merges) {
        int32_t id = tok_find(v, word, len);
        if (id >= 0) return tok_ids_push(out, id);
    }
    int32_t count = 0;
    for (size_t off = 0; off < len; count++) {
        size_t cl = tok_utf8_lead_len((unsigned char)word[off]);
        if (cl > len - off) cl = len - off;
        syms[count] = (tok_sym){.text = word + off, .n = cl, .prev = count - 1, .next = -1};
        if (count > 0) syms[count - 1].next = count;
        off += cl;
    }
    bool ok = true;
    for (int32_t i = 1; ok && i < count; i++) ok = try_pair(v, syms, i - 1, i, q);
    tok_cand c;
    while (ok && tok_queue_pop(q, &c)) {
        tok_sym *l = &syms[c.left], *r = &syms[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = c.left;
        ok = try_pair(v, syms, l->prev, c.left, q) && try_pair(v, syms, c.left, l->next, q);
    }
    for (int32_t i = 0; ok && i != -1; i = syms[i].next) ok = emit_piece(v, syms[i].text, syms[i].n, out);
    q->n = 0;
    return ok;
}

/* Appends the byte-mapped form of cps[a, b) to buf (which has room for MAPPED_MAX bytes per cp). */
static size_t map_word(const uint32_t *cps, size_t a, size_t b, char *buf) {
    size_t k = 0;
    for (size_t i = a; i < b; i++) {
        char raw[4];
        size_t n = tok_utf8_put(cps[i], raw);
        for (size_t j = 0; j < n; j++) k += tok_utf8_put(tok_byte_to_cp((uint8_t)raw[j]), buf + k);
    }
    return k;
}

bool tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out) {
    size_t n_cps = 0, n_words = 0, *bounds = NULL;
    uint32_t *cps = tok_utf8_to_cps(text, len, &n_cps);
    char *buf = NULL;
    tok_sym *syms = NULL; /* one word's symbols and merge queue, reused from word to word */
    tok_queue q = {0};
    bool ok = cps && tok_pretok_split(v->pretok, cps, n_cps, &bounds, &n_words);
    size_t longest = 0, a = 0;
    for (size_t w = 0; ok && w < n_words; a = bounds[w++])
        if (bounds[w] - a > longest) longest = bounds[w] - a;
    if (ok) ok = (buf = mem_alloc_array(longest ? longest : 1, MAPPED_MAX)) != NULL;
    if (ok) ok = (syms = mem_alloc_array(longest ? longest : 1, MAPPED_MAX * sizeof *syms)) != NULL;
    a = 0;
    for (size_t w = 0; ok && w < n_words; a = bounds[w++]) {
        size_t wl = map_word(cps, a, bounds[w], buf);
        ok = bpe_word(v, buf, wl, syms, &q, out);
    }
    tok_queue_free(&q);
    mem_free(syms);
    mem_free(buf);
    mem_free(bounds);
    mem_free(cps);
    return ok;
}
