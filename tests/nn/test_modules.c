/* test_modules.c: float64 gradient checks of every nn module (nn/modules.h, nn/router.h) with
 * respect to its input and its parameters, plus the attention KV-cache path (token by token and
 * prefill + decode agree with one full causal forward), causality of attention, and Linear against
 * a naive x W^T + b. The harness (store, randomize, check) is module_check.h. */
#include "../../nn/router.h"
#include "module_check.h"

/* ---- Linear ---- */
FN(f_linear) { (void)n; return nn_linear_forward(c, u, x[0]); }

static void t_linear_grad(void **s) {
    (void)s;
    for (int bias = 0; bias < 2; bias++) {
        nn_params *p = store();
        nn_linear m;
        nn_linear_init(&m, p, "lin", 5, 4, bias, 0.5);
        if (bias) randomize(p, m.b, 1, -1, 1);
        sgt_tensor *in[] = {R(2, 2, 3, 5), m.w, m.b}; /* 3-D input */
        check(bias ? "linear with bias" : "linear without bias", f_linear, &m, in, bias ? 3 : 2, NULL);
        nn_params_destroy(p);
    }
}

/* y = x W^T + b against a triple loop; also a 1-D input */
static void t_linear_naive(void **s) {
    (void)s;
    nn_params *p = store();
    nn_linear m;
    nn_linear_init(&m, p, "lin", 5, 4, true, 0.5);
    randomize(p, m.b, 3, -1, 1);
    sgt_tensor *x = R(4, 2, 3, 5);
    sgt_tensor *y = nn_linear_forward(C, &m, x);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 4);
    const double *xv = sgt_ptr(x), *w = sgt_ptr(m.w), *b = sgt_ptr(m.b);
    double want[6 * 4];
    for (int r = 0; r < 6; r++)
        for (int o = 0; o < 4; o++) {
            double acc = b[o];
            for (int i = 0; i < 5; i++) acc += xv[r * 5 + i] * w[o * 5 + i];
            want[r * 4 + o] = acc;
        }
    tu_assert_close(y, want, 1e-12, 1e-13, "linear vs naive x W^T + b");
    sgt_tensor *row1 = sgt_narrow(C, sgt_reshape(C, x, SGT_SHAPE(6, 5)), 0, 1, 1);
    sgt_tensor *y1 = nn_linear_forward(C, &m, sgt_reshape(C, row1, SGT_SHAPE(5)));
    assert_int_equal(y1->ndim, 1);
    tu_assert_close(y1, want + 4, 1e-12, 1e-13, "linear of a 1-D input (row 1)");
    nn_params_destroy(p);
}

/* an f64 input to an f32 Linear (or the reverse) is an error naming the layer, not a silent f64
 * layer; f32 and bf16 inputs still mix with f32 weights (mixed precision) */
static void t_linear_dtype_mismatch(void **s) {
    (void)s;
    nn_params *p = nn_params_create(TEST_SEED, SGT_F32, SGT_CPU);
    nn_linear m;
    nn_linear_init(&m, p, "lin", 5, 4, true, 0.5);
    EXPECT_SGT_ERROR(nn_linear_forward(C, &m, R(1, 3, 5)), "linear lin.weight: the input is f64 but the weights are f32");
    EXPECT_SGT_ERROR(nn_linear_forward(C, &m, sgt_zeros(C, SGT_I32, SGT_SHAPE(3, 5))), "the input is i32");
    assert_int_equal(nn_linear_forward(C, &m, tu_rand(C, SGT_BF16, SGT_SHAPE(3, 5), 2, -1, 1))->dtype, SGT_BF16);
    assert_int_equal(nn_linear_forward(C, &m, tu_rand(C, SGT_F32, SGT_SHAPE(3, 5), 3, -1, 1))->dtype, SGT_F32);
    /* the norms follow the same rule (LayerNorm used to cast its f32 weights up to an f64 input) */
    nn_layernorm ln;
    nn_layernorm_init(&ln, p, "ln", 5, true, 1e-5);
    EXPECT_SGT_ERROR(nn_layernorm_forward(C, &ln, R(1, 3, 5)), "layernorm ln.weight: the input is f64 but the weights are f32");
    assert_int_equal(nn_layernorm_forward(C, &ln, tu_rand(C, SGT_BF16, SGT_SHAPE(3, 5), 5, -1, 1))->dtype, SGT_BF16);
    nn_rmsnorm rn;
    nn_rmsnorm_init(&rn, p, "rn", 5, 1e-5);
    EXPECT_SGT_ERROR(nn_rmsnorm_forward(C, &rn, R(1, 3, 5)), "f64");
    nn_params_destroy(p);
    nn_params *p64 = store();
    nn_linear_init(&m, p64, "lin64", 5, 4, false, 0.5);
    EXPECT_SGT_ERROR(nn_linear_forward(C, &m, tu_rand(C, SGT_F32, SGT_SHAPE(3, 5), 4, -1, 1)),
                     "the input is f32 but the weights are f64");
    nn_params_destroy(p64);
}

