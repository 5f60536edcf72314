/* Python string operations on UTF-8 strings, counted in code points as Python does:
 * strip, case mapping, replace, split, slicing, indexing and find. Never produces a
 * string that splits a character. */
#define _GNU_SOURCE /* memmem */
#include <string.h>
#include <utf8proc.h>

#include "base/utf8.h"
#include "chat/chat_internal.h"

uint32_t chat_next_cp(const char *s, size_t n, size_t *i) {
    uint32_t cp;
    size_t k = utf8_decode(s + *i, n - *i, &cp);
    if (!k) {
        cp = (unsigned char)s[*i];
        k = 1;
    }
    *i += k;
    return cp;
}

void chat_put_cp(chat_ctx *c, cbuf *b, uint32_t cp) {
    char tmp[4];
    size_t k = utf8_encode(cp, tmp);
    if (!k) {
        tmp[0] = (char)cp;
        k = 1;
    }
    cb_put(c, b, tmp, k);
}

bool py_isspace(uint32_t cp) {
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static size_t prev_cp_start(const char *s, size_t i) {
    while (i > 0) {
        i--;
        if (((unsigned char)s[i] & 0xC0) != 0x80) break;
    }
    return i;
}

static bool in_chars(cstr *chars, uint32_t cp) {
    if (!chars) return py_isspace(cp);
    size_t i = 0;
    while (i < chars->len)
        if (chat_next_cp(chars->s, chars->len, &i) == cp) return true;
    return false;
}

cv str_strip(chat_ctx *c, cstr *s, cv chars, bool left, bool right) {
    cstr *set = NULL;
    if (chars.t == CV_STR) set = chars.u.s;
    else if (chars.t != CV_NONE && chars.t != CV_UNDEF)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "strip arg must be None or str");
    size_t a = 0, z = s->len;
    if (left)
        while (a < z) {
            size_t i = a;
            if (!in_chars(set, chat_next_cp(s->s, z, &i))) break;
            a = i;
        }
    if (right)
        while (z > a) {
            size_t p = prev_cp_start(s->s, z), i = p;
            if (!in_chars(set, chat_next_cp(s->s, z, &i))) break;
            z = p;
        }
    if (a == 0 && z == s->len) {
        cv v = {0};
        v.t = CV_STR;
        v.u.s = s;
        return cv_ref(v);
    }
    return cv_str(c, s->s + a, z - a);
}

static bool is_cased(uint32_t cp) {
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
    return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT;
}

static bool title_sep(uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp);
}

/* Unicode's unconditional one-to-many case mappings (SpecialCasing.txt) that Python
 * applies and utf8proc's per-code-point mapping does not: upper and title forms. */
static const struct special_case {
    uint32_t cp;
    uint32_t upper[3], title[3];
} special_cases[] = {
    {0x00DF, {0x53, 0x53}, {0x53, 0x73}},          {0x0149, {0x2BC, 0x4E}, {0x2BC, 0x4E}},
    {0x01F0, {0x4A, 0x30C}, {0x4A, 0x30C}},        {0x0390, {0x399, 0x308, 0x301}, {0x399, 0x308, 0x301}},
    {0x03B0, {0x3A5, 0x308, 0x301}, {0x3A5, 0x308, 0x301}}, {0x0587, {0x535, 0x552}, {0x535, 0x582}},
    {0x1E96, {0x48, 0x331}, {0x48, 0x331}},        {0x1E97, {0x54, 0x308}, {0x54, 0x308}},
    {0x1E98, {0x57, 0x30A}, {0x57, 0x30A}},        {0x1E99, {0x59, 0x30A}, {0x59, 0x30A}},
    {0x1E9A, {0x41, 0x2BE}, {0x41, 0x2BE}},        {0xFB00, {0x46, 0x46}, {0x46, 0x66}},
    {0xFB01, {0x46, 0x49}, {0x46, 0x69}},          {0xFB02, {0x46, 0x4C}, {0x46, 0x6C}},
    {0xFB03, {0x46, 0x46, 0x49}, {0x46, 0x66, 0x69}}, {0xFB04, {0x46, 0x46, 0x4C}, {0x46, 0x66, 0x6C}},
    {0xFB05, {0x53, 0x54}, {0x53, 0x74}},          {0xFB06, {0x53, 0x54}, {0x53, 0x74}},
};

