/* The server's batcher registry under concurrency: many requests of two models arriving
 * together get one batcher per model (created once, by the first request, outside the
 * registry lock; the others of that model wait for it), each load its own instance id,
 * while /metrics collection runs alongside; detaching frees them. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "fleet/fleet.h"
#include "server/srv_embed.h"

#define N_THREADS 8

static char model_a[64], model_b[64];

typedef struct {
    srv_embed *e;
    fleet *f;
    const char *name;
    embed_batcher *b;
    uint64_t instance;
    hearth_status st;
    char msg[256];
} req;

static hearth_status attach(void *ud, const cfg_model *mc, const gen_model *gm, void **out, hearth_err *err) {
    (void)ud, (void)mc, (void)gm, (void)err;
    *out = malloc(1);   /* any distinct pointer: the registry's key */
    return *out ? HEARTH_OK : HEARTH_ERR_NOMEM;
}

static void detach(void *ud, void *attachment) {
    srv_embed_detach(ud, attachment);
    free(attachment);
}

static void *one_request(void *arg) {
    req *r = arg;
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra = 0;
    hearth_err err = {0};
    r->st = fleet_acquire(r->f, r->name, &o, &l, &ra, &err);
    if (!r->st) r->st = srv_embed_batcher(r->e, l, 1, 256, 64, &r->b, &r->instance, &err);
    if (r->st) snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    srv_embed_collect(r->e);
    fleet_release(l);
    return NULL;
}

static int setup(void **state) {
    (void)state;
    int pid = (int)getpid();
    snprintf(model_a, sizeof model_a, "/tmp/hearth-embstate-a-%d.gguf", pid);
    snprintf(model_b, sizeof model_b, "/tmp/hearth-embstate-b-%d.gguf", pid);
    const char *paths[2] = {model_a, model_b};
    for (int i = 0; i < 2; i++) {
        char args[256];
        snprintf(args, sizeof args, "mkmodel --arch bert --dim 64 --layers 1 --heads 4 --vocab 512 --ctx 64 --type f32 -o %s",
                 paths[i]);
        if (run_hearth(args, NULL, NULL) != 0) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(model_a);
    unlink(model_b);
    return 0;
}

static void test_one_batcher_per_model(void **state) {
    (void)state;
    char yaml[512];
    snprintf(yaml, sizeof yaml, "models:\n  - name: a\n    path: %s\n  - name: b\n    path: %s\n", model_a, model_b);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "test.yaml", false, NULL, 0, &c, &errs, &err)) fail_msg("config: %s", err.msg);
    srv_embed *e = NULL;
    if (srv_embed_new(&c->embeddings, NULL, &e, &err)) fail_msg("srv_embed_new: %s", err.msg);
    fleet_hooks hooks = {.ud = e, .attach = attach, .detach = detach};
    fleet_options o;
    fleet_options_default(&o);
    fleet *f = NULL;
    if (fleet_new(c, &hooks, &o, &f, &err)) fail_msg("fleet_new: %s", err.msg);
    cfg_free(c);

    req r[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        r[i] = (req){.e = e, .f = f, .name = i % 2 ? "b" : "a"};
        assert_int_equal(pthread_create(&th[i], NULL, one_request, &r[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        if (r[i].st) fail_msg("request %d (model %s): %s", i, r[i].name, r[i].msg);
        const req *first = &r[i % 2];
        if (r[i].b != first->b || r[i].instance != first->instance)
            fail_msg("request %d of model %s got batcher %p instance %llu; request %d got %p instance %llu", i,
                     r[i].name, (void *)r[i].b, (unsigned long long)r[i].instance, i % 2, (void *)first->b,
                     (unsigned long long)first->instance);
    }
    if (r[0].b == r[1].b || r[0].instance == r[1].instance)
        fail_msg("models a and b share batcher %p / instance %llu", (void *)r[0].b, (unsigned long long)r[0].instance);
    fleet_free(f);   /* detaches both: their batchers are freed */
    srv_embed_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_batcher_per_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
