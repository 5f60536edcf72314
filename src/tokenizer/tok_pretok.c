/* Byte-level BPE pre-tokenizers: the split regexes of each tokenizer.ggml.pre family and
 * the splitter that applies them one after another, each regex cutting every piece the
 * previous ones made into matches and the gaps between them. The regexes are the
 * published ones; they run under PCRE2 (UTF + Unicode properties) with two adjustments
 * that reproduce the reference exactly: the text seen by the regexes has every non-ASCII
 * White_Space character replaced by U+000B, and \s / \S mean exactly [\t\n\v\f\r ] and its
 * complement. Matching never reaches outside the piece being split, so a lookahead at a
 * piece's end sees the end of text. Memory comes from mem_* through a PCRE2 context. */
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/err.h"
#include "base/mem.h"
#include "tokenizer/tok_internal.h"

enum {
    RS_DEFAULT, RS_GPT2, RS_LLAMA3, RS_QWEN2, RS_DEEPSEEK_LLM, RS_DEEPSEEK_CODER, RS_FALCON, RS_STARCODER,
    RS_BLOOM, RS_VIKING, RS_TEKKEN, RS_GPT4O, RS_COUNT,
};

#define MAX_REGEXES 6

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTRACTIONS_RE "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define BLOOM_RE " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"
#define CJK_RE "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"

static const char *const REGEX_SETS[RS_COUNT][MAX_REGEXES + 1] = {
    [RS_DEFAULT] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]", NULL},
    [RS_GPT2] = {GPT2_RE, NULL},
    [RS_LLAMA3] = {CONTRACTIONS_RE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                   NULL},
    [RS_QWEN2] = {CONTRACTIONS_RE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                  NULL},
    [RS_DEEPSEEK_LLM] = {
        "[\r\n]",
        "\\s?[A-Za-z\xc2\xb5\xc3\x80-\xc3\x96\xc3\x98-\xc3\xb6\xc3\xb8-\xc6\xba\xc6\xbc-\xc6\xbf\xc7\x84-\xca\x93\xca\x95-\xca\xaf"
        "\xcd\xb0-\xcd\xb3\xcd\xb6\xcd\xb7\xcd\xbb-\xcd\xbd\xcd\xbf\xce\x86\xce\x88-\xce\x8a\xce\x8c\xce\x8e-\xce\xa1\xce\xa3-\xcf\xb5"
        "\xcf\xb7-\xd2\x81\xd2\x8a-\xd4\xaf\xd4\xb1-\xd5\x96\xe1\x82\xa0-\xe1\x83\x85\xe1\x8e\xa0-\xe1\x8f\xb5\xe1\x8f\xb8-\xe1\x8f\xbd"
        "\xe1\xb2\x90-\xe1\xb2\xba\xe1\xb2\xbd-\xe1\xb2\xbf\xe1\xb4\x80-\xe1\xb4\xab\xe1\xb5\xab-\xe1\xb5\xb7\xe1\xb5\xb9-\xe1\xb6\x9a"
        "\xe1\xb8\x80-\xe1\xbc\x95\xe1\xbc\x98-\xe1\xbc\x9d\xe1\xbc\xa0-\xe1\xbd\x85\xe1\xbd\x88-\xe1\xbd\x8d\xe1\xbd\x90-\xe1\xbd\x97"
        "\xe1\xbd\x99\xe1\xbd\x9b\xe1\xbd\x9d\xe1\xbd\x9f-\xe1\xbd\xbd\xe1\xbe\x80-\xe1\xbe\xb4\xe1\xbe\xb6-\xe1\xbe\xbc\xe1\xbe\xbe"
        "\xe1\xbf\x82-\xe1\xbf\x84\xe1\xbf\x86-\xe1\xbf\x8c\xe1\xbf\x90-\xe1\xbf\x93\xe1\xbf\x96-\xe1\xbf\x9b\xe1\xbf\xa0-\xe1\xbf\xac"
        "\xe1\xbf\xb2-\xe1\xbf\xb4\xe1\xbf\xb6-\xe1\xbf\xbc\xe2\x84\x82\xe2\x84\x87\xe2\x84\x8a-\xe2\x84\x93\xe2\x84\x95\xe2\x84\x99-\xe2\x84\x9d"
        "\xe2\x84\xa4\xe2\x84\xa6\xe2\x84\xa8\xe2\x84\xaa-\xe2\x84\xad\xe2\x84\xaf-\xe2\x84\xb4\xe2\x84\xb9\xe2\x84\xbc-\xe2\x84\xbf"
        "\xe2\x85\x85-\xe2\x85\x89\xe2\x85\x8e\xe2\x86\x83\xe2\x86\x84\xe2\xb0\x80-\xe2\xb1\xbb\xe2\xb1\xbe-\xe2\xb3\xa4\xe2\xb3\xab-\xe2\xb3\xae"
        "\xe2\xb3\xb2\xe2\xb3\xb3\xea\x99\x80-\xea\x99\xad\xea\x9a\x80-\xea\x9a\x9b\xea\x9c\xa2-\xea\x9d\xaf\xea\x9d\xb1-\xea\x9e\x87"
        "\xea\x9e\x8b-\xea\x9e\x8e\xea\xad\xb0-\xea\xae\xbf\xef\xac\x80-\xef\xac\x86\xef\xac\x93-\xef\xac\x97\xef\xbc\xa1-\xef\xbc\xba"
        "\xef\xbd\x81-\xef\xbd\x9a\xf0\x90\x90\x80-\xf0\x90\x91\x8f\xf0\x90\x92\xb0-\xf0\x90\x93\x93\xf0\x90\x93\x98-\xf0\x90\x93\xbb"
        "\xf0\x90\xb2\x80-\xf0\x90\xb2\xb2\xf0\x90\xb3\x80-\xf0\x90\xb3\xb2\xf0\x91\xa2\xa0-\xf0\x91\xa3\x9f\xf0\x9e\xa4\x80-\xf0\x9e\xa5\x83]+",
        "\\s?[!-/:-~\xef\xbc\x81-\xef\xbc\x8f\xef\xbc\x9a-\xef\xbd\x9e\xe2\x80\x98-\xe2\x80\x9f\xe3\x80\x80-\xe3\x80\x82]+",
        "\\s+$",
        CJK_RE,
        "\\p{N}+",
        NULL,
    },
    [RS_DEEPSEEK_CODER] = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_RE, "\\p{N}", NULL},
    [RS_FALCON] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]", NULL},
    [RS_STARCODER] = {"\\p{N}", GPT2_RE, NULL},
    [RS_BLOOM] = {BLOOM_RE, NULL},
    [RS_VIKING] = {BLOOM_RE, "\\p{N}", NULL},
    [RS_TEKKEN] = {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+"
                   "((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                   NULL},
    [RS_GPT4O] = {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+" CONTRACTIONS_RE "?|[^\\r\\n\\p{L}\\p{N}]?"
                  "((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*" CONTRACTIONS_RE "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
                  "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
                  NULL},
};

