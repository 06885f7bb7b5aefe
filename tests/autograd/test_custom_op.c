/* test_custom_op.c: an op defined here, outside the library, through the public custom-op API
 * (tensor/custom.h, autograd/custom.h): y = x^3 * w + a (x, w broadcast-free, a scale from the
 * call's user data), with a CPU forward kernel, a backward built from a second custom op (its
 * backward kernel) and a shape rule. It records on the tape, passes the float64 gradient check,
 * composes with library ops (a strided input, a non-scalar readout), and reports a missing
 * backward and a wrong gradient shape by the op's name. */
#include "../../autograd/custom.h"
#include "../../autograd/gradcheck.h"
#include "../common/test_util.h"

TU_GROUP_ENV
#define C (&env->ctx)
#define R(stream, ...) tu_rand(C, SGT_F64, SGT_SHAPE(__VA_ARGS__), stream, -1.0, 1.0)

typedef struct { double a; } cube_args;

/* element i of a contiguous f32 or f64 operand (the kernels' inputs are contiguous) */
static double at(const sgt_tensor *t, int64_t i) {
    return t->dtype == SGT_F64 ? ((const double *)sgt_ptr(t))[i] : ((const float *)sgt_ptr(t))[i];
}
static void put(sgt_tensor *t, int64_t i, double v) {
    if (t->dtype == SGT_F64) ((double *)sgt_ptr(t))[i] = v;
    else ((float *)sgt_ptr(t))[i] = (float)v;
}

/* y = x^3 * w + a */
static void cube_cpu(int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out, void *user) {
    (void)nin, (void)nout;
    const double a = ((const cube_args *)user)->a;
    for (int64_t i = 0; i < sgt_numel(out[0]); i++) {
        double x = at(in[0], i);
        put(out[0], i, x * x * x * at(in[1], i) + a);
    }
}

static void cube_shape(int nin, sgt_tensor *const *in, int nout, sgt_tensor_spec *out, void *user) {
    (void)nin, (void)nout, (void)user;
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(in[0], in[1]) && in[0]->dtype == in[1]->dtype, "cube: x %s and w %s differ",
              sgt_shape_str(in[0], b0, sizeof b0), sgt_shape_str(in[1], b1, sizeof b1));
    out[0].dtype = in[0]->dtype; /* like input 0 (the default), said for the test's sake */
}

/* the backward kernel: x, w, dy -> dx = 3 x^2 w dy, dw = x^3 dy */
static void cube_bwd_cpu(int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out, void *user) {
    (void)nin, (void)nout, (void)user;
    for (int64_t i = 0; i < sgt_numel(in[0]); i++) {
        double x = at(in[0], i), w = at(in[1], i), g = at(in[2], i);
        put(out[0], i, 3 * x * x * w * g);
        put(out[1], i, x * x * x * g);
    }
}
static const sgt_custom_op cube_bwd_op = {.name = "cube_bwd", .nout = 2, .cpu = cube_bwd_cpu};

static void cube_backward(sgt_ctx *c, int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out,
                          sgt_tensor *const *dout, void *user, sgt_tensor **din) {
    (void)nin, (void)nout, (void)out, (void)user;
    sgt_tensor *g[2];
    sgt_custom(c, &cube_bwd_op, 3, (sgt_tensor *[]){in[0], in[1], dout[0]}, NULL, g);
    din[0] = g[0];
    din[1] = g[1];
}

static const ag_custom_op cube_op = {
    .fwd = {.name = "cube", .shape = cube_shape, .cpu = cube_cpu},
    .backward = cube_backward,
};

static sgt_tensor *f_cube(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)n;
    return ag_custom(c, &cube_op, 2, x, u, NULL);
}

static void check(ag_fn fn, void *user, sgt_tensor **in, int n) {
    ag_gradcheck_result r = ag_gradcheck(C, fn, user, in, n, NULL, NULL);
    print_message("    %s\n", r.report);
    if (!r.pass) fail_msg("gradcheck failed (seed %u): %s", TEST_SEED, r.report);
    assert_true(r.checked > 0);
}

static void t_gradcheck(void **s) {
    (void)s;
    cube_args a = {0.25};
    sgt_tensor *in[] = {R(1, 3, 5), R(2, 3, 5)};
    check(f_cube, &a, in, 2);
}

/* inside a graph: a transposed (strided) input is made contiguous by a recorded copy, and the
 * result feeds library ops; the gradient flows through all of it */
static sgt_tensor *f_composed(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)n;
    sgt_tensor *xt = sgt_transpose(c, x[0], 0, 1); /* [5, 3] view */
    sgt_tensor *y = ag_custom(c, &cube_op, 2, (sgt_tensor *[]){xt, sgt_tanh(c, x[1])}, u, NULL);
    return sgt_sum(c, sgt_mul(c, y, y), -1, false);
}
static void t_gradcheck_composed(void **s) {
    (void)s;
    cube_args a = {-0.5};
    sgt_tensor *in[] = {R(3, 3, 5), R(4, 5, 3)};
    check(f_composed, &a, in, 2);
}

