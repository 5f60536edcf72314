/* `hearth serve [-c FILE] [-m FILE] [...]`: serves the configured models over the
 * OpenAI-compatible HTTP API until SIGINT or SIGTERM, then stops gracefully; SIGHUP
 * reloads the configuration. Settings come from built-in defaults < the config file
 * (-c, or $HEARTH_CONFIG) < HEARTH_* environment variables < these flags; a reload
 * re-reads all of them. Log lines (JSON) go to stderr. Exits 1 when the socket cannot be
 * bound (or, served from -m/HEARTH_MODEL alone, when that model fails to load), 2 on a
 * usage or configuration error. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "server/srv.h"

#define MAX_SETTINGS 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth serve [-c FILE] [-m FILE] [options]\n"
            "\n"
            "Serves the models of the config file FILE (see docs/CONFIG.md), or the GGUF model\n"
            "given with -m (named after its file without .gguf), over an OpenAI-compatible API.\n"
            "The socket listens at once; preload models load in the background (GET /ready\n"
            "answers 200 once they are ready), the others on their first request. SIGHUP or\n"
            "POST /admin/reload reloads the configuration.\n"
            "\n"
            "  -c, --config FILE          YAML configuration (default: $HEARTH_CONFIG)\n"
            "  -m, --model FILE           serve this GGUF model too (preloaded)\n"
            "  --host ADDR                address to listen on (default 127.0.0.1; any other than\n"
            "                             loopback needs API keys in the config, or the next flag)\n"
            "  --allow-unauthenticated    serve a non-loopback address without API keys\n"
            "  --cors-origins LIST        comma-separated origins browsers may call from (default: none)\n"
            "  --port N                   port (default 8080; 0 picks a free one, printed in the log)\n"
            "  --slots N                  sequences decoded at once, every model (default 8)\n"
            "  --ctx N                    context positions per sequence, every model\n"
            "                             (default min(training, 4096))\n"
            "  -t, --threads N            compute threads, every model (default: physical cores)\n"
            "  --max-queue N              requests waiting beyond the slots before 503 (default 64)\n"
            "  --max-queue-wait MS        refuse (503) a request whose estimated wait for a slot exceeds\n"
            "                             MS milliseconds, and end one still queued after MS (or a\n"
            "                             duration: 500ms, 2s; default 0: off)\n"
            "  --ttl DURATION             idle time before a model unloads, every model (default 10m;\n"
            "                             0: at once; forever: never)\n"
            "  --timeout DURATION         longest a request may run (default 10m)\n"
            "  --memory-budget SIZE       memory for models: 8GiB, 75%% of RAM, unlimited (default 80%%)\n"
            "  --models-dir DIR           model store for pulled models\n"
            "  --chat-template-file FILE  use this Jinja chat template for the -m model\n"
            "  --lora F[:S]               serve the LoRA adapter F (default scale S 1.0) with the -m model,\n"
            "                             as MODEL:NAME (NAME: F's file name without .gguf); repeatable\n"
            "  --max-body SIZE            largest request body (default 8MiB)\n"
            "  --db FILE                  request store (SQLite; default $HEARTH_DATA/hearth.db or\n"
            "                             ~/.local/share/hearth/hearth.db)\n"
            "  --no-db                    keep no request store\n"
            "  --db-max-age DURATION      delete stored rows older than this (default 30d; e.g. 12h, 7d)\n"
            "  --db-max-rows N            keep at most N rows per table (default 1000000)\n"
            "  --log-level LEVEL          debug, info (default), warn or error, for request lines\n"
            "  --log-prompts              add request bodies (prompts) to request log lines\n"
            "  -h, --help                 show this help\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hearth: error: %s%s%s (see 'hearth serve --help')\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static const struct { const char *flag, *alt, *key; } flag_keys[] = {
    {"--model", "-m", "model"},
    {"--host", NULL, "server.host"},
    {"--port", NULL, "server.port"},
    {"--timeout", NULL, "server.timeout"},
    {"--max-body", NULL, "server.max_body"},
    {"--memory-budget", NULL, "server.memory_budget"},
    {"--models-dir", NULL, "server.model_store"},
    {"--slots", NULL, "models.slots"},
    {"--ctx", NULL, "models.ctx"},
    {"--threads", "-t", "models.threads"},
    {"--max-queue", NULL, "models.max_queue"},
    {"--max-queue-wait", NULL, "models.max_queue_wait"},
    {"--ttl", NULL, "models.ttl"},
    {"--chat-template-file", NULL, "model.chat_template"},
    {"--cors-origins", NULL, "server.cors_origins"},
    {"--lora", NULL, "model.lora"},
};

typedef struct serve_args {
    const char *config;
    cfg_setting settings[MAX_SETTINGS];
    char origins[MAX_SETTINGS][48];
    char values[MAX_SETTINGS][48]; /* values the flag rewrote (a bare --max-queue-wait is ms) */
    size_t n;
} serve_args;

static hearth_status build(void *ud, cfg_config **out, cfg_errors *errs, hearth_err *err) {
    serve_args *a = ud;
    return cfg_build(a->config, true, a->settings, a->n, out, errs, err);
}

static void log_line(void *ud, const char *line) { fprintf(stderr, "%s\n", line); }

static bool parse_level(const char *s, obs_level *out) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (obs_level)i;
            return true;
        }
    return false;
}

/* The observability flags (not part of the reloadable configuration). 1: consumed
 * (with *i advanced past a value), 0: not one of them, -1: usage error (reported). */
