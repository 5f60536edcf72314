/* Adapters in the scheduler: each sequence's LoRA set copied with its own references
 * at submit time (dropped when the scheduler is done with it), the per-slot map a step
 * hands to model_forward_lora, and the set identity prefix reuse keys on. Never loads
 * or validates adapter files; never touches the KV cache. */
#include "base/err.h"
#include "base/mem.h"
#include "engine/sched_internal.h"

hearth_status sched_lora_copy(const sched *s, const model_lora_set *set, sched_lora *out, hearth_err *err) {
    *out = (sched_lora){0};
    if (set->n == 0) return HEARTH_OK;
    if (set->n < 0 || set->n > SCHED_MAX_LORA || !set->use)
        return err_set(err, HEARTH_ERR_INVALID, "scheduler: a sequence takes 0 to %d adapters (got %d)", SCHED_MAX_LORA,
                       set->n);
    hearth_status st = model_lora_check_set(s->m, set, err);
    if (st) return st;
    int32_t n = 0;
    for (int32_t i = 0; i < set->n; i++) n += set->use[i].scale != 0.0f;
    if (n == 0) return HEARTH_OK;
    out->use = mem_alloc_array((size_t)n, sizeof *out->use);
    if (!out->use) return err_set(err, HEARTH_ERR_NOMEM, "scheduler: out of memory for %d adapters", n);
    for (int32_t i = 0; i < set->n; i++)
        if (set->use[i].scale != 0.0f)
            out->use[out->n++] = (model_lora_use){model_lora_retain(set->use[i].adapter), set->use[i].scale};
    return HEARTH_OK;
}

bool sched_lora_dup(const sched_lora *a, sched_lora *out) {
    sched_lora c = {0};
    if (a->n > 0) {
        if (!(c.use = mem_alloc_array((size_t)a->n, sizeof *c.use))) return false;
        for (int32_t i = 0; i < a->n; i++) c.use[i] = (model_lora_use){model_lora_retain(a->use[i].adapter), a->use[i].scale};
        c.n = a->n;
    }
    sched_lora_clear(out);
    *out = c;
    return true;
}

void sched_lora_clear(sched_lora *l) {
    for (int32_t i = 0; i < l->n; i++) model_lora_release(l->use[i].adapter);
    mem_free(l->use);
    *l = (sched_lora){0};
}

bool sched_lora_same(const sched_lora *a, const sched_lora *b) {
    if (a->n != b->n) return false;
    for (int32_t i = 0; i < a->n; i++)
        if (a->use[i].adapter != b->use[i].adapter || a->use[i].scale != b->use[i].scale) return false;
    return true;
}

const model_lora_map *sched_lora_map(sched *s, model_lora_map *map) {
    bool any = false;
    for (int32_t i = 0; i < s->p.n_slots; i++) {
        const sched_seq *q = s->slots[i].q;
        s->lora_sets[i] = q ? (model_lora_set){q->lora.n, q->lora.use} : (model_lora_set){0, NULL};
        any |= s->lora_sets[i].n > 0;
    }
    *map = (model_lora_map){s->p.n_slots, s->lora_sets};
    return any ? map : NULL;
}
