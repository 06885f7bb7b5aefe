/* test_swiglu.c: the fused SwiGLU activation (sgt_swiglu, sgt_swiglu_bwd), masked and unmasked.
 *
 * CPU (f32, f64): the fused kernels against the composed ops they replace, silu(g) * u (* the mask
 * expanded over its blocks) and their autograd-style backward (mul and unary_bwd), which they must
 * equal bit for bit (same formulas, same grouping of the products), and against naive references
 * in double over host arrays; dm (a sum over each block) against the composed sum and the
 * reference, with tolerances from the summation order. Odd shapes: N = 1, 7, 33 (also over two
 * leading dims, and rank 1), block sizes 1, 3, 16, a block longer than the CPU kernel's chunk, and
 * one case over the OpenMP threshold. Mask values include exact zeros and ones.
 *
 * CUDA (skips without a device; SGT_CUDA_TEST_ON_CPU=1 lets the CPU stand in for it, a check of
 * the test's own logic): the same ops on the same inputs against the CPU, in f32, f64 and bf16
 * (bf16 against the CPU's promoted path: f32 math, one rounding into bf16), on the CPU cases and
 * block sizes that exercise the kernel's lane groups (5 -> groups of 8, 48 and 100 -> whole warps
 * with idle lanes, 4096 -> one long block per row) and many rows. Tolerances are derived where
 * they are used. The seed (TEST_SEED) is in every failure message. */
#include <float.h>

#include "../../tensor/bf16.h"
#include "../common/test_device.h"

TD_GROUP("test_swiglu", "swiglu-cpu", 64u << 20, "swiglu-dev", 64u << 20)

/* ---- inputs (the host values, comparisons and td_rand: tests/common/test_util.h, test_device.h) ---- */

/* the mask [..., I / bs]: values in [-0.5, 1.5), with every 4th one exactly 0 and every 4th 1 */
static sgt_tensor *rand_mask(sgt_dtype dt, const sgt_tensor *g, int64_t bs, uint64_t stream) {
    int64_t shape[SGT_MAX_DIMS];
    for (int d = 0; d < g->ndim; d++) shape[d] = g->shape[d];
    shape[g->ndim - 1] /= bs;
    const int64_t n = tu_prod(g->ndim, shape);
    double *v = tu_dbuf(n);
    for (int64_t i = 0; i < n; i++) v[i] = i % 4 == 1 ? 0.0 : i % 4 == 2 ? 1.0 : -0.5 + 2 * tu_urand((uint64_t)i, stream);
    sgt_tensor *m = td_make(dt, g->ndim, shape, v);
    free(v);
    return m;
}

/* m [..., nb] expanded to g's shape [..., nb * bs] (a copy), for the composed ops */
static sgt_tensor *expand_mask(sgt_ctx *c, sgt_tensor *m, const sgt_tensor *g, int64_t bs) {
    const int64_t nb = m->shape[m->ndim - 1], N = nb ? sgt_numel(m) / nb : 0;
    sgt_tensor *m3 = sgt_reshape(c, m, SGT_SHAPE(N, nb, 1));
    return sgt_reshape(c, sgt_expand(c, m3, SGT_SHAPE(N, nb, bs)), g->ndim, g->shape);
}

/* ---- naive references in double over host arrays ---- */

typedef struct {
    double *h, *dg, *du, *dm;             /* values */
    double *sh, *sdg, *sdu, *sdm;         /* their scales: the magnitudes that bound rounding errors */
} sw_ref;

static void ref_free(sw_ref *r) {
    free(r->h), free(r->dg), free(r->du), free(r->dm), free(r->sh), free(r->sdg), free(r->sdu), free(r->sdm);
}

/* m == NULL: unmasked. Scales: |h|, |du|; for dg |dh m u sg| (2 + |g|), which bounds the error of
 * 1 + g (1 - sg) (it cancels near g = -1.28, where silu' is 0); for dm the sum of |terms| */
