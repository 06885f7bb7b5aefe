/* test_gpt.c: the GPT builder. Parameter counts of both sgt-150m models against hand-computed
 * numbers; float64 gradient checks of a 2-layer GPT, dense and SGT; KV-cache decoding equal to
 * the full forward; a tiny dense and a tiny SGT model overfit one fixed batch. */
#include "../../autograd/gradcheck.h"
#include "../../models/gpt.h"
#include "../common/test_util.h"

/* ---- parameter counts ---- */

static void t_param_counts_sgt150m(void **s) {
    (void)s;
    /* By hand, C = 768, L = 12, V = 50257, ctx = 1024, I = 2048 (= 32 blocks x 64):
     *   wte 50257*768 = 38,597,376     wpe 1024*768 = 786,432     head 38,597,376    ln_f 768
     *   per layer: ln1+ln2 1,536 + qkv 1,769,472 + proj 589,824 + gate/up/down 4,718,592 = 7,079,424
     *   x12 = 84,953,088
     *   dense total = 162,935,040
     *   router per layer: fc1 768*128+128 = 98,432, fc2 128*32+32 = 4,128 -> 102,560; x12 = 1,230,720
     *   SGT total = 164,165,760; router share 0.750% */
    const int64_t want_dense = 162935040, want_router = 1230720, want_sparse = 164165760;
    for (int sparse = 0; sparse < 2; sparse++) {
        gpt_config cfg;
        assert_int_equal(gpt_preset("sgt-150m", &cfg), 0);
        cfg.sparse = sparse;
        nn_params *p = nn_params_create(1, SGT_F32, SGT_CPU);
        p->skip_init = true; /* counting only */
        gpt_model *m = gpt_build(&cfg, p);
        assert_int_equal(gpt_param_count(m), sparse ? want_sparse : want_dense);
        assert_int_equal(gpt_router_param_count(m), sparse ? want_router : 0);
        assert_int_equal(gpt_config_param_count(&cfg), gpt_param_count(m));
        print_message("    sgt-150m %s: %lld params, router %lld (%.3f%%)\n", sparse ? "sparse" : "dense",
                      (long long)gpt_param_count(m), (long long)gpt_router_param_count(m),
                      100.0 * (double)gpt_router_param_count(m) / (double)gpt_param_count(m));
        gpt_free(m);
        nn_params_destroy(p);
    }
}

