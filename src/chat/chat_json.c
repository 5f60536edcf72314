/* JSON in and out of template values: the render context (jansson) becomes values with
 * key order kept, integers as ints and reals as floats; tojson writes what Python's
 * json.dumps writes (Hugging Face's tojson: ensure_ascii off unless asked, separators
 * ", " and ": " or "," with an indent). Never recurses past a fixed depth. */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "chat/chat_internal.h"

#define MAX_JSON_DEPTH 1000

cv chat_from_json(chat_ctx *c, const json_t *j, int depth) {
    if (depth > MAX_JSON_DEPTH)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "render context nested deeper than %d levels", MAX_JSON_DEPTH);
    chat_steps(c, 1);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        cdict *d = cd_new(c, CV_DICT);
        cv v = cv_dict(d);
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val) {
            cv k = cv_strz(c, key);
            cd_set(c, d, k, chat_from_json(c, val, depth + 1));
        }
        return v;
    }
    case JSON_ARRAY: {
        clist *l = cl_new(c, json_array_size(j));
        cv v = cv_list(l);
        for (size_t i = 0; i < json_array_size(j); i++) cl_push(c, l, chat_from_json(c, json_array_get(j, i), depth + 1));
        return v;
    }
    case JSON_STRING: return cv_str(c, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return cv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return cv_float(json_real_value(j));
    case JSON_TRUE: return cv_bool(true);
    case JSON_FALSE: return cv_bool(false);
    default: return cv_none();
    }
}

static void put_json_string(chat_ctx *c, cbuf *b, const char *s, size_t n, bool ascii) {
    cb_putc(c, b, '"');
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[16];
        if (ch == '"') esc = "\\\"";
        else if (ch == '\\') esc = "\\\\";
        else if (ch == '\n') esc = "\\n";
        else if (ch == '\r') esc = "\\r";
        else if (ch == '\t') esc = "\\t";
        else if (ch == '\b') esc = "\\b";
        else if (ch == '\f') esc = "\\f";
        else if (ch < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", ch);
            esc = tmp;
        } else if (ch >= 0x80 && ascii) {
            cb_put(c, b, s + run, i - run);
            uint32_t cp = chat_next_cp(s, n, &i);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else
                snprintf(tmp, sizeof tmp, "\\u%04x", cp);
            cb_puts(c, b, tmp);
            run = i;
            continue;
        }
        if (esc) {
            cb_put(c, b, s + run, i - run);
            cb_puts(c, b, esc);
            run = i + 1;
        }
        i++;
    }
    cb_put(c, b, s + run, n - run);
    cb_putc(c, b, '"');
}

static void put_float(chat_ctx *c, cbuf *b, double f) {
    if (isnan(f)) cb_puts(c, b, "NaN");
    else if (isinf(f)) cb_puts(c, b, f < 0 ? "-Infinity" : "Infinity");
    else {
        char num[40];
        fmt_pyfloat(f, num);
        cb_puts(c, b, num);
    }
}

static void newline(chat_ctx *c, cbuf *b, const tojson_opts *o, int level) {
    cb_putc(c, b, '\n');
    for (int i = 0; i < level; i++) cb_puts(c, b, o->indent);
}

/* A dict key as json.dumps converts it. */
static void put_key(chat_ctx *c, cbuf *b, cv k, const tojson_opts *o) {
    char num[40];
    switch (k.t) {
    case CV_STR: put_json_string(c, b, k.u.s->s, k.u.s->len, o->ensure_ascii); return;
    case CV_INT: snprintf(num, sizeof num, "\"%" PRId64 "\"", k.u.i); cb_puts(c, b, num); return;
    case CV_BOOL: cb_puts(c, b, k.u.b ? "\"true\"" : "\"false\""); return;
    case CV_NONE: cb_puts(c, b, "\"null\""); return;
    case CV_FLOAT:
        cb_putc(c, b, '"');
        put_float(c, b, k.u.f);
        cb_putc(c, b, '"');
        return;
    default:
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "keys must be str, int, float, bool or None, not %s",
                  cv_pytype(k));
    }
}

void chat_tojson(chat_ctx *c, cbuf *b, cv v, const tojson_opts *o, int level) {
    if (level > MAX_JSON_DEPTH)
        chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
    chat_steps(c, 1);
    char num[40];
    switch (v.t) {
    case CV_NONE: cb_puts(c, b, "null"); return;
    case CV_BOOL: cb_puts(c, b, v.u.b ? "true" : "false"); return;
    case CV_INT:
        snprintf(num, sizeof num, "%" PRId64, v.u.i);
        cb_puts(c, b, num);
        return;
    case CV_FLOAT: put_float(c, b, v.u.f); return;
    case CV_STR: put_json_string(c, b, v.u.s->s, v.u.s->len, o->ensure_ascii); return;
    case CV_LIST: {
        clist *l = v.u.l;
        if (l->view)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "Object of type %s is not JSON serializable", cv_pytype(v));
        if (!l->n) {
            cb_puts(c, b, "[]");
            return;
        }
        cb_putc(c, b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) cb_puts(c, b, o->item_sep);
            if (o->indent) newline(c, b, o, level + 1);
            chat_tojson(c, b, l->v[i], o, level + 1);
        }
        if (o->indent) newline(c, b, o, level);
        cb_putc(c, b, ']');
        return;
    }
    case CV_DICT: {
        cdict *d = v.u.d;
        if (!d->n) {
            cb_puts(c, b, "{}");
            return;
        }
        size_t *order = NULL;
        cbuf *mem = NULL;
        if (o->sort_keys) {
            mem = cb_new(c);
            chat_heap_grow(c, &mem->h, (void **)&mem->p, &mem->cap, d->n * sizeof(size_t), 1);
            order = (size_t *)(void *)mem->p;
            for (size_t i = 0; i < d->n; i++) { /* insertion sort: stable, dicts are small */
                size_t j = i;
                while (j > 0 && cv_cmp(c, d->k[i], d->k[order[j - 1]], "<") < 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = i;
            }
        }
        cb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            size_t k = order ? order[i] : i;
            if (i) cb_puts(c, b, o->item_sep);
            if (o->indent) newline(c, b, o, level + 1);
            put_key(c, b, d->k[k], o);
            cb_puts(c, b, o->key_sep);
            chat_tojson(c, b, d->v[k], o, level + 1);
        }
        if (o->indent) newline(c, b, o, level);
        cb_putc(c, b, '}');
        if (mem) chat_obj_unref(c, &mem->h);
        return;
    }
    default:
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "Object of type %s is not JSON serializable", cv_pytype(v));
    }
}
