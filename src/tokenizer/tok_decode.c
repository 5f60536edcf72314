/* Token ids back to text: single pieces, whole sequences, and the streaming detokenizer
 * that never emits part of a UTF-8 character and replaces invalid bytes by U+FFFD.
 * A piece is never longer than the token's stored text, which bounds every buffer here. */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "tokenizer/tok_internal.h"

typedef struct sink {
    char *buf;
    size_t cap, n; /* n counts every byte, even those past cap */
} sink;

static void put(sink *s, const char *p, size_t n) {
    if (s->n < s->cap) memcpy(s->buf + s->n, p, n < s->cap - s->n ? n : s->cap - s->n);
    s->n += n;
}

static bool hex_byte(const char *t, size_t len, char *out) {
    if (len != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return false;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v * 16 + d;
    }
    *out = (char)v;
    return true;
}

static void emit_piece(const tok_vocab *v, int32_t id, bool render_special, sink *s) {
    const tok_token *tk = &v->tokens[id];
    const char *t = v->text + tk->off;
    if (tk->attr & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN)) {
        if (render_special) put(s, t, tk->len);
        return;
    }
    if (tk->attr & TOK_ATTR_USER_DEFINED) {
        put(s, t, tk->len);
    } else if (tk->attr & TOK_ATTR_NORMAL) {
        for (size_t i = 0; i < tk->len;) {
            if (v->kind != TOK_KIND_BPE) {
                bool mark = tk->len - i >= 3 && memcmp(t + i, "\xe2\x96\x81", 3) == 0;
                put(s, mark ? " " : t + i, 1);
                i += mark ? 3 : 1;
                continue;
            }
            uint32_t cp;
            size_t cl = tok_utf8_next(t + i, tk->len - i, &cp);
            int b = tok_cp_to_byte(cp);
            if (b >= 0) {
                char c = (char)b;
                put(s, &c, 1);
            } else {
                put(s, t + i, cl); /* not a mapped character: kept as it is */
            }
            i += cl;
        }
    } else if (tk->attr & TOK_ATTR_BYTE) {
        char c;
        if (hex_byte(t, tk->len, &c)) put(s, &c, 1);
    }
}

size_t tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, size_t cap) {
    if (!v || id < 0 || id >= v->n) return 0;
    sink s = {buf, buf ? cap : 0, 0};
    emit_piece(v, id, render_special, &s);
    return s.n;
}

hearth_status tok_decode(const tok_vocab *v, const int32_t *ids, size_t n_ids, bool render_special, char **out,
                         size_t *len, hearth_err *err) {
    *out = NULL;
    *len = 0;
    size_t total = 1;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= v->n)
            return err_set(err, HEARTH_ERR_INVALID, "token id %d at position %zu is out of range (vocabulary of %d)",
                           ids[i], i, v->n);
        total += v->tokens[ids[i]].len;
    }
    char *buf = mem_alloc(total);
    if (!buf) return err_set(err, HEARTH_ERR_NOMEM, "out of memory detokenizing %zu tokens", n_ids);
    sink s = {buf, total, 0};
    for (size_t i = 0; i < n_ids; i++) {
        size_t start = s.n;
        emit_piece(v, ids[i], render_special, &s);
        if (i == 0 && v->add_space_prefix && s.n > start && buf[start] == ' ') {
            memmove(buf + start, buf + start + 1, s.n - start - 1);
            s.n--;
        }
    }
    buf[s.n] = '\0';
    *out = buf;
    *len = s.n;
    return HEARTH_OK;
}

struct tok_stream {
    const tok_vocab *v;
    int32_t *shown;   /* control tokens written as text */
    size_t n_shown;
    char held[4];   /* start of a character not yet complete */
    size_t n_held;
    char *out;      /* returned to the caller */
    size_t cap;
    char *tmp;      /* the held bytes and the next piece, kept between tokens */
    size_t tmp_cap;
};