static void t_param_names(void **s) {
    (void)s;
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = true;
    nn_params *p = nn_params_create(1, SGT_F32, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    const char *names[] = {"wte.weight", "wpe.weight", "layers.1.attn.qkv.weight", "layers.0.ffn.router.fc1.weight",
                           "layers.1.ffn.router.fc2.bias", "layers.0.ffn.down.weight", "ln_f.weight", "head.weight"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        if (!nn_params_find(p, names[i])) fail_msg("parameter %s missing", names[i]);
    /* no decay on norms, biases and embeddings; decay on matrices */
    assert_false(nn_params_find(p, "wte.weight")->decay);
    assert_false(nn_params_find(p, "layers.0.ln1.weight")->decay);
    assert_false(nn_params_find(p, "layers.1.ffn.router.fc2.bias")->decay);
    assert_true(nn_params_find(p, "layers.0.attn.qkv.weight")->decay);
    /* residual projections are initialised with std / sqrt(2 L) */
    double sd[2] = {0};
    const char *w[2] = {"layers.0.attn.qkv.weight", "layers.0.attn.proj.weight"};
    for (int k = 0; k < 2; k++) {
        sgt_tensor *t = nn_params_find(p, w[k])->t;
        double *v = tu_host(t), ss = 0;
        for (int64_t i = 0; i < sgt_numel(t); i++) ss += v[i] * v[i];
        sd[k] = sqrt(ss / (double)sgt_numel(t));
        free(v);
    }
    assert_true(fabs(sd[0] - 0.02) < 0.003);
    assert_true(fabs(sd[1] - 0.02 / 2.0) < 0.002); /* L = 2: sqrt(2 L) = 2 */
    gpt_free(m);
    nn_params_destroy(p);
}

/* ---- whole-model gradient checks ---- */

typedef struct {
    gpt_model *m;
    sgt_tensor *idx, *tgt;
    double aux;
} gc_user;

static sgt_tensor *f_gpt(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)x, (void)n;
    gc_user *g = u;
    gpt_forward_opts o = {.targets = g->tgt, .aux_weight = g->aux};
    return gpt_forward(c, g->m, g->idx, &o).loss;
}

static void gradcheck_model(bool sparse) {
    tu_env *e = tu_env_new();
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = sparse;
    cfg.init_std = 0.3; /* larger weights: gradients well above the finite-difference noise */
    nn_params *p = nn_params_create(7, SGT_F64, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    /* The STE's gradient is by design not the derivative of the forward pass; check the rest of the
     * model with the true, piecewise-constant mask, and the STE against its formula (test_router). */
    for (int64_t i = 0; i < cfg.n_layers; i++) m->layers[i].sffn.router.hard_only = true;
    int32_t ids[10], tg[10];
    for (int i = 0; i < 10; i++) {
        ids[i] = (int32_t)((i * 37 + 11) % cfg.vocab);
        tg[i] = (int32_t)((i * 53 + 5) % cfg.vocab);
    }
    gc_user u = {m, sgt_from_i32(&e->ctx, SGT_SHAPE(2, 5), ids), sgt_from_i32(&e->ctx, SGT_SHAPE(2, 5), tg), 0.5};
    sgt_tensor *in[64];
    SGT_CHECK(p->n <= 64, "too many parameters for the test");
    for (int i = 0; i < p->n; i++) in[i] = p->items[i].t;
    /* gradcheck holds at most 16 inputs: check them in groups */
    for (int at = 0; at < p->n; at += 16) {
        int cnt = p->n - at < 16 ? p->n - at : 16;
        ag_gradcheck_opts o = {.max_elems = 12, .rtol = 1e-5, .atol = 1e-8};
        ag_gradcheck_result r = ag_gradcheck(&e->ctx, f_gpt, &u, in + at, cnt, NULL, &o);
        print_message("    %s params %d..%d: %s\n", sparse ? "sgt" : "dense", at, at + cnt - 1, r.report);
        if (!r.pass) fail_msg("%s gradcheck failed at parameter %s: %s", sparse ? "sgt" : "dense",
                              r.worst_input >= 0 ? p->items[at + r.worst_input].name : "?", r.report);
    }
    gpt_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_gradcheck_dense(void **s) { (void)s; gradcheck_model(false); }
static void t_gradcheck_sgt(void **s) { (void)s; gradcheck_model(true); }

/* a nano model (dense or SGT) with parameters in dt, seeded; free with nano_free */
static gpt_model *nano(bool sparse, uint64_t seed, sgt_dtype dt) {
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = sparse;
    return gpt_build(&cfg, nn_params_create(seed, dt, SGT_CPU));
}

static void nano_free(gpt_model *m) {
    nn_params *p = m->params;
    gpt_free(m);
    nn_params_destroy(p);
}

/* n token ids (i * mul + add) mod V */
static void some_ids(int32_t *ids, int n, int mul, int add, int64_t V) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * mul + add) % V);
}

/* ---- KV-cache decoding ---- */

