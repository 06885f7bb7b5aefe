/* router.h: the top-k block router (three variants), the block-sparse SwiGLU FFN it drives
 * (mask-and-multiply, as in the SGT v2 seed, or block skipping), and the load-balancing auxiliary
 * loss.
 *
 * Router: logits l = fc2(act(fc1(x))), fc1: C -> 128, fc2: 128 -> num_blocks, act = GELU.
 * NN_ROUTER_STE (the seed's, the default): the straight-through estimator
 *   forward:  mask = hard, the 0/1 indicator of the top-k logits of each token (ties: lower index)
 *   backward: mask = hard + sigmoid(l) - stopgrad(sigmoid(l)), so d mask / d l = sigmoid'(l)
 * NN_ROUTER_SIGMOID (sigma-MoE, Csordas et al. 2023): the selected blocks' outputs are scaled by
 *   their gates, mask = hard * sigmoid(l): a true gradient, which finite differences see too
 * NN_ROUTER_BALANCED (DeepSeek-V3's auxiliary-loss-free balancing) with the STE mask: the top-k is
 *   taken of l + b, b [nb] a per-block bias with no gradient (parameter "balance_bias", so it is
 *   checkpointed) that nn_router_balance nudges after each step: b_j += rate * sign(mean load -
 *   load_j). The gates (and their gradient) come from l alone. Use it with aux weight 0.
 *
 * Load-balancing loss (Switch Transformer style), over the N tokens of a batch:
 *   aux = alpha * nb * sum_i f_i * P_i
 *   f_i = (number of top-k selections of block i) / (N * k)   (a constant: no gradient)
 *   P_i = mean over tokens of softmax(l)_i                     (differentiable)
 * With uniform use, f_i = P_i = 1/nb and aux = alpha; any imbalance that P follows raises it.
 *
 * Legend: N tokens, C width, nb num_blocks, bs block_size, I = nb * bs. */
#ifndef SGT_NN_ROUTER_H
#define SGT_NN_ROUTER_H

#include "gating.h"
#include "modules.h"

#define NN_ROUTER_HIDDEN 128

typedef enum { NN_ROUTER_STE = 0, NN_ROUTER_SIGMOID = 1, NN_ROUTER_BALANCED = 2 } nn_router_kind;
#define NN_ROUTER_KIND_NAMES "ste|sigmoid|balanced"
const char *nn_router_kind_name(nn_router_kind k);
/* 0 and *k set, or -1 for an unknown name */
int nn_router_kind_parse(const char *name, nn_router_kind *k);

typedef struct {
    nn_linear fc1, fc2;
    int64_t num_blocks, top_k;
    nn_router_kind kind;
    sgt_tensor *bias;   /* [nb], NN_ROUTER_BALANCED only: the selection bias (no gradient) */
    bool hard_only; /* no STE term: mask = hard exactly, with no gradient to the logits. Only for
                     * finite-difference checks of the rest of the model (FD sees the true,
                     * piecewise-constant mask; the STE is checked against its formula). */
} nn_router;

/* What one router forward produced, for the FFN, the aux loss and the logs. */
typedef struct {
    sgt_tensor *logits;   /* [..., nb] */
    sgt_tensor *mask;     /* [..., nb]: hard 0/1 values, STE gradient */
    sgt_tensor *hard;     /* [..., nb]: the 0/1 selection, no gradient */
    sgt_tensor *indices;  /* i32 [..., k]: the selected blocks, best first */
    sgt_tensor *weights;  /* [..., k]: mask at indices (1 in value, the STE gradient), or NULL */
} nn_route;

void nn_router_init(nn_router *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks, int64_t top_k,
                    double std);
void nn_router_init_kind(nn_router *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                         int64_t top_k, double std, nn_router_kind kind);
/* The routing of x: nn_topk_gate(logits, top_k, NN_GATE_STE) for STE, NN_GATE_SIGMOID for SIGMOID,
 * nn_topk_gate_biased(logits, bias, top_k, NN_GATE_STE) for BALANCED (NN_GATE_HARD with hard_only,
 * the bias still selecting). */
