/* modules.h: generic nn modules on the autograd: Linear, Embedding, RMSNorm, LayerNorm, dropout
 * with a train/eval mode, rotary position embedding, multi-head self-attention with a KV cache,
 * the SwiGLU FFN and the GELU MLP. Each module is a struct of parameter pointers plus sizes,
 * built by nn_<module>_init(params, prefix, ...) and applied by nn_<module>_forward(ctx, module,
 * x). Forward functions record on whatever tape is attached to ctx; they allocate only in ctx's
 * (per-step) arena.
 *
 * Legend: B batch, T time, C model width, H heads, D head width (C/H), I FFN hidden width,
 * V vocabulary, N = B*T tokens. */
#ifndef SGT_NN_MODULES_H
#define SGT_NN_MODULES_H

#include "params.h"

/* y = x @ W^T (+ b). W [out, in] as in PyTorch. The product runs in x's dtype: a bf16 x (mixed
 * precision) multiplies a bf16 cast of an f32 W, whose gradient reaches W in f32. */
typedef struct {
    sgt_tensor *w;      /* [out, in] */
    sgt_tensor *b;      /* [out] or NULL */
    int64_t in, out;
    sgt_tensor *w_bf16; /* inference only: a bf16 copy of w for decoding, or NULL (nn_linear_prepare_bf16) */
} nn_linear;
void nn_linear_init(nn_linear *m, nn_params *p, const char *prefix, int64_t in, int64_t out, bool bias, double std);
sgt_tensor *nn_linear_forward(sgt_ctx *c, const nn_linear *m, sgt_tensor *x); /* [..., in] -> [..., out] */
/* The dtype rule of every module with weights: f32 and bf16 mix (mixed precision: the weights
 * are cast to the input's dtype), f64 meets only f64. Anything else fails naming the module, the
 * weight and both dtypes; the caller casts explicitly (sgt_cast) when it means it. */
void nn_check_input_dtype(const char *module, const sgt_tensor *w, const sgt_tensor *x);

/* Decoding over bf16 weights. nn_linear_prepare_bf16 makes (or refreshes) w_bf16 from the current
 * w, in the parameter store's memory; training never reads it, so remake it after w changes.
 * nn_linear_infer is nn_linear_forward through that copy (sgt_linear_bf16: 2 bytes per weight,
 * f32 sums) when there is one, x is f32 and x has at most NN_INFER_ROWS rows, i.e. a decode step,
 * whose time is the weights' bytes; longer inputs (a prompt) are compute-bound and take w itself.
 * Not differentiable: for inference without a tape. */
#define NN_INFER_ROWS 4
void nn_linear_prepare_bf16(nn_linear *m, nn_params *p);
sgt_tensor *nn_linear_infer(sgt_ctx *c, const nn_linear *m, sgt_tensor *x);
/* true when a forward over x takes the bf16 inference copies (f32 x of at most NN_INFER_ROWS rows) */
bool nn_infer_bf16_applies(const sgt_tensor *x);

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

/* y = (x - mean) / sqrt(var + eps) * w + b over the last dim (one fused op, sgt_layernorm).
 * w starts at 1 and b at 0; neither takes weight decay. */
typedef struct {
    sgt_tensor *w;      /* [C] */
    sgt_tensor *b;      /* [C] or NULL (no bias) */
    double eps;
} nn_layernorm;
void nn_layernorm_init(nn_layernorm *m, nn_params *p, const char *prefix, int64_t dim, bool bias, double eps);
sgt_tensor *nn_layernorm_forward(sgt_ctx *c, const nn_layernorm *m, sgt_tensor *x); /* [..., C] -> [..., C] */

/* Train/eval mode, one per model, shared by its dropouts: eval (train = false, a zeroed struct)
 * makes every dropout the identity. In training, the k-th dropout call since the mode was made
 * draws its mask from Philox stream `offset` = k under `seed` (sgt_dropout), then advances offset:
 * the masks of a run are reproducible from (seed, offset), on any device. To resume a run with
 * the same masks, save offset with the checkpoint and set it back. */
typedef struct nn_mode {
    bool train;
    uint64_t seed;
    uint64_t offset; /* dropout calls made in training so far */
} nn_mode;

