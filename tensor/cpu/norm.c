/* norm.c: CPU kernels for RMSNorm and LayerNorm over the last dim, forward and backward.
 * Row statistics accumulate in f64. Weight/bias gradients are summed over rows by column
 * stripes, so the result does not depend on the thread count. */
#include <math.h>

#include "cpu.h"

#define NORMS(T, F)                                                                              \
    static void rmsnorm_##T(const sgt_opcall *call) {                                            \
        const sgt_tensor *xt = call->src[0];                                                     \
        const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;             \
        const T *x = sgt_ptr(xt), *w = sgt_ptr(call->src[1]);                                    \
        T *y = sgt_ptr(call->dst[0]), *rstd = sgt_ptr(call->dst[1]);                             \
        const double eps = call->fp[0];                                                          \
        _Pragma("omp parallel for schedule(static) if (rows * C >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * C;                                                             \
            double ss = 0;                                                                       \
            for (int64_t i = 0; i < C; i++) ss += (double)xr[i] * xr[i];                         \
            T rs = (T)(1.0 / sqrt(ss / (double)C + eps));                                        \
            rstd[r] = rs;                                                                        \
            for (int64_t i = 0; i < C; i++) y[r * C + i] = xr[i] * rs * w[i];                    \
        }                                                                                        \
    }                                                                                            \
    static void layernorm_##T(const sgt_opcall *call) {                                          \
        const sgt_tensor *xt = call->src[0];                                                     \
        const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;             \
        const T *x = sgt_ptr(xt), *w = sgt_ptr(call->src[1]), *b = sgt_ptr(call->src[2]);        \
        T *y = sgt_ptr(call->dst[0]), *mean = sgt_ptr(call->dst[1]), *rstd = sgt_ptr(call->dst[2]); \
        const double eps = call->fp[0];                                                          \
        _Pragma("omp parallel for schedule(static) if (rows * C >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * C;                                                             \
            double s = 0, ss = 0;                                                                \
            for (int64_t i = 0; i < C; i++) s += xr[i];                                          \
            double m = s / (double)C;                                                            \
            for (int64_t i = 0; i < C; i++) ss += ((double)xr[i] - m) * ((double)xr[i] - m);     \
            T rs = (T)(1.0 / sqrt(ss / (double)C + eps));                                        \
            mean[r] = (T)m;                                                                      \
            rstd[r] = rs;                                                                        \
            for (int64_t i = 0; i < C; i++) y[r * C + i] = (xr[i] - (T)m) * rs * w[i] + b[i];    \
        }                                                                                        \
    }                                                                                            \
    /* dx per row; mean is NULL for RMSNorm */                                                   \
    static void norm_dx_##T(const T *x, const T *w, const T *mean, const T *rstd, const T *dy,   \
                            T *dx, int64_t rows, int64_t C) {                                    \
        _Pragma("omp parallel for schedule(static) if (rows * C >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * C, *gr = dy + r * C;                                           \
            const T m = mean ? mean[r] : (T)0, rs = rstd[r];                                     \
            double sg = 0, sgx = 0;                                                              \
            for (int64_t i = 0; i < C; i++) {                                                    \
                double g = (double)gr[i] * w[i], xh = ((double)xr[i] - m) * rs;                  \
                sg += g;                                                                         \
                sgx += g * xh;                                                                   \
            }                                                                                    \
            const double mg = mean ? sg / (double)C : 0.0, mgx = sgx / (double)C;                \
            for (int64_t i = 0; i < C; i++) {                                                    \
                double g = (double)gr[i] * w[i], xh = ((double)xr[i] - m) * rs;                  \
                dx[r * C + i] = (T)(rs * (g - mg - xh * mgx));                                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    /* dw (and db) summed over rows, by column stripes */                                        \
    static void norm_dw_##T(const T *x, const T *mean, const T *rstd, const T *dy, T *dw, T *db, \
                            int64_t rows, int64_t C) {                                           \
        const int64_t CH = 64, nch = (C + CH - 1) / CH;                                          \
        _Pragma("omp parallel for schedule(static) if (rows * C >= SGT_OMP_MIN)")               \
        for (int64_t ch = 0; ch < nch; ch++) {                                                   \
            double aw[64] = {0}, ab[64] = {0};                                                   \
            int64_t j0 = ch * CH, nj = C - j0 < CH ? C - j0 : CH;                                \
            for (int64_t r = 0; r < rows; r++) {                                                 \
                const T m = mean ? mean[r] : (T)0, rs = rstd[r];                                 \
                for (int64_t j = 0; j < nj; j++) {                                               \
                    double g = dy[r * C + j0 + j];                                               \
                    aw[j] += g * ((double)x[r * C + j0 + j] - m) * rs;                           \
                    ab[j] += g;                                                                  \
                }                                                                                \
            }                                                                                    \
            for (int64_t j = 0; j < nj; j++) {                                                   \
                dw[j0 + j] = (T)aw[j];                                                           \
                if (db) db[j0 + j] = (T)ab[j];                                                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void rmsnorm_bwd_##T(const sgt_opcall *call) {                                        \
        const sgt_tensor *xt = call->src[0];                                                     \
        const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;             \
        norm_dx_##T(sgt_ptr(xt), sgt_ptr(call->src[1]), NULL, sgt_ptr(call->src[2]),             \
                    sgt_ptr(call->src[3]), sgt_ptr(call->dst[0]), rows, C);                      \
        norm_dw_##T(sgt_ptr(xt), NULL, sgt_ptr(call->src[2]), sgt_ptr(call->src[3]),             \
                    sgt_ptr(call->dst[1]), NULL, rows, C);                                       \
    }                                                                                            \
    static void layernorm_bwd_##T(const sgt_opcall *call) {                                      \
        const sgt_tensor *xt = call->src[0];                                                     \
        const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;             \
        norm_dx_##T(sgt_ptr(xt), sgt_ptr(call->src[1]), sgt_ptr(call->src[2]), sgt_ptr(call->src[3]), \
                    sgt_ptr(call->src[4]), sgt_ptr(call->dst[0]), rows, C);                      \
        norm_dw_##T(sgt_ptr(xt), sgt_ptr(call->src[2]), sgt_ptr(call->src[3]), sgt_ptr(call->src[4]), \
                    sgt_ptr(call->dst[1]), sgt_ptr(call->dst[2]), rows, C);                      \
    }
NORMS(float, f)
NORMS(double, )

#define BY_DTYPE(name)                                              \
    void sgt_cpu_##name(const sgt_opcall *call) {                   \
        if (call->src[0]->dtype == SGT_F32) name##_float(call);     \
        else name##_double(call);                                   \
    }
BY_DTYPE(rmsnorm)
BY_DTYPE(layernorm)
BY_DTYPE(rmsnorm_bwd)
BY_DTYPE(layernorm_bwd)
