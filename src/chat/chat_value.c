/* Values of the template language: the render heap (allocation, reference counts,
 * the final sweep), strings, lists, dicts, buffers, frames, and the Python semantics
 * every operation shares (truthiness, equality, ordering, str() and repr()).
 * Never allocates outside the render's budget and never recurses without a depth cap. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "chat/chat_internal.h"

#define MAX_NEST 512 /* deepest structure compared or printed */

/* ---- failure ------------------------------------------------------------------ */

_Noreturn void chat_fail(chat_ctx *c, hearth_status st, const char *kind, const char *fmt, ...) {
    char msg[sizeof c->err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (kind)
        err_set(c->err, st, "%s: %s (template line %d)", kind, msg, c->line);
    else
        err_set(c->err, st, "%s", msg);
    c->fail_status = st;
    longjmp(c->jmp, 1);
}

_Noreturn void chat_nomem(chat_ctx *c) {
    chat_fail(c, HEARTH_ERR_NOMEM, "MemoryError", "out of memory while rendering");
}

static void write_pyrepr_str(chat_ctx *c, cbuf *b, const char *s, size_t n);

_Noreturn void chat_fail_undef(chat_ctx *c, cv u) {
    cbuf *b = cb_new(c);
    switch (u.hk) {
    case UH_NAME:
        write_pyrepr_str(c, b, u.u.s->s, u.u.s->len);
        cb_puts(c, b, " is undefined");
        break;
    case UH_ATTR:
        cb_putc(c, b, '\'');
        cb_puts(c, b, cv_objrepr(u.ho));
        cb_puts(c, b, "' has no attribute ");
        write_pyrepr_str(c, b, u.u.s->s, u.u.s->len);
        break;
    case UH_ELEM_INT: {
        char num[32];
        snprintf(num, sizeof num, "%" PRId64, u.u.i);
        cb_puts(c, b, cv_objrepr(u.ho));
        cb_puts(c, b, " has no element ");
        cb_puts(c, b, num);
        break;
    }
    case UH_MSG:
        if (u.u.s) cb_put(c, b, u.u.s->s, u.u.s->len);
        break;
    case UH_UNSAFE:
        cb_put(c, b, u.u.s->s, u.u.s->len);
        cb_putc(c, b, 0);
        chat_fail(c, HEARTH_ERR_FORMAT, "SecurityError", "%s", b->p);
    default:
        cb_puts(c, b, "undefined value");
    }
    cb_putc(c, b, 0);
    chat_fail(c, HEARTH_ERR_FORMAT, "UndefinedError", "%s", b->p);
}

/* ---- heap --------------------------------------------------------------------- */

static void account(chat_ctx *c, chdr *h, size_t add) {
    size_t live;
    if (!ck_add(c->live, add, &live) || live > c->max_live)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "template exceeded its memory budget of %zu bytes",
                  c->max_live);
    c->live = live;
    h->size += add;
}

void *chat_heap_new(chat_ctx *c, uint8_t kind, size_t size) {
    chdr *h = mem_calloc(1, size);
    if (!h) chat_nomem(c);
    h->kind = kind;
    h->rc = 1;
    h->next = c->heap.next;
    h->prev = &c->heap;
    c->heap.next->prev = h;
    c->heap.next = h;
    account(c, h, size);
    return h;
}

void chat_heap_grow(chat_ctx *c, chdr *h, void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need)
        if (!ck_mul(ncap, (size_t)2, &ncap)) chat_nomem(c);
    size_t bytes;
    if (!ck_mul(ncap - *cap, elem, &bytes)) chat_nomem(c);
    account(c, h, bytes);
    void *p = mem_realloc_array(*arr, ncap, elem);
    if (!p) chat_nomem(c);
    *arr = p;
    *cap = ncap;
}

static void free_storage(chdr *h) {
    switch (h->kind) {
    case CV_LIST: mem_free(((clist *)h)->v); break;
    case CV_DICT:
    case CV_NS:
        mem_free(((cdict *)h)->k);
        mem_free(((cdict *)h)->v);
        break;
    case CV_FRAME:
        mem_free(((cframe *)h)->sym);
        mem_free(((cframe *)h)->val);
        break;
    case CV_BUF: mem_free(((cbuf *)h)->p); break;
    default: break;
    }
    mem_free(h);
}

