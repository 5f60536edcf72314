/* Malformed-GGUF corpus through the CLI. From a small valid model written with the GGUF
 * writer (llama, one layer, a 48-token SPM vocabulary), it generates broken files:
 * truncations across the header (sampled: every field boundary, the first 64 bytes, every
 * 32nd byte) and inside the data, huge counts and lengths, bad
 * value types, bad tensor types, bad dimensions, offsets out of range, overlapping
 * tensors, bad alignment, bad magic and versions, and model-level breakage (each tensor
 * missing, grown, transposed or retyped; every hyper-parameter absent, of the wrong type
 * or absurd: 0, -1, 2^31, 2^62, NaN, infinity; width not divisible by the heads; more
 * tokens than embedding rows; unknown architectures). Every file goes through
 * `hearth info FILE` and `hearth logits -m FILE -p hi -o OUT`: each run must either
 * succeed (a structurally valid file; for model-level files, whose weights are sane, the
 * logits must then be finite) or exit with 1 or 2 and exactly one line on stderr;
 * a signal, a sanitizer report or a run longer than the deadline fails the test. Runs two
 * processes at a time. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "tiny_model.h"

#define DEADLINE_S 20
#define SLOTS 2

extern char **environ;

/* ---- the corpus ---------------------------------------------------------------------- */
typedef struct bad_file {
    char what[96];
    bool sane_data;   /* written by the writer with finite weights: logits must be finite */
    uint8_t *data;
    size_t len;
} bad_file;

static bad_file *corpus;
static size_t n_corpus, cap_corpus;

