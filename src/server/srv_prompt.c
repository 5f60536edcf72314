/* Prompt building with the template/user trust boundary (see srv_prompt.h). Never
 * lets text that came from a request become a control token in a chat prompt. */
#define _GNU_SOURCE /* memmem */
#include "server/srv_prompt.h"

#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "chat/chat.h"
#include "server/srv_json.h"
#include "server/srv_reasoning.h"

/* With tools, a system turn lists them (merged with the client's first system message)
 * and teaches the <tool_call> form that srv_tools.c reads back; an assistant message's
 * tool_calls are written in that form. Without tools and tool calls the rendering is
 * plain ChatML. */
const char srv_builtin_chat_template[] =
    "{%- if tools -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if messages[0]['role'] == 'system' -%}{{- (messages[0]['content'] or '') + '\\n\\n' -}}{%- endif -%}"
    "{{- 'You can call the functions whose JSON signatures are listed between <tools></tools>:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nTo call a function, answer with a JSON object naming it and giving its arguments, "
    "between <tool_call></tool_call> tags, one block per call:\\n<tool_call>\\n"
    "{\"name\": <function-name>, \"arguments\": <args-json-object>}\\n</tool_call><|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (tools and loop.first and message['role'] == 'system') -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') -}}"
    "{%- for call in (message['tool_calls'] or []) -%}"
    "{{- '\\n<tool_call>\\n{\"name\": ' + (call['function']['name'] | tojson) + ', \"arguments\": ' + "
    "(call['function']['arguments'] if call['function']['arguments'] is string "
    "else (call['function']['arguments'] | tojson)) + '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}";

#define MARK_OPEN "\xEE\x80\x80"  /* U+E000 */
#define MARK_CLOSE "\xEE\x80\x81" /* U+E001 */
#define MARK_DIGIT0 0x90          /* U+E010 + d is "\xEE\x80" then 0x90 + d */

typedef struct special {
    int32_t id;
    const char *text;
    size_t len;
} special;

struct srv_prompter {
    const tok_vocab *v;
    chat_template *tmpl;
    bool builtin;
    srv_toolfmt toolfmt; /* the tool-call form the template teaches */
    int32_t shown[SRV_TOOLFMT_MAX_MARKERS]; /* its markers that are control tokens */
    size_t n_shown;
    bool reasoning;      /* replies are read for <think> blocks (srv_reasoning.h) */
    int32_t think[2];    /* <think> and </think> where they are control tokens */
    size_t n_think;
    special *sp;         /* control tokens, longest text first; then U+E000 and U+E001 as literals */
    size_t n_sp;         /* control tokens only */
    bool first_byte[256];
    char *bos_text, *eos_text;
};

