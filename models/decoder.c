/* decoder.c: batch-1 decoding with a static-shape step and CUDA-graph replay (see decoder.h). */
#include "decoder.h"

#include <stdlib.h>
#include <string.h>

#include "../tensor/bf16.h"
#include "../tensor/graph.h"

struct gpt_decoder {
    gpt_model model;           /* the model as created with, computing in its weights' dtype */
    const gpt_model *m;        /* &model */
    sgt_device dev;
    bool use_graph;
    sgt_arena *kv_arena, *step_arena;
    sgt_ctx kc, c;
    gpt_kv kv;
    sgt_tensor *io;            /* i32 [3] on the device: token, position, key count */
    sgt_tensor *tok, *pos, *len; /* its elements as [1, 1], [1], [1] views */
    sgt_tensor *logits;        /* [1, 1, V] of the recorded step (its arena is never reset after) */
    sgt_graph *graph;
    int64_t steps;             /* static steps run so far (0: the next one is the eager warm-up) */
    float *host;               /* [V] */
    void *staging;             /* [V] in the logits' dtype */
};

gpt_decoder *gpt_decoder_create(const gpt_model *m, int64_t max_len, bool use_graph) {
    gpt_decoder *d = calloc(1, sizeof *d);
    SGT_CHECK(d, "decoder: out of host memory");
    /* A snapshot (the same weights) that computes in the weights' dtype: with bf16 compute every
     * step would re-cast the f32 weights (read 4 + write 2 + read 2 bytes a weight, not 4). */
    d->model = *m;
    d->model.cfg.compute = m->params->dtype;
    d->m = &d->model;
    d->dev = m->params->ctx.device;
    d->use_graph = use_graph;
    d->kv_arena = sgt_arena_create("decoder-kv", d->dev, 0, 0);
    d->step_arena = sgt_arena_create("decoder-step", d->dev, 0, 0);
    d->kc = (sgt_ctx){.arena = d->kv_arena, .device = d->dev};
    d->c = (sgt_ctx){.arena = d->step_arena, .device = d->dev};
    gpt_kv_init(&d->kv, &d->kc, d->m, 1, max_len);
    d->io = sgt_zeros(&d->kc, SGT_I32, SGT_SHAPE(3));
    d->tok = sgt_reshape(&d->kc, sgt_narrow(&d->kc, d->io, 0, 0, 1), SGT_SHAPE(1, 1));
    d->pos = sgt_narrow(&d->kc, d->io, 0, 1, 1);
    d->len = sgt_narrow(&d->kc, d->io, 0, 2, 1);
    const size_t V = (size_t)m->cfg.vocab;
    d->host = malloc(sizeof(float) * V);
    d->staging = malloc(sizeof(double) * V);
    SGT_CHECK(d->host && d->staging, "decoder: out of host memory for %zu logits", V);
    return d;
}

void gpt_decoder_destroy(gpt_decoder *d) {
    if (!d) return;
    sgt_graph_destroy(d->graph);
    sgt_arena_destroy(d->step_arena);
    sgt_arena_destroy(d->kv_arena);
    free(d->host);
    free(d->staging);
    free(d);
}

/* the last position's logits [.., V] to host f32 */
static const float *read_logits(gpt_decoder *d, sgt_tensor *lg) {
    const int64_t V = d->m->cfg.vocab;
    sgt_tensor row = *lg; /* the last row only: [V] (a struct on the stack: nothing allocated per token) */
    row.ndim = 1;
    row.shape[0] = V;
    row.stride[0] = lg->stride[lg->ndim - 1];
    row.offset = lg->offset + (sgt_numel(lg) / V - 1) * lg->stride[lg->ndim - 2];
    sgt_copy_to_host(&row, d->staging);
    if (lg->dtype == SGT_F32) memcpy(d->host, d->staging, sizeof(float) * (size_t)V);
    else if (lg->dtype == SGT_BF16)
        for (int64_t i = 0; i < V; i++) d->host[i] = sgt_bf16_to_f32(((const uint16_t *)d->staging)[i]);
    else
        for (int64_t i = 0; i < V; i++) d->host[i] = (float)((const double *)d->staging)[i];
    return d->host;
}

const float *gpt_decoder_prefill(gpt_decoder *d, const int32_t *ids, int64_t n) {
    SGT_CHECK(n >= 1 && d->kv.len + n <= d->kv.layer[0].max_len, "decoder: %lld prompt ids at position %lld exceed %lld positions",
              (long long)n, (long long)d->kv.len, (long long)d->kv.layer[0].max_len);
    for (int64_t i = 0; i < n; i++)
        SGT_CHECK(ids[i] >= 0 && ids[i] < d->m->cfg.vocab, "decoder: prompt id %d at %lld is outside the vocabulary",
                  ids[i], (long long)i);
    SGT_CHECK(!d->graph && !d->steps, "decoder: prefill after single-token steps is not supported");
    sgt_arena_reset(d->step_arena);
    gpt_kv_set_static(&d->kv, d->m, NULL, NULL);
    gpt_forward_opts o = {.kv = &d->kv, .last_only = true};
    gpt_output out = gpt_forward(&d->c, d->m, sgt_from_i32(&d->c, SGT_SHAPE(1, n), ids), &o);
    return read_logits(d, out.logits);
}

const float *gpt_decoder_step(gpt_decoder *d, int32_t token) {
    SGT_CHECK(token >= 0 && token < d->m->cfg.vocab, "decoder: token %d is outside the vocabulary of %lld", token,
              (long long)d->m->cfg.vocab);
    SGT_CHECK(d->kv.len < d->kv.layer[0].max_len, "decoder: all %lld positions are used", (long long)d->kv.layer[0].max_len);
    SGT_CHECK(d->kv.len < d->m->cfg.ctx_len, "decoder: position %lld exceeds the context length %lld",
              (long long)d->kv.len, (long long)d->m->cfg.ctx_len);
    /* the inputs change by value only: token, position, key count */
    const int32_t in[3] = {token, (int32_t)d->kv.len, (int32_t)(d->kv.len + 1)};
    sgt_copy_from_host(d->io, in);
    if (!d->graph) {
        sgt_arena_reset(d->step_arena);
        gpt_kv_set_static(&d->kv, d->m, d->pos, d->len);
        /* step 0 runs eagerly (warm-up); step 1 is recorded, then launched like every later one */
        const bool record = d->use_graph && d->steps >= 1 && sgt_graph_begin(d->dev);
        gpt_forward_opts o = {.kv = &d->kv, .last_only = true};
        d->logits = gpt_forward(&d->c, d->m, d->tok, &o).logits;
        if (record) {
            d->graph = sgt_graph_end();
            sgt_graph_launch(d->graph);
        }
    } else {
        sgt_graph_launch(d->graph);
    }
    d->kv.len++;
    d->steps++;
    return read_logits(d, d->logits);
}

int64_t gpt_decoder_len(const gpt_decoder *d) { return d->kv.len; }
bool gpt_decoder_replaying(const gpt_decoder *d) { return d->graph != NULL; }
