/* Hash indexes of a vocabulary: token text -> id, and merge pair -> rank. Open addressing
 * with linear probing over a power-of-two table at most half full; keys are compared
 * against the vocabulary's own copies, so the tables hold only indices. Built once at
 * load; lookups never allocate. */
#include <string.h>

#include "base/mem.h"
#include "tokenizer/tok_internal.h"

uint32_t tok_hash(const char *s, size_t n, uint32_t seed) {
    uint32_t h = 2166136261u ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    return h;
}

static hearth_status table_init(tok_table *t, uint32_t n_keys) {
    uint32_t cap = 16;
    while (cap < 2u * n_keys) {
        if (cap > (UINT32_MAX >> 2)) return HEARTH_ERR_NOMEM;
        cap <<= 1;
    }
    t->slots = mem_calloc(cap, sizeof *t->slots);
    if (!t->slots) return HEARTH_ERR_NOMEM;
    t->mask = cap - 1;
    return HEARTH_OK;
}

void tok_table_free(tok_table *t) {
    mem_free(t->slots);
    t->slots = NULL;
    t->mask = 0;
}

static bool text_is(const tok_vocab *v, int32_t id, const char *s, size_t n) {
    const tok_token *tk = &v->tokens[id];
    return tk->len == n && memcmp(v->text + tk->off, s, n) == 0;
}

hearth_status tok_index_texts(tok_vocab *v) {
    hearth_status st = table_init(&v->by_text, (uint32_t)v->n);
    if (st != HEARTH_OK) return st;
    for (int32_t id = 0; id < v->n; id++) {
        const tok_token *tk = &v->tokens[id];
        const char *s = v->text + tk->off;
        uint32_t i = tok_hash(s, tk->len, 0) & v->by_text.mask;
        for (;; i = (i + 1) & v->by_text.mask) {
            uint32_t slot = v->by_text.slots[i];
            if (slot == 0 || text_is(v, (int32_t)slot - 1, s, tk->len)) {
                v->by_text.slots[i] = (uint32_t)id + 1;
                break;
            }
        }
    }
    return HEARTH_OK;
}

int32_t tok_find(const tok_vocab *v, const char *s, size_t n) {
    if (!v->by_text.slots) return -1;
    uint32_t i = tok_hash(s, n, 0) & v->by_text.mask;
    for (;; i = (i + 1) & v->by_text.mask) {
        uint32_t slot = v->by_text.slots[i];
        if (slot == 0) return -1;
        if (text_is(v, (int32_t)slot - 1, s, n)) return (int32_t)slot - 1;
    }
}

static uint32_t pair_hash(const char *a, size_t na, const char *b, size_t nb) {
    return tok_hash(b, nb, tok_hash(a, na, 0x9E3779B9u));
}

static bool pair_is(const tok_vocab *v, uint32_t rank, const char *a, size_t na, const char *b, size_t nb) {
    const tok_merge *m = &v->merges[rank];
    const char *t = v->merge_text + m->off;
    return m->first_len == na && m->second_len == nb && memcmp(t, a, na) == 0 &&
           memcmp(t + na + 1, b, nb) == 0;
}

hearth_status tok_index_merges(tok_vocab *v) {
    hearth_status st = table_init(&v->by_pair, v->n_merges);
    if (st != HEARTH_OK) return st;
    for (uint32_t r = 0; r < v->n_merges; r++) {
        const tok_merge *m = &v->merges[r];
        const char *a = v->merge_text + m->off, *b = a + m->first_len + 1;
        uint32_t i = pair_hash(a, m->first_len, b, m->second_len) & v->by_pair.mask;
        for (;; i = (i + 1) & v->by_pair.mask) {
            uint32_t slot = v->by_pair.slots[i];
            if (slot == 0) {
                v->by_pair.slots[i] = r + 1;
                break;
            }
            if (pair_is(v, slot - 1, a, m->first_len, b, m->second_len)) break;
        }
    }
    return HEARTH_OK;
}

int32_t tok_merge_rank(const tok_vocab *v, const char *a, size_t na, const char *b, size_t nb) {
    if (!v->by_pair.slots) return -1;
    uint32_t i = pair_hash(a, na, b, nb) & v->by_pair.mask;
    for (;; i = (i + 1) & v->by_pair.mask) {
        uint32_t slot = v->by_pair.slots[i];
        if (slot == 0) return -1;
        if (pair_is(v, slot - 1, a, na, b, nb)) return (int32_t)slot - 1;
    }
}
