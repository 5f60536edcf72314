/* Parser: tokens to the syntax tree, following Jinja2's grammar and operator
 * precedence. Nodes live in the template's arena. Refuses include/import/extends and
 * anything else outside the sandboxed subset with a clear message and line; nesting is
 * capped so that evaluating the tree cannot exhaust the C stack. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "chat/chat_internal.h"

#define MAX_PARSE_DEPTH 200

typedef struct parser {
    struct chat_template *t;
    const ctoks *toks;
    size_t pos;
    hearth_err *err;
    bool failed;
    int depth;
} parser;

static const ctok *cur(parser *p) { return &p->toks->v[p->pos]; }
static const ctok *peek(parser *p, size_t k) {
    size_t i = p->pos + k;
    return &p->toks->v[i < p->toks->n ? i : p->toks->n - 1];
}
static void advance(parser *p) {
    if (p->pos + 1 < p->toks->n) p->pos++;
}

static const char *tok_desc(const ctok *k) {
    switch (k->type) {
    case TK_EOF: return "end of template";
    case TK_DATA: return "template text";
    case TK_VBEGIN: return "'{{'";
    case TK_VEND: return "'}}'";
    case TK_BBEGIN: return "'{%'";
    case TK_BEND: return "'%}'";
    case TK_NAME: return k->str->s;
    case TK_STRING: return "a string";
    case TK_INT: return "an integer";
    case TK_FLOAT: return "a float";
    default: return "an operator";
    }
}

static void *fail(parser *p, const char *fmt, const char *arg) {
    if (!p->failed) {
        char what[256];
        snprintf(what, sizeof what, fmt, arg);
        err_set(p->err, HEARTH_ERR_FORMAT, "template syntax error at line %d: %s", cur(p)->line, what);
    }
    p->failed = true;
    return NULL;
}

static void *oom(parser *p) {
    if (!p->failed) err_set(p->err, HEARTH_ERR_NOMEM, "out of memory while compiling a template");
    p->failed = true;
    return NULL;
}

static bool is_name(parser *p, const char *name) {
    return cur(p)->type == TK_NAME && !strcmp(cur(p)->str->s, name);
}
static bool is_op(parser *p, uint8_t op) { return cur(p)->type == TK_OP && cur(p)->op == op; }

static bool expect_op(parser *p, uint8_t op, const char *text) {
    if (is_op(p, op)) {
        advance(p);
        return true;
    }
    char what[64];
    snprintf(what, sizeof what, "expected '%s', got %%s", text);
    fail(p, what, tok_desc(cur(p)));
    return false;
}

static bool expect_end(parser *p) {
    if (cur(p)->type == TK_BEND) {
        advance(p);
        return true;
    }
    fail(p, "expected end of statement '%%}', got %s", tok_desc(cur(p)));
    return false;
}

static cnode *node(parser *p, uint8_t kind, int line) {
    cnode *n = chat_arena_alloc(p->t, sizeof(cnode));
    if (!n) return oom(p);
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = line;
    n->sym = -1;
    return n;
}

/* Appends kid (which may be NULL: an absent optional part) to n. */
static bool add(parser *p, cnode *n, cnode *kid) {
    if (!n) return false;
    if ((n->n & (n->n - 1)) == 0) { /* grow at powers of two */
        size_t cap = n->n ? (size_t)n->n * 2 : 2;
        cnode **k = chat_arena_alloc(p->t, cap * sizeof *k);
        if (!k) return oom(p);
        if (n->n) memcpy(k, n->kid, (size_t)n->n * sizeof *k);
        n->kid = k;
    }
    n->kid[n->n++] = kid;
    return true;
}

static cnode *binop(parser *p, uint8_t kind, uint8_t op, cnode *a, cnode *b, int line) {
    if (!a || !b) return NULL;
    cnode *n = node(p, kind, line);
    if (!n) return NULL;
    n->op = op;
    add(p, n, a);
    add(p, n, b);
    return n;
}

static cnode *parse_expr(parser *p, bool with_cond);
static cnode *parse_unary(parser *p, bool with_filter);
static cnode *parse_tuple(parser *p, bool with_cond, const char *end_name, bool explicit_parens);
static cnode *parse_primary(parser *p);
static cnode *parse_postfix(parser *p, cnode *n);

