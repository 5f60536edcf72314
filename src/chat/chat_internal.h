/* Internal types of the chat-template interpreter: values, the per-render heap, the
 * token stream and the syntax tree. Shared by the chat_*.c files only; nothing outside
 * src/chat may include it.
 *
 * Memory model: every object a render creates (strings, lists, dicts, frames, buffers)
 * is linked into the render's heap list and reference counted. Dropping the last
 * reference frees an object at once; whatever is left when the render ends or fails
 * (cycles through namespaces, references held by C frames unwound by an error) is
 * swept in one pass. Errors unwind with longjmp to the render entry point, so no code
 * here checks return values for failure: chat_fail() never returns. */
#ifndef CHAT_INTERNAL_H
#define CHAT_INTERNAL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "hearth.h"

/* ---- values ------------------------------------------------------------------- */

enum {
    CV_UNDEF, CV_NONE, CV_BOOL, CV_INT, CV_FLOAT, CV_STR, CV_LIST, CV_DICT,
    CV_NS,    /* namespace(): a dict whose attributes may be assigned */
    CV_ITER,  /* one-shot iterator (what map/select/unique/items/reverse return) */
    CV_LOOP,  /* the `loop` object of a for statement */
    CV_MACRO, /* a macro (or the `caller` of a call block) */
    CV_FUNC,  /* a builtin global or a method bound to its object */
    CV_FRAME, CV_BUF /* heap kinds that are never values */
};

/* Why an undefined value is undefined; the error raised when it is misused. */
enum { UH_NONE, UH_NAME, UH_ATTR, UH_ELEM_INT, UH_MSG,
       UH_UNSAFE /* the sandbox refused an attribute: using it raises SecurityError */ };

typedef struct chdr {
    struct chdr *prev, *next; /* render heap list; NULL for immortal objects */
    size_t size;              /* bytes accounted to the render's memory budget */
    uint32_t rc;
    uint8_t kind;
} chdr;
#define CHAT_IMMORTAL UINT32_MAX

typedef struct cstr {
    chdr h;
    size_t len;   /* bytes, excluding the terminating NUL */
    int8_t ascii; /* 1 all ASCII, 0 not, -1 not known yet */
    bool safe;    /* markupsafe.Markup: `+` HTML-escapes a plain string joined to it */
    char s[];
} cstr;

struct clist;
struct cdict;

typedef struct cv {
    uint8_t t;
    uint8_t hk; /* undefined: UH_* */
    uint8_t ho; /* undefined: type code (CV_*) of the object that lacked the attribute */
    union {
        bool b;
        int64_t i;
        double f;
        cstr *s; /* CV_STR; CV_UNDEF with UH_NAME/UH_ATTR/UH_MSG (may be NULL) */
        struct clist *l;
        struct cdict *d;
        chdr *h;
    } u;
} cv;

typedef struct clist {
    chdr h;
    size_t n, cap;
    cv *v;
    bool tuple;
    bool group;   /* a tuple from groupby: also has the attributes grouper and list */
    uint8_t view; /* VIEW_*: what dict.keys()/values()/items() gave (named so in Python) */
} clist;
enum { VIEW_NONE, VIEW_KEYS, VIEW_VALUES, VIEW_ITEMS };

typedef struct cdict { /* insertion ordered; also the storage of a namespace */
    chdr h;
    size_t n, cap;
    cv *k, *v;
} cdict;

typedef struct citer {
    chdr h;
    clist *items;
    size_t pos;
    const char *pyname; /* "generator", "list_reverseiterator", ... */
} citer;

typedef struct cloop {
    chdr h;
    clist *items;
    size_t i;
    int depth;               /* 1 for the outer loop; nested calls of a recursive loop add 1 */
    const struct cnode *def; /* the N_FOR node (called as loop(items) when recursive) */
    struct cframe *scope;    /* the frame the for statement runs in (a reference) */
    cv changed_last; /* for loop.changed() */
    bool changed_set;
} cloop;

struct cnode;
struct cframe;

