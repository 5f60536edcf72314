/* Allocation hook with failure injection (see mem.h). */
#include "base/mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long mem_count;   /* allocations since the last mem_fail_at */
static atomic_long mem_fail_n;  /* 0 = off; else fail from this allocation on */

long mem_fail_at(long n) {
    long seen = atomic_exchange(&mem_count, 0);
    atomic_store(&mem_fail_n, n);
    return seen;
}

static int mem_should_fail(void) {
    long n = atomic_fetch_add(&mem_count, 1) + 1;
    long f = atomic_load(&mem_fail_n);
    return f > 0 && n >= f;
}

void *mem_alloc(size_t size) {
    if (mem_should_fail()) return NULL;
    return malloc(size ? size : 1);
}

void *mem_calloc(size_t count, size_t size) {
    if (mem_should_fail()) return NULL;
    if (count == 0 || size == 0) count = size = 1;
    return calloc(count, size);
}

void *mem_alloc_array(size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) return NULL;
    return mem_alloc(total);
}

void *mem_realloc(void *ptr, size_t size) {
    if (mem_should_fail()) return NULL;
    return realloc(ptr, size ? size : 1);
}

void *mem_realloc_array(void *ptr, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) return NULL;
    return mem_realloc(ptr, total);
}

char *mem_strndup(const char *s, size_t n) {
    if (n == (size_t)-1) return NULL;
    char *d = mem_alloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mem_strdup(const char *s) { return mem_strndup(s, strlen(s)); }

void mem_free(void *ptr) { free(ptr); }
