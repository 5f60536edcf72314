/* libFuzzer target: the tokenizers. The first byte picks a vocabulary (SPM, byte-level
 * BPE with several pre-tokenizers, WordPiece; loaded once from the fixtures, skipped when
 * absent), the second byte picks flags, the rest is the text. Checks: every id is in the
 * vocabulary with and without special-token parsing; decoding works; the streaming
 * detokenizer's output is valid UTF-8; a byte-level BPE vocabulary that has a token for
 * every byte decodes valid UTF-8 back to the exact text. (Invalid bytes become U+FFFD and
 * bytes without a token are dropped, as in the reference, so those are not compared.) */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"
#include "fz_util.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define MAX_VOCABS 16

static tok_vocab *vocabs[MAX_VOCABS];
static size_t n_vocabs;
static bool byte_complete[MAX_VOCABS]; /* byte-level BPE with a token for each of the 256 bytes */

static bool round_trips(const tok_vocab *v, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    char *dec = NULL;
    size_t dec_len = 0;
    hearth_err err;
    bool ok = !tok_encode(v, text, len, false, false, &ids, &n, &err) &&
              !tok_decode(v, ids, n, true, &dec, &dec_len, &err) && dec_len == len && !memcmp(dec, text, len);
    mem_free(ids);
    mem_free(dec);
    return ok;
}

/* Every byte appears alone or inside a short valid character: ASCII, then each
 * continuation byte after C2, then each lead byte with continuation bytes. */
static bool covers_every_byte(const tok_vocab *v) {
    if (tok_get_kind(v) != TOK_KIND_BPE) return false;
    for (int b = 0; b < 0x80; b++) {
        char c = (char)b;
        if (!round_trips(v, &c, 1)) return false;
    }
    for (int b = 0x80; b < 0xC0; b++) {
        char c[2] = {(char)0xC2, (char)b};
        if (!round_trips(v, c, 2)) return false;
    }
    for (int b = 0xC2; b <= 0xF4; b++) {
        char c[4] = {(char)b, (char)(b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80), (char)0x80, (char)0x80};
        if (!round_trips(v, c, utf8_seq_len((unsigned char)b))) return false;
    }
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    for (size_t i = 0; i < fz_n_vocab_files && i < MAX_VOCABS; i++) {
        gguf_file *f = NULL;
        hearth_err err;
        if (gguf_open(fz_fixture(fz_vocab_files[i]), &f, &err)) continue;
        if (!tok_load(f, &vocabs[n_vocabs], &err)) {
            byte_complete[n_vocabs] = covers_every_byte(vocabs[n_vocabs]);
            n_vocabs++;
        }
        else fprintf(stderr, "fuzz_tokenizer: %s: %s\n", fz_vocab_files[i], err.msg);
        gguf_close(f);
    }
    size_t n_complete = 0;
    for (size_t i = 0; i < n_vocabs; i++) n_complete += byte_complete[i];
    if (n_vocabs) fprintf(stderr, "fuzz_tokenizer: %zu vocabularies, %zu byte-level BPE covering every byte\n", n_vocabs, n_complete);
    else printf("SKIP: no vocabulary found under %s; every input is ignored\n", fz_fixture("vocab"));
    return 0;
}

static void check_ids(const tok_vocab *v, const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(v)) fz_fail("id %d outside the vocabulary (%d)", ids[i], tok_n_vocab(v));
}

/* With render_special, the stream shows the first control tokens of the input (and ids
 * that are not control tokens, which must change nothing). */
static void check_stream(const tok_vocab *v, const int32_t *ids, size_t n, bool render_special) {
    int32_t shown[16];
    size_t n_shown = 0;
    for (size_t i = 0; render_special && i < n && n_shown < 16; i++)
        if (tok_is_control(v, ids[i]) || i == 0) shown[n_shown++] = ids[i];
    tok_stream *s = tok_stream_new(v, shown, n_shown);
    if (!s) fz_fail("tok_stream_new failed");
    char *all = NULL;
    size_t all_len = 0, all_cap = 0;
    hearth_err err;
    for (size_t i = 0; i <= n; i++) {
        char *out;
        size_t k;
        hearth_status st = i < n ? tok_stream_push(s, ids[i], &out, &k, &err) : tok_stream_flush(s, &out, &k, &err);
        if (st) fz_fail("stream: %s", err.msg);
        if (all_len + k >= all_cap) {
            all_cap = 2 * (all_len + k) + 64;
            char *grown = mem_realloc(all, all_cap);
            if (!grown) fz_fail("out of memory");
            all = grown;
        }
        memcpy(all + all_len, out, k);
        all_len += k;
    }
    if (all_len && !utf8_valid(all, all_len)) fz_fail("streamed text is not valid UTF-8");
    mem_free(all);
    tok_stream_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!n_vocabs || size < 2) return 0;
    size_t vi = data[0] % n_vocabs;
    const tok_vocab *v = vocabs[vi];
    bool add_special = data[1] & 1, render_special = data[1] & 2;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;
    hearth_err err;
    for (int parse_special = 0; parse_special < 2; parse_special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(v, text, len, add_special, parse_special, &ids, &n, &err)) fz_fail("encode: %s", err.msg);
        check_ids(v, ids, n);
        for (size_t i = 0; i < n; i++) {
            char piece[8];
            size_t plen;
            (void)tok_piece(v, ids[i], render_special, piece, sizeof piece);
            if (!tok_text(v, ids[i], &plen)) fz_fail("id %d has no text", ids[i]);
        }
        char *dec = NULL;
        size_t dec_len = 0;
        if (tok_decode(v, ids, n, render_special || parse_special, &dec, &dec_len, &err))
            fz_fail("decode: %s", err.msg);
        if (dec[dec_len] != '\0') fz_fail("decoded text of %zu bytes is not NUL-terminated", dec_len);
        if (byte_complete[vi] && !add_special && !parse_special && render_special &&
            utf8_valid(text, len) && (dec_len != len || memcmp(dec, text, len)))
            fz_fail("%s BPE: %zu bytes decode to %zu different bytes", tok_pre_name(v), len, dec_len);
        mem_free(dec);
        check_stream(v, ids, n, render_special);
        mem_free(ids);
    }
    return 0;
}
