/* test_gradcheck.c: a float64 finite-difference gradient check of every differentiable op
 * (autograd/rules.c), on awkward shapes, broadcast inputs, views and reused inputs, plus deep
 * graphs. meson registers one test per case (the program's argument filters by name), so the
 * test log lists a gradient check for each op. */
#include "../../autograd/gradcheck.h"
#include "../common/test_util.h"

TU_GROUP_ENV
#define C (&env->ctx)
#define R(stream, ...) tu_rand(C, SGT_F64, SGT_SHAPE(__VA_ARGS__), stream, -1.0, 1.0)
#define POS(stream, ...) tu_rand(C, SGT_F64, SGT_SHAPE(__VA_ARGS__), stream, 0.5, 2.0)

/* values kept >= 0.2 away from 0 (relu's kink), random signs */
static sgt_tensor *away_from_zero(int nd, const int64_t *shape, uint64_t stream) {
    sgt_tensor *x = tu_rand(C, SGT_F64, nd, shape, stream, -1.0, 1.0);
    double *v = sgt_ptr(x);
    for (int64_t i = 0; i < sgt_numel(x); i++) v[i] = v[i] < 0 ? v[i] - 0.2 : v[i] + 0.2;
    return x;
}

static void check(ag_fn fn, void *user, sgt_tensor **in, int n, const bool *diff) {
    sgt_arena_mark m = sgt_arena_get_mark(env->arena);
    ag_gradcheck_result r = ag_gradcheck(C, fn, user, in, n, diff, NULL);
    print_message("    %s\n", r.report);
    if (!r.pass) fail_msg("gradcheck failed (seed %u): %s", TEST_SEED, r.report);
    assert_true(r.checked > 0);
    sgt_arena_rewind(env->arena, m);
}

#define FN(name) static sgt_tensor *name(sgt_ctx *c, sgt_tensor **x, int n, void *u)
#define UNUSED (void)n, (void)u

/* ---- views ---- */
FN(f_reshape) { UNUSED; return sgt_mul(c, sgt_reshape(c, x[0], SGT_SHAPE(5, -1)), sgt_reshape(c, x[0], SGT_SHAPE(5, 6))); }
static void t_reshape(void **s) { (void)s; sgt_tensor *in[] = {R(1, 2, 3, 5)}; check(f_reshape, NULL, in, 1, NULL); }

FN(f_permute) { UNUSED; sgt_tensor *p = sgt_permute(c, x[0], (int[]){2, 0, 1}); return sgt_mul(c, p, p); }
static void t_permute(void **s) { (void)s; sgt_tensor *in[] = {R(2, 2, 3, 4)}; check(f_permute, NULL, in, 1, NULL); }

/* transpose then reshape forces a copy of a non-contiguous view */
FN(f_transpose) { UNUSED; return sgt_reshape(c, sgt_transpose(c, x[0], 0, 1), SGT_SHAPE(-1)); }
static void t_transpose(void **s) { (void)s; sgt_tensor *in[] = {R(3, 3, 5)}; check(f_transpose, NULL, in, 1, NULL); }

/* two overlapping narrows of one input: gradients from both views accumulate */
FN(f_narrow) {
    UNUSED;
    sgt_tensor *a = sgt_narrow(c, x[0], 1, 0, 4), *b = sgt_narrow(c, x[0], 1, 2, 4);
    return sgt_mul(c, a, sgt_exp(c, b));
}
static void t_narrow(void **s) { (void)s; sgt_tensor *in[] = {R(4, 3, 7)}; check(f_narrow, NULL, in, 1, NULL); }

FN(f_split) {
    UNUSED;
    sgt_tensor *p[3];
    sgt_split(c, x[0], -1, 3, (int64_t[]){2, 3, 1}, p);
    return sgt_concat(c, 3, (sgt_tensor *[]){sgt_tanh(c, p[2]), p[0], sgt_mul(c, p[1], p[1])}, -1);
}
static void t_split_concat(void **s) { (void)s; sgt_tensor *in[] = {R(5, 2, 3, 6)}; check(f_split, NULL, in, 1, NULL); }

FN(f_expand) { UNUSED; return sgt_mul(c, sgt_expand(c, x[0], SGT_SHAPE(4, 3, 5)), x[1]); }
static void t_expand(void **s) { (void)s; sgt_tensor *in[] = {R(6, 3, 1), R(7, 4, 3, 5)}; check(f_expand, NULL, in, 2, NULL); }