tok_stream *tok_stream_new(const tok_vocab *v, const int32_t *shown, size_t n_shown) {
    tok_stream *s = mem_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->v = v;
    if (n_shown > 0) {
        s->shown = mem_alloc_array(n_shown, sizeof *s->shown);
        if (!s->shown) {
            mem_free(s);
            return NULL;
        }
        memcpy(s->shown, shown, n_shown * sizeof *s->shown);
        s->n_shown = n_shown;
    }
    return s;
}

static bool shown(const tok_stream *s, int32_t id) {
    if (!(s->v->tokens[id].attr & TOK_ATTR_CONTROL)) return false;
    for (size_t i = 0; i < s->n_shown; i++)
        if (s->shown[i] == id) return true;
    return false;
}

void tok_stream_free(tok_stream *s) {
    if (!s) return;
    mem_free(s->out);
    mem_free(s->tmp);
    mem_free(s->shown);
    mem_free(s);
}

/* True when p[0, n) can still become one valid character with more bytes. */
static bool could_complete(const unsigned char *p, size_t n) {
    size_t need = utf8_seq_len(p[0]);
    if (need < 2 || n >= need) return false;
    if (p[0] == 0xC0 || p[0] == 0xC1 || p[0] > 0xF4) return false;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return false;
    if (n >= 2) {
        unsigned char b = p[1];
        if ((p[0] == 0xE0 && b < 0xA0) || (p[0] == 0xED && b > 0x9F) || (p[0] == 0xF0 && b < 0x90) ||
            (p[0] == 0xF4 && b > 0x8F))
            return false;
    }
    return true;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd";

/* Moves the complete characters of src[0, n) to s->out (invalid bytes as U+FFFD) and keeps
 * an unfinished tail in s->held. */
static size_t drain(tok_stream *s, const char *src, size_t n, size_t k) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t cl = utf8_decode(src + i, n - i, &cp);
        if (cl > 0) {
            memcpy(s->out + k, src + i, cl);
            k += cl;
            i += cl;
        } else if (could_complete((const unsigned char *)src + i, n - i)) {
            memcpy(s->held, src + i, n - i);
            s->n_held = n - i;
            break;
        } else {
            memcpy(s->out + k, REPLACEMENT, 3);
            k += 3;
            i++;
        }
    }
    return k;
}

static bool reserve(tok_stream *s, size_t need) {
    if (need <= s->cap) return true;
    char *nb = mem_realloc(s->out, need);
    if (!nb) return false;
    s->out = nb;
    s->cap = need;
    return true;
}

hearth_status tok_stream_push(tok_stream *s, int32_t id, char **out, size_t *n, hearth_err *err) {
    *out = NULL;
    *n = 0;
    if (id < 0 || id >= s->v->n)
        return err_set(err, HEARTH_ERR_INVALID, "token id %d is out of range (vocabulary of %d)", id, s->v->n);
    size_t piece_max = s->v->tokens[id].len + s->n_held;
    /* Worst case every byte becomes U+FFFD (3 bytes). */
    if (piece_max > (SIZE_MAX - 1) / 3 || !reserve(s, 3 * piece_max + 1))
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory detokenizing");
    if (piece_max >= s->tmp_cap) {
        char *grown = mem_realloc(s->tmp, piece_max + 1);
        if (!grown) return err_set(err, HEARTH_ERR_NOMEM, "out of memory detokenizing");
        s->tmp = grown;
        s->tmp_cap = piece_max + 1;
    }
    char *tmp = s->tmp;
    memcpy(tmp, s->held, s->n_held);
    sink sk = {tmp + s->n_held, piece_max - s->n_held, 0};
    emit_piece(s->v, id, shown(s, id), &sk);
    size_t total = s->n_held + sk.n;
    s->n_held = 0;
    *n = drain(s, tmp, total, 0);
    *out = s->out;
    return HEARTH_OK;
}

hearth_status tok_stream_flush(tok_stream *s, char **out, size_t *n, hearth_err *err) {
    *out = NULL;
    *n = 0;
    if (!reserve(s, 4)) return err_set(err, HEARTH_ERR_NOMEM, "out of memory detokenizing");
    if (s->n_held > 0) {
        memcpy(s->out, REPLACEMENT, 3);
        *n = 3;
    }
    s->n_held = 0;
    *out = s->out;
    return HEARTH_OK;
}
