/* Evaluator: walks the syntax tree with Jinja2's scoping (a for-loop iteration, a
 * macro call, a block set and a filter block each get their own frame; `if` does not),
 * producing text into a buffer. Every node costs a step of the render's budget, so no
 * template can run unbounded; errors unwind through chat_fail(). */
#include <string.h>

#include "chat/chat_internal.h"

#define MAX_ARGS 32
#define MAX_EVAL_NEST 2000 /* nested evaluations at once: about 1 MiB of C stack */

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

static int exec_node(chat_ctx *c, const cnode *n, cframe *f, cbuf *out);

static cv lookup(chat_ctx *c, const cnode *n, cframe *f) {
    cv *slot = frame_find(f, n->sym);
    if (slot) return cv_ref(*slot);
    if (c->vars[n->sym].t != CV_UNDEF) return cv_ref(c->vars[n->sym]);
    int g = c->tpl->sym_global[n->sym];
    if (g >= 0) return global_value(c, g);
    cv u = cv_undef();
    u.hk = UH_NAME;
    u.u.s = n->lit.u.s;
    return u;
}

/* ---- arguments ---------------------------------------------------------------- */

typedef struct argvals {
    cargs a;
    cv pos[MAX_ARGS];
    const char *kname[MAX_ARGS];
    cv kval[MAX_ARGS];
} argvals;

static void eval_args(chat_ctx *c, const cnode *n, int first, cframe *f, argvals *av) {
    memset(&av->a, 0, sizeof av->a);
    av->a.pos = av->pos;
    av->a.kname = av->kname;
    av->a.kval = av->kval;
    for (int i = first; i < n->n; i++) {
        const cnode *k = n->kid[i];
        if (!k) continue;
        if (av->a.n + av->a.nk >= MAX_ARGS)
            chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "too many arguments (at most %d)", MAX_ARGS);
        if (k->kind == N_KWARG) {
            av->kname[av->a.nk] = k->lit.u.s->s;
            av->kval[av->a.nk++] = eval_expr(c, k->kid[0], f);
        } else
            av->pos[av->a.n++] = eval_expr(c, k, f);
    }
}

static void free_args(chat_ctx *c, argvals *av) {
    for (int i = 0; i < av->a.n; i++) cv_unref(c, av->pos[i]);
    for (int i = 0; i < av->a.nk; i++) cv_unref(c, av->kval[i]);
}

cv arg_get(cargs *a, int idx, const char *name) {
    if (idx >= 0 && idx < a->n) return a->pos[idx];
    if (name)
        for (int i = 0; i < a->nk; i++)
            if (!strcmp(a->kname[i], name)) return a->kval[i];
    return cv_undef();
}

/* ---- calls -------------------------------------------------------------------- */

