/* Opening a model file for generation: the GGUF mapping, the model bound to it and the
 * tokenizer, with every check done before anything runs. Never computes. */
#include <stdlib.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/generate.h"

hearth_status gen_model_from_gguf(gguf_file *f, gen_model **out, hearth_err *err) {
    *out = NULL;
    const char *name = gguf_path(f);
    gen_model *gm = mem_calloc(1, sizeof *gm);
    if (!gm) {
        err_set(err, HEARTH_ERR_NOMEM, "%s: out of memory", name); /* name lives in f */
        gguf_close(f);
        return HEARTH_ERR_NOMEM;
    }
    gm->file = f;
    hearth_status st;
    if (!(st = model_new(gm->file, &gm->model, err)) && !(st = tok_load(gm->file, &gm->vocab, err)) &&
        tok_n_vocab(gm->vocab) > model_hp(gm->model)->n_vocab)
        st = err_set(err, HEARTH_ERR_FORMAT, "tokenizer has %d tokens but token_embd.weight only %lld rows",
                     tok_n_vocab(gm->vocab), (long long)model_hp(gm->model)->n_vocab);
    if (st) {
        err_prefix(err, "%s", name);
        gen_model_close(gm);
        return st;
    }
    *out = gm;
    return HEARTH_OK;
}

hearth_status gen_model_open(const char *path, gen_model **out, hearth_err *err) {
    *out = NULL;
    gguf_file *f = NULL;
    hearth_status st = gguf_open(path, &f, err);
    if (st) return st; /* the reader's message already names the file */
    return gen_model_from_gguf(f, out, err);
}

void gen_model_close(gen_model *gm) {
    if (!gm) return;
    tok_free(gm->vocab);
    model_free(gm->model);
    gguf_close(gm->file);
    mem_free(gm);
}
