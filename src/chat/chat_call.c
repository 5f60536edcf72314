/* Attribute and item access, methods of strings, dicts, lists and the loop object,
 * the global functions (range, namespace, dict, raise_exception, strftime_now) and the
 * arithmetic and `in` operators, all with the semantics of Jinja2's immutable sandbox:
 * methods that would mutate a list or dict raise SecurityError, ranges are capped. */
#define _GNU_SOURCE /* memmem */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/checked.h"
#include "chat/chat_internal.h"

#define MAX_RANGE 100000

enum { G_RANGE, G_NAMESPACE, G_DICT, G_RAISE, G_STRFTIME, G_COUNT };
static const char *const global_names[G_COUNT] = {"range", "namespace", "dict", "raise_exception", "strftime_now"};

int chat_global_id(const char *name) {
    for (int i = 0; i < G_COUNT; i++)
        if (!strcmp(name, global_names[i])) return i;
    return -1;
}

cv global_value(chat_ctx *c, int id) {
    cfunc *fn = chat_heap_new(c, CV_FUNC, sizeof(cfunc));
    fn->id = id;
    cv v = {0};
    v.t = CV_FUNC;
    v.u.h = &fn->h;
    return v;
}

/* ---- sandbox ------------------------------------------------------------------ */

static bool name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(name, *list)) return true;
    return false;
}

static const char *const dict_methods[] = {"get", "items", "keys", "values", "copy", NULL};
static const char *const dict_unsafe[] = {"pop", "popitem", "update", "setdefault", "clear", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};
static const char *const list_unsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear", NULL};
static const char *const loop_methods[] = {"cycle", "changed", NULL};


static bool has_method(cv obj, const char *name) {
    switch (obj.t) {
    case CV_STR: return str_has_method(name);
    case CV_DICT: return name_in(name, dict_methods);
    case CV_LIST: return name_in(name, list_methods);
    case CV_LOOP: return name_in(name, loop_methods);
    default: return false;
    }
}

/* An attribute the sandbox refuses is an undefined value that raises SecurityError
 * when used (printing it gives nothing, `is defined` is false), as in Jinja2. */
static cv unsafe_undefined(chat_ctx *c, cv obj, const char *name) {
    cv u = cv_strf(c, "access to attribute '%s' of '%s' object is unsafe.", name, cv_pytype(obj));
    u.t = CV_UNDEF;
    u.hk = UH_UNSAFE;
    return u;
}

static bool is_unsafe(cv obj, const char *name) {
    return (obj.t == CV_LIST && !obj.u.l->tuple && name_in(name, list_unsafe)) ||
           (obj.t == CV_DICT && name_in(name, dict_unsafe));
}

cv bound_method(chat_ctx *c, cv self, cstr *name, bool *found) {
    if (is_unsafe(self, name->s)) {
        *found = true;
        return unsafe_undefined(c, self, name->s);
    }
    *found = has_method(self, name->s);
    if (!*found) return cv_undef();
    cfunc *fn = chat_heap_new(c, CV_FUNC, sizeof(cfunc));
    fn->id = -1;
    fn->self = cv_ref(self);
    fn->name.t = CV_STR;
    fn->name.u.s = name;
    fn->name = cv_ref(fn->name);
    cv v = {0};
    v.t = CV_FUNC;
    v.u.h = &fn->h;
    return v;
}

/* ---- attribute and item access ------------------------------------------------- */

static cv undef_attr(cv obj, cstr *name) {
    cv u = cv_undef();
    u.hk = UH_ATTR;
    u.ho = obj.t;
    u.u.s = name;
    return cv_ref(u);
}

static cv undef_msg(chat_ctx *c, const char *msg) {
    cv u = cv_strz(c, msg);
    u.t = CV_UNDEF;
    u.hk = UH_MSG;
    return u;
}

