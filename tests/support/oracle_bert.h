/* Test oracle: an exact float64 forward pass of the bert encoder over a GGUF file's
 * dequantized weights, for one input with bidirectional attention. Slow and plain on
 * purpose: tests compare the engine's embeddings to it. */
#ifndef TESTS_ORACLE_BERT_H
#define TESTS_ORACLE_BERT_H

#include <stdint.h>

#include "gguf/gguf.h"
#include "model/model.h"

/* Final hidden states of tokens[n] (positions 0..n-1, token type 0): malloc'd
 * [n][hp->n_embd] doubles. Weights are read by their GGUF names from f. */
double *oracle_bert_hidden(const gguf_file *f, const model_hparams *hp, const int32_t *tokens, int64_t n);

#endif
