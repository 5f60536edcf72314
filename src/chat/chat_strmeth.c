/* The methods of Python's str that templates may call (`s.startswith(...)`,
 * `s.split()`, `s.zfill(3)`, ...), with Python's semantics: indexes and widths in code
 * points, optional start/end bounds, Unicode character classes. Never mutates its
 * string; every result is a new value. */
#define _GNU_SOURCE /* memmem */
#include <string.h>
#include <utf8proc.h>

#include "chat/chat_internal.h"

static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "replace", "upper", "lower",
    "title", "capitalize", "swapcase", "casefold", "find", "rfind", "index", "rindex", "count", "join",
    "format", "splitlines", "isdigit", "isalpha", "isalnum", "isspace", "isupper", "islower", "isdecimal",
    "isnumeric", "istitle", "isidentifier", "isascii", "isprintable", "zfill", "ljust", "rjust", "center",
    "partition", "rpartition", "removeprefix", "removesuffix", "expandtabs", NULL};

bool str_has_method(const char *name) {
    for (const char *const *m = str_methods; *m; m++)
        if (!strcmp(name, *m)) return true;
    return false;
}

static cv same_str(cstr *s) {
    cv v = {0};
    v.t = CV_STR;
    v.u.s = s;
    return cv_ref(v);
}

/* ---- bounds: s[start:end] as Python clamps them -------------------------------- */

typedef struct span {
    size_t b0, b1;   /* byte range */
    int64_t cp0, cp1; /* code point indexes of b0 and b1 */
    bool empty_past; /* start lies past the end: nothing, not even "", is found there */
} span;

static span bounds(chat_ctx *c, cstr *s, cv start, cv end) {
    int64_t len = (int64_t)cs_cplen(s);
    int64_t a = want_int(c, start, 0, "slice index"), z = want_int(c, end, len, "slice index");
    span r = {0};
    r.empty_past = a > len;
    if (a < 0) a = a + len < 0 ? 0 : a + len;
    if (z < 0) z = z + len < 0 ? 0 : z + len;
    if (a > len) a = len;
    if (z > len) z = len;
    if (z < a) { /* an end before the start: not even "" is found (Python's end - start < len(sub)) */
        r.empty_past = true;
        z = a;
    }
    r.cp0 = a;
    r.cp1 = z;
    r.b0 = cs_cp_offset(s, (size_t)a);
    r.b1 = cs_cp_offset(s, (size_t)z);
    return r;
}

static bool affix_match(chat_ctx *c, const char *p, size_t n, cv affix, bool end) {
    if (affix.t == CV_LIST && affix.u.l->tuple) {
        for (size_t i = 0; i < affix.u.l->n; i++)
            if (affix_match(c, p, n, affix.u.l->v[i], end)) return true;
        return false;
    }
    if (affix.t != CV_STR)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%s first arg must be str or a tuple of str, not %s",
                  end ? "endswith" : "startswith", cv_pytype(affix));
    cstr *x = affix.u.s;
    return x->len <= n && !memcmp(p + (end ? n - x->len : 0), x->s, x->len);
}

/* find/rfind/index/rindex/count of sub within s[start:end] */
static cv search(chat_ctx *c, cstr *s, const char *m, cargs *a) {
    cstr *sub = want_str(c, arg_get(a, 0, NULL), "the substring");
    span sp = bounds(c, s, arg_get(a, 1, NULL), arg_get(a, 2, NULL));
    const char *p = s->s + sp.b0;
    size_t n = sp.b1 - sp.b0;
    if (!strcmp(m, "count")) {
        if (sp.empty_past) return cv_int(0);
        if (!sub->len) return cv_int(sp.cp1 - sp.cp0 + 1);
        int64_t k = 0;
        for (const char *q = p; (q = memmem(q, n - (size_t)(q - p), sub->s, sub->len)); q += sub->len) k++;
        return cv_int(k);
    }
    int64_t at = -1;
    if (!sp.empty_past) {
        cv piece = cv_str(c, p, n);
        at = str_find(c, piece.u.s, sub, m[0] == 'r');
        cv_unref(c, piece);
    }
    if (at < 0 && strstr(m, "index")) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "substring not found");
    return cv_int(at < 0 ? -1 : at + sp.cp0);
}

