/* decoder.h: batch-1 autoregressive decoding of a GPT with a device-resident KV cache, where each
 * new token costs one replay of a recorded step (a CUDA graph, tensor/graph.h) instead of a few
 * hundred kernel launches from the host.
 *
 * The step is made shape-static: the token id, its position and the key count live in device
 * memory (three i32, one host->device copy per token), the KV cache has a fixed size and
 * attention reads its valid length from memory (gpt_kv_set_static). The first step after the
 * prompt runs eagerly (it sizes the step arena, the scratch buffers and cuBLAS's choices), the
 * second is recorded and then replayed with every later token. On the CPU, or with use_graph off,
 * every step runs eagerly through the same static-shape path.
 *
 * It decodes with a snapshot of the model's settings at creation (the FFN path, attention kernel),
 * computing in the weights' own dtype: under bf16 mixed precision every step would otherwise
 * re-cast the f32 weights. Not thread-safe; it owns no weights: the model must outlive it. */
#ifndef SGT_MODELS_DECODER_H
#define SGT_MODELS_DECODER_H

#include "gpt.h"

typedef struct gpt_decoder gpt_decoder;

/* A decoder for up to max_len positions (prompt + generated) on the model's device. */
gpt_decoder *gpt_decoder_create(const gpt_model *m, int64_t max_len, bool use_graph);
void gpt_decoder_destroy(gpt_decoder *d);
/* Feeds the prompt (n >= 1 ids, in one eager forward) and returns the logits [V] of its last
 * position, in host memory owned by the decoder (valid until the next call). */
const float *gpt_decoder_prefill(gpt_decoder *d, const int32_t *ids, int64_t n);
/* Feeds one token at the next position and returns the logits [V] it predicts (as above). */
const float *gpt_decoder_step(gpt_decoder *d, int32_t token);
/* Positions filled so far, and whether the steps are being replayed from a recording. */
int64_t gpt_decoder_len(const gpt_decoder *d);
bool gpt_decoder_replaying(const gpt_decoder *d);

#endif
