/* UTF-8 decoding and encoding, strict (no overlongs, surrogates or values past U+10FFFF). */
#ifndef BASE_UTF8_H
#define BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one character at s (n bytes available). Returns its length (1-4) and stores
 * the code point, or returns 0 if the bytes are not a valid, complete character. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);

/* Writes cp as UTF-8 into out (4 bytes room); returns the length, 0 if cp is invalid. */
size_t utf8_encode(uint32_t cp, char out[4]);

/* Length of a leading byte's sequence (1-4), or 0 for a continuation/invalid byte. */
size_t utf8_seq_len(unsigned char lead);

/* Length of the longest prefix of s[0..n) that does not end inside an incomplete
 * character: the bytes that can be emitted now when more may follow. Invalid bytes
 * count as complete (they will never become valid). */
size_t utf8_complete_prefix(const char *s, size_t n);

/* True when all n bytes are valid UTF-8. */
int utf8_valid(const char *s, size_t n);

#endif
