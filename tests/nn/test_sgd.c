/* test_sgd.c: SGD against a naive double-precision reference over several steps (plain, momentum,
 * Nesterov, coupled L2 decay only where a parameter asks for it), parameter groups giving
 * subsets their own lr and weight decay under both SGD and AdamW (first match wins, the decay
 * flag still gates decay, a group matching nothing is an error), the creation checks, and the
 * step's temporaries given back to the store's arena. */
#include "../../nn/optim.h"
#include "../common/test_util.h"

static void put(sgt_tensor *t, const double *v) {
    int64_t n = sgt_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SGT_F64) ((double *)sgt_ptr(t))[i] = v[i];
        else ((float *)sgt_ptr(t))[i] = (float)v[i];
    }
}

/* torch.optim.SGD's step (dampening 0), element by element; buf starts at 0 */
static void ref_sgd(double *p, const double *g0, double *buf, int n, double lr, double mu, bool nesterov, double wd) {
    for (int i = 0; i < n; i++) {
        double g = g0[i] + wd * p[i];
        double d = g;
        if (mu > 0) {
            buf[i] = mu * buf[i] + g;
            d = nesterov ? g + mu * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* the gradients of steps k = 0..3 */
static const double GW[4][4] = {
    {0.2, -0.4, 1e-3, 3.0}, {-0.1, 0.3, 0.7, -2.0}, {0.4, 0.1, -0.2, 0.9}, {-1.5, 0.0, 0.25, 0.6}};
static const double GB[4][3] = {{-0.5, 0.25, 2.0}, {0.05, 0.0, -1.0}, {1.0, -3.0, 0.5}, {0.3, 0.3, -0.7}};

static void check_sgd(double mu, bool nesterov, double wd) {
    nn_params *p = nn_params_create(7, SGT_F64, SGT_CPU);
    sgt_tensor *w = nn_param_new(p, "lin", "weight", SGT_SHAPE(2, 2), NN_INIT_ZEROS, 0, true);
    sgt_tensor *b = nn_param_new(p, "lin", "bias", SGT_SHAPE(3), NN_INIT_ZEROS, 0, false);
    double pw[4] = {0.5, -1.25, 2.0, 0.75}, pb[3] = {0.3, -0.2, 1.5}, bw[4] = {0}, bb[3] = {0};
    put(w, pw);
    put(b, pb);
    nn_sgd *o = nn_sgd_create(p, mu, nesterov, wd, NULL, 0);
    assert_true(mu > 0 ? o->buf[0] != NULL : o->buf[0] == NULL);
    const double lrs[4] = {0.1, 0.05, 0.2, 0.01};
    for (int k = 0; k < 4; k++) {
        put(ag_grad(w), GW[k]);
        put(ag_grad(b), GB[k]);
        size_t used = p->arena->in_use;
        nn_sgd_step(o, lrs[k]);
        assert_int_equal(p->arena->in_use, used); /* temporaries rewound */
        ref_sgd(pw, GW[k], bw, 4, lrs[k], mu, nesterov, wd);
        ref_sgd(pb, GB[k], bb, 3, lrs[k], mu, nesterov, 0.0); /* bias: decay off */
        tu_assert_close(w, pw, 1e-14, 1e-16, "decayed weight");
        tu_assert_close(b, pb, 1e-14, 1e-16, "undecayed bias");
        if (mu > 0) {
            tu_assert_close(o->buf[0], bw, 1e-14, 1e-16, "weight momentum buffer");
            tu_assert_close(o->buf[1], bb, 1e-14, 1e-16, "bias momentum buffer");
        }
        tu_assert_close(ag_grad(w), GW[k], 0, 0, "gradient left as it was");
    }
    assert_int_equal(o->step, 4);
    nn_sgd_destroy(o);
    nn_params_destroy(p);
}

static void t_sgd_plain(void **s) { (void)s; check_sgd(0.0, false, 0.0); }
static void t_sgd_plain_decay(void **s) { (void)s; check_sgd(0.0, false, 0.1); }
static void t_sgd_momentum(void **s) { (void)s; check_sgd(0.9, false, 0.0); }
static void t_sgd_momentum_decay(void **s) { (void)s; check_sgd(0.9, false, 0.05); }
static void t_sgd_nesterov_decay(void **s) { (void)s; check_sgd(0.8, true, 0.05); }

/* the first step's closed form, independent of the reference: buf = g, so momentum changes
 * nothing and Nesterov moves by (1 + mu) g; with decay, g includes wd p */
static void t_sgd_first_step_closed_form(void **s) {
    (void)s;
    for (int nest = 0; nest < 2; nest++) {
        nn_params *p = nn_params_create(3, SGT_F32, SGT_CPU);
        sgt_tensor *w = nn_param_new(p, "", "w", SGT_SHAPE(2), NN_INIT_ZEROS, 0, true);
        put(w, (double[]){1.0, -2.0});
        put(ag_grad(w), (double[]){0.5, 0.25});
        nn_sgd *o = nn_sgd_create(p, 0.5, nest, 0.1, NULL, 0);
        nn_sgd_step(o, 0.1);
        const double f = nest ? 1.5 : 1.0;
        double want[2] = {1.0 - 0.1 * f * (0.5 + 0.1), -2.0 - 0.1 * f * (0.25 - 0.2)};
        tu_assert_close(w, want, 1e-6, 0, "first SGD step");
        nn_sgd_destroy(o);
        nn_params_destroy(p);
    }
}

static void t_sgd_refuses_bad_settings(void **s) {
    (void)s;
    nn_params *p = nn_params_create(1, SGT_F64, SGT_CPU);
    nn_param_new(p, "", "a", SGT_SHAPE(2), NN_INIT_ONES, 0, true);
    EXPECT_SGT_ERROR(nn_sgd_create(p, -0.1, false, 0, NULL, 0), "momentum");
    EXPECT_SGT_ERROR(nn_sgd_create(p, 0.0, true, 0, NULL, 0), "nesterov");
    nn_sgd *o = nn_sgd_create(p, 0.9, false, 0, NULL, 0);
    nn_param_new(p, "", "late", SGT_SHAPE(2), NN_INIT_ONES, 0, true);
    EXPECT_SGT_ERROR(nn_sgd_step(o, 1e-3), "register every parameter");
    nn_sgd_destroy(o);
    nn_params_destroy(p);
}

/* three parameters: "enc.w" and "enc.norm" (no decay) in group 0, "head.w" in group 1, "other.w" in
 * none. Zero gradients make the update pure decay (AdamW: p (1 - lr s wd); SGD with mu = 0:
 * p (1 - lr s wd) too), so each parameter's factor reads its lr scale times its weight decay. */
static void groups_case(const int opt) { /* opt: 0 AdamW, 1 SGD */
    nn_params *p = nn_params_create(5, SGT_F64, SGT_CPU);
    sgt_tensor *t[4] = {
        nn_param_new(p, "enc", "w", SGT_SHAPE(3), NN_INIT_ONES, 0, true),
        nn_param_new(p, "enc", "norm", SGT_SHAPE(3), NN_INIT_ONES, 0, false),
        nn_param_new(p, "head", "w", SGT_SHAPE(3), NN_INIT_ONES, 0, true),
        nn_param_new(p, "other", "w", SGT_SHAPE(3), NN_INIT_ONES, 0, true),
    };
    char prefix0[8] = "enc.";
    nn_param_group g[2] = {{prefix0, 0.5, 0.2}, {"head", 2.0, 0.01}};
    const double lr = 0.1, wd = 0.3;
    void *o = opt ? (void *)nn_sgd_create(p, 0.0, false, wd, g, 2)
                  : (void *)nn_adamw_create_groups(p, 0.9, 0.95, 1e-8, wd, g, 2);
    memset(prefix0, 0, sizeof prefix0); /* the optimizer keeps its own copy */
    if (opt) nn_sgd_step(o, lr);
    else nn_adamw_step(o, lr);
    const double f[4] = {1 - lr * 0.5 * 0.2, 1.0, 1 - lr * 2.0 * 0.01, 1 - lr * wd};
    for (int i = 0; i < 4; i++) {
        double want[3] = {f[i], f[i], f[i]};
        tu_assert_close(t[i], want, 1e-15, 0, opt ? "sgd group decay" : "adamw group decay");
    }
    if (opt) nn_sgd_destroy(o);
    else nn_adamw_destroy(o);
    strcpy(prefix0, "enc.");

    /* lr_scale with a gradient: the step of SGD is lr * scale * g exactly */
    if (opt) {
        /* no decay here; the catch-all "" group gives "other.w" its scale 1 */
        nn_param_group g2[3] = {{"enc.", 0.5, 0.0}, {"head", 2.0, 0.0}, {"", 1.0, 0.0}};
        nn_sgd *q = nn_sgd_create(p, 0.0, false, 0.3, g2, 3);
        double before[4][3];
        for (int i = 0; i < 4; i++) {
            double *h = tu_host(t[i]);
            memcpy(before[i], h, sizeof before[i]);
            free(h);
            put(ag_grad(t[i]), (double[]){1.0, -1.0, 2.0});
        }
        nn_sgd_step(q, lr);
        const double sc[4] = {0.5, 0.5, 2.0, 1.0};
        for (int i = 0; i < 4; i++) {
            double want[3] = {before[i][0] - lr * sc[i], before[i][1] + lr * sc[i], before[i][2] - 2 * lr * sc[i]};
            tu_assert_close(t[i], want, 1e-15, 1e-16, "sgd group lr scale");
        }
        nn_sgd_destroy(q);
    }
    /* a group that matches nothing (or only what an earlier group took) is an error */
    nn_param_group bad[2] = {{"enc", 1.0, 0.0}, {"enc.w", 1.0, 0.0}};
    EXPECT_SGT_ERROR(nn_adamw_create_groups(p, 0.9, 0.95, 1e-8, 0, (nn_param_group[]){{"nope.", 1, 0}}, 1),
                     "(prefix 'nope.') matches no parameter");
    EXPECT_SGT_ERROR(nn_sgd_create(p, 0.0, false, 0.0, bad, 2), "prefix 'enc.w'");
    EXPECT_SGT_ERROR(nn_sgd_create(p, 0.0, false, 0.0, (nn_param_group[]){{NULL, 1, 0}}, 1), "no prefix");
    nn_params_destroy(p);
}

static void t_groups(void **s) {
    (void)s;
    groups_case(0);
    groups_case(1);
}

/* AdamW with groups: an lr_scale of s is the same as running that parameter at lr * s */
static void t_adamw_group_lr_is_scaled_lr(void **s) {
    (void)s;
    nn_params *a = nn_params_create(9, SGT_F64, SGT_CPU), *b = nn_params_create(9, SGT_F64, SGT_CPU);
    sgt_tensor *wa = nn_param_new(a, "x", "w", SGT_SHAPE(4), NN_INIT_NORMAL, 1.0, true);
    sgt_tensor *wb = nn_param_new(b, "x", "w", SGT_SHAPE(4), NN_INIT_NORMAL, 1.0, true);
    nn_adamw *oa = nn_adamw_create_groups(a, 0.9, 0.95, 1e-8, 0.1, (nn_param_group[]){{"x.", 0.25, 0.1}}, 1);
    nn_adamw *ob = nn_adamw_create(b, 0.9, 0.95, 1e-8, 0.1);
    for (int k = 0; k < 3; k++) {
        put(ag_grad(wa), GW[k]);
        put(ag_grad(wb), GW[k]);
        nn_adamw_step(oa, 0.04);
        nn_adamw_step(ob, 0.01);
    }
    double *hb = tu_host(wb);
    tu_assert_close(wa, hb, 1e-15, 1e-17, "adamw lr_scale 0.25 at 0.04 vs lr 0.01");
    free(hb);
    nn_adamw_destroy(oa);
    nn_adamw_destroy(ob);
    nn_params_destroy(a);
    nn_params_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_sgd_plain),
        cmocka_unit_test(t_sgd_plain_decay),
        cmocka_unit_test(t_sgd_momentum),
        cmocka_unit_test(t_sgd_momentum_decay),
        cmocka_unit_test(t_sgd_nesterov_decay),
        cmocka_unit_test(t_sgd_first_step_closed_form),
        cmocka_unit_test(t_sgd_refuses_bad_settings),
        cmocka_unit_test(t_groups),
        cmocka_unit_test(t_adamw_group_lr_is_scaled_lr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