/* tokenizer.ggml.pre values and the family each belongs to. "gpt-neox" is not a name the
 * reference knows; GPT-NeoX tokenizers split with the GPT-2 regex, so it maps there. */
static const tok_pre_info PRE_TABLE[] = {
    {"default", RS_DEFAULT, false, false, false},
    {"llama3", RS_LLAMA3, true, true, false}, {"llama-v3", RS_LLAMA3, true, true, false},
    {"llama-bpe", RS_LLAMA3, true, true, false}, {"falcon3", RS_LLAMA3, true, true, false},
    {"falcon-h1", RS_LLAMA3, true, true, false}, {"pixtral", RS_LLAMA3, true, true, false},
    {"midm-2.0", RS_LLAMA3, true, true, false}, {"lfm2", RS_LLAMA3, true, true, false},
    {"dbrx", RS_LLAMA3, false, false, false}, {"smaug-bpe", RS_LLAMA3, false, false, false},
    {"chatglm-bpe", RS_LLAMA3, false, false, true}, {"glm4", RS_LLAMA3, false, false, true},
    {"deepseek-llm", RS_DEEPSEEK_LLM, false, false, false},
    {"deepseek-coder", RS_DEEPSEEK_CODER, false, false, false},
    {"falcon", RS_FALCON, false, false, false},
    {"gpt-2", RS_GPT2, false, false, false}, {"gpt-neox", RS_GPT2, false, false, false},
    {"mpt", RS_GPT2, false, false, false}, {"olmo", RS_GPT2, false, false, false},
    {"jais", RS_GPT2, false, false, false}, {"phi-2", RS_GPT2, false, false, false},
    {"jina-es", RS_GPT2, false, false, false}, {"jina-de", RS_GPT2, false, false, false},
    {"jina-v1-en", RS_GPT2, false, false, false}, {"jina-v2-es", RS_GPT2, false, false, false},
    {"jina-v2-de", RS_GPT2, false, false, false}, {"jina-v2-code", RS_GPT2, false, false, false},
    {"roberta-bpe", RS_GPT2, false, false, false}, {"gigachat", RS_GPT2, false, false, false},
    {"exaone4", RS_GPT2, false, false, false},
    {"starcoder", RS_STARCODER, false, false, false}, {"refact", RS_STARCODER, false, false, false},
    {"command-r", RS_STARCODER, false, false, false}, {"smollm", RS_STARCODER, false, false, false},
    {"codeshell", RS_STARCODER, false, false, false}, {"exaone", RS_STARCODER, false, false, false},
    {"minerva-7b", RS_STARCODER, false, false, false},
    {"qwen2", RS_QWEN2, false, false, false}, {"deepseek-r1-qwen", RS_QWEN2, false, false, false},
    {"stablelm2", RS_QWEN2, false, false, false}, {"megrez", RS_QWEN2, false, false, false},
    {"bloom", RS_BLOOM, false, false, false}, {"poro-chat", RS_BLOOM, false, false, false},
    {"gpt3-finnish", RS_BLOOM, false, false, false}, {"viking", RS_VIKING, false, false, false},
    {"tekken", RS_TEKKEN, true, true, false},
    {"gpt-4o", RS_GPT4O, false, false, false}, {"llama4", RS_GPT4O, false, false, false},
};

