/* The load pipeline of one model: pull (url models not yet in the store), read the file
 * into private memory (computing its sha256 on the way), then verify: checksum, the
 * structural GGUF checks, the model and tokenizer, the layer above's attachment, and a
 * probe inference whose outputs must be finite; then start its scheduler. Memory is
 * reserved from the budget before each step that takes it: the file size before
 * reading, an estimate of repacked weights and KV cache before building the model, the
 * measured total after.
 *
 * Why private memory and not a shared mapping: a mapped file truncated in place raises
 * SIGBUS on the next access to a vanished page, which would kill the server. A private
 * copy makes rename-replace and truncation alike harmless; the file is only read here.
 * Never prints; never touches the registry except through fleet_load_env. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "engine/embed.h"
#include "fleet/fleet_internal.h"
#include "kernels/kernels.h"

#define READ_CHUNK ((size_t)8 << 20)
#define PROBE_CTX 16

bool fleet_file_identity(const char *path, fleet_file_id *out) {
    struct stat sb;
    if (stat(path, &sb) != 0) return false;
    *out = (fleet_file_id){.dev = sb.st_dev, .ino = sb.st_ino, .size = sb.st_size, .mtime = sb.st_mtim};
    return true;
}

bool fleet_file_same(const fleet_file_id *a, const fleet_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
           a->mtime.tv_nsec == b->mtime.tv_nsec;
}

hearth_status fleet_model_file(const cfg_model *mc, const char *store_dir, char *out, size_t cap, hearth_err *err) {
    if (mc->path) {
        if ((size_t)snprintf(out, cap, "%s", mc->path) >= cap)
            return err_set(err, HEARTH_ERR_INVALID, "model '%s': path too long", mc->name);
        return HEARTH_OK;
    }
    char file[256];
    if (!mc->url || !cfg_url_file_name(mc->url, file, sizeof file))
        return err_set(err, HEARTH_ERR_INVALID, "model '%s': no usable file name in its url", mc->name);
    if ((size_t)snprintf(out, cap, "%s/%s", store_dir, file) >= cap)
        return err_set(err, HEARTH_ERR_INVALID, "model '%s': store path too long", mc->name);
    return HEARTH_OK;
}

static void hex(const unsigned char *d, unsigned n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Reads the whole file into a fresh anonymous mapping, hashing it when sha is non-NULL. */
static hearth_status read_private(fleet_inst *in, char *sha, hearth_err *err) {
    int fd = open(in->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno == ENOENT ? HEARTH_ERR_NOT_FOUND : HEARTH_ERR_IO, "%s: cannot open: %s", in->path,
                       strerror(errno));
    struct stat before, after;
    hearth_status st = HEARTH_OK;
    EVP_MD_CTX *md = NULL;
    if (fstat(fd, &before) != 0 || !S_ISREG(before.st_mode)) {
        st = err_set(err, HEARTH_ERR_IO, "%s: not a regular file", in->path);
        goto done;
    }
    if (before.st_size <= 0) {
        st = err_set(err, HEARTH_ERR_FORMAT, "%s: the file is empty", in->path);
        goto done;
    }
    in->map_len = (size_t)before.st_size;
    in->map = mmap(NULL, in->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (in->map == MAP_FAILED) {
        in->map = NULL;
        st = err_set(err, HEARTH_ERR_NOMEM, "%s: cannot allocate %zu bytes for the weights", in->path, in->map_len);
        goto done;
    }
    if (sha) {
        md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
            st = err_set(err, HEARTH_ERR_NOMEM, "%s: cannot start sha256", in->path);
            goto done;
        }
    }
    for (size_t off = 0; off < in->map_len;) {
        size_t want = in->map_len - off < READ_CHUNK ? in->map_len - off : READ_CHUNK;
        ssize_t n = pread(fd, (char *)in->map + off, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            st = err_set(err, HEARTH_ERR_IO, "%s: %s at byte %zu of %zu (the file changed while loading?)", in->path,
                         n < 0 ? strerror(errno) : "unexpected end of file", off, in->map_len);
            goto done;
        }
        if (md && EVP_DigestUpdate(md, (char *)in->map + off, (size_t)n) != 1) {
            st = err_set(err, HEARTH_ERR_INTERNAL, "%s: sha256 failed", in->path);
            goto done;
        }
        off += (size_t)n;
    }
    if (fstat(fd, &after) != 0 || after.st_size != before.st_size || after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != before.st_mtim.tv_nsec) {
        st = err_set(err, HEARTH_ERR_IO, "%s: the file changed while it was being read", in->path);
        goto done;
    }
    in->file = (fleet_file_id){.dev = before.st_dev, .ino = before.st_ino, .size = before.st_size, .mtime = before.st_mtim};
    if (md) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned dn = 0;
        if (EVP_DigestFinal_ex(md, d, &dn) != 1 || dn != 32) {
            st = err_set(err, HEARTH_ERR_INTERNAL, "%s: sha256 failed", in->path);
            goto done;
        }
        hex(d, dn, sha);
    }