typedef struct cmacro {
    chdr h;
    const struct cnode *def; /* N_MACRO or N_CALLBLOCK node */
    struct cframe *closure;
    cv caller;               /* the caller macro bound at a call block, else undefined */
} cmacro;

typedef struct cfunc {
    chdr h;
    int id;  /* global function id, or -1 for a method bound to self */
    cv self; /* bound object, or undefined for globals */
    cv name; /* method name (a string) */
} cfunc;

typedef struct cframe {
    chdr h;
    struct cframe *parent;
    size_t n, cap;
    int *sym;
    cv *val;
} cframe;

typedef struct cbuf {
    chdr h;
    char *p;
    size_t n, cap;
} cbuf;

/* ---- syntax tree -------------------------------------------------------------- */

enum {
    /* expressions */
    N_LIT, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_KWARG,
    N_FILTER, N_TEST, N_BINOP, N_NEG, N_POS, N_NOT, N_AND, N_OR, N_COMPARE, N_COND,
    N_CONCAT,
    /* statements */
    N_BODY, N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK,
    N_FILTERBLOCK, N_WITH, N_BREAK, N_CONTINUE
};

enum { FOR_FILTER = 1, FOR_RECURSIVE = 2 };

/* binary / comparison operators */
enum {
    OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
};

typedef struct cnode {
    uint8_t kind;
    uint8_t op;   /* operator; N_TEST: 1 when negated; N_FOR: FOR_* flags */
    int line;
    int n;        /* number of kids */
    struct cnode **kid;
    cv lit;       /* N_LIT value; N_ATTR/N_KWARG/N_FILTER/N_TEST/N_MACRO name (immortal) */
    int sym;      /* N_NAME symbol; N_FILTER/N_TEST function index (-1 unknown) */
} cnode;

/* Layout of kids per kind:
 *  N_ATTR [obj]                     N_ITEM [obj, key]     N_SLICE [obj, start?, stop?, step?]
 *  N_CALL [callee, args...]         N_KWARG [value]       N_FILTER/N_TEST [operand?, args...]
 *  N_COMPARE [a, b, c...] with ops in the kid's `op` of each right operand
 *  N_COND [test, then, else?]       N_IF [test, body, else?]
 *  N_FOR [target, iter, body, else?, filter?] (op: 1 filter, 2 recursive)   N_SET [target, value]
 *  N_SETBLOCK [target, body, filter chain?]     N_MACRO [body, param defaults...]
 *    (param names: kid i's lit for i>0 is the N_KWARG name; a NULL value kid = no default)
 *  N_CALLBLOCK [call, body, params like N_MACRO...] N_FILTERBLOCK [filter chain, body]
 *  N_WITH [body, N_KWARG assignments...] */

/* ---- compiled template -------------------------------------------------------- */

typedef struct chat_arena_block {
    struct chat_arena_block *next;
    size_t used, cap;
    max_align_t data[];
} chat_arena_block;

struct chat_template {
    chat_arena_block *arena;
    cnode *root;
    char **syms;    /* symbol names, by id */
    int nsyms, capsyms;
    int *sym_global; /* global function id per symbol, or -1 */
    int sym_loop, sym_varargs, sym_kwargs, sym_caller;
};

void *chat_arena_alloc(struct chat_template *t, size_t size); /* NULL when out of memory */

/* ---- render context ----------------------------------------------------------- */

typedef struct chat_ctx {
    jmp_buf jmp;
    hearth_err *err;
    hearth_status fail_status;
    chdr heap;          /* sentinel of the list of live objects */
    chdr *free_queue;   /* objects whose count reached zero, waiting to be released */
    bool freeing;
    uint64_t steps, max_steps;
    size_t max_output;  /* cap on any string, and on the rendered text */
    size_t live, max_live; /* bytes held by live objects, and the cap */
    int depth, max_depth;  /* macro call depth */
    int nest;              /* evaluation recursion depth (bounds the C stack) */
    int line;              /* template line being evaluated */
    const struct chat_template *tpl;
    cv *vars;              /* context variable per symbol id (undefined when absent) */
    struct tm now;         /* the local time strftime_now formats */
} chat_ctx;