/* ---- Embedding ---- */
FN(f_embedding) { (void)n; return nn_embedding_forward(c, u, x[1]); }

static void t_embedding_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_embedding m;
    nn_embedding_init(&m, p, "emb", 6, 4, 1.0);
    int32_t ids[] = {3, 0, 3, 5, 1, 3, 0, 2}; /* repeats: their gradients accumulate */
    sgt_tensor *in[] = {m.w, sgt_from_i32(C, SGT_SHAPE(2, 4), ids)};
    check("embedding", f_embedding, &m, in, 2, (bool[]){true, false});
    nn_params_destroy(p);
}

/* ---- RMSNorm ---- */
FN(f_rmsnorm) { (void)n; return nn_rmsnorm_forward(c, u, x[0]); }

static void t_rmsnorm_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rmsnorm m;
    nn_rmsnorm_init(&m, p, "norm", 6, 1e-5);
    randomize(p, m.w, 5, 0.5, 1.5);
    sgt_tensor *in[] = {R(6, 2, 3, 6), m.w};
    check("rmsnorm", f_rmsnorm, &m, in, 2, NULL);
    nn_params_destroy(p);
}

/* ---- attention ---- */
enum { AB = 2, AT = 5, AC = 8, AH = 2, AD = AC / AH };
FN(f_attention) { (void)n; return nn_attention_forward(c, u, x[0], NULL); }

/* weights large enough (std 0.4) that the attention pattern is far from uniform */
static void attention_new(nn_params *p, nn_attention *m) { nn_attention_init(m, p, "attn", AC, AH, 0.4, 0.4); }

static void t_attention_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_attention m;
    attention_new(p, &m);
    sgt_tensor *in[] = {R(7, AB, AT, AC), m.qkv.w, m.proj.w};
    check("causal attention (x, qkv.weight, proj.weight)", f_attention, &m, in, 3, NULL);
    nn_params_destroy(p);
}

/* element [b, t, :] of a contiguous [B, T, C] host array */
static const double *row(const double *v, int64_t T, int64_t b, int64_t t) { return v + (b * T + t) * AC; }

static void assert_rows_close(const double *got, int64_t Tg, int64_t tg, const double *want, int64_t Tw, int64_t tw,
                              double tol, const char *what) {
    for (int64_t b = 0; b < AB; b++)
        for (int64_t ch = 0; ch < AC; ch++) {
            double g = row(got, Tg, b, tg)[ch], w = row(want, Tw, b, tw)[ch];
            if (!(fabs(g - w) <= tol))
                fail_msg("%s: batch %lld position %lld channel %lld: %.17g vs full forward %.17g (seed %u)", what,
                         (long long)b, (long long)tw, (long long)ch, g, w, TEST_SEED);
        }
}

/* Decoding with a KV cache gives the full causal forward's outputs, token by token (with a tape
 * attached, in a no-grad scope) and as a 3-token prefill followed by 2 single tokens (no tape). */
