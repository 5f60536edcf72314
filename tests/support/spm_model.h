/* A tiny llama model with an SPM vocabulary of the caller's choosing, for server tests
 * that force chosen tokens (through logit_bias): <unk> <s> </s>, the 256 byte tokens,
 * printable ASCII (the space as U+2581), then the caller's extra tokens from id
 * SPM_FIRST_EXTRA on; random F16 weights (synth_write_model: 1 layer, 64 wide, context
 * 2048), and `hearth serve` on it. Fails the test on any error. */
#ifndef TESTS_SPM_MODEL_H
#define TESTS_SPM_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "srvtest.h"

#define SPM_FIRST_EXTRA (3 + 256 + 95)
#define SPM_MAX_EXTRA 64

enum { SPM_NORMAL = 1, SPM_CONTROL = 3 }; /* GGUF token types */

typedef struct spm_token {
    const char *text;
    int type;
} spm_token;

/* One model of a served config: its name and chat template (NULL: the built-in). */
typedef struct spm_served {
    const char *name;
    const char *chat_template;
} spm_served;

/* Writes the model into a new directory dir (a mkdtemp pattern, rewritten in place),
 * each model's template and a config serving them all from that one file (preloaded,
 * 1 thread, 1 slot, context 2048), and starts `hearth serve -c` on it into t. False when
 * the server did not come up. At most 8 models. */
bool spm_serve(srvtest *t, char *dir, const spm_token *extra, int n_extra, const spm_served *models, int n_models);
/* Stops t when up and removes everything spm_serve wrote into dir (dir "" : nothing). */
void spm_serve_end(srvtest *t, bool up, const char *dir);

#endif
