/* Shared test helpers (see testutil.h). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *fixture_path(const char *rel) {
    static char buf[4096];
    const char *dir = getenv("HEARTH_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : HEARTH_FIXTURES_DIR, rel);
    return buf;
}

int fixtures_available(void) {
    struct stat st;
    if (stat(fixture_path(""), &st) == 0 && S_ISDIR(st.st_mode)) return 1;
    printf("SKIP: fixtures not found at %s\n", fixture_path(""));
    return 0;
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = (n + 65536 + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int run_hearth(const char *args, char **out, char **errout) {
    char outp[] = "/tmp/hearth-test-outXXXXXX", errp[] = "/tmp/hearth-test-errXXXXXX";
    int fo = mkstemp(outp), fe = mkstemp(errp);
    if (fo < 0 || fe < 0) return -1;
    close(fo);
    close(fe);
    size_t cmdlen = strlen(args) + 2 * sizeof outp + strlen(HEARTH_BIN) + 32;
    char *cmd = malloc(cmdlen);
    snprintf(cmd, cmdlen, "%s %s >%s 2>%s", HEARTH_BIN, args, outp, errp);
    int st = system(cmd);
    free(cmd);
    if (out) *out = read_file(outp, NULL);
    if (errout) *errout = read_file(errp, NULL);
    unlink(outp);
    unlink(errp);
    if (st == -1) return -1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    int code = WEXITSTATUS(st);
    /* system() runs sh: a child killed by a signal shows as 128+sig from the shell */
    return code;
}
