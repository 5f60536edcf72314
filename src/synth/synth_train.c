/* BPE training on the built-in word list (synth_words.c): each common word in four forms
 * (" word", "word", " Word", "Word") weighted by a Zipf law on its rank, plus the frequent
 * pieces; the most frequent adjacent pair is merged first, ties broken by the smaller ids,
 * as a real tokenizer's training does. The caller's merge function decides the new token's
 * id. Deterministic; never reads a file, never prints. */
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "synth/synth_train.h"
#include "synth/synth_words.h"

#define ZIPF_SCALE 20000000.0
#define ZIPF_SHIFT 20.0
#define PIECE_RANK 300 /* pieces weigh as much as the word at this rank */
#define MAX_WORD 32

typedef struct entry {
    int64_t off, len, weight;
    uint64_t bloom; /* one bit per symbol id hash: skips entries without a pair's symbols */
} entry;

typedef struct pair_slot {
    uint64_t key; /* left << 32 | right; 0 = empty (no pair has two zero-byte symbols here) */
    int64_t count;
    bool banned;
} pair_slot;

typedef struct heap_item {
    int64_t count;
    uint64_t key;
} heap_item;

typedef struct trainer {
    int32_t *sym;
    int64_t n_sym;
    entry *ents;
    int64_t n_ents;
    pair_slot *pairs;
    uint64_t pair_mask;
    heap_item *heap;
    int64_t n_heap, heap_cap;
} trainer;

static uint64_t bloom_bit(int32_t id) { return 1ULL << (((uint64_t)(uint32_t)id * 0x9e3779b97f4a7c15ULL) >> 58); }

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static pair_slot *pair_find(trainer *t, uint64_t key) {
    uint64_t i = (key * 0xd1342543de82ef95ULL >> 20) & t->pair_mask;
    while (t->pairs[i].key && t->pairs[i].key != key) i = (i + 1) & t->pair_mask;
    t->pairs[i].key = key;
    return &t->pairs[i];
}

static bool heap_above(heap_item x, heap_item y) {
    return x.count > y.count || (x.count == y.count && x.key < y.key);
}