static void decode_parity(bool sparse, sgt_dtype dt, double tol) {
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = sparse;
    nn_params *p = nn_params_create(3, dt, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    const int B = 2, T = 9;
    int32_t ids[18];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 29 + 3) % cfg.vocab);
    sgt_tensor *idx = sgt_from_i32(c, SGT_SHAPE(B, T), ids);
    double *full = tu_host(gpt_forward(c, m, idx, NULL).logits); /* [B, T, V] */
    gpt_kv kv;
    gpt_kv_init(&kv, c, m, B, cfg.ctx_len);
    /* prefill 4 tokens, then one at a time */
    int64_t at = 0;
    while (at < T) {
        int64_t n = at == 0 ? 4 : 1;
        sgt_tensor *chunk = sgt_contiguous(c, sgt_narrow(c, idx, 1, at, n));
        sgt_tensor *lg = gpt_forward(c, m, chunk, &(gpt_forward_opts){.kv = &kv}).logits; /* [B, n, V] */
        double *got = tu_host(lg);
        for (int b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++)
                for (int64_t v = 0; v < cfg.vocab; v++) {
                    double a = got[(b * n + t) * cfg.vocab + v], w = full[(b * T + at + t) * cfg.vocab + v];
                    if (fabs(a - w) > tol * (1 + fabs(w)))
                        fail_msg("%s decode: b %d pos %lld vocab %lld: %.9g vs full %.9g", sparse ? "sgt" : "dense", b,
                                 (long long)(at + t), (long long)v, a, w);
                }
        free(got);
        at += n;
    }
    assert_int_equal(kv.len, T);
    free(full);
    gpt_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_decode_dense(void **s) { (void)s; decode_parity(false, SGT_F64, 1e-10); decode_parity(false, SGT_F32, 1e-4); }
static void t_decode_sgt(void **s) { (void)s; decode_parity(true, SGT_F64, 1e-10); decode_parity(true, SGT_F32, 1e-4); }

/* ---- the static-shape decoder (models/decoder.h): each step's logits equal the full forward's ---- */

#include "../../models/decoder.h"

static void decoder_parity(bool sparse, bool skip, sgt_dtype dt, double tol) {
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = sparse;
    cfg.ffn_skip = skip;
    nn_params *p = nn_params_create(5, dt, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    gpt_prepare_decode(m, SGT_F32);
    const int T = 11;
    int32_t ids[11];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 37 + 5) % cfg.vocab);
    double *full = tu_host(gpt_forward(c, m, sgt_from_i32(c, SGT_SHAPE(1, T), ids), NULL).logits); /* [1, T, V] */
    gpt_decoder *d = gpt_decoder_create(m, 16, true); /* on the CPU: eager static steps */
    for (int at = 2; at <= T; at++) {
        const float *lg = at == 2 ? gpt_decoder_prefill(d, ids, 3) : gpt_decoder_step(d, ids[at]);
        const int pos = at == 2 ? 2 : at; /* the position whose logits came back */
        for (int64_t v = 0; v < cfg.vocab; v++) {
            double w = full[pos * cfg.vocab + v];
            if (fabs(lg[v] - w) > tol * (1 + fabs(w)))
                fail_msg("decoder (%s%s): pos %d vocab %lld: %.9g vs full %.9g", sparse ? "sgt" : "dense",
                         skip ? ", skip" : "", pos, (long long)v, lg[v], w);
        }
        if (at == T - 1) break;
    }
    assert_int_equal(gpt_decoder_len(d), T);
    assert_false(gpt_decoder_replaying(d)); /* nothing to replay on the CPU */
    EXPECT_SGT_ERROR(gpt_decoder_step(d, (int32_t)cfg.vocab), "outside the vocabulary");
    gpt_decoder_destroy(d);
    free(full);
    gpt_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}
