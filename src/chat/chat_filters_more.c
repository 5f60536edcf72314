/* Jinja2's less common builtin filters, as Jinja2 3.1 defines them: groupby (tuples
 * with .grouper and .list), slice, truncate, urlencode, xmlattr, forceescape,
 * filesizeformat and pprint (values whose repr fits on one 80-column line). Filters
 * that need randomness or a text-wrapping engine (random, wordwrap, urlize,
 * striptags) are not here: they fail as unknown filters. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"

enum { FM_FILESIZEFORMAT, FM_FORCEESCAPE, FM_GROUPBY, FM_PPRINT, FM_SLICE, FM_TRUNCATE, FM_URLENCODE,
       FM_XMLATTR, FM_COUNT };
static const char *const more_names[FM_COUNT] = {"filesizeformat", "forceescape", "groupby", "pprint",
                                                 "slice", "truncate", "urlencode", "xmlattr"};

int chat_filter_more_id(const char *name) {
    for (int i = 0; i < FM_COUNT; i++)
        if (!strcmp(name, more_names[i])) return i;
    return -1;
}

static int64_t int_arg(chat_ctx *c, cv v, int64_t dflt, const char *what) {
    if (v.t == CV_UNDEF || v.t == CV_NONE) return dflt;
    if (v.t == CV_INT) return v.u.i;
    if (v.t == CV_BOOL) return v.u.b;
    chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%s must be an integer, not %s", what, cv_pytype(v));
}

/* groupby(attribute, default=none, case_sensitive=false): sorted by the key, one
 * (grouper, list) tuple per run of equal keys; the grouper is the first item's key. */
static cv groupby(chat_ctx *c, cv val, cargs *a) {
    cv attribute = arg_get(a, 0, "attribute"), dflt = arg_get(a, 1, "default");
    cv csv = arg_get(a, 2, "case_sensitive");
    bool cs = csv.t != CV_UNDEF && cv_truthy(csv);
    if (dflt.t == CV_NONE) dflt = cv_undef();
    clist *items = cv_iterate(c, val), *keys = cl_new(c, items->n), *keys2 = cl_new(c, items->n);
    for (size_t i = 0; i < items->n; i++) {
        cv k0 = chat_attr_path(c, items->v[i], attribute, dflt);
        cv k = chat_lower_key(c, k0, cs);
        cv_unref(c, k0);
        cl_push(c, keys, cv_ref(k));
        cl_push(c, keys2, k);
    }
    /* sort (item, key) pairs together: sort indexes by key, then read both in order */
    clist *pairs = cl_new(c, items->n);
    for (size_t i = 0; i < items->n; i++) {
        clist *p = cl_new(c, 2);
        cl_push(c, p, cv_ref(items->v[i]));
        cl_push(c, p, cv_ref(keys2->v[i]));
        cl_push(c, pairs, cv_list(p));
    }
    chat_obj_unref(c, &keys2->h);
    clist *sorted = chat_sorted_by(c, pairs, keys, false);
    chat_obj_unref(c, &pairs->h);
    clist *out = cl_new(c, 0), *cur = NULL;
    cv cur_key = cv_undef();
    for (size_t i = 0; i < sorted->n; i++) {
        chat_steps(c, 1);
        clist *p = sorted->v[i].u.l;
        if (!cur || !cv_eq(c, cur_key, p->v[1])) {
            clist *g = cl_new(c, 2);
            g->tuple = g->group = true;
            cur_key = p->v[1];
            cl_push(c, g, cs ? cv_ref(cur_key) : chat_attr_path(c, p->v[0], attribute, dflt));
            cur = cl_new(c, 0);
            cl_push(c, g, cv_list(cur));
            cl_push(c, out, cv_list(g));
        }
        cl_push(c, cur, cv_ref(p->v[0]));
    }
    chat_obj_unref(c, &sorted->h);
    chat_obj_unref(c, &items->h);
    return cv_list(out);
}

static cv slice_filter(chat_ctx *c, cv val, cargs *a) {
    int64_t slices = int_arg(c, arg_get(a, 0, "slices"), 0, "slices");
    cv fill = arg_get(a, 1, "fill_with");
    if (slices <= 0) chat_fail(c, HEARTH_ERR_FORMAT, "ZeroDivisionError", "integer division or modulo by zero");
    if (slices > 100000) chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "too many slices");
    clist *seq = cv_iterate(c, val), *out = cl_new(c, (size_t)slices);
    int64_t len = (int64_t)seq->n, per = len / slices, extra = len % slices, offset = 0;
    for (int64_t k = 0; k < slices; k++) {
        chat_steps(c, 1);
        int64_t start = offset + k * per;
        if (k < extra) offset++;
        int64_t end = offset + (k + 1) * per;
        clist *part = cl_new(c, (size_t)(end - start + 1));
        for (int64_t i = start; i < end; i++) cl_push(c, part, cv_ref(seq->v[i]));
        if (fill.t != CV_UNDEF && fill.t != CV_NONE && k >= extra) cl_push(c, part, cv_ref(fill));
        cl_push(c, out, cv_list(part));
    }
    chat_obj_unref(c, &seq->h);
    return cv_iter(c, out, "generator");
}

