/* A strict reader of the Prometheus text exposition format (0.0.4) for tests: it parses
 * what /metrics returns back into samples, checks the format rules a scraper relies on,
 * and checks histograms (cumulative buckets, +Inf equal to _count, a _sum). */
#ifndef TESTS_PROMTEXT_H
#define TESTS_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>

#define PROM_MAX_LABELS 8

typedef struct prom_sample {
    char name[128];
    size_t n_labels;
    char key[PROM_MAX_LABELS][64];
    char val[PROM_MAX_LABELS][256];   /* unescaped */
    double value;
} prom_sample;

typedef struct prom_family {
    char name[128];
    char type[16];
    bool has_help;
} prom_family;

typedef struct prom_doc {
    prom_sample *s;                   /* malloc'd */
    size_t n;
    prom_family fam[256];
    size_t n_fam;
} prom_doc;

/* Parses text; false (with why) at the first rule broken. */
bool prom_parse(const char *text, prom_doc *d, char *why, size_t cap);
void prom_free(prom_doc *d);

/* Checks every histogram family; false (with why) when one is malformed. */
bool prom_check_histograms(const prom_doc *d, char *why, size_t cap);

/* Sum of the samples named name whose labels include every key/value pair given
 * (NULL-terminated list of key, value, key, value, ...). *found tells whether any matched. */
double prom_value(const prom_doc *d, bool *found, const char *name, ...);

/* The family record of name, or NULL. */
const prom_family *prom_family_of(const prom_doc *d, const char *name);

#endif
