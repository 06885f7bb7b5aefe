/* test_attention.c: the fused attention (sgt_attention, sgt_attention_bwd), causal and not
 * (sgt_attention_ex, sgt_attention_bwd_ex: every check below runs in both modes).
 *
 *   1. CPU forward against the composed reference: matmul(q, k^T) * scale -> softmax_causal ->
 *      matmul(., v), in f64 and f32, and lse against a log-sum-exp of the composed scores.
 *   2. CPU backward against the textbook formulas evaluated on the host in double (the
 *      probabilities recomputed from the inputs, not from the kernel's lse), under both of the
 *      kernel's schedules (per head on one thread; key pass + query pass on several).
 *   3. CUDA against the CPU (the oracle), forward and backward, f32, f64 and bf16. Skips without a
 *      device; SGT_CUDA_TEST_ON_CPU=1 runs it with the CPU playing the GPU (a check of the harness).
 *   4. Bad inputs: clear errors.
 *
 * Shapes cover T = 1, 5, 67, 130 (tile edges at 32 and 64), D = 1, 8, 64, 80, Tq < Tk (a KV
 * cache: Tq = 1 with Tk = 37, Tq = 5 with Tk = 70), and each runs twice: on contiguous q, k, v,
 * and on the strided views of a fused [B, T, 3, H, D] QKV buffer that nn/modules.c hands over.
 * Comparisons are |got - want| <= rtol |want| + atol max|want|: outputs are sums of terms of both
 * signs, so an element can be far smaller than the terms that made it, and its error is relative
 * to those terms (bounded by the largest element), not to itself. The seed is in every failure. */
#include <unistd.h>

#include "../common/test_device.h"

typedef struct {
    int64_t B, H, Tq, Tk, D;
} shape_t;

static const shape_t SHAPES[] = {
    {1, 1, 1, 1, 8},     /* one query, one key */
    {1, 2, 5, 5, 1},     /* D = 1 */
    {2, 1, 67, 67, 64},  /* one past a 64-row tile */
    {1, 2, 130, 130, 80}, /* three query tiles, D not a power of two */
    {1, 1, 1, 37, 8},    /* decode: one query over a cache of 37 keys */
    {2, 2, 5, 70, 64},   /* prefill after a cache: Tk - Tq = 65 crosses a key tile */
    {2, 3, 67, 67, 8},   /* six heads: the per-head backward schedule on several threads */
    {1, 1, 64, 64, 16},  /* exactly one tile */
};
#define NSHAPES (int)(sizeof SHAPES / sizeof *SHAPES)

/* ---- helpers ---- */

