/* Jinja2's builtin filters and tests, as the chat templates use them, with Hugging
 * Face's tojson (json.dumps with ensure_ascii off and key order kept). Filters that are
 * generators in Jinja2 (map, select, reject, selectattr, rejectattr, unique, items,
 * batch, reverse of a list) return one-shot iterators, so `|tojson` and `|length` on
 * them fail exactly as they do there. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_internal.h"

enum {
    FL_ABS, FL_ATTR, FL_BATCH, FL_CAPITALIZE, FL_CENTER, FL_COUNT, FL_D, FL_DEFAULT, FL_DICTSORT, FL_E,
    FL_ESCAPE, FL_FIRST, FL_FLOAT, FL_FORMAT, FL_INDENT, FL_INT, FL_ITEMS, FL_JOIN, FL_LAST, FL_LENGTH,
    FL_LIST, FL_LOWER, FL_MAP, FL_MAX, FL_MIN, FL_REJECT, FL_REJECTATTR, FL_REPLACE, FL_REVERSE, FL_ROUND,
    FL_SAFE, FL_SELECT, FL_SELECTATTR, FL_SORT, FL_STRING, FL_SUM, FL_TITLE, FL_TOJSON, FL_TRIM,
    FL_UNIQUE, FL_UPPER, FL_WORDCOUNT, FL_COUNT_ALL
};
static const char *const filter_names[FL_COUNT_ALL] = {
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
    "escape", "first", "float", "format", "indent", "int", "items", "join", "last", "length",
    "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round",
    "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim",
    "unique", "upper", "wordcount"};

enum {
    TS_BOOLEAN, TS_CALLABLE, TS_DEFINED, TS_DIVISIBLEBY, TS_EQ, TS_EQUALTO, TS_EQSYM, TS_ESCAPED, TS_EVEN,
    TS_FALSE, TS_FILTER, TS_FLOAT, TS_GE, TS_GESYM, TS_GREATERTHAN, TS_GT, TS_GTSYM, TS_IN, TS_INTEGER,
    TS_ITERABLE, TS_LE, TS_LESYM, TS_LESSTHAN, TS_LOWER, TS_LT, TS_LTSYM, TS_MAPPING, TS_NE, TS_NESYM,
    TS_NONE, TS_NUMBER, TS_ODD, TS_SAMEAS, TS_SEQUENCE, TS_STRING, TS_TEST, TS_TRUE, TS_UNDEFINED,
    TS_UPPER, TS_COUNT_ALL
};
static const char *const test_names[TS_COUNT_ALL] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even",
    "false", "filter", "float", "ge", ">=", "greaterthan", "gt", ">", "in", "integer",
    "iterable", "le", "<=", "lessthan", "lower", "lt", "<", "mapping", "ne", "!=",
    "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined",
    "upper"};

int chat_filter_id(const char *name) {
    for (int i = 0; i < FL_COUNT_ALL; i++)
        if (!strcmp(name, filter_names[i])) return i;
    int k = chat_filter_more_id(name);
    return k < 0 ? -1 : FL_COUNT_ALL + k;
}

int chat_test_id(const char *name) {
    for (int i = 0; i < TS_COUNT_ALL; i++)
        if (!strcmp(name, test_names[i])) return i;
    return -1;
}

/* ---- helpers -------------------------------------------------------------------- */

/* The args after the first `skip` positional ones. */
static cargs shift_args(cargs *a, int skip) {
    cargs r = *a;
    r.n = a->n > skip ? a->n - skip : 0;
    r.pos = a->pos + (a->n > skip ? skip : a->n);
    return r;
}

static bool flag(cv v) { return v.t != CV_UNDEF && cv_truthy(v); }

static cv as_str(chat_ctx *c, cv v) { return cv_tostr(c, v); }

static cv undef_msg(chat_ctx *c, const char *msg) {
    cv u = cv_strz(c, msg);
    u.t = CV_UNDEF;
    u.hk = UH_MSG;
    return u;
}

/* Jinja's attribute getter: "a.b.0" looks up a, then b, then item 0. */
cv chat_attr_path(chat_ctx *c, cv item, cv attribute, cv dflt) {
    if (attribute.t == CV_INT) {
        cv r = env_getitem(c, item, attribute);
        if (r.t == CV_UNDEF && dflt.t != CV_UNDEF) {
            cv_unref(c, r);
            r = cv_ref(dflt);
        }
        return r;
    }
    if (attribute.t != CV_STR)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "attribute must be a string, not %s", cv_pytype(attribute));
    cstr *path = attribute.u.s;
    cv cur = cv_ref(item);
    size_t a = 0;
    while (a <= path->len) {
        const char *dot = memchr(path->s + a, '.', path->len - a);
        size_t z = dot ? (size_t)(dot - path->s) : path->len;
        cv key;
        bool digits = z > a;
        for (size_t i = a; i < z; i++)
            if (path->s[i] < '0' || path->s[i] > '9') digits = false;
        if (digits) key = cv_int(strtoll(path->s + a, NULL, 10));
        else key = cv_str(c, path->s + a, z - a);
        cv next = env_getitem(c, cur, key); /* raises when cur is undefined */
        cv_unref(c, key);
        cv_unref(c, cur);
        cur = next;
        if (cur.t == CV_UNDEF && dflt.t != CV_UNDEF) {
            cv_unref(c, cur);
            cur = cv_ref(dflt);
        }
        if (!dot) break;
        a = z + 1;
    }
    return cur;
}

