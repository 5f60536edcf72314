/* Generated WordPiece vocabularies for synthetic bert models, laid out as BERT's
 * uncased vocabulary is: [PAD] at 0, [unusedN] up to 99, [UNK] 100, [CLS] 101, [SEP]
 * 102, [MASK] 103, then every printable ASCII character as a word start ("▁x", how GGUF
 * stores word-initial pieces) and letters and digits as continuations, then lower-case
 * English-looking words and continuation pieces drawn from the seed until the asked
 * size. Any lower-case ASCII text tokenizes without [UNK]. Never reads a file. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "synth/synth.h"
#include "synth/synth_rng.h"

#define SLOT 24
#define WORD_START "\xE2\x96\x81" /* U+2581 */

static const char LETTERS[] = "etaoinshrdlcumwfgypbvkjxqz";

typedef struct wpm_build {
    char *text;       /* [n_vocab][SLOT] */
    uint32_t *hash;   /* id + 1, 0 empty */
    uint64_t mask;
    int64_t n;
} wpm_build;

static uint64_t fnv(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Adds s unless it is there already; false when it was. */
static bool add(wpm_build *b, const char *s) {
    uint64_t i = fnv(s) & b->mask;
    for (; b->hash[i]; i = (i + 1) & b->mask)
        if (!strcmp(b->text + (size_t)(b->hash[i] - 1) * SLOT, s)) return false;
    snprintf(b->text + (size_t)b->n * SLOT, SLOT, "%s", s);
    b->hash[i] = (uint32_t)++b->n;
    return true;
}

static char letter(synth_rng *r) {
    /* frequent letters first: the index is skewed towards 0 */
    double u = synth_uniform(r);
    return LETTERS[(size_t)(u * u * 26.0)];
}

hearth_status synth_wpm_vocab_write(gguf_writer *w, int64_t n_vocab, uint64_t seed, hearth_err *err) {
    if (n_vocab < SYNTH_WPM_VOCAB_MIN || n_vocab > SYNTH_VOCAB_MAX)
        return err_set(err, HEARTH_ERR_INVALID, "mkmodel: a generated WordPiece vocabulary has %d to %d tokens, not %lld",
                       SYNTH_WPM_VOCAB_MIN, SYNTH_VOCAB_MAX, (long long)n_vocab);
    wpm_build b = {0};
    uint64_t slots = 1;
    while (slots < 2 * (uint64_t)n_vocab) slots <<= 1;
    b.mask = slots - 1;
    b.text = mem_alloc_array((size_t)n_vocab, SLOT);
    b.hash = mem_calloc(slots, sizeof *b.hash);
    const char **strs = mem_alloc_array((size_t)n_vocab, sizeof *strs);
    int32_t *types = mem_alloc_array((size_t)n_vocab, sizeof *types);
    hearth_status st = HEARTH_OK;
    if (!b.text || !b.hash || !strs || !types) st = err_set(err, HEARTH_ERR_NOMEM, "mkmodel: out of memory for the vocabulary");
    if (!st) {
        char s[SLOT];
        add(&b, "[PAD]");
        for (int i = 0; b.n < 100; i++) {
            snprintf(s, sizeof s, "[unused%d]", i);
            add(&b, s);
        }
        add(&b, "[UNK]");
        add(&b, "[CLS]");
        add(&b, "[SEP]");
        add(&b, "[MASK]");
        for (int c = 33; c < 127; c++) {
            if (c >= 'A' && c <= 'Z') continue;
            snprintf(s, sizeof s, WORD_START "%c", c);
            add(&b, s);
        }
        for (int c = 33; c < 127; c++)
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) add(&b, (char[]){(char)c, 0});
        synth_rng r = synth_rng_for(seed, 0x77706dULL, 0);
        while (b.n < n_vocab) {
            bool start = synth_uniform(&r) < 0.75;
            size_t len = start ? 2 + synth_below(&r, 8) : 2 + synth_below(&r, 4), o = 0;
            if (start) {
                memcpy(s, WORD_START, 3);
                o = 3;
            }
            for (size_t k = 0; k < len; k++) s[o++] = letter(&r);
            s[o] = '\0';
            add(&b, s);
        }
        for (int64_t i = 0; i < n_vocab; i++) {
            strs[i] = b.text + (size_t)i * SLOT;
            types[i] = i == 100 ? 2 : (i == 0 || (i >= 101 && i <= 103)) ? 3 : 1; /* unknown, control, normal */
        }
        st = gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", err);
        if (!st) st = gguf_writer_set_str(w, "tokenizer.ggml.pre", "bert-bge", err);
        if (!st) st = gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", strs, (uint64_t)n_vocab, err);
        if (!st) st = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, types, (uint64_t)n_vocab, err);
        if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.unknown_token_id", GGUF_V_UINT32, 100, err);
        if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.seperator_token_id", GGUF_V_UINT32, 102, err);
        if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.padding_token_id", GGUF_V_UINT32, 0, err);
        if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.cls_token_id", GGUF_V_UINT32, 101, err);
        if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.mask_token_id", GGUF_V_UINT32, 103, err);
    }
    mem_free(types);
    mem_free(strs);
    mem_free(b.hash);
    mem_free(b.text);
    return st;
}
