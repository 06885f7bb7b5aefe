/* test_gpt2.c: the classic GPT-2 (models/gpt2.h). The 124M preset's parameter count (Hugging
 * Face's GPT2LMHeadModel has 124,439,808), the names and shapes of the parameters, a float64
 * gradient check of every parameter of a 2-layer model, dropout in train and eval mode,
 * KV-cache decoding equal to the full forward, and overfitting one batch. */
#include <math.h>

#include "../../autograd/gradcheck.h"
#include "../../models/gpt2.h"
#include "../../nn/optim.h"
#include "../common/test_util.h"

static void t_param_counts(void **s) {
    (void)s;
    gpt2_config cfg;
    /* C 768, L 12: wte 38,597,376 + wpe 786,432 + 12 x 7,087,872 (ln 3,072, qkv 1,771,776,
     * proj 590,592, fc1 2,362,368, fc2 2,360,064) + ln_f 1,536 = 124,439,808 */
    assert_int_equal(gpt2_preset("gpt2", &cfg), 0);
    assert_int_equal(gpt2_param_count(&cfg), 124439808);
    const char *names[] = {"gpt2", "gpt2-tiny", "gpt2-nano"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gpt2_preset(names[i], &cfg), 0);
        nn_params *p = nn_params_create(1, SGT_F32, SGT_CPU);
        p->skip_init = true; /* counting only */
        gpt2_model *m = gpt2_build(&cfg, p);
        assert_int_equal(nn_params_count(p), gpt2_param_count(&cfg));
        print_message("    %s: %lld params\n", names[i], (long long)nn_params_count(p));
        gpt2_free(m);
        nn_params_destroy(p);
    }
    assert_int_equal(gpt2_preset("gpt3", &cfg), -1);
    char err[128];
    gpt2_preset("gpt2-nano", &cfg);
    cfg.n_heads = 5;
    assert_int_equal(gpt2_config_validate(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "n_heads"));
}

static void t_names_and_init(void **s) {
    (void)s;
    gpt2_config cfg;
    gpt2_preset("gpt2-nano", &cfg);
    nn_params *p = nn_params_create(3, SGT_F32, SGT_CPU);
    gpt2_model *m = gpt2_build(&cfg, p);
    const int64_t C = cfg.d_model;
    struct { const char *name; int64_t r, c; bool decay; } want[] = {
        {"wte.weight", cfg.vocab, C, false}, {"wpe.weight", cfg.ctx_len, C, false},
        {"h.0.ln_1.weight", C, 0, false},    {"h.0.ln_1.bias", C, 0, false},
        {"h.1.attn.qkv.weight", 3 * C, C, true}, {"h.1.attn.qkv.bias", 3 * C, 0, false},
        {"h.0.attn.proj.weight", C, C, true},    {"h.0.attn.proj.bias", C, 0, false},
        {"h.1.ln_2.weight", C, 0, false},        {"h.1.mlp.fc1.weight", 4 * C, C, true},
        {"h.1.mlp.fc1.bias", 4 * C, 0, false},   {"h.1.mlp.fc2.weight", C, 4 * C, true},
        {"h.1.mlp.fc2.bias", C, 0, false},       {"ln_f.weight", C, 0, false}, {"ln_f.bias", C, 0, false},
    };
    assert_int_equal(p->n, 2 + 12 * 2 + 2); /* no lm_head: tied to wte */
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        nn_param *q = nn_params_find(p, want[i].name);
        if (!q) fail_msg("no parameter %s", want[i].name);
        assert_int_equal(q->t->ndim, want[i].c ? 2 : 1);
        assert_int_equal(q->t->shape[0], want[i].r);
        if (want[i].c) assert_int_equal(q->t->shape[1], want[i].c);
        if (q->decay != want[i].decay) fail_msg("%s: weight decay %d", want[i].name, q->decay);
    }
    /* the residual projections start at 0.02 / sqrt(2 L) = 0.01, the rest at 0.02, biases 0 */
    double *w = tu_host(nn_params_find(p, "h.0.attn.proj.weight")->t), *b = tu_host(nn_params_find(p, "h.0.mlp.fc1.bias")->t);
    double ss = 0;
    for (int64_t i = 0; i < C * C; i++) ss += w[i] * w[i];
    assert_true(fabs(sqrt(ss / (double)(C * C)) - 0.01) < 0.002);
    for (int64_t i = 0; i < 4 * C; i++) assert_true(b[i] == 0);
    free(w);
    free(b);
    gpt2_free(m);
    nn_params_destroy(p);
}