FN(f_copy) { UNUSED; sgt_tensor *y = sgt_copy(c, sgt_transpose(c, x[0], 0, 1)); return sgt_mul(c, y, y); }
static void t_copy(void **s) { (void)s; sgt_tensor *in[] = {R(8, 4, 3)}; check(f_copy, NULL, in, 1, NULL); }

FN(f_cast) { UNUSED; return sgt_mul(c, sgt_cast(c, x[0], SGT_F64), x[0]); }
static void t_cast(void **s) { (void)s; sgt_tensor *in[] = {R(9, 5)}; check(f_cast, NULL, in, 1, NULL); }

/* ---- binary, with broadcasting both ways ---- */
FN(f_add) { UNUSED; return sgt_add(c, x[0], x[1]); }
FN(f_sub) { UNUSED; return sgt_sub(c, x[0], x[1]); }
FN(f_mul) { UNUSED; return sgt_mul(c, x[0], x[1]); }
FN(f_div) { UNUSED; return sgt_div(c, x[0], x[1]); }
static void binary_case(ag_fn f) {
    sgt_tensor *in[] = {R(10, 4, 1, 5), POS(11, 3, 1)};
    check(f, NULL, in, 2, NULL);
    sgt_tensor *in2[] = {R(12, 7), POS(13, 2, 7)}; /* bias-like */
    check(f, NULL, in2, 2, NULL);
}
static void t_add(void **s) { (void)s; binary_case(f_add); }
static void t_sub(void **s) { (void)s; binary_case(f_sub); }
static void t_mul(void **s) { (void)s; binary_case(f_mul); }
static void t_div(void **s) { (void)s; binary_case(f_div); }

/* ---- unary ---- */
typedef struct { sgt_op op; double s; } unary_case;
FN(f_unary) { (void)n; const unary_case *k = u; return sgt_unary(c, k->op, x[0], k->s); }
FN(f_unary_t) { (void)n; const unary_case *k = u; return sgt_unary(c, k->op, sgt_transpose(c, x[0], 0, 1), k->s); }
static void run_unary(sgt_op op, double sc, bool positive) {
    unary_case k = {op, sc};
    sgt_tensor *in[] = {positive ? POS(20, 3, 7) : away_from_zero(SGT_SHAPE(3, 7), 20)};
    check(f_unary, &k, in, 1, NULL);
    sgt_tensor *in2[] = {positive ? POS(21, 5, 4) : away_from_zero(SGT_SHAPE(5, 4), 21)};
    check(f_unary_t, &k, in2, 1, NULL); /* through a transposed view */
}
static void t_add_scalar(void **s) { (void)s; run_unary(SGT_OP_ADD_SCALAR, 0.7, false); }
static void t_mul_scalar(void **s) { (void)s; run_unary(SGT_OP_MUL_SCALAR, -1.3, false); }
static void t_pow_scalar(void **s) { (void)s; run_unary(SGT_OP_POW_SCALAR, 2.5, true); run_unary(SGT_OP_POW_SCALAR, 2.0, false); }
static void t_neg(void **s) { (void)s; run_unary(SGT_OP_NEG, 0, false); }
static void t_exp(void **s) { (void)s; run_unary(SGT_OP_EXP, 0, false); }
static void t_log(void **s) { (void)s; run_unary(SGT_OP_LOG, 0, true); }
static void t_sqrt(void **s) { (void)s; run_unary(SGT_OP_SQRT, 0, true); }
static void t_rsqrt(void **s) { (void)s; run_unary(SGT_OP_RSQRT, 0, true); }
static void t_tanh(void **s) { (void)s; run_unary(SGT_OP_TANH, 0, false); }
static void t_sigmoid(void **s) { (void)s; run_unary(SGT_OP_SIGMOID, 0, false); }
static void t_silu(void **s) { (void)s; run_unary(SGT_OP_SILU, 0, false); }
static void t_gelu(void **s) { (void)s; run_unary(SGT_OP_GELU, 0, false); }
static void t_gelu_erf(void **s) { (void)s; run_unary(SGT_OP_GELU_ERF, 0, false); }
static void t_sin(void **s) { (void)s; run_unary(SGT_OP_SIN, 0, false); }
static void t_cos(void **s) { (void)s; run_unary(SGT_OP_COS, 0, false); }
static void t_relu(void **s) { (void)s; run_unary(SGT_OP_RELU, 0, false); }

