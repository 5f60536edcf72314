/* Shared helpers of the libFuzzer targets and their seed generator: a reader that takes
 * typed values off the fuzz input, fixture paths, and the fixture lists the targets and
 * seed_gen share. Never aborts except through fz_fail, which reports a broken invariant. */
#ifndef TESTS_FUZZ_FZ_UTIL_H
#define TESTS_FUZZ_FZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- fuzz input ---------------------------------------------------------------- */
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);              /* 0 once the input is used up */
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
double fz_f64(fz_in *in);              /* any bit pattern, NaN and infinities included */

/* Prints "fuzz invariant broken: ..." and aborts, so libFuzzer records the input. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- fixtures ------------------------------------------------------------------- */
/* Path of rel under $HEARTH_FIXTURES or the configured fixtures folder (static buffer). */
const char *fz_fixture(const char *rel);
/* Whole file in a malloc'd, NUL-terminated buffer; NULL when it cannot be read. */
char *fz_read_file(const char *path, size_t *len);

/* The vocabularies fuzz_tokenizer loads, relative to the fixtures folder (SPM, byte-level
 * BPE with several pre-tokenizers, WordPiece); each has a ".inp" file of test texts. */
extern const char *const fz_vocab_files[];
extern const size_t fz_n_vocab_files;

/* Fixture chat-template folders ("templates/NAME", "extra/templates/NAME"), sorted;
 * returns how many were found (at most cap), each a malloc'd string. */
size_t fz_template_dirs(char **out, size_t cap);

#endif