static cv loop_attr(chat_ctx *c, cloop *lp, const char *name, bool *found) {
    size_t i = lp->i, n = lp->items->n;
    *found = true;
    if (!strcmp(name, "index")) return cv_int((int64_t)i + 1);
    if (!strcmp(name, "index0")) return cv_int((int64_t)i);
    if (!strcmp(name, "revindex")) return cv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return cv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return cv_bool(i == 0);
    if (!strcmp(name, "last")) return cv_bool(i + 1 == n);
    if (!strcmp(name, "length")) return cv_int((int64_t)n);
    if (!strcmp(name, "depth")) return cv_int(lp->depth);
    if (!strcmp(name, "depth0")) return cv_int(lp->depth - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? cv_ref(lp->items->v[i - 1]) : undef_msg(c, "there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? cv_ref(lp->items->v[i + 1]) : undef_msg(c, "there is no next item");
    *found = false;
    return cv_undef();
}

cv env_getattr(chat_ctx *c, cv obj, cstr *name) {
    bool found;
    switch (obj.t) {
    case CV_UNDEF: chat_fail_undef(c, obj);
    case CV_DICT: {
        cv m = bound_method(c, obj, name, &found);
        if (found) return m;
        cv *v = cd_gets(obj.u.d, name->s, name->len);
        return v ? cv_ref(*v) : undef_attr(obj, name);
    }
    case CV_NS: {
        cv *v = cd_gets(obj.u.d, name->s, name->len);
        return v ? cv_ref(*v) : undef_attr(obj, name);
    }
    case CV_LOOP: {
        cv v = loop_attr(c, (cloop *)obj.u.h, name->s, &found);
        if (found) return v;
        break;
    }
    case CV_LIST:
        if (obj.u.l->group && (!strcmp(name->s, "grouper") || !strcmp(name->s, "list")))
            return cv_ref(obj.u.l->v[name->s[0] == 'l']);
        break;
    default: break;
    }
    cv m = bound_method(c, obj, name, &found);
    return found ? m : undef_attr(obj, name);
}

cv env_getitem(chat_ctx *c, cv obj, cv key) {
    switch (obj.t) {
    case CV_UNDEF: chat_fail_undef(c, obj);
    case CV_DICT: {
        cv *v = cd_get(c, obj.u.d, key);
        if (v) return cv_ref(*v);
        break;
    }
    case CV_LIST:
    case CV_STR:
        if (key.t == CV_INT || key.t == CV_BOOL) {
            int64_t i = key.t == CV_INT ? key.u.i : key.u.b;
            if (obj.t == CV_STR) {
                bool ok;
                cv r = str_index_cp(c, obj.u.s, i, &ok);
                if (ok) return r;
            } else {
                int64_t n = (int64_t)obj.u.l->n;
                if (i < 0) i += n;
                if (i >= 0 && i < n) return cv_ref(obj.u.l->v[i]);
            }
            cv u = cv_undef();
            u.hk = UH_ELEM_INT;
            u.ho = obj.t;
            u.u.i = key.t == CV_INT ? key.u.i : key.u.b;
            return u;
        }
        break;
    default: break;
    }
    if (key.t == CV_STR) return env_getattr(c, obj, key.u.s);
    if (key.t == CV_INT) {
        cv u = cv_undef();
        u.hk = UH_ELEM_INT;
        u.ho = obj.t;
        u.u.i = key.u.i;
        return u;
    }
    return cv_undef();
}

/* ---- methods -------------------------------------------------------------------- */

cstr *want_str(chat_ctx *c, cv v, const char *what) {
    if (v.t != CV_STR)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%s must be str, not %s", what, cv_pytype(v));
    return v.u.s;
}

int64_t want_int(chat_ctx *c, cv v, int64_t dflt, const char *what) {
    if (v.t == CV_UNDEF || v.t == CV_NONE) return dflt;
    if (v.t == CV_INT) return v.u.i;
    if (v.t == CV_BOOL) return v.u.b;
    chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%s must be an integer, not %s", what, cv_pytype(v));
}

static cv dict_method(chat_ctx *c, cdict *d, const char *m, cargs *a) {
    if (!strcmp(m, "get")) {
        cv *v = cd_get(c, d, arg_get(a, 0, NULL));
        if (v) return cv_ref(*v);
        cv dflt = arg_get(a, 1, NULL);
        return dflt.t == CV_UNDEF ? cv_none() : cv_ref(dflt);
    }
    if (!strcmp(m, "copy")) {
        cdict *o = cd_new(c, CV_DICT);
        for (size_t i = 0; i < d->n; i++) cd_set(c, o, cv_ref(d->k[i]), cv_ref(d->v[i]));
        return cv_dict(o);
    }
    clist *l = cl_new(c, d->n);
    l->view = m[0] == 'k' ? VIEW_KEYS : m[0] == 'v' ? VIEW_VALUES : VIEW_ITEMS;
    for (size_t i = 0; i < d->n; i++) {
        if (m[0] == 'k') cl_push(c, l, cv_ref(d->k[i]));
        else if (m[0] == 'v') cl_push(c, l, cv_ref(d->v[i]));
        else {
            clist *pair = cl_new(c, 2);
            pair->tuple = true;
            cl_push(c, pair, cv_ref(d->k[i]));
            cl_push(c, pair, cv_ref(d->v[i]));
            cl_push(c, l, cv_list(pair));
        }
    }
    chat_steps(c, d->n);
    return cv_list(l);
}

cv call_method(chat_ctx *c, cv self, cstr *name, cargs *a, bool *found) {
    if (is_unsafe(self, name->s)) chat_fail_undef(c, unsafe_undefined(c, self, name->s));
    *found = has_method(self, name->s);
    if (!*found) return cv_undef();
    const char *m = name->s;
    switch (self.t) {
    case CV_STR: return str_method(c, self.u.s, m, a);
    case CV_DICT: return dict_method(c, self.u.d, m, a);
    case CV_LIST: {
        clist *l = self.u.l;
        if (!strcmp(m, "copy")) {
            clist *o = cl_new(c, l->n);
            for (size_t i = 0; i < l->n; i++) cl_push(c, o, cv_ref(l->v[i]));
            return cv_list(o);
        }
        cv x = arg_get(a, 0, NULL);
        int64_t count = 0;
        for (size_t i = 0; i < l->n; i++)
            if (cv_eq(c, l->v[i], x)) {
                if (m[0] == 'i') return cv_int((int64_t)i);
                count++;
            }
        if (m[0] == 'i') chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "value is not in list");
        return cv_int(count);
    }
    case CV_LOOP: {
        cloop *lp = (cloop *)self.u.h;
        if (!strcmp(m, "cycle")) {
            if (!a->n) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "no items for cycling given");
            return cv_ref(a->pos[lp->i % (size_t)a->n]);
        }
        clist *vals = cl_new(c, (size_t)a->n);
        vals->tuple = true;
        for (int i = 0; i < a->n; i++) cl_push(c, vals, cv_ref(a->pos[i]));
        cv now = cv_list(vals);
        bool changed = !lp->changed_set || !cv_eq(c, lp->changed_last, now);
        cv_unref(c, lp->changed_last);
        lp->changed_last = now;
        lp->changed_set = true;
        return cv_bool(changed);
    }
    default: *found = false; return cv_undef();
    }
}