/* dropout: the backward regenerates the forward's mask (a second draw with another stream would
 * fail); through a transposed view, so the mask follows the logical position */
FN(f_dropout) { UNUSED; sgt_tensor *y = sgt_dropout(c, sgt_transpose(c, x[0], 0, 1), 0.4, 77, 3); return sgt_mul(c, y, y); }
static void t_dropout(void **s) { (void)s; sgt_tensor *in[] = {R(22, 6, 9)}; check(f_dropout, NULL, in, 1, NULL); }

/* ---- reductions ---- */
typedef struct { int dim; bool keep; uint32_t mask; } red_case;
FN(f_sum) { (void)n; const red_case *k = u; return k->mask ? sgt_sum_dims(c, x[0], k->mask, k->keep) : sgt_sum(c, x[0], k->dim, k->keep); }
FN(f_mean) { (void)n; const red_case *k = u; return sgt_mean(c, x[0], k->dim, k->keep); }
FN(f_max) { (void)n; const red_case *k = u; return sgt_max(c, x[0], k->dim, k->keep); }
static void run_reduce(ag_fn f, bool distinct) {
    red_case cases[] = {{1, false, 0}, {0, true, 0}, {-1, true, 0}, {SGT_ALL_DIMS, false, 0}};
    for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
        sgt_tensor *in[] = {distinct ? tu_distinct(C, SGT_F64, SGT_SHAPE(3, 4, 5), 30 + i) : R(30 + i, 3, 4, 5)};
        check(f, &cases[i], in, 1, NULL);
    }
}
static void t_sum(void **s) {
    (void)s;
    run_reduce(f_sum, false);
    red_case k = {0, false, 0x5}; /* dims 0 and 2 */
    sgt_tensor *in[] = {R(35, 3, 4, 5)};
    check(f_sum, &k, in, 1, NULL);
}
static void t_mean(void **s) { (void)s; run_reduce(f_mean, false); }
static void t_max(void **s) { (void)s; run_reduce(f_max, true); }

/* ---- softmax family ---- */
FN(f_softmax) { UNUSED; return sgt_softmax(c, x[0]); }
FN(f_log_softmax) { UNUSED; return sgt_log_softmax(c, x[0]); }
FN(f_softmax_causal) { UNUSED; return sgt_softmax_causal(c, x[0]); }
static void t_softmax(void **s) { (void)s; sgt_tensor *in[] = {R(40, 2, 3, 7)}; check(f_softmax, NULL, in, 1, NULL); }
static void t_log_softmax(void **s) { (void)s; sgt_tensor *in[] = {R(41, 4, 9)}; check(f_log_softmax, NULL, in, 1, NULL); }
static void t_softmax_causal(void **s) {
    (void)s;
    sgt_tensor *in[] = {R(42, 2, 5, 5)};
    check(f_softmax_causal, NULL, in, 1, NULL);
    sgt_tensor *in2[] = {R(43, 3, 6)}; /* Tk > Tq: a KV-cache-like window */
    check(f_softmax_causal, NULL, in2, 1, NULL);
}

/* ---- matmul ---- */
typedef struct { bool ta, tb; } mm_case;
FN(f_matmul) { (void)n; const mm_case *k = u; return sgt_matmul(c, x[0], x[1], k->ta, k->tb); }
static void t_matmul(void **s) {
    (void)s;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            mm_case k = {ta, tb};
            sgt_tensor *in[] = {ta ? R(50, 5, 3) : R(50, 3, 5), tb ? R(51, 4, 5) : R(51, 5, 4)};
            check(f_matmul, &k, in, 2, NULL);
            /* batched a, unbatched b (a Linear layer) */
            sgt_tensor *in2[] = {ta ? R(52, 2, 5, 3) : R(52, 2, 3, 5), tb ? R(53, 4, 5) : R(53, 5, 4)};
            check(f_matmul, &k, in2, 2, NULL);
        }
    mm_case k = {false, false};
    sgt_tensor *in3[] = {R(54, 3, 5), R(55, 2, 5, 4)}; /* unbatched a, batched b */
    check(f_matmul, &k, in3, 2, NULL);
    sgt_tensor *in4[] = {R(56, 2, 1, 3, 5), R(57, 1, 3, 5, 2)}; /* batch broadcast both ways */
    check(f_matmul, &k, in4, 2, NULL);
}
FN(f_matmul_views) { UNUSED; return sgt_matmul(c, sgt_transpose(c, x[0], 0, 1), sgt_narrow(c, x[1], 1, 1, 3), false, false); }
static void t_matmul_views(void **s) { (void)s; sgt_tensor *in[] = {R(58, 4, 3), R(59, 4, 5)}; check(f_matmul_views, NULL, in, 2, NULL); }

