/* swiglu.c: the fused SwiGLU activation with an optional per-block mask, forward and backward,
 * over contiguous g, u, dh [N, I] and m, dm [N, I / bs] (ops.c checks the shapes):
 *   h  = silu(g) u m[n, i / bs]                    (no m factor without a mask)
 *   dg = ((dh m) u) silu'(g),  du = (dh m) silu(g),  dm[n, b] = sum over the block of dh (silu(g) u)
 * silu and silu' are the unary SILU kernel's formulas (elementwise.c, with the vectorisable f32
 * exp of vmath.h), and every product is grouped as autograd groups the composed ops (silu, mul,
 * mul by the expanded mask), so the fused results equal the composed ones bit for bit; dm sums
 * its block in f64 (8 lanes in a fixed order: independent of the thread count). OpenMP over rows.
 * bf16 never reaches here: the dispatch point promotes it to f32. */
#include "cpu.h"
#include "vmath.h"

/* dm's block is summed in pieces of this many terms (the scratch for the terms lives on the stack) */
#define SWIGLU_CHUNK 1024

#define SWIGLU(T, EXP)                                                                             \
    static void swiglu_##T(const sgt_opcall *call) {                                              \
        const sgt_tensor *gt = call->src[0];                                                      \
        const int64_t I = gt->shape[gt->ndim - 1], n = sgt_numel(gt), N = I ? n / I : 0;          \
        const T *g = sgt_ptr(gt), *u = sgt_ptr(call->src[1]);                                     \
        const T *m = call->nsrc == 3 ? sgt_ptr(call->src[2]) : NULL;                              \
        const int64_t bs = m ? call->ip[0] : I, nb = m ? I / bs : 1;                              \
        T *h = sgt_ptr(call->dst[0]);                                                             \
        _Pragma("omp parallel for schedule(static) if (n >= SGT_OMP_MIN)")                        \
        for (int64_t r = 0; r < N; r++) {                                                         \
            const T *gr = g + r * I, *ur = u + r * I;                                             \
            T *hr = h + r * I;                                                                    \
            if (!m) {                                                                             \
                for (int64_t i = 0; i < I; i++) hr[i] = gr[i] / ((T)1 + EXP(-gr[i])) * ur[i];     \
                continue;                                                                         \
            }                                                                                     \
            for (int64_t b = 0; b < nb; b++) {                                                    \
                const T mb = m[r * nb + b];                                                       \
                const T *gb = gr + b * bs, *ub = ur + b * bs;                                     \
                T *hb = hr + b * bs;                                                              \
                for (int64_t i = 0; i < bs; i++) hb[i] = gb[i] / ((T)1 + EXP(-gb[i])) * ub[i] * mb; \
            }                                                                                     \
        }                                                                                         \
    }                                                                                             \
    static void swiglu_bwd_##T(const sgt_opcall *call) {                                          \
        const sgt_tensor *gt = call->src[0];                                                      \
        const int64_t I = gt->shape[gt->ndim - 1], n = sgt_numel(gt), N = I ? n / I : 0;          \
        const bool masked = call->nsrc == 4;                                                      \
        const T *g = sgt_ptr(gt), *u = sgt_ptr(call->src[1]);                                     \
        const T *m = masked ? sgt_ptr(call->src[2]) : NULL, *dh = sgt_ptr(call->src[call->nsrc - 1]); \
        T *dg = sgt_ptr(call->dst[0]), *du = sgt_ptr(call->dst[1]);                               \
        T *dm = masked ? sgt_ptr(call->dst[2]) : NULL;                                            \
        const int64_t bs = masked ? call->ip[0] : I, nb = masked ? I / bs : 1;                    \
        _Pragma("omp parallel for schedule(static) if (n >= SGT_OMP_MIN)")                        \
        for (int64_t r = 0; r < N; r++) {                                                         \
            const int64_t o = r * I;                                                              \
            if (!masked) {                                                                        \
                for (int64_t i = o; i < o + I; i++) {                                             \
                    const T e = EXP(-g[i]), s = g[i] / ((T)1 + e), sg = (T)1 / ((T)1 + e);       \
                    const T ds = dh[i] * u[i];                                                    \
                    dg[i] = ds * sg * ((T)1 + g[i] * ((T)1 - sg));                                \
                    du[i] = dh[i] * s;                                                            \
                }                                                                                 \
                continue;                                                                         \
            }                                                                                     \
            for (int64_t b = 0; b < nb; b++) {                                                    \
                const T mb = m[r * nb + b];                                                       \
                double acc = 0;                                                                   \
                for (int64_t i0 = o + b * bs; i0 < o + (b + 1) * bs; i0 += SWIGLU_CHUNK) {       \
                    T t[SWIGLU_CHUNK];                                                            \
                    const int64_t len = o + (b + 1) * bs - i0 < SWIGLU_CHUNK ? o + (b + 1) * bs - i0 : SWIGLU_CHUNK; \
                    const T *gi = g + i0, *ui = u + i0, *dhi = dh + i0;                           \
                    T *dgi = dg + i0, *dui = du + i0;                                             \
                    for (int64_t i = 0; i < len; i++) {                                           \
                        const T e = EXP(-gi[i]), s = gi[i] / ((T)1 + e), sg = (T)1 / ((T)1 + e);  \
                        const T da = dhi[i] * mb; /* the gradient of silu(g) u */                \
                        dgi[i] = da * ui[i] * sg * ((T)1 + gi[i] * ((T)1 - sg));                  \
                        dui[i] = da * s;                                                          \
                        t[i] = dhi[i] * (s * ui[i]);                                              \
                    }                                                                             \
                    acc += row_sum_##T(t, len);                                                   \
                }                                                                                 \
                dm[r * nb + b] = (T)acc;                                                          \
            }                                                                                     \
        }                                                                                         \
    }
SWIGLU(float, sgt_expf)
SWIGLU(double, exp)

void sgt_cpu_swiglu(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) swiglu_float(call);
    else swiglu_double(call);
}

void sgt_cpu_swiglu_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) swiglu_bwd_float(call);
    else swiglu_bwd_double(call);
}