static sw_ref reference(const sgt_tensor *gt, const sgt_tensor *ut, const sgt_tensor *mt, const sgt_tensor *dht,
                        int64_t bs) {
    const int64_t n = sgt_numel(gt), I = gt->shape[gt->ndim - 1], nb = mt ? I / bs : 1, items = I ? n / I * nb : 0;
    double *g = tu_vals(gt), *u = tu_vals(ut), *dh = tu_vals(dht), *m = mt ? tu_vals(mt) : NULL;
    sw_ref r;
    size_t b = sizeof(double) * (size_t)(n ? n : 1), bm = sizeof(double) * (size_t)(items ? items : 1);
    r.h = malloc(b), r.dg = malloc(b), r.du = malloc(b), r.sh = malloc(b), r.sdg = malloc(b), r.sdu = malloc(b);
    r.dm = calloc(1, bm), r.sdm = calloc(1, bm);
    for (int64_t i = 0; i < n; i++) {
        const int64_t k = i / (mt ? bs : I); /* the (row, block) item */
        const double mk = mt ? m[k] : 1.0, sg = 1 / (1 + exp(-g[i])), s = g[i] * sg, d = g[i] * (1 - sg);
        r.h[i] = s * u[i] * mk;
        r.dg[i] = dh[i] * mk * u[i] * sg * (1 + d);
        r.du[i] = dh[i] * mk * s;
        r.sh[i] = fabs(r.h[i]);
        r.sdu[i] = fabs(r.du[i]);
        r.sdg[i] = fabs(dh[i] * mk * u[i] * sg) * (2 + fabs(g[i]));
        r.dm[k] += dh[i] * s * u[i];
        r.sdm[k] += fabs(dh[i] * s * u[i]);
    }
    free(g), free(u), free(dh), free(m);
    return r;
}

/* tol[i] = rel * scale[i] + abs_rel * |want[i]| */
static double *tols(const double *scale, const double *want, int64_t n, double rel, double abs_rel) {
    double *t = tu_dbuf(n);
    for (int64_t i = 0; i < n; i++) t[i] = rel * scale[i] + abs_rel * fabs(want[i]);
    return t;
}

/* ---- cases ---- */

typedef struct {
    int nd;
    int64_t shape[3];
    int64_t bs;
} sw_case;

static const sw_case cpu_cases[] = {
    {2, {1, 48}, 16},       /* N = 1 */
    {2, {7, 21}, 3},        /* N = 7, bs 3 */
    {2, {33, 5}, 1},        /* N = 33, a mask value per element */
    {3, {3, 11, 48}, 16},   /* N = 33 over two leading dims */
    {1, {48}, 3},           /* rank 1 */
    {2, {7, 3000}, 1500},   /* blocks longer than the CPU's 1024-term chunks of dm */
    {2, {33, 2048}, 64},    /* over the OpenMP threshold (SGT_OMP_MIN) */
};
#define NCPU (int)(sizeof cpu_cases / sizeof *cpu_cases)

static const sw_case gpu_cases[] = {
    {2, {129, 500}, 5},     /* lane groups of 8 with 3 idle lanes each */
    {2, {9, 480}, 48},      /* a warp per block, half the lanes looping twice */
    {2, {5, 700}, 100},     /* a warp per block, 4 trips */
    {2, {3, 4096}, 4096},   /* one long block per row */
    {2, {4099, 96}, 32},    /* many rows */
};
#define NGPU (int)(sizeof gpu_cases / sizeof *gpu_cases)

typedef struct {
    sgt_tensor *g, *u, *m, *dh;
} sw_inputs;

/* gate values over [-8, 8): sigmoid saturates at both ends, and silu' crosses 0 near -1.28 */
static sw_inputs inputs(sgt_dtype dt, const sw_case *k, uint64_t stream) {
    sw_inputs in;
    in.g = td_rand(dt, k->nd, k->shape, stream, -8, 8);
    in.u = td_rand(dt, k->nd, k->shape, stream + 1, -2, 2);
    in.dh = td_rand(dt, k->nd, k->shape, stream + 2, -1, 1);
    in.m = rand_mask(dt, in.g, k->bs, stream + 3);
    return in;
}

