/* The type traits tables. The scalar table names the reference kernel of every type the
 * kernels can compute and never changes; one table per CPU level starts as a copy of it
 * and gets that level's faster kernels installed entry by entry, once, before first use;
 * kern_traits() serves the table of the active level (cpu.c). Must never hand out an
 * entry with a NULL function pointer, nor a level's table the CPU cannot run. */
#include <pthread.h>

#include "base/checked.h"
#include "kernels/kern_internal.h"

#define ENTRY(id, nm, t, elems, bytes, dot_type)                                     \
    [id] = {.type = id, .name = nm, .block_elems = elems, .block_bytes = bytes,      \
            .to_float = kern_##t##_to_float, .from_float = kern_##t##_from_float,    \
            .vec_dot = kern_##t##_vec_dot, .vec_dot_type = dot_type}

static const kern_type_traits scalar_table[GGML_TYPE_LIMIT] = {
    ENTRY(GGML_F32, "F32", f32, 1, 4, GGML_F32),
    ENTRY(GGML_F16, "F16", f16, 1, 2, GGML_F32),
    ENTRY(GGML_BF16, "BF16", bf16, 1, 2, GGML_F32),
    ENTRY(GGML_Q8_0, "Q8_0", q8_0, 32, sizeof(kern_block_q8_0), GGML_Q8_0),
    ENTRY(GGML_Q8_1, "Q8_1", q8_1, 32, sizeof(kern_block_q8_1), GGML_Q8_1),
    ENTRY(GGML_Q8_K, "Q8_K", q8_k, 256, sizeof(kern_block_q8_k), GGML_Q8_K),
    ENTRY(GGML_Q4_0, "Q4_0", q4_0, 32, sizeof(kern_block_q4_0), GGML_Q8_0),
    ENTRY(GGML_Q4_1, "Q4_1", q4_1, 32, sizeof(kern_block_q4_1), GGML_Q8_1),
    ENTRY(GGML_Q5_0, "Q5_0", q5_0, 32, sizeof(kern_block_q5_0), GGML_Q8_0),
    ENTRY(GGML_Q5_1, "Q5_1", q5_1, 32, sizeof(kern_block_q5_1), GGML_Q8_1),
    ENTRY(GGML_Q4_K, "Q4_K", q4_k, 256, sizeof(kern_block_q4_k), GGML_Q8_K),
    ENTRY(GGML_Q5_K, "Q5_K", q5_k, 256, sizeof(kern_block_q5_k), GGML_Q8_K),
    ENTRY(GGML_Q6_K, "Q6_K", q6_k, 256, sizeof(kern_block_q6_k), GGML_Q8_K),
};

static kern_type_traits level_tables[3][GGML_TYPE_LIMIT];
static const kern_type_traits *active_table;
static pthread_once_t active_once = PTHREAD_ONCE_INIT;

static void install_avx2(kern_type_traits *t) {
    t[GGML_F32].vec_dot = kern_f32_vec_dot_avx2;
    t[GGML_F16].vec_dot = kern_f16_vec_dot_avx2;
    t[GGML_BF16].vec_dot = kern_bf16_vec_dot_avx2;
    t[GGML_Q8_0].vec_dot = kern_q8_0_vec_dot_avx2;
    t[GGML_Q8_0].from_float = kern_q8_0_from_float_avx2;
    t[GGML_Q8_1].from_float = kern_q8_1_from_float_avx2;
    t[GGML_Q8_K].from_float = kern_q8_k_from_float_avx2;
    t[GGML_Q4_0].vec_dot = kern_q4_0_vec_dot_avx2;
    t[GGML_Q4_1].vec_dot = kern_q4_1_vec_dot_avx2;
    t[GGML_Q5_0].vec_dot = kern_q5_0_vec_dot_avx2;
    t[GGML_Q5_1].vec_dot = kern_q5_1_vec_dot_avx2;
    t[GGML_Q4_K].vec_dot = kern_q4_k_vec_dot_avx2;
    t[GGML_Q5_K].vec_dot = kern_q5_k_vec_dot_avx2;
    t[GGML_Q6_K].vec_dot = kern_q6_k_vec_dot_avx2;
}

static void active_init(void) {
    for (int l = 0; l < 3; l++) memcpy(level_tables[l], scalar_table, sizeof scalar_table);
    /* AVX-512 adds the tiled matmul (matmul.c); its per-row kernels are AVX2's */
    install_avx2(level_tables[KERN_CPU_AVX2]);
    install_avx2(level_tables[KERN_CPU_AVX512]);
    active_table = level_tables[kern_cpu_level_active()];
}

const kern_type_traits *kern_level_traits(kern_cpu_level level, uint32_t type) {
    if (type >= GGML_TYPE_LIMIT || !scalar_table[type].name) return NULL;
    if ((int)level < 0 || level > kern_cpu_level_best()) return NULL;
    pthread_once(&active_once, active_init);
    return &level_tables[level][type];
}

const kern_type_traits *kern_scalar_traits(uint32_t type) {
    if (type >= GGML_TYPE_LIMIT || !scalar_table[type].name) return NULL;
    return &scalar_table[type];
}

const kern_type_traits *kern_traits(uint32_t type) {
    if (type >= GGML_TYPE_LIMIT || !scalar_table[type].name) return NULL;
    pthread_once(&active_once, active_init);
    return &active_table[type];
}

size_t kern_row_bytes(uint32_t type, int64_t n) {
    const kern_type_traits *t = kern_scalar_traits(type);
    if (!t || n < 0 || n % t->block_elems != 0) return 0;
    size_t bytes;
    if (!ck_mul((size_t)(n / t->block_elems), (size_t)t->block_bytes, &bytes)) return 0;
    return bytes;
}