static cv truncate(chat_ctx *c, cv val, cargs *a) {
    if (val.t != CV_STR) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "object of type '%s' has no len()", cv_pytype(val));
    int64_t length = int_arg(c, arg_get(a, 0, "length"), 255, "length");
    cv kw = arg_get(a, 1, "killwords"), endv = arg_get(a, 2, "end");
    int64_t leeway = int_arg(c, arg_get(a, 3, "leeway"), 5, "leeway");
    cstr *s = val.u.s, *end = endv.t == CV_UNDEF ? NULL : want_str(c, endv, "end");
    int64_t end_len = end ? (int64_t)cs_cplen(end) : 3, len = (int64_t)cs_cplen(s);
    if (length < end_len)
        chat_fail(c, HEARTH_ERR_FORMAT, "AssertionError", "expected length >= %lld, got %lld", (long long)end_len,
                  (long long)length);
    if (leeway < 0) chat_fail(c, HEARTH_ERR_FORMAT, "AssertionError", "expected leeway >= 0, got %lld", (long long)leeway);
    if (len <= length || len - length <= leeway) return cv_ref(val); /* len <= length + leeway, without overflow */
    size_t cut = cs_cp_offset(s, (size_t)(length - end_len));
    if (!(kw.t != CV_UNDEF && cv_truthy(kw))) { /* s[:cut].rsplit(" ", 1)[0] */
        size_t k = cut;
        while (k > 0 && s->s[k - 1] != ' ') k--;
        if (k > 0) cut = k - 1;
    }
    cbuf *b = cb_new(c);
    cb_put(c, b, s->s, cut);
    if (end) cb_put(c, b, end->s, end->len);
    else cb_puts(c, b, "...");
    return cb_take(c, b);
}

/* urllib.parse.quote: letters, digits and _.-~ stay, and '/' unless for a query. */
static void url_quote(chat_ctx *c, cbuf *b, cv v, bool for_qs) {
    cv s = cv_tostr(c, v);
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.u.s->len; i++) {
        unsigned char ch = (unsigned char)s.u.s->s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || strchr("_.-~", ch) ||
            (ch == '/' && !for_qs))
            cb_putc(c, b, (char)ch);
        else if (ch == ' ' && for_qs)
            cb_putc(c, b, '+');
        else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            cb_put(c, b, e, 3);
        }
    }
    cv_unref(c, s);
}

static cv urlencode(chat_ctx *c, cv val) {
    cbuf *b = cb_new(c);
    if (val.t == CV_STR) {
        url_quote(c, b, val, false);
        return cb_take(c, b);
    }
    clist *pairs;
    if (val.t == CV_DICT) {
        pairs = cl_new(c, val.u.d->n);
        for (size_t i = 0; i < val.u.d->n; i++) {
            clist *p = cl_new(c, 2);
            cl_push(c, p, cv_ref(val.u.d->k[i]));
            cl_push(c, p, cv_ref(val.u.d->v[i]));
            cl_push(c, pairs, cv_list(p));
        }
    } else if (val.t == CV_LIST || val.t == CV_ITER)
        pairs = cv_iterate(c, val);
    else {
        url_quote(c, b, val, false);
        return cb_take(c, b);
    }
    for (size_t i = 0; i < pairs->n; i++) {
        cv p = pairs->v[i];
        if (p.t != CV_LIST || p.u.l->n != 2)
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "urlencode needs a mapping or (key, value) pairs");
        if (i) cb_putc(c, b, '&');
        url_quote(c, b, p.u.l->v[0], true);
        cb_putc(c, b, '=');
        url_quote(c, b, p.u.l->v[1], true);
    }
    chat_obj_unref(c, &pairs->h);
    return cb_take(c, b);
}

static cv xmlattr(chat_ctx *c, cv val, cargs *a) {
    cv auto_v = arg_get(a, 0, "autospace");
    bool autospace = auto_v.t == CV_UNDEF || cv_truthy(auto_v);
    if (val.t != CV_DICT) chat_fail(c, HEARTH_ERR_FORMAT, "AttributeError", "'%s' object has no attribute 'items'", cv_pytype(val));
    cbuf *b = cb_new(c);
    bool any = false;
    for (size_t i = 0; i < val.u.d->n; i++) {
        cv v = val.u.d->v[i];
        if (v.t == CV_NONE || v.t == CV_UNDEF) continue;
        cv k = cv_tostr(c, val.u.d->k[i]);
        for (size_t j = 0; j < k.u.s->len; j++)
            if (strchr(" \t\n\r\f\v/>=", k.u.s->s[j]))
                chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Invalid character in attribute name: '%s'", k.u.s->s);
        cb_puts(c, b, any || autospace ? " " : "");
        any = true;
        html_escape(c, b, k.u.s->s, k.u.s->len);
        cb_puts(c, b, "=\"");
        cv vs = cv_tostr(c, v);
        if (vs.u.s->safe) cb_put(c, b, vs.u.s->s, vs.u.s->len);
        else html_escape(c, b, vs.u.s->s, vs.u.s->len);
        cb_putc(c, b, '"');
        cv_unref(c, vs);
        cv_unref(c, k);
    }
    return cb_take(c, b);
}