static cv attr_path(chat_ctx *c, cv item, cv attribute) { return chat_attr_path(c, item, attribute, cv_undef()); }

cv chat_lower_key(chat_ctx *c, cv v, bool case_sensitive) {
    if (v.t == CV_STR && !case_sensitive) return str_case(c, v.u.s, CASE_LOWER);
    return cv_ref(v);
}

/* Stable merge sort of idx[0..n) by keys (TypeError for unordered keys). */
static void sort_idx(chat_ctx *c, const cv *keys, size_t *idx, size_t *tmp, size_t n, bool reverse) {
    if (n < 2) return;
    size_t h = n / 2;
    sort_idx(c, keys, idx, tmp, h, reverse);
    sort_idx(c, keys, idx + h, tmp, n - h, reverse);
    size_t i = 0, j = h, o = 0;
    while (i < h && j < n) {
        chat_steps(c, 1);
        int r = reverse ? cv_cmp(c, keys[idx[i]], keys[idx[j]], "<") : cv_cmp(c, keys[idx[j]], keys[idx[i]], "<");
        tmp[o++] = r < 0 ? idx[j++] : idx[i++];
    }
    while (i < h) tmp[o++] = idx[i++];
    while (j < n) tmp[o++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Sorted copy of items by keys (taken: freed here). */
clist *chat_sorted_by(chat_ctx *c, clist *items, clist *keys, bool reverse) {
    size_t n = items->n;
    cbuf *mem = cb_new(c);
    size_t bytes = n * 2 * sizeof(size_t) + 1;
    chat_heap_grow(c, &mem->h, (void **)&mem->p, &mem->cap, bytes, 1);
    size_t *idx = (size_t *)(void *)mem->p, *tmp = idx + n;
    for (size_t i = 0; i < n; i++) idx[i] = i;
    sort_idx(c, keys->v, idx, tmp, n, reverse);
    clist *out = cl_new(c, n);
    for (size_t i = 0; i < n; i++) cl_push(c, out, cv_ref(items->v[idx[i]]));
    chat_obj_unref(c, &mem->h);
    chat_obj_unref(c, &keys->h);
    return out;
}

static cv pair(chat_ctx *c, cv a, cv b) {
    clist *p = cl_new(c, 2);
    p->tuple = true;
    cl_push(c, p, cv_ref(a));
    cl_push(c, p, cv_ref(b));
    return cv_list(p);
}

/* select/reject/selectattr/rejectattr */
static cv filter_select(chat_ctx *c, cv val, cargs *a, bool by_attr, bool keep) {
    clist *items = cv_truthy(val) ? cv_iterate(c, val) : cl_new(c, 0);
    clist *out = cl_new(c, 0);
    cv attribute = by_attr ? arg_get(a, 0, NULL) : cv_undef();
    int first = by_attr ? 1 : 0;
    cv test = arg_get(a, first, NULL);
    cargs rest = shift_args(a, first + 1);
    for (size_t i = 0; i < items->n; i++) {
        chat_steps(c, 1);
        cv x = by_attr ? attr_path(c, items->v[i], attribute) : cv_ref(items->v[i]);
        bool ok;
        if (test.t == CV_UNDEF) ok = cv_truthy(x);
        else {
            if (test.t != CV_STR) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "test name must be a string");
            ok = apply_test_by_name(c, test.u.s, x, &rest);
        }
        cv_unref(c, x);
        if (ok == keep) cl_push(c, out, cv_ref(items->v[i]));
    }
    chat_obj_unref(c, &items->h);
    return cv_iter(c, out, "generator");
}

static cv filter_map(chat_ctx *c, cv val, cargs *a) {
    clist *items = cv_truthy(val) ? cv_iterate(c, val) : cl_new(c, 0);
    clist *out = cl_new(c, items->n);
    cv attribute = arg_get(a, -1, "attribute");
    cv dflt = arg_get(a, -1, "default");
    cv name = arg_get(a, 0, NULL);
    cargs rest = shift_args(a, 1);
    if (attribute.t == CV_UNDEF && name.t != CV_STR)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "map requires a filter name or attribute=");
    for (size_t i = 0; i < items->n; i++) {
        chat_steps(c, 1);
        cv r;
        if (attribute.t != CV_UNDEF) r = chat_attr_path(c, items->v[i], attribute, dflt);
        else
            r = apply_filter_by_name(c, name.u.s, items->v[i], &rest);
        cl_push(c, out, r);
    }
    chat_obj_unref(c, &items->h);
    return cv_iter(c, out, "generator");
}

