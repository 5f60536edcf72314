/* A tiny llama model with an SPM vocabulary of the caller's choosing, for server tests
 * that force chosen tokens (through logit_bias): <unk> <s> </s>, the 256 byte tokens,
 * printable ASCII (the space as U+2581), then the caller's extra tokens from id
 * SPM_FIRST_EXTRA on; random F16 weights (synth_write_model: 1 layer, 64 wide, context
 * 2048). Fails the test on any error. */
#ifndef TESTS_SPM_MODEL_H
#define TESTS_SPM_MODEL_H

#include <stddef.h>

#define SPM_FIRST_EXTRA (3 + 256 + 95)
#define SPM_MAX_EXTRA 64

enum { SPM_NORMAL = 1, SPM_CONTROL = 3 }; /* GGUF token types */

typedef struct spm_token {
    const char *text;
    int type;
} spm_token;

/* Writes dir/model.gguf (through a dir/vocab.gguf it removes); its path into model (cap bytes). */
void spm_model_write(const char *dir, const spm_token *extra, int n_extra, char *model, size_t cap);
/* Writes text to path. */
void spm_write_text(const char *path, const char *text);

#endif