static const char *case_str(const sw_case *k) {
    static char b[96];
    if (k->nd == 1) snprintf(b, sizeof b, "[%lld] bs %lld", (long long)k->shape[0], (long long)k->bs);
    else if (k->nd == 2) snprintf(b, sizeof b, "[%lld,%lld] bs %lld", (long long)k->shape[0], (long long)k->shape[1], (long long)k->bs);
    else snprintf(b, sizeof b, "[%lld,%lld,%lld] bs %lld", (long long)k->shape[0], (long long)k->shape[1], (long long)k->shape[2], (long long)k->bs);
    return b;
}

/* ================================================================================================
 * CPU: fused = composed, bit for bit; and the naive reference
 * ============================================================================================= */

/* one CPU case: dtype dt, case k, its inputs, the mask (in->m, or NULL: unmasked) and the failure
 * messages' prefix */
typedef void (*cpu_case_fn)(sgt_dtype dt, const sw_case *k, const sw_inputs *in, sgt_tensor *m, const char *what);

/* fn over f32 and f64, every CPU case, unmasked and masked, on inputs from streams stream0 + 10 ki;
 * each case's tensors are released after it */
static void each_cpu_case(const char *op, uint64_t stream0, cpu_case_fn fn) {
    const sgt_dtype dts[2] = {SGT_F32, SGT_F64};
    for (int ti = 0; ti < 2; ti++)
        for (int ki = 0; ki < NCPU; ki++)
            for (int masked = 0; masked < 2; masked++) {
                sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
                const sgt_dtype dt = dts[ti];
                const sw_case *k = &cpu_cases[ki];
                sw_inputs in = inputs(dt, k, stream0 + 10 * (uint64_t)ki);
                char what[256];
                snprintf(what, sizeof what, "%s %s %s %s", op, sgt_dtype_name(dt), case_str(k),
                         masked ? "masked" : "unmasked");
                fn(dt, k, &in, masked ? in.m : NULL, what);
                sgt_arena_rewind(cpu_arena, mk);
            }
}

static void cpu_forward_case(sgt_dtype dt, const sw_case *k, const sw_inputs *in, sgt_tensor *m, const char *what) {
    sgt_tensor *h = sgt_swiglu(C, in->g, in->u, m, k->bs);
    tu_check_like(h, dt, in->g, what);
    /* the composed ops: silu(g) * u (* the expanded mask), the same roundings */
    sgt_tensor *hc = sgt_mul(C, sgt_silu(C, in->g), in->u);
    if (m) hc = sgt_mul(C, hc, expand_mask(C, in->m, in->g, k->bs));
    tu_same_as(h, hc, WHAT("%s vs composed", what));
    /* the reference in double: f32 takes sgt_expf (<= 2 ulp) and four roundings (1 + e,
     * the division, two products): <= 6 * 2^-24 relative, so 1e-6; f64 libm's exp
     * (< 1 ulp) and four roundings: 1e-14 */
    sw_ref r = reference(in->g, in->u, m, in->dh, k->bs);
    double *t = tols(r.sh, r.h, sgt_numel(h), dt == SGT_F32 ? 1e-6 : 1e-14, 0);
    tu_close_to(h, r.h, t, WHAT("%s vs reference", what));
    free(t);
    ref_free(&r);
}

static void t_cpu_forward(void **s) {
    (void)s;
    each_cpu_case("swiglu", 100, cpu_forward_case);
}

