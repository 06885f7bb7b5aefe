/* test_standard.c: the standard modules beside the GPT's own (nn/modules.h): LayerNorm, the GELU
 * MLP, rotary position embedding, dropout and its train/eval mode. Each has a float64 gradient
 * check with respect to its input and parameters and a check against a naive reference written
 * from the formula; RoPE also keeps q.k a function of the relative position only, and its
 * device-held positions give the same as host ones; dropout is the identity in eval and its masks
 * come back from (seed, offset); the top-k gate (nn/gating.h) in each normalisation against a
 * host top-k; the attention options (not causal, grouped-query, QKV bias, rotary) by gradient
 * checks, against the composed reference, GQA against MHA with duplicated heads, and through the
 * KV cache. The harness (store, randomize, check) is module_check.h. */
#include "../../nn/gating.h"
#include "../../nn/modules.h"
#include "module_check.h"

/* ---- LayerNorm ---- */
FN(f_layernorm) { (void)n; return nn_layernorm_forward(c, u, x[0]); }

static void t_layernorm_grad(void **s) {
    (void)s;
    for (int bias = 0; bias < 2; bias++) {
        nn_params *p = store();
        nn_layernorm m;
        nn_layernorm_init(&m, p, "ln", 6, bias, 1e-5);
        randomize(p, m.w, 1, 0.5, 1.5);
        if (bias) randomize(p, m.b, 2, -0.5, 0.5);
        sgt_tensor *in[] = {R(3, 2, 3, 6), m.w, m.b};
        check(bias ? "layernorm (x, weight, bias)" : "layernorm without bias (x, weight)", f_layernorm, &m, in,
              bias ? 3 : 2, NULL);
        nn_params_destroy(p);
    }
}

