/* Stop-string matcher for streamed generation: text arrives in pieces (one per token),
 * a stop string may span many pieces, and no byte that could still turn out to belong to
 * a stop string is released. It also holds back a UTF-8 character split across pieces,
 * so released text never ends inside a character. It never prints and allocates only
 * when a piece outgrows its buffer.
 *
 * Matching rule: generation stops at the first position where some stop string ends;
 * when several end there, the longest wins. Only the text before it is released. The
 * result does not depend on how the text was cut into pieces. */
#ifndef ENGINE_STOP_H
#define ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "hearth.h"

#define STOP_MAX_STRINGS 16
#define STOP_MAX_LEN 256   /* bytes per stop string */

typedef struct stop_matcher stop_matcher;

/* Copies stops[0..n). Each must be non-empty, valid UTF-8 and at most STOP_MAX_LEN bytes;
 * n at most STOP_MAX_STRINGS (0 is allowed: only UTF-8 holding then). Returns NULL and
 * fills err (HEARTH_ERR_INVALID naming the string, or NOMEM). */
stop_matcher *stop_matcher_new(const char *const *stops, size_t n, hearth_err *err);
void stop_matcher_free(stop_matcher *m);

/* Feeds the next len bytes of generated text. On return *emit points at *emit_len bytes
 * that may be shown now (held-back bytes from earlier feeds first, then this text),
 * valid until the next call on m. *stopped tells whether a stop string has matched; then
 * *emit is all the text before it that had not been released, and further feeds release
 * nothing and report stopped again. Returns HEARTH_ERR_NOMEM (m unchanged) if the piece
 * does not fit in memory. */
hearth_status stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **emit,
                                size_t *emit_len, bool *stopped);

/* At the end of generation without a stop: releases every byte still held back. */
void stop_matcher_finish(stop_matcher *m, const char **emit, size_t *emit_len);

/* Index of the stop string that matched, or -1. */
int stop_matcher_matched(const stop_matcher *m);

/* Forgets all text and any match, ready for a new generation with the same stops. */
void stop_matcher_reset(stop_matcher *m);

#endif