static bool enter(parser *p) {
    if (++p->depth > MAX_PARSE_DEPTH) {
        fail(p, "%s", "template nested too deeply");
        return false;
    }
    return true;
}

/* Call arguments after '(' up to ')': positional expressions and name=value. */
static bool parse_args(parser *p, cnode *call) {
    if (!expect_op(p, P_LPAREN, "(")) return false;
    bool first = true;
    while (!is_op(p, P_RPAREN)) {
        if (!first && !expect_op(p, P_COMMA, ",")) return false;
        if (is_op(p, P_RPAREN)) break;
        first = false;
        if (is_op(p, P_MUL) || is_op(p, P_POW)) {
            fail(p, "%s", "*args and **kwargs in calls are not supported");
            return false;
        }
        if (cur(p)->type == TK_NAME && peek(p, 1)->type == TK_OP && peek(p, 1)->op == P_ASSIGN) {
            cnode *kw = node(p, N_KWARG, cur(p)->line);
            if (!kw) return false;
            kw->lit.t = CV_STR;
            kw->lit.u.s = cur(p)->str;
            advance(p);
            advance(p);
            if (!add(p, kw, parse_expr(p, true)) || !kw->kid[0]) return false;
            if (!add(p, call, kw)) return false;
        } else {
            cnode *e = parse_expr(p, true);
            if (!e || !add(p, call, e)) return false;
        }
    }
    advance(p);
    return true;
}

static cnode *parse_filter(parser *p, cnode *operand) {
    advance(p); /* '|' */
    if (cur(p)->type != TK_NAME) return fail(p, "expected a filter name, got %s", tok_desc(cur(p)));
    cnode *f = node(p, N_FILTER, cur(p)->line);
    if (!f) return NULL;
    f->lit.t = CV_STR;
    f->lit.u.s = cur(p)->str;
    f->sym = chat_filter_id(cur(p)->str->s);
    advance(p);
    add(p, f, operand);
    if (is_op(p, P_LPAREN) && !parse_args(p, f)) return NULL;
    return p->failed ? NULL : f;
}

static cnode *parse_test(parser *p, cnode *operand) {
    advance(p); /* 'is' */
    bool negated = false;
    if (is_name(p, "not")) {
        negated = true;
        advance(p);
    }
    if (cur(p)->type != TK_NAME) return fail(p, "expected a test name, got %s", tok_desc(cur(p)));
    cnode *t = node(p, N_TEST, cur(p)->line);
    if (!t) return NULL;
    t->op = negated;
    t->lit.t = CV_STR;
    t->lit.u.s = cur(p)->str;
    t->sym = chat_test_id(cur(p)->str->s);
    advance(p);
    add(p, t, operand);
    const ctok *k = cur(p);
    if (is_op(p, P_LPAREN)) {
        if (!parse_args(p, t)) return NULL;
    } else if ((k->type == TK_NAME && strcmp(k->str->s, "else") && strcmp(k->str->s, "or") &&
                strcmp(k->str->s, "and")) ||
               k->type == TK_STRING || k->type == TK_INT || k->type == TK_FLOAT ||
               (k->type == TK_OP && (k->op == P_LBRACKET || k->op == P_LBRACE))) {
        if (k->type == TK_NAME && (!strcmp(k->str->s, "is") || !strcmp(k->str->s, "in") ||
                                   !strcmp(k->str->s, "if") || !strcmp(k->str->s, "not")))
            return t;
        cnode *arg = parse_postfix(p, parse_primary(p));
        if (!arg || !add(p, t, arg)) return NULL;
    }
    return p->failed ? NULL : t;
}