static double maxabs(const double *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* host doubles of x in logical order (bf16 through an f32 cast on x's device: exact) */
static double *host_of(sgt_tensor *x) {
    if (x->dtype != SGT_BF16) return tu_host(x);
    return tu_host(sgt_cast(x->device == SGT_CPU ? C : G, x, SGT_F32));
}

/* |got - want| <= rtol |want| + atol_rel max|want| elementwise (see the top comment). The max is
 * floored at 0.1: a result that is 0 by cancellation (one key: p = 1, dS = 0) is still made of
 * terms of size ~1 (inputs in [-2, 2], dy in [-1, 1]), and rounds to a few ulp of those. */
static void assert_close(sgt_tensor *got, const double *want, double rtol, double atol_rel, const char *what) {
    const int64_t n = sgt_numel(got);
    const double m = maxabs(want, n);
    if (got->dtype == SGT_BF16) got = sgt_cast(got->device == SGT_CPU ? C : G, got, SGT_F32);
    tu_assert_close(got, want, rtol, atol_rel * (m > 0.1 ? m : 0.1), what);
}

/* q, k, v of one case. Contiguous: separate [B,H,Tq,D] and [B,H,Tk,D] tensors. Strided: views of
 * one fused [B, Tk, 3, H, D] buffer, as nn/modules.c makes them (q the last Tq positions of its
 * part when Tq < Tk). Values U[-2, 2), so the softmax is far from uniform. On device `dev_c` the
 * same values (made on the CPU with the seed) are copied over before the views are taken. */
typedef struct {
    sgt_tensor *q, *k, *v;
} qkv_t;

static qkv_t make_qkv(sgt_ctx *c, sgt_dtype t, shape_t s, bool strided, uint64_t stream) {
    const int64_t B = s.B, H = s.H, Tq = s.Tq, Tk = s.Tk, D = s.D;
    qkv_t r;
    /* the values: f32 random (cast to bf16 when asked: bf16 inputs are exact in every dtype) */
    const sgt_dtype mk = t == SGT_BF16 ? SGT_F32 : t;
    if (strided) {
        sgt_tensor *buf = tu_rand(C, mk, SGT_SHAPE(B, Tk, 3, H, D), stream, -2, 2);
        if (t == SGT_BF16) buf = sgt_cast(C, buf, SGT_BF16);
        if (c != C) buf = sgt_to_device(c, buf, c->device);
        sgt_tensor *heads = sgt_permute(c, buf, (int[]){2, 0, 3, 1, 4}); /* [3, B, H, Tk, D] */
        sgt_tensor *parts[3];
        sgt_split(c, heads, 0, 3, (int64_t[]){1, 1, 1}, parts);
        sgt_tensor *q = sgt_reshape(c, parts[0], SGT_SHAPE(B, H, Tk, D));
        r.q = sgt_narrow(c, q, 2, Tk - Tq, Tq);
        r.k = sgt_reshape(c, parts[1], SGT_SHAPE(B, H, Tk, D));
        r.v = sgt_reshape(c, parts[2], SGT_SHAPE(B, H, Tk, D));
    } else {
        sgt_tensor *x[3] = {tu_rand(C, mk, SGT_SHAPE(B, H, Tq, D), stream, -2, 2),
                            tu_rand(C, mk, SGT_SHAPE(B, H, Tk, D), stream + 1, -2, 2),
                            tu_rand(C, mk, SGT_SHAPE(B, H, Tk, D), stream + 2, -2, 2)};
        for (int i = 0; i < 3; i++) {
            if (t == SGT_BF16) x[i] = sgt_cast(C, x[i], SGT_BF16);
            if (c != C) x[i] = sgt_to_device(c, x[i], c->device);
        }
        r.q = x[0];
        r.k = x[1];
        r.v = x[2];
    }
    if (strided && D > 1 && H > 1 && Tq > 1) assert_true(r.q->stride[2] == 3 * H * D && r.k->stride[1] == D); /* views */
    return r;
}

/* the composed scores scale * q k^T [B, H, Tq, Tk] on the host, in double */
static double *composed_scores(sgt_tensor *q, sgt_tensor *k, double scale) {
    return tu_host(sgt_mul_scalar(C, sgt_matmul(C, q, k, false, true), scale));
}

/* log-sum-exp over the keys each query sees, from the scores, in double */
static double *lse_of(const double *S, shape_t s, bool causal) {
    const int64_t rows = s.B * s.H * s.Tq, off = s.Tk - s.Tq;
    double *l = malloc(sizeof(double) * (size_t)rows);
    for (int64_t r = 0; r < rows; r++) {
        const double *Sr = S + r * s.Tk;
        const int64_t valid = causal ? r % s.Tq + off + 1 : s.Tk;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < valid; j++) mx = Sr[j] > mx ? Sr[j] : mx;
        for (int64_t j = 0; j < valid; j++) sum += exp(Sr[j] - mx);
        l[r] = mx + log(sum);
    }
    return l;
}

/* ---- 1. CPU forward against the composed ops ---- */

static void check_forward_mode(sgt_dtype t, bool causal, double rtol, double atol_rel, double lse_tol) {
    for (int si = 0; si < NSHAPES; si++)
        for (int strided = 0; strided < 2; strided++) {
            const shape_t s = SHAPES[si];
            sgt_arena_mark mark = sgt_arena_get_mark(cpu_arena);
            qkv_t x = make_qkv(C, t, s, strided, 100 + (uint64_t)si * 8);
            const double scale = 1.0 / sqrt((double)s.D);
            sgt_tensor *lse;
            sgt_tensor *y = sgt_attention_ex(C, x.q, x.k, x.v, NULL, scale, causal, &lse);
            assert_true(y->dtype == t && lse->dtype == t && y->ndim == 4 && lse->ndim == 3);
            assert_true(y->shape[2] == s.Tq && y->shape[3] == s.D && lse->shape[2] == s.Tq);

            sgt_tensor *sc = sgt_mul_scalar(C, sgt_matmul(C, x.q, x.k, false, true), scale);
            sgt_tensor *att = causal ? sgt_softmax_causal(C, sc) : sgt_softmax(C, sc);
            double *want = tu_host(sgt_matmul(C, att, x.v, false, false));
            assert_close(y, want, rtol, atol_rel,
                         WHAT("forward %s y, shape %d (B%lld H%lld Tq%lld Tk%lld D%lld), %s, %s", sgt_dtype_name(t), si,
                              (long long)s.B, (long long)s.H, (long long)s.Tq, (long long)s.Tk, (long long)s.D,
                              strided ? "strided" : "contiguous", causal ? "causal" : "not causal"));
            double *S = composed_scores(x.q, x.k, scale);
            double *wl = lse_of(S, s, causal);
            tu_assert_close(lse, wl, lse_tol, lse_tol,
                            WHAT("forward %s lse, shape %d, %s, %s", sgt_dtype_name(t), si, strided ? "strided" : "contiguous",
                                 causal ? "causal" : "not causal"));
            free(want);
            free(S);
            free(wl);
            sgt_arena_rewind(cpu_arena, mark);
        }
}

static void check_forward_cpu(sgt_dtype t, double rtol, double atol_rel, double lse_tol) {
    check_forward_mode(t, true, rtol, atol_rel, lse_tol);
    check_forward_mode(t, false, rtol, atol_rel, lse_tol);
}

/* f64: both sides do the same sums in other orders, and exp/log of double: ~1e-15 apart; 1e-12
 * leaves room for T = 130 terms and nothing else. */
static void t_forward_cpu_f64(void **st) {
    (void)st;
    check_forward_cpu(SGT_F64, 1e-12, 1e-12, 1e-12);
}

/* f32: the kernel's online softmax (rescaled partial sums, the vectorised sgt_expf, GEMMs in
 * tiles) against softmax + two GEMMs: each result a few f32 ulps (6e-8) times the number of terms
 * summed along the way apart; 1e-5 relative (and of the largest element) covers T = 130. lse is an
 * f32 of magnitude ~1-5 against an exact double: 1e-5. */
static void t_forward_cpu_f32(void **st) {
    (void)st;
    check_forward_cpu(SGT_F32, 1e-5, 1e-5, 1e-5);
}

/* ---- 2. CPU backward against the formulas, in double on the host ---- */

typedef struct {
    double *dq, *dk, *dv;
} grads_t;

/* dq, dk, dv in [B,H,T,D] order from q, k, v, dy (all host doubles in logical order) */
static grads_t naive_bwd(const double *q, const double *k, const double *v, const double *dy, shape_t s, double scale,
                         bool causal) {
    const int64_t BH = s.B * s.H, Tq = s.Tq, Tk = s.Tk, D = s.D, off = Tk - Tq;
    grads_t g = {calloc((size_t)(BH * Tq * D), sizeof(double)), calloc((size_t)(BH * Tk * D), sizeof(double)),
                 calloc((size_t)(BH * Tk * D), sizeof(double))};
    double *p = malloc(sizeof(double) * (size_t)Tk), *dp = malloc(sizeof(double) * (size_t)Tk);
    for (int64_t bh = 0; bh < BH; bh++) {
        const double *qb = q + bh * Tq * D, *kb = k + bh * Tk * D, *vb = v + bh * Tk * D, *gb = dy + bh * Tq * D;
        double *dqb = g.dq + bh * Tq * D, *dkb = g.dk + bh * Tk * D, *dvb = g.dv + bh * Tk * D;
        for (int64_t i = 0; i < Tq; i++) {
            const int64_t n = causal ? i + off + 1 : Tk;
            double mx = -INFINITY, sum = 0, Di = 0;
            for (int64_t j = 0; j < n; j++) {
                double sc = 0;
                for (int64_t d = 0; d < D; d++) sc += qb[i * D + d] * kb[j * D + d];
                p[j] = scale * sc;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int64_t j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
            for (int64_t j = 0; j < n; j++) {
                p[j] /= sum;
                double t = 0;
                for (int64_t d = 0; d < D; d++) t += gb[i * D + d] * vb[j * D + d];
                dp[j] = t;
                Di += p[j] * t;
            }
            for (int64_t j = 0; j < n; j++) {
                const double ds = p[j] * (dp[j] - Di);
                for (int64_t d = 0; d < D; d++) {
                    dvb[j * D + d] += p[j] * gb[i * D + d];
                    dqb[i * D + d] += scale * ds * kb[j * D + d];
                    dkb[j * D + d] += scale * ds * qb[i * D + d];
                }
            }
        }
    }
    free(p);
    free(dp);
    return g;
}

static void grads_free(grads_t g) {
    free(g.dq);
    free(g.dk);
    free(g.dv);
}

/* dy: random, as a [B,H,Tq,D] view of [B,Tq,H,D] storage (the layout the gradient of y arrives in
 * when y's heads were merged by a free permute) */
static sgt_tensor *make_dy(sgt_ctx *c, sgt_dtype t, shape_t s, uint64_t stream) {
    sgt_tensor *g = tu_rand(C, t == SGT_BF16 ? SGT_F32 : t, SGT_SHAPE(s.B, s.Tq, s.H, s.D), stream, -1, 1);
    if (t == SGT_BF16) g = sgt_cast(C, g, SGT_BF16);
    if (c != C) g = sgt_to_device(c, g, c->device);
    return sgt_permute(c, g, (int[]){0, 2, 1, 3});
}

static void check_backward_mode(sgt_dtype t, bool causal, double rtol, double atol_rel) {
    const int saved = sgt_get_threads();
    /* 1 thread: the per-head schedule; 4 threads: the two-pass schedule for B H <= 2 and the
     * per-head one (on 4 threads at once) for B H = 6 */
    const int threads[2] = {1, 4};
    for (int ti = 0; ti < 2; ti++) {
        sgt_set_threads(threads[ti]);
        for (int si = 0; si < NSHAPES; si++)
            for (int strided = 0; strided < 2; strided++) {
                const shape_t s = SHAPES[si];
                sgt_arena_mark mark = sgt_arena_get_mark(cpu_arena);
                qkv_t x = make_qkv(C, t, s, strided, 300 + (uint64_t)si * 8);
                const double scale = 1.0 / sqrt((double)s.D);
                sgt_tensor *lse, *dq, *dk, *dv;
                sgt_tensor *y = sgt_attention_ex(C, x.q, x.k, x.v, NULL, scale, causal, &lse);
                sgt_tensor *dy = make_dy(C, t, s, 400 + (uint64_t)si);
                sgt_attention_bwd_ex(C, x.q, x.k, x.v, y, lse, dy, scale, causal, &dq, &dk, &dv);
                double *hq = tu_host(x.q), *hk = tu_host(x.k), *hv = tu_host(x.v), *hg = tu_host(dy);
                grads_t g = naive_bwd(hq, hk, hv, hg, s, scale, causal);
                const char *lay = causal ? (strided ? "strided" : "contiguous") : (strided ? "strided, not causal" : "contiguous, not causal");
                assert_close(dq, g.dq, rtol, atol_rel,
                             WHAT("backward %s dq, shape %d, %s, %d threads", sgt_dtype_name(t), si, lay, threads[ti]));
                assert_close(dk, g.dk, rtol, atol_rel,
                             WHAT("backward %s dk, shape %d, %s, %d threads", sgt_dtype_name(t), si, lay, threads[ti]));
                assert_close(dv, g.dv, rtol, atol_rel,
                             WHAT("backward %s dv, shape %d, %s, %d threads", sgt_dtype_name(t), si, lay, threads[ti]));
                grads_free(g);
                free(hq);
                free(hk);
                free(hv);
                free(hg);
                sgt_arena_rewind(cpu_arena, mark);
            }
    }
    sgt_set_threads(saved);
}

static void check_backward_cpu(sgt_dtype t, double rtol, double atol_rel) {
    check_backward_mode(t, true, rtol, atol_rel);
    check_backward_mode(t, false, rtol, atol_rel);
}

/* f64: the kernel's y and lse (1e-15 off) and other summation orders, through the cancellations
 * of dS (it sums to zero over a row): ~1e-14 seen; 1e-12 of each element and of the largest. */
static void t_backward_cpu_f64(void **st) {
    (void)st;
    check_backward_cpu(SGT_F64, 1e-12, 1e-12);
}

/* f32 against exact double: p = exp(s - lse) carries the f32 error of s and lse (~|s| 6e-8, s up
 * to ~10 here), dS = p (dp - Di) cancels (Di ~ dp), and dq, dk sum dS terms that cancel again:
 * seen up to 3e-6 relative on the large elements and 5e-7 of the largest; 3e-5 relative and 5e-6
 * of the largest element leave a factor of 10 for other seeds and shapes. */
static void t_backward_cpu_f32(void **st) {
    (void)st;
    check_backward_cpu(SGT_F32, 3e-5, 5e-6);
}

/* ---- 3. CUDA against the CPU ---- */

/* the tolerances of each dtype, GPU against CPU, for y and the gradients (rtol, atol of the
 * largest element) and for lse (both):
 *   f32: other summation orders (warp trees, online rescaling), CUDA's expf against sgt_expf
 *     (each a few ulp), the running sum l in f32 on the GPU (double on the CPU): ~1e-6 relative
 *     after 130 terms; the backward's cancellations (see t_backward_cpu_f32) make it ~1e-5 of the
 *     largest gradient.
 *   f64: the same in double: 1e-11.
 *   bf16: both compute in f32 from the same bf16 inputs and round once; their f32 values differ as
 *     f32's do (~1e-5 of the largest), which can move a rounding by one bf16 ulp (2^-8 to 2^-7 of
 *     the value, by where it lies in its binade): 2^-6 allows two. lse is f32 for bf16. */
typedef struct {
    double rtol, atol_rel, lse_tol;
} ptol;

static ptol parity_tol(sgt_dtype t, bool bwd) {
    if (t == SGT_F64) return (ptol){1e-11, 1e-11, 1e-11};
    if (t == SGT_F32) return bwd ? (ptol){1e-4, 2e-5, 1e-5} : (ptol){1e-5, 1e-5, 1e-5};
    return (ptol){1.0 / 64, bwd ? 2e-4 : 1e-4, 1e-5};
}

static void check_parity_mode(sgt_dtype t, bool causal) {
    for (int si = 0; si < NSHAPES; si++)
        for (int strided = 0; strided < 2; strided++) {
            const shape_t s = SHAPES[si];
            sgt_arena_mark mc = sgt_arena_get_mark(cpu_arena), mg = sgt_arena_get_mark(dev_arena);
            const uint64_t stream = 500 + (uint64_t)si * 8;
            qkv_t xc = make_qkv(C, t, s, strided, stream), xg = make_qkv(G, t, s, strided, stream);
            const double scale = 1.0 / sqrt((double)s.D);
            const char *lay = causal ? (strided ? "strided" : "contiguous") : (strided ? "strided, not causal" : "contiguous, not causal");
            sgt_tensor *lc, *lg;
            sgt_tensor *yc = sgt_attention_ex(C, xc.q, xc.k, xc.v, NULL, scale, causal, &lc);
            sgt_tensor *yg = sgt_attention_ex(G, xg.q, xg.k, xg.v, NULL, scale, causal, &lg);
            assert_true(yg->device == DEV && lg->dtype == lc->dtype && yg->dtype == t);
            ptol f = parity_tol(t, false);
            double *hy = host_of(yc), *hl = host_of(lc);
            assert_close(yg, hy, f.rtol, f.atol_rel, WHAT("parity %s y, shape %d, %s", sgt_dtype_name(t), si, lay));
            tu_assert_close(lg, hl, f.lse_tol, f.lse_tol, WHAT("parity %s lse, shape %d, %s", sgt_dtype_name(t), si, lay));

            /* the backward on both from the same y and lse (the CPU's), so it is compared alone;
             * on the device y is a [B,H,Tq,D] view of [B,Tq,H,D] storage, as the forward makes it */
            sgt_tensor *dyc = make_dy(C, t, s, stream + 7), *dyg = make_dy(G, t, s, stream + 7);
            sgt_tensor *yg2 = sgt_permute(
                G, sgt_to_device(G, sgt_contiguous(C, sgt_permute(C, yc, (int[]){0, 2, 1, 3})), G->device),
                (int[]){0, 2, 1, 3});
            sgt_tensor *lg2 = sgt_to_device(G, lc, G->device);
            sgt_tensor *dqc, *dkc, *dvc, *dqg, *dkg, *dvg;
            sgt_attention_bwd_ex(C, xc.q, xc.k, xc.v, yc, lc, dyc, scale, causal, &dqc, &dkc, &dvc);
            sgt_attention_bwd_ex(G, xg.q, xg.k, xg.v, yg2, lg2, dyg, scale, causal, &dqg, &dkg, &dvg);
            f = parity_tol(t, true);
            sgt_tensor *gc[3] = {dqc, dkc, dvc}, *gg[3] = {dqg, dkg, dvg};
            const char *nm[3] = {"dq", "dk", "dv"};
            for (int i = 0; i < 3; i++) {
                double *h = host_of(gc[i]);
                assert_close(gg[i], h, f.rtol, f.atol_rel,
                             WHAT("parity %s %s, shape %d, %s", sgt_dtype_name(t), nm[i], si, lay));
                free(h);
            }
            free(hy);
            free(hl);
            sgt_arena_rewind(cpu_arena, mc);
            sgt_arena_rewind(dev_arena, mg);
        }
}

static void check_parity(sgt_dtype t) {
    check_parity_mode(t, true);
    check_parity_mode(t, false);
}

static void t_cuda_f32(void **st) {
    (void)st;
    NEED_GPU();
    check_parity(SGT_F32);
}

static void t_cuda_f64(void **st) {
    (void)st;
    NEED_GPU();
    check_parity(SGT_F64);
}

static void t_cuda_bf16(void **st) {
    (void)st;
    NEED_GPU();
    check_parity(SGT_BF16);
}

/* a longer sequence and the largest head dim: several query and key tiles per (b, h) on the
 * device, both dtypes of its math */
static void t_cuda_long(void **st) {
    (void)st;
    NEED_GPU();
    const shape_t s = {1, 2, 300, 333, 128};
    const sgt_dtype ts[2] = {SGT_F32, SGT_BF16};
    for (int ti = 0; ti < 2; ti++) {
        const sgt_dtype t = ts[ti];
        sgt_arena_mark mc = sgt_arena_get_mark(cpu_arena), mg = sgt_arena_get_mark(dev_arena);
        qkv_t xc = make_qkv(C, t, s, true, 900), xg = make_qkv(G, t, s, true, 900);
        const double scale = 1.0 / sqrt((double)s.D);
        sgt_tensor *lc, *lg, *dqc, *dkc, *dvc, *dqg, *dkg, *dvg;
        sgt_tensor *yc = sgt_attention(C, xc.q, xc.k, xc.v, scale, &lc);
        sgt_tensor *yg = sgt_attention(G, xg.q, xg.k, xg.v, scale, &lg);
        ptol f = parity_tol(t, false);
        double *hy = host_of(yc), *hl = host_of(lc);
        assert_close(yg, hy, f.rtol, f.atol_rel, WHAT("long %s y", sgt_dtype_name(t)));
        tu_assert_close(lg, hl, f.lse_tol, f.lse_tol, WHAT("long %s lse", sgt_dtype_name(t)));
        /* here each device feeds its own forward's y and lse into its backward, as training
         * does (f32: those differ by ~1e-6, well inside the backward's tolerance); bf16 takes the
         * CPU's, since a y rounded one bf16 ulp apart moves Di by ~2^-8 |dy . y|, more than the
         * bf16 tolerance allows for an output that cancels */
        sgt_tensor *dyc = make_dy(C, t, s, 901), *dyg = make_dy(G, t, s, 901);
        if (t == SGT_BF16) {
            yg = sgt_permute(G, sgt_to_device(G, sgt_contiguous(C, sgt_permute(C, yc, (int[]){0, 2, 1, 3})), G->device),
                             (int[]){0, 2, 1, 3});
            lg = sgt_to_device(G, lc, G->device);
        }
        sgt_attention_bwd(C, xc.q, xc.k, xc.v, yc, lc, dyc, scale, &dqc, &dkc, &dvc);
        sgt_attention_bwd(G, xg.q, xg.k, xg.v, yg, lg, dyg, scale, &dqg, &dkg, &dvg);
        f = parity_tol(t, true);
        sgt_tensor *gc[3] = {dqc, dkc, dvc}, *gg[3] = {dqg, dkg, dvg};
        const char *nm[3] = {"dq", "dk", "dv"};
        for (int i = 0; i < 3; i++) {
            double *h = host_of(gc[i]);
            assert_close(gg[i], h, f.rtol, f.atol_rel, WHAT("long %s %s", sgt_dtype_name(t), nm[i]));
            free(h);
        }
        free(hy);
        free(hl);
        sgt_arena_rewind(cpu_arena, mc);
        sgt_arena_rewind(dev_arena, mg);
    }
}

/* sgt_attention_len (replayable decode steps): with a cache of Tk slots of which only len hold
 * keys, the result equals plain attention over the first len keys, and the slots past len are
 * never read: they hold NaN here, which would poison any row that touched them. Each case is
 * Tq query rows at positions len-Tq .. len-1 (decode: Tq = 1). */
static void check_len(sgt_ctx *c, sgt_dtype t, const char *where) {
    const int64_t B = 1, H = 2, Tk = 40, D = 16;
    const int64_t lens[3] = {1, 23, 40}, tqs[3] = {1, 1, 3};
    for (int ci = 0; ci < 3; ci++) {
        const int64_t len = lens[ci], Tq = tqs[ci];
        const sgt_dtype mk = t == SGT_BF16 ? SGT_F32 : t;
        sgt_tensor *q = tu_rand(C, mk, SGT_SHAPE(B, H, Tq, D), 950, -2, 2);
        sgt_tensor *k = tu_rand(C, mk, SGT_SHAPE(B, H, Tk, D), 951, -2, 2);
        sgt_tensor *v = tu_rand(C, mk, SGT_SHAPE(B, H, Tk, D), 952, -2, 2);
        if (len < Tk) { /* poison the unused slots */
            sgt_fill(C, sgt_narrow(C, k, 2, len, Tk - len), NAN);
            sgt_fill(C, sgt_narrow(C, v, 2, len, Tk - len), NAN);
        }
        if (t == SGT_BF16) q = sgt_cast(C, q, t), k = sgt_cast(C, k, t), v = sgt_cast(C, v, t);
        /* the reference: the CPU's plain attention over the first len keys */
        const double scale = 0.25;
        sgt_tensor *want = sgt_attention(C, q, sgt_narrow(C, k, 2, 0, len), sgt_narrow(C, v, 2, 0, len), scale, NULL);
        double *hw = host_of(want);
        if (c != C) q = sgt_to_device(c, q, c->device), k = sgt_to_device(c, k, c->device), v = sgt_to_device(c, v, c->device);
        const int32_t l32 = (int32_t)len;
        sgt_tensor *lt = sgt_from_i32(c, SGT_SHAPE(1), &l32);
        sgt_tensor *got = sgt_attention_len(c, q, k, v, lt, scale, NULL);
        /* the same kernel over fewer keys (CPU), or the device's against the CPU's: parity_tol */
        const ptol f = parity_tol(t, false);
        assert_close(got, hw, c == C ? 1e-12 : f.rtol, c == C ? 1e-12 : f.atol_rel,
                     WHAT("%s attention_len %s len %lld Tq %lld", where, sgt_dtype_name(t), (long long)len, (long long)Tq));
        free(hw);
    }
    if (c == C) { /* a count that leaves no room for the queries, or exceeds the cache */
        const int32_t bad[2] = {0, 41};
        for (int i = 0; i < 2; i++) {
            sgt_tensor *q = tu_rand(C, t, SGT_SHAPE(1, 1, 1, 4), 960, -1, 1), *k = tu_rand(C, t, SGT_SHAPE(1, 1, 40, 4), 961, -1, 1);
            EXPECT_SGT_ERROR(sgt_attention_len(C, q, k, k, sgt_from_i32(C, SGT_SHAPE(1), &bad[i]), 1.0, NULL),
                             "key count");
        }
    }
}

static void t_len_cpu(void **st) {
    (void)st;
    sgt_arena_mark m = sgt_arena_get_mark(cpu_arena);
    check_len(C, SGT_F64, "cpu");
    check_len(C, SGT_F32, "cpu");
    sgt_arena_rewind(cpu_arena, m);
}

static void t_len_cuda(void **st) {
    (void)st;
    NEED_GPU();
    sgt_arena_mark mc = sgt_arena_get_mark(cpu_arena), mg = sgt_arena_get_mark(dev_arena);
    check_len(G, SGT_F32, "cuda");
    check_len(G, SGT_F64, "cuda");
    check_len(G, SGT_BF16, "cuda");
    sgt_arena_rewind(cpu_arena, mc);
    sgt_arena_rewind(dev_arena, mg);
}

/* the device kernels' head-dim limit is a clear error, not a wrong answer */
static void t_cuda_head_dim_limit(void **st) {
    (void)st;
    NEED_GPU();
    if (self_check) skip(); /* the CPU has no limit */
    sgt_arena_mark mg = sgt_arena_get_mark(dev_arena);
    const shape_t s = {1, 1, 4, 4, 160};
    qkv_t x = make_qkv(G, SGT_F32, s, false, 950);
    EXPECT_SGT_ERROR(sgt_attention(G, x.q, x.k, x.v, 0.1, NULL), "D <= 128");
    sgt_arena_rewind(dev_arena, mg);
}

/* ---- 4. bad inputs ---- */

static void t_bad_inputs(void **st) {
    (void)st;
    sgt_arena_mark mark = sgt_arena_get_mark(cpu_arena);
    sgt_tensor *q = tu_rand(C, SGT_F32, SGT_SHAPE(1, 2, 6, 8), 1, -1, 1);
    sgt_tensor *k = tu_rand(C, SGT_F32, SGT_SHAPE(1, 2, 5, 8), 2, -1, 1);
    sgt_tensor *k8 = tu_rand(C, SGT_F32, SGT_SHAPE(1, 2, 6, 4), 3, -1, 1);
    sgt_tensor *k64 = tu_rand(C, SGT_F64, SGT_SHAPE(1, 2, 6, 8), 4, -1, 1);
    sgt_tensor *kh = tu_rand(C, SGT_F32, SGT_SHAPE(1, 3, 6, 8), 5, -1, 1);
    sgt_tensor *q3 = tu_rand(C, SGT_F32, SGT_SHAPE(2, 6, 8), 6, -1, 1);
    sgt_tensor *ki = sgt_from_i32(C, SGT_SHAPE(1), (int32_t[]){1});
    EXPECT_SGT_ERROR(sgt_attention(C, q, k, k, 1.0, NULL), "Tq <= Tk");   /* more queries than keys */
    EXPECT_SGT_ERROR(sgt_attention(C, q, k8, k8, 1.0, NULL), "[1,2,6,4]"); /* another head dim */
    EXPECT_SGT_ERROR(sgt_attention(C, q, kh, kh, 1.0, NULL), "Tq <= Tk"); /* another head count */
    EXPECT_SGT_ERROR(sgt_attention(C, q, q, k8, 1.0, NULL), "[1,2,6,4]"); /* k and v differ */
    EXPECT_SGT_ERROR(sgt_attention(C, q3, q3, q3, 1.0, NULL), "[B,H,Tq,D]"); /* rank 3 */
    EXPECT_SGT_ERROR(sgt_attention(C, q, k64, k64, 1.0, NULL), "dtypes differ");
    EXPECT_SGT_ERROR(sgt_attention(C, ki, ki, ki, 1.0, NULL), "needs f32, f64 or bf16");
    /* the backward: dy not shaped like q, lse of the wrong shape or dtype */
    sgt_tensor *lse;
    sgt_tensor *y = sgt_attention(C, q, q, q, 0.5, &lse);
    sgt_tensor *dq, *dk, *dv;
    EXPECT_SGT_ERROR(sgt_attention_bwd(C, q, q, q, y, lse, k8, 0.5, &dq, &dk, &dv), "y and dy must be shaped");
    sgt_tensor *l64 = sgt_zeros(C, SGT_F64, SGT_SHAPE(1, 2, 6));
    EXPECT_SGT_ERROR(sgt_attention_bwd(C, q, q, q, y, l64, y, 0.5, &dq, &dk, &dv), "lse [B,H,Tq]");
    EXPECT_SGT_ERROR(sgt_attention_bwd(C, q, k, k, y, lse, y, 0.5, &dq, &dk, &dv), "Tq <= Tk");
    sgt_arena_rewind(cpu_arena, mark);
}

/* ---- setup ---- */

TD_GROUP("test_attention", "attention-cpu", 64u << 20, "attention-dev", 64u << 20)

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_forward_cpu_f64),
        cmocka_unit_test(t_forward_cpu_f32),
        cmocka_unit_test(t_backward_cpu_f64),
        cmocka_unit_test(t_backward_cpu_f32),
        cmocka_unit_test(t_cuda_f32),
        cmocka_unit_test(t_cuda_f64),
        cmocka_unit_test(t_cuda_bf16),
        cmocka_unit_test(t_cuda_long),
        cmocka_unit_test(t_cuda_head_dim_limit),
        cmocka_unit_test(t_bad_inputs),
        cmocka_unit_test(t_len_cpu),
        cmocka_unit_test(t_len_cuda),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
