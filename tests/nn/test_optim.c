/* test_optim.c: AdamW against a hand-written update (first and second step, bias correction,
 * decoupled decay only where a parameter asks for it), the learning-rate schedule at its landmarks,
 * global gradient-norm clipping (exact target norm, no-op below it, non-finite left alone), and
 * gradient accumulation: two half-batches with losses scaled by 1/2 give the full batch's gradients. */
#include "../../nn/optim.h"
#include "../common/test_util.h"

/* writes host values into a contiguous CPU tensor (a parameter or a gradient) */
static void put(sgt_tensor *t, const double *v) {
    int64_t n = sgt_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SGT_F64) ((double *)sgt_ptr(t))[i] = v[i];
        else ((float *)sgt_ptr(t))[i] = (float)v[i];
    }
}

/* the reference AdamW step, written out element by element (t is the 1-based step) */
static void ref_adamw(double *p, const double *g, double *m, double *v, int n, int t, double lr, double b1, double b2,
                      double eps, double wd) {
    for (int i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        double mhat = m[i] / (1 - pow(b1, t));
        double vhat = v[i] / (1 - pow(b2, t));
        double decay = lr * wd * p[i];
        p[i] = p[i] - lr * mhat / (sqrt(vhat) + eps) - decay;
    }
}

static void t_adamw_matches_reference(void **s) {
    (void)s;
    nn_params *p = nn_params_create(7, SGT_F64, SGT_CPU);
    sgt_tensor *w = nn_param_new(p, "lin", "weight", SGT_SHAPE(4), NN_INIT_ZEROS, 0, true);
    sgt_tensor *b = nn_param_new(p, "lin", "bias", SGT_SHAPE(3), NN_INIT_ZEROS, 0, false);
    double pw[4] = {0.5, -1.25, 2.0, 0.75}, pb[3] = {0.3, -0.2, 1.5};
    put(w, pw);
    put(b, pb);
    const double lr = 0.01, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    nn_adamw *o = nn_adamw_create(p, b1, b2, eps, wd);
    assert_int_equal(nn_adamw_get_step(o), 0);

    /* step 1: with zero moments the bias-corrected update is lr * g / (|g| + eps), about lr * sign(g);
     * without the correction it would be lr * 0.1 g / (sqrt(0.05) |g| + eps), 0.45 lr. */
    double gw1[4] = {0.2, -0.4, 1e-3, 3.0}, gb1[3] = {-0.5, 0.25, 2.0};
    put(ag_grad(w), gw1);
    put(ag_grad(b), gb1);
    nn_adamw_step(o, lr);
    assert_int_equal(nn_adamw_get_step(o), 1);
    double want_w[4], want_b[3];
    for (int i = 0; i < 4; i++) want_w[i] = pw[i] - lr * gw1[i] / (fabs(gw1[i]) + eps) - lr * wd * pw[i];
    for (int i = 0; i < 3; i++) want_b[i] = pb[i] - lr * gb1[i] / (fabs(gb1[i]) + eps); /* no decay */
    tu_assert_close(w, want_w, 1e-13, 1e-15, "decayed weight after step 1");
    tu_assert_close(b, want_b, 1e-13, 1e-15, "undecayed bias after step 1");

    /* steps 2 and 3 against the element-by-element reference */
    double mw[4] = {0}, vw[4] = {0}, mb[3] = {0}, vb[3] = {0};
    ref_adamw(pw, gw1, mw, vw, 4, 1, lr, b1, b2, eps, wd);
    ref_adamw(pb, gb1, mb, vb, 3, 1, lr, b1, b2, eps, 0.0);
    double gw2[4] = {-0.1, 0.3, 0.7, -2.0}, gb2[3] = {0.05, 0.0, -1.0};
    double gw3[4] = {0.4, 0.1, -0.2, 0.9}, gb3[3] = {1.0, -3.0, 0.5};
    const double *gws[2] = {gw2, gw3}, *gbs[2] = {gb2, gb3};
    for (int k = 0; k < 2; k++) {
        put(ag_grad(w), gws[k]);
        put(ag_grad(b), gbs[k]);
        nn_adamw_step(o, lr);
        ref_adamw(pw, gws[k], mw, vw, 4, k + 2, lr, b1, b2, eps, wd);
        ref_adamw(pb, gbs[k], mb, vb, 3, k + 2, lr, b1, b2, eps, 0.0);
        tu_assert_close(w, pw, 1e-12, 1e-15, "decayed weight after steps 2-3");
        tu_assert_close(b, pb, 1e-12, 1e-15, "undecayed bias after steps 2-3");
        tu_assert_close(o->m[0], mw, 1e-14, 0, "first moment of the weight");
        tu_assert_close(o->v[1], vb, 1e-14, 0, "second moment of the bias");
    }
    assert_int_equal(nn_adamw_get_step(o), 3);
    nn_adamw_destroy(o);
    nn_params_destroy(p);
}