/* Inverted dropout: in training, each element is zeroed with probability p and the others are
 * scaled by 1 / (1 - p); in eval (or p = 0), x itself. The backward regenerates the mask. */
typedef struct {
    double p;
    nn_mode *mode;
} nn_dropout;
void nn_dropout_init(nn_dropout *m, nn_mode *mode, double p);
sgt_tensor *nn_dropout_forward(sgt_ctx *c, const nn_dropout *m, sgt_tensor *x);

/* Rotary position embedding (RoFormer; the half-split pairing of GPT-NeoX and Hugging Face's
 * LLaMA): in each head, dims i and i + D/2 (i < D/2) are rotated by the angle pos * base^(-2i/D):
 *   y_i = x_i cos - x_{i+D/2} sin,   y_{i+D/2} = x_{i+D/2} cos + x_i sin.
 * Built from ops (mul, sin, cos, narrow, concat), so it is differentiable and runs on any device.
 * The frequencies base^(-2i/D) [D/2] live in the parameter store's memory but are not a parameter
 * (no gradient, not in checkpoints); the angles are pos * freq in that dtype (f32 for f32 and
 * bf16 stores), then cos and sin are cast to x's dtype. */
typedef struct {
    sgt_tensor *inv_freq; /* [D/2] */
    int64_t D;            /* head width, even */
    double base;          /* 10000 in RoFormer and LLaMA */
} nn_rope;
void nn_rope_init(nn_rope *r, nn_params *p, int64_t D, double base);
/* x with D last and the time axis at dim time_dim ([B, T, H, D]: 1; [B, H, T, D]: 2), at
 * positions start .. start + T - 1 -> the same shape (contiguous). */
sgt_tensor *nn_rope_forward(sgt_ctx *c, const nn_rope *r, sgt_tensor *x, int time_dim, int64_t start);
/* The same at the positions pos (i32 or float [T], e.g. device-held ones of a replayed decode step). */
sgt_tensor *nn_rope_forward_at(sgt_ctx *c, const nn_rope *r, sgt_tensor *x, int time_dim, sgt_tensor *pos);

/* Keys and values of past positions, per layer: [B, H, Tmax, D] views of [B, Tmax, H, D] storage
 * (a position's keys are one row of H*D), filled up to `len`.
 * Static-shape mode (replayable decode steps, tensor/graph.h): with `pos` (i32 [T], the new
 * tokens' positions) and `len` (i32 [1], the key count after them) set, both in device memory, the
 * new keys are written at pos and attention reads the whole cache with the count from len, so no
 * shape depends on the position; the host-side len is then the caller's to keep. B must be 1. */
typedef struct {
    sgt_tensor *k, *v;
    sgt_tensor *k_rows, *v_rows; /* the same storage as [B * Tmax, H * D] rows */
    int64_t len, max_len;
    sgt_tensor *pos_dev, *len_dev; /* static-shape mode, or NULL */
} nn_kv_cache;
/* The cache lives in `c`'s arena (use a dedicated arena for a decode session). */
void nn_kv_cache_init(nn_kv_cache *kv, sgt_ctx *c, sgt_dtype t, int64_t B, int64_t H, int64_t max_len, int64_t D);

/* Options of multi-head self-attention; a zeroed struct is the GPT's: H key/value heads, no QKV
 * or output bias, causal, no rotary embedding. */
typedef struct {
    int64_t n_kv_heads;  /* 0: H (multi-head); H / g: grouped-query (each key/value head serves g
                          * query heads, repeated for the attention op); 1: multi-query */
    bool qkv_bias;       /* a bias on the QKV projection (GPT-2, Qwen) */
    bool proj_bias;      /* a bias on the output projection (GPT-2) */
    bool not_causal;     /* every query sees every key (encoders) */
    const nn_rope *rope; /* rotary embedding of q and k (at their positions, the KV cache's too), or NULL */
} nn_attention_opts;

/* Multi-head self-attention: one fused QKV projection (C -> (H + 2 Hk) D: the H query heads, then
 * the Hk key heads, then the Hk value heads), the attention, the output projection. */