static cnode *parse_subscript(parser *p, cnode *obj) {
    int line = cur(p)->line;
    if (is_op(p, P_DOT)) {
        advance(p);
        if (cur(p)->type == TK_NAME) {
            cnode *n = node(p, N_ATTR, line);
            if (!n) return NULL;
            n->lit.t = CV_STR;
            n->lit.u.s = cur(p)->str;
            advance(p);
            add(p, n, obj);
            return n;
        }
        if (cur(p)->type == TK_INT) {
            cnode *key = node(p, N_LIT, line);
            if (!key) return NULL;
            key->lit = cv_int(cur(p)->i);
            advance(p);
            return binop(p, N_ITEM, 0, obj, key, line);
        }
        return fail(p, "expected a name or number after '.', got %s", tok_desc(cur(p)));
    }
    advance(p); /* '[' */
    cnode *parts[3] = {0};
    int np = 0;
    bool slice = false;
    for (;;) {
        if (is_op(p, P_COLON)) {
            slice = true;
            if (np >= 2) return fail(p, "%s", "too many ':' in a slice");
            np++;
            advance(p);
            continue;
        }
        if (is_op(p, P_RBRACKET)) break;
        if (parts[np]) return fail(p, "expected ']', got %s", tok_desc(cur(p)));
        parts[np] = slice ? parse_expr(p, true) : parse_tuple(p, true, NULL, false);
        if (!parts[np]) return NULL;
        if (!slice && !is_op(p, P_COLON) && !is_op(p, P_RBRACKET))
            return fail(p, "expected ']' or ':', got %s", tok_desc(cur(p)));
    }
    advance(p);
    if (!slice) {
        if (!parts[0]) return fail(p, "%s", "empty subscript");
        return binop(p, N_ITEM, 0, obj, parts[0], line);
    }
    cnode *n = node(p, N_SLICE, line);
    if (!n) return NULL;
    add(p, n, obj);
    for (int i = 0; i < 3; i++) add(p, n, parts[i]);
    return p->failed ? NULL : n;
}

static cnode *parse_postfix(parser *p, cnode *n) {
    while (n) {
        if (is_op(p, P_DOT) || is_op(p, P_LBRACKET)) n = parse_subscript(p, n);
        else if (is_op(p, P_LPAREN)) {
            cnode *call = node(p, N_CALL, cur(p)->line);
            if (!call || !add(p, call, n) || !parse_args(p, call)) return NULL;
            n = call;
        } else
            break;
    }
    return n;
}

static cnode *parse_filter_expr(parser *p, cnode *n) {
    while (n) {
        if (is_op(p, P_PIPE)) n = parse_filter(p, n);
        else if (is_name(p, "is")) n = parse_test(p, n);
        else if (is_op(p, P_LPAREN)) {
            cnode *call = node(p, N_CALL, cur(p)->line);
            if (!call || !add(p, call, n) || !parse_args(p, call)) return NULL;
            n = call;
        } else
            break;
    }
    return n;
}

static cnode *literal(parser *p, cv v) {
    cnode *n = node(p, N_LIT, cur(p)->line);
    if (n) n->lit = v;
    advance(p);
    return n;
}

