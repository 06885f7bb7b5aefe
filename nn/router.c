/* router.c: TopKRouter with the straight-through estimator, the load-balancing loss and the
 * block-sparse (mask-and-multiply) SwiGLU. See router.h for the formulas. */
#include "router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"ste", "sigmoid", "balanced"};

const char *nn_router_kind_name(nn_router_kind k) {
    return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?";
}

int nn_router_kind_parse(const char *name, nn_router_kind *k) {
    for (unsigned i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
        if (name && !strcmp(name, kind_names[i])) {
            *k = (nn_router_kind)i;
            return 0;
        }
    return -1;
}

void nn_router_init(nn_router *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks, int64_t top_k,
                    double std) {
    nn_router_init_kind(m, p, prefix, C, num_blocks, top_k, std, NN_ROUTER_STE);
}

void nn_router_init_kind(nn_router *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                         int64_t top_k, double std, nn_router_kind kind) {
    SGT_CHECK(top_k >= 1 && top_k <= num_blocks, "router %s: top_k %lld is outside 1..%lld blocks", prefix,
              (long long)top_k, (long long)num_blocks);
    SGT_CHECK(kind >= NN_ROUTER_STE && kind <= NN_ROUTER_BALANCED, "router %s: unknown kind %d", prefix, (int)kind);
    char buf[NN_NAME_MAX];
    m->num_blocks = num_blocks;
    m->top_k = top_k;
    m->kind = kind;
    m->hard_only = false;
    nn_linear_init(&m->fc1, p, nn_join(buf, sizeof buf, prefix, "fc1"), C, NN_ROUTER_HIDDEN, true, std);
    nn_linear_init(&m->fc2, p, nn_join(buf, sizeof buf, prefix, "fc2"), NN_ROUTER_HIDDEN, num_blocks, true, std);
    /* a parameter so checkpoints carry it; it never gets a gradient, so AdamW leaves it alone
     * (zero moments, no decay) and only nn_router_balance moves it */
    m->bias = kind == NN_ROUTER_BALANCED
                  ? nn_param_new(p, prefix, "balance_bias", SGT_SHAPE(num_blocks), NN_INIT_ZEROS, 0, false)
                  : NULL;
}

sgt_tensor *nn_router_selection_scores(sgt_ctx *c, const nn_router *m, sgt_tensor *logits) {
    sgt_tensor *l = ag_detach(c, logits);
    return m->bias ? sgt_add(c, l, ag_detach(c, m->bias)) : l;
}

void nn_router_balance(nn_router *m, const double *counts, double rate) {
    if (m->kind != NN_ROUTER_BALANCED || !m->bias) return;
    const int64_t nb = m->num_blocks;
    double mean = 0, *b = malloc(sizeof(double) * (size_t)nb);
    SGT_CHECK(b, "out of host memory for the router's balancing bias");
    for (int64_t j = 0; j < nb; j++) mean += counts[j] / (double)nb;
    sgt_to_f64(m->bias, b);
    for (int64_t j = 0; j < nb; j++) b[j] += counts[j] > mean ? -rate : counts[j] < mean ? rate : 0.0;
    if (m->bias->dtype == SGT_F64) sgt_copy_from_host(m->bias, b);
    else {
        SGT_CHECK(m->bias->dtype == SGT_F32, "router: the balancing bias must be f32 or f64");
        float *f = (float *)b; /* in place, front to back: f[j] is written after b[j] is read */
        for (int64_t j = 0; j < nb; j++) f[j] = (float)b[j];
        sgt_copy_from_host(m->bias, f);
    }
    free(b);
}

nn_route nn_router_forward(sgt_ctx *c, const nn_router *m, sgt_tensor *x) {
    nn_route r;
    r.logits = nn_linear_forward(c, &m->fc2, sgt_gelu(c, nn_linear_forward(c, &m->fc1, x)));
    /* the general top-k gate (gating.h): the straight-through estimator, sigma-MoE's sigmoid gates,
     * or the STE over a balancing selection bias */
    const nn_gate_norm norm = m->hard_only ? NN_GATE_HARD : m->kind == NN_ROUTER_SIGMOID ? NN_GATE_SIGMOID : NN_GATE_STE;
    nn_gate g = nn_topk_gate_biased(c, r.logits, m->bias ? ag_detach(c, m->bias) : NULL, m->top_k, norm, false);
    r.hard = g.hard;
    r.indices = g.indices;
    r.mask = g.dense;
    r.weights = g.weights;
    return r;
}

sgt_tensor *nn_load_balance_loss(sgt_ctx *c, const nn_route *r, int64_t top_k, double alpha) {
    const int64_t nb = r->logits->shape[r->logits->ndim - 1];
    const int64_t N = sgt_numel(r->logits) / nb;
    sgt_tensor *l2 = sgt_reshape(c, r->logits, SGT_SHAPE(N, nb));
    sgt_tensor *h2 = sgt_reshape(c, r->hard, SGT_SHAPE(N, nb));
    sgt_tensor *f = sgt_mul_scalar(c, sgt_sum(c, h2, 0, false), 1.0 / (double)(N * top_k)); /* [nb], constant */
    sgt_tensor *P = sgt_mean(c, sgt_softmax(c, l2), 0, false);                              /* [nb] */
    sgt_tensor *dot = sgt_sum(c, sgt_mul(c, f, P), SGT_ALL_DIMS, false);
    return sgt_mul_scalar(c, dot, alpha * (double)nb);
}

void nn_bs_swiglu_init(nn_bs_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                       int64_t block_size, int64_t top_k, double std, double down_std) {
    nn_bs_swiglu_init_kind(m, p, prefix, C, num_blocks, block_size, top_k, std, down_std, NN_ROUTER_STE);
}

void nn_bs_swiglu_init_kind(nn_bs_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t num_blocks,
                            int64_t block_size, int64_t top_k, double std, double down_std, nn_router_kind kind) {
    char buf[NN_NAME_MAX];
    m->num_blocks = num_blocks;
    m->block_size = block_size;
    m->top_k = top_k;
    m->path = NN_BS_MASK;
    m->down_t = NULL;
    m->blocks_bf16 = NULL;
    nn_router_init_kind(&m->router, p, nn_join(buf, sizeof buf, prefix, "router"), C, num_blocks, top_k, std, kind);
    nn_swiglu_init(&m->ffn, p, prefix, C, num_blocks * block_size, std, down_std);
}

static sgt_tensor *skip_forward(sgt_ctx *c, const nn_bs_swiglu *m, sgt_tensor *x, const nn_route *r) {
    const int64_t C = x->shape[x->ndim - 1], N = sgt_numel(x) / C, k = m->top_k;
    sgt_tensor *x2 = sgt_reshape(c, x, SGT_SHAPE(N, C));
    sgt_tensor *idx = sgt_reshape(c, r->indices, SGT_SHAPE(N, k));
    sgt_tensor *mval = sgt_reshape(c, r->weights, SGT_SHAPE(N, k)); /* the mask at the selected blocks */
    sgt_tensor *y = sgt_bsparse_swiglu_ex(c, x2, m->ffn.gate.w, m->ffn.up.w, m->ffn.down.w, m->down_t, idx, mval,
                                          m->block_size, NULL, NULL);
    return sgt_reshape(c, y, x->ndim, x->shape);
}

sgt_tensor *nn_bs_swiglu_forward(sgt_ctx *c, const nn_bs_swiglu *m, sgt_tensor *x, nn_route *route_out) {
    /* mixed precision: the router (0.75% of the FLOPs) decides in f32 (bf16 logits would tie far
     * more often in the top-k); the FFN runs in x's dtype */
    const sgt_dtype wt = m->router.fc1.w->dtype;
    nn_check_input_dtype("bs_swiglu router", m->router.fc1.w, x);
    nn_route r = nn_router_forward(c, &m->router, x->dtype == wt ? x : sgt_cast(c, x, wt));
    if (route_out) *route_out = r;
    if (m->path == NN_BS_SKIP) { /* the skipping kernel runs in the weights' dtype */
        if (x->dtype == m->ffn.gate.w->dtype) return skip_forward(c, m, x, &r);
        return sgt_cast(c, skip_forward(c, m, sgt_cast(c, x, m->ffn.gate.w->dtype), &r), x->dtype);
    }
    /* mask-and-multiply: silu(gate x) * up x * mask (expanded per block) in one fused op */
    sgt_tensor *h = nn_swiglu_hidden_masked(c, &m->ffn, x, r.mask, m->block_size); /* [..., nb*bs] */
    return nn_linear_forward(c, &m->ffn.down, h);
}

void nn_bs_swiglu_prepare_decode(nn_bs_swiglu *m, nn_params *p) {
    sgt_tensor *wd = m->ffn.down.w; /* [C, I] */
    if (!m->down_t) m->down_t = sgt_empty(&p->ctx, wd->dtype, SGT_SHAPE(wd->shape[1], wd->shape[0]));
    sgt_copy_into(&p->ctx, m->down_t, sgt_transpose(&p->ctx, wd, 0, 1));
}

void nn_bs_swiglu_prepare_bf16(nn_bs_swiglu *m, nn_params *p) {
    nn_swiglu_prepare_bf16(&m->ffn, p);
    nn_linear_prepare_bf16(&m->router.fc1, p);
    nn_linear_prepare_bf16(&m->router.fc2, p);
    const int64_t nb = m->num_blocks, bs = m->block_size, C = m->ffn.C;
    if (!m->blocks_bf16) m->blocks_bf16 = sgt_empty(&p->ctx, SGT_BF16, SGT_SHAPE(nb, 3, bs, C));
    /* part q of every block: gate rows, up rows, down columns as rows ([C, I]^T = [I, C]) */
    sgt_tensor *parts[3] = {m->ffn.gate.w_bf16, m->ffn.up.w_bf16, m->ffn.down.w_bf16};
    sgt_arena *tmp = sgt_arena_create("block-major copy", p->ctx.device, 0, 0);
    sgt_ctx tc = {.arena = tmp, .device = p->ctx.device};
    for (int q = 0; q < 3; q++) {
        sgt_tensor *w = q == 2 ? sgt_transpose(&tc, parts[q], 0, 1) : parts[q]; /* [I, C] */
        sgt_copy_into(&tc, sgt_reshape(&tc, sgt_narrow(&tc, m->blocks_bf16, 1, q, 1), SGT_SHAPE(nb, bs, C)),
                      sgt_reshape(&tc, sgt_contiguous(&tc, w), SGT_SHAPE(nb, bs, C)));
    }
    sgt_arena_destroy(tmp);
}

sgt_tensor *nn_bs_swiglu_infer(sgt_ctx *c, const nn_bs_swiglu *m, sgt_tensor *x, nn_route *route_out) {
    const bool bf16 = m->ffn.gate.w_bf16 && nn_infer_bf16_applies(x);
    if (!bf16) return nn_bs_swiglu_forward(c, m, x, route_out);
    const int64_t C = x->shape[x->ndim - 1], N = sgt_numel(x) / C, nb = m->num_blocks, k = m->top_k;
    nn_route r = {0};
    /* the router through its bf16 copies too: OpenBLAS's f32 GEMV, called between our own OpenMP
     * regions, cost ~0.12 ms per layer in thread handoffs (bench_decode: skip 6.5 -> 5.0 ms/token);
     * the decode is the model with every matrix rounded to bf16, routing included */
    r.logits = nn_linear_infer(c, &m->router.fc2, sgt_gelu(c, nn_linear_infer(c, &m->router.fc1, x)));
    sgt_tensor *vals, *y;
    sgt_topk(c, nn_router_selection_scores(c, &m->router, r.logits), (int)k, &vals, &r.indices);
    /* the gates: ones (the STE's value), or sigma-MoE's sigmoid of the selected logits */
    sgt_tensor *w = m->router.kind == NN_ROUTER_SIGMOID ? sgt_sigmoid(c, sgt_gather_last(c, r.logits, r.indices)) : NULL;
    if (m->path == NN_BS_SKIP && m->blocks_bf16) {
        y = sgt_bsparse_swiglu_bf16(c, sgt_reshape(c, x, SGT_SHAPE(N, C)), m->blocks_bf16,
                                    sgt_reshape(c, r.indices, SGT_SHAPE(N, k)), w ? sgt_reshape(c, w, SGT_SHAPE(N, k)) : NULL);
        y = sgt_reshape(c, y, x->ndim, x->shape);
    } else { /* mask-and-multiply over every block, by the (gated) mask */
        r.hard = sgt_scatter_add_last(c, sgt_full(c, r.logits->dtype, r.indices->ndim, r.indices->shape, 1.0),
                                      r.indices, nb);
        r.mask = w ? sgt_scatter_add_last(c, w, r.indices, nb) : r.hard;
        sgt_tensor *g = nn_linear_infer(c, &m->ffn.gate, x), *u = nn_linear_infer(c, &m->ffn.up, x);
        y = nn_linear_infer(c, &m->ffn.down, sgt_swiglu(c, g, u, r.mask, m->block_size));
    }
    if (route_out) *route_out = r;
    return y;
}

void nn_route_stats(const nn_route *r, double *counts, double *mean_probs) {
    const int64_t nb = r->logits->shape[r->logits->ndim - 1], N = sgt_numel(r->logits) / nb;
    double *h = malloc(sizeof(double) * (size_t)(N * nb)), *l = malloc(sizeof(double) * (size_t)(N * nb));
    SGT_CHECK(h && l, "out of host memory for routing statistics");
    sgt_to_f64(r->hard, h);
    sgt_to_f64(r->logits, l);
    for (int64_t j = 0; j < nb; j++) counts[j] = mean_probs[j] = 0;
    for (int64_t i = 0; i < N; i++) {
        double mx = l[i * nb], s = 0;
        for (int64_t j = 1; j < nb; j++) mx = l[i * nb + j] > mx ? l[i * nb + j] : mx;
        for (int64_t j = 0; j < nb; j++) s += exp(l[i * nb + j] - mx);
        for (int64_t j = 0; j < nb; j++) {
            counts[j] += h[i * nb + j];
            mean_probs[j] += exp(l[i * nb + j] - mx) / s / (double)N;
        }
    }
    free(h);
    free(l);
}