/* ---- indexing ---- */
FN(f_embedding) { UNUSED; return sgt_embedding(c, x[0], x[1]); }
static void t_embedding(void **s) {
    (void)s;
    int32_t ids[] = {3, 0, 3, 5, 1, 3}; /* repeats accumulate */
    sgt_tensor *in[] = {R(60, 6, 4), sgt_from_i32(C, SGT_SHAPE(2, 3), ids)};
    check(f_embedding, NULL, in, 2, (bool[]){true, false});
}
FN(f_topk) { UNUSED; sgt_tensor *v, *i; sgt_topk(c, x[0], 3, &v, &i); return sgt_mul(c, v, v); }
static void t_topk(void **s) { (void)s; sgt_tensor *in[] = {tu_distinct(C, SGT_F64, SGT_SHAPE(4, 7), 61)}; check(f_topk, NULL, in, 1, NULL); }
FN(f_gather) { UNUSED; return sgt_gather_last(c, x[0], x[1]); }
static void t_gather_last(void **s) {
    (void)s;
    int32_t ids[] = {0, 4, 4, 2, 1, 3};
    sgt_tensor *in[] = {R(62, 2, 5), sgt_from_i32(C, SGT_SHAPE(2, 3), ids)};
    check(f_gather, NULL, in, 2, (bool[]){true, false});
}
FN(f_scatter) { UNUSED; return sgt_scatter_add_last(c, x[0], x[1], 5); }
static void t_scatter_add_last(void **s) {
    (void)s;
    int32_t ids[] = {0, 4, 4, 2, 1, 3};
    sgt_tensor *in[] = {R(63, 2, 3), sgt_from_i32(C, SGT_SHAPE(2, 3), ids)};
    check(f_scatter, NULL, in, 2, (bool[]){true, false});
}
FN(f_concat) { UNUSED; return sgt_concat(c, 3, (sgt_tensor *[]){x[0], x[1], x[0]}, 1); }
static void t_concat(void **s) { (void)s; sgt_tensor *in[] = {R(64, 2, 3, 2), R(65, 2, 1, 2)}; check(f_concat, NULL, in, 2, NULL); }

/* ---- selection ---- */
FN(f_where) { UNUSED; return sgt_where(c, sgt_cmp(c, SGT_CMP_GT, x[0], x[1]), sgt_mul(c, x[0], x[0]), x[1]); }
static void t_where(void **s) { (void)s; sgt_tensor *in[] = {away_from_zero(SGT_SHAPE(3, 4), 70), R(71, 4)}; check(f_where, NULL, in, 2, NULL); }
FN(f_masked_fill) { UNUSED; return sgt_masked_fill(c, sgt_exp(c, x[0]), x[1], -3.0); }
static void t_masked_fill(void **s) {
    (void)s;
    double m[] = {1, 0, 0, 1, 0};
    sgt_tensor *in[] = {R(72, 2, 5), sgt_from_f64(C, SGT_F64, SGT_SHAPE(5), m)};
    check(f_masked_fill, NULL, in, 2, (bool[]){true, false});
}

/* ---- fused losses and norms ---- */
FN(f_ce) { (void)n; return sgt_cross_entropy(c, x[0], x[1], *(int32_t *)u, NULL); }
static void t_cross_entropy(void **s) {
    (void)s;
    int32_t tg[] = {2, 0, 6, 6, 1};
    int32_t none = SGT_NO_IGNORE, ign = 6;
    sgt_tensor *in[] = {R(80, 5, 7), sgt_from_i32(C, SGT_SHAPE(5), tg)};
    check(f_ce, &none, in, 2, (bool[]){true, false});
    check(f_ce, &ign, in, 2, (bool[]){true, false});
}
FN(f_rmsnorm) { UNUSED; return sgt_rmsnorm(c, x[0], x[1], 1e-5, NULL); }
static void t_rmsnorm(void **s) { (void)s; sgt_tensor *in[] = {R(81, 2, 3, 6), R(82, 6)}; check(f_rmsnorm, NULL, in, 2, NULL); }
FN(f_layernorm) { UNUSED; return sgt_layernorm(c, x[0], x[1], x[2], 1e-5, NULL, NULL); }
static void t_layernorm(void **s) { (void)s; sgt_tensor *in[] = {R(83, 4, 6), R(84, 6), R(85, 6)}; check(f_layernorm, NULL, in, 3, NULL); }