static cnode *parse_primary(parser *p) {
    const ctok *k = cur(p);
    int line = k->line;
    switch (k->type) {
    case TK_NAME: {
        const char *s = k->str->s;
        if (!strcmp(s, "true") || !strcmp(s, "True")) return literal(p, cv_bool(true));
        if (!strcmp(s, "false") || !strcmp(s, "False")) return literal(p, cv_bool(false));
        if (!strcmp(s, "none") || !strcmp(s, "None")) return literal(p, cv_none());
        cnode *n = node(p, N_NAME, line);
        if (!n) return NULL;
        n->lit.t = CV_STR;
        n->lit.u.s = k->str;
        n->sym = chat_symbol(p->t, s);
        if (n->sym < 0) return oom(p);
        advance(p);
        return n;
    }
    case TK_STRING: {
        if (peek(p, 1)->type != TK_STRING) {
            cv v = {0};
            v.t = CV_STR;
            v.u.s = k->str;
            return literal(p, v);
        }
        size_t total = 0, i = 0;
        while (peek(p, i)->type == TK_STRING) total += peek(p, i++)->str->len;
        char *buf = mem_alloc(total + 1);
        if (!buf) return oom(p);
        size_t o = 0;
        while (cur(p)->type == TK_STRING) {
            memcpy(buf + o, cur(p)->str->s, cur(p)->str->len);
            o += cur(p)->str->len;
            advance(p);
        }
        cstr *s = chat_str_immortal(p->t, buf, o);
        mem_free(buf);
        if (!s) return oom(p);
        cnode *n = node(p, N_LIT, line);
        if (!n) return NULL;
        n->lit.t = CV_STR;
        n->lit.u.s = s;
        return n;
    }
    case TK_INT: return literal(p, cv_int(k->i));
    case TK_FLOAT: return literal(p, cv_float(k->f));
    case TK_OP:
        if (k->op == P_LPAREN) {
            advance(p);
            cnode *n = parse_tuple(p, true, NULL, true);
            if (!n || !expect_op(p, P_RPAREN, ")")) return NULL;
            return n;
        }
        if (k->op == P_LBRACKET) {
            advance(p);
            cnode *n = node(p, N_LIST, line);
            while (n && !is_op(p, P_RBRACKET)) {
                if (n->n && !expect_op(p, P_COMMA, ",")) return NULL;
                if (is_op(p, P_RBRACKET)) break;
                cnode *e = parse_expr(p, true);
                if (!e || !add(p, n, e)) return NULL;
            }
            advance(p);
            return n;
        }
        if (k->op == P_LBRACE) {
            advance(p);
            cnode *n = node(p, N_DICT, line);
            while (n && !is_op(p, P_RBRACE)) {
                if (n->n && !expect_op(p, P_COMMA, ",")) return NULL;
                if (is_op(p, P_RBRACE)) break;
                cnode *key = parse_expr(p, true);
                if (!key || !expect_op(p, P_COLON, ":")) return NULL;
                cnode *val = parse_expr(p, true);
                if (!val || !add(p, n, key) || !add(p, n, val)) return NULL;
            }
            advance(p);
            return n;
        }
        break;
    default: break;
    }
    return fail(p, "unexpected %s", tok_desc(k));
}

