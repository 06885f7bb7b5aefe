/* test_loss_norm.c: cross-entropy over a padded vocabulary (sgt_cross_entropy_padded and the
 * `valid` argument of sgt_cross_entropy_bwd), cross-entropy and RMSNorm with bf16 operands.
 *
 * CPU: cross-entropy with valid < V against a naive reference over the first `valid` columns in
 * double (f32 and f64), with the padding columns holding values that would dominate the softmax
 * (and NaN in one row) if a kernel read them; the padding columns of dlogits must be exactly 0;
 * a target >= valid is rejected by name. bf16 logits (the dispatch point's promotion) against f32
 * logits holding the same (bf16-representable) values. RMSNorm into bf16 (and from bf16) against
 * the f32 op rounded once.
 *
 * CUDA (skips without a device; SGT_CUDA_TEST_ON_CPU=1 lets the CPU stand in for it, a check of
 * the test's own logic): cross-entropy with valid < V in f32, f64 and bf16 (including rows with
 * NaN, +inf and all -inf among the valid columns), RMSNorm f32 -> bf16, bf16 -> bf16 and
 * bf16 -> f32, and RMSNorm's backward with a bf16 dy (f32 and bf16 x), against the CPU on the same
 * inputs. Every tolerance says why where it is used. The seed (TEST_SEED) is in every failure
 * message. */
#include <float.h>

#include "../../tensor/bf16.h"
#include "../common/test_device.h"

TD_GROUP("test_loss_norm", "loss-norm-cpu", 64u << 20, "loss-norm-dev", 64u << 20)

/* ---- host values, inputs and comparisons (the rest: tests/common/test_util.h, test_device.h) ---- */

static sgt_dtype stat_of(sgt_dtype t) { return t == SGT_BF16 ? SGT_F32 : t; }

/* dlogits [N, V]: exactly 0 (either sign) in the padding columns and on ignored rows */
static void zeros_outside(const sgt_tensor *dx, const int32_t *tg, int32_t ignore, int64_t valid, const char *what) {
    const int64_t N = dx->shape[0], V = dx->shape[1];
    double *v = tu_vals(dx);
    for (int64_t r = 0; r < N; r++)
        for (int64_t j = 0; j < V; j++)
            if ((j >= valid || tg[r] == ignore) && v[r * V + j] != 0.0) {
                const double x = v[r * V + j];
                free(v);
                fail_msg("%s: dlogits[%lld, %lld] is %.9g, not 0 (%s; seed %u)", what, (long long)r, (long long)j, x,
                         j >= valid ? "a padding column" : "an ignored row", TEST_SEED);
            }
    free(v);
}

/* ================================================================================================
 * cross-entropy over a padded vocabulary, CPU
 * ============================================================================================= */

typedef struct {
    int64_t N, V, valid;
} ce_case;

static const ce_case ce_cpu_cases[] = {
    {7, 13, 9}, {1, 5, 1}, {5, 64, 50}, {2, 8, 8}, /* no padding */
    {41, 1001, 1000},                              /* over the OpenMP threshold */
    {3, 4200, 4099},                               /* over the CPU's 4096-column exp blocks */
};
#define NCE_CPU (int)(sizeof ce_cpu_cases / sizeof *ce_cpu_cases)

/* logits [N, V]: the valid columns uniform in [-4, 4) (the last row shifted by +1000, which needs
 * the max shift), the padding columns 50 + [0, 1) (they would dominate the softmax) and NaN in
 * row 0 (any read of them would show) */
static double *ce_logits(const ce_case *k, uint64_t stream) {
    double *v = tu_dbuf(k->N * k->V);
    for (int64_t r = 0; r < k->N; r++)
        for (int64_t j = 0; j < k->V; j++) {
            const double u = tu_urand((uint64_t)(r * k->V + j), stream);
            double x = j < k->valid ? -4 + 8 * u : r == 0 ? NAN : 50 + u;
            if (j < k->valid && r == k->N - 1 && k->N > 1) x += 1000;
            v[r * k->V + j] = x;
        }
    return v;
}