static int obs_flag(int argc, char **argv, int *i, obs_config *oc, const char **db, bool *no_db) {
    const char *a = argv[*i];
    if (!strcmp(a, "--no-db")) return *no_db = true, 1;
    if (!strcmp(a, "--log-prompts")) return oc->log_prompts = true, 1;
    bool known = !strcmp(a, "--db") || !strcmp(a, "--db-max-age") || !strcmp(a, "--db-max-rows") ||
                 !strcmp(a, "--log-level");
    if (!known) return 0;
    if (*i + 1 >= argc) return usage_error("missing value for", a), -1;
    const char *v = argv[++*i];
    double d = 0;
    char *end = NULL;
    if (!strcmp(a, "--db")) {
        if (!*v) return usage_error("--db needs a file name", NULL), -1;
        *db = v;
    } else if (!strcmp(a, "--db-max-age")) {
        if (!obs_parse_duration(v, &d)) return usage_error("--db-max-age must be a duration like 12h or 30d, got", v), -1;
        oc->store.max_age_s = d;
    } else if (!strcmp(a, "--db-max-rows")) {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || n < 1) return usage_error("--db-max-rows must be a positive count, got", v), -1;
        oc->store.max_rows = n;
    } else if (!parse_level(v, &oc->log_level)) {
        return usage_error("--log-level must be debug, info, warn or error, got", v), -1;
    }
    return 1;
}

static void print_errors(const cfg_errors *errs, const hearth_err *err) {
    if (errs->n == 0) fprintf(stderr, "hearth: error: %s\n", err->msg);
    for (size_t i = 0; i < errs->n; i++) fprintf(stderr, "hearth: error: %s\n", errs->msg[i]);
    if (errs->more) fprintf(stderr, "hearth: error: ... and %zu more\n", errs->more);
}

/* Served from -m/HEARTH_MODEL only: a model that cannot load ends the server. */
static bool first_load_failed(srv *s, char *why, size_t cap) {
    fleet_snapshot snap;
    hearth_err err;
    bool failed = false;
    if (fleet_get_snapshot(srv_fleet(s), &snap, &err) != HEARTH_OK) return false;
    for (size_t i = 0; i < snap.n && !failed; i++)
        if (snap.models[i].state == FLEET_FAILED && snap.models[i].loads == 0) {
            failed = true;
            snprintf(why, cap, "%s", snap.models[i].error);
        }
    fleet_snapshot_free(&snap);
    return failed;
}

int cli_serve(int argc, char **argv) {
    static serve_args a;
    memset(&a, 0, sizeof a);
    a.config = getenv("HEARTH_CONFIG");
    if (a.config && !*a.config) a.config = NULL;
    obs_config oc;
    obs_config_default(&oc);
    char default_db[4096];
    const char *db = obs_default_db_path(default_db, sizeof default_db) ? default_db : NULL;
    bool no_db = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 0;
        }
        int of = obs_flag(argc, argv, &i, &oc, &db, &no_db);
        if (of < 0) return 2;
        if (of > 0) continue;
        if (!strcmp(arg, "--allow-unauthenticated")) {
            if (a.n >= MAX_SETTINGS) return usage_error("too many options", NULL);
            a.settings[a.n++] = (cfg_setting){"server.allow_unauthenticated", "true", "flag --allow-unauthenticated"};
            continue;
        }
        if (i + 1 >= argc) return usage_error("missing value or unknown option", arg);
        const char *v = argv[++i];
        if (!strcmp(arg, "-c") || !strcmp(arg, "--config")) {
            a.config = v;
            continue;
        }
        size_t k = 0, nk = sizeof flag_keys / sizeof flag_keys[0];
        while (k < nk && strcmp(arg, flag_keys[k].flag) && !(flag_keys[k].alt && !strcmp(arg, flag_keys[k].alt))) k++;
        if (k == nk) return usage_error("unknown option", arg);
        if (a.n >= MAX_SETTINGS) return usage_error("too many options", NULL);
        snprintf(a.origins[a.n], sizeof a.origins[0], "flag %s", flag_keys[k].flag);
        if (!strcmp(flag_keys[k].key, "models.max_queue_wait") && *v && strspn(v, "0123456789.") == strlen(v)) {
            snprintf(a.values[a.n], sizeof a.values[0], "%.40sms", v);
            v = a.values[a.n];
        }
        a.settings[a.n] = (cfg_setting){flag_keys[k].key, v, a.origins[a.n]};
        a.n++;
    }
    cfg_config *config = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (build(&a, &config, &errs, &err) != HEARTH_OK) {
        print_errors(&errs, &err);
        return err.status == HEARTH_ERR_INVALID ? 2 : 1;
    }
    if (config->n_models == 0) {
        cfg_free(config);
        return usage_error("no model configured: give -m FILE, set HEARTH_MODEL, or list models in a config file (-c)",
                           NULL);
    }
    bool single = !a.config;
    if (!no_db && !db)
        fprintf(stderr, "hearth: warning: no request store (set HEARTH_DATA or HOME, or pass --db FILE)\n");
    oc.db_path = no_db ? NULL : db;

    /* every thread inherits this mask, so only sigtimedwait below sees the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv *s = NULL;
    srv_config sc = {.config = config, .log = log_line, .reload = build, .reload_ud = &a, .obs = oc};
    if (srv_new(&sc, &s, &err) != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return 1;
    }
    int code = 0;
    for (;;) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &tick);
        if (sig == SIGHUP) {
            char msg[512];
            srv_reload(s, msg, sizeof msg, &errs, &err); /* logs the outcome either way */
            continue;
        }
        if (sig > 0) break;
        char why[600];
        if (single && first_load_failed(s, why, sizeof why)) {
            fprintf(stderr, "hearth: error: %s\n", why);
            code = 1;
            break;
        }
    }
    srv_free(s);
    return code;
}