static void t_decoder(void **s) {
    (void)s;
    /* f64 models: the decoder hands back f32 logits, hence 1e-7 */
    decoder_parity(false, false, SGT_F64, 1e-7);
    decoder_parity(true, false, SGT_F64, 1e-7);
    decoder_parity(true, true, SGT_F64, 1e-7);
    decoder_parity(false, false, SGT_F32, 1e-4);
    /* a model set to bf16 compute still decodes in its weights' f32: the logits match f32's */
    tu_env *e = tu_env_new();
    gpt_model *m = nano(false, 5, SGT_F32);
    const int32_t ids[4] = {3, 17, 42, 8};
    double *full = tu_host(gpt_forward(&e->ctx, m, sgt_from_i32(&e->ctx, SGT_SHAPE(1, 4), ids), NULL).logits);
    m->cfg.compute = SGT_BF16;
    gpt_decoder *d = gpt_decoder_create(m, 8, true);
    const float *lg = gpt_decoder_prefill(d, ids, 4);
    for (int64_t v = 0; v < m->cfg.vocab; v++)
        if (fabs(lg[v] - full[3 * m->cfg.vocab + v]) > 1e-4 * (1 + fabs(full[3 * m->cfg.vocab + v])))
            fail_msg("decoder of a bf16-compute model: vocab %lld %.9g vs f32 %.9g", (long long)v, lg[v],
                     full[3 * m->cfg.vocab + v]);
    gpt_decoder_destroy(d);
    free(full);
    nano_free(m);
    tu_env_free(e);
}

/* ---- decoding over bf16 weight copies (gpt_prepare_decode(m, SGT_BF16)) ---- */

/* rounds every matrix that gets a bf16 copy (attention, FFN, router, head) through bf16, in place: the
 * f32 model whose full forward is the oracle of the bf16 decode */
static void round_matrices(nn_params *p) {
    for (int i = 0; i < p->n; i++) {
        const char *n = p->items[i].name;
        sgt_tensor *t = p->items[i].t;
        const bool mat = t->ndim == 2 && !strstr(n, "wte") && !strstr(n, "wpe");
        if (mat) sgt_copy_into(&p->ctx, t, sgt_cast(&p->ctx, sgt_cast(&p->ctx, t, SGT_BF16), SGT_F32));
    }
}

/* decoder logits (prefill of 3, then steps) against the full forward of `oracle` at each position,
 * within tol (1 + |logit|); returns the largest difference */
static double decode_vs(gpt_model *m, gpt_model *oracle, double tol, const char *what) {
    double worst = 0;
    tu_env *e = tu_env_new();
    const int T = 11;
    int32_t ids[11];
    some_ids(ids, T, 37, 5, m->cfg.vocab);
    double *full = tu_host(gpt_forward(&e->ctx, oracle, sgt_from_i32(&e->ctx, SGT_SHAPE(1, T), ids), NULL).logits);
    gpt_decoder *d = gpt_decoder_create(m, 16, true);
    for (int at = 2; at < T; at++) {
        const float *lg = at == 2 ? gpt_decoder_prefill(d, ids, 3) : gpt_decoder_step(d, ids[at]);
        for (int64_t v = 0; v < m->cfg.vocab; v++) {
            const double w = full[at * m->cfg.vocab + v];
            worst = fmax(worst, fabs(lg[v] - w));
            if (fabs(lg[v] - w) > tol * (1 + fabs(w)))
                fail_msg("%s: pos %d vocab %lld: %.9g vs %.9g", what, at, (long long)v, lg[v], w);
        }
    }
    gpt_decoder_destroy(d);
    free(full);
    tu_env_free(e);
    return worst;
}