static void t_attention_kv_cache(void **s) {
    (void)s;
    nn_params *p = store();
    nn_attention m;
    attention_new(p, &m);
    sgt_tensor *x = R(8, AB, AT, AC);
    double *full = tu_host(nn_attention_forward(C, &m, x, NULL));

    ag_tape tape;
    ag_tape_init(&tape, C);
    ag_no_grad_begin(&tape);
    nn_kv_cache kv;
    nn_kv_cache_init(&kv, C, SGT_F64, AB, AH, AT, AD);
    for (int64_t t = 0; t < AT; t++) {
        sgt_tensor *y = nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, t, 1)), &kv);
        assert_int_equal(y->shape[1], 1);
        double *yv = tu_host(y);
        assert_rows_close(yv, 1, 0, full, AT, t, 1e-12, "token-by-token decode");
        free(yv);
    }
    assert_int_equal(kv.len, AT);
    assert_int_equal(tape.nnodes, 0); /* the no-grad scope recorded nothing */
    ag_no_grad_end(&tape);
    ag_tape_detach(&tape);
    EXPECT_SGT_ERROR(nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, 0, 1)), &kv), "KV cache full");

    nn_kv_cache kv2;
    nn_kv_cache_init(&kv2, C, SGT_F64, AB, AH, AT, AD);
    double *pre = tu_host(nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, 0, 3)), &kv2));
    for (int64_t t = 0; t < 3; t++) assert_rows_close(pre, 3, t, full, AT, t, 1e-12, "prefill of 3 tokens");
    free(pre);
    for (int64_t t = 3; t < AT; t++) {
        double *yv = tu_host(nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, t, 1)), &kv2));
        assert_rows_close(yv, 1, 0, full, AT, t, 1e-12, "decode after prefill");
        free(yv);
    }
    assert_int_equal(kv2.len, AT);
    free(full);
    nn_params_destroy(p);
}

/* Changing x at position t leaves the outputs at positions < t unchanged (bit for bit: the masked
 * probabilities are exactly 0) and changes the output at t. */
static void t_attention_causal(void **s) {
    (void)s;
    nn_params *p = store();
    nn_attention m;
    attention_new(p, &m);
    sgt_tensor *x = R(9, AB, AT, AC);
    double *y = tu_host(nn_attention_forward(C, &m, x, NULL));
    for (int64_t t = 0; t < AT; t++) {
        sgt_tensor *x2 = sgt_copy(C, x);
        double *v = sgt_ptr(x2);
        for (int64_t b = 0; b < AB; b++)
            for (int64_t ch = 0; ch < AC; ch++) v[(b * AT + t) * AC + ch] += 0.5 + 0.1 * (double)ch;
        double *y2 = tu_host(nn_attention_forward(C, &m, x2, NULL));
        for (int64_t q = 0; q < t; q++) assert_rows_close(y2, AT, q, y, AT, q, 0.0, "causality: an earlier position");
        double change = 0;
        for (int64_t b = 0; b < AB; b++)
            for (int64_t ch = 0; ch < AC; ch++) change += fabs(row(y2, AT, b, t)[ch] - row(y, AT, b, t)[ch]);
        if (!(change > 1e-3))
            fail_msg("changing x at position %lld did not change its output (%g)", (long long)t, change);
        free(y2);
    }
    free(y);
    nn_params_destroy(p);
}

/* ---- SwiGLU ---- */
FN(f_swiglu) { (void)n; return nn_swiglu_forward(c, u, x[0]); }

static void t_swiglu_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_swiglu m;
    nn_swiglu_init(&m, p, "ffn", 6, 10, 0.5, 0.5);
    sgt_tensor *in[] = {R(10, 2, 3, 6), m.gate.w, m.up.w, m.down.w};
    check("swiglu (x, gate, up, down)", f_swiglu, &m, in, 4, NULL);
    nn_params_destroy(p);
}

/* ---- cross-entropy ---- */
FN(f_ce) { (void)n; return nn_cross_entropy(c, x[0], x[1], *(const int32_t *)u); }

