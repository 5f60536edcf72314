/* Shared test helpers: fixture paths and skipping when ../shared/fixtures is absent. */
#ifndef TESTS_TESTUTIL_H
#define TESTS_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file under the fixtures folder, in a static buffer (overwritten per call). */
const char *fixture_path(const char *rel);

/* True when the fixtures folder exists; otherwise prints one line and returns false. */
int fixtures_available(void);

/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL on failure. */
char *read_file(const char *path, size_t *len);

/* Runs the hearth binary with args (shell-quoted by the caller), capturing stdout and
 * stderr into malloc'd strings (may pass NULL). Returns the exit status, or 128+signal. */
int run_hearth(const char *args, char **out, char **errout);

#endif
