/* rules.c: the backward rule of every op, one small function each, built from the forward ops
 * (plus the fused backward kernels for the hot paths: unary, softmax, cross-entropy, norms).
 * `dout[i]` is the gradient of output i (NULL if none reached it). */
#include "custom.h"
#include "tape.h"

#define RULE(name) static void name(sgt_ctx *c, const sgt_opcall *call, sgt_tensor *const *dout)
#define X(i) (call->src[i])
#define Y(i) (call->dst[i])
#define G (dout[0])

/* ---- views and copies ---- */

RULE(reshape_bwd) { ag_accum_owned(c, X(0), sgt_reshape(c, G, X(0)->ndim, X(0)->shape)); }

RULE(permute_bwd) {
    int inv[SGT_MAX_DIMS];
    for (int i = 0; i < X(0)->ndim; i++) inv[call->ip[i]] = i;
    ag_accum_owned(c, X(0), sgt_permute(c, G, inv));
}

RULE(narrow_bwd) {
    if (!ag_requires_grad(X(0))) return;
    sgt_tensor *buf = ag_grad_buffer(c, X(0));
    sgt_add_into(c, sgt_narrow(c, buf, (int)call->ip[0], call->ip[1], call->ip[2]), G);
}

RULE(expand_bwd) { ag_accum_owned(c, X(0), sgt_sum_to(c, G, X(0)->ndim, X(0)->shape)); }

RULE(copy_bwd) { ag_accum_owned(c, X(0), G); }

RULE(cast_bwd) { ag_accum_owned(c, X(0), sgt_cast(c, G, X(0)->dtype)); }

/* ---- elementwise ---- */

/* sums g down to x's (broadcast) shape; owned: g is for x alone (see ag_accum_owned) */
static void accum_to(sgt_ctx *c, sgt_tensor *x, sgt_tensor *g, bool owned) {
    if (!ag_requires_grad(x)) return;
    sgt_tensor *r = sgt_sum_to(c, g, x->ndim, x->shape);
    if (owned || r != g) ag_accum_owned(c, x, r); /* a reduction is fresh anyway */
    else ag_accum(c, x, r);
}

RULE(add_bwd) { /* both inputs get G: the second one copies it */
    accum_to(c, X(0), G, true);
    accum_to(c, X(1), G, false);
}

RULE(sub_bwd) {
    accum_to(c, X(0), G, true);
    if (ag_requires_grad(X(1))) accum_to(c, X(1), sgt_neg(c, G), true);
}

RULE(mul_bwd) {
    if (ag_requires_grad(X(0))) accum_to(c, X(0), sgt_mul(c, G, X(1)), true);
    if (ag_requires_grad(X(1))) accum_to(c, X(1), sgt_mul(c, G, X(0)), true);
}

RULE(div_bwd) {
    if (ag_requires_grad(X(0))) accum_to(c, X(0), sgt_div(c, G, X(1)), true);
    if (ag_requires_grad(X(1))) accum_to(c, X(1), sgt_neg(c, sgt_div(c, sgt_mul(c, G, Y(0)), X(1))), true);
}

/* dropout is linear in x: its backward is the same mask and scale on G, regenerated from the seed */
RULE(dropout_bwd) {
    ag_accum_owned(c, X(0), sgt_dropout(c, G, call->fp[1], (uint64_t)call->ip[0], (uint64_t)call->ip[1]));
}

RULE(unary_bwd) { ag_accum_owned(c, X(0), sgt_unary_bwd(c, call->op, call->fp[0], X(0), Y(0), G)); }

/* ---- reductions ---- */

/* the output gradient, reshaped with the reduced dims kept as 1 and broadcast to x's shape */
static sgt_tensor *spread(sgt_ctx *c, const sgt_opcall *call, sgt_tensor *g) {
    const sgt_tensor *x = X(0);
    int64_t kshape[SGT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) kshape[d] = (call->ip[0] & (1u << d)) ? 1 : x->shape[d];
    sgt_tensor *gk = sgt_reshape(c, g, x->ndim, kshape);
    return sgt_expand(c, gk, x->ndim, x->shape);
}

RULE(sum_bwd) { ag_accum(c, X(0), spread(c, call, G)); }

RULE(mean_bwd) {
    double n = (double)sgt_numel(X(0)) / (double)(sgt_numel(Y(0)) ? sgt_numel(Y(0)) : 1);
    ag_accum_owned(c, X(0), sgt_mul_scalar(c, spread(c, call, G), 1.0 / n));
}