static void t_cross_entropy_grad(void **s) {
    (void)s;
    int32_t tg[] = {2, 0, 6, 6, 1, 4};
    int32_t none = SGT_NO_IGNORE, ign = 6;
    sgt_tensor *in[] = {tu_rand(C, SGT_F64, SGT_SHAPE(2, 3, 7), 11, -2, 2), sgt_from_i32(C, SGT_SHAPE(2, 3), tg)};
    check("cross-entropy, 3-D logits", f_ce, &none, in, 2, (bool[]){true, false});
    check("cross-entropy, 3-D logits, ignore_index", f_ce, &ign, in, 2, (bool[]){true, false});
    /* the value: mean NLL over the non-ignored targets, computed on the host */
    double *l = tu_host(in[0]), want = 0;
    int cnt = 0;
    for (int r = 0; r < 6; r++) {
        if (tg[r] == ign) continue;
        double mx = -INFINITY, se = 0;
        for (int v = 0; v < 7; v++) mx = fmax(mx, l[r * 7 + v]);
        for (int v = 0; v < 7; v++) se += exp(l[r * 7 + v] - mx);
        want += mx + log(se) - l[r * 7 + tg[r]];
        cnt++;
    }
    want /= cnt;
    tu_assert_close(nn_cross_entropy(C, in[0], in[1], ign), &want, 1e-12, 1e-14, "cross-entropy value");
    free(l);
}

/* ---- block-sparse SwiGLU, router in hard_only mode ---- */
enum { BC = 8, BNB = 4, BBS = 3, BK = 2 };
FN(f_bs_swiglu) { (void)n; return nn_bs_swiglu_forward(c, u, x[0], NULL); }

/* smallest gap, over tokens, between the k-th and (k+1)-th largest router logit: finite
 * differences of size ~1e-6 must not flip a selection */
static double topk_margin(const nn_router *r, sgt_tensor *x) {
    nn_route rt = nn_router_forward(C, r, x);
    int64_t nb = r->num_blocks, N = sgt_numel(rt.logits) / nb;
    double *l = tu_host(rt.logits), margin = INFINITY;
    for (int64_t i = 0; i < N; i++) {
        double srt[16];
        for (int64_t j = 0; j < nb; j++) srt[j] = l[i * nb + j];
        for (int64_t a = 0; a < nb; a++) /* selection sort, descending */
            for (int64_t b = a + 1; b < nb; b++)
                if (srt[b] > srt[a]) {
                    double t = srt[a];
                    srt[a] = srt[b];
                    srt[b] = t;
                }
        margin = fmin(margin, srt[r->top_k - 1] - srt[r->top_k]);
    }
    free(l);
    return margin;
}

static void t_bs_swiglu_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_bs_swiglu m;
    nn_bs_swiglu_init(&m, p, "bs", BC, BNB, BBS, BK, 0.5, 0.5);
    m.router.hard_only = true;
    sgt_tensor *x = R(12, 2, 3, BC);
    double margin = topk_margin(&m.router, x);
    if (!(margin > 1e-3)) fail_msg("setup: top-k margin %g too small for finite differences", margin);
    /* the routing actually varies over tokens, so the mask matters */
    nn_route rt;
    sgt_tensor *y = nn_bs_swiglu_forward(C, &m, x, &rt);
    assert_int_equal(y->ndim, 3);
    double counts[BNB], probs[BNB];
    nn_route_stats(&rt, counts, probs);
    int used = 0;
    for (int j = 0; j < BNB; j++) used += counts[j] > 0;
    assert_true(used >= 3);
    sgt_tensor *in[] = {x, m.ffn.gate.w, m.ffn.up.w, m.ffn.down.w};
    check("block-sparse swiglu, hard mask (x, gate, up, down)", f_bs_swiglu, &m, in, 4, NULL);

    /* The STE mode computes the same forward values, bit for bit, but its router gradient is a
     * surrogate that finite differences (which see a locally constant mask) must reject: this is
     * why the check above runs hard_only, and shows that it would notice a router term. */
    double *y_hard = tu_host(nn_bs_swiglu_forward(C, &m, x, NULL));
    m.router.hard_only = false;
    double *y_ste = tu_host(nn_bs_swiglu_forward(C, &m, x, NULL));
    assert_memory_equal(y_hard, y_ste, sizeof(double) * 2 * 3 * BC);
    free(y_hard);
    free(y_ste);
    sgt_tensor *in2[] = {x, m.router.fc2.b};
    ag_gradcheck_result r = ag_gradcheck(C, f_bs_swiglu, &m, in2, 2, NULL, NULL);
    print_message("    STE mode (expected to disagree with finite differences): %s\n", r.report);
    assert_false(r.pass);
    nn_params_destroy(p);
}

