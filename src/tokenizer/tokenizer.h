/* Tokenizers for GGUF vocabularies: SentencePiece-style BPE ("llama"), byte-level BPE with
 * pre-tokenizer regexes ("gpt2"), and WordPiece ("bert"), plus the detokenizer. Behaviour
 * follows the reference engine (llama.cpp family) token for token, so prompts produce the
 * same ids as there. A loaded vocabulary is immutable: every function taking a const
 * tok_vocab may be called from several threads at once.
 *
 * This module never prints, never exits and never trusts a count or id from a file: a
 * malformed tokenizer.ggml.* key is refused at tok_load with a FORMAT error naming it. */
#ifndef TOKENIZER_TOKENIZER_H
#define TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"
#include "hearth.h"

typedef struct tok_vocab tok_vocab;

typedef enum tok_kind {
    TOK_KIND_SPM = 1, /* tokenizer.ggml.model "llama": score-driven merges, byte fallback */
    TOK_KIND_BPE = 2, /* "gpt2": byte-level BPE with merge ranks and a pre-tokenizer */
    TOK_KIND_WPM = 3, /* "bert": WordPiece, greedy longest match */
} tok_kind;

/* Builds the vocabulary from f's tokenizer.ggml.* metadata. The result owns copies of
 * everything it needs, so f may be closed afterwards. Errors: FORMAT (a missing or
 * malformed key, named in err), UNSUPPORTED (unknown tokenizer model or pre-tokenizer),
 * NOMEM. */
hearth_status tok_load(const gguf_file *f, tok_vocab **out, hearth_err *err);
void tok_free(tok_vocab *v); /* accepts NULL */

/* Encodes len bytes of text (need not be NUL-terminated, may hold any bytes).
 * add_special: add BOS/EOS (WordPiece: [CLS]/[SEP]) as the vocabulary says.
 * parse_special: text equal to a control token's text becomes that token; when false it
 * stays plain text. User-defined tokens (tokenizer.ggml.token_type 4) are always matched
 * as whole tokens, as in the reference.
 * *ids is mem_alloc'd (free with mem_free); it may be NULL when *n_ids is 0.
 * Errors: NOMEM, INVALID (NULL arguments). */
hearth_status tok_encode(const tok_vocab *v, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **ids, size_t *n_ids, hearth_err *err);

tok_kind tok_get_kind(const tok_vocab *v);
const char *tok_kind_name(const tok_vocab *v); /* "SPM", "BPE", "WPM" */
const char *tok_pre_name(const tok_vocab *v);  /* pre-tokenizer used ("default", "llama3", ...; "" for SPM/WPM) */
int32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v); /* -1 when the vocabulary has none */
int32_t tok_eos(const tok_vocab *v); /* -1 when none */
int32_t tok_eot(const tok_vocab *v); /* -1 when none */
bool tok_adds_bos(const tok_vocab *v); /* what add_special adds at the front */
bool tok_adds_eos(const tok_vocab *v); /* what add_special adds at the end */
bool tok_is_eog(const tok_vocab *v, int32_t id);     /* eos, eot, eom and other end-of-generation tokens */
bool tok_is_control(const tok_vocab *v, int32_t id); /* false for ids out of range */
/* The control token whose stored text is exactly text[0..len), or -1 when no control
 * token has it (a normal or user-defined token of that text does not count). */
int32_t tok_control_id(const tok_vocab *v, const char *text, size_t len);

/* The token's stored text (not NUL-terminated; *len set), e.g. "<s>" or "▁Hello";
 * NULL for an id out of range. Chat templates use it for bos_token/eos_token. */
const char *tok_text(const tok_vocab *v, int32_t id, size_t *len);

/* Bytes token id contributes to the output text: U+2581 becomes a space (SPM, WordPiece),
 * <0xXX> tokens their byte, byte-level BPE text its bytes. Control and unknown tokens
 * contribute nothing unless render_special (then their text). Returns the piece's length
 * and copies min(length, cap) bytes to buf; an id out of range gives 0. */
size_t tok_piece(const tok_vocab *v, int32_t id, bool render_special, char *buf, size_t cap);

/* Whole-sequence detokenizer: the pieces joined, minus the one leading space that the SPM
 * space prefix added (dropped only from the first token's piece, as the reference does).
 * The result is the exact bytes (not UTF-8-checked), NUL-terminated, mem_alloc'd; *len
 * excludes the NUL. Errors: INVALID (an id out of range, named), NOMEM. */
hearth_status tok_decode(const tok_vocab *v, const int32_t *ids, size_t n_ids, bool render_special,
                         char **out, size_t *len, hearth_err *err);

/* Streaming detokenizer for generated tokens. It holds back the bytes of a UTF-8
 * character until the character is complete, so its output never ends inside one, and
 * emits every invalid byte sequence as U+FFFD: the concatenated output is always valid
 * UTF-8. No leading space is dropped (generated text continues a prompt).
 * shown[0..n_shown) (copied; may be NULL when n_shown is 0) lists the control tokens whose
 * text the stream writes, e.g. a tool-call marker such as "[TOOL_CALLS]"; every other
 * control token, and every unknown token, contributes nothing. An id in the list that is
 * not a control token changes nothing (its piece is what it always is); callers that take
 * the list from a request validate it first (sched_request.shown_control). */
typedef struct tok_stream tok_stream;
tok_stream *tok_stream_new(const tok_vocab *v, const int32_t *shown, size_t n_shown); /* NULL on NOMEM */
void tok_stream_free(tok_stream *s);                                 /* accepts NULL */
/* Adds one token. out and n receive the bytes now complete; the bytes live in the stream
 * and stay valid until the next call on s. Errors: INVALID (id out of range), NOMEM. */
hearth_status tok_stream_push(tok_stream *s, int32_t id, char **out, size_t *n, hearth_err *err);
/* Ends the sequence: returns what was held back (an unfinished character as U+FFFD) and
 * resets the stream for reuse. */
hearth_status tok_stream_flush(tok_stream *s, char **out, size_t *n, hearth_err *err);

#endif
