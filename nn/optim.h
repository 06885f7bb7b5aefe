/* optim.h: the optimizers over a parameter store (AdamW, SGD with momentum), parameter groups,
 * global gradient-norm clipping, and the learning-rate schedules (linear warmup, then cosine,
 * linear, constant or warmup-stable-decay). AdamW and clipping are in optim.c, SGD in sgd.c, the
 * schedules in schedule.c.
 *
 * The optimizers' state lives in the store's persistent arena, per parameter in the order of
 * p->items (AdamW: an (m, v) pair, which checkpoints name after the parameters; SGD: a momentum
 * buffer). Weight decay is decoupled for AdamW, coupled L2 for SGD (as in PyTorch), and applied
 * only to parameters whose `decay` flag is set; the modules clear it for norms, biases and
 * embeddings.
 *
 * Gradient accumulation needs nothing here: the trainer runs n micro-batches without zeroing the
 * gradients in between (they accumulate, +=) and scales each micro-batch loss by 1/n, then clips
 * and steps once. */
#ifndef SGT_NN_OPTIM_H
#define SGT_NN_OPTIM_H

#include "params.h"

/* Parameter groups: a parameter whose full name starts with `prefix` ("" matches every one) takes
 * the step's lr times lr_scale and the weight decay weight_decay in place of the optimizer's. The
 * first matching group wins; a parameter no group matches keeps lr_scale 1 and the optimizer's
 * weight decay. Both fields are taken as given (lr_scale 0 freezes the group). The `decay` flag
 * still gates the decay: a norm, bias or embedding is never decayed, whatever its group says. A
 * group that matches no parameter (or only ones an earlier group took) is an error: a mistyped
 * prefix. The optimizer copies the groups at creation; the caller's array and strings need not
 * outlive that call.
 *
 *   nn_param_group g[] = {{"layers.0.", 0.1, 0.0}, {"lm_head.", 1.0, 0.3}};
 *   nn_adamw *o = nn_adamw_create_groups(P, 0.9, 0.95, 1e-8, 0.1, g, 2);           */
typedef struct {
    const char *prefix;
    double lr_scale, weight_decay;
} nn_param_group;

/* The groups as an optimizer holds them: its own copies, and each parameter's group (-1: none). */
typedef struct {
    nn_param_group *groups; /* [n], prefixes owned */
    int n;
    int *of;                /* [params->n at creation] */
} nn_group_table;

/* Resolves every parameter of p against groups[0..n) (groups may be NULL when n == 0); `who`
 * names the optimizer in errors. */
void nn_group_table_init(nn_group_table *t, const nn_params *p, const nn_param_group *groups, int n, const char *who);
void nn_group_table_free(nn_group_table *t);
/* Parameter i's lr multiplier and weight decay (default_wd where no group matched; 0 where
 * !decay). */
double nn_group_lr_scale(const nn_group_table *t, int i);
double nn_group_weight_decay(const nn_group_table *t, const nn_params *p, int i, double default_wd);

/* An optimizer's per-parameter state: a malloc'd list of p->n tensors, each zeros shaped like its
 * parameter in the store's persistent arena (all NULL when !alloc); the caller frees the list,
 * the bytes belong to the arena. `what` names the list in the out-of-memory error. */
sgt_tensor **nn_state_like_params(nn_params *p, bool alloc, const char *what);

/* A copy of c that records nothing (no observer): for the optimizers' in-place writes. */
sgt_ctx nn_quiet_ctx(const sgt_ctx *c);

typedef struct nn_adamw {
    nn_params *params;
    sgt_tensor **m, **v;  /* [n] moments, each the shape and dtype of params->items[i].t */
    int n;                /* parameters covered (params->n at creation) */
    double beta1, beta2, eps, weight_decay;
    int64_t step;         /* updates applied so far; the next update uses step + 1 for bias correction */
    nn_group_table groups;
} nn_adamw;

/* Zeroed moments for every parameter registered so far (register all parameters first). */
nn_adamw *nn_adamw_create(nn_params *p, double beta1, double beta2, double eps, double weight_decay);
/* The same with parameter groups (see nn_param_group; groups may be NULL when n == 0). */
nn_adamw *nn_adamw_create_groups(nn_params *p, double beta1, double beta2, double eps, double weight_decay,
                                 const nn_param_group *groups, int n);
void nn_adamw_destroy(nn_adamw *o);
/* One update of every parameter from its gradient (ag_grad), with t = ++o->step and, per
 * parameter, lr' = lr * lr_scale and wd its weight decay (its group's, else o->weight_decay; 0
 * where !decay):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr' * ( (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd * p )
 * Gradients are left as they are (the trainer zeroes them). */
void nn_adamw_step(nn_adamw *o, double lr);
static inline int64_t nn_adamw_get_step(const nn_adamw *o) { return o->step; }

