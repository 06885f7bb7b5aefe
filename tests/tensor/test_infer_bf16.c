/* test_infer_bf16.c: the inference ops over bf16 weights (sgt_linear_bf16, sgt_bsparse_swiglu_bf16).
 *
 * CPU: against the oracle, the f64 product of the same bf16 weights (widened exactly) and f32
 * inputs, with a tolerance from f32 summation (K terms: 4 K eps_f32 sum |w x|, per element). The
 * shapes cover the kernel's paths: M = 1..4 (the streaming kernel) and 5, 9 (the widened tiles),
 * K below, at and off the vector widths (1, 7, 16, 33, 100), output counts across a tile (70);
 * one case over the OpenMP threshold; the block-sparse op with and without m, one and several
 * tokens, block sizes off the kernel's 4-row step; leading batch dims; bad dtypes, shapes and block
 * indices are clear errors. The result of the block-sparse op must not depend on the thread count.
 *
 * CUDA (skips without a device; SGT_CUDA_TEST_ON_CPU=1 lets the CPU stand in): the same cases on
 * the device against the CPU, with the same tolerance (both sum in f32, in other orders). */
#include <float.h>
#include <omp.h>

#include "../common/test_device.h"

TD_GROUP("test_infer_bf16", "infer-cpu", 64u << 20, "infer-dev", 64u << 20)

/* the oracle of linear_bf16: want[m, o] = sum_k w[o, k] x[m, k] in f64, tol from |w||x| */
static void linear_oracle(const double *x, const double *w, int64_t M, int64_t O, int64_t K, double *want, double *tol) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t o = 0; o < O; o++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < K; k++) {
                s += w[o * K + k] * x[m * K + k];
                a += fabs(w[o * K + k] * x[m * K + k]);
            }
            want[m * O + o] = s;
            tol[m * O + o] = 4.0 * (double)(K + 2) * FLT_EPSILON * a + 1e-30;
        }
}

static void check_linear(int64_t M, int64_t O, int64_t K, int lead) {
    marks mk = mark_both();
    /* x [lead, M / lead, K] when lead > 1, else [M, K] */
    sgt_tensor *x = td_rand(SGT_F32, SGT_SHAPE(M, K), 1, -1, 1);
    if (lead > 1) x = sgt_reshape(C, x, SGT_SHAPE(lead, M / lead, K));
    sgt_tensor *w = td_rand(SGT_BF16, SGT_SHAPE(O, K), 2, -1, 1);
    sgt_tensor *y = sgt_linear_bf16(C, x, w);
    int64_t ys[3] = {lead, M / lead, O};
    if (lead > 1) tu_check_meta(y, SGT_F32, 3, ys, "linear_bf16 shape");
    else tu_check_meta(y, SGT_F32, SGT_SHAPE(M, O), "linear_bf16 shape");
    double *xv = tu_vals(x), *wv = tu_vals(w), *want = tu_dbuf(sgt_numel(y)), *tol = tu_dbuf(sgt_numel(y));
    linear_oracle(xv, wv, M, O, K, want, tol);
    tu_close_to(y, want, tol, WHAT("linear_bf16 M %lld O %lld K %lld", (long long)M, (long long)O, (long long)K));
    if (G) { /* the device against the same oracle */
        sgt_tensor *yd = sgt_linear_bf16(G, sgt_to_device(G, x, DEV), sgt_to_device(G, w, DEV));
        tu_close_to(sgt_to_device(C, yd, SGT_CPU), want, tol,
                    WHAT("cuda linear_bf16 M %lld O %lld K %lld", (long long)M, (long long)O, (long long)K));
    }
    free(xv);
    free(wv);
    free(want);
    free(tol);
    rewind_both(mk);
}

static void t_linear(void **state) {
    (void)state;
    const int64_t Ms[] = {1, 2, 3, 4, 5, 9}, Ks[] = {1, 7, 16, 33, 100};
    for (size_t i = 0; i < sizeof Ms / sizeof *Ms; i++)
        for (size_t j = 0; j < sizeof Ks / sizeof *Ks; j++) check_linear(Ms[i], 70, Ks[j], 1);
    check_linear(1, 1, 64, 1);
    check_linear(4, 3, 768, 2);    /* leading dims [2, 2, K] */
    check_linear(1, 300, 256, 1);  /* over the OpenMP threshold */
    check_linear(12, 130, 96, 3);  /* several widened tiles, [3, 4, K] */
}

/* the oracle of bsparse_swiglu_bf16 over host values: wb [nb, 3, bs, C], f64 */
static void bs_oracle(const double *x, const double *wb, const int32_t *idx, const double *m, int64_t N, int64_t C0,
                      int64_t k, int64_t bs, double *want, double *tol) {
    for (int64_t i = 0; i < N * C0; i++) want[i] = tol[i] = 0;
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < k; j++) {
            const double *blk = wb + (int64_t)idx[t * k + j] * 3 * bs * C0, mv = m ? m[t * k + j] : 1.0;
            for (int64_t r = 0; r < bs; r++) {
                double g = 0, u = 0, ag = 0, au = 0;
                for (int64_t c = 0; c < C0; c++) {
                    g += blk[r * C0 + c] * x[t * C0 + c];
                    u += blk[(bs + r) * C0 + c] * x[t * C0 + c];
                    ag += fabs(blk[r * C0 + c] * x[t * C0 + c]);
                    au += fabs(blk[(bs + r) * C0 + c] * x[t * C0 + c]);
                }
                const double s = 1 / (1 + exp(-g)), h = mv * g * s * u;
                /* |dh| <= |m| (|silu'(g)| |u| dg + |silu(g)| du) + rounding of h */
                const double eg = 4.0 * (double)(C0 + 2) * FLT_EPSILON * ag, eu = 4.0 * (double)(C0 + 2) * FLT_EPSILON * au;
                const double eh = fabs(mv) * (1.1 * fabs(u) * eg + fabs(g * s) * eu) + 8 * FLT_EPSILON * fabs(h);
                for (int64_t c = 0; c < C0; c++) {
                    const double wd = blk[(2 * bs + r) * C0 + c];
                    want[t * C0 + c] += wd * h;
                    tol[t * C0 + c] += fabs(wd) * eh + 4.0 * (double)(bs * k + 2) * FLT_EPSILON * fabs(wd * h);
                }
            }
        }
    for (int64_t i = 0; i < N * C0; i++) tol[i] += 1e-30;
}