/* ties share the gradient equally */
RULE(max_bwd) {
    sgt_tensor *hit = sgt_cmp(c, SGT_CMP_EQ, X(0), spread(c, call, Y(0)));
    sgt_tensor *cnt = sgt_sum_dims(c, hit, (uint32_t)call->ip[0], true);
    sgt_tensor *share = sgt_div(c, hit, cnt);
    ag_accum_owned(c, X(0), sgt_mul(c, share, spread(c, call, G)));
}

/* ---- softmax, matmul ---- */

RULE(softmax_bwd) { ag_accum_owned(c, X(0), sgt_softmax_bwd(c, Y(0), G, call->op == SGT_OP_LOG_SOFTMAX)); }

RULE(matmul_bwd) {
    sgt_tensor *a = X(0), *b = X(1);
    const bool ta = call->ip[0], tb = call->ip[1];
    if (ag_requires_grad(a)) {
        sgt_tensor *da = ta ? sgt_matmul(c, b, G, tb, true) : sgt_matmul(c, G, b, false, !tb);
        accum_to(c, a, da, true);
    }
    if (ag_requires_grad(b)) {
        sgt_tensor *db;
        if (b->ndim == 2 && a->ndim > 2 && !ta) {
            /* a Linear layer: fold the batch into rows, one GEMM, no batch-sized temporary */
            int64_t K = a->shape[a->ndim - 1], N = G->shape[G->ndim - 1];
            sgt_tensor *a2 = sgt_reshape(c, a, SGT_SHAPE(-1, K)), *g2 = sgt_reshape(c, G, SGT_SHAPE(-1, N));
            db = tb ? sgt_matmul(c, g2, a2, true, false) : sgt_matmul(c, a2, g2, true, false);
        } else {
            db = tb ? sgt_matmul(c, G, a, true, ta) : sgt_matmul(c, a, G, !ta, false);
        }
        accum_to(c, b, db, true);
    }
}

/* ---- indexing ---- */

RULE(embedding_bwd) {
    if (!ag_requires_grad(X(0))) return;
    sgt_index_add_rows(c, ag_grad_buffer(c, X(0)), X(1), G);
}

RULE(topk_bwd) { ag_accum_owned(c, X(0), sgt_scatter_add_last(c, G, Y(1), X(0)->shape[X(0)->ndim - 1])); }

RULE(gather_last_bwd) { ag_accum_owned(c, X(0), sgt_scatter_add_last(c, G, X(1), X(0)->shape[X(0)->ndim - 1])); }

RULE(scatter_add_last_bwd) { ag_accum_owned(c, X(0), sgt_gather_last(c, G, X(1))); }

RULE(concat_bwd) {
    int d = (int)call->ip[0];
    int64_t at = 0;
    for (int i = 0; i < call->nsrc; i++) {
        int64_t len = X(i)->shape[d];
        if (ag_requires_grad(X(i))) ag_accum(c, X(i), sgt_narrow(c, G, d, at, len));
        at += len;
    }
}

/* ---- selection ---- */

RULE(where_bwd) {
    sgt_tensor *zero = sgt_scalar(c, G->dtype, 0.0);
    if (ag_requires_grad(X(1))) accum_to(c, X(1), sgt_where(c, X(0), G, zero), true);
    if (ag_requires_grad(X(2))) accum_to(c, X(2), sgt_where(c, X(0), zero, G), true);
}

RULE(masked_fill_bwd) { ag_accum_owned(c, X(0), sgt_masked_fill(c, G, X(1), 0.0)); }

/* ---- fused losses and norms ---- */

RULE(cross_entropy_bwd) {
    ag_accum_owned(c, X(0), sgt_cross_entropy_bwd(c, X(0), X(1), Y(1), G, (int32_t)call->ip[0], call->ip[1]));
}

RULE(rmsnorm_bwd) {
    sgt_tensor *dx, *dw;
    sgt_rmsnorm_bwd(c, X(0), X(1), Y(1), G, &dx, &dw);
    ag_accum_owned(c, X(0), dx);
    ag_accum_owned(c, X(1), dw);
}

