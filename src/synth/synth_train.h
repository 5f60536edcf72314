/* BPE training of a generated vocabulary's first merges on the built-in English word list
 * (synth_train.c). */
#ifndef SYNTH_SYNTH_TRAIN_H
#define SYNTH_SYNTH_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/* Makes the token left+right; true with its id in *out, false when the vocabulary refuses it
 * (it exists already or is too long): the pair is then never proposed again. Symbols start
 * as byte token ids (id == byte value). */
typedef bool (*synth_merge_fn)(void *ctx, int32_t left, int32_t right, int32_t *out);

/* Makes up to budget merges (accepted by the merge function), most frequent pair first,
 * until every training entry is one token. NOMEM only. */
hearth_status synth_train_words(int64_t budget, synth_merge_fn merge, void *ctx, hearth_err *err);

#endif