/* targets in [0, valid); rows 1 and N - 2 get `ignore` when there is one */
static int32_t *ce_targets(const ce_case *k, int32_t ignore, uint64_t stream) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)(k->N ? k->N : 1));
    for (int64_t r = 0; r < k->N; r++) t[r] = (int32_t)(tu_urand((uint64_t)r, stream) * (double)k->valid);
    if (k->N > 2 && ignore != SGT_NO_IGNORE) t[1] = t[k->N - 2] = ignore;
    return t;
}

static void t_ce_padded_cpu(void **s) {
    (void)s;
    const sgt_dtype dts[2] = {SGT_F32, SGT_F64};
    const int32_t ignores[2] = {SGT_NO_IGNORE, -1};
    for (int ti = 0; ti < 2; ti++)
        for (int ki = 0; ki < NCE_CPU; ki++)
            for (int ig = 0; ig < 2; ig++) {
                sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
                const sgt_dtype dt = dts[ti];
                const ce_case *k = &ce_cpu_cases[ki];
                const int64_t N = k->N, V = k->V, valid = k->valid;
                const int32_t ignore = ignores[ig];
                const double eps = dt == SGT_F32 ? FLT_EPSILON : DBL_EPSILON;
                char what[200];
                snprintf(what, sizeof what, "cross_entropy %s [%lld,%lld] valid %lld ignore %d", sgt_dtype_name(dt),
                         (long long)N, (long long)V, (long long)valid, ignore);
                double *hv = ce_logits(k, 10 + (uint64_t)ki);
                int32_t *tg = ce_targets(k, ignore, 20 + (uint64_t)ki);
                sgt_tensor *logits = td_make(dt, SGT_SHAPE(N, V), hv), *targets = sgt_from_i32(C, SGT_SHAPE(N), tg);
                double *hx = tu_vals(logits); /* as rounded to dt */
                double *lse = tu_dbuf(N), total = 0;
                int64_t cnt = 0;
                for (int64_t r = 0; r < N; r++) {
                    lse[r] = tu_logsumexp(hx + r * V, valid);
                    if (tg[r] != ignore) total += lse[r] - hx[r * V + tg[r]], cnt++;
                }
                double want_loss = total / (double)cnt;
                sgt_tensor *lse_t = NULL;
                sgt_tensor *loss = sgt_cross_entropy_padded(C, logits, targets, ignore, valid, &lse_t);
                tu_check_meta(loss, dt, 0, NULL, what);
                tu_check_meta(lse_t, dt, 1, &N, what);
                /* the lse is stored in dt: its error is about one ulp of |lse| (~ulp(1000) on the
                 * shifted row), from exp's last bits and the sum's rounding: 2 eps (|lse| + 1) */
                double *tol_lse = tu_dbuf(N);
                for (int64_t r = 0; r < N; r++) tol_lse[r] = 2 * eps * (fabs(lse[r]) + 1);
                tu_close_to(lse_t, lse, tol_lse, what);
                /* the mean of the rows' l - x[t]: each off by about the lse's error, then a few
                 * roundings: 1e-6 relative in f32 (a few 2^-24), 1e-12 in f64, with room for the
                 * +1000 row's ulp(1000) against a mean of order 1 */
                double tl = (dt == SGT_F32 ? 1e-6 : 1e-12) * fabs(want_loss) + 2 * eps * 1000 / (double)cnt;
                tu_close_to(loss, &want_loss, &tl, what);

                /* backward from the reference lse rounded to dt: dx = dloss / cnt (softmax - onehot)
                 * over the valid columns, 0 elsewhere and on ignored rows */
                const double dloss = 0.7;
                sgt_tensor *lse_ref = sgt_from_f64(C, dt, SGT_SHAPE(N), lse);
                double *hl = tu_vals(lse_ref), *want_dx = tu_dbuf(N * V), *tol_dx = tu_dbuf(N * V);
                for (int64_t r = 0; r < N; r++)
                    for (int64_t j = 0; j < valid; j++) {
                        if (tg[r] == ignore) continue;
                        const double p = exp(hx[r * V + j] - lse[r]);
                        want_dx[r * V + j] = dloss / (double)cnt * (p - (j == tg[r]));
                        /* exp(x - lse) with lse rounded to dt (relative error |lse - fl(lse)| in
                         * p) and x - lse rounded (eps |x - lse|), exp's own few ulp, then the
                         * scaling and the subtraction at the target (2 eps of the result) */
                        tol_dx[r * V + j] = dloss / (double)cnt *
                                            (fabs(p) * (fabs(hl[r] - lse[r]) + eps * (fabs(hx[r * V + j] - lse[r]) + 4)) +
                                             2 * eps * fabs(p - (j == tg[r])));
                    }
                sgt_tensor *dx = sgt_cross_entropy_bwd(C, logits, targets, lse_ref, sgt_scalar(C, dt, dloss), ignore, valid);
                tu_check_meta(dx, dt, SGT_SHAPE(N, V), what);
                zeros_outside(dx, tg, ignore, valid, WHAT("%s bwd", what));
                tu_close_to(dx, want_dx, tol_dx, WHAT("%s bwd", what));
                free(hv), free(tg), free(hx), free(lse), free(tol_lse), free(hl), free(want_dx), free(tol_dx);
                sgt_arena_rewind(cpu_arena, mk);
            }
}