/* With zero gradients (and fresh moments) only the decay acts: decay=true shrinks the parameter by
 * exactly (1 - lr wd), decay=false leaves it bit-identical. */
static void t_adamw_decay_only_where_flagged(void **s) {
    (void)s;
    for (int dt = 0; dt < 2; dt++) {
        sgt_dtype type = dt ? SGT_F32 : SGT_F64;
        nn_params *p = nn_params_create(11, type, SGT_CPU);
        sgt_tensor *w = nn_param_new(p, "", "w", SGT_SHAPE(2, 3), NN_INIT_NORMAL, 1.0, true);
        sgt_tensor *e = nn_param_new(p, "", "embed", SGT_SHAPE(5), NN_INIT_NORMAL, 1.0, false);
        double *w0 = tu_host(w), *e0 = tu_host(e);
        nn_adamw *o = nn_adamw_create(p, 0.9, 0.999, 1e-8, 0.5);
        nn_adamw_step(o, 0.1);
        double want[6];
        for (int i = 0; i < 6; i++) want[i] = w0[i] * (1 - 0.1 * 0.5);
        tu_assert_close(w, want, dt ? 1e-6 : 1e-15, 0, "decayed parameter with zero gradient");
        tu_assert_close(e, e0, 0, 0, "undecayed parameter with zero gradient");
        free(w0);
        free(e0);
        nn_adamw_destroy(o);
        nn_params_destroy(p);
    }
}

static void t_adamw_refuses_late_parameters(void **s) {
    (void)s;
    nn_params *p = nn_params_create(1, SGT_F64, SGT_CPU);
    nn_param_new(p, "", "a", SGT_SHAPE(2), NN_INIT_ONES, 0, true);
    nn_adamw *o = nn_adamw_create(p, 0.9, 0.95, 1e-8, 0.1);
    nn_param_new(p, "", "late", SGT_SHAPE(2), NN_INIT_ONES, 0, true);
    EXPECT_SGT_ERROR(nn_adamw_step(o, 1e-3), "register every parameter");
    nn_adamw_destroy(o);
    nn_params_destroy(p);
}

static void t_lr_schedule_landmarks(void **s) {
    (void)s;
    const double mx = 6e-4, mn = 6e-5;
    nn_lr_schedule sc = {.max_lr = mx, .min_lr = mn, .warmup = 10, .total = 110};
    assert_true(fabs(nn_lr_at(&sc, 0) - mx / 10) <= 1e-18);       /* first warmup step */
    assert_true(fabs(nn_lr_at(&sc, 4) - mx * 5 / 10) <= 1e-18);
    assert_true(fabs(nn_lr_at(&sc, 9) - mx) <= 1e-18);            /* last warmup step */
    assert_true(fabs(nn_lr_at(&sc, 10) - mx) <= 1e-18);           /* the peak: cosine starts */
    assert_true(fabs(nn_lr_at(&sc, 60) - (mx + mn) / 2) <= 1e-17); /* midway */
    assert_true(fabs(nn_lr_at(&sc, 110) - mn) <= 1e-18);          /* the end */
    assert_true(nn_lr_at(&sc, 111) == mn);
    assert_true(nn_lr_at(&sc, 1000000) == mn);
    assert_true(nn_lr_at(&sc, -5) == nn_lr_at(&sc, 0));
    /* a quarter of the way: min + (max - min) (1 + cos(pi/4)) / 2 */
    assert_true(fabs(nn_lr_at(&sc, 35) - (mn + (mx - mn) * (1 + sqrt(0.5)) / 2)) <= 1e-17);
    /* warmup rises and the cosine falls, monotonically */
    for (int64_t k = 1; k < 10; k++) assert_true(nn_lr_at(&sc, k) > nn_lr_at(&sc, k - 1));
    for (int64_t k = 11; k <= 110; k++) assert_true(nn_lr_at(&sc, k) < nn_lr_at(&sc, k - 1));
    /* no warmup: step 0 is the peak */
    nn_lr_schedule nw = {.max_lr = 1.0, .min_lr = 0.0, .warmup = 0, .total = 4};
    assert_true(nn_lr_at(&nw, 0) == 1.0);
    assert_true(fabs(nn_lr_at(&nw, 2) - 0.5) <= 1e-15);
    assert_true(nn_lr_at(&nw, 4) == 0.0);
}