/* ---- globals -------------------------------------------------------------------- */

static void merge_into(chat_ctx *c, cdict *d, cargs *a) {
    for (int i = 0; i < a->n; i++) {
        cv src = a->pos[i];
        if (src.t == CV_LIST || src.t == CV_ITER) { /* dict([(k, v), ...]) */
            clist *pairs = cv_iterate(c, src);
            for (size_t k = 0; k < pairs->n; k++) {
                cv p = pairs->v[k];
                if ((p.t != CV_LIST && p.t != CV_STR) || (p.t == CV_LIST ? p.u.l->n : cs_cplen(p.u.s)) != 2)
                    chat_fail(c, HEARTH_ERR_FORMAT, "ValueError",
                              "dictionary update sequence element #%zu has the wrong length", k);
                clist *kv = cv_iterate(c, p);
                cd_set(c, d, cv_ref(kv->v[0]), cv_ref(kv->v[1]));
                chat_obj_unref(c, &kv->h);
            }
            chat_obj_unref(c, &pairs->h);
            continue;
        }
        if (src.t != CV_DICT && src.t != CV_NS)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "expected a mapping, got %s", cv_pytype(src));
        for (size_t k = 0; k < src.u.d->n; k++) cd_set(c, d, cv_ref(src.u.d->k[k]), cv_ref(src.u.d->v[k]));
    }
    for (int i = 0; i < a->nk; i++) cd_set(c, d, cv_strz(c, a->kname[i]), cv_ref(a->kval[i]));
}

static cv do_strftime(chat_ctx *c, cv fmt) {
    if (fmt.t != CV_STR) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "strftime_now() argument must be str");
    if (!fmt.u.s->len) return cv_str(c, "", 0);
    /* Python formats a naive datetime: %Z and %z give nothing */
    cbuf *f = cb_new(c);
    for (size_t i = 0; i < fmt.u.s->len; i++) {
        char ch = fmt.u.s->s[i];
        if (ch == '%' && i + 1 < fmt.u.s->len) {
            char nx = fmt.u.s->s[++i];
            if (nx == 'Z' || nx == 'z') continue;
            cb_putc(c, f, ch);
            ch = nx;
        }
        cb_putc(c, f, ch);
    }
    cb_putc(c, f, 0);
    for (size_t cap = 256; f->n > 1 && cap <= 65536; cap *= 4) {
        cbuf *b = cb_new(c);
        chat_heap_grow(c, &b->h, (void **)&b->p, &b->cap, cap, 1);
        size_t n = strftime(b->p, cap, f->p, &c->now);
        if (n) {
            b->n = n;
            chat_obj_unref(c, &f->h);
            return cb_take(c, b);
        }
        chat_obj_unref(c, &b->h);
    }
    chat_obj_unref(c, &f->h);
    return cv_str(c, "", 0);
}

