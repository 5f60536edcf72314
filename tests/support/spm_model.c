/* The tiny SPM-vocabulary model, and a server on it, of the tests that force chosen tokens
 * (spm_model.h). */
#include "spm_model.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "quant/quant.h"
#include "synth/synth.h"
#include "testutil.h"

enum { TYPE_UNKNOWN = 2, TYPE_BYTE = 6, MAX_TOKENS = SPM_FIRST_EXTRA + SPM_MAX_EXTRA };

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) fail_msg("cannot write %s", path);
}

static void write_vocab(const char *path, const spm_token *extra, int n_extra) {
    static char bytes[256][8], chars[95][4];
    const char *texts[MAX_TOKENS];
    float scores[MAX_TOKENS];
    int32_t types[MAX_TOKENS];
    int n = SPM_FIRST_EXTRA + n_extra;
    texts[0] = "<unk>", types[0] = TYPE_UNKNOWN;
    texts[1] = "<s>", types[1] = SPM_CONTROL;
    texts[2] = "</s>", types[2] = SPM_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        texts[3 + b] = bytes[b], types[3 + b] = TYPE_BYTE;
    }
    for (int c = 0; c < 95; c++) {
        if (c == 0) snprintf(chars[c], sizeof chars[c], "\xe2\x96\x81"); /* the space, SPM style */
        else snprintf(chars[c], sizeof chars[c], "%c", (char)(' ' + c));
        texts[3 + 256 + c] = chars[c], types[3 + 256 + c] = SPM_NORMAL;
    }
    for (int i = 0; i < n_extra; i++) {
        texts[SPM_FIRST_EXTRA + i] = extra[i].text;
        types[SPM_FIRST_EXTRA + i] = extra[i].type;
    }
    for (int i = 0; i < n; i++) scores[i] = types[i] == SPM_NORMAL ? -(float)i : 0.0f;
    gguf_writer *w = gguf_writer_new();
    hearth_err err = {0};
    hearth_status st = w ? HEARTH_OK : HEARTH_ERR_NOMEM;
    if (!st) st = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", &err);
    if (!st) st = gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", texts, (size_t)n, &err);
    if (!st) st = gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_V_FLOAT32, scores, (size_t)n, &err);
    if (!st) st = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, types, (size_t)n, &err);
    if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.unknown_token_id", GGUF_V_UINT32, 0, &err);
    if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_V_UINT32, 1, &err);
    if (!st) st = gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", GGUF_V_UINT32, 2, &err);
    if (!st) st = gguf_writer_write_file(w, path, &err);
    gguf_writer_free(w);
    if (st) fail_msg("writing the vocabulary: %s", err.msg);
}

/* Writes dir/model.gguf (through a dir/vocab.gguf it removes); its path into model. */
static void model_write(const char *dir, const spm_token *extra, int n_extra, char *model, size_t cap) {
    if (n_extra < 0 || n_extra > SPM_MAX_EXTRA) fail_msg("%d extra tokens: at most %d", n_extra, SPM_MAX_EXTRA);
    char vocab[512];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", dir);
    snprintf(model, cap, "%s/model.gguf", dir);
    write_vocab(vocab, extra, n_extra);
    gguf_file *vf = NULL;
    hearth_err err = {0};
    if (gguf_open(vocab, &vf, &err)) fail_msg("%s", err.msg);
    synth_params p = {.arch = SYNTH_LLAMA, .n_embd = 64, .n_layer = 1, .n_head = 2, .n_head_kv = 2, .n_ff = 128,
                      .n_ctx = 2048, .seed = 11, .scheme = quant_scheme_find("f16"), .vocab_from = vf};
    hearth_status st = synth_write_model(&p, NULL, model, &err);
    gguf_close(vf);
    unlink(vocab);
    if (st) fail_msg("synth_write_model: %s", err.msg);
}

bool spm_serve(srvtest *t, char *dir, const spm_token *extra, int n_extra, const spm_served *models, int n_models) {
    if (n_models < 1 || n_models > 8) fail_msg("%d models: 1 to 8", n_models);
    if (!mkdtemp(dir)) fail_msg("mkdtemp %s failed", dir);
    char model[512], path[512], cfg[8192];
    model_write(dir, extra, n_extra, model, sizeof model);
    size_t len = (size_t)snprintf(cfg, sizeof cfg, "defaults: {threads: 1, slots: 1, ctx: 2048}\nmodels:\n");
    for (int i = 0; i < n_models; i++) {
        len += (size_t)snprintf(cfg + len, sizeof cfg - len, "  - {name: %s, path: '%s', preload: true", models[i].name,
                                model);
        if (models[i].chat_template) {
            snprintf(path, sizeof path, "%s/template%d.jinja", dir, i);
            write_text(path, models[i].chat_template);
            len += (size_t)snprintf(cfg + len, sizeof cfg - len, ", chat_template: '%s'", path);
        }
        len += (size_t)snprintf(cfg + len, sizeof cfg - len, "}\n");
        if (len >= sizeof cfg) fail_msg("config too long");
    }
    snprintf(path, sizeof path, "%s/hearth.yaml", dir);
    write_text(path, cfg);
    char args[600];
    snprintf(args, sizeof args, "-c '%s'", path);
    return srvtest_start_args(t, args);
}

void spm_serve_end(srvtest *t, bool up, const char *dir) {
    if (up) assert_int_equal(srvtest_stop(t), 0);
    DIR *d = dir[0] ? opendir(dir) : NULL;
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}