static cv filter_unique(chat_ctx *c, cv val, cargs *a) {
    bool cs = flag(arg_get(a, 0, "case_sensitive"));
    cv attribute = arg_get(a, 1, "attribute");
    clist *items = cv_iterate(c, val);
    clist *seen = cl_new(c, 0), *out = cl_new(c, 0);
    for (size_t i = 0; i < items->n; i++) {
        cv k0 = attribute.t != CV_UNDEF ? attr_path(c, items->v[i], attribute) : cv_ref(items->v[i]);
        cv k = chat_lower_key(c, k0, cs);
        cv_unref(c, k0);
        bool dup = false;
        for (size_t j = 0; j < seen->n && !dup; j++) {
            chat_steps(c, 1);
            dup = cv_eq(c, seen->v[j], k);
        }
        if (dup) cv_unref(c, k);
        else {
            cl_push(c, seen, k);
            cl_push(c, out, cv_ref(items->v[i]));
        }
    }
    chat_obj_unref(c, &seen->h);
    chat_obj_unref(c, &items->h);
    return cv_iter(c, out, "generator");
}

static cv filter_sort(chat_ctx *c, cv val, cargs *a) {
    bool reverse = flag(arg_get(a, 0, "reverse"));
    bool cs = flag(arg_get(a, 1, "case_sensitive"));
    cv attribute = arg_get(a, 2, "attribute");
    clist *items = cv_iterate(c, val);
    clist *keys = cl_new(c, items->n);
    for (size_t i = 0; i < items->n; i++) {
        cv k0 = attribute.t != CV_UNDEF ? attr_path(c, items->v[i], attribute) : cv_ref(items->v[i]);
        cl_push(c, keys, chat_lower_key(c, k0, cs));
        cv_unref(c, k0);
    }
    clist *out = chat_sorted_by(c, items, keys, reverse);
    chat_obj_unref(c, &items->h);
    return cv_list(out);
}

static cv filter_dictsort(chat_ctx *c, cv val, cargs *a) {
    bool cs = flag(arg_get(a, 0, "case_sensitive"));
    cv by = arg_get(a, 1, "by");
    bool reverse = flag(arg_get(a, 2, "reverse"));
    if (val.t != CV_DICT) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "dictsort expects a mapping");
    bool by_value = by.t == CV_STR && !strcmp(by.u.s->s, "value");
    if (by.t == CV_STR && !by_value && strcmp(by.u.s->s, "key"))
        chat_fail(c, HEARTH_ERR_FORMAT, "FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
    cdict *d = val.u.d;
    clist *items = cl_new(c, d->n), *keys = cl_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
        cl_push(c, items, pair(c, d->k[i], d->v[i]));
        cl_push(c, keys, chat_lower_key(c, by_value ? d->v[i] : d->k[i], cs));
    }
    clist *out = chat_sorted_by(c, items, keys, reverse);
    chat_obj_unref(c, &items->h);
    return cv_list(out);
}

static cv filter_indent(chat_ctx *c, cv val, cargs *a) {
    cv width = arg_get(a, 0, "width");
    bool first = flag(arg_get(a, 1, "first")), blank = flag(arg_get(a, 2, "blank"));
    cv ind;
    if (width.t == CV_STR) ind = cv_ref(width);
    else {
        int64_t w = width.t == CV_UNDEF ? 4 : width.t == CV_INT ? width.u.i : 0;
        if (width.t != CV_UNDEF && width.t != CV_INT)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "indent width must be an integer or a string");
        if (w < 0) w = 0;
        if ((uint64_t)w > c->max_output) w = (int64_t)c->max_output;
        cbuf *b = cb_new(c);
        for (int64_t i = 0; i < w; i++) cb_putc(c, b, ' ');
        ind = cb_take(c, b);
    }
    cv s = as_str(c, val);
    cbuf *b = cb_new(c); /* s + "\n" split as str.splitlines(), as Jinja2 does */
    cb_put(c, b, s.u.s->s, s.u.s->len);
    cb_putc(c, b, '\n');
    cv full = cb_take(c, b);
    cv lines = str_splitlines(c, full.u.s);
    cv_unref(c, full);
    clist *l = lines.u.l;
    cbuf *out = cb_new(c);
    if (first) cb_put(c, out, ind.u.s->s, ind.u.s->len);
    for (size_t i = 0; i < l->n; i++) {
        cstr *line = l->v[i].u.s;
        if (i) {
            cb_putc(c, out, '\n');
            if (blank || line->len) cb_put(c, out, ind.u.s->s, ind.u.s->len);
        }
        cb_put(c, out, line->s, line->len);
    }
    cv_unref(c, lines);
    cv_unref(c, s);
    cv_unref(c, ind);
    return cb_take(c, out);
}