static void t_layernorm_naive(void **s) {
    (void)s;
    nn_params *p = store();
    nn_layernorm m;
    nn_layernorm_init(&m, p, "ln", 5, true, 1e-5);
    assert_string_equal(m.w->name, "ln.weight");
    assert_string_equal(m.b->name, "ln.bias");
    assert_false(nn_params_find(p, "ln.weight")->decay);
    randomize(p, m.w, 4, 0.5, 1.5);
    randomize(p, m.b, 5, -0.5, 0.5);
    sgt_tensor *x = tu_rand(C, SGT_F64, SGT_SHAPE(3, 5), 6, -2, 3);
    const double *xv = sgt_ptr(x), *w = sgt_ptr(m.w), *b = sgt_ptr(m.b);
    double want[15];
    for (int r = 0; r < 3; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < 5; i++) mean += xv[r * 5 + i] / 5;
        for (int i = 0; i < 5; i++) var += (xv[r * 5 + i] - mean) * (xv[r * 5 + i] - mean) / 5;
        for (int i = 0; i < 5; i++) want[r * 5 + i] = (xv[r * 5 + i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
    }
    tu_assert_close(nn_layernorm_forward(C, &m, x), want, 1e-12, 1e-13, "layernorm vs (x - mean) / sqrt(var + eps) w + b");
    EXPECT_SGT_ERROR(nn_layernorm_forward(C, &m, R(7, 3, 4)), "layernorm ln.weight: input [3,4]");
    nn_params_destroy(p);
}

/* ---- the GELU MLP ---- */
FN(f_mlp) { (void)n; return nn_mlp_forward(c, u, x[0]); }

static void t_mlp_grad(void **s) {
    (void)s;
    for (int k = 0; k < 2; k++) {
        nn_params *p = store();
        nn_mlp m;
        nn_mlp_init(&m, p, "mlp", 4, 7, 3, true, k ? NN_GELU_EXACT : NN_GELU_TANH, 0.6, 0.6);
        randomize(p, m.fc1.b, 8, -0.5, 0.5);
        randomize(p, m.fc2.b, 9, -0.5, 0.5);
        sgt_tensor *in[] = {R(10, 2, 3, 4), m.fc1.w, m.fc1.b, m.fc2.w, m.fc2.b};
        check(k ? "mlp, exact gelu (x, fc1, fc2)" : "mlp, tanh gelu (x, fc1, fc2)", f_mlp, &m, in, 5, NULL);
        nn_params_destroy(p);
    }
}

/* fc2(gelu(fc1 x)) by hand, both GELUs; no bias: no bias parameters */
static void t_mlp_naive(void **s) {
    (void)s;
    for (int k = 0; k < 2; k++) {
        nn_params *p = store();
        nn_mlp m;
        nn_mlp_init(&m, p, "mlp", 3, 5, 3, false, k ? NN_GELU_EXACT : NN_GELU_TANH, 1.0, 1.0);
        assert_null(m.fc1.b);
        assert_int_equal(p->n, 2);
        sgt_tensor *x = tu_rand(C, SGT_F64, SGT_SHAPE(4, 3), 11, -2, 2);
        const double *xv = sgt_ptr(x), *w1 = sgt_ptr(m.fc1.w), *w2 = sgt_ptr(m.fc2.w);
        double want[12];
        for (int r = 0; r < 4; r++) {
            double h[5];
            for (int j = 0; j < 5; j++) {
                double a = 0;
                for (int i = 0; i < 3; i++) a += xv[r * 3 + i] * w1[j * 3 + i];
                h[j] = k ? 0.5 * a * (1 + erf(a / sqrt(2.0)))
                         : 0.5 * a * (1 + tanh(sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
            }
            for (int o = 0; o < 3; o++) {
                double y = 0;
                for (int j = 0; j < 5; j++) y += h[j] * w2[o * 5 + j];
                want[r * 3 + o] = y;
            }
        }
        tu_assert_close(nn_mlp_forward(C, &m, x), want, 1e-12, 1e-13, k ? "mlp (exact gelu) vs by hand" : "mlp (tanh gelu) vs by hand");
        nn_params_destroy(p);
    }
}

/* ---- rotary position embedding ---- */
typedef struct {
    nn_rope *r;
    int time_dim;
    int64_t start;
    bool transpose; /* feed x [B, T, H, D] as a [B, H, T, D] view */
} rope_case;

FN(f_rope) {
    (void)n;
    const rope_case *k = u;
    sgt_tensor *in = k->transpose ? sgt_transpose(c, x[0], 1, 2) : x[0];
    sgt_tensor *y = nn_rope_forward(c, k->r, in, k->time_dim, k->start);
    return sgt_mul(c, y, y); /* non-linear readout: every element's gradient differs */
}

static void t_rope_grad(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rope r;
    nn_rope_init(&r, p, 6, 10000);
    assert_int_equal(p->n, 0); /* the frequencies are not a parameter */
    rope_case a = {&r, 1, 3, false}, b = {&r, 2, 0, true};
    sgt_tensor *in[] = {R(12, 2, 4, 3, 6)};
    check("rope [B, T, H, D] at positions 3..6", f_rope, &a, in, 1, NULL);
    check("rope through a [B, H, T, D] view", f_rope, &b, in, 1, NULL);
    nn_params_destroy(p);
}

/* y against the formula, for x [B, T, H, D] and its [B, H, T, D] view */
static void t_rope_naive(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rope r;
    const int64_t B = 2, T = 5, H = 3, D = 8, start = 7;
    nn_rope_init(&r, p, D, 500);
    sgt_tensor *x = tu_rand(C, SGT_F64, SGT_SHAPE(B, T, H, D), 13, -1, 1);
    const double *xv = sgt_ptr(x);
    double *want = malloc(sizeof(double) * (size_t)(B * T * H * D));
    for (int64_t bt = 0; bt < B * T; bt++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                const double th = (double)(start + bt % T) * pow(500, -2.0 * (double)i / (double)D);
                const double *xr = xv + (bt * H + h) * D;
                double *yr = want + (bt * H + h) * D;
                yr[i] = xr[i] * cos(th) - xr[i + D / 2] * sin(th);
                yr[i + D / 2] = xr[i + D / 2] * cos(th) + xr[i] * sin(th);
            }
    tu_assert_close(nn_rope_forward(C, &r, x, 1, start), want, 1e-12, 1e-14, "rope [B, T, H, D] vs the formula");
    sgt_tensor *yt = nn_rope_forward(C, &r, sgt_transpose(C, x, 1, 2), 2, start); /* [B, H, T, D] */
    tu_assert_close(sgt_transpose(C, yt, 1, 2), want, 1e-12, 1e-14, "rope [B, H, T, D] view vs the formula");
    /* device-style positions: i32 [T] gives the same */
    int32_t pos[5];
    for (int t = 0; t < T; t++) pos[t] = (int32_t)(start + t);
    tu_assert_close(nn_rope_forward_at(C, &r, x, 1, sgt_from_i32(C, SGT_SHAPE(T), pos)), want, 1e-12, 1e-14,
                    "rope at i32 positions");
    /* position 0 is the identity */
    double *x0 = tu_host(sgt_contiguous(C, sgt_narrow(C, x, 1, 0, 1)));
    tu_assert_close(nn_rope_forward(C, &r, sgt_narrow(C, x, 1, 0, 1), 1, 0), x0, 0, 0, "rope at position 0");
    free(want), free(x0);
    EXPECT_SGT_ERROR(nn_rope_init(&r, p, 7, 10000), "rope: the head width 7 must be even");
    EXPECT_SGT_ERROR(nn_rope_forward(C, &r, R(14, 2, 3, 6), 1, 0), "rope: input [2,3,6] f64, expected");
    EXPECT_SGT_ERROR(nn_rope_forward_at(C, &r, x, 1, sgt_from_i32(C, SGT_SHAPE(2), pos)), "rope: positions [2]");
    nn_params_destroy(p);
}

/* q at position m and k at position n: their rotated dot product depends on m - n only */
static void t_rope_relative(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rope r;
    nn_rope_init(&r, p, 8, 10000);
    sgt_tensor *q = R(15, 1, 1, 1, 8), *k = R(16, 1, 1, 1, 8);
    double dots[2];
    for (int shift = 0; shift < 2; shift++) {
        const int64_t m = 9 + 31 * shift, n = 4 + 31 * shift;
        sgt_tensor *qr = nn_rope_forward(C, &r, q, 1, m), *kr = nn_rope_forward(C, &r, k, 1, n);
        dots[shift] = sgt_item(sgt_sum(C, sgt_mul(C, qr, kr), SGT_ALL_DIMS, false));
    }
    if (!(fabs(dots[0] - dots[1]) <= 1e-12)) fail_msg("rope: q.k at (9, 4) is %.17g, at (40, 35) %.17g", dots[0], dots[1]);
    nn_params_destroy(p);
}

/* ---- dropout and the train/eval mode ---- */
/* each evaluation of the function restarts the mode's offset, so every finite difference sees
 * the same masks: the masks are a function of (seed, offset) */
FN(f_dropout) {
    (void)n;
    nn_dropout *d = u;
    d->mode->offset = 0;
    sgt_tensor *h = nn_dropout_forward(c, d, x[0]);
    return nn_dropout_forward(c, d, sgt_mul(c, h, h)); /* a second call: another mask */
}

static void t_dropout_grad(void **s) {
    (void)s;
    nn_mode mode = {.train = true, .seed = 5};
    nn_dropout d;
    nn_dropout_init(&d, &mode, 0.3);
    sgt_tensor *in[] = {R(20, 4, 9)};
    check("dropout, two calls in training", f_dropout, &d, in, 1, NULL);
}

static void t_dropout_mode(void **s) {
    (void)s;
    nn_mode mode = {0}; /* eval */
    nn_dropout d;
    nn_dropout_init(&d, &mode, 0.5);
    sgt_tensor *x = tu_rand(C, SGT_F64, SGT_SHAPE(8, 50), 21, 1, 2);
    assert_ptr_equal(nn_dropout_forward(C, &d, x), x); /* eval: the identity, no op */
    assert_int_equal(mode.offset, 0);
    mode = (nn_mode){.train = true, .seed = 77};
    double *a = tu_host(nn_dropout_forward(C, &d, x)), *b = tu_host(nn_dropout_forward(C, &d, x));
    assert_int_equal(mode.offset, 2);
    /* call k is sgt_dropout with stream k; two calls draw different masks; about half is dropped */
    tu_assert_close(sgt_dropout(C, x, 0.5, 77, 0), a, 0, 0, "dropout call 0 = sgt_dropout(seed, stream 0)");
    tu_assert_close(sgt_dropout(C, x, 0.5, 77, 1), b, 0, 0, "dropout call 1 = sgt_dropout(seed, stream 1)");
    int zeros = 0, same = 0;
    for (int i = 0; i < 400; i++) {
        zeros += a[i] == 0;
        same += (a[i] == 0) == (b[i] == 0);
    }
    if (zeros < 150 || zeros > 250 || same > 260) fail_msg("dropout p=0.5: %d of 400 dropped, %d agree", zeros, same);
    /* resuming at a saved offset gives the same mask again */
    mode.offset = 1;
    tu_assert_close(nn_dropout_forward(C, &d, x), b, 0, 0, "dropout resumed at offset 1");
    nn_dropout d0;
    nn_dropout_init(&d0, &mode, 0);
    assert_ptr_equal(nn_dropout_forward(C, &d0, x), x); /* p = 0: the identity in training too */
    free(a), free(b);
    EXPECT_SGT_ERROR(nn_dropout_init(&d, &mode, 1.0), "dropout: probability 1 is outside [0, 1)");
    EXPECT_SGT_ERROR(nn_dropout_init(&d, NULL, 0.1), "dropout: no mode");
}

/* ---- top-k gating ---- */
static char gate_what[128];
#define WHAT_GATE(g)                                                                                          \
    (snprintf(gate_what, sizeof gate_what, "top-%lld gate, %s%s", (long long)(g).k, gate_name[(g).norm],        \
              (g).renorm ? ", renormalised" : ""),                                                            \
     gate_what)
typedef struct {
    int64_t k;
    nn_gate_norm norm;
    bool renorm;
} gate_case;

static const char *gate_name[] = {"softmax", "softmax over the top-k", "sigmoid", "straight-through", "hard"};

/* both outputs in one scalar: the dense gates and the weights, through non-linear readouts */
FN(f_gate) {
    (void)n;
    const gate_case *g = u;
    nn_gate r = nn_topk_gate(c, x[0], g->k, g->norm, g->renorm);
    sgt_tensor *a = sgt_sum(c, sgt_mul(c, r.dense, r.dense), SGT_ALL_DIMS, false);
    return sgt_add(c, a, sgt_sum(c, sgt_exp(c, r.weights), SGT_ALL_DIMS, false));
}

static void t_gate_grad(void **s) {
    (void)s;
    const gate_case cases[] = {{2, NN_GATE_SOFTMAX, false}, {2, NN_GATE_SOFTMAX, true}, {3, NN_GATE_SOFTMAX_TOPK, false},
                               {2, NN_GATE_SIGMOID, true},  {1, NN_GATE_SIGMOID, false}};
    /* (the straight-through gradient is not the true one by design: test_router checks it
     * against its formula, through the router that uses this gate) */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sgt_tensor *in[] = {tu_distinct(C, SGT_F64, SGT_SHAPE(2, 3, 6), 30 + i)}; /* no ties: top-k is stable under FD */
        check(WHAT_GATE(cases[i]), f_gate, (void *)&cases[i], in, 1, NULL);
    }
}

/* indices, hard, weights and dense against a host top-k and the formulas */
static void t_gate_naive(void **s) {
    (void)s;
    const int64_t N = 5, E = 7, k = 3;
    sgt_tensor *x = tu_distinct(C, SGT_F64, SGT_SHAPE(N, E), 40);
    const double *xv = sgt_ptr(x);
    for (int norm = NN_GATE_SOFTMAX; norm <= NN_GATE_HARD; norm++)
        for (int renorm = 0; renorm < 2; renorm++) {
            nn_gate g = nn_topk_gate(C, x, k, (nn_gate_norm)norm, renorm);
            double *hi = tu_host(g.indices), *hw = tu_host(g.weights), *hh = tu_host(g.hard), *hd = tu_host(g.dense);
            for (int64_t r = 0; r < N; r++) {
                const double *l = xv + r * E;
                int top[3];
                for (int j = 0; j < k; j++) { /* selection by hand, best first */
                    int best = -1;
                    for (int e = 0; e < E; e++) {
                        bool used = false;
                        for (int q = 0; q < j; q++) used |= top[q] == e;
                        if (!used && (best < 0 || l[e] > l[best])) best = e;
                    }
                    top[j] = best;
                }
                double all = 0, sel = 0, w[3], wsum = 0;
                for (int e = 0; e < E; e++) all += exp(l[e]);
                for (int j = 0; j < k; j++) sel += exp(l[top[j]]);
                for (int j = 0; j < k; j++) {
                    const double v = l[top[j]];
                    w[j] = norm == NN_GATE_SOFTMAX ? exp(v) / all : norm == NN_GATE_SOFTMAX_TOPK ? exp(v) / sel
                         : norm == NN_GATE_SIGMOID ? 1 / (1 + exp(-v)) : 1;
                    wsum += w[j];
                }
                for (int j = 0; j < k; j++) {
                    const double want = renorm && norm != NN_GATE_STE && norm != NN_GATE_HARD ? w[j] / wsum : w[j];
                    if (hi[r * k + j] != top[j] || fabs(hw[r * k + j] - want) > 1e-14)
                        fail_msg("gate %s%s row %lld slot %d: expert %g weight %.17g, expected %d %.17g", gate_name[norm],
                                 renorm ? " renormalised" : "", (long long)r, j, hi[r * k + j], hw[r * k + j], top[j], want);
                }
                for (int e = 0; e < E; e++) {
                    double want_d = 0, want_h = 0;
                    for (int j = 0; j < k; j++)
                        if (top[j] == e) want_h = 1, want_d = hw[r * k + j];
                    if (hh[r * E + e] != want_h || hd[r * E + e] != want_d)
                        fail_msg("gate %s row %lld expert %d: hard %g dense %g, expected %g %g", gate_name[norm],
                                 (long long)r, e, hh[r * E + e], hd[r * E + e], want_h, want_d);
                }
            }
            free(hi), free(hw), free(hh), free(hd);
        }
    EXPECT_SGT_ERROR(nn_topk_gate(C, x, 8, NN_GATE_SOFTMAX, false), "top-k gate: k = 8 is outside 1..7 experts");
    EXPECT_SGT_ERROR(nn_topk_gate(C, x, 0, NN_GATE_SOFTMAX, false), "top-k gate: k = 0");
}

/* ---- attention options: not causal, grouped-query, QKV and output bias, rotary ---- */
enum { QB = 2, QT = 5, QC = 16, QH = 4, QD = QC / QH };

typedef struct {
    const char *what;
    int64_t kv_heads;
    bool bias, not_causal, rope;
} att_opts_case;

static const att_opts_case att_cases[] = {
    {"grouped-query (4 heads over 2), QKV and output bias, rotary", 2, true, false, true},
    {"multi-query (4 heads over 1), not causal", 1, false, true, false},
    {"not causal, rotary, QKV and output bias", 0, true, true, true},
};

/* a layer of the case's options, its weights (and bias) large enough to make attention peaked */
static void att_new(nn_params *p, nn_rope *rope, nn_attention *m, const att_opts_case *k) {
    nn_rope_init(rope, p, QD, 100);
    const nn_attention_opts o = {.n_kv_heads = k->kv_heads, .qkv_bias = k->bias, .proj_bias = k->bias,
                                 .not_causal = k->not_causal,
                                 .rope = k->rope ? rope : NULL};
    nn_attention_init_opts(m, p, "attn", QC, QH, &o, 0.5, 0.5);
    if (k->bias) randomize(p, m->qkv.b, 50, -0.5, 0.5), randomize(p, m->proj.b, 52, -0.5, 0.5);
}

FN(f_att) { (void)n; return nn_attention_forward(c, u, x[0], NULL); }

static void t_attention_opts_grad(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof att_cases / sizeof *att_cases; i++) {
        nn_params *p = store();
        nn_rope rope;
        nn_attention m;
        att_new(p, &rope, &m, &att_cases[i]);
        assert_int_equal(m.qkv.w->shape[0], (QH + 2 * m.Hk) * QD);
        assert_true((m.proj.b != NULL) == att_cases[i].bias);
        sgt_tensor *in[] = {R(51, QB, QT, QC), m.qkv.w, m.proj.w, m.qkv.b, m.proj.b};
        check(att_cases[i].what, f_att, &m, in, att_cases[i].bias ? 5 : 3, NULL);
        nn_params_destroy(p);
    }
}

/* the fused op against the composed reference (matmul, softmax, matmul) in every case */
static void t_attention_opts_composed(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof att_cases / sizeof *att_cases; i++) {
        nn_params *p = store();
        nn_rope rope;
        nn_attention m;
        att_new(p, &rope, &m, &att_cases[i]);
        sgt_tensor *x = R(52, QB, QT, QC);
        double *fused = tu_host(nn_attention_forward(C, &m, x, NULL));
        m.composed = true;
        tu_assert_close(nn_attention_forward(C, &m, x, NULL), fused, 1e-12, 1e-13, att_cases[i].what);
        free(fused);
        nn_params_destroy(p);
    }
}