/* ---- character classes ------------------------------------------------------------ */

static int cat(uint32_t cp) { return (int)utf8proc_category((utf8proc_int32_t)cp); }
static bool is_letter(uint32_t cp) {
    int k = cat(cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}
static bool is_decimal(uint32_t cp) { return cat(cp) == UTF8PROC_CATEGORY_ND; }
static bool is_digit(uint32_t cp) {
    return is_decimal(cp) || cp == 0xB2 || cp == 0xB3 || cp == 0xB9 || (cp >= 0x2070 && cp <= 0x2079 && cp != 0x2071 &&
           cp != 0x2072 && cp != 0x2073) || (cp >= 0x2080 && cp <= 0x2089) || (cp >= 0x2460 && cp <= 0x2468);
}
static bool is_numeric(uint32_t cp) {
    int k = cat(cp);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}
static bool is_upper(uint32_t cp) { return cat(cp) == UTF8PROC_CATEGORY_LU; }
static bool is_lower(uint32_t cp) { return cat(cp) == UTF8PROC_CATEGORY_LL; }
static bool is_cased(uint32_t cp) { return is_upper(cp) || is_lower(cp) || cat(cp) == UTF8PROC_CATEGORY_LT; }
static bool is_printable(uint32_t cp) {
    if (cp == ' ') return true;
    int k = cat(cp);
    return !(k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
             k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_ZL ||
             k == UTF8PROC_CATEGORY_ZP || k == UTF8PROC_CATEGORY_ZS);
}
static bool is_ident_char(uint32_t cp, bool first) {
    if (cp == '_' || is_letter(cp) || cat(cp) == UTF8PROC_CATEGORY_NL) return true;
    if (first) return false;
    int k = cat(cp);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ND ||
           k == UTF8PROC_CATEGORY_PC;
}

static bool classify(cstr *s, const char *m) {
    size_t i = 0;
    if (!strcmp(m, "isascii")) {
        for (size_t k = 0; k < s->len; k++)
            if ((unsigned char)s->s[k] >= 0x80) return false;
        return true;
    }
    if (!strcmp(m, "isprintable")) {
        while (i < s->len)
            if (!is_printable(chat_next_cp(s->s, s->len, &i))) return false;
        return true;
    }
    if (!s->len) return false;
    bool cased = false, prev_cased = false, first = true;
    while (i < s->len) {
        uint32_t cp = chat_next_cp(s->s, s->len, &i);
        bool ok;
        if (!strcmp(m, "isdigit")) ok = is_digit(cp);
        else if (!strcmp(m, "isdecimal")) ok = is_decimal(cp);
        else if (!strcmp(m, "isnumeric")) ok = is_numeric(cp);
        else if (!strcmp(m, "isalpha")) ok = is_letter(cp);
        else if (!strcmp(m, "isalnum")) ok = is_letter(cp) || is_numeric(cp) || is_digit(cp);
        else if (!strcmp(m, "isspace")) ok = py_isspace(cp);
        else if (!strcmp(m, "isidentifier")) ok = is_ident_char(cp, first);
        else if (!strcmp(m, "isupper")) {
            ok = !is_lower(cp) && cat(cp) != UTF8PROC_CATEGORY_LT;
            cased |= is_upper(cp);
        } else if (!strcmp(m, "islower")) {
            ok = !is_upper(cp) && cat(cp) != UTF8PROC_CATEGORY_LT;
            cased |= is_lower(cp);
        } else { /* istitle: uppercase only after uncased, lowercase only after cased */
            bool up = is_upper(cp) || cat(cp) == UTF8PROC_CATEGORY_LT;
            ok = up ? !prev_cased : !is_lower(cp) || prev_cased;
            cased |= up;
            prev_cased = is_cased(cp);
        }
        if (!ok) return false;
        first = false;
    }
    return (strcmp(m, "isupper") && strcmp(m, "islower") && strcmp(m, "istitle")) || cased;
}

/* ---- case --------------------------------------------------------------------------- */

static cv map_case(chat_ctx *c, cstr *s, bool fold) {
    cbuf *b = cb_new(c);
    size_t i = 0;
    while (i < s->len) {
        size_t at = i;
        uint32_t cp = chat_next_cp(s->s, s->len, &i);
        if (fold) {
            utf8proc_int32_t out[8];
            int last = 0;
            utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, out, 8, UTF8PROC_CASEFOLD, &last);
            if (n < 1 || n > 8) cb_put(c, b, s->s + at, i - at);
            else
                for (utf8proc_ssize_t k = 0; k < n; k++) chat_put_cp(c, b, (uint32_t)out[k]);
            continue;
        }
        utf8proc_int32_t x = (utf8proc_int32_t)cp;
        chat_put_cp(c, b, (uint32_t)(is_upper(cp) ? utf8proc_tolower(x) : is_lower(cp) ? utf8proc_toupper(x) : x));
    }
    return cb_take(c, b);
}