/* ---- the router variants (nn/router.h) ---- */

/* sigma-MoE's sigmoid gates: the output is a differentiable function of every input, the router
 * included, so the full finite-difference check passes on both paths (unlike the STE, above) */
static void t_bs_swiglu_sigmoid_grad(void **s) {
    (void)s;
    for (int skip = 0; skip <= 1; skip++) {
        nn_params *p = store();
        nn_bs_swiglu m;
        nn_bs_swiglu_init_kind(&m, p, "bs", BC, BNB, BBS, BK, 0.5, 0.5, NN_ROUTER_SIGMOID);
        m.path = skip ? NN_BS_SKIP : NN_BS_MASK;
        randomize(p, m.router.fc2.b, 16, -0.5, 0.5);
        sgt_tensor *x = R(17, 2, 3, BC);
        double margin = topk_margin(&m.router, x);
        if (!(margin > 1e-3)) fail_msg("setup: top-k margin %g too small for finite differences", margin);
        /* the gates are the sigmoids of the selected logits: the mask is not 0/1 */
        nn_route rt;
        nn_bs_swiglu_forward(C, &m, x, &rt);
        double *mk = tu_host(rt.mask), *lg = tu_host(rt.logits), *hd = tu_host(rt.hard);
        for (int64_t e = 0; e < sgt_numel(rt.mask); e++) {
            double want = hd[e] ? 1.0 / (1.0 + exp(-lg[e])) : 0.0;
            if (fabs(mk[e] - want) > 1e-15) fail_msg("sigmoid router: mask[%lld] = %.17g, expected %.17g", (long long)e, mk[e], want);
        }
        free(mk);
        free(lg);
        free(hd);
        sgt_tensor *in[] = {x, m.ffn.gate.w, m.ffn.up.w, m.ffn.down.w, m.router.fc1.w, m.router.fc1.b,
                            m.router.fc2.w, m.router.fc2.b};
        check(skip ? "sigmoid router, skipping path (x, FFN, router)" : "sigmoid router, mask path (x, FFN, router)",
              f_bs_swiglu, &m, in, 8, NULL);
        nn_params_destroy(p);
    }
}

/* auxiliary-loss-free balancing: the bias changes which blocks are selected (the top-k of l + b),
 * not the gates; it gets no gradient; nn_router_balance moves it by rate against the load */
