/* optim.h: the AdamW optimizer over a parameter store, global gradient-norm clipping, and the
 * learning-rate schedule (linear warmup, then cosine decay).
 *
 * The optimizer's moments live in the store's persistent arena, one (m, v) pair per parameter in
 * the order of p->items, so checkpoints can name them after the parameters. Weight decay is
 * decoupled (AdamW) and applied only to parameters whose `decay` flag is set; the modules clear it
 * for norms, biases and embeddings.
 *
 * Gradient accumulation needs nothing here: the trainer runs n micro-batches without zeroing the
 * gradients in between (they accumulate, +=) and scales each micro-batch loss by 1/n, then clips
 * and steps once. */
#ifndef SGT_NN_OPTIM_H
#define SGT_NN_OPTIM_H

#include "params.h"

typedef struct nn_adamw {
    nn_params *params;
    sgt_tensor **m, **v;  /* [n] moments, each the shape and dtype of params->items[i].t */
    int n;                /* parameters covered (params->n at creation) */
    double beta1, beta2, eps, weight_decay;
    int64_t step;         /* updates applied so far; the next update uses step + 1 for bias correction */
} nn_adamw;

/* Zeroed moments for every parameter registered so far (register all parameters first). */
nn_adamw *nn_adamw_create(nn_params *p, double beta1, double beta2, double eps, double weight_decay);
void nn_adamw_destroy(nn_adamw *o);
/* One update of every parameter from its gradient (ag_grad), with t = ++o->step:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )     wd = 0 where !decay
 * Gradients are left as they are (the trainer zeroes them). */
void nn_adamw_step(nn_adamw *o, double lr);
static inline int64_t nn_adamw_get_step(const nn_adamw *o) { return o->step; }

/* sqrt(sum over all parameters of sum(g^2)), accumulated in f64. Temporaries come from `scratch`
 * (a per-step context) and are released before returning; nothing is recorded on a tape. */
double nn_grad_norm(nn_params *p, sgt_ctx *scratch);
/* Scales every gradient by max_norm / norm when norm > max_norm, so that the global norm becomes
 * max_norm. Returns the norm before clipping. A non-finite norm (NaN or Inf) is returned as it is
 * and the gradients are left untouched: the caller decides (the trainer reports an error).
 * max_norm <= 0 disables clipping (the norm is still computed and returned). */
double nn_clip_grad_norm(nn_params *p, sgt_ctx *scratch, double max_norm);

/* Learning rate at step s (0-based), with W = warmup and T = total:
 *   s < W        : max_lr * (s + 1) / W                       (linear: s=0 -> max_lr/W, s=W-1 -> max_lr)
 *   W <= s <= T  : min_lr + (max_lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2
 *                                                               (s=W -> max_lr, midway -> (max+min)/2,
 *                                                                s=T -> min_lr)
 *   s > T        : min_lr
 * W = 0 means no warmup; when T <= W every step from W on gets min_lr. Negative s counts as 0. */
typedef struct {
    double max_lr, min_lr;
    int64_t warmup, total;
} nn_lr_schedule;

double nn_lr_at(const nn_lr_schedule *s, int64_t step);

#endif
