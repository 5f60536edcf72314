/* `hearth pull URL|hf://OWNER/REPO[@REV]/FILE.gguf [--sha256 HEX] [--name NAME]`:
 * downloads a model into the store ($HEARTH_MODELS, else the config's
 * server.model_store, else ~/.local/share/hearth/models), resuming a partial download,
 * verifying the checksum, with a progress bar when stderr is a terminal. Prints the
 * file's path and sha256. Exits 0 on success, 1 on failure, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "config/config.h"
#include "fleet/fleet.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth pull URL|hf://OWNER/REPO[@REVISION]/FILE.gguf [options]\n"
            "\n"
            "Downloads a model into the model store. An interrupted download resumes when the\n"
            "same pull runs again; the file appears in the store only once complete and verified.\n"
            "\n"
            "  --sha256 HEX        expected checksum (the download is removed if it differs)\n"
            "  --name NAME         file name in the store (default: the url's file name)\n"
            "  -c, --config FILE   take the store from this config's server.model_store\n"
            "  --connect-timeout S seconds to wait for the connection (default 10)\n"
            "  -h, --help          show this help\n"
            "\n"
            "The store is $HEARTH_MODELS, else server.model_store, else ~/.local/share/hearth/models.\n"
            "hf:// addresses use $HF_ENDPOINT (default https://huggingface.co).\n");
}

typedef struct bar {
    double start, last;
} bar;

static void human(double bytes, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (bytes >= 1024 && i < 4) bytes /= 1024, i++;
    snprintf(buf, cap, "%.1f %s", bytes, u[i]);
}

static void progress(void *ud, int64_t done, int64_t total) {
    bar *b = ud;
    double now = clock_mono_s();
    if (now - b->last < 0.2 && done != total) return;
    b->last = now;
    char d[32], t[32], r[32];
    human((double)done, d, sizeof d);
    human(total > 0 ? (double)total : 0, t, sizeof t);
    human(now > b->start ? (double)done / (now - b->start) : 0, r, sizeof r);
    if (total > 0)
        fprintf(stderr, "\r  %5.1f%%  %s / %s  %s/s   ", 100.0 * (double)done / (double)total, d, t, r);
    else
        fprintf(stderr, "\r  %s  %s/s   ", d, r);
    fflush(stderr);
}

int cli_pull(int argc, char **argv) {
    const char *url = NULL, *config = getenv("HEARTH_CONFIG");
    fleet_pull_opts o = {.connect_timeout_s = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool takes = !strcmp(a, "--sha256") || !strcmp(a, "--name") || !strcmp(a, "-c") || !strcmp(a, "--config") ||
                     !strcmp(a, "--connect-timeout");
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "hearth: error: %s needs a value (see 'hearth pull --help')\n", a);
            return 2;
        }
        if (!strcmp(a, "--sha256")) o.sha256 = argv[++i];
        else if (!strcmp(a, "--name")) o.name = argv[++i];
        else if (!strcmp(a, "-c") || !strcmp(a, "--config")) config = argv[++i];
        else if (!strcmp(a, "--connect-timeout")) {
            char *end = NULL;
            o.connect_timeout_s = strtod(argv[++i], &end);
            if (*end || !(o.connect_timeout_s > 0 && o.connect_timeout_s <= 600)) {
                fprintf(stderr, "hearth: error: --connect-timeout must be 0 < S <= 600\n");
                return 2;
            }
        } else if (a[0] == '-' || url) {
            fprintf(stderr, "hearth: error: unexpected argument %s (see 'hearth pull --help')\n", a);
            return 2;
        } else url = a;
    }
    if (!url) {
        usage(stderr);
        return 2;
    }
    hearth_err err = {0};
    char store[4096], path[4096], sha[65];
    cfg_config *c = NULL;
    if (config && *config) {
        cfg_errors errs;
        if (cfg_build(config, true, NULL, 0, &c, &errs, &err) != HEARTH_OK) {
            fprintf(stderr, "hearth: error: %s\n", err.msg);
            return 1;
        }
    }
    hearth_status st = fleet_store_dir(c ? c->server.model_store : NULL, store, sizeof store, &err);
    cfg_free(c);
    if (st != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return 1;
    }
    bar b = {.start = clock_mono_s()};
    bool tty = isatty(2);
    if (tty) {
        o.progress = progress;
        o.ud = &b;
    }
    fprintf(stderr, "pull: %s -> %s\n", url, store);
    st = fleet_pull(url, store, &o, path, sizeof path, sha, &err);
    if (tty) fprintf(stderr, "\n");
    if (st != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return st == HEARTH_ERR_INVALID ? 2 : 1;
    }
    printf("%s\nsha256 %s%s\n", path, sha, o.sha256 ? " (verified)" : " (not verified: pass --sha256 to check it)");
    return 0;
}