const tok_pre_info *tok_pre_lookup(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof PRE_TABLE / sizeof PRE_TABLE[0]; i++)
        if (strlen(PRE_TABLE[i].name) == len && memcmp(PRE_TABLE[i].name, name, len) == 0) return &PRE_TABLE[i];
    return NULL;
}

struct tok_pretok {
    pcre2_general_context *gctx;
    int n;
    pcre2_code *re[MAX_REGEXES];
};

static void *pcre_alloc(PCRE2_SIZE size, void *data) { return mem_alloc(size ? size : 1); }
static void pcre_free(void *p, void *data) { mem_free(p); }

#define WS_CLASS "\\t-\\r\\x{20}"

/* Rewrites \s and \S into the explicit ASCII whitespace class (see the file comment). */
static char *rewrite_whitespace(const char *re) {
    size_t n = strlen(re), cap = n * 12 + 1, k = 0;
    char *out = mem_alloc(cap);
    if (!out) return NULL;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char e = re[i + 1];
            const char *rep = NULL;
            if (e == 's') rep = in_class ? WS_CLASS : "[" WS_CLASS "]";
            else if (e == 'S' && !in_class) rep = "[^" WS_CLASS "]";
            if (rep) {
                memcpy(out + k, rep, strlen(rep));
                k += strlen(rep);
            } else {
                out[k++] = c;
                out[k++] = e;
            }
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out[k++] = c;
            if (i + 1 < n && re[i + 1] == '^') out[k++] = re[++i];
            if (i + 1 < n && re[i + 1] == ']') out[k++] = re[++i]; /* a leading ] is literal */
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out[k++] = c;
    }
    out[k] = '\0';
    return out;
}

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    pcre2_general_context_free(p->gctx);
    mem_free(p);
}

hearth_status tok_pretok_new(int regex_set, tok_pretok **out, hearth_err *err) {
    *out = NULL;
    if (regex_set < 0 || regex_set >= RS_COUNT) return err_set(err, HEARTH_ERR_INTERNAL, "unknown pre-tokenizer regex set %d", regex_set);
    tok_pretok *p = mem_calloc(1, sizeof *p);
    if (!p) return HEARTH_ERR_NOMEM;
    p->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, NULL);
    pcre2_compile_context *cctx = p->gctx ? pcre2_compile_context_create(p->gctx) : NULL;
    if (!cctx) {
        tok_pretok_free(p);
        return HEARTH_ERR_NOMEM;
    }
    hearth_status st = HEARTH_OK;
    for (const char *const *re = REGEX_SETS[regex_set]; *re && st == HEARTH_OK; re++) {
        char *pattern = rewrite_whitespace(*re);
        if (!pattern) {
            st = HEARTH_ERR_NOMEM;
            break;
        }
        int code;
        PCRE2_SIZE at;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &code, &at, cctx);
        mem_free(pattern);
        if (!c && (code == PCRE2_ERROR_HEAP_FAILED || code == PCRE2_ERROR_NOMEMORY)) {
            st = HEARTH_ERR_NOMEM;
            break;
        }
        if (!c) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            st = err_set(err, HEARTH_ERR_INTERNAL, "pre-tokenizer regex %d does not compile at %zu: %s",
                         (int)(re - REGEX_SETS[regex_set]), (size_t)at, (char *)msg);
            break;
        }
        p->re[p->n++] = c;
    }
    pcre2_compile_context_free(cctx);
    if (st != HEARTH_OK) {
        tok_pretok_free(p);
        return st;
    }
    *out = p;
    return HEARTH_OK;
}