static void t_router_balanced(void **s) {
    (void)s;
    nn_params *p = store();
    nn_bs_swiglu m;
    nn_bs_swiglu_init_kind(&m, p, "bs", BC, BNB, BBS, BK, 0.5, 0.5, NN_ROUTER_BALANCED);
    assert_non_null(m.router.bias);
    assert_non_null(nn_params_find(p, "bs.router.balance_bias"));
    const double b0[BNB] = {0.8, -0.8, 0.3, 0};
    sgt_copy_from_host(m.router.bias, b0);
    sgt_tensor *x = R(18, 2, 3, BC);
    nn_route rt = nn_router_forward(C, &m.router, x);
    /* the selection: the top-k of l + b, which differs from the top-k of l for some token */
    double *l = tu_host(rt.logits), *h = tu_host(rt.hard);
    const int64_t N = 6;
    int differs = 0;
    for (int64_t i = 0; i < N; i++) {
        double lb[BNB];
        for (int j = 0; j < BNB; j++) lb[j] = l[i * BNB + j] + b0[j];
        for (int j = 0; j < BNB; j++) {
            int above = 0, above_l = 0; /* how many beat block j (ties: the lower index) */
            for (int q = 0; q < BNB; q++) {
                above += lb[q] > lb[j] || (lb[q] == lb[j] && q < j);
                above_l += l[i * BNB + q] > l[i * BNB + j] || (l[i * BNB + q] == l[i * BNB + j] && q < j);
            }
            if ((above < BK) != (h[i * BNB + j] == 1.0))
                fail_msg("balanced router: token %lld block %d: hard %g, top-%d of l + b says %d", (long long)i, j,
                         h[i * BNB + j], BK, above < BK);
            differs += (above < BK) != (above_l < BK);
        }
    }
    assert_true(differs > 0);
    free(l);
    free(h);
    /* the STE gates: 1 in value at the selected blocks; the FFN through the hard mask passes the
     * finite-difference check, and the bias receives no gradient */
    m.router.hard_only = true;
    sgt_tensor *in[] = {x, m.ffn.gate.w, m.ffn.up.w, m.ffn.down.w};
    check("balanced router, hard mask (x, FFN)", f_bs_swiglu, &m, in, 4, NULL);
    m.router.hard_only = false;
    {
        ag_tape tape;
        ag_tape_init(&tape, C);
        sgt_tensor *y = nn_bs_swiglu_forward(C, &m, x, NULL);
        ag_backward(&tape, sgt_sum(C, sgt_mul(C, y, y), SGT_ALL_DIMS, false));
        sgt_tensor *gb = ag_grad(m.router.bias), *gf = ag_grad(m.router.fc2.b);
        double *g = gb ? tu_host(gb) : NULL, *g2 = tu_host(gf);
        double nz = 0, nz2 = 0;
        for (int j = 0; j < BNB; j++) {
            nz += g ? fabs(g[j]) : 0;
            nz2 += fabs(g2[j]);
        }
        if (nz != 0) fail_msg("balanced router: the selection bias received a gradient (|g| sum %g)", nz);
        assert_true(nz2 > 0); /* while the router's own bias did (the STE) */
        free(g);
        free(g2);
        ag_step_end(&tape);
        ag_tape_detach(&tape);
    }
    /* balance: over-loaded blocks go down by rate, under-loaded up, the mean-loaded stay */
    const double counts[BNB] = {10, 2, 4, 4}, rate = 0.25; /* mean 5 */
    nn_router_balance(&m.router, counts, rate);
    double *b1 = tu_host(m.router.bias);
    const double want[BNB] = {0.8 - rate, -0.8 + rate, 0.3 + rate, 0 + rate};
    for (int j = 0; j < BNB; j++)
        if (fabs(b1[j] - want[j]) > 1e-15) fail_msg("balance: bias[%d] = %g, expected %g", j, b1[j], want[j]);
    free(b1);
    const double even[BNB] = {5, 5, 5, 5};
    nn_router_balance(&m.router, even, rate);
    b1 = tu_host(m.router.bias);
    for (int j = 0; j < BNB; j++) assert_true(fabs(b1[j] - want[j]) <= 1e-15);
    free(b1);
    /* the other kinds ignore balancing */
    nn_bs_swiglu m2;
    nn_bs_swiglu_init_kind(&m2, p, "bs2", BC, BNB, BBS, BK, 0.5, 0.5, NN_ROUTER_STE);
    assert_null(m2.router.bias);
    nn_router_balance(&m2.router, counts, rate);
    nn_router_kind k;
    assert_int_equal(nn_router_kind_parse("balanced", &k), 0);
    assert_int_equal(k, NN_ROUTER_BALANCED);
    assert_int_equal(nn_router_kind_parse("sigmoid", &k), 0);
    assert_int_equal(k, NN_ROUTER_SIGMOID);
    assert_int_equal(nn_router_kind_parse("softmax", &k), -1);
    assert_string_equal(nn_router_kind_name(NN_ROUTER_STE), "ste");
    nn_params_destroy(p);
}