static cv filter_tojson(chat_ctx *c, cv val, cargs *a) {
    tojson_opts o = {.item_sep = ", ", .key_sep = ": "};
    cv indent = arg_get(a, 0, "indent"), seps = arg_get(a, 1, "separators");
    o.ensure_ascii = flag(arg_get(a, -1, "ensure_ascii"));
    o.sort_keys = flag(arg_get(a, 2, "sort_keys"));
    cv ind = cv_undef();
    if (indent.t == CV_INT || indent.t == CV_STR) {
        if (indent.t == CV_STR) ind = cv_ref(indent);
        else {
            int64_t w = indent.u.i < 0 ? 0 : indent.u.i;
            if ((uint64_t)w > c->max_output) w = (int64_t)c->max_output;
            cbuf *b = cb_new(c);
            for (int64_t i = 0; i < w; i++) cb_putc(c, b, ' ');
            ind = cb_take(c, b);
        }
        o.indent = ind.u.s->s;
        o.item_sep = ",";
    } else if (indent.t != CV_UNDEF && indent.t != CV_NONE)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "tojson indent must be an integer or a string");
    if (seps.t == CV_LIST && seps.u.l->n == 2 && seps.u.l->v[0].t == CV_STR && seps.u.l->v[1].t == CV_STR) {
        o.item_sep = seps.u.l->v[0].u.s->s;
        o.key_sep = seps.u.l->v[1].u.s->s;
    } else if (seps.t != CV_UNDEF && seps.t != CV_NONE)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "tojson separators must be a pair of strings");
    cbuf *b = cb_new(c);
    chat_tojson(c, b, val, &o, 0);
    cv_unref(c, ind);
    return cb_take(c, b);
}

static cv filter_join(chat_ctx *c, cv val, cargs *a) {
    cv sep = arg_get(a, 0, "d");
    cv attribute = arg_get(a, 1, "attribute");
    clist *items = cv_iterate(c, val);
    cbuf *b = cb_new(c);
    for (size_t i = 0; i < items->n; i++) {
        if (i && sep.t != CV_UNDEF) cv_write_str(c, b, sep);
        if (attribute.t != CV_UNDEF) {
            cv x = attr_path(c, items->v[i], attribute);
            cv_write_str(c, b, x);
            cv_unref(c, x);
        } else
            cv_write_str(c, b, items->v[i]);
    }
    chat_obj_unref(c, &items->h);
    return cb_take(c, b);
}

/* Jinja2's int filter: int(text, base) for strings, else int(value); on failure
 * int(float(value)); on failure (inf and nan included) the default. */
static cv to_int(chat_ctx *c, cv val, cv dflt, cv base) {
    double f = NAN;
    switch (val.t) {
    case CV_INT: return val;
    case CV_BOOL: return cv_int(val.u.b);
    case CV_FLOAT: f = val.u.f; break;
    case CV_STR: {
        int64_t b = base.t == CV_INT ? base.u.i : base.t == CV_BOOL ? base.u.b : 10;
        if (base.t != CV_UNDEF && base.t != CV_INT && base.t != CV_BOOL)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' object cannot be interpreted as an integer",
                      cv_pytype(base));
        if (b != 0 && (b < 2 || b > 36))
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "int() base must be >= 2 and <= 36, or 0");
        cv t = str_strip(c, val.u.s, cv_none(), true, true);
        int64_t i;
        bool ok = py_parse_int(t.u.s->s, t.u.s->len, (int)b, &i);
        if (!ok && !py_parse_float(t.u.s->s, t.u.s->len, &f)) f = NAN;
        cv_unref(c, t);
        if (ok) return cv_int(i);
        break;
    }
    default: break;
    }
    if (isfinite(f)) {
        if (fabs(f) < 9.2e18) return cv_int((int64_t)f);
        chat_fail(c, HEARTH_ERR_FORMAT, "OverflowError", "integer result does not fit in 64 bits");
    }
    return dflt.t == CV_UNDEF ? cv_int(0) : cv_ref(dflt);
}