/* the forward's values and the tape: one node, the op's own name in errors */
static void t_forward_and_tape(void **s) {
    (void)s;
    sgt_arena_mark m = sgt_arena_get_mark(env->arena);
    ag_tape t;
    ag_tape_init(&t, C);
    cube_args a = {1.0};
    sgt_tensor *x = sgt_from_f64(C, SGT_F32, SGT_SHAPE(3), (double[]){1, 2, -1});
    sgt_tensor *w = sgt_from_f64(C, SGT_F32, SGT_SHAPE(3), (double[]){2, 0.5, 3});
    ag_set_requires_grad(C, x);
    sgt_tensor *y = ag_custom(C, &cube_op, 2, (sgt_tensor *[]){x, w}, &a, NULL);
    assert_int_equal(t.nnodes, 1);
    double v[3];
    sgt_to_f64(y, v);
    assert_true(v[0] == 3 && v[1] == 5 && v[2] == -2);
    ag_backward(&t, sgt_sum(C, y, SGT_ALL_DIMS, false));
    sgt_to_f64(ag_grad(x), v); /* 3 x^2 w */
    assert_true(v[0] == 6 && v[1] == 6 && v[2] == 9);
    assert_null(ag_grad(w));  /* w does not require grad */
    /* the shape rule's check names the op */
    EXPECT_SGT_ERROR(ag_custom(C, &cube_op, 2, (sgt_tensor *[]){x, sgt_zeros(C, SGT_F32, SGT_SHAPE(4))}, &a, NULL),
                     "cube: x [3] f32 and w [4] f32 differ");
    ag_tape_detach(&t);
    sgt_arena_rewind(env->arena, m);
}

/* a definition without a backward: fine without grad, an error naming it on the tape */
static void t_missing_backward(void **s) {
    (void)s;
    sgt_arena_mark m = sgt_arena_get_mark(env->arena);
    ag_tape t;
    ag_tape_init(&t, C);
    cube_args a = {0};
    sgt_tensor *x = R(5, 4), *w = R(6, 4);
    sgt_tensor *y = sgt_custom(C, &cube_op.fwd, 2, (sgt_tensor *[]){x, w}, &a, NULL); /* nothing requires grad */
    assert_int_equal(t.nnodes, 0);
    assert_true(sgt_get(y, (int64_t[]){1}) == pow(sgt_get(x, (int64_t[]){1}), 3) * sgt_get(w, (int64_t[]){1}));
    ag_set_requires_grad(C, x);
    EXPECT_SGT_ERROR(sgt_custom(C, &cube_op.fwd, 2, (sgt_tensor *[]){x, w}, &a, NULL), "custom op 'cube' has no backward");
    ag_no_grad_begin(&t);
    sgt_custom(C, &cube_op.fwd, 2, (sgt_tensor *[]){x, w}, &a, NULL);
    ag_no_grad_end(&t);
    ag_tape_detach(&t);
    sgt_arena_rewind(env->arena, m);
}

/* a backward that returns the wrong shape is caught, naming the op and the input */
static void bad_backward(sgt_ctx *c, int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out,
                         sgt_tensor *const *dout, void *user, sgt_tensor **din) {
    (void)nin, (void)in, (void)nout, (void)out, (void)dout, (void)user;
    din[0] = sgt_zeros(c, in[0]->dtype, SGT_SHAPE(2));
}
static const ag_custom_op bad_op = {.fwd = {.name = "bad", .shape = cube_shape, .cpu = cube_cpu}, .backward = bad_backward};
static void t_bad_gradient(void **s) {
    (void)s;
    sgt_arena_mark m = sgt_arena_get_mark(env->arena);
    ag_tape t;
    ag_tape_init(&t, C);
    cube_args a = {0};
    sgt_tensor *x = R(7, 3), *w = R(8, 3);
    ag_set_requires_grad(C, x);
    sgt_tensor *y = ag_custom(C, &bad_op, 2, (sgt_tensor *[]){x, w}, &a, NULL);
    EXPECT_SGT_ERROR(ag_backward(&t, sgt_sum(C, y, SGT_ALL_DIMS, false)),
                     "custom op 'bad': the backward's gradient of input 0 is [2] f64, the input is [3] f64");
    ag_tape_detach(&t);
    sgt_arena_rewind(env->arena, m);
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_gradcheck), cmocka_unit_test(t_gradcheck_composed), cmocka_unit_test(t_forward_and_tape),
        cmocka_unit_test(t_missing_backward), cmocka_unit_test(t_bad_gradient),
    };
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("custom_op", tests, setup, teardown);
}