static void cpu_backward_case(sgt_dtype dt, const sw_case *k, const sw_inputs *in, sgt_tensor *m, const char *what) {
    const bool masked = m != NULL;
    sgt_tensor *dg, *du, *dm = (sgt_tensor *)1;
    sgt_swiglu_bwd(C, in->g, in->u, m, in->dh, k->bs, &dg, &du, &dm);
    tu_check_like(dg, dt, in->g, what);
    tu_check_like(du, dt, in->g, what);
    if (!masked && dm) fail_msg("%s: dm is not NULL without a mask", what);
    if (masked) tu_check_like(dm, dt, in->m, what);

    /* composed, as autograd differentiates silu(g) * u * mexp: da = dh mexp is the
     * gradient of silu(g) * u, da * u that of silu(g), da * silu(g) that of u */
    sgt_tensor *sl = sgt_silu(C, in->g), *mexp = masked ? expand_mask(C, in->m, in->g, k->bs) : NULL;
    sgt_tensor *da = masked ? sgt_mul(C, in->dh, mexp) : in->dh;
    tu_same_as(dg, sgt_unary_bwd(C, SGT_OP_SILU, 0, in->g, sl, sgt_mul(C, da, in->u)), WHAT("%s dg vs composed", what));
    tu_same_as(du, sgt_mul(C, da, sl), WHAT("%s du vs composed", what));

    sw_ref r = reference(in->g, in->u, m, in->dh, k->bs);
    const int64_t n = sgt_numel(dg);
    /* dg: sgt_expf and ~7 roundings over terms bounded by the scale (see reference) */
    double *t = tols(r.sdg, r.dg, n, dt == SGT_F32 ? 2e-6 : 2e-14, 0);
    tu_close_to(dg, r.dg, t, WHAT("%s dg vs reference", what));
    free(t);
    t = tols(r.sdu, r.du, n, dt == SGT_F32 ? 1e-6 : 1e-14, 0);
    tu_close_to(du, r.du, t, WHAT("%s du vs reference", what));
    free(t);
    if (masked) {
        const int64_t nm = sgt_numel(dm);
        /* against the composed sum of the same terms dh * (silu(g) u) (reduce.c adds
         * them in order in f64, the kernel in 8 f64 lanes): f64 sums of at most bs
         * terms differ by <= bs 2^-53 sum|t|; then one rounding into dt, which may fall
         * either side: one ulp of dt */
        sgt_tensor *dmc = sgt_sum(C, sgt_reshape(C, sgt_mul(C, in->dh, sgt_mul(C, sl, in->u)), SGT_SHAPE(nm, k->bs)), 1,
                                  false);
        double *cv = tu_vals(dmc);
        t = tols(r.sdm, cv, nm, (double)(k->bs + 1) * DBL_EPSILON, dt == SGT_F32 ? FLT_EPSILON : DBL_EPSILON);
        tu_close_to(dm, cv, t, WHAT("%s dm vs composed", what));
        free(t), free(cv);
        /* against the reference: each term's own error (as for du) times the sum of
         * |terms|, plus the final rounding */
        t = tols(r.sdm, r.dm, nm, dt == SGT_F32 ? 1e-6 : 1e-14, dt == SGT_F32 ? FLT_EPSILON : DBL_EPSILON);
        tu_close_to(dm, r.dm, t, WHAT("%s dm vs reference", what));
        free(t);
    }
    ref_free(&r);
}

static void t_cpu_backward(void **s) {
    (void)s;
    each_cpu_case("swiglu_bwd", 200, cpu_backward_case);
}

/* bf16 on the CPU goes through the dispatch point's promotion: the f32 kernel on the widened
 * values, each output rounded once into bf16 */
