/* gpt.h: the GPT of the SGT v2 experiment, assembled from the nn modules. One builder, one config:
 * the dense model has SwiGLU FFNs, the SGT model block-sparse SwiGLU FFNs with top-k routers;
 * everything else is identical.
 *
 *   x = wte[idx] + wpe[pos]
 *   n_layers x { x += attn(rmsnorm(x));  x += ffn(rmsnorm(x)) }
 *   logits = head(rmsnorm(x))                      (head untied unless tie_head)
 *
 * Parameter names (also the checkpoint tensor names):
 *   wte.weight [V,C]  wpe.weight [ctx,C]  ln_f.weight [C]  head.weight [Vp,C] (absent when tied;
 *   Vp = V padded to a multiple of 128, the extra rows zero; a tied wte.weight is [Vp,C])
 *   layers.{i}.ln1.weight [C]  layers.{i}.attn.qkv.weight [3C,C]  layers.{i}.attn.proj.weight [C,C]
 *   layers.{i}.ln2.weight [C]  layers.{i}.ffn.{gate,up}.weight [I,C]  layers.{i}.ffn.down.weight [C,I]
 *   SGT only: layers.{i}.ffn.router.fc1.{weight [128,C], bias [128]}
 *             layers.{i}.ffn.router.fc2.{weight [nb,128], bias [nb]}
 *
 * Legend: B batch, T time, C d_model, V vocab, I d_ff = num_blocks * block_size (SGT). */
#ifndef SGT_MODELS_GPT_H
#define SGT_MODELS_GPT_H

#include "../nn/router.h"

#define GPT_MAX_LAYERS 64

typedef struct {
    char name[32];
    int64_t n_layers, d_model, n_heads, d_ff, vocab, ctx_len;
    bool sparse;
    int64_t num_blocks, block_size, top_k;
    nn_router_kind router; /* SGT: the router variant (nn/router.h); NN_ROUTER_STE, the seed's, is 0 */
    bool tie_head;
    double init_std;   /* 0.02; residual projections get init_std / sqrt(2 n_layers) */
    double norm_eps;
    bool ffn_skip;     /* SGT FFN path: skip unselected blocks (nn/router.h); not saved with weights */
    /* Runtime choices, not saved with the weights either (the defaults are the zero values): */
    sgt_dtype compute; /* SGT_F32 (default): everything in the parameters' dtype. SGT_BF16: mixed
                        * precision: matmul operands and activations in bf16, with f32 master
                        * weights, f32 residual stream, norms, softmax statistics, loss and AdamW */
    bool composed_attention; /* attention from matmul + causal softmax + matmul (the T x T scores
                              * in memory) instead of the fused kernel: the reference path */
} gpt_config;

/* Presets: "sgt-150m" (the seed's table), "small", "tiny", "nano" (tests). sparse is false; set
 * it (or use gpt_config_for) to get the SGT variant. Returns 0, or -1 for an unknown name. */
int gpt_preset(const char *name, gpt_config *cfg);
const char *gpt_preset_names(void); /* "sgt-150m, small, tiny, nano" */
/* Checks sizes (divisibility, d_ff = num_blocks * block_size for SGT...); fills err on failure. */
int gpt_config_validate(const gpt_config *cfg, char *err, size_t errn);
/* Same architecture (every saved field; the FFN path and the preset name aside)? */
bool gpt_config_same(const gpt_config *a, const gpt_config *b);

typedef struct {
    nn_rmsnorm ln1, ln2;
    nn_attention attn;
    nn_swiglu ffn;       /* dense */
    nn_bs_swiglu sffn;   /* SGT */
} gpt_layer;

typedef struct {
    gpt_config cfg;
    nn_params *params;
    nn_embedding wte, wpe;
    gpt_layer layers[GPT_MAX_LAYERS];
    nn_rmsnorm ln_f;
    nn_linear head;      /* unused when tied */
} gpt_model;

gpt_model *gpt_build(const gpt_config *cfg, nn_params *params);
/* The output projection is padded to a multiple of GPT_VOCAB_ALIGN rows (zero rows, outside the
 * softmax) so the largest GEMM has aligned dims: head.weight (wte.weight when tied) is
 * [gpt_vocab_padded, C]. Parameter counts leave the padding out. */