cv call_macro(chat_ctx *c, cmacro *m, cargs *a, cv caller) {
    const cnode *def = m->def;
    int body = def->kind == N_MACRO ? 0 : 1, first = body + 1;
    if (c->depth >= c->max_depth)
        chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "maximum macro call depth (%d) exceeded", c->max_depth);
    c->depth++;
    int saved_line = c->line;
    cframe *fr = frame_new(c, m->closure);
    int nparams = def->n - first;
    clist *varargs = cl_new(c, 0);
    varargs->tuple = true;
    cdict *kwargs = cd_new(c, CV_DICT);
    for (int i = a->n > nparams ? nparams : a->n; i < a->n; i++) cl_push(c, varargs, cv_ref(a->pos[i]));
    for (int k = 0; k < a->nk; k++) {
        bool known = false;
        for (int i = 0; i < nparams; i++)
            if (!strcmp(def->kid[first + i]->lit.u.s->s, a->kname[k])) known = true;
        if (!known) cd_set(c, kwargs, cv_strz(c, a->kname[k]), cv_ref(a->kval[k]));
    }
    for (int i = 0; i < nparams; i++) {
        const cnode *p = def->kid[first + i];
        cv v = cv_undef();
        bool given = false;
        if (i < a->n) {
            v = cv_ref(a->pos[i]);
            given = true;
        } else
            for (int k = 0; k < a->nk; k++)
                if (!strcmp(p->lit.u.s->s, a->kname[k])) {
                    v = cv_ref(a->kval[k]);
                    given = true;
                }
        if (!given && p->n) v = eval_expr(c, p->kid[0], fr);
        else if (!given) {
            v = cv_strf(c, "parameter '%s' was not provided", p->lit.u.s->s);
            v.t = CV_UNDEF;
            v.hk = UH_MSG;
        }
        frame_set(c, fr, p->sym, v);
    }
    frame_set(c, fr, c->tpl->sym_varargs, cv_list(varargs));
    frame_set(c, fr, c->tpl->sym_kwargs, cv_dict(kwargs));
    if (caller.t != CV_UNDEF) frame_set(c, fr, c->tpl->sym_caller, cv_ref(caller));
    cbuf *out = cb_new(c);
    exec_node(c, def->kid[body], fr, out);
    chat_obj_unref(c, &fr->h);
    c->depth--;
    c->line = saved_line;
    return cb_take(c, out);
}

static cv call_with_caller(chat_ctx *c, cv callee, cargs *a, cv caller) {
    switch (callee.t) {
    case CV_MACRO: return call_macro(c, (cmacro *)callee.u.h, a, caller);
    case CV_FUNC: {
        cfunc *fn = (cfunc *)callee.u.h;
        if (fn->id >= 0) return call_global(c, fn->id, a);
        bool found;
        return call_method(c, fn->self, fn->name.u.s, a, &found);
    }
    case CV_LOOP: return call_loop(c, (cloop *)callee.u.h, a);
    case CV_UNDEF: chat_fail_undef(c, callee);
    default:
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' object is not callable", cv_pytype(callee));
    }
}

static cv eval_call(chat_ctx *c, const cnode *n, cframe *f, cv caller) {
    const cnode *callee = n->kid[0];
    argvals av;
    cv r = cv_undef();
    if (callee->kind == N_ATTR) {
        cv obj = eval_expr(c, callee->kid[0], f);
        eval_args(c, n, 1, f, &av);
        c->line = n->line;
        bool found = false;
        if (obj.t != CV_UNDEF) r = call_method(c, obj, callee->lit.u.s, &av.a, &found);
        if (!found) {
            cv fn = env_getattr(c, obj, callee->lit.u.s);
            r = call_with_caller(c, fn, &av.a, caller);
            cv_unref(c, fn);
        }
        cv_unref(c, obj);
    } else {
        cv fn = eval_expr(c, callee, f);
        eval_args(c, n, 1, f, &av);
        c->line = n->line;
        r = call_with_caller(c, fn, &av.a, caller);
        cv_unref(c, fn);
    }
    free_args(c, &av);
    return r;
}

/* ---- filters and tests ---------------------------------------------------------- */

static cv eval_filter(chat_ctx *c, const cnode *n, cframe *f, cv input) {
    cv val;
    const cnode *operand = n->kid[0];
    if (!operand) val = cv_ref(input);
    else if (operand->kind == N_FILTER) val = eval_filter(c, operand, f, input);
    else val = eval_expr(c, operand, f);
    argvals av;
    eval_args(c, n, 1, f, &av);
    c->line = n->line;
    if (n->sym < 0) chat_fail(c, HEARTH_ERR_FORMAT, "TemplateRuntimeError", "No filter named '%s' found.", n->lit.u.s->s);
    cv r = apply_filter(c, n->sym, val, &av.a);
    free_args(c, &av);
    cv_unref(c, val);
    return r;
}