static void t_cpu_bf16_promoted(void **s) {
    (void)s;
    for (int ki = 0; ki < NCPU; ki++) {
        sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
        const sw_case *k = &cpu_cases[ki];
        sw_inputs in = inputs(SGT_BF16, k, 300 + 10 * (uint64_t)ki);
        sgt_tensor *g = sgt_cast(C, in.g, SGT_F32), *u = sgt_cast(C, in.u, SGT_F32), *m = sgt_cast(C, in.m, SGT_F32),
                   *dh = sgt_cast(C, in.dh, SGT_F32);
        const char *what = WHAT("swiglu bf16 %s", case_str(k));
        tu_same_as(sgt_swiglu(C, in.g, in.u, in.m, k->bs), sgt_cast(C, sgt_swiglu(C, g, u, m, k->bs), SGT_BF16), what);
        sgt_tensor *b[3], *f[3];
        sgt_swiglu_bwd(C, in.g, in.u, in.m, in.dh, k->bs, &b[0], &b[1], &b[2]);
        sgt_swiglu_bwd(C, g, u, m, dh, k->bs, &f[0], &f[1], &f[2]);
        for (int i = 0; i < 3; i++) tu_same_as(b[i], sgt_cast(C, f[i], SGT_BF16), WHAT("swiglu_bwd bf16 %s output %d", case_str(k), i));
        sgt_arena_rewind(cpu_arena, mk);
    }
}

/* ================================================================================================
 * CUDA against the CPU
 * ============================================================================================= */

/* the tolerance of a device result against the CPU's, from the reference's scales:
 *   f32: the devices' exp differ by a few ulp (CUDA's expf vs sgt_expf, each <= 2 ulp), which
 *     reaches silu and sigmoid through 1 + e damped by e / (1 + e) <= 1: with the roundings that
 *     follow, 2e-6 of the scale (1e-5 for dm: its terms' errors add up over the block, bounded
 *     by 2e-6 of the sum of |terms|, and the f64 sums differ in order by far less);
 *   f64: libm's last bit: 1e-13 of the scale;
 *   bf16: the same f32 math (2e-6 of the scale, as for f32) before one rounding into bf16: two
 *     f32 values that close round to bf16 values at most one bf16 ulp apart (2^-7 of the value:
 *     bf16 keeps 8 significant bits) */
static double *dev_tols(sgt_dtype dt, const double *scale, const double *cpu, int64_t n, bool sum) {
    switch (dt) {
    case SGT_F32: return tols(scale, cpu, n, sum ? 1e-5 : 2e-6, 0);
    case SGT_F64: return tols(scale, cpu, n, 1e-13, 0);
    default: return tols(scale, cpu, n, sum ? 1e-5 : 2e-6, 1.0 / 128);
    }
}

static void compare_dev(const sgt_tensor *gout, const sgt_tensor *cout, const double *scale, bool sum, const char *what) {
    tu_check_like(gout, cout->dtype, cout, what);
    if (gout->device != DEV) fail_msg("%s: the result is on %s", what, sgt_device_name(gout->device));
    const int64_t n = sgt_numel(cout);
    double *cv = tu_vals(cout);
    double *t = dev_tols(cout->dtype, scale, cv, n, sum);
    tu_close_to(gout, cv, t, what);
    free(t), free(cv);
}

static void parity_case(sgt_dtype dt, const sw_case *k, uint64_t stream) {
    const marks mcg = mark_both();
    sw_inputs in = inputs(dt, k, stream);
    sgt_tensor *g = sgt_to_device(G, in.g, DEV), *u = sgt_to_device(G, in.u, DEV), *m = sgt_to_device(G, in.m, DEV),
               *dh = sgt_to_device(G, in.dh, DEV);
    for (int masked = 0; masked < 2; masked++) {
        char what[256];
        snprintf(what, sizeof what, "%s %s %s", sgt_dtype_name(dt), case_str(k), masked ? "masked" : "unmasked");
        sw_ref r = reference(in.g, in.u, masked ? in.m : NULL, in.dh, k->bs);
        sgt_tensor *hg = sgt_swiglu(G, g, u, masked ? m : NULL, k->bs);
        sgt_tensor *hc = sgt_swiglu(C, in.g, in.u, masked ? in.m : NULL, k->bs);
        compare_dev(hg, hc, r.sh, false, WHAT("cuda swiglu %s", what));
        sgt_tensor *gg[3] = {0}, *cc[3] = {0};
        sgt_swiglu_bwd(G, g, u, masked ? m : NULL, dh, k->bs, &gg[0], &gg[1], &gg[2]);
        sgt_swiglu_bwd(C, in.g, in.u, masked ? in.m : NULL, in.dh, k->bs, &cc[0], &cc[1], &cc[2]);
        compare_dev(gg[0], cc[0], r.sdg, false, WHAT("cuda swiglu_bwd dg %s", what));
        compare_dev(gg[1], cc[1], r.sdu, false, WHAT("cuda swiglu_bwd du %s", what));
        if (masked) compare_dev(gg[2], cc[2], r.sdm, true, WHAT("cuda swiglu_bwd dm %s", what));
        else if (gg[2]) fail_msg("cuda swiglu_bwd %s: dm without a mask", what);
        ref_free(&r);
    }
    rewind_both(mcg);
}

