/* Test oracle: an exact float64 forward pass of the llama family (llama, qwen2 biases,
 * qwen3 head norms) over a GGUF file's dequantized weights, recomputing every position
 * from scratch with no cache. Slow and plain on purpose: tests compare the engine to it. */
#ifndef TESTS_ORACLE_H
#define TESTS_ORACLE_H

#include <stdint.h>

#include "gguf/gguf.h"
#include "model/model.h"

/* Logits of every position of tokens[n]: malloc'd [n][hp->n_vocab] floats. Weights are
 * read by their GGUF names from f; hp gives sizes and RoPE/norm settings. */
float *oracle_logits(const gguf_file *f, const model_hparams *hp, const int32_t *tokens, int64_t n);

#endif