/* grouped-query attention is multi-head attention whose key/value heads are copies within each
 * group: a 4-head layer with the 2-head layer's key and value rows duplicated gives its output */
static void t_attention_gqa_is_mha(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rope rope;
    nn_attention gq, mh;
    att_new(p, &rope, &gq, &att_cases[0]);
    const nn_attention_opts o = {.qkv_bias = true, .proj_bias = true, .rope = &rope};
    nn_attention_init_opts(&mh, p, "mha", QC, QH, &o, 0.5, 0.5);
    const int64_t g = QH / gq.Hk;
    double *w = tu_host(gq.qkv.w), *b = tu_host(gq.qkv.b), *wm = malloc(sizeof(double) * 3 * QC * QC),
           *bm = malloc(sizeof(double) * 3 * QC);
    for (int64_t r = 0; r < 3 * QC; r++) { /* row r of the MHA projection: q row, or the k/v row of head r/D's group */
        const int64_t part = r / QC, h = r % QC / QD, d = r % QD;
        const int64_t src = part == 0 ? r : QC + (part - 1) * gq.Hk * QD + (h / g) * QD + d;
        for (int64_t ch = 0; ch < QC; ch++) wm[r * QC + ch] = w[src * QC + ch];
        bm[r] = b[src];
    }
    sgt_copy_from_host(mh.qkv.w, wm);
    sgt_copy_from_host(mh.qkv.b, bm);
    sgt_copy_into(&p->ctx, mh.proj.w, gq.proj.w);
    sgt_copy_into(&p->ctx, mh.proj.b, gq.proj.b);
    sgt_tensor *x = R(53, QB, QT, QC);
    double *yg = tu_host(nn_attention_forward(C, &gq, x, NULL));
    tu_assert_close(nn_attention_forward(C, &mh, x, NULL), yg, 1e-12, 1e-13,
                    "grouped-query layer vs multi-head with duplicated key/value heads");
    free(w), free(b), free(wm), free(bm), free(yg);
    EXPECT_SGT_ERROR(nn_attention_init_opts(&mh, p, "bad", QC, QH, &(nn_attention_opts){.n_kv_heads = 3}, 0.5, 0.5),
                     "attention bad: 4 query heads are not a multiple of 3 key/value heads");
    nn_rope r6;
    nn_rope_init(&r6, p, 6, 100);
    EXPECT_SGT_ERROR(nn_attention_init_opts(&mh, p, "bad", QC, QH, &(nn_attention_opts){.rope = &r6}, 0.5, 0.5),
                     "a rotary embedding of width 6 for heads of width 4");
    nn_params_destroy(p);
}