static bool eval_test(chat_ctx *c, const cnode *n, cframe *f) {
    cv val = eval_expr(c, n->kid[0], f);
    argvals av;
    eval_args(c, n, 1, f, &av);
    c->line = n->line;
    if (n->sym < 0) chat_fail(c, HEARTH_ERR_FORMAT, "TemplateRuntimeError", "No test named '%s' found.", n->lit.u.s->s);
    bool r = apply_test(c, n->sym, val, &av.a);
    free_args(c, &av);
    cv_unref(c, val);
    return n->op ? !r : r;
}

/* ---- expressions ---------------------------------------------------------------- */

static cv eval_slice(chat_ctx *c, const cnode *n, cframe *f) {
    cv obj = eval_expr(c, n->kid[0], f);
    cv b[3];
    for (int i = 0; i < 3; i++) b[i] = n->kid[i + 1] ? eval_expr(c, n->kid[i + 1], f) : cv_none();
    c->line = n->line;
    cv r;
    if (obj.t == CV_STR) r = str_slice(c, obj.u.s, b[0], b[1], b[2]);
    else if (obj.t == CV_LIST) {
        int64_t first, step;
        clist *src = obj.u.l;
        size_t count = py_slice(c, (int64_t)src->n, b[0], b[1], b[2], &first, &step);
        clist *l = cl_new(c, count);
        l->tuple = src->tuple;
        for (size_t k = 0; k < count; k++) cl_push(c, l, cv_ref(src->v[first + (int64_t)k * step]));
        chat_steps(c, count);
        r = cv_list(l);
    } else if (obj.t == CV_UNDEF)
        chat_fail_undef(c, obj);
    else
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "'%s' object is not subscriptable", cv_pytype(obj));
    for (int i = 0; i < 3; i++) cv_unref(c, b[i]);
    cv_unref(c, obj);
    return r;
}

static void enter(chat_ctx *c) {
    if (++c->nest > MAX_EVAL_NEST)
        chat_fail(c, HEARTH_ERR_RANGE, "RecursionError", "template evaluation nested deeper than %d levels",
                  MAX_EVAL_NEST);
}

static cv eval_inner(chat_ctx *c, const cnode *n, cframe *f);

cv eval_expr(chat_ctx *c, const cnode *n, cframe *f) {
    enter(c);
    cv r = eval_inner(c, n, f);
    c->nest--;
    return r;
}