/* Writes the full mapping of cp when it has one (upper or title form); false if not. */
static bool put_special(chat_ctx *c, cbuf *b, uint32_t cp, bool title) {
    for (size_t k = 0; k < sizeof special_cases / sizeof *special_cases; k++)
        if (special_cases[k].cp == cp) {
            const uint32_t *m = title ? special_cases[k].title : special_cases[k].upper;
            for (int j = 0; j < 3 && m[j]; j++) chat_put_cp(c, b, m[j]);
            return true;
        }
    return false;
}

cv str_case(chat_ctx *c, cstr *s, int mode) {
    cbuf *b = cb_new(c);
    size_t i = 0;
    bool start = true;      /* at the beginning of a word */
    while (i < s->len) {
        uint32_t cp = chat_next_cp(s->s, s->len, &i), out;
        utf8proc_int32_t x = (utf8proc_int32_t)cp;
        bool lowering = mode == CASE_LOWER || (mode != CASE_UPPER && !start);
        if (lowering && cp == 0x130) { /* İ lowers to i + combining dot */
            chat_put_cp(c, b, 'i');
            chat_put_cp(c, b, 0x307);
            start = false;
            continue;
        }
        /* the title filter upper-cases a word's first letter; str.title/capitalize title-case it */
        bool title_form = mode == CASE_CAPITALIZE || mode == CASE_TITLE_METHOD;
        if (!lowering && put_special(c, b, cp, title_form)) {
            start = mode == CASE_TITLE_FILTER ? title_sep(cp) : mode == CASE_TITLE_METHOD ? !is_cased(cp) : false;
            continue;
        }
        switch (mode) {
        case CASE_LOWER: out = (uint32_t)utf8proc_tolower(x); break;
        case CASE_UPPER: out = (uint32_t)utf8proc_toupper(x); break;
        case CASE_CAPITALIZE:
            out = (uint32_t)(start ? utf8proc_totitle(x) : utf8proc_tolower(x));
            start = false;
            break;
        case CASE_TITLE_FILTER:
            out = (uint32_t)(start ? utf8proc_toupper(x) : utf8proc_tolower(x));
            start = title_sep(cp);
            break;
        default:
            out = (uint32_t)(start ? utf8proc_totitle(x) : utf8proc_tolower(x));
            start = !is_cased(cp);
            break;
        }
        chat_put_cp(c, b, out);
    }
    return cb_take(c, b);
}

cv str_replace(chat_ctx *c, cstr *s, cstr *old, cstr *rep, int64_t count) {
    cbuf *b = cb_new(c);
    size_t i = 0;
    int64_t done = 0;
    if (old->len == 0) {
        while (count < 0 || done < count) {
            cb_put(c, b, rep->s, rep->len);
            done++;
            if (i >= s->len) break;
            size_t start = i;
            chat_next_cp(s->s, s->len, &i);
            cb_put(c, b, s->s + start, i - start);
        }
        cb_put(c, b, s->s + i, s->len - i);
        return cb_take(c, b);
    }
    while (i < s->len && (count < 0 || done < count)) {
        const char *hit = memmem(s->s + i, s->len - i, old->s, old->len);
        if (!hit) break;
        size_t at = (size_t)(hit - s->s);
        cb_put(c, b, s->s + i, at - i);
        cb_put(c, b, rep->s, rep->len);
        i = at + old->len;
        done++;
    }
    cb_put(c, b, s->s + i, s->len - i);
    return cb_take(c, b);
}

/* Splits on runs of whitespace, as str.split() with no separator. */
static void split_ws(chat_ctx *c, cstr *s, int64_t maxsplit, clist *l) {
    size_t i = 0;
    int64_t done = 0;
    for (;;) {
        size_t j;
        while (i < s->len) {  /* skip whitespace */
            j = i;
            if (!py_isspace(chat_next_cp(s->s, s->len, &j))) break;
            i = j;
        }
        if (i >= s->len) return;
        if (maxsplit >= 0 && done >= maxsplit) { /* the rest, as it is */
            cl_push(c, l, cv_str(c, s->s + i, s->len - i));
            return;
        }
        size_t start = i;
        while (i < s->len) {
            j = i;
            if (py_isspace(chat_next_cp(s->s, s->len, &j))) break;
            i = j;
        }
        cl_push(c, l, cv_str(c, s->s + start, i - start));
        done++;
    }
}