done:
    EVP_MD_CTX_free(md);
    close(fd);
    return st;
}

/* F16 keys and values for every slot's whole context, in whole pages as the scheduler's pool. */
static int64_t kv_bytes_of(int64_t n_layer, int64_t k_dim, int64_t v_dim, int64_t n_ctx, int64_t slots) {
    int64_t per_pos = 0, total = 0;
    n_ctx = (n_ctx + KV_DEFAULT_PAGE_SIZE - 1) / KV_DEFAULT_PAGE_SIZE * KV_DEFAULT_PAGE_SIZE;
    if (!ck_add(k_dim, v_dim, &per_pos) || !ck_mul(per_pos, n_layer, &per_pos) || !ck_mul(per_pos, (int64_t)2, &per_pos) ||
        !ck_mul(per_pos, n_ctx, &total) || !ck_mul(total, slots, &total))
        return INT64_MAX;
    return total;
}

static bool meta_int(const gguf_file *f, const char *arch, const char *key, int64_t *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_int(f, k, out);
}

/* True for the tensors model_new repacks: the layers' matrices and the output (token_embd
   when it is tied, except for an encoder, which has no output). */
static bool repacked_by_model(const gguf_file *f, const gguf_tensor *t) {
    static const char *const layer[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                        "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    if (t->n_dims != 2) return false;
    if (gguf_str_eq(t->name, "output.weight")) return true;
    if (gguf_str_eq(t->name, "token_embd.weight")) {
        gguf_str arch;
        return !gguf_find_tensor(f, "output.weight") &&
               !(gguf_get_str(f, "general.architecture", &arch) && gguf_str_eq(arch, "bert"));
    }
    const char *dot = t->name.len > 4 && memcmp(t->name.ptr, "blk.", 4) == 0 ? memchr(t->name.ptr + 4, '.', t->name.len - 4) : NULL;
    if (!dot) return false;
    gguf_str rest = {.ptr = dot + 1, .len = t->name.len - (uint64_t)(dot + 1 - t->name.ptr)};
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (gguf_str_eq(rest, layer[i])) return true;
    return false;
}

int64_t fleet_repack_estimate(const gguf_file *f) {
    int64_t extra = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (repacked_by_model(f, t) &&
            !ck_add(extra, (int64_t)kern_matrix_prepare_bytes(t->type, t->ne[1], t->ne[0]), &extra))
            return INT64_MAX;
    }
    return extra;
}

/* Repacked weights and KV cache the model will take, from its metadata (before building it). */
static int64_t estimate_extra(const gguf_file *f, const cfg_model *mc) {
    int64_t extra = fleet_repack_estimate(f);
    gguf_str arch;
    char a[64];
    if (!gguf_get_str(f, "general.architecture", &arch) || arch.len == 0 || arch.len >= sizeof a) return extra;
    memcpy(a, arch.ptr, arch.len);
    a[arch.len] = '\0';
    int64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, train = 0, kd = 0, vd = 0;
    if (!meta_int(f, a, "block_count", &n_layer) || !meta_int(f, a, "embedding_length", &n_embd) ||
        !meta_int(f, a, "attention.head_count", &n_head) || n_head <= 0 || n_layer <= 0 || n_embd <= 0)
        return extra;
    if (!meta_int(f, a, "attention.head_count_kv", &n_head_kv)) n_head_kv = n_head;
    if (!meta_int(f, a, "attention.key_length", &kd)) kd = n_embd / n_head;
    if (!meta_int(f, a, "attention.value_length", &vd)) vd = kd;
    if (!meta_int(f, a, "context_length", &train) || train <= 0) train = 4096;
    int64_t n_ctx = mc->ctx > 0 ? mc->ctx : train < 4096 ? train : 4096;
    int64_t kv = kv_bytes_of(n_layer, n_head_kv * kd, n_head_kv * vd, n_ctx, mc->slots);
    return ck_add(extra, kv, &extra) ? extra : INT64_MAX;
}