/* a target in the padding (>= valid) is an error naming the valid count, forward and backward;
 * so is a `valid` outside 1..V */
static void ce_rejects(sgt_ctx *c) {
    sgt_arena_mark mk = sgt_arena_get_mark(c->arena);
    sgt_tensor *logits = sgt_to_device(c, td_rand(SGT_F32, SGT_SHAPE(3, 13), 40, -1, 1), c->device);
    sgt_tensor *pad = sgt_to_device(c, sgt_from_i32(C, SGT_SHAPE(3), (int32_t[]){0, 9, 1}), c->device);
    sgt_tensor *last = sgt_to_device(c, sgt_from_i32(C, SGT_SHAPE(3), (int32_t[]){0, 1, 12}), c->device);
    sgt_tensor *ok = sgt_to_device(c, sgt_from_i32(C, SGT_SHAPE(3), (int32_t[]){0, 8, 1}), c->device);
    sgt_tensor *lse = sgt_to_device(c, sgt_zeros(C, SGT_F32, SGT_SHAPE(3)), c->device);
    sgt_tensor *dl = sgt_to_device(c, sgt_scalar(C, SGT_F32, 1), c->device);
    EXPECT_SGT_ERROR(sgt_cross_entropy_padded(c, logits, pad, SGT_NO_IGNORE, 9, NULL),
                     "cross_entropy: target 9 at row 1 is outside [0, 9) (9 valid columns of 13)");
    EXPECT_SGT_ERROR(sgt_cross_entropy_padded(c, logits, last, -1, 9, NULL), "target 12 at row 2 is outside [0, 9)");
    EXPECT_SGT_ERROR(sgt_cross_entropy_bwd(c, logits, pad, lse, dl, SGT_NO_IGNORE, 9),
                     "cross_entropy: target 9 at row 1 is outside [0, 9) (9 valid columns of 13)");
    EXPECT_SGT_ERROR(sgt_cross_entropy_padded(c, logits, ok, SGT_NO_IGNORE, 14, NULL), "14 valid columns of 13");
    EXPECT_SGT_ERROR(sgt_cross_entropy_padded(c, logits, ok, SGT_NO_IGNORE, 0, NULL), "no valid column");
    EXPECT_SGT_ERROR(sgt_cross_entropy_bwd(c, logits, ok, lse, dl, SGT_NO_IGNORE, -1), "valid columns of 13");
    /* the ignored target may be anything, and target valid - 1 is fine */
    sgt_cross_entropy_padded(c, logits, pad, 9, 9, NULL);
    sgt_cross_entropy_padded(c, logits, ok, SGT_NO_IGNORE, 9, NULL);
    sgt_arena_rewind(c->arena, mk);
}

static void t_ce_rejects(void **s) {
    (void)s;
    ce_rejects(C);
    if (have_gpu) ce_rejects(G);
}