#define NEAR(a, b) assert_true(fabs((a) - (b)) <= 1e-15 * fabs(b) + 1e-18)

/* the plan's other kinds at their landmarks: warmup as cosine's, then constant holds max; linear falls in
 * equal steps to min at T; WSD holds max until D = T - round(f T), then falls linearly to min */
static void t_lr_schedule_kinds(void **s) {
    (void)s;
    const double mx = 1e-3, mn = 1e-4;
    nn_lr_plan cs = {.max_lr = mx, .min_lr = mn, .warmup = 10, .total = 110, .kind = NN_LR_CONSTANT};
    NEAR(nn_lr_plan_at(&cs, 0), mx / 10);
    NEAR(nn_lr_plan_at(&cs, 9), mx);
    assert_true(nn_lr_plan_at(&cs, 10) == mx && nn_lr_plan_at(&cs, 110) == mx && nn_lr_plan_at(&cs, 5000) == mx);

    nn_lr_plan ln = {.max_lr = mx, .min_lr = mn, .warmup = 10, .total = 110, .kind = NN_LR_LINEAR};
    NEAR(nn_lr_plan_at(&ln, 0), mx / 10);
    NEAR(nn_lr_plan_at(&ln, 9), mx);
    assert_true(nn_lr_plan_at(&ln, 10) == mx);
    NEAR(nn_lr_plan_at(&ln, 35), mx + (mn - mx) * 0.25);
    NEAR(nn_lr_plan_at(&ln, 60), (mx + mn) / 2);
    NEAR(nn_lr_plan_at(&ln, 109), mx + (mn - mx) * 0.99);
    assert_true(nn_lr_plan_at(&ln, 110) == mn && nn_lr_plan_at(&ln, 111) == mn);
    for (int64_t k = 11; k <= 110; k++) assert_true(nn_lr_plan_at(&ln, k) < nn_lr_plan_at(&ln, k - 1));

    /* WSD, decay over the last 20% of 110 steps: round(22) = 22, D = 88 */
    nn_lr_plan w = {.max_lr = mx, .min_lr = mn, .warmup = 10, .total = 110, .kind = NN_LR_WSD,
                        .decay_frac = 0.2};
    NEAR(nn_lr_plan_at(&w, 0), mx / 10);
    NEAR(nn_lr_plan_at(&w, 9), mx);
    for (int64_t k = 10; k <= 88; k++) assert_true(nn_lr_plan_at(&w, k) == mx); /* stable, D included */
    NEAR(nn_lr_plan_at(&w, 89), mx + (mn - mx) / 22);
    NEAR(nn_lr_plan_at(&w, 99), mx + (mn - mx) * 0.5);
    assert_true(nn_lr_plan_at(&w, 110) == mn && nn_lr_plan_at(&w, 200) == mn);
    /* decay_frac 0 (the zero value) is NN_WSD_DECAY_FRAC, here the same 0.2 */
    nn_lr_plan w0 = w;
    w0.decay_frac = 0;
    for (int64_t k = 0; k <= 120; k++) assert_true(nn_lr_plan_at(&w0, k) == nn_lr_plan_at(&w, k));
    /* a decay longer than what follows the warmup starts right after it: linear from W */
    nn_lr_plan wl = w;
    wl.decay_frac = 1.0;
    for (int64_t k = 0; k <= 120; k++) assert_true(nn_lr_plan_at(&wl, k) == nn_lr_plan_at(&ln, k));

    /* the zero-value kind is the cosine schedule, nn_lr_at's, step for step */
    nn_lr_plan pc = {.max_lr = mx, .min_lr = mn, .warmup = 10, .total = 110};
    nn_lr_schedule pos = {mx, mn, 10, 110};
    for (int64_t k = -1; k <= 120; k++) assert_true(nn_lr_plan_at(&pc, k) == nn_lr_at(&pos, k));
    NEAR(nn_lr_plan_at(&pc, 60), (mx + mn) / 2);
}