#define GPT_VOCAB_ALIGN 128
int64_t gpt_vocab_padded(const gpt_config *cfg);
/* Fused attention kernel (default) or the composed reference (nn_attention.composed). */
void gpt_set_attention(gpt_model *m, bool composed);
/* Switches the SGT FFNs between mask-and-multiply and block skipping (same weights). */
void gpt_set_ffn_skip(gpt_model *m, bool skip);
/* Inference copies of the weights for decoding; call it after loading (or training) weights,
 * since training never updates them. weights = SGT_F32: block-contiguous copies of the SGT down
 * projections for the skipping kernel (+1/3 of the FFN weights in memory). weights = SGT_BF16:
 * besides those, bf16 copies of every matrix a decode step reads (projections, FFN, head; the SGT
 * FFN also block-major, [nb, 3, bs, C], and its router; +1/2 of the model in memory): the KV-
 * cache forward then streams 2 bytes per weight on steps of at most NN_INFER_ROWS tokens, with f32
 * activations and sums (a prompt, and every forward without a KV cache, use the f32 weights). */
void gpt_prepare_decode(gpt_model *m, sgt_dtype weights);
void gpt_free(gpt_model *m);

/* KV caches of every layer, for incremental decoding (inference only: use a no-grad scope). */
typedef struct {
    nn_kv_cache layer[GPT_MAX_LAYERS];
    int64_t len;
    sgt_tensor *pos_dev; /* static-shape mode (gpt_kv_set_static), or NULL */
} gpt_kv;
/* The caches hold activations: bf16 under mixed precision, the parameters' dtype otherwise. */
void gpt_kv_init(gpt_kv *kv, sgt_ctx *c, const gpt_model *m, int64_t B, int64_t max_len);
/* Static-shape mode for replayable decode steps (nn_kv_cache): pos (i32 [T]) and len (i32 [1])
 * in device memory give the new tokens' positions and the key count; NULLs switch it off. In this
 * mode gpt_forward leaves kv->len alone. */
void gpt_kv_set_static(gpt_kv *kv, const gpt_model *m, sgt_tensor *pos, sgt_tensor *len);

typedef struct {
    sgt_tensor *logits;  /* [B, T, V], or [B, 1, V] with last_only (a view of the padded [.., Vp]) */
    sgt_tensor *ce;      /* mean cross-entropy (when targets are given) */
    sgt_tensor *aux;     /* mean over layers of the load-balancing loss, times its weight (SGT) */
    sgt_tensor *loss;    /* ce + aux */
    sgt_tensor *token_nll; /* f32 [B * T]: each position's NLL (with targets and opts.token_nll) */
    nn_route route[GPT_MAX_LAYERS]; /* SGT: each layer's routing */
} gpt_output;

typedef struct {
    sgt_tensor *targets; /* i32 [B, T] or NULL */
    double aux_weight;   /* alpha of the load-balancing loss */
    gpt_kv *kv;          /* incremental decoding, or NULL */
    bool last_only;      /* logits of the last position only (decoding) */
    bool token_nll;      /* also out.token_nll (evaluation: per-window or per-document statistics) */
} gpt_forward_opts;

/* idx: i32 [B, T]. */
gpt_output gpt_forward(sgt_ctx *c, const gpt_model *m, sgt_tensor *idx, const gpt_forward_opts *o);

/* Bytes of weights and KV cache read to decode one token at position pos (batch 1): every
 * parameter except the embedding tables (one row each); the FFN blocks scaled by k/nb when
 * skipping; the matrices at the size of `weights` (gpt_prepare_decode), the rest (norms, biases,
 * embedding rows, the f32 KV cache) at 4 bytes. Divided by the device bandwidth, it is the floor of decode latency. */
double gpt_decode_bytes(const gpt_config *cfg, bool skip, int64_t pos, sgt_dtype weights);

/* Auxiliary-loss-free balancing (router NN_ROUTER_BALANCED; a no-op otherwise): counts
 * [n_layers * num_blocks] are each layer's block selections over one optimizer step's tokens;
 * every router's bias moves by rate toward the mean load (nn_router_balance). */
void gpt_router_balance(gpt_model *m, const double *counts, double rate);

/* Parameter counts: total, and the routers' share. */
int64_t gpt_param_count(const gpt_model *m);
int64_t gpt_router_param_count(const gpt_model *m);
/* The parameter count implied by a config, computed from the formulas (for checks and --help). */
int64_t gpt_config_param_count(const gpt_config *cfg);

#endif