static cv eval_inner(chat_ctx *c, const cnode *n, cframe *f) {
    chat_steps(c, 1);
    c->line = n->line;
    switch (n->kind) {
    case N_LIT: return cv_ref(n->lit);
    case N_NAME: return lookup(c, n, f);
    case N_LIST:
    case N_TUPLE: {
        clist *l = cl_new(c, (size_t)n->n);
        l->tuple = n->kind == N_TUPLE;
        cv v = cv_list(l);
        for (int i = 0; i < n->n; i++) cl_push(c, l, eval_expr(c, n->kid[i], f));
        return v;
    }
    case N_DICT: {
        cdict *d = cd_new(c, CV_DICT);
        cv v = cv_dict(d);
        for (int i = 0; i + 1 < n->n; i += 2) {
            cv k = eval_expr(c, n->kid[i], f);
            cd_set(c, d, k, eval_expr(c, n->kid[i + 1], f));
        }
        return v;
    }
    case N_ATTR: {
        cv obj = eval_expr(c, n->kid[0], f);
        c->line = n->line;
        cv r = env_getattr(c, obj, n->lit.u.s);
        cv_unref(c, obj);
        return r;
    }
    case N_ITEM: {
        cv obj = eval_expr(c, n->kid[0], f);
        cv key = eval_expr(c, n->kid[1], f);
        c->line = n->line;
        cv r = env_getitem(c, obj, key);
        cv_unref(c, key);
        cv_unref(c, obj);
        return r;
    }
    case N_SLICE: return eval_slice(c, n, f);
    case N_CALL: return eval_call(c, n, f, cv_undef());
    case N_FILTER: return eval_filter(c, n, f, cv_undef());
    case N_TEST: return cv_bool(eval_test(c, n, f));
    case N_BINOP: {
        cv a = eval_expr(c, n->kid[0], f);
        cv b = eval_expr(c, n->kid[1], f);
        c->line = n->line;
        cv r;
        switch (n->op) {
        case OP_EQ: r = cv_bool(cv_eq(c, a, b)); break;
        case OP_NE: r = cv_bool(!cv_eq(c, a, b)); break;
        case OP_LT: r = cv_bool(cv_cmp(c, a, b, "<") < 0); break;
        case OP_LE: r = cv_bool(cv_cmp(c, a, b, "<=") <= 0); break;
        case OP_GT: r = cv_bool(cv_cmp(c, a, b, ">") > 0); break;
        case OP_GE: r = cv_bool(cv_cmp(c, a, b, ">=") >= 0); break;
        case OP_IN: r = cv_bool(value_contains(c, b, a)); break;
        case OP_NOTIN: r = cv_bool(!value_contains(c, b, a)); break;
        default: r = value_binop(c, n->op, a, b); break;
        }
        cv_unref(c, a);
        cv_unref(c, b);
        return r;
    }
    case N_NEG:
    case N_POS: {
        cv a = eval_expr(c, n->kid[0], f);
        c->line = n->line;
        if (a.t == CV_UNDEF) chat_fail_undef(c, a);
        if (a.t == CV_BOOL) a = cv_int(a.u.b);
        if (a.t == CV_INT) {
            if (n->kind == N_NEG && a.u.i == INT64_MIN)
                chat_fail(c, HEARTH_ERR_FORMAT, "OverflowError", "integer overflow");
            return n->kind == N_NEG ? cv_int(-a.u.i) : a;
        }
        if (a.t == CV_FLOAT) return n->kind == N_NEG ? cv_float(-a.u.f) : a;
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "bad operand type for unary %c: '%s'",
                  n->kind == N_NEG ? '-' : '+', cv_pytype(a));
    }
    case N_NOT: {
        cv a = eval_expr(c, n->kid[0], f);
        bool t = cv_truthy(a);
        cv_unref(c, a);
        return cv_bool(!t);
    }
    case N_AND:
    case N_OR: {
        cv a = eval_expr(c, n->kid[0], f);
        if (cv_truthy(a) == (n->kind == N_OR)) return a;
        cv_unref(c, a);
        return eval_expr(c, n->kid[1], f);
    }
    case N_COND: {
        cv t = eval_expr(c, n->kid[0], f);
        bool yes = cv_truthy(t);
        cv_unref(c, t);
        if (yes) return eval_expr(c, n->kid[1], f);
        if (n->kid[2]) return eval_expr(c, n->kid[2], f);
        return cv_undef();
    }
    case N_CONCAT: {
        cbuf *b = cb_new(c);
        for (int i = 0; i < n->n; i++) {
            cv v = eval_expr(c, n->kid[i], f);
            cv_write_str(c, b, v);
            cv_unref(c, v);
        }
        return cb_take(c, b);
    }
    default:
        chat_fail(c, HEARTH_ERR_INTERNAL, "InternalError", "unexpected node kind %d in an expression", n->kind);
    }
}

/* ---- statements ----------------------------------------------------------------- */

static void unpack(chat_ctx *c, const cnode *target, cv v, cframe *f) {
    if (target->kind == N_NAME) {
        frame_set(c, f, target->sym, cv_ref(v));
        return;
    }
    clist *items = cv_iterate(c, v);
    if (items->n != (size_t)target->n)
        chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "%s values to unpack (expected %d, got %zu)",
                  items->n > (size_t)target->n ? "too many" : "not enough", target->n, items->n);
    for (int i = 0; i < target->n; i++) frame_set(c, f, target->kid[i]->sym, cv_ref(items->v[i]));
    chat_obj_unref(c, &items->h);
}

