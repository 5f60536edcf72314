/* Prefix reuse: a new prompt starts from the KV pages of the longest prefix it shares with
 * a cached finished sequence or a running one (kv_seq_fork shares the pages; the cache
 * copies a shared page before anyone writes into it). Finished sequences are parked in
 * extra cache sequences (ids n_slots..) and evicted least recently used first when a
 * running sequence needs pages. Pages are keyed by tokens and by the adapter set that
 * computed them: a prefix computed with other adapters (or none) never serves a prompt.
 * Scheduler thread only; never recomputes or copies KV rows itself. */
#include <string.h>

#include "base/mem.h"
#include "engine/sched_internal.h"

static int64_t common_prefix(const int32_t *a, const int32_t *b, int64_t n) {
    int64_t i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

static int32_t prefix_seq(const sched *s, int32_t i) { return s->p.n_slots + i; }

int64_t prefix_attach(sched *s, int32_t slot) {
    sched_seq *q = s->slots[slot].q;
    int64_t limit = q->n_prompt - 1; /* the last prompt token is always computed: its logits are needed */
    int64_t best = 0;
    int32_t src = -1, entry = -1;
    for (int32_t i = 0; i < s->p.prefix_slots; i++) {
        const sched_prefix *e = &s->prefixes[i];
        if (!sched_lora_same(&e->lora, &q->lora)) continue;
        int64_t c = common_prefix(e->tokens, q->tokens, e->n < limit ? e->n : limit);
        if (c > best) {
            best = c;
            src = prefix_seq(s, i);
            entry = i;
        }
    }
    for (int32_t j = 0; j < s->p.n_slots; j++) {
        const sched_seq *o = s->slots[j].q;
        if (j == slot || !o || !sched_lora_same(&o->lora, &q->lora)) continue;
        int64_t done = kv_seq_len(s->kv, j);
        int64_t c = common_prefix(o->tokens, q->tokens, done < limit ? done : limit);
        if (c > best) {
            best = c;
            src = j;
            entry = -1;
        }
    }
    kv_seq_clear(s->kv, slot);
    if (best == 0 || kv_seq_fork(s->kv, src, slot, best, NULL) != HEARTH_OK) return 0;
    if (entry >= 0) s->prefixes[entry].last_used = ++s->tick;
    return best;
}

/* The entry to overwrite: one the new tokens extend, else an empty one, else the least
 * recently used. -1 when an entry already holds all of tokens (then it is touched). */
static int32_t park_target(sched *s, const int32_t *tokens, int64_t n, const sched_lora *lora) {
    int32_t empty = -1, lru = -1;
    for (int32_t i = 0; i < s->p.prefix_slots; i++) {
        sched_prefix *e = &s->prefixes[i];
        if (e->n == 0) {
            if (empty < 0) empty = i;
            continue;
        }
        int64_t c = sched_lora_same(&e->lora, lora) ? common_prefix(e->tokens, tokens, e->n < n ? e->n : n) : -1;
        if (c == n) {
            e->last_used = ++s->tick;
            return -1;
        }
        if (c == e->n) return i;
        if (lru < 0 || e->last_used < s->prefixes[lru].last_used) lru = i;
    }
    return empty >= 0 ? empty : lru;
}

void prefix_park(sched *s, int32_t slot) {
    const sched_seq *q = s->slots[slot].q;
    int64_t n = kv_seq_len(s->kv, slot);
    if (s->p.prefix_slots > 0 && q->tokens && n >= kv_cache_config(s->kv)->page_size) {
        int32_t i = park_target(s, q->tokens, n, &q->lora);
        sched_prefix *e = i >= 0 ? &s->prefixes[i] : NULL;
        if (e && e->cap < n) {
            int32_t *t = mem_realloc_array(e->tokens, (size_t)n, sizeof *t);
            if (t) {
                e->tokens = t;
                e->cap = n;
            }
        }
        if (e && e->cap >= n && sched_lora_dup(&q->lora, &e->lora) && kv_seq_fork(s->kv, slot, prefix_seq(s, i), n, NULL) == HEARTH_OK) {
            memcpy(e->tokens, q->tokens, (size_t)n * sizeof *e->tokens);
            e->n = n;
            e->last_used = ++s->tick;
        }
    }
    kv_seq_clear(s->kv, slot);
}

bool prefix_make_room(sched *s, int64_t pages) {
    while (kv_free_pages(s->kv) < pages) {
        int32_t lru = -1;
        for (int32_t i = 0; i < s->p.prefix_slots; i++)
            if (s->prefixes[i].n > 0 && (lru < 0 || s->prefixes[i].last_used < s->prefixes[lru].last_used))
                lru = i;
        if (lru < 0) return false;
        kv_seq_clear(s->kv, prefix_seq(s, lru));
        s->prefixes[lru].n = 0;
        sched_lora_clear(&s->prefixes[lru].lora);
    }
    return true;
}

void prefix_free_all(sched *s) {
    for (int32_t i = 0; s->prefixes && i < s->p.prefix_slots; i++) {
        mem_free(s->prefixes[i].tokens);
        sched_lora_clear(&s->prefixes[i].lora);
    }
    mem_free(s->prefixes);
    s->prefixes = NULL;
}
