/* Lexer of the template language, with the whitespace rules Hugging Face renders with:
 * newlines normalised and one trailing newline dropped, trim_blocks (the first newline
 * after a block or comment tag is removed), lstrip_blocks (spaces and tabs before a
 * block or comment tag at the start of a line are removed), `-` and `+` controls, raw
 * blocks and comments. Produces the whole token array at once; never reads past the
 * source and reports errors with their line. */
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "chat/chat_internal.h"

typedef struct lexer {
    struct chat_template *t;
    const char *s;
    size_t n;
    size_t counted; /* lines are counted up to this offset */
    int line;
    ctoks *out;
    hearth_err *err;
    bool failed;
} lexer;

static int line_at(lexer *lx, size_t pos) {
    size_t end = pos < lx->n ? pos : lx->n;
    while (lx->counted < end) {
        const char *nl = memchr(lx->s + lx->counted, '\n', end - lx->counted);
        if (!nl) {
            lx->counted = end;
            break;
        }
        lx->line++;
        lx->counted = (size_t)(nl - lx->s) + 1;
    }
    return lx->line;
}

/* The first j >= from where s[j] is c and s[j + 1] one of the bytes of next; n if none.
 * (memchr keeps the scan of long text runs cheap.) */
static size_t find_pair(const lexer *lx, size_t from, char c, const char *next) {
    for (size_t j = from; j + 1 < lx->n;) {
        const char *hit = memchr(lx->s + j, c, lx->n - 1 - j);
        if (!hit) break;
        j = (size_t)(hit - lx->s);
        if (memchr(next, lx->s[j + 1], strlen(next))) return j;
        j++;
    }
    return lx->n;
}

static bool fail(lexer *lx, size_t pos, const char *what) {
    if (!lx->failed)
        err_set(lx->err, HEARTH_ERR_FORMAT, "template syntax error at line %d: %s", line_at(lx, pos), what);
    lx->failed = true;
    return false;
}

