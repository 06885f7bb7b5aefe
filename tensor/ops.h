/* ops.h: the tensor ops. Each allocates its output(s) in ctx->arena and goes through sgt_dispatch.
 *
 * Legend for shape comments: B batch, T time (sequence), C channels, V vocabulary, N rows, K inner.
 * Binary ops broadcast numpy-style. Float ops take f32 or f64 (all inputs the same dtype). */
#ifndef SGT_OPS_H
#define SGT_OPS_H

#include "tensor.h"

typedef enum { SGT_CMP_EQ, SGT_CMP_NE, SGT_CMP_LT, SGT_CMP_LE, SGT_CMP_GT, SGT_CMP_GE } sgt_cmp_kind;

#define SGT_ALL_DIMS (-1000) /* for reductions: reduce every dimension */

/* copies and fills */
sgt_tensor *sgt_copy(sgt_ctx *c, sgt_tensor *x);                  /* always a new contiguous tensor */
void sgt_copy_into(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *src); /* dst <- src, same shape */
sgt_tensor *sgt_cast(sgt_ctx *c, sgt_tensor *x, sgt_dtype t);
void sgt_fill(sgt_ctx *c, sgt_tensor *dst, double v);
/* Counter-based (Philox4x32-10) fills; element i depends only on (seed, stream, i). */
void sgt_rng_uniform(sgt_ctx *c, sgt_tensor *dst, uint64_t seed, uint64_t stream, double lo, double hi);
void sgt_rng_normal(sgt_ctx *c, sgt_tensor *dst, uint64_t seed, uint64_t stream, double mean, double std);
/* Inverted dropout: y = x / (1 - p) where element i (its row-major position) is kept, else 0. The
 * decision depends on (seed, stream, i) only (rng.h: the draw of sgt_rng_uniform_f32_at >= p), so
 * a mask is reproducible and the same on every device; the backward is the same op on dy (the
 * mask is regenerated, never stored). 0 <= p < 1. */
sgt_tensor *sgt_dropout(sgt_ctx *c, sgt_tensor *x, double p, uint64_t seed, uint64_t stream);