/* The text the regexes see: UTF-8 of cps with non-ASCII White_Space as U+000B and
 * surrogates (which lenient decoding lets through) as U+FFFD, plus each character's byte
 * offset (cp_at[n] = total) and the character index of each start byte. */
typedef struct shown_text {
    char *s;
    size_t *byte_of;  /* [n+1] byte offset of character i */
    size_t *char_of;  /* [bytes+1] character index of a start byte */
} shown_text;

static bool show_text(const uint32_t *cps, size_t n, shown_text *t) {
    t->s = mem_alloc_array(n ? n : 1, 4);
    t->byte_of = mem_alloc_array(n + 1, sizeof *t->byte_of);
    t->char_of = mem_alloc_array(n * 4 + 1, sizeof *t->char_of);
    if (!t->s || !t->byte_of || !t->char_of) return false;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = cps[i];
        if (cp > 0x7F && tok_is_whitespace(cp)) cp = 0x0B;
        else if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        t->byte_of[i] = k;
        t->char_of[k] = i;
        k += tok_utf8_put(cp, t->s + k);
    }
    t->byte_of[n] = k;
    t->char_of[k] = n;
    return true;
}

static void free_shown(shown_text *t) {
    mem_free(t->s);
    mem_free(t->byte_of);
    mem_free(t->char_of);
}

typedef struct bounds_list {
    size_t *v;
    size_t n, cap;
} bounds_list;

static bool bounds_push(bounds_list *b, size_t end) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        size_t *nv = mem_realloc_array(b->v, cap, sizeof *nv);
        if (!nv) return false;
        b->v = nv;
        b->cap = cap;
    }
    b->v[b->n++] = end;
    return true;
}

/* Cuts piece [a, b) by one regex into matches and gaps, appending their ends to out. */
static bool split_piece(const pcre2_code *re, pcre2_match_data *md, const shown_text *t, size_t a, size_t b,
                        bounds_list *out) {
    const char *subject = t->s + t->byte_of[a];
    size_t len = t->byte_of[b] - t->byte_of[a], base = t->byte_of[a];
    size_t pos = 0, done = 0;
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)subject, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return false;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match cuts nothing: move one character on */
            pos = ms + tok_utf8_lead_len((unsigned char)subject[ms]);
            continue;
        }
        if (ms > done && !bounds_push(out, t->char_of[base + ms])) return false;
        if (!bounds_push(out, t->char_of[base + me])) return false;
        done = pos = me;
    }
    return done >= len || bounds_push(out, b);
}

bool tok_pretok_split(const tok_pretok *p, const uint32_t *cps, size_t n, size_t **bounds, size_t *n_words) {
    *bounds = NULL;
    *n_words = 0;
    shown_text t = {0};
    bounds_list cur = {0}, next = {0};
    pcre2_match_data *md = NULL;
    /* One pair suffices: only the whole match is read (a smaller ovector makes pcre2_match
     * return 0, not a failure); one block for all regexes keeps pcre2's frame memory. */
    bool ok = show_text(cps, n, &t) && bounds_push(&cur, n) && (md = pcre2_match_data_create(1, p->gctx)) != NULL;
    for (int r = 0; ok && r < p->n; r++) {
        next.n = 0;
        size_t a = 0;
        for (size_t i = 0; ok && i < cur.n; i++) {
            if (cur.v[i] > a) ok = split_piece(p->re[r], md, &t, a, cur.v[i], &next);
            a = cur.v[i];
        }
        bounds_list swap = cur;
        cur = next;
        next = swap;
    }
    pcre2_match_data_free(md);
    free_shown(&t);
    mem_free(next.v);
    if (!ok) {
        mem_free(cur.v);
        return false;
    }
    *bounds = cur.v;
    *n_words = cur.n;
    return true;
}
