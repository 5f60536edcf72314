/* The model fleet against real (tiny) fixture models copied to a temporary folder:
 * single flight, reference counts against unloading, sha256 checks, TTL and keep_alive,
 * the memory budget (LRU eviction, BUSY when nothing is evictable), files replaced or
 * truncated under a loaded model, reload, and retries with backoff. Waits poll a state
 * with a generous cap; nothing asserts a duration. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "base/mem.h"
#include "config/config.h"
#include "engine/generate.h"
#include "fleet/fleet.h"

#define TINY "models/llama-2-tiny-random.gguf"
#define OTHER "models/llama-spm-q4_0.gguf"

static char dir[64];
static char tiny[128], other[128];

static void copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *data = read_file(from, &n);
    assert_non_null(data);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    free(data);
    assert_int_equal(rename(tmp, to), 0); /* rename-replace, as an operator would */
}

static int setup(void **state) {
    if (!fixtures_available()) return 0;
    snprintf(dir, sizeof dir, "/tmp/hearth-fleet-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(tiny, sizeof tiny, "%s/tiny.gguf", dir);
    snprintf(other, sizeof other, "%s/other.gguf", dir);
    copy_file(fixture_path(TINY), tiny);
    return 0;
}

static int teardown(void **state) {
    if (!dir[0]) return 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define NEED_FIXTURES()                                                                                                \
    do {                                                                                                               \
        if (!dir[0]) {                                                                                                 \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

static cfg_config *config(const char *yaml) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "test.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK)
        fail_msg("config: %s", err.msg);
    return c;
}

static fleet *start(const char *yaml, bool preloads) {
    cfg_config *c = config(yaml);
    fleet_options o;
    fleet_options_default(&o);
    o.start_preloads = preloads;
    o.failed_backoff_s = 0.05;
    o.busy_retry_s = 7;
    fleet *f = NULL;
    hearth_err err = {0};
    if (fleet_new(c, NULL, &o, &f, &err) != HEARTH_OK) fail_msg("fleet_new: %s", err.msg);
    cfg_free(c);
    return f;
}

static fleet_info info_of(fleet *f, const char *name) {
    fleet_snapshot s;
    hearth_err err;
    assert_int_equal(fleet_get_snapshot(f, &s, &err), HEARTH_OK);
    fleet_info out = {0};
    for (size_t i = 0; i < s.n; i++)
        if (!strcmp(s.models[i].cfg.name, name)) {
            out = s.models[i];
            memset(&out.cfg, 0, sizeof out.cfg);
        }
    fleet_snapshot_free(&s);
    return out;
}

/* Polls until name reaches want (at most 30 s); prints the state it had otherwise. */
static void wait_state(fleet *f, const char *name, fleet_state want) {
    fleet_info in = {0};
    for (int i = 0; i < 3000; i++) {
        in = info_of(f, name);
        if (in.state == want) return;
        usleep(10000);
    }
    fail_msg("model %s: state %s, expected %s (error: %s)", name, fleet_state_name(in.state), fleet_state_name(want),
             in.error);
}

static fleet_lease *get(fleet *f, const char *name) {
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra = 0;
    hearth_err err = {0};
    hearth_status st = fleet_acquire(f, name, &o, &l, &ra, &err);
    if (st != HEARTH_OK) fail_msg("acquire %s: %s", name, err.msg);
    return l;
}

static hearth_status finite_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    for (int64_t i = 0; i < n_vocab; i++)
        if (!(logits[i] == logits[i]) || logits[i] > 1e30f || logits[i] < -1e30f) return HEARTH_ERR_FORMAT;
    return HEARTH_OK;
}

/* Runs one token through the leased model: it must still compute, finitely. */
static void use(fleet_lease *l) {
    const gen_model *gm = fleet_lease_model(l);
    gen_config gc = {.n_ctx = 8, .n_threads = 1};
    gen_engine *e = NULL;
    hearth_err err = {0};
    assert_int_equal(gen_engine_new(gm->model, gm->vocab, &gc, &e, &err), HEARTH_OK);
    int32_t tok = 1;
    assert_int_equal(gen_eval(e, &tok, 1, false, finite_row, NULL, &err), HEARTH_OK);
    gen_engine_free(e);
}

static char yaml[2048];

static const char *one_model(const char *extra) {
    snprintf(yaml, sizeof yaml, "models:\n  - {name: m, path: '%s', ctx: 64, slots: 1, threads: 1%s}\n", tiny, extra);
    return yaml;
}

/* ---- single flight -------------------------------------------------------------------- */

typedef struct racer {
    fleet *f;
    hearth_status st;
    fleet_lease *l;
    pthread_barrier_t *go;
} racer;

static void *race(void *arg) {
    racer *r = arg;
    pthread_barrier_wait(r->go);
    fleet_acquire_opts o = {.keep_alive_s = -2};
    double ra;
    hearth_err err;
    r->st = fleet_acquire(r->f, "m", &o, &r->l, &ra, &err);
    return NULL;
}

static void test_single_flight(void **state) {
    NEED_FIXTURES();
    fleet *f = start(one_model(""), false);
    enum { N = 20 };
    racer r[N];
    pthread_t th[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        r[i] = (racer){.f = f, .go = &go};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += r[i].st == HEARTH_OK && r[i].l != NULL;
    fleet_info in = info_of(f, "m");
    printf("%d of %d requests got the model; loads: %d; in use: %d\n", ok, N, in.loads, in.refs);
    assert_int_equal(ok, N);
    assert_int_equal(in.loads, 1);
    assert_int_equal(in.refs, N);
    for (int i = 0; i < N; i++) fleet_release(r[i].l);
    assert_int_equal(info_of(f, "m").refs, 0);
    fleet_free(f);
}

/* ---- references and unloading ----------------------------------------------------------- */

static void test_refcount_blocks_unload(void **state) {
    NEED_FIXTURES();
    fleet *f = start(one_model(", ttl: 0"), false);
    fleet_lease *l = get(f, "m");
    bool pending = false;
    hearth_err err;
    assert_int_equal(fleet_unload(f, "m", &pending, &err), HEARTH_OK);
    assert_true(pending);
    usleep(50000); /* give the housekeeper every chance to misbehave */
    assert_int_equal(info_of(f, "m").state, FLEET_READY);
    use(l); /* still computes */
    fleet_release(l);
    wait_state(f, "m", FLEET_AVAILABLE);
    /* ttl: 0 unloads as soon as the last request ends */
    l = get(f, "m");
    assert_int_equal(info_of(f, "m").loads, 2);
    fleet_release(l);
    wait_state(f, "m", FLEET_AVAILABLE);
    fleet_free(f);
}

static void test_ttl_and_keep_alive(void **state) {
    NEED_FIXTURES();
    snprintf(yaml, sizeof yaml,
             "server: {max_keep_alive: 1h}\nmodels:\n"
             "  - {name: short, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: 200ms}\n"
             "  - {name: pinned, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: forever}\n"
             "  - {name: zero, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: 0}\n",
             tiny, tiny, tiny);
    fleet *f = start(yaml, false);
    fleet_release(get(f, "short"));
    fleet_release(get(f, "pinned"));
    wait_state(f, "short", FLEET_AVAILABLE); /* idle past its ttl */
    fleet_info p = info_of(f, "pinned");
    assert_int_equal(p.state, FLEET_READY);
    assert_true(p.idle_expires_s < 0); /* not counting down */
    /* keep_alive extends a ttl of 0, within max_keep_alive */
    fleet_acquire_opts o = {.keep_alive_s = 7200};
    fleet_lease *l = NULL;
    double ra;
    hearth_err err;
    assert_int_equal(fleet_acquire(f, "zero", &o, &l, &ra, &err), HEARTH_OK);
    fleet_release(l);
    fleet_info z = info_of(f, "zero");
    printf("zero: state %s, unloads in %.0f s (keep_alive 2h capped at 1h)\n", fleet_state_name(z.state), z.idle_expires_s);
    assert_int_equal(z.state, FLEET_READY);
    assert_true(z.idle_expires_s > 3000 && z.idle_expires_s <= 3600);
    fleet_free(f);
}

/* ---- verification -------------------------------------------------------------------------- */

static void test_sha256(void **state) {
    NEED_FIXTURES();
    char sha[65];
    hearth_err err = {0};
    assert_int_equal(fleet_sha256_file(tiny, sha, &err), HEARTH_OK);
    char wrong[65];
    memcpy(wrong, sha, 65);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    snprintf(yaml, sizeof yaml,
             "models:\n  - {name: good, path: '%s', ctx: 64, slots: 1, threads: 1, sha256: %s}\n"
             "  - {name: bad, path: '%s', ctx: 64, slots: 1, threads: 1, sha256: %s}\n",
             tiny, sha, tiny, wrong);
    fleet *f = start(yaml, false);
    fleet_release(get(f, "good"));
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra = 0;
    hearth_status st = fleet_acquire(f, "bad", &o, &l, &ra, &err);
    printf("bad: %s\n", err.msg);
    assert_int_equal(st, HEARTH_ERR_FORMAT);
    assert_null(l);
    assert_non_null(strstr(err.msg, "sha256 mismatch"));
    assert_non_null(strstr(err.msg, sha)); /* names what the file has */
    fleet_info in = info_of(f, "bad");
    assert_int_equal(in.state, FLEET_FAILED);
    assert_non_null(strstr(in.error, "sha256 mismatch"));
    assert_int_equal(in.loads, 0);
    fleet_free(f);
}

/* ---- memory budget --------------------------------------------------------------------------- */

static int64_t measured_total(void) {
    fleet *f = start(one_model(""), false);
    fleet_release(get(f, "m"));
    fleet_info in = info_of(f, "m");
    fleet_free(f);
    assert_true(in.weights_bytes > 0);
    return in.weights_bytes + in.packed_bytes + in.kv_bytes;
}

static void test_budget_eviction(void **state) {
    NEED_FIXTURES();
    int64_t total = measured_total();
    snprintf(yaml, sizeof yaml,
             "server: {memory_budget: %lld}\nmodels:\n"
             "  - {name: a, path: '%s', ctx: 64, slots: 1, threads: 1}\n"
             "  - {name: b, path: '%s', ctx: 64, slots: 1, threads: 1}\n"
             "  - {name: c, path: '%s', ctx: 64, slots: 1, threads: 1}\n",
             (long long)(total * 5 / 2), tiny, tiny, tiny);
    fleet *f = start(yaml, false);
    fleet_release(get(f, "a"));
    fleet_release(get(f, "b"));
    fleet_release(get(f, "a")); /* a is now the most recently used */
    fleet_release(get(f, "c")); /* room for two: the least recently used (b) goes */
    assert_int_equal(info_of(f, "a").state, FLEET_READY);
    assert_int_equal(info_of(f, "b").state, FLEET_AVAILABLE);
    assert_int_equal(info_of(f, "c").state, FLEET_READY);
    /* with a and c in use, nothing can be evicted for b: BUSY with a Retry-After */
    fleet_lease *la = get(f, "a"), *lc = get(f, "c");
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *lb = NULL;
    double ra = 0;
    hearth_err err = {0};
    hearth_status st = fleet_acquire(f, "b", &o, &lb, &ra, &err);
    printf("b while a and c are in use: %s (retry after %.0f s)\n", err.msg, ra);
    assert_int_equal(st, HEARTH_ERR_BUSY);
    assert_true(ra == 7);
    assert_int_equal(info_of(f, "b").state, FLEET_AVAILABLE); /* not a failure of b */
    fleet_snapshot s;
    assert_int_equal(fleet_get_snapshot(f, &s, &err), HEARTH_OK);
    assert_true(s.used_bytes <= s.budget_bytes);
    fleet_snapshot_free(&s);
    fleet_release(la);
    fleet_release(get(f, "b")); /* a is idle again: it is evicted for b */
    assert_int_equal(info_of(f, "a").state, FLEET_AVAILABLE);
    fleet_release(lc);
    fleet_free(f);
}

static void test_budget_too_small(void **state) {
    NEED_FIXTURES();
    fleet *f = start("server: {memory_budget: 1KiB}\nmodels:\n  - {name: m, path: /nonexistent-but-unused.gguf}\n", false);
    fleet_free(f);
    snprintf(yaml, sizeof yaml, "server: {memory_budget: 4KiB}\nmodels:\n  - {name: m, path: '%s', ctx: 64, slots: 1}\n",
             tiny);
    f = start(yaml, false);
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra;
    hearth_err err = {0};
    hearth_status st = fleet_acquire(f, "m", &o, &l, &ra, &err);
    printf("%s\n", err.msg);
    assert_int_equal(st, HEARTH_ERR_RANGE);
    assert_non_null(strstr(err.msg, "more than the whole memory budget"));
    fleet_free(f);
}

/* ---- files changing on disk -------------------------------------------------------------------- */

static void test_file_truncated_while_loaded(void **state) {
    NEED_FIXTURES();
    char path[160];
    snprintf(path, sizeof path, "%s/trunc.gguf", dir);
    copy_file(fixture_path(TINY), path);
    snprintf(yaml, sizeof yaml, "models:\n  - {name: m, path: '%s', ctx: 64, slots: 1, threads: 1}\n", path);
    fleet *f = start(yaml, false);
    fleet_lease *l = get(f, "m");
    assert_int_equal(truncate(path, 0), 0); /* in place: a mapped file would now SIGBUS */
    use(l);
    fleet_release(l);
    bool pending;
    hearth_err err = {0};
    assert_int_equal(fleet_unload(f, "m", &pending, &err), HEARTH_OK);
    wait_state(f, "m", FLEET_AVAILABLE);
    fleet_acquire_opts o = {.keep_alive_s = -2};
    double ra;
    assert_int_not_equal(fleet_acquire(f, "m", &o, &l, &ra, &err), HEARTH_OK);
    printf("after truncation: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    copy_file(fixture_path(TINY), path); /* fixed on disk: picked up by the next load */
    o.retry_failed = true;
    assert_int_equal(fleet_acquire(f, "m", &o, &l, &ra, &err), HEARTH_OK);
    use(l);
    fleet_release(l);
    fleet_free(f);
}

static void test_file_renamed_over_while_loaded(void **state) {
    NEED_FIXTURES();
    char path[160];
    snprintf(path, sizeof path, "%s/renamed.gguf", dir);
    copy_file(fixture_path(TINY), path);
    snprintf(yaml, sizeof yaml, "models:\n  - {name: m, path: '%s', ctx: 64, slots: 1, threads: 1}\n", path);
    fleet *f = start(yaml, false);
    fleet_lease *l = get(f, "m");
    int64_t embd_before = model_hp(fleet_lease_model(l)->model)->n_embd;
    copy_file(fixture_path(OTHER), path); /* a different model renamed over the file */
    use(l);
    fleet_release(l);
    /* an unchanged configuration reloads the model whose file was replaced */
    cfg_config *c = config(yaml);
    char summary[200];
    hearth_err err = {0};
    assert_int_equal(fleet_reload(f, c, summary, sizeof summary, &err), HEARTH_OK);
    cfg_free(c);
    printf("reload: %s\n", summary);
    l = get(f, "m");
    int64_t embd_after = model_hp(fleet_lease_model(l)->model)->n_embd;
    printf("n_embd before %lld, after %lld\n", (long long)embd_before, (long long)embd_after);
    assert_true(embd_before != embd_after);
    use(l);
    fleet_release(l);
    fleet_free(f);
}

/* ---- reload ------------------------------------------------------------------------------------ */

static void test_reload_keeps_unchanged(void **state) {
    NEED_FIXTURES();
    snprintf(yaml, sizeof yaml,
             "models:\n  - {name: a, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: 1h}\n"
             "  - {name: b, path: '%s', ctx: 64, slots: 1, threads: 1}\n",
             tiny, tiny);
    fleet *f = start(yaml, false);
    fleet_release(get(f, "a"));
    fleet_lease *lb = get(f, "b");
    /* a: only ttl and aliases change (stays loaded); b: ctx changes (reloaded); c: new */
    snprintf(yaml, sizeof yaml,
             "models:\n  - {name: a, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: 2h, aliases: [alpha]}\n"
             "  - {name: b, path: '%s', ctx: 32, slots: 1, threads: 1}\n"
             "  - {name: c, path: '%s', ctx: 64, slots: 1, threads: 1}\n",
             tiny, tiny, tiny);
    cfg_config *c = config(yaml);
    char summary[200];
    hearth_err err = {0};
    assert_int_equal(fleet_reload(f, c, summary, sizeof summary, &err), HEARTH_OK);
    cfg_free(c);
    printf("reload: %s\n", summary);
    assert_string_equal(summary, "3 models: 1 unchanged, 2 new or changed, 1 removed or replaced");
    fleet_info a = info_of(f, "a");
    assert_int_equal(a.state, FLEET_READY);
    assert_int_equal(a.loads, 1);
    assert_true(fleet_has(f, "alpha"));
    use(lb); /* the old b still serves its request */
    fleet_release(lb);
    fleet_lease *l = get(f, "b");
    assert_int_equal(fleet_lease_n_ctx(l), 32);
    fleet_release(l);
    /* a model removed by a reload is gone */
    snprintf(yaml, sizeof yaml, "models:\n  - {name: a, path: '%s', ctx: 64, slots: 1, threads: 1, ttl: 2h}\n", tiny);
    c = config(yaml);
    assert_int_equal(fleet_reload(f, c, summary, sizeof summary, &err), HEARTH_OK);
    cfg_free(c);
    assert_false(fleet_has(f, "b"));
    fleet_acquire_opts o = {.keep_alive_s = -2};
    double ra;
    assert_int_equal(fleet_acquire(f, "b", &o, &l, &ra, &err), HEARTH_ERR_NOT_FOUND);
    fleet_free(f);
}

/* ---- failures and retries ------------------------------------------------------------------------ */

static void test_failed_preload_retried(void **state) {
    NEED_FIXTURES();
    char path[160];
    snprintf(path, sizeof path, "%s/late.gguf", dir);
    unlink(path);
    snprintf(yaml, sizeof yaml, "models:\n  - {name: late, path: '%s', ctx: 64, slots: 1, threads: 1, preload: true}\n",
             path);
    fleet *f = start(yaml, true);
    char why[600];
    for (int i = 0; i < 3000 && info_of(f, "late").failures < 3; i++) usleep(10000);
    fleet_info in = info_of(f, "late");
    printf("failures so far %d: %s\n", in.failures, in.error);
    assert_true(in.failures >= 3); /* retried, backing off */
    assert_false(fleet_ready(f, why, sizeof why));
    assert_non_null(strstr(why, "late"));
    copy_file(fixture_path(TINY), path);
    wait_state(f, "late", FLEET_READY); /* the next retry finds it */
    assert_true(fleet_ready(f, why, sizeof why));
    fleet_free(f);
}

static void test_unknown_and_errors(void **state) {
    NEED_FIXTURES();
    fleet *f = start(one_model(""), false);
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra;
    hearth_err err = {0};
    assert_int_equal(fleet_acquire(f, "nope", &o, &l, &ra, &err), HEARTH_ERR_NOT_FOUND);
    bool pending;
    assert_int_equal(fleet_unload(f, "nope", &pending, &err), HEARTH_ERR_NOT_FOUND);
    fleet_free(f);
    /* a model that is not a GGUF file fails verification with the reader's message */
    char path[160];
    snprintf(path, sizeof path, "%s/junk.gguf", dir);
    FILE *j = fopen(path, "wb");
    fputs("this is not a model", j);
    fclose(j);
    snprintf(yaml, sizeof yaml, "models:\n  - {name: junk, path: '%s'}\n", path);
    f = start(yaml, false);
    assert_int_equal(fleet_acquire(f, "junk", &o, &l, &ra, &err), HEARTH_ERR_FORMAT);
    printf("junk: %s (retry in %.2f s)\n", err.msg, ra);
    assert_true(ra > 0);
    fleet_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_refcount_blocks_unload),
        cmocka_unit_test(test_ttl_and_keep_alive),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_budget_eviction),
        cmocka_unit_test(test_budget_too_small),
        cmocka_unit_test(test_file_truncated_while_loaded),
        cmocka_unit_test(test_file_renamed_over_while_loaded),
        cmocka_unit_test(test_reload_keeps_unchanged),
        cmocka_unit_test(test_failed_preload_retried),
        cmocka_unit_test(test_unknown_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
