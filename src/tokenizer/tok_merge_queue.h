/* Priority queue of candidate merges shared by the SPM and BPE encoders: the entry with
 * the smallest key comes first, ties broken by the leftmost position, which reproduces
 * the reference's merge order exactly. Entries may go stale; callers check sizes. */
#ifndef TOKENIZER_TOK_MERGE_QUEUE_H
#define TOKENIZER_TOK_MERGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tok_cand {
    double key;    /* BPE: merge rank; SPM: minus the token score */
    int32_t left;  /* symbol index of the left part */
    int32_t right; /* symbol index of the right part */
    size_t size;   /* bytes of the merged text when queued */
} tok_cand;

/* One symbol of a word being merged: a run of bytes linked to its neighbours. */
typedef struct tok_sym {
    const char *text;
    size_t n;       /* 0 once merged into its left neighbour */
    int32_t prev;   /* -1 at the start */
    int32_t next;   /* -1 at the end */
} tok_sym;

typedef struct tok_queue {
    tok_cand *v;
    size_t n, cap;
} tok_queue;

bool tok_queue_push(tok_queue *q, tok_cand c); /* false on NOMEM */
bool tok_queue_pop(tok_queue *q, tok_cand *out); /* false when empty */
void tok_queue_free(tok_queue *q);

#endif
