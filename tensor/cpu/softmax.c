/* softmax.c: CPU kernels for softmax (optionally causal-masked), log-softmax and their backward,
 * over the last dim of contiguous inputs. Rows are spread over OpenMP threads. */
#include <math.h>

#include "cpu.h"
#include "vmath.h"

#define SOFTMAX(T, EXP)                                                                            \
    static void softmax_##T(const sgt_opcall *call) {                                            \
        const sgt_tensor *xt = call->src[0];                                                     \
        const T *x = (const T *)sgt_ptr(xt);                                                     \
        T *y = (T *)sgt_ptr(call->dst[0]);                                                       \
        const int64_t n = xt->shape[xt->ndim - 1], rows = n ? sgt_numel(xt) / n : 0;             \
        const bool causal = call->ip[0], logsm = call->op == SGT_OP_LOG_SOFTMAX;                 \
        const int64_t tq = causal ? xt->shape[xt->ndim - 2] : 1, shift = n - tq;                 \
        _Pragma("omp parallel for schedule(static) if (rows * n >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * n;                                                             \
            T *yr = y + r * n;                                                                   \
            const int64_t valid = causal ? (r % tq) + shift + 1 : n;                             \
            const T mx = row_max_##T(xr, valid);                                                 \
            for (int64_t i = 0; i < valid; i++) yr[i] = EXP(xr[i] - mx);                         \
            double sum = row_sum_##T(yr, valid);                                                 \
            if (logsm) {                                                                         \
                T lse = mx + (T)log(sum);                                                        \
                for (int64_t i = 0; i < n; i++) yr[i] = xr[i] - lse;                             \
            } else {                                                                             \
                T inv = (T)(1.0 / sum);                                                          \
                for (int64_t i = 0; i < valid; i++) yr[i] *= inv;                                \
                for (int64_t i = valid; i < n; i++) yr[i] = 0;                                   \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    static void softmax_bwd_##T(const sgt_opcall *call) {                                        \
        const sgt_tensor *yt = call->src[0];                                                     \
        const T *y = (const T *)sgt_ptr(yt), *dy = (const T *)sgt_ptr(call->src[1]);             \
        T *dx = (T *)sgt_ptr(call->dst[0]);                                                      \
        const int64_t n = yt->shape[yt->ndim - 1], rows = n ? sgt_numel(yt) / n : 0;             \
        const bool logsm = call->ip[0];                                                          \
        _Pragma("omp parallel for schedule(static) if (rows * n >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *yr = y + r * n, *gr = dy + r * n;                                           \
            T *o = dx + r * n;                                                                   \
            double s = 0;                                                                        \
            if (logsm) {                                                                         \
                for (int64_t i = 0; i < n; i++) s += gr[i];                                      \
                for (int64_t i = 0; i < n; i++) o[i] = gr[i] - EXP(yr[i]) * (T)s;                \
            } else {                                                                             \
                for (int64_t i = 0; i < n; i++) s += (double)gr[i] * yr[i];                      \
                for (int64_t i = 0; i < n; i++) o[i] = yr[i] * (gr[i] - (T)s);                   \
            }                                                                                    \
        }                                                                                        \
    }
SOFTMAX(float, sgt_expf)
SOFTMAX(double, exp)

void sgt_cpu_softmax(const sgt_opcall *call) {
    if (call->dst[0]->dtype == SGT_F32) softmax_float(call);
    else softmax_double(call);
}

void sgt_cpu_softmax_bwd(const sgt_opcall *call) {
    if (call->dst[0]->dtype == SGT_F32) softmax_bwd_float(call);
    else softmax_bwd_double(call);
}