static cv filesizeformat(chat_ctx *c, cv val, cargs *a) {
    cv bin = arg_get(a, 0, "binary");
    bool binary = bin.t != CV_UNDEF && cv_truthy(bin);
    double bytes;
    if (val.t == CV_INT || val.t == CV_BOOL || val.t == CV_FLOAT)
        bytes = val.t == CV_FLOAT ? val.u.f : val.t == CV_INT ? (double)val.u.i : val.u.b;
    else if (val.t != CV_STR || !py_parse_float(val.u.s->s, val.u.s->len, &bytes))
        chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "could not convert %s to float", cv_pytype(val));
    static const char *const dec[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
    static const char *const bi[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
    double base = binary ? 1024 : 1000;
    if (bytes == 1) return cv_strz(c, "1 Byte");
    if (bytes < base) {
        if (!isfinite(bytes)) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "cannot convert float NaN to integer");
        return cv_strf(c, "%.0f Bytes", trunc(bytes));
    }
    double unit = base;
    int i;
    for (i = 0; i < 8; i++) {
        unit = pow(base, i + 2);
        if (bytes < unit) break;
    }
    if (i == 8) i = 7;
    return cv_strf(c, "%.1f %s", base * bytes / unit, (binary ? bi : dec)[i]);
}

/* pprint.pformat of a value that fits one line: repr with dict keys sorted. */
static cv sorted_copy(chat_ctx *c, cv v, int depth) {
    if (depth > 100) chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "structure nested too deeply to print");
    if (v.t == CV_LIST) {
        clist *l = cl_new(c, v.u.l->n);
        l->tuple = v.u.l->tuple;
        for (size_t i = 0; i < v.u.l->n; i++) cl_push(c, l, sorted_copy(c, v.u.l->v[i], depth + 1));
        return cv_list(l);
    }
    if (v.t != CV_DICT) return cv_ref(v);
    clist *idx = cl_new(c, v.u.d->n), *keys = cl_new(c, v.u.d->n);
    for (size_t i = 0; i < v.u.d->n; i++) {
        cl_push(c, idx, cv_int((int64_t)i));
        cl_push(c, keys, cv_ref(v.u.d->k[i]));
    }
    clist *order = chat_sorted_by(c, idx, keys, false);
    chat_obj_unref(c, &idx->h);
    cdict *d = cd_new(c, CV_DICT);
    for (size_t i = 0; i < order->n; i++) {
        size_t k = (size_t)order->v[i].u.i;
        cd_set(c, d, cv_ref(v.u.d->k[k]), sorted_copy(c, v.u.d->v[k], depth + 1));
    }
    chat_obj_unref(c, &order->h);
    return cv_dict(d);
}

static cv pprint(chat_ctx *c, cv val) {
    cv s = sorted_copy(c, val, 0);
    cbuf *b = cb_new(c);
    cv_write_repr(c, b, s, 0);
    cv_unref(c, s);
    cv r = cb_take(c, b);
    if (cs_cplen(r.u.s) > 80 && (val.t == CV_LIST || val.t == CV_DICT || val.t == CV_STR))
        chat_fail(c, HEARTH_ERR_FORMAT, "NotImplementedError", "pprint of a value longer than one line is not supported");
    return r;
}

cv apply_filter_more(chat_ctx *c, int id, cv val, cargs *a) {
    switch (id) {
    case FM_FILESIZEFORMAT: return filesizeformat(c, val, a);
    case FM_FORCEESCAPE: {
        cv s = cv_tostr(c, val);
        cbuf *b = cb_new(c);
        html_escape(c, b, s.u.s->s, s.u.s->len);
        cv_unref(c, s);
        return str_mark_safe(c, cb_take(c, b));
    }
    case FM_GROUPBY: return groupby(c, val, a);
    case FM_PPRINT: return pprint(c, val);
    case FM_SLICE: return slice_filter(c, val, a);
    case FM_TRUNCATE: return truncate(c, val, a);
    case FM_URLENCODE: return urlencode(c, val);
    case FM_XMLATTR: return xmlattr(c, val, a);
    default: chat_fail(c, HEARTH_ERR_INTERNAL, "InternalError", "unknown filter %d", id);
    }
}