static void assign(chat_ctx *c, const cnode *target, cv v, cframe *f) {
    if (target->kind != N_ATTR) {
        unpack(c, target, v, f);
        cv_unref(c, v);
        return;
    }
    cv ns = lookup(c, target->kid[0], f);
    if (ns.t != CV_NS)
        chat_fail(c, HEARTH_ERR_FORMAT, "TemplateRuntimeError", "cannot assign attribute on non-namespace object");
    cv key = {0};
    key.t = CV_STR;
    key.u.s = target->lit.u.s;
    cd_set(c, ns.u.d, key, v);
    cv_unref(c, ns);
}

static cv render_block(chat_ctx *c, const cnode *body, cframe *f) {
    cframe *fr = frame_new(c, f);
    cbuf *b = cb_new(c);
    exec_node(c, body, fr, b);
    chat_obj_unref(c, &fr->h);
    return cb_take(c, b);
}

static int run_for(chat_ctx *c, const cnode *n, cframe *f, cv seq, int depth, cbuf *out);

static int exec_for(chat_ctx *c, const cnode *n, cframe *f, cbuf *out) {
    cv seq = eval_expr(c, n->kid[1], f);
    c->line = n->line;
    int flow = run_for(c, n, f, seq, 1, out);
    cv_unref(c, seq);
    return flow;
}

cv call_loop(chat_ctx *c, cloop *lp, cargs *a) {
    if (!(lp->def->op & FOR_RECURSIVE))
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError",
                  "The loop must have the 'recursive' marker to be called recursively.");
    if (a->n != 1 || a->nk)
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "loop() takes exactly one argument (the items)");
    if (lp->depth >= c->max_depth)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError", "recursive loop nested deeper than %d", c->max_depth);
    cbuf *b = cb_new(c);
    run_for(c, lp->def, lp->scope, a->pos[0], lp->depth + 1, b);
    return cb_take(c, b);
}

static int run_for(chat_ctx *c, const cnode *n, cframe *f, cv seq, int depth, cbuf *out) {
    const cnode *target = n->kid[0], *body = n->kid[2], *other = n->kid[3], *filter = n->kid[4];
    clist *items = cv_iterate(c, seq);
    if (filter) {
        clist *kept = cl_new(c, 0);
        for (size_t i = 0; i < items->n; i++) {
            cframe *fr = frame_new(c, f);
            unpack(c, target, items->v[i], fr);
            cv t = eval_expr(c, filter, fr);
            if (cv_truthy(t)) cl_push(c, kept, cv_ref(items->v[i]));
            cv_unref(c, t);
            chat_obj_unref(c, &fr->h);
        }
        chat_obj_unref(c, &items->h);
        items = kept;
    }
    if (items->n == 0) {
        chat_obj_unref(c, &items->h);
        if (!other) return FLOW_NORMAL;
        cframe *fr = frame_new(c, f);
        int flow = exec_node(c, other, fr, out);
        chat_obj_unref(c, &fr->h);
        return flow;
    }
    cloop *lp = chat_heap_new(c, CV_LOOP, sizeof(cloop));
    lp->items = items;
    lp->depth = depth;
    lp->def = n;
    lp->scope = f;
    f->h.rc++;
    cv loopv = {0};
    loopv.t = CV_LOOP;
    loopv.u.h = &lp->h;
    for (size_t i = 0; i < items->n; i++) {
        chat_steps(c, 1);
        lp->i = i;
        cframe *fr = frame_new(c, f);
        unpack(c, target, items->v[i], fr);
        frame_set(c, fr, c->tpl->sym_loop, cv_ref(loopv));
        int flow = exec_node(c, body, fr, out);
        chat_obj_unref(c, &fr->h);
        if (flow == FLOW_BREAK) break;
    }
    cv_unref(c, loopv);
    return FLOW_NORMAL;
}

