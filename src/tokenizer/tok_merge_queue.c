/* Binary min-heap of merge candidates (see tok_merge_queue.h). */
#include "tokenizer/tok_merge_queue.h"

#include "base/mem.h"

static bool before(const tok_cand *a, const tok_cand *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

bool tok_queue_push(tok_queue *q, tok_cand c) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        tok_cand *nv = mem_realloc_array(q->v, cap, sizeof *nv);
        if (!nv) return false;
        q->v = nv;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&c, &q->v[parent])) break;
        q->v[i] = q->v[parent];
        i = parent;
    }
    q->v[i] = c;
    return true;
}

bool tok_queue_pop(tok_queue *q, tok_cand *out) {
    if (q->n == 0) return false;
    *out = q->v[0];
    tok_cand last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n) break;
        if (child + 1 < q->n && before(&q->v[child + 1], &q->v[child])) child++;
        if (!before(&q->v[child], &last)) break;
        q->v[i] = q->v[child];
        i = child;
    }
    if (q->n > 0) q->v[i] = last;
    return true;
}

void tok_queue_free(tok_queue *q) {
    mem_free(q->v);
    q->v = NULL;
    q->n = q->cap = 0;
}
