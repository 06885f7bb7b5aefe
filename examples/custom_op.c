/* custom_op.c: an activation defined outside the library, softplus(x) = log(1 + e^x), with its
 * own CPU forward kernel and a backward kernel (a second custom op), checked in float64 by
 * ag_gradcheck and then used in an MLP that learns y = |x|. See docs/LIBRARY.md, "Custom ops".
 *   cc custom_op.c $(pkg-config --cflags --libs sgt) -lm -o custom_op && ./custom_op [steps]
 * Exits 1 if the gradient check fails or the loss does not fall to under a third. */
#include <sgt/sgt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* kernels see contiguous f32 or f64 tensors (bf16 arrives as f32) */
static double get(const sgt_tensor *t, int64_t i) {
    return t->dtype == SGT_F64 ? ((const double *)sgt_ptr(t))[i] : ((const float *)sgt_ptr(t))[i];
}
static void set(sgt_tensor *t, int64_t i, double v) {
    if (t->dtype == SGT_F64) ((double *)sgt_ptr(t))[i] = v;
    else ((float *)sgt_ptr(t))[i] = (float)v;
}

static void softplus_cpu(int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out, void *user) {
    (void)nin, (void)nout, (void)user;
    for (int64_t i = 0; i < sgt_numel(in[0]); i++) {
        double x = get(in[0], i);
        set(out[0], i, x > 30 ? x : log1p(exp(x)));
    }
}

/* x, dy -> dx = dy * sigmoid(x) */
static void softplus_bwd_cpu(int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out, void *user) {
    (void)nin, (void)nout, (void)user;
    for (int64_t i = 0; i < sgt_numel(in[0]); i++) set(out[0], i, get(in[1], i) / (1 + exp(-get(in[0], i))));
}
static const sgt_custom_op softplus_bwd_op = {.name = "softplus_bwd", .cpu = softplus_bwd_cpu};

static void softplus_backward(sgt_ctx *c, int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out,
                              sgt_tensor *const *dout, void *user, sgt_tensor **din) {
    (void)nin, (void)nout, (void)out, (void)user;
    din[0] = sgt_custom(c, &softplus_bwd_op, 2, (sgt_tensor *[]){in[0], dout[0]}, NULL, NULL);
}

static const ag_custom_op softplus_op = {
    .fwd = {.name = "softplus", .cpu = softplus_cpu}, /* shape: like the input (no rule needed) */
    .backward = softplus_backward,
};

static sgt_tensor *softplus(sgt_ctx *c, sgt_tensor *x) { return ag_custom(c, &softplus_op, 1, &x, NULL, NULL); }

static sgt_tensor *f_check(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)n, (void)u;
    return softplus(c, sgt_mul(c, x[0], x[0]));
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 150;
    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 1 << 20, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);

    /* float64 finite differences against the backward */
    sgt_tensor *x0 = sgt_empty(&c, SGT_F64, SGT_SHAPE(4, 5));
    sgt_rng_uniform(&c, x0, 3, 0, -2, 2);
    ag_gradcheck_result r = ag_gradcheck(&c, f_check, NULL, &x0, 1, NULL, NULL);
    printf("custom_op: gradcheck %s\n", r.report);
    if (!r.pass) return 1;
    ag_step_end(&tape);

    nn_params *P = nn_params_create(11, SGT_F32, SGT_CPU);
    nn_linear fc1, fc2;
    nn_linear_init(&fc1, P, "fc1", 1, 16, true, 1.0);
    nn_linear_init(&fc2, P, "fc2", 16, 1, true, 0.3);
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.999, 1e-8, 0.0);
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        double xs[64], ys[64];
        for (int i = 0; i < 64; i++) {
            xs[i] = -2 + 4.0 * ((i * 37 + s * 11) % 64) / 63.0;
            ys[i] = fabs(xs[i]);
        }
        sgt_tensor *x = sgt_from_f64(&c, SGT_F32, SGT_SHAPE(64, 1), xs);
        sgt_tensor *y = sgt_from_f64(&c, SGT_F32, SGT_SHAPE(64, 1), ys);
        sgt_tensor *pred = nn_linear_forward(&c, &fc2, softplus(&c, nn_linear_forward(&c, &fc1, x)));
        sgt_tensor *d = sgt_sub(&c, pred, y);
        sgt_tensor *loss = sgt_mean(&c, sgt_mul(&c, d, d), SGT_ALL_DIMS, false);
        ag_backward(&tape, loss);
        last = sgt_item(loss);
        if (s == 0) first = last;
        nn_adamw_step(opt, 0.03);
        nn_params_zero_grad(P);
        ag_step_end(&tape);
    }
    printf("custom_op: mse %.4f -> %.4f over %d steps\n", first, last, steps);
    nn_adamw_destroy(opt);
    nn_params_destroy(P);
    sgt_arena_destroy(step);
    return last < first / 3 ? 0 : 1;
}
