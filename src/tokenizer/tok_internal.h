/* Internal layout of a loaded vocabulary and the helpers the tokenizer files share.
 * Nothing outside src/tokenizer/ includes this file. Everything here is built once by
 * tok_build and read-only afterwards (safe to share between threads). */
#ifndef TOKENIZER_TOK_INTERNAL_H
#define TOKENIZER_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* tokenizer.ggml.token_type values as stored in GGUF. */
enum {
    TOK_TYPE_UNDEFINED = 0, TOK_TYPE_NORMAL = 1, TOK_TYPE_UNKNOWN = 2, TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4, TOK_TYPE_UNUSED = 5, TOK_TYPE_BYTE = 6,
};

/* Per-token attribute bits (a token may gain CONTROL on top of its type, as the reference
 * does for end-of-turn tokens stored as user-defined). */
enum {
    TOK_ATTR_UNKNOWN = 1u << 0, TOK_ATTR_UNUSED = 1u << 1, TOK_ATTR_NORMAL = 1u << 2,
    TOK_ATTR_CONTROL = 1u << 3, TOK_ATTR_USER_DEFINED = 1u << 4, TOK_ATTR_BYTE = 1u << 5,
    TOK_ATTR_LSTRIP = 1u << 7,  /* swallow ASCII whitespace before the token when matched */
    TOK_ATTR_RSTRIP = 1u << 8,  /* swallow ASCII whitespace after it */
};

typedef struct tok_token {
    uint32_t off;  /* into tok_vocab.text */
    uint32_t len;  /* bytes */
    float score;   /* SPM merge priority */
    uint16_t attr; /* TOK_ATTR_* */
} tok_token;

/* Open-addressing hash from a byte string to an index; the keys live elsewhere and are
 * compared through the callback owner (vocab texts or merge pairs). slots hold index+1. */
typedef struct tok_table {
    uint32_t *slots;
    uint32_t mask; /* capacity - 1 (power of two) */
} tok_table;

/* Byte-level BPE merge list: pair i is (text[off, off+first_len), text[off+first_len+1, off+len)). */
typedef struct tok_merge {
    uint32_t off;
    uint32_t first_len;
    uint32_t second_len;
} tok_merge;

typedef struct tok_pretok tok_pretok; /* compiled pre-tokenizer regexes (tok_pretok.c) */

struct tok_vocab {
    tok_kind kind;
    const char *pre_name; /* static string */

    int32_t n;             /* number of tokens */
    tok_token *tokens;     /* [n] */
    char *text;            /* all token texts, concatenated */
    tok_table by_text;     /* text -> id (the last id wins for duplicate texts) */
    uint32_t max_token_len;

    uint32_t n_merges;
    tok_merge *merges;     /* [n_merges] */
    char *merge_text;
    tok_table by_pair;     /* (first, second) -> rank; the first occurrence wins */

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_sep;
    bool add_space_prefix; /* SPM: a space before the text (and after each special token) */
    bool ignore_merges;    /* BPE: a pre-token that is itself a token is kept whole */
    bool pre_no_bos;       /* the pre-tokenizer's family has no default BOS */

    uint8_t *eog;          /* [n] 1 when the id ends generation */
    int32_t *special;      /* ids matched as whole tokens before tokenizing, longest text first */
    int32_t *special_run_end; /* [n_special] index after the run of entries whose texts start alike
                                 (same first byte, same second byte or none): tok_encode skips a
                                 whole run when the text lacks that start */
    int32_t n_special;

    int32_t byte_token[256]; /* SPM: <0xXX> (or the one-byte token), BPE: byte's mapped char; -1 none */
    tok_pretok *pretok;      /* BPE only */
};

/* The metadata tok_load reads, in plain arrays, so vocabularies can also be built in
 * memory (tests). Strings are not NUL-terminated; nothing here is retained. */
