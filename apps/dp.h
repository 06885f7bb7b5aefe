/* dp.h: data parallelism over a parameter store: the gradients of every rank's share of the batch
 * averaged into one flat buffer, global-norm clipping, and ZeRO-1 (optimizer state sharded).
 *
 * Layout. The parameters (in store order) are split into `world` contiguous runs of about equal
 * size; rank r owns run r. The flat buffer holds world chunks of `chunk` floats (the largest run,
 * the rest padding), rank r's parameters packed at the start of chunk r:
 *
 *   flat  [ rank 0's params | pad ][ rank 1's params | pad ] ...      world x chunk floats
 *
 * One step, after every rank's backward (gradients summed over its micro-batches):
 *   1. pack all gradients into flat, reduce-scatter: chunk r = the sum over ranks (rank order)
 *   2. scale by 1/world (the mean), the global norm from every rank's chunk (sum of squares in
 *      f64, summed over ranks), clip the chunk
 *   3. ZeRO-0: all-gather the chunks back into every gradient; every rank runs the full AdamW.
 *      ZeRO-1: write the chunk into the owned gradients; AdamW updates the owned parameters only
 *      (its moments exist for those only: `owned` is a view store over them); then all-gather
 *      the parameters (dp_gather_params).
 * On the CPU the reduction is deterministic (dist.h). On CUDA with NCCL the flat buffers live on
 * the device and NCCL moves them (ZeRO-0: one all-reduce; the norm and clipping on the device);
 * otherwise device gradients are staged through host memory. `scratch` is a per-step context.
 *
 * Checkpoints keep the single-file format whatever the world size: dp_save_train_state gathers
 * the moment shards to rank 0, which writes; dp_load_train_state reads the full file on every
 * rank and keeps its shard, so a run resumes at another world size. */
#ifndef SGT_APPS_DP_H
#define SGT_APPS_DP_H

#include "../nn/optim.h"
#include "dist.h"

typedef struct dp_sync {
    dist_ctx *d;
    nn_params *p;        /* the full store (every rank holds every parameter) */
    nn_params owned;     /* a view of p: this rank's run of parameters (ZeRO-1's optimizer covers it) */
    int zero;            /* 0 or 1 */
    int *first;          /* [world + 1]: rank r owns parameters first[r] .. first[r+1]-1 */
    int64_t *off;        /* [p->n]: offset of each parameter within its owner's chunk */
    int64_t chunk;       /* floats per rank in the flat buffer */
    float *flat, *mine, *scratch;   /* host: world*chunk, chunk, world*chunk */
    float *dflat, *dmine;           /* device (NCCL path): world*chunk, chunk; else NULL */
    bool nccl;
} dp_sync;

/* Checks that every parameter is f32 and contiguous and lays the buffers out. nccl: use the NCCL
 * path (the store lives on CUDA and dist_nccl_init succeeded). Returns 0 or -1 with err. */
int dp_init(dp_sync *s, dist_ctx *d, nn_params *p, int zero, bool nccl, char *err, size_t errn);
void dp_free(dp_sync *s);
/* Steps 1-3 above; returns the global gradient norm before clipping (max_norm <= 0: no clipping).
 * A non-finite norm leaves the gradients as they are, as nn_clip_grad_norm does. */
double dp_reduce_clip(dp_sync *s, double max_norm, sgt_ctx *scratch);
/* ZeRO-1, after the owned update: every rank gets every parameter. */
void dp_gather_params(dp_sync *s);
/* Train state of the whole store, opt covering s->owned (ZeRO-1) or the whole store (ZeRO-0).
 * Save: every rank calls it, rank 0 writes `path`. scratch: a per-step context for temporaries
 * (reset it after). */
int dp_save_train_state(dp_sync *s, const nn_adamw *opt, sgt_ctx *scratch, const char *path, const char *state_json,
                        char *err, size_t errn);
int dp_load_train_state(dp_sync *s, nn_adamw *opt, sgt_ctx *scratch, const char *path, char **state_json_out,
                        char *err, size_t errn);

#endif
