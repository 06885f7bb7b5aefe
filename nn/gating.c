/* gating.c: top-k gating (see gating.h). */
#include "gating.h"

sgt_tensor *nn_topk_hard(sgt_ctx *c, sgt_tensor *scores, int64_t k, sgt_tensor **indices) {
    sgt_tensor *l = ag_detach(c, scores), *vals, *idx;
    sgt_topk(c, l, (int)k, &vals, &idx);
    sgt_tensor *ones = sgt_full(c, l->dtype, idx->ndim, idx->shape, 1.0);
    if (indices) *indices = idx;
    return sgt_scatter_add_last(c, ones, idx, l->shape[l->ndim - 1]);
}

sgt_tensor *nn_ste_mask(sgt_ctx *c, sgt_tensor *hard, sgt_tensor *scores) {
    sgt_tensor *s = sgt_sigmoid(c, scores);
    /* s - stopgrad(s) is exactly 0 in the forward pass (same value twice), so the mask is exactly
     * `hard`; its gradient with respect to s is 1. */
    return sgt_add(c, hard, sgt_sub(c, s, ag_detach(c, s)));
}

nn_gate nn_topk_gate(sgt_ctx *c, sgt_tensor *scores, int64_t k, nn_gate_norm norm, bool renormalize) {
    return nn_topk_gate_biased(c, scores, NULL, k, norm, renormalize);
}

nn_gate nn_topk_gate_biased(sgt_ctx *c, sgt_tensor *scores, sgt_tensor *bias, int64_t k, nn_gate_norm norm,
                            bool renormalize) {
    char b[96];
    SGT_CHECK(sgt_dtype_is_float(scores->dtype) && scores->ndim >= 1, "top-k gate: scores %s must be float [..., E]",
              sgt_shape_str(scores, b, sizeof b));
    const int64_t E = scores->shape[scores->ndim - 1];
    SGT_CHECK(k >= 1 && k <= E, "top-k gate: k = %lld is outside 1..%lld experts", (long long)k, (long long)E);
    SGT_CHECK(norm >= NN_GATE_SOFTMAX && norm <= NN_GATE_HARD, "top-k gate: unknown normalisation %d", (int)norm);
    if (bias) {
        char bb[96];
        SGT_CHECK(bias->ndim == 1 && bias->shape[0] == E && bias->dtype == scores->dtype,
                  "top-k gate: selection bias %s must be [%lld] of the scores' dtype", sgt_shape_str(bias, bb, sizeof bb),
                  (long long)E);
    }
    nn_gate g;
    /* nn_topk_hard detaches its input: the bias (and the sum) gets no gradient */
    g.hard = nn_topk_hard(c, bias ? sgt_add(c, ag_detach(c, scores), ag_detach(c, bias)) : scores, k, &g.indices);
    if (norm == NN_GATE_STE || norm == NN_GATE_HARD) { /* ones in value: renormalising would change nothing */
        g.dense = norm == NN_GATE_STE ? nn_ste_mask(c, g.hard, scores) : g.hard;
        g.weights = sgt_gather_last(c, g.dense, g.indices);
        return g;
    }
    sgt_tensor *w;
    if (norm == NN_GATE_SOFTMAX) w = sgt_gather_last(c, sgt_softmax(c, scores), g.indices);
    else if (norm == NN_GATE_SOFTMAX_TOPK) w = sgt_softmax(c, sgt_gather_last(c, scores, g.indices));
    else w = sgt_sigmoid(c, sgt_gather_last(c, scores, g.indices));
    if (renormalize && norm != NN_GATE_SOFTMAX_TOPK) w = sgt_div(c, w, sgt_sum(c, w, -1, true));
    g.weights = w;
    g.dense = sgt_scatter_add_last(c, w, g.indices, E);
    return g;
}