static void add_file(const uint8_t *data, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_file(const uint8_t *data, size_t len, const char *fmt, ...) {
    if (n_corpus == cap_corpus) {
        cap_corpus = cap_corpus ? cap_corpus * 2 : 1024;
        corpus = realloc(corpus, cap_corpus * sizeof *corpus);
        assert_non_null(corpus);
    }
    bad_file *b = &corpus[n_corpus++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->what, sizeof b->what, fmt, ap);
    va_end(ap);
    b->data = malloc(len ? len : 1);
    assert_non_null(b->data);
    memcpy(b->data, data, len);
    b->len = len;
}

static uint8_t *base;
static size_t base_len;

/* A copy of the valid file with n little-endian bytes at `at` set to v. */
static void add_patched(size_t at, unsigned n, uint64_t v, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_patched(size_t at, unsigned n, uint64_t v, const char *fmt, ...) {
    uint8_t *copy = malloc(base_len);
    memcpy(copy, base, base_len);
    for (unsigned i = 0; i < n; i++) copy[at + i] = (uint8_t)(v >> (8 * i));
    char what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    add_file(copy, base_len, "patched: %s", what);
    free(copy);
}

/* Where the fields of the valid file lie, found by walking it. */
typedef struct field_map {
    size_t n_tensors, n_kv, header_end, data_start;
    size_t n_keys;
    struct { size_t key_len, type, str_len, arr_type, arr_count, value; uint32_t vtype; char name[64]; } kv[64];
    size_t n_t;
    struct { size_t name_len, n_dims, ne[4], type, offset; uint32_t dims; uint64_t off_val; } t[64];
} field_map;

static uint64_t le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static size_t scalar_size(uint32_t t) {
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sizes[t] : 0;
}

static void map_fields(field_map *m) {
    memset(m, 0, sizeof *m);
    size_t p = 8;
    m->n_tensors = p;
    uint64_t n_t = le(base + p, 8);
    m->n_kv = p + 8;
    uint64_t n_kv = le(base + p + 8, 8);
    p += 16;
    assert_true(n_kv <= 64 && n_t <= 64);
    for (uint64_t i = 0; i < n_kv; i++) {
        m->kv[i].key_len = p;
        uint64_t kl = le(base + p, 8);
        snprintf(m->kv[i].name, sizeof m->kv[i].name, "%.*s", (int)kl, (const char *)base + p + 8);
        p += 8 + kl;
        m->kv[i].type = p;
        uint32_t t = m->kv[i].vtype = (uint32_t)le(base + p, 4);
        p += 4;
        m->kv[i].value = p;
        if (t == GGUF_V_STRING) {
            m->kv[i].str_len = p;
            p += 8 + le(base + p, 8);
        } else if (t == GGUF_V_ARRAY) {
            m->kv[i].arr_type = p;
            uint32_t et = (uint32_t)le(base + p, 4);
            m->kv[i].arr_count = p + 4;
            uint64_t cnt = le(base + p + 4, 8);
            p += 12;
            for (uint64_t k = 0; k < cnt; k++) p += et == GGUF_V_STRING ? 8 + le(base + p, 8) : scalar_size(et);
        } else {
            p += scalar_size(t);
        }
    }
    m->n_keys = n_kv;
    for (uint64_t i = 0; i < n_t; i++) {
        m->t[i].name_len = p;
        p += 8 + le(base + p, 8);
        m->t[i].n_dims = p;
        m->t[i].dims = (uint32_t)le(base + p, 4);
        p += 4;
        for (uint32_t d = 0; d < m->t[i].dims; d++) m->t[i].ne[d] = p, p += 8;
        m->t[i].type = p;
        m->t[i].offset = p + 4;
        m->t[i].off_val = le(base + p + 4, 8);
        p += 12;
    }
    m->n_t = n_t;
    m->header_end = p;
    m->data_start = (p + 31) / 32 * 32;
    assert_true(m->data_start <= base_len);
}

static void byte_level_cases(void) {
    field_map m;
    map_fields(&m);
    static const uint64_t huge[] = {UINT64_MAX, (uint64_t)1 << 63, (uint64_t)1 << 32, (uint64_t)1 << 40};

    /* truncations: every byte of the fixed header and the first entries, the first bytes of
     * every field and the byte after it, and every 32nd byte (the reader's unit test cuts
     * at every byte in-process) */
    bool *cut_at = calloc(m.data_start + 1, sizeof *cut_at);
    for (size_t i = 0; i < m.data_start; i++) cut_at[i] = i < 64 || i % 32 == 0;
    for (size_t k = 0; k < m.n_keys; k++) {
        size_t f[] = {m.kv[k].key_len, m.kv[k].type, m.kv[k].value, m.kv[k].arr_count};
        for (size_t j = 0; j < 4; j++)
            if (f[j]) cut_at[f[j]] = cut_at[f[j] + 1] = true;
    }
    for (size_t i = 0; i < m.n_t; i++) {
        size_t f[] = {m.t[i].name_len, m.t[i].n_dims, m.t[i].ne[0], m.t[i].type, m.t[i].offset};
        for (size_t j = 0; j < 5; j++) cut_at[f[j]] = cut_at[f[j] + 1] = true;
    }
    for (size_t cut = m.header_end - 2; cut < m.data_start; cut++) cut_at[cut] = true;
    for (size_t cut = 0; cut < m.data_start; cut++)
        if (cut_at[cut]) add_file(base, cut, "truncated at header byte %zu of %zu", cut, m.data_start);
    free(cut_at);
    size_t data_cuts[] = {m.data_start + 1, (m.data_start + base_len) / 2, base_len - 1};
    for (size_t i = 0; i < 3; i++) add_file(base, data_cuts[i], "truncated in the data at %zu", data_cuts[i]);

    add_patched(0, 4, 0x46554747, "magic GGUF reversed");
    uint64_t versions[] = {0, 1, 2, 4, 0xFFFFFFFF};
    for (size_t i = 0; i < 5; i++) add_patched(4, 4, versions[i], "version %llu", (unsigned long long)versions[i]);
    for (size_t i = 0; i < 4; i++) {
        add_patched(m.n_tensors, 8, huge[i], "tensor count %llu", (unsigned long long)huge[i]);
        add_patched(m.n_kv, 8, huge[i], "metadata count %llu", (unsigned long long)huge[i]);
    }
    add_patched(m.n_tensors, 8, m.n_t + 1, "one tensor more than present");
    add_patched(m.n_kv, 8, m.n_keys + 1, "one metadata entry more than present");
    add_patched(m.n_tensors, 8, m.n_t - 1, "one tensor fewer than present");
    add_patched(m.n_kv, 8, m.n_keys - 1, "one metadata entry fewer than present");

    static const uint64_t bad_types[] = {13, 255, 0x80000000u};
    for (size_t k = 0; k < m.n_keys; k++) {
        const char *key = m.kv[k].name;
        for (size_t i = 0; i < 4; i++) add_patched(m.kv[k].key_len, 8, huge[i], "%s: key length %llx", key, (unsigned long long)huge[i]);
        add_patched(m.kv[k].key_len, 8, 0, "%s: empty key", key);
        for (size_t i = 0; i < 3; i++) add_patched(m.kv[k].type, 4, bad_types[i], "%s: value type %llu", key, (unsigned long long)bad_types[i]);
        static const uint32_t other[] = {GGUF_V_UINT8, GGUF_V_UINT32, GGUF_V_STRING, GGUF_V_ARRAY, GGUF_V_FLOAT64};
        for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
            if (other[i] != m.kv[k].vtype)
                add_patched(m.kv[k].type, 4, other[i], "%s: value type %u instead of %u", key, other[i], m.kv[k].vtype);
        if (m.kv[k].vtype == GGUF_V_STRING)
            for (size_t i = 0; i < 4; i++) add_patched(m.kv[k].str_len, 8, huge[i], "%s: string length %llx", key, (unsigned long long)huge[i]);
        if (m.kv[k].vtype == GGUF_V_ARRAY) {
            for (size_t i = 0; i < 4; i++) add_patched(m.kv[k].arr_count, 8, huge[i], "%s: array count %llx", key, (unsigned long long)huge[i]);
            add_patched(m.kv[k].arr_count, 8, le(base + m.kv[k].arr_count, 8) + 1, "%s: array count + 1", key);
            for (size_t i = 0; i < 3; i++) add_patched(m.kv[k].arr_type, 4, bad_types[i], "%s: element type %llu", key, (unsigned long long)bad_types[i]);
            add_patched(m.kv[k].arr_type, 4, GGUF_V_ARRAY, "%s: element type array", key);
            add_patched(m.kv[k].arr_type, 4, GGUF_V_UINT64, "%s: element type uint64", key);
        }
        if (!strcmp(key, "general.alignment")) {
            static const uint64_t aligns[] = {0, 1, 3, 7, 48, (uint64_t)1 << 31, 0xFFFFFFFF};
            for (size_t i = 0; i < 7; i++) add_patched(m.kv[k].value, 4, aligns[i], "alignment %llu", (unsigned long long)aligns[i]);
        }
    }

    static const uint64_t bad_dims[] = {0, UINT64_MAX, (uint64_t)1 << 62, (uint64_t)1 << 31, ((uint64_t)1 << 32) + 32};
    static const uint32_t ttypes[] = {4, 40, 1000, GGML_F16, GGML_Q8_0, GGML_IQ2_XXS, GGML_I32};
    for (size_t i = 0; i < m.n_t; i++) {
        for (size_t h = 0; h < 4; h++) add_patched(m.t[i].name_len, 8, huge[h], "tensor %zu: name length %llx", i, (unsigned long long)huge[h]);
        add_patched(m.t[i].name_len, 8, 0, "tensor %zu: empty name", i);
        uint64_t nd[] = {0, 5, 0xFFFFFFFF, m.t[i].dims == 1 ? 2 : 1};
        for (size_t k = 0; k < 4; k++) add_patched(m.t[i].n_dims, 4, nd[k], "tensor %zu: %llu dims", i, (unsigned long long)nd[k]);
        for (uint32_t d = 0; d < m.t[i].dims; d++)
            for (size_t k = 0; k < 5; k++)
                add_patched(m.t[i].ne[d], 8, bad_dims[k], "tensor %zu: ne[%u] = %llx", i, d, (unsigned long long)bad_dims[k]);
        for (size_t k = 0; k < sizeof ttypes / sizeof ttypes[0]; k++)
            add_patched(m.t[i].type, 4, ttypes[k], "tensor %zu: type %u", i, ttypes[k]);
        size_t data_size = base_len - m.data_start;
        uint64_t offs[] = {UINT64_MAX, UINT64_MAX - 31, data_size, data_size - 32, m.t[i].off_val + 1,
                           m.t[i].off_val + 32, i ? m.t[i - 1].off_val : m.t[m.n_t - 1].off_val};
        for (size_t k = 0; k < 7; k++)
            add_patched(m.t[i].offset, 8, offs[k], "tensor %zu: offset %llx", i, (unsigned long long)offs[k]);
    }
}

/* ---- model-level breakage, written with the writer ------------------------------------ */
static void add_model(const tiny_spec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_model(const tiny_spec *s, const char *fmt, ...) {
    void *buf;
    size_t len;
    if (!tiny_build(s, &buf, &len)) return; /* the writer refuses such a tensor: nothing to test */
    char what[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    add_file(buf, len, "model: %s", what);
    corpus[n_corpus - 1].sane_data = true;
    mem_free(buf);
}

static void model_level_cases(void) {
    tiny_spec d;
    tiny_spec_default(&d, "llama");
    d.tokenizer = true;
    int n_t = tiny_tensor_count(&d);
    static const uint32_t retypes[] = {GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_K, GGML_IQ2_XXS, GGML_I8};
    for (int i = 0; i < n_t; i++) {
        for (uint8_t mode = TINY_T_MISSING; mode < TINY_T_MODES; mode++) {
            tiny_spec s = d;
            s.tensor_mode[i] = mode;
            if (mode != TINY_T_RETYPE) {
                add_model(&s, "tensor %d: mode %d", i, mode);
                continue;
            }
            for (size_t k = 0; k < sizeof retypes / sizeof retypes[0]; k++) {
                s.retype[i] = retypes[k];
                add_model(&s, "tensor %d: type %u", i, retypes[k]);
            }
        }
    }
    static const int64_t ints[] = {0, -1, 3, (int64_t)1 << 31, (int64_t)1 << 62, INT64_MIN};
    static const double floats[] = {NAN, INFINITY, -INFINITY, -1.0, 0.0, 1e300, 1e-300, 1e-40};
    for (int k = 0; k < TINY_K_COUNT; k++) {
        tiny_spec s = d;
        for (uint8_t mode = TINY_KEY_TRUE; mode < TINY_KEY_MODES; mode++) {
            s.key_mode[k] = mode;
            if (mode != TINY_KEY_RAW) {
                add_model(&s, "key %d: mode %d", k, mode);
                continue;
            }
            for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
                s.key_raw[k] = ints[i];
                s.key_raw_f[k] = floats[i];
                add_model(&s, "key %d = %lld / %g", k, (long long)ints[i], floats[i]);
            }
            for (size_t i = sizeof ints / sizeof ints[0]; i < sizeof floats / sizeof floats[0]; i++) {
                s.key_raw_f[k] = floats[i];
                add_model(&s, "key %d = %g", k, floats[i]);
            }
        }
    }
    tiny_spec s = d;
    s.n_embd = 30; /* 4 heads do not divide it */
    add_model(&s, "embedding 30 over 4 heads");
    s = d;
    s.extra_tokens = 5;
    add_model(&s, "5 more tokens than embedding rows");
    s = d;
    s.n_head_kv = 3;
    add_model(&s, "3 kv heads for 4 heads");
    const char *const arches[] = {"gpt2", "", "llama\xff", "qwen2", "qwen3", "mistral"};
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++) {
        s = d;
        s.arch = arches[i];
        add_model(&s, "architecture '%s' with llama tensors", arches[i]);
    }
    for (const char *const *a = (const char *const[]){"qwen2", "qwen3", NULL}; *a; a++) {
        tiny_spec_default(&s, *a);
        s.tokenizer = true;
        add_model(&s, "valid %s", *a);
    }
}

/* ---- running the CLI -------------------------------------------------------------------- */
typedef struct slot {
    pid_t pid;
    size_t file;
    int cmd;
    struct timespec start;
    char path[64], err_path[64], out_path[64];
} slot;

typedef struct tally {
    size_t rejected[2], ok[2];
    int failures;
} tally;

static const char *const cmd_names[] = {"info", "logits"};

static double since(const struct timespec *t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void start(slot *s, size_t file, int cmd) {
    s->file = file;
    s->cmd = cmd;
    if (cmd == 0) {
        FILE *f = fopen(s->path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(corpus[file].data, 1, corpus[file].len, f), corpus[file].len);
        fclose(f);
    }
    char *info_argv[] = {HEARTH_BIN, "info", s->path, NULL};
    char *logits_argv[] = {HEARTH_BIN, "logits", "-m", s->path, "-p", "hi", "-o", s->out_path, "-t", "1", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, s->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    clock_gettime(CLOCK_MONOTONIC, &s->start);
    int rc = posix_spawn(&s->pid, HEARTH_BIN, &fa, NULL, cmd == 0 ? info_argv : logits_argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) fail_msg("cannot start %s: %s", HEARTH_BIN, strerror(rc));
}

static void report(const slot *s, const char *why, const char *err_text) {
    print_error("%s (%s): hearth %s: %s\n", corpus[s->file].what, s->path, cmd_names[s->cmd], why);
    if (err_text) print_error("  stderr: %.600s\n", err_text);
}

/* Judges a finished run and frees the slot. */
static void finish(slot *s, int status, tally *t) {
    char *err_text = read_file(s->err_path, NULL);
    size_t lines = 0;
    for (const char *p = err_text; p && *p; p++) lines += *p == '\n';
    if (WIFSIGNALED(status)) {
        char why[64];
        snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
        report(s, why, err_text);
        t->failures++;
    } else if (WEXITSTATUS(status) == 0) {
        t->ok[s->cmd]++;
        size_t len = 0;
        char *out = s->cmd == 1 ? read_file(s->out_path, &len) : NULL;
        /* a patched file may hold garbage weights (an F32 tensor retyped to F16 in place):
         * only files with sane data must give finite logits */
        bool check_finite = corpus[s->file].sane_data;
        if (s->cmd == 1 && (!out || len == 0 || len % sizeof(float))) {
            report(s, "succeeded without a logits file of whole floats", err_text);
            t->failures++;
        }
        for (size_t i = 0; check_finite && out && i + sizeof(float) <= len; i += sizeof(float)) {
            float v;
            memcpy(&v, out + i, sizeof v);
            if (!isfinite(v)) {
                char why[96];
                snprintf(why, sizeof why, "succeeded but logit %zu is %g", i / sizeof(float), v);
                report(s, why, err_text);
                t->failures++;
                break;
            }
        }
        free(out);
    } else if ((WEXITSTATUS(status) == 1 || WEXITSTATUS(status) == 2) && lines == 1 && err_text[strlen(err_text) - 1] == '\n') {
        t->rejected[s->cmd]++;
    } else {
        char why[96];
        snprintf(why, sizeof why, "exit code %d with %zu lines on stderr (want 1 or 2 and one line)", WEXITSTATUS(status), lines);
        report(s, why, err_text);
        t->failures++;
    }
    free(err_text);
    s->pid = 0;
}

static void run_corpus(tally *t) {
    slot slots[SLOTS] = {0};
    for (int i = 0; i < SLOTS; i++) {
        snprintf(slots[i].path, sizeof slots[i].path, "/tmp/hearth-corpus-%d-%d.gguf", (int)getpid(), i);
        snprintf(slots[i].err_path, sizeof slots[i].err_path, "/tmp/hearth-corpus-%d-%d.err", (int)getpid(), i);
        snprintf(slots[i].out_path, sizeof slots[i].out_path, "/tmp/hearth-corpus-%d-%d.f32", (int)getpid(), i);
    }
    size_t next = 0;          /* next file to start */
    int running = 0;
    while (next < n_corpus || running) {
        for (int i = 0; i < SLOTS; i++)
            if (!slots[i].pid && next < n_corpus) start(&slots[i], next++, 0), running++;
        for (int i = 0; i < SLOTS; i++) {
            slot *s = &slots[i];
            if (!s->pid) continue;
            int status;
            pid_t r = waitpid(s->pid, &status, WNOHANG);
            if (r == 0 && since(&s->start) > DEADLINE_S) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                report(s, "still running after the deadline (killed)", NULL);
                t->failures++;
                s->pid = 0;
                running--;
                continue;
            }
            if (r == 0) continue;
            int cmd = s->cmd;
            size_t file = s->file;
            finish(s, status, t);
            if (cmd == 0) start(s, file, 1);
            else running--;
        }
        usleep(500);
    }
    for (int i = 0; i < SLOTS; i++) unlink(slots[i].path), unlink(slots[i].err_path), unlink(slots[i].out_path);
}

static void test_corpus(void **state) {
    tiny_spec s;
    tiny_spec_default(&s, "llama");
    s.tokenizer = true;
    void *buf;
    assert_true(tiny_build(&s, &buf, &base_len));
    base = buf;
    byte_level_cases();
    size_t n_bytes = n_corpus;
    model_level_cases();

    /* the base model itself must run, or every rejection below proves nothing */
    char args[256], *err_text = NULL;
    const char *path = "/tmp/hearth-corpus-base.gguf";
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(base, 1, base_len, f), base_len);
    fclose(f);
    snprintf(args, sizeof args, "logits -m %s -p hi -o /tmp/hearth-corpus-base.f32", path);
    int code = run_hearth(args, NULL, &err_text);
    if (code != 0) fail_msg("the valid model does not run: exit %d: %s", code, err_text);
    free(err_text);
    unlink(path);
    unlink("/tmp/hearth-corpus-base.f32");

    tally t = {0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_corpus(&t);
    printf("corpus: %zu files (%zu byte-level, %zu model-level), %.1f s\n", n_corpus, n_bytes,
           n_corpus - n_bytes, since(&t0));
    for (int c = 0; c < 2; c++)
        printf("  hearth %-6s: %zu clean rejections, %zu clean runs\n", cmd_names[c], t.rejected[c], t.ok[c]);
    if (t.failures) fail_msg("%d runs crashed, hung or did not fail cleanly (listed above)", t.failures);

    for (size_t i = 0; i < n_corpus; i++) free(corpus[i].data);
    free(corpus);
    mem_free(base);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_corpus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