static void t_lr_kind_parse(void **s) {
    (void)s;
    const char *names[] = {"cosine", "constant", "linear", "wsd"};
    const nn_lr_kind kinds[] = {NN_LR_COSINE, NN_LR_CONSTANT, NN_LR_LINEAR, NN_LR_WSD};
    char err[128];
    for (int i = 0; i < 4; i++) {
        nn_lr_kind k = NN_LR_WSD + 1;
        assert_int_equal(nn_lr_kind_parse(names[i], &k, err, sizeof err), 0);
        assert_int_equal(k, kinds[i]);
        assert_string_equal(nn_lr_kind_name(k), names[i]);
    }
    const char *bad[] = {"Cosine", "", "cos", "wsd ", "step"};
    for (int i = 0; i < 5; i++) {
        nn_lr_kind k = NN_LR_LINEAR;
        err[0] = 0;
        assert_int_equal(nn_lr_kind_parse(bad[i], &k, err, sizeof err), -1);
        assert_int_equal(k, NN_LR_LINEAR); /* unchanged */
        assert_non_null(strstr(err, "unknown learning-rate schedule"));
        assert_non_null(strstr(err, "cosine, constant, linear, wsd"));
    }
    assert_int_equal(nn_lr_kind_parse(NULL, &(nn_lr_kind){0}, err, sizeof err), -1);
    assert_int_equal(nn_lr_kind_parse("nope", &(nn_lr_kind){0}, NULL, 0), -1);
    assert_string_equal(nn_lr_kind_name((nn_lr_kind)99), "?");
}

/* the clipping fixture's gradients, and their halves (macro arguments cannot hold compound literals) */
static const double GA[2] = {3, 4}, GB[1] = {12}, GA_HALF[2] = {1.5, 2}, GB_HALF[1] = {6}, GINF[1] = {INFINITY};

typedef struct {
    tu_env *e;
    ag_tape tape;
    nn_params *p;
    sgt_tensor *a, *b;
} clip_fx;

/* grads a = [3, 4], b = [[12]]: global norm 13; the scratch context has a tape, like a trainer's */
static clip_fx *clip_new(sgt_dtype t) {
    clip_fx *f = calloc(1, sizeof *f);
    f->e = tu_env_new();
    ag_tape_init(&f->tape, &f->e->ctx);
    f->p = nn_params_create(3, t, SGT_CPU);
    f->a = nn_param_new(f->p, "", "a", SGT_SHAPE(2), NN_INIT_ONES, 0, true);
    f->b = nn_param_new(f->p, "", "b", SGT_SHAPE(1, 1), NN_INIT_ONES, 0, false);
    put(ag_grad(f->a), GA);
    put(ag_grad(f->b), GB);
    return f;
}

static void clip_free(clip_fx *f) {
    ag_tape_detach(&f->tape);
    nn_params_destroy(f->p);
    tu_env_free(f->e);
    free(f);
}

static void t_clip_grad_norm(void **s) {
    (void)s;
    for (int dt = 0; dt < 2; dt++) {
        sgt_dtype type = dt ? SGT_F32 : SGT_F64;
        double tol = dt ? 1e-6 : 1e-14;
        clip_fx *f = clip_new(type);
        sgt_ctx *c = &f->e->ctx;
        size_t used0 = f->e->arena->in_use;
        assert_true(fabs(nn_grad_norm(f->p, c) - 13.0) <= 13 * tol);
        assert_int_equal(f->e->arena->in_use, used0); /* temporaries released */

        /* below the limit: bit-identical grads */
        assert_true(fabs(nn_clip_grad_norm(f->p, c, 13.5) - 13.0) <= 13 * tol);
        tu_assert_close(ag_grad(f->a), GA, 0, 0, "grad a below the limit");
        tu_assert_close(ag_grad(f->b), GB, 0, 0, "grad b below the limit");

        /* max_norm 0 disables clipping */
        assert_true(fabs(nn_clip_grad_norm(f->p, c, 0.0) - 13.0) <= 13 * tol);
        tu_assert_close(ag_grad(f->a), GA, 0, 0, "grad a with clipping disabled");

        /* above it: scaled by 6.5 / 13 = 1/2, new norm exactly the limit */
        double before = nn_clip_grad_norm(f->p, c, 6.5);
        assert_true(fabs(before - 13.0) <= 13 * tol);
        tu_assert_close(ag_grad(f->a), GA_HALF, tol, 0, "grad a clipped");
        tu_assert_close(ag_grad(f->b), GB_HALF, tol, 0, "grad b clipped");
        assert_true(fabs(nn_grad_norm(f->p, c) - 6.5) <= 6.5 * tol);
        assert_int_equal(f->e->arena->in_use, used0);
        assert_int_equal(f->tape.nnodes, 0); /* nothing recorded */
        clip_free(f);
    }
}