typedef struct {
    gpt2_model *m;
    sgt_tensor *idx, *tgt;
} gc_user;

static sgt_tensor *f_gpt2(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)x, (void)n;
    gc_user *g = u;
    sgt_tensor *loss = NULL;
    gpt2_forward(c, g->m, g->idx, g->tgt, &loss, NULL);
    return loss;
}

static void t_gradcheck(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    gpt2_config cfg;
    gpt2_preset("gpt2-nano", &cfg);
    nn_params *p = nn_params_create(7, SGT_F64, SGT_CPU);
    gpt2_model *m = gpt2_build(&cfg, p);
    /* biases and LayerNorm parameters away from their 0 / 1 start, so every path carries gradient */
    for (int i = 0; i < p->n; i++)
        if (strstr(p->items[i].name, "bias") || strstr(p->items[i].name, "ln_")) {
            sgt_tensor *t = p->items[i].t;
            double *v = sgt_ptr(t);
            for (int64_t j = 0; j < sgt_numel(t); j++) v[j] += 0.1 * (sgt_rng_uniform_at((uint64_t)j, 17, (uint64_t)i) - 0.5);
        }
    int32_t ids[10], tg[10];
    for (int i = 0; i < 10; i++) {
        ids[i] = (int32_t)((i * 37 + 11) % cfg.vocab);
        tg[i] = (int32_t)((i * 53 + 5) % cfg.vocab);
    }
    gc_user u = {m, sgt_from_i32(&e->ctx, SGT_SHAPE(2, 5), ids), sgt_from_i32(&e->ctx, SGT_SHAPE(2, 5), tg)};
    sgt_tensor *in[64];
    for (int i = 0; i < p->n; i++) in[i] = p->items[i].t;
    for (int at = 0; at < p->n; at += 16) { /* gradcheck holds at most 16 inputs */
        int cnt = p->n - at < 16 ? p->n - at : 16;
        ag_gradcheck_opts o = {.max_elems = 12, .rtol = 1e-5, .atol = 1e-9};
        ag_gradcheck_result r = ag_gradcheck(&e->ctx, f_gpt2, &u, in + at, cnt, NULL, &o);
        print_message("    params %d..%d: %s\n", at, at + cnt - 1, r.report);
        if (!r.pass)
            fail_msg("gradcheck failed at %s: %s", r.worst_input >= 0 ? p->items[at + r.worst_input].name : "?", r.report);
    }
    gpt2_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

/* the nano model's loss on a fixed batch */
static double nano_loss(sgt_ctx *c, gpt2_model *m) {
    int32_t ids[16], tg[16];
    for (int i = 0; i < 16; i++) ids[i] = (int32_t)((i * 7 + 1) % m->cfg.vocab), tg[i] = (int32_t)((i * 11 + 2) % m->cfg.vocab);
    sgt_tensor *loss = NULL;
    gpt2_forward(c, m, sgt_from_i32(c, SGT_SHAPE(2, 8), ids), sgt_from_i32(c, SGT_SHAPE(2, 8), tg), &loss, NULL);
    return sgt_item(loss);
}

static void t_dropout_modes(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    gpt2_config cfg;
    gpt2_preset("gpt2-nano", &cfg);
    cfg.dropout = 0.5;
    nn_params *p = nn_params_create(5, SGT_F32, SGT_CPU);
    gpt2_model *m = gpt2_build(&cfg, p);
    assert_false(m->mode.train); /* built in eval mode */
    double ev1 = nano_loss(&e->ctx, m), ev2 = nano_loss(&e->ctx, m);
    assert_true(ev1 == ev2);
    m->mode.train = true;
    double tr1 = nano_loss(&e->ctx, m), tr2 = nano_loss(&e->ctx, m);
    assert_true(tr1 != ev1);
    assert_true(tr1 != tr2); /* fresh masks every call */
    m->mode.offset = 0; /* the same masks again */
    assert_true(nano_loss(&e->ctx, m) == tr1);
    gpt2_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_kv_decode(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    gpt2_config cfg;
    gpt2_preset("gpt2-nano", &cfg);
    nn_params *p = nn_params_create(9, SGT_F32, SGT_CPU);
    gpt2_model *m = gpt2_build(&cfg, p);
    const int B = 2, T = 9;
    const int64_t V = cfg.vocab, H = cfg.n_heads, D = cfg.d_model / cfg.n_heads;
    int32_t ids[18];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 29 + 3) % V);
    sgt_tensor *idx = sgt_from_i32(c, SGT_SHAPE(B, T), ids);
    double *full = tu_host(gpt2_forward(c, m, idx, NULL, NULL, NULL)); /* [B, T, V] */
    nn_kv_cache kv[2];
    for (int l = 0; l < 2; l++) nn_kv_cache_init(&kv[l], c, SGT_F32, B, H, cfg.ctx_len, D);
    for (int64_t at = 0, n; at < T; at += n) { /* a prompt of 4, then one token at a time */
        n = at == 0 ? 4 : 1;
        double *got = tu_host(gpt2_forward(c, m, sgt_contiguous(c, sgt_narrow(c, idx, 1, at, n)), NULL, NULL, kv));
        for (int b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++)
                for (int64_t v = 0; v < V; v++) {
                    double a = got[(b * n + t) * V + v], w = full[(b * T + at + t) * V + v];
                    if (fabs(a - w) > 1e-5 * (1 + fabs(w)))
                        fail_msg("decode b %d pos %lld vocab %lld: %.9g vs full %.9g", b, (long long)(at + t), (long long)v, a, w);
                }
        free(got);
    }
    assert_int_equal(kv[0].len, T);
    free(full);
    gpt2_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_overfit(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    gpt2_config cfg;
    gpt2_preset("gpt2-tiny", &cfg);
    cfg.vocab = 512; /* tiny's layers; a small vocabulary keeps the test fast */
    cfg.ctx_len = 64;
    nn_params *p = nn_params_create(11, SGT_F32, SGT_CPU);
    gpt2_model *m = gpt2_build(&cfg, p);
    m->mode.train = true; /* with dropout 0.1 */
    nn_adamw *opt = nn_adamw_create(p, 0.9, 0.95, 1e-8, 0.0);
    ag_tape tape;
    ag_tape_init(&tape, c);
    enum { B = 4, T = 32 };
    int32_t ids[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) ids[i] = (int32_t)(sgt_rng_uniform_at((uint64_t)i, 5, 99) * cfg.vocab);
    double loss = 0, first = 0;
    int step;
    for (step = 0; step < 300; step++) {
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), ids), *l = NULL;
        gpt2_forward(c, m, sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T)), sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T)),
                     &l, NULL);
        loss = sgt_item(l);
        if (step == 0) first = loss;
        if (loss < 0.2) break;
        ag_backward(&tape, l);
        nn_adamw_step(opt, 3e-3);
        nn_params_zero_grad(p);
        ag_step_end(&tape);
    }
    print_message("    gpt2-tiny: loss %.3f -> %.4f in %d steps (dropout on)\n", first, loss, step);
    assert_true(first > 5.0);
    assert_true(loss < 0.2);
    ag_tape_detach(&tape);
    nn_adamw_destroy(opt);
    gpt2_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_param_counts), cmocka_unit_test(t_names_and_init), cmocka_unit_test(t_gradcheck),
        cmocka_unit_test(t_dropout_modes), cmocka_unit_test(t_kv_decode), cmocka_unit_test(t_overfit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