nn_route nn_router_forward(sgt_ctx *c, const nn_router *m, sgt_tensor *x);
/* The selection scores of the top-k: logits + bias for BALANCED, the logits otherwise (no gradient). */
sgt_tensor *nn_router_selection_scores(sgt_ctx *c, const nn_router *m, sgt_tensor *logits);

/* Auxiliary-loss-free balancing (BALANCED; a no-op for the others): counts [nb] are the
 * selections of each block over the step's tokens (nn_route_stats); every block whose load is
 * above the mean gets its bias lowered by rate, every one below raised by rate. */
void nn_router_balance(nn_router *m, const double *counts, double rate);

/* Switch-style load-balancing loss of one routing (see above); a scalar. */
sgt_tensor *nn_load_balance_loss(sgt_ctx *c, const nn_route *r, int64_t top_k, double alpha);

/* Block-sparse SwiGLU, two interchangeable paths with one set of parameters:
 *   NN_BS_MASK  mask-and-multiply, as in the seed: the whole SwiGLU hidden (nb * bs wide) times the
 *               router mask expanded per block, then the down projection. Every block is computed.
 *   NN_BS_SKIP  only the selected blocks are computed (sgt_bsparse_swiglu): the same output and the
 *               same gradients for x and the weights. The STE reaches the router through the mask
 *               values of the selected blocks only: an unselected block's gradient would need its
 *               hidden, i.e. the dense computation this path exists to skip. */
typedef enum { NN_BS_MASK = 0, NN_BS_SKIP = 1 } nn_bs_path;

typedef struct {
    nn_router router;
    nn_swiglu ffn;
    int64_t num_blocks, block_size, top_k;
    nn_bs_path path;
    sgt_tensor *down_t;  /* inference only: ffn.down.weight transposed [I, C], streamed by the decode
                          * kernel; NULL unless nn_bs_swiglu_prepare_decode made it (and then it must
                          * be remade whenever the weights change) */
    sgt_tensor *blocks_bf16; /* inference only: the FFN's weights block-major in bf16, [nb, 3, bs, C]
                          * (sgt_bsparse_swiglu_bf16), or NULL; the same rule as down_t */
} nn_bs_swiglu;

void nn_bs_swiglu_init(nn_bs_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                       int64_t block_size, int64_t top_k, double std, double down_std);
void nn_bs_swiglu_init_kind(nn_bs_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                            int64_t block_size, int64_t top_k, double std, double down_std, nn_router_kind kind);
/* x [..., C] -> [..., C]; *route_out (optional) receives the routing for the aux loss and stats. */
sgt_tensor *nn_bs_swiglu_forward(sgt_ctx *c, const nn_bs_swiglu *m, sgt_tensor *x, nn_route *route_out);

/* Makes (or refreshes) down_t from the current weights, in the parameter store's memory. */
void nn_bs_swiglu_prepare_decode(nn_bs_swiglu *m, nn_params *p);
/* Decoding over bf16 weights: makes (or refreshes) the bf16 copies of the FFN's and the router's
 * Linears, and blocks_bf16. */
void nn_bs_swiglu_prepare_bf16(nn_bs_swiglu *m, nn_params *p);
/* Inference (no tape): the forward with the router's hard top-k (no straight-through terms) and,
 * where they apply (nn_infer_bf16_applies), the bf16 copies (the router's too): the skipping path streams only the
 * selected blocks of blocks_bf16, the mask path multiplies the Linears' copies. Without copies it
 * is nn_bs_swiglu_forward. *route_out (optional) receives logits and indices (hard and mask may be
 * NULL). */
sgt_tensor *nn_bs_swiglu_infer(sgt_ctx *c, const nn_bs_swiglu *m, sgt_tensor *x, nn_route *route_out);

/* Per-block selection counts [nb] (f64 host array, summed over tokens) and mean router
 * probabilities softmax(l) [nb], from a routing. */
void nn_route_stats(const nn_route *r, double *counts, double *mean_probs);

#endif