static void t_clip_non_finite_left_alone(void **s) {
    (void)s;
    clip_fx *f = clip_new(SGT_F32);
    put(ag_grad(f->b), (double[]){NAN});
    double n = nn_clip_grad_norm(f->p, &f->e->ctx, 1.0);
    assert_true(isnan(n));
    tu_assert_close(ag_grad(f->a), GA, 0, 0, "grad a with a NaN elsewhere");
    put(ag_grad(f->b), (double[]){INFINITY});
    n = nn_clip_grad_norm(f->p, &f->e->ctx, 1.0);
    assert_true(isinf(n) && n > 0);
    tu_assert_close(ag_grad(f->a), GA, 0, 0, "grad a with an Inf elsewhere");
    tu_assert_close(ag_grad(f->b), GINF, 0, 0, "the Inf grad itself");
    clip_free(f);
}

/* loss = mean((x W - y)^2) over the rows [r0, r0 + nr) of the batch, times scale */
static void accumulate(tu_env *e, ag_tape *tape, sgt_tensor *w, sgt_tensor *x, sgt_tensor *y, int64_t r0, int64_t nr,
                       double scale) {
    sgt_ctx *c = &e->ctx;
    sgt_tensor *xs = sgt_narrow(c, x, 0, r0, nr), *ys = sgt_narrow(c, y, 0, r0, nr);
    sgt_tensor *d = sgt_sub(c, sgt_matmul(c, xs, w, false, false), ys);
    sgt_tensor *loss = sgt_mean(c, sgt_mul(c, d, d), SGT_ALL_DIMS, false);
    ag_backward(tape, sgt_mul_scalar(c, loss, scale));
    ag_step_end(tape);
}

static void t_gradient_accumulation(void **s) {
    (void)s;
    const int64_t N = 6, K = 3, M = 2;
    nn_params *p = nn_params_create(5, SGT_F64, SGT_CPU);
    sgt_tensor *w = nn_param_new(p, "", "W", SGT_SHAPE(K, M), NN_INIT_NORMAL, 0.5, true);
    /* the batch lives in its own arena: the per-step arena is reset after every micro-batch */
    tu_env *data = tu_env_new(), *e = tu_env_new();
    sgt_tensor *x = tu_rand(&data->ctx, SGT_F64, SGT_SHAPE(N, K), 21, -1, 1);
    sgt_tensor *y = tu_rand(&data->ctx, SGT_F64, SGT_SHAPE(N, M), 22, -1, 1);
    ag_tape tape;
    ag_tape_init(&tape, &e->ctx);

    accumulate(e, &tape, w, x, y, 0, N, 1.0);
    double *full = tu_host(ag_grad(w));
    /* the analytic gradient, 2/(N M) x^T (x W - y), as an independent anchor */
    double *xv = tu_host(x), *yv = tu_host(y), *wv = tu_host(w), want[6] = {0};
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < M; j++) {
            double r = -yv[n * M + j];
            for (int64_t k = 0; k < K; k++) r += xv[n * K + k] * wv[k * M + j];
            for (int64_t k = 0; k < K; k++) want[k * M + j] += 2.0 / (double)(N * M) * xv[n * K + k] * r;
        }
    tu_assert_close(ag_grad(w), want, 1e-12, 1e-15, "full-batch gradient");

    nn_params_zero_grad(p);
    accumulate(e, &tape, w, x, y, 0, N / 2, 0.5);
    accumulate(e, &tape, w, x, y, N / 2, N / 2, 0.5); /* no zeroing in between */
    tu_assert_close(ag_grad(w), full, 1e-13, 1e-16, "two half-batches scaled by 1/2");

    /* and without the zeroing, a third pass adds on top: gradients accumulate, never overwrite */
    accumulate(e, &tape, w, x, y, 0, N, 1.0);
    for (int i = 0; i < 6; i++) full[i] *= 2;
    tu_assert_close(ag_grad(w), full, 1e-13, 1e-16, "accumulation over a further full batch");

    free(full);
    free(xv);
    free(yv);
    free(wv);
    ag_tape_detach(&tape);
    tu_env_free(e);
    tu_env_free(data);
    nn_params_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_adamw_matches_reference),
        cmocka_unit_test(t_adamw_decay_only_where_flagged),
        cmocka_unit_test(t_adamw_refuses_late_parameters),
        cmocka_unit_test(t_lr_schedule_landmarks),
        cmocka_unit_test(t_lr_schedule_kinds),
        cmocka_unit_test(t_lr_kind_parse),
        cmocka_unit_test(t_clip_grad_norm),
        cmocka_unit_test(t_clip_non_finite_left_alone),
        cmocka_unit_test(t_gradient_accumulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