/* inference over bf16 copies applies each variant's gates and selection as the training forward
 * does (within bf16 rounding), on both paths */
static void t_router_variants_infer(void **s) {
    (void)s;
    for (int kind = NN_ROUTER_STE; kind <= NN_ROUTER_BALANCED; kind++)
        for (int skip = 0; skip <= 1; skip++) {
            nn_params *p = nn_params_create(TEST_SEED, SGT_F32, SGT_CPU);
            nn_bs_swiglu m;
            nn_bs_swiglu_init_kind(&m, p, "bs", 32, 4, 16, 2, 0.3, 0.3, (nn_router_kind)kind);
            m.path = skip ? NN_BS_SKIP : NN_BS_MASK;
            randomize(p, m.router.fc2.b, 19, -1, 1);
            if (m.router.bias) randomize(p, m.router.bias, 20, -1, 1);
            sgt_tensor *x = tu_rand(C, SGT_F32, SGT_SHAPE(NN_INFER_ROWS, 32), 21, -1, 1); /* a decode step */
            double *yf = tu_host(nn_bs_swiglu_forward(C, &m, x, NULL));
            if (skip) nn_bs_swiglu_prepare_decode(&m, p);
            nn_bs_swiglu_prepare_bf16(&m, p);
            nn_route rt;
            double *yi = tu_host(nn_bs_swiglu_infer(C, &m, x, &rt));
            double err = 0, mx = 0;
            for (int e = 0; e < NN_INFER_ROWS * 32; e++) {
                err = fmax(err, fabs(yi[e] - yf[e]));
                mx = fmax(mx, fabs(yf[e]));
            }
            print_message("    infer vs forward, router %s, %s path: max |diff| %.2e of max %.2e\n",
                          nn_router_kind_name((nn_router_kind)kind), skip ? "skip" : "mask", err, mx);
            if (!(err <= 2e-2 * mx))
                fail_msg("router %s, %s path: inference differs from the forward by %g (max %g)",
                         nn_router_kind_name((nn_router_kind)kind), skip ? "skip" : "mask", err, mx);
            free(yf);
            free(yi);
            nn_params_destroy(p);
        }
}

/* ---- load-balancing loss, through the router's logits (P carries the gradient) ---- */
typedef struct {
    nn_router *r;
    double alpha;
} lb_case;
FN(f_load_balance) {
    (void)n;
    const lb_case *k = u;
    nn_route rt = nn_router_forward(c, k->r, x[0]);
    return nn_load_balance_loss(c, &rt, k->r->top_k, k->alpha);
}

static void t_load_balance_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_router r;
    nn_router_init(&r, p, "router", BC, 6, 2, 0.3);
    randomize(p, r.fc1.b, 13, -0.5, 0.5);
    randomize(p, r.fc2.b, 14, -0.5, 0.5);
    sgt_tensor *x = R(15, 2, 5, BC);
    double margin = topk_margin(&r, x);
    if (!(margin > 1e-3)) fail_msg("setup: top-k margin %g too small for finite differences", margin);
    lb_case k = {&r, 0.7};
    sgt_tensor *in[] = {x, r.fc1.w, r.fc1.b, r.fc2.w, r.fc2.b};
    check("load-balance loss (x, fc1, fc2)", f_load_balance, &k, in, 5, NULL);
    nn_params_destroy(p);
}

#define T(name) cmocka_unit_test(name)
int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        T(t_linear_grad),        T(t_linear_naive),       T(t_embedding_grad),   T(t_rmsnorm_grad),
        T(t_attention_grad),     T(t_attention_kv_cache), T(t_attention_causal), T(t_swiglu_grad),
        T(t_cross_entropy_grad), T(t_bs_swiglu_grad),     T(t_load_balance_grad), T(t_bs_swiglu_sigmoid_grad), T(t_router_balanced), T(t_router_variants_infer),  T(t_linear_dtype_mismatch),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("modules", tests, setup, teardown);
}