/* ---- padding --------------------------------------------------------------------------- */

static cv pad(chat_ctx *c, cstr *s, int64_t width, cv fill, int align /* -1 left, 0 center, 1 right */) {
    uint32_t fc = ' ';
    if (fill.t != CV_UNDEF) {
        cstr *f = want_str(c, fill, "The fill character");
        size_t k = 0;
        if (cs_cplen(f) != 1)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "The fill character must be exactly one character long");
        fc = chat_next_cp(f->s, f->len, &k);
    }
    int64_t len = (int64_t)cs_cplen(s);
    if (width <= len) return same_str(s);
    if ((uint64_t)width > c->max_output) width = (int64_t)c->max_output;
    int64_t total = width - len, left = align < 0 ? 0 : align > 0 ? total : total / 2 + (total & width & 1);
    cbuf *b = cb_new(c);
    for (int64_t k = 0; k < left; k++) chat_put_cp(c, b, fc);
    cb_put(c, b, s->s, s->len);
    for (int64_t k = left; k < total; k++) chat_put_cp(c, b, fc);
    return cb_take(c, b);
}

static cv zfill(chat_ctx *c, cstr *s, int64_t width) {
    int64_t len = (int64_t)cs_cplen(s);
    if (width <= len) return same_str(s);
    if ((uint64_t)width > c->max_output) width = (int64_t)c->max_output;
    cbuf *b = cb_new(c);
    size_t at = 0;
    if (s->len && (s->s[0] == '+' || s->s[0] == '-')) cb_putc(c, b, s->s[at++]);
    for (int64_t k = len; k < width; k++) cb_putc(c, b, '0');
    cb_put(c, b, s->s + at, s->len - at);
    return cb_take(c, b);
}

static cv partition(chat_ctx *c, cstr *s, cv sepv, bool right) {
    cstr *sep = want_str(c, sepv, "the separator");
    if (!sep->len) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "empty separator");
    const char *hit = NULL;
    if (!right) hit = memmem(s->s, s->len, sep->s, sep->len);
    else {
        chat_rfind f;
        chat_rfind_init(c, &f, s->s, s->len, sep->s, sep->len);
        size_t at = chat_rfind_in(&f, s->len);
        chat_rfind_done(c, &f);
        hit = at == SIZE_MAX ? NULL : s->s + at;
    }
    clist *t = cl_new(c, 3);
    t->tuple = true;
    if (!hit) {
        cl_push(c, t, right ? cv_str(c, "", 0) : same_str(s));
        cl_push(c, t, cv_str(c, "", 0));
        cl_push(c, t, right ? same_str(s) : cv_str(c, "", 0));
    } else {
        size_t at = (size_t)(hit - s->s);
        cl_push(c, t, cv_str(c, s->s, at));
        cl_push(c, t, same_str(sep));
        cl_push(c, t, cv_str(c, hit + sep->len, s->len - at - sep->len));
    }
    return cv_list(t);
}