static void rsplit_ws(chat_ctx *c, cstr *s, int64_t maxsplit, clist *l) {
    size_t z = s->len;
    int64_t done = 0;
    for (;;) {
        while (z > 0) {
            size_t p = prev_cp_start(s->s, z), k = p;
            if (!py_isspace(chat_next_cp(s->s, z, &k))) break;
            z = p;
        }
        if (z == 0) break;
        size_t a = z;
        if (maxsplit >= 0 && done >= maxsplit) a = 0; /* the rest, as it is */
        else
            while (a > 0) {
                size_t p = prev_cp_start(s->s, a), k = p;
                if (py_isspace(chat_next_cp(s->s, z, &k))) break;
                a = p;
            }
        cl_push(c, l, cv_str(c, s->s + a, z - a));
        done++;
        if (a == 0) break;
        z = a;
    }
    for (size_t i = 0, j = l->n ? l->n - 1 : 0; i < j; i++, j--) {
        cv t = l->v[i];
        l->v[i] = l->v[j];
        l->v[j] = t;
    }
}

cv str_split(chat_ctx *c, cstr *s, cv sep, int64_t maxsplit, bool right) {
    clist *l = cl_new(c, 0);
    if (sep.t == CV_NONE || sep.t == CV_UNDEF) {
        if (right) rsplit_ws(c, s, maxsplit, l);
        else split_ws(c, s, maxsplit, l);
        return cv_list(l);
    }
    if (sep.t != CV_STR)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "must be str or None, not %s", cv_pytype(sep));
    cstr *d = sep.u.s;
    if (!d->len) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "empty separator");
    if (!right) {
        size_t i = 0;
        int64_t done = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(s->s + i, s->len - i, d->s, d->len) : NULL;
            if (!hit) break;
            size_t at = (size_t)(hit - s->s);
            cl_push(c, l, cv_str(c, s->s + i, at - i));
            i = at + d->len;
            done++;
        }
        cl_push(c, l, cv_str(c, s->s + i, s->len - i));
        return cv_list(l);
    }
    size_t z = s->len;
    int64_t done = 0;
    chat_rfind f;
    chat_rfind_init(c, &f, s->s, s->len, d->s, d->len);
    while (maxsplit < 0 || done < maxsplit) {
        size_t at = chat_rfind_in(&f, z);
        if (at == SIZE_MAX) break;
        cl_push(c, l, cv_str(c, s->s + at + d->len, z - at - d->len));
        z = at;
        done++;
    }
    chat_rfind_done(c, &f);
    cl_push(c, l, cv_str(c, s->s, z));
    for (size_t i = 0, j = l->n - 1; i < j; i++, j--) {
        cv t = l->v[i];
        l->v[i] = l->v[j];
        l->v[j] = t;
    }
    return cv_list(l);
}

static bool slice_bound(chat_ctx *c, cv v, int64_t *out) {
    if (v.t == CV_NONE || v.t == CV_UNDEF) return false;
    if (v.t == CV_INT) *out = v.u.i;
    else if (v.t == CV_BOOL) *out = v.u.b;
    else
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError",
                  "slice indices must be integers or None or have an __index__ method");
    return true;
}

size_t py_slice(chat_ctx *c, int64_t len, cv vstart, cv vstop, cv vstep, int64_t *first, int64_t *stride) {
    int64_t step = 1, start, stop;
    if (slice_bound(c, vstep, &step) && step == 0)
        chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    if (slice_bound(c, vstart, &start)) {
        if (start < 0) start = start < -len ? (step < 0 ? -1 : 0) : start + len;
        else if (start >= len) start = step < 0 ? len - 1 : len;
    } else
        start = step < 0 ? len - 1 : 0;
    if (slice_bound(c, vstop, &stop)) {
        if (stop < 0) stop = stop < -len ? (step < 0 ? -1 : 0) : stop + len;
        else if (stop >= len) stop = step < 0 ? len - 1 : len;
    } else
        stop = step < 0 ? -1 : len;
    *first = start;
    *stride = step;
    if (step > 0) return stop > start ? (size_t)((stop - start - 1) / step + 1) : 0;
    return start > stop ? (size_t)((start - stop - 1) / (-step) + 1) : 0;
}

cv str_slice(chat_ctx *c, cstr *s, cv vstart, cv vstop, cv vstep) {
    int64_t first, step;
    size_t count = py_slice(c, (int64_t)cs_cplen(s), vstart, vstop, vstep, &first, &step);
    if (!count) return cv_str(c, "", 0);
    size_t at = cs_cp_offset(s, (size_t)first);
    if (step == 1) {
        size_t end = cs_cp_offset(s, (size_t)first + count);
        return cv_str(c, s->s + at, end - at);
    }
    cbuf *b = cb_new(c);
    for (size_t k = 0; k < count; k++) {
        size_t i = at;
        chat_next_cp(s->s, s->len, &i);
        cb_put(c, b, s->s + at, i - at);
        if (k + 1 == count) break;
        if (step > 0)
            for (int64_t m = 0; m < step && at < s->len; m++) chat_next_cp(s->s, s->len, &at);
        else
            for (int64_t m = 0; m < -step && at > 0; m++) at = prev_cp_start(s->s, at);
        chat_steps(c, 1);
    }
    return cb_take(c, b);
}