/* not causal: the output at position 0 moves when the last token changes (causal: it does not) */
static void t_attention_not_causal(void **s) {
    (void)s;
    for (int nc = 0; nc < 2; nc++) {
        nn_params *p = store();
        nn_attention m;
        nn_attention_init_opts(&m, p, "attn", QC, QH, &(nn_attention_opts){.not_causal = nc}, 0.5, 0.5);
        sgt_tensor *x = R(54, 1, QT, QC), *x2 = sgt_copy(C, x);
        double *v = sgt_ptr(x2);
        for (int ch = 0; ch < QC; ch++) v[(QT - 1) * QC + ch] += 0.7;
        double *y = tu_host(nn_attention_forward(C, &m, x, NULL)), *y2 = tu_host(nn_attention_forward(C, &m, x2, NULL));
        double change = 0;
        for (int ch = 0; ch < QC; ch++) change += fabs(y[ch] - y2[ch]);
        if (nc ? !(change > 1e-3) : change != 0)
            fail_msg("%s attention: position 0 moved by %g when the last token changed", nc ? "non-causal" : "causal", change);
        free(y), free(y2);
        nn_params_destroy(p);
    }
}

/* decoding with a KV cache of Hk heads, token by token, gives the full forward (grouped-query
 * with rotary: the cached keys keep the rotation of their own positions) */