/* bf16 logits on the CPU are widened to f32 (exactly) at the dispatch point and run the f32
 * kernel: the lse must equal the f32 op's on the same values bit for bit, and dlogits must be the
 * f32 op's rounded once into bf16. The loss too, but for the order in which the OpenMP reduction
 * adds the rows' terms in f64 (it may vary with the threads' finishing order): one f32 ulp. */
/* the backward of bf16 logits takes the f32 statistics (a function of its own: setjmp inside) */
static void bf16_lse_rejected(sgt_tensor *lb, sgt_tensor *targets, sgt_tensor *lse_f, sgt_tensor *dl, int32_t ignore,
                              int64_t valid) {
    sgt_tensor *lse_b = sgt_cast(C, lse_f, SGT_BF16);
    EXPECT_SGT_ERROR(sgt_cross_entropy_bwd(C, lb, targets, lse_b, dl, ignore, valid),
                     "lse and dloss must be f32 for bf16 logits");
}

static void t_ce_bf16_cpu(void **s) {
    (void)s;
    const ce_case cases[] = {{7, 13, 9}, {41, 1001, 1000}, {3, 4200, 4099}};
    for (int ki = 0; ki < 3; ki++)
        for (int ig = 0; ig < 2; ig++) {
            sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
            const ce_case *k = &cases[ki];
            const int32_t ignore = ig ? -1 : SGT_NO_IGNORE;
            char what[200];
            snprintf(what, sizeof what, "cross_entropy bf16 [%lld,%lld] valid %lld ignore %d", (long long)k->N,
                     (long long)k->V, (long long)k->valid, ignore);
            double *hv = ce_logits(k, 50 + (uint64_t)ki);
            int32_t *tg = ce_targets(k, ignore, 60 + (uint64_t)ki);
            sgt_tensor *lb = td_make(SGT_BF16, SGT_SHAPE(k->N, k->V), hv), *lf = sgt_cast(C, lb, SGT_F32);
            sgt_tensor *targets = sgt_from_i32(C, SGT_SHAPE(k->N), tg);
            sgt_tensor *lse_b, *lse_f;
            sgt_tensor *loss_b = sgt_cross_entropy_padded(C, lb, targets, ignore, k->valid, &lse_b);
            sgt_tensor *loss_f = sgt_cross_entropy_padded(C, lf, targets, ignore, k->valid, &lse_f);
            tu_check_meta(loss_b, SGT_F32, 0, NULL, what);
            tu_same_as(lse_b, lse_f, WHAT("%s lse", what));
            const double want = sgt_item(loss_f), tl = FLT_EPSILON * fabs(want);
            tu_close_to(loss_b, &want, &tl, WHAT("%s loss", what));
            sgt_tensor *dl = sgt_scalar(C, SGT_F32, 0.7);
            sgt_tensor *dx_b = sgt_cross_entropy_bwd(C, lb, targets, lse_f, dl, ignore, k->valid);
            sgt_tensor *dx_f = sgt_cross_entropy_bwd(C, lf, targets, lse_f, dl, ignore, k->valid);
            tu_same_as(dx_b, sgt_cast(C, dx_f, SGT_BF16), WHAT("%s dlogits", what));
            zeros_outside(dx_b, tg, ignore, k->valid, WHAT("%s dlogits", what));
            bf16_lse_rejected(lb, targets, lse_f, dl, ignore, k->valid);
            free(hv), free(tg);
            sgt_arena_rewind(cpu_arena, mk);
        }
}

/* ================================================================================================
 * cross-entropy, CUDA against the CPU
 * ============================================================================================= */

/* Tolerances of the device's cross-entropy against the CPU's, for the statistics (lse, loss: f32
 * for f32 and bf16 logits) and dlogits:
 *   f32 stats: exp from CUDA's libm instead of sgt_expf (a few ulp each), the sum in another order
 *     (the device's online rescaling in f64 included), then log and one rounding: 1e-5 relative
 *     (|lse| up to ~1000 on the shifted rows) plus 1e-6 absolute, as test_cuda's TRANS;
 *   f64 stats: libm's last bits: 1e-11 relative, 1e-13 absolute;
 *   dlogits: exp(x - lse) * scale differs by exp's few ulp (1e-5 relative), and the subtraction of
 *     scale at the target cancels, so 1e-6 of scale (= dloss / count) besides (1e-11 and 1e-13 for
 *     f64); bf16 dlogits are those f32 values rounded once: plus one bf16 ulp (2^-7 relative). */