typedef struct tok_spec {
    const char *model; size_t model_len;   /* "llama", "gpt2", "bert" */
    const char *pre; size_t pre_len;       /* NULL when absent */
    const char *name; size_t name_len;     /* general.name; NULL when absent */
    const char *arch; size_t arch_len;     /* general.architecture; NULL when absent */
    uint32_t n_tokens;
    const char *const *tok_text; const uint32_t *tok_len;
    const float *scores;                   /* [n_tokens] or NULL */
    const int32_t *types;                  /* [n_tokens] or NULL */
    uint32_t n_merges;
    const char *const *merge_text; const uint32_t *merge_len;
    /* Ids from metadata: -1 when absent (the per-model default applies). */
    int64_t bos, eos, eot, eom, unk, sep, pad, mask, cls;
    int64_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int add_bos, add_eos, add_sep, add_space_prefix; /* -1 absent, else 0/1 */
} tok_spec;

/* Fills spec with "absent" for every optional field. */
void tok_spec_init(tok_spec *spec);
/* Validates spec and builds a vocabulary (the whole of tok_load after metadata reading). */
hearth_status tok_build(const tok_spec *spec, tok_vocab **out, hearth_err *err);

/* Hash tables (tok_table.c). tok_hash is the hash both insert and lookup use. */
uint32_t tok_hash(const char *s, size_t n, uint32_t seed);
hearth_status tok_index_texts(tok_vocab *v);   /* builds by_text */
hearth_status tok_index_merges(tok_vocab *v);  /* builds by_pair */
int32_t tok_find(const tok_vocab *v, const char *s, size_t n); /* id or -1 */
int32_t tok_merge_rank(const tok_vocab *v, const char *a, size_t na, const char *b, size_t nb); /* rank or -1 */
void tok_table_free(tok_table *t);

/* Special-token setup: defaults, detection by text, attribute tweaks (tok_special.c). */
hearth_status tok_setup_specials(tok_vocab *v, const tok_spec *spec, hearth_err *err);

/* Growable id array used by the encoders. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
bool tok_ids_push(tok_ids *a, int32_t id); /* false on NOMEM */

/* Per-kind encoders of one plain-text fragment (no special tokens inside). All return
 * false only on NOMEM. prefix_space: SPM puts a space before the text. */
bool tok_spm_encode(const tok_vocab *v, const char *text, size_t len, bool prefix_space, tok_ids *out);
bool tok_bpe_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out);
bool tok_wpm_encode(const tok_vocab *v, const char *text, size_t len, tok_ids *out);

/* Pre-tokenizers (tok_pretok.c). */
typedef struct tok_pre_info {
    const char *name;   /* canonical name reported by tok_pre_name */
    int regex_set;      /* index into the regex table */
    bool ignore_merges;
    bool add_bos;
    bool no_bos;        /* the vocabulary has no BOS token (chatglm) */
} tok_pre_info;
/* Looks up a tokenizer.ggml.pre value; NULL when unknown. An absent key means "default". */
const tok_pre_info *tok_pre_lookup(const char *name, size_t len);
hearth_status tok_pretok_new(int regex_set, tok_pretok **out, hearth_err *err);
void tok_pretok_free(tok_pretok *p);
/* Splits cps[0..n) into words; *bounds receives the end index of each word (mem_alloc'd). */
bool tok_pretok_split(const tok_pretok *p, const uint32_t *cps, size_t n, size_t **bounds, size_t *n_words);

/* Unicode helpers mirroring the reference's tables (tok_unicode.c). */
/* Lenient decoding: structure-checked only; a broken sequence yields U+FFFD for one byte. */
size_t tok_utf8_next(const char *s, size_t n, uint32_t *cp);
uint32_t *tok_utf8_to_cps(const char *s, size_t n, size_t *n_cps); /* mem_alloc'd; NULL on NOMEM */
size_t tok_utf8_put(uint32_t cp, char out[4]);      /* raw encoding, any cp <= 0x10FFFF */
size_t tok_utf8_lead_len(unsigned char lead);        /* 1..4 from the high nibble */
bool tok_is_whitespace(uint32_t cp);
/* GPT-2 byte <-> printable character mapping. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the mapping */

#endif
