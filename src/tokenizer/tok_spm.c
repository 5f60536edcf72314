/* SentencePiece-style encoding ("llama" vocabularies): spaces become U+2581, the text is
 * cut into UTF-8 characters, and the adjacent pair whose concatenation is the
 * highest-scoring token is merged until no pair is a token. A character that is no token
 * falls back to its <0xXX> byte tokens. Never reads past len; fails only on NOMEM. */
#include <string.h>

#include "base/mem.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_merge_queue.h"

static const char SPACE_MARK[] = "\xe2\x96\x81"; /* U+2581 */

/* Copies text with every ' ' replaced by U+2581, optionally after one leading mark. */
static char *escape_spaces(const char *text, size_t len, bool prefix_space, size_t *out_len) {
    size_t spaces = prefix_space ? 1 : 0;
    for (size_t i = 0; i < len; i++) spaces += text[i] == ' ';
    if (spaces > (SIZE_MAX - len - 1) / 2) return NULL;
    char *s = mem_alloc(len + 2 * spaces + 1);
    if (!s) return NULL;
    size_t k = 0;
    if (prefix_space) {
        memcpy(s, SPACE_MARK, 3);
        k = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + k, SPACE_MARK, 3);
            k += 3;
        } else {
            s[k++] = text[i];
        }
    }
    *out_len = k;
    return s;
}

static bool try_pair(const tok_vocab *v, const tok_sym *syms, int32_t left, int32_t right, tok_queue *q) {
    if (left < 0 || right < 0) return true;
    size_t size = syms[left].n + syms[right].n;
    int32_t id = tok_find(v, syms[left].text, size);
    if (id < 0) return true;
    tok_cand c = {.key = -(double)v->tokens[id].score, .left = left, .right = right, .size = size};
    return tok_queue_push(q, c);
}

static bool emit_symbol(const tok_vocab *v, const tok_sym *sym, tok_ids *out) {
    int32_t id = tok_find(v, sym->text, sym->n);
    if (id >= 0) return tok_ids_push(out, id);
    for (size_t i = 0; i < sym->n; i++) {
        int32_t b = v->byte_token[(unsigned char)sym->text[i]];
        if (b < 0) b = v->unk;
        if (b >= 0 && !tok_ids_push(out, b)) return false;
    }
    return true;
}

bool tok_spm_encode(const tok_vocab *v, const char *text, size_t len, bool prefix_space, tok_ids *out) {
    size_t n = 0;
    char *s = escape_spaces(text, len, prefix_space, &n);
    tok_sym *syms = mem_alloc_array(n ? n : 1, sizeof *syms);
    tok_queue q = {0};
    bool ok = s && syms;
    int32_t count = 0;
    for (size_t off = 0; ok && off < n; count++) {
        size_t cl = tok_utf8_lead_len((unsigned char)s[off]);
        if (cl > n - off) cl = n - off;
        syms[count] = (tok_sym){.text = s + off, .n = cl, .prev = count - 1, .next = -1};
        if (count > 0) syms[count - 1].next = count;
        off += cl;
    }
    for (int32_t i = 1; ok && i < count; i++) ok = try_pair(v, syms, i - 1, i, &q);
    tok_cand c;
    while (ok && tok_queue_pop(&q, &c)) {
        tok_sym *l = &syms[c.left], *r = &syms[c.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != c.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = c.left;
        ok = try_pair(v, syms, l->prev, c.left, &q) && try_pair(v, syms, c.left, l->next, &q);
    }
    for (int32_t i = 0; ok && count > 0 && i != -1; i = syms[i].next) ok = emit_symbol(v, &syms[i], out);
    tok_queue_free(&q);
    mem_free(syms);
    mem_free(s);
    return ok;
}
