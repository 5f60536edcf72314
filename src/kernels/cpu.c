/* Run-time CPU detection: which instruction-set level the kernels may use (CPUID for the
 * feature bits, XGETBV for the OS saving the wider registers), and the HEARTH_CPU
 * override (scalar | avx2 | avx512) that forces a lower path. Decided once per process.
 * Must never choose a level the CPU or OS lacks: a forced level the machine cannot run
 * falls back to the best it can, with a notice the caller may log. */
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kern_internal.h"

typedef struct {
    kern_cpu_level best;     /* what this machine supports */
    kern_cpu_level active;   /* what the kernels use */
    bool bf16;               /* AVX512_BF16 present (with the AVX-512 level) */
    char notice[160];        /* empty, or why the active level differs from HEARTH_CPU */
} cpu_state;

static cpu_state state;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static unsigned long long read_xcr0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

static kern_cpu_level detect(bool *bf16) {
    unsigned int a, b, c, d;
    *bf16 = false;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return KERN_CPU_SCALAR;
    bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave || !avx) return KERN_CPU_SCALAR;
    unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return KERN_CPU_SCALAR;   /* XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return KERN_CPU_SCALAR;
    bool avx2 = b & (1u << 5);
    if (!(avx2 && fma && f16c)) return KERN_CPU_SCALAR;
    bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31), vnni = c & (1u << 11);
    bool zmm_state = (xcr0 & 0xe0) == 0xe0;             /* opmask, ZMM0-15 upper, ZMM16-31 */
    if (!(f && bw && vl && vnni && zmm_state)) return KERN_CPU_AVX2;
    unsigned int a1, b1, c1, d1;
    if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) *bf16 = a1 & (1u << 5);
    return KERN_CPU_AVX512;
}

static void state_init(void) {
    state.best = detect(&state.bf16);
    state.active = state.best;
    const char *env = getenv("HEARTH_CPU");
    if (!env || !*env) return;
    kern_cpu_level want;
    if (strcmp(env, "scalar") == 0) want = KERN_CPU_SCALAR;
    else if (strcmp(env, "avx2") == 0) want = KERN_CPU_AVX2;
    else if (strcmp(env, "avx512") == 0) want = KERN_CPU_AVX512;
    else {
        snprintf(state.notice, sizeof state.notice,
                 "HEARTH_CPU=%.40s is not scalar, avx2 or avx512; using %s", env, kern_cpu_level_name(state.best));
        return;
    }
    if (want > state.best)
        snprintf(state.notice, sizeof state.notice, "HEARTH_CPU=%s: this CPU lacks it; using %s",
                 kern_cpu_level_name(want), kern_cpu_level_name(state.best));
    else
        state.active = want;
}

kern_cpu_level kern_cpu_level_active(void) {
    pthread_once(&state_once, state_init);
    return state.active;
}

kern_cpu_level kern_cpu_level_best(void) {
    pthread_once(&state_once, state_init);
    return state.best;
}

bool kern_cpu_has_bf16(void) {
    pthread_once(&state_once, state_init);
    return state.bf16;
}

const char *kern_cpu_notice(void) {
    pthread_once(&state_once, state_init);
    return state.notice[0] ? state.notice : NULL;
}

const char *kern_cpu_level_name(kern_cpu_level level) {
    switch (level) {
    case KERN_CPU_SCALAR: return "scalar";
    case KERN_CPU_AVX2: return "avx2";
    case KERN_CPU_AVX512: return "avx512";
    }
    return "unknown";
}