cv call_global(chat_ctx *c, int id, cargs *a) {
    switch (id) {
    case G_RANGE: {
        if (a->nk || a->n < 1 || a->n > 3)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "range expected 1 to 3 integer arguments");
        int64_t start = 0, stop, step = 1;
        if (a->n == 1) stop = want_int(c, a->pos[0], 0, "range() argument");
        else {
            start = want_int(c, a->pos[0], 0, "range() argument");
            stop = want_int(c, a->pos[1], 0, "range() argument");
            if (a->n == 3) step = want_int(c, a->pos[2], 1, "range() argument");
        }
        if (step == 0)
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "range() arg 3 must not be zero");
        double len = step > 0 ? ((double)stop - (double)start) / (double)step : ((double)start - (double)stop) / (double)-step;
        if (len > MAX_RANGE)
            chat_fail(c, HEARTH_ERR_RANGE, "OverflowError",
                      "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        clist *l = cl_new(c, 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) cl_push(c, l, cv_int(i));
        chat_steps(c, l->n);
        return cv_list(l);
    }
    case G_NAMESPACE:
    case G_DICT: {
        cdict *d = cd_new(c, id == G_NAMESPACE ? CV_NS : CV_DICT);
        cv v = cv_dict(d);
        merge_into(c, d, a);
        return v;
    }
    case G_RAISE: {
        cv msg = cv_tostr(c, arg_get(a, 0, NULL));
        chat_fail(c, HEARTH_ERR_INVALID, NULL, "%s", msg.u.s->s);
    }
    case G_STRFTIME: return do_strftime(c, arg_get(a, 0, NULL));
    default: chat_fail(c, HEARTH_ERR_INTERNAL, "InternalError", "unknown global %d", id);
    }
}

/* ---- operators ------------------------------------------------------------------ */

static bool is_num(cv v) { return v.t == CV_BOOL || v.t == CV_INT || v.t == CV_FLOAT; }
static double as_f(cv v) { return v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t as_i(cv v) { return v.t == CV_INT ? v.u.i : v.t == CV_BOOL ? (int64_t)v.u.b : 0; }

static const char *op_sym(int op) {
    static const char *const s[] = {"", "+", "-", "*", "/", "//", "%", "** or pow()"};
    return op >= OP_ADD && op <= OP_POW ? s[op] : "?";
}

_Noreturn static void unsupported(chat_ctx *c, int op, cv a, cv b) {
    chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op),
              cv_pytype(a), cv_pytype(b));
}

_Noreturn static void overflow(chat_ctx *c) {
    chat_fail(c, HEARTH_ERR_FORMAT, "OverflowError", "integer result does not fit in 64 bits");
}

static cv repeat(chat_ctx *c, cv seq, int64_t times) {
    if (times < 0) times = 0;
    if (seq.t == CV_STR ? seq.u.s->len == 0 : seq.u.l->n == 0) times = 0; /* nothing to repeat, however often */
    if (seq.t == CV_STR) {
        size_t total;
        if (!ck_mul(seq.u.s->len, (size_t)times, &total) || total > c->max_output)
            chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "a string would exceed the output limit of %zu bytes",
                      c->max_output);
        cbuf *b = cb_new(c);
        for (int64_t i = 0; i < times; i++) cb_put(c, b, seq.u.s->s, seq.u.s->len);
        return cb_take(c, b);
    }
    size_t total;
    if (!ck_mul(seq.u.l->n, (size_t)times, &total) || total > c->max_output / sizeof(cv))
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "a list would exceed the memory limit");
    chat_steps(c, total);
    clist *l = cl_new(c, total);
    l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.u.l->n; k++) cl_push(c, l, cv_ref(seq.u.l->v[k]));
    return cv_list(l);
}