static void release_children(chat_ctx *c, chdr *h) {
    switch (h->kind) {
    case CV_LIST: {
        clist *l = (clist *)h;
        for (size_t i = 0; i < l->n; i++) cv_unref(c, l->v[i]);
        break;
    }
    case CV_DICT:
    case CV_NS: {
        cdict *d = (cdict *)h;
        for (size_t i = 0; i < d->n; i++) {
            cv_unref(c, d->k[i]);
            cv_unref(c, d->v[i]);
        }
        break;
    }
    case CV_ITER: chat_obj_unref(c, &((citer *)h)->items->h); break;
    case CV_LOOP:
        chat_obj_unref(c, &((cloop *)h)->items->h);
        chat_obj_unref(c, ((cloop *)h)->scope ? &((cloop *)h)->scope->h : NULL);
        cv_unref(c, ((cloop *)h)->changed_last);
        break;
    case CV_MACRO:
        chat_obj_unref(c, ((cmacro *)h)->closure ? &((cmacro *)h)->closure->h : NULL);
        cv_unref(c, ((cmacro *)h)->caller);
        break;
    case CV_FUNC:
        cv_unref(c, ((cfunc *)h)->self);
        cv_unref(c, ((cfunc *)h)->name);
        break;
    case CV_FRAME: {
        cframe *f = (cframe *)h;
        for (size_t i = 0; i < f->n; i++) cv_unref(c, f->val[i]);
        chat_obj_unref(c, f->parent ? &f->parent->h : NULL);
        break;
    }
    default: break;
    }
}

void chat_obj_unref(chat_ctx *c, chdr *h) {
    if (!h || h->rc == CHAT_IMMORTAL) return;
    if (--h->rc) return;
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->next = c->free_queue;
    c->free_queue = h;
    if (c->freeing) return;
    c->freeing = true;
    while (c->free_queue) {
        chdr *o = c->free_queue;
        c->free_queue = o->next;
        release_children(c, o);
        c->live -= o->size;
        free_storage(o);
    }
    c->freeing = false;
}

void chat_heap_sweep(chat_ctx *c) {
    chdr *h = c->heap.next;
    while (h != &c->heap) {
        chdr *next = h->next;
        free_storage(h);
        h = next;
    }
    c->heap.next = c->heap.prev = &c->heap;
    c->free_queue = NULL;
    c->freeing = false;
    c->live = 0;
}

cv cv_ref(cv v) {
    if (cv_is_heap(v) && v.u.h->rc != CHAT_IMMORTAL) v.u.h->rc++;
    return v;
}

void cv_unref(chat_ctx *c, cv v) {
    if (cv_is_heap(v)) chat_obj_unref(c, v.u.h);
}

/* ---- strings ------------------------------------------------------------------ */

static cstr *cs_alloc(chat_ctx *c, size_t n) {
    if (n > c->max_output)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "a string would exceed the output limit of %zu bytes",
                  c->max_output);
    chat_steps(c, n / 256);
    cstr *s = chat_heap_new(c, CV_STR, sizeof(cstr) + n + 1);
    s->len = n;
    s->ascii = -1;
    s->safe = false;
    return s;
}

cv cv_str(chat_ctx *c, const char *s, size_t n) {
    cstr *p = cs_alloc(c, n);
    if (n) memcpy(p->s, s, n);
    p->s[n] = 0;
    cv v = {0};
    v.t = CV_STR;
    v.u.s = p;
    return v;
}

cv cv_strz(chat_ctx *c, const char *s) { return cv_str(c, s, strlen(s)); }

cv cv_strf(chat_ctx *c, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    return cv_str(c, buf, (size_t)n);
}

cstr *chat_str_immortal(struct chat_template *t, const char *s, size_t n) {
    cstr *p = chat_arena_alloc(t, sizeof(cstr) + n + 1);
    if (!p) return NULL;
    memset(&p->h, 0, sizeof p->h);
    p->h.rc = CHAT_IMMORTAL;
    p->h.kind = CV_STR;
    p->len = n;
    p->ascii = -1;
    p->safe = false;
    if (n) memcpy(p->s, s, n);
    p->s[n] = 0;
    return p;
}

