/* `hearth serve -m FILE [...]`: serves one model over the OpenAI-compatible HTTP API
 * until SIGINT or SIGTERM, then stops gracefully. Log lines (JSON) go to stderr. Exits
 * 1 when the socket cannot be bound or the model fails to load, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "server/srv.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth serve -m FILE [options]\n"
            "\n"
            "Serves the GGUF model FILE over an OpenAI-compatible API, under its file name\n"
            "without .gguf as the model id. The socket listens at once; the model loads in the\n"
            "background (GET /ready answers 200 once it can take requests).\n"
            "\n"
            "  -m, --model FILE           the GGUF model to serve\n"
            "  --host ADDR                address to listen on (default 127.0.0.1)\n"
            "  --port N                   port (default 8080; 0 picks a free one, printed in the log)\n"
            "  --slots N                  sequences decoded at once (default 8)\n"
            "  --ctx N                    context positions per sequence (default min(training, 4096))\n"
            "  -t, --threads N            compute threads (default: physical cores)\n"
            "  --max-queue N              requests waiting beyond the slots before 503 (default 64)\n"
            "  --timeout SECONDS          longest a request may run (default 600)\n"
            "  --chat-template-file FILE  use this Jinja chat template instead of the model's\n"
            "  --max-body BYTES           largest request body (default 8 MiB)\n"
            "  -h, --help                 show this help\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hearth: error: %s%s%s (see 'hearth serve --help')\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static void log_line(void *ud, const char *line) { fprintf(stderr, "%s\n", line); }

int cli_serve(int argc, char **argv) {
    srv_config cfg;
    srv_config_default(&cfg);
    cfg.log = log_line;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) return usage_error("missing value or unknown option", a);
        const char *v = argv[++i];
        long n = 0;
        double d = 0;
        char *end = NULL;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            cfg.model.path = v;
        } else if (!strcmp(a, "--host")) {
            cfg.host = v;
        } else if (!strcmp(a, "--port")) {
            if (!parse_long(v, 0, 65535, &n)) return usage_error("--port must be 0..65535, got", v);
            cfg.port = (int)n;
        } else if (!strcmp(a, "--slots")) {
            if (!parse_long(v, 1, 256, &n)) return usage_error("--slots must be 1..256, got", v);
            cfg.model.n_slots = (int32_t)n;
        } else if (!strcmp(a, "--ctx")) {
            if (!parse_long(v, 16, INT32_MAX, &n)) return usage_error("--ctx must be at least 16, got", v);
            cfg.model.n_ctx = n;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!parse_long(v, 1, 1024, &n)) return usage_error("--threads must be 1..1024, got", v);
            cfg.model.n_threads = (int)n;
        } else if (!strcmp(a, "--max-queue")) {
            if (!parse_long(v, 0, 1 << 20, &n)) return usage_error("--max-queue must be 0..1048576, got", v);
            cfg.model.max_queue = (int32_t)n;
        } else if (!strcmp(a, "--timeout")) {
            d = strtod(v, &end);
            if (!*v || *end || !(d > 0 && d <= 86400)) return usage_error("--timeout must be 0 < SECONDS <= 86400, got", v);
            cfg.timeout_s = d;
        } else if (!strcmp(a, "--chat-template-file")) {
            cfg.model.template_path = v;
        } else if (!strcmp(a, "--max-body")) {
            if (!parse_long(v, 1024, 1L << 30, &n)) return usage_error("--max-body must be 1024..1073741824, got", v);
            cfg.max_body = (size_t)n;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (!cfg.model.path) return usage_error("missing -m FILE", NULL);
    FILE *probe = fopen(cfg.model.path, "rb");
    if (!probe) {
        fprintf(stderr, "hearth: error: %s: %s\n", cfg.model.path, strerror(errno));
        return 1;
    }
    fclose(probe);

    /* every thread inherits this mask, so only sigtimedwait below sees the signals */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv *s = NULL;
    hearth_err err = {0};
    if (srv_new(&cfg, &s, &err) != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return 1;
    }
    int code = 0;
    for (;;) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        if (sigtimedwait(&set, NULL, &tick) > 0) break;
        if (srv_state(s) == SRV_MODEL_FAILED) {
            fprintf(stderr, "hearth: error: %s\n", srv_load_error(s)->msg);
            code = 1;
            break;
        }
    }
    srv_free(s);
    return code;
}