static void heap_push(trainer *t, int64_t count, uint64_t key) {
    if (t->n_heap == t->heap_cap) return; /* sized for the worst case; cannot happen */
    int64_t i = t->n_heap++;
    heap_item it = {count, key};
    while (i > 0 && heap_above(it, t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = it;
}

static heap_item heap_pop(trainer *t) {
    heap_item top = t->heap[0], last = t->heap[--t->n_heap];
    int64_t i = 0, n = t->n_heap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_above(t->heap[c + 1], t->heap[c])) c++;
        if (!heap_above(t->heap[c], last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

static void pair_add(trainer *t, int32_t a, int32_t b, int64_t w) {
    pair_slot *p = pair_find(t, pair_key(a, b));
    p->count += w;
    if (w > 0 && !p->banned) heap_push(t, p->count, p->key);
}

static void add_entry(trainer *t, const char *text, size_t len, int64_t weight) {
    entry *e = &t->ents[t->n_ents++];
    *e = (entry){.off = t->n_sym, .len = (int64_t)len, .weight = weight > 0 ? weight : 1};
    for (size_t i = 0; i < len; i++) {
        t->sym[t->n_sym++] = (unsigned char)text[i];
        e->bloom |= bloom_bit((unsigned char)text[i]);
    }
}

/* Calls fn(t, text, len, weight) for every entry of the training text. */
static void each_entry(void (*fn)(trainer *, const char *, size_t, int64_t), trainer *t) {
    const char *w = synth_common_words();
    for (int64_t rank = 0; *w; rank++) {
        size_t n = strcspn(w, " ");
        if (n > 0 && n < MAX_WORD) {
            char form[MAX_WORD + 1];
            int64_t base = (int64_t)(ZIPF_SCALE / ((double)rank + ZIPF_SHIFT));
            form[0] = ' ';
            memcpy(form + 1, w, n);
            fn(t, form, n + 1, base);
            fn(t, form + 1, n, base / 5);
            if (form[1] >= 'a' && form[1] <= 'z') form[1] = (char)(form[1] - 'a' + 'A'); /* not locale-dependent */
            fn(t, form, n + 1, base / 6);
            fn(t, form + 1, n, base / 20);
        }
        w += n;
        while (*w == ' ') w++;
    }
    size_t n_pieces;
    const char *const *pieces = synth_common_pieces(&n_pieces);
    for (size_t i = 0; i < n_pieces; i++)
        fn(t, pieces[i], strlen(pieces[i]), (int64_t)(ZIPF_SCALE / (PIECE_RANK + ZIPF_SHIFT)));
}

static void count_entry(trainer *t, const char *text, size_t len, int64_t weight) {
    (void)text;
    (void)weight;
    t->n_ents++;
    t->n_sym += (int64_t)len;
}

/* Replaces every (a, b) in the entries by c, keeping the pair counts in step. */
static void apply_merge(trainer *t, int32_t a, int32_t b, int32_t c) {
    uint64_t need = bloom_bit(a) | bloom_bit(b);
    for (int64_t k = 0; k < t->n_ents; k++) {
        entry *e = &t->ents[k];
        if ((e->bloom & need) != need || e->len < 2) continue;
        int32_t *s = t->sym + e->off;
        int64_t n = e->len, out = 0;
        bool changed = false;
        for (int64_t i = 0; i < n; i++) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                pair_add(t, a, b, -e->weight);
                if (out > 0) {
                    pair_add(t, s[out - 1], a, -e->weight);
                    pair_add(t, s[out - 1], c, e->weight);
                }
                if (i + 2 < n) {
                    pair_add(t, b, s[i + 2], -e->weight);
                    pair_add(t, c, s[i + 2], e->weight);
                }
                s[out++] = c;
                i++;
                changed = true;
            } else {
                s[out++] = s[i];
            }
        }
        if (!changed) continue;
        e->len = out;
        e->bloom = 0;
        for (int64_t i = 0; i < out; i++) e->bloom |= bloom_bit(s[i]);
    }
}

hearth_status synth_train_words(int64_t budget, synth_merge_fn merge, void *ctx, hearth_err *err) {
    trainer t = {0};
    int64_t merged = 0;
    each_entry(count_entry, &t);
    int64_t n_sym = t.n_sym, n_ents = t.n_ents;
    uint64_t slots = 1;
    while (slots < 4 * (uint64_t)n_sym) slots <<= 1;
    t.pair_mask = slots - 1;
    t.heap_cap = 6 * n_sym + 16;
    t.sym = mem_alloc_array((size_t)n_sym, sizeof *t.sym);
    t.ents = mem_alloc_array((size_t)n_ents, sizeof *t.ents);
    t.pairs = mem_calloc(slots, sizeof *t.pairs);
    t.heap = mem_alloc_array((size_t)t.heap_cap, sizeof *t.heap);
    hearth_status st = HEARTH_OK;
    if (!t.sym || !t.ents || !t.pairs || !t.heap) {
        st = err_set(err, HEARTH_ERR_NOMEM, "mkmodel: out of memory for the vocabulary's training text");
    } else {
        t.n_sym = t.n_ents = 0;
        each_entry(add_entry, &t);
        for (int64_t k = 0; k < t.n_ents; k++)
            for (int64_t i = 0; i + 1 < t.ents[k].len; i++)
                pair_add(&t, t.sym[t.ents[k].off + i], t.sym[t.ents[k].off + i + 1], t.ents[k].weight);
        while (merged < budget && t.n_heap > 0) {
            heap_item top = heap_pop(&t);
            pair_slot *p = pair_find(&t, top.key);
            if (p->banned || p->count <= 0) continue;
            if (p->count != top.count) { /* stale: requeue at its current count */
                heap_push(&t, p->count, p->key);
                continue;
            }
            int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key, c;
            if (!merge(ctx, a, b, &c)) {
                p->banned = true;
                continue;
            }
            apply_merge(&t, a, b, c);
            merged++;
        }
    }
    mem_free(t.heap);
    mem_free(t.pairs);
    mem_free(t.ents);
    mem_free(t.sym);
    return st;
}