static void t_decode_bf16(void **s) {
    (void)s;
    for (int kind = 0; kind < 3; kind++) { /* dense, SGT mask-and-multiply, SGT skipping */
        gpt_model *m = nano(kind > 0, 9, SGT_F32), *oracle = nano(kind > 0, 9, SGT_F32);
        if (kind == 2) gpt_set_ffn_skip(m, true);
        tu_env *e = tu_env_new();
        int32_t ids[6];
        some_ids(ids, 6, 11, 2, m->cfg.vocab);
        sgt_tensor *idx = sgt_from_i32(&e->ctx, SGT_SHAPE(1, 6), ids);
        double *before = tu_host(gpt_forward(&e->ctx, m, idx, NULL).logits);
        gpt_prepare_decode(m, SGT_BF16);
        assert_non_null(m->layers[0].attn.qkv.w_bf16);
        assert_non_null(m->head.w_bf16);
        if (kind == 2) assert_non_null(m->layers[1].sffn.blocks_bf16);
        /* a forward without a KV cache (training, perplexity) still reads the f32 weights, bit for bit */
        double *after = tu_host(gpt_forward(&e->ctx, m, idx, NULL).logits);
        for (int64_t i = 0; i < 6 * m->cfg.vocab; i++)
            if (after[i] != before[i]) fail_msg("kind %d: logit %lld changed by preparing bf16 copies", kind, (long long)i);
        /* the decode equals the f32 model with its matrices rounded to bf16 (f32 sums in other orders),
         * and that much closer than to the unrounded model: the copies are what it reads */
        const char *what = kind == 0 ? "bf16 decode, dense" : kind == 1 ? "bf16 decode, sgt mask" : "bf16 decode, sgt skip";
        const double off = decode_vs(m, oracle, 1e-1, what);
        round_matrices(oracle->params);
        const double near = decode_vs(m, oracle, 1e-5, what);
        if (!(near * 20 < off)) fail_msg("%s: %.3g from the rounded model, %.3g from the f32 one", what, near, off);
        free(before);
        free(after);
        tu_env_free(e);
        nano_free(m);
        nano_free(oracle);
    }
    /* a tied head streams the bf16 copy of wte, whose embedding rows stay f32: near the f32 model */
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.tie_head = true;
    gpt_model *m = gpt_build(&cfg, nn_params_create(4, SGT_F32, SGT_CPU)), *f = gpt_build(&cfg, nn_params_create(4, SGT_F32, SGT_CPU));
    gpt_prepare_decode(m, SGT_BF16);
    assert_non_null(m->head.w_bf16);
    decode_vs(m, f, 2e-2, "bf16 decode, tied head vs f32"); /* bf16 rounding: 2^-9 relative per weight */
    nano_free(m);
    nano_free(f);
    /* an f64 model has no bf16 copies */
    gpt_model *d = nano(false, 1, SGT_F64);
    EXPECT_SGT_ERROR(gpt_prepare_decode(d, SGT_BF16), "need an f32 model");
    nano_free(d);
}

/* ---- fused vs composed attention, and mixed precision, on the whole model ---- */
static void t_fused_vs_composed(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    for (int sparse = 0; sparse <= 1; sparse++) {
        gpt_model *m = nano(sparse, 7, SGT_F64);
        const int64_t V = m->cfg.vocab;
        int32_t ids[2 * 13];
        some_ids(ids, 26, 53, 1, V);
        sgt_tensor *idx = sgt_from_i32(c, SGT_SHAPE(2, 13), ids);
        double *a = tu_host(gpt_forward(c, m, idx, NULL).logits);
        gpt_set_attention(m, true);
        double *b = tu_host(gpt_forward(c, m, idx, NULL).logits);
        for (int64_t i = 0; i < 26 * V; i++)
            if (fabs(a[i] - b[i]) > 1e-11 * (1 + fabs(b[i])))
                fail_msg("fused vs composed attention (%s): logit %lld %.15g vs %.15g", sparse ? "sgt" : "dense",
                         (long long)i, a[i], b[i]);
        free(a);
        free(b);
        nano_free(m);
    }
    tu_env_free(e);
}

/* bf16 mixed precision (on the CPU through the dispatch point's promotion) tracks f32: the loss
 * within 2% and the logits within 0.05 + 2% (a few bf16 roundings of 2-layer activations, each
 * 2^-9 relative, compounding through the layers; measured ~0.3% on the loss) */