typedef struct probe_state {
    bool finite;
    int64_t bad_index;
} probe_state;

static hearth_status probe_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    probe_state *p = ud;
    for (int64_t i = 0; i < n_vocab; i++)
        if (!isfinite(logits[i])) {
            p->finite = false;
            p->bad_index = i;
            break;
        }
    return HEARTH_OK;
}

/* One token through the model; every output must be a finite number. */
static hearth_status probe(const fleet_inst *in, const cfg_model *mc, hearth_err *err) {
    const model *m = in->gm->model;
    int32_t tok = tok_bos(in->gm->vocab);
    if (tok < 0) tok = 0;
    int64_t ctx = model_hp(m)->n_ctx_train < PROBE_CTX ? model_hp(m)->n_ctx_train : PROBE_CTX;
    probe_state p = {.finite = true, .bad_index = -1};
    hearth_status st;
    if (model_is_encoder(m)) {
        embed_ctx *e = NULL;
        embed_config ec = {.n_ctx = ctx, .n_seq = 1, .n_threads = mc->threads};
        if ((st = embed_ctx_new(m, &ec, &e, err)) != HEARTH_OK) return st;
        int64_t n = embed_n_embd(e);
        float *row = mem_alloc_array((size_t)n, sizeof *row);
        embed_input ei = {.tokens = &tok, .n = 1};
        embed_opts eo;
        embed_opts_default(&eo);
        eo.normalize = false;
        st = row ? embed_batch(e, &ei, 1, &eo, row, 1, err) : err_set(err, HEARTH_ERR_NOMEM, "out of memory");
        if (st == HEARTH_OK) probe_row(&p, 0, row, n, err);
        mem_free(row);
        embed_ctx_free(e);
    } else {
        gen_engine *e = NULL;
        gen_config gc = {.n_ctx = ctx, .n_batch = 1, .n_threads = mc->threads};
        if ((st = gen_engine_new(m, in->gm->vocab, &gc, &e, err)) != HEARTH_OK) return st;
        st = gen_eval(e, &tok, 1, false, probe_row, &p, err);
        gen_engine_free(e);
    }
    if (st != HEARTH_OK) {
        err_prefix(err, "probe inference");
        return st;
    }
    if (!p.finite)
        return err_set(err, HEARTH_ERR_FORMAT,
                       "probe inference gave a non-finite output (index %lld): the weights are corrupt",
                       (long long)p.bad_index);
    return HEARTH_OK;
}

