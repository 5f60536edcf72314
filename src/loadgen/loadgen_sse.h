/* Incremental parser for the SSE body of a streamed OpenAI completion, fed bytes as they
 * arrive (any split, even inside a line or a UTF-8 character). It reports content chunks
 * (a choice with non-empty `text` or `delta.content`, or llama.cpp's native `content`),
 * the usage count, the closing [DONE], an in-stream `{"error":...}` frame, or that the
 * body is not well-formed SSE. It never allocates more than LOADGEN_SSE_MAX per event. */
#ifndef LOADGEN_SSE_H
#define LOADGEN_SSE_H

#include <stdbool.h>
#include <stddef.h>

#define LOADGEN_SSE_MAX ((size_t)1 << 20) /* longest line or event data */

typedef struct loadgen_sse {
    char *line;  /* the line being read */
    size_t line_len, line_cap;
    char *data;  /* data lines of the event being read, joined by \n */
    size_t data_len, data_cap;
    bool has_data;
    bool after_cr;       /* the last byte was \r: a following \n belongs to it */
    /* what the stream said so far */
    long content_chunks; /* events carrying output text */
    long usage_tokens;   /* usage.completion_tokens (or tokens_predicted); -1 until seen */
    bool done;           /* data: [DONE] arrived */
    bool stream_error;   /* an error frame arrived (message in why) */
    bool malformed;      /* not SSE, or an event that is not a JSON object (why says which) */
    char why[200];
} loadgen_sse;

void loadgen_sse_init(loadgen_sse *p);
void loadgen_sse_free(loadgen_sse *p);

/* Feeds n bytes. Returns false once the stream has ended badly (malformed, out of
 * memory, or an error frame); bytes after [DONE] or after a failure are ignored. */
bool loadgen_sse_feed(loadgen_sse *p, const char *buf, size_t n);

#endif
