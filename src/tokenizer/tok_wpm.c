/* WordPiece encoding ("bert" vocabularies), as the reference does it: each character is
 * replaced by the first character of its canonical decomposition (which drops accents)
 * and lower-cased; whitespace separates words; control characters vanish; punctuation,
 * ASCII symbols and CJK ideographs become one-character words. Each word, prefixed with
 * U+2581 (how GGUF stores word-initial pieces; continuation pieces are stored without
 * "##"), is covered greedily by the longest tokens from the left; a word that cannot be
 * covered becomes the unknown token. Fails only on NOMEM. */
#include <string.h>
#include <utf8proc.h>

#include "base/mem.h"
#include "tokenizer/tok_internal.h"

static uint32_t first_of_decomposition(uint32_t cp) {
    utf8proc_int32_t buf[8];
    int boundclass = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8, UTF8PROC_DECOMPOSE, &boundclass);
    return n >= 1 ? (uint32_t)buf[0] : cp;
}

static bool is_cjk_ideograph(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static bool is_control(utf8proc_category_t c) {
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CO ||
           c == UTF8PROC_CATEGORY_CS;
}

static bool is_punct(utf8proc_category_t c) { return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO; }
static bool is_symbol(utf8proc_category_t c) { return c >= UTF8PROC_CATEGORY_SM && c <= UTF8PROC_CATEGORY_SO; }

/* Greedy longest-match of one word (already holding its U+2581 prefix). */
static bool encode_word(const tok_vocab *v, const char *w, size_t n, tok_ids *out) {
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > (size_t)v->max_token_len ? i + v->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--)
            if ((id = tok_find(v, w + i, j - i)) >= 0) break;
        if (id < 0) {
            out->n = start;
            break;
        }
        if (!tok_ids_push(out, id)) return false;
        i = j;
    }
    if (out->n == start && v->unk >= 0) return tok_ids_push(out, v->unk);
    return true;
}

bool tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out) {
    size_t n_cps = 0;
    uint32_t *cps = tok_utf8_to_cps(text, len, &n_cps);
    char *word = mem_alloc(3 + 4 * (n_cps ? n_cps : 1));
    bool ok = cps && word;
    if (ok) memcpy(word, "\xe2\x96\x81", 3);
    size_t wl = 3;
    for (size_t i = 0; ok && i <= n_cps; i++) {
        uint32_t cp = i < n_cps ? first_of_decomposition(cps[i]) : ' ';
        utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
        bool alone = is_punct(cat) || (cp < 0x7F && is_symbol(cat)) || is_cjk_ideograph(cp);
        bool breaks = tok_is_whitespace(cp) || alone;
        if (breaks && wl > 3) {
            ok = encode_word(v, word, wl, out);
            wl = 3;
        }
        if (tok_is_whitespace(cp) || cp == 0 || cp == 0xFFFD || is_control(cat)) continue;
        wl += tok_utf8_put((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), word + wl);
        if (alone && ok) {
            ok = encode_word(v, word, wl, out);
            wl = 3;
        }
    }
    mem_free(word);
    mem_free(cps);
    return ok;
}