static void t_mixed_precision(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    for (int sparse = 0; sparse <= 1; sparse++) {
        gpt_model *m = nano(sparse, 9, SGT_F32);
        const int64_t V = m->cfg.vocab;
        int32_t ids[2 * 17], tg[2 * 17];
        some_ids(ids, 34, 31, 7, V);
        some_ids(tg, 34, 17, 2, V);
        sgt_tensor *idx = sgt_from_i32(c, SGT_SHAPE(2, 17), ids), *t = sgt_from_i32(c, SGT_SHAPE(2, 17), tg);
        gpt_output o32 = gpt_forward(c, m, idx, &(gpt_forward_opts){.targets = t});
        m->cfg.compute = SGT_BF16;
        gpt_output o16 = gpt_forward(c, m, idx, &(gpt_forward_opts){.targets = t});
        assert_int_equal(o16.logits->dtype, SGT_BF16);
        assert_int_equal(o16.loss->dtype, SGT_F32); /* the loss is reduced in f32 */
        const double l32 = sgt_item(o32.loss), l16 = sgt_item(o16.loss);
        if (fabs(l16 - l32) > 0.02 * fabs(l32)) fail_msg("bf16 loss %.6f vs f32 %.6f (%s)", l16, l32, sparse ? "sgt" : "dense");
        double *a = tu_host(o32.logits), *b = tu_host(o16.logits);
        for (int64_t i = 0; i < 34 * V; i++)
            if (fabs(a[i] - b[i]) > 0.05 + 0.02 * fabs(a[i])) fail_msg("bf16 logit %lld %.6f vs f32 %.6f", (long long)i, b[i], a[i]);
        free(a);
        free(b);
        nano_free(m);
    }
    tu_env_free(e);
}

/* ---- overfitting one batch ---- */

#include "../../nn/optim.h"

static void overfit(bool sparse) {
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    gpt_config cfg;
    gpt_preset("tiny", &cfg);
    cfg.sparse = sparse;
    cfg.vocab = 512; /* tiny's layers; a small vocabulary keeps the test fast */
    cfg.ctx_len = 64;
    nn_params *p = nn_params_create(11, SGT_F32, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    nn_adamw *opt = nn_adamw_create(p, 0.9, 0.95, 1e-8, 0.0);
    ag_tape tape;
    ag_tape_init(&tape, c);
    const int B = 4, T = 32;
    int32_t ids[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) ids[i] = (int32_t)(sgt_rng_uniform_at((uint64_t)i, 5, 99) * cfg.vocab);
    double loss = 0, first = 0;
    int step;
    for (step = 0; step < 300; step++) {
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), ids);
        sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T)), *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
        gpt_output out = gpt_forward(c, m, x, &(gpt_forward_opts){.targets = y, .aux_weight = 0.01});
        loss = sgt_item(out.ce);
        if (step == 0) first = loss;
        if (loss < 0.1) break;
        ag_backward(&tape, out.loss);
        nn_adamw_step(opt, 3e-3);
        nn_params_zero_grad(p);
        ag_step_end(&tape);
    }
    print_message("    %s: loss %.3f -> %.4f in %d steps\n", sparse ? "sgt" : "dense", first, loss, step);
    assert_true(first > 5.0);
    assert_true(loss < 0.1);
    ag_tape_detach(&tape);
    nn_adamw_destroy(opt);
    gpt_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_overfit_dense(void **s) { (void)s; overfit(false); }
static void t_overfit_sgt(void **s) { (void)s; overfit(true); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_param_counts_sgt150m), cmocka_unit_test(t_param_names),
        cmocka_unit_test(t_gradcheck_dense),      cmocka_unit_test(t_gradcheck_sgt),
        cmocka_unit_test(t_decode_dense),         cmocka_unit_test(t_decode_sgt),
        cmocka_unit_test(t_decoder),              cmocka_unit_test(t_decode_bf16),
        cmocka_unit_test(t_fused_vs_composed),
        cmocka_unit_test(t_mixed_precision),
        cmocka_unit_test(t_overfit_dense),        cmocka_unit_test(t_overfit_sgt),
    };
    return cmocka_run_group_tests_name("gpt", tests, NULL, NULL);
}