static int special_cmp(const void *a, const void *b) {
    const special *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static char *token_text(const tok_vocab *v, int32_t id) {
    size_t len = 0;
    const char *t = id >= 0 ? tok_text(v, id, &len) : NULL;
    return mem_strndup(t ? t : "", t ? len : 0);
}

hearth_status srv_prompter_new(const tok_vocab *v, const char *template_src, size_t len, srv_prompter **out,
                               hearth_err *err) {
    *out = NULL;
    srv_prompter *p = mem_calloc(1, sizeof *p);
    if (!p) return err_set(err, HEARTH_ERR_NOMEM, "out of memory building the prompter");
    p->v = v;
    p->builtin = template_src == NULL;
    if (!template_src) {
        template_src = srv_builtin_chat_template;
        len = strlen(srv_builtin_chat_template);
    }
    p->toolfmt = srv_toolfmt_of_template(template_src, len);
    const char *const *markers;
    size_t n_markers = srv_toolfmt_markers(p->toolfmt, &markers);
    for (size_t i = 0; i < n_markers && p->n_shown < SRV_TOOLFMT_MAX_MARKERS; i++) {
        int32_t id = tok_control_id(v, markers[i], strlen(markers[i]));
        if (id >= 0) p->shown[p->n_shown++] = id;
    }
    p->reasoning = srv_reasoning_of_template(template_src, len);
    const char *think_markers[2] = {SRV_REASON_OPEN, SRV_REASON_CLOSE};
    for (size_t i = 0; p->reasoning && i < 2; i++) {
        int32_t id = tok_control_id(v, think_markers[i], strlen(think_markers[i]));
        if (id >= 0) p->think[p->n_think++] = id;
    }
    hearth_status st = chat_template_new(template_src, len, &p->tmpl, err);
    if (st != HEARTH_OK) {
        err_prefix(err, "chat template");
        srv_prompter_free(p);
        return st;
    }
    int32_t n_vocab = tok_n_vocab(v);
    size_t n = 0;
    for (int32_t id = 0; id < n_vocab; id++) n += tok_is_control(v, id);
    p->sp = mem_calloc(n + 2, sizeof *p->sp);
    p->bos_text = token_text(v, tok_bos(v));
    p->eos_text = token_text(v, tok_eos(v));
    if (!p->sp || !p->bos_text || !p->eos_text) {
        srv_prompter_free(p);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory listing special tokens");
    }
    for (int32_t id = 0; id < n_vocab; id++) {
        size_t tl = 0;
        const char *t = tok_is_control(v, id) ? tok_text(v, id, &tl) : NULL;
        if (t && tl > 0) p->sp[p->n_sp++] = (special){id, t, tl};
    }
    qsort(p->sp, p->n_sp, sizeof *p->sp, special_cmp);
    p->sp[p->n_sp] = (special){-1, MARK_OPEN, 3};
    p->sp[p->n_sp + 1] = (special){-1, MARK_CLOSE, 3};
    for (size_t i = 0; i < p->n_sp + 2; i++) p->first_byte[(unsigned char)p->sp[i].text[0]] = true;
    *out = p;
    return HEARTH_OK;
}

void srv_prompter_free(srv_prompter *p) {
    if (!p) return;
    chat_template_free(p->tmpl);
    mem_free(p->sp);
    mem_free(p->bos_text);
    mem_free(p->eos_text);
    mem_free(p);
}

bool srv_prompter_tool_calls(const srv_prompter *p) { return p->toolfmt != SRV_TOOLFMT_NONE; }

srv_toolfmt srv_prompter_toolfmt(const srv_prompter *p) { return p->toolfmt; }

size_t srv_prompter_shown_control(const srv_prompter *p, const int32_t **ids) {
    *ids = p->shown;
    return p->n_shown;
}

bool srv_prompter_builtin(const srv_prompter *p) { return p->builtin; }

bool srv_prompter_reasoning(const srv_prompter *p) { return p->reasoning; }

size_t srv_prompter_think_control(const srv_prompter *p, const int32_t **ids) {
    *ids = p->think;
    return p->n_think;
}

/* ---- masking user strings ---------------------------------------------------------- */

static bool add_marker(srv_buf *b, size_t k) {
    char digits[24];
    size_t nd = 0;
    do {
        digits[nd++] = (char)(k % 10);
        k /= 10;
    } while (k);
    if (!srv_buf_add(b, MARK_OPEN, 3)) return false;
    while (nd--) {
        char d[3] = {'\xEE', '\x80', (char)(MARK_DIGIT0 + digits[nd])};
        if (!srv_buf_add(b, d, 3)) return false;
    }
    return srv_buf_add(b, MARK_CLOSE, 3);
}

/* s with every control-token text (and U+E000/U+E001) replaced by its marker. */
static json_t *mask_string(const srv_prompter *p, const char *s, size_t n) {
    srv_buf b = {.max = (size_t)1 << 31};
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (!p->first_byte[(unsigned char)s[i]]) continue;
        for (size_t k = 0; k < p->n_sp + 2; k++) {
            const special *sp = &p->sp[k];
            if (sp->len > n - i || memcmp(s + i, sp->text, sp->len) != 0) continue;
            if (!srv_buf_add(&b, s + done, i - done) || !add_marker(&b, k)) {
                srv_buf_free(&b);
                return NULL;
            }
            i += sp->len - 1;
            done = i + 1;
            break;
        }
    }
    if (done == 0) return json_stringn(s, n);
    json_t *j = srv_buf_add(&b, s + done, n - done) ? json_stringn(b.data, b.len) : NULL;
    srv_buf_free(&b);
    return j;
}

/* A deep copy of v with every string (keys included) masked. */
static json_t *masked_copy(const srv_prompter *p, const json_t *v) {
    if (json_is_string(v)) return mask_string(p, json_string_value(v), json_string_length(v));
    if (json_is_array(v)) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < json_array_size(v); i++)
            if (json_array_append_new(a, masked_copy(p, json_array_get(v, i))) != 0) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach((json_t *)v, key, klen, val) {
            json_t *mk = o ? mask_string(p, key, klen) : NULL;
            if (!mk || json_object_setn_new(o, json_string_value(mk), json_string_length(mk), masked_copy(p, val)) != 0) {
                json_decref(o);
                o = NULL;
            }
            json_decref(mk);
        }
        return o;
    }
    return json_incref((json_t *)v);
}

/* ---- tokenizing the rendered text -------------------------------------------------- */

typedef struct frag {
    int32_t id; /* -1: text [off, off + len) */
    size_t off, len;
} frag;

typedef struct frags {
    frag *v;
    size_t n, cap;
} frags;