static ctok *push(lexer *lx, uint8_t type, size_t pos) {
    ctoks *o = lx->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        ctok *v = mem_realloc_array(o->v, cap, sizeof(ctok));
        if (!v) {
            err_set(lx->err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
            lx->failed = true;
            return NULL;
        }
        o->v = v;
        o->cap = cap;
    }
    ctok *k = &o->v[o->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->line = line_at(lx, pos);
    return k;
}

static bool push_text(lexer *lx, uint8_t type, size_t pos, const char *s, size_t n) {
    ctok *k = push(lx, type, pos);
    if (!k) return false;
    k->str = chat_str_immortal(lx->t, s, n);
    if (!k->str) {
        err_set(lx->err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
        lx->failed = true;
        return false;
    }
    return true;
}

static bool is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

static bool starts(lexer *lx, size_t p, const char *lit) {
    size_t k = strlen(lit);
    return p + k <= lx->n && !memcmp(lx->s + p, lit, k);
}

static size_t skip_ws(lexer *lx, size_t p) {
    while (p < lx->n && is_ws(lx->s[p])) p++;
    return p;
}

/* Emits the text [a, z) that precedes a tag whose sign is `sign`; `block` is true for
 * block and comment tags (subject to lstrip_blocks). */
static bool emit_data(lexer *lx, size_t a, size_t z, char sign, bool block, bool line_starting) {
    if (sign == '-')
        while (z > a && is_ws(lx->s[z - 1])) z--;
    else if (sign != '+' && block) {
        size_t lp = z;
        while (lp > a && lx->s[lp - 1] != '\n') lp--;
        bool at_line_start = lp > a || line_starting;
        bool blank = lp < z;
        for (size_t i = lp; i < z && blank; i++)
            if (!is_ws(lx->s[i])) blank = false;
        if (at_line_start && blank) z = lp;
    }
    if (z > a) return push_text(lx, TK_DATA, a, lx->s + a, z - a);
    return true;
}

/* Parses a tag end at p (after the sign check). Returns the offset after it and stores
 * whether the consumed end finished with a newline. */
static size_t tag_end(lexer *lx, size_t p, size_t len, char sign, bool trim, bool *nl) {
    size_t q = p + len;
    if (sign == '-') q = skip_ws(lx, q);
    else if (sign != '+' && trim && q < lx->n && lx->s[q] == '\n') q++;
    *nl = q > p && lx->s[q - 1] == '\n';
    return q;
}

static void decode_escape(lexer *lx, const char *s, size_t n, size_t *i, char *out, size_t *o) {
    char ch = s[*i + 1];
    *i += 2;
    const char *simple = "\\\\''\"\"a\ab\bf\fn\nr\rt\tv\v";
    for (const char *p = simple; *p; p += 2)
        if (ch == p[0]) {
            out[(*o)++] = p[1];
            return;
        }
    if (ch == '\n') return;
    uint32_t cp = 0;
    int digits = 0, want = 0;
    if (ch >= '0' && ch <= '7') {
        cp = (uint32_t)(ch - '0');
        while (digits < 2 && *i < n && s[*i] >= '0' && s[*i] <= '7') {
            cp = cp * 8 + (uint32_t)(s[(*i)++] - '0');
            digits++;
        }
    } else if (ch == 'x' || ch == 'u' || ch == 'U') {
        want = ch == 'x' ? 2 : ch == 'u' ? 4 : 8;
        for (; digits < want && *i < n; digits++) {
            char d = s[*i];
            int v = d >= '0' && d <= '9' ? d - '0' : d >= 'a' && d <= 'f' ? d - 'a' + 10
                  : d >= 'A' && d <= 'F' ? d - 'A' + 10 : -1;
            if (v < 0) break;
            cp = cp * 16 + (uint32_t)v;
            (*i)++;
        }
        if (digits < want) {
            fail(lx, 0, "truncated \\x, \\u or \\U escape in a string");
            return;
        }
    } else {
        out[(*o)++] = '\\';
        out[(*o)++] = ch;
        return;
    }
    char enc[4];
    size_t k = utf8_encode(cp, enc);
    if (!k) {
        fail(lx, 0, "invalid code point in a string escape");
        return;
    }
    memcpy(out + *o, enc, k);
    *o += k;
}

static size_t lex_string(lexer *lx, size_t p) {
    char q = lx->s[p];
    size_t a = p + 1, i = a;
    while (i < lx->n && lx->s[i] != q) i += lx->s[i] == '\\' ? 2 : 1;
    if (i >= lx->n) {
        fail(lx, p, "unterminated string");
        return lx->n;
    }
    size_t n = i - a;
    char *buf = mem_alloc(n + 1);
    if (!buf) {
        err_set(lx->err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
        lx->failed = true;
        return lx->n;
    }
    size_t o = 0;
    for (size_t k = 0; k < n && !lx->failed;) {
        if (lx->s[a + k] == '\\' && k + 1 < n) decode_escape(lx, lx->s + a, n, &k, buf, &o);
        else buf[o++] = lx->s[a + k++];
    }
    bool ok = !lx->failed && utf8_valid(buf, o);
    if (!lx->failed && !ok) fail(lx, p, "string escape produces invalid UTF-8");
    if (ok) push_text(lx, TK_STRING, p, buf, o);
    mem_free(buf);
    return i + 1;
}

/* 0b101, 0o17, 0x_ff: an integer in base 2, 8 or 16 (underscores between digits) */
static size_t lex_radix(lexer *lx, size_t p) {
    char r = (char)(lx->s[p + 1] | 0x20);
    size_t i = p + 2;
    while (i < lx->n && (lx->s[i] == '_' || (r == 'x' ? (lx->s[i] >= '0' && lx->s[i] <= '9') ||
                                                         ((lx->s[i] | 0x20) >= 'a' && (lx->s[i] | 0x20) <= 'f')
                                                   : lx->s[i] >= '0' && lx->s[i] <= (r == 'o' ? '7' : '1'))))
        i++;
    int64_t v;
    if (!py_parse_int(lx->s + p, i - p, r == 'x' ? 16 : r == 'o' ? 8 : 2, &v)) {
        fail(lx, p, "invalid or too large integer literal");
        return lx->n;
    }
    ctok *k = push(lx, TK_INT, p);
    if (!k) return lx->n;
    k->i = v;
    return i;
}

/* Pushes the number token of literal buf (o characters, from p); false on failure. */
static bool lex_number_value(lexer *lx, size_t p, const char *buf, size_t o, bool is_float) {
    ctok *k = push(lx, is_float ? TK_FLOAT : TK_INT, p);
    if (!k) return false;
    if (is_float) k->f = strtod(buf, NULL);
    else {
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (o > 18 && (v > INT64_MAX || o > 19)) return fail(lx, p, "integer literal too large");
        k->i = (int64_t)v;
    }
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(const lexer *lx, size_t i) {
    while (i < lx->n && (is_digit(lx->s[i]) || lx->s[i] == '_')) i++;
    return i;
}

static size_t lex_number(lexer *lx, size_t p, bool after_dot) {
    const char *s = lx->s;
    if (!after_dot && p + 2 < lx->n && s[p] == '0' && strchr("bBoOxX", s[p + 1]) && s[p + 1])
        return lex_radix(lx, p);
    size_t i = skip_digits(lx, p);
    bool is_float = false;
    if (!after_dot && i + 1 < lx->n && s[i] == '.' && is_digit(s[i + 1])) {
        is_float = true;
        i = skip_digits(lx, i + 1);
    }
    if (!after_dot && i < lx->n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < lx->n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < lx->n && is_digit(s[j])) {
            is_float = true;
            i = skip_digits(lx, j);
        }
    }
    /* The literal without its underscores, whatever its length (a float may have hundreds
     * of digits; a fixed buffer once overflowed by one byte and cut their value). */
    char small[128];
    char *buf = i - p < sizeof small ? small : mem_alloc(i - p + 1);
    if (!buf) {
        err_set(lx->err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
        lx->failed = true;
        return lx->n;
    }
    size_t o = 0;
    for (size_t k = p; k < i; k++)
        if (s[k] != '_') buf[o++] = s[k];
    buf[o] = 0;
    size_t end = lex_number_value(lx, p, buf, o, is_float) ? i : lx->n;
    if (buf != small) mem_free(buf);
    return end;
}

/* The operator at p (left bytes remain, left >= 1): its code and length, or length 0.
 * A two-character operator wins over its one-character prefix. */
static size_t match_op(const char *p, size_t left, uint8_t *op) {
    char next = left > 1 ? p[1] : 0;
    switch (p[0]) {
    case '/': *op = next == '/' ? P_FLOORDIV : P_DIV; return next == '/' ? 2 : 1;
    case '*': *op = next == '*' ? P_POW : P_MUL; return next == '*' ? 2 : 1;
    case '=': *op = next == '=' ? P_EQ : P_ASSIGN; return next == '=' ? 2 : 1;
    case '>': *op = next == '=' ? P_GE : P_GT; return next == '=' ? 2 : 1;
    case '<': *op = next == '=' ? P_LE : P_LT; return next == '=' ? 2 : 1;
    case '!': *op = P_NE; return next == '=' ? 2 : 0;
    case '+': *op = P_ADD; return 1;
    case '-': *op = P_SUB; return 1;
    case '%': *op = P_MOD; return 1;
    case '~': *op = P_TILDE; return 1;
    case '[': *op = P_LBRACKET; return 1;
    case ']': *op = P_RBRACKET; return 1;
    case '(': *op = P_LPAREN; return 1;
    case ')': *op = P_RPAREN; return 1;
    case '{': *op = P_LBRACE; return 1;
    case '}': *op = P_RBRACE; return 1;
    case '.': *op = P_DOT; return 1;
    case ':': *op = P_COLON; return 1;
    case '|': *op = P_PIPE; return 1;
    case ',': *op = P_COMMA; return 1;
    case ';': *op = P_SEMI; return 1;
    default: return 0;
    }
}

/* Tokenizes the inside of a {{ }} or {% %} tag starting at p; returns the offset after
 * its end and whether that end finished with a newline. */
static size_t lex_tag(lexer *lx, size_t p, bool block, bool *nl) {
    int depth = 0;
    while (!lx->failed) {
        if (p >= lx->n) {
            fail(lx, p, block ? "unexpected end of template inside a {% %} tag" : "unexpected end of template inside a {{ }} tag");
            return lx->n;
        }
        if (depth == 0) {
            const char *end = block ? "%}" : "}}";
            char sign = 0;
            size_t at = p;
            if ((lx->s[p] == '-' || (block && lx->s[p] == '+')) && starts(lx, p + 1, end)) sign = lx->s[p], at = p + 1;
            if (sign || starts(lx, p, end)) {
                if (!push(lx, block ? TK_BEND : TK_VEND, p)) return lx->n;
                return tag_end(lx, at, 2, sign, block, nl);
            }
        }
        char ch = lx->s[p];
        if (is_ws(ch)) {
            p++;
            continue;
        }
        if (ch >= '0' && ch <= '9') {
            ctoks *o = lx->out;
            bool after_dot = o->n && o->v[o->n - 1].type == TK_OP && o->v[o->n - 1].op == P_DOT;
            p = lex_number(lx, p, after_dot);
            continue;
        }
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            size_t a = p;
            while (p < lx->n && ((lx->s[p] >= 'a' && lx->s[p] <= 'z') || (lx->s[p] >= 'A' && lx->s[p] <= 'Z') ||
                                 (lx->s[p] >= '0' && lx->s[p] <= '9') || lx->s[p] == '_'))
                p++;
            push_text(lx, TK_NAME, a, lx->s + a, p - a);
            continue;
        }
        if (ch == '"' || ch == '\'') {
            p = lex_string(lx, p);
            continue;
        }
        uint8_t op = 0;
        size_t op_len = match_op(lx->s + p, lx->n - p, &op);
        if (!op_len) {
            fail(lx, p, "unexpected character in a tag");
            return lx->n;
        }
        if (op == P_LPAREN || op == P_LBRACKET || op == P_LBRACE) depth++;
        else if ((op == P_RPAREN || op == P_RBRACKET || op == P_RBRACE) && depth > 0) depth--;
        ctok *t = push(lx, TK_OP, p);
        if (!t) return lx->n;
        t->op = op;
        p += op_len;
    }
    return lx->n;
}

/* `{% raw %}` at k (sign already read): returns the offset after the opening tag, or 0. */
static size_t raw_begin(lexer *lx, size_t p, bool *nl) {
    p = skip_ws(lx, p);
    if (!starts(lx, p, "raw")) return 0;
    p = skip_ws(lx, p + 3);
    if (starts(lx, p, "-%}")) return tag_end(lx, p + 1, 2, '-', true, nl);
    if (starts(lx, p, "%}")) {
        *nl = false;
        return p + 2;
    }
    return 0;
}

static size_t lex_raw(lexer *lx, size_t p, bool line_starting) {
    for (size_t k = p; (k = find_pair(lx, k, '{', "%")) < lx->n; k++) {
        size_t q = k + 2;
        char sign = q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+') ? lx->s[q++] : 0;
        q = skip_ws(lx, q);
        if (!starts(lx, q, "endraw")) continue;
        q = skip_ws(lx, q + 6);
        char esign = 0;
        if (q < lx->n && (lx->s[q] == '-' || lx->s[q] == '+') && starts(lx, q + 1, "%}")) esign = lx->s[q++];
        if (!starts(lx, q, "%}")) continue;
        if (!emit_data(lx, p, k, sign, true, line_starting)) return lx->n;
        bool nl;
        return tag_end(lx, q, 2, esign, true, &nl);
    }
    fail(lx, p, "missing {% endraw %}");
    return lx->n;
}

hearth_status chat_lex(struct chat_template *t, const char *src, size_t len, ctoks *out, hearth_err *err) {
    if (!utf8_valid(src, len))
        return err_set(err, HEARTH_ERR_FORMAT, "template syntax error: the template is not valid UTF-8");
    char *s = mem_alloc(len + 1);
    if (!s) return err_set(err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
    size_t n = 0;
    for (size_t i = 0; i < len;) { /* \r\n and \r become \n */
        const char *cr = memchr(src + i, '\r', len - i);
        size_t run = cr ? (size_t)(cr - src) - i : len - i;
        memcpy(s + n, src + i, run);
        n += run;
        i += run;
        if (i < len) {
            s[n++] = '\n';
            i += i + 1 < len && src[i + 1] == '\n' ? 2 : 1;
        }
    }
    if (n && s[n - 1] == '\n') n--;
    lexer lx = {.t = t, .s = s, .n = n, .line = 1, .out = out, .err = err};
    bool line_starting = true;
    size_t pos = 0;
    while (pos < n && !lx.failed) {
        size_t k = find_pair(&lx, pos, '{', "{%#");
        if (k + 1 >= n) {
            emit_data(&lx, pos, n, 0, false, line_starting);
            break;
        }
        char kind = s[k + 1];
        size_t body = k + 2;
        char sign = body < n && (s[body] == '-' || s[body] == '+') ? s[body++] : 0;
        bool nl = false;
        if (kind == '%') {
            size_t after = raw_begin(&lx, body, &nl);
            if (after) {
                if (!emit_data(&lx, pos, k, sign, true, line_starting)) break;
                pos = lex_raw(&lx, after, nl);
                line_starting = pos > 0 && s[pos - 1] == '\n';
                continue;
            }
        }
        if (!emit_data(&lx, pos, k, sign, kind != '{', line_starting)) break;
        if (kind == '#') {
            size_t j = find_pair(&lx, body, '#', "}");
            if (j + 1 >= n) {
                fail(&lx, k, "missing end of comment tag");
                break;
            }
            char esign = j > body && (s[j - 1] == '-' || s[j - 1] == '+') ? s[j - 1] : 0;
            pos = tag_end(&lx, j, 2, esign, true, &nl);
            line_starting = nl;
            continue;
        }
        if (!push(&lx, kind == '%' ? TK_BBEGIN : TK_VBEGIN, k)) break;
        pos = lex_tag(&lx, body, kind == '%', &nl);
        line_starting = nl;
    }
    if (!lx.failed) push(&lx, TK_EOF, n);
    mem_free(s);
    return lx.failed ? lx.err->status : HEARTH_OK;
}