/* the padded cross-entropy: only the first 5 of 7 columns are the vocabulary */
FN(f_ce_padded) { UNUSED; return sgt_cross_entropy_padded(c, x[0], x[1], SGT_NO_IGNORE, 5, NULL); }
static void t_cross_entropy_padded(void **s) {
    (void)s;
    int32_t tg[] = {2, 0, 4, 4, 1};
    sgt_tensor *in[] = {R(86, 5, 7), sgt_from_i32(C, SGT_SHAPE(5), tg)};
    check(f_ce_padded, NULL, in, 2, (bool[]){true, false});
}

/* rmsnorm into another dtype: f64 in, f32 out would lose the FD's precision, so the check is of
 * the dtype plumbing through the rule with f64 -> f64 via sgt_rmsnorm_to */
FN(f_rmsnorm_to) { UNUSED; return sgt_rmsnorm_to(c, x[0], x[1], 1e-5, SGT_F64, NULL); }
static void t_rmsnorm_to(void **s) { (void)s; sgt_tensor *in[] = {R(87, 3, 5), R(88, 5)}; check(f_rmsnorm_to, NULL, in, 2, NULL); }

/* ---- fused attention: q, k, v; causal (with Tq < Tk: a KV cache) or not, and strided views ---- */
typedef struct { int64_t Tq; bool causal; } att_case;
FN(f_attention) {
    (void)n;
    const att_case *a = u;
    sgt_tensor *q = x[0];
    if (a->Tq < q->shape[2]) q = sgt_narrow(c, q, 2, q->shape[2] - a->Tq, a->Tq); /* the last Tq queries */
    sgt_tensor *y = sgt_attention_ex(c, q, x[1], x[2], NULL, 0.7, a->causal, NULL);
    return sgt_mul(c, y, y); /* a non-linear readout, so every y element's gradient differs */
}
/* q, k, v as the split of one [B, T, 3, H, D] buffer, as nn/modules.c makes them */
FN(f_attention_qkv) {
    UNUSED;
    const int64_t B = 2, T = 5, H = 2, D = 3;
    sgt_tensor *heads = sgt_permute(c, sgt_reshape(c, x[0], SGT_SHAPE(B, T, 3, H, D)), (int[]){2, 0, 3, 1, 4});
    sgt_tensor *p[3];
    sgt_split(c, heads, 0, 3, (int64_t[]){1, 1, 1}, p);
    for (int i = 0; i < 3; i++) p[i] = sgt_reshape(c, p[i], SGT_SHAPE(B, H, T, D));
    sgt_tensor *y = sgt_attention(c, p[0], p[1], p[2], 0.5, NULL);
    return sgt_tanh(c, y);
}
static void t_attention(void **s) {
    (void)s;
    att_case full = {6, true}, kv = {2, true}, enc = {6, false}, cross = {2, false};
    sgt_tensor *in[] = {R(110, 2, 3, 6, 4), R(111, 2, 3, 6, 4), R(112, 2, 3, 6, 4)};
    check(f_attention, &full, in, 3, NULL);
    check(f_attention, &kv, in, 3, NULL);
    check(f_attention, &enc, in, 3, NULL);   /* not causal: every query sees every key */
    check(f_attention, &cross, in, 3, NULL); /* 2 queries over 6 keys, not causal */
    sgt_tensor *in2[] = {R(113, 2, 5, 3 * 2 * 3)};
    check(f_attention_qkv, NULL, in2, 1, NULL);
}

/* ---- fused SwiGLU, with and without the block mask ---- */
FN(f_swiglu) { (void)n; return sgt_swiglu(c, x[0], x[1], u ? x[2] : NULL, u ? *(int64_t *)u : 0); }
static void t_swiglu(void **s) {
    (void)s;
    int64_t bs = 3;
    sgt_tensor *in[] = {R(115, 4, 9), R(116, 4, 9), POS(117, 4, 3)};
    check(f_swiglu, NULL, in, 2, NULL);
    check(f_swiglu, &bs, in, 3, NULL);
}