static void check_bs(int64_t N, int64_t C0, int64_t nb, int64_t bs, int64_t k, bool with_m) {
    marks mk = mark_both();
    sgt_tensor *x = td_rand(SGT_F32, SGT_SHAPE(N, C0), 3, -1, 1);
    sgt_tensor *wb = td_rand(SGT_BF16, SGT_SHAPE(nb, 3, bs, C0), 4, -0.5, 0.5);
    int32_t *iv = malloc(sizeof(int32_t) * (size_t)(N * k));
    for (int64_t t = 0; t < N; t++) /* k distinct blocks per token: t - j mod nb, a token-dependent order */
        for (int64_t j = 0; j < k; j++) iv[t * k + j] = (int32_t)((t + (j * (nb - 1))) % nb);
    sgt_tensor *idx = sgt_from_i32(C, SGT_SHAPE(N, k), iv);
    sgt_tensor *m = with_m ? td_rand(SGT_F32, SGT_SHAPE(N, k), 5, 0.5, 1.5) : NULL;
    double *xv = tu_vals(x), *wv = tu_vals(wb), *mv = m ? tu_vals(m) : NULL, *want = tu_dbuf(sgt_numel(x)), *tol = tu_dbuf(sgt_numel(x));
    bs_oracle(xv, wv, iv, mv, N, C0, k, bs, want, tol);
    const char *what = WHAT("bsparse_swiglu_bf16 N %lld C %lld nb %lld bs %lld k %lld m %d", (long long)N, (long long)C0,
                            (long long)nb, (long long)bs, (long long)k, with_m);
    sgt_tensor *y = sgt_bsparse_swiglu_bf16(C, x, wb, idx, m);
    tu_check_meta(y, SGT_F32, SGT_SHAPE(N, C0), what);
    tu_close_to(y, want, tol, what);
    /* one thread: the same bits (each slot's partial row, then slot-order sums) */
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    sgt_tensor *y1 = sgt_bsparse_swiglu_bf16(C, x, wb, idx, m);
    omp_set_num_threads(nth);
    tu_same_as(y1, y, what);
    if (G) {
        sgt_tensor *yd = sgt_bsparse_swiglu_bf16(G, sgt_to_device(G, x, DEV), sgt_to_device(G, wb, DEV),
                                                 sgt_to_device(G, idx, DEV), m ? sgt_to_device(G, m, DEV) : NULL);
        tu_close_to(sgt_to_device(C, yd, SGT_CPU), want, tol, what);
    }
    free(xv);
    free(wv);
    free(mv);
    free(want);
    free(tol);
    free(iv);
    rewind_both(mk);
}

static void t_bsparse(void **state) {
    (void)state;
    check_bs(1, 16, 4, 4, 2, false);
    check_bs(1, 33, 5, 7, 3, true);    /* odd width and block size */
    check_bs(3, 40, 8, 8, 4, true);
    check_bs(6, 24, 4, 5, 4, false);   /* every block, several tokens */
    check_bs(2, 256, 8, 64, 4, true);  /* over the OpenMP threshold */
}

static void t_errors(void **state) {
    (void)state;
    sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
    sgt_tensor *x = td_rand(SGT_F32, SGT_SHAPE(2, 8), 1, -1, 1), *w = td_rand(SGT_BF16, SGT_SHAPE(3, 8), 2, -1, 1);
    EXPECT_SGT_ERROR(sgt_linear_bf16(C, x, sgt_cast(C, w, SGT_F32)), "needs x f32 and w bf16");
    EXPECT_SGT_ERROR(sgt_linear_bf16(C, x, td_rand(SGT_BF16, SGT_SHAPE(3, 7), 2, -1, 1)), "inner size");
    sgt_tensor *wb = td_rand(SGT_BF16, SGT_SHAPE(4, 3, 2, 8), 3, -1, 1);
    sgt_tensor *bad = sgt_from_i32(C, SGT_SHAPE(2, 1), (int32_t[]){1, 4});
    EXPECT_SGT_ERROR(sgt_bsparse_swiglu_bf16(C, x, wb, bad, NULL), "outside [0, 4)");
    EXPECT_SGT_ERROR(sgt_bsparse_swiglu_bf16(C, x, td_rand(SGT_BF16, SGT_SHAPE(4, 2, 2, 8), 3, -1, 1),
                                             sgt_from_i32(C, SGT_SHAPE(2, 1), (int32_t[]){1, 2}), NULL),
                     "block-major");
    sgt_arena_rewind(cpu_arena, mk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_linear),
        cmocka_unit_test(t_bsparse),
        cmocka_unit_test(t_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
