/* The one allocation hook of the project. All heap memory goes through these functions
 * so tests can make the Nth allocation fail (mem_fail_at) and check each failure path
 * ends cleanly. Sizes are overflow-checked; a failed allocation returns NULL. */
#ifndef BASE_MEM_H
#define BASE_MEM_H

#include <stddef.h>

void *mem_alloc(size_t size);
void *mem_calloc(size_t count, size_t size);       /* zeroed; NULL on count*size overflow */
void *mem_alloc_array(size_t count, size_t size);  /* uninitialised; NULL on overflow */
void *mem_realloc(void *ptr, size_t size);
void *mem_realloc_array(void *ptr, size_t count, size_t size);
char *mem_strndup(const char *s, size_t n);        /* copies n bytes and adds a NUL */
char *mem_strdup(const char *s);
void mem_free(void *ptr);                          /* accepts NULL */

/* Test hook: the n-th allocation from now (1-based) and every later one fails until
 * mem_fail_at(0) turns injection off. Returns the number of allocations made since the
 * last call, so a test can learn how many a path makes. */
long mem_fail_at(long n);

#endif
