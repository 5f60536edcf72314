/* A reload may not open a non-loopback server: on 0.0.0.0 with keys, a reloaded
 * configuration without keys (and without allow_unauthenticated) is refused like it is
 * at start, even when it names a loopback host (the host changes only at a restart);
 * with allow_unauthenticated it is applied. */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "server/srv.h"
#include "testutil.h"

#define KEY "hk-reload-keys-0123456789"

static const char *next_yaml;

static cfg_config *build(const char *yaml) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK)
        fail_msg("configuration refused: %s\n%s", err.msg, yaml);
    return c;
}

static hearth_status reload(void *ud, cfg_config **out, cfg_errors *errs, hearth_err *err) {
    (void)ud;
    return cfg_build_text(next_yaml, strlen(next_yaml), "t.yaml", false, NULL, 0, out, errs, err);
}

static void test_reload_without_keys(void **state) {
    (void)state;
    unsigned char d[32];
    unsigned int dn = 0;
    EVP_Digest(KEY, strlen(KEY), d, &dn, EVP_sha256(), NULL);
    char hex[65], yaml[512];
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    snprintf(yaml, sizeof yaml,
             "server: {host: 0.0.0.0, port: 0, shutdown_grace: 1s}\n"
             "keys:\n  - {name: ops, sha256: %s, admin: true}\n"
             "models:\n  - {name: m, path: /nowhere.gguf}\n",
             hex);
    srv_config sc = {.config = build(yaml), .reload = reload};
    obs_config_default(&sc.obs);
    srv *s = NULL;
    hearth_err err = {0};
    if (srv_new(&sc, &s, &err) != HEARTH_OK) fail_msg("srv_new: %s", err.msg);

    char msg[512];
    cfg_errors errs;
    /* the configuration's own check passes (its host is loopback), but the host needs a
     * restart: the server still listens on 0.0.0.0 */
    next_yaml = "server: {host: 127.0.0.1, port: 0, shutdown_grace: 1s}\nmodels:\n  - {name: m, path: /nowhere.gguf}\n";
    hearth_status st = srv_reload(s, msg, sizeof msg, &errs, &err);
    if (st == HEARTH_OK) fail_msg("a reload without keys on 0.0.0.0 was applied: %s", msg);
    if (!strstr(err.msg, "API keys")) fail_msg("the refusal does not name API keys: %s", err.msg);

    next_yaml = "server: {host: 0.0.0.0, port: 0, shutdown_grace: 1s, allow_unauthenticated: true}\n"
                "models:\n  - {name: m, path: /nowhere.gguf}\n";
    st = srv_reload(s, msg, sizeof msg, &errs, &err);
    if (st != HEARTH_OK) fail_msg("a reload with allow_unauthenticated was refused: %s", err.msg);
    srv_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reload_without_keys)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