RULE(layernorm_bwd) {
    sgt_tensor *dx, *dw, *db;
    sgt_layernorm_bwd(c, X(0), X(1), Y(1), Y(2), G, &dx, &dw, &db);
    ag_accum_owned(c, X(0), dx);
    ag_accum_owned(c, X(1), dw);
    ag_accum_owned(c, X(2), db);
}

/* fused attention: the probabilities are recomputed from q, k and the saved log-sum-exp */
RULE(attention_bwd) {
    SGT_CHECK(call->nsrc == 3, "attention with a device-held key count (decoding) has no backward");
    if (!ag_requires_grad(X(0)) && !ag_requires_grad(X(1)) && !ag_requires_grad(X(2))) return;
    sgt_tensor *dq, *dk, *dv;
    sgt_attention_bwd_ex(c, X(0), X(1), X(2), Y(0), Y(1), G, call->fp[0], !call->ip[0], &dq, &dk, &dv);
    ag_accum_owned(c, X(0), dq);
    ag_accum_owned(c, X(1), dk);
    ag_accum_owned(c, X(2), dv);
}

RULE(swiglu_bwd) {
    const bool masked = call->nsrc == 3;
    sgt_tensor *dg, *du, *dm = NULL;
    sgt_swiglu_bwd(c, X(0), X(1), masked ? X(2) : NULL, G, call->ip[0], &dg, &du, masked ? &dm : NULL);
    ag_accum_owned(c, X(0), dg);
    ag_accum_owned(c, X(1), du);
    if (masked) ag_accum_owned(c, X(2), dm);
}

/* the skipping block-sparse FFN: gradients reach x, the three weights (selected blocks only) and
 * the mask values at the selected blocks (the STE's path to the router) */
RULE(bsparse_swiglu_bwd) {
    sgt_tensor *dx, *dwg, *dwu, *dwd, *dm;
    sgt_bsparse_swiglu_bwd(c, X(0), X(1), X(2), X(3), X(4), X(5), Y(1), Y(2), G, call->ip[0], &dx, &dwg, &dwu, &dwd,
                           &dm);
    ag_accum_owned(c, X(0), dx);
    ag_accum_owned(c, X(1), dwg);
    ag_accum_owned(c, X(2), dwu);
    ag_accum_owned(c, X(3), dwd);
    ag_accum_owned(c, X(5), dm);
}

/* a custom op (custom.h): the user's backward, its results accumulated into the inputs' gradients */
RULE(custom_bwd) {
    const ag_custom_op *op = call->custom_ext;
    sgt_tensor *dy[SGT_MAX_DST] = {0}, *din[SGT_MAX_SRC] = {0};
    for (int j = 0; j < call->ndst; j++)
        if (sgt_dtype_is_float(Y(j)->dtype))
            dy[j] = dout[j] ? dout[j] : sgt_zeros(c, Y(j)->dtype, Y(j)->ndim, Y(j)->shape);
    op->backward(c, call->nsrc, call->src, call->ndst, call->dst, dy, call->custom_user, din);
    for (int i = 0; i < call->nsrc; i++) {
        if (!din[i] || !ag_requires_grad(X(i))) continue;
        char b0[96], b1[96];
        SGT_CHECK(sgt_same_shape(din[i], X(i)) && din[i]->dtype == X(i)->dtype,
                  "custom op '%s': the backward's gradient of input %d is %s, the input is %s", op->fwd.name, i,
                  sgt_shape_str(din[i], b0, sizeof b0), sgt_shape_str(X(i), b1, sizeof b1));
        ag_accum(c, X(i), din[i]); /* a copy where it starts the gradient: the backward may return dout itself */
    }
}

#define D(fn) {AG_DIFF, fn, 0}
#define NONDIFF {AG_NONDIFF, NULL, 0}
#define UNSUPPORTED {AG_UNSUPPORTED, NULL, 0}

