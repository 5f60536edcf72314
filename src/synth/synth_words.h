/* The built-in training text of generated vocabularies (synth_words.c). Pure data. */
#ifndef SYNTH_SYNTH_WORDS_H
#define SYNTH_SYNTH_WORDS_H

#include <stddef.h>

/* Common English words in lower case, separated by single spaces, roughly most frequent first. */
const char *synth_common_words(void);
/* Frequent pieces as raw text (a leading space included where it belongs): suffixes,
 * prefixes, contractions, punctuation, whitespace runs and digits; *n gets their count. */
const char *const *synth_common_pieces(size_t *n);

#endif
