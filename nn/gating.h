/* gating.h: top-k gating, the routing step of a mixture of experts (and of the SGT router's
 * block selection): router scores [..., E] -> the k best experts of each token and their gates.
 *
 *   indices  i32 [..., k]: the top-k scores, best first (ties: the lower index); no gradient
 *   hard     [..., E]: their 0/1 indicator; no gradient
 *   weights  [..., k]: the gate of each selected expert, differentiable in the scores:
 *     NN_GATE_SOFTMAX       softmax over all E scores, at the selected ones (Switch, GShard)
 *     NN_GATE_SOFTMAX_TOPK  softmax over the k selected scores only (Mixtral)
 *     NN_GATE_SIGMOID       sigmoid of each selected score (DeepSeek-V3's affinities)
 *     NN_GATE_STE           1 in value, gradient sigmoid'(score): the straight-through estimator
 *                           of the SGT router (dense = hard + sigmoid(s) - stopgrad(sigmoid(s)))
 *     NN_GATE_HARD          1, no gradient (the hard selection itself)
 *     renormalize: weights / their sum over the k (softmax and sigmoid; the others are ones)
 *   dense    [..., E]: the weights at their experts, 0 elsewhere (with NN_GATE_STE the full
 *            STE mask, whose gradient reaches every score), differentiable
 * An expert e's output for a token is then scaled by dense[..., e], or the k selected experts are
 * gathered by indices and scaled by weights. */
#ifndef SGT_NN_GATING_H
#define SGT_NN_GATING_H

#include "../autograd/tape.h"

typedef enum { NN_GATE_SOFTMAX, NN_GATE_SOFTMAX_TOPK, NN_GATE_SIGMOID, NN_GATE_STE, NN_GATE_HARD } nn_gate_norm;

typedef struct {
    sgt_tensor *indices; /* i32 [..., k] */
    sgt_tensor *weights; /* [..., k] */
    sgt_tensor *hard;    /* [..., E] */
    sgt_tensor *dense;   /* [..., E] */
} nn_gate;

nn_gate nn_topk_gate(sgt_ctx *c, sgt_tensor *scores, int64_t k, nn_gate_norm norm, bool renormalize);
/* The same with a selection bias [E] (or NULL): the top-k of scores + bias decide which experts,
 * the gates come from the scores alone, and the bias gets no gradient. DeepSeek-V3's
 * auxiliary-loss-free balancing nudges such a bias by the observed load (nn_router_balance). */
nn_gate nn_topk_gate_biased(sgt_ctx *c, sgt_tensor *scores, sgt_tensor *bias, int64_t k, nn_gate_norm norm,
                            bool renormalize);

/* The 0/1 top-k indicator of scores [..., E], no gradient; *indices (optional) gets the top-k. */
sgt_tensor *nn_topk_hard(sgt_ctx *c, sgt_tensor *scores, int64_t k, sgt_tensor **indices);
/* hard + sigmoid(s) - stopgrad(sigmoid(s)) for any 0/1 `hard`: hard in value, sigmoid' in gradient */
sgt_tensor *nn_ste_mask(sgt_ctx *c, sgt_tensor *hard, sgt_tensor *scores);

#endif