static cv to_float(chat_ctx *c, cv val, cv dflt) {
    switch (val.t) {
    case CV_FLOAT: return val;
    case CV_INT: return cv_float((double)val.u.i);
    case CV_BOOL: return cv_float(val.u.b);
    case CV_STR: {
        cv t = str_strip(c, val.u.s, cv_none(), true, true);
        double f;
        bool ok = py_parse_float(t.u.s->s, t.u.s->len, &f);
        cv_unref(c, t);
        if (ok) return cv_float(f);
        break;
    }
    default: break;
    }
    return dflt.t == CV_UNDEF ? cv_float(0.0) : cv_ref(dflt);
}

static cv filter_minmax(chat_ctx *c, cv val, cargs *a, bool want_max) {
    bool cs = flag(arg_get(a, 0, "case_sensitive"));
    cv attribute = arg_get(a, 1, "attribute");
    clist *items = cv_iterate(c, val);
    cv best = cv_undef(), best_key = cv_undef();
    for (size_t i = 0; i < items->n; i++) {
        cv k0 = attribute.t != CV_UNDEF ? attr_path(c, items->v[i], attribute) : cv_ref(items->v[i]);
        cv k = chat_lower_key(c, k0, cs);
        cv_unref(c, k0);
        if (best.t == CV_UNDEF || (want_max ? cv_cmp(c, k, best_key, ">") > 0 : cv_cmp(c, k, best_key, "<") < 0)) {
            cv_unref(c, best_key);
            best_key = k;
            best = items->v[i];
        } else
            cv_unref(c, k);
    }
    best = cv_ref(best);
    cv_unref(c, best_key);
    chat_obj_unref(c, &items->h);
    if (best.t == CV_UNDEF) {
        return undef_msg(c, "No aggregated item, sequence was empty.");
    }
    return best;
}

static cv escape_html(chat_ctx *c, cv val) {
    cv s = as_str(c, val);
    if (s.u.s->safe) return s;
    cbuf *b = cb_new(c);
    html_escape(c, b, s.u.s->s, s.u.s->len);
    cv_unref(c, s);
    return str_mark_safe(c, cb_take(c, b));
}

