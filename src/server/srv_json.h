/* JSON helpers of the server: strings from bytes that may not be valid UTF-8, and
 * serialising a value into a caller-owned text buffer. Values only, no I/O. */
#ifndef SERVER_SRV_JSON_H
#define SERVER_SRV_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A JSON string of s[0..n): invalid UTF-8 sequences become U+FFFD. NULL on NOMEM. */
json_t *srv_json_text(const char *s, size_t n);

/* The UTF-8 bytes of s[0..n) as a JSON array of integers (OpenAI logprobs "bytes"). */
json_t *srv_json_bytes(const char *s, size_t n);

/* Growable byte buffer with a cap; every append fails (returns false) past the cap. */
typedef struct srv_buf {
    char *data;
    size_t len, cap, max;
} srv_buf;

bool srv_buf_add(srv_buf *b, const void *p, size_t n);
bool srv_buf_addf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v serialised compactly (no NaN: jansson refuses it). */
bool srv_buf_add_json(srv_buf *b, const json_t *v);
void srv_buf_consume(srv_buf *b, size_t n); /* drops the first n bytes */
void srv_buf_free(srv_buf *b);

#endif