/* SGD with momentum, as torch.optim.SGD (dampening 0). Per parameter, with lr' = lr * lr_scale
 * and wd its weight decay (its group's, else o->weight_decay; 0 where !decay):
 *   g = grad + wd * p                      L2 decay, coupled (PyTorch's SGD weight_decay), not AdamW's
 *   buf = mu * buf + g                     buf starts at 0, so after step 1 buf = g (as PyTorch)
 *   d = nesterov ? g + mu * buf : buf      (mu = 0: d = g, no buffer)
 *   p -= lr' * d
 * The buffers live in the store's persistent arena, one per parameter in p->items order, only
 * when mu > 0. The step's temporaries are taken from the same arena and given back (rewound)
 * before it returns. Works on any device the tensor ops do (elementwise ops only). */
typedef struct nn_sgd {
    nn_params *params;
    sgt_tensor **buf;     /* [n] momentum buffers (NULL entries when momentum == 0) */
    int n;                /* parameters covered (params->n at creation) */
    double momentum, weight_decay;
    bool nesterov;
    int64_t step;         /* updates applied so far */
    nn_group_table groups;
} nn_sgd;

/* momentum >= 0; nesterov needs momentum > 0 (PyTorch's rule). Register every parameter first. */
nn_sgd *nn_sgd_create(nn_params *p, double momentum, bool nesterov, double weight_decay,
                      const nn_param_group *groups, int n);
void nn_sgd_destroy(nn_sgd *o);
void nn_sgd_step(nn_sgd *o, double lr);

/* sqrt(sum over all parameters of sum(g^2)), accumulated in f64. Temporaries come from `scratch`
 * (a per-step context) and are released before returning; nothing is recorded on a tape. */
double nn_grad_norm(nn_params *p, sgt_ctx *scratch);
/* Scales every gradient by max_norm / norm when norm > max_norm, so that the global norm becomes
 * max_norm. Returns the norm before clipping. A non-finite norm (NaN or Inf) is returned as it is
 * and the gradients are left untouched: the caller decides (the trainer reports an error).
 * max_norm <= 0 disables clipping (the norm is still computed and returned). */
double nn_clip_grad_norm(nn_params *p, sgt_ctx *scratch, double max_norm);

/* Learning-rate schedules. Every kind starts with the same linear warmup; with W = warmup,
 * T = total and s the 0-based step (negative s counts as 0):
 *   s < W : max_lr * (s + 1) / W                       (s=0 -> max_lr/W, s=W-1 -> max_lr)
 * then, by kind:
 *   COSINE (the zero value), for W <= s <= T:
 *           min_lr + (max_lr - min_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2
 *                                                      (s=W -> max_lr, midway -> (max+min)/2, s=T -> min_lr)
 *   LINEAR, for W <= s <= T: max_lr + (min_lr - max_lr) * (s - W) / (T - W)
 *   CONSTANT: max_lr for every s >= W (min_lr and T are not used)
 *   WSD (warmup-stable-decay), with D = T - round(decay_frac * T) clamped to [W, T]:
 *           W <= s <= D: max_lr;  D <= s <= T: max_lr + (min_lr - max_lr) * (s - D) / (T - D)
 *           decay_frac in (0, 1] is the fraction of all T steps spent decaying; 0 (the zero
 *           value) means NN_WSD_DECAY_FRAC.
 *   s > T (all but CONSTANT): min_lr. W = 0 means no warmup; when T <= W (or, for WSD, D = T)
 *   every step from W (D) on gets min_lr.
 *
 * nn_lr_schedule is the cosine schedule, kept as it was (four fields) so that positional
 * initialisers {max, min, warmup, total} still compile under -Wextra; nn_lr_plan is the same with
 * a kind (zero value: cosine) and WSD's decay fraction. */
typedef enum { NN_LR_COSINE = 0, NN_LR_CONSTANT, NN_LR_LINEAR, NN_LR_WSD } nn_lr_kind;

#define NN_WSD_DECAY_FRAC 0.2

typedef struct {
    double max_lr, min_lr;
    int64_t warmup, total;
} nn_lr_schedule;

typedef struct {
    double max_lr, min_lr;
    int64_t warmup, total;
    nn_lr_kind kind;
    double decay_frac;    /* WSD only */
} nn_lr_plan;

double nn_lr_plan_at(const nn_lr_plan *s, int64_t step);
/* the cosine schedule: nn_lr_plan_at of the same numbers with kind NN_LR_COSINE */
double nn_lr_at(const nn_lr_schedule *s, int64_t step);
/* "cosine", "constant", "linear" or "wsd" into *out: 0, or -1 with a one-line message in err
 * naming the string and the choices (kind unchanged). */
int nn_lr_kind_parse(const char *name, nn_lr_kind *out, char *err, size_t errn);
const char *nn_lr_kind_name(nn_lr_kind k); /* the parse name; "?" for a value outside the enum */

#endif
