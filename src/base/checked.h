/* Overflow-checked integer arithmetic for every size that comes from a file or socket.
 * Each returns true when the result fits (and stores it), false on overflow. */
#ifndef BASE_CHECKED_H
#define BASE_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

#define ck_add(a, b, out) (!__builtin_add_overflow((a), (b), (out)))
#define ck_mul(a, b, out) (!__builtin_mul_overflow((a), (b), (out)))

/* True when [off, off+len) lies inside [0, size). */
static inline bool ck_range(uint64_t off, uint64_t len, uint64_t size) {
    return off <= size && len <= size - off;
}

#endif