bool cs_ascii(cstr *s) {
    if (s->ascii < 0) {
        s->ascii = 1;
        for (size_t i = 0; i < s->len; i++)
            if ((unsigned char)s->s[i] >= 0x80) {
                s->ascii = 0;
                break;
            }
    }
    return s->ascii == 1;
}

size_t cs_cplen(cstr *s) {
    if (cs_ascii(s)) return s->len;
    size_t n = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) n++;
    return n;
}

size_t cs_cp_offset(cstr *s, size_t cp) {
    if (cs_ascii(s)) return cp < s->len ? cp : s->len;
    size_t i = 0;
    while (i < s->len) {
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) {
            if (cp == 0) return i;
            cp--;
        }
        i++;
    }
    return s->len;
}

/* ---- containers --------------------------------------------------------------- */

clist *cl_new(chat_ctx *c, size_t cap) {
    clist *l = chat_heap_new(c, CV_LIST, sizeof(clist));
    if (cap) chat_heap_grow(c, &l->h, (void **)&l->v, &l->cap, cap, sizeof(cv));
    return l;
}

void cl_push(chat_ctx *c, clist *l, cv v) {
    if (l->n == l->cap) {
        size_t need;
        if (!ck_add(l->n, (size_t)1, &need)) chat_nomem(c);
        chat_heap_grow(c, &l->h, (void **)&l->v, &l->cap, need, sizeof(cv));
    }
    l->v[l->n++] = v;
}

cv cv_list(clist *l) {
    cv v = {0};
    v.t = CV_LIST;
    v.u.l = l;
    return v;
}

cdict *cd_new(chat_ctx *c, uint8_t kind) { return chat_heap_new(c, kind, sizeof(cdict)); }

cv cv_dict(cdict *d) {
    cv v = {0};
    v.t = d->h.kind;
    v.u.d = d;
    return v;
}

cv *cd_gets(cdict *d, const char *s, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == CV_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->s, s, n))
            return &d->v[i];
    return NULL;
}

cv *cd_get(chat_ctx *c, cdict *d, cv k) {
    chat_steps(c, d->n / 16);
    if (k.t == CV_STR) return cd_gets(d, k.u.s->s, k.u.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t != CV_STR && cv_eq(c, d->k[i], k)) return &d->v[i];
    return NULL;
}

void cd_set(chat_ctx *c, cdict *d, cv k, cv v) {
    cv *slot = cd_get(c, d, k);
    if (slot) {
        cv old = *slot;
        *slot = v;
        cv_unref(c, k);
        cv_unref(c, old);
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap, need = d->n + 1;
        chat_heap_grow(c, &d->h, (void **)&d->k, &cap, need, sizeof(cv));
        size_t cap2 = d->cap;
        chat_heap_grow(c, &d->h, (void **)&d->v, &cap2, need, sizeof(cv));
        d->cap = cap < cap2 ? cap : cap2;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
}

cv cv_iter(chat_ctx *c, clist *items, const char *pyname) {
    citer *it = chat_heap_new(c, CV_ITER, sizeof(citer));
    it->items = items;
    it->pyname = pyname;
    cv v = {0};
    v.t = CV_ITER;
    v.u.h = &it->h;
    return v;
}

/* ---- buffers ------------------------------------------------------------------ */

cbuf *cb_new(chat_ctx *c) { return chat_heap_new(c, CV_BUF, sizeof(cbuf)); }

void cb_put(chat_ctx *c, cbuf *b, const char *s, size_t n) {
    if (!n) return;
    size_t need;
    if (!ck_add(b->n, n, &need) || need > c->max_output)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "output would exceed the limit of %zu bytes",
                  c->max_output);
    if (need + 1 > b->cap) chat_heap_grow(c, &b->h, (void **)&b->p, &b->cap, need + 1, 1);
    memcpy(b->p + b->n, s, n);
    b->n = need;
}

void cb_puts(chat_ctx *c, cbuf *b, const char *s) { cb_put(c, b, s, strlen(s)); }
void cb_putc(chat_ctx *c, cbuf *b, char ch) { cb_put(c, b, &ch, 1); }