static cnode *parse_unary(parser *p, bool with_filter) {
    if (!enter(p)) return NULL;
    int line = cur(p)->line;
    cnode *n;
    if (is_op(p, P_SUB) || is_op(p, P_ADD)) {
        uint8_t kind = is_op(p, P_SUB) ? N_NEG : N_POS;
        advance(p);
        cnode *operand = parse_unary(p, false);
        n = operand ? node(p, kind, line) : NULL;
        if (n) add(p, n, operand);
    } else
        n = parse_primary(p);
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static cnode *parse_pow(parser *p) {
    cnode *a = parse_unary(p, true);
    while (a && is_op(p, P_POW)) {
        int line = cur(p)->line;
        advance(p);
        a = binop(p, N_BINOP, OP_POW, a, parse_unary(p, true), line);
    }
    return a;
}

static cnode *parse_math2(parser *p) {
    cnode *a = parse_pow(p);
    for (;;) {
        uint8_t op = is_op(p, P_MUL) ? OP_MUL : is_op(p, P_DIV) ? OP_DIV : is_op(p, P_FLOORDIV) ? OP_FLOORDIV
                   : is_op(p, P_MOD) ? OP_MOD : 0;
        if (!a || !op) return a;
        int line = cur(p)->line;
        advance(p);
        a = binop(p, N_BINOP, op, a, parse_pow(p), line);
    }
}

static cnode *parse_concat(parser *p) {
    cnode *a = parse_math2(p);
    if (!a || !is_op(p, P_TILDE)) return a;
    cnode *n = node(p, N_CONCAT, cur(p)->line);
    add(p, n, a);
    while (n && is_op(p, P_TILDE)) {
        advance(p);
        cnode *b = parse_math2(p);
        if (!b || !add(p, n, b)) return NULL;
    }
    return n;
}

static cnode *parse_math1(parser *p) {
    cnode *a = parse_concat(p);
    for (;;) {
        uint8_t op = is_op(p, P_ADD) ? OP_ADD : is_op(p, P_SUB) ? OP_SUB : 0;
        if (!a || !op) return a;
        int line = cur(p)->line;
        advance(p);
        a = binop(p, N_BINOP, op, a, parse_concat(p), line);
    }
}

static cnode *parse_compare(parser *p) {
    cnode *a = parse_math1(p), *result = NULL;
    for (;;) {
        if (!a) return NULL;
        const ctok *k = cur(p);
        uint8_t op = 0;
        if (k->type == TK_OP)
            op = k->op == P_EQ ? OP_EQ : k->op == P_NE ? OP_NE : k->op == P_LT ? OP_LT : k->op == P_LE ? OP_LE
               : k->op == P_GT ? OP_GT : k->op == P_GE ? OP_GE : 0;
        else if (is_name(p, "in"))
            op = OP_IN;
        else if (is_name(p, "not") && peek(p, 1)->type == TK_NAME && !strcmp(peek(p, 1)->str->s, "in")) {
            op = OP_NOTIN;
            advance(p);
        }
        if (!op) return result ? result : a;
        int line = k->line;
        advance(p);
        cnode *b = parse_math1(p);
        cnode *cmp = binop(p, N_BINOP, op, a, b, line);
        if (!cmp) return NULL;
        result = result ? binop(p, N_AND, 0, result, cmp, line) : cmp;
        a = b;
    }
}

static cnode *parse_not(parser *p) {
    if (is_name(p, "not")) {
        int line = cur(p)->line;
        advance(p);
        if (!enter(p)) return NULL;
        cnode *a = parse_not(p);
        p->depth--;
        cnode *n = a ? node(p, N_NOT, line) : NULL;
        if (n) add(p, n, a);
        return n;
    }
    return parse_compare(p);
}

static cnode *parse_and(parser *p) {
    cnode *a = parse_not(p);
    while (a && is_name(p, "and")) {
        int line = cur(p)->line;
        advance(p);
        a = binop(p, N_AND, 0, a, parse_not(p), line);
    }
    return a;
}

static cnode *parse_or(parser *p) {
    cnode *a = parse_and(p);
    while (a && is_name(p, "or")) {
        int line = cur(p)->line;
        advance(p);
        a = binop(p, N_OR, 0, a, parse_and(p), line);
    }
    return a;
}

static cnode *parse_expr(parser *p, bool with_cond) {
    cnode *a = parse_or(p);
    if (!with_cond) return a;
    while (a && is_name(p, "if")) {
        int line = cur(p)->line;
        advance(p);
        cnode *test = parse_or(p), *other = NULL;
        if (!test) return NULL;
        if (is_name(p, "else")) {
            advance(p);
            if (!enter(p)) return NULL;
            other = parse_expr(p, true);
            p->depth--;
            if (!other) return NULL;
        }
        cnode *n = node(p, N_COND, line);
        if (!n) return NULL;
        add(p, n, test);
        add(p, n, a);
        add(p, n, other);
        a = n;
    }
    return a;
}

static bool tuple_end(parser *p, const char *end_name) {
    const ctok *k = cur(p);
    if (k->type == TK_VEND || k->type == TK_BEND || k->type == TK_EOF) return true;
    if (k->type == TK_OP && (k->op == P_RPAREN || k->op == P_RBRACKET)) return true;
    return end_name && is_name(p, end_name);
}

static cnode *parse_tuple(parser *p, bool with_cond, const char *end_name, bool explicit_parens) {
    int line = cur(p)->line;
    cnode *first = NULL, *tuple = NULL;
    for (;;) {
        if (first && !expect_op(p, P_COMMA, ",")) return NULL;
        if (tuple_end(p, end_name)) break;
        cnode *e = parse_expr(p, with_cond);
        if (!e) return NULL;
        if (!first) first = e;
        else {
            if (!tuple) {
                tuple = node(p, N_TUPLE, line);
                if (!add(p, tuple, first)) return NULL;
            }
            if (!add(p, tuple, e)) return NULL;
        }
        if (!is_op(p, P_COMMA)) break;
        if (!tuple) {
            tuple = node(p, N_TUPLE, line);
            if (!add(p, tuple, first)) return NULL;
        }
    }
    if (tuple) return tuple;
    if (first) return first;
    if (explicit_parens) return node(p, N_TUPLE, line);
    return fail(p, "expected an expression, got %s", tok_desc(cur(p)));
}

/* ---- statements ----------------------------------------------------------------- */

static cnode *parse_body(parser *p, const char *const *ends, int *which);

static cnode *name_target(parser *p) {
    if (cur(p)->type != TK_NAME) return fail(p, "expected a variable name, got %s", tok_desc(cur(p)));
    cnode *n = node(p, N_NAME, cur(p)->line);
    if (!n) return NULL;
    n->lit.t = CV_STR;
    n->lit.u.s = cur(p)->str;
    n->sym = chat_symbol(p->t, cur(p)->str->s);
    if (n->sym < 0) return oom(p);
    advance(p);
    return n;
}

/* name, name.attr (when with_ns), or a tuple of names. */
static cnode *parse_target(parser *p, bool with_ns, const char *end_name) {
    int line = cur(p)->line;
    cnode *first = name_target(p);
    if (!first) return NULL;
    if (with_ns && is_op(p, P_DOT)) {
        advance(p);
        if (cur(p)->type != TK_NAME) return fail(p, "expected an attribute name, got %s", tok_desc(cur(p)));
        cnode *n = node(p, N_ATTR, line);
        if (!n) return NULL;
        n->lit.t = CV_STR;
        n->lit.u.s = cur(p)->str;
        advance(p);
        add(p, n, first);
        return n;
    }
    if (!is_op(p, P_COMMA)) return first;
    cnode *t = node(p, N_TUPLE, line);
    add(p, t, first);
    while (t && is_op(p, P_COMMA)) {
        advance(p);
        if (tuple_end(p, end_name) || is_op(p, P_ASSIGN)) break;
        cnode *n = name_target(p);
        if (!n || !add(p, t, n)) return NULL;
    }
    return t;
}

/* `name` or `name = default` items of a macro or call-block signature, into n. */
static bool parse_params(parser *p, cnode *n) {
    if (!expect_op(p, P_LPAREN, "(")) return false;
    int count = 0;
    while (!is_op(p, P_RPAREN)) {
        if (count++ && !expect_op(p, P_COMMA, ",")) return false;
        if (is_op(p, P_RPAREN)) break;
        cnode *param = name_target(p);
        if (!param) return false;
        param->kind = N_KWARG;
        if (is_op(p, P_ASSIGN)) {
            advance(p);
            cnode *d = parse_expr(p, true);
            if (!d || !add(p, param, d)) return false;
        }
        if (!add(p, n, param)) return false;
    }
    advance(p);
    return true;
}

static cnode *parse_filter_chain(parser *p) {
    cnode *chain = NULL;
    if (cur(p)->type != TK_NAME) return fail(p, "expected a filter name, got %s", tok_desc(cur(p)));
    p->pos--; /* parse_filter skips the token before the name */
    do {
        chain = parse_filter(p, chain);
        if (!chain) return NULL;
    } while (is_op(p, P_PIPE));
    return chain;
}

static cnode *parse_if(parser *p, int line) {
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    cnode *n = node(p, N_IF, line);
    if (!n || !add(p, n, parse_expr(p, true)) || !n->kid[0] || !expect_end(p)) return NULL;
    int which;
    if (!add(p, n, parse_body(p, ends, &which)) || !n->kid[1]) return NULL;
    int eline = cur(p)->line;
    advance(p);
    if (which == 0) {
        if (!add(p, n, parse_if(p, eline)) || !n->kid[2]) return NULL;
        return n;
    }
    if (which == 1) {
        static const char *const end_only[] = {"endif", NULL};
        if (!expect_end(p) || !add(p, n, parse_body(p, end_only, &which)) || !n->kid[2]) return NULL;
        advance(p);
    } else
        add(p, n, NULL);
    return expect_end(p) ? n : NULL;
}

static cnode *parse_for(parser *p, int line) {
    static const char *const ends[] = {"else", "endfor", NULL};
    static const char *const end_only[] = {"endfor", NULL};
    cnode *n = node(p, N_FOR, line);
    if (!n || !add(p, n, parse_target(p, false, "in"))) return NULL;
    if (!n->kid[0]) return NULL;
    if (!is_name(p, "in")) return fail(p, "expected 'in', got %s", tok_desc(cur(p)));
    advance(p);
    cnode *iter = parse_tuple(p, false, "recursive", false);
    if (!iter || !add(p, n, iter)) return NULL;
    cnode *filter = NULL;
    if (is_name(p, "if")) {
        advance(p);
        filter = parse_expr(p, true);
        if (!filter) return NULL;
    }
    if (is_name(p, "recursive")) {
        advance(p);
        n->op |= FOR_RECURSIVE;
    }
    if (!expect_end(p)) return NULL;
    int which;
    cnode *body = parse_body(p, ends, &which), *other = NULL;
    if (!body) return NULL;
    advance(p);
    if (which == 0) {
        if (!expect_end(p) || !(other = parse_body(p, end_only, &which))) return NULL;
        advance(p);
    }
    if (!add(p, n, body) || !add(p, n, other) || !add(p, n, filter)) return NULL;
    return expect_end(p) ? n : NULL;
}

static cnode *parse_set(parser *p, int line) {
    cnode *target = parse_target(p, true, NULL);
    if (!target) return NULL;
    if (is_op(p, P_ASSIGN)) {
        advance(p);
        cnode *n = node(p, N_SET, line);
        cnode *value = parse_tuple(p, true, NULL, false);
        if (!value || !add(p, n, target) || !add(p, n, value) || !expect_end(p)) return NULL;
        return n;
    }
    if (target->kind == N_TUPLE) return fail(p, "%s", "a block set needs a single target");
    cnode *filter = NULL;
    if (is_op(p, P_PIPE)) {
        advance(p);
        if (!(filter = parse_filter_chain(p))) return NULL;
    }
    if (!expect_end(p)) return NULL;
    static const char *const ends[] = {"endset", NULL};
    int which;
    cnode *n = node(p, N_SETBLOCK, line);
    if (!add(p, n, target) || !add(p, n, parse_body(p, ends, &which)) || !n->kid[1] || !add(p, n, filter))
        return NULL;
    advance(p);
    return expect_end(p) ? n : NULL;
}

static cnode *parse_macro(parser *p, int line) {
    cnode *name = name_target(p);
    if (!name) return NULL;
    cnode *n = node(p, N_MACRO, line);
    if (!n) return NULL;
    n->lit = name->lit;
    n->sym = name->sym;
    add(p, n, NULL); /* body, filled below */
    if (!parse_params(p, n) || !expect_end(p)) return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    int which;
    if (!(n->kid[0] = parse_body(p, ends, &which))) return NULL;
    advance(p);
    if (cur(p)->type == TK_NAME) advance(p);
    return expect_end(p) ? n : NULL;
}

static cnode *parse_callblock(parser *p, int line) {
    cnode *n = node(p, N_CALLBLOCK, line);
    if (!n) return NULL;
    add(p, n, NULL);
    add(p, n, NULL);
    if (is_op(p, P_LPAREN) && !parse_params(p, n)) return NULL;
    n->kid[0] = parse_expr(p, true);
    if (!n->kid[0]) return NULL;
    if (n->kid[0]->kind != N_CALL) return fail(p, "%s", "expected a call after {% call %}");
    if (!expect_end(p)) return NULL;
    static const char *const ends[] = {"endcall", NULL};
    int which;
    if (!(n->kid[1] = parse_body(p, ends, &which))) return NULL;
    n->lit.t = CV_STR;
    n->lit.u.s = chat_str_immortal(p->t, "caller", 6);
    if (!n->lit.u.s) return oom(p);
    advance(p);
    return expect_end(p) ? n : NULL;
}

static cnode *parse_statement(parser *p) {
    int line = cur(p)->line;
    advance(p); /* '{%' */
    if (cur(p)->type != TK_NAME) return fail(p, "expected a statement name, got %s", tok_desc(cur(p)));
    const char *kw = cur(p)->str->s;
    if (!enter(p)) return NULL;
    advance(p);
    cnode *n = NULL;
    if (!strcmp(kw, "if")) n = parse_if(p, line);
    else if (!strcmp(kw, "for")) n = parse_for(p, line);
    else if (!strcmp(kw, "set")) n = parse_set(p, line);
    else if (!strcmp(kw, "macro")) n = parse_macro(p, line);
    else if (!strcmp(kw, "call")) n = parse_callblock(p, line);
    else if (!strcmp(kw, "break") || !strcmp(kw, "continue")) {
        n = node(p, kw[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        if (n && !expect_end(p)) n = NULL;
    } else if (!strcmp(kw, "filter")) {
        n = node(p, N_FILTERBLOCK, line);
        static const char *const ends[] = {"endfilter", NULL};
        int which;
        if (!add(p, n, parse_filter_chain(p)) || !n->kid[0] || !expect_end(p) ||
            !add(p, n, parse_body(p, ends, &which)) || !n->kid[1])
            n = NULL;
        else {
            advance(p);
            if (!expect_end(p)) n = NULL;
        }
    } else if (!strcmp(kw, "with")) {
        n = node(p, N_WITH, line);
        add(p, n, NULL);
        while (n && cur(p)->type != TK_BEND) {
            if (n->n > 1 && !expect_op(p, P_COMMA, ",")) return NULL;
            cnode *t = name_target(p);
            if (!t || !expect_op(p, P_ASSIGN, "=")) return NULL;
            t->kind = N_KWARG;
            if (!add(p, t, parse_expr(p, true)) || !t->kid[0] || !add(p, n, t)) return NULL;
        }
        static const char *const ends[] = {"endwith", NULL};
        int which;
        if (!n || !expect_end(p) || !(n->kid[0] = parse_body(p, ends, &which))) return NULL;
        advance(p);
        if (!expect_end(p)) return NULL;
    } else if (!strcmp(kw, "generation")) {
        static const char *const ends[] = {"endgeneration", NULL};
        int which;
        if (!expect_end(p) || !(n = parse_body(p, ends, &which))) return NULL;
        advance(p);
        if (!expect_end(p)) return NULL;
    } else if (!strcmp(kw, "include") || !strcmp(kw, "import") || !strcmp(kw, "from") ||
               !strcmp(kw, "extends") || !strcmp(kw, "block")) {
        p->pos--;
        return fail(p, "'%s' is not supported in chat templates", kw);
    } else {
        p->pos--;
        return fail(p, "unknown tag '%s'", kw);
    }
    p->depth--;
    return n;
}

/* Statements up to EOF (ends == NULL) or a block tag naming one of ends: then *which is
 * its index and the parser stands on that name. */
static cnode *parse_body(parser *p, const char *const *ends, int *which) {
    cnode *body = node(p, N_BODY, cur(p)->line);
    while (body && !p->failed) {
        const ctok *k = cur(p);
        if (k->type == TK_EOF) {
            if (!ends) return body;
            return fail(p, "unexpected end of template, expected '%s'", ends[0]);
        }
        if (k->type == TK_DATA) {
            cnode *t = node(p, N_TEXT, k->line);
            if (!t) return NULL;
            t->lit.t = CV_STR;
            t->lit.u.s = k->str;
            advance(p);
            if (!add(p, body, t)) return NULL;
        } else if (k->type == TK_VBEGIN) {
            cnode *o = node(p, N_OUTPUT, k->line);
            advance(p);
            if (!o || !add(p, o, parse_tuple(p, true, NULL, false)) || !o->kid[0]) return NULL;
            if (cur(p)->type != TK_VEND) return fail(p, "expected '}}', got %s", tok_desc(cur(p)));
            advance(p);
            if (!add(p, body, o)) return NULL;
        } else if (k->type == TK_BBEGIN) {
            const ctok *name = peek(p, 1);
            if (ends && name->type == TK_NAME)
                for (int i = 0; ends[i]; i++)
                    if (!strcmp(name->str->s, ends[i])) {
                        *which = i;
                        advance(p);
                        return body;
                    }
            cnode *s = parse_statement(p);
            if (!s || !add(p, body, s)) return NULL;
        } else
            return fail(p, "unexpected %s", tok_desc(k));
    }
    return NULL;
}

hearth_status chat_parse(struct chat_template *t, const ctoks *toks, hearth_err *err) {
    parser p = {.t = t, .toks = toks, .err = err};
    t->root = parse_body(&p, NULL, NULL);
    if (!t->root && !p.failed) oom(&p);
    return p.failed ? err->status : HEARTH_OK;
}