static void ce_stats_tol(sgt_dtype dt, const double *cpu, int64_t n, double *tol) {
    for (int64_t i = 0; i < n; i++) tol[i] = dt == SGT_F64 ? 1e-11 * fabs(cpu[i]) + 1e-13 : 1e-5 * fabs(cpu[i]) + 1e-6;
}

static void ce_parity_case(sgt_dtype dt, const ce_case *k, int variant, uint64_t stream) {
    const marks mcg = mark_both();
    const int64_t N = k->N, V = k->V, valid = k->valid;
    /* variant 0: no ignore; 1: ignore -1 on some rows, and the special rows; 2: every row ignored */
    const int32_t ignore = variant ? -1 : SGT_NO_IGNORE;
    char what[200];
    snprintf(what, sizeof what, "cuda cross_entropy %s [%lld,%lld] valid %lld variant %d", sgt_dtype_name(dt), (long long)N,
             (long long)V, (long long)valid, variant);
    double *hv = ce_logits(k, stream);
    int32_t *tg = ce_targets(k, ignore, stream + 1);
    if (variant == 1 && N >= 8) {
        /* rows 2..5 (ignored): NaN, +inf, all -inf, and one -inf among finite values */
        for (int64_t r = 2; r <= 5; r++) tg[r] = -1;
        hv[2 * V + valid / 2] = NAN;
        hv[3 * V + valid - 1] = INFINITY;
        for (int64_t j = 0; j < valid; j++) hv[4 * V + j] = -INFINITY;
        hv[5 * V] = -INFINITY;
    }
    if (variant == 2)
        for (int64_t r = 0; r < N; r++) tg[r] = -1;
    sgt_tensor *lc = td_make(dt, SGT_SHAPE(N, V), hv), *tc = sgt_from_i32(C, SGT_SHAPE(N), tg);
    sgt_tensor *lg = sgt_to_device(G, lc, DEV), *tgd = sgt_to_device(G, tc, DEV);
    sgt_tensor *lse_c, *lse_g;
    sgt_tensor *loss_c = sgt_cross_entropy_padded(C, lc, tc, ignore, valid, &lse_c);
    sgt_tensor *loss_g = sgt_cross_entropy_padded(G, lg, tgd, ignore, valid, &lse_g);
    tu_check_meta(loss_g, stat_of(dt), 0, NULL, what);
    tu_check_meta(lse_g, stat_of(dt), 1, &N, what);
    double *cv = tu_vals(lse_c), *t = tu_dbuf(N);
    ce_stats_tol(dt, cv, N, t);
    tu_close_to(lse_g, cv, t, WHAT("%s lse", what));
    free(cv), free(t);
    cv = tu_vals(loss_c), t = tu_dbuf(1);
    ce_stats_tol(dt, cv, 1, t);
    tu_close_to(loss_g, cv, t, WHAT("%s loss", what));
    free(cv), free(t);

    /* backward on both from the CPU's lse */
    int64_t cnt = 0;
    for (int64_t r = 0; r < N; r++) cnt += tg[r] != ignore;
    const double dloss = 0.7, scale = cnt ? dloss / (double)cnt : 0;
    sgt_tensor *dlc = sgt_scalar(C, stat_of(dt), dloss);
    sgt_tensor *dx_c = sgt_cross_entropy_bwd(C, lc, tc, lse_c, dlc, ignore, valid);
    sgt_tensor *dx_g = sgt_cross_entropy_bwd(G, lg, tgd, sgt_to_device(G, lse_c, DEV), sgt_to_device(G, dlc, DEV), ignore, valid);
    tu_check_meta(dx_g, dt, SGT_SHAPE(N, V), what);
    zeros_outside(dx_g, tg, ignore, valid, WHAT("%s dlogits", what));
    cv = tu_vals(dx_c), t = tu_dbuf(N * V);
    for (int64_t i = 0; i < N * V; i++)
        t[i] = dt == SGT_F64 ? 1e-11 * fabs(cv[i]) + 1e-13 * scale
                             : (1e-5 + (dt == SGT_BF16 ? 1.0 / 128 : 0)) * fabs(cv[i]) + 1e-6 * scale;
    tu_close_to(dx_g, cv, t, WHAT("%s dlogits", what));
    free(cv), free(t), free(hv), free(tg);
    rewind_both(mcg);
}

