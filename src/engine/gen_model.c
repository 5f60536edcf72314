/* Opening a model file for generation: the GGUF mapping, the model bound to it and the
 * tokenizer, with every check done before anything runs. Never computes. */
#include <stdlib.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/generate.h"

hearth_status gen_model_open(const char *path, gen_model **out, hearth_err *err) {
    *out = NULL;
    gen_model *gm = mem_calloc(1, sizeof *gm);
    if (!gm) return err_set(err, HEARTH_ERR_NOMEM, "%s: out of memory", path);
    hearth_status st = gguf_open(path, &gm->file, err);
    if (st) {
        gen_model_close(gm);
        return st; /* the reader's message already names the file */
    }
    if (!(st = model_new(gm->file, &gm->model, err)) && !(st = tok_load(gm->file, &gm->vocab, err)) &&
        tok_n_vocab(gm->vocab) > model_hp(gm->model)->n_vocab)
        st = err_set(err, HEARTH_ERR_FORMAT, "tokenizer has %d tokens but token_embd.weight only %lld rows",
                     tok_n_vocab(gm->vocab), (long long)model_hp(gm->model)->n_vocab);
    if (st) {
        err_prefix(err, "%s", path);
        gen_model_close(gm);
        return st;
    }
    *out = gm;
    return HEARTH_OK;
}

void gen_model_close(gen_model *gm) {
    if (!gm) return;
    tok_free(gm->vocab);
    model_free(gm->model);
    gguf_close(gm->file);
    mem_free(gm);
}