static int exec_inner(chat_ctx *c, const cnode *n, cframe *f, cbuf *out);

static int exec_node(chat_ctx *c, const cnode *n, cframe *f, cbuf *out) {
    enter(c);
    int flow = exec_inner(c, n, f, out);
    c->nest--;
    return flow;
}

static int exec_inner(chat_ctx *c, const cnode *n, cframe *f, cbuf *out) {
    chat_steps(c, 1);
    c->line = n->line;
    switch (n->kind) {
    case N_BODY:
        for (int i = 0; i < n->n; i++) {
            int flow = exec_node(c, n->kid[i], f, out);
            if (flow != FLOW_NORMAL) return flow;
        }
        return FLOW_NORMAL;
    case N_TEXT: cb_put(c, out, n->lit.u.s->s, n->lit.u.s->len); return FLOW_NORMAL;
    case N_OUTPUT: {
        cv v = eval_expr(c, n->kid[0], f);
        cv_write_str(c, out, v);
        cv_unref(c, v);
        return FLOW_NORMAL;
    }
    case N_IF: {
        cv t = eval_expr(c, n->kid[0], f);
        bool yes = cv_truthy(t);
        cv_unref(c, t);
        if (yes) return exec_node(c, n->kid[1], f, out);
        if (n->kid[2]) return exec_node(c, n->kid[2], f, out);
        return FLOW_NORMAL;
    }
    case N_FOR: return exec_for(c, n, f, out);
    case N_BREAK: return FLOW_BREAK;
    case N_CONTINUE: return FLOW_CONTINUE;
    case N_SET: assign(c, n->kid[0], eval_expr(c, n->kid[1], f), f); return FLOW_NORMAL;
    case N_SETBLOCK: {
        cv v = render_block(c, n->kid[1], f);
        if (n->kid[2]) {
            cv r = eval_filter(c, n->kid[2], f, v);
            cv_unref(c, v);
            v = r;
        }
        assign(c, n->kid[0], v, f);
        return FLOW_NORMAL;
    }
    case N_FILTERBLOCK: {
        cv v = render_block(c, n->kid[1], f);
        cv r = eval_filter(c, n->kid[0], f, v);
        cv_write_str(c, out, r);
        cv_unref(c, r);
        cv_unref(c, v);
        return FLOW_NORMAL;
    }
    case N_MACRO: {
        cmacro *m = chat_heap_new(c, CV_MACRO, sizeof(cmacro));
        m->def = n;
        m->closure = f;
        f->h.rc++;
        cv v = {0};
        v.t = CV_MACRO;
        v.u.h = &m->h;
        frame_set(c, f, n->sym, v);
        return FLOW_NORMAL;
    }
    case N_CALLBLOCK: {
        cmacro *m = chat_heap_new(c, CV_MACRO, sizeof(cmacro));
        m->def = n;
        m->closure = f;
        f->h.rc++;
        cv caller = {0};
        caller.t = CV_MACRO;
        caller.u.h = &m->h;
        cv r = eval_call(c, n->kid[0], f, caller);
        cv_write_str(c, out, r);
        cv_unref(c, r);
        cv_unref(c, caller);
        return FLOW_NORMAL;
    }
    case N_WITH: {
        cframe *fr = frame_new(c, f);
        for (int i = 1; i < n->n; i++) frame_set(c, fr, n->kid[i]->sym, eval_expr(c, n->kid[i]->kid[0], f));
        int flow = exec_node(c, n->kid[0], fr, out);
        chat_obj_unref(c, &fr->h);
        return flow;
    }
    default: {
        cv v = eval_expr(c, n, f);
        cv_unref(c, v);
        return FLOW_NORMAL;
    }
    }
}

void exec_body(chat_ctx *c, const cnode *n, cframe *f, cbuf *out) { exec_node(c, n, f, out); }