cv cb_take(chat_ctx *c, cbuf *b) {
    cv v = cv_str(c, b->p ? b->p : "", b->n);
    chat_obj_unref(c, &b->h);
    return v;
}

/* ---- Python semantics --------------------------------------------------------- */

bool cv_truthy(cv v) {
    switch (v.t) {
    case CV_UNDEF:
    case CV_NONE: return false;
    case CV_BOOL: return v.u.b;
    case CV_INT: return v.u.i != 0;
    case CV_FLOAT: return v.u.f != 0.0;
    case CV_STR: return v.u.s->len != 0;
    case CV_LIST: return v.u.l->n != 0;
    case CV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

static bool is_num(cv v) { return v.t == CV_BOOL || v.t == CV_INT || v.t == CV_FLOAT; }
static double num_f(cv v) { return v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t num_i(cv v) { return v.t == CV_INT ? v.u.i : (int64_t)v.u.b; }

static bool eq_depth(chat_ctx *c, cv a, cv b, int depth) {
    if (depth > MAX_NEST) chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "structure nested too deeply to compare");
    if (is_num(a) && is_num(b)) {
        if (a.t == CV_FLOAT || b.t == CV_FLOAT) return num_f(a) == num_f(b);
        return num_i(a) == num_i(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case CV_UNDEF:
    case CV_NONE: return true;
    case CV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->s, b.u.s->s, a.u.s->len);
    /* Containers: one step per item compared (shared sublists would otherwise make the
     * work exponential in their depth), and a container equals itself, as Python's
     * comparison of identical items says. */
    case CV_LIST:
        if (a.u.l == b.u.l) return true;
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++) {
            chat_steps(c, 1);
            if (!eq_depth(c, a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        }
        return true;
    case CV_DICT:
        if (a.u.d == b.u.d) return true;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            chat_steps(c, 1);
            cv *o = cd_get(c, b.u.d, a.u.d->k[i]);
            if (!o || !eq_depth(c, a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    default: return a.u.h == b.u.h;
    }
}

bool cv_eq(chat_ctx *c, cv a, cv b) { return eq_depth(c, a, b, 0); }

static int cmp_depth(chat_ctx *c, cv a, cv b, const char *opname, int depth) {
    if (depth > MAX_NEST) chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "structure nested too deeply to compare");
    if (a.t == CV_UNDEF) chat_fail_undef(c, a);
    if (b.t == CV_UNDEF) chat_fail_undef(c, b);
    if (is_num(a) && is_num(b)) {
        if (a.t == CV_FLOAT || b.t == CV_FLOAT) {
            double x = num_f(a), y = num_f(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        int64_t x = num_i(a), y = num_i(b);
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.t == CV_STR && b.t == CV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int r = memcmp(a.u.s->s, b.u.s->s, n);
        if (r) return r;
        return a.u.s->len < b.u.s->len ? -1 : a.u.s->len > b.u.s->len ? 1 : 0;
    }
    if (a.t == CV_LIST && b.t == CV_LIST && a.u.l->tuple == b.u.l->tuple) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            chat_steps(c, 1);
            if (!cv_eq(c, a.u.l->v[i], b.u.l->v[i])) return cmp_depth(c, a.u.l->v[i], b.u.l->v[i], opname, depth + 1);
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n ? 1 : 0;
    }
    chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' not supported between instances of '%s' and '%s'",
              opname, cv_pytype(a), cv_pytype(b));
}

int cv_cmp(chat_ctx *c, cv a, cv b, const char *opname) { return cmp_depth(c, a, b, opname, 0); }

const char *cv_pytype(cv v) {
    switch (v.t) {
    case CV_UNDEF: return "Undefined";
    case CV_NONE: return "NoneType";
    case CV_BOOL: return "bool";
    case CV_INT: return "int";
    case CV_FLOAT: return "float";
    case CV_STR: return "str";
    case CV_LIST:
        if (v.u.l->view) return v.u.l->view == VIEW_KEYS ? "dict_keys" : v.u.l->view == VIEW_VALUES ? "dict_values" : "dict_items";
        return v.u.l->tuple ? "tuple" : "list";
    case CV_DICT: return "dict";
    case CV_NS: return "Namespace";
    case CV_ITER: return ((citer *)v.u.h)->pyname;
    case CV_LOOP: return "LoopContext";
    case CV_MACRO: return "Macro";
    default: return "builtin_function_or_method";
    }
}

const char *cv_objrepr(uint8_t t) {
    switch (t) {
    case CV_NONE: return "None";
    case CV_BOOL: return "bool object";
    case CV_INT: return "int object";
    case CV_FLOAT: return "float object";
    case CV_STR: return "str object";
    case CV_LIST: return "list object";
    case CV_DICT: return "dict object";
    case CV_NS: return "jinja2.utils.Namespace object";
    case CV_ITER: return "generator object";
    case CV_LOOP: return "jinja2.runtime.LoopContext object";
    case CV_MACRO: return "jinja2.runtime.Macro object";
    default: return "builtin_function_or_method object";
    }
}

void fmt_pyfloat(double f, char out[40]) {
    if (isnan(f)) { strcpy(out, "nan"); return; }
    if (isinf(f)) { strcpy(out, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0) { strcpy(out, signbit(f) ? "-0.0" : "0.0"); return; }
    char buf[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    const char *q = buf;
    char *o = out;
    if (*q == '-') *o++ = *q++;
    char digits[24];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp = atoi(q + 1);
    if (exp < -4 || exp >= 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        snprintf(o, 12, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    int decpt = exp + 1;
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int i = nd; i < decpt; i++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = 0;
}

static bool py_printable(uint32_t cp) {
    if (cp == ' ') return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
    }
}

static void write_pyrepr_str(chat_ctx *c, cbuf *b, const char *s, size_t n) {
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    cb_putc(c, b, q);
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t cp = chat_next_cp(s, n, &i);
        char esc[16];
        if (cp == (uint32_t)q || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            cb_put(c, b, esc, 2);
        } else if (cp == '\t') cb_puts(c, b, "\\t");
        else if (cp == '\n') cb_puts(c, b, "\\n");
        else if (cp == '\r') cb_puts(c, b, "\\r");
        else if (cp < 0x20 || cp == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", cp);
            cb_puts(c, b, esc);
        } else if (cp < 0x7f || py_printable(cp)) cb_put(c, b, s + start, i - start);
        else {
            if (cp <= 0xff) snprintf(esc, sizeof esc, "\\x%02x", cp);
            else if (cp <= 0xffff) snprintf(esc, sizeof esc, "\\u%04x", cp);
            else snprintf(esc, sizeof esc, "\\U%08x", cp);
            cb_puts(c, b, esc);
        }
    }
    cb_putc(c, b, q);
}

void cv_write_repr(chat_ctx *c, cbuf *b, cv v, int depth) {
    if (depth > MAX_NEST) chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "structure nested too deeply to print");
    chat_steps(c, 1);
    char num[48];
    switch (v.t) {
    case CV_UNDEF: cb_puts(c, b, "Undefined"); return;
    case CV_STR: write_pyrepr_str(c, b, v.u.s->s, v.u.s->len); return;
    case CV_LIST: {
        clist *l = v.u.l;
        if (l->view) {
            cb_puts(c, b, cv_pytype(v));
            cb_putc(c, b, '(');
        }
        cb_putc(c, b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) cb_puts(c, b, ", ");
            cv_write_repr(c, b, l->v[i], depth + 1);
        }
        if (l->tuple && l->n == 1) cb_putc(c, b, ',');
        cb_putc(c, b, l->tuple ? ')' : ']');
        if (l->view) cb_putc(c, b, ')');
        return;
    }
    case CV_DICT:
    case CV_NS: {
        cdict *d = v.u.d;
        if (v.t == CV_NS) cb_puts(c, b, "<Namespace ");
        cb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) cb_puts(c, b, ", ");
            cv_write_repr(c, b, d->k[i], depth + 1);
            cb_puts(c, b, ": ");
            cv_write_repr(c, b, d->v[i], depth + 1);
        }
        cb_putc(c, b, '}');
        if (v.t == CV_NS) cb_putc(c, b, '>');
        return;
    }
    case CV_ITER:
        cb_puts(c, b, "<");
        cb_puts(c, b, ((citer *)v.u.h)->pyname);
        cb_puts(c, b, " object>");
        return;
    case CV_LOOP: {
        cloop *lp = (cloop *)v.u.h;
        snprintf(num, sizeof num, "<LoopContext %zu/%zu>", lp->i + 1, lp->items->n);
        cb_puts(c, b, num);
        return;
    }
    case CV_MACRO: {
        const cnode *def = ((cmacro *)v.u.h)->def;
        cb_puts(c, b, "<Macro ");
        if (def->lit.t == CV_STR) write_pyrepr_str(c, b, def->lit.u.s->s, def->lit.u.s->len);
        cb_putc(c, b, '>');
        return;
    }
    case CV_FUNC: cb_puts(c, b, "<built-in function>"); return;
    default: cv_write_str(c, b, v); return;
    }
}

void cv_write_str(chat_ctx *c, cbuf *b, cv v) {
    char num[48];
    switch (v.t) {
    case CV_UNDEF: return;
    case CV_NONE: cb_puts(c, b, "None"); return;
    case CV_BOOL: cb_puts(c, b, v.u.b ? "True" : "False"); return;
    case CV_INT:
        snprintf(num, sizeof num, "%" PRId64, v.u.i);
        cb_puts(c, b, num);
        return;
    case CV_FLOAT:
        fmt_pyfloat(v.u.f, num);
        cb_puts(c, b, num);
        return;
    case CV_STR: cb_put(c, b, v.u.s->s, v.u.s->len); return;
    default: cv_write_repr(c, b, v, 0); return;
    }
}

cv cv_tostr(chat_ctx *c, cv v) {
    if (v.t == CV_STR) return cv_ref(v);
    cbuf *b = cb_new(c);
    cv_write_str(c, b, v);
    return cb_take(c, b);
}

clist *cv_iterate(chat_ctx *c, cv v) {
    switch (v.t) {
    case CV_UNDEF: return cl_new(c, 0);
    case CV_LIST: cv_ref(v); return v.u.l;
    case CV_STR: {
        cstr *s = v.u.s;
        clist *l = cl_new(c, s->len);
        size_t i = 0;
        while (i < s->len) {
            size_t start = i;
            chat_next_cp(s->s, s->len, &i);
            cl_push(c, l, cv_str(c, s->s + start, i - start));
        }
        return l;
    }
    case CV_DICT: {
        clist *l = cl_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) cl_push(c, l, cv_ref(v.u.d->k[i]));
        return l;
    }
    case CV_ITER: {
        citer *it = (citer *)v.u.h;
        clist *l = cl_new(c, it->items->n - it->pos);
        for (; it->pos < it->items->n; it->pos++) cl_push(c, l, cv_ref(it->items->v[it->pos]));
        return l;
    }
    default:
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' object is not iterable", cv_pytype(v));
    }
}

/* ---- frames ------------------------------------------------------------------- */

cframe *frame_new(chat_ctx *c, cframe *parent) {
    cframe *f = chat_heap_new(c, CV_FRAME, sizeof(cframe));
    f->parent = parent;
    if (parent) parent->h.rc++;
    return f;
}

void frame_set(chat_ctx *c, cframe *f, int sym, cv v) {
    for (size_t i = 0; i < f->n; i++)
        if (f->sym[i] == sym) {
            cv old = f->val[i];
            f->val[i] = v;
            cv_unref(c, old);
            return;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap, cap2 = f->cap;
        chat_heap_grow(c, &f->h, (void **)&f->sym, &cap, f->n + 1, sizeof(int));
        chat_heap_grow(c, &f->h, (void **)&f->val, &cap2, f->n + 1, sizeof(cv));
        f->cap = cap < cap2 ? cap : cap2;
    }
    f->sym[f->n] = sym;
    f->val[f->n] = v;
    f->n++;
}

cv *frame_find(cframe *f, int sym) {
    for (; f; f = f->parent)
        for (size_t i = 0; i < f->n; i++)
            if (f->sym[i] == sym) return &f->val[i];
    return NULL;
}
