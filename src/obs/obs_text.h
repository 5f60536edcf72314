/* A growable, capped text buffer for the obs module's renderers (metrics text, stats
 * tables). Appends fail (and set `failed`) past the cap or on NOMEM; the text stays
 * NUL-terminated. Values only, no I/O. */
#ifndef OBS_OBS_TEXT_H
#define OBS_OBS_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct obs_text {
    char *data;   /* owned (mem_*), NUL-terminated once anything was added */
    size_t len, cap;
    size_t max;   /* most bytes it may hold; 0: 64 MiB */
    bool failed;  /* an append failed; the text is incomplete */
} obs_text;

bool obs_text_add(obs_text *t, const char *s, size_t n);
bool obs_text_addf(obs_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text to the caller (mem_free) and resets t; NULL when an append failed. */
char *obs_text_take(obs_text *t, size_t *len);
void obs_text_free(obs_text *t);

#endif
