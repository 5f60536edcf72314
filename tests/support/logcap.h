/* A log sink for in-process servers in tests: keeps every JSON line a server logs, for
 * checks by substring. Thread-safe; one capture per test binary. */
#ifndef TESTS_LOGCAP_H
#define TESTS_LOGCAP_H

#include <jansson.h>
#include <stdbool.h>

/* A srv_log_fn: appends line (ud unused). */
void logcap_line(void *ud, const char *line);
/* True when some captured line contains s. */
bool logcap_has(const char *s);
/* The first captured line containing pat, parsed (the caller owns it), or NULL. */
json_t *logcap_find(const char *pat);
/* Forgets everything captured. */
void logcap_free(void);

#endif