static void t_ce_cuda(void **s) {
    (void)s;
    NEED_GPU();
    const sgt_dtype dts[3] = {SGT_F32, SGT_F64, SGT_BF16};
    /* a row per block with few threads busy (3 columns), more rows than the grid, a 50k vocabulary,
     * one valid column, and no padding */
    const ce_case cases[] = {{37, 129, 100}, {7, 50001, 50000}, {70001, 3, 2}, {9, 1000, 1}, {8, 64, 64}};
    for (int ti = 0; ti < 3; ti++)
        for (int ki = 0; ki < 5; ki++)
            for (int v = 0; v < 3; v++) ce_parity_case(dts[ti], &cases[ki], v, 700 + 10 * (uint64_t)ki);
}

/* ================================================================================================
 * RMSNorm with bf16
 * ============================================================================================= */

/* CPU: into bf16 = the f32 op rounded once; from bf16 = the f32 op on the widened values */
static void t_rmsnorm_bf16_cpu(void **s) {
    (void)s;
    sgt_arena_mark mk = sgt_arena_get_mark(cpu_arena);
    const int64_t Cn = 67;
    sgt_tensor *x = td_rand(SGT_F32, SGT_SHAPE(5, 3, Cn), 80, -2, 2), *w = td_rand(SGT_F32, SGT_SHAPE(Cn), 81, 0.5, 1.5);
    sgt_tensor *rs_f, *rs_b;
    sgt_tensor *yf = sgt_rmsnorm(C, x, w, 1e-5, &rs_f);
    sgt_tensor *yb = sgt_rmsnorm_to(C, x, w, 1e-5, SGT_BF16, &rs_b);
    tu_same_as(yb, sgt_cast(C, yf, SGT_BF16), "rmsnorm f32 -> bf16 y");
    tu_same_as(rs_b, rs_f, "rmsnorm f32 -> bf16 rstd");
    sgt_tensor *xb = sgt_cast(C, x, SGT_BF16), *wb = sgt_cast(C, w, SGT_BF16);
    sgt_tensor *xw = sgt_cast(C, xb, SGT_F32), *ww = sgt_cast(C, wb, SGT_F32);
    sgt_tensor *rs_w, *rs_bb;
    sgt_tensor *yw = sgt_rmsnorm(C, xw, ww, 1e-5, &rs_w);
    tu_same_as(sgt_rmsnorm(C, xb, wb, 1e-5, &rs_bb), sgt_cast(C, yw, SGT_BF16), "rmsnorm bf16 -> bf16 y");
    tu_same_as(rs_bb, rs_w, "rmsnorm bf16 rstd (f32)");
    /* backward with a bf16 dy of an f32 x: the f32 op on the widened dy */
    sgt_tensor *dy = td_rand(SGT_BF16, SGT_SHAPE(5, 3, Cn), 82, -1, 1);
    sgt_tensor *dx, *dw, *dx_w, *dw_w;
    sgt_rmsnorm_bwd(C, x, w, rs_f, dy, &dx, &dw);
    sgt_rmsnorm_bwd(C, x, w, rs_f, sgt_cast(C, dy, SGT_F32), &dx_w, &dw_w);
    tu_same_as(dx, dx_w, "rmsnorm_bwd bf16 dy: dx");
    tu_same_as(dw, dw_w, "rmsnorm_bwd bf16 dy: dw");
    sgt_arena_rewind(cpu_arena, mk);
}