cv value_binop(chat_ctx *c, int op, cv a, cv b) {
    if (a.t == CV_UNDEF) chat_fail_undef(c, a);
    if (b.t == CV_UNDEF) chat_fail_undef(c, b);
    if (is_num(a) && is_num(b)) {
        bool fl = a.t == CV_FLOAT || b.t == CV_FLOAT;
        int64_t x = as_i(a), y = as_i(b), r;
        double fx = as_f(a), fy = as_f(b);
        switch (op) {
        case OP_ADD:
            if (fl) return cv_float(fx + fy);
            if (__builtin_add_overflow(x, y, &r)) overflow(c);
            return cv_int(r);
        case OP_SUB:
            if (fl) return cv_float(fx - fy);
            if (__builtin_sub_overflow(x, y, &r)) overflow(c);
            return cv_int(r);
        case OP_MUL:
            if (fl) return cv_float(fx * fy);
            if (__builtin_mul_overflow(x, y, &r)) overflow(c);
            return cv_int(r);
        case OP_DIV:
            if (fy == 0) chat_fail(c, HEARTH_ERR_FORMAT, "ZeroDivisionError", "division by zero");
            return cv_float(fx / fy);
        case OP_FLOORDIV:
        case OP_MOD:
            if (fl) {
                if (fy == 0)
                    chat_fail(c, HEARTH_ERR_FORMAT, "ZeroDivisionError", "float %s by zero",
                              op == OP_MOD ? "modulo" : "floor division");
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                return op == OP_MOD ? cv_float(m) : cv_float(floor((fx - m) / fy + 0.5));
            }
            if (y == 0) chat_fail(c, HEARTH_ERR_FORMAT, "ZeroDivisionError", "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) overflow(c);
            {
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                return cv_int(op == OP_MOD ? m : q);
            }
        case OP_POW:
            if (fl || y < 0) return cv_float(pow(fx, fy));
            if (x == 0 || x == 1) return cv_int(y == 0 ? 1 : x);
            if (x == -1) return cv_int(y % 2 ? -1 : 1);
            r = 1;
            for (int64_t i = 0; i < y; i++) /* |x| >= 2 overflows within 64 rounds */
                if (__builtin_mul_overflow(r, x, &r)) overflow(c);
            return cv_int(r);
        default: break;
        }
    }
    if (op == OP_ADD) {
        if (a.t == CV_STR && b.t == CV_STR) {
            bool safe = a.u.s->safe || b.u.s->safe;
            cbuf *buf = cb_new(c);
            if (safe && !a.u.s->safe) html_escape(c, buf, a.u.s->s, a.u.s->len);
            else cb_put(c, buf, a.u.s->s, a.u.s->len);
            if (safe && !b.u.s->safe) html_escape(c, buf, b.u.s->s, b.u.s->len);
            else cb_put(c, buf, b.u.s->s, b.u.s->len);
            cv r = cb_take(c, buf);
            r.u.s->safe = safe;
            return r;
        }
        if (a.t == CV_LIST && b.t == CV_LIST && a.u.l->tuple == b.u.l->tuple && !a.u.l->view && !b.u.l->view) {
            clist *l = cl_new(c, a.u.l->n + b.u.l->n);
            l->tuple = a.u.l->tuple;
            for (size_t i = 0; i < a.u.l->n; i++) cl_push(c, l, cv_ref(a.u.l->v[i]));
            for (size_t i = 0; i < b.u.l->n; i++) cl_push(c, l, cv_ref(b.u.l->v[i]));
            chat_steps(c, l->n);
            return cv_list(l);
        }
        if (a.t == CV_STR || (a.t == CV_LIST && !a.u.l->view))
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "can only concatenate %s (not \"%s\") to %s", cv_pytype(a),
                      cv_pytype(b), cv_pytype(a));
    }
    if (op == OP_MUL) {
        if ((a.t == CV_STR || a.t == CV_LIST) && (b.t == CV_INT || b.t == CV_BOOL)) return repeat(c, a, as_i(b));
        if ((b.t == CV_STR || b.t == CV_LIST) && (a.t == CV_INT || a.t == CV_BOOL)) return repeat(c, b, as_i(a));
    }
    if (op == OP_MOD && a.t == CV_STR) return percent_format(c, a.u.s, b);
    unsupported(c, op, a, b);
}

bool value_contains(chat_ctx *c, cv container, cv item) {
    switch (container.t) {
    case CV_UNDEF: return false;
    case CV_STR:
        if (item.t != CV_STR)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'in <string>' requires string as left operand, not %s",
                      cv_pytype(item));
        return item.u.s->len == 0 ||
               memmem(container.u.s->s, container.u.s->len, item.u.s->s, item.u.s->len) != NULL;
    case CV_LIST:
        for (size_t i = 0; i < container.u.l->n; i++) {
            chat_steps(c, 1);
            if (cv_eq(c, container.u.l->v[i], item)) return true;
        }
        return false;
    case CV_DICT: return cd_get(c, container.u.d, item) != NULL;
    case CV_ITER: {
        citer *it = (citer *)container.u.h;
        while (it->pos < it->items->n) {
            chat_steps(c, 1);
            if (cv_eq(c, it->items->v[it->pos++], item)) return true;
        }
        return false;
    }
    default:
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "argument of type '%s' is not iterable", cv_pytype(container));
    }
}
