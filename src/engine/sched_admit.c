/* Queue-wait admission (see "Queue-wait admission" in sched.h): the estimate of how long
 * a request submitted now would wait for a slot, replayed from what the slots and the
 * queue ahead still have to do, at the scheduler's measured speeds. Reads only: it never
 * changes the queue or the slots, and it runs under sched.mu on the submitting thread, so
 * its work is bounded by the queue ahead times the slots (and stops at the bound).
 *
 * The model, per slot, in seconds from now:
 *   busy slot i      frees at  P + gen_left_i * step_s,  P = sum of the prompt tokens still
 *                    to prefill in the slots / prefill_tps (prefill shares every step, so
 *                    it delays every busy slot);
 *   free slot        frees at 0;
 *   queued request k (FIFO) takes the slot that frees first, at t; its prompt delays every
 *                    slot busy at t by n_prompt_k / prefill_tps; its slot then frees at
 *                    t + n_prompt_k / prefill_tps + gen_budget_k * step_s.
 * The new request's wait is the earliest free time left. Token budgets (max_tokens and
 * the context) are upper bounds; speeds are recent averages; prefix reuse is ignored. */
#include "engine/sched_internal.h"

void admit_sim_init(admit_sim *m, double *free_at, int32_t n_slots, double step_s, double prefill_tps) {
    *m = (admit_sim){.free_at = free_at, .n_slots = n_slots, .step_s = step_s, .prefill_tps = prefill_tps};
    for (int32_t i = 0; i < n_slots; i++) free_at[i] = 0.0;
}

/* Delays every slot still busy after time t by d seconds. */
static void stall_busy(admit_sim *m, double t, double d) {
    for (int32_t i = 0; i < m->n_slots; i++)
        if (m->free_at[i] > t) m->free_at[i] += d;
}

void admit_sim_slots(admit_sim *m, const int64_t *prompt_left, const int64_t *gen_left) {
    double pending = 0;
    for (int32_t i = 0; i < m->n_slots; i++) {
        m->free_at[i] = (double)gen_left[i] * m->step_s;
        pending += (double)prompt_left[i] / m->prefill_tps;
    }
    for (int32_t i = 0; i < m->n_slots; i++)
        if (gen_left[i] > 0 || prompt_left[i] > 0) m->free_at[i] += pending;
}

static int32_t first_free(const admit_sim *m) {
    int32_t best = 0;
    for (int32_t i = 1; i < m->n_slots; i++)
        if (m->free_at[i] < m->free_at[best]) best = i;
    return best;
}

void admit_sim_queue(admit_sim *m, int64_t n_prompt, int64_t gen_budget) {
    int32_t i = first_free(m);
    double t = m->free_at[i], prefill = (double)n_prompt / m->prefill_tps;
    stall_busy(m, t, prefill);
    m->free_at[i] = t + prefill + (double)gen_budget * m->step_s;
}

double admit_sim_wait(const admit_sim *m) { return m->n_slots > 0 ? m->free_at[first_free(m)] : 0.0; }

double admit_step_s(const sched *s) { return s->decode_step_s > 0 ? s->decode_step_s : 1.0 / DEFAULT_DECODE_TPS; }

double admit_prefill_tps(const sched *s) { return s->prefill_tps > 0 ? s->prefill_tps : DEFAULT_PREFILL_TPS; }

double admit_wait_locked(const sched *s, double limit_s) {
    admit_sim m;
    admit_sim_init(&m, s->admit_free_at, s->p.n_slots, admit_step_s(s), admit_prefill_tps(s));
    admit_sim_slots(&m, s->slot_prompt_left, s->slot_gen_left);
    for (const sched_seq *q = s->queue_head; q; q = q->next) {
        if (limit_s > 0 && admit_sim_wait(&m) > limit_s) break; /* only more waiting follows */
        admit_sim_queue(&m, q->n_prompt, q->cap_tokens - q->n_prompt);
    }
    return admit_sim_wait(&m);
}

double sched_queue_wait_s(const sched *s) {
    sched *w = (sched *)s; /* the lock is the only thing written */
    pthread_mutex_lock(&w->mu);
    double r = admit_wait_locked(s, 0);
    pthread_mutex_unlock(&w->mu);
    return r;
}