static bool frag_push(frags *l, frag f) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *nv = mem_realloc_array(l->v, cap, sizeof *nv);
        if (!nv) return false;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return true;
}

/* Cuts text at control-token texts, longest first, as the tokenizer's special parsing does. */
static bool partition(const srv_prompter *p, const char *text, size_t len, frags *out) {
    frags cur = {0}, next = {0};
    bool ok = len == 0 || frag_push(&cur, (frag){-1, 0, len});
    for (size_t k = 0; ok && k < p->n_sp; k++) {
        const special *sp = &p->sp[k];
        next.n = 0;
        for (size_t i = 0; ok && i < cur.n; i++) {
            frag f = cur.v[i];
            if (f.id >= 0) {
                ok = frag_push(&next, f);
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            const char *hit;
            while (ok && pos < end && (hit = memmem(text + pos, end - pos, sp->text, sp->len)) != NULL) {
                size_t at = (size_t)(hit - text);
                if (at > pos) ok = frag_push(&next, (frag){-1, pos, at - pos});
                ok = ok && frag_push(&next, (frag){sp->id, 0, 0});
                pos = at + sp->len;
            }
            if (ok && pos < end) ok = frag_push(&next, (frag){-1, pos, end - pos});
        }
        frags t = cur;
        cur = next;
        next = t;
    }
    mem_free(next.v);
    if (!ok) mem_free(cur.v);
    *out = ok ? cur : (frags){0};
    return ok;
}

/* Parses a marker at s[0..n): its special index, and its byte length in *mlen; -1 if none. */
static long parse_marker(const char *s, size_t n, size_t *mlen) {
    if (n < 9 || memcmp(s, MARK_OPEN, 3) != 0) return -1;
    long k = 0;
    size_t i = 3;
    while (i + 3 <= n && s[i] == '\xEE' && s[i + 1] == '\x80' && (unsigned char)s[i + 2] >= MARK_DIGIT0 &&
           (unsigned char)s[i + 2] <= MARK_DIGIT0 + 9 && i < 3 + 3 * 9) {
        k = k * 10 + ((unsigned char)s[i + 2] - MARK_DIGIT0);
        i += 3;
    }
    if (i == 3 || i + 3 > n || memcmp(s + i, MARK_CLOSE, 3) != 0) return -1;
    *mlen = i + 3;
    return k;
}

static bool unmask(const srv_prompter *p, const char *s, size_t n, srv_buf *b) {
    b->len = 0;
    size_t done = 0;
    for (size_t i = 0; i + 9 <= n; i++) {
        size_t mlen = 0;
        long k = s[i] == '\xEE' ? parse_marker(s + i, n - i, &mlen) : -1;
        if (k < 0 || (size_t)k >= p->n_sp + 2) continue;
        if (!srv_buf_add(b, s + done, i - done) || !srv_buf_add(b, p->sp[k].text, p->sp[k].len)) return false;
        i += mlen - 1;
        done = i + 1;
    }
    return srv_buf_add(b, s + done, n - done);
}

static bool append_ids(int32_t **ids, size_t *n, size_t *cap, const int32_t *src, size_t k) {
    if (*n + k > *cap) {
        size_t nc = *cap ? *cap : 64;
        while (nc < *n + k) nc *= 2;
        int32_t *nv = mem_realloc_array(*ids, nc, sizeof *nv);
        if (!nv) return false;
        *ids = nv;
        *cap = nc;
    }
    if (k) memcpy(*ids + *n, src, k * sizeof *src);
    *n += k;
    return true;
}

/* Puts BOS first when the vocabulary adds one and it is not there. */
static bool ensure_bos(const tok_vocab *v, int32_t **ids, size_t *n) {
    int32_t bos = tok_bos(v);
    if (!tok_adds_bos(v) || bos < 0 || (*n > 0 && (*ids)[0] == bos)) return true;
    int32_t *nv = mem_alloc_array(*n + 1, sizeof *nv);
    if (!nv) return false;
    nv[0] = bos;
    if (*n) memcpy(nv + 1, *ids, *n * sizeof *nv);
    mem_free(*ids);
    *ids = nv;
    *n += 1;
    return true;
}

static bool tokenize_rendered(const srv_prompter *p, const char *text, size_t len, int32_t **ids, size_t *n) {
    frags fr;
    if (!partition(p, text, len, &fr)) return false;
    srv_buf plain = {.max = len * 2 + 16};
    size_t cap = 0;
    bool ok = true;
    *ids = NULL;
    *n = 0;
    for (size_t i = 0; ok && i < fr.n; i++) {
        const frag *f = &fr.v[i];
        if (f->id >= 0) {
            ok = append_ids(ids, n, &cap, &f->id, 1);
            continue;
        }
        int32_t *part = NULL;
        size_t np = 0;
        ok = unmask(p, text + f->off, f->len, &plain) &&
             tok_encode(p->v, plain.data, plain.len, false, false, &part, &np, NULL) == HEARTH_OK &&
             append_ids(ids, n, &cap, part, np);
        mem_free(part);
    }
    mem_free(fr.v);
    srv_buf_free(&plain);
    ok = ok && ensure_bos(p->v, ids, n);
    if (!ok) {
        mem_free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return ok;
}

bool srv_prompt_chat(const srv_prompter *p, const json_t *messages, const json_t *tools, int32_t **ids, size_t *n,
                     srv_error *e) {
    return srv_prompt_chat_prefill(p, messages, tools, NULL, 0, ids, n, e);
}

bool srv_prompt_chat_prefill(const srv_prompter *p, const json_t *messages, const json_t *tools, const char *prefill,
                             size_t prefill_len, int32_t **ids, size_t *n, srv_error *e) {
    return srv_prompt_chat_kw(p, messages, tools, NULL, prefill, prefill_len, ids, n, NULL, e);
}

/* The client's chat_template_kwargs (masked as messages are) join the context first; the request's own fields,
 * set after, are never overridden (srv_req_parse refuses those names anyway). */
static bool add_kwargs(const srv_prompter *p, json_t *ctx, const json_t *kwargs) {
    json_t *masked = masked_copy(p, kwargs);
    bool ok = masked && json_object_update(ctx, masked) == 0;
    json_decref(masked);
    return ok;
}

bool srv_prompt_chat_kw(const srv_prompter *p, const json_t *messages, const json_t *tools, const json_t *kwargs,
                        const char *prefill, size_t prefill_len, int32_t **ids, size_t *n, bool *think_opened,
                        srv_error *e) {
    json_t *ctx = json_object();
    if (ctx && kwargs && !add_kwargs(p, ctx, kwargs)) {
        json_decref(ctx);
        ctx = NULL;
    }
    json_t *mm = masked_copy(p, messages);
    json_t *mt = tools ? masked_copy(p, tools) : NULL;
    bool built = ctx && mm && (!tools || mt) && json_object_set_new(ctx, "messages", mm) == 0 &&
                 json_object_set_new(ctx, "add_generation_prompt", json_true()) == 0 &&
                 json_object_set_new(ctx, "bos_token", json_string(p->bos_text)) == 0 &&
                 json_object_set_new(ctx, "eos_token", json_string(p->eos_text)) == 0 &&
                 (!mt || json_object_set_new(ctx, "tools", mt) == 0);
    if (!built) {
        if (!ctx || json_object_get(ctx, "messages") != mm) json_decref(mm);
        if (!ctx || json_object_get(ctx, "tools") != mt) json_decref(mt);
        json_decref(ctx);
        return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory building the chat context");
    }
    char *text = NULL;
    size_t len = 0;
    hearth_err err = {0};
    hearth_status st = chat_template_render(p->tmpl, ctx, NULL, &text, &len, &err);
    json_decref(ctx);
    if (st == HEARTH_ERR_INVALID) return srv_invalid(e, "messages", "%s", err.msg);
    if (st == HEARTH_ERR_RANGE) return srv_invalid(e, "messages", "the chat template exceeded a limit: %s", err.msg);
    /* a template that cannot render these messages (an attribute they lack, a type it did
     * not expect) is the request's problem to fix, not a server fault to retry */
    if (st != HEARTH_OK && st != HEARTH_ERR_NOMEM)
        return srv_fail(e, 400, "invalid_request_error", "chat_template_error", "messages",
                        "the model's chat template could not render these messages: %s", err.msg);
    if (st != HEARTH_OK) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory rendering the chat template");
    if (think_opened) *think_opened = prefill_len == 0 && srv_reasoning_opened(text, len);
    if (prefill_len) {
        char *longer = mem_realloc(text, len + prefill_len + 1);
        if (!longer) {
            mem_free(text);
            return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory building the prompt");
        }
        text = longer;
        memcpy(text + len, prefill, prefill_len);
        len += prefill_len;
        text[len] = '\0';
    }
    bool ok = tokenize_rendered(p, text, len, ids, n);
    mem_free(text);
    return ok ? true : srv_fail(e, 500, "server_error", NULL, NULL, "out of memory tokenizing the prompt");
}

bool srv_prompt_text(const srv_prompter *p, const char *text, size_t len, int32_t **ids, size_t *n, srv_error *e) {
    if (tok_encode(p->v, text, len, false, true, ids, n, NULL) == HEARTH_OK && ensure_bos(p->v, ids, n)) return true;
    mem_free(*ids);
    *ids = NULL;
    *n = 0;
    return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory tokenizing the prompt");
}