const ag_rule ag_rules[SGT_NOPS] = {
    [SGT_OP_RESHAPE] = D(reshape_bwd),
    [SGT_OP_PERMUTE] = D(permute_bwd),
    [SGT_OP_NARROW] = D(narrow_bwd),
    [SGT_OP_EXPAND] = D(expand_bwd),
    [SGT_OP_COPY] = D(copy_bwd),
    [SGT_OP_CAST] = D(cast_bwd),
    [SGT_OP_FILL] = NONDIFF,
    [SGT_OP_RNG_UNIFORM] = NONDIFF,
    [SGT_OP_RNG_NORMAL] = NONDIFF,
    [SGT_OP_DROPOUT] = D(dropout_bwd),
    [SGT_OP_ADD] = D(add_bwd),
    [SGT_OP_SUB] = D(sub_bwd),
    [SGT_OP_MUL] = D(mul_bwd),
    [SGT_OP_DIV] = D(div_bwd),
    [SGT_OP_ADD_SCALAR] = D(unary_bwd),
    [SGT_OP_MUL_SCALAR] = D(unary_bwd),
    [SGT_OP_POW_SCALAR] = D(unary_bwd),
    [SGT_OP_NEG] = D(unary_bwd),
    [SGT_OP_EXP] = D(unary_bwd),
    [SGT_OP_LOG] = D(unary_bwd),
    [SGT_OP_SQRT] = D(unary_bwd),
    [SGT_OP_RSQRT] = D(unary_bwd),
    [SGT_OP_TANH] = D(unary_bwd),
    [SGT_OP_SIGMOID] = D(unary_bwd),
    [SGT_OP_SILU] = D(unary_bwd),
    [SGT_OP_GELU] = D(unary_bwd),
    [SGT_OP_GELU_ERF] = D(unary_bwd),
    [SGT_OP_SIN] = D(unary_bwd),
    [SGT_OP_COS] = D(unary_bwd),
    [SGT_OP_RELU] = D(unary_bwd),
    [SGT_OP_UNARY_BWD] = UNSUPPORTED,
    [SGT_OP_SUM] = D(sum_bwd),
    [SGT_OP_MEAN] = D(mean_bwd),
    [SGT_OP_MAX] = D(max_bwd),
    [SGT_OP_ARGMAX] = NONDIFF,
    [SGT_OP_SOFTMAX] = D(softmax_bwd),
    [SGT_OP_LOG_SOFTMAX] = D(softmax_bwd),
    [SGT_OP_SOFTMAX_BWD] = UNSUPPORTED,
    [SGT_OP_MATMUL] = D(matmul_bwd),
    [SGT_OP_EMBEDDING] = D(embedding_bwd),
    [SGT_OP_INDEX_ADD_ROWS] = UNSUPPORTED,
    [SGT_OP_INDEX_COPY_ROWS] = UNSUPPORTED, /* an in-place inference op (KV-cache appends) */
    [SGT_OP_CROSS_ENTROPY] = D(cross_entropy_bwd),
    [SGT_OP_CROSS_ENTROPY_BWD] = UNSUPPORTED,
    [SGT_OP_RMSNORM] = D(rmsnorm_bwd),
    [SGT_OP_RMSNORM_BWD] = UNSUPPORTED,
    [SGT_OP_LAYERNORM] = D(layernorm_bwd),
    [SGT_OP_LAYERNORM_BWD] = UNSUPPORTED,
    [SGT_OP_TOPK] = D(topk_bwd), /* values only; the indices carry no gradient */
    [SGT_OP_GATHER_LAST] = D(gather_last_bwd),
    [SGT_OP_SCATTER_ADD_LAST] = D(scatter_add_last_bwd),
    [SGT_OP_CMP] = NONDIFF,
    [SGT_OP_WHERE] = D(where_bwd), /* the condition carries no gradient */
    [SGT_OP_MASKED_FILL] = D(masked_fill_bwd),
    [SGT_OP_CONCAT] = D(concat_bwd),
    [SGT_OP_BSPARSE_SWIGLU] = D(bsparse_swiglu_bwd), /* y only; G and U are saved state */
    [SGT_OP_BSPARSE_SWIGLU_BWD] = UNSUPPORTED,
    [SGT_OP_ATTENTION] = D(attention_bwd), /* y only; lse is saved state */
    [SGT_OP_ATTENTION_BWD] = UNSUPPORTED,
    [SGT_OP_SWIGLU] = D(swiglu_bwd),
    [SGT_OP_SWIGLU_BWD] = UNSUPPORTED,
    [SGT_OP_LINEAR_BF16] = UNSUPPORTED,         /* inference ops over bf16 copies of weights */
    [SGT_OP_BSPARSE_SWIGLU_BF16] = UNSUPPORTED,
    [SGT_OP_ADAMW] = UNSUPPORTED, /* an in-place update: run it with no grad */
    [SGT_OP_CUSTOM] = {AG_DIFF, custom_bwd, 0x3f}, /* every float output; a backward is checked when recorded */
};