/* ---- the block-skipping SwiGLU (x, gate, up, down, selected-block mask values) ---- */
FN(f_bsparse) { UNUSED; return sgt_bsparse_swiglu(c, x[0], x[1], x[2], x[3], x[4], x[5], 3, NULL, NULL); }
static void t_bsparse_swiglu(void **s) {
    (void)s;
    int32_t ids[] = {0, 3, 2, 1, 3, 0, 1, 2, 0, 1, 2, 3, 3, 1}; /* 7 tokens (grouped kernel), top-2 of 4 */
    for (int n = 2; n <= 7; n += 5) { /* 2 tokens: the decode kernel */
        sgt_tensor *in[] = {R(95, n, 5), R(96, 12, 5), R(97, 12, 5), R(98, 5, 12), sgt_from_i32(C, SGT_SHAPE(n, 2), ids),
                            POS(99, n, 2)};
        check(f_bsparse, NULL, in, 6, (bool[]){true, true, true, true, false, true});
    }
}

/* ---- graphs: reuse and depth ---- */
FN(f_reuse) { UNUSED; sgt_tensor *y = sgt_mul(c, x[0], x[0]); return sgt_add(c, sgt_mul(c, y, x[0]), sgt_tanh(c, y)); }
static void t_reused_input(void **s) { (void)s; sgt_tensor *in[] = {R(90, 3, 4)}; check(f_reuse, NULL, in, 1, NULL); }

/* b is used before and after the add that also takes a: a gradient adopted without a copy
 * (ag_accum_owned) must never be shared between a and b */
FN(f_alias) {
    UNUSED;
    sgt_tensor *bb = sgt_mul(c, x[1], x[1]); /* b's gradient: first from the add below, then this */
    sgt_tensor *s = sgt_add(c, x[0], x[1]);
    return sgt_add(c, sgt_mul(c, s, s), bb);
}
static void t_grad_alias(void **s) { (void)s; sgt_tensor *in[] = {R(100, 3, 4), R(101, 3, 4)}; check(f_alias, NULL, in, 2, NULL); }

/* a 2-layer MLP with a residual, norm and softmax cross-entropy, repeated 6 times (a deep tape) */
FN(f_deep) {
    UNUSED;
    sgt_tensor *h = x[0];
    for (int l = 0; l < 6; l++) {
        sgt_tensor *a = sgt_gelu(c, sgt_matmul(c, sgt_rmsnorm(c, h, x[3], 1e-5, NULL), x[1], false, false));
        h = sgt_add(c, h, sgt_matmul(c, a, x[2], false, true));
    }
    return sgt_cross_entropy(c, sgt_reshape(c, h, SGT_SHAPE(-1, 4)), x[4], SGT_NO_IGNORE, NULL);
}
static void t_deep_graph(void **s) {
    (void)s;
    int32_t tg[] = {1, 3, 0, 2, 2, 1};
    sgt_tensor *in[] = {R(91, 2, 3, 4), tu_rand(C, SGT_F64, SGT_SHAPE(4, 5), 92, -0.5, 0.5),
                        tu_rand(C, SGT_F64, SGT_SHAPE(4, 5), 93, -0.5, 0.5), POS(94, 4),
                        sgt_from_i32(C, SGT_SHAPE(6), tg)};
    check(f_deep, NULL, in, 5, (bool[]){true, true, true, true, false});
}

#define T(name) cmocka_unit_test(name)
int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        T(t_reshape), T(t_permute), T(t_transpose), T(t_narrow), T(t_split_concat), T(t_expand), T(t_copy),
        T(t_cast), T(t_add), T(t_sub), T(t_mul), T(t_div), T(t_add_scalar), T(t_mul_scalar), T(t_pow_scalar),
        T(t_neg), T(t_exp), T(t_log), T(t_sqrt), T(t_rsqrt), T(t_tanh), T(t_sigmoid), T(t_silu), T(t_gelu),
        T(t_gelu_erf), T(t_sin), T(t_cos), T(t_relu), T(t_dropout), T(t_sum), T(t_mean), T(t_max), T(t_softmax), T(t_log_softmax), T(t_softmax_causal),
        T(t_matmul), T(t_matmul_views), T(t_embedding), T(t_topk), T(t_gather_last), T(t_scatter_add_last),
        T(t_concat), T(t_where), T(t_masked_fill), T(t_cross_entropy), T(t_rmsnorm), T(t_layernorm),
        T(t_bsparse_swiglu), T(t_reused_input), T(t_grad_alias), T(t_deep_graph), T(t_cross_entropy_padded),
        T(t_rmsnorm_to), T(t_attention), T(t_swiglu),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("gradcheck", tests, setup, teardown);
}