/* elementwise */
sgt_tensor *sgt_add(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b);
sgt_tensor *sgt_sub(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b);
sgt_tensor *sgt_mul(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b);
sgt_tensor *sgt_div(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b);
void sgt_add_into(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *x);   /* dst += x (x broadcast to dst) */
sgt_tensor *sgt_add_scalar(sgt_ctx *c, sgt_tensor *x, double s);
sgt_tensor *sgt_mul_scalar(sgt_ctx *c, sgt_tensor *x, double s);
sgt_tensor *sgt_pow_scalar(sgt_ctx *c, sgt_tensor *x, double p);
sgt_tensor *sgt_neg(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_exp(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_log(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_sqrt(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_rsqrt(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_tanh(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_sigmoid(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_silu(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_gelu(sgt_ctx *c, sgt_tensor *x);     /* the tanh approximation (GPT-2's) */
sgt_tensor *sgt_gelu_erf(sgt_ctx *c, sgt_tensor *x); /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
sgt_tensor *sgt_sin(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_cos(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_relu(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_unary(sgt_ctx *c, sgt_op op, sgt_tensor *x, double s); /* any of the above by op */
/* dx = dy * f'(x) for unary op `op` (y = f(x) may be used instead of x). */
sgt_tensor *sgt_unary_bwd(sgt_ctx *c, sgt_op op, double s, sgt_tensor *x, sgt_tensor *y, sgt_tensor *dy);

/* comparison and selection */
sgt_tensor *sgt_cmp(sgt_ctx *c, sgt_cmp_kind k, sgt_tensor *a, sgt_tensor *b);
sgt_tensor *sgt_where(sgt_ctx *c, sgt_tensor *cond, sgt_tensor *a, sgt_tensor *b);
sgt_tensor *sgt_masked_fill(sgt_ctx *c, sgt_tensor *x, sgt_tensor *mask, double v);

/* reductions: over `dim` (or SGT_ALL_DIMS), optionally keeping it as size 1 */
sgt_tensor *sgt_sum(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim);
sgt_tensor *sgt_mean(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim);
sgt_tensor *sgt_max(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim);
sgt_tensor *sgt_argmax(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim); /* i32; first max wins */
/* Sum over a bitmask of dims (bit i = dim i), keeping them as size 1 when keepdim. */
sgt_tensor *sgt_sum_dims(sgt_ctx *c, sgt_tensor *x, uint32_t mask, bool keepdim);
/* Sums a broadcast result back to `shape` (the reverse of expand). */
sgt_tensor *sgt_sum_to(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape);

/* softmax family, over the last dim */
sgt_tensor *sgt_softmax(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_log_softmax(sgt_ctx *c, sgt_tensor *x);
/* x [..., Tq, Tk]: query i sees keys j <= i + (Tk - Tq); masked entries are exactly 0. */
sgt_tensor *sgt_softmax_causal(sgt_ctx *c, sgt_tensor *x);
sgt_tensor *sgt_softmax_bwd(sgt_ctx *c, sgt_tensor *y, sgt_tensor *dy, bool log);

/* matmul: a [..., M, K] (or [..., K, M] if ta), b [..., K, N] (or [..., N, K] if tb) -> [..., M, N].
 * Batch dims broadcast. */
sgt_tensor *sgt_matmul(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b, bool ta, bool tb);

/* embedding and its backward */
sgt_tensor *sgt_embedding(sgt_ctx *c, sgt_tensor *table, sgt_tensor *idx); /* [V,C], [...] -> [..., C] */
void sgt_index_add_rows(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *idx, sgt_tensor *rows);
/* In place: dst [V, C] row idx[i] = rows[i] (rows [..., C], idx [...]; rows of dst may be a
 * strided view with unit column stride). Where the row comes from device memory (a KV-cache
 * append at a device-held position, for a replayable decode step). Not differentiable. */
void sgt_index_copy_rows(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *idx, sgt_tensor *rows);

/* Fused cross-entropy: logits [N, V], targets i32 [N] -> mean NLL over targets != ignore_index
 * (ignore_index < 0 and not -100 style: pass SGT_NO_IGNORE for none). lse_out (optional) gets the
 * per-row log-sum-exp [N], which the backward reuses: no probability tensor is kept.
 * The loss and lse are f32 for bf16 logits (the dtype of the logits otherwise). */
#define SGT_NO_IGNORE INT32_MIN
sgt_tensor *sgt_cross_entropy(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index,
                              sgt_tensor **lse_out);
/* The same over the first `valid` columns of logits [N, Vpad] (a vocabulary padded for the GEMMs):
 * the padding columns are not part of the softmax, and their gradient is exactly 0. */
sgt_tensor *sgt_cross_entropy_padded(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index,
                                     int64_t valid, sgt_tensor **lse_out);
/* dlogits [N, V] (0 in the padding columns >= valid); lse and dloss in the loss's dtype. */
sgt_tensor *sgt_cross_entropy_bwd(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, sgt_tensor *lse,
                                  sgt_tensor *dloss, int32_t ignore_index, int64_t valid);

/* norms over the last dim: x [..., C], w [C] (b [C]). Saved statistics are optional outputs. */
sgt_tensor *sgt_rmsnorm(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, double eps, sgt_tensor **rstd_out);
/* The same with the output in dtype `out` (an f32 residual stream normalised straight into a bf16
 * activation); rstd is f32 for bf16 x. The backward takes dy in the output's dtype. */
sgt_tensor *sgt_rmsnorm_to(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, double eps, sgt_dtype out,
                           sgt_tensor **rstd_out);
void sgt_rmsnorm_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *rstd, sgt_tensor *dy,
                     sgt_tensor **dx, sgt_tensor **dw);
sgt_tensor *sgt_layernorm(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *b, double eps,
                          sgt_tensor **mean_out, sgt_tensor **rstd_out);
void sgt_layernorm_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *mean, sgt_tensor *rstd,
                       sgt_tensor *dy, sgt_tensor **dx, sgt_tensor **dw, sgt_tensor **db);

/* top-k over the last dim, largest first; ties go to the lower index. */
void sgt_topk(sgt_ctx *c, sgt_tensor *x, int k, sgt_tensor **values, sgt_tensor **indices);
sgt_tensor *sgt_gather_last(sgt_ctx *c, sgt_tensor *x, sgt_tensor *idx);
sgt_tensor *sgt_scatter_add_last(sgt_ctx *c, sgt_tensor *v, sgt_tensor *idx, int64_t n);

/* Block-sparse SwiGLU that computes only the selected blocks (the skipping path of the SGT FFN):
 *   y[t] = sum_j m[t,j] * Wd[:, B_j] (silu(Wg[B_j] x[t]) * (Wu[B_j] x[t])),  B_j = block idx[t,j]
 * x [N, C], wg and wu [I, C], wd [C, I] (I = nb * bs, PyTorch's [out, in] layout: a block's gate
 * and up rows are contiguous, its down columns are bs-float runs), idx i32 [N, k], m [N, k] (the
 * router mask at the selected blocks: 1 in value, carrier of the STE gradient).
 * G_out and U_out (optional) receive the gate and up pre-activations [N, k, bs] for backward.
 * Few tokens (decode): per-token GEMVs over the selected weights only. Many tokens (prefill,
 * training): the (token, block) slots sorted by block, gathered, one GEMM per block (tiles of its
 * rows), then a segmented reduction per token in slot order (no atomics; the CPU's sums do not
 * depend on the thread count). */
sgt_tensor *sgt_bsparse_swiglu(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd,
                               sgt_tensor *idx, sgt_tensor *m, int64_t block_size, sgt_tensor **G_out,
                               sgt_tensor **U_out);
/* The same, with wd_t = the down weights transposed ([I, C], a block's down rows contiguous), an
 * inference copy (see gpt_prepare_decode) that the few-token kernel streams instead of wd's
 * 64-float runs. Gradients still flow to wd only; wd_t must mirror it. */
sgt_tensor *sgt_bsparse_swiglu_ex(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd,
                                  sgt_tensor *wd_t, sgt_tensor *idx, sgt_tensor *m, int64_t block_size,
                                  sgt_tensor **G_out, sgt_tensor **U_out);
/* Its backward: dx, dwg, dwu, dwd (zero outside the selected blocks) and dm [N, k]. */
void sgt_bsparse_swiglu_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd, sgt_tensor *idx,
                            sgt_tensor *m, sgt_tensor *G, sgt_tensor *U, sgt_tensor *dy, int64_t block_size,
                            sgt_tensor **dx, sgt_tensor **dwg, sgt_tensor **dwu, sgt_tensor **dwd, sgt_tensor **dm);

/* Inference over bf16 copies of weights (decode: each weight streams as 2 bytes and is widened to
 * f32 in registers; activations and sums stay f32). Not differentiable: the weights' f32 masters
 * are what training updates, and the copies must be remade after (nn_linear_prepare_bf16).
 * y = x w^T: x f32 [..., K], w bf16 [O, K] -> f32 [..., O]. */
sgt_tensor *sgt_linear_bf16(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w);
/* The block-sparse SwiGLU of sgt_bsparse_swiglu over block-major bf16 weights wb [nb, 3, bs, C]
 * (block b: its gate rows Wg[b bs + r], its up rows, then its down columns as rows Wd[:, b bs + r]),
 * so a selected block is one contiguous run: x f32 [N, C], idx i32 [N, k], m f32 [N, k] or NULL
 * (all ones, the router's hard mask) -> y f32 [N, C]. */
sgt_tensor *sgt_bsparse_swiglu_bf16(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wb, sgt_tensor *idx, sgt_tensor *m);

/* Fused causal attention (flash-style: the [Tq, Tk] score matrix is never stored; sgt_attention_ex
 * below drops the causal mask):
 *   y[b,h,i] = sum_j softmax_j(scale * q[b,h,i] . k[b,h,j]) v[b,h,j]  over j <= i + (Tk - Tq)
 * q [B, H, Tq, D], k and v [B, H, Tk, D] (Tk >= Tq: with a KV cache the Tq new queries are the
 * last Tq positions), any strides with unit stride along D (the q, k, v views of a fused QKV
 * projection need no copy). y [B, H, Tq, D] is a view of [B, Tq, H, D] storage, so the merge of
 * the heads back into [B, Tq, C] is free. lse_out (optional) gets the per-row log-sum-exp
 * [B, H, Tq] (f32 for bf16 inputs) that the backward uses to recompute the probabilities. */
sgt_tensor *sgt_attention(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, double scale,
                          sgt_tensor **lse_out);
/* The same with the number of valid keys in device memory: len (i32 [1]) keys of k and v count,
 * the queries being positions len-Tq .. len-1 (query i sees keys j <= i + len - Tq). With a
 * KV cache of fixed size this keeps every shape of a decode step constant (CUDA graphs). */
sgt_tensor *sgt_attention_len(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *len, double scale,
                              sgt_tensor **lse_out);
/* Either of those (len may be NULL), causal or not: with causal false every query sees every
 * (valid) key, as in an encoder or a cross-attention. */
sgt_tensor *sgt_attention_ex(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *len, double scale,
                             bool causal, sgt_tensor **lse_out);
/* Its backward (of sgt_attention, without len): dq, dk, dv, each a [B, H, T, D] view of [B, T, H, D] storage. */
void sgt_attention_bwd(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *y, sgt_tensor *lse,
                       sgt_tensor *dy, double scale, sgt_tensor **dq, sgt_tensor **dk, sgt_tensor **dv);
void sgt_attention_bwd_ex(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *y, sgt_tensor *lse,
                          sgt_tensor *dy, double scale, bool causal, sgt_tensor **dq, sgt_tensor **dk,
                          sgt_tensor **dv);

/* Fused SwiGLU activation with an optional block mask:
 *   h[n, i] = silu(g[n, i]) * u[n, i] * m[n, i / bs]        (m == NULL: no mask factor)
 * g, u [..., I]; m [..., I / bs]. One pass instead of silu, mul and the expanded-mask mul. */
sgt_tensor *sgt_swiglu(sgt_ctx *c, sgt_tensor *g, sgt_tensor *u, sgt_tensor *m, int64_t block_size);
/* Its backward: dg, du (like g) and dm (like m; NULL without a mask), where
 *   dm[n, b] = sum over the block's i of silu(g) u dh. */
void sgt_swiglu_bwd(sgt_ctx *c, sgt_tensor *g, sgt_tensor *u, sgt_tensor *m, sgt_tensor *dh, int64_t block_size,
                    sgt_tensor **dg, sgt_tensor **du, sgt_tensor **dm);

/* One AdamW update in place (decoupled weight decay), all f32 or all f64, same shape, contiguous:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * (m / bc1) / (sqrt(v / bc2) + eps) + lr * wd * p
 * bc1 = 1 - b1^t and bc2 = 1 - b2^t are the bias corrections for step t. */
void sgt_adamw_update(sgt_ctx *c, sgt_tensor *param, sgt_tensor *grad, sgt_tensor *m, sgt_tensor *v, double lr,
                      double b1, double b2, double eps, double wd, double bc1, double bc2);

/* concat along dim; split is in tensor.h (views) */
sgt_tensor *sgt_concat(sgt_ctx *c, int n, sgt_tensor **xs, int dim);

#endif