/* Tolerances of the device's RMSNorm against the CPU's (as test_cuda's norms): the row statistics
 * and the column sums of dw add in another order in f64, then round into f32 (rstd may differ by
 * an ulp, and with it y), dx's two row sums likewise before a subtraction that may cancel:
 * 1e-5 relative and 1e-6 absolute on values of order 1 (x in [-2, 2), w in [0.5, 1.5), dy in
 * [-1, 1)); a bf16 result is such an f32 value rounded once: plus one bf16 ulp (2^-7 relative). */
static void norm_close(const sgt_tensor *g, const sgt_tensor *c, const char *what) {
    tu_check_meta(g, c->dtype, c->ndim, c->shape, what);
    const int64_t n = sgt_numel(c);
    double *cv = tu_vals(c), *t = tu_dbuf(n);
    for (int64_t i = 0; i < n; i++) t[i] = (1e-5 + (c->dtype == SGT_BF16 ? 1.0 / 128 : 0)) * fabs(cv[i]) + 1e-6;
    tu_close_to(g, cv, t, what);
    free(cv), free(t);
}

static void t_rmsnorm_cuda(void **s) {
    (void)s;
    NEED_GPU();
    /* [rows..., C]: a warp-sized row, a row shorter than a warp, more rows than the grid, long rows */
    const int64_t shapes[4][3] = {{5, 3, 129}, {3, 7, 5}, {2, 40000, 3}, {2, 3, 4096}};
    /* x dtype -> y dtype */
    const sgt_dtype pairs[3][2] = {{SGT_F32, SGT_BF16}, {SGT_BF16, SGT_BF16}, {SGT_BF16, SGT_F32}};
    for (int sh = 0; sh < 4; sh++)
        for (int p = 0; p < 3; p++) {
            const marks mcg = mark_both();
            const sgt_dtype xt = pairs[p][0], yt = pairs[p][1];
            const int64_t Cn = shapes[sh][2];
            char what[160];
            snprintf(what, sizeof what, "cuda rmsnorm %s -> %s [%lld,%lld,%lld]", sgt_dtype_name(xt), sgt_dtype_name(yt),
                     (long long)shapes[sh][0], (long long)shapes[sh][1], (long long)Cn);
            sgt_tensor *x = td_rand(xt, 3, shapes[sh], 900 + (uint64_t)sh, -2, 2), *w = td_rand(xt, SGT_SHAPE(Cn), 901, 0.5, 1.5);
            sgt_tensor *xg = sgt_to_device(G, x, DEV), *wg = sgt_to_device(G, w, DEV);
            sgt_tensor *rs_c, *rs_g;
            sgt_tensor *yc = sgt_rmsnorm_to(C, x, w, 1e-5, yt, &rs_c);
            sgt_tensor *yg = sgt_rmsnorm_to(G, xg, wg, 1e-5, yt, &rs_g);
            norm_close(yg, yc, WHAT("%s y", what));
            norm_close(rs_g, rs_c, WHAT("%s rstd", what));
            if (rs_g->dtype != SGT_F32) fail_msg("%s: rstd is %s, not f32", what, sgt_dtype_name(rs_g->dtype));
            /* backward with a bf16 dy (the gradient of a bf16 y), from the CPU's rstd */
            sgt_tensor *dy = td_rand(SGT_BF16, 3, shapes[sh], 903 + (uint64_t)sh, -1, 1);
            sgt_tensor *dxc, *dwc, *dxg, *dwg;
            sgt_rmsnorm_bwd(C, x, w, rs_c, dy, &dxc, &dwc);
            sgt_rmsnorm_bwd(G, xg, wg, sgt_to_device(G, rs_c, DEV), sgt_to_device(G, dy, DEV), &dxg, &dwg);
            norm_close(dxg, dxc, WHAT("%s bwd (bf16 dy) dx", what));
            norm_close(dwg, dwc, WHAT("%s bwd (bf16 dy) dw", what));
            rewind_both(mcg);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_ce_padded_cpu),    cmocka_unit_test(t_ce_rejects),   cmocka_unit_test(t_ce_bf16_cpu),
        cmocka_unit_test(t_ce_cuda),          cmocka_unit_test(t_rmsnorm_bf16_cpu), cmocka_unit_test(t_rmsnorm_cuda),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