cv apply_filter(chat_ctx *c, int id, cv val, cargs *a) {
    chat_steps(c, 1);
    switch (id) {
    case FL_ABS:
        if (val.t == CV_INT) return val.u.i == INT64_MIN ? cv_float(9.223372036854775808e18) : cv_int(val.u.i < 0 ? -val.u.i : val.u.i);
        if (val.t == CV_BOOL) return cv_int(val.u.b);
        if (val.t == CV_FLOAT) return cv_float(fabs(val.u.f));
        if (val.t == CV_UNDEF) chat_fail_undef(c, val);
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "bad operand type for abs(): '%s'", cv_pytype(val));
    case FL_ATTR: {
        cv name = arg_get(a, 0, "name");
        if (name.t != CV_STR) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "attribute name must be a string");
        if (val.t == CV_UNDEF) return cv_ref(val);
        if (val.t == CV_DICT) { /* getattr() only: a dict's keys are not attributes */
            bool found;
            cv m = bound_method(c, val, name.u.s, &found);
            if (found) return m;
            cv u = cv_undef();
            u.hk = UH_ATTR;
            u.ho = CV_DICT;
            u.u.s = name.u.s;
            return cv_ref(u);
        }
        return env_getattr(c, val, name.u.s);
    }
    case FL_BATCH: {
        int64_t size = arg_get(a, 0, "linecount").t == CV_INT ? arg_get(a, 0, "linecount").u.i : 0;
        cv fill = arg_get(a, 1, "fill_with");
        if (size <= 0) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "batch size must be positive");
        clist *items = cv_iterate(c, val), *out = cl_new(c, 0), *cur = NULL;
        for (size_t i = 0; i < items->n; i++) {
            if (!cur) cur = cl_new(c, (size_t)size);
            cl_push(c, cur, cv_ref(items->v[i]));
            if ((int64_t)cur->n == size) {
                cl_push(c, out, cv_list(cur));
                cur = NULL;
            }
        }
        if (cur) {
            if (fill.t != CV_UNDEF && fill.t != CV_NONE)
                while ((int64_t)cur->n < size) cl_push(c, cur, cv_ref(fill));
            cl_push(c, out, cv_list(cur));
        }
        chat_obj_unref(c, &items->h);
        return cv_iter(c, out, "generator");
    }
    case FL_CAPITALIZE:
    case FL_LOWER:
    case FL_UPPER:
    case FL_TITLE: {
        cv s = as_str(c, val);
        cv r = str_case(c, s.u.s, id == FL_CAPITALIZE ? CASE_CAPITALIZE : id == FL_LOWER ? CASE_LOWER
                                  : id == FL_UPPER ? CASE_UPPER : CASE_TITLE_FILTER);
        cv_unref(c, s);
        return r;
    }
    case FL_CENTER: {
        cv s = as_str(c, val);
        int64_t width = arg_get(a, 0, "width").t == CV_INT ? arg_get(a, 0, "width").u.i : 80;
        int64_t len = (int64_t)cs_cplen(s.u.s);
        if (width <= len) return s;
        if ((uint64_t)width > c->max_output) width = (int64_t)c->max_output;
        int64_t pad = width - len, left = pad / 2 + (pad & width & 1);
        cbuf *b = cb_new(c);
        for (int64_t i = 0; i < left; i++) cb_putc(c, b, ' ');
        cb_put(c, b, s.u.s->s, s.u.s->len);
        for (int64_t i = 0; i < pad - left; i++) cb_putc(c, b, ' ');
        cv_unref(c, s);
        return cb_take(c, b);
    }
    case FL_COUNT:
    case FL_LENGTH:
        switch (val.t) {
        case CV_UNDEF: return cv_int(0);
        case CV_STR: return cv_int((int64_t)cs_cplen(val.u.s));
        case CV_LIST: return cv_int((int64_t)val.u.l->n);
        case CV_DICT: return cv_int((int64_t)val.u.d->n);
        case CV_LOOP: return cv_int((int64_t)((cloop *)val.u.h)->items->n);
        default: chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "object of type '%s' has no len()", cv_pytype(val));
        }
    case FL_D:
    case FL_DEFAULT: {
        cv dflt = arg_get(a, 0, "default_value");
        bool boolean = flag(arg_get(a, 1, "boolean"));
        if (val.t == CV_UNDEF || (boolean && !cv_truthy(val)))
            return dflt.t == CV_UNDEF && a->n == 0 ? cv_str(c, "", 0) : cv_ref(dflt);
        return cv_ref(val);
    }
    case FL_DICTSORT: return filter_dictsort(c, val, a);
    case FL_E:
    case FL_ESCAPE: return escape_html(c, val);
    case FL_FIRST: {
        if (val.t == CV_ITER) {
            citer *it = (citer *)val.u.h;
            if (it->pos < it->items->n) return cv_ref(it->items->v[it->pos++]);
            return undef_msg(c, "No first item, sequence was empty.");
        }
        clist *items = cv_iterate(c, val);
        cv r = items->n ? cv_ref(items->v[0]) : undef_msg(c, "No first item, sequence was empty.");
        chat_obj_unref(c, &items->h);
        return r;
    }
    case FL_LAST: {
        if (val.t == CV_ITER) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' object is not reversible", cv_pytype(val));
        clist *items = cv_iterate(c, val);
        cv r = items->n ? cv_ref(items->v[items->n - 1]) : undef_msg(c, "No last item, sequence was empty.");
        chat_obj_unref(c, &items->h);
        return r;
    }
    case FL_FLOAT: return to_float(c, val, arg_get(a, 0, "default"));
    case FL_INT: return to_int(c, val, arg_get(a, 0, "default"), arg_get(a, 1, "base"));
    case FL_FORMAT: {
        cv s = as_str(c, val);
        clist *args = cl_new(c, (size_t)a->n);
        args->tuple = true;
        for (int i = 0; i < a->n; i++) cl_push(c, args, cv_ref(a->pos[i]));
        cv r = value_binop(c, OP_MOD, s, cv_list(args));
        chat_obj_unref(c, &args->h);
        cv_unref(c, s);
        return r;
    }
    case FL_INDENT: return filter_indent(c, val, a);
    case FL_ITEMS: {
        if (val.t == CV_UNDEF) return cv_iter(c, cl_new(c, 0), "generator");
        if (val.t != CV_DICT) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "Can only get item pairs from a mapping.");
        clist *out = cl_new(c, val.u.d->n);
        for (size_t i = 0; i < val.u.d->n; i++) cl_push(c, out, pair(c, val.u.d->k[i], val.u.d->v[i]));
        return cv_iter(c, out, "generator");
    }
    case FL_JOIN: return filter_join(c, val, a);
    case FL_LIST: {
        clist *items = cv_iterate(c, val);
        if (!items->tuple && !items->view) return cv_list(items);
        clist *out = cl_new(c, items->n);
        for (size_t i = 0; i < items->n; i++) cl_push(c, out, cv_ref(items->v[i]));
        chat_obj_unref(c, &items->h);
        return cv_list(out);
    }
    case FL_MAP: return filter_map(c, val, a);
    case FL_MAX: return filter_minmax(c, val, a, true);
    case FL_MIN: return filter_minmax(c, val, a, false);
    case FL_REJECT: return filter_select(c, val, a, false, false);
    case FL_REJECTATTR: return filter_select(c, val, a, true, false);
    case FL_SELECT: return filter_select(c, val, a, false, true);
    case FL_SELECTATTR: return filter_select(c, val, a, true, true);
    case FL_REPLACE: {
        cv s = as_str(c, val);
        cv old = as_str(c, arg_get(a, 0, "old")), rep = as_str(c, arg_get(a, 1, "new"));
        cv count = arg_get(a, 2, "count");
        cv r = str_replace(c, s.u.s, old.u.s, rep.u.s, count.t == CV_INT ? count.u.i : -1);
        cv_unref(c, s);
        cv_unref(c, old);
        cv_unref(c, rep);
        return r;
    }
    case FL_REVERSE: {
        if (val.t == CV_STR) return str_slice(c, val.u.s, cv_none(), cv_none(), cv_int(-1));
        if (val.t == CV_UNDEF) chat_fail(c, HEARTH_ERR_FORMAT, "FilterArgumentError", "argument must be iterable");
        clist *items = cv_iterate(c, val), *out = cl_new(c, items->n);
        for (size_t i = items->n; i-- > 0;) cl_push(c, out, cv_ref(items->v[i]));
        chat_obj_unref(c, &items->h);
        if (val.t == CV_ITER) return cv_list(out);
        return cv_iter(c, out, val.t == CV_DICT ? "dict_reversekeyiterator" : "list_reverseiterator");
    }
    case FL_ROUND: {
        int64_t prec = arg_get(a, 0, "precision").t == CV_INT ? arg_get(a, 0, "precision").u.i : 0;
        cv method = arg_get(a, 1, "method");
        double x = val.t == CV_FLOAT ? val.u.f : val.t == CV_INT ? (double)val.u.i : val.t == CV_BOOL ? val.u.b : NAN;
        if (isnan(x) && val.t != CV_FLOAT)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "type %s doesn't define __round__ method", cv_pytype(val));
        double scale = pow(10.0, (double)prec), y = x * scale;
        const char *m = method.t == CV_STR ? method.u.s->s : "common";
        if (!strcmp(m, "ceil")) y = ceil(y);
        else if (!strcmp(m, "floor")) y = floor(y);
        else if (strcmp(m, "common"))
            chat_fail(c, HEARTH_ERR_FORMAT, "FilterArgumentError", "method must be common, ceil or floor");
        else if (val.t != CV_FLOAT) /* round(int, n) stays an int */
            return prec >= 0 ? cv_int(val.t == CV_BOOL ? val.u.b : val.u.i) : cv_int((int64_t)py_round(x, prec));
        else
            return cv_float(py_round(x, prec));
        return cv_float(y / scale);
    }
    case FL_SAFE: return str_mark_safe(c, as_str(c, val));
    case FL_SORT: return filter_sort(c, val, a);
    case FL_STRING: return as_str(c, val);
    case FL_SUM: {
        cv attribute = arg_get(a, 0, "attribute"), start = arg_get(a, 1, "start");
        clist *items = cv_iterate(c, val);
        cv total = start.t == CV_UNDEF ? cv_int(0) : cv_ref(start);
        for (size_t i = 0; i < items->n; i++) {
            cv x = attribute.t != CV_UNDEF ? attr_path(c, items->v[i], attribute) : cv_ref(items->v[i]);
            cv t = value_binop(c, OP_ADD, total, x);
            cv_unref(c, x);
            cv_unref(c, total);
            total = t;
        }
        chat_obj_unref(c, &items->h);
        return total;
    }
    case FL_TOJSON: return filter_tojson(c, val, a);
    case FL_TRIM: {
        cv s = as_str(c, val);
        cv r = str_strip(c, s.u.s, arg_get(a, 0, "chars"), true, true);
        cv_unref(c, s);
        return r;
    }
    case FL_UNIQUE: return filter_unique(c, val, a);
    case FL_WORDCOUNT: {
        cv s = as_str(c, val);
        int64_t n = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s->len;) {
            uint32_t cp = chat_next_cp(s.u.s->s, s.u.s->len, &i);
            bool w = (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_' ||
                     (cp >= 0x80 && !py_isspace(cp));
            if (w && !in) n++;
            in = w;
        }
        cv_unref(c, s);
        return cv_int(n);
    }
    default:
        if (id >= FL_COUNT_ALL) return apply_filter_more(c, id - FL_COUNT_ALL, val, a);
        chat_fail(c, HEARTH_ERR_INTERNAL, "InternalError", "unknown filter %d", id);
    }
}

