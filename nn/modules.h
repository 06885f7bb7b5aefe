/* modules.h: generic nn modules on the autograd: Linear, Embedding, RMSNorm, causal multi-head
 * self-attention with a KV cache, and the SwiGLU FFN. Each module is a struct of parameter
 * pointers plus sizes, built by nn_<module>_init(params, prefix, ...) and applied by
 * nn_<module>_forward(ctx, module, x). Forward functions record on whatever tape is attached to
 * ctx; they allocate only in ctx's (per-step) arena.
 *
 * Legend: B batch, T time, C model width, H heads, D head width (C/H), I FFN hidden width,
 * V vocabulary, N = B*T tokens. */
#ifndef SGT_NN_MODULES_H
#define SGT_NN_MODULES_H

#include "params.h"

/* y = x @ W^T (+ b). W [out, in] as in PyTorch. */
typedef struct {
    sgt_tensor *w;      /* [out, in] */
    sgt_tensor *b;      /* [out] or NULL */
    int64_t in, out;
} nn_linear;
void nn_linear_init(nn_linear *m, nn_params *p, const char *prefix, int64_t in, int64_t out, bool bias, double std);
sgt_tensor *nn_linear_forward(sgt_ctx *c, const nn_linear *m, sgt_tensor *x); /* [..., in] -> [..., out] */

typedef struct {
    sgt_tensor *w;      /* [V, C] */
} nn_embedding;
void nn_embedding_init(nn_embedding *m, nn_params *p, const char *prefix, int64_t n, int64_t dim, double std);
sgt_tensor *nn_embedding_forward(sgt_ctx *c, const nn_embedding *m, sgt_tensor *idx); /* i32 [...] -> [..., C] */

typedef struct {
    sgt_tensor *w;      /* [C] */
    double eps;
} nn_rmsnorm;
void nn_rmsnorm_init(nn_rmsnorm *m, nn_params *p, const char *prefix, int64_t dim, double eps);
sgt_tensor *nn_rmsnorm_forward(sgt_ctx *c, const nn_rmsnorm *m, sgt_tensor *x);

/* Keys and values of past positions, per layer: [B, H, Tmax, D] each, filled up to `len`. */
typedef struct {
    sgt_tensor *k, *v;
    int64_t len, max_len;
} nn_kv_cache;
/* The cache lives in `c`'s arena (use a dedicated arena for a decode session). */
void nn_kv_cache_init(nn_kv_cache *kv, sgt_ctx *c, sgt_dtype t, int64_t B, int64_t H, int64_t max_len, int64_t D);

/* Causal multi-head self-attention: fused QKV projection (no bias), output projection. */
typedef struct {
    nn_linear qkv;      /* C -> 3C */
    nn_linear proj;     /* C -> C, the residual output projection */
    int64_t C, H, D;
} nn_attention;
void nn_attention_init(nn_attention *m, nn_params *p, const char *prefix, int64_t C, int64_t H, double std,
                       double proj_std);
/* x [B, T, C] -> [B, T, C]. With kv (inference, no grad), the T new positions are appended to the
 * cache and attend to all cached ones; without it, plain causal attention over x. */
sgt_tensor *nn_attention_forward(sgt_ctx *c, const nn_attention *m, sgt_tensor *x, nn_kv_cache *kv);

/* SwiGLU FFN: down(silu(gate(x)) * up(x)). */
typedef struct {
    nn_linear gate, up; /* C -> I */
    nn_linear down;     /* I -> C, the residual output projection */
    int64_t C, hidden; /* hidden = I (not a field named I: <complex.h>, via cblas.h, defines I) */
} nn_swiglu;
void nn_swiglu_init(nn_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t hidden, double std,
                    double down_std);
/* The hidden silu(gate(x)) * up(x), [..., I]: the block-sparse FFN masks it before down. */
sgt_tensor *nn_swiglu_hidden(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x);
sgt_tensor *nn_swiglu_forward(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x);

/* Mean cross-entropy of logits [..., V] against i32 targets [...]. */
sgt_tensor *nn_cross_entropy(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index);

#endif
