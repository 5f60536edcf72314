/* The served model and its background load (see srv_model.h for the state diagram). */
#include "server/srv_model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/generate.h"
#include "gguf/gguf.h"

#define SRV_DEFAULT_CTX 4096
#define TEMPLATE_FILE_MAX ((size_t)1 << 20)

struct srv_model {
    char id[256];
    char *path, *template_path;
    srv_model_config cfg;
    int64_t created;
    _Atomic int state;
    hearth_err err;
    pthread_t loader;
    bool loader_started;
    srv_model_notify notify;
    void *notify_ud;
    gen_model *gm;
    srv_prompter *prompter;
    sched *sched;
    int64_t n_ctx;
};

static void stem_of(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".gguf") == 0) n -= 5;
    if (n >= cap) n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

static hearth_status read_template_file(const char *path, char **out, size_t *len, hearth_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, HEARTH_ERR_NOT_FOUND, "%s: cannot open the chat template file", path);
    char *buf = mem_alloc(TEMPLATE_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, TEMPLATE_FILE_MAX + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!buf) return err_set(err, HEARTH_ERR_NOMEM, "out of memory reading %s", path);
    if (bad || n > TEMPLATE_FILE_MAX) {
        mem_free(buf);
        return err_set(err, HEARTH_ERR_IO, "%s: %s", path, bad ? "read error" : "chat template larger than 1 MiB");
    }
    *out = buf;
    *len = n;
    return HEARTH_OK;
}

static hearth_status build_prompter(srv_model *m, hearth_err *err) {
    if (m->template_path) {
        char *src = NULL;
        size_t len = 0;
        hearth_status st = read_template_file(m->template_path, &src, &len, err);
        if (st == HEARTH_OK) st = srv_prompter_new(m->gm->vocab, src, len, &m->prompter, err);
        mem_free(src);
        return st;
    }
    gguf_str s;
    if (gguf_get_str(m->gm->file, "tokenizer.chat_template", &s) && s.len > 0)
        return srv_prompter_new(m->gm->vocab, s.ptr, (size_t)s.len, &m->prompter, err);
    return srv_prompter_new(m->gm->vocab, NULL, 0, &m->prompter, err);
}

static hearth_status load(srv_model *m, hearth_err *err) {
    hearth_status st = gen_model_open(m->path, &m->gm, err);
    if (st != HEARTH_OK) return st;
    if ((st = build_prompter(m, err)) != HEARTH_OK) return st;
    const model_hparams *hp = model_hp(m->gm->model);
    int64_t n_ctx = m->cfg.n_ctx > 0 ? m->cfg.n_ctx : (hp->n_ctx_train < SRV_DEFAULT_CTX ? hp->n_ctx_train : SRV_DEFAULT_CTX);
    if (n_ctx > hp->n_ctx_train)
        return err_set(err, HEARTH_ERR_RANGE, "--ctx %lld is larger than the model's training context (%lld)",
                       (long long)n_ctx, (long long)hp->n_ctx_train);
    sched_params sp;
    sched_params_default(&sp);
    sp.n_ctx = n_ctx;
    if (m->cfg.n_slots > 0) sp.n_slots = m->cfg.n_slots;
    if (m->cfg.max_queue >= 0) sp.max_queue = m->cfg.max_queue;
    if (m->cfg.n_threads > 0) sp.n_threads = m->cfg.n_threads;
    if ((st = sched_new(m->gm->model, m->gm->vocab, &sp, &m->sched, err)) != HEARTH_OK) return st;
    m->n_ctx = n_ctx;
    return HEARTH_OK;
}

static void *loader_main(void *arg) {
    srv_model *m = arg;
    hearth_err err = {0};
    hearth_status st = load(m, &err);
    if (st != HEARTH_OK) {
        m->err = err;
        m->err.status = st;
        atomic_store_explicit(&m->state, SRV_MODEL_FAILED, memory_order_release);
    } else {
        atomic_store_explicit(&m->state, SRV_MODEL_READY, memory_order_release);
    }
    if (m->notify) m->notify(m->notify_ud, m);
    return NULL;
}

hearth_status srv_model_new(const srv_model_config *cfg, srv_model **out, hearth_err *err) {
    *out = NULL;
    srv_model *m = mem_calloc(1, sizeof *m);
    if (!m) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->path = mem_strdup(cfg->path);
    m->template_path = cfg->template_path ? mem_strdup(cfg->template_path) : NULL;
    if (!m->path || (cfg->template_path && !m->template_path)) {
        srv_model_free(m);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    stem_of(cfg->path, m->id, sizeof m->id);
    m->created = clock_unix_s();
    atomic_init(&m->state, SRV_MODEL_LOADING);
    *out = m;
    return HEARTH_OK;
}

hearth_status srv_model_start(srv_model *m, srv_model_notify notify, void *ud, hearth_err *err) {
    m->notify = notify;
    m->notify_ud = ud;
    if (pthread_create(&m->loader, NULL, loader_main, m) != 0)
        return err_set(err, HEARTH_ERR_NOMEM, "cannot start the model loader thread");
    m->loader_started = true;
    return HEARTH_OK;
}

void srv_model_free(srv_model *m) {
    if (!m) return;
    if (m->loader_started) pthread_join(m->loader, NULL);
    sched_free(m->sched);
    srv_prompter_free(m->prompter);
    gen_model_close(m->gm);
    mem_free(m->path);
    mem_free(m->template_path);
    mem_free(m);
}

const char *srv_model_id(const srv_model *m) { return m->id; }
int64_t srv_model_created(const srv_model *m) { return m->created; }
srv_model_state srv_model_get_state(const srv_model *m) {
    return (srv_model_state)atomic_load_explicit(&m->state, memory_order_acquire);
}
const hearth_err *srv_model_error(const srv_model *m) { return &m->err; }
const tok_vocab *srv_model_vocab(const srv_model *m) { return m->gm->vocab; }
const srv_prompter *srv_model_prompter(const srv_model *m) { return m->prompter; }
sched *srv_model_sched(const srv_model *m) { return m->sched; }
int64_t srv_model_n_ctx(const srv_model *m) { return m->n_ctx; }