static cv expandtabs(chat_ctx *c, cstr *s, int64_t tab) {
    cbuf *b = cb_new(c);
    int64_t col = 0;
    size_t i = 0;
    while (i < s->len) {
        size_t at = i;
        uint32_t cp = chat_next_cp(s->s, s->len, &i);
        if (cp == '\t') {
            if (tab > 0) {
                int64_t n = tab - col % tab;
                if ((uint64_t)n > c->max_output) n = (int64_t)c->max_output;
                for (int64_t k = 0; k < n; k++) cb_putc(c, b, ' ');
                col += n;
            }
            continue;
        }
        cb_put(c, b, s->s + at, i - at);
        col = cp == '\n' || cp == '\r' ? 0 : col + 1;
    }
    return cb_take(c, b);
}

/* ---- dispatch ------------------------------------------------------------------------- */

cv str_method(chat_ctx *c, cstr *s, const char *m, cargs *a) {
    cv a0 = arg_get(a, 0, NULL), a1 = arg_get(a, 1, NULL);
    chat_steps(c, s->len / 64 + 1);
    if (!strcmp(m, "strip")) return str_strip(c, s, a0, true, true);
    if (!strcmp(m, "lstrip")) return str_strip(c, s, a0, true, false);
    if (!strcmp(m, "rstrip")) return str_strip(c, s, a0, false, true);
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        cv sep = arg_get(a, 0, "sep");
        int64_t maxsplit = want_int(c, arg_get(a, 1, "maxsplit"), -1, "maxsplit");
        return str_split(c, s, sep, maxsplit, m[0] == 'r');
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        span sp = bounds(c, s, a1, arg_get(a, 2, NULL));
        if (sp.empty_past) return cv_bool(false);
        return cv_bool(affix_match(c, s->s + sp.b0, sp.b1 - sp.b0, a0, m[0] == 'e'));
    }
    if (!strcmp(m, "replace"))
        return str_replace(c, s, want_str(c, a0, "replace() argument 1"),
                           want_str(c, a1, "replace() argument 2"),
                           want_int(c, arg_get(a, 2, "count"), -1, "count"));
    if (!strcmp(m, "upper")) return str_case(c, s, CASE_UPPER);
    if (!strcmp(m, "lower")) return str_case(c, s, CASE_LOWER);
    if (!strcmp(m, "title")) return str_case(c, s, CASE_TITLE_METHOD);
    if (!strcmp(m, "capitalize")) return str_case(c, s, CASE_CAPITALIZE);
    if (!strcmp(m, "swapcase") || !strcmp(m, "casefold")) return map_case(c, s, m[0] == 'c');
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex") ||
        !strcmp(m, "count"))
        return search(c, s, m, a);
    if (!strcmp(m, "join")) {
        clist *items = cv_iterate(c, a0);
        cbuf *b = cb_new(c);
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != CV_STR)
                chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "sequence item %zu: expected str instance, %s found", i,
                          cv_pytype(items->v[i]));
            if (i) cb_put(c, b, s->s, s->len);
            cb_put(c, b, items->v[i].u.s->s, items->v[i].u.s->len);
        }
        chat_obj_unref(c, &items->h);
        return cb_take(c, b);
    }
    if (!strcmp(m, "format")) return str_format(c, s, a);
    if (!strcmp(m, "splitlines")) return str_splitlines(c, s);
    if (!strncmp(m, "is", 2)) return cv_bool(classify(s, m));
    if (!strcmp(m, "zfill")) return zfill(c, s, want_int(c, a0, 0, "zfill() argument"));
    if (!strcmp(m, "ljust") || !strcmp(m, "rjust") || !strcmp(m, "center"))
        return pad(c, s, want_int(c, a0, 0, "width"), a1, m[0] == 'l' ? -1 : m[0] == 'r' ? 1 : 0);
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) return partition(c, s, a0, m[0] == 'r');
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        cstr *x = want_str(c, a0, "the affix");
        bool suffix = m[6] == 's';
        if (x->len > s->len || memcmp(s->s + (suffix ? s->len - x->len : 0), x->s, x->len)) return same_str(s);
        return cv_str(c, s->s + (suffix ? 0 : x->len), s->len - x->len);
    }
    if (!strcmp(m, "expandtabs")) return expandtabs(c, s, want_int(c, arg_get(a, 0, "tabsize"), 8, "tabsize"));
    return cv_undef();
}
