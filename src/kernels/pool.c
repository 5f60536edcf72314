/* The persistent thread pool behind every parallel kernel. Workers are created once;
 * each run publishes (fn, ctx) and bumps a generation counter, workers spin briefly on
 * it and then sleep on a futex, and the caller (thread 0) waits the same way on a count
 * of workers still busy. A run therefore costs two cheap barriers, never a thread.
 * Linux only (futex). Must never create threads per run or call fn twice for one ith. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_* */
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/mem.h"
#include "kernels/kern_internal.h"

#define SPIN_ITERS 20000   /* ~ a fraction of a millisecond before sleeping */
#define SPIN_PURE 1024     /* then each check also yields, for when threads outnumber cores */
#define MAX_THREADS 512

struct kern_pool {
    int n;                           /* threads including the caller */
    pthread_t *threads;              /* n - 1 workers */
    void (*fn)(void *ctx, int ith, int nth);
    void *ctx;
    _Atomic uint32_t gen;            /* futex word: bumped once per run (and at stop) */
    _Atomic uint32_t busy;           /* futex word: workers that have not finished the run */
    atomic_int sleepers;             /* workers asleep (or about to be) on gen */
    atomic_bool caller_asleep;       /* the caller is asleep (or about to be) on busy */
    atomic_bool stop;
    void *scratch_raw;               /* kern_pool_scratch: allocation, 64-byte aligned view */
    void *scratch;
    size_t scratch_cap;
};

typedef struct {
    kern_pool *pool;
    int ith;
} worker_arg;

static inline void spin_pause(int iter) {
    if (iter >= SPIN_PURE) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *word, uint32_t expected) {
    /* returns at once if *word != expected; spurious wake-ups are re-checked by callers */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int count) {
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

/* Waits until *word differs from old; returns the new value. */
static uint32_t wait_for_change(kern_pool *p, uint32_t old) {
    for (int i = 0; i < SPIN_ITERS; i++) {
        uint32_t v = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (v != old) return v;
        spin_pause(i);
    }
    for (;;) {
        atomic_fetch_add(&p->sleepers, 1);
        futex_wait(&p->gen, old);
        atomic_fetch_sub(&p->sleepers, 1);
        uint32_t v = atomic_load(&p->gen);
        if (v != old) return v;
    }
}

static void *worker_main(void *arg) {
    worker_arg *wa = arg;
    kern_pool *p = wa->pool;
    int ith = wa->ith;
    mem_free(wa);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_change(p, seen);
        if (atomic_load(&p->stop)) break;
        p->fn(p->ctx, ith, p->n);
        if (atomic_fetch_sub(&p->busy, 1) == 1 && atomic_load(&p->caller_asleep))
            futex_wake(&p->busy, 1);
    }
    return NULL;
}

/* Physical cores available to this process: distinct (package, core) pairs among the
   CPUs of our affinity mask; the CPU count when topology cannot be read. */
static int physical_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (int)n : 1;
    }
    int n_cpus = CPU_COUNT(&set);
    int pkg[CPU_SETSIZE], core[CPU_SETSIZE];
    int n_cores = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        char path[128];
        int ids[2];
        const char *names[2] = {"physical_package_id", "core_id"};
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, names[k]);
            FILE *f = fopen(path, "r");
            if (!f || fscanf(f, "%d", &ids[k]) != 1) {
                if (f) fclose(f);
                return n_cpus > 0 ? n_cpus : 1;
            }
            fclose(f);
        }
        bool seen = false;
        for (int i = 0; i < n_cores && !seen; i++) seen = pkg[i] == ids[0] && core[i] == ids[1];
        if (!seen) {
            pkg[n_cores] = ids[0];
            core[n_cores] = ids[1];
            n_cores++;
        }
    }
    return n_cores > 0 ? n_cores : 1;
}

static void pool_stop(kern_pool *p, int started) {
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    futex_wake(&p->gen, INT_MAX);
    for (int i = 0; i < started; i++) pthread_join(p->threads[i], NULL);
}

kern_pool *kern_pool_new(int n_threads) {
    if (n_threads <= 0) n_threads = physical_cores();
    if (n_threads > MAX_THREADS) n_threads = MAX_THREADS;
    kern_pool *p = mem_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    p->threads = mem_calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads) {
        mem_free(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = mem_alloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i};
        if (!wa || pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
            mem_free(wa);
            pool_stop(p, i - 1);
            mem_free(p->threads);
            mem_free(p);
            return NULL;
        }
    }
    return p;
}

void kern_pool_free(kern_pool *p) {
    if (!p) return;
    pool_stop(p, p->n - 1);
    mem_free(p->threads);
    mem_free(p->scratch_raw);
    mem_free(p);
}

int kern_pool_size(const kern_pool *p) { return p ? p->n : 1; }

void kern_pool_run(kern_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->busy, (uint32_t)(p->n - 1));
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleepers) > 0) futex_wake(&p->gen, INT_MAX);

    fn(ctx, 0, p->n);

    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->busy, memory_order_acquire) == 0) return;
        spin_pause(i);
    }
    atomic_store(&p->caller_asleep, true);
    for (;;) {
        uint32_t v = atomic_load(&p->busy);
        if (v == 0) break;
        futex_wait(&p->busy, v);
    }
    atomic_store(&p->caller_asleep, false);
}

void *kern_pool_scratch(kern_pool *p, size_t bytes) {
    if (bytes <= p->scratch_cap) return p->scratch;
    size_t want = bytes + bytes / 4;   /* grow with headroom: fewer reallocations */
    size_t alloc;
    if (want < bytes || !ck_add(want, (size_t)63, &alloc)) return NULL;
    void *raw = mem_alloc(alloc);
    if (!raw) return NULL;
    mem_free(p->scratch_raw);
    p->scratch_raw = raw;
    p->scratch = (void *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    p->scratch_cap = want;
    return p->scratch;
}