static hearth_status build(fleet_inst *in, const cfg_model *mc, const fleet_load_env *env, double *retry_after_s,
                           hearth_err *err) {
    gguf_file *f = NULL;
    hearth_status st = gguf_open_memory(in->map, in->map_len, in->path, &f, err);
    if (st) return st;
    int64_t want = 0;
    if (!ck_add((int64_t)in->map_len, estimate_extra(f, mc), &want)) want = INT64_MAX;
    if ((st = env->reserve(env->ud, want, retry_after_s, err)) != HEARTH_OK) {
        gguf_close(f);
        return st;
    }
    if ((st = gen_model_from_gguf(f, &in->gm, err)) != HEARTH_OK) return st;
    const model_hparams *hp = model_hp(in->gm->model);
    in->n_ctx = mc->ctx > 0 ? mc->ctx : hp->n_ctx_train < GEN_DEFAULT_CTX ? hp->n_ctx_train : GEN_DEFAULT_CTX;
    if (in->n_ctx > hp->n_ctx_train)
        return err_set(err, HEARTH_ERR_RANGE, "%s: ctx %lld is larger than the model's training context (%lld)",
                       in->path, (long long)in->n_ctx, (long long)hp->n_ctx_train);
    if (env->hooks && env->hooks->attach &&
        (st = env->hooks->attach(env->hooks->ud, mc, in->gm, &in->attachment, err)) != HEARTH_OK)
        return st;
    if ((st = probe(in, mc, err)) != HEARTH_OK) return st;
    in->weights_bytes = (int64_t)in->map_len;
    in->packed_bytes = (int64_t)model_packed_bytes(in->gm->model);
    if (!model_is_encoder(in->gm->model)) {
        kv_config kc = model_kv_config(in->gm->model, in->n_ctx, mc->slots);
        in->kv_bytes = kv_bytes_of(kc.n_layer, kc.k_dim, kc.v_dim, in->n_ctx, mc->slots);
    }
    int64_t total = in->weights_bytes;
    if (!ck_add(total, in->packed_bytes, &total) || !ck_add(total, in->kv_bytes, &total)) total = INT64_MAX;
    if ((st = env->reserve(env->ud, total, retry_after_s, err)) != HEARTH_OK) return st;
    if (model_is_encoder(in->gm->model)) return fleet_loras_new(mc, in->gm->model, env->hooks, &in->loras, err);
    sched_params sp;
    sched_params_default(&sp);
    sp.n_ctx = in->n_ctx;
    sp.n_slots = mc->slots;
    sp.max_queue = mc->max_queue;
    if (mc->threads > 0) sp.n_threads = mc->threads;
    if ((st = sched_new(in->gm->model, in->gm->vocab, &sp, &in->sched, err)) != HEARTH_OK) return st;
    return fleet_loras_new(mc, in->gm->model, env->hooks, &in->loras, err);
}

hearth_status fleet_inst_load(const cfg_model *mc, const fleet_load_env *env, fleet_inst **out, double *retry_after_s,
                              hearth_err *err) {
    *out = NULL;
    fleet_inst *in = mem_calloc(1, sizeof *in);
    if (!in) return err_set(err, HEARTH_ERR_NOMEM, "model '%s': out of memory", mc->name);
    hearth_status st = fleet_model_file(mc, env->store_dir, in->path, sizeof in->path, err);
    if (st == HEARTH_OK && mc->url && access(in->path, F_OK) != 0) {
        fleet_pull_opts po = {.sha256 = mc->sha256, .connect_timeout_s = 10};
        st = fleet_pull(mc->url, env->store_dir, &po, in->path, sizeof in->path, NULL, err);
    }
    struct stat sb;
    if (st == HEARTH_OK && stat(in->path, &sb) != 0)
        st = err_set(err, errno == ENOENT ? HEARTH_ERR_NOT_FOUND : HEARTH_ERR_IO, "%s: %s", in->path, strerror(errno));
    if (st == HEARTH_OK) st = env->reserve(env->ud, (int64_t)sb.st_size, retry_after_s, err);
    char sha[65] = "";
    if (st == HEARTH_OK) st = read_private(in, mc->sha256 ? sha : NULL, err);
    if (st == HEARTH_OK && env->verifying) env->verifying(env->ud);
    if (st == HEARTH_OK && mc->sha256 && strcmp(sha, mc->sha256) != 0)
        st = err_set(err, HEARTH_ERR_FORMAT, "%s: sha256 mismatch: expected %s, the file has %s", in->path, mc->sha256,
                     sha);
    if (st == HEARTH_OK) st = build(in, mc, env, retry_after_s, err);
    if (st != HEARTH_OK) {
        fleet_inst_free(in, env->hooks);
        return st;
    }
    *out = in;
    return HEARTH_OK;
}

void fleet_inst_free(fleet_inst *in, const fleet_hooks *hooks) {
    if (!in) return;
    sched_free(in->sched); /* ends every sequence first */
    fleet_loras_free(in->loras); /* before the model the adapters were made for */
    if (in->attachment && hooks && hooks->detach) hooks->detach(hooks->ud, in->attachment);
    gen_model_close(in->gm);
    if (in->map) munmap(in->map, in->map_len);
    mem_free(in);
}

int64_t fleet_ram_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t ram = pages > 0 && page > 0 ? (int64_t)pages * page : 0;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (f) {
        char buf[64];
        if (fgets(buf, sizeof buf, f)) {
            char *end = NULL;
            long long lim = strtoll(buf, &end, 10);
            if (end != buf && lim > 0 && (ram == 0 || lim < ram)) ram = lim;
        }
        fclose(f);
    }
    return ram;
}