cv str_index_cp(chat_ctx *c, cstr *s, int64_t i, bool *ok) {
    int64_t len = (int64_t)cs_cplen(s);
    if (i < 0) i += len;
    *ok = i >= 0 && i < len;
    if (!*ok) return cv_undef();
    size_t at = cs_cp_offset(s, (size_t)i), end = at;
    chat_next_cp(s->s, s->len, &end);
    return cv_str(c, s->s + at, end - at);
}

static int64_t cp_index_of(cstr *s, size_t byte) {
    int64_t n = 0;
    for (size_t i = 0; i < byte; i++)
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) n++;
    return n;
}

#define RFIND_NAIVE 16 /* needles up to this long are compared backward in place */

static cbuf *reversed(chat_ctx *c, const char *s, size_t n) {
    cbuf *b = cb_new(c);
    cb_put(c, b, s, n);
    for (size_t i = 0, j = n; i + 1 < j; i++, j--) {
        char t = b->p[i];
        b->p[i] = b->p[j - 1];
        b->p[j - 1] = t;
    }
    return b;
}

void chat_rfind_init(chat_ctx *c, chat_rfind *f, const char *s, size_t n, const char *sub, size_t m) {
    *f = (chat_rfind){.s = s, .n = n, .sub = sub, .m = m};
    if (m > RFIND_NAIVE && m <= n) {
        f->rs = reversed(c, s, n);
        f->rsub = reversed(c, sub, m);
    }
}

size_t chat_rfind_in(const chat_rfind *f, size_t z) {
    if (f->m > z) return SIZE_MAX;
    if (f->rs) { /* s[0..z) is rs[n - z..n); its last match is rs's first there */
        const char *hit = memmem(f->rs->p + (f->n - z), z, f->rsub->p, f->m);
        return hit ? f->n - (size_t)(hit - f->rs->p) - f->m : SIZE_MAX;
    }
    for (size_t k = z - f->m + 1; k-- > 0;)
        if (!memcmp(f->s + k, f->sub, f->m)) return k;
    return SIZE_MAX;
}

void chat_rfind_done(chat_ctx *c, chat_rfind *f) {
    if (f->rs) chat_obj_unref(c, &f->rs->h);
    if (f->rsub) chat_obj_unref(c, &f->rsub->h);
    *f = (chat_rfind){0};
}

int64_t str_find(chat_ctx *c, cstr *s, cstr *sub, bool reverse) {
    if (sub->len > s->len) return -1;
    if (!reverse) {
        const char *hit = sub->len ? memmem(s->s, s->len, sub->s, sub->len) : s->s;
        return hit ? cp_index_of(s, (size_t)(hit - s->s)) : -1;
    }
    chat_rfind f;
    chat_rfind_init(c, &f, s->s, s->len, sub->s, sub->len);
    size_t at = chat_rfind_in(&f, s->len);
    chat_rfind_done(c, &f);
    return at == SIZE_MAX ? -1 : cp_index_of(s, at);
}

void html_escape(chat_ctx *c, cbuf *b, const char *s, size_t n) {
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&#34;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        cb_put(c, b, s + run, i - run);
        cb_puts(c, b, rep);
        run = i + 1;
    }
    cb_put(c, b, s + run, n - run);
}

cv str_mark_safe(chat_ctx *c, cv s) {
    if (s.u.s->safe) return s;
    cv r = cv_str(c, s.u.s->s, s.u.s->len);
    r.u.s->safe = true;
    cv_unref(c, s);
    return r;
}

cv str_splitlines(chat_ctx *c, cstr *s) {
    clist *l = cl_new(c, 0);
    size_t start = 0, i = 0;
    while (i < s->len) {
        size_t at = i;
        uint32_t cp = chat_next_cp(s->s, s->len, &i);
        if (cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || (cp >= 0x1c && cp <= 0x1e) || cp == 0x85 ||
            cp == 0x2028 || cp == 0x2029) {
            cl_push(c, l, cv_str(c, s->s + start, at - start));
            if (cp == '\r' && i < s->len && s->s[i] == '\n') i++;
            start = i;
        }
    }
    if (start < s->len) cl_push(c, l, cv_str(c, s->s + start, s->len - start));
    return cv_list(l);
}