static void t_attention_opts_kv_cache(void **s) {
    (void)s;
    nn_params *p = store();
    nn_rope rope;
    nn_attention m;
    att_new(p, &rope, &m, &att_cases[0]);
    sgt_tensor *x = R(55, QB, QT, QC);
    double *full = tu_host(nn_attention_forward(C, &m, x, NULL));
    nn_kv_cache kv;
    nn_kv_cache_init(&kv, C, SGT_F64, QB, m.Hk, QT, QD);
    for (int64_t t = 0; t < QT; t++) {
        double *yv = tu_host(nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, t, 1)), &kv));
        for (int64_t b = 0; b < QB; b++)
            for (int ch = 0; ch < QC; ch++)
                if (!(fabs(yv[b * QC + ch] - full[(b * QT + t) * QC + ch]) <= 1e-12))
                    fail_msg("decode with rope and GQA: batch %lld position %lld channel %d: %.17g vs %.17g", (long long)b,
                             (long long)t, ch, yv[b * QC + ch], full[(b * QT + t) * QC + ch]);
        free(yv);
    }
    nn_kv_cache bad;
    nn_kv_cache_init(&bad, C, SGT_F64, QB, QH, QT, QD);
    EXPECT_SGT_ERROR(nn_attention_forward(C, &m, sgt_contiguous(C, sgt_narrow(C, x, 1, 0, 1)), &bad),
                     "the KV cache has 4 heads of 4, the layer 2 key/value heads of 4");
    free(full);
    nn_params_destroy(p);
}

#define T(name) cmocka_unit_test(name)
int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        T(t_layernorm_grad), T(t_layernorm_naive), T(t_mlp_grad), T(t_mlp_naive),
        T(t_rope_grad),      T(t_rope_naive),      T(t_rope_relative), T(t_dropout_grad),
        T(t_dropout_mode),   T(t_gate_grad),       T(t_gate_naive),    T(t_attention_opts_grad),
        T(t_attention_opts_composed), T(t_attention_gqa_is_mha), T(t_attention_not_causal),
        T(t_attention_opts_kv_cache),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("standard modules", tests, setup, teardown);
}