static void t_cuda_parity(void **s) {
    (void)s;
    NEED_GPU();
    const sgt_dtype dts[3] = {SGT_F32, SGT_F64, SGT_BF16};
    for (int ti = 0; ti < 3; ti++) {
        for (int ki = 0; ki < NCPU; ki++) parity_case(dts[ti], &cpu_cases[ki], 400 + 10 * (uint64_t)ki);
        for (int ki = 0; ki < NGPU; ki++) parity_case(dts[ti], &gpu_cases[ki], 500 + 10 * (uint64_t)ki);
    }
}

/* ================================================================================================
 * bad input
 * ============================================================================================= */

static void bad_inputs(sgt_ctx *c, sgt_device dev) {
    sgt_arena_mark mk = sgt_arena_get_mark(c->arena);
    sgt_tensor *g = sgt_to_device(c, td_rand(SGT_F32, SGT_SHAPE(7, 21), 600, -1, 1), dev);
    sgt_tensor *u = sgt_to_device(c, td_rand(SGT_F32, SGT_SHAPE(7, 21), 601, -1, 1), dev);
    sgt_tensor *wide = sgt_to_device(c, td_rand(SGT_F32, SGT_SHAPE(7, 8), 602, 0, 1), dev); /* 7 blocks of 3, not 8 */
    sgt_tensor *tall = sgt_to_device(c, td_rand(SGT_F32, SGT_SHAPE(6, 7), 603, 0, 1), dev); /* 6 rows, not 7 */
    sgt_tensor *u64 = sgt_to_device(c, td_rand(SGT_F64, SGT_SHAPE(7, 21), 604, -1, 1), dev);
    sgt_tensor *dg, *du, *dm;
    EXPECT_SGT_ERROR(sgt_swiglu(c, g, u, wide, 3), "swiglu: mask [7,8] f32 does not hold one value per block of 3");
    EXPECT_SGT_ERROR(sgt_swiglu(c, g, u, tall, 3), "does not hold one value per block");
    EXPECT_SGT_ERROR(sgt_swiglu(c, g, u, wide, 4), "does not hold one value per block of 4"); /* 4 does not divide 21 */
    EXPECT_SGT_ERROR(sgt_swiglu_bwd(c, g, u, wide, g, 3, &dg, &du, &dm), "swiglu_bwd: mask");
    EXPECT_SGT_ERROR(sgt_swiglu(c, g, u64, NULL, 0), "dtypes differ");
    EXPECT_SGT_ERROR(sgt_swiglu(c, g, wide, NULL, 0), "differ in shape");
    sgt_arena_rewind(c->arena, mk);
}

static void t_bad_inputs(void **s) {
    (void)s;
    bad_inputs(C, SGT_CPU);
    if (have_gpu) bad_inputs(G, DEV);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_cpu_forward),  cmocka_unit_test(t_cpu_backward), cmocka_unit_test(t_cpu_bf16_promoted),
        cmocka_unit_test(t_cuda_parity),  cmocka_unit_test(t_bad_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
