/* The test log capture (see logcap.h). Never prints. */
#include "logcap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *text;
static size_t len;

void logcap_line(void *ud, const char *line) {
    (void)ud;
    pthread_mutex_lock(&mu);
    size_t n = strlen(line);
    char *grown = realloc(text, len + n + 2);
    if (grown) {
        text = grown;
        memcpy(text + len, line, n);
        len += n;
        text[len++] = '\n';
        text[len] = '\0';
    }
    pthread_mutex_unlock(&mu);
}

bool logcap_has(const char *s) {
    pthread_mutex_lock(&mu);
    bool found = text && strstr(text, s);
    pthread_mutex_unlock(&mu);
    return found;
}

json_t *logcap_find(const char *pat) {
    json_t *found = NULL;
    pthread_mutex_lock(&mu);
    const char *at = text ? strstr(text, pat) : NULL;
    if (at) {
        const char *start = at, *end = strchr(at, '\n');
        while (start > text && start[-1] != '\n') start--;
        found = json_loadb(start, (size_t)(end - start), 0, NULL);
    }
    pthread_mutex_unlock(&mu);
    return found;
}

void logcap_free(void) {
    pthread_mutex_lock(&mu);
    free(text);
    text = NULL;
    len = 0;
    pthread_mutex_unlock(&mu);
}
