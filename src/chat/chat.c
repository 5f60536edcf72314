/* Public entry points of the chat-template interpreter: compiling (lexer, parser,
 * symbol table in one arena owned by the template) and rendering (a fresh render
 * context per call, so a compiled template is shared read-only between threads).
 * The render catches every failure at one setjmp and releases everything it made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "chat/chat.h"
#include "chat/chat_internal.h"

#define ARENA_BLOCK 16384

void *chat_arena_alloc(struct chat_template *t, size_t size) {
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    chat_arena_block *b = t->arena;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = mem_alloc(sizeof(chat_arena_block) + cap);
        if (!b) return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = t->arena;
        t->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    return p;
}

int chat_symbol(struct chat_template *t, const char *name) {
    for (int i = 0; i < t->nsyms; i++)
        if (!strcmp(t->syms[i], name)) return i;
    if (t->nsyms == t->capsyms) {
        int cap = t->capsyms ? t->capsyms * 2 : 64;
        char **syms = mem_realloc_array(t->syms, (size_t)cap, sizeof *syms);
        if (!syms) return -1;
        t->syms = syms;
        t->capsyms = cap;
    }
    size_t n = strlen(name);
    char *copy = chat_arena_alloc(t, n + 1);
    if (!copy) return -1;
    memcpy(copy, name, n + 1);
    t->syms[t->nsyms] = copy;
    return t->nsyms++;
}

static int find_symbol(const chat_template *t, const char *name) {
    for (int i = 0; i < t->nsyms; i++)
        if (!strcmp(t->syms[i], name)) return i;
    return -1;
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    while (t->arena) {
        chat_arena_block *next = t->arena->next;
        mem_free(t->arena);
        t->arena = next;
    }
    mem_free(t->syms);
    mem_free(t->sym_global);
    mem_free(t);
}

hearth_status chat_template_new(const char *src, size_t len, chat_template **out, hearth_err *err) {
    hearth_err local;
    if (!err) err = &local;
    *out = NULL;
    chat_template *t = mem_calloc(1, sizeof *t);
    if (!t) return err_set(err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
    t->sym_loop = chat_symbol(t, "loop");
    t->sym_varargs = chat_symbol(t, "varargs");
    t->sym_kwargs = chat_symbol(t, "kwargs");
    t->sym_caller = chat_symbol(t, "caller");
    if (t->sym_caller < 0) {
        chat_template_free(t);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
    }
    ctoks toks = {0};
    hearth_status st = chat_lex(t, src, len, &toks, err);
    if (st == HEARTH_OK) st = chat_parse(t, &toks, err);
    mem_free(toks.v);
    if (st == HEARTH_OK) {
        t->sym_global = mem_alloc_array((size_t)t->nsyms, sizeof(int));
        if (!t->sym_global) st = err_set(err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
        else
            for (int i = 0; i < t->nsyms; i++) t->sym_global[i] = chat_global_id(t->syms[i]);
    }
    if (st != HEARTH_OK) {
        chat_template_free(t);
        return st;
    }
    *out = t;
    return HEARTH_OK;
}

static void set_now(struct tm *now) {
    const char *env = getenv("HEARTH_NOW");
    int y, mo, d, h, mi, s;
    if (env && sscanf(env, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &s) == 6) {
        struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
        time_t tt = timegm(&tm); /* normalises and fills the weekday and day of the year */
        gmtime_r(&tt, now);
        return;
    }
    time_t tt = time(NULL);
    localtime_r(&tt, now);
}

static hearth_status render(const chat_template *t, const json_t *context, const chat_limits *limits, char **out,
                            size_t *out_len, hearth_err *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return err_set(err, HEARTH_ERR_INVALID, "no template to render");
    if (context && !json_is_object(context))
        return err_set(err, HEARTH_ERR_INVALID, "the render context must be a JSON object");
    chat_ctx *c = mem_calloc(1, sizeof *c);
    cv *vars = mem_calloc((size_t)t->nsyms, sizeof(cv));
    if (!c || !vars) {
        mem_free(c);
        mem_free(vars);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory while rendering a template");
    }
    chat_limits lim = limits ? *limits : (chat_limits){0};
    c->max_steps = lim.max_steps ? lim.max_steps : 10000000;
    c->max_output = lim.max_output ? lim.max_output : (size_t)16 << 20;
    c->max_live = lim.max_memory ? lim.max_memory : (size_t)256 << 20;
    c->max_depth = lim.max_depth ? lim.max_depth : 100;
    c->err = err;
    c->tpl = t;
    c->vars = vars;
    c->heap.next = c->heap.prev = &c->heap;
    set_now(&c->now);
    volatile hearth_status st = HEARTH_OK;
    if (setjmp(c->jmp)) {
        st = c->fail_status;
    } else {
        if (context) {
            const char *key;
            json_t *val;
            json_object_foreach((json_t *)context, key, val) {
                int sym = find_symbol(t, key);
                if (sym >= 0) c->vars[sym] = chat_from_json(c, val, 0);
            }
        }
        cframe *root = frame_new(c, NULL);
        cbuf *buf = cb_new(c);
        exec_body(c, t->root, root, buf);
        char *text = mem_alloc(buf->n + 1);
        if (!text) st = err_set(err, HEARTH_ERR_NOMEM, "out of memory while rendering a template");
        else {
            if (buf->n) memcpy(text, buf->p, buf->n);
            text[buf->n] = 0;
            *out = text;
            if (out_len) *out_len = buf->n;
        }
    }
    chat_heap_sweep(c);
    mem_free(vars);
    mem_free(c);
    return st;
}

hearth_status chat_template_render(const chat_template *t, const json_t *context, const chat_limits *limits,
                                   char **out, size_t *out_len, hearth_err *err) {
    hearth_err local;
    return render(t, context, limits, out, out_len, err ? err : &local);
}