typedef struct {
    nn_linear qkv;      /* C -> (H + 2 Hk) D */
    nn_linear proj;     /* C -> C, the residual output projection */
    int64_t C, H, D;
    int64_t Hk;         /* key/value heads (H unless grouped-query) */
    bool causal;
    const nn_rope *rope;
    bool composed;      /* false (default): the fused attention op (sgt_attention); true: matmul,
                         * softmax, matmul, with the [T, Tk] scores in memory (the reference) */
} nn_attention;
void nn_attention_init(nn_attention *m, nn_params *p, const char *prefix, int64_t C, int64_t H, double std,
                       double proj_std);
/* The same with options (o NULL: the defaults, as nn_attention_init). */
void nn_attention_init_opts(nn_attention *m, nn_params *p, const char *prefix, int64_t C, int64_t H,
                            const nn_attention_opts *o, double std, double proj_std);
/* x [B, T, C] -> [B, T, C]. With kv (inference, no grad), the T new positions are appended to the
 * cache (nn_kv_cache_init with Hk heads) and attend to all cached ones, and the projections run
 * through their bf16 inference copies where those apply (nn_linear_infer); without it, attention
 * over x (causal unless not_causal). */
sgt_tensor *nn_attention_forward(sgt_ctx *c, const nn_attention *m, sgt_tensor *x, nn_kv_cache *kv);
void nn_attention_prepare_bf16(nn_attention *m, nn_params *p);

/* SwiGLU FFN: down(silu(gate(x)) * up(x)). */
typedef struct {
    nn_linear gate, up; /* C -> I */
    nn_linear down;     /* I -> C, the residual output projection */
    int64_t C, hidden; /* hidden = I (not a field named I: <complex.h>, via cblas.h, defines I) */
} nn_swiglu;
void nn_swiglu_init(nn_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t hidden, double std,
                    double down_std);
/* The hidden silu(gate(x)) * up(x), [..., I], one fused op (sgt_swiglu). */
sgt_tensor *nn_swiglu_hidden(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x);
/* The same times a block mask [..., I / block_size] (the block-sparse FFN), in the same op. */
sgt_tensor *nn_swiglu_hidden_masked(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x, sgt_tensor *mask,
                                    int64_t block_size);
sgt_tensor *nn_swiglu_forward(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x);
/* The same through the Linears' bf16 inference copies where they apply (nn_linear_infer). */
sgt_tensor *nn_swiglu_infer(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x);
void nn_swiglu_prepare_bf16(nn_swiglu *m, nn_params *p);

/* The GPT-2 MLP: fc2(gelu(fc1(x))), GELU exact (sgt_gelu_erf, PyTorch's default) or the tanh
 * approximation (sgt_gelu, GPT-2's); in a transformer block in = out = C and hidden = 4C. */
typedef enum { NN_GELU_TANH, NN_GELU_EXACT } nn_gelu_kind;
typedef struct {
    nn_linear fc1;      /* in -> I */
    nn_linear fc2;      /* I -> out (in a block: the residual output projection) */
    nn_gelu_kind gelu;
    int64_t in, hidden, out;
} nn_mlp;
void nn_mlp_init(nn_mlp *m, nn_params *p, const char *prefix, int64_t in, int64_t hidden, int64_t out, bool bias,
                 nn_gelu_kind gelu, double std, double proj_std);
sgt_tensor *nn_gelu(sgt_ctx *c, nn_gelu_kind kind, sgt_tensor *x);
sgt_tensor *nn_mlp_forward(sgt_ctx *c, const nn_mlp *m, sgt_tensor *x); /* [..., in] -> [..., out] */

/* Mean cross-entropy of logits [..., V] against i32 targets [...]. */
sgt_tensor *nn_cross_entropy(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index);
/* The same (no ignored targets) over the first `valid` columns of logits [..., Vp] (0: all; a
 * vocabulary padded for the GEMMs), and, when token_nll is not NULL, each position's NLL, f32
 * [N] (N = the positions): lse_i - logit_i[target_i], for per-window or per-document statistics. */
sgt_tensor *nn_cross_entropy_nll(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int64_t valid,
                                 sgt_tensor **token_nll);

#endif