cv apply_filter_by_name(chat_ctx *c, cstr *name, cv val, cargs *a) {
    int id = chat_filter_id(name->s);
    if (id < 0) chat_fail(c, HEARTH_ERR_FORMAT, "TemplateRuntimeError", "No filter named '%s' found.", name->s);
    return apply_filter(c, id, val, a);
}

/* ---- tests ---------------------------------------------------------------------- */

static int cmp_arg(chat_ctx *c, cv val, cargs *a, const char *op) { return cv_cmp(c, val, arg_get(a, 0, NULL), op); }

static bool is_int(cv v) { return v.t == CV_INT; }

bool apply_test(chat_ctx *c, int id, cv val, cargs *a) {
    chat_steps(c, 1);
    cv x = arg_get(a, 0, NULL);
    switch (id) {
    case TS_BOOLEAN: return val.t == CV_BOOL;
    case TS_CALLABLE: return val.t == CV_MACRO || val.t == CV_FUNC || val.t == CV_UNDEF || val.t == CV_LOOP;
    case TS_DEFINED: return val.t != CV_UNDEF;
    case TS_UNDEFINED: return val.t == CV_UNDEF;
    case TS_DIVISIBLEBY:
        if (!is_int(val) || !is_int(x)) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "divisibleby needs integers");
        if (x.u.i == 0) chat_fail(c, HEARTH_ERR_FORMAT, "ZeroDivisionError", "integer division or modulo by zero");
        return x.u.i == -1 || val.u.i % x.u.i == 0;
    case TS_EQ:
    case TS_EQUALTO:
    case TS_EQSYM: return cv_eq(c, val, x);
    case TS_NE:
    case TS_NESYM: return !cv_eq(c, val, x);
    case TS_ESCAPED: return false;
    case TS_EVEN:
    case TS_ODD:
        if (val.t == CV_UNDEF) chat_fail_undef(c, val);
        if (!is_int(val) && val.t != CV_BOOL)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "unsupported operand type(s) for %%: '%s' and 'int'",
                      cv_pytype(val));
        return ((val.t == CV_INT ? val.u.i : val.u.b) & 1) == (id == TS_ODD);
    case TS_FALSE: return val.t == CV_BOOL && !val.u.b;
    case TS_TRUE: return val.t == CV_BOOL && val.u.b;
    case TS_FILTER: return val.t == CV_STR && chat_filter_id(val.u.s->s) >= 0;
    case TS_TEST: return val.t == CV_STR && chat_test_id(val.u.s->s) >= 0;
    case TS_FLOAT: return val.t == CV_FLOAT;
    case TS_INTEGER: return val.t == CV_INT;
    case TS_NUMBER: return val.t == CV_INT || val.t == CV_FLOAT || val.t == CV_BOOL;
    case TS_GE:
    case TS_GESYM: return cmp_arg(c, val, a, ">=") >= 0;
    case TS_GT:
    case TS_GTSYM:
    case TS_GREATERTHAN: return cmp_arg(c, val, a, ">") > 0;
    case TS_LE:
    case TS_LESYM: return cmp_arg(c, val, a, "<=") <= 0;
    case TS_LT:
    case TS_LTSYM:
    case TS_LESSTHAN: return cmp_arg(c, val, a, "<") < 0;
    case TS_IN: return value_contains(c, x, val);
    case TS_ITERABLE:
        return val.t == CV_UNDEF || val.t == CV_STR || val.t == CV_LIST || val.t == CV_DICT || val.t == CV_ITER ||
               val.t == CV_LOOP;
    case TS_SEQUENCE: return val.t == CV_UNDEF || val.t == CV_STR || val.t == CV_LIST || val.t == CV_DICT;
    case TS_MAPPING: return val.t == CV_DICT;
    case TS_NONE: return val.t == CV_NONE;
    case TS_STRING: return val.t == CV_STR;
    case TS_SAMEAS:
        if (val.t != x.t) return false;
        if (val.t == CV_BOOL) return val.u.b == x.u.b;
        if (val.t == CV_INT) return val.u.i == x.u.i;
        if (val.t == CV_NONE || val.t == CV_UNDEF) return true;
        if (val.t == CV_FLOAT) return false;
        return val.u.h == x.u.h;
    case TS_LOWER:
    case TS_UPPER: {
        cv s = as_str(c, val);
        bool cased = false, ok = true;
        for (size_t i = 0; i < s.u.s->len && ok; i++) {
            char ch = s.u.s->s[i];
            if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
                cased = true;
                ok = id == TS_LOWER ? (ch >= 'a' && ch <= 'z') : (ch >= 'A' && ch <= 'Z');
            }
        }
        cv_unref(c, s);
        return ok && cased;
    }
    default: chat_fail(c, HEARTH_ERR_INTERNAL, "InternalError", "unknown test %d", id);
    }
}

bool apply_test_by_name(chat_ctx *c, cstr *name, cv val, cargs *a) {
    int id = chat_test_id(name->s);
    if (id < 0) chat_fail(c, HEARTH_ERR_FORMAT, "TemplateRuntimeError", "No test named '%s' found.", name->s);
    return apply_test(c, id, val, a);
}