_Noreturn void chat_fail(chat_ctx *c, hearth_status st, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
_Noreturn void chat_fail_undef(chat_ctx *c, cv u);
_Noreturn void chat_nomem(chat_ctx *c);

static inline void chat_steps(chat_ctx *c, uint64_t n) {
    c->steps += n;
    if (c->steps > c->max_steps)
        chat_fail(c, HEARTH_ERR_RANGE, "LimitError",
                  "template exceeded its budget of %llu evaluation steps",
                  (unsigned long long)c->max_steps);
}

/* ---- value helpers (chat_value.c) --------------------------------------------- */

static inline cv cv_undef(void) { cv v = {0}; v.t = CV_UNDEF; return v; }
static inline cv cv_none(void) { cv v = {0}; v.t = CV_NONE; return v; }
static inline cv cv_bool(bool b) { cv v = {0}; v.t = CV_BOOL; v.u.b = b; return v; }
static inline cv cv_int(int64_t i) { cv v = {0}; v.t = CV_INT; v.u.i = i; return v; }
static inline cv cv_float(double f) { cv v = {0}; v.t = CV_FLOAT; v.u.f = f; return v; }
static inline bool cv_is_heap(cv v) {
    return v.t >= CV_STR ||
           (v.t == CV_UNDEF && (v.hk == UH_NAME || v.hk == UH_ATTR || v.hk == UH_MSG || v.hk == UH_UNSAFE) && v.u.s);
}

void *chat_heap_new(chat_ctx *c, uint8_t kind, size_t size);
void chat_heap_grow(chat_ctx *c, chdr *h, void **arr, size_t *cap, size_t need, size_t elem);
void chat_heap_sweep(chat_ctx *c);
cv cv_ref(cv v);
void cv_unref(chat_ctx *c, cv v);
void chat_obj_unref(chat_ctx *c, chdr *h);

cv cv_str(chat_ctx *c, const char *s, size_t n);
cv cv_strz(chat_ctx *c, const char *s);
cv cv_strf(chat_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cstr *chat_str_immortal(struct chat_template *t, const char *s, size_t n); /* NULL on OOM */
bool cs_ascii(cstr *s);
size_t cs_cplen(cstr *s);           /* length in code points */
size_t cs_cp_offset(cstr *s, size_t cp); /* byte offset of code point cp (cp <= length) */

clist *cl_new(chat_ctx *c, size_t cap);
void cl_push(chat_ctx *c, clist *l, cv v); /* takes v */
cv cv_list(clist *l);
cdict *cd_new(chat_ctx *c, uint8_t kind);
void cd_set(chat_ctx *c, cdict *d, cv k, cv v); /* takes k and v */
cv *cd_get(chat_ctx *c, cdict *d, cv k);        /* borrowed, NULL when absent */
cv *cd_gets(cdict *d, const char *s, size_t n);
cv cv_dict(cdict *d);
cv cv_iter(chat_ctx *c, clist *items, const char *pyname); /* takes items */

cbuf *cb_new(chat_ctx *c);
void cb_put(chat_ctx *c, cbuf *b, const char *s, size_t n);
void cb_puts(chat_ctx *c, cbuf *b, const char *s);
void cb_putc(chat_ctx *c, cbuf *b, char ch);
cv cb_take(chat_ctx *c, cbuf *b); /* the contents as a string value; frees b */

bool cv_truthy(cv v);
bool cv_eq(chat_ctx *c, cv a, cv b);
int cv_cmp(chat_ctx *c, cv a, cv b, const char *opname); /* <0, 0, >0; TypeError if unordered */
const char *cv_pytype(cv v);     /* Python type name: "dict", "str", "NoneType", ... */
const char *cv_objrepr(uint8_t t); /* Jinja's object_type_repr: "dict object", "None" */
void cv_write_str(chat_ctx *c, cbuf *b, cv v);
void cv_write_repr(chat_ctx *c, cbuf *b, cv v, int depth);
cv cv_tostr(chat_ctx *c, cv v); /* str(v) as a new reference */
void fmt_pyfloat(double f, char out[40]); /* Python repr() of a float */

/* Iteration: the items of an iterable as a list (new reference). Undefined iterates as
 * empty; strings give characters, dicts their keys, iterators their remaining items. */
clist *cv_iterate(chat_ctx *c, cv v);

/* ---- frames ------------------------------------------------------------------- */
cframe *frame_new(chat_ctx *c, cframe *parent);
void frame_set(chat_ctx *c, cframe *f, int sym, cv v); /* takes v */
cv *frame_find(cframe *f, int sym);                   /* borrowed, searching parents */

/* ---- text helpers (chat_text.c) ----------------------------------------------- */
bool py_isspace(uint32_t cp);
uint32_t chat_next_cp(const char *s, size_t n, size_t *i); /* invalid bytes decode as themselves */
void chat_put_cp(chat_ctx *c, cbuf *b, uint32_t cp);
cv str_strip(chat_ctx *c, cstr *s, cv chars, bool left, bool right);
void html_escape(chat_ctx *c, cbuf *b, const char *s, size_t n);
cv str_mark_safe(chat_ctx *c, cv s); /* takes s; a Markup string with the same text */
cv str_case(chat_ctx *c, cstr *s, int mode); /* CASE_* */
enum { CASE_LOWER, CASE_UPPER, CASE_CAPITALIZE, CASE_TITLE_FILTER, CASE_TITLE_METHOD };
cv str_replace(chat_ctx *c, cstr *s, cstr *old, cstr *rep, int64_t count);
cv str_split(chat_ctx *c, cstr *s, cv sep, int64_t maxsplit, bool right);
/* Python slice semantics: start/stop/step may be none or undefined. Returns the item
 * count and stores the first index and the step. */
size_t py_slice(chat_ctx *c, int64_t len, cv start, cv stop, cv step, int64_t *first, int64_t *stride);
cv str_slice(chat_ctx *c, cstr *s, cv start, cv stop, cv step);
cv str_index_cp(chat_ctx *c, cstr *s, int64_t i, bool *ok);
int64_t str_find(chat_ctx *c, cstr *s, cstr *sub, bool reverse); /* code point index or -1 */
/* The last occurrence of a needle in prefixes of one text, found again and again in time
 * linear in the text and the needle: long needles are searched forward in the reversed
 * text (memmem is linear), short ones compared backward in place. */
typedef struct chat_rfind {
    const char *s, *sub;
    size_t n, m;
    cbuf *rs, *rsub; /* the reversed text and needle, for long needles */
} chat_rfind;
void chat_rfind_init(chat_ctx *c, chat_rfind *f, const char *s, size_t n, const char *sub, size_t m);
size_t chat_rfind_in(const chat_rfind *f, size_t z); /* byte offset of the last match inside s[0..z), or SIZE_MAX */
void chat_rfind_done(chat_ctx *c, chat_rfind *f);
cv str_splitlines(chat_ctx *c, cstr *s); /* str.splitlines() */

/* ---- Python numbers (chat_pynum.c) ------------------------------------------ */
bool py_parse_int(const char *s, size_t n, int base, int64_t *out); /* int(s, base); base 0: by prefix */
bool py_parse_float(const char *s, size_t n, double *out);          /* float(s) */
double py_round(double x, int64_t ndigits);                          /* round(x, ndigits) */

/* ---- JSON (chat_json.c) ------------------------------------------------------- */
struct json_t;
cv chat_from_json(chat_ctx *c, const struct json_t *j, int depth);
typedef struct tojson_opts {
    const char *indent; /* NULL: single line */
    const char *item_sep, *key_sep;
    bool sort_keys, ensure_ascii;
} tojson_opts;
void chat_tojson(chat_ctx *c, cbuf *b, cv v, const tojson_opts *o, int level);

/* ---- lexer and parser (chat_lex.c, chat_parse.c) ----------------------------- */

enum { TK_EOF, TK_DATA, TK_VBEGIN, TK_VEND, TK_BBEGIN, TK_BEND, TK_NAME, TK_STRING,
       TK_INT, TK_FLOAT, TK_OP };

/* punctuation token codes (TK_OP) */
enum {
    P_ADD = 1, P_SUB, P_MUL, P_DIV, P_FLOORDIV, P_POW, P_MOD, P_TILDE, P_LBRACKET,
    P_RBRACKET, P_LPAREN, P_RPAREN, P_LBRACE, P_RBRACE, P_EQ, P_NE, P_GT, P_GE, P_LT,
    P_LE, P_ASSIGN, P_DOT, P_COLON, P_PIPE, P_COMMA, P_SEMI
};

typedef struct ctok {
    uint8_t type, op;
    int line;
    cstr *str;  /* TK_DATA, TK_STRING, TK_NAME text (immortal) */
    int64_t i;
    double f;
} ctok;

typedef struct ctoks {
    ctok *v;
    size_t n, cap;
} ctoks;

hearth_status chat_lex(struct chat_template *t, const char *src, size_t len, ctoks *out,
                       hearth_err *err);
hearth_status chat_parse(struct chat_template *t, const ctoks *toks, hearth_err *err);
int chat_symbol(struct chat_template *t, const char *name); /* -1 on OOM */

/* ---- evaluation (chat_eval.c) and callables (chat_call.c, chat_filters.c) ---- */

typedef struct cargs {
    int n;            /* positional */
    cv *pos;
    int nk;           /* keyword */
    const char **kname;
    cv *kval;
} cargs;

cv eval_expr(chat_ctx *c, const cnode *n, cframe *f);
void exec_body(chat_ctx *c, const cnode *n, cframe *f, cbuf *out);
cv call_macro(chat_ctx *c, cmacro *m, cargs *a, cv caller);
cv call_loop(chat_ctx *c, cloop *lp, cargs *a); /* loop(items) in a recursive for loop */
cv arg_get(cargs *a, int idx, const char *name); /* borrowed; undefined when absent */
cv env_getattr(chat_ctx *c, cv obj, cstr *name);  /* new ref: obj.name */
cv env_getitem(chat_ctx *c, cv obj, cv key);      /* new ref: obj[key] */
cv call_method(chat_ctx *c, cv self, cstr *name, cargs *a, bool *found);
cv bound_method(chat_ctx *c, cv self, cstr *name, bool *found); /* obj.name without a call */
cv call_global(chat_ctx *c, int id, cargs *a);
cstr *want_str(chat_ctx *c, cv v, const char *what);                 /* TypeError unless a string */
int64_t want_int(chat_ctx *c, cv v, int64_t dflt, const char *what); /* dflt for none/undefined */
bool str_has_method(const char *name);                               /* chat_strmeth.c */
cv str_method(chat_ctx *c, cstr *s, const char *name, cargs *a);
cv str_format(chat_ctx *c, cstr *fmt, cargs *a);                    /* chat_pyfmt.c: str.format */
cv percent_format(chat_ctx *c, cstr *fmt, cv args);                 /* chat_pyfmt.c: fmt % args */
int chat_global_id(const char *name); /* -1 when not a global */
cv global_value(chat_ctx *c, int id);

int chat_filter_id(const char *name); /* -1 when unknown */
int chat_test_id(const char *name);
cv apply_filter(chat_ctx *c, int id, cv val, cargs *a);
bool apply_test(chat_ctx *c, int id, cv val, cargs *a);
bool apply_test_by_name(chat_ctx *c, cstr *name, cv val, cargs *a);
cv apply_filter_by_name(chat_ctx *c, cstr *name, cv val, cargs *a);

/* Helpers shared by the filter files. */
cv chat_attr_path(chat_ctx *c, cv item, cv attribute, cv dflt); /* Jinja's attrgetter ("a.b.0") */
cv chat_lower_key(chat_ctx *c, cv v, bool case_sensitive);      /* sort key: lowercased strings */
clist *chat_sorted_by(chat_ctx *c, clist *items, clist *keys, bool reverse); /* stable; takes keys */
int chat_filter_more_id(const char *name);                      /* chat_filters_more.c, -1 unknown */
cv apply_filter_more(chat_ctx *c, int id, cv val, cargs *a);

cv value_binop(chat_ctx *c, int op, cv a, cv b);
bool value_contains(chat_ctx *c, cv container, cv item);

#endif
