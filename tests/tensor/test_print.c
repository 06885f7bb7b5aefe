/* test_print.c: sgt_tensor_print / sgt_tensor_format (tensor/print.h) against expected strings:
 * f32 matrices, i32, f64 in scientific notation, bf16, a scalar, a strided view, and the
 * summarised form of a large tensor. */
#include "../common/test_util.h"
#include "print.h"

static void expect(const sgt_tensor *x, const char *name, const char *want) {
    char *got = sgt_tensor_format(x, name);
    assert_non_null(got);
    if (strcmp(got, want) != 0) fail_msg("got:\n%s\nwant:\n%s", got, want);
    free(got);
}

static void t_small(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    sgt_tensor *x = sgt_from_f64(c, SGT_F32, SGT_SHAPE(2, 3), (double[]){1, 2, -3.5, 4, 5, 6});
    expect(x, "x",
           "x: shape [2,3], f32, cpu\n"
           "[[ 1.0000,  2.0000, -3.5000],\n"
           " [ 4.0000,  5.0000,  6.0000]]\n");
    /* a transposed view prints in its logical order */
    expect(sgt_transpose(c, x, 0, 1), NULL,
           "shape [3,2], f32, cpu\n"
           "[[ 1.0000,  4.0000],\n"
           " [ 2.0000,  5.0000],\n"
           " [-3.5000,  6.0000]]\n");
    sgt_tensor *i = sgt_from_i32(c, SGT_SHAPE(2, 1, 2), (int32_t[]){7, -12, 0, 3});
    expect(i, "idx",
           "idx: shape [2,1,2], i32, cpu\n"
           "[[[  7, -12]],\n"
           "\n"
           " [[  0,   3]]]\n");
    expect(sgt_scalar(c, SGT_F64, 0.25), "s", "s: shape [], f64, cpu\n0.2500\n");
    expect(sgt_from_f64(c, SGT_F64, SGT_SHAPE(3), (double[]){1e-6, 2, 123456}), "big",
           "big: shape [3], f64, cpu\n[1.0000e-06, 2.0000e+00, 1.2346e+05]\n");
    /* bf16 rounds to 8 significant bits: 1.01 -> 1.0078125, 3.14159 -> 3.140625 */
    expect(sgt_from_f64(c, SGT_BF16, SGT_SHAPE(2), (double[]){1.01, 3.14159}), "h",
           "h: shape [2], bf16, cpu\n[1.0078, 3.1406]\n");
    tu_env_free(e);
}

static void t_summarised(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    int64_t n = 40 * 30;
    double *v = malloc((size_t)n * sizeof *v);
    for (int64_t k = 0; k < n; k++) v[k] = (double)k;
    sgt_tensor *x = sgt_from_f64(c, SGT_I32, SGT_SHAPE(40, 30), v);
    expect(x, "x",
           "x: shape [40,30], i32, cpu\n"
           "[[   0,    1,    2, ...,   27,   28,   29],\n"
           " [  30,   31,   32, ...,   57,   58,   59],\n"
           " [  60,   61,   62, ...,   87,   88,   89],\n"
           " ...,\n"
           " [1110, 1111, 1112, ..., 1137, 1138, 1139],\n"
           " [1140, 1141, 1142, ..., 1167, 1168, 1169],\n"
           " [1170, 1171, 1172, ..., 1197, 1198, 1199]]\n");
    /* bf16 through the per-element path: 998 and 999 round to 1000 (spacing 4 above 512, ties to even) */
    sgt_tensor *h = sgt_from_f64(c, SGT_BF16, SGT_SHAPE(1001), v);
    expect(h, NULL,
           "shape [1001], bf16, cpu\n"
           "[   0.0000,    1.0000,    2.0000, ..., 1000.0000, 1000.0000, 1000.0000]\n");
    free(v);
    tu_env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_small),
        cmocka_unit_test(t_summarised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
